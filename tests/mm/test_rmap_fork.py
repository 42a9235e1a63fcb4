"""fork (kernel/fork.c dup_mmap; mm/rmap.c anon_vma_fork / anon_vma_clone; mm/memory.c
copy_page_range): what a child gets per VMA, generations, VM_DONTCOPY.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import random

import pytest

import rmapsim

from helpers import (
    BASE,
    ERA_RULES,
    NO_REUSE,
    PAGE,
    REUSE,
    P,
    X,
    assert_counts,
    counts,
    flags_of,
    is_chain_era,
    layout,
    no_page_outside_vmas,
    page_at,
    pages_of,
    pids,
    vmas,
    walk_one,
    write_all,
)


def generations(era: str, g: int) -> tuple[int, int]:
    """fork → parent exits → child writes, g times; returns (anon_vmas, chain length)."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = sim.mmap(p, P)
    sim.touch(p, a, P)
    for _ in range(g):
        c = sim.fork(p)
        sim.exit(p)
        sim.touch(c, a, P)
        p = c
    sim.check()
    return sim.counts()["anon_vma"], sim.vmas(p)[0]["chain_len"]


@pytest.mark.parametrize("era", NO_REUSE)
def test_generation_chain_grows_linearly_without_reuse(era):
    # Each generation's child links every earlier level (its pages may come from any),
    # and no level empties while the newest child links it: G+1 anon_vmas and entries.
    assert [generations(era, g) for g in range(1, 6)] == [(g + 1, g + 1) for g in range(1, 6)]


@pytest.mark.parametrize("era", REUSE)
def test_generation_chain_stays_bounded_with_reuse(era):
    # G=1: root + child. G=2: a third level (the root has degree 2 / two children; the
    # middle level is the source's own). From G=3 the abandoned middle level (no VMA,
    # one child) is reused, alternating with the next: three anon_vmas forever.
    assert [generations(era, g) for g in range(1, 8)] == [(2, 2)] + [(3, 3)] * 6


def test_legacy_family_keeps_one_anon_vma():
    assert [generations("2.6.33", g) for g in (1, 5)] == [(1, 0), (1, 0)]


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.8", "6.18"])
def test_write_stats_of_a_fork(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = sim.mmap(p, 4 * P)
    sim.touch(p, a, 4 * P)
    c = sim.fork(p)
    sim.fork(c)  # a second generation: its parent VMA's chain has 2 entries
    w = sim.write_stats()["fork"]
    assert w["ops"] == 2 and w["vma_alloc"] == 2
    if era == "2.6.33":
        # legacy fork links the child VMA on the family list, allocating nothing
        assert (w["anon_vma_alloc"], w["avc_alloc"], w["index_insert"]) == (0, 0, 2)
    else:
        # fork 1: clone 1 entry + own anon_vma and entry; fork 2: clone 2 + own
        assert (w["anon_vma_alloc"], w["avc_alloc"], w["index_insert"]) == (2, 5, 5)
    assert w["page_alloc"] == 0 and w["tree_rekey"] == 0


def cve_search(era: str, seeds: range, steps: int = 80) -> list[str]:
    """Random forks, exits, inherited-attribute splits (MADV_RANDOM), COW writes and
    re-merges (MADV_NORMAL) — the ingredients of CVE-2022-42703."""
    found = []
    for seed in seeds:
        r = random.Random(seed)
        sim = rmapsim.Simulator(era=era, seed=seed)
        p0 = sim.spawn()
        sim.mmap(p0, 8 * P, addr=BASE)
        sim.touch(p0, BASE, 8 * P)
        pids = [p0]
        for _ in range(steps):
            op = r.choice(["fork", "fork", "exit", "split", "merge", "touch", "touch"])
            p = r.choice(pids)
            a = BASE + r.randrange(8) * P
            n = min(r.randrange(1, 4) * P, BASE + 8 * P - a)
            if op == "fork" and len(pids) < 5:
                pids.append(sim.fork(p))
            elif op == "exit" and len(pids) > 1:
                sim.exit(p)
                pids.remove(p)
            elif op == "split":
                sim.madvise(p, a, n, "random")
            elif op == "merge":
                sim.madvise(p, BASE, 8 * P, "normal")
            elif op == "touch":
                sim.touch(p, a, n, write=True)
            try:
                sim.check()
            except rmapsim.InvariantViolation as e:
                found.append(str(e))
                break
    return found


def test_degree_reuse_breaks_same_anon_vma_same_chain_in_3_19_only():
    # Seeds 0..159 of this search hit the degree ambiguity in 3.19 (a VMA handed an
    # anon_vma that another VMA of the same mm uses, with a different chain); the same
    # sequences never break 6.0 or 6.18.
    broken = cve_search("3.19", range(160))
    assert broken, "expected 3.19's degree rule to break an invariant"
    assert all("invariant 4" in m or "invariant 1" in m or "invariant 2" in m for m in broken), broken
    assert cve_search("6.0", range(160)) == []
    assert cve_search("6.18", range(160)) == []


# --------------------------------------------------------------------------- fork


def test_fork_of_unfaulted_vma(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    child = sim.fork(parent)
    assert layout(sim, child) == layout(sim, parent)
    # anon_vma_fork: "Don't bother if the parent process has no anon_vma here"
    [v] = vmas(sim, child)
    assert v["anon_vma"] is None and v["chain_len"] == 0
    assert_counts(sim, mm=2, vma=2, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


def test_fork_of_faulted_vma(sim):
    parent = sim.spawn()
    n = 3
    sim.mmap(parent, n * PAGE, addr=X)
    write_all(sim, parent, X, n)
    pv = vmas(sim, parent)[0]
    child = sim.fork(parent)
    cv = vmas(sim, child)[0]
    assert layout(sim, child) == layout(sim, parent)
    # copy_page_range shares every anon page COW: same page in both, mapcount 2
    ppages = pages_of(sim, parent, X, n)
    assert pages_of(sim, child, X, n) == ppages
    assert_counts(sim, mm=2, vma=2, page=n, pte=2 * n)
    if is_chain_era(sim):
        # anon_vma_fork: clone the parent's chain (1 AVC) + own new anon_vma and its AVC
        assert_counts(sim, anon_vma=2, anon_vma_chain=3)
        assert cv["anon_vma"] is not None and cv["anon_vma"] != pv["anon_vma"]
        assert (pv["chain_len"], cv["chain_len"]) == (1, 2)
    else:
        # anon_vma_link: the child VMA joins the same anon_vma, nothing is allocated
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
        assert cv["anon_vma"] == pv["anon_vma"]
    for h in ppages:
        row = walk_one(sim, h)
        # the page stays in the parent's anon_vma, whose list now holds the parent VMA and
        # the child VMA (2.6.34: the child's cloned AVC)
        assert row["anon_vma"] == pv["anon_vma"]
        assert row["vmas_visited"] == 2
        assert row["mappings_found"] == row["mapcount"] == 2


def test_fork_allocates_per_faulted_vma(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    sim.mmap(parent, 2 * PAGE, addr=X + 4 * PAGE)  # not adjacent: own anon_vma
    write_all(sim, parent, X + 4 * PAGE, 2)
    sim.mmap(parent, 2 * PAGE, addr=X + 8 * PAGE)  # never faulted
    before = counts(sim)
    assert before["anon_vma"] == 2
    sim.fork(parent)
    after = counts(sim)
    assert after["vma"] - before["vma"] == 3
    if is_chain_era(sim):
        # +1 anon_vma and +2 AVC per faulted VMA, nothing for the unfaulted one
        assert after["anon_vma"] - before["anon_vma"] == 2
        assert after["anon_vma_chain"] - before["anon_vma_chain"] == 4
    else:
        assert after["anon_vma"] == before["anon_vma"]
        assert after["anon_vma_chain"] == 0


def test_fork_of_vmas_sharing_an_anon_vma(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    sim.mmap(parent, 2 * PAGE, addr=X + 2 * PAGE, prot="rwx")
    write_all(sim, parent, X, 4)
    pv = vmas(sim, parent)
    assert pv[0]["anon_vma"] == pv[1]["anon_vma"]  # prepare-time neighbour reuse
    child = sim.fork(parent)
    cv = vmas(sim, child)
    if is_chain_era(sim):
        # anon_vma_fork runs per VMA: each child VMA gets its own new anon_vma
        assert cv[0]["anon_vma"] != cv[1]["anon_vma"]
        assert [v["chain_len"] for v in cv] == [2, 2]
        assert_counts(sim, anon_vma=3, anon_vma_chain=6)
    else:
        assert cv[0]["anon_vma"] == cv[1]["anon_vma"] == pv[0]["anon_vma"]
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)


def test_fork_generations_chain_length(sim):
    k_max = 3
    p0 = sim.spawn()
    sim.mmap(p0, 2 * PAGE, addr=X)
    write_all(sim, p0, X, 2)
    gen = [p0]
    for _ in range(k_max):
        gen.append(sim.fork(gen[-1]))
    avs = [vmas(sim, p)[0]["anon_vma"] for p in gen]
    if is_chain_era(sim):
        # generation k clones its parent's k AVCs and adds its own: chain length k + 1
        assert [vmas(sim, p)[0]["chain_len"] for p in gen] == [k + 1 for k in range(k_max + 1)]
        assert len(set(avs)) == k_max + 1
        # one anon_vma per generation; AVCs 1 + 2 + ... + (k_max + 1)
        assert_counts(
            sim,
            anon_vma=k_max + 1,
            anon_vma_chain=(k_max + 1) * (k_max + 2) // 2,
        )
    else:
        assert len(set(avs)) == 1
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    for h in pages_of(sim, p0, X, 2):
        row = walk_one(sim, h)
        # every generation maps the page; the oldest anon_vma's list holds one entry per
        # generation (2.6.34: p0's AVC plus one cloned AVC in every descendant)
        assert row["mapcount"] == row["mappings_found"] == k_max + 1
        assert row["vmas_visited"] == k_max + 1
        assert row["anon_vma"] == avs[0]


@pytest.mark.parametrize("gens", [2, 4])
def test_fork_then_parent_exit_generations(sim, gens):
    """docs/contract.md#reference-numbers: fork -> parent exits, repeated, grows the chain linearly in 2.6.34."""
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=X)
    write_all(sim, p, X, 2)
    root_av = vmas(sim, p)[0]["anon_vma"]
    hs = pages_of(sim, p, X, 2)
    for _ in range(gens):
        c = sim.fork(p)
        sim.exit(p)
        p = c
    assert pids(sim) == [p]
    assert pages_of(sim, p, X, 2) == hs  # never written after fork: same pages
    if is_chain_era(sim):
        # no level can be freed: the survivor's chain links every ancestor's anon_vma --
        # unless anon_vma_fork reuses an abandoned level (3.19 degree, 6.0 active VMAs): then
        # three levels at most, as in test_generation_chain_stays_bounded_with_reuse
        levels = gens + 1 if ERA_RULES[sim.era]["fork_reuse"] == "never" else min(gens + 1, 3)
        assert vmas(sim, p)[0]["chain_len"] == levels
        assert_counts(sim, anon_vma=levels, anon_vma_chain=levels)
    else:
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)
    row = walk_one(sim, hs[0])
    assert row["anon_vma"] == root_av
    assert row["vmas_visited"] == 1  # only the survivor's VMA is left on that list
    assert row["mapcount"] == row["mappings_found"] == 1
    # sole mapper writes: do_wp_page reuses the page; 2.6.34 page_move_anon_rmap moves it to
    # the survivor's own anon_vma, older levels stay (still linked by the chain)
    sim.touch(p, X, PAGE, write=True)
    assert page_at(sim, p, X) == hs[0]
    row = walk_one(sim, hs[0])
    assert row["anon_vma"] == vmas(sim, p)[0]["anon_vma"]
    if is_chain_era(sim):
        assert row["anon_vma"] != root_av
        assert_counts(sim, anon_vma=levels, anon_vma_chain=levels)


def test_fork_skips_ptes_of_vma_without_anon_vma(sim):
    """copy_page_range: "Don't copy ptes where a page fault will fill them correctly" --
    a private VMA without an anon_vma (only zero-page PTEs) is not copied at fork; a VMA
    with an anon_vma has all its PTEs copied, zero-page ones included."""
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X, prot="r")
    sim.touch(parent, X, 3 * PAGE, write=False)
    sim.mmap(parent, 3 * PAGE, addr=X + 8 * PAGE, prot="rw")
    sim.touch(parent, X + 8 * PAGE, 3 * PAGE, write=False)
    sim.touch(parent, X + 8 * PAGE, PAGE, write=True)
    assert_counts(sim, pte=6, page=1)
    sim.fork(parent)
    # child: 0 PTEs for the first VMA, 3 (2 zero + 1 anon, shared COW) for the second
    assert_counts(sim, pte=9, page=1)


def test_fork_skips_dontfork_vmas(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    write_all(sim, parent, X, 3)
    hs = pages_of(sim, parent, X, 3)
    sim.madvise(parent, X + PAGE, PAGE, "dontfork")
    child = sim.fork(parent)
    # dup_mmap: "if (mpnt->vm_flags & VM_DONTCOPY) continue;" -- no VMA, no PTEs there
    assert [(s, e) for s, e, _ in flags_of(sim, child)] == [(X, X + PAGE), (X + 2 * PAGE, X + 3 * PAGE)]
    assert no_page_outside_vmas(sim, child, X + PAGE)
    assert [page_at(sim, child, X), page_at(sim, child, X + 2 * PAGE)] == [hs[0], hs[2]]
    assert walk_one(sim, hs[1])["mapcount"] == 1
    assert_counts(sim, page=3, pte=5)
