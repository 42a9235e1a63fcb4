"""Unit tests per operation and era.

Every test runs in all three eras (conftest `sim`). 2.6.34-rc1 is the anon_vma_chain patch as
first posted: where its rules differ from 2.6.34 (anon_vma_prepare reuses any compatible
neighbour's anon_vma, with no singular-chain test), the test asserts rc1's own outcome, and
where that outcome breaks an invariant, that check() reports it (helpers.expect_broken).

Every expected number below is derived by hand from what Linux 2.6.33 / 2.6.34 do
(mm/mmap.c vma_merge / find_mergeable_anon_vma, mm/rmap.c anon_vma_prepare / anon_vma_fork /
anon_vma_clone / unlink_anon_vmas, mm/memory.c do_anonymous_page / do_wp_page /
copy_page_range), as summarised in shared/design/kernel-eras.md sections 1-2 and the 2010
patch.  The comment next to each assertion says which rule gives the number.

Addresses: X is a fixed, otherwise empty region used with MAP_FIXED semantics
(mmap(addr=...)), so layouts are fully determined by the test.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import (
    ALL_ERAS,
    MMAP_BASE,
    PAGE,
    PAGE_SHIFT,
    STRUCT_SIZES,
    anon_pages,
    counts,
    expect_broken,
    is_chain_era,
    layout,
    norm_prot,
    page_at,
    pids,
    scan_rows,
    vmas,
    walk_one,
)

X = 0x4000_0000  # fixed test region: far from MMAP_BASE, above mmap_min_addr
RW = norm_prot("rw")
R = norm_prot("r")
RWX = norm_prot("rwx")


def assert_counts(sim, **expected):
    c = counts(sim)
    got = {k: c[k] for k in expected}
    assert got == expected, f"counts() = {c}"


def no_page_outside_vmas(sim, pid, addr):
    """page_at of an address no VMA covers raises BadAddress (nothing is mapped there)."""
    with pytest.raises(rmapsim.BadAddress, match=hex(addr)):
        sim.page_at(pid, addr)
    return True


def write_all(sim, pid, addr, npages):
    sim.touch(pid, addr, npages * PAGE, write=True)


def pages_of(sim, pid, addr, npages):
    return [page_at(sim, pid, addr + i * PAGE) for i in range(npages)]


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
    assert_counts(
        sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=4, pte=4
    )
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
    assert_counts(
        sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=3, pte=3
    )


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
    assert_counts(
        sim, vma=3, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=3, pte=3
    )


# --------------------------------------------------------------------------- munmap


def test_munmap_whole_vma_frees_everything(sim):
    pid = sim.spawn()
    sim.mmap(pid, 3 * PAGE, addr=X)
    write_all(sim, pid, X, 3)
    sim.munmap(pid, X, 3 * PAGE)
    # unmap_vmas zaps 3 exclusive pages (freed), free_pgtables -> unlink_anon_vmas frees the
    # AVC and the now-empty anon_vma
    assert vmas(sim, pid) == []
    assert_counts(sim, mm=1, vma=0, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


def test_munmap_middle_splits_with_right_pgoffs(sim):
    pid = sim.spawn()
    sim.mmap(pid, 5 * PAGE, addr=X)
    write_all(sim, pid, X, 5)
    old = pages_of(sim, pid, X, 5)
    av = vmas(sim, pid)[0]["anon_vma"]
    sim.munmap(pid, X + 2 * PAGE, PAGE)
    x = X >> PAGE_SHIFT
    # pieces keep the linear pgoff: left starts at x, right at x + 3
    assert layout(sim, pid) == [
        (X, X + 2 * PAGE, x, RW),
        (X + 3 * PAGE, X + 5 * PAGE, x + 3, RW),
    ]
    vs = vmas(sim, pid)
    assert [v["anon_vma"] for v in vs] == [av, av]
    if is_chain_era(sim):
        # __split_vma -> anon_vma_clone: the new piece gets a copy of the singular chain
        assert [v["chain_len"] for v in vs] == [1, 1]
    assert no_page_outside_vmas(sim, pid, X + 2 * PAGE)
    assert pages_of(sim, pid, X, 2) == old[:2]
    assert pages_of(sim, pid, X + 3 * PAGE, 2) == old[3:]
    assert_counts(
        sim, vma=2, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=4, pte=4
    )


def test_munmap_middle_in_forked_child(sim):
    parent = sim.spawn()
    sim.mmap(parent, 5 * PAGE, addr=X)
    write_all(sim, parent, X, 5)
    shared = pages_of(sim, parent, X, 5)
    child = sim.fork(parent)
    sim.munmap(child, X + 2 * PAGE, PAGE)
    vs = vmas(sim, child)
    assert len(vs) == 2
    assert vs[0]["anon_vma"] == vs[1]["anon_vma"]
    if is_chain_era(sim):
        # the child's VMA had chain [C, AP]; the split clones it: both pieces length 2
        assert [v["chain_len"] for v in vs] == [2, 2]
        # AP, C; AVCs: parent 1 + child 2 pieces * 2
        assert_counts(sim, anon_vma=2, anon_vma_chain=5)
    else:
        # 2.6.33: the whole family shares one anon_vma, the pieces included
        assert vs[0]["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    # the page at X+2P is still mapped by the parent: not freed, mapcount drops to 1
    assert_counts(sim, page=5, pte=9)
    assert walk_one(sim, shared[2])["mapcount"] == 1
    # walk of a page in the child's left piece: candidates are the parent VMA and both child
    # pieces (2.6.33: the family list; 2.6.34: AP's list, one AVC per piece), but only the
    # parent VMA and the left piece cover its pgoff (vma_address -EFAULT for the right one)
    row = walk_one(sim, shared[0])
    assert row["vmas_visited"] == 3
    assert row["vmas_in_range"] == 2
    assert row["ptes_checked"] == 2
    assert row["mappings_found"] == row["mapcount"] == 2


def test_munmap_head_and_tail(sim):
    pid = sim.spawn()
    sim.mmap(pid, 5 * PAGE, addr=X)
    write_all(sim, pid, X, 5)
    sim.munmap(pid, X, PAGE)
    sim.munmap(pid, X + 4 * PAGE, PAGE)
    x = X >> PAGE_SHIFT
    assert layout(sim, pid) == [(X + PAGE, X + 4 * PAGE, x + 1, RW)]
    # the split-off pieces were unmapped with their AVC: one VMA, one AVC left
    assert_counts(
        sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=3, pte=3
    )


# --------------------------------------------------------------------------- touch


def test_read_touch_maps_zero_page(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X, prot="r")
    sim.touch(pid, X, 4 * PAGE, write=False)
    # do_anonymous_page on a read fault installs the shared zero page: no anon_vma_prepare,
    # no page allocated, but 4 PTEs now exist
    assert pages_of(sim, pid, X, 4) == [None] * 4
    assert vmas(sim, pid)[0]["anon_vma"] is None
    assert_counts(sim, anon_vma=0, anon_vma_chain=0, page=0, pte=4)
    assert anon_pages(sim) == []


def test_write_after_read_replaces_zero_page(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    sim.touch(pid, X, 4 * PAGE, write=False)
    sim.touch(pid, X, PAGE, write=True)
    # do_wp_page on the zero page: not an anon page -> anon_vma_prepare + new page; the PTE
    # is replaced, so the PTE count stays 4
    p = pages_of(sim, pid, X, 4)
    assert p[0] is not None and p[1:] == [None] * 3
    assert_counts(
        sim, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=1, pte=4
    )


def test_write_touch_creates_one_anon_vma(sim):
    pid = sim.spawn()
    n = 3
    sim.mmap(pid, n * PAGE, addr=X)
    write_all(sim, pid, X, n)
    # first write fault: anon_vma_prepare allocates one anon_vma (2.6.34: plus one AVC);
    # the later faults find vma->anon_vma set; one new page per faulted address
    assert_counts(
        sim,
        vma=1,
        anon_vma=1,
        anon_vma_chain=1 if is_chain_era(sim) else 0,
        page=n,
        pte=n,
    )
    [v] = vmas(sim, pid)
    assert v["anon_vma"] is not None
    if is_chain_era(sim):
        assert v["chain_len"] == 1
    hs = pages_of(sim, pid, X, n)
    assert None not in hs and len(set(hs)) == n
    assert sorted(hs) == anon_pages(sim)
    for h in hs:
        row = walk_one(sim, h)
        # page->mapping = vma->anon_vma; the list holds this one VMA; it maps the page once
        assert row["page"] == h
        assert row["anon_vma"] == v["anon_vma"]
        assert row["vmas_visited"] == 1
        assert row["vmas_in_range"] == 1
        assert row["ptes_checked"] == 1
        assert row["mappings_found"] == row["mapcount"] == 1
        assert row["tree_nodes_visited"] == 0  # list eras have no interval tree
        assert row["lock_mode"] == 0  # per-anon_vma spinlock: exclusive


def test_second_write_changes_nothing(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X)
    write_all(sim, pid, X, 2)
    before = (counts(sim), pages_of(sim, pid, X, 2), vmas(sim, pid))
    # the PTEs are already present and writable: no fault at all
    write_all(sim, pid, X, 2)
    assert (counts(sim), pages_of(sim, pid, X, 2), vmas(sim, pid)) == before


def test_touch_spanning_two_vmas(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    sim.mmap(pid, 2 * PAGE, addr=X + 2 * PAGE, prot="rwx")
    write_all(sim, pid, X, 4)
    # the first fault creates an anon_vma for the rw VMA; the rwx VMA's prepare finds it as a
    # compatible prev neighbour with a singular chain and reuses it (both eras)
    vs = vmas(sim, pid)
    assert len(vs) == 2 and vs[0]["anon_vma"] == vs[1]["anon_vma"] is not None
    assert_counts(
        sim, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=4, pte=4
    )


# --------------------------------------------------------------------------- fork


def test_fork_of_unfaulted_vma(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    child = sim.fork(parent)
    assert layout(sim, child) == layout(sim, parent)
    # anon_vma_fork: "Don't bother if the parent process has no anon_vma here"
    [v] = vmas(sim, child)
    assert v["anon_vma"] is None and v["chain_len"] == 0
    assert_counts(sim, mm=2, vma=2, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


def test_fork_of_faulted_vma(sim):
    parent = sim.spawn()
    n = 3
    sim.mmap(parent, n * PAGE, addr=X)
    write_all(sim, parent, X, n)
    pv = vmas(sim, parent)[0]
    child = sim.fork(parent)
    cv = vmas(sim, child)[0]
    assert layout(sim, child) == layout(sim, parent)
    # copy_page_range shares every anon page COW: same page in both, mapcount 2
    ppages = pages_of(sim, parent, X, n)
    assert pages_of(sim, child, X, n) == ppages
    assert_counts(sim, mm=2, vma=2, page=n, pte=2 * n)
    if is_chain_era(sim):
        # anon_vma_fork: clone the parent's chain (1 AVC) + own new anon_vma and its AVC
        assert_counts(sim, anon_vma=2, anon_vma_chain=3)
        assert cv["anon_vma"] is not None and cv["anon_vma"] != pv["anon_vma"]
        assert (pv["chain_len"], cv["chain_len"]) == (1, 2)
    else:
        # anon_vma_link: the child VMA joins the same anon_vma, nothing is allocated
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
        assert cv["anon_vma"] == pv["anon_vma"]
    for h in ppages:
        row = walk_one(sim, h)
        # the page stays in the parent's anon_vma, whose list now holds the parent VMA and
        # the child VMA (2.6.34: the child's cloned AVC)
        assert row["anon_vma"] == pv["anon_vma"]
        assert row["vmas_visited"] == 2
        assert row["mappings_found"] == row["mapcount"] == 2


def test_fork_allocates_per_faulted_vma(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    sim.mmap(parent, 2 * PAGE, addr=X + 4 * PAGE)  # not adjacent: own anon_vma
    write_all(sim, parent, X + 4 * PAGE, 2)
    sim.mmap(parent, 2 * PAGE, addr=X + 8 * PAGE)  # never faulted
    before = counts(sim)
    assert before["anon_vma"] == 2
    sim.fork(parent)
    after = counts(sim)
    assert after["vma"] - before["vma"] == 3
    if is_chain_era(sim):
        # +1 anon_vma and +2 AVC per faulted VMA, nothing for the unfaulted one
        assert after["anon_vma"] - before["anon_vma"] == 2
        assert after["anon_vma_chain"] - before["anon_vma_chain"] == 4
    else:
        assert after["anon_vma"] == before["anon_vma"]
        assert after["anon_vma_chain"] == 0


def test_fork_of_vmas_sharing_an_anon_vma(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    sim.mmap(parent, 2 * PAGE, addr=X + 2 * PAGE, prot="rwx")
    write_all(sim, parent, X, 4)
    pv = vmas(sim, parent)
    assert pv[0]["anon_vma"] == pv[1]["anon_vma"]  # prepare-time neighbour reuse
    child = sim.fork(parent)
    cv = vmas(sim, child)
    if is_chain_era(sim):
        # anon_vma_fork runs per VMA: each child VMA gets its own new anon_vma
        assert cv[0]["anon_vma"] != cv[1]["anon_vma"]
        assert [v["chain_len"] for v in cv] == [2, 2]
        assert_counts(sim, anon_vma=3, anon_vma_chain=6)
    else:
        assert cv[0]["anon_vma"] == cv[1]["anon_vma"] == pv[0]["anon_vma"]
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)


def test_fork_generations_chain_length(sim):
    k_max = 3
    p0 = sim.spawn()
    sim.mmap(p0, 2 * PAGE, addr=X)
    write_all(sim, p0, X, 2)
    gen = [p0]
    for _ in range(k_max):
        gen.append(sim.fork(gen[-1]))
    avs = [vmas(sim, p)[0]["anon_vma"] for p in gen]
    if is_chain_era(sim):
        # generation k clones its parent's k AVCs and adds its own: chain length k + 1
        assert [vmas(sim, p)[0]["chain_len"] for p in gen] == [k + 1 for k in range(k_max + 1)]
        assert len(set(avs)) == k_max + 1
        # one anon_vma per generation; AVCs 1 + 2 + ... + (k_max + 1)
        assert_counts(
            sim,
            anon_vma=k_max + 1,
            anon_vma_chain=(k_max + 1) * (k_max + 2) // 2,
        )
    else:
        assert len(set(avs)) == 1
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    for h in pages_of(sim, p0, X, 2):
        row = walk_one(sim, h)
        # every generation maps the page; the oldest anon_vma's list holds one entry per
        # generation (2.6.34: p0's AVC plus one cloned AVC in every descendant)
        assert row["mapcount"] == row["mappings_found"] == k_max + 1
        assert row["vmas_visited"] == k_max + 1
        assert row["anon_vma"] == avs[0]


@pytest.mark.parametrize("gens", [2, 4])
def test_fork_then_parent_exit_generations(sim, gens):
    """SPEC section 7: fork -> parent exits, repeated, grows the chain linearly in 2.6.34."""
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=X)
    write_all(sim, p, X, 2)
    root_av = vmas(sim, p)[0]["anon_vma"]
    hs = pages_of(sim, p, X, 2)
    for _ in range(gens):
        c = sim.fork(p)
        sim.exit(p)
        p = c
    assert pids(sim) == [p]
    assert pages_of(sim, p, X, 2) == hs  # never written after fork: same pages
    if is_chain_era(sim):
        # no level can be freed: the survivor's chain links every ancestor's anon_vma
        assert vmas(sim, p)[0]["chain_len"] == gens + 1
        assert_counts(sim, anon_vma=gens + 1, anon_vma_chain=gens + 1)
    else:
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    row = walk_one(sim, hs[0])
    assert row["anon_vma"] == root_av
    assert row["vmas_visited"] == 1  # only the survivor's VMA is left on that list
    assert row["mapcount"] == row["mappings_found"] == 1
    # sole mapper writes: do_wp_page reuses the page; 2.6.34 page_move_anon_rmap moves it to
    # the survivor's own anon_vma, older levels stay (still linked by the chain)
    sim.touch(p, X, PAGE, write=True)
    assert page_at(sim, p, X) == hs[0]
    row = walk_one(sim, hs[0])
    assert row["anon_vma"] == vmas(sim, p)[0]["anon_vma"]
    if is_chain_era(sim):
        assert row["anon_vma"] != root_av
        assert_counts(sim, anon_vma=gens + 1, anon_vma_chain=gens + 1)


def test_fork_skips_ptes_of_vma_without_anon_vma(sim):
    """copy_page_range: "Don't copy ptes where a page fault will fill them correctly" --
    a private VMA without an anon_vma (only zero-page PTEs) is not copied at fork; a VMA
    with an anon_vma has all its PTEs copied, zero-page ones included."""
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X, prot="r")
    sim.touch(parent, X, 3 * PAGE, write=False)
    sim.mmap(parent, 3 * PAGE, addr=X + 8 * PAGE, prot="rw")
    sim.touch(parent, X + 8 * PAGE, 3 * PAGE, write=False)
    sim.touch(parent, X + 8 * PAGE, PAGE, write=True)
    assert_counts(sim, pte=6, page=1)
    sim.fork(parent)
    # child: 0 PTEs for the first VMA, 3 (2 zero + 1 anon, shared COW) for the second
    assert_counts(sim, pte=9, page=1)


# --------------------------------------------------------------------------- COW


def test_child_write_after_fork_copies(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    shared = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.touch(child, X, PAGE, write=True)
    new = page_at(sim, child, X)
    # mapcount was 2: do_wp_page copies into a new page in the child's vma->anon_vma
    assert new is not None and new != shared[0]
    assert page_at(sim, parent, X) == shared[0]
    assert page_at(sim, child, X + PAGE) == shared[1]  # untouched page still shared
    assert_counts(sim, page=3, pte=4)
    prow = walk_one(sim, shared[0])
    assert prow["mapcount"] == prow["mappings_found"] == 1
    # the parent's page is still scanned through the list holding parent + child VMA
    assert prow["vmas_visited"] == 2
    crow = walk_one(sim, new)
    assert crow["mapcount"] == crow["mappings_found"] == 1
    assert crow["anon_vma"] == vmas(sim, child)[0]["anon_vma"]
    if is_chain_era(sim):
        # the child's own anon_vma lists only the child's VMA
        assert crow["vmas_visited"] == 1
    else:
        assert crow["vmas_visited"] == 2
    assert walk_one(sim, shared[1])["mapcount"] == 2


def test_parent_write_after_fork_copies(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    shared = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.touch(parent, X, PAGE, write=True)
    new = page_at(sim, parent, X)
    assert new is not None and new != shared[0]
    assert page_at(sim, child, X) == shared[0]
    assert_counts(sim, page=3, pte=4)
    prow = walk_one(sim, new)
    assert prow["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
    assert prow["mapcount"] == prow["mappings_found"] == 1
    crow = walk_one(sim, shared[0])
    assert crow["mapcount"] == crow["mappings_found"] == 1


def test_sole_mapper_reuses_page_after_parent_exit(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    parent_av = vmas(sim, parent)[0]["anon_vma"]
    child = sim.fork(parent)
    hs = pages_of(sim, child, X, 2)
    sim.exit(parent)
    if is_chain_era(sim):
        # AP survives: the child's chain still links it (child: AVCs for C and AP)
        assert_counts(sim, anon_vma=2, anon_vma_chain=2)
    else:
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    assert walk_one(sim, hs[0])["anon_vma"] == parent_av
    sim.touch(child, X, PAGE, write=True)
    # mapcount 1 -> reuse_swap_page says reuse: no copy
    assert page_at(sim, child, X) == hs[0]
    assert_counts(sim, page=2, pte=2)
    row = walk_one(sim, hs[0])
    assert row["anon_vma"] == vmas(sim, child)[0]["anon_vma"]
    assert row["mapcount"] == row["mappings_found"] == 1
    assert row["vmas_visited"] == 1
    if is_chain_era(sim):
        # page_move_anon_rmap: the page left the parent's anon_vma
        assert row["anon_vma"] != parent_av
        # the untouched page stays where it was
        assert walk_one(sim, hs[1])["anon_vma"] == parent_av


def test_sole_mapper_reuses_page_after_child_exit(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    hs = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.exit(child)
    # 2.6.34: the child's own anon_vma and both its AVCs are freed at exit
    assert_counts(
        sim, mm=1, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=2
    )
    sim.touch(parent, X, 2 * PAGE, write=True)
    assert pages_of(sim, parent, X, 2) == hs
    for h in hs:
        row = walk_one(sim, h)
        assert row["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
        assert row["vmas_visited"] == 1


# --------------------------------------------------------------------------- exit / exec


def test_exit_frees_everything(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    write_all(sim, parent, X, 3)
    sim.mmap(parent, 2 * PAGE, addr=X + 8 * PAGE, prot="r")
    sim.touch(parent, X + 8 * PAGE, 2 * PAGE, write=False)
    k1 = sim.fork(parent)
    k2 = sim.fork(parent)
    sim.touch(k1, X, PAGE, write=True)
    write_all(sim, k2, X, 3)
    g = sim.fork(k2)
    sim.exec(k1)
    sim.mmap(k1, PAGE)
    sim.touch(k1, MMAP_BASE - PAGE, PAGE, write=True)
    for i, pid in enumerate([parent, k2, g, k1]):
        sim.exit(pid)
        sim.check()
        assert counts(sim)["mm"] == 3 - i
        assert pid not in pids(sim)
    # free_pgtables/unlink_anon_vmas at every exit: nothing may remain (no leak)
    assert counts(sim) == {
        "mm": 0,
        "vma": 0,
        "anon_vma": 0,
        "anon_vma_chain": 0,
        "page": 0,
        "pte": 0,
        "swap_slot": 0,
        "swap_cache": 0,
    }
    assert anon_pages(sim) == []
    assert pids(sim) == []


def test_exec_empties_address_space_keeps_pid(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    hs = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.exec(child)
    assert child in pids(sim)
    assert vmas(sim, child) == []
    # the old mm is torn down like exit: the shared pages lose one mapping each
    assert_counts(
        sim,
        mm=2,
        vma=1,
        anon_vma=1,
        anon_vma_chain=1 if is_chain_era(sim) else 0,
        page=2,
        pte=2,
    )
    for h in hs:
        assert walk_one(sim, h)["mapcount"] == 1
    # the new mm is empty: the first top-down mmap lands right below mmap_base again
    assert sim.mmap(child, PAGE) == MMAP_BASE - PAGE
    sim.exec(parent)
    assert_counts(sim, mm=2, vma=1, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


# --------------------------------------------------------------------------- prepare reuse


def _place_neighbour(sim, pid, side):
    """Map a fresh 1-page "rwx" VMA right above (side="prev": the faulted VMA at X is its
    prev) or right below (side="next") the 2-page "rw" VMA at X. Returns its address.

    Both prots are writable, so both VMAs carry the same non-rwx flags (in the kernel
    VM_ACCOUNT too): anon_vma_compatible / can_vma_merge_* ignoring READ|WRITE|EXEC hold,
    and pgoffs are contiguous because anonymous pgoff = start >> 12."""
    addr = X + 2 * PAGE if side == "prev" else X - PAGE
    sim.mmap(pid, PAGE, addr=addr, prot="rwx")
    return addr


@pytest.mark.parametrize("side", ["prev", "next"])
def test_prepare_reuses_neighbour_with_singular_chain(sim, side):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)
    b = _place_neighbour(sim, pid, side)
    assert len(vmas(sim, pid)) == 2  # different prot: not merged
    sim.touch(pid, b, PAGE, write=True)
    a_v = [v for v in vmas(sim, pid) if v["start"] == X][0]
    b_v = [v for v in vmas(sim, pid) if v["start"] == b][0]
    # find_mergeable_anon_vma finds the neighbour; its chain is singular -> reused in both eras
    assert b_v["anon_vma"] == a_v["anon_vma"]
    assert_counts(
        sim, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=3
    )
    if is_chain_era(sim):
        assert b_v["chain_len"] == 1
    row = walk_one(sim, page_at(sim, pid, b))
    # both VMAs are on the shared anon_vma's list; only B covers the page's pgoff
    assert row["anon_vma"] == a_v["anon_vma"]
    assert row["vmas_visited"] == 2
    assert row["vmas_in_range"] == 1
    assert row["mappings_found"] == row["mapcount"] == 1


@pytest.mark.parametrize("side", ["prev", "next"])
def test_prepare_reuse_list_order_seen_by_page_referenced(sim, side):
    """Where anon_vma_prepare links a VMA that reuses a neighbour's anon_vma:
    2.6.33 appends it (list_add_tail(&vma->anon_vma_node, &anon_vma->head)); 2.6.34 puts
    its AVC at the head (list_add(&avc->same_anon_vma, &anon_vma->head)) -- Andrea
    Arcangeli's "always add new VMAs at the end of the list" fix was deferred to 2.6.35.
    page_referenced_anon stops at the first (only) mapping, so the order is visible."""
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)  # A first: list [A]
    b = _place_neighbour(sim, pid, side)
    sim.touch(pid, b, PAGE, write=True)  # B reuses A's anon_vma
    a_page, b_page = page_at(sim, pid, X), page_at(sim, pid, b)
    rows = {r["page"]: r for r in scan_rows(sim.page_referenced(pages=[a_page, b_page]))}
    if is_chain_era(sim):
        # list [B, A]: B's page found at entry 1; A's page after skipping B (out of range)
        assert (rows[b_page]["vmas_visited"], rows[a_page]["vmas_visited"]) == (1, 2)
    else:
        # list [A, B]
        assert (rows[a_page]["vmas_visited"], rows[b_page]["vmas_visited"]) == (1, 2)
    for r in rows.values():
        assert r["mappings_found"] == r["mapcount"] == 1


@pytest.mark.parametrize("side", ["prev", "next"])
def test_prepare_reuse_in_forked_child_depends_on_era(sim, side):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, parent, X, 2)
    family_av = vmas(sim, parent)[0]["anon_vma"]
    child = sim.fork(parent)
    b = _place_neighbour(sim, child, side)
    sim.touch(child, b, PAGE, write=True)
    a_v = [v for v in vmas(sim, child) if v["start"] == X][0]
    b_v = [v for v in vmas(sim, child) if v["start"] == b][0]
    if sim.era == "2.6.34":
        # the neighbour's chain is [C, AP] (length 2): since 2.6.34-rc4 (d0e9fe1758f2) it is
        # not reused; prepare allocates a new anon_vma + one AVC
        assert a_v["chain_len"] == 2
        assert b_v["anon_vma"] is not None
        assert b_v["anon_vma"] not in (a_v["anon_vma"], family_av)
        assert b_v["chain_len"] == 1
        # AP, C, B's; AVCs: parent 1 + child's A 2 + B 1
        assert_counts(sim, anon_vma=3, anon_vma_chain=4)
    elif sim.era == "2.6.34-rc1":
        # the patch as posted reuses the neighbour's anon_vma C whatever its chain: B links
        # only C (prepare adds one AVC), A links C and AP -- two VMAs share ->anon_vma with
        # different chains (kernel-eras.md section 11, bug 3)
        assert a_v["chain_len"] == 2
        assert b_v["anon_vma"] == a_v["anon_vma"] != family_av
        assert b_v["chain_len"] == 1
        # AP, C; AVCs: parent 1 + child's A 2 + B 1
        assert_counts(sim, anon_vma=2, anon_vma_chain=4)
        expect_broken(sim, 4)
    else:
        # 2.6.33 reuses any compatible neighbour's anon_vma: the family one
        assert b_v["anon_vma"] == a_v["anon_vma"] == family_av
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)


def test_prepare_reuse_still_refused_after_parent_exit(sim):
    """The child's chain keeps the parent's anon_vma after the parent exits (length 2), so
    2.6.34 still refuses to share the child's anon_vma with a new neighbour (2.6.34-rc1, with
    no singular-chain test, shares it and breaks invariant 4)."""
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.exit(parent)
    b = _place_neighbour(sim, child, "prev")
    sim.touch(child, b, PAGE, write=True)
    a_v, b_v = vmas(sim, child)
    if sim.era == "2.6.34":
        assert a_v["chain_len"] == 2
        assert b_v["anon_vma"] != a_v["anon_vma"]
        assert_counts(sim, anon_vma=3, anon_vma_chain=3)
    elif sim.era == "2.6.34-rc1":
        # rc1 reuses the child's anon_vma: B's chain [C] differs from A's [C, AP]
        assert (a_v["chain_len"], b_v["chain_len"]) == (2, 1)
        assert b_v["anon_vma"] == a_v["anon_vma"]
        assert_counts(sim, anon_vma=2, anon_vma_chain=3)
        expect_broken(sim, 4)
    else:
        assert b_v["anon_vma"] == a_v["anon_vma"]
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)


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


def test_prepare_does_not_reuse_across_a_gap(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)
    sim.mmap(pid, PAGE, addr=X + 3 * PAGE, prot="rwx")
    sim.touch(pid, X + 3 * PAGE, PAGE, write=True)
    vs = vmas(sim, pid)
    # anon_vma_compatible needs a->vm_end == b->vm_start: a one-page hole defeats it
    assert vs[0]["anon_vma"] != vs[1]["anon_vma"]
    assert_counts(sim, anon_vma=2, anon_vma_chain=2 if is_chain_era(sim) else 0)


# --------------------------------------------------------------------------- many / memory


def test_fork_many_and_touch_many(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    hs = pages_of(sim, parent, X, 2)
    kids = [int(k) for k in sim.fork_many(parent, 3)]
    assert len(kids) == 3 and len(set(kids)) == 3
    assert all(k > parent for k in kids)
    assert pids(sim) == sorted([parent] + kids)
    for k in kids:
        assert layout(sim, k) == layout(sim, parent)
        assert pages_of(sim, k, X, 2) == hs
    if is_chain_era(sim):
        assert_counts(sim, anon_vma=4, anon_vma_chain=7)  # 1 + n ; 1 + 2n
    else:
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    sim.touch_many(kids, X, 2 * PAGE, write=True)
    # every child copies both pages (the parent still maps the originals, mapcount > 1)
    assert_counts(sim, page=2 * 4, pte=2 * 4)
    seen = set(hs)
    for k in kids:
        ks = pages_of(sim, k, X, 2)
        assert not (set(ks) & seen)
        seen |= set(ks)
    for h in hs:
        assert walk_one(sim, h)["mapcount"] == 1


def test_memory_uses_era_struct_sizes(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    sim.mmap(parent, 2 * PAGE, addr=X + 4 * PAGE)
    sim.fork_many(parent, 2)
    c = counts(sim)
    m = {k: int(v) for k, v in sim.memory().items()}
    size = STRUCT_SIZES[sim.era]
    # SPEC section 3 struct sizes times live objects
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
    assert_counts(
        sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=3
    )


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
    if sim.era == "2.6.34":
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


# --------------------------------------------------------------------------- Issue 3 operations
#
# Each expectation below comes from the 2.6.33 / 2.6.34 source: mm/mprotect.c mprotect_fixup,
# mm/madvise.c madvise_behavior, mm/mremap.c (vma_to_resize, vma_expandable, move_vma,
# copy_vma), mm/memory.c do_swap_page / do_wp_page (reuse_swap_page), mm/rmap.c try_to_unmap,
# mm/swapfile.c free_swap_and_cache / try_to_free_swap, mm/swap_state.c free_swap_cache.


def flags_of(sim, pid):
    """The madvise flags of each VMA (VM_ACCOUNT, set on every writable mapping here, left out)."""
    return [(v["start"], v["end"], v["flags"] - {"account"}) for v in vmas(sim, pid)]


def slot_of(sim, h):
    return sim.page_info(h)["swap_slot"]


def test_madvise_flag_advice_splits_and_remerges(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    hs = pages_of(sim, pid, X, 4)
    none = frozenset()
    # MADV_RANDOM on the middle two pages: VM_RAND_READ differs -> split at both ends
    assert len(sim.madvise(pid, X + PAGE, 2 * PAGE, "random")) == 0
    R_, S_, D_ = frozenset({"rand"}), frozenset({"seq"}), frozenset({"dontcopy"})
    assert flags_of(sim, pid) == [
        (X, X + PAGE, none), (X + PAGE, X + 3 * PAGE, R_), (X + 3 * PAGE, X + 4 * PAGE, none)
    ]
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
    assert_counts(
        sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=4, pte=4
    )


def test_fork_skips_dontfork_vmas(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    write_all(sim, parent, X, 3)
    hs = pages_of(sim, parent, X, 3)
    sim.madvise(parent, X + PAGE, PAGE, "dontfork")
    child = sim.fork(parent)
    # dup_mmap: "if (mpnt->vm_flags & VM_DONTCOPY) continue;" -- no VMA, no PTEs there
    assert [(s, e) for s, e, _ in flags_of(sim, child)] == [
        (X, X + PAGE), (X + 2 * PAGE, X + 3 * PAGE)
    ]
    assert no_page_outside_vmas(sim, child, X + PAGE)
    assert [page_at(sim, child, X), page_at(sim, child, X + 2 * PAGE)] == [hs[0], hs[2]]
    assert walk_one(sim, hs[1])["mapcount"] == 1
    assert_counts(sim, page=3, pte=5)


def test_mprotect_splits_keeps_pages_and_remerges(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    hs = pages_of(sim, pid, X, 4)
    av = vmas(sim, pid)[0]["anon_vma"]
    sim.mprotect(pid, X + PAGE, 2 * PAGE, "r")
    x = X >> PAGE_SHIFT
    assert layout(sim, pid) == [
        (X, X + PAGE, x, RW), (X + PAGE, X + 3 * PAGE, x + 1, R), (X + 3 * PAGE, X + 4 * PAGE, x + 3, RW)
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
    assert_counts(
        sim, vma=1, anon_vma=1, anon_vma_chain=1 if is_chain_era(sim) else 0, page=4, pte=4
    )


def test_try_to_unmap_shared_page_then_swap_in_from_the_swap_cache(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    h = page_at(sim, parent, X)
    child = sim.fork(parent)
    row = scan_rows(sim.try_to_unmap([h]))[0]
    # the walk finds both mappings; each becomes a swap entry of the page's new slot, and
    # the page stays in the swap cache, unmapped
    assert row["mappings_found"] == row["mapcount"] == 2
    info = sim.page_info(h)
    assert info["mapcount"] == 0 and info["swap_slot"] is not None
    assert (page_at(sim, parent, X), page_at(sim, child, X)) == (None, None)
    assert_counts(sim, page=2, pte=4, swap_slot=1, swap_cache=1)
    assert "ws" in sim.render_layout(parent).splitlines()[3]
    # a second try_to_unmap finds nothing to unmap
    row = scan_rows(sim.try_to_unmap([h]))[0]
    assert row["mappings_found"] == row["mapcount"] == 0
    # read fault in the child: do_swap_page finds the page in the swap cache and maps it;
    # a read fault never takes it out of the swap cache
    parent_av, child_av = vmas(sim, parent)[0]["anon_vma"], vmas(sim, child)[0]["anon_vma"]
    sim.touch(child, X, PAGE, write=False)
    assert page_at(sim, child, X) == h
    assert sim.page_info(h)["mapcount"] == 1 and slot_of(sim, h) == info["swap_slot"]
    # page_add_anon_rmap, first mapping -> __page_set_anon_rmap: 2.6.33 the VMA's (family)
    # anon_vma; 2.6.34 (not exclusive) the oldest anon_vma of the child's chain, the
    # parent's; 2.6.34-rc1 the child's own vma->anon_vma
    want = child_av if sim.era == "2.6.34-rc1" else parent_av
    assert sim.page_info(h)["anon_vma"] == want
    sim.touch(parent, X, PAGE, write=False)
    assert page_at(sim, parent, X) == h
    assert_counts(sim, page=2, pte=4, swap_slot=1, swap_cache=1)
    if sim.era == "2.6.34-rc1":
        # the parent's VMA does not link the child's anon_vma: rmap cannot find the
        # parent's mapping any more (kernel-eras.md section 11, bug 2)
        row = walk_one(sim, h)
        assert (row["mappings_found"], row["mapcount"]) == (1, 2)
        expect_broken(sim, 1, mark=False)
    # write in the parent: do_wp_page, mapcount 2 -> copy; the page keeps its slot
    sim.touch(parent, X, PAGE, write=True)
    new = page_at(sim, parent, X)
    assert new not in (None, h)
    assert slot_of(sim, h) == info["swap_slot"] and slot_of(sim, new) is None
    # write in the child: mapcount 1 and no swap entry left for the slot ->
    # reuse_swap_page deletes it from the swap cache (slot freed) and reuses it
    sim.touch(child, X, PAGE, write=True)
    assert page_at(sim, child, X) == h and slot_of(sim, h) is None
    assert_counts(sim, page=3, pte=4, swap_slot=0, swap_cache=0)
    # (rc1: the parent no longer maps h, so its rmap is complete again: teardown passes)


def test_write_swap_in(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X)
    write_all(sim, pid, X, 2)
    h0, h1 = pages_of(sim, pid, X, 2)
    child = sim.fork(pid)
    sim.try_to_unmap([h0, h1])
    # parent and child hold swap entries of both slots. Write fault in the parent on page 0:
    # another entry (the child's) refers to the slot -> map it, then copy
    sim.touch(pid, X, PAGE, write=True)
    c0 = page_at(sim, pid, X)
    assert c0 not in (None, h0)
    assert sim.page_info(h0)["mapcount"] == 0 and slot_of(sim, h0) is not None
    # the child's write is now the only reference: do_swap_page's reuse_swap_page takes the
    # page exclusively out of the swap cache
    sim.touch(child, X, PAGE, write=True)
    assert page_at(sim, child, X) == h0 and slot_of(sim, h0) is None
    # do_page_add_anon_rmap(..., exclusive=1): the first mapping of an exclusive page goes
    # to the faulting VMA's own anon_vma (2.6.33: the family's, which is the same)
    assert sim.page_info(h0)["anon_vma"] == vmas(sim, child)[0]["anon_vma"]
    # page 1: the child exits (free_swap_and_cache drops its entry); the parent's write is
    # then exclusive too
    sim.exit(child)
    sim.touch(pid, X + PAGE, PAGE, write=True)
    assert page_at(sim, pid, X + PAGE) == h1 and slot_of(sim, h1) is None
    assert_counts(sim, page=2, pte=2, swap_slot=0, swap_cache=0)


def test_drop_swap_cache_then_swap_in_reads_a_new_page(sim):
    parent = sim.spawn()
    sim.mmap(parent, PAGE, addr=X)
    write_all(sim, parent, X, 1)
    h = page_at(sim, parent, X)
    index = sim.page_info(h)["index"]
    child = sim.fork(parent)
    sim.try_to_unmap([h])
    slot = slot_of(sim, h)
    # mapped swap-cache pages and pages not in the swap cache are left alone
    assert sim.drop_swap_cache([h]) == 1
    assert sim.drop_swap_cache() == 0
    assert h not in anon_pages(sim)
    assert_counts(sim, page=0, pte=2, swap_slot=1, swap_cache=0)
    # the slot lives on (two entries): a fault reads a new page into the swap cache
    sim.touch(child, X, PAGE, write=False)
    new = page_at(sim, child, X)
    assert new is not None and new != h
    assert sim.page_info(new)["index"] == index and slot_of(sim, new) == slot
    assert sim.drop_swap_cache() == 0  # mapped
    # the parent's entry of the same slot finds that page in the swap cache
    sim.touch(parent, X, PAGE, write=False)
    assert page_at(sim, parent, X) == new
    assert_counts(sim, page=1, pte=2, swap_slot=1, swap_cache=1)
    if sim.era == "2.6.34":
        # do_swap_page (2.6.34-rc4 ea90002b0fa7): a page read in non-exclusively goes to
        # the oldest anon_vma of the VMA's chain -- the parent's, which both VMAs link
        assert sim.page_info(new)["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]
    elif sim.era == "2.6.34-rc1":
        # as posted: the faulting (child's) VMA's own anon_vma, which the parent's VMA does
        # not link -> the parent's mapping is invisible to rmap (kernel-eras.md bug 2)
        assert sim.page_info(new)["anon_vma"] == vmas(sim, child)[0]["anon_vma"]
        assert walk_one(sim, new)["mappings_found"] == 1 < walk_one(sim, new)["mapcount"]
        expect_broken(sim, 1)
    else:
        assert sim.page_info(new)["anon_vma"] == vmas(sim, parent)[0]["anon_vma"]


def test_try_to_unmap_keeps_the_slot_of_a_swap_cache_page(sim):
    parent = sim.spawn()
    sim.mmap(parent, PAGE, addr=X)
    write_all(sim, parent, X, 1)
    h = page_at(sim, parent, X)
    child = sim.fork(parent)
    sim.try_to_unmap([h])
    slot = slot_of(sim, h)
    sim.touch(parent, X, PAGE, write=False)  # back from the swap cache, still in it
    # add_to_swap is only for pages not in the swap cache: the child's entry and the
    # parent's new one refer to the same slot
    sim.try_to_unmap([h])
    assert slot_of(sim, h) == slot
    assert_counts(sim, page=1, pte=2, swap_slot=1, swap_cache=1)
    assert sim.drop_swap_cache() == 1
    # the parent reads first: its own anon_vma, which the child's chain links (even rc1)
    sim.touch_many([parent, child], X, PAGE, write=False)
    assert page_at(sim, parent, X) == page_at(sim, child, X) is not None


def test_madvise_pageout_reclaims_pages_mapped_once(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    write_all(sim, parent, X, 3)
    hs = pages_of(sim, parent, X, 3)
    child = sim.fork(parent)
    sim.touch(parent, X + 2 * PAGE, PAGE, write=True)  # page 2: the parent's own copy
    own = page_at(sim, parent, X + 2 * PAGE)
    stats = sim.madvise(parent, X, 3 * PAGE, "pageout")
    rows = scan_rows(stats)
    # page_mapcount == 1 only for the copy; the COW-shared pages stay mapped
    assert [r["page"] for r in rows] == [own]
    assert rows[0]["mappings_found"] == rows[0]["mapcount"] == 1
    assert own not in anon_pages(sim)  # unmapped, then freed from the swap cache
    assert pages_of(sim, parent, X, 2) == hs[:2]
    assert "ssw" in sim.render_layout(parent).splitlines()[3]
    assert_counts(sim, page=3, pte=6, swap_slot=1, swap_cache=0)
    # the parent reads it back: a new page from swap
    sim.touch(parent, X + 2 * PAGE, PAGE, write=False)
    assert page_at(sim, parent, X + 2 * PAGE) not in (None, own)


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


@pytest.mark.parametrize("how", ["munmap", "exit", "dontneed", "mmap_fixed"])
def test_zap_frees_a_swap_cache_page_no_entry_refers_to(sim, how):
    """zap_pte_range -> tlb_remove_page -> free_swap_cache: an unmapped swap-cache page
    whose slot no swap entry refers to (try_to_free_swap: page_swapcount == 0) leaves the
    swap cache and is freed; a still mapped one stays."""
    parent = sim.spawn()
    sim.mmap(parent, PAGE, addr=X)
    write_all(sim, parent, X, 1)
    h = page_at(sim, parent, X)
    sim.try_to_unmap([h])
    sim.touch(parent, X, PAGE, write=False)  # mapped, in the swap cache, no entry left
    child = sim.fork(parent)
    sim.exit(child)
    # still mapped by the parent: free_swap_cache leaves it (!page_mapped)
    assert slot_of(sim, h) is not None
    assert_counts(sim, page=1, pte=1, swap_slot=1, swap_cache=1)
    if how == "munmap":
        sim.munmap(parent, X, PAGE)
    elif how == "exit":
        sim.exit(parent)
    elif how == "dontneed":
        sim.madvise(parent, X, PAGE, "dontneed")
    else:
        sim.mmap(parent, PAGE, addr=X, prot="r")
    sim.check()
    assert h not in anon_pages(sim)
    assert_counts(sim, page=0, pte=0, swap_slot=0, swap_cache=0)


def test_mremap_shrink_grow_and_move_keep_the_pages(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 4)
    hs = pages_of(sim, pid, X, 4)
    index = [sim.page_info(h)["index"] for h in hs]
    x = X >> PAGE_SHIFT
    # shrink: do_munmap of the tail
    assert sim.mremap(pid, X, 4 * PAGE, 3 * PAGE) == X
    assert hs[3] not in anon_pages(sim)
    # grow in place: nothing after the VMA; the new page has no entry
    assert sim.mremap(pid, X, 3 * PAGE, 5 * PAGE, may_move=False) == X
    assert layout(sim, pid) == [(X, X + 5 * PAGE, x, RW)]
    assert pages_of(sim, pid, X, 5) == hs[:3] + [None, None]
    # something in the way: move (copy_vma keeps a faulted VMA's pgoff; entries move as
    # they are, the page's index with them)
    sim.mmap(pid, PAGE, addr=X + 5 * PAGE, prot="r")
    new = sim.mremap(pid, X, 5 * PAGE, 6 * PAGE)
    # get_unmapped_area searches top-down below mmap_base (the mm has nothing up there)
    assert new == MMAP_BASE - 6 * PAGE
    v = [v for v in vmas(sim, pid) if v["start"] == new][0]
    assert (v["end"], v["pgoff"]) == (new + 6 * PAGE, x)
    assert pages_of(sim, pid, new, 6) == hs[:3] + [None] * 3
    assert [sim.page_info(h)["index"] for h in hs[:3]] == index[:3]
    with pytest.raises(rmapsim.BadAddress):
        sim.page_at(pid, X)  # the old range is unmapped
    # MREMAP_FIXED over a mapped range unmaps what was there first
    sim.mmap(pid, 2 * PAGE, addr=X + 16 * PAGE)
    write_all(sim, pid, X + 16 * PAGE, 2)
    gone = pages_of(sim, pid, X + 16 * PAGE, 2)
    assert sim.mremap(pid, new, 2 * PAGE, 2 * PAGE, new_addr=X + 16 * PAGE) == X + 16 * PAGE
    assert pages_of(sim, pid, X + 16 * PAGE, 2) == hs[:2]
    assert not set(gone) & set(anon_pages(sim))
    # an unfaulted VMA moved gets pgoff = new_addr >> PAGE_SHIFT (copy_vma)
    sim.mmap(pid, PAGE, addr=X + 30 * PAGE, prot="r")
    assert sim.mremap(pid, X + 30 * PAGE, PAGE, PAGE, new_addr=X + 40 * PAGE) == X + 40 * PAGE
    v = [v for v in vmas(sim, pid) if v["start"] == X + 40 * PAGE][0]
    assert v["pgoff"] == x + 40 and v["anon_vma"] is None


def test_merge_next_to_mremap_grown_vma(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X)
    sim.mmap(pid, 2 * PAGE, addr=X + 4 * PAGE)
    # 2.6.34 mremap: vma_expandable -> vma_adjust(vma, start, addr + new_len): no vma_merge,
    # so [X, X+4P) and [X+4P, X+6P) stay two VMAs although they could merge
    assert sim.mremap(pid, X, 2 * PAGE, 4 * PAGE, may_move=False) == X
    x = X >> PAGE_SHIFT
    assert layout(sim, pid) == [(X, X + 4 * PAGE, x, RW), (X + 4 * PAGE, X + 6 * PAGE, x + 4, RW)]
    sim.check()
    # mprotect_fixup -> vma_merge(prev=NULL, [X, X+P)): next is [X+P, X+4P) -> case 8, the
    # range grows over it; [X+4P, X+6P) is no neighbour of the range and stays apart
    sim.mprotect(pid, X, PAGE, "r")
    sim.mprotect(pid, X, PAGE, "rw")
    assert layout(sim, pid) == [(X, X + 4 * PAGE, x, RW), (X + 4 * PAGE, X + 6 * PAGE, x + 4, RW)]
    sim.check()


def test_render_layout_picture(sim):
    pid = sim.spawn()
    sim.mmap(pid, 4 * PAGE, addr=X)
    write_all(sim, pid, X, 2)
    sim.touch(pid, X + 2 * PAGE, PAGE, write=False)
    child = sim.fork(pid)
    sim.try_to_unmap([page_at(sim, pid, X + PAGE)])
    sim.mprotect(pid, X + 3 * PAGE, PAGE, "r")
    sim.mmap(pid, PAGE, addr=X + 6 * PAGE, prot="none")
    lines = sim.render_layout(pid).splitlines()
    assert lines[0].startswith(f"pid {pid}: 3 VMA(s) in [{X:#x}, {X + 7 * PAGE:#x})")
    assert lines[1] == "  0123456"
    assert lines[2] == "  AAAB  C"
    # page 0 shared with the child, 1 swapped out, 2 zero page, 3 none; the "none" VMA empty
    assert lines[3] == "  swz.  ."
    assert lines[4].startswith(f"  A [{X:#x}, {X + 3 * PAGE:#x}) 3 pages pgoff {X >> PAGE_SHIFT:#x} rw-")
    assert "r--" in lines[5] and "---" in lines[6]
    assert sim.render_layout(child).splitlines()[3] == "  swz."
    sim.exec(child)
    assert sim.render_layout(child) == f"pid {child}: no VMAs\n"


def _family_with_grandchildren(era):
    sim = rmapsim.Simulator(era=era)
    root = sim.spawn()
    a = sim.mmap(root, 8 * PAGE)
    sim.touch(root, a, 8 * PAGE)
    kids = [int(k) for k in sim.fork_many(root, 4)]
    sim.touch(kids[0], a, 3 * PAGE)
    grand = sim.fork(kids[1])
    sim.touch(grand, a + 2 * PAGE, 2 * PAGE)
    return sim, root, kids, grand


@pytest.mark.parametrize("era", rmapsim.eras())
def test_exit_many_is_exit_in_order(era):
    a, root, kids, grand = _family_with_grandchildren(era)
    b, *_ = _family_with_grandchildren(era)
    order = [kids[2], kids[1], root, kids[0]]
    a.exit_many(order)
    for pid in order:
        b.exit(pid)
    a.check()
    assert a.counts() == b.counts()
    assert a.memory() == b.memory()
    assert a.operations() == b.operations()
    assert list(a.pids()) == list(b.pids()) == sorted([kids[3], grand])
    # the grandchild's parent exited: reparented as by exit()
    assert a.parent(grand) == b.parent(grand) == 0
    assert a.render_layout(grand) == b.render_layout(grand)
    assert a.rmap_walk(aggregate=True) == b.rmap_walk(aggregate=True)


@pytest.mark.parametrize("bad, err, names", [
    ([1, 999], rmapsim.NoSuchProcess, "999"),
    ([2, 3, 2], rmapsim.InvalidArgument, "pid 2 appears more than once"),
    ("12", rmapsim.InvalidArgument, "'12'"),
])
def test_exit_many_validates_every_pid_before_any_exit(bad, err, names):
    sim, root, kids, grand = _family_with_grandchildren("6.18")
    before = (sim.counts(), list(sim.pids()), sim.operations())
    with pytest.raises(err, match=names):
        sim.exit_many(bad)
    assert (sim.counts(), list(sim.pids()), sim.operations()) == before
    sim.check()


def test_exit_many_of_nothing_and_of_an_array():
    sim, root, kids, grand = _family_with_grandchildren("3.7")
    sim.exit_many([])
    assert len(sim.pids()) == 6
    sim.exit_many(sim.pids())
    assert len(sim.pids()) == 0
    assert sim.counts()["vma"] == 0 and sim.counts()["page"] == 0
