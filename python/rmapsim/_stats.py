"""ScanStats: per-walk rmap statistics as numpy columns."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, Mapping

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


class ScanStats:
    """One row per walked page; every column is a numpy array of the same length.

    Columns: ``page`` and ``anon_vma`` (uint64 handles), ``vmas_visited`` (candidate VMAs
    enumerated), ``vmas_in_range`` (candidates whose range covers the page),
    ``ptes_checked`` (page-table lookups), ``mappings_found``, ``mapcount`` (the truth),
    ``tree_nodes_visited`` (0 in list eras), ``lock_id`` (uint64) and ``lock_mode``
    (uint8: 0 exclusive, 1 shared).
    """

    __slots__ = COLUMNS + ("kind",)

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

    def __init__(self, columns: Mapping[str, npt.ArrayLike], kind: WalkKind = "rmap_walk") -> None:
        for c in COLUMNS:
            object.__setattr__(self, c, np.asarray(columns[c]))
        object.__setattr__(self, "kind", kind)

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

    def to_pandas(self) -> pd.DataFrame:
        """A pandas DataFrame with one column per statistic (needs pandas)."""
        import pandas as pd

        return pd.DataFrame({c: getattr(self, c) for c in COLUMNS})

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
