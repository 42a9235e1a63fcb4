"""``rmapsim validate-kernel --fuzz N``: random differential validation against the
running kernel (the work is :mod:`rmapsim.tools.kernel.fuzz`); ``--against ERA`` runs
the same machinery with a second simulator in place of the kernel."""

from __future__ import annotations

import argparse
import contextlib
import platform
import re
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

from .._common import CliError, _era, _int_range, check_out_dir, emit


def ops_range(s: str) -> Tuple[int, int]:
    """An --ops value: ``A..B`` (1 <= A <= B <= 1000) or ``N``."""
    m = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", s.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{s!r} is not A..B or N (operations per sequence)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if not 1 <= lo <= hi <= 1000:
        raise argparse.ArgumentTypeError(f"{s!r}: need 1 <= A <= B <= 1000")
    return lo, hi


def add_arguments(vk: Any) -> None:
    """The --fuzz options of ``validate-kernel``."""
    g = vk.add_argument_group(
        "random differential validation (--fuzz)",
        "N random sequences run by real processes and by the era's simulator, every operation "
        "compared (result, VMAs and flags, the driver's own mappings, page states, shared pages, "
        "mapcounts, anon_vma/anon_vma_chain/vm_area_struct allocations and frees); divergences are "
        "minimised and saved as replayable traces. Exit 0 none, 1 a divergence, 77 kernel unusable.",
    )
    g.add_argument(
        "--fuzz",
        type=_int_range(1, 10**9, "a billion sequences"),
        metavar="N",
        help="run N random sequences (1 .. 10**9)",
    )
    g.add_argument(
        "--seed",
        type=_int_range(0, 2**64 - 1),
        default=1,
        help="random seed, 0 .. 2**64 - 1 (default 1): the same seed gives the same sequences",
    )
    g.add_argument(
        "--ops", type=ops_range, default=(10, 40), metavar="A..B", help="operations per sequence (default 10..40)"
    )
    g.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (created if missing): each minimised divergence is saved as DIR/divergence-NNNN.trace",
    )
    g.add_argument(
        "--saved-per-class",
        type=int,
        default=3,
        metavar="K",
        help="minimise and save at most K divergences of each class (default 3; all are counted)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    g.add_argument(
        "--against",
        type=_era,
        metavar="ERA",
        help="compare with a simulator of ERA instead of the live kernel (testing the tool; runs anywhere)",
    )


def cmd_fuzz(args: argparse.Namespace) -> int:
    from ..kernel import fuzz as fz
    from ..kernel import fuzzgen

    if args.saved_per_class < 0:
        raise CliError(f"--saved-per-class must be >= 0, got {args.saved_per_class}")
    if args.scenario or args.from_file or args.save:
        raise CliError("--fuzz does not take --scenario, --from or --save")
    if args.era and len(args.era) > 1:
        raise CliError("--fuzz compares one era: give --era once")
    out_dir = Path(args.out) if args.out else None
    if args.out is not None:
        check_out_dir(args.out, "each divergence is saved as DIR/divergence-NNNN.trace")
    release = platform.release()
    era = args.era[0] if args.era else fz.kernel_era(release)
    spec, holes = fz.holes_spec(era)
    progress = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    def emit_divergence(rec: Dict[str, Any]) -> None:
        if args.json:
            emit(rec["type"], {k: v for k, v in rec.items() if k != "type"})

    def run(kernel: Any, image: Any, rel: str) -> Any:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        return fz.fuzz(
            kernel,
            image,
            args.fuzz,
            args.seed,
            args.ops,
            spec,
            holes,
            release=rel,
            out_dir=out_dir,
            saved_per_class=args.saved_per_class,
            progress=progress,
            emit=emit_divergence,
        )

    if args.against:
        rep = run(fz.SimAsKernel(args.against), fuzzgen.DRIVER_IMAGE, f"simulator {args.against} (--against)")
    else:
        rep = _live(run, progress)
        if isinstance(rep, int):
            return rep
    if args.json:
        summary = rep.summary()
        emit(summary.pop("type"), summary)
    else:
        print(fz.format_report(rep))
    return 1 if rep.divergences else 0


def _live(run: Any, progress: Any) -> Any:
    """Run on the live kernel: probe, build, tracefs, swap, the driver's cgroup; 77 when
    it cannot run here. Everything set up is torn down on every way out."""
    from ..kernel import driver, perf
    from ..kernel.fuzzgen import FILE_PAGES, FILES, OBSERVED
    from ..kernel.live import LiveKernel, build_serve, cgroup2_root
    from ..kernel.scenarios import EXIT_UNAVAILABLE, KernelUnavailable

    def unavailable(why: str) -> int:
        print(f"rmapsim validate-kernel: the live kernel cannot be used here: {why}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    why = perf.probe()
    if why:
        return unavailable(why)
    if cgroup2_root() is None:
        return unavailable("needs a cgroup v2 hierarchy (no cgroup2 mount in /proc/mounts)")
    try:
        exe = build_serve()
        flt = perf.filters()
        with contextlib.ExitStack() as stack:
            tfs = stack.enter_context(perf.tracefs())
            swap_why = stack.enter_context(driver.swapfile())
            ids = perf._event_ids(tfs)
            live = stack.enter_context(LiveKernel(exe, ids, flt, OBSERVED, FILES, FILE_PAGES))
            image = live.image()
            from ..kernel.fuzz import KernelSide

            if swap_why:
                return unavailable(f"no swap for MADV_PAGEOUT: {swap_why}")
            return run(KernelSide(live), image, f"live kernel {platform.release()}")
    except KernelUnavailable as e:
        return unavailable(str(e))
