"""Named workloads for studies. Each builds a scenario on a fresh simulator of an era,
measures it, and returns one tidy row (a dict): the parameters, walk cost statistics of
a full rmap walk of every anon page (the candidate-VMA cost the 2010 thread counts),
``page_referenced`` cost, object counts and bytes, write-side totals, and wall time.
:data:`STANDARD_METRICS` says what each of these columns means and in which unit; a
workload with reclaim adds the ``reclaim_*`` columns of :data:`RECLAIM_METRICS`, measured
on the walks reclaim makes during the run. :func:`metric_label` gives a column's axis
label, :data:`DEFAULT_METRIC` the column a study plots by default.

All workloads are deterministic for their parameters (and ``seed``).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .. import PAGE_SIZE, Policy, Simulator
from ..errors import InvalidArgument, InvariantViolation, short_repr
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


#: The columns :func:`measure` gives every workload's row: name -> (meaning, unit). They
#: describe the state at the end of the run (``walks`` .. ``page_referenced_mean``: one
#: walk per anon page left), the objects it holds, and the write-side work of the run.
STANDARD_METRICS: Dict[str, Tuple[str, str]] = {
    "walks": ("full rmap walks at the end, one per anon page", "walks"),
    "mean_vmas_visited": ("candidate VMAs per rmap walk", "VMAs"),
    "p50_vmas_visited": ("candidate VMAs per rmap walk, median", "VMAs"),
    "max_vmas_visited": ("candidate VMAs of the longest rmap walk", "VMAs"),
    "total_vmas_visited": ("candidate VMAs over all rmap walks", "VMAs"),
    "mean_tree_nodes_visited": ("interval-tree nodes per rmap walk", "nodes"),
    "page_referenced_mean": ("candidate VMAs per page_referenced walk", "VMAs"),
    "n_mm": ("address spaces (mm_struct)", "objects"),
    "n_vma": ("VMAs (vm_area_struct)", "objects"),
    "n_anon_vma": ("anon_vmas", "objects"),
    "n_anon_vma_chain": ("anon_vma_chains", "objects"),
    "n_page": ("anon pages", "pages"),
    "n_pte": ("present page-table entries", "PTEs"),
    "n_swap_slot": ("swap slots in use", "slots"),
    "n_swap_cache": ("pages in the swap cache", "pages"),
    "bytes_vm_area_struct": ("memory in vm_area_structs", "bytes"),
    "bytes_anon_vma": ("memory in anon_vmas", "bytes"),
    "bytes_anon_vma_chain": ("memory in anon_vma_chains", "bytes"),
    "bytes_total": ("memory in rmap objects", "bytes"),
    "w_anon_vma_alloc": ("anon_vma allocations during the run", "allocations"),
    "w_avc_alloc": ("anon_vma_chain allocations during the run", "allocations"),
    "w_index_insert": ("rmap index insertions during the run", "insertions"),
    "w_index_remove": ("rmap index removals during the run", "removals"),
    "w_tree_rekey": ("interval-tree re-keys during the run", "re-keys"),
    "w_lock_acquire": ("write-side rmap lock acquisitions during the run", "acquisitions"),
    "wall_s": ("wall time of the run", "s"),
}


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
    children, each child writes every page.

    Metrics (:data:`STANDARD_METRICS`): ``mean_vmas_visited`` is the 2010 thread's cost,
    candidate VMAs (VMAs) per rmap walk of each of the (children + 1) × pages anon pages
    at the end: children + 1 in 2.6.33, about 2 with anon_vma chains; ``n_anon_vma`` and
    ``n_anon_vma_chain`` (objects) and ``bytes_*`` (bytes) are what the chains cost."""
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
    ("Repeated fork() causes SLAB to grow without bound").

    Metrics: ``n_anon_vma`` (objects) left at the end, generations + 1 without 3.19's
    reuse and 3 with it; ``chain_len`` (entries) of the last child's VMA; the standard
    columns of :data:`STANDARD_METRICS` (walk cost in VMAs per walk of the ``pages`` pages)."""
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
    of the heap; ``recycles`` times every worker exits and is replaced by a new fork.

    Metrics (:data:`STANDARD_METRICS`) describe the state after the last recycle:
    ``mean_vmas_visited`` (VMAs per rmap walk: workers + 1 for a heap page no worker
    wrote, 1 for a worker's copy), ``n_anon_vma``/``n_anon_vma_chain`` (objects) and the
    write-side totals ``w_*`` of the whole run (allocations, insertions, acquisitions)."""
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
    ones.

    Metrics (:data:`STANDARD_METRICS`): ``mean_vmas_visited``/``max_vmas_visited``
    (VMAs per rmap walk of a piece's page: pieces × (children + 1) with a list index,
    children + 1 with the interval tree), ``mean_tree_nodes_visited`` (nodes)."""
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


class ReclaimMeter:
    """The reclaim walks a workload makes during its run, as study metrics.

    One pass (:meth:`pass_`) walks every anon page with ``page_referenced`` (the
    ``folio_referenced`` check reclaim makes before it frees a page) and then with
    ``try_to_unmap`` (every mapping becomes a swap entry), then drops the swap cache, as
    ``shrink_folio_list`` does for the pages it isolated (here: all of them). Each walk
    holds the page's rmap lock (the anon_vma's in 2.6.33/2.6.34, the root's from 2.6.35)
    for the candidates it visits; the hold is counted in candidate-visits, the unit of
    :mod:`rmapsim.contention` (``per_candidate`` = 1).
    """

    def __init__(self) -> None:
        self.passes = 0
        self._visited: Dict[str, List[Any]] = {"page_referenced": [], "try_to_unmap": []}
        self._locks: List[Any] = []
        self._found = 0

    def pass_(self, sim: Simulator) -> None:
        """One reclaim pass over every anon page of ``sim``."""
        for kind in ("page_referenced", "try_to_unmap"):
            st = getattr(sim, kind)()
            self._visited[kind].append(st.vmas_visited)
            self._locks.append((st.lock_id, st.vmas_visited))
            if kind == "try_to_unmap":
                self._found += st.total("mappings_found")
        sim.drop_swap_cache()
        self.passes += 1

    def metrics(self) -> Dict[str, Any]:
        """The ``reclaim_*`` columns (see :data:`RECLAIM_METRICS`)."""
        import numpy as np

        row: Dict[str, Any] = {"reclaim_passes": self.passes}
        for kind, short in (("try_to_unmap", "unmap"), ("page_referenced", "ref")):
            v = np.concatenate(self._visited[kind]) if self._visited[kind] else np.zeros(0, dtype=np.uint64)
            row[f"reclaim_{short}_walks"] = int(len(v))
            row[f"reclaim_{short}_vmas_visited_mean"] = float(v.mean()) if len(v) else 0.0
            row[f"reclaim_{short}_vmas_visited_max"] = int(v.max()) if len(v) else 0
        row["reclaim_unmap_mappings"] = int(self._found)
        hold: Dict[int, int] = {}
        for ids, visited in self._locks:
            uniq, inv = np.unique(ids, return_inverse=True)
            for lock, h in zip(uniq.tolist(), np.bincount(inv, weights=visited).tolist()):
                hold[lock] = hold.get(lock, 0) + int(h)
        row["reclaim_lock_hold"] = sum(hold.values())
        row["reclaim_lock_hold_busiest"] = max(hold.values(), default=0)
        row["reclaim_locks"] = len(hold)
        return row


#: The ``reclaim_*`` columns of a workload with reclaim: name -> (meaning, unit).
RECLAIM_METRICS: Dict[str, Tuple[str, str]] = {
    "reclaim_passes": ("reclaim passes made during the run", "passes"),
    "reclaim_unmap_walks": ("try_to_unmap walks, one per anon page per pass", "walks"),
    "reclaim_unmap_vmas_visited_mean": ("candidate VMAs visited per try_to_unmap walk, mean", "VMAs"),
    "reclaim_unmap_vmas_visited_max": ("candidate VMAs visited by one try_to_unmap walk, max", "VMAs"),
    "reclaim_ref_walks": ("page_referenced walks, one per anon page per pass", "walks"),
    "reclaim_ref_vmas_visited_mean": ("candidate VMAs visited per page_referenced walk, mean", "VMAs"),
    "reclaim_ref_vmas_visited_max": ("candidate VMAs visited by one page_referenced walk, max", "VMAs"),
    "reclaim_unmap_mappings": ("mappings try_to_unmap turned into swap entries", "mappings"),
    "reclaim_lock_hold": ("rmap lock hold of all reclaim walks", "candidate-visits"),
    "reclaim_lock_hold_busiest": ("rmap lock hold on the busiest lock", "candidate-visits"),
    "reclaim_locks": ("distinct rmap locks the reclaim walks took", "locks"),
}


def aim7_like(
    era: str, processes: int = 200, pages: int = 32, reclaim_every: int = 50, seed: int = 0
) -> Dict[str, Any]:
    """Many processes forking, execing, touching and exiting (AIM7's shape) with reclaim:
    ``processes`` × 4 operations drawn at random (``seed``), the population kept near
    ``processes``, and a reclaim pass (:class:`ReclaimMeter`) before every
    ``reclaim_every``-th operation, so the run ends with ``reclaim_every`` - 1
    operations after its last pass and the end-state walk finds pages.

    Metrics: the ``reclaim_*`` columns measure the walks reclaim made during the run
    (:data:`RECLAIM_METRICS`: walks, candidate VMAs per ``try_to_unmap`` and per
    ``page_referenced`` walk, lock hold in candidate-visits, locks taken); the standard
    columns of :func:`measure` describe the state at the end (``mean_vmas_visited``:
    candidate VMAs per full rmap walk of each anon page left); ``processes_live``. If the
    era's own bug trips an invariant (2.6.34-rc1's use-after-free of an anon_vma), the
    run stops there like the kernel would oops: ``crash`` names the violation and the
    operation, the ``reclaim_*`` columns cover the walks before it, and the end-state
    columns are NaN. ``crash`` is empty otherwise."""
    _positive("processes", processes)
    _positive("pages", pages)
    _positive("reclaim_every", reclaim_every)
    _positive("seed", seed, 0)
    t0 = time.perf_counter()
    rng = random.Random(seed)
    sim = _sim(era, seed)
    meter = ReclaimMeter()
    root = sim.spawn()
    a = sim.mmap(root, pages * P)
    sim.touch(root, a, pages * P)
    live = [root]
    crash, where = "", ""
    try:
        for i in range(processes * 4):
            if i and i % reclaim_every == 0:
                where = f"the reclaim pass before operation {i}"
                meter.pass_(sim)
            where = f"operation {i}"
            _aim7_step(sim, rng, live, root, a, pages, processes)
        where = "the end-state walk"
        row = measure(sim, t0)
    except InvariantViolation as e:
        crash = f"{e} (in {where} of the run)"
        row = {k: float("nan") for k in STANDARD_METRICS}
    row.update(meter.metrics())
    row["processes_live"] = len(live)
    row["crash"] = crash
    row["wall_s"] = time.perf_counter() - t0
    return row


def _aim7_step(sim: Simulator, rng: random.Random, live: List[int], root: int, a: int, pages: int, cap: int) -> None:
    """One random operation of :func:`aim7_like`."""
    op = rng.random()
    p = rng.choice(live)
    if op < 0.35 and len(live) < cap:
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


def mremap_churn(era: str, moves: int = 50, pages: int = 8, children: int = 4) -> Dict[str, Any]:
    """A faulted region shared with ``children`` is moved back and forth by mremap
    ``moves`` times in the parent (copy_vma, chain clones, page-table moves).

    Metrics (:data:`STANDARD_METRICS`): the walk cost at the end (VMAs per rmap walk),
    the objects left (``n_*``, objects) and the write-side work of the moves (``w_*``:
    chain allocations, index insertions and removals, tree re-keys)."""
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


#: Columns some workloads add: name -> (meaning, unit).
EXTRA_METRICS: Dict[str, Tuple[str, str]] = {
    "chain_len": ("anon_vma_chain entries of the newest VMA", "entries"),
    "processes_live": ("processes alive at the end", "processes"),
}

#: The parameters of the workloads: name -> (meaning, unit).
PARAMETERS: Dict[str, Tuple[str, str]] = {
    "children": ("children forked", "processes"),
    "pages": ("pages mapped", "pages"),
    "generations": ("fork generations", ""),
    "workers": ("workers", "processes"),
    "heap_pages": ("heap size", "pages"),
    "cow_percent": ("heap written by each worker", "%"),
    "recycles": ("worker recycles", ""),
    "pieces": ("mprotect pieces", "VMAs"),
    "processes": ("process population", "processes"),
    "reclaim_every": ("operations between reclaim passes", "operations"),
    "seed": ("random seed", ""),
    "moves": ("mremap moves", ""),
}

#: The metric (or metrics, one panel each) a study plots when ``--y`` is not given.
DEFAULT_METRIC: Dict[str, Tuple[str, ...]] = {
    "fork_storm": ("mean_vmas_visited",),
    "fork_chain": ("n_anon_vma",),
    "prefork_server": ("mean_vmas_visited",),
    "mprotect_split": ("mean_vmas_visited",),
    "aim7_like": ("reclaim_unmap_vmas_visited_mean", "reclaim_lock_hold_busiest", "reclaim_unmap_walks"),
    "mremap_churn": ("mean_vmas_visited",),
}


def metric_label(name: str) -> str:
    """A human axis label with its unit for a study column (a metric, a parameter or a
    knob), e.g. ``"candidate VMAs per rmap walk (VMAs)"``; an unknown column is returned
    as it is."""
    if not isinstance(name, str):
        raise InvalidArgument(f"metric name must be a str, got {short_repr(name)}")
    if name.startswith("knob:"):
        return f"knob {name[5:]}"
    for table in (STANDARD_METRICS, RECLAIM_METRICS, EXTRA_METRICS, PARAMETERS):
        if name in table:
            meaning, unit = table[name]
            return f"{meaning} ({unit})" if unit else meaning
    return name


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
