"""mmap (mm/mmap.c do_mmap / mmap_region): placement, MAP_FIXED replacement, the merges a new
mapping makes (vma_merge), and the struct sizes and array types every era reports.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import (
    ALL_ERAS,
    ERA_RULES,
    MMAP_BASE,
    PAGE,
    PAGE_SHIFT,
    RW,
    STRUCT_SIZES,
    R,
    X,
    anon_pages,
    assert_counts,
    counts,
    expect_broken,
    is_chain_era,
    layout,
    page_at,
    pages_of,
    pids,
    vmas,
    walk_one,
    write_all,
)

# --------------------------------------------------------------------------- basics


def test_eras_listed():
    # contract (Issue 3 additions): oldest first, the buggy rc1 between its neighbours
    # (later issues add newer eras after them)
    assert list(rmapsim.eras())[: len(ALL_ERAS)] == list(ALL_ERAS)


def test_spawn_gives_empty_mm(sim):
    pid = sim.spawn()
    assert vmas(sim, pid) == []
    assert pids(sim) == [pid]
    # a new mm owns nothing: no VMA, no rmap object, no page, no PTE
    assert counts(sim) == {
        "mm": 1,
        "vma": 0,
        "anon_vma": 0,
        "anon_vma_chain": 0,
        "page": 0,
        "pte": 0,
        "swap_slot": 0,
        "swap_cache": 0,
    }
    assert anon_pages(sim) == []


def test_pids_start_at_one_increase_and_are_never_reused(sim):
    # contract: pids start at 1, increase, are never reused
    a = sim.spawn()
    b = sim.spawn()
    assert (a, b) == (1, 2)
    sim.exit(a)
    c = sim.spawn()
    assert c == 3
    d = sim.fork(b)
    assert d == 4
    assert pids(sim) == [2, 3, 4]


# --------------------------------------------------------------------------- mmap


def test_mmap_fresh_range(sim):
    pid = sim.spawn()
    n = 3
    addr = sim.mmap(pid, n * PAGE)
    assert addr % PAGE == 0
    # top-down search in an empty mm: the highest fit right below mmap_base
    # (arch_get_unmapped_area_topdown with an empty mm returns mmap_base - len)
    assert addr == MMAP_BASE - n * PAGE
    # one VMA, anonymous pgoff = start >> PAGE_SHIFT, no anon_vma until the first write fault;
    # private and writable, so charged to the commit limit (VM_ACCOUNT)
    assert vmas(sim, pid) == [
        {
            "start": addr,
            "end": addr + n * PAGE,
            "pgoff": addr >> PAGE_SHIFT,
            "prot": RW,
            "anon_vma": None,
            "chain_len": 0,
            "flags": frozenset({"account"}),
        }
    ]
    # mmap itself allocates no anon_vma, no chain, no page, no PTE
    assert_counts(sim, mm=1, vma=1, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


def test_mmap_fixed_at_the_edges_of_the_user_address_space(sim):
    pid = sim.spawn()
    # lowest allowed: vm.mmap_min_addr (0x10000); highest: ends at TASK_SIZE, which on x86-64
    # is (1 << 47) - PAGE (the last page below 2**47 is never user memory)
    lo = 0x10000
    hi = (1 << 47) - 3 * PAGE
    assert sim.mmap(pid, PAGE, addr=lo) == lo
    assert sim.mmap(pid, 2 * PAGE, addr=hi) == hi
    assert layout(sim, pid) == [
        (lo, lo + PAGE, lo >> PAGE_SHIFT, RW),
        (hi, hi + 2 * PAGE, hi >> PAGE_SHIFT, RW),
    ]
    sim.touch(pid, hi, 2 * PAGE, write=True)
    sim.touch(pid, lo, PAGE, write=True)
    assert_counts(sim, page=3, pte=3)


def test_mmap_none_is_top_down_and_merges_with_previous(sim):
    pid = sim.spawn()
    a1 = sim.mmap(pid, 2 * PAGE)
    a2 = sim.mmap(pid, 3 * PAGE)
    # top-down: the next free range ends where the previous mapping starts
    assert a2 == a1 - 3 * PAGE
    # same flags, adjacent, pgoff contiguous ((a2>>12) + 3 == a1>>12): vma_merge folds the
    # new range into the next VMA, which keeps a linear pgoff starting at a2 >> 12
    assert layout(sim, pid) == [(a2, a1 + 2 * PAGE, a2 >> PAGE_SHIFT, RW)]
    assert_counts(sim, vma=1)


@pytest.mark.parametrize("shape", ["after_prev", "before_next", "fill_gap"])
def test_adjacent_mmaps_with_same_prot_merge(sim, shape):
    pid = sim.spawn()
    if shape == "after_prev":  # PP then NN right above: can_vma_merge_after(prev)
        sim.mmap(pid, 2 * PAGE, addr=X)
        sim.mmap(pid, 2 * PAGE, addr=X + 2 * PAGE)
    elif shape == "before_next":  # NN placed right below PP: can_vma_merge_before(next)
        sim.mmap(pid, 2 * PAGE, addr=X + 2 * PAGE)
        sim.mmap(pid, 2 * PAGE, addr=X)
    else:  # P_N then the hole filled: vma_merge case 1 (prev, new and next become one)
        sim.mmap(pid, PAGE, addr=X)
        sim.mmap(pid, PAGE, addr=X + 3 * PAGE)
        sim.mmap(pid, 2 * PAGE, addr=X + PAGE)
    assert layout(sim, pid) == [(X, X + 4 * PAGE, X >> PAGE_SHIFT, RW)]
    assert_counts(sim, vma=1)


def test_prot_letter_order_does_not_matter(sim):
    pid = sim.spawn()
    sim.mmap(pid, PAGE, addr=X, prot="rw")
    sim.mmap(pid, PAGE, addr=X + PAGE, prot="wr")
    # "wr" is the same protection as "rw": identical vm_flags, so the two merge
    assert layout(sim, pid) == [(X, X + 2 * PAGE, X >> PAGE_SHIFT, RW)]


def test_adjacent_mmaps_with_different_prot_do_not_merge(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    sim.mmap(pid, 2 * PAGE, addr=X + 2 * PAGE, prot="r")
    # vma_merge requires vm_flags equality; VM_WRITE differs
    assert layout(sim, pid) == [
        (X, X + 2 * PAGE, X >> PAGE_SHIFT, RW),
        (X + 2 * PAGE, X + 4 * PAGE, (X >> PAGE_SHIFT) + 2, R),
    ]
    assert_counts(sim, vma=2)


def test_new_mmap_merges_into_faulted_neighbour(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X)
    write_all(sim, pid, X, 2)
    av = vmas(sim, pid)[0]["anon_vma"]
    before = pages_of(sim, pid, X, 2)
    # mmap_region calls vma_merge(..., anon_vma=NULL, ...): is_mergeable_anon_vma(NULL, av)
    # is true in both eras, so prev simply grows and keeps its anon_vma (and chain)
    sim.mmap(pid, 2 * PAGE, addr=X + 2 * PAGE)
    [v] = vmas(sim, pid)
    assert (v["start"], v["end"], v["pgoff"]) == (X, X + 4 * PAGE, X >> PAGE_SHIFT)
    assert v["anon_vma"] == av
    assert pages_of(sim, pid, X, 2) == before
    # a write fault in the grown part finds vma->anon_vma already set: no new rmap object
    write_all(sim, pid, X + 2 * PAGE, 2)
    assert_counts(sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=4, pte=4)
    if is_chain_era(sim):
        assert vmas(sim, pid)[0]["chain_len"] == 1


def test_mmap_fixed_with_same_prot_replaces_and_remerges(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    old = pages_of(sim, pid, X, 4)
    av = vmas(sim, pid)[0]["anon_vma"]
    assert sim.mmap(pid, PAGE, addr=X + PAGE, prot="rw") == X + PAGE
    # MAP_FIXED: do_munmap(X+P, P) splits the VMA and frees the page there; then vma_merge
    # case 1 joins prev, the new range and next again (both halves carry the same anon_vma
    # after the split), so the layout is one VMA again, with a fresh hole at X+P
    assert layout(sim, pid) == [(X, X + 4 * PAGE, X >> PAGE_SHIFT, RW)]
    assert vmas(sim, pid)[0]["anon_vma"] == av
    now = pages_of(sim, pid, X, 4)
    assert now[1] is None
    assert [now[0], now[2], now[3]] == [old[0], old[2], old[3]]
    # 3 pages left; the merge unlinked next's chain so one AVC remains in 2.6.34
    assert_counts(sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=3, pte=3)


def test_mmap_fixed_with_other_prot_replaces_middle(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    old = pages_of(sim, pid, X, 4)
    av = vmas(sim, pid)[0]["anon_vma"]
    sim.mmap(pid, PAGE, addr=X + PAGE, prot="r")
    # split at both ends of [X+P, X+2P); the new "r" VMA cannot merge with "rw" neighbours
    x = X >> PAGE_SHIFT
    assert layout(sim, pid) == [
        (X, X + PAGE, x, RW),
        (X + PAGE, X + 2 * PAGE, x + 1, R),
        (X + 2 * PAGE, X + 4 * PAGE, x + 2, RW),
    ]
    vs = vmas(sim, pid)
    # __split_vma: both remaining pieces keep the anon_vma (2.6.34: each has a cloned
    # singular chain); the new VMA has none yet
    assert [v["anon_vma"] for v in vs] == [av, None, av]
    now = pages_of(sim, pid, X, 4)
    assert now == [old[0], None, old[2], old[3]]
    if is_chain_era(sim):
        assert [v["chain_len"] for v in vs] == [1, 0, 1]
    assert_counts(sim, vma=3, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=3, pte=3)


def test_new_mmap_merges_into_forked_childs_vma(sim):
    """2.6.33/2.6.34 is_mergeable_anon_vma(NULL, x) is true with no singular-chain test
    (that test, "mmap: avoid merging cloned VMAs", came only in 3.3): a fresh range next to
    the child's faulted VMA merges into it and inherits its whole chain."""
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    child = sim.fork(parent)
    before = vmas(sim, child)[0]
    sim.mmap(child, 2 * PAGE, addr=X + 2 * PAGE)
    if ERA_RULES[sim.era]["merge"] != "simple":
        # 3.0+: is_mergeable_anon_vma(NULL, x) requires x's chain to be singular; the
        # child's is [C, AP]: no merge. The write then finds no reusable neighbour either
        # (the same singular test in find_mergeable_anon_vma): a new anon_vma and one AVC
        a, b = vmas(sim, child)
        assert (a["start"], a["end"], a["anon_vma"]) == (X, X + 2 * PAGE, before["anon_vma"])
        assert (b["start"], b["end"], b["pgoff"]) == (X + 2 * PAGE, X + 4 * PAGE, (X >> PAGE_SHIFT) + 2)
        assert b["anon_vma"] is None
        c0 = counts(sim)
        sim.touch(child, X + 2 * PAGE, 2 * PAGE, write=True)
        c1 = counts(sim)
        assert (c1["anon_vma"], c1["anon_vma_chain"]) == (c0["anon_vma"] + 1, c0["anon_vma_chain"] + 1)
        own = vmas(sim, child)[1]["anon_vma"]
        assert own not in (None, before["anon_vma"])
        assert walk_one(sim, page_at(sim, child, X + 2 * PAGE))["anon_vma"] == own
        return
    [v] = vmas(sim, child)
    assert (v["start"], v["end"], v["pgoff"]) == (X, X + 4 * PAGE, X >> PAGE_SHIFT)
    assert v["anon_vma"] == before["anon_vma"]
    assert v["chain_len"] == before["chain_len"]
    # a write in the new part goes to the child's anon_vma: no rmap object is allocated
    c0 = counts(sim)
    sim.touch(child, X + 2 * PAGE, 2 * PAGE, write=True)
    c1 = counts(sim)
    assert (c1["anon_vma"], c1["anon_vma_chain"]) == (c0["anon_vma"], c0["anon_vma_chain"])
    assert walk_one(sim, page_at(sim, child, X + 2 * PAGE))["anon_vma"] == v["anon_vma"]


def test_memory_uses_era_struct_sizes(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    sim.mmap(parent, 2 * PAGE, addr=X + 4 * PAGE)
    sim.fork_many(parent, 2)
    c = counts(sim)
    m = {k: int(v) for k, v in sim.memory().items()}
    size = STRUCT_SIZES[sim.era]
    # docs/contract.md#struct-sizes times live objects
    assert m["vm_area_struct"] == size["vm_area_struct"] * c["vma"]
    assert m["anon_vma"] == size["anon_vma"] * c["anon_vma"]
    assert m["anon_vma_chain"] == size["anon_vma_chain"] * c["anon_vma_chain"]
    assert m["total"] == m["vm_area_struct"] + m["anon_vma"] + m["anon_vma_chain"]


# --------------------------------------------------------------------------- gap-fill merges


def _build_a_b_d(sim, pid):
    """A "rw" [X, X+2P) (already faulted), B "rwx" [X+2P, X+3P), D "rw" [X+3P, X+4P); B and D
    are written so that each prepare looks at its faulted prev neighbour; then B is unmapped,
    leaving the hole [X+2P, X+3P) between two "rw" VMAs."""
    sim.mmap(pid, PAGE, addr=X + 2 * PAGE, prot="rwx")
    sim.touch(pid, X + 2 * PAGE, PAGE, write=True)
    sim.mmap(pid, PAGE, addr=X + 3 * PAGE, prot="rw")
    sim.touch(pid, X + 3 * PAGE, PAGE, write=True)
    sim.munmap(pid, X + 2 * PAGE, PAGE)


def test_gap_fill_merges_prev_and_next_with_same_anon_vma(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)
    _build_a_b_d(sim, pid)
    vs = vmas(sim, pid)
    # B reused A's anon_vma (singular chain), D reused B's: A and D share it
    assert len(vs) == 2 and vs[0]["anon_vma"] == vs[1]["anon_vma"]
    kept = pages_of(sim, pid, X, 2) + [page_at(sim, pid, X + 3 * PAGE)]
    sim.mmap(pid, PAGE, addr=X + 2 * PAGE, prot="rw")
    # vma_merge case 1: is_mergeable_anon_vma(prev->anon_vma, next->anon_vma) holds
    assert layout(sim, pid) == [(X, X + 4 * PAGE, X >> PAGE_SHIFT, RW)]
    assert pages_of(sim, pid, X, 2) + [page_at(sim, pid, X + 3 * PAGE)] == kept
    # the merge unlinked next's chain: one AVC left in 2.6.34
    assert_counts(sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=3)


def test_gap_fill_merge_in_forked_child_depends_on_era(sim):
    """Kernel-faithful divergence of VMA boundaries between eras (the page-level state is the
    same): in a forked child, 2.6.33 gives B and D the family anon_vma shared with A, so
    filling the hole merges A, new and D; in 2.6.34 A has its own child anon_vma (chain of
    2, so B did not reuse it) and D reused B's, so prev and next anon_vmas differ and
    vma_merge only extends prev (case 2). 2.6.34-rc1 reuses like 2.6.33 (A's own child
    anon_vma), so it merges all three."""
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, parent, X, 2)
    child = sim.fork(parent)
    _build_a_b_d(sim, child)
    a, d = vmas(sim, child)
    if sim.era == "2.6.34-rc1":
        # as posted, prepare let B reuse A's anon_vma C (A's chain [C, AP], B's [C]) and D
        # reuse B's: A and D share C with different chains (bug 3, invariant 4) ...
        assert a["anon_vma"] == d["anon_vma"]
        assert (a["chain_len"], d["chain_len"]) == (2, 1)
        expect_broken(sim, 4, mark=False)
    sim.mmap(child, PAGE, addr=X + 2 * PAGE, prot="rw")
    x = X >> PAGE_SHIFT
    rules = ERA_RULES[sim.era]
    if rules["merge"] != "simple":
        # 3.0+ (965f55dea0e3): the new range, with no anon_vma, merges only with a neighbour
        # whose chain is singular: not A ([C, AP]), but D (it reused B's anon_vma, chain of
        # 1) -> vma_merge extends next backwards over the hole
        assert layout(sim, child) == [
            (X, X + 2 * PAGE, x, RW),
            (X + 2 * PAGE, X + 4 * PAGE, x + 2, RW),
        ]
    elif rules["prepare"] == "singular":
        # 2.6.34, 2.6.35: prev and next anon_vmas differ -> case 2, prev grows over the hole
        assert layout(sim, child) == [
            (X, X + 3 * PAGE, x, RW),
            (X + 3 * PAGE, X + 4 * PAGE, x + 3, RW),
        ]
    else:
        # 2.6.33, and rc1: prev and next carry the same anon_vma -> vma_merge case 1
        assert layout(sim, child) == [(X, X + 4 * PAGE, x, RW)]
        # ... rc1: the merge kept A's chain and unlinked D's, which happens to restore
        # invariant 4 (one VMA left); the fixture's teardown check() must pass again
        [v] = vmas(sim, child)
        assert v["chain_len"] == (2 if is_chain_era(sim) else 0)


# --------------------------------------------------------------------------- API shapes


def test_array_types_follow_the_contract(sim):
    np = pytest.importorskip("numpy")
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    kids = sim.fork_many(parent, 2)
    assert isinstance(kids, np.ndarray) and kids.dtype == np.int64
    assert sim.pids().dtype == np.int64
    assert sim.anon_pages().dtype == np.uint64
    stats = sim.rmap_walk()
    want = {
        "page": np.uint64,
        "anon_vma": np.uint64,
        "vmas_visited": np.uint32,
        "vmas_in_range": np.uint32,
        "ptes_checked": np.uint32,
        "mappings_found": np.uint32,
        "mapcount": np.uint32,
        "tree_nodes_visited": np.uint32,
        "lock_id": np.uint64,
        "lock_mode": np.uint8,
    }
    for col, dt in want.items():
        arr = getattr(stats, col)
        assert isinstance(arr, np.ndarray) and arr.dtype == dt, col
        assert arr.shape == (2,)
    assert sim.era in rmapsim.eras()
    assert sim.check() is None
