"""The 7.0 anon_vma rework and its 7.0-rc1 regression (issue 19), against the kernel rules.

Sources read (paraphrased, never copied): the 7.0-rc6 tree (julianw1010/hydra-linux-7.0.0,
root commit "Linux 7.0.0-rc6") mm/rmap.c 150-157 (anon_vma_chain_assign: list_add at the
head of the VMA's chain, no tree insert), 270-288 (maybe_reuse_anon_vma), 320-371
(anon_vma_clone: pass 1 allocates every entry walking src head -> tail, pass 2 inserts and
offers fork reuse walking dst tail -> head), 378-442 (anon_vma_fork: anon_vma, then its
entry, then the clone), 452-467 (cleanup_partial_anon_vmas, with 3a206a8649f8's clearing of
vma->anon_vma), 479-537 (unlink_anon_vmas and its VM_WARN_ONs); mm/vma.c 609-638
(dup_anon_vma presets dst->anon_vma, then clones). 6.18.2 mm/rmap.c 279-326 (anon_vma_clone
links each entry as it allocates it; ENOMEM clears dst->anon_vma, then unlinks) and 333-393
(anon_vma_fork clones first). 7.0-rc1 = 7.0-rc6 without 3a206a8649f8 (survey.md section 6).

Expected values are derived by hand from those rules, never read from a run.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import PAGE, X, invariant_number, vmas

MAINLINE = ("7.0-rc1", "7.0")


def own_av(sim, pid, addr=X):
    return next(v["anon_vma"] for v in vmas(sim, pid) if v["start"] <= addr < v["end"])


def sites_delta(sim, before):
    return {k: n - before.get(k, 0) for k, n in sim.allocation_sites().items() if n != before.get(k, 0)}


def check_breaks(sim, invariant, match=None):
    with pytest.raises(rmapsim.InvariantViolation, match=match) as e:
        sim.check()
    assert invariant_number(e.value) == invariant, e.value


def test_presets_and_knobs():
    # 6.18 stays the default; 7.0-rc1 and 7.0 are 6.18 plus the series' knobs, and differ
    # from each other only in the fix of 3a206a8649f8
    assert rmapsim.DEFAULT_ERA == "6.18"
    assert list(rmapsim.eras())[-3:] == ["6.18", "7.0-rc1", "7.0"]
    base = rmapsim.Policy.preset("6.18").as_dict()
    rc1 = rmapsim.Policy.preset("7.0-rc1").as_dict()
    fixed = rmapsim.Policy.preset("7.0").as_dict()
    changed = {"clone_reverses_chain": "true", "fork_alloc_first": "true", "clone_allocs_first": "true"}
    assert {k for k in base if base[k] != fixed[k]} == set(changed)
    assert all(fixed[k] == v for k, v in changed.items())
    assert {k for k in fixed if fixed[k] != rc1[k]} == {"clone_error_clears_anon_vma"}
    assert (rc1["clone_error_clears_anon_vma"], fixed["clone_error_clears_anon_vma"]) == ("false", "true")


# ------------------------------------------------ the regression: stale vma->anon_vma


def stale_setup(era):
    """Steps 1-2 of the survey's reproducer: M = [X+1, X+2) written (anon_vma A, one entry),
    then read-only (a faulted VMA keeps VM_ACCOUNT); P = [X, X+1) read-write, unfaulted."""
    sim = rmapsim.Simulator(era=era, seed=0)
    p = sim.spawn()
    sim.mmap(p, PAGE, addr=X + PAGE)
    sim.touch(p, X + PAGE, PAGE, write=True)
    sim.mprotect(p, X + PAGE, PAGE, "r")
    sim.mmap(p, PAGE, addr=X)
    assert [(v["start"], v["anon_vma"] is None) for v in vmas(sim, p)] == [(X, True), (X + PAGE, False)]
    sim.check()
    return sim, p, own_av(sim, p, X + PAGE)


@pytest.mark.parametrize("era", ("6.18", *MAINLINE))
def test_stale_anon_vma_after_a_failed_merge_clone(era):
    # Step 3: mprotect(M, rw) makes M's flags equal P's: a merge into the unfaulted P, so
    # dup_anon_vma(P, M) presets P->anon_vma = A and clones M's one-entry chain: exactly one
    # allocation, anon_vma_chain@anon_vma_clone, which is failed here. 6.18 (its enomem
    # path) and 7.0 (cleanup_partial_anon_vmas since 3a206a8649f8) clear P->anon_vma again;
    # 7.0-rc1 leaves P pointing at A with an empty chain, uncounted in num_active_vmas.
    buggy = era == "7.0-rc1"
    sim, p, a = stale_setup(era)
    before = dict(sim.allocation_sites())
    sim.inject_enomem(nth=1)
    # vma_modify returns -ENOMEM for a merge that failed for memory (vmg_nomem, 7.0-rc6
    # mm/vma.c 1649-1661): mprotect fails and M keeps its protection
    with pytest.raises(rmapsim.OutOfMemory, match=r"\(anon_vma_chain@anon_vma_clone\)"):
        sim.mprotect(p, X + PAGE, PAGE, "rw")
    sim.inject_enomem(None)
    assert sites_delta(sim, before) == {"anon_vma_chain@anon_vma_clone": 1}
    pv, mv = vmas(sim, p)
    assert (pv["start"], pv["end"], pv["anon_vma"], pv["chain_len"]) == (X, X + PAGE, a if buggy else None, 0)
    assert (mv["start"], mv["prot"], mv["anon_vma"], mv["chain_len"]) == (X + PAGE, frozenset("r"), a, 1)
    if buggy:
        check_breaks(sim, 3, "is not on its chain")
    else:
        sim.check()

    # Step 4: munmap(P): unlink_anon_vmas(P) sees P->anon_vma = A and takes one active VMA
    # off A, which M still uses: A counts 0 active VMAs for 1 (invariant 5).
    sim.munmap(p, X, PAGE)
    if buggy:
        check_breaks(sim, 5, r"num_active_vmas 0 / num_children 1 but a recount gives 1 / 1")
    else:
        sim.check()

    # Step 5: fork. maybe_reuse_anon_vma offers A (the child VMA's only candidate): taken iff
    # num_active_vmas == 0 and num_children <= 1 (A's self link). 7.0-rc1: the child reuses
    # A although M is live (the wrong reuse); elsewhere the child gets its own anon_vma,
    # chained [A, own].
    c = sim.fork(p)
    [cv] = vmas(sim, c)
    if buggy:
        assert (cv["anon_vma"], cv["chain_len"]) == (a, 1)
        check_breaks(sim, 5, r"num_active_vmas 1 / num_children 1 but a recount gives 2 / 1")
    else:
        assert cv["anon_vma"] != a and cv["chain_len"] == 2
        sim.check()

    # Step 6: the child exits (A: 1 -> 0 active), then the parent: unlinking M empties A's
    # tree and takes A's count below zero; its second pass warns on num_active_vmas
    # (VM_WARN_ON, rmap.c 535) and frees A. Nothing is left, but check() still reports what
    # the kernel warned about.
    sim.exit(c)
    sim.exit(p)
    assert sim.counts()["anon_vma"] == 0 and sim.counts()["anon_vma_chain"] == 0
    if buggy:
        check_breaks(sim, 5, r"the kernel would warn, operation #\d+ \(exit\): unlink_anon_vmas: num_active_vmas")
    else:
        sim.check()


def test_stale_anon_vma_through_a_successful_mmap():
    # vma_expand's dup_anon_vma(target=prev, next) fails: vma_merge_new_range gives up and
    # mmap goes on with a new VMA (7.0-rc6 mm/vma.c __mmap_region 2750-2762), so the stale
    # prev survives a *successful* mmap. prev [X, X+1) unfaulted, next [X+2, X+3) written;
    # the mmap of the hole [X+1, X+2) merges both: the merge comes before any VMA is
    # allocated, so its one clone allocation is the mmap's first; failed here.
    for era in ("6.18", *MAINLINE):
        sim = rmapsim.Simulator(era=era, seed=0)
        p = sim.spawn()
        sim.mmap(p, PAGE, addr=X)
        sim.mmap(p, PAGE, addr=X + 2 * PAGE)
        sim.touch(p, X + 2 * PAGE, PAGE, write=True)
        a = own_av(sim, p, X + 2 * PAGE)
        before = dict(sim.allocation_sites())
        sim.inject_enomem(nth=1)
        sim.mmap(p, PAGE, addr=X + PAGE)
        sim.inject_enomem(None)
        assert sites_delta(sim, before) == {"vm_area_struct@mmap_region": 1, "anon_vma_chain@anon_vma_clone": 1}
        assert [(v["start"], v["anon_vma"]) for v in vmas(sim, p)] == [
            (X, a if era == "7.0-rc1" else None),
            (X + PAGE, None),
            (X + 2 * PAGE, a),
        ], era
        if era == "7.0-rc1":
            check_breaks(sim, 3, "is not on its chain")
        else:
            sim.check()


# ------------------------------------------------ allocation order (fork_alloc_first)


def faulted_parent(era, npages=2):
    sim = rmapsim.Simulator(era=era, seed=0)
    p = sim.spawn()
    sim.mmap(p, npages * PAGE, addr=X)
    sim.touch(p, X, npages * PAGE, write=True)
    return sim, p


# A fork of a process with one faulted VMA (chain [A]) allocates, in the kernel's order:
# dup_mm's mm_struct, dup_mmap's vm_area_struct, then anon_vma_fork. 6.18: the clone's
# entry, then the child's anon_vma and its entry. 7.0: the anon_vma and its entry first.
FORK_ORDER = {
    "6.18": ["anon_vma_chain@anon_vma_clone", "anon_vma@anon_vma_fork", "anon_vma_chain@anon_vma_fork"],
    "7.0": ["anon_vma@anon_vma_fork", "anon_vma_chain@anon_vma_fork", "anon_vma_chain@anon_vma_clone"],
}
FORK_ORDER["7.0-rc1"] = FORK_ORDER["7.0"]


@pytest.mark.parametrize("era", ("6.18", *MAINLINE))
def test_fork_allocation_counts_and_order(era):
    sim, p = faulted_parent(era)
    before = dict(sim.allocation_sites())
    sim.fork(p)
    head = {"mm_struct@dup_mm": 1, "vm_area_struct@dup_mmap": 1}
    assert sites_delta(sim, before) == {**head, **dict.fromkeys(FORK_ORDER[era], 1)}
    for k, site in enumerate(FORK_ORDER[era], start=3):
        sim, p = faulted_parent(era)
        live = sim.counts()
        sim.inject_enomem(nth=k)
        with pytest.raises(rmapsim.OutOfMemory, match=f"\\({site}\\)"):
            sim.fork(p)
        sim.inject_enomem(None)
        # the failed child is torn down: the parent's objects only, and sound
        assert sim.pids() == [p]
        assert {x: sim.counts()[x] for x in ("anon_vma", "anon_vma_chain", "vma")} == {
            x: live[x] for x in ("anon_vma", "anon_vma_chain", "vma")
        }
        sim.check()


def generations(era):
    """P1 writes (R) and forks P2 (X), P2 forks P3 (Y); P2 exits. X then has no active VMA
    and one child (Y): the only reusable anon_vma on P3's chain (R has two children)."""
    sim, p1 = faulted_parent(era, 1)
    p2 = sim.fork(p1)
    p3 = sim.fork(p2)
    x = own_av(sim, p2)
    sim.exit(p2)
    return sim, p3, x


@pytest.mark.parametrize("era", ("6.18", *MAINLINE))
def test_a_reusing_fork_allocates_first_only_in_7_0(era):
    # P3's fork clones its three entries and reuses X. 6.18 allocates no anon_vma then;
    # 7.0 allocated the anon_vma and its entry before the clone and frees both unused.
    sim, p3, x = generations(era)
    before = dict(sim.allocation_sites())
    live = sim.counts()["anon_vma"]
    p4 = sim.fork(p3)
    assert own_av(sim, p4) == x
    assert sim.counts()["anon_vma"] == live
    want = {"mm_struct@dup_mm": 1, "vm_area_struct@dup_mmap": 1, "anon_vma_chain@anon_vma_clone": 3}
    if era != "6.18":
        want |= {"anon_vma@anon_vma_fork": 1, "anon_vma_chain@anon_vma_fork": 1}
    assert sites_delta(sim, before) == want
    ws = sim.write_stats()["fork"]
    # objects of the last fork alone are not separable here; over the three forks 7.0 made
    # one anon_vma and one entry more than it kept
    extra = 0 if era == "6.18" else 1
    assert (ws["anon_vma_alloc"], ws["anon_vma_free"]) == (2 + extra, extra)
    sim.check()


# ------------------------------------------------ clone_allocs_first


@pytest.mark.parametrize("era", ("6.18", *MAINLINE))
def test_a_failed_clone_touches_no_tree_in_7_0(era):
    # The child's VMA is chained to two anon_vmas. mprotect of its middle page splits it:
    # vm_area_struct@__split_vma, then two clone entries; the second is failed. 6.18 linked
    # the first (one tree insert, the root lock) and unlinks it (one remove, the lock again);
    # 7.0 allocated it unlinked and frees it: no tree, no lock.
    sim, p = faulted_parent(era, 3)
    c = sim.fork(p)
    before = dict(sim.allocation_sites())
    sim.inject_enomem(nth=3)
    with pytest.raises(rmapsim.OutOfMemory, match=r"\(anon_vma_chain@anon_vma_clone\)"):
        sim.mprotect(c, X + PAGE, PAGE, "r")
    sim.inject_enomem(None)
    assert sites_delta(sim, before) == {"vm_area_struct@__split_vma": 1, "anon_vma_chain@anon_vma_clone": 2}
    ws = sim.write_stats()["mprotect"]
    assert (ws["avc_alloc"], ws["avc_free"], ws["vma_alloc"], ws["vma_free"]) == (1, 1, 1, 1)
    linked = era == "6.18"
    assert (ws["index_insert"], ws["index_remove"], ws["lock_acquire"]) == ((1, 1, 2) if linked else (0, 0, 0))
    assert [(v["start"], v["end"]) for v in vmas(sim, c)] == [(X, X + 3 * PAGE)]
    sim.check()


# ------------------------------------------------ chain order and reuse (clone_reverses_chain)


def fork_line(era, npages, touch=False):
    """P1 writes npages at X; P1 forks P2, P2 forks P3, ... up to P5 (each child writing
    its first page when touch, with check() after each): (sim, [P1, ..., P5])."""
    sim, p1 = faulted_parent(era, npages)
    ps = [p1]
    for _ in range(4):
        ps.append(sim.fork(ps[-1]))
        if touch:
            sim.touch(ps[-1], X, PAGE, write=True)
            sim.check()
    return sim, ps


def chain_of(sim, pid):
    [chain] = [v["chain"] for v in sim.graph()["vmas"] if v["pid"] == pid]
    return chain


@pytest.mark.parametrize("era", ("6.18", *MAINLINE))
def test_7_0_reverses_every_clone_and_reuses_in_that_order(era):
    # Forks P1 -> P2 -> P3 -> P4 -> P5 (own anon_vmas R, X, Y, Z, W), then P2 and P3 exit:
    # X and Y have no active VMA and one child each. 6.18 keeps chains oldest first and
    # offers R, X, ... in that order: P5's fork reuses X. 7.0's pass 1 reverses the source
    # (list_add while walking it head -> tail) and then puts its own at the head; pass 2
    # offers candidates from the source's head. Chains head -> tail: P2 [X, R], P3 [Y, R, X],
    # P4 [Z, X, R, Y], P5 [W, Y, R, X, Z], so P5's fork meets W (active), then Y: reused.
    # (graph() lists a chain oldest entry first, i.e. tail -> head.)
    sim, ps = fork_line(era, 1)
    r, x, y, z, w = (own_av(sim, q) for q in ps)
    tail_first = {
        "6.18": {ps[2]: [r, x, y], ps[3]: [r, x, y, z], ps[4]: [r, x, y, z, w]},
        "7.0": {ps[2]: [x, r, y], ps[3]: [y, r, x, z], ps[4]: [z, x, r, y, w]},
    }
    want = tail_first["6.18" if era == "6.18" else "7.0"]
    assert {q: chain_of(sim, q) for q in want} == want
    sim.exit(ps[1])
    sim.exit(ps[2])
    p6 = sim.fork(ps[4])
    assert own_av(sim, p6) == (x if era == "6.18" else y)
    sim.check()


@pytest.mark.parametrize("era", ("6.18+clone_reverses_chain=true", *MAINLINE))
def test_reversed_chains_are_sound_with_a_refcounted_root(era):
    # 2.6.34-rc1's reversed clone freed the root before its children (no refcount then);
    # since 2.6.35 non-roots pin the root, so exiting in any order frees everything and the
    # checker holds after every step
    sim, ps = fork_line(era, 2, touch=True)
    for q in (ps[0], ps[2], ps[4], ps[1], ps[3]):
        sim.exit(q)
        sim.check()
    assert sim.counts()["anon_vma"] == 0 and sim.counts()["anon_vma_chain"] == 0


# ------------------------------------------------ the fuzzer against every era


@pytest.mark.parametrize("seed", (1, 2))
def test_the_fuzzer_finds_the_regression_and_its_trace_holds_elsewhere(seed):
    # the native fuzzer (allocation failures injected at 2% of operations) meets 7.0-rc1's
    # stale anon_vma as invariant 3 right after the failed merge; its shrunk reproducer
    # replays to that violation in 7.0-rc1 and holds, checked after every operation, in
    # every other era (the trace's operations exist in each; their results may differ)
    from rmapsim import _core

    r = _core.fuzz("7.0-rc1", seed=seed, max_ops=300_000, fail_rate=0.02)
    assert r["violation"] is not None and invariant_number(r["violation"]) == 3, r["violation"]
    assert "is not on its chain" in r["violation"]
    ops = [line for line in r["trace"].splitlines() if line and not line.startswith("#")]
    assert 3 <= len(ops) <= 20 and any(line.startswith("enomem") for line in ops)
    for era in rmapsim.eras():
        res = rmapsim.Simulator(era=era, seed=seed).apply(r["trace"], check_each=True)
        if era == "7.0-rc1":
            assert res.violation() is not None and invariant_number(res.violation()) == 3
        elif era not in ("2.6.34-rc1", "3.19"):
            assert res.violation() is None, (era, res.violation())


def test_the_fixed_presets_survive_the_same_fuzzing():
    # the same seeds and budget as above: 7.0 and 6.18 hold (check after every operation,
    # the full oracle every 16th)
    from rmapsim import _core

    for era in ("6.18", "7.0"):
        for seed in (1, 2):
            r = _core.fuzz(era, seed=seed, max_ops=300_000, fail_rate=0.02)
            assert r["violation"] is None and r["ops"] == 300_000, (era, seed, r["violation"])
