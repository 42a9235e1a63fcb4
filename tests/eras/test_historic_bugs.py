"""The 2.6.34-rc anon_vma_chain bugs, each scripted and run in all three eras.

2.6.34-rc1 is the anon_vma_chain patch as first posted (commit 5beb49305251 as merged for
-rc1), reproduced faithfully; 2.6.34 carries the -rc4 fixes; 2.6.33 is the one-anon_vma-
per-family design that the patch replaced. Background: docs/eras.md and docs/bugs.md.
Every expectation below is derived from the kernel code of the
era (the comment says which rule), not from running rmapsim.

  (a) "The case of the overly anonymous anon_vma" (LWN, 2010-04-13; fixed by ea90002b0fa7
      "anonvma: when setting up page->mapping, we need to pick the _oldest_ anonvma").
  (b) anon_vma_prepare reusing a neighbour whose chain has several entries (fixed by
      d0e9fe1758f2 "Simplify and comment on anon_vma re-use for anon_vma_prepare()").
  (c) vma_adjust's importer cloning the wrong chain (fixed by 287d97ac "vma_adjust: fix the
      copying of anon_vma chains").
  (d) anon_vma_fork's error path not unlinking the chain it cloned.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import (
    ALL_ERAS,
    PAGE,
    RC1,
    XP,
    A,
    av,
    check_fails,
    check_ok,
    info,
    new_sim,
    page,
    pic,
    sites_delta,
    walk,
)

# ======================================================== (a) overly anonymous anon_vma


def swapped_family(era):
    """A writes one page p (A's anon_vma avA), forks B, and p is reclaimed: try_to_unmap
    replaces both PTEs with swap entries and leaves p in the swap cache, unmapped."""
    sim = new_sim(era)
    a = sim.spawn()
    sim.mmap(a, PAGE, addr=A(0))
    sim.touch(a, A(0), PAGE, write=True)
    p = page(sim, a, 0)
    b = sim.fork(a)
    sim.try_to_unmap([p])
    i = info(sim, p)
    assert i["mapcount"] == 0 and i["swap_slot"] is not None
    assert sim.page_at(a, A(0)) is None and sim.page_at(b, A(0)) is None
    check_ok(sim, a, b)
    return sim, a, b, p


@pytest.mark.parametrize("era", ALL_ERAS)
def test_overly_anonymous_anon_vma(era):
    """B faults the swapped page in first (a read), then A maps it from the swap cache.

    The first mapping sets page->mapping (__page_set_anon_rmap):
      2.6.33: vma->anon_vma, which is the family's single anon_vma (avA): fine.
      rc1:    B's own vma->anon_vma avB, whose list holds only B's VMA.
      2.6.34: a read is not exclusive, so the oldest anon_vma on B's chain: avA.
    A's mapping is the second one and does not change page->mapping. So in rc1 the walk
    from avB cannot find A's mapping (invariant 1), and when B exits avB's list empties and
    avB is freed while A still maps p (dangling page->mapping, invariant 2). The other eras
    pass throughout."""
    sim, a, b, p = swapped_family(era)
    av_a, av_b = av(sim, a, 0), av(sim, b, 0)
    assert (av_a == av_b) == (era == "2.6.33")  # one anon_vma per family in 2.6.33 only

    _, d = sites_delta(sim, lambda: sim.touch(b, A(0), PAGE, write=False))
    assert d == {}  # p is in the swap cache: no page allocated; B's VMA has an anon_vma
    assert page(sim, b, 0) == p
    expected_mapping = av_b if era == RC1 else av_a
    assert info(sim, p)["anon_vma"] == expected_mapping, pic(sim, a, b)
    check_ok(sim, a, b)  # only B maps p so far: every era is still consistent

    sim.touch(a, A(0), PAGE, write=False)
    assert page(sim, a, 0) == p
    assert info(sim, p)["mapcount"] == 2
    assert info(sim, p)["anon_vma"] == expected_mapping  # the second mapping keeps it
    if era == RC1:
        assert walk(sim, p) == (1, 2), pic(sim, a, b)  # B's mapping only
        check_fails(sim, r"invariant 1\b", a, b)
    else:
        assert walk(sim, p) == (2, 2), pic(sim, a, b)
        check_ok(sim, a, b)

    sim.exit(b)
    assert info(sim, p)["mapcount"] == 1
    if era == RC1:
        # avB had one list entry (B's VMA): freed with it
        check_fails(sim, r"invariant 2\b.*freed", a)
        with pytest.raises(rmapsim.InvariantViolation, match="use-after-free"):
            sim.rmap_walk([p])
    else:
        assert info(sim, p)["anon_vma"] == av_a
        assert walk(sim, p) == (1, 1)
        check_ok(sim, a)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_overly_anonymous_write_fault_variant(era):
    """Same, but B's fault is a write fault while A's swap entry still refers to the slot.

    do_swap_page: reuse_swap_page(p) counts p's mappings (0) plus the swap entries of its
    slot (A's and B's: 2) > 1, so the fault is NOT exclusive: p is mapped read-only (first
    mapping: avB in rc1, avA in 2.6.34 and 2.6.33), B's entry is freed, then the write goes
    through do_wp_page, where reuse_swap_page counts 1 mapping + 1 entry (A's) > 1, so B
    gets a copy q (page@do_wp_page, the only allocation) in B's own vma->anon_vma and p
    loses its mapping again. A then maps p from the swap cache as p's first mapping once
    more: __page_set_anon_rmap runs again and picks A's anon_vma in every era (rc1: A's
    vma->anon_vma avA; 2.6.34: oldest on A's chain, avA). The rc1 bug needs B to keep p
    mapped: here every era stays consistent, before and after B exits."""
    sim, a, b, p = swapped_family(era)
    av_a, av_b = av(sim, a, 0), av(sim, b, 0)

    _, d = sites_delta(sim, lambda: sim.touch(b, A(0), PAGE, write=True))
    assert d == {"page@do_wp_page": 1}, d
    q = page(sim, b, 0)
    assert q != p
    assert info(sim, q) == {"anon_vma": av_b, "index": XP, "mapcount": 1, "swap_slot": None}
    ip = info(sim, p)
    assert ip["mapcount"] == 0 and ip["swap_slot"] is not None  # still cached for A's entry
    # page->mapping as B's read-only first mapping left it
    assert ip["anon_vma"] == (av_b if era == RC1 else av_a), pic(sim, a, b)
    check_ok(sim, a, b)

    sim.touch(a, A(0), PAGE, write=False)
    assert page(sim, a, 0) == p
    assert info(sim, p)["anon_vma"] == av_a and info(sim, p)["mapcount"] == 1
    assert walk(sim, p) == (1, 1) and walk(sim, q) == (1, 1)
    check_ok(sim, a, b)

    sim.exit(b)
    assert info(sim, p)["anon_vma"] == av_a
    assert walk(sim, p) == (1, 1)
    check_ok(sim, a)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_overly_anonymous_exclusive_variant(era):
    """B's write fault when A's swap entry is gone (A unmapped the page first: its entry is
    freed, p stays cached for B's entry): reuse_swap_page counts 0 mappings + 1 entry = 1,
    so the fault takes p exclusively: mapped writable, removed from the swap cache, no
    allocation, no copy. An exclusive first mapping uses the faulting VMA's own anon_vma in
    2.6.34 too (ea90002b0fa7 passes exclusive=1), as in rc1: avB, which is correct since
    only B can ever map p now. 2.6.33: the family anon_vma. All eras consistent."""
    sim, a, b, p = swapped_family(era)
    av_b = av(sim, b, 0)
    sim.munmap(a, A(0), PAGE)
    assert info(sim, p)["swap_slot"] is not None
    check_ok(sim, a, b)

    _, d = sites_delta(sim, lambda: sim.touch(b, A(0), PAGE, write=True))
    assert d == {}
    assert page(sim, b, 0) == p
    assert info(sim, p) == {"anon_vma": av_b, "index": XP, "mapcount": 1, "swap_slot": None}
    assert walk(sim, p) == (1, 1)
    check_ok(sim, a, b)
    sim.exit(b)
    sim.exit(a)
    assert all(int(v) == 0 for v in sim.counts().values()), sim.counts()


# ================================================================ (c) importer clone bug


def importer_setup(era, fork_child):
    """P [0,3) unfaulted, hole [3,7), N [7,10) written (its own anon_vma avN)."""
    sim = new_sim(era)
    a = sim.spawn()
    sim.mmap(a, 3 * PAGE, addr=A(0))
    sim.mmap(a, 3 * PAGE, addr=A(7))
    sim.touch(a, A(7), 3 * PAGE, write=True)
    av_n = av(sim, a, 7)
    child = sim.fork(a) if fork_child else None
    check_ok(sim, a)
    return sim, a, child, av_n


@pytest.mark.parametrize("era", ALL_ERAS)
def test_importer_clone_bug(era):
    """0123456789
       PPP****NNN  -> mmap the hole -> PPPPPPPPPP

    vma_merge case 1: vma_adjust(P, 0, 10) removes N; P (no anon_vma) is the importer and N
    the exporter. 2.6.34: P clones N's chain (1 chain entry allocated) and takes avN.
    2.6.33: P is linked onto avN's list. rc1 clones P's own chain (empty: nothing
    allocated), sets P->anon_vma = avN, then unlink_anon_vmas(N) removes the last entry of
    avN's list and frees avN: N's pages point to a freed anon_vma."""
    sim, a, _, av_n = importer_setup(era, fork_child=False)
    _, d = sites_delta(sim, lambda: sim.mmap(a, 4 * PAGE, addr=A(3)))
    assert d == ({"anon_vma_chain@anon_vma_clone": 1} if era == "2.6.34" else {}), d
    (v,) = sim.vmas(a)
    assert (int(v["start"]), int(v["end"]), int(v["anon_vma"])) == (A(0), A(10), av_n)
    c = sim.counts()
    if era == RC1:
        assert int(v["chain_len"]) == 0
        assert (c["anon_vma"], c["anon_vma_chain"], c["page"]) == (0, 0, 3)
        check_fails(sim, r"invariant 2\b.*freed", a)
    else:
        assert int(v["chain_len"]) == (1 if era == "2.6.34" else 0)
        assert (c["anon_vma"], c["page"]) == (1, 3)
        for col in (7, 8, 9):
            assert walk(sim, page(sim, a, col)) == (1, 1)
        check_ok(sim, a)
        sim.exit(a)
        assert all(int(x) == 0 for x in sim.counts().values()), sim.counts()


@pytest.mark.parametrize("era", ALL_ERAS)
def test_importer_clone_bug_with_child(era):
    """Same merge after a fork, so C's copy of N keeps avN's list non-empty.

    rc1: the merged VMA of the parent has anon_vma avN but an empty chain: it is on no
    list, so the walk of N's pages (shared with C) finds C's mapping only (invariant 1;
    its anon_vma is not on its chain either). When C exits, avN is freed under the parent
    (invariant 2, dangling). 2.6.34: the merged VMA cloned N's chain: 2 of 2 found, and
    after C exits 1 of 1. 2.6.33: one family anon_vma: same."""
    sim, a, ch, av_n = importer_setup(era, fork_child=True)
    sim.mmap(a, 4 * PAGE, addr=A(3))
    (v,) = sim.vmas(a)
    assert int(v["anon_vma"]) == av_n
    n_pages = [page(sim, a, col) for col in (7, 8, 9)]
    if era == RC1:
        assert int(v["chain_len"]) == 0
        assert all(walk(sim, h) == (1, 2) for h in n_pages), pic(sim, a, ch)
        check_fails(sim, r"invariant 1\b", a, ch)
    else:
        assert int(v["chain_len"]) == (1 if era == "2.6.34" else 0)
        assert all(walk(sim, h) == (2, 2) for h in n_pages), pic(sim, a, ch)
        check_ok(sim, a, ch)

    sim.exit(ch)
    if era == RC1:
        check_fails(sim, r"invariant 2\b.*freed", a)
    else:
        assert all(walk(sim, h) == (1, 1) for h in n_pages)
        check_ok(sim, a)


# =============================================================== (d) fork error-path leak


def faulted_parent(era):
    sim = new_sim(era)
    par = sim.spawn()
    sim.mmap(par, 2 * PAGE, addr=A(0))
    sim.touch(par, A(0), 2 * PAGE, write=True)
    return sim, par


# The order of allocations in fork (dup_mm, dup_mmap, anon_vma_fork) for a parent with one
# VMA whose chain has one entry: the mm, the VMA, anon_vma_clone's one chain entry, then
# anon_vma_fork's own anon_vma and its chain entry. 2.6.33's anon_vma_link allocates
# nothing after the VMA.
FORK_ORDER = {
    "chain": [
        "mm_struct@dup_mm",
        "vm_area_struct@dup_mmap",
        "anon_vma_chain@anon_vma_clone",
        "anon_vma@anon_vma_fork",
        "anon_vma_chain@anon_vma_fork",
    ],
    "2.6.33": ["mm_struct@dup_mm", "vm_area_struct@dup_mmap"],
}


@pytest.mark.parametrize("era", ALL_ERAS)
def test_fork_allocation_order(era):
    """A clean fork allocates exactly the sequence above (one of each)."""
    sim, par = faulted_parent(era)
    order = FORK_ORDER["2.6.33" if era == "2.6.33" else "chain"]
    _, d = sites_delta(sim, lambda: sim.fork(par))
    assert d == {s: 1 for s in order}, d
    # and the k-th allocation is order[k-1]: failing it names that site
    for k, site in enumerate(order, start=1):
        s2, p2 = faulted_parent(era)
        s2.inject_enomem(nth=k)
        with pytest.raises(rmapsim.OutOfMemory, match=r"\(" + site + r"\)"):
            s2.fork(p2)


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize(
    "site",
    ["anon_vma_chain@anon_vma_clone", "anon_vma@anon_vma_fork", "anon_vma_chain@anon_vma_fork"],
)
def test_fork_error_path_leak(era, site):
    """Fail one allocation of anon_vma_fork (k from FORK_ORDER).

    anon_vma_clone's own failure unlinks what it linked in every chain era. A failure after
    the clone (the child's anon_vma or its chain entry) returns -ENOMEM; 2.6.34 unlinks the
    cloned chain first, rc1 did not: the cloned entry stays on avP's list pointing at the
    child VMA that dup_mmap frees (check() reports it; a walk of the parent's pages steps on
    the freed VMA), and it keeps avP alive after the parent exits. 2.6.33 has no such
    allocation: the fork makes only two, so the armed failure is not reached."""
    sim, par = faulted_parent(era)
    av_p = av(sim, par, 0)
    pids_before = sorted(int(x) for x in sim.pids())
    k = FORK_ORDER["chain"].index(site) + 1
    sim.inject_enomem(nth=k)
    if era == "2.6.33":
        child = sim.fork(par)
        sim.inject_enomem(None)
        assert sorted(int(x) for x in sim.pids()) == pids_before + [child]
        check_ok(sim, par, child)
        return
    with pytest.raises(rmapsim.OutOfMemory, match=r"\(" + site + r"\)"):
        sim.fork(par)
    assert sorted(int(x) for x in sim.pids()) == pids_before  # the child was torn down
    c = sim.counts()
    assert (c["mm"], c["vma"], c["anon_vma"], c["page"]) == (1, 1, 1, 2)
    leaks = era == RC1 and site != "anon_vma_chain@anon_vma_clone"
    # the parent's own chain entry, plus the leaked clone of it
    assert c["anon_vma_chain"] == (2 if leaks else 1), c
    if leaks:
        check_fails(sim, r"VMA \S+, freed|freed VMA", par)  # a list entry names a freed VMA
        with pytest.raises(rmapsim.InvariantViolation, match="use-after-free"):
            sim.rmap_walk([page(sim, par, 0)])
    else:
        check_ok(sim, par)
        assert all(walk(sim, page(sim, par, col)) == (1, 1) for col in (0, 1))
    sim.exit(par)
    c = {key: int(v) for key, v in sim.counts().items()}
    if leaks:
        assert (c["anon_vma_chain"], c["anon_vma"]) == (1, 1), c
        assert all(v == 0 for key, v in c.items() if key not in ("anon_vma_chain", "anon_vma")), c
    else:
        assert all(v == 0 for v in c.values()), c
    assert av_p is not None
