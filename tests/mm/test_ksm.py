"""KSM's ``VM_MERGEABLE`` (flag "mergeable" of ``vmas()``): ``madvise(MADV_MERGEABLE /
MADV_UNMERGEABLE)`` and ``prctl(PR_SET_MEMORY_MERGE)`` (``Simulator.set_memory_merge``).

Only the flag is modelled, and with it its effect on splits and merges: there is no KSM
daemon, so no page is ever merged.

Kernel rules (6.18.2 tree line numbers):

* ``ksm_madvise`` (mm/ksm.c 2934-2971), called by ``madvise_vma_behavior`` (mm/madvise.c
  1404-1408) for each VMA piece, which is then split and merged like any flag advice:
  ``MADV_MERGEABLE`` sets the flag on a compatible VMA (``ksm_compatible``, mm/ksm.c
  680-704: not shared, PFN/IO/mixed, hugetlb, DAX or droppable; every VMA rmapsim makes
  qualifies) and ignores an incompatible one (2944-2945: 0, not EINVAL);
  ``MADV_UNMERGEABLE`` of a VMA without the flag is ignored (2957-2958).
* ``prctl(PR_SET_MEMORY_MERGE, 1)``: ``ksm_enable_merge_any`` (2875-2892) sets
  ``MMF_VM_MERGE_ANY`` and ``ksm_add_vmas`` (2844-2851) sets the flag on every VMA in place
  (no merge attempt); ``0``: ``ksm_disable_merge_any`` (2906-2921) clears it from every VMA
  (``ksm_del_vmas``, 2853-2865: ``MADV_MERGEABLE``'s too), again in place. 6.4+ (d7597f59d1d3);
  EINVAL before (knob ``memory_merge``).
* A new mapping of such an mm: 6.16+ ``ksm_vma_flags`` (2834-2842) sets the flag before the
  merge attempt (``update_ksm_flags``, mm/vma.c 2326-2329, in ``__mmap_region``; ``do_brk_flags``, 2771-2772), so it merges
  with a ``VM_MERGEABLE`` neighbour; 6.4-6.15's ``ksm_add_vma`` set it after the merge
  attempt (knob ``memory_merge=after_merge``), so it did not.
* fork keeps ``MMF_VM_MERGE_ANY`` (``mm_init``'s ``mmf_init_legacy_flags``, kernel/fork.c
  1060-1065), and the copies keep ``VM_MERGEABLE`` (``dup_mmap`` copies ``vm_flags``); exec
  keeps it too (``ksm_execve``, mm/vma_exec.c 127-129).

Ground truth: tests/data/mlock_ksm.c's KSM steps on this machine's Linux 6.18, recorded in
tests/data/mlock_ksm.out (compared here; the lock steps in test_mlock.py).
"""

from __future__ import annotations

import pytest
from mlock_ksm_program import run_trace, section, simulate

import rmapsim

from helpers import DATA, FROM_6_18, X, counts, recorded_lines, snapshot

P = 4096
RECORDING = str(DATA / "mlock_ksm.out")
WITH_PRCTL = FROM_6_18  # the presets from 6.4


def c(i):
    return X + i * P


def lay(sim, pid):
    """[(start page, end page, prot, 'mg' or '-')] of pid's VMAs around X."""
    return [
        ((v["start"] - X) // P, (v["end"] - X) // P, v["prot"], "mg" if "mergeable" in v["flags"] else "-")
        for v in sim.vmas(pid)
    ]


@pytest.mark.parametrize("era", rmapsim.eras())
def test_mergeable_advice_splits_and_merges_like_any_flag_advice(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 4 * P, addr=X)
    sim.madvise(p, c(1), 2 * P, "mergeable")
    assert lay(sim, p) == [(0, 1, "rw", "-"), (1, 3, "rw", "mg"), (3, 4, "rw", "-")]
    sim.madvise(p, c(1), 2 * P, "mergeable")  # already mergeable: nothing changes
    assert len(lay(sim, p)) == 3
    sim.madvise(p, X, 4 * P, "unmergeable")  # ignored where the flag is clear; merged
    assert lay(sim, p) == [(0, 4, "rw", "-")]
    sim.check()


@pytest.mark.parametrize("era", ("2.6.33", "6.18"))
def test_a_private_file_mapping_is_ksm_compatible(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=X, prot="r", file=3, offset=0)
    sim.madvise(p, X, P, "mergeable")
    assert lay(sim, p) == [(0, 1, "r", "mg"), (1, 2, "r", "-")]


def test_no_page_is_ever_merged():
    """Two processes write pages with equal content in mergeable VMAs: with no KSM daemon
    every page stays its own."""
    sim = rmapsim.Simulator(era="6.18")
    a, b = sim.spawn(), sim.spawn()
    for pid in (a, b):
        sim.mmap(pid, 4 * P, addr=X)
        sim.madvise(pid, X, 4 * P, "mergeable")
        sim.touch(pid, X, 4 * P, write=True)
    assert counts(sim)["page"] == 8
    sim.madvise(a, X, 4 * P, "unmergeable")  # nothing to break out again
    assert counts(sim)["page"] == 8


@pytest.mark.parametrize("era", WITH_PRCTL)
def test_prctl_marks_every_vma_in_place_and_a_later_mmap_merges(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 4 * P, addr=X)
    sim.madvise(p, X, 2 * P, "mergeable")
    assert sim.memory_merge(p) is False
    sim.set_memory_merge(p, True)
    assert sim.memory_merge(p) is True
    # ksm_add_vmas sets the flag in place: the two now equal VMAs are not merged
    assert lay(sim, p) == [(0, 2, "rw", "mg"), (2, 4, "rw", "mg")]
    sim.mmap(p, 2 * P, addr=c(4))  # 6.16+: flagged before the merge attempt: merges
    assert lay(sim, p) == [(0, 2, "rw", "mg"), (2, 6, "rw", "mg")]
    sim.set_memory_merge(p, True)  # already on: nothing
    sim.set_memory_merge(p, False)  # every flag cleared, MADV_MERGEABLE's too; no merge
    assert lay(sim, p) == [(0, 2, "rw", "-"), (2, 6, "rw", "-")]
    sim.mmap(p, P, addr=c(8))
    assert lay(sim, p)[-1] == (8, 9, "rw", "-")
    sim.check()


def test_before_6_16_a_new_vma_is_flagged_after_its_merge_attempt():
    sim = rmapsim.Simulator(era="6.18", policy={"memory_merge": "after_merge"})
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=X)
    sim.set_memory_merge(p, True)
    sim.mmap(p, 2 * P, addr=c(2))  # merge attempted without the flag: refused, then set
    assert lay(sim, p) == [(0, 2, "rw", "mg"), (2, 4, "rw", "mg")]
    sim.mmap(p, P, addr=c(8))
    sim.mmap(p, P, addr=c(9))  # beside a flagged VMA: apart, then flagged itself
    assert lay(sim, p)[-2:] == [(8, 9, "rw", "mg"), (9, 10, "rw", "mg")]
    # unchanged prot / flags: mprotect_fixup and madvise_update_vma return before any merge
    sim.mprotect(p, c(2), 2 * P, "rw")
    sim.madvise(p, c(2), 2 * P, "normal")
    assert len(lay(sim, p)) == 4
    sim.check()


def test_before_6_16_brk_growth_beside_the_flagged_heap_stays_apart():
    """do_brk_flags (6.4-6.15) tries to expand the heap VMA with the new range's flags,
    which lack VM_MERGEABLE until ksm_add_vma: a second VMA, flagged after (check() holds:
    the merge was decided before the flag)."""
    sim = rmapsim.Simulator(era="6.18+memory_merge=after_merge")
    p = sim.spawn()
    sim.set_brk_base(p, X)
    sim.set_memory_merge(p, True)
    sim.brk(p, c(2))
    sim.brk(p, c(3))
    assert lay(sim, p) == [(0, 2, "rw", "mg"), (2, 3, "rw", "mg")]
    sim.check()


def test_the_brk_heap_gets_the_flag_too():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.set_brk_base(p, X)
    sim.set_memory_merge(p, True)
    sim.brk(p, c(2))
    assert lay(sim, p) == [(0, 2, "rw", "mg")]


@pytest.mark.parametrize("era", WITH_PRCTL)
def test_fork_and_exec_keep_merge_any(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=X)
    sim.set_memory_merge(p, True)
    ch = sim.fork(p)
    assert sim.memory_merge(ch) is True
    assert lay(sim, ch) == [(0, 2, "rw", "mg")]  # dup_mmap copies vm_flags
    sim.mmap(ch, P, addr=c(8))
    assert lay(sim, ch)[-1] == (8, 9, "rw", "mg")
    sim.exec(ch)
    assert sim.memory_merge(ch) is True
    sim.mmap(ch, P, addr=X)
    assert lay(sim, ch) == [(0, 1, "rw", "mg")]
    sim.set_memory_merge(ch, False)
    assert sim.memory_merge(p) is True  # the parent's own setting


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if e not in WITH_PRCTL])
def test_prctl_is_einval_before_6_4_naming_the_era(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, P, addr=X)
    before = snapshot(sim)
    with pytest.raises(rmapsim.InvalidArgument, match=rf"PR_SET_MEMORY_MERGE.*EINVAL in era {era}.*6\.4"):
        sim.set_memory_merge(p, True)
    assert snapshot(sim) == before
    assert sim.memory_merge(p) is False
    sim.madvise(p, X, P, "mergeable")  # MADV_MERGEABLE exists in every era (2.6.32)


def test_the_knob_alone_makes_the_prctl_einval():
    sim = rmapsim.Simulator(era="6.18+memory_merge=none")
    p = sim.spawn()
    with pytest.raises(rmapsim.InvalidArgument, match=r"6\.18\+memory_merge=none"):
        sim.set_memory_merge(p, True)


@pytest.mark.parametrize("bad", [1, 0, "on", None])
def test_enable_must_be_a_bool(bad):
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    with pytest.raises(rmapsim.InvalidArgument, match="enable"):
        sim.set_memory_merge(p, bad)
    assert sim.memory_merge(p) is False


def test_a_dead_pid_is_no_such_process():
    sim = rmapsim.Simulator(era="6.18")
    with pytest.raises(rmapsim.NoSuchProcess):
        sim.set_memory_merge(7, True)
    with pytest.raises(rmapsim.NoSuchProcess):
        sim.memory_merge(7)


def test_trace_words_round_trip_and_run():
    sim = run_trace(
        "spawn\nmmap p1 0x40000000 0x4000 rw\nmadvise p1 0x40000000 0x1000 mergeable\n"
        "memory_merge p1 on\nmmap p1 0x40004000 0x1000 rw\nmadvise p1 0x40000000 0x1000 unmergeable\n"
        "memory_merge p1 off\n"
    )
    assert [v[3] for v in lay(sim, 1)] == ["-", "-"]


def test_6_18_matches_the_live_kernel_recording():
    rec = section(recorded_lines(RECORDING), "mergeable")
    assert rec[1:3] == ["ret mergeable 0", "ret mprotect 0"]
    assert section(simulate("6.18"), "mergeable") == rec
