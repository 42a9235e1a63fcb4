"""Sweeps: run a workload over a parameter grid and eras, one tidy row per run.

    from rmapsim.study import sweep
    rows = sweep("fork_storm", {"children": [10, 100, 1000], "pages": [100]}, eras=["2.6.33", "6.18"])

Any ``concurrent.futures.Executor`` runs the runs (``executor=ProcessPoolExecutor(2)``);
:func:`~rmapsim.cluster.dask_executor` gives one on a Dask ``distributed`` cluster (``pip
install 'rmapsim[dask]'``). Runs finish in any order (progress counts them as they
complete; by default a ``tqdm.auto`` bar with an ETA, a widget in Jupyter, shows them and
the native call in progress, see :mod:`rmapsim._progress`) but rows come back in grid
order whatever the executor, so a sweep gives
identical rows locally and on a cluster (except ``wall_s``). ``base=sim`` starts every run
from a copy of a built state, sent to each worker once. An interrupted sweep keeps the
rows it finished (``SweepInterrupted.rows``).
"""

from __future__ import annotations

import itertools
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .. import Simulator, _progress
from .. import eras as all_eras
from ..errors import InvalidArgument, short_repr
from ..policy import Policy, era_spec, knobs
from ..policy import _text as _knob_text
from . import workloads
from .cluster import dask_executor  # noqa: F401 (part of this module's API since 0.1)

if TYPE_CHECKING:
    import pandas as pd


class SweepInterrupted(KeyboardInterrupt):
    """Raised when a sweep is interrupted; ``rows`` holds the finished runs."""

    def __init__(self, rows: List[Dict[str, Any]]) -> None:
        super().__init__(f"sweep interrupted after {len(rows)} runs")
        self.rows = rows


#: Grid keys of this form sweep a policy knob (``"knob:fork_reuse": ["never", "active_vmas"]``).
KNOB_PREFIX = "knob:"


#: Base states this process has decoded, by (length, checksum): a worker decodes a base
#: once and copies it for each run.
_BASES: Dict[Tuple[int, bytes], Simulator] = {}


def _base_state(snapshot: bytes) -> Simulator:
    key = (len(snapshot), bytes(snapshot[-8:]))
    sim = _BASES.get(key)
    if sim is None:
        _BASES.clear()  # one base at a time: a worker keeps no stale states
        sim = _BASES[key] = Simulator.from_bytes(snapshot)
    return sim


def _run(
    workload: str,
    era: str,
    params: Mapping[str, Any],
    spec: Optional[str] = None,
    knob_values: Optional[Mapping[str, str]] = None,
    base: Optional[bytes] = None,
) -> Dict[str, Any]:
    """One run: the row holds the workload, the era as given, the spec run (the era with
    the swept knobs applied), each swept knob's value, the parameters and the results.
    ``base``: a snapshot every run starts from (a copy of it)."""
    spec = spec or era
    row: Dict[str, Any] = {"workload": workload, "era": era, "spec": spec, **(knob_values or {}), **params}
    if base is None:
        row.update(workloads.get(workload)(spec, **params))
        return row
    state = _base_state(base)
    row["base_operations"] = state.operations()
    with workloads.starting_from(state):
        row.update(workloads.get(workload)(spec, **params))
    return row


def _split_grid(grid: Mapping[str, Sequence[Any]]) -> tuple[Dict[str, Sequence[Any]], Dict[str, List[str]]]:
    """(workload parameters, {knob: values}) of a grid whose ``knob:NAME`` keys sweep knobs."""
    params: Dict[str, Sequence[Any]] = {}
    knob_grid: Dict[str, List[str]] = {}
    names = {k.name for k in knobs()}
    for k, vs in grid.items():
        if isinstance(k, str) and k.startswith(KNOB_PREFIX):
            name = k[len(KNOB_PREFIX) :]
            if name not in names:
                raise InvalidArgument(
                    f"grid key {short_repr(k)}: unknown knob {short_repr(name)} (`rmapsim eras --knobs` lists them)"
                )
            if isinstance(vs, (str, bytes, Mapping)) or not isinstance(vs, Iterable):
                raise InvalidArgument(f"grid[{short_repr(k)}] must be a list of values, got {short_repr(vs)}")
            knob_grid[name] = [_knob_text(name, v) for v in vs]
        else:
            params[k] = vs
    return params, knob_grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    if not isinstance(grid, Mapping):
        raise InvalidArgument(f"grid must be a dict of parameter lists, got {short_repr(grid)}")
    keys = list(grid)
    for k in keys:
        if not isinstance(k, str):
            raise InvalidArgument(f"grid keys must be parameter names, got {short_repr(k)}")
        if isinstance(grid[k], (str, bytes, Mapping)) or not isinstance(grid[k], Iterable):
            raise InvalidArgument(f"grid[{short_repr(k)}] must be a list of values, got {short_repr(grid[k])}")
    return [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]


def sweep(
    workload: str,
    grid: Mapping[str, Sequence[Any]],
    eras: Optional[Sequence[str]] = None,
    executor: Optional[Executor] = None,
    progress: Union[bool, None, Callable[[int, int], None]] = True,
    base: Optional[Simulator] = None,
) -> List[Dict[str, Any]]:
    """One row per (grid point, era, knob values), in grid order, then era order, then
    knob-value order. ``eras`` holds presets, era specs (``"6.0+fork_reuse=never"``) or
    :class:`~rmapsim.Policy` objects. A grid key ``"knob:NAME"`` sweeps that policy knob
    over its values, crossed with the eras. Each row has ``era`` (as given, canonical),
    ``spec`` (the variant that ran: the era with the swept knobs applied) and a column per
    swept knob holding its value.

    ``progress``: ``True`` (the default) shows a bar over the runs with an ETA (a widget
    in Jupyter; off everywhere with ``rmapsim._progress.set_enabled(False)``), naming the
    run in progress and its native call's progress; ``False`` or ``None`` shows nothing; a
    callable is called as ``progress(done, total)`` as each run completes.

    ``base`` (a :class:`~rmapsim.Simulator`) starts every run from an independent copy of
    that built state instead of an empty machine, in the base's era (``eras`` defaults to
    it and may hold nothing else; knob grids are refused). The state is snapshotted once
    and sent to each worker once (a Dask executor scatters it to every worker); rows get a
    ``base_operations`` column."""
    fn = workloads.get(workload)
    snapshot: Optional[bytes] = None
    if base is not None:
        if not isinstance(base, Simulator):
            raise InvalidArgument(f"base must be a rmapsim.Simulator or None, got {short_repr(base)}")
        if eras is None:
            eras = [base.era]
    if eras is None:
        eras = all_eras()
    elif isinstance(eras, (str, bytes, Mapping)) or not isinstance(eras, Iterable):
        raise InvalidArgument(f"eras must be a list of era names, got {short_repr(eras)}")
    specs = []
    for e in eras:  # presets, era specs or Policy objects, as canonical specs
        try:
            specs.append(era_spec(e))
        except InvalidArgument as err:
            raise InvalidArgument(f"eras: {err}") from None
    eras = specs
    if base is not None:
        other = [e for e in eras if e != base.era]
        if other:
            raise InvalidArgument(
                f"eras: a sweep from a base state runs in the base's era {base.era}, not {short_repr(other[0])}"
            )
        if isinstance(grid, Mapping) and any(isinstance(k, str) and k.startswith(KNOB_PREFIX) for k in grid):
            raise InvalidArgument("grid: knob grids change the era; a sweep from a base state runs in the base's era")
        snapshot = base.to_bytes()
    if executor is not None and not isinstance(executor, Executor):
        raise InvalidArgument(f"executor must be a concurrent.futures.Executor or None, got {short_repr(executor)}")
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise InvalidArgument(f"progress must be True, False, None or a callable, got {short_repr(progress)}")
    grid, knob_grid = _split_grid(grid) if isinstance(grid, Mapping) else (grid, {})
    points = grid_points(grid)
    import inspect

    accepted = set(inspect.signature(fn).parameters) - {"era"}
    for k in grid:
        if k not in accepted:
            raise InvalidArgument(
                f"workload {workload} has no parameter {short_repr(k)}; parameters: {', '.join(sorted(accepted))}"
            )
    # validate every point quickly on the smallest possible failure: a bad value fails fast
    # Every era crossed with every combination of swept knob values, as canonical specs
    # (a bad knob value fails here, before anything runs).
    variants = []
    for era in eras:
        for kv in grid_points(knob_grid):
            try:
                spec = str(Policy.parse(era).replace(**kv)) if kv else era
            except InvalidArgument as err:
                raise InvalidArgument(f"grid: {err}") from None
            variants.append((era, spec, kv))
    base_ref: Any = snapshot
    client = getattr(executor, "client", None)
    if snapshot is not None and client is not None and hasattr(client, "scatter"):
        base_ref = client.scatter(snapshot, broadcast=True)  # once per worker, not once per run
    jobs = [(workload, era, p, spec, kv, base_ref) for p in points for era, spec, kv in variants]
    rows: List[Optional[Dict[str, Any]]] = [None] * len(jobs)
    runs = _progress.Runs(len(jobs), workload) if progress is True and _progress.enabled() else None
    report = progress if callable(progress) else None
    futures: Dict[Future[Dict[str, Any]], int] = {}
    try:
        if executor is None:
            _run_here(jobs, rows, runs, report)
        else:
            futures = {executor.submit(_run_silenced, *job): i for i, job in enumerate(jobs)}
            _collect(futures, [_label(j) for j in jobs], rows, runs, report)
    except KeyboardInterrupt:
        for f in futures:
            f.cancel()
        raise SweepInterrupted([r for r in rows if r is not None]) from None
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    finally:
        if runs is not None:
            runs.close()
    return [r for r in rows if r is not None]


def _run_here(
    jobs: List[Tuple[Any, ...]],
    rows: List[Optional[Dict[str, Any]]],
    runs: Optional[_progress.Runs],
    report: Optional[Callable[[int, int], None]],
) -> None:
    """Run the jobs in this process, in order, filling ``rows``; the bar names each run and
    shows its native calls' progress."""
    for i, job in enumerate(jobs):
        if runs is None:
            with _progress.silenced():  # a sweep's progress is all or nothing
                rows[i] = _run(*job)
        else:
            runs.start(_label(job))
            with runs.running():
                rows[i] = _run(*job)
            runs.done(i + 1)
        if report:
            report(i + 1, len(jobs))


def _run_silenced(*job: Any) -> Dict[str, Any]:
    """:func:`_run` on a worker: its native calls draw no bars (workers share the
    terminal, or write to a cluster's logs); the sweep's bar names the runs going."""
    with _progress.silenced():
        return _run(*job)


def _label(job: Tuple[Any, ...]) -> str:
    """A run's name in the progress bar: its spec and parameters."""
    _, _, params, spec, _, _ = job
    return " ".join([str(spec), *(f"{k}={v}" for k, v in params.items())])


def _collect(
    futures: Dict[Future[Dict[str, Any]], int],
    labels: List[str],
    rows: List[Optional[Dict[str, Any]]],
    runs: Optional[_progress.Runs],
    report: Optional[Callable[[int, int], None]],
) -> None:
    """Take the runs of an executor as they complete; the bar (its elapsed time and the
    runs being run) is redrawn every half second meanwhile."""
    pending, done = set(futures), 0
    while pending:
        finished, pending = wait(pending, timeout=0.5 if runs else None, return_when=FIRST_COMPLETED)
        for f in finished:
            rows[futures[f]] = f.result()
            done += 1
            if report:
                report(done, len(futures))
        if runs is not None:
            runs.done(done)
            going = [labels[futures[f]] for f in pending if f.running()]
            more = f" and {len(going) - 2} more" if len(going) > 2 else ""
            runs.tick(f"running {', '.join(going[:2])}{more}" if going else f"{len(pending)} queued" if pending else "")


def to_pandas(rows: List[Dict[str, Any]]) -> pd.DataFrame:
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise InvalidArgument(f"rows must be a list of dicts (sweep rows), got {short_repr(rows)}")
    import pandas as pd

    return pd.DataFrame(rows)


def progress_bar(total_hint: int = 0) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback drawing a ``tqdm.auto`` bar over the runs (a
    quiet one while progress is off, see :mod:`rmapsim._progress`). ``sweep`` draws its
    own by default (``progress=True``)."""
    if isinstance(total_hint, bool) or not isinstance(total_hint, int) or total_hint < 0:
        raise InvalidArgument(f"total_hint must be an int >= 0, got {short_repr(total_hint)}")
    if not _progress.enabled():
        return lambda done, total: None
    bar = _progress.bar(total_hint, "sweep", "run")

    def cb(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return cb
