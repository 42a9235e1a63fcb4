"""Issue 15, part 6: per-CPU contention spans and the Perfetto trace (``contention --perfetto``).

The trace is checked by an independent validator written from the Trace Event Format
(JSON Object Format; complete "X" and metadata "M" events) and from the model's
aggregates, which come from the plain replay (``spans=False``), not from the spans.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections import defaultdict
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from test_parallel import storm  # the fork storm: N children writing P pages

import rmapsim
from rmapsim import perfetto
from rmapsim.cli import main
from rmapsim.contention import SPAN_HOLD, SPAN_OUTSIDE, SPAN_UPDATE, SPAN_WAIT

P = 4096


def two_pages() -> rmapsim.Simulator:
    """2.6.33, two pages mapped only by the parent: each walk finds its page at the first
    candidate; both walks need the one anon_vma's lock."""
    sim = rmapsim.Simulator(era="2.6.33")
    p = sim.spawn()
    a = sim.mmap(p, 2 * P)
    sim.touch(p, a, 2 * P)
    return sim


def rows(r: Any) -> List[Tuple[int, int, int, int, int, int]]:
    sp = r.spans
    return list(zip(*(sp[c].tolist() for c in ("cpu", "kind", "lock", "start", "end", "candidates"))))


# --- spans from the core -----------------------------------------------------------------------


def test_spans_are_off_by_default_and_the_aggregates_do_not_change():
    sim = storm("2.6.35", 6, 5)
    plain, traced = sim.contention(cpus=4), sim.contention(cpus=4, spans=True)
    assert plain.spans is None and traced.spans is not None
    for a in ("makespan", "hold_time", "wait_time", "outside_time"):
        assert getattr(plain, a) == getattr(traced, a), a
    for a in ("time", "holding", "waiting", "lock_id", "lock_hold", "lock_wait", "lock_acquisitions"):
        assert np.array_equal(getattr(plain, a), getattr(traced, a)), a


def test_spans_of_two_walks_on_one_lock_hand_derived():
    sim = two_pages()
    r = sim.contention(cpus=2, per_candidate=1, handoff=0, outside=0, spans=True)
    lock = int(r.lock_id[0])
    # CPU 0 holds 0..1; CPU 1 waits 0..1 (spinning: 2.6.33), then holds 1..2
    assert rows(r) == [(0, SPAN_HOLD, lock, 0, 1, 1), (1, SPAN_WAIT, lock, 0, 1, 0), (1, SPAN_HOLD, lock, 1, 2, 1)]
    assert {c: r.spans[c].dtype for c in r.spans} == {
        "cpu": np.uint32,
        "kind": np.uint8,
        "lock": np.uint64,
        "start": np.uint64,
        "end": np.uint64,
        "candidates": np.uint32,
    }


def test_spans_with_write_side_updates_hand_derived():
    sim = two_pages()
    r = sim.contention(cpus=2, per_candidate=1, handoff=0, outside=0, writer_every=1, writer_hold=3, spans=True)
    L = int(r.lock_id[0])
    # t=0 CPU 0 walks (0..1), CPU 1 queues; t=1 CPU 1 walks (1..2), CPU 0's update queues;
    # t=2 CPU 0 updates (2..5), CPU 1's update queues; t=5 CPU 1 updates (5..8)
    assert sorted(rows(r), key=lambda x: (x[0], x[3])) == [
        (0, SPAN_HOLD, L, 0, 1, 1),
        (0, SPAN_WAIT, L, 1, 2, 0),
        (0, SPAN_UPDATE, L, 2, 5, 0),
        (1, SPAN_WAIT, L, 0, 1, 0),
        (1, SPAN_HOLD, L, 1, 2, 1),
        (1, SPAN_WAIT, L, 2, 5, 0),
        (1, SPAN_UPDATE, L, 5, 8, 0),
    ]
    assert (r.makespan, r.wait_time, r.hold_time) == (8, 5, 8)


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.0", "6.18"])
def test_spans_add_up_to_the_aggregates_and_label_each_walk(era):
    sim = storm(era, 7, 6)
    cpus, every = 5, 4
    r = sim.contention(cpus=cpus, writer_every=every, writer_hold=7, spans=True)
    sp = r.spans
    dur = (sp["end"] - sp["start"]).astype(np.int64)
    kind = sp["kind"]
    assert set(kind.tolist()) <= {SPAN_WAIT, SPAN_HOLD, SPAN_UPDATE, SPAN_OUTSIDE}
    assert dur[kind == SPAN_WAIT].sum() == r.wait_time
    assert dur[(kind == SPAN_HOLD) | (kind == SPAN_UPDATE)].sum() == r.hold_time
    assert dur[kind == SPAN_OUTSIDE].sum() == r.outside_time
    walks = len(sim.anon_pages())
    assert (kind == SPAN_HOLD).sum() == walks and (kind == SPAN_UPDATE).sum() == walks // every
    # walk i ran on CPU i mod cpus, in order: its candidates are page_referenced's vmas_visited
    visited = sim.page_referenced().vmas_visited.tolist()
    for c in range(cpus):
        mine = (sp["cpu"] == c) & (kind == SPAN_HOLD)
        assert sp["candidates"][mine].tolist() == visited[c::cpus]
        # one CPU's spans are in time order and do not overlap
        on = sp["cpu"] == c
        s, e = sp["start"][on].astype(np.int64), sp["end"][on].astype(np.int64)
        assert (s[1:] >= e[:-1]).all()
    assert int(sp["end"].max()) == r.makespan


def test_spans_flag_is_validated():
    sim = two_pages()
    for bad in (1, "yes", None):
        with pytest.raises(rmapsim.InvalidArgument, match=f"spans must be True or False, got {bad!r}"):
            sim.contention(spans=bad)


def test_spans_beyond_the_host_budget_raise_out_of_memory_not_an_abort():
    # the host guard's budget is a quarter of the room left under RLIMIT_AS: leave 600 MB,
    # so about 150 MB; 2,000,000 one-candidate walks need 3 spans x 33 bytes each (198 MB)
    code = """
        import resource
        import rmapsim
        vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize:")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (600 << 20), vm + (600 << 20)))
        s = rmapsim.Simulator(era="6.18")
        p = s.spawn()
        a = s.mmap(p, 2_000_000 * 4096)
        s.touch(p, a, 2_000_000 * 4096)
        print("plain", s.contention(cpus=4).hold_time)
        try:
            s.contention(cpus=4, spans=True)
        except rmapsim.OutOfMemory as e:
            print("OOM", "contention spans refused" in str(e))
        print("after", s.contention(cpus=4).hold_time)
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:3] == ["plain 2000000", "OOM True", "after 2000000"]


# --- the trace: an independent validator ------------------------------------------------------


def validate(doc: Any) -> Dict[int, Dict[str, Any]]:
    """Check `doc` against the Trace Event Format's JSON Object Format and the layout the
    docs promise; return per pid its named CPU tracks and its X events."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    assert isinstance(doc.get("otherData"), dict)
    procs: Dict[int, Dict[str, Any]] = defaultdict(lambda: {"names": [], "threads": {}, "slices": []})
    for ev in doc["traceEvents"]:
        for field, kind in (("name", str), ("ph", str), ("pid", int), ("tid", int)):
            assert isinstance(ev.get(field), kind) and not isinstance(ev[field], bool), (field, ev)
        assert isinstance(ev.get("ts"), (int, float)) and ev["ts"] >= 0, ev
        pr = procs[ev["pid"]]
        if ev["ph"] == "M":
            assert isinstance(ev["args"], dict), ev
            if ev["name"] == "process_name":
                pr["names"].append(ev["args"]["name"])
            elif ev["name"] == "thread_name":
                assert ev["tid"] not in pr["threads"], ev
                pr["threads"][ev["tid"]] = ev["args"]["name"]
            else:
                assert ev["name"] == "thread_sort_index" and isinstance(ev["args"]["sort_index"], int), ev
        else:
            assert ev["ph"] == "X", ev
            assert isinstance(ev["dur"], (int, float)) and ev["dur"] >= 0, ev
            assert ev["cat"] in ("hold", "wait") and isinstance(ev["args"]["lock"], int), ev
            pr["slices"].append(ev)
    tids = [t for pr in procs.values() for t in pr["threads"]]
    assert len(tids) == len(set(tids)), "a tid named in two processes"
    for pid, pr in procs.items():
        assert len(pr["names"]) == 1, pid
        by_tid: Dict[int, List[Tuple[float, float]]] = defaultdict(list)
        for ev in pr["slices"]:
            assert ev["tid"] in pr["threads"], ev  # every slice is on a named CPU track
            by_tid[ev["tid"]].append((ev["ts"], ev["ts"] + ev["dur"]))
        for tid, spans in by_tid.items():
            spans.sort()
            for (s0, e0), (s1, _) in zip(spans, spans[1:]):
                assert s1 >= e0, (pid, tid, (s0, e0), s1)  # slices on one track never overlap
    return dict(procs)


def check_against_model(pr: Dict[str, Any], r: Any) -> None:
    """Per lock, hold and wait durations add up to the plain replay's lock_hold and
    lock_wait, hold slices to its acquisitions; the last release is the makespan."""
    hold: Dict[int, int] = defaultdict(int)
    wait: Dict[int, int] = defaultdict(int)
    acq: Dict[int, int] = defaultdict(int)
    for ev in pr["slices"]:
        lock = ev["args"]["lock"]
        if ev["cat"] == "hold":
            hold[lock] += ev["dur"]
            acq[lock] += 1
        else:
            wait[lock] += ev["dur"]
            assert ev["name"] == ("spin" if r.spinning else "sleep"), ev
    locks = r.lock_id.tolist()
    assert {k: hold[k] for k in locks} == dict(zip(locks, r.lock_hold.tolist()))
    assert {k: wait[k] for k in locks} == dict(zip(locks, r.lock_wait.tolist()))
    assert {k: acq[k] for k in locks} == dict(zip(locks, r.lock_acquisitions.tolist()))
    assert set(hold) | set(wait) <= set(locks)
    assert len(pr["threads"]) == r.cpus
    assert sorted(pr["threads"].values()) == sorted(f"CPU {c}" for c in range(r.cpus))
    assert max(ev["ts"] + ev["dur"] for ev in pr["slices"]) == r.makespan


def test_trace_of_two_walks_hand_derived(tmp_path):
    r = two_pages().contention(cpus=2, per_candidate=1, handoff=0, outside=0, spans=True)
    f = tmp_path / "t.json"
    n = perfetto.write_file(str(f), [r])
    doc = json.loads(f.read_text())
    slices = [ev for ev in doc["traceEvents"] if ev["ph"] == "X"]
    L = int(r.lock_id[0])
    assert slices == [
        {
            "name": "walk",
            "cat": "hold",
            "ph": "X",
            "ts": 0,
            "dur": 1,
            "pid": 1,
            "tid": 10000,
            "args": {"lock": L, "candidates": 1},
        },
        {"name": "spin", "cat": "wait", "ph": "X", "ts": 0, "dur": 1, "pid": 1, "tid": 10001, "args": {"lock": L}},
        {
            "name": "walk",
            "cat": "hold",
            "ph": "X",
            "ts": 1,
            "dur": 1,
            "pid": 1,
            "tid": 10001,
            "args": {"lock": L, "candidates": 1},
        },
    ]
    assert n == {"processes": 1, "tracks": 2, "slices": 3, "events": 1 + 2 * 2 + 3, "bytes": f.stat().st_size}
    assert doc["otherData"]["processes"]["1"]["model"] == dict(
        cpus=2, per_candidate=1, handoff=0, outside=0, writer_every=0, writer_hold=5
    )
    validate(doc)


def test_trace_refuses_results_without_spans(tmp_path):
    with pytest.raises(ValueError, match="no spans"):
        perfetto.write_file(str(tmp_path / "t.json"), [two_pages().contention()])
    assert os.listdir(tmp_path) == []


def test_cli_perfetto_trace_of_the_seed_run_validates(tmp_path, capsys):
    # the documented seed run, smaller: every era, 16 CPUs, with write-side updates
    f = tmp_path / "contention.json"
    eras = ["2.6.33", "2.6.34", "3.0", "3.8"]
    argv = ["contention", "-n", "12", "-p", "10", "--writer-every", "5"]
    assert main(argv + sum((["--era", e] for e in eras), []) + ["--perfetto", str(f)]) == 0
    out = capsys.readouterr().out
    assert f"perfetto trace written to {f}: 4 eras, 64 CPU tracks" in out
    doc = json.loads(f.read_text())
    procs = validate(doc)
    assert sorted(procs) == [1, 2, 3, 4]
    meta = doc["otherData"]
    assert meta["workload"] == {"name": "fork storm", "children": 12, "pages": 10}
    for pid, era in enumerate(eras, 1):
        plain = storm(era, 12, 10).contention(cpus=16, writer_every=5)  # the aggregate path, no spans
        check_against_model(procs[pid], plain)
        pol = rmapsim.Simulator(era=era).policy()
        assert procs[pid]["names"] == [f"{era} ({pol['lock_scope']}/{pol['lock_kind']})"]
        m = meta["processes"][str(pid)]
        assert (m["era"], m["makespan"], m["wait_time"]) == (era, plain.makespan, plain.wait_time)
        assert m["model"] == dict(cpus=16, per_candidate=1, handoff=1, outside=10, writer_every=5, writer_hold=5)
    # 2.6.33's family lock makes CPUs spin; 3.8's walks share the rwsem (only updates wait)
    assert any(ev["name"] == "spin" for ev in procs[1]["slices"])
    assert sum(ev["name"] == "update" for ev in procs[4]["slices"]) == 13 * 10 // 5  # one per 5th walk


def test_cli_perfetto_to_an_unwritable_place_is_usage_error(tmp_path, capsys):
    assert main(["contention", "-n", "2", "-p", "2", "--perfetto", str(tmp_path / "no" / "t.json")]) == 2
    assert "--perfetto" in capsys.readouterr().err


@pytest.mark.slow
def test_the_documented_seed_run_trace_validates(tmp_path, capsys):
    # docs/contention.md: `rmapsim contention --perfetto contention.json` (N = P = 200, every era)
    f = tmp_path / "contention.json"
    assert main(["contention", "--perfetto", str(f)]) == 0
    assert "10 eras, 160 CPU tracks, 565,478 slices" in capsys.readouterr().out
    procs = validate(json.loads(f.read_text()))
    for pid, era in enumerate(rmapsim.eras(), 1):
        check_against_model(procs[pid], storm(era, 200, 200).contention(cpus=16))


def test_trace_to_a_special_file_or_symlink_writes_through_it(tmp_path):
    """``--perfetto /dev/null`` run as root replaced /dev/null with a regular file (the
    trace was written beside it and renamed over it; seen with /dev/full). A FIFO stands
    in for the device here: it must stay a FIFO and receive the trace. A symlink must stay
    a symlink, its target getting the trace."""
    r = two_pages().contention(cpus=2, per_candidate=1, handoff=0, outside=0, spans=True)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open does not block
    try:
        n = perfetto.write_file(str(fifo), [r])  # about 1 KiB: it fits in the pipe's buffer
        got = b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
    finally:
        os.close(fd)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert n["bytes"] == len(got) and n["slices"] == 3
    validate(json.loads(got))
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    perfetto.write_file(str(link), [r])
    assert link.is_symlink() and os.readlink(link) == str(target)
    validate(json.loads(target.read_text()))
    assert sorted(os.listdir(tmp_path)) == ["link.json", "pipe", "target.json"]
