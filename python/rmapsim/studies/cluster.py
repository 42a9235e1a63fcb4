"""Dask ``distributed`` clusters for sweeps (``pip install 'rmapsim[dask]'``).

from rmapsim.cluster import dask_executor
from rmapsim.study import sweep

if __name__ == "__main__":   # a LocalCluster with processes starts workers by spawning
    ex = dask_executor()     # a LocalCluster: 2 worker processes, dashboard on
    try:
        rows = sweep("fork_storm", {"children": [10, 100]}, eras=["2.6.33", "6.18"], executor=ex)
    finally:
        ex.close()
"""

from __future__ import annotations

import sys
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, TypeVar

from ..errors import InvalidArgument, short_repr

if TYPE_CHECKING:
    from distributed import Client
    from typing_extensions import ParamSpec

    P = ParamSpec("P")
T = TypeVar("T")

#: What :func:`dask_executor` gives ``LocalCluster`` unless ``cluster_kwargs`` say otherwise:
#: two single-threaded worker processes (the GIL is released in walks, but a sweep's runs
#: are independent processes' worth of work) and Dask's default dashboard port.
LOCAL_DEFAULTS = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": ":8787"}


class DaskExecutor(Executor):
    """What :func:`dask_executor` returns: a ``concurrent.futures.Executor`` whose runs go to
    a Dask cluster (``submit`` and ``map`` are the client executor's), with the ``client``,
    the ``dashboard_link`` (None when the dashboard is off) and ``close()``, which closes
    what :func:`dask_executor` opened (``shutdown`` only stops taking work, as for any
    executor)."""

    def __init__(
        self, inner: Executor, client: Client, dashboard_link: Optional[str], close: Callable[[], None]
    ) -> None:
        self._inner = inner
        self.client = client
        self.dashboard_link = dashboard_link
        self._close = close

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._inner.submit(fn, *args, **kwargs)

    def map(
        self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: Optional[float] = None, chunksize: int = 1
    ) -> Iterator[T]:
        return self._inner.map(fn, *iterables, timeout=timeout)  # chunksize: Dask batches by itself

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            raise InvalidArgument("cancel_futures=True: Dask's client executor cannot cancel the runs it queued")
        self._inner.shutdown(wait=wait)

    def close(self) -> None:
        self._close()


def dask_executor(
    client: Any = None, address: Optional[str] = None, timeout: float = 10.0, quiet: bool = False, **cluster_kwargs: Any
) -> DaskExecutor:
    """A ``concurrent.futures.Executor`` on a Dask cluster, for
    :func:`rmapsim.study.sweep`'s ``executor``:

    * ``client``: an existing ``distributed.Client`` (left open by ``close()``), or a
      scheduler address string (the same as ``address``);
    * ``address``: the scheduler at that address (``"tcp://host:8786"``);
    * neither: a new ``LocalCluster(**LOCAL_DEFAULTS, **cluster_kwargs)``.

    The dashboard address is printed on standard error (unless ``quiet``) and kept as
    ``executor.dashboard_link``; ``executor.client`` is the client. A scheduler that cannot
    be reached within ``timeout`` seconds, or a bad argument, raises
    :class:`InvalidArgument`. ``executor.close()`` closes what this call opened."""
    if isinstance(client, str):  # dask_executor("tcp://host:8786"), as Client("tcp://...") reads
        client, address = None, (client if address is None else _both())
    if client is not None and address is not None:
        _both()
    if address is not None and not isinstance(address, str):
        raise InvalidArgument(f"address must be a scheduler address string or None, got {short_repr(address)}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise InvalidArgument(f"timeout must be a number of seconds > 0, got {short_repr(timeout)}")
    if cluster_kwargs and (client is not None or address is not None):
        raise InvalidArgument(
            f"cluster_kwargs {sorted(cluster_kwargs)} apply to a new LocalCluster only, "
            "not to a given client or address"
        )
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InvalidArgument("Dask support needs 'distributed': pip install 'rmapsim[dask]'") from None
    if client is not None and not isinstance(client, Client):
        raise InvalidArgument(f"client must be a distributed.Client or None, got {short_repr(client)}")
    cluster = None
    own_client = client is None
    try:
        if client is None and address is None:
            try:
                cluster = LocalCluster(**{**LOCAL_DEFAULTS, **cluster_kwargs})
            except Exception as e:  # LocalCluster passes unknown kwargs on to each worker
                raise InvalidArgument(
                    f"cluster_kwargs {sorted(cluster_kwargs)}: the LocalCluster did not start: {_root_cause(e)}"
                ) from None
            client = Client(cluster, timeout=timeout)
        elif client is None:
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise InvalidArgument(f"cannot reach the Dask scheduler {address!r}: {e}") from None
    link = getattr(client, "dashboard_link", None)
    if not quiet:
        where = cluster and "LocalCluster" or client.scheduler.address
        print(
            f"rmapsim: Dask {where}, {len(client.scheduler_info().get('workers', {}))} workers; "
            f"dashboard: {link or 'off (install bokeh>=3.1 for it)'}",
            file=sys.stderr,
        )

    def close() -> None:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()

    return DaskExecutor(client.get_executor(), client, link, close)


def _root_cause(e: BaseException) -> str:
    """The innermost exception's text (Dask wraps a worker's start-up error)."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return f"{type(e).__name__}: {e}"


def _both() -> Any:
    raise InvalidArgument("give client or address, not both")
