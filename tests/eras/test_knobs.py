"""Every knob of rmapsim.knobs(), flipped alone on 6.18.

For each knob, `6.18+knob=value` (every value 6.18 does not have) runs a seeded random
workload with the full oracle (check() after every operation), and a small scenario asserts
the knob's observable effect against what the kernel rule the knob stands for predicts (the
comment says which). The knobs that re-create a historic bug (the 2.6.34-rc1 patch as posted,
3.19's degree reuse) may break check(); the workload then requires the violation to be one of
the invariants that bug breaks (helpers.BUGGY_BREAKS), and the scenario shows the bug.
Expected values are derived by hand, never read from a run.
"""

from __future__ import annotations

import random

import pytest

import rmapsim
from rmapsim.testing import Program

from helpers import (
    PAGE,
    PAGE_SHIFT,
    RC1_INVARIANTS,
    X,
    invariant_number,
    scan_rows,
    vmas,
    walk_one,
)

BASE = "6.18"
# every value of every knob that 6.18 does not have (sizes: one other size)
FLIPS = {
    "linking": ["legacy"],
    "prepare_reuse": ["any_compatible"],
    "cow_reuse_moves_page": ["false"],
    "prepare_links_at_head": ["true"],
    "swapin_target": ["vma_anon_vma", "oldest_unless_exclusive"],
    "clone_reverses_chain": ["true"],
    "importer_clones_exporter": ["false"],
    "fork_error_unlinks": ["false"],
    "has_wipeonfork": ["false"],
    "has_thp_advice": ["false"],
    "thp_advice_strict": ["true"],
    "has_dump_advice": ["false"],
    "adjust_imports_upfront": ["false"],
    "mremap_expand_merges": ["false"],
    "mremap_move_multi": ["false"],
    "map_stack_nohugepage": ["false"],
    "mprotect_unaccounts": ["false"],
    "brk_heap_only": ["false"],
    "track_root": ["false"],
    "swapin_keeps_anon_mapping": ["false"],
    "has_madv_free": ["false"],
    "has_map_fixed_noreplace": ["false"],
    "mremap_dontunmap": ["none", "anon_only"],
    "index": ["list"],
    "fork_reuse": ["never", "degree"],
    "merge_rule": ["simple", "singular_chain"],
    "lock_scope": ["per_anon_vma"],
    "lock_kind": ["spin", "mutex"],
    "merge_next_survives": ["false"],
    "merge_nomem_fails": ["false"],
    "mremap_needs_vma": ["false"],
    "holes": ["kernel"],
    "mlock_populates_after": ["false"],
    "has_mlock_onfault": ["false"],
    "mprotect_populates_locked": ["false"],
    "memory_merge": ["none", "after_merge"],
    "fork_alloc_first": ["true"],
    "clone_allocs_first": ["true"],
    "clone_error_clears_anon_vma": ["false"],
    "size_vm_area_struct": ["200"],
    "size_anon_vma": ["100"],
    "size_anon_vma_chain": ["40"],
}
# flips a 6.18 base refuses: the knob they contradict (interval tree needs chains; the
# root lock needs anon_vmas that know their root)
REFUSED = {("linking", "legacy"): "index", ("track_root", "false"): "lock_scope"}
# flips that re-create a bug, and the invariants it may break
BUGGY = {
    ("prepare_reuse", "any_compatible"): RC1_INVARIANTS,
    ("clone_reverses_chain", "true"): RC1_INVARIANTS,
    ("importer_clones_exporter", "false"): RC1_INVARIANTS,
    ("fork_error_unlinks", "false"): RC1_INVARIANTS,
    ("fork_reuse", "degree"): (1, 2, 4),
    # the stale dst->anon_vma of a failed clone (7.0-rc1; here through 6.18's unlink, which
    # then takes one active VMA off an anon_vma that never counted it): tests/eras/test_mainline.py
    ("clone_error_clears_anon_vma", "false"): (1, 2, 3, 4, 5),
}
CASES = [(k, v) for k, vs in FLIPS.items() for v in vs]


def flipped(knob, value, seed=0):
    return rmapsim.Simulator(era=f"{BASE}+{knob}={value}", seed=seed)


def test_every_knob_is_flipped_here():
    assert set(FLIPS) == {k.name for k in rmapsim.knobs()}
    base = rmapsim.Policy.preset(BASE).as_dict()
    for knob, values in FLIPS.items():
        assert base[knob] not in values, knob  # a flip changes the knob


def run_workload(spec, seed, words=8 * 640):
    """A seeded random program (rmapsim.testing.Program: the native generator's extended
    mix, 2% of allocations failed) applied with check() after every operation; returns
    (operations run, the violation message or None, the simulator)."""
    prog = Program(random.Random(seed).randbytes(words))
    arr = prog.ops(spec, fail_rate=0.02, extended=True, seed=seed)
    sim = rmapsim.Simulator(era=spec, seed=seed)
    result = sim.apply(arr, check_each=True)
    return len(arr), result.violation(), sim


@pytest.mark.parametrize("knob,value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_knob_flipped_alone_under_a_random_workload(knob, value):
    if (knob, value) in REFUSED:
        with pytest.raises(rmapsim.InvalidArgument, match=REFUSED[(knob, value)]):
            flipped(knob, value)
        return
    spec = f"{BASE}+{knob}={value}"
    for seed in range(3):
        n, violation, sim = run_workload(spec, seed)
        assert str(sim.policy()[knob]).lower() == value
        assert n > 500  # the program decoded to a real workload
        if violation is None:
            sim.check()
        else:
            assert (knob, value) in BUGGY, f"{spec}, seed {seed}: {violation}"
            assert invariant_number(violation) in BUGGY[(knob, value)], violation


# --------------------------------------------------------------------------- effects, one per knob
# Scenarios in the fixed region X; c(i) is column i.


def c(i):
    return X + i * PAGE


def forked(era, npages=2):
    """A parent that wrote npages at X, and its child: (sim, parent, child)."""
    sim = rmapsim.Simulator(era=era, seed=0)
    p = sim.spawn()
    sim.mmap(p, npages * PAGE, addr=X)
    sim.touch(p, X, npages * PAGE, write=True)
    return sim, p, sim.fork(p)


def own_av(sim, pid, addr=X):
    return next(v["anon_vma"] for v in vmas(sim, pid) if v["start"] <= addr < v["end"])


def test_linking_legacy_is_refused_beside_the_interval_tree():
    # the interval tree indexes anon_vma_chain entries: a legacy family list has none
    with pytest.raises(rmapsim.InvalidArgument, match="linking"):
        flipped("linking", "legacy")


def test_prepare_reuse_any_compatible_shares_a_multi_entry_chain():
    # 2.6.34-rc1's prepare: the child's neighbour reuses the child's anon_vma C although
    # the chain of its VMA is [AP, C]: two VMAs with one anon_vma and different chains
    for spec, shares in ((BASE, False), (f"{BASE}+prepare_reuse=any_compatible", True)):
        sim, p, ch = forked(spec)
        sim.mmap(ch, PAGE, addr=c(2), prot="rwx")
        sim.touch(ch, c(2), PAGE, write=True)
        assert (own_av(sim, ch, c(2)) == own_av(sim, ch)) == shares
        if shares:
            with pytest.raises(rmapsim.InvariantViolation, match=r"invariant 4\b"):
                sim.check()
        else:
            sim.check()


def test_cow_reuse_moves_page_false_leaves_the_page_in_the_old_anon_vma():
    # the parent exits; the child, sole mapper, write-faults: do_wp_page reuses the page and
    # page_move_anon_rmap moves it to the child's anon_vma -- unless the knob is off
    for spec, moves in ((BASE, True), (f"{BASE}+cow_reuse_moves_page=false", False)):
        sim, p, ch = forked(spec)
        root = own_av(sim, p)
        h = sim.page_at(ch, X)
        sim.exit(p)
        sim.touch(ch, X, PAGE, write=True)
        assert sim.page_at(ch, X) == h
        assert sim.page_info(h)["anon_vma"] == (own_av(sim, ch) if moves else root)
        sim.check()


def test_prepare_links_at_head_is_invisible_through_the_interval_tree():
    # B reuses A's anon_vma; head or tail of the list, the tree yields only the entry that
    # covers each page, so page_referenced visits 1 for both pages
    sim = flipped("prepare_links_at_head", "true")
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=X, prot="rw")
    sim.touch(p, X, 2 * PAGE, write=True)
    sim.mmap(p, PAGE, addr=c(2), prot="rwx")
    sim.touch(p, c(2), PAGE, write=True)
    assert own_av(sim, p, c(2)) == own_av(sim, p)
    rows = scan_rows(sim.page_referenced(pages=[sim.page_at(p, X), sim.page_at(p, c(2))]))
    assert [r["vmas_visited"] for r in rows] == [1, 1]


@pytest.mark.parametrize("value", FLIPS["swapin_target"])
def test_swapin_target_of_a_shared_page_read_from_swap(value):
    # a page read back from swap (after drop_swap_cache) by a read fault in the child, still
    # referenced by the parent's swap entry: vma_anon_vma -> the child's own anon_vma;
    # oldest (the oldest on the child's chain [AP, C]) and root -> AP
    for spec, want in ((BASE, "root"), (f"{BASE}+swapin_target={value}", value)):
        sim, p, ch = forked(spec, 1)
        sim.try_to_unmap([sim.page_at(p, X)])
        sim.drop_swap_cache()
        sim.touch(ch, X, PAGE, write=False)
        got = sim.page_info(sim.page_at(ch, X))["anon_vma"]
        assert got == (own_av(sim, ch) if want == "vma_anon_vma" else own_av(sim, p)), spec
        sim.check()


def test_clone_reverses_chain_in_a_grandchild():
    # anon_vma_clone walks the source chain; as posted it built the copy in reverse: the
    # grandchild links [C, AP] then its own G instead of [AP, C, G]
    for spec, reverse in ((BASE, False), (f"{BASE}+clone_reverses_chain=true", True)):
        sim, p, ch = forked(spec)
        g = sim.fork(ch)
        avp, avc, avg = own_av(sim, p), own_av(sim, ch), own_av(sim, g)
        want = [avc, avp, avg] if reverse else [avp, avc, avg]
        assert len({avp, avc, avg}) == 3
        [chain] = [v["chain"] for v in sim.graph()["vmas"] if v["pid"] == g]
        assert chain == want


def test_importer_clones_exporter_false_frees_the_exporters_anon_vma():
    # P [0,3) unfaulted, N [7,10) written; mmap of the hole merges P, new, N (case 1):
    # P imports N's anon_vma and must clone N's chain; cloning its own (empty) one instead,
    # unlink_anon_vmas(N) frees avN while N's pages still point at it (invariant 2)
    for spec, broken in ((BASE, False), (f"{BASE}+importer_clones_exporter=false", True)):
        sim = rmapsim.Simulator(era=spec, seed=0)
        a = sim.spawn()
        sim.mmap(a, 3 * PAGE, addr=c(0))
        sim.mmap(a, 3 * PAGE, addr=c(7))
        sim.touch(a, c(7), 3 * PAGE, write=True)
        av_n = own_av(sim, a, c(7))
        sim.mmap(a, 4 * PAGE, addr=c(3))
        [v] = vmas(sim, a)
        assert (v["start"], v["end"], v["anon_vma"]) == (c(0), c(10), av_n)
        assert v["chain_len"] == (0 if broken else 1)
        if broken:
            with pytest.raises(rmapsim.InvariantViolation, match=r"invariant 2\b"):
                sim.check()
        else:
            sim.check()


def test_fork_error_unlinks_false_leaks_the_cloned_entry():
    # the 4th allocation of a fork of a 1-VMA parent is anon_vma@anon_vma_fork (dup_mm,
    # dup_mmap, the clone's entry, the child's anon_vma): failing it, 6.18 unlinks the cloned
    # entry (1 AVC left, the parent's); without the unlink it stays on AP's list (2)
    for spec, leaks in ((BASE, False), (f"{BASE}+fork_error_unlinks=false", True)):
        sim = rmapsim.Simulator(era=spec, seed=0)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=X)
        sim.touch(p, X, 2 * PAGE, write=True)
        sim.inject_enomem(nth=4)
        with pytest.raises(rmapsim.OutOfMemory, match="anon_vma@anon_vma_fork"):
            sim.fork(p)
        sim.inject_enomem(None)
        assert sim.counts()["anon_vma_chain"] == (2 if leaks else 1)
        if leaks:
            with pytest.raises(rmapsim.InvariantViolation):
                sim.check()
        else:
            sim.check()


@pytest.mark.parametrize(
    "knob,advice",
    [
        ("has_wipeonfork", "wipeonfork"),
        ("has_wipeonfork", "keeponfork"),
        ("has_thp_advice", "hugepage"),
        ("has_thp_advice", "nohugepage"),
        ("has_dump_advice", "dontdump"),
        ("has_dump_advice", "dodump"),
    ],
)
def test_advice_knobs_make_the_advice_einval(knob, advice):
    # madvise_behavior_valid() of a kernel without the advice refuses it: EINVAL
    for spec, exists in ((BASE, True), (f"{BASE}+{knob}=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=X)
        if exists:
            sim.madvise(p, X, PAGE, advice)
        else:
            with pytest.raises(rmapsim.InvalidArgument, match=advice):
                sim.madvise(p, X, PAGE, advice)
        sim.check()


def test_thp_advice_strict_refuses_a_repeated_hugepage():
    # 2.6.38-4.3: MADV_HUGEPAGE on a VMA that already has VM_HUGEPAGE is EINVAL
    for spec, strict in ((BASE, False), (f"{BASE}+thp_advice_strict=true", True)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=X)
        sim.madvise(p, X, 2 * PAGE, "hugepage")
        if strict:
            with pytest.raises(rmapsim.InvalidArgument):
                sim.madvise(p, X, 2 * PAGE, "hugepage")
        else:
            sim.madvise(p, X, 2 * PAGE, "hugepage")
        assert len(vmas(sim, p)) == 1


def test_mremap_expand_merges_false_keeps_the_grown_vma_apart():
    # ca3d76b0aa80 (6.1): growing in place merges with a compatible next VMA
    for spec, merges in ((BASE, True), (f"{BASE}+mremap_expand_merges=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(0))
        sim.mmap(p, 2 * PAGE, addr=c(4))
        assert sim.mremap(p, c(0), 2 * PAGE, 4 * PAGE, may_move=False) == c(0)
        spans = [(v["start"], v["end"]) for v in vmas(sim, p)]
        assert spans == ([(c(0), c(6))] if merges else [(c(0), c(4)), (c(4), c(6))])


def test_mremap_move_multi_false_is_efault_over_two_vmas():
    # 6.17 remap_move: a pure move over several VMAs; before, the range must lie in one VMA
    for spec, moves in ((BASE, True), (f"{BASE}+mremap_move_multi=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(0), prot="rw")
        sim.mmap(p, 2 * PAGE, addr=c(2), prot="r")
        dst = c(32)
        if moves:
            assert sim.mremap(p, c(0), 4 * PAGE, 4 * PAGE, may_move=True, new_addr=dst) == dst
            assert [(v["start"], v["end"]) for v in vmas(sim, p)] == [
                (dst, dst + 2 * PAGE),
                (dst + 2 * PAGE, dst + 4 * PAGE),
            ]
        else:
            with pytest.raises(rmapsim.BadAddress):
                sim.mremap(p, c(0), 4 * PAGE, 4 * PAGE, may_move=True, new_addr=dst)
            assert len(vmas(sim, p)) == 2


def test_map_stack_nohugepage_false_lets_a_stack_merge():
    # c4608d1bf7c6 (6.7): MAP_STACK sets VM_NOHUGEPAGE, so a stack stays apart
    for spec, apart in ((BASE, True), (f"{BASE}+map_stack_nohugepage=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(0))
        sim.mmap(p, 2 * PAGE, addr=c(2), stack=True)
        assert len(vmas(sim, p)) == (2 if apart else 1)


def test_mprotect_unaccounts_false_keeps_vm_account():
    # 6.7: mprotect to read-only clears VM_ACCOUNT of an anonymous VMA without anon_vma,
    # so it merges with a never-writable neighbour
    for spec, merges in ((BASE, True), (f"{BASE}+mprotect_unaccounts=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(0), prot="r")
        sim.mmap(p, 2 * PAGE, addr=c(2), prot="rw")
        sim.mprotect(p, c(2), 2 * PAGE, "r")
        assert len(vmas(sim, p)) == (1 if merges else 2)


def test_brk_heap_only_false_expands_the_bss():
    # 6.1 do_brk_flags expands only the heap VMA; before, vma_merge merged it into the bss
    for spec, apart in ((BASE, True), (f"{BASE}+brk_heap_only=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, 0x4A7000, "rw")
        sim.touch(p, 0x4A7000, PAGE)
        sim.set_brk_base(p, 0x4A9000)
        assert sim.brk(p, 0x4AB000) == 0x4AB000
        spans = [(v["start"], v["end"]) for v in vmas(sim, p)]
        assert spans == ([(0x4A7000, 0x4A9000), (0x4A9000, 0x4AB000)] if apart else [(0x4A7000, 0x4AB000)])


def test_track_root_false_is_refused_beside_the_root_lock():
    # the root lock (2.6.35) locks anon_vma->root: anon_vmas must record it
    with pytest.raises(rmapsim.InvalidArgument, match="track_root"):
        flipped("track_root", "false")


def test_swapin_keeps_anon_mapping_false_moves_the_page_to_the_faulting_vma():
    # the child takes a swapped-out shared page exclusively (the parent's entry gone): the
    # page is still anonymous in the swap cache; 6.18 keeps its page->mapping (AP), the
    # knob off sets it to the child's own anon_vma (do_page_add_anon_rmap, exclusive)
    for spec, keeps in ((BASE, True), (f"{BASE}+swapin_keeps_anon_mapping=false", False)):
        sim, p, ch = forked(spec, 1)
        h = sim.page_at(p, X)
        sim.try_to_unmap([h])
        sim.exit(p)
        sim.touch(ch, X, PAGE, write=True)
        assert sim.page_at(ch, X) == h
        root = [a["anon_vma"] for a in sim.graph()["anon_vmas"] if a["anon_vma"] == a["root"]]
        assert sim.page_info(h)["anon_vma"] == (root[0] if keeps else own_av(sim, ch))
        sim.check()


def _split_walk(spec, k=6, n=3):
    """k pieces (alternate ones read-only) of one region, forked n times: the parent page's
    anon_vma links k(n+1) entries, n+1 of which cover the page."""
    sim = rmapsim.Simulator(era=spec)
    p = sim.spawn()
    sim.mmap(p, k * PAGE, addr=X)
    sim.touch(p, X, k * PAGE)
    for i in range(1, k, 2):
        sim.mprotect(p, c(i), PAGE, "r")
    sim.fork_many(p, n)
    return sim, walk_one(sim, sim.page_at(p, c(2)))


def test_index_list_visits_every_entry():
    # bf181b9f9d8d (3.7): the interval tree yields the n+1 covering entries; a list all k(n+1)
    assert _split_walk(BASE)[1]["vmas_visited"] == 4
    sim, row = _split_walk(f"{BASE}+index=list")
    assert (row["vmas_visited"], row["tree_nodes_visited"]) == (6 * 4, 0)
    assert row["mappings_found"] == 4


def _generations(spec, g):
    sim = rmapsim.Simulator(era=spec)
    p = sim.spawn()
    sim.mmap(p, PAGE, addr=X)
    sim.touch(p, X, PAGE)
    for _ in range(g):
        ch = sim.fork(p)
        sim.exit(p)
        sim.touch(ch, X, PAGE)
        p = ch
    sim.check()
    return sim.counts()["anon_vma"], vmas(sim, p)[0]["chain_len"]


@pytest.mark.parametrize("value", FLIPS["fork_reuse"])
def test_fork_reuse_bounds_or_grows_the_generation_chain(value):
    # never: G+1 levels (nothing reused); degree (3.19) and active_vmas (6.18): the
    # abandoned middle level is reused from G=3, three levels for ever
    spec = f"{BASE}+fork_reuse={value}"
    bounded = [(2, 2)] + [(3, 3)] * 4
    assert [_generations(BASE, g) for g in range(1, 6)] == bounded
    if value == "never":
        assert [_generations(spec, g) for g in range(1, 6)] == [(g + 1, g + 1) for g in range(1, 6)]
    else:
        assert [_generations(spec, g) for g in range(1, 6)] == bounded


@pytest.mark.parametrize("value", FLIPS["merge_rule"])
def test_merge_rule_decides_a_new_range_beside_a_forked_vma(value):
    # a fresh range beside the child's faulted VMA (chain [AP, C]): simple merges (either
    # anon_vma NULL); singular_chain (965f55dea0e3) and case_2025 refuse a non-singular chain
    for spec, merges in ((BASE, False), (f"{BASE}+merge_rule={value}", value == "simple")):
        sim, p, ch = forked(spec)
        sim.mmap(ch, 2 * PAGE, addr=c(2))
        want = (
            [(X, c(4), X >> PAGE_SHIFT)]
            if merges
            else [(X, c(2), X >> PAGE_SHIFT), (c(2), c(4), (X >> PAGE_SHIFT) + 2)]
        )
        assert [(v["start"], v["end"], v["pgoff"]) for v in vmas(sim, ch)] == want
        sim.check()


def test_lock_scope_per_anon_vma_locks_the_childs_own_anon_vma():
    # 2.6.35's root lock vs the anon_vma's own lock, on a walk of the child's COW copy
    for spec, root in ((BASE, True), (f"{BASE}+lock_scope=per_anon_vma", False)):
        sim, p, ch = forked(spec, 1)
        sim.touch(ch, X, PAGE, write=True)
        row = walk_one(sim, sim.page_at(ch, X))
        assert row["anon_vma"] == own_av(sim, ch)
        assert row["lock_id"] == (own_av(sim, p) if root else own_av(sim, ch))


@pytest.mark.parametrize("value", FLIPS["lock_kind"])
def test_lock_kind_decides_shared_walks(value):
    # 5a505085f043 (3.8): an rwsem that walks take shared; a spinlock or mutex is exclusive
    sim, p, ch = forked(f"{BASE}+lock_kind={value}", 1)
    assert walk_one(sim, sim.page_at(p, X))["lock_mode"] == rmapsim.LOCK_EXCLUSIVE
    sim, p, ch = forked(BASE, 1)
    assert walk_one(sim, sim.page_at(p, X))["lock_mode"] == rmapsim.LOCK_SHARED


@pytest.mark.parametrize(
    "knob,struct",
    [
        ("size_vm_area_struct", "vm_area_struct"),
        ("size_anon_vma", "anon_vma"),
        ("size_anon_vma_chain", "anon_vma_chain"),
    ],
)
def test_struct_sizes_scale_memory(knob, struct):
    # memory() is count x size: a parent and a child of one written VMA have 2 VMAs, 2
    # anon_vmas and 3 chain entries (the parent's 1, the child's clone and own)
    (size,) = FLIPS[knob]
    sim, p, ch = forked(f"{BASE}+{knob}={size}", 1)
    count = {"vm_area_struct": 2, "anon_vma": 2, "anon_vma_chain": 3}[struct]
    assert sim.memory()[struct] == count * int(size)


def test_merge_next_survives_false_keeps_the_range_vma():
    # e86f15ee64d8 (4.9): vma_merge case 8 keeps next (remove_next == 3); before, the
    # range's VMA grew over next and imported a clone of next's chain entry
    for spec, keeps_next in ((BASE, True), (f"{BASE}+merge_next_survives=false", False)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(0), prot="r")
        sim.mmap(p, 2 * PAGE, addr=c(2), prot="rw")
        sim.touch(p, c(2), PAGE, write=True)
        middle, nxt = sim.vma_at(p, c(0)), sim.vma_at(p, c(2))
        clones = sim.allocation_sites().get("anon_vma_chain@anon_vma_clone", 0)
        sim.mprotect(p, c(0), 2 * PAGE, "rw")
        assert sim.vma_at(p, c(0)) == (nxt if keeps_next else middle)
        cloned = sim.allocation_sites().get("anon_vma_chain@anon_vma_clone", 0) - clones
        assert cloned == (0 if keeps_next else 1)


def test_mremap_needs_vma_false_shrinks_at_an_unmapped_address():
    # 550a7d60bd5e (5.16): do_mremap looks up old_addr's VMA first; before, a shrink in
    # place only unmapped the tail. Visible with holes=kernel only.
    for spec, ok in ((f"{BASE}+holes=kernel", False), (f"{BASE}+holes=kernel,mremap_needs_vma=false", True)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(1))
        if ok:
            assert sim.mremap(p, c(0), 3 * PAGE, 2 * PAGE, may_move=False) == c(0)
            assert [(v["start"], v["end"]) for v in vmas(sim, p)] == [(c(1), c(2))]
        else:
            with pytest.raises(rmapsim.BadAddress):
                sim.mremap(p, c(0), 3 * PAGE, 2 * PAGE, may_move=False)


def test_holes_kernel_applies_mprotect_up_to_the_hole():
    # rmapsim option: strict refuses the range (nothing changed); kernel is do_mprotect_pkey
    # (ENOMEM at the hole, the VMAs before it changed)
    for spec, changed in ((BASE, False), (f"{BASE}+holes=kernel", True)):
        sim = rmapsim.Simulator(era=spec)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=c(0), prot="r")
        sim.mmap(p, 2 * PAGE, addr=c(3), prot="r")
        with pytest.raises(rmapsim.BadAddress):
            sim.mprotect(p, c(0), 5 * PAGE, "rw")
        assert [str(v["prot"]) for v in sim.vmas(p)] == (["rw", "r"] if changed else ["r", "r"])
