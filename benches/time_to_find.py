"""Time to find each catalogued bug (docs/bugs.md) and the variant of issue 16, for the
native fuzzer (`rmapsim fuzz`) and for hypothesis (`rmapsim.testing.programs`), over fixed
seeds: median seconds to the first failing input, median seconds including shrinking, and
the length of the shrunk reproducer, which is replayed (check after every operation) to
confirm it breaks the same invariant. For hypothesis, "length" is the reproducer its failure
message prints (hypothesis's own minimal program, shrunk further by delta debugging) and
"own" is hypothesis's minimal program itself.

    python benches/time_to_find.py [--seeds 5] [--budget 60] [--only NAME] [--json F]

A benchmark, not a test: figures depend on the machine. tests/model/test_testing.py runs a
quick deterministic case by default and this whole table when slow tests are selected.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

import rmapsim
from rmapsim import _core

#: (name, era spec, fail rate, extended op mix, message pattern the bug produces). Each
#: 2.6.34-rc1 bug is isolated as 2.6.34 with the one knob rc1 had otherwise, so the
#: violation found names the bug; 2.6.34 itself keeps the copy_vma merge (2.6.33-2.6.35),
#: whose dangling page->mapping (invariant 2) is told apart by its message.
BUGS = [
    (
        "rc1 swap-in to the faulting VMA's anon_vma",
        "2.6.34+swapin_target=vma_anon_vma",
        0.0,
        False,
        r"invariant 1\b|invariant 2 .*dangling|freed anon_vma",
    ),
    ("rc1 prepare-time reuse of any neighbour", "2.6.34+prepare_reuse=any_compatible", 0.0, False, r"invariant 4\b"),
    (
        "rc1 vma_adjust importer clones its own chain",
        "2.6.34+importer_clones_exporter=false",
        0.0,
        False,
        r"invariant [123]\b",
    ),
    (
        "rc1 anon_vma_fork error path leaks the chain",
        "2.6.34+fork_error_unlinks=false",
        0.05,
        False,
        r"invariant (3|6)\b|use-after-free",
    ),
    ("rc1, all at once", "2.6.34-rc1", 0.05, False, r"invariant|use-after-free"),
    ("3.19 degree double reuse (CVE-2022-42703)", "3.19", 0.0, False, r"invariant 4\b"),
    ("copy_vma merge into an unfaulted VMA", "2.6.33", 0.0, True, r"invariant [12]\b.*\(mremap\)"),
    ("mprotect case 6 ENOMEM use-after-free", "3.8", 0.05, False, r"use-after-free"),
    ("7.0-rc1 stale anon_vma after a failed clone", "7.0-rc1", 0.02, False, r"invariant [1-5]\b"),
]


def replays(era: str, trace: str, pattern: str) -> bool:
    res = rmapsim.Simulator(era=era).apply(trace, check_each=True)
    v = res.violation()
    return v is not None and re.search(pattern, v) is not None


def native(era: str, fail_rate: float, extended: bool, seed: int, budget: float) -> Dict[str, Any]:
    t0 = time.perf_counter()
    r = _core.fuzz(era, seed=seed, seconds=budget, fail_rate=fail_rate, extended=extended)
    dt = time.perf_counter() - t0
    if not r["violation"]:
        return {"found": False, "seconds": dt}
    n = sum(1 for line in r["trace"].splitlines() if line and not line.startswith("#"))
    return {"found": True, "seconds": dt, "find_s": dt, "length": n, "message": r["violation"], "trace": r["trace"]}


def hypo(era: str, fail_rate: float, extended: bool, seed: int, budget: float) -> Dict[str, Any]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from rmapsim.testing import ProgramViolation, programs

    state: Dict[str, Any] = {"first": None, "examples": 0, "ops": 0}
    t0 = time.perf_counter()

    @hseed(seed)
    @settings(
        max_examples=10**9,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(programs())
    def search(prog):
        state["examples"] += 1
        if state["first"] is None and time.perf_counter() - t0 > budget:
            raise _OutOfTime()
        arr, v = prog.run(era, fail_rate, extended)
        state["ops"] += len(arr)
        if v is not None:
            if state["first"] is None:
                state["first"] = time.perf_counter() - t0
            raise ProgramViolation(era, v, arr)

    try:
        search()
    except _OutOfTime:
        return {"found": False, "seconds": time.perf_counter() - t0}
    except ProgramViolation as e:
        dt = time.perf_counter() - t0
        own = len(e.ops) - 1  # hypothesis's own minimal program (without its spawn)
        msg, rep = e._shrunk()
        n = sum(1 for line in rep.splitlines() if line and not line.startswith("#"))
        return {
            "found": True,
            "seconds": dt,
            "find_s": state["first"],
            "length": n,
            "hypothesis_length": own,
            "message": msg,
            "trace": rep,
            "ops_per_s": state["ops"] / dt,
        }
    return {"found": False, "seconds": time.perf_counter() - t0}


class _OutOfTime(Exception):
    pass


def median(xs: List[float]) -> Optional[float]:
    return statistics.median(xs) if xs else None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=5, help="seeds per bug and tool (default 5)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per search before giving up (default 60)")
    ap.add_argument("--only", help="run the bugs whose name contains this text")
    ap.add_argument("--json", metavar="F", help="write the per-seed results here")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'bug':46} {'era':38} {'tool':10} {'found':>5} {'find s':>7} {'+shrink s':>9} {'length':>6} {'own':>4}")
    for name, era, fr, ext, pat in BUGS:
        if args.only and args.only not in name:
            continue
        for tool, fn in (("native", native), ("hypothesis", hypo)):
            runs = [fn(era, fr, ext, s, args.budget) for s in range(1, args.seeds + 1)]
            ok = [r for r in runs if r["found"]]
            bad = [r for r in ok if not re.search(pat, r["message"]) or not replays(era, r["trace"], pat)]
            rows.append({"bug": name, "era": era, "tool": tool, "runs": runs, "wrong_or_unreplayable": len(bad)})
            f = lambda k: median([r[k] for r in ok])  # noqa: E731, B023 (called at once, inside the loop)
            mf, ms, ml = f("find_s"), f("seconds"), f("length")
            own = median([r["hypothesis_length"] for r in ok if "hypothesis_length" in r])
            cell = lambda v, w, fmt: ("-" if v is None else format(v, fmt)).rjust(w)  # noqa: E731
            print(
                f"{name:46} {era:38} {tool:10} {len(ok)}/{len(runs):<3} {cell(mf, 7, '.2f')} {cell(ms, 9, '.2f')} "
                f"{cell(ml, 6, '.0f')} {cell(own, 4, '.0f')}"
                + (f"  ({len(bad)} other bug / not replayed)" if bad else ""),
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
