"""Era variants (``BASE+knob=value,...``) as first-class values: every surface accepts the
spec or a Policy, traces carry it, and a reproducer found in a variant replays to the same
violation from its file through the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import rmapsim
from rmapsim import _core, workloads
from rmapsim.study import sweep
from rmapsim.testing import RmapMachine

# 2.6.34 with the anon_vma_prepare reuse rule of the patch as posted: breaks invariant 4.
VARIANT = "2.6.34+prepare_reuse=any_compatible"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmapsim", *args], capture_output=True, text=True, timeout=120)


def invariant(msg: str) -> str:
    m = re.search(r"invariant (\d+)", msg)
    assert m, msg
    return m.group(1)


def test_spec_round_trips_through_policy_and_simulator():
    p = rmapsim.Policy.parse("6.0+fork_reuse=never")
    assert str(p) == "6.0+fork_reuse=never"
    assert repr(p) == "Policy('6.0', fork_reuse='never')"
    assert p == rmapsim.Policy.preset("6.0").replace(fork_reuse="never")
    assert rmapsim.Simulator(era=p).era == str(p)
    assert rmapsim.Simulator(era="6.0+fork_reuse=never").policy()["fork_reuse"] == "never"
    # The canonical form: knob order, spaces dropped, a knob at the preset's value left out.
    assert (
        rmapsim.era_spec(" 6.0 + fork_reuse=never , cow_reuse_moves_page = false")
        == "6.0+cow_reuse_moves_page=false,fork_reuse=never"
    )
    assert rmapsim.era_spec("6.18+index=interval_tree") == "6.18"


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("6.0+fork_reus=never", 'unknown knob "fork_reus" (did you mean fork_reuse?)'),
        ("6.1", 'unknown era "6.1" in era spec "6.1" (did you mean 6.0?)'),
        ("6.0+fork_reuse", '"fork_reuse" is not knob=value'),
        ("6.0+fork_reuse=sometimes", 'bad value "sometimes" for knob fork_reuse'),
    ],
)
def test_bad_specs_are_invalid_argument_quoting_the_spec(spec, msg):
    with pytest.raises(rmapsim.InvalidArgument) as e:
        rmapsim.Simulator(era=spec)
    assert msg in str(e.value)
    assert "lock_kind" not in str(e.value), "the error does not list all knobs"


def test_sweep_and_workloads_take_specs_and_policies():
    p = rmapsim.Policy.preset("6.0").replace(fork_reuse="never")
    rows = sweep("fork_chain", {"generations": [3], "pages": [2]}, eras=["6.0", p, "6.0+fork_reuse=never"])
    assert [r["era"] for r in rows] == ["6.0", "6.0+fork_reuse=never", "6.0+fork_reuse=never"]
    # fork_reuse=never gives every generation an anon_vma of its own: more of them than 6.0.
    assert rows[1]["n_anon_vma"] > rows[0]["n_anon_vma"]
    assert workloads.fork_chain(p, generations=3, pages=2)["n_anon_vma"] == rows[1]["n_anon_vma"]
    with pytest.raises(rmapsim.InvalidArgument, match="eras: .*unknown knob"):
        sweep("fork_chain", {"generations": [3]}, eras=["6.0+nope=1"])


def test_native_fuzzer_reproducer_of_a_variant_replays_to_the_same_violation(tmp_path):
    r = _core.fuzz(VARIANT, seed=0, max_ops=20000)
    assert r["violation"] is not None
    assert f"# era {VARIANT}\n" in r["trace"]
    f = tmp_path / "variant.trace"
    f.write_text(r["trace"])
    out = cli("replay", str(f), "--check")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"era {VARIANT} (from the trace header)" in out.stdout
    assert f"invariant {invariant(r['violation'])}" in out.stdout
    # The plain preset does not break it; --era overrides the header and says so.
    plain = cli("replay", str(f), "--check", "--era", "2.6.34")
    assert plain.returncode == 0, plain.stdout
    assert f"from --era, overriding the trace header's {VARIANT}" in plain.stdout
    # The old way of writing a variant (policy=) gives the same header.
    r2 = _core.fuzz("2.6.34", seed=0, max_ops=20000, policy={"prepare_reuse": "any_compatible"})
    assert r2["trace"] == r["trace"]


def test_cli_fuzz_of_a_variant_writes_a_reproducer_that_replays(tmp_path):
    r = cli("fuzz", "--era", VARIANT, "--max-ops", "20000", "--out", str(tmp_path / "x"))
    out = tmp_path / "x" / f"reproducer-{VARIANT.replace('+', '_').replace('=', '_')}.trace"
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"era {VARIANT}: VIOLATION" in r.stdout
    rep = cli("replay", str(out), "--check")
    assert rep.returncode == 1 and f"era {VARIANT}: VIOLATION" in rep.stdout, rep.stdout


def test_repeated_era_runs_a_matrix_one_result_per_era(tmp_path):
    r = _core.fuzz(VARIANT, seed=0, max_ops=20000)
    f = tmp_path / "v.trace"
    f.write_text(r["trace"])
    out = cli("replay", str(f), "--check", "--era", "2.6.34", "--era", VARIANT)
    assert out.returncode == 1  # one era violates
    assert "era 2.6.34: no invariant violation" in out.stdout
    assert f"era {VARIANT}: VIOLATION" in out.stdout
    fz = cli("fuzz", "--era", "6.18", "--era", VARIANT, "--max-ops", "20000", "--out", str(tmp_path / "m"))
    assert fz.returncode == 1
    assert "era 6.18: no violation found" in fz.stdout
    written = tmp_path / "m" / f"reproducer-{VARIANT.replace('+', '_').replace('=', '_')}.trace"
    assert f"reproducer written to {written}" in fz.stdout and written.exists()


class VariantMachine(RmapMachine):
    POLICY = rmapsim.Policy.parse(VARIANT)


def test_hypothesis_machine_trace_names_the_variant_and_replays_identically(tmp_path):
    # The machine does not find this variant's violation yet (issue 16); what it writes must
    # still replay in the variant: its header names the variant, and the trace replayed in
    # the header's era behaves as in the machine's policy, not as in the plain preset.
    m = VariantMachine()
    assert m.lines[1] == f"# era {VARIANT}"
    m.lines += [
        "spawn",
        "mmap p1 0x10000000 0x4000 rw",
        "touch p1 0x10000000 0x4000 w",
        "fork p1",
        "munmap p1 0x10000000 0x4000",
        "mmap p2 0x10004000 0x4000 rw",
        "touch p2 0x10004000 0x4000 w",
    ]
    f = tmp_path / "h.trace"
    f.write_text(m.trace())
    by_header = rmapsim.Simulator(era=cli_header_era(f))
    by_policy = rmapsim.Simulator(policy=VariantMachine.POLICY)
    for sim in (by_header, by_policy):
        assert sim.apply(f.read_text()).errors() == []
    assert by_header.graph() == by_policy.graph() and by_header.era == VARIANT
    assert cli("replay", str(f), "--check").returncode == 0


def cli_header_era(f: Path) -> str:
    from rmapsim.cli import trace_era

    era = trace_era(f.read_text(), str(f))
    assert era is not None
    return era


def test_a_legacy_star_header_is_refused_not_replayed_as_the_preset(tmp_path):
    f = tmp_path / "old.trace"
    f.write_text("# rmapsim trace v1\n# era 2.6.34*\nspawn\n")
    r = cli("replay", str(f))
    assert r.returncode == 2 and "whose knobs an older rmapsim did not record" in r.stderr
    assert cli("replay", str(f), "--era", VARIANT).returncode == 0


def test_knob_grid_crosses_knob_values_with_eras():
    rows = sweep(
        "fork_chain",
        {"generations": [8], "pages": [2], "knob:fork_reuse": ["never", "active_vmas"]},
        eras=["6.0", "3.19"],
    )
    assert [(r["era"], r["spec"], r["fork_reuse"]) for r in rows] == [
        ("6.0", "6.0+fork_reuse=never", "never"),
        ("6.0", "6.0", "active_vmas"),
        ("3.19", "3.19+fork_reuse=never", "never"),
        ("3.19", "3.19+fork_reuse=active_vmas", "active_vmas"),
    ]
    # Each row is the run of its spec.
    for r in rows:
        assert r["n_anon_vma"] == workloads.fork_chain(r["spec"], generations=8, pages=2)["n_anon_vma"]
    assert rows[0]["n_anon_vma"] > rows[1]["n_anon_vma"]
    with pytest.raises(rmapsim.InvalidArgument, match=r"grid key 'knob:fork_reus': unknown knob .*"):
        sweep("fork_chain", {"knob:fork_reus": ["never"]}, eras=["6.0"])
    with pytest.raises(rmapsim.InvalidArgument, match='bad value "sometimes"'):
        sweep("fork_chain", {"knob:fork_reuse": ["sometimes"]}, eras=["6.0"])


def test_cli_study_writes_spec_and_knob_columns_and_one_line_per_variant(tmp_path):
    import csv

    out = tmp_path / "s"
    r = cli(
        "study",
        "fork_chain",
        "--era",
        "6.0",
        "--era",
        "6.0+fork_reuse=never",
        "--param",
        "generations=2,8",
        "--param",
        "pages=2",
        "--param",
        "knob:cow_reuse_moves_page=true,false",
        "--y",
        "n_anon_vma",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert {(x["era"], x["spec"]) for x in rows} == {
        ("6.0", "6.0"),
        ("6.0", "6.0+cow_reuse_moves_page=false"),
        ("6.0+fork_reuse=never", "6.0+fork_reuse=never"),
        ("6.0+fork_reuse=never", "6.0+cow_reuse_moves_page=false,fork_reuse=never"),
    }
    assert {x["cow_reuse_moves_page"] for x in rows} == {"true", "false"}
    assert "| era | spec | generations | pages | cow_reuse_moves_page |" in (out / "summary.md").read_text()
    bad = cli("study", "fork_chain", "--era", "6.0", "--param", "knob:nope=1", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "unknown knob 'nope'" in bad.stderr
