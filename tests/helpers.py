"""Small helpers shared by the rmapsim tests.

Everything here reads simulator state through the public API only (docs/api-contract.md);
nothing here computes expected values -- the tests derive those from kernel rules.
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path

import pytest

import rmapsim

TESTS = Path(__file__).resolve().parent  # tests/
DATA = TESTS / "data"  # recordings, traces and C programs the tests read
ROOT = TESTS.parent  # the repository

PAGE = 4096
PAGE_SHIFT = 12
MMAP_BASE = 0x7F0000000000  # contract: addr=None searches top-down below this
MMAP_MIN_ADDR = 0x10000  # kernel default vm.mmap_min_addr
TASK_SIZE = 1 << 47  # x86-64 user address space (4-level paging)

# "The correct eras" reproduce kernels whose anon rmap is believed sound: check() must pass
# after every operation there. 2.6.34-rc1 is the anon_vma_chain patch as first posted, kept as
# a faithful *buggy* era (docs/bugs.md, the 2.6.34-rc1 rows): check() may fail there
# after a bug-triggering sequence, and tests must say so explicitly.
CORRECT_ERAS = ("2.6.33", "2.6.34")
BUGGY_ERAS = ("2.6.34-rc1",)
ALL_ERAS = ("2.6.33", "2.6.34-rc1", "2.6.34")  # oldest first, as rmapsim.eras() lists them


# the invariants (docs/contract.md#invariants) that 2.6.34-rc1's bugs are allowed to break:
# 1 rmap completeness, 2 page state, 3 chain/list symmetry, 4 same anon_vma => same chain,
# 6 accounting (the fork error-path leak)
RC1_INVARIANTS = (1, 2, 3, 4, 6)

# Every preset of issue 4, oldest first (rmapsim.eras() must list exactly these).
EVERY_ERA = (
    "2.6.33",
    "2.6.34-rc1",
    "2.6.34",
    "2.6.35",
    "3.0",
    "3.7",
    "3.8",
    "3.19",
    "6.0",
    "6.18",
    "7.0-rc1",
    "7.0",
)

# The faithful buggy eras and the invariants their bugs may break (docs/contract.md#eras-and-knobs, #invariants):
# 2.6.34-rc1 as above; 3.19's degree-based fork reuse (docs/bugs.md, CVE-2022-42703,
# CVE-2022-42703) hands an anon_vma to a second VMA of one mm with a different chain, which
# check() reports as invariant 4 at the fork that does it (check() after every operation);
# a later merge that throws the richer chain away loses rmap mappings (1), and once the
# anon_vma is freed page->mapping dangles (2). The randomised tests saw exactly these.
# 7.0-rc1 (issue 19; fixed by 3a206a8649f8 in 7.0-rc6): only after an allocation failure in
# dup_anon_vma's clone, the surviving merge target keeps the anon_vma uncounted and unlinked:
# 3 (its anon_vma is not on its chain) at once; later 5 (num_active_vmas against a recount,
# the kernel's unlink_anon_vmas warning), 4 (a VMA sharing its anon_vma has another chain),
# 1 (its new pages are not in the anon_vma's tree) and 2 (the anon_vma freed under it).
BUGGY_BREAKS = {"2.6.34-rc1": RC1_INVARIANTS, "3.19": (1, 2, 4), "7.0-rc1": (1, 2, 3, 4, 5)}
# ... and the invariant the *first* break names when check() runs after every operation
# (None: any of the above)
FIRST_BREAK = {"2.6.34-rc1": None, "3.19": 4, "7.0-rc1": 3}
# the presets of 6.18 and later (their syscall surface is 6.18's)
FROM_6_18 = ("6.18", "7.0-rc1", "7.0")
SOUND_ERAS = tuple(e for e in EVERY_ERA if e not in BUGGY_BREAKS)
ERAS = EVERY_ERA  # what the `era` / `sim` fixtures run: every era


# Per-era rules the tests rely on, written from docs/contract.md#eras-and-knobs and docs/eras.md
# sections 1-8 (test_stateful checks that the presets agree):
#   linking     legacy (one family anon_vma, VMAs on its list) | chain (anon_vma_chain)
#   prepare     anon_vma_prepare's neighbour reuse: any compatible | singular chain only
#   merge       is_mergeable_anon_vma: simple (either NULL or equal) | singular (965f55dea0e3:
#               "either NULL" only when the VMA checked has a singular chain) | 2025 (case by case)
#   index       what a walk enumerates: list | itree (entries covering the page index)
#   lock_root   walks lock the root anon_vma of the fork tree (2.6.35+) instead of their own
#   lock_shared walks take the lock shared (rwsem, 3.8+)
#   fork_reuse  anon_vma_fork reuses an old anon_vma: never | degree (3.19) | active (6.0)
#   wipeonfork  MADV_WIPEONFORK / MADV_KEEPONFORK exist (4.14+)
#   mremap_merges_next  growing in place merges with the next VMA (ca3d76b0aa80, 6.1)
#   swapin      anon_vma of a page read from swap and mapped shared: vma (vma->anon_vma) |
#               oldest (the oldest on the VMA's chain, 2.6.34-rc4) | root (2.6.35)
#   unaccount   mprotect to non-writable drops VM_ACCOUNT from an anonymous VMA without
#               anon_vma (6.7+)
#   swapin_keeps a page still anonymous in the swap cache keeps page->mapping when mapped again
#               (__page_set_anon_rmap returns early for PageAnon; 3.0+ here)
#   prepare_head anon_vma_prepare links its chain entry at the head of the anon_vma list
#               (list_add, 2.6.34-2.6.37; the tail again from 2.6.38: 3.0 here)
#   root_first  a VMA's chain, oldest entry first, starts with its fork tree's root; not where
#               anon_vma_clone reverses the chain (2.6.34-rc1 as posted; 7.0, bfc2b13b05a1)
def _rules(
    linking="chain",
    prepare="singular",
    merge="simple",
    index="list",
    lock_root=True,
    lock_shared=False,
    fork_reuse="never",
    wipeonfork=False,
    mremap_merges_next=False,
    swapin="root",
    unaccount=False,
    prepare_head=False,
    swapin_keeps=True,
    root_first=True,
):
    return dict(
        linking=linking,
        prepare=prepare,
        merge=merge,
        index=index,
        lock_root=lock_root,
        lock_shared=lock_shared,
        fork_reuse=fork_reuse,
        wipeonfork=wipeonfork,
        mremap_merges_next=mremap_merges_next,
        swapin=swapin,
        unaccount=unaccount,
        prepare_head=prepare_head,
        swapin_keeps=swapin_keeps,
        root_first=root_first,
    )


ERA_RULES = {
    "2.6.33": _rules(linking="legacy", prepare="any", lock_root=False, swapin="vma", swapin_keeps=False),
    "2.6.34-rc1": _rules(
        prepare="any", lock_root=False, swapin="vma", prepare_head=True, swapin_keeps=False, root_first=False
    ),
    "2.6.34": _rules(lock_root=False, swapin="oldest", prepare_head=True, swapin_keeps=False),
    "2.6.35": _rules(prepare_head=True, swapin_keeps=False),
    "3.0": _rules(merge="singular"),
    "3.7": _rules(merge="singular", index="itree"),
    "3.8": _rules(merge="singular", index="itree", lock_shared=True),
    "3.19": _rules(merge="singular", index="itree", lock_shared=True, fork_reuse="degree"),
    "6.0": _rules(merge="singular", index="itree", lock_shared=True, fork_reuse="active", wipeonfork=True),
    "6.18": _rules(
        merge="2025",
        index="itree",
        lock_shared=True,
        fork_reuse="active",
        wipeonfork=True,
        mremap_merges_next=True,
        unaccount=True,
    ),
}
# 7.0 (and its buggy 7.0-rc1) changed the allocation order of anon_vma_fork and
# anon_vma_clone and reversed cloned chains (issue 19's survey): of the rules, root_first.
ERA_RULES["7.0-rc1"] = ERA_RULES["7.0"] = dict(ERA_RULES["6.18"], root_first=False)

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

# struct sizes on x86-64 per docs/contract.md#struct-sizes
STRUCT_SIZES = {
    era: {"vm_area_struct": v, "anon_vma": a, "anon_vma_chain": c}
    for era, v, a, c in (
        ("2.6.33", 176, 24, 0),
        ("2.6.34-rc1", 176, 24, 48),
        ("2.6.34", 176, 24, 48),
        ("2.6.35", 176, 32, 48),
        ("3.0", 176, 64, 48),
        ("3.7", 184, 56, 64),
        ("3.8", 184, 56, 64),
        ("3.19", 200, 72, 64),
        ("6.0", 200, 96, 64),
        ("6.18", 192, 96, 64),
        # struct anon_vma / anon_vma_chain have the same text in 6.18.2 and 7.0-rc6 (not measured)
        ("7.0-rc1", 192, 96, 64),
        ("7.0", 192, 96, 64),
    )
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
        yield from range(v["start"], v["end"], PAGE)


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


def snapshot(sim, allocations: bool = True) -> dict:
    """Everything observable that a failed operation must leave untouched. With
    ``allocations=False`` the allocation counters are left out: under injected ENOMEM a
    failed attempt is still an attempt, and counts."""
    live = pids(sim)
    out = {
        "counts": counts(sim),
        "pids": live,
        "vmas": {pid: vmas(sim, pid) for pid in live},
        "layouts": {pid: sim.render_layout(pid) for pid in live},
        "anon_pages": anon_pages(sim),
        "page_infos": page_infos(sim),
        "page_map": page_map(sim),
    }
    if allocations:
        out["allocation_sites"] = dict(sim.allocation_sites())
    return out


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


# ---------------------------------------------------------------------------- issue 4 helpers

_LEGEND = re.compile(r"^  (av\d+=0x[0-9a-f]+)( av\d+=0x[0-9a-f]+)*$")
_VMA_LINE = re.compile(
    r"^  [A-Z] \[(0x[0-9a-f]+), (0x[0-9a-f]+)\) \d+ pages pgoff 0x[0-9a-f]+ \S+(?: \S+)? "
    r"anon_vma (\S+) chain \[([^\]]*)\]$",
    re.M,
)


def vma_chains(sim, pid) -> dict:
    """{VMA start: (anon_vma handle or None, [handles of its chain's anon_vmas, oldest first])}
    read from render_layout(pid) (api-contract.md: chains are listed oldest first, labels
    av0, av1, ... resolved by the last line). Cross-checked against vmas(pid)."""
    text = sim.render_layout(pid)
    lines = text.splitlines()
    legend = {}
    if lines and _LEGEND.match(lines[-1]):
        for item in lines[-1].split():
            label, h = item.split("=")
            legend[label] = int(h, 16)
    out = {}
    for m in _VMA_LINE.finditer(text):
        av = None if m.group(3) == "-" else legend[m.group(3)]
        out[int(m.group(1), 16)] = (av, [legend[x] for x in m.group(4).split()])
    vs = vmas(sim, pid)
    assert sorted(out) == [v["start"] for v in vs], f"cannot parse render_layout({pid}):\n{text}"
    for v in vs:
        av, chain = out[v["start"]]
        assert av == v["anon_vma"] and len(chain) == v["chain_len"], (v, out[v["start"]], text)
    return out


def merge_allowed(era, tgt, src) -> bool:
    """is_mergeable_anon_vma of the era for merging a range of VMA `src` into its neighbour
    `tgt` (vmas() dicts), anon_vma part only (docs/eras.md):
    simple    either has none, or both have the same;
    singular  (965f55dea0e3) "either NULL" only when the target's chain is singular;
    2025      unfaulted target: the source has no uncowed parents (singular chain);
              faulted target, unfaulted source: the target's chain is singular;
              both faulted: the same anon_vma."""
    rule = ERA_RULES[era]["merge"]
    a, b = tgt["anon_vma"], src["anon_vma"]
    if rule == "simple":
        return a is None or b is None or a == b
    if rule == "singular":
        return ((a is None or b is None) and tgt["chain_len"] == 1) or a == b
    assert rule == "2025", rule
    if a is None and b is not None:
        return src["chain_len"] == 1
    if a is not None and b is None:
        return tgt["chain_len"] == 1
    return a == b


def attrs_mergeable(a, b) -> bool:
    """a and b (vmas() dicts, a below b) touch, have the same prot and flags and
    contiguous pgoffs (is_mergeable_vma + the pgoff test of can_vma_merge_*)."""
    return (
        a["end"] == b["start"]
        and a["prot"] == b["prot"]
        and a["flags"] == b["flags"]
        and a["pgoff"] + ((a["end"] - a["start"]) >> PAGE_SHIFT) == b["pgoff"]
    )


def mergeable_both_ways(era, a, b) -> bool:
    """Adjacent a, b that vma_merge would join whichever of them was the range being
    changed: such neighbours are never left apart by the operations the randomised tests
    run. (Under the asymmetric singular-chain rule a pair mergeable in one direction only
    is a legitimate result: say a madvise over [a, b) changed a first, while b's flags
    still differed, then b, whose merge into unfaulted a is refused.)"""
    return attrs_mergeable(a, b) and merge_allowed(era, a, b) and merge_allowed(era, b, a)


def mergeable_either_way(era, a, b) -> bool:
    """Adjacent a, b that vma_merge would join in at least one direction."""
    return attrs_mergeable(a, b) and (merge_allowed(era, a, b) or merge_allowed(era, b, a))


# --------------------------------------------------------------------------- live programs
# tests/data/*.c are small C programs run on the live kernel; their recorded output
# (tests/data/*.out, first line a "#" comment naming the kernel) is the ground truth the
# simulator is compared with. Where the machine can, a test reruns the program.


def recorded_lines(path) -> list:
    """The recorded output of a live program, without its "#" header."""
    with open(path) as fh:
        return [line.rstrip("\n") for line in fh if not line.startswith("#")]


def kernel_at_least(major: int, minor: int, thp: bool = False) -> bool:
    """Is this Linux at least major.minor (and, with thp, built with transparent
    hugepages)?"""
    import os
    import platform

    m = re.match(r"(\d+)\.(\d+)", platform.release())
    if platform.system() != "Linux" or m is None or (int(m[1]), int(m[2])) < (major, minor):
        return False
    return not thp or os.path.isdir("/sys/kernel/mm/transparent_hugepage")


def run_c_program(source, tmp_path) -> list:
    """Build `source` with cc and run it; its stdout lines."""
    import subprocess

    exe = tmp_path / "prog"
    subprocess.run(["cc", "-O0", "-o", str(exe), str(source)], check=True, capture_output=True)
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30).stdout.splitlines()


# --------------------------------------------------------------------------- per-operation tests
# (the mm/ suites: test_mmap, test_rmap_prepare, test_rmap_fork, test_memory_wp, ...)
#
# Every test runs in every era of the `sim` fixture (conftest). 2.6.34-rc1 is the anon_vma_chain
# patch as first posted: where its rules differ from 2.6.34 (anon_vma_prepare reuses any
# compatible neighbour's anon_vma, with no singular-chain test), the test asserts rc1's own
# outcome, and where that outcome breaks an invariant, that check() reports it
# (helpers.expect_broken).
#
# Every expected number is derived by hand from what Linux does in the era (mm/mmap.c
# vma_merge / find_mergeable_anon_vma, mm/rmap.c anon_vma_prepare / anon_vma_fork /
# anon_vma_clone / unlink_anon_vmas, mm/memory.c do_anonymous_page / do_wp_page /
# copy_page_range), as summarised in docs/design.md and the 2010
# patch; the comment next to each assertion says which rule gives the number. Addresses: X
# (helpers) is a fixed, otherwise empty region used with MAP_FIXED semantics (mmap(addr=...)).

X = 0x4000_0000  # fixed test region: far from MMAP_BASE, above mmap_min_addr
RW = norm_prot("rw")
R = norm_prot("r")
RWX = norm_prot("rwx")


def assert_counts(sim, **expected):
    c = counts(sim)
    got = {k: c[k] for k in expected}
    assert got == expected, f"counts() = {c}"


def no_page_outside_vmas(sim, pid, addr):
    """page_at of an address no VMA covers raises BadAddress (nothing is mapped there)."""
    with pytest.raises(rmapsim.BadAddress, match=hex(addr)):
        sim.page_at(pid, addr)
    return True


def write_all(sim, pid, addr, npages):
    sim.touch(pid, addr, npages * PAGE, write=True)


def pages_of(sim, pid, addr, npages):
    return [page_at(sim, pid, addr + i * PAGE) for i in range(npages)]


def flags_of(sim, pid):
    """The madvise flags of each VMA (VM_ACCOUNT, set on every writable mapping here, left out)."""
    return [(v["start"], v["end"], v["flags"] - {"account"}) for v in vmas(sim, pid)]


def slot_of(sim, h):
    return sim.page_info(h)["swap_slot"]


# --------------------------------------------------------------------------- scenario helpers
# (column i of the fixed region X is page A(i); the historic-bug and prepare-reuse scenarios)

RC1 = "2.6.34-rc1"
XP = X >> PAGE_SHIFT


def A(i: int) -> int:
    return X + i * PAGE


def new_sim(era):
    sim = rmapsim.Simulator(era=era, seed=0)
    assert sim.era == era
    return sim


def pic(sim, *pids) -> str:
    out = []
    for q in pids:
        try:
            out.append(sim.render_layout(q))
        except Exception as e:  # pragma: no cover - failure messages only
            out.append(f"<render_layout({q}) failed: {e!r}>")
    return "\n" + "\n".join(out)


def page(sim, pid, col) -> int:
    h = sim.page_at(pid, A(col))
    assert h is not None, f"no page at column {col} of pid {pid}{pic(sim, pid)}"
    return int(h)


def info(sim, h) -> dict:
    d = sim.page_info(h)
    return {
        "anon_vma": int(d["anon_vma"]),
        "index": int(d["index"]),
        "mapcount": int(d["mapcount"]),
        "swap_slot": None if d["swap_slot"] is None else int(d["swap_slot"]),
    }


def vma_at(sim, pid, col) -> dict:
    for v in sim.vmas(pid):
        if int(v["start"]) <= A(col) < int(v["end"]):
            return v
    raise AssertionError(f"no VMA at column {col}{pic(sim, pid)}")


def av(sim, pid, col):
    a = vma_at(sim, pid, col)["anon_vma"]
    return None if a is None else int(a)


def walk(sim, h):
    """(mappings_found, mapcount) of a full rmap walk of one page."""
    r = scan_rows(sim.rmap_walk([h]))[0]
    return r["mappings_found"], r["mapcount"]


def check_ok(sim, *pids):
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:  # pragma: no cover - failure path
        raise AssertionError(f"check() failed: {e}{pic(sim, *pids)}") from None


def check_fails(sim, pattern, *pids):
    """check() must raise InvariantViolation with a message matching pattern."""
    try:
        sim.check()
    except rmapsim.InvariantViolation as e:
        msg = f"check() raised {e}; expected /{pattern}/{pic(sim, *pids)}"
        assert re.search(pattern, str(e)), msg
        return
    msg = f"check() passed; expected InvariantViolation /{pattern}/{pic(sim, *pids)}"
    raise AssertionError(msg)


def sites_delta(sim, fn):
    before = dict(sim.allocation_sites())
    out = fn()
    after = dict(sim.allocation_sites())
    delta = {k: int(after[k]) - int(before[k]) for k in after}
    return out, {k: d for k, d in delta.items() if d}


# --------------------------------------------------------------------------- era groups
# (the eras since 2010 by the rule a test depends on; docs/eras.md)

P = PAGE
BASE = 0x1000_0000  # a fixed region of the era tests (MAP_FIXED)
ALL = rmapsim.eras()  # what the library lists (test_presets checks it against EVERY_ERA)
CHAIN = [e for e in ALL if e != "2.6.33"]  # anon_vma_chain eras
NO_REUSE = ["2.6.34", "2.6.35", "3.0", "3.7", "3.8"]  # chain eras whose fork never reuses
REUSE = ["3.19", "6.0", "6.18", "7.0-rc1", "7.0"]  # anon_vma_fork reuses an old anon_vma (degree / active)
TREE = ["3.7", "3.8", "3.19", "6.0", "6.18", "7.0-rc1", "7.0"]  # interval-tree index (bf181b9f9d8d, 3.7)


# --------------------------------------------------------------------------- failure pictures
# Every Simulator a test makes is tracked (conftest wraps Simulator.__init__; track() adds
# others, e.g. restored snapshots); when the test fails, conftest's pytest_runtest_makereport
# adds every tracked simulator's address-space pictures (render_layout of each process, anon_vma
# labels global across its processes) to the report.

_TRACKED: list[weakref.ref] = []
MAX_PICTURED_SIMS = 4  # the most recent ones
MAX_PICTURED_PIDS = 12  # per simulator
MAX_PICTURE_CHARS = 20_000  # per simulator


def track(sim):
    """Record `sim` for the failure pictures of the running test; returns it."""
    _TRACKED[:] = [r for r in _TRACKED if r() is not None]
    _TRACKED.append(weakref.ref(sim))
    return sim


def clear_tracked():
    _TRACKED.clear()


def tracked():
    """The simulators made by the running test that are still alive, oldest first."""
    return [s for s in (r() for r in _TRACKED) if s is not None]


def failure_pictures() -> str:
    """Every process's picture of each tracked simulator (the last MAX_PICTURED_SIMS)."""
    sims = tracked()
    out = []
    first = max(0, len(sims) - MAX_PICTURED_SIMS)
    if first:
        out.append(f"({first} older simulator(s) of this test not shown)")
    for i, sim in enumerate(sims[first:], start=first + 1):
        try:
            ps = list(sim.pids())
            text = [f"=== simulator {i} of {len(sims)}: era {sim.era}, {len(ps)} process(es)"]
            for pid in ps[:MAX_PICTURED_PIDS]:
                text.append(sim.render_layout(int(pid)).rstrip("\n"))
            if len(ps) > MAX_PICTURED_PIDS:
                text.append(f"({len(ps) - MAX_PICTURED_PIDS} more process(es) not shown)")
            block = "\n".join(text)
        except Exception as e:  # a broken or busy simulator must not hide the real failure
            block = f"=== simulator {i}: no picture ({type(e).__name__}: {e})"
        if len(block) > MAX_PICTURE_CHARS:
            block = block[:MAX_PICTURE_CHARS] + "\n... (cut)"
        out.append(block)
    return "\n".join(out)


def expected_visits(sim, on_list: int, covering: int) -> int:
    """What a walk visits by the era's index (ERA_RULES "index"): every entry on the
    anon_vma's list (`on_list`), or from 3.7 (bf181b9f9d8d, the interval tree) only the
    entries whose pgoff range covers the page's index (`covering`)."""
    return on_list if ERA_RULES[sim.era]["index"] == "list" else covering


# what counted_run reads: the perf kmem counters of `rmapsim validate-kernel`, per cache
KMEM_KEYS = (
    "anon_vma_alloc",
    "anon_vma_free",
    "anon_vma_chain_alloc",
    "anon_vma_chain_free",
    "vm_area_struct_alloc",
    "vm_area_struct_free",
)


def counted_run(cmd, ids, flt, keys=KMEM_KEYS) -> dict:
    """Run `cmd`, a program that prints "ready", waits for a line, does what is measured,
    prints "done" and waits for a line again; the perf kmem counters of `rmapsim
    validate-kernel` (rmapsim.tools.kernel.perf.Counters with event ids `ids` and filters
    `flt`) are read at the two waits. Returns after - before for each of `keys`."""
    import subprocess

    from rmapsim.tools.kernel.perf import Counters

    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "ready"
        counters = Counters(proc.pid, ids, flt)
        try:
            before = counters.read()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
            after = counters.read()
        finally:
            counters.close()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            proc.wait(timeout=30)
    assert proc.returncode == 0, f"{cmd}: exited {proc.returncode}"
    return {k: after[k] - before[k] for k in keys}
