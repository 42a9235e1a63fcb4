"""The differential harness of the Rust engine against the pure-Python reference model
(test_reference_model, test_reference_scenarios): Pair, the operation draws.

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

The operations are drawn by rmapsim.testing.ops (OpGenerator, its default mix). They
include private file mappings (two files, offsets that make neighbours
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
import re
import sys
from collections import Counter

from hypothesis import note

import rmapsim
from rmapsim.testing.ops import FILES, WIN_LO, WINDOW, ModelState, OpGenerator

from helpers import PAGE, ROOT, layout_states, norm_prot, scan_rows
from pairtrace import TraceRecorder


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
STATE = {".": None, "z": "zero", "p": "page", "s": "page", "w": "swap"}
# the engine's page table shows a page-cache page of a private file mapping as it shows the
# zero page ("z": an entry that maps no anon page); the model names it "file"
ENGINE_KIND = {"file": "zero"}

STATS = Counter()  # printed by `pytest -s` (see test_long_run)


# --------------------------------------------------------------------------- lockstep pair

_VMA_LINE = re.compile(r"^  [A-Z] \[(0x[0-9a-f]+), 0x[0-9a-f]+\) .* chain \[([^\]]*)\]$", re.M)
_LEGEND = re.compile(r"\b(av\d+)=(0x[0-9a-f]+)\b")


def layout_chains(sim, pid):
    """{VMA start: [engine anon_vma handles of its chain, oldest first]} from
    render_layout(pid) (api-contract.md: "Chains are listed oldest first")."""
    text = sim.render_layout(pid)
    legend = {label: int(h, 16) for label, h in _LEGEND.findall(text)}
    return {int(start, 16): [legend[label] for label in chain.split()] for start, chain in _VMA_LINE.findall(text)}


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
                assert r["vmas_visited"] == want, (
                    f"page {h} at pid {pid} {a:#x}: walk visits {r['vmas_visited']}, model {want}"
                )
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


#: The reference model harness's generator: rmapsim.testing.ops with its default mix (KINDS).
GEN = OpGenerator()


def draw_op(pair, draw):
    """One operation (name, args, kwargs), arguments chosen from the model's state. Page
    arguments are model page ids the engine is known to name."""
    return GEN(ModelState(pair.model, pair.known_pages), draw)


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
