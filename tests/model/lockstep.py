"""Running calls on a simulator and on a correct era in lockstep (the buggy eras' machines):
results, handles translated between the two, and the page-level state compared.

The model and what each harness checks: the docstring of page_model.py.
"""

from __future__ import annotations

from hypothesis import HealthCheck, note, settings
from hypothesis.errors import InvalidArgument as HypothesisInvalidArgument

import rmapsim

from helpers import page_map, pids, vma_chains, vmas
from model_checks import page_level_state

# --------------------------------------------------------------------------- lockstep replay

MUTATORS = frozenset(
    "spawn fork fork_many exit exec mmap munmap touch touch_many mprotect madvise mremap "
    "try_to_unmap drop_swap_cache".split()
)


def _result(out):
    """Comparable form of a call's result."""
    if isinstance(out, rmapsim.ScanStats):
        return ("stats", len(out), tuple(int(x) for x in out.mappings_found))
    if out is None or isinstance(out, (bool, str)):
        return out
    try:
        return int(out)
    except TypeError:
        return tuple(int(x) for x in out)


def _call(sim, name, args, kwargs):
    try:
        return ("ok", getattr(sim, name)(*args, **kwargs))
    except rmapsim.SimError as e:
        return ("error", e)


class HandleMap:
    """Page handle correspondence between two simulators running the same calls, learnt from
    which page each (pid, addr) maps, and checked to stay a bijection over time."""

    def __init__(self):
        self.fwd, self.back = {}, {}

    def learn(self, a, b):
        pa, pb = page_map(a), page_map(b)
        assert set(pa) == set(pb), f"{a.era} vs {b.era}: anon pages mapped at different places"
        for key, ha in pa.items():
            hb = pb[key]
            assert self.fwd.setdefault(ha, hb) == hb, f"{key}: page {ha} <-> {hb}/{self.fwd[ha]}"
            assert self.back.setdefault(hb, ha) == ha, f"{key}: page {hb} <-> {ha}/{self.back[hb]}"

    def translate(self, handles):
        return [self.fwd.get(int(h), int(h)) for h in handles]


def translate_pages(name, args, kwargs, hmap):
    if name not in ("try_to_unmap", "drop_swap_cache"):
        return args, kwargs
    if args and args[0] is not None:
        args = (hmap.translate(args[0]),) + tuple(args[1:])
    if kwargs.get("pages") is not None:
        kwargs = dict(kwargs, pages=hmap.translate(kwargs["pages"]))
    return args, kwargs


def _note(msg):
    """hypothesis.note, also usable outside a hypothesis test (the scripted differential)."""
    try:
        note(msg)
    except HypothesisInvalidArgument:
        pass


def vma_boundaries(sim) -> dict:
    """{pid: set of VMA start and end addresses}."""
    return {p: {x for v in vmas(sim, p) for x in (v["start"], v["end"])} for p in pids(sim)}


def coarser(buggy, correct, only=None) -> bool:
    """Does `buggy` cut the same address spaces into VMAs like `correct` or merge some of its
    neighbours? A buggy era's shared anon_vma can let vma_merge join VMAs that the correct era
    keeps apart: 3.19's degree rule may hand one anon_vma to two VMAs of one mm whose chains
    happen to be identical (no invariant broken: the CVE's ambiguity without its harm), and
    2.6.34-rc1's anon_vma_prepare reuses any compatible neighbour's anon_vma. only: the pids
    to compare (all by default)."""
    bb, cb = vma_boundaries(buggy), vma_boundaries(correct)
    return bb.keys() == cb.keys() and all(bb[p] <= cb[p] for p in (bb if only is None else only))


def extra_sharing(buggy, correct) -> list:
    """[(pid, start, start, identical chains?)] for pairs of VMAs of one mm that share an
    anon_vma in `buggy` but not in `correct` (VMAs matched by start address)."""
    out = []
    for p in pids(buggy):
        va = {v["start"]: v for v in vmas(buggy, p)}
        vb = {v["start"]: v for v in vmas(correct, p)}
        chains = vma_chains(buggy, p)
        ks = sorted(k for k in va if k in vb and va[k]["anon_vma"] is not None)
        for i, x in enumerate(ks):
            for y in ks[i + 1 :]:
                if va[x]["anon_vma"] == va[y]["anon_vma"] and vb[x]["anon_vma"] != vb[y]["anon_vma"]:
                    out.append((p, x, y, sorted(chains[x][1]) == sorted(chains[y][1])))
    return out


class Lockstep:
    """Looks like the primary simulator; every mutating call is replayed right away on the
    shadow simulator (page handles translated), which must pass check() after every call and
    return the same result -- until the two cut VMAs differently (`coarser`): from then on
    calls may legitimately act differently and only the shadow's check() is kept."""

    def __init__(self, primary, shadow):
        self.primary, self.shadow = primary, shadow
        self.hmap = HandleMap()
        self.calls = 0
        self.diverged = None  # the call after which the VMA boundaries first differed

    def __getattr__(self, name):
        attr = getattr(self.primary, name)
        if name not in MUTATORS:
            return attr

        def call(*args, **kwargs):
            self.calls += 1
            ra = _call(self.primary, name, args, kwargs)
            a2, k2 = translate_pages(name, args, kwargs, self.hmap)
            rb = _call(self.shadow, name, a2, k2)
            if self.diverged is None:
                assert ra[0] == rb[0], f"{name}{args}: {self.primary.era} {ra}, {self.shadow.era} {rb}"
                if ra[0] == "error":
                    assert type(ra[1]) is type(rb[1]), f"{name}{args}: {ra[1]!r} vs {rb[1]!r}"
                else:
                    assert _result(ra[1]) == _result(rb[1]), f"{name}{args}: {ra[1]} vs {rb[1]}"
            self.shadow.check()
            if self.diverged is None:
                if vma_boundaries(self.primary) != vma_boundaries(self.shadow):
                    assert coarser(self.primary, self.shadow), f"{name}{args}: VMAs cut differently"
                    # ... with the very same page tables
                    assert page_level_state(self.primary) == page_level_state(self.shadow)
                    self.diverged = f"{name}{args}"
                    _note(f"{self.primary.era} merged VMAs {self.shadow.era} keeps apart after {name}{args}")
                else:
                    self.hmap.learn(self.primary, self.shadow)
            if ra[0] == "error":
                raise ra[1]
            return ra[1]

        call.__name__ = name
        return call


def at_least(examples, steps):
    """The loaded hypothesis profile (conftest), raised to this many examples and steps:
    these machines are cheap per step, and they are where swap and the buggy eras' bugs are
    found."""
    base = settings.default
    return settings(
        base,
        max_examples=max(base.max_examples, examples),
        stateful_step_count=max(base.stateful_step_count, steps),
        # as hypothesis' own RuleBasedStateMachine.TestCase does
        suppress_health_check=list(HealthCheck),
    )


def apply_op(sim, op):
    name, args, kwargs = op
    if name == "noop":
        return ("ok", None)
    try:
        out = getattr(sim, name)(*args, **kwargs)
    except rmapsim.SimError as e:
        return ("error", type(e).__name__)
    return ("ok", _result(out))
