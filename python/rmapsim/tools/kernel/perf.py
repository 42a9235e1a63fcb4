"""Counting in the live kernel: tracefs, the kmem tracepoints' ids and event filters
(``anon_vma_chain``'s by call-site range from ``/proc/kallsyms``), the inherited perf
counters, and :func:`probe` (why the kernel cannot be measured here, if it cannot)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .scenarios import CACHES, KINDS, KernelUnavailable

_PERF_TYPE_TRACEPOINT = 2
_PERF_IOC_SET_FILTER = 0x40082406
_PERF_FLAG_PID_CGROUP = 1 << 2
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
            raise KernelUnavailable(
                f"kallsyms shows {name} (an anon_vma_chain allocation or free site outside "
                f"the anon_vma functions) but its end cannot be bounded"
            )
        ranges.append((a, end))
    return sorted(ranges)


def avc_call_site_range() -> Tuple[int, int]:
    """The main range of :func:`avc_call_site_ranges` (kept for callers that want one)."""
    return avc_call_site_ranges()[0]


def avc_filter(ranges: Sequence[Tuple[int, int]]) -> str:
    """The tracepoint filter selecting ``anon_vma_chain`` objects: a call site in one of
    ``ranges``, and not the anon_vma allocations made there."""
    sites = " || ".join(f"call_site >= {lo:#x} && call_site < {hi:#x}" for lo, hi in ranges)
    return f'({sites}) && name != "anon_vma"' if len(ranges) > 1 else f'{sites} && name != "anon_vma"'


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
    process tree (``pid``), machine-wide when ``pid`` is -1 (one per CPU, summed), or of
    every task in a cgroup v2 when ``cgroup_fd`` (an open cgroup directory) is given (one
    per CPU of ``cpus``, default the CPUs this process may run on, summed;
    ``PERF_FLAG_PID_CGROUP``). A cgroup's counters see what its tasks do until they are
    gone, the frees of ``exit_mmap`` included, which inherited counters miss on 6.17+."""

    def __init__(
        self,
        pid: int,
        ids: Dict[str, int],
        flt: Dict[str, str],
        cgroup_fd: Optional[int] = None,
        cpus: Optional[Sequence[int]] = None,
    ) -> None:
        nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
        if nr is None:
            raise KernelUnavailable(f"perf_event_open syscall number unknown for {platform.machine()}")
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fds: Dict[str, List[int]] = {}
        on = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        if cgroup_fd is not None:
            targets = [(cgroup_fd, c, 0) for c in on]
            open_flags = _PERF_FLAG_PID_CGROUP
        else:
            targets = [(pid, -1, 1 << 1)] if pid != -1 else [(-1, c, 0) for c in on]
            open_flags = 0
        try:
            for cache in CACHES:
                for kind in KINDS:
                    for tpid, cpu, flags in targets:
                        attr = struct.pack("IIQQQQQIIQ", _PERF_TYPE_TRACEPOINT, 64, ids[kind], 0, 0, 0, flags, 0, 0, 0)
                        buf = ctypes.create_string_buffer(attr, len(attr))
                        fd = self._libc.syscall(nr, buf, tpid, cpu, -1, open_flags)
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
