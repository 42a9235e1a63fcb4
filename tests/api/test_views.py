"""Navigable read-only views (rmapsim.views, docs/views.md).

Expected values come from the kernel's rules, derived by hand in the comments (mm/rmap.c of
the era: anon_vma_prepare, anon_vma_fork, anon_vma_clone, unlink_anon_vmas), or from the
dict APIs (vmas(), graph(), page_info()) recounted independently; never from the views.
"""

from __future__ import annotations

import copy
import random
import re

import numpy as np
import pytest

import rmapsim
from rmapsim.views import AnonVmaChainView, AnonVmaView, MmView, PageView, VmaView

from helpers import EVERY_ERA, PAGE

N = 4  # pages of the seed scenario's mapping


def seed(era, child_writes=1):
    """The seed scenario: a parent writes N pages and forks; the child writes (COWs) the
    first `child_writes` of them."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = sim.mmap(p, N * PAGE)
    sim.touch(p, a, N * PAGE)
    c = sim.fork(p)
    if child_writes:
        sim.touch(c, a, child_writes * PAGE)
    return sim, p, c, a


# ---------------------------------------------------------------------------------------
# The fork tree, era by era


def test_fork_in_2_6_34_links_the_child_to_its_own_and_the_parents_anon_vma():
    sim, p, c, a = seed("2.6.34")
    pv, cv = sim.vma_at(p, a), sim.vma_at(c, a)
    pav, cav = pv.anon_vma, cv.anon_vma
    assert pav != cav  # anon_vma_fork gives the child VMA an anon_vma of its own
    # anon_vma_fork: anon_vma_clone links the parent's anon_vma (list_add on the child's
    # chain), then the child's own is linked last, so list_for_each_entry sees it first
    assert [e.anon_vma for e in cv.anon_vma_chain] == [cav, pav]
    assert [e.anon_vma for e in pv.anon_vma_chain] == [pav]
    assert all(e.vma == cv for e in cv.anon_vma_chain)
    # the parent's anon_vma: its own entry (prepare) then the child's (clone's list_add_tail)
    assert [e.vma for e in pav.head] == [pv, cv]
    assert [e.vma for e in cav.head] == [cv]
    # the child's COWed page went to the child's anon_vma; the others are still shared
    child_page = sim.page(sim.page_at(c, a))
    shared = sim.page(sim.page_at(c, a + PAGE))
    assert (child_page.mapping, child_page.mapcount) == (cav, 1)
    assert (shared.mapping, shared.mapcount) == (pav, 2)
    assert shared == sim.page(sim.page_at(p, a + PAGE))
    assert child_page.index == a // PAGE and shared.index == a // PAGE + 1


def test_legacy_2_6_33_puts_vmas_on_one_family_anon_vma():
    sim, p, c, a = seed("2.6.33")
    pv, cv = sim.vma_at(p, a), sim.vma_at(c, a)
    assert pv.anon_vma == cv.anon_vma  # one anon_vma per fork family
    # dup_mmap's anon_vma_link: list_add_tail of the child's VMA after the parent's
    assert pv.anon_vma.head == [pv, cv]
    assert all(type(x) is VmaView for x in pv.anon_vma.head)
    with pytest.raises(AttributeError, match=r"anon_vma_chain.*era '2\.6\.33'.*2\.6\.34"):
        cv.anon_vma_chain
    assert not hasattr(cv, "anon_vma_chain")


def test_2_6_35_roots_and_refcounts_across_three_generations():
    sim, p, c, a = seed("2.6.35")
    g = sim.fork(c)
    root = sim.vma_at(p, a).anon_vma
    cav, gav = sim.vma_at(c, a).anon_vma, sim.vma_at(g, a).anon_vma
    assert len({root, cav, gav}) == 3
    # anon_vma_fork: anon_vma->root = pvma->anon_vma->root
    assert root.root == root and cav.root == root and gav.root == root
    # refcount: 1 each, plus get_anon_vma(root) per non-root anon_vma
    assert (root.refcount, cav.refcount, gav.refcount) == (3, 1, 1)
    assert [e.anon_vma for e in sim.vma_at(g, a).anon_vma_chain] == [gav, cav, root]
    assert not hasattr(root, "parent") and not hasattr(root, "degree")


def test_interval_tree_eras_index_by_rb_root():
    sim, p, c, a = seed("3.7")
    pv, cv = sim.vma_at(p, a), sim.vma_at(c, a)
    # equal pgoff intervals keep link order: the parent's entry, then the child's
    assert [e.vma for e in pv.anon_vma.rb_root] == [pv, cv]
    with pytest.raises(AttributeError, match=r"'head' in era '3\.7'.*3\.7 replaced it"):
        pv.anon_vma.head


def reuse_scenario(era):
    """p writes and forks c1; c1 writes and forks gc; c1 exits; gc forks ggc. Returns the
    sim, the pids, the address and the anon_vma views R (p's), A1 (c1's), A2 (gc's)."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = sim.mmap(p, N * PAGE)
    sim.touch(p, a, N * PAGE)
    c1 = sim.fork(p)
    sim.touch(c1, a, N * PAGE)
    gc = sim.fork(c1)
    R, A1, A2 = sim.vma_at(p, a).anon_vma, sim.vma_at(c1, a).anon_vma, sim.vma_at(gc, a).anon_vma
    sim.exit(c1)
    before = sim.counts()["anon_vma"]
    ggc = sim.fork(gc)
    return sim, (p, gc, ggc), a, (R, A1, A2), before


def test_3_19_degree_and_reuse_hand_derived():
    sim, (p, gc, ggc), a, (R, A1, A2), before = reuse_scenario("3.19")
    # R: anon_vma_alloc 1 + prepare's degree++ (self-parent link of a new root) = 2, then
    #    anon_vma_fork for c1: parent->degree++ = 3.  (p is alive, so no decrement.)
    # A1: alloc 1 (c1's VMA) + gc's fork 1 = 2; c1's exit: unlink_anon_vmas drops the VMA
    #    reference (A1 keeps gc's entry, so its tree is not empty) = 1.
    # ggc's fork: anon_vma_clone walks gc's chain oldest first: R (degree 3, no), A1
    #    (degree 1 < 2, not gc's own A2): reused, degree++ = 2. No anon_vma allocated.
    # A2: alloc 1 (gc's VMA).
    assert sim.vma_at(ggc, a).anon_vma == A1
    assert sim.counts()["anon_vma"] == before
    assert (R.degree, A1.degree, A2.degree) == (3, 2, 1)
    assert (R.parent, A1.parent, A2.parent) == (R, R, A1)
    assert A2.root == R and A1.root == R
    assert [e.anon_vma for e in sim.vma_at(ggc, a).anon_vma_chain] == [A2, A1, R]
    with pytest.raises(AttributeError, match=r"num_children.*era '3\.19'.*6\.0"):
        R.num_children


def test_6_0_num_children_and_num_active_vmas_hand_derived():
    sim, (p, gc, ggc), a, (R, A1, A2), before = reuse_scenario("6.0")
    # R: prepare's new root counts its self-parent link (num_children 1) and p's VMA
    #    (num_active_vmas 1); c1's fork: num_children 2.
    # A1: c1's VMA (active 1); gc's fork: num_children 1; c1's exit: active 0.
    # ggc's fork: R (children 2) no; A1 (no active VMA, 1 child): reused, active 1.
    # A2: gc's VMA (active 1), no children.
    assert sim.vma_at(ggc, a).anon_vma == A1
    assert sim.counts()["anon_vma"] == before
    assert (R.num_children, R.num_active_vmas) == (2, 1)
    assert (A1.num_children, A1.num_active_vmas) == (1, 1)
    assert (A2.num_children, A2.num_active_vmas) == (0, 1)
    with pytest.raises(AttributeError, match=r"degree.*era '6\.0'.*3\.19 to 5\.19"):
        R.degree
    # gc exits: ggc's chain (cloned from gc's) keeps an entry on each of R, A1 and A2, so
    # no tree empties; only A2 loses its active VMA.
    sim.exit(gc)
    assert (A2.num_children, A2.num_active_vmas) == (0, 0)
    assert (A1.num_children, A1.num_active_vmas) == (1, 1)
    assert (R.num_children, R.num_active_vmas) == (2, 1)
    # ggc exits: unlink_anon_vmas, newest first: A2's tree empties (A1 loses its child),
    # then A1's (R loses it); both are freed. R keeps p's entry and VMA.
    sim.exit(ggc)
    for gone in (A1, A2):
        with pytest.raises(rmapsim.StaleHandle, match=r"anon_vma handle .* freed by operation"):
            gone.num_children
    assert (R.num_children, R.num_active_vmas) == (1, 1)


# Fields each era has, from the kernel's history (include/linux/rmap.h): root and the
# refcount 2.6.35, parent and degree 3.19, num_children / num_active_vmas replacing degree
# in 6.0, the list head up to 3.6 and rb_root from 3.7, vma->anon_vma_chain from 2.6.34.
ROOT = {"root", "refcount"}
FIELDS = {
    "2.6.33": {"head"},
    "2.6.34-rc1": {"head", "chain"},
    "2.6.34": {"head", "chain"},
    "2.6.35": {"head", "chain"} | ROOT,
    "3.0": {"head", "chain"} | ROOT,
    "3.7": {"rb_root", "chain"} | ROOT,
    "3.8": {"rb_root", "chain"} | ROOT,
    "3.19": {"rb_root", "chain", "parent", "degree"} | ROOT,
    "6.0": {"rb_root", "chain", "parent", "num_children", "num_active_vmas"} | ROOT,
    "6.18": {"rb_root", "chain", "parent", "num_children", "num_active_vmas"} | ROOT,
    "7.0-rc1": {"rb_root", "chain", "parent", "num_children", "num_active_vmas"} | ROOT,
    "7.0": {"rb_root", "chain", "parent", "num_children", "num_active_vmas"} | ROOT,
    "6.0+fork_reuse=never": {"rb_root", "chain"} | ROOT,
    "6.0+fork_reuse=degree": {"rb_root", "chain", "parent", "degree"} | ROOT,
    "3.7+index=list": {"head", "chain"} | ROOT,
}
OPTIONAL = ("root", "refcount", "parent", "degree", "num_children", "num_active_vmas", "head", "rb_root")


def test_every_preset_is_covered():
    assert set(EVERY_ERA) <= set(FIELDS) and set(rmapsim.eras()) == set(EVERY_ERA)


@pytest.mark.parametrize("era", sorted(FIELDS))
def test_fields_exist_exactly_in_their_eras(era):
    sim, p, c, a = seed(era)
    v = sim.vma_at(c, a)
    av = v.anon_vma
    have = {f for f in OPTIONAL if hasattr(av, f)} | ({"chain"} if hasattr(v, "anon_vma_chain") else set())
    assert have == FIELDS[era]
    for f in set(OPTIONAL) - have:
        with pytest.raises(AttributeError, match=re.escape(f"'{f}' in era '{era}'")):
            getattr(av, f)


# ---------------------------------------------------------------------------------------
# Agreement with the dict APIs over random runs


def random_run(era, seed_, ops=120):
    rng = random.Random(seed_)
    sim = rmapsim.Simulator(era=era, seed=seed_)
    sim.spawn()
    for _ in range(ops):
        pids = [int(x) for x in sim.pids()]
        if not pids:
            sim.spawn()
            continue
        pid = rng.choice(pids)
        vmas = sim.vmas(pid)
        what = rng.random()
        try:
            if what < 0.2 or not vmas:
                sim.mmap(pid, rng.randint(1, 6) * PAGE, prot=rng.choice(["rw", "r"]))
            elif what < 0.5:
                v = rng.choice(vmas)
                sim.touch(pid, v["start"], v["end"] - v["start"], write="w" in v["prot"])
            elif what < 0.65 and len(pids) < 12:
                sim.fork(pid)
            elif what < 0.75 and len(pids) > 2:
                sim.exit(pid)
            elif what < 0.82:
                v = rng.choice(vmas)
                sim.mprotect(pid, v["start"], PAGE, rng.choice(["r", "rw"]))
            elif what < 0.9:
                pages = [int(h) for h in sim.anon_pages()]
                sim.try_to_unmap(pages=rng.sample(pages, min(2, len(pages))))
            else:
                v = rng.choice(vmas)
                sim.munmap(pid, v["start"], PAGE)
        except rmapsim.SimError:
            pass
    pages = sim.anon_pages()
    if len(pages):
        sim.try_to_unmap(pages=[int(pages[-1])])  # at least one page in the swap cache
    return sim


def assert_views_agree(sim):
    g = sim.graph()
    chains = {}
    for pid in (int(x) for x in sim.pids()):
        mm = sim.mm(pid)
        assert mm.pid == pid and mm.map_count == len(sim.vmas(pid))
        views = mm.vmas
        for d, v in zip(sim.vmas(pid), views, strict=True):
            assert (v.vm_start, v.vm_end, v.vm_pgoff, v.prot, v.flags, v.vm_file) == (
                d["start"],
                d["end"],
                d["pgoff"],
                d["prot"],
                d["flags"],
                d["file"],
            )
            assert v.vm_mm == mm and sim.vma_at(pid, d["start"]) == v == sim.vma(v.handle)
            assert (v.anon_vma.handle if v.anon_vma else None) == d["anon_vma"]
            if hasattr(v, "anon_vma_chain"):
                chains[(pid, d["start"])] = [e.anon_vma.handle for e in v.anon_vma_chain]
                assert len(chains[(pid, d["start"])]) == d["chain_len"]
    # graph() lists chains oldest first; the kernel's list order is the reverse
    for gv in g["vmas"]:
        if (gv["pid"], gv["start"]) in chains:
            assert chains[(gv["pid"], gv["start"])] == gv["chain"][::-1]
    users = {}  # anon_vma -> VMAs whose ->anon_vma it is, recounted from vmas()
    for pid in (int(x) for x in sim.pids()):
        for d in sim.vmas(pid):
            if d["anon_vma"] is not None:
                users[d["anon_vma"]] = users.get(d["anon_vma"], 0) + 1
    for ga in g["anon_vmas"]:
        av = sim.anon_vma(ga["anon_vma"])
        index = av.rb_root if hasattr(av, "rb_root") else av.head
        assert len(index) == ga["entries"]
        for e in index:  # every entry links back: its VMA's chain holds it
            if isinstance(e, AnonVmaChainView):
                assert e.anon_vma == av and e in e.vma.anon_vma_chain
        if hasattr(av, "root"):
            assert av.root.handle == ga["root"]
        # the kernel counters, recounted: children = anon_vmas whose parent this is (a
        # root is its own parent), active VMAs = VMAs whose ->anon_vma this is
        kids = sum(1 for x in g["anon_vmas"] if x["parent"] == ga["anon_vma"])
        active = users.get(ga["anon_vma"], 0)
        if hasattr(av, "parent"):
            assert av.parent.handle == ga["parent"]
        if hasattr(av, "num_children"):
            assert (av.num_children, av.num_active_vmas) == (kids, active)
        if hasattr(av, "degree"):
            assert av.degree == kids + active
    for h in sim.anon_pages():
        pv = sim.page(h)
        d = sim.page_info(h)
        assert (pv.mapping.handle, pv.index, pv.mapcount, pv.swap_slot) == (
            d["anon_vma"],
            d["index"],
            d["mapcount"],
            d["swap_slot"],
        )


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "2.6.35", "3.7", "3.19", "6.0", "6.18"])
@pytest.mark.parametrize("seed_", [1, 2, 3])
def test_views_agree_with_the_dict_apis(era, seed_):
    sim = random_run(era, seed_)
    assert sim.counts()["anon_vma"] > 0 and sim.counts()["swap_cache"] > 0
    assert_views_agree(sim)


# ---------------------------------------------------------------------------------------
# Staleness, identity, read-only


def test_views_go_stale_when_the_object_is_freed():
    sim, p, c, a = seed("6.18", child_writes=0)  # ops: spawn 1, mmap 2, touch 3, fork 4
    mm, v = sim.mm(c), sim.vma_at(c, a)
    chain, own = v.anon_vma_chain, v.anon_vma
    page = sim.page(sim.page_at(p, a))
    sim.munmap(c, a, N * PAGE)  # op 5
    for view, kind in [(v, "vma"), (chain[0], "anon_vma_chain"), (chain[1], "anon_vma_chain")]:
        with pytest.raises(
            rmapsim.StaleHandle, match=f"{kind} handle {view.handle:#x} is stale: the {kind} was freed by operation #5"
        ):
            view.vm_start if kind == "vma" else view.vma
    with pytest.raises(rmapsim.StaleHandle, match=f"anon_vma handle {own.handle:#x} is stale: .* operation #5"):
        own.rb_root  # the child's own anon_vma went with its last entry
    assert mm.map_count == 0 and mm.vmas == []
    assert page.mapcount == 1  # the parent's page lost the child's mapping
    pmm = sim.mm(p)
    sim.exec(p)  # op 6: a new mm; the pages go
    with pytest.raises(
        rmapsim.StaleHandle, match=f"mm handle {pmm.handle:#x} is stale: the mm was freed by operation #6"
    ):
        pmm.pid
    assert sim.mm(p) != pmm and sim.mm(p).vmas == [] and sim.mm(p).pid == p
    with pytest.raises(rmapsim.StaleHandle, match=f"page handle {page.handle:#x} is stale"):
        page.mapcount
    sim.exit(c)  # op 7
    with pytest.raises(rmapsim.StaleHandle, match="operation #7"):
        mm.vmas
    assert repr(mm) == "(struct mm_struct *)0x1"  # repr never reads the simulator
    with pytest.raises(rmapsim.StaleHandle):
        sim.vma(v.handle)


def test_a_split_keeps_the_object_and_a_merge_frees_it():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    a = sim.mmap(p, 3 * PAGE)
    v = sim.vma_at(p, a)
    # mprotect_fixup splits below (new VMA takes [a, a+1)) then above (new takes [a+2, a+3)):
    # the original vm_area_struct is the middle part
    sim.mprotect(p, a + PAGE, PAGE, "r")
    assert (v.vm_start, v.vm_end, v.prot) == (a + PAGE, a + 2 * PAGE, "r")
    assert sim.mm(p).vmas[1] == v
    sim.mprotect(p, a + PAGE, PAGE, "rw")  # vma_merge case 1: prev absorbs the middle and next
    with pytest.raises(rmapsim.StaleHandle):
        v.vm_start
    assert len(sim.mm(p).vmas) == 1


def test_equality_hash_and_repr():
    sim, p, c, a = seed("6.0")
    v1, v2 = sim.vma_at(c, a), sim.mm(c).vmas[0]
    assert v1 == v2 and hash(v1) == hash(v2) and len({v1, v2}) == 1
    assert v1 is not v2 and v1 != sim.vma_at(p, a)
    assert v1 != v1.handle and v1 != VmaView(sim.clone(), v1.handle)
    assert AnonVmaView(sim, v1.handle) != v1  # another kind with the same number
    assert repr(v1) == f"(struct vm_area_struct *){v1.handle:#x}"
    assert repr(v1.anon_vma).startswith("(struct anon_vma *)0x")
    assert repr(v1.anon_vma_chain[0]).startswith("(struct anon_vma_chain *)0x")
    assert repr(sim.page(sim.anon_pages()[0])).startswith("(struct page *)0x")
    assert copy.copy(v1) is v1 and copy.deepcopy([v1])[0] is v1
    # views re-read: a later fault shows through an old view
    pg = sim.page(sim.page_at(p, a + PAGE))
    assert pg.mapcount == 2
    sim.touch(c, a + PAGE, PAGE)  # the child COWs it
    assert pg.mapcount == 1


@pytest.mark.parametrize("attr", ["vm_start", "anon_vma", "handle", "_h", "_sim", "new_attr"])
def test_views_are_read_only(attr):
    sim, p, c, a = seed("6.0")
    v = sim.vma_at(c, a)
    before = v.vm_start
    with pytest.raises(AttributeError):
        setattr(v, attr, 1)
    with pytest.raises(AttributeError):
        delattr(v, attr)
    assert v.vm_start == before and v.handle == sim.vma_at(c, a).handle
    for view in (sim.mm(c), v.anon_vma, v.anon_vma_chain[0], sim.page(sim.anon_pages()[0])):
        with pytest.raises(AttributeError):
            view.x = 1


# ---------------------------------------------------------------------------------------
# Hostile inputs


ENTRY = ["vma", "anon_vma", "anon_vma_chain", "page"]


@pytest.mark.parametrize("entry", ENTRY)
@pytest.mark.parametrize("bad", [-1, 2**64, 2**70, -(2**70), 2**64 - 1, 1 << 40])
def test_handles_that_name_nothing_are_stale(entry, bad):
    sim, p, c, a = seed("6.0")
    kind = entry
    with pytest.raises(rmapsim.StaleHandle, match=f"{kind} handle .*does not name an? {kind}") as e:
        getattr(sim, entry)(bad)
    assert isinstance(e.value, rmapsim.InvalidArgument) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("entry", ENTRY)
@pytest.mark.parametrize("bad", [True, 1.0, "1", None, [1], b"\x01"])
def test_handles_of_the_wrong_type_are_invalid(entry, bad):
    sim, p, c, a = seed("6.0")
    with pytest.raises(rmapsim.InvalidArgument, match=r"handle must be an int") as e:
        getattr(sim, entry)(bad)
    assert not isinstance(e.value, rmapsim.StaleHandle)


def test_a_handle_of_another_kind_is_refused_when_no_object_of_this_kind_has_it():
    sim, p, c, a = seed("6.0", child_writes=0)
    # live: anon_vmas 0 (parent) and 1 (child); pages 0..3; VMAs 0 and 1
    big_page = int(sim.anon_pages()[-1])
    assert big_page == 3
    with pytest.raises(rmapsim.StaleHandle, match="anon_vma handle 0x3 does not name an anon_vma"):
        sim.anon_vma(big_page)
    with pytest.raises(rmapsim.StaleHandle, match="vma handle 0x3 does not name a vma"):
        sim.vma(big_page)
    assert sim.page(np.uint64(big_page)).index == a // PAGE + 3  # numpy ints are handles


def test_entry_points_by_pid_and_address():
    sim, p, c, a = seed("6.0")
    for bad in (-1, 999, 2**70):
        with pytest.raises(rmapsim.NoSuchProcess):
            sim.mm(bad)
        with pytest.raises(rmapsim.NoSuchProcess):
            sim.vma_at(bad, a)
    with pytest.raises(rmapsim.InvalidArgument, match="pid must be an int"):
        sim.mm("1")
    for bad in (-1, 2**64):
        with pytest.raises(rmapsim.BadAddress, match="addr must be an address"):
            sim.vma_at(p, bad)
    assert sim.vma_at(p, a + N * PAGE) is None and sim.vma_at(p, 0) is None
    assert sim.vma_at(p, a + 123) == sim.vma_at(p, a)  # any byte of the VMA
    assert sim.vma_at(p, a + N * PAGE - 1).vm_end == a + N * PAGE
    with pytest.raises(rmapsim.InvalidArgument, match="kind must be one of"):
        sim._view("task_struct", 0)
    with pytest.raises(rmapsim.InvalidArgument, match="kind must be one of"):
        sim._view_list("page", 0)
    with pytest.raises(rmapsim.InvalidArgument, match="kind must be a string"):
        sim._view(0, 0)


def test_types_of_navigation():
    sim, p, c, a = seed("6.18")
    mm = sim.mm(c)
    assert type(mm) is MmView and all(type(v) is VmaView for v in mm.vmas)
    v = mm.vmas[0]
    assert type(v.anon_vma) is AnonVmaView and type(v.vm_mm) is MmView
    assert all(type(e) is AnonVmaChainView for e in v.anon_vma_chain)
    assert all(type(e) is AnonVmaChainView for e in v.anon_vma.root.rb_root)
    assert type(sim.page(sim.anon_pages()[0])) is PageView
    fresh = sim.vma_at(p, sim.mmap(p, PAGE, prot="r"))  # "r": no merge with the faulted VMA
    assert fresh.anon_vma is None and fresh.anon_vma_chain == []  # no fault yet


def test_a_dangling_page_mapping_in_2_6_34_rc1_is_a_stale_anon_vma():
    """rc1's overly anonymous anon_vma (docs/bugs.md): A writes p and forks B, p is reclaimed,
    B reads it in first, so __page_set_anon_rmap gives it B's own anon_vma (avB); A maps it
    from the swap cache too. B exits: avB's list empties and it is freed while A still maps
    p. The view of p's mapping is then the use-after-free, reported as StaleHandle."""
    sim = rmapsim.Simulator(era="2.6.34-rc1")
    a = sim.spawn()
    x = sim.mmap(a, PAGE)
    sim.touch(a, x, PAGE)
    p = sim.page(sim.page_at(a, x))
    b = sim.fork(a)
    sim.try_to_unmap([p.handle])
    assert (p.mapcount, p.swap_slot is not None) == (0, True)
    sim.touch(b, x, PAGE, write=False)
    sim.touch(a, x, PAGE, write=False)
    av_b = sim.vma_at(b, x).anon_vma
    assert p.mapping == av_b and p.mapcount == 2
    assert [e.vma.vm_mm.pid for e in av_b.head] == [b]  # A's VMA is not on avB: the bug
    sim.exit(b)
    assert p.mapcount == 1 and sim.page_at(a, x) == p.handle
    with pytest.raises(rmapsim.StaleHandle, match=f"anon_vma handle {av_b.handle:#x} is stale"):
        p.mapping.head
