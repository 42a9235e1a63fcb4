"""Exceptions raised by rmapsim.

Every error derives from :class:`SimError`; each specific class also derives from the
matching builtin, so ordinary ``except LookupError`` / ``except ValueError`` /
``except MemoryError`` clauses work.
"""

from __future__ import annotations

__all__ = [
    "SimError",
    "NoSuchProcess",
    "BadAddress",
    "InvalidArgument",
    "StaleHandle",
    "OutOfMemory",
    "InvariantViolation",
    "TryAgain",
    "Busy",
    "AlreadyMapped",
]


#: Longest repr of a bad value an error message repeats (as the bindings cut it).
QUOTE_MAX = 80


def short_repr(value: object) -> str:
    """``repr(value)`` cut to :data:`QUOTE_MAX` characters, the full length noted."""
    try:
        r = repr(value)
    except Exception:  # a hostile __repr__
        r = "<unprintable>"
    if len(r) <= QUOTE_MAX:
        return r
    return f"{r[: QUOTE_MAX - 3]}... ({len(r)} chars)"


class SimError(Exception):
    """Base class of every rmapsim error."""


class NoSuchProcess(SimError, LookupError):
    """The pid is unknown or the process has exited."""


class BadAddress(SimError, ValueError):
    """An address is unaligned, outside the user address space, unmapped, or not
    accessible for the requested access (the kernel would return EINVAL or send SIGSEGV)."""


class InvalidArgument(SimError, ValueError):
    """Any other bad argument: length, prot string, era name, count, handle list."""


class StaleHandle(InvalidArgument):
    """A handle whose object was freed (a detected use-after-free) or never existed."""


class OutOfMemory(SimError, MemoryError):
    """An allocation failed (injected ENOMEM, or no free address range); the operation
    unwound as the kernel's error path does."""


class InvariantViolation(SimError, AssertionError):
    """``check()`` found a broken invariant (docs/contract.md#invariants), or a walk met a dangling
    ``page->mapping``. The message names the invariant, the objects and the operation."""


class TryAgain(SimError, OSError):
    """A kernel limit refused the operation as the kernel's ``EAGAIN`` does: no free pid
    below the Simulator's ``pid_max`` for a fork or spawn. Nothing changed."""


class Busy(SimError, RuntimeError):
    """A call found the Simulator in use by a long call (a walk, ``check``, a batch) running
    in another thread. The message names the call in progress. One Simulator is used by one
    thread at a time; read-only walks (``rmap_walk``, ``page_referenced``, ``check``,
    ``contention`` and other read-only calls) may share it."""


class AlreadyMapped(SimError, FileExistsError):
    """The range is already mapped, as the kernel's ``EEXIST`` says: ``mmap(...,
    noreplace=True)`` (``MAP_FIXED_NOREPLACE``, Linux 4.17+) over a range that overlaps a
    VMA. Nothing changed."""
