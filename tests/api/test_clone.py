"""Simulator.clone (and copy.copy / copy.deepcopy), pickle and to_bytes/from_bytes: an
independent deep copy, or a restored snapshot, whose future is the original's. The test is future behaviour: the same random operations on the original
and the copy give the same results, walks and states bit for bit, and the copy shares
nothing with the original."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rmapsim
from rmapsim.testing import traces


def same_future(a: rmapsim.Simulator, b: rmapsim.Simulator, trace: str) -> None:
    ra, rb = a.apply(trace), b.apply(trace)
    assert np.array_equal(ra.status, rb.status) and np.array_equal(ra.value, rb.value)
    assert ra.message == rb.message
    assert a.counts() == b.counts() and a.graph() == b.graph() and a.allocations() == b.allocations()
    assert a.rmap_walk() == b.rmap_walk() and a.page_referenced() == b.page_referenced()
    assert a.allocation_sites() == b.allocation_sites()


@pytest.mark.parametrize("era", rmapsim.eras() + ["6.0+fork_reuse=never"])
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    before=traces(40),
    after=traces(40),
    rate=st.sampled_from([0.0, 0.05]),
    how=st.sampled_from(["clone", "copy", "deepcopy", "pickle", "bytes"]),
)
def test_a_copy_has_the_original_future(era, before, after, rate, how):
    sim = rmapsim.Simulator(era=era, seed=7)
    sim.apply(before)
    if rate:
        sim.inject_enomem(rate=rate)  # the random stream must carry over
    dup = {
        "clone": sim.clone,
        "copy": lambda: copy.copy(sim),
        "deepcopy": lambda: copy.deepcopy(sim),
        "pickle": lambda: pickle.loads(pickle.dumps(sim)),
        "bytes": lambda: rmapsim.Simulator.from_bytes(sim.to_bytes()),
    }[how]()
    assert type(dup) is rmapsim.Simulator and dup.era == sim.era
    same_future(sim, dup, after)
    sim.check()
    dup.check()


def test_a_copy_shares_nothing():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    a = sim.mmap(p, 64 * 4096)
    sim.touch(p, a, 64 * 4096)
    dup = sim.clone()
    before = dup.graph()
    kids = sim.fork_many(p, 8)
    sim.touch_many(kids, a, 64 * 4096)
    sim.munmap(p, a, 4096)
    assert dup.graph() == before and dup.counts()["page"] == 64
    q = dup.fork(p)
    assert q == kids[0], "pid allocation continues from the same point in the copy"
    with pytest.raises(rmapsim.NoSuchProcess):
        dup.exit(int(kids[1]))
    assert sim.counts() != dup.counts()


def test_limits_and_counters_carry_over():
    sim = rmapsim.Simulator(era="3.19", pid_max=400, ram=1 << 30)
    sim.spawn()
    dup = sim.clone()
    assert (dup.pid_max, dup.ram, dup.operations(), dup.allocations()) == (
        sim.pid_max,
        sim.ram,
        sim.operations(),
        sim.allocations(),
    )


@pytest.mark.parametrize("how", ["clone", "pickle"])
def test_limits_and_counters_carry_over_every_copy(how):
    sim = rmapsim.Simulator(era="2.6.34+prepare_reuse=any_compatible", pid_max=400, ram=1 << 30, seed=9)
    p = sim.spawn()
    sim.touch(p, sim.mmap(p, 16 * 4096), 16 * 4096)
    sim.inject_enomem(nth=3)
    dup = sim.clone() if how == "clone" else pickle.loads(pickle.dumps(sim, protocol=pickle.HIGHEST_PROTOCOL))
    assert (dup.era, dup.seed, dup.pid_max, dup.ram, dup.operations(), dup.allocations(), dup.write_stats()) == (
        sim.era,
        sim.seed,
        sim.pid_max,
        sim.ram,
        sim.operations(),
        sim.allocations(),
        sim.write_stats(),
    )
    # The armed injection fails the same (third) allocation in both.
    for s in (sim, dup):
        with pytest.raises(rmapsim.OutOfMemory):
            s.fork_many(p, 4)
    assert dup.counts() == sim.counts()
