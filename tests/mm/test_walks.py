"""rmap walks (mm/rmap.c rmap_walk_anon, page_referenced, try_to_unmap): which VMAs a walk visits
(the anon_vma's list, or the interval tree's entries covering the page index, 3.7+) and which
lock it takes (own anon_vma; the root from 2.6.35; shared from 3.8). Expected values are
derived by hand from each era's rules (docs/eras.md).
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import BASE, CHAIN, TREE, P


@pytest.mark.parametrize("era", CHAIN)
def test_split_region_walks_visit_every_piece_or_only_covering_ones(era):
    k, n = 6, 4
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, k * P, addr=BASE)
    sim.touch(p, BASE, k * P)
    for i in range(1, k, 2):
        sim.mprotect(p, BASE + i * P, P, "r")
    assert len(sim.vmas(p)) == k
    sim.fork_many(p, n)
    sim.check()
    st = sim.rmap_walk([sim.page_at(p, BASE + 2 * P)])
    # the parent page's anon_vma links every piece of every process: k(n+1) entries,
    # of which n+1 cover the page's index
    assert int(st.vmas_in_range[0]) == int(st.mappings_found[0]) == n + 1
    want = n + 1 if era in TREE else k * (n + 1)
    assert int(st.vmas_visited[0]) == want
    assert (int(st.tree_nodes_visited[0]) >= n + 1) == (era in TREE)


@pytest.mark.parametrize(
    "era,scope,shared",
    [
        ("2.6.34", "own", False),
        ("2.6.35", "root", False),
        ("3.0", "root", False),
        ("3.8", "root", True),
        ("6.18", "root", True),
    ],
)
def test_walk_locks(era, scope, shared):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = sim.mmap(p, P)
    sim.touch(p, a, P)
    c = sim.fork(p)
    sim.touch(c, a, P)  # the child's copy lives in the child's own anon_vma
    page = sim.page_at(c, a)
    st = sim.page_referenced([page])
    own = sim.vmas(c)[0]["anon_vma"]
    root = sim.vmas(p)[0]["anon_vma"]
    assert int(st.anon_vma[0]) == own
    assert int(st.lock_id[0]) == (own if scope == "own" else root)
    assert int(st.lock_mode[0]) == (rmapsim.LOCK_SHARED if shared else rmapsim.LOCK_EXCLUSIVE)
