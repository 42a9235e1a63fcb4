"""mremap moving a range that spans several VMAs (Linux 6.17+, ``remap_move``: "mm/mremap:
permit mremap() move of multiple VMAs"; knob ``mremap_move_multi``, set in 6.18).

With MREMAP_FIXED and old_len == new_len, every VMA of [addr, addr+old_len) moves, in
address order, each part with mremap_to; the gaps between the source VMAs are kept in the
destination; a range that does not begin inside a VMA is EFAULT. Earlier kernels refuse a
range that is not inside one VMA (EFAULT)."""

from __future__ import annotations

import shutil

import pytest

import rmapsim

from helpers import DATA, FROM_6_18, kernel_at_least, recorded_lines, run_c_program

P = 4096
SRC = 0x1000_0000
DST = 0x2000_0000


def layout(sim, pid):
    """[(start, end, prot)] of pid's VMAs, relative to nothing (absolute addresses)."""
    return [(v["start"], v["end"], v["prot"]) for v in sim.vmas(pid)]


def world(era, **policy):
    """pid 1: A = [SRC, SRC+2P) rw, written; a one-page hole; B = [SRC+3P, SRC+5P) r, read
    (zero page); C = [SRC+5P, SRC+7P) rw, written; and a child sharing all of it."""
    sim = rmapsim.Simulator(era=era, policy=policy or None)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=SRC)
    sim.touch(p, SRC, 2 * P)
    sim.mmap(p, 2 * P, addr=SRC + 3 * P, prot="r")
    sim.touch(p, SRC + 3 * P, 2 * P, write=False)
    sim.mmap(p, 2 * P, addr=SRC + 5 * P)
    sim.touch(p, SRC + 5 * P, 2 * P)
    child = sim.fork(p)
    return sim, p, child


def pages_at(sim, pid, addrs):
    return [sim.page_at(pid, a) for a in addrs]


def test_a_range_over_three_vmas_and_a_hole_moves_with_its_gaps_in_6_18():
    sim, p, child = world("6.18")
    src = [SRC + i * P for i in (0, 1, 5, 6)]
    before = pages_at(sim, p, src)
    index = [sim.page_info(h)["index"] for h in before]
    assert sim.mremap(p, SRC, 7 * P, 7 * P, new_addr=DST) == DST
    # the gaps between the source VMAs are kept: A' at DST, B' one page after A', C' after B'
    assert layout(sim, p) == [
        (DST, DST + 2 * P, "rw"),
        (DST + 3 * P, DST + 5 * P, "r"),
        (DST + 5 * P, DST + 7 * P, "rw"),
    ]
    # the same pages, at the same offsets, keeping page->index (moved VMAs keep vm_pgoff)
    assert pages_at(sim, p, [DST + (a - SRC) for a in src]) == before
    assert [sim.page_info(h)["index"] for h in before] == index
    # B' still maps the zero page; the child is untouched and still shares the pages
    assert sim.page_at(p, DST + 3 * P) is None
    assert pages_at(sim, child, src) == before
    assert [sim.page_info(h)["mapcount"] for h in before] == [2, 2, 2, 2]
    sim.check()
    rows = sim.rmap_walk(before)
    assert list(rows.mappings_found) == [2, 2, 2, 2]


@pytest.mark.parametrize("era", [e for e in rmapsim.eras() if e not in FROM_6_18])
def test_before_6_17_the_same_call_is_efault_and_changes_nothing(era):
    sim, p, child = world(era)
    before = (layout(sim, p), sim.counts(), sim.operations())
    with pytest.raises(rmapsim.BadAddress, match=hex(SRC)):
        sim.mremap(p, SRC, 7 * P, 7 * P, new_addr=DST)
    assert (layout(sim, p), sim.counts(), sim.operations()) == before


def test_the_knob_alone_gives_an_older_era_the_move():
    sim, p, child = world("6.0", mremap_move_multi="true")
    assert sim.policy()["mremap_move_multi"] == "true"
    assert sim.mremap(p, SRC, 7 * P, 7 * P, new_addr=DST) == DST
    assert [v[0] for v in layout(sim, p)] == [DST, DST + 3 * P, DST + 5 * P]
    sim.check()
    old = world("6.18", mremap_move_multi="false")
    with pytest.raises(rmapsim.BadAddress):
        old[0].mremap(old[1], SRC, 7 * P, 7 * P, new_addr=DST)


def test_parts_of_the_first_and_last_vma_are_split_off_and_moved():
    sim, p, child = world("6.18")
    kept_a, kept_c = sim.page_at(p, SRC), sim.page_at(p, SRC + 6 * P)
    moved = pages_at(sim, p, [SRC + P, SRC + 5 * P])
    assert sim.mremap(p, SRC + P, 5 * P, 5 * P, new_addr=DST) == DST
    assert layout(sim, p) == [
        (SRC, SRC + P, "rw"),
        (SRC + 6 * P, SRC + 7 * P, "rw"),
        (DST, DST + P, "rw"),
        (DST + 2 * P, DST + 4 * P, "r"),
        (DST + 4 * P, DST + 5 * P, "rw"),
    ]
    assert sim.page_at(p, SRC) == kept_a and sim.page_at(p, SRC + 6 * P) == kept_c
    assert pages_at(sim, p, [DST, DST + 4 * P]) == moved
    sim.check()


def test_a_gap_at_the_start_is_efault_but_a_gap_at_the_end_is_not():
    sim, p, child = world("6.18")
    before = (layout(sim, p), sim.counts(), sim.operations())
    with pytest.raises(rmapsim.BadAddress, match="no VMA at its start"):
        sim.mremap(p, SRC + 2 * P, 3 * P, 3 * P, new_addr=DST)  # begins in the hole
    assert (layout(sim, p), sim.counts(), sim.operations()) == before
    with pytest.raises(rmapsim.BadAddress):
        sim.mremap(p, SRC - 4 * P, 5 * P, 5 * P, new_addr=DST)  # begins below A
    # ends in unmapped space: fine, the last VMA's part moves
    assert sim.mremap(p, SRC + 5 * P, 4 * P, 4 * P, new_addr=DST) == DST
    assert layout(sim, p)[-1] == (DST, DST + 2 * P, "rw")
    sim.check()


@pytest.mark.parametrize("new_len", [6 * P, 8 * P])
def test_resizing_across_vmas_stays_efault_in_6_18(new_len):
    sim, p, child = world("6.18")
    with pytest.raises(rmapsim.BadAddress, match="not inside one VMA"):
        sim.mremap(p, SRC, 7 * P, new_len, new_addr=DST)
    with pytest.raises(rmapsim.BadAddress, match="not inside one VMA"):
        sim.mremap(p, SRC, 7 * P, 8 * P)  # no MREMAP_FIXED: a resize, may move


def test_the_destination_is_unmapped_first_and_overlap_is_refused():
    sim, p, child = world("6.18")
    sim.mmap(p, 10 * P, addr=DST - P)
    sim.touch(p, DST - P, 10 * P)
    assert sim.mremap(p, SRC, 7 * P, 7 * P, new_addr=DST) == DST
    # each part's mremap_to unmaps only that part's destination: what was mapped in the
    # gap between two parts stays
    lay = layout(sim, p)
    assert (DST, DST + 2 * P, "rw") in lay and (DST + 3 * P, DST + 5 * P, "r") in lay
    assert sim.page_at(p, DST + 2 * P) is not None, "the gap between parts keeps its old page"
    sim.check()
    with pytest.raises(rmapsim.InvalidArgument, match="overlaps"):
        sim.mremap(p, DST, 7 * P, 7 * P, new_addr=DST + 2 * P)


def test_enomem_part_way_leaves_a_consistent_state():
    outcomes = set()
    for nth in range(1, 16):
        sim, p, child = world("6.18")
        sim.inject_enomem(nth=nth)
        try:
            sim.mremap(p, SRC, 7 * P, 7 * P, new_addr=DST)
            outcomes.add("ok")
        except rmapsim.OutOfMemory:
            starts = [v[0] for v in layout(sim, p)]
            outcomes.add("partial" if DST in starts else "none")
        sim.check()
        for pid in (child, p):
            sim.exit(pid)
        assert sim.counts()["page"] == 0 and sim.counts()["anon_vma"] == 0
    assert {"ok", "partial"} <= outcomes


# --------------------------------------------------------------------------- the live kernel

RECORDING = str(DATA / "mremap_multi.out")
PROGRAM = str(DATA / "mremap_multi.c")
# the calls of mremap_multi.c: (name, old, old_len, new_len, new_addr), all MAYMOVE|FIXED
CALLS = [
    ("move-all", SRC, 7 * P, 7 * P, DST),
    ("gap-at-start", DST + 2 * P, 3 * P, 3 * P, SRC),
    ("resize", DST, 7 * P, 8 * P, SRC),
    ("partial", DST + P, 5 * P, 5 * P, SRC),
    ("gap-at-end", DST + 6 * P, 3 * P, 3 * P, SRC + 16 * P),
]


def simulate_program(era):
    """mremap_multi.c's calls on the simulator, printed the way the program prints them;
    the `data` line names the source page each probed address maps (A1 = A's second page,
    and so on), as the program's byte values do (A was filled with 1s, C with 2s)."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=SRC)
    sim.touch(p, SRC, 2 * P)
    sim.mmap(p, 2 * P, addr=SRC + 3 * P, prot="r")
    sim.touch(p, SRC + 3 * P, P, write=False)
    sim.mmap(p, 2 * P, addr=SRC + 5 * P)
    sim.touch(p, SRC + 5 * P, 2 * P)
    fill = {sim.page_at(p, SRC + i * P): 1 for i in (0, 1)}
    fill.update({sim.page_at(p, SRC + i * P): 2 for i in (5, 6)})
    lines = []
    for name, old, old_len, new_len, new_addr in CALLS:
        try:
            got = sim.mremap(p, old, old_len, new_len, new_addr=new_addr)
            lines.append(f"call {name} ok {got:#x}")
        except rmapsim.BadAddress:
            lines.append(f"call {name} errno 14")  # EFAULT
    probes = []
    for a in (SRC, SRC + 4 * P, SRC + 16 * P):
        try:
            probes.append(fill.get(sim.page_at(p, a), "?"))
        except rmapsim.BadAddress:
            probes.append("unmapped")  # the program would die of SIGSEGV here
    lines.append("data " + " ".join(str(x) for x in probes))
    for v in sim.vmas(p):
        prot = v["prot"]
        perms = "".join(c if c in prot else "-" for c in "rwx")
        lines.append(f"vma {v['start']:#x} {v['end']:#x} {perms}")
    sim.check()
    return lines


def recorded():
    return recorded_lines(RECORDING)


def test_6_18_matches_the_live_kernel_recording():
    """The recording is Linux 6.18's own output for mremap_multi.c (its first line names
    the kernel); the simulator's 6.18 gives the same results, VMAs and pages."""
    rec = recorded()
    assert rec[0] == "call move-all ok 0x20000000" and len(rec) == 11
    assert simulate_program("6.18") == rec


def test_6_0_refuses_the_moves_6_17_allows():
    got = simulate_program("6.0")
    assert [line for line in got if line.startswith("call")] == [f"call {name} errno 14" for name, *_ in CALLS]


@pytest.mark.skipif(
    not kernel_at_least(6, 17) or shutil.which("cc") is None,
    reason="needs Linux 6.17+ and a C compiler (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert run_c_program(PROGRAM, tmp_path) == recorded()
