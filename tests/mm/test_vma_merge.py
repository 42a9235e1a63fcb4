"""VMA merge scenarios after the kernel's tools/testing/vma suite, run through rmapsim.

The kernel suite (Lorenzo Stoakes; tools/testing/vma/tests/merge.c and tests/vma.c) drives
vma_merge_new_range() / vma_merge_existing_range() / copy_vma() on hand-built VMAs and
checks the resulting ranges, pgoffs and anon_vma propagation. Here the same pictures are
assembled through the public API (mmap(addr=...) with MAP_FIXED semantics, touch,
mprotect, madvise, mremap) and checked against what the 2.6.33 / 2.6.34 `vma_merge` and
`vma_adjust` in mm/mmap.c do (the eight vma_merge cases; the importer/exporter rule of
2.6.34-rc4, commit 287d97ac "vma_adjust: fix the copying of anon_vma chains"). Beyond the
kernel suite, each test also checks chain lengths, that a full rmap walk finds every
mapping of every page (mappings_found == mapcount), and `check()`.

Pictures: one column per page, relative to X. Letters name VMAs, `*` is the new range,
`<-->` marks the range being modified.

The kernel rules R1-R7 the comments cite are listed in merge_helpers.py.
"""

from __future__ import annotations

import pytest

from helpers import PAGE
from merge_helpers import (
    ALL_ERAS,
    RW,
    A,
    R,
    allocs_of,
    assert_pages,
    assert_walks_complete,
    av_at,
    check_ok,
    clen,
    expect_shape,
    new_sim,
    pic,
    rel_vmas,
)

# =========================================================================== new ranges


@pytest.mark.parametrize("era", ALL_ERAS)
def test_merge_new_ranges(era):
    """Port of the suite's new-range merge walk (no merge, both, prev, next, both...).

    Start:                     A faulted at column 0 (its own anon_vma avA: no adjacent
      0123456789abc            neighbour to reuse, R5); B and C unfaulted.
      AA B       CC
    """
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(0))
    sim.mmap(p, PAGE, addr=A(3))
    sim.mmap(p, PAGE, addr=A(0xB))
    sim.touch(p, A(0), PAGE, write=True)
    av_a = av_at(sim, p, 0)
    assert av_a is not None
    expect_shape(sim, p, [(0, 2, 0), (3, 4, 3), (0xB, 0xC, 0xB)], "start")

    # 0123456789abc
    # AA B   **  CC    no neighbour touches [7, 9): a new VMA D (one vm_area_struct)
    _, n = allocs_of(sim, sim.mmap, p, 2 * PAGE, addr=A(7))
    assert n == 1, pic(sim, p)
    expect_shape(sim, p, [(0, 2, 0), (3, 4, 3), (7, 9, 7), (0xB, 0xC, 0xB)], "no merge")

    # 0123456789abc
    # AA*B   DD  CC    case 1: A + new + B (B unfaulted: is_mergeable_anon_vma(avA, NULL));
    #  -> AAAA         A keeps avA, B has no anon_vma to merge: nothing allocated
    _, n = allocs_of(sim, sim.mmap, p, PAGE, addr=A(2))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(0, 4, 0), (7, 9, 7), (0xB, 0xC, 0xB)], "merge both")
    assert av_at(sim, p, 0) == av_a, pic(sim, p)

    # 0123456789abc
    # AAAA*  DD  CC    case 2: extend A
    _, n = allocs_of(sim, sim.mmap, p, PAGE, addr=A(4))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(0, 5, 0), (7, 9, 7), (0xB, 0xC, 0xB)], "merge prev")

    # D faulted: A ends at 5 and C starts at b, so no neighbour is adjacent: its own avD.
    # 0123456789abc
    # AAAAA *DD  CC    case 3: D grows down, pgoff 7 - 1 = 6, keeps avD
    sim.touch(p, A(7), PAGE, write=True)
    av_d = av_at(sim, p, 7)
    assert av_d is not None and av_d != av_a, pic(sim, p)
    _, n = allocs_of(sim, sim.mmap, p, PAGE, addr=A(6))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(0, 5, 0), (6, 9, 6), (0xB, 0xC, 0xB)], "merge next")
    assert av_at(sim, p, 6) == av_d, pic(sim, p)

    # 0123456789abc
    # AAAAA*DDD  CC    prev has avA, next avD: R2 refuses the 3-way merge, case 2 only
    #  -> AAAAAADDD    (the suite's anon_vma_non_mergeable new-range picture)
    sim.mmap(p, PAGE, addr=A(5))
    expect_shape(sim, p, [(0, 6, 0), (6, 9, 6), (0xB, 0xC, 0xB)], "non-mergeable anon_vmas")

    # 0123456789abc
    # AAAAAADDD *CC    case 3 into unfaulted C: pgoff 0xb - 1
    sim.mmap(p, PAGE, addr=A(0xA))
    expect_shape(sim, p, [(0, 6, 0), (6, 9, 6), (0xA, 0xC, 0xA)], "merge next (C)")

    # 0123456789abc
    # AAAAAADDD*CCC    case 1: D + new + C (C unfaulted) -> D keeps avD
    sim.mmap(p, PAGE, addr=A(9))
    expect_shape(sim, p, [(0, 6, 0), (6, 0xC, 6)], "final")

    vs = rel_vmas(sim, p)
    assert [v["anon_vma"] for v in vs] == [av_a, av_d], pic(sim, p)
    assert [v["chain_len"] for v in vs] == [clen(era, 1), clen(era, 1)], pic(sim, p)
    c = sim.counts()
    got = (c["vma"], c["anon_vma"], c["anon_vma_chain"], c["page"])
    assert got == (2, 2, clen(era, 2), 2), pic(sim, p)
    check_ok(sim, p)

    # Fill every page: new pages go to the faulting VMA's anon_vma at the linear index.
    sim.touch(p, A(0), 0xC * PAGE, write=True)
    assert_pages(sim, p, range(0, 6), av_a)
    assert_pages(sim, p, range(6, 0xC), av_d)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


# ====================================================================== existing ranges


def build_split(sim, p, lo, hi, r_ranges):
    """One rw VMA [lo, hi) written everywhere (one anon_vma), then the given sub-ranges
    made read-only: split pieces that share the anon_vma and have identical chains (R6)."""
    sim.mmap(p, (hi - lo) * PAGE, addr=A(lo))
    sim.touch(p, A(lo), (hi - lo) * PAGE, write=True)
    for s, e in r_ranges:
        sim.mprotect(p, A(s), (e - s) * PAGE, "r")
    return av_at(sim, p, lo)


def build_reuse(sim, p):
    """P [0,3) written then made read-only; V [3,7) mapped rw (prot differs: no vma_merge)
    and written: anon_vma_prepare(V) finds P adjacent, compatible (flags equal but for
    r/w/x, pgoff contiguous) with a singular chain -> V reuses P's anon_vma in every era
    (R5)."""
    sim.mmap(p, 3 * PAGE, addr=A(0))
    sim.touch(p, A(0), 3 * PAGE, write=True)
    sim.mprotect(p, A(0), 3 * PAGE, "r")
    sim.mmap(p, 4 * PAGE, addr=A(3))
    sim.touch(p, A(3), 4 * PAGE, write=True)
    av = av_at(sim, p, 0)
    assert av_at(sim, p, 3) == av, f"V did not reuse P's anon_vma{pic(sim, p)}"
    return av


# Each case: (name, builder, mprotect range, prot, expected shape with prot)
EXISTING_CASES = [
    # Merge right, partial span (vma_merge case 4: vma shrinks, next grows down).
    #    <->
    # 0123456789
    #   VVVVNNN
    #  -> VNNNNNN
    ("right_partial", lambda s, p: build_split(s, p, 2, 9, [(6, 9)]), (3, 6), "r", [(2, 3, 2, RW), (3, 9, 3, R)]),
    # Merge right, full span (case 8: V grows over next, next removed).
    #   <-->
    # 0123456789
    #   VVVVNNN
    #  -> NNNNNNN
    ("right_full", lambda s, p: build_split(s, p, 2, 9, [(6, 9)]), (2, 6), "r", [(2, 9, 2, R)]),
    # Merge left, partial span (case 5: prev grows, vma shrinks from below).
    #    <->
    # 0123456789
    # PPPVVVV
    #  -> PPPPPPV
    ("left_partial", lambda s, p: build_split(s, p, 0, 7, [(0, 3)]), (3, 6), "r", [(0, 6, 0, R), (6, 7, 6, RW)]),
    # Merge left, full span (case 7: prev grows over vma), V's anon_vma came from
    # anon_vma_prepare reusing P's.
    #    <-->
    # 0123456789
    # PPPVVVV
    #  -> PPPPPPP
    ("left_full", build_reuse, (3, 7), "r", [(0, 7, 0, R)]),
    # Merge both (case 6: prev grows over vma and next).
    #    <-->
    # 0123456789
    # PPPVVVVNNN
    #  -> PPPPPPPPPP
    ("both", lambda s, p: build_split(s, p, 0, 10, [(0, 3), (7, 10)]), (3, 7), "r", [(0, 10, 0, R)]),
]


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("name,build,rng,prot,expected", EXISTING_CASES, ids=[c[0] for c in EXISTING_CASES])
def test_merge_existing_range(era, name, build, rng, prot, expected):
    """mprotect of part/all of a VMA so that it merges with prev, next or both. All pieces
    share one anon_vma (split or prepare-time reuse), so no importer is involved and every
    era behaves alike: nothing is allocated (vma_adjust only moves boundaries), every
    surviving VMA keeps that anon_vma and a chain of one entry, every page stays findable."""
    sim = new_sim(era)
    p = sim.spawn()
    av = build(sim, p)
    npages = sim.counts()["page"]
    s, e = rng
    _, n = allocs_of(sim, sim.mprotect, p, A(s), (e - s) * PAGE, prot)
    assert n == 0, f"{name}: {n} allocations{pic(sim, p)}"
    got = [(v["s"], v["e"], v["pgoff"], v["prot"]) for v in rel_vmas(sim, p)]
    assert got == expected, f"{name}: {got} != {expected}{pic(sim, p)}"
    for v in rel_vmas(sim, p):
        assert v["anon_vma"] == av, f"{name}{pic(sim, p)}"
        assert v["chain_len"] == clen(era, 1), f"{name}{pic(sim, p)}"
    c = sim.counts()
    # one anon_vma; one chain entry per VMA; pages untouched by vma_adjust
    got = (c["anon_vma"], c["anon_vma_chain"], c["page"])
    assert got == (1, clen(era, len(expected)), npages), pic(sim, p)
    lo = expected[0][0]
    hi = expected[-1][1]
    assert_pages(sim, p, range(lo, hi), av)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_non_merge_ranges_then_remerge(era):
    """The suite's non-merge ranges: changing the interior of V touches neither neighbour,
    so vma_merge finds nothing and mprotect_fixup splits twice (R6: one vm_area_struct plus
    one chain entry per split in chain eras). Changing it back merges the three V pieces
    again (case 6).

        <->
    0123456789a
    PPPVVVVVNNN  ->  PPPVxxxVNNN  ->  PPPVVVVVNNN
    """
    sim = new_sim(era)
    p = sim.spawn()
    av = build_split(sim, p, 0, 11, [(0, 3), (8, 11)])
    _, n = allocs_of(sim, sim.mprotect, p, A(4), 3 * PAGE, "r")
    assert n == 2 * (1 + clen(era, 1)), pic(sim, p)
    got = [(v["s"], v["e"], v["pgoff"], v["prot"]) for v in rel_vmas(sim, p)]
    want = [(0, 3, 0, R), (3, 4, 3, RW), (4, 7, 4, R), (7, 8, 7, RW), (8, 11, 8, R)]
    assert got == want, pic(sim, p)
    for v in rel_vmas(sim, p):
        assert (v["anon_vma"], v["chain_len"]) == (av, clen(era, 1)), pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)

    _, n = allocs_of(sim, sim.mprotect, p, A(4), 3 * PAGE, "rw")
    assert n == 0, pic(sim, p)
    got = [(v["s"], v["e"], v["pgoff"], v["prot"]) for v in rel_vmas(sim, p)]
    assert got == [(0, 3, 0, R), (3, 8, 3, RW), (8, 11, 8, R)], pic(sim, p)
    c = sim.counts()
    assert (c["vma"], c["anon_vma"], c["anon_vma_chain"]) == (3, 1, clen(era, 3)), pic(sim, p)
    assert_pages(sim, p, range(0, 11), av)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_madvise_flag_merge(era):
    """Flag advice splits and re-merges like mprotect (madvise_behavior -> vma_merge /
    split_vma): "random" on the middle splits twice, "normal" merges back (case 6).

      <>
    012345
    VVVVVV  -> VVRRVV (RR: VM_RAND_READ)  -> VVVVVV
    """
    sim = new_sim(era)
    p = sim.spawn()
    av = build_split(sim, p, 0, 6, [])
    _, n = allocs_of(sim, sim.madvise, p, A(2), 2 * PAGE, "random")
    assert n == 2 * (1 + clen(era, 1)), pic(sim, p)
    expect_shape(sim, p, [(0, 2, 0), (2, 4, 2), (4, 6, 4)], "after random")
    assert [[f for f in v["flags"] if f != "account"] for v in sim.vmas(p)] == [[], ["rand"], []], pic(sim, p)
    _, n = allocs_of(sim, sim.madvise, p, A(2), 2 * PAGE, "normal")
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(0, 6, 0)], "after normal")
    assert rel_vmas(sim, p)[0]["anon_vma"] == av, pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


# ============================================================== non-mergeable anon_vmas


def build_p_n_distinct(sim, p, ro=True):
    """P [0,3) and N [7,10), each written while the other is not adjacent, so each gets its
    own anon_vma (R5), then both made read-only (unless not ro)."""
    sim.mmap(p, 3 * PAGE, addr=A(0))
    sim.touch(p, A(0), 3 * PAGE, write=True)
    if ro:
        sim.mprotect(p, A(0), 3 * PAGE, "r")
    sim.mmap(p, 3 * PAGE, addr=A(7))
    sim.touch(p, A(7), 3 * PAGE, write=True)
    if ro:
        sim.mprotect(p, A(7), 3 * PAGE, "r")
    av_p, av_n = av_at(sim, p, 0), av_at(sim, p, 7)
    assert None not in (av_p, av_n) and av_p != av_n, pic(sim, p)
    return av_p, av_n


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("kind", ["existing", "new"])
def test_anon_vma_non_mergeable(era, kind):
    """prev and next carry different anon_vmas, so the 3-way merge is refused (R2) and the
    range merges into prev only.

    existing:  <-->                      new:      <-->
             0123456789                          0123456789
             PPPVVVVNNN  -> PPPPPPPNNN           PPP****NNN  -> PPPPPPPNNN
             (mprotect V to r: case 7)           (mmap rw: case 2; P, N left rw
                                                  so all three carry VM_ACCOUNT)
    """
    sim = new_sim(era)
    p = sim.spawn()
    av_p, av_n = build_p_n_distinct(sim, p, ro=kind == "existing")
    if kind == "existing":
        sim.mmap(p, 4 * PAGE, addr=A(3), prot="rw")  # prot differs from both: no merge
        expect_shape(sim, p, [(0, 3, 0), (3, 7, 3), (7, 10, 7)], "setup")
        _, n = allocs_of(sim, sim.mprotect, p, A(3), 4 * PAGE, "r")
    else:
        _, n = allocs_of(sim, sim.mmap, p, 4 * PAGE, addr=A(3), prot="rw")
    assert n == 0, pic(sim, p)  # prev grows over an unfaulted range: nothing to import, no VMA
    expect_shape(sim, p, [(0, 7, 0), (7, 10, 7)], kind)
    vs = rel_vmas(sim, p)
    assert [v["anon_vma"] for v in vs] == [av_p, av_n], pic(sim, p)
    assert [v["chain_len"] for v in vs] == [clen(era, 1)] * 2, pic(sim, p)
    assert_pages(sim, p, range(0, 3), av_p)
    assert_pages(sim, p, range(7, 10), av_n)
    assert_walks_complete(sim, p)
    check_ok(sim, p)
