"""rmapsim.testing.ops, the one Python random-operation generator: its operations are
real calls of the engine and the reference model, seeded runs repeat, the mixes reach what
they name, and bad options are refused naming the option."""

import inspect
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rmapsim
from rmapsim.testing.ops import (
    DIFFERENTIAL_KINDS,
    EXTENDED_ADVICE,
    EXTENDED_KINDS,
    KINDS,
    OPERATIONS,
    HypothesisDraw,
    ModelState,
    OpGenerator,
    RandomDraw,
    SimulatorState,
    operation_table,
    operations,
)
from rmapsim.testing.reference import ReferenceModel


def _run(target, state, gen, draw, steps):
    """Apply ``steps`` drawn operations to ``target``; (ops, Counter of error kinds)."""
    ops, errors = [], Counter()
    for _ in range(steps):
        op = gen(state(target), draw)
        ops.append(op)
        name, args, kwargs = op
        try:
            getattr(target, name)(*args, **kwargs)
        except rmapsim.SimError as e:
            errors[type(e).__name__] += 1
    return ops, errors


def test_every_operation_is_a_simulator_method_with_its_positional_arity():
    # the arity from the methods' own signatures, not from the generator's table
    for name, arity in OPERATIONS.items():
        params = inspect.signature(getattr(rmapsim.Simulator, name)).parameters.values()
        positional = [p for p in params if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is inspect.Parameter.empty]
        assert len(required) <= arity <= len(positional), name
        assert callable(getattr(ReferenceModel, name)), name
    assert operation_table() == OPERATIONS


def test_seeded_runs_repeat_and_reach_every_operation():
    runs = []
    for _ in range(2):
        model = ReferenceModel("2.6.34")
        ops, errors = _run(model, ModelState, OpGenerator(), RandomDraw(random.Random(7)), 600)
        runs.append(ops)
    assert runs[0] == runs[1]
    ops = runs[0]
    assert {name for name, _, _ in ops} == set(OPERATIONS)
    for name, args, _ in ops:
        assert len(args) == OPERATIONS[name], (name, args)
    assert any("file" in kw for name, _, kw in ops if name == "mmap")
    assert any(kw.get("addr") is None for name, _, kw in ops if name == "mmap")
    assert errors["NoSuchProcess"] > 0  # dead_pid
    model.check()


def test_the_differential_mix_names_no_file_and_no_dead_pid():
    sim = rmapsim.Simulator(era="6.18", seed=0)
    gen = OpGenerator(kinds=DIFFERENTIAL_KINDS, files=(), rare_advice=(), max_pages=6, prefer_busy=False)
    draw = RandomDraw(random.Random(3))
    seen = Counter()
    for _ in range(400):
        state = SimulatorState(sim)
        live = state.pids()
        name, args, kw = gen(state, draw)
        seen[name] += 1
        assert "file" not in kw and "offset" not in kw
        assert name not in ("fork_many", "touch_many")
        if name in ("fork", "exit", "exec", "munmap", "touch", "mprotect", "madvise", "mremap"):
            assert args[0] in live, (name, args, live)
        if name == "madvise":
            assert args[3] in ("normal", "random", "sequential", "dontfork", "dofork", "dontneed", "pageout")
        try:
            getattr(sim, name)(*args, **kw)
        except rmapsim.SimError:
            pass
    sim.check()
    assert seen["mmap"] and seen["mremap"] and seen["try_to_unmap"] and seen["spawn"]


def test_the_extended_mix_draws_the_4_5_to_5_7_operations_and_keeps_invariants():
    """EXTENDED_KINDS / EXTENDED_ADVICE (simulator only: see the module documentation) draw
    MAP_FIXED_NOREPLACE, MREMAP_DONTUNMAP and MADV_FREE; on 6.18 each succeeds sometimes and
    fails only with the kernel's errors (EEXIST, EINVAL, EFAULT, ENOMEM-like range errors),
    check() holding after every call; KINDS and DIFFERENTIAL_KINDS never draw them."""
    assert not {"mmap_noreplace", "mremap_dontunmap"} & set(KINDS + DIFFERENTIAL_KINDS)
    sim = rmapsim.Simulator(era="6.18", seed=0)
    gen = OpGenerator(kinds=EXTENDED_KINDS, advice=EXTENDED_ADVICE, files=())
    draw = RandomDraw(random.Random(5))
    ok, failed = Counter(), Counter()
    for _ in range(1500):
        name, args, kw = gen(SimulatorState(sim), draw)
        what = "noreplace" if kw.get("noreplace") else "dontunmap" if kw.get("dontunmap") else None
        if name == "madvise" and args[3] == "free":
            what = "free"
        try:
            getattr(sim, name)(*args, **kw)
            ok[what] += 1
        except rmapsim.SimError as e:
            failed[(what, type(e).__name__)] += 1
        sim.check()
    assert ok["noreplace"] and ok["dontunmap"] and ok["free"], ok
    assert failed[("noreplace", "AlreadyMapped")] > 0, failed
    kinds = {k for w, k in failed if w is not None}
    assert kinds <= {"AlreadyMapped", "InvalidArgument", "BadAddress", "NoSuchProcess"}, failed


def test_no_live_process_means_spawn():
    assert OpGenerator()(ModelState(ReferenceModel("2.6.33")), RandomDraw(random.Random(0))) == ("spawn", (), {})


def test_touch_swap_falls_back_as_told_when_nothing_is_swapped():
    sim = rmapsim.Simulator(era="6.18", seed=0)
    p = sim.spawn()
    a = sim.mmap(p, 4 * 4096)
    sim.touch(p, a, 4 * 4096, write=True)
    swapped = {(p, a + 4096): "swap"}
    for fallback, names in [("touch", {"touch"}), ("try_to_unmap", {"try_to_unmap"})]:
        gen = OpGenerator(kinds=["touch_swap"], max_procs=1, swap_fallback=fallback)
        draw = RandomDraw(random.Random(5))
        # nothing swapped: the fallback, a touch of the process's range or a try_to_unmap
        got = [gen(SimulatorState(sim, entries=dict), draw) for _ in range(50)]
        assert {name for name, _, _ in got} == names, fallback
        if fallback == "try_to_unmap":
            handles = {int(h) for h in sim.anon_pages()}
            assert all(args[0] is None or set(args[0]) <= handles for _, args, _ in got)
        # one swap entry: a touch of exactly it, whatever the fallback
        for _ in range(20):
            assert gen(SimulatorState(sim, entries=lambda: swapped), draw)[:2] == ("touch", (p, a + 4096, 4096))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_the_strategy_draws_from_the_state_as_it_is(data):
    sim = rmapsim.Simulator(era="6.18", seed=0)
    p = sim.spawn()
    a = sim.mmap(p, 4 * 4096)
    sim.touch(p, a, 4 * 4096)
    name, args, kw = data.draw(operations(SimulatorState(sim), files=()))
    assert name in OPERATIONS
    if name in ("munmap", "touch", "mprotect", "madvise", "mremap"):
        assert args[0] == p
    op = OpGenerator(files=())(SimulatorState(sim), HypothesisDraw(data))
    assert op[0] in OPERATIONS


@pytest.mark.parametrize(
    "options, message",
    [
        ({"kinds": ["mmap", "nope"]}, "each of kinds must be one of"),
        ({"kinds": "mmap"}, "kinds must be a list or tuple of strings"),
        ({"kinds": []}, "kinds must name at least one kind"),
        ({"max_procs": 0}, "max_procs must be an int >= 1, got 0"),
        ({"max_procs": True}, "max_procs must be an int >= 1, got True"),
        ({"window": (4097, 8)}, "window[0] must be page aligned, got 0x1001"),
        ({"window": (4096,)}, "window must be (lowest address, pages)"),
        ({"files": (0,)}, "each of files must be an int >= 1, got 0"),
        ({"max_pages": 0}, "max_pages must be an int >= 1, got 0"),
        ({"prefer_busy": 1}, "prefer_busy must be True or False, got 1"),
        ({"swap_fallback": "exit"}, "swap_fallback must be 'touch' or 'try_to_unmap', got 'exit'"),
        ({"prots": ()}, "prots, mprotect_prots and advice must each name at least one value"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(rmapsim.InvalidArgument) as e:
        OpGenerator(**options)
    assert message in str(e.value)


def test_holes_draws_ranges_over_holes_that_kernel_mode_applies_in_part():
    """OpGenerator(holes=True) on a holes="kernel" simulator: munmap/mprotect/madvise/mremap
    over holes; some munmaps of nothing succeed, some mprotects and madvises raise
    BadAddress after changing the VMAs before (or around) the hole, and check() holds
    after every call, injected allocation failures included."""
    sim = rmapsim.Simulator(era="6.18", seed=0, holes="kernel")
    gen = OpGenerator(kinds=EXTENDED_KINDS, advice=EXTENDED_ADVICE, files=(), holes=True)
    draw = RandomDraw(random.Random(11))
    rng = random.Random(3)
    partial = Counter()
    for i in range(1500):
        name, args, kw = gen(SimulatorState(sim), draw)
        if i % 50 == 0:
            sim.inject_enomem(nth=rng.randint(1, 4))
        before = str(sim.vmas(args[0])) if name in ("mprotect", "madvise") and args[0] in sim.pids() else None
        try:
            getattr(sim, name)(*args, **kw)
        except rmapsim.BadAddress:
            if before is not None and str(sim.vmas(args[0])) != before:
                partial[name] += 1  # failed at a hole, having changed what came first
        except rmapsim.SimError:
            pass
        sim.check()
    assert partial["mprotect"] > 0 and partial["madvise"] > 0, partial
    with pytest.raises(rmapsim.InvalidArgument, match="holes must be True or False"):
        OpGenerator(holes=1)
