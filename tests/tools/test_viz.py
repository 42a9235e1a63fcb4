"""to_dot, plot_state and the Jupyter HTML of Simulator and ScanStats."""

from __future__ import annotations

import re

import matplotlib
import pytest

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
    # 2 parent edges (elbows) + 3 bold vma->anon_vma + 3 thin chain edges
    assert len(ax.lines) == 8
    html = s._repr_html_()
    assert "era 3.19" in html and "<pre>" in html and "anon_vma_chain" in html
    assert "<b>ScanStats</b> (rmap_walk)" in s.rmap_walk()._repr_html_()


def fork_storm(era: str, children: int, pages: int = 2) -> rmapsim.Simulator:
    s = rmapsim.Simulator(era=era)
    p = s.spawn()
    a = s.mmap(p, pages * 4096)
    s.touch(p, a, pages * 4096)
    s.touch_many(s.fork_many(p, children), a, pages * 4096)
    return s


def _dot_counts(dot: str):
    return {
        "nodes": dot.count("[shape=ellipse"),
        "parent_edges": dot.count('label="parent"'),
        "vma_edges": dot.count("arrowhead=none"),
        "own_edges": dot.count("style=bold"),
    }


@pytest.mark.parametrize("era", ["2.6.33", "2.6.34", "3.0", "3.19", "6.18"])
def test_plot_state_draws_what_to_dot_says(era):
    s = three_generations(era)
    drawn = s.plot_state(collapse=0).rmapsim_drawn
    dot = _dot_counts(s.to_dot())
    assert len(drawn["nodes"]) == dot["nodes"]
    assert drawn["parent_edges"] == dot["parent_edges"]
    assert drawn["own_edges"] == dot["own_edges"] == 3  # every VMA has its anon_vma
    assert drawn["own_edges"] + drawn["chain_edges"] == dot["vma_edges"]
    # the anon_vma labels of the picture are the ones of to_dot
    assert set(drawn["nodes"]) == set(re.findall(r"^  (av\d+) \[shape=ellipse", s.to_dot(), re.M))


def test_the_tree_carries_the_eras_counters():
    # 6.18: root av0 counts itself and its child av1 (num_children 2); av1 has the
    # grandchild av2; each anon_vma is the ->anon_vma of exactly one VMA
    dot = three_generations("6.18").to_dot()
    assert 'av0 [shape=ellipse, label="av0 (root)\\nnum_children 2 · num_active_vmas 1"]' in dot
    assert 'av1 [shape=ellipse, label="av1\\nnum_children 1 · num_active_vmas 1"]' in dot
    assert 'av2 [shape=ellipse, label="av2\\nnum_children 0 · num_active_vmas 1"]' in dot
    # 3.19: degree = VMAs using it + child anon_vmas, a root counting itself (1 + 1 + 1)
    assert 'label="av0 (root)\\ndegree 3"' in three_generations("3.19").to_dot()
    # 2.6.34 has no root and no counters: the entries on each list
    dot = three_generations("2.6.34").to_dot()
    assert "(root)" not in dot and 'label="av0\\n3 entries"' in dot


@pytest.mark.parametrize("era", ["2.6.34", "3.0", "6.18"])
def test_identical_siblings_collapse(era):
    # a fork storm of 40: the parent's anon_vma plus 40 children's, each the ->anon_vma of
    # one child VMA of the same range: the 40 are drawn once
    s = fork_storm(era, 40)
    ax = s.plot_state()
    drawn = ax.rmapsim_drawn
    assert drawn["nodes"] == ["av0", "av1..av40 ×40"]
    assert drawn["collapsed"] == {"av1..av40 ×40": 40}
    assert drawn["own_edges"] == 2
    assert "41 processes, 41 VMAs, 41 anon_vmas (2 drawn" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("40 VMAs, pids 2..41, one per av1..av40") for t in texts), texts
    # without collapsing every anon_vma is a node
    assert len(s.plot_state(collapse=0).rmapsim_drawn["nodes"]) == 41


def test_collapse_keeps_different_siblings_apart():
    # a storm of 4, then one child forks a grandchild: the 3 childless children are
    # alike and collapse; the child with a grandchild has a different subtree and stays
    s = fork_storm("6.18", 4)
    kid = s.pids()[1]
    s.fork(kid)
    drawn = s.plot_state().rmapsim_drawn
    # the root, the 3 childless children collapsed, the child with a grandchild, the grandchild
    assert len(drawn["nodes"]) == 4 and list(drawn["collapsed"].values()) == [3]
    assert drawn["parent_edges"] == 3


def test_legacy_vmas_of_one_anon_vma_are_one_box():
    # 2.6.33: one anon_vma for the family; the 31 VMAs of the same range are one box
    ax = fork_storm("2.6.33", 30).plot_state()
    assert ax.rmapsim_drawn["nodes"] == ["av0"] and ax.rmapsim_drawn["own_edges"] == 1
    assert any("31 VMAs, pids 1..31" in t.get_text() for t in ax.texts)


def test_collapse_is_validated():
    s = three_generations("6.18")
    for bad in (1, -1, True, "3"):
        with pytest.raises(rmapsim.InvalidArgument, match="collapse="):
            s.plot_state(collapse=bad)


LEGEND = re.compile(r"\b(av\d+)=0x([0-9a-f]+)")  # rmapsim.diff's parser of the legend


def test_render_layout_labels_are_global_and_match_to_dot():
    # a storm plus an exec'd child with a new family: each anon_vma has one label in every
    # process's picture, and it is the label to_dot gives it
    s = fork_storm("6.18", 3)
    kid = s.pids()[2]
    s.exec(kid)
    a = s.mmap(kid, 4096)
    s.touch(kid, a, 4096)
    seen = {}
    for pid in s.pids():
        for label, handle in LEGEND.findall(s.render_layout(int(pid))):
            assert seen.setdefault(int(handle, 16), label) == label, (pid, label, handle)
    assert len(set(seen.values())) == len(seen) == s.counts()["anon_vma"]
    from rmapsim.viz import labels

    assert labels(s) == seen
    dot = s.to_dot()
    assert all(f"  {lab} [shape=ellipse" in dot for lab in seen.values())
