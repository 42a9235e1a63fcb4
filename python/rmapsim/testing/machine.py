"""The hypothesis state machine :class:`RmapMachine` (see :mod:`rmapsim.testing`)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from .. import PAGE_SIZE, Policy, Simulator, _core
from ..errors import InvariantViolation
from ..trace import ERROR_KINDS
from ..trace import parse as parse_trace
from .strategies import (
    ALL_ADVICE,
    BASE,
    HEADER,
    MAX_PROCS,
    PROTS,
    WINDOW_PAGES,
    ProgramViolation,
    _era_args,
    _invariant_number,
)

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
    def for_era(cls, era: Union[str, Policy], allowed: Sequence[int] = ()) -> type:
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

    def _run(self, line: str) -> tuple[bool, int]:
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
        raise AssertionError(
            f"{msg}\n--- trace (rmapsim replay FILE --check) ---\n{self.trace()}"
            f"--- shrunk by delta debugging ---\n{rep.reproducer()}"
        ) from None

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
    @rule(
        target=ranges,
        p=procs,
        page=PAGES,
        n=st.integers(1, 4),
        prot=st.sampled_from(PROTS),
        kind=st.sampled_from(["anon", "anon", "anon", "file", "noreserve", "stack", "noreplace", "locked"]),
        file=st.integers(1, 2),
        shift=st.integers(0, 1),
    )
    def mmap(self, p: int, page: int, n: int, prot: str, kind: str, file: int, shift: int) -> Any:
        addr, length = BASE + page * PAGE_SIZE, n * PAGE_SIZE
        extra = {
            "anon": "",
            "file": f" file {file} {(page + shift) * PAGE_SIZE:#x}",
            "noreserve": " noreserve",
            "stack": " stack",
            "noreplace": " noreplace",  # MAP_FIXED_NOREPLACE: AlreadyMapped over a VMA (4.17+)
            "locked": " locked",
        }[kind]
        ok, _ = self._run(f"mmap p{p} {addr:#x} {length:#x} {prot}{extra}")
        return (addr, length) if ok else multiple()

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, cut=st.integers(0, 3))
    def munmap(self, p: int, r: tuple[int, int], cut: int) -> None:
        addr, length = r
        self._run(f"munmap p{p} {addr + cut * PAGE_SIZE:#x} {max(PAGE_SIZE, length - cut * PAGE_SIZE):#x}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, write=st.sampled_from([True, True, False]), head=st.booleans())
    def touch(self, p: int, r: tuple[int, int], write: bool, head: bool) -> None:
        addr, length = r
        n = PAGE_SIZE if head else length
        self._run(f"touch p{p} {addr:#x} {n:#x} {'w' if write else 'r'}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, prot=st.sampled_from(PROTS), middle=st.booleans())
    def mprotect(self, p: int, r: tuple[int, int], prot: str, middle: bool) -> None:
        addr, length = r
        if middle and length > PAGE_SIZE:  # splits: the kernel's vma_merge/vma_adjust cases
            addr, length = addr + PAGE_SIZE, PAGE_SIZE
        self._run(f"mprotect p{p} {addr:#x} {length:#x} {prot}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, advice=st.sampled_from(ALL_ADVICE), middle=st.booleans())
    def madvise(self, p: int, r: tuple[int, int], advice: str, middle: bool) -> None:
        addr, length = r
        if middle and length > PAGE_SIZE:
            addr, length = addr + PAGE_SIZE, PAGE_SIZE
        self._run(f"madvise p{p} {addr:#x} {length:#x} {advice}")

    @precondition(lambda self: self.broken is None)
    @rule(
        target=ranges,
        p=procs,
        r=ranges,
        new_n=st.integers(1, 4),
        form=st.sampled_from(["move", "nomove", "fixed", "fixed_same", "dontunmap"]),
        dest=PAGES,
    )
    def mremap(self, p: int, r: tuple[int, int], new_n: int, form: str, dest: int) -> Any:
        addr, length = r
        new_len = length if form in ("fixed_same", "dontunmap") else new_n * PAGE_SIZE
        to = BASE + (WINDOW_PAGES + dest) * PAGE_SIZE
        tail = {"move": " move", "nomove": " nomove", "fixed": f" move {to:#x}", "fixed_same": f" move {to:#x}"}.get(
            form,
            f" move {to:#x} dontunmap",  # MREMAP_DONTUNMAP (5.7+): the source VMA stays, emptied
        )
        ok, value = self._run(f"mremap p{p} {addr:#x} {length:#x} {new_len:#x}{tail}")
        return (value, new_len) if ok and value else multiple()

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, page=st.integers(0, 3))
    def try_to_unmap(self, p: int, r: tuple[int, int], page: int) -> None:
        addr, length = r
        self._run(f"try_to_unmap p{p} {addr + min(page * PAGE_SIZE, length - PAGE_SIZE):#x}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, r=ranges, one=st.booleans())
    def drop_swap_cache(self, p: int, r: tuple[int, int], one: bool) -> None:
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
    @rule(p=procs, r=ranges, how=st.sampled_from(["mlock", "mlock", "onfault", "munlock"]), middle=st.booleans())
    def mlock(self, p: int, r: tuple[int, int], how: str, middle: bool) -> None:
        addr, length = r
        if middle and length > PAGE_SIZE:  # splits, as mprotect's
            addr, length = addr + PAGE_SIZE, PAGE_SIZE
        word = "munlock" if how == "munlock" else "mlock"
        self._run(f"{word} p{p} {addr:#x} {length:#x}{' onfault' if how == 'onfault' else ''}")

    @precondition(lambda self: self.broken is None)
    @rule(
        p=procs, flags=st.sampled_from(["current", "current future", "future", "future onfault", "current onfault", ""])
    )
    def mlockall(self, p: int, flags: str) -> None:
        self._run(f"mlockall p{p} {flags}".rstrip() if flags else f"munlockall p{p}")

    @precondition(lambda self: self.broken is None)
    @rule(p=procs, on=st.booleans())
    def memory_merge(self, p: int, on: bool) -> None:
        self._run(f"memory_merge p{p} {'on' if on else 'off'}")

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
