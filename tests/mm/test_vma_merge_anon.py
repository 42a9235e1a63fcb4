"""vma_merge's anon_vma propagation (the importer/exporter rule of vma_adjust, 2.6.34-rc4,
287d97ac) and allocation failure inside it, after the kernel's tools/testing/vma suite
(dup_anon_vma tests).

Pictures: one column per page, relative to X. Letters name VMAs, `*` is the new range,
`<-->` marks the range being modified.

The kernel rules R1-R7 the comments cite are listed in merge_helpers.py.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import PAGE, page_at, scan_rows, snapshot
from merge_helpers import (
    ALL_ERAS,
    A,
    R,
    allocs_of,
    assert_pages,
    assert_walks_complete,
    av_at,
    check_fails,
    check_ok,
    clen,
    expect_shape,
    map_ro,
    new_sim,
    pic,
    rel_vmas,
)

# ================================================================== anon_vma duplication


def dup_new_range(sim, p):
    """P [0,3) unfaulted, N [7,10) written; action: mmap [3,7) -> case 1, P imports N."""
    sim.mmap(p, 3 * PAGE, addr=A(0))
    sim.mmap(p, 3 * PAGE, addr=A(7))
    sim.touch(p, A(7), 3 * PAGE, write=True)
    return av_at(sim, p, 7), lambda: sim.mmap(p, 4 * PAGE, addr=A(3))


def dup_next_has_anon(sim, p):
    """P [0,3) r and V [3,7) rw unfaulted, N [7,10) r written; action: mprotect V r ->
    case 6: P grows over V (nothing to import) and then over N (imports N's)."""
    sim.mmap(p, 3 * PAGE, addr=A(7))
    sim.touch(p, A(7), 3 * PAGE, write=True)
    sim.mprotect(p, A(7), 3 * PAGE, "r")
    map_ro(sim, p, 3, A(0))
    sim.mmap(p, 4 * PAGE, addr=A(3), prot="rw")
    return av_at(sim, p, 7), lambda: sim.mprotect(p, A(3), 4 * PAGE, "r")


def dup_vma_has_anon(sim, p):
    """V [3,7) rw written, P [0,3) r and N [7,10) r unfaulted; action: mprotect V r ->
    case 6: P grows over V (imports V's) and over N (nothing to import)."""
    sim.mmap(p, 4 * PAGE, addr=A(3))
    sim.touch(p, A(3), 4 * PAGE, write=True)
    map_ro(sim, p, 3, A(0))
    map_ro(sim, p, 3, A(7))
    return av_at(sim, p, 3), lambda: sim.mprotect(p, A(3), 4 * PAGE, "r")


def dup_prev_extends(sim, p):
    """V [3,8) rw written, P [0,3) r unfaulted; action: mprotect [3,5) r -> case 5: P
    grows over V's first two pages and imports V's anon_vma."""
    sim.mmap(p, 5 * PAGE, addr=A(3))
    sim.touch(p, A(3), 5 * PAGE, write=True)
    map_ro(sim, p, 3, A(0))
    return av_at(sim, p, 3), lambda: sim.mprotect(p, A(3), 2 * PAGE, "r")


def dup_next_extends(sim, p):
    """V [0,5) rw written, N [5,8) r unfaulted; action: mprotect [3,5) r -> case 4: N
    grows down over V's last two pages and imports V's anon_vma."""
    sim.mmap(p, 5 * PAGE, addr=A(0))
    sim.touch(p, A(0), 5 * PAGE, write=True)
    map_ro(sim, p, 3, A(5))
    return av_at(sim, p, 0), lambda: sim.mprotect(p, A(3), 2 * PAGE, "r")


# name, builder, expected shape after the merge, importer column, columns with pages,
# rc1 breaks (importer is `vma` itself, R3), expected shape when the clone is failed (R7)
DUP_CASES = [
    # 0123456789
    # PPP****NNN  ->  PPPPPPPPPP   (merged VMA must carry N's anon_vma and chain)
    ("new_range", dup_new_range, [(0, 10, 0)], 0, range(7, 10), True, [(0, 3, 0), (3, 7, 3), (7, 10, 7)]),
    #    <-->
    # 0123456789
    # PPPVVVVNNN  ->  PPPPPPPPPP   (next has the anon_vma, prev gets it)
    ("next_has_anon", dup_next_has_anon, [(0, 10, 0)], 0, range(7, 10), True, None),
    #    <-->
    # 0123456789
    # PPPVVVVNNN  ->  PPPPPPPPPP   (vma has the anon_vma, prev gets it)
    ("vma_has_anon", dup_vma_has_anon, [(0, 10, 0)], 0, range(3, 7), True, [(0, 3, 0), (3, 7, 3), (7, 10, 7)]),
    #    <>
    # 0123456789
    # PPPVVVVV    ->  PPPPPVVV     (vma has the anon_vma, prev extends over part of it)
    ("prev_extends", dup_prev_extends, [(0, 5, 0), (5, 8, 5)], 0, range(3, 8), True, [(0, 3, 0), (3, 5, 3), (5, 8, 5)]),
    #    <>
    # 0123456789
    # VVVVVNNN    ->  VVVNNNNN     (vma has the anon_vma, next extends over part of it)
    (
        "next_extends",
        dup_next_extends,
        [(0, 3, 0), (3, 8, 3)],
        3,
        range(0, 5),
        False,
        [(0, 3, 0), (3, 5, 3), (5, 8, 5)],
    ),
]
DUP_IDS = [c[0] for c in DUP_CASES]


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("name,build,after,imp_col,page_cols,rc1_breaks,_nomem", DUP_CASES, ids=DUP_IDS)
def test_dup_anon_vma(era, name, build, after, imp_col, page_cols, rc1_breaks, _nomem):
    """The importer rule (R3): a VMA without anon_vma that grows over pages of one with an
    anon_vma must end with that anon_vma and, in chain eras, with a clone of its chain.

    2.6.34: one anon_vma_chain allocated (the exporter's chain has one entry); the merged
    VMA has chain_len 1, walks find every page. 2.6.33: the importer is linked, nothing is
    allocated. 2.6.34-rc1: where the importer is `vma` itself it clones its own empty
    chain (no allocation) and keeps an anon_vma that is not on its chain: check() must
    raise InvariantViolation; in case 4 (next_extends) rc1 clones the right chain."""
    sim = new_sim(era)
    p = sim.spawn()
    av, action = build(sim, p)
    assert av is not None
    npages = sim.counts()["page"]
    check_ok(sim, p)

    _, n = allocs_of(sim, action)
    broken = era == "2.6.34-rc1" and rc1_breaks
    # 2.6.34 (and rc1 in case 4) clones a 1-entry chain; rc1 otherwise clones an empty one
    assert n == (0 if era == "2.6.33" or broken else 1), f"{name}: {n} allocations{pic(sim, p)}"
    expect_shape(sim, p, after, name)
    vs = rel_vmas(sim, p)
    # the importer carries the exporter's anon_vma in every era (rc1 sets the pointer too)
    assert all(v["anon_vma"] == av for v in vs), f"{name}{pic(sim, p)}"
    imp = next(v for v in vs if v["s"] <= imp_col < v["e"])
    if broken:
        # rc1: the importer cloned its own (empty) chain
        assert imp["chain_len"] == 0, f"{name}{pic(sim, p)}"
        check_fails(sim, p)
        return
    assert [v["chain_len"] for v in vs] == [clen(era, 1)] * len(vs), f"{name}{pic(sim, p)}"
    c = sim.counts()
    got = (c["vma"], c["anon_vma"], c["anon_vma_chain"], c["page"])
    assert got == (len(after), 1, clen(era, len(after)), npages), pic(sim, p)
    assert_pages(sim, p, page_cols, av)
    assert_walks_complete(sim, p)
    check_ok(sim, p)
    sim.exit(p)
    assert all(int(v) == 0 for v in sim.counts().values()), sim.counts()


@pytest.mark.parametrize("era", ALL_ERAS)
def test_dup_anon_vma_rc1_dangling_and_missed(era):
    """The two faces of rc1's broken importer, derived from R3/R4:

    0123456789                          0123456789
    PPP****NNN  -> PPPPPPPPPP           PPPVVVVV    -> PPPPPVVV   (mprotect [3,5) r)

    new_range (case 1): N's chain is unlinked by anon_vma_merge and was the only entry on
    N's anon_vma, which is freed while N's pages still point to it (dangling
    page->mapping); the counts show no anon_vma and no chain entry left.
    prev_extends (case 5): V keeps its chain entry, so the anon_vma lives, but the pages
    now inside P are reachable only through P, which is not on the list: the full walk
    finds 0 of their 1 mappings, while V's own pages are still found."""
    sim = new_sim(era)
    p = sim.spawn()
    _, action = dup_new_range(sim, p)
    action()
    c = sim.counts()
    if era == "2.6.34-rc1":
        assert (c["anon_vma"], c["anon_vma_chain"], c["page"]) == (0, 0, 3), pic(sim, p)
        check_fails(sim, p, "freed")
    else:
        assert (c["anon_vma"], c["anon_vma_chain"], c["page"]) == (1, clen(era, 1), 3), pic(sim, p)
        check_ok(sim, p)

    sim2 = new_sim(era)
    q = sim2.spawn()
    _, action = dup_prev_extends(sim2, q)
    action()
    found = {}
    for col in range(3, 8):
        r = scan_rows(sim2.rmap_walk([page_at(sim2, q, A(col))]))[0]
        found[col] = (r["mappings_found"], r["mapcount"])
    if era == "2.6.34-rc1":
        assert found == {3: (0, 1), 4: (0, 1), 5: (1, 1), 6: (1, 1), 7: (1, 1)}, pic(sim2, q)
        check_fails(sim2, q, r"invariant 1\b")
    else:
        assert all(f == (1, 1) for f in found.values()), (found, pic(sim2, q))
        check_ok(sim2, q)


# ======================================================================== ENOMEM after clone


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize(
    "name,build,after,imp_col,page_cols,rc1_breaks,nomem",
    [c for c in DUP_CASES if c[6] is not None],
    ids=[c[0] for c in DUP_CASES if c[6] is not None],
)
def test_enomem_in_importer_clone(era, name, build, after, imp_col, page_cols, rc1_breaks, nomem):
    """Fail the first allocation of the merging call: in 2.6.34 that is the importer's
    anon_vma_clone inside vma_adjust inside vma_merge, where the kernel absorbs the error
    (R7): the call succeeds without merging.
      new_range:    mmap_region allocates a VMA for the range: P, new, N stay apart
                    (2 allocations: the failed chain entry and the vm_area_struct).
      vma_has_anon: the clone fails before anything moved; mprotect_fixup has nothing to
                    split (the range is all of V): three VMAs, V now read-only (1).
      prev_extends: mprotect_fixup splits V at 5 instead (1 + vm_area_struct + 1 chain
                    entry cloned for the new piece = 3).
      next_extends: split V at 3 (3), also in rc1, whose case-4 clone allocates too.
    In 2.6.33 the merge allocates nothing (the armed failure is not consumed and the merge
    happens); in rc1 cases 1/5/6 clone an empty chain: no allocation, the broken merge
    happens (check() raises)."""
    sim = new_sim(era)
    p = sim.spawn()
    av, action = build(sim, p)
    sim.inject_enomem(nth=1)
    allocates = era == "2.6.34" or (era == "2.6.34-rc1" and not rc1_breaks)
    _, n = allocs_of(sim, action)  # must not raise
    sim.inject_enomem(None)
    if not allocates:
        assert n == 0, pic(sim, p)
        expect_shape(sim, p, after, f"{name}: merged (nothing to fail)")
        if era == "2.6.34-rc1":
            check_fails(sim, p)
        else:
            check_ok(sim, p)
        return
    expected_n = {"new_range": 2, "vma_has_anon": 1, "prev_extends": 3, "next_extends": 3}[name]
    assert n == expected_n, f"{name}: {n} allocations{pic(sim, p)}"
    expect_shape(sim, p, nomem, f"{name}: absorbed ENOMEM, no merge")
    vs = rel_vmas(sim, p)
    # the failed importer got nothing; every other VMA with pages still has av, chain 1
    for v in vs:
        if any(v["s"] <= c < v["e"] for c in page_cols):
            assert v["anon_vma"] == av and v["chain_len"] == 1, f"{name}{pic(sim, p)}"
        else:
            assert v["anon_vma"] is None and v["chain_len"] == 0, f"{name}{pic(sim, p)}"
    # the range was still given its new protection (mprotect) / mapped (mmap)
    if name != "new_range":  # every modified range starts at column 3
        assert next(v for v in vs if v["s"] <= 3 < v["e"])["prot"] == R, pic(sim, p)
    assert_pages(sim, p, page_cols, av)
    assert_walks_complete(sim, p)
    check_ok(sim, p)
    sim.exit(p)
    assert all(int(v) == 0 for v in sim.counts().values()), sim.counts()


def test_enomem_in_case6_second_pass_clone():
    """<-->
    0123456789
    PPPVVVVNNN   P and V unfaulted, N faulted; mprotect V to r = case 6.

    The only allocation is the clone into P on the second pass of vma_adjust (after V was
    merged into P and freed). Acceptable outcomes: OutOfMemory or success with a state
    that satisfies check(), or a reported (not internal) InvariantViolation modelling the
    kernel's use of the freed VMA."""
    sim = new_sim("2.6.34")
    p = sim.spawn()
    _, action = dup_next_has_anon(sim, p)
    sim.inject_enomem(nth=1)
    try:
        action()
    except rmapsim.InvariantViolation as e:
        # acceptable: the kernel's use-after-free, detected and reported as such
        assert "internal error" not in str(e), f"{e}{pic(sim, p)}"
        return
    except rmapsim.OutOfMemory:
        pass
    sim.inject_enomem(None)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_enomem_in_split_clone_raises_and_changes_nothing(era):
    """Contrast with R7: a split's chain clone is not inside vma_merge. mprotect of the top
    part of a faulted VMA needs one split (vm_area_struct, then the chain clone); failing
    the clone (allocation 2) makes __split_vma free the new VMA and mprotect return
    ENOMEM with nothing changed. 2.6.33 has no clone: allocation 2 does not exist, the
    call succeeds.

      <>
    0123
    VVVV  -> chain eras: VVVV (OutOfMemory); 2.6.33: VVRR
    """
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, addr=A(0))
    sim.touch(p, A(0), 4 * PAGE, write=True)
    before = snapshot(sim, allocations=False)
    sim.inject_enomem(nth=2)
    if era == "2.6.33":
        sim.mprotect(p, A(2), 2 * PAGE, "r")
        sim.inject_enomem(None)
        expect_shape(sim, p, [(0, 2, 0), (2, 4, 2)], "split")
    else:
        with pytest.raises(rmapsim.OutOfMemory, match=r"\(anon_vma_chain@anon_vma_clone\)"):
            sim.mprotect(p, A(2), 2 * PAGE, "r")
        assert snapshot(sim, allocations=False) == before, pic(sim, p)
    check_ok(sim, p)
