"""merge.c's cases (tools/testing/selftests/mm/merge.c, 23-case version) on the simulator: the
helpers of tests/data/merge_selftest.c re-done on a Simulator (``Run``), then one function
per TEST_F written against them exactly as the C program writes them against the kernel.
Page numbers are relative to the 30-page carveout at BASE.

A line is ``NAME: q A-B ... | S-E:PERM:FLAGS ... | pass|FAIL`` (see merge_selftest.c's
header): the VMA each of merge.c's ``find_vma_procmap`` calls found, every VMA of the test
window at the end, and whether merge.c's checks held. The expected ranges (``expect``'s
arguments) are merge.c's own constants, not anything the simulator computes."""

from __future__ import annotations

import rmapsim

from helpers import DATA, recorded_lines

P = 4096
BASE = 0x2000_0000  # merge_selftest.c's carveout address
WINDOW = 4096 * P
RECORDING = DATA / "merge_selftest.out"
PROGRAM = DATA / "merge_selftest.c"
FLAG_WORDS = (("account", "ac"), ("noreserve", "nr"), ("mergeable", "mg"))


def pg(addr: int) -> int:
    return (addr - BASE) // P


class Run:
    """One case in one Simulator: the carveout, then merge.c's operations in process
    ``self.p`` (which a forked case replaces by the child, as the C program continues in
    the child)."""

    def __init__(self, era: str, name: str):
        self.sim = rmapsim.Simulator(era=era, seed=0)
        self.p = self.sim.spawn()
        self.name = name
        self.q: list = []
        self.failed = False
        self.carveout = BASE
        self.sim.mmap(self.p, 30 * P, addr=BASE, prot="none")

    # merge.c's calls
    def map_at(self, page: int, pages: int, prot: str = "rw", noreserve: bool = False) -> int:
        return self.sim.mmap(self.p, pages * P, addr=BASE + page * P, prot=prot, noreserve=noreserve)

    def move(self, old: int, pages: int, to: int, dontunmap: bool = False) -> int:
        return self.sim.mremap(self.p, old, pages * P, pages * P, may_move=True, new_addr=to, dontunmap=dontunmap)

    def write(self, addr: int) -> None:
        self.sim.touch(self.p, addr, P, write=True)

    def fork(self) -> None:
        self.p = self.sim.fork(self.p)

    def expect(self, addr: int, start: int, length: int) -> None:
        """merge.c's ``ASSERT_TRUE(find_vma_procmap(addr))`` and its start/end checks."""
        hit = [v for v in self.sim.vmas(self.p) if v["start"] <= addr < v["end"]]
        if not hit:
            self.q.append("none")
            self.failed = True
            return
        v = hit[0]
        self.q.append(f"{pg(v['start'])}-{pg(v['end'])}")
        if (v["start"], v["end"]) != (start, start + length):
            self.failed = True

    # the output
    def layout(self) -> str:
        out = []
        for v in self.sim.vmas(self.p):
            if v["end"] <= BASE or v["start"] >= BASE + WINDOW:
                continue
            perm = "".join(c if c in v["prot"] else "-" for c in "rwx")
            flags = ",".join(w for f, w in FLAG_WORDS if f in v["flags"]) or "-"
            out.append(f"{pg(v['start'])}-{pg(v['end'])}:{perm}:{flags}")
        return " ".join(out)

    def line(self) -> str:
        q = "".join(f" q {r}" for r in self.q)
        return f"{self.name}:{q} | {self.layout()} | {'FAIL' if self.failed else 'pass'}"


def recorded() -> dict:
    """The live kernel's line of each case, by name (``NAME`` or ``NAME/VARIANT``)."""
    return {line.split(":", 1)[0]: line for line in recorded_lines(RECORDING)}


def live_lines(tmp_path) -> dict:
    from helpers import run_c_program

    return {line.split(":", 1)[0]: line for line in run_c_program(PROGRAM, tmp_path)}


def at(page: int) -> int:
    return BASE + page * P


# ----------------------------------------------------------------- the merge fixture


# The five mprotect cases share one shape: map `pages` MAP_NORESERVE pages at `first`, then
# a script of ("ro", page, n) = mprotect(ptr + page, n pages, PROT_READ) and ("write", page)
# = ptr[page * P] = 'x', then merge.c's one query: the VMA at ptr must be all `pages`.
MPROTECT_SCRIPTS = {
    "mprotect_unfaulted_left": (1, 10, [("ro", 0, 5), ("write", 5), ("ro", 5, 5)]),
    "mprotect_unfaulted_right": (1, 10, [("ro", 5, 5), ("write", 0), ("ro", 0, 5)]),
    "mprotect_unfaulted_both": (2, 9, [("ro", 0, 3), ("ro", 6, 3), ("write", 3), ("ro", 3, 3)]),
    "mprotect_faulted_left_unfaulted_right": (2, 9, [("ro", 6, 3), ("write", 0), ("ro", 0, 3), ("ro", 3, 3)]),
    "mprotect_unfaulted_left_faulted_right": (2, 9, [("ro", 0, 3), ("write", 3), ("ro", 6, 3), ("ro", 3, 3)]),
}


def mprotect_script(name: str):
    first, pages, script = MPROTECT_SCRIPTS[name]

    def case(r: Run) -> None:
        ptr = r.map_at(first, pages, noreserve=True)
        for step in script:
            if step[0] == "ro":
                r.sim.mprotect(r.p, ptr + step[1] * P, step[2] * P, "r")
            else:
                r.write(ptr + step[1] * P)
        r.expect(ptr, ptr, pages * P)

    case.__name__ = name
    return case


def forked_target_vma(r: Run) -> None:
    ptr = r.map_at(1, 5)
    r.write(ptr)
    r.fork()
    for i in range(5):
        r.write(ptr + i * P)
    r.sim.mmap(r.p, 5 * P, addr=ptr + 5 * P)
    r.expect(ptr, ptr, 5 * P)


def forked_source_vma(r: Run) -> None:
    ptr = r.map_at(1, 5, noreserve=True)
    r.write(ptr)
    r.fork()
    for i in range(5):
        r.write(ptr + i * P)
    ptr2 = r.map_at(6, 5, prot="rwx", noreserve=True)
    r.expect(ptr2, ptr2, 5 * P)
    r.sim.mprotect(r.p, ptr, 5 * P, "rwx")
    r.expect(ptr2, ptr2, 5 * P)


def ksm_merge(r: Run) -> None:
    ptr, ptr2 = r.map_at(1, 1), r.map_at(2, 1)
    r.expect(ptr, ptr, 2 * P)
    r.sim.munmap(r.p, ptr2, P)
    r.sim.set_memory_merge(r.p, True)  # prctl(PR_SET_MEMORY_MERGE, 1)
    ptr2 = r.map_at(2, 1)
    r.expect(ptr, ptr, 2 * P)
    r.sim.munmap(r.p, ptr, 2 * P)
    ptr, ptr2 = r.map_at(1, 1), r.map_at(2, 1)
    r.expect(ptr, ptr, 2 * P)


def mremap_unfaulted_to_faulted(r: Run) -> None:
    ptr, ptr2 = r.map_at(1, 5), r.map_at(7, 5)
    ptr2 = r.move(ptr2, 5, ptr2 + 1000 * P)
    r.write(ptr)
    ptr2 = r.move(ptr2, 5, ptr + 5 * P)
    r.expect(ptr, ptr, 10 * P)


def mremap_unfaulted_behind_faulted(r: Run) -> None:
    ptr, ptr2 = r.map_at(6, 5), r.map_at(14, 5)
    ptr2 = r.move(ptr2, 5, ptr2 + 1000 * P)
    r.write(ptr)
    ptr2 = r.move(ptr2, 5, at(1))
    r.expect(ptr2, ptr2, 10 * P)


def three_apart(r: Run, write_third: bool):
    """Both between_* cases' start: three 5-page areas at 1, 7 and 14; the third moved 2000
    pages away, the second 1000; the first written (and the third, if asked); the third
    moved back right after a gap for the second."""
    ptr, ptr2, ptr3 = r.map_at(1, 5), r.map_at(7, 5), r.map_at(14, 5)
    ptr3 = r.move(ptr3, 5, ptr3 + 2000 * P)
    ptr2 = r.move(ptr2, 5, ptr2 + 1000 * P)
    r.write(ptr)
    if write_third:
        r.write(ptr3)
    return ptr, ptr2, r.move(ptr3, 5, ptr + 10 * P)


def mremap_unfaulted_between_faulted(r: Run) -> None:
    ptr, ptr2, ptr3 = three_apart(r, write_third=True)
    ptr2 = r.move(ptr2, 5, ptr + 5 * P)
    r.expect(ptr, ptr, 10 * P)
    r.expect(ptr3, ptr3, 5 * P)


def mremap_unfaulted_between_faulted_unfaulted(r: Run) -> None:
    ptr, ptr2, _ = three_apart(r, write_third=False)
    ptr2 = r.move(ptr2, 5, ptr + 5 * P)
    r.expect(ptr, ptr, 15 * P)


def mremap_unfaulted_between_correctly_placed_faulted(r: Run) -> None:
    ptr = r.map_at(1, 15)
    r.write(ptr)
    r.sim.munmap(r.p, ptr + 5 * P, 5 * P)
    ptr2 = r.map_at(20, 5)
    ptr2 = r.move(ptr2, 5, ptr + 5 * P)
    r.expect(ptr, ptr, 15 * P)


def mremap_correct_placed_faulted(r: Run) -> None:
    ptr = r.map_at(1, 15)
    r.write(ptr)
    ptr3 = r.move(ptr + 10 * P, 5, ptr + 10 * P + 2000 * P)
    ptr2 = r.move(ptr + 5 * P, 5, ptr + 5 * P + 1000 * P)
    ptr2 = r.move(ptr2, 5, ptr + 5 * P)
    r.expect(ptr, ptr, 10 * P)
    ptr = r.move(ptr, 5, ptr + 1000 * P)
    ptr = r.move(ptr, 5, at(1))
    r.expect(ptr, ptr, 10 * P)
    ptr = r.move(ptr, 5, ptr + 1000 * P)
    ptr3 = r.move(ptr3, 5, ptr2 + 5 * P)
    r.expect(ptr2, ptr2, 10 * P)
    ptr = r.move(ptr, 5, at(1))
    r.expect(ptr, ptr, 15 * P)
    ptr2 = r.move(ptr2, 5, ptr2 + 1000 * P)
    ptr2 = r.move(ptr2, 5, ptr + 5 * P)
    r.expect(ptr, ptr, 15 * P)
    ptr3 = r.move(ptr3, 5, ptr3 + 1000 * P)
    ptr3 = r.move(ptr3, 5, ptr + 10 * P)
    r.expect(ptr, ptr, 15 * P)


def by_name(*cases) -> dict:
    return {f.__name__: f for f in cases}


MERGE = by_name(
    *(mprotect_script(name) for name in MPROTECT_SCRIPTS),
    forked_target_vma,
    forked_source_vma,
    mremap_unfaulted_to_faulted,
    mremap_unfaulted_behind_faulted,
    mremap_unfaulted_between_faulted,
    mremap_unfaulted_between_faulted_unfaulted,
    mremap_unfaulted_between_correctly_placed_faulted,
    mremap_correct_placed_faulted,
)

# --------------------------------------------- the merge_with_fork fixture (two variants)


def written_forked_moved_out(r: Run, page: int, pages: int, forked: bool) -> int:
    """The common start: map `pages` at `page`, write the first, fork in the forked variant
    (the child goes on), move the first 3 pages out of the way to page 20."""
    ptr = r.map_at(page, pages)
    r.write(ptr)
    if forked:
        r.fork()
    return r.move(ptr, 3, at(20))


def mremap_faulted_to_unfaulted_prev(r: Run, forked: bool) -> None:
    ptr_a = written_forked_moved_out(r, 4, 3, forked)
    ptr_b = r.map_at(1, 3)
    ptr_a = r.move(ptr_a, 3, at(4), dontunmap=True)
    r.expect(ptr_b, ptr_b, (3 if forked else 6) * P)


def mremap_faulted_to_unfaulted_next(r: Run, forked: bool) -> None:
    ptr_a = written_forked_moved_out(r, 1, 3, forked)
    r.map_at(4, 3)
    ptr_a = r.move(ptr_a, 3, at(1), dontunmap=True)
    r.expect(ptr_a, ptr_a, (3 if forked else 6) * P)


def mremap_faulted_to_unfaulted_prev_unfaulted_next(r: Run, forked: bool) -> None:
    ptr_b = written_forked_moved_out(r, 4, 3, forked)
    ptr_a = r.map_at(1, 3)
    r.map_at(7, 3)
    ptr_b = r.move(ptr_b, 3, at(4), dontunmap=True)
    r.expect(ptr_a, ptr_a, (3 if forked else 9) * P)
    if forked:
        r.expect(ptr_b, ptr_b, 3 * P)


def mremap_faulted_to_unfaulted_prev_faulted_next(r: Run, forked: bool) -> None:
    ptr_b = written_forked_moved_out(r, 4, 6, forked)  # B [4,7) moved, C [7,10) stays
    ptr_a = r.map_at(1, 3)
    ptr_b = r.move(ptr_b, 3, at(4), dontunmap=True)
    if forked:
        r.expect(ptr_b, ptr_b, 6 * P)
    else:
        r.expect(ptr_a, ptr_a, 9 * P)


WITH_FORK = by_name(
    mremap_faulted_to_unfaulted_prev,
    mremap_faulted_to_unfaulted_next,
    mremap_faulted_to_unfaulted_prev_unfaulted_next,
    mremap_faulted_to_unfaulted_prev_faulted_next,
)


def run_case(era: str, name: str, variant: str = "") -> Run:
    """Run merge.c's case ``name`` (``variant`` "forked"/"unforked" for merge_with_fork)."""
    r = Run(era, f"{name}/{variant}" if variant else name)
    if variant:
        WITH_FORK[name](r, variant == "forked")
    elif name == "ksm_merge":
        ksm_merge(r)
    else:
        MERGE[name](r)
    return r


# ------------------------------------------------- allocation counts (the count mode)
# merge_selftest.c NAME runs one case's body between two waits, with its queries turned
# off; the perf kmem tracepoint counters of `rmapsim validate-kernel` (anon_vma,
# anon_vma_chain and vm_area_struct allocations and frees of that process) are read at the
# waits. Forking cases are left out (a per-process counter does not follow the child).

COUNTS = DATA / "merge_selftest_counts.out"


def counted_cases() -> list:
    return [n for n in MERGE if not n.startswith("forked")] + [f"{n}/unforked" for n in WITH_FORK]


def simulated_counts(era: str, name: str) -> dict:
    """The simulator's objects allocated and freed by the case's body, per cache
    (allocations: every site of the cache; frees: allocations minus the change in live
    objects)."""
    base, _, variant = name.partition("/")
    r = Run(era, name)
    sites0, live0 = r.sim.allocation_sites(), r.sim.counts()
    if variant:
        WITH_FORK[base](r, False)
    else:
        MERGE[base](r)
    sites1, live1 = r.sim.allocation_sites(), r.sim.counts()
    row = {}
    for cache, live in (("anon_vma", "anon_vma"), ("anon_vma_chain", "anon_vma_chain"), ("vm_area_struct", "vma")):
        alloc = sum(n - sites0.get(k, 0) for k, n in sites1.items() if k.split("@")[0] == cache)
        row[f"{cache}_alloc"] = alloc
        row[f"{cache}_free"] = alloc - (live1[live] - live0[live])
    return row


def recorded_counts() -> dict:
    out = {}
    for line in recorded_lines(COUNTS):
        name, *rest = line.split()
        out[name] = {k: int(v) for k, v in zip(rest[::2], rest[1::2])}
    return out


def live_counts(tmp_path) -> dict:
    """Build merge_selftest.c and run each counted case under the counters."""
    import subprocess

    from rmapsim.tools.kernel.perf import _event_ids, filters, tracefs

    from helpers import counted_run

    exe = tmp_path / "merge_selftest"
    subprocess.run(["cc", "-O0", "-o", str(exe), str(PROGRAM)], check=True, capture_output=True)
    with tracefs() as tfs:
        ids, flt = _event_ids(tfs), filters()
        return {name: counted_run([str(exe), name], ids, flt) for name in counted_cases()}
