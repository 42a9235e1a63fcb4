"""The argument-error discipline (docs/api-contract.md, issue 14) on the cases the issue
names, and ScanStats pickling and copying.

The broad sweep is tests/api/test_hostile.py; here each problem the issue reports gets the exact
message it must now produce (parameter, value as given, range).
"""

from __future__ import annotations

import copy
import doctest
import pickle
import re

import numpy as np
import pytest

import rmapsim
from rmapsim import _core, trace

from helpers import PAGE, ROOT, SCAN_COLUMNS

P = PAGE
U64 = 2**64 - 1
DOCS = ROOT / "docs"


def family(pages, child_writes):
    """A parent that wrote `pages` pages and a child that then wrote the first few."""
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    a = sim.mmap(p, pages * P)
    sim.touch(p, a, pages * P)
    c = sim.fork(p)
    sim.touch(c, a, child_writes * P)
    return sim, p, c, a


@pytest.fixture
def world():
    return family(4, 1)


def raises(exc, message, fn, *args, **kwargs):
    """fn must raise exc with exactly `message`, and exc is a SimError."""
    with pytest.raises(exc) as ei:
        fn(*args, **kwargs)
    assert isinstance(ei.value, rmapsim.SimError)
    assert str(ei.value) == message


# --------------------------------------------------------------------------- out of range


@pytest.mark.parametrize("walk", ["rmap_walk", "page_referenced", "try_to_unmap"])
@pytest.mark.parametrize("threads", [2**64, 2**63, 1025, 0, -1])
def test_threads_out_of_range(world, walk, threads):
    sim = world[0]
    raises(
        rmapsim.InvalidArgument,
        f"threads must be an int from 1 to 1024 or None (all cores), got {threads}",
        getattr(sim, walk),
        threads=threads,
    )


@pytest.mark.parametrize(
    "param,value,lo,hi",
    [
        ("cpus", 2**32, 1, 8192),
        ("cpus", 8193, 1, 8192),
        ("cpus", 0, 1, 8192),
        ("outside", 2**64, 0, U64),
        ("per_candidate", -1, 0, U64),
        ("handoff", 2**70, 0, U64),
        ("writer_every", -(2**70), 0, U64),
        ("writer_hold", 2**64, 0, U64),
    ],
)
def test_contention_out_of_range(world, param, value, lo, hi):
    sim = world[0]
    raises(
        rmapsim.InvalidArgument,
        f"{param} must be an int from {lo} to {hi}, got {value}",
        sim.contention,
        **{param: value},
    )


@pytest.mark.parametrize("value", [2**64, -1])
def test_apply_sample_every_out_of_range(world, value):
    raises(
        rmapsim.InvalidArgument,
        f"sample_every must be an int from 0 to {U64}, got {value}",
        world[0].apply,
        "# rmapsim trace v1\n",
        sample_every=value,
    )


@pytest.mark.parametrize("param", ["seed", "run_len", "full_check_every", "max_ops"])
@pytest.mark.parametrize("value", [-1, 2**64])
def test_fuzz_out_of_range(param, value):
    kw = {"max_ops": 5, param: value}
    raises(rmapsim.InvalidArgument, f"{param} must be an int from 0 to {U64}, got {value}", _core.fuzz, "6.18", **kw)


@pytest.mark.parametrize("pid", [2**70, 2**63, -(2**63) - 1, -(2**70)])
def test_pid_is_reported_as_given(world, pid):
    sim = world[0]
    for fn in (sim.exit, sim.fork, sim.vmas, sim.exec, sim.brk_info):
        raises(rmapsim.NoSuchProcess, f"no such process: pid {pid}", fn, pid)
    raises(rmapsim.NoSuchProcess, f"no such process: pid {pid}", sim.exit_many, [pid])


@pytest.mark.parametrize("addr", [-1, 2**64, 2**70])
def test_address_out_of_range(world, addr):
    sim, p = world[0], world[1]
    raises(
        rmapsim.BadAddress, f"addr must be an address from 0 to 0xffffffffffffffff, got {addr}", sim.munmap, p, addr, P
    )
    raises(
        rmapsim.BadAddress,
        f"new_addr must be an address from 0 to 0xffffffffffffffff, got {addr}",
        sim.mremap,
        p,
        world[3],
        P,
        P,
        new_addr=addr,
    )


@pytest.mark.parametrize("length", [-1, 2**64])
def test_length_out_of_range(world, length):
    sim, p, _, a = world
    raises(rmapsim.InvalidArgument, f"length must be an int from 0 to {U64}, got {length}", sim.touch, p, a, length)
    raises(
        rmapsim.InvalidArgument, f"old_len must be an int from 0 to {U64}, got {length}", sim.mremap, p, a, length, P
    )


def test_numpy_ints_are_ints(world):
    sim, p, c, a = world
    sim.touch(np.int64(p), np.uint64(a), np.int32(P))
    assert len(sim.rmap_walk(threads=np.uint8(2))) == 5


# --------------------------------------------------------------------------- bools


@pytest.mark.parametrize("bad", [1, 0, None, "yes", 1.0, np.int64(1)])
def test_flags_refuse_non_bools(world, bad):
    sim, p, c, a = world
    msg = f"must be True or False, got {bad!r}"
    raises(rmapsim.InvalidArgument, "write " + msg, sim.touch, p, a, P, write=bad)
    raises(rmapsim.InvalidArgument, "write " + msg, sim.touch_many, [p], a, P, write=bad)
    raises(rmapsim.InvalidArgument, "may_move " + msg, sim.mremap, p, a, P, 2 * P, may_move=bad)
    raises(rmapsim.InvalidArgument, "check_each " + msg, sim.apply, "# rmapsim trace v1\n", check_each=bad)
    raises(rmapsim.InvalidArgument, "stack " + msg, sim.mmap, p, P, stack=bad)
    raises(rmapsim.InvalidArgument, "extended " + msg, _core.fuzz, "6.18", max_ops=5, extended=bad)


def test_numpy_bools_are_flags(world):
    sim, p, c, a = world
    sim.touch(p, a, P, write=np.bool_(False))
    assert sim.mremap(p, a, 4 * P, 4 * P, may_move=np.bool_(True)) == a


@pytest.mark.parametrize("bad", [True, False, np.bool_(True)])
def test_bools_are_not_ints(world, bad):
    sim, p, c, a = world
    raises(rmapsim.InvalidArgument, f"pid must be an int, got {bad!r}", sim.fork, bad)
    raises(rmapsim.InvalidArgument, f"n must be an int, got {bad!r}", sim.fork_many, p, bad)
    raises(rmapsim.InvalidArgument, f"cpus must be an int, got {bad!r}", sim.contention, cpus=bad)
    raises(rmapsim.InvalidArgument, f"nth must be an int, got {bad!r}", sim.inject_enomem, nth=bad)


@pytest.mark.parametrize("bad", [True, np.bool_(False)])
def test_bools_are_not_rates(world, bad):
    raises(rmapsim.InvalidArgument, f"rate must be a number from 0 to 1, got {bad!r}", world[0].inject_enomem, rate=bad)
    raises(
        rmapsim.InvalidArgument,
        f"fail_rate must be a number from 0 to 1, got {bad!r}",
        _core.fuzz,
        "6.18",
        max_ops=5,
        fail_rate=bad,
    )


# --------------------------------------------------------------------------- huge input is quoted short


def test_parse_error_quotes_a_huge_token_short():
    token = "q" * 50_000_000
    with pytest.raises(rmapsim.InvalidArgument) as ei:
        trace.parse("# rmapsim trace v1\n" + token + "\n")
    msg = str(ei.value)
    assert msg == f'trace line 2: unknown operation "{"q" * 77}"... (50000000 chars)'


def test_values_are_quoted_short(world):
    sim, p, c, a = world
    big = list(range(10_000))
    with pytest.raises(rmapsim.InvalidArgument) as ei:
        sim.fork(big)
    assert len(str(ei.value)) < 200 and str(ei.value).startswith("pid must be an int, got [0, 1, 2,")
    assert str(ei.value).endswith(f"... ({len(repr(big))} chars)")
    for fn in (
        lambda: sim.madvise(p, a, P, "z" * 10**6),
        lambda: sim.mprotect(p, a, P, "r" * 10**6),
        lambda: rmapsim.Simulator(era="e" * 10**6),
        lambda: rmapsim.Simulator(policy={"k" * 10**6: 1}),
        lambda: rmapsim.Simulator(policy=rmapsim.Policy.preset("6.18").replace(index="v" * 10**6)),
    ):
        before = sim.counts()
        with pytest.raises(rmapsim.InvalidArgument) as ei:
            fn()
        assert len(str(ei.value)) < 1000, str(ei.value)[:200]
        assert re.search(r"\.\.\. \(\d+ chars\)", str(ei.value))
        assert sim.counts() == before


def test_except_valueerror_still_works(world):
    with pytest.raises(ValueError):
        world[0].rmap_walk(threads=2**64)
    with pytest.raises(LookupError):
        world[0].exit(2**70)


def test_docs_examples_are_real_output():
    """The pycon block of the issue 14 section of docs/api-contract.md is this build's output."""
    text = (DOCS / "api-contract.md").read_text()
    section = text.split("## Issue 14: one error discipline for arguments", 1)[1]
    block = section.split("```pycon\n", 1)[1].split("```", 1)[0]
    test = doctest.DocTestParser().get_doctest(block, {}, "api-contract", "api-contract.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert len(test.examples) >= 15


# --------------------------------------------------------------------------- ScanStats pickle / copy


def _stats_of_every_kind():
    sim, p, c, a = family(8, 2)
    sim.mprotect(p, a + 4 * P, P, "r")
    out = [sim.rmap_walk(), sim.page_referenced(), sim.rmap_walk(pages=[])]
    out.append(sim.madvise(c, a, 2 * P, "pageout"))  # the child's own COW copies
    out.append(sim.try_to_unmap())
    return out


def _same(x, y):
    assert type(y) is rmapsim.ScanStats and x.kind == y.kind and len(x) == len(y)
    for col in SCAN_COLUMNS:
        a, b = getattr(x, col), getattr(y, col)
        assert a.dtype == b.dtype, col
        assert a.tolist() == b.tolist(), col


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy", "pickle0"])
def test_scanstats_round_trips(how):
    stats = _stats_of_every_kind()
    assert [s.kind for s in stats] == ["rmap_walk", "page_referenced", "rmap_walk", "try_to_unmap", "try_to_unmap"]
    assert len(stats[0]) == 10 and len(stats[2]) == 0 and len(stats[3]) == 2
    f = {
        "pickle": lambda s: pickle.loads(pickle.dumps(s)),
        "pickle0": lambda s: pickle.loads(pickle.dumps(s, protocol=0)),
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
    }[how]
    for s in stats:
        t = f(s)
        assert t is not s
        _same(s, t)
        assert t == s and not (t != s)
        assert t.summary() == s.summary() or len(s) == 0
        with pytest.raises(AttributeError, match="read-only"):
            t.kind = "x"


def test_scanstats_deepcopy_owns_its_columns():
    s = _stats_of_every_kind()[0]
    d = copy.deepcopy(s)
    for col in SCAN_COLUMNS:
        assert not np.shares_memory(getattr(s, col), getattr(d, col))


def test_scanstats_equality_sees_every_column():
    s = _stats_of_every_kind()[0]
    for col in SCAN_COLUMNS:
        cols = {c: getattr(s, c).copy() for c in SCAN_COLUMNS}
        cols[col][0] += 1
        assert rmapsim.ScanStats(cols, kind=s.kind) != s, col
    cols = {c: getattr(s, c) for c in SCAN_COLUMNS}
    assert rmapsim.ScanStats(cols, kind="page_referenced") != s
    assert rmapsim.ScanStats({c: getattr(s, c).astype(np.int64) for c in SCAN_COLUMNS}, kind=s.kind) != s
