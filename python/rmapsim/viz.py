"""Pictures of one simulator state: Graphviz text (like the LWN anon_vma diagrams), a
matplotlib rendering, and HTML for Jupyter."""

from __future__ import annotations

import html
from typing import Any, Dict, List


def labels(sim: Any, g: Any = None) -> Dict[int, str]:
    """The ``avN`` label of every anon_vma, the same in :func:`to_dot`,
    :func:`plot_state` and ``render_layout``: numbered in order of first appearance over
    all processes (pids ascending, VMAs by address, a VMA's anon_vma before its chain,
    oldest first); anon_vmas no VMA names (kept alive by their children) follow."""
    g = g or sim.graph()
    out: Dict[int, str] = {}
    for v in g["vmas"]:
        for h in ([v["anon_vma"]] if v["anon_vma"] is not None else []) + list(v["chain"]):
            out.setdefault(h, f"av{len(out)}")
    for a in g["anon_vmas"]:
        out.setdefault(a["anon_vma"], f"av{len(out)}")
    return out


#: The era's counters of an anon_vma, as ``to_dot`` and ``plot_state`` show them.
_COUNTERS = ("num_children", "num_active_vmas", "degree")


def counters(sim: Any, h: int) -> str:
    """``num_children 2 · num_active_vmas 1`` (6.0+), ``degree 3`` (3.19–5.19), or the
    entries on its index in older eras."""
    f = sim._view("anon_vma", h)
    shown = [f"{k} {f[k]}" for k in _COUNTERS if k in f]
    return " · ".join(shown) if shown else f"{f['entries']} {'entry' if f['entries'] == 1 else 'entries'}"


def _root_mark(sim: Any, h: int) -> str:
    """`` (root)`` for a root anon_vma in an era that has ``anon_vma->root`` (2.6.35+)."""
    f = sim._view("anon_vma", h)
    return " (root)" if f.get("root") == h else ""


def _targets(v: Dict[str, Any]) -> List[int]:
    return list(v["chain"]) or ([v["anon_vma"]] if v["anon_vma"] is not None else [])


def to_dot(sim: Any) -> str:
    """Graphviz text: one cluster per process with its VMAs; anon_vmas as ellipses
    (labelled as :func:`labels` does, the root marked, with the era's counters) with
    their parent links (dashed); an edge per anon_vma_chain entry (legacy era: per VMA on
    the family list). The anon_vma a VMA's new pages go to is drawn bold."""
    g = sim.graph()
    names = labels(sim, g)
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
        n = names[a["anon_vma"]]
        root = _root_mark(sim, a["anon_vma"])
        lines.append(f'  {n} [shape=ellipse, label="{n}{root}\\n{counters(sim, a["anon_vma"])}"];')
    for a in g["anon_vmas"]:
        if a["parent"] != a["anon_vma"]:
            lines.append(f'  {names[a["anon_vma"]]} -> {names[a["parent"]]} [style=dashed, label="parent"];')
    for v in g["vmas"]:
        node = f"v{v['pid']}_{v['start']:x}"
        for h in _targets(v):
            bold = ', style=bold, color="blue"' if h == v["anon_vma"] else ""
            lines.append(f"  {node} -> {names[h]} [arrowhead=none{bold}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


class _Node:
    """One drawn anon_vma (or a run of identical siblings drawn once)."""

    def __init__(self, h: int) -> None:
        self.h = h
        self.children: List[_Node] = []
        self.vmas: List[Dict[str, Any]] = []
        self.members = [h]  # the identical siblings this node stands for
        self.pids: List[int] = []  # the processes of their VMAs
        self.sig: Any = None


def _vma_groups(vmas: List[Dict[str, Any]], names: Dict[int, str]) -> List[List[Dict[str, Any]]]:
    """VMAs of one anon_vma with the same range, prot and chain labels, together."""
    groups: Dict[Any, List[Dict[str, Any]]] = {}
    for v in vmas:
        key = (v["start"], v["end"], v["prot"], tuple(names[h] for h in _targets(v) if h != v["anon_vma"]))
        groups.setdefault(key, []).append(v)
    return list(groups.values())


def _tree(sim: Any, g: Any, names: Dict[int, str], collapse: int) -> List[_Node]:
    """The anon_vma forest (parent links, else the root) with identical siblings
    collapsed: runs of at least ``collapse`` siblings with the same counters, VMAs
    (ranges, prot, chain targets other than themselves) and subtrees become one node."""
    nodes = {a["anon_vma"]: _Node(a["anon_vma"]) for a in g["anon_vmas"]}
    for v in g["vmas"]:
        if v["anon_vma"] in nodes:
            nodes[v["anon_vma"]].vmas.append(v)
            nodes[v["anon_vma"]].pids.append(v["pid"])
    roots = []
    for a in g["anon_vmas"]:
        up = a["parent"] if a["parent"] != a["anon_vma"] else a["root"]
        if up != a["anon_vma"] and up in nodes:
            nodes[up].children.append(nodes[a["anon_vma"]])
        else:
            roots.append(nodes[a["anon_vma"]])

    def fold(n: _Node) -> Any:
        """Collapse ``n``'s children bottom-up; ``n``'s signature."""
        for c in n.children:
            fold(c)
        if collapse:
            kept: Dict[Any, _Node] = {}
            runs: Dict[Any, List[_Node]] = {}
            for c in n.children:
                runs.setdefault(c.sig, []).append(c)
            out = []
            for c in n.children:
                run = runs[c.sig]
                if len(run) < collapse:
                    out.append(c)
                elif c.sig not in kept:
                    kept[c.sig] = c
                    c.members = [m for r in run for m in r.members]
                    c.pids = sorted({p for r in run for p in r.pids})
                    out.append(c)
            n.children = out
        vsig = sorted((v["end"] - v["start"], v["prot"], len(_targets(v))) for v in n.vmas)
        if n.h < 0:
            return None
        n.sig = (counters(sim, n.h), tuple(vsig), tuple(sorted(repr((c.sig, len(c.members))) for c in n.children)))
        return n.sig

    top = _Node(-1)  # separate trees (2.6.34 keeps no root) are siblings too
    top.children = roots
    fold(top)
    return top.children


def _run_label(n: _Node, names: Dict[int, str]) -> str:
    """``av1..av300 ×300``: the first and last label of a collapsed run."""
    ls = sorted((names[m] for m in n.members), key=lambda t: int(t[2:]))
    return f"{ls[0]}..{ls[-1]} ×{len(ls)}"


def _range(vs: List[Dict[str, Any]]) -> str:
    pids = sorted({v["pid"] for v in vs})
    who = f"pid {pids[0]}" if len(pids) == 1 else f"{len(vs)} VMAs, pids {pids[0]}..{pids[-1]}"
    v = vs[0]
    return f"{who} [{v['start']:#x}, +{(v['end'] - v['start']) // 4096} pages) {v['prot'] or 'none'}"


def plot_state(sim: Any, ax: Any = None, collapse: int = 3) -> Any:
    """A matplotlib drawing of the same graph as :func:`to_dot`: the anon_vma tree
    (roots at the left, a dashed edge from each child to its parent, each node labelled as
    :func:`labels` does with the era's counters), and to the right of each anon_vma the
    VMAs whose new pages go to it (bold edge) with a thin edge to every other anon_vma on
    their chain. ``collapse``: a run of at least that many identical siblings (same
    counters, VMAs and subtrees) is drawn once and labelled ``×N`` (0: never), and VMAs
    of one anon_vma with the same range are drawn as one box, so a fork storm of
    hundreds of processes stays readable. ``ax.rmapsim_drawn`` (a dict) says what was
    drawn: nodes, parent edges, own and chain edges, and the collapsed groups."""
    import matplotlib.pyplot as plt

    from .errors import InvalidArgument, short_repr

    if isinstance(collapse, bool) or not isinstance(collapse, int) or collapse < 0 or collapse == 1:
        raise InvalidArgument(f"collapse={short_repr(collapse)} must be 0 (never) or an int >= 2")
    g = sim.graph()
    names = labels(sim, g)
    roots = _tree(sim, g, names, collapse)
    rows: List[Any] = []  # (depth, node, vma groups)

    def walk(n: _Node, depth: int) -> None:
        rows.append((depth, n, _vma_groups(n.vmas, names) if collapse else [[v] for v in n.vmas]))
        for c in n.children:
            walk(c, depth + 1)

    for r in roots:
        walk(r, 0)
    height = sum(max(2, len(gs)) for _, _, gs in rows)
    depth = max((d for d, _, _ in rows), default=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(9.0 + 1.2 * depth, max(2.2, 0.55 * height + 1.2)))
    return _draw_state(sim, ax, rows, names, depth, g)


#: Horizontal step of one tree level, and the row height, in data units.
_DX, _DY = 2.2, 1.0


def _draw_state(sim: Any, ax: Any, rows: List[Any], names: Dict[int, str], depth: int, g: Any) -> Any:
    """Lay the rows of :func:`plot_state` out and draw them: anon_vma boxes indented by
    depth, elbow parent edges (dashed), VMA boxes in a column on the right."""
    ypos: Dict[int, float] = {}
    xpos: Dict[int, float] = {}
    drawn: Dict[str, Any] = {"nodes": [], "parent_edges": 0, "own_edges": 0, "chain_edges": 0, "collapsed": {}}
    y, vx = 0.0, _DX * depth + 3.4
    boxes = []
    for d, n, gs in rows:
        for m in n.members:
            ypos[m], xpos[m] = -y, _DX * d
        label = names[n.h] if len(n.members) == 1 else _run_label(n, names)
        if len(n.members) > 1:
            drawn["collapsed"][label] = len(n.members)
        root = _root_mark(sim, n.h)
        text = "\n".join([f"{label}{root}"] + counters(sim, n.h).split(" · "))
        box = dict(boxstyle="round,pad=0.3", fc="#e8f0fe", ec="tab:blue")
        ax.text(_DX * d, -y, text, ha="left", va="center", fontsize=7, family="monospace", bbox=box, zorder=3)
        drawn["nodes"].append(label)
        for i, grp in enumerate(gs):
            boxes.append((vx, -(y + i * _DY), grp, n))
        y += _DY * max(1, len(gs), 1 + len(counters(sim, n.h).split(" · ")) // 2)
    for d, n, _ in rows:  # child -> parent: along the parent's left rail, then across
        for c in n.children:
            rail = _DX * d + 0.25
            ax.plot([_DX * (d + 1), rail, rail], [ypos[c.h], ypos[c.h], ypos[n.h] - 0.3], "--", color="0.35", lw=0.9)
            drawn["parent_edges"] += 1
    for bx, by, grp, n in boxes:
        v = grp[0]
        label = _range(grp)
        if len(n.members) > 1:
            pages = (v["end"] - v["start"]) // 4096
            label = (
                f"{len(n.pids)} VMAs, pids {n.pids[0]}..{n.pids[-1]}, one per {_run_label(n, names).split(' ')[0]}\n"
                f"[{v['start']:#x}, +{pages} pages) {v['prot'] or 'none'}"
            )
        box = dict(boxstyle="square,pad=0.3", fc="white", ec="0.3")
        ax.text(bx, by, label, ha="left", va="center", fontsize=7, family="monospace", bbox=box, zorder=3)
        for h in _targets(v):
            if h not in ypos:
                continue
            mine = h == v["anon_vma"]
            ax.plot(
                [bx, xpos[h] + 0.3],  # into the box, which is drawn over it
                [by, ypos[h]],
                color="tab:blue" if mine else "0.65",
                lw=2.0 if mine else 0.7,
                zorder=1 if mine else 0,
            )
            drawn["own_edges" if mine else "chain_edges"] += 1
    ax.set_xlim(-0.4, vx + 5.2)
    ax.set_ylim(-(y - 0.4), 0.8)
    ax.axis("off")
    n_av = len(g["anon_vmas"])
    folded = f" ({len(drawn['nodes'])} drawn, identical siblings collapsed)" if len(drawn["nodes"]) < n_av else ""
    procs = len({v["pid"] for v in g["vmas"]})
    ax.set_title(f"{sim.era}: {procs} processes, {len(g['vmas'])} VMAs, {n_av} anon_vmas{folded}", fontsize="medium")
    ax.text(
        0.0,
        -0.02,
        "dashed: anon_vma->parent · bold: vma->anon_vma (where new pages go) · thin: other anon_vma_chain entries",
        transform=ax.transAxes,
        fontsize=6.5,
        color="0.3",
        va="top",
    )
    ax.rmapsim_drawn = drawn
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
