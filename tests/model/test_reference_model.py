"""Differential test: the Rust engine against the pure-Python reference model
(python/rmapsim/reference.py, written from the 2.6.33 / 2.6.34 kernel rules), in lockstep.

Every step applies one random operation to ``rmapsim.Simulator`` and to ``ReferenceModel``
of the same era, then asserts that they agree on:

* the return value, or the type of the exception raised;
* ``counts()`` (mm, vma, anon_vma, anon_vma_chain, page, pte, swap_slot, swap_cache);
* per pid the VMA list (start, end, pgoff, prot, flags, chain_len, file);
* the partition of all VMAs (all processes) by anon_vma, and the identity of each
  anon_vma over time (a bijection engine handle <-> model anon_vma, learnt and kept);
* per (pid, page address) the page-table entry kind (none / zero page / page-cache page of
  a private file mapping, which the engine shows like the zero page / anon page / swap
  entry) and, for anon pages, which page it is (a bijection engine page handle <-> model
  page, learnt and kept: this is the sharing partition, and page identity over time);
* per live page: mapcount, page->index, whether it is in the swap cache, page->mapping;
* per mapped page: the candidates its full rmap walk visits (``rmap_walk``'s
  ``vmas_visited``), the mappings it finds, and the candidates ``page_referenced`` visits
  before its early stop (which depends on the anon_vma list order);
* for try_to_unmap / madvise(pageout): per page the walk's vmas_visited and mappings found.

The operations include private file mappings (two files, offsets that make neighbours
continue each other, or that equal the address so that anonymous and file neighbours are
pgoff-contiguous), writes to their page-cache entries and moves beside same-file VMAs; the
model's kernel paths for them are reported as hypothesis events (FILE_EVENTS).

The known latent copy_vma defect (docs/bugs.md: mremap moving a faulted range beside an
unfaulted, pgoff-contiguous neighbour) is modelled as the kernel has it; when a run reaches
it, the step is compared like any other (layouts, counts, partitions) except the walks and
page->mapping of the broken pages, and the run stops there (the kernel state is corrupt).

Profiles: the default ("fast") runs a few seconds; RMAPSIM_HYPOTHESIS_PROFILE=slow runs the
state machines longer, and ``-m slow`` adds seeded long runs (test_long_run).
"""

from __future__ import annotations

import importlib.util
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import rmapsim

from pairtrace import TraceRecorder
from helpers import ROOT, MMAP_BASE, PAGE, layout_states, norm_prot, scan_rows


def _load_reference():
    """The reference model from the source tree (python/rmapsim/reference.py), loaded as a
    submodule of the installed package so that it raises the very exception classes the
    engine raises (the installed copy of the package may predate it)."""
    path = ROOT / "python" / "rmapsim" / "reference.py"
    spec = importlib.util.spec_from_file_location("rmapsim.reference", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rmapsim.reference"] = mod
    spec.loader.exec_module(mod)
    return mod


reference = _load_reference()
ReferenceModel = reference.ReferenceModel

ERAS = ("2.6.33", "2.6.34")
WINDOW = 24  # pages of fixed-address playground right below mmap_base, where addr=None lands
WIN_LO = MMAP_BASE - WINDOW * PAGE
MAX_PROCS = 5
PROTS = ("rw", "rw", "rw", "r", "rwx", "w", "x", "none")
MPROTECT_PROTS = ("r", "rw", "rw", "none", "rwx")
ADVICE = ("normal", "random", "sequential", "dontfork", "dofork", "dontneed", "pageout")
STATE = {".": None, "z": "zero", "p": "page", "s": "page", "w": "swap"}
# the engine's page table shows a page-cache page of a private file mapping as it shows the
# zero page ("z": an entry that maps no anon page); the model names it "file"
ENGINE_KIND = {"file": "zero"}
FILES = (1, 2)  # file identities of the private file mappings the state machine makes

STATS = Counter()  # printed by `pytest -s` (see test_long_run)


# --------------------------------------------------------------------------- lockstep pair

_VMA_LINE = re.compile(r"^  [A-Z] \[(0x[0-9a-f]+), 0x[0-9a-f]+\) .* chain \[([^\]]*)\]$", re.M)
_LEGEND = re.compile(r"\b(av\d+)=(0x[0-9a-f]+)\b")


def layout_chains(sim, pid):
    """{VMA start: [engine anon_vma handles of its chain, oldest first]} from
    render_layout(pid) (api-contract.md: "Chains are listed oldest first")."""
    text = sim.render_layout(pid)
    legend = {label: int(h, 16) for label, h in _LEGEND.findall(text)}
    return {
        int(start, 16): [legend[label] for label in chain.split()]
        for start, chain in _VMA_LINE.findall(text)
    }



def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except rmapsim.SimError as e:
        return ("error", e)


class Pair:
    """An engine and a reference model of one era, driven in lockstep."""

    def __init__(self, era, hypo=False):
        self.era = era
        self.hypo = hypo  # inside a hypothesis test: note() each operation
        self.sim = rmapsim.Simulator(era=era, seed=0)
        self.model = ReferenceModel(era)
        self.page_fwd, self.page_back = {}, {}  # model page id <-> engine page handle
        self.av_fwd, self.av_back = {}, {}  # model anon_vma id <-> engine anon_vma handle
        self.stopped = None
        self.failed = False  # a comparison failed: teardown must not mask it
        self.steps = 0
        self.ops = []  # for failure messages
        self.rec = TraceRecorder()  # the ops as a trace: the reproducer of a finding
        self.violation = None  # an invariant both the engine and the model found broken (a variant's finding)

    # ---- identity maps

    def _learn(self, fwd, back, m, e, what):
        assert fwd.setdefault(m, e) == e, f"{what}: model {m} was engine {fwd[m]}, now {e}"
        assert back.setdefault(e, m) == m, f"{what}: engine {e} was model {back[e]}, now {m}"

    def to_engine_pages(self, pages):
        return None if pages is None else [self.page_fwd[p] for p in pages]

    def known_pages(self):
        return sorted(p for p in self.model.pages if p in self.page_fwd)

    # ---- one operation

    def apply(self, op):
        try:
            self._apply(op)
        except BaseException:
            self.failed = True
            raise

    def compare(self):
        try:
            self._compare()
        except BaseException:
            self.failed = True
            raise

    def _apply(self, op):
        name, args, kwargs = op
        self.ops.append(op)
        if self.hypo:
            note(f"{self.era} #{len(self.ops)}: {name}{args} {kwargs}")
        margs = args
        eargs = args
        if name in ("try_to_unmap", "drop_swap_cache"):
            eargs = (self.to_engine_pages(args[0]),)
        lines = self.rec.lines_for(self.sim, self.model, name, args, kwargs, self.page_fwd)
        got = _outcome(getattr(self.sim, name), *eargs, **kwargs)
        want = _outcome(getattr(self.model, name), *margs, **kwargs)
        self.rec.outcome(got[0] == "ok")
        if got[0] == "ok" or len(lines) == 1:  # a refused batch op changed nothing: no lines
            self.rec.lines += lines
        if got[0] == "ok" and name in ("spawn", "fork"):
            self.rec.created([got[1]])
        elif got[0] == "ok" and name == "fork_many":
            self.rec.created(got[1])
        ctx = f"{self.era} {name}{args} {kwargs}"
        if want[0] == "error" or got[0] == "error":
            assert got[0] == want[0], f"{ctx}: engine {got[1]!r}, model {want[1]!r}"
            assert type(got[1]) is type(want[1]), f"{ctx}: engine {got[1]!r}, model {want[1]!r}"
            STATS[f"error {type(got[1]).__name__}"] += 1
        else:
            self._compare_result(name, got[1], want[1], ctx)
        self.steps += 1
        STATS[name] += 1

    def _compare_rows(self, stats, rows, ctx, ordered):
        erows = scan_rows(stats)
        assert len(erows) == len(rows), f"{ctx}: {len(erows)} walks, model {len(rows)}"
        cols = ("vmas_visited", "mappings_found", "mapcount")
        if ordered:
            for er, mr in zip(erows, rows):
                assert self.page_fwd.get(mr["page"]) == er["page"], f"{ctx}: walk order {erows} vs {rows}"
                assert tuple(er[c] for c in cols) == tuple(mr[c] for c in cols), f"{ctx}: {er} vs {mr}"
            return
        by_handle = {er["page"]: er for er in erows}
        rest_e, rest_m = [], []
        for mr in rows:
            h = self.page_fwd.get(mr["page"])
            if h is None:
                rest_m.append(tuple(mr[c] for c in cols))
                continue
            er = by_handle.pop(h)
            assert tuple(er[c] for c in cols) == tuple(mr[c] for c in cols), f"{ctx}: {er} vs {mr}"
        rest_e = [tuple(er[c] for c in cols) for er in by_handle.values()]
        assert sorted(rest_e) == sorted(rest_m), f"{ctx}: unpaired walks {rest_e} vs {rest_m}"

    def _compare_result(self, name, got, want, ctx):
        if name == "fork_many":
            assert [int(x) for x in got] == want, f"{ctx}: {got} vs {want}"
        elif name == "madvise":
            self._compare_rows(got, want, ctx, ordered=True)
        elif name == "try_to_unmap":
            self._compare_rows(got, want, ctx, ordered=False)
            found = sum(r["mappings_found"] for r in want)
            STATS["try_to_unmap mappings"] += found
        else:
            assert (None if got is None else int(got)) == want, f"{ctx}: engine {got}, model {want}"

    # ---- state comparison

    def _compare(self):
        sim, model = self.sim, self.model
        live = [int(p) for p in sim.pids()]
        assert sorted(live) == model.pids(), f"pids {live} vs {model.pids()}"
        ec, mc = sim.counts(), model.counts()
        ec = {k: int(ec[k]) for k in mc}
        assert ec == mc, f"counts: engine {ec}\n model {mc}"

        broken = engine_broken = None
        try:
            sim.check()
        except rmapsim.InvariantViolation as e:
            engine_broken = str(e)
        try:
            model.check()
        except rmapsim.InvariantViolation as e:
            # the model's own rmap broke: in a preset only the known copy_vma defect may do
            # that; in a variant the engine must find it broken too (a finding both agree on)
            if not model.copy_vma_defects:
                assert engine_broken, f"the reference model broke by itself: {e}"
                self.violation = (engine_broken, str(e))
            broken = str(e)
        if engine_broken and not broken:
            raise AssertionError(f"the engine breaks an invariant the model keeps: {engine_broken}")

        e_groups, m_groups = {}, {}
        mapped = {}  # model page id -> (pid, addr) of one mapping
        for pid in live:
            ev, mv = sim.vmas(pid), model.vmas(pid)

            def shape(v):
                return (
                    int(v["start"]),
                    int(v["end"]),
                    int(v["pgoff"]),
                    norm_prot(v["prot"]),
                    frozenset(v["flags"]),
                    int(v["chain_len"]),
                    v["file"],
                )

            assert [shape(v) for v in ev] == [shape(v) for v in mv], (
                f"pid {pid} VMAs:\n engine {[shape(v) for v in ev]}\n model  {[shape(v) for v in mv]}"
            )
            for e, m in zip(ev, mv):
                assert (e["anon_vma"] is None) == (m["anon_vma"] is None), f"pid {pid} {e} vs {m}"
                if m["anon_vma"] is not None:
                    e_groups.setdefault(int(e["anon_vma"]), set()).add((pid, int(e["start"])))
                    m_groups.setdefault(m["anon_vma"], set()).add((pid, m["start"]))
                    self._learn(self.av_fwd, self.av_back, m["anon_vma"], int(e["anon_vma"]), "anon_vma")
            # every VMA's anon_vma_chain, entry by entry, in order (2.6.34)
            if model.chain:
                chains = layout_chains(sim, pid)
                assert sorted(chains) == [m["start"] for m in mv], f"pid {pid}: render_layout {chains}"
                for m in mv:
                    got = chains[m["start"]]
                    assert len(got) == len(m["chain"]), f"pid {pid} {m['start']:#x}: chain {got} vs {m['chain']}"
                    for mid, eh in zip(m["chain"], got):
                        self._learn(self.av_fwd, self.av_back, mid, eh, f"pid {pid} {m['start']:#x} chain")
            # page-table entries, page by page
            states = layout_states(sim, pid)
            for v in mv:
                for a in range(v["start"], v["end"], PAGE):
                    kind = model.entry_kind(pid, a)
                    if a in states:  # render_layout shows up to 40 pages of a VMA
                        want = ENGINE_KIND.get(kind, kind)
                        assert STATE[states[a]] == want, f"pid {pid} {a:#x}: engine {states[a]!r}, model {kind}"
                    if kind == "file":
                        STATS["page-cache entries compared"] += 1
                    h = sim.page_at(pid, a)
                    p = model.page_at(pid, a)
                    assert (h is None) == (p is None), f"pid {pid} {a:#x}: engine page {h}, model {p}"
                    if p is not None:
                        self._learn(self.page_fwd, self.page_back, p, int(h), f"page at pid {pid} {a:#x}")
                        mapped.setdefault(p, (pid, a))
                        if a in states:
                            mapcount = model.page_info(p)["mapcount"]
                            assert (states[a] == "s") == (mapcount > 1), f"pid {pid} {a:#x}"
        part = lambda groups: sorted(sorted(g) for g in groups.values())  # noqa: E731
        assert part(e_groups) == part(m_groups), "VMAs share anon_vmas differently"

        # live pages: identity, mapcount, index, swap cache, page->mapping
        e_pages = sorted(int(h) for h in sim.anon_pages())
        m_pages = model.anon_pages()
        unknown_e = [h for h in e_pages if h not in self.page_back]
        unknown_m = [p for p in m_pages if p not in self.page_fwd]
        if len(unknown_e) == 1 and len(unknown_m) == 1:
            # e.g. a page read from swap then copied by its write fault: never seen mapped
            self._learn(self.page_fwd, self.page_back, unknown_m[0], unknown_e[0], "unmapped page")
            unknown_e = unknown_m = []
        for p in m_pages:
            h = self.page_fwd.get(p)
            if h is None:
                continue
            assert h in e_pages, f"model page {p} is alive, engine page {h} is not"
            ei, mi = self.sim.page_info(h), model.page_info(p)
            assert int(ei["mapcount"]) == mi["mapcount"], f"page {h}: {ei} vs {mi}"
            assert int(ei["index"]) == mi["index"], f"page {h}: {ei} vs {mi}"
            assert (ei["swap_slot"] is None) == (mi["swap_slot"] is None), f"page {h}: {ei} vs {mi}"
            av = model.pages[p].mapping
            if broken is None and av is not None and not av.freed:
                if av.id in self.av_fwd or int(ei["anon_vma"]) not in self.av_back:
                    self._learn(self.av_fwd, self.av_back, av.id, int(ei["anon_vma"]), f"page {h}->mapping")
        assert len(unknown_e) == len(unknown_m), "live page sets differ"
        STATS["unpaired pages"] += len(unknown_m)

        # rmap walks of every mapped page
        if self.violation is not None:
            self.stopped = f"invariant violation both find: {broken}"
            STATS["stopped at an invariant violation both find"] += 1
            return
        if broken is not None:
            self.stopped = f"known copy_vma defect: {broken}"
            STATS["stopped at the copy_vma defect"] += 1
            return
        if mapped:
            pids_addrs = {p: mapped[p] for p in mapped}
            handles = [self.page_fwd[p] for p in pids_addrs]
            full = {r["page"]: r for r in scan_rows(sim.rmap_walk(handles))}
            early = {r["page"]: r for r in scan_rows(sim.page_referenced(handles))}
            for p, (pid, a) in pids_addrs.items():
                h = self.page_fwd[p]
                r, e = full[h], early[h]
                mi = model.page_info(p)
                want = model.rmap_walk_len(pid, a)
                assert r["vmas_visited"] == want, f"page {h} at pid {pid} {a:#x}: walk visits {r['vmas_visited']}, model {want}"
                assert r["mappings_found"] == r["mapcount"] == mi["mapcount"], f"page {h}: {r}"
                assert self.av_fwd.get(mi["anon_vma"], r["anon_vma"]) == r["anon_vma"], f"page {h}: {r} vs {mi}"
                want = model.page_referenced_len(pid, a)
                assert e["vmas_visited"] == want, f"page {h}: page_referenced visits {e['vmas_visited']}, model {want}"
                STATS[f"walk len {min(r['vmas_visited'], 4)}"] += 1

    def teardown(self):
        STATS.update(self.model.events)
        STATS["steps"] += self.steps
        if self.stopped or self.failed:
            return
        for pid in self.model.pids():
            self.apply(("exit", (pid,), {}))
        self.compare()
        assert all(v == 0 for v in self.model.counts().values())


# --------------------------------------------------------------------------- operations


class HypoDraw:
    def __init__(self, data):
        self.data = data

    def pick(self, seq):
        return self.data.draw(st.sampled_from(list(seq)))

    def int(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def bool(self):
        return self.data.draw(st.booleans())


class RandDraw:
    def __init__(self, rng):
        self.rng = rng

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def int(self, lo, hi):
        return self.rng.randint(lo, hi)

    def bool(self):
        return self.rng.random() < 0.5


KINDS = (
    ["fork"] * 3
    + ["fork_many", "exit", "exec", "dead_pid"]
    + ["mmap"] * 4
    + ["munmap"] * 3
    + ["touch"] * 8
    + ["touch_many", "touch_whole"]
    + ["touch_swap"] * 3
    + ["touch_file"] * 2
    + ["mprotect"] * 3
    + ["madvise"] * 3
    + ["mremap"] * 4
    + ["try_to_unmap"] * 2
    + ["reclaim_vma"] * 2
    + ["drop_swap_cache"] * 2
)


def _window_range(draw):
    slot = draw.int(0, WINDOW - 1)
    return WIN_LO + slot * PAGE, min(draw.int(1, 4), WINDOW - slot)


def _range(model, pid, draw):
    """Mostly a piece of one VMA (sometimes all of it, sometimes running past its end into
    the next VMA or a hole), else a range of the window."""
    vs = model.vmas(pid)
    if vs and draw.int(0, 7):
        v = draw.pick(vs)
        size = (v["end"] - v["start"]) // PAGE
        if not draw.int(0, 3):
            return v["start"], size
        off = draw.int(0, size - 1)
        n = draw.int(1, 4)
        if draw.int(0, 5):
            n = min(n, size - off)
        return v["start"] + off * PAGE, n
    return _window_range(draw)


def _neighbour_prot(model, pid, addr, draw, choices):
    """Often the prot of a VMA next to the one at addr (mprotect then merges, and
    vma_adjust's importer rule comes into play), else a random one."""
    vs = model.vmas(pid)
    i = next((i for i, v in enumerate(vs) if v["start"] <= addr < v["end"]), None)
    near = [] if i is None else [vs[j]["prot"] or "none" for j in (i - 1, i + 1) if 0 <= j < len(vs)]
    if near and draw.bool():
        return draw.pick(near)
    return draw.pick(choices)


def _entry_run(model, live, kind, draw):
    """(pid, addr, length) of one to three consecutive page-table entries of ``kind`` (the
    model's entry_kind) somewhere in the live processes, or None."""
    found = sorted((p, a) for p in live for a, pte in model.mms[p].ptes.items() if pte.kind == kind)
    if not found:
        return None
    p, a = draw.pick(found)
    n = 1
    while n < 3 and model.entry_kind(p, a + n * PAGE) == kind and draw.bool():
        n += 1
    return (p, a, n * PAGE)


def _file_kwargs(draw, addr, n, near=None):
    """A private file mapping (as rust/core/src/fuzz.rs's extended gen_op makes them): one
    of two files, the offset the window slot (+0/1 page) so that neighbours sometimes
    continue each other; beside a VMA ``near`` = (vma, "after" | "before"), often that
    VMA's file at the offset that continues it (or its old offset: not contiguous)."""
    f = draw.pick(FILES)
    off = (addr - WIN_LO) + draw.int(0, 1) * PAGE
    if not draw.int(0, 5):
        # the offset an anonymous mapping's pgoff would have there: anonymous and file
        # neighbours are then pgoff-contiguous and only vm_file tells them apart
        off = addr
    if near is not None and draw.int(0, 3):
        v, side = near
        pg = v["pgoff"] if side == "after" else v["pgoff"] - n
        pg += (v["end"] - v["start"]) // PAGE if side == "after" else 0
        if v["file"] is not None and draw.int(0, 2):
            f = v["file"]  # else maybe the other file at the contiguous offset
        if pg >= 0 and draw.int(0, 4):
            off = pg * PAGE  # continues the neighbour's pages
        elif draw.bool():
            off = v["pgoff"] * PAGE  # pages not contiguous
    if not draw.int(0, 40):
        # the argument checks: offset not page aligned, identity 0 / too large, no file
        bad = draw.pick(["unaligned", "zero", "large", "nofile", "negative"])
        if bad == "unaligned":
            return {"file": f, "offset": off + 512}
        if bad == "zero":
            return {"file": 0, "offset": off}
        if bad == "large":
            return {"file": 1 << 24, "offset": off}
        if bad == "negative":
            return {"file": f, "offset": -PAGE}
        return {"offset": off}
    if off == 0 and draw.bool():
        return {"file": f}  # offset defaults to 0
    return {"file": f, "offset": off}


def _draw_mmap(model, pid, draw):
    prot = draw.pick(PROTS)
    file = draw.int(0, 2) == 0  # a third of the mmaps are private file mappings
    if draw.int(0, 2) == 0:
        n = draw.int(1, 4)
        kw = {"prot": prot}
        if file:
            kw.update(_file_kwargs(draw, WIN_LO, n))
        return ("mmap", (pid, n * PAGE), kw)
    addr, n = _window_range(draw)
    vs = model.vmas(pid)
    near = None
    if vs and draw.bool():
        # right after or right before an existing VMA (pgoff contiguous: mergeable)
        v = draw.pick(vs)
        side = draw.pick(["after", "before"])
        addr = v["end"] if side == "after" else v["start"] - n * PAGE
        if draw.bool():
            prot = v["prot"] or "none"
        if v["file"] is not None and draw.int(0, 2):
            file = True  # mostly a file mapping beside a file mapping
        near = (v, side)
        if not WIN_LO <= addr <= MMAP_BASE - n * PAGE:
            addr, n = _window_range(draw)
            near = None
    kw = {"addr": addr, "prot": prot}
    if file:
        kw.update(_file_kwargs(draw, addr, n, near))
    return ("mmap", (pid, n * PAGE), kw)


def draw_op(pair, draw):
    """One operation (name, args, kwargs), arguments chosen from the model's state. Page
    arguments are model page ids the engine is known to name."""
    model = pair.model
    live = model.pids()
    if not live:
        return ("spawn", (), {})
    kinds = list(KINDS)
    if len(live) < MAX_PROCS:
        kinds += ["spawn", "fork", "fork"]
    kind = draw.pick(kinds)
    if kind == "spawn":
        return ("spawn", (), {})
    if kind in ("try_to_unmap", "drop_swap_cache"):
        known = pair.known_pages()
        if not known or draw.bool():
            return (kind, (None,), {})
        n = draw.int(1, min(4, len(known)))
        pages = []
        for _ in range(n):
            p = draw.pick(known)
            if p not in pages:
                pages.append(p)
        return (kind, (pages,), {})
    if kind == "dead_pid":
        dead = model._next_pid  # never allocated yet, or an exited one
        gone = [p for p in range(1, model._next_pid) if p not in model.mms]
        if gone and draw.bool():
            dead = draw.pick(gone)
        return (draw.pick(["fork", "exit", "exec"]), (dead,), {})
    pid = draw.pick(live)
    busy = [p for p in live if model.mms[p].vmas]
    if busy and kind not in ("exit", "exec") and draw.int(0, 7):
        pid = draw.pick(busy)  # memory operations mostly where there is memory
    if kind in ("fork", "fork_many"):
        if len(live) >= MAX_PROCS:
            return ("exit", (pid,), {})
        if kind == "fork_many":
            return ("fork_many", (pid, min(2, MAX_PROCS - len(live))), {})
        return ("fork", (pid,), {})
    if kind in ("exit", "exec"):
        return (kind, (pid,), {})
    if kind == "mmap":
        return _draw_mmap(model, pid, draw)
    if kind == "touch_swap":
        run = _entry_run(model, live, "swap", draw)
        if run:
            return ("touch", run, {"write": draw.bool()})
        kind = "touch"
    if kind == "touch_file":
        # a write to page-cache entries (do_wp_page's copy of a file page), or a read
        run = _entry_run(model, live, "file", draw)
        if run:
            p, a, _ = run
            v = next(v for v in model.vmas(p) if v["start"] <= a < v["end"])
            return ("touch", run, {"write": "w" in v["prot"] or not draw.int(0, 5)})
        kind = "touch"
    if kind == "touch_whole":
        vs = model.vmas(pid)
        if vs:
            v = draw.pick(vs)
            return ("touch", (pid, v["start"], v["end"] - v["start"]), {"write": draw.bool()})
        kind = "touch"
    if kind == "touch_many":
        vs = model.vmas(pid)
        other = draw.pick(live)
        if vs:
            v = draw.pick(vs)
            group = [pid] if other == pid else [pid, other]
            return ("touch_many", (group, v["start"], v["end"] - v["start"]), {"write": draw.bool()})
        kind = "touch"
    if kind == "reclaim_vma":
        vs = model.vmas(pid)
        pages = []
        if vs:
            v = draw.pick(vs)
            for a in range(v["start"], v["end"], PAGE):
                p = model.page_at(pid, a)
                if p is not None and p in pair.page_fwd and p not in pages:
                    pages.append(p)
        return ("try_to_unmap", (pages,), {})
    addr, n = _range(model, pid, draw)
    if kind == "munmap":
        return ("munmap", (pid, addr, n * PAGE), {})
    if kind == "touch":
        v = next((v for v in model.vmas(pid) if v["start"] <= addr < v["end"]), None)
        write = draw.int(0, 4) >= 2
        if v is not None and write and "w" not in v["prot"] and draw.int(0, 3):
            write = False  # mostly valid faults; sometimes the BadAddress of a write to r/o
        return ("touch", (pid, addr, n * PAGE), {"write": write})
    if kind == "mprotect":
        return ("mprotect", (pid, addr, n * PAGE, _neighbour_prot(model, pid, addr, draw, MPROTECT_PROTS)), {})
    if kind == "madvise":
        advice = draw.pick(ADVICE + ("wipeonfork",) if not draw.int(0, 30) else ADVICE)
        return ("madvise", (pid, addr, n * PAGE, advice), {})
    assert kind == "mremap"
    how = draw.pick(["shrink", "grow", "grow", "fixed", "fixed", "same"])
    may_move = draw.int(0, 3) != 0
    new_addr = None
    if how == "shrink":
        new_n = max(1, n - draw.int(1, 3))
    elif how == "same":
        new_n = n
    elif how == "grow":
        new_n = n + draw.int(1, 3)
    else:
        new_addr, new_n = _window_range(draw)
        v = next((v for v in model.vmas(pid) if v["start"] <= addr < v["end"]), None)
        if v is not None and draw.int(0, 2) == 0:
            # where copy_vma's merges happen: right beside the source VMA, or back "home"
            # (the address its pgoff says, where a faulted range came from -- and where an
            # unfaulted neighbour mapped meanwhile meets the copy_vma defect)
            new_n = n if draw.bool() else new_n
            home = (v["pgoff"] << 12) + (addr - v["start"])
            choices = [v["end"], v["start"] - new_n * PAGE]
            if home != addr:
                choices += [home, home]
            if v["file"] is not None:
                # beside a VMA of the same file whose pages the moved ones continue (or
                # that continues them): copy_vma's merge of a file range
                pg = v["pgoff"] + (addr - v["start"]) // PAGE
                for w in model.vmas(pid):
                    if w["file"] == v["file"] and w is not v:
                        if w["pgoff"] + (w["end"] - w["start"]) // PAGE == pg:
                            choices += [w["end"]] * 3
                        if w["pgoff"] == pg + new_n:
                            choices += [w["start"] - new_n * PAGE] * 3
            new_addr = draw.pick(choices)
            if not WIN_LO <= new_addr <= MMAP_BASE - new_n * PAGE:
                new_addr, new_n = _window_range(draw)
    return ("mremap", (pid, addr, n * PAGE, new_n * PAGE), {"may_move": may_move, "new_addr": new_addr})


def first_ops(draw):
    """Start from a process with one mapping, optionally written, forked and swapped out,
    so that short runs exercise COW, swap, splits and merges."""
    ops = [("spawn", (), {})]
    slot = draw.int(0, WINDOW - 8)
    n = draw.int(1, 8)
    addr = WIN_LO + slot * PAGE
    prot = draw.pick(["rw", "rw", "r"])
    kw = {"addr": addr, "prot": prot}
    if not draw.int(0, 3):
        kw.update({"file": draw.pick(FILES), "offset": slot * PAGE})
    ops.append(("mmap", (1, n * PAGE), kw))
    if prot == "rw" and draw.bool():
        ops.append(("touch", (1, addr, n * PAGE), {"write": True}))
    if draw.bool():
        ops.append(("fork", (1,), {}))
    if draw.bool():
        ops.append(("try_to_unmap", (None,), {}))
    return ops


# --------------------------------------------------------------------------- state machines


class ReferenceMachine(RuleBasedStateMachine):
    ERA = None

    def __init__(self):
        super().__init__()
        self.pair = Pair(self.ERA, hypo=True)

    @initialize(data=st.data())
    def start(self, data):
        for op in first_ops(HypoDraw(data)):
            self.pair.apply(op)
            self.pair.compare()

    @rule(data=st.data())
    def step(self, data):
        if self.pair.stopped:
            return
        op = draw_op(self.pair, HypoDraw(data))
        event(op[0] + (" file" if "file" in op[2] else ""))
        self.pair.apply(op)

    @invariant()
    def agree(self):
        if not self.pair.stopped:
            self.pair.compare()

    def teardown(self):
        if self.pair.failed and not self.pair.rec.lost:
            note(f"reproducer (rmapsim replay FILE):\n{self.pair.rec.text(self.ERA)}")
        event(f"stopped: {'copy_vma defect' if self.pair.stopped else 'no'}")
        for name in FILE_EVENTS:
            if self.pair.model.events[name]:
                event(f"model: {name}")
        self.pair.teardown()


# the model's kernel paths that private file mappings take (reference.py's events)
FILE_EVENTS = (
    "do_linear_fault maps a page-cache page",
    "do_linear_fault breaks COW early",
    "do_wp_page copies a page-cache page",
    "fork copies a page-cache entry",
    "mmap merges a file mapping",
    "vma_merge: anonymous and file ranges do not merge",
    "vma_merge: different files do not merge",
    "vma_merge: same file, contiguous",
    "vma_merge: same file, pgoff not contiguous",
    "copy_vma keeps an unfaulted file VMA's pgoff",
    "copy_vma merges a file VMA",
    "vma_merge merges file ranges (mprotect/madvise)",
    "vma_merge merges file ranges (mmap/mremap)",
    "anon_vma_prepare: a file VMA reuses its neighbour's anon_vma",
    "anon_vma_prepare: neighbour refused for its vm_file",
)


class Reference2633(ReferenceMachine):
    ERA = "2.6.33"


class Reference2634(ReferenceMachine):
    ERA = "2.6.34"


def _machine_settings():
    base = settings.default
    return settings(
        base,
        max_examples=max(base.max_examples, 60),
        stateful_step_count=max(base.stateful_step_count, 50),
        suppress_health_check=list(HealthCheck),
    )


Reference2633.TestCase.settings = _machine_settings()
Reference2634.TestCase.settings = _machine_settings()
TestReference2633 = Reference2633.TestCase
TestReference2634 = Reference2634.TestCase


# --------------------------------------------------------------------------- seeded runs


def run_seeded(era, seed, steps):
    pair = Pair(era)
    try:
        seeded_pair(era, seed, steps, pair)
        pair.teardown()
    except AssertionError as e:
        trail = "\n".join(f"  #{i + 1} {n}{a} {k}" for i, (n, a, k) in enumerate(pair.ops))
        raise AssertionError(f"{era} seed {seed}, after:\n{trail}\n{e}\n{write_reproducer(pair, seed)}") from None
    return pair


def write_reproducer(pair, seed) -> str:
    """Write the run's ops as a trace (to $RMAPSIM_REPRO_DIR, else the temp directory) and
    say where, or why no trace can say them."""
    if pair.rec.lost:
        return f"(no reproducer trace: {pair.rec.lost})"
    import os
    import tempfile

    where = Path(os.environ.get("RMAPSIM_REPRO_DIR", tempfile.gettempdir()))
    path = where / f"differential-{re.sub(r'[^A-Za-z0-9._-]+', '_', pair.era)}-seed{seed}.trace"
    path.write_text(pair.rec.text(pair.era))
    return f"reproducer: {path} (rmapsim replay {path} --check)"


def seeded_pair(era, seed, steps, pair=None):
    """run_seeded without the final teardown: the pair as the last step left it."""
    draw = RandDraw(random.Random(f"{era}/{seed}"))
    pair = pair or Pair(era)
    for op in first_ops(draw):
        pair.apply(op)
        pair.compare()
    for _ in range(steps):
        if pair.stopped:
            break
        pair.apply(draw_op(pair, draw))
        pair.compare()
    return pair


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "2.6.34+prepare_reuse=any_compatible"])
def test_the_harness_trace_replays_to_the_same_state(era):
    """The reproducer the harness writes is faithful: replaying it in a fresh engine gives
    the state the harness's own calls built (handles, chains, walks, allocation counts)."""
    replayed = 0
    for seed in range(6):
        pair = seeded_pair(era, seed, 120)
        if pair.rec.lost:
            continue
        sim = rmapsim.Simulator(era=era, seed=0)
        sim.apply(pair.rec.text(era))
        a, b = pair.sim, sim
        assert a.counts() == b.counts() and a.graph() == b.graph(), f"seed {seed}"
        assert a.allocation_sites() == b.allocation_sites() and a.rmap_walk() == b.rmap_walk(), f"seed {seed}"
        replayed += 1
    assert replayed >= 3, "most runs can be said as a trace"


def test_a_variant_finding_of_the_differential_harness_replays_via_the_cli(tmp_path, monkeypatch):
    """2.6.34 with the patch-as-posted anon_vma_prepare reuse (any compatible neighbour): the
    engine and the reference model both find invariant 4 broken at the same step, and the
    reproducer's header names the variant, so `rmapsim replay` finds it again, while the
    preset keeps the invariant on the same trace."""
    import subprocess

    era = "2.6.34+prepare_reuse=any_compatible"
    pair = next((p for p in (seeded_pair(era, s, 300) for s in range(60)) if p.violation and not p.rec.lost), None)
    assert pair is not None, "the harness finds the variant's broken invariant 4 within 60 seeds"
    engine_msg, model_msg = pair.violation
    assert engine_msg.startswith("invariant 4") and model_msg.startswith("invariant 4")
    monkeypatch.setenv("RMAPSIM_REPRO_DIR", str(tmp_path))
    msg = write_reproducer(pair, "x")
    path = tmp_path / "differential-2.6.34_prepare_reuse_any_compatible-seedx.trace"
    assert str(path) in msg and path.read_text().startswith(f"# rmapsim trace v1\n# era {era}\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "rmapsim", "replay", str(path), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    r = run("--check")
    assert r.returncode == 1 and f"era {era}: VIOLATION" in r.stdout and "invariant 4" in r.stdout, r.stdout
    r = run("--check", "--era", "2.6.34")
    assert r.returncode == 0 and "era 2.6.34: no invariant violation" in r.stdout, r.stdout


@pytest.mark.parametrize("era", ERAS)
def test_seeded_smoke(era):
    """A few fixed seeds on every run (quick, and reproducible without hypothesis)."""
    for seed in range(3):
        run_seeded(era, seed, 60)


@pytest.mark.parametrize("era", ERAS)
def test_seeded_file_mappings(era):
    """Ten fixed seeds x 200 steps (about a second per era): long enough runs for the file
    rules to meet each other (a fork after reads of a written file VMA, a write fault next
    to a same-file or other-file neighbour, a move beside a same-file VMA). The common file
    paths must be reached; the rarer ones (another file's neighbour, anon_vma_prepare's
    reuse and refusal, copy_vma's file merge) have the pinned tests below."""
    reached = Counter()
    for seed in range(10):
        pair = run_seeded(era, seed, 200)
        reached.update(k for k in FILE_EVENTS if pair.model.events[k])
    must = FILE_EVENTS[:6] + ("vma_merge: same file, contiguous", "vma_merge: same file, pgoff not contiguous",
                              "copy_vma keeps an unfaulted file VMA's pgoff")
    missing = [k for k in must if not reached[k]]
    assert not missing, f"{era}: not reached in 10 seeded runs: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("era", ERAS)
def test_long_run(era):
    """Long seeded runs (``-m slow``): 40 seeds x 500 steps per era."""
    before = Counter(STATS)
    steps = 0
    stopped = 0
    for seed in range(40):
        pair = run_seeded(era, seed, 500)
        steps += pair.steps
        stopped += bool(pair.stopped)
    got = STATS - before
    print(f"\n{era}: {steps} lockstep steps, {stopped} runs stopped at the copy_vma defect; {dict(sorted(got.items()))}")
    assert steps > 40 * 300


# --------------------------------------------------------------------------- pinned sequences


def _pair_run(era, ops):
    pair = Pair(era)
    for op in ops:
        pair.apply(op)
        pair.compare()
    return pair


_DEFECT_X, _DEFECT_Y = MMAP_BASE - 10 * PAGE, MMAP_BASE - 20 * PAGE


def _copy_vma_defect_ops(swap_out=False):
    X, Y = _DEFECT_X, _DEFECT_Y
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 2 * PAGE), {"addr": X}),
        ("touch", (1, X, 2 * PAGE), {"write": True}),
        ("mremap", (1, X, 2 * PAGE, 2 * PAGE), {"new_addr": Y}),
        ("mmap", (1, PAGE), {"addr": X - PAGE}),
    ]
    if swap_out:
        ops.append(("try_to_unmap", (None,), {}))
    return ops + [("mremap", (1, Y, 2 * PAGE, 2 * PAGE), {"new_addr": X})]


@pytest.mark.parametrize("era", ERAS)
def test_copy_vma_defect_is_modelled_as_the_kernel_has_it(era):
    """docs/bugs.md: a faulted VMA moved away, an unfaulted VMA mapped just below its old
    place, the VMA moved back: copy_vma's vma_merge extends the unfaulted VMA over the
    pages (case 2, no importer), and unmapping the source frees the anon_vma."""
    X = _DEFECT_X
    pair = _pair_run(era, _copy_vma_defect_ops())
    assert pair.stopped and pair.model.copy_vma_defects == 1
    # the engine reports the dangling page->mapping on a walk, as the model does
    h = pair.sim.page_at(1, X)
    with pytest.raises(rmapsim.InvariantViolation):
        pair.sim.rmap_walk([h])
    with pytest.raises(rmapsim.InvariantViolation):
        pair.model.rmap_walk_len(1, X)


@pytest.mark.parametrize("era", ERAS)
def test_copy_vma_defect_with_the_pages_swapped_out(era):
    """The same defect with the moved pages swapped out first: the swap entries now sit in
    a VMA without anon_vma. The model's check() reports it and the run stops there (the
    engine refuses to fault such an entry back in: InvariantViolation)."""
    X = _DEFECT_X
    pair = _pair_run(era, _copy_vma_defect_ops(swap_out=True))
    assert pair.stopped and "swap entry" in pair.stopped and pair.model.copy_vma_defects == 1
    with pytest.raises(rmapsim.InvariantViolation):
        pair.sim.touch(1, X, PAGE, write=True)


@pytest.mark.parametrize("era", ERAS)
def test_fork_cow_swap_walks(era):
    """The seed scenario with swap: parent writes, forks twice, children COW half the
    pages, everything is swapped out and read back in by a child first."""
    A = MMAP_BASE - 8 * PAGE
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 4 * PAGE), {"addr": A}),
        ("touch", (1, A, 4 * PAGE), {"write": True}),
        ("fork", (1,), {}),
        ("fork", (1,), {}),
        ("touch", (2, A, 2 * PAGE), {"write": True}),
        ("touch", (3, A + 2 * PAGE, PAGE), {"write": True}),
        ("try_to_unmap", (None,), {}),
        ("touch", (3, A, 4 * PAGE), {"write": False}),
        ("touch", (1, A, 4 * PAGE), {"write": False}),
        ("touch", (2, A, 2 * PAGE), {"write": True}),
        ("exit", (1,), {}),
        ("touch", (3, A + 3 * PAGE, PAGE), {"write": True}),
        ("mprotect", (3, A + PAGE, PAGE, "r"), {}),
        ("mprotect", (3, A + PAGE, PAGE, "rw"), {}),
    ]
    _pair_run(era, ops).teardown()


def _scenario(era, ops, *events):
    """Run ops in lockstep (full comparison after each), then exit everything; the model
    must have taken each named kernel path."""
    pair = _pair_run(era, ops)
    for ev in events:
        assert pair.model.events[ev], f"{era}: scenario did not reach {ev!r}: {dict(pair.model.events)}"
    pair.teardown()
    return pair


def _at(i):
    return WIN_LO + i * PAGE


def _importer(era):
    return "vma_adjust importer clones the exporter" if era == "2.6.34" else "vma_adjust importer takes the anon_vma"


@pytest.mark.parametrize("forked", [False, True])
@pytest.mark.parametrize("era", ERAS)
def test_case6_second_pass_importer(era, forked):
    """mprotect case 6, prev and the middle unfaulted, next faulted:
        0123456        0123456
        PPANN    ->    PPPPP      (vma_adjust's second pass imports next's anon_vma)
    forked: done in a child, so next's chain has two entries."""
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(0), "prot": "rw"}),
        ("mmap", (1, PAGE), {"addr": _at(2), "prot": "r"}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(3), "prot": "rw"}),
        ("touch", (1, _at(3), 2 * PAGE), {"write": True}),
    ]
    pid = 1
    if forked:
        ops.append(("fork", (1,), {}))
        pid = 2
    ops += [
        ("mprotect", (pid, _at(2), PAGE, "rw"), {}),
        ("touch", (pid, _at(0), 5 * PAGE), {"write": True}),
        ("try_to_unmap", (None,), {}),
        ("touch", (pid, _at(0), 5 * PAGE), {"write": False}),
    ]
    _scenario(era, ops, "vma_merge case 6", _importer(era) + " (2nd pass)")


@pytest.mark.parametrize("era", ERAS)
def test_case4_case5_case8_importers(era):
    """The boundary-shifting merges whose expanding VMA has no anon_vma:
        case 5: PPVVV -> PPPVV (P unfaulted imports V's chain)
        case 4: VVVNN -> VVNNN (N unfaulted imports V's chain)
        case 8: AANN  -> AAAA  (A unfaulted absorbs faulted N)
    all in a forked child (two-entry chains), then COW, swap and walks."""
    ops = [
        ("spawn", (), {}),
        # case 5 material
        ("mmap", (1, 3 * PAGE), {"addr": _at(2), "prot": "rw"}),
        ("touch", (1, _at(2), 3 * PAGE), {"write": True}),
        ("mprotect", (1, _at(2), 3 * PAGE, "r"), {}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(0), "prot": "rw"}),
        # case 4 material
        ("mmap", (1, 2 * PAGE), {"addr": _at(10), "prot": "r"}),
        ("mprotect", (1, _at(10), 2 * PAGE, "rw"), {}),
        ("touch", (1, _at(10), 2 * PAGE), {"write": True}),
        ("mprotect", (1, _at(10), 2 * PAGE, "r"), {}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(12), "prot": "rw"}),
        # case 8 material
        ("mmap", (1, 2 * PAGE), {"addr": _at(18), "prot": "rw"}),
        ("touch", (1, _at(18), 2 * PAGE), {"write": True}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(16), "prot": "r"}),
        ("fork", (1,), {}),
        ("mprotect", (2, _at(2), PAGE, "rw"), {}),  # case 5
        ("mprotect", (2, _at(11), PAGE, "rw"), {}),  # case 4
        ("mprotect", (2, _at(16), 2 * PAGE, "rw"), {}),  # case 8
        ("touch", (2, _at(0), 4 * PAGE), {"write": True}),
        ("touch", (2, _at(11), 3 * PAGE), {"write": True}),
        ("touch", (2, _at(16), 4 * PAGE), {"write": True}),
        ("try_to_unmap", (None,), {}),
        ("exit", (1,), {}),
        ("touch", (2, _at(0), 4 * PAGE), {"write": False}),
    ]
    _scenario(era, ops, "vma_merge case 4", "vma_merge case 5", "vma_merge case 8", _importer(era))


@pytest.mark.parametrize("era", ERAS)
def test_cow_reuse_and_swapin_anon_vma_choice(era):
    """2.6.34: a child's COW reuse moves the page to the child's anon_vma
    (page_move_anon_rmap); a non-exclusive swap-in maps the page to the oldest anon_vma of
    the faulting VMA's chain; an exclusive one to vma->anon_vma. 2.6.33: one anon_vma."""
    A = _at(4)
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 4 * PAGE), {"addr": A}),
        ("touch", (1, A, 4 * PAGE), {"write": True}),
        ("fork", (1,), {}),
        ("fork", (2,), {}),
        ("exit", (1,), {}),
        ("touch", (2, A, PAGE), {"write": True}),  # mapped twice still: copy
        ("exit", (3,), {}),
        ("touch", (2, A + PAGE, PAGE), {"write": True}),  # now alone: reuse (+ move)
        ("try_to_unmap", (None,), {}),
        ("touch", (2, A, 2 * PAGE), {"write": False}),  # swap-in read: not exclusive
        ("touch", (2, A + 2 * PAGE, PAGE), {"write": True}),  # exclusive swap-in
        ("fork", (2,), {}),
        ("try_to_unmap", (None,), {}),
        ("touch", (4, A + 3 * PAGE, PAGE), {"write": False}),
        ("touch", (2, A + 3 * PAGE, PAGE), {"write": True}),  # slot still referenced: copy
        ("drop_swap_cache", (None,), {}),
        ("touch", (4, A, 3 * PAGE), {"write": True}),
    ]
    events = ["do_wp_page reuses the page", "do_swap_page takes the page exclusively"]
    if era == "2.6.34":
        events += ["page_move_anon_rmap moves the page", "swap-in maps to the oldest anon_vma, not vma->anon_vma"]
    _scenario(era, ops, *events)


@pytest.mark.parametrize("era", ERAS)
def test_mremap_moves_and_merges(era):
    """copy_vma merging at the destination (an unfaulted range moved right after its own
    VMA merges back into it before the source is unmapped), grow in place, a faulted move
    keeping its pgoff, and a move back home next to a faulted neighbour (case 1 import)."""
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 4 * PAGE), {"addr": _at(0)}),
        ("touch", (1, _at(0), PAGE), {"write": False}),
        ("mremap", (1, _at(2), 2 * PAGE, 2 * PAGE), {"new_addr": _at(4)}),
        ("mremap", (1, _at(4), 2 * PAGE, 4 * PAGE), {"may_move": False}),
        ("touch", (1, _at(4), 2 * PAGE), {"write": True}),
        ("mremap", (1, _at(4), 4 * PAGE, 4 * PAGE), {"new_addr": _at(12)}),
        ("fork", (1,), {}),
        ("mremap", (2, _at(12), 2 * PAGE, 2 * PAGE), {"new_addr": _at(4)}),
        ("mremap", (2, _at(14), 2 * PAGE, 3 * PAGE), {}),
        ("touch", (2, _at(4), 2 * PAGE), {"write": True}),
        ("try_to_unmap", (None,), {}),
        ("touch", (1, _at(12), 4 * PAGE), {"write": False}),
    ]
    _scenario(era, ops, "copy_vma merges at the destination", "mremap grows in place")


# --------------------------------------------------------------------------- private file mappings


@pytest.mark.parametrize("era", ERAS)
def test_file_mappings_fault_merge_and_move(era):
    """Private file mappings, step by step against the engine: a read maps page-cache
    pages, a write COWs them into anon pages at the file page index; an mmap continuing
    the same file merges, another file at the contiguous offset does not; an unfaulted file
    VMA moved away keeps its pgoff and merges back beside its file neighbour (copy_vma);
    mprotect splits and re-merges file VMAs; fork copies page-cache entries only from VMAs
    with an anon_vma; swap-out and swap-in of the COWed pages."""
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(0), "prot": "rw", "file": 1, "offset": 0x4000}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(2), "prot": "rw", "file": 1, "offset": 0x6000}),  # merges
        ("mmap", (1, 2 * PAGE), {"addr": _at(4), "prot": "rw", "file": 2, "offset": 0x8000}),  # other file
        ("mmap", (1, 2 * PAGE), {"addr": _at(6), "prot": "rw", "file": 2, "offset": 0x10000}),  # not contiguous
        ("touch", (1, _at(0), 8 * PAGE), {"write": False}),
        ("fork", (1,), {}),  # no anon_vma anywhere: no entries copied
        ("touch", (1, _at(1), 2 * PAGE), {"write": True}),
        ("touch", (1, _at(4), PAGE), {"write": True}),
        ("fork", (1,), {}),
        ("mprotect", (1, _at(1), PAGE, "r"), {}),
        ("mprotect", (1, _at(1), PAGE, "rw"), {}),
        # an unfaulted file VMA moved away and back: it keeps its file pages
        ("mremap", (1, _at(6), 2 * PAGE, 2 * PAGE), {"new_addr": _at(12)}),
        ("mremap", (1, _at(12), 2 * PAGE, 2 * PAGE), {"new_addr": _at(6)}),
        # a file range moved right after the VMA whose pages it continues: copy_vma merges
        ("mmap", (1, PAGE), {"addr": _at(16), "prot": "rw", "file": 1, "offset": 0x8000}),
        ("munmap", (1, _at(8), PAGE), {}),
        ("mremap", (1, _at(16), PAGE, PAGE), {"new_addr": _at(4)}),
        ("try_to_unmap", (None,), {}),
        ("touch", (2, _at(0), 4 * PAGE), {"write": False}),
        ("touch", (3, _at(0), 4 * PAGE), {"write": True}),
        ("exec", (2,), {}),
    ]
    _scenario(
        era,
        ops,
        "do_linear_fault maps a page-cache page",
        "do_wp_page copies a page-cache page",
        "mmap merges a file mapping",
        "vma_merge: different files do not merge",
        "vma_merge: same file, pgoff not contiguous",
        "copy_vma keeps an unfaulted file VMA's pgoff",
        "copy_vma merges a file VMA",
        "fork copies a page-cache entry",
    )


@pytest.mark.parametrize("era", ERAS)
def test_file_mappings_anon_vma_prepare_neighbours(era):
    """find_mergeable_anon_vma's anon_vma_compatible compares vm_file: a file VMA reuses
    the anon_vma of a same-file neighbour whose pages it continues (they differ only in
    VM_EXEC, so they are not merged), but not that of a pgoff-contiguous neighbour of another
    file, nor of an anonymous one (offset = address: the pgoff an anonymous VMA there has)."""
    X = _at(8)
    ops = [
        ("spawn", (), {}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(0), "prot": "rw", "file": 1}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(2), "prot": "rwx", "file": 1, "offset": 2 * PAGE}),
        ("touch", (1, _at(0), PAGE), {"write": True}),
        ("touch", (1, _at(2), PAGE), {"write": True}),  # reuses file 1's anon_vma
        ("mmap", (1, 2 * PAGE), {"addr": _at(4), "prot": "rw", "file": 2, "offset": 4 * PAGE}),
        ("touch", (1, _at(4), PAGE), {"write": True}),  # refused: another file
        ("mmap", (1, 2 * PAGE), {"addr": X, "prot": "rw"}),
        ("mmap", (1, 2 * PAGE), {"addr": X + 2 * PAGE, "prot": "rwx", "file": 2, "offset": X + 2 * PAGE}),
        ("touch", (1, X, PAGE), {"write": True}),
        ("touch", (1, X + 2 * PAGE, PAGE), {"write": True}),  # refused: anonymous neighbour
        # unfaulted, pgoff-contiguous anonymous and file VMAs: vm_file alone keeps the
        # mprotect (case 2 / case 3 shapes) from merging them
        ("mmap", (1, 2 * PAGE), {"addr": _at(14), "prot": "rw"}),
        ("mmap", (1, 2 * PAGE), {"addr": _at(16), "prot": "rwx", "file": 1, "offset": _at(16)}),
        ("mprotect", (1, _at(16), 2 * PAGE, "rw"), {}),
        ("mprotect", (1, _at(14), 2 * PAGE, "rwx"), {}),
        ("fork", (1,), {}),
        ("try_to_unmap", (None,), {}),
        ("touch", (2, _at(0), 6 * PAGE), {"write": True}),
    ]
    pair = _scenario(
        era,
        ops,
        "anon_vma_prepare: a file VMA reuses its neighbour's anon_vma",
        "anon_vma_prepare: neighbour refused for its vm_file",
        "vma_merge: anonymous and file ranges do not merge",
    )
    assert pair.model.events["anon_vma_prepare: neighbour refused for its vm_file"] == 2


@pytest.mark.parametrize("era", ERAS)
def test_file_mapping_argument_errors(era):
    """mmap's file arguments: the engine's and the model's exception types agree."""
    ops = [("spawn", (), {})]
    bad = [
        {"file": 0},
        {"file": -1},
        {"file": 1 << 24},
        {"file": 1 << 23},  # the engine keeps vm_file in 23 bits of its flags word
        {"file": 1 << 40},
        {"file": True},
        {"file": "a"},
        {"file": 1, "offset": 100},
        {"file": 1, "offset": -PAGE},
        {"file": 1, "offset": 1 << 64},
        {"file": 1, "offset": 1.0},
        {"offset": 0},
        {"file": 1, "offset": 0, "addr": 5},
        {"file": 1, "offset": 100, "addr": 5},
        {"file": 1, "offset": 0, "prot": "q"},
    ]
    for kw in bad:
        ops.append(("mmap", (1, PAGE), kw))
    ops += [
        ("mmap", (1, 3), {"file": 1, "offset": 100}),
        ("mmap", (1, 0), {"file": 1}),
        ("mmap", (9, PAGE), {"file": 1}),
        ("mmap", (9, PAGE), {"file": 0}),
        ("mmap", (1, PAGE), {"file": 1, "offset": None}),
        ("mmap", (1, 2 * PAGE), {"file": 1, "offset": (1 << 64) - PAGE}),  # pages past the bound
        ("mmap", (1, PAGE), {"file": 1, "offset": (1 << 64) - PAGE}),  # the last file page: ok
        ("mmap", (1, PAGE), {"file": (1 << 23) - 1, "offset": 0}),  # the largest identity: ok
    ]
    before = Counter(STATS)
    pair = _pair_run(era, ops)
    got = STATS - before
    # all InvalidArgument but the misaligned address (BadAddress) and the dead pid with a
    # valid file (NoSuchProcess; with file=0 the argument check comes first)
    assert got["error InvalidArgument"] == len(bad) - 1 + 4, got
    assert got["error BadAddress"] == 1 and got["error NoSuchProcess"] == 1, got
    pair.teardown()
