"""``rmapsim record``: run a program under strace and convert its process and memory
syscalls into a trace (the work is :mod:`rmapsim.tools.record`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._common import check_output, run_interruptible


def register(sub: Any) -> None:
    """Add ``rmapsim record`` to the subparsers ``sub``."""
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
    rec.add_argument(
        "--writes",
        choices=["touched", "all", "none"],
        default="touched",
        help="which pages are assumed written (default touched)",
    )
    rec.add_argument(
        "--kernel-ratio", action="store_true", help="also sample the live kernel's slab objects during the run"
    )
    rec.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    rec.set_defaults(run=lambda args: run_interruptible("record", cmd_record, args))


def cmd_record(args: argparse.Namespace) -> int:
    from .. import kernel, record

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("rmapsim record: no command given (usage: rmapsim record --out TRACE -- COMMAND ...)", file=sys.stderr)
        return 2
    check_output("--out", args.out)
    try:
        summary = record.record(
            cmd,
            Path(args.out),
            writes=args.writes,
            kernel_ratio=args.kernel_ratio,
            progress=lambda m: print(m, file=sys.stderr),
        )
    except FileNotFoundError as e:
        print(f"rmapsim record: {e}", file=sys.stderr)
        return 2
    except kernel.KernelUnavailable as e:
        print(f"rmapsim record: --kernel-ratio: the live kernel cannot be measured here: {e}", file=sys.stderr)
        return kernel.EXIT_UNAVAILABLE
    print(
        f"{args.out}: {summary['ops']} operations, {summary['processes']} processes, {summary['files']} files "
        f"(command exit status {summary['exit_status']})"
    )
    if summary["skipped"]:
        print("skipped: " + ", ".join(f"{k} x{v}" for k, v in sorted(summary["skipped"].items())))
    k = summary.get("kernel")
    if k and "ratio_at_peak" in k:
        print(
            f"live kernel during the run: anon_vma_chain/vm_area_struct bytes {k['ratio_at_peak']:.3f} at the VMA peak "
            f"(mean {k['ratio_mean']:.3f}); peak {k['peak']}"
        )
    if summary["exit_status"] != 0:
        print(
            f"rmapsim record: the command exited with status {summary['exit_status']} (trace written anyway)",
            file=sys.stderr,
        )
        return 1
    return 0
