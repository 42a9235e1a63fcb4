"""Issue 6: parallel batch walks (identical at any thread count) and the contention model."""

from __future__ import annotations

import numpy as np
import pytest

import rmapsim
from rmapsim._stats import COLUMNS

P = 4096


def storm(era: str, n: int = 20, p: int = 30) -> rmapsim.Simulator:
    sim = rmapsim.Simulator(era=era)
    parent = sim.spawn()
    a = sim.mmap(parent, p * P)
    sim.touch(parent, a, p * P)
    sim.touch_many(sim.fork_many(parent, n), a, p * P)
    return sim


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.7", "6.18"])
def test_walks_identical_for_threads_1_2_4_and_all(era):
    sim = storm(era)
    for walk in (sim.rmap_walk, sim.page_referenced):
        base = walk(threads=1)
        for t in (2, 4, None):
            other = walk(threads=t)
            for c in COLUMNS:
                assert np.array_equal(getattr(other, c), getattr(base, c)), (walk.__name__, t, c)
        agg = walk(threads=1, aggregate=True)
        assert agg["walks"] == len(base) and agg["total_vmas_visited"] == base.total()
        for t in (2, 4, None):
            assert walk(threads=t, aggregate=True) == agg, (walk.__name__, t)


@pytest.mark.parametrize("threads", [2, 4])
def test_parallel_try_to_unmap_leaves_the_same_state(threads):
    a, b = storm("6.18"), storm("6.18")
    pages = list(a.anon_pages()[::3]) + list(a.anon_pages()[:4])  # with repeats
    ra, rb = a.try_to_unmap(pages, threads=1), b.try_to_unmap(pages, threads=threads)
    for c in COLUMNS:
        assert np.array_equal(getattr(ra, c), getattr(rb, c)), c
    assert a.counts() == b.counts()
    for pid in a.pids():
        assert a.render_layout(int(pid)) == b.render_layout(int(pid))
    b.check()


def test_bad_thread_counts():
    sim = storm("6.18", 2, 2)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(rmapsim.InvalidArgument, match="threads"):
            sim.rmap_walk(threads=bad)


def test_contention_picture_of_the_2010_thread():
    # 16 CPUs, one walk per page: 2.6.33's family lock is held N+1 candidates per walk
    # while every walk needs it; 2.6.34 spreads walks over per-anon_vma locks; 3.8's
    # walks share the rwsem.
    share = {e: storm(e, 30, 20).contention(cpus=16).waiting_share() for e in ("2.6.33", "2.6.34", "2.6.35", "3.8")}
    assert share["2.6.33"] > 0.5
    assert share["2.6.34"] < 0.2
    assert share["3.8"] == 0.0
    # the root lock of 2.6.35 serialises the whole fork tree again (short holds, one lock)
    assert share["2.6.35"] > share["2.6.34"]


def test_rwsem_readers_share_and_writers_interact():
    sim = storm("3.8", 10, 10)
    readers = sim.contention(cpus=8)
    assert readers.wait_time == 0 and len(readers.lock_id) == 1  # one root, shared walks
    mixed = sim.contention(cpus=8, writer_every=1, writer_hold=20)
    assert mixed.wait_time > 0 and mixed.makespan > readers.makespan
    s = mixed.summary()
    assert s["sleeping_share"] > 0 and s["spinning_share"] == 0


def test_contention_exact_on_a_tiny_case():
    sim = rmapsim.Simulator(era="2.6.33")
    p = sim.spawn()
    a = sim.mmap(p, 2 * P)
    sim.touch(p, a, 2 * P)
    # two pages, both mapped only by the parent: page_referenced finds each at the first
    # candidate; two CPUs, hold 1 each, same lock, no lock-free work: the second waits 1
    r = sim.contention(cpus=2, per_candidate=1, handoff=0, outside=0)
    assert (r.makespan, r.wait_time, r.hold_time) == (2, 1, 2)


def test_contention_bad_arguments():
    sim = storm("6.18", 1, 1)
    with pytest.raises(rmapsim.InvalidArgument, match="cpus"):
        sim.contention(cpus=0)
    with pytest.raises(rmapsim.InvalidArgument, match="outside"):
        sim.contention(outside=-1)
