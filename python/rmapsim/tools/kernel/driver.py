"""Running the scenarios for real: building and running the static driver under the
counters, the exit-time-frees probe, the pageout timing, a temporary swap file, and
:func:`measure`, which does all of it for a list of scenarios."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from .perf import Counters, _event_ids, filters, probe, tracefs
from .scenarios import DRIVER_SOURCE, SCENARIOS, KernelUnavailable, Mapping, parse_smaps


def probe_exit_frees(
    exe: Path,
    ids: Dict[str, int],
    flt: Dict[str, str],
    pages: int = 8,
    runner: Optional[Callable[..., Dict[str, Any]]] = None,
) -> bool:
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
    raise RuntimeError(
        f"exit-time frees probe is inconsistent: vm_area_struct frees {frees} at N = 1, 2 "
        f"of the fork scenario (expected both zero or both non-zero)"
    )


def build_driver(cache_dir: Optional[Path] = None, source: Path = DRIVER_SOURCE, name: str = "kdriver") -> Path:
    """Compile the driver (static, -O2) into a cache directory keyed by its source hash
    (``source``/``name``: another program of ``kdriver/``, e.g. ``kserve.c``)."""
    src = source.read_bytes()
    tag = hashlib.sha256(src).hexdigest()[:16]
    root = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rmapsim"
    exe = root / f"{name}-{tag}"
    if exe.exists():
        return exe
    root.mkdir(parents=True, exist_ok=True)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise KernelUnavailable("needs a C compiler (cc) to build the driver")
    tmp = exe.with_suffix(".tmp")
    for static in (["-static"], []):
        r = subprocess.run([cc, "-O2", *static, "-o", str(tmp), str(source)], capture_output=True, text=True)
        if r.returncode == 0:
            tmp.replace(exe)
            return exe
    raise KernelUnavailable(f"compiling the driver failed: {r.stderr.strip()[-400:]}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group of a driver started with ``start_new_session`` (the driver and
    every process it forked) and reap the driver. Safe to call twice."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 9)
    with contextlib.suppress(OSError, ValueError):
        proc.communicate()  # reap it, close the pipes


def run_driver(
    exe: Path,
    scenario: str,
    n: int,
    pages: int,
    ids: Dict[str, int],
    flt: Dict[str, str],
    timeout: float = 120.0,
    counters_factory: Optional[Callable[[int, Dict[str, int], Dict[str, str]], Counters]] = None,
) -> Dict[str, Any]:
    """Run one scenario for real; returns the counts, the driver's start layout and its output.

    The driver runs in a session (process group) of its own; if it has not finished after
    ``timeout`` seconds, or anything goes wrong (an exception, a signal turned into one),
    its whole process group is killed and reaped. A timeout raises :class:`RuntimeError`
    naming the scenario and N."""
    proc = subprocess.Popen(
        [str(exe), scenario, str(n), str(pages)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
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
            raise RuntimeError(
                f"driver {scenario} N={n} did not finish within {timeout:g} s; its process group was killed"
            ) from None
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
    proc = subprocess.Popen(
        [str(exe), scenario, str(n), str(pages)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input=b"g", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"driver {scenario} N={n} did not finish within {timeout:g} s; its process group was killed"
        ) from None
    finally:
        _kill_group(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"driver {scenario} N={n} failed (exit {proc.returncode}): {err.decode().strip()}")
    return out.decode()


#: Children and pages per keeper of the pageout timing run.
TIMING_SIZES = (2, 128, 512, 1024)
TIMING_PAGES = 128


def pageout_timing(
    exe: Path, sizes: Sequence[int] = TIMING_SIZES, pages: int = TIMING_PAGES, reps: int = 3
) -> Dict[str, Any]:
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
    return {
        "sizes": list(sizes),
        "pages": pages,
        "first_ns_per_page": first,
        "last_ns_per_page": last,
        "first_slope_ns_per_child": float(np.polyfit(x, first, 1)[0]),
        "last_slope_ns_per_child": float(fit_last[0]),
        "last_r2": r2,
        "all_swapped": bool(swapped),
    }


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
            warnings.warn(
                f"swapoff {path} failed ({r.stderr.strip() or r.returncode}); the swap file is still "
                f"active and was kept: run 'swapoff {path} && rm {path}'",
                RuntimeWarning,
                stacklevel=3,
            )
            return
    with contextlib.suppress(OSError):
        path.unlink()


def measure(
    scenarios: Sequence[str],
    pages: int = 8,
    sizes: Optional[Dict[str, Sequence[int]]] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> List[Dict[str, Any]]:
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
                    kobs = {
                        "swapped": {int(p): v == "1" for _, p, v in sw},
                        "swapped_all": len(sw) == 2 and all(v == "1" for *_, v in sw),
                    }
                    if swap_why:
                        kobs["swap_unavailable"] = swap_why
                if progress:
                    progress(f"  {name} N={n}: {r['counts']} ({time.perf_counter() - t0:.2f} s)")
            if name == "pageout" and not swap_why:
                kobs["timing"] = pageout_timing(exe)
                if progress:
                    progress(f"  pageout timing: {kobs['timing']}")
            rec: Dict[str, Any] = {
                "scenario": name,
                "pages": pages,
                "layout": [m.to_json() for m in layout],
                "runs": runs,
                "kernel": platform.release(),
                "exit_frees_counted": exit_frees,
            }
            if kobs:
                rec["kernel_observed"] = kobs
            records.append(rec)
    return records
