"""The kernel's VMA merge selftest, tools/testing/selftests/mm/merge.c, ported: same
mappings, same operations, same assertions. The version ported has 23 cases: the `merge`
fixture's 15 and the `merge_with_fork` fixture's 4 in its forked and unforked variants,
added with the January 2026 mremap-merge fixes (61f67c230a5e, 3b617fd3d317) that 6.18.y
carries as backports; 6.18.2's tree has the 15 `merge` cases only.

Ground truth: tests/data/merge_selftest.c runs every case on this machine's Linux 6.18
(6.18.44, as root) and prints one line per case (the VMAs merge.c's ``find_vma_procmap``
calls found, the test window's layout with protections and VM_ACCOUNT / VM_NORESERVE /
VM_MERGEABLE, pass or FAIL of merge.c's assertions); its output is recorded in
tests/data/merge_selftest.out (23/23 pass). The case bodies are in merge_selftest_cases.py,
with the C program's helpers re-done on a Simulator.

A second recording, tests/data/merge_selftest_counts.out, holds the anon_vma,
anon_vma_chain and vm_area_struct allocations and frees of each non-forking case's body on
the live kernel (merge_selftest.c's count mode under the perf kmem counters); rmapsim's
6.18 must give the same counts (the tests at the end).

Each test below runs one TEST_F in every era: in 6.18 the simulator's line must equal the
live kernel's line exactly (so merge.c's assertions hold, and so does every other VMA of the
window), and in the older eras the ranges merge.c queries must be the ones the era's merge
rule gives, derived by hand (the docstrings say how) -- where that rule differs, merge.c's
assertion fails there, as it would on that kernel. check() must pass after every case,
except where 2.6.34-rc1's importer bug (docs/bugs.md, "`vma_adjust` importer clones its own empty chain") breaks it.

Coverage (merge.c case -> where):
  mprotect_unfaulted_left/right/both, mprotect_faulted_left_unfaulted_right,
  mprotect_unfaulted_left_faulted_right, forked_target_vma, forked_source_vma, the six
  mremap_* cases and the four merge_with_fork cases x {forked, unforked}: here (21 of 23).
  ksm_merge: tests/mm/test_merge_selftest_ksm.py (needs PR_SET_MEMORY_MERGE, helper B's
  ``Simulator.set_memory_merge``; it models VM_MERGEABLE's effect on merging, which is all
  the case checks -- no KSM daemon is involved).
Not ported (rmapsim cannot model them; also in docs/validation.md):
  handle_uprobe_upon_merged_vma: a uprobe on a file makes the kernel install an anonymous
  copy-on-write page (the breakpoint) in a file VMA when the file is mapped executable
  (uprobe_mmap -> install_breakpoint), and a merge done by mremap's copy_vma must not
  install another one, which the page-table move would then orphan (vmg.skip_vma_uprobe,
  copy_vma, mm/vma.c 1807-1900). rmapsim has no uprobes and no executable-file
  breakpoint pages; the case only checks that the two mremaps do not crash the kernel. Its
  live line is recorded (and repeated by the live test) all the same, and the file-VMA
  layout its mremaps leave is compared with the simulator's (pgoff arithmetic only).
  Nothing of merge.c needs the KSM daemon itself (ksm_merge only looks at VMAs).

Kernel rules (line ranges of 6.18.2's tree; the live 6.18.44 also has the 6.18.y backports of
61f67c230a5e "mm/vma: fix anon_vma UAF on mremap() faulted, unfaulted merge" and
3b617fd3d317 "mm/vma: enforce VMA fork limit on unfaulted,faulted mremap merge verification",
which the merge_with_fork cases exercise and which are not in 6.18.2):
  K1 is_mergeable_anon_vma (mm/vma.c 109-131): case 1, target without anon_vma and source
     with one, merges unless the source is a fork child (vma_had_uncowed_parents, 75-82:
     anon_vma set and a chain that is not singular; 6.18.y renames it vma_is_fork_child and
     applies it to vmg->copied_from, the VMA mremap copies, too); case 2, target with and
     source without, unless the target is a fork child; case 3, both: the same anon_vma.
  K2 older eras (mm/mmap.c is_mergeable_anon_vma / vma_merge): "simple" (2.6.33-2.6.35)
     merges when either anon_vma is NULL or both are equal; "singular" (3.0-6.0, 965f55dea0e3
     "mmap: avoid merging cloned VMAs") allows the NULL case only when the neighbour being
     merged with has a singular chain -- an unfaulted neighbour has an empty chain, so a
     faulted range never merges into an unfaulted neighbour, and vice versa only when the
     faulted neighbour's chain is singular.
  K3 anon_vma_fork (mm/rmap.c 333-393): the child's VMA gets the parent's chain plus its own
     anon_vma, two entries: not singular.
  K4 copy_vma (mm/vma.c 1807-1900), called by mremap's copy_vma_and_data (mm/mremap.c
     1181-1237): an unfaulted anonymous source takes pgoff = new address >> PAGE_SHIFT, a
     faulted one keeps its pgoff; the new range is merged as a new range (vma_merge_new_range,
     1042-1102) with the source's anon_vma.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

import rmapsim

from helpers import ERA_RULES, EVERY_ERA, FROM_6_18, RC1_INVARIANTS, expect_broken, kernel_at_least
from merge_selftest_cases import (
    MERGE,
    WITH_FORK,
    P,
    Run,
    at,
    counted_cases,
    live_counts,
    live_lines,
    recorded,
    recorded_counts,
    run_case,
    simulated_counts,
)

REC = recorded()
# 2.6.34-rc1's importer bug: prev (or the VMA growing over the faulted range) takes the
# anon_vma but clones its own empty chain (merge_helpers R3), leaving page->mapping dangling
RC1_BREAKS = {"mprotect_unfaulted_left", "mprotect_unfaulted_both", "mprotect_unfaulted_left_faulted_right"}


def queried(line):
    """The ranges merge.c's queries found, from a recorded line."""
    return re.findall(r" q (\S+)", line.split(" | ")[0])


def assert_case(era, name, want=None, variant=""):
    """Run ``name`` in ``era``. 6.18 and later: the line equals the live kernel's. Older: ``want``
    maps the era's merge rule (K2) to (ranges queried, merge.c's verdict); None: the same
    ranges and verdict as the kernel's 6.18 line."""
    r = run_case(era, name, variant)
    key = r.name
    # 7.0 changed no merge rule (issue 19's survey: mm/vma.c merge code as 6.18.8's), so its
    # presets must give the live 6.18 line too
    if era in FROM_6_18:
        assert r.line() == REC[key]
        assert REC[key].endswith("| pass")
    else:
        expected = (queried(REC[key]), "pass") if want is None else want[ERA_RULES[era]["merge"]]
        assert (r.q, "FAIL" if r.failed else "pass") == (list(expected[0]), expected[1])
    if era == "2.6.34-rc1" and name in RC1_BREAKS:
        expect_broken(r.sim, *RC1_INVARIANTS, mark=False)
    else:
        r.sim.check()
    return r


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mprotect_unfaulted_left(era):
    """TEST_F(merge, mprotect_unfaulted_left): [1,6) read-only unfaulted | [6,11) written,
    then mprotect [6,11) read-only. 6.18: vma_merge_existing_range (mm/vma.c 807-996), merge
    left, K1 case 1 (faulted middle into unfaulted prev, dup_anon_vma 611-642): one VMA.
    simple: merges (prev's anon_vma is NULL); singular: prev's chain is empty, no merge."""
    assert_case(era, "mprotect_unfaulted_left", {"simple": (["1-11"], "pass"), "singular": (["1-6"], "FAIL")})


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mprotect_unfaulted_right(era):
    """TEST_F(merge, mprotect_unfaulted_right): [1,6) written | [6,11) read-only unfaulted,
    mprotect [1,6) read-only: merge right (can_vma_merge_right, mm/vma.c 434-459), K1 case 1.
    simple: merges; singular: next's chain is empty, no merge."""
    assert_case(era, "mprotect_unfaulted_right", {"simple": (["1-11"], "pass"), "singular": (["1-6"], "FAIL")})


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mprotect_unfaulted_both(era):
    """TEST_F(merge, mprotect_unfaulted_both): RO unfaulted | RW written | RO unfaulted, the
    middle made read-only: merge both (vma_merge_existing_range), K1 case 1 on each side.
    simple: all three merge; singular: neither side (empty chains)."""
    assert_case(era, "mprotect_unfaulted_both", {"simple": (["2-11"], "pass"), "singular": (["2-5"], "FAIL")})


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mprotect_faulted_left_unfaulted_right(era):
    """TEST_F(merge, mprotect_faulted_left_unfaulted_right): [2,5) RO and [5,8) RW share
    one anon_vma (a split of one written VMA), [8,11) RO unfaulted; [5,8) made RO: K1 case
    3 on the left, case 2 on the right (next has none; the middle's chain is singular).
    simple: all three; singular: prev (equal anon_vma) only -- next's chain is empty."""
    assert_case(
        era, "mprotect_faulted_left_unfaulted_right", {"simple": (["2-11"], "pass"), "singular": (["2-8"], "FAIL")}
    )


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mprotect_unfaulted_left_faulted_right(era):
    """TEST_F(merge, mprotect_unfaulted_left_faulted_right): the mirror image of the one
    above. simple: all three; singular: the middle merges into next (equal anon_vma) and the
    unfaulted prev stays apart, so merge.c's query at ptr finds [2,5)."""
    assert_case(
        era, "mprotect_unfaulted_left_faulted_right", {"simple": (["2-11"], "pass"), "singular": (["2-5"], "FAIL")}
    )


@pytest.mark.parametrize("era", EVERY_ERA)
def test_forked_target_vma(era):
    """TEST_F(merge, forked_target_vma): in the child of a fork, a new mapping right after
    the inherited written VMA must not merge with it: vma_merge_new_range (mm/vma.c
    1042-1102), K1 case 2 with a fork-child target (K3). singular: the same refusal
    (the target's chain is not singular); simple: the NULL anon_vma of the new range merges
    (merge.c's assertion fails there, as it would have on those kernels)."""
    assert_case(era, "forked_target_vma", {"simple": (["1-11"], "FAIL"), "singular": (["1-6"], "pass")})


@pytest.mark.parametrize("era", EVERY_ERA)
def test_forked_source_vma(era):
    """TEST_F(merge, forked_source_vma): in the child, the inherited written VMA is made RWX
    next to an unfaulted RWX one: K1 case 1 with a fork-child source (K3) refuses. singular:
    next's empty chain refuses too; simple: it merges (the second query finds [1,11))."""
    assert_case(
        era, "forked_source_vma", {"simple": (["6-11", "1-11"], "FAIL"), "singular": (["6-11", "6-11"], "pass")}
    )


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mremap_unfaulted_to_faulted(era):
    """TEST_F(merge, mremap_unfaulted_to_faulted): an unfaulted VMA moved right after a
    written one merges (K4: its pgoff follows the new address; K1 case 2, the target's chain
    is singular). Every era: simple allows NULL, singular sees prev's singular chain."""
    assert_case(era, "mremap_unfaulted_to_faulted")


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mremap_unfaulted_behind_faulted(era):
    """TEST_F(merge, mremap_unfaulted_behind_faulted): the same, moved in front of the
    written VMA (merge with next, can_vma_merge_before, mm/vma.c 193-213). Every era."""
    assert_case(era, "mremap_unfaulted_behind_faulted")


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mremap_unfaulted_between_faulted(era):
    """TEST_F(merge, mremap_unfaulted_between_faulted): an unfaulted VMA moved between two
    written VMAs of different anon_vmas merges with the first only: the third, moved back
    faulted, kept its old pgoff (K4), which is not contiguous. Every era."""
    assert_case(era, "mremap_unfaulted_between_faulted")


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mremap_unfaulted_between_faulted_unfaulted(era):
    """TEST_F(merge, mremap_unfaulted_between_faulted_unfaulted): written | moved unfaulted |
    moved-back unfaulted: all three merge (K1 cases 2 and 3 with NULL == NULL; in the
    singular eras the next check passes on NULL == NULL and the prev/next check has no VMA
    to test). Every era."""
    assert_case(era, "mremap_unfaulted_between_faulted_unfaulted")


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mremap_unfaulted_between_correctly_placed_faulted(era):
    """TEST_F(merge, mremap_unfaulted_between_correctly_placed_faulted): the two halves of
    one written VMA (same anon_vma, linear pgoff) and an unfaulted VMA moved between them:
    all three merge (both neighbours' chains are singular, and they share the anon_vma)."""
    assert_case(era, "mremap_unfaulted_between_correctly_placed_faulted")


@pytest.mark.parametrize("era", EVERY_ERA)
def test_mremap_correct_placed_faulted(era):
    """TEST_F(merge, mremap_correct_placed_faulted): thirds of one written VMA moved away
    and back in several orders; a faulted VMA keeps its pgoff (K4), so every return to its
    own place merges with what is there (K1 case 3, one anon_vma). Every era."""
    assert_case(era, "mremap_correct_placed_faulted")


# merge_with_fork in 6.0 (singular rule, K2): a faulted range moved back with DONTUNMAP
# never merges into an unfaulted neighbour (its chain is empty); it merges with a faulted
# neighbour of the same anon_vma (prev_faulted_next's C), forked or not.
WITH_FORK_6_0 = {
    ("mremap_faulted_to_unfaulted_prev", "forked"): (["1-4"], "pass"),
    ("mremap_faulted_to_unfaulted_prev", "unforked"): (["1-4"], "FAIL"),
    ("mremap_faulted_to_unfaulted_next", "forked"): (["1-4"], "pass"),
    ("mremap_faulted_to_unfaulted_next", "unforked"): (["1-4"], "FAIL"),
    ("mremap_faulted_to_unfaulted_prev_unfaulted_next", "forked"): (["1-4", "4-7"], "pass"),
    ("mremap_faulted_to_unfaulted_prev_unfaulted_next", "unforked"): (["1-4"], "FAIL"),
    ("mremap_faulted_to_unfaulted_prev_faulted_next", "forked"): (["4-10"], "pass"),
    ("mremap_faulted_to_unfaulted_prev_faulted_next", "unforked"): (["1-4"], "FAIL"),
}


@pytest.mark.parametrize("variant", ["forked", "unforked"])
@pytest.mark.parametrize("name", list(WITH_FORK))
@pytest.mark.parametrize("era", EVERY_ERA)
def test_merge_with_fork(era, name, variant):
    """TEST_F(merge_with_fork, mremap_faulted_to_unfaulted_prev / _next /
    _prev_unfaulted_next / _prev_faulted_next), variants forked and unforked: a written VMA
    (forked first, or not) is moved away, unfaulted VMAs are mapped around its old place,
    and it is moved back with MREMAP_DONTUNMAP (mremap.c dontunmap_complete, 1245-1264,
    leaves the emptied source behind at page 20). 6.18.y: copy_vma's new-range merge (K4)
    with K1 case 1 merges into the unfaulted neighbours unless the copied VMA is a fork
    child (vma_is_fork_child(vmg->copied_from), the 3b617fd3d317 backport); with a faulted
    neighbour of the same anon_vma (prev_faulted_next) K1 case 3 merges with it either way.
    6.0: the singular rule (table above). Before 5.7 MREMAP_DONTUNMAP does not exist:
    InvalidArgument naming the era, as the kernel's EINVAL."""
    if rmapsim.Policy.preset(era)["mremap_dontunmap"] == "none":
        with pytest.raises(rmapsim.InvalidArgument, match=f"era {era}"):
            run_case(era, name, variant)
        return
    r = assert_case(era, name, {"singular": WITH_FORK_6_0[name, variant]}, variant)
    # the source DONTUNMAP leaves behind was exactly the moved range: still mapped, empty,
    # its chain unlinked and anon_vma cleared (unlink_anon_vmas, 5.8 / 2555283eb40d, 6.0)
    src = [v for v in r.sim.vmas(r.p) if v["start"] == at(20)]
    assert [(v["end"], v["anon_vma"], v["chain_len"]) for v in src] == [(at(23), None, 0)]
    assert all(r.sim.page_at(r.p, at(20) + i * 4096) is None for i in range(3))


def test_the_uprobe_case_s_layout_without_the_uprobe():
    """TEST_F(merge, handle_uprobe_upon_merged_vma) is not ported (module docstring): its
    subject, the breakpoint page a uprobe installs in a file VMA, is not modelled, and its
    only check is that the kernel survives. What rmapsim does model is the file-VMA layout
    its two mremaps leave, which this checks against the kernel's (recorded with the probe
    active): 10 pages of a 1-page file mapped PROT_EXEC at page 1 (pgoff 0-9); page 1 moved
    and grown to [6,8) (pgoff 0-1, replacing pgoff 5-6); its first page moved back to page 1,
    where pgoff 0 is contiguous with [2,6)'s 1-4 and merges (vma_merge_new_range, mm/vma.c
    1042-1102, from copy_vma 1807-1900, a file VMA keeping its pgoff); [7,8) (pgoff 1) and
    [8,11) (pgoff 7) stay apart."""
    r = Run("6.18", "handle_uprobe_upon_merged_vma")
    ptr1 = r.sim.mmap(r.p, 10 * P, addr=at(1), prot="x", file=1, offset=0)
    ptr2 = r.sim.mremap(r.p, ptr1, P, 2 * P, may_move=True, new_addr=ptr1 + 5 * P)
    r.sim.mremap(r.p, ptr2, P, P, may_move=True, new_addr=ptr1)
    assert r.layout() == REC[r.name].split(" | ")[1]
    assert [(v["start"], v["pgoff"]) for v in r.sim.vmas(r.p) if v["file"] == 1] == [(at(1), 0), (at(7), 1), (at(8), 7)]
    r.sim.check()


# ------------------------------------------------------------------ allocation counts
# A second kernel-side check: merge.c looks only at VMA ranges, but which VMA survives a
# merge and which chain is cloned show in the allocation and free counts of anon_vma,
# anon_vma_chain and vm_area_struct (issue 18's first error class). merge_selftest.c's count
# mode runs each non-forking case's body under the perf kmem counters; the counts are
# recorded in tests/data/merge_selftest_counts.out (two live runs, identical).

COUNTS = recorded_counts()


@pytest.mark.parametrize("name", counted_cases())
def test_6_18_allocation_counts_match_the_live_kernel(name):
    """Every counted case (15: the merge fixture's 11 non-forking cases and the four
    merge_with_fork cases unforked): rmapsim's 6.18 allocates and frees exactly what the
    kernel does, per cache, over the whole case."""
    assert simulated_counts("6.18", name) == COUNTS[name]


def test_mprotect_unfaulted_right_counts_show_the_survivor():
    """TEST_F(merge, mprotect_unfaulted_right) is the merge-right case of issue 18: the
    faulted range (middle) merges into the unfaulted next. Counted by hand for 6.18:
    mmap over the carveout splits it twice and maps one VMA, freeing the carved piece (3
    vm_area_struct allocated, 1 freed); mprotect of the last 5 pages splits (1 more); the
    write allocates an anon_vma and its chain entry; the merge keeps next
    (vma_merge_existing_range merge-right, mm/vma.c 944-971), so dup_anon_vma(next, middle)
    (611-641) clones middle's entry into next (1 chain entry allocated) and vma_complete
    (333-410) frees middle and its entry. The pre-4.9 survivor rule (middle grows over next:
    knob merge_next_survives=false) would allocate and free no chain entry."""
    want = {
        "anon_vma_alloc": 1,
        "anon_vma_free": 0,
        "anon_vma_chain_alloc": 2,
        "anon_vma_chain_free": 1,
        "vm_area_struct_alloc": 4,
        "vm_area_struct_free": 2,
    }
    assert COUNTS["mprotect_unfaulted_right"] == want
    assert simulated_counts("6.18", "mprotect_unfaulted_right") == want
    old = simulated_counts("6.18+merge_next_survives=false", "mprotect_unfaulted_right")
    assert old == {**want, "anon_vma_chain_alloc": 1, "anon_vma_chain_free": 0}


def _counters_why():
    from rmapsim.tools.kernel.perf import probe

    return probe() or (None if kernel_at_least(6, 18) else "needs Linux 6.18")


@pytest.mark.skipif(_counters_why() is not None, reason="needs root, tracefs, perf counters, cc and Linux 6.18")
def test_the_live_kernel_still_gives_the_counts(tmp_path):
    assert live_counts(tmp_path) == COUNTS


def test_the_recording_is_merge_c_passing_on_6_18():
    """The recording holds all 23 cases of merge.c, every one passing on 6.18.44."""
    lines = list(REC.values())
    assert len(lines) == 23 and all(line.endswith("| pass") for line in lines)
    expected = set(MERGE) | {"ksm_merge", "handle_uprobe_upon_merged_vma"}
    expected |= {f"{n}/{v}" for n in WITH_FORK for v in ("forked", "unforked")}
    assert set(REC) == expected


@pytest.mark.skipif(
    not kernel_at_least(6, 18) or shutil.which("cc") is None or os.geteuid() != 0,
    reason="needs Linux 6.18+ as root (perf_event_open of a uprobe) and a C compiler (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert live_lines(tmp_path) == REC
