"""The command line: demo table, JSON, help and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rmapsim
from rmapsim.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmapsim", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("n,p", [(4, 3), (9, 2)])
def test_demo_json_matches_closed_forms(n, p, capsys):
    assert main(["demo", "--children", str(n), "--pages", str(p), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_era = {r["era"]: r for r in rows}
    # every walk in 2.6.33 visits the whole family: N+1 VMAs
    assert by_era["2.6.33"]["mean"] == n + 1 and by_era["2.6.33"]["max"] == n + 1
    # 2.6.34: P parent walks of N+1 and N*P child walks of 1 -> (2N+1)/(N+1)
    assert by_era["2.6.34"]["total_vmas_visited"] == p * (n + 1) + n * p
    assert abs(by_era["2.6.34"]["mean"] - (2 * n + 1) / (n + 1)) < 1e-12
    assert by_era["2.6.34"]["anon_vma_chain"] == 2 * n + 1
    assert by_era["2.6.34"]["anon_vma_chain_bytes"] == 48 * (2 * n + 1)
    # page_referenced in 2.6.33: child k found after k+1 visits, parent pages after 1
    expect = (p * 1 + p * sum(k + 1 for k in range(1, n + 1))) / (p * (n + 1))
    assert abs(by_era["2.6.33"]["page_referenced_mean"] - expect) < 1e-12


def test_demo_table_via_python_m():
    r = run("demo", "--children", "3", "--pages", "2", "--era", "2.6.34")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("fork storm: 1 parent + 3 children x 2 pages")
    row = next(line for line in lines if line.startswith("2.6.34"))
    assert row.split()[1:3] == ["8", "1.750"]  # (2*3+1)/(3+1)
    assert "2.6.33" not in r.stdout


@pytest.mark.parametrize(
    "args,msg",
    [
        (["demo", "--era", "2.6.99"], "unknown era '2.6.99'"),
        (["demo", "--children", "0"], "0 must be >= 1"),
        (["demo", "--pages", "x"], "'x' is not an integer"),
    ],
)
def test_bad_usage_exits_2_with_message(args, msg):
    r = run(*args)
    assert r.returncode == 2
    assert msg in r.stderr


def test_help_and_no_command():
    assert "--children" in run("demo", "--help").stdout
    r = run()
    assert r.returncode == 2 and "demo" in r.stdout
    assert run("eras", "--names").stdout.split() == rmapsim.eras()
    table = run("eras", "--knobs").stdout.splitlines()
    assert table[0].split() == ["knob"] + [e + ("*" if e == rmapsim.DEFAULT_ERA else "") for e in rmapsim.eras()]
    rows = {line.split()[0]: line.split()[1:] for line in table[2:] if line and not line.startswith(" ") and ":" not in line}
    assert rows["index"][rmapsim.eras().index("3.7")] == "itree"
    assert any(line.startswith("fork_reuse: ") for line in table)
