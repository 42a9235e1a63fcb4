"""to_dot, plot_state and the Jupyter HTML of Simulator and ScanStats."""

from __future__ import annotations

import matplotlib

import rmapsim

matplotlib.use("Agg")


def three_generations(era: str) -> rmapsim.Simulator:
    s = rmapsim.Simulator(era=era)
    p = s.spawn()
    a = s.mmap(p, 4 * 4096)
    s.touch(p, a, 4 * 4096)
    c = s.fork(p)
    s.touch(c, a, 4096)
    s.fork(c)
    return s


def test_dot_has_one_edge_per_chain_entry_and_parent_links():
    dot = three_generations("6.18").to_dot()
    # parent, child, grandchild: chains of 1, 2 and 3 entries; two non-root anon_vmas
    assert dot.count("subgraph cluster_p") == 3
    assert dot.count("[shape=ellipse") == 3 and dot.count("(root)") == 1
    assert dot.count("arrowhead=none") == 6
    assert dot.count('label="parent"') == 2
    assert dot.count("style=bold") == 3  # each VMA's own anon_vma


def test_dot_in_the_legacy_era_links_vmas_to_the_family_anon_vma():
    dot = three_generations("2.6.33").to_dot()
    assert dot.count("[shape=ellipse") == 1 and dot.count("arrowhead=none") == 3


def test_plot_and_html():
    s = three_generations("3.19")
    ax = s.plot_state()
    assert len(ax.lines) == 6
    html = s._repr_html_()
    assert "era 3.19" in html and "<pre>" in html and "anon_vma_chain" in html
    assert "<b>ScanStats</b> (rmap_walk)" in s.rmap_walk()._repr_html_()
