#!/usr/bin/env python3
"""End-to-end benchmark of the seed scenario, with every figure a ratio against a
baseline measured in the same run.

Baseline: a deliberately plain pure-Python model of the same workload (dicts for page
tables, lists for anon_vma lists) that performs the identical candidate visits. It is
run at a reduced size (it would take minutes at N = P = 1000) and compared per candidate
visited / per fault, so the ratio is size-independent to first order.

Usage: python benches/bench_e2e.py [--children N] [--pages P] [--baseline-scale K]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Dict, List, Tuple

import rmapsim
from rmapsim.cli import seed_scenario

PAGE = 4096


class PlainModel:
    """Plain Python model of the fork storm in either linking design.

    legacy: one anon_vma (a list of VMAs) for the family; chain: each process's VMA gets
    its own anon_vma list, and the parent's list holds parent + children.
    """

    def __init__(self, chain: bool) -> None:
        self.chain = chain

    def run(self, n: int, p: int) -> Tuple[int, float, float]:
        t0 = time.perf_counter()
        base = 0x7F0000000000 - p * PAGE
        pgoff = base >> 12
        # parent: VMA = (start, pgoff, pages, page table dict)
        parent = {"start": base, "pgoff": pgoff, "pages": p, "pt": {}}
        parent_av: List[dict] = [parent]
        pages: List[Tuple[List[dict], int, int]] = []  # (anon_vma list, index, page id)
        next_id = 0
        for i in range(p):
            parent["pt"][base + i * PAGE] = next_id
            pages.append((parent_av, pgoff + i, next_id))
            next_id += 1
        for _ in range(n):
            child = {"start": base, "pgoff": pgoff, "pages": p, "pt": dict(parent["pt"])}
            parent_av.append(child)
            own = [child] if self.chain else parent_av
            for i in range(p):  # child COW-writes every page
                child["pt"][base + i * PAGE] = next_id
                pages.append((own, pgoff + i, next_id))
                next_id += 1
        t1 = time.perf_counter()
        visits = 0
        for av, index, pid in pages:
            for vma in av:
                visits += 1
                off = index - vma["pgoff"]
                if 0 <= off < vma["pages"]:
                    vma["pt"].get(vma["start"] + off * PAGE) == pid
        t2 = time.perf_counter()
        return visits, t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--baseline-scale", type=int, default=10, help="baseline runs at N/K children and P/K pages")
    ap.add_argument("--save", metavar="FILE", help="save this run's figures (JSON) as a baseline for --compare")
    ap.add_argument("--compare", metavar="FILE", help="compare with a saved run; exit 1 if any ns/visit or ns/fault is >20%% slower")
    args = ap.parse_args()
    n, p, k = args.children, args.pages, args.baseline_scale
    bn, bp = max(1, n // k), max(1, p // k)

    rows: List[Dict[str, object]] = []
    for era in rmapsim.eras():
        r = seed_scenario(era, n, p)
        plain = PlainModel(chain=era != "2.6.33")
        visits, b_build, b_walk = plain.run(bn, bp)
        faults = bp * (bn + 1)
        sim_ns_visit = r["walk_s"] / r["total_vmas_visited"] * 1e9
        base_ns_visit = b_walk / visits * 1e9
        sim_ns_fault = r["build_s"] / (p * (n + 1)) * 1e9
        base_ns_fault = b_build / faults * 1e9
        rows.append(
            {
                "era": era,
                "visits": r["total_vmas_visited"],
                "ns/visit": sim_ns_visit,
                "plain ns/visit": base_ns_visit,
                "walk speedup": base_ns_visit / sim_ns_visit,
                "ns/fault": sim_ns_fault,
                "plain ns/fault": base_ns_fault,
                "build speedup": base_ns_fault / sim_ns_fault,
                "demo s": r["wall_s"],
            }
        )
    print(f"seed scenario N={n} P={p}; plain-Python baseline at N={bn} P={bp}, same process")
    head = list(rows[0].keys())
    print("  ".join(f"{h:>14}" for h in head))
    for row in rows:
        cells = []
        for h in head:
            v = row[h]
            cells.append(f"{v:>14,}" if isinstance(v, int) else f"{v:>14.3f}" if isinstance(v, float) else f"{v:>14}")
        print("  ".join(cells))
    t33 = next(r for r in rows if r["era"] == "2.6.33")["demo s"]
    t34 = next(r for r in rows if r["era"] == "2.6.34")["demo s"]
    print(f"2.6.33 demo / 2.6.34 demo wall time: {t33 / t34:.1f}x")
    if args.save:
        with open(args.save, "w") as fh:
            json.dump({"children": n, "pages": p, "rows": rows}, fh, indent=1)
        print(f"saved to {args.save}")
    if args.compare:
        with open(args.compare) as fh:
            old = {r["era"]: r for r in json.load(fh)["rows"]}
        slow = []
        for r in rows:
            o = old.get(r["era"])
            for k in ("ns/visit", "ns/fault"):
                if o and r[k] > 1.2 * o[k]:
                    slow.append(f"{r['era']} {k}: {o[k]:.2f} -> {r[k]:.2f} ({r[k] / o[k]:.2f}x)")
        if slow:
            print("REGRESSION (>20% slower than the saved run):\n  " + "\n  ".join(slow))
            raise SystemExit(1)
        print("no regression above 20% against", args.compare)


if __name__ == "__main__":
    main()
