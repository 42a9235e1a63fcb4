"""mremap (mm/mremap.c vma_to_resize, vma_expandable, move_vma, copy_vma): shrink, grow in
place, move, and the merges they make.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import (
    ERA_RULES,
    MMAP_BASE,
    PAGE,
    PAGE_SHIFT,
    RW,
    X,
    anon_pages,
    layout,
    pages_of,
    vmas,
    write_all,
)


def test_mremap_shrink_grow_and_move_keep_the_pages(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    hs = pages_of(sim, pid, X, 4)
    index = [sim.page_info(h)["index"] for h in hs]
    x = X >> PAGE_SHIFT
    # shrink: do_munmap of the tail
    assert sim.mremap(pid, X, 4 * PAGE, 3 * PAGE) == X
    assert hs[3] not in anon_pages(sim)
    # grow in place: nothing after the VMA; the new page has no entry
    assert sim.mremap(pid, X, 3 * PAGE, 5 * PAGE, may_move=False) == X
    assert layout(sim, pid) == [(X, X + 5 * PAGE, x, RW)]
    assert pages_of(sim, pid, X, 5) == hs[:3] + [None, None]
    # something in the way: move (copy_vma keeps a faulted VMA's pgoff; entries move as
    # they are, the page's index with them)
    sim.mmap(pid, PAGE, addr=X + 5 * PAGE, prot="r")
    new = sim.mremap(pid, X, 5 * PAGE, 6 * PAGE)
    # get_unmapped_area searches top-down below mmap_base (the mm has nothing up there)
    assert new == MMAP_BASE - 6 * PAGE
    v = [v for v in vmas(sim, pid) if v["start"] == new][0]
    assert (v["end"], v["pgoff"]) == (new + 6 * PAGE, x)
    assert pages_of(sim, pid, new, 6) == hs[:3] + [None] * 3
    assert [sim.page_info(h)["index"] for h in hs[:3]] == index[:3]
    with pytest.raises(rmapsim.BadAddress):
        sim.page_at(pid, X)  # the old range is unmapped
    # MREMAP_FIXED over a mapped range unmaps what was there first
    sim.mmap(pid, 2 * PAGE, addr=X + 16 * PAGE)
    write_all(sim, pid, X + 16 * PAGE, 2)
    gone = pages_of(sim, pid, X + 16 * PAGE, 2)
    assert sim.mremap(pid, new, 2 * PAGE, 2 * PAGE, new_addr=X + 16 * PAGE) == X + 16 * PAGE
    assert pages_of(sim, pid, X + 16 * PAGE, 2) == hs[:2]
    assert not set(gone) & set(anon_pages(sim))
    # an unfaulted VMA moved gets pgoff = new_addr >> PAGE_SHIFT (copy_vma)
    sim.mmap(pid, PAGE, addr=X + 30 * PAGE, prot="r")
    assert sim.mremap(pid, X + 30 * PAGE, PAGE, PAGE, new_addr=X + 40 * PAGE) == X + 40 * PAGE
    v = [v for v in vmas(sim, pid) if v["start"] == X + 40 * PAGE][0]
    assert v["pgoff"] == x + 40 and v["anon_vma"] is None


def test_merge_next_to_mremap_grown_vma(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X)
    sim.mmap(pid, 2 * PAGE, addr=X + 4 * PAGE)
    # 2.6.34 mremap: vma_expandable -> vma_adjust(vma, start, addr + new_len): no vma_merge,
    # so [X, X+4P) and [X+4P, X+6P) stay two VMAs although they could merge
    assert sim.mremap(pid, X, 2 * PAGE, 4 * PAGE, may_move=False) == X
    x = X >> PAGE_SHIFT
    if ERA_RULES[sim.era]["mremap_merges_next"]:
        # 6.1+ (ca3d76b0aa80, "mm: add merging after mremap resize"): the grown VMA merges
        # with the compatible next one; an mprotect round trip of its first page splits
        # and merges back to the same single VMA
        assert layout(sim, pid) == [(X, X + 6 * PAGE, x, RW)]
        sim.check()
        sim.mprotect(pid, X, PAGE, "r")
        sim.mprotect(pid, X, PAGE, "rw")
        assert layout(sim, pid) == [(X, X + 6 * PAGE, x, RW)]
        return
    assert layout(sim, pid) == [(X, X + 4 * PAGE, x, RW), (X + 4 * PAGE, X + 6 * PAGE, x + 4, RW)]
    sim.check()
    # mprotect_fixup -> vma_merge(prev=NULL, [X, X+P)): next is [X+P, X+4P) -> case 8, the
    # range grows over it; [X+4P, X+6P) is no neighbour of the range and stays apart
    sim.mprotect(pid, X, PAGE, "r")
    sim.mprotect(pid, X, PAGE, "rw")
    assert layout(sim, pid) == [(X, X + 4 * PAGE, x, RW), (X + 4 * PAGE, X + 6 * PAGE, x + 4, RW)]
    sim.check()
