"""Command line: ``rmapsim demo`` (also ``python -m rmapsim demo``) and ``rmapsim eras``."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from . import DEFAULT_ERA, MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE, Simulator, eras
from .errors import InvalidArgument, InvariantViolation, SimError
from .policy import Policy, era_spec, knobs


def seed_scenario(era: str, children: int, pages: int, seed: int = 0) -> Dict[str, Any]:
    """The 2010 thread's workload: one parent maps ``pages`` pages and writes them, forks
    ``children`` children, each child writes every page; then every anon page is walked
    once with a full ``rmap_walk`` and once with ``page_referenced``."""
    t0 = time.perf_counter()
    sim = Simulator(era=era, seed=seed)
    parent = sim.spawn()
    length = pages * PAGE_SIZE
    addr = sim.mmap(parent, length)
    sim.touch(parent, addr, length, write=True)
    kids = sim.fork_many(parent, children)
    sim.touch_many(kids, addr, length, write=True)
    t1 = time.perf_counter()
    s = sim.rmap_walk(aggregate=True)  # totals and percentiles, no per-page rows
    t2 = time.perf_counter()
    referenced = sim.page_referenced(aggregate=True)
    t3 = time.perf_counter()
    counts = sim.counts()
    mem = sim.memory()
    return {
        "era": era,
        "children": children,
        "pages": pages,
        "walks": s["walks"],
        "mean": s["mean"],
        "p50": s["p50"],
        "max": s["max"],
        "total_vmas_visited": s["total_vmas_visited"],
        "page_referenced_mean": referenced["mean"],
        "anon_vma": counts["anon_vma"],
        "anon_vma_bytes": mem["anon_vma"],
        "anon_vma_chain": counts["anon_vma_chain"],
        "anon_vma_chain_bytes": mem["anon_vma_chain"],
        "vma": counts["vma"],
        "vma_bytes": mem["vm_area_struct"],
        "build_s": t1 - t0,
        "walk_s": t2 - t1,
        "page_referenced_s": t3 - t2,
        "wall_s": t3 - t0,
    }


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def format_table(rows: List[Dict[str, Any]]) -> str:
    head = [
        "era",
        "walks",
        "mean",
        "p50",
        "max",
        "page_ref mean",
        "anon_vma",
        "(bytes)",
        "anon_vma_chain",
        "(bytes)",
        "build s",
        "walk s",
    ]
    body = [
        [
            r["era"],
            f"{r['walks']:,}",
            f"{r['mean']:.3f}",
            f"{r['p50']:.0f}",
            f"{r['max']:,}",
            f"{r['page_referenced_mean']:.3f}",
            f"{r['anon_vma']:,}",
            _fmt_bytes(r["anon_vma_bytes"]),
            f"{r['anon_vma_chain']:,}",
            _fmt_bytes(r["anon_vma_chain_bytes"]),
            f"{r['build_s']:.2f}",
            f"{r['walk_s']:.2f}",
        ]
        for r in rows
    ]
    return render_table(head, body)


def render_table(head: List[str], body: List[List[str]], left: int = 1) -> str:
    """A plain text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i >= left else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def format_eras_table() -> str:
    """Knobs (rows) by era preset (columns), each value as the API accepts it; the default
    era is marked with * (explained under the table, with the variant syntax)."""
    names = eras()
    cols = [dict(Policy.preset(e).values) for e in names]
    head = ["knob"] + [e + ("*" if e == DEFAULT_ERA else "") for e in names]
    rows = [[k.name] + [c[k.name] for c in cols] for k in knobs()]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    foot = [
        "",
        f"* {DEFAULT_ERA} is the default era: Simulator() without an era, and replay or fuzz without --era.",
        "Values are written as the API accepts them. A variant is a preset with knobs changed, written",
        "BASE+knob=value[,knob=value...] wherever an era is accepted, e.g. 6.0+fork_reuse=never;",
        "rmapsim eras --knobs describes each knob and the values it takes.",
    ]
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows] + foot)


def eras_json() -> Dict[str, Any]:
    """``rmapsim eras --json``: the default era, every preset's knob values, and each knob's
    meaning and kernel change."""
    return {
        "default": DEFAULT_ERA,
        "variant_syntax": "BASE+knob=value[,knob=value...]",
        "eras": {e: dict(Policy.preset(e).values) for e in eras()},
        "knobs": [{"name": k.name, "meaning": k.meaning, "kernel": k.kernel} for k in knobs()],
    }


# Exit statuses (docs/api-contract.md, "Command line exit status").
EXIT_OK = 0
EXIT_FINDING = 1  # what the command looks for: an invariant violation, a kernel disagreement
EXIT_USAGE = 2  # bad usage or bad input; one line on stderr
EXIT_SOFTWARE = 70  # an unexpected exception: a bug in rmapsim (sysexits EX_SOFTWARE); traceback kept
EXIT_UNAVAILABLE = 77  # cannot run here (validate-kernel, record --kernel-ratio)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_PIPE = 141  # stdout closed by the reader (128 + SIGPIPE, as a tool killed by SIGPIPE)

U64_MAX = (1 << 64) - 1
NR_CPUS = 8192  # the most CPUs the contention model runs (the kernel's NR_CPUS maximum)
PID_MAX = 4_194_304  # the simulator's default pid_max (PID_MAX_LIMIT on 64-bit): pids 1 .. PID_MAX - 1


class CliError(Exception):
    """Bad usage or bad input found by a command: printed as one line
    ``rmapsim <command>: [<file>:[<line>:]] <problem>``, exit status 2."""

    def __init__(self, problem: str, file: Optional[str] = None, line: Optional[int] = None) -> None:
        where = f"{file}:{line}: " if file is not None and line is not None else f"{file}: " if file is not None else ""
        super().__init__(where + problem)


def _int_range(lo: int, hi: int, why: str = "") -> Any:
    """An argparse type: an integer within [lo, hi] (``why`` names the upper limit)."""

    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{v} must be >= {lo}")
        if v > hi:
            raise argparse.ArgumentTypeError(f"{v} must be <= {hi}" + (f" ({why})" if why else ""))
        return v

    return conv


_positive = _int_range(1, U64_MAX, "2**64 - 1")
_count = _int_range(0, U64_MAX, "2**64 - 1")
_pages = _int_range(1, (TASK_SIZE - MMAP_MIN_ADDR) // PAGE_SIZE, "the user address space")
# a hold or gap in the contention model's virtual time: small enough that a run's clock cannot wrap
_hold = _int_range(0, (1 << 32) - 1, "2**32 - 1 units")
_children = _int_range(1, PID_MAX - 2, f"the simulator's pid_max {PID_MAX}, the parent included")


def _finite(lo: float, hi: float = math.inf) -> Any:
    """An argparse type: a finite float within [lo, hi]."""

    def conv(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
        if not math.isfinite(v) or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{s} must be a finite number within [{lo:g}, {hi:g}]"
                                             if hi < math.inf else f"{s} must be a finite number >= {lo:g}")
        return v

    return conv


def check_output(option: str, path: str, directory: bool = False) -> None:
    """Refuse, before any long work starts, an output path that cannot be written: its
    directory must exist and be writable (``directory``: the path itself is a directory,
    created if missing, so its nearest existing ancestor must be a writable directory)."""
    p = Path(path)
    where = f"{option} {path}"
    if directory:
        if p.exists():
            if not p.is_dir():
                raise CliError(f"{where}: exists and is not a directory")
            if not os.access(p, os.W_OK | os.X_OK):
                raise CliError(f"{where}: directory is not writable")
            return
        anc = p.absolute().parent
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise CliError(f"{where}: {anc} is not a directory")
        if not os.access(anc, os.W_OK | os.X_OK):
            raise CliError(f"{where}: directory {anc} is not writable")
        return
    if p.is_dir():
        raise CliError(f"{where}: is a directory")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise CliError(f"{where}: directory {parent} does not exist")
    if p.exists() and not os.access(p, os.W_OK):
        raise CliError(f"{where}: not writable")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"{where}: directory {parent} is not writable")


def read_text_input(path: str) -> str:
    """A text input file ('-' = standard input), decoded as UTF-8; failures are CliErrors
    naming the file (and the line of the first undecodable byte)."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            buf = getattr(sys.stdin, "buffer", None)
            raw = buf.read() if buf is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        else:
            raw = Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"cannot read: {e.strerror or e}", name) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CliError(f"not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})", name,
                       raw.count(b"\n", 0, e.start) + 1) from None


_TRACE_LINE = re.compile(r"^trace line (\d+): (.*)$", re.S)


def parse_trace_input(text: str, name: str) -> Any:
    """The op array of a trace file's text; a malformed trace is a CliError naming the file and line."""
    from . import trace as tr
    from .errors import InvalidArgument

    try:
        return tr.parse(text)
    except InvalidArgument as e:
        m = _TRACE_LINE.match(str(e))
        raise (CliError(m.group(2), name, int(m.group(1))) if m else CliError(str(e), name)) from None


def trace_era(text: str, name: str) -> Optional[str]:
    """The era spec a trace's ``# era`` header line names (canonical), or None; an unknown
    era or knob, or a legacy ``*`` header (a variant whose knobs were not recorded), is a
    CliError naming the line."""
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("# era "):
            era = line.strip()[6:].strip()
            if era.endswith("*"):
                raise CliError(f"the trace header names {era!r}, a variant of {era[:-1]!r} whose knobs an older "
                               f"rmapsim did not record; give the variant with --era BASE+knob=value,...", name, i)
            try:
                return era_spec(era)
            except InvalidArgument as e:
                raise CliError(f"the trace header: {e}", name, i) from None
    return None


def _era(s: str) -> str:
    """An --era value: a preset or an era spec, as its canonical spec."""
    try:
        return era_spec(s)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _era_file(path: str, era: str, many: bool) -> str:
    """``path`` itself, or (several eras) ``path`` with the era spec before its suffix."""
    if not many:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}-{re.sub(r'[^A-Za-z0-9._-]+', '_', era)}{ext}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rmapsim",
        description="Simulate the Linux kernel's anonymous reverse mapping across kernel eras.",
        epilog=("Exit status: 0 success, 1 the finding (an invariant violation, a kernel disagreement), "
                "2 bad usage or bad input (one line on stderr), 70 internal error (a bug), 77 cannot run here, "
                "130 interrupted, 141 stdout closed by its reader."),
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser(
        "demo",
        help="run the 2010 anon_vma_chain thread's fork storm in each era and print a table",
        description=(
            "One parent maps P pages and writes them, forks N children, each child writes every "
            "page; then every anon page is walked once. 'mean/p50/max' are candidate VMAs visited "
            "per full rmap walk (the cost the 2010 thread's O(N) -> 2 claim counts); "
            "'page_ref mean' is the kernel's page_referenced, which stops once it has found "
            "page_mapcount mappings."
        ),
    )
    d.add_argument("--children", "-n", type=_children, default=1000, metavar="N", help="children to fork (default 1000)")
    d.add_argument("--pages", "-p", type=_pages, default=1000, metavar="P", help="pages in the parent's mapping (default 1000)")
    d.add_argument("--era", action="append", type=_era, metavar="E", help="era preset or spec, BASE+knob=value,... (repeatable; default: all presets)")
    d.add_argument("--json", action="store_true", help="print one JSON object per era instead of a table")
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
    r.add_argument("--era", action="append", type=_era, metavar="E",
                   help="era preset or spec (BASE+knob=value,...; repeatable: one result per era; default: the "
                        "trace's '# era' line, else the default era)")
    r.add_argument("--check", action="store_true", help="check() after every operation (default: only at 'check' lines and at the end)")
    r.add_argument("--memory", action="store_true",
                   help="instead: replay in every era (or --era) and report objects and bytes over time, and the "
                        "anon_vma_chain/vm_area_struct byte ratio (next to the live kernel's, for a recorded trace)")
    r.add_argument("--every", type=_positive, default=None, metavar="K", help="--memory: sample every K operations (default: 200 samples)")
    r.add_argument("--csv", metavar="FILE", help="--memory: write every sample of every era here")
    r.add_argument("--events", metavar="FILE",
                   help="write the per-operation event log (allocations and frees by site, live objects, walks): "
                        "Parquet for a .parquet name (needs pyarrow), CSV otherwise; with several --era, one file "
                        "per era (the spec before the suffix)")
    rec = sub.add_parser(
        "record",
        help="run a program under strace and convert its process and memory syscalls into a trace",
        description=(
            "Runs COMMAND under 'strace -f' with address randomisation off and converts its fork/vfork/clone/"
            "execve/exit/mmap/munmap/mprotect/mremap/brk/madvise calls into a version-1 trace (docs/replay.md). "
            "strace cannot see page faults: --writes picks the assumption (touched: the first page of every "
            "private writable mapping is written when mapped; all: every page; none). With --kernel-ratio "
            "(root, Linux) the live kernel's anon_vma_chain/vm_area_struct memory is sampled during the same run "
            "and written into the trace header, for 'rmapsim replay --memory' to show next to each era's. "
            "Exit status: 0 recorded, 1 the command failed (the trace is still written), 2 bad usage or no strace, "
            "77 --kernel-ratio where the live kernel cannot be measured."
        ),
    )
    rec.add_argument("--out", required=True, metavar="TRACE", help="trace file to write")
    rec.add_argument("--writes", choices=["touched", "all", "none"], default="touched", help="which pages are assumed written (default touched)")
    rec.add_argument("--kernel-ratio", action="store_true", help="also sample the live kernel's slab objects during the run")
    rec.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
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
    f.add_argument("--era", action="append", type=_era, metavar="E",
                   help=f"era preset or spec (BASE+knob=value,...; repeatable: one fuzz run and result per era, "
                        f"--out FILE then names each reproducer FILE-ERA; default {DEFAULT_ERA})")
    f.add_argument("--seconds", type=_finite(0.0), default=10.0, help="time budget (default 10; 0 = no limit, needs --max-ops)")
    f.add_argument("--max-ops", type=_count, default=0, help="operation budget (0 = no limit)")
    f.add_argument("--seed", type=_count, default=0, help="random seed, 0 .. 2**64 - 1 (default 0)")
    f.add_argument("--fail-rate", type=_finite(0.0, 1.0), default=0.02, help="probability per operation of arming an allocation failure (default 0.02)")
    f.add_argument("--full-check-every", type=_count, default=16, help="full check() interval in operations (default 16; 0 = never)")
    f.add_argument("--jobs", type=_int_range(1, 64, "the most workers"), default=1, metavar="N",
                   help="parallel workers, 1 .. 64 (default 1); worker w's stream comes from (seed, w) and "
                        "--max-ops is split among them")
    f.add_argument("--out", metavar="FILE", help="write the shrunk reproducer here (default: print it)")
    f.add_argument("--extended", action="store_true",
                   help="also generate private file mappings, MAP_NORESERVE and MAP_STACK mappings and brk (a different "
                        "operation stream per seed)")
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
    c.add_argument("--cpus", type=_int_range(1, NR_CPUS, "NR_CPUS"), default=16, help=f"simulated CPUs, 1 .. {NR_CPUS} (default 16)")
    c.add_argument("--outside", type=_hold, default=10, help="lock-free work between walks, in candidate-visits (default 10)")
    c.add_argument("--writer-every", type=_count, default=0, help="a write-side update (fork/exit) after every K-th walk (default 0: none)")
    c.add_argument("--writer-hold", type=_hold, default=5, help="hold of each write-side update (default 5)")
    c.add_argument("--era", action="append", type=_era, metavar="E", help="era preset or spec, BASE+knob=value,... (repeatable; default: all presets)")
    c.add_argument("--plot", metavar="FILE", help="write a PNG/SVG figure (needs matplotlib)")
    c.add_argument("--perfetto", metavar="FILE",
                   help="write the replays as a Chrome/Perfetto trace-event JSON file, one process per era and one "
                        "track per CPU (open it at ui.perfetto.dev; docs/contention.md)")
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
    st.add_argument("--param", action="append", default=[], metavar="K=V1,V2",
                    help="workload parameter values, or knob:NAME=V1,V2 to sweep a policy knob crossed with the eras "
                         "(repeatable)")
    st.add_argument("--era", action="append", type=_era, metavar="E", help="era preset or spec, BASE+knob=value,... (repeatable; default: all presets)")
    st.add_argument("--out", required=True, metavar="DIR", help="output directory")
    st.add_argument("--jobs", type=_int_range(1, 1024), default=1, help="local worker processes, 1 .. 1024 (default 1)")
    st.add_argument("--scheduler", metavar="ADDRESS",
                    help="run on a Dask scheduler ('local' starts a LocalCluster of 2 worker processes with the "
                         "dashboard on; its address is printed)")
    st.add_argument("--base", metavar="FILE",
                    help="start every run from this built state: a snapshot (Simulator.to_bytes) or a trace, "
                         "replayed once (in the --era given, else the trace's era); runs in that one era")
    st.add_argument("--x", help="parameter on the plot's x axis (default: the first --param)")
    st.add_argument("--y", default="mean_vmas_visited", help="metric on the y axis (default mean_vmas_visited)")
    vk = sub.add_parser(
        "validate-kernel",
        help="run scenarios on the live kernel, count its anon_vma/anon_vma_chain/VMA allocations, compare with an era",
        description=(
            "Runs named scenarios for real with a small static driver (compiled on first use with cc), "
            "counts the kernel's kmem_cache_alloc/free of anon_vma, anon_vma_chain and vm_area_struct "
            "for the driver's process tree (perf tracepoint counters, inherited), fits per-unit slopes "
            "over several sizes, and compares them with the era's prediction for the same operations "
            "(the driver's own mappings included). Needs root, Linux, tracefs and kallsyms; elsewhere it "
            f"says why and exits with status {77}. --from compares a file saved with --save instead, on any "
            "machine. Exit status: 0 every scenario agrees, 1 a disagreement, 2 bad usage, a malformed --from file "
            "or no measurement to compare, 77 kernel unusable."
        ),
    )
    vk.add_argument("--scenario", action="append", metavar="NAME",
                    help="scenario to run (repeatable; default: all). Use --list to see them")
    vk.add_argument("--list", action="store_true", help="list the scenarios and exit")
    vk.add_argument("--era", action="append", type=_era, metavar="E",
                    help="era to compare with (repeatable; default 6.18, the live kernel's)")
    vk.add_argument("--pages", type=_positive, default=8, help="pages in the driver's region (default 8)")
    vk.add_argument("--json", action="store_true", help="print the comparison as JSON")
    vk.add_argument("--save", metavar="FILE", help="also write the raw measurements here (JSON)")
    vk.add_argument("--from", dest="from_file", metavar="FILE", help="compare saved measurements instead of running")
    from .diff import add_parser as add_diff_parser

    add_diff_parser(sub, _era, _count)
    e = sub.add_parser(
        "eras",
        help="print the era presets and their knobs as a table",
        description="Each era preset is a set of orthogonal knobs; this prints every preset's value of every knob.",
    )
    e.add_argument("--knobs", action="store_true", help="also describe each knob and the kernel change behind it")
    e.add_argument("--names", action="store_true", help="print only the preset names, one per line")
    e.add_argument("--json", action="store_true", help="print the presets, their knob values and the knobs as JSON")
    return p


def _parse_value(v: str) -> Any:
    try:
        return int(v, 0)
    except ValueError:
        return v


def cmd_study(args: argparse.Namespace) -> int:
    import csv
    import os

    from . import workloads
    from .study import SweepInterrupted, dask_executor, progress_bar, sweep

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
            rows = sweep(args.workload, grid, args.era, executor=executor, progress=progress_bar(), base=base)
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
        raise CliError(f"--y {args.y!r} is not a column of the results (written to {args.out}/results.csv); "
                       f"columns: {', '.join(metrics)}")
    x = args.x or next((k for k in grid if not k.startswith("knob:")), None)
    plotted = _study_plot(rows, x, args.y, args.out) if rows and x else False
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write(f"# {args.workload}: {args.y} by {x}\n\n")
        swept = [k[len("knob:"):] if k.startswith("knob:") else k for k in grid]
        cols = list(dict.fromkeys(["era", "spec", *swept, args.y, "n_anon_vma", "n_anon_vma_chain", "wall_s"]))
        fh.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            fh.write("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |\n")
        if plotted:
            fh.write(f"\n![{args.y} by {x}](cost.png)\n")
    print(f"{len(rows)} runs written to {args.out}/ (results.csv, summary.md{', cost.png, cost.svg' if plotted else ''})")
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
        results.append(sim.contention(cpus=args.cpus, outside=args.outside, writer_every=args.writer_every,
                                      writer_hold=args.writer_hold, spans=bool(args.perfetto)))
    print(f"fork storm N={args.children} P={args.pages}: one page_referenced walk per page on {args.cpus} CPUs")
    print(f"{'era':<11} {'lock':<18} {'makespan':>10} {'waiting':>8} {'mean waiting CPUs':>18}")
    for r in results:
        pol = Simulator(era=r.era).policy()
        lock = f"{pol['lock_scope']}/{pol['lock_kind']}"
        s = r.summary()
        print(f"{r.era:<11} {lock:<18} {s['makespan']:>10,} {100 * s['waiting_share']:>7.1f}% {s['mean_waiting_cpus']:>18.2f}")
    if plt is not None:
        fig, axes = plt.subplots(len(results), 1, figsize=(8, 2.2 * len(results)), squeeze=False)
        for r, ax in zip(results, axes[:, 0]):
            r.plot(ax)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot written to {args.plot}")
    if args.perfetto:
        from . import perfetto

        n = perfetto.write_file(args.perfetto, results, {"name": "fork storm", "children": args.children, "pages": args.pages},
                                "rmapsim " + " ".join(sys.argv[1:]))
        print(f"perfetto trace written to {args.perfetto}: {n['processes']} eras, {n['tracks']} CPU tracks, "
              f"{n['slices']:,} slices, {n['bytes']:,} bytes (open it at https://ui.perfetto.dev)")
    return 0


class Terminated(BaseException):
    """SIGTERM or SIGHUP received while a command that holds system resources (a temporary
    swap file, a tracefs mount, driver processes, perf counters) was running. A
    BaseException like KeyboardInterrupt, so only ``finally`` blocks (cleanup) see it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_raise() -> Any:
    """While inside: SIGTERM and SIGHUP raise :class:`Terminated`, SIGINT raises
    KeyboardInterrupt, so cleanup runs as for any exception. Only the first signal raises;
    later ones are ignored so they cannot cut the cleanup short. The previous handlers are
    restored on the way out. Outside the main thread it does nothing (Python delivers
    signals there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_interruptible(name: str, fn: Any, args: argparse.Namespace) -> int:
    """Run a command under :func:`signals_raise`; a signal ends it with one line on stderr and
    the shell's status for it (128 + signal number: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    try:
        with signals_raise():
            return int(fn(args))
    except KeyboardInterrupt:
        print(f"rmapsim {name}: interrupted; cleaned up", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated as e:
        print(f"rmapsim {name}: terminated by {signal.Signals(e.signum).name}; cleaned up", file=sys.stderr)
        return 128 + e.signum


def cmd_validate_kernel(args: argparse.Namespace) -> int:
    from . import kernel

    if args.list:
        for s in kernel.SCENARIOS.values():
            print(f"{s.name:<16} per {s.unit:<10} sizes {','.join(map(str, s.sizes))}  {s.doc}")
        return 0
    names = args.scenario or list(kernel.SCENARIOS)
    bad = [n for n in names if n not in kernel.SCENARIOS]
    if bad:
        print(f"rmapsim validate-kernel: unknown scenario {bad[0]!r}; known: {', '.join(kernel.SCENARIOS)}",
              file=sys.stderr)
        return 2
    if args.save:
        check_output("--save", args.save)
    if args.from_file:
        try:
            saved = kernel.load(Path(args.from_file))
        except OSError as e:
            raise CliError(f"cannot read measurements: {e.strerror or e}", args.from_file) from None
        except SimError as e:
            raise CliError(str(e)) from None
        records = [r for r in saved if r["scenario"] in names]
        absent = [n for n in (args.scenario or []) if n not in {r["scenario"] for r in records}]
        if absent or not records:
            have = ", ".join(dict.fromkeys(r["scenario"] for r in saved)) or "none"
            what = f"scenario {absent[0]!r}" if absent else "any scenario"
            raise CliError(f"no measurement of {what} to compare (the file has: {have})", args.from_file)
    else:
        why = kernel.probe()
        if why:
            print(f"rmapsim validate-kernel: the live kernel cannot be measured here: {why}", file=sys.stderr)
            return kernel.EXIT_UNAVAILABLE
        progress = (lambda m: print(m, file=sys.stderr, flush=True)) if not args.json else None
        try:
            records = kernel.measure(names, pages=args.pages, progress=progress)
        except kernel.KernelUnavailable as e:
            print(f"rmapsim validate-kernel: the live kernel cannot be measured here: {e}", file=sys.stderr)
            return kernel.EXIT_UNAVAILABLE
        if args.save:
            kernel.save(records, Path(args.save))
    if not records:
        raise CliError("no measurement to compare")
    agree = True
    out = []
    for era in args.era or ["6.18"]:
        results = [_compare(kernel, r, era, args.from_file) for r in records]
        agree &= all(r["agree"] for r in results)
        out.extend(results)
        if not args.json:
            kern = records[0].get("kernel", "?") if records else "?"
            print(f"live kernel {kern} vs era {era}: slab allocations / frees; table: fitted per-unit slopes; "
                  f"verdict: every fitted coefficient (slopes and intercept) equal to 1e-6")
            print(kernel.exit_frees_line(records))
            print(kernel.format_comparison(results))
            print()
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print("verdict:", "every scenario agrees" if agree else "DISAGREEMENT (see rows marked DISAGREE)")
    return 0 if agree else 1


def _compare(kernel: Any, record: Dict[str, Any], era: str, source: Optional[str]) -> Dict[str, Any]:
    """kernel.compare; a saved layout the simulator cannot build is bad input, named by file and scenario."""
    try:
        return kernel.compare(record, era)
    except InvariantViolation:
        raise
    except SimError as e:
        if source is None:
            raise
        raise CliError(f"scenario {record['scenario']}: the recorded layout cannot be replayed: {e}", source) from None


def cmd_record(args: argparse.Namespace) -> int:
    from . import kernel, record

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("rmapsim record: no command given (usage: rmapsim record --out TRACE -- COMMAND ...)", file=sys.stderr)
        return 2
    check_output("--out", args.out)
    try:
        summary = record.record(cmd, Path(args.out), writes=args.writes, kernel_ratio=args.kernel_ratio,
                                progress=lambda m: print(m, file=sys.stderr))
    except FileNotFoundError as e:
        print(f"rmapsim record: {e}", file=sys.stderr)
        return 2
    except kernel.KernelUnavailable as e:
        print(f"rmapsim record: --kernel-ratio: the live kernel cannot be measured here: {e}", file=sys.stderr)
        return kernel.EXIT_UNAVAILABLE
    print(f"{args.out}: {summary['ops']} operations, {summary['processes']} processes, {summary['files']} files "
          f"(command exit status {summary['exit_status']})")
    if summary["skipped"]:
        print("skipped: " + ", ".join(f"{k} x{v}" for k, v in sorted(summary["skipped"].items())))
    k = summary.get("kernel")
    if k and "ratio_at_peak" in k:
        print(f"live kernel during the run: anon_vma_chain/vm_area_struct bytes {k['ratio_at_peak']:.3f} at the VMA peak "
              f"(mean {k['ratio_mean']:.3f}); peak {k['peak']}")
    if summary["exit_status"] != 0:
        print(f"rmapsim record: the command exited with status {summary['exit_status']} (trace written anyway)",
              file=sys.stderr)
        return 1
    return 0


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
    print(f"base state: trace {args.base} replayed in era {era} ({len(res)} operations, "
          f"{len(res.errors())} returned errors; {sim.counts()['vma']} VMAs, {sim.counts()['page']} pages)")
    return sim


def cmd_replay_memory(args: argparse.Namespace, text: str, name: str) -> int:
    from . import record

    if args.csv:
        check_output("--csv", args.csv)
    era_list = list(dict.fromkeys(args.era)) if args.era else eras()
    ops = parse_trace_input(text, name)
    try:
        rows = record.memory_report(ops, era_list, args.every or 0)
    except InvariantViolation:
        raise
    except SimError as e:
        raise CliError(str(e), name) from None
    n = rows[0]["ops"] if rows else 0
    print(f"{args.trace}: {n} operations replayed in {len(rows)} era(s); peak = the sample with the most VMA bytes")
    head = ["era", "errors", "procs", "VMAs", "anon_vmas", "chains", "VMA bytes", "chain bytes", "chain/VMA@peak",
            "mean", "replay s"]
    body = [[r["era"], str(r["errors"]), str(r["peak"]["processes"]), f"{r['peak']['vma']:,}",
             f"{r['peak']['anon_vma']:,}", f"{r['peak']['anon_vma_chain']:,}", _fmt_bytes(r["peak"]["vma_bytes"]),
             _fmt_bytes(r["peak"]["anon_vma_chain_bytes"]), f"{r['ratio_at_peak']:.3f}", f"{r['ratio_mean']:.3f}",
             f"{r['replay_s']:.2f}"] for r in rows]
    print(render_table(head, body))
    k = record.kernel_line(text)
    if k:
        print(f"live kernel during the recorded run: {k}")
    last = rows[-1]
    s = last["samples"]
    if len(s):
        print(f"over time ({last['era']}): ops -> VMAs / anon_vmas / chains")
        for j in sorted({(len(s) - 1) * k // 8 for k in range(9)}):
            print(f"  {int(s['ops'][j]):>8}  {int(s['vma'][j]):>7} / {int(s['anon_vma'][j]):>6} / {int(s['anon_vma_chain'][j]):>7}")
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
            raise CliError(f"--events {args.events}: Parquet needs pyarrow (pip install 'rmapsim[parquet]'); "
                           "give a .csv name for CSV")
    ops = parse_trace_input(text, name)
    if args.era:
        try:
            header: Optional[str] = trace_era(text, name)
        except CliError:
            header = None  # --era wins over a header this rmapsim cannot read
        source = "--era" + (f", overriding the trace header's {header}" if header and args.era != [header] else "")
        runs = [(e, source) for e in dict.fromkeys(args.era)]
    else:
        header = trace_era(text, name)
        runs = [(header, "the trace header") if header else (DEFAULT_ERA, "the default era; the trace names none")]
    many = len(runs) > 1
    codes = [_replay_one(era, source, ops, args.check, name, args.events and _era_file(args.events, era, many))
             for era, source in runs]
    return max(codes)


def _replay_one(era: str, source: str, ops: Any, check_each: bool, name: str, events: Optional[str] = None) -> int:
    """Replay ``ops`` in ``era`` and report; 1 on an invariant violation, else 0. With
    ``events``, write the event log there."""
    sim = Simulator(era=era)
    try:
        res = sim.apply(ops, check_each=check_each, events=bool(events))
        if events and res.events is not None:
            fmt = res.events.write(events)
            print(f"event log of era {era} written to {events} ({fmt}: {len(res.events)} rows, "
                  f"{len(res.events.columns)} columns)")
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


def cmd_fuzz(args: argparse.Namespace) -> int:
    from . import _core

    if args.seconds <= 0 and args.max_ops <= 0:
        print("rmapsim fuzz: give --seconds > 0 or --max-ops > 0", file=sys.stderr)
        return 2
    if args.out:
        check_output("--out", args.out)
    seconds = args.seconds if args.max_ops <= 0 else 0.0
    eras_ = list(dict.fromkeys(args.era or [DEFAULT_ERA]))
    code = 0
    for era in eras_:
        code = max(code, _fuzz_one(args, era, seconds, len(eras_) > 1))
    return code


def _fuzz_one(args: argparse.Namespace, era: str, seconds: float, many: bool) -> int:
    from . import _core

    if sys.stderr.isatty():
        budget = f"{args.max_ops} ops" if args.max_ops > 0 else f"{seconds:g} s"
        print(f"[fuzz] era {era}, seed {args.seed}, budget {budget} ...", file=sys.stderr, flush=True)
    interrupted: Optional[KeyboardInterrupt] = None
    try:
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
        return _fuzz_report(args, era, r, many)
    finally:
        if interrupted is not None:
            raise interrupted


def _fuzz_report(args: argparse.Namespace, era: str, r: Dict[str, Any], many: bool) -> int:
    rate = r["ops"] / r["seconds"] if r["seconds"] > 0 else float("inf")
    jobs = f", {r['jobs']} workers" if r.get("jobs", 1) > 1 else ""
    print(f"era {era}: {r['ops']:,} operations in {r['runs']:,} runs{jobs}, {r['seconds']:.2f} s ({rate:,.0f} ops/s)")
    if r["violation"] is None:
        print(f"era {era}: no violation found")
        return 0
    print(f"era {era}: VIOLATION: {r['violation']}")
    n = len([ln for ln in r["trace"].splitlines() if ln and not ln.startswith("#")])
    print(f"shrunk from {r['unshrunk_len']} to {n} operations")
    if args.out:
        out = _era_file(args.out, era, many)
        with open(out, "w") as fh:
            fh.write(r["trace"])
        print(f"reproducer written to {out} (replay: rmapsim replay {out} --check)")
    else:
        print(r["trace"], end="")
    return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "study":
        return cmd_study(args)
    if args.command == "contention":
        return cmd_contention(args)
    if args.command == "replay":
        return cmd_replay(args)
    if args.command == "fuzz":
        return cmd_fuzz(args)
    if args.command == "diff":
        from .diff import cmd_diff

        return cmd_diff(args)
    if args.command == "record":
        return run_interruptible("record", cmd_record, args)
    if args.command == "validate-kernel":
        return run_interruptible("validate-kernel", cmd_validate_kernel, args)
    if args.command == "eras":
        if args.names:
            print("\n".join(eras()))
            return 0
        if args.json:
            print(json.dumps(eras_json(), indent=2))
            return 0
        print(format_eras_table())
        if args.knobs:
            print()
            for k in knobs():
                print(f"{k.name}: {k.meaning} [{k.kernel}]")
        return 0
    rows = []
    for era in args.era or eras():
        if sys.stderr.isatty():
            print(f"[{era}] N={args.children} P={args.pages} ...", file=sys.stderr, flush=True)
        try:
            rows.append(seed_scenario(era, args.children, args.pages))
        except InvariantViolation:
            raise
        except SimError as e:
            raise CliError(f"era {era}: {e}") from None
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"fork storm: 1 parent + {args.children} children x {args.pages} pages, every page written by every process")
        print(format_table(rows))
    return 0


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _stdout_gone() -> None:
    """After EPIPE on stdout: point it at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (an in-process caller's capture)
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns its exit status (table in docs/api-contract.md). Bad input
    of any kind is one line on stderr and status 2; a bug is a traceback and status 70."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    name = args.command
    try:
        status = _dispatch(args)
        sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        print(f"rmapsim {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_PIPE
    except CliError as e:
        print(f"rmapsim {name}: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except InvariantViolation as e:
        print(f"rmapsim {name}: invariant violation: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_FINDING
    except SimError as e:
        print(f"rmapsim {name}: {type(e).__name__}: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"rmapsim {name}: {where}{_one_line(e.strerror or str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - a bug: keep the traceback, but not the finding's status
        traceback.print_exc()
        print(f"rmapsim {name}: internal error (a bug in rmapsim; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_SOFTWARE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
