"""The page-table entry's dirty bit (``pte_dirty``), which only MADV_FREE's reclaim reads,
carried through every path that makes, copies or moves an entry, and PG_dirty beside it.

Kernel rules (the 6.18.2 tree's line numbers):

* mm/memory.c ``do_anonymous_page`` (5134-5247; 5200-5202) and ``wp_page_copy``
  (3658-3807; 3736) install a write fault's entry dirty (``pte_mkdirty`` with the write
  bit); ``wp_page_reuse`` (3564-3591) dirties the reused entry; ``do_swap_page``
  (4582-5030; 4936-4942) maps a write fault's page dirty, a read fault's clean.
* mm/memory.c ``__copy_present_ptes`` (fork, 1081-1102) write-protects a private
  mapping's entry in both processes and keeps its dirty bit (only a shared mapping's copy
  is cleaned).
* mm/mremap.c ``move_ptes`` (193-315; ``move_pte`` 288, ``set_ptes`` 300; MREMAP_DONTUNMAP
  too) moves the entry with its bits.
* mm/madvise.c ``madvise_free_pte_range`` (655-787) cleans only the entries of the calling
  process (``clear_young_dirty_ptes``); mm/rmap.c ``try_to_unmap_one`` (1865-2249) moves
  each cleared entry's dirty bit to the folio (``folio_mark_dirty``, 2065-2066) and, for a
  lazy-free folio that is dirty, puts the entry back, ``folio_set_swapbacked`` and aborts
  (2117-2158); PG_dirty then stays, so a later MADV_FREE of the page while shared skips it
  (the mapcount test of a PG_dirty folio). mm/swapfile.c ``folio_free_swap`` (1910-1920)
  sets PG_dirty on a page leaving the swap cache (``should_try_to_free_swap``, mm/memory.c
  4318-4334: a write fault's swap-in).
* Snapshots: format 3 keeps the bit; a format-2 snapshot (no bit) loads with every entry of
  a page that is not lazy-free dirty, and a lazy-free page's entries dirty exactly when it
  was written after MADV_FREE (the old flag 2).

Each observation is made through reclaim of a lazy-free page: a clean entry is discarded
(the address reads as empty), a dirty one stays (the page swap-backed again)."""

from __future__ import annotations

import pytest

import rmapsim

from helpers import DATA, layout_states

P = 4096
SRC = 0x1000_0000
DST = 0x2000_0000


def world(era="6.18"):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=SRC)
    sim.touch(p, SRC, 2 * P)
    return sim, p


def reclaim_alone(sim, keeper, others, addr):
    """The page ``keeper`` maps at ``addr`` is MADV_FREE'd by... nobody here: the callers
    did that. ``others`` unmap their mappings of it, then ``keeper``'s reclaim: True when
    the mapping stayed (its entry was dirty), False when it was discarded (clean)."""
    page = sim.page_at(keeper, addr)
    for o, a in others:
        sim.munmap(o, a, P)
    assert sim.page_info(page)["lazyfree"] is True
    sim.madvise(keeper, addr, P, "pageout")
    sim.check()
    return sim.page_at(keeper, addr) == page


@pytest.mark.parametrize("era", ["6.0", "6.18"])
def test_fork_copies_the_dirty_bit(era):
    """copy_present_pte: page 0 was written before fork (both entries dirty); the parent's
    MADV_FREE cleans its own entry only, so the child's reclaim keeps the page. Page 1 was
    MADV_FREE'd before fork (clean) and copied clean: the child's reclaim discards it."""
    sim, p = world(era)
    sim.madvise(p, SRC + P, P, "free")
    child = sim.fork(p)
    sim.madvise(p, SRC, P, "free")
    assert reclaim_alone(sim, child, [(p, SRC)], SRC) is True
    assert reclaim_alone(sim, child, [(p, SRC + P)], SRC + P) is False
    assert layout_states(sim, child)[SRC + P] == "."


def test_a_write_after_madv_free_dirties_the_entry_and_fork_copies_it():
    """A write through the cleaned writable entry (no fault) sets its bit; fork copies it."""
    sim, p = world()
    sim.madvise(p, SRC, 2 * P, "free")
    sim.touch(p, SRC + P, P)
    child = sim.fork(p)
    assert reclaim_alone(sim, child, [(p, SRC)], SRC) is False
    assert reclaim_alone(sim, child, [(p, SRC + P)], SRC + P) is True


@pytest.mark.parametrize("dontunmap", [False, True])
def test_mremap_moves_the_bit_with_the_entry(dontunmap):
    """move_ptes: a lazy-free page written again keeps its dirty entry at the new address
    (reclaim keeps it); a clean one stays clean (reclaim discards it)."""
    sim, p = world()
    sim.madvise(p, SRC, 2 * P, "free")
    sim.touch(p, SRC + P, P)
    assert sim.mremap(p, SRC, 2 * P, 2 * P, new_addr=DST, dontunmap=dontunmap) == DST
    sim.madvise(p, DST, 2 * P, "pageout")
    assert layout_states(sim, p)[DST] == "." and layout_states(sim, p)[DST + P] == "p"
    sim.check()


def test_a_cow_copy_is_installed_dirty():
    """wp_page_copy: the child's write to a shared page makes a new page with a dirty entry.
    The child forks a grandchild (copying that dirty entry) and MADV_FREEs its own: once the
    child has unmapped it, the grandchild's reclaim keeps the page."""
    sim, p = world()
    child = sim.fork(p)
    sim.touch(child, SRC, P)  # COW copy
    page = sim.page_at(child, SRC)
    assert page != sim.page_at(p, SRC)
    grandchild = sim.fork(child)
    sim.madvise(child, SRC, P, "free")
    assert reclaim_alone(sim, grandchild, [(child, SRC)], SRC) is True


def test_a_reused_page_is_dirty_and_a_swapped_in_page_written_has_pg_dirty():
    """wp_page_reuse dirties the entry: the parent's page after the child exits and the
    parent writes (reuse, no copy). A page swapped in by a write left the swap cache
    (folio_free_swap: PG_dirty): shared, MADV_FREE skips it; alone, it marks it."""
    sim, p = world()
    child = sim.fork(p)
    sim.exit(child)
    sim.touch(p, SRC, P)  # write-protected after fork: do_wp_page reuses the page
    grandchild = sim.fork(p)
    sim.madvise(p, SRC, P, "free")
    assert reclaim_alone(sim, grandchild, [(p, SRC)], SRC) is True
    sim.exit(grandchild)
    sim.try_to_unmap([sim.page_at(p, SRC + P)])
    sim.touch(p, SRC + P, P)  # do_swap_page, write: out of the swap cache
    other = sim.fork(p)
    sim.madvise(p, SRC + P, P, "free")
    assert sim.page_info(sim.page_at(p, SRC + P))["lazyfree"] is False  # PG_dirty, shared
    sim.exit(other)
    sim.madvise(p, SRC + P, P, "free")
    assert sim.page_info(sim.page_at(p, SRC + P))["lazyfree"] is True
    sim.check()


def test_a_page_reclaim_made_swap_backed_again_keeps_pg_dirty():
    """try_to_unmap_one's walk_abort leaves PG_dirty set (folio_mark_dirty): a fork and a
    MADV_FREE of the now shared page skip it; reclaim then swaps it (it is an ordinary
    swap-backed page), rather than keeping it as a lazy-free page with a dirty entry."""
    sim, p = world()
    sim.madvise(p, SRC, P, "free")
    sim.touch(p, SRC, P)
    page = sim.page_at(p, SRC)
    sim.try_to_unmap([page])
    assert sim.page_at(p, SRC) == page and sim.page_info(page)["lazyfree"] is False
    child = sim.fork(p)
    sim.madvise(p, SRC, P, "free")
    assert sim.page_info(page)["lazyfree"] is False
    sim.try_to_unmap([page])
    assert layout_states(sim, p)[SRC] == "w" and layout_states(sim, child)[SRC] == "w"  # swapped
    sim.check()


def test_the_bit_survives_a_format_3_snapshot():
    """A shared page MADV_FREE'd by the parent, restored from bytes: the child's entry is
    still dirty (its reclaim keeps the page), the parent's still clean."""
    sim, p = world()
    child = sim.fork(p)
    sim.madvise(p, SRC, P, "free")
    data = sim.to_bytes()
    assert data[8:12] == (3).to_bytes(4, "little")
    t = rmapsim.Simulator.from_bytes(data)
    t.check()
    page = t.page_at(child, SRC)
    w = t.try_to_unmap([page])
    assert list(w.mappings_found) == [2]  # the parent's clean mapping, then the child's dirty one
    assert layout_states(t, p)[SRC] == "." and t.page_at(child, SRC) == page


def test_a_format_2_snapshot_loads_with_the_bits_its_state_implies():
    """tests/data/snapshot_v2_madv_free.bin, written by the format-2 rmapsim (main at
    0d7256a) from: 6.18, pid 1 maps [SRC, SRC+3P) rw and writes it, MADV_FREEs pages 1 and 2,
    writes page 2 again, forks pid 2. Its page_info then gave page 0 not lazy-free, page 1
    lazy-free clean, page 2 lazy-free written (flag 3). Loaded here: page 0's entries are
    dirty (written before fork), so after pid 1's MADV_FREE and munmap pid 2's reclaim keeps
    it; page 1's are clean (discarded from both); page 2's dirty (kept in both)."""
    data = (DATA / "snapshot_v2_madv_free.bin").read_bytes()
    assert data[8:12] == (2).to_bytes(4, "little")
    sim = rmapsim.Simulator.from_bytes(data)
    sim.check()
    p, child = 1, 2
    pages = [sim.page_at(p, SRC + i * P) for i in range(3)]
    assert [sim.page_info(x)["lazyfree"] for x in pages] == [False, True, True]
    assert [sim.page_info(x)["dirty"] for x in pages] == [False, False, True]
    w = sim.try_to_unmap(pages[1:])
    assert list(w.mappings_found) == [2, 1]  # clean: both discarded; dirty: stops at the first
    assert sim.page_at(p, SRC + P) is None and sim.page_at(child, SRC + P) is None
    assert sim.page_at(p, SRC + 2 * P) == pages[2] and sim.page_at(child, SRC + 2 * P) == pages[2]
    sim.madvise(p, SRC, P, "free")
    assert reclaim_alone(sim, child, [(p, SRC)], SRC) is True
