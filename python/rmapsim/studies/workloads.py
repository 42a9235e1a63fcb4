"""Named workloads for studies. Each builds a scenario on a fresh simulator of an era,
measures it, and returns one tidy row (a dict): the parameters, walk cost statistics of
a full rmap walk of every anon page (the candidate-VMA cost the 2010 thread counts),
``page_referenced`` cost, object counts and bytes, write-side totals, and wall time.

All workloads are deterministic for their parameters (and ``seed``).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from typing import Any, Callable, Dict, Iterator, Optional

from .. import PAGE_SIZE, Policy, Simulator
from ..errors import InvalidArgument, short_repr
from ..policy import era_spec

P = PAGE_SIZE


def _positive(name: str, v: Any, minimum: int = 1, maximum: int = 2**64 - 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= maximum:
        raise InvalidArgument(f"workload parameter {name}={short_repr(v)} must be an int from {minimum} to {maximum}")
    return v


_BASE: contextvars.ContextVar[Optional[Simulator]] = contextvars.ContextVar("rmapsim_workload_base", default=None)


@contextlib.contextmanager
def starting_from(base: Simulator) -> Iterator[None]:
    """Inside this block every workload starts from an independent copy of ``base`` (its
    processes, pages and random stream) instead of an empty machine; the era must be
    ``base``'s. :func:`rmapsim.study.sweep` uses it for ``base=``."""
    if not isinstance(base, Simulator):
        raise InvalidArgument(f"base must be a rmapsim.Simulator, got {short_repr(base)}")
    token = _BASE.set(base)
    try:
        yield
    finally:
        _BASE.reset(token)


def _sim(era: Any, seed: int = 0) -> Simulator:
    """A fresh simulator of ``era`` (a preset, an era spec or a Policy: None is not "the
    default era" here), or a copy of the base state of :func:`starting_from`."""
    if not isinstance(era, (str, Policy)):
        raise InvalidArgument(
            f"workload parameter era={short_repr(era)} must be an era name, an era spec or a rmapsim.Policy"
        )
    base = _BASE.get()
    if base is not None:
        if era_spec(era) != base.era:
            raise InvalidArgument(
                f"era {short_repr(era_spec(era))}: the base state is of era {base.era}; a workload "
                "started from it runs in that era"
            )
        return base.clone()
    return Simulator(era=era, seed=seed)


def measure(sim: Simulator, t0: float) -> Dict[str, Any]:
    """The standard measurements of a finished scenario."""
    full = sim.rmap_walk(aggregate=True)  # summaries only: no per-page rows at any scale
    ref = sim.page_referenced(aggregate=True)
    c = sim.counts()
    m = sim.memory()
    w = sim.write_stats()
    row: Dict[str, Any] = {
        "walks": full["walks"],
        "mean_vmas_visited": full["mean"] if full["walks"] else 0.0,
        "p50_vmas_visited": full["p50"] if full["walks"] else 0.0,
        "max_vmas_visited": full["max"],
        "total_vmas_visited": full["total_vmas_visited"],
        "mean_tree_nodes_visited": full["total_tree_nodes_visited"] / full["walks"] if full["walks"] else 0.0,
        "page_referenced_mean": ref["mean"] if ref["walks"] else 0.0,
    }
    row.update({f"n_{k}": v for k, v in c.items()})
    row.update({f"bytes_{k}": v for k, v in m.items()})
    for field in ("anon_vma_alloc", "avc_alloc", "index_insert", "index_remove", "tree_rekey", "lock_acquire"):
        row[f"w_{field}"] = sum(op[field] for op in w.values())
    row["wall_s"] = time.perf_counter() - t0
    return row


def fork_storm(era: str, children: int = 100, pages: int = 100) -> Dict[str, Any]:
    """The seed scenario: a parent maps and writes ``pages`` pages, forks ``children``
    children, each child writes every page."""
    _positive("children", children)
    _positive("pages", pages)
    t0 = time.perf_counter()
    sim = _sim(era)
    p = sim.spawn()
    a = sim.mmap(p, pages * P)
    sim.touch(p, a, pages * P)
    sim.touch_many(sim.fork_many(p, children), a, pages * P)
    return measure(sim, t0)


def fork_chain(era: str, generations: int = 10, pages: int = 16) -> Dict[str, Any]:
    """Fork, the parent exits, the child writes every page; repeated ``generations`` times
    ("Repeated fork() causes SLAB to grow without bound")."""
    _positive("generations", generations)
    _positive("pages", pages)
    t0 = time.perf_counter()
    sim = _sim(era)
    p = sim.spawn()
    a = sim.mmap(p, pages * P)
    sim.touch(p, a, pages * P)
    for _ in range(generations):
        c = sim.fork(p)
        sim.exit(p)
        sim.touch(c, a, pages * P)
        p = c
    row = measure(sim, t0)
    row["chain_len"] = sim.vmas(p)[0]["chain_len"]
    return row


def prefork_server(
    era: str, workers: int = 16, heap_pages: int = 256, cow_percent: int = 25, recycles: int = 2
) -> Dict[str, Any]:
    """A parent with a large heap forks ``workers``; each worker writes ``cow_percent`` %
    of the heap; ``recycles`` times every worker exits and is replaced by a new fork."""
    _positive("workers", workers)
    _positive("heap_pages", heap_pages)
    _positive("recycles", recycles, 0)
    _positive("cow_percent", cow_percent, 0, 100)
    t0 = time.perf_counter()
    sim = _sim(era)
    p = sim.spawn()
    a = sim.mmap(p, heap_pages * P)
    sim.touch(p, a, heap_pages * P)
    cow = heap_pages * cow_percent // 100
    kids = list(sim.fork_many(p, workers))
    for r in range(recycles + 1):
        if cow:
            sim.touch_many(kids, a, cow * P)
        if r < recycles:
            for k in kids:
                sim.exit(int(k))
            kids = list(sim.fork_many(p, workers))
    return measure(sim, t0)


def mprotect_split(era: str, pieces: int = 16, children: int = 8) -> Dict[str, Any]:
    """A region split by mprotect into ``pieces`` single-page VMAs, shared by a family of
    ``children`` + 1 processes: lists visit every piece, interval trees only the covering
    ones."""
    _positive("pieces", pieces)
    _positive("children", children, 0)
    t0 = time.perf_counter()
    sim = _sim(era)
    p = sim.spawn()
    a = sim.mmap(p, pieces * P)
    sim.touch(p, a, pieces * P)
    for i in range(1, pieces, 2):
        sim.mprotect(p, a + i * P, P, "r")
    if children:
        sim.fork_many(p, children)
    return measure(sim, t0)


def aim7_like(
    era: str, processes: int = 200, pages: int = 32, reclaim_every: int = 50, seed: int = 0
) -> Dict[str, Any]:
    """Many processes forking, execing, touching and exiting (AIM7's shape), with a
    ``try_to_unmap`` pass over every anon page each ``reclaim_every`` operations. The
    population is kept near ``processes``."""
    _positive("processes", processes)
    _positive("pages", pages)
    _positive("reclaim_every", reclaim_every)
    _positive("seed", seed, 0)
    t0 = time.perf_counter()
    rng = random.Random(seed)
    sim = _sim(era, seed)
    root = sim.spawn()
    a = sim.mmap(root, pages * P)
    sim.touch(root, a, pages * P)
    live = [root]
    for i in range(processes * 4):
        op = rng.random()
        p = rng.choice(live)
        if op < 0.35 and len(live) < processes:
            live.append(sim.fork(p))
        elif op < 0.5 and len(live) > 1 and p != root:
            sim.exit(p)
            live.remove(p)
        elif op < 0.55 and p != root:
            sim.exec(p)
            sim.mmap(p, pages * P, addr=a)
        else:
            k = rng.randrange(1, pages + 1)
            sim.touch(p, a, k * P, write=rng.random() < 0.7)
        if (i + 1) % reclaim_every == 0:
            sim.try_to_unmap(aggregate=True)
            sim.drop_swap_cache()
    row = measure(sim, t0)
    row["processes_live"] = len(live)
    return row


def mremap_churn(era: str, moves: int = 50, pages: int = 8, children: int = 4) -> Dict[str, Any]:
    """A faulted region shared with ``children`` is moved back and forth by mremap
    ``moves`` times in the parent (copy_vma, chain clones, page-table moves)."""
    _positive("moves", moves)
    _positive("pages", pages)
    _positive("children", children, 0)
    t0 = time.perf_counter()
    sim = _sim(era)
    p = sim.spawn()
    homes = [0x1000_0000, 0x2000_0000]
    sim.mmap(p, pages * P, addr=homes[0])
    sim.touch(p, homes[0], pages * P)
    if children:
        sim.fork_many(p, children)
    for i in range(moves):
        sim.mremap(p, homes[i % 2], pages * P, pages * P, new_addr=homes[(i + 1) % 2])
        sim.touch(p, homes[(i + 1) % 2], P)
    return measure(sim, t0)


WORKLOADS: Dict[str, Callable[..., Dict[str, Any]]] = {
    "fork_storm": fork_storm,
    "fork_chain": fork_chain,
    "prefork_server": prefork_server,
    "mprotect_split": mprotect_split,
    "aim7_like": aim7_like,
    "mremap_churn": mremap_churn,
}


def get(name: str) -> Callable[..., Dict[str, Any]]:
    if not isinstance(name, str) or name not in WORKLOADS:
        raise InvalidArgument(f"unknown workload {short_repr(name)}; workloads: {', '.join(WORKLOADS)}")
    return WORKLOADS[name]
