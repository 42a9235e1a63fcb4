"""Sweeps on Dask for real (rmapsim.cluster.dask_executor) and sweeps from a built base
state: a LocalCluster with worker processes (through an existing Client, an address, or
one dask_executor starts), the dashboard served, runs streamed back as they complete, the
base state scattered to the workers once, rows identical to a local sweep; the study CLI's
--base."""

from __future__ import annotations

import csv
import subprocess
import sys
import urllib.request
from concurrent.futures import ProcessPoolExecutor

import pytest

import rmapsim
from rmapsim.cluster import dask_executor
from rmapsim.study import sweep

from helpers import DATA, ROOT

distributed = pytest.importorskip("distributed")  # in the test extra: present wherever the suite runs

GRID = {"children": [2, 5, 9], "pages": [3]}


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def base_state(era: str = "6.18") -> rmapsim.Simulator:
    """A machine already running: a parent with 64 written pages and 6 children that
    wrote 8 of them."""
    sim = rmapsim.Simulator(era=era, seed=3)
    p = sim.spawn()
    a = sim.mmap(p, 64 * 4096)
    sim.touch(p, a, 64 * 4096)
    sim.touch_many(sim.fork_many(p, 6), a, 8 * 4096)
    return sim


@pytest.fixture(scope="module")
def cluster():
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    yield c
    c.close()


def test_a_base_state_adds_its_objects_to_every_run():
    base = base_state()
    plain = sweep("fork_storm", GRID, eras=["6.18"])
    based = sweep("fork_storm", GRID, base=base)
    c = base.counts()
    for p, b in zip(plain, based):
        # The workload's processes are new address spaces next to the base's: the objects
        # add up, and the workload's own pages walk exactly as on an empty machine.
        assert b["era"] == "6.18" and b["base_operations"] == base.operations()
        for k in ("vma", "anon_vma", "anon_vma_chain", "page", "mm"):
            assert b[f"n_{k}"] == p[f"n_{k}"] + c[k], k
    assert base.counts() == c, "the base itself is not touched"


def test_base_sweeps_are_identical_on_every_executor(cluster):
    base = base_state("3.19")
    local = strip_time(sweep("fork_storm", GRID, base=base))
    with ProcessPoolExecutor(2) as pool:
        assert strip_time(sweep("fork_storm", GRID, base=base, executor=pool)) == local
    client = distributed.Client(cluster)
    ex = dask_executor(client=client, quiet=True)
    try:
        seen = []
        rows = sweep("fork_storm", GRID, base=base, executor=ex, progress=lambda d, n: seen.append((d, n)))
        assert strip_time(rows) == local
        assert seen == [(1, 3), (2, 3), (3, 3)], "progress counts runs as they complete"
        # Scattered once: one copy of the snapshot, held by every worker.
        held = {k: v for k, v in client.who_has().items() if k.startswith("bytes-")}
        assert len(held) == 1 and len(next(iter(held.values()))) == 2
    finally:
        ex.close()
    assert client.status == "running", "close() leaves a client it was given open"
    client.close()


def test_an_address_reaches_the_cluster_and_the_dashboard_is_served(cluster, capfd):
    ex = dask_executor(address=cluster.scheduler_address)
    try:
        assert "dashboard: http" in capfd.readouterr().err
        with urllib.request.urlopen(ex.dashboard_link, timeout=10) as r:
            assert r.status == 200
        rows = sweep("fork_storm", {"children": [2], "pages": [3]}, eras=["2.6.34", "6.18"], executor=ex)
        assert [r["era"] for r in rows] == ["2.6.34", "6.18"]
    finally:
        ex.close()


def test_a_new_local_cluster_has_its_dashboard_on(capfd):
    ex = dask_executor(n_workers=1, dashboard_address=":0")
    try:
        err = capfd.readouterr().err
        assert "LocalCluster, 1 workers; dashboard: http://" in err
        assert ex.dashboard_link and ex.dashboard_link in err
    finally:
        ex.close()


@pytest.mark.parametrize(
    "call,msg",
    [
        (lambda: dask_executor(client=object()), "client must be a distributed.Client"),
        (lambda: dask_executor(client=None, address=5), "address must be"),
        (lambda: dask_executor(address="tcp://127.0.0.1:9", n_workers=3), "apply to a new LocalCluster only"),
        (lambda: dask_executor(bogus_option=1), "cluster_kwargs"),
        (lambda: sweep("fork_storm", GRID, base="state"), "base must be a rmapsim.Simulator"),
        (lambda: sweep("fork_storm", GRID, base=base_state(), eras=["6.18", "6.0"]), "runs in the base's era 6.18"),
        (lambda: sweep("fork_storm", {**GRID, "knob:fork_reuse": ["never"]}, base=base_state()), "knob grids"),
    ],
)
def test_bad_arguments_are_refused(call, msg):
    with pytest.raises(rmapsim.InvalidArgument, match=msg):
        call()


def test_both_client_and_address_are_refused(cluster):
    client = distributed.Client(cluster)
    try:
        with pytest.raises(rmapsim.InvalidArgument, match="not both"):
            dask_executor(client=client, address=cluster.scheduler_address)
    finally:
        client.close()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rmapsim", *args], capture_output=True, text=True, timeout=300)


def test_study_cli_from_a_snapshot_and_from_a_trace(tmp_path):
    base = base_state("6.0")
    snap = tmp_path / "base.snap"
    snap.write_bytes(base.to_bytes())
    r = cli(
        "study",
        "fork_storm",
        "--param",
        "children=2,4",
        "--param",
        "pages=3",
        "--base",
        str(snap),
        "--out",
        str(tmp_path / "a"),
    )
    assert r.returncode == 0, r.stderr
    assert "base state: snapshot" in r.stdout and "era 6.0" in r.stdout
    with open(tmp_path / "a" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(x["n_vma"]) for x in rows] == [3 + base.counts()["vma"], 5 + base.counts()["vma"]]
    trace = tmp_path / "base.trace"
    trace.write_text(
        "# rmapsim trace v1\n# era 3.19\nspawn\nmmap p1 0x10000000 0x4000 rw\ntouch p1 0x10000000 0x4000 w\n"
    )
    r = cli(
        "study",
        "fork_storm",
        "--param",
        "children=2",
        "--param",
        "pages=3",
        "--base",
        str(trace),
        "--out",
        str(tmp_path / "b"),
    )
    assert r.returncode == 0, r.stderr
    assert "replayed in era 3.19 (3 operations" in r.stdout
    r = cli(
        "study",
        "fork_storm",
        "--param",
        "children=2",
        "--base",
        str(snap),
        "--era",
        "6.18",
        "--out",
        str(tmp_path / "c"),
    )
    assert r.returncode == 2 and "base's era 6.0" in r.stderr
    r = cli(
        "study", "fork_storm", "--param", "children=2", "--base", str(tmp_path / "none"), "--out", str(tmp_path / "d")
    )
    assert r.returncode == 2 and "--base" in r.stderr


def test_study_refuses_a_base_state_that_breaks_an_invariant(tmp_path):
    bad = DATA / "variant-invariant4.trace"
    r = cli("study", "fork_storm", "--param", "children=2", "--base", str(bad), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "breaks an invariant" in r.stderr and "invariant 4" in r.stderr


def test_the_dask_sweep_example_prints_the_table_docs_studies_shows(cluster):
    """examples/dask_sweep.py (excerpted in docs/studies.md, which pastes its output) run
    against a running scheduler prints that table, row for row."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dask_sweep.py"), cluster.scheduler_address],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    pasted = (ROOT / "docs" / "studies.md").read_text().split("$ python examples/dask_sweep.py\n", 1)[1]
    table = [line for line in pasted.split("```", 1)[0].splitlines() if line.startswith((" era", "6.18 "))]
    assert len(table) == 4 and r.stdout.splitlines() == table
    assert "3/3 runs done" in r.stderr
