"""Small helpers shared by the rmapsim tests.

Everything here reads simulator state through the public API only (docs/api-contract.md);
nothing here computes expected values -- the tests derive those from kernel rules.
"""

from __future__ import annotations

import re

PAGE = 4096
PAGE_SHIFT = 12
MMAP_BASE = 0x7F0000000000  # contract: addr=None searches top-down below this
MMAP_MIN_ADDR = 0x10000  # kernel default vm.mmap_min_addr
TASK_SIZE = 1 << 47  # x86-64 user address space (4-level paging)

ERAS = ("2.6.33", "2.6.34")

COUNT_KEYS = ("mm", "vma", "anon_vma", "anon_vma_chain", "page", "pte")

SCAN_COLUMNS = (
    "page",
    "anon_vma",
    "vmas_visited",
    "vmas_in_range",
    "ptes_checked",
    "mappings_found",
    "mapcount",
    "tree_nodes_visited",
    "lock_id",
    "lock_mode",
)

# struct sizes on x86-64 per SPEC.md section 3
STRUCT_SIZES = {
    "2.6.33": {"vm_area_struct": 176, "anon_vma": 24, "anon_vma_chain": 0},
    "2.6.34": {"vm_area_struct": 176, "anon_vma": 24, "anon_vma_chain": 48},
}


def is_chain_era(sim) -> bool:
    """True for eras with anon_vma_chain objects (2.6.34 here)."""
    return sim.era != "2.6.33"


def norm_prot(prot) -> frozenset:
    """Protection as a set of letters; "" and "none" are both the empty set."""
    return frozenset(str(prot)) & frozenset("rwx")


def counts(sim) -> dict:
    c = sim.counts()
    return {k: int(c[k]) for k in COUNT_KEYS}


def pids(sim) -> list:
    return sorted(int(p) for p in sim.pids())


def vmas(sim, pid) -> list:
    """vmas(pid) with plain ints and a normalised prot."""
    out = []
    for v in sim.vmas(pid):
        out.append(
            {
                "start": int(v["start"]),
                "end": int(v["end"]),
                "pgoff": int(v["pgoff"]),
                "prot": norm_prot(v["prot"]),
                "anon_vma": None if v["anon_vma"] is None else int(v["anon_vma"]),
                "chain_len": int(v["chain_len"]),
            }
        )
    return out


def layout(sim, pid) -> list:
    """(start, end, pgoff, prot) of every VMA of pid, in address order."""
    return [(v["start"], v["end"], v["pgoff"], v["prot"]) for v in vmas(sim, pid)]


def page_at(sim, pid, addr):
    h = sim.page_at(pid, addr)
    return None if h is None else int(h)


def anon_pages(sim) -> list:
    return sorted(int(h) for h in sim.anon_pages())


def mapped_page_addrs(sim, pid):
    """Every page address covered by a VMA of pid."""
    for v in vmas(sim, pid):
        for a in range(v["start"], v["end"], PAGE):
            yield a


def page_map(sim) -> dict:
    """{(pid, addr): page handle} for every anon page mapped anywhere."""
    out = {}
    for pid in pids(sim):
        for a in mapped_page_addrs(sim, pid):
            h = page_at(sim, pid, a)
            if h is not None:
                out[(pid, a)] = h
    return out


def sharing_partition(pmap: dict) -> list:
    """Group (pid, addr) pairs by the page they map; handle-independent canonical form."""
    groups = {}
    for key, h in pmap.items():
        groups.setdefault(h, []).append(key)
    return sorted(tuple(sorted(g)) for g in groups.values())


def snapshot(sim) -> dict:
    """Everything observable that a failed operation must leave untouched."""
    return {
        "counts": counts(sim),
        "pids": pids(sim),
        "vmas": {pid: vmas(sim, pid) for pid in pids(sim)},
        "anon_pages": anon_pages(sim),
        "page_map": page_map(sim),
    }


def scan_rows(stats) -> list:
    """ScanStats -> list of per-walk dicts of ints (also checks equal column lengths)."""
    n = len(stats)
    cols = {}
    for c in SCAN_COLUMNS:
        col = [int(x) for x in getattr(stats, c)]
        assert len(col) == n, f"column {c} has {len(col)} rows, len(stats) says {n}"
        cols[c] = col
    return [{c: cols[c][i] for c in SCAN_COLUMNS} for i in range(n)]


def walk_one(sim, page) -> dict:
    rows = scan_rows(sim.rmap_walk(pages=[int(page)]))
    assert len(rows) == 1
    return rows[0]


def coalesce(lay: list) -> list:
    """Merge adjacent (start, end, pgoff, prot) entries that describe one linear range with
    one prot. Two eras may legitimately cut the same page-level mapping into different VMAs
    (vma_merge refuses to merge prev and next whose anon_vmas differ, and which anon_vmas
    differ is era dependent), but the coalesced form is era independent."""
    out = []
    for s, e, pg, pr in lay:
        if out:
            ps, pe, ppg, ppr = out[-1]
            if pe == s and ppr == pr and ppg + ((pe - ps) >> PAGE_SHIFT) == pg:
                out[-1] = (ps, e, ppg, ppr)
                continue
        out.append((s, e, pg, pr))
    return out


def value_pattern(*values) -> str:
    """Regex matching any of the values as a whole token (decimal or 0x-hex as given)."""
    alts = []
    for v in values:
        if isinstance(v, int):
            alts.append(r"(?<![0-9a-fA-Fx])" + re.escape(str(v)) + r"(?![0-9])")
            alts.append(re.escape(hex(v)) + r"(?![0-9a-fA-F])")
        else:
            alts.append(re.escape(str(v)))
    return "(?i)(" + "|".join(alts) + ")"
