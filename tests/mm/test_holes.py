"""Ranges with holes, ``holes="kernel"`` (knob ``holes``), and the mremap move that also
shrinks across a VMA boundary.

Kernel rules (6.18.2 tree line numbers):

* munmap: ``do_vmi_munmap`` (mm/vma.c 1562-1585) returns 0 when no VMA meets the range;
  what is mapped in a range with holes is unmapped. Every era's ``do_munmap`` does the same.
* mprotect: ``do_mprotect_pkey`` (mm/mprotect.c 861-1004): no VMA, or a hole at the start,
  is ENOMEM before anything changes (904-918); the loop (934-997) stops at the first hole
  with ENOMEM (939-942), the VMAs before it changed; a range ending in a hole is ENOMEM
  after the loop (1000-1001). The older ``sys_mprotect`` loop stops the same way.
* madvise: ``madvise_walk_vmas`` (mm/madvise.c 1618-1692) records ENOMEM at each hole and
  goes on with the next VMA (1651-1658), returns it at the end (1691); no VMA at all is
  ENOMEM with nothing done; an error of one VMA (EINVAL) returns at once (1667-1669), the
  VMAs before it done; an allocation failure is EAGAIN (1433-1434). Every era's
  ``sys_madvise`` keeps the same ``unmapped_error``.
* mremap shrink in place: ``do_mremap`` looks up ``old_addr``'s VMA (mm/mremap.c 1931; EFAULT
  in ``check_prep_vma``, 1658-1659), then ``shrink_vma`` (1326-1358) unmaps the tail with
  ``do_vmi_munmap``, holes and all. The look-up came in 5.16 (550a7d60bd5e, knob
  ``mremap_needs_vma``); before, ``sys_mremap`` shrank before looking anything up (4.8's
  ``SYSCALL_DEFINE5(mremap)``: "Always allow a shrinking remap").
* mremap move that also shrinks (``MREMAP_FIXED``, ``new_len < old_len``): ``check_prep_vma``
  tests "can't remap across vm area boundaries" on ``new_len`` for a shrink (mm/mremap.c
  1698-1720), then ``mremap_to`` (1363-1413) unmaps the destination, ``shrink_vma`` unmaps
  the tail across any boundaries, and ``move_vma`` moves the rest. 2.6.34-6.16's ``mremap_to``
  did the same (``do_munmap`` of the tail, then ``vma_to_resize(addr, new_len)``), and
  2.6.33's ``do_mremap`` shrank before ``find_vma``: every era, both modes.

Ground truth: tests/data/holes.c run on this machine's Linux 6.18, its output recorded in
tests/data/holes.out; the simulator's 6.18 with ``holes="kernel"`` prints the same lines.
"""

from __future__ import annotations

import shutil

import pytest

import rmapsim

from helpers import DATA, entry_kinds, kernel_at_least, recorded_lines, run_c_program

P = 4096
BASE = 0x3000_0000
RECORDING = str(DATA / "holes.out")
PROGRAM = str(DATA / "holes.c")


def pg(n: int) -> int:
    return BASE + n * P


def layout(sim, p):
    return [((v["start"] - BASE) // P, (v["end"] - BASE) // P, v["prot"]) for v in sim.vmas(p)]


def call(lines, name, errno, fn, *args, **kwargs):
    """Run one call as holes.c prints it: ``ok`` and the result, or the errno the kernel
    gives for the error (mremap's range errors are EFAULT, mprotect's and madvise's
    ENOMEM: both BadAddress)."""
    try:
        got = fn(*args, **kwargs)
        got = got if isinstance(got, int) else 0
        lines.append(f"call {name} ok {got:#x}" if got else f"call {name} ok 0")  # C's %#lx of 0 is "0"
    except rmapsim.BadAddress:
        lines.append(f"call {name} errno {errno}")


def simulate_program(era):
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    lines: list = []
    rw = "rw"
    sim.mmap(p, 4 * P, addr=pg(10), prot=rw)
    sim.mmap(p, 4 * P, addr=pg(14), prot="")
    sim.touch(p, pg(12), P, write=True)
    moved = sim.page_at(p, pg(12))
    call(lines, "shrink-move", 14, sim.mremap, p, pg(12), 4 * P, P, new_addr=pg(40))
    sim.mmap(p, 2 * P, addr=pg(20), prot=rw)
    sim.mmap(p, 2 * P, addr=pg(23), prot=rw)
    call(lines, "shrink-move-hole", 14, sim.mremap, p, pg(20), 5 * P, P, new_addr=pg(44))
    sim.mmap(p, 2 * P, addr=pg(26), prot=rw)
    sim.mmap(p, 2 * P, addr=pg(28), prot="r")
    call(lines, "shrink-move-across", 14, sim.mremap, p, pg(27), 3 * P, 2 * P, new_addr=pg(48))
    sim.mmap(p, 2 * P, addr=pg(50), prot=rw)
    sim.mmap(p, 2 * P, addr=pg(53), prot=rw)
    call(lines, "shrink-hole", 14, sim.mremap, p, pg(50), 5 * P, P, may_move=False)
    call(lines, "shrink-unmapped", 14, sim.mremap, p, pg(58), 2 * P, P, may_move=False)
    call(lines, "munmap-nothing", 14, sim.munmap, p, pg(60), 2 * P)
    sim.mmap(p, 2 * P, addr=pg(62), prot="r")
    sim.mmap(p, 2 * P, addr=pg(65), prot="r")
    call(lines, "mprotect-hole", 12, sim.mprotect, p, pg(62), 5 * P, rw)
    sim.mmap(p, 2 * P, addr=pg(70), prot="r")
    call(lines, "mprotect-lead", 12, sim.mprotect, p, pg(69), 3 * P, rw)
    sim.mmap(p, 2 * P, addr=pg(74), prot=rw)
    sim.mmap(p, 2 * P, addr=pg(77), prot=rw)
    call(lines, "madvise-hole", 12, sim.madvise, p, pg(74), 6 * P, "dontfork")
    call(lines, "madvise-nothing", 12, sim.madvise, p, pg(82), 2 * P, "dontfork")
    sim.mmap(p, 2 * P, addr=pg(86), prot=rw)
    sim.mmap(p, 2 * P, addr=pg(89), prot=rw)
    sim.touch(p, pg(86), 2 * P, write=True)
    sim.touch(p, pg(89), 2 * P, write=True)
    call(lines, "madvise-dontneed-hole", 12, sim.madvise, p, pg(86), 5 * P, "dontneed")
    # the bytes read back: 7 where the page written at page 12 now is, 0 for a zapped page
    data = [7 if sim.page_at(p, pg(40)) == moved else 0]
    data += [0 if sim.page_at(p, pg(n)) is None else n for n in (86, 90)]
    lines.append("data " + " ".join(map(str, data)))
    for v in sim.vmas(p):
        perms = "".join(ch if ch in v["prot"] else "-" for ch in "rwx")
        dc = "dc" if "dontcopy" in v["flags"] else "-"
        lines.append(f"vma {v['start']:#x} {v['end']:#x} {perms} {dc}")
    sim.check()
    return lines


def recorded():
    return recorded_lines(RECORDING)


def test_6_18_kernel_mode_matches_the_live_kernel_recording():
    """Every call's result, the moved and zapped pages and the final VMAs (with
    VM_DONTCOPY) as Linux 6.18 gives them."""
    rec = recorded()
    assert rec[0] == "call shrink-move ok 0x30028000" and len(rec) == 26
    assert simulate_program("6.18+holes=kernel") == rec


def test_strict_mode_refuses_every_hole_case_and_keeps_the_shrink_move():
    """Strict mode (the default): each call over a hole raises BadAddress with nothing
    changed, munmap of nothing included; the shrinking move across a boundary (no hole)
    behaves as the kernel does in both modes."""
    got = simulate_program("6.18")
    calls = dict(line.split(" ", 2)[1:] for line in got if line.startswith("call"))
    assert calls["shrink-move"] == "ok 0x30028000"
    assert calls["shrink-move-across"] == "errno 14"
    for name in ("shrink-move-hole", "shrink-hole", "shrink-unmapped"):
        assert calls[name] == "errno 14", name
    for name in ("mprotect-hole", "mprotect-lead", "madvise-hole", "madvise-nothing", "madvise-dontneed-hole"):
        assert calls[name] == "errno 12", name
    assert calls["munmap-nothing"] == "errno 14"
    vmas = [line for line in got if line.startswith("vma")]
    # nothing of the refused calls changed: both VMAs of each case as mapped
    assert "vma 0x3003e000 0x30040000 r-- -" in vmas and "vma 0x3004a000 0x3004c000 rw- -" in vmas
    assert "data 7 86 90" in got


@pytest.mark.skipif(
    not kernel_at_least(6, 18) or shutil.which("cc") is None,
    reason="needs Linux 6.18 and a C compiler (the recording is compared above)",
)
def test_the_live_kernel_still_gives_the_recording(tmp_path):
    assert run_c_program(PROGRAM, tmp_path) == recorded()


# --------------------------------------------------------------------------- one rule each


def kernel_sim(era="6.18"):
    sim = rmapsim.Simulator(era, holes="kernel")
    return sim, sim.spawn()


@pytest.mark.parametrize("era", rmapsim.eras())
def test_shrinking_move_across_a_boundary_every_era(era):
    """The issue's example (``mmap +10 4p rw; mmap +14 4p none; mremap +12 4p -> 1p
    MAYMOVE|FIXED -> +40``) in every era and both modes: the tail [13, 18) is unmapped across
    A's end, [12, 13) moves to 40; the moved page keeps its anon_vma."""
    for holes in ("strict", "kernel"):
        sim = rmapsim.Simulator(era, holes=holes)
        p = sim.spawn()
        sim.mmap(p, 4 * P, addr=pg(10), prot="rw")
        sim.mmap(p, 4 * P, addr=pg(14), prot="")
        sim.touch(p, pg(12), P, write=True)
        page = sim.page_at(p, pg(12))
        assert sim.mremap(p, pg(12), 4 * P, P, new_addr=pg(40)) == pg(40)
        assert layout(sim, p) == [(10, 12, "rw"), (16, 18, ""), (40, 41, "rw")]
        assert sim.page_at(p, pg(40)) == page
        sim.check()


@pytest.mark.parametrize("holes", ["strict", "kernel"])
def test_a_shrinking_move_whose_kept_part_crosses_a_boundary_is_efault(holes):
    """check_prep_vma (mm/mremap.c 1698-1720): the kept [27, 29) is in two VMAs: EFAULT before
    anything changes (the destination is not unmapped either)."""
    sim = rmapsim.Simulator("6.18", holes=holes)
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=pg(26), prot="rw")
    sim.mmap(p, 2 * P, addr=pg(28), prot="r")
    sim.mmap(p, P, addr=pg(48), prot="rw")
    with pytest.raises(rmapsim.BadAddress, match="EFAULT"):
        sim.mremap(p, pg(27), 3 * P, 2 * P, new_addr=pg(48))
    assert layout(sim, p) == [(26, 28, "rw"), (28, 30, "r"), (48, 49, "rw")]


def test_kernel_mode_munmap_of_nothing_succeeds_and_changes_nothing():
    sim, p = kernel_sim()
    sim.mmap(p, P, addr=pg(0))
    before = sim.counts()
    assert sim.munmap(p, pg(4), 4 * P) is None
    assert sim.counts() == before and layout(sim, p) == [(0, 1, "rw")]


@pytest.mark.parametrize("era", ["2.6.33", "3.19", "6.18"])
def test_kernel_mode_mprotect_stops_at_the_hole(era):
    """do_mprotect_pkey 939-942: [0, 2) changed, [3, 5) after the hole not."""
    sim, p = kernel_sim(era)
    sim.mmap(p, 2 * P, addr=pg(0), prot="r")
    sim.mmap(p, 2 * P, addr=pg(3), prot="r")
    with pytest.raises(rmapsim.BadAddress, match=f"{pg(2):#x}"):
        sim.mprotect(p, pg(0), 5 * P, "rw")
    assert layout(sim, p) == [(0, 2, "rw"), (3, 5, "r")]
    sim.check()


def test_kernel_mode_mprotect_range_ending_in_a_hole():
    """do_mprotect_pkey 1000-1001: every VMA of the range changed, then ENOMEM; the change
    still merges with a neighbour as usual ([0, 2) rw after [-2, 0) rw)."""
    sim, p = kernel_sim()
    sim.mmap(p, 2 * P, addr=pg(0) - 2 * P, prot="rw")
    sim.mmap(p, 2 * P, addr=pg(0), prot="r")
    with pytest.raises(rmapsim.BadAddress):
        sim.mprotect(p, pg(0), 4 * P, "rw")
    assert layout(sim, p) == [(-2, 2, "rw")]
    sim.check()


def test_kernel_mode_mprotect_hole_at_the_start_changes_nothing():
    sim, p = kernel_sim()
    sim.mmap(p, 2 * P, addr=pg(1), prot="r")
    with pytest.raises(rmapsim.BadAddress):
        sim.mprotect(p, pg(0), 3 * P, "rw")
    assert layout(sim, p) == [(1, 3, "r")]


@pytest.mark.parametrize("advice", ["dontfork", "hugepage", "dontneed", "pageout"])
def test_kernel_mode_madvise_goes_on_past_holes(advice):
    """madvise_walk_vmas 1651-1658 and 1691: a hole at the start, one in the middle and one at
    the end; both VMAs get the advice, then ENOMEM."""
    sim, p = kernel_sim()
    sim.mmap(p, 2 * P, addr=pg(1))
    sim.mmap(p, 2 * P, addr=pg(4))
    sim.touch(p, pg(1), 2 * P, write=True)
    sim.touch(p, pg(4), 2 * P, write=True)
    with pytest.raises(rmapsim.BadAddress, match=f"{pg(0):#x}"):
        sim.madvise(p, pg(0), 8 * P, advice)
    flags = {"dontfork": "dontcopy", "hugepage": "hugepage"}.get(advice)
    for v in sim.vmas(p):
        if flags:
            assert flags in v["flags"]
    if advice in ("dontneed", "pageout"):
        # both VMAs' pages gone from their page tables (zapped, or swapped out)
        assert all(sim.page_at(p, pg(n)) is None for n in (1, 2, 4, 5))
    sim.check()


def test_kernel_mode_madvise_of_nothing_is_enomem_with_nothing_done():
    sim, p = kernel_sim()
    sim.mmap(p, P, addr=pg(0))
    with pytest.raises(rmapsim.BadAddress):
        sim.madvise(p, pg(2), 2 * P, "dontfork")
    assert sim.vmas(p)[0]["flags"] == ["account"]


def test_kernel_mode_madvise_stops_at_a_vma_it_refuses():
    """MADV_WIPEONFORK on a file VMA is EINVAL when the walk reaches it (madvise_vma_behavior,
    1667-1669): the anonymous VMA before it has the flag, the one after the file VMA not.
    Strict mode refuses the whole call first."""
    for holes, before in (("kernel", True), ("strict", False)):
        sim = rmapsim.Simulator("6.18", holes=holes)
        p = sim.spawn()
        sim.mmap(p, 2 * P, addr=pg(0))
        sim.mmap(p, 2 * P, addr=pg(2), file=1, offset=0)
        sim.mmap(p, 2 * P, addr=pg(4))
        with pytest.raises(rmapsim.InvalidArgument, match="wipeonfork"):
            sim.madvise(p, pg(0), 6 * P, "wipeonfork")
        got = ["wipeonfork" in v["flags"] for v in sim.vmas(p)]
        assert got == [before, False, False]
        sim.check()


def test_kernel_mode_madvise_allocation_failure_is_eagain():
    """A split that fails in madvise's walk is EAGAIN (madvise_vma_behavior 1433-1434), the
    kernel-mode error; strict mode keeps OutOfMemory."""
    for holes, exc in (("kernel", rmapsim.TryAgain), ("strict", rmapsim.OutOfMemory)):
        sim = rmapsim.Simulator("6.18", holes=holes)
        p = sim.spawn()
        sim.mmap(p, 4 * P, addr=pg(0))
        sim.inject_enomem(nth=1)
        with pytest.raises(exc):
            sim.madvise(p, pg(1), P, "dontfork")
        assert layout(sim, p) == [(0, 4, "rw")]
        sim.check()


@pytest.mark.parametrize("era,ok", [("6.18", False), ("6.0", False), ("3.19", True), ("2.6.33", True)])
def test_kernel_mode_shrink_in_place_at_an_unmapped_address(era, ok):
    """5.16+ (mremap_needs_vma): EFAULT; before, the shrink only unmapped the tail: the VMA
    at [1, 3) loses its second page and the call returns old_addr."""
    sim, p = kernel_sim(era)
    sim.mmap(p, 2 * P, addr=pg(1))
    if ok:
        assert sim.mremap(p, pg(0), 3 * P, 2 * P, may_move=False) == pg(0)
        assert layout(sim, p) == [(1, 2, "rw")]
    else:
        with pytest.raises(rmapsim.BadAddress):
            sim.mremap(p, pg(0), 3 * P, 2 * P, may_move=False)
        assert layout(sim, p) == [(1, 3, "rw")]
    sim.check()


def test_kernel_mode_injected_failure_part_way_leaves_a_consistent_state():
    """mprotect over three faulted VMAs of three files (no merges): piece 1 splits A at
    1 (a VMA and a chain entry), piece 2 changes all of B, piece 3 must split C at 5 and its
    VMA allocation (the third) fails. The kernel returns ENOMEM with A's part and B changed
    (mprotect_fixup fails inside its loop); the state is consistent."""
    sim, p = kernel_sim()
    for n in (0, 2, 4):  # three files: no two VMAs merge or share an anon_vma
        sim.mmap(p, 2 * P, addr=pg(n), prot="rw", file=1 + n, offset=0)
        sim.touch(p, pg(n), 2 * P, write=True)
    assert len({v["anon_vma"] for v in sim.vmas(p)}) == 3
    sim.inject_enomem(nth=3)
    with pytest.raises(rmapsim.OutOfMemory):
        sim.mprotect(p, pg(1), 4 * P, "r")
    assert layout(sim, p) == [(0, 1, "rw"), (1, 2, "r"), (2, 4, "r"), (4, 6, "rw")]
    sim.check()


def _entries(sim, p):
    """p's populated entries by page number from BASE: "z" (zero page), "anon", "swap"."""
    names = {"zero": "z", "page": "anon", "swap": "swap"}
    return {(a - BASE) // P: names[k] for (q, a), k in entry_kinds(sim).items() if q == p}


@pytest.mark.parametrize("write", [False, True])
def test_kernel_mode_touch_faults_the_pages_before_the_hole(write):
    """A program's loop over [addr, addr+len) accesses the pages in address order; the
    first access with no VMA (lock_mm_and_find_vma fails: SIGSEGV) stops it, the pages
    before it faulted in (do_anonymous_page: the zero page for a read, a new anon page for a
    write). The live fuzzer's saved traces tests/data/validate-fuzz/touch-over-hole-*.trace
    show Linux 6.18 doing so (the driver catches the SIGSEGV and answers EFAULT). Strict
    mode faults nothing."""
    for holes, faulted in (("kernel", [1, 2, 3]), ("strict", [])):
        sim = rmapsim.Simulator("6.18", holes=holes)
        p = sim.spawn()
        sim.mmap(p, 4 * P, addr=pg(0))
        with pytest.raises(rmapsim.BadAddress, match=f"{pg(4):#x}"):
            sim.touch(p, pg(1), 6 * P, write=write)
        kind = "anon" if write else "z"
        assert _entries(sim, p) == {n: kind for n in faulted}
        sim.check()


def test_kernel_mode_touch_stops_at_a_vma_that_forbids_the_access():
    """access_error (arch/x86/mm/fault.c): a write to a read-only VMA is SIGSEGV there; the
    pages of the writable VMA before it are written, the VMA after it is not reached."""
    sim, p = kernel_sim()
    sim.mmap(p, 2 * P, addr=pg(0), prot="rw")
    sim.mmap(p, 2 * P, addr=pg(2), prot="r")
    sim.mmap(p, 2 * P, addr=pg(4), prot="rw")
    with pytest.raises(rmapsim.BadAddress, match="write fault"):
        sim.touch(p, pg(0), 6 * P, write=True)
    assert _entries(sim, p) == {0: "anon", 1: "anon"}
    # a read is allowed by r: the whole range is read
    sim.touch(p, pg(0), 6 * P, write=False)
    assert _entries(sim, p) == {0: "anon", 1: "anon", 2: "z", 3: "z", 4: "z", 5: "z"}
    sim.check()


def test_kernel_mode_touch_many_stops_at_the_first_process_that_faults():
    """touch_many is one touch per process in order: with holes="kernel" the first fault
    stops the call, the processes before it having faulted the whole range."""
    sim, p = kernel_sim()
    sim.mmap(p, 2 * P, addr=pg(0))
    a, b, c = sim.fork(p), sim.fork(p), sim.fork(p)
    sim.munmap(b, pg(1), P)
    with pytest.raises(rmapsim.BadAddress):
        sim.touch_many([a, b, c], pg(0), 2 * P, write=True)
    assert _entries(sim, a) == {0: "anon", 1: "anon"}
    assert _entries(sim, b) == {0: "anon"}
    assert _entries(sim, c) == {}
    sim.check()


def test_kernel_mode_madvise_refused_vma_after_a_hole_is_einval():
    """madvise_walk_vmas (mm/madvise.c 1651-1669): a hole first only records ENOMEM; the
    file VMA that MADV_WIPEONFORK refuses then returns EINVAL at once (the live fuzzer's
    wipeonfork-after-hole.trace, Linux 6.18). When the range starts inside the refused VMA
    nothing is split (wipeonfork-refused-first.trace: no vm_area_struct allocated)."""
    sim, p = kernel_sim()
    sim.mmap(p, 2 * P, addr=pg(4), file=2, offset=0)
    with pytest.raises(rmapsim.InvalidArgument, match="wipeonfork"):
        sim.madvise(p, pg(0), 6 * P, "wipeonfork")
    sim.mmap(p, 8 * P, addr=pg(10), file=2, offset=0x10000)
    before = sim.write_stats()["madvise"]
    with pytest.raises(rmapsim.InvalidArgument, match="wipeonfork"):
        sim.madvise(p, pg(16), 3 * P, "wipeonfork")
    after = sim.write_stats()["madvise"]
    assert after["ops"] == before["ops"] + 1 and after["vma_alloc"] == before["vma_alloc"] == 0
    assert layout(sim, p) == [(4, 6, "rw"), (10, 18, "rw")]
    sim.check()


def test_kernel_mode_madvise_refusing_a_vma_after_a_hole_is_einval():
    """madvise_walk_vmas: the hole's ENOMEM is only remembered (mm/madvise.c 1651-1658), the
    file VMA's EINVAL (MADV_WIPEONFORK, anonymous only) returns at once (1669-1671).
    validate-kernel --fuzz, seed 3: ``mmap +54 2p rw file; madvise +53 3p wipeonfork``."""
    Y = 0x4000_0000
    sim = rmapsim.Simulator(era="6.18", holes="kernel")
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=Y + P, file=2, offset=0)
    with pytest.raises(rmapsim.InvalidArgument, match="wipeonfork"):
        sim.madvise(p, Y, 3 * P, "wipeonfork")
    sim.mmap(p, P, addr=Y - P)
    with pytest.raises(rmapsim.InvalidArgument, match="wipeonfork"):
        sim.madvise(p, Y - P, 4 * P, "wipeonfork")  # a VMA, the hole, the file VMA
    assert "wipeonfork" in sim.vmas(p)[0]["flags"]  # the VMA before was done


def test_kernel_mode_madvise_refused_inside_the_first_vma_changes_nothing():
    """The refused VMA starts before the range: madvise_walk_vmas refuses it first, before
    any split (validate-kernel --fuzz, seed 2: ``madvise +43 1p wipeonfork`` inside a
    two-page file VMA)."""
    sim = rmapsim.Simulator(era="6.18", holes="kernel")
    p = sim.spawn()
    sim.mmap(p, 2 * P, addr=0x4000_0000, file=1, offset=0)
    before = sim.counts()
    with pytest.raises(rmapsim.InvalidArgument, match="wipeonfork"):
        sim.madvise(p, 0x4000_1000, P, "wipeonfork")
    assert len(sim.vmas(p)) == 1 and sim.counts() == before


def test_kernel_mode_ranges_beyond_the_user_address_space_are_holes():
    """is_valid_madvise (mm/madvise.c 1793-1812) checks only alignment and wrap-around, so
    a range reaching below mmap_min_addr or past TASK_SIZE is walked like any other: the
    VMA inside gets the advice, then ENOMEM for the holes. A user loop of accesses past
    TASK_SIZE faults the pages before it, then SIGSEGV. Strict mode refuses both first."""
    top = 0x7FFFFFFFF000
    for holes, done in (("kernel", True), ("strict", False)):
        sim = rmapsim.Simulator("6.18", holes=holes)
        p = sim.spawn()
        sim.mmap(p, 2 * P, addr=pg(0))
        sim.mmap(p, P, addr=top - P)
        with pytest.raises(rmapsim.BadAddress):
            sim.madvise(p, 0, pg(4), "dontfork")
        assert ("dontcopy" in sim.vmas(p)[0]["flags"]) == done
        with pytest.raises(rmapsim.BadAddress):
            sim.touch(p, top - P, 2 * P, write=True)
        assert (sim.page_at(p, top - P) is not None) == done
        sim.check()
    sim, p = kernel_sim()
    with pytest.raises(rmapsim.BadAddress, match="outside"):
        sim.madvise(p, 2**64 - P, 2 * P, "dontfork")  # wraps: EINVAL-like, refused first


def test_holes_argument_and_the_era_spec_must_agree():
    """holes= is sugar for the knob: given with an era spec or a policy that sets the knob
    to the other value, the call is refused rather than one silently winning."""
    assert rmapsim.Simulator("6.18+holes=kernel", holes="kernel").era == "6.18+holes=kernel"
    for kwargs in (
        dict(era="6.18+holes=kernel", holes="strict"),
        dict(era="6.0+fork_reuse=never,holes=strict", holes="kernel"),
        dict(era="6.18", policy={"holes": "strict"}, holes="kernel"),
    ):
        with pytest.raises(rmapsim.InvalidArgument, match="contradicts"):
            rmapsim.Simulator(**kwargs)
    with pytest.raises(rmapsim.InvalidArgument, match="holes"):
        rmapsim.Simulator("6.18", holes="lenient")
