"""The lock-contention picture of the 2010 thread (docs/contract.md#locks-and-contention), as data and a plot.

``Simulator.contention(cpus=16)`` replays the ``page_referenced`` walks of every anon page
on simulated CPUs in virtual time under the era's locks: a per-anon_vma spinlock (2.6.33,
2.6.34), the root's spinlock (2.6.35), its mutex (3.0–3.7) or its rwsem with shared walks
(3.8+). Cost model, in "candidate-visits": a walk holds its lock for ``per_candidate`` ×
candidates visited (plus ``handoff`` after waiting); a CPU works ``outside`` units without
the lock between walks; optionally every ``writer_every``-th walk is followed by a write-side
update (fork/exit) holding the lock exclusively for ``writer_hold``.

``Simulator.contention(..., spans=True)`` also records each CPU's time as spans
(:attr:`ContentionResult.spans`), which :mod:`rmapsim.perfetto` writes as a trace for
the Perfetto UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

import numpy as np
import numpy.typing as npt

from ._types import ContentionSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: ``ContentionResult.spans["kind"]`` values: waiting for the lock (spinning or sleeping),
#: holding it for a ``page_referenced`` walk, holding it exclusively for a write-side
#: update, working without a lock between requests.
SPAN_WAIT, SPAN_HOLD, SPAN_UPDATE, SPAN_OUTSIDE = 0, 1, 2, 3
SPAN_KINDS = ("wait", "hold", "update", "outside")
_SPAN_COLUMNS = ("cpu", "kind", "lock", "start", "end", "candidates")


class ContentionResult:
    """Makespan, per-lock wait and hold, and the CPUs holding / waiting over time."""

    def __init__(self, d: Dict[str, Any], era: str, params: Optional[Dict[str, int]] = None, lock: str = "") -> None:
        self.era = era
        #: the model's parameters (cpus, per_candidate, handoff, outside, writer_every, writer_hold)
        self.params = dict(params or {})
        #: the era's lock, ``scope/kind`` (``root/rwsem``)
        self.lock = lock
        self.cpus = int(d["cpus"])
        self.makespan = int(d["makespan"])
        self.hold_time = int(d["hold_time"])
        self.wait_time = int(d["wait_time"])
        self.outside_time = int(d["outside_time"])
        self.spinning = bool(d["spinning"])
        #: the timeline: at ``time[i]`` (virtual time) ``holding[i]`` CPUs hold a lock and
        #: ``waiting[i]`` wait for one, until ``time[i + 1]`` (the last until ``makespan``)
        self.time: npt.NDArray[np.uint64] = np.asarray(d["time"])
        self.holding: npt.NDArray[np.uint32] = np.asarray(d["holding"])
        self.waiting: npt.NDArray[np.uint32] = np.asarray(d["waiting"])
        #: per lock: its id, acquisitions, and the time it was held and waited for
        self.lock_id: npt.NDArray[np.uint64] = np.asarray(d["lock_id"])
        self.lock_acquisitions: npt.NDArray[np.uint64] = np.asarray(d["lock_acquisitions"])
        self.lock_hold: npt.NDArray[np.uint64] = np.asarray(d["lock_hold"])
        self.lock_wait: npt.NDArray[np.uint64] = np.asarray(d["lock_wait"])
        #: per-CPU spans (``spans=True`` only, else None): numpy columns ``cpu``, ``kind``
        #: (:data:`SPAN_KINDS`), ``lock``, ``start``, ``end`` (virtual time, end exclusive)
        #: and ``candidates`` (VMAs the walk visited; 0 for other kinds). On one CPU the
        #: spans are in time order and never overlap; waits and outside work of 0 units
        #: are not recorded; ``lock`` is 0 for outside work.
        self.spans: Optional[Dict[str, npt.NDArray[np.unsignedinteger[Any]]]] = (
            {c: np.asarray(d["span_" + c]) for c in _SPAN_COLUMNS} if "span_cpu" in d else None
        )

    def waiting_share(self) -> float:
        """Share of all CPU time spent waiting for a lock."""
        return self.wait_time / (self.makespan * self.cpus) if self.makespan else 0.0

    def mean_waiting_cpus(self) -> float:
        """Time-weighted mean number of CPUs waiting."""
        if len(self.time) < 2:
            return 0.0
        dt = np.diff(np.append(self.time, self.makespan)).astype(float)
        return float((self.waiting * dt).sum() / max(self.makespan, 1))

    def summary(self) -> ContentionSummary:
        return {
            "era": self.era,
            "cpus": self.cpus,
            "makespan": self.makespan,
            "waiting_share": self.waiting_share(),
            "mean_waiting_cpus": self.mean_waiting_cpus(),
            "spinning_share": self.waiting_share() if self.spinning else 0.0,
            "sleeping_share": 0.0 if self.spinning else self.waiting_share(),
            "locks": len(self.lock_id),
            "busiest_lock_wait": int(self.lock_wait.max()) if len(self.lock_wait) else 0,
        }

    def plot(self, ax: Optional[Axes] = None) -> Axes:
        """Busy and waiting CPUs over virtual time (matplotlib, any backend)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 2.6))
        t = np.append(self.time, self.makespan)
        ax.step(t, np.append(self.holding, 0), where="post", label="holding the lock")
        ax.step(
            t,
            np.append(self.waiting, 0),
            where="post",
            label="waiting" + (" (spinning)" if self.spinning else " (sleeping)"),
        )
        ax.set_title(f"{self.era}: {self.cpus} CPUs, {100 * self.waiting_share():.0f}% of CPU time waiting")
        ax.set_xlabel("virtual time (candidate-visits)")
        ax.set_ylabel("CPUs")
        ax.set_ylim(0, self.cpus + 0.5)
        ax.legend(loc="upper right", fontsize="small")
        return ax
