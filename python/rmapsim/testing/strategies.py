"""Hypothesis support: whole-program strategies run at native speed, and a state machine.

Needs ``hypothesis`` (``pip install 'rmapsim[test]'``). Two ways in:

**Programs** (fast: hypothesis generates and shrinks whole programs; the engine decodes and
runs each in one call)::

    from hypothesis import given
    from rmapsim.testing import programs

    @given(programs())
    def test_6_18_keeps_its_invariants(prog):
        prog.check("6.18", fail_rate=0.05, extended=True)

A :class:`Program` is a list of 64-bit words, one operation each, decoded the way the
native fuzzer draws operations (``rmapsim fuzz``) for the processes alive at that point;
the zero word is no operation, so shrinking a word to zero deletes it. :meth:`Program.check`
raises :class:`ProgramViolation` (an ``AssertionError``) whose message holds the program's
trace shrunk further by delta debugging, which ``rmapsim replay FILE --check`` reproduces.
:func:`op_arrays` and :func:`traces` give the decoded programs of an era as op arrays or
trace text for properties of your own (``sim.apply(arr)`` runs one in one call).

**The state machine** :class:`RmapMachine` (readable shrunk programs, ``v2 = fork(v1)``)::

    from rmapsim.testing import RmapMachine

    TestVariant = RmapMachine.for_era("6.0+fork_reuse=never").TestCase

Every rule is one trace line applied through the trace runner, so the trace it prints on a
failure replays exactly; structural checks run after every step and the full ``check()``
every ``FULL_CHECK_EVERY`` steps. ``ALLOWED`` lists invariant numbers a knowingly buggy era
may break.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, precondition, rule

from . import _core
from . import PAGE_SIZE, Policy, Simulator
from .errors import InvalidArgument, InvariantViolation, short_repr
from .policy import era_spec
from .trace import ERROR_KINDS, OP_DTYPE
from .trace import format as format_trace
from .trace import parse as parse_trace

__all__ = ["addresses", "lengths", "ops", "traces", "programs", "op_arrays", "Program", "ProgramViolation",
           "RmapMachine", "WORDS_PER_BLOCK"]

BASE = 0x1000_0000
WINDOW_PAGES = 8
MAX_PROCS = 5

ADVICE = ("normal", "random", "sequential", "dontneed", "pageout", "dontfork", "dofork")
ALL_ADVICE = ADVICE + ("wipeonfork", "keeponfork", "hugepage", "nohugepage", "dontdump", "dodump")
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

    def _shrunk(self) -> "tuple[str, str]":
        got = _core.shrink_trace(self.era, self.ops.tolist())
        msg, rows = got if got else (self.violation, self.ops.tolist())
        return msg, format_trace(_rows_to_array(rows), era=self.era)

    def __str__(self) -> str:
        if self._text is None:
            msg, rep = self._shrunk()
            n = sum(1 for line in rep.splitlines() if line and not line.startswith("#"))
            self._text = (f"{self.violation}\n--- era {self.era}: the program ({len(self.ops)} operations) shrunk "
                          f"to {n} by delta debugging, which breaks it as: {msg}\n"
                          f"--- rmapsim replay FILE --check reproduces it ---\n{rep}")
        return self._text


class Program:
    """One generated program: 64-bit words, one operation each (see the module
    documentation), held as little-endian bytes. The same words are a different program in
    another era only where the live processes differ (a fork failing in one era, say)."""

    __slots__ = ("data",)

    def __init__(self, words: "Union[bytes, Sequence[int]]") -> None:
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

    def _run(self, era: Any, fail_rate: float, extended: bool, seed: int,
             every: int) -> "tuple[np.ndarray, Optional[str]]":
        flat, violation = _core.run_program(_era_args(era), self.data, seed, fail_rate, extended, None, every)
        return flat.view(OP_DTYPE), violation

    def ops(self, era: Any = "6.18", fail_rate: float = 0.0, extended: bool = False, seed: int = 0) -> np.ndarray:
        """The program decoded for ``era`` as an op array (``Simulator.apply`` runs it)."""
        return self._run(era, fail_rate, extended, seed, 0)[0]

    def trace(self, era: Any = "6.18", fail_rate: float = 0.0, extended: bool = False, seed: int = 0) -> str:
        spec = _era_args(era)
        return format_trace(self.ops(spec, fail_rate, extended, seed), era=spec)

    def run(self, era: Any = "6.18", fail_rate: float = 0.0, extended: bool = False, seed: int = 0,
            full_check_every: int = 16) -> "tuple[np.ndarray, Optional[str]]":
        """Decode and run in one engine call: structural checks after every operation, the
        full ``check()`` every ``full_check_every`` and after the last. Returns (the op
        array run, the violation message or None)."""
        if isinstance(full_check_every, bool) or not isinstance(full_check_every, int) or full_check_every < 1:
            raise InvalidArgument(f"full_check_every must be an int >= 1, got {short_repr(full_check_every)}")
        return self._run(era, fail_rate, extended, seed, full_check_every)

    def check(self, era: Any = "6.18", fail_rate: float = 0.0, extended: bool = False, seed: int = 0,
              full_check_every: int = 16, allowed: Sequence[int] = ()) -> None:
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


def op_arrays(era: Any = "6.18", max_ops: int = 320, fail_rate: float = 0.0,
              extended: bool = False) -> st.SearchStrategy[np.ndarray]:
    """:func:`programs` decoded for ``era`` as op arrays."""
    spec = _era_args(era)
    return programs(max_ops).map(lambda p: p.ops(spec, fail_rate, extended))


def traces(max_ops: int = 40, era: Any = None, extended: bool = False, fail_rate: float = 0.0) -> st.SearchStrategy[str]:
    """Whole version-1 traces. With ``era`` (a spec): :func:`programs` decoded for it (the
    native fuzzer's operation mix, ``extended`` and ``fail_rate`` as in ``rmapsim fuzz``);
    without: a spawn, then lines of :func:`ops` (processes named blindly)."""
    if era is not None:
        spec = _era_args(era)
        return programs(max_ops).map(lambda p: p.trace(spec, fail_rate, extended))
    return st.lists(ops(), max_size=max_ops).map(lambda lines: "\n".join([HEADER, "spawn", *lines]) + "\n")


# ----------------------------------------------------------------------------- the machine

#: Addresses the machine maps at: a small window (so merges, splits, COW and overlaps are
#: frequent), and a second one that moves land in.
PAGES = st.integers(0, 2 * WINDOW_PAGES - 1)


class RmapMachine(RuleBasedStateMachine):
    """One simulator driven by rules over process and range bundles, every rule one trace
    line run by the trace runner; structural checks after every step, the full ``check()``
    every :attr:`FULL_CHECK_EVERY` steps and at the end of a run."""

    ERA: str = "6.18"
    POLICY: Any = None
    #: invariant numbers the era may knowingly break (e.g. {4} for "3.19")
    ALLOWED: Sequence[int] = ()
    FULL_CHECK_EVERY: int = 4

    procs = Bundle("procs")
    ranges = Bundle("ranges")

    @classmethod
    def for_era(cls, era: "Union[str, Policy]", allowed: Sequence[int] = ()) -> type:
        """A machine class for ``era`` (a preset, an era spec or a Policy): use its
        ``TestCase``."""
        spec = _era_args(era)
        name = "RmapMachine_" + "".join(c if c.isalnum() else "_" for c in spec)
        return type(name, (cls,), {"ERA": spec, "POLICY": None, "ALLOWED": tuple(allowed)})

    def __init__(self) -> None:
        super().__init__()
        if self.POLICY is None or isinstance(self.POLICY, dict):
            self.sim = Simulator(era=self.ERA, policy=self.POLICY)
        else:
            self.sim = Simulator(policy=self.POLICY)
        self.lines: List[str] = [HEADER, f"# era {self.sim.era}"]
        self.pids: List[int] = []  # pid of symbol p(i+1), as the trace runner numbers them
        self.live: List[int] = []
        self.broken: Optional[str] = None
        self.steps = 0
        # hypothesis.target steers generation toward runs with more processes, VMAs and
        # anon_vmas alive at once (fork/exit cycles, splits), where the rmap bugs live
        self.peak: Dict[str, int] = {"live processes": 0, "VMAs": 0, "anon_vmas": 0}

    # -- helpers

    def trace(self) -> str:
        return "\n".join(self.lines) + "\n"

    def _run(self, line: str) -> "tuple[bool, int]":
        """Apply one trace line; (succeeded, value)."""
        self.lines.append(line)
        rows = _core.parse_trace(f"{HEADER}\n{line}\n")
        status, value, message, self.pids = self.sim._apply_from(rows, self.pids)
        if status[0] == ERROR_KINDS.index("InvariantViolation") + 1:
            self._violated(message[0])
        return status[0] == 0, int(value[0])

    def _new_proc(self, line: str) -> Any:
        ok, sym = self._run(line)
        if not ok:
            return multiple()
        self.live.append(sym)
        self.peak["live processes"] = max(self.peak["live processes"], len(self.live))
        return sym

    def _violated(self, msg: str) -> None:
        if _invariant_number(msg) in set(self.ALLOWED):
            self.broken = msg
            return
        rep = ProgramViolation(self.sim.era, msg, parse_trace(self.trace()))
        raise AssertionError(f"{msg}\n--- trace (rmapsim replay FILE --check) ---\n{self.trace()}"
                             f"--- shrunk by delta debugging ---\n{rep.reproducer()}") from None

    # -- rules

    @initialize(target=procs)
    def spawn(self) -> Any:
        return self._new_proc("spawn")

    @precondition(lambda self: len(self.live) < MAX_PROCS and self.broken is None)
    @rule(target=procs, p=procs)
    def fork(self, p: int) -> Any:
        return self._new_proc(f"fork p{p}")

    @precondition(lambda self: len(self.live) < MAX_PROCS - 1 and self.broken is None)
    @rule(target=procs, p=procs)
    def fork_many(self, p: int) -> Any:
        # fork_many(p, 2): two children in one call, which the trace says as two forks
        kids = [self._new_proc(f"fork p{p}") for _ in range(2)]
        return multiple(*[k for k in kids if isinstance(k, int)])

    @precondition(lambda self: len(self.live) > 1 and self.broken is None)
    @rule(p=consumes(procs))
    def exit(self, p: int) -> None:
        if self._run(f"exit p{p}")[0] and p in self.live:
            self.live.remove(p)

    @precondition(lambda self: self.broken is None)
    @rule(p=procs)
    def exec(self, p: int) -> None:
        self._run(f"exec p{p}")

    @precondition(lambda self: self.broken is None)
    @rule(target=ranges, p=procs, page=PAGES, n=st.integers(1, 4), prot=st.sampled_from(PROTS),
          kind=st.sampled_from(["anon", "anon", "anon", "file", "noreserve", "stack"]), file=st.integers(1, 2),
          shift=st.integers(0, 1))
    def mmap(self, p: int, page: int, n: int, prot: str, kind: str, file: int, shift: int) -> Any:
        addr, length = BASE + page * PAGE_SIZE, n * PAGE_SIZE
        extra = {"anon": "", "file": f" file {file} {(page + shift) * PAGE_SIZE:#x}", "noreserve": " noreserve",
                 "stack": " stack"}[kind]
        ok, _ = self._run(f"mmap p{p} {addr:#x} {length:#x} {prot}{extra}")
        return (addr, length) if ok else multiple()

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, cut=st.integers(0, 3))
    def munmap(self, p: int, r: "tuple[int, int]", cut: int) -> None:
        addr, length = r
        self._run(f"munmap p{p} {addr + cut * PAGE_SIZE:#x} {max(PAGE_SIZE, length - cut * PAGE_SIZE):#x}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, write=st.sampled_from([True, True, False]), head=st.booleans())
    def touch(self, p: int, r: "tuple[int, int]", write: bool, head: bool) -> None:
        addr, length = r
        n = PAGE_SIZE if head else length
        self._run(f"touch p{p} {addr:#x} {n:#x} {'w' if write else 'r'}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, prot=st.sampled_from(PROTS), middle=st.booleans())
    def mprotect(self, p: int, r: "tuple[int, int]", prot: str, middle: bool) -> None:
        addr, length = r
        if middle and length > PAGE_SIZE:  # splits: the kernel's vma_merge/vma_adjust cases
            addr, length = addr + PAGE_SIZE, PAGE_SIZE
        self._run(f"mprotect p{p} {addr:#x} {length:#x} {prot}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, advice=st.sampled_from(ALL_ADVICE), middle=st.booleans())
    def madvise(self, p: int, r: "tuple[int, int]", advice: str, middle: bool) -> None:
        addr, length = r
        if middle and length > PAGE_SIZE:
            addr, length = addr + PAGE_SIZE, PAGE_SIZE
        self._run(f"madvise p{p} {addr:#x} {length:#x} {advice}")

    @precondition(lambda self: self.broken is None)
    @rule(target=ranges, p=procs, r=ranges, new_n=st.integers(1, 4),
          form=st.sampled_from(["move", "nomove", "fixed", "fixed_same"]), dest=PAGES)
    def mremap(self, p: int, r: "tuple[int, int]", new_n: int, form: str, dest: int) -> Any:
        addr, length = r
        new_len = length if form == "fixed_same" else new_n * PAGE_SIZE
        to = BASE + (WINDOW_PAGES + dest) * PAGE_SIZE
        tail = {"move": " move", "nomove": " nomove", "fixed": f" move {to:#x}", "fixed_same": f" move {to:#x}"}[form]
        ok, value = self._run(f"mremap p{p} {addr:#x} {length:#x} {new_len:#x}{tail}")
        return (value, new_len) if ok and value else multiple()

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, page=st.integers(0, 3))
    def try_to_unmap(self, p: int, r: "tuple[int, int]", page: int) -> None:
        addr, length = r
        self._run(f"try_to_unmap p{p} {addr + min(page * PAGE_SIZE, length - PAGE_SIZE):#x}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, one=st.booleans())
    def drop_swap_cache(self, p: int, r: "tuple[int, int]", one: bool) -> None:
        self._run(f"drop_swap_cache p{p} {r[0]:#x}" if one else "drop_swap_cache")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, grow=st.integers(0, 5))
    def brk(self, p: int, grow: int) -> None:
        heap = BASE + 2 * WINDOW_PAGES * PAGE_SIZE
        if grow == 0:
            self._run(f"brkbase p{p} {heap:#x}")
        else:
            self._run(f"brk p{p} {heap + grow * PAGE_SIZE:#x}")

    @precondition(lambda self: self.broken is None)
    @rule(nth=st.integers(1, 4))
    def enomem(self, nth: int) -> None:
        # an armed allocation failure: the nth allocation from now fails (ENOMEM)
        self._run(f"enomem {nth}")

    @invariant()
    def invariants_hold(self) -> None:
        if self.broken is not None or not self.pids:
            return
        self.steps += 1
        full = self.steps % self.FULL_CHECK_EVERY == 0
        try:
            self.sim.check() if full else self.sim._check_structure()
        except InvariantViolation as e:
            self._violated(str(e))
        c = self.sim.counts()
        self.peak["VMAs"] = max(self.peak["VMAs"], c["vma"])
        self.peak["anon_vmas"] = max(self.peak["anon_vmas"], c["anon_vma"])

    def teardown(self) -> None:
        for label, v in self.peak.items():
            target(float(v), label=label)
        if self.broken is None and self.pids:
            try:
                self.sim.check()
            except InvariantViolation as e:
                self._violated(str(e))


def _invariant_number(msg: str) -> Optional[int]:
    i = msg.find("invariant ")
    if i < 0:
        return None
    tok = msg[i + 10 :].split()[0]
    return int(tok) if tok.isdigit() else None
