"""Randomised tests: a model-checked state machine per era, and a 2.6.33 vs 2.6.34 differential.

The page-level model is era independent (SPEC.md section 2: every era produces the same
abstract state). It follows the kernel's fault rules:

* mmap gives fresh, unpopulated pages; munmap drops the pages (a range with no mapping at all
  is BadAddress per the contract);
* a read fault maps the zero page (no anon page: page_at is None);
* a write fault on an empty PTE or the zero page allocates a new page
  (do_anonymous_page / do_wp_page on a non-anon page);
* a write fault on an anon page copies it when page_mapcount > 1 and reuses it when == 1
  (do_wp_page -> reuse_swap_page);
* fork shares every anon page (copy_page_range), exit/exec drop the whole address space.

On top of the page-level model, rmap-level properties that hold in every list era are checked:
rmap walks find every mapping, counts() agree with what is observable, and the era rules that
can be read through the API (2.6.33: page->mapping == vma->anon_vma for every mapping, the
__page_check_anon_rmap BUG_ON; 2.6.34: chain bookkeeping).
"""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import given, note
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import rmapsim

from _simutil import (
    MMAP_BASE,
    PAGE,
    PAGE_SHIFT,
    STRUCT_SIZES,
    anon_pages,
    coalesce,
    counts,
    is_chain_era,
    layout,
    norm_prot,
    page_map,
    pids,
    scan_rows,
    sharing_partition,
    vmas,
)

WINDOW = 24  # pages of fixed-address playground right below mmap_base, where addr=None lands
WIN_LO = MMAP_BASE - WINDOW * PAGE
PROTS = ("rw", "rw", "rw", "r", "rwx", "wr", "w", "x", "none")
MAX_PROCS = 5
IDX = st.integers(0, 1 << 16)


# --------------------------------------------------------------------------- page-level model


class Model:
    """Era-independent abstract state: pid -> {page addr: [prot, page id or None]}."""

    def __init__(self):
        self.procs = {}
        self.next_pid = 1
        self.next_page = 0

    def _new_page(self):
        self.next_page += 1
        return self.next_page

    def mapcount(self):
        return Counter(c for m in self.procs.values() for (_, c) in m.values() if c is not None)

    def spawn(self):
        pid = self.next_pid
        self.next_pid += 1
        self.procs[pid] = {}
        return pid

    def fork(self, pid):
        child = self.next_pid
        self.next_pid += 1
        self.procs[child] = {a: list(v) for a, v in self.procs[pid].items()}
        return child

    def exit(self, pid):
        del self.procs[pid]

    def exec(self, pid):
        self.procs[pid] = {}

    def mmap(self, pid, addr, npages, prot):
        for i in range(npages):
            self.procs[pid][addr + i * PAGE] = [norm_prot(prot), None]

    def free_range(self, pid, addr, npages):
        return all(addr + i * PAGE not in self.procs[pid] for i in range(npages))

    def munmap_ok(self, pid, addr, npages):
        return not self.free_range(pid, addr, npages)

    def munmap(self, pid, addr, npages):
        for i in range(npages):
            self.procs[pid].pop(addr + i * PAGE, None)

    def touch_ok(self, pid, addr, npages, write):
        m = self.procs[pid]
        for i in range(npages):
            e = m.get(addr + i * PAGE)
            if e is None:
                return False
            if write and "w" not in e[0]:
                return False
            if not write and not e[0]:
                return False
        return True

    def touch(self, pid, addr, npages, write):
        if not write:
            return  # zero page or already present: no anon page changes
        m = self.procs[pid]
        for i in range(npages):
            e = m[addr + i * PAGE]
            if e[1] is None or self.mapcount()[e[1]] > 1:
                e[1] = self._new_page()  # new page / COW copy
            # else: sole mapper, the page is reused in place


def expanded(sim, pid):
    """{page addr: prot} from the simulator's VMAs of pid."""
    out = {}
    for v in vmas(sim, pid):
        for a in range(v["start"], v["end"], PAGE):
            assert a not in out, f"pid {pid}: page {a:#x} covered by two VMAs"
            out[a] = v["prot"]
    return out


def check_against_model(sim, model, handle_of=None):
    """Compare sim with the page-level model. handle_of (model page id -> sim handle, kept
    across steps) also pins page identity over time: a page the model kept (sole-mapper COW
    reuse, untouched pages) must keep its handle, and a page the model replaced (new page,
    COW copy) must get a handle no surviving page has."""
    sim.check()
    assert pids(sim) == sorted(model.procs)
    pmap = page_map(sim)
    # page-level layout and protections
    for pid, m in model.procs.items():
        assert expanded(sim, pid) == {a: e[0] for a, e in m.items()}, f"pid {pid}"
    # which (pid, addr) hold an anon page, and which of them share one
    model_map = {
        (pid, a): e[1]
        for pid, m in model.procs.items()
        for a, e in m.items()
        if e[1] is not None
    }
    assert set(pmap) == set(model_map)
    assert sharing_partition(pmap) == sharing_partition(model_map)
    if handle_of is not None:
        now = {model_map[k]: pmap[k] for k in model_map}
        previous = set(handle_of.values())
        for mid, h in now.items():
            if mid in handle_of:
                assert handle_of[mid] == h, f"page {mid} changed handle {handle_of[mid]} -> {h}"
            else:
                # generational handles: a new page never shows an earlier page's handle
                assert h not in previous, f"new page {mid} has the old handle {h}"
        assert len(set(now.values())) == len(now)
        handle_of.clear()
        handle_of.update(now)
    assert sorted(set(pmap.values())) == anon_pages(sim)
    c = counts(sim)
    assert c["mm"] == len(model.procs)
    assert c["vma"] == sum(len(vmas(sim, p)) for p in model.procs)
    assert c["page"] == len(set(model_map.values()))
    assert len(pmap) <= c["pte"] <= sum(len(m) for m in model.procs.values())
    return pmap


def check_vma_rules(sim, pid):
    vs = vmas(sim, pid)
    for v in vs:
        assert v["start"] % PAGE == 0 and v["end"] % PAGE == 0 and v["start"] < v["end"]
        # anonymous pgoff = start >> 12 at creation; splits and merges keep it linear and
        # nothing here moves a VMA (no mremap), so it always equals start >> 12
        assert v["pgoff"] == v["start"] >> PAGE_SHIFT
        if is_chain_era(sim):
            # 2.6.34: vma->anon_vma is in vma's chain; no anon_vma -> empty chain
            assert (v["chain_len"] == 0) == (v["anon_vma"] is None)
    for a, b in zip(vs, vs[1:]):
        assert a["end"] <= b["start"], f"pid {pid}: VMAs overlap or are unsorted"
        if a["end"] == b["start"] and a["prot"] == b["prot"]:
            # vma_merge merges an adjacent same-flags, pgoff-contiguous neighbour unless both
            # carry anon_vmas and those differ (is_mergeable_anon_vma)
            assert a["anon_vma"] is not None and b["anon_vma"] is not None, (
                f"pid {pid}: unmerged neighbours {a} {b}"
            )
            assert a["anon_vma"] != b["anon_vma"], f"pid {pid}: unmerged neighbours {a} {b}"
    if is_chain_era(sim):
        # within one mm, VMAs sharing an anon_vma have identical chains (SPEC 5.4)
        by_av = {}
        for v in vs:
            if v["anon_vma"] is not None:
                by_av.setdefault(v["anon_vma"], set()).add(v["chain_len"])
        assert all(len(s) == 1 for s in by_av.values()), by_av


def check_rmap(sim, pmap):
    groups = Counter(pmap.values())
    where = {}
    for (pid, a), h in pmap.items():
        where.setdefault(h, []).append((pid, a))
    all_vmas = [v for pid in pids(sim) for v in vmas(sim, pid)]

    def covering(pid, a):
        for v in vmas(sim, pid):
            if v["start"] <= a < v["end"]:
                return v
        raise AssertionError(f"no VMA at {pid} {a:#x}")

    full = {r["page"]: r for r in scan_rows(sim.rmap_walk())}
    early = {r["page"]: r for r in scan_rows(sim.page_referenced())}
    assert set(full) == set(groups) == set(early)
    for h, r in full.items():
        # completeness: the full walk finds every PTE mapping the page, and nothing else
        assert r["mapcount"] == groups[h]
        assert r["mappings_found"] == r["mapcount"]
        assert r["mappings_found"] <= r["ptes_checked"] <= r["vmas_in_range"] <= r["vmas_visited"]
        assert r["tree_nodes_visited"] == 0 and r["lock_mode"] == 0
        e = early[h]
        # page_referenced stops after mapcount hits but still finds them all
        assert e["mappings_found"] == e["mapcount"] == r["mapcount"]
        assert e["vmas_visited"] <= r["vmas_visited"]
        for pid, a in where[h]:
            v = covering(pid, a)
            # a VMA holding an anon page has an anon_vma
            assert v["anon_vma"] is not None
            if not is_chain_era(sim):
                # 2.6.33 __page_check_anon_rmap: page->mapping == vma->anon_vma
                assert r["anon_vma"] == v["anon_vma"]
    c = counts(sim)
    avs = {v["anon_vma"] for v in all_vmas if v["anon_vma"] is not None}
    if is_chain_era(sim):
        # each AVC sits in exactly one VMA's chain; every live anon_vma has >= 1 AVC
        assert c["anon_vma_chain"] == sum(v["chain_len"] for v in all_vmas)
        assert len(avs) <= c["anon_vma"] <= c["anon_vma_chain"]
    else:
        # 2.6.33: an anon_vma lives exactly as long as some VMA is on its list
        assert c["anon_vma_chain"] == 0
        assert c["anon_vma"] == len(avs)
    size = STRUCT_SIZES[sim.era]
    mem = {k: int(v) for k, v in sim.memory().items()}
    assert mem["vm_area_struct"] == size["vm_area_struct"] * c["vma"]
    assert mem["anon_vma"] == size["anon_vma"] * c["anon_vma"]
    assert mem["anon_vma_chain"] == size["anon_vma_chain"] * c["anon_vma_chain"]


# --------------------------------------------------------------------------- state machine


class RmapMachine(RuleBasedStateMachine):
    ERA = None

    def __init__(self):
        super().__init__()
        self.sim = rmapsim.Simulator(era=self.ERA, seed=0)
        self.model = Model()
        self.handle_of = {}

    def live(self):
        return sorted(self.model.procs)

    def pick(self, i):
        live = self.live()
        return live[i % len(live)]

    def expect_bad_address(self, fn, *args, **kwargs):
        before = (counts(self.sim), page_map(self.sim))
        try:
            fn(*args, **kwargs)
        except rmapsim.BadAddress:
            pass
        else:
            raise AssertionError(f"{fn.__name__}{args} should have raised BadAddress")
        assert (counts(self.sim), page_map(self.sim)) == before

    @initialize(
        slot=st.integers(0, WINDOW - 8),
        npages=st.integers(1, 8),
        prot=st.sampled_from(PROTS),
        write=st.booleans(),
        fork=st.booleans(),
    )
    def first_process(self, slot, npages, prot, write, fork):
        """Start from a process with one mapping (optionally written and forked), so that
        even short runs exercise COW, splits and merges."""
        pid = self.sim.spawn()
        assert pid == self.model.spawn()
        addr = WIN_LO + slot * PAGE
        assert self.sim.mmap(pid, npages * PAGE, addr=addr, prot=prot) == addr
        self.model.mmap(pid, addr, npages, prot)
        if write and "w" in prot:
            self._touch(pid, addr, npages, True)
        if fork:
            assert self.sim.fork(pid) == self.model.fork(pid)

    # One rule for the whole process lifecycle, so that memory operations (several rules)
    # make up most steps: hypothesis picks uniformly among enabled rules.
    @rule(
        kind=st.sampled_from(["spawn", "fork", "fork", "fork_many", "exit", "exec"]),
        i=IDX,
        n=st.integers(1, 2),
    )
    def lifecycle(self, kind, i, n):
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
            assert self.sim.fork(pid) == self.model.fork(pid)
        elif kind == "fork_many":
            got = [int(k) for k in self.sim.fork_many(pid, n)]
            assert sorted(got) == [self.model.fork(pid) for _ in range(n)]
        elif kind == "exit":
            self.sim.exit(pid)
            self.model.exit(pid)
        else:
            self.sim.exec(pid)
            self.model.exec(pid)

    @precondition(lambda self: self.model.procs)
    @rule(
        i=IDX,
        slot=st.one_of(st.none(), st.integers(0, WINDOW - 1)),
        npages=st.integers(1, 4),
        prot=st.sampled_from(PROTS),
    )
    def mmap(self, i, slot, npages, prot):
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
        vs = vmas(self.sim, pid)
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
        return WIN_LO + slot * PAGE, min(npages, WINDOW - slot)

    def _munmap(self, pid, addr, npages):
        if self.model.munmap_ok(pid, addr, npages):
            self.sim.munmap(pid, addr, npages * PAGE)
            self.model.munmap(pid, addr, npages)
        else:
            self.expect_bad_address(self.sim.munmap, pid, addr, npages * PAGE)

    def _touch(self, pid, addr, npages, write):
        if self.model.touch_ok(pid, addr, npages, write):
            self.sim.touch(pid, addr, npages * PAGE, write=write)
            self.model.touch(pid, addr, npages, write)
        else:
            self.expect_bad_address(self.sim.touch, pid, addr, npages * PAGE, write=write)

    @precondition(lambda self: self.model.procs)
    @rule(i=IDX, j=IDX, off=st.integers(0, 6), npages=st.integers(1, 3), clip=st.booleans())
    def munmap_in_vma(self, i, j, off, npages, clip):
        pid = self.pick(i)
        r = self._vma_range(pid, j, off, npages, clip) or self._window_range(off, npages)
        self._munmap(pid, *r)

    @precondition(lambda self: self.model.procs)
    @rule(i=IDX, slot=st.integers(0, WINDOW - 1), npages=st.integers(1, 4))
    def munmap_window(self, i, slot, npages):
        self._munmap(self.pick(i), *self._window_range(slot, npages))

    @precondition(lambda self: self.model.procs)
    @rule(
        i=IDX,
        j=IDX,
        off=st.integers(0, 6),
        npages=st.integers(1, 3),
        write=st.booleans(),
        clip=st.sampled_from([True, True, True, False]),
    )
    def touch_in_vma(self, i, j, off, npages, write, clip):
        pid = self.pick(i)
        r = self._vma_range(pid, j, off, npages, clip) or self._window_range(off, npages)
        self._touch(pid, *r, write)

    @precondition(lambda self: self.model.procs)
    @rule(i=IDX, j=IDX)
    def write_whole_vma(self, i, j):
        pid = self.pick(i)
        r = self._vma_range(pid, j, 0, None)
        if r is not None:
            self._touch(pid, *r, True)

    @precondition(lambda self: self.model.procs)
    @rule(i=IDX, slot=st.integers(0, WINDOW - 1), npages=st.integers(1, 4), write=st.booleans())
    def touch_window(self, i, slot, npages, write):
        self._touch(self.pick(i), *self._window_range(slot, npages), write)

    @precondition(lambda self: len(self.model.procs) >= 2)
    @rule(i=IDX, j=IDX, k=IDX, write=st.booleans())
    def touch_many(self, i, j, k, write):
        # the same range of one process's VMA, in two processes (often a parent and a child)
        a, b = self.pick(i), self.pick(j)
        group = [a] if a == b else [a, b]
        r = self._vma_range(a, k, 0, None)
        if r is None:
            return
        addr, npages = r
        if all(self.model.touch_ok(p, addr, npages, write) for p in group):
            self.sim.touch_many(group, addr, npages * PAGE, write=write)
            for p in group:
                self.model.touch(p, addr, npages, write)
        else:
            self.expect_bad_address(self.sim.touch_many, group, addr, npages * PAGE, write=write)

    @invariant()
    def consistent(self):
        pmap = check_against_model(self.sim, self.model, self.handle_of)
        for pid in self.model.procs:
            check_vma_rules(self.sim, pid)
        check_rmap(self.sim, pmap)

    def teardown(self):
        # exit frees everything: nothing may leak (SPEC 5.6)
        for pid in self.live():
            self.sim.exit(pid)
        self.sim.check()
        assert all(v == 0 for v in counts(self.sim).values()), counts(self.sim)


class Machine2633(RmapMachine):
    ERA = "2.6.33"


class Machine2634(RmapMachine):
    ERA = "2.6.34"


TestStateful2633 = Machine2633.TestCase
TestStateful2634 = Machine2634.TestCase


# --------------------------------------------------------------------------- differential


def draw_op(data, sim):
    """One random operation, with arguments chosen from sim's current state."""
    live = pids(sim)
    kinds = ["mmap", "mmap", "munmap", "munmap"] + ["touch"] * 6 + ["fork", "exit", "exec"]
    if len(live) < MAX_PROCS:
        kinds += ["spawn", "fork", "fork"]
    if not live:
        return ("spawn", ())
    kind = data.draw(st.sampled_from(kinds))
    if kind == "spawn":
        return ("spawn", ())
    pid = data.draw(st.sampled_from(live))
    if kind == "fork":
        if len(live) >= MAX_PROCS:
            kind = "exit"
        else:
            return ("fork", (pid,))
    if kind in ("exit", "exec"):
        return (kind, (pid,))
    npages = data.draw(st.integers(1, 4))
    if kind == "mmap":
        slot = data.draw(st.one_of(st.none(), st.integers(0, WINDOW - 1)))
        prot = data.draw(st.sampled_from(PROTS))
        if slot is None:
            return ("mmap", (pid, npages * PAGE, None, prot))
        npages = min(npages, WINDOW - slot)
        return ("mmap", (pid, npages * PAGE, WIN_LO + slot * PAGE, prot))
    vs = vmas(sim, pid)
    if vs and data.draw(st.sampled_from([True, True, True, False])):
        # mostly inside one VMA, sometimes running past its end
        v = data.draw(st.sampled_from(vs))
        size = (v["end"] - v["start"]) // PAGE
        off = data.draw(st.integers(0, size - 1))
        addr = v["start"] + off * PAGE
        if data.draw(st.sampled_from([True, True, True, False])):
            npages = min(npages, size - off)
    else:
        slot = data.draw(st.integers(0, WINDOW - 1))
        addr, npages = WIN_LO + slot * PAGE, min(npages, WINDOW - slot)
    if kind == "munmap":
        return ("munmap", (pid, addr, npages * PAGE))
    return ("touch", (pid, addr, npages * PAGE, data.draw(st.booleans())))


def apply_op(sim, op):
    kind, args = op
    try:
        if kind == "spawn":
            out = sim.spawn()
        elif kind == "fork":
            out = sim.fork(*args)
        elif kind == "exit":
            out = sim.exit(*args)
        elif kind == "exec":
            out = sim.exec(*args)
        elif kind == "mmap":
            pid, length, addr, prot = args
            out = sim.mmap(pid, length, addr=addr, prot=prot)
        elif kind == "munmap":
            out = sim.munmap(*args)
        else:
            pid, addr, length, write = args
            out = sim.touch(pid, addr, length, write=write)
    except rmapsim.SimError as e:
        return ("error", type(e).__name__)
    return ("ok", None if out is None else int(out))


def abstract_state(sim, tainted):
    live = pids(sim)
    pmap = page_map(sim)
    c = counts(sim)
    return {
        "pids": live,
        # VMA boundaries may differ across eras only inside a process created by fork
        # (2.6.33 children reuse the family anon_vma where 2.6.34 allocates their own, and
        # vma_merge case 1 refuses prev/next with different anon_vmas); the page-level
        # layout (coalesced VMAs) is the same everywhere
        "layout": {p: layout(sim, p) for p in live if p not in tainted},
        "coalesced": {p: coalesce(layout(sim, p)) for p in live},
        "anon": sorted(pmap),
        "partition": sharing_partition(pmap),
        "counts": {
            k: c[k]
            for k in ("mm", "page", "pte") + (("vma",) if not set(live) & tainted else ())
        },
    }


@given(st.data())
def test_eras_agree_on_abstract_state(data):
    a = rmapsim.Simulator(era="2.6.33", seed=0)
    b = rmapsim.Simulator(era="2.6.34", seed=0)
    tainted = set()  # pids whose mm came from fork (cleared by exec)
    # a common start: one process with a written mapping, then random steps
    npages = data.draw(st.integers(1, 8), label="npages")
    start = [
        ("spawn", ()),
        ("mmap", (1, npages * PAGE, WIN_LO + 8 * PAGE, "rw")),
        ("touch", (1, WIN_LO + 8 * PAGE, npages * PAGE, True)),
    ]
    steps = data.draw(st.integers(1, 40), label="steps")
    for i in range(len(start) + steps):
        op = start[i] if i < len(start) else draw_op(data, a)
        note(repr(op))
        ra, rb = apply_op(a, op), apply_op(b, op)
        assert ra == rb, f"{op}: 2.6.33 -> {ra}, 2.6.34 -> {rb}"
        if op[0] == "fork" and ra[0] == "ok":
            tainted.add(ra[1])
        if op[0] == "exec" and ra[0] == "ok":
            tainted.discard(op[1][0])
        a.check()
        b.check()
        sa, sb = abstract_state(a, tainted), abstract_state(b, tainted)
        assert sa == sb, f"after {op}"
