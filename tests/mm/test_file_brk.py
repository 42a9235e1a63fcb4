"""Private file mappings (ELF text/data) and brk, the pieces real address spaces need."""

from __future__ import annotations

import pytest

import rmapsim
from rmapsim import trace

PAGE = 4096
ERAS = rmapsim.eras()


@pytest.fixture(params=["2.6.33", "2.6.34", "3.19", "6.18"])
def sim(request):
    return rmapsim.Simulator(era=request.param)


def spans(sim, pid):
    return [(v["start"], v["end"], v["pgoff"], v["file"]) for v in sim.vmas(pid)]


def test_file_mapping_pgoff_is_the_file_offset(sim):
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, 0x400000, "rx", file=7, offset=0x3000)
    assert spans(sim, p) == [(0x400000, 0x402000, 3, 7)]


def test_file_mappings_merge_only_with_the_same_file_at_the_next_offset(sim):
    p = sim.spawn()
    sim.mmap(p, PAGE, 0x400000, "r", file=1, offset=0)
    sim.mmap(p, PAGE, 0x401000, "r", file=1, offset=PAGE)  # contiguous: merges
    assert spans(sim, p) == [(0x400000, 0x402000, 0, 1)]
    sim.mmap(p, PAGE, 0x402000, "r", file=1, offset=5 * PAGE)  # offset gap: apart
    sim.mmap(p, PAGE, 0x403000, "r", file=2, offset=6 * PAGE)  # other file: apart
    sim.mmap(p, PAGE, 0x404000, "r")  # anonymous: apart
    assert [f for *_, f in spans(sim, p)] == [1, 1, 2, None]
    sim.check()


def test_write_to_a_private_file_page_makes_an_anon_page_at_the_file_index(sim):
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, 0x600000, "rw", file=3, offset=0x10000)
    sim.touch(p, 0x600000, PAGE, write=False)  # read: the page-cache page, not anonymous
    assert sim.page_at(p, 0x600000) is None and sim.counts()["page"] == 0
    sim.touch(p, 0x601000, PAGE, write=True)  # COW into an anon page of the VMA's anon_vma
    h = sim.page_at(p, 0x601000)
    info = sim.page_info(h)
    assert info["index"] == 0x10 + 1
    assert info["anon_vma"] == sim.vmas(p)[0]["anon_vma"] is not None
    c = sim.fork(p)
    st = sim.rmap_walk([h])
    assert int(st.mappings_found[0]) == 2
    sim.exit(c)
    sim.check()


def test_file_argument_errors():
    sim = rmapsim.Simulator()
    p = sim.spawn()
    with pytest.raises(rmapsim.InvalidArgument, match="file must be an int from 1 to 4294967295, got 0"):
        sim.mmap(p, PAGE, 0x400000, "r", file=0)
    with pytest.raises(rmapsim.InvalidArgument, match="offset given without file"):
        sim.mmap(p, PAGE, 0x400000, "r", offset=0)
    with pytest.raises(rmapsim.InvalidArgument, match="page aligned"):
        sim.mmap(p, PAGE, 0x400000, "r", file=1, offset=100)
    with pytest.raises(
        rmapsim.InvalidArgument, match="offset must be an int from 0 to 18446744073709551615, got -4096"
    ):
        sim.mmap(p, PAGE, 0x400000, "r", file=1, offset=-PAGE)
    with pytest.raises(rmapsim.InvalidArgument, match="file must be an int"):
        sim.mmap(p, PAGE, 0x400000, "r", file="libc.so")
    assert sim.vmas(p) == []


def test_wipeonfork_needs_anonymous_memory():
    sim = rmapsim.Simulator(era="6.18")
    p = sim.spawn()
    sim.mmap(p, PAGE, 0x400000, "rw", file=1)
    with pytest.raises(rmapsim.InvalidArgument, match="maps file 1"):
        sim.madvise(p, 0x400000, PAGE, "wipeonfork")
    assert sim.vmas(p)[0]["flags"] == ["account"]


def test_vm_account_keeps_a_once_writable_range_apart(sim):
    """VM_ACCOUNT: rw -> r keeps the charge of a faulted range, so it does not merge with a
    neighbour mapped read-only from the start (they differ in vm_flags); two once-writable
    ranges do merge."""
    p = sim.spawn()
    sim.mmap(p, PAGE, 0x400000, "r")
    sim.mmap(p, PAGE, 0x401000, "rw")
    sim.touch(p, 0x401000, PAGE)
    sim.mprotect(p, 0x401000, PAGE, "r")
    assert len(sim.vmas(p)) == 2
    sim.mmap(p, PAGE, 0x402000, "rw")
    sim.mprotect(p, 0x402000, PAGE, "r")
    vs = [(v["start"], v["end"]) for v in sim.vmas(p)]
    if sim.era == "6.18":
        # 6.7+: the unfaulted range is uncharged by its mprotect, so it no longer matches
        # the faulted, still charged range before it
        assert vs == [(0x400000, 0x401000), (0x401000, 0x402000), (0x402000, 0x403000)]
    else:
        assert vs == [(0x400000, 0x401000), (0x401000, 0x403000)]
    sim.check()


@pytest.mark.parametrize("era", ["6.0", "6.18"])
def test_mprotect_uncharges_an_unfaulted_anonymous_range_from_6_7(era):
    """6.7's mprotect_fixup: making an anonymous VMA without anon_vma read-only drops
    VM_ACCOUNT, so it merges with a never-writable neighbour (seen on the live 6.18 kernel:
    r-- anon + an unfaulted rw-- page mprotected r-- -> one VMA). Before 6.7 it stays apart.
    A faulted range, or a file mapping, keeps the charge in every era."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 3 * PAGE, 0x400000, "r")
    sim.mmap(p, PAGE, 0x403000, "rw")
    sim.mprotect(p, 0x403000, PAGE, "r")
    vs = sim.vmas(p)
    if era == "6.18":
        assert [(v["start"], v["end"], v["flags"]) for v in vs] == [(0x400000, 0x404000, [])]
    else:
        assert [(v["start"], v["end"]) for v in vs] == [(0x400000, 0x403000), (0x403000, 0x404000)]
        assert vs[1]["flags"] == ["account"]
    sim.mmap(p, PAGE, 0x500000, "rw", file=1)
    sim.mprotect(p, 0x500000, PAGE, "r")
    assert sim.vmas(p)[-1]["flags"] == ["account"]  # not anonymous: charged still
    sim.check()


def test_brk_grows_by_expanding_the_heap_and_shrinks_by_unmapping(sim):
    p = sim.spawn()
    assert sim.brk(p, 0x700000) == 0  # no base yet: the break stays (0)
    sim.set_brk_base(p, 0x600000)
    assert sim.brk_info(p) == (0x600000, 0x600000)
    assert sim.brk(p, 0x600800) == 0x600800  # unaligned break: one page mapped
    assert spans(sim, p) == [(0x600000, 0x601000, 0x600, None)]
    sim.touch(p, 0x600000, PAGE)
    av = sim.vmas(p)[0]["anon_vma"]
    a0 = sim.allocations()
    assert sim.brk(p, 0x604000) == 0x604000
    # do_brk_flags expands the heap VMA: no new VMA, anon_vma kept
    assert sim.allocations() == a0
    assert [(v["start"], v["end"], v["anon_vma"]) for v in sim.vmas(p)] == [(0x600000, 0x604000, av)]
    sim.touch(p, 0x600000, 4 * PAGE)
    assert sim.brk(p, 0x601000) == 0x601000
    assert [(v["start"], v["end"]) for v in sim.vmas(p)] == [(0x600000, 0x601000)]
    assert sim.counts()["page"] == 1
    assert sim.brk(p, 0x5FF000) == 0x601000  # below the base: refused, old break returned
    sim.check()


def test_brk_refuses_to_grow_into_a_mapping(sim):
    p = sim.spawn()
    sim.set_brk_base(p, 0x600000)
    sim.mmap(p, PAGE, 0x604000, "r")
    # the heap must end at least a page below the next mapping
    assert sim.brk(p, 0x603001) == 0x600000  # PAGE_ALIGN: would end right at the mapping
    assert sim.brk(p, 0x603000) == 0x603000
    assert sim.brk(p, 0x700000) == 0x603000
    assert [(v["start"], v["end"]) for v in sim.vmas(p)] == [(0x600000, 0x603000), (0x604000, 0x605000)]


def test_fork_copies_the_break_and_exec_resets_it(sim):
    p = sim.spawn()
    sim.set_brk_base(p, 0x600000)
    sim.brk(p, 0x602000)
    c = sim.fork(p)
    assert sim.brk_info(c) == (0x600000, 0x602000)
    sim.exec(c)
    assert sim.brk_info(c) == (0, 0)
    with pytest.raises(rmapsim.InvalidArgument, match="already has a brk base 0x600000"):
        sim.set_brk_base(p, 0x800000)
    with pytest.raises(rmapsim.NoSuchProcess):
        sim.brk(99, 0x600000)


def test_trace_ops_roundtrip_and_apply():
    text = (
        "# rmapsim trace v1\nspawn\nmmap p1 0x400000 0x2000 rx file 3 0x1000\n"
        "brkbase p1 0x600000\nbrk p1 0x603000\ntouch p1 0x600000 0x3000 w\nfork p1\nbrk p2 0x601000\ncheck\n"
    )
    ops = trace.parse(text)
    assert trace.format(ops).splitlines()[2] == "mmap p1 0x400000 0x2000 rx file 3 0x1000"
    assert (trace.parse(trace.format(ops)) == ops).all()
    sim = rmapsim.Simulator(era="6.18")
    res = sim.apply(ops, check_each=True)
    assert res.errors() == [] and res.violation() is None
    assert [int(v) for v in res.value[3:5]] == [0x603000, 0]
    assert sim.brk_info(2) == (0x600000, 0x601000)
    assert sim.vmas(1)[0]["pgoff"] == 1 and sim.vmas(1)[0]["file"] == 3
    with pytest.raises(
        rmapsim.InvalidArgument,
        match='line 2: expected "file", "noreserve", "stack", "noreplace", "locked" or end of line',
    ):
        trace.parse("# rmapsim trace v1\nmmap p1 0x400000 0x2000 rx fil 3 0\n")


# ------------------------------------------------------------------ random sequences

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BASE = 0x40000000
_op = st.one_of(
    st.tuples(
        st.just("mmap"),
        st.integers(0, 15),
        st.integers(1, 4),
        st.sampled_from(["r", "rw", "rx", "none"]),
        st.sampled_from([None, 1, 2]),
        st.integers(0, 6),
    ),
    st.tuples(st.just("touch"), st.integers(0, 15), st.integers(1, 4)),
    st.tuples(st.just("mprotect"), st.integers(0, 15), st.integers(1, 4), st.sampled_from(["r", "rw", "none"])),
    st.tuples(st.just("munmap"), st.integers(0, 15), st.integers(1, 4)),
    st.tuples(st.just("brk"), st.integers(0, 8)),
    st.tuples(
        st.just("fork"),
    ),
    st.tuples(
        st.just("exit"),
    ),
    st.tuples(st.just("mremap"), st.integers(0, 15), st.integers(1, 3), st.integers(1, 5), st.integers(16, 30)),
)


@settings(max_examples=150, deadline=None)
@given(era=st.sampled_from(["2.6.33", "2.6.34", "3.8", "6.18"]), ops=st.lists(_op, min_size=1, max_size=40))
def test_random_file_and_brk_sequences_keep_every_invariant(era, ops):
    """File mappings, brk and the VMA operations mixed at random: every call either
    succeeds or raises a documented rmapsim error, and check() (the brute-force rmap oracle
    included) holds after each one."""
    sim = rmapsim.Simulator(era=era)
    procs = [sim.spawn()]
    sim.set_brk_base(procs[0], _BASE + 0x100000)
    for op in ops:
        p = procs[-1]
        try:
            if op[0] == "mmap":
                _, slot, n, prot, f, off = op
                if f is None:
                    sim.mmap(p, n * PAGE, _BASE + slot * PAGE, prot)
                else:
                    sim.mmap(p, n * PAGE, _BASE + slot * PAGE, prot, file=f, offset=(off + slot) * PAGE)
            elif op[0] == "touch":
                sim.touch(p, _BASE + op[1] * PAGE, op[2] * PAGE, write=True)
            elif op[0] == "mprotect":
                sim.mprotect(p, _BASE + op[1] * PAGE, op[2] * PAGE, op[3])
            elif op[0] == "munmap":
                sim.munmap(p, _BASE + op[1] * PAGE, op[2] * PAGE)
            elif op[0] == "brk":
                sim.brk(p, _BASE + 0x100000 + op[1] * PAGE)
                sim.touch(p, _BASE + 0x100000, PAGE, write=True)
            elif op[0] == "fork":
                procs.append(sim.fork(p))
            elif op[0] == "exit" and len(procs) > 1:
                sim.exit(procs.pop())
            elif op[0] == "mremap":
                _, slot, old, new, dst = op
                sim.mremap(p, _BASE + slot * PAGE, old * PAGE, new * PAGE, may_move=True, new_addr=_BASE + dst * PAGE)
        except rmapsim.SimError as e:
            assert not isinstance(e, rmapsim.InvariantViolation), e
        sim.check()


def test_brk_expands_the_bss_below_the_heap_only_before_6_1(sim):
    """6.1+ do_brk_flags only expands brkvma = vma_prev_limit(start_brk): an anonymous bss
    that ends exactly at start_brk stays its own VMA (as a static binary's maps show on the
    live 6.18). Before 6.1, do_brk's vma_merge merged the heap into it."""
    p = sim.spawn()
    sim.mmap(p, 2 * PAGE, 0x4A7000, "rw")  # bss, ends at the heap base
    sim.touch(p, 0x4A7000, PAGE)
    sim.set_brk_base(p, 0x4A9000)
    assert sim.brk(p, 0x4AB000) == 0x4AB000
    spans = [(v["start"], v["end"]) for v in sim.vmas(p)]
    if sim.era == "6.18":
        assert spans == [(0x4A7000, 0x4A9000), (0x4A9000, 0x4AB000)]
        assert sim.brk(p, 0x4AC000) == 0x4AC000  # the heap itself is expanded
        assert [(v["start"], v["end"]) for v in sim.vmas(p)] == [(0x4A7000, 0x4A9000), (0x4A9000, 0x4AC000)]
    else:
        assert spans == [(0x4A7000, 0x4AB000)]
    sim.check()


def test_brk_shrink_over_an_unmapped_heap(sim):
    """6.1+ keeps the break when nothing is mapped in [newbrk, oldbrk); before, the break
    always moved."""
    p = sim.spawn()
    sim.set_brk_base(p, 0x600000)
    assert sim.brk(p, 0x603000) == 0x603000
    sim.munmap(p, 0x600000, 0x3000)
    want = 0x603000 if sim.era == "6.18" else 0x600000
    assert sim.brk(p, 0x600000) == want
    assert sim.brk_info(p) == (0x600000, want)


@pytest.mark.parametrize("era", ["6.0", "6.18"])
def test_mremap_grow_in_place_fails_whole_when_its_merge_fails(era):
    """6.1+ expand_vma_in_place: vma_merge_extend returning NULL (ENOMEM) fails the call and
    changes nothing; before (6.0 here), vma_adjust just moves the end."""
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    a = 0x10000000
    sim.mmap(p, PAGE, a, "rw")
    sim.mmap(p, PAGE, a + 2 * PAGE, "rw")
    sim.touch(p, a + 2 * PAGE, PAGE)
    before = sim.vmas(p)
    sim.inject_enomem(nth=1)
    if era == "6.18":
        with pytest.raises(rmapsim.OutOfMemory, match="vma_merge_extend failed"):
            sim.mremap(p, a, PAGE, 2 * PAGE, may_move=False)
        assert sim.vmas(p) == before
    else:
        assert sim.mremap(p, a, PAGE, 2 * PAGE, may_move=False) == a
    sim.inject_enomem()  # off again
    sim.check()


@pytest.mark.parametrize("era", ["2.6.34", "3.0", "3.8", "6.18"])
def test_thp_and_dump_advice_split_and_remerge(era):
    """MADV_HUGEPAGE/NOHUGEPAGE (2.6.38+) and MADV_DONTDUMP/DODUMP (3.4+) change vm_flags:
    the range splits off and merges back when the flags return; older eras say EINVAL."""
    has_thp, has_dump = era != "2.6.34", era in ("3.8", "6.18")
    for advice, ok in (("hugepage", has_thp), ("dontdump", has_dump)):
        sim = rmapsim.Simulator(era=era)
        p = sim.spawn()
        sim.mmap(p, 4 * PAGE, 0x400000, "rw")
        if not ok:
            with pytest.raises(rmapsim.InvalidArgument, match=f'advice "{advice}" is EINVAL in era {era}'):
                sim.madvise(p, 0x401000, PAGE, advice)
            continue
        sim.madvise(p, 0x401000, PAGE, advice)
        vs = sim.vmas(p)
        assert [(v["start"], v["end"]) for v in vs] == [
            (0x400000, 0x401000),
            (0x401000, 0x402000),
            (0x402000, 0x404000),
        ]
        assert advice in vs[1]["flags"]
        sim.madvise(p, 0x401000, PAGE, {"hugepage": "nohugepage", "dontdump": "dodump"}[advice])
        vs = sim.vmas(p)
        if advice == "hugepage":  # nohugepage replaces hugepage: still apart
            assert len(vs) == 3 and vs[1]["flags"] == ["account", "nohugepage"]
        else:  # dodump clears it: merged back
            assert [(v["start"], v["end"]) for v in vs] == [(0x400000, 0x404000)]
        sim.check()


@pytest.mark.parametrize("era", ["3.0", "3.7", "3.8", "3.19", "6.0", "6.18"])
@pytest.mark.parametrize("advice", ["hugepage", "nohugepage"])
def test_repeated_thp_advice_is_einval_until_4_4(era, advice):
    """hugepage_madvise refused advice whose flag the VMA already has (2.6.38 until 4.4,
    knob thp_advice_strict); from 4.4 the repeat is accepted. The refusal is per VMA, as
    sys_madvise visits them: a flagged VMA first in the range is EINVAL with nothing changed;
    one after an unflagged piece that merges with it (vma_merge's next, then
    `start = prev->vm_end`) is never visited, so the call succeeds; one that does not merge
    is EINVAL with the pieces before it already changed."""
    strict = era.startswith("3.")
    assert rmapsim.Policy.preset(era)["thp_advice_strict"] == ("true" if strict else "false")
    sim = rmapsim.Simulator(era=era)
    p = sim.spawn()
    sim.mmap(p, 4 * PAGE, 0x400000, "rw")
    sim.madvise(p, 0x402000, PAGE, advice)
    before = (sim.vmas(p), sim.operations())
    if strict:
        # the flagged VMA first: EINVAL, nothing changed
        with pytest.raises(rmapsim.InvalidArgument, match=f'advice "{advice}" is EINVAL in era {era}.*0x402000'):
            sim.madvise(p, 0x402000, 2 * PAGE, advice)
        assert sim.vmas(p) == before[0]
    # the flagged VMA after a mergeable unflagged piece: absorbed, never visited
    sim.madvise(p, 0x400000, 4 * PAGE, advice)
    vs = sim.vmas(p)
    assert len(vs) == 1 and advice in vs[0]["flags"]
    sim.check()
    if strict:
        # a flagged VMA that the piece before it cannot merge with (other prot): the piece
        # before keeps the flag it got, then EINVAL
        sim.mmap(p, 2 * PAGE, 0x500000, "rw")
        sim.mmap(p, 2 * PAGE, 0x502000, "r")
        sim.madvise(p, 0x502000, 2 * PAGE, advice)
        with pytest.raises(rmapsim.InvalidArgument, match="0x502000"):
            sim.madvise(p, 0x500000, 4 * PAGE, advice)
        vs = [v for v in sim.vmas(p) if v["start"] >= 0x500000]
        assert [(v["start"], v["end"], advice in v["flags"]) for v in vs] == [
            (0x500000, 0x502000, True),
            (0x502000, 0x504000, True),
        ]
        other = "nohugepage" if advice == "hugepage" else "hugepage"
        sim.madvise(p, 0x400000, 4 * PAGE, other)  # the other flag replaces it: accepted
        assert other in sim.vmas(p)[0]["flags"]
        sim.check()
