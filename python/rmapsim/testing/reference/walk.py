"""The rmap walks (the walk order of an anon_vma's list, rmap_walk, page_referenced) and
the queries and invariant checks the tests compare with the engine."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ...errors import BadAddress, InvalidArgument, InvariantViolation
from .objects import FILE, PAGE_SHIFT, PRESENT, SWAP, ZERO, AnonVma, Page, Vma, prot_str


class WalkMixin:
    """Rmap walks, queries and check(): methods of :class:`ReferenceModel`
    (its state: see :mod:`rmapsim.testing.reference`)."""

    @staticmethod
    def _walk_entries(av: AnonVma):
        return av.head

    def _entry_vma(self, entry) -> Vma:
        return entry.vma if self.chain else entry

    def _walk_target(self, page: Page) -> AnonVma:
        av = page.mapping
        if av is None or av.freed:
            raise InvariantViolation(f"use-after-free: page {page.id} has page->mapping = {av} (dangling)")
        return av

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
            (pid, a): pte.page.id for pid, mm in self.mms.items() for a, pte in mm.ptes.items() if pte.kind == PRESENT
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
        """The model's own consistency (docs/contract.md#invariants, the parts the model can state):
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
            refs = sum(1 for mm in self.mms.values() for pte in mm.ptes.values() if pte.kind == SWAP and pte.slot is s)
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
