"""``rmapsim study``: sweep a workload over parameters and eras (the sweep:
:mod:`rmapsim.studies.study`); CSV, plots and a Markdown summary."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Dict, List

from ... import DEFAULT_ERA, Simulator
from ...errors import InvariantViolation, SimError
from .._common import CliError, _era, _int_range, _parse_value, check_output, parse_trace_input, trace_era


def register(sub: Any) -> None:
    """Add ``rmapsim study`` to the subparsers ``sub``."""
    st = sub.add_parser(
        "study",
        help="sweep a workload over parameters and eras; write CSV, plots and a Markdown summary",
        description=(
            "Runs WORKLOAD for every combination of --param values and every --era, one tidy row "
            "per run, and writes DIR/results.csv (and results.parquet with pyarrow), "
            "DIR/cost.png and DIR/cost.svg (with matplotlib: --y against --x per era, log axes) "
            "and DIR/summary.md. Workloads: fork_storm, fork_chain, prefork_server, "
            "mprotect_split, aim7_like, mremap_churn (see rmapsim.workloads)."
        ),
    )
    st.add_argument("workload", metavar="WORKLOAD")
    st.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V1,V2",
        help="workload parameter values, or knob:NAME=V1,V2 to sweep a policy knob crossed with the eras (repeatable)",
    )
    st.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        help="era preset or spec, BASE+knob=value,... (repeatable; default: all presets)",
    )
    st.add_argument("--out", required=True, metavar="DIR", help="output directory")
    st.add_argument("--jobs", type=_int_range(1, 1024), default=1, help="local worker processes, 1 .. 1024 (default 1)")
    st.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask scheduler ('local' starts a LocalCluster of 2 worker processes with the "
        "dashboard on; its address is printed)",
    )
    st.add_argument(
        "--base",
        metavar="FILE",
        help="start every run from this built state: a snapshot (Simulator.to_bytes) or a trace, "
        "replayed once (in the --era given, else the trace's era); runs in that one era",
    )
    st.add_argument("--x", help="parameter on the plot's x axis (default: the first --param)")
    st.add_argument("--y", default="mean_vmas_visited", help="metric on the y axis (default mean_vmas_visited)")
    st.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    st.set_defaults(run=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    import csv
    import os

    from ... import _progress
    from ...studies import workloads
    from ...studies.study import SweepInterrupted, dask_executor, sweep

    try:
        workloads.get(args.workload)
    except SimError as e:
        print(f"rmapsim study: {e}", file=sys.stderr)
        return 2
    check_output("--out", args.out, directory=True)
    grid: Dict[str, List[Any]] = {}
    for p in args.param:
        if "=" not in p:
            print(f"rmapsim study: --param {p!r} must look like K=V1,V2", file=sys.stderr)
            return 2
        k, vs = p.split("=", 1)
        conv = str if k.startswith("knob:") else _parse_value  # knob values stay text
        grid[k] = [conv(v) for v in vs.split(",") if v]
        if not grid[k]:
            raise CliError(f"--param {p!r} gives no values")
    if args.x is not None and args.x.startswith("knob:"):
        raise CliError(f"--x {args.x!r}: a knob is not a numeric axis; each knob value gets its own line")
    if args.x is not None and args.x not in grid:
        raise CliError(f"--x {args.x!r} must be one of the --param names ({', '.join(grid) or 'none given'})")
    executor = None
    try:
        base = _study_base(args) if args.base else None
        if args.scheduler:
            executor = dask_executor(address=None if args.scheduler == "local" else args.scheduler)
        elif args.jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            executor = ProcessPoolExecutor(args.jobs)
        interrupted = False
        try:
            with _progress.disabled() if args.quiet else contextlib.nullcontext():  # native calls' bars too
                rows = sweep(args.workload, grid, args.era, executor=executor, progress=not args.quiet, base=base)
        except SweepInterrupted as e:
            rows, interrupted = e.rows, True
    except SimError as e:
        print(f"rmapsim study: {e}", file=sys.stderr)
        return 2
    finally:
        if executor is not None:
            (getattr(executor, "close", None) or executor.shutdown)()
    os.makedirs(args.out, exist_ok=True)
    if rows:
        with open(os.path.join(args.out, "results.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        try:
            import pandas as pd

            pd.DataFrame(rows).to_parquet(os.path.join(args.out, "results.parquet"))
        except Exception:  # noqa: BLE001 - parquet is optional (pyarrow)
            pass
    if rows and args.y not in rows[0]:
        metrics = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k not in grid]
        raise CliError(
            f"--y {args.y!r} is not a column of the results (written to {args.out}/results.csv); "
            f"columns: {', '.join(metrics)}"
        )
    x = args.x or next((k for k in grid if not k.startswith("knob:")), None)
    plotted = _study_plot(rows, x, args.y, args.out) if rows and x else False
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write(f"# {args.workload}: {args.y} by {x}\n\n")
        swept = [k[len("knob:") :] if k.startswith("knob:") else k for k in grid]
        cols = list(dict.fromkeys(["era", "spec", *swept, args.y, "n_anon_vma", "n_anon_vma_chain", "wall_s"]))
        fh.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            fh.write("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |\n")
        if plotted:
            fh.write(f"\n![{args.y} by {x}](cost.png)\n")
    print(
        f"{len(rows)} runs written to {args.out}/ (results.csv, summary.md{', cost.png, cost.svg' if plotted else ''})"
    )
    if interrupted:
        print("interrupted: the rows finished so far were written", file=sys.stderr)
        return 130
    return 0


def _study_plot(rows: List[Dict[str, Any]], x: str, y: str, out: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import os

    fig, ax = plt.subplots(figsize=(6.5, 4))
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]  # lines that coincide stay visible
    for i, spec in enumerate(dict.fromkeys(r["spec"] for r in rows)):  # one line per variant run
        pts = sorted((r[x], r[y]) for r in rows if r["spec"] == spec)
        m, ls = styles[i % len(styles)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=m, linestyle=ls, markersize=7 - i % 4, label=spec)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize="small", loc="best")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cost.png"), dpi=120)
    fig.savefig(os.path.join(out, "cost.svg"))
    return True


def _study_base(args: argparse.Namespace) -> Simulator:
    """``study --base FILE``: a snapshot, or a trace replayed once in ``--era`` (one era)
    or the trace's own era."""
    try:
        data = Path(args.base).read_bytes()
    except OSError as e:
        raise CliError(f"--base {args.base}: {e.strerror or e}") from None
    if data.startswith(b"RMAPSNAP"):
        sim = Simulator.from_bytes(data)
        try:
            sim.check()
        except InvariantViolation as e:
            raise CliError(f"--base {args.base}: the snapshot's state breaks an invariant: {e}") from None
        print(f"base state: snapshot {args.base} (era {sim.era}, {sim.operations()} operations)")
        return sim
    text = data.decode("utf-8", "replace")
    if args.era and len(set(args.era)) > 1:
        raise CliError("--base runs in one era: give at most one --era")
    era = args.era[0] if args.era else (trace_era(text, args.base) or DEFAULT_ERA)
    sim = Simulator(era=era)
    res = sim.apply(parse_trace_input(text, args.base))
    broken = res.violation()
    if broken is None:
        try:
            sim.check()
        except InvariantViolation as e:
            broken = str(e)
    if broken:
        raise CliError(f"--base {args.base}: the state it builds breaks an invariant in era {era}: {broken}")
    print(
        f"base state: trace {args.base} replayed in era {era} ({len(res)} operations, "
        f"{len(res.errors())} returned errors; {sim.counts()['vma']} VMAs, {sim.counts()['page']} pages)"
    )
    return sim
