"""``rmapsim validate-kernel``: scenarios on the live kernel against an era's prediction
(the work is :mod:`rmapsim.tools.kernel`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from ...errors import InvariantViolation, SimError
from .._common import CliError, _era, _positive, add_json, check_output, emit, run_interruptible
from . import validate_fuzz


def register(sub: Any) -> None:
    """Add ``rmapsim validate-kernel`` to the subparsers ``sub``."""
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
            "or no measurement to compare, 77 kernel unusable. --fuzz N runs random sequences instead (see below)."
        ),
    )
    vk.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="scenario to run (repeatable; default: all). Use --list to see them",
    )
    vk.add_argument("--list", action="store_true", help="list the scenarios and exit")
    vk.add_argument(
        "--era",
        action="append",
        type=_era,
        metavar="E",
        help="era to compare with (repeatable; default 6.18, the live kernel's)",
    )
    vk.add_argument("--pages", type=_positive, default=8, help="pages in the driver's region (default 8)")
    add_json(
        vk,
        "scenario and era (comparison), then per era (era_tally); --list: scenario; --fuzz: divergence, then summary",
    )
    vk.add_argument("--save", metavar="FILE", help="also write the raw measurements here (JSON)")
    vk.add_argument("--from", dest="from_file", metavar="FILE", help="compare saved measurements instead of running")
    validate_fuzz.add_arguments(vk)
    vk.set_defaults(run=lambda args: run_interruptible("validate-kernel", cmd_validate_kernel, args))


def cmd_validate_kernel(args: argparse.Namespace) -> int:
    from .. import kernel

    if args.fuzz is not None:
        return validate_fuzz.cmd_fuzz(args)
    if args.list:
        for s in kernel.SCENARIOS.values():
            if args.json:
                emit("scenario", {"scenario": s.name, "unit": s.unit, "sizes": list(s.sizes), "doc": s.doc})
            else:
                print(f"{s.name:<16} per {s.unit:<10} sizes {','.join(map(str, s.sizes))}  {s.doc}")
        return 0
    names = args.scenario or list(kernel.SCENARIOS)
    bad = [n for n in names if n not in kernel.SCENARIOS]
    if bad:
        print(
            f"rmapsim validate-kernel: unknown scenario {bad[0]!r}; known: {', '.join(kernel.SCENARIOS)}",
            file=sys.stderr,
        )
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
    kern = records[0].get("kernel", "?")
    tallies = []
    for era in dict.fromkeys(args.era or ["6.18"]):
        results = [_compare(kernel, r, era, args.from_file) for r in records]
        tally = era_tally(era, kern, results)
        tallies.append(tally)
        if args.json:
            for r in results:
                emit("comparison", {"kernel": kern, **r})
            emit("era_tally", tally)
            continue
        print(
            f"live kernel {kern} vs era {era}: slab allocations / frees; table: fitted per-unit slopes; "
            f"verdict: every fitted coefficient (slopes and intercept) equal to 1e-6"
        )
        print(kernel.exit_frees_line(records))
        print(kernel.format_comparison(results))
        print(tally_line(tally))
        print()
    if not args.json:
        print("verdict:", verdict_line(tallies))
    return 0 if all(t["scenarios_disagree"] == 0 for t in tallies) else 1


def era_tally(era: str, kern: str, results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One era's tally: how many scenarios agree and which disagree."""
    bad = [r["scenario"] for r in results if not r["agree"]]
    return {
        "era": era,
        "kernel": kern,
        "scenarios": len(results),
        "scenarios_agree": len(results) - len(bad),
        "scenarios_disagree": len(bad),
        "disagreeing": bad,
    }


def tally_line(t: Dict[str, Any]) -> str:
    if not t["scenarios_disagree"]:
        return f"era {t['era']}: all {t['scenarios']} scenarios agree"
    return (
        f"era {t['era']}: {t['scenarios_agree']} of {t['scenarios']} scenarios agree; "
        f"{t['scenarios_disagree']} DISAGREE: {', '.join(t['disagreeing'])}"
    )


def verdict_line(tallies: List[Dict[str, Any]]) -> str:
    """The last line: agreement in every era, or which eras disagree and how often."""
    bad = [t for t in tallies if t["scenarios_disagree"]]
    if not bad:
        scope = "in every era" if len(tallies) > 1 else f"with era {tallies[0]['era']}"
        return f"every scenario agrees {scope}"
    each = "; ".join(f"{t['era']}: {t['scenarios_disagree']} of {t['scenarios']} disagree" for t in bad)
    return f"DISAGREEMENT in {len(bad)} of {len(tallies)} eras ({each}; see rows marked DISAGREE)"


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
