"""exit and exec (kernel/exit.c, mm/mmap.c exit_mmap, fs/exec.c): everything freed, pids kept
or gone, exit_many.

Conventions (every era of the `sim` fixture, 2.6.34-rc1's own outcomes, hand-derived numbers,
the fixed region X): the "per-operation tests" section of helpers.py.
"""

from __future__ import annotations

import pytest

import rmapsim

from helpers import (
    MMAP_BASE,
    PAGE,
    X,
    anon_pages,
    assert_counts,
    counts,
    is_chain_era,
    pages_of,
    pids,
    vmas,
    walk_one,
    write_all,
)

# --------------------------------------------------------------------------- exit / exec


def test_exit_frees_everything(sim):
    parent = sim.spawn()
    sim.mmap(parent, 3 * PAGE, addr=X)
    write_all(sim, parent, X, 3)
    sim.mmap(parent, 2 * PAGE, addr=X + 8 * PAGE, prot="r")
    sim.touch(parent, X + 8 * PAGE, 2 * PAGE, write=False)
    k1 = sim.fork(parent)
    k2 = sim.fork(parent)
    sim.touch(k1, X, PAGE, write=True)
    write_all(sim, k2, X, 3)
    g = sim.fork(k2)
    sim.exec(k1)
    sim.mmap(k1, PAGE)
    sim.touch(k1, MMAP_BASE - PAGE, PAGE, write=True)
    for i, pid in enumerate([parent, k2, g, k1]):
        sim.exit(pid)
        sim.check()
        assert counts(sim)["mm"] == 3 - i
        assert pid not in pids(sim)
    # free_pgtables/unlink_anon_vmas at every exit: nothing may remain (no leak)
    assert counts(sim) == {
        "mm": 0,
        "vma": 0,
        "anon_vma": 0,
        "anon_vma_chain": 0,
        "page": 0,
        "pte": 0,
        "swap_slot": 0,
        "swap_cache": 0,
    }
    assert anon_pages(sim) == []
    assert pids(sim) == []


def test_exec_empties_address_space_keeps_pid(sim):
    parent = sim.spawn()
    sim.mmap(parent, 2 * PAGE, addr=X)
    write_all(sim, parent, X, 2)
    hs = pages_of(sim, parent, X, 2)
    child = sim.fork(parent)
    sim.exec(child)
    assert child in pids(sim)
    assert vmas(sim, child) == []
    # the old mm is torn down like exit: the shared pages lose one mapping each
    assert_counts(
        sim,
        mm=2,
        vma=1,
        anon_vma=1,
        anon_vma_chain=1 if is_chain_era(sim) else 0,
        page=2,
        pte=2,
    )
    for h in hs:
        assert walk_one(sim, h)["mapcount"] == 1
    # the new mm is empty: the first top-down mmap lands right below mmap_base again
    assert sim.mmap(child, PAGE) == MMAP_BASE - PAGE
    sim.exec(parent)
    assert_counts(sim, mm=2, vma=1, anon_vma=0, anon_vma_chain=0, page=0, pte=0)


def _family_with_grandchildren(era):
    sim = rmapsim.Simulator(era=era)
    root = sim.spawn()
    a = sim.mmap(root, 8 * PAGE)
    sim.touch(root, a, 8 * PAGE)
    kids = [int(k) for k in sim.fork_many(root, 4)]
    sim.touch(kids[0], a, 3 * PAGE)
    grand = sim.fork(kids[1])
    sim.touch(grand, a + 2 * PAGE, 2 * PAGE)
    return sim, root, kids, grand


@pytest.mark.parametrize("era", rmapsim.eras())
def test_exit_many_is_exit_in_order(era):
    a, root, kids, grand = _family_with_grandchildren(era)
    b, *_ = _family_with_grandchildren(era)
    order = [kids[2], kids[1], root, kids[0]]
    a.exit_many(order)
    for pid in order:
        b.exit(pid)
    a.check()
    assert a.counts() == b.counts()
    assert a.memory() == b.memory()
    assert a.operations() == b.operations()
    assert list(a.pids()) == list(b.pids()) == sorted([kids[3], grand])
    # the grandchild's parent exited: reparented as by exit()
    assert a.parent(grand) == b.parent(grand) == 0
    assert a.render_layout(grand) == b.render_layout(grand)
    assert a.rmap_walk(aggregate=True) == b.rmap_walk(aggregate=True)


@pytest.mark.parametrize(
    "bad, err, names",
    [
        ([1, 999], rmapsim.NoSuchProcess, "999"),
        ([2, 3, 2], rmapsim.InvalidArgument, "pid 2 appears more than once"),
        ("12", rmapsim.InvalidArgument, "'12'"),
    ],
)
def test_exit_many_validates_every_pid_before_any_exit(bad, err, names):
    sim, root, kids, grand = _family_with_grandchildren("6.18")
    before = (sim.counts(), list(sim.pids()), sim.operations())
    with pytest.raises(err, match=names):
        sim.exit_many(bad)
    assert (sim.counts(), list(sim.pids()), sim.operations()) == before
    sim.check()


def test_exit_many_of_nothing_and_of_an_array():
    sim, root, kids, grand = _family_with_grandchildren("3.7")
    sim.exit_many([])
    assert len(sim.pids()) == 6
    sim.exit_many(sim.pids())
    assert len(sim.pids()) == 0
    assert sim.counts()["vma"] == 0 and sim.counts()["page"] == 0
