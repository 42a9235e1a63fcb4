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

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

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
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
        return ax

    def binned(self, edges: np.ndarray, what: str = "waiting") -> np.ndarray:
        """The time-weighted mean number of CPUs ``what`` (``"holding"`` or ``"waiting"``)
        in each interval between consecutive ``edges`` (virtual time): exact, from the
        step function's integral."""
        steps = np.asarray(getattr(self, what), dtype=float)
        t = np.append(self.time, self.makespan).astype(float)
        area = np.concatenate(([0.0], np.cumsum(steps * np.diff(t))))
        at = np.interp(edges, t, area)  # the integral is linear between events
        width = np.diff(edges)
        return np.divide(np.diff(at), width, out=np.zeros(len(width)), where=width > 0)

    def same_timeline(self, other: ContentionResult) -> bool:
        """Whether ``other`` has the same CPUs holding and waiting at every instant."""
        return (
            self.cpus == other.cpus
            and self.makespan == other.makespan
            and np.array_equal(self.time, other.time)
            and np.array_equal(self.holding, other.holding)
            and np.array_equal(self.waiting, other.waiting)
        )


#: Time bins of :func:`plot_results`'s panels (each shows the mean CPUs per bin).
BINS = 240

#: ``plot_results(time_scale=...)`` values.
TIME_SCALES = ("log", "linear")


def plot_results(
    results: Sequence[ContentionResult],
    *,
    time_scale: str = "log",
    title: Optional[str] = None,
    xlabel: Optional[str] = None,
    ylabel: Optional[str] = None,
    ncols: int = 2,
) -> Any:
    """Small multiples of several replays (one per era) sharing the time and CPU axes:
    CPUs holding a lock and CPUs waiting, stacked, over virtual time. Replays with the
    same timeline share one panel whose title names all their eras. Each panel shows the
    time-weighted mean over :data:`BINS` time bins (:meth:`ContentionResult.binned`), so
    a timeline switching every few units reads as its average, not as aliasing.
    ``time_scale="log"`` (the default) shows runs that differ 100-fold on one axis; the
    first bin, from 0, is drawn from 1. The legend sits above the panels. Returns the
    matplotlib Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .errors import InvalidArgument, short_repr

    if not isinstance(results, Sequence) or not results or not all(isinstance(r, ContentionResult) for r in results):
        raise InvalidArgument(f"results must be a non-empty list of ContentionResult, got {short_repr(results)}")
    if time_scale not in TIME_SCALES:
        raise InvalidArgument(f"time_scale={short_repr(time_scale)} must be one of {', '.join(TIME_SCALES)}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or not 1 <= ncols <= 6:
        raise InvalidArgument(f"ncols={short_repr(ncols)} must be an int from 1 to 6")
    groups: List[List[ContentionResult]] = []
    for r in results:
        for g in groups:
            # one panel per timeline and lock: equal timelines under a spinlock and a mutex
            # are not the same picture (the waiters spin in one, sleep in the other)
            if g[0].same_timeline(r) and (g[0].lock, g[0].spinning) == (r.lock, r.spinning):
                g.append(r)
                break
        else:
            groups.append([r])
    ncols = min(ncols, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 2.1 * nrows + 0.9), sharex=True, sharey=True, squeeze=False
    )
    flat = [a for row in axes for a in row]
    cpus = max(r.cpus for r in results)
    end = max(r.makespan for r in results)
    edges = (
        np.concatenate(([0.0], np.geomspace(1.0, max(end, 2), BINS)))
        if time_scale == "log"
        else np.linspace(0.0, max(end, 1), BINS + 1)
    )
    for g, ax in zip(groups, flat):
        r = g[0]
        keep = edges <= r.makespan
        e = np.append(edges[keep], r.makespan) if edges[keep][-1] < r.makespan else edges[keep]
        hold, wait = r.binned(e, "holding"), r.binned(e, "waiting")
        x = np.maximum(e, 1.0) if time_scale == "log" else e
        ax.stairs(hold, x, fill=True, color="tab:blue", alpha=0.85, label="holding the lock")
        ax.stairs(hold + wait, x, baseline=hold, fill=True, color="tab:red", alpha=0.55, label="waiting for it")
        eras = ", ".join(x.era for x in g)
        ax.set_title(
            f"{eras}{' (identical)' if len(g) > 1 else ''}\n{r.lock or ''} "
            f"{'spinning' if r.spinning else 'sleeping'}: {100 * r.waiting_share():.0f}% of CPU time waiting",
            fontsize="small",
        )
        ax.axvline(max(r.makespan, 1), color="0.3", lw=0.8, ls=":")
        ax.grid(True, alpha=0.3)
    for ax in flat[len(groups) :]:
        ax.set_visible(False)
    ax0 = flat[0]
    ax0.set_xscale(time_scale)
    ax0.set_ylim(0, cpus + 0.5)
    ax0.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    for i, ax in enumerate(flat[: len(groups)]):
        if i % ncols == 0:
            ax.set_ylabel(ylabel or "CPUs (mean per bin)")
        if i >= len(groups) - ncols:
            ax.set_xlabel(xlabel or f"virtual time (candidate-visits{', log' if time_scale == 'log' else ''})")
            ax.tick_params(labelbottom=True)
    handles, labels = ax0.get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="0.3", lw=0.8, ls=":"))
    labels.append("makespan")
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.0 - 0.35 / fig.get_figheight()),
        ncol=3,
        frameon=False,
        fontsize="small",
    )
    p = results[0].params
    fig.suptitle(
        title
        or f"page_referenced walks on {cpus} simulated CPUs (outside = {p.get('outside', '?')}, "
        f"writer_every = {p.get('writer_every', '?')})",
        y=1.0 - 0.08 / fig.get_figheight(),
    )
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.5 / fig.get_figheight()))
    fig._rmapsim_panels = [[x.era for x in g] for g in groups]
    return fig
