"""Page tables, faults and swap: zap, do_wp_page, do_swap_page, the fault path and
do_linear_fault (mm/memory.c), the swap cache (mm/swap_state.c, mm/swapfile.c) and
try_to_unmap of one page (mm/rmap.c, as reclaim uses it)."""

from __future__ import annotations

from typing import Iterable, List, Optional

from ...errors import BadAddress, StaleHandle
from .objects import FILE, PAGE, PAGE_SHIFT, PRESENT, SWAP, ZERO, Mm, Page, Pte, Vma


class MemoryMixin:
    """Page-table entries, faults and swap: methods of :class:`ReferenceModel`
    (its state: see :mod:`rmapsim.testing.reference`)."""

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
        row = {"page": page.id, "anon_vma": None, "vmas_visited": 0, "mappings_found": 0, "mapcount": page.mapcount}
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
