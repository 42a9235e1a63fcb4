"""Pictures of one simulator state: Graphviz text (like the LWN anon_vma diagrams), a
matplotlib rendering, and HTML for Jupyter."""

from __future__ import annotations

import html
from typing import Any, Dict, List


def _label(handles: Dict[int, str], h: int) -> str:
    if h not in handles:
        handles[h] = f"av{len(handles)}"
    return handles[h]


def to_dot(sim: Any) -> str:
    """Graphviz text: one cluster per process with its VMAs; anon_vmas as ellipses with
    their parent (dashed) and root links; an edge per anon_vma_chain entry (legacy era:
    per VMA on the family list). The anon_vma a VMA's new pages go to is drawn bold."""
    g = sim.graph()
    names: Dict[int, str] = {}
    lines = ["digraph rmap {", "  rankdir=LR;", '  node [fontname="monospace", fontsize=10];']
    by_pid: Dict[int, List[Dict[str, Any]]] = {}
    for v in g["vmas"]:
        by_pid.setdefault(v["pid"], []).append(v)
    for pid, vs in by_pid.items():
        lines.append(f'  subgraph cluster_p{pid} {{ label="pid {pid}"; style=rounded;')
        for v in vs:
            lines.append(
                f'    v{pid}_{v["start"]:x} [shape=box, label="[{v["start"]:#x}, {v["end"]:#x})\\npgoff {v["pgoff"]:#x} {v["prot"] or "none"}"];'
            )
        lines.append("  }")
    for a in g["anon_vmas"]:
        n = _label(names, a["anon_vma"])
        root = " (root)" if a["root"] == a["anon_vma"] else ""
        lines.append(f'  {n} [shape=ellipse, label="{n}{root}\\n{a["entries"]} entries"];')
    for a in g["anon_vmas"]:
        if a["parent"] != a["anon_vma"]:
            lines.append(
                f'  {_label(names, a["anon_vma"])} -> {_label(names, a["parent"])} [style=dashed, label="parent"];'
            )
    for v in g["vmas"]:
        node = f"v{v['pid']}_{v['start']:x}"
        targets = v["chain"] or ([v["anon_vma"]] if v["anon_vma"] is not None else [])
        for h in targets:
            bold = ', style=bold, color="blue"' if h == v["anon_vma"] else ""
            lines.append(f"  {node} -> {_label(names, h)} [arrowhead=none{bold}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_state(sim: Any, ax: Any = None) -> Any:
    """A matplotlib drawing of the same graph: processes' VMAs on the left, anon_vmas on
    the right, one line per chain entry (bold: where new pages go)."""
    import matplotlib.pyplot as plt

    g = sim.graph()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, max(2.5, 0.4 * max(len(g["vmas"]), len(g["anon_vmas"]), 1))))
    names: Dict[int, str] = {}
    avs = [a["anon_vma"] for a in g["anon_vmas"]]
    ay = {h: i for i, h in enumerate(avs)}
    for i, v in enumerate(g["vmas"]):
        ax.text(
            0.0,
            -i,
            f"pid {v['pid']} [{v['start']:#x}, {v['end']:#x})",
            ha="right",
            va="center",
            fontsize=8,
            family="monospace",
        )
        targets = v["chain"] or ([v["anon_vma"]] if v["anon_vma"] is not None else [])
        for h in targets:
            if h in ay:
                ax.plot(
                    [0.02, 0.98],
                    [-i, -ay[h]],
                    lw=2.2 if h == v["anon_vma"] else 0.8,
                    color="tab:blue" if h == v["anon_vma"] else "0.5",
                )
    for h, j in ay.items():
        ax.text(1.0, -j, f" {_label(names, h)}", ha="left", va="center", fontsize=8, family="monospace")
    ax.set_xlim(-0.6, 1.3)
    ax.axis("off")
    ax.set_title(f"{sim.era}: {len(g['vmas'])} VMAs, {len(avs)} anon_vmas")
    return ax


def sim_html(sim: Any) -> str:
    c = sim.counts()
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in c.items())
    layouts = "".join(f"<pre>{html.escape(sim.render_layout(int(p)))}</pre>" for p in sim.pids()[:8])
    more = f"<p>… {len(sim.pids()) - 8} more processes</p>" if len(sim.pids()) > 8 else ""
    return f"<div><b>rmapsim.Simulator</b> era {html.escape(sim.era)}<table>{rows}</table>{layouts}{more}</div>"


def stats_html(stats: Any) -> str:
    s = stats.summary()
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:,.4g}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>"
        for k, v in s.items()
    )
    return f"<div><b>ScanStats</b> ({html.escape(stats.kind)})<table>{rows}</table></div>"
