"""validate-kernel --fuzz: delta debugging, the generator, the comparison and the report
with a simulator in place of the kernel (no kernel needed), and, when the live kernel is
usable here, a short live run, the exit-time frees seen per cgroup and the cleanup after
a signal."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmapsim import Simulator, trace
from rmapsim.cli import main
from rmapsim.tools.kernel import fuzz, fuzzcmp, fuzzgen, perf
from rmapsim.tools.kernel.fuzzcmp import Observation

ERA = "6.18"


# ----------------------------------------------------------------------------- ddmin


def test_ddmin_finds_a_planted_pair_and_keeps_the_fixed_items():
    calls = []

    def interesting(keep):
        calls.append(tuple(keep))
        return {3, 11}.issubset(keep)

    assert fuzz.ddmin(20, interesting) == [0, 3, 11]
    assert all(0 in c for c in calls)  # the fixed item is never dropped
    calls2 = []
    fuzz.ddmin(20, lambda k: calls2.append(tuple(k)) or {3, 11}.issubset(k))
    assert calls2 == calls  # deterministic: the same candidates in the same order


def test_ddmin_result_is_one_minimal_by_brute_force():
    """For random monotone predicates (some planted subset contained), removing any single
    non-fixed element of the result makes it uninteresting."""
    rng = random.Random(5)
    for _ in range(60):
        n = rng.randint(2, 14)
        planted = [set(rng.sample(range(1, n), rng.randint(1, min(3, n - 1)))) for _ in range(rng.randint(1, 3))]

        def interesting(keep, planted=planted):
            return any(p.issubset(keep) for p in planted)

        res = fuzz.ddmin(n, interesting)
        assert interesting(res) and res[0] == 0
        for x in res[1:]:
            assert not interesting([y for y in res if y != x]), (n, planted, res)


def test_renumber_follows_the_trace_runners_symbols():
    steps = [["spawn"], ["fork p1"], ["fork p1"], ["touch p3 0x1000 0x1000 w"], ["exec p2", "mmap p2 0x1000 0x1000 r"]]
    # Dropping the first fork: the second fork now creates p2, so p3's touch names p2.
    assert fuzz.renumber(steps, [0, 2, 3]) == [["spawn"], ["fork p1"], ["touch p2 0x1000 0x1000 w"]]
    # The process exec'd (the original p2) was created by the dropped step: not a candidate.
    assert fuzz.renumber(steps, [0, 2, 4]) is None
    assert fuzz.renumber(steps, [0, 3]) is None
    assert fuzz.renumber(steps, [0, 1, 4]) == [["spawn"], ["fork p1"], ["exec p2", "mmap p2 0x1000 0x1000 r"]]


# ----------------------------------------------------------------------------- the generator


def _gen(seed, ops=(10, 40), have=None):
    return fuzzgen.Generator(ERA, fuzzgen.DRIVER_IMAGE, seed, ops, have=have)


def test_same_seed_same_sequences_and_another_seed_differs():
    a = [_gen(3).sequence() for _ in range(1)]
    g1, g2, g3 = _gen(3), _gen(3), _gen(4)
    s1 = [g1.sequence() for _ in range(5)]
    assert s1 == [g2.sequence() for _ in range(5)]
    assert s1[0] == a[0]
    assert s1 != [g3.sequence() for _ in range(5)]


def _covered(sim, pid, a, n):
    """Brute force: every page of [a, a+n) inside some VMA of pid."""
    vmas = sim.vmas(pid)
    return all(any(v["start"] <= p < v["end"] for v in vmas) for p in range(a, a + n, 4096))


def test_op_mix_bounds_and_no_range_over_a_hole_in_the_strict_mode():
    """Every kind of the mix appears over 40 sequences, operation counts stay within
    --ops, every step parses, and (strict mode) no range operation but mremap touches an
    unmapped page (checked by replaying on a fresh simulator, page by page)."""
    g = _gen(11, ops=(10, 20))
    words = set()
    for _ in range(40):
        steps = g.sequence()
        assert steps[0][0] == "spawn" and 11 <= len(steps) <= 21
        sim, syms = Simulator(ERA), []
        for st in steps:
            tok = st[0].split()
            words.add(tok[0] + (" file" if tok[0] == "mmap" and "file" in tok else ""))
            if tok[0] in ("munmap", "mprotect", "madvise", "touch"):
                pid = syms[int(tok[1][1:]) - 1]
                assert _covered(sim, pid, int(tok[2], 0), int(tok[3], 0)), st[0]
            _s, _v, _m, syms = sim._apply_from(trace.rows(trace.parse("# rmapsim trace v1\n" + "\n".join(st))), syms)
    want = {"spawn", "fork", "exit", "exec", "mmap", "mmap file", "munmap", "mprotect", "madvise", "mremap"}
    assert want | {"touch", "brk"} <= words


def test_features_follow_what_the_trace_parser_takes(monkeypatch):
    have = fuzzgen.features()
    assert "advice:pageout" in have and "advice:dontneed" in have
    assert "advice:nosuchadvice" not in have
    # A feature whose line the parser refuses stays out of the mix ...
    monkeypatch.setattr(fuzzgen, "_parses", lambda line: not line.startswith("madvise"))
    assert not any(f.startswith("advice:") for f in fuzzgen.features())
    # ... and one it takes joins it.
    g = _gen(1, have=frozenset({"mlock", "advice:pageout"}))
    assert "mlock" in g.kinds and "munlock" not in g.kinds and g.advice.count("pageout") == 3


def test_image_lines_mirror_the_driver_and_parse():
    lines = fuzzgen.image_lines(fuzzgen.DRIVER_IMAGE, 1)
    trace.parse("# rmapsim trace v1\nspawn\n" + "\n".join(lines) + "\n")
    assert "brkbase p1 0x4b1000" in lines and "brk p1 0x4d3000" in lines
    # RELRO: the two pieces of the data segment are one mmap, then split by mprotect.
    assert "mmap p1 0x4a3000 0x7000 rw file 1001 0xa2000" in lines
    assert "mprotect p1 0x4a3000 0x4000 r" in lines
    assert "madvise p1 0x7ffff7ff7000 0x4000 dontdump" in lines  # [vvar] has VM_DONTDUMP


def test_an_exec_under_memory_merge_mirrors_an_unmergeable_stack():
    """exec keeps MMF_VM_MERGE_ANY, so the loader's mmaps (the mirror's) get VM_MERGEABLE,
    but 6.18's create_init_stack_vma (mm/vma_exec.c 107-161) sets the stack's flags itself,
    without ksm_vma_flags: the live run showed no "mg" on [stack] after such an exec
    (validate-kernel --fuzz seed 2, class 'exec: own_vmas')."""
    plain = fuzzgen.image_lines(fuzzgen.DRIVER_IMAGE, 1)
    merged = fuzzgen.image_lines(fuzzgen.DRIVER_IMAGE, 1, merge_any=True)
    assert merged[: len(plain)] == plain  # the same mirror, one line more
    assert merged[len(plain) :] == ["madvise p1 0x7ffffffde000 0x21000 unmergeable"]
    sim = Simulator(era="6.18")
    text = "# rmapsim trace v1\nspawn\nmemory_merge p1 on\nexec p1\n" + "\n".join(merged) + "\n"
    assert sim.apply(text, check_each=True).errors() == []
    flags = {v["start"]: v["flags"] for v in sim.vmas(1)}
    assert "mergeable" not in flags[0x7FFFFFFDE000] and "mergeable" in flags[0x400000]


# ----------------------------------------------------------------------------- the comparison


def _obs(**kw):
    return Observation(("ok", 0), **kw)


def test_kernel_errno_maps_to_the_agreed_classes():
    assert fuzzcmp.kernel_result("munmap", 0, errno.ENOMEM) == ("BadAddress",)
    # docs/api-contract.md: mremap growing without room and may_move=False -> OutOfMemory
    assert fuzzcmp.kernel_result("mremap", -1, errno.ENOMEM) == ("OutOfMemory",)
    assert fuzzcmp.kernel_result("touch", -1, errno.EFAULT) == ("BadAddress",)
    assert fuzzcmp.kernel_result("mprotect", -1, errno.EINVAL) == ("InvalidArgument",)
    assert fuzzcmp.kernel_result("mmap", -1, errno.EEXIST) == ("AlreadyMapped",)
    assert fuzzcmp.kernel_result("mmap", -1, errno.EAGAIN) == ("TryAgain",)
    assert fuzzcmp.kernel_result("touch", -1, errno.EIO) == ("errno EIO",)
    assert fuzzcmp.kernel_result("mmap", 0x1000, 0) == ("ok", 0x1000)
    assert fuzzcmp.kernel_result("mprotect", 5, 0) == ("ok", 0)  # only mmap/mremap/brk values


def test_fault_around_entries_in_file_vmas_only_are_tolerated():
    file_vma = (0x2000, 0x6000, "r", (), 1, 0)
    anon_vma = (0x8000, 0x9000, "rw", ("ac",), None, None)
    k = _obs(vmas={1: (file_vma, anon_vma)}, pages={(1, 0x2000): "z", (1, 0x3000): "z"})
    s = _obs(vmas={1: (file_vma, anon_vma)}, pages={(1, 0x2000): "z"})
    assert fuzzcmp.compare(k, s) == ([], 1)
    k = _obs(vmas={1: (file_vma, anon_vma)}, pages={(1, 0x8000): "z"})
    s = _obs(vmas={1: (file_vma, anon_vma)}, pages={})
    assert fuzzcmp.compare(k, s) == (["pages"], 0)


def test_lock_and_ksm_flags_are_not_compared_on_the_special_mappings():
    """mlock_fixup skips VM_SPECIAL VMAs and vma_ksm_compatible refuses them, so the kernel
    never shows lo/lf/mg on [vvar]/[vdso]; the mirror's plain file mappings may have them."""
    vdso = fuzzgen.SPECIAL_FILES["[vdso]"]
    k_rows = {1: [(0x7FFFF7FFD000, 0x7FFFF7FFF000, "rx", (), vdso, 0), (0x400000, 0x401000, "r", (), 1001, 0)]}
    s_rows = {
        1: [(0x7FFFF7FFD000, 0x7FFFF7FFF000, "rx", ("lo", "mg"), vdso, 0), (0x400000, 0x401000, "r", ("lo",), 1001, 0)]
    }
    _, k_own = fuzzcmp._group_rows(k_rows)
    _, s_own = fuzzcmp._group_rows(s_rows)
    assert k_own[1][0] == s_own[1][0]  # the vdso: lo and mg dropped
    assert k_own[1][1] != s_own[1][1]  # the image's own text: still compared


def test_pte_entries_name_each_populated_entry():
    """_pte_entries against a hand-built state: a read fault maps the zero page (kind 1),
    a write fault an anon page (2, its handle), MADV_PAGEOUT of an exclusive page leaves a
    swap entry (3, its slot); untouched pages have no entry; a fork copies the entries."""
    sim, base = Simulator(ERA), fuzzgen.REGION
    p = sim.spawn()
    sim.mmap(p, 0x4000, base, "rw")
    sim.touch(p, base, 0x1000, False)
    sim.touch(p, base + 0x1000, 0x2000, True)
    sim.madvise(p, base + 0x2000, 0x1000, "pageout")
    pids, addrs, kinds, values = sim._pte_entries()
    rows = list(zip(pids.tolist(), addrs.tolist(), kinds.tolist()))
    assert rows == [(p, base, 1), (p, base + 0x1000, 2), (p, base + 0x2000, 3)]
    assert values.tolist()[1] == sim.page_at(p, base + 0x1000)
    c = sim.fork(p)
    pids, addrs, kinds, values = sim._pte_entries()
    assert sorted(zip(pids.tolist(), addrs.tolist(), kinds.tolist(), values.tolist())) == sorted(
        [(q, a, k, v) for q in (p, c) for (_, a, k), v in zip(rows, values.tolist()[:3])]
    )


def test_sharing_and_mapcount_do_not_depend_on_pfns():
    a = Observation(("ok", 0), sharing=fuzzcmp._sharing({(1, 0x1000): ("anon", 77), (2, 0x1000): ("anon", 77)}))
    b = Observation(("ok", 0), sharing=fuzzcmp._sharing({(1, 0x1000): ("anon", 5), (2, 0x1000): ("anon", 5)}))
    c = Observation(("ok", 0), sharing=fuzzcmp._sharing({(1, 0x1000): ("anon", 5), (2, 0x1000): ("anon", 6)}))
    assert fuzzcmp.compare(a, b)[0] == [] and fuzzcmp.compare(a, c)[0] == ["sharing"]


# ----------------------------------------------------------------------------- fake kernels


def _steps(text):
    """A saved trace's steps: each operation with the image lines that follow spawn/exec
    (the image's lines are the only ones below the fuzzed region)."""
    steps = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        tok = line.split()
        image = len(tok) > 2 and tok[0] in ("mmap", "touch", "mprotect", "madvise", "brk", "brkbase")
        if image and not fuzzgen.OBSERVED[0] <= int(tok[2], 0) < fuzzgen.OBSERVED[1] and steps:
            steps[-1].append(line)
        else:
            steps.append([line])
    return steps


def test_the_same_era_in_place_of_the_kernel_agrees_everywhere():
    rep = fuzz.fuzz(fuzz.SimAsKernel(ERA), fuzzgen.DRIVER_IMAGE, 30, 2, (10, 30), ERA, False)
    assert rep.sequences == 30 and not rep.divergences
    assert all(c.seq_diverge == 0 and c.ops_agree == rep.steps for c in rep.dims.values())


def _plant_mprotect_vma(obs, lines):
    """A planted kernel difference: every mprotect allocates one more vm_area_struct."""
    if lines[0].startswith("mprotect") and obs.objects is not None:
        obs.objects["vm_area_struct_alloc"] += 1


def test_a_planted_difference_is_found_minimised_saved_and_replays(tmp_path):
    kernel = fuzz.SimAsKernel(ERA, _plant_mprotect_vma)
    rep = fuzz.fuzz(kernel, fuzzgen.DRIVER_IMAGE, 8, 1, (10, 30), ERA, False, out_dir=tmp_path, saved_per_class=1)
    assert rep.divergences and set(rep.classes) == {"mprotect: objects"}
    assert rep.dims["objects"].seq_diverge == len(rep.divergences)
    assert all(rep.dims[d].seq_diverge == 0 for d in fuzzcmp.DIMENSIONS if d != "objects")
    first = rep.divergences[0]
    text = Path(first["trace"]).read_text()
    assert "# era 6.18" in text and "first difference at trace line" in text
    assert "vm_area_struct_alloc: kernel " in text and "rmapsim " in text
    steps = _steps(text)
    n = int(text.split("first difference at trace line ")[1].split(":")[0])
    assert text.splitlines()[n - 1] == steps[-1][0]  # the line number names the operation
    assert steps[-1][0].startswith("mprotect") and steps[0] == ["spawn", *fuzzgen.image_lines(fuzzgen.DRIVER_IMAGE, 1)]
    assert first["minimised_steps"] == len(steps) <= 5 < first["steps"]
    # 1-minimal, by brute force: without any one step the planted difference is gone (or
    # the rest names a process never created, or breaks the strict mode's rules).
    sim, gen = fuzz.SimulatorSide(ERA), fuzzgen.Generator(ERA, fuzzgen.DRIVER_IMAGE, 0, have=frozenset())
    assert fuzz.run_pair(kernel, sim, steps).dims == ["objects"]
    for drop in range(len(steps)):
        cand = fuzz.renumber(steps, [i for i in range(len(steps)) if i != drop])
        if cand is None or not gen.valid(cand):
            continue
        assert fuzz.run_pair(kernel, sim, cand).at is None, drop
    assert main(["replay", first["trace"], "--check"]) == 0
    assert rep.divergences[1].get("trace") is None  # one saved per class, the others counted


def test_another_era_in_place_of_the_kernel_shows_the_brk_vma_rule(capsys):
    """6.0's brk expands the VMA just below the heap (the bss) where 6.18 starts the brk
    VMA at start_brk: the mirrored image differs right after spawn, in own_vmas."""
    assert main(["validate-kernel", "--fuzz", "3", "--against", "6.0", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "3 x spawn: own_vmas" in out and "simulator 6.0 (--against) vs era 6.18" in out


def test_cli_json_lines(capsys):
    assert main(["validate-kernel", "--fuzz", "4", "--against", "6.0", "--json", "--quiet", "--seed", "2"]) == 1
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in recs] == ["divergence"] * 4 + ["summary"]
    s = recs[-1]
    assert s["sequences"] == 4 and s["diverging_sequences"] == 4 and s["seed"] == 2 and s["ops"] == [10, 40]
    assert set(s["dimensions"]) == set(fuzzcmp.DIMENSIONS)
    assert s["dimensions"]["own_vmas"] == {"seq_agree": 0, "seq_diverge": 4, "ops_agree": 0, "ops_diverge": 4}
    assert recs[0]["class"] == "spawn: own_vmas" and recs[0]["step"] == 0


def test_cli_usage_errors(capsys):
    for argv in (
        ["--fuzz", "0"],
        ["--fuzz", str(10**9 + 1)],  # refused before any work, not a run that never ends
        ["--fuzz", "3", "--seed", "-3"],  # random.Random(-3) would silently equal seed 3
        ["--fuzz", "3", "--seed", str(2**64)],
        ["--fuzz", "3", "--ops", "5..2"],
        ["--fuzz", "3", "--ops", "x"],
        ["--fuzz", "3", "--scenario", "fork"],
        ["--fuzz", "3", "--era", "6.0", "--era", "6.18"],
    ):
        try:
            rc = main(["validate-kernel", *argv, "--against", "6.18"])
        except SystemExit as e:  # argparse's own usage errors
            rc = e.code
        assert rc == 2, argv
        assert "rmapsim" in capsys.readouterr().err


def test_cli_fuzz_says_why_when_the_kernel_is_unusable(monkeypatch, capsys):
    monkeypatch.setattr(perf, "probe", lambda: "needs root (perf tracepoint counters and tracefs)")
    assert main(["validate-kernel", "--fuzz", "2"]) == 77
    assert "cannot be used here: needs root" in capsys.readouterr().err


def test_kernel_era_is_the_newest_preset_not_newer():
    known = ["2.6.33", "2.6.34-rc1", "2.6.34", "3.19", "6.0", "6.18"]
    assert fuzz.kernel_era("6.18.44-fc-v1300", known) == "6.18"
    assert fuzz.kernel_era("6.5.0-21-generic", known) == "6.0"
    assert fuzz.kernel_era("2.6.34-rc3", known) == "2.6.34-rc1"
    assert fuzz.kernel_era("7.2.1", known) == "6.18"


# ----------------------------------------------------------------------------- live


def _live_why():
    why = perf.probe()
    if why:
        return why
    from rmapsim.tools.kernel.live import cgroup2_root

    return None if cgroup2_root() else "no cgroup v2"


LIVE = _live_why()


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
def test_live_exit_frees_are_counted_per_cgroup():
    """The frees exit_mmap makes are seen: exiting a process frees exactly as many
    vm_area_structs as its smaps lists VMAs (what per-task inherited counters miss on 6.18)."""
    from rmapsim.tools.kernel.live import LiveKernel, build_serve, parse_smaps_flags

    with perf.tracefs() as tfs:
        with LiveKernel(build_serve(), perf._event_ids(tfs), perf.filters(), fuzzgen.OBSERVED) as k:
            k.run("spawn")
            assert k.run("mmap p1 0x200000000000 0x3000 rw") == (0x200000000000, 0)
            assert k.run("touch p1 0x200000000000 0x3000 w") == (0, 0)
            assert k.run("mprotect p1 0x200000001000 0x1000 r") == (0, 0)
            vmas = parse_smaps_flags(Path(f"/proc/{k.procs[1].pid}/smaps").read_text())
            before = k.counts()
            assert k.run("exit p1") == (0, 0)
            after = k.counts()
    assert after["vm_area_struct_free"] - before["vm_area_struct_free"] == len(vmas)
    assert after["vm_area_struct_alloc"] == before["vm_area_struct_alloc"]


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
def test_live_short_run(tmp_path, capsys):
    rc = main(["validate-kernel", "--fuzz", "8", "--seed", "1", "--ops", "10..15", "--json", "--quiet"])
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    s = recs[-1]
    assert rc == (1 if s["diverging_sequences"] else 0)
    assert s["sequences"] == 8 and s["kernel"].startswith("live kernel ")
    assert s["dimensions"]["own_vmas"]["seq_diverge"] == 0  # the mirror of the driver holds
    assert s["steps"] >= 8 * 2


def _driver_processes():
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if "kserve-" in os.readlink(d / "exe"):
                    out.append(int(d.name))
            except OSError:
                pass
    return out


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_live_signal_mid_run_leaves_nothing_behind(sig, status):
    from rmapsim.tools.kernel.live import cgroup2_root

    root = cgroup2_root()
    assert not _driver_processes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmapsim", "validate-kernel", "--fuzz", "100000", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (_driver_processes() and list(root.glob(f"rmapsim-fuzz-{proc.pid}-*"))):
        time.sleep(0.05)
    time.sleep(0.5)  # mid-run
    assert _driver_processes() and list(root.glob(f"rmapsim-fuzz-{proc.pid}-*"))
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert b"cleaned up" in err
    assert not list(root.glob(f"rmapsim-fuzz-{proc.pid}-*"))
    assert not Path(f"/tmp/rmapsim-swap-{proc.pid}").exists()
    swaps = Path("/proc/swaps").read_text().splitlines()
    assert not any(line.split()[:1] == [f"/tmp/rmapsim-swap-{proc.pid}"] for line in swaps)
    assert not _driver_processes()
    assert not list(Path("/tmp").glob("rmapsim-fuzz-*"))  # the mapped files' directory


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
def test_live_driver_runs_the_operations_rmapsim_is_gaining():
    """The driver side of mlock/mlock2(MLOCK_ONFAULT)/munlock/mlockall/munlockall, MAP_LOCKED,
    MAP_FIXED_NOREPLACE, MREMAP_DONTUNMAP, PR_SET_MEMORY_MERGE and MADV_FREE, checked on the
    kernel's own rules (6.18): mlock_fixup sets VM_LOCKED ("lo") and populate_vma_page_range
    write-faults a private writable range; MLOCK_ONFAULT adds VM_LOCKONFAULT ("lf") and
    populates nothing; MAP_FIXED_NOREPLACE over a mapping is EEXIST (mm/mmap.c do_mmap);
    MREMAP_DONTUNMAP keeps the source VMA, emptied (mm/mremap.c); PR_SET_MEMORY_MERGE marks
    every eligible VMA VM_MERGEABLE ("mg", ksm_enable_merge_any)."""
    from rmapsim.tools.kernel.live import LiveKernel, build_serve

    base = fuzzgen.REGION
    with perf.tracefs() as tfs:
        with LiveKernel(build_serve(), perf._event_ids(tfs), perf.filters(), fuzzgen.OBSERVED) as k:

            def region(vmas_of=1):
                st = k.observe()
                vm = {v.start: v for v in st.vmas[vmas_of] if fuzzgen.OBSERVED[0] <= v.start < fuzzgen.OBSERVED[1]}
                return vm, st.pages

            k.run("spawn")
            assert k.run(f"mmap p1 {base:#x} 0x2000 rw") == (base, 0)
            assert k.run(f"mlock p1 {base:#x} 0x2000") == (0, 0)
            vm, pages = region()
            assert "lo" in vm[base].flags and "lf" not in vm[base].flags
            assert pages[(1, base)].kind == pages[(1, base + 0x1000)].kind == "anon"
            assert k.run(f"mmap p1 {base + 0x4000:#x} 0x2000 rw") == (base + 0x4000, 0)
            assert k.run(f"mlock p1 {base + 0x4000:#x} 0x2000 onfault") == (0, 0)
            vm, pages = region()
            assert {"lo", "lf"} <= vm[base + 0x4000].flags and (1, base + 0x4000) not in pages
            assert k.run(f"munlock p1 {base:#x} 0x2000") == (0, 0)
            assert "lo" not in region()[0][base].flags
            assert k.run(f"mmap p1 {base + 0x8000:#x} 0x1000 rw locked") == (base + 0x8000, 0)
            vm, pages = region()
            assert "lo" in vm[base + 0x8000].flags and pages[(1, base + 0x8000)].kind == "anon"
            assert k.run(f"mmap p1 {base:#x} 0x1000 rw noreplace") == (-1, errno.EEXIST)
            assert k.run(f"mremap p1 {base:#x} 0x2000 0x2000 move {base + 0x10000:#x} dontunmap") == (
                base + 0x10000,
                0,
            )
            vm, pages = region()
            assert base in vm and (1, base) not in pages and pages[(1, base + 0x10000)].kind == "anon"
            assert k.run("munlockall p1") == (0, 0)
            assert not any("lo" in v.flags for v in region()[0].values())
            assert k.run("mlockall p1 current future") == (0, 0)
            assert all("lo" in v.flags for v in region()[0].values())
            assert k.run("munlockall p1") == (0, 0)
            assert k.run("memory_merge p1 on") == (0, 0)
            assert all("mg" in v.flags for v in region()[0].values())
            assert k.run(f"madvise p1 {base + 0x10000:#x} 0x1000 free") == (0, 0)
            assert k.run(f"madvise p1 {base + 0x10000:#x} 0x1000 unmergeable") == (0, 0)
            assert "mg" not in region()[0][base + 0x10000].flags


SAVED = sorted((Path(__file__).parent.parent / "data" / "validate-fuzz").glob("*.trace"))


def _recorded_sides(text):
    """The both-sides block of a saved trace's header: {dimension: {key: (kernel, rmapsim)}},
    key None for a dimension printed as a whole (``result``)."""
    out, dim, key, kernel = {}, None, None, None
    for line in text.splitlines():
        if not line.startswith("#   "):
            continue
        body = line[2:]
        if body.startswith("  ") and not body.startswith("    "):
            dim = body.strip().rstrip(":")
            out[dim] = {}
        elif body.strip().startswith("kernel  "):
            kernel, key = body.strip()[len("kernel  ") :], None
        elif body.strip().startswith("rmapsim ") and ": " not in body:
            out[dim][key] = (kernel, body.strip()[len("rmapsim ") :])
        elif ": kernel " in body:
            key, kernel = body.strip().split(": kernel ", 1)
        else:
            out[dim][key] = (kernel, body.strip()[len("rmapsim ") :])
    return out


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_saved_divergences_now_give_the_kernels_answer(path):
    """Each saved divergence of a live run, replayed on the simulator of its header's era,
    now gives what the kernel gave at the operation that differed: the kernel's side of
    its header, recorded on Linux 6.18, is the oracle. (Each was a model error, fixed:
    the merge that keeps next, the shrinking move, page-cache pageout, MADV_FREE's
    reclaim, touch and madvise over holes.)"""
    text = path.read_text()
    spec = text.splitlines()[1].split("# era ", 1)[1]
    if "holes=" not in spec:
        # a strict-mode run (before the knob): the kernel's answer is the kernel mode's
        spec += "+holes=kernel"
    n = int(text.split("first difference at trace line ")[1].split(":")[0])
    op = text.splitlines()[n - 1]
    steps = _steps(text)
    # the step whose operation is trace line n: count the operation lines before it
    before = _steps("\n".join(text.splitlines()[: n - 1]))
    at = len(before)
    assert steps[at][0] == op
    side = fuzz.SimulatorSide(spec)
    for st in steps[:at]:
        side.step(st)
    obs = side.step(steps[at])
    sides = _recorded_sides(text)
    assert sides, "no both-sides block in the header"
    for dim, entries in sides.items():
        got = obs.dim(dim)
        for key, (kernel, _old) in entries.items():
            if key is None:
                assert fuzzcmp._fmt(got) == kernel, (dim, got)
            else:
                value = {fuzzcmp._key(k): v for k, v in got.items()}.get(key)
                assert fuzzcmp._fmt(value) == kernel, (dim, key, value)


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_saved_divergences_of_the_live_runs_replay(path, capsys):
    """The minimised divergences of the live runs in docs/validation.md (one per class)
    replay in the simulator with no invariant violation, and their header names the trace
    line of the operation."""
    text = path.read_text()
    n = int(text.split("first difference at trace line ")[1].split(":")[0])
    op = text.splitlines()[n - 1]
    assert op == text.split("first difference at trace line ")[1].split(": ", 1)[1].split("  (")[0]
    assert main(["replay", str(path), "--check"]) == 0
    assert "no invariant violation" in capsys.readouterr().out
