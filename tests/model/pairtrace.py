"""Reproducers for the differential harness (test_reference_model.Pair): each operation the
harness applies, as version-1 trace lines, so a finding replays with `rmapsim replay`."""

from __future__ import annotations

import inspect
from typing import Dict, List, Optional

import rmapsim

_SIG = {
    name: inspect.signature(getattr(rmapsim.Simulator, name))
    for name in ("mmap", "munmap", "touch", "touch_many", "mprotect", "madvise", "mremap")
}


def _prot(p: str) -> str:
    return p.replace("-", "") or "none"


class TraceRecorder:
    """Trace lines of the ops a Pair applies. ``sym`` maps engine pids to trace symbols
    (p1, p2, ... in creation order). An op the trace format cannot say (a swap-cache
    page that no trace line can name) makes the recorder ``lost``."""

    def __init__(self) -> None:
        self.sym: Dict[int, int] = {}
        self.lines: List[str] = []
        self.lost: Optional[str] = None
        self.unnamed: Optional[str] = None  # the last op naming a pid the trace never created

    def _p(self, pid: int) -> str:
        if int(pid) not in self.sym:
            raise LookupError(pid)
        return f"p{self.sym[int(pid)]}"

    def created(self, pids) -> None:
        for pid in pids:
            self.sym[int(pid)] = len(self.sym) + 1

    def lines_for(
        self, sim: rmapsim.Simulator, model, name: str, args: tuple, kwargs: dict, page_fwd: dict
    ) -> List[str]:
        """The lines of one op, computed from the engine state before it runs (call
        :meth:`outcome` after it ran)."""
        self.unnamed = None
        try:
            return self._lines(sim, model, name, args, kwargs, page_fwd)
        except LookupError as e:  # a pid the run never created: the op fails and changes nothing
            self.unnamed = f"{name}{args}: pid {e} is not a trace symbol"
            return []
        except (TypeError, ValueError) as e:  # arguments no trace line can hold: fine if the op fails
            self.unnamed = f"{name}{args} {kwargs}: {e}"
            return []

    def _lines(self, sim, model, name, args, kwargs, page_fwd) -> List[str]:
        if name == "spawn":
            return ["spawn"]
        if name in ("fork", "exit", "exec"):
            return [f"{name} {self._p(args[0])}"]
        if name == "fork_many":
            return [f"fork {self._p(args[0])}"] * int(args[1])
        if name in ("try_to_unmap", "drop_swap_cache"):
            pages = args[0]
            if name == "drop_swap_cache":
                if pages is None:
                    return ["drop_swap_cache"]
                # Only unmapped swap-cache pages are dropped; each is named by a swap entry
                # referring to its slot (read from the model, which the harness has just
                # found in agreement with the engine).
                out = []
                for p in dict.fromkeys(pages):
                    page = model.pages.get(p)
                    if page is None or page.mapcount or page.slot is None:
                        continue
                    at = next(
                        (
                            (pid, a)
                            for pid, mm in sorted(model.mms.items())
                            for a, pte in sorted(mm.ptes.items())
                            if pte.kind == "swap" and pte.slot is page.slot
                        ),
                        None,
                    )
                    if at is None:
                        self.lost = self.lost or f"drop_swap_cache: page {p} has no swap entry to name it by"
                        continue
                    out.append(f"drop_swap_cache {self._p(at[0])} {at[1]:#x}")
                return out
            handles = [int(h) for h in sim.anon_pages()] if pages is None else [page_fwd[p] for p in pages]
            pids, addrs, hs = sim._page_mappings()
            where: Dict[int, tuple] = {}
            for pid, a, h in zip(pids.tolist(), addrs.tolist(), hs.tolist()):
                where.setdefault(h, (pid, a))
            seen, out = set(), []
            for h in handles:  # each page once, in order; an unmapped page has nothing to unmap
                if h in seen or h not in where:
                    continue
                seen.add(h)
                pid, a = where[h]
                out.append(f"try_to_unmap {self._p(pid)} {a:#x}")
            return out
        b = _SIG[name].bind(None, *args, **kwargs)
        b.apply_defaults()
        a = b.arguments
        if name == "mmap":
            if a["offset"] is not None and a["file"] is None:
                raise ValueError("an offset without a file")
            line = (
                f"mmap {self._p(a['pid'])} {'-' if a['addr'] is None else hex(a['addr'])} {a['length']:#x} "
                f"{_prot(a['prot'] or 'rw')}"
            )
            if a["file"] is not None:
                line += f" file {a['file']} {a['offset'] or 0:#x}"
            return [line + (" noreserve" if a["noreserve"] else "") + (" stack" if a["stack"] else "")]
        if name == "munmap":
            return [f"munmap {self._p(a['pid'])} {a['addr']:#x} {a['length']:#x}"]
        if name == "touch":
            return [f"touch {self._p(a['pid'])} {a['addr']:#x} {a['length']:#x} {'w' if a['write'] else 'r'}"]
        if name == "touch_many":
            return [
                f"touch {self._p(p)} {a['addr']:#x} {a['length']:#x} {'w' if a['write'] else 'r'}" for p in a["pids"]
            ]
        if name == "mprotect":
            return [f"mprotect {self._p(a['pid'])} {a['addr']:#x} {a['length']:#x} {_prot(a['prot'])}"]
        if name == "madvise":
            return [f"madvise {self._p(a['pid'])} {a['addr']:#x} {a['length']:#x} {a['advice']}"]
        if name == "mremap":
            line = (
                f"mremap {self._p(a['pid'])} {a['old_addr']:#x} {a['old_len']:#x} {a['new_len']:#x} "
                f"{'move' if a['may_move'] else 'nomove'}"
            )
            return [line + ("" if a["new_addr"] is None else f" {a['new_addr']:#x}")]
        raise AssertionError(f"no trace form for {name}")

    def outcome(self, ok: bool) -> None:
        """An op no trace line can say (an unknown pid, arguments a line cannot hold) must
        have failed, and then leaving it out changes nothing (a refused call leaves the
        state as it was); if it succeeded, the trace has lost track."""
        if ok and self.unnamed:
            self.lost = self.lost or self.unnamed

    def text(self, era: str) -> str:
        return "# rmapsim trace v1\n# era " + era + "\n" + "".join(f"{x}\n" for x in self.lines)
