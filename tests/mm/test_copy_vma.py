"""copy_vma (mm/mmap.c, the mremap move path): the moved VMA merges with a neighbour at the
destination when vma_merge allows it, after the kernel's tools/testing/vma suite; allocation
failure changes nothing.

The kernel rules R1-R7 the comments cite are listed in merge_helpers.py.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import PAGE, page_at, snapshot
from merge_helpers import (
    ALL_ERAS,
    XP,
    A,
    allocs_of,
    assert_walks_complete,
    av_at,
    check_ok,
    clen,
    expect_shape,
    new_sim,
    pic,
    rel_vmas,
)

# ============================================================================ copy_vma


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("faulted", [False, True], ids=["unfaulted", "faulted"])
def test_copy_vma_move_no_merge(era, faulted):
    """Move backwards, no merge (the suite's test_copy_vma, first half):

    0123456789
       VV       ->  VV
    copy_vma gives an unfaulted VMA the pgoff of its new address (0) and a faulted one
    keeps pgoff 3 so page->index stays valid; a new VMA (1 allocation) plus, for a faulted
    VMA in chain eras, a clone of its 1-entry chain. The old VMA is unmapped whole (no
    split). Pages move with their PTEs and keep anon_vma and index."""
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(3))
    old_pages = []
    if faulted:
        sim.touch(p, A(3), 2 * PAGE, write=True)
        old_pages = [page_at(sim, p, A(3)), page_at(sim, p, A(4))]
    av = av_at(sim, p, 3)
    got, n = allocs_of(sim, sim.mremap, p, A(3), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0))
    assert got == A(0), pic(sim, p)
    assert n == 1 + (clen(era, 1) if faulted else 0), pic(sim, p)
    expect_shape(sim, p, [(0, 2, 3 if faulted else 0)], "moved")
    v = rel_vmas(sim, p)[0]
    assert v["anon_vma"] == av, pic(sim, p)
    assert v["chain_len"] == (clen(era, 1) if faulted else 0), pic(sim, p)
    if faulted:
        assert [page_at(sim, p, A(0)), page_at(sim, p, A(1))] == old_pages, pic(sim, p)
        for h, idx in zip(old_pages, (3, 4)):
            info = sim.page_info(h)
            got = (int(info["anon_vma"]), int(info["index"]), int(info["mapcount"]))
            assert got == (av, XP + idx, 1), pic(sim, p)
        c = sim.counts()
        got = (c["vma"], c["anon_vma"], c["anon_vma_chain"], c["page"])
        assert got == (1, 1, clen(era, 1), 2), pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_copy_vma_move_merges_into_next(era):
    """Move a VMA next to another so the two merge (the suite's test_copy_vma, second half):

    0123456789
    VV    NN    ->  NNNN (at 4..8)
    V is unfaulted, so copy_vma uses pgoff = 4 (its new address), which is contiguous with
    N's pgoff 6: vma_merge case 3, N grows down; nothing is allocated."""
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(0))
    sim.mmap(p, 2 * PAGE, addr=A(6))
    _, n = allocs_of(sim, sim.mremap, p, A(0), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(4))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(4, 8, 4)], "merged at destination")
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_copy_vma_faulted_move_out_and_back_merges(era):
    """A faulted range keeps its pgoff when moved, so it merges where it came from:

    0123456789abc          0123456789abc          0123456789abc
    VVVV            ->     VV        WW    ->     VVVV
    move [2,4) to [a,c): new VMA W, pgoff 2 (1 vm_area_struct + 1 chain entry), then the
    old range is cut off V (split: 1 + 1). Moving W back to [2,4): copy_vma's vma_merge
    finds prev V with the same anon_vma and pgoff 0 + 2 == 2: case 2, no allocation, and W
    is unmapped whole."""
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, addr=A(0))
    sim.touch(p, A(0), 4 * PAGE, write=True)
    av = av_at(sim, p, 0)
    pages = [page_at(sim, p, A(i)) for i in range(4)]
    _, n = allocs_of(sim, sim.mremap, p, A(2), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0xA))
    assert n == 2 * (1 + clen(era, 1)), pic(sim, p)
    expect_shape(sim, p, [(0, 2, 0), (0xA, 0xC, 2)], "moved out")
    assert [page_at(sim, p, A(0xA)), page_at(sim, p, A(0xB))] == pages[2:], pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)

    _, n = allocs_of(sim, sim.mremap, p, A(0xA), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(2))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(0, 4, 0)], "moved back and merged")
    v = rel_vmas(sim, p)[0]
    assert (v["anon_vma"], v["chain_len"]) == (av, clen(era, 1)), pic(sim, p)
    assert [page_at(sim, p, A(i)) for i in range(4)] == pages, pic(sim, p)
    c = sim.counts()
    got = (c["vma"], c["anon_vma"], c["anon_vma_chain"], c["page"])
    assert got == (1, 1, clen(era, 1), 4), pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("site,nth", [("vm_area_struct@copy_vma", 1), ("anon_vma_chain@anon_vma_clone", 2)])
def test_copy_vma_enomem_changes_nothing(era, site, nth):
    """copy_vma allocates the new VMA, then clones the chain; either failure frees what
    was allocated and mremap returns ENOMEM before any PTE moved. 2.6.33 has no clone: its
    second allocation does not exist and the move succeeds.

    0123456789
       VV       -> unchanged (OutOfMemory), or VV at 0..2 (2.6.33, nth=2)
    """
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(3))
    sim.touch(p, A(3), 2 * PAGE, write=True)
    before = snapshot(sim, allocations=False)
    sim.inject_enomem(nth=nth)
    if era == "2.6.33" and nth == 2:
        sim.mremap(p, A(3), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0))
        sim.inject_enomem(None)
        expect_shape(sim, p, [(0, 2, 3)], "moved")
    else:
        with pytest.raises(rmapsim.OutOfMemory, match=r"\(" + site + r"\)"):
            sim.mremap(p, A(3), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0))
        assert snapshot(sim, allocations=False) == before, pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ["6.18", "7.0", "7.0-rc1"])
def test_copy_vma_merge_that_fails_to_dup_falls_back_to_a_new_vma(era):
    """6.18.8+/6.19 vma_expand (7.0-rc6 mm/vma.c 1161-1204): when mremap's copy merges into
    an unfaulted VMA, dup_anon_vma(target, copied_from) runs before commit_merge; its ENOMEM
    returns with nothing changed, vma_merge_new_range returns NULL and copy_vma (1868-1882)
    goes on with vm_area_dup and anon_vma_clone: the move succeeds, into a VMA of its own.
    Layout: U = [X, X+1) unfaulted (made read-only first so that F did not merge with it at
    mmap), F = [X+1, X+2) written, moved to Z and back: pgoff continuous with U."""
    X, Z = 0x10000000, 0x20000000
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, PAGE, addr=X, prot="r")
    sim.mmap(p, PAGE, addr=X + PAGE)
    sim.touch(p, X + PAGE, PAGE, write=True)
    page = page_at(sim, p, X + PAGE)
    sim.mremap(p, X + PAGE, PAGE, PAGE, new_addr=Z)
    sim.mprotect(p, X, PAGE, "rw")
    f_av = sim.vmas(p)[1]["anon_vma"]
    before = dict(sim.allocation_sites())
    sim.inject_enomem(nth=1)  # the merge's dup_anon_vma: U imports F's one-entry chain
    assert sim.mremap(p, Z, PAGE, PAGE, new_addr=X + PAGE) == X + PAGE
    sim.inject_enomem(None)
    grew = {k: n - before.get(k, 0) for k, n in sim.allocation_sites().items() if n != before.get(k, 0)}
    # the failed import, then copy_vma's own VMA and its clone entry
    assert grew == {"anon_vma_chain@anon_vma_clone": 2, "vm_area_struct@copy_vma": 1}
    u, f = sim.vmas(p)
    assert (u["start"], u["end"], f["start"], f["end"]) == (X, X + PAGE, X + PAGE, X + 2 * PAGE)
    assert f["anon_vma"] == f_av and page_at(sim, p, X + PAGE) == page
    if era == "7.0-rc1":
        # the failed clone's cleanup leaves U pointing at F's anon_vma, off its chain
        assert (u["anon_vma"], u["chain_len"]) == (f_av, 0)
        with pytest.raises(rmapsim.InvariantViolation, match="invariant 3"):
            sim.check()
    else:
        assert (u["anon_vma"], u["chain_len"]) == (None, 0)
        sim.check()
