"""Sweeps: run a workload over a parameter grid and eras, one tidy row per run.

    from rmapsim.study import sweep
    rows = sweep("fork_storm", {"children": [10, 100, 1000], "pages": [100]}, eras=["2.6.33", "6.18"])

Any ``concurrent.futures.Executor`` runs the runs (``executor=ProcessPoolExecutor(2)``);
:func:`dask_executor` gives one on a Dask ``distributed`` cluster (``pip install
'rmapsim[dask]'``). Rows come back in grid order whatever the executor, so a sweep gives
identical rows locally and on a cluster (except ``wall_s``). An interrupted sweep keeps
the rows it finished (``SweepInterrupted.rows``).
"""

from __future__ import annotations

import itertools
import sys
from concurrent.futures import Executor, Future
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from . import eras as all_eras
from . import workloads
from .errors import InvalidArgument


class SweepInterrupted(KeyboardInterrupt):
    """Raised when a sweep is interrupted; ``rows`` holds the finished runs."""

    def __init__(self, rows: List[Dict[str, Any]]) -> None:
        super().__init__(f"sweep interrupted after {len(rows)} runs")
        self.rows = rows


def _run(workload: str, era: str, params: Mapping[str, Any]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"workload": workload, "era": era, **params}
    row.update(workloads.get(workload)(era, **params))
    return row


def grid_points(grid: Mapping[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    keys = list(grid)
    for k in keys:
        if isinstance(grid[k], (str, bytes)) or not isinstance(grid[k], Iterable):
            raise InvalidArgument(f"grid[{k!r}] must be a list of values, got {grid[k]!r}")
    return [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]


def sweep(
    workload: str,
    grid: Mapping[str, Sequence[Any]],
    eras: Optional[Sequence[str]] = None,
    executor: Optional[Executor] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> List[Dict[str, Any]]:
    """One row per (grid point, era), in grid order then era order."""
    fn = workloads.get(workload)
    eras = list(eras) if eras is not None else all_eras()
    known = all_eras()
    for e in eras:
        if e not in known:
            raise InvalidArgument(f"unknown era {e!r}; known eras: {', '.join(known)}")
    points = grid_points(grid)
    import inspect

    accepted = set(inspect.signature(fn).parameters) - {"era"}
    for k in grid:
        if k not in accepted:
            raise InvalidArgument(f"workload {workload} has no parameter {k!r}; parameters: {', '.join(sorted(accepted))}")
    # validate every point quickly on the smallest possible failure: a bad value fails fast
    jobs = [(workload, era, p) for p in points for era in eras]
    rows: List[Optional[Dict[str, Any]]] = [None] * len(jobs)
    done = 0
    try:
        if executor is None:
            for i, job in enumerate(jobs):
                rows[i] = _run(*job)
                done += 1
                if progress:
                    progress(done, len(jobs))
        else:
            futures: List[Future] = [executor.submit(_run, *job) for job in jobs]
            for i, f in enumerate(futures):
                rows[i] = f.result()
                done += 1
                if progress:
                    progress(done, len(jobs))
    except KeyboardInterrupt:
        raise SweepInterrupted([r for r in rows if r is not None]) from None
    return [r for r in rows if r is not None]


def to_pandas(rows: List[Dict[str, Any]]):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.DataFrame(rows)


def dask_executor(address: Optional[str] = None, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """A ``concurrent.futures.Executor`` on a Dask cluster: the scheduler at ``address``,
    or a new ``LocalCluster``. Raises :class:`InvalidArgument` fast when the scheduler
    cannot be reached. Close it with ``.close()`` (closes the client and any cluster)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InvalidArgument("Dask support needs 'distributed': pip install 'rmapsim[dask]'") from None
    cluster = None
    try:
        if address is None:
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster, timeout=timeout)
        else:
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise InvalidArgument(f"cannot reach the Dask scheduler {address!r}: {e}") from None
    ex = client.get_executor()

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    ex.close = close  # type: ignore[attr-defined]
    return ex


def progress_bar(total_hint: int = 0) -> Callable[[int, int], None]:
    """A tqdm progress callback when tqdm is installed and stderr is a terminal, else a
    quiet one."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or not sys.stderr.isatty():
        return lambda done, total: None
    bar = tqdm(total=total_hint or None, unit="run")

    def cb(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return cb
