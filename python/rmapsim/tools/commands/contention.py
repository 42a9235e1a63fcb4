"""``rmapsim contention``: the fork storm's page_referenced walks on simulated CPUs under
each era's locks (the model: :mod:`rmapsim.contention`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict

from ... import PAGE_SIZE, Simulator, _progress, eras
from .._common import (
    NR_CPUS,
    CliError,
    _children,
    _count,
    _era,
    _hold,
    _int_range,
    _pages,
    add_json,
    check_output,
    emit,
)
from .study import _formats


def register(sub: Any) -> None:
    """Add ``rmapsim contention`` to the subparsers ``sub``."""
    c = sub.add_parser(
        "contention",
        help="replay the fork storm's page_referenced walks on simulated CPUs under each era's locks",
        description=(
            "Builds the fork storm (--children, --pages), then replays one page_referenced walk per "
            "anon page on --cpus simulated CPUs in virtual time (docs/contention.md: lock hold = "
            "candidates visited, --outside units of lock-free work between walks). Prints, per era, "
            "the share of CPU time spent waiting and the mean number of waiting CPUs; --plot writes "
            "a figure of holding/waiting CPUs over time."
        ),
    )
    c.add_argument("--children", "-n", type=_children, default=200, metavar="N", help="children (default 200)")
    c.add_argument("--pages", "-p", type=_pages, default=200, metavar="P", help="pages (default 200)")
    c.add_argument(
        "--cpus",
        type=_int_range(1, NR_CPUS, "NR_CPUS"),
        default=16,
        help=f"simulated CPUs, 1 .. {NR_CPUS} (default 16)",
    )
    c.add_argument(
        "--outside", type=_hold, default=10, help="lock-free work between walks, in candidate-visits (default 10)"
    )
    c.add_argument(
        "--writer-every",
        type=_count,
        default=0,
        help="a write-side update (fork/exit) after every K-th walk (default 0: none)",
    )
    c.add_argument("--writer-hold", type=_hold, default=5, help="hold of each write-side update (default 5)")
    c.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        help="era preset or spec, BASE+knob=value,... (repeatable; default: all presets)",
    )
    c.add_argument("--plot", metavar="FILE", help="write a PNG/SVG figure (needs matplotlib)")
    c.add_argument(
        "--perfetto",
        metavar="FILE",
        help="write the replays as a Chrome/Perfetto trace-event JSON file, one process per era and one "
        "track per CPU (open it at ui.perfetto.dev; docs/contention.md)",
    )
    c.add_argument(
        "--time-scale",
        choices=("log", "linear"),
        default="log",
        help="--plot's shared time axis (default log: 2.6.33 runs 100 times longer than 3.8)",
    )
    c.add_argument("--title", help="--plot's title (default: the model's parameters)")
    c.add_argument("--xlabel", help="--plot's x axis label")
    c.add_argument("--ylabel", help="--plot's y axis label")
    c.add_argument(
        "--format",
        type=_formats,
        metavar="F1,F2",
        help="also write --plot in these formats, same name, other suffix (e.g. svg,png)",
    )
    add_json(c, "era (record type contention)")
    _progress.quiet_option(c, cmd_contention)  # --quiet


def cmd_contention(args: argparse.Namespace) -> int:
    plt: Any = None
    if args.plot:
        check_output("--plot", args.plot)
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("rmapsim contention: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2
        kinds = plt.figure().canvas.get_supported_filetypes()
        plt.close("all")
        ext = Path(args.plot).suffix.lstrip(".").lower()
        if ext not in kinds:
            raise CliError(f"--plot {args.plot}: unknown figure format {ext!r}; use one of {', '.join(sorted(kinds))}")
    if args.perfetto:
        check_output("--perfetto", args.perfetto)
    results = []
    for era in args.era or eras():
        sim = Simulator(era=era)
        parent = sim.spawn()
        length = args.pages * PAGE_SIZE
        addr = sim.mmap(parent, length)
        sim.touch(parent, addr, length)
        sim.touch_many(sim.fork_many(parent, args.children), addr, length)
        results.append(
            sim.contention(
                cpus=args.cpus,
                outside=args.outside,
                writer_every=args.writer_every,
                writer_hold=args.writer_hold,
                spans=bool(args.perfetto),
            )
        )
    if args.json:
        for r in results:
            emit("contention", contention_fields(args, r))
    else:
        _print_table(args, results)
    if plt is not None:
        from ...contention import plot_results

        title = args.title or (
            f"fork storm N = {args.children}, P = {args.pages}: page_referenced walks on {args.cpus} CPUs "
            f"(outside = {args.outside}, writer_every = {args.writer_every})"
        )
        fig = plot_results(results, time_scale=args.time_scale, title=title, xlabel=args.xlabel, ylabel=args.ylabel)
        paths = [Path(args.plot)] + [Path(args.plot).with_suffix("." + f) for f in args.format or ()]
        for path in dict.fromkeys(paths):
            fig.savefig(path, dpi=150, bbox_inches="tight", pad_inches=0.1)
        plt.close(fig)
        print(f"plot written to {', '.join(str(p) for p in dict.fromkeys(paths))}")
    if args.perfetto:
        from ...studies import perfetto

        n = perfetto.write_file(
            args.perfetto,
            results,
            {"name": "fork storm", "children": args.children, "pages": args.pages},
            "rmapsim " + " ".join(sys.argv[1:]),
        )
        print(
            f"perfetto trace written to {args.perfetto}: {n['processes']} eras, {n['tracks']} CPU tracks, "
            f"{n['slices']:,} slices, {n['bytes']:,} bytes (open it at https://ui.perfetto.dev)"
        )
    return 0


def _print_table(args: argparse.Namespace, results: Any) -> None:
    print(f"fork storm N={args.children} P={args.pages}: one page_referenced walk per page on {args.cpus} CPUs")
    print(f"{'era':<11} {'lock':<18} {'makespan':>10} {'waiting':>8} {'mean waiting CPUs':>18}")
    for r in results:
        pol = Simulator(era=r.era).policy()
        lock = f"{pol['lock_scope']}/{pol['lock_kind']}"
        s = r.summary()
        print(
            f"{r.era:<11} {lock:<18} {s['makespan']:>10,} {100 * s['waiting_share']:>7.1f}% {s['mean_waiting_cpus']:>18.2f}"
        )


def contention_fields(args: argparse.Namespace, r: Any) -> Dict[str, Any]:
    """``contention --json``: one era's run, the table's row (``ContentionResult.summary()``
    names) with the parameters and the era's lock (docs/output-schema.md)."""
    pol = Simulator(era=r.era).policy()
    return {
        **r.summary(),
        "lock_scope": pol["lock_scope"],
        "lock_kind": pol["lock_kind"],
        "children": args.children,
        "pages": args.pages,
        "outside": args.outside,
        "writer_every": args.writer_every,
        "writer_hold": args.writer_hold,
    }
