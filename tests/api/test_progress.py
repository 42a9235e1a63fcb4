"""Progress (issue 20 item 3): long native calls report (call, done, total) through the
hook polled with the Ctrl-C check; a handler's exception stops the call cleanly; sweeps
draw a bar over their runs; ``fuzz`` prints ops/s lines; ``--quiet`` / ``progress=False``
turn it all off, and progress never reaches standard output."""

from __future__ import annotations

import io
import sys

import pytest

import rmapsim
from rmapsim import _core, _progress, study
from rmapsim.errors import InvalidArgument

from helpers import PAGE, ROOT

CHILDREN, PAGES = 1000, 100
# The parent's pages plus each child's private copy of every page (each child writes all).
TOTAL_PAGES = PAGES + CHILDREN * PAGES
EXAMPLES_TRACE = ROOT / "examples" / "seed-scenario.trace"


class _Terminal(io.StringIO):
    """A standard error that says it is a terminal (bars are drawn there; a file or a
    pipe gets a line every 5 s instead)."""

    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch) -> _Terminal:
    """sys.stderr as a terminal, for the rest of the test (set in the test's body: capsys
    installs its own sys.stderr when the test's call starts, after the fixtures);
    ``.getvalue()`` is what was drawn."""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    return term


@pytest.fixture(scope="module")
def storm():
    """A 2.6.33 fork storm whose full walk visits ~10^8 candidate VMAs (every page's walk
    visits all 1,001): it runs for far longer than the 20 ms poll interval on any machine,
    so the hook is called."""
    sim = rmapsim.Simulator(era="2.6.33")
    p = sim.spawn()
    a = sim.mmap(p, PAGES * PAGE)
    sim.touch(p, a, PAGES * PAGE)
    sim.touch_many(sim.fork_many(p, CHILDREN), a, PAGES * PAGE)
    return sim


def test_a_long_walk_reports_its_pages_then_finishes(storm):
    seen = []
    with _progress.reporting(lambda *a: seen.append(a)):
        storm.rmap_walk(aggregate=True)
    assert seen, "the walk ran past a poll interval, so the hook was called"
    assert {c for c, *_ in seen} == {"rmap_walk"}
    assert {t for _, _, t, _ in seen} == {TOTAL_PAGES}, "the total is the page count, declared once"
    dones = [d for _, d, _, _ in seen]
    assert dones == sorted(dones), "progress never goes back"
    assert [f for *_, f in seen] == [False] * (len(seen) - 1) + [True], "one finishing call, last"
    assert seen[-1][1] == TOTAL_PAGES, "every page was counted by the end"


def test_a_handler_exception_stops_the_call_as_a_python_exception(storm):
    calls = []

    def stop(call, done, total, finished):
        calls.append(finished)
        raise ValueError("enough")

    with _progress.reporting(stop):
        with pytest.raises(ValueError, match="enough"):
            storm.page_referenced(aggregate=True)
    # stopped at the first poll; the finishing call still comes (a bar can close), and its
    # exception is dropped (filterwarnings=error would fail an unraisable one)
    assert calls == [False, True]
    assert storm.counts()["page"] == TOTAL_PAGES, "the simulator still answers (the walk was read-only)"


def test_a_handler_exception_stops_a_mutating_call_cleanly():
    """A fuzz run of a huge budget stops at the first poll with the handler's exception
    (with what was found so far attached, as for Ctrl-C)."""

    def stop(call, done, total, finished):
        assert (call, total) == ("fuzz", 10**12)
        raise RuntimeError("stop fuzzing")

    with _progress.reporting(stop):
        with pytest.raises(RuntimeError, match="stop fuzzing") as e:
            _core.fuzz("6.18", max_ops=10**12)
    assert e.value.fuzz_report["ops"] < 10**12 and e.value.fuzz_report["violation"] is None


def test_the_default_bar_is_shown_on_stderr_and_off_when_disabled(storm, capsys, monkeypatch):
    tty = _terminal(monkeypatch)
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    with _progress.disabled():
        storm.rmap_walk(aggregate=True)
    assert tty.getvalue() == "", "nothing at all while progress is off"
    storm.rmap_walk(aggregate=True)
    assert capsys.readouterr().out == "", "progress never goes to stdout"
    assert "rmap_walk" in tty.getvalue() and f"/{TOTAL_PAGES}" in tty.getvalue(), tty.getvalue()


def test_a_sweep_draws_a_bar_over_its_runs(capsys, monkeypatch):
    tty = _terminal(monkeypatch)
    grid = {"children": [2, 4], "pages": [2]}
    rows = study.sweep("fork_storm", grid, eras=["2.6.33", "6.18"])
    assert len(rows) == 4 and capsys.readouterr().out == ""
    assert "4/4" in tty.getvalue() and "run" in tty.getvalue(), tty.getvalue()
    for off in (False, None):
        tty.seek(0), tty.truncate()
        assert len(study.sweep("fork_storm", grid, eras=["6.18"], progress=off)) == 2
        assert tty.getvalue() == "", f"progress={off} is silent"
    seen = []
    study.sweep("fork_storm", grid, eras=["6.18"], progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 2), (2, 2)] and tty.getvalue() == "", "a callable replaces the bar"


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_bad_progress_values_are_refused(bad):
    with pytest.raises(InvalidArgument, match="progress"):
        study.sweep("fork_storm", {"children": [2]}, eras=["6.18"], progress=bad)


def test_the_hook_and_the_switch_validate():
    with pytest.raises(InvalidArgument, match="hook must be a callable"):
        _core._set_progress_hook(3)
    with pytest.raises(InvalidArgument, match="on must be True or False"):
        _progress.set_enabled("no")
    prev = _core._set_progress_hook(None)
    assert prev is _progress._hook, "rmapsim installs its hook on import"
    assert _core._set_progress_hook(prev) is None


def test_fuzz_lines_name_the_rate_and_the_share(capsys, monkeypatch):
    clock = iter([100.0, 105.0, 106.0, 110.0])
    monkeypatch.setattr(_progress.time, "monotonic", lambda: next(clock))
    lines = _progress.Lines("[fuzz] era 6.18: ", every=5.0)  # t0 = 100
    lines("fuzz", 1_000_000, 4_000_000, False)  # at 105: 1,000,000 ops in 5 s
    lines("fuzz", 1_100_000, 4_000_000, False)  # at 106: within the interval, no line
    lines("fuzz", 3_000_000, 4_000_000, False)  # at 110: 2,000,000 more in 5 s
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "[fuzz] era 6.18: 1,000,000 of 4,000,000 (25%) ops, 200,000 ops/s (mean 200,000), 5 s",
        "[fuzz] era 6.18: 3,000,000 of 4,000,000 (75%) ops, 400,000 ops/s (mean 300,000), 10 s",
    ]


def _cli(capsys, tty, *argv: str):
    """(exit status, stdout, what went to the terminal stderr) of one in-process command."""
    from rmapsim.tools.cli import main

    tty.seek(0), tty.truncate()
    code = main(list(argv))
    return code, capsys.readouterr().out, tty.getvalue()


def test_cli_quiet_turns_progress_off_and_stdout_stays_clean(tmp_path, capsys, monkeypatch):
    tty = _terminal(monkeypatch)
    args = ["study", "fork_storm", "--param", "children=2,4", "--param", "pages=2", "--era", "6.18"]
    code, out, err = _cli(capsys, tty, *args, "--out", str(tmp_path / "a"))
    assert code == 0 and "2/2" in err and "run" in err, err
    assert out.splitlines()[-1].startswith("2 runs written to") and "run/s" not in out, "no bar on stdout"
    assert _cli(capsys, tty, *args, "--out", str(tmp_path / "b"), "--quiet")[::2] == (0, "")
    assert _progress.enabled(), "--quiet turned progress off for its command only"
    assert _cli(capsys, tty, "fuzz", "--max-ops", "2000", "--quiet")[::2] == (0, "")
    code, out, err = _cli(capsys, tty, "fuzz", "--max-ops", "2000")
    assert err.startswith("[fuzz] era 6.18, seed 0, budget 2000 ops") and "[fuzz]" not in out


def test_a_quiet_sweep_silences_its_native_calls_too(capsys, monkeypatch):
    """progress=False: the runs' long walks (2.6.33, 1,001 candidates a page) draw no
    default bar either, though it would show at once (DELAY 0)."""
    tty = _terminal(monkeypatch)
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    study.sweep("fork_storm", {"children": [CHILDREN], "pages": [PAGES]}, eras=["2.6.33"], progress=False)
    assert capsys.readouterr().out == "" and tty.getvalue() == ""


def test_a_sweep_on_an_executor_names_its_runs(monkeypatch):
    """While a worker runs, the bar is redrawn every half second naming the runs going.
    The first run is held until the bar's first redraw, so that redraw sees it running
    and the second queued behind it (one thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ticks, go = [], threading.Event()
    real_tick, real_run = _progress.Runs.tick, study._run_silenced

    def tick(self, postfix):
        ticks.append(postfix)
        go.set()
        real_tick(self, postfix)

    def held(*job):
        assert go.wait(60)
        return real_run(*job)

    monkeypatch.setattr(_progress.Runs, "tick", tick)
    monkeypatch.setattr(study, "_run_silenced", held)
    with ThreadPoolExecutor(1) as ex:
        rows = study.sweep("fork_storm", {"children": [3, 2], "pages": [1]}, eras=["2.6.33"], executor=ex)
    assert [r["children"] for r in rows] == [3, 2]
    assert ticks[0] == "running 2.6.33 children=3 pages=1"
    assert ticks[-1] == "", "nothing left running at the end"


def test_quiet_on_the_other_long_commands(capsys, monkeypatch):
    """contention, replay and demo take --quiet too: their native calls' bars (shown at
    once here, DELAY 0) are off for the command only."""
    tty = _terminal(monkeypatch)
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    argv = ["contention", "--era", "2.6.33", "--children", str(CHILDREN), "--pages", str(PAGES), "--cpus", "2"]
    code, out, err = _cli(capsys, tty, *argv)
    assert code == 0 and "contention" in err and "page" in err, err
    assert "%|" not in out, "the bar is not on stdout"
    assert _cli(capsys, tty, *argv, "--quiet")[::2] == (0, "")
    assert _progress.enabled()
    for cmd in (["demo", "-n", "2", "-p", "1", "--quiet"], ["replay", str(EXAMPLES_TRACE), "--quiet"]):
        assert _cli(capsys, tty, *cmd)[::2] == (0, ""), cmd


@pytest.mark.parametrize("value,on", [("0", False), ("off", False)])
def test_the_environment_switch(value, on):
    import os
    import subprocess
    import sys

    code = "from rmapsim import _progress; print(_progress.enabled())"
    r = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "RMAPSIM_PROGRESS": value}, capture_output=True, text=True
    )
    assert r.stdout.strip() == str(on), r.stderr


def test_where_progress_is_not_live_a_line_every_5_s(monkeypatch, capsys):
    """stderr a file or a pipe (capsys): no bar but a line every LINE_EVERY seconds with the
    count, the share, the ETA and the postfix, and a last one at close; a run shorter than
    that prints nothing (a CLI error stays one line)."""
    assert not _progress.live()
    clock = iter([1000.0, 1001.0, 1005.0, 1006.0, 1020.0, 2000.0, 2001.0])
    monkeypatch.setattr(_progress, "_now", lambda: next(clock))
    b = _progress.bar(84, "fork_storm", "run")  # starts at 1000
    assert isinstance(b, _progress.LineBar)
    b.update(10)  # 1001: not yet
    b.set_postfix_str("running 2.6.33 children=10000 pages=100")
    b.update(32)  # 1005: 42 of 84 in 5 s
    b.update(41)  # 1006: within 5 s of the last line
    b.close()  # 1020: the last line (the postfix dropped)
    assert capsys.readouterr().err.splitlines() == [
        "fork_storm: 42/84 runs (50%), 5 s, ETA 5 s, running 2.6.33 children=10000 pages=100",
        "fork_storm: 83/84 runs (99%), 20 s, ETA 0 s",
    ]
    quick = _progress.LineBar(3, "x", "run")
    quick.update(3)
    quick.close()
    assert capsys.readouterr().err == ""
