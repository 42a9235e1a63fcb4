"""Saved measurements: :func:`save` and :func:`load`, which checks every record of a file
(a malformed one raises InvalidArgument naming the file and the record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ... import PAGE_SIZE, TASK_SIZE
from ...errors import InvalidArgument
from .scenarios import CACHES, KINDS, SCENARIOS


def save(records: Sequence[Dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(list(records), indent=1) + "\n")


_PID_MAX = 4_194_304  # a run forks at most this many processes (the simulator's default pid_max)
_MAPPING_TYPES = {"start": int, "end": int, "prot": str, "offset": int, "path": str, "anonymous_kb": int}


def _check_record(rec: Any) -> Optional[str]:
    """What is wrong with one saved measurement record, or None."""
    if not isinstance(rec, dict):
        return f"not an object but {type(rec).__name__}"
    for key in ("scenario", "pages", "layout", "runs"):
        if key not in rec:
            return f"missing {key!r}"
    scen = SCENARIOS.get(rec["scenario"]) if isinstance(rec["scenario"], str) else None
    if scen is None:
        return f"unknown scenario {rec['scenario']!r}; known: {', '.join(SCENARIOS)}"
    pages = rec["pages"]
    if not isinstance(pages, int) or isinstance(pages, bool) or not 1 <= pages <= TASK_SIZE // PAGE_SIZE:
        return f"'pages' must be an integer within [1, {TASK_SIZE // PAGE_SIZE}], got {pages!r}"
    if not isinstance(rec["layout"], list) or not rec["layout"]:
        return "'layout' must be a non-empty list of mappings"
    for j, m in enumerate(rec["layout"]):
        if not isinstance(m, dict) or set(m) != set(_MAPPING_TYPES):
            return f"layout[{j}] must be an object with exactly the keys {', '.join(_MAPPING_TYPES)}"
        for k, t in _MAPPING_TYPES.items():
            if not isinstance(m[k], t) or isinstance(m[k], bool) or (t is int and m[k] < 0):
                return f"layout[{j}].{k} must be {'a non-negative integer' if t is int else 'a string'}, got {m[k]!r}"
        if not m["start"] < m["end"] <= TASK_SIZE or (m["start"] | m["end"]) % PAGE_SIZE:
            return f"layout[{j}] must be a page-aligned range within [0, {TASK_SIZE:#x}], got {m['start']:#x}-{m['end']:#x}"
    runs = rec["runs"]
    if not isinstance(runs, dict):
        return "'runs' must be an object {size: counts}"
    if len(runs) < scen.degree + 1:
        return (
            f"'runs' needs at least {scen.degree + 1} sizes to fit a degree-{scen.degree} polynomial, has {len(runs)}"
        )
    for n, counts in runs.items():
        if not (isinstance(n, str) and n.isdigit() and n.isascii() and 1 <= int(n) < _PID_MAX):
            return f"'runs' key {n!r} is not a size within [1, {_PID_MAX - 1}]"
        if not isinstance(counts, dict):
            return f"runs[{n}] must be an object of counts"
        for key in (f"{c}_{k}" for c in CACHES for k in KINDS):
            v = counts.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return f"runs[{n}].{key} must be a non-negative integer, got {v!r}"
    if "exit_frees_counted" in rec and not isinstance(rec["exit_frees_counted"], bool):
        return f"'exit_frees_counted' must be true or false, got {rec['exit_frees_counted']!r}"
    return _check_kernel_observed(rec.get("kernel_observed", {}))


def _check_kernel_observed(ko: Any) -> Optional[str]:
    """What is wrong with a record's optional ``kernel_observed`` (pageout: swap bits and timing), or None."""
    if not isinstance(ko, dict):
        return f"'kernel_observed' must be an object, got {ko!r}"
    t = ko.get("timing")
    if t is None:
        return None

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(t, dict):
        return f"'kernel_observed.timing' must be an object, got {t!r}"
    for key in ("sizes", "first_ns_per_page", "last_ns_per_page"):
        if not isinstance(t.get(key), list) or not all(number(v) for v in t[key]):
            return f"'kernel_observed.timing.{key}' must be a list of numbers, got {t.get(key)!r}"
    for key in ("first_slope_ns_per_child", "last_slope_ns_per_child", "last_r2"):
        if not number(t.get(key)):
            return f"'kernel_observed.timing.{key}' must be a number, got {t.get(key)!r}"
    return None


def load(path: Path) -> List[Dict[str, Any]]:
    """The records of a file written by :func:`save`, checked. A file that cannot be
    decoded, is not a JSON list, or holds a malformed record raises InvalidArgument
    naming the file and the line (decoding errors) or the record; OSError passes through."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InvalidArgument(f"{path}:{line}: cannot read measurements: not UTF-8 (byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"{path}:{e.lineno}: cannot read measurements: not JSON: {e.msg} (column {e.colno})"
        ) from None
    except RecursionError:
        raise InvalidArgument(f"{path}: cannot read measurements: JSON nested too deeply") from None
    if not isinstance(data, list):
        raise InvalidArgument(
            f"{path}: not a measurements file: a JSON list of records expected, got {type(data).__name__}"
        )
    for i, rec in enumerate(data):
        why = _check_record(rec)
        if why:
            name = f" ({rec['scenario']})" if isinstance(rec, dict) and isinstance(rec.get("scenario"), str) else ""
            raise InvalidArgument(f"{path}: record {i}{name}: {why}")
    return data
