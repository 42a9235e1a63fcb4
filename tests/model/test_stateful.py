"""A model-checked state machine per era (RmapMachine), the buggy eras in lockstep with a
correct one.

The model and what each harness checks: the docstring of page_model.py.
"""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import event, note
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import rmapsim

from helpers import (
    ADVICE,
    BUGGY_BREAKS,
    ERA_RULES,
    EVERY_ERA,
    FIRST_BREAK,
    LINUX_4_14_ADVICE,
    MMAP_BASE,
    PAGE,
    SOUND_ERAS,
    STRUCT_SIZES,
    counts,
    entry_kinds,
    invariant_number,
    mergeable_either_way,
    norm_prot,
    page_layout,
    page_map,
    pids,
    scan_rows,
    vma_chains,
    vmas,
)
from lockstep import Lockstep, at_least
from model_checks import (
    Ids,
    check_against_model,
    check_rmap,
    check_vma_rules,
    page_level_state,
    simple_merge,
    unfaulted_pages,
)
from page_model import (
    BREAK_STATS,
    IDX,
    KNOWN_DEFECT_HITS,
    MAX_PROCS,
    MPROTECT_PROTS,
    PAGEK,
    PROTS,
    SWAP,
    WIN_LO,
    WINDOW,
    Model,
    copy_vma_into_unfaulted,
)

# --------------------------------------------------------------------------- state machine


class RmapMachine(RuleBasedStateMachine):
    ERA = None
    SHADOW = None  # a correct era replaying every call in lockstep (the buggy eras' machines)

    def __init__(self):
        super().__init__()
        sim = rmapsim.Simulator(era=self.ERA, seed=0)
        if self.SHADOW:
            self.sim = Lockstep(sim, rmapsim.Simulator(era=self.SHADOW, seed=0))
        else:
            self.sim = sim
        self.raw = sim
        self.model = Model()
        self.model.unaccount = ERA_RULES[self.ERA]["unaccount"]
        self.ids = Ids()
        # why the machine stopped driving the simulator (a buggy era broke; or, in a "simple"
        # merge era, the known copy_vma defect was hit by an mremap whose destination could
        # not be foreseen)
        self.stopped = None
        self.steps = 0  # statistics only
        self.apart = {}  # pid -> pairs legitimately left apart (check_vma_rules)

    def live(self):
        return sorted(self.model.procs)

    def pick(self, i):
        live = self.live()
        return live[i % len(live)]

    def observed(self):
        s = self.raw
        return (counts(s), page_map(s), entry_kinds(s), {p: vmas(s, p) for p in pids(s)})

    def expect_error(self, exc, fn, *args, **kwargs):
        before = self.observed()
        try:
            fn(*args, **kwargs)
        except exc:
            pass
        else:
            raise AssertionError(f"{fn.__name__}{args} {kwargs} should have raised {exc.__name__}")
        assert self.observed() == before, f"{fn.__name__}{args} {kwargs} changed the state"

    def expect_bad_address(self, fn, *args, **kwargs):
        self.expect_error(rmapsim.BadAddress, fn, *args, **kwargs)

    def has_anon_vma(self, pid):
        return {a: v[3] for a, v in page_layout(self.raw, pid).items()}

    def _fork(self, pid):
        has_av = self.has_anon_vma(pid)
        child = self.sim.fork(pid)
        assert child == self.model.fork(pid, has_av)
        self.apart[child] = dict(self.apart.get(pid, {}))  # dup_mmap copies the layout

    @initialize(
        slot=st.integers(0, WINDOW - 8),
        npages=st.integers(1, 8),
        prot=st.sampled_from(PROTS),
        write=st.booleans(),
        fork=st.booleans(),
        swap=st.booleans(),
    )
    def first_process(self, slot, npages, prot, write, fork, swap):
        """Start from a process with one mapping (optionally written, forked and swapped
        out), so that even short runs exercise COW, swap, splits and merges."""
        pid = self.sim.spawn()
        assert pid == self.model.spawn()
        addr = WIN_LO + slot * PAGE
        assert self.sim.mmap(pid, npages * PAGE, addr=addr, prot=prot) == addr
        self.model.mmap(pid, addr, npages, prot)
        if write and "w" in norm_prot(prot):
            self._touch(pid, addr, npages, True)
        if fork:
            self._fork(pid)
        if swap:
            self._try_to_unmap(None)

    # One rule for the whole process lifecycle, so that memory operations (several rules)
    # make up most steps: hypothesis picks uniformly among enabled rules.
    @rule(
        kind=st.sampled_from(["spawn", "fork", "fork", "fork_many", "exit", "exec"]),
        i=IDX,
        n=st.integers(1, 2),
    )
    def lifecycle(self, kind, i, n):
        if self.stopped:
            return
        live = self.live()
        if not live:
            kind = "spawn"
        if kind in ("spawn", "fork", "fork_many") and len(live) + n > MAX_PROCS:
            kind = "exit"
        if kind == "spawn":
            assert self.sim.spawn() == self.model.spawn()
            return
        pid = self.pick(i)
        if kind == "fork":
            self._fork(pid)
        elif kind == "fork_many":
            has_av = self.has_anon_vma(pid)
            got = [int(k) for k in self.sim.fork_many(pid, n)]
            assert sorted(got) == [self.model.fork(pid, has_av) for _ in range(n)]
            for k in got:
                self.apart[k] = dict(self.apart.get(pid, {}))
        elif kind == "exit":
            self.sim.exit(pid)
            self.model.exit(pid)
        else:
            self.sim.exec(pid)
            self.model.exec(pid)

    @rule(i=IDX, exit_parent=st.sampled_from([True, True, False]))
    def generation(self, i, exit_parent):
        """fork, and mostly the parent exits: the "constantly forking task" of docs/bugs.md
        (endless anon_vma growth), on which the fork-reuse rules (and 3.19's bug) grow."""
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        if len(self.model.procs) < MAX_PROCS:
            self._fork(pid)
        if exit_parent and len(self.model.procs) > 1:
            self.sim.exit(pid)
            self.model.exit(pid)

    @rule(
        i=IDX,
        slot=st.one_of(st.none(), st.integers(0, WINDOW - 1)),
        npages=st.integers(1, 4),
        prot=st.sampled_from(PROTS),
    )
    def mmap(self, i, slot, npages, prot):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        if slot is None:
            addr = self.sim.mmap(pid, npages * PAGE, prot=prot)
            assert addr % PAGE == 0 and addr + npages * PAGE <= MMAP_BASE
            assert self.model.free_range(pid, addr, npages), f"mmap reused busy {addr:#x}"
        else:
            npages = min(npages, WINDOW - slot)
            addr = WIN_LO + slot * PAGE
            assert self.sim.mmap(pid, npages * PAGE, addr=addr, prot=prot) == addr
        self.model.mmap(pid, addr, npages, prot)

    def _vma_range(self, pid, j, off, npages, clip=True):
        """A piece of an existing VMA (may run past its end), or None if pid has no VMA."""
        vs = vmas(self.raw, pid)
        if not vs:
            return None
        v = vs[j % len(vs)]
        size = (v["end"] - v["start"]) // PAGE
        if npages is None:  # the whole VMA
            return v["start"], size
        off %= size
        if clip:
            npages = min(npages, size - off)
        return v["start"] + off * PAGE, npages

    def _window_range(self, slot, npages):
        slot %= WINDOW
        return WIN_LO + slot * PAGE, min(npages, WINDOW - slot)

    def _range(self, pid, j, off, npages, clip):
        return self._vma_range(pid, j, off, npages, clip) or self._window_range(off, npages)

    def _munmap(self, pid, addr, npages):
        if self.model.munmap_ok(pid, addr, npages):
            self.sim.munmap(pid, addr, npages * PAGE)
            self.model.munmap(pid, addr, npages)
        else:
            self.expect_bad_address(self.sim.munmap, pid, addr, npages * PAGE)

    def check_placed(self, placed):
        """page->mapping of the pages a fault just placed (Model.touch), by the era's rule."""
        target = ERA_RULES[self.ERA]["swapin"]
        chains = {}
        for pid, a, where in placed:
            if pid not in chains:
                chains[pid] = (vmas(self.raw, pid), vma_chains(self.raw, pid))
            vs, ch = chains[pid]
            v = next(v for v in vs if v["start"] <= a < v["end"])
            av, chain = ch[v["start"]]
            h = self.raw.page_at(pid, a)
            got = int(self.raw.page_info(h)["anon_vma"])
            if where.startswith("vma") or target == "vma":
                want = av
            elif ERA_RULES[self.ERA]["root_first"]:
                # 2.6.34: the oldest anon_vma of the VMA's chain; 2.6.35+: its root, which
                # is that oldest entry
                want = chain[0]
            else:
                # 7.0: the root, somewhere on the (reversed) chain: its one entry that is its
                # own root
                roots = {x["anon_vma"]: x["root"] for x in self.raw.graph()["anon_vmas"]}
                [want] = [x for x in chain if roots[x] == x]
            assert got == want, (
                f"{self.ERA}: page at pid {pid} {a:#x} ({where}) in anon_vma {got:#x}, want {want:#x}: {v} chain {chain}"
            )
            event(f"page->mapping checked: {where}")

    def _touch(self, pid, addr, npages, write):
        if self.model.touch_ok(pid, addr, npages, write):
            self.sim.touch(pid, addr, npages * PAGE, write=write)
            self.check_placed(self.model.touch(pid, addr, npages, write))
        else:
            self.expect_bad_address(self.sim.touch, pid, addr, npages * PAGE, write=write)

    @rule(i=IDX, j=IDX, off=st.integers(0, 6), npages=st.integers(1, 3), clip=st.booleans())
    def munmap_in_vma(self, i, j, off, npages, clip):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        self._munmap(pid, *self._range(pid, j, off, npages, clip))

    @rule(i=IDX, slot=st.integers(0, WINDOW - 1), npages=st.integers(1, 4))
    def munmap_window(self, i, slot, npages):
        if self.stopped or not self.model.procs:
            return
        self._munmap(self.pick(i), *self._window_range(slot, npages))

    @rule(
        i=IDX,
        j=IDX,
        off=st.integers(0, 6),
        npages=st.integers(1, 3),
        write=st.booleans(),
        clip=st.sampled_from([True, True, True, False]),
    )
    def touch_in_vma(self, i, j, off, npages, write, clip):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        self._touch(pid, *self._range(pid, j, off, npages, clip), write)

    @rule(i=IDX, j=IDX, write=st.booleans())
    def touch_whole_vma(self, i, j, write):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        r = self._vma_range(pid, j, 0, None)
        if r is not None:
            self._touch(pid, *r, write)

    @rule(i=IDX, slot=st.integers(0, WINDOW - 1), npages=st.integers(1, 4), write=st.booleans())
    def touch_window(self, i, slot, npages, write):
        if self.stopped or not self.model.procs:
            return
        self._touch(self.pick(i), *self._window_range(slot, npages), write)

    @precondition(lambda self: len(self.model.procs) >= 2)
    @rule(i=IDX, j=IDX, k=IDX, write=st.booleans())
    def touch_many(self, i, j, k, write):
        if self.stopped:
            return
        # the same range of one process's VMA, in two processes (often a parent and a child)
        a, b = self.pick(i), self.pick(j)
        group = [a] if a == b else [a, b]
        r = self._vma_range(a, k, 0, None)
        if r is None:
            return
        addr, npages = r
        if all(self.model.touch_ok(p, addr, npages, write) for p in group):
            self.sim.touch_many(group, addr, npages * PAGE, write=write)
            placed = []
            for p in group:
                placed += self.model.touch(p, addr, npages, write)
            self.check_placed(placed)
        else:
            self.expect_bad_address(self.sim.touch_many, group, addr, npages * PAGE, write=write)

    def has_swap_entries(self):
        return any(e.kind == SWAP for m in self.model.procs.values() for e in m.values())

    @precondition(has_swap_entries)
    @rule(data=st.data(), write=st.booleans(), npages=st.integers(1, 3))
    def touch_swap_entry(self, data, write, npages):
        """Fault on a swap entry (do_swap_page), often the very page another process or a
        previous reclaim left in the swap cache."""
        self._touch_swap_entry(data, write, npages)

    @precondition(has_swap_entries)
    @rule(data=st.data())
    def read_swap_entry(self, data):
        """A read fault on one swap entry: the page stays in the swap cache, shared by the
        slot's other entries (a second rule, so that swap-ins are frequent)."""
        self._touch_swap_entry(data, False, 1)

    def _touch_swap_entry(self, data, write, npages):
        if self.stopped:
            return
        keys = sorted(self.model.swap_map())
        pid, addr = data.draw(st.sampled_from(keys))
        n = npages
        while n > 1 and not self.model.all_mapped(pid, addr, n):
            n -= 1
        self._touch(pid, addr, n, write)

    # ---- mprotect / madvise

    @rule(
        i=IDX,
        j=IDX,
        off=st.integers(0, 6),
        npages=st.integers(1, 4),
        clip=st.sampled_from([True, True, True, False]),
        prot=st.sampled_from(MPROTECT_PROTS),
    )
    def mprotect(self, i, j, off, npages, clip, prot):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        addr, n = self._range(pid, j, off, npages, clip)
        if self.model.all_mapped(pid, addr, n):
            unfaulted = unfaulted_pages(self.sim, pid)
            assert self.sim.mprotect(pid, addr, n * PAGE, prot) is None
            self.model.mprotect(pid, addr, n, prot, unfaulted)
        else:
            # contract strictness: a range with a hole is refused and nothing changes
            self.expect_bad_address(self.sim.mprotect, pid, addr, n * PAGE, prot)

    @rule(
        i=IDX,
        j=IDX,
        off=st.integers(0, 6),
        npages=st.integers(1, 4),
        clip=st.sampled_from([True, True, True, False]),
        advice=st.sampled_from(ADVICE + LINUX_4_14_ADVICE),
    )
    def madvise(self, i, j, off, npages, clip, advice):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        if advice in LINUX_4_14_ADVICE and not ERA_RULES[self.ERA]["wipeonfork"]:
            advice = "random" if advice == "wipeonfork" else "normal"
        addr, n = self._range(pid, j, off, npages, clip)
        if not self.model.all_mapped(pid, addr, n):
            self.expect_bad_address(self.sim.madvise, pid, addr, n * PAGE, advice)
            return
        mc = self.model.mapcount()
        stats = self.sim.madvise(pid, addr, n * PAGE, advice)
        assert isinstance(stats, rmapsim.ScanStats)
        out = self.model.madvise(pid, addr, n, advice)
        event(f"madvise {advice}" + (f": {len(out)} paged out" if advice == "pageout" else ""))
        rows = scan_rows(stats)
        # pageout walks each page it reclaims (one try_to_unmap each); other advice none
        assert sorted(r["page"] for r in rows) == sorted(self.ids.handle_of[p] for p in out)
        for r in rows:
            assert r["mapcount"] == r["mappings_found"] == 1
        assert all(mc[p] == 1 for p in out)

    # ---- mremap

    @rule(
        i=IDX,
        j=IDX,
        off=st.integers(0, 6),
        npages=st.integers(1, 4),
        clip=st.sampled_from([True, True, True, False]),
        how=st.sampled_from(["shrink", "grow", "grow", "fixed", "fixed", "same", "span"]),
        delta=st.integers(1, 3),
        slot=st.integers(0, WINDOW - 1),
        may_move=st.sampled_from([True, True, True, False]),
    )
    def mremap(self, i, j, off, npages, clip, how, delta, slot, may_move):
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        old, old_n = self._range(pid, j, off, npages, clip)
        new_addr = None
        if how == "shrink":
            new_n = max(1, old_n - delta)
        elif how == "same":
            new_n = old_n
        elif how == "grow":
            new_n = old_n + delta
        elif how == "span":
            # a pure move (MREMAP_FIXED, same length) of a range that may run past its VMA
            # into holes and further VMAs (6.17+ move them all, earlier kernels: EFAULT)
            old, old_n = self._range(pid, j, off, npages + delta + 2, False)
            new_n = old_n
            new_addr = WIN_LO + (slot % max(1, WINDOW - old_n + 1)) * PAGE
        else:
            new_addr, new_n = self._window_range(slot, delta + (npages % 2))
        vlist = vmas(self.raw, pid)
        multi = self.sim.policy()["mremap_move_multi"] == "true"
        plan = self.model.mremap_plan(pid, old, old_n, new_n, may_move, new_addr, vlist, multi)
        args = (pid, old, old_n * PAGE, new_n * PAGE)
        kwargs = {"may_move": may_move, "new_addr": new_addr}
        note(f"mremap{args} {kwargs}: {plan[0]}")
        event(f"mremap: {plan[0]}" + (f" {plan[1].__name__}" if plan[0] == "error" else ""))
        if plan[0] == "error":
            self.expect_error(plan[1], self.sim.mremap, *args, **kwargs)
            return
        if plan[0] == "multi":
            parts = plan[1]
            lo, hi = parts[0][3]["start"], parts[-1][3]["end"]
            if new_addr <= hi and lo <= new_addr + new_n * PAGE:
                # a part landing next to a source VMA may merge into it before that VMA
                # moves (its anon_vma, hence the next part's pgoff, can change): keep clear
                event("mremap: multi-VMA move next to its source (kept clear)")
                return
            event(f"mremap: multi-VMA move of {min(len(parts), 3)}{'+' if len(parts) >= 3 else ''} parts")
            got = self.sim.mremap(*args, **kwargs)
            assert got == new_addr
            for a, n, dest, v in parts:
                self.model.mremap_move(pid, a, n, n, dest, True, v["anon_vma"] is not None)
            return
        if plan[0] == "hole":
            # kernel: do_munmap(addr + new_len, old_len - new_len) whatever is mapped there,
            # then return addr; the simulator is stricter (BadAddress, nothing changed)
            before = self.observed()
            try:
                got = self.sim.mremap(*args, **kwargs)
            except rmapsim.BadAddress:
                assert self.observed() == before
                return
            assert got == old
            self.model.mremap_shrink(pid, old, old_n, new_n)
            return
        if plan[0] == "grow":
            v = plan[1]
            nxt = next((w for w in vlist if w["start"] >= v["end"]), None)
            grown = dict(v, end=old + new_n * PAGE)
            if nxt is not None and mergeable_either_way(self.ERA, grown, nxt):
                # mremap grows in place with vma_adjust and no vma_merge before 6.1, leaving
                # a neighbour mergeable one way or both (mm/test_mremap.py::
                # test_merge_next_to_mremap_grown_vma); a later anon_vma_prepare of the
                # grown VMA can then reuse next's anon_vma, making them mergeable both ways
                # with no merge to come. 6.1+ merge them (vma_merge_extend; see
                # test_mremap_grow_merges_next_in_6_18) -- keep the machine clear of it
                return
        if plan[0] in ("same", "shrink", "grow"):
            got = self.sim.mremap(*args, **kwargs)
            assert got == old
            if plan[0] == "shrink":
                self.model.mremap_shrink(pid, old, old_n, new_n)
            elif plan[0] == "grow":
                self.model.mremap_grow(pid, old, old_n, new_n)
            return
        _, fixed_addr, v = plan
        lay = page_layout(self.raw, pid)
        simple = simple_merge(self.ERA)
        if simple and fixed_addr is not None and copy_vma_into_unfaulted(lay, old, new_n, fixed_addr):
            return  # the known copy_vma defect (see copy_vma_into_unfaulted)
        if not simple and fixed_addr is not None and copy_vma_into_unfaulted(lay, old, new_n, fixed_addr):
            event("mremap: beside an unfaulted neighbour (refused or dup_anon_vma)")
        got = self.sim.mremap(*args, **kwargs)
        if fixed_addr is not None:
            assert got == fixed_addr
        else:
            # get_unmapped_area while the old range is still mapped: a free range
            assert got % PAGE == 0 and got + new_n * PAGE <= MMAP_BASE
            assert self.model.free_range(pid, got, new_n), f"mremap moved onto busy {got:#x}"
            if simple and copy_vma_into_unfaulted(lay, old, new_n, got):
                self.stopped = f"mremap moved {old:#x} beside an unfaulted VMA at {got:#x}"
                KNOWN_DEFECT_HITS["copy_vma"] += 1
                return
        self.model.mremap_move(pid, old, old_n, new_n, got, fixed_addr is not None, v["anon_vma"] is not None)

    # ---- reclaim

    def _try_to_unmap(self, ps):
        """ps: model page ids, or None for every anon page."""
        handles = None if ps is None else [self.ids.handle_of[p] for p in ps]
        # page ids of the pages not yet seen by a check (initialize): learn them first
        if ps is None and set(self.ids.handle_of) != set(self.model.pages):
            check_against_model(self.raw, self.model, self.ids)
        stats = self.sim.try_to_unmap(handles)
        rows = scan_rows(stats)
        order = list(self.model.pages) if ps is None else ps
        by_handle = {self.ids.handle_of[p]: p for p in order}
        assert sorted(r["page"] for r in rows) == sorted(by_handle)
        before = {p: self.model.try_to_unmap(p) for p in order}
        event(f"try_to_unmap: {min(sum(before.values()), 3)}{'+' if sum(before.values()) >= 3 else ''} mappings")
        for r in rows:
            # every mapping is found (and the walk stops once the page is unmapped)
            assert r["mappings_found"] == r["mapcount"] == before[by_handle[r["page"]]], r

    @precondition(lambda self: self.model.pages)
    @rule(data=st.data())
    def try_to_unmap(self, data):
        if self.stopped:
            return
        if data.draw(st.booleans()):
            ps = None
        else:
            ps = data.draw(st.lists(st.sampled_from(sorted(self.model.pages)), unique=True))
        self._try_to_unmap(ps)

    @rule(i=IDX, j=IDX)
    def reclaim_vma(self, i, j):
        """Reclaim as page-out of one region does it: try_to_unmap every anon page one VMA
        of a process maps (the walks also unmap them from every other process)."""
        if self.stopped or not self.model.procs:
            return
        pid = self.pick(i)
        r = self._vma_range(pid, j, 0, None)
        if r is None:
            return
        m = self.model.procs[pid]
        ps = []
        for a in self.model.addrs(*r):
            e = m[a]
            if e.kind == PAGEK and e.ref not in ps:
                ps.append(e.ref)
        if ps:
            self._try_to_unmap(ps)

    @precondition(lambda self: self.model.pages)
    @rule(data=st.data())
    def drop_swap_cache(self, data):
        if self.stopped:
            return
        if data.draw(st.booleans()):
            ps = None
        else:
            ps = data.draw(st.lists(st.sampled_from(sorted(self.model.pages)), unique=True))
        handles = None if ps is None else [self.ids.handle_of[p] for p in ps]
        got = self.sim.drop_swap_cache(handles)
        assert got == self.model.drop_swap_cache(ps)

    # ---- checks

    def verify(self):
        """check() and the model comparison; for a buggy era, account for its bugs."""
        if self.stopped:
            return
        try:
            self.raw.check()
        except rmapsim.InvariantViolation as e:
            if self.ERA not in BUGGY_BREAKS:
                raise
            n = invariant_number(e)
            assert n in BUGGY_BREAKS[self.ERA], f"{self.ERA} broke an invariant its bug does not explain: {e}"
            if FIRST_BREAK[self.ERA] is not None:
                assert n == FIRST_BREAK[self.ERA], f"{self.ERA} first broke with invariant {n}: {e}"
            note(f"{self.ERA} broke after {self.sim.calls} calls: {e}")
            # the same calls on the correct era (replayed in lockstep, check()ed after each
            # one) ...
            self.sim.shadow.check()
            # ... give the same page tables: the bug is in the rmap (unless the two had cut
            # VMAs differently before, see Lockstep)
            if self.sim.diverged is None:
                assert page_level_state(self.raw) == page_level_state(self.sim.shadow)
            BREAK_STATS[self.ERA]["broke"] += 1
            BREAK_STATS[self.ERA]["invariants"][n] += 1
            self.stopped = f"{self.ERA} broke: {e}"
            return
        pmap, handles = check_against_model(self.raw, self.model, self.ids)
        self.apart = {pid: check_vma_rules(self.raw, pid, self.ERA, self.apart.get(pid)) for pid in self.model.procs}
        check_rmap(self.raw, pmap, sorted(handles.values()), self.ERA)

    @invariant()
    def consistent(self):
        self.steps += 1
        self.verify()

    def reveal_swap(self):
        """Read-fault every swap entry (after making every VMA readable): each maps its
        slot's page, so the page partition the model predicts now covers the slots."""
        for pid in self.live():
            if self.stopped:
                return
            for a, e in sorted(self.model.procs[pid].items()):
                if not e.prot:
                    unfaulted = unfaulted_pages(self.sim, pid)
                    self.sim.mprotect(pid, a, PAGE, "r")
                    self.model.mprotect(pid, a, 1, "r", unfaulted)
            swapped = [a for a, e in self.model.procs[pid].items() if e.kind == SWAP]
            for a in sorted(swapped):
                self._touch(pid, a, 1, False)
            self.verify()

    def teardown(self):
        event(f"swap-ins before teardown: {min(self.model.swapins, 5)}{'+' if self.model.swapins >= 5 else ''}")
        event(f"stopped: {self.stopped.split(':')[0] if self.stopped else 'no'}")
        event(f"steps: {self.steps // 10 * 10}+")
        if self.ERA in BUGGY_BREAKS:
            BREAK_STATS[self.ERA]["runs"] += 1
            BREAK_STATS[self.ERA]["diverged"] += self.sim.diverged is not None
        if not self.stopped:
            self.reveal_swap()
        if self.stopped:
            return  # a buggy era after its bug: exit may meet a freed anon_vma; nothing to check
        # exit frees everything: nothing may leak (invariant 6, docs/contract.md#invariants)
        for pid in self.live():
            self.sim.exit(pid)
            self.model.exit(pid)
        self.raw.check()
        assert not self.model.pages and not self.model.slots
        assert all(v == 0 for v in counts(self.raw).values()), counts(self.raw)


# the correct era each buggy era runs in lockstep with: the one whose rules differ only by
# the bug (2.6.34-rc1 -> 2.6.34: the rc4 fixes; 3.19 -> 6.0: the 2022 reuse rule; 6.0 also
# has wipeonfork, which the 3.19 machine does not use;
# 7.0-rc1 -> 7.0: the one fixed statement of 3a206a8649f8)
SHADOWS = {"2.6.34-rc1": "2.6.34", "3.19": "6.0", "7.0-rc1": "7.0"}


def _class_name(prefix, era):
    return prefix + era.replace(".", "_").replace("-", "_")


MACHINES = {
    era: type(_class_name("Machine_", era), (RmapMachine,), {"ERA": era, "SHADOW": SHADOWS.get(era)})
    for era in EVERY_ERA
}


# one unittest-style TestCase per sound era (TestStateful_2_6_33 ... TestStateful_6_18)
SOUND_MACHINE_EXAMPLES = 60
for _era in SOUND_ERAS:
    MACHINES[_era].TestCase.settings = at_least(SOUND_MACHINE_EXAMPLES, 50)
    globals()[_class_name("TestStateful_", _era)] = MACHINES[_era].TestCase
del _era


def test_every_era_has_a_machine_and_rules():
    """The machines, the differential and the long runs cover every preset, and the rules
    the tests assume (helpers.ERA_RULES, from docs/contract.md#eras-and-knobs and docs/eras.md) are the presets' knobs."""
    assert tuple(rmapsim.eras()) == EVERY_ERA
    assert set(MACHINES) == set(EVERY_ERA) == set(ERA_RULES) == set(STRUCT_SIZES)
    assert set(SOUND_ERAS) | set(BUGGY_BREAKS) == set(EVERY_ERA)
    words = {
        "linking": {"legacy": "legacy", "chain": "chain"},
        "prepare_reuse": {"any": "any_compatible", "singular": "singular_chain"},
        "merge_rule": {"simple": "simple", "singular": "singular_chain", "2025": "case_2025"},
        "index": {"list": "list", "itree": "interval_tree"},
        "fork_reuse": {"never": "never", "degree": "degree", "active": "active_vmas"},
    }
    for era, r in ERA_RULES.items():
        k = rmapsim.Policy.preset(era).as_dict()
        assert k["linking"] == words["linking"][r["linking"]], era
        assert k["prepare_reuse"] == words["prepare_reuse"][r["prepare"]], era
        assert k["merge_rule"] == words["merge_rule"][r["merge"]], era
        assert k["index"] == words["index"][r["index"]], era
        assert k["fork_reuse"] == words["fork_reuse"][r["fork_reuse"]], era
        assert k["lock_scope"] == ("root" if r["lock_root"] else "per_anon_vma"), era
        assert (k["lock_kind"] == "rwsem") == r["lock_shared"], era
        assert k["has_wipeonfork"] == str(r["wipeonfork"]).lower(), era
        assert (
            k["swapin_target"]
            == {"vma": "vma_anon_vma", "oldest": "oldest_unless_exclusive", "root": "root_unless_exclusive"}[
                r["swapin"]
            ]
        ), era
        assert k["prepare_links_at_head"] == str(r["prepare_head"]).lower(), era
        assert k["swapin_keeps_anon_mapping"] == str(r["swapin_keeps"]).lower(), era
        assert k["mremap_expand_merges"] == str(r["mremap_merges_next"]).lower(), era
        assert k["clone_reverses_chain"] == str(not r["root_first"]).lower(), era
        sizes = STRUCT_SIZES[era]
        assert [int(k["size_" + t]) for t in ("vm_area_struct", "anon_vma", "anon_vma_chain")] == [
            sizes["vm_area_struct"],
            sizes["anon_vma"],
            sizes["anon_vma_chain"],
        ], era
    for era, shadow in SHADOWS.items():
        assert era in BUGGY_BREAKS and shadow in SOUND_ERAS


def _run_buggy_machine(era, examples):
    stats = BREAK_STATS[era]
    before = dict(stats, invariants=Counter(stats["invariants"]))
    run_state_machine_as_test(MACHINES[era], settings=at_least(examples, 50))
    runs = stats["runs"] - before["runs"]
    broke = stats["broke"] - before["broke"]
    diverged = stats["diverged"] - before["diverged"]
    inv = stats["invariants"] - before["invariants"]
    print(
        f"\n{era} state machine: {broke} of {runs} runs broke an invariant "
        f"(by invariant: {dict(sorted(inv.items()))}); {SHADOWS[era]} passed the same calls each time "
        f"(in {diverged} runs {era} had merged VMAs {SHADOWS[era]} keeps apart)"
    )
    return runs, broke


def test_stateful_rc1():
    """The same machine on the buggy 2.6.34-rc1 (see the module docstring)."""
    runs, broke = _run_buggy_machine("2.6.34-rc1", 200)
    # the machine does reach rc1's bugs: about one run in ten breaks an invariant, so with
    # at least 200 runs a run without any break means the machine lost its reach
    assert runs >= 200 and broke > 0


def test_stateful_7_0_rc1():
    """The same machine on 7.0-rc1, in lockstep with 7.0. The machine injects no allocation
    failure, and 7.0-rc1's bug needs one (a failed clone in dup_anon_vma), so 7.0-rc1 must
    pass every run with the same page tables as 7.0 (tests/eras/test_mainline.py and the
    fuzzer reach the bug)."""
    runs, broke = _run_buggy_machine("7.0-rc1", 30)
    assert runs >= 30 and broke == 0


def test_stateful_3_19():
    """The same machine on 3.19, in lockstep with 6.0: where 3.19's degree-based reuse
    breaks invariant 4 (CVE-2022-42703), 6.0 passes the same calls with the same page
    tables. (test_long_runs is the one that must reach the bug.)"""
    runs, broke = _run_buggy_machine("3.19", 60)
    assert runs >= 60
