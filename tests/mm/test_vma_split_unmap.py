"""munmap and the splits it makes (mm/mmap.c do_munmap, __split_vma, unmap_region): pgoffs of
the pieces, what each piece keeps, and what is freed.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

from helpers import (
    PAGE,
    PAGE_SHIFT,
    RW,
    X,
    assert_counts,
    expected_visits,
    is_chain_era,
    layout,
    no_page_outside_vmas,
    pages_of,
    vmas,
    walk_one,
    write_all,
)

# --------------------------------------------------------------------------- munmap


def test_munmap_whole_vma_frees_everything(sim):
    pid = sim.spawn()
    sim.mmap(pid, 3 * PAGE, addr=X)
    write_all(sim, pid, X, 3)
    sim.munmap(pid, X, 3 * PAGE)
    # unmap_vmas zaps 3 exclusive pages (freed), free_pgtables -> unlink_anon_vmas frees the
    # AVC and the now-empty anon_vma
    assert vmas(sim, pid) == []
    assert_counts(sim, mm=1, vma=0, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


def test_munmap_middle_splits_with_right_pgoffs(sim):
    pid = sim.spawn()
    sim.mmap(pid, 5 * PAGE, addr=X)
    write_all(sim, pid, X, 5)
    old = pages_of(sim, pid, X, 5)
    av = vmas(sim, pid)[0]["anon_vma"]
    sim.munmap(pid, X + 2 * PAGE, PAGE)
    x = X >> PAGE_SHIFT
    # pieces keep the linear pgoff: left starts at x, right at x + 3
    assert layout(sim, pid) == [
        (X, X + 2 * PAGE, x, RW),
        (X + 3 * PAGE, X + 5 * PAGE, x + 3, RW),
    ]
    vs = vmas(sim, pid)
    assert [v["anon_vma"] for v in vs] == [av, av]
    if is_chain_era(sim):
        # __split_vma -> anon_vma_clone: the new piece gets a copy of the singular chain
        assert [v["chain_len"] for v in vs] == [1, 1]
    assert no_page_outside_vmas(sim, pid, X + 2 * PAGE)
    assert pages_of(sim, pid, X, 2) == old[:2]
    assert pages_of(sim, pid, X + 3 * PAGE, 2) == old[3:]
    assert_counts(sim, vma=2, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=4, pte=4)


def test_munmap_middle_in_forked_child(sim):
    parent = sim.spawn()
    sim.mmap(parent, 5 * PAGE, addr=X)
    write_all(sim, parent, X, 5)
    shared = pages_of(sim, parent, X, 5)
    child = sim.fork(parent)
    sim.munmap(child, X + 2 * PAGE, PAGE)
    vs = vmas(sim, child)
    assert len(vs) == 2
    assert vs[0]["anon_vma"] == vs[1]["anon_vma"]
    if is_chain_era(sim):
        # the child's VMA had chain [C, AP]; the split clones it: both pieces length 2
        assert [v["chain_len"] for v in vs] == [2, 2]
        # AP, C; AVCs: parent 1 + child 2 pieces * 2
        assert_counts(sim, anon_vma=2, anon_vma_chain=5)
    else:
        # 2.6.33: the whole family shares one anon_vma, the pieces included
        assert vs[0]["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    # the page at X+2P is still mapped by the parent: not freed, mapcount drops to 1
    assert_counts(sim, page=5, pte=9)
    assert walk_one(sim, shared[2])["mapcount"] == 1
    # walk of a page in the child's left piece: candidates are the parent VMA and both child
    # pieces (2.6.33: the family list; 2.6.34: AP's list, one AVC per piece), but only the
    # parent VMA and the left piece cover its pgoff (vma_address -EFAULT for the right one);
    # the interval tree (3.7+) yields only those two
    row = walk_one(sim, shared[0])
    assert row["vmas_visited"] == expected_visits(sim, on_list=3, covering=2)
    assert row["vmas_in_range"] == 2
    assert row["ptes_checked"] == 2
    assert row["mappings_found"] == row["mapcount"] == 2


def test_munmap_head_and_tail(sim):
    pid = sim.spawn()
    sim.mmap(pid, 5 * PAGE, addr=X)
    write_all(sim, pid, X, 5)
    sim.munmap(pid, X, PAGE)
    sim.munmap(pid, X + 4 * PAGE, PAGE)
    x = X >> PAGE_SHIFT
    assert layout(sim, pid) == [(X + PAGE, X + 4 * PAGE, x + 1, RW)]
    # the split-off pieces were unmapped with their AVC: one VMA, one AVC left
    assert_counts(sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=3, pte=3)
