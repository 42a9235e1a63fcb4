"""The live kernel of ``validate-kernel --fuzz``: trace lines run by real processes.

:class:`LiveKernel` starts the static driver ``kdriver/kserve.c`` as a dispatcher in a
fresh cgroup (v2) of its own, runs every operation of a trace line by line in real
processes (one per process symbol ``p1``, ``p2``, ... as the trace runner numbers them),
and observes the result: each process's VMAs with their flags (``/proc/<pid>/smaps``), each
page's state and physical page (``pagemap``, ``kpageflags``, ``kpagecount``), and the
slab allocations and frees of ``anon_vma`` / ``anon_vma_chain`` / ``vm_area_struct`` made
by any task of the cgroup (perf counters with ``PERF_FLAG_PID_CGROUP`` on every CPU, the
tracepoints and filters of :mod:`.perf`), so the frees ``exit`` makes are counted too.

Nothing it leaves behind survives :meth:`LiveKernel.close` (also run by ``with``): the
cgroup's processes are killed (``cgroup.kill``) and the cgroup removed, the counters
closed, the socket pairs closed and the working directory (the mapped files) deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .perf import Counters
from .scenarios import CACHES, KINDS, KernelUnavailable

SERVE_SOURCE = Path(__file__).with_name("kdriver") / "kserve.c"
_REQ = struct.Struct("8Q")
_REP = struct.Struct("2q")
PAGE = 4096

# Request codes (kserve.c's enum).
OP = {
    "mmap": 1,
    "munmap": 2,
    "mprotect": 3,
    "madvise": 4,
    "mremap": 5,
    "touch": 6,
    "brk": 7,
    "mlock": 8,
    "mlock2": 9,
    "munlock": 10,
    "mlockall": 11,
    "munlockall": 12,
    "memory_merge": 13,
    "fork": 14,
    "exec": 15,
    "exit": 16,
    "spawn": 17,
    "ping": 18,
}

PROT = {"r": 1, "w": 2, "x": 4}
MAP_PRIVATE, MAP_FIXED, MAP_LOCKED, MAP_NORESERVE, MAP_STACK = 0x02, 0x10, 0x2000, 0x4000, 0x20000
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MCL = {"current": 1, "future": 2, "onfault": 4}
MLOCK_ONFAULT = 1
#: madvise advice numbers (include/uapi/asm-generic/mman-common.h) by the trace's names.
ADVICE = {
    "normal": 0,
    "random": 1,
    "sequential": 2,
    "willneed": 3,
    "dontneed": 4,
    "free": 8,
    "dontfork": 10,
    "dofork": 11,
    "mergeable": 12,
    "unmergeable": 13,
    "hugepage": 14,
    "nohugepage": 15,
    "dontdump": 16,
    "dodump": 17,
    "wipeonfork": 18,
    "keeponfork": 19,
    "cold": 20,
    "pageout": 21,
}


def _num(tok: str) -> int:
    return int(tok, 0)


def prot_bits(text: str) -> int:
    """``rw`` / ``rx`` / ``none`` -> PROT_ bits."""
    return 0 if text == "none" else sum(PROT[c] for c in text)


def build_serve(cache_dir: Optional[Path] = None) -> Path:
    """Compile ``kserve.c`` (static, -O2) into the driver cache (keyed by its source hash)."""
    from .driver import build_driver

    return build_driver(cache_dir, source=SERVE_SOURCE, name="kserve")


def cgroup2_root() -> Optional[Path]:
    """Where the cgroup v2 hierarchy is mounted, or None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        f = line.split()
        if len(f) >= 3 and f[2] == "cgroup2":
            return Path(f[1])
    return None


class Cgroup:
    """A fresh cgroup v2 directory; :meth:`remove` kills what is in it and deletes it."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = root / name
        try:
            self.path.mkdir()
        except OSError as e:
            raise KernelUnavailable(f"cannot create cgroup {self.path}: {e.strerror or e}") from e
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)

    def procs(self) -> List[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill(self) -> None:
        """Kill every process in the cgroup (``cgroup.kill``, else one by one)."""
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            for p in self.procs():
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)

    def remove(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if not self.path.exists():
            return
        self.kill()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                if self.procs():
                    self.kill()
                time.sleep(0.01)


def _cpus() -> List[int]:
    """The online CPUs (``/sys/devices/system/cpu/online``: ``0-3,6``)."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    out: List[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass
class KVma:
    """One VMA as smaps shows it."""

    start: int
    end: int
    prot: str  # "rwx" letters, "" for none
    offset: int
    path: str
    flags: FrozenSet[str]


def parse_smaps_flags(text: str) -> List[KVma]:
    """Every VMA of an smaps file with its ``VmFlags`` (``[vsyscall]`` dropped)."""
    out: List[KVma] = []
    for line in text.splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and len(head[1]) == 4 and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            out.append(KVma(lo, hi, head[1][:3].replace("-", ""), int(head[2], 16), " ".join(head[5:]), frozenset()))
        elif head[0] == "VmFlags:" and out:
            out[-1].flags = frozenset(head[1:])
    return [v for v in out if v.path != "[vsyscall]"]


@dataclass
class Proc:
    sock: socket.socket
    pid: int


@dataclass
class PageState:
    """One page-table entry as pagemap shows it: kind ``z`` (present, not anonymous: the
    zero page or a page-cache page), ``anon`` (with its PFN and mapcount) or ``swap``
    (with its swap entry)."""

    kind: str
    value: int = 0
    mapcount: int = 0


@dataclass
class KernelState:
    """What the kernel shows of the processes alive after an operation."""

    vmas: Dict[int, List[KVma]] = field(default_factory=dict)  # symbol -> VMAs
    pages: Dict[Tuple[int, int], PageState] = field(default_factory=dict)  # (symbol, addr) -> state


class LiveKernel:
    """Real processes run trace lines; see the module docstring.

    ``region``: the ``[lo, hi)`` address range whose pages are observed (the fuzzer's
    windows); ``files``: the file identities the trace may map (``f<ID>`` files of
    ``file_pages`` pages each, in a private working directory); ``ids`` / ``flt``: the
    tracepoint ids and filters (:func:`.perf._event_ids`, :func:`.perf.filters`)."""

    def __init__(
        self,
        exe: Path,
        ids: Dict[str, int],
        flt: Dict[str, str],
        region: Tuple[int, int],
        files: Sequence[int] = (1, 2, 3),
        file_pages: int = 1024,
        timeout: float = 30.0,
    ) -> None:
        self.exe, self.region, self.timeout = exe, region, timeout
        self.procs: Dict[int, Proc] = {}  # symbol -> process
        self.next_sym = 1
        self._socks: List[socket.socket] = []
        self.cgroup: Optional[Cgroup] = None
        self.counters: Optional[Counters] = None
        self.dispatcher: Optional[subprocess.Popen[bytes]] = None
        self.workdir = Path(tempfile.mkdtemp(prefix="rmapsim-fuzz-"))
        try:
            for f in files:
                with open(self.workdir / f"f{f}", "wb") as fh:
                    fh.write(bytes([f & 0xFF]) * (file_pages * PAGE))
                    fh.flush()
                    # Clean page cache from the start: MADV_PAGEOUT reclaims clean file
                    # pages at once but dirty ones only after writeback, which would make
                    # the kernel's answer depend on when the flusher ran.
                    os.fsync(fh.fileno())
            root = cgroup2_root()
            if root is None:
                raise KernelUnavailable("needs a cgroup v2 hierarchy (no cgroup2 mount in /proc/mounts)")
            self.cgroup = Cgroup(root, f"rmapsim-fuzz-{os.getpid()}-{id(self) & 0xFFFF:x}")
            self.counters = Counters(-1, ids, flt, cgroup_fd=self.cgroup.fd, cpus=_cpus())
            self._start_dispatcher()
            self._kpageflags = os.open("/proc/kpageflags", os.O_RDONLY)
            self._kpagecount = os.open("/proc/kpagecount", os.O_RDONLY)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ processes

    def _start_dispatcher(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cg = self.cgroup
        assert cg is not None
        procs_file = str(cg.path / "cgroup.procs")
        fd = theirs.fileno()

        cpu = max(os.sched_getaffinity(0))

        def child() -> None:  # runs in the forked child before exec
            os.dup2(fd, 3)
            with open(procs_file, "w") as f:
                f.write("0")
            # One CPU for the whole driver tree: a page faulted in waits in that CPU's
            # LRU batch, which MADV_PAGEOUT's lru_add_drain() empties only on its own CPU;
            # a page left in another CPU's batch cannot be isolated and is not paged out.
            os.sched_setaffinity(0, {cpu})

        self.dispatcher = subprocess.Popen(
            [str(self.exe), "dispatch"],
            preexec_fn=child,
            pass_fds=(3,),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        ours.settimeout(self.timeout)
        self._socks.append(ours)
        self._disp = ours
        ret, err = self._reply(ours, "dispatcher start")
        if err:
            raise KernelUnavailable(f"the driver's dispatcher failed to start: {os.strerror(err)}")

    def _reply(self, sock: socket.socket, what: str) -> Tuple[int, int]:
        try:
            msg = sock.recv(64)
        except socket.timeout:
            raise RuntimeError(f"the driver did not answer {what} within {self.timeout:g} s") from None
        if len(msg) != _REP.size:
            raise RuntimeError(f"the driver process ended during {what}")
        ret, err = _REP.unpack(msg)
        return ret, err

    def _send(self, sock: socket.socket, op: str, args: Sequence[int] = (), fd: Optional[int] = None) -> None:
        vals = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (7 - len(args))
        msg = _REQ.pack(OP[op], *vals)
        if fd is None:
            sock.send(msg)
        else:
            socket.send_fds(sock, [msg], [fd])

    def _new_process(self, via: socket.socket, op: str, args: Sequence[int] = ()) -> Tuple[int, int]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.settimeout(self.timeout)
        self._socks.append(ours)
        try:
            self._send(via, op, args, fd=theirs.fileno())
        finally:
            theirs.close()
        ret, err = self._reply(via, op)
        if err:
            ours.close()
            return -1, err
        pid, _ = self._reply(ours, f"{op}: the new process's start")
        self.procs[self.next_sym] = Proc(ours, pid)
        self.next_sym += 1
        return self.next_sym - 1, 0

    def reset(self) -> None:
        """Exit every process left (a new sequence starts with none), symbols from p1 again."""
        for sym in sorted(self.procs):
            self._exit(sym)
        self.next_sym = 1

    def _exit(self, sym: int) -> None:
        p = self.procs.pop(sym)
        self._send(p.sock, "exit")
        try:
            rest = p.sock.recv(64)  # end of file once the process (and its mm) is gone
        except socket.timeout:
            raise RuntimeError(f"process p{sym} (pid {p.pid}) did not exit within {self.timeout:g} s") from None
        if rest:
            raise RuntimeError(f"process p{sym} answered an exit")
        p.sock.close()
        # The socket closes in exit_files, after exit_mm; wait for the task to be gone too.
        deadline = time.monotonic() + self.timeout
        while Path(f"/proc/{p.pid}").exists() and time.monotonic() < deadline:
            try:
                if Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                    break
            except (OSError, IndexError):
                break
            time.sleep(0.0005)

    # ------------------------------------------------------------------ operations

    def run(self, line: str) -> Tuple[int, int]:
        """Run one trace line; returns ``(value, errno)``: the new symbol (spawn, fork), the
        address (mmap, mremap), the break (brk) or 0, and errno 0 on success."""
        tok = line.split()
        word = tok[0]
        if word == "spawn":
            return self._new_process(self._disp, "spawn")
        sym = int(tok[1][1:])
        proc = self.procs.get(sym)
        if proc is None:
            raise ValueError(f"trace line {line!r}: p{sym} is not alive")
        if word == "fork":
            return self._new_process(proc.sock, "fork")
        if word == "exit":
            self._exit(sym)
            return 0, 0
        if word == "brkbase":  # the loader's heap base: the kernel's is what it is
            return 0, 0
        op, args = self._request(word, tok[2:])
        self._send(proc.sock, op, args)
        if word == "exec":
            ret, err = self._reply(proc.sock, "exec")
            if err:
                return ret, err
            return 0, 0
        ret, err = self._reply(proc.sock, word)
        return (ret if word in ("mmap", "mremap", "brk") else 0), err

    def _request(self, word: str, t: List[str]) -> Tuple[str, List[int]]:
        """The driver request of trace operation ``word`` with arguments ``t``."""
        if word == "exec":
            return "exec", []
        if word == "mmap":
            return "mmap", self._mmap_args(t)
        if word in ("munmap", "munlock"):
            return word, [_num(t[0]), _num(t[1])]
        if word == "mprotect":
            return word, [_num(t[0]), _num(t[1]), prot_bits(t[2])]
        if word == "madvise":
            return word, [_num(t[0]), _num(t[1]), ADVICE[t[2]]]
        if word == "touch":
            return word, [_num(t[0]), _num(t[1]), int(t[2] == "w")]
        if word == "brk":
            return word, [_num(t[0])]
        if word == "mremap":
            flags = MREMAP_MAYMOVE if t[3] == "move" else 0
            new = 0
            rest = t[4:]
            if rest and rest[0] not in ("dontunmap",):
                new = _num(rest[0])
                flags |= MREMAP_FIXED
            if "dontunmap" in rest:
                flags |= MREMAP_DONTUNMAP
            return word, [_num(t[0]), _num(t[1]), _num(t[2]), flags, new]
        if word == "mlock":
            if "onfault" in t[2:]:
                return "mlock2", [_num(t[0]), _num(t[1]), MLOCK_ONFAULT]
            return word, [_num(t[0]), _num(t[1])]
        if word == "mlockall":
            return word, [sum(MCL[w] for w in t)]
        if word == "munlockall":
            return word, []
        if word == "memory_merge":
            return word, [int(t[0] == "on")]
        raise ValueError(f"the live driver cannot run trace operation {word!r}")

    @staticmethod
    def _mmap_args(t: List[str]) -> List[int]:
        addr = 0 if t[0] == "-" else _num(t[0])
        flags = MAP_PRIVATE
        fid, off, rest = 0, 0, t[3:]
        if rest[:1] == ["file"]:
            fid, off, rest = _num(rest[1]), _num(rest[2]), rest[3:]
        if t[0] != "-":
            flags |= MAP_FIXED_NOREPLACE if "noreplace" in rest else MAP_FIXED
        flags |= MAP_NORESERVE if "noreserve" in rest else 0
        flags |= MAP_STACK if "stack" in rest else 0
        flags |= MAP_LOCKED if "locked" in rest else 0
        return [addr, _num(t[1]), prot_bits(t[2]), flags, fid, off]

    # ------------------------------------------------------------------ observation

    def counts(self) -> Dict[str, int]:
        """Allocations and frees so far per cache and kind, ``{"anon_vma_alloc": n, ...}``."""
        assert self.counters is not None
        return self.counters.read()

    def observe(self) -> KernelState:
        """VMAs and region page states of every live process."""
        st = KernelState()
        lo, hi = self.region
        for sym, p in sorted(self.procs.items()):
            vmas = parse_smaps_flags(Path(f"/proc/{p.pid}/smaps").read_text())
            st.vmas[sym] = vmas
            with open(f"/proc/{p.pid}/pagemap", "rb", buffering=0) as pm:
                for v in vmas:
                    if v.end <= lo or v.start >= hi:
                        continue
                    n = (v.end - v.start) // PAGE
                    raw = os.pread(pm.fileno(), n * 8, v.start // PAGE * 8)
                    for i, (e,) in enumerate(struct.iter_unpack("Q", raw)):
                        ps = self._page_state(e)
                        if ps is not None:
                            st.pages[(sym, v.start + i * PAGE)] = ps
        return st

    def _page_state(self, e: int) -> Optional[PageState]:
        if e >> 63 & 1:
            pfn = e & ((1 << 55) - 1)
            (flags,) = struct.unpack("Q", os.pread(self._kpageflags, 8, pfn * 8))
            if not flags >> 12 & 1:  # KPF_ANON
                return PageState("z")
            (count,) = struct.unpack("Q", os.pread(self._kpagecount, 8, pfn * 8))
            return PageState("anon", pfn, count)
        if e >> 62 & 1:
            return PageState("swap", e & ((1 << 55) - 1))
        return None

    def image(self) -> Any:
        """The driver's own address space at its start (a :class:`.fuzzgen.Image`), read from
        a process spawned for it (and exited)."""
        from .fuzzgen import Image
        from .scenarios import parse_smaps

        self.reset()
        sym, err = self.run("spawn")
        if err:
            raise KernelUnavailable(f"the driver cannot spawn a process: {os.strerror(err)}")
        pid = self.procs[sym].pid
        text = Path(f"/proc/{pid}/smaps").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        start_brk = int(fields[44])  # field 47 of proc(5)
        vmas = parse_smaps_flags(text)
        anon = {m.start: m.anonymous_kb for m in parse_smaps(text)}
        heap = [v for v in vmas if v.path == "[heap]"]
        brk = heap[0].end if heap else start_brk
        self.reset()
        return Image(vmas, start_brk, brk, anon)

    # ------------------------------------------------------------------ cleanup

    def close(self) -> None:
        """Kill and remove everything this session made (safe to call twice)."""
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()
        self._socks, self.procs = [], {}
        for fd in ("_kpageflags", "_kpagecount"):
            if hasattr(self, fd):
                with contextlib.suppress(OSError):
                    os.close(getattr(self, fd))
                delattr(self, fd)
        if self.counters is not None:
            self.counters.close()
            self.counters = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.dispatcher is not None:
            with contextlib.suppress(OSError):
                self.dispatcher.kill()
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.dispatcher.wait(timeout=self.timeout)
            self.dispatcher = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LiveKernel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def zero_counts() -> Dict[str, int]:
    return {f"{c}_{k}": 0 for c in CACHES for k in KINDS}
