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
  with try_to_unmap and freed from the swap cache, in address order; then each page-cache
  entry of the range whose file page no other entry maps (counted over every process) is
  dropped (madvise_cold_or_pageout_pte_range, the caller owning the file).

Known kernel defect modelled as the kernel has it (docs/bugs.md): copy_vma may merge a moved
*faulted* range into an *unfaulted*, pgoff-contiguous neighbour (is_mergeable_anon_vma(x,
NULL) is true and vma_adjust has no importer for a range that is not yet mapped). The pages
then sit in a VMA without anon_vma; ``copy_vma_defects`` counts how often that happened and
``check()`` reports the resulting rmap breakage (also when the pages are swapped out: a swap
entry in a VMA without anon_vma).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Dict

from ...errors import InvalidArgument, NoSuchProcess
from .anon_vma import AnonVmaMixin
from .memory import MemoryMixin
from .objects import *  # noqa: F403 (the module's names, as from the former single module)
from .objects import ERAS, AnonVma, Mm, Page, Slot
from .syscalls import SyscallMixin
from .vma import VmaMixin
from .walk import WalkMixin


class ReferenceModel(SyscallMixin, VmaMixin, AnonVmaMixin, MemoryMixin, WalkMixin):
    """The anon rmap of era ``"2.6.33"`` or ``"2.6.34"``; same operations as
    :class:`rmapsim.Simulator` (page and anon_vma handles are the model's own). The kernel
    paths are grouped by area in the mixins: :mod:`.vma` (mm/mmap.c's VMA tree and merges),
    :mod:`.syscalls` (mmap, munmap, mprotect, madvise, mremap), :mod:`.anon_vma` (mm/rmap.c's
    anon_vma, fork, exit, exec), :mod:`.memory` (faults, zap, swap) and :mod:`.walk` (rmap
    walks, queries, check)."""

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
                raise InvalidArgument(
                    f"era {era!r}: the reference model models one knob, prepare_reuse=any_compatible|singular_chain"
                )
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

    def _mm(self, pid) -> Mm:
        try:
            return self.mms[int(pid)]
        except (KeyError, TypeError, ValueError):
            raise NoSuchProcess(f"no such process: pid {pid}") from None
