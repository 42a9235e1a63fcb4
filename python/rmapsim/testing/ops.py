"""The one Python random-operation generator: one call on a live state at a time.

:class:`OpGenerator` draws one operation ``(method, args, kwargs)`` -- a call of a
:class:`rmapsim.Simulator` method, which the reference model also has -- with its arguments
chosen from the state the operations run on: the live processes, their VMAs, their
page-table entries and the pages the caller can name. Harnesses that drive a simulator (and
whatever they compare it with) call by call use it; whole programs at native speed are
:func:`rmapsim.testing.programs` (the Rust generator, ``rmapsim fuzz``).

**The state** is read through a small interface (:class:`OpState`); two adapters come with
it: :class:`ModelState` over a :class:`~rmapsim.testing.reference.ReferenceModel` and
:class:`SimulatorState` over a :class:`rmapsim.Simulator`. Write your own for anything else.

**The randomness** is a :class:`Draw`: ``pick(seq)``, ``int(lo, hi)`` (both ends
included) and ``bool()``. :class:`HypothesisDraw` draws through hypothesis (``st.data()``
or a ``@st.composite`` draw function: shrinkable), :class:`RandomDraw` through a
``random.Random`` (seeded runs). The same generator, state and draws give the same
operation.

Example (the reference model's mix, seeded)::

    import random
    from rmapsim.testing.ops import ModelState, OpGenerator, RandomDraw
    from rmapsim.testing.reference import ReferenceModel

    model, gen, draw = ReferenceModel("2.6.34"), OpGenerator(), RandomDraw(random.Random(1))
    for _ in range(100):
        name, args, kwargs = gen(ModelState(model), draw)
        try:
            getattr(model, name)(*args, **kwargs)
        except rmapsim.SimError:
            pass

Under hypothesis, ``data.draw(operations(state))`` draws one operation.

**The mix** (``kinds``): a sequence of kind names, repeated to weight them. A kind is an
operation or a way of choosing one's arguments:

======================  ===============================================================
``fork``                fork a live process (exit it instead at ``max_procs``)
``fork_many``           fork_many(pid, 2) (likewise)
``exit``, ``exec``      of a live process
``dead_pid``            fork, exit or exec of a pid that was never used or has exited
``mmap``                anonymous or (with ``files``) private file mapping: placed by the
                        kernel, at a window address, or right beside an existing VMA
                        (pgoff-contiguous, often with its prot or file: merges)
``munmap``              a range: mostly within one VMA, sometimes past its end, else
                        anywhere in the window
``touch``               a range; mostly valid faults (a write to a read-only VMA seldom)
``touch_whole``         every page of one VMA; ``touch_many``: one VMA in two processes
``touch_swap``          1-3 consecutive swap entries (else ``swap_fallback``: ``touch``)
``touch_file``          1-3 consecutive page-cache entries of file mappings (else ``touch``)
``mprotect``            a range, often to a neighbouring VMA's prot (merges)
``madvise``             a range, an advice of ``advice`` (seldom of ``rare_advice``)
``mremap``              shrink, grow, same size, or move to a window address or next to
                        where copy_vma merges (beside the VMA, back home, beside a VMA of
                        the same file whose pages it continues)
``mmap_noreplace``      ``mmap(noreplace=True)`` at a window address (MAP_FIXED_NOREPLACE:
                        ``AlreadyMapped`` over a VMA; a hint before 4.17)
``mremap_dontunmap``    a same-length ``mremap(dontunmap=True)`` of a range, to a window
                        address or where the kernel chooses (EINVAL before 5.7)
``try_to_unmap``        every page (None) or up to ``max_pages`` of the known pages
``drop_swap_cache``     likewise
``reclaim_vma``         try_to_unmap of the known pages of one VMA
``mlock``               mlock (on-fault a third of the time), munlock of a range; seldom
                        mlockall (current / future / on-fault) or munlockall
``memory_merge``        set_memory_merge (prctl PR_SET_MEMORY_MERGE) on or off
======================  ===============================================================

While fewer than ``max_procs`` processes live, ``spawn``, ``fork``, ``fork`` join the mix;
with none alive the operation is ``spawn``. :data:`KINDS` is the reference model harness's
mix (tests/model/ref_pair.py), :data:`DIFFERENTIAL_KINDS` the cross-era differential
harness's (tests/model/test_differential.py), which has no file mappings and no pid or page errors.
Neither has ``mlock``, ``memory_merge`` or ``mergeable`` advice: the reference model
(:mod:`rmapsim.testing.reference`) has no ``VM_LOCKED``, ``def_flags``, populate or
``VM_MERGEABLE``, and the eras differ in them by design (EINVAL before 4.4 / 6.4, populate
before 2.6.38); :data:`LOCK_KINDS` adds them for harnesses of the engine alone (``check()``).
Neither has ``mmap_noreplace``, ``mremap_dontunmap`` or the advice ``free``
(MAP_FIXED_NOREPLACE, MREMAP_DONTUNMAP, MADV_FREE): the reference model does not implement
them, and the cross-era harness compares every era's abstract state while these calls are
EINVAL (a hint, for MAP_FIXED_NOREPLACE) before 4.5-5.7, so every older era would diverge
by design. :data:`EXTENDED_KINDS` is :data:`KINDS` with them, for harnesses that drive
simulators only (pass ``advice=EXTENDED_ADVICE`` for ``free``).

**The operations** (:data:`OPERATIONS`) are named as ``Simulator`` methods with their
positional arity; :func:`operation_table` checks them against the Rust operation
registry (``_core.op_table()``).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from .. import _core
from ..errors import InvalidArgument, short_repr

__all__ = [
    "Op",
    "Draw",
    "HypothesisDraw",
    "RandomDraw",
    "OpState",
    "ModelState",
    "SimulatorState",
    "OpGenerator",
    "draw_op",
    "operations",
    "operation_table",
    "OPERATIONS",
    "KINDS",
    "DIFFERENTIAL_KINDS",
    "LOCK_KINDS",
    "LOCK_OPERATIONS",
    "EXTENDED_KINDS",
    "EXTENDED_ADVICE",
    "WINDOW",
    "WIN_LO",
    "PROTS",
    "MPROTECT_PROTS",
    "ADVICE",
    "FILES",
]

T = TypeVar("T")
#: One operation: (Simulator method name, positional arguments, keyword arguments).
Op = Tuple[str, Tuple[Any, ...], Dict[str, Any]]

PAGE = 4096
MMAP_BASE = 0x7F0000000000  # the contract's top-down search starts below this
#: Pages of the fixed-address window right below MMAP_BASE, where addr=None also lands.
WINDOW = 24
WIN_LO = MMAP_BASE - WINDOW * PAGE
PROTS = ("rw", "rw", "rw", "r", "rwx", "w", "x", "none")
MPROTECT_PROTS = ("r", "rw", "rw", "none", "rwx")
ADVICE = ("normal", "random", "sequential", "dontfork", "dofork", "dontneed", "pageout")
#: File identities of the private file mappings.
FILES = (1, 2)

#: The Simulator methods the generator emits and their positional arity.
OPERATIONS: Dict[str, int] = {
    "spawn": 0,
    "fork": 1,
    "fork_many": 2,
    "exit": 1,
    "exec": 1,
    "mmap": 2,
    "munmap": 3,
    "touch": 3,
    "touch_many": 3,
    "mprotect": 4,
    "madvise": 4,
    "mremap": 4,
    "try_to_unmap": 1,
    "drop_swap_cache": 1,
}

#: What the :data:`LOCK_KINDS` emit, with their positional arity: Simulator methods the
#: reference model does not have (so not in :data:`OPERATIONS`).
LOCK_OPERATIONS: Dict[str, int] = {"mlock": 3, "munlock": 3, "mlockall": 1, "munlockall": 1, "set_memory_merge": 1}

#: The lock family and KSM's prctl, for mixes of harnesses without the reference model.
LOCK_KINDS: Tuple[str, ...] = ("mlock", "mlock", "memory_merge")

#: The reference model harness's mix.
KINDS: Tuple[str, ...] = tuple(
    ["fork"] * 3
    + ["fork_many", "exit", "exec", "dead_pid"]
    + ["mmap"] * 4
    + ["munmap"] * 3
    + ["touch"] * 8
    + ["touch_many", "touch_whole"]
    + ["touch_swap"] * 3
    + ["touch_file"] * 2
    + ["mprotect"] * 3
    + ["madvise"] * 3
    + ["mremap"] * 4
    + ["try_to_unmap"] * 2
    + ["reclaim_vma"] * 2
    + ["drop_swap_cache"] * 2
)

#: The cross-era differential harness's mix.
DIFFERENTIAL_KINDS: Tuple[str, ...] = tuple(
    ["mmap", "mmap", "munmap", "munmap", "fork", "exit", "exec"]
    + ["touch"] * 6
    + ["mprotect", "madvise", "madvise", "mremap", "mremap", "mremap"]
    + ["try_to_unmap", "try_to_unmap", "try_to_unmap", "drop_swap_cache"]
    + ["touch_swap"] * 3
)

#: :data:`KINDS` and the simulator-only kinds of the 4.5-5.7 operations (see above).
EXTENDED_KINDS: Tuple[str, ...] = KINDS + ("mmap_noreplace", "mmap_noreplace", "mremap_dontunmap", "mremap_dontunmap")
#: :data:`ADVICE` and ``free`` (MADV_FREE).
EXTENDED_ADVICE: Tuple[str, ...] = ADVICE + ("free", "free")

_KIND_NAMES = frozenset(
    ["dead_pid", "touch_whole", "touch_swap", "touch_file", "reclaim_vma", "mmap_noreplace", "mremap_dontunmap"]
    + [k for k in OPERATIONS if k != "spawn"]
    + ["mlock", "memory_merge"]
)


def operation_table() -> Dict[str, int]:
    """The operations the generator may emit, by name, with their positional arity
    (:data:`OPERATIONS`), checked against the Rust operation registry
    (``_core.op_table()``): every one but the batch calls (``fork_many``, ``touch_many``,
    which are Simulator methods, not trace operations) must be a registered operation
    (:data:`LOCK_OPERATIONS` are checked too, ``set_memory_merge`` under its trace word
    ``memory_merge``)."""
    words = {row[0] for row in _core.op_table()}
    words |= {"set_memory_merge"} if "memory_merge" in words else set()
    missing = (set(OPERATIONS) | set(LOCK_OPERATIONS)) - {"fork_many", "touch_many"} - words
    if missing:
        raise RuntimeError(f"operations not in the Rust registry: {sorted(missing)}")
    return dict(OPERATIONS)


# ----------------------------------------------------------------------------- draws


class Draw:
    """Where the randomness comes from: ``pick(seq)`` one element, ``int(lo, hi)`` an int
    with both ends included, ``bool()``."""

    def pick(self, seq: Iterable[T]) -> T:
        raise NotImplementedError

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def bool(self) -> bool:
        raise NotImplementedError


class HypothesisDraw(Draw):
    """Draws through hypothesis: ``data`` is an ``st.data()`` object or the ``draw``
    function of a ``@st.composite`` strategy."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self._st = st
        self._draw = data.draw if hasattr(data, "draw") else data

    def pick(self, seq: Iterable[T]) -> T:
        return self._draw(self._st.sampled_from(list(seq)))

    def int(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def bool(self) -> bool:
        return self._draw(self._st.booleans())


class RandomDraw(Draw):
    """Draws through ``rng``, a ``random.Random``: the same seed gives the same draws."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, seq: Iterable[T]) -> T:
        return self.rng.choice(list(seq))

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def bool(self) -> bool:
        return self.rng.random() < 0.5


# ----------------------------------------------------------------------------- states


class OpState:
    """What the generator reads of the state the operations run on.

    ``vmas(pid)`` gives dicts with at least ``start``, ``end``, ``pgoff`` (pages),
    ``prot`` (letters of "rwx", "" for none) and ``file`` (None or the identity)."""

    def pids(self) -> List[int]:
        """The live pids, ascending."""
        raise NotImplementedError

    def vmas(self, pid: int) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def entries(self, kind: str) -> List[Tuple[int, int]]:
        """(pid, address) of every page-table entry of ``kind`` ("swap" or "file": a
        page-cache page of a private file mapping), sorted."""
        raise NotImplementedError

    def entry_kind(self, pid: int, addr: int) -> Optional[str]:
        """The kind of the entry at (pid, addr): None (none), "zero", "page", "swap", "file"."""
        raise NotImplementedError

    def page_at(self, pid: int, addr: int) -> Optional[int]:
        """The handle of the anon page mapped at (pid, addr), or None."""
        raise NotImplementedError

    def known_pages(self) -> List[int]:
        """The page handles an operation may name (try_to_unmap, drop_swap_cache), sorted."""
        raise NotImplementedError

    def unused_pids(self) -> Tuple[int, List[int]]:
        """(the next pid never used yet, the pids that have exited)."""
        raise NotImplementedError


class ModelState(OpState):
    """A reference model's state. ``known``: the page ids an operation may name (a callable
    giving them, or a collection; default: every live page of the model)."""

    def __init__(self, model: Any, known: Any = None) -> None:
        self.model = model
        self._known = known

    def pids(self) -> List[int]:
        return self.model.pids()

    def vmas(self, pid: int) -> List[Dict[str, Any]]:
        return self.model.vmas(pid)

    def entries(self, kind: str) -> List[Tuple[int, int]]:
        mms = self.model.mms
        return sorted((p, a) for p in self.pids() for a, pte in mms[p].ptes.items() if pte.kind == kind)

    def entry_kind(self, pid: int, addr: int) -> Optional[str]:
        return self.model.entry_kind(pid, addr)

    def page_at(self, pid: int, addr: int) -> Optional[int]:
        return self.model.page_at(pid, addr)

    def known_pages(self) -> List[int]:
        if self._known is None:
            return sorted(self.model.pages)
        return sorted(self._known() if callable(self._known) else self._known)

    def unused_pids(self) -> Tuple[int, List[int]]:
        nxt = self.model._next_pid
        return nxt, [p for p in range(1, nxt) if p not in self.model.mms]


class SimulatorState(OpState):
    """A simulator's state. The engine has no query of page-table entry kinds, so
    ``entries`` is a callable giving ``{(pid, addr): kind}`` for the populated entries (the
    tests read them from ``render_layout``); without it there are none (``touch_swap`` and
    ``touch_file`` then fall back to ``touch``). ``known``: the page handles an operation
    may name (a callable or a collection; default: every anon page)."""

    def __init__(
        self, sim: Any, entries: Optional[Callable[[], Dict[Tuple[int, int], str]]] = None, known: Any = None
    ) -> None:
        self.sim = sim
        self._entries = entries
        self._kinds: Optional[Dict[Tuple[int, int], str]] = None
        self._known = known

    def pids(self) -> List[int]:
        return sorted(int(p) for p in self.sim.pids())

    def vmas(self, pid: int) -> List[Dict[str, Any]]:
        return [dict(v, prot="".join(c for c in "rwx" if c in v["prot"])) for v in self.sim.vmas(pid)]

    def _entry_kinds(self) -> Dict[Tuple[int, int], str]:
        if self._kinds is None:
            self._kinds = dict(self._entries()) if self._entries is not None else {}
        return self._kinds

    def entries(self, kind: str) -> List[Tuple[int, int]]:
        return sorted(k for k, v in self._entry_kinds().items() if v == kind)

    def entry_kind(self, pid: int, addr: int) -> Optional[str]:
        return self._entry_kinds().get((pid, addr))

    def page_at(self, pid: int, addr: int) -> Optional[int]:
        h = self.sim.page_at(pid, addr)
        return None if h is None else int(h)

    def known_pages(self) -> List[int]:
        if self._known is None:
            return sorted(int(h) for h in self.sim.anon_pages())
        return sorted(self._known() if callable(self._known) else self._known)

    def unused_pids(self) -> Tuple[int, List[int]]:
        live = self.pids()
        return (max(live, default=0) + 1, [])


# ----------------------------------------------------------------------------- the generator


def _strings(value: object, what: str, allowed: Optional[frozenset] = None) -> Tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"{what} must be a list or tuple of strings, got {short_repr(value)}")
    for v in value:
        if not isinstance(v, str) or (allowed is not None and v not in allowed):
            want = f"one of {', '.join(sorted(allowed))}" if allowed is not None else "a string"
            raise InvalidArgument(f"each of {what} must be {want}, got {short_repr(v)}")
    return tuple(value)


def _int(value: object, what: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InvalidArgument(f"{what} must be an int >= {lo}, got {short_repr(value)}")
    return value


class OpGenerator:
    """Draws operations; the options are checked once, here (a bad one raises
    InvalidArgument naming it).

    ``kinds``: the mix (see the module documentation; default :data:`KINDS`).
    ``max_procs``: the most live processes (default 5). ``window``: (lowest address,
    pages) of the fixed-address window (default :data:`WIN_LO`, :data:`WINDOW`).
    ``prots`` / ``mprotect_prots``: prots of new mappings / of mprotect. ``advice``: the
    madvise advice; ``rare_advice``: drawn in one madvise in 31 (default ``("wipeonfork",)``,
    which 2.6.x refuses). ``files``: file identities of private file mappings (``()``: none).
    ``max_pages``: most pages a try_to_unmap or drop_swap_cache names (default 4).
    ``prefer_busy``: memory operations mostly in a process that has VMAs (default True).
    ``swap_fallback``: what ``touch_swap`` draws when there is no swap entry: ``"touch"``
    (default) or ``"try_to_unmap"`` (which makes some).
    ``holes``: for simulators with ``holes="kernel"``, one range in three of munmap,
    mprotect, madvise and mremap is drawn over a hole on purpose (from inside a VMA across
    a gap into the next VMA, or a range with nothing mapped), so the kernel's partial
    application is exercised; default False.

    Calling the generator, ``gen(state, draw)``, returns one :data:`Op`."""

    def __init__(
        self,
        kinds: Sequence[str] = KINDS,
        max_procs: int = 5,
        window: Tuple[int, int] = (WIN_LO, WINDOW),
        prots: Sequence[str] = PROTS,
        mprotect_prots: Sequence[str] = MPROTECT_PROTS,
        advice: Sequence[str] = ADVICE,
        rare_advice: Sequence[str] = ("wipeonfork",),
        files: Sequence[int] = FILES,
        max_pages: int = 4,
        prefer_busy: bool = True,
        swap_fallback: str = "touch",
        holes: bool = False,
    ) -> None:
        self.kinds = _strings(kinds, "kinds", _KIND_NAMES)
        if not self.kinds:
            raise InvalidArgument("kinds must name at least one kind, got an empty sequence")
        self.max_procs = _int(max_procs, "max_procs", 1)
        if not isinstance(window, (list, tuple)) or len(window) != 2:
            raise InvalidArgument(f"window must be (lowest address, pages), got {short_repr(window)}")
        lo, pages = _int(window[0], "window[0]", 0), _int(window[1], "window[1]", 1)
        if lo % PAGE:
            raise InvalidArgument(f"window[0] must be page aligned, got {lo:#x}")
        self.lo, self.pages, self.hi = lo, pages, lo + pages * PAGE
        self.prots = _strings(prots, "prots")
        self.mprotect_prots = _strings(mprotect_prots, "mprotect_prots")
        self.advice = _strings(advice, "advice")
        self.rare_advice = _strings(rare_advice, "rare_advice")
        if not self.prots or not self.mprotect_prots or not self.advice:
            raise InvalidArgument("prots, mprotect_prots and advice must each name at least one value")
        if isinstance(files, (str, bytes)) or not isinstance(files, (list, tuple)):
            raise InvalidArgument(f"files must be a list or tuple of ints, got {short_repr(files)}")
        self.files = tuple(_int(f, "each of files", 1) for f in files)
        self.max_pages = _int(max_pages, "max_pages", 1)
        if not isinstance(prefer_busy, bool):
            raise InvalidArgument(f"prefer_busy must be True or False, got {short_repr(prefer_busy)}")
        self.prefer_busy = prefer_busy
        if swap_fallback not in ("touch", "try_to_unmap"):
            raise InvalidArgument(f"swap_fallback must be 'touch' or 'try_to_unmap', got {short_repr(swap_fallback)}")
        self.swap_fallback = swap_fallback
        if not isinstance(holes, bool):
            raise InvalidArgument(f"holes must be True or False, got {short_repr(holes)}")
        self.holes = holes

    # -- ranges and prots

    def _window_range(self, draw: Draw) -> Tuple[int, int]:
        slot = draw.int(0, self.pages - 1)
        return self.lo + slot * PAGE, min(draw.int(1, 4), self.pages - slot)

    def _range(self, state: OpState, pid: int, draw: Draw) -> Tuple[int, int]:
        """Mostly a piece of one VMA (sometimes all of it, sometimes running past its end
        into the next VMA or a hole), else a range of the window: (address, pages)."""
        vs = state.vmas(pid)
        if vs and draw.int(0, 7):
            v = draw.pick(vs)
            size = (v["end"] - v["start"]) // PAGE
            if not draw.int(0, 3):
                return v["start"], size
            off = draw.int(0, size - 1)
            n = draw.int(1, 4)
            if draw.int(0, 5):
                n = min(n, size - off)
            return v["start"] + off * PAGE, n
        return self._window_range(draw)

    def _hole_range(self, state: OpState, pid: int, draw: Draw) -> Optional[Tuple[int, int]]:
        """A range over a hole of the window: from a page of one VMA across the gap after
        it into the next VMA (or past the gap), or a gap alone; None without a gap."""
        vs = [v for v in state.vmas(pid) if self.lo <= v["start"] and v["end"] <= self.hi]
        gaps = [(a["end"], b["start"], b) for a, b in zip(vs, vs[1:]) if a["end"] < b["start"]]
        if vs and vs[-1]["end"] < self.hi:
            gaps.append((vs[-1]["end"], self.hi, None))
        if not gaps:
            return None
        g0, g1, after = draw.pick(gaps)
        start = max(self.lo, g0 - PAGE * draw.int(0, 2))
        end = g1 + PAGE * draw.int(0, 2) if after is not None else min(g1, g0 + PAGE * draw.int(1, 3))
        end = min(max(end, start + PAGE), self.hi)
        return start, (end - start) // PAGE

    def _neighbour_prot(self, state: OpState, pid: int, addr: int, draw: Draw) -> str:
        """Often the prot of a VMA next to the one at addr (mprotect then merges, and
        vma_adjust's importer rule comes into play), else one of ``mprotect_prots``."""
        vs = state.vmas(pid)
        i = next((i for i, v in enumerate(vs) if v["start"] <= addr < v["end"]), None)
        near = [] if i is None else [vs[j]["prot"] or "none" for j in (i - 1, i + 1) if 0 <= j < len(vs)]
        if near and draw.bool():
            return draw.pick(near)
        return draw.pick(self.mprotect_prots)

    def _entry_run(self, state: OpState, kind: str, draw: Draw) -> Optional[Tuple[int, int, int]]:
        """(pid, addr, length) of one to three consecutive entries of ``kind``, or None."""
        found = state.entries(kind)
        if not found:
            return None
        p, a = draw.pick(found)
        n = 1
        while n < 3 and state.entry_kind(p, a + n * PAGE) == kind and draw.bool():
            n += 1
        return (p, a, n * PAGE)

    # -- mmap

    def _file_kwargs(self, draw: Draw, addr: int, n: int, near: Any = None) -> Dict[str, Any]:
        """A private file mapping: one of ``files``, the offset the window slot (+0/1 page)
        so that neighbours sometimes continue each other; beside a VMA ``near`` = (vma,
        "after" | "before"), often that VMA's file at the offset that continues it (or its
        old offset: not contiguous); seldom a bad argument."""
        f = draw.pick(self.files)
        off = (addr - self.lo) + draw.int(0, 1) * PAGE
        if not draw.int(0, 5):
            # the offset an anonymous mapping's pgoff would have there: anonymous and file
            # neighbours are then pgoff-contiguous and only vm_file tells them apart
            off = addr
        if near is not None and draw.int(0, 3):
            v, side = near
            pg = v["pgoff"] if side == "after" else v["pgoff"] - n
            pg += (v["end"] - v["start"]) // PAGE if side == "after" else 0
            if v["file"] is not None and draw.int(0, 2):
                f = v["file"]  # else maybe the other file at the contiguous offset
            if pg >= 0 and draw.int(0, 4):
                off = pg * PAGE  # continues the neighbour's pages
            elif draw.bool():
                off = v["pgoff"] * PAGE  # pages not contiguous
        if not draw.int(0, 40):
            # the argument checks: offset not page aligned, identity 0 / too large, no file
            bad = draw.pick(["unaligned", "zero", "large", "nofile", "negative"])
            if bad == "unaligned":
                return {"file": f, "offset": off + 512}
            if bad == "zero":
                return {"file": 0, "offset": off}
            if bad == "large":
                return {"file": 1 << 24, "offset": off}
            if bad == "negative":
                return {"file": f, "offset": -PAGE}
            return {"offset": off}
        if off == 0 and draw.bool():
            return {"file": f}  # offset defaults to 0
        return {"file": f, "offset": off}

    def _mmap(self, state: OpState, pid: int, draw: Draw) -> Op:
        prot = draw.pick(self.prots)
        file = bool(self.files) and draw.int(0, 2) == 0  # a third of the mmaps map a file
        if draw.int(0, 2) == 0:
            n = draw.int(1, 4)
            kw: Dict[str, Any] = {"prot": prot}
            if file:
                kw.update(self._file_kwargs(draw, self.lo, n))
            return ("mmap", (pid, n * PAGE), kw)
        addr, n = self._window_range(draw)
        vs = state.vmas(pid)
        near = None
        if vs and draw.bool():
            # right after or right before an existing VMA (pgoff contiguous: mergeable)
            v = draw.pick(vs)
            side = draw.pick(["after", "before"])
            addr = v["end"] if side == "after" else v["start"] - n * PAGE
            if draw.bool():
                prot = v["prot"] or "none"
            if self.files and v["file"] is not None and draw.int(0, 2):
                file = True  # mostly a file mapping beside a file mapping
            near = (v, side)
            if not self.lo <= addr <= self.hi - n * PAGE:
                addr, n = self._window_range(draw)
                near = None
        kw = {"addr": addr, "prot": prot}
        if file:
            kw.update(self._file_kwargs(draw, addr, n, near))
        return ("mmap", (pid, n * PAGE), kw)

    # -- the kinds that pick their own process or pages

    def _pages_op(self, kind: str, state: OpState, draw: Draw) -> Op:
        known = state.known_pages()
        if not known or draw.bool():
            return (kind, (None,), {})
        pages: List[int] = []
        for _ in range(draw.int(1, min(self.max_pages, len(known)))):
            p = draw.pick(known)
            if p not in pages:
                pages.append(p)
        return (kind, (pages,), {})

    def _dead_pid(self, state: OpState, draw: Draw) -> Op:
        dead, gone = state.unused_pids()  # never allocated yet, or an exited one
        if gone and draw.bool():
            dead = draw.pick(gone)
        return (draw.pick(["fork", "exit", "exec"]), (dead,), {})

    def _touch_kind(self, kind: str, state: OpState, live: List[int], pid: int, draw: Draw) -> Optional[Op]:
        """touch_swap / touch_file / touch_whole / touch_many, or None (then a plain touch)."""
        if kind == "touch_swap":
            run = self._entry_run(state, "swap", draw)
            return ("touch", run, {"write": draw.bool()}) if run else None
        if kind == "touch_file":
            # a write to page-cache entries (do_wp_page's copy of a file page), or a read
            run = self._entry_run(state, "file", draw)
            if not run:
                return None
            p, a, _ = run
            v = next(v for v in state.vmas(p) if v["start"] <= a < v["end"])
            return ("touch", run, {"write": "w" in v["prot"] or not draw.int(0, 5)})
        vs = state.vmas(pid)
        if kind == "touch_whole":
            if not vs:
                return None
            v = draw.pick(vs)
            return ("touch", (pid, v["start"], v["end"] - v["start"]), {"write": draw.bool()})
        other = draw.pick(live)  # touch_many
        if not vs:
            return None
        v = draw.pick(vs)
        group = [pid] if other == pid else [pid, other]
        return ("touch_many", (group, v["start"], v["end"] - v["start"]), {"write": draw.bool()})

    def _reclaim_vma(self, state: OpState, pid: int, draw: Draw) -> Op:
        vs = state.vmas(pid)
        pages: List[int] = []
        if vs:
            known = set(state.known_pages())
            v = draw.pick(vs)
            for a in range(v["start"], v["end"], PAGE):
                p = state.page_at(pid, a)
                if p is not None and p in known and p not in pages:
                    pages.append(p)
        return ("try_to_unmap", (pages,), {})

    # -- one operation

    def __call__(self, state: OpState, draw: Draw) -> Op:
        live = state.pids()
        if not live:
            return ("spawn", (), {})
        kinds = list(self.kinds)
        if len(live) < self.max_procs:
            kinds += ["spawn", "fork", "fork"]
        kind = draw.pick(kinds)
        if kind == "spawn":
            return ("spawn", (), {})
        if kind == "touch_swap" and self.swap_fallback == "try_to_unmap" and not state.entries("swap"):
            kind = "try_to_unmap"
        if kind in ("try_to_unmap", "drop_swap_cache"):
            return self._pages_op(kind, state, draw)
        if kind == "dead_pid":
            return self._dead_pid(state, draw)
        pid = draw.pick(live)
        if self.prefer_busy and kind not in ("exit", "exec"):
            busy = [p for p in live if state.vmas(p)]
            if busy and draw.int(0, 7):
                pid = draw.pick(busy)  # memory operations mostly where there is memory
        if kind in ("fork", "fork_many"):
            if len(live) >= self.max_procs:
                return ("exit", (pid,), {})
            if kind == "fork_many":
                return ("fork_many", (pid, min(2, self.max_procs - len(live))), {})
            return ("fork", (pid,), {})
        if kind in ("exit", "exec"):
            return (kind, (pid,), {})
        if kind == "mmap":
            return self._mmap(state, pid, draw)
        if kind == "mmap_noreplace":
            addr, n = self._window_range(draw)
            return ("mmap", (pid, n * PAGE), {"addr": addr, "prot": draw.pick(self.prots), "noreplace": True})
        if kind in ("touch_swap", "touch_file", "touch_whole", "touch_many"):
            op = self._touch_kind(kind, state, live, pid, draw)
            if op is not None:
                return op
            kind = "touch"
        if kind == "reclaim_vma":
            return self._reclaim_vma(state, pid, draw)
        if kind == "memory_merge":
            return ("set_memory_merge", (pid,), {"enable": draw.bool()})
        if kind == "mlock" and not draw.int(0, 5):
            if draw.int(0, 3):
                flags = {"current": draw.int(0, 3) != 0, "future": draw.bool(), "onfault": not draw.int(0, 3)}
                return ("mlockall", (pid,), flags)
            return ("munlockall", (pid,), {})
        return self._range_op(kind, state, pid, draw)

    def _range_op(self, kind: str, state: OpState, pid: int, draw: Draw) -> Op:
        addr, n = self._range(state, pid, draw)
        if self.holes and kind in ("munmap", "mprotect", "madvise", "mremap") and not draw.int(0, 2):
            addr, n = self._hole_range(state, pid, draw) or (addr, n)
        if kind == "munmap":
            return ("munmap", (pid, addr, n * PAGE), {})
        if kind == "mlock":
            if not draw.int(0, 2):
                return ("munlock", (pid, addr, n * PAGE), {})
            return ("mlock", (pid, addr, n * PAGE), {"onfault": not draw.int(0, 2)})
        if kind == "touch":
            v = next((v for v in state.vmas(pid) if v["start"] <= addr < v["end"]), None)
            write = draw.int(0, 4) >= 2
            if v is not None and write and "w" not in v["prot"] and draw.int(0, 3):
                write = False  # mostly valid faults; sometimes the BadAddress of a write to r/o
            return ("touch", (pid, addr, n * PAGE), {"write": write})
        if kind == "mprotect":
            return ("mprotect", (pid, addr, n * PAGE, self._neighbour_prot(state, pid, addr, draw)), {})
        if kind == "madvise":
            rare = bool(self.rare_advice) and not draw.int(0, 30)
            return (
                "madvise",
                (pid, addr, n * PAGE, draw.pick(self.advice + self.rare_advice if rare else self.advice)),
                {},
            )
        if kind == "mremap_dontunmap":
            new_addr = self._window_range(draw)[0] if draw.bool() else None
            return (
                "mremap",
                (pid, addr, n * PAGE, n * PAGE),
                {"may_move": True, "new_addr": new_addr, "dontunmap": True},
            )
        assert kind == "mremap", kind
        return self._mremap(state, pid, addr, n, draw)

    def _mremap(self, state: OpState, pid: int, addr: int, n: int, draw: Draw) -> Op:
        how = draw.pick(["shrink", "grow", "grow", "fixed", "fixed", "same"])
        may_move = draw.int(0, 3) != 0
        new_addr = None
        if how == "shrink":
            new_n = max(1, n - draw.int(1, 3))
        elif how == "same":
            new_n = n
        elif how == "grow":
            new_n = n + draw.int(1, 3)
        else:
            new_addr, new_n = self._window_range(draw)
            v = next((v for v in state.vmas(pid) if v["start"] <= addr < v["end"]), None)
            if v is not None and draw.int(0, 2) == 0:
                new_addr, new_n = self._merge_target(state, pid, addr, n, v, new_n, draw)
        return ("mremap", (pid, addr, n * PAGE, new_n * PAGE), {"may_move": may_move, "new_addr": new_addr})

    def _merge_target(
        self, state: OpState, pid: int, addr: int, n: int, v: Dict[str, Any], new_n: int, draw: Draw
    ) -> Tuple[int, int]:
        """Where copy_vma's merges happen: right beside the source VMA, or back "home" (the
        address its pgoff says, where a faulted range came from -- and where an unfaulted
        neighbour mapped meanwhile meets the copy_vma defect); for a file VMA also beside a
        VMA of the same file whose pages the moved ones continue (or that continues them)."""
        new_n = n if draw.bool() else new_n
        home = (v["pgoff"] << 12) + (addr - v["start"])
        choices = [v["end"], v["start"] - new_n * PAGE]
        if home != addr:
            choices += [home, home]
        if v["file"] is not None:
            pg = v["pgoff"] + (addr - v["start"]) // PAGE
            for w in state.vmas(pid):
                if w["file"] == v["file"] and w is not v:
                    if w["pgoff"] + (w["end"] - w["start"]) // PAGE == pg:
                        choices += [w["end"]] * 3
                    if w["pgoff"] == pg + new_n:
                        choices += [w["start"] - new_n * PAGE] * 3
        new_addr = draw.pick(choices)
        if not self.lo <= new_addr <= self.hi - new_n * PAGE:
            new_addr, new_n = self._window_range(draw)
        return new_addr, new_n


def draw_op(state: OpState, draw: Draw, **options: Any) -> Op:
    """One operation from ``state`` with ``draw``: ``OpGenerator(**options)(state, draw)``
    (build the generator once when drawing many)."""
    return OpGenerator(**options)(state, draw)


def operations(state: OpState, **options: Any) -> Any:
    """A hypothesis strategy of one operation drawn from ``state`` as it is when drawn."""
    from hypothesis import strategies as st

    gen = OpGenerator(**options)
    return st.composite(lambda draw: gen(state, HypothesisDraw(draw)))()
