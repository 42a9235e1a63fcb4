"""Helpers of the vma_merge / copy_vma scenario tests (test_vma_merge, test_vma_merge_anon,
test_copy_vma): pictures relative to X, one column per page.

Kernel rules used throughout (2.6.33 and 2.6.34, mm/mmap.c, mm/rmap.c):
  R1  A new anonymous range has pgoff = start >> 12 and no anon_vma; vma_merge passes
      anon_vma=NULL for it, so `is_mergeable_anon_vma(NULL, x)` accepts any neighbour.
  R2  can_vma_merge_after(prev)/before(next): equal flags+prot, mergeable anon_vma and
      contiguous pgoff. Merging prev AND next additionally needs
      is_mergeable_anon_vma(prev->anon_vma, next->anon_vma): either NULL, or equal.
  R3  vma_adjust importer rule: the VMA that grows over pages of a VMA with an anon_vma
      (importer) takes that anon_vma; 2.6.34 clones the exporter's chain (one
      anon_vma_chain allocation per entry), 2.6.33 links the VMA onto the anon_vma's list
      (no allocation). In 2.6.34-rc1 the importer cloned `vma`'s own chain: when the
      importer IS `vma` (cases 1, 5, 6, 7, 8: prev/area grows) that chain is empty, so the
      importer ends with an anon_vma that is not on its chain; in case 4 (next grows) the
      exporter is `vma` and rc1 happens to be right.
  R4  anon_vma_merge(vma, next) = unlink_anon_vmas(next); an anon_vma whose list becomes
      empty is freed.
  R5  A first write fault calls anon_vma_prepare: a compatible adjacent neighbour's
      anon_vma is reused (2.6.34: only if that neighbour's chain is singular), else a new
      one is allocated. Chain eras give a new VMA a chain of length 1; 2.6.33 has no
      chains at all (chain_len 0 everywhere).
  R6  split_vma: the new piece shares ->anon_vma and clones the chain (chain eras).
  R7  vma_merge absorbs an error from vma_adjust (`if (err) return NULL;`): the caller
      goes on as if no merge applied (mmap_region allocates a VMA, mprotect_fixup splits).
"""

from __future__ import annotations

import re

import rmapsim

from helpers import PAGE, PAGE_SHIFT, norm_prot, page_at, scan_rows

ALL_ERAS = ("2.6.33", "2.6.34-rc1", "2.6.34")
CHAIN_ERAS = ("2.6.34-rc1", "2.6.34")

X = 0x4000_0000  # fixed test region (MAP_FIXED), far below MMAP_BASE
XP = X >> PAGE_SHIFT

R = norm_prot("r")
RW = norm_prot("rw")


def A(i: int) -> int:
    """Address of page column i of the pictures."""
    return X + i * PAGE


def new_sim(era: str):
    sim = rmapsim.Simulator(era=era, seed=0)
    assert sim.era == era
    return sim


def pic(sim, pid) -> str:
    try:
        return "\n" + sim.render_layout(pid)
    except Exception as e:  # pragma: no cover - only used in failure messages
        return f"\n<render_layout failed: {e!r}>"


def rel_vmas(sim, pid) -> list:
    """VMAs with start/end in page columns and pgoff relative to X's page number."""
    out = []
    for v in sim.vmas(pid):
        out.append(
            {
                "s": (int(v["start"]) - X) >> PAGE_SHIFT,
                "e": (int(v["end"]) - X) >> PAGE_SHIFT,
                "pgoff": int(v["pgoff"]) - XP,
                "prot": norm_prot(v["prot"]),
                "anon_vma": None if v["anon_vma"] is None else int(v["anon_vma"]),
                "chain_len": int(v["chain_len"]),
            }
        )
    return out


def shape(sim, pid) -> list:
    return [(v["s"], v["e"], v["pgoff"]) for v in rel_vmas(sim, pid)]


def expect_shape(sim, pid, expected, what=""):
    got = shape(sim, pid)
    assert got == expected, f"{what}: VMAs (start, end, pgoff) {got} != {expected}{pic(sim, pid)}"


def clen(era: str, n: int) -> int:
    """Chain length a VMA linked to n anon_vmas shows: 2.6.33 has no chain objects."""
    return 0 if era == "2.6.33" else n


def av_at(sim, pid, col):
    for v in rel_vmas(sim, pid):
        if v["s"] <= col < v["e"]:
            return v["anon_vma"]
    raise AssertionError(f"no VMA covers column {col}{pic(sim, pid)}")


def assert_walks_complete(sim, pid):
    """Full rmap walk of every live page: every mapping is found."""
    for r in scan_rows(sim.rmap_walk()):
        if r["mapcount"]:
            assert r["mappings_found"] == r["mapcount"], (
                f"rmap walk of page {r['page']:#x} found {r['mappings_found']} of "
                f"{r['mapcount']} mappings{pic(sim, pid)}"
            )


def assert_pages(sim, pid, cols, anon_vma):
    """Each column maps an anon page at its linear index (pgoff of X + col) in anon_vma."""
    for c in cols:
        h = page_at(sim, pid, A(c))
        assert h is not None, f"no page at column {c}{pic(sim, pid)}"
        info = sim.page_info(h)
        assert int(info["index"]) == XP + c, f"column {c}: index {info['index']:#x}{pic(sim, pid)}"
        assert int(info["anon_vma"]) == anon_vma, f"column {c}: page anon_vma{pic(sim, pid)}"


def check_ok(sim, pid):
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:  # pragma: no cover - failure path
        raise AssertionError(f"check() failed: {e}{pic(sim, pid)}") from None


def check_fails(sim, pid, pattern=""):
    """check() must raise InvariantViolation (with a message matching pattern)."""
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:
        msg = f"check() raised {e}; expected /{pattern}/{pic(sim, pid)}"
        assert re.search(pattern, str(e)), msg
        return
    raise AssertionError(f"check() passed; expected InvariantViolation{pic(sim, pid)}")


def allocs_of(sim, fn, *args, **kwargs):
    before = sim.allocations()
    out = fn(*args, **kwargs)
    return out, sim.allocations() - before


def map_ro(sim, p, npages, addr):
    """A read-only range that was writable once, so it carries VM_ACCOUNT like the
    read-only ranges it is to merge with (a range mapped read-only from the start has no
    VM_ACCOUNT and would not merge with them). Mapped rwx first: no merge on the way."""
    sim.mmap(p, npages * PAGE, addr=addr, prot="rwx")
    sim.mprotect(p, addr, npages * PAGE, "r")
