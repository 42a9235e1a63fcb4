"""MADV_FREE (``Simulator.madvise(..., "free")``; Linux 4.5, 854e9ed09ded "mm: support
madvise(MADV_FREE)"; knob ``has_madv_free``, set in 6.0 and 6.18) and what reclaim does with
the lazy-free pages it leaves.

Kernel rules (the 6.18.2 tree's line numbers; 4.5 the same in what is modelled):

* mm/madvise.c ``madvise_free_single_vma`` (803-839): a VMA that is not anonymous is EINVAL
  (rmapsim refuses the whole call up front, nothing changed); ``lru_add_drain`` (828) puts
  this CPU's new pages on the LRU first. ``madvise_free_pte_range`` (655-787): a swap entry
  in the range is dropped (``free_swap_and_cache_nr``, the entry cleared). A page in the
  swap cache or with PG_dirty must be mapped once (``folio_mapcount(folio) !=
  folio_nr_pages(folio)``: skipped; 4.5: "If page is shared with others, we couldn't clear
  PG_dirty of the page") and leave the swap cache (``folio_free_swap``: no swap entry may
  refer to its slot), else it is skipped; it loses PG_dirty. Any other page, shared or not,
  is not checked: the entry is made clean and old (``clear_young_dirty_ptes``, this
  mapping's only) and mm/swap.c ``folio_mark_lazyfree`` (724-732) clears PG_swapbacked:
  ``page_info()["lazyfree"]``. The zero page is not touched. (The live 6.18 marks a page
  shared with a child: "shared" below.)
* a later write sets the entry's dirty bit; ``page_info()["dirty"]``: lazy-free with a
  dirty entry. PG_dirty is set when a mapped page leaves the swap cache (mm/swapfile.c
  ``folio_free_swap``, 1910-1920).
* mm/vmscan.c ``shrink_folio_list`` (1099-1646) gives a lazy-free page no swap slot (only
  swap-backed pages go through ``add_to_swap``, 1296-1302); mm/rmap.c ``try_to_unmap_one``
  (1865-2249) clears each mapping the walk finds and, for a page that is not swap-backed
  (2117-2158): dirty (the cleared entry was dirty: ``folio_mark_dirty``, 2065-2066, or
  PG_dirty) -> the entry is put back, ``folio_set_swapbacked``, and
  the walk aborts (it stops at that mapping; the ones it discarded before stay discarded);
  clean -> the mapping is discarded (no swap entry) and the walk goes on.
  A discarded page is freed (``free_it``); a later read fault maps the zero page.
  ``MADV_PAGEOUT`` (exclusive pages only) takes the same path; so does the simulator's
  ``try_to_unmap``.

Ground truth: tests/data/madv_free.c run on this machine's Linux 6.18 with a swap file,
recorded in tests/data/madv_free.out: the first MADV_PAGEOUT after MADV_FREE discards the
clean pages and leaves the re-dirtied one present; a second one swaps it; MADV_FREE drops
swap entries; MADV_FREE of a page shared with a child marks it (once the child has gone,
MADV_PAGEOUT discards it rather than swapping it). Part D, the per-entry dirty bits: after
the parent's MADV_FREE of a shared page and its unmapping, the child's MADV_PAGEOUT keeps
the page (the child's entry is dirty: swap-backed again) and the next one swaps it; a page
swapped in by a write (PG_dirty) and shared is skipped (the child's pageout swaps it); an
entry MADV_FREE cleaned before fork is copied clean (the child's pageout discards it); a
lazy-free page written again and moved by mremap is kept by reclaim, a clean one discarded
(tests/mm/test_pte_dirty.py has the same rules one by one)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import rmapsim
import rmapsim.trace

from helpers import DATA, FROM_6_18, kernel_at_least, layout_states, recorded_lines

P = 4096
SRC = 0x1000_0000
LIVE = {"p": "p", "s": "p", "z": "p", "w": "s", ".": "-"}  # render_layout state -> pagemap's


def lazy(sim, pid, addr):
    info = sim.page_info(sim.page_at(pid, addr))
    return (info["lazyfree"], info["dirty"])


def simulate_program(era="6.18"):
    """tests/data/madv_free.c on the simulator. A page's bytes are what was last written at
    its address while the entry holds it (present or swapped); an empty entry or the zero
    page reads 0."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    out = []
    sim.mmap(p, 4 * P, addr=SRC)
    sim.mmap(p, 2 * P, addr=SRC + 8 * P)
    sim.touch(p, SRC, 4 * P)
    sim.touch(p, SRC + 8 * P, 2 * P)
    value = {SRC + i * P: 1 for i in range(4)}
    value.update({SRC + i * P: 2 for i in (8, 9)})

    def show(when):
        st = layout_states(sim, p)
        a = "".join(LIVE[st[SRC + i * P]] for i in range(4))
        b = "".join(LIVE[st[SRC + i * P]] for i in (8, 9))
        out.append(f"state {when} {a} {b}")

    def advise(name, addr, n, advice):
        sim.madvise(p, addr, n * P, advice)
        out.append(f"call {name} ok")

    show("written")
    advise("free-a", SRC, 4, "free")
    show("freed")
    sim.touch(p, SRC + P, P)
    value[SRC + P] = 3
    advise("pageout-a", SRC, 4, "pageout")
    show("pageout-1")
    advise("pageout-a-again", SRC, 4, "pageout")
    show("pageout-2")
    advise("pageout-b", SRC + 8 * P, 2, "pageout")
    show("b-out")
    advise("free-b", SRC + 8 * P, 2, "free")
    show("b-freed")
    got = []
    for a in (SRC, SRC + P, SRC + 2 * P, SRC + 8 * P, SRC + 9 * P):
        held = layout_states(sim, p)[a] in "psw"
        sim.touch(p, a, P, write=False)
        got.append(value[a] if held else 0)
    out.append("data " + " ".join(map(str, got)))
    show("read")
    c = SRC + 12 * P
    sim.mmap(p, 2 * P, addr=c)
    sim.touch(p, c, 2 * P)
    child = sim.fork(p)
    advise("free-c-shared", c, 1, "free")
    sim.exit(child)
    advise("free-c-alone", c + P, 1, "free")
    advise("pageout-c", c, 2, "pageout")
    st = layout_states(sim, p)
    out.append("shared " + LIVE[st[c]] + LIVE[st[c + P]])
    simulate_part_d(sim, p, out)
    sim.check()
    return out


def simulate_part_d(sim, p, out):
    """D of tests/data/madv_free.c: the per-entry dirty bits through swap-in, MADV_FREE,
    mremap, fork and a shared MADV_FREE (the child's lines as the child prints them)."""
    d = [SRC + (16 + i) * P for i in range(5)]

    def advise(pid, name, addr, n, advice):
        sim.madvise(pid, addr, n * P, advice)
        out.append(f"call {name} ok")

    def states(pid, addrs):
        st = layout_states(sim, pid)
        return "".join(LIVE[st[a]] for a in addrs)

    sim.mmap(p, 5 * P, addr=d[0])
    sim.touch(p, d[0], 5 * P)
    advise(p, "pageout-d2", d[2], 1, "pageout")
    sim.touch(p, d[2], P)  # swapped in by a write
    advise(p, "free-d1", d[1], 1, "free")
    advise(p, "free-d3-d4", d[3], 2, "free")
    sim.touch(p, d[3], P)
    sim.mremap(p, d[3], P, P, new_addr=SRC + 24 * P)
    sim.mremap(p, d[4], P, P, new_addr=SRC + 25 * P)
    advise(p, "pageout-moved", SRC + 24 * P, 2, "pageout")
    out.append("moved " + states(p, [SRC + 24 * P, SRC + 25 * P]))
    child = sim.fork(p)
    advise(p, "free-d0-shared", d[0], 1, "free")
    advise(p, "free-d2-shared", d[2], 1, "free")
    sim.mmap(p, 3 * P, addr=d[0])
    for r in (1, 2):
        advise(child, "child-pageout", d[0], 3, "pageout")
        out.append(f"child-{r} " + states(child, d[:3]))
    sim.exit(child)


def test_6_18_matches_the_live_kernel_recording():
    rec = recorded_lines(DATA / "madv_free.out")
    assert "state pageout-1 -p-- pp" in rec and "state pageout-2 -s-- pp" in rec
    assert simulate_program("6.18") == rec


def world(era="6.18", pages=4):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, pages * P, addr=SRC)
    sim.touch(p, SRC, pages * P)
    return sim, p


def test_pages_become_lazyfree_shared_ones_too_but_not_the_zero_page():
    sim, p = world()
    sim.munmap(p, SRC + 3 * P, P)
    sim.mmap(p, P, addr=SRC + 3 * P)
    sim.touch(p, SRC + 3 * P, P, write=False)  # the zero page
    child = sim.fork(p)
    sim.touch(child, SRC + 2 * P, P)  # the child's COW copy: page 2 is exclusive in both now
    sim.madvise(p, SRC, 4 * P, "free")
    # pages 0 and 1 are shared with the child, neither in the swap cache nor PG_dirty: no
    # mapcount test, lazy-free; the child's entries keep their dirty bits (written before fork)
    assert [lazy(sim, p, SRC + i * P) for i in (0, 1)] == [(True, True)] * 2
    assert lazy(sim, p, SRC + 2 * P) == (True, False)  # exclusive, its one entry cleaned
    assert lazy(sim, child, SRC + 2 * P) == (False, False)  # the child's own copy: not in the range
    assert sim.page_at(p, SRC + 3 * P) is None and layout_states(sim, p)[SRC + 3 * P] == "z"
    assert sim.vmas(p)[0]["flags"] == ["account"]  # no VMA change: no split, no flag
    sim.check()


def test_a_shared_pg_dirty_page_is_skipped():
    """A page that left the swap cache while mapped has PG_dirty (folio_free_swap); shared,
    MADV_FREE cannot clear it and skips the page; mapped once, it is cleared and marked."""
    sim, p = world(pages=1)
    page = sim.page_at(p, SRC)
    sim.try_to_unmap([page])
    sim.touch(p, SRC, P)  # swap-in by a write: reuse_swap_page takes it out of the swap cache
    page = sim.page_at(p, SRC)
    assert sim.page_info(page)["swap_slot"] is None and lazy(sim, p, SRC) == (False, False)
    child = sim.fork(p)
    sim.madvise(p, SRC, P, "free")
    assert lazy(sim, p, SRC) == (False, False)  # skipped (PG_dirty and shared)
    sim.exit(child)
    sim.madvise(p, SRC, P, "free")
    assert lazy(sim, p, SRC) == (True, False)  # PG_dirty cleared, entry cleaned
    sim.check()


@pytest.mark.parametrize("era", ["6.0", "6.18"])
@pytest.mark.parametrize("freer", ["parent", "child"])
def test_a_shared_lazyfree_page_keeps_the_mappings_after_the_first_dirty_one(era, freer):
    """Written, then forked: both entries dirty (copy_present_pte keeps the bit of a private
    mapping); one side's MADV_FREE cleans only its own entry and marks the page (no swap
    cache, no PG_dirty: no mapcount test). try_to_unmap_one discards each clean mapping the
    walk meets and aborts at the first dirty one, the page swap-backed again. The walk goes
    through page->mapping, the parent's anon_vma, whose interval tree holds the parent's
    VMA before the child's (same pgoff; anon_vma_fork adds the child's entry later, and an
    equal key goes to the right): parent first. So when the parent freed, its mapping is
    discarded and the walk stops at the child's (two found, the child keeps the page); when
    the child freed, the walk stops at the parent's dirty entry at once (one found, nothing
    discarded)."""
    sim, p = world(era, pages=1)
    page = sim.page_at(p, SRC)
    child = sim.fork(p)
    sim.madvise(p if freer == "parent" else child, SRC, P, "free")
    assert sim.page_info(page)["lazyfree"] is True
    w = sim.try_to_unmap([page])
    assert sim.page_info(page)["lazyfree"] is False and sim.page_info(page)["swap_slot"] is None
    if freer == "parent":
        assert list(w.mappings_found) == [2] and sim.page_info(page)["mapcount"] == 1
        assert layout_states(sim, p)[SRC] == "." and sim.page_at(child, SRC) == page
    else:
        assert list(w.mappings_found) == [1] and sim.page_info(page)["mapcount"] == 2
        assert sim.page_at(p, SRC) == page and sim.page_at(child, SRC) == page
    sim.check()
    # swap-backed again: the next reclaim swaps every mapping left
    sim.try_to_unmap([page])
    assert layout_states(sim, child)[SRC] == "w"  # swapped, the page in the swap cache


def test_swap_entries_in_the_range_are_dropped():
    sim, p = world(pages=2)
    sim.try_to_unmap([sim.page_at(p, SRC)])
    sim.drop_swap_cache()
    assert layout_states(sim, p)[SRC] == "w"
    before = sim.counts()
    sim.madvise(p, SRC, 2 * P, "free")
    assert layout_states(sim, p)[SRC] == "."  # free_swap_and_cache + pte cleared
    assert sim.counts()["page"] == before["page"]
    sim.touch(p, SRC, P, write=False)
    assert layout_states(sim, p)[SRC] == "z"  # the old contents are gone
    sim.check()


def test_a_swap_cache_page_leaves_it_unless_another_entry_refers_to_the_slot():
    sim, p = world(pages=1)
    child = sim.fork(p)
    page = sim.page_at(p, SRC)
    sim.try_to_unmap([page])  # both mappings become swap entries of one slot
    sim.touch(p, SRC, P, write=False)  # swap-in: mapped by p, in the swap cache, child's entry left
    page = sim.page_at(p, SRC)
    assert sim.page_info(page)["swap_slot"] is not None and sim.page_info(page)["mapcount"] == 1
    sim.madvise(p, SRC, P, "free")
    assert lazy(sim, p, SRC) == (False, False)  # folio_free_swap fails: skipped
    sim.exit(child)  # the last other swap entry goes
    sim.madvise(p, SRC, P, "free")
    assert sim.page_info(page)["swap_slot"] is None and lazy(sim, p, SRC) == (True, False)
    sim.check()


def test_reclaim_discards_a_clean_lazyfree_page():
    sim, p = world(pages=2)
    sim.madvise(p, SRC, 2 * P, "free")
    page = sim.page_at(p, SRC)
    w = sim.try_to_unmap([page])
    assert list(w.mappings_found) == [1] and list(w.mapcount) == [1]
    with pytest.raises(rmapsim.StaleHandle):  # freed: no swap slot, no swap cache
        sim.page_info(page)
    assert layout_states(sim, p)[SRC] == "."
    sim.check()
    sim.touch(p, SRC, P, write=False)
    assert layout_states(sim, p)[SRC] == "z"  # a later read maps the zero page
    sim.touch(p, SRC, P)
    assert sim.page_info(sim.page_at(p, SRC))["lazyfree"] is False  # a write: a new page
    sim.check()


def test_a_forked_clean_lazyfree_page_is_discarded_from_every_mapping():
    sim, p = world(pages=1)
    sim.madvise(p, SRC, P, "free")
    child = sim.fork(p)
    page = sim.page_at(p, SRC)
    assert sim.page_info(page)["mapcount"] == 2 and sim.page_info(page)["lazyfree"] is True
    w = sim.try_to_unmap([page])
    assert list(w.mappings_found) == [2]
    assert layout_states(sim, p)[SRC] == "." and layout_states(sim, child)[SRC] == "."
    assert sim.counts()["page"] == 0
    sim.check()


def test_a_rewritten_page_is_swap_backed_again_and_stays_mapped():
    sim, p = world(pages=1)
    sim.madvise(p, SRC, P, "free")
    sim.touch(p, SRC, P)  # written again: the entry is dirty
    page = sim.page_at(p, SRC)
    assert lazy(sim, p, SRC) == (True, True)
    child = sim.fork(p)  # copy_present_pte keeps the dirty bit: both entries dirty
    w = sim.try_to_unmap([page])
    # walk_abort at the first mapping found: one found of two, nothing unmapped
    assert list(w.mappings_found) == [1] and list(w.mapcount) == [2]
    assert sim.page_info(page)["mapcount"] == 2 and sim.page_info(page)["swap_slot"] is None
    assert lazy(sim, p, SRC) == (False, False)  # folio_set_swapbacked (and folio_mark_dirty)
    sim.check()
    # now an ordinary page: the next reclaim swaps both mappings
    w = sim.try_to_unmap([page])
    assert list(w.mappings_found) == [2]
    assert layout_states(sim, p)[SRC] == "w" and layout_states(sim, child)[SRC] == "w"
    sim.check()


def test_cow_after_fork_leaves_the_lazyfree_page_clean():
    sim, p = world(pages=1)
    sim.madvise(p, SRC, P, "free")
    child = sim.fork(p)
    page = sim.page_at(p, SRC)
    sim.touch(p, SRC, P)  # mapcount 2: do_wp_page copies; the original is not written
    assert sim.page_at(p, SRC) != page and lazy(sim, child, SRC) == (True, False)
    sim.touch(child, SRC, P)  # now mapped once: reused in place, written -> dirty
    assert sim.page_at(child, SRC) == page and lazy(sim, child, SRC) == (True, True)
    sim.check()


def test_madv_pageout_takes_the_same_path():
    sim, p = world(pages=2)
    sim.madvise(p, SRC, 2 * P, "free")
    sim.touch(p, SRC + P, P)
    w = sim.madvise(p, SRC, 2 * P, "pageout")
    assert list(w.mappings_found) == [1, 1]
    st = layout_states(sim, p)
    assert (st[SRC], st[SRC + P]) == (".", "p")
    sim.check()


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if e not in ("6.0", *FROM_6_18)])
def test_before_4_5_the_advice_is_einval(era):
    assert rmapsim.Policy.preset(era)["has_madv_free"] == "false"
    sim, p = world(era)
    with pytest.raises(rmapsim.InvalidArgument, match=f"era {era}.*4.5"):
        sim.madvise(p, SRC, 4 * P, "free")
    assert all(sim.page_info(sim.page_at(p, SRC + i * P))["lazyfree"] is False for i in range(4))


def test_a_file_mapping_in_the_range_is_einval_and_nothing_changes():
    sim, p = world(pages=2)
    sim.mmap(p, 2 * P, addr=SRC + 2 * P, prot="rw", file=3, offset=0)
    sim.touch(p, SRC + 2 * P, 2 * P)  # COW copies: anonymous pages in a file VMA
    with pytest.raises(rmapsim.InvalidArgument, match="anonymous"):
        sim.madvise(p, SRC, 4 * P, "free")
    assert all(lazy(sim, p, SRC + i * P) == (False, False) for i in range(4))  # not marked


def test_the_state_survives_a_snapshot_and_the_trace_word_replays():
    sim, p = world(pages=2)
    sim.madvise(p, SRC, 2 * P, "free")
    sim.touch(p, SRC, P)
    back = rmapsim.Simulator.from_bytes(sim.to_bytes())
    assert [lazy(back, p, SRC + i * P) for i in (0, 1)] == [(True, True), (True, False)]
    back.check()
    text = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x2000 rw\ntouch p1 0x10000000 0x2000 w\nmadvise p1 0x10000000 0x2000 free\n"
    ops = rmapsim.trace.parse(text)
    assert rmapsim.trace.format(ops).splitlines()[-1] == "madvise p1 0x10000000 0x2000 free"
    t = rmapsim.Simulator(era="6.18")
    t.apply(ops)
    assert lazy(t, 1, SRC) == (True, False)


@pytest.mark.skipif(
    not kernel_at_least(4, 5) or shutil.which("cc") is None or os.geteuid() != 0,
    reason="needs Linux 4.5+, a C compiler and root for a swap file (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    from rmapsim.tools.kernel.driver import swapfile

    exe = tmp_path / "prog"
    subprocess.run(["cc", "-O0", "-o", str(exe), str(DATA / "madv_free.c")], check=True, capture_output=True)
    with swapfile(16) as why:
        assert why is None, why
        got = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert got == recorded_lines(DATA / "madv_free.out")


def test_a_lazyfree_page_listed_twice_is_reclaimed_as_two_calls_would():
    """A page repeated in one ``try_to_unmap`` list is walked again as a second call would
    (the batch's rule for repeats). For a dirty lazy-free page the first visit re-marks it
    swap-backed (try_to_unmap_one's lazy-free branch, folio_set_swapbacked); the second is
    then an ordinary reclaim and swaps it. A clean one is discarded by the first visit, so
    the second finds no mapping."""
    sim, p = world(pages=2)
    sim.madvise(p, SRC, 2 * P, "free")
    sim.touch(p, SRC, P)  # page 0 dirty again, page 1 clean
    dirty, clean = sim.page_at(p, SRC), sim.page_at(p, SRC + P)
    w = sim.try_to_unmap([dirty, dirty])
    assert list(w.mappings_found) == [1, 1]
    assert layout_states(sim, p)[SRC] == "w"  # swapped by the second visit
    assert sim.page_info(dirty)["swap_slot"] is not None
    w = sim.try_to_unmap([clean, clean])
    assert list(w.mappings_found) == [1, 0]
    assert layout_states(sim, p)[SRC + P] == "."
    sim.check()
