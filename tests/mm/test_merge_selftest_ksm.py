"""merge.c's ``TEST_F(merge, ksm_merge)`` (tools/testing/selftests/mm/merge.c),
the one case of the port that needs KSM's ``prctl(PR_SET_MEMORY_MERGE)``
(``Simulator.set_memory_merge``, mm/ksm.rs). It looks only at VMAs --
whether a VM_MERGEABLE VMA and a new mapping next to it merge -- so no KSM daemon is
involved and the case is modelled in full. See test_merge_selftest.py for the rest of the
port, the recording (tests/data/merge_selftest.out, from tests/data/merge_selftest.c on this
machine's 6.18.44) and the case's line format.

Kernel rules (6.18.2's tree):
  ksm_enable_merge_any (mm/ksm.c 2875-2892): sets MMF_VM_MERGE_ANY and, through
  ksm_add_vmas (2844-2851), VM_MERGEABLE on every compatible VMA already mapped
  (vma_ksm_compatible, 701-704: the PROT_NONE private carveout is compatible too, and the
  live kernel shows its ``mg`` flag).
  A new mapping gets VM_MERGEABLE before it is merged: __mmap_prepare -> update_ksm_flags
  (mm/vma.c 2326-2329) -> ksm_vma_flags (mm/ksm.c 2834-2842), for anonymous mappings always
  early (can_set_ksm_flags_early, mm/vma.c 2614-2637), so its flags equal its mergeable
  neighbour's and vma_merge_new_range (1042-1102) merges them (is_mergeable_vma, 84-107,
  compares vm_flags).
  Before 6.4 the prctl option does not exist: EINVAL, which merge.c treats as "skip".
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import EVERY_ERA, FROM_6_18
from merge_selftest_cases import P, Run, recorded, run_case

REC = recorded()


def test_ksm_merge_6_18_matches_the_live_kernel():
    """TEST_F(merge, ksm_merge) in 6.18: two adjacent 1-page mappings merge; after the
    second is unmapped and PR_SET_MEMORY_MERGE turned on, a new page next to the now
    VM_MERGEABLE first one still merges, and so do two fresh ones after both are unmapped.
    The line (queries, every VMA of the window with its mg flag) equals the kernel's."""
    r = run_case("6.18", "ksm_merge")
    assert REC["ksm_merge"].endswith("| pass")
    assert r.line() == REC["ksm_merge"]
    r.sim.check()


@pytest.mark.parametrize("era", [e for e in EVERY_ERA if e not in FROM_6_18])
def test_ksm_merge_before_6_4_is_merge_c_s_skip(era):
    """TEST_F(merge, ksm_merge) before Linux 6.4: the first part holds (two adjacent pages
    merge, K1/K2 of test_merge_selftest.py with no anon_vma), then prctl(PR_SET_MEMORY_MERGE)
    is EINVAL -- merge.c's SKIP -- which rmapsim gives as InvalidArgument naming the era,
    changing nothing."""
    r = Run(era, "ksm_merge")
    ptr, ptr2 = r.map_at(1, 1), r.map_at(2, 1)
    r.expect(ptr, ptr, 2 * P)
    r.sim.munmap(r.p, ptr2, P)
    before = r.sim.vmas(r.p)
    with pytest.raises(rmapsim.InvalidArgument, match=f"era {era}"):
        r.sim.set_memory_merge(r.p, True)
    assert (r.q, r.failed) == (["1-3"], False)
    assert r.sim.vmas(r.p) == before
    assert all("mergeable" not in v["flags"] for v in before)
