"""The simulator side: the driver's scenario as simulator operations, the per-cache
allocation counts an era predicts, least-squares fits over the sizes, and the comparison
with a recorded measurement."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from ... import PAGE_SIZE, Simulator
from .scenarios import CACHES, KINDS, MOVED, REGION, SCENARIOS, Mapping


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
                if not (
                    nxt.path == m.path
                    and nxt.start == last.end
                    and nxt.anonymous_kb
                    and nxt.offset == last.offset + (last.end - last.start)
                ):
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
        for _ in range(n):
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


def predict(
    layout: Sequence[Mapping], scenario: str, n: int, pages: int, era: str = "6.18", exit_frees: bool = False
) -> Dict[str, Any]:
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
            rows.append(
                {
                    "cache": cache,
                    "kind": k,
                    "measured": cm,
                    "predicted": cp,
                    "agree": ok,
                    "measured_counts": meas,
                    "predicted_counts": want,
                }
            )
    out = {
        "scenario": scen.name,
        "unit": scen.unit,
        "degree": scen.degree,
        "sizes": sizes,
        "rows": rows,
        "agree": agree,
        "era": era,
        "exit_frees_counted": exit_frees,
        "exit_frees_measured": "exit_frees_counted" in record,
    }
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
        return (
            "exit-time frees: left out of both sides (not measured: these records predate the probe; "
            "assumed invisible to the counters, as on Linux >= 6.17)"
        )
    if len(set(known)) > 1:
        return "exit-time frees: MIXED records (probe answers differ); each record is compared as it says"
    if known[0]:
        return "exit-time frees: counted by the kernel's counters (probe: fork scenario) and included in the prediction"
    return (
        "exit-time frees: invisible to the kernel's counters (probe: fork scenario frees no VMA) "
        "and left out of the prediction"
    )


def format_comparison(results: Sequence[Dict[str, Any]]) -> str:
    """The measured-vs-predicted table: the fitted per-unit slope of each count (quadratic
    scenarios also show the per-unit² coefficient). The verdict compares every fitted
    coefficient, intercepts included, though the table does not print the intercepts."""
    lines = [
        f"{'scenario':<16} {'unit':<10} {'cache':<15} {'measured (alloc/free)':>24} "
        f"{'predicted (alloc/free)':>24}  verdict"
    ]

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
            lines.append(
                f"{r['scenario'] if first else '':<16} {r['unit'] if first else '':<10} {cache:<15} "
                f"{m:>24} {p:>24}  {verdict}"
            )
            first = False
        if "observed" in r and "walks" in r["observed"]:
            o = r["observed"]
            w = o["walks"]
            lines.append(
                f"{'':<16} {'':<10} pageout walk at N={o['size']}: page kept by the first child found after "
                f"{w[0][0]} VMAs, by the last child after {w[1][0]} (simulator)"
            )
            ko = r.get("kernel_observed")
            if ko:
                lines.append(
                    f"{'':<16} {'':<10} kernel: both pages swapped out: "
                    f"{'yes' if ko.get('swapped_all') else 'NO'} (pagemap swap bit in each keeper)"
                )
            t = (ko or {}).get("timing")
            if t:
                sz = ", ".join(str(s) for s in t["sizes"])
                fmt = lambda v: ", ".join(f"{x / 1000:.1f}" for x in v)  # noqa: E731
                lines.append(
                    f"{'':<16} {'':<10} kernel MADV_PAGEOUT, us per page at N = {sz}: first child's "
                    f"{fmt(t['first_ns_per_page'])}; last child's {fmt(t['last_ns_per_page'])}"
                )
                lines.append(
                    f"{'':<16} {'':<10} -> last child's pages: +{t['last_slope_ns_per_child']:.0f} ns per "
                    f"extra VMA before it in fork order (R² {t['last_r2']:.3f}); first child's: "
                    f"{t['first_slope_ns_per_child']:+.1f} ns per child"
                )
    return "\n".join(lines)
