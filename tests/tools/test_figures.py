"""Issue 20 item 2: the structure of the study, contention and state figures (series,
panels, labels with units, ticks that do not run together), not their pixels."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import numpy as np
import pytest

import rmapsim
from rmapsim.contention import ContentionResult, plot_results
from rmapsim.studies.figures import plot_sweep
from rmapsim.study import sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mt  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def panels(fig):
    return [a for a in fig.axes if a.get_visible()]


def no_overlap(fig, axis):
    """The drawn tick labels of ``axis`` ("x"/"y") of every panel, pairwise disjoint."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in panels(fig):
        a = ax.xaxis if axis == "x" else ax.yaxis
        boxes = [t.get_window_extent(r) for t in a.get_ticklabels() if t.get_visible() and t.get_text()]
        for i, b in enumerate(boxes):
            for c in boxes[i + 1 :]:
                assert not b.overlaps(c), [t.get_text() for t in a.get_ticklabels()]
    return True


def test_two_swept_parameters_get_panels_and_monotone_lines():
    # workers x cow_percent over 3 eras: the second parameter becomes the panels, so no
    # line joins points of different cow_percent (the zig-zag): x strictly increases
    rows = sweep(
        "prefork_server",
        {"workers": [2, 4, 8], "cow_percent": [10, 90], "heap_pages": [8], "recycles": [0]},
        eras=["2.6.33", "2.6.34", "6.18"],
    )
    fig = plot_sweep(rows, ["workers", "cow_percent", "heap_pages", "recycles"], "workers", "mean_vmas_visited")
    axs = panels(fig)
    assert len(axs) == 2 and fig._rmapsim_plan["facet"] == "cow_percent"
    assert [a.get_title() for a in axs] == ["cow_percent = 10 %", "cow_percent = 90 %"]
    for ax in axs:
        for line in ax.lines:
            x = np.asarray(line.get_xdata(), dtype=float)
            assert len(x) == 3 and (np.diff(x) > 0).all()
    assert fig._suptitle.get_text() == "prefork_server (heap_pages = 8, recycles = 0)"
    assert axs[0].get_xlabel() == "workers (processes)" and "(VMAs)" in axs[0].get_ylabel()


def test_identical_series_are_one_line_listing_every_member():
    # chain eras give the same (2N+1)/(N+1) for every N: one line for 2.6.34 and 6.18
    rows = sweep("fork_storm", {"children": [1, 3, 9], "pages": [2]}, eras=["2.6.33", "2.6.34", "6.18"])
    fig = plot_sweep(rows, ["children", "pages"], "children", "mean_vmas_visited")
    (ax,) = panels(fig)
    assert len(ax.lines) == 2 and fig._rmapsim_groups == [["2.6.33"], ["2.6.34", "6.18"]]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["2.6.33", "2.6.34, 6.18 (identical)"]
    assert any("identical values are drawn once" in t.get_text() for t in fig.texts)
    # the two lines differ in marker and style as well as colour
    (a, b) = ax.lines
    assert (a.get_marker(), a.get_linestyle()) != (b.get_marker(), b.get_linestyle())
    # the legend is outside every panel
    fig.canvas.draw()
    leg = fig.legends[0].get_window_extent()
    assert not any(leg.overlaps(p.get_window_extent()) for p in panels(fig))


def test_ticks_sit_on_the_swept_values_and_do_not_run_together():
    rows = sweep("fork_storm", {"children": [10, 30, 100, 300], "pages": [1]}, eras=["2.6.33", "6.18"])
    fig = plot_sweep(rows, ["children", "pages"], "children", "mean_vmas_visited")
    (ax,) = panels(fig)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # 30x and 300x spans
    assert isinstance(ax.xaxis.get_major_locator(), mt.FixedLocator)
    assert list(ax.xaxis.get_major_locator().locs) == [10, 30, 100, 300]
    assert isinstance(ax.xaxis.get_minor_formatter(), mt.NullFormatter)  # no "3×10¹4×10¹"
    assert [ax.xaxis.get_major_formatter()(v, 0) for v in (10, 300, 3000)] == ["10", "300", "3,000"]
    assert no_overlap(fig, "x") and no_overlap(fig, "y")
    # a narrow linear range stays linear
    rows = sweep("fork_storm", {"children": [2, 3, 4], "pages": [1]}, eras=["6.18"])
    (ax,) = panels(plot_sweep(rows, ["children", "pages"], "children", "mean_vmas_visited"))
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"


def test_one_era_crossed_with_a_parameter_is_one_line_per_value():
    rows = sweep("prefork_server", {"workers": [2, 4], "cow_percent": [0, 50, 100], "heap_pages": [4]}, eras=["6.18"])
    fig = plot_sweep(rows, ["workers", "cow_percent", "heap_pages"], "workers", "n_anon_vma")
    (ax,) = panels(fig)
    assert fig._rmapsim_plan["facet"] is None and fig._rmapsim_plan["hue"] == ["spec", "cow_percent"]
    names = [n for g in fig._rmapsim_groups for n in g]
    assert sorted(names) == ["6.18, cow_percent=0", "6.18, cow_percent=100", "6.18, cow_percent=50"]


def test_overrides_and_errors():
    rows = sweep("fork_storm", {"children": [1, 2], "pages": [1]}, eras=["6.18"])
    fig = plot_sweep(rows, ["children", "pages"], "children", "n_anon_vma", title="T", xlabel="X", ylabel="Y")
    (ax,) = panels(fig)
    assert (fig._suptitle.get_text(), ax.get_xlabel(), ax.get_ylabel()) == ("T", "X", "Y")
    with pytest.raises(rmapsim.InvalidArgument, match="facet='pages'"):
        plot_sweep(rows, ["children", "pages"], "children", "n_anon_vma", facet="pages")
    with pytest.raises(rmapsim.InvalidArgument, match="'nope' is not in the rows"):
        plot_sweep(rows, ["children", "pages"], "children", "nope")


def test_without_a_swept_parameter_there_is_a_bar_per_era_and_a_panel_per_metric():
    rows = sweep("aim7_like", {"processes": [12]}, eras=["2.6.33", "2.6.34-rc1", "6.18"])
    ys = ["reclaim_unmap_vmas_visited_mean", "reclaim_lock_hold"]
    fig = plot_sweep(rows, [], None, ys, workload="aim7_like")
    axs = panels(fig)
    assert len(axs) == 2
    assert axs[0].get_ylabel().replace("\n", " ") == "candidate VMAs visited per try_to_unmap walk, mean (VMAs)"
    assert "(candidate-visits)" in axs[1].get_ylabel()
    for ax in axs:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2.6.33", "2.6.34-rc1", "6.18"]
        assert len(ax.patches) == 3
    # the one value given and the defaults of the others
    assert fig._suptitle.get_text() == "aim7_like (processes = 12, pages = 32, reclaim_every = 50, seed = 0)"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmapsim", *args], capture_output=True, text=True, timeout=300)


def test_study_aim7_like_defaults_plot_the_reclaim_walks(tmp_path):
    # the done-when: `rmapsim study aim7_like` with default parameters
    out = tmp_path / "a"
    r = cli("study", "aim7_like", "--era", "3.0", "--era", "6.18", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "cost.png, cost.svg" in r.stdout and (out / "cost.png").stat().st_size > 0
    svg = (out / "cost.svg").read_text()
    assert "try_to_unmap walk" in svg and "candidate-visits" in svg
    summary = (out / "summary.md").read_text()
    head = "| era | spec | reclaim_unmap_vmas_visited_mean | reclaim_lock_hold_busiest | reclaim_unmap_walks |"
    assert head in summary
    for line in summary.splitlines()[4:6]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[2]) >= 1 and int(cells[3]) > 0 and int(cells[4]) > 0, line
    r = cli(
        "study",
        "fork_storm",
        "--param",
        "children=1,2",
        "--era",
        "6.18",
        "--out",
        str(out),
        "--name",
        "fig",
        "--format",
        "svg",
        "--title",
        "My title",
    )
    assert r.returncode == 0, r.stderr
    assert (out / "fig.svg").exists() and not (out / "fig.png").exists() and "My title" in (out / "fig.svg").read_text()
    bad = cli("study", "fork_storm", "--out", str(out), "--format", "gif")
    assert bad.returncode == 2 and "formats are" in bad.stderr
    bad = cli("study", "fork_storm", "--param", "children=1,2", "--facet", "pages", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "--facet 'pages' must be a --param with several values" in bad.stderr
    assert not (tmp_path / "b").exists()  # refused before any run


def test_binned_means_are_exact():
    # holding 1 CPU on [0, 10), 3 on [10, 20): bins [0,5) [5,15) [15,20) average 1, 2, 3
    d = dict(
        cpus=4,
        makespan=20,
        hold_time=0,
        wait_time=0,
        outside_time=0,
        spinning=True,
        time=[0, 10],
        holding=[1, 3],
        waiting=[0, 2],
        lock_id=[],
        lock_acquisitions=[],
        lock_hold=[],
        lock_wait=[],
    )
    r = ContentionResult(d, "6.18")
    assert r.binned(np.array([0.0, 5, 15, 20]), "holding").tolist() == [1.0, 2.0, 3.0]
    assert r.binned(np.array([0.0, 10, 20]), "waiting").tolist() == [0.0, 2.0]


def storm_contention(era):
    """A 6-child fork storm over 4 written pages, its page_referenced walks on 4 CPUs."""
    s = rmapsim.Simulator(era=era)
    p = s.spawn()
    a = s.mmap(p, 4 * 4096)
    s.touch(p, a, 4 * 4096)
    s.touch_many(s.fork_many(p, 6), a, 4 * 4096)
    return s.contention(cpus=4)


def test_contention_small_multiples_share_axes_and_merge_identical_eras():
    results = [storm_contention(era) for era in ["2.6.33", "3.8", "6.18"]]
    fig = plot_results(results)
    axs = panels(fig)
    assert fig._rmapsim_panels == [["2.6.33"], ["3.8", "6.18"]]  # rwsem eras replay identically
    assert len(axs) == 2 and "3.8, 6.18 (identical)" in axs[1].get_title()
    assert axs[0].get_shared_x_axes().joined(axs[0], axs[1]) and axs[0].get_xscale() == "log"
    assert all(a.get_xlabel() == "virtual time (candidate-visits, log)" for a in axs)
    fig.canvas.draw()
    leg = fig.legends[0].get_window_extent()
    assert not any(leg.overlaps(a.get_window_extent()) for a in axs)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["holding the lock", "waiting for it", "makespan"]
    assert plot_results(results, time_scale="linear").axes[0].get_xscale() == "linear"
    with pytest.raises(rmapsim.InvalidArgument, match="time_scale='cubic'"):
        plot_results(results, time_scale="cubic")


def test_equal_timelines_under_a_spinlock_and_a_mutex_are_two_panels():
    # 2.6.35 (root/spin) and 3.0 (root/mutex) replay the same timeline; one spins, the other
    # sleeps, so they get a panel each, each titled with its own lock
    results = [storm_contention(era) for era in ["2.6.35", "3.0", "3.7"]]
    assert results[0].same_timeline(results[1]) and results[0].spinning != results[1].spinning
    fig = plot_results(results)
    assert fig._rmapsim_panels == [["2.6.35"], ["3.0", "3.7"]]
    titles = [a.get_title() for a in panels(fig)]
    assert "root/spin spinning" in titles[0] and "root/mutex sleeping" in titles[1]
