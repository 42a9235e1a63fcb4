"""``rmapsim replay``: replay a trace and report the first invariant violation; ``--memory``:
objects and bytes over time in every era."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any, Dict, Optional

from ... import DEFAULT_ERA, Simulator, _progress, eras
from ...errors import InvariantViolation, SimError
from ...policy import kernel_holes, trace_wants_kernel_holes
from .._common import (
    CliError,
    _era,
    _era_file,
    _fmt_bytes,
    _positive,
    add_json,
    check_output,
    emit,
    parse_trace_input,
    read_text_input,
    render_table,
    trace_era,
)


def register(sub: Any) -> None:
    """Add ``rmapsim replay`` to the subparsers ``sub``."""
    r = sub.add_parser(
        "replay",
        help="replay a trace file and report the first invariant violation",
        description=(
            "Replay a version-1 trace (docs/fuzzing.md). With --check, check() runs after every "
            "operation. Exit status: 0 no violation, 1 violation (the address space of every "
            "process is drawn), 2 bad usage or malformed trace."
        ),
    )
    r.add_argument("trace", metavar="FILE", help="trace file ('-' for standard input)")
    r.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        help="era preset or spec (BASE+knob=value,...; repeatable: one result per era; default: the "
        "trace's '# era' line, else the default era)",
    )
    r.add_argument(
        "--check",
        action="store_true",
        help="check() after every operation (default: only at 'check' lines and at the end)",
    )
    r.add_argument(
        "--memory",
        action="store_true",
        help="instead: replay in every era (or --era) and report objects and bytes over time, and the "
        "anon_vma_chain/vm_area_struct byte ratio (next to the live kernel's, for a recorded trace)",
    )
    r.add_argument(
        "--every",
        type=_positive,
        default=None,
        metavar="K",
        help="--memory: sample every K operations (default: 200 samples)",
    )
    r.add_argument("--csv", metavar="FILE", help="--memory: write every sample of every era here")
    r.add_argument(
        "--events",
        metavar="FILE",
        help="write the per-operation event log (allocations and frees by site, live objects, walks): "
        "Parquet for a .parquet name (needs pyarrow), CSV otherwise; with several --era, one file "
        "per era (the spec before the suffix)",
    )
    add_json(r, "era (replay; --memory: memory, and memory_sample per sample) and per returned error (replay_error)")
    _progress.quiet_option(r, cmd_replay)  # --quiet


def cmd_replay(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.trace == "-" else args.trace
    text = read_text_input(args.trace)
    if args.memory and args.events:
        raise CliError("--events and --memory are separate runs: give one")
    if args.memory:
        return cmd_replay_memory(args, text, name)
    if args.csv or args.every:
        raise CliError("--csv and --every need --memory")
    if args.events is not None and not args.events.strip():
        raise CliError("--events: give a file name (an empty one names nothing)")
    if args.events:
        check_output("--events", args.events)
        if args.events.endswith(".parquet") and importlib.util.find_spec("pyarrow") is None:
            raise CliError(
                f"--events {args.events}: Parquet needs pyarrow (pip install 'rmapsim[parquet]'); "
                "give a .csv name for CSV"
            )
    ops = parse_trace_input(text, name)
    if args.era:
        try:
            header: Optional[str] = trace_era(text, name)
        except CliError:
            header = None  # --era wins over a header this rmapsim cannot read
        source = "--era" + (f", overriding the trace header's {header}" if header and args.era != [header] else "")
        if trace_wants_kernel_holes(text):
            # a recorded trace replays with the kernel's rules for ranges with holes in every era
            args.era = [kernel_holes(e) for e in args.era]
            source += ", holes=kernel from the trace header"
        runs = [(e, source) for e in dict.fromkeys(args.era)]
    else:
        header = trace_era(text, name)
        runs = [(header, "the trace header") if header else (DEFAULT_ERA, "the default era; the trace names none")]
    many = len(runs) > 1
    codes = [
        _replay_one(era, source, ops, args.check, name, args.events and _era_file(args.events, era, many), args.json)
        for era, source in runs
    ]
    return max(codes)


def _replay_one(
    era: str, source: str, ops: Any, check_each: bool, name: str, events: Optional[str] = None, js: bool = False
) -> int:
    """Replay ``ops`` in ``era`` and report; 1 on an invariant violation, else 0. With
    ``events``, write the event log there; ``js``: JSON Lines records instead of text."""
    sim = Simulator(era=era)
    written = None
    try:
        res = sim.apply(ops, check_each=check_each, events=bool(events))
        if events and res.events is not None:
            fmt = res.events.write(events)
            written = events
            if not js:
                print(
                    f"event log of era {era} written to {events} ({fmt}: {len(res.events)} rows, "
                    f"{len(res.events.columns)} columns)"
                )
        msg = res.violation()
        if msg is None and len(res) == len(ops):
            try:
                sim.check()
            except InvariantViolation as e:
                msg = str(e)
    except InvariantViolation as e:
        if js:
            emit("replay", _replay_record(era, source, len(ops), None, None, str(e), None))
        else:
            print(f"era {era}: VIOLATION: {e}")
        return 1
    except SimError as e:  # the replay itself failed (a resource limit, say): bad input for this machine
        raise CliError(f"replay failed in era {era}: {e}", name) from None
    errors = [e for e in res.errors() if e[1] != "InvariantViolation"]
    if js:
        for i, kind, m in errors:
            emit("replay_error", {"era": era, "op": i + 1, "error": kind, "message": m})
        emit("replay", _replay_record(era, source, len(ops), len(res), len(errors), msg, written))
        return 0 if msg is None else 1
    print(f"replayed {len(res)} of {len(ops)} operations in era {era} (from {source}); {len(errors)} returned errors")
    for i, kind, m in errors[:20]:
        print(f"  op {i + 1}: {kind}: {m}")
    if msg is None:
        print(f"era {era}: no invariant violation")
        return 0
    print(f"era {era}: VIOLATION after operation {len(res)}: {msg}")
    for pid in sim.pids():
        print(sim.render_layout(int(pid)))
    return 1


def _replay_record(
    era: str, source: str, total: int, done: Optional[int], errors: Optional[int], violation: Optional[str], events: Any
) -> Dict[str, Any]:
    return {
        "era": era,
        "era_source": source,
        "ops": total,
        "ops_replayed": done,
        "errors": errors,
        "violation": violation,
        "events_file": events,
    }


def cmd_replay_memory(args: argparse.Namespace, text: str, name: str) -> int:
    from .. import record

    if args.csv:
        check_output("--csv", args.csv)
    era_list = list(dict.fromkeys(args.era)) if args.era else eras()
    if trace_wants_kernel_holes(text):
        era_list = list(dict.fromkeys(kernel_holes(e) for e in era_list))
    ops = parse_trace_input(text, name)
    try:
        rows = record.memory_report(ops, era_list, args.every or 0)
    except InvariantViolation:
        raise
    except SimError as e:
        raise CliError(str(e), name) from None
    if args.csv:
        _memory_csv(args.csv, rows)
    if args.json:
        for r in rows:
            for smp in r["samples"].tolist():
                emit("memory_sample", {"era": r["era"], **dict(zip(r["samples"].dtype.names, smp))})
            emit("memory", _memory_record(r, record.kernel_line(text)))
        return 0
    n = rows[0]["ops"] if rows else 0
    print(f"{args.trace}: {n} operations replayed in {len(rows)} era(s); peak = the sample with the most VMA bytes")
    head = [
        "era",
        "errors",
        "procs",
        "VMAs",
        "anon_vmas",
        "chains",
        "VMA bytes",
        "chain bytes",
        "chain/VMA@peak",
        "mean",
        "replay s",
    ]
    body = [
        [
            r["era"],
            str(r["errors"]),
            str(r["peak"]["processes"]),
            f"{r['peak']['vma']:,}",
            f"{r['peak']['anon_vma']:,}",
            f"{r['peak']['anon_vma_chain']:,}",
            _fmt_bytes(r["peak"]["vma_bytes"]),
            _fmt_bytes(r["peak"]["anon_vma_chain_bytes"]),
            f"{r['ratio_at_peak']:.3f}",
            f"{r['ratio_mean']:.3f}",
            f"{r['replay_s']:.2f}",
        ]
        for r in rows
    ]
    print(render_table(head, body))
    k = record.kernel_line(text)
    if k:
        print(f"live kernel during the recorded run: {k}")
    last = rows[-1]
    s = last["samples"]
    if len(s):
        print(f"over time ({last['era']}): ops -> VMAs / anon_vmas / chains")
        for j in sorted({(len(s) - 1) * k // 8 for k in range(9)}):
            print(
                f"  {int(s['ops'][j]):>8}  {int(s['vma'][j]):>7} / {int(s['anon_vma'][j]):>6} / {int(s['anon_vma_chain'][j]):>7}"
            )
    if args.csv:
        print(f"samples written to {args.csv}")
    return 0


def _memory_csv(path: str, rows: Any) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if rows:
            w.writerow(["era", *rows[0]["samples"].dtype.names])
        for r in rows:
            for smp in r["samples"].tolist():
                w.writerow([r["era"], *smp])


def _memory_record(r: Dict[str, Any], kernel: Optional[str]) -> Dict[str, Any]:
    """``replay --memory --json``: one era's peak and ratios (the table's row)."""
    return {
        "era": r["era"],
        "ops": r["ops"],
        "errors": r["errors"],
        "replay_s": r["replay_s"],
        **{f"peak_{k}": v for k, v in r["peak"].items()},
        "ratio_at_peak": r["ratio_at_peak"],
        "ratio_mean": r["ratio_mean"],
        "count_ratio_at_peak": r["count_ratio_at_peak"],
        "kernel_live": kernel,
    }
