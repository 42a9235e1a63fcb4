"""The differential test: the same random calls on all ten eras, results, page-level state,
sharing, swap and the VMA boundaries of eras with the same merge rule compared.

The model and what each harness checks: the docstring of page_model.py.
"""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
import pytest
from hypothesis import event, given

import rmapsim
from rmapsim.testing.ops import DIFFERENTIAL_KINDS, HypothesisDraw, OpGenerator, SimulatorState

from helpers import (
    ADVICE,
    BUGGY_BREAKS,
    ERA_RULES,
    EVERY_ERA,
    FIRST_BREAK,
    PAGE,
    anon_pages,
    entry_kinds,
    invariant_number,
    merge_allowed,
    mergeable_both_ways,
    mergeable_either_way,
    page_layout,
    page_map,
    pids,
    sharing_partition,
    vmas,
)
from lockstep import HandleMap, _note, apply_op, at_least, coarser, translate_pages
from model_checks import check_rmap, check_vma_rules, page_level_state, simple_merge
from page_model import (
    KNOWN_DEFECT_HITS,
    MAX_PROCS,
    MPROTECT_PROTS,
    PROTS,
    SWAP,
    WIN_LO,
    WINDOW,
    copy_vma_into_unfaulted,
)

# --------------------------------------------------------------------------- differential

# ops are drawn from its state; every era gets the same calls. The newest era: never
# detached (the buggy eras are once their state can no longer be compared, the "simple"
# merge eras when they meet the copy_vma defect).
PRIMARY = "6.18"
# how often each buggy era broke in the differential, and by which invariant (printed with -s)
DIFF_STATS = {"runs": 0, "broke": {era: Counter() for era in BUGGY_BREAKS}, "detached": Counter()}


def _runs(addrs):
    """Maximal runs of consecutive page addresses: [(start, npages)]."""
    out = []
    for a in sorted(addrs):
        if out and out[-1][0] + out[-1][1] * PAGE == a:
            out[-1][1] += 1
        else:
            out.append([a, 1])
    return [tuple(r) for r in out]


#: The differential's generator: rmapsim.testing.ops with the cross-era mix (no file
#: mappings, no pid or page errors, no fork_many/touch_many) and this harness's prots;
#: memory operations mostly where there is memory, and try_to_unmap when there is no swap
#: entry to touch (which makes some).
GEN = OpGenerator(
    kinds=DIFFERENTIAL_KINDS,
    max_procs=MAX_PROCS,
    window=(WIN_LO, WINDOW),
    prots=PROTS,
    mprotect_prots=MPROTECT_PROTS,
    advice=ADVICE,
    rare_advice=(),
    files=(),
    max_pages=6,
    swap_fallback="try_to_unmap",
)


def draw_op(data, sims, active, broken=()):
    """One random call ("method", args, kwargs), arguments chosen from the primary's state.
    Page handles are the primary's (translated per era when applied). broken: buggy eras
    whose check() reported their bug."""
    sim = sims[PRIMARY]

    def known():
        # pages every era can name (a page never mapped has no (pid, addr) to learn it from)
        return [h for h in anon_pages(sim) if all(h in active[e].fwd for e in active if e != PRIMARY)]

    op = GEN(SimulatorState(sim, entries=lambda: entry_kinds(sim), known=known), HypothesisDraw(data))
    if op[0] == "mremap" and era_dependent_mremap(op, sims, active, broken):
        return ("noop", (), {})
    return op


def era_dependent_mremap(op, sims, active, broken=()):
    """Whether the result of this mremap depends on the era's VMA boundaries.

    Whether the old range lies in one VMA and ends it is VMA-level, and VMA boundaries
    differ between eras by kernel rule: only where every era sees the same is the result
    era independent (a broken buggy era is not asked: it is detached if it differs). So is
    a pure move over several VMAs (6.17+ only). Also keep clear of growing in place next to
    a mergeable VMA (see the state machine's mremap rule)."""
    pid, addr, old_len, new_len = op[1]
    npages, new_n, new_addr = old_len // PAGE, new_len // PAGE, op[2]["new_addr"]
    old_end = addr + old_len
    shapes = set()
    for era in active:
        if era in broken:
            continue
        s = sims[era]
        evs = vmas(s, pid)
        v = next((w for w in evs if w["start"] <= addr < w["end"]), None)
        inside = v is not None and old_end <= v["end"]
        ends = inside and old_end == v["end"]
        if ends and new_addr is None and new_n > npages:
            nxt = next((w for w in evs if w["start"] >= v["end"]), None)
            if nxt is not None and mergeable_either_way(era, dict(v, end=addr + new_n * PAGE), nxt):
                return True
        # 6.17+ move a range over several VMAs where earlier kernels say EFAULT
        multi = not inside and new_addr is not None and new_n == npages and s.policy()["mremap_move_multi"] == "true"
        shapes.add((inside, ends, v is not None and v["anon_vma"] is not None, multi))
    return len(shapes) > 1 and (new_addr is not None or new_n > npages)


def walks_rmap(op):
    return op[0] == "try_to_unmap" or (op[0] == "madvise" and op[1][3] == "pageout")


def reveal_ops(sim):
    """Calls that read-fault every swap entry of every process (making unreadable pages
    readable first), so that the entries of one slot end up mapping one page."""
    ops = []
    for pid in pids(sim):
        lay = page_layout(sim, pid)
        unreadable = [a for a, v in lay.items() if not v[0]]
        for a, n in _runs(unreadable):
            ops.append(("mprotect", (pid, a, n * PAGE, "r"), {}))
        for a, n in _runs(lay):
            ops.append(("touch", (pid, a, n * PAGE), {"write": False}))
    return ops


def vma_layout(sim, pid):
    return [(v["start"], v["end"], v["pgoff"], v["prot"], v["flags"]) for v in vmas(sim, pid)]


class Differential:
    """The same calls on every era. `active` holds the eras still compared, each with the
    handle map from the primary's pages to its own."""

    def __init__(self):
        self.sims = {era: rmapsim.Simulator(era=era, seed=0) for era in EVERY_ERA}
        self.active = {era: HandleMap() for era in EVERY_ERA}
        self.logs = {era: [] for era in EVERY_ERA}  # the calls as each era got them
        self.broken = {}  # buggy era -> the invariant its first break named
        self.detached = {}  # era -> why it is no longer compared
        self.tainted = set()  # pids whose mm came from fork (cleared by exec)

    def detach(self, era, why):
        _note(f"{era} no longer compared: {why}")
        self.active.pop(era, None)
        self.detached[era] = why

    def step(self, op):
        _note(repr(op))
        for era in list(self.active):
            if era in self.broken and walks_rmap(op):
                self.detach(era, "an rmap walk on its broken state")
        lays = {}
        if op[0] == "mremap":
            # the page layout each era had before: is this move the copy_vma defect there?
            lays = {e: page_layout(self.sims[e], op[1][0]) for e in self.active if simple_merge(e)}
        results = {}
        for era, hmap in list(self.active.items()):
            eop = op if era == PRIMARY else (op[0], *translate_pages(op[0], op[1], op[2], hmap))
            self.logs[era].append(eop)
            results[era] = apply_op(self.sims[era], eop)
        rp = results[PRIMARY]
        for era, r in results.items():
            if era in self.broken and r != rp:
                # a use-after-free detected, or VMAs merged by the bug's shared anon_vma
                self.detach(era, f"{op} -> {r} on its broken state")
                continue
            assert r == rp, f"{op}: {PRIMARY} -> {rp}, {era} -> {r}"
        if op[0] == "fork" and rp[0] == "ok":
            self.tainted.add(rp[1])
        if op[0] == "exec" and rp[0] == "ok":
            self.tainted.discard(op[1][0])
        if op[0] == "mremap" and rp[0] == "ok":
            base = page_level_state(self.sims[PRIMARY], full=False)
            for era, lay in lays.items():
                if era in self.active and copy_vma_into_unfaulted(lay, op[1][1], op[1][3] // PAGE, rp[1]):
                    # the known copy_vma defect: the page tables are right, the moved pages'
                    # VMA lost its anon_vma (check() reports a dangling page->mapping or a
                    # mapping no walk finds, if a page moved)
                    assert page_level_state(self.sims[era], full=False) == base, era
                    try:
                        self.sims[era].check()
                    except rmapsim.InvariantViolation as e:
                        assert invariant_number(e) in (1, 2), f"{era}: {e}"
                    KNOWN_DEFECT_HITS["copy_vma"] += 1
                    self.detach(era, f"{op} merged into an unfaulted neighbour (copy_vma defect)")
        for era in list(self.active):
            try:
                self.sims[era].check()
            except rmapsim.InvariantViolation as e:
                if era not in BUGGY_BREAKS:
                    raise
                n = invariant_number(e)
                assert n in BUGGY_BREAKS[era], f"{era}: {e}"
                if era not in self.broken:
                    if FIRST_BREAK[era] is not None:
                        assert n == FIRST_BREAK[era], f"{era} first broke with: {e}"
                    _note(f"{era} broke: {e}")
                    self.broken[era] = n
        self.compare()

    def compare(self):
        prim = self.sims[PRIMARY]
        cross = page_level_state(prim, full=False)
        states = {}
        for era, hmap in self.active.items():
            s = self.sims[era]
            if era != PRIMARY:
                # page tables, prot/flags/pgoff per page, sharing, swap usage
                assert page_level_state(s, full=False) == cross, f"{era} differs from {PRIMARY}"
                hmap.learn(prim, s)  # and the same page is the same page over time
                for h in anon_pages(prim):
                    if h in hmap.fwd:
                        a = prim.page_info(h)["swap_slot"] is None
                        b = s.page_info(hmap.fwd[h])["swap_slot"] is None
                        assert a == b, f"{era}: page {h} swap-cache state differs"
            states[era] = page_level_state(s)
        # Within one merge rule, also zero-page entries and which pages' VMAs have an
        # anon_vma (the buggy eras too: their bugs break the rmap, not the page tables).
        reps = {}
        for era in self.active:
            if era not in self.broken:
                reps.setdefault(ERA_RULES[era]["merge"], era)
        for era in self.active:
            rep = reps.get(ERA_RULES[era]["merge"])
            if rep is not None:
                assert states[era] == states[rep], f"{era} differs from {rep}"
        # VMA boundaries: same merge rule; for forked processes also the same linking. The
        # sound eras set the reference; a buggy era that merged VMAs the reference keeps
        # apart (see coarser) is no longer compared.
        live = pids(prim)
        base = {}
        order = [e for e in self.active if e not in BUGGY_BREAKS]
        order += [e for e in self.active if e in BUGGY_BREAKS and e not in self.broken]
        for era in order:
            s = self.sims[era]
            merged = None
            for pid in live:
                key = (ERA_RULES[era]["merge"],) + ((ERA_RULES[era]["linking"],) if pid in self.tainted else ())
                got = vma_layout(s, pid)
                ref = base.get((key, pid))
                if ref is None:
                    if era not in BUGGY_BREAKS:
                        base[(key, pid)] = (era, got)
                elif got != ref[1]:
                    assert era in BUGGY_BREAKS, f"pid {pid}: {era} cuts VMAs unlike {ref[0]}"
                    assert coarser(s, self.sims[ref[0]], [pid]), f"pid {pid}: {era} cuts VMAs unlike {ref[0]}"
                    merged = f"pid {pid}: merged VMAs {ref[0]} keeps apart"
            if merged:
                self.detach(era, merged)
                continue
            # each era's rmap walks find exactly the true mappings, by its own rules
            check_rmap(s, era=era)

    def replay_and_reveal(self):
        """Replay each era's calls on a fresh simulator (same era, same seed: the same
        handles), read every swap entry back there and compare the page partitions: the
        entries of one slot map one page, so this compares which entries share a slot now."""
        parts = {}
        for era in self.active:
            if era in self.broken:
                continue
            s = rmapsim.Simulator(era=era, seed=0)
            for op in self.logs[era]:
                apply_op(s, op)
            assert page_map(s) == page_map(self.sims[era]), "replay is not deterministic"
            results = [apply_op(s, op) for op in reveal_ops(s)]
            if era in BUGGY_BREAKS and ("error", "InvariantViolation") in results:
                continue  # a buggy era detected a use-after-free of its own making
            assert all(r[0] == "ok" for r in results), (era, results)
            assert SWAP not in entry_kinds(s).values()
            # every page of every VMA was read: zero-page entries no longer depend on the era
            parts[era] = (entry_kinds(s), sharing_partition(page_map(s)))
        for era, part in parts.items():
            assert part == parts[PRIMARY], f"{era}: swap slots shared differently"


def test_eras_agree_on_abstract_state():
    """The same random calls on all ten eras give the same results (returned values,
    exception classes) and the same page-level state (docs/contract.md#operations); VMA boundaries
    agree between eras with the same merge rule (and, for forked processes, linking); every
    era's rmap walks find exactly the true mappings. The buggy eras are compared too: their
    bugs break the rmap, not the page tables, so they must agree until an rmap walk
    (try_to_unmap, pageout) runs on their broken state or a result differs there.
    `pytest -s` prints how often the buggy eras broke and eras were detached."""
    before = {era: Counter(c) for era, c in DIFF_STATS["broke"].items()}
    runs0, det0 = DIFF_STATS["runs"], Counter(DIFF_STATS["detached"])
    _differential()
    broke = {era: dict(DIFF_STATS["broke"][era] - before[era]) for era in before}
    print(
        f"\ndifferential: {DIFF_STATS['runs'] - runs0} runs over {len(EVERY_ERA)} eras; buggy eras "
        f"broke (by invariant): {broke}; eras detached: {dict(DIFF_STATS['detached'] - det0)}; "
        f"copy_vma defect met: {KNOWN_DEFECT_HITS['copy_vma']} times in all"
    )


@at_least(80, 0)
@given(st.data())
def _differential(data):
    d = Differential()
    DIFF_STATS["runs"] += 1
    npages = data.draw(st.integers(1, 8), label="npages")
    start = [
        ("spawn", (), {}),
        ("mmap", (1, npages * PAGE), {"addr": WIN_LO + 8 * PAGE, "prot": "rw"}),
        ("touch", (1, WIN_LO + 8 * PAGE, npages * PAGE), {"write": True}),
    ]
    steps = data.draw(st.integers(1, 40), label="steps")
    reveal_at = data.draw(st.integers(0, steps - 1), label="replay-and-reveal at")
    for op in start:
        d.step(op)
    for i in range(steps):
        if i == reveal_at:
            d.replay_and_reveal()
        op = draw_op(data, d.sims, d.active, d.broken)
        event(f"op {op[0]}")
        d.step(op)
    # read every swap entry back in place: the partitions then cover the swap slots
    swapped = sum(1 for k in entry_kinds(d.sims[PRIMARY]).values() if k == SWAP)
    event(f"swap entries read back at the end: {min(swapped, 5)}{'+' if swapped >= 5 else ''}")
    for op in reveal_ops(d.sims[PRIMARY]):
        d.step(op)
    assert SWAP not in entry_kinds(d.sims[PRIMARY]).values()
    for era, n in d.broken.items():
        DIFF_STATS["broke"][era][n] += 1
        event(f"{era} broke (invariant {n})")
    for why in d.detached.values():
        kind = "copy_vma defect" if "copy_vma" in why else "merged VMAs" if "merged VMAs" in why else "broken state"
        DIFF_STATS["detached"][kind] += 1
        event(f"detached: {kind}")
    event(f"eras compared to the end: {len(d.active)}")


def test_differential_goes_past_the_copy_vma_defect():
    """A move of a faulted range back beside an unfaulted, pgoff-contiguous neighbour
    (rust/core/tests/scenarios.rs mremap_back_beside_unfaulted_prev_loses_the_anon_vma): the
    "simple" merge eras merge it into the neighbour and lose the anon_vma (the known
    defect: detached, page tables still right); 3.0-6.0 refuse the merge, 6.18 merges and
    gives the neighbour the anon_vma (dup_anon_vma). Those go on and still agree."""
    d = Differential()
    home, away = WIN_LO + 8 * PAGE, WIN_LO + 16 * PAGE
    for op in [
        ("spawn", (), {}),
        ("mmap", (1, 2 * PAGE), {"addr": home, "prot": "rw"}),
        ("touch", (1, home, 2 * PAGE), {"write": True}),
        ("mremap", (1, home, 2 * PAGE, 2 * PAGE), {"may_move": True, "new_addr": away}),  # pgoff kept
        ("mmap", (1, PAGE), {"addr": home - PAGE, "prot": "rw"}),  # unfaulted, pgoff contiguous
        ("mremap", (1, away, 2 * PAGE, 2 * PAGE), {"may_move": True, "new_addr": home}),
    ]:
        d.step(op)
    simple = {e for e in EVERY_ERA if simple_merge(e)}
    assert set(d.detached) == simple and all("copy_vma" in why for why in d.detached.values())
    assert set(d.active) == set(EVERY_ERA) - simple
    sims = d.sims
    # 3.0-6.0: two VMAs, the moved one keeps its anon_vma; 6.18: one VMA with an anon_vma
    for era in d.active:
        vs = vmas(sims[era], 1)
        if ERA_RULES[era]["merge"] == "singular":
            assert [(v["start"], v["end"]) for v in vs] == [(home - PAGE, home), (home, home + 2 * PAGE)], era
            assert vs[0]["anon_vma"] is None and vs[1]["anon_vma"] is not None, era
        else:
            assert [(v["start"], v["end"]) for v in vs] == [(home - PAGE, home + 2 * PAGE)], era
            assert vs[0]["anon_vma"] is not None, era
    # the simple eras' page tables are right, their rmap is not (dangling page->mapping)
    for era in simple:
        with pytest.raises(rmapsim.InvariantViolation, match="invariant 2"):
            sims[era].check()
    # and the rest go on: fork, COW, swap out and back in
    for op in [
        ("fork", (1,), {}),
        ("touch", (2, home - PAGE, 3 * PAGE), {"write": True}),
        ("try_to_unmap", (None,), {}),
        ("touch", (1, home - PAGE, 3 * PAGE), {"write": False}),
        ("exit", (2,), {}),
    ]:
        d.step(op)
    assert set(d.active) == set(EVERY_ERA) - simple


def test_madvise_over_unfaulted_and_faulted_vma():
    """madvise(MADV_NORMAL) over an unfaulted VMA A [rand] and a faulted one B [seq], where
    the merge rules disagree. madvise_behavior changes A first -- vma_merge(prev=NULL, A)
    sees next B still [seq]: no merge -- then B: vma_merge(prev=A, B, B's anon_vma).
    simple (2.6.3x): B merges into A (A imports the anon_vma); singular chain (3.0-6.0):
    is_mergeable_anon_vma(B's anon_vma, NULL, A) is false, A's (empty) chain not being
    singular, so A and B stay apart, which check() must accept (its merge-site test once
    judged A's merge against the final B: invariant 7, a false positive); 2025 (6.18): an
    unfaulted target may take a faulted source without uncowed parents: one VMA. This is
    also where mergeable_both_ways departs from the one-way rules."""
    x = WIN_LO
    for era in EVERY_ERA:
        sim = rmapsim.Simulator(era=era, seed=0)
        p = sim.spawn()
        sim.mmap(p, 4 * PAGE, addr=x)
        sim.madvise(p, x, 2 * PAGE, "random")
        sim.madvise(p, x + 2 * PAGE, 2 * PAGE, "sequential")
        sim.touch(p, x + 2 * PAGE, PAGE, write=True)
        sim.madvise(p, x, 4 * PAGE, "normal")
        vs = vmas(sim, p)
        if ERA_RULES[era]["merge"] == "singular":
            assert [(v["start"], v["end"], v["flags"]) for v in vs] == [
                (x, x + 2 * PAGE, frozenset({"account"})),
                (x + 2 * PAGE, x + 4 * PAGE, frozenset({"account"})),
            ], era
            a, b = vs
            assert a["anon_vma"] is None and b["chain_len"] == 1
            assert merge_allowed(era, b, a) and not merge_allowed(era, a, b)
            assert not mergeable_both_ways(era, a, b)
        else:
            assert [(v["start"], v["end"]) for v in vs] == [(x, x + 4 * PAGE)], era
            assert vs[0]["anon_vma"] is not None
        if era != "2.6.34-rc1":  # (no fork: nothing for 3.19's bug to act on)
            sim.check()
            check_vma_rules(sim, p, era)
        else:
            # 2.6.34-rc1: vma_adjust's importer clones A's own (empty) chain, not B's
            # (docs/bugs.md): the page's anon_vma is freed with B's chain
            with pytest.raises(rmapsim.InvariantViolation) as ei:
                sim.check()
            assert invariant_number(ei.value) in BUGGY_BREAKS[era], str(ei.value)


def test_mremap_grow_merges_next_in_6_18():
    """mremap growing a VMA in place up to a mergeable next VMA: vma_adjust without
    vma_merge up to 6.0 (two VMAs); 6.1+ expand with vma_merge_extend ->
    vma_merge_new_range, which merges with next (ca3d76b0aa80, "mm: add merging after
    mremap resize"), so 6.18 has one VMA."""
    x = WIN_LO
    got = {}
    for era in EVERY_ERA:
        sim = rmapsim.Simulator(era=era, seed=0)
        p = sim.spawn()
        sim.mmap(p, 2 * PAGE, addr=x)
        sim.mmap(p, 2 * PAGE, addr=x + 4 * PAGE)
        assert sim.mremap(p, x, 2 * PAGE, 4 * PAGE, may_move=False) == x
        sim.check()
        got[era] = [(v["start"], v["end"]) for v in vmas(sim, p)]
        if ERA_RULES[era]["mremap_merges_next"]:
            assert got[era] == [(x, x + 6 * PAGE)], era
        else:
            assert got[era] == [(x, x + 4 * PAGE), (x + 4 * PAGE, x + 6 * PAGE)], era
