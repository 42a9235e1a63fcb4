"""mmap with MAP_FIXED_NOREPLACE (``Simulator.mmap(..., noreplace=True)``; Linux 4.17,
a4ff8e8620d3 "mm: introduce MAP_FIXED_NOREPLACE"; knob ``has_map_fixed_noreplace``, set in
6.0 and 6.18).

Kernel rules: ``do_mmap`` (mm/mmap.c) treats the flag as MAP_FIXED and, when
``find_vma_intersection`` finds any VMA in ``[addr, addr+len)``, returns EEXIST before
anything is unmapped (``AlreadyMapped``, a ``FileExistsError``); otherwise the mapping is an
ordinary fixed one (``mmap_region``: it merges with its neighbours as usual).

Before 4.17 the bit (0x100000) meant nothing: ``do_mmap`` did not validate MAP_PRIVATE's
flags (only MAP_SHARED_VALIDATE, 4.15, does), so the call was a mapping *without* MAP_FIXED,
whose address is a hint: ``arch_get_unmapped_area_topdown`` takes it when the range is free
and inside ``[mmap_min_addr, TASK_SIZE)``, and searches for a free range otherwise (the
commit says older kernels treat the flag as a hint; callers must check the result).

Ground truth for 6.18: the "noreplace-*" calls of tests/data/dontunmap.c on this machine's
Linux 6.18, recorded in tests/data/dontunmap.out (compared line by line, with the rest of
that program, by tests/mm/test_mremap_dontunmap.py; here the three calls are checked alone).
The 6.18 tree's line numbers could not be checked here, so functions are named without
line ranges."""

from __future__ import annotations

import errno

import pytest

import rmapsim
import rmapsim.trace

from helpers import DATA, FROM_6_18, recorded_lines

P = 4096
X = 0x1000_0000


def world(era="6.18"):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 4 * P, addr=X)
    sim.touch(p, X, 4 * P)
    return sim, p


def spans(sim, p):
    return [(v["start"], v["end"]) for v in sim.vmas(p)]


def test_the_recorded_calls():
    rec = [line for line in recorded_lines(DATA / "dontunmap.out") if "noreplace" in line]
    assert rec == [
        f"call noreplace-over errno {errno.EEXIST}",
        "call noreplace-beside ok 0x10004000",
        f"call noreplace-gap errno {errno.EEXIST}",
    ]


@pytest.mark.parametrize("start, n", [(X, 4), (X + 2 * P, 4), (X - 2 * P, 3), (X + 3 * P, 1)])
def test_an_overlap_is_eexist_and_changes_nothing(start, n):
    sim, p = world()
    before = (spans(sim, p), sim.counts(), sim.operations(), [sim.page_at(p, X + i * P) for i in range(4)])
    with pytest.raises(rmapsim.AlreadyMapped, match="EEXIST") as e:
        sim.mmap(p, n * P, addr=start, noreplace=True)
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, rmapsim.SimError)
    assert (spans(sim, p), sim.counts(), sim.operations(), [sim.page_at(p, X + i * P) for i in range(4)]) == before
    sim.check()


def test_a_free_range_is_an_ordinary_fixed_mapping():
    sim, p = world()
    # right after the VMA (no overlap: [X+4P, X+6P) touches it only at its end) -> it
    # merges with it as MAP_FIXED would; then one in a hole further up stays apart
    assert sim.mmap(p, 2 * P, addr=X + 4 * P, noreplace=True) == X + 4 * P
    assert sim.mmap(p, P, addr=X + 8 * P, noreplace=True) == X + 8 * P
    assert spans(sim, p) == [(X, X + 6 * P), (X + 8 * P, X + 9 * P)]
    fixed, q = world()
    fixed.mmap(q, 2 * P, addr=X + 4 * P)
    fixed.mmap(q, P, addr=X + 8 * P)
    assert spans(fixed, q) == spans(sim, p) and fixed.counts() == sim.counts()
    sim.check()


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if e not in ("6.0", *FROM_6_18)])
def test_before_4_17_the_address_is_a_hint(era):
    assert rmapsim.Policy.preset(era)["has_map_fixed_noreplace"] == "false"
    sim, p = world(era)
    pages = [sim.page_at(p, X + i * P) for i in range(4)]
    # free: the hint is taken
    assert sim.mmap(p, P, addr=X + 6 * P, noreplace=True) == X + 6 * P
    # taken: no error and nothing unmapped; the kernel chose the highest free range below
    # mmap_base (what a plain mmap without an address returns next)
    probe = rmapsim.Simulator(era=era)
    q = probe.spawn()
    probe.mmap(q, 4 * P, addr=X)
    probe.mmap(q, P, addr=X + 6 * P)
    want = probe.mmap(q, 2 * P)
    got = sim.mmap(p, 2 * P, addr=X + P, noreplace=True)
    assert got == want and got != X + P
    assert [sim.page_at(p, X + i * P) for i in range(4)] == pages
    assert (X, X + 4 * P) in spans(sim, p)
    sim.check()


def test_noreplace_needs_an_address_and_a_bool():
    sim, p = world()
    with pytest.raises(rmapsim.InvalidArgument, match="needs an address"):
        sim.mmap(p, P, noreplace=True)
    for bad in (1, "yes", None):
        with pytest.raises(rmapsim.InvalidArgument, match="noreplace must be True or False"):
            sim.mmap(p, P, addr=X + 16 * P, noreplace=bad)
    assert spans(sim, p) == [(X, X + 4 * P)]


def test_trace_word_round_trips_and_replays():
    text = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x2000 rw\nmmap p1 0x10001000 0x2000 rw noreplace\nmmap p1 0x10002000 0x1000 rw noreplace\n"
    ops = rmapsim.trace.parse(text)
    assert rmapsim.trace.format(ops).splitlines()[-1] == "mmap p1 0x10002000 0x1000 rw noreplace"
    sim = rmapsim.Simulator(era="6.18")
    out = sim.apply(ops)
    assert [(i, kind) for i, kind, _ in out.errors()] == [(2, "AlreadyMapped")]
    assert spans(sim, 1) == [(X, X + 3 * P)]
