"""``rmapsim record``: turn what a real program does into a trace.

The command runs under ``strace -f`` with address-space randomisation off (the
``ADDR_NO_RANDOMIZE`` personality, inherited by every process it starts), and its
fork/vfork/clone/clone3/execve/exit/mmap/munmap/mprotect/mremap/brk/madvise calls, the
mlock family (mlock, mlock2, munlock, mlockall, munlockall) and
``prctl(PR_SET_MEMORY_MERGE)`` become trace operations (``docs/replay.md`` documents the mapping). Addresses are the ones the
kernel returned, so later calls that name them line up.

What strace cannot see, and what is assumed instead:

* **Page faults.** Which pages get written is a documented, selectable assumption
  (``writes``): ``touched`` (default) writes the first page of every private writable
  mapping when it is made (the loader's relocations, malloc's arena header, a stack),
  which is what decides whether a VMA has an anon_vma; ``all`` writes every page of it;
  ``none`` writes nothing.
* **execve's own mappings.** The kernel maps the executable, its ``PT_INTERP`` (ld.so),
  ``[vvar]``/``[vdso]`` and the stack inside execve. They are rebuilt from the ELF program
  headers at the addresses the kernel uses without randomisation on x86-64: a PIE at
  ``ELF_ET_DYN_BASE`` (0x555555554000), an ET_EXEC at its link address, ld.so just below
  ``mmap_base`` (TASK_SIZE − 128 MiB), vvar/vdso below it, the stack under TASK_SIZE sized
  as setup_arg_pages does (the argument and environment strings' pages plus 32).
* **Threads** (``clone`` with ``CLONE_VM``) share their process's address space; a
  ``vfork`` child (or ``clone3``/``clone`` with ``CLONE_VM|CLONE_VFORK``) borrows its
  parent's until it execs, which then makes a new process.
* Shared mappings are replayed as never-written file mappings (they have no anon rmap).
  ``MAP_NORESERVE`` (0x4000) becomes the trace's ``noreserve``: the VMA gets VM_NORESERVE and
  is not charged (glibc maps the heaps of a threaded program's non-main malloc arenas so).
  ``MAP_STACK`` (0x20000, glibc's thread stacks) becomes ``stack``: VM_NOHUGEPAGE in eras
  from 6.7, so the stack stays apart from plain anonymous neighbours.
  ``MAP_FIXED_NOREPLACE`` (0x100000) becomes ``noreplace`` (the call succeeded, so the range
  was free: the replay maps it there too, or, before 4.17, takes the address as a hint).
  ``mremap``'s ``MREMAP_DONTUNMAP`` (4) becomes ``dontunmap`` and ``madvise(MADV_FREE)`` (8)
  the advice ``free``. ``MAP_LOCKED`` (0x2000) becomes ``locked``: VM_LOCKED, and the range
  is faulted in at once.

Calls that failed are skipped, except an mprotect or madvise that failed with ENOMEM: a
range with a hole, which the kernel changed up to the hole (mprotect) or around it
(madvise) before failing. The trace's ``# era`` line is the default era with
``holes=kernel``, and ``replay`` adds ``holes=kernel`` to any ``--era`` too, so these calls,
a munmap of nothing and an mremap shrinking over holes replay as the kernel ran them.
Calls the simulator refuses on replay (a range the reconstruction missed) are counted by
``replay`` and do not stop it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .exec_image import (  # noqa: F401 (re-exported: rmapsim.record names them)
    ELF_ET_DYN_BASE,
    MMAP_BASE_NORANDOM,
    STACK,
    STACK_EXPAND_PAGES,
    TASK_SIZE,
    VDSO_PAGES,
    Segment,
    _c_string_bytes,
    _split_args,
    _string_array_bytes,
    elf_image,
    image_for,
    mmap_base_for,
    script_interpreter,
    stack_pages,
)

PAGE = 4096
WRITES = ("touched", "all", "none")
ADDR_NO_RANDOMIZE = 0x0040000

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\w+)(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_EXIT = re.compile(r"^\+\+\+ (exited with \d+|killed by \w+.*) \+\+\+$")
_FD_PATH = re.compile(r"^-?\d+<(.*)>$")
_PID_CHANGED = re.compile(r"<pid changed to (\d+) \.\.\.>$")

_ADVICE = {
    "MADV_NORMAL": "normal",
    "MADV_RANDOM": "random",
    "MADV_SEQUENTIAL": "sequential",
    "MADV_DONTNEED": "dontneed",
    "MADV_DONTFORK": "dontfork",
    "MADV_DOFORK": "dofork",
    "MADV_WIPEONFORK": "wipeonfork",
    "MADV_KEEPONFORK": "keeponfork",
    "MADV_PAGEOUT": "pageout",
    "MADV_HUGEPAGE": "hugepage",
    "MADV_NOHUGEPAGE": "nohugepage",
    "MADV_DONTDUMP": "dontdump",
    "MADV_DODUMP": "dodump",
    "MADV_FREE": "free",
    "0x8": "free",
    "MADV_MERGEABLE": "mergeable",
    "MADV_UNMERGEABLE": "unmergeable",
}


def _prot(s: str) -> str:
    if s in ("PROT_NONE", "0"):
        return "none"
    p = "".join(c for flag, c in (("PROT_READ", "r"), ("PROT_WRITE", "w"), ("PROT_EXEC", "x")) if flag in s)
    return p or "none"


MAP_NORESERVE = 0x4000
MAP_STACK = 0x20000
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_DONTUNMAP = 4
MAP_LOCKED = 0x2000
#: prctl's option number of PR_SET_MEMORY_MERGE (6.4), for an strace that prints it bare.
PR_SET_MEMORY_MERGE = 67


def _has_flag(flags: str, name: str, bit: int) -> bool:
    """Do strace's mmap flags (``MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE``, unnamed bits
    as hex) include ``name``?"""
    for tok in flags.split("|"):
        tok = tok.strip()
        if tok == name or (tok[:1].isdigit() and _num(tok) & bit):
            return True
    return False


def _map_words(flags: str) -> str:
    """The trace words for MAP_NORESERVE, MAP_STACK, MAP_FIXED_NOREPLACE and MAP_LOCKED in
    strace's mmap flags (in the trace's order: " noreserve", " stack", " noreplace",
    " locked"), or ""."""
    words = (("MAP_NORESERVE", MAP_NORESERVE, " noreserve"), ("MAP_STACK", MAP_STACK, " stack"))
    words += (("MAP_FIXED_NOREPLACE", MAP_FIXED_NOREPLACE, " noreplace"), ("MAP_LOCKED", MAP_LOCKED, " locked"))
    return "".join(w for name, bit, w in words if _has_flag(flags, name, bit))


def _num(s: str) -> int:
    s = s.strip()
    if s == "NULL":
        return 0
    return int(s, 0)


_LOCK_CALLS = ("mlock", "mlock2", "munlock", "mlockall", "munlockall", "prctl")


def _lock_line(p: int, name: str, args: List[str]) -> Optional[str]:
    """The trace line of a successful mlock-family call or prctl(PR_SET_MEMORY_MERGE), or
    None for another prctl. Addresses and lengths go as the program passed them: the
    simulator rounds them out to pages as do_mlock does."""
    if name in ("mlock", "mlock2", "munlock"):
        word = "munlock" if name == "munlock" else "mlock"
        onfault = name == "mlock2" and "MLOCK_ONFAULT" in (args + [""])[2]
        return f"{word} p{p} {_num(args[0]):#x} {_num(args[1]):#x}{' onfault' if onfault else ''}"
    if name == "munlockall":
        return f"munlockall p{p}"
    if name == "mlockall":
        flags = (args + [""])[0].strip()
        names = (("current", "MCL_CURRENT"), ("future", "MCL_FUTURE"), ("onfault", "MCL_ONFAULT"))
        bits = _num(flags) if flags[:1].isdigit() else 0  # a bare number: 1, 2, 4
        return f"mlockall p{p}" + "".join(f" {w}" for i, (w, f) in enumerate(names) if f in flags or bits >> i & 1)
    option = (args + [""])[0].strip()
    if option == "PR_SET_MEMORY_MERGE" or (option[:1].isdigit() and _num(option.split()[0]) == PR_SET_MEMORY_MERGE):
        return f"memory_merge p{p} {'on' if _num((args + ['0', '0'])[1]) else 'off'}"
    return None


@dataclass
class Converter:
    """strace -f log → trace operations (see the module doc)."""

    writes: str = "touched"
    ops: List[str] = field(default_factory=list)
    sym: Dict[int, int] = field(default_factory=dict)  # strace pid -> process symbol
    members: Dict[int, set] = field(default_factory=dict)  # symbol -> live pids using its mm
    borrowed: Dict[int, int] = field(default_factory=dict)  # vfork child pid -> parent symbol
    nproc: int = 0
    files: Dict[str, int] = field(default_factory=dict)
    shared_ids: int = 0
    stack_guessed: int = 0  # execves whose strings strace abbreviated: a 33-page stack assumed
    skipped: Dict[str, int] = field(default_factory=dict)
    seen: Dict[str, int] = field(default_factory=dict)
    # child pid -> queue of (parent pid, kind), in log order (pids get reused)
    creators: Dict[int, Any] = field(default_factory=lambda: collections.defaultdict(collections.deque))
    started: bool = False  # the traced command's process exists (later unknown tasks are not it)
    cwd: Dict[int, str] = field(default_factory=dict)  # pid -> working directory
    start_cwd: str = field(default_factory=os.getcwd)
    mmap_base: int = MMAP_BASE_NORANDOM
    based: set = field(default_factory=set)  # symbols whose mm has a brk base
    base_of: Dict[int, int] = field(default_factory=dict)  # symbol -> its brk base
    brk_seen: Dict[int, int] = field(default_factory=dict)  # symbol -> highest break so far

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def _file_id(self, key: str) -> int:
        if key.startswith("/"):
            key = os.path.realpath(key)  # python3 -> python3.11, /lib64/ld-linux... -> /usr/lib/...
        return self.files.setdefault(key, len(self.files) + 1)

    def _new_proc(self, pid: int, op: str) -> int:
        self.started = True
        self.ops.append(op)
        self.nproc += 1
        self.sym[pid] = self.nproc
        self.members[self.nproc] = {pid}
        return self.nproc

    def _touch(self, p: int, start: int, end: int) -> None:
        if self.writes == "none" or end <= start:
            return
        length = PAGE if self.writes == "touched" else end - start
        self.ops.append(f"touch p{p} {start:#x} {length:#x} w")

    def _map(self, p: int, seg: Segment) -> None:
        fpart = f" file {self._file_id(seg.file)} {seg.offset:#x}" if seg.file else ""
        self.ops.append(f"mmap p{p} {seg.start:#x} {seg.end - seg.start:#x} {seg.prot}{fpart}")
        if seg.written and "w" in seg.prot:
            self._touch(p, seg.start, seg.end)

    def _ensure(self, pid: int) -> Optional[int]:
        """The process symbol of ``pid``, creating the process when this is a child's
        first line (strace may print it before the parent's clone returns)."""
        if pid in self.sym:
            return self.sym[pid]
        if pid in self.borrowed:
            return self.borrowed[pid]
        queue = self.creators.get(pid)
        if not queue:
            if not self.started:  # the traced command itself
                self.cwd[pid] = self.start_cwd
                return self._new_proc(pid, "spawn")
            return None
        ppid, kind = queue.popleft()
        parent = self._ensure(ppid)
        if parent is None:
            return None
        self.cwd[pid] = self.cwd.get(ppid, self.start_cwd)
        if kind == "thread":
            self.sym[pid] = parent
            self.members[parent].add(pid)
            return parent
        if kind == "vfork":  # vfork, or CLONE_VM without CLONE_THREAD: the parent's mm until exec
            self.borrowed[pid] = parent
            return parent
        child = self._new_proc(pid, f"fork p{parent}")
        if parent in self.based:  # dup_mm copies the heap bounds
            self.based.add(child)
        return child

    def _exit_pid(self, pid: int) -> None:
        if pid in self.borrowed:
            del self.borrowed[pid]
            return
        p = self.sym.pop(pid, None)
        if p is None:
            return
        m = self.members.get(p, set())
        m.discard(pid)
        if not m:
            self.ops.append(f"exit p{p}")
            del self.members[p]

    def _execve(self, pid: int, args: List[str]) -> None:
        path = args[0].strip('"') if args else ""
        if path and not path.startswith("/"):
            path = os.path.normpath(os.path.join(self.cwd.get(pid, self.start_cwd), path))
        try:
            image = image_for(path, self.mmap_base)
        except (OSError, ValueError, struct.error):
            image = [Segment(STACK[0], STACK[1], "rw", 0, None, True)]
            self._skip("execve of an unreadable or non-ELF image (stack only)")
        pages = stack_pages(args, path)
        if pages is not None:  # the real size, from the strings (else the 33-page default)
            image[-1] = Segment(STACK[1] - pages * PAGE, STACK[1], "rw", 0, None, True)
        else:
            self.stack_guessed += 1
        if pid in self.borrowed:  # vfork child: a new mm of its own now
            del self.borrowed[pid]
            p = self._new_proc(pid, "spawn")
        else:
            p = self.sym[pid]
            # other threads of the old image are gone after a successful execve
            for other in list(self.members.get(p, set())):
                if other != pid:
                    self.sym.pop(other, None)
            self.members[p] = {pid}
            self.ops.append(f"exec p{p}")
        self.based.discard(p)
        for seg in image:
            self._map(p, seg)

    def call(self, pid: int, name: str, args: List[str], ret: str, tail: str = "") -> None:
        self.seen[name] = self.seen.get(name, 0) + 1
        failed = ret.startswith("-") or ret == "?"
        if failed and name in ("mprotect", "madvise") and tail.split()[:1] == ["ENOMEM"]:
            failed = False  # a range with a hole: changed up to it (kept for holes=kernel)
        if name in ("exit", "exit_group"):
            return  # the "+++ exited" line ends the task
        p = self._ensure(pid)
        if p is None:
            self._skip("call by a task of unknown origin")
            return
        if name == "execve" or name == "execveat":
            if not failed:
                self._execve(pid, args[1:] if name == "execveat" else args)
            return
        if failed:
            self._skip(f"{name} failed")
            return
        if name in ("fork", "vfork", "clone", "clone3"):
            return  # children are created on their first line (creators)
        if name == "chdir":
            base = self.cwd.get(pid, self.start_cwd)
            self.cwd[pid] = os.path.normpath(os.path.join(base, args[0].strip('"')))
            return
        if name == "fchdir":
            m = _FD_PATH.match(args[0])
            if m:
                self.cwd[pid] = m.group(1)
            return
        if name == "mmap":
            addr, length, prot, flags, fd, off = (args + [""] * 6)[:6]
            start, length = _num(ret), _num(length)
            length = (length + PAGE - 1) & ~(PAGE - 1)
            m = _FD_PATH.match(fd)
            if "MAP_SHARED" in flags:
                self.shared_ids += 1
                key = f"shared:{m.group(1) if m else 'anon'}:{self.shared_ids if not m else ''}"
                self.ops.append(
                    f"mmap p{p} {start:#x} {length:#x} {_prot(prot)} file {self._file_id(key)} "
                    f"{_num(off):#x}{_map_words(flags)}"
                )
                return
            fpart = f" file {self._file_id(m.group(1))} {_num(off):#x}" if (m and "MAP_ANONYMOUS" not in flags) else ""
            self.ops.append(f"mmap p{p} {start:#x} {length:#x} {_prot(prot)}{fpart}{_map_words(flags)}")
            if "PROT_WRITE" in prot:
                self._touch(p, start, start + length)
        elif name == "munmap":
            length = (_num(args[1]) + PAGE - 1) & ~(PAGE - 1)
            self.ops.append(f"munmap p{p} {_num(args[0]):#x} {length:#x}")
        elif name == "mprotect" or name == "pkey_mprotect":
            length = (_num(args[1]) + PAGE - 1) & ~(PAGE - 1)
            self.ops.append(f"mprotect p{p} {_num(args[0]):#x} {length:#x} {_prot(args[2])}")
            if "PROT_WRITE" in args[2]:  # made writable to be used (glibc's thread stacks, arenas)
                self._touch(p, _num(args[0]), _num(args[0]) + length)
        elif name == "mremap":
            old, oldlen, newlen = _num(args[0]), _num(args[1]), _num(args[2])
            up = lambda x: (x + PAGE - 1) & ~(PAGE - 1)  # noqa: E731
            new = _num(ret)
            move = "move" if "MREMAP_MAYMOVE" in args[3] else "nomove"
            tail = f" {new:#x}" if new != old else ""
            if tail and move == "nomove":
                move = "move"
            keep = " dontunmap" if _has_flag(args[3], "MREMAP_DONTUNMAP", MREMAP_DONTUNMAP) else ""
            self.ops.append(f"mremap p{p} {old:#x} {up(oldlen):#x} {up(newlen):#x} {move}{tail}{keep}")
        elif name == "brk":
            cur = _num(ret)
            if p not in self.based:  # glibc's first brk(NULL) after exec: the loader's base
                self.ops.append(f"brkbase p{p} {cur:#x}")
                self.based.add(p)
                self.base_of[p] = cur
                self.brk_seen[p] = cur
            if _num(args[0]) != 0:
                self.ops.append(f"brk p{p} {cur:#x}")
                if cur > self.brk_seen.get(p, 0):  # grown: malloc writes what it got
                    self._touch(p, (self.brk_seen.get(p, 0) or self.base_of.get(p, cur)) & ~(PAGE - 1), cur)
            self.brk_seen[p] = max(self.brk_seen.get(p, 0), cur)
        elif name in _LOCK_CALLS:
            line = _lock_line(p, name, args)
            if line is None:
                self._skip(f"{name} {', '.join(a.strip() for a in args[:1])} (no rmap effect modelled)")
                return
            self.ops.append(line)
        elif name == "madvise":
            adv = _ADVICE.get(args[2].strip())
            if adv is None:
                self._skip(f"madvise {args[2].strip()} (no rmap effect modelled)")
                return
            length = (_num(args[1]) + PAGE - 1) & ~(PAGE - 1)
            self.ops.append(f"madvise p{p} {_num(args[0]):#x} {length:#x} {adv}")

    def convert(self, lines: Sequence[str]) -> List[str]:
        """Convert a whole ``strace -f -o`` log."""
        events: List[Tuple[int, str]] = []
        pending: Dict[int, str] = {}
        for raw in lines:
            m = _LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
                continue
            changed = _PID_CHANGED.search(rest)
            if changed:  # execve by a non-leader thread: it resumes as the leader
                pending[int(changed.group(1))] = rest[: changed.start()].rstrip()
                continue
            r = _RESUMED.match(rest)
            if r:
                rest = pending.pop(pid, r.group(1) + "(") + r.group(2)
            events.append((pid, rest))
        # first pass: who created which task, and how
        for pid, rest in events:
            c = _CALL.match(rest)
            if not c or c.group(1) not in ("fork", "vfork", "clone", "clone3"):
                continue
            try:
                child = int(c.group(3))
            except ValueError:
                continue
            if child <= 0:
                continue
            a = c.group(2)
            name = c.group(1)
            if "CLONE_THREAD" in a:
                kind = "thread"
            elif name == "vfork" or "CLONE_VM" in a:
                kind = "vfork"
            else:
                kind = "fork"
            self.creators[child].append((pid, kind))
        for pid, rest in events:
            if _EXIT.match(rest):
                self._ensure(pid)
                self._exit_pid(pid)
                continue
            c = _CALL.match(rest)
            if not c:
                continue
            try:
                self.call(pid, c.group(1), _split_args(c.group(2)), c.group(3), c.group(4))
            except (ValueError, IndexError):
                self._skip(f"{c.group(1)}: unparsed arguments")
        for p in sorted(self.members):  # tasks strace lost track of
            self.ops.append(f"exit p{p}")
        self.members.clear()
        return self.ops


def convert_log(
    text: str, writes: str = "touched", cwd: Optional[str] = None, mmap_base: int = MMAP_BASE_NORANDOM
) -> Tuple[List[str], Dict[str, Any]]:
    """Trace lines (without header) and conversion statistics for an ``strace -f`` log.
    ``cwd``: where the command started (relative execve paths); ``mmap_base``: see
    :func:`mmap_base_for`."""
    from ..errors import InvalidArgument, short_repr

    if not isinstance(text, str):
        raise InvalidArgument(f"text must be the strace log as a string, got {short_repr(text)}")
    if not isinstance(writes, str) or writes not in WRITES:
        raise InvalidArgument(f"writes must be one of {', '.join(WRITES)}, got {short_repr(writes)}")
    if cwd is not None and not isinstance(cwd, str):
        raise InvalidArgument(f"cwd must be a directory path or None, got {short_repr(cwd)}")
    if isinstance(mmap_base, bool) or not isinstance(mmap_base, int) or not 0 < mmap_base < 2**64:
        raise InvalidArgument(f"mmap_base must be an address, got {short_repr(mmap_base)}")
    c = Converter(writes=writes, mmap_base=mmap_base)
    if cwd is not None:
        c.start_cwd = cwd
    ops = c.convert(text.splitlines())
    return ops, {
        "processes": c.nproc,
        "files": len(c.files),
        "syscalls": c.seen,
        "skipped": c.skipped,
        "stack_guessed": c.stack_guessed,
    }


# ---------------------------------------------------------------------------------------
# Recording, with the live kernel's own chain/VMA memory sampled during the same run
# ---------------------------------------------------------------------------------------


def _no_aslr() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality(ADDR_NO_RANDOMIZE)


class KernelSampler:
    """Machine-wide live anon_vma / anon_vma_chain / vm_area_struct objects added since start,
    sampled every ``interval`` seconds (allocations minus frees, kmem tracepoints)."""

    def __init__(self, interval: float = 0.05) -> None:
        from . import kernel

        why = kernel.probe()
        if why:
            raise kernel.KernelUnavailable(why)
        self._stack = contextlib.ExitStack()
        try:
            tfs = self._stack.enter_context(kernel.tracefs())
            self.counters = kernel.Counters(-1, kernel._event_ids(tfs), kernel.filters())
            self._stack.callback(self.counters.close)
            self.base = self.counters.read()
        except BaseException:
            self._stack.close()  # unmount the tracefs we mounted
            raise
        self.interval = interval
        self.samples: List[Dict[str, int]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.objsize = slab_object_sizes()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.live())

    def live(self) -> Dict[str, int]:
        now = self.counters.read()
        return {
            c: (now[f"{c}_alloc"] - self.base[f"{c}_alloc"]) - (now[f"{c}_free"] - self.base[f"{c}_free"])
            for c in ("anon_vma", "anon_vma_chain", "vm_area_struct")
        }

    def start(self) -> KernelSampler:
        self._t.start()
        return self

    def stop(self) -> Dict[str, Any]:
        self._stop.set()
        self._t.join()
        try:
            self.samples.append(self.live())
        finally:
            self._stack.close()  # counters, then tracefs
        return summarize_kernel(self.samples, self.objsize)


def slab_object_sizes() -> Dict[str, int]:
    """Slab object sizes (``/proc/slabinfo`` objsize; anon_vma_chain's merged cache: 64)."""
    sizes = {"anon_vma": 0, "anon_vma_chain": 64, "vm_area_struct": 0}
    with contextlib.suppress(OSError):
        for line in Path("/proc/slabinfo").read_text().splitlines()[2:]:
            f = line.split()
            if f and f[0] in sizes:
                sizes[f[0]] = int(f[3])
    return sizes


def summarize_kernel(samples: Sequence[Dict[str, int]], objsize: Dict[str, int]) -> Dict[str, Any]:
    """Peak and time-mean of the build's live objects and of the chain/VMA byte ratio."""
    rows = [s for s in samples if s["vm_area_struct"] > 0]
    if not rows:
        return {"samples": len(samples)}
    ratio = [
        s["anon_vma_chain"] * objsize["anon_vma_chain"] / (s["vm_area_struct"] * objsize["vm_area_struct"])
        for s in rows
    ]
    peak = max(rows, key=lambda s: s["vm_area_struct"])
    return {
        "samples": len(samples),
        "objsize": objsize,
        "peak": peak,
        "ratio_at_peak": peak["anon_vma_chain"]
        * objsize["anon_vma_chain"]
        / (peak["vm_area_struct"] * objsize["vm_area_struct"]),
        "ratio_mean": sum(ratio) / len(ratio),
        "count_ratio_at_peak": peak["anon_vma_chain"] / peak["vm_area_struct"],
    }


def record(
    command: Sequence[str],
    out: Path,
    writes: str = "touched",
    kernel_ratio: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Run ``command`` under strace, write the trace to ``out``; returns a summary
    (conversion statistics, and the live kernel's ratio during the run when asked)."""
    strace = shutil.which("strace")
    if strace is None:
        raise FileNotFoundError("strace is not installed (Debian: apt-get install strace)")
    if writes not in WRITES:
        raise ValueError(f"writes must be one of {', '.join(WRITES)}, got {writes!r}")
    sampler = KernelSampler().start() if kernel_ratio else None
    with tempfile.TemporaryDirectory(prefix="rmapsim-record-") as tmp:
        log = Path(tmp) / "strace.log"
        t0 = time.perf_counter()
        try:
            # -v -s: execve's argument and environment strings in full (the stack's size)
            rc = subprocess.run(
                [
                    strace,
                    "-f",
                    "-q",
                    "-y",
                    "-v",
                    "-s",
                    "1048576",
                    "-e",
                    "trace=%process,%memory,chdir,fchdir,prctl",
                    "-e",
                    "signal=none",
                    "-o",
                    str(log),
                    "--",
                    *command,
                ],
                preexec_fn=_no_aslr,
            ).returncode
        finally:
            ksum = sampler.stop() if sampler else None
        wall = time.perf_counter() - t0
        import resource

        rl = resource.getrlimit(resource.RLIMIT_STACK)[0]
        base = mmap_base_for(1 << 62 if rl == resource.RLIM_INFINITY else rl)  # unlimited: the upper clamp
        ops, stats = convert_log(log.read_text(errors="replace"), writes, cwd=os.getcwd(), mmap_base=base)
    from .. import DEFAULT_ERA

    header = [
        "# rmapsim trace v1",
        f"# recorded: {' '.join(command)}",
        f"# exit status {rc}, {wall:.1f} s under strace",
        f"# writes: {writes}",
        f"# kernel: {platform.release()}",
        # real programs munmap ranges with nothing mapped and mprotect or madvise ranges with
        # holes: the trace replays with the kernel's rules for them (replay adds holes=kernel
        # to any --era too)
        f"# era {DEFAULT_ERA}+holes=kernel",
    ]
    if ksum and "ratio_at_peak" in ksum:
        pk = ksum["peak"]
        header.append(
            f"# kernel-live: peak vm_area_struct {pk['vm_area_struct']} anon_vma_chain {pk['anon_vma_chain']} "
            f"anon_vma {pk['anon_vma']}; chain/VMA bytes at peak {ksum['ratio_at_peak']:.4f} "
            f"mean {ksum['ratio_mean']:.4f}"
        )
    out.write_text("\n".join(header + ops) + "\n")
    summary = {"command": list(command), "exit_status": rc, "wall_s": wall, "ops": len(ops), **stats}
    if ksum is not None:
        summary["kernel"] = ksum
    if progress:
        progress(f"recorded {len(ops)} operations from {stats['processes']} processes in {wall:.1f} s")
    return summary


def memory_report(ops_text: Any, eras: Sequence[str], every: int = 0) -> List[Dict[str, Any]]:
    """Replay a trace (text, or an op array already parsed) in each era, sampling object
    counts and bytes over time; per era the peak (by VMA bytes) and time-mean chain/VMA byte ratio."""
    import numpy as np

    from .. import Simulator
    from .. import trace as tr
    from ..errors import InvalidArgument, short_repr

    if isinstance(eras, (str, bytes)) or not isinstance(eras, Sequence):
        raise InvalidArgument(f"eras must be a list of era names, got {short_repr(eras)}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise InvalidArgument(f"every must be an int >= 0, got {short_repr(every)}")
    if isinstance(ops_text, str):
        ops = tr.parse(ops_text)
    elif isinstance(ops_text, (list, np.ndarray)):
        ops = ops_text
    else:
        raise InvalidArgument(f"ops_text must be trace text or a parsed op array, got {short_repr(ops_text)}")
    every = every or max(1, len(ops) // 200)
    out = []
    for era in eras:
        sim = Simulator(era=era)
        t0 = time.perf_counter()
        res = sim.apply(ops, sample_every=every)
        dt = time.perf_counter() - t0
        s = res.samples
        vb = s["vma_bytes"].astype(float)
        cb = s["anon_vma_chain_bytes"].astype(float)
        ok = vb > 0
        i = int(np.argmax(vb))
        out.append(
            {
                "era": era,
                "ops": len(ops),
                "errors": len(res.errors()),
                "replay_s": dt,
                "samples": s,
                "peak": {k: int(s[k][i]) for k in s.dtype.names},
                "ratio_at_peak": float(cb[i] / vb[i]) if vb[i] else 0.0,
                "ratio_mean": float((cb[ok] / vb[ok]).mean()) if ok.any() else 0.0,
                "count_ratio_at_peak": float(s["anon_vma_chain"][i] / s["vma"][i]) if s["vma"][i] else 0.0,
            }
        )
    return out


def kernel_line(text: str) -> Optional[str]:
    for line in text.splitlines()[:10]:
        if line.startswith("# kernel-live:"):
            return line[len("# kernel-live:") :].strip()
    return None


__all__ = [
    "WRITES",
    "Converter",
    "convert_log",
    "elf_image",
    "image_for",
    "memory_report",
    "record",
    "summarize_kernel",
    "KernelSampler",
]
