"""tests/data/mlock_ksm.c's calls replayed on the simulator, printing what the program
prints (tests/data/mlock_ksm.out is its run on the live 6.18): each step's call results
and the VMAs of [BASE, BASE + 16 pages) with their lo / lf / mg flags and anonymous pages.

The program's processes: the main one (the lock steps, then the KSM steps), a child
forked for each ``fork`` in the program, and a child of its own for the mlockall steps
(mlockall changes the whole process). Only the window's mappings are replayed: the rest of
a real process's address space (its libraries, stack, heap) is outside every dump, and
mlockall's locking of it shows in no line. The recording is the kernel's, so the replay runs
with ``holes="kernel"`` unless told otherwise: in strict mode the two calls that the kernel
fails part way (mlock over a hole in step "hole", MADV_DONTNEED reaching a locked VMA in
step "madvise") change nothing instead."""

from __future__ import annotations

import rmapsim
import rmapsim.trace

from helpers import layout_states

P = 4096
BASE = 0x1000_0000
END = BASE + 16 * P
KERNEL_ERRNO = {"BadAddress": "ENOMEM", "OutOfMemory": "ENOMEM", "InvalidArgument": "EINVAL", "TryAgain": "EAGAIN"}


def A(i: int) -> int:
    return BASE + i * P


class Program:
    """One replay; ``out`` collects the printed lines."""

    def __init__(self, era: str, holes: str) -> None:
        self.sim = rmapsim.Simulator(era=era, holes=holes)
        self.out: list = []

    def dump(self, pid: int) -> None:
        states = layout_states(self.sim, pid)
        for v in self.sim.vmas(pid):
            if not (BASE <= v["start"] and v["end"] <= END):
                continue
            perms = "".join(c if c in v["prot"] else "-" for c in "rwx")
            anon = sum(states.get(a) in ("p", "s") for a in range(v["start"], v["end"], P))
            fl = v["flags"]
            marks = " ".join(
                m if n in fl else "-" for m, n in (("lo", "locked"), ("lf", "lockonfault"), ("mg", "mergeable"))
            )
            self.out.append(f"vma {v['start']:#x} {v['end']:#x} {perms} anon={anon} {marks}")

    def ret(self, name: str, call, *args, **kw) -> None:
        try:
            call(*args, **kw)
            self.out.append(f"ret {name} 0")
        except rmapsim.SimError as e:
            self.out.append(f"ret {name} {KERNEL_ERRNO.get(type(e).__name__, 'other')}")

    def quiet(self, call, *args, **kw) -> None:
        """A call whose result the program does not print."""
        try:
            call(*args, **kw)
        except rmapsim.SimError:
            pass

    def map(self, pid: int, page: int, pages: int, prot: str, **kw) -> None:
        self.sim.mmap(pid, pages * P, addr=A(page), prot=prot, **kw)

    def step(self, pid: int, name: str) -> None:
        if any(v["start"] < END and v["end"] > BASE for v in self.sim.vmas(pid)):
            self.sim.munmap(pid, BASE, 16 * P)
        self.out.append(f"step {name}")


def lock_steps(g: Program, p: int) -> None:
    s = g.sim
    g.step(p, "split")
    g.map(p, 0, 4, "rw")
    g.ret("mlock", s.mlock, p, A(1), 2 * P)
    g.dump(p)
    g.ret("munlock", s.munlock, p, A(1), 2 * P)
    g.dump(p)
    g.step(p, "readonly")
    g.map(p, 0, 2, "r")
    g.ret("mlock", s.mlock, p, A(0), 2 * P)
    g.dump(p)
    g.step(p, "none")
    g.map(p, 0, 2, "none")
    g.ret("mlock", s.mlock, p, A(0), 2 * P)
    g.ret("mprotect", s.mprotect, p, A(0), 2 * P, "rw")
    g.dump(p)
    g.step(p, "hole")
    g.map(p, 0, 1, "rw")
    g.map(p, 2, 1, "rw")
    g.ret("mlock", s.mlock, p, A(0), 3 * P)
    g.dump(p)
    g.step(p, "stops")
    g.map(p, 0, 1, "rw")
    g.map(p, 1, 1, "none")
    g.map(p, 2, 1, "rw")
    g.ret("mlock", s.mlock, p, A(0), 3 * P)
    g.dump(p)
    g.step(p, "onfault")
    g.map(p, 0, 2, "rw")
    g.ret("mlock2", s.mlock, p, A(0), 2 * P, onfault=True)
    g.dump(p)
    g.ret("mlock", s.mlock, p, A(0), 2 * P)
    g.dump(p)
    g.step(p, "unaligned")
    g.map(p, 0, 2, "rw")
    g.ret("mlock", s.mlock, p, A(0) + 100, 1)
    g.dump(p)
    g.step(p, "map_locked")
    g.map(p, 0, 2, "rw", locked=True)
    g.map(p, 2, 2, "rw")
    g.map(p, 4, 2, "rw", locked=True)
    g.map(p, 6, 2, "rw", locked=True)
    g.dump(p)
    g.step(p, "madvise")
    g.map(p, 0, 1, "rw")
    s.touch(p, A(0), P, write=True)
    g.map(p, 1, 1, "r")
    g.quiet(s.mlock, p, A(1), P)
    g.ret("dontneed", s.madvise, p, A(0), 2 * P, "dontneed")
    g.ret("pageout", s.madvise, p, A(1), P, "pageout")
    g.dump(p)
    g.step(p, "mremap")
    g.map(p, 0, 2, "rw")
    g.quiet(s.mlock, p, A(0), 2 * P)
    g.ret("mremap", s.mremap, p, A(0), 2 * P, 4 * P, may_move=False)
    g.dump(p)
    g.step(p, "fork")
    g.map(p, 0, 2, "rw")
    g.quiet(s.mlock, p, A(0), P)
    c = s.fork(p)
    g.dump(c)
    s.exit(c)
    g.dump(p)


def mlockall_steps(g: Program, q: int) -> None:
    s = g.sim
    g.step(q, "mlockall")
    g.map(q, 0, 2, "rw")
    g.ret("mlockall", s.mlockall, q, current=True, future=True)
    g.map(q, 2, 2, "rw")
    g.map(q, 6, 2, "none")
    g.dump(q)
    c = s.fork(q)
    g.map(c, 10, 2, "rw")
    g.dump(c)
    s.exit(c)
    g.ret("munlockall", s.munlockall, q)
    g.dump(q)
    g.step(q, "future_onfault")
    g.map(q, 0, 2, "rw")
    g.ret("mlockall", s.mlockall, q, current=False, future=True, onfault=True)
    g.map(q, 4, 2, "rw")
    g.dump(q)
    g.ret("mlockall", s.mlockall, q, current=False, future=False, onfault=True)
    g.ret("mlockall", s.mlockall, q, current=True)
    g.map(q, 8, 1, "rw")
    g.dump(q)
    s.munlockall(q)


def ksm_steps(g: Program, p: int) -> None:
    s = g.sim
    g.step(p, "mergeable")
    g.map(p, 0, 2, "rw")
    g.map(p, 2, 2, "r")
    g.ret("mergeable", s.madvise, p, A(0), 2 * P, "mergeable")
    g.ret("mprotect", s.mprotect, p, A(2), 2 * P, "rw")
    g.dump(p)
    g.ret("mergeable", s.madvise, p, A(2), 2 * P, "mergeable")
    g.dump(p)
    g.ret("unmergeable", s.madvise, p, A(0), P, "unmergeable")
    g.dump(p)
    g.step(p, "prctl")
    g.map(p, 0, 4, "rw")
    s.madvise(p, A(0), 2 * P, "mergeable")
    g.ret("prctl_on", s.set_memory_merge, p, True)
    g.dump(p)
    g.map(p, 4, 2, "rw")
    g.dump(p)
    g.ret("unmergeable", s.madvise, p, A(4), 2 * P, "unmergeable")
    g.dump(p)
    c = s.fork(p)
    g.out.append(f"child get {int(s.memory_merge(c))}")
    g.map(c, 10, 1, "rw")
    g.dump(c)
    s.exit(c)
    g.ret("prctl_off", s.set_memory_merge, p, False)
    g.dump(p)


def simulate(era: str = "6.18", holes: str = "kernel") -> list:
    """The program's output, as the simulator of ``era`` (and ``holes`` mode) prints it."""
    g = Program(era, holes)
    p = g.sim.spawn()
    lock_steps(g, p)
    q = g.sim.fork(p)  # the mlockall child
    mlockall_steps(g, q)
    g.sim.exit(q)
    ksm_steps(g, p)
    g.sim.check()
    return g.out


def section(lines: list, first: str, last: str = "") -> list:
    """The lines from ``step first`` up to (not including) ``step last`` (or the end)."""
    i = lines.index(f"step {first}")
    j = lines.index(f"step {last}") if last else len(lines)
    return lines[i:j]


def run_trace(body: str) -> rmapsim.Simulator:
    """Parse a trace (``body`` after the header), require that it prints back as given,
    and run it on 6.18 with check() after every operation, no operation failing."""
    text = "# rmapsim trace v1\n" + body
    ops = rmapsim.trace.parse(text)
    assert rmapsim.trace.format(ops) == text
    sim = rmapsim.Simulator(era="6.18")
    assert sim.apply(ops, check_each=True).errors() == []
    return sim
