"""The anon_vma side of mm/rmap.c (anon_vma_prepare, clone, fork, unlink, the anon rmap
of a new page) and the process lifetimes of kernel/fork.c and exec/exit."""

from __future__ import annotations

from typing import List, Optional

from ...errors import InvariantViolation
from .objects import FILE, PAGE, PRESENT, SWAP, ZERO, AnonVma, Avc, Mm, Page, Pte, Vma, _remove


class AnonVmaMixin:
    """Anon_vmas and their chains, and the processes that share them: methods of :class:`ReferenceModel`
    (its state: see :mod:`rmapsim.testing.reference`)."""

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
            raise InvariantViolation(f"vma_adjust merges {nxt} into {vma} whose anon_vma differs (VM_BUG_ON)")
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
