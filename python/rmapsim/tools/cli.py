"""Command line: ``rmapsim COMMAND`` (also ``python -m rmapsim COMMAND``).

This module is the entry point only: it builds the parser from the subcommand modules, one
per subcommand (``tools/commands/``: each registers its own arguments and sets the function
that runs it), and turns whatever a command raises into one line on stderr and an exit
status (docs/api-contract.md, "Command line exit status"). What the subcommands share
(statuses, :class:`CliError`, argument types, input and output checks, signals) is
``tools/_common.py``; the names of the former single-module CLI stay importable here.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional, Sequence

from .. import __version__
from ..errors import InvariantViolation, SimError
from ._common import (
    EXIT_FINDING,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SOFTWARE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    NR_CPUS,
    PID_MAX,
    U64_MAX,
    CliError,
    Terminated,
    check_output,
    json_mode,
    parse_trace_input,
    read_text_input,
    render_table,
    run_interruptible,
    signals_raise,
    trace_era,
)
from .commands import contention, demo, diff, eras, fuzz, record, replay, study, validate_kernel
from .commands.contention import cmd_contention
from .commands.demo import format_table, seed_scenario
from .commands.eras import eras_json, format_eras_table
from .commands.fuzz import cmd_fuzz
from .commands.record import cmd_record
from .commands.replay import cmd_replay, cmd_replay_memory
from .commands.study import cmd_study
from .commands.validate_kernel import cmd_validate_kernel

__all__ = [
    "main",
    "build_parser",
    "COMMANDS",
    "EXIT_OK",
    "EXIT_FINDING",
    "EXIT_USAGE",
    "EXIT_SOFTWARE",
    "EXIT_UNAVAILABLE",
    "EXIT_INTERRUPTED",
    "EXIT_PIPE",
    "U64_MAX",
    "NR_CPUS",
    "PID_MAX",
    "CliError",
    "Terminated",
    "signals_raise",
    "run_interruptible",
    "check_output",
    "read_text_input",
    "parse_trace_input",
    "trace_era",
    "render_table",
    "seed_scenario",
    "format_table",
    "format_eras_table",
    "eras_json",
    "cmd_study",
    "cmd_contention",
    "cmd_validate_kernel",
    "cmd_record",
    "cmd_replay",
    "cmd_replay_memory",
    "cmd_fuzz",
]

#: The subcommands in the order ``rmapsim --help`` lists them; each module's ``register``
#: adds its parser and sets ``run``, the function that runs it.
COMMANDS = (demo, replay, record, fuzz, contention, study, validate_kernel, diff, eras)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rmapsim",
        description="Simulate the Linux kernel's anonymous reverse mapping across kernel eras.",
        epilog=(
            "Exit status: 0 success, 1 the finding (an invariant violation, a kernel disagreement), "
            "2 bad usage or bad input (one line on stderr), 70 internal error (a bug), 77 cannot run here, "
            "126/127 (record) the program is not executable / not found, 130 interrupted, 141 stdout closed by "
            "its reader. Every subcommand takes --json (JSON Lines; docs/output-schema.md); --out is always a "
            "directory."
        ),
    )
    p.add_argument("--version", action="version", version=f"rmapsim {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return p


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
        with json_mode(bool(getattr(args, "json_lines", False) and getattr(args, "json", False))):
            status = int(args.run(args))
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
        print(
            f"rmapsim {name}: internal error (a bug in rmapsim; please report it with the traceback above)",
            file=sys.stderr,
        )
        return EXIT_SOFTWARE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
