"""Hypothesis support: strategies for operations and a state machine to subclass.

Needs ``hypothesis`` (``pip install 'rmapsim[test]'``)::

    from rmapsim.testing import RmapMachine

    class SixEighteen(RmapMachine):
        ERA = "6.18"

    TestSixEighteen = SixEighteen.TestCase

The machine drives one :class:`rmapsim.Simulator` through random operations over a few
processes and a small address window (so merges, splits, COW and swap are frequent), runs
``check()`` after every step, and on a broken invariant fails with the version-1 trace
text of the steps so far (replay it with ``rmapsim replay FILE --check``). Set ``POLICY``
(a :class:`rmapsim.Policy` or a dict of knobs) to test a variant, and ``ALLOWED`` to the
invariant numbers a knowingly buggy era may break.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from . import PAGE_SIZE, Simulator
from .errors import BadAddress, InvalidArgument, InvariantViolation, NoSuchProcess, OutOfMemory

BASE = 0x1000_0000
WINDOW_PAGES = 8
MAX_PROCS = 5

ADVICE = ("normal", "random", "sequential", "dontneed", "pageout", "dontfork", "dofork")
PROTS = ("rw", "rw", "r", "none")


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


def traces(max_ops: int = 40) -> st.SearchStrategy[str]:
    """Whole version-1 traces: a spawn, then random operations."""
    return st.lists(ops(), max_size=max_ops).map(lambda lines: "\n".join(["# rmapsim trace v1", "spawn", *lines]) + "\n")


_EXPECTED_ERRORS = (BadAddress, InvalidArgument, OutOfMemory, NoSuchProcess)


class RmapMachine(RuleBasedStateMachine):
    """Random operations on one simulator with ``check()`` after every step."""

    ERA: str = "6.18"
    POLICY: Any = None
    #: invariant numbers the era may knowingly break (e.g. {4} for "3.19")
    ALLOWED: Sequence[int] = ()

    def __init__(self) -> None:
        super().__init__()
        if self.POLICY is None or isinstance(self.POLICY, dict):
            self.sim = Simulator(era=self.ERA, policy=self.POLICY)
        else:
            self.sim = Simulator(policy=self.POLICY)
        self.lines: List[str] = ["# rmapsim trace v1", f"# era {self.sim.era}", "spawn"]
        self.syms: Dict[int, int] = {1: self.sim.spawn()}  # symbol -> pid
        self.live: List[int] = [1]
        self.broken: Optional[str] = None

    # -- helpers

    def trace(self) -> str:
        return "\n".join(self.lines) + "\n"

    def _do(self, line: str, fn: Any, *args: Any) -> Any:
        self.lines.append(line)
        try:
            return fn(*args)
        except _EXPECTED_ERRORS:
            return None

    # -- rules

    @precondition(lambda self: len(self.live) < MAX_PROCS and self.broken is None)
    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        s = data.draw(st.sampled_from(self.live))
        pid = self._do(f"fork p{s}", self.sim.fork, self.syms[s])
        if pid is not None:
            sym = len(self.syms) + 1
            self.syms[sym] = pid
            self.live.append(sym)

    @precondition(lambda self: len(self.live) > 1 and self.broken is None)
    @rule(data=st.data())
    def exit(self, data: st.DataObject) -> None:
        s = data.draw(st.sampled_from(self.live))
        self._do(f"exit p{s}", self.sim.exit, self.syms[s])
        self.live.remove(s)

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses(), length=lengths(), prot=st.sampled_from(PROTS))
    def mmap(self, data: st.DataObject, addr: int, length: int, prot: str) -> None:
        s = data.draw(st.sampled_from(self.live))
        self._do(f"mmap p{s} {addr:#x} {length:#x} {prot}", self.sim.mmap, self.syms[s], length, addr, prot)

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses(), length=lengths())
    def munmap(self, data: st.DataObject, addr: int, length: int) -> None:
        s = data.draw(st.sampled_from(self.live))
        self._do(f"munmap p{s} {addr:#x} {length:#x}", self.sim.munmap, self.syms[s], addr, length)

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses(), length=lengths(), write=st.booleans())
    def touch(self, data: st.DataObject, addr: int, length: int, write: bool) -> None:
        s = data.draw(st.sampled_from(self.live))
        w = "w" if write else "r"
        self._do(f"touch p{s} {addr:#x} {length:#x} {w}", self.sim.touch, self.syms[s], addr, length, write)

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses(), length=lengths(), prot=st.sampled_from(PROTS))
    def mprotect(self, data: st.DataObject, addr: int, length: int, prot: str) -> None:
        s = data.draw(st.sampled_from(self.live))
        self._do(f"mprotect p{s} {addr:#x} {length:#x} {prot}", self.sim.mprotect, self.syms[s], addr, length, prot)

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses(), length=lengths(), advice=st.sampled_from(ADVICE))
    def madvise(self, data: st.DataObject, addr: int, length: int, advice: str) -> None:
        s = data.draw(st.sampled_from(self.live))
        self._do(f"madvise p{s} {addr:#x} {length:#x} {advice}", self.sim.madvise, self.syms[s], addr, length, advice)

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses())
    def try_to_unmap(self, data: st.DataObject, addr: int) -> None:
        s = data.draw(st.sampled_from(self.live))
        self.lines.append(f"try_to_unmap p{s} {addr:#x}")
        try:
            page = self.sim.page_at(self.syms[s], addr)
        except _EXPECTED_ERRORS:
            return
        if page is not None:
            self.sim.try_to_unmap([page])

    @precondition(lambda self: self.broken is None)
    @rule(data=st.data(), addr=addresses(), length=lengths(), new_length=lengths(), dest=st.none() | addresses(2 * WINDOW_PAGES))
    def mremap(self, data: st.DataObject, addr: int, length: int, new_length: int, dest: Optional[int]) -> None:
        s = data.draw(st.sampled_from(self.live))
        line = f"mremap p{s} {addr:#x} {length:#x} {new_length:#x} move" + ("" if dest is None else f" {dest:#x}")
        self._do(line, self.sim.mremap, self.syms[s], addr, length, new_length, True, dest)

    @precondition(lambda self: self.broken is None)
    @rule()
    def drop_swap_cache(self) -> None:
        self._do("drop_swap_cache", self.sim.drop_swap_cache)

    @invariant()
    def invariants_hold(self) -> None:
        if self.broken is not None:
            return
        try:
            self.sim.check()
        except InvariantViolation as e:
            n = _invariant_number(str(e))
            if n is not None and n in self.ALLOWED:
                self.broken = str(e)
                return
            raise AssertionError(f"{e}\n--- trace (rmapsim replay FILE --check) ---\n{self.trace()}") from None


def _invariant_number(msg: str) -> Optional[int]:
    i = msg.find("invariant ")
    if i < 0:
        return None
    tok = msg[i + 10 :].split()[0]
    return int(tok) if tok.isdigit() else None
