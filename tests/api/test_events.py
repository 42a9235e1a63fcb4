"""The per-operation event log (Simulator.apply(events=True), Simulator.events(),
rmapsim replay --events): allocation attempts per site and frees per kind derived by hand
from the kernel's fork and fault paths, live counts checked against replays stopped at
each operation, walk columns against the era's locking, and the CSV / Parquet files."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings

import rmapsim
from rmapsim.testing import traces

from helpers import DATA


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmapsim", *args], capture_output=True, text=True, timeout=120)


SEED = """# rmapsim trace v1
spawn
mmap p1 0x10000000 0x4000 rw
touch p1 0x10000000 0x4000 w
fork p1
touch p2 0x10000000 0x1000 w
try_to_unmap p1 0x10001000
exit p2
munmap p1 0x12345000 0x1000
"""


def log(era: str, trace: str = SEED) -> rmapsim.EventLog:
    sim = rmapsim.Simulator(era=era)
    res = sim.apply(trace, events=True)
    assert res.events is sim.events() and len(res.events) == len(res)
    return res.events


def nonzero(row: dict, prefix: str) -> dict:
    return {k: v for k, v in row.items() if k.startswith(prefix) and v}


def test_fork_and_fault_allocations_follow_the_kernel_paths():
    # 2.6.34: the first write fault runs anon_vma_prepare (one anon_vma, one chain) and
    # do_anonymous_page per page; fork runs dup_mm, dup_mmap per VMA and anon_vma_fork, which
    # clones the parent's chain (anon_vma_clone: one chain) and adds the child's own anon_vma
    # with its chain; the child's COW write is do_wp_page.
    rows = log("2.6.34").rows()
    assert [r["kind"] for r in rows] == ["spawn", "mmap", "touch", "fork", "touch", "try_to_unmap", "exit", "munmap"]
    assert nonzero(rows[0], "alloc:") == {"alloc:mm_struct@mm_alloc": 1}
    assert nonzero(rows[2], "alloc:") == {
        "alloc:anon_vma@anon_vma_prepare": 1,
        "alloc:anon_vma_chain@anon_vma_prepare": 1,
        "alloc:page@do_anonymous_page": 4,
    }
    assert nonzero(rows[3], "alloc:") == {
        "alloc:mm_struct@dup_mm": 1,
        "alloc:vm_area_struct@dup_mmap": 1,
        "alloc:anon_vma@anon_vma_fork": 1,
        "alloc:anon_vma_chain@anon_vma_clone": 1,
        "alloc:anon_vma_chain@anon_vma_fork": 1,
    }
    assert nonzero(rows[4], "alloc:") == {"alloc:page@do_wp_page": 1}
    # exit frees the child's VMA, its two chains, its anon_vma and its one COW page.
    assert nonzero(rows[6], "freed_") == {
        "freed_vma": 1,
        "freed_anon_vma_chain": 2,
        "freed_anon_vma": 1,
        "freed_page": 1,
    }
    assert rows[7]["result"] == "BadAddress" and not nonzero(rows[7], "alloc")
    assert (rows[3]["p"], rows[3]["pid"], rows[3]["value"]) == (1, 1, 2), "fork names the parent; value is the child"
    assert (rows[0]["p"], rows[0]["pid"]) == (1, 1), "spawn names the new process"


def test_the_2_6_33_fork_shares_the_parents_anon_vma():
    # Before anon_vma_chain, fork links the child's VMA onto the parent's anon_vma list:
    # no anon_vma and no chain is allocated.
    rows = log("2.6.33").rows()
    assert nonzero(rows[3], "alloc:") == {"alloc:mm_struct@dup_mm": 1, "alloc:vm_area_struct@dup_mmap": 1}
    assert (rows[3]["live_anon_vma"], rows[3]["live_anon_vma_chain"]) == (1, 0)


@pytest.mark.parametrize(
    "era,kind,mode",
    [
        ("2.6.33", "spin", "exclusive"),
        ("3.0", "mutex", "exclusive"),
        ("3.8", "rwsem", "shared"),
        ("6.18", "rwsem", "shared"),
    ],
)
def test_a_walk_records_candidates_and_the_lock(era, kind, mode):
    # The page at 0x10001000 is still shared by parent and child (the child wrote only the
    # first page), so the walk finds both mappings. 3.8 made rmap walks take the anon_vma
    # rwsem for read.
    walk = log(era).rows()[5]
    assert (walk["walk_candidates"], walk["walk_mappings"], walk["walk_lock_kind"], walk["walk_lock_mode"]) == (
        2,
        2,
        kind,
        mode,
    )
    others = log(era)["walk_candidates"][[0, 1, 2, 3, 4, 6, 7]]
    assert (others == -1).all(), "only the walk has walk columns"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(trace=traces(30))
def test_live_counts_match_replays_stopped_at_each_operation(trace):
    ev = log("6.0", trace)
    ops = rmapsim.trace.parse(trace)
    for k in sorted({0, len(ev) // 2, len(ev) - 1}):
        sim = rmapsim.Simulator(era="6.0")
        sim.apply(ops[: k + 1])
        c = sim.counts()
        assert [int(ev[f"live_{x}"][k]) for x in ("vma", "anon_vma", "anon_vma_chain", "page")] == [
            c["vma"],
            c["anon_vma"],
            c["anon_vma_chain"],
            c["page"],
        ]
    # Allocated minus freed, summed over the log, is what is live at the end.
    for x in ("vma", "anon_vma", "anon_vma_chain", "page"):
        assert int(ev[f"alloc_{x}"].sum()) - int(ev[f"freed_{x}"].sum()) == int(ev[f"live_{x}"][-1])
    sites = {k[len("alloc:") :]: int(ev[k].sum()) for k in ev.columns if k.startswith("alloc:")}
    sim = rmapsim.Simulator(era="6.0")
    sim.apply(trace)
    assert sites == sim.allocation_sites()


def test_bad_arguments():
    sim = rmapsim.Simulator()
    with pytest.raises(rmapsim.InvalidArgument, match="events"):
        sim.apply(SEED, events="yes")
    with pytest.raises(rmapsim.InvalidArgument, match="sample_every"):
        sim.apply(SEED, events=True, sample_every=2)
    assert sim.events() is None and sim.pids().size == 0, "refused before anything ran"
    ev = log("6.18")
    with pytest.raises(rmapsim.InvalidArgument, match="no column 'nope'"):
        ev["nope"]


def test_to_pandas_has_every_column():
    df = log("3.19").to_pandas()
    assert list(df.columns) == log("3.19").columns and len(df) == 8
    assert df.loc[3, "alloc:anon_vma@anon_vma_fork"] == 1


def test_replay_writes_csv_and_parquet(tmp_path):
    t = tmp_path / "seed.trace"
    t.write_text(SEED)
    out = tmp_path / "ev.csv"
    r = run_cli("replay", str(t), "--era", "2.6.34", "--events", str(out))
    assert r.returncode == 0, r.stderr
    assert f"written to {out} (csv: 8 rows, 42 columns)" in r.stdout
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [x["kind"] for x in rows][:4] == ["spawn", "mmap", "touch", "fork"]
    assert rows[3]["alloc:anon_vma@anon_vma_fork"] == "1" and rows[5]["walk_candidates"] == "2"
    pq = pytest.importorskip("pyarrow.parquet")  # in the test extra: present wherever the suite runs
    pout = tmp_path / "ev.parquet"
    r = run_cli("replay", str(t), "--era", "2.6.34", "--events", str(pout))
    assert r.returncode == 0 and "(parquet: 8 rows" in r.stdout, r.stderr
    table = pq.read_table(pout)
    assert table.column_names == list(rows[0].keys())
    assert table.column("alloc:page@do_wp_page").to_pylist() == [int(x["alloc:page@do_wp_page"]) for x in rows]


def test_replay_events_per_era_and_refusals(tmp_path):
    t = tmp_path / "seed.trace"
    t.write_text(SEED)
    out = tmp_path / "ev.csv"
    r = run_cli("replay", str(t), "--era", "2.6.33", "--era", "6.0+fork_reuse=never", "--events", str(out))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ev-2.6.33.csv").exists() and (tmp_path / "ev-6.0_fork_reuse_never.csv").exists()
    r = run_cli("replay", str(t), "--memory", "--events", str(out))
    assert r.returncode == 2 and "--events and --memory" in r.stderr
    r = run_cli("replay", str(t), "--events", str(tmp_path / "missing" / "x.csv"))
    assert r.returncode == 2 and "--events" in r.stderr


# The reproducer _core.fuzz wrote for this variant (seed 1), plus one more operation: the
# tenth breaks invariant 4.
VARIANT_REPRO = (DATA / "variant-invariant4.trace").read_text() + "touch p4 0x10012000 0x1000 w\n"


def test_an_invariant_violation_ends_the_log_with_its_operation():
    sim = rmapsim.Simulator(era="2.6.34+prepare_reuse=any_compatible")
    res = sim.apply(VARIANT_REPRO, events=True, check_each=True)
    assert len(res) == 10 and "invariant 4" in (res.violation() or "")
    assert len(res.events) == 10 and res.events["result"][-1] == "InvariantViolation"
    assert res.events["kind"][-1] == "touch" and res.events["alloc:anon_vma@anon_vma_prepare"][-1] == 0, (
        "the fault reused a neighbour's anon_vma (the any_compatible rule) instead of allocating"
    )


def test_addresses_beyond_2_63_are_logged_exactly():
    ev = log("6.18", SEED + "munmap p1 0xfffffffffffff000 0x1000\n")
    assert int(ev["addr"][-1]) == 0xFFFFFFFFFFFFF000 and ev["result"][-1] == "BadAddress"
    assert int(ev["addr"][0]) == 2**64 - 1 == rmapsim.trace.NONE, "spawn has no address: the op arrays' NONE"


def test_an_empty_events_path_is_refused(tmp_path):
    t = tmp_path / "seed.trace"
    t.write_text(SEED)
    r = run_cli("replay", str(t), "--events", "")
    assert r.returncode == 2 and "--events" in r.stderr
