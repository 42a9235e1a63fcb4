"""Publication figures of a sweep's rows (``rmapsim study``; from Python
:func:`plot_sweep`).

One panel per metric (or per value of a facet parameter); within a panel one line per
(variant, other swept parameter); series whose values are identical everywhere are drawn
once and the legend names every member, so no legend entry points at an invisible line.
Axis labels come from :func:`rmapsim.workloads.metric_label` (meaning and unit); the title
carries the workload and every parameter that is fixed. Log axes are used when the data
span at least :data:`LOG_SPAN` (a ratio) and are positive; ticks sit on the swept values
when there are few of them, with minor tick labels off, so labels never run together.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidArgument, short_repr
from .workloads import metric_label

#: y data spanning at least this ratio (max / min > 0) get a log axis; x (a swept
#: parameter, usually geometric) at least :data:`LOG_SPAN_X`.
LOG_SPAN = 20.0
LOG_SPAN_X = 10.0
#: At most this many distinct x values get a tick each.
MAX_VALUE_TICKS = 9
#: (marker, line style) pairs cycled with the colours so 30 series stay distinct.
STYLES = (("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"), ("X", "-."), ("*", ":"))
#: Series columns: the variant, plus each other swept parameter.
SERIES = "spec"


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(float(v)) else float(v)


def _values(rows: Sequence[Mapping[str, Any]], col: str) -> List[Any]:
    return list(dict.fromkeys(r.get(col) for r in rows))


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _tick_text(v: float) -> str:
    """Plain numbers: ``100``, ``10,000``, ``0.5``, ``2.5e-05`` only when tiny."""
    if float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2g}"


def _signature(workload: Optional[str]) -> Dict[str, Any]:
    """{parameter: default} of ``workload`` (empty for an unknown one)."""
    import inspect

    from . import workloads

    if workload not in workloads.WORKLOADS:
        return {}
    sig = inspect.signature(workloads.WORKLOADS[workload])
    return {k: p.default for k, p in sig.parameters.items() if k != "era"}


def _wants_log(vals: Sequence[float], span: float = LOG_SPAN) -> bool:
    vals = [v for v in vals if v is not None]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= span


def _col(param: str) -> str:
    """The row column of a grid key (``knob:NAME`` -> ``NAME``)."""
    return param[len("knob:") :] if param.startswith("knob:") else param


def describe(rows: Sequence[Mapping[str, Any]], params: Sequence[str]) -> Tuple[List[str], Dict[str, Any]]:
    """(swept parameters whose value varies, {fixed parameter: its one value})."""
    varying, fixed = [], {}
    for p in params:
        vals = _values(rows, _col(p))
        if len(vals) > 1:
            varying.append(p)
        elif vals:
            fixed[p] = vals[0]
    return varying, fixed


def plan(
    rows: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    x: Optional[str],
    ys: Sequence[str],
    facet: Optional[str] = None,
) -> Dict[str, Any]:
    """How the rows are drawn: the panels (``facet``: a metric per panel when several
    ``ys``, else a parameter, chosen automatically when the variants cross another
    varying parameter), and the columns that tell the series apart (``hue``)."""
    varying, fixed = describe(rows, params)
    # a swept knob is already told apart by the variant (spec) that ran
    others = [p for p in varying if p != x and not p.startswith("knob:")]
    if facet is None and len(ys) == 1 and others and len(_values(rows, SERIES)) > 1:
        facet = max(others, key=lambda p: (len(_values(rows, p)) <= 4, -len(_values(rows, p))))
    if facet is not None and facet not in others:
        raise InvalidArgument(
            f"facet={short_repr(facet)} must be a swept parameter with several values ({', '.join(others) or 'none'})"
        )
    if facet is not None and len(ys) > 1:
        raise InvalidArgument(
            "facet: several metrics already get a panel each; give one metric to facet by a parameter"
        )
    hue = [SERIES] + [p for p in others if p != facet]
    return {"varying": varying, "fixed": fixed, "facet": facet, "hue": hue}


def _unit(col: str) -> str:
    from .workloads import PARAMETERS

    return PARAMETERS.get(col, ("", ""))[1]


def _series_name(key: Tuple[Any, ...], hue: Sequence[str]) -> str:
    parts = [str(key[0])] + [f"{h.split(':')[-1]}={_fmt(v)}" for h, v in zip(hue[1:], key[1:])]
    return ", ".join(parts)


def _group(series: Dict[Tuple[Any, ...], Any]) -> List[Tuple[List[Tuple[Any, ...]], Any]]:
    """Series with identical data, grouped in first-seen order: [(keys, data)]."""
    groups: Dict[Any, List[Tuple[Any, ...]]] = {}
    data: Dict[Any, Any] = {}
    for k, d in series.items():
        sig = repr(d)
        groups.setdefault(sig, []).append(k)
        data[sig] = d
    return [(ks, data[sig]) for sig, ks in groups.items()]


def _label(keys: List[Tuple[Any, ...]], hue: Sequence[str]) -> str:
    names = [_series_name(k, hue) for k in keys]
    text = ", ".join(names) if len(names) == 1 else f"{', '.join(names)} (identical)"
    return "\n".join(textwrap.wrap(text, 34, break_long_words=False, break_on_hyphens=False))


def _ticks(ax: Any, axis: str, values: Sequence[float], log: bool) -> None:
    """Major ticks on the data values when few, plain numbers, no minor labels."""
    import matplotlib.ticker as mt

    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log" if log else "linear")
    vals = sorted(set(values))
    if axis == "x" and len(vals) <= MAX_VALUE_TICKS:
        a.set_major_locator(mt.FixedLocator(vals))
    elif log:
        decades = math.log10(max(vals) / min(vals)) if vals and min(vals) > 0 else 9
        subs = (1.0, 2.0, 5.0) if decades < 2.5 else (1.0,)
        a.set_major_locator(mt.LogLocator(base=10, subs=subs, numticks=10))
        if axis == "y" and vals and min(vals) > 0:  # a labelled tick below the lowest point
            low = 10 ** math.floor(math.log10(min(vals)))
            ax.set_ylim(bottom=max(s * low for s in subs if s * low <= min(vals)) * 0.9)
    else:
        a.set_major_locator(mt.MaxNLocator(nbins=6, integer=all(float(v).is_integer() for v in vals)))
    a.set_major_formatter(mt.FuncFormatter(lambda v, _pos: _tick_text(v)))
    a.set_minor_formatter(mt.NullFormatter())
    if not log:
        a.set_minor_locator(mt.NullLocator())


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    x: Optional[str] = None,
    y: Any = "mean_vmas_visited",
    *,
    workload: Optional[str] = None,
    facet: Optional[str] = None,
    title: Optional[str] = None,
    xlabel: Optional[str] = None,
    ylabel: Optional[str] = None,
) -> Any:
    """A matplotlib Figure of sweep ``rows``: ``y`` (a metric or a list of metrics, one
    panel each) against the swept parameter ``x`` (None: one bar per variant), a line
    per :func:`plan` series. ``params``: the swept columns (knobs by column name).
    ``title``/``xlabel``/``ylabel`` replace the automatic ones. Rows whose ``y`` is not a
    number (a crashed run) are left out and named in a note under the figure."""
    import matplotlib.pyplot as plt

    if not isinstance(rows, Sequence) or not rows or not all(isinstance(r, Mapping) for r in rows):
        raise InvalidArgument(f"rows must be a non-empty list of sweep rows, got {short_repr(rows)}")
    ys = [y] if isinstance(y, str) else list(y)
    for col in ys + ([x] if x else []):
        if not isinstance(col, str) or col not in rows[0]:
            raise InvalidArgument(f"column {short_repr(col)} is not in the rows; columns: {', '.join(rows[0])}")
    workload = workload or str(rows[0].get("workload", ""))
    defaults = _signature(workload)
    # the workload's parameters in the rows count as swept even when not named in params
    params = list(dict.fromkeys([*params, *(k for k in defaults if k in rows[0])]))
    pl = plan(rows, params, x, ys, facet)
    hue, fcol = pl["hue"], pl["facet"]
    panels: List[Tuple[str, Any]] = (
        [(m, None) for m in ys] if fcol is None else [(ys[0], v) for v in _values(rows, fcol)]
    )
    notes, crashed = _notes(rows, ys)
    series = _series(rows, panels, hue, x, fcol)
    groups = _group(series)
    if any(len(ks) > 1 for ks, _ in groups):
        notes.append("series with identical values are drawn once; the legend lists them together")
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    by_param = fcol is not None
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols + 3.2, 3.4 * nrows + 1.0), squeeze=False, sharex=by_param, sharey=by_param
    )
    all_y = [v for _, d in groups for pts in d for _, v in pts]
    flat = [a for row in axes for a in row]
    for a in flat[len(panels) :]:
        a.set_visible(False)
    cats = list(dict.fromkeys(str(r[SERIES]) for r in rows))
    for i, ((metric, fv), ax) in enumerate(zip(panels, flat)):
        yvals = [v for _, d in groups for _, v in d[i]]
        if x:
            _lines(ax, groups, i, crashed, hue)
            xs = [float(r[x]) for r in rows]
            _ticks(ax, "x", xs, _wants_log(xs, LOG_SPAN_X))
            ax.set_xlabel(xlabel or metric_label(x))
        else:
            _bars(ax, groups, i, cats, crashed)
            ax.set_xlabel(xlabel or "era / variant")
        ys_here = all_y if by_param else yvals
        # bars start at 0: a log axis would cut them off at an arbitrary floor
        _ticks(ax, "y", ys_here or [1.0], bool(x) and _wants_log(ys_here))
        if not by_param or i % ncols == 0:
            ax.set_ylabel(ylabel or "\n".join(textwrap.wrap(metric_label(metric), 34)))
        if by_param:
            unit = _unit(fcol)
            shown = unit if unit and unit != fcol else ""  # "pages = 2", not "pages = 2 pages"
            ax.set_title(f"{fcol} = {_fmt(fv)}{' ' + shown if shown else ''}", fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
    fixed_values = {**pl["fixed"], **{k: v for k, v in defaults.items() if k not in rows[0]}}
    fixed = ", ".join(f"{_col(k)} = {_fmt(v)}" for k, v in fixed_values.items())
    if title is None:
        title = workload + (f" ({fixed})" if fixed else "")
    handles, labels = flat[0].get_legend_handles_labels()
    right = 1.0
    if x and handles:
        right = 1.0 - 2.9 / fig.get_figwidth()
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(right, 0.92), fontsize="small", frameon=False)
    fig.suptitle(title)
    if notes:
        fig.text(0.01, 0.005, "\n".join(notes), fontsize="x-small", va="bottom", ha="left", wrap=True)
    fig.tight_layout(rect=(0.0, 0.04 * len(notes), right, 0.95))
    shown = [a.get_position() for a in flat[: len(panels)]]
    fig._suptitle.set_x((min(p.x0 for p in shown) + max(p.x1 for p in shown)) / 2)  # over the panels
    fig._rmapsim_plan = pl  # for tests and callers: what was drawn how
    fig._rmapsim_groups = [[_series_name(k, hue) for k in ks] for ks, _ in groups]
    return fig


def _notes(rows: Sequence[Mapping[str, Any]], ys: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(notes under the figure, the variants whose run crashed)."""
    notes = []
    missing = [r for r in rows if any(_num(r.get(m)) is None for m in ys)]
    if missing:
        notes.append("no value: " + ", ".join(dict.fromkeys(str(r[SERIES]) for r in missing)))
    crashed = list(dict.fromkeys(str(r[SERIES]) for r in rows if r.get("crash")))
    if crashed:
        notes.append(
            f"hatched / dotted: the run crashed on the era's own bug ({', '.join(crashed)}; "
            "the 'crash' column); values cover the run up to the crash"
        )
    return notes, crashed


def _series(
    rows: Sequence[Mapping[str, Any]], panels: Sequence[Tuple[str, Any]], hue: Sequence[str], x: Any, fcol: Any
) -> Dict[Tuple[Any, ...], List[List[Tuple[Any, float]]]]:
    """{series key: per panel, the sorted (x, y) points}, over every panel so that
    coincidence is judged on the whole figure."""
    series: Dict[Tuple[Any, ...], List[List[Tuple[Any, float]]]] = {}
    for r in rows:
        key = tuple(r.get(h) for h in hue)
        per_panel = series.setdefault(key, [[] for _ in panels])
        for i, (m, fv) in enumerate(panels):
            if (fcol is None or r.get(fcol) == fv) and _num(r.get(m)) is not None:
                per_panel[i].append((r.get(x) if x else r[SERIES], float(r[m])))
    for d in series.values():
        for pts in d:
            pts.sort(key=lambda p: (p[0] is None, p[0]) if x else 0)
    return series


def _lines(ax: Any, groups: Any, i: int, crashed: Sequence[str], hue: Sequence[str]) -> None:
    """One line per group of identical series in panel ``i``: colour, marker and style
    all differ from the neighbours'; a crashed run dotted."""
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, (keys, d) in enumerate(groups):
        m, ls = STYLES[g % len(STYLES)]
        broken = any(str(k[0]) in crashed for k in keys)
        ax.plot(
            [p[0] for p in d[i]],
            [p[1] for p in d[i]],
            marker=m,
            linestyle=":" if broken else ls,
            color=colors[g % len(colors)],
            markersize=6,
            label=_label(keys, hue),
        )


def _bars(ax: Any, groups: Any, i: int, cats: List[str], crashed: Sequence[str]) -> None:
    """No swept x: one bar per variant (rotated labels); a crashed run hatched, a
    missing value marked."""
    value = {str(k[0]): v for ks, d in groups for k in ks for _, v in d[i][:1]}
    for j, c in enumerate(cats):
        if c in value:
            ax.bar(
                j,
                value[c],
                color="white" if c in crashed else "tab:blue",
                hatch="///" if c in crashed else None,
                edgecolor="tab:red" if c in crashed else "black",
                linewidth=0.6,
            )
        else:
            ax.text(j, 0, "no value", rotation=90, ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(list(range(len(cats))))
    ax.set_xticklabels(cats, rotation=60, ha="right", fontsize="small")


def save(fig: Any, out_dir: str, name: str = "cost", formats: Sequence[str] = ("png", "svg")) -> List[str]:
    """Write ``fig`` as ``out_dir/name.FORMAT`` for each format; the paths written."""
    import os

    paths = []
    for f in formats:
        path = os.path.join(out_dir, f"{name}.{f}")
        fig.savefig(path, dpi=150 if f == "png" else None, bbox_inches="tight", pad_inches=0.1)
        paths.append(path)
    return paths
