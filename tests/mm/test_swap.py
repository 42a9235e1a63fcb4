"""Swap (mm/rmap.c try_to_unmap; mm/memory.c do_swap_page; mm/swapfile.c free_swap_and_cache /
try_to_free_swap; mm/swap_state.c; MADV_PAGEOUT): swap out, swap cache, swap in.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import pytest

from helpers import (
    ERA_RULES,
    PAGE,
    X,
    anon_pages,
    assert_counts,
    expect_broken,
    page_at,
    pages_of,
    scan_rows,
    slot_of,
    vmas,
    walk_one,
    write_all,
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
        # parent's mapping any more (docs/bugs.md, "Overly anonymous anon_vma")
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
    # to the faulting VMA's own anon_vma (2.6.33: the family's, which is the same); from 3.0
    # a page still anonymous in the swap cache keeps its page->mapping, the parent's
    if ERA_RULES[sim.era]["swapin_keeps"]:
        assert sim.page_info(h0)["anon_vma"] == vmas(sim, pid)[0]["anon_vma"]
    else:
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
        # not link -> the parent's mapping is invisible to rmap (docs/bugs.md, "Overly anonymous anon_vma")
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
    sim.fork(parent)  # the child maps every page too
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
