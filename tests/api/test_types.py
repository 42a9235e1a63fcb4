"""The declared types describe the runtime: ``rmapsim.Prot`` and ``rmapsim.Advice`` list exactly
the strings the simulator accepts (probed, not read from its tables), every ``TypedDict`` has
the keys and value types of the dict the call really returns, and ScanStats' column
annotations name the dtypes the walks really produce. (tests/api/test_docs_code.py checks the
static side: mypy --strict over the docs, with a canary of mistakes it must catch.)"""

from __future__ import annotations

import itertools
import math
import typing
from typing import Any, List, Literal, Optional, Union, get_args, get_origin, get_type_hints

import numpy as np
import pytest

import rmapsim
from rmapsim import _core
from rmapsim._stats import ScanStats
from rmapsim.errors import InvalidArgument

P = 4096


def _fresh(era: str = "7.0"):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    return sim, p, sim.mmap(p, 4 * P)


# --------------------------------------------------------------------------- prot


def _prot_accepted(sim, p, a, s: str) -> Optional[str]:
    """The VMA's prot after ``mprotect(s)`` (then back to "rw"), or None if refused."""
    try:
        sim.mprotect(p, a, P, s)
    except InvalidArgument as e:
        assert "bad prot" in str(e), e
        return None
    got = sim.vmas(p)[0]["prot"]
    sim.mprotect(p, a, P, "rw")
    return got


def test_prot_literal_is_every_spelling_the_runtime_accepts():
    """Every string of up to four characters from "rwx-" and some others near them: the
    runtime accepts exactly the Literal's strings, each meaning the letters it holds."""
    literal = get_args(rmapsim.Prot)
    assert len(set(literal)) == len(literal) and set(literal) == set(_core.PROT_NAMES)
    sim, p, a = _fresh()
    probes = {"".join(t) for n in range(5) for t in itertools.product("rwx-", repeat=n)}
    probes |= {"none", "None", "NONE", "-", "R", "rW", " r", "r ", "rwxr", "n", "nonee", "rw\0"}
    assert set(literal) <= probes
    accepted = {s for s in sorted(probes) if _prot_accepted(sim, p, a, s) is not None}
    assert accepted == set(literal)
    for s in literal:
        # independent of the runtime's table: "none" is PROT_NONE, else the letters written
        want = "" if s == "none" else "".join(c for c in "rwx" if c in s)
        assert _prot_accepted(sim, p, a, s) == want, s
    # the same spellings through mmap and the trace format (where "" cannot be a word)
    for s in literal:
        want = "" if s == "none" else "".join(c for c in "rwx" if c in s)
        sim.munmap(p, sim.mmap(p, P, prot=s), P)
        t = rmapsim.Simulator(era="7.0")
        res = t.apply(f"# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x1000 {s or 'none'}\n")
        assert not res.errors() and t.vmas(1)[0]["prot"] == want, s


# --------------------------------------------------------------------------- advice


def _unknown(sim, p, a, advice: str) -> bool:
    """Whether the runtime refuses ``advice`` as an unknown word (other refusals, like an
    era that lacks it, are not that)."""
    try:
        sim.madvise(p, a, P, advice)
    except InvalidArgument as e:
        return "unknown advice" in str(e)
    return False


def test_advice_literal_is_every_advice_the_runtime_accepts():
    literal = get_args(rmapsim.Advice)
    assert len(set(literal)) == len(literal) and set(literal) == set(_core.ADVICE_NAMES)
    sim, p, a = _fresh()
    sim.touch(p, a, 4 * P)
    for adv in literal:
        sim.madvise(p, a, P, adv)  # 7.0 has every one
    # every one-letter slip of a name (a letter dropped, doubled or changed, two swapped)
    # is refused as unknown; "dontned" is one of them
    slips = set()
    for adv in literal:
        for i in range(len(adv)):
            slips |= {adv[:i] + adv[i + 1 :], adv[:i] + adv[i] + adv[i:], adv[:i] + "q" + adv[i + 1 :]}
            if i + 1 < len(adv):
                slips.add(adv[:i] + adv[i + 1] + adv[i] + adv[i + 2 :])
    slips -= set(literal)
    assert "dontned" in slips
    for s in sorted(slips):
        assert _unknown(sim, p, a, s), s
    # the error names the known ones: the Literal's, in its order
    with pytest.raises(InvalidArgument) as ei:
        sim.madvise(p, a, P, "dontned")
    assert str(ei.value).split("known: ", 1)[1].split(", ") == list(literal)


# --------------------------------------------------------------------------- dicts


def _conforms(value: Any, hint: Any, where: str) -> None:
    """``value`` has type ``hint`` (a TypedDict, Optional/Union, List, Dict, Literal, int,
    float, bool, str), recursively; a failure names the key path."""
    origin = get_origin(hint)
    if isinstance(hint, type) and typing.is_typeddict(hint):
        assert isinstance(value, dict) and set(value) == set(get_type_hints(hint)), (where, sorted(value))
        for k, h in get_type_hints(hint).items():
            _conforms(value[k], h, f"{where}[{k!r}]")
    elif origin is Union:
        assert any(_matches(value, h) for h in get_args(hint)), (where, value, hint)
    elif origin is list:
        assert isinstance(value, list), (where, value)
        for i, v in enumerate(value):
            _conforms(v, get_args(hint)[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), (where, value)
        kt, vt = get_args(hint)
        for k, v in value.items():
            _conforms(k, kt, f"{where} key")
            _conforms(v, vt, f"{where}[{k!r}]")
    elif origin is Literal:
        assert value in get_args(hint), (where, value)
    elif hint is float:
        assert type(value) is float, (where, value)  # an int where a float is declared is a drift too
    elif hint is int:
        assert type(value) is int, (where, value)
    else:
        assert type(value) is hint, (where, value, hint)


def _matches(value: Any, hint: Any) -> bool:
    try:
        _conforms(value, hint, "")
    except AssertionError:
        return False
    return True


@pytest.fixture(scope="module")
def busy():
    """A parent with written pages, one page swapped out, a child that wrote some, a file
    mapping: every optional field takes both its forms somewhere."""
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    a = sim.mmap(p, 8 * P)
    sim.touch(p, a, 8 * P)
    sim.mmap(p, 2 * P, prot="r", file=3, offset=0)
    sim.mmap(p, P)  # never written: no anon_vma yet
    c = sim.fork(p)
    sim.touch(c, a, 2 * P)
    sim.try_to_unmap([sim.page_at(p, a + 7 * P)])
    return sim, p, c, a


def test_counts_memory_vmas_page_info_memory_usage_are_their_typeddicts(busy):
    sim, p, c, a = busy
    _conforms(sim.counts(), rmapsim.Counts, "counts()")
    _conforms(sim.memory(), rmapsim.Memory, "memory()")
    vmas = sim.vmas(p)
    _conforms(vmas, List[rmapsim.VmaInfo], "vmas(p)")
    assert {v["anon_vma"] is None for v in vmas} == {True, False}
    assert {v["file"] is None for v in vmas} == {True, False}
    pages = [int(h) for h in sim.anon_pages()]
    for h in pages:
        _conforms(sim.page_info(h), rmapsim.PageInfo, f"page_info({h})")
    assert {sim.page_info(h)["swap_slot"] is None for h in pages} == {True, False}
    usage = sim.memory_usage()
    _conforms(usage, rmapsim.MemoryUsage, "memory_usage()")
    empty = rmapsim.Simulator().memory_usage()
    _conforms(empty, rmapsim.MemoryUsage, "memory_usage() of nothing")
    assert math.isnan(empty["bytes_per_pte"])


@pytest.mark.parametrize("walk", ["rmap_walk", "page_referenced", "try_to_unmap"])
def test_walk_summaries_are_their_typeddicts(busy, walk):
    sim = busy[0].clone()
    rows = getattr(sim.clone(), walk)()
    assert rows.kind == walk
    _conforms(rows.summary(), rmapsim.WalkSummary, f"{walk}().summary()")
    _conforms(getattr(sim, walk)(aggregate=True), rmapsim.AggregateSummary, f"{walk}(aggregate=True)")
    _conforms(getattr(sim, walk)([]).summary(), rmapsim.WalkSummary, f"{walk}([]).summary()")  # NaN, 0


def test_contention_summary_is_its_typeddict(busy):
    _conforms(busy[0].contention(cpus=2).summary(), rmapsim.ContentionSummary, "contention().summary()")


def _dtype_of(hint: Any) -> Any:
    """``np.uint32`` of ``npt.NDArray[np.uint32]``."""
    (scalar,) = get_args(get_args(hint)[1])
    return scalar


def test_scanstats_column_annotations_are_the_real_dtypes(busy):
    hints = get_type_hints(ScanStats)
    assert set(rmapsim.COLUMNS) <= set(hints)
    stats = busy[0].rmap_walk()
    for c in rmapsim.COLUMNS:
        assert getattr(stats, c).dtype.type is _dtype_of(hints[c]), c
    assert get_args(hints["kind"]) == get_args(rmapsim.WalkKind)


def test_to_pandas_returns_a_dataframe(busy):
    pd = pytest.importorskip("pandas")
    assert get_type_hints(ScanStats.to_pandas, {"pd": pd})["return"] is pd.DataFrame
    assert isinstance(busy[0].rmap_walk().to_pandas(), pd.DataFrame)


def test_dask_executor_is_declared_and_is_an_executor():
    from concurrent.futures import Executor

    from rmapsim.cluster import DaskExecutor, dask_executor

    assert issubclass(DaskExecutor, Executor)
    assert get_type_hints(dask_executor)["return"] is DaskExecutor


def test_typeddicts_are_exported():
    for name in ("Counts", "Memory", "VmaInfo", "PageInfo", "MemoryUsage", "WalkSummary", "AggregateSummary"):
        assert name in rmapsim.__all__ and typing.is_typeddict(getattr(rmapsim, name)), name
    assert {"Prot", "Advice", "WalkKind"} <= set(rmapsim.__all__)
    assert np.uint64 is _dtype_of(get_type_hints(ScanStats)["page"])
