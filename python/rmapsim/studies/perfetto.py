"""Contention replays as a trace for the Perfetto UI (``rmapsim contention --perfetto``).

The file is JSON in the Chrome Trace Event Format, the "JSON Object Format": an object
whose ``traceEvents`` array holds the events and whose ``otherData`` holds metadata.
Perfetto's UI and trace processor read it (see docs/contention.md, "A Perfetto trace").

Layout:

- one process per replay (era), ``pid`` 1, 2, ... in the order given, named by a
  ``process_name`` metadata event (``ph`` ``"M"``) after the era spec and its lock;
- one thread per simulated CPU, named ``CPU <n>`` by a ``thread_name`` metadata event (and
  ordered by ``thread_sort_index``), for every CPU of the replay even when it got no
  walk; its ``tid`` is ``TID_BASE`` × pid + n, unique across the file (no CPU on tid 0,
  and no thread id shared by two processes, which a trace importer may take for a
  reused thread);
- one complete event (``ph`` ``"X"``, ``ts`` and ``dur``) per span: category ``hold``
  named ``walk`` (a ``page_referenced`` walk, ``args.candidates`` the VMAs it visited) or
  ``update`` (a write-side update), category ``wait`` named ``spin`` or ``sleep`` after
  the era's lock kind; ``args.lock`` is the lock's id. Lock-free work between walks is
  left as the gap between slices.

Time: one model unit (a candidate-visit) is written as one microsecond, the format's
unit for ``ts`` and ``dur``, so a makespan of 80,399 units shows as 80.399 ms.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..contention import SPAN_HOLD, SPAN_UPDATE, SPAN_WAIT, ContentionResult

#: microseconds written per model time unit (a candidate-visit)
US_PER_UNIT = 1
#: CPU n of process pid is thread TID_BASE * pid + n (NR_CPUS is 8192)
TID_BASE = 10_000


def tid(pid: int, cpu: int) -> int:
    """The trace's thread id of CPU `cpu` in process `pid`."""
    return TID_BASE * pid + cpu


def _meta(name: str, pid: int, tid: int, args: Dict[str, Any]) -> str:
    return json.dumps({"name": name, "ph": "M", "ts": 0, "pid": pid, "tid": tid, "args": args}, separators=(",", ":"))


def _process_label(r: ContentionResult) -> str:
    return f"{r.era} ({r.lock})" if r.lock else r.era


def _slices(r: ContentionResult, pid: int) -> Iterable[str]:
    """One complete event per hold or wait span of `r`, per CPU in time order."""
    sp = r.spans
    assert sp is not None
    keep = np.isin(sp["kind"], (SPAN_WAIT, SPAN_HOLD, SPAN_UPDATE))
    order = np.lexsort((sp["start"][keep], sp["cpu"][keep]))  # by CPU, then time (stable)
    cols = [sp[c][keep][order].tolist() for c in ("kind", "lock", "start", "end", "candidates")]
    tids = (sp["cpu"][keep][order].astype(np.int64) + TID_BASE * pid).tolist()
    wait_name = "spin" if r.spinning else "sleep"
    for cpu, kind, lock, start, end, cands in zip(tids, *cols):
        ts, dur = start * US_PER_UNIT, (end - start) * US_PER_UNIT
        if kind == SPAN_HOLD:
            yield (
                f'{{"name":"walk","cat":"hold","ph":"X","ts":{ts},"dur":{dur},"pid":{pid},"tid":{cpu},'
                f'"args":{{"lock":{lock},"candidates":{cands}}}}}'
            )
        elif kind == SPAN_UPDATE:
            yield (
                f'{{"name":"update","cat":"hold","ph":"X","ts":{ts},"dur":{dur},"pid":{pid},"tid":{cpu},'
                f'"args":{{"lock":{lock}}}}}'
            )
        else:
            yield (
                f'{{"name":"{wait_name}","cat":"wait","ph":"X","ts":{ts},"dur":{dur},"pid":{pid},"tid":{cpu},'
                f'"args":{{"lock":{lock}}}}}'
            )


def other_data(
    results: Sequence[ContentionResult], workload: Optional[Dict[str, Any]] = None, command: Optional[str] = None
) -> Dict[str, Any]:
    """The trace's ``otherData``: generator, time unit, workload, and per process the era
    spec, its lock, the model's parameters and the replay's totals."""
    from .. import __version__

    d: Dict[str, Any] = {"generator": f"rmapsim {__version__}"}
    if command:
        d["command"] = command
    d["time_unit"] = f"1 model unit (candidate-visit) = {US_PER_UNIT} us"
    if workload:
        d["workload"] = dict(workload)
    d["processes"] = {
        str(pid): {
            "era": r.era,
            "lock": r.lock,
            "spinning": r.spinning,
            "model": dict(r.params),
            "makespan": r.makespan,
            "hold_time": r.hold_time,
            "wait_time": r.wait_time,
            "outside_time": r.outside_time,
            "locks": len(r.lock_id),
        }
        for pid, r in enumerate(results, 1)
    }
    return d


def write(
    out: IO[str],
    results: Sequence[ContentionResult],
    workload: Optional[Dict[str, Any]] = None,
    command: Optional[str] = None,
) -> Dict[str, int]:
    """Write `results` (each from ``Simulator.contention(..., spans=True)``) to `out` as a
    trace (see the module documentation). Returns counts: ``processes``, ``tracks`` (CPU
    threads), ``slices`` (complete events) and ``events`` (all trace events)."""
    for i, r in enumerate(results):
        if r.spans is None:
            raise ValueError(f"result {i} ({r.era}) has no spans: run Simulator.contention(..., spans=True)")
    out.write('{"otherData":')
    out.write(json.dumps(other_data(results, workload, command), separators=(",", ":")))
    out.write(',\n"traceEvents":[\n')
    n = {"processes": len(results), "tracks": 0, "slices": 0, "events": 0}
    first = True

    def emit(line: str) -> None:
        nonlocal first
        if not first:
            out.write(",\n")
        out.write(line)
        first = False
        n["events"] += 1

    for pid, r in enumerate(results, 1):
        emit(_meta("process_name", pid, 0, {"name": _process_label(r)}))
        for cpu in range(r.cpus):
            emit(_meta("thread_name", pid, tid(pid, cpu), {"name": f"CPU {cpu}"}))
            emit(_meta("thread_sort_index", pid, tid(pid, cpu), {"sort_index": cpu}))
            n["tracks"] += 1
        for line in _slices(r, pid):
            emit(line)
            n["slices"] += 1
    out.write("\n]}\n")
    return n


def write_file(
    path: str,
    results: Sequence[ContentionResult],
    workload: Optional[Dict[str, Any]] = None,
    command: Optional[str] = None,
) -> Dict[str, int]:
    """:func:`write` to the file `path`. A regular file (or a new one) is replaced whole:
    written beside it, then renamed; through a symlink, its target is replaced. Anything
    else that exists (``/dev/null``, a pipe) is written in place, never replaced. The
    counts also give ``bytes``, the bytes written (the trace is ASCII)."""
    real = os.path.realpath(path)
    if os.path.exists(real) and not os.path.isfile(real):
        with open(real, "w", encoding="utf-8") as f:
            sized = _Counting(f)
            n = write(sized, results, workload, command)  # type: ignore[arg-type]
        n["bytes"] = sized.chars
        return n
    tmp = f"{real}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            n = write(f, results, workload, command)
        os.replace(tmp, real)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    n["bytes"] = os.path.getsize(real)
    return n


class _Counting:
    """A text stream that counts what is written through it."""

    def __init__(self, f: IO[str]) -> None:
        self.f, self.chars = f, 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        return self.f.write(s)


__all__: List[str] = ["TID_BASE", "US_PER_UNIT", "other_data", "tid", "write", "write_file"]
