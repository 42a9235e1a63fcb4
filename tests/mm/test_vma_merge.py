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

Kernel rules used throughout (2.6.33 and 2.6.34, mm/mmap.c, mm/rmap.c):
  R1  A new anonymous range has pgoff = start >> 12 and no anon_vma; vma_merge passes
      anon_vma=NULL for it, so `is_mergeable_anon_vma(NULL, x)` accepts any neighbour.
  R2  can_vma_merge_after(prev)/before(next): equal flags+prot, mergeable anon_vma and
      contiguous pgoff. Merging prev AND next additionally needs
      is_mergeable_anon_vma(prev->anon_vma, next->anon_vma): either NULL, or equal.
  R3  vma_adjust importer rule: the VMA that grows over pages of a VMA with an anon_vma
      (importer) takes that anon_vma; 2.6.34 clones the exporter's chain (one
      anon_vma_chain allocation per entry), 2.6.33 links the VMA onto the anon_vma's list
      (no allocation). In 2.6.34-rc1 the importer cloned `vma`'s own chain: when the
      importer IS `vma` (cases 1, 5, 6, 7, 8: prev/area grows) that chain is empty, so the
      importer ends with an anon_vma that is not on its chain; in case 4 (next grows) the
      exporter is `vma` and rc1 happens to be right.
  R4  anon_vma_merge(vma, next) = unlink_anon_vmas(next); an anon_vma whose list becomes
      empty is freed.
  R5  A first write fault calls anon_vma_prepare: a compatible adjacent neighbour's
      anon_vma is reused (2.6.34: only if that neighbour's chain is singular), else a new
      one is allocated. Chain eras give a new VMA a chain of length 1; 2.6.33 has no
      chains at all (chain_len 0 everywhere).
  R6  split_vma: the new piece shares ->anon_vma and clones the chain (chain eras).
  R7  vma_merge absorbs an error from vma_adjust (`if (err) return NULL;`): the caller
      goes on as if no merge applied (mmap_region allocates a VMA, mprotect_fixup splits).
"""

from __future__ import annotations

import re

import pytest

import rmapsim

from helpers import PAGE, PAGE_SHIFT, norm_prot, page_at, scan_rows

ALL_ERAS = ("2.6.33", "2.6.34-rc1", "2.6.34")
CHAIN_ERAS = ("2.6.34-rc1", "2.6.34")

X = 0x4000_0000  # fixed test region (MAP_FIXED), far below MMAP_BASE
XP = X >> PAGE_SHIFT

R = norm_prot("r")
RW = norm_prot("rw")


def A(i: int) -> int:
    """Address of page column i of the pictures."""
    return X + i * PAGE


def new_sim(era: str):
    sim = rmapsim.Simulator(era=era, seed=0)
    assert sim.era == era
    return sim


def pic(sim, pid) -> str:
    try:
        return "\n" + sim.render_layout(pid)
    except Exception as e:  # pragma: no cover - only used in failure messages
        return f"\n<render_layout failed: {e!r}>"


def rel_vmas(sim, pid) -> list:
    """VMAs with start/end in page columns and pgoff relative to X's page number."""
    out = []
    for v in sim.vmas(pid):
        out.append(
            {
                "s": (int(v["start"]) - X) >> PAGE_SHIFT,
                "e": (int(v["end"]) - X) >> PAGE_SHIFT,
                "pgoff": int(v["pgoff"]) - XP,
                "prot": norm_prot(v["prot"]),
                "anon_vma": None if v["anon_vma"] is None else int(v["anon_vma"]),
                "chain_len": int(v["chain_len"]),
            }
        )
    return out


def shape(sim, pid) -> list:
    return [(v["s"], v["e"], v["pgoff"]) for v in rel_vmas(sim, pid)]


def expect_shape(sim, pid, expected, what=""):
    got = shape(sim, pid)
    assert got == expected, f"{what}: VMAs (start, end, pgoff) {got} != {expected}{pic(sim, pid)}"


def clen(era: str, n: int) -> int:
    """Chain length a VMA linked to n anon_vmas shows: 2.6.33 has no chain objects."""
    return 0 if era == "2.6.33" else n


def av_at(sim, pid, col):
    for v in rel_vmas(sim, pid):
        if v["s"] <= col < v["e"]:
            return v["anon_vma"]
    raise AssertionError(f"no VMA covers column {col}{pic(sim, pid)}")


def assert_walks_complete(sim, pid):
    """Full rmap walk of every live page: every mapping is found."""
    for r in scan_rows(sim.rmap_walk()):
        if r["mapcount"]:
            assert r["mappings_found"] == r["mapcount"], (
                f"rmap walk of page {r['page']:#x} found {r['mappings_found']} of "
                f"{r['mapcount']} mappings{pic(sim, pid)}"
            )


def assert_pages(sim, pid, cols, anon_vma):
    """Each column maps an anon page at its linear index (pgoff of X + col) in anon_vma."""
    for c in cols:
        h = page_at(sim, pid, A(c))
        assert h is not None, f"no page at column {c}{pic(sim, pid)}"
        info = sim.page_info(h)
        assert int(info["index"]) == XP + c, f"column {c}: index {info['index']:#x}{pic(sim, pid)}"
        assert int(info["anon_vma"]) == anon_vma, f"column {c}: page anon_vma{pic(sim, pid)}"


def check_ok(sim, pid):
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:  # pragma: no cover - failure path
        raise AssertionError(f"check() failed: {e}{pic(sim, pid)}") from None


def snapshot(sim) -> dict:
    """The observable state a failed call must leave untouched (allocation counters aside:
    a failed attempt is still an attempt)."""
    live = sorted(int(x) for x in sim.pids())
    vm = {q: [dict(v) for v in sim.vmas(q)] for q in live}
    pm = {}
    for q in live:
        for v in vm[q]:
            for a in range(int(v["start"]), int(v["end"]), PAGE):
                pm[(q, a)] = sim.page_at(q, a)
    pages = sorted(int(h) for h in sim.anon_pages())
    return {
        "counts": dict(sim.counts()),
        "pids": live,
        "vmas": vm,
        "page_map": pm,
        "pages": {h: dict(sim.page_info(h)) for h in pages},
    }


def check_fails(sim, pid, pattern=""):
    """check() must raise InvariantViolation (with a message matching pattern)."""
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:
        msg = f"check() raised {e}; expected /{pattern}/{pic(sim, pid)}"
        assert re.search(pattern, str(e)), msg
        return
    raise AssertionError(f"check() passed; expected InvariantViolation{pic(sim, pid)}")


def allocs_of(sim, fn, *args, **kwargs):
    before = sim.allocations()
    out = fn(*args, **kwargs)
    return out, sim.allocations() - before


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
    ("right_partial", lambda s, p: build_split(s, p, 2, 9, [(6, 9)]), (3, 6), "r",
     [(2, 3, 2, RW), (3, 9, 3, R)]),
    # Merge right, full span (case 8: V grows over next, next removed).
    #   <-->
    # 0123456789
    #   VVVVNNN
    #  -> NNNNNNN
    ("right_full", lambda s, p: build_split(s, p, 2, 9, [(6, 9)]), (2, 6), "r",
     [(2, 9, 2, R)]),
    # Merge left, partial span (case 5: prev grows, vma shrinks from below).
    #    <->
    # 0123456789
    # PPPVVVV
    #  -> PPPPPPV
    ("left_partial", lambda s, p: build_split(s, p, 0, 7, [(0, 3)]), (3, 6), "r",
     [(0, 6, 0, R), (6, 7, 6, RW)]),
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
    ("both", lambda s, p: build_split(s, p, 0, 10, [(0, 3), (7, 10)]), (3, 7), "r",
     [(0, 10, 0, R)]),
]


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize(
    "name,build,rng,prot,expected", EXISTING_CASES, ids=[c[0] for c in EXISTING_CASES]
)
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


def map_ro(sim, p, npages, addr):
    """A read-only range that was writable once, so it carries VM_ACCOUNT like the
    read-only ranges it is to merge with (a range mapped read-only from the start has no
    VM_ACCOUNT and would not merge with them). Mapped rwx first: no merge on the way."""
    sim.mmap(p, npages * PAGE, addr=addr, prot="rwx")
    sim.mprotect(p, addr, npages * PAGE, "r")


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
    ("new_range", dup_new_range, [(0, 10, 0)], 0, range(7, 10), True,
     [(0, 3, 0), (3, 7, 3), (7, 10, 7)]),
    #    <-->
    # 0123456789
    # PPPVVVVNNN  ->  PPPPPPPPPP   (next has the anon_vma, prev gets it)
    ("next_has_anon", dup_next_has_anon, [(0, 10, 0)], 0, range(7, 10), True, None),
    #    <-->
    # 0123456789
    # PPPVVVVNNN  ->  PPPPPPPPPP   (vma has the anon_vma, prev gets it)
    ("vma_has_anon", dup_vma_has_anon, [(0, 10, 0)], 0, range(3, 7), True,
     [(0, 3, 0), (3, 7, 3), (7, 10, 7)]),
    #    <>
    # 0123456789
    # PPPVVVVV    ->  PPPPPVVV     (vma has the anon_vma, prev extends over part of it)
    ("prev_extends", dup_prev_extends, [(0, 5, 0), (5, 8, 5)], 0, range(3, 8), True,
     [(0, 3, 0), (3, 5, 3), (5, 8, 5)]),
    #    <>
    # 0123456789
    # VVVVVNNN    ->  VVVNNNNN     (vma has the anon_vma, next extends over part of it)
    ("next_extends", dup_next_extends, [(0, 3, 0), (3, 8, 3)], 3, range(0, 5), False,
     [(0, 3, 0), (3, 5, 3), (5, 8, 5)]),
]
DUP_IDS = [c[0] for c in DUP_CASES]


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize(
    "name,build,after,imp_col,page_cols,rc1_breaks,_nomem", DUP_CASES, ids=DUP_IDS
)
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
    """   <-->
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
    before = snapshot(sim)
    sim.inject_enomem(nth=2)
    if era == "2.6.33":
        sim.mprotect(p, A(2), 2 * PAGE, "r")
        sim.inject_enomem(None)
        expect_shape(sim, p, [(0, 2, 0), (2, 4, 2)], "split")
    else:
        with pytest.raises(rmapsim.OutOfMemory, match=r"\(anon_vma_chain@anon_vma_clone\)"):
            sim.mprotect(p, A(2), 2 * PAGE, "r")
        assert snapshot(sim) == before, pic(sim, p)
    check_ok(sim, p)


# ============================================================================ copy_vma


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize("faulted", [False, True], ids=["unfaulted", "faulted"])
def test_copy_vma_move_no_merge(era, faulted):
    """Move backwards, no merge (the suite's test_copy_vma, first half):

    0123456789
       VV       ->  VV
    copy_vma gives an unfaulted VMA the pgoff of its new address (0) and a faulted one
    keeps pgoff 3 so page->index stays valid; a new VMA (1 allocation) plus, for a faulted
    VMA in chain eras, a clone of its 1-entry chain. The old VMA is unmapped whole (no
    split). Pages move with their PTEs and keep anon_vma and index."""
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(3))
    old_pages = []
    if faulted:
        sim.touch(p, A(3), 2 * PAGE, write=True)
        old_pages = [page_at(sim, p, A(3)), page_at(sim, p, A(4))]
    av = av_at(sim, p, 3)
    got, n = allocs_of(sim, sim.mremap, p, A(3), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0))
    assert got == A(0), pic(sim, p)
    assert n == 1 + (clen(era, 1) if faulted else 0), pic(sim, p)
    expect_shape(sim, p, [(0, 2, 3 if faulted else 0)], "moved")
    v = rel_vmas(sim, p)[0]
    assert v["anon_vma"] == av, pic(sim, p)
    assert v["chain_len"] == (clen(era, 1) if faulted else 0), pic(sim, p)
    if faulted:
        assert [page_at(sim, p, A(0)), page_at(sim, p, A(1))] == old_pages, pic(sim, p)
        for h, idx in zip(old_pages, (3, 4)):
            info = sim.page_info(h)
            got = (int(info["anon_vma"]), int(info["index"]), int(info["mapcount"]))
            assert got == (av, XP + idx, 1), pic(sim, p)
        c = sim.counts()
        got = (c["vma"], c["anon_vma"], c["anon_vma_chain"], c["page"])
        assert got == (1, 1, clen(era, 1), 2), pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_copy_vma_move_merges_into_next(era):
    """Move a VMA next to another so the two merge (the suite's test_copy_vma, second half):

    0123456789
    VV    NN    ->  NNNN (at 4..8)
    V is unfaulted, so copy_vma uses pgoff = 4 (its new address), which is contiguous with
    N's pgoff 6: vma_merge case 3, N grows down; nothing is allocated."""
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(0))
    sim.mmap(p, 2 * PAGE, addr=A(6))
    _, n = allocs_of(sim, sim.mremap, p, A(0), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(4))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(4, 8, 4)], "merged at destination")
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_copy_vma_faulted_move_out_and_back_merges(era):
    """A faulted range keeps its pgoff when moved, so it merges where it came from:

    0123456789abc          0123456789abc          0123456789abc
    VVVV            ->     VV        WW    ->     VVVV
    move [2,4) to [a,c): new VMA W, pgoff 2 (1 vm_area_struct + 1 chain entry), then the
    old range is cut off V (split: 1 + 1). Moving W back to [2,4): copy_vma's vma_merge
    finds prev V with the same anon_vma and pgoff 0 + 2 == 2: case 2, no allocation, and W
    is unmapped whole."""
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, addr=A(0))
    sim.touch(p, A(0), 4 * PAGE, write=True)
    av = av_at(sim, p, 0)
    pages = [page_at(sim, p, A(i)) for i in range(4)]
    _, n = allocs_of(sim, sim.mremap, p, A(2), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0xA))
    assert n == 2 * (1 + clen(era, 1)), pic(sim, p)
    expect_shape(sim, p, [(0, 2, 0), (0xA, 0xC, 2)], "moved out")
    assert [page_at(sim, p, A(0xA)), page_at(sim, p, A(0xB))] == pages[2:], pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)

    _, n = allocs_of(sim, sim.mremap, p, A(0xA), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(2))
    assert n == 0, pic(sim, p)
    expect_shape(sim, p, [(0, 4, 0)], "moved back and merged")
    v = rel_vmas(sim, p)[0]
    assert (v["anon_vma"], v["chain_len"]) == (av, clen(era, 1)), pic(sim, p)
    assert [page_at(sim, p, A(i)) for i in range(4)] == pages, pic(sim, p)
    c = sim.counts()
    got = (c["vma"], c["anon_vma"], c["anon_vma_chain"], c["page"])
    assert got == (1, 1, clen(era, 1), 4), pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)


@pytest.mark.parametrize("era", ALL_ERAS)
@pytest.mark.parametrize(
    "site,nth", [("vm_area_struct@copy_vma", 1), ("anon_vma_chain@anon_vma_clone", 2)]
)
def test_copy_vma_enomem_changes_nothing(era, site, nth):
    """copy_vma allocates the new VMA, then clones the chain; either failure frees what
    was allocated and mremap returns ENOMEM before any PTE moved. 2.6.33 has no clone: its
    second allocation does not exist and the move succeeds.

    0123456789
       VV       -> unchanged (OutOfMemory), or VV at 0..2 (2.6.33, nth=2)
    """
    sim = new_sim(era)
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, addr=A(3))
    sim.touch(p, A(3), 2 * PAGE, write=True)
    before = snapshot(sim)
    sim.inject_enomem(nth=nth)
    if era == "2.6.33" and nth == 2:
        sim.mremap(p, A(3), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0))
        sim.inject_enomem(None)
        expect_shape(sim, p, [(0, 2, 3)], "moved")
    else:
        with pytest.raises(rmapsim.OutOfMemory, match=r"\(" + site + r"\)"):
            sim.mremap(p, A(3), 2 * PAGE, 2 * PAGE, may_move=True, new_addr=A(0))
        assert snapshot(sim) == before, pic(sim, p)
    assert_walks_complete(sim, p)
    check_ok(sim, p)
