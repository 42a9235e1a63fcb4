"""``rmapsim eras``: the era presets and their knobs."""

from __future__ import annotations

import argparse
from typing import Any, Dict

from ... import DEFAULT_ERA, eras
from ...policy import Policy, knobs
from .._common import add_json, emit


def register(sub: Any) -> None:
    """Add ``rmapsim eras`` to the subparsers ``sub``."""
    e = sub.add_parser(
        "eras",
        help="print the era presets and their knobs as a table",
        description="Each era preset is a set of orthogonal knobs; this prints every preset's value of every knob.",
    )
    e.add_argument("--knobs", action="store_true", help="also describe each knob and the kernel change behind it")
    e.add_argument("--names", action="store_true", help="print only the preset names, one per line")
    add_json(e, "preset (era: its knob values) and per knob (knob); --names: era records only")
    e.set_defaults(run=run)


def format_eras_table() -> str:
    """Knobs (rows) by era preset (columns), each value as the API accepts it; the default
    era is marked with * (explained under the table, with the variant syntax)."""
    names = eras()
    cols = [dict(Policy.preset(e).values) for e in names]
    head = ["knob"] + [e + ("*" if e == DEFAULT_ERA else "") for e in names]
    rows = [[k.name] + [c[k.name] for c in cols] for k in knobs()]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    foot = [
        "",
        f"* {DEFAULT_ERA} is the default era: Simulator() without an era, and replay or fuzz without --era.",
        "Values are written as the API accepts them. A variant is a preset with knobs changed, written",
        "BASE+knob=value[,knob=value...] wherever an era is accepted, e.g. 6.0+fork_reuse=never;",
        "rmapsim eras --knobs describes each knob and the values it takes.",
    ]
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows] + foot)


def eras_json() -> Dict[str, Any]:
    """The default era, every preset's knob values, and each knob's meaning and kernel
    change, as one dict (``rmapsim eras --json`` prints the same as JSON Lines records)."""
    return {
        "default": DEFAULT_ERA,
        "variant_syntax": "BASE+knob=value[,knob=value...]",
        "eras": {e: dict(Policy.preset(e).values) for e in eras()},
        "knobs": [{"name": k.name, "meaning": k.meaning, "kernel": k.kernel} for k in knobs()],
    }


def run(args: argparse.Namespace) -> int:
    if args.json:
        for name in eras():
            emit("era", {"era": name, "default": name == DEFAULT_ERA, "knobs": dict(Policy.preset(name).values)})
        if not args.names:
            for k in knobs():
                emit("knob", {"knob": k.name, "meaning": k.meaning, "kernel": k.kernel})
        return 0
    if args.names:
        print("\n".join(eras()))
        return 0
    print(format_eras_table())
    if args.knobs:
        print()
        for k in knobs():
            print(f"{k.name}: {k.meaning} [{k.kernel}]")
    return 0
