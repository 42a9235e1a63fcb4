"""``rmapsim record``: run a program under strace and convert its process and memory
syscalls into a trace (the work is :mod:`rmapsim.tools.record`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from .._common import add_json, check_out_dir, emit, run_interruptible

#: The file ``record --out DIR`` writes.
TRACE_NAME = "record.trace"
EXIT_NOT_EXECUTABLE = 126  # the shell's statuses for a command it cannot run
EXIT_NOT_FOUND = 127


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
            "77 --kernel-ratio where the live kernel cannot be measured, 126 COMMAND is not executable, "
            "127 COMMAND not found (as a shell says)."
        ),
    )
    rec.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help=f"output directory (created if missing): the trace is written to DIR/{TRACE_NAME}",
    )
    rec.add_argument(
        "--writes",
        choices=["touched", "all", "none"],
        default="touched",
        help="which pages are assumed written (default touched)",
    )
    rec.add_argument(
        "--kernel-ratio", action="store_true", help="also sample the live kernel's slab objects during the run"
    )
    add_json(rec, "recording (record type record)")
    rec.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    rec.set_defaults(run=lambda args: run_interruptible("record", cmd_record, args))


def cmd_record(args: argparse.Namespace) -> int:
    from .. import kernel, record

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("rmapsim record: no command given (usage: rmapsim record --out DIR -- COMMAND ...)", file=sys.stderr)
        return 2
    check_out_dir(args.out, f"the trace is written to DIR/{TRACE_NAME}")
    why = _which(cmd[0])
    if why is not None:
        print(f"rmapsim record: {cmd[0]}: {why}", file=sys.stderr)
        return EXIT_NOT_FOUND if why == "command not found" else EXIT_NOT_EXECUTABLE
    os.makedirs(args.out, exist_ok=True)
    trace = os.path.join(args.out, TRACE_NAME)
    try:
        summary = record.record(
            cmd,
            Path(trace),
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
    if args.json:
        emit("record", _record_fields(trace, summary))
        return 0 if summary["exit_status"] == 0 else 1
    print(
        f"{trace}: {summary['ops']} operations, {summary['processes']} processes, {summary['files']} files "
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


def _which(prog: str) -> Optional[str]:
    """Why ``prog`` cannot be run ("command not found", "permission denied", "is a
    directory"), or None when it can: looked up as a shell would (a name with a slash is
    a path, else searched in PATH)."""
    if os.sep in prog:
        if not os.path.exists(prog):
            return "command not found"
        if os.path.isdir(prog):
            return "is a directory"
        return None if os.access(prog, os.X_OK) else "permission denied"
    return None if shutil.which(prog) else "command not found"


def _record_fields(trace: str, s: Dict[str, Any]) -> Dict[str, Any]:
    """``record --json``: the recording's summary (docs/output-schema.md)."""
    k = s.get("kernel") or {}
    return {
        "trace": trace,
        "command": s["command"],
        "exit_status": s["exit_status"],
        "wall_s": s["wall_s"],
        "ops": s["ops"],
        "processes": s["processes"],
        "files": s["files"],
        "skipped": dict(sorted(s["skipped"].items())),
        "kernel_ratio_at_peak": k.get("ratio_at_peak"),
        "kernel_ratio_mean": k.get("ratio_mean"),
    }
