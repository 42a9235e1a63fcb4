"""The command line: demo table, JSON, help and usage errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

import rmapsim
import rmapsim.cli
from rmapsim.cli import main

from helpers import DATA


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmapsim", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("n,p", [(4, 3), (9, 2)])
def test_demo_json_matches_closed_forms(n, p, capsys):
    assert main(["demo", "--children", str(n), "--pages", str(p), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_era = {r["era"]: r for r in rows}
    # every walk in 2.6.33 visits the whole family: N+1 VMAs
    assert all(r["type"] == "fork_storm" for r in rows)
    assert by_era["2.6.33"]["mean_vmas_visited"] == n + 1 and by_era["2.6.33"]["max_vmas_visited"] == n + 1
    # 2.6.34: P parent walks of N+1 and N*P child walks of 1 -> (2N+1)/(N+1)
    assert by_era["2.6.34"]["total_vmas_visited"] == p * (n + 1) + n * p
    assert abs(by_era["2.6.34"]["mean_vmas_visited"] - (2 * n + 1) / (n + 1)) < 1e-12
    assert by_era["2.6.34"]["n_anon_vma_chain"] == 2 * n + 1
    assert by_era["2.6.34"]["bytes_anon_vma_chain"] == 48 * (2 * n + 1)
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
        (["demo", "--era", "2.6.99"], 'unknown era "2.6.99"'),
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
    names = {k.name for k in rmapsim.knobs()}
    rows = {line.split()[0]: line.split()[1:] for line in table[2:] if line and line.split()[0] in names}
    assert set(rows) == names
    assert rows["index"][rmapsim.eras().index("3.7")] == "interval_tree"
    # Every value is written as the API takes it (no abbreviations), as --json has it.
    recs = [json.loads(line) for line in run("eras", "--json").stdout.splitlines()]
    js = {r["era"]: r for r in recs if r["type"] == "era"}
    assert list(js) == rmapsim.eras() and [e for e in js if js[e]["default"]] == [rmapsim.DEFAULT_ERA]
    assert [r["knob"] for r in recs if r["type"] == "knob"] == [k.name for k in rmapsim.knobs()]
    for i, era in enumerate(rmapsim.eras()):
        for k, vals in rows.items():
            assert js[era]["knobs"][k] == vals[i]
            assert rmapsim.Policy.parse(f"{era}+{k}={vals[i]}") == rmapsim.Policy.preset(era)
    assert any("the default era" in line and rmapsim.DEFAULT_ERA in line for line in table)
    assert any(line.startswith("fork_reuse: ") for line in table)


# ---------------------------------------------------------------------------------------
# Exit statuses: one table of argv (and input files) -> status and a stderr substring
# ---------------------------------------------------------------------------------------

DATA = DATA / "kernel-6.18-measurements.json"
RECORDS = json.loads(DATA.read_text())
HEADER = "# rmapsim trace v1\n"


def _without(rec: dict, key: str) -> dict:
    return {k: v for k, v in rec.items() if k != key}


FILES = {
    "bad-utf8.trace": HEADER.encode() + b"spawn\n\xff\xfe\n",
    "era.trace": (HEADER + "# era 9.99\nspawn\n").encode(),
    "starred-era.trace": (HEADER + "# era 2.6.34*\nspawn\n").encode(),
    "syntax.trace": (HEADER + "spawn\nfork\n").encode(),
    "ok.trace": (HEADER + "spawn\nmmap p1 0x100000000 0x2000 rw\ntouch p1 0x100000000 0x2000 w\nfork p1\n").encode(),
    "fork.json": json.dumps(RECORDS[:1]).encode(),
    "no-layout.json": json.dumps([_without(RECORDS[0], "layout")]).encode(),
    "no-scenario.json": json.dumps([_without(RECORDS[0], "scenario")]).encode(),
    "bad-range.json": json.dumps([{**RECORDS[0], "layout": [{**RECORDS[0]["layout"][0], "end": 0}]}]).encode(),
    "one-run.json": json.dumps([{**RECORDS[0], "runs": {"1": RECORDS[0]["runs"]["1"]}}]).encode(),
    "bad-timing.json": json.dumps([{**RECORDS[0], "kernel_observed": {"timing": {"sizes": 3}}}]).encode(),
    "deep.json": b"[" * 100_000 + b"]" * 100_000,
    "empty.json": b"[]",
    "object.json": b"{}",
    "not.json": b'[{"scenario": "fork",\n  oops}]',
    "bad-utf8.json": b'[\n"\xff"]',
    "a-file": b"",
}

USAGE = "usage:"  # argparse's own message (usage line + error line)
M = "missing/dir"
TABLE = [
    # top level
    ([], 2, ""),
    (["nope"], 2, "invalid choice: 'nope'"),
    # demo
    (["demo", "--children", str(2**40)], 2, f"{2**40} must be <= 4194302 (the simulator's pid_max 4194304"),
    (
        ["demo", "--pages", str(2**40)],
        2,
        f"{2**40} must be <= {(2**47 - 2**12 - 2**16) // 2**12} (the user address space)",
    ),
    (["demo", "--children", "0"], 2, "0 must be >= 1"),
    (["demo", "--pages", "x"], 2, "'x' is not an integer"),
    (["demo", "--era", "2.6.99"], 2, 'unknown era "2.6.99"'),
    (["demo", "--children", "2", "--pages", "1", "--era", "3.0"], 0, ""),
    # replay
    (["replay", "{d}/bad-utf8.trace"], 2, "rmapsim replay: {d}/bad-utf8.trace:3: not UTF-8 text (byte 25"),
    (["replay", "-"], 2, "rmapsim replay: <stdin>:3: not UTF-8 text", "bad-utf8.trace"),
    (
        ["replay", "{d}/era.trace"],
        2,
        'rmapsim replay: {d}/era.trace:2: the trace header: unknown era "9.99" in era spec "9.99"',
    ),
    (["replay", "{d}/era.trace", "--era", "3.0"], 0, ""),  # --era wins over the header
    # A '*' header (older rmapsim: a variant whose knobs were not recorded) cannot be replayed as that
    # variant; --era names it.
    (["replay", "{d}/starred-era.trace"], 2, "a variant of '2.6.34' whose knobs an older rmapsim did not record"),
    (["replay", "{d}/starred-era.trace", "--era", "2.6.34+prepare_reuse=any_compatible"], 0, ""),
    (["replay", "{d}/syntax.trace"], 2, "rmapsim replay: {d}/syntax.trace:3: expected a process symbol"),
    (["replay", "{d}/syntax.trace", "--memory"], 2, "rmapsim replay: {d}/syntax.trace:3: expected a process symbol"),
    (["replay", "{d}/missing.trace"], 2, "rmapsim replay: {d}/missing.trace: cannot read: No such file"),
    (["replay", "{d}"], 2, "rmapsim replay: {d}: cannot read: Is a directory"),
    (["replay", "{d}/ok.trace", "--check"], 0, ""),
    (["replay", "-"], 0, "", "ok.trace"),
    (["replay", "{d}/ok.trace", "--csv", "{d}/x.csv"], 2, "--csv and --every need --memory"),
    (["replay", "{d}/ok.trace", "--memory", "--csv", f"{{d}}/{M}/x.csv"], 2, f"--csv {{d}}/{M}/x.csv: directory"),
    (["replay", "{d}/ok.trace", "--memory", "--every", "0"], 2, "0 must be >= 1"),
    (["replay", "{d}/ok.trace", "--era", "nope"], 2, 'unknown era "nope"'),
    (["replay"], 2, "the following arguments are required: FILE"),
    # fuzz
    (["fuzz", "--seed", str(2**64), "--max-ops", "5"], 2, f"{2**64} must be <= {2**64 - 1}"),
    (["fuzz", "--seed", "-1", "--max-ops", "5"], 2, "-1 must be >= 0"),
    (["fuzz", "--full-check-every", "-1", "--max-ops", "5"], 2, "argument --full-check-every: -1 must be >= 0"),
    (["fuzz", "--max-ops", "-5"], 2, "argument --max-ops: -5 must be >= 0"),
    (["fuzz", "--seconds", "nan"], 2, "nan must be a finite number >= 0"),
    (["fuzz", "--seconds", "0"], 2, "give --seconds > 0 or --max-ops > 0"),
    (["fuzz", "--fail-rate", "1.5", "--max-ops", "5"], 2, "1.5 must be a finite number within [0, 1]"),
    (["fuzz", "--era", "nope", "--max-ops", "5"], 2, 'unknown era "nope"'),
    # --out names a directory everywhere (docs/output-schema.md): a file, or a file-like name, is refused
    (["fuzz", "--max-ops", "5", "--out", f"{{d}}/{M}/x.trace"], 2, f"--out {{d}}/{M}/x.trace: names a directory"),
    (
        ["fuzz", "--max-ops", "5", "--out", "{d}/ok.trace"],
        2,
        "rmapsim fuzz: --out {d}/ok.trace: exists and is not a dir",
    ),
    (["fuzz", "--max-ops", "5", "--out", "{d}/a-file/sub"], 2, "a-file is not a directory"),
    (["fuzz", "--max-ops", "5", "--out", ""], 2, "--out: give a directory name"),
    (["fuzz", "--max-ops", "50", "--seed", str(2**64 - 1), "--full-check-every", "0"], 0, ""),
    # contention
    (["contention", "--cpus", str(2**33)], 2, f"argument --cpus: {2**33} must be <= 8192 (NR_CPUS)"),
    (["contention", "--cpus", "0"], 2, "0 must be >= 1"),
    (["contention", "--outside", "-1"], 2, "argument --outside: -1 must be >= 0"),
    (["contention", "--writer-hold", str(2**32)], 2, f"argument --writer-hold: {2**32} must be <= {2**32 - 1}"),
    (["contention", "--outside", str(2**64 - 1)], 2, f"argument --outside: {2**64 - 1} must be <= {2**32 - 1}"),
    (["contention", "--writer-every", str(2**64)], 2, "must be <= 18446744073709551615"),
    (["contention", "--children", str(2**40)], 2, "must be <= 4194302"),
    (["contention", "-n", "2", "-p", "2", "--plot", "{d}/x.nope"], 2, "unknown figure format 'nope'"),
    (["contention", "-n", "2", "-p", "2", "--plot", f"{{d}}/{M}/x.png"], 2, f"--plot {{d}}/{M}/x.png: directory"),
    (["contention", "-n", "2", "-p", "2", "--cpus", "8192", "--era", "3.0"], 0, ""),
    # study
    (["study", "nope", "--out", "{d}/s"], 2, "rmapsim study: "),
    (["study", "fork_storm", "--out", "{d}/s", "--param", "n"], 2, "--param 'n' must look like K=V1,V2"),
    (["study", "fork_storm", "--out", "{d}/a-file"], 2, "--out {d}/a-file: exists and is not a directory"),
    (["study", "fork_storm", "--out", "{d}/a-file/sub/dir"], 2, "a-file is not a directory"),
    (["study", "fork_storm", "--out", "{d}/s", "--jobs", "0"], 2, "0 must be >= 1"),
    (["study", "fork_storm"], 2, "the following arguments are required: --out"),
    (["study", "fork_storm", "--out", "{d}/s", "--param", "children="], 2, "--param 'children=' gives no values"),
    (
        ["study", "fork_storm", "--out", "{d}/s", "--param", "children=2", "--x", "pages"],
        2,
        "--x 'pages' must be one of the --param names (children)",
    ),
    (
        [
            "study",
            "fork_storm",
            "--out",
            "{d}/s",
            "--era",
            "3.0",
            "--param",
            "children=2",
            "--param",
            "pages=1",
            "--y",
            "nope",
        ],
        2,
        "--y 'nope' is not a metric of fork_storm; its metrics: walks, mean_vmas_visited,",
    ),
    (["study", "fork_storm", "--out", "{d}/s", "--param", "children=x"], 2, "children='x' must be an int from 1 to"),
    # validate-kernel --from (offline)
    (["validate-kernel", "--from", "{d}/fork.json"], 0, ""),
    (["validate-kernel", "--from", str(DATA), "--scenario", "chain_exit", "--era", "2.6.34"], 1, ""),
    (["validate-kernel", "--from", "{d}/no-layout.json"], 2, "{d}/no-layout.json: record 0 (fork): missing 'layout'"),
    (["validate-kernel", "--from", "{d}/no-scenario.json"], 2, "record 0: missing 'scenario'"),
    (["validate-kernel", "--from", "{d}/bad-range.json"], 2, "record 0 (fork): layout[0] must be a page-aligned range"),
    (["validate-kernel", "--from", "{d}/one-run.json"], 2, "'runs' needs at least 2 sizes"),
    (
        ["validate-kernel", "--from", "{d}/bad-timing.json"],
        2,
        "'kernel_observed.timing.sizes' must be a list of numbers",
    ),
    (
        ["validate-kernel", "--from", "{d}/deep.json"],
        2,
        "{d}/deep.json: cannot read measurements: JSON nested too deeply",
    ),
    (["validate-kernel", "--from", "{d}/empty.json"], 2, "{d}/empty.json: no measurement of any scenario to compare"),
    (["validate-kernel", "--from", "{d}/object.json"], 2, "a JSON list of records expected, got dict"),
    (
        ["validate-kernel", "--from", "{d}/fork.json", "--scenario", "pageout"],
        2,
        "{d}/fork.json: no measurement of scenario 'pageout' to compare (the file has: fork)",
    ),
    (
        ["validate-kernel", "--from", "{d}/fork.json", "--scenario", "fork", "--scenario", "pageout"],
        2,
        "no measurement of scenario 'pageout'",
    ),
    (["validate-kernel", "--from", "{d}/not.json"], 2, "{d}/not.json:2: cannot read measurements: not JSON"),
    (["validate-kernel", "--from", "{d}/bad-utf8.json"], 2, "{d}/bad-utf8.json:2: cannot read measurements: not UTF-8"),
    (["validate-kernel", "--from", "{d}/missing.json"], 2, "{d}/missing.json: cannot read measurements: No such file"),
    (["validate-kernel", "--scenario", "nope"], 2, "unknown scenario 'nope'"),
    (["validate-kernel", "--from", "{d}/fork.json", "--era", "nope"], 2, 'unknown era "nope"'),
    (["validate-kernel", "--pages", "0"], 2, "0 must be >= 1"),
    (["validate-kernel", "--save", f"{{d}}/{M}/m.json"], 2, f"--save {{d}}/{M}/m.json: directory"),
    # record
    (["record", "--out", "{d}/r"], 2, "no command given"),
    (["record", "--out", f"{{d}}/{M}/r.trace", "--", "true"], 2, f"--out {{d}}/{M}/r.trace: names a directory"),
    (["record", "--out", "{d}/ok.trace", "--", "true"], 2, "--out {d}/ok.trace: exists and is not a directory"),
    (["record", "--out", "{d}/r", "--", "{d}/no-such-program"], 127, "{d}/no-such-program: command not found"),
    (["record", "--out", "{d}/r", "--", "no-such-program-zz"], 127, "no-such-program-zz: command not found"),
    (["record", "--out", "{d}/r", "--", "{d}/ok.trace"], 126, "{d}/ok.trace: permission denied"),
    (["record", "--", "true"], 2, "the following arguments are required: --out"),
    (["record", "--writes", "some", "--out", "{d}/r.trace", "--", "true"], 2, "invalid choice: 'some'"),
    # eras
    (["eras", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["eras", "--names"], 0, ""),
]


def _row_id(row: tuple) -> str:
    return " ".join(row[0])[:60] + (f" <{row[3]}" if len(row) > 3 else "") or "(none)"


@pytest.mark.parametrize("row", TABLE, ids=[_row_id(r) for r in TABLE])
def test_exit_status_table(row, tmp_path, monkeypatch, capsys):
    argv, want, msg = row[:3]
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    if len(row) > 3:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(FILES[row[3]]), encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    argv = [a.format(d=tmp_path) for a in argv]
    try:
        got = main(argv)
    except SystemExit as e:  # argparse
        got = e.code
    out, err = capsys.readouterr()
    assert got == want, (out, err)
    assert "Traceback" not in err
    assert msg.format(d=tmp_path) in err
    if want == 2 and USAGE not in err and argv:
        assert len(err.strip().splitlines()) == 1, err  # one line, not argparse's usage


def _one_line_status(argv, capsys) -> tuple:
    status = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return status, err


@pytest.mark.parametrize(
    "exc,want",
    [
        (rmapsim.OutOfMemory("simulated RAM limit reached"), 2),
        (rmapsim.InvalidArgument("pid_max reached"), 2),
        (rmapsim.InvariantViolation("invariant 1 broken"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_errors_during_replay_and_demo_are_one_line(exc, want, tmp_path, monkeypatch, capsys):
    """Whatever the core raises mid-run is one line: a SimError is bad input for this run (2),
    an InvariantViolation the finding (1), Ctrl-C 130."""

    def boom(*a, **k):
        raise exc

    f = tmp_path / "ok.trace"
    f.write_bytes(FILES["ok.trace"])
    monkeypatch.setattr(rmapsim.Simulator, "apply", boom)
    if want == 1:  # replay's finding: reported on stdout like a violation found by check()
        assert main(["replay", str(f)]) == 1
        out, err = capsys.readouterr()
        assert f"VIOLATION: {exc}" in out and err == ""
    else:
        status, err = _one_line_status(["replay", str(f)], capsys)
        assert status == want and err.startswith("rmapsim replay: ")
    if want == 2:
        assert f"{f}: replay failed in era 6.18: {exc}" in err
    monkeypatch.setattr(rmapsim.tools.commands.demo, "seed_scenario", boom)
    status, err = _one_line_status(["demo", "--era", "3.0"], capsys)
    assert status == want and err.startswith("rmapsim demo: ")
    if want == 2:
        assert f"era 3.0: {exc}" in err


def test_a_bug_keeps_its_traceback_and_exits_70(monkeypatch, capsys):
    def bug(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(rmapsim.tools.commands.demo, "seed_scenario", bug)
    assert main(["demo", "--era", "3.0"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "internal error" in err


def test_output_paths_are_checked_before_the_work(tmp_path, monkeypatch, capsys):
    """A path that cannot be written is refused before the long work, not after it."""
    import rmapsim.record
    import rmapsim.study
    from rmapsim import _core, kernel

    ran = []

    def work(*a, **k):
        ran.append(a)
        raise AssertionError("the work ran before the output path was checked")

    monkeypatch.setattr(_core, "fuzz", work)
    monkeypatch.setattr(rmapsim.tools.commands.contention, "Simulator", work)
    monkeypatch.setattr(rmapsim.study, "sweep", work)
    monkeypatch.setattr(rmapsim.record, "memory_report", work)
    monkeypatch.setattr(rmapsim.record, "record", work)
    monkeypatch.setattr(kernel, "probe", lambda: None)
    monkeypatch.setattr(kernel, "measure", work)
    trace = tmp_path / "ok.trace"
    trace.write_bytes(FILES["ok.trace"])
    bad = str(tmp_path / "missing" / "dir" / "out")
    for argv in (
        ["fuzz", "--max-ops", "5", "--out", str(trace / "d")],
        ["contention", "--plot", bad + ".png"],
        ["study", "fork_storm", "--out", str(trace / "d")],
        ["replay", str(trace), "--memory", "--csv", bad],
        ["record", "--out", str(trace / "d"), "--", "true"],
        ["validate-kernel", "--scenario", "fork", "--save", bad],
    ):
        status, err = _one_line_status(argv, capsys)
        assert status == 2 and ("does not exist" in err or "is not a directory" in err), (argv, err)
    assert ran == []


def test_unwritable_output_directory(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root may write anywhere, so the permission answer is the one os.access would give a user
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    try:
        status, err = _one_line_status(["fuzz", "--max-ops", "5", "--out", str(ro / "x")], capsys)
        assert status == 2 and "is not writable" in err
    finally:
        ro.chmod(0o700)


# End to end through `python -m rmapsim` (the console script's path): a few rows, EPIPE.


@pytest.mark.parametrize(
    "argv,want,msg",
    [
        (["replay", "{d}/bad-utf8.trace"], 2, "bad-utf8.trace:3: not UTF-8 text"),
        (["demo", "--children", str(2**40)], 2, "must be <= 4194302"),
        (["fuzz", "--max-ops", "5", "--out", "{d}/missing/dir/x.trace"], 2, "directory"),
    ],
)
def test_end_to_end_rows(argv, want, msg, tmp_path):
    (tmp_path / "bad-utf8.trace").write_bytes(FILES["bad-utf8.trace"])
    r = run(*[a.format(d=tmp_path) for a in argv])
    assert r.returncode == want and msg in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "argv", [["eras", "--knobs"], ["demo", "-n", "2", "-p", "1"], ["demo", "-n", "2", "-p", "1", "--json"]]
)
def test_closed_stdout_exits_141_quietly(argv):
    """The reader went away (`rmapsim eras --knobs | head -0`): no BrokenPipeError traceback,
    status 141 (128 + SIGPIPE, what a tool killed by SIGPIPE reports)."""
    rfd, wfd = os.pipe()
    os.close(rfd)  # closed before the first write: EPIPE every time, not only on a full pipe
    try:
        r = subprocess.run(
            [sys.executable, "-m", "rmapsim", *argv], stdout=wfd, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(wfd)
    assert r.returncode == 141 and r.stderr == "", r.stderr


def test_replay_of_a_huge_sparse_mapping(tmp_path):
    """64 TiB mapped, one page touched: sparse page tables make this an ordinary replay."""
    f = tmp_path / "huge.trace"
    f.write_text(HEADER + "spawn\nmmap p1 0x100000000 0x400000000000 rw\ntouch p1 0x100000000 0x1000 w\n")
    r = run("replay", str(f), "--check")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
