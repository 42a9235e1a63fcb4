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
import re
import sys
from collections import Counter

from hypothesis import note
from hypothesis import strategies as st

import rmapsim

from helpers import MMAP_BASE, PAGE, ROOT, layout_states, norm_prot, scan_rows
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
    """A private file mapping (as rust/core/src/harness/opgen.rs's extended mix makes them): one
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
