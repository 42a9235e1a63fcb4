"""validate-kernel: the comparison logic on measurements recorded from a live 6.18 kernel
(tests/data/kernel-6.18-measurements.json, written by `rmapsim validate-kernel --save`), and
one small scenario for real when the live kernel is usable here."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import rmapsim
from rmapsim import kernel
from rmapsim.cli import main

DATA = Path(__file__).parent / "data" / "kernel-6.18-measurements.json"
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
        (0x400000, 0x401000), (0x4A4000, 0x4A8000), (0x4A8000, 0x4AB000), (0x4AB000, 0x4B1000),
        (0x7FFC8D5CE000, 0x7FFC8D5EF000)]
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
    js = json.loads(capsys.readouterr().out)
    assert js[0]["scenario"] == "fork" and js[0]["agree"] is True


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
