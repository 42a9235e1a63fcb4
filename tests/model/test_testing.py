"""rmapsim.testing: whole programs decoded and run at native speed (programs, op_arrays,
traces(era=...)), their reproducers, and the Bundle-based RmapMachine. Hypothesis searches
here are deterministic (fixed seeds) and short; the time-to-find table over every catalogued
bug is benches/time_to_find.py (run by the slow-marked test at the end)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

import rmapsim
from rmapsim import _core
from rmapsim.testing import Program, ProgramViolation, RmapMachine, op_arrays, programs, traces

from helpers import DATA, ROOT

WORDS = [0x1234_5678_9ABC_DEF1 * (i + 1) % 2**64 or 1 for i in range(80)]
VARIANT = "2.6.34+prepare_reuse=any_compatible"


def replay(era: str, text: str):
    return subprocess.run(
        [sys.executable, "-m", "rmapsim", "replay", "-", "--check", "--era", era],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_program_decodes_runs_and_traces_the_same_operations():
    prog = Program(WORDS)
    arr = prog.ops("6.18", fail_rate=0.05, extended=True)
    ran, violation = prog.run("6.18", fail_rate=0.05, extended=True)
    assert violation is None and np.array_equal(arr, ran) and arr["code"][0] == 0  # spawn first
    # The trace text is the same program: applied, it gives the state the op array gives.
    a, b = rmapsim.Simulator(era="6.18"), rmapsim.Simulator(era="6.18")
    a.apply(arr)
    b.apply(prog.trace("6.18", fail_rate=0.05, extended=True))
    assert a.graph() == b.graph() and a.allocation_sites() == b.allocation_sites()


def test_the_zero_word_is_no_operation():
    with_zeros = Program([0, *WORDS[:10], 0, 0, *WORDS[10:], 0])
    assert len(with_zeros) == len(WORDS)
    assert np.array_equal(with_zeros.ops("3.19"), Program(WORDS).ops("3.19"))
    assert len(Program([0, 0]).ops("3.19")) == 1


def test_run_reports_the_violation_a_full_replay_finds():
    # Decoded words that break the variant's invariant 4 (the fuzzer's op stream finds it
    # within a few hundred programs of random words).
    rng = np.random.default_rng(5)
    for _ in range(2000):  # about 1 program in 150 breaks it; this stream's first does early
        prog = Program(rng.integers(1, 2**63, 320, dtype=np.uint64).tolist())
        arr, v = prog.run(VARIANT)
        if v:
            break
    assert v is not None and v.startswith("invariant 4")
    res = rmapsim.Simulator(era=VARIANT).apply(arr, check_each=True)
    assert (res.violation() or "").startswith("invariant 4") and len(res) <= len(arr)
    with pytest.raises(ProgramViolation) as e:
        prog.check(VARIANT)
    assert e.value.violation == v
    prog.check(VARIANT, allowed=[4])  # an allowed invariant is not a failure


def test_a_seeded_hypothesis_search_finds_the_variant_and_shrinks_it():
    @hseed(3)
    @settings(max_examples=5000, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(programs())
    def search(prog):
        prog.check(VARIANT)

    with pytest.raises(ProgramViolation) as e:
        search()
    text = str(e.value)
    assert text.startswith("invariant 4")
    trace = text.split("--- rmapsim replay FILE --check reproduces it ---\n", 1)[1]
    n = sum(1 for line in trace.splitlines() if line and not line.startswith("#"))
    assert n <= 20, f"{n} operations"
    assert f"# era {VARIANT}" in trace
    r = replay(VARIANT, trace)
    assert r.returncode == 1 and "invariant 4" in r.stdout, r.stdout
    assert replay("2.6.34", trace).returncode == 0, "the preset keeps the invariant on the same trace"


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(op_arrays("6.0", max_ops=64, fail_rate=0.05), st.sampled_from(["6.0", "6.18"]))
def test_op_arrays_apply_in_one_call_without_violations(arr, era):
    res = rmapsim.Simulator(era=era).apply(arr, check_each=True)
    assert res.violation() is None and len(res) == len(arr)


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(traces(era="3.0", max_ops=64))
def test_era_traces_name_their_era(text):
    assert text.startswith("# rmapsim trace v1\n# era 3.0\nspawn\n")
    assert rmapsim.Simulator(era="3.0").apply(text, check_each=True).violation() is None


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(programs(max_ops=96))
def test_the_interval_tree_never_visits_more_vmas_than_the_list(prog):
    """The docs' property recipe: 3.7 (interval tree) and 3.0 (list) build the same rmap,
    and a full walk in 3.7 visits only the candidates whose range covers the page."""
    arr = prog.ops("3.0")
    a, b = rmapsim.Simulator(era="3.0"), rmapsim.Simulator(era="3.7")
    assert np.array_equal(a.apply(arr).status, b.apply(arr).status)
    assert b.rmap_walk(aggregate=True)["total_vmas_visited"] <= a.rmap_walk(aggregate=True)["total_vmas_visited"]


def test_bad_arguments():
    with pytest.raises(rmapsim.InvalidArgument, match="max_ops"):
        programs(max_ops=0)
    with pytest.raises(rmapsim.InvalidArgument, match="era"):
        Program(WORDS).ops("9.9")
    with pytest.raises(rmapsim.InvalidArgument, match="words"):
        _core.run_program("6.18", [1, -1])
    with pytest.raises(rmapsim.InvalidArgument, match="words"):
        _core.run_program("6.18", [True])
    with pytest.raises(rmapsim.InvalidArgument, match="full_check_every"):
        _core.run_program("6.18", [1], full_check_every=-1)
    with pytest.raises(rmapsim.InvalidArgument):
        RmapMachine.for_era("6.0+fork_reuse=sometimes")


def test_for_era_makes_a_machine_of_that_era():
    m = RmapMachine.for_era("6.0+fork_reuse=never")
    assert m.ERA == "6.0+fork_reuse=never" and issubclass(m, RmapMachine)
    run_state_machine_as_test(
        m,
        settings=settings(
            max_examples=15,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )


# The reproducer _core.fuzz wrote for the variant (seed 1): the tenth operation breaks
# invariant 4.
REPRO = [x for x in (DATA / "variant-invariant4.trace").read_text().splitlines() if x and not x.startswith("#")]


def test_the_machine_reports_a_replayable_shrunk_trace():
    # Rules are trace lines run by the trace runner: feed the reproducer's lines through the
    # machine's runner and check the failure it reports (the machine's search power is
    # measured in benches/time_to_find.py, not here).
    m = RmapMachine.for_era(VARIANT)()
    with pytest.raises(AssertionError) as e:
        for line in REPRO:
            m._run(line)
            m.invariants_hold()
    msg = str(e.value)
    assert msg.startswith("invariant 4"), msg[:300]
    full, shrunk = msg.split("--- trace (rmapsim replay FILE --check) ---\n", 1)[1].split(
        "--- shrunk by delta debugging ---\n"
    )
    assert full.splitlines()[2:] == REPRO
    assert len([x for x in shrunk.splitlines() if not x.startswith("#")]) <= len(REPRO)
    for text in (full, shrunk):
        r = replay(VARIANT, text)
        assert r.returncode == 1 and "invariant 4" in r.stdout, r.stdout


def _time_to_find(name):
    sys.path.insert(0, str(ROOT / "benches"))
    import time_to_find as T

    [(_, era, fr, ext, pat)] = [b for b in T.BUGS if b[0] == name]
    runs = [T.hypo(era, fr, ext, s, 120) for s in range(1, 6)]
    ok = [r for r in runs if r["found"]]
    assert len(ok) >= 3, f"{name}: found on {len(ok)} of 5 seeds"
    assert sorted(r["seconds"] for r in runs)[2] <= 60, name
    assert all(r["length"] <= 22 and re.search(pat, r["message"]) and T.replays(era, r["trace"], pat) for r in ok), name


sys.path.insert(0, str(ROOT / "benches"))
import time_to_find as _ttf  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name", [b[0] for b in _ttf.BUGS])
def test_time_to_find(name):
    """benches/time_to_find.py's hypothesis column: found within 60 s median, shrunk to at
    most about 20 operations, and the reproducer replays to the same kind of violation."""
    _time_to_find(name)
