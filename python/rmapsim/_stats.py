"""ScanStats: per-walk rmap statistics as numpy columns."""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import numpy.typing as npt

from ._types import AggregateSummary, WalkKind, WalkSummary

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "page",
    "anon_vma",
    "vmas_visited",
    "vmas_in_range",
    "ptes_checked",
    "mappings_found",
    "mapcount",
    "tree_nodes_visited",
    "lock_id",
    "lock_mode",
)

#: ``lock_mode`` values.
LOCK_EXCLUSIVE = 0
LOCK_SHARED = 1


#: Where-columns :meth:`ScanStats.to_pandas` adds after ``page``: the process and VMA
#: each page is mapped in, and ``page->index``.
WHERE_COLUMNS = ("pid", "vma_start", "index")
#: Handle columns, which :meth:`ScanStats.to_pandas` makes pandas categoricals.
HANDLE_COLUMNS = ("page", "anon_vma", "lock_id")

Owners = Tuple[np.ndarray, np.ndarray, np.ndarray]


class PageWhere:
    """Where the pages of one batch of walks are mapped, read on demand from the simulator
    that walked them (``Simulator._page_owners``) while it is unchanged: its operation
    count is the one right after the walks (a later operation would move or free pages,
    and the answer would describe another state)."""

    __slots__ = ("_sim", "_ops")

    def __init__(self, sim: Any) -> None:
        self._sim = weakref.ref(sim)
        self._ops = sim.operations()

    def __call__(self, pages: np.ndarray) -> Optional[Owners]:
        sim = self._sim()
        if sim is None:
            return None
        if sim.operations() != self._ops:
            from .errors import InvalidArgument

            raise InvalidArgument(
                f"ScanStats.to_pandas: the simulator has run {sim.operations() - self._ops} operation(s) since "
                "these walks, so where their pages are mapped is no longer known; call to_pandas() before "
                "changing the simulator, or to_pandas(where=False) for the walk statistics alone"
            )
        return sim._page_owners(pages.tolist())  # type: ignore[no-any-return]


class ScanStats:
    """One row per walked page; every column is a numpy array of the same length.

    Columns: ``page`` and ``anon_vma`` (uint64 handles), ``vmas_visited`` (candidate VMAs
    enumerated), ``vmas_in_range`` (candidates whose range covers the page),
    ``ptes_checked`` (page-table lookups), ``mappings_found``, ``mapcount`` (the truth),
    ``tree_nodes_visited`` (0 in list eras), ``lock_id`` (uint64) and ``lock_mode``
    (uint8: 0 exclusive, 1 shared). :meth:`to_pandas` adds where each page is mapped
    (``pid``, ``vma_start``, ``index``). ``where`` (internal): a callable giving those
    from the page handles, set by the :class:`~rmapsim.Simulator` walk that made the rows.
    """

    __slots__ = COLUMNS + ("kind", "_where")

    # The columns' types (tests/api/test_types.py checks them against real walks).
    page: npt.NDArray[np.uint64]
    anon_vma: npt.NDArray[np.uint64]
    vmas_visited: npt.NDArray[np.uint32]
    vmas_in_range: npt.NDArray[np.uint32]
    ptes_checked: npt.NDArray[np.uint32]
    mappings_found: npt.NDArray[np.uint32]
    mapcount: npt.NDArray[np.uint32]
    tree_nodes_visited: npt.NDArray[np.uint32]
    lock_id: npt.NDArray[np.uint64]
    lock_mode: npt.NDArray[np.uint8]
    kind: WalkKind

    def __init__(
        self,
        columns: Mapping[str, npt.ArrayLike],
        kind: WalkKind = "rmap_walk",
        where: Optional[Callable[[np.ndarray], Optional[Owners]]] = None,
    ) -> None:
        for c in COLUMNS:
            object.__setattr__(self, c, np.asarray(columns[c]))
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_where", where)

    def __len__(self) -> int:
        return int(self.page.shape[0])

    def __repr__(self) -> str:
        if len(self) == 0:
            return f"ScanStats({self.kind}, 0 walks)"
        return (
            f"ScanStats({self.kind}, {len(self)} walks, vmas_visited mean {self.mean():.4g}, "
            f"p50 {self.percentile(50):.4g}, max {int(self.vmas_visited.max())})"
        )

    def column(self, name: str) -> npt.NDArray[np.unsignedinteger[Any]]:
        if not isinstance(name, str) or name not in COLUMNS:
            from .errors import InvalidArgument, short_repr

            raise InvalidArgument(f"unknown ScanStats column {short_repr(name)}; columns: {', '.join(COLUMNS)}")
        col: npt.NDArray[np.unsignedinteger[Any]] = getattr(self, name)
        return col

    def mean(self, column: str = "vmas_visited") -> float:
        c = self.column(column)
        return float(c.mean()) if len(c) else float("nan")

    def total(self, column: str = "vmas_visited") -> int:
        return int(self.column(column).sum(dtype=np.uint64))

    def percentile(self, q: float, column: str = "vmas_visited") -> float:
        if (
            isinstance(q, (bool, np.bool_))
            or not isinstance(q, (int, float, np.integer, np.floating))
            or not 0 <= q <= 100
        ):
            from .errors import InvalidArgument, short_repr

            raise InvalidArgument(f"q must be a number from 0 to 100, got {short_repr(q)}")
        c = self.column(column)
        return float(np.percentile(c, q)) if len(c) else float("nan")

    def histogram(self, column: str = "vmas_visited") -> Dict[int, int]:
        """``{value: number of walks}`` for an integer column."""
        values, counts = np.unique(self.column(column), return_counts=True)
        return {int(v): int(n) for v, n in zip(values, counts)}

    def summary(self) -> WalkSummary:
        """Walk count and the distribution of ``vmas_visited``, plus totals."""
        n = len(self)
        return {
            "walks": n,
            "mean": self.mean(),
            "p50": self.percentile(50),
            "p99": self.percentile(99),
            "max": int(self.vmas_visited.max()) if n else 0,
            "total_vmas_visited": self.total(),
            "total_ptes_checked": self.total("ptes_checked"),
            "total_mappings_found": self.total("mappings_found"),
            "total_mapcount": self.total("mapcount"),
        }

    def _repr_html_(self) -> str:
        from .viz import stats_html

        return stats_html(self)

    def to_pandas(self, where: bool = True) -> pd.DataFrame:
        """A pandas DataFrame, one row per walk (needs pandas): ``page``, then where the
        page is mapped — ``pid`` (the lowest pid whose page tables refer to the page: a
        present entry, or a swap entry for the slot ``try_to_unmap`` gave it), ``vma_start``
        (the start of that process's VMA holding its lowest such address) and ``index``
        (``page->index``) — then every statistic column. ``pid`` and ``vma_start`` are
        pandas nullable integers, ``<NA>`` for a page no entry refers to; all three are
        ``<NA>`` for rows not made by a simulator's walk (built by hand, unpickled, or
        their simulator gone). The handles (``page``, ``anon_vma``, ``lock_id``) are
        categoricals, so ``df.groupby("pid")`` or ``"anon_vma"`` groups costs directly.

        The where-columns are read from the simulator when this is called, so it must be
        unchanged since the walks: after a later operation this raises
        :class:`~rmapsim.InvalidArgument` (``where=False`` leaves the three columns out)."""
        import pandas as pd

        if not isinstance(where, bool):
            from .errors import InvalidArgument, short_repr

            raise InvalidArgument(f"where must be True or False, got {short_repr(where)}")
        cols: Dict[str, Any] = {"page": pd.Categorical(self.page)}
        if where:
            owners = self._where(self.page) if self._where is not None and len(self) else None
            n = len(self)
            if owners is None:
                na = pd.array([None] * n, dtype="Int64")
                cols.update(
                    pid=na, vma_start=pd.array([None] * n, dtype="UInt64"), index=pd.array([None] * n, dtype="UInt64")
                )
            else:
                pid, start, index = owners
                none = pid < 0
                cols["pid"] = pd.arrays.IntegerArray(pid.astype(np.int64), none)
                cols["vma_start"] = pd.arrays.IntegerArray(start.astype(np.uint64), none)
                index = index.astype(np.uint64)
                cols["index"] = pd.arrays.IntegerArray(index, index == np.uint64(2**64 - 1))  # freed since
        for c in COLUMNS[1:]:
            cols[c] = pd.Categorical(getattr(self, c)) if c in HANDLE_COLUMNS else getattr(self, c)
        return pd.DataFrame(cols)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ScanStats is read-only")

    def __reduce__(self) -> Any:
        # rebuilt through __init__ (the read-only __setattr__ refuses pickle's slot state);
        # copy.copy shares the column arrays, copy.deepcopy and pickle copy them
        return (ScanStats, ({c: getattr(self, c) for c in COLUMNS}, self.kind))

    def __eq__(self, other: object) -> bool:
        """Same kind and every column equal, dtype included."""
        if not isinstance(other, ScanStats):
            return NotImplemented
        return self.kind == other.kind and all(
            getattr(self, c).dtype == getattr(other, c).dtype and np.array_equal(getattr(self, c), getattr(other, c))
            for c in COLUMNS
        )

    __hash__ = None  # type: ignore[assignment]  # columns are mutable numpy arrays


def _hist_percentile(values: np.ndarray, cum: np.ndarray, n: int, q: float) -> float:
    """``np.percentile(column, q)`` (linear method) from a histogram: ``values`` sorted,
    ``cum`` the cumulative walk counts."""
    pos = (n - 1) * (q / 100.0)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a = float(values[int(np.searchsorted(cum, lo, side="right"))])
    b = float(values[int(np.searchsorted(cum, hi, side="right"))])
    t = pos - lo
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def summary_from_totals(d: Mapping[str, Any], kind: WalkKind) -> AggregateSummary:
    """The dict an aggregate-only walk returns: the keys of :meth:`ScanStats.summary`
    (computed from column totals and the ``vmas_visited`` histogram) plus
    ``total_vmas_in_range``, ``total_tree_nodes_visited``, ``histogram`` and ``kind``."""
    n = int(d["walks"])
    values = np.asarray(d["hist_values"])
    counts = np.asarray(d["hist_counts"])
    cum = np.cumsum(counts)
    return {
        "walks": n,
        "mean": d["total_vmas_visited"] / n if n else float("nan"),
        "p50": _hist_percentile(values, cum, n, 50) if n else float("nan"),
        "p99": _hist_percentile(values, cum, n, 99) if n else float("nan"),
        "max": int(values[-1]) if n else 0,
        "total_vmas_visited": int(d["total_vmas_visited"]),
        "total_ptes_checked": int(d["total_ptes_checked"]),
        "total_mappings_found": int(d["total_mappings_found"]),
        "total_mapcount": int(d["total_mapcount"]),
        "total_vmas_in_range": int(d["total_vmas_in_range"]),
        "total_tree_nodes_visited": int(d["total_tree_nodes_visited"]),
        "histogram": {int(v): int(c) for v, c in zip(values.tolist(), counts.tolist())},
        "kind": kind,
    }
