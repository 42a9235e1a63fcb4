"""Which VMA survives a merge, and which chain is cloned: the merge that keeps ``next``.

Kernel rules, each quoted below where a test relies on it (line numbers of the 6.18.2 tree,
mm/vma.c; the 4.9 change by the hunks of its patch against 4.8's mm/mmap.c):

* 6.18 ``vma_merge_existing_range`` (mm/vma.c 807-996) for an existing range ``middle``
  (mprotect, madvise): merge-right (944-971) makes ``next`` the target; when the range is
  all of ``middle`` (``__remove_middle``, set at 886) ``next`` grows down to ``middle``'s
  start (``vmg->end = next->vm_end``, ``pgoff = next->vm_pgoff - pglen``) and
  ``init_multi_vma_prep`` (140-191) makes ``middle`` the VMA to free; the anon_vma step
  is ``dup_anon_vma(next, middle)`` (970). ``dup_anon_vma`` (611-641) clones ``src``'s
  chain into ``dst`` only when ``dst`` has no anon_vma and ``src`` has one. ``vma_complete``
  (333-410) then frees ``middle``, unlinking its chain (``anon_vma_merge``, 385).
  Merge-left (928-943) keeps ``prev`` with ``dup_anon_vma(prev, middle)``; merge-both
  (909-927) keeps ``prev`` with ``dup_anon_vma(prev, next->anon_vma ? next : middle)``.
* 6.18 ``vma_merge_new_range`` (1042-1102) + ``vma_expand`` (1120-1174) for a new range:
  the target is ``prev`` when it can merge left, else ``next``; with both, ``next`` is freed
  after ``dup_anon_vma(target, next)`` (1148).
* 4.9, e86f15ee64d8 "mm: vma_merge: fix vm_page_prot SMP race condition against
  rmap_walk" (posted 2016-09-19, after 4.8-rc7; 4.8's ``vma_adjust`` has no such case, as
  WindRiver's kernel-4.8.x tree shows): ``vma_merge``'s "cases 3, 8" (4.8 mm/mmap.c from
  line 1008, the hunk ``@@ -1008,11 +1104,18 @@``) call ``__vma_adjust(area, addr,
  next->vm_end, next->vm_pgoff - pglen, NULL, next)``; ``__vma_adjust`` (from line 622,
  ``@@ -619,11 +642,12 @@``) sees ``next == expand``, sets ``remove_next = 3`` and swaps
  ``vma`` and ``next`` (``@@ -639,9 +663,38 @@``), so the exporter is the old ``vma`` (the
  range) and the importer the old ``next``; ``vma_merge`` returns ``next``.
* Before 4.9 (2.6.33's and 2.6.34's ``vma_merge``/``vma_adjust``, the code rmapsim's older
  eras follow): case 8 is ``vma_adjust(area, addr, next->vm_end, ...)``, ``area`` grows
  over ``next`` (``remove_next = 1``), the importer is ``area`` and the exporter ``next``.

So in the issue's example (an unfaulted read-only VMA made writable in front of a faulted
writable one), 6.x keeps the faulted ``next`` and allocates and frees no chain entry; before
4.9 the range's VMA imported a clone of ``next``'s entry (one allocated) and ``next``'s was
freed with it (one freed). With the range faulted and ``next`` not, 6.18 clones the range's
entry into ``next`` and frees the range's (one each); rmapsim's knob ``merge_next_survives``
(4.9; set in 6.0 and 6.18) selects the rule.

Visit order: the survivor's own entries stay where they were in each anon_vma's list (they
are only re-keyed in the interval tree); a cloned entry is appended. So in a list era (up to
3.6) an early-stopping walk visits the merged VMA later when it imported a clone than when
it kept its own entry; in the interval tree (3.7+) both the kept entry and the clone are
re-inserted at commit (``vma_prepare`` / ``vma_complete``'s interval-tree pre/post update),
so the order is the same either way.

Ground truth: tests/data/merge_next.c run on this machine's Linux 6.18 under the perf kmem
tracepoint counters `rmapsim validate-kernel` uses, the allocation and free counts of the
merge recorded in tests/data/merge_next.out (repeated live when the kernel is usable).

Pictures: one column per page from X; letters name VMAs.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import DATA, PAGE, X, kernel_at_least, recorded_lines, scan_rows

NEXT_SURVIVES = ("6.0", "6.18")
MIDDLE_SURVIVES = ("2.6.34", "2.6.35", "3.0", "3.7", "3.8", "3.19")


def c(i: int) -> int:
    return X + i * PAGE


def avc_delta(sim, fn, *args, **kwargs):
    """(anon_vma_chain entries allocated, entries freed) by one call: allocations are the
    per-site attempts, frees the allocations minus the change in live entries."""
    before_alloc = sim.allocation_sites().get("anon_vma_chain@anon_vma_clone", 0)
    before_live = sim.counts()["anon_vma_chain"]
    fn(*args, **kwargs)
    alloc = sim.allocation_sites().get("anon_vma_chain@anon_vma_clone", 0) - before_alloc
    freed = alloc - (sim.counts()["anon_vma_chain"] - before_live)
    return alloc, freed


def stale(view) -> bool:
    try:
        view.vm_start  # noqa: B018 - the read raises StaleHandle for a freed VMA
    except rmapsim.StaleHandle:
        return True
    return False


def issue_layout(era, fault_next=True):
    """The issue's layout: M = [39, 45) read-only, N = [45, 53) read-write.

    fault_next: N has 3 written pages (M unfaulted). Otherwise M has 3 written pages (it was
    writable while they were written, so it carries VM_ACCOUNT like N) and N is unfaulted.
    """
    sim = rmapsim.Simulator(era)
    p = sim.spawn()
    if fault_next:
        sim.mmap(p, 6 * PAGE, addr=c(39), prot="r")
        sim.mmap(p, 8 * PAGE, addr=c(45), prot="rw")
        sim.touch(p, c(45), 3 * PAGE, write=True)
    else:
        sim.mmap(p, 6 * PAGE, addr=c(39), prot="rw")
        sim.touch(p, c(39), 3 * PAGE, write=True)
        sim.mprotect(p, c(39), 6 * PAGE, "r")
        sim.mmap(p, 8 * PAGE, addr=c(45), prot="rw")
    return sim, p, sim.vma_at(p, c(39)), sim.vma_at(p, c(45))


@pytest.mark.parametrize("era", NEXT_SURVIVES + MIDDLE_SURVIVES)
def test_issue_example_next_faulted(era):
    """``mmap +39 6p r; mmap +45 8p rw; touch +45 3p w; mprotect +39 6p rw``.

    MMMMMMNNNNNNNN      M unfaulted, N faulted (one anon_vma, one chain entry)
    <---->              mprotect rw: case 8 / merge-right with middle removed
    NNNNNNNNNNNNNN      6.x: N survives, dup_anon_vma(N, M) is a no-op (N has an anon_vma)
    MMMMMMMMMMMMMM      < 4.9: M survives and imports a clone of N's entry; N's is freed
    """
    sim, p, m, n = issue_layout(era)
    alloc, freed = avc_delta(sim, sim.mprotect, p, c(39), 6 * PAGE, "rw")
    merged = sim.vma_at(p, c(39))
    assert (merged.vm_start, merged.vm_end) == (c(39), c(53))
    assert len(sim.vmas(p)) == 1
    if era in NEXT_SURVIVES:
        assert (alloc, freed) == (0, 0)
        assert merged == n and stale(m)
    else:
        assert (alloc, freed) == (1, 1)
        assert merged == m and stale(n)
    assert merged.vm_pgoff == c(39) >> 12  # anonymous: pgoff is the address' page number
    assert len(merged.anon_vma_chain) == 1
    sim.check()


@pytest.mark.parametrize("era", ["6.18", "6.18+merge_next_survives=false"])
def test_issue_example_middle_faulted(era):
    """The reverse: M faulted, N not. 6.18's merge rule admits it (is_mergeable_anon_vma,
    mm/vma.c 109-131, case 1: the target N has no anon_vma and the source M has no uncowed
    parents), and dup_anon_vma(N, M) clones M's entry into N; M and its entry are freed.
    With the pre-4.9 rule M survives over N, N has no anon_vma to import: nothing
    allocated or freed.

      MMMMMMNNNNNNNN      M faulted, N unfaulted
      NNNNNNNNNNNNNN      6.18: one entry cloned into N, M's freed
    """
    sim, p, m, n = issue_layout(era, fault_next=False)
    av = m.anon_vma
    alloc, freed = avc_delta(sim, sim.mprotect, p, c(39), 6 * PAGE, "rw")
    merged = sim.vma_at(p, c(39))
    assert (merged.vm_start, merged.vm_end, len(sim.vmas(p))) == (c(39), c(53), 1)
    if era == "6.18":
        assert (alloc, freed) == (1, 1)
        assert merged == n and stale(m)
    else:
        assert (alloc, freed) == (0, 0)
        assert merged == m and stale(n)
    assert merged.anon_vma == av
    # the three pages written through M are still found by a full walk, in the survivor
    pages = [sim.page_at(p, c(39 + i)) for i in range(3)]
    for row in scan_rows(sim.rmap_walk(pages=pages)):
        assert row["vmas_visited"] == 1
    sim.check()


@pytest.mark.parametrize("era", ["3.19", "6.0"])
def test_middle_faulted_next_unfaulted_is_refused_by_the_singular_chain_rule(era):
    """3.0-6.14's is_mergeable_anon_vma (965f55dea0e3) accepts a side without an anon_vma
    only when the VMA checked, here the unfaulted next, has a singular chain; an unfaulted
    next has none, so the merge is refused and which VMA would survive never arises."""
    sim, p, m, n = issue_layout(era, fault_next=False)
    alloc, freed = avc_delta(sim, sim.mprotect, p, c(39), 6 * PAGE, "rw")
    assert (alloc, freed) == (0, 0)
    assert [(v["start"], v["end"]) for v in sim.vmas(p)] == [(c(39), c(45)), (c(45), c(53))]
    assert sim.vma_at(p, c(39)) == m and sim.vma_at(p, c(45)) == n


def forked_case8(era):
    """Parent: M = [0, 4) read-only unfaulted, N = [4, 8) read-write with page 4 written;
    two forks (each child's N links to N's anon_vma A, after the parent's entry); then the
    parent's mprotect of M to rw merges M and N (case 8) and the parent writes page 0, a
    page in A mapped by the parent only."""
    sim = rmapsim.Simulator(era)
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, addr=c(0), prot="r")
    sim.mmap(p, 4 * PAGE, addr=c(4), prot="rw")
    sim.touch(p, c(4), PAGE, write=True)
    sim.fork(p)
    sim.fork(p)
    sim.mprotect(p, c(0), 4 * PAGE, "rw")
    sim.touch(p, c(0), PAGE, write=True)
    return sim, p, sim.page_at(p, c(0))


@pytest.mark.parametrize(
    "era,visited",
    [
        # list (3.0): [P.N, C1.N, C2.N]; kept: P's entry is still first -> 1 visit
        ("3.0+merge_next_survives=true", 1),
        # imported: the clone P.M is appended and P.N removed: [C1.N, C2.N, P.M] -> 3
        ("3.0", 3),
        # interval tree (6.18): the survivor's entry is re-keyed to start at M's pgoff, the
        # children's N entries do not cover page 0: one candidate either way
        ("6.18", 1),
        ("6.18+merge_next_survives=false", 1),
    ],
)
def test_early_stopping_walk_order_after_case_8(era, visited):
    """try_to_unmap stops at the first mapping of a page mapped once: its visit count is
    the position of the parent's entry in A's list (anon_vma_clone appends, mm/rmap.c;
    the survivor's own entry keeps its place), or in A's interval tree the number of
    entries covering the page's index."""
    sim, p, page = forked_case8(era)
    row = scan_rows(sim.try_to_unmap(pages=[page]))[0]
    assert row["vmas_visited"] == visited
    assert sim.page_info(page)["mapcount"] == 0
    sim.check()


# The paths the knob does not touch: the same survivor and the same clones either way.


def left_case(sim, p):
    """PPPPMMMM, P faulted, M unfaulted read-only; mprotect M rw: merge-left, whole middle
    (case 7): P survives, dup_anon_vma(P, M) is a no-op, M freed (mm/vma.c 928-943)."""
    sim.mmap(p, 4 * PAGE, addr=c(0), prot="rw")
    sim.touch(p, c(0), PAGE, write=True)
    sim.mmap(p, 4 * PAGE, addr=c(4), prot="r")
    return (4, 8), (0, 8), 0, 0, 0


def both_case(sim, p):
    """PPPPMMMMNNNN, P unfaulted, M unfaulted read-only, N faulted; mprotect M rw: merge
    both (case 6): P survives, dup_anon_vma(P, N) clones N's entry (909-927), M and N freed
    (N's entry with it)."""
    sim.mmap(p, 4 * PAGE, addr=c(0), prot="rw")
    sim.mmap(p, 4 * PAGE, addr=c(4), prot="r")
    sim.mmap(p, 4 * PAGE, addr=c(8), prot="rw")
    sim.touch(p, c(8), PAGE, write=True)
    return (4, 8), (0, 12), 0, 1, 1


def partial_right_case(sim, p):
    """MMMMNNNN, M unfaulted read-only, N faulted; mprotect of M's last two pages: merge
    right, middle shrunk (case 4, ``__adjust_next_start``): N grows down, M stays;
    dup_anon_vma(N, M) is a no-op (944-971)."""
    sim.mmap(p, 4 * PAGE, addr=c(0), prot="r")
    sim.mmap(p, 4 * PAGE, addr=c(4), prot="rw")
    sim.touch(p, c(4), PAGE, write=True)
    return (2, 4), (2, 8), 4, 0, 0


@pytest.mark.parametrize("build", [left_case, both_case, partial_right_case])
@pytest.mark.parametrize("era", ["6.18", "6.18+merge_next_survives=false"])
def test_other_existing_range_paths_do_not_depend_on_the_knob(era, build):
    sim = rmapsim.Simulator(era)
    p = sim.spawn()
    (a, b), (s, e), kept, alloc_want, freed_want = build(sim, p)
    survivor = sim.vma_at(p, c(kept))
    alloc, freed = avc_delta(sim, sim.mprotect, p, c(a), (b - a) * PAGE, "rw")
    merged = sim.vma_at(p, c(a))
    assert (merged.vm_start, merged.vm_end) == (c(s), c(e))
    assert (alloc, freed) == (alloc_want, freed_want)
    assert merged == survivor
    sim.check()


@pytest.mark.parametrize("era", ["6.18", "6.18+merge_next_survives=false"])
def test_new_range_merges_do_not_depend_on_the_knob(era):
    """vma_merge_new_range (1042-1102): a new range before a faulted N expands N (target
    next, nothing cloned); a new range between an unfaulted P and N expands P over N
    (dup_anon_vma(P, N) clones N's entry, 1148; N and its entry freed)."""
    sim = rmapsim.Simulator(era)
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, addr=c(8), prot="rw")
    sim.touch(p, c(8), PAGE, write=True)
    n = sim.vma_at(p, c(8))
    assert avc_delta(sim, sim.mmap, p, 4 * PAGE, addr=c(4), prot="rw") == (0, 0)
    assert sim.vma_at(p, c(4)) == n and (n.vm_start, n.vm_end) == (c(4), c(12))
    sim.mmap(p, 2 * PAGE, addr=c(0), prot="rw")
    prev = sim.vma_at(p, c(0))
    assert avc_delta(sim, sim.mmap, p, 2 * PAGE, addr=c(2), prot="rw") == (1, 1)
    assert sim.vma_at(p, c(8)) == prev and (prev.vm_start, prev.vm_end) == (c(0), c(12))
    assert stale(n)
    sim.check()


# --------------------------------------------------------------------------- the live kernel
# tests/data/merge_next.c does the issue's example (and its reverse) on Linux 6.18 under the
# perf kmem tracepoint counters of `rmapsim validate-kernel` (anon_vma, anon_vma_chain,
# vm_area_struct allocations and frees of that process), the mprotect run minus a run
# without it; tests/data/merge_next.out is the recording.

RECORDING = DATA / "merge_next.out"
PROGRAM = DATA / "merge_next.c"
KEYS = (
    "anon_vma_alloc",
    "anon_vma_free",
    "anon_vma_chain_alloc",
    "anon_vma_chain_free",
    "vm_area_struct_alloc",
    "vm_area_struct_free",
)


def parse_counts(lines):
    out = {}
    for line in lines:
        case, *rest = line.split()
        out[case] = {k: int(v) for k, v in zip(rest[::2], rest[1::2])}
    return out


def simulated_counts(era):
    """The simulator's objects allocated and freed by the mprotect, per cache (allocations:
    every site of the cache; frees: allocations minus the change in live objects)."""
    out = {}
    for case in ("next", "middle"):
        sim, p, _, _ = issue_layout(era, fault_next=case == "next")
        sites0, live0 = sim.allocation_sites(), sim.counts()
        sim.mprotect(p, c(39), 6 * PAGE, "rw")
        sites1, live1 = sim.allocation_sites(), sim.counts()
        row = {}
        for cache, live in (("anon_vma", "anon_vma"), ("anon_vma_chain", "anon_vma_chain"), ("vm_area_struct", "vma")):
            alloc = sum(n - sites0.get(k, 0) for k, n in sites1.items() if k.split("@")[0] == cache)
            row[f"{cache}_alloc"] = alloc
            row[f"{cache}_free"] = alloc - (live1[live] - live0[live])
        out[case] = row
    return out


def test_6_18_matches_the_live_kernels_allocation_counts():
    """Linux 6.18 (the recording): with N faulted the merge allocates and frees no chain
    entry and frees one VMA (M); with M faulted it clones one entry into N and frees M and
    its entry. rmapsim's 6.18 gives the same counts; the pre-4.9 rule would not."""
    rec = parse_counts(recorded_lines(RECORDING))
    assert rec["next"]["anon_vma_chain_alloc"] == 0 and rec["middle"]["anon_vma_chain_alloc"] == 1
    assert simulated_counts("6.18") == rec
    old = simulated_counts("6.18+merge_next_survives=false")
    assert (old["next"]["anon_vma_chain_alloc"], old["middle"]["anon_vma_chain_alloc"]) == (1, 0)


def live_counts(tmp_path):
    """Run merge_next.c for each case with and without the mprotect under the counters;
    the differences, as the recording has them."""
    import subprocess

    from rmapsim.tools.kernel.perf import Counters, _event_ids, filters, tracefs

    exe = tmp_path / "merge_next"
    subprocess.run(["cc", "-O0", "-o", str(exe), str(PROGRAM)], check=True, capture_output=True)
    out = {}
    with tracefs() as tfs:
        ids, flt = _event_ids(tfs), filters()
        for case in ("next", "middle"):
            runs = {}
            for merge in ("1", "0"):
                cmd = [str(exe), case, merge]
                with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
                    assert proc.stdout.readline().strip() == "ready"
                    counters = Counters(proc.pid, ids, flt)
                    try:
                        before = counters.read()
                        proc.stdin.write("go\n")
                        proc.stdin.flush()
                        assert proc.stdout.readline().strip() == "done"
                        after = counters.read()
                    finally:
                        counters.close()
                        proc.stdin.write("go\n")
                        proc.stdin.flush()
                        proc.wait(timeout=30)
                runs[merge] = {k: after[k] - before[k] for k in KEYS}
            out[case] = {k: runs["1"][k] - runs["0"][k] for k in KEYS}
    return out


def _live_why():
    from rmapsim.tools.kernel.perf import probe

    return probe() or (None if kernel_at_least(6, 18) else "needs Linux 6.18")


@pytest.mark.skipif(_live_why() is not None, reason="needs root, tracefs, perf counters, cc and Linux 6.18")
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert live_counts(tmp_path) == parse_counts(recorded_lines(RECORDING))
