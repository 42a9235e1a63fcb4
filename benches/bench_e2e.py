#!/usr/bin/env python3
"""End-to-end benchmark of the seed scenario, every figure a ratio against a baseline
measured in the same run.

The seed scenario (the 2010 anon_vma_chain thread): a parent maps P pages and writes them,
forks N children, each child COW-writes all P pages; then one full rmap walk of every page.

Baselines, all measured in this run:

* plain: a deliberately plain pure-Python model of the same walk (dicts for page tables,
  lists for anon_vma lists), run at N/K, P/K and compared per candidate and per fault;
* reference: the pure-Python reference model (``rmapsim.reference``, 2.6.34 rules, the
  fuzzing oracle) doing the same operations and a full walk of every page, at full size;
* kernel: the real kernel running the scenario for real (``benches/seed_kernel.c``, built
  here with ``cc -O2``): processes that fork, write, wait for each other and exit. The
  simulator side does the same operations, a full walk of every page, and the exits.

Parallel batch walks: the 2.6.33 seed scenario's walks at threads=1 and 2, with a C busy
loop's two-process slowdown showing how many cores the machine really gives.

``--scale`` adds the 10,000-process x 1,000-page runs of ``fork_storm`` and ``aim7_like``
in 6.18, each in its own process for a clean peak RSS, with the simulator's memory per
object kind (``Simulator.memory_usage``) and bytes per PTE.

``--save FILE`` stores the figures; ``--compare FILE`` flags every figure more than 20%
worse than the saved run and exits 1 (times and memory higher, ratios lower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import rmapsim

PAGE = 4096
HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1.2  # a figure 20% worse than the saved one is a regression


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


def plain_baseline(chain: bool, n: int, p: int, reps: int) -> Tuple[int, float, float]:
    """The plain model's visits, build and walk time: measured once per linking design (it
    does not depend on the era), after a warm-up run, best of ``reps`` for each phase, with
    the garbage collector off while timing (a collection of an earlier era's simulator
    landing in one era's run made its baseline several times slower)."""
    import gc

    PlainModel(chain).run(max(1, n // 4), max(1, p // 4))  # warm-up: allocator, caches
    runs = []
    for _ in range(max(1, reps)):
        gc.collect()
        gc.disable()
        try:
            runs.append(PlainModel(chain).run(n, p))
        finally:
            gc.enable()
    return runs[0][0], min(r[1] for r in runs), min(r[2] for r in runs)


def seed_build(era: str, n: int, p: int) -> Tuple[rmapsim.Simulator, int, Any]:
    """The seed scenario's operations: a parent maps and writes ``p`` pages, forks ``n``
    children, each child writes every page. Returns the simulator, parent and children."""
    sim = rmapsim.Simulator(era=era)
    parent = sim.spawn()
    a = sim.mmap(parent, p * PAGE)
    sim.touch(parent, a, p * PAGE)
    kids = sim.fork_many(parent, n)
    sim.touch_many(kids, a, p * PAGE)
    return sim, parent, kids


def sim_seed(era: str, n: int, p: int, reps: int, exits: bool = False) -> Dict[str, float]:
    """The seed scenario on the simulator, best of ``reps``: build, full walk (aggregate),
    and with ``exits`` every process exiting (as the kernel baseline's processes do)."""
    best: Dict[str, float] = {}
    for _ in range(reps):
        t0 = time.perf_counter()
        sim, parent, kids = seed_build(era, n, p)
        t1 = time.perf_counter()
        walk = sim.rmap_walk(aggregate=True)
        t2 = time.perf_counter()
        if exits:
            sim.exit_many(kids.tolist() + [parent])
        t3 = time.perf_counter()
        for k, v in (("build_s", t1 - t0), ("walk_s", t2 - t1), ("exit_s", t3 - t2), ("total_s", t3 - t0)):
            best[k] = min(best.get(k, v), v)
        best["visits"] = walk["total_vmas_visited"]
    return best


def per_page_walk(era: str, n: int, p: int) -> Dict[str, float]:
    """The seed scenario's full walk page by page (``rmap_walk()`` with per-page rows):
    every page's candidates enumerated on its own, as the kernel does. The aggregate walk
    of ``sim_seed`` gets the same totals anon_vma by anon_vma."""
    sim, _, _ = seed_build(era, n, p)
    t0 = time.perf_counter()
    rows = sim.rmap_walk()
    t1 = time.perf_counter()
    return {"walk_s": t1 - t0, "visits": rows.total()}


def spin_ratio() -> Optional[float]:
    """How much longer two independent CPU-bound processes take than one (1.0: two real
    cores; 2.0: one core's worth shared), from a C busy loop built with cc; None without cc."""
    cc = shutil.which("cc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "spin.c"), os.path.join(d, "spin")
        with open(src, "w") as fh:
            fh.write(
                "int main(void){volatile unsigned long x=0;"
                "for(unsigned long i=0;i<600000000UL;i++)x+=i;return (int)(x&1);}\n"
            )
        subprocess.run([cc, "-O1", "-o", exe, src], check=True)
        t0 = time.perf_counter()
        subprocess.run([exe])
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        procs = [subprocess.Popen([exe]) for _ in range(2)]
        for pr in procs:
            pr.wait()
        return (time.perf_counter() - t0) / one


def parallel_walks(n: int, p: int, reps: int) -> Dict[str, Tuple[float, float]]:
    """The 2.6.33 seed scenario's batch walks at threads=1 and threads=2, best of ``reps``
    each: {walk: (seconds with 1 thread, seconds with 2)}. The results are identical at
    any thread count (tests/tools/test_parallel.py)."""
    sim, _, _ = seed_build("2.6.33", n, p)
    walks = {
        "rmap_walk (rows)": lambda th: sim.rmap_walk(threads=th),
        "rmap_walk (aggregate)": lambda th: sim.rmap_walk(aggregate=True, threads=th),
        "page_referenced (aggregate)": lambda th: sim.page_referenced(aggregate=True, threads=th),
    }
    out = {}
    for name, walk in walks.items():
        best = {}
        for th in (1, 2):
            for _ in range(reps):
                t0 = time.perf_counter()
                walk(th)
                best[th] = min(best.get(th, 1e9), time.perf_counter() - t0)
        out[name] = (best[1], best[2])
    return out


def reference_seed(n: int, p: int, era: str = "2.6.34") -> Dict[str, float]:
    """The same operations on the pure-Python reference model, then a full rmap walk of
    every page in the model's own objects (rmap_walk_anon: every entry on the page's
    anon_vma, vma_address, the page-table lookup)."""
    from rmapsim.reference import ReferenceModel

    t0 = time.perf_counter()
    m = ReferenceModel(era=era)
    parent = m.spawn()
    a = m.mmap(parent, p * PAGE)
    m.touch(parent, a, p * PAGE)
    m.touch_many(m.fork_many(parent, n), a, p * PAGE)
    t1 = time.perf_counter()
    visits = found = 0
    for page in m.pages.values():
        v, f = m.walk_page(page)
        visits += v
        found += f
    t2 = time.perf_counter()
    assert found == len(m.pages) and visits == 2 * n * p + p, (found, visits)
    return {"build_s": t1 - t0, "walk_s": t2 - t1, "total_s": t2 - t0, "visits": visits}


def kernel_seed(n: int, p: int, reps: int) -> Optional[Dict[str, Any]]:
    """Build and run benches/seed_kernel.c; best of ``reps`` wall times. None (with a
    message) when there is no C compiler."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        print("kernel baseline SKIPPED: no C compiler (cc/gcc) found; install gcc to measure it")
        return None
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "seed_kernel")
        subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "seed_kernel.c")], check=True)
        times = []
        for _ in range(reps):
            out = subprocess.run([exe, str(n), str(p)], check=True, capture_output=True, text=True).stdout
            times.append(float(out.split()[1]))
    return {"total_s": min(times), "runs_s": times, "kernel": platform.release()}


# ------------------------------------------------------------------------------ scale


def scale_child(name: str) -> None:
    """Run one scale workload in this process and print its figures as JSON."""
    from rmapsim import workloads

    captured: Dict[str, Any] = {}
    measure = workloads.measure

    def measure_and_account(sim: rmapsim.Simulator, t0: float) -> Dict[str, Any]:
        captured["memory"] = sim.memory_usage()
        captured["counts"] = sim.counts()
        captured["build_s"] = time.perf_counter() - t0
        return measure(sim, t0)

    workloads.measure = measure_and_account  # type: ignore[assignment]
    if name == "fork_storm":  # 1 parent + 9,999 children = 10,000 processes
        row = workloads.fork_storm("6.18", children=9_999, pages=1_000)
    else:
        row = workloads.aim7_like("6.18", processes=10_000, pages=1_000, reclaim_every=3_000)
    print(json.dumps({"row": row, "peak_rss": peak_rss(), **captured}))


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, which starts afresh at exec (ru_maxrss
    would carry over the bench parent's peak through fork + exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_scale() -> Dict[str, Dict[str, Any]]:
    out = {}
    for name in ("fork_storm", "aim7_like"):
        r = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--scale-child", name],
            check=True,
            capture_output=True,
            text=True,
        )
        out[name] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def print_scale(scale: Dict[str, Dict[str, Any]]) -> Dict[str, float]:
    figs: Dict[str, float] = {}
    print("\nscale: 10,000 processes x 1,000 pages in 6.18, each workload in its own process")
    print(
        f"{'workload':<11} {'wall s':>7} {'build s':>8} {'walks':>11} {'PTEs':>11} {'pages':>11}"
        f" {'peak RSS':>9} {'sim MiB':>8} {'B/PTE':>6} {'cap B/PTE':>9} {'RSS B/PTE':>9}"
    )
    for name, s in scale.items():
        m, row = s["memory"], s["row"]
        ptes = m["pte"]["live"]
        mib = 1 << 20
        print(
            f"{name:<11} {row['wall_s']:>7.2f} {s['build_s']:>8.2f} {row['walks']:>11,} {ptes:>11,}"
            f" {m['page']['live']:>11,} {s['peak_rss'] / mib:>5.0f} MiB {m['total']['bytes'] / mib:>8.1f}"
            f" {m['bytes_per_pte']:>6.1f} {m['total']['capacity_bytes'] / ptes:>9.1f} {s['peak_rss'] / ptes:>9.1f}"
        )
        figs[f"scale {name} wall_s"] = row["wall_s"]
        figs[f"scale {name} peak_rss_mib"] = s["peak_rss"] / mib
        figs[f"scale {name} bytes_per_pte"] = m["bytes_per_pte"]
    for name, s in scale.items():
        m = s["memory"]
        print(f"\nsimulator memory per object kind, {name} (memory_usage(); bytes = slots x slot bytes + owned heap)")
        print(f"{'kind':<15} {'live':>11} {'slot B':>7} {'bytes':>13} {'B/object':>9} {'capacity':>13}")
        for kind, u in m.items():
            if kind in ("total", "bytes_per_pte"):
                continue
            per = u["bytes"] / u["live"] if u["live"] else float("nan")
            print(
                f"{kind:<15} {u['live']:>11,} {u['slot_bytes']:>7} {u['bytes']:>13,} {per:>9.1f} {u['capacity_bytes']:>13,}"
            )
        print(f"{'total':<15} {'':>11} {'':>7} {m['total']['bytes']:>13,} {'':>9} {m['total']['capacity_bytes']:>13,}")
    return figs


# ------------------------------------------------------------------- regression guard

#: figures where higher is better (ratios); every other figure is a time or a size
FUZZ_OPS = 2_000_000


def fuzz_rate(jobs: int, reps: int) -> float:
    """Best wall time of ``rmapsim fuzz`` on 6.18 (seed 11, failure injection, FUZZ_OPS
    operations, no violation) with ``jobs`` workers."""
    best = float("inf")
    for _ in range(reps):
        r = rmapsim._core.fuzz("6.18", seed=11, max_ops=FUZZ_OPS, fail_rate=0.02, jobs=jobs)
        assert r["violation"] is None and r["ops"] == FUZZ_OPS, r
        best = min(best, r["seconds"])
    return best


def higher_is_better(key: str) -> bool:
    return "speedup" in key or key.endswith(" x")


def regressions(old: Dict[str, Any], new: Dict[str, Any], tolerance: float = TOLERANCE) -> List[str]:
    """Figures of ``new`` more than ``tolerance`` worse than in ``old``: per-era ns/visit
    and ns/fault, and every entry of ``figures`` present in both (times and memory: higher
    is worse; ratios: lower is worse). The kernel's own time is not guarded (it is the
    machine's, not ours); the simulator's side of each ratio is."""
    out = []
    old_rows = {r["era"]: r for r in old.get("rows", [])}
    for r in new.get("rows", []):
        o = old_rows.get(r["era"])
        for k in ("ns/visit", "ns/fault"):
            if o and k in o and r[k] > tolerance * o[k]:
                out.append(f"{r['era']} {k}: {o[k]:.2f} -> {r[k]:.2f} ({r[k] / o[k]:.2f}x)")
    of, nf = old.get("figures", {}), new.get("figures", {})
    for k, v in nf.items():
        if k not in of or not isinstance(v, (int, float)) or not of[k] or k.startswith("vs kernel"):
            continue
        worse = v * tolerance < of[k] if higher_is_better(k) else v > tolerance * of[k]
        if worse:
            out.append(f"{k}: {of[k]:.3g} -> {v:.3g}")
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--baseline-scale", type=int, default=10, help="plain model runs at N/K children and P/K pages")
    ap.add_argument("--reps", type=int, default=3, help="simulator and kernel runs: best of this many")
    ap.add_argument("--no-kernel", action="store_true", help="skip the real-kernel baseline")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference-model baseline")
    ap.add_argument("--scale", action="store_true", help="also run the 10,000 x 1,000 fork_storm and aim7_like")
    ap.add_argument("--save", metavar="FILE", help="save this run's figures (JSON) as a baseline for --compare")
    ap.add_argument("--compare", metavar="FILE", help="compare with a saved run; exit 1 if a figure is >20%% worse")
    ap.add_argument("--scale-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scale_child:
        scale_child(args.scale_child)
        return
    n, p, k = args.children, args.pages, args.baseline_scale
    bn, bp = max(1, n // k), max(1, p // k)
    print(
        f"rmapsim bench, {platform.node()} ({os.cpu_count()} CPUs, Linux {platform.release()}), Python {platform.python_version()}"
    )

    rows: List[Dict[str, Any]] = []
    figs: Dict[str, float] = {}
    sims: Dict[str, Dict[str, float]] = {}
    plain = {chain: plain_baseline(chain, bn, bp, args.reps) for chain in (False, True)}  # measured once
    for era in rmapsim.eras():
        r = sim_seed(era, n, p, 1 if era == "2.6.33" else args.reps)
        sims[era] = r
        visits, b_build, b_walk = plain[era != "2.6.33"]
        ns_visit, ns_fault = r["walk_s"] / r["visits"] * 1e9, r["build_s"] / (p * (n + 1)) * 1e9
        base_visit, base_fault = b_walk / visits * 1e9, b_build / (bp * (bn + 1)) * 1e9
        rows.append(
            {
                "era": era,
                "visits": int(r["visits"]),
                "build s": r["build_s"],
                "walk s": r["walk_s"],
                "ns/visit": ns_visit,
                "ns/fault": ns_fault,
                "plain ns/visit": base_visit,
                "walk speedup": base_visit / ns_visit,
                "plain ns/fault": base_fault,
                "build speedup": base_fault / ns_fault,
            }
        )
    print(
        f"\nseed scenario N={n} P={p}: build = mmap, parent writes, fork N, children write;"
        f" walk = full rmap_walk of every page\n(plain-Python model at N={bn} P={bp}, per visit / per fault, same process;"
        f" measured once per design, legacy and chain, best of {args.reps} after a warm-up)"
    )
    head = list(rows[0].keys())
    print("  ".join(f"{h:>14}" for h in head))
    for row in rows:
        print(
            "  ".join(
                f"{v:>14,}" if isinstance(v, int) else f"{v:>14.3f}" if isinstance(v, float) else f"{v:>14}"
                for v in row.values()
            )
        )
    print(
        "\nwalk cost per candidate VMA, single thread: the aggregate walk (totals, anon_vma by anon_vma)"
        " and the walk page by page (rows)"
    )
    for era in ("2.6.33", "6.18"):
        agg, one = sims[era], per_page_walk(era, n, p)
        assert one["visits"] == agg["visits"], (one, agg)
        a_ns, o_ns = agg["walk_s"] / agg["visits"] * 1e9, one["walk_s"] / one["visits"] * 1e9
        print(
            f"  {era:<7} {int(agg['visits']):>13,} candidates: aggregate {a_ns:.2f} ns, page by page {o_ns:.2f} ns"
            f" ({o_ns / a_ns:.1f}x the aggregate)"
        )
        figs[f"walk {era} aggregate ns/candidate"] = a_ns
        figs[f"walk {era} per-page ns/candidate"] = o_ns

    spin = spin_ratio()
    cores = "" if spin is None else f"; two C busy loops take {spin:.2f}x as long as one"
    print(f"\nparallel batch walks, 2.6.33 seed scenario, threads=1 vs threads=2 (best of {args.reps}{cores})")
    for name, (t1, t2) in parallel_walks(n, p, args.reps).items():
        print(f"  {name:<28} 1 thread {t1:.3f} s, 2 threads {t2:.3f} s  ->  {t1 / t2:.2f}x")
        figs[f"parallel {name} x"] = t1 / t2

    print(
        f"\nnative fuzzer, 6.18 with allocation-failure injection, {FUZZ_OPS:,} operations (best of {args.reps}{cores})"
    )
    t1, t2 = (fuzz_rate(jobs, args.reps) for jobs in (1, 2))
    print(f"  1 worker {FUZZ_OPS / t1:,.0f} ops/s, 2 workers {FUZZ_OPS / t2:,.0f} ops/s  ->  {t1 / t2:.2f}x")
    figs["fuzz 6.18 1 worker ns/op"] = t1 / FUZZ_OPS * 1e9
    figs["fuzz 6.18 2 workers ns/op"] = t2 / FUZZ_OPS * 1e9

    print(f"\nbaselines at full size N={n} P={p}, same run")
    if not args.no_reference:
        ref = reference_seed(n, p)
        print(
            f"  reference model (pure Python, 2.6.34 rules): build {ref['build_s']:.2f} s + walk {ref['walk_s']:.2f} s"
            f" = {ref['total_s']:.2f} s"
        )
        for era in ("2.6.34", "6.18"):
            s = sims[era]
            x = ref["total_s"] / (s["build_s"] + s["walk_s"])
            print(
                f"    simulator {era:<7} build {s['build_s']:.3f} s + walk {s['walk_s']:.3f} s"
                f" = {s['build_s'] + s['walk_s']:.3f} s  ->  {x:,.0f}x faster than the reference model"
            )
            figs[f"vs reference {era} x"] = x
            figs[f"seed {era} build+walk s"] = s["build_s"] + s["walk_s"]
    if not args.no_kernel:
        kern = kernel_seed(n, p, args.reps)
        if kern:
            s = sim_seed("6.18", n, p, args.reps, exits=True)
            x = kern["total_s"] / s["total_s"]
            runs = ", ".join(f"{t:.2f}" for t in kern["runs_s"])
            print(
                f"  real kernel (Linux {kern['kernel']}, seed_kernel.c: mmap, write, fork, COW writes, all alive, exit):"
                f" {kern['total_s']:.2f} s (best of {runs})"
            )
            print(
                f"    simulator 6.18 same operations + full walk of every page + exits: build {s['build_s']:.3f} s"
                f" + walk {s['walk_s']:.3f} s + exits {s['exit_s']:.3f} s = {s['total_s']:.3f} s"
                f"  ->  {x:,.0f}x faster than the kernel"
            )
            figs["vs kernel 6.18 x"] = x
            figs["seed 6.18 ops+walk+exit s"] = s["total_s"]
    if args.scale:
        figs.update(print_scale(run_scale()))

    new = {"children": n, "pages": p, "rows": rows, "figures": figs}
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(new, fh, indent=1)
        print(f"\nsaved to {args.save}")
    if args.compare:
        with open(args.compare) as fh:
            old = json.load(fh)
        slow = regressions(old, new)
        if slow:
            print("\nREGRESSION (>20% worse than the saved run):\n  " + "\n  ".join(slow))
            raise SystemExit(1)
        print(f"\nno regression above 20% against {args.compare}")


if __name__ == "__main__":
    main()
