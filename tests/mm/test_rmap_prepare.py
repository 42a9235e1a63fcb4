"""anon_vma_prepare (mm/rmap.c) and its reuse rule (find_mergeable_anon_vma): a first write
fault may take a neighbour's anon_vma; from 2.6.34 only a neighbour whose chain is singular.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import pytest

from helpers import (
    ALL_ERAS,
    ERA_RULES,
    PAGE,
    RC1,
    XP,
    A,
    X,
    assert_counts,
    check_fails,
    check_ok,
    expect_broken,
    expected_visits,
    is_chain_era,
    new_sim,
    page,
    page_at,
    pic,
    scan_rows,
    sites_delta,
    vma_at,
    vmas,
    walk,
    walk_one,
    write_all,
)

# ============================================ (b) prepare-time reuse of a multi-entry chain


def forked_x(era, x_col):
    """Parent writes a 2-page VMA X at x_col and forks C: C's X has anon_vma avC and, in
    chain eras, the chain [avP, avC]."""
    sim = new_sim(era)
    par = sim.spawn()
    sim.mmap(par, 2 * PAGE, addr=A(x_col))
    sim.touch(par, A(x_col), 2 * PAGE, write=True)
    c = sim.fork(par)
    x = vma_at(sim, c, x_col)
    assert int(x["chain_len"]) == (0 if era == "2.6.33" else 2)
    return sim, par, c


def fault_y(sim, era, c, y_col, x_col):
    """In C, a new VMA Y adjacent to X with prot rwx (so vma_merge does not merge it with
    X: prot differs) but anon_vma_compatible with X (flags equal but for r/w/x, pgoff
    contiguous), then a write fault in Y. find_mergeable_anon_vma offers X's anon_vma:
      2.6.33 and rc1 reuse it (no anon_vma allocated); 2.6.34 refuses it because X's chain
      has 2 entries and allocates a new anon_vma."""
    sim.mmap(c, 2 * PAGE, addr=A(y_col), prot="rwx")
    assert len(sim.vmas(c)) == 2
    _, d = sites_delta(sim, lambda: sim.touch(c, A(y_col), PAGE, write=True))
    expect = {"page@do_anonymous_page": 1}
    if era != "2.6.33":
        expect["anon_vma_chain@anon_vma_prepare"] = 1
    if era == "2.6.34":
        expect["anon_vma@anon_vma_prepare"] = 1
    assert d == expect, d
    y, x = vma_at(sim, c, y_col), vma_at(sim, c, x_col)
    if era == "2.6.34":
        assert int(y["anon_vma"]) != int(x["anon_vma"])
    else:
        assert int(y["anon_vma"]) == int(x["anon_vma"])
    assert int(y["chain_len"]) == (0 if era == "2.6.33" else 1)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_prepare_reuse_y_above_x(era):
    """0123          0123
       XX**   ->     XXYY (in C)   -> mprotect Y rw

    rc1: Y shares avC with X but links only avC, X links [avP, avC]: invariant 4 ("same
    anon_vma => same chain") is broken.
    Then mprotect Y to rw: in rc1 and 2.6.33 the anon_vmas are equal, so vma_merge case 7
    grows X over Y and unlinks Y's chain (anon_vma_merge): the merged VMA keeps X's chain,
    2 entries in rc1. Y's page lives in avC, which is on that chain, and X's pages (still
    shared with the parent, in avP) are on it too: every walk succeeds and check() passes
    again. 2.6.34: avY != avC, no merge, two VMAs, all consistent throughout."""
    sim, par, c = forked_x(era, 0)
    fault_y(sim, era, c, 2, 0)
    if era == RC1:
        check_fails(sim, r"invariant 4\b", par, c)
    else:
        check_ok(sim, par, c)

    sim.mprotect(c, A(2), 2 * PAGE, "rw")
    vs = sim.vmas(c)
    if era == "2.6.34":
        assert [(int(v["start"]), int(v["end"])) for v in vs] == [(A(0), A(2)), (A(2), A(4))]
    else:
        got = [(int(v["start"]), int(v["end"]), int(v["pgoff"])) for v in vs]
        assert got == [(A(0), A(4), XP)], pic(sim, c)
        assert int(vs[0]["chain_len"]) == (0 if era == "2.6.33" else 2), pic(sim, c)
    y_page = page(sim, c, 2)
    assert walk(sim, y_page) == (1, 1), pic(sim, c)
    for col in (0, 1):  # X's pages, still shared with the parent
        assert walk(sim, page(sim, c, col)) == (2, 2), pic(sim, par, c)
    check_ok(sim, par, c)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_prepare_reuse_y_below_x(era):
    """0123          0123
       **XX   ->     YYXX (in C)   -> mprotect Y rw

    The harmful direction: Y is below X, so the merge is vma_merge case 8 and Y (the
    area) grows over X. rc1: anon_vma_merge(Y, X) unlinks X's chain [avP, avC]; the merged
    VMA keeps Y's chain [avC] alone. X's pages are still shared with the parent and live in
    avP, whose list now holds only the parent's VMA: the walk finds 1 of 2 mappings
    (invariant 1). When the parent exits, avP's list empties and avP is freed while C maps
    those pages: dangling page->mapping (invariant 2). 2.6.33 merges with one family
    anon_vma (fine); 2.6.34 never shared avC, so nothing merges and nothing breaks."""
    sim, par, c = forked_x(era, 2)
    fault_y(sim, era, c, 0, 2)
    if era == RC1:
        check_fails(sim, r"invariant 4\b", par, c)
    else:
        check_ok(sim, par, c)

    sim.mprotect(c, A(0), 2 * PAGE, "rw")
    vs = sim.vmas(c)
    if era == "2.6.34":
        assert len(vs) == 2, pic(sim, c)
    else:
        got = [(int(v["start"]), int(v["end"]), int(v["pgoff"])) for v in vs]
        assert got == [(A(0), A(4), XP)], pic(sim, c)
        assert int(vs[0]["chain_len"]) == (0 if era == "2.6.33" else 1), pic(sim, c)
    x_pages = [page(sim, c, 2), page(sim, c, 3)]
    for h in x_pages:
        assert walk(sim, h) == ((1, 2) if era == RC1 else (2, 2)), pic(sim, par, c)
    assert walk(sim, page(sim, c, 0)) == (1, 1)
    if era == RC1:
        check_fails(sim, r"invariant 1\b", par, c)
    else:
        check_ok(sim, par, c)

    sim.exit(par)
    if era == RC1:
        check_fails(sim, r"invariant 2\b.*freed", c)
    else:
        for h in x_pages:
            assert walk(sim, h) == (1, 1)
        check_ok(sim, c)


# --------------------------------------------------------------------------- prepare reuse


def _place_neighbour(sim, pid, side):
    """Map a fresh 1-page "rwx" VMA right above (side="prev": the faulted VMA at X is its
    prev) or right below (side="next") the 2-page "rw" VMA at X. Returns its address.

    Both prots are writable, so both VMAs carry the same non-rwx flags (in the kernel
    VM_ACCOUNT too): anon_vma_compatible / can_vma_merge_* ignoring READ|WRITE|EXEC hold,
    and pgoffs are contiguous because anonymous pgoff = start >> 12."""
    addr = X + 2 * PAGE if side == "prev" else X - PAGE
    sim.mmap(pid, PAGE, addr=addr, prot="rwx")
    return addr


@pytest.mark.parametrize("side", ["prev", "next"])
def test_prepare_reuses_neighbour_with_singular_chain(sim, side):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)
    b = _place_neighbour(sim, pid, side)
    assert len(vmas(sim, pid)) == 2  # different prot: not merged
    sim.touch(pid, b, PAGE, write=True)
    a_v = [v for v in vmas(sim, pid) if v["start"] == X][0]
    b_v = [v for v in vmas(sim, pid) if v["start"] == b][0]
    # find_mergeable_anon_vma finds the neighbour; its chain is singular -> reused in both eras
    assert b_v["anon_vma"] == a_v["anon_vma"]
    assert_counts(sim, anon_vma=1, anon_vma_chain=2 if is_chain_era(sim) else 0, page=3)
    if is_chain_era(sim):
        assert b_v["chain_len"] == 1
    row = walk_one(sim, page_at(sim, pid, b))
    # both VMAs are on the shared anon_vma's list; only B covers the page's pgoff
    assert row["anon_vma"] == a_v["anon_vma"]
    assert row["vmas_visited"] == expected_visits(sim, on_list=2, covering=1)
    assert row["vmas_in_range"] == 1
    assert row["mappings_found"] == row["mapcount"] == 1


@pytest.mark.parametrize("side", ["prev", "next"])
def test_prepare_reuse_list_order_seen_by_page_referenced(sim, side):
    """Where anon_vma_prepare links a VMA that reuses a neighbour's anon_vma:
    2.6.33 appends it (list_add_tail(&vma->anon_vma_node, &anon_vma->head)); 2.6.34 puts
    its AVC at the head (list_add(&avc->same_anon_vma, &anon_vma->head)) -- Andrea
    Arcangeli's "always add new VMAs at the end of the list" fix was deferred to 2.6.35.
    page_referenced_anon stops at the first (only) mapping, so the order is visible."""
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)  # A first: list [A]
    b = _place_neighbour(sim, pid, side)
    sim.touch(pid, b, PAGE, write=True)  # B reuses A's anon_vma
    a_page, b_page = page_at(sim, pid, X), page_at(sim, pid, b)
    rows = {r["page"]: r for r in scan_rows(sim.page_referenced(pages=[a_page, b_page]))}
    rules = ERA_RULES[sim.era]
    if rules["index"] == "itree":
        # 3.7+: the interval tree yields only the entry covering each page: 1 each
        assert (rows[a_page]["vmas_visited"], rows[b_page]["vmas_visited"]) == (1, 1)
    elif is_chain_era(sim) and rules["prepare_head"]:
        # list [B, A]: B's page found at entry 1; A's page after skipping B (out of range)
        assert (rows[b_page]["vmas_visited"], rows[a_page]["vmas_visited"]) == (1, 2)
    else:
        # list [A, B] (2.6.33; 2.6.38+ add at the tail again)
        assert (rows[a_page]["vmas_visited"], rows[b_page]["vmas_visited"]) == (1, 2)
    for r in rows.values():
        assert r["mappings_found"] == r["mapcount"] == 1


@pytest.mark.parametrize("side", ["prev", "next"])
def test_prepare_reuse_in_forked_child_depends_on_era(sim, side):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, parent, X, 2)
    family_av = vmas(sim, parent)[0]["anon_vma"]
    child = sim.fork(parent)
    b = _place_neighbour(sim, child, side)
    sim.touch(child, b, PAGE, write=True)
    a_v = [v for v in vmas(sim, child) if v["start"] == X][0]
    b_v = [v for v in vmas(sim, child) if v["start"] == b][0]
    if ERA_RULES[sim.era]["prepare"] == "singular":
        # the neighbour's chain is [C, AP] (length 2): since 2.6.34-rc4 (d0e9fe1758f2) it is
        # not reused; prepare allocates a new anon_vma + one AVC
        assert a_v["chain_len"] == 2
        assert b_v["anon_vma"] is not None
        assert b_v["anon_vma"] not in (a_v["anon_vma"], family_av)
        assert b_v["chain_len"] == 1
        # AP, C, B's; AVCs: parent 1 + child's A 2 + B 1
        assert_counts(sim, anon_vma=3, anon_vma_chain=4)
    elif sim.era == "2.6.34-rc1":
        # the patch as posted reuses the neighbour's anon_vma C whatever its chain: B links
        # only C (prepare adds one AVC), A links C and AP -- two VMAs share ->anon_vma with
        # different chains (docs/bugs.md, prepare-time reuse)
        assert a_v["chain_len"] == 2
        assert b_v["anon_vma"] == a_v["anon_vma"] != family_av
        assert b_v["chain_len"] == 1
        # AP, C; AVCs: parent 1 + child's A 2 + B 1
        assert_counts(sim, anon_vma=2, anon_vma_chain=4)
        expect_broken(sim, 4)
    else:
        # 2.6.33 reuses any compatible neighbour's anon_vma: the family one
        assert b_v["anon_vma"] == a_v["anon_vma"] == family_av
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)


def test_prepare_reuse_still_refused_after_parent_exit(sim):
    """The child's chain keeps the parent's anon_vma after the parent exits (length 2), so
    2.6.34 still refuses to share the child's anon_vma with a new neighbour (2.6.34-rc1, with
    no singular-chain test, shares it and breaks invariant 4)."""
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.exit(parent)
    b = _place_neighbour(sim, child, "prev")
    sim.touch(child, b, PAGE, write=True)
    a_v, b_v = vmas(sim, child)
    # 2.6.34 and every later era: the singular-chain test (d0e9fe1758f2); from 2.6.35 the
    # parent's anon_vma is also the root the child's pins, so it stays too
    if ERA_RULES[sim.era]["prepare"] == "singular":
        assert a_v["chain_len"] == 2
        assert b_v["anon_vma"] != a_v["anon_vma"]
        assert_counts(sim, anon_vma=3, anon_vma_chain=3)
    elif sim.era == "2.6.34-rc1":
        # rc1 reuses the child's anon_vma: B's chain [C] differs from A's [C, AP]
        assert (a_v["chain_len"], b_v["chain_len"]) == (2, 1)
        assert b_v["anon_vma"] == a_v["anon_vma"]
        assert_counts(sim, anon_vma=2, anon_vma_chain=3)
        expect_broken(sim, 4)
    else:
        assert b_v["anon_vma"] == a_v["anon_vma"]
        assert_counts(sim, anon_vma=1, anon_vma_chain=0)


def test_prepare_does_not_reuse_across_a_gap(sim):
    pid = sim.spawn()
    sim.mmap(pid, 2 * PAGE, addr=X, prot="rw")
    write_all(sim, pid, X, 2)
    sim.mmap(pid, PAGE, addr=X + 3 * PAGE, prot="rwx")
    sim.touch(pid, X + 3 * PAGE, PAGE, write=True)
    vs = vmas(sim, pid)
    # anon_vma_compatible needs a->vm_end == b->vm_start: a one-page hole defeats it
    assert vs[0]["anon_vma"] != vs[1]["anon_vma"]
    assert_counts(sim, anon_vma=2, anon_vma_chain=2 if is_chain_era(sim) else 0)
