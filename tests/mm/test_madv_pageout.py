"""MADV_PAGEOUT of page-cache pages (``Simulator.madvise(..., "pageout")`` on a private
file mapping; rust/core/src/mm/madv_pageout.rs).

Kernel rule (6.18.2, mm/madvise.c): ``madvise_pageout`` (629-652) walks the range with
``madvise_cold_or_pageout_pte_range`` (356-568). Each present entry's folio
(``vm_normal_folio``: none for the zero page, 479-481) is skipped unless
``folio_mapcount`` equals its size — one mapping in the whole system, "do not interfere
with other mappings of this folio" (520-525) — and, for a file folio, unless the caller
may write the file (``can_do_file_pageout``, 331-343; rmapsim takes the caller to be the
file's owner). The rest are isolated and reclaimed (``reclaim_pages``): a clean page-cache
page is unmapped and dropped, so its entry is gone. Fork copies a file VMA's entries only
when the VMA has an anon_vma (``vma_needs_copy``, mm/memory.c), so a read-only file
mapping's pages are not shared with the child until it faults them itself.

Ground truth: tests/data/pageout_file.c run on this machine's Linux 6.18 (as root), its
output recorded in tests/data/pageout_file.out; the simulator prints the same lines. The
live fuzzer (``validate-kernel --fuzz``) found this rule: its saved divergence
tests/data/validate-fuzz/pageout-file-page.trace is replayed by
tests/tools/test_kernel_fuzz.py.
"""

from __future__ import annotations

import shutil

import pytest

import rmapsim

from helpers import DATA, entry_kinds, kernel_at_least, recorded_lines, run_c_program

P = 4096
FILE = 7
RECORDING = str(DATA / "pageout_file.out")
PROGRAM = str(DATA / "pageout_file.c")


class Program:
    """pageout_file.c on the simulator: the same mappings at addresses of our choosing."""

    def __init__(self, era):
        self.sim = rmapsim.Simulator(era)
        self.lines = []
        self.next = 0x1000_0000

    def map_file(self, pid, pages, prot, pgoff):
        addr, self.next = self.next, self.next + (pages + 1) * P
        self.sim.mmap(pid, pages * P, addr=addr, prot=prot, file=FILE, offset=pgoff * P)
        return addr

    def state(self, pid, addr):
        kind = entry_kinds(self.sim).get((pid, addr))
        vma = next(v for v in self.sim.vmas(pid) if v["start"] <= addr < v["end"])
        if kind is None:
            return "-"
        if kind == "swap":
            return "s"
        return "f" if kind == "zero" and vma["file"] is not None else "a"

    def show(self, tag, pid, addr, n):
        self.lines.append(" ".join([tag] + [self.state(pid, addr + i * P) for i in range(n)]))

    def read(self, pid, addr, n):
        self.sim.touch(pid, addr, n * P, write=False)

    def pageout(self, pid, addr, n):
        self.sim.madvise(pid, addr, n * P, "pageout")

    def run(self):
        sim = self.sim
        p = sim.spawn()
        a = self.map_file(p, 4, "r", 0)
        self.read(p, a, 4)
        self.pageout(p, a + P, 1)
        self.show("A", p, a, 4)

        b = self.map_file(p, 4, "rw", 4)
        sim.touch(p, b, P, write=True)
        self.read(p, b + P, 3)
        c = sim.fork(p)
        self.pageout(c, b, 4)
        self.show("B child", c, b, 4)
        sim.exit(c)
        self.pageout(p, b + P, 3)
        self.show("B parent", p, b, 4)

        c1 = self.map_file(p, 1, "r", 8)
        c2 = self.map_file(p, 1, "r", 8)
        self.read(p, c1, 1)
        self.read(p, c2, 1)
        self.pageout(p, c1, 1)
        self.show("C twice", p, c1, 1)
        sim.munmap(p, c2, P)
        self.pageout(p, c1, 1)
        self.show("C once", p, c1, 1)

        d = sim.mmap(p, 2 * P, prot="r")
        self.read(p, d, 2)
        self.pageout(p, d, 2)
        self.show("D", p, d, 2)

        e = self.map_file(p, 2, "r", 10)
        self.read(p, e, 2)
        c = sim.fork(p)
        self.show("E child after fork", c, e, 2)
        self.read(c, e, 2)
        self.pageout(p, e, 2)
        self.show("E parent, child mapping both", p, e, 2)
        sim.munmap(c, e + P, P)
        self.pageout(p, e, 2)
        self.show("E parent, child mapping page 0", p, e, 2)
        self.show("E child", c, e, 1)
        sim.check()
        return self.lines


def test_6_18_matches_the_live_kernel_recording():
    rec = recorded_lines(RECORDING)
    assert rec[0] == "A f - f f" and rec[4] == "C once -" and len(rec) == 10
    assert Program("6.18").run() == rec


@pytest.mark.parametrize("era", rmapsim.eras())
def test_every_era_reclaims_an_unshared_page_cache_page(era):
    """The pre-5.4 eras have no MADV_PAGEOUT; there ``pageout`` is rmapsim's way into
    reclaim (shrink_page_list of those pages), which unmaps and drops a clean page-cache
    page mapped once just the same."""
    assert Program(era).run() == recorded_lines(RECORDING)


@pytest.mark.skipif(not (kernel_at_least(6, 18) and shutil.which("cc")), reason="needs Linux 6.18+ and a C compiler")
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert run_c_program(PROGRAM, tmp_path) == recorded_lines(RECORDING)


def test_page_out_leaves_the_walk_statistics_of_anon_pages_alone():
    """Dropping page-cache entries makes no rmap walk of anon pages: the returned walks
    are those of the anon pages only (here none: the one anon page is shared)."""
    sim = rmapsim.Simulator("6.18")
    p = sim.spawn()
    a = 0x1000_0000
    sim.mmap(p, 4 * P, addr=a, prot="rw", file=FILE, offset=0)
    sim.touch(p, a, P, write=True)
    sim.touch(p, a + P, 3 * P, write=False)
    c = sim.fork(p)
    before = sim.counts()
    stats = sim.madvise(c, a, 4 * P, "pageout")
    assert len(stats) == 0
    assert sim.counts() == before
    sim.exit(c)
    stats = sim.madvise(p, a, 4 * P, "pageout")
    assert len(stats) == 1  # the now exclusive anon page goes to swap
    assert sim.counts()["page"] == before["page"] - 1
