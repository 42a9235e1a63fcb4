"""The per-operation event log of a replay: ``Simulator.apply(ops, events=True)``,
``Simulator.events()`` and ``rmapsim replay --events FILE``.

One row per operation applied: its number in the batch, the trace word, the process
symbol and pid, address and length, the outcome, allocation attempts per allocation site
(``alloc:<slab>@<kernel function>``), objects allocated and freed per kind, the live
objects after it, and for a walk (``try_to_unmap``) the candidates it visited and the lock
it took. The table is a numpy structured array (:attr:`EventLog.array`);
:meth:`EventLog.to_pandas`, :meth:`EventLog.to_csv` and :meth:`EventLog.to_parquet` (with
the optional ``pyarrow``) write it.
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Dict, List

import numpy as np

from .errors import InvalidArgument

__all__ = ["EventLog", "OBJECT_KINDS", "LIVE_KINDS"]

if TYPE_CHECKING:
    import pandas as pd

#: Kinds of the ``alloc_<kind>`` / ``freed_<kind>`` columns.
OBJECT_KINDS = ("anon_vma", "anon_vma_chain", "vma", "page")
#: Kinds of the ``live_<kind>`` columns.
LIVE_KINDS = ("mm", "vma", "anon_vma", "anon_vma_chain", "page")
_WALK = ("walk_candidates", "walk_in_range", "walk_mappings", "walk_lock")


class EventLog:
    """The event log of one batch (see the module documentation). ``len(log)`` rows;
    ``log.array`` the structured array; ``log.columns`` the column names in order;
    ``log["kind"]`` one column."""

    def __init__(
        self, era: str, lock_kind: str, status: np.ndarray, value: np.ndarray, message: List[str], cols: Dict[str, Any]
    ) -> None:
        from .trace import ERROR_KINDS

        n = len(cols["kind"])
        self.era = era
        sites = [k for k in cols if k.startswith("alloc:")]
        walked = np.asarray(cols["walk_candidates"]) >= 0
        fields: List[tuple] = [
            ("op", np.uint32, np.arange(1, n + 1)),
            ("kind", "U16", cols["kind"]),
            ("p", np.uint32, cols["p"]),
            ("pid", np.int64, cols["pid"]),
            ("addr", np.uint64, cols["addr"]),
            ("len", np.uint64, cols["len"]),
            ("result", "U20", ["ok" if s == 0 else ERROR_KINDS[s - 1] for s in status[:n].tolist()]),
            ("value", np.uint64, value[:n]),
            *[(k, np.uint64, cols[k]) for k in sites],
            *[(f"alloc_{k}", np.uint64, cols[f"alloc_{k}"]) for k in OBJECT_KINDS],
            *[(f"freed_{k}", np.uint64, cols[f"freed_{k}"]) for k in OBJECT_KINDS],
            *[(f"live_{k}", np.uint64, cols[f"live_{k}"]) for k in LIVE_KINDS],
            *[(k, np.int64, cols[k]) for k in _WALK],
            (
                "walk_lock_mode",
                "U9",
                np.where(walked, np.where(np.asarray(cols["walk_shared"]) == 1, "shared", "exclusive"), ""),
            ),
            ("walk_lock_kind", "U5", np.where(walked, lock_kind, "")),
        ]
        self.array = np.zeros(n, dtype=[(name, dt) for name, dt, _ in fields])
        for name, _, values in fields:
            self.array[name] = values
        self.message = list(message[:n])

    @property
    def columns(self) -> List[str]:
        return list(self.array.dtype.names or ())

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise InvalidArgument(f"column: no column {column!r}; columns: {', '.join(self.columns)}")
        return self.array[column]

    def __repr__(self) -> str:
        return f"<EventLog era {self.era}: {len(self)} operations, {len(self.columns)} columns>"

    def rows(self) -> List[Dict[str, Any]]:
        """The rows as dicts (Python ints and strs)."""
        return [dict(zip(self.columns, r)) for r in self.array.tolist()]

    def to_pandas(self) -> pd.DataFrame:
        """A ``pandas.DataFrame`` (pandas is needed for this call only)."""
        import pandas as pd

        return pd.DataFrame({c: self.array[c] for c in self.columns})

    def to_csv(self, path: str) -> None:
        """Write the table as CSV with a header row (missing: ``pid`` -1, ``addr`` / ``len``
        18446744073709551615 as in op arrays, walk columns -1, text empty)."""
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(self.array.tolist())

    def to_parquet(self, path: str) -> None:
        """Write the table as Parquet; needs the optional ``pyarrow`` (``pip install
        'rmapsim[parquet]'``)."""
        try:
            import pyarrow as pa  # type: ignore[import-not-found]
            import pyarrow.parquet as pq  # type: ignore[import-not-found]
        except ImportError:
            raise InvalidArgument(
                f"path: writing Parquet ({path!r}) needs pyarrow: pip install 'rmapsim[parquet]', or give a .csv path"
            ) from None
        pq.write_table(pa.table({c: self.array[c] for c in self.columns}), path)

    def write(self, path: str) -> str:
        """Write to ``path``: Parquet for a ``.parquet`` name, CSV otherwise; returns the
        format written."""
        if path.endswith(".parquet"):
            self.to_parquet(path)
            return "parquet"
        self.to_csv(path)
        return "csv"


def lock_kind_of(era: str) -> str:
    """The era's anon_vma lock kind (knob ``lock_kind``: spin, mutex or rwsem)."""
    from .policy import Policy

    return str(Policy.parse(era)["lock_kind"])
