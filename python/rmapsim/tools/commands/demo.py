"""``rmapsim demo``: the 2010 anon_vma_chain thread's fork storm in each era, as a table."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, List

from ... import PAGE_SIZE, Simulator, _progress, eras
from ...errors import InvariantViolation, SimError
from .._common import CliError, _children, _era, _fmt_bytes, _pages, add_json, emit, render_table


def register(sub: Any) -> None:
    """Add ``rmapsim demo`` to the subparsers ``sub``."""
    d = sub.add_parser(
        "demo",
        help="run the 2010 anon_vma_chain thread's fork storm in each era and print a table",
        description=(
            "One parent maps P pages and writes them, forks N children, each child writes every "
            "page; then every anon page is walked once. 'mean/p50/max' (--json: mean_vmas_visited, ...) are candidate VMAs visited "
            "per full rmap walk (the cost the 2010 thread's O(N) -> 2 claim counts); "
            "'page_ref mean' is the kernel's page_referenced, which stops once it has found "
            "page_mapcount mappings."
        ),
    )
    d.add_argument(
        "--children", "-n", type=_children, default=1000, metavar="N", help="children to fork (default 1000)"
    )
    d.add_argument(
        "--pages", "-p", type=_pages, default=1000, metavar="P", help="pages in the parent's mapping (default 1000)"
    )
    d.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        help="era preset or spec, BASE+knob=value,... (repeatable; default: all presets)",
    )
    add_json(d, "era (record type fork_storm)")
    _progress.quiet_option(d, run)  # --quiet


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
        "mean_vmas_visited": s["mean"],
        "p50_vmas_visited": s["p50"],
        "max_vmas_visited": s["max"],
        "total_vmas_visited": s["total_vmas_visited"],
        "page_referenced_mean": referenced["mean"],
        "n_anon_vma": counts["anon_vma"],
        "bytes_anon_vma": mem["anon_vma"],
        "n_anon_vma_chain": counts["anon_vma_chain"],
        "bytes_anon_vma_chain": mem["anon_vma_chain"],
        "n_vma": counts["vma"],
        "bytes_vm_area_struct": mem["vm_area_struct"],
        "build_s": t1 - t0,
        "walk_s": t2 - t1,
        "page_referenced_s": t3 - t2,
        "wall_s": t3 - t0,
    }


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
            f"{r['mean_vmas_visited']:.3f}",
            f"{r['p50_vmas_visited']:.0f}",
            f"{r['max_vmas_visited']:,}",
            f"{r['page_referenced_mean']:.3f}",
            f"{r['n_anon_vma']:,}",
            _fmt_bytes(r["bytes_anon_vma"]),
            f"{r['n_anon_vma_chain']:,}",
            _fmt_bytes(r["bytes_anon_vma_chain"]),
            f"{r['build_s']:.2f}",
            f"{r['walk_s']:.2f}",
        ]
        for r in rows
    ]
    return render_table(head, body)


def run(args: argparse.Namespace) -> int:
    rows = []
    for era in args.era or eras():
        if sys.stderr.isatty() and _progress.enabled():  # --quiet: off
            print(f"[{era}] N={args.children} P={args.pages} ...", file=sys.stderr, flush=True)
        try:
            rows.append(seed_scenario(era, args.children, args.pages))
        except InvariantViolation:
            raise
        except SimError as e:
            raise CliError(f"era {era}: {e}") from None
        if args.json:
            emit("fork_storm", rows[-1])
    if not args.json:
        print(
            f"fork storm: 1 parent + {args.children} children x {args.pages} pages, every page written by every process"
        )
        print(format_table(rows))
    return 0
