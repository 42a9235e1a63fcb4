"""mprotect and madvise (mm/mprotect.c mprotect_fixup, mm/madvise.c madvise_behavior): splits,
flags, remerges, MADV_DONTNEED.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import (
    BASE,
    PAGE,
    PAGE_SHIFT,
    RW,
    P,
    R,
    X,
    assert_counts,
    flags_of,
    is_chain_era,
    layout,
    pages_of,
    vmas,
    write_all,
)


@pytest.mark.parametrize("era", ["2.6.35", "3.7"])
def test_mprotect_split_rekeys_tree_entries_only_in_tree_eras(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 4 * P, addr=BASE)
    sim.touch(p, BASE, 4 * P)
    sim.fork(p)
    sim.mprotect(p, BASE + 2 * P, 2 * P, "r")
    w = sim.write_stats()["mprotect"]
    # __split_vma clones the parent's 1-entry chain for the new piece (1 insert) and the
    # shrunk original changes its range: in a tree era its entry is re-keyed
    assert w["avc_alloc"] == 1
    assert w["tree_rekey"] == (1 if era == "3.7" else 0)


def test_madvise_flag_advice_splits_and_remerges(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    hs = pages_of(sim, pid, X, 4)
    none = frozenset()
    # MADV_RANDOM on the middle two pages: VM_RAND_READ differs -> split at both ends
    assert len(sim.madvise(pid, X + PAGE, 2 * PAGE, "random")) == 0
    R_, S_, D_ = frozenset({"rand"}), frozenset({"seq"}), frozenset({"dontcopy"})
    assert flags_of(sim, pid) == [(X, X + PAGE, none), (X + PAGE, X + 3 * PAGE, R_), (X + 3 * PAGE, X + 4 * PAGE, none)]
    # MADV_SEQUENTIAL: (flags & ~VM_RAND_READ) | VM_SEQ_READ
    sim.madvise(pid, X + PAGE, PAGE, "sequential")
    assert [f for _, _, f in flags_of(sim, pid)] == [none, S_, R_, none]
    # MADV_DONTFORK adds VM_DONTCOPY and keeps the rest
    sim.madvise(pid, X + PAGE, PAGE, "dontfork")
    assert [f for _, _, f in flags_of(sim, pid)] == [none, S_ | D_, R_, none]
    # MADV_DOFORK and MADV_NORMAL clear them again; every piece then has the flags (and the
    # anon_vma) of its neighbours, and vma_merge puts the VMA back together
    sim.madvise(pid, X + PAGE, PAGE, "dofork")
    assert [f for _, _, f in flags_of(sim, pid)] == [none, S_, R_, none]
    sim.madvise(pid, X, 4 * PAGE, "normal")
    assert flags_of(sim, pid) == [(X, X + 4 * PAGE, none)]
    assert layout(sim, pid) == [(X, X + 4 * PAGE, X >> PAGE_SHIFT, RW)]
    # flag advice never touches the page tables
    assert pages_of(sim, pid, X, 4) == hs
    assert_counts(sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=4, pte=4)


def test_mprotect_splits_keeps_pages_and_remerges(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    hs = pages_of(sim, pid, X, 4)
    av = vmas(sim, pid)[0]["anon_vma"]
    sim.mprotect(pid, X + PAGE, 2 * PAGE, "r")
    x = X >> PAGE_SHIFT
    assert layout(sim, pid) == [
        (X, X + PAGE, x, RW),
        (X + PAGE, X + 3 * PAGE, x + 1, R),
        (X + 3 * PAGE, X + 4 * PAGE, x + 3, RW),
    ]
    assert [v["anon_vma"] for v in vmas(sim, pid)] == [av] * 3
    # change_protection write-protects PTEs; it does not unmap anything
    assert pages_of(sim, pid, X, 4) == hs
    with pytest.raises(rmapsim.BadAddress):
        sim.touch(pid, X + PAGE, PAGE, write=True)
    sim.touch(pid, X + PAGE, 2 * PAGE, write=False)
    sim.mprotect(pid, X + PAGE, 2 * PAGE, "rw")
    # vma_merge case 1: prev, the range and next have the same flags and anon_vma
    assert layout(sim, pid) == [(X, X + 4 * PAGE, x, RW)]
    # a write to the (write-protected, sole-mapped) page reuses it: same page
    sim.touch(pid, X + PAGE, PAGE, write=True)
    assert pages_of(sim, pid, X, 4) == hs
    assert_counts(sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=4, pte=4)


def test_madvise_dontneed_zaps_every_entry(sim):
    parent = sim.spawn()
    sim.mmap(parent, 4 * PAGE, addr=X)
    write_all(sim, parent, X, 3)
    sim.touch(parent, X + 3 * PAGE, PAGE, write=False)  # zero page
    h = pages_of(sim, parent, X, 3)
    child = sim.fork(parent)
    sim.try_to_unmap([h[0]])
    sim.madvise(parent, X, 4 * PAGE, "dontneed")
    # zap_page_range: pages lose the parent's mapping, swap entries are freed; the VMA stays
    assert pages_of(sim, parent, X, 4) == [None] * 4
    assert layout(sim, parent) == [(X, X + 4 * PAGE, X >> PAGE_SHIFT, RW)]
    assert sim.render_layout(parent).splitlines()[3].strip() == "...."
    # the child's entries keep the slot and the page
    assert pages_of(sim, child, X + PAGE, 2) == h[1:]
    assert_counts(sim, page=3, pte=4, swap_slot=1, swap_cache=1)
