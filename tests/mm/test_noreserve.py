"""MAP_NORESERVE (VM_NORESERVE): a mapping the kernel never charges.

``do_mmap`` (``mmap_region`` in 2.6.3x) sets VM_NORESERVE for MAP_NORESERVE unless
overcommit is OVERCOMMIT_NEVER (the default heuristic mode is assumed);
``accountable_mapping`` is then false, so even a writable mapping gets no VM_ACCOUNT, and
``mprotect_fixup`` charges a range made writable only if its old flags have none of
VM_ACCOUNT|VM_WRITE|VM_HUGETLB|VM_SHARED|VM_NORESERVE (2.6.29 onwards: every era here).
VM_NORESERVE is a vm_flags bit, so it takes part in every merge comparison and is copied by
fork and kept by splits and mremap. tests/data/noreserve.c checks all this on the live
kernel; its recording is tests/data/noreserve.out."""

from __future__ import annotations

import platform
import re
import shutil

import numpy as np
import pytest

import rmapsim
from rmapsim import trace

from helpers import DATA, recorded_lines, run_c_program

P = 4096
SRC = 0x1000_0000
DST = 0x2000_0000
ERAS = rmapsim.eras()


def marks(v):
    """The smaps VmFlags the program prints: "ac" (VM_ACCOUNT), "nr" (VM_NORESERVE), "-"."""
    got = [m for m, f in (("ac", "account"), ("nr", "noreserve")) if f in v["flags"]]
    return " ".join(got) or "-"


def layout(sim, pid):
    return [(v["start"], v["end"], v["prot"], marks(v)) for v in sim.vmas(pid)]


# ------------------------------------------------------------------ the live kernel

RECORDING = str(DATA / "noreserve.out")
PROGRAM = str(DATA / "noreserve.c")


def simulate_program(era):
    """noreserve.c's calls on the simulator, printed the way the program prints them."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    lines = []

    def dump(who, pid):
        for v in sim.vmas(pid):
            perms = "".join(c if c in v["prot"] else "-" for c in "rwx")
            lines.append(f"{who} {v['start']:#x} {v['end']:#x} {perms} {marks(v)}")

    sim.mmap(p, 2 * P, addr=SRC)
    sim.mmap(p, 2 * P, addr=SRC + 2 * P, noreserve=True)
    sim.mmap(p, 2 * P, addr=SRC + 4 * P, noreserve=True)
    sim.mmap(p, 2 * P, addr=SRC + 6 * P, prot="r")
    sim.mmap(p, 2 * P, addr=SRC + 8 * P, prot="r", noreserve=True)
    sim.mmap(p, 2 * P, addr=SRC + 10 * P, noreserve=True)
    dump("step1", p)
    sim.mprotect(p, SRC + 6 * P, 2 * P, "rw")
    sim.mprotect(p, SRC + 8 * P, 2 * P, "rw")
    sim.mprotect(p, SRC + 3 * P, P, "r")
    sim.mprotect(p, SRC + 3 * P, P, "rw")
    sim.touch(p, SRC, P)
    sim.touch(p, SRC + 2 * P, P)
    sim.mmap(p, 2 * P, addr=DST)
    assert sim.mremap(p, SRC + 4 * P, 2 * P, 2 * P, new_addr=DST + 2 * P) == DST + 2 * P
    dump("parent", p)
    dump("child", sim.fork(p))
    sim.check()
    return lines


def recorded():
    return recorded_lines(RECORDING)


def test_the_recording_is_a_6_18_run_of_the_program():
    with open(RECORDING) as fh:
        first = fh.readline()
    assert first.startswith("# ./noreserve on Linux 6.18") and "overcommit_memory = 0" in first
    rec = recorded()
    assert len(rec) == 17 and rec[1] == "step1 0x10002000 0x10006000 rw- nr"


@pytest.mark.parametrize("era", ERAS)
def test_every_era_prints_what_the_live_kernel_printed(era):
    """The same in every era: MAP_NORESERVE and its accounting rules date from 2.6.29, and
    the program avoids the one era-dependent accounting rule: 6.7's mprotect_unaccounts
    clears VM_ACCOUNT when a range becomes read-only, and the only range the program
    makes read-only is a VM_NORESERVE one, which has no VM_ACCOUNT in any era."""
    assert simulate_program(era) == recorded()


def _overcommit_heuristic():
    try:
        with open("/proc/sys/vm/overcommit_memory") as fh:
            return fh.read().strip() != "2"
    except OSError:
        return False


@pytest.mark.skipif(
    platform.system() != "Linux" or shutil.which("cc") is None or not _overcommit_heuristic(),
    reason="needs Linux with overcommit not OVERCOMMIT_NEVER and a C compiler (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert run_c_program(PROGRAM, tmp_path) == recorded()


# ------------------------------------------------------------------ unit rules


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.19", "6.18"])
def test_a_noreserve_mapping_merges_only_with_noreserve_neighbours(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=SRC)
    sim.mmap(p, 2 * P, addr=SRC + 2 * P, noreserve=True)  # next to an ordinary one: apart
    sim.mmap(p, 2 * P, addr=SRC + 4 * P, noreserve=True)  # next to a noreserve one: merges
    sim.mmap(p, 2 * P, addr=SRC + 6 * P)  # ordinary again: apart
    assert layout(sim, p) == [
        (SRC, SRC + 2 * P, "rw", "ac"),
        (SRC + 2 * P, SRC + 6 * P, "rw", "nr"),
        (SRC + 6 * P, SRC + 8 * P, "rw", "ac"),
    ]
    # read-only: neither is charged, but the flag alone keeps them apart
    sim.mmap(p, P, addr=DST, prot="r")
    sim.mmap(p, P, addr=DST + P, prot="r", noreserve=True)
    assert layout(sim, p)[3:] == [(DST, DST + P, "r", "-"), (DST + P, DST + 2 * P, "r", "nr")]
    sim.check()


def test_a_file_mapping_with_noreserve_does_not_merge_with_the_same_file():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.mmap(p, P, addr=SRC, prot="r", file=1, offset=0)
    sim.mmap(p, P, addr=SRC + P, prot="r", file=1, offset=P, noreserve=True)
    sim.mmap(p, P, addr=SRC + 2 * P, prot="r", file=1, offset=2 * P, noreserve=True)
    assert [(v["start"], v["file"], marks(v)) for v in sim.vmas(p)] == [
        (SRC, 1, "-"),
        (SRC + P, 1, "nr"),
    ]
    assert sim.vmas(p)[1]["end"] == SRC + 3 * P


def test_the_largest_file_identity_still_fits_beside_the_flag():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    big = (1 << 20) - 1
    sim.mmap(p, P, addr=SRC, prot="r", file=big, offset=0, noreserve=True)
    assert sim.vmas(p)[0]["file"] == big and marks(sim.vmas(p)[0]) == "nr"
    with pytest.raises(rmapsim.InvalidArgument, match=str(1 << 20)):
        sim.mmap(p, P, addr=DST, prot="r", file=1 << 20)


@pytest.mark.parametrize("era", ERAS)
def test_mprotect_never_charges_a_noreserve_range(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=SRC, prot="r")  # ordinary, read-only
    sim.mmap(p, 2 * P, addr=SRC + 4 * P, prot="r", noreserve=True)
    sim.mprotect(p, SRC, 2 * P, "rw")
    sim.mprotect(p, SRC + 4 * P, 2 * P, "rw")
    assert [marks(v) for v in sim.vmas(p)] == ["ac", "nr"]
    # writable -> read-only -> writable again, faulted or not: still never charged
    sim.touch(p, SRC + 4 * P, P)
    sim.mprotect(p, SRC + 4 * P, 2 * P, "r")
    sim.mprotect(p, SRC + 4 * P, 2 * P, "rwx")
    assert [marks(v) for v in sim.vmas(p)] == ["ac", "nr"]
    sim.check()


def test_a_noreserve_range_made_writable_merges_with_a_writable_noreserve_neighbour():
    """Had mprotect charged it (VM_ACCOUNT), the flags would differ and it would not merge."""
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=SRC, prot="r", noreserve=True)
    sim.mmap(p, 2 * P, addr=SRC + 2 * P, noreserve=True)
    sim.mprotect(p, SRC, 2 * P, "rw")
    assert layout(sim, p) == [(SRC, SRC + 4 * P, "rw", "nr")]


def test_brk_stays_charged():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.set_brk_base(p, SRC)
    sim.brk(p, SRC + 2 * P)
    assert marks(sim.vmas(p)[0]) == "ac"


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "6.18"])
def test_fork_copies_the_flag(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 4 * P, addr=SRC, noreserve=True)
    sim.mmap(p, 2 * P, addr=SRC + 4 * P)
    sim.touch(p, SRC, 6 * P)
    child = sim.fork(p)
    assert (
        layout(sim, child)
        == layout(sim, p)
        == [
            (SRC, SRC + 4 * P, "rw", "nr"),
            (SRC + 4 * P, SRC + 6 * P, "rw", "ac"),
        ]
    )
    grandchild = sim.fork(child)
    assert layout(sim, grandchild) == layout(sim, p)
    sim.check()


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.19", "6.18"])
def test_mremap_and_splits_keep_the_flag(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 6 * P, addr=SRC, noreserve=True)
    sim.touch(p, SRC, P)
    sim.munmap(p, SRC + 2 * P, P)  # split by munmap
    sim.mmap(p, 2 * P, addr=DST)  # ordinary, rw
    sim.mremap(p, SRC + 3 * P, 3 * P, 3 * P, new_addr=DST + 2 * P)  # moved beside it
    grown = sim.mremap(p, SRC, 2 * P, 2 * P + P)  # grown in place
    assert grown == SRC
    assert layout(sim, p) == [
        (SRC, SRC + 3 * P, "rw", "nr"),
        (DST, DST + 2 * P, "rw", "ac"),
        (DST + 2 * P, DST + 5 * P, "rw", "nr"),
    ]
    sim.mremap(p, DST + 2 * P, 3 * P, P)  # shrunk
    assert layout(sim, p)[-1] == (DST + 2 * P, DST + 3 * P, "rw", "nr")
    sim.check()


def test_render_layout_names_the_flag():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.mmap(p, P, addr=SRC, noreserve=True)
    assert " rw- noreserve anon_vma" in sim.render_layout(p)


# ------------------------------------------------------------------ traces and arguments

TRACE = """# rmapsim trace v1
spawn
mmap p1 0x10000000 0x2000 rw noreserve
mmap p1 0x10002000 0x2000 rw
mmap p1 0x20000000 0x1000 r file 3 0x1000 noreserve
mprotect p1 0x10000000 0x1000 r
fork p1
check
"""


def test_the_trace_word_round_trips_and_replays_like_the_api():
    ops = trace.parse(TRACE)
    assert [int(c) for c in ops["c"][1:4]] == [3 | 8, 3, 1 | 8]  # bit 3 of mmap's prot column
    assert trace.format(ops).splitlines()[1:] == TRACE.splitlines()[1:]
    assert np.array_equal(trace.parse(trace.format(ops)), ops)
    sim = rmapsim.Simulator(era="6.18")
    assert sim.apply(ops, check_each=True).errors() == []
    assert [marks(v) for v in sim.vmas(2)] == ["nr", "nr", "ac", "nr"]
    assert sim.vmas(2)[3]["file"] == 3


def test_an_mmap_row_with_a_bit_above_noreserve_stack_noreplace_and_locked_is_refused():
    ops = trace.parse(TRACE)
    ops["c"][1] = 128 | 3
    with pytest.raises(rmapsim.InvalidArgument, match="op row 1: mmap prot"):
        rmapsim.Simulator(era="6.18").apply(ops)
    with pytest.raises(
        rmapsim.InvalidArgument,
        match='line 2: expected "file", "noreserve", "stack", "noreplace", "locked" or end of line',
    ):
        trace.parse("# rmapsim trace v1\nmmap p1 0x1000 0x1000 rw reserve\n")
    with pytest.raises(rmapsim.InvalidArgument, match='line 2: unexpected "file"'):
        trace.parse("# rmapsim trace v1\nmmap p1 0x1000 0x1000 rw noreserve file 1 0x0\n")


@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0, [True]])
def test_noreserve_must_be_a_bool(bad):
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    before = sim.counts()
    with pytest.raises(rmapsim.InvalidArgument, match=re.escape(f"noreserve must be True or False, got {bad!r}")):
        sim.mmap(p, P, addr=SRC, noreserve=bad)
    assert sim.counts() == before and sim.vmas(p) == []


def test_numpy_bools_are_accepted():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.mmap(p, P, addr=SRC, noreserve=np.bool_(True))
    sim.mmap(p, P, addr=DST, noreserve=np.bool_(False))
    assert [marks(v) for v in sim.vmas(p)] == ["nr", "ac"]
