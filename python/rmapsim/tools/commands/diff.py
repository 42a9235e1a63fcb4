"""``rmapsim diff``: replay a trace in two eras in lockstep (the comparison:
:mod:`rmapsim.diff`)."""

from __future__ import annotations

from typing import Any

from ...diff import COLUMNS, diff, format_report
from ...errors import InvariantViolation, SimError
from .._common import CliError, _count, _era, check_output, parse_trace_input, read_text_input


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
            "layouts of both runs at the first divergence. Exit status: 0 identical, 1 they differ, 2 bad usage "
            "or a malformed trace."
        ),
    )
    d.add_argument("trace", metavar="TRACE", help="trace file ('-' for standard input)")
    d.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        required=True,
        help="era preset or spec (BASE+knob=value,...); give it exactly twice: --era A --era B",
    )
    d.add_argument("--csv", metavar="FILE", help="also write the per-operation table (every operation) as CSV")
    d.add_argument("--json", action="store_true", help="print the whole result as JSON instead of the text report")
    d.add_argument("--no-pictures", action="store_true", help="leave out the layout pictures")
    d.add_argument(
        "--limit",
        type=_count,
        default=50,
        metavar="N",
        help="show the first N operations in the text table, and the first divergence's (default 50; 0 = all)",
    )
    d.set_defaults(run=cmd_diff)


def cmd_diff(args: Any) -> int:
    """``rmapsim diff``: 0 identical, 1 the runs differ; bad usage raises CliError (2)."""
    import csv
    import json

    if len(args.era) != 2:
        raise CliError(f"give exactly two eras, --era A --era B (got {len(args.era)}: {', '.join(args.era)})")
    if args.csv:
        check_output("--csv", args.csv)
    name = "<stdin>" if args.trace == "-" else args.trace
    text = read_text_input(args.trace)
    parse_trace_input(text, name)  # a malformed trace: the CLI's error naming file and line
    try:
        res = diff(text, args.era[0], args.era[1], pictures=not args.no_pictures)
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
        print(json.dumps(res.as_dict(), indent=1))
    else:
        print(format_report(res, args.trace, args.limit))
        if args.csv:
            print(f"\nper-operation table written to {args.csv}")
    return 0 if res.identical else 1
