"""Traces: the text form (version 1, documented in ``docs/fuzzing.md``) and the numpy
op-array form of an operation sequence.

The op array is a structured numpy array with fields ``code, p, a, b, c, d, e`` (uint64),
one row per operation; ``p`` is a process symbol (1 = the first process created in the
trace). :func:`parse` and :func:`format` convert between the forms; a malformed trace
raises :class:`rmapsim.InvalidArgument` naming the line and what was expected.

mmap rows (code 4) are ``p, a=addr (NONE: kernel's choice), b=len, c=prot, d=file, e=offset``;
in the text ``mmap pN ADDR LEN PROT [file ID OFFSET] [noreserve] [stack] [noreplace]``.
``noreserve`` (``MAP_NORESERVE``) is bit 3 (8) of the prot column ``c``, ``stack`` bit 4 (16)
and ``noreplace`` (``MAP_FIXED_NOREPLACE``) bit 5 (32): rows without them are unchanged, and a
``c`` with bits above 5 is refused. An mremap row (code 9) keeps ``dontunmap``
(``MREMAP_DONTUNMAP``) in bit 1 (2) of its may_move column ``d``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import _core

OP_DTYPE = np.dtype([(f, np.uint64) for f in ("code", "p", "a", "b", "c", "d", "e")])
NONE = np.iinfo(np.uint64).max
CODES = {word: code for word, _variant, code, *_ in _core.op_table()}
ERROR_KINDS = tuple(_core.ERROR_KINDS)


def parse(text: str) -> np.ndarray:
    """Parse a version-1 trace into an op array."""
    rows = _core.parse_trace(text)
    return np.array([tuple(r) for r in rows], dtype=OP_DTYPE)


def load(path: Union[str, Path]) -> np.ndarray:
    """Parse the trace file at ``path``; a path that cannot be read is an InvalidArgument."""
    import os

    from .errors import InvalidArgument, short_repr

    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(f"path must be a file path, got {short_repr(path)}")
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InvalidArgument(
            f"cannot read trace file path={short_repr(os.fspath(path))}: {e.__class__.__name__}"
        ) from e
    return parse(text)


def format(ops: np.ndarray, era: Optional[str] = None) -> str:  # noqa: A001 - mirrors parse
    """Render an op array as version-1 trace text."""
    return _core.format_trace(rows(ops), era)


def rows(ops: np.ndarray) -> list:
    """The op array ``ops`` as a list of rows of 7 ints."""
    from .errors import InvalidArgument, short_repr

    if not isinstance(ops, np.ndarray) or ops.dtype != OP_DTYPE or ops.ndim != 1:
        raise InvalidArgument(
            f"ops must be trace text or a one-dimensional op array of dtype {OP_DTYPE}, got {short_repr(ops)}"
        )
    return [[int(x) for x in r] for r in ops.tolist()]


def fork_storm(children: int = 3, pages: int = 4, addr: int = 0x10000000) -> np.ndarray:
    """The seed scenario (the 2010 thread's workload, ``rmapsim demo``) as an op array: p1
    maps ``pages`` pages at ``addr`` and writes them, forks ``children`` children, then
    each child writes every page. ``examples/seed-scenario.trace`` is
    ``format(fork_storm())``."""
    from .errors import InvalidArgument, short_repr

    for name, v, hi in (("children", children, 4_194_302), ("pages", pages, 1 << 35)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
            raise InvalidArgument(f"{name} must be an int from 1 to {hi}, got {short_repr(v)}")
    n = pages * 4096
    lines = ["# rmapsim trace v1", "spawn", f"mmap p1 {addr:#x} {n:#x} rw", f"touch p1 {addr:#x} {n:#x} w"]
    lines += ["fork p1"] * children
    lines += [f"touch p{k} {addr:#x} {n:#x} w" for k in range(2, children + 2)]
    return parse("\n".join(lines) + "\n")
