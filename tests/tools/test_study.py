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
    # so all 4 operations are faults on the root's one VMA; the 4th triggers the reclaim
    # pass, which unmaps every page (each mapped only by the root) and drops it from the
    # swap cache: no page is left, every touched page is now a swap entry.
    r = workloads.aim7_like("6.18", processes=1, pages=8, reclaim_every=4, seed=1)
    assert (r["n_mm"], r["n_vma"], r["n_page"], r["n_swap_cache"]) == (1, 1, 0, 0)
    assert r["n_pte"] == r["n_swap_slot"] > 0
