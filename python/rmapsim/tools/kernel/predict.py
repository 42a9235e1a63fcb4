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
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import platform
import shutil
import struct
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import PAGE_SIZE, TASK_SIZE, Simulator

DRIVER_SOURCE = Path(__file__).with_name("kdriver") / "kdriver.c"
REGION = 0x200000000000
MOVED = 0x300000000000
CACHES = ("anon_vma", "anon_vma_chain", "vm_area_struct")
KINDS = ("alloc", "free")
#: Exit status of ``validate-kernel`` when the live kernel cannot be used (automake's "skipped").
EXIT_UNAVAILABLE = 77


class KernelUnavailable(RuntimeError):
    """The live kernel cannot be measured here; the message says why."""


# ---------------------------------------------------------------------------------------
# Scenarios: what the driver does, and the same operations in the simulator
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    unit: str
    doc: str
    sizes: Tuple[int, ...]
    degree: int = 1


SCENARIOS: Dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("fork", "child", "fork storm, no COW: N children of the driver, all alive", (1, 2, 4, 8, 16)),
        Scenario("fork_cow", "child", "fork storm, each child writes every region page (COW)", (1, 2, 4, 8, 16)),
        Scenario(
            "chain_alive",
            "generation",
            "generation chain, every generation writes then forks the next; parents stay alive",
            (1, 2, 3, 4, 6, 8),
            degree=2,
        ),
        Scenario(
            "chain_exit",
            "generation",
            "generation chain, each parent exits after forking (anon_vma reuse from N=2 on)",
            (2, 4, 8, 16),
        ),
        Scenario("split_parent", "split", "driver forks 2 children, then mprotects N single pages (2 splits each)", (1, 2, 4, 8, 16)),
        Scenario("split_children", "child", "each child writes, then mprotects one middle page (splits in children)", (1, 2, 4, 8, 16)),
        Scenario("mremap_children", "child", "each child writes, then mremap-moves the region (copy_vma)", (1, 2, 4, 8, 16)),
        Scenario("munmap_exit", "child", "each child munmaps the region's first page; all exit", (1, 2, 4, 8, 16)),
        Scenario(
            "pageout",
            "child",
            "N children; page 0 kept only by the first child, page 1 only by the last; both MADV_PAGEOUT "
            "(then timed at N = 2..1024)",
            (2, 4, 8, 16),
        ),
    ]
}


@dataclass
class Mapping:
    """One VMA of the driver at its start, from ``/proc/<pid>/smaps``."""

    start: int
    end: int
    prot: str
    offset: int
    path: str
    anonymous_kb: int

    @property
    def is_file(self) -> bool:
        return self.path.startswith("/")

    def to_json(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in ("start", "end", "prot", "offset", "path", "anonymous_kb")}


def parse_smaps(text: str) -> List[Mapping]:
    """The VMAs of an smaps file (``[vsyscall]`` is not a VMA and is dropped)."""
    out: List[Mapping] = []
    for line in text.splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and len(head[1]) == 4:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            path = " ".join(head[5:]) if len(head) > 5 else ""
            out.append(Mapping(lo, hi, head[1][:3].replace("-", ""), int(head[2], 16), path, 0))
        elif head[0] == "Anonymous:" and out:
            out[-1].anonymous_kb = int(head[1])
    return [m for m in out if m.path != "[vsyscall]"]


def mirror(sim: Simulator, layout: Sequence[Mapping]) -> int:
    """Build the driver's address space in ``sim``; returns the pid.

    File mappings become private file mappings (one identity per path); special mappings
    (``[vvar]``, ``[vdso]``) become mappings of their own identity, never written, so they
    are copied at fork but have no anon_vma, as in the kernel. A mapping with anonymous
    pages gets one write fault so it has an anon_vma; consecutive pieces of one file at
    contiguous offsets that both hold anonymous pages are created as one mapping and then
    split by mprotect, as the loader's RELRO ``mprotect`` did, so they share the anon_vma.
    """
    pid = sim.spawn()
    ids: Dict[str, int] = {}
    i = 0
    while i < len(layout):
        m = layout[i]
        group = [m]
        if m.is_file and m.anonymous_kb:
            while i + len(group) < len(layout):
                nxt = layout[i + len(group)]
                last = group[-1]
                if not (nxt.path == m.path and nxt.start == last.end and nxt.anonymous_kb
                        and nxt.offset == last.offset + (last.end - last.start)):
                    break
                group.append(nxt)
        start, end = group[0].start, group[-1].end
        if m.path and not m.path.startswith("[heap") and not m.path.startswith("[stack"):
            fid = ids.setdefault(m.path, len(ids) + 1)
            sim.mmap(pid, end - start, start, "rw" if len(group) > 1 else (m.prot or "none"), file=fid, offset=m.offset)
        else:
            sim.mmap(pid, end - start, start, m.prot or "none")
        if m.anonymous_kb:
            sim.touch(pid, start, PAGE_SIZE, write=True)
        for g in group:
            if len(group) > 1:
                sim.mprotect(pid, g.start, g.end - g.start, g.prot or "none")
        i += len(group)
    return pid


def replay(sim: Simulator, drv: int, scenario: str, n: int, pages: int) -> Dict[str, Any]:
    """The driver's scenario as simulator operations, in the driver's order. Ends with
    every process exited, as the driver does. Returns scenario observations (pageout walks)."""
    obs: Dict[str, Any] = {}
    pg = PAGE_SIZE
    if scenario == "split_parent":
        length = (2 * n + 1) * pg
        sim.mmap(drv, length, REGION, "rw")
        sim.touch(drv, REGION, length, write=True)
        kids = [sim.fork(drv) for _ in range(2)]
        for k in range(n):
            sim.mprotect(drv, REGION + (2 * k + 1) * pg, pg, "r")
        for c in kids:
            sim.exit(c)
        sim.exit(drv)
        return obs
    length = pages * pg
    sim.mmap(drv, length, REGION, "rw")
    sim.touch(drv, REGION, length, write=True)
    if scenario in ("chain_alive", "chain_exit"):
        chain = [drv]
        for g in range(n):
            c = sim.fork(chain[-1])
            if scenario == "chain_exit" and chain[-1] != drv:
                sim.exit(chain.pop())
            chain.append(c)
            sim.touch(c, REGION, length, write=True)
        for p in reversed(chain[1:]):
            sim.exit(p)
        sim.exit(drv)
        return obs
    if scenario == "pageout":
        kids = [sim.fork(drv) for _ in range(n)]
        sim.madvise(drv, REGION, 2 * pg, "dontneed")
        keep = {kids[0]: 0, kids[-1]: 1}
        for c in kids:
            for p in (0, 1):
                if keep.get(c) != p:
                    sim.madvise(c, REGION + p * pg, pg, "dontneed")
        walks = {}
        for c in kids:
            if c in keep:
                st = sim.madvise(c, REGION + keep[c] * pg, pg, "pageout")
                walks[keep[c]] = [int(x) for x in st.vmas_visited]
                obs.setdefault("swapped", {})[keep[c]] = sim.page_at(c, REGION + keep[c] * pg) is None
        obs["walks"] = walks
        for c in kids:
            sim.exit(c)
        sim.exit(drv)
        return obs
    step: Callable[[int], None]
    if scenario == "fork":
        step = lambda c: None  # noqa: E731
    elif scenario == "fork_cow":
        step = lambda c: sim.touch(c, REGION, length, write=True)  # noqa: E731
    elif scenario == "split_children":

        def step(c: int) -> None:
            sim.touch(c, REGION, length, write=True)
            sim.mprotect(c, REGION + pg, pg, "r")

    elif scenario == "mremap_children":

        def step(c: int) -> None:
            sim.touch(c, REGION, length, write=True)
            sim.mremap(c, REGION, length, length, may_move=True, new_addr=MOVED)

    elif scenario == "munmap_exit":
        step = lambda c: sim.munmap(c, REGION, pg)  # noqa: E731
    else:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    kids = []
    for _ in range(n):
        c = sim.fork(drv)
        step(c)
        kids.append(c)
    for c in kids:
        sim.exit(c)
    sim.exit(drv)
    return obs


def _alloc_free(sim: Simulator, exit_frees: bool = False) -> Dict[str, int]:
    """Allocations and frees per cache; the frees of ``exit`` operations only when
    ``exit_frees`` (the measured ``exit_frees_counted``).

    Since 2025 (Linux 6.17/6.18) ``do_exit`` calls ``perf_event_exit_task`` *before*
    ``exit_mm`` ("sampling can touch ->mm, stop everything before we tear it down"), so a
    per-task inherited counter is detached before ``exit_mmap`` frees anything, and exit's
    frees must be left out; on a kernel with the older order they are counted."""
    totals = {f"{c}_{k}": 0 for c in CACHES for k in KINDS}
    names = {"anon_vma": "anon_vma", "avc": "anon_vma_chain", "vma": "vm_area_struct"}
    for op, ws in sim.write_stats().items():
        for short, cache in names.items():
            totals[f"{cache}_alloc"] += int(ws[f"{short}_alloc"])
            if exit_frees or op != "exit":
                totals[f"{cache}_free"] += int(ws[f"{short}_free"])
    return totals


def predict(layout: Sequence[Mapping], scenario: str, n: int, pages: int, era: str = "6.18",
            exit_frees: bool = False) -> Dict[str, Any]:
    """Allocations and frees per cache the simulator predicts for one driver run, counted
    from the moment the driver starts its scenario (its start-up mappings excluded); the
    frees made by exiting processes only when ``exit_frees``."""
    sim = Simulator(era=era)
    drv = mirror(sim, layout)
    before = _alloc_free(sim, exit_frees)
    obs = replay(sim, drv, scenario, n, pages)
    sim.check()
    after = _alloc_free(sim, exit_frees)
    out: Dict[str, Any] = {k: after[k] - before[k] for k in after}
    out["observed"] = obs
    return out


def fit(sizes: Sequence[int], values: Sequence[float], degree: int) -> List[float]:
    """Least-squares polynomial coefficients, highest power first (per-unit slope last but one)."""
    return [float(c) for c in np.polyfit(np.asarray(sizes, float), np.asarray(values, float), degree)]


def compare(record: Dict[str, Any], era: str = "6.18") -> Dict[str, Any]:
    """Compare one recorded scenario measurement with the era's prediction.

    ``record``: ``{"scenario", "pages", "layout": [smaps mappings], "runs": {size: {cache_kind: count}},
    "exit_frees_counted": bool}`` (the last optional: missing means false, as recorded
    before the probe existed). The prediction includes the simulator's exit frees exactly
    when ``exit_frees_counted`` is true.

    Returns rows per cache with the measured and predicted polynomial coefficients and a
    verdict: a row agrees when *every* coefficient (per-unit slope(s) and intercept) of the
    measured fit matches the predicted one to 1e-6; the scenario agrees when every row does.
    """
    scen = SCENARIOS[record["scenario"]]
    layout = [Mapping(**m) for m in record["layout"]]
    runs = {int(n): counts for n, counts in record["runs"].items()}  # JSON keys are strings
    sizes = sorted(runs)
    exit_frees = bool(record.get("exit_frees_counted", False))
    pred = {s: predict(layout, scen.name, s, record["pages"], era, exit_frees) for s in sizes}
    rows = []
    agree = True
    for cache in CACHES:
        for k in KINDS:
            key = f"{cache}_{k}"
            meas = [runs[s][key] for s in sizes]
            want = [pred[s][key] for s in sizes]
            cm, cp = fit(sizes, meas, scen.degree), fit(sizes, want, scen.degree)
            ok = all(abs(a - b) < 1e-6 for a, b in zip(cm, cp))
            agree &= ok
            rows.append({"cache": cache, "kind": k, "measured": cm, "predicted": cp, "agree": ok,
                         "measured_counts": meas, "predicted_counts": want})
    out = {"scenario": scen.name, "unit": scen.unit, "degree": scen.degree, "sizes": sizes, "rows": rows,
           "agree": agree, "era": era, "exit_frees_counted": exit_frees,
           "exit_frees_measured": "exit_frees_counted" in record}
    obs = pred[sizes[-1]]["observed"]
    if obs:
        out["observed"] = {"size": sizes[-1], **obs}
    if "kernel_observed" in record:
        out["kernel_observed"] = record["kernel_observed"]
    return out


def exit_frees_line(records: Sequence[Dict[str, Any]]) -> str:
    """One line saying whether exit-time frees are in the comparison, and how that is known."""
    known = [r["exit_frees_counted"] for r in records if "exit_frees_counted" in r]
    if not known:
        return ("exit-time frees: left out of both sides (not measured: these records predate the probe; "
                "assumed invisible to the counters, as on Linux >= 6.17)")
    if len(set(known)) > 1:
        return "exit-time frees: MIXED records (probe answers differ); each record is compared as it says"
    if known[0]:
        return "exit-time frees: counted by the kernel's counters (probe: fork scenario) and included in the prediction"
    return ("exit-time frees: invisible to the kernel's counters (probe: fork scenario frees no VMA) "
            "and left out of the prediction")


def probe_exit_frees(exe: Path, ids: Dict[str, int], flt: Dict[str, str], pages: int = 8,
                     runner: Optional[Callable[..., Dict[str, Any]]] = None) -> bool:
    """Whether the inherited counters see the frees processes make at exit, measured.

    Runs the driver's ``fork`` scenario at N = 1 and 2: it maps and writes a region and
    forks children that only exit, so no VMA is freed except by ``exit_mmap``. Counted
    ``vm_area_struct`` frees > 0 at both sizes: exit frees are visible (older ``do_exit``
    order); 0 at both: they are not. Anything else raises :class:`RuntimeError`."""
    run = runner or run_driver
    frees = [run(exe, "fork", n, pages, ids, flt)["counts"]["vm_area_struct_free"] for n in (1, 2)]
    if all(f > 0 for f in frees):
        return True
    if all(f == 0 for f in frees):
        return False
    raise RuntimeError(f"exit-time frees probe is inconsistent: vm_area_struct frees {frees} at N = 1, 2 "
                       f"of the fork scenario (expected both zero or both non-zero)")


def format_comparison(results: Sequence[Dict[str, Any]]) -> str:
    """The measured-vs-predicted table: the fitted per-unit slope of each count (quadratic
    scenarios also show the per-unit² coefficient). The verdict compares every fitted
    coefficient, intercepts included, though the table does not print the intercepts."""
    lines = [f"{'scenario':<16} {'unit':<10} {'cache':<15} {'measured (alloc/free)':>24} "
             f"{'predicted (alloc/free)':>24}  verdict"]

    def coef(c: List[float], degree: int) -> str:
        c = [round(x, 6) + 0.0 for x in c]  # no "-0.00"
        if degree == 1:
            return f"{c[0]:.2f}"
        return f"{c[0]:.2f}n²+{c[1]:.2f}n"

    for r in results:
        first = True
        for cache in CACHES:
            a = next(x for x in r["rows"] if x["cache"] == cache and x["kind"] == "alloc")
            f = next(x for x in r["rows"] if x["cache"] == cache and x["kind"] == "free")
            m = f"{coef(a['measured'], r['degree'])} / {coef(f['measured'], r['degree'])}"
            p = f"{coef(a['predicted'], r['degree'])} / {coef(f['predicted'], r['degree'])}"
            verdict = "agree" if a["agree"] and f["agree"] else "DISAGREE"
            lines.append(f"{r['scenario'] if first else '':<16} {r['unit'] if first else '':<10} {cache:<15} "
                         f"{m:>24} {p:>24}  {verdict}")
            first = False
        if "observed" in r and "walks" in r["observed"]:
            o = r["observed"]
            w = o["walks"]
            lines.append(f"{'':<16} {'':<10} pageout walk at N={o['size']}: page kept by the first child found after "
                         f"{w[0][0]} VMAs, by the last child after {w[1][0]} (simulator)")
            ko = r.get("kernel_observed")
            if ko:
                lines.append(f"{'':<16} {'':<10} kernel: both pages swapped out: "
                             f"{'yes' if ko.get('swapped_all') else 'NO'} (pagemap swap bit in each keeper)")
            t = (ko or {}).get("timing")
            if t:
                sz = ", ".join(str(s) for s in t["sizes"])
                fmt = lambda v: ", ".join(f"{x / 1000:.1f}" for x in v)  # noqa: E731
                lines.append(f"{'':<16} {'':<10} kernel MADV_PAGEOUT, us per page at N = {sz}: first child's "
                             f"{fmt(t['first_ns_per_page'])}; last child's {fmt(t['last_ns_per_page'])}")
                lines.append(f"{'':<16} {'':<10} -> last child's pages: +{t['last_slope_ns_per_child']:.0f} ns per "
                             f"extra VMA before it in fork order (R² {t['last_r2']:.3f}); first child's: "
                             f"{t['first_slope_ns_per_child']:+.1f} ns per child")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The live kernel side
# ---------------------------------------------------------------------------------------

_PERF_TYPE_TRACEPOINT = 2
_PERF_IOC_SET_FILTER = 0x40082406
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241}


def _find_tracefs() -> Optional[Path]:
    for p in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        if (p / "events").is_dir():
            return p
    return None


@contextlib.contextmanager
def tracefs() -> Iterator[Path]:
    """tracefs, mounted on a temporary directory (and unmounted after) when not mounted."""
    found = _find_tracefs()
    if found is not None:
        yield found
        return
    tmp = Path(tempfile.mkdtemp(prefix="rmapsim-tracefs-"))
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", str(tmp)], capture_output=True, text=True)
    if r.returncode != 0:
        tmp.rmdir()
        raise KernelUnavailable(f"cannot mount tracefs: {r.stderr.strip() or r.returncode}")
    try:
        yield tmp
    finally:
        subprocess.run(["umount", str(tmp)], capture_output=True)
        with contextlib.suppress(OSError):
            tmp.rmdir()


def _kallsyms() -> List[Tuple[int, str]]:
    syms = []
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in "tTwW":
                syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return syms


#: The functions of mm/rmap.c that allocate and free ``anon_vma_chain`` objects (via the
#: inline helpers ``anon_vma_chain_alloc`` / ``anon_vma_chain_free``).
AVC_FUNCTIONS = ("__anon_vma_prepare", "anon_vma_clone", "anon_vma_fork", "unlink_anon_vmas")
AVC_HELPERS = ("anon_vma_chain_alloc", "anon_vma_chain_free")
_MAX_RANGE = 1 << 16


def _base_name(sym: str) -> str:
    """``anon_vma_clone.cold`` / ``anon_vma_chain_free.isra.0`` -> the C function's name."""
    return sym.split(".", 1)[0]


def avc_call_site_ranges(syms: Optional[Sequence[Tuple[int, str]]] = None) -> List[Tuple[int, int]]:
    """The text ranges holding every ``anon_vma_chain`` allocation and free site.

    The main range runs from the first to past the last of :data:`AVC_FUNCTIONS` (adjacent in
    mm/rmap.c, with ``anon_vma_chain_alloc/free`` inlined into them). Any out-of-line piece
    that can hold such a site is added as a range of its own, from its symbol to the next
    symbol: an out-of-line copy of ``anon_vma_chain_alloc`` / ``anon_vma_chain_free``
    (any ``.isra``/``.constprop``/``.part`` clone, ``.cold`` parts included), or a ``.cold``
    / ``.part`` piece of the four functions outside the main range. Other symbols are never
    included, so the ranges stay tight.

    ``syms``: sorted ``(address, name)`` text symbols (default: ``/proc/kallsyms``).
    Raises :class:`KernelUnavailable` when the functions are not visible (``kptr_restrict``,
    no symbols) or a range cannot be bounded within 64 KiB.
    """
    syms = sorted(syms) if syms is not None else _kallsyms()
    addrs = {name: a for a, name in syms if name in AVC_FUNCTIONS}
    if len(addrs) != len(AVC_FUNCTIONS) or min(addrs.values()) == 0:
        raise KernelUnavailable("kallsyms does not show the anon_vma functions (kptr_restrict or no mm/rmap.c symbols)")

    def end_of(addr: int) -> int:
        return next((a for a, _ in syms if a > addr), 0)

    lo, last = min(addrs.values()), max(addrs.values())
    hi = end_of(last)
    if not hi or hi - lo > _MAX_RANGE:
        raise KernelUnavailable("cannot bound the anon_vma code in kallsyms")
    ranges = [(lo, hi)]
    for a, name in syms:
        base = _base_name(name)
        if name in AVC_FUNCTIONS or (base not in AVC_HELPERS and not (base in AVC_FUNCTIONS and name != base)):
            continue
        if any(r0 <= a < r1 for r0, r1 in ranges):
            continue
        end = end_of(a)
        if not end or end - a > _MAX_RANGE:
            raise KernelUnavailable(f"kallsyms shows {name} (an anon_vma_chain allocation or free site outside "
                                    f"the anon_vma functions) but its end cannot be bounded")
        ranges.append((a, end))
    return sorted(ranges)


def avc_call_site_range() -> Tuple[int, int]:
    """The main range of :func:`avc_call_site_ranges` (kept for callers that want one)."""
    return avc_call_site_ranges()[0]


def avc_filter(ranges: Sequence[Tuple[int, int]]) -> str:
    """The tracepoint filter selecting ``anon_vma_chain`` objects: a call site in one of
    ``ranges``, and not the anon_vma allocations made there."""
    sites = " || ".join(f"call_site >= {lo:#x} && call_site < {hi:#x}" for lo, hi in ranges)
    return f"({sites}) && name != \"anon_vma\"" if len(ranges) > 1 else f'{sites} && name != "anon_vma"'


def _slab_merged(cache: str) -> bool:
    return Path(f"/sys/kernel/slab/{cache}").is_symlink()


def filters() -> Dict[str, str]:
    """The tracepoint filter of each cache."""
    ranges = avc_call_site_ranges()
    for c in ("anon_vma", "vm_area_struct"):
        if _slab_merged(c):
            raise KernelUnavailable(f"slab cache {c} is merged with others here; its name does not identify it")
    return {
        "anon_vma": 'name == "anon_vma"',
        "anon_vma_chain": avc_filter(ranges),
        "vm_area_struct": 'name == "vm_area_struct"',
    }


class Counters:
    """perf counters of the kmem tracepoints, one per cache and kind: inherited over a
    process tree (``pid``), or machine-wide when ``pid`` is -1 (one per CPU, summed)."""

    def __init__(self, pid: int, ids: Dict[str, int], flt: Dict[str, str]) -> None:
        nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
        if nr is None:
            raise KernelUnavailable(f"perf_event_open syscall number unknown for {platform.machine()}")
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fds: Dict[str, List[int]] = {}
        targets = [(pid, -1, 1 << 1)] if pid != -1 else [(-1, c, 0) for c in sorted(os.sched_getaffinity(0))]
        try:
            for cache in CACHES:
                for kind in KINDS:
                    for tpid, cpu, flags in targets:
                        attr = struct.pack("IIQQQQQIIQ", _PERF_TYPE_TRACEPOINT, 64, ids[kind], 0, 0, 0, flags, 0, 0, 0)
                        buf = ctypes.create_string_buffer(attr, len(attr))
                        fd = self._libc.syscall(nr, buf, tpid, cpu, -1, 0)
                        if fd < 0:
                            e = ctypes.get_errno()
                            raise KernelUnavailable(f"perf_event_open(kmem_cache_{kind}) failed: {os.strerror(e)}")
                        self.fds.setdefault(f"{cache}_{kind}", []).append(fd)
                        if self._libc.ioctl(fd, _PERF_IOC_SET_FILTER, ctypes.c_char_p(flt[cache].encode())) != 0:
                            e = ctypes.get_errno()
                            raise KernelUnavailable(f"tracepoint filter {flt[cache]!r} refused: {os.strerror(e)}")
        except BaseException:
            self.close()
            raise

    def read(self) -> Dict[str, int]:
        return {k: sum(struct.unpack("Q", os.read(fd, 8))[0] for fd in fds) for k, fds in self.fds.items()}

    def close(self) -> None:
        for fds in self.fds.values():
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds = {}


def probe() -> Optional[str]:
    """Why the live kernel cannot be measured here, or ``None`` when it can."""
    if platform.system() != "Linux":
        return f"needs Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "needs root (perf tracepoint counters and tracefs)"
    if platform.machine() not in _NR_PERF_EVENT_OPEN:
        return f"perf_event_open syscall number unknown for {platform.machine()}"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "needs a C compiler (cc) to build the driver"
    try:
        filters()
        with tracefs() as tfs:
            _event_ids(tfs)
    except KernelUnavailable as e:
        return str(e)
    except OSError as e:
        return f"{e}"
    return None


def _event_ids(tfs: Path) -> Dict[str, int]:
    out = {}
    for kind in KINDS:
        p = tfs / "events" / "kmem" / f"kmem_cache_{kind}" / "id"
        try:
            out[kind] = int(p.read_text())
        except OSError as e:
            raise KernelUnavailable(f"tracepoint kmem:kmem_cache_{kind} not available: {e}") from e
    return out


def build_driver(cache_dir: Optional[Path] = None) -> Path:
    """Compile the driver (static, -O2) into a cache directory keyed by its source hash."""
    src = DRIVER_SOURCE.read_bytes()
    tag = hashlib.sha256(src).hexdigest()[:16]
    root = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rmapsim"
    exe = root / f"kdriver-{tag}"
    if exe.exists():
        return exe
    root.mkdir(parents=True, exist_ok=True)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise KernelUnavailable("needs a C compiler (cc) to build the driver")
    tmp = exe.with_suffix(".tmp")
    for static in (["-static"], []):
        r = subprocess.run([cc, "-O2", *static, "-o", str(tmp), str(DRIVER_SOURCE)], capture_output=True, text=True)
        if r.returncode == 0:
            tmp.replace(exe)
            return exe
    raise KernelUnavailable(f"compiling the driver failed: {r.stderr.strip()[-400:]}")


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """Kill the process group of a driver started with ``start_new_session`` (the driver and
    every process it forked) and reap the driver. Safe to call twice."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 9)
    with contextlib.suppress(OSError, ValueError):
        proc.communicate()  # reap it, close the pipes


def run_driver(exe: Path, scenario: str, n: int, pages: int, ids: Dict[str, int],
               flt: Dict[str, str], timeout: float = 120.0,
               counters_factory: Optional[Callable[[int, Dict[str, int], Dict[str, str]], "Counters"]] = None,
               ) -> Dict[str, Any]:
    """Run one scenario for real; returns the counts, the driver's start layout and its output.

    The driver runs in a session (process group) of its own; if it has not finished after
    ``timeout`` seconds, or anything goes wrong (an exception, a signal turned into one),
    its whole process group is killed and reaped. A timeout raises :class:`RuntimeError`
    naming the scenario and N."""
    proc = subprocess.Popen([str(exe), scenario, str(n), str(pages)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    counters = None
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().decode()
        if not first.startswith("ready"):
            proc.wait(timeout=timeout)
            raise RuntimeError(f"driver did not start: {first!r} {proc.stderr.read().decode() if proc.stderr else ''}")
        smaps = Path(f"/proc/{proc.pid}/smaps").read_text()
        counters = (counters_factory or Counters)(proc.pid, ids, flt)
        try:
            out, err = proc.communicate(input=b"g", timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise RuntimeError(f"driver {scenario} N={n} did not finish within {timeout:g} s; "
                               f"its process group was killed") from None
        if proc.returncode != 0:
            raise RuntimeError(f"driver {scenario} N={n} failed (exit {proc.returncode}): {err.decode().strip()}")
        counts = counters.read()
    finally:
        if counters is not None:
            counters.close()
        _kill_group(proc)
    return {"counts": counts, "layout": parse_smaps(smaps), "stdout": out.decode()}


def run_plain(exe: Path, scenario: str, n: int, pages: int, timeout: float = 300.0) -> str:
    """Run one driver scenario without counters; returns its standard output."""
    proc = subprocess.Popen([str(exe), scenario, str(n), str(pages)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(input=b"g", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"driver {scenario} N={n} did not finish within {timeout:g} s; "
                           f"its process group was killed") from None
    finally:
        _kill_group(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"driver {scenario} N={n} failed (exit {proc.returncode}): {err.decode().strip()}")
    return out.decode()


#: Children and pages per keeper of the pageout timing run.
TIMING_SIZES = (2, 128, 512, 1024)
TIMING_PAGES = 128


def pageout_timing(exe: Path, sizes: Sequence[int] = TIMING_SIZES, pages: int = TIMING_PAGES,
                   reps: int = 3) -> Dict[str, Any]:
    """Time MADV_PAGEOUT of pages only the first-forked / only the last-forked child maps,
    for several numbers of children (best of ``reps``). The kernel's try_to_unmap walks the
    parent's anon_vma in fork order, so the last child's pages should cost a time linear in
    N and the first child's a constant; the slope is the kernel's cost per VMA visited."""
    first, last, swapped = [], [], True
    for n in sizes:
        best = {"first": float("inf"), "last": float("inf")}
        for _ in range(reps):
            for line in run_plain(exe, "pageout_time", n, pages).splitlines():
                f = line.split()
                if f[:1] == ["pageout_ns"]:
                    best[f[1]] = min(best[f[1]], int(f[2]) / pages)
                    swapped &= int(f[3]) == pages
        first.append(best["first"])
        last.append(best["last"])
    x = np.asarray(sizes, float)
    fit_last = np.polyfit(x, last, 1)
    pred = np.polyval(fit_last, x)
    ss = float(((np.asarray(last) - np.mean(last)) ** 2).sum())
    r2 = 1 - float(((np.asarray(last) - pred) ** 2).sum()) / ss if ss else 0.0
    return {"sizes": list(sizes), "pages": pages, "first_ns_per_page": first, "last_ns_per_page": last,
            "first_slope_ns_per_child": float(np.polyfit(x, first, 1)[0]),
            "last_slope_ns_per_child": float(fit_last[0]), "last_r2": r2, "all_swapped": bool(swapped)}


@contextlib.contextmanager
def swapfile(size_mb: int = 64) -> Iterator[Optional[str]]:
    """A temporary swap file (``swapon``; ``swapoff`` and removed after) unless swap is already
    on. Yields ``None`` on success, or why swap could not be enabled."""
    try:
        active = [line for line in Path("/proc/swaps").read_text().splitlines()[1:] if line.strip()]
    except OSError:
        active = []
    if active:
        yield None
        return
    path = Path(tempfile.gettempdir()) / f"rmapsim-swap-{os.getpid()}"
    why: Optional[str] = None
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * (size_mb << 20))
        os.chmod(path, 0o600)
        for cmd in (["mkswap", str(path)], ["swapon", str(path)]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                why = f"{' '.join(cmd[:1])} failed: {r.stderr.strip()}"
                break
        yield why
    finally:
        _remove_swapfile(path)


def _swap_active(path: Path) -> bool:
    try:
        lines = Path("/proc/swaps").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[:1] == [str(path)] for line in lines)


def _remove_swapfile(path: Path) -> None:
    """``swapoff`` ``path`` if it is active (asked of ``/proc/swaps``, so an interrupted
    ``swapon`` is covered too), then delete it; if ``swapoff`` fails the file is still in
    use as swap, so it is kept and a warning names it."""
    if _swap_active(path):
        r = subprocess.run(["swapoff", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            warnings.warn(f"swapoff {path} failed ({r.stderr.strip() or r.returncode}); the swap file is still "
                          f"active and was kept: run 'swapoff {path} && rm {path}'", RuntimeWarning, stacklevel=3)
            return
    with contextlib.suppress(OSError):
        path.unlink()


def measure(scenarios: Sequence[str], pages: int = 8, sizes: Optional[Dict[str, Sequence[int]]] = None,
            progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Run each scenario for real at its sizes; returns recorded measurements (see :func:`compare`)."""
    why = probe()
    if why:
        raise KernelUnavailable(why)
    exe = build_driver()
    flt = filters()
    records = []
    with tracefs() as tfs, contextlib.ExitStack() as stack:
        ids = _event_ids(tfs)
        exit_frees = probe_exit_frees(exe, ids, flt, pages)
        if progress:
            progress(f"  exit-time frees visible to the counters: {'yes' if exit_frees else 'no'} (fork probe)")
        swap_why: Optional[str] = None
        if "pageout" in scenarios:
            swap_why = stack.enter_context(swapfile())
        for name in scenarios:
            scen = SCENARIOS[name]
            runs: Dict[str, Dict[str, int]] = {}
            layout: List[Mapping] = []
            kobs: Dict[str, Any] = {}
            for n in (sizes or {}).get(name, scen.sizes):
                t0 = time.perf_counter()
                r = run_driver(exe, name, n, pages, ids, flt)
                runs[str(n)] = r["counts"]
                if not layout:
                    layout = r["layout"]
                if name == "pageout":
                    sw = [line.split() for line in r["stdout"].splitlines() if line.startswith("swapped")]
                    kobs = {"swapped": {int(p): v == "1" for _, p, v in sw},
                            "swapped_all": len(sw) == 2 and all(v == "1" for *_, v in sw)}
                    if swap_why:
                        kobs["swap_unavailable"] = swap_why
                if progress:
                    progress(f"  {name} N={n}: {r['counts']} ({time.perf_counter() - t0:.2f} s)")
            if name == "pageout" and not swap_why:
                kobs["timing"] = pageout_timing(exe)
                if progress:
                    progress(f"  pageout timing: {kobs['timing']}")
            rec: Dict[str, Any] = {"scenario": name, "pages": pages, "layout": [m.to_json() for m in layout],
                                   "runs": runs, "kernel": platform.release(), "exit_frees_counted": exit_frees}
            if kobs:
                rec["kernel_observed"] = kobs
            records.append(rec)
    return records


def save(records: Sequence[Dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(list(records), indent=1) + "\n")


_PID_MAX = 4_194_304  # a run forks at most this many processes (the simulator's default pid_max)
_MAPPING_TYPES = {"start": int, "end": int, "prot": str, "offset": int, "path": str, "anonymous_kb": int}


def _check_record(rec: Any) -> Optional[str]:
    """What is wrong with one saved measurement record, or None."""
    if not isinstance(rec, dict):
        return f"not an object but {type(rec).__name__}"
    for key in ("scenario", "pages", "layout", "runs"):
        if key not in rec:
            return f"missing {key!r}"
    scen = SCENARIOS.get(rec["scenario"]) if isinstance(rec["scenario"], str) else None
    if scen is None:
        return f"unknown scenario {rec['scenario']!r}; known: {', '.join(SCENARIOS)}"
    pages = rec["pages"]
    if not isinstance(pages, int) or isinstance(pages, bool) or not 1 <= pages <= TASK_SIZE // PAGE_SIZE:
        return f"'pages' must be an integer within [1, {TASK_SIZE // PAGE_SIZE}], got {pages!r}"
    if not isinstance(rec["layout"], list) or not rec["layout"]:
        return "'layout' must be a non-empty list of mappings"
    for j, m in enumerate(rec["layout"]):
        if not isinstance(m, dict) or set(m) != set(_MAPPING_TYPES):
            return f"layout[{j}] must be an object with exactly the keys {', '.join(_MAPPING_TYPES)}"
        for k, t in _MAPPING_TYPES.items():
            if not isinstance(m[k], t) or isinstance(m[k], bool) or (t is int and m[k] < 0):
                return f"layout[{j}].{k} must be {'a non-negative integer' if t is int else 'a string'}, got {m[k]!r}"
        if not m["start"] < m["end"] <= TASK_SIZE or (m["start"] | m["end"]) % PAGE_SIZE:
            return f"layout[{j}] must be a page-aligned range within [0, {TASK_SIZE:#x}], got {m['start']:#x}-{m['end']:#x}"
    runs = rec["runs"]
    if not isinstance(runs, dict):
        return "'runs' must be an object {size: counts}"
    if len(runs) < scen.degree + 1:
        return f"'runs' needs at least {scen.degree + 1} sizes to fit a degree-{scen.degree} polynomial, has {len(runs)}"
    for n, counts in runs.items():
        if not (isinstance(n, str) and n.isdigit() and n.isascii() and 1 <= int(n) < _PID_MAX):
            return f"'runs' key {n!r} is not a size within [1, {_PID_MAX - 1}]"
        if not isinstance(counts, dict):
            return f"runs[{n}] must be an object of counts"
        for key in (f"{c}_{k}" for c in CACHES for k in KINDS):
            v = counts.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return f"runs[{n}].{key} must be a non-negative integer, got {v!r}"
    if "exit_frees_counted" in rec and not isinstance(rec["exit_frees_counted"], bool):
        return f"'exit_frees_counted' must be true or false, got {rec['exit_frees_counted']!r}"
    return _check_kernel_observed(rec.get("kernel_observed", {}))


def _check_kernel_observed(ko: Any) -> Optional[str]:
    """What is wrong with a record's optional ``kernel_observed`` (pageout: swap bits and timing), or None."""
    if not isinstance(ko, dict):
        return f"'kernel_observed' must be an object, got {ko!r}"
    t = ko.get("timing")
    if t is None:
        return None

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(t, dict):
        return f"'kernel_observed.timing' must be an object, got {t!r}"
    for key in ("sizes", "first_ns_per_page", "last_ns_per_page"):
        if not isinstance(t.get(key), list) or not all(number(v) for v in t[key]):
            return f"'kernel_observed.timing.{key}' must be a list of numbers, got {t.get(key)!r}"
    for key in ("first_slope_ns_per_child", "last_slope_ns_per_child", "last_r2"):
        if not number(t.get(key)):
            return f"'kernel_observed.timing.{key}' must be a number, got {t.get(key)!r}"
    return None


def load(path: Path) -> List[Dict[str, Any]]:
    """The records of a file written by :func:`save`, checked. A file that cannot be
    decoded, is not a JSON list, or holds a malformed record raises InvalidArgument
    naming the file and the line (decoding errors) or the record; OSError passes through."""
    from .errors import InvalidArgument

    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InvalidArgument(f"{path}:{line}: cannot read measurements: not UTF-8 (byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"{path}:{e.lineno}: cannot read measurements: not JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:
        raise InvalidArgument(f"{path}: cannot read measurements: JSON nested too deeply") from None
    if not isinstance(data, list):
        raise InvalidArgument(f"{path}: not a measurements file: a JSON list of records expected, got {type(data).__name__}")
    for i, rec in enumerate(data):
        why = _check_record(rec)
        if why:
            name = f" ({rec['scenario']})" if isinstance(rec, dict) and isinstance(rec.get("scenario"), str) else ""
            raise InvalidArgument(f"{path}: record {i}{name}: {why}")
    return data


__all__ = [
    "EXIT_UNAVAILABLE", "KernelUnavailable", "Mapping", "SCENARIOS", "Scenario", "avc_call_site_ranges",
    "avc_filter", "build_driver", "compare", "exit_frees_line", "fit", "format_comparison", "measure", "mirror",
    "load", "parse_smaps", "predict", "probe", "probe_exit_frees", "replay", "save",
]
