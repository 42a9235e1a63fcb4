"""Bad input raises the documented exception, names the bad value, and changes nothing.

Contract (docs/api-contract.md): SimError(Exception); NoSuchProcess(SimError, LookupError);
BadAddress(SimError, ValueError); InvalidArgument(SimError, ValueError);
StaleHandle(InvalidArgument); OutOfMemory(SimError, MemoryError);
InvariantViolation(SimError, AssertionError). Messages name the bad value.
A malformed or out-of-range address is a BadAddress; a malformed length (unaligned, zero,
negative) is an InvalidArgument (README's error table). The value must be named in the
message and the state must be unchanged.
"""

from __future__ import annotations

import re

import pytest

import rmapsim

from _simutil import (
    MMAP_BASE,
    PAGE,
    TASK_SIZE,
    page_at,
    snapshot,
    value_pattern,
)

X = 0x4000_0000
UNKNOWN_PID = 424242
ADDR_ERRORS = rmapsim.BadAddress
LEN_ERRORS = rmapsim.InvalidArgument


def expect_error(sim, exc, base, pattern, fn, *args, **kwargs):
    """fn(*args, **kwargs) must raise exc (which is also a `base` and a SimError) with a
    message matching pattern, and leave every observable part of the state unchanged."""
    before = snapshot(sim)
    allocs = sim.allocations()
    with pytest.raises(exc, match=pattern) as ei:
        fn(*args, **kwargs)
    assert isinstance(ei.value, base), f"{type(ei.value).__mro__} is not a {base}"
    assert isinstance(ei.value, rmapsim.SimError)
    assert snapshot(sim) == before
    # bad input is refused before anything is allocated (the kernel validates first)
    assert sim.allocations() == allocs
    sim.check()
    return ei.value


@pytest.fixture
def world(sim):
    """parent: rw [X, X+2P) written, r [X+2P, X+4P) read-touched, hole [X+4P, X+6P),
    none [X+6P, X+7P); child: a fork of parent (shares the rw pages COW); gone: exited."""
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    sim.touch(parent, X, 2 * PAGE, write=True)
    sim.mmap(parent, 2 * PAGE, addr=X + 2 * PAGE, prot="r")
    sim.touch(parent, X + 2 * PAGE, 2 * PAGE, write=False)
    sim.mmap(parent, PAGE, addr=X + 6 * PAGE, prot="none")
    child = sim.fork(parent)
    gone = sim.spawn()
    sim.exit(gone)
    return sim, parent, child, gone


# --------------------------------------------------------------------------- hierarchy


def test_exception_hierarchy():
    assert issubclass(rmapsim.SimError, Exception)
    assert issubclass(rmapsim.NoSuchProcess, rmapsim.SimError)
    assert issubclass(rmapsim.NoSuchProcess, LookupError)
    assert issubclass(rmapsim.BadAddress, rmapsim.SimError)
    assert issubclass(rmapsim.BadAddress, ValueError)
    assert issubclass(rmapsim.InvalidArgument, rmapsim.SimError)
    assert issubclass(rmapsim.InvalidArgument, ValueError)
    assert issubclass(rmapsim.StaleHandle, rmapsim.InvalidArgument)
    assert issubclass(rmapsim.OutOfMemory, rmapsim.SimError)
    assert issubclass(rmapsim.OutOfMemory, MemoryError)
    assert issubclass(rmapsim.InvariantViolation, rmapsim.SimError)
    assert issubclass(rmapsim.InvariantViolation, AssertionError)


# --------------------------------------------------------------------------- pids

PID_OPS = {
    "fork": lambda s, pid, other: s.fork(pid),
    "fork_many": lambda s, pid, other: s.fork_many(pid, 2),
    "exit": lambda s, pid, other: s.exit(pid),
    "exec": lambda s, pid, other: s.exec(pid),
    "mmap": lambda s, pid, other: s.mmap(pid, PAGE),
    "mmap_fixed": lambda s, pid, other: s.mmap(pid, PAGE, addr=X + 16 * PAGE),
    "munmap": lambda s, pid, other: s.munmap(pid, X, PAGE),
    "touch_write": lambda s, pid, other: s.touch(pid, X, PAGE, write=True),
    "touch_read": lambda s, pid, other: s.touch(pid, X, PAGE, write=False),
    # all pids are validated before any is touched: `other` (a live child whose write would
    # COW-copy a page) must stay untouched
    "touch_many": lambda s, pid, other: s.touch_many([other, pid], X, PAGE, write=True),
    "vmas": lambda s, pid, other: s.vmas(pid),
    "page_at": lambda s, pid, other: s.page_at(pid, X),
}


@pytest.mark.parametrize("op", sorted(PID_OPS))
@pytest.mark.parametrize("which", ["unknown", "exited", "zero"])
def test_bad_pid(world, op, which):
    sim, parent, child, gone = world
    pid = {"unknown": UNKNOWN_PID, "exited": gone, "zero": 0}[which]
    expect_error(
        sim,
        rmapsim.NoSuchProcess,
        LookupError,
        value_pattern(pid),
        PID_OPS[op],
        sim,
        pid,
        child,
    )


def test_exit_twice(world):
    sim, parent, child, gone = world
    sim.exit(child)
    expect_error(sim, rmapsim.NoSuchProcess, LookupError, value_pattern(child), sim.exit, child)


# --------------------------------------------------------------------------- alignment / length

ADDR_OPS = {
    "mmap": lambda s, pid, addr, length: s.mmap(pid, length, addr=addr),
    "munmap": lambda s, pid, addr, length: s.munmap(pid, addr, length),
    "touch": lambda s, pid, addr, length: s.touch(pid, addr, length, write=True),
}


@pytest.mark.parametrize("op", sorted(ADDR_OPS))
@pytest.mark.parametrize("offset", [1, 0x800, PAGE - 1])
def test_unaligned_addr(world, op, offset):
    sim, parent, child, gone = world
    addr = X + offset
    expect_error(
        sim, ADDR_ERRORS, ValueError, value_pattern(addr), ADDR_OPS[op], sim, parent, addr, PAGE
    )


@pytest.mark.parametrize("op", sorted(ADDR_OPS))
@pytest.mark.parametrize("length", [1, PAGE + 1, 2 * PAGE - 1])
def test_unaligned_length(world, op, length):
    sim, parent, child, gone = world
    addr = X + 16 * PAGE if op == "mmap" else X
    expect_error(
        sim, LEN_ERRORS, ValueError, value_pattern(length), ADDR_OPS[op], sim, parent, addr, length
    )


@pytest.mark.parametrize("op", sorted(ADDR_OPS))
@pytest.mark.parametrize("length", [0, -PAGE, -1])
def test_zero_or_negative_length(world, op, length):
    sim, parent, child, gone = world
    addr = X + 16 * PAGE if op == "mmap" else X
    expect_error(
        sim, LEN_ERRORS, ValueError, value_pattern(length), ADDR_OPS[op], sim, parent, addr, length
    )


def test_mmap_none_addr_zero_length(world):
    sim, parent, child, gone = world
    expect_error(sim, LEN_ERRORS, ValueError, value_pattern(0), sim.mmap, parent, 0)


# --------------------------------------------------------------------------- range


@pytest.mark.parametrize(
    "addr,length",
    [
        (0, PAGE),  # page 0 (addr=0 is a fixed address, not "no hint")
        (0x1000, PAGE),  # below mmap_min_addr
        (0xF000, PAGE),  # last page below mmap_min_addr
        (0xF000, 2 * PAGE),  # straddles mmap_min_addr
        (TASK_SIZE - PAGE, PAGE),  # x86-64 TASK_SIZE is (1 << 47) - PAGE: last page is not user
        (TASK_SIZE, PAGE),  # first address past the user address space
        (TASK_SIZE - PAGE, 2 * PAGE),  # ends past it
        (1 << 48, PAGE),
        ((1 << 64) - PAGE, 2 * PAGE),  # end wraps around 2**64
    ],
)
def test_mmap_fixed_out_of_range(world, addr, length):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(addr),
        sim.mmap,
        parent,
        length,
        addr=addr,
    )


@pytest.mark.parametrize("addr", [0x1000, TASK_SIZE, 1 << 48])
def test_munmap_and_touch_out_of_range(world, addr):
    sim, parent, child, gone = world
    pat = value_pattern(addr)
    expect_error(sim, rmapsim.BadAddress, ValueError, pat, sim.munmap, parent, addr, PAGE)
    for write in (True, False):
        expect_error(
            sim, rmapsim.BadAddress, ValueError, pat, sim.touch, parent, addr, PAGE, write=write
        )


@pytest.mark.parametrize(
    "addr,length",
    [
        (X + 16 * PAGE, 2 * PAGE),  # nothing anywhere near
        (X + 4 * PAGE, 2 * PAGE),  # exactly the hole between two VMAs
        (X - 4 * PAGE, 4 * PAGE),  # ends right where a VMA starts
        (MMAP_BASE - PAGE, PAGE),  # top of the mmap area, never mapped here
    ],
)
def test_munmap_of_empty_range(world, addr, length):
    sim, parent, child, gone = world
    expect_error(
        sim, rmapsim.BadAddress, ValueError, value_pattern(addr), sim.munmap, parent, addr, length
    )


# --------------------------------------------------------------------------- touch


def test_touch_unmapped(world):
    sim, parent, child, gone = world
    a = X + 16 * PAGE
    for write in (True, False):
        expect_error(
            sim, rmapsim.BadAddress, ValueError, value_pattern(a), sim.touch, child, a, PAGE,
            write=write,
        )


def test_touch_partially_unmapped_changes_nothing(world):
    sim, parent, child, gone = world
    # [X+3P, X+5P): the first page is the child's "r" VMA (no PTE: fork did not copy the
    # anon_vma-less VMA), the second is the hole. A partial read fault would add a PTE.
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(X + 3 * PAGE, X + 4 * PAGE),
        sim.touch,
        child,
        X + 3 * PAGE,
        2 * PAGE,
        write=False,
    )
    # [X, X+5P) written: the rw part would be COW-copied if anything ran before the check
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(X, X + 2 * PAGE, X + 4 * PAGE),
        sim.touch,
        child,
        X,
        5 * PAGE,
        write=True,
    )


def test_write_touch_of_read_only_vma(world):
    sim, parent, child, gone = world
    a = X + 2 * PAGE
    pat = value_pattern(a)
    expect_error(sim, rmapsim.BadAddress, ValueError, pat, sim.touch, parent, a, PAGE, write=True)
    # a range starting in the writable VMA and running into the read-only one: the child's
    # rw pages would be COW-copied by a partial execution
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(X, a),
        sim.touch,
        child,
        X,
        4 * PAGE,
        write=True,
    )


@pytest.mark.parametrize("write", [False, True])
def test_touch_of_prot_none_vma(world, write):
    sim, parent, child, gone = world
    a = X + 6 * PAGE
    expect_error(
        sim, rmapsim.BadAddress, ValueError, value_pattern(a), sim.touch, parent, a, PAGE,
        write=write,
    )


def test_touch_many_validates_every_pid_first(world):
    sim, parent, child, gone = world
    # the child's write alone would be fine (COW copy); the parent's "r" VMA refuses a write
    # at X+2P, so the child must not have been touched either
    a = X + 2 * PAGE
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(X, a),
        sim.touch_many,
        [child, parent],
        X,
        4 * PAGE,
        write=True,
    )


# --------------------------------------------------------------------------- prot / era / n


@pytest.mark.parametrize("prot", ["rww", "q", 5, "rwq", "rwxr", "nonee"])
def test_bad_prot(world, prot):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        re.escape(str(prot)),
        sim.mmap,
        parent,
        PAGE,
        addr=X + 16 * PAGE,
        prot=prot,
    )


@pytest.mark.parametrize("bad_era", ["2.6.99", "linux", ""])
def test_unknown_era(bad_era):
    pattern = re.escape(bad_era) if bad_era else "era"
    with pytest.raises(rmapsim.InvalidArgument, match=pattern) as ei:
        rmapsim.Simulator(era=bad_era, seed=0)
    assert isinstance(ei.value, ValueError)
    assert isinstance(ei.value, rmapsim.SimError)


@pytest.mark.parametrize("n", [0, -1, -5])
def test_fork_many_bad_n(world, n):
    sim, parent, child, gone = world
    expect_error(
        sim, rmapsim.InvalidArgument, ValueError, value_pattern(n), sim.fork_many, parent, n
    )


# --------------------------------------------------------------------------- page handles


@pytest.fixture
def stale(world):
    """A handle of a page freed by munmap (mapped once, then unmapped)."""
    sim, parent, child, gone = world
    a = X + 20 * PAGE
    sim.mmap(parent, PAGE, addr=a)
    sim.touch(parent, a, PAGE, write=True)
    h = page_at(sim, parent, a)
    assert h is not None
    sim.munmap(parent, a, PAGE)
    assert h not in [int(p) for p in sim.anon_pages()]
    return h


@pytest.mark.parametrize("walker", ["page_referenced", "rmap_walk"])
def test_stale_page_handle(world, stale, walker):
    sim, parent, child, gone = world
    fn = getattr(sim, walker)
    expect_error(sim, rmapsim.StaleHandle, ValueError, value_pattern(stale), fn, pages=[stale])
    # one stale handle among live ones fails the whole call
    live = [int(p) for p in sim.anon_pages()]
    expect_error(
        sim, rmapsim.StaleHandle, ValueError, value_pattern(stale), fn, pages=live + [stale]
    )


@pytest.mark.parametrize("walker", ["page_referenced", "rmap_walk"])
@pytest.mark.parametrize("handle", [0xDEADBEEFDEADBEEF, (1 << 64) - 1, 1 << 40])
def test_garbage_page_handle(world, walker, handle):
    sim, parent, child, gone = world
    # StaleHandle is an InvalidArgument, so either is acceptable for a never-issued handle
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        value_pattern(handle),
        getattr(sim, walker),
        pages=[handle],
    )


@pytest.mark.parametrize("walker", ["page_referenced", "rmap_walk"])
def test_negative_page_handle(world, walker):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        value_pattern(-1),
        getattr(sim, walker),
        pages=[-1],
    )
