"""ScanStats.to_pandas(): where each walked page is mapped (pid, vma_start, index), the
handles as categoricals. Expectations are derived by hand from the operations."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import rmapsim
from rmapsim import PAGE_SIZE as P

A = 0x10000000  # the family's 3-page region
B = 0x20000000  # a second, 1-page region of the parent


def family():
    """p1 maps A (3 pages) and B (1 page) and writes them; its child writes A+P (COW); p1
    then mprotects [A+P, A+2P), splitting its VMA in three (the child's stays whole)."""
    sim = rmapsim.Simulator(era="6.18")
    p1 = sim.spawn()
    sim.mmap(p1, 3 * P, addr=A)
    sim.mmap(p1, P, addr=B)
    sim.touch(p1, A, 3 * P, write=True)
    sim.touch(p1, B, P, write=True)
    c = sim.fork(p1)
    sim.touch(c, A + P, P, write=True)
    sim.mprotect(p1, A + P, P, "r")
    return sim, p1, c


def by_page(df):
    return {int(r.page): (r.pid, r.vma_start, r.index) for r in df.itertuples()}


def test_pid_vma_start_and_index_of_every_page():
    sim, p1, c = family()
    df = sim.rmap_walk().to_pandas()
    assert list(df.columns[:4]) == ["page", "pid", "vma_start", "index"]
    assert list(df.columns[4:]) == list(rmapsim.COLUMNS[1:])
    got = by_page(df)
    # anonymous VMAs have vm_pgoff = start >> 12, so page->index = address >> 12
    want = {
        sim.page_at(p1, A): (p1, A, A // P),  # shared with the child: the lower pid, p1's first VMA
        sim.page_at(p1, A + P): (p1, A + P, A // P + 1),  # p1's own copy, in the VMA mprotect split off
        sim.page_at(c, A + P): (c, A, A // P + 1),  # the child's COW copy: only the child, its one VMA
        sim.page_at(p1, A + 2 * P): (p1, A + 2 * P, A // P + 2),  # shared; p1's third VMA
        sim.page_at(p1, B): (p1, B, B // P),
    }
    assert got == want
    assert df.groupby("pid").size().to_dict() == {p1: 4, c: 1}


def test_handles_are_categoricals_and_where_columns_nullable_ints():
    sim, _, _ = family()
    df = sim.page_referenced().to_pandas()
    for col in ("page", "anon_vma", "lock_id"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert str(df["pid"].dtype) == "Int64" and str(df["vma_start"].dtype) == "UInt64"
    assert str(df["index"].dtype) == "UInt64" and df["vmas_visited"].dtype == np.uint32
    # the categories are the handles themselves
    assert set(df["page"].cat.categories) == {int(h) for h in sim.anon_pages()}


def test_a_page_try_to_unmap_swapped_out_is_placed_by_its_swap_entries():
    sim, p1, c = family()
    shared = sim.page_at(p1, A + 2 * P)
    stats = sim.try_to_unmap(pages=[shared])
    assert sim.page_at(p1, A + 2 * P) is None and sim.page_info(shared)["swap_slot"] is not None
    df = stats.to_pandas()
    assert by_page(df) == {shared: (p1, A + 2 * P, A // P + 2)}


def test_a_page_swap_entries_still_refer_to_is_placed_by_them():
    sim, p1, c = family()
    page = sim.page_at(p1, B)  # the child inherited B too
    sim.try_to_unmap(pages=[page])  # both entries become swap entries
    sim.munmap(p1, B, P)
    assert by_page(sim.rmap_walk(pages=[page]).to_pandas()) == {page: (c, B, B // P)}  # the child's swap entry


def test_a_page_freed_since_the_walk_is_nowhere():
    """MADV_PAGEOUT reclaims the child's exclusive page and frees it in the same call: its
    row has no pid, VMA or index."""
    sim, _, c = family()
    page = sim.page_at(c, A + P)
    stats = sim.madvise(c, A + P, P, "pageout")
    with pytest.raises(rmapsim.StaleHandle):
        sim.page_info(page)
    df = stats.to_pandas()
    assert df["page"].tolist() == [page] and df[["pid", "vma_start", "index"]].isna().all().all()


def test_a_changed_simulator_is_refused_and_where_false_leaves_the_columns_out():
    sim, p1, _ = family()
    stats = sim.rmap_walk()
    sim.fork(p1)
    with pytest.raises(rmapsim.InvalidArgument, match=r"has run 1 operation\(s\) since these walks"):
        stats.to_pandas()
    df = stats.to_pandas(where=False)
    assert list(df.columns) == list(rmapsim.COLUMNS) and len(df) == len(stats)
    with pytest.raises(rmapsim.InvalidArgument, match="where must be True or False"):
        stats.to_pandas(where="yes")


def test_without_a_simulator_the_where_columns_are_na():
    sim, _, _ = family()
    stats = sim.rmap_walk()
    for other in (
        pickle.loads(pickle.dumps(stats)),
        rmapsim.ScanStats({c: getattr(stats, c) for c in rmapsim.COLUMNS}),
    ):
        df = other.to_pandas()
        assert len(df) == 5 and df[["pid", "vma_start", "index"]].isna().all().all()
    empty = rmapsim.Simulator().rmap_walk().to_pandas()
    assert len(empty) == 0 and list(empty.columns[:4]) == ["page", "pid", "vma_start", "index"]
