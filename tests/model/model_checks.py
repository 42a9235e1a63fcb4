"""Checks of a simulator against the page-level model (page_model.Model) and against its era's
rmap rules (helpers.ERA_RULES): page-level state, VMA rules, rmap walks and locks.

The model and what each harness checks: the docstring of page_model.py.
"""

from __future__ import annotations

from collections import Counter

import rmapsim

from helpers import (
    ERA_RULES,
    PAGE,
    PAGE_SHIFT,
    STRUCT_SIZES,
    anon_pages,
    attrs_mergeable,
    counts,
    entry_kinds,
    is_chain_era,
    layout_states,
    mergeable_both_ways,
    mergeable_either_way,
    page_layout,
    page_map,
    pids,
    scan_rows,
    sharing_partition,
    vma_chains,
    vmas,
)
from page_model import PAGEK, SWAP, ZERO

# --------------------------------------------------------------------------- comparisons


class Ids:
    """Model page id -> simulator page handle, and model slot id -> simulator swap slot number,
    kept across steps. A page the model kept must keep its handle; a page the model created
    must get a handle no earlier page had (generational handles); a live slot keeps its
    number and no two live slots share one."""

    def __init__(self):
        self.handle_of = {}
        self.seen_handles = set()
        self.slot_of = {}


def unfaulted_pages(sim, pid):
    """Page addresses of pid whose VMA has no anon_vma (6.7+ mprotect uncharges those)."""
    return {a for v in vmas(sim, pid) if v["anon_vma"] is None for a in range(v["start"], v["end"], PAGE)}


def model_layout(model, pid):
    return {a: (e.prot, e.flags, e.pgoff) for a, e in model.procs[pid].items()}


def check_against_model(sim, model, ids):
    """Compare sim with the page-level model; returns the simulator's page map."""
    assert pids(sim) == sorted(model.procs)
    has_av = {}
    for pid in model.procs:
        lay = page_layout(sim, pid)
        assert {a: v[:3] for a, v in lay.items()} == model_layout(model, pid), f"pid {pid}"
        has_av[pid] = {a: v[3] for a, v in lay.items()}
    mkinds = model.kinds()
    skinds = entry_kinds(sim)
    assert skinds == mkinds
    for (pid, a), k in mkinds.items():
        if k in (PAGEK, SWAP):
            # an anon page or swap entry only exists in a VMA that has an anon_vma
            assert has_av[pid][a], f"pid {pid} {a:#x}: {k} in a VMA without anon_vma"
    pmap = page_map(sim)
    mmap_ = model.page_map()
    assert set(pmap) == set(mmap_)
    assert sharing_partition(pmap) == sharing_partition(mmap_)
    mc = model.mapcount()
    # render_layout: 's' marks a page mapped more than once
    for pid in model.procs:
        for a, ch in layout_states(sim, pid).items():
            if ch in "ps":
                assert (ch == "s") == (mc[mmap_[(pid, a)]] > 1), f"pid {pid} {a:#x}: {ch}"

    # page identity over time
    now = {}
    for key, p in mmap_.items():
        now[p] = pmap[key]
    for p, h in now.items():
        if p in ids.handle_of:
            assert ids.handle_of[p] == h, f"page {p} changed handle {ids.handle_of[p]} -> {h}"
        else:
            assert h not in ids.seen_handles, f"new page {p} has the old handle {h}"
    live_handles = anon_pages(sim)
    infos = {h: sim.page_info(h) for h in live_handles}
    # unmapped swap-cache pages the model created without them ever being mapped (a write
    # swap-in that copied): pair them with the simulator's new pages by index and swap slot
    unknown = sorted(p for p in model.pages if p not in now and p not in ids.handle_of)
    if unknown:
        taken = set(now.values())
        spare = [h for h in live_handles if h not in ids.seen_handles and h not in taken]
        for p in unknown:
            s = model.pages[p]
            assert s is not None, f"model page {p}: unmapped, not in the swap cache, yet alive"
            fits = [
                h
                for h in spare
                if int(infos[h]["index"]) == model.index[p]
                and infos[h]["swap_slot"] is not None
                and (s not in ids.slot_of or int(infos[h]["swap_slot"]) == ids.slot_of[s])
            ]
            assert fits, f"no new swap-cache page with index {model.index[p]:#x} for page {p}"
            now[p] = fits[0]
            spare.remove(fits[0])
    for p in model.pages:
        if p not in now:
            now[p] = ids.handle_of[p]  # unmapped swap-cache page: must still be there
    assert len(set(now.values())) == len(now)
    assert sorted(now.values()) == live_handles, "live pages differ from the model's"
    ids.handle_of = now
    ids.seen_handles |= set(now.values())

    # per page: mapcount, swap-cache state and slot identity
    for s in list(ids.slot_of):
        if s not in model.slots:
            del ids.slot_of[s]
    for p, h in now.items():
        info = infos[h]
        assert int(info["mapcount"]) == mc[p], f"page {h}: {info} vs model mapcount {mc[p]}"
        assert int(info["index"]) >= 0
        s = model.pages[p]
        if s is None:
            assert info["swap_slot"] is None, f"page {h} should not be in the swap cache: {info}"
            continue
        assert info["swap_slot"] is not None, f"page {h} should be in the swap cache: {info}"
        num = int(info["swap_slot"])
        if s in ids.slot_of:
            assert ids.slot_of[s] == num, f"swap slot changed {ids.slot_of[s]} -> {num}"
        else:
            assert num not in ids.slot_of.values(), f"slot number {num} used twice"
            ids.slot_of[s] = num
    # page->index: the linear page index it was faulted in at, and that of every mapping
    for p, h in now.items():
        assert int(infos[h]["index"]) == model.index[p], f"page {h}: {infos[h]}"
    for (pid, a), p in mmap_.items():
        assert model.index[p] == model.procs[pid][a].pgoff, f"model: pid {pid} {a:#x}"

    c = counts(sim)
    assert c["mm"] == len(model.procs)
    assert c["vma"] == sum(len(vmas(sim, p)) for p in model.procs)
    assert c["page"] == len(model.pages)
    assert c["swap_cache"] == sum(1 for s in model.pages.values() if s is not None)
    assert c["swap_slot"] == len(model.slots)
    assert c["pte"] == len(mkinds)  # zero-page PTEs and swap entries count too
    return pmap, now


def simple_merge(era):
    return ERA_RULES[era]["merge"] == "simple"


def _sig(v):
    return (v["start"], v["end"], v["pgoff"], v["prot"], v["flags"])


def check_vma_rules(sim, pid, era=None, apart=None):
    """VMA-level rules of one mm. apart: {boundary address: signature} of the adjacent pairs
    that were legitimately left apart before the last step (see below); returns the same
    for now."""
    era = era or sim.era.rstrip("*")  # "6.18*": a preset with overrides
    apart = apart or {}
    now_apart = {}
    vs = vmas(sim, pid)
    allowed = {"rand", "seq", "dontcopy", "account"} | ({"wipeonfork"} if ERA_RULES[era]["wipeonfork"] else set())
    for v in vs:
        assert v["start"] % PAGE == 0 and v["end"] % PAGE == 0 and v["start"] < v["end"]
        assert v["flags"] <= allowed, v["flags"]
        if is_chain_era(sim):
            # vma->anon_vma is in vma's chain; no anon_vma -> empty chain
            assert (v["chain_len"] == 0) == (v["anon_vma"] is None), v
        else:
            assert v["chain_len"] == 0, v
    for a, b in zip(vs, vs[1:]):
        assert a["end"] <= b["start"], f"pid {pid}: VMAs overlap or are unsorted"
        if not attrs_mergeable(a, b):
            continue
        # Every operation this machine runs merges where vma_merge would (mremap's grow in
        # place, which does not merge before 6.1, is kept away from mergeable neighbours).
        # The asymmetric singular-chain rule (3.0-6.0) leaves pairs apart that are mergeable
        # one way only (mergeable_both_ways); a later write fault in the unfaulted one may
        # reuse its neighbour's anon_vma (anon_vma_prepare), and no merge is tried then: such
        # a pair stays legitimately apart as long as neither VMA changes.
        # what decides a merge at this boundary; munmap trimming A's head or B's tail keeps
        # it (the kernel does not try to merge the pieces munmap leaves)
        sig = (
            a["end"],
            a["prot"],
            a["flags"],
            b["prot"],
            b["flags"],
            b["pgoff"] - a["pgoff"] - ((a["end"] - a["start"]) >> 12),
        )
        if mergeable_both_ways(era, a, b):
            # dup_mmap copies VMAs without merging, and VM_WIPEONFORK leaves the child's
            # copies without the anon_vmas that kept the parent's apart
            wiped = "wipeonfork" in a["flags"] and a["anon_vma"] is None and b["anon_vma"] is None
            assert wiped or apart.get(b["start"]) == sig, f"{era} pid {pid}: unmerged neighbours {a} {b}"
            now_apart[b["start"]] = sig
        elif mergeable_either_way(era, a, b):
            now_apart[b["start"]] = sig
    if is_chain_era(sim):
        # within one mm, VMAs sharing an anon_vma have identical chains (invariant 4, docs/contract.md#invariants)
        by_av = {}
        for v in vs:
            if v["anon_vma"] is not None:
                by_av.setdefault(v["anon_vma"], set()).add(v["chain_len"])
        assert all(len(s) == 1 for s in by_av.values()), by_av
    return now_apart


def check_rmap(sim, pmap=None, live=None, era=None):
    """Every walk of every live anon page, against the era's rules (module docstring).
    pmap: {(pid, addr): handle} (read from sim when None); live: every live anon page."""
    era = era or sim.era.rstrip("*")
    rules = ERA_RULES[era]
    if pmap is None:
        pmap = page_map(sim)
    if live is None:
        live = anon_pages(sim)
    groups = Counter(pmap.values())
    where = {}
    for (pid, a), h in pmap.items():
        where.setdefault(h, []).append((pid, a))
    vmas_of = {pid: vmas(sim, pid) for pid in pids(sim)}
    chains = {pid: vma_chains(sim, pid) for pid in vmas_of}
    all_vmas = [dict(v, chain=chains[pid][v["start"]][1]) for pid, vs in vmas_of.items() for v in vs]
    # the root of each chain: its oldest entry, except where clones reverse chains (7.0),
    # then the one entry of the chain that graph() says is its own root
    root_of = {a["anon_vma"]: a.get("root") for a in sim.graph()["anon_vmas"]}

    def chain_root(chain):
        if rules["root_first"]:
            return chain[0]
        [r] = [a for a in chain if root_of[a] == a]
        return r

    def covering(pid, a):
        for v in vmas_of[pid]:
            if v["start"] <= a < v["end"]:
                return dict(v, chain=chains[pid][v["start"]][1])
        raise AssertionError(f"no VMA at {pid} {a:#x}")

    full = {r["page"]: r for r in scan_rows(sim.rmap_walk())}
    early = {r["page"]: r for r in scan_rows(sim.page_referenced())}
    assert set(full) == set(live) == set(early)
    for h, r in full.items():
        # completeness: the full walk finds every PTE mapping the page, and nothing else
        assert r["mapcount"] == groups[h], (era, r)
        assert r["mappings_found"] == r["mapcount"], (era, r)
        assert r["mappings_found"] <= r["ptes_checked"] <= r["vmas_in_range"] <= r["vmas_visited"]
        e = early[h]
        # page_referenced stops after mapcount hits but still finds them all
        assert e["mappings_found"] == e["mapcount"] == r["mapcount"]
        assert e["vmas_visited"] <= r["vmas_visited"]
        if r["mapcount"] == 0:
            continue  # an unmapped swap-cache page is not walked (page_lock_anon_vma)
        av = r["anon_vma"]
        assert av == int(sim.page_info(h)["anon_vma"])
        index = int(sim.page_info(h)["index"])
        # the candidates: every VMA linked to the page's anon_vma -- by its chain, or in
        # 2.6.33 by being on the family list, i.e. having it as vma->anon_vma
        if rules["linking"] == "legacy":
            linked = [v for v in all_vmas if v["anon_vma"] == av]
        else:
            linked = [v for v in all_vmas if av in v["chain"]]
        covers = [v for v in linked if v["pgoff"] <= index < v["pgoff"] + ((v["end"] - v["start"]) >> PAGE_SHIFT)]
        assert r["vmas_in_range"] == r["ptes_checked"] == len(covers), (era, r, covers)
        if rules["index"] == "itree":
            # anon_vma_interval_tree_foreach(avc, &av->rb_root, pgoff, pgoff): only the
            # entries whose [vm_pgoff, vm_pgoff + pages - 1] holds the index, at a cost of
            # tree nodes (at least one per entry found, at least the root)
            assert r["vmas_visited"] == len(covers), (era, r)
            assert r["tree_nodes_visited"] >= max(1, r["vmas_visited"]), (era, r)
        else:
            assert r["vmas_visited"] == len(linked), (era, r, linked)
            assert r["tree_nodes_visited"] == 0
        # the lock: 3.8+ take the root's rwsem shared; before, exclusive
        assert r["lock_mode"] == (rmapsim.LOCK_SHARED if rules["lock_shared"] else rmapsim.LOCK_EXCLUSIVE)
        for pid, a in where.get(h, []):
            v = covering(pid, a)
            assert v["anon_vma"] is not None
            if not is_chain_era(sim):
                # 2.6.33 __page_check_anon_rmap: page->mapping == vma->anon_vma
                assert av == v["anon_vma"]
            else:
                # the page's anon_vma is on the chain of every VMA mapping it (what makes
                # the walk find that mapping)
                assert av in v["chain"], (era, h, av, v)
            if rules["lock_root"]:
                # one lock per fork tree: the root, the oldest entry of every chain (7.0:
                # somewhere on it)
                assert r["lock_id"] == chain_root(v["chain"]), (era, r, v)
        if not rules["lock_root"]:
            assert r["lock_id"] == av
    c = counts(sim)
    avs = {v["anon_vma"] for v in all_vmas if v["anon_vma"] is not None}
    if is_chain_era(sim):
        # each AVC sits in exactly one VMA's chain; every live anon_vma has >= 1 AVC
        assert c["anon_vma_chain"] == sum(v["chain_len"] for v in all_vmas)
        assert {a for v in all_vmas for a in v["chain"]} >= avs
        assert len({a for v in all_vmas for a in v["chain"]}) <= c["anon_vma"] <= c["anon_vma_chain"]
        if rules["lock_root"]:
            # invariant 3 (docs/contract.md#invariants): every anon_vma in a chain shares one root -- the chain's oldest
            # (7.0: the one root on it)
            roots = {}
            for v in all_vmas:
                for a in v["chain"]:
                    assert roots.setdefault(a, chain_root(v["chain"])) == chain_root(v["chain"]), (era, v)
    else:
        # 2.6.33: an anon_vma lives exactly as long as some VMA is on its list
        assert c["anon_vma_chain"] == 0
        assert c["anon_vma"] == len(avs)
    size = STRUCT_SIZES[era]
    mem = {k: int(v) for k, v in sim.memory().items()}
    assert mem["vm_area_struct"] == size["vm_area_struct"] * c["vma"]
    assert mem["anon_vma"] == size["anon_vma"] * c["anon_vma"]
    assert mem["anon_vma_chain"] == size["anon_vma_chain"] * c["anon_vma_chain"]


def page_level_state(sim, full=True):
    """Handle-free abstract state: what every era must agree on (docs/contract.md#operations).
    full=False leaves out what the merge rule decides besides VMA boundaries: whether the
    VMA of a page has an anon_vma (an unfaulted neighbour merged into a faulted VMA has
    one), hence zero-page entries (fork copies them only from VMAs with an anon_vma) and
    the PTE count that includes them, and VM_ACCOUNT (from 6.7 mprotect uncharges a VMA
    only while it has no anon_vma)."""
    live = pids(sim)
    c = counts(sim)
    kinds = entry_kinds(sim)
    pages = {p: page_layout(sim, p) for p in live}
    keys = ("mm", "page", "pte", "swap_slot", "swap_cache")
    if not full:
        kinds = {k: v for k, v in kinds.items() if v != ZERO}
        pages = {
            p: {a: (v[0], frozenset(v[1]) - {"account"}, v[2]) for a, v in lay.items()} for p, lay in pages.items()
        }
        keys = keys[:2] + keys[3:]
    return {
        "pids": live,
        "pages": pages,
        "kinds": kinds,
        "partition": sharing_partition(page_map(sim)),
        "counts": {k: c[k] for k in keys},
    }
