"""Differential test: the Rust engine against the pure-Python reference model
(python/rmapsim/reference.py, written from the 2.6.33 / 2.6.34 kernel rules), in lockstep:
state machines per era, seeded runs and their reproducers.

What the lockstep compares: the docstring of ref_pair.py.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import rmapsim
from rmapsim.testing.ops import HypothesisDraw, RandomDraw

from ref_pair import ERAS, STATS, Pair, draw_op, first_ops

# --------------------------------------------------------------------------- state machines


class ReferenceMachine(RuleBasedStateMachine):
    ERA = None

    def __init__(self):
        super().__init__()
        self.pair = Pair(self.ERA, hypo=True)

    @initialize(data=st.data())
    def start(self, data):
        for op in first_ops(HypothesisDraw(data)):
            self.pair.apply(op)
            self.pair.compare()

    @rule(data=st.data())
    def step(self, data):
        if self.pair.stopped:
            return
        op = draw_op(self.pair, HypothesisDraw(data))
        event(op[0] + (" file" if "file" in op[2] else ""))
        self.pair.apply(op)

    @invariant()
    def agree(self):
        if not self.pair.stopped:
            self.pair.compare()

    def teardown(self):
        if self.pair.failed and not self.pair.rec.lost:
            note(f"reproducer (rmapsim replay FILE):\n{self.pair.rec.text(self.ERA)}")
        event(f"stopped: {'copy_vma defect' if self.pair.stopped else 'no'}")
        for name in FILE_EVENTS:
            if self.pair.model.events[name]:
                event(f"model: {name}")
        self.pair.teardown()


# the model's kernel paths that private file mappings take (reference.py's events)
FILE_EVENTS = (
    "do_linear_fault maps a page-cache page",
    "do_linear_fault breaks COW early",
    "do_wp_page copies a page-cache page",
    "fork copies a page-cache entry",
    "mmap merges a file mapping",
    "vma_merge: anonymous and file ranges do not merge",
    "vma_merge: different files do not merge",
    "vma_merge: same file, contiguous",
    "vma_merge: same file, pgoff not contiguous",
    "copy_vma keeps an unfaulted file VMA's pgoff",
    "copy_vma merges a file VMA",
    "vma_merge merges file ranges (mprotect/madvise)",
    "vma_merge merges file ranges (mmap/mremap)",
    "anon_vma_prepare: a file VMA reuses its neighbour's anon_vma",
    "anon_vma_prepare: neighbour refused for its vm_file",
)


class Reference2633(ReferenceMachine):
    ERA = "2.6.33"


class Reference2634(ReferenceMachine):
    ERA = "2.6.34"


def _machine_settings():
    base = settings.default
    return settings(
        base,
        max_examples=max(base.max_examples, 60),
        stateful_step_count=max(base.stateful_step_count, 50),
        suppress_health_check=list(HealthCheck),
    )


Reference2633.TestCase.settings = _machine_settings()
Reference2634.TestCase.settings = _machine_settings()
TestReference2633 = Reference2633.TestCase
TestReference2634 = Reference2634.TestCase


# --------------------------------------------------------------------------- seeded runs


def run_seeded(era, seed, steps):
    pair = Pair(era)
    try:
        seeded_pair(era, seed, steps, pair)
        pair.teardown()
    except AssertionError as e:
        trail = "\n".join(f"  #{i + 1} {n}{a} {k}" for i, (n, a, k) in enumerate(pair.ops))
        raise AssertionError(f"{era} seed {seed}, after:\n{trail}\n{e}\n{write_reproducer(pair, seed)}") from None
    return pair


def write_reproducer(pair, seed) -> str:
    """Write the run's ops as a trace (to $RMAPSIM_REPRO_DIR, else the temp directory) and
    say where, or why no trace can say them."""
    if pair.rec.lost:
        return f"(no reproducer trace: {pair.rec.lost})"
    import os
    import tempfile

    where = Path(os.environ.get("RMAPSIM_REPRO_DIR", tempfile.gettempdir()))
    path = where / f"differential-{re.sub(r'[^A-Za-z0-9._-]+', '_', pair.era)}-seed{seed}.trace"
    path.write_text(pair.rec.text(pair.era))
    return f"reproducer: {path} (rmapsim replay {path} --check)"


def seeded_pair(era, seed, steps, pair=None):
    """run_seeded without the final teardown: the pair as the last step left it."""
    draw = RandomDraw(random.Random(f"{era}/{seed}"))
    pair = pair or Pair(era)
    for op in first_ops(draw):
        pair.apply(op)
        pair.compare()
    for _ in range(steps):
        if pair.stopped:
            break
        pair.apply(draw_op(pair, draw))
        pair.compare()
    return pair


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "2.6.34+prepare_reuse=any_compatible"])
def test_the_harness_trace_replays_to_the_same_state(era):
    """The reproducer the harness writes is faithful: replaying it in a fresh engine gives
    the state the harness's own calls built (handles, chains, walks, allocation counts)."""
    replayed = 0
    for seed in range(6):
        pair = seeded_pair(era, seed, 120)
        if pair.rec.lost:
            continue
        sim = rmapsim.Simulator(era=era, seed=0)
        sim.apply(pair.rec.text(era))
        a, b = pair.sim, sim
        assert a.counts() == b.counts() and a.graph() == b.graph(), f"seed {seed}"
        assert a.allocation_sites() == b.allocation_sites() and a.rmap_walk() == b.rmap_walk(), f"seed {seed}"
        replayed += 1
    assert replayed >= 3, "most runs can be said as a trace"


def test_a_variant_finding_of_the_differential_harness_replays_via_the_cli(tmp_path, monkeypatch):
    """2.6.34 with the patch-as-posted anon_vma_prepare reuse (any compatible neighbour): the
    engine and the reference model both find invariant 4 broken at the same step, and the
    reproducer's header names the variant, so `rmapsim replay` finds it again, while the
    preset keeps the invariant on the same trace."""
    import subprocess

    era = "2.6.34+prepare_reuse=any_compatible"
    pair = next((p for p in (seeded_pair(era, s, 300) for s in range(60)) if p.violation and not p.rec.lost), None)
    assert pair is not None, "the harness finds the variant's broken invariant 4 within 60 seeds"
    engine_msg, model_msg = pair.violation
    assert engine_msg.startswith("invariant 4") and model_msg.startswith("invariant 4")
    monkeypatch.setenv("RMAPSIM_REPRO_DIR", str(tmp_path))
    msg = write_reproducer(pair, "x")
    path = tmp_path / "differential-2.6.34_prepare_reuse_any_compatible-seedx.trace"
    assert str(path) in msg and path.read_text().startswith(f"# rmapsim trace v1\n# era {era}\n")

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "rmapsim", "replay", str(path), *a], capture_output=True, text=True, timeout=120
        )

    r = run("--check")
    assert r.returncode == 1 and f"era {era}: VIOLATION" in r.stdout and "invariant 4" in r.stdout, r.stdout
    r = run("--check", "--era", "2.6.34")
    assert r.returncode == 0 and "era 2.6.34: no invariant violation" in r.stdout, r.stdout


@pytest.mark.parametrize("era", ERAS)
def test_seeded_smoke(era):
    """A few fixed seeds on every run (quick, and reproducible without hypothesis)."""
    for seed in range(3):
        run_seeded(era, seed, 60)


@pytest.mark.parametrize("era", ERAS)
def test_seeded_file_mappings(era):
    """Ten fixed seeds x 200 steps (about a second per era): long enough runs for the file
    rules to meet each other (a fork after reads of a written file VMA, a write fault next
    to a same-file or other-file neighbour, a move beside a same-file VMA). The common file
    paths must be reached; the rarer ones (another file's neighbour, anon_vma_prepare's
    reuse and refusal, copy_vma's file merge) have the pinned tests below."""
    reached = Counter()
    for seed in range(10):
        pair = run_seeded(era, seed, 200)
        reached.update(k for k in FILE_EVENTS if pair.model.events[k])
    must = FILE_EVENTS[:6] + (
        "vma_merge: same file, contiguous",
        "vma_merge: same file, pgoff not contiguous",
        "copy_vma keeps an unfaulted file VMA's pgoff",
    )
    missing = [k for k in must if not reached[k]]
    assert not missing, f"{era}: not reached in 10 seeded runs: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("era", ERAS)
def test_long_run(era):
    """Long seeded runs (``-m slow``): 40 seeds x 500 steps per era."""
    before = Counter(STATS)
    steps = 0
    stopped = 0
    for seed in range(40):
        pair = run_seeded(era, seed, 500)
        steps += pair.steps
        stopped += bool(pair.stopped)
    got = STATS - before
    print(
        f"\n{era}: {steps} lockstep steps, {stopped} runs stopped at the copy_vma defect; {dict(sorted(got.items()))}"
    )
    assert steps > 40 * 300
