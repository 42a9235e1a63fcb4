"""Issue 9: the aggregate-only walk and the simulator memory accounting."""

from __future__ import annotations

import numpy as np
import pytest

import rmapsim

P = 4096


def world(era: str) -> rmapsim.Simulator:
    """A fork family with COW, a split, an unfaulted read and a swapped page."""
    sim = rmapsim.Simulator(era=era)
    parent = sim.spawn()
    a = sim.mmap(parent, 24 * P)
    sim.touch(parent, a, 24 * P)
    kids = sim.fork_many(parent, 6)
    sim.touch_many(kids[:3], a, 10 * P)
    sim.mprotect(int(kids[4]), a + 4 * P, 2 * P, "r")
    b = sim.mmap(parent, 4 * P)
    sim.touch(parent, b, 4 * P, write=False)
    sim.try_to_unmap([sim.page_at(parent, a + 20 * P)])
    return sim


@pytest.mark.parametrize("era", rmapsim.eras())
@pytest.mark.parametrize("walk", ["rmap_walk", "page_referenced"])
def test_aggregate_walk_agrees_with_the_per_page_rows(era, walk):
    sim = world(era)
    rows = getattr(sim, walk)()
    for threads in (1, 2):
        agg = getattr(sim, walk)(aggregate=True, threads=threads)
        s = rows.summary()
        assert agg["walks"] == s["walks"] == len(rows)
        for k in ("total_vmas_visited", "total_ptes_checked", "total_mappings_found", "total_mapcount", "max"):
            assert agg[k] == s[k], k
        assert agg["total_vmas_in_range"] == rows.total("vmas_in_range")
        assert agg["total_tree_nodes_visited"] == rows.total("tree_nodes_visited")
        assert agg["histogram"] == rows.histogram()
        for k in ("mean", "p50", "p99"):
            assert agg[k] == pytest.approx(s[k], rel=1e-12), k
        assert agg["kind"] == walk


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.7", "6.18"])
def test_aggregate_full_walk_over_many_chunks_agrees_with_the_rows(era):
    """The full aggregate walk goes anon_vma by anon_vma over chunks of 65,536 page
    slots; 120 of 240 children COWing 600 pages span two chunks, with a parent anon_vma whose pages
    are mapped everywhere, children that COWed, one that split its VMA (an interval-tree
    node of a different range), one whose pages a COW moved, and freed slots in between."""
    sim = rmapsim.Simulator(era=era)
    parent = sim.spawn()
    a = sim.mmap(parent, 600 * P)
    sim.touch(parent, a, 600 * P)
    kids = sim.fork_many(parent, 240)
    sim.touch_many(kids[::2], a, 600 * P)
    sim.mprotect(int(kids[1]), a + 100 * P, 10 * P, "r")
    sim.munmap(int(kids[2]), a + 300 * P, 50 * P)
    sim.exit(int(kids[4]))
    rows = sim.rmap_walk()
    assert len(rows) > 65536
    chosen = list(sim.anon_pages()[::3]) + list(sim.anon_pages()[:5])
    chosen_rows = sim.rmap_walk(chosen)
    for threads in (1, 2, 4, None):
        for agg, r in (
            (sim.rmap_walk(aggregate=True, threads=threads), rows),
            (sim.rmap_walk(chosen, aggregate=True, threads=threads), chosen_rows),
        ):
            assert agg["walks"] == len(r)
            for col in (
                "vmas_visited",
                "vmas_in_range",
                "ptes_checked",
                "mappings_found",
                "mapcount",
                "tree_nodes_visited",
            ):
                assert agg[f"total_{col}"] == r.total(col), col
            assert agg["histogram"] == r.histogram()


def test_aggregate_walk_of_chosen_pages_and_percentiles():
    sim = world("2.6.33")
    pages = sim.anon_pages()[::5]
    rows = sim.rmap_walk(pages)
    agg = sim.rmap_walk(pages, aggregate=True)
    assert agg["walks"] == len(rows) == len(pages)
    assert agg["total_vmas_visited"] == rows.total()
    for q, k in ((50, "p50"), (99, "p99")):
        assert agg[k] == pytest.approx(np.percentile(rows.vmas_visited, q))


def test_aggregate_walk_of_nothing():
    sim = rmapsim.Simulator(era="6.18")
    agg = sim.rmap_walk(aggregate=True)
    assert agg["walks"] == 0 and agg["max"] == 0 and agg["total_vmas_visited"] == 0
    assert np.isnan(agg["mean"]) and agg["histogram"] == {}


@pytest.mark.parametrize("bad", [1, "yes", None, 0.0])
def test_aggregate_must_be_a_bool(bad):
    sim = world("6.18")
    for walk in (sim.rmap_walk, sim.page_referenced):
        with pytest.raises(rmapsim.InvalidArgument, match=repr(bad).replace(".", r"\.")):
            walk(aggregate=bad)


def test_aggregate_walk_reports_stale_handles():
    sim = world("6.18")
    p = sim.spawn()
    a = sim.mmap(p, P)
    sim.touch(p, a, P)
    h = sim.page_at(p, a)
    sim.munmap(p, a, P)
    with pytest.raises(rmapsim.StaleHandle, match=hex(h)):
        sim.rmap_walk([h], aggregate=True)


KINDS = ("mm", "vma", "anon_vma", "anon_vma_chain", "page", "pte", "swap_slot")


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.7", "6.18"])
def test_memory_usage_counts_match_counts(era):
    sim = world(era)
    m, c = sim.memory_usage(), sim.counts()
    assert set(m) == set(KINDS) | {"total", "bytes_per_pte"}
    for kind in ("mm", "vma", "anon_vma", "anon_vma_chain", "page", "pte", "swap_slot"):
        assert m[kind]["live"] == c[kind], kind
    for kind in KINDS:
        u = m[kind]
        assert u["slots"] >= u["live"] and u["slot_bytes"] > 0
        assert u["bytes"] >= u["slots"] * u["slot_bytes"]
        assert u["capacity_bytes"] >= u["slots"] * u["slot_bytes"]
    assert m["pte"]["slot_bytes"] == 8
    assert m["total"]["bytes"] == sum(m[k]["bytes"] for k in KINDS)
    assert m["bytes_per_pte"] == m["total"]["bytes"] / c["pte"]


def test_memory_usage_follows_the_state():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    a = sim.mmap(p, 100 * P)
    before = sim.memory_usage()
    assert before["page"]["live"] == 0 and before["pte"]["live"] == 0
    assert np.isnan(before["bytes_per_pte"])
    sim.touch(p, a, 100 * P)
    after = sim.memory_usage()
    assert after["page"]["live"] == 100 and after["pte"]["live"] == 100
    assert after["page"]["bytes"] == 100 * after["page"]["slot_bytes"]
    sim.munmap(p, a, 100 * P)
    freed = sim.memory_usage()
    # freed slots stay in the arena (on its free list), as a slab keeps its pages
    assert freed["page"]["live"] == 0 and freed["page"]["slots"] == 100


@pytest.mark.parametrize("era", ["2.6.34", "6.18"])
def test_aggregate_try_to_unmap_agrees_and_leaves_the_same_state(era):
    a, b = world(era), world(era)
    pages = list(a.anon_pages()[::2]) + list(a.anon_pages()[:3])  # with repeats
    rows = a.try_to_unmap(pages)
    agg = b.try_to_unmap(pages, aggregate=True)
    s = rows.summary()
    for k in ("walks", "max", "total_vmas_visited", "total_ptes_checked", "total_mappings_found", "total_mapcount"):
        assert agg[k] == s[k], k
    assert agg["histogram"] == rows.histogram() and agg["kind"] == "try_to_unmap"
    assert a.counts() == b.counts()
    assert [int(p) for p in a.anon_pages()] == [int(p) for p in b.anon_pages()]
    a.check()
    b.check()
    with pytest.raises(rmapsim.InvalidArgument, match="'no'"):
        b.try_to_unmap(aggregate="no")
