"""What every ``rmapsim`` subcommand shares: exit statuses, the one-line error
(:class:`CliError`), argument types, output-path and input checks, trace input, and
signal handling for commands that hold system resources."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from .. import MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE
from .._text import render_table  # noqa: F401 (shared by the subcommands)
from ..errors import InvalidArgument
from ..policy import era_spec

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
            raise argparse.ArgumentTypeError(
                f"{s} must be a finite number within [{lo:g}, {hi:g}]"
                if hi < math.inf
                else f"{s} must be a finite number >= {lo:g}"
            )
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


#: File-name suffixes an ``--out`` value is refused with: ``--out`` names a directory, and a
#: name like ``x.trace`` is almost surely meant as a file (the old ``record``/``fuzz`` usage).
_FILE_SUFFIXES = (".trace", ".csv", ".json", ".jsonl", ".parquet", ".png", ".svg", ".pdf", ".md", ".txt")


def check_out_dir(path: str, writes: str) -> None:
    """``--out DIR`` of every subcommand: a directory (created if missing) that the command
    writes its files into under fixed names (``writes`` says which, for the error). A file,
    or a name with a file suffix that is not an existing directory, is refused before any
    work starts (docs/output-schema.md, "--out")."""
    if not path.strip():
        raise CliError("--out: give a directory name (an empty one names nothing)")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"--out {path}: exists and is not a directory (--out names a directory; {writes})")
    if not p.exists() and p.suffix.lower() in _FILE_SUFFIXES:
        raise CliError(
            f"--out {path}: names a directory (created if missing), not a file; {writes}. "
            f"Give a directory, e.g. --out {p.with_suffix('')}"
        )
    check_output("--out", path, directory=True)


def add_json(parser: Any, what: str) -> None:
    """The ``--json`` flag every subcommand has: JSON Lines on stdout, one record per row
    (``what``), fields documented in docs/output-schema.md. While such a command runs with
    ``--json`` (:func:`json_mode`), stdout carries only the :func:`emit` records: anything
    else it prints goes to stderr."""
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print JSON Lines instead of text: one object per {what} (fields: docs/output-schema.md); "
        "other messages go to stderr",
    )
    parser.set_defaults(json_lines=True)


_records: Optional[Any] = None  # where emit() writes while json_mode is on: the real stdout


@contextlib.contextmanager
def json_mode(on: bool) -> Any:
    """With ``on``: :func:`emit` writes to the stdout of the moment, and ``print`` (the
    command's human messages) to stderr, so stdout is pure JSON Lines."""
    global _records
    if not on:
        yield
        return
    saved, _records = _records, sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout, _records = _records, saved


def emit(record_type: str, fields: Dict[str, Any]) -> None:
    """Print one JSON Lines record: ``{"type": record_type, **fields}`` on one line,
    flushed (a reader sees each row as it is made). NaN and infinities become null, so
    every line is strict JSON."""
    rec = {"type": record_type, **fields}
    out = _records if _records is not None else sys.stdout
    out.write(json.dumps(_strict(rec), separators=(",", ":")) + "\n")
    out.flush()


def _strict(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _strict(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # a numpy scalar
        return _strict(v.item())
    return v


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
        raise CliError(
            f"not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r})", name, raw.count(b"\n", 0, e.start) + 1
        ) from None


_TRACE_LINE = re.compile(r"^trace line (\d+): (.*)$", re.S)


def parse_trace_input(text: str, name: str) -> Any:
    """The op array of a trace file's text; a malformed trace is a CliError naming the file and line."""
    from .. import trace as tr

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
                raise CliError(
                    f"the trace header names {era!r}, a variant of {era[:-1]!r} whose knobs an older "
                    f"rmapsim did not record; give the variant with --era BASE+knob=value,...",
                    name,
                    i,
                )
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


def era_file_name(stem: str, era: str, ext: str) -> str:
    """``STEM-ERA.EXT`` with the era spec made safe for a file name (``6.0+fork_reuse=never``
    -> ``6.0_fork_reuse_never``)."""
    return f"{stem}-{re.sub(r'[^A-Za-z0-9._-]+', '_', era)}{ext}"


def _parse_value(v: str) -> Any:
    try:
        return int(v, 0)
    except ValueError:
        return v


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


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
