"""The page-level model of the randomised tests (test_stateful, test_differential,
test_long_runs).

The page-level model (`Model`) is era independent (docs/contract.md#operations: every era produces the
same abstract state). It predicts, for every (pid, page address): no VMA / no entry / zero
page / which anon page / which swap slot, plus every page's mapcount and swap-cache state.
It is written from the kernel's rules (mm/memory.c, mm/rmap.c, mm/swapfile.c, mm/mremap.c,
mm/madvise.c of 2.6.33/2.6.34, unchanged in what it predicts up to 6.18), not from the
simulator's code:

* mmap gives fresh pages with no entry; MAP_FIXED unmaps first; munmap / exit / exec /
  MADV_DONTNEED zap entries. Zapping a page's last mapping frees it, unless it is in the swap
  cache and a swap entry still refers to its slot (free_swap_cache -> try_to_free_swap);
  zapping a slot's last swap entry frees the slot, and its swap-cache page too if nothing
  maps that page (free_swap_and_cache). A COW copy drops the old page's mapping without
  free_swap_cache (it cannot leave an unreferenced swap-cache page behind).
* a read fault on no entry maps the zero page (no anon page, no anon_vma); a write fault on
  no entry / the zero page allocates a new page (do_anonymous_page, do_wp_page on a non-anon
  page).
* a write fault on an anon page reuses it when reuse_swap_page says so -- page_mapcount 1 and,
  for a swap-cache page, no swap entry left for its slot (the page then leaves the swap cache)
  -- and copies it otherwise (do_wp_page).
* try_to_unmap puts the page in the swap cache (a slot, the one it has if it is already
  there) and turns every mapping into a swap entry of that slot; drop_swap_cache frees
  unmapped swap-cache pages (the slot lives on while entries refer to it).
* a fault on a swap entry (do_swap_page) maps the slot's swap-cache page, or a new page read
  into the swap cache. A read fault maps it and leaves it in the swap cache; a write fault
  takes it exclusively (out of the swap cache) when no one maps it and no other entry refers
  to the slot (reuse_swap_page), else maps it then copies it (do_wp_page).
* fork shares every anon page and swap entry of each VMA that has an anon_vma (copy_page_range
  skips VMAs without one: their zero-page PTEs are not copied), skips VM_DONTCOPY VMAs, and
  gives VM_WIPEONFORK VMAs (4.14+: eras 6.0, 6.18) to the child empty, without anon_vma.
* mprotect changes prot only; madvise normal/random/sequential/dontfork/dofork (and
  wipeonfork/keeponfork where they exist) set and clear VM_RAND_READ / VM_SEQ_READ /
  VM_DONTCOPY / VM_WIPEONFORK as madvise_behavior does; pageout reclaims the pages of the
  range that only this mapping maps (page_mapcount == 1).
* mremap: shrink unmaps the tail; grow in place needs the old range to end its VMA and room
  after it; otherwise may_move moves it (move_vma: entries move unchanged; a faulted VMA keeps
  its pgoff, an unfaulted one gets new_addr >> 12 -- copy_vma); new_addr is MREMAP_FIXED.
  A pure move (MREMAP_FIXED, same length) over several VMAs moves each part, holes kept, in
  6.17+ (remap_move; 6.18 here), and is EFAULT before.

What the model cannot know without re-implementing era-dependent vma_merge is where the
VMA boundaries are and whether a VMA has an anon_vma; those two it reads from the simulator
(VMA boundaries decide mremap's EFAULT / grow-in-place; the anon_vma decides fork's
copy_page_range).

On top of the page-level model, rmap-level properties are checked in every era from its
rules (helpers.ERA_RULES, from docs/contract.md#eras-and-knobs): a full rmap_walk finds exactly the true
mappings of every page (mappings_found == mapcount); it enumerates exactly the VMAs whose
chain holds the page's anon_vma (list eras) or, of those, the ones whose pgoff range covers
the page (interval-tree eras); it takes the lock of the anon_vma or of its root (the oldest
entry of every chain holding it, 2.6.35+), exclusive or shared (3.8+); 2.6.33's
page->mapping == vma->anon_vma; memory() uses the era's struct sizes. The machine also
checks where a fault puts a page it creates or takes over (Model.touch): vma->anon_vma for a
new page, a COW copy, a COW reuse of a write-protected entry (page_move_anon_rmap) and a page
read from swap and taken exclusively; the era's swap-in target (vma->anon_vma / the oldest
anon_vma on the VMA's chain / the root, which is that oldest) for one read and shared.

The faithful buggy eras run the same machine with a correct era in lockstep (2.6.34-rc1 with
2.6.34, 3.19 with 6.0: the eras whose rules differ only by the bug). Their check() may fail,
naming only the invariants their bugs break (helpers.BUGGY_BREAKS); the lockstep era must
then pass check() and show the same page-level state (the bugs break rmap, not the page
tables). The machine stops driving a buggy era once it broke. `pytest -s` prints how often.

The differential test runs the same random calls on all ten eras and compares results,
page-level state, sharing and swap, and the VMA boundaries of eras with the same merge rule
(simple 2.6.33-2.6.35 / singular chain 3.0-6.0 / 2025 6.18; for forked processes also the
same linking, legacy or chain): is_mergeable_anon_vma decides which pieces merge, and
whether an unfaulted neighbour is absorbed by a faulted VMA (then it has an anon_vma, and
fork copies its zero-page entries). Across merge rules the page-level state is compared
without those two (zero-page entries and "has an anon_vma").

test_long_runs drives 6.18 and 6.0 for hundreds of steps with check() after every one, and
3.19 until it breaks, replaying every broken sequence on 6.0 and 6.18.

Known issues the randomised tests steer around (each pinned by a unit test in the mm/ suites,
by the Rust tests or below):
* copy_vma merging a moved faulted range into an unfaulted neighbour (a latent 2.6.3x defect
  the simulator reproduces faithfully in the "simple" merge eras 2.6.33-2.6.35: check()
  fails) -- see copy_vma_into_unfaulted; 3.0+ refuse or handle that merge, so the machines
  of those eras run it and the differential goes on with them
  (test_differential_goes_past_the_copy_vma_defect);
* mremap growing in place next to a mergeable VMA: eras before 6.1 leave them unmerged,
  6.18 merges them (ca3d76b0aa80, "mm: add merging after mremap resize";
  test_mremap_grow_merges_next_in_6_18): the machines keep clear of it.
"""

from __future__ import annotations

import itertools
from collections import Counter

import hypothesis.strategies as st

import rmapsim

from helpers import BUGGY_BREAKS, MMAP_BASE, PAGE, PAGE_SHIFT, norm_prot

WINDOW = 24  # pages of fixed-address playground right below mmap_base, where addr=None lands
WIN_LO = MMAP_BASE - WINDOW * PAGE
PROTS = ("rw", "rw", "rw", "r", "rwx", "wr", "w", "x", "none")
MPROTECT_PROTS = ("r", "rw", "rw", "none")
MAX_PROCS = 5
IDX = st.integers(0, 1 << 16)

ZERO, PAGEK, SWAP = "zero", "page", "swap"  # entry kinds; None = no entry

# how often the state machine of each buggy era drove it into one of its bugs (printed with -s)
BREAK_STATS = {era: {"runs": 0, "broke": 0, "diverged": 0, "invariants": Counter()} for era in BUGGY_BREAKS}
# how often a run stopped at the known copy_vma defect (see copy_vma_into_unfaulted)
KNOWN_DEFECT_HITS = Counter()


# --------------------------------------------------------------------------- page-level model


class Pte:
    """One page of a VMA in the model: its VMA's prot and flags, its linear pgoff, and the
    page-table entry (kind None / ZERO / PAGEK with a page id / SWAP with a slot id). wp:
    is a present entry surely write-protected (True: fork wrprotects both sides of a COW
    mapping), surely writable (False: after a write fault) or unknown (None)?"""

    __slots__ = ("prot", "flags", "pgoff", "kind", "ref", "wp")

    def __init__(self, prot, flags, pgoff, kind=None, ref=None, wp=None):
        self.prot, self.flags, self.pgoff, self.kind, self.ref, self.wp = prot, flags, pgoff, kind, ref, wp

    def copy(self):
        return Pte(self.prot, self.flags, self.pgoff, self.kind, self.ref, self.wp)


FLAG_ADVICE = {
    # madvise_behavior(): new_flags from vm_flags
    "normal": (frozenset({"rand", "seq"}), frozenset()),
    "random": (frozenset({"seq"}), frozenset({"rand"})),
    "sequential": (frozenset({"rand"}), frozenset({"seq"})),
    "dontfork": (frozenset(), frozenset({"dontcopy"})),
    "dofork": (frozenset({"dontcopy"}), frozenset()),
    # 4.14+
    "wipeonfork": (frozenset(), frozenset({"wipeonfork"})),
    "keeponfork": (frozenset({"wipeonfork"}), frozenset()),
}


class Model:
    """Era-independent abstract state (see the module docstring for the rules)."""

    def __init__(self):
        self.procs = {}  # pid -> {page addr: Pte}
        self.pages = {}  # live page id -> swap slot id while in the swap cache, else None
        self.slots = {}  # live slot id -> page id in the swap cache, or None
        self.index = {}  # page id -> page->index: the linear pgoff it was faulted in at
        self.swapins = 0  # statistics only
        self.unaccount = False  # the era's mprotect_unaccounts (6.7+), set by the machine
        self.next_pid = 1
        self._ids = itertools.count(1)

    # ---- derived views

    def mapcount(self) -> Counter:
        return Counter(e.ref for m in self.procs.values() for e in m.values() if e.kind == PAGEK)

    def swapcount(self) -> Counter:
        return Counter(e.ref for m in self.procs.values() for e in m.values() if e.kind == SWAP)

    def kinds(self) -> dict:
        return {(pid, a): e.kind for pid, m in self.procs.items() for a, e in m.items() if e.kind}

    def page_map(self) -> dict:
        return {(pid, a): e.ref for pid, m in self.procs.items() for a, e in m.items() if e.kind == PAGEK}

    def swap_map(self) -> dict:
        return {(pid, a): e.ref for pid, m in self.procs.items() for a, e in m.items() if e.kind == SWAP}

    def addrs(self, addr, n):
        return [addr + i * PAGE for i in range(n)]

    def all_mapped(self, pid, addr, n):
        return all(a in self.procs[pid] for a in self.addrs(addr, n))

    def free_range(self, pid, addr, n):
        return all(a not in self.procs[pid] for a in self.addrs(addr, n))

    # ---- reference bookkeeping

    def _new_page(self, index, slot=None):
        p = next(self._ids)
        self.pages[p] = slot
        self.index[p] = index
        if slot is not None:
            self.slots[slot] = p
        return p

    def _release(self, dropped, zap=True):
        """Entries (kind, ref) were removed from page tables: free what nothing holds.
        zap: by zap_pte_range (munmap, exit, exec, DONTNEED), not by a COW fault."""
        mc, sc = self.mapcount(), self.swapcount()
        for kind, ref in dropped:
            if kind == PAGEK and ref in self.pages and mc[ref] == 0:
                # page_remove_rmap of the last mapping: the page is freed unless the swap
                # cache holds it; a zap's tlb_remove_page -> free_swap_cache ->
                # try_to_free_swap also deletes an unmapped page from the swap cache when
                # no swap entry refers to its slot (page_swapcount == 0)
                slot = self.pages[ref]
                if slot is None:
                    del self.pages[ref]
                elif sc[slot] == 0:
                    assert zap, "a COW fault cannot leave an unreferenced swap-cache page"
                    del self.pages[ref]
                    del self.slots[slot]
            elif kind == SWAP and ref in self.slots and sc[ref] == 0:
                # free_swap_and_cache: the last entry is gone; an unmapped swap-cache page
                # goes with it, a mapped one keeps the slot (SWAP_HAS_CACHE)
                cache = self.slots[ref]
                if cache is None:
                    del self.slots[ref]
                elif mc[cache] == 0:
                    del self.pages[cache]
                    del self.slots[ref]

    def _zap(self, pid, addrs):
        m = self.procs[pid]
        dropped = []
        for a in addrs:
            e = m.get(a)
            if e is not None and e.kind in (PAGEK, SWAP):
                dropped.append((e.kind, e.ref))
            if e is not None:
                e.kind = e.ref = None
        self._release(dropped)

    def _unmap(self, pid, addrs):
        self._zap(pid, addrs)
        for a in addrs:
            self.procs[pid].pop(a, None)

    # ---- process lifecycle

    def spawn(self):
        pid = self.next_pid
        self.next_pid += 1
        self.procs[pid] = {}
        return pid

    def fork(self, pid, has_anon_vma):
        """has_anon_vma: {addr: bool} for pid's pages, read from the simulator."""
        child = self.next_pid
        self.next_pid += 1
        m = {}
        for a, e in self.procs[pid].items():
            if "dontcopy" in e.flags:
                continue  # dup_mmap skips VM_DONTCOPY
            if e.kind == PAGEK and "wipeonfork" not in e.flags:
                e.wp = True  # copy_one_pte: ptep_set_wrprotect on a COW mapping
            c = e.copy()
            if "wipeonfork" in e.flags:
                # dup_mmap: "VM_WIPEONFORK gets a clean slate in the child" -- no anon_vma,
                # no copy_page_range (flags, VM_WIPEONFORK included, are inherited)
                c.kind = c.ref = None
            elif not has_anon_vma[a]:
                # copy_page_range: "Don't copy ptes where a page fault will fill them"
                assert e.kind in (None, ZERO), f"{e.kind} entry in a VMA without anon_vma"
                c.kind = c.ref = None
            m[a] = c
        self.procs[child] = m
        return child

    def exit(self, pid):
        self._zap(pid, list(self.procs[pid]))
        del self.procs[pid]

    def exec(self, pid):
        self._zap(pid, list(self.procs[pid]))
        self.procs[pid] = {}

    # ---- mmap / munmap

    def mmap(self, pid, addr, n, prot):
        self._unmap(pid, self.addrs(addr, n))
        for i, a in enumerate(self.addrs(addr, n)):
            # a private writable mapping is charged to the commit limit: VM_ACCOUNT
            acct = frozenset({"account"}) if "w" in norm_prot(prot) else frozenset()
            self.procs[pid][a] = Pte(norm_prot(prot), acct, (addr >> PAGE_SHIFT) + i)

    def munmap_ok(self, pid, addr, n):
        return not self.free_range(pid, addr, n)  # contract: a range with no mapping is refused

    def munmap(self, pid, addr, n):
        self._unmap(pid, self.addrs(addr, n))

    # ---- faults

    def touch_ok(self, pid, addr, n, write):
        m = self.procs[pid]
        for a in self.addrs(addr, n):
            e = m.get(a)
            if e is None:
                return False
            if write and "w" not in e.prot:
                return False
            if not write and not e.prot:
                return False
        return True

    def touch(self, pid, addr, n, write):
        """Returns [(pid, addr, where)] for the pages whose page->mapping the fault chose:
        where "vma: ..." -- vma->anon_vma (a new page, a COW copy, a COW reuse: page_move_anon_rmap
        in chain eras, the family anon_vma anyway in 2.6.33; a page read from swap and taken
        exclusively); "swapin" -- a page read from swap and mapped shared (the era's swap-in
        target, docs/contract.md#eras-and-knobs). Pages mapped from the swap cache are left out (whether
        they keep their mapping is era dependent: swapin_keeps_anon_mapping)."""
        placed = []
        for a in self.addrs(addr, n):
            e = self.procs[pid][a]
            if e.kind == SWAP:
                self.swapins += 1
            where = self._fault(e, write)
            if where:
                placed.append((pid, a, where))
        return placed

    def _reusable(self, p):
        """reuse_swap_page(page) for a page about to be written through its only mapping."""
        slot = self.pages[p]
        return self.mapcount()[p] == 1 and (slot is None or self.swapcount()[slot] == 0)

    def _fault(self, e, write):
        if e.kind is None or e.kind == ZERO:
            if write:
                e.kind, e.ref, e.wp = PAGEK, self._new_page(e.pgoff), False
                return "vma: new page"
            e.kind = ZERO
            return None
        if e.kind == SWAP:
            slot = e.ref
            p = self.slots[slot]
            fresh = p is None
            if fresh:  # read from swap into the swap cache
                p = self._new_page(e.pgoff, slot)
            exclusive = write and self.mapcount()[p] == 0 and self.swapcount()[slot] == 1
            e.kind, e.ref = PAGEK, p  # the entry's swap count is dropped (swap_free)
            if exclusive:
                # do_swap_page: reuse_swap_page -> delete_from_swap_cache, slot freed
                self.pages[p] = None
                del self.slots[slot]
                e.wp = False
                return "vma: exclusive swap-in" if fresh else None
            if not write:
                e.wp = None  # newer kernels map an exclusive page writable even on a read
                return "swapin" if fresh else None
            # mapped read-only, then do_wp_page: reuse_swap_page fails -> copy
            e.ref, e.wp = self._new_page(e.pgoff), False
            self._release([(PAGEK, p)], zap=False)
            return "vma: copy after swap-in"
        # present anon page
        if not write:
            return None
        p = e.ref
        if self._reusable(p):
            slot = self.pages[p]
            if slot is not None:  # reuse_swap_page: delete_from_swap_cache
                self.pages[p] = None
                del self.slots[slot]
            # only a write-protected entry faults: do_wp_page's reuse branch then moves the
            # page to vma->anon_vma (page_move_anon_rmap, chain eras)
            where = "vma: COW reuse" if e.wp else None
            e.wp = False
            return where
        e.ref, e.wp = self._new_page(e.pgoff), False  # COW copy
        self._release([(PAGEK, p)], zap=False)
        return "vma: COW copy"

    # ---- mprotect / madvise

    def mprotect(self, pid, addr, n, prot, unfaulted=frozenset()):
        """unfaulted: the pages whose VMA has no anon_vma before the call (read from the
        simulator; 6.7+ uncharges such an anonymous VMA made non-writable)."""
        for a in self.addrs(addr, n):
            e = self.procs[pid][a]
            if e.prot != norm_prot(prot) and "w" in norm_prot(prot):
                e.flags = e.flags | {"account"}  # mprotect_fixup charges it once
            elif e.prot != norm_prot(prot) and self.unaccount and a in unfaulted:
                e.flags = e.flags - {"account"}
            e.prot = norm_prot(prot)
            e.wp = None  # change_protection: era dependent

    def madvise(self, pid, addr, n, advice):
        """Returns the model pages paged out (pageout), else []."""
        m = self.procs[pid]
        if advice in FLAG_ADVICE:
            clear, add = FLAG_ADVICE[advice]
            for a in self.addrs(addr, n):
                m[a].flags = (m[a].flags - clear) | add
            return []
        if advice == "dontneed":
            self._zap(pid, self.addrs(addr, n))
            return []
        assert advice == "pageout"
        out = []
        for a in self.addrs(addr, n):
            e = m[a]
            if e.kind == PAGEK and self.mapcount()[e.ref] == 1:
                p = e.ref
                self.try_to_unmap(p)
                self.drop_swap_cache([p])
                out.append(p)
        return out

    # ---- reclaim

    def try_to_unmap(self, p):
        """Returns the page's mapcount before the walk."""
        before = self.mapcount()[p]
        if before == 0:
            return 0  # not mapped: nothing to unmap (it is in the swap cache already)
        slot = self.pages[p]
        if slot is None:  # add_to_swap
            slot = next(self._ids)
            self.pages[p] = slot
            self.slots[slot] = p
        for m in self.procs.values():
            for e in m.values():
                if e.kind == PAGEK and e.ref == p:
                    e.kind, e.ref = SWAP, slot
        return before

    def drop_swap_cache(self, ps=None):
        mc, sc = self.mapcount(), self.swapcount()
        n = 0
        for p in list(self.pages) if ps is None else ps:
            slot = self.pages.get(p)
            if slot is not None and mc[p] == 0:
                del self.pages[p]
                self.slots[slot] = None
                if sc[slot] == 0:
                    del self.slots[slot]
                n += 1
        return n

    # ---- mremap

    def mremap_plan(self, pid, old, old_n, new_n, may_move, new_addr, vlist, multi=False):
        """What mremap must do, from the kernel's rules and the contract's strictness.
        vlist: the simulator's VMAs of pid (boundaries are era dependent, see the docstring).
        multi: the era moves a range over several VMAs (6.17+ remap_move).
        -> ("error", exception class) | ("same",) | ("shrink",) | ("hole",) | ("grow", vma)
           | ("move", new_addr or None, vma) | ("multi", [(addr, npages, dest, vma)])"""
        old_end = old + old_n * PAGE
        if new_addr is not None:
            if not may_move:
                return ("error", rmapsim.InvalidArgument)  # MREMAP_FIXED needs MREMAP_MAYMOVE
            new_end = new_addr + new_n * PAGE
            # mremap_to's overlap tests
            if new_addr <= old < new_end or old <= new_addr < old_end:
                return ("error", rmapsim.InvalidArgument)
            inside = any(v["start"] <= old and old_end <= v["end"] for v in vlist)
            if multi and new_n == old_n and not inside:
                # remap_move: each VMA's part in address order, gaps kept; the range must
                # begin inside a VMA
                parts = [v for v in vlist if v["start"] < old_end and old < v["end"]]
                if not parts or parts[0]["start"] > old:
                    return ("error", rmapsim.BadAddress)
                out, target, last_end = [], new_addr, None
                for v in parts:
                    a = max(v["start"], old)
                    n = (min(old_end, v["end"]) - a) // PAGE
                    dest = target + (0 if last_end is None else v["start"] - last_end)
                    out.append((a, n, dest, v))
                    target, last_end = dest + n * PAGE, v["end"]
                return ("multi", out)
        elif new_n <= old_n:
            if not self.all_mapped(pid, old, old_n):
                # the kernel just unmaps the tail (or does nothing); the simulator may refuse
                return ("hole",)
            return ("same",) if new_n == old_n else ("shrink",)
        # grow or move: vma_to_resize wants the old range inside one VMA (EFAULT); a move
        # that also shrinks unmaps the tail first, so only the kept part (mremap_to, every
        # era), the tail mapped in strict mode
        v = next((v for v in vlist if v["start"] <= old < v["end"]), None)
        kept_end = old + min(old_n, new_n) * PAGE if new_addr is not None else old_end
        if v is None or kept_end > v["end"]:
            return ("error", rmapsim.BadAddress)
        if kept_end < old_end and not self.all_mapped(pid, kept_end, (old_end - kept_end) // PAGE):
            return ("error", rmapsim.BadAddress)
        if new_addr is not None:
            return ("move", new_addr, v)
        if old_end == v["end"] and self.free_range(pid, old_end, new_n - old_n):
            return ("grow", v)  # vma_expandable
        if may_move:
            return ("move", None, v)
        return ("error", rmapsim.OutOfMemory)

    def mremap_shrink(self, pid, old, old_n, new_n):
        self._unmap(pid, self.addrs(old + new_n * PAGE, old_n - new_n))

    def mremap_grow(self, pid, old, old_n, new_n):
        last = self.procs[pid][old + (old_n - 1) * PAGE]
        for i in range(1, new_n - old_n + 1):
            a = old + (old_n - 1 + i) * PAGE
            self.procs[pid][a] = Pte(last.prot, last.flags, last.pgoff + i)

    def mremap_move(self, pid, old, old_n, new_n, dest, fixed, faulted):
        m = self.procs[pid]
        if fixed:
            self._unmap(pid, self.addrs(dest, new_n))  # mremap_to: do_munmap(new_addr)
        keep = min(old_n, new_n)
        if old_n > keep:
            self._unmap(pid, self.addrs(old + keep * PAGE, old_n - keep))
        moved = [m.pop(a) for a in self.addrs(old, keep)]
        # copy_vma: a faulted VMA keeps its pgoff; an unfaulted one gets new_addr >> PAGE_SHIFT
        base = moved[0].pgoff if faulted else dest >> PAGE_SHIFT
        first = moved[0]
        for i, a in enumerate(self.addrs(dest, new_n)):
            e = moved[i] if i < keep else Pte(first.prot, first.flags, 0)
            if not faulted:
                assert e.kind in (None, ZERO), "an unfaulted VMA maps no anon page"
            e.pgoff = base + i
            m[a] = e


def copy_vma_into_unfaulted(lay, old, new_n, dest):
    """Would mremap's copy_vma merge the moved range of a *faulted* VMA into an unfaulted,
    pgoff-contiguous neighbour at dest? lay: page_layout of the process before the call.

    That merge is a latent defect of the 2.6.3x code the simulator reproduces faithfully
    (rust/core/tests/scenarios.rs mremap_back_beside_unfaulted_prev_loses_the_anon_vma):
    is_mergeable_anon_vma(anon_vma, NULL) is true and vma_adjust has no importer step for
    a new range, so the moved pages end up in a VMA without anon_vma and check() fails in
    the eras with the "simple" merge rule (2.6.33-2.6.35). 3.0+ refuse the merge (an
    unfaulted target has no singular chain) or, in 6.18, give the target the anon_vma
    (dup_anon_vma). The randomised tests keep the simple eras away from it (or stop them
    when they ran into it)."""
    src = lay.get(old)
    if src is None or not src[3]:
        return False
    prot, flags, base = src[0], src[1], src[2]

    def unfaulted(n, pgoff):
        return n is not None and n[0] == prot and n[1] == flags and not n[3] and n[2] == pgoff

    return unfaulted(lay.get(dest - PAGE), base - 1) or unfaulted(lay.get(dest + new_n * PAGE), base + new_n)
