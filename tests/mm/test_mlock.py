"""The mlock family: ``mlock``, ``mlock2(MLOCK_ONFAULT)``, ``munlock``, ``mlockall``,
``munlockall`` and ``MAP_LOCKED`` (``VM_LOCKED`` / ``VM_LOCKONFAULT``, flags "locked" /
"lockonfault" of ``vmas()``).

Kernel rules (6.18.2 tree line numbers):

* ``do_mlock`` (mm/mlock.c 612-657) rounds the range out to pages (623-624), sets the lock
  bits with ``apply_vma_lock_flags`` (514-562: VMA by VMA through ``mlock_fixup`` 466-512,
  which splits and merges with ``vma_modify_flags`` like mprotect), then faults the range in
  (``__mm_populate``, 653); a populate error is reported by ``__mlock_posix_error_return``
  (603-610: EFAULT -> ENOMEM), the range staying locked. ``mlock2``'s ``MLOCK_ONFAULT`` adds
  ``VM_LOCKONFAULT`` (664-675); ``munlock`` is ``apply_vma_lock_flags(start, len, 0)``
  (677-692).
* Holes, ``apply_vma_lock_flags``: no VMA at the start is ENOMEM with nothing changed
  (528-530); a gap is ENOMEM when the loop reaches it (542-543), the VMAs before it changed;
  a hole at the end is ENOMEM after the loop (558-559); ``do_mlock`` then returns before
  populating (650-651). rmapsim's strict default changes nothing instead.
* Populate, ``populate_vma_page_range`` (mm/gup.c 1813-1863): nothing for
  ``VM_LOCKONFAULT`` (1832-1833), EFAULT for PROT_NONE (1836-1837), write faults for a
  private writable mapping (so COW is broken at once), read faults otherwise (1848-1851).
* ``apply_mlockall_flags`` (mm/mlock.c 704-743): ``def_flags`` loses its lock bits and
  ``MCL_FUTURE`` sets ``VM_LOCKED`` (+ ``VM_LOCKONFAULT``) in it (710-719); ``MCL_CURRENT``
  locks every VMA, errors ignored (721-740). ``sys_mlockall`` (745-772): no flag, or
  ``MCL_ONFAULT`` alone, is EINVAL (750-752); then ``mm_populate(0, TASK_SIZE)`` (768-769).
  ``munlockall`` is ``apply_mlockall_flags(0)`` (774-783).
* ``def_flags`` and ``VM_LOCKED`` later: ``do_mmap`` adds ``mm->def_flags`` (mm/mmap.c
  400-401) and asks for a populate of a ``VM_LOCKED`` mapping (558-562); brk growth is
  populated when ``def_flags`` has ``VM_LOCKED`` (198-206); mremap growth of a locked VMA
  populates the grown part (mm/mremap.c 1726-1728, 1947-1948).
* fork: ``dup_mmap`` clears ``VM_LOCKED_MASK`` on the child's copies (mm/mmap.c 1799) and
  ``mm_init`` keeps only ``VM_INIT_DEF_MASK`` of ``def_flags`` (kernel/fork.c 1065): no lock
  bits.
* ``mprotect_fixup``: a private ``VM_LOCKED`` VMA becoming writable is populated (mm/mprotect.c
  840-845; 4.5+, knob ``mprotect_populates_locked``).
* ``MREMAP_DONTUNMAP``: ``dontunmap_complete`` clears the old VMA's lock bits in place
  (mm/mremap.c 1253-1254).
* madvise on a ``VM_LOCKED`` VMA: ``MADV_DONTNEED`` / ``MADV_FREE`` are EINVAL
  (``madvise_dontneed_free_valid_vma``, mm/madvise.c 876-901, 913-914), ``MADV_PAGEOUT`` too
  (``can_madv_lru_vma``, 593-596, 629-635); ``madvise_walk_vmas`` returns that error at once
  (1669-1671), the VMAs before it done.
* Reclaim walks: ``folio_referenced_one`` (mm/rmap.c 848-881) and ``try_to_unmap_one``
  (1905-1935): a mapping in a ``VM_LOCKED`` VMA ends the walk (``return false``), the page
  left mapped; the walks of every era stop the same way, at a VMA where the page is
  mapped (2.6.3x ``page_referenced_one`` checks ``VM_LOCKED`` after ``page_check_address``
  and sets ``*mapcount`` to end the loop; ``try_to_unmap_one`` returns ``SWAP_MLOCK``).

Not modelled: ``RLIMIT_MEMLOCK`` / ``mm->locked_vm`` (the processes are root, as the live
recording ran), the unevictable LRU and ``PG_mlocked`` (after munlock a page is evictable
again in that walks no longer stop at it).

Ground truth: tests/data/mlock_ksm.c run on this machine's Linux 6.18, recorded in
tests/data/mlock_ksm.out (tests/mm/mlock_ksm_program.py replays it); the lock steps are
compared here, the KSM steps in test_ksm.py.
"""

from __future__ import annotations

import shutil

import pytest
from mlock_ksm_program import run_trace, section, simulate

import rmapsim

from helpers import (
    BUGGY_ERAS,
    DATA,
    ERA_RULES,
    FROM_6_18,
    RC1_INVARIANTS,
    X,
    expect_broken,
    kernel_at_least,
    layout_states,
    page_at,
    recorded_lines,
    run_c_program,
    scan_rows,
    snapshot,
)

P = 4096
RECORDING = str(DATA / "mlock_ksm.out")
PROGRAM = str(DATA / "mlock_ksm.c")
MODERN = ("6.0", *FROM_6_18)  # the presets with MLOCK_ONFAULT (4.4+)


def c(i):
    return X + i * P


def lay(sim, pid):
    """[(start page, end page, prot, lock marks)] of pid's VMAs around X."""
    out = []
    for v in sim.vmas(pid):
        marks = "+".join(f for f in ("locked", "lockonfault") if f in v["flags"]) or "-"
        out.append(((v["start"] - X) // P, (v["end"] - X) // P, v["prot"] or "none", marks))
    return out


def states(sim, pid):
    """The page states of pid's pages from X on, as one string ('.' none, 'z' zero page,
    'p' private, 's' shared, 'w' swap entry)."""
    st = layout_states(sim, pid)
    return "".join(st[a] for a in sorted(st))


def mapped(era="6.18", pages=4, prot="rw", holes="strict"):
    sim = rmapsim.Simulator(era=era, holes=holes)
    p = sim.spawn()
    sim.mmap(p, pages * P, addr=X, prot=prot)
    return sim, p


# --------------------------------------------------------------------------- splits, merges, populate


@pytest.mark.parametrize("era", rmapsim.eras())
def test_mlock_splits_populates_and_munlock_merges_back(era):
    sim, p = mapped(era)
    sim.mlock(p, c(1), 2 * P)
    # mlock_fixup -> vma_modify_flags: the middle becomes a VMA of its own, locked and
    # faulted in for write (private writable); the outer pages stay empty
    assert lay(sim, p) == [(0, 1, "rw", "-"), (1, 3, "rw", "locked"), (3, 4, "rw", "-")]
    assert states(sim, p) == ".pp."
    sim.munlock(p, c(1), 2 * P)
    # flags equal again: the unfaulted outer VMAs take the faulted middle back, except
    # under 3.0-6.x's singular-chain rule (965f55dea0e3: "either anon_vma NULL" only when
    # the target's chain is singular, and prev's is empty)
    if ERA_RULES[era]["merge"] == "singular":
        assert lay(sim, p) == [(0, 1, "rw", "-"), (1, 3, "rw", "-"), (3, 4, "rw", "-")]
    else:
        assert lay(sim, p) == [(0, 4, "rw", "-")]
    assert states(sim, p) == ".pp."  # munlock leaves the pages mapped
    if era in BUGGY_ERAS:
        expect_broken(sim, *RC1_INVARIANTS, mark=False)  # the patch as posted
    else:
        sim.check()


@pytest.mark.parametrize("era", rmapsim.eras())
def test_populate_write_faults_break_cow_read_faults_do_not(era):
    sim, p = mapped(era, pages=2)
    sim.touch(p, X, 2 * P, write=True)
    ch = sim.fork(p)
    sim.mprotect(ch, c(1), P, "r")
    sim.mlock(ch, X, 2 * P)
    # page 0: private writable, faulted for write -> the child's own copy; page 1 read-only,
    # faulted for read -> still the parent's page
    assert page_at(sim, ch, c(0)) != page_at(sim, p, c(0))
    assert page_at(sim, ch, c(1)) == page_at(sim, p, c(1))
    assert states(sim, p) == "ps" and states(sim, ch) == "ps"
    sim.check()


@pytest.mark.parametrize("era", rmapsim.eras())
def test_a_read_only_mapping_is_populated_with_the_zero_page(era):
    sim, p = mapped(era, pages=2, prot="r")
    sim.mlock(p, X, 2 * P)
    assert lay(sim, p) == [(0, 2, "r", "locked")]
    assert states(sim, p) == "zz"


@pytest.mark.parametrize("era", rmapsim.eras())
def test_prot_none_is_locked_but_enomem(era):
    sim, p = mapped(era, pages=2, prot="none")
    with pytest.raises(rmapsim.BadAddress, match="ENOMEM"):
        sim.mlock(p, X, 2 * P)
    assert lay(sim, p) == [(0, 2, "none", "locked")]  # apply_vma_lock_flags came first
    assert states(sim, p) == ".."


@pytest.mark.parametrize("era", MODERN)
def test_onfault_locks_without_faulting_and_mlock_then_faults(era):
    sim, p = mapped(era, pages=2)
    sim.mlock(p, X, 2 * P, onfault=True)
    assert lay(sim, p) == [(0, 2, "rw", "locked+lockonfault")] and states(sim, p) == ".."
    sim.mlock(p, X, 2 * P)  # VM_LOCKONFAULT cleared, now populated
    assert lay(sim, p) == [(0, 2, "rw", "locked")] and states(sim, p) == "pp"


def test_the_range_is_rounded_out_to_pages():
    sim, p = mapped(pages=2)
    sim.mlock(p, X + 100, 1)  # do_mlock: len = PAGE_ALIGN(len + offset), start &= PAGE_MASK
    assert lay(sim, p) == [(0, 1, "rw", "locked"), (1, 2, "rw", "-")]
    sim.mlock(p, X + P - 1, 2)  # the last byte of page 0 and the first of page 1
    assert lay(sim, p) == [(0, 2, "rw", "locked")]


@pytest.mark.parametrize("era", ("2.6.35", "6.18"))
def test_map_locked_is_locked_and_faulted_and_merges_only_with_locked(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=c(0), locked=True)
    sim.mmap(p, 2 * P, addr=c(2))
    sim.mmap(p, 2 * P, addr=c(4), locked=True)
    sim.mmap(p, 2 * P, addr=c(6), locked=True)
    assert lay(sim, p) == [(0, 2, "rw", "locked"), (2, 4, "rw", "-"), (4, 8, "rw", "locked")]
    assert states(sim, p) == "pp..pppp"
    sim.check()


# --------------------------------------------------------------------------- holes


@pytest.mark.parametrize("call", ["mlock", "munlock"])
def test_strict_a_hole_is_bad_address_and_changes_nothing(call):
    sim, p = mapped(pages=1)
    sim.mmap(p, P, addr=c(2))
    if call == "munlock":
        sim.mlock(p, X, P)
        sim.mlock(p, c(2), P)
    before = snapshot(sim)
    with pytest.raises(rmapsim.BadAddress, match=rf"{call}\(addr=0x40000000, length=0x3000\).*ENOMEM"):
        getattr(sim, call)(p, X, 3 * P)
    assert snapshot(sim) == before


def test_kernel_mode_mlock_locks_up_to_the_hole_and_populates_nothing():
    sim, p = mapped(pages=1, holes="kernel")
    sim.mmap(p, P, addr=c(2))
    with pytest.raises(rmapsim.BadAddress, match="0x40001000 .*ENOMEM"):
        sim.mlock(p, X, 3 * P)
    # VMA 0 locked before the loop met the gap; do_mlock returned before __mm_populate
    assert lay(sim, p) == [(0, 1, "rw", "locked"), (2, 3, "rw", "-")]
    assert states(sim, p) == ".."
    sim.check()


def test_kernel_mode_a_hole_at_the_start_or_the_end():
    sim, p = mapped(pages=1, holes="kernel")
    with pytest.raises(rmapsim.BadAddress):
        sim.mlock(p, X - P, 2 * P)  # no VMA at the start: nothing changed
    assert lay(sim, p) == [(0, 1, "rw", "-")]
    with pytest.raises(rmapsim.BadAddress):
        sim.mlock(p, X, 2 * P)  # a hole at the end: the VMA locked, nothing populated
    assert lay(sim, p) == [(0, 1, "rw", "locked")] and states(sim, p) == "."


def test_kernel_mode_munlock_unlocks_up_to_the_hole():
    sim, p = mapped(pages=1, holes="kernel")
    sim.mmap(p, P, addr=c(2))
    sim.mlockall(p, current=True)
    with pytest.raises(rmapsim.BadAddress):
        sim.munlock(p, X, 3 * P)
    assert lay(sim, p) == [(0, 1, "rw", "-"), (2, 3, "rw", "locked")]


@pytest.mark.parametrize("era", ("2.6.33", "6.18", "6.18+mlock_populates_after=false"))
def test_populate_stops_at_prot_none(era):
    """rw, none, rw locked in one call. 2.6.38+ locks all three first, then populates and
    stops at the PROT_NONE VMA (EFAULT -> ENOMEM). Before (knob mlock_populates_after off),
    mlock_fixup faulted each piece as it locked it and the loop stopped at the error, so
    the third VMA is never locked."""
    sim, p = mapped(era, pages=1)
    sim.mmap(p, P, addr=c(1), prot="none")
    sim.mmap(p, P, addr=c(2))
    with pytest.raises(rmapsim.BadAddress, match="ENOMEM"):
        sim.mlock(p, X, 3 * P)
    third = "locked" if era == "6.18" else "-"
    assert lay(sim, p) == [(0, 1, "rw", "locked"), (1, 2, "none", "locked"), (2, 3, "rw", third)]
    assert states(sim, p) == "p.."


# --------------------------------------------------------------------------- mlockall, def_flags, fork


@pytest.mark.parametrize("era", ("2.6.35", "6.18"))
def test_mlockall_future_locks_and_faults_later_mmap_brk_and_mremap_growth(era):
    sim, p = mapped(era, pages=2)
    sim.set_brk_base(p, c(20))
    sim.mlockall(p, current=True, future=True)
    assert lay(sim, p) == [(0, 2, "rw", "locked")] and states(sim, p) == "pp"
    sim.mmap(p, 2 * P, addr=c(4))
    sim.mmap(p, P, addr=c(8), prot="none")  # locked too; nothing to fault
    sim.brk(p, c(22))
    assert [v[3] for v in lay(sim, p)] == ["locked"] * 4
    assert states(sim, p) == "pp" + "pp" + "." + "pp"
    sim.munmap(p, c(8), P)
    sim.mremap(p, c(4), 2 * P, 3 * P, may_move=False)  # the grown page is faulted in
    assert states(sim, p) == "pp" + "ppp" + "pp"
    sim.check()


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if ERA_RULES[e]["merge"] == "singular"])
def test_a_populate_after_the_merge_attempt_leaves_the_vmas_apart(era):
    """Under the singular-chain rule an unfaulted VMA cannot take a faulted neighbour (the
    munlock above leaves [0,1) and [1,3) apart). mlockall then locks both (the second's
    merge with the first refused the same way) and only afterwards faults the first in:
    its anon_vma_prepare reuses the neighbour's anon_vma, so the two now look mergeable,
    but no merge is attempted again (mlock.c: populate after apply_mlockall_flags), and
    check() holds (the native fuzzer found the false alarm)."""
    sim, p = mapped(era, pages=3)
    sim.mlock(p, c(1), 2 * P)
    sim.munlock(p, c(1), 2 * P)
    assert lay(sim, p) == [(0, 1, "rw", "-"), (1, 3, "rw", "-")]
    sim.mlockall(p, current=True)
    assert lay(sim, p) == [(0, 1, "rw", "locked"), (1, 3, "rw", "locked")]
    assert len({v["anon_vma"] for v in sim.vmas(p)}) == 1 and states(sim, p) == "ppp"
    sim.check()


@pytest.mark.parametrize("era", MODERN)
def test_mlockall_future_onfault_locks_without_faulting(era):
    sim, p = mapped(era, pages=2)
    sim.mlockall(p, current=False, future=True, onfault=True)
    assert lay(sim, p) == [(0, 2, "rw", "-")]  # MCL_FUTURE alone: the current VMAs unchanged
    sim.mmap(p, 2 * P, addr=c(4))
    assert lay(sim, p)[1] == (4, 6, "rw", "locked+lockonfault") and states(sim, p) == "...."
    sim.mlockall(p, current=True)  # def_flags lose the lock bits; every VMA locked, faulted
    sim.mmap(p, P, addr=c(8))
    assert lay(sim, p) == [(0, 2, "rw", "locked"), (4, 6, "rw", "locked"), (8, 9, "rw", "-")]
    assert states(sim, p) == "pppp."


def test_mlockall_needs_current_or_future():
    sim, p = mapped()
    before = snapshot(sim)
    for kw in ({"current": False}, {"current": False, "onfault": True}):
        with pytest.raises(rmapsim.InvalidArgument, match="needs current=True or future=True.*EINVAL"):
            sim.mlockall(p, **kw)
    assert snapshot(sim) == before


def test_munlockall_unlocks_every_vma_and_merges_and_clears_def_flags():
    sim, p = mapped(pages=4)
    sim.mlock(p, c(1), P)
    sim.mlockall(p, current=False, future=True)
    sim.mmap(p, P, addr=c(4))  # locked: stays apart from the unlocked page 3
    assert len(lay(sim, p)) == 4
    sim.munlockall(p)
    # pages 1 and 4 were faulted in by separate populates: two anon_vmas, so 0-4 and 4-5
    # stay apart; the rest merges back
    assert lay(sim, p) == [(0, 4, "rw", "-"), (4, 5, "rw", "-")]
    sim.mmap(p, P, addr=c(8))
    assert lay(sim, p)[-1] == (8, 9, "rw", "-")


@pytest.mark.parametrize("era", ("2.6.33", "6.18"))
def test_fork_clears_the_lock_bits_and_def_flags(era):
    sim, p = mapped(era, pages=2)
    sim.mlock(p, X, P)
    sim.mlockall(p, current=False, future=True)
    ch = sim.fork(p)
    # the child's copies lose VM_LOCKED and are not re-merged (dup_mmap copies VMA by VMA)
    assert lay(sim, ch) == [(0, 1, "rw", "-"), (1, 2, "rw", "-")]
    sim.mmap(ch, P, addr=c(4))
    assert lay(sim, ch)[-1] == (4, 5, "rw", "-") and states(sim, ch)[-1] == "."
    sim.mmap(p, P, addr=c(4))
    assert lay(sim, p)[-1] == (4, 5, "rw", "locked")  # the parent keeps its def_flags
    sim.check()


def test_mprotect_making_a_locked_range_writable_faults_it_in():
    for knob, want in (("true", "pp"), ("false", "..")):
        sim = rmapsim.Simulator(era="6.18", policy={"mprotect_populates_locked": knob})
        p = sim.spawn()
        sim.mmap(p, 2 * P, addr=X, prot="none")
        with pytest.raises(rmapsim.BadAddress):
            sim.mlock(p, X, 2 * P)
        sim.mprotect(p, X, 2 * P, "rw")
        assert states(sim, p) == want, knob


def test_dontunmap_clears_the_old_vmas_lock_bits():
    sim, p = mapped(pages=2)
    sim.mlock(p, X, 2 * P)
    sim.mremap(p, X, P, P, may_move=True, new_addr=c(8), dontunmap=True)
    # the whole old VMA is unlocked in place (not split); the moved page's VMA keeps it
    assert lay(sim, p) == [(0, 2, "rw", "-"), (8, 9, "rw", "locked")]
    assert states(sim, p) == ".pp"


# --------------------------------------------------------------------------- madvise, reclaim walks


@pytest.mark.parametrize("advice", ["dontneed", "pageout", "free"])
@pytest.mark.parametrize("holes", ["strict", "kernel"])
def test_lru_advice_is_einval_on_a_locked_vma(advice, holes):
    sim, p = mapped(pages=1, holes=holes)
    sim.touch(p, X, P, write=True)
    sim.mmap(p, P, addr=c(1), prot="r")
    sim.mlock(p, c(1), P)
    before = states(sim, p)
    with pytest.raises(rmapsim.InvalidArgument, match=f'advice "{advice}" is EINVAL on the mlocked VMA'):
        sim.madvise(p, X, 2 * P, advice)
    # strict: nothing changed; kernel: the VMA before the locked one was done
    done = {"dontneed": ".z", "pageout": "wz", "free": "pz"}[advice]
    assert states(sim, p) == (before if holes == "strict" else done)
    if advice == "free" and holes == "kernel":
        assert sim.page_info(page_at(sim, p, X))["lazyfree"]
    sim.check()


def test_kernel_mode_a_hole_before_the_locked_vma_is_still_einval():
    """madvise_walk_vmas only remembers the hole's ENOMEM (mm/madvise.c 1651-1658); the
    locked VMA's EINVAL returns at once (1669-1671). Found by validate-kernel --fuzz
    (seed 3) for the same walk with MADV_WIPEONFORK reaching a file VMA."""
    sim, p = mapped(pages=1, holes="kernel")
    sim.touch(p, X, P, write=True)
    sim.mmap(p, P, addr=c(2))
    sim.mlock(p, c(2), P)
    with pytest.raises(rmapsim.InvalidArgument, match="mlocked VMA"):
        sim.madvise(p, X, 3 * P, "dontneed")
    assert states(sim, p) == ".p"  # page 0 zapped, the locked page 2 kept
    with pytest.raises(rmapsim.InvalidArgument, match="mlocked VMA"):
        sim.madvise(p, c(1), 2 * P, "dontneed")  # a hole, then the locked VMA


def _shared_read_only_page(era, locker):
    """A page written by a parent, made read-only (so mlock's populate is a read fault and
    breaks no COW), shared with a child; then `locker` ('parent', 'child' or None) mlocks
    it. Returns (sim, parent, child, page)."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, P, addr=X)
    sim.touch(p, X, P, write=True)
    sim.mprotect(p, X, P, "r")
    ch = sim.fork(p)
    if locker:
        sim.mlock(p if locker == "parent" else ch, X, P)
    return sim, p, ch, page_at(sim, p, X)


@pytest.mark.parametrize("era", rmapsim.eras())
def test_try_to_unmap_stops_at_a_locked_vma(era):
    """The walk visits the parent's VMA first (the older one in the anon_vma's list or
    interval tree), then the child's."""
    sim, p, ch, page = _shared_read_only_page(era, "child")
    row = scan_rows(sim.try_to_unmap([page]))[0]
    # the parent's mapping unmapped, the child's found locked: the walk ends, page mapped
    assert (row["vmas_visited"], row["mappings_found"]) == (2, 2)
    assert states(sim, p) == "w" and states(sim, ch) == "p"
    sim, p, ch, page = _shared_read_only_page(era, "parent")
    row = scan_rows(sim.try_to_unmap([page]))[0]
    assert (row["vmas_visited"], row["mappings_found"]) == (1, 1)  # stopped at the first
    assert states(sim, p) == "s" and states(sim, ch) == "s"
    sim.munlock(p, X, P)  # evictable again: the walk goes through
    row = scan_rows(sim.try_to_unmap([page]))[0]
    assert (row["vmas_visited"], row["mappings_found"]) == (2, 2)
    assert states(sim, p) == "w" and states(sim, ch) == "w"
    sim.check()


@pytest.mark.parametrize("era", ("2.6.33", "3.19", "6.18"))
def test_page_referenced_stops_at_a_locked_vma_and_a_full_walk_does_not(era):
    for locker, want in ((None, (2, 2)), ("child", (2, 2)), ("parent", (1, 1))):
        sim, p, ch, page = _shared_read_only_page(era, locker)
        row = scan_rows(sim.page_referenced([page]))[0]
        assert (row["vmas_visited"], row["mappings_found"]) == want, locker
        full = scan_rows(sim.rmap_walk([page]))[0]
        assert (full["vmas_visited"], full["mappings_found"]) == (2, 2)


# --------------------------------------------------------------------------- eras, arguments, traces


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if e not in MODERN])
def test_onfault_is_einval_before_4_4_naming_the_era(era):
    sim, p = mapped(era)
    before = snapshot(sim)
    with pytest.raises(rmapsim.InvalidArgument, match=rf"MLOCK_ONFAULT.*EINVAL in era {era}.*4\.4"):
        sim.mlock(p, X, P, onfault=True)
    with pytest.raises(rmapsim.InvalidArgument, match=rf"MCL_ONFAULT.*EINVAL in era {era}"):
        sim.mlockall(p, current=True, onfault=True)
    assert snapshot(sim) == before
    sim.mlock(p, X, P)  # plain mlock exists in every era


def test_the_onfault_knob_alone_makes_it_einval():
    sim, p = mapped(era="6.18+has_mlock_onfault=false")
    with pytest.raises(rmapsim.InvalidArgument, match="6.18\\+has_mlock_onfault=false"):
        sim.mlock(p, X, P, onfault=True)


@pytest.mark.parametrize(
    "call,kwargs",
    [
        ("mlock", {"onfault": 1}),
        ("mlockall", {"future": "yes"}),
        ("mlock", {"length": -1}),
        ("munlock", {"addr": None}),
    ],
)
def test_bad_arguments_are_invalid_argument_naming_them(call, kwargs):
    sim, p = mapped()
    args = {"mlock": dict(addr=X, length=P), "munlock": dict(addr=X, length=P), "mlockall": {}}[call]
    name = next(iter(kwargs))
    with pytest.raises(rmapsim.InvalidArgument, match=name):
        getattr(sim, call)(p, **{**args, **kwargs})
    assert lay(sim, p) == [(0, 4, "rw", "-")]


def test_a_range_past_the_end_of_the_address_space_is_einval():
    sim, p = mapped()
    with pytest.raises(rmapsim.InvalidArgument, match="wraps"):
        sim.mlock(p, (1 << 64) - P, 2 * P)


def test_trace_words_round_trip_and_run():
    sim = run_trace(
        "spawn\nmmap p1 0x40000000 0x4000 rw\nmmap p1 0x40008000 0x2000 rw locked\n"
        "mlock p1 0x40001000 0x1000\nmlock p1 0x40002000 0x1000 onfault\nmunlock p1 0x40001000 0x1000\n"
        "mlockall p1 future onfault\nmunlockall p1\nmlockall p1 current\n"
    )
    assert all("locked" in v["flags"] for v in sim.vmas(1))


# --------------------------------------------------------------------------- the live kernel


def test_6_18_matches_the_live_kernel_recording():
    rec = recorded_lines(RECORDING)
    sim_lines = simulate("6.18")
    assert section(sim_lines, "split", "mergeable") == section(rec, "split", "mergeable")


def test_strict_mode_differs_from_the_recording_only_where_the_kernel_fails_part_way():
    rec = section(recorded_lines(RECORDING), "split", "mergeable")
    strict = section(simulate("6.18", holes="strict"), "split", "mergeable")
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(rec, strict)) if a != b]
    assert len(rec) == len(strict)
    assert [(a, b) for _, a, b in diff] == [
        ("vma 0x10000000 0x10001000 rw- anon=0 lo - -", "vma 0x10000000 0x10001000 rw- anon=0 - - -"),  # hole
        ("vma 0x10000000 0x10001000 rw- anon=0 - - -", "vma 0x10000000 0x10001000 rw- anon=1 - - -"),  # dontneed
    ]


@pytest.mark.skipif(
    not kernel_at_least(6, 4) or shutil.which("cc") is None,
    reason="needs Linux 6.4+ (PR_SET_MEMORY_MERGE) and a C compiler (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert run_c_program(PROGRAM, tmp_path) == recorded_lines(RECORDING)
