"""An allocation failure inside a merge (knob ``merge_nomem_fails``).

Kernel rules:

* 6.18.2, mm/vma.c: ``vma_merge_existing_range`` (807-996) clones the anon_vma chain into
  the VMA that grows when it has none (``dup_anon_vma``) before changing anything; on
  ENOMEM it unwinds (``abort``, 980-995) and sets ``VMA_MERGE_ERROR_NOMEM``. Its caller
  ``vma_modify`` (1600-1640: mprotect, madvise, mlock all come through
  ``vma_modify_flags``) then returns ``-ENOMEM`` (1609-1612) instead of splitting: the
  call fails and the VMAs are as before. A new range (``__mmap_region``, 2661-2673) ignores
  the state and allocates a new VMA.
* Before (the 2.6.34-6.11 ``vma_merge``): ``vma_adjust``'s importer clone failing made
  ``vma_merge`` return NULL (``if (err) return NULL``), which ``mprotect_fixup`` /
  ``madvise_behavior`` took as "no merge": they split as needed and changed the flags.

The chain clone is the only allocation a merge makes here, so ``inject_enomem(nth=1)``
hits it; ``allocation_sites`` names it.
"""

from __future__ import annotations

import pytest

import rmapsim

P = 4096
A = 0x4000_0000


def layout(sim, p):
    return [((v["start"] - A) // P, (v["end"] - A) // P, v["prot"], tuple(v["flags"])) for v in sim.vmas(p)]


def three_vmas(era):
    """[0, 2) and [4, 6) rw around [2, 4) r, only [4, 6) faulted: mprotect of [2, 4) to rw
    merges all three (case 1), prev growing over middle and next, which needs next's
    chain cloned into prev (every era allows it: prev and middle have no anon_vma, next's
    chain is singular)."""
    sim = rmapsim.Simulator(era)
    p = sim.spawn()
    sim.mmap(p, 6 * P, addr=A)
    sim.mprotect(p, A + 2 * P, 2 * P, "r")
    sim.touch(p, A + 4 * P, 2 * P, write=True)
    assert [v["anon_vma"] is None for v in sim.vmas(p)] == [True, True, False]
    return sim, p


def test_without_injection_the_three_merge():
    for era in ("3.19", "6.0", "6.18"):
        sim, p = three_vmas(era)
        sim.mprotect(p, A + 2 * P, 2 * P, "rw")
        assert layout(sim, p) == [(0, 6, "rw", ("account",))]
        sim.check()


@pytest.mark.parametrize("era", ["6.18", "6.0+merge_nomem_fails=true"])
def test_6_12_plus_the_failed_merge_fails_the_call_and_changes_nothing(era):
    sim, p = three_vmas(era)
    before = (layout(sim, p), sim.counts())
    sim.inject_enomem(nth=1)
    with pytest.raises(rmapsim.OutOfMemory, match="anon_vma_chain@anon_vma_clone"):
        sim.mprotect(p, A + 2 * P, 2 * P, "rw")
    assert (layout(sim, p), sim.counts()) == before
    sim.check()


@pytest.mark.parametrize("era", ["6.0", "6.18+merge_nomem_fails=false"])
def test_before_the_failed_merge_is_no_merge_and_the_prot_changes(era):
    sim, p = three_vmas(era)
    sim.inject_enomem(nth=1)
    sim.mprotect(p, A + 2 * P, 2 * P, "rw")
    assert [(s, e, prot) for s, e, prot, _ in layout(sim, p)] == [(0, 2, "rw"), (2, 4, "rw"), (4, 6, "rw")]
    sim.check()


@pytest.mark.parametrize("holes,exc", [("strict", rmapsim.OutOfMemory), ("kernel", rmapsim.TryAgain)])
def test_madvise_goes_through_the_same_rule(holes, exc):
    """madvise_update_vma -> vma_modify_flags: the ENOMEM fails the advice (madvise reports
    it as EAGAIN, mm/madvise.c 1433-1434, which holes="kernel" gives); here the merge the
    2025 rule allows, an unfaulted prev growing over a faulted middle."""
    sim = rmapsim.Simulator("6.18", holes=holes)
    p = sim.spawn()
    sim.mmap(p, 4 * P, addr=A)
    sim.madvise(p, A + 2 * P, 2 * P, "dontfork")
    sim.touch(p, A + 2 * P, 2 * P, write=True)
    before = layout(sim, p)
    sim.inject_enomem(nth=1)
    with pytest.raises(exc):
        sim.madvise(p, A + 2 * P, 2 * P, "dofork")
    assert layout(sim, p) == before
    sim.check()


def test_a_new_range_still_falls_back_to_a_new_vma():
    """mmap between an unfaulted prev and a faulted next (a merge of all three needs next's
    chain cloned into prev): the clone fails, __mmap_region allocates a new VMA, the call
    succeeds with three VMAs."""
    sim = rmapsim.Simulator("6.18")
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=A)
    sim.mmap(p, 2 * P, addr=A + 4 * P)
    sim.touch(p, A + 4 * P, 2 * P, write=True)
    sim.inject_enomem(nth=1)
    sim.mmap(p, 2 * P, addr=A + 2 * P)
    assert [(s, e) for s, e, _, _ in layout(sim, p)] == [(0, 2), (2, 4), (4, 6)]
    sim.check()
