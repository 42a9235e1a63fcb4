"""``rmapsim diff``: replay a trace in two eras in lockstep (the comparison:
:mod:`rmapsim.diff`)."""

from __future__ import annotations

from typing import Any

from ...diff import COLUMNS, _diff, format_report
from ...errors import InvariantViolation, SimError
from .._common import (
    CliError,
    _count,
    _era,
    _finite,
    _int_range,
    add_json,
    check_out_dir,
    check_output,
    emit,
    parse_trace_input,
    read_text_input,
)


def register(sub: Any) -> None:
    """Add ``rmapsim diff`` to the subparsers ``sub``."""
    d = sub.add_parser(
        "diff",
        help="replay a trace in two eras in lockstep and report the first operation where their rmap state differs",
        description=(
            "Replays a version-1 trace in era A and era B one operation at a time and compares, after every "
            "operation, the op's result, the object counts, the VMAs, each VMA's anon_vma and chain (anon_vma "
            "identities mapped between the runs by the VMA and operation that first used them), which anon_vma "
            "each page points to, each page's full rmap_walk cost and the check() verdict (docs/diff.md). Prints "
            "the first divergence, the first differing operation per category, a per-operation table and the "
            "layouts of both runs at the first divergence. With --random N instead of a trace: the differential "
            "over N random traces, each difference attributed to the knobs that differ between A and B, with a "
            "shrunk example per knob (docs/diff.md). Exit status: 0 identical, 1 they differ, 2 bad usage "
            "or a malformed trace."
        ),
    )
    d.add_argument("trace", metavar="TRACE", nargs="?", help="trace file ('-' for standard input); not with --random")
    d.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        required=True,
        help="era preset or spec (BASE+knob=value,...); give it exactly twice: --era A --era B",
    )
    d.add_argument("--csv", metavar="FILE", help="also write the per-operation table (every operation) as CSV")
    add_json(d, "operation (diff_op), then one diff_summary; with --random: diff_random, diff_finding, diff_trace")
    d.add_argument("--no-pictures", action="store_true", help="leave out the layout pictures")
    d.add_argument(
        "--limit",
        type=_count,
        metavar="N",
        help="show the first N operations in the text table, and the first divergence's (default 50; 0 = all)",
    )
    r = d.add_argument_group("random differential (--random)")
    r.add_argument(
        "--random",
        type=_int_range(1, 10**7),
        metavar="N",
        help="compare A and B over N random traces instead of one trace, attributing each difference to a knob",
    )
    r.add_argument("--seed", type=_count, help="random seed of --random, 0 .. 2**64 - 1 (default 0)")
    r.add_argument(
        "--length",
        type=_int_range(1, 10**5),
        metavar="OPS",
        help="generated operations per random trace, after its first spawn (default 100)",
    )
    r.add_argument(
        "--fail-rate",
        type=_finite(0.0, 1.0),
        metavar="R",
        help="inject allocation failures into the random traces at rate R, as rmapsim fuzz does (default 0)",
    )
    r.add_argument("--basic", action="store_true", help="the fuzzer's basic operation mix (default: the extended mix)")
    r.add_argument("--no-shrink", action="store_true", help="keep each knob's example unshrunk")
    r.add_argument(
        "--ignore",
        metavar="K1,K2",
        help="knobs whose change is not looked at (B takes A's value), e.g. a new operation that A refuses "
        "and that would be every trace's first divergence",
    )
    r.add_argument("--out", metavar="DIR", help="write each finding's example as DIR/KNOB.trace (created if missing)")
    r.add_argument("--quiet", action="store_true", help="no progress line on standard error")
    d.set_defaults(run=cmd_diff)


def cmd_diff(args: Any) -> int:
    """``rmapsim diff``: 0 identical, 1 the runs differ; bad usage raises CliError (2)."""
    import csv

    if len(args.era) != 2:
        raise CliError(f"give exactly two eras, --era A --era B (got {len(args.era)}: {', '.join(args.era)})")
    if args.random is not None:
        return _cmd_random(args)
    if args.trace is None:
        raise CliError("give a TRACE file, or --random N for random traces")
    given = [o for o, v in _RANDOM_ONLY if getattr(args, v) not in (None, False)]
    if given:
        raise CliError(f"{', '.join(given)} go(es) with --random N, not with a TRACE")
    if args.csv:
        check_output("--csv", args.csv)
    name = "<stdin>" if args.trace == "-" else args.trace
    text = read_text_input(args.trace)
    parse_trace_input(text, name)  # a malformed trace: the CLI's error naming file and line
    try:
        res = _diff(
            text,
            args.era[0],
            args.era[1],
            pictures=not args.no_pictures,
            on_row=(lambda r: emit("diff_op", r)) if args.json else None,
        )
    except InvariantViolation:
        raise
    except SimError as e:
        raise CliError(str(e), name) from None
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
            w.writeheader()
            w.writerows(res.rows)
    if args.json:
        fd = res.first_divergence
        emit(
            "diff_summary",
            {
                "era_a": res.a,
                "era_b": res.b,
                "ops": res.ops,
                "identical": res.identical,
                "first_divergence_op": fd.op if fd else None,
                "first_divergence_line": fd.lineno if fd else None,
                "first_divergence_operation": fd.line if fd else None,
                "first_divergence_details": fd.details if fd else None,
                "first_by_category": res.first_by_category,
                "pictures": res.pictures,
            },
        )
    else:
        print(format_report(res, args.trace, 50 if args.limit is None else args.limit))
        if args.csv:
            print(f"\nper-operation table written to {args.csv}")
    return 0 if res.identical else 1


#: The options of the random differential only (option, attribute).
_RANDOM_ONLY = (
    ("--seed", "seed"),
    ("--length", "length"),
    ("--fail-rate", "fail_rate"),
    ("--basic", "basic"),
    ("--no-shrink", "no_shrink"),
    ("--out", "out"),
    ("--ignore", "ignore"),
    ("--quiet", "quiet"),
)


def _cmd_random(args: Any) -> int:
    """``rmapsim diff --random N``: 0 when no trace diverges, 1 when some do."""
    import os

    from ...diff_random import diff_random
    from ...diff_random import format_report as format_random

    if args.trace is not None:
        raise CliError(f"give a TRACE or --random N, not both (got TRACE {args.trace!r})")
    if args.csv:
        raise CliError("--csv goes with a TRACE; --random writes --json records")
    if args.no_pictures or args.limit is not None:
        raise CliError("--no-pictures and --limit go with a TRACE; --random draws no pictures or tables")
    if args.out is not None:
        check_out_dir(args.out, "each finding's example is written to DIR/KNOB.trace")
    from ... import _progress

    show = not args.quiet and _progress.enabled()
    bar = _progress.bar(args.random, "diff --random", "trace") if show else None

    def progress(done: int, total: int) -> None:
        assert bar is not None
        bar.update(1)
        if done == total:
            bar.close()

    res = diff_random(
        args.era[0],
        args.era[1],
        traces=args.random,
        seed=args.seed or 0,
        length=args.length or 100,
        fail_rate=args.fail_rate or 0.0,
        extended=not args.basic,
        shrink=not args.no_shrink,
        progress=progress if show else None,
        ignore=[k for k in args.ignore.split(",") if k] if args.ignore else [],
    )
    if args.out is not None:
        os.makedirs(args.out, exist_ok=True)
        for f in res.findings:
            if f.example is not None:
                with open(os.path.join(args.out, f"{f.name}.trace"), "w") as fh:
                    fh.write(f.example)
    if args.json:
        for rec in res.as_records():
            emit(rec.pop("type"), rec)
    else:
        print(format_random(res))
        if args.out:
            print(f"\nexamples written to {args.out}/KNOB.trace")
    return 0 if res.diverging == 0 else 1
