"""validate-kernel: the comparison logic on measurements recorded from a live 6.18 kernel
(tests/data/kernel-6.18-measurements.json, written by `rmapsim validate-kernel --save`), and
one small scenario for real when the live kernel is usable here."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import rmapsim
from rmapsim import kernel
from rmapsim.cli import Terminated, main, signals_raise

from helpers import DATA

DATA = DATA / "kernel-6.18-measurements.json"
RECORDS = json.loads(DATA.read_text())
BY_NAME = {r["scenario"]: r for r in RECORDS}

SMAPS = """\
00400000-00401000 r--p 00000000 fe:00 10092721                           /tmp/kd/kdriver
Size:                  4 kB
Anonymous:             0 kB
004a4000-004a8000 r--p 000a4000 fe:00 10092721                           /tmp/kd/kdriver
Anonymous:             8 kB
004a8000-004ab000 rw-p 000a8000 fe:00 10092721                           /tmp/kd/kdriver
Anonymous:            12 kB
004ab000-004b1000 rw-p 00000000 00:00 0 
Anonymous:            12 kB
7ffc8d5ce000-7ffc8d5ef000 rw-p 00000000 00:00 0                          [stack]
Anonymous:            20 kB
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Anonymous:             0 kB
"""


def test_recorded_file_covers_every_scenario():
    assert sorted(BY_NAME) == sorted(kernel.SCENARIOS)
    for r in RECORDS:
        assert sorted(int(s) for s in r["runs"]) == sorted(kernel.SCENARIOS[r["scenario"]].sizes)


def test_parse_smaps():
    m = kernel.parse_smaps(SMAPS)
    assert [(x.start, x.end, x.prot, x.offset, x.anonymous_kb) for x in m] == [
        (0x400000, 0x401000, "r", 0, 0),
        (0x4A4000, 0x4A8000, "r", 0xA4000, 8),
        (0x4A8000, 0x4AB000, "rw", 0xA8000, 12),
        (0x4AB000, 0x4B1000, "rw", 0, 12),
        (0x7FFC8D5CE000, 0x7FFC8D5EF000, "rw", 0, 20),
    ]  # [vsyscall] is not a VMA
    assert [x.is_file for x in m] == [True, True, True, False, False]


def test_mirror_relro_split_shares_the_data_segments_anon_vma():
    """RELRO (r, file, anon pages) + data (rw, same file, contiguous) come from one
    mapping split by mprotect, so they share an anon_vma; the anon bss beside the data
    segment is a different 'file' (none) and gets its own."""
    sim = rmapsim.Simulator(era="6.18")
    pid = kernel.mirror(sim, kernel.parse_smaps(SMAPS))
    vs = sim.vmas(pid)
    assert [(v["start"], v["end"]) for v in vs] == [
        (0x400000, 0x401000),
        (0x4A4000, 0x4A8000),
        (0x4A8000, 0x4AB000),
        (0x4AB000, 0x4B1000),
        (0x7FFC8D5CE000, 0x7FFC8D5EF000),
    ]
    assert vs[0]["anon_vma"] is None and vs[0]["file"] == 1
    assert vs[1]["anon_vma"] == vs[2]["anon_vma"] is not None
    assert vs[3]["anon_vma"] not in (None, vs[2]["anon_vma"]) and vs[3]["file"] is None
    # the RELRO piece was writable once: VM_ACCOUNT keeps it apart from a read-only
    # neighbour that never was (the loader's text/rodata)
    assert "account" in vs[1]["flags"] and "account" not in vs[0]["flags"]
    sim.check()


@pytest.mark.parametrize("name", sorted(kernel.SCENARIOS))
def test_recorded_kernel_agrees_with_6_18(name):
    res = kernel.compare(BY_NAME[name], "6.18")
    bad = [(r["cache"], r["kind"], r["measured_counts"], r["predicted_counts"]) for r in res["rows"] if not r["agree"]]
    assert res["agree"], bad


def test_chain_exit_separates_the_eras_with_anon_vma_reuse():
    """Without 3.19's anon_vma reuse, every generation of a chain whose parents exit
    allocates a fresh anon_vma per VMA: 2.6.34 disagrees with the live kernel, 6.0 agrees."""
    rec = BY_NAME["chain_exit"]
    assert kernel.compare(rec, "6.0")["agree"]
    old = kernel.compare(rec, "2.6.34")
    assert not old["agree"]
    av = next(r for r in old["rows"] if r["cache"] == "anon_vma" and r["kind"] == "alloc")
    assert av["measured"][0] == pytest.approx(0, abs=1e-9) and av["predicted"][0] == pytest.approx(6)


def test_a_perturbed_measurement_disagrees():
    rec = copy.deepcopy(BY_NAME["fork"])
    for n, counts in rec["runs"].items():
        counts["anon_vma_chain_alloc"] += int(n)  # one chain entry too many per child
    res = kernel.compare(rec, "6.18")
    assert not res["agree"]
    row = next(r for r in res["rows"] if r["cache"] == "anon_vma_chain" and r["kind"] == "alloc")
    assert row["measured"][0] == pytest.approx(row["predicted"][0] + 1)
    assert "DISAGREE" in kernel.format_comparison([res])


def test_pageout_walk_order_in_the_simulator():
    """The page only the first-forked child maps is found after 2 VMAs (parent, child 1);
    the one only the last child maps after N + 1: the interval tree visits VMAs in fork
    order. The recorded kernel run swapped both pages out."""
    rec = BY_NAME["pageout"]
    for n in (2, 5, 16):
        obs = kernel.predict([kernel.Mapping(**m) for m in rec["layout"]], "pageout", n, rec["pages"])["observed"]
        assert obs["walks"] == {0: [2], 1: [n + 1]}
        assert obs["swapped"] == {0: True, 1: True}
    assert rec["kernel_observed"]["swapped_all"] is True


def test_fit_is_least_squares():
    assert kernel.fit([1, 2, 4], [7, 13, 25], 1) == pytest.approx([6, 1])
    assert kernel.fit([1, 2, 3, 4], [1 + 2 + 3, 4 + 4 + 3, 9 + 6 + 3, 16 + 8 + 3], 2) == pytest.approx([1, 2, 3])


def test_cli_from_file(tmp_path, capsys):
    assert main(["validate-kernel", "--from", str(DATA), "--scenario", "fork", "--scenario", "chain_exit"]) == 0
    out = capsys.readouterr().out
    assert "chain_exit" in out and "every scenario agrees" in out
    assert main(["validate-kernel", "--from", str(DATA), "--scenario", "chain_exit", "--era", "2.6.34"]) == 1
    assert "DISAGREE" in capsys.readouterr().out
    assert main(["validate-kernel", "--from", str(DATA), "--json", "--scenario", "fork"]) == 0
    js = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in js] == ["comparison", "era_tally"]
    assert js[0]["scenario"] == "fork" and js[0]["agree"] is True
    assert js[1] == {
        "type": "era_tally",
        "era": "6.18",
        "kernel": RECORDS[0]["kernel"],
        "scenarios": 1,
        "scenarios_agree": 1,
        "scenarios_disagree": 0,
        "disagreeing": [],
    }


def test_cli_errors(tmp_path, capsys):
    assert main(["validate-kernel", "--scenario", "nope"]) == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["validate-kernel", "--from", str(bad)]) == 2
    assert "cannot read measurements" in capsys.readouterr().err
    assert main(["validate-kernel", "--list"]) == 0
    assert "pageout" in capsys.readouterr().out


def test_cli_says_why_when_the_kernel_is_unusable(monkeypatch, capsys):
    monkeypatch.setattr(kernel, "probe", lambda: "needs root (perf tracepoint counters and tracefs)")
    assert main(["validate-kernel", "--scenario", "fork"]) == kernel.EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert "cannot be measured here: needs root" in err


LIVE = kernel.probe()


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
def test_live_kernel_small_scenario():
    """One small scenario for real: the 6.18 prediction must match the kernel's counts."""
    recs = kernel.measure(["fork_cow"], sizes={"fork_cow": (1, 2, 3)})
    res = kernel.compare(recs[0], "6.18")
    assert res["agree"], [(r["cache"], r["kind"], r["measured_counts"], r["predicted_counts"]) for r in res["rows"]]
    av = next(r for r in res["rows"] if r["cache"] == "anon_vma" and r["kind"] == "alloc")
    assert av["measured"][0] >= 1  # every child allocates anon_vmas: the counters count


def test_recorded_pageout_timing_shows_the_fork_order_walk():
    """The live kernel's MADV_PAGEOUT of pages only the last-forked child maps gets slower
    linearly with the number of children before it (the walk visits them first), while
    the first child's pages cost the same at any N: the order the simulator's walk
    reports (2 visits vs N + 1)."""
    t = BY_NAME["pageout"]["kernel_observed"]["timing"]
    assert t["all_swapped"]
    assert t["last_r2"] > 0.95
    assert t["last_slope_ns_per_child"] > 20 * abs(t["first_slope_ns_per_child"])
    assert t["last_ns_per_page"][-1] > 5 * t["first_ns_per_page"][-1]
    text = kernel.format_comparison([kernel.compare(BY_NAME["pageout"])])
    assert "ns per extra VMA before it in fork order" in text


# ---------------------------------------------------------------------------------------
# Exit-time frees: measured by a probe, stored per record, used by compare
# ---------------------------------------------------------------------------------------


def test_old_records_without_the_probe_leave_exit_frees_out():
    rec = BY_NAME["fork"]
    old = {k: v for k, v in rec.items() if k != "exit_frees_counted"}
    res = kernel.compare(old, "6.18")
    assert res["agree"] and res["exit_frees_counted"] is False and res["exit_frees_measured"] is False
    assert "not measured" in kernel.exit_frees_line([old])


def test_exit_frees_flag_switches_the_prediction():
    """The fork scenario frees VMAs only at exit: with exit_frees_counted the prediction has
    them (and no longer matches a kernel that did not count them); a measurement that did
    count them agrees only when the record says so."""
    rec = copy.deepcopy(BY_NAME["fork"])
    rec["exit_frees_counted"] = False
    assert kernel.compare(rec, "6.18")["agree"]
    rec["exit_frees_counted"] = True
    res = kernel.compare(rec, "6.18")
    assert not res["agree"]
    vf = next(r for r in res["rows"] if r["cache"] == "vm_area_struct" and r["kind"] == "free")
    assert vf["measured_counts"] == [0] * len(vf["measured_counts"])
    assert all(p > 0 for p in vf["predicted_counts"])
    # a kernel that counts exit's frees: measured == the prediction with them
    layout = [kernel.Mapping(**m) for m in rec["layout"]]
    counted = copy.deepcopy(rec)
    for n in counted["runs"]:
        p = kernel.predict(layout, "fork", int(n), rec["pages"], "6.18", exit_frees=True)
        counted["runs"][n] = {k: p[k] for k in counted["runs"][n]}
    assert kernel.compare(counted, "6.18")["agree"]
    counted["exit_frees_counted"] = False
    assert not kernel.compare(counted, "6.18")["agree"]
    assert "included in the prediction" in kernel.exit_frees_line([rec])
    assert "left out of the prediction" in kernel.exit_frees_line([counted])


def test_probe_exit_frees_decides_from_the_fork_runs():
    def runner(frees):
        it = iter(frees)
        return lambda exe, scen, n, pages, ids, flt: {"counts": {"vm_area_struct_free": next(it)}}

    assert kernel.probe_exit_frees(Path("x"), {}, {}, runner=runner([0, 0])) is False
    assert kernel.probe_exit_frees(Path("x"), {}, {}, runner=runner([24, 36])) is True
    with pytest.raises(RuntimeError, match="inconsistent"):
        kernel.probe_exit_frees(Path("x"), {}, {}, runner=runner([0, 12]))


def test_cli_header_says_what_is_compared(capsys):
    assert main(["validate-kernel", "--from", str(DATA), "--scenario", "fork"]) == 0
    out = capsys.readouterr().out
    assert "every fitted coefficient (slopes and intercept)" in out
    assert "exit-time frees:" in out


def test_intercepts_are_compared_too():
    """A constant extra allocation at every size leaves the slopes alone but moves the
    intercept: the verdict must catch it."""
    rec = copy.deepcopy(BY_NAME["fork"])
    for counts in rec["runs"].values():
        counts["vm_area_struct_alloc"] += 1
    res = kernel.compare(rec, "6.18")
    assert not res["agree"]
    row = next(r for r in res["rows"] if r["cache"] == "vm_area_struct" and r["kind"] == "alloc")
    assert row["measured"][0] == pytest.approx(row["predicted"][0])
    assert row["measured"][1] == pytest.approx(row["predicted"][1] + 1)


# ---------------------------------------------------------------------------------------
# anon_vma_chain call-site ranges from kallsyms
# ---------------------------------------------------------------------------------------

BASE_SYMS = [
    (0x1000, "__pfx___anon_vma_prepare"),
    (0x1010, "__anon_vma_prepare"),
    (0x1200, "__pfx_unlink_anon_vmas"),
    (0x1210, "unlink_anon_vmas"),
    (0x1400, "anon_vma_clone"),
    (0x1600, "anon_vma_fork"),
    (0x1800, "__pfx_try_to_unmap"),
    (0x1810, "try_to_unmap"),
    (0x9000, "kmem_cache_alloc"),
    (0x9400, "some_other_function"),
]


def test_avc_range_is_the_four_functions():
    assert kernel.avc_call_site_ranges(BASE_SYMS) == [(0x1010, 0x1800)]
    assert kernel.avc_filter([(0x1010, 0x1800)]) == 'call_site >= 0x1010 && call_site < 0x1800 && name != "anon_vma"'


def test_avc_ranges_add_out_of_line_helpers_and_cold_parts():
    syms = BASE_SYMS + [
        (0x5000, "anon_vma_chain_alloc"),
        (0x5080, "next_one"),
        (0x7000, "anon_vma_fork.cold"),
        (0x7040, "unrelated.cold"),
        (0x8000, "anon_vma_chain_free.isra.0"),
        (0x8020, "x"),
        (0x1500, "anon_vma_clone.cold"),
    ]  # inside the main range: nothing added
    ranges = kernel.avc_call_site_ranges(syms)
    assert ranges == [(0x1010, 0x1800), (0x5000, 0x5080), (0x7000, 0x7040), (0x8000, 0x8020)]
    flt = kernel.avc_filter(ranges)
    assert flt.startswith("(call_site >= 0x1010 && call_site < 0x1800 || call_site >= 0x5000")
    assert flt.endswith(') && name != "anon_vma"')
    assert "0x9000" not in flt and "0x9400" not in flt  # unrelated allocation sites stay out


def test_avc_ranges_refuse_what_cannot_be_bounded():
    with pytest.raises(kernel.KernelUnavailable, match="does not show"):
        kernel.avc_call_site_ranges([s for s in BASE_SYMS if s[1] != "anon_vma_fork"])
    with pytest.raises(kernel.KernelUnavailable, match="anon_vma_chain_alloc"):
        kernel.avc_call_site_ranges(BASE_SYMS + [(0xFFFF0000, "anon_vma_chain_alloc")])  # last symbol: no end
    with pytest.raises(kernel.KernelUnavailable, match="cannot bound"):
        kernel.avc_call_site_ranges(
            [
                (0x1000, "__anon_vma_prepare"),
                (0x1100, "unlink_anon_vmas"),
                (0x1200, "anon_vma_clone"),
                (0x100000, "anon_vma_fork"),
                (0x100100, "z"),
            ]
        )


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
def test_live_avc_filter_with_several_ranges_is_accepted():
    """The kernel's filter parser takes the multi-range form (parentheses, ||)."""
    flt = kernel.filters()
    lo, hi = kernel.avc_call_site_range()
    flt["anon_vma_chain"] = kernel.avc_filter([(lo, hi), (hi + 0x100000, hi + 0x100100)])
    with kernel.tracefs() as tfs:
        kernel.Counters(os.getpid(), kernel._event_ids(tfs), flt).close()


# ---------------------------------------------------------------------------------------
# The driver: a child that dies before reporting; a driver that hangs
# ---------------------------------------------------------------------------------------

HAVE_CC = shutil.which("cc") or shutil.which("gcc")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return kernel.build_driver(tmp_path_factory.mktemp("kd"))


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler")
@pytest.mark.parametrize("scenario", sorted(kernel.SCENARIOS) + ["pageout_time"])
@pytest.mark.parametrize("which", [1, 2])
def test_driver_exits_when_a_child_dies_before_reporting(driver, monkeypatch, scenario, which):
    """KDRIVER_KILL_CHILD=K SIGKILLs the K-th forked process before it reports: the driver
    must fail promptly (not block until the caller's timeout) and say why."""
    monkeypatch.setenv("KDRIVER_KILL_CHILD", str(which))
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as e:
        kernel.run_plain(driver, scenario, 3, 8, timeout=20)
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert f"driver {scenario} N=3 failed (exit 1)" in msg
    assert "killed by signal 9" in msg or "pipe closed before the expected byte" in msg


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler")
def test_driver_runs_clean_without_the_hook(driver, monkeypatch):
    monkeypatch.delenv("KDRIVER_KILL_CHILD", raising=False)
    for scenario in sorted(kernel.SCENARIOS):
        kernel.run_plain(driver, scenario, 3, 8, timeout=20)


class _NoCounters:
    def __init__(self, *a):
        pass

    def read(self):
        return {}

    def close(self):
        pass


def test_run_driver_timeout_kills_the_process_group(tmp_path):
    """A driver that never finishes: run_driver raises a RuntimeError naming scenario and N,
    and kills the driver's whole process group (here: a background grandchild)."""
    pidfile = tmp_path / "bg.pid"
    script = tmp_path / "hang.sh"
    script.write_text(f"#!/bin/sh\nsleep 1000 &\necho $! > {pidfile}\necho ready $$\nread x\nsleep 1000\n")
    script.chmod(0o755)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"driver fork N=3 did not finish within 1 s"):
        kernel.run_driver(script, "fork", 3, 8, {}, {}, timeout=1, counters_factory=_NoCounters)
    assert time.monotonic() - t0 < 10
    bg = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{bg}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break  # gone
        if state == "Z":
            break  # dead, waiting for its (new) parent to reap it
        time.sleep(0.05)
    else:
        pytest.fail(f"background process {bg} of the driver survived")


def test_run_plain_timeout_raises_runtime_error(tmp_path):
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\nsleep 1000\n")
    script.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"driver pageout_time N=2 did not finish within 0.5 s"):
        kernel.run_plain(script, "pageout_time", 2, 8, timeout=0.5)


# ---------------------------------------------------------------------------------------
# Signals and cleanup
# ---------------------------------------------------------------------------------------


def test_signals_raise_converts_and_restores():
    mine = lambda s, f: None  # noqa: E731
    old = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(Terminated) as e:
            with signals_raise():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        assert e.value.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_cli_validate_kernel_cleans_up_on_signals(monkeypatch, capsys, sig, status):
    """A signal during measuring runs the cleanup (the `finally` of every context manager
    held), exits 128 + signal number, and prints one line instead of a traceback."""
    cleaned = []

    def measure(names, pages, progress):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)
        finally:
            cleaned.append(True)
            os.kill(os.getpid(), sig)  # a second signal during cleanup is ignored
        return []

    monkeypatch.setattr(kernel, "probe", lambda: None)
    monkeypatch.setattr(kernel, "measure", measure)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    assert main(["validate-kernel", "--scenario", "fork"]) == status
    assert cleaned == [True]
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "rmapsim validate-kernel:" in err and "Traceback" not in err
    assert {s: signal.getsignal(s) for s in before} == before


def test_remove_swapfile_checks_swapoff(tmp_path, monkeypatch):
    f = tmp_path / "rmapsim-swap-test"
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, rc, "", "swapoff: Device or resource busy")

    monkeypatch.setattr(kernel.driver.subprocess, "run", run)
    monkeypatch.setattr(kernel.driver, "_swap_active", lambda p: True)
    f.write_bytes(b"x")
    rc = 255
    with pytest.warns(RuntimeWarning, match=f"swapoff {f} failed.*kept"):
        kernel._remove_swapfile(f)
    assert f.exists() and calls == [["swapoff", str(f)]]
    rc = 0
    kernel._remove_swapfile(f)
    assert not f.exists()
    f.write_bytes(b"x")
    calls.clear()
    monkeypatch.setattr(kernel.driver, "_swap_active", lambda p: False)  # swapon never happened
    kernel._remove_swapfile(f)
    assert not f.exists() and calls == []


def test_kernel_sampler_unmounts_tracefs_when_setup_fails(monkeypatch):
    from rmapsim import record

    state = []

    @contextlib.contextmanager
    def fake_tracefs():
        state.append("mounted")
        try:
            yield Path("/nonexistent")
        finally:
            state.append("unmounted")

    monkeypatch.setattr(kernel, "probe", lambda: None)
    monkeypatch.setattr(kernel, "tracefs", fake_tracefs)
    monkeypatch.setattr(kernel, "_event_ids", lambda tfs: {"alloc": 1, "free": 2})

    def no_filters():
        raise kernel.KernelUnavailable("no kallsyms")

    monkeypatch.setattr(kernel, "filters", no_filters)
    with pytest.raises(kernel.KernelUnavailable):
        record.KernelSampler()
    assert state == ["mounted", "unmounted"]
    state.clear()
    monkeypatch.setattr(kernel, "filters", lambda: {})

    def no_counters(*a):
        raise kernel.KernelUnavailable("perf_event_open failed")

    monkeypatch.setattr(kernel, "Counters", no_counters)
    with pytest.raises(kernel.KernelUnavailable):
        record.KernelSampler()
    assert state == ["mounted", "unmounted"]


def _leftovers():
    swaps = [line.split()[0] for line in Path("/proc/swaps").read_text().splitlines()[1:] if "rmapsim-swap-" in line]
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if "rmapsim-tracefs-" in line]
    return swaps, mounts


@pytest.mark.skipif(LIVE is not None, reason=f"live kernel not usable here: {LIVE}")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_live_signal_during_validate_kernel_cleans_up(tmp_path, sig):
    """SIGTERM/SIGHUP while the pageout scenario runs (temporary swap file on, tracefs
    mounted if it was not, a driver running): the swap file is off and gone, tracefs is
    unmounted, no driver is left, exit status 128 + signal."""
    assert _leftovers() == ([], [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmapsim", "validate-kernel", "--scenario", "pageout"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if "pageout N=2" in line:
            break
    time.sleep(0.3)  # the driver of the next size or the timing runs are on now
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, (lines, err)
    assert "Traceback" not in err and f"terminated by {signal.Signals(sig).name}" in err
    assert _leftovers() == ([], [])
    assert not list(Path(tempfile.gettempdir()).glob("rmapsim-swap-*"))
    assert _live_drivers() == []


def _live_drivers():
    """kdriver processes that are still running (zombies are dead: an init that does not
    reap may keep them around)."""
    out = []
    for p in Path("/proc").iterdir():
        try:
            stat = (p / "stat").read_text() if p.name.isdigit() else ""
        except OSError:
            continue
        if stat and "(kdriver" in stat and stat.rsplit(")", 1)[1].split()[0] != "Z":
            out.append(int(p.name))
    return out
