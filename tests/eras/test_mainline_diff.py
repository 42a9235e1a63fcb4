"""The differential over random traces (rmapsim.diff_random, `rmapsim diff --random`) between
6.18 and the mainline presets, against the survey table of docs/eras.md.

The survey (written by hand from the 7.0 sources) names, for each change after 6.18, what
rmapsim can observe and the knob that models it. The differential must find exactly those
differences: nothing it cannot attribute to a knob, no knob outside the survey, and each
knob's first divergences in the categories the survey's "observable" column describes.
The hand-built traces come from tests/eras/test_mainline.py's scenarios, whose expected
values are derived there from the kernel rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rmapsim
from rmapsim.diff_random import diff_random, explain, first_divergence, random_trace
from rmapsim.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
HEAD = "# rmapsim trace v1\n"

# P1 writes (its anon_vma R), forks P2 (X), P2 forks P3 (Y); P2 exits, so X has no active
# VMA and one child: P3's fork reuses X. 7.0's anon_vma_fork allocated an anon_vma and its
# entry first and frees both (test_mainline.test_a_reusing_fork_allocates_first_only_in_7_0).
REUSING_FORK = HEAD + "\n".join(
    [
        "spawn",
        "mmap p1 0x10000000 0x2000 rw",
        "touch p1 0x10000000 0x2000 w",
        "fork p1",
        "fork p2",
        "exit p2",
        "fork p3",
    ]
)
# The fork line P1 -> ... -> P5, then P2 and P3 exit: X and Y are reusable, and P5's fork
# reuses X in 6.18 (oldest first) and Y in 7.0 (reversed chains), allocating first in 7.0
# (test_mainline.test_7_0_reverses_every_clone_and_reuses_in_that_order).
TWO_REUSABLE = HEAD + "\n".join(
    ["spawn", "mmap p1 0x10000000 0x1000 rw", "touch p1 0x10000000 0x1000 w"]
    + [f"fork p{i}" for i in range(1, 5)]
    + ["exit p2", "exit p3", "fork p5"]
)
# The child's VMA is chained to two anon_vmas; mprotect of its middle page splits it and the
# second clone entry's allocation is failed (test_mainline.test_a_failed_clone_touches_no_tree_in_7_0).
FAILED_CLONE = HEAD + "\n".join(
    [
        "spawn",
        "mmap p1 0x10000000 0x3000 rw",
        "touch p1 0x10000000 0x3000 w",
        "fork p1",
        "enomem 3",
        "mprotect p2 0x10001000 0x1000 r",
    ]
)
REUSE_OBJECTS = [
    "alloc anon_vma@anon_vma_fork: A 0, B 1",
    "alloc anon_vma_chain@anon_vma_fork: A 0, B 1",
    "anon_vma_free: A 0, B 1",
    "avc_free: A 0, B 1",
]


def survey_knobs():
    """The knobs the survey table's last column names (rows after 6.18), read from the doc."""
    text = (ROOT / "docs" / "eras.md").read_text()
    section = text.split("## After 6.18", 1)[1].split("\n#", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| commit")]
    return {k for ln in rows for k in re.findall(r"`([a-z_]+)(?:=\w+)?`", ln.rstrip(" |").rsplit("|", 1)[1])}


def test_the_presets_differ_in_exactly_the_survey_knobs():
    survey = survey_knobs()
    assert survey == {"fork_alloc_first", "clone_allocs_first", "clone_reverses_chain", "clone_error_clears_anon_vma"}
    base = rmapsim.Policy.preset("6.18").as_dict()
    for era, same in (("7.0", {"clone_error_clears_anon_vma"}), ("7.0-rc1", set())):
        other = rmapsim.Policy.preset(era).as_dict()
        assert {k for k in base if k != "name" and base[k] != other[k]} == survey - same


def test_a_reusing_fork_is_fork_alloc_first_alone():
    e = explain(REUSING_FORK, "6.18", "7.0")
    assert (e.op, e.how, e.knobs) == (7, "one", ("fork_alloc_first",))
    assert e.details == {"objects": REUSE_OBJECTS}
    assert explain(REUSING_FORK, "7.0", "7.0-rc1") is None  # no failure: the fix is invisible


def test_two_reusable_ancestors_are_two_independent_changes():
    e = explain(TWO_REUSABLE, "6.18", "7.0")
    assert (e.op, e.how, e.knobs) == (10, "independent", ("clone_reverses_chain", "fork_alloc_first"))
    assert e.each == {
        "clone_reverses_chain": {
            "vma_anon_vma": ["p6 [0x10000000, 0x10001000): anon_vma A p2@0x10000000/op4, B p3@0x10000000/op5"]
        },
        "fork_alloc_first": {"objects": REUSE_OBJECTS},
    }
    assert e.details == {**e.each["fork_alloc_first"], **e.each["clone_reverses_chain"]}


def test_a_failed_clone_is_clone_allocs_first_alone():
    # 6.18 linked the first entry (one insert under the root lock) and unlinks it (one
    # remove, the lock again); 7.0 never linked it
    e = explain(FAILED_CLONE, "6.18", "7.0")
    assert (e.op, e.how, e.knobs) == (6, "one", ("clone_allocs_first",))
    assert e.details == {"work": ["index_insert: A 1, B 0", "index_remove: A 1, B 0", "lock_acquire: A 2, B 0"]}


def test_an_interaction_is_reported_as_one():
    # 2.6.33 vs 2.6.34 differ in many knobs; the chain objects of the first write need
    # linking=chain, and no other single knob gives them: whatever the set, it is not
    # unexplained, because setting every knob on 2.6.33 gives 2.6.34's behaviour
    e = explain((ROOT / "examples" / "seed-scenario.trace").read_text(), "2.6.33", "2.6.34")
    assert e.op == 3 and e.how in ("one", "independent", "interaction") and e.knobs
    assert "linking" in e.knobs


def test_the_random_differential_finds_exactly_the_survey_changes():
    res = diff_random("6.18", "7.0", traces=100, seed=3, length=100, fail_rate=0.08, shrink=False)
    assert res.unexplained == [] and res.diverging > 0
    assert {f.knobs for f in res.findings} <= {
        ("fork_alloc_first",),
        ("clone_allocs_first",),
        ("clone_reverses_chain",),
    }
    # what the survey says each change shows: allocations (and, when the injected failure
    # comes first, the links and locks of the clone it no longer makes); the failed clone's
    # links and locks; which anon_vma a fork reuses
    allowed = {
        "fork_alloc_first": {"objects", "work"},
        "clone_allocs_first": {"work"},
        "clone_reverses_chain": {"vma_anon_vma"},
    }
    for f in res.findings:
        assert set(f.categories) <= allowed[f.knobs[0]], f
    assert res.finding("fork_alloc_first").traces > 0 and res.finding("clone_allocs_first").traces > 0
    assert sum(r["how"] != "unexplained" for r in res.rows) == res.diverging
    # every row is a real first divergence of the two presets at that operation
    for r in res.rows[:5]:
        ops = random_trace("6.18", r["trace"], 3, 100, 0.08, True)
        assert first_divergence(ops, "6.18", "7.0")[0] == r["op"]


# README's 7.0-rc1 reproducer (rmapsim fuzz --era 7.0-rc1 --seed 1, shrunk): the last mmap
# (MAP_FIXED) splits the faulted VMA (allocations 1 and 2), then merges with the unfaulted p2
# VMA before it and the faulted rest after it; dup_anon_vma presets the unfaulted VMA's
# anon_vma and clones the faulted one's one-entry chain: allocation 3, which fails.
RC1 = HEAD + "\n".join(
    [
        "spawn",
        "mmap p1 0x10006000 0x1000 rw",
        "fork p1",
        "mmap p2 0x10009000 0x4000 rw",
        "touch p2 0x1000a000 0x2000 w",
        "enomem 3",
        "mmap p2 0x10007000 0x3000 rw",
    ]
)


def test_the_regression_is_the_one_difference_of_7_0_rc1_from_7_0():
    # 7.0's cleanup_partial_anon_vmas clears the preset pointer; rc1's leaves it: the
    # unfaulted VMA points at p2's anon_vma without being on its chain (invariant 3)
    e = explain(RC1, "7.0", "7.0-rc1")
    assert (e.op, e.how, e.knobs) == (7, "one", ("clone_error_clears_anon_vma",))
    assert e.details["vma_anon_vma"] == ["p2 [0x10006000, 0x10007000): anon_vma A None, B p2@0x10009000/op5"]
    assert set(e.details) == {"vma_anon_vma", "verdict"} and "B invariant 3" in e.details["verdict"][0]


def test_against_6_18_the_regression_is_an_interaction():
    # 6.18's clone unlinks on ENOMEM after (not) clearing: without the clearing that unlink
    # takes an active VMA off an anon_vma that never counted the target (invariant 5), a
    # different break from rc1's. Only with clone_allocs_first's cleanup path as well is it
    # rc1's invariant 3: an interaction of the two knobs.
    e = explain(RC1, "6.18", "7.0-rc1")
    assert (e.op, e.how, e.knobs) == (7, "interaction", ("clone_allocs_first", "clone_error_clears_anon_vma"))
    alone = first_divergence(rmapsim.trace.parse(RC1), "6.18", "6.18+clone_error_clears_anon_vma=false")
    assert alone[0] == 7 and set(alone[1]) == {"verdict"} and "B invariant 5" in alone[1]["verdict"][0]


def test_same_arguments_same_result():
    a = diff_random("6.18", "7.0", traces=25, seed=5, fail_rate=0.05)
    b = diff_random("6.18", "7.0", traces=25, seed=5, fail_rate=0.05)
    assert a.as_records() == b.as_records()


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"traces": 0}, "traces must be an int in [1,"),
        ({"traces": True}, "traces must be an int"),
        ({"seed": -1}, "seed must be an int"),
        ({"length": "9"}, "length must be an int"),
        ({"fail_rate": 1.5}, "fail_rate must be a number in [0, 1]"),
        ({"fail_rate": float("nan")}, "fail_rate must be a number"),
        ({"extended": 1}, "extended must be True or False"),
        ({"progress": 3}, "progress must be a callable"),
        ({"b": "7.1"}, 'b: unknown era "7.1"'),
    ],
)
def test_bad_arguments_are_named(kw, needle):
    args = {"a": "6.18", "b": "7.0", **kw}
    with pytest.raises(rmapsim.InvalidArgument) as e:
        diff_random(**args)
    assert needle in str(e.value)


def test_cli_json_records_save_and_exit_status(tmp_path, capsys):
    out = tmp_path / "ex"
    argv = ["diff", "--random", "30", "--era", "6.18", "--era", "7.0", "--seed", "1", "--fail-rate", "0.05"]
    assert main(argv + ["--json", "--quiet", "--out", str(out)]) == 1
    recs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    summary, rest = recs[0], recs[1:]
    assert summary["type"] == "diff_random"
    assert (summary["era_a"], summary["era_b"], summary["traces"]) == ("6.18", "7.0", 30)
    findings = [r for r in rest if r["type"] == "diff_finding"]
    traces = [r for r in rest if r["type"] == "diff_trace"]
    assert len(traces) == summary["diverging"] > 0 and findings
    assert {r["type"] for r in rest} == {"diff_finding", "diff_trace"}
    # each saved example reproduces its knob's difference on its own
    for f in findings:
        [knob] = f["knobs"]
        path = out / f"{knob}.trace"
        assert path.read_text() == f["example"]
        assert main(["diff", str(path), "--era", "6.18", "--era", f"6.18+{knob}=true", "--no-pictures"]) == 1
        capsys.readouterr()
    # identical eras: no diverging trace, exit 0
    assert main(["diff", "--random", "5", "--era", "6.18", "--era", "6.18", "--quiet"]) == 0
    assert "diverging traces: 0 of 5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--random", "3", "x.trace"], "not both"),
        (["--seed", "3", "examples/seed-scenario.trace"], "--seed go(es) with --random N"),
        ([], "give a TRACE file, or --random N"),
        (["--random", "0"], "must be >= 1"),
        (["--random", "3", "--csv", "x.csv"], "--csv goes with a TRACE"),
        (["--random", "3", "--fail-rate", "2"], "within [0, 1]"),
    ],
)
def test_cli_usage_errors(argv, needle, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    try:
        code = main(["diff", "--era", "6.18", "--era", "7.0", *argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    assert needle in capsys.readouterr().err


def test_far_apart_eras_are_explained_without_trying_every_subset():
    # 2.6.33 and 7.0 differ in 36 knobs: sets of up to MAX_SET knobs are tried, then all;
    # the first divergences are new operations 2.6.33 refuses (an error result)
    res = diff_random("2.6.33", "7.0", traces=5, seed=0, shrink=False)
    assert len(res.knobs) > 30 and res.unexplained == [] and res.diverging == 5
    assert all(len(f.knobs) == 1 and set(f.categories) == {"result"} for f in res.findings)


def test_combinations_the_engine_refuses_are_skipped():
    # 2.6.34 -> 2.6.35: lock_scope=root needs track_root, so lock_scope alone is no variant;
    # the root lock's work shows only with both set (the smallest set that is an era)
    res = diff_random("2.6.34", "2.6.35", traces=30, seed=7, fail_rate=0.05, shrink=False)
    assert res.unexplained == [] and res.diverging > 0
    f = res.finding("track_root", "lock_scope")
    assert f is not None and f.traces > 0 and f.variant == "2.6.34+track_root=true,lock_scope=root"


def test_ignore_takes_a_knob_out_of_the_comparison():
    # 3.19 -> 6.0: the new operations (MADV_FREE, MREMAP_DONTUNMAP, ...) are every trace's
    # first divergence; ignored, what is left is 6.0's other rules
    full = diff_random("3.19", "6.0", traces=10, seed=0, shrink=False)
    assert {f.name for f in full.findings} <= {"has_madv_free", "mremap_dontunmap", "has_mlock_onfault"}
    new_ops = ["has_madv_free", "mremap_dontunmap", "has_mlock_onfault", "has_map_fixed_noreplace"]
    rest = diff_random("3.19", "6.0", traces=10, seed=0, shrink=False, ignore=new_ops)
    assert not {k for k, _, _ in rest.knobs} & set(new_ops) and "fork_reuse" in {k for k, _, _ in rest.knobs}
    with pytest.raises(rmapsim.InvalidArgument, match="ignore: unknown knob 'nosuch'"):
        diff_random("3.19", "6.0", traces=1, ignore=["nosuch"])
    with pytest.raises(rmapsim.InvalidArgument, match="ignore must be a list of knob names"):
        diff_random("3.19", "6.0", traces=1, ignore="fork_reuse")


def test_cli_trace_only_options_are_refused_with_random(capsys):
    for extra in (["--limit", "5"], ["--no-pictures"]):
        assert main(["diff", "--random", "2", "--era", "6.18", "--era", "7.0", *extra]) == 2
        assert "go with a TRACE" in capsys.readouterr().err
