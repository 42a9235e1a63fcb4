"""Two-era lockstep diff of a trace (``rmapsim diff``, :func:`diff`).

The trace is replayed in era A and era B side by side, one operation at a time. After every
operation the anon rmap state of each run is taken apart into the categories below and the
two are compared; the first operation after which they differ is the *first divergence*.

Categories (the keys of :attr:`Divergence.details` and :attr:`DiffResult.first_by_category`):

``result``
    the operation's own outcome: ``ok`` or the error kind, and its value (a new process
    symbol, the address mmap chose, pages dropped, ...).
``counts``
    ``Simulator.counts()``: mm, vma, anon_vma, anon_vma_chain, page, pte, swap_slot, swap_cache.
``objects``
    what the operation allocated and freed: its allocation attempts per site
    (``allocation_sites()``, e.g. ``anon_vma@anon_vma_fork``; a failed attempt counts) and
    its frees per object kind (``write_stats()``). Two eras that allocate at other sites,
    or more or fewer objects, differ here even when they end in the same state. The order
    of the allocations is not compared: it shows only when an injected failure (``enomem
    N``) hits another site.
``work``
    the operation's anon_vma lock acquisitions and interval-tree (or list) inserts, removes
    and rekeys (``write_stats()``).
``vmas``
    the set of VMAs, each named by (process symbol, start, end), and their protections.
``vma_anon_vma``
    each VMA's ``vma->anon_vma``, as a mapped anon_vma identity (below).
``vma_chain``
    each VMA's anon_vma_chain, as the *set* of mapped identities it links (the order of the
    chain is not compared).
``pages``
    the set of anon pages, each named by the (symbol, address) pairs that map it, and which
    anon_vma (mapped identity) each page points to.
``walk``
    per-page walk cost: the candidate VMAs a full ``rmap_walk`` of the page visits.
``verdict``
    ``check()``: ``ok`` or ``invariant N`` (the number of the first broken invariant).

**Mapping anon_vma identities between the runs.** Handles are per-run numbers, so an
anon_vma is named by where and when it was first seen: after the operation where a handle
first appears, it gets the name ``pS@ADDR/opI``, the smallest (symbol, start) VMA whose
``vma->anon_vma`` it is, and I the (1-based) operation. The name sticks to the handle for
the rest of the run (handles are generational: a freed anon_vma's handle never names a later
one). Two anon_vmas of A and B are "the same" exactly when their names are equal: both were
created, or first became visible, at the same operation for the same VMA. Limits: an
anon_vma that first appears only on chains (no VMA's ``anon_vma``) is named by the smallest
VMA whose chain links it, with ``~`` before the ``/``; one on no VMA at all by its smallest
page, with ``!``; and two anon_vmas with one name in one run (both first seen by the same
VMA at the same operation: only through such chain/page fallbacks) get ``#2``, ``#3``, ...
in handle order, which need not match between the runs. An anon_vma that one era reuses
where the other creates a new one gets an older name in the first: that is a divergence,
as it should be. The names say nothing about structure (root, parent, degree): only the
VMAs, chains and pages that use them are compared.

**Pages** are named by their mappings: the sorted (symbol, address) pairs whose PTE maps
the page (``page_at`` of every address of every VMA, read in one pass over the page tables). A page that no PTE maps (in the swap
cache only) is named by its anon_vma's name and its index.

**Cost.** Each step reads the whole state of both runs: ``page_at`` for every page of every
VMA (about 0.5 µs each), a full ``rmap_walk`` and a ``check()``. That suits reproducers and
small scenarios (a 15-operation reproducer in a few milliseconds); for a trace with
thousands of operations over large mappings expect seconds to minutes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import Simulator
from .errors import InvalidArgument, InvariantViolation, short_repr
from .policy import Policy, era_spec

#: The compared categories, in report order.
CATEGORIES = ("result", "counts", "objects", "work", "vmas", "vma_anon_vma", "vma_chain", "pages", "walk", "verdict")
#: The object kinds of ``Simulator.counts()`` that every row carries for A and B.
COUNT_KINDS = ("mm", "vma", "anon_vma", "anon_vma_chain", "page", "pte", "swap_slot", "swap_cache")
#: The ``write_stats()`` fields of the ``objects`` category (frees; allocations are per site).
FREE_FIELDS = ("vma_free", "anon_vma_free", "avc_free", "page_free")
#: The ``write_stats()`` fields of the ``work`` category.
WORK_FIELDS = ("lock_acquire", "index_insert", "index_remove", "tree_rekey")
#: Columns of :attr:`DiffResult.rows` (the CSV and the JSON ``rows``), in order.
COLUMNS = (
    ("op", "line", "operation", "differs", "what", "result_a", "result_b")
    + tuple(f"{k}_{s}" for k in COUNT_KINDS for s in "ab")
    + ("allocs_a", "allocs_b", "frees_a", "frees_b", "locks_a", "locks_b")
    + ("walk_a", "walk_b", "walk_max_a", "walk_max_b", "verdict_a", "verdict_b")
)
#: At most this many details per category are kept (the rest are counted).
MAX_DETAILS = 12

TraceInput = Union[str, "os.PathLike[str]", np.ndarray]
VmaKey = Tuple[int, int, int]  # (symbol, start, end)
PageKey = Tuple[Any, ...]


@dataclass
class _State:
    """One run's anon rmap state after one operation, with names instead of handles."""

    result: Tuple[str, int]
    counts: Dict[str, int]
    objects: Dict[str, int]  # this op's allocation attempts per site ("alloc site") and frees
    work: Dict[str, int]  # this op's write_stats() WORK_FIELDS
    vmas: Dict[VmaKey, Tuple[str, Optional[str], Tuple[str, ...]]]  # prot, anon_vma, chain set
    pages: Dict[PageKey, Tuple[Optional[str], Optional[int]]]  # anon_vma, vmas visited
    verdict: str
    message: str

    @property
    def walk_total(self) -> int:
        return sum(w for _, w in self.pages.values() if w is not None)

    @property
    def walk_max(self) -> int:
        return max((w for _, w in self.pages.values() if w is not None), default=0)


class _Run:
    """One era's replay, applied one operation at a time (``Simulator._apply_from``)."""

    def __init__(self, spec: str) -> None:
        self.sim = Simulator(era=spec)
        self.symbols: List[int] = []  # pid of p1, p2, ...
        self.names: Dict[int, str] = {}  # anon_vma handle -> identity
        self.totals: Dict[str, int] = {}  # allocation_sites() and summed write_stats() so far

    def _deltas(self) -> Tuple[Dict[str, int], Dict[str, int]]:
        """This operation's (objects, work): the growth of the cumulative counters."""
        now = {f"alloc {k}": v for k, v in self.sim.allocation_sites().items()}
        for per_kind in self.sim.write_stats().values():
            for f in FREE_FIELDS + WORK_FIELDS:
                now[f] = now.get(f, 0) + per_kind[f]
        delta = {k: v - self.totals.get(k, 0) for k, v in now.items() if v != self.totals.get(k, 0)}
        self.totals = now
        work = {k: delta.pop(k) for k in WORK_FIELDS if k in delta}
        return delta, work

    def sym_of(self) -> Dict[int, int]:
        return {pid: i + 1 for i, pid in enumerate(self.symbols)}

    def step(self, row: List[int], op: int) -> _State:
        from .trace import ERROR_KINDS

        status, value, message, self.symbols = self.sim._apply_from([row], self.symbols)
        objects, work = self._deltas()
        st = status[0]
        result = ("ok" if st == 0 else ERROR_KINDS[st - 1] if st <= len(ERROR_KINDS) else "error", int(value[0]))
        graph = self.sim.graph()
        syms = self.sym_of()
        vmas = sorted(((syms.get(v["pid"], 0), v["start"], v["end"]), v) for v in graph["vmas"])
        maps = self._mappings()
        infos = {int(h): self.sim.page_info(int(h)) for h in self.sim.anon_pages()}
        self._name_new(op, vmas, graph, maps)
        nm = self.names.get
        state_vmas = {
            k: (
                v["prot"],
                nm(v["anon_vma"], "?") if v["anon_vma"] is not None else None,
                tuple(sorted(nm(c, "?") for c in v["chain"])),
            )
            for k, v in vmas
        }
        walk = self._walk_cost()
        pages: Dict[PageKey, Tuple[Optional[str], Optional[int]]] = {}
        for h, info in infos.items():
            av = nm(info["anon_vma"], "?") if info["anon_vma"] is not None else None
            key: PageKey = tuple(maps[h]) if h in maps else ("swap", av, info["index"])
            pages[key] = (av, walk.get(h))
        try:
            self.sim.check()
            verdict, msg = "ok", ""
        except InvariantViolation as e:
            msg = str(e)
            m = re.search(r"invariant (\d+)", msg)
            verdict = f"invariant {m.group(1)}" if m else "violation"
        return _State(result, self.sim.counts(), objects, work, state_vmas, pages, verdict, msg)

    def _mappings(self) -> Dict[int, List[Tuple[int, int]]]:
        """page handle -> sorted (symbol, address) pairs whose PTE maps it."""
        syms = self.sym_of()
        maps: Dict[int, List[Tuple[int, int]]] = {}
        pids, addrs, pages = self.sim._page_mappings()
        for pid, addr, h in zip(pids.tolist(), addrs.tolist(), pages.tolist()):
            maps.setdefault(h, []).append((syms.get(pid, 0), addr))
        for m in maps.values():
            m.sort()
        return maps

    def _walk_cost(self) -> Dict[int, int]:
        try:
            s = self.sim.rmap_walk()
        except InvariantViolation:  # a state broken so far that a walk refuses it: no cost
            return {}
        return dict(zip(s.column("page").tolist(), s.column("vmas_visited").tolist()))

    def _name_new(
        self,
        op: int,
        vmas: List[Tuple[VmaKey, Dict[str, Any]]],
        graph: Dict[str, Any],
        maps: Dict[int, List[Tuple[int, int]]],
    ) -> None:
        """Give every anon_vma handle seen for the first time its identity (module doc)."""
        live = {a["anon_vma"] for a in graph["anon_vmas"]}
        new = sorted(h for h in live if h not in self.names)
        if not new:
            return
        taken = set(self.names.values())
        for h in new:
            own = [k for k, v in vmas if v["anon_vma"] == h]
            linked = [k for k, v in vmas if h in v["chain"]]
            if own:
                base = f"{_sym(own[0][0])}@{own[0][1]:#x}/op{op}"
            elif linked:
                base = f"{_sym(linked[0][0])}@{linked[0][1]:#x}~/op{op}"
            else:
                pages = sorted(m[0] for p, m in maps.items() if m and self.sim.page_info(p)["anon_vma"] == h)
                base = f"{_sym(pages[0][0])}@{pages[0][1]:#x}!/op{op}" if pages else f"?/op{op}"
            name, k = base, 1
            while name in taken:
                k += 1
                name = f"{base}#{k}"
            taken.add(name)
            self.names[h] = name

    def layout(self, sym: int) -> str:
        """The layout picture of process ``sym``, its anon_vma legend given in identities."""
        pid = self.symbols[sym - 1]
        text = self.sim.render_layout(pid)

        def named(m: re.Match[str]) -> str:
            return f"{m.group(1)}={self.names.get(int(m.group(2), 16), '?')}"

        return re.sub(r"\b(av\d+)=0x([0-9a-f]+)", named, text)


@dataclass
class Divergence:
    """Where the two runs first differ: after operation ``op`` (1-based), whose trace text
    is ``line`` (at ``lineno`` in the trace file, when the trace was text); ``details`` maps
    each differing category to lines saying what differs (at most :data:`MAX_DETAILS`)."""

    op: int
    line: str
    lineno: Optional[int]
    details: Dict[str, List[str]]


@dataclass
class DiffResult:
    """What :func:`diff` found. ``identical`` when no operation's state differs;
    ``first_divergence`` (or None); ``first_by_category``: the first operation at which each
    category differs (None: never); ``rows``: one dict per operation with :data:`COLUMNS`;
    ``pictures``: the side-by-side layout pictures at the first divergence ("" when
    identical or not asked for)."""

    a: str
    b: str
    ops: int
    identical: bool
    first_divergence: Optional[Divergence]
    first_by_category: Dict[str, Optional[int]]
    rows: List[Dict[str, Any]] = field(repr=False)
    pictures: str = field(default="", repr=False)

    def to_dicts(self) -> List[Dict[str, Any]]:
        """The per-operation rows as a list of dicts (copies)."""
        return [dict(r) for r in self.rows]

    def to_pandas(self) -> Any:
        """The per-operation rows as a pandas DataFrame with :data:`COLUMNS` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def as_dict(self) -> Dict[str, Any]:
        """Everything as JSON-ready data (``rmapsim diff --json``)."""
        fd = self.first_divergence
        return {
            "a": self.a,
            "b": self.b,
            "ops": self.ops,
            "identical": self.identical,
            "first_divergence": None
            if fd is None
            else {"op": fd.op, "line": fd.line, "lineno": fd.lineno, "details": fd.details},
            "first_by_category": self.first_by_category,
            "columns": list(COLUMNS),
            "rows": self.to_dicts(),
            "pictures": self.pictures,
        }


def _spec(era: object, name: str) -> str:
    if not isinstance(era, (str, Policy)):
        raise InvalidArgument(f"{name} must be an era name, an era spec or a rmapsim.Policy, got {short_repr(era)}")
    try:
        return era_spec(era)
    except InvalidArgument as e:
        raise InvalidArgument(f"{name}: {e}") from None


def _ops_and_lines(trace: object) -> Tuple[np.ndarray, Optional[List[int]]]:
    """The op array of ``trace`` (text, a path or an op array) and each op's line number."""
    from . import trace as tr

    if isinstance(trace, np.ndarray):
        tr.rows(trace)  # validates
        return trace, None
    if isinstance(trace, os.PathLike):
        try:
            text = Path(trace).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArgument(
                f"cannot read trace file trace={short_repr(os.fspath(trace))}: {e.__class__.__name__}"
            ) from None
    elif isinstance(trace, str):
        text = trace
    else:
        raise InvalidArgument(f"trace must be trace text, a path (os.PathLike) or an op array, got {short_repr(trace)}")
    ops = tr.parse(text)
    lines = [i for i, ln in enumerate(text.splitlines(), 1) if ln.split("#", 1)[0].strip()]
    return ops, lines if len(lines) == len(ops) else None


def _sym(s: int) -> str:
    return f"p{s}" if s else "p?"


def _vma_name(k: VmaKey) -> str:
    return f"{_sym(k[0])} [{k[1]:#x}, {k[2]:#x})"


def _page_name(k: PageKey) -> str:
    if k and k[0] == "swap":
        return f"swap-cache page {k[1]} index {k[2]:#x}"
    return "page " + "+".join(f"{_sym(s)}@{a:#x}" for s, a in k)


def _chain(c: Tuple[str, ...]) -> str:
    return "[" + " ".join(c) + "]"


def _page_order(k: PageKey) -> Tuple[Any, ...]:
    """A sort key for page keys: mapped pages by their mappings, then swap-cache pages."""
    return (1, k[1] or "", k[2]) if k and k[0] == "swap" else (0, k)


Field = Tuple[int, str, Callable[[Any, Any], str]]


def _compare_keyed(
    add: Callable[[str, Callable[[], str]], None],
    da: Dict[Any, Tuple[Any, ...]],
    db: Dict[Any, Tuple[Any, ...]],
    name: Callable[[Any], str],
    fields: Sequence[Field],
    order: Optional[Callable[[Any], Any]] = None,
) -> None:
    """Report what differs between two dicts of tuples (VMAs or pages): a key only one side
    has under the first field's category; for a common key each (index, category, show)
    field whose values differ."""
    if da == db:
        return
    for k in sorted(da.keys() | db.keys(), key=order):
        xa, xb = da.get(k), db.get(k)
        if xa is None or xb is None:
            # add() calls the message at once (or never): the loop variables are current
            add(fields[0][1], lambda: f"{name(k)} only in {'A' if xb is None else 'B'}")  # noqa: B023
            continue
        for i, cat, show in fields:
            if xa[i] != xb[i]:
                add(cat, lambda: f"{name(k)}: {show(xa[i], xb[i])}")  # noqa: B023


def _compare(a: _State, b: _State) -> Dict[str, List[str]]:
    """What differs between two states, per category (only the categories that differ);
    past :data:`MAX_DETAILS` lines a category's further differences are only counted."""
    out: Dict[str, List[str]] = {}
    more: Dict[str, int] = {}

    def add(cat: str, msg: Callable[[], str]) -> None:
        lines = out.setdefault(cat, [])
        if len(lines) < MAX_DETAILS:
            lines.append(msg())
        else:
            more[cat] = more.get(cat, 0) + 1

    if a.result != b.result:
        add("result", lambda: f"A {a.result[0]} {a.result[1]:#x}, B {b.result[0]} {b.result[1]:#x}")
    for k in COUNT_KINDS:
        if a.counts.get(k) != b.counts.get(k):
            add("counts", lambda: f"{k}: A {a.counts.get(k)}, B {b.counts.get(k)}")  # noqa: B023 (called at once)
    for cat, da, db in (("objects", a.objects, b.objects), ("work", a.work, b.work)):
        for k in sorted(da.keys() | db.keys()):
            if da.get(k, 0) != db.get(k, 0):
                add(cat, lambda: f"{k}: A {da.get(k, 0)}, B {db.get(k, 0)}")  # noqa: B023 (called at once)
    _compare_keyed(
        add,
        a.vmas,
        b.vmas,
        _vma_name,
        (
            (0, "vmas", lambda x, y: f"prot A {x}, B {y}"),
            (1, "vma_anon_vma", lambda x, y: f"anon_vma A {x}, B {y}"),
            (2, "vma_chain", lambda x, y: f"chain A {_chain(x)}, B {_chain(y)}"),
        ),
    )
    _compare_keyed(
        add,
        a.pages,
        b.pages,
        _page_name,
        (
            (0, "pages", lambda x, y: f"anon_vma A {x}, B {y}"),
            (1, "walk", lambda x, y: f"rmap_walk visits A {x}, B {y} VMAs"),
        ),
        order=_page_order,
    )
    if a.verdict != b.verdict:
        add("verdict", lambda: f"A {a.message or 'ok'}; B {b.message or 'ok'}")
    for cat, n in more.items():
        out[cat].append(f"... and {n} more")
    return {c: out[c] for c in CATEGORIES if c in out}


def _row(op: int, line: str, lineno: Optional[int], a: _State, b: _State, what: Sequence[str]) -> Dict[str, Any]:
    r: Dict[str, Any] = {
        "op": op,
        "line": lineno,
        "operation": line,
        "differs": bool(what),
        "what": "+".join(what),
        "result_a": a.result[0],
        "result_b": b.result[0],
    }
    for k in COUNT_KINDS:
        r[f"{k}_a"], r[f"{k}_b"] = a.counts.get(k, 0), b.counts.get(k, 0)
    for col, of in (
        ("allocs", lambda st: sum(v for k, v in st.objects.items() if k.startswith("alloc "))),
        ("frees", lambda st: sum(v for k, v in st.objects.items() if not k.startswith("alloc "))),
        ("locks", lambda st: st.work.get("lock_acquire", 0)),
    ):
        r[f"{col}_a"], r[f"{col}_b"] = of(a), of(b)
    r.update(
        walk_a=a.walk_total,
        walk_b=b.walk_total,
        walk_max_a=a.walk_max,
        walk_max_b=b.walk_max,
        verdict_a=a.verdict,
        verdict_b=b.verdict,
    )
    return r


def side_by_side(left: str, right: str, gap: int = 4) -> str:
    """Two blocks of text next to each other, ``left`` padded to its widest line."""
    ls, rs = left.splitlines(), right.splitlines()
    w = max((len(x) for x in ls), default=0) + gap
    n = max(len(ls), len(rs))
    ls += [""] * (n - len(ls))
    rs += [""] * (n - len(rs))
    return "\n".join((x.ljust(w) + y).rstrip() for x, y in zip(ls, rs))


def _pictures(ra: _Run, rb: _Run, a: str, b: str) -> str:
    """Each process's layout in A and B side by side (a process only one run has: "-")."""
    alive_a = set(ra.sim.pids().tolist())
    alive_b = set(rb.sim.pids().tolist())
    blocks = []
    for s in range(1, max(len(ra.symbols), len(rb.symbols)) + 1):
        pa = ra.symbols[s - 1] if s <= len(ra.symbols) and ra.symbols[s - 1] in alive_a else None
        pb = rb.symbols[s - 1] if s <= len(rb.symbols) and rb.symbols[s - 1] in alive_b else None
        if pa is None and pb is None:
            continue
        left = ra.layout(s) if pa is not None else f"p{s}: no such process in A"
        right = rb.layout(s) if pb is not None else f"p{s}: no such process in B"
        blocks.append(side_by_side(f"p{s} in A = {a}:\n{left}", f"p{s} in B = {b}:\n{right}"))
    return "\n\n".join(blocks)


def diff(trace: TraceInput, a: Union[str, Policy], b: Union[str, Policy], pictures: bool = True) -> DiffResult:
    """Replay ``trace`` in eras ``a`` and ``b`` in lockstep and compare their anon rmap
    state after every operation (the categories and the anon_vma identity mapping are
    described in :mod:`rmapsim.diff`).

    ``trace`` is version-1 trace text, a path (``os.PathLike``, e.g. ``pathlib.Path``) or an
    op array (:mod:`rmapsim.trace`); ``a`` and ``b`` are era presets, era specs
    (``"6.0+fork_reuse=never"``) or :class:`Policy` objects; the trace's ``# era`` line is
    ignored. With ``pictures``, the result holds both runs' layout pictures at the first
    divergence. A bad argument raises :class:`InvalidArgument` naming it; a malformed trace
    the parse error naming its line. Operations that fail (an injected ENOMEM, a bad
    address) fail in the run as in ``apply`` and the replay goes on; so does it after an
    invariant violation (the verdict then says ``invariant N``). Ctrl-C stops it with
    ``KeyboardInterrupt``."""
    return _diff(trace, a, b, pictures)


def _diff(
    trace: TraceInput,
    a: Union[str, Policy],
    b: Union[str, Policy],
    pictures: bool = True,
    on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> DiffResult:
    """:func:`diff`, calling ``on_row`` with each row as it is made (``rmapsim diff
    --json`` prints them as they come)."""
    from . import trace as tr

    spec_a, spec_b = _spec(a, "a"), _spec(b, "b")
    if not isinstance(pictures, (bool, np.bool_)):
        raise InvalidArgument(f"pictures must be True or False, got {short_repr(pictures)}")
    ops, lines = _ops_and_lines(trace)
    ra, rb = _Run(spec_a), _Run(spec_b)
    rows: List[Dict[str, Any]] = []
    first: Optional[Divergence] = None
    by_cat: Dict[str, Optional[int]] = {c: None for c in CATEGORIES}
    pics = ""
    for i, row in enumerate(tr.rows(ops)):
        op = i + 1
        line = tr.format(ops[i : i + 1]).splitlines()[-1]
        lineno = lines[i] if lines else None
        sa, sb = ra.step(row, op), rb.step(row, op)
        details = _compare(sa, sb)
        for c in details:
            if by_cat[c] is None:
                by_cat[c] = op
        if details and first is None:
            first = Divergence(op, line, lineno, details)
            if pictures:
                pics = _pictures(ra, rb, spec_a, spec_b)
        rows.append(_row(op, line, lineno, sa, sb, list(details)))
        if on_row is not None:
            on_row(rows[-1])
    return DiffResult(spec_a, spec_b, len(rows), first is None, first, by_cat, rows, pics)


def _cell(r: Dict[str, Any], k: str) -> str:
    a, b = r[f"{k}_a"], r[f"{k}_b"]
    return f"{a}" if a == b else f"{a}|{b}"


def format_rows(res: DiffResult, limit: int = 0) -> str:
    """The per-operation table as text: one line per operation; a cell shows the value of
    both runs when they agree and ``A|B`` when they differ. ``limit`` > 0: the first
    ``limit`` operations, and the first divergence's row if it comes later."""
    from ._text import render_table

    head = ["op", "operation", "differs", "vma", "anon_vma", "chains", "pages", "walk", "walk max", "verdict"]
    keep = res.rows if limit <= 0 else res.rows[:limit]
    fd = res.first_divergence
    if limit > 0 and fd is not None and fd.op > limit:
        keep = keep + [res.rows[fd.op - 1]]
    body = [
        [
            str(r["op"]),
            r["operation"],
            r["what"] or "-",
            _cell(r, "vma"),
            _cell(r, "anon_vma"),
            _cell(r, "anon_vma_chain"),
            _cell(r, "page"),
            _cell(r, "walk"),
            _cell(r, "walk_max"),
            _cell(r, "verdict"),
        ]
        for r in keep
    ]
    out = render_table(head, body, left=3) if body else "(no operations)"
    if len(keep) < len(res.rows):
        out += f"\n... {len(res.rows) - len(keep)} more operations (--limit 0 shows all; --csv writes all)"
    return out


def format_report(res: DiffResult, name: str, limit: int = 0) -> str:
    """The text report of ``rmapsim diff``: the verdict, the first divergence with what
    differs, the first operation of each category, the table and the pictures."""
    out = [f"{name}: {res.ops} operations replayed in lockstep, A = {res.a}, B = {res.b}"]
    fd = res.first_divergence
    if fd is None:
        out.append("identical: the anon rmap state of A and B agrees after every operation")
    else:
        where = f" (line {fd.lineno})" if fd.lineno is not None else ""
        out.append(f"first divergence after op {fd.op}{where}: {fd.line}")
        for cat, msgs in fd.details.items():
            out.append(f"  {cat}:")
            out.extend(f"    {m}" for m in msgs)
        firsts = ", ".join(f"{c} op {v}" if v is not None else f"{c} never" for c, v in res.first_by_category.items())
        out.append(f"first differing op per category: {firsts}")
    out += [
        "",
        "per-operation table (a cell is A|B where the runs differ; walk = VMAs visited by a full "
        "rmap_walk of every page):",
        format_rows(res, limit),
    ]
    if res.pictures:
        out += [
            "",
            f"layouts after op {fd.op if fd else '?'} (A left, B right; avN = anon_vma identities):",
            res.pictures,
        ]
    return "\n".join(out)


def __getattr__(name: str) -> Any:
    """``add_parser`` and ``cmd_diff``, the CLI side, moved to :mod:`rmapsim.tools.cmd_diff`
    (``register``, ``cmd_diff``); the old names stay importable from here."""
    if name in ("add_parser", "cmd_diff"):
        from .tools import cmd_diff

        return cmd_diff.cmd_diff if name == "cmd_diff" else _add_parser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _add_parser(sub: Any, era_type: Any = None, count_type: Any = None) -> None:
    """The former ``add_parser(sub, era_type, count_type)``: registers ``rmapsim diff``."""
    from .tools import cmd_diff

    cmd_diff.register(sub)
