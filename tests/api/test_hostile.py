"""Hostile values for every parameter of the public API (issue 14, "one error discipline").

Each public function and method is called with one parameter replaced by a hostile value
(out-of-range ints, bools, floats, numpy scalars, None, strings, huge strings, lists,
nested lists, other objects) and the others valid. The call must either succeed or raise
an `rmapsim.SimError` subclass (never an InvariantViolation, which here would be a panic
or a broken state) whose message names the parameter or the value and stays short; a
failing call must leave the whole observable state (`dump`) exactly as it was.

`test_every_parameter` tries the fixed list of hostile values on every parameter;
`test_hypothesis_sweep` draws further values with hypothesis. Calls that would run long on
huge *legitimate* values (a fork_many of 2**31 children, a fuzz run of 2**63 ops, a
workload of 2**32 pages) skip the huge positive ints for that parameter (LARGE_OK): the
lead's resource limits cover those.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rmapsim
from rmapsim import _core, record, study, trace, workloads
from rmapsim.policy import Policy

from helpers import PAGE, snapshot

P = PAGE
X = 0x4000_0000  # the world's anonymous region
R = X + 16 * P  # a read-only region
B = 0x2000_0000  # the parent's brk base
HUGE_TEXT = "x" * 100_000

HOSTILE: List[Any] = [
    -1,
    0,
    1,
    2**31,
    2**32,
    2**63,
    2**64,
    2**70,
    -(2**70),
    2**47 - P,
    2**47,
    2**63 - P,
    2**64 - P,
    2**64 - 1,  # page-aligned edges of the address space
    True,
    False,
    0.0,
    1.5,
    -2.5,
    float("nan"),
    float("inf"),
    np.int64(-1),
    np.uint64(2**64 - 1),
    np.int8(3),
    np.uint32(2**32 - 1),
    np.float64(2.0),
    np.float32(0.5),
    np.bool_(True),
    np.bool_(False),
    None,
    "",
    "rw",
    "2.6.34",
    HUGE_TEXT,
    [],
    [1],
    [-1],
    [2**70],
    [True],
    [None],
    [1.5],
    [[1]],
    [[1], [2, 3]],
    [HUGE_TEXT],
    (1, 2),
    b"rw",
    {},
    {"a": 1},
    object(),
    np.zeros(3),
    np.zeros((2, 2), dtype=np.int64),
]


def _big(v: Any) -> bool:
    """A huge positive number, a legitimate value some calls would spend long on."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer, float, np.floating)):
        return bool(v > 64)  # nan > 64 is False
    return False


# --------------------------------------------------------------------------- the world


def build_world(era: str) -> Dict[str, Any]:
    """A small state with something to corrupt: a parent with written, read and swapped
    pages, a brk heap and a read-only region; a forked child that COW-wrote a page; a
    second process with its own mapping; an exited pid."""
    sim = rmapsim.Simulator(era=era, seed=1)
    p = sim.spawn()
    sim.mmap(p, 8 * P, addr=X)
    sim.touch(p, X, 4 * P)
    sim.mmap(p, 2 * P, addr=R, prot="r")
    sim.touch(p, R, 2 * P, write=False)
    sim.set_brk_base(p, B)
    sim.brk(p, B + 2 * P)
    sim.touch(p, B, P)
    c = sim.fork(p)
    sim.touch(c, X, P)
    sim.try_to_unmap([sim.page_at(p, X + 3 * P)])
    q = sim.spawn()
    sim.mmap(q, 2 * P, addr=X)
    sim.touch(q, X, P)
    gone = sim.spawn()
    sim.exit(gone)
    page = int(sim.page_at(p, X + P))
    stats = sim.rmap_walk()
    v = sim.vma_at(c, X)
    avc = v.anon_vma_chain[0].handle if hasattr(v, "anon_vma_chain") else None
    return dict(sim=sim, p=p, c=c, q=q, gone=gone, page=page, stats=stats, vma=v.handle, av=v.anon_vma.handle, avc=avc)


def dump(sim) -> Dict[str, Any]:
    """Every observable part of the state: per process its VMAs, page layout, parent and
    brk; every page's page_info; counts, memory, allocations (total and per site), write
    stats, policy, live pids, and which page each address maps (helpers.snapshot)."""
    d = snapshot(sim)
    d["brk"] = {pid: tuple(sim.brk_info(pid)) for pid in d["pids"]}
    d["parent"] = {pid: int(sim.parent(pid)) for pid in d["pids"]}
    d["raw_vmas"] = {pid: sim.vmas(pid) for pid in d["pids"]}
    d["memory"] = dict(sim.memory())
    d["allocations"] = int(sim.allocations())
    d["write_stats"] = {k: dict(v) for k, v in sim.write_stats().items()}
    d["policy"] = dict(sim.policy())
    return d


TRACE = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x2000 rw\ntouch p1 0x10000000 0x1000 w\nfork p1\n"


def _sim_calls() -> Dict[str, Tuple[Callable[..., Any], Callable[[Dict[str, Any]], Dict[str, Any]]]]:
    """name -> (call(world, **kwargs), valid kwargs for the world)."""
    m = lambda name: lambda w, **kw: getattr(w["sim"], name)(**kw)  # noqa: E731
    walk = lambda w: dict(pages=None, threads=1, aggregate=False)  # noqa: E731
    return {
        "fork": (m("fork"), lambda w: dict(pid=w["p"])),
        "fork_many": (m("fork_many"), lambda w: dict(pid=w["p"], n=2)),
        "set_pid_max": (m("set_pid_max"), lambda w: dict(pid_max=4096)),
        "set_ram": (m("set_ram"), lambda w: dict(ram=1 << 36)),
        "exit": (m("exit"), lambda w: dict(pid=w["c"])),
        "exit_many": (m("exit_many"), lambda w: dict(pids=[w["c"]])),
        "exec": (m("exec"), lambda w: dict(pid=w["q"])),
        "mmap": (
            m("mmap"),
            lambda w: dict(
                pid=w["p"],
                length=P,
                addr=X + 40 * P,
                prot="rw",
                file=None,
                offset=None,
                noreserve=False,
                stack=False,
                noreplace=True,
                locked=False,
            ),
        ),
        "mmap_anywhere": (m("mmap"), lambda w: dict(pid=w["p"], length=P)),
        "mmap_file": (m("mmap"), lambda w: dict(pid=w["p"], length=P, addr=X + 40 * P, prot="r", file=3, offset=0)),
        "munmap": (m("munmap"), lambda w: dict(pid=w["p"], addr=X, length=P)),
        "touch": (m("touch"), lambda w: dict(pid=w["p"], addr=X, length=P, write=True)),
        "touch_many": (m("touch_many"), lambda w: dict(pids=[w["p"], w["c"]], addr=X, length=P, write=True)),
        "mprotect": (m("mprotect"), lambda w: dict(pid=w["p"], addr=X, length=P, prot="r")),
        "madvise": (m("madvise"), lambda w: dict(pid=w["p"], addr=X, length=P, advice="random")),
        "madvise_free": (m("madvise"), lambda w: dict(pid=w["p"], addr=X, length=P, advice="free")),
        "mlock": (m("mlock"), lambda w: dict(pid=w["p"], addr=X, length=P, onfault=False)),
        "munlock": (m("munlock"), lambda w: dict(pid=w["p"], addr=X, length=P)),
        "mlockall": (m("mlockall"), lambda w: dict(pid=w["p"], current=True, future=False, onfault=False)),
        "munlockall": (m("munlockall"), lambda w: dict(pid=w["p"])),
        "set_memory_merge": (m("set_memory_merge"), lambda w: dict(pid=w["p"], enable=True)),
        "memory_merge": (m("memory_merge"), lambda w: dict(pid=w["p"])),
        "mremap": (
            m("mremap"),
            lambda w: dict(pid=w["p"], old_addr=X, old_len=P, new_len=2 * P, may_move=True, new_addr=None),
        ),
        "mremap_dontunmap": (
            m("mremap"),
            lambda w: dict(pid=w["p"], old_addr=X, old_len=P, new_len=P, may_move=True, new_addr=None, dontunmap=True),
        ),
        "set_brk_base": (m("set_brk_base"), lambda w: dict(pid=w["q"], addr=B)),
        "brk": (m("brk"), lambda w: dict(pid=w["p"], addr=B + 3 * P)),
        "brk_info": (m("brk_info"), lambda w: dict(pid=w["p"])),
        "page_at": (m("page_at"), lambda w: dict(pid=w["p"], addr=X)),
        "page_info": (m("page_info"), lambda w: dict(page=w["page"])),
        "vmas": (m("vmas"), lambda w: dict(pid=w["p"])),
        "mm": (m("mm"), lambda w: dict(pid=w["p"])),
        "vma_at": (m("vma_at"), lambda w: dict(pid=w["p"], addr=X)),
        "vma": (m("vma"), lambda w: dict(handle=w["vma"])),
        "anon_vma": (m("anon_vma"), lambda w: dict(handle=w["av"])),
        "anon_vma_chain": (m("anon_vma_chain"), lambda w: dict(handle=w["avc"])),
        "page": (m("page"), lambda w: dict(handle=w["page"])),
        "parent": (m("parent"), lambda w: dict(pid=w["c"])),
        "render_layout": (m("render_layout"), lambda w: dict(pid=w["p"])),
        "page_referenced": (m("page_referenced"), walk),
        "rmap_walk": (m("rmap_walk"), walk),
        "try_to_unmap": (m("try_to_unmap"), walk),
        "drop_swap_cache": (m("drop_swap_cache"), lambda w: dict(pages=None)),
        "contention": (
            m("contention"),
            lambda w: dict(
                pages=None, cpus=2, per_candidate=1, handoff=1, outside=10, writer_every=0, writer_hold=5, spans=False
            ),
        ),
        "apply": (m("apply"), lambda w: dict(ops=TRACE, check_each=False, sample_every=0, events=False)),
        "from_bytes": (lambda w, **kw: rmapsim.Simulator.from_bytes(**kw), lambda w: dict(data=w["sim"].to_bytes())),
        "inject_enomem_nth": (m("inject_enomem"), lambda w: dict(nth=3)),
        "inject_enomem_rate": (m("inject_enomem"), lambda w: dict(rate=0.5)),
    }


def _stats_call(name: str) -> Callable[..., Any]:
    return lambda w, **kw: getattr(w["stats"], name)(**kw)


def _module_calls() -> Dict[str, Tuple[Callable[..., Any], Callable[[Dict[str, Any]], Dict[str, Any]]]]:
    f = lambda fn: lambda w, **kw: fn(**kw)  # noqa: E731
    calls = {
        "Simulator": (
            f(rmapsim.Simulator),
            lambda w: dict(era="6.18", seed=0, policy=None, pid_max=None, ram=None, holes="kernel"),
        ),
        "Simulator_policy_knob": (
            lambda w, value: rmapsim.Simulator(policy={"index": value}),
            lambda w: dict(value="list"),
        ),
        "Policy.preset": (f(Policy.preset), lambda w: dict(name="6.18")),
        "Policy.replace": (
            lambda w, value: Policy.preset("6.18").replace(fork_reuse=value),
            lambda w: dict(value="never"),
        ),
        "Policy[]": (lambda w, knob: Policy.preset("6.18")[knob], lambda w: dict(knob="index")),
        "_core.fuzz": (
            f(_core.fuzz),
            lambda w: dict(
                era="6.18",
                seed=0,
                max_ops=30,
                seconds=0.0,
                fail_rate=0.0,
                run_len=10,
                full_check_every=4,
                policy=None,
                extended=False,
            ),
        ),
        "_core.preset": (f(_core.preset), lambda w: dict(name="6.18")),
        "_core.parse_trace": (f(_core.parse_trace), lambda w: dict(text=TRACE)),
        "_core.format_trace": (f(_core.format_trace), lambda w: dict(rows=[[0] * 7], era=None)),
        "trace.parse": (f(trace.parse), lambda w: dict(text=TRACE)),
        "trace.format": (f(trace.format), lambda w: dict(ops=trace.parse(TRACE), era="6.18")),
        "trace.load": (f(trace.load), lambda w: dict(path="/nonexistent/trace.txt")),
        "workloads.get": (f(workloads.get), lambda w: dict(name="fork_storm")),
        "workloads.fork_storm": (f(workloads.fork_storm), lambda w: dict(era="6.18", children=2, pages=2)),
        "workloads.fork_chain": (f(workloads.fork_chain), lambda w: dict(era="6.18", generations=2, pages=2)),
        "workloads.prefork_server": (
            f(workloads.prefork_server),
            lambda w: dict(era="6.18", workers=2, heap_pages=4, cow_percent=50, recycles=1),
        ),
        "workloads.mprotect_split": (f(workloads.mprotect_split), lambda w: dict(era="6.18", pieces=4, children=1)),
        "workloads.aim7_like": (
            f(workloads.aim7_like),
            lambda w: dict(era="6.18", processes=3, pages=2, reclaim_every=5, seed=0),
        ),
        "workloads.mremap_churn": (f(workloads.mremap_churn), lambda w: dict(era="6.18", moves=2, pages=2, children=1)),
        "record.convert_log": (f(record.convert_log), lambda w: dict(text="", writes="touched", cwd=None)),
        "record.memory_report": (f(record.memory_report), lambda w: dict(ops_text=TRACE, eras=["6.18"], every=0)),
        "study.sweep": (
            f(study.sweep),
            lambda w: dict(
                workload="fork_storm", grid={"children": [2], "pages": [2]}, eras=["6.18"], executor=None, progress=None
            ),
        ),
        "study.grid_points": (f(study.grid_points), lambda w: dict(grid={"children": [2]})),
        "study.to_pandas": (f(study.to_pandas), lambda w: dict(rows=[{"a": 1}])),
        "study.progress_bar": (f(study.progress_bar), lambda w: dict(total_hint=0)),
    }
    for name in ("column", "mean", "total", "histogram"):
        key = "name" if name == "column" else "column"
        calls[f"ScanStats.{name}"] = (_stats_call(name), (lambda k: lambda w: {k: "vmas_visited"})(key))
    calls["ScanStats.percentile"] = (_stats_call("percentile"), lambda w: dict(q=50, column="vmas_visited"))
    return calls


CALLS = {**_sim_calls(), **_module_calls()}

# parameters that would run long on huge legitimate values
LARGE_OK = {
    ("fork_many", "n"),
    ("_core.fuzz", "max_ops"),
    ("_core.fuzz", "seconds"),
    ("record.memory_report", "every"),
    ("study.progress_bar", "total_hint"),
    *(
        (name, k)
        for name in CALLS
        if name.startswith("workloads.")
        for k in (
            "children",
            "pages",
            "generations",
            "workers",
            "heap_pages",
            "recycles",
            "pieces",
            "processes",
            "reclaim_every",
            "moves",
        )
    ),
}
ERA = "6.18"


def _names_it(msg: str, param: str, value: Any, kw: Dict[str, Any], exc: Exception) -> bool:
    """Does the message name the parameter or the value? A BadAddress or OutOfMemory about
    the call's range (a valid int that the state refuses) may name the address in the
    range where it fails instead."""
    if re.search(r"(?<![A-Za-z_])" + re.escape(param) + r"(?![A-Za-z_])", msg):
        return True
    if _names_value(msg, value):
        return True
    if isinstance(value, str) and param in ("text", "ops", "ops_text") and msg.startswith("trace line "):
        return True  # a parse error names the line of the trace text and what it expected
    return isinstance(exc, (rmapsim.BadAddress, rmapsim.OutOfMemory)) and _names_range(msg, kw)


def _names_range(msg: str, kw: Dict[str, Any]) -> bool:
    start = kw.get("addr", kw.get("old_addr"))
    length = kw.get("length", kw.get("old_len"))
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in (start, length)):
        return False
    lo, hi = int(start), int(start) + int(length)
    return any(lo <= int(h, 16) <= hi for h in re.findall(r"0x[0-9a-f]+", msg))


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _unescape(msg: str) -> str:
    """`msg` with the escapes of quoted input (Rust's \\u{1f}, \\n, ...) decoded."""
    return re.sub(
        r"\\(u\{([0-9a-f]+)\}|.)",
        lambda m: chr(int(m.group(2), 16)) if m.group(2) else _ESCAPES.get(m.group(1), m.group(0)),
        msg,
    )


def _names_value(msg: str, value: Any) -> bool:
    if repr(value)[:40] in msg:
        return True
    if isinstance(value, dict):
        return any(_names_value(msg, k) for k in value)
    if isinstance(value, (list, tuple)):
        return any(_names_value(msg, v) for v in value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        v = int(value)
        return str(v) in msg or hex(v) in msg
    if isinstance(value, str):
        return value[:40] in _unescape(msg) if value else '""' in msg
    return repr(value)[:40] in msg


def _param_names() -> List[Tuple[str, str]]:
    w = _WORLD_FOR_NAMES
    return [(name, param) for name, (_, valid) in CALLS.items() for param in valid(w)]


_WORLD_FOR_NAMES = build_world(ERA)
PARAMS = _param_names()


# The kind each parameter takes; a value of another kind must be refused, not coerced
# (a bool is not an int, an int is not a flag, True is not a rate).
INT_PARAMS = {
    "pid",
    "n",
    "length",
    "addr",
    "file",
    "offset",
    "old_addr",
    "old_len",
    "new_len",
    "new_addr",
    "page",
    "handle",
    "threads",
    "cpus",
    "per_candidate",
    "handoff",
    "outside",
    "writer_every",
    "writer_hold",
    "sample_every",
    "nth",
    "seed",
    "max_ops",
    "run_len",
    "full_check_every",
    "total_hint",
    "children",
    "pages",
    "generations",
    "workers",
    "heap_pages",
    "cow_percent",
    "recycles",
    "pieces",
    "processes",
    "reclaim_every",
    "moves",
    "every",
}
FLAG_PARAMS = {
    "write",
    "may_move",
    "noreserve",
    "stack",
    "noreplace",
    "dontunmap",
    "aggregate",
    "check_each",
    "extended",
    "spans",
    "locked",
    "onfault",
    "current",
    "future",
    "enable",
}
REAL_PARAMS = {"rate", "fail_rate", "seconds", "q"}
STR_PARAMS = {"prot", "advice", "era", "name", "text", "workload", "column", "knob", "writes", "ops_text", "cwd"}
# (call, parameter) where None means "the default"
NONE_OK = {
    *((c, k) for c in ("mmap", "mmap_file") for k in ("addr", "prot", "file", "offset")),
    ("mremap", "new_addr"),
    ("mremap_dontunmap", "new_addr"),
    ("drop_swap_cache", "pages"),
    ("contention", "pages"),
    *((c, k) for c in ("page_referenced", "rmap_walk", "try_to_unmap") for k in ("pages", "threads")),
    ("inject_enomem_nth", "nth"),
    ("inject_enomem_rate", "rate"),
    ("Simulator", "era"),
    ("Simulator", "seed"),
    ("Simulator", "policy"),
    ("Simulator", "pid_max"),
    ("Simulator", "ram"),
    ("Simulator", "holes"),
    ("_core.fuzz", "policy"),
    ("_core.format_trace", "era"),
    ("trace.format", "era"),
    ("study.sweep", "eras"),
    ("study.sweep", "executor"),
    ("study.sweep", "progress"),
    ("record.convert_log", "cwd"),
}
HANDLE_LISTS = {
    ("page_referenced", "pages"),
    ("rmap_walk", "pages"),
    ("try_to_unmap", "pages"),
    ("drop_swap_cache", "pages"),
    ("contention", "pages"),
}


def _r(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _must_refuse(name: str, param: str, value: Any) -> bool:
    """Is `value` of a kind the parameter does not take?"""
    if value is None:
        return (name, param) not in NONE_OK and param in INT_PARAMS | FLAG_PARAMS | REAL_PARAMS | STR_PARAMS
    if (name, param) in HANDLE_LISTS:  # None, a handle or a sequence of handles
        return isinstance(value, (bool, np.bool_, str, bytes, float))
    if param in INT_PARAMS:
        return not _is_int(value)
    if param in FLAG_PARAMS:
        return not isinstance(value, (bool, np.bool_))
    if param in REAL_PARAMS:
        return isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
    if param in STR_PARAMS:
        return not isinstance(value, str)
    return False


def _claimed_value(msg: str, param: str) -> Any:
    """The number the message gives as the parameter's value ("pid 123"), if any."""
    m = re.search(r"(?<![A-Za-z_])" + re.escape(param) + r" (-?\d+|0x[0-9a-f]+)(?![0-9a-fx])", msg)
    return None if m is None else int(m.group(1), 0)


def _attempt(w: Dict[str, Any], name: str, param: str, value: Any) -> bool:
    """Call `name` with `param` = value; check the outcome. True if the call succeeded
    (the world may have changed)."""
    call, valid = CALLS[name]
    kw = valid(w)
    kw[param] = value
    before = dump(w["sim"])
    try:
        call(w, **kw)
    except rmapsim.SimError as e:
        msg = str(e)
        where = f"{name}({param}={_r(value)}) raised {type(e).__name__}: {msg[:300]}"
        assert not isinstance(e, rmapsim.InvariantViolation), where
        assert _names_it(msg, param, value, kw, e), f"message names neither the parameter nor the value: {where}"
        assert len(msg) < 2000, f"message not cut: {where}"
        if _is_int(value):
            claimed = _claimed_value(msg, param)
            assert claimed is None or claimed == int(value), f"message misreports the value: {where}"
        assert dump(w["sim"]) == before, f"state changed by a failing call: {where}"
        w["sim"].check()
        return False
    except BaseException as e:  # noqa: BLE001 - the point of the test
        raise AssertionError(
            f"{name}({param}={_r(value)}) raised {type(e).__name__} (not an rmapsim error): {str(e)[:300]}"
        ) from e
    w["sim"].inject_enomem()  # a successful inject_enomem must not fail later calls
    assert not _must_refuse(name, param, value), f"{name}({param}={_r(value)}) accepted a value of the wrong kind"
    return True


def _skip(name: str, param: str, value: Any) -> bool:
    return (name, param) in LARGE_OK and _big(value)


# Calls whose base arguments are EINVAL before 4.5 (MADV_FREE) / 5.7 (MREMAP_DONTUNMAP): swept in
# ERA only (tests/mm/test_madv_free.py and test_mremap_dontunmap.py check the old eras' EINVAL).
ERA_BOUND = {"madvise_free", "mremap_dontunmap"}
CASES = [(n, p, e) for e in (ERA, "2.6.33") for n, p in PARAMS if e == ERA or n not in ERA_BOUND]


@pytest.mark.parametrize("name,param,era", CASES, ids=[f"{n}-{p}-{e}" for n, p, e in CASES])
def test_every_parameter(name, param, era):
    w = build_world(era)
    for value in HOSTILE:
        if _skip(name, param, value):
            continue
        if _attempt(w, name, param, value):
            w = build_world(era)


def _numpy_scalars() -> st.SearchStrategy[Any]:
    dtypes = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
    ints = st.sampled_from(dtypes).flatmap(lambda t: st.integers(int(np.iinfo(t).min), int(np.iinfo(t).max)).map(t))
    floats = st.sampled_from([np.float16, np.float32, np.float64]).flatmap(
        lambda t: st.floats(allow_nan=True, width=np.finfo(t).bits).map(t)
    )
    return st.one_of(ints, floats, st.booleans().map(np.bool_))


HOSTILE_VALUES = st.recursive(
    st.one_of(
        st.integers(),
        st.sampled_from([2**31, 2**32, 2**47, 2**63, 2**64, 2**70, -(2**70), -1, 0]).flatmap(
            lambda b: st.sampled_from([-P, -2, -1, 0, 1, 2, P]).map(lambda d: b + d)
        ),
        st.booleans(),
        st.floats(),
        st.none(),
        st.text(max_size=30),
        st.binary(max_size=8),
        st.sampled_from(["", "rw", "6.18", "random", HUGE_TEXT]),
        _numpy_scalars(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner),
    max_leaves=4,
)


def _sweep_one(target: Tuple[str, str], value: Any) -> None:
    name, param = target
    if not _skip(name, param, value):
        _attempt(build_world(ERA), name, param, value)


@settings(max_examples=150, deadline=None)
@given(target=st.sampled_from(PARAMS), value=HOSTILE_VALUES)
def test_hypothesis_sweep(target, value):
    _sweep_one(target, value)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(target=st.sampled_from(PARAMS), value=HOSTILE_VALUES)
def test_hypothesis_sweep_long(target, value):
    _sweep_one(target, value)


def test_sweep_covers_the_public_api():
    """Every public method of Simulator that takes an argument is in the sweep."""
    import inspect

    covered = {re.sub(r"_(nth|rate|file|anywhere)$", "", name) for name in _sim_calls()}
    missing = []
    for attr, fn in inspect.getmembers(rmapsim.Simulator, callable):
        if attr.startswith("_") or attr in ("plot_state",):  # ax: a matplotlib Axes
            continue
        try:
            params = [p for p in inspect.signature(fn).parameters if p != "self"]
        except (TypeError, ValueError):
            continue
        if params and attr not in covered:
            missing.append(attr)
    assert missing == []
