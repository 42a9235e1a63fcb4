"""Allocation-failure sweep: every allocation of every scenario is failed in turn, in
every era (docs/contract.md#allocation-failure; docs/api-contract.md "allocation failure").

For a scenario with A allocations in a clean run, each k in 1..A gets a fresh simulator
with inject_enomem(nth=k). Because the simulator is deterministic, the run is identical to
the clean run up to allocation k, so the failing step is known in advance (the first step
whose cumulative allocation count reaches k). The kernel rules checked:

  * The failing call raises OutOfMemory naming the site "(<slab>@<function>)", or it
    completes because the kernel itself swallows that failure:
      - vma_merge: `if (err) return NULL;` around vma_adjust, whose only allocation is the
        importer's anon_vma_clone -> "anon_vma_chain@anon_vma_clone";
      - move_vma (mremap): the unmap of the old range is allowed to fail ("OOM: unable to
        split vma, just get accounts right") -> a __split_vma allocation (the vm_area_struct
        or its chain clone).
    Each step declares which of these it can absorb.
  * Error paths free, they never allocate: after OutOfMemory, allocations() == k.
  * Calls whose kernel error path undoes everything (spawn, fork, exec, a non-overlapping
    mmap, an mremap move of a whole VMA, a single split) leave the state unchanged.
  * check() passes afterwards, and once every remaining process exits every count is 0.
  * Exception, by kernel history: in 2.6.34-rc1 anon_vma_fork returned -ENOMEM after its
    anon_vma or chain-entry allocation failed without unlinking the chain it had just
    cloned; dup_mmap then freed the VMA. A failure at "...@anon_vma_fork" therefore leaves
    chain entries pointing at a freed VMA: check() must raise InvariantViolation, and the
    leaked entries (and the anon_vmas they keep alive) survive every exit.

Coverage: the sites failed (from the OutOfMemory messages, plus the absorbed ones
recovered from allocation_sites(): the clean run's per-site totals minus the sites named
by the raised failures) must cover all 15 sites of the contract (2.6.33 has no chain
objects and no fork-time anon_vma, so 11 there).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from typing import Callable, Optional

import pytest

import rmapsim

from helpers import PAGE, snapshot

ALL_ERAS = ("2.6.33", "2.6.34-rc1", "2.6.34")
RC1 = "2.6.34-rc1"

SITES = (
    "mm_struct@mm_alloc",
    "mm_struct@dup_mm",
    "mm_struct@bprm_mm_init",
    "vm_area_struct@mmap_region",
    "vm_area_struct@__split_vma",
    "vm_area_struct@dup_mmap",
    "vm_area_struct@copy_vma",
    "anon_vma@anon_vma_prepare",
    "anon_vma@anon_vma_fork",
    "anon_vma_chain@anon_vma_prepare",
    "anon_vma_chain@anon_vma_clone",
    "anon_vma_chain@anon_vma_fork",
    "page@do_anonymous_page",
    "page@do_wp_page",
    "page@do_swap_page",
)
# 2.6.33: anon_vma_link allocates nothing at fork, and there is no anon_vma_chain.
CHAIN_ONLY_SITES = {
    "anon_vma@anon_vma_fork",
    "anon_vma_chain@anon_vma_prepare",
    "anon_vma_chain@anon_vma_clone",
    "anon_vma_chain@anon_vma_fork",
}
EXPECTED_SITES = {
    "2.6.33": set(SITES) - CHAIN_ONLY_SITES,
    RC1: set(SITES),
    "2.6.34": set(SITES),
}

SITE_RE = re.compile(r"\(([a-z_]+@[a-z_]+)\)")

MERGE_CLONE = frozenset({"anon_vma_chain@anon_vma_clone"})  # vma_merge -> vma_adjust importer
MOVE_UNMAP = frozenset({"vm_area_struct@__split_vma", "anon_vma_chain@anon_vma_clone"})  # move_vma

X = 0x4000_0000


def A(i: int) -> int:
    return X + i * PAGE


# ================================================================== scenario machinery


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    fn: Callable
    atomic: bool = False  # an OutOfMemory here must leave the state unchanged
    absorbs: frozenset = frozenset()  # sites whose failure the kernel swallows here


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple
    eras: tuple = ALL_ERAS
    why_not: str = ""


def pg(sim, pid, col):
    h = sim.page_at(pid, A(col))
    assert h is not None, f"no page at column {col} of pid {pid}"
    return int(h)


# Step bodies. Processes are named by letters kept in the per-run context `c`; addresses
# are page columns relative to X (or a context key holding an address).


def spawn(who):
    return lambda s, c: c.__setitem__(who, s.spawn())


def fork(parent, child):
    return lambda s, c: c.__setitem__(child, s.fork(c[parent]))


def exit_(who):
    return lambda s, c: s.exit(c[who])


def exec_(who):
    return lambda s, c: s.exec(c[who])


def addr(c, where):
    return c[where] if isinstance(where, str) else A(where)


def mmap(who, col, n, prot="rw"):
    return lambda s, c: s.mmap(c[who], n * PAGE, addr=A(col), prot=prot)


def mmap_any(who, n, key):
    """mmap without an address (top-down search); the result is kept under `key`."""
    return lambda s, c: c.__setitem__(key, s.mmap(c[who], n * PAGE))


def munmap(who, col, n):
    return lambda s, c: s.munmap(c[who], A(col), n * PAGE)


def touch(who, where, n, write):
    return lambda s, c: s.touch(c[who], addr(c, where), n * PAGE, write=write)


def mprotect(who, col, n, prot):
    return lambda s, c: s.mprotect(c[who], A(col), n * PAGE, prot)


def madvise(who, col, n, advice):
    return lambda s, c: s.madvise(c[who], A(col), n * PAGE, advice)


def mremap(who, where, old_n, new_n, may_move=True, to=None, key=None):
    def fn(s, c):
        new_addr = None if to is None else A(to)
        old = addr(c, where)
        got = s.mremap(c[who], old, old_n * PAGE, new_n * PAGE, may_move, new_addr)
        if key:
            c[key] = got

    return fn


def unmap_pages(who, *cols):
    """try_to_unmap of the pages mapped at those columns."""
    return lambda s, c: s.try_to_unmap([pg(s, c[who], col) for col in cols])


def drop_swap_cache():
    return lambda s, c: s.drop_swap_cache()


def sc_lifecycle():
    """spawn / fork / COW in child and parent / nested fork / exit / exec / zero page."""
    return Scenario(
        "lifecycle",
        (
            Step("spawn a", spawn("a"), atomic=True),
            Step("mmap a [0,4)", mmap("a", 0, 4), atomic=True),
            Step("a write [0,4)", touch("a", 0, 4, write=True)),
            Step("fork a->b", fork("a", "b"), atomic=True),
            Step("b write page 0 (COW copy)", touch("b", 0, 1, write=True)),
            Step("a write page 1 (COW copy)", touch("a", 1, 1, write=True)),
            Step("fork b->c", fork("b", "c"), atomic=True),
            Step("exit b", exit_("b")),
            Step("c write page 2 (COW copy)", touch("c", 2, 1, write=True)),
            Step("c read page 3", touch("c", 3, 1, write=False)),
            Step("exec c", exec_("c"), atomic=True),
            Step("mmap c top-down", mmap_any("c", 2, "m"), atomic=True),
            Step("c read: zero pages", touch("c", "m", 2, write=False)),
            Step("c write: COW of zero pages", touch("c", "m", 2, write=True)),
            Step("spawn d", spawn("d"), atomic=True),
            Step("exit d", exit_("d")),
            Step("exit a", exit_("a")),
        ),
    )


def sc_mmap_munmap():
    """MAP_FIXED over existing VMAs (same and different prot), munmap of a middle and an
    end piece, hole-filling merges, a partial munmap across a VMA boundary."""
    return Scenario(
        "mmap_munmap",
        (
            Step("spawn a", spawn("a"), atomic=True),
            Step("mmap [0,8)", mmap("a", 0, 8), atomic=True),
            Step("write [0,8)", touch("a", 0, 8, write=True)),
            # two splits + unmap, then case 1 with prev and next sharing the anon_vma
            Step("MAP_FIXED [2,4) rw", mmap("a", 2, 2)),
            Step("MAP_FIXED [5,6) r", mmap("a", 5, 1, prot="r")),
            Step("munmap middle [1,2)", munmap("a", 1, 1)),
            Step("munmap end [7,8)", munmap("a", 7, 1)),
            Step("mmap hole [1,2)", mmap("a", 1, 1)),
            Step("write [0,5)", touch("a", 0, 5, write=True)),
            Step("mmap hole [7,8)", mmap("a", 7, 1)),
            Step("mmap [12,15)", mmap("a", 12, 3), atomic=True),
            Step("write [12,15)", touch("a", 12, 3, write=True)),
            Step("munmap [10,14)", munmap("a", 10, 4), atomic=True),
            Step("mmap top-down", mmap_any("a", 3, "m"), atomic=True),
            Step("write top-down", touch("a", "m", 3, write=True)),
        ),
    )


def sc_mprotect_madvise():
    """mprotect split + merge, flag madvise split + merge, case-4 importer (next grows
    over vma: correct even in rc1), dontfork + fork, dofork, dontneed, COW reuse, pageout,
    swap-in of paged-out pages by read faults."""
    return Scenario(
        "mprotect_madvise",
        (
            Step("spawn a", spawn("a"), atomic=True),
            Step("mmap [0,6)", mmap("a", 0, 6), atomic=True),
            Step("write [0,6)", touch("a", 0, 6, write=True)),
            Step("mprotect [2,4) r: 2 splits", mprotect("a", 2, 2, "r")),
            Step("mprotect [2,4) rw: merge", mprotect("a", 2, 2, "rw")),
            Step("madvise [1,3) random", madvise("a", 1, 2, "random")),
            Step("madvise [1,3) normal", madvise("a", 1, 2, "normal")),
            Step("madvise [4,6) sequential", madvise("a", 4, 2, "sequential"), atomic=True),
            Step("madvise [4,6) normal", madvise("a", 4, 2, "normal")),
            Step("mmap [6,9) r", mmap("a", 6, 3, prot="r"), atomic=True),
            Step("mprotect [4,6) r: case 4", mprotect("a", 4, 2, "r"), absorbs=MERGE_CLONE),
            Step("madvise [0,2) dontfork", madvise("a", 0, 2, "dontfork"), atomic=True),
            Step("fork a->b", fork("a", "b"), atomic=True),
            Step("madvise a [0,2) dofork", madvise("a", 0, 2, "dofork")),
            Step("madvise a [2,4) dontneed", madvise("a", 2, 2, "dontneed")),
            Step("b write page 2 (COW reuse)", touch("b", 2, 1, write=True)),
            Step("madvise b [2,4) pageout", madvise("b", 2, 2, "pageout")),
            Step("b read [2,4): swap-in", touch("b", 2, 2, write=False)),
            Step("b write [2,4): reuse", touch("b", 2, 2, write=True)),
            Step("exit b", exit_("b")),
        ),
    )


def sc_mremap():
    """mremap shrink, grow in place, move (may_move), MREMAP_FIXED, a partial move in a
    forked child (chain of 2 cloned; old range split), a move back that merges at the
    destination, COW after moves."""
    return Scenario(
        "mremap",
        (
            Step("spawn a", spawn("a"), atomic=True),
            Step("mmap [0,4)", mmap("a", 0, 4), atomic=True),
            Step("write [0,4)", touch("a", 0, 4, write=True)),
            Step("mremap shrink 4->3", mremap("a", 0, 4, 3), atomic=True),
            Step("mremap grow in place 3->5", mremap("a", 0, 3, 5, may_move=False)),
            Step("write [3,5)", touch("a", 3, 2, write=True)),
            Step("mmap blocker [5,6) r", mmap("a", 5, 1, prot="r"), atomic=True),
            Step("mremap move 5->6", mremap("a", 0, 5, 6, key="m"), atomic=True),
            Step("mremap fixed -> [16,22)", mremap("a", "m", 6, 6, to=16), atomic=True),
            Step("fork a->b", fork("a", "b"), atomic=True),
            Step("b mremap [16,18) -> [30,32)", mremap("b", 16, 2, 2, to=30), absorbs=MOVE_UNMAP),
            Step("b mremap [30,32) -> [16,18) (merge)", mremap("b", 30, 2, 2, to=16)),
            Step("b write [16,22) (COW)", touch("b", 16, 6, write=True)),
            Step("a mremap shrink 6->2", mremap("a", 16, 6, 2), atomic=True),
            Step("exit a", exit_("a")),
        ),
    )


def sc_swap():
    """try_to_unmap, swap-in from the swap cache, drop_swap_cache then swap-in of a fresh
    page (read and write), reuse of a swap-cache page by a write, fork with swap entries,
    parent faults first (the order that is correct even in rc1), COW after swap-in."""
    return Scenario(
        "swap",
        (
            Step("spawn a", spawn("a"), atomic=True),
            Step("mmap [0,4)", mmap("a", 0, 4), atomic=True),
            Step("write [0,4)", touch("a", 0, 4, write=True)),
            Step("try_to_unmap pages 0,1", unmap_pages("a", 0, 1)),
            Step("read page 0 (swap cache)", touch("a", 0, 1, write=False)),
            Step("drop_swap_cache", drop_swap_cache()),
            Step("read page 1 (fresh swap-in)", touch("a", 1, 1, write=False), atomic=True),
            Step("write pages 0,1 (reuse)", touch("a", 0, 2, write=True)),
            Step("try_to_unmap page 2", unmap_pages("a", 2)),
            Step("drop_swap_cache", drop_swap_cache()),
            Step("write page 2 (fresh, exclusive)", touch("a", 2, 1, write=True), atomic=True),
            Step("try_to_unmap page 3", unmap_pages("a", 3)),
            Step("fork a->b (swap entry)", fork("a", "b"), atomic=True),
            Step("a read page 3 (swap cache)", touch("a", 3, 1, write=False)),
            Step("b write page 3 (COW)", touch("b", 3, 1, write=True)),
            Step("try_to_unmap shared page 0", unmap_pages("b", 0)),
            Step("drop_swap_cache", drop_swap_cache()),
            Step("a write page 0 (swap-in + COW)", touch("a", 0, 1, write=True)),
            Step("b read page 0 (swap cache)", touch("b", 0, 1, write=False)),
            Step("a write [0,4) (reuse page 3)", touch("a", 0, 4, write=True)),
            Step("exit a", exit_("a")),
            Step("b write [0,4)", touch("b", 0, 4, write=True)),
        ),
    )


def sc_importer():
    """Merges whose vma_adjust has to clone a chain into an importer that is `vma` itself
    (new range between an unfaulted prev and a faulted next; mprotect case 5). Not run in
    2.6.34-rc1: there the clean run already breaks the invariants (the importer clones its
    own empty chain; test_vma_merge.py and test_historic_bugs.py assert that)."""
    return Scenario(
        "importer",
        (
            Step("spawn a", spawn("a"), atomic=True),
            Step("mmap P [0,3)", mmap("a", 0, 3), atomic=True),
            Step("mmap N [7,10)", mmap("a", 7, 3), atomic=True),
            Step("write N", touch("a", 7, 3, write=True)),
            Step("mmap [3,7): case 1 import", mmap("a", 3, 4), atomic=True, absorbs=MERGE_CLONE),
            Step("write [0,10)", touch("a", 0, 10, write=True)),
            Step("mmap P2 [20,23) r", mmap("a", 20, 3, prot="r"), atomic=True),
            Step("mmap V [23,27)", mmap("a", 23, 4), atomic=True),
            Step("write V", touch("a", 23, 4, write=True)),
            Step("mprotect [23,25) r: case 5", mprotect("a", 23, 2, "r"), absorbs=MERGE_CLONE),
            Step("fork a->b", fork("a", "b"), atomic=True),
            Step("b read [20,27)", touch("b", 20, 7, write=False)),
        ),
        eras=("2.6.33", "2.6.34"),
        why_not="rc1's importer bug breaks the clean run",
    )


SCENARIOS = (
    sc_lifecycle(),
    sc_mmap_munmap(),
    sc_mprotect_madvise(),
    sc_mremap(),
    sc_swap(),
    sc_importer(),
)


# ====================================================================== running


def new_sim(era):
    sim = rmapsim.Simulator(era=era, seed=0)
    assert sim.era == era
    return sim


def exit_all(sim):
    for q in sorted(int(x) for x in sim.pids()):
        sim.exit(q)


def clean_run(era, sc):
    """Run without injection, check() after every step; return (cumulative allocations
    after each step, per-site totals)."""
    sim = new_sim(era)
    ctx = {}
    cum = []
    for st in sc.steps:
        st.fn(sim, ctx)
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            msg = f"{era} {sc.name}: clean run broken after {st.name!r}: {e}"
            raise AssertionError(msg) from None
        cum.append(sim.allocations())
    sites = {k: int(v) for k, v in sim.allocation_sites().items()}
    assert set(sites) == set(SITES), f"allocation_sites() keys {sorted(sites)}"
    assert sum(sites.values()) == cum[-1]
    exit_all(sim)
    assert all(int(v) == 0 for v in sim.counts().values()), sim.counts()
    return cum, sites


@dataclasses.dataclass
class SweepResult:
    era: str
    failed: int = 0
    raised: int = 0
    absorbed: int = 0
    leaks_caught: int = 0
    lingering: int = 0
    sites: set = dataclasses.field(default_factory=set)
    absorbed_by: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    per_scenario: dict = dataclasses.field(default_factory=dict)


def fail_at(era, sc, cum, k, res: SweepResult) -> Optional[str]:
    """Run sc with allocation k failing; check every rule; return the site named by the
    OutOfMemory, or None when the failure was absorbed."""
    where = f"{era} {sc.name} k={k}"
    i = next(j for j, c in enumerate(cum) if c >= k)  # the step that makes allocation k
    sim = new_sim(era)
    sim.inject_enomem(nth=k)
    ctx = {}
    for st in sc.steps[:i]:
        st.fn(sim, ctx)
    assert sim.allocations() == (cum[i - 1] if i else 0) < k, where
    step = sc.steps[i]
    where += f" step {step.name!r}"
    before = snapshot(sim, allocations=False) if step.atomic else None
    site = None
    try:
        step.fn(sim, ctx)
    except rmapsim.OutOfMemory as e:
        m = SITE_RE.search(str(e))
        assert m, f"{where}: OutOfMemory message does not name a site: {e}"
        site = m.group(1)
        assert site in SITES, f"{where}: unknown site {site!r}"
        # error paths unwind without allocating
        n = sim.allocations()
        assert n == k, f"{where}: {n} allocations after the failure"
    else:
        # the failed allocation happened inside this step and was swallowed
        assert sim.allocations() >= k, where
        assert step.absorbs, f"{where}: the failure of allocation {k} vanished (no OutOfMemory)"
        res.absorbed += 1
        res.absorbed_by[step.name] += 1

    leak = site is not None and era == RC1 and "@anon_vma_fork" in site
    if leak:
        # rc1's anon_vma_fork error path leaves the cloned chain linked to a freed VMA
        with pytest.raises(rmapsim.InvariantViolation):
            sim.check()
        res.leaks_caught += 1
    else:
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            raise AssertionError(f"{where}: check() after the failure: {e}") from None
        if site is not None and before is not None:
            assert snapshot(sim, allocations=False) == before, f"{where}: a failed {step.name!r} changed the state"
    if site is None:
        # an absorbed failure: the scenario goes on, and must stay consistent
        for st in sc.steps[i + 1 :]:
            st.fn(sim, ctx)
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            msg = f"{where}: check() at the end after an absorbed failure: {e}"
            raise AssertionError(msg) from None
    exit_all(sim)
    # Reclaim what the kernel would have freed at zap time: rmapsim leaves an unmapped
    # swap-cache page whose slot has no entry in the swap cache (see
    # test_zap_frees_unreferenced_swap_cache_page); a run stopped between a read swap-in
    # and the write that would take the page out of the swap cache leaves one behind.
    res.lingering += int(sim.drop_swap_cache())
    if not leak:
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            raise AssertionError(f"{where}: check() after every process exited: {e}") from None
    c = {key: int(v) for key, v in sim.counts().items()}
    if leak:
        assert c["anon_vma_chain"] > 0 and c["anon_vma"] > 0, f"{where}: leak not visible: {c}"
        assert {key: v for key, v in c.items() if key not in ("anon_vma", "anon_vma_chain")} == {
            key: 0 for key in c if key not in ("anon_vma", "anon_vma_chain")
        }, f"{where}: {c}"
    else:
        assert all(v == 0 for v in c.values()), f"{where}: leak after every process exited: {c}"
    return site


@functools.cache
def sweep(era) -> SweepResult:
    res = SweepResult(era)
    for sc in SCENARIOS:
        if era not in sc.eras:
            continue
        cum, clean_sites = clean_run(era, sc)
        raised_sites = collections.Counter()
        absorbed_before = res.absorbed
        absorbable = set()
        for st in sc.steps:
            absorbable |= st.absorbs
        for k in range(1, cum[-1] + 1):
            res.failed += 1
            site = fail_at(era, sc, cum, k, res)
            if site is not None:
                res.raised += 1
                raised_sites[site] += 1
                res.sites.add(site)
        # Allocation k of the injected run is allocation k of the clean run, so the clean
        # per-site totals minus the sites named by OutOfMemory are the absorbed ones.
        rest = collections.Counter(clean_sites)
        rest.subtract(raised_sites)
        rest = +rest
        n_abs = res.absorbed - absorbed_before
        assert sum(rest.values()) == n_abs, f"{era} {sc.name}: {dict(rest)} vs {n_abs} absorbed"
        assert set(rest) <= absorbable, f"{era} {sc.name}: absorbed failures at {dict(rest)}"
        res.sites |= set(rest)
        res.per_scenario[sc.name] = (cum[-1], n_abs)
    return res


# ======================================================================= tests


def test_contract_sites():
    assert set(ALL_ERAS) <= set(rmapsim.eras())
    sim = new_sim("2.6.34")
    assert set(sim.allocation_sites()) == set(SITES)
    assert all(int(v) == 0 for v in sim.allocation_sites().values())


@pytest.mark.parametrize("era", ALL_ERAS)
def test_enomem_sweep(era):
    res = sweep(era)
    print(
        f"\n[enomem] era {era}: {res.failed} allocations failed, {res.raised} raised OutOfMemory, "
        f"{res.absorbed} absorbed ({dict(res.absorbed_by)}), "
        f"{res.leaks_caught} rc1 fork leaks caught, "
        f"{res.lingering} swap-cache pages reclaimed after exit, "
        f"{len(res.sites)}/{len(EXPECTED_SITES[era])} sites covered; per scenario "
        f"(allocations, absorbed): {res.per_scenario}"
    )
    missing = EXPECTED_SITES[era] - res.sites
    assert not missing, f"{era}: sites never failed: {sorted(missing)}"
    extra = res.sites - EXPECTED_SITES[era]
    assert not extra, f"{era}: unexpected sites {sorted(extra)}"
    # derived: 2.6.33 allocates nothing inside vma_merge (the importer links, R3) and its
    # move_vma unmap split has no chain to clone; the chain eras absorb importer clones
    if era == "2.6.33":
        assert res.absorbed_by.keys() <= {"b mremap [16,18) -> [30,32)"}
    else:
        assert res.absorbed > 0
    # rc1: every fork of a process with a faulted VMA has an anon_vma and a chain entry
    # allocation in anon_vma_fork after the clone; each such failure leaks
    if era == RC1:
        assert res.leaks_caught > 0
    else:
        assert res.leaks_caught == 0


def test_sites_union_covers_contract():
    covered = set()
    for era in ALL_ERAS:
        covered |= sweep(era).sites
    assert covered == set(SITES), sorted(set(SITES) - covered)


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("how", ["munmap", "exit", "dontneed"])
def test_zap_frees_unreferenced_swap_cache_page(era, how):
    """A page written, swapped out (try_to_unmap: it stays in the swap cache) and read back
    from the swap cache: mapped once, no swap entry left (do_swap_page's swap_free), still
    cached. Unmapping it is its last reference: the kernel frees it and its slot."""
    sim = new_sim(era)
    a = sim.spawn()
    sim.mmap(a, PAGE, addr=A(0))
    sim.touch(a, A(0), PAGE, write=True)
    sim.try_to_unmap([int(sim.page_at(a, A(0)))])
    sim.touch(a, A(0), PAGE, write=False)
    info = sim.page_info(int(sim.page_at(a, A(0))))
    assert int(info["mapcount"]) == 1 and info["swap_slot"] is not None
    sim.check()
    if how == "munmap":
        sim.munmap(a, A(0), PAGE)
    elif how == "dontneed":
        sim.madvise(a, A(0), PAGE, "dontneed")
    else:
        sim.exit(a)
    sim.check()
    c = sim.counts()
    assert (c["page"], c["swap_slot"], c["swap_cache"]) == (0, 0, 0), c
