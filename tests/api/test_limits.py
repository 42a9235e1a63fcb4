"""Issue 14: nothing kills or corrupts. Sparse page tables (memory follows touched pages,
not mapped length), the kernel's pid_max (alloc_pid's EAGAIN), the simulated RAM limit,
the host-memory guard under an address-space cap, the full page-index range, and the
caps on CPUs, threads and time units."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import rmapsim
from rmapsim import PAGE_SIZE

TIB = 1 << 40


def full_state(sim):
    """Everything a failing call must leave unchanged."""
    return (
        sim.counts(),
        sim.allocations(),
        {int(p): sim.vmas(int(p)) for p in sim.pids()},
    )


def pte_bytes(sim):
    return sim.memory_usage()["pte"]["bytes"]


# --- sparse page tables ------------------------------------------------------------------


def test_one_touched_page_of_64_tib_then_64_forks_costs_one_table_page_each():
    s = rmapsim.Simulator()
    p = s.spawn()
    a = s.mmap(p, 1 << 46)
    s.touch(p, a, PAGE_SIZE)
    kids = s.fork_many(p, 64)
    s.check()
    assert s.counts()["pte"] == 65
    # 65 page-table pages of 512 entries (4 KiB and a little bookkeeping each)
    assert s.memory_usage()["pte"]["slots"] == 65 * 512
    assert pte_bytes(s) < 300 * 1024
    s.touch_many(kids, a, PAGE_SIZE)  # 64 COW copies
    s.check()
    s.exit_many(list(kids) + [p])
    assert all(v == 0 for v in s.counts().values())


def test_page_table_pages_appear_with_their_first_entry_and_go_with_their_last():
    s = rmapsim.Simulator()
    p = s.spawn()
    a = s.mmap(p, 4 * TIB)
    far = a + 3 * TIB
    s.touch(p, a, PAGE_SIZE)
    s.touch(p, far, 2 * PAGE_SIZE)
    assert s.memory_usage()["pte"]["slots"] == 2 * 512
    s.madvise(p, a, PAGE_SIZE, "dontneed")
    assert s.memory_usage()["pte"]["slots"] == 512
    s.munmap(p, far, PAGE_SIZE)  # splits the VMA; the other entry keeps its table page
    assert s.counts()["pte"] == 1 and s.memory_usage()["pte"]["slots"] == 512
    s.check()


def test_mremap_of_one_page_to_32_tib_and_a_move_of_a_sparse_64_tib_mapping():
    s = rmapsim.Simulator()
    p = s.spawn()
    b = s.mmap(p, PAGE_SIZE)
    s.touch(p, b, PAGE_SIZE)
    c = s.mremap(p, b, PAGE_SIZE, 32 * TIB)
    s.touch(p, c + 32 * TIB - PAGE_SIZE, PAGE_SIZE)
    s.check()
    assert s.counts()["pte"] == 2
    # move the whole sparse mapping: only its two entries travel
    d = s.mmap(p, 32 * TIB)
    s.munmap(p, d, 32 * TIB)
    e = s.mremap(p, c, 32 * TIB, 32 * TIB, may_move=True, new_addr=d)
    assert e == d
    assert s.page_at(p, d) is not None and s.page_at(p, d + 32 * TIB - PAGE_SIZE) is not None
    s.check()


def test_fork_of_a_sparse_mapping_shares_exactly_the_touched_pages():
    s = rmapsim.Simulator(era="2.6.34")
    p = s.spawn()
    a = s.mmap(p, TIB)
    offs = [0, 1 << 21, 1 << 30, TIB - PAGE_SIZE]
    for o in offs:
        s.touch(p, a + o, PAGE_SIZE)
    c = s.fork(p)
    for o in offs:
        assert s.page_at(c, a + o) == s.page_at(p, a + o)
    assert s.page_at(c, a + PAGE_SIZE) is None
    stats = s.rmap_walk()
    assert stats.mappings_found.tolist() == [2, 2, 2, 2]
    s.check()


# --- pid_max -------------------------------------------------------------------------------


def test_fork_beyond_pid_max_is_eagain_and_changes_nothing():
    s = rmapsim.Simulator(pid_max=310)
    p = s.spawn()
    a = s.mmap(p, 4 * PAGE_SIZE)
    s.touch(p, a, 4 * PAGE_SIZE)
    kids = s.fork_many(p, 308)  # pids 2..309: every pid below 310 is in use
    assert s.pid_max == 310 and int(kids[-1]) == 309
    before = full_state(s)
    with pytest.raises(rmapsim.TryAgain, match="pid_max 310"):
        s.fork(p)
    with pytest.raises(rmapsim.TryAgain):
        s.spawn()
    assert full_state(s) == before
    # after the wrap, alloc_pid reuses from RESERVED_PIDS (300) up, never below
    s.exit(5)
    with pytest.raises(rmapsim.TryAgain):
        s.fork(p)
    s.exit(303)
    assert s.fork(p) == 303
    s.check()


@pytest.mark.parametrize("n", [10**9, 2**40, 2**62])
def test_fork_many_beyond_the_free_pids_refuses_up_front(n):
    s = rmapsim.Simulator()
    p = s.spawn()
    s.mmap(p, PAGE_SIZE)
    before = full_state(s)
    with pytest.raises(rmapsim.TryAgain, match="4194302 pids are free"):
        s.fork_many(p, n)
    assert full_state(s) == before


@pytest.mark.parametrize("bad", [0, 300, 4194305, -1, 2**70])
def test_pid_max_outside_the_sysctl_range_is_refused(bad):
    with pytest.raises(rmapsim.InvalidArgument, match=f"pid_max must be an int from 301 to 4194304, got {bad}"):
        rmapsim.Simulator(pid_max=bad)


# --- simulated RAM -------------------------------------------------------------------------


@pytest.mark.parametrize("era", rmapsim.eras())
def test_touch_beyond_simulated_ram_is_oom_with_a_consistent_state(era):
    s = rmapsim.Simulator(era=era, ram=1 << 20)
    assert s.ram == 1 << 20
    p = s.spawn()
    a = s.mmap(p, 1 << 30)
    with pytest.raises(rmapsim.OutOfMemory, match="simulated RAM is full"):
        s.touch(p, a, 1 << 30)
    s.check()
    assert s.ram_used() <= 1 << 20
    assert s.counts()["page"] == (1 << 20) // PAGE_SIZE - 1  # the VMA and its rmap take the rest
    s.exit(p)
    assert all(v == 0 for v in s.counts().values())


def test_fork_beyond_simulated_ram_unwinds_like_enomem():
    s = rmapsim.Simulator(era="6.18")
    p = s.spawn()
    a = s.mmap(p, 8 * PAGE_SIZE)
    s.touch(p, a, 8 * PAGE_SIZE)
    s.set_ram(s.ram_used() + 100)  # room for no more VMA + anon_vma + chain
    before = full_state(s)
    with pytest.raises(rmapsim.OutOfMemory):
        s.fork(p)
    assert full_state(s)[0] == before[0]  # the half-built child is torn down
    s.check()


@pytest.mark.parametrize("bad", [0, 4095, -1])
def test_ram_below_one_page_is_refused(bad):
    with pytest.raises(rmapsim.InvalidArgument, match=f"ram must be.*got {bad}"):
        rmapsim.Simulator(ram=bad)


# --- the host-memory guard: a clean exception instead of a signal ---------------------------


def run_capped(code: str, cap_gib: int = 4) -> subprocess.CompletedProcess:
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({cap_gib} << 30, {cap_gib} << 30))\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


TOUCH_1_TIB = """
        import rmapsim
        s = rmapsim.Simulator()
        p = s.spawn()
        a = s.mmap(p, 1 << 40)
        try:
            s.touch(p, a, 1 << 40)
        except rmapsim.OutOfMemory as e:
            print("OOM:", "host memory" in str(e))
        s.check()
        s.exit(p)
        print(sorted(set(s.counts().values())))
    """


def test_write_touch_of_1_tib_under_a_2_gib_cap_raises_out_of_memory():
    r = run_capped(TOUCH_1_TIB, cap_gib=2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:2] == ["OOM: True", "[0]"]


@pytest.mark.slow
def test_write_touch_of_1_tib_under_a_4_gib_cap_raises_out_of_memory():
    r = run_capped(TOUCH_1_TIB, cap_gib=4)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:2] == ["OOM: True", "[0]"]


def test_64_tib_mapping_with_one_touched_page_and_forks_fits_in_a_small_cap():
    r = run_capped(
        """
        import rmapsim
        s = rmapsim.Simulator()
        p = s.spawn()
        a = s.mmap(p, 1 << 46)
        s.touch(p, a, 4096)
        s.fork_many(p, 64)
        s.check()
        print(s.counts()["pte"])
    """,
        cap_gib=1,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "65"


# --- the full page-index range ---------------------------------------------------------------


@pytest.mark.parametrize("offset", [1 << 44, 1 << 48, (1 << 64) - (1 << 20)])
def test_file_offsets_the_kernel_accepts_keep_their_page_index(offset):
    s = rmapsim.Simulator()
    p = s.spawn()
    a = s.mmap(p, 4 * PAGE_SIZE, file=1, offset=offset)
    s.touch(p, a, 4 * PAGE_SIZE)
    c = s.fork(p)
    s.touch(c, a, 4 * PAGE_SIZE)
    s.check()
    idx = sorted(s.page_info(pg)["index"] for pg in s.rmap_walk().page.tolist())
    base = offset // PAGE_SIZE
    assert idx == sorted([base, base + 1, base + 2, base + 3] * 2)
    s.exit(c)
    s.exit(p)
    assert all(v == 0 for v in s.counts().values())


def test_file_offset_whose_last_page_overflows_is_refused_without_change():
    s = rmapsim.Simulator()
    p = s.spawn()
    before = full_state(s)
    with pytest.raises(rmapsim.InvalidArgument, match="file offset"):
        s.mmap(p, 2 * PAGE_SIZE, file=1, offset=(1 << 64) - PAGE_SIZE)
    assert full_state(s) == before


# --- caps on CPUs, threads and time units -------------------------------------------------


@pytest.fixture
def small():
    s = rmapsim.Simulator()
    p = s.spawn()
    a = s.mmap(p, 16 * PAGE_SIZE)
    s.touch(p, a, 16 * PAGE_SIZE)
    s.fork(p)
    return s


@pytest.mark.parametrize("cpus", [0, 8193, 2**28])
def test_contention_cpus_beyond_nr_cpus_is_refused(small, cpus):
    with pytest.raises(rmapsim.InvalidArgument, match=f"cpus must be .*got {cpus}"):
        small.contention(cpus=cpus)


def test_contention_at_nr_cpus_runs(small):
    assert small.contention(cpus=8192).hold_time > 0


def test_contention_time_that_would_wrap_is_refused(small):
    with pytest.raises(rmapsim.InvalidArgument, match="overflow 64-bit time"):
        small.contention(per_candidate=2**63)


@pytest.mark.parametrize("kind", ["rmap_walk", "page_referenced"])
def test_threads_beyond_the_cap_are_refused(small, kind):
    with pytest.raises(rmapsim.InvalidArgument, match="threads must be an int from 1 to 1024.*got 100000"):
        getattr(small, kind)(threads=100000)
    assert getattr(small, kind)(threads=1024).summary()["walks"] == 16
