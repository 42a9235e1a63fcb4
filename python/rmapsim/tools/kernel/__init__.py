"""Ground truth from the live kernel: ``rmapsim validate-kernel``.

Runs small scenarios for real with a static driver program (``kdriver/kdriver.c``), counts
the slab allocations and frees of ``anon_vma``, ``anon_vma_chain`` and ``vm_area_struct``
the kernel made for the driver's whole process tree, and compares them with what the
simulator predicts for the same operation sequence (the driver's own mappings included).

How the kernel side is counted: one ``perf_event_open`` counter per (tracepoint, cache) on
the driver's pid with ``inherit`` set, so every process the driver forks is counted and
nothing else on the machine is. The tracepoints are ``kmem:kmem_cache_alloc`` and
``kmem:kmem_cache_free`` with a kernel event filter: ``name == "anon_vma"`` /
``name == "vm_area_struct"`` for the caches of their own, and for ``anon_vma_chain``, whose
cache SLUB merges with other 64-byte objects, the ``call_site`` range of the anon_vma code in
``mm/rmap.c`` (from ``/proc/kallsyms``), excluding the anon_vma allocations made there.

Frees at exit: whether the counters see the frees ``exit_mmap`` makes depends on the order
of ``do_exit`` (since 2025, Linux 6.17/6.18, ``perf_event_exit_task`` runs *before*
``exit_mm``, so they are invisible). It is measured, not assumed: :func:`probe_exit_frees`
runs the ``fork`` scenario, where nothing but exits frees a VMA, and every record stores
the answer as ``exit_frees_counted``; the prediction includes the simulator's ``exit`` frees
exactly when it is true (a record without the key, from before the probe: left out).

Each scenario runs at several sizes; per-unit coefficients are least-squares polynomial
fits over the sizes, and the verdict compares every coefficient, slopes and intercepts
alike (the intercepts hold what the driver's own start-up and exit add, which both sides
count the same way).

Needs Linux, root, tracefs (mounted here if it is not, and unmounted afterwards), readable
kallsyms and a C compiler; :func:`probe` says which is missing.

Random differential validation (``validate-kernel --fuzz``) is :mod:`.live` (real
processes of ``kdriver/kserve.c`` in a cgroup of their own, counted per cgroup so exit's
frees are seen), :mod:`.fuzzgen` (the sequences, as trace text), :mod:`.fuzzcmp` (both
sides' observations and their comparison) and :mod:`.fuzz` (the run, delta debugging, the
report); docs/validation.md describes it.

The package by concern: :mod:`.scenarios` (what the driver runs, its layout, constants),
:mod:`.predict` (the simulator's prediction and the comparison), :mod:`.perf` (counting in
the kernel), :mod:`.driver` (running it live, :func:`measure`) and :mod:`.records` (saved
measurements). Every name is importable from the package, as from the former single
module ``rmapsim.kernel`` (still its public name).
"""

from __future__ import annotations

from .driver import (  # noqa: F401 (reached through the package)
    _remove_swapfile,
    _swap_active,
    build_driver,
    measure,
    pageout_timing,
    probe_exit_frees,
    run_driver,
    run_plain,
    swapfile,
)
from .perf import (  # noqa: F401 (reached through the package: rmapsim.record, tests)
    AVC_FUNCTIONS,
    AVC_HELPERS,
    Counters,
    _event_ids,
    _kallsyms,
    avc_call_site_range,
    avc_call_site_ranges,
    avc_filter,
    filters,
    probe,
    tracefs,
)
from .predict import compare, exit_frees_line, fit, format_comparison, mirror, predict, replay
from .records import load, save
from .scenarios import (
    CACHES,
    DRIVER_SOURCE,
    EXIT_UNAVAILABLE,
    KINDS,
    MOVED,
    REGION,
    SCENARIOS,
    KernelUnavailable,
    Mapping,
    Scenario,
    parse_smaps,
)

__all__ = [
    # the former module's names
    "EXIT_UNAVAILABLE",
    "KernelUnavailable",
    "Mapping",
    "SCENARIOS",
    "Scenario",
    "avc_call_site_ranges",
    "avc_filter",
    "build_driver",
    "compare",
    "exit_frees_line",
    "fit",
    "format_comparison",
    "measure",
    "mirror",
    "load",
    "parse_smaps",
    "predict",
    "probe",
    "probe_exit_frees",
    "replay",
    "save",
    # its other public names, importable from it before too
    "AVC_FUNCTIONS",
    "AVC_HELPERS",
    "CACHES",
    "Counters",
    "DRIVER_SOURCE",
    "KINDS",
    "MOVED",
    "REGION",
    "avc_call_site_range",
    "filters",
    "pageout_timing",
    "run_driver",
    "run_plain",
    "swapfile",
    "tracefs",
]
