"""Bad input raises the documented exception, names the bad value, and changes nothing.

Every test runs in every era (conftest `sim`, all ten): argument validation is era independent.

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

from helpers import (
    ADVICE,
    ERA_RULES,
    LINUX_4_14_ADVICE,
    MMAP_BASE,
    PAGE,
    TASK_SIZE,
    counts,
    page_at,
    snapshot,
    value_pattern,
)

X = 0x4000_0000
SW = X + 8 * PAGE  # the world's swap region
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
    none [X+6P, X+7P), hole, rw [X+8P, X+11P) written, its first page swapped out (a swap
    entry) and its second swapped out and read back (mapped from the swap cache);
    child: a fork of parent (shares the rw pages COW and the swap entry); gone: exited."""
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    sim.touch(parent, X, 2 * PAGE, write=True)
    sim.mmap(parent, 2 * PAGE, addr=X + 2 * PAGE, prot="r")
    sim.touch(parent, X + 2 * PAGE, 2 * PAGE, write=False)
    sim.mmap(parent, PAGE, addr=X + 6 * PAGE, prot="none")
    sim.mmap(parent, 3 * PAGE, addr=SW, prot="rw")
    sim.touch(parent, SW, 3 * PAGE, write=True)
    sim.try_to_unmap([page_at(sim, parent, SW), page_at(sim, parent, SW + PAGE)])
    sim.touch(parent, SW + PAGE, PAGE, write=False)
    child = sim.fork(parent)
    gone = sim.spawn()
    sim.exit(gone)
    c = counts(sim)
    assert (c["swap_slot"], c["swap_cache"]) == (2, 2)
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
    "mprotect": lambda s, pid, other: s.mprotect(pid, X, PAGE, "r"),
    "madvise": lambda s, pid, other: s.madvise(pid, X, PAGE, "random"),
    "madvise_dontneed": lambda s, pid, other: s.madvise(pid, X, PAGE, "dontneed"),
    "madvise_pageout": lambda s, pid, other: s.madvise(pid, X, PAGE, "pageout"),
    "mremap": lambda s, pid, other: s.mremap(pid, X, PAGE, 2 * PAGE),
    "mremap_fixed": lambda s, pid, other: s.mremap(pid, X, PAGE, PAGE, new_addr=X + 16 * PAGE),
    "render_layout": lambda s, pid, other: s.render_layout(pid),
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
    "mprotect": lambda s, pid, addr, length: s.mprotect(pid, addr, length, "r"),
    "madvise": lambda s, pid, addr, length: s.madvise(pid, addr, length, "sequential"),
    "madvise_dontneed": lambda s, pid, addr, length: s.madvise(pid, addr, length, "dontneed"),
    # mremap's old_addr / old_len (growing, so that a bad range would otherwise matter)
    "mremap": lambda s, pid, addr, length: s.mremap(pid, addr, length, 4 * PAGE),
}


@pytest.mark.parametrize("op", sorted(ADDR_OPS))
@pytest.mark.parametrize("offset", [1, 0x800, PAGE - 1])
def test_unaligned_addr(world, op, offset):
    sim, parent, child, gone = world
    addr = X + offset
    expect_error(sim, ADDR_ERRORS, ValueError, value_pattern(addr), ADDR_OPS[op], sim, parent, addr, PAGE)


@pytest.mark.parametrize("op", sorted(ADDR_OPS))
@pytest.mark.parametrize("length", [1, PAGE + 1, 2 * PAGE - 1])
def test_unaligned_length(world, op, length):
    sim, parent, child, gone = world
    addr = X + 16 * PAGE if op == "mmap" else X
    expect_error(sim, LEN_ERRORS, ValueError, value_pattern(length), ADDR_OPS[op], sim, parent, addr, length)


@pytest.mark.parametrize("op", sorted(ADDR_OPS))
@pytest.mark.parametrize("length", [0, -PAGE, -1])
def test_zero_or_negative_length(world, op, length):
    sim, parent, child, gone = world
    addr = X + 16 * PAGE if op == "mmap" else X
    expect_error(sim, LEN_ERRORS, ValueError, value_pattern(length), ADDR_OPS[op], sim, parent, addr, length)


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
        expect_error(sim, rmapsim.BadAddress, ValueError, pat, sim.touch, parent, addr, PAGE, write=write)


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
    expect_error(sim, rmapsim.BadAddress, ValueError, value_pattern(addr), sim.munmap, parent, addr, length)


# --------------------------------------------------------------------------- touch


def test_touch_unmapped(world):
    sim, parent, child, gone = world
    a = X + 16 * PAGE
    for write in (True, False):
        expect_error(
            sim,
            rmapsim.BadAddress,
            ValueError,
            value_pattern(a),
            sim.touch,
            child,
            a,
            PAGE,
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
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(a),
        sim.touch,
        parent,
        a,
        PAGE,
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
    expect_error(sim, rmapsim.InvalidArgument, ValueError, value_pattern(n), sim.fork_many, parent, n)


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


# every call that takes page handles: the rmap walkers, and reclaim's two steps
WALKERS = ["page_referenced", "rmap_walk", "try_to_unmap", "drop_swap_cache"]


@pytest.mark.parametrize("walker", WALKERS)
def test_stale_page_handle(world, stale, walker):
    sim, parent, child, gone = world
    fn = getattr(sim, walker)
    expect_error(sim, rmapsim.StaleHandle, ValueError, value_pattern(stale), fn, pages=[stale])
    # one stale handle among live ones fails the whole call, before anything is done: a
    # partial try_to_unmap would swap out the live pages, a partial drop_swap_cache would
    # free the world's unmapped swap-cache page
    live = [int(p) for p in sim.anon_pages()]
    for pages in (live + [stale], [stale] + live):
        expect_error(sim, rmapsim.StaleHandle, ValueError, value_pattern(stale), fn, pages=pages)
    # positionally too
    expect_error(sim, rmapsim.StaleHandle, ValueError, value_pattern(stale), fn, [stale])


def test_stale_page_info(world, stale):
    sim, parent, child, gone = world
    expect_error(sim, rmapsim.StaleHandle, ValueError, value_pattern(stale), sim.page_info, stale)


def test_page_freed_by_drop_swap_cache_goes_stale(world):
    """drop_swap_cache frees the page: its handle is stale from then on."""
    sim, parent, child, gone = world
    cached = [h for h in (int(p) for p in sim.anon_pages()) if sim.page_info(h)["mapcount"] == 0]
    assert len(cached) == 1  # the world's swapped-out page at SW (swap entries remain)
    assert sim.drop_swap_cache(cached) == 1
    for walker in WALKERS:
        expect_error(
            sim,
            rmapsim.StaleHandle,
            ValueError,
            value_pattern(cached[0]),
            getattr(sim, walker),
            pages=cached,
        )


@pytest.mark.parametrize("walker", WALKERS)
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


@pytest.mark.parametrize("walker", WALKERS)
@pytest.mark.parametrize("handle", [-1, -(1 << 40), 1 << 64])
def test_negative_or_huge_page_handle(world, walker, handle):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        value_pattern(handle),
        getattr(sim, walker),
        pages=[handle],
    )


@pytest.mark.parametrize("walker", WALKERS)
@pytest.mark.parametrize("pages", ["abc", [1.5], [None], [[1]]])
def test_page_handles_of_the_wrong_type(world, walker, pages):
    sim, parent, child, gone = world
    expect_error(sim, rmapsim.InvalidArgument, ValueError, "pages", getattr(sim, walker), pages=pages)


# --------------------------------------------------------------------------- mprotect / madvise

# calls whose whole range must be mapped (api-contract.md "Strictness": a range with a hole
# raises BadAddress and changes nothing, where the kernel would apply to the mapped part)
RANGE_OPS = {
    "mprotect": lambda s, pid, addr, length: s.mprotect(pid, addr, length, "r"),
    "mprotect_rw": lambda s, pid, addr, length: s.mprotect(pid, addr, length, "rw"),
    **{
        f"madvise_{a}": (lambda a: lambda s, pid, addr, length: s.madvise(pid, addr, length, a))(a)  # noqa: B023 (a is bound by the outer lambda)
        for a in ADVICE
    },
}


@pytest.mark.parametrize("op", sorted(RANGE_OPS))
@pytest.mark.parametrize(
    "addr,length,first_hole",
    [
        (X + 16 * PAGE, PAGE, X + 16 * PAGE),  # nothing near
        (X + 4 * PAGE, 2 * PAGE, X + 4 * PAGE),  # exactly the hole
        (X + 3 * PAGE, 2 * PAGE, X + 4 * PAGE),  # from the "r" VMA into the hole
        (X + 5 * PAGE, 2 * PAGE, X + 5 * PAGE),  # from the hole into the "none" VMA
        (X, 11 * PAGE, X + 4 * PAGE),  # every VMA of the world and both holes
        (SW + 2 * PAGE, 2 * PAGE, SW + 3 * PAGE),  # the swap region's last page and beyond
        (MMAP_BASE - PAGE, PAGE, MMAP_BASE - PAGE),
    ],
)
def test_range_with_a_hole(world, op, addr, length, first_hole):
    sim, parent, child, gone = world
    for pid in (parent, child):
        expect_error(
            sim,
            rmapsim.BadAddress,
            ValueError,
            value_pattern(addr, first_hole),
            RANGE_OPS[op],
            sim,
            pid,
            addr,
            length,
        )


@pytest.mark.parametrize("op", sorted(RANGE_OPS) + ["mremap"])
@pytest.mark.parametrize("addr", [0, 0x1000, TASK_SIZE, 1 << 48, (1 << 64) - PAGE])
def test_range_outside_user_space(world, op, addr):
    sim, parent, child, gone = world
    fn = ADDR_OPS["mremap"] if op == "mremap" else RANGE_OPS[op]
    expect_error(sim, rmapsim.BadAddress, ValueError, value_pattern(addr), fn, sim, parent, addr, PAGE)


@pytest.mark.parametrize("prot", ["rww", "q", 5, "rwq", "rwxr", "nonee", None, "RW", 3.0])
def test_mprotect_bad_prot(world, prot):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        re.escape(str(prot)),
        sim.mprotect,
        parent,
        X,
        PAGE,
        prot,
    )


@pytest.mark.parametrize("advice", ["bogus", 3, "Random", "MADV_RANDOM", "", None, "dont_need"])
def test_madvise_unknown_advice(world, advice):
    sim, parent, child, gone = world
    pat = re.escape(str(advice)) if advice != "" else "advice"
    expect_error(sim, rmapsim.InvalidArgument, ValueError, pat, sim.madvise, parent, X, PAGE, advice)


@pytest.mark.parametrize("advice", LINUX_4_14_ADVICE)
def test_madvise_wipeonfork_is_einval_in_2_6(world, advice):
    """MADV_WIPEONFORK / MADV_KEEPONFORK arrived in Linux 4.14 (d2cd9ede6e19): every 2.6.x and
    3.x era's madvise_behavior_valid() refuses them (EINVAL), on any range; 6.0 and 6.18 accept
    them on a private anonymous range (set / clear VM_WIPEONFORK)."""
    sim, parent, child, gone = world
    has_it = ERA_RULES[sim.era]["wipeonfork"]
    assert has_it == (not sim.era.startswith(("2.6.", "3.")))
    if has_it:
        sim.madvise(parent, X, 2 * PAGE, advice)
        [flags] = {frozenset(v["flags"]) for v in sim.vmas(parent) if X <= v["start"] < X + 2 * PAGE}
        assert ("wipeonfork" in flags) == (advice == "wipeonfork")
        return
    for pid, addr, length in [(parent, X, 2 * PAGE), (child, SW, 3 * PAGE), (parent, X, 11 * PAGE)]:
        expect_error(
            sim,
            rmapsim.InvalidArgument,
            ValueError,
            value_pattern(advice),
            sim.madvise,
            pid,
            addr,
            length,
            advice,
        )


# --------------------------------------------------------------------------- mremap


@pytest.mark.parametrize("new_len", [0, -PAGE, -1, 1, PAGE + 1, 3 * PAGE - 1])
@pytest.mark.parametrize("new_addr", [None, X + 16 * PAGE])
def test_mremap_bad_new_len(world, new_len, new_addr):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        value_pattern(new_len),
        sim.mremap,
        parent,
        X,
        2 * PAGE,
        new_len,
        new_addr=new_addr,
    )


@pytest.mark.parametrize("new_len", [PAGE, 2 * PAGE, 3 * PAGE])
def test_mremap_new_addr_needs_may_move(world, new_len):
    """MREMAP_FIXED without MREMAP_MAYMOVE is EINVAL, checked before anything else (the
    destination here is free, the old range a whole VMA)."""
    sim, parent, child, gone = world
    new = X + 16 * PAGE
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        value_pattern(new),
        sim.mremap,
        parent,
        X,
        2 * PAGE,
        new_len,
        may_move=False,
        new_addr=new,
    )


@pytest.mark.parametrize(
    "old,old_len,new,new_len",
    [
        (SW, 3 * PAGE, SW, 3 * PAGE),  # the same range
        (SW, 3 * PAGE, SW + PAGE, PAGE),  # inside it
        (SW, 2 * PAGE, SW + PAGE, 4 * PAGE),  # starts inside it
        (SW + PAGE, 2 * PAGE, SW, 2 * PAGE),  # ends inside it
        (SW + PAGE, PAGE, SW - 2 * PAGE, 4 * PAGE),  # covers it
    ],
)
def test_mremap_overlapping_new_range(world, old, old_len, new, new_len):
    """mremap_to: a new range overlapping the old one is EINVAL (and MREMAP_FIXED would
    otherwise unmap part of the old range first)."""
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.InvalidArgument,
        ValueError,
        value_pattern(new),
        sim.mremap,
        parent,
        old,
        old_len,
        new_len,
        new_addr=new,
    )


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize(
    "old,old_len",
    [
        (X, 4 * PAGE),  # the "rw" VMA and the "r" VMA: two VMAs
        (X + 3 * PAGE, 2 * PAGE),  # runs into the hole
        (X + 4 * PAGE, PAGE),  # the hole itself
        (X + 16 * PAGE, 2 * PAGE),  # nothing mapped
        (X + 6 * PAGE, 3 * PAGE),  # "none" VMA, hole, swap region
    ],
)
def test_mremap_old_range_not_in_one_vma(world, old, old_len, fixed):
    """vma_to_resize: growing or moving needs the old range inside one VMA (EFAULT)."""
    sim, parent, child, gone = world
    kw = {"new_addr": X + 24 * PAGE} if fixed else {}
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(old),
        sim.mremap,
        parent,
        old,
        old_len,
        old_len + PAGE,
        **kw,
    )


@pytest.mark.parametrize(
    "old,old_len,new_len",
    [
        (X, 2 * PAGE, 3 * PAGE),  # the "r" VMA right after it
        (X, PAGE, 2 * PAGE),  # not the end of its VMA
        (X + 2 * PAGE, 2 * PAGE, 5 * PAGE),  # the hole is 2 pages, the "none" VMA follows
        (SW, 3 * PAGE, 4 * PAGE),  # for the child too (below)
    ],
)
def test_mremap_grow_without_room_and_no_move(world, old, old_len, new_len):
    """vma_expandable fails and MREMAP_MAYMOVE is not set: ENOMEM (OutOfMemory), nothing
    changed. (SW's VMA ends the world, so it can grow: after making room for it below.)"""
    sim, parent, child, gone = world
    if old == SW:
        sim.mmap(child, PAGE, addr=SW + 3 * PAGE, prot="r")
        pid = child
    else:
        pid = parent
    expect_error(
        sim,
        rmapsim.OutOfMemory,
        MemoryError,
        value_pattern(old),
        sim.mremap,
        pid,
        old,
        old_len,
        new_len,
        may_move=False,
    )


@pytest.mark.parametrize("new_addr", [X + 16 * PAGE + 1, X + 16 * PAGE + PAGE - 1])
def test_mremap_unaligned_new_addr(world, new_addr):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(new_addr),
        sim.mremap,
        parent,
        X,
        2 * PAGE,
        2 * PAGE,
        new_addr=new_addr,
    )


@pytest.mark.parametrize("new_addr", [0x1000, TASK_SIZE - PAGE, 1 << 48])
def test_mremap_new_addr_outside_user_space(world, new_addr):
    sim, parent, child, gone = world
    expect_error(
        sim,
        rmapsim.BadAddress,
        ValueError,
        value_pattern(new_addr),
        sim.mremap,
        parent,
        X,
        2 * PAGE,
        2 * PAGE,
        new_addr=new_addr,
    )
