"""The seed scenario of the 2010 anon_vma_chain thread, at small sizes.

A parent maps P pages and writes them, forks N children (fork_many), every child writes every
page (touch_many), then every anon page is walked.  Expected values (docs/contract.md#reference-numbers, derived
from the kernel lists):

* 2.6.33: one anon_vma for the family; its list holds the parent VMA and N child VMAs, and every
  page (parent's or COW copy) has page->mapping = that anon_vma -> every walk visits N + 1.
* 2.6.34: the parent's anon_vma AP lists the parent AVC + one cloned AVC per child (N + 1);
  child k's COW copies live in its own anon_vma C_k whose list holds only child k's own AVC (1).
  Sum over walks = P(N + 1) + P*N = P(2N + 1); mean = (2N + 1) / (N + 1).
* Each child write finds mapcount >= 2 (the parent still maps the page) -> always a copy, so
  P*(N + 1) pages each mapped exactly once.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

import rmapsim

from helpers import (
    ERA_RULES,
    PAGE,
    counts,
    is_chain_era,
    page_at,
    pids,
    scan_rows,
    vmas,
)

SIZES = [(1, 1), (3, 5), (10, 7), (50, 20)]


def build_seed(sim, n, p):
    parent = sim.spawn()
    addr = sim.mmap(parent, p * PAGE)
    sim.touch(parent, addr, p * PAGE, write=True)
    kids = sorted(int(k) for k in sim.fork_many(parent, n))
    assert len(kids) == n
    sim.touch_many(kids, addr, p * PAGE, write=True)
    # owner: page handle -> (fork order k: 0 = parent, 1..n = k-th child, pid)
    owner = {}
    for k, pid in enumerate([parent] + kids):
        for i in range(p):
            h = page_at(sim, pid, addr + i * PAGE)
            assert h is not None
            assert h not in owner, "a page is mapped by two processes after every child wrote"
            owner[h] = (k, pid)
    return parent, kids, addr, owner


@pytest.mark.parametrize("n,p", SIZES)
def test_seed_counts(sim, n, p):
    parent, kids, addr, owner = build_seed(sim, n, p)
    c = counts(sim)
    assert c["mm"] == n + 1
    assert c["vma"] == n + 1
    assert c["page"] == p * (n + 1)
    assert c["pte"] == p * (n + 1)
    if is_chain_era(sim):
        # one anon_vma per process; AVCs: parent 1 + each child (clone 1 + own 1)
        assert c["anon_vma"] == n + 1
        assert c["anon_vma_chain"] == 2 * n + 1
        assert [vmas(sim, k)[0]["chain_len"] for k in kids] == [2] * n
    else:
        assert c["anon_vma"] == 1
        assert c["anon_vma_chain"] == 0
    assert sorted(owner) == sorted(int(h) for h in sim.anon_pages())


@pytest.mark.parametrize("n,p", SIZES)
def test_seed_rmap_walk(sim, n, p):
    parent, kids, addr, owner = build_seed(sim, n, p)
    stats = sim.rmap_walk(pages=sim.anon_pages())
    rows = scan_rows(stats)
    assert len(rows) == p * (n + 1)
    assert sorted(r["page"] for r in rows) == sorted(owner)
    own_av = {pid: vmas(sim, pid)[0]["anon_vma"] for pid in [parent] + kids}
    for r in rows:
        k, pid = owner[r["page"]]
        # every page is mapped exactly once and the full walk finds that mapping
        assert r["mapcount"] == 1
        assert r["mappings_found"] == 1
        # all candidate VMAs cover the same range with the same pgoff: all in range, each
        # gets one PTE lookup
        assert r["vmas_in_range"] == r["vmas_visited"]
        assert r["ptes_checked"] == r["vmas_visited"]
        rules = ERA_RULES[sim.era]
        if rules["index"] == "list":
            assert r["tree_nodes_visited"] == 0
        else:
            # interval tree (3.7+): every entry of the anon_vma covers the page's index, so
            # the search reports each node it visits -- at least the candidates
            assert r["tree_nodes_visited"] >= r["vmas_visited"]
        # spinlock / exclusive rwsem; walks take the rwsem shared from 3.8
        assert r["lock_mode"] == (rmapsim.LOCK_SHARED if rules["lock_shared"] else rmapsim.LOCK_EXCLUSIVE)
        if is_chain_era(sim):
            assert r["anon_vma"] == own_av[pid]  # COW copies go to the writer's anon_vma
            assert r["vmas_visited"] == (n + 1 if k == 0 else 1)
        else:
            assert r["anon_vma"] == own_av[parent]
            assert r["vmas_visited"] == n + 1
    total = sum(r["vmas_visited"] for r in rows)
    walks = len(rows)
    if is_chain_era(sim):
        assert total == p * (2 * n + 1)
        expected_mean = Fraction(2 * n + 1, n + 1)
    else:
        assert total == p * (n + 1) ** 2
        expected_mean = Fraction(n + 1)
    assert Fraction(total, walks) == expected_mean
    # ScanStats helpers agree with the columns
    assert len(stats) == walks
    assert stats.mean() == pytest.approx(float(expected_mean))
    assert stats.mean("vmas_visited") == pytest.approx(float(expected_mean))
    s = stats.summary()
    assert int(s["walks"]) == walks
    assert int(s["total_vmas_visited"]) == total
    assert int(s["max"]) == n + 1
    assert float(s["mean"]) == pytest.approx(float(expected_mean))
    # median: 2.6.33 every walk costs n + 1; 2.6.34 n of every n + 1 walks cost 1
    assert stats.percentile(50) == pytest.approx(float(s["p50"]))
    if not is_chain_era(sim):
        assert float(s["p50"]) == pytest.approx(n + 1)
    elif n >= 2:
        assert float(s["p50"]) == pytest.approx(1)


@pytest.mark.parametrize("n,p", SIZES)
def test_seed_locks(sim, n, p):
    parent, kids, addr, owner = build_seed(sim, n, p)
    rows = scan_rows(sim.rmap_walk())  # pages=None: every anon page
    assert len(rows) == p * (n + 1)
    lock_of = {}
    for r in rows:
        lock_of.setdefault(r["anon_vma"], set()).add(r["lock_id"])
    assert all(len(ls) == 1 for ls in lock_of.values())
    assert len(lock_of) == (n + 1 if is_chain_era(sim) else 1)
    if ERA_RULES[sim.era]["lock_root"]:
        # 2.6.35+ (012f18004da3) lock the root of the fork tree: every child's anon_vma
        # was forked from the parent's, the root of all of them
        root = vmas(sim, parent)[0]["anon_vma"]
        assert {next(iter(ls)) for ls in lock_of.values()} == {root}
        return
    # 2.6.33/2.6.34 lock the page's own anon_vma (no root lock before 2.6.35): the lock is a
    # function of the anon_vma and distinct anon_vmas have distinct locks
    assert len({next(iter(ls)) for ls in lock_of.values()}) == len(lock_of)
    assert len(lock_of) == (n + 1 if is_chain_era(sim) else 1)


@pytest.mark.parametrize("n,p", SIZES)
def test_seed_page_referenced_stops_early(sim, n, p):
    """page_referenced_anon breaks out of the list walk once it has seen page_mapcount
    mappings.  List order: prepare put the parent's VMA/AVC on the empty list first, and fork
    appends each child (2.6.33 anon_vma_link and 2.6.34 anon_vma_chain_link use
    list_add_tail), so the order is parent, child 1, ..., child n.

    2.6.34: parent pages are found at the first AP entry; a child's page lives in its own
    anon_vma with one entry -> every walk visits exactly 1.
    2.6.33: the parent's pages are found at entry 1, child k's copies at entry k + 1:
    total = P * (1 + sum_{k=1..n} (k + 1)) = P * (1 + n(n + 3)/2)."""
    parent, kids, addr, owner = build_seed(sim, n, p)
    rows = scan_rows(sim.page_referenced(pages=sim.anon_pages()))
    assert len(rows) == p * (n + 1)
    for r in rows:
        k, pid = owner[r["page"]]
        assert r["mappings_found"] == r["mapcount"] == 1
        if is_chain_era(sim):
            assert r["vmas_visited"] == 1
        else:
            assert r["vmas_visited"] == k + 1, f"page of fork-order {k} (pid {pid})"
    total = sum(r["vmas_visited"] for r in rows)
    if is_chain_era(sim):
        assert total == p * (n + 1)
    else:
        assert total == p * (1 + n * (n + 3) // 2)


def test_seed_state_is_left_intact_by_walks(sim):
    """Walks are read-only: counts, layouts and page mappings do not change."""
    n, p = 3, 4
    parent, kids, addr, owner = build_seed(sim, n, p)
    before = (counts(sim), {pid: vmas(sim, pid) for pid in pids(sim)})
    sim.rmap_walk()
    sim.page_referenced()
    assert (counts(sim), {pid: vmas(sim, pid) for pid in pids(sim)}) == before
    for h, (_k, pid) in owner.items():
        i = [page_at(sim, pid, addr + j * PAGE) for j in range(p)]
        assert h in i
    assert sorted(owner) == sorted(int(h) for h in sim.anon_pages())
