"""Faults (mm/memory.c handle_mm_fault): do_anonymous_page (zero page, first write), do_wp_page
(COW after fork, reuse by the sole mapper), and touch_many.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import rmapsim

from helpers import (
    ERA_RULES,
    PAGE,
    X,
    anon_pages,
    assert_counts,
    counts,
    is_chain_era,
    layout,
    page_at,
    pages_of,
    pids,
    vmas,
    walk_one,
    write_all,
)

# --------------------------------------------------------------------------- touch


def test_read_touch_maps_zero_page(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X, prot="r")
    sim.touch(pid, X, 4 * PAGE, write=False)
    # do_anonymous_page on a read fault installs the shared zero page: no anon_vma_prepare,
    # no page allocated, but 4 PTEs now exist
    assert pages_of(sim, pid, X, 4) == [None] * 4
    assert vmas(sim, pid)[0]["anon_vma"] is None
    assert_counts(sim, anon_vma=0, anon_vma_chain=0, page=0, pte=4)
    assert anon_pages(sim) == []


def test_write_after_read_replaces_zero_page(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    sim.touch(pid, X, 4 * PAGE, write=False)
    sim.touch(pid, X, PAGE, write=True)
    # do_wp_page on the zero page: not an anon page -> anon_vma_prepare + new page; the PTE
    # is replaced, so the PTE count stays 4
    p = pages_of(sim, pid, X, 4)
    assert p[0] is not None and p[1:] == [None] * 3
    assert_counts(sim, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=1, pte=4)


def test_write_touch_creates_one_anon_vma(sim):
    pid = sim.spawn()
    n = 3
    sim.mmap(pid, n * PAGE, addr=X)
    write_all(sim, pid, X, n)
    # first write fault: anon_vma_prepare allocates one anon_vma (2.6.34: plus one AVC);
    # the later faults find vma->anon_vma set; one new page per faulted address
    assert_counts(
        sim,
        vma=1,
        anon_vma=1,
        anon_vma_chain=1 if is_chain_era(sim) else 0,
        page=n,
        pte=n,
    )
    [v] = vmas(sim, pid)
    assert v["anon_vma"] is not None
    if is_chain_era(sim):
        assert v["chain_len"] == 1
    hs = pages_of(sim, pid, X, n)
    assert None not in hs and len(set(hs)) == n
    assert sorted(hs) == anon_pages(sim)
    for h in hs:
        row = walk_one(sim, h)
        # page->mapping = vma->anon_vma; the list holds this one VMA; it maps the page once
        assert row["page"] == h
        assert row["anon_vma"] == v["anon_vma"]
        assert row["vmas_visited"] == 1
        assert row["vmas_in_range"] == 1
        assert row["ptes_checked"] == 1
        assert row["mappings_found"] == row["mapcount"] == 1
        rules = ERA_RULES[sim.era]
        # list eras have no interval tree; in a tree era (3.7+) the one entry is the tree's
        # only node, and the lookup of the page's index visits it
        assert row["tree_nodes_visited"] == (0 if rules["index"] == "list" else 1)
        # the anon_vma lock: a spinlock / exclusive rwsem, taken shared by walks from 3.8
        assert row["lock_mode"] == (rmapsim.LOCK_SHARED if rules["lock_shared"] else rmapsim.LOCK_EXCLUSIVE)


def test_second_write_changes_nothing(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X)
    write_all(sim, pid, X, 2)
    before = (counts(sim), pages_of(sim, pid, X, 2), vmas(sim, pid))
    # the PTEs are already present and writable: no fault at all
    write_all(sim, pid, X, 2)
    assert (counts(sim), pages_of(sim, pid, X, 2), vmas(sim, pid)) == before


def test_touch_spanning_two_vmas(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    sim.mmap(pid, 2 * PAGE, addr=X + 2 * PAGE, prot="rwx")
    write_all(sim, pid, X, 4)
    # the first fault creates an anon_vma for the rw VMA; the rwx VMA's prepare finds it as a
    # compatible prev neighbour with a singular chain and reuses it (both eras)
    vs = vmas(sim, pid)
    assert len(vs) == 2 and vs[0]["anon_vma"] == vs[1]["anon_vma"] is not None
    assert_counts(sim, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=4, pte=4)


# --------------------------------------------------------------------------- COW


def test_child_write_after_fork_copies(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    shared = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.touch(child, X, PAGE, write=True)
    new = page_at(sim, child, X)
    # mapcount was 2: do_wp_page copies into a new page in the child's vma->anon_vma
    assert new is not None and new != shared[0]
    assert page_at(sim, parent, X) == shared[0]
    assert page_at(sim, child, X + PAGE) == shared[1]  # untouched page still shared
    assert_counts(sim, page=3, pte=4)
    prow = walk_one(sim, shared[0])
    assert prow["mapcount"] == prow["mappings_found"] == 1
    # the parent's page is still scanned through the list holding parent + child VMA
    assert prow["vmas_visited"] == 2
    crow = walk_one(sim, new)
    assert crow["mapcount"] == crow["mappings_found"] == 1
    assert crow["anon_vma"] == vmas(sim, child)[0]["anon_vma"]
    if is_chain_era(sim):
        # the child's own anon_vma lists only the child's VMA
        assert crow["vmas_visited"] == 1
    else:
        assert crow["vmas_visited"] == 2
    assert walk_one(sim, shared[1])["mapcount"] == 2


def test_parent_write_after_fork_copies(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    shared = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.touch(parent, X, PAGE, write=True)
    new = page_at(sim, parent, X)
    assert new is not None and new != shared[0]
    assert page_at(sim, child, X) == shared[0]
    assert_counts(sim, page=3, pte=4)
    prow = walk_one(sim, new)
    assert prow["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
    assert prow["mapcount"] == prow["mappings_found"] == 1
    crow = walk_one(sim, shared[0])
    assert crow["mapcount"] == crow["mappings_found"] == 1


def test_sole_mapper_reuses_page_after_parent_exit(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    parent_av = vmas(sim, parent)[0]["anon_vma"]
    child = sim.fork(parent)
    hs = pages_of(sim, child, X, 2)
    sim.exit(parent)
    if is_chain_era(sim):
        # AP survives: the child's chain still links it (child: AVCs for C and AP)
        assert_counts(sim, anon_vma=2, anon_vma_chain=2)
    else:
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    assert walk_one(sim, hs[0])["anon_vma"] == parent_av
    sim.touch(child, X, PAGE, write=True)
    # mapcount 1 -> reuse_swap_page says reuse: no copy
    assert page_at(sim, child, X) == hs[0]
    assert_counts(sim, page=2, pte=2)
    row = walk_one(sim, hs[0])
    assert row["anon_vma"] == vmas(sim, child)[0]["anon_vma"]
    assert row["mapcount"] == row["mappings_found"] == 1
    assert row["vmas_visited"] == 1
    if is_chain_era(sim):
        # page_move_anon_rmap: the page left the parent's anon_vma
        assert row["anon_vma"] != parent_av
        # the untouched page stays where it was
        assert walk_one(sim, hs[1])["anon_vma"] == parent_av


def test_sole_mapper_reuses_page_after_child_exit(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    hs = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.exit(child)
    # 2.6.34: the child's own anon_vma and both its AVCs are freed at exit
    assert_counts(sim, mm=1, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=2)
    sim.touch(parent, X, 2 * PAGE, write=True)
    assert pages_of(sim, parent, X, 2) == hs
    for h in hs:
        row = walk_one(sim, h)
        assert row["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
        assert row["vmas_visited"] == 1


# --------------------------------------------------------------------------- many / memory


def test_fork_many_and_touch_many(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    hs = pages_of(sim, parent, X, 2)
    kids = [int(k) for k in sim.fork_many(parent, 3)]
    assert len(kids) == 3 and len(set(kids)) == 3
    assert all(k > parent for k in kids)
    assert pids(sim) == sorted([parent] + kids)
    for k in kids:
        assert layout(sim, k) == layout(sim, parent)
        assert pages_of(sim, k, X, 2) == hs
    if is_chain_era(sim):
        assert_counts(sim, anon_vma=4, anon_vma_chain=7)  # 1 + n ; 1 + 2n
    else:
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    sim.touch_many(kids, X, 2 * PAGE, write=True)
    # every child copies both pages (the parent still maps the originals, mapcount > 1)
    assert_counts(sim, page=2 * 4, pte=2 * 4)
    seen = set(hs)
    for k in kids:
        ks = pages_of(sim, k, X, 2)
        assert not (set(ks) & seen)
        seen |= set(ks)
    for h in hs:
        assert walk_one(sim, h)["mapcount"] == 1
