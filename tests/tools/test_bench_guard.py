"""The end-to-end bench's regression guard (benches/bench_e2e.py --compare) flags a figure
more than 20% worse than the saved run, and only then. No timing happens here."""

from __future__ import annotations

import importlib.util

from helpers import ROOT

spec = importlib.util.spec_from_file_location("bench_e2e", ROOT / "benches" / "bench_e2e.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def run(ns_visit=10.0, ns_fault=30.0, **figures):
    base = {
        "vs reference 6.18 x": 50.0,
        "seed 6.18 build+walk s": 0.07,
        "vs kernel 6.18 x": 25.0,
        "scale fork_storm peak_rss_mib": 250.0,
        "scale fork_storm bytes_per_pte": 22.5,
    }
    base.update(figures)
    return {"rows": [{"era": "6.18", "ns/visit": ns_visit, "ns/fault": ns_fault}], "figures": base}


def test_no_change_and_small_changes_pass():
    old = run()
    assert bench.regressions(old, run()) == []
    assert bench.regressions(old, run(ns_visit=11.9, ns_fault=35.9)) == []
    assert bench.regressions(old, run(**{"vs reference 6.18 x": 42.0})) == []  # 50/42 = 1.19


def test_more_than_20_percent_slower_is_flagged():
    old = run()
    slow = bench.regressions(old, run(ns_visit=12.5))
    assert len(slow) == 1 and "6.18 ns/visit" in slow[0]
    assert any("ns/fault" in s for s in bench.regressions(old, run(ns_fault=36.5)))
    assert bench.regressions(old, run(**{"seed 6.18 build+walk s": 0.09}))
    assert bench.regressions(old, run(**{"scale fork_storm peak_rss_mib": 320.0}))
    assert bench.regressions(old, run(**{"scale fork_storm bytes_per_pte": 28.0}))


def test_ratios_are_flagged_when_they_drop():
    old = run()
    assert bench.regressions(old, run(**{"vs reference 6.18 x": 40.0}))
    assert bench.regressions(old, run(**{"vs reference 6.18 x": 500.0})) == []  # faster is fine


def test_kernel_time_is_not_ours_to_guard():
    assert bench.regressions(run(), run(**{"vs kernel 6.18 x": 5.0})) == []


def test_figures_missing_from_the_saved_run_are_skipped():
    old = {"rows": [], "figures": {}}
    assert bench.regressions(old, run()) == []


def test_a_slower_fuzzer_is_flagged():
    key = "fuzz 6.18 2 workers ns/op"
    old = run(**{key: 1000.0})
    assert bench.regressions(old, run(**{key: 1150.0})) == []
    slow = bench.regressions(old, run(**{key: 1250.0}))
    assert len(slow) == 1 and key in slow[0]
    assert bench.regressions(old, run(**{key: 500.0})) == []  # faster is fine
