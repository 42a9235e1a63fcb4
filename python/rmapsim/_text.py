"""Plain text tables, shared by the diff report and the command line."""

from __future__ import annotations

from typing import List


def render_table(head: List[str], body: List[List[str]], left: int = 1) -> str:
    """A plain text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def line(cells: List[str]) -> str:
        return "  ".join(c.rjust(w) if i >= left else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)
