"""rmapsim: simulate the Linux kernel's anonymous reverse mapping across kernel eras.

>>> import rmapsim
>>> sim = rmapsim.Simulator(era="2.6.34")
>>> p = sim.spawn()
>>> a = sim.mmap(p, 4 * 4096)
>>> sim.touch(p, a, 4 * 4096)
>>> c = sim.fork(p)
>>> sim.touch(c, a, 4 * 4096)
>>> sim.rmap_walk().summary()["total_vmas_visited"]   # 4 parent pages x 2 + 4 child pages x 1
12
"""

from __future__ import annotations

import copy
import functools
import inspect
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Literal, Optional, Tuple, Union, cast, overload

import numpy as np
import numpy.typing as npt

from . import _core, _progress, _types  # noqa: F401 (_progress installs the native calls' progress hook)
from ._stats import COLUMNS, LOCK_EXCLUSIVE, LOCK_SHARED, PageWhere, ScanStats, summary_from_totals
from ._types import *  # noqa: F403 (the types of arguments and results, in __all__)
from ._types import Advice, AggregateSummary, MemoryUsage, Prot, WalkKind
from .errors import (
    AlreadyMapped,
    BadAddress,
    Busy,
    InvalidArgument,
    InvariantViolation,
    NoSuchProcess,
    OutOfMemory,
    SimError,
    StaleHandle,
    TryAgain,
    short_repr,
)
from .events import EventLog
from .policy import Knob, Policy, era_spec, holes_override, knobs, policy_overrides
from .views import AnonVmaChainView, AnonVmaView, MmView, PageView, VmaView

if TYPE_CHECKING:
    from .contention import ContentionResult

__version__ = "0.1.0"

PAGE_SIZE: int = _core.PAGE_SIZE
MMAP_BASE: int = _core.MMAP_BASE
MMAP_MIN_ADDR: int = _core.MMAP_MIN_ADDR
TASK_SIZE: int = _core.TASK_SIZE

DEFAULT_ERA: str = _core.DEFAULT_ERA

__all__ = [
    "Simulator",
    "Policy",
    "era_spec",
    "Knob",
    "knobs",
    "DEFAULT_ERA",
    "ScanStats",
    "EventLog",
    "eras",
    "COLUMNS",
    "LOCK_EXCLUSIVE",
    "LOCK_SHARED",
    "PAGE_SIZE",
    "MMAP_BASE",
    "MMAP_MIN_ADDR",
    "TASK_SIZE",
    "SimError",
    "NoSuchProcess",
    "BadAddress",
    "InvalidArgument",
    "StaleHandle",
    "OutOfMemory",
    "InvariantViolation",
    "TryAgain",
    "AlreadyMapped",
    "Busy",
    "diff",
    "diff_random",
]
__all__ += _types.__all__  # the types of arguments and results


def eras() -> List[str]:
    """Names of the era presets, oldest first."""
    return list(_core.eras())


HandleArray = Union[None, int, Iterable[int], np.ndarray]


def _int_list(values: object, what: str) -> List[int]:
    """A list, tuple, other iterable or 1-d integer array of ints as a list of Python ints
    (one int is a list of one). The bindings check each value's range."""
    if isinstance(values, (bool, np.bool_)) or values is None:
        raise InvalidArgument(f"{what} must be a sequence of ints, got {short_repr(values)}")
    if isinstance(values, (int, np.integer)):
        return [int(values)]
    if isinstance(values, np.ndarray):
        if values.ndim != 1 and values.size:
            raise InvalidArgument(f"{what} must be one-dimensional, got an array of shape {values.shape}")
        if values.size and values.dtype.kind not in "iu":
            raise InvalidArgument(f"{what} must be ints, got an array of dtype {values.dtype}")
        return [int(v) for v in values.ravel().tolist()]
    if isinstance(values, (str, bytes, dict)):
        raise InvalidArgument(f"{what} must be a sequence of ints, got {short_repr(values)}")
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgument(f"{what} must be a sequence of ints, got {short_repr(values)}") from None
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise InvalidArgument(f"each of {what} must be an int, got {short_repr(v)}")
    return [int(v) for v in items]


def _aggregate(aggregate: object) -> bool:
    if not isinstance(aggregate, (bool, np.bool_)):
        raise InvalidArgument(f"aggregate must be True or False, got {short_repr(aggregate)}")
    return bool(aggregate)


#: Columns of :attr:`ApplyResult.samples`: operations applied, live processes, VMAs, anon_vmas,
#: anon_vma_chains, anon pages, then bytes of vm_area_struct, anon_vma, anon_vma_chain.
SAMPLE_FIELDS = (
    "ops",
    "processes",
    "vma",
    "anon_vma",
    "anon_vma_chain",
    "page",
    "vma_bytes",
    "anon_vma_bytes",
    "anon_vma_chain_bytes",
)
SAMPLE_DTYPE = np.dtype([(f, np.uint64) for f in SAMPLE_FIELDS])


class ApplyResult:
    """Per-operation results of :meth:`Simulator.apply`: ``status`` (0 = ok, else
    ``ERROR_KINDS.index(kind) + 1``), ``value`` (new process symbol, address, …) and
    ``message`` (the error text, or "")."""

    def __init__(self, status: npt.NDArray[np.uint8], value: npt.NDArray[np.uint64], message: List[str]) -> None:
        self.status, self.value, self.message = status, value, message
        self.samples = np.zeros(0, dtype=SAMPLE_DTYPE)
        #: The per-operation event log with ``apply(..., events=True)``, else None.
        self.events: Optional[EventLog] = None

    def __len__(self) -> int:
        return len(self.status)

    def errors(self) -> List[Tuple[int, str, str]]:
        """``(index, kind, message)`` of every failed operation."""
        from .trace import ERROR_KINDS

        return [(i, str(ERROR_KINDS[s - 1]), self.message[i]) for i, s in enumerate(self.status.tolist()) if s]

    def violation(self) -> Optional[str]:
        """The invariant violation that stopped the batch, if any."""
        for _, kind, msg in self.errors():
            if kind == "InvariantViolation":
                return msg
        return None


class Simulator(_core.Simulator):
    """A simulated machine running one kernel era's anon rmap.

    ``Simulator(era="6.18", seed=0, policy=None)``; :func:`eras` lists the presets.
    ``era`` is a preset name, an era spec (``"6.0+fork_reuse=never"``: the preset with
    knobs changed) or a :class:`Policy`; :attr:`era` is then the canonical spec.
    ``policy`` (a :class:`Policy` or a dict of knob overrides) changes knobs of the era
    (a :class:`Policy` brings its own base era). Addresses and lengths are bytes and must
    be page aligned (4096). Every call validates its input and raises a
    :class:`SimError` subclass naming the bad value, leaving the state unchanged.
    ``holes="kernel"`` (the knob ``holes``, sugar for ``policy={"holes": "kernel"}``)
    treats ranges with holes exactly as the kernel does instead (munmap of nothing
    succeeds; mprotect and madvise change what they reach before failing with
    :class:`BadAddress`; see docs/api-contract.md); ``"strict"`` is the default.
    """

    def __new__(
        cls,
        era: Optional[Union[str, Policy]] = None,
        seed: Optional[int] = None,
        policy: object = None,
        pid_max: Optional[int] = None,
        ram: Optional[int] = None,
        holes: Optional[str] = None,
    ) -> Simulator:
        if isinstance(era, Policy):
            era = str(era)
        base, overrides = policy_overrides(policy)  # type: ignore[arg-type]
        if holes is not None:
            overrides = holes_override(holes, overrides)
            if isinstance(era, str) and "holes=" in era:
                spec_holes = era.split("holes=", 1)[1].split(",")[0]
                if spec_holes != holes:
                    raise InvalidArgument(f"holes={short_repr(holes)} contradicts the era spec {short_repr(era)}")
        if base is not None:
            if era is not None and era != base:
                raise InvalidArgument(f"era {short_repr(era)} contradicts the policy's base era {short_repr(base)}")
            era = base
        return super().__new__(cls, era, seed, overrides)

    def __init__(
        self,
        era: Optional[Union[str, Policy]] = None,
        seed: Optional[int] = None,
        policy: object = None,
        pid_max: Optional[int] = None,
        ram: Optional[int] = None,
        holes: Optional[str] = None,
    ) -> None:
        """``pid_max`` (default 4,194,304, from 301) bounds the pids, as the kernel's
        sysctl does: a fork or spawn with no free pid raises :class:`TryAgain` (EAGAIN)
        and changes nothing. ``ram`` (bytes, default 1 TiB) is the simulated machine's
        memory: anon pages (4 KiB each) and vm_area_struct, anon_vma and anon_vma_chain
        objects at the era's sizes; an allocation beyond it fails like an ENOMEM at that
        site (:class:`OutOfMemory`, the kernel's error path, state consistent)."""
        if pid_max is not None:
            self.set_pid_max(pid_max)
        if ram is not None:
            self.set_ram(ram)

    def clone(self) -> Simulator:
        """An independent deep copy of the whole state and its future: the same random
        stream, ENOMEM injection, limits and counters, so the same operations on the copy
        and the original give the same results bit for bit. A copy too big for this
        process's host-memory budget raises :class:`OutOfMemory` (nothing changes).
        ``copy.copy`` and ``copy.deepcopy`` make the same copy. A subclass's instance
        attributes come along (``deepcopy`` deep-copies them, as ``pickle`` carries them);
        the :meth:`events` log does not."""
        new = self._bare_clone()
        new.__dict__.update(self._py_state())
        return new

    def _bare_clone(self) -> Simulator:
        new = type(self).__new__(type(self), era=self.era)
        new._copy_from(self)
        return new

    def _py_state(self) -> Dict[str, Any]:
        """A subclass's instance attributes, which copies and pickles carry (the event log
        of the last ``apply`` stays behind)."""
        return {k: v for k, v in self.__dict__.items() if k != "_event_log"}

    def __copy__(self) -> Simulator:
        return self.clone()

    def __deepcopy__(self, memo: Dict[int, Any]) -> Simulator:
        new = memo[id(self)] = self._bare_clone()
        new.__dict__.update(copy.deepcopy(self._py_state(), memo))
        return new

    def to_bytes(self) -> bytes:
        """The whole state as a compact, versioned snapshot (docs/snapshots.md): what
        :meth:`clone` copies (objects, page tables, random stream, injection, limits,
        counters), so :meth:`from_bytes` gives a simulator with the same future. About 5
        bytes per populated PTE; Ctrl-C stops it; beyond the host-memory budget it raises
        :class:`OutOfMemory`. ``pickle`` uses it."""
        return self._snapshot()

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview]) -> Simulator:
        """The simulator a :meth:`to_bytes` snapshot holds. Raises :class:`InvalidArgument`
        naming what is wrong when ``data`` is not a snapshot, comes from another format
        version, is truncated or fails its checksum."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise InvalidArgument(
                f"data: expected bytes (a snapshot from Simulator.to_bytes), got {type(data).__name__}"
            )
        new = cls.__new__(cls)
        new._restore(data)
        return new

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_restore_simulator, (type(self), self.to_bytes()), self._py_state() or None)

    def exit_many(self, pids: Iterable[int]) -> None:
        """``exit`` each process of ``pids``, in order (the same as calling ``exit`` on
        each). Every pid is validated first: an unknown pid raises ``NoSuchProcess`` and a
        repeated one ``InvalidArgument``, and nothing exits. Ctrl-C stops it between two
        exits with ``KeyboardInterrupt``: the processes before have exited (their children
        reparented to 0), the rest are untouched."""
        super().exit_many(_int_list(pids, "pids"))

    def mmap(
        self,
        pid: int,
        length: int,
        addr: Optional[int] = None,
        prot: Optional[Prot] = None,
        file: Optional[int] = None,
        offset: Optional[int] = None,
        noreserve: bool = False,
        stack: bool = False,
        noreplace: bool = False,
        locked: bool = False,
    ) -> int:  # stricter than _core's: None is refused
        """A private mapping (anonymous, or of ``file`` at ``offset``); see
        docs/api-contract.md. ``noreserve=True`` is ``MAP_NORESERVE``: the VMA gets
        ``VM_NORESERVE`` (``vmas()`` flag "noreserve") and is never charged (no
        ``VM_ACCOUNT``, even when writable or later made writable by ``mprotect``), so it
        does not merge with ordinary mappings. ``stack=True`` is ``MAP_STACK``: from Linux
        6.7 (era 6.18) the VMA gets ``VM_NOHUGEPAGE`` (flag "nohugepage"), so a thread
        stack stays apart from plain anonymous neighbours; earlier eras ignore it.
        ``noreplace=True`` is ``MAP_FIXED_NOREPLACE`` (needs ``addr``): from Linux 4.17
        (eras 6.0, 6.18) a range overlapping any VMA raises ``AlreadyMapped`` (EEXIST) and
        changes nothing; earlier kernels ignored the unknown flag, so ``addr`` is only a
        hint there (taken when free, else the kernel chooses).
        ``locked=True`` is ``MAP_LOCKED``: the VMA gets ``VM_LOCKED`` (flag "locked") and
        the range is faulted in as :meth:`mlock` does, errors ignored. A non-bool raises
        ``InvalidArgument``."""
        return super().mmap(pid, length, addr, prot, file, offset, noreserve, stack, noreplace, locked)

    def touch_many(self, pids: Iterable[int], addr: int, length: int, write: bool = True) -> None:
        """Fault ``[addr, addr+length)`` in each process of ``pids``, in order. All pids
        and ranges are validated before any fault. Ctrl-C stops it between two page
        faults with ``KeyboardInterrupt``: the processes before have faulted the whole
        range, the current one part of it (``check()`` passes)."""
        super().touch_many(_int_list(pids, "pids"), addr, length, write)

    def _pages(self, pages: HandleArray) -> Optional[List[int]]:
        return None if pages is None else _int_list(pages, "pages")

    @overload
    def page_referenced(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., aggregate: Literal[False] = ...
    ) -> ScanStats: ...
    @overload
    def page_referenced(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., *, aggregate: Literal[True]
    ) -> AggregateSummary: ...
    @overload
    def page_referenced(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., *, aggregate: bool
    ) -> Union[ScanStats, AggregateSummary]: ...

    def page_referenced(
        self, pages: HandleArray = None, threads: Optional[int] = 1, aggregate: bool = False
    ) -> Union[ScanStats, AggregateSummary]:
        """Kernel-faithful ``page_referenced`` walks (``page_referenced_anon``): each walk
        stops once it has found ``page_mapcount`` mappings. ``pages=None`` walks every
        live anon page. ``threads``: worker threads (None = all cores); results are
        identical at any thread count. ``aggregate=True`` returns only the summary (see
        :meth:`rmap_walk`). Ctrl-C stops it (any form) with ``KeyboardInterrupt``."""
        return self._walk("page_referenced", pages, threads, aggregate)

    @overload
    def rmap_walk(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., aggregate: Literal[False] = ...
    ) -> ScanStats: ...
    @overload
    def rmap_walk(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., *, aggregate: Literal[True]
    ) -> AggregateSummary: ...
    @overload
    def rmap_walk(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., *, aggregate: bool
    ) -> Union[ScanStats, AggregateSummary]: ...

    def rmap_walk(
        self, pages: HandleArray = None, threads: Optional[int] = 1, aggregate: bool = False
    ) -> Union[ScanStats, AggregateSummary]:
        """Full ``rmap_walk`` of each page: every candidate VMA on the page's anon_vma is
        visited (what migration's ``remove_migration_ptes`` and the checker do, and the
        cost the 2010 thread's O(N) → 2 claim counts). ``threads`` as for
        :meth:`page_referenced`.

        ``aggregate=True`` makes the same walks but keeps no per-page rows: it returns the
        dict of :meth:`ScanStats.summary` (walks, mean, p50, p99, max, total_*) plus
        ``total_vmas_in_range``, ``total_tree_nodes_visited``, ``histogram``
        (``{vmas_visited: walks}``) and ``kind``. Its memory does not grow with the number
        of pages (a ScanStats holds 49 bytes per walked page).

        Ctrl-C stops a walk (any form, any thread count) within about 20 ms of work with
        ``KeyboardInterrupt``; walks change nothing. Other threads may walk the same
        Simulator meanwhile; a mutating call from another thread raises :class:`Busy`."""
        return self._walk("rmap_walk", pages, threads, aggregate)

    def _walk(
        self, kind: WalkKind, pages: HandleArray, threads: Optional[int], aggregate: bool
    ) -> Union[ScanStats, AggregateSummary]:
        pages_, threads_ = self._pages(pages), threads
        if _aggregate(aggregate):
            return summary_from_totals(self._walk_totals(pages_, kind == "rmap_walk", threads_), kind)
        rows = self._rmap_walk if kind == "rmap_walk" else self._page_referenced
        return ScanStats(rows(pages_, threads_), kind=kind, where=PageWhere(self))

    def memory_usage(self) -> MemoryUsage:
        """The simulator's own memory (not the kernel's struct sizes, see :meth:`memory`),
        per object kind: ``mm``, ``vma``, ``anon_vma``, ``anon_vma_chain``, ``page``,
        ``pte`` and ``swap_slot``, each ``{live, slot_bytes, slots, bytes,
        capacity_bytes}``: live objects (``pte``: populated entries), the bytes of one
        arena slot, slots in use (live or free; ``pte``: entries allocated), ``bytes`` =
        slots x slot_bytes + heap the objects own (by length), and ``capacity_bytes``
        (by allocated capacity). A ``"total"`` entry sums ``bytes`` and
        ``capacity_bytes``, and ``"bytes_per_pte"`` is total bytes / populated PTEs."""
        kinds = self._memory_usage()
        total = sum(v["bytes"] for v in kinds.values())
        cap = sum(v["capacity_bytes"] for v in kinds.values())
        ptes = kinds["pte"]["live"]
        d = {
            **kinds,
            "total": {"bytes": total, "capacity_bytes": cap},
            "bytes_per_pte": total / ptes if ptes else float("nan"),
        }
        return cast(MemoryUsage, d)  # _core's seven kinds, then the sums

    def contention(
        self,
        pages: HandleArray = None,
        cpus: int = 16,
        per_candidate: int = 1,
        handoff: int = 1,
        outside: int = 10,
        writer_every: int = 0,
        writer_hold: int = 5,
        spans: bool = False,
    ) -> ContentionResult:
        """Replay the ``page_referenced`` walks on ``cpus`` simulated CPUs under the era's
        locks (see :mod:`rmapsim.contention` for the cost model). ``spans=True`` also
        records each CPU's waits, holds and outside work (``result.spans``; refused with
        OutOfMemory beyond the host-memory budget). Ctrl-C stops it with
        ``KeyboardInterrupt``."""
        from .contention import ContentionResult

        d = self._contention(
            self._pages(pages), cpus, per_candidate, handoff, outside, writer_every, writer_hold, spans
        )
        pol = self.policy()
        params = dict(
            cpus=cpus,
            per_candidate=per_candidate,
            handoff=handoff,
            outside=outside,
            writer_every=writer_every,
            writer_hold=writer_hold,
        )
        return ContentionResult(
            d, self.era, {k: int(v) for k, v in params.items()}, f"{pol['lock_scope']}/{pol['lock_kind']}"
        )

    def madvise(self, pid: int, addr: int, length: int, advice: Advice) -> ScanStats:
        """``madvise(addr, length, advice)`` with advice ``normal``, ``random``,
        ``sequential``, ``dontfork``, ``dofork`` (flag changes that split and re-merge
        VMAs), ``wipeonfork`` / ``keeponfork`` (Linux 4.14+ eras only; EINVAL earlier),
        ``hugepage`` / ``nohugepage`` (2.6.38+) and ``dontdump`` / ``dodump`` (3.4+), which
        only change vm_flags here, ``mergeable`` / ``unmergeable`` (KSM's ``VM_MERGEABLE``:
        splits and merges only, no page is ever merged), ``dontneed`` (zap the pages) or ``pageout`` (reclaim the pages this process maps
        exclusively through their rmap walks), or ``free`` (``MADV_FREE``, 4.5+: the pages
        become lazy-free, ``page_info()["lazyfree"]``, and this process's entries clean,
        except that a page in the swap cache or with PG_dirty must be mapped only here;
        swap entries in the range are dropped; reclaim then discards each clean mapping of
        a lazy-free page and keeps the page at the first entry written since; anonymous
        VMAs only). ``dontneed``, ``pageout`` and ``free`` are EINVAL (``InvalidArgument``)
        on an mlocked VMA: nothing changed (with ``holes="kernel"``, as the kernel, the
        VMAs before it done). Returns the walks made (``pageout`` only)."""
        return ScanStats(self._madvise(pid, addr, length, advice), kind="try_to_unmap", where=PageWhere(self))

    @overload
    def try_to_unmap(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., aggregate: Literal[False] = ...
    ) -> ScanStats: ...
    @overload
    def try_to_unmap(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., *, aggregate: Literal[True]
    ) -> AggregateSummary: ...
    @overload
    def try_to_unmap(
        self, pages: HandleArray = ..., threads: Optional[int] = ..., *, aggregate: bool
    ) -> Union[ScanStats, AggregateSummary]: ...

    def try_to_unmap(
        self, pages: HandleArray = None, threads: Optional[int] = 1, aggregate: bool = False
    ) -> Union[ScanStats, AggregateSummary]:
        """Reclaim's ``try_to_unmap`` on each page (every anon page when None): the page
        enters the swap cache and every mapping its rmap walk finds becomes a swap entry;
        the walk stops once the page is unmapped. A mapping the walk misses stays mapped,
        and ``check()`` reports it. ``aggregate=True`` returns the walks' summary instead
        of per-page rows (see :meth:`rmap_walk`). Ctrl-C stops it between two pages with
        ``KeyboardInterrupt``: the pages before are unmapped, and some later ones may be in
        the swap cache while still mapped (``check()`` passes)."""
        pages_, threads_ = self._pages(pages), threads
        if _aggregate(aggregate):
            return summary_from_totals(self._try_to_unmap_totals(pages_, threads_), "try_to_unmap")
        return ScanStats(self._try_to_unmap(pages_, threads_), kind="try_to_unmap", where=PageWhere(self))

    def drop_swap_cache(self, pages: HandleArray = None) -> int:
        """Free unmapped swap-cache pages (the end of reclaim); a later fault reads a fresh
        page from swap. Mapped pages and pages not in the swap cache are left alone.
        Returns how many pages were dropped."""
        return int(self._drop_swap_cache(self._pages(pages)))

    def apply(self, ops: object, check_each: bool = False, sample_every: int = 0, events: bool = False) -> ApplyResult:
        """Run a batch of operations in one call: ``ops`` is trace text (version 1) or an
        op array (:mod:`rmapsim.trace`). Every operation runs even if earlier ones fail;
        with ``check_each``, ``check()`` runs after every operation and the batch stops at
        the first invariant violation. Returns per-operation status, value and message.
        With ``sample_every`` = K > 0, the result's ``samples`` holds object counts and bytes
        after every K-th operation and after the last (:data:`SAMPLE_FIELDS`). Ctrl-C stops
        the batch between two operations (or inside a long one at its own boundary, as for
        ``touch_many``) with ``KeyboardInterrupt``: the operations before it are applied.
        With ``events=True`` the result's ``events`` is the per-operation
        :class:`~rmapsim.events.EventLog` (allocations and frees, live objects, walks),
        also kept as :meth:`events` (``sample_every`` is then refused: the log has the
        counts after every operation)."""
        from . import trace

        arr = trace.parse(ops) if isinstance(ops, str) else ops
        if not isinstance(events, (bool, np.bool_)):
            raise InvalidArgument(f"events must be True or False, got {short_repr(events)}")
        if events:
            if sample_every != 0:
                raise InvalidArgument(
                    f"sample_every={short_repr(sample_every)} with events=True: the event log "
                    "already has the live counts after every operation"
                )
            from .events import EventLog, lock_kind_of

            status, value, message, cols = self._apply_events(trace.rows(arr), check_each)
            res = ApplyResult(
                np.frombuffer(bytes(status), dtype=np.uint8).copy(), np.asarray(value, dtype=np.uint64), list(message)
            )
            res.events = EventLog(self.era, lock_kind_of(self.era), res.status, res.value, res.message, cols)
            self._event_log = res.events
            return res
        status, value, message, samples = self._apply(trace.rows(arr), check_each, sample_every)
        res = ApplyResult(
            np.frombuffer(bytes(status), dtype=np.uint8).copy(), np.asarray(value, dtype=np.uint64), list(message)
        )
        res.samples = np.array([tuple(s) for s in samples], dtype=SAMPLE_DTYPE)
        return res

    def events(self) -> Optional[EventLog]:
        """The event log of the last ``apply(..., events=True)`` on this simulator (None
        before the first). A copy or unpickled simulator starts without one."""
        return getattr(self, "_event_log", None)

    # Navigable views (rmapsim.views, docs/views.md).
    def mm(self, pid: int) -> MmView:
        """A view of ``pid``'s ``struct mm_struct`` (:class:`NoSuchProcess` for no such pid)."""
        return MmView(self, self._mm_handle(pid))

    def vma_at(self, pid: int, addr: int) -> Optional[VmaView]:
        """A view of the VMA of ``pid`` containing byte ``addr`` (any alignment), or None."""
        h = self._vma_at(pid, addr)
        return None if h is None else VmaView(self, h)

    def vma(self, handle: int) -> VmaView:
        """A view of a live VMA by handle (:class:`StaleHandle` if freed or unknown)."""
        return VmaView._checked(self, handle)

    def anon_vma(self, handle: int) -> AnonVmaView:
        """A view of a live anon_vma by handle (``vmas()``, ``graph()``, ``page_info()``)."""
        return AnonVmaView._checked(self, handle)

    def anon_vma_chain(self, handle: int) -> AnonVmaChainView:
        """A view of a live anon_vma_chain by handle."""
        return AnonVmaChainView._checked(self, handle)

    def page(self, handle: int) -> PageView:
        """A view of a live anon page by handle (``anon_pages()``, ``page_at()``)."""
        return PageView._checked(self, handle)

    def to_dot(self) -> str:
        """Graphviz text of processes, VMAs, anon_vmas and chains (see :mod:`rmapsim.viz`)."""
        from .viz import to_dot

        return to_dot(self)

    def plot_state(self, ax: Any = None, collapse: int = 3) -> Any:
        """A matplotlib drawing of the rmap object graph: the anon_vma tree and the VMAs,
        identical siblings collapsed (see :func:`rmapsim.viz.plot_state`)."""
        from .viz import plot_state

        return plot_state(self, ax, collapse)

    def _repr_html_(self) -> str:
        from .viz import sim_html

        return sim_html(self)

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<rmapsim.Simulator era={self.era!r} processes={len(self.pids())} vmas={c['vma']} "
            f"anon_vmas={c['anon_vma']} anon_vma_chains={c['anon_vma_chain']} pages={c['page']}>"
        )


#: pyo3's messages when a call finds the native object borrowed by a call in another thread.
_BORROWED = ("Already borrowed", "Already mutably borrowed")


def _restore_simulator(cls: type, data: bytes) -> Simulator:
    """Unpickle a :class:`Simulator` (see :meth:`Simulator.__reduce__`)."""
    if not (isinstance(cls, type) and issubclass(cls, Simulator)):
        raise InvalidArgument(f"cls: expected a Simulator class, got {short_repr(cls)}")
    return cls.from_bytes(data)


def _busy(self: Any, e: RuntimeError, name: str) -> BaseException:
    """:class:`Busy` for pyo3's borrow error ``e`` in call ``name`` (other errors: ``e``)."""
    if type(e) is not RuntimeError or str(e) not in _BORROWED:
        return e
    running = _core._running(self) or "another call"
    return Busy(f"Simulator is busy: {running} is running in another thread ({name} was called)")


_GUARD_SRC = """
def {name}({params}):
    try:
        return _fn({args})
    except RuntimeError as e:
        busy = _busy({self}, e, {name!r})
        if busy is e:
            raise
        raise busy from None
"""


def _busy_guard(name: str, fn: Any) -> Any:
    """``fn`` raising :class:`Busy`, naming the call in progress, where pyo3 finds the native
    object borrowed by a long call in another thread (the long calls raise it themselves).
    The wrapper has ``fn``'s own parameters (a fixed-arity call costs a third of ``*args``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    ps = list(sig.parameters.values()) if sig else []
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    env: Dict[str, Any] = {"_fn": fn, "_busy": _busy}
    if ps and all(p.kind in plain for p in ps):
        params = []
        for i, p in enumerate(ps):
            if p.default is inspect.Parameter.empty:
                params.append(p.name)
            else:
                env[f"_d{i}"] = p.default
                params.append(f"{p.name}=_d{i}")
        args = ", ".join(p.name for p in ps)
        src = _GUARD_SRC.format(name=name, params=", ".join(params), args=args, self=ps[0].name)
    else:
        src = _GUARD_SRC.format(name=name, params="self, *args, **kwargs", args="self, *args, **kwargs", self="self")
    exec(src, env)
    return functools.wraps(fn)(env[name])


#: Native methods that borrow the simulator themselves and raise Busy (the long calls).
_SELF_GUARDED = frozenset(
    {
        "touch",
        "fork_many",
        "check",
        "_rmap_walk",
        "_page_referenced",
        "_walk_totals",
        "_contention",
        "_try_to_unmap",
        "_try_to_unmap_totals",
        "_apply",
    }
)


def _guard_methods(cls: type) -> None:
    """Wrap every method and property of ``cls`` (and of ``_core.Simulator``) with
    :func:`_busy_guard`, except the native long calls, which raise Busy themselves."""
    names = set(vars(_core.Simulator)) | set(vars(cls))
    for name in sorted(names):
        if (name.startswith("__") and name != "__repr__") or (name in _SELF_GUARDED and name not in vars(cls)):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            fget = attr.fget
            if fget is not None:
                setattr(cls, name, property(_busy_guard(name, fget), attr.fset, attr.fdel, attr.__doc__))
        elif inspect.isgetsetdescriptor(attr) or inspect.ismemberdescriptor(attr):
            setattr(cls, name, property(_busy_guard(name, attr.__get__), doc=attr.__doc__))
        elif callable(attr) and not isinstance(attr, (staticmethod, classmethod, type)):
            setattr(cls, name, _busy_guard(name, attr))


_guard_methods(Simulator)

# The two-era lockstep diff (module rmapsim.diff; the package attribute is its function).
from .diff import diff  # noqa: E402

# The differential over random traces (module rmapsim.diff_random; likewise its function).
from .diff_random import diff_random  # noqa: E402
