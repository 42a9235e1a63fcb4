"""MAP_STACK (``Simulator.mmap(stack=True)``): from Linux 6.7 the VMA gets VM_NOHUGEPAGE
(calc_vm_flag_bits, c4608d1bf7c6; knob ``map_stack_nohugepage``, set in 6.18), so a thread
stack does not merge with plain anonymous neighbours. Earlier kernels ignore the flag.

Ground truth: tests/data/map_stack.c run on this machine's Linux 6.18, its output recorded in
tests/data/map_stack.out; the simulator's 6.18 must print the same lines."""

from __future__ import annotations

import shutil

import pytest

import rmapsim
import rmapsim.trace

from helpers import DATA, FROM_6_18, kernel_at_least, recorded_lines, run_c_program

P = 4096
BASE = 0x1000_0000
RECORDING = str(DATA / "map_stack.out")
PROGRAM = str(DATA / "map_stack.c")
# map_stack.c's mappings: (first page, pages, MAP_STACK?)
MAPS = [(0, 2, False), (2, 2, True), (4, 2, True), (6, 2, False), (10, 2, True)]


def simulate_program(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    for page, n, stack in MAPS:
        sim.mmap(p, n * P, addr=BASE + page * P, stack=stack)
    sim.check()
    lines = []
    for v in sim.vmas(p):
        perms = "".join(c if c in v["prot"] else "-" for c in "rwx")
        nh = "nh" if "nohugepage" in v["flags"] else "-"
        ac = "ac" if "account" in v["flags"] else "-"
        lines.append(f"vma {v['start']:#x} {v['end']:#x} {perms} {nh} {ac}")
    return lines


def recorded():
    return recorded_lines(RECORDING)


def test_6_18_matches_the_live_kernel_recording():
    rec = recorded()
    assert len(rec) == 4 and rec[1] == "vma 0x10002000 0x10006000 rw- nh ac"
    assert simulate_program("6.18") == rec


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if e not in FROM_6_18])
def test_before_6_7_map_stack_is_a_no_op(era):
    assert rmapsim.Policy.preset(era)["map_stack_nohugepage"] == "false"
    # the stacks merge with their plain neighbours: one VMA for pages 0-8, one for 10-12
    assert simulate_program(era) == ["vma 0x10000000 0x10008000 rw- - ac", "vma 0x1000a000 0x1000c000 rw- - ac"]


def test_the_knob_alone_makes_the_difference():
    sim = rmapsim.Simulator(era="6.18", policy={"map_stack_nohugepage": "false"})
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=BASE)
    sim.mmap(p, 2 * P, addr=BASE + 2 * P, stack=True)
    assert len(sim.vmas(p)) == 1
    old = rmapsim.Simulator(era="6.0", policy={"map_stack_nohugepage": "true"})
    q = old.spawn()
    old.mmap(q, 2 * P, addr=BASE)
    old.mmap(q, 2 * P, addr=BASE + 2 * P, stack=True)
    assert [v["flags"] for v in old.vmas(q)] == [["account"], ["account", "nohugepage"]]


def test_a_stack_is_an_ordinary_mapping_otherwise():
    """Faults, fork and MADV_HUGEPAGE (which replaces VM_NOHUGEPAGE) work on it as on any
    anonymous VMA."""
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=BASE)
    sim.mmap(p, 2 * P, addr=BASE + 2 * P, stack=True)
    sim.touch(p, BASE, 4 * P)
    child = sim.fork(p)
    assert [v["flags"] for v in sim.vmas(child)] == [["account"], ["account", "nohugepage"]]
    sim.touch(child, BASE + 2 * P, 2 * P)
    sim.madvise(p, BASE + 2 * P, 2 * P, "hugepage")
    assert [v["flags"] for v in sim.vmas(p)] == [["account"], ["account", "hugepage"]]
    sim.check()


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_stack_must_be_a_bool(bad):
    sim = rmapsim.Simulator()
    p = sim.spawn()
    with pytest.raises(rmapsim.InvalidArgument, match="stack must be True or False"):
        sim.mmap(p, P, stack=bad)
    assert sim.vmas(p) == []


def test_trace_word_round_trips():
    text = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x2000 rw\nmmap p1 0x10002000 0x2000 rw stack\n"
    ops = rmapsim.trace.parse(text)
    assert "stack" in rmapsim.trace.format(ops)
    sim = rmapsim.Simulator(era="6.18")
    sim.apply(ops)
    assert [v["flags"] for v in sim.vmas(1)] == [["account"], ["account", "nohugepage"]]


@pytest.mark.skipif(
    not kernel_at_least(6, 7, thp=True) or shutil.which("cc") is None,
    reason="needs Linux 6.7+ with THP and a C compiler (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert run_c_program(PROGRAM, tmp_path) == recorded()
