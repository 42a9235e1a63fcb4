"""Independent pure-Python reference model of the anonymous reverse mapping of Linux 2.6.33
and 2.6.34 (with the 2.6.34-rc4 fixes), used as a differential oracle for the Rust engine.

It is written from the kernel's rules (mm/mmap.c, mm/rmap.c, mm/memory.c, mm/mremap.c,
mm/mprotect.c, mm/madvise.c, mm/swapfile.c, mm/swap_state.c, kernel/fork.c of that time), the
2010 anon_vma_chain thread, ``docs/api-contract.md`` and the modelling decisions of
``docs/design.md`` -- not from the engine's code. Each kernel object is an explicit Python
object; each kernel function that matters is a method named after it.

Objects
-------
* ``Mm``      mm_struct: pid, VMAs sorted by start, the page table (``{addr: Pte}``).
* ``Vma``     vm_area_struct: start, end, pgoff, prot, flags (rand/seq/dontcopy/account),
              ``file`` (vm_file: None, or the identity of a privately mapped file),
              ``anon_vma`` (where new pages go), ``chain`` (2.6.34: its anon_vma_chain
              entries, newest first, like ``vma->anon_vma_chain``).
* ``AnonVma`` anon_vma: ``head``, the list walked by the rmap. 2.6.33: VMAs (through
              ``anon_vma_node``); 2.6.34: ``Avc`` objects (through ``same_anon_vma``). The
              list keeps the kernel's order: 2.6.33 adds at the tail everywhere; 2.6.34's
              ``anon_vma_prepare`` adds at the head (``list_add``), clone and fork at the
              tail (``anon_vma_chain_link``'s ``list_add_tail``).
* ``Avc``     anon_vma_chain (2.6.34 only).
* ``Page``    anon page: ``mapping`` (an AnonVma), ``index`` (linear pgoff), ``mapcount``,
              ``slot`` (its swap slot while it is in the swap cache).
* ``Slot``    swap slot: ``count`` (swap entries referring to it, the swap_map count
              without SWAP_HAS_CACHE) and ``cache`` (its swap-cache page).
* ``Pte``     none (absent from the dict) / zero page / present(page, writable) / swap(slot)
              / file (a page-cache page of a private file mapping: not an anon page, so
              no object stands for it; the engine shows it like the zero page).

Private file mappings (``mmap(..., file=ID, offset=BYTES)``, as the ELF loader makes them):
vm_pgoff is the file page; vm_file takes part in every merge test (is_mergeable_vma in
vma_merge for mmap, mprotect, madvise and mremap's copy_vma, and anon_vma_compatible in
anon_vma_prepare's neighbour reuse); copy_vma keeps a file VMA's pgoff even when it has no
anon_vma. A read fault maps the page-cache page (do_linear_fault); a write fault, at once
or later (do_wp_page), copies it into a new anon page of vma->anon_vma whose index is the
file page. Fork copies page-cache entries only from VMAs with an anon_vma, like all
entries (copy_page_range). Shared mappings and the file rmap (i_mmap) are not modelled.

Modelling decisions taken from the project documents (not kernel behaviour):
* ``mmap(addr=None)`` and mremap's move without MREMAP_FIXED place the range top-down: the
  highest free range ending at or below MMAP_BASE (0x7f0000000000) and starting at or above
  MMAP_MIN_ADDR. ``addr`` given means MAP_FIXED.
* ``munmap`` of a range with no mapping at all, mprotect / madvise over a range with a hole,
  and mremap's shrink over a range with a hole raise BadAddress and change nothing.
* mremap with MREMAP_FIXED: InvalidArgument without may_move or when the ranges overlap,
  BadAddress unless the whole old range lies inside one VMA; all checked before anything is
  unmapped.
* Swap is never "full" (no ``vm_swap_full()`` frees), there is no writeback, no KSM, no
  mempolicy, no commit-charge accounting (VM_ACCOUNT is kept as a flag only), no shared
  mappings.
* Private file mappings: identities 1 .. 2^24-1, a byte offset that is page aligned, file
  pages ending at or below 2^52 (the engine's bounds; all InvalidArgument). The kernel's
  page-cache pages are not objects: only the entry kind tells them apart.
* ``madvise(pageout)``: each page of the range whose only mapping is this one is unmapped
  with try_to_unmap and freed from the swap cache, in address order.

Known kernel defect modelled as the kernel has it (docs/bugs.md): copy_vma may merge a moved
*faulted* range into an *unfaulted*, pgoff-contiguous neighbour (is_mergeable_anon_vma(x,
NULL) is true and vma_adjust has no importer for a range that is not yet mapped). The pages
then sit in a VMA without anon_vma; ``copy_vma_defects`` counts how often that happened and
``check()`` reports the resulting rmap breakage (also when the pages are swapped out: a swap
entry in a VMA without anon_vma).
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from typing import Dict, Iterable, List, Optional, Tuple

from .errors import BadAddress, InvalidArgument, InvariantViolation, NoSuchProcess, OutOfMemory, StaleHandle

PAGE = 4096
PAGE_SHIFT = 12
MMAP_BASE = 0x7F0000000000
MMAP_MIN_ADDR = 0x10000
TASK_SIZE = 1 << 47
FILE_MAX = (1 << 23) - 1  # file identities the engine can hold (vm_file in bits 9-31 of its flags word)
MAX_FILE_PAGES = 1 << 52  # the engine's bound on pgoff + pages of a file mapping

ERAS = ("2.6.33", "2.6.34")

# madvise_behavior(): (flags cleared, flags set)
_FLAG_ADVICE = {
    "normal": (frozenset({"rand", "seq"}), frozenset()),
    "random": (frozenset({"seq"}), frozenset({"rand"})),
    "sequential": (frozenset({"rand"}), frozenset({"seq"})),
    "dontfork": (frozenset(), frozenset({"dontcopy"})),
    "dofork": (frozenset({"dontcopy"}), frozenset()),
}
_ADVICE = set(_FLAG_ADVICE) | {"dontneed", "pageout"}
_LATER_ADVICE = {"wipeonfork", "keeponfork"}  # Linux 4.14: EINVAL in 2.6.x


def parse_prot(prot) -> frozenset:
    """"", "none", or letters from r/w/x in any order without repeats."""
    if prot is None:
        prot = "rw"
    if not isinstance(prot, str):
        raise InvalidArgument(f"prot must be a string, got {prot!r}")
    if prot in ("", "none"):
        return frozenset()
    if len(set(prot)) != len(prot) or not set(prot) <= set("rwx"):
        raise InvalidArgument(f"bad prot {prot!r}")
    return frozenset(prot)


def prot_str(prot: frozenset) -> str:
    return "".join(c for c in "rwx" if c in prot)


# --------------------------------------------------------------------------- kernel objects


class AnonVma:
    __slots__ = ("id", "head", "freed")

    def __init__(self, ident: int):
        self.id = ident
        self.head: list = []  # 2.6.33: Vma entries; 2.6.34: Avc entries -- walk order
        self.freed = False

    def __repr__(self):
        return f"av{self.id}{'(freed)' if self.freed else ''}"


class Avc:
    __slots__ = ("vma", "anon_vma")

    def __init__(self, vma, anon_vma):
        self.vma = vma
        self.anon_vma = anon_vma


class Vma:
    __slots__ = ("mm", "start", "end", "pgoff", "prot", "flags", "file", "anon_vma", "chain", "dead")

    def __init__(self, mm, start, end, pgoff, prot, flags, anon_vma=None, file=None):
        self.mm = mm
        self.start = start
        self.end = end
        self.pgoff = pgoff  # anonymous: the address page it was mapped at; file: the file page
        self.prot = prot
        self.flags = flags
        self.file = file  # vm_file: None (anonymous) or the file identity (a private mapping)
        self.anon_vma = anon_vma
        self.chain: List[Avc] = []  # newest first (vma->anon_vma_chain from its head)
        self.dead = False

    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    def linear_page_index(self, addr: int) -> int:
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def __repr__(self):
        return f"Vma(pid {self.mm.pid} [{self.start:#x}, {self.end:#x}) pgoff {self.pgoff:#x} {prot_str(self.prot)} {sorted(self.flags)} file {self.file} {self.anon_vma})"


class Page:
    __slots__ = ("id", "mapping", "index", "mapcount", "slot", "freed")

    def __init__(self, ident, mapping, index):
        self.id = ident
        self.mapping = mapping
        self.index = index
        self.mapcount = 0
        self.slot = None
        self.freed = False


class Slot:
    __slots__ = ("id", "count", "cache")

    def __init__(self, ident):
        self.id = ident
        self.count = 0  # swap entries referring to the slot
        self.cache = None  # the swap-cache page (SWAP_HAS_CACHE)


ZERO, PRESENT, SWAP, FILE = "zero", "page", "swap", "file"
# FILE: a page-cache page mapped (read-only) in a private file mapping. It is not an anon
# page: page_add_file_rmap / page_remove_rmap on it touch no anon rmap state, so the model
# keeps no object for it (neither does the engine: its page table shows such an entry as it
# shows the zero page, and page_at() names no page there).


class Pte:
    __slots__ = ("kind", "page", "writable", "slot")

    def __init__(self, kind, page=None, writable=False, slot=None):
        self.kind = kind
        self.page = page
        self.writable = writable
        self.slot = slot


class Mm:
    __slots__ = ("pid", "vmas", "ptes")

    def __init__(self, pid):
        self.pid = pid
        self.vmas: List[Vma] = []  # sorted by start
        self.ptes: Dict[int, Pte] = {}


# --------------------------------------------------------------------------- the model


class ReferenceModel:
    """The anon rmap of era ``"2.6.33"`` or ``"2.6.34"``; same operations as
    :class:`rmapsim.Simulator` (page and anon_vma handles are the model's own)."""

    def __init__(self, era: str = "2.6.34"):
        base, _, knobs = era.partition("+")
        if base not in ERAS:
            raise InvalidArgument(f"unknown era {era!r}; the reference model knows {ERAS}")
        self.era = era
        self.chain = base == "2.6.34"  # anon_vma_chain era
        # Knob prepare_reuse: anon_vma_prepare reuses a neighbour's anon_vma only when the
        # neighbour's chain is singular (2.6.34-rc4), or whenever it is compatible (the
        # patch as posted, and 2.6.33 where there are no chains).
        self.prepare_singular = self.chain
        for kv in filter(None, knobs.split(",")):
            k, _, v = kv.partition("=")
            if k.strip() != "prepare_reuse" or v.strip() not in ("any_compatible", "singular_chain"):
                raise InvalidArgument(f"era {era!r}: the reference model models one knob, "
                                      "prepare_reuse=any_compatible|singular_chain")
            self.prepare_singular = self.chain and v.strip() == "singular_chain"
        self.mms: Dict[int, Mm] = {}
        self._next_pid = 1
        self._ids = itertools.count()
        self.pages: Dict[int, Page] = {}  # live pages by id
        self.slots: Dict[int, Slot] = {}  # live slots by id
        self.anon_vmas: Dict[int, AnonVma] = {}  # live anon_vmas by id
        self.nr_avc = 0
        self.copy_vma_defects = 0  # times copy_vma merged faulted pages into an unfaulted VMA
        self.events: Counter = Counter()  # kernel paths taken (coverage for the tests)

    # ------------------------------------------------------------------ object lifetimes

    def _new_anon_vma(self) -> AnonVma:
        av = AnonVma(next(self._ids))
        self.anon_vmas[av.id] = av
        return av

    def _free_anon_vma(self, av: AnonVma):
        assert not av.head and not av.freed
        av.freed = True
        del self.anon_vmas[av.id]

    def _new_page(self, mapping, index) -> Page:
        p = Page(next(self._ids), mapping, index)
        self.pages[p.id] = p
        return p

    def _free_page(self, p: Page):
        assert p.mapcount == 0 and p.slot is None and not p.freed
        p.freed = True
        del self.pages[p.id]

    def _new_slot(self) -> Slot:
        s = Slot(next(self._ids))
        self.slots[s.id] = s
        return s

    def _maybe_free_slot(self, s: Slot):
        if s.count == 0 and s.cache is None:
            self.slots.pop(s.id, None)

    # ------------------------------------------------------------------ lookups

    def _mm(self, pid) -> Mm:
        try:
            return self.mms[int(pid)]
        except (KeyError, TypeError, ValueError):
            raise NoSuchProcess(f"no such process: pid {pid}") from None

    @staticmethod
    def _find_vma(mm: Mm, addr: int) -> Optional[Vma]:
        """find_vma: the first VMA with end > addr."""
        for v in mm.vmas:
            if v.end > addr:
                return v
        return None

    @staticmethod
    def _find_vma_prev(mm: Mm, addr: int):
        """find_vma_prev: (first VMA with end > addr, the VMA before it)."""
        prev = None
        for v in mm.vmas:
            if v.end > addr:
                return v, prev
            prev = v
        return None, prev

    @staticmethod
    def _vma_at(mm: Mm, addr: int) -> Optional[Vma]:
        for v in mm.vmas:
            if v.start <= addr < v.end:
                return v
        return None

    @staticmethod
    def _next(vma: Vma) -> Optional[Vma]:
        vs = vma.mm.vmas
        i = _index(vs, vma)
        return vs[i + 1] if i + 1 < len(vs) else None

    @staticmethod
    def _prev(vma: Vma) -> Optional[Vma]:
        vs = vma.mm.vmas
        i = _index(vs, vma)
        return vs[i - 1] if i > 0 else None

    @staticmethod
    def _link_vma(mm: Mm, vma: Vma):
        i = 0
        while i < len(mm.vmas) and mm.vmas[i].start < vma.start:
            i += 1
        assert i == len(mm.vmas) or mm.vmas[i].start >= vma.end, "overlapping VMAs"
        assert i == 0 or mm.vmas[i - 1].end <= vma.start, "overlapping VMAs"
        mm.vmas.insert(i, vma)

    @staticmethod
    def _unlink_vma(vma: Vma):
        vs = vma.mm.vmas
        del vs[_index(vs, vma)]
        vma.dead = True

    # ------------------------------------------------------------------ mm/rmap.c

    def anon_vma_prepare(self, vma: Vma):
        """anon_vma_prepare: attach an anon_vma to a VMA on its first write fault, reusing a
        compatible neighbour's (2.6.34-rc4: only if that neighbour's chain is singular)."""
        if vma.anon_vma is not None:
            return
        av = self.find_mergeable_anon_vma(vma)
        if av is None:
            av = self._new_anon_vma()
        else:
            self.events["anon_vma_prepare reuses a neighbour's anon_vma"] += 1
        vma.anon_vma = av
        if self.chain:
            avc = Avc(vma, av)
            self.nr_avc += 1
            vma.chain.insert(0, avc)  # list_add(&avc->same_vma, &vma->anon_vma_chain)
            av.head.insert(0, avc)  # list_add(&avc->same_anon_vma, &anon_vma->head)
        else:
            av.head.append(vma)  # list_add_tail(&vma->anon_vma_node, &anon_vma->head)

    def _anon_vma_chain_link(self, vma: Vma, av: AnonVma):
        avc = Avc(vma, av)
        self.nr_avc += 1
        vma.chain.insert(0, avc)  # list_add (head of the VMA's chain)
        av.head.append(avc)  # list_add_tail on the anon_vma's list

    def anon_vma_clone(self, dst: Vma, src: Vma):
        """anon_vma_clone (2.6.34-rc4: walks src's chain in reverse, oldest first, so dst's
        chain ends up in src's order)."""
        for pavc in reversed(src.chain):
            self._anon_vma_chain_link(dst, pavc.anon_vma)

    def anon_vma_fork(self, vma: Vma, pvma: Vma):
        """anon_vma_fork: clone the parent VMA's chain, then give the child VMA its own
        anon_vma as the newest chain entry."""
        vma.anon_vma = None
        if pvma.anon_vma is None:
            return
        self.anon_vma_clone(vma, pvma)
        av = self._new_anon_vma()
        self._anon_vma_chain_link(vma, av)
        vma.anon_vma = av

    def unlink_anon_vmas(self, vma: Vma):
        """2.6.34 unlink_anon_vmas (newest to oldest, freeing anon_vmas whose list empties);
        2.6.33 anon_vma_unlink."""
        if self.chain:
            for avc in list(vma.chain):
                av = avc.anon_vma
                _remove(av.head, avc)
                if not av.head:
                    self._free_anon_vma(av)
                self.nr_avc -= 1
            vma.chain = []
        else:
            av = vma.anon_vma
            if av is not None:
                _remove(av.head, vma)
                if not av.head:
                    self._free_anon_vma(av)

    def _anon_vma_merge(self, vma: Vma, nxt: Vma):
        """vma_adjust removing next: anon_vma_merge (2.6.34: unlink_anon_vmas(next)) or
        __anon_vma_merge (2.6.33: list_del of next)."""
        if nxt.anon_vma is None:
            return
        if vma.anon_vma is not nxt.anon_vma:
            raise InvariantViolation(
                f"vma_adjust merges {nxt} into {vma} whose anon_vma differs (VM_BUG_ON)"
            )
        if self.chain:
            self.unlink_anon_vmas(nxt)
        else:
            _remove(nxt.anon_vma.head, nxt)

    def _page_set_anon_rmap(self, page: Page, vma: Vma, addr: int, exclusive: bool):
        """__page_set_anon_rmap on a page's first mapping. 2.6.34-rc4: a page that is not
        exclusively mapped goes to the oldest anon_vma of the VMA's chain (its tail)."""
        av = vma.anon_vma
        if self.chain and not exclusive:
            av = vma.chain[-1].anon_vma
            if av is not vma.anon_vma:
                self.events["swap-in maps to the oldest anon_vma, not vma->anon_vma"] += 1
        page.mapping = av
        page.index = vma.linear_page_index(addr)

    @staticmethod
    def _walk_entries(av: AnonVma):
        return av.head

    def _entry_vma(self, entry) -> Vma:
        return entry.vma if self.chain else entry

    def _walk_target(self, page: Page) -> AnonVma:
        av = page.mapping
        if av is None or av.freed:
            raise InvariantViolation(
                f"use-after-free: page {page.id} has page->mapping = {av} (dangling)"
            )
        return av

    # ------------------------------------------------------------------ mm/mmap.c

    def find_mergeable_anon_vma(self, vma: Vma) -> Optional[AnonVma]:
        """find_mergeable_anon_vma: next, then prev, must be anon_vma_compatible (which
        includes the same vm_file) and reusable."""
        near = self._next(vma)
        if near is not None and self._anon_vma_compatible(vma, near):
            if self._reusable(near):
                self._note_prepare_reuse(vma)
                return near.anon_vma
        self._note_prepare_file_refusal(vma, near, vma, near)
        near = self._prev(vma)
        if near is not None and self._anon_vma_compatible(near, vma):
            if self._reusable(near):
                self._note_prepare_reuse(vma)
                return near.anon_vma
        self._note_prepare_file_refusal(vma, near, near, vma)
        return None

    def _note_prepare_reuse(self, vma: Vma):
        if vma.file is not None:
            self.events["anon_vma_prepare: a file VMA reuses its neighbour's anon_vma"] += 1

    def _note_prepare_file_refusal(self, vma: Vma, near, a, b):
        """Coverage only: a neighbour with a reusable anon_vma refused for its vm_file."""
        if near is None or near.file == vma.file or not self._reusable(near):
            return
        if a.end == b.start and a.flags == b.flags and b.pgoff == a.pgoff + a.npages():
            self.events["anon_vma_prepare: neighbour refused for its vm_file"] += 1

    def _reusable(self, old: Vma) -> bool:
        if old.anon_vma is None:
            return False
        # 2.6.34-rc4 (d0e9fe1758f2): list_is_singular(&old->anon_vma_chain)
        return len(old.chain) == 1 if self.prepare_singular else True

    @staticmethod
    def _anon_vma_compatible(a: Vma, b: Vma) -> bool:
        """anon_vma_compatible: adjacent, the same vm_file, flags equal but for
        VM_READ/WRITE/EXEC, pgoff contiguous (no mempolicy in the model)."""
        return (
            a.end == b.start
            and a.file == b.file
            and a.flags == b.flags
            and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT)
        )

    @staticmethod
    def _is_mergeable_vma(vma: Vma, prot, flags, file) -> bool:
        """is_mergeable_vma: the same vm_flags (prot included) and the same vm_file."""
        return vma.prot == prot and vma.flags == flags and vma.file == file

    @staticmethod
    def _is_mergeable_anon_vma(av1, av2) -> bool:
        return av1 is None or av2 is None or av1 is av2

    def _can_vma_merge_before(self, vma, prot, flags, anon_vma, file, pgoff) -> bool:
        return (
            self._is_mergeable_vma(vma, prot, flags, file)
            and self._is_mergeable_anon_vma(anon_vma, vma.anon_vma)
            and vma.pgoff == pgoff
        )

    def _can_vma_merge_after(self, vma, prot, flags, anon_vma, file, pgoff) -> bool:
        return (
            self._is_mergeable_vma(vma, prot, flags, file)
            and self._is_mergeable_anon_vma(anon_vma, vma.anon_vma)
            and vma.pgoff + vma.npages() == pgoff
        )

    def _note_file_rule(self, near, prot, flags, anon_vma, file, pgoff, before=False):
        """Coverage only (no effect): count the vma_merge tests that the file rules decide,
        a neighbour that would merge but for its vm_file, or but for the file pages not
        being contiguous; and file ranges that do merge."""
        if near is None or near.prot != prot or near.flags != flags:
            return
        if not self._is_mergeable_anon_vma(anon_vma, near.anon_vma):
            return
        contiguous = near.pgoff == pgoff if before else near.pgoff + near.npages() == pgoff
        if near.file != file and (near.file is None or file is None):
            self.events["vma_merge: anonymous and file ranges do not merge"] += 1
        elif near.file != file:
            self.events["vma_merge: different files do not merge"] += 1
        elif file is not None:
            key = "same file, contiguous" if contiguous else "same file, pgoff not contiguous"
            self.events[f"vma_merge: {key}"] += 1

    def _note_file_merge(self, file, mapped):
        if file is not None:
            self.events[f"vma_merge merges file ranges ({'mprotect/madvise' if mapped else 'mmap/mremap'})"] += 1

    def vma_merge(self, mm: Mm, prev, addr, end, prot, flags, anon_vma, file, pgoff) -> Optional[Vma]:
        """vma_merge with its eight cases (see the kernel comment). ``file`` is the vm_file
        of the range: every neighbour test compares it, and pgoff must continue the
        neighbour's (for a file mapping, the file pages must be contiguous)."""
        pglen = (end - addr) >> PAGE_SHIFT
        mapped = any(v.start < end and v.end > addr for v in mm.vmas)  # mprotect/madvise
        nxt = self._next(prev) if prev is not None else (mm.vmas[0] if mm.vmas else None)
        area = nxt
        if nxt is not None and nxt.end == end:  # cases 6, 7, 8
            nxt = self._next(nxt)
        self._note_file_rule(prev if prev is not None and prev.end == addr else None, prot, flags, anon_vma, file, pgoff)
        self._note_file_rule(nxt if nxt is not None and nxt.end == end else None, prot, flags, anon_vma, file, pgoff + pglen, before=True)

        if (
            prev is not None
            and prev.end == addr
            and self._can_vma_merge_after(prev, prot, flags, anon_vma, file, pgoff)
        ):
            if (
                nxt is not None
                and end == nxt.start
                and self._can_vma_merge_before(nxt, prot, flags, anon_vma, file, pgoff + pglen)
                and self._is_mergeable_anon_vma(prev.anon_vma, nxt.anon_vma)
            ):  # cases 1, 6
                self._note_file_merge(file, mapped)
                self.events[f"vma_merge case {6 if mapped else 1}"] += 1
                self.vma_adjust(prev, prev.start, nxt.end, prev.pgoff)
            else:  # cases 2, 5, 7
                self._note_file_merge(file, mapped)
                case = (5 if area is not None and end < area.end else 7) if mapped else 2
                self.events[f"vma_merge case {case}"] += 1
                self.vma_adjust(prev, prev.start, end, prev.pgoff)
            return prev

        if (
            nxt is not None
            and end == nxt.start
            and self._can_vma_merge_before(nxt, prot, flags, anon_vma, file, pgoff + pglen)
        ):
            self._note_file_merge(file, mapped)
            if prev is not None and addr < prev.end:  # case 4
                self.events["vma_merge case 4"] += 1
                self.vma_adjust(prev, prev.start, addr, prev.pgoff)
            else:  # cases 3, 8
                self.events[f"vma_merge case {8 if mapped else 3}"] += 1
                assert area is not None  # next, or (case 8) the VMA before it
                self.vma_adjust(area, addr, nxt.end, nxt.pgoff - pglen)
            return area
        return None

    def vma_adjust(self, vma: Vma, start, end, pgoff, insert: Optional[Vma] = None):
        """vma_adjust. 2.6.34 (rc4, 287d97ac): the importer clones the exporter's chain.
        2.6.33: the importer takes vma's anon_vma, else next's, and is linked at the tail."""
        mm = vma.mm
        nxt = self._next(vma)
        again = False
        while True:
            importer: Optional[Vma] = None
            exporter: Optional[Vma] = None
            remove_next = 0
            adjust_next = 0
            anon_vma33 = None
            if again or (nxt is not None and insert is None):
                assert nxt is not None
                if again or end >= nxt.end:
                    # vma expands over all of next (and maybe the one after: case 6)
                    remove_next = 1 + (end > nxt.end)
                    end = nxt.end
                    exporter, importer = nxt, vma
                elif end > nxt.start:
                    # case 5: vma expands over part of next
                    adjust_next = (end - nxt.start) >> PAGE_SHIFT
                    exporter, importer = nxt, vma
                elif end < vma.end:
                    # case 4: vma shrinks, next expands down
                    adjust_next = -((vma.end - end) >> PAGE_SHIFT)
                    exporter, importer = vma, nxt
                if importer is not None:
                    anon_vma33 = nxt.anon_vma
                if self.chain and exporter is not None and importer is not None:
                    if exporter.anon_vma is not None and importer.anon_vma is None:
                        self.events["vma_adjust importer clones the exporter" + (" (2nd pass)" if again else "")] += 1
                        self.anon_vma_clone(importer, exporter)
                        importer.anon_vma = exporter.anon_vma
            if not self.chain:
                if vma.anon_vma is not None:
                    anon_vma33 = vma.anon_vma
                if anon_vma33 is not None and importer is not None and importer.anon_vma is None:
                    self.events["vma_adjust importer takes the anon_vma" + (" (2nd pass)" if again else "")] += 1
                    importer.anon_vma = anon_vma33
                    anon_vma33.head.append(importer)  # __anon_vma_link: list_add_tail

            vma.start, vma.end, vma.pgoff = start, end, pgoff
            if adjust_next:
                assert nxt is not None
                nxt.start += adjust_next << PAGE_SHIFT
                nxt.pgoff += adjust_next

            if remove_next:
                assert nxt is not None
                self._unlink_vma(nxt)
                self._anon_vma_merge(vma, nxt)
            elif insert is not None:
                self._link_vma(mm, insert)
                if not self.chain and insert.anon_vma is not None:
                    insert.anon_vma.head.append(insert)  # __vma_link -> __anon_vma_link

            if remove_next == 2:
                nxt = self._next(vma)
                again = True
                continue
            return

    def split_vma(self, vma: Vma, addr: int, new_below: bool) -> Vma:
        """__split_vma: the new VMA is the lower piece when new_below, else the upper one."""
        # *new = *vma: the new piece shares vm_file (get_file) and the anon_vma
        new = Vma(vma.mm, vma.start, vma.end, vma.pgoff, vma.prot, vma.flags, vma.anon_vma, vma.file)
        if new_below:
            new.end = addr
        else:
            new.start = addr
            new.pgoff += (addr - vma.start) >> PAGE_SHIFT
        if self.chain:
            self.anon_vma_clone(new, vma)
        if new_below:
            self.vma_adjust(
                vma, addr, vma.end, vma.pgoff + ((addr - new.start) >> PAGE_SHIFT), new
            )
        else:
            self.vma_adjust(vma, vma.start, addr, vma.pgoff, new)
        return new

    def do_munmap(self, mm: Mm, start: int, length: int):
        """do_munmap: split at both ends, zap, unlink the anon rmap, free the VMAs."""
        end = start + length
        vma, prev = self._find_vma_prev(mm, start)
        if vma is None or vma.start >= end:
            return
        if start > vma.start:
            self.split_vma(vma, start, False)
            prev = vma
        last = self._find_vma(mm, end)
        if last is not None and end > last.start:
            self.split_vma(last, end, True)
        doomed = [v for v in mm.vmas if v.start >= start and v.end <= end]
        self._unmap_region(mm, doomed)

    def _unmap_region(self, mm: Mm, doomed: List[Vma]):
        for v in doomed:  # unmap_vmas
            self._zap_range(mm, v.start, v.end)
        for v in doomed:  # free_pgtables
            self.unlink_anon_vmas(v)
        for v in doomed:  # remove_vma_list
            self._unlink_vma(v)

    def _top_down(self, mm: Mm, length: int) -> int:
        """get_unmapped_area without a hint: top-down first fit below MMAP_BASE."""
        hi = MMAP_BASE
        for v in reversed(mm.vmas):
            if v.start >= hi:
                continue
            if v.end <= hi and hi - v.end >= length:
                return hi - length
            hi = min(hi, v.start)
        if hi - MMAP_MIN_ADDR >= length:
            return hi - length
        raise OutOfMemory(f"no free range of {length:#x} bytes in pid {mm.pid}")

    def mmap_region(self, mm: Mm, addr: int, length: int, prot, file=None, pgoff=None) -> int:
        """mmap_region. do_mmap_pgoff gives a private anonymous mapping the pgoff of its
        address, a private file mapping the file page of its offset."""
        end = addr + length
        if any(v.start < end and v.end > addr for v in mm.vmas):
            self.do_munmap(mm, addr, length)
        _, prev = self._find_vma_prev(mm, addr)
        if file is None:
            pgoff = addr >> PAGE_SHIFT
        # accountable_mapping: a private writable mapping gets VM_ACCOUNT, file or not
        flags = frozenset({"account"}) if "w" in prot else frozenset()
        # "Can we just expand an old mapping?": vma_merge(..., NULL anon_vma, file, pgoff)
        if self.vma_merge(mm, prev, addr, end, prot, flags, None, file, pgoff) is None:
            self._link_vma(mm, Vma(mm, addr, end, pgoff, prot, flags, None, file))
        elif file is not None:
            self.events["mmap merges a file mapping"] += 1
        return addr

    def copy_vma(self, vma: Vma, addr: int, length: int, pgoff: int) -> Vma:
        """copy_vma (mremap): merge at the destination, else a new VMA with a cloned chain.
        An unfaulted *anonymous* VMA takes the destination's pgoff (!vm_file && !anon_vma);
        a file VMA keeps its file page, faulted or not."""
        mm = vma.mm
        if vma.file is None and vma.anon_vma is None:
            pgoff = addr >> PAGE_SHIFT
        elif vma.file is not None and vma.anon_vma is None:
            self.events["copy_vma keeps an unfaulted file VMA's pgoff"] += 1
        _, prev = self._find_vma_prev(mm, addr)
        new_vma = self.vma_merge(
            mm, prev, addr, addr + length, vma.prot, vma.flags, vma.anon_vma, vma.file, pgoff
        )
        if new_vma is not None:
            self.events["copy_vma merges at the destination"] += 1
            if vma.file is not None:
                self.events["copy_vma merges a file VMA"] += 1
            if vma.anon_vma is not None and new_vma.anon_vma is None:
                # the latent 2.6.3x defect (docs/bugs.md): faulted pages now sit in a VMA
                # without anon_vma
                self.copy_vma_defects += 1
            return new_vma
        new_vma = Vma(mm, addr, addr + length, pgoff, vma.prot, vma.flags, vma.anon_vma, vma.file)
        if self.chain:
            self.anon_vma_clone(new_vma, vma)
        self._link_vma(mm, new_vma)
        if not self.chain and new_vma.anon_vma is not None:
            new_vma.anon_vma.head.append(new_vma)  # vma_link -> __anon_vma_link
        return new_vma

    # ------------------------------------------------------------------ page tables, swap

    def _delete_from_swap_cache(self, page: Page):
        s = page.slot
        page.slot = None
        s.cache = None
        self._maybe_free_slot(s)

    def _zap_range(self, mm: Mm, start: int, end: int):
        """zap_pte_range over [start, end)."""
        for addr in range(start, end, PAGE):
            pte = mm.ptes.pop(addr, None)
            if pte is None or pte.kind in (ZERO, FILE):
                continue  # the zero page / a page-cache page: no anon rmap state
            if pte.kind == PRESENT:
                page = pte.page
                page.mapcount -= 1  # page_remove_rmap
                if page.mapcount == 0:
                    # tlb_remove_page -> free_page_and_swap_cache -> free_swap_cache:
                    # an unmapped swap-cache page whose slot no entry refers to leaves it
                    if page.slot is not None and page.slot.count == 0:
                        self._delete_from_swap_cache(page)
                    if page.slot is None:
                        self._free_page(page)
            else:  # free_swap_and_cache
                s = pte.slot
                s.count -= 1
                if s.count == 0 and s.cache is not None and s.cache.mapcount == 0:
                    page = s.cache
                    self._delete_from_swap_cache(page)
                    self._free_page(page)
                self._maybe_free_slot(s)

    def _reuse_swap_page(self, page: Page) -> bool:
        count = page.mapcount
        if count <= 1 and page.slot is not None:
            count += page.slot.count
            if count == 1:
                self._delete_from_swap_cache(page)
        return count <= 1

    def _do_wp_page(self, mm: Mm, vma: Vma, addr: int, pte: Pte):
        """do_wp_page. Only an anon page can be reused; the zero page and (private file
        mapping) a page-cache page are always copied into a new anon page of
        vma->anon_vma at the linear index of addr (for a file VMA: the file page)."""
        old = pte.page if pte.kind == PRESENT else None
        if old is not None and self._reuse_swap_page(old):
            self.events["do_wp_page reuses the page"] += 1
            if self.chain:
                if old.mapping is not vma.anon_vma:
                    self.events["page_move_anon_rmap moves the page"] += 1
                old.mapping = vma.anon_vma  # page_move_anon_rmap
            pte.writable = True
            return
        if pte.kind == FILE:
            self.events["do_wp_page copies a page-cache page"] += 1
        self.anon_vma_prepare(vma)
        new = self._new_page(vma.anon_vma, vma.linear_page_index(addr))  # page_add_new_anon_rmap
        new.mapcount = 1
        mm.ptes[addr] = Pte(PRESENT, new, True)
        if old is not None:
            old.mapcount -= 1  # page_remove_rmap; the swap cache may still hold it
            if old.mapcount == 0 and old.slot is None:
                self._free_page(old)

    def _do_swap_page(self, mm: Mm, vma: Vma, addr: int, pte: Pte, write: bool):
        s = pte.slot
        page = s.cache
        if page is None:  # read into the swap cache
            self.events["do_swap_page reads a fresh page"] += 1
            page = self._new_page(None, None)
            page.slot = s
            s.cache = page
        writable = exclusive = False
        if write and self._reuse_swap_page(page):
            self.events["do_swap_page takes the page exclusively"] += 1
            writable = exclusive = True
            write = False
        new = Pte(PRESENT, page, writable)
        mm.ptes[addr] = new
        page.mapcount += 1
        if page.mapcount == 1:
            self._page_set_anon_rmap(page, vma, addr, exclusive)
        s.count -= 1  # swap_free
        self._maybe_free_slot(s)
        if write:
            self._do_wp_page(mm, vma, addr, new)

    def _fault(self, mm: Mm, vma: Vma, addr: int, write: bool):
        """handle_pte_fault."""
        pte = mm.ptes.get(addr)
        if pte is None:
            if vma.file is not None:
                self._do_linear_fault(mm, vma, addr, write)
                return
            if not write:
                mm.ptes[addr] = Pte(ZERO)  # do_anonymous_page: zero page, no anon_vma
                return
            self.anon_vma_prepare(vma)
            page = self._new_page(vma.anon_vma, vma.linear_page_index(addr))
            page.mapcount = 1
            mm.ptes[addr] = Pte(PRESENT, page, True)
        elif pte.kind in (ZERO, FILE):
            if write:
                self._do_wp_page(mm, vma, addr, pte)
        elif pte.kind == PRESENT:
            if write and not pte.writable:
                self._do_wp_page(mm, vma, addr, pte)
        else:
            self._do_swap_page(mm, vma, addr, pte, write)

    def _do_linear_fault(self, mm: Mm, vma: Vma, addr: int, write: bool):
        """do_linear_fault -> __do_fault on a private file mapping. A read maps the
        page-cache page of file page linear_page_index(addr), read-only (page_add_file_rmap:
        nothing of the anon rmap). A write does the early COW break: anon_vma_prepare, a
        new anon page (page_add_new_anon_rmap at that index) mapped writable; the
        page-cache page is only read."""
        if not write:
            self.events["do_linear_fault maps a page-cache page"] += 1
            mm.ptes[addr] = Pte(FILE)
            return
        self.events["do_linear_fault breaks COW early"] += 1
        self.anon_vma_prepare(vma)
        page = self._new_page(vma.anon_vma, vma.linear_page_index(addr))
        page.mapcount = 1
        mm.ptes[addr] = Pte(PRESENT, page, True)

    def _try_to_unmap_one_page(self, page: Page) -> dict:
        row = {"page": page.id, "anon_vma": None, "vmas_visited": 0, "mappings_found": 0,
               "mapcount": page.mapcount}
        if page.mapcount == 0:
            return row  # page_lock_anon_vma: !page_mapped -> no walk
        av = self._walk_target(page)
        row["anon_vma"] = av.id
        if page.slot is None:  # add_to_swap
            s = self._new_slot()
            s.cache = page
            page.slot = s
        s = page.slot
        for entry in list(av.head):
            vma = self._entry_vma(entry)
            row["vmas_visited"] += 1
            addr = vma.start + ((page.index - vma.pgoff) << PAGE_SHIFT)
            if addr < vma.start or addr >= vma.end:
                continue
            pte = vma.mm.ptes.get(addr)
            if pte is not None and pte.kind == PRESENT and pte.page is page:
                vma.mm.ptes[addr] = Pte(SWAP, slot=s)
                s.count += 1
                page.mapcount -= 1
                row["mappings_found"] += 1
            if page.mapcount == 0:
                break
        return row

    # ------------------------------------------------------------------ public operations

    def spawn(self) -> int:
        pid = self._next_pid
        self._next_pid += 1
        self.mms[pid] = Mm(pid)
        return pid

    def fork(self, pid) -> int:
        """dup_mmap: copy every VMA but VM_DONTCOPY ones (a file VMA keeps its vm_file);
        anon_vma_fork (2.6.34) or anon_vma_link (2.6.33); copy_page_range only for VMAs with
        an anon_vma, so an unwritten file VMA's page-cache entries are not copied."""
        parent = self._mm(pid)
        child = Mm(self._next_pid)
        self._next_pid += 1
        self.mms[child.pid] = child
        for mpnt in parent.vmas:
            if "dontcopy" in mpnt.flags:
                continue
            tmp = Vma(child, mpnt.start, mpnt.end, mpnt.pgoff, mpnt.prot, mpnt.flags, mpnt.anon_vma, mpnt.file)
            if self.chain:
                self.anon_vma_fork(tmp, mpnt)
            elif tmp.anon_vma is not None:
                tmp.anon_vma.head.append(tmp)  # anon_vma_link: list_add_tail
            child.vmas.append(tmp)
            if mpnt.anon_vma is None:
                continue  # copy_page_range: "don't copy ptes where a page fault will fill them"
            for addr in range(mpnt.start, mpnt.end, PAGE):
                pte = parent.ptes.get(addr)
                if pte is None:
                    continue
                if pte.kind in (ZERO, FILE):
                    # the zero page; a page-cache page (page_dup_rmap of a file page)
                    child.ptes[addr] = Pte(pte.kind)
                    if pte.kind == FILE:
                        self.events["fork copies a page-cache entry"] += 1
                elif pte.kind == PRESENT:
                    pte.writable = False  # COW: both write-protected
                    child.ptes[addr] = Pte(PRESENT, pte.page, False)
                    pte.page.mapcount += 1  # page_dup_rmap
                else:
                    pte.slot.count += 1  # swap_duplicate
                    child.ptes[addr] = Pte(SWAP, slot=pte.slot)
        return child.pid

    def fork_many(self, pid, n) -> List[int]:
        self._mm(pid)
        return [self.fork(pid) for _ in range(int(n))]

    def _exit_mmap(self, mm: Mm):
        self._unmap_region(mm, list(mm.vmas))
        assert not mm.ptes

    def exit(self, pid):
        mm = self._mm(pid)
        self._exit_mmap(mm)
        del self.mms[mm.pid]

    def exec(self, pid):
        mm = self._mm(pid)
        self.mms[mm.pid] = Mm(mm.pid)  # bprm_mm_init: the new mm first
        self._exit_mmap(mm)

    @staticmethod
    def _check_range(addr, length):
        if not isinstance(length, int) or length <= 0 or length % PAGE:
            raise InvalidArgument(f"bad length {length!r}")
        if not isinstance(addr, int) or addr % PAGE or addr < 0 or addr + length > TASK_SIZE:
            raise BadAddress(f"bad address {addr!r}")

    def mmap(self, pid, length, addr=None, prot="rw", file=None, offset=None) -> int:
        """mmap(MAP_PRIVATE [| MAP_ANONYMOUS] [| MAP_FIXED]). With ``file`` (an identity
        >= 1) and a byte ``offset`` (default 0), a private file mapping whose vm_pgoff is
        the file page offset >> PAGE_SHIFT. The argument checks come in the engine's order
        (docs/api-contract.md): prot, the file arguments, the pid, the file range, then the
        length and address."""
        prot = parse_prot(prot)
        if not isinstance(length, int) or length < 0:
            raise InvalidArgument(f"bad length {length!r}")
        file, offset = _file_args(file, offset)
        mm = self._mm(pid)
        if file is not None:
            if file > FILE_MAX:
                raise InvalidArgument(f"file identity must be in 1..={FILE_MAX}, got {file}")
            # do_mmap_pgoff: the offset must be page aligned (EINVAL) and pgoff + pages must
            # not wrap (EOVERFLOW; the engine bounds file pages to 2^52, InvalidArgument)
            if offset % PAGE or (offset >> PAGE_SHIFT) + (length >> PAGE_SHIFT) > MAX_FILE_PAGES:
                raise InvalidArgument(f"file offset must be page aligned and in range, got {offset:#x}")
        if length == 0 or length % PAGE:
            raise InvalidArgument(f"bad length {length!r}")
        if addr is None:
            addr = self._top_down(mm, length)
        else:
            self._check_range(addr, length)
        if file is None:
            return self.mmap_region(mm, addr, length, prot)
        return self.mmap_region(mm, addr, length, prot, file, offset >> PAGE_SHIFT)

    def munmap(self, pid, addr, length):
        mm = self._mm(pid)
        self._check_range(addr, length)
        if not any(v.start < addr + length and v.end > addr for v in mm.vmas):
            raise BadAddress(f"[{addr:#x}, {addr + length:#x}) is not mapped in pid {pid}")
        self.do_munmap(mm, addr, length)

    def _check_access(self, mm: Mm, addr, length, write):
        self._check_range(addr, length)
        for a in range(addr, addr + length, PAGE):
            v = self._vma_at(mm, a)
            if v is None:
                raise BadAddress(f"address {a:#x} is not mapped in pid {mm.pid}")
            if write and "w" not in v.prot:
                raise BadAddress(f"address {a:#x} is not writable")
            if not write and not v.prot:
                raise BadAddress(f"address {a:#x} is not accessible")

    def touch(self, pid, addr, length, write=True):
        mm = self._mm(pid)
        self._check_access(mm, addr, length, write)
        for a in range(addr, addr + length, PAGE):
            self._fault(mm, self._vma_at(mm, a), a, bool(write))

    def touch_many(self, pids, addr, length, write=True):
        mms = [self._mm(p) for p in pids]
        for mm in mms:
            self._check_access(mm, addr, length, write)
        for p in pids:
            self.touch(p, addr, length, write)

    def _check_no_hole(self, mm: Mm, addr, length):
        self._check_range(addr, length)
        for a in range(addr, addr + length, PAGE):
            if self._vma_at(mm, a) is None:
                raise BadAddress(f"address {a:#x} is not mapped in pid {mm.pid}")

    def mprotect(self, pid, addr, length, prot):
        """sys_mprotect's loop over mprotect_fixup."""
        mm = self._mm(pid)
        newprot = parse_prot(prot)
        self._check_no_hole(mm, addr, length)
        start, end = addr, addr + length
        vma, prev = self._find_vma_prev(mm, start)
        if start > vma.start:
            prev = vma
        nstart = start
        while True:
            tmp = min(vma.end, end)
            prev = self._mprotect_fixup(vma, prev, nstart, tmp, newprot)
            nstart = tmp
            if nstart < prev.end:
                nstart = prev.end
            if nstart >= end:
                return
            vma = self._next(prev)
            assert vma is not None and vma.start == nstart

    def _mprotect_fixup(self, vma: Vma, prev, start, end, newprot) -> Vma:
        if newprot == vma.prot:
            return vma
        pgoff = vma.pgoff + ((start - vma.start) >> PAGE_SHIFT)
        # mprotect_fixup charges a range the first time it becomes writable (VM_ACCOUNT),
        # and never uncharges it
        newflags = vma.flags | {"account"} if "w" in newprot else vma.flags
        merged = self.vma_merge(vma.mm, prev, start, end, newprot, newflags, vma.anon_vma, vma.file, pgoff)
        if merged is not None:
            vma = merged
        else:
            if start != vma.start:
                self.split_vma(vma, start, True)
            if end != vma.end:
                self.split_vma(vma, end, False)
        vma.prot = newprot
        vma.flags = newflags
        # change_protection: a private mapping's PTEs are never writable after mprotect
        for a in range(start, end, PAGE):
            pte = vma.mm.ptes.get(a)
            if pte is not None and pte.kind == PRESENT:
                pte.writable = False
        return vma

    def madvise(self, pid, addr, length, advice) -> List[dict]:
        """sys_madvise's loop; returns the try_to_unmap walks made (pageout only)."""
        mm = self._mm(pid)
        if advice in _LATER_ADVICE:
            # (in the eras that have it, MADV_WIPEONFORK on a file mapping is EINVAL too)
            raise InvalidArgument(f"advice {advice!r} is EINVAL in era {self.era}")
        if advice not in _ADVICE:
            raise InvalidArgument(f"unknown advice {advice!r}")
        self._check_no_hole(mm, addr, length)
        start, end = addr, addr + length
        if advice == "dontneed":
            self._zap_range(mm, start, end)
            return []
        if advice == "pageout":
            rows = []
            for a in range(start, end, PAGE):
                pte = mm.ptes.get(a)
                if pte is not None and pte.kind == PRESENT and pte.page.mapcount == 1:
                    page = pte.page
                    rows.append(self._try_to_unmap_one_page(page))
                    self._drop_one(page)
            return rows
        vma, prev = self._find_vma_prev(mm, start)
        if start > vma.start:
            prev = vma
        while True:
            tmp = min(vma.end, end)
            prev = self._madvise_behavior(vma, prev, start, tmp, advice)
            start = tmp
            if start < prev.end:
                start = prev.end
            if start >= end:
                return []
            vma = self._next(prev)
            assert vma is not None and vma.start == start

    def _madvise_behavior(self, vma: Vma, prev, start, end, advice) -> Vma:
        clear, add = _FLAG_ADVICE[advice]
        new_flags = (vma.flags - clear) | add
        if new_flags == vma.flags:
            return vma
        pgoff = vma.pgoff + ((start - vma.start) >> PAGE_SHIFT)
        merged = self.vma_merge(vma.mm, prev, start, end, vma.prot, new_flags, vma.anon_vma, vma.file, pgoff)
        if merged is not None:
            vma = merged
        else:
            if start != vma.start:
                self.split_vma(vma, start, True)
            if end != vma.end:
                self.split_vma(vma, end, False)
        vma.flags = new_flags
        return vma

    def mremap(self, pid, old_addr, old_len, new_len, may_move=True, new_addr=None) -> int:
        mm = self._mm(pid)
        self._check_range(old_addr, old_len)
        if not isinstance(new_len, int) or new_len <= 0 or new_len % PAGE:
            raise InvalidArgument(f"bad length {new_len!r}")
        old_end = old_addr + old_len
        if new_addr is not None:
            # mremap_to
            if not may_move:
                raise InvalidArgument("MREMAP_FIXED needs MREMAP_MAYMOVE")
            self._check_range(new_addr, new_len)
            if (new_addr <= old_addr < new_addr + new_len) or (old_addr <= new_addr < old_end):
                raise InvalidArgument("the new range overlaps the old one")
            vma = self._find_vma(mm, old_addr)
            if vma is None or vma.start > old_addr or old_end > vma.end:
                raise BadAddress(f"[{old_addr:#x}, {old_end:#x}) is not inside one VMA (EFAULT)")
            self.do_munmap(mm, new_addr, new_len)
            if old_len >= new_len:
                if old_len > new_len:
                    self.do_munmap(mm, old_addr + new_len, old_len - new_len)
                old_len = new_len
            vma = self._find_vma(mm, old_addr)
            assert vma is not None and vma.start <= old_addr
            return self._move_vma(vma, old_addr, old_len, new_len, new_addr)
        if old_len >= new_len:
            self._check_no_hole(mm, old_addr, old_len)
            if old_len > new_len:
                self.do_munmap(mm, old_addr + new_len, old_len - new_len)
            return old_addr
        # vma_to_resize
        vma = self._find_vma(mm, old_addr)
        if vma is None or vma.start > old_addr or old_end > vma.end:
            raise BadAddress(f"[{old_addr:#x}, {old_end:#x}) is not inside one VMA (EFAULT)")
        if old_end == vma.end and self._vma_expandable(vma, new_len - old_len):
            # grow in place: vma_adjust only, no vma_merge with what follows
            self.events["mremap grows in place"] += 1
            self.vma_adjust(vma, vma.start, old_addr + new_len, vma.pgoff)
            return old_addr
        if not may_move:
            raise OutOfMemory("mremap cannot grow in place (ENOMEM)")
        dest = self._top_down(mm, new_len)
        return self._move_vma(vma, old_addr, old_len, new_len, dest)

    def _vma_expandable(self, vma: Vma, delta: int) -> bool:
        end = vma.end + delta
        nxt = self._next(vma)
        if nxt is not None and nxt.start < end:
            return False
        return end <= TASK_SIZE

    def _move_vma(self, vma: Vma, old_addr, old_len, new_len, new_addr) -> int:
        mm = vma.mm
        new_pgoff = vma.pgoff + ((old_addr - vma.start) >> PAGE_SHIFT)
        self.copy_vma(vma, new_addr, new_len, new_pgoff)
        # move_page_tables: entries move unchanged (page->index stays valid: pgoff kept)
        moved = {}
        for i in range(old_len >> PAGE_SHIFT):
            pte = mm.ptes.pop(old_addr + i * PAGE, None)
            if pte is not None:
                moved[new_addr + i * PAGE] = pte
        mm.ptes.update(moved)
        self.do_munmap(mm, old_addr, old_len)
        return new_addr

    def _page(self, h) -> Page:
        try:
            return self.pages[int(h)]
        except (KeyError, TypeError, ValueError):
            raise StaleHandle(f"page handle {h!r} does not name a live page") from None

    def _page_list(self, pages) -> List[Page]:
        if pages is None:
            return list(self.pages.values())
        return [self._page(h) for h in pages]

    def try_to_unmap(self, pages: Optional[Iterable[int]] = None) -> List[dict]:
        """Reclaim's try_to_unmap: the page enters the swap cache, each mapping the walk
        finds becomes a swap entry; the walk stops once the page is unmapped. One row per
        page (an unmapped page is not walked)."""
        return [self._try_to_unmap_one_page(p) for p in self._page_list(pages)]

    def _drop_one(self, page: Page) -> bool:
        if page.slot is None or page.mapcount != 0:
            return False
        self._delete_from_swap_cache(page)
        self._free_page(page)
        return True

    def drop_swap_cache(self, pages: Optional[Iterable[int]] = None) -> int:
        return sum(1 for p in self._page_list(pages) if self._drop_one(p))

    # ------------------------------------------------------------------ queries

    def pids(self) -> List[int]:
        return sorted(self.mms)

    def counts(self) -> Dict[str, int]:
        return {
            "mm": len(self.mms),
            "vma": sum(len(mm.vmas) for mm in self.mms.values()),
            "anon_vma": len(self.anon_vmas),
            "anon_vma_chain": self.nr_avc,
            "page": len(self.pages),
            "pte": sum(len(mm.ptes) for mm in self.mms.values()),
            "swap_slot": len(self.slots),
            "swap_cache": sum(1 for p in self.pages.values() if p.slot is not None),
        }

    def vmas(self, pid) -> List[dict]:
        mm = self._mm(pid)
        return [
            {
                "start": v.start,
                "end": v.end,
                "pgoff": v.pgoff,
                "prot": prot_str(v.prot),
                "anon_vma": None if v.anon_vma is None else v.anon_vma.id,
                "chain_len": len(v.chain),
                "chain": [avc.anon_vma.id for avc in reversed(v.chain)],  # oldest first
                "flags": sorted(v.flags),
                "file": v.file,
            }
            for v in mm.vmas
        ]

    def anon_pages(self) -> List[int]:
        return sorted(self.pages)

    def page_at(self, pid, addr) -> Optional[int]:
        mm = self._mm(pid)
        if self._vma_at(mm, addr) is None:
            raise BadAddress(f"address {addr:#x} is not mapped in pid {pid}")
        pte = mm.ptes.get(addr)
        return pte.page.id if pte is not None and pte.kind == PRESENT else None

    def entry_kind(self, pid, addr) -> Optional[str]:
        """None / "zero" / "page" / "swap" / "file" (a page-cache page of a private file
        mapping, which the engine's render_layout shows as "z", like the zero page: neither
        is an anon page) for the PTE at (pid, addr)."""
        pte = self._mm(pid).ptes.get(addr)
        return None if pte is None else pte.kind

    def page_info(self, page) -> dict:
        p = self._page(page)
        return {
            "anon_vma": None if p.mapping is None else p.mapping.id,
            "index": p.index,
            "mapcount": p.mapcount,
            "swap_slot": None if p.slot is None else p.slot.id,
        }

    def page_map(self) -> Dict[tuple, int]:
        """{(pid, addr): page id} of every present anon PTE."""
        return {
            (pid, a): pte.page.id
            for pid, mm in self.mms.items()
            for a, pte in mm.ptes.items()
            if pte.kind == PRESENT
        }

    def _page_of(self, pid, addr) -> Page:
        h = self.page_at(pid, addr)
        if h is None:
            raise InvalidArgument(f"no anon page mapped at {addr:#x} in pid {pid}")
        return self.pages[h]

    def rmap_walk_len(self, pid, addr) -> int:
        """Candidates a full rmap walk (rmap_walk_anon) of the page mapped at (pid, addr)
        enumerates: every entry on its anon_vma's list."""
        return len(self._walk_target(self._page_of(pid, addr)).head)

    def page_referenced_len(self, pid, addr) -> int:
        """Candidates page_referenced_anon enumerates before its early stop (it breaks
        once it has found page_mapcount mappings)."""
        return self.walk_page(self._page_of(pid, addr), until_all_found=True)[0]

    def walk_page(self, page: Page, until_all_found: bool = False) -> Tuple[int, int]:
        """One rmap walk of ``page`` (rmap_walk_anon; page_referenced_anon's early stop
        with ``until_all_found``): every entry of its anon_vma, vma_address, the page-table
        lookup. Returns (candidates visited, mappings found)."""
        left = page.mapcount
        visits = found = 0
        for entry in self._walk_target(page).head:
            vma = self._entry_vma(entry)
            visits += 1
            a = vma.start + ((page.index - vma.pgoff) << PAGE_SHIFT)
            if vma.start <= a < vma.end:
                pte = vma.mm.ptes.get(a)
                if pte is not None and pte.kind == PRESENT and pte.page is page:
                    found += 1
                    left -= 1
            if until_all_found and not left:
                break
        return visits, found

    def check(self):
        """The model's own consistency (SPEC section 5, the parts the model can state):
        raises InvariantViolation. After the copy_vma defect, invariant 1/2 breaks as in
        the kernel."""
        mapped = {}
        for pid, mm in self.mms.items():
            for a, pte in mm.ptes.items():
                v = self._vma_at(mm, a)
                if v is None:
                    raise InvariantViolation(f"invariant 7: pid {pid} PTE at {a:#x} outside VMAs")
                if pte.kind == SWAP and v.anon_vma is None:
                    # only the copy_vma defect puts one there: the page it names, once read
                    # back, has no anon_vma to go to (do_swap_page's page_add_anon_rmap)
                    raise InvariantViolation(f"invariant 1: pid {pid} swap entry at {a:#x} in {v} without anon_vma")
                # a page-cache page only in a file VMA, the zero page only in an anonymous one
                if (pte.kind == FILE) != (v.file is not None) and pte.kind in (FILE, ZERO):
                    raise InvariantViolation(f"pid {pid} {a:#x}: {pte.kind} entry in {v}")
                if pte.kind == PRESENT:
                    mapped.setdefault(pte.page.id, []).append((mm, a, v))
        for pid_page, where in mapped.items():
            page = self.pages.get(pid_page)
            if page is None:
                raise InvariantViolation(f"invariant 2: freed page {pid_page} is mapped")
            if page.mapcount != len(where):
                raise InvariantViolation(f"invariant 2: page {page.id} mapcount {page.mapcount} != {len(where)}")
            av = page.mapping
            if av is None or av.freed:
                raise InvariantViolation(f"invariant 2: page {page.id} has a dangling page->mapping {av}")
            on_list = {id(self._entry_vma(e)) for e in av.head}
            for mm, a, v in where:
                if id(v) not in on_list:
                    raise InvariantViolation(f"invariant 1: the walk of page {page.id} misses pid {mm.pid} {a:#x}")
                if page.index != v.linear_page_index(a):
                    raise InvariantViolation(f"invariant 2: page {page.id} index mismatch")
        for p in self.pages.values():
            if p.mapcount == 0 and p.slot is None:
                raise InvariantViolation(f"invariant 6: page {p.id} unmapped and not in the swap cache")
        for s in self.slots.values():
            if s.count == 0 and s.cache is None:
                raise InvariantViolation(f"invariant 6: slot {s.id} unused but allocated")
            refs = sum(
                1 for mm in self.mms.values() for pte in mm.ptes.values() if pte.kind == SWAP and pte.slot is s
            )
            if refs != s.count:
                raise InvariantViolation(f"invariant 6: slot {s.id} count {s.count} != {refs}")
        for mm in self.mms.values():
            for a, b in zip(mm.vmas, mm.vmas[1:]):
                if a.end > b.start:
                    raise InvariantViolation(f"invariant 7: pid {mm.pid} VMAs overlap")
            if self.chain:
                chains = {}
                for v in mm.vmas:
                    if v.anon_vma is not None:
                        if v.anon_vma not in [c.anon_vma for c in v.chain]:
                            raise InvariantViolation(f"invariant 3: {v} anon_vma not on its chain")
                        key = {id(c.anon_vma) for c in v.chain}  # the set the walks depend on
                        if chains.setdefault(id(v.anon_vma), key) != key:
                            raise InvariantViolation(f"invariant 4: same anon_vma, different chains in pid {mm.pid}")
                    elif v.chain:
                        raise InvariantViolation(f"invariant 3: {v} has a chain but no anon_vma")
        live_avc = sum(len(v.chain) for mm in self.mms.values() for v in mm.vmas)
        if live_avc != self.nr_avc:
            raise InvariantViolation(f"invariant 6: {self.nr_avc} AVCs counted, {live_avc} linked")
        for av in self.anon_vmas.values():
            if not av.head:
                raise InvariantViolation(f"invariant 5: live {av} with an empty list")


def _file_args(file, offset):
    """(file identity, byte offset) or (None, None): the engine binding's checks."""
    if file is None:
        if offset is not None:
            raise InvalidArgument("offset given without file")
        return None, None
    file = _int_arg(file, "file")
    if not 1 <= file < 1 << 32:
        raise InvalidArgument(f"file identity must be a positive int, got {file}")
    offset = 0 if offset is None else _int_arg(offset, "offset")
    if offset < 0 or offset >= 1 << 64:
        raise InvalidArgument(f"offset must be >= 0, got {offset}")
    return file, offset


def _int_arg(x, what) -> int:
    if isinstance(x, bool):
        raise InvalidArgument(f"{what} must be an int, got {x!r}")
    try:
        return operator.index(x)
    except TypeError:
        raise InvalidArgument(f"{what} must be an int, got {x!r}") from None


def _index(seq, obj) -> int:
    for i, x in enumerate(seq):
        if x is obj:
            return i
    raise ValueError(f"{obj!r} not in list")


def _remove(seq, obj):
    del seq[_index(seq, obj)]
