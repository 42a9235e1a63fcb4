"""What the live driver runs: the scenarios, the driver's own start-up layout as read from
``/proc/<pid>/smaps``, and the constants both sides (kernel and simulator) share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

DRIVER_SOURCE = Path(__file__).with_name("kdriver") / "kdriver.c"  # shipped in the wheel beside this module
REGION = 0x200000000000
MOVED = 0x300000000000
CACHES = ("anon_vma", "anon_vma_chain", "vm_area_struct")
KINDS = ("alloc", "free")
#: Exit status of ``validate-kernel`` when the live kernel cannot be used (automake's "skipped").
EXIT_UNAVAILABLE = 77


class KernelUnavailable(RuntimeError):
    """The live kernel cannot be measured here; the message says why."""


@dataclass(frozen=True)
class Scenario:
    name: str
    unit: str
    doc: str
    sizes: Tuple[int, ...]
    degree: int = 1


SCENARIOS: Dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("fork", "child", "fork storm, no COW: N children of the driver, all alive", (1, 2, 4, 8, 16)),
        Scenario("fork_cow", "child", "fork storm, each child writes every region page (COW)", (1, 2, 4, 8, 16)),
        Scenario(
            "chain_alive",
            "generation",
            "generation chain, every generation writes then forks the next; parents stay alive",
            (1, 2, 3, 4, 6, 8),
            degree=2,
        ),
        Scenario(
            "chain_exit",
            "generation",
            "generation chain, each parent exits after forking (anon_vma reuse from N=2 on)",
            (2, 4, 8, 16),
        ),
        Scenario(
            "split_parent",
            "split",
            "driver forks 2 children, then mprotects N single pages (2 splits each)",
            (1, 2, 4, 8, 16),
        ),
        Scenario(
            "split_children",
            "child",
            "each child writes, then mprotects one middle page (splits in children)",
            (1, 2, 4, 8, 16),
        ),
        Scenario(
            "mremap_children", "child", "each child writes, then mremap-moves the region (copy_vma)", (1, 2, 4, 8, 16)
        ),
        Scenario("munmap_exit", "child", "each child munmaps the region's first page; all exit", (1, 2, 4, 8, 16)),
        Scenario(
            "pageout",
            "child",
            "N children; page 0 kept only by the first child, page 1 only by the last; both MADV_PAGEOUT "
            "(then timed at N = 2..1024)",
            (2, 4, 8, 16),
        ),
    ]
}


@dataclass
class Mapping:
    """One VMA of the driver at its start, from ``/proc/<pid>/smaps``."""

    start: int
    end: int
    prot: str
    offset: int
    path: str
    anonymous_kb: int

    @property
    def is_file(self) -> bool:
        return self.path.startswith("/")

    def to_json(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in ("start", "end", "prot", "offset", "path", "anonymous_kb")}


def parse_smaps(text: str) -> List[Mapping]:
    """The VMAs of an smaps file (``[vsyscall]`` is not a VMA and is dropped)."""
    out: List[Mapping] = []
    for line in text.splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and len(head[1]) == 4:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            path = " ".join(head[5:]) if len(head) > 5 else ""
            out.append(Mapping(lo, hi, head[1][:3].replace("-", ""), int(head[2], 16), path, 0))
        elif head[0] == "Anonymous:" and out:
            out[-1].anonymous_kb = int(head[1])
    return [m for m in out if m.path != "[vsyscall]"]
