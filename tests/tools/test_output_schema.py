"""docs/output-schema.md is the contract of every subcommand's ``--json``: each subcommand
is run here with ``--json`` and every record it prints is checked against the page's
tables, both ways (no documented field missing, no undocumented field, each of its
documented type; every documented record type seen). Also: ``--version``, early
validation of ``study --y``, and validate-kernel's per-era tallies."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import rmapsim
from rmapsim.cli import COMMANDS, build_parser, main

from helpers import DATA

DOC = Path(__file__).resolve().parents[2] / "docs" / "output-schema.md"
MEASUREMENTS = DATA / "kernel-6.18-measurements.json"
#: `rmapsim diff` is being reworked on main (a random-trace mode); its --json is still one
#: JSON document (docs/diff.md) until it moves to these records. Listed, not skipped.
NOT_YET: set = set()

PY_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def schema() -> dict:
    """``{record type: {field: (allowed python types, optional)}}`` from the page's tables."""
    out: dict = {}
    current = None
    for line in DOC.read_text().splitlines():
        m = re.match(r"^### `([a-z_]+)` \(", line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        if line.startswith("## "):
            current = None
        m = re.match(r"^\| `([^`]+)` \| ([a-z|\\]+) \|[^|]*\|(.*)\|$", line)
        if current is not None and m:
            kinds = m.group(2).replace("\\", "").split("|")
            allowed = tuple(t for k in kinds for t in PY_TYPES[k])
            current[m.group(1)] = (allowed, "*optional*" in m.group(3))
    return out


SCHEMA = schema()


def check(rec: dict) -> None:
    assert rec["type"] in SCHEMA, f"record type {rec['type']!r} is not in docs/output-schema.md"
    fields = SCHEMA[rec["type"]]
    for name, (_, optional) in fields.items():
        if name != "*" and not optional:
            assert name in rec, f"{rec['type']}: documented field {name!r} missing"
    for name, value in rec.items():
        allowed, _ = fields.get(name) or fields.get("*") or ((), False)
        assert allowed, f"{rec['type']}: field {name!r} is not documented"
        # a bool is an int in Python: a boolean field must be one, and a number must not be one
        ok = (
            bool in allowed
            if isinstance(value, bool)
            else isinstance(value, tuple(t for t in allowed if t is not bool))
        )
        assert ok, f"{rec['type']}.{name} = {value!r} is not {allowed}"


def records(argv, capsys, want=(0, 1)) -> list:
    status = main(argv)
    out = capsys.readouterr().out
    assert status in want, out
    recs = [json.loads(line) for line in out.splitlines()]  # stdout: JSON Lines and nothing else
    assert recs, argv
    return recs


def test_the_page_documents_record_types():
    assert {"fork_storm", "replay", "fuzz", "study_run", "comparison", "era_tally", "summary", "knob"} <= set(SCHEMA)
    assert all(f["type"] for f in SCHEMA.values())  # every table has the type field


def test_every_subcommand_has_json():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert any("--json" in a.option_strings for a in parser._actions), name
    assert {c.__name__.rsplit(".", 1)[1].replace("_", "-") for c in COMMANDS} == set(sub.choices)


def test_every_subcommand_json_matches_the_page(tmp_path, capsys):
    seen: dict = {}

    def run(command, *argv, want=(0, 1)):
        recs = records([command, "--json", *argv], capsys, want)
        for r in recs:
            check(r)
            seen.setdefault(r["type"], set()).add(command)
        return recs

    run("demo", "-n", "3", "-p", "2", "--era", "2.6.34", "--era", "6.18", want=(0,))
    # a violation in 2.6.34-rc1, shrunk: the reproducer has an injected allocation failure
    fz = run("fuzz", "--era", "2.6.34-rc1", "--max-ops", "200000", "--seed", "1", "--out", str(tmp_path / "f"))
    trace = fz[0]["reproducer"]
    assert trace == str(tmp_path / "f" / "reproducer-2.6.34-rc1.trace") and Path(trace).read_text() == fz[0]["trace"]
    run("fuzz", "--era", "6.18", "--max-ops", "500", want=(0,))
    rp = run("replay", trace, "--era", "2.6.34-rc1", "--era", "2.6.34")
    assert [r["violation"] is None for r in rp if r["type"] == "replay"] == [False, True]
    run("replay", trace, "--memory", "--era", "6.18", "--era", "3.8", want=(0,))
    run("contention", "-n", "3", "-p", "2", "--era", "3.8", "--era", "2.6.33", want=(0,))
    st = run("study", "fork_storm", "--param", "children=2,3", "--era", "6.18", "--out", str(tmp_path / "s"), want=(0,))
    csv_head = (tmp_path / "s" / "results.csv").read_text().splitlines()[0].split(",")
    assert [k for k in st[0] if k != "type"] == csv_head  # the CSV's names, in order
    run("validate-kernel", "--from", str(MEASUREMENTS), "--era", "6.18", "--era", "2.6.34")
    run("validate-kernel", "--list", want=(0,))
    run("validate-kernel", "--fuzz", "2", "--against", "6.0", "--quiet", "--out", str(tmp_path / "v"))
    run("eras", want=(0,))
    run("diff", trace, "--era", "2.6.34-rc1", "--era", "2.6.34", "--no-pictures")
    run("diff", "--random", "20", "--era", "6.18", "--era", "7.0", "--seed", "1", "--fail-rate", "0.05", "--quiet")
    if shutil.which("strace"):
        rec = run("record", "--out", str(tmp_path / "r"), "--", "true", want=(0,))
        assert rec[0]["trace"] == str(tmp_path / "r" / "record.trace")
    else:  # the one record type this machine cannot produce
        seen["record"] = {"record"}
    assert set(SCHEMA) == set(seen), f"documented but never printed: {set(SCHEMA) - set(seen)}"
    commands = {c for cs in seen.values() for c in cs}
    assert commands == {c.__name__.rsplit(".", 1)[1].replace("_", "-") for c in COMMANDS} - NOT_YET


def test_json_stdout_is_records_only(tmp_path, capsys):
    """'written to' and progress messages go to stderr under --json."""
    out = tmp_path / "s"
    assert main(["study", "fork_storm", "--param", "children=2", "--era", "6.0", "--out", str(out), "--json"]) == 0
    o, e = capsys.readouterr()
    assert [json.loads(x)["type"] for x in o.splitlines()] == ["study_run"]
    assert f"1 run written to {out}/" in e


def test_version():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    want = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and rmapsim.__version__ == want


def test_version_text(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"rmapsim {rmapsim.__version__}\n"


def test_study_y_is_refused_before_the_sweep(tmp_path, capsys, monkeypatch):
    import rmapsim.study

    swept = []
    monkeypatch.setattr(rmapsim.study, "sweep", lambda *a, **k: swept.append(a) or [])
    out = tmp_path / "s"
    assert main(["study", "fork_storm", "--param", "children=2,500", "--y", "mean_vmas", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--y 'mean_vmas' is not a metric of fork_storm; its metrics: walks, mean_vmas_visited," in err
    assert swept == [] and not out.exists()  # no sweep ran, nothing was written
    assert main(["study", "fork_storm", "--param", "children=2", "--y", "children", "--out", str(out)]) == 2
    assert "--y 'children' is a swept parameter, not a metric" in capsys.readouterr().err


def test_validate_kernel_tallies_each_era(capsys):
    """The 6.18 measurements: chain_exit's anon_vma per generation is 0 on the live kernel
    (reuse of an exited ancestor's anon_vma, Linux 3.19's "prevent endless growth of
    anon_vma hierarchy"), so 6.18 agrees and 2.6.34 and 3.8 (no reuse: one per generation)
    disagree on it alone; fork agrees everywhere."""
    argv = ["validate-kernel", "--from", str(MEASUREMENTS), "--scenario", "fork", "--scenario", "chain_exit"]
    assert main([*argv, "--era", "6.18", "--era", "2.6.34", "--era", "3.8"]) == 1
    out = capsys.readouterr().out
    assert "era 6.18: all 2 scenarios agree" in out
    assert "era 2.6.34: 1 of 2 scenarios agree; 1 DISAGREE: chain_exit" in out
    assert "era 3.8: 1 of 2 scenarios agree; 1 DISAGREE: chain_exit" in out
    assert out.rstrip().endswith(
        "verdict: DISAGREEMENT in 2 of 3 eras (2.6.34: 1 of 2 disagree; 3.8: 1 of 2 disagree; see rows marked DISAGREE)"
    )
    tallies = [
        r for r in records([*argv, "--era", "6.18", "--era", "3.8", "--json"], capsys) if r["type"] == "era_tally"
    ]
    assert [(t["era"], t["scenarios_agree"], t["disagreeing"]) for t in tallies] == [
        ("6.18", 2, []),
        ("3.8", 1, ["chain_exit"]),
    ]
    assert main([*argv, "--era", "6.18", "--era", "3.19"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("verdict: every scenario agrees in every era")
