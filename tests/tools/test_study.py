"""Issue 7: workloads (hand-derived counts), sweeps on any executor, the study CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

import rmapsim
from rmapsim import workloads
from rmapsim.study import dask_executor, sweep


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "6.18"])
def test_fork_storm_counts(era):
    r = workloads.fork_storm(era, children=4, pages=3)
    # (N+1)·P pages; full walks: 2.6.33 every walk N+1, chain eras P·(N+1) + N·P in total
    assert r["n_page"] == 15 and r["walks"] == 15
    assert r["total_vmas_visited"] == (15 * 5 if era == "2.6.33" else 3 * 5 + 4 * 3)
    assert (r["n_anon_vma"], r["n_anon_vma_chain"]) == ((1, 0) if era == "2.6.33" else (5, 9))


@pytest.mark.parametrize("era,want", [("2.6.34", (6, 6)), ("3.8", (6, 6)), ("3.19", (3, 3)), ("6.18", (3, 3))])
def test_fork_chain_counts(era, want):
    r = workloads.fork_chain(era, generations=5, pages=2)
    # G+1 levels without reuse; three with reuse (derivation in test_eras.py)
    assert (r["n_anon_vma"], r["chain_len"]) == want
    assert r["n_mm"] == 1 and r["n_page"] == 2


def test_prefork_server_counts():
    # 4 workers COW 2 of 8 heap pages, then are recycled once: after the recycle the old
    # workers' copies are gone and the new ones wrote 2 pages each again
    r = workloads.prefork_server("6.18", workers=4, heap_pages=8, cow_percent=25, recycles=1)
    assert r["n_mm"] == 5 and r["n_page"] == 8 + 4 * 2
    # the new workers each hold their own anon_vma (1 + 4), chains of 2 (+ the parent's 1)
    assert (r["n_anon_vma"], r["n_anon_vma_chain"]) == (5, 9)


@pytest.mark.parametrize("era,visited", [("3.0", 6 * 4), ("3.7", 4)])
def test_mprotect_split_counts(era, visited):
    # 6 one-page VMAs shared by 4 processes: a parent page's anon_vma links 24 entries,
    # a list walk visits them all, a tree walk only the 4 covering the page
    r = workloads.mprotect_split(era, pieces=6, children=3)
    assert r["n_vma"] == 24 and r["n_page"] == 6
    assert r["max_vmas_visited"] == visited


def test_mremap_churn_counts():
    # 10 moves of a 4-page region shared with 2 children; the parent touches one page
    # after each move (a COW copy the first time per page, then reuse)
    r = workloads.mremap_churn("6.18", moves=10, pages=4, children=2)
    assert r["n_vma"] == 3 and r["n_mm"] == 3
    rmapsim.Simulator  # noqa: B018 - the run itself is checked below
    assert r["walks"] == r["n_page"]


def test_aim7_like_is_deterministic_and_consistent():
    a = workloads.aim7_like("6.18", processes=20, pages=8, reclaim_every=10, seed=3)
    b = workloads.aim7_like("6.18", processes=20, pages=8, reclaim_every=10, seed=3)
    assert strip_time([a]) == strip_time([b])
    assert 1 <= a["processes_live"] <= 20 and a["n_mm"] == a["processes_live"]


def test_sweep_is_the_same_on_any_executor():
    grid = {"children": [2, 5], "pages": [3]}
    local = sweep("fork_storm", grid, eras=["2.6.33", "6.18"])
    assert [(r["era"], r["children"]) for r in local] == [("2.6.33", 2), ("6.18", 2), ("2.6.33", 5), ("6.18", 5)]
    with ProcessPoolExecutor(2) as ex:
        assert strip_time(sweep("fork_storm", grid, eras=["2.6.33", "6.18"], executor=ex)) == strip_time(local)


def test_sweep_on_a_dask_local_cluster():
    grid = {"children": [2, 5], "pages": [3]}
    local = sweep("fork_storm", grid, eras=["2.6.34", "6.18"])
    ex = dask_executor()
    try:
        remote = sweep("fork_storm", grid, eras=["2.6.34", "6.18"], executor=ex)
    finally:
        ex.close()
    assert strip_time(remote) == strip_time(local)


@pytest.mark.parametrize(
    "call,msg",
    [
        (lambda: sweep("nope", {}), "unknown workload 'nope'"),
        (lambda: sweep("fork_storm", {"children": [2]}, eras=["9.9"]), 'unknown era "9.9"'),
        (lambda: sweep("fork_storm", {"children": [-3]}), "children=-3"),
        (lambda: sweep("fork_storm", {"kids": [3]}), "no parameter 'kids'"),
        (lambda: dask_executor("tcp://127.0.0.1:9", timeout=2), "cannot reach the Dask scheduler"),
    ],
)
def test_bad_sweeps_fail_fast(call, msg):
    with pytest.raises(rmapsim.InvalidArgument, match=msg):
        call()


def test_sweep_interruption_keeps_finished_rows(monkeypatch):
    from rmapsim import study

    calls = {"n": 0}
    real = study._run

    def flaky(*a):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(study, "_run", flaky)
    with pytest.raises(study.SweepInterrupted) as ei:
        sweep("fork_storm", {"children": [1, 2, 3], "pages": [1]}, eras=["6.18"])
    assert [r["children"] for r in ei.value.rows] == [1, 2]


def test_study_cli_writes_table_plot_and_summary(tmp_path):
    out = tmp_path / "s"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmapsim",
            "study",
            "fork_storm",
            "--param",
            "children=2,4",
            "--param",
            "pages=2",
            "--era",
            "2.6.33",
            "--era",
            "6.18",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(x["era"], x["children"], x["mean_vmas_visited"]) for x in rows] == [
        ("2.6.33", "2", "3.0"),
        ("6.18", "2", str((2 * 2 + 1) / 3)),
        ("2.6.33", "4", "5.0"),
        ("6.18", "4", str((2 * 4 + 1) / 5)),
    ]
    assert (out / "cost.png").stat().st_size > 0 and (out / "cost.svg").exists()
    assert "| era | spec | children | pages | mean_vmas_visited" in (out / "summary.md").read_text()
    # a --y that is also one of the fixed columns is shown once
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmapsim",
            "study",
            "fork_chain",
            "--param",
            "generations=2",
            "--param",
            "pages=2",
            "--era",
            "6.18",
            "--y",
            "n_anon_vma",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    header = (out / "summary.md").read_text().splitlines()[2]
    assert header.count("n_anon_vma |") == 1, header
    bad = subprocess.run(
        [sys.executable, "-m", "rmapsim", "study", "nope", "--out", str(out)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown workload" in bad.stderr


def test_aim7_like_single_process_counts():
    # processes=1: no fork (population cap) and no exit or exec (only the root is live),
    # so all 4 operations are faults on the root's one VMA of 8 pages, all present
    # from the start. The reclaim pass comes before operation 2: 8 page_referenced and
    # 8 try_to_unmap walks, each visiting the root's one VMA, each unmapping 1 mapping;
    # every walk holds the one anon_vma's lock for 1 candidate: 16 candidate-visits.
    r = workloads.aim7_like("6.18", processes=1, pages=8, reclaim_every=2, seed=1)
    assert (r["n_mm"], r["n_vma"]) == (1, 1)
    assert r["reclaim_passes"] == 1
    assert (r["reclaim_unmap_walks"], r["reclaim_ref_walks"]) == (8, 8)
    assert r["reclaim_unmap_vmas_visited_mean"] == r["reclaim_ref_vmas_visited_mean"] == 1.0
    assert r["reclaim_unmap_mappings"] == 8
    assert (r["reclaim_lock_hold"], r["reclaim_lock_hold_busiest"], r["reclaim_locks"]) == (16, 16, 1)
    # operations 2 and 3 fault some pages back in; the others stay swap entries
    assert 1 <= r["n_page"] <= 8 and r["n_page"] + r["n_swap_slot"] == 8 and r["crash"] == ""


@pytest.mark.parametrize(
    "era,visited,locks,busiest",
    [("2.6.33", 3 + 3 + 2 + 3, 1, 22), ("2.6.34", 3 + 3 + 1 + 1, 3, 12), ("2.6.35", 8, 1, 16), ("6.18", 8, 1, 16)],
)
def test_reclaim_meter_counts_walks_candidates_and_locks(era, visited, locks, busiest):
    # A parent maps 3 pages and writes pages 1 and 2, forks 2 children, each child writes
    # page 0: 4 anon pages. Pages 1 and 2 are mapped by all 3 VMAs, so both walks visit
    # all 3 candidates. Each child's page 0 is mapped once: from 2.6.34 it sits in the
    # child's own anon_vma (1 candidate); in 2.6.33 in the family's, whose list is
    # [parent, child 1, child 2] (fork links at the tail) and a walk stops at the one
    # mapping: 2 and 3 candidates. Locks: the family's in 2.6.33; the page's anon_vma's in
    # 2.6.34 (the parent's, busiest with 2 pages x 3 candidates x 2 walks = 12, and the
    # two children's); the root's from 2.6.35. Hold = candidates of both walks.
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = sim.mmap(p, 3 * 4096)
    sim.touch(p, a + 4096, 2 * 4096)
    sim.touch_many(sim.fork_many(p, 2), a, 4096)
    meter = workloads.ReclaimMeter()
    meter.pass_(sim)
    m = meter.metrics()
    assert (m["reclaim_passes"], m["reclaim_unmap_walks"], m["reclaim_ref_walks"]) == (1, 4, 4)
    assert m["reclaim_unmap_vmas_visited_mean"] == m["reclaim_ref_vmas_visited_mean"] == visited / 4
    assert m["reclaim_unmap_vmas_visited_max"] == 3
    assert m["reclaim_unmap_mappings"] == 3 + 3 + 1 + 1
    assert (m["reclaim_lock_hold"], m["reclaim_locks"], m["reclaim_lock_hold_busiest"]) == (2 * visited, locks, busiest)
    assert sim.counts()["page"] == 0 and sim.counts()["swap_cache"] == 0


def test_aim7_like_defaults_measure_reclaim_during_the_run():
    # the default run: 800 operations, a reclaim pass before every 50th (15 passes); the
    # run ends 49 operations after the last one, so the end-state walk finds pages too
    r = workloads.aim7_like("6.18")
    assert r["reclaim_passes"] == 800 // 50 - 1
    assert r["reclaim_unmap_walks"] > 0 and r["reclaim_unmap_vmas_visited_mean"] >= 1
    assert r["reclaim_lock_hold"] >= r["reclaim_unmap_walks"] + r["reclaim_ref_walks"]
    assert r["walks"] > 0 and r["mean_vmas_visited"] >= 1


def test_aim7_like_reports_the_era_bug_as_a_crash():
    # 2.6.34-rc1's anon_vma use-after-free trips during the default run: the row says so
    # (the kernel would oops) instead of failing the sweep; end-state columns are NaN
    r = workloads.aim7_like("2.6.34-rc1")
    assert r["crash"].startswith("use-after-free") and "reclaim pass before operation" in r["crash"]
    assert r["mean_vmas_visited"] != r["mean_vmas_visited"]  # NaN
    assert r["reclaim_passes"] >= 1 and r["reclaim_unmap_walks"] > 0


def test_cli_an_era_given_twice_is_run_once(tmp_path, capsys):
    from rmapsim.tools.cli import main

    out = tmp_path / "s"
    argv = ["study", "fork_storm", "--param", "children=2", "--era", "6.18", "--era", "6.18", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    assert "1 run written" in capsys.readouterr().out
    with (out / "results.csv").open() as fh:
        assert [r["era"] for r in csv.DictReader(fh)] == ["6.18"]
