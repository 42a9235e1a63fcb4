"""The types of the values rmapsim takes and returns, for type checkers (the package ships
``py.typed``; ``mypy --strict`` passes on every code block of README.md and docs/).

``Prot`` and ``Advice`` list every string the simulator accepts for ``prot`` and ``advice``
(the same lists as ``rmapsim._core.PROT_NAMES`` / ``ADVICE_NAMES``, which the runtime's
parser is built from; tests/api/test_types.py keeps the three equal). The ``TypedDict`` s are
the dicts the queries return, key for key; at run time they are plain dicts.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict

#: A protection: ``""`` / ``"none"`` (``PROT_NONE``), the letters of ``"rwx"`` in any order
#: without repeats, or the three-column form of ``/proc/PID/maps`` (``"r-x"``).
Prot = Literal[
    "",
    "none",
    "r",
    "w",
    "x",
    "rw",
    "wr",
    "rx",
    "xr",
    "wx",
    "xw",
    "rwx",
    "rxw",
    "wrx",
    "wxr",
    "xrw",
    "xwr",
    "---",
    "r--",
    "-w-",
    "--x",
    "rw-",
    "r-x",
    "-wx",
]

#: An ``madvise`` advice (``MADV_*`` in lower case, without the prefix). Some are refused with
#: ``InvalidArgument`` (EINVAL) in eras older than the feature: see ``Simulator.madvise``.
Advice = Literal[
    "normal",
    "random",
    "sequential",
    "dontneed",
    "dontfork",
    "dofork",
    "wipeonfork",
    "keeponfork",
    "pageout",
    "hugepage",
    "nohugepage",
    "dontdump",
    "dodump",
    "free",
    "mergeable",
    "unmergeable",
]

#: What a walk's rows came from (``ScanStats.kind``, the aggregate summary's ``"kind"``).
WalkKind = Literal["rmap_walk", "page_referenced", "try_to_unmap"]


class WalkSummary(TypedDict):
    """``ScanStats.summary()``: the walk count, the distribution of ``vmas_visited``
    (``mean``, ``p50``, ``p99``: NaN for no walk; ``max``: 0 then) and column totals."""

    walks: int
    mean: float
    p50: float
    p99: float
    max: int
    total_vmas_visited: int
    total_ptes_checked: int
    total_mappings_found: int
    total_mapcount: int


class AggregateSummary(WalkSummary):
    """A walk with ``aggregate=True``: :class:`WalkSummary`'s keys (the same values the rows
    would give) plus two more totals, the ``vmas_visited`` histogram ``{value: walks}`` and
    the walk's kind."""

    total_vmas_in_range: int
    total_tree_nodes_visited: int
    histogram: Dict[int, int]
    kind: WalkKind


class Counts(TypedDict):
    """``Simulator.counts()``: live objects of each kind; ``pte`` counts populated entries
    (zero-page and swap entries included), ``swap_slot`` swap slots in use, ``swap_cache``
    pages in the swap cache."""

    mm: int
    vma: int
    anon_vma: int
    anon_vma_chain: int
    page: int
    pte: int
    swap_slot: int
    swap_cache: int


class Memory(TypedDict):
    """``Simulator.memory()``: bytes of the live kernel objects at the era's struct sizes."""

    vm_area_struct: int
    anon_vma: int
    anon_vma_chain: int
    total: int


class VmaInfo(TypedDict):
    """One VMA of ``Simulator.vmas(pid)``, in address order: ``[start, end)`` in bytes,
    ``pgoff`` in pages, ``prot`` without dashes (``"rw"``, ``""``), the anon_vma handle (None
    before the first write fault), the length of its anon_vma_chain, the names of its
    madvise/mlock/KSM flags (``"account"``, ``"dontcopy"``, ``"locked"``, …) and the file
    identity (None: anonymous)."""

    start: int
    end: int
    pgoff: int
    prot: str
    anon_vma: Optional[int]
    chain_len: int
    flags: List[str]
    file: Optional[int]


class PageInfo(TypedDict):
    """``Simulator.page_info(page)``: the page's anon_vma (``page->mapping``) and index,
    its mapcount, its swap slot (None: not in the swap cache), and its ``MADV_FREE`` state
    (``lazyfree``; ``dirty`` is PG_dirty)."""

    anon_vma: int
    index: int
    mapcount: int
    swap_slot: Optional[int]
    lazyfree: bool
    dirty: bool


class KindUsage(TypedDict):
    """One object kind of ``Simulator.memory_usage()`` (bytes of the simulator's own memory)."""

    live: int
    slot_bytes: int
    slots: int
    bytes: int
    capacity_bytes: int


class UsageTotal(TypedDict):
    bytes: int
    capacity_bytes: int


class MemoryUsage(TypedDict):
    """``Simulator.memory_usage()``: per object kind, then the sums and bytes per populated PTE
    (NaN with none)."""

    mm: KindUsage
    vma: KindUsage
    anon_vma: KindUsage
    anon_vma_chain: KindUsage
    page: KindUsage
    pte: KindUsage
    swap_slot: KindUsage
    total: UsageTotal
    bytes_per_pte: float


class ContentionSummary(TypedDict):
    """``ContentionResult.summary()``: times in the model's units (candidate-visits), shares
    of all CPU time (0 to 1)."""

    era: str
    cpus: int
    makespan: int
    waiting_share: float
    mean_waiting_cpus: float
    spinning_share: float
    sleeping_share: float
    locks: int
    busiest_lock_wait: int


__all__ = [
    "Prot",
    "Advice",
    "WalkKind",
    "WalkSummary",
    "AggregateSummary",
    "Counts",
    "Memory",
    "VmaInfo",
    "PageInfo",
    "KindUsage",
    "UsageTotal",
    "MemoryUsage",
    "ContentionSummary",
]
