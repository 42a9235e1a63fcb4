"""rmapsim diff / rmapsim.diff: the two-era lockstep diff (issue 15, part 5).

Expectations are derived by hand from the kernel rules of each era (comments say how), or
checked against an independent replay (Simulator.apply of the whole trace), never taken from
the diff's own output."""

import csv
import json
from pathlib import Path

import pytest

import rmapsim
from rmapsim import trace
from rmapsim.cli import main

from helpers import ROOT

SEED = ROOT / "examples" / "seed-scenario.trace"
REUSE = ROOT / "tests" / "data" / "degree-reuse-3.19.trace"

# The documented columns of the per-operation table (docs/diff.md), written out here.
DOC_COLUMNS = (
    "op,line,operation,differs,what,result_a,result_b,mm_a,mm_b,vma_a,vma_b,anon_vma_a,anon_vma_b,"
    "anon_vma_chain_a,anon_vma_chain_b,page_a,page_b,pte_a,pte_b,swap_slot_a,swap_slot_b,swap_cache_a,"
    "swap_cache_b,allocs_a,allocs_b,frees_a,frees_b,locks_a,locks_b,walk_a,walk_b,walk_max_a,walk_max_b,verdict_a,verdict_b"
).split(",")


def test_seed_trace_is_the_fork_storm():
    # The committed trace is the seed scenario: spawn, map 4 pages, write, fork 3, each child writes.
    ops = trace.load(SEED)
    assert [trace.format(ops[i : i + 1]).splitlines()[-1] for i in range(len(ops))] == [
        "spawn",
        "mmap p1 0x10000000 0x4000 rw",
        "touch p1 0x10000000 0x4000 w",
        "fork p1",
        "fork p1",
        "fork p1",
        "touch p2 0x10000000 0x4000 w",
        "touch p3 0x10000000 0x4000 w",
        "touch p4 0x10000000 0x4000 w",
    ]
    assert (ops == trace.fork_storm(3, 4)).all()
    with pytest.raises(rmapsim.InvalidArgument, match="children must be an int from 1"):
        trace.fork_storm(0, 4)
    with pytest.raises(rmapsim.InvalidArgument, match="pages must be an int"):
        trace.fork_storm(3, True)


def test_identical_eras_are_identical_and_exit_0(capsys):
    res = rmapsim.diff(SEED.read_text(), "6.0", "6.0")
    assert res.identical and res.first_divergence is None and res.pictures == ""
    assert set(res.first_by_category.values()) == {None}
    assert len(res.rows) == 9 and not any(r["differs"] for r in res.rows)
    assert main(["diff", str(SEED), "--era", "6.0", "--era", "6.0"]) == 0
    assert "identical" in capsys.readouterr().out


def test_seed_scenario_2_6_33_vs_2_6_34_hand_checked():
    # 2.6.33: one anon_vma for the whole fork family, VMAs listed on it directly, no
    # anon_vma_chain objects. 2.6.34: each VMA links its anon_vmas through chain entries,
    # and anon_vma_fork gives each child VMA its own anon_vma at fork time; a child's COW
    # page goes to the child's own anon_vma.
    res = rmapsim.diff(SEED, "2.6.33", "2.6.34")
    assert not res.identical
    fd = res.first_divergence
    # op 3, the parent's first write: both create p1's anon_vma, only 2.6.34 a chain entry.
    assert (fd.op, fd.line, fd.lineno) == (3, "touch p1 0x10000000 0x4000 w", 7)
    assert fd.details == {
        "counts": ["anon_vma_chain: A 0, B 1"],
        "objects": ["alloc anon_vma_chain@anon_vma_prepare: A 0, B 1"],
        "vma_chain": ["p1 [0x10000000, 0x10004000): chain A [], B [p1@0x10000000/op3]"],
    }
    # op 4, the first fork: the child's VMA uses the parent's anon_vma (2.6.33) or a new one.
    # op 7, the first child's write: its COW pages point at p1's anon_vma, on which all 4
    # VMAs are listed (2.6.33: walk 4), or at p2's own (2.6.34: walk 1).
    # The prepare at op 3 locks p1's anon_vma once and links one VMA (or chain entry) in
    # both eras: the same work. The fork at op 4 links the child's VMA once under one lock
    # in 2.6.33 (anon_vma_link); 2.6.34 links a clone entry to p1's anon_vma and one to the
    # child's new anon_vma: work first differs there.
    assert res.first_by_category == {
        "result": None,
        "counts": 3,
        "objects": 3,
        "work": 4,
        "vmas": None,
        "vma_anon_vma": 4,
        "vma_chain": 3,
        "pages": 7,
        "walk": 7,
        "verdict": None,
    }
    rows = {r["op"]: r for r in res.rows}
    assert [rows[i]["what"] for i in (1, 2)] == ["", ""]
    # after the forks, every one of the 4 shared pages is walked over the 4 VMAs in both
    assert (rows[6]["walk_a"], rows[6]["walk_b"]) == (16, 16)
    # after p2's write: 4 parent pages x 4 + p2's 4 pages x (4 | 1)
    assert (rows[7]["walk_a"], rows[7]["walk_b"]) == (32, 20)
    last = rows[9]  # 16 pages: 2.6.33 all x 4 = 64; 2.6.34 4 x 4 + 12 x 1 = 28
    assert (last["walk_a"], last["walk_b"], last["walk_max_a"], last["walk_max_b"]) == (64, 28, 4, 4)
    assert (last["anon_vma_a"], last["anon_vma_b"]) == (1, 4)
    assert (last["anon_vma_chain_a"], last["anon_vma_chain_b"]) == (0, 1 + 3 * 2)
    assert (last["page_a"], last["page_b"], last["vma_a"], last["vma_b"]) == (16, 16, 4, 4)
    assert {r["verdict_a"] for r in res.rows} == {r["verdict_b"] for r in res.rows} == {"ok"}


def _first_violation(era: str, text: str) -> int:
    """The 1-based op after which check() first fails in ``era``: an independent replay."""
    sim = rmapsim.Simulator(era=era)
    res = sim.apply(text, check_each=True)
    assert res.violation() is not None
    return len(res)


def test_3_19_vs_6_0_diverges_before_the_violation():
    text = REUSE.read_text()
    violation = _first_violation("3.19", text)
    assert violation == 13
    assert rmapsim.Simulator(era="6.0").apply(text, check_each=True).violation() is None
    res = rmapsim.diff(text, "3.19", "6.0")
    fd = res.first_divergence
    assert fd.op < violation
    # op 10, fork p4: p3 has exited, so its anon_vma has no VMA left. 3.19's anon_vma_clone
    # reuses an anon_vma whose degree is below 2 and, reusing it for p5's first VMA, leaves
    # the degree still below 2: p5's second VMA reuses the same one (the double reuse).
    # 6.0 counts active VMAs: after the first reuse there is one, so the second VMA gets a
    # new anon_vma. Same anon_vma, same chain so far: no invariant is broken yet.
    assert (fd.op, fd.line) == (10, "fork p4")
    assert fd.details["vma_anon_vma"] == [
        "p5 [0x1000f000, 0x10010000): anon_vma A p3@0x1000d000/op5, B p5@0x1000f000/op10"
    ]
    assert fd.details["counts"] == ["anon_vma: A 3, B 4", "anon_vma_chain: A 13, B 14"]
    assert "verdict" not in fd.details
    assert res.first_by_category["verdict"] == violation
    assert [r["verdict_a"] for r in res.rows].index("invariant 4") + 1 == violation
    assert {r["verdict_b"] for r in res.rows} == {"ok"}
    # the pictures at op 10 show both runs' p5 with the identities in the legend
    assert "p5 in A = 3.19:" in res.pictures and "p5 in B = 6.0:" in res.pictures
    assert "av3=p5@0x1000f000/op10" in res.pictures


def test_the_3_19_divergence_is_the_fork_reuse_knob_alone():
    # 6.0 with 3.19's degree rule behaves as 3.19 on this trace; 6.0 without fork reuse
    # first differs at op 7, where 6.0 reuses the exited p2's anon_vma for p4's VMA.
    assert rmapsim.diff(REUSE, "3.19", "6.0+fork_reuse=degree").identical
    res = rmapsim.diff(REUSE, "6.0", "6.0+fork_reuse=never", pictures=False)
    assert res.first_divergence.op == 7 and res.pictures == ""
    assert res.first_divergence.details["vma_anon_vma"] == [
        "p4 [0x1000d000, 0x10010000): anon_vma A p2@0x1000d000/op4, B p4@0x1000d000/op7"
    ]


@pytest.mark.parametrize("path,a,b", [(SEED, "2.6.33", "2.6.34"), (REUSE, "3.19", "6.0")])
def test_lockstep_ends_where_a_batch_replay_ends(path, a, b):
    # one operation at a time (with the symbol table carried over) = one batch
    res = rmapsim.diff(path, a, b, pictures=False)
    for era, side in ((a, "a"), (b, "b")):
        sim = rmapsim.Simulator(era=era)
        sim.apply(path.read_text())
        c = sim.counts()
        assert {k: res.rows[-1][f"{k}_{side}"] for k in c} == c
        assert res.rows[-1][f"walk_{side}"] == int(sim.rmap_walk().vmas_visited.sum())


def test_swap_cache_pages_and_failed_ops_are_compared():
    text = (
        "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x2000 rw\ntouch p1 0x10000000 0x2000 w\n"
        "fork p1\ntry_to_unmap p1 0x10000000\nexit p9\ndrop_swap_cache\n"
    )
    res = rmapsim.diff(text, "6.18", "6.18")
    assert res.identical
    rows = res.rows
    assert (rows[4]["swap_cache_a"], rows[5]["result_a"], rows[6]["swap_cache_a"]) == (1, "InvalidArgument", 0)


def test_bad_arguments_are_named():
    with pytest.raises(rmapsim.InvalidArgument, match=r'^a: unknown era "6\.1"'):
        rmapsim.diff(SEED, "6.1", "6.0")
    with pytest.raises(rmapsim.InvalidArgument, match="^b must be an era name"):
        rmapsim.diff(SEED, "6.0", 5)
    with pytest.raises(rmapsim.InvalidArgument, match="knob"):
        rmapsim.diff(SEED, "6.0", "6.0+fork_reuse=sometimes")
    with pytest.raises(rmapsim.InvalidArgument, match="^trace must be trace text"):
        rmapsim.diff(b"spawn", "6.0", "6.0")
    with pytest.raises(rmapsim.InvalidArgument, match="trace line 2"):
        rmapsim.diff("# rmapsim trace v1\nfork\n", "6.0", "6.0")
    with pytest.raises(rmapsim.InvalidArgument, match="cannot read trace file"):
        rmapsim.diff(Path("/nonexistent/x.trace"), "6.0", "6.0")
    with pytest.raises(rmapsim.InvalidArgument, match="pictures must be True or False, got 1"):
        rmapsim.diff(SEED, "6.0", "6.0", pictures=1)


def _run(argv):
    """main's status, or argparse's (it exits for a bad option value)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--era", "6.0"], "give exactly two eras, --era A --era B (got 1: 6.0)"),
        (["--era", "6.0", "--era", "3.19", "--era", "6.18"], "give exactly two eras"),
        (["--era", "6.0", "--era", "6.0", "--csv", "/nonexistent/dir/x.csv"], "--csv /nonexistent/dir/x.csv"),
        (["--era", "6.0", "--era", "6.0", "--limit", "-1"], "must be >= 0"),
        (["--era", "6.0", "--era", "7.9"], 'unknown era "7.9"'),
        ([], "the following arguments are required: --era"),
    ],
)
def test_cli_usage_errors_exit_2(argv, needle, capsys):
    assert _run(["diff", str(SEED), *argv]) == 2
    assert needle in capsys.readouterr().err


def test_cli_malformed_trace_and_missing_era(tmp_path, capsys):
    bad = tmp_path / "bad.trace"
    bad.write_text("# rmapsim trace v1\nspawn\nfork q1\n")
    assert main(["diff", str(bad), "--era", "6.0", "--era", "6.0"]) == 2
    assert f"{bad}:3: expected a process symbol" in capsys.readouterr().err
    assert _run(["diff", str(tmp_path / "missing.trace"), "--era", "6.0", "--era", "6.0"]) == 2
    assert "missing.trace: cannot read" in capsys.readouterr().err


def test_cli_differ_exit_1_text_report(capsys):
    assert main(["diff", str(REUSE), "--era", "3.19", "--era", "6.0", "--limit", "3"]) == 1
    out = capsys.readouterr().out
    assert "first divergence after op 10 (line 14): fork p4" in out
    assert "layouts after op 10" in out
    # --limit 3: ops 1-3 and the divergence's row, the rest counted
    table = out.split("per-operation table")[1].split("layouts after")[0]
    assert [ln.split()[0] for ln in table.splitlines()[3:7]] == ["1", "2", "3", "10"]
    assert "... 9 more operations" in table
    assert main(["diff", str(REUSE), "--era", "3.19", "--era", "6.0", "--no-pictures"]) == 1
    assert "layouts after" not in capsys.readouterr().out


def test_cli_csv_and_json_have_the_documented_columns(tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert main(["diff", str(SEED), "--era", "2.6.33", "--era", "2.6.34", "--csv", str(out), "--json"]) == 1
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    *ops, doc = recs
    assert [r["type"] for r in ops] == ["diff_op"] * 9 and doc["type"] == "diff_summary"
    assert [[k for k in r if k != "type"] for r in ops] == [DOC_COLUMNS] * 9
    assert (doc["era_a"], doc["era_b"], doc["ops"], doc["identical"]) == ("2.6.33", "2.6.34", 9, False)
    assert (doc["first_divergence_op"], doc["first_divergence_line"]) == (3, 7)
    assert doc["first_divergence_operation"] == "touch p1 0x10000000 0x4000 w"
    assert doc["first_by_category"]["pages"] == 7
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == DOC_COLUMNS and len(rows) == 9
    assert (rows[8]["walk_a"], rows[8]["walk_b"], rows[8]["what"]) == (
        "64",
        "28",
        "counts+vma_anon_vma+vma_chain+pages+walk",
    )
    assert [r["op"] for r in rows] == [str(i) for i in range(1, 10)]
    assert [r["line"] for r in rows] == [str(i) for i in range(5, 14)]


def test_to_pandas_and_dicts():
    import pandas as pd

    res = rmapsim.diff(SEED, "2.6.33", "2.6.34", pictures=False)
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == DOC_COLUMNS and len(df) == 9
    assert df["differs"].tolist() == [False, False] + [True] * 7
    d = res.to_dicts()
    d[0]["op"] = 99
    assert res.rows[0]["op"] == 1


def test_identity_fallbacks_follow_the_documented_rule():
    # The chain-only and no-VMA names do not occur in the traces above; the naming rule
    # itself is fed a made-up graph here (handles 5..10 of one run after op 3).
    from rmapsim.diff import _Run

    run = _Run("6.0")
    vmas = [
        ((1, 0x1000, 0x2000), {"anon_vma": 5, "chain": [5, 7, 10]}),
        ((2, 0x1000, 0x2000), {"anon_vma": 8, "chain": [7, 8]}),
    ]
    graph = {"anon_vmas": [{"anon_vma": h} for h in (5, 7, 8, 9, 10)]}
    run._name_new(3, vmas, graph, {})
    assert run.names == {
        5: "p1@0x1000/op3",
        7: "p1@0x1000~/op3",
        8: "p2@0x1000/op3",
        9: "?/op3",
        10: "p1@0x1000~/op3#2",
    }
    run._name_new(4, vmas, {"anon_vmas": [{"anon_vma": h} for h in (5, 11)]}, {})
    assert run.names[5] == "p1@0x1000/op3" and run.names[11] == "?/op4"  # names stick


def test_rows_are_handed_out_as_they_are_made():
    # rmapsim diff --json prints each diff_op as its operation is compared
    from rmapsim.diff import _diff

    seen = []
    res = _diff(SEED, "2.6.33", "2.6.34", pictures=False, on_row=lambda r: seen.append((len(seen), r["op"])))
    assert seen == [(i, i + 1) for i in range(9)] and len(res.rows) == 9
