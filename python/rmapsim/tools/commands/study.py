"""``rmapsim study``: sweep a workload over parameters and eras (the sweep:
:mod:`rmapsim.studies.study`); CSV, plots and a Markdown summary."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from ... import DEFAULT_ERA, Simulator
from ...errors import InvariantViolation, SimError
from .._common import (
    CliError,
    _era,
    _int_range,
    _parse_value,
    add_json,
    check_out_dir,
    emit,
    parse_trace_input,
    trace_era,
)


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
    st.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory (created if missing): results.csv, results.parquet, summary.md, cost.png, cost.svg",
    )
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
    st.add_argument(
        "--y",
        help="metric(s) on the y axis, comma-separated for one panel each (default: the workload's "
        "own, rmapsim.workloads.DEFAULT_METRIC: mean_vmas_visited; aim7_like its reclaim walks)",
    )
    st.add_argument("--title", help="figure title (default: the workload and its fixed parameters)")
    st.add_argument("--xlabel", help="x axis label (default: the parameter's meaning and unit)")
    st.add_argument("--ylabel", help="y axis label (default: the metric's meaning and unit)")
    st.add_argument(
        "--facet",
        metavar="PARAM",
        help="one panel per value of this swept parameter (default: chosen when the eras cross another one)",
    )
    st.add_argument("--name", default="cost", help="figure file name without extension (default cost)")
    st.add_argument(
        "--format",
        type=_formats,
        default=("png", "svg"),
        metavar="F1,F2",
        help="figure formats, comma-separated (default png,svg)",
    )
    add_json(st, "run (record type study_run: the results.csv row)")
    st.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    st.set_defaults(run=cmd_study)


def _formats(text: str) -> tuple:
    """``--format png,svg``: figure formats matplotlib can write."""
    fs = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    known = ("png", "svg", "pdf", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")
    bad = [f for f in fs if f not in known]
    if not fs or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: formats are {', '.join(known)}")
    return fs


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
    if args.era:  # an era given twice is one series, run once
        args.era = list(dict.fromkeys(args.era))
    check_out_dir(args.out, "results.csv, summary.md and the figures are written into it")
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
    if args.facet is not None and (args.facet not in grid or len(grid[args.facet]) < 2 or args.facet == args.x):
        raise CliError(f"--facet {args.facet!r} must be a --param with several values, other than --x")
    _check_y(args, grid)
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
    ys = args.y.split(",") if args.y else list(workloads.DEFAULT_METRIC.get(args.workload, ("mean_vmas_visited",)))
    for y in ys:
        if rows and y not in rows[0]:
            metrics = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k not in grid]
            raise CliError(
                f"--y {y!r} is not a column of the results (written to {args.out}/results.csv); "
                f"columns: {', '.join(metrics)}"
            )
    if args.json:
        for r in rows:
            emit("study_run", r)
    x = args.x or next((k for k in grid if not k.startswith("knob:")), None)
    plotted = _study_plot(rows, grid, x, ys, args) if rows else []
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write(f"# {args.workload}: {', '.join(ys)}{f' by {x}' if x else ' by era'}\n\n")
        swept = [k[len("knob:") :] if k.startswith("knob:") else k for k in grid]
        extra = ["crash"] if rows and "crash" in rows[0] else []
        cols = list(dict.fromkeys(["era", "spec", *swept, *ys, "n_anon_vma", "n_anon_vma_chain", "wall_s", *extra]))
        fh.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            fh.write("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |\n")
        if plotted:
            fh.write(f"\n![{', '.join(ys)}]({os.path.basename(plotted[0])})\n")
    names = "".join(", " + os.path.basename(p) for p in plotted)
    print(f"{len(rows)} run{'s' if len(rows) != 1 else ''} written to {args.out}/ (results.csv, summary.md{names})")
    if interrupted:
        print("interrupted: the rows finished so far were written", file=sys.stderr)
        return 130
    return 0


def _check_y(args: argparse.Namespace, grid: Dict[str, List[Any]]) -> None:
    """Each ``--y`` metric must be a numeric column of the workload's rows, checked before
    the sweep: a metric every workload reports (``workloads.measure``) passes at once; any
    other is looked for in one run of the sweep's cheapest point (each parameter's smallest
    value, the first era), so a typo costs that run, not the whole sweep. The probe's own
    errors are left to the sweep, which reports them as without --y. No ``--y``: the
    workload's own metrics (``workloads.DEFAULT_METRIC``), which need no check."""
    from ... import eras as all_eras
    from ...studies import workloads

    if not args.y:
        return
    ys = args.y.split(",")
    for y in ys:
        if y in grid or y in ("era", "spec"):
            raise CliError(f"--y {y!r} is a swept parameter, not a metric")
    era = (args.era or all_eras())[0]
    common = workloads.measure(Simulator(era=era), time.perf_counter())
    rest = [y for y in ys if y not in common]
    if not rest or args.base:  # --base: the probe would need the base state; the sweep's rows are checked
        return
    point = {}
    for k, vs in grid.items():
        if k.startswith("knob:"):
            continue
        nums = [v for v in vs if isinstance(v, (int, float))]
        point[k] = min(nums) if len(nums) == len(vs) else vs[0]
    try:
        row = workloads.get(args.workload)(era, **point)
    except (SimError, TypeError):
        return  # bad parameters: the sweep reports them as it does without --y
    metrics = [k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for y in rest:
        if y not in metrics:
            raise CliError(f"--y {y!r} is not a metric of {args.workload}; its metrics: {', '.join(metrics)}")


def _study_plot(rows: List[Dict[str, Any]], grid: Dict[str, Any], x: Any, ys: List[str], args: Any) -> List[str]:
    """The study's figure (:func:`rmapsim.studies.figures.plot_sweep`), in every
    ``--format``; the paths written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    from ...studies import figures

    try:
        fig = figures.plot_sweep(
            rows,
            list(grid),
            x,
            ys,
            workload=args.workload,
            facet=args.facet,
            title=args.title,
            xlabel=args.xlabel,
            ylabel=args.ylabel,
        )
    except SimError as e:
        raise CliError(str(e)) from None
    try:
        return figures.save(fig, args.out, args.name, args.format)
    finally:
        plt.close(fig)


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
