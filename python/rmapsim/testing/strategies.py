"""Whole-program strategies (:func:`programs`, :func:`op_arrays`, :func:`traces`) run at
native speed, and single trace lines (:func:`ops`); see :mod:`rmapsim.testing`."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import numpy as np
from hypothesis import strategies as st

from .. import PAGE_SIZE, _core
from ..errors import InvalidArgument, short_repr
from ..policy import era_spec
from ..trace import OP_DTYPE
from ..trace import format as format_trace

BASE = 0x1000_0000
WINDOW_PAGES = 8
MAX_PROCS = 5

ADVICE = ("normal", "random", "sequential", "dontneed", "pageout", "dontfork", "dofork")
ALL_ADVICE = ADVICE + ("wipeonfork", "keeponfork", "hugepage", "nohugepage", "dontdump", "dodump", "free")
ALL_ADVICE += ("mergeable", "unmergeable")
PROTS = ("rw", "rw", "r", "none")
HEADER = "# rmapsim trace v1"

#: Words (operations) per block a :func:`programs` example is made of.
WORDS_PER_BLOCK = 64


def addresses(window_pages: int = WINDOW_PAGES) -> st.SearchStrategy[int]:
    """Page-aligned addresses in the fuzzing window."""
    return st.integers(0, window_pages - 1).map(lambda i: BASE + i * PAGE_SIZE)


def lengths(max_pages: int = 4) -> st.SearchStrategy[int]:
    return st.integers(1, max_pages).map(lambda n: n * PAGE_SIZE)


def ops(procs: int = MAX_PROCS) -> st.SearchStrategy[str]:
    """Single trace lines (version 1) over process symbols p1..p<procs>."""
    p = st.integers(1, procs).map(lambda i: f"p{i}")
    a, n = addresses(), lengths()
    return st.one_of(
        st.builds(lambda p: f"fork {p}", p),
        st.builds(lambda p: f"exit {p}", p),
        st.builds(lambda p, a, n, pr: f"mmap {p} {a:#x} {n:#x} {pr}", p, a, n, st.sampled_from(PROTS)),
        st.builds(lambda p, a, n: f"munmap {p} {a:#x} {n:#x}", p, a, n),
        st.builds(lambda p, a, n, w: f"touch {p} {a:#x} {n:#x} {w}", p, a, n, st.sampled_from("wwr")),
        st.builds(lambda p, a, n, pr: f"mprotect {p} {a:#x} {n:#x} {pr}", p, a, n, st.sampled_from(PROTS)),
        st.builds(lambda p, a, n, ad: f"madvise {p} {a:#x} {n:#x} {ad}", p, a, n, st.sampled_from(ADVICE)),
        st.builds(lambda p, a: f"try_to_unmap {p} {a:#x}", p, a),
        st.just("drop_swap_cache"),
    )


# ----------------------------------------------------------------------------- programs


def _rows_to_array(rows: Sequence[Sequence[int]]) -> np.ndarray:
    return np.array([tuple(r) for r in rows], dtype=OP_DTYPE)


def _era_args(era: Any) -> str:
    try:
        return era_spec(era)
    except InvalidArgument as e:
        raise InvalidArgument(f"era: {e}") from None


class ProgramViolation(AssertionError):
    """A program broke an invariant. ``violation`` is the engine's message, ``ops`` the
    program as run (op array), ``era`` the spec; ``str()`` adds the reproducer: the
    program shrunk by the native fuzzer's delta debugging, as a trace (computed when the
    message is first shown, so hypothesis's own shrinking does not pay for it)."""

    def __init__(self, era: str, violation: str, ops: np.ndarray) -> None:
        super().__init__(violation)
        self.era, self.violation, self.ops = era, violation, ops
        self._text: Optional[str] = None

    def reproducer(self) -> str:
        """The shrunk trace (falls back to the whole program if shrinking finds nothing)."""
        return self._shrunk()[1]

    def _shrunk(self) -> tuple[str, str]:
        got = _core.shrink_trace(self.era, self.ops.tolist())
        msg, rows = got if got else (self.violation, self.ops.tolist())
        return msg, format_trace(_rows_to_array(rows), era=self.era)

    def __str__(self) -> str:
        if self._text is None:
            msg, rep = self._shrunk()
            n = sum(1 for line in rep.splitlines() if line and not line.startswith("#"))
            self._text = (
                f"{self.violation}\n--- era {self.era}: the program ({len(self.ops)} operations) shrunk "
                f"to {n} by delta debugging, which breaks it as: {msg}\n"
                f"--- rmapsim replay FILE --check reproduces it ---\n{rep}"
            )
        return self._text


class Program:
    """One generated program: 64-bit words, one operation each (see the module
    documentation), held as little-endian bytes. The same words are a different program in
    another era only where the live processes differ (a fork failing in one era, say)."""

    __slots__ = ("data",)

    def __init__(self, words: Union[bytes, Sequence[int]]) -> None:
        if isinstance(words, (bytes, bytearray, memoryview)):
            data = bytes(words)
            self.data = data[: len(data) // 8 * 8]
        else:
            self.data = np.asarray([int(w) for w in words], dtype="<u8").tobytes()

    @property
    def words(self) -> List[int]:
        return np.frombuffer(self.data, dtype="<u8").tolist()

    def __len__(self) -> int:
        return int(np.count_nonzero(np.frombuffer(self.data, dtype="<u8")))

    def __repr__(self) -> str:
        return f"Program({len(self)} operations)"

    def _run(
        self, era: Any, fail_rate: float, extended: bool, seed: int, every: int
    ) -> tuple[np.ndarray, Optional[str]]:
        flat, violation = _core.run_program(_era_args(era), self.data, seed, fail_rate, extended, None, every)
        return flat.view(OP_DTYPE), violation

    def ops(self, era: Any = "6.18", fail_rate: float = 0.0, extended: bool = False, seed: int = 0) -> np.ndarray:
        """The program decoded for ``era`` as an op array (``Simulator.apply`` runs it)."""
        return self._run(era, fail_rate, extended, seed, 0)[0]

    def trace(self, era: Any = "6.18", fail_rate: float = 0.0, extended: bool = False, seed: int = 0) -> str:
        spec = _era_args(era)
        return format_trace(self.ops(spec, fail_rate, extended, seed), era=spec)

    def run(
        self,
        era: Any = "6.18",
        fail_rate: float = 0.0,
        extended: bool = False,
        seed: int = 0,
        full_check_every: int = 16,
    ) -> tuple[np.ndarray, Optional[str]]:
        """Decode and run in one engine call: structural checks after every operation, the
        full ``check()`` every ``full_check_every`` and after the last. Returns (the op
        array run, the violation message or None)."""
        if isinstance(full_check_every, bool) or not isinstance(full_check_every, int) or full_check_every < 1:
            raise InvalidArgument(f"full_check_every must be an int >= 1, got {short_repr(full_check_every)}")
        return self._run(era, fail_rate, extended, seed, full_check_every)

    def check(
        self,
        era: Any = "6.18",
        fail_rate: float = 0.0,
        extended: bool = False,
        seed: int = 0,
        full_check_every: int = 16,
        allowed: Sequence[int] = (),
    ) -> None:
        """:meth:`run`, raising :class:`ProgramViolation` on a broken invariant whose
        number is not in ``allowed``."""
        spec = _era_args(era)
        arr, violation = self.run(spec, fail_rate, extended, seed, full_check_every)
        if violation is not None and _invariant_number(violation) not in set(allowed):
            raise ProgramViolation(spec, violation, arr)


def _words(blocks: List[bytes]) -> Program:
    return Program(b"".join(blocks))


def programs(max_ops: int = 320) -> st.SearchStrategy[Program]:
    """Programs of up to ``max_ops`` operations (rounded up to whole blocks of
    :data:`WORDS_PER_BLOCK`): a list of byte blocks, so generating one costs a few draws and
    shrinking deletes or zeroes whole blocks and words."""
    if isinstance(max_ops, bool) or not isinstance(max_ops, int) or max_ops < 1:
        raise InvalidArgument(f"max_ops must be an int >= 1, got {short_repr(max_ops)}")
    block = st.binary(min_size=8 * WORDS_PER_BLOCK, max_size=8 * WORDS_PER_BLOCK)
    return st.lists(block, min_size=1, max_size=-(-max_ops // WORDS_PER_BLOCK)).map(_words)


def op_arrays(
    era: Any = "6.18", max_ops: int = 320, fail_rate: float = 0.0, extended: bool = False
) -> st.SearchStrategy[np.ndarray]:
    """:func:`programs` decoded for ``era`` as op arrays."""
    spec = _era_args(era)
    return programs(max_ops).map(lambda p: p.ops(spec, fail_rate, extended))


def traces(
    max_ops: int = 40, era: Any = None, extended: bool = False, fail_rate: float = 0.0
) -> st.SearchStrategy[str]:
    """Whole version-1 traces. With ``era`` (a spec): :func:`programs` decoded for it (the
    native fuzzer's operation mix, ``extended`` and ``fail_rate`` as in ``rmapsim fuzz``);
    without: a spawn, then lines of :func:`ops` (processes named blindly)."""
    if era is not None:
        spec = _era_args(era)
        return programs(max_ops).map(lambda p: p.trace(spec, fail_rate, extended))
    return st.lists(ops(), max_size=max_ops).map(lambda lines: "\n".join([HEADER, "spawn", *lines]) + "\n")


def _invariant_number(msg: str) -> Optional[int]:
    i = msg.find("invariant ")
    if i < 0:
        return None
    tok = msg[i + 10 :].split()[0]
    return int(tok) if tok.isdigit() else None
