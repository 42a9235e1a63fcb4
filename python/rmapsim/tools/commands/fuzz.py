"""``rmapsim fuzz``: the native fuzzer and shrinker over one or more eras."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, Optional

from ... import DEFAULT_ERA
from .._common import _count, _era, _finite, _int_range, add_json, check_out_dir, emit, era_file_name


def register(sub: Any) -> None:
    """Add ``rmapsim fuzz`` to the subparsers ``sub``."""
    f = sub.add_parser(
        "fuzz",
        help="fuzz an era with random operation sequences and shrink any violation",
        description=(
            "Random forks, exits, execs, mmaps, munmaps, faults, mprotects, madvises, mremaps, "
            "reclaim and injected allocation failures over a few processes; structural checks "
            "after every operation, the full rmap oracle every --full-check-every operations. "
            "A violation is shrunk (delta debugging) to a minimal trace. Deterministic per seed, "
            "--jobs and --max-ops (the first violation in (operation within worker, worker) order is "
            "reported); a --seconds budget is not deterministic. Exit status: 1 violation found (trace written), 0 none, 2 bad usage (an unwritable --out "
            "is refused before the run)."
        ),
    )
    f.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        help=f"era preset or spec (BASE+knob=value,...; repeatable: one fuzz run and result per era; "
        f"default {DEFAULT_ERA})",
    )
    f.add_argument(
        "--seconds", type=_finite(0.0), default=10.0, help="time budget (default 10; 0 = no limit, needs --max-ops)"
    )
    f.add_argument("--max-ops", type=_count, default=0, help="operation budget (0 = no limit)")
    f.add_argument("--seed", type=_count, default=0, help="random seed, 0 .. 2**64 - 1 (default 0)")
    f.add_argument(
        "--fail-rate",
        type=_finite(0.0, 1.0),
        default=0.02,
        help="probability per operation of arming an allocation failure (default 0.02)",
    )
    f.add_argument(
        "--full-check-every",
        type=_count,
        default=16,
        help="full check() interval in operations (default 16; 0 = never)",
    )
    f.add_argument(
        "--jobs",
        type=_int_range(1, 64, "the most workers"),
        default=1,
        metavar="N",
        help="parallel workers, 1 .. 64 (default 1); worker w's stream comes from (seed, w) and "
        "--max-ops is split among them",
    )
    f.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (created if missing): each era's shrunk reproducer is written to "
        "DIR/reproducer-ERA.trace (default: print it)",
    )
    f.add_argument(
        "--extended",
        action="store_true",
        help="also generate private file mappings, MAP_NORESERVE and MAP_STACK mappings and brk (a different "
        "operation stream per seed)",
    )
    add_json(f, "era (record type fuzz)")
    f.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    f.set_defaults(run=cmd_fuzz)


def cmd_fuzz(args: argparse.Namespace) -> int:
    if args.seconds <= 0 and args.max_ops <= 0:
        print("rmapsim fuzz: give --seconds > 0 or --max-ops > 0", file=sys.stderr)
        return 2
    if args.out is not None:
        check_out_dir(args.out, "each reproducer is written to DIR/reproducer-ERA.trace")
    seconds = args.seconds if args.max_ops <= 0 else 0.0
    eras_ = list(dict.fromkeys(args.era or [DEFAULT_ERA]))
    code = 0
    for era in eras_:
        code = max(code, _fuzz_one(args, era, seconds))
    return code


def _fuzz_one(args: argparse.Namespace, era: str, seconds: float) -> int:
    from ... import _core, _progress

    if not args.quiet:
        budget = f"{args.max_ops} ops" if args.max_ops > 0 else f"{seconds:g} s"
        print(f"[fuzz] era {era}, seed {args.seed}, budget {budget} ...", file=sys.stderr, flush=True)
    lines = _progress.Lines(f"[fuzz] era {era}: ")
    interrupted: Optional[KeyboardInterrupt] = None
    try:
        with _progress.disabled() if args.quiet else _progress.reporting(lines):
            r = _core.fuzz(
                era,
                seed=args.seed,
                max_ops=max(args.max_ops, 0),
                seconds=seconds,
                fail_rate=args.fail_rate,
                full_check_every=args.full_check_every,
                extended=args.extended,
                jobs=args.jobs,
            )
    except KeyboardInterrupt as e:  # report what was found so far, then exit 130 (main)
        if getattr(e, "fuzz_report", None) is None:
            raise
        r, interrupted = e.fuzz_report, e  # type: ignore[attr-defined]
    try:
        return _fuzz_report(args, era, r)
    finally:
        if interrupted is not None:
            raise interrupted


def reproducer_path(out: str, era: str) -> str:
    """Where ``fuzz --out DIR`` writes ``era``'s reproducer."""
    return os.path.join(out, era_file_name("reproducer", era, ".trace"))


def _fuzz_report(args: argparse.Namespace, era: str, r: Dict[str, Any]) -> int:
    rate = r["ops"] / r["seconds"] if r["seconds"] > 0 else float("inf")
    shrunk = None
    if r["violation"] is not None:
        shrunk = len([ln for ln in r["trace"].splitlines() if ln and not ln.startswith("#")])
    out = None
    if r["violation"] is not None and args.out:
        os.makedirs(args.out, exist_ok=True)
        out = reproducer_path(args.out, era)
        with open(out, "w") as fh:
            fh.write(r["trace"])
    if args.json:
        emit(
            "fuzz",
            {
                "era": era,
                "seed": args.seed,
                "ops": r["ops"],
                "runs": r["runs"],
                "jobs": r.get("jobs", 1),
                "wall_s": r["seconds"],
                "ops_per_s": rate if r["seconds"] > 0 else None,
                "violation": r["violation"],
                "unshrunk_ops": r["unshrunk_len"] if r["violation"] is not None else None,
                "shrunk_ops": shrunk,
                "reproducer": out,
                "trace": r["trace"] if r["violation"] is not None else None,
            },
        )
        return 0 if r["violation"] is None else 1
    jobs = f", {r['jobs']} workers" if r.get("jobs", 1) > 1 else ""
    print(f"era {era}: {r['ops']:,} operations in {r['runs']:,} runs{jobs}, {r['seconds']:.2f} s ({rate:,.0f} ops/s)")
    if r["violation"] is None:
        print(f"era {era}: no violation found")
        return 0
    print(f"era {era}: VIOLATION: {r['violation']}")
    print(f"shrunk from {r['unshrunk_len']} to {shrunk} operations")
    if out:
        print(f"reproducer written to {out} (replay: rmapsim replay {out} --check)")
    else:
        print(r["trace"], end="")
    return 1
