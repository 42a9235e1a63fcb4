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

# "The correct eras" reproduce kernels whose anon rmap is believed sound: check() must pass
# after every operation there. 2.6.34-rc1 is the anon_vma_chain patch as first posted, kept as
# a faithful *buggy* era (kernel-eras.md section 11, bugs 2 and 3): check() may fail there
# after a bug-triggering sequence, and tests must say so explicitly.
CORRECT_ERAS = ("2.6.33", "2.6.34")
BUGGY_ERAS = ("2.6.34-rc1",)
ALL_ERAS = ("2.6.33", "2.6.34-rc1", "2.6.34")  # oldest first, as rmapsim.eras() lists them
ERAS = ALL_ERAS  # what the `era` / `sim` fixtures run


# the invariants (SPEC.md section 5) that 2.6.34-rc1's bugs are allowed to break:
# 1 rmap completeness, 2 page state, 3 chain/list symmetry, 4 same anon_vma => same chain,
# 6 accounting (the fork error-path leak)
RC1_INVARIANTS = (1, 2, 3, 4, 6)

COUNT_KEYS = ("mm", "vma", "anon_vma", "anon_vma_chain", "page", "pte", "swap_slot", "swap_cache")

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
    "2.6.34-rc1": {"vm_area_struct": 176, "anon_vma": 24, "anon_vma_chain": 48},
    "2.6.34": {"vm_area_struct": 176, "anon_vma": 24, "anon_vma_chain": 48},
}

ADVICE = ("normal", "random", "sequential", "dontfork", "dofork", "dontneed", "pageout")
LINUX_4_14_ADVICE = ("wipeonfork", "keeponfork")  # EINVAL in every 2.6.x era


def is_chain_era(sim) -> bool:
    """True for eras with anon_vma_chain objects (2.6.34-rc1 and 2.6.34 here)."""
    return sim.era != "2.6.33"


def invariant_number(exc) -> int:
    """The invariant number an InvariantViolation message names ("invariant N ...")."""
    m = re.search(r"invariant (\d+)", str(exc))
    assert m, f"InvariantViolation does not name its invariant: {exc}"
    return int(m.group(1))


def expect_broken(sim, *invariants, mark=True) -> int:
    """2.6.34-rc1 only: check() must raise InvariantViolation naming one of `invariants`.
    With mark=True, marks the simulator so that the `sim` fixture's teardown expects the
    breakage too (it still requires check() to fail with one of the invariants the rc1 bugs
    break); use mark=False when a later step of the test heals the state."""
    import rmapsim

    assert sim.era in BUGGY_ERAS, f"{sim.era} is a correct era: check() must pass there"
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:
        n = invariant_number(e)
        assert n in invariants, f"expected invariant {invariants}, got: {e}"
        if mark:
            sim._rmapsim_tests_broken = True
        return n
    raise AssertionError(f"{sim.era}: expected check() to report invariant {invariants}")


def norm_prot(prot) -> frozenset:
    """Protection as a set of letters; "" and "none" are both the empty set."""
    return frozenset(str(prot)) & frozenset("rwx")


def counts(sim) -> dict:
    c = sim.counts()
    return {k: int(c[k]) for k in COUNT_KEYS}


def pids(sim) -> list:
    return sorted(int(p) for p in sim.pids())


def vmas(sim, pid) -> list:
    """vmas(pid) with plain ints, a normalised prot and flags as a frozenset."""
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
                "flags": frozenset(v["flags"]),
            }
        )
    return out


def page_layout(sim, pid) -> dict:
    """Era-independent, page-level view of pid's VMAs: {page addr: (prot, flags, pgoff of
    that page, whether its VMA has an anon_vma)}. VMA boundaries are left out on purpose:
    eras may cut the same pages into different VMAs (vma_merge refuses prev/next whose
    anon_vmas differ, and which differ is era dependent)."""
    out = {}
    for v in vmas(sim, pid):
        for i, a in enumerate(range(v["start"], v["end"], PAGE)):
            assert a not in out, f"pid {pid}: page {a:#x} covered by two VMAs"
            out[a] = (v["prot"], v["flags"], v["pgoff"] + i, v["anon_vma"] is not None)
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


# render_layout's page-state row (api-contract.md): '.' no entry, 'z' zero page, 'p' anon page
# mapped once, 's' anon page mapped more than once, 'w' swap entry
STATE_KIND = {".": None, "z": "zero", "p": "page", "s": "page", "w": "swap"}


def layout_states(sim, pid) -> dict:
    """{page addr: state char} for every page of pid's VMAs, read from render_layout(pid).

    The picture is to scale for spans up to 160 pages; beyond that every gap is one column
    and every VMA at most 40 columns, so pages past a VMA's 40th are not shown (left out
    here). The VMA lines under the picture give each VMA's range."""
    text = sim.render_layout(pid)
    lines = text.splitlines()
    if "no VMAs" in lines[0]:
        return {}
    letters, states = lines[2][2:], lines[3][2:]
    ranges = [
        (int(m.group(1), 16), int(m.group(2), 16))
        for m in re.finditer(r"^  [A-Z] \[(0x[0-9a-f]+), (0x[0-9a-f]+)\)", text, re.M)
    ]
    runs = []  # (column of first page, number of columns) per VMA, in order
    col = 0
    while col < len(letters):
        if letters[col] == " ":
            col += 1
            continue
        start = col
        while col < len(letters) and letters[col] == letters[start]:
            col += 1
        runs.append((start, col - start))
    assert len(runs) == len(ranges), f"cannot parse render_layout({pid}):\n{text}"
    out = {}
    for (c0, ncols), (s, e) in zip(runs, ranges):
        npages = (e - s) // PAGE
        assert ncols == npages or (ncols == 40 and npages > 40), text
        for i in range(ncols):
            ch = states[c0 + i]
            assert ch in STATE_KIND, f"unknown page state {ch!r} in:\n{text}"
            out[s + i * PAGE] = ch
    return out


def entry_kinds(sim) -> dict:
    """{(pid, addr): "zero" | "page" | "swap"} for every populated page-table entry."""
    out = {}
    for pid in pids(sim):
        for a, ch in layout_states(sim, pid).items():
            if STATE_KIND[ch] is not None:
                out[(pid, a)] = STATE_KIND[ch]
    return out


def page_infos(sim) -> dict:
    """{handle: page_info(handle)} of every live anon page, as plain ints / None."""
    out = {}
    for h in anon_pages(sim):
        out[h] = {k: (None if v is None else int(v)) for k, v in sim.page_info(h).items()}
    return out


def snapshot(sim) -> dict:
    """Everything observable that a failed operation must leave untouched."""
    live = pids(sim)
    return {
        "counts": counts(sim),
        "pids": live,
        "vmas": {pid: vmas(sim, pid) for pid in live},
        "layouts": {pid: sim.render_layout(pid) for pid in live},
        "anon_pages": anon_pages(sim),
        "page_infos": page_infos(sim),
        "page_map": page_map(sim),
        "allocation_sites": dict(sim.allocation_sites()),
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
