"""Scripted scenarios run through the engine-vs-reference harness (ref_pair.Pair): the copy_vma
defect, fork/COW/swap walks, vma_merge importers, swap-in anon_vma choice, mremap, file
mappings.

What the lockstep compares: the docstring of ref_pair.py.
"""

from __future__ import annotations

from collections import Counter

import pytest

import rmapsim

from helpers import MMAP_BASE, PAGE
from ref_pair import ERAS, STATS, WIN_LO, Pair

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
        {"file": 1 << 20},  # the engine keeps vm_file in 20 bits of its flags word
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
        ("mmap", (1, PAGE), {"file": (1 << 20) - 1, "offset": 0}),  # the largest identity: ok
    ]
    before = Counter(STATS)
    pair = _pair_run(era, ops)
    got = STATS - before
    # all InvalidArgument but the misaligned address (BadAddress) and the dead pid with a
    # valid file (NoSuchProcess; with file=0 the argument check comes first)
    assert got["error InvalidArgument"] == len(bad) - 1 + 4, got
    assert got["error BadAddress"] == 1 and got["error NoSuchProcess"] == 1, got
    pair.teardown()
