"""``rmapsim replay``: replay a trace and report the first invariant violation; ``--memory``:
objects and bytes over time in every era."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any, Optional

from ... import DEFAULT_ERA, Simulator, _progress, eras
from ...errors import InvariantViolation, SimError
from ...policy import kernel_holes, trace_wants_kernel_holes
from .._common import (
    CliError,
    _era,
    _era_file,
    _fmt_bytes,
    _positive,
    check_output,
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
        _replay_one(era, source, ops, args.check, name, args.events and _era_file(args.events, era, many))
        for era, source in runs
    ]
    return max(codes)


def _replay_one(era: str, source: str, ops: Any, check_each: bool, name: str, events: Optional[str] = None) -> int:
    """Replay ``ops`` in ``era`` and report; 1 on an invariant violation, else 0. With
    ``events``, write the event log there."""
    sim = Simulator(era=era)
    try:
        res = sim.apply(ops, check_each=check_each, events=bool(events))
        if events and res.events is not None:
            fmt = res.events.write(events)
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
        print(f"era {era}: VIOLATION: {e}")
        return 1
    except SimError as e:  # the replay itself failed (a resource limit, say): bad input for this machine
        raise CliError(f"replay failed in era {era}: {e}", name) from None
    errors = [e for e in res.errors() if e[1] != "InvariantViolation"]
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
        import csv

        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["era", *s.dtype.names])
            for r in rows:
                for smp in r["samples"].tolist():
                    w.writerow([r["era"], *smp])
        print(f"samples written to {args.csv}")
    return 0
