"""The VMA tree of mm/mmap.c: lookups, the merge rules (vma_merge, vma_adjust), split_vma,
do_munmap, mmap_region and copy_vma."""

from __future__ import annotations

from typing import List, Optional

from ...errors import OutOfMemory
from .objects import MMAP_BASE, MMAP_MIN_ADDR, PAGE_SHIFT, Mm, Vma, _index


class VmaMixin:
    """The VMA list of an mm: lookups, merges, splits, unmaps and copies: methods of :class:`ReferenceModel`
    (its state: see :mod:`rmapsim.testing.reference`)."""

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
        self._note_file_rule(
            prev if prev is not None and prev.end == addr else None, prot, flags, anon_vma, file, pgoff
        )
        self._note_file_rule(
            nxt if nxt is not None and nxt.end == end else None, prot, flags, anon_vma, file, pgoff + pglen, before=True
        )

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
            self.vma_adjust(vma, addr, vma.end, vma.pgoff + ((addr - new.start) >> PAGE_SHIFT), new)
        else:
            self.vma_adjust(vma, vma.start, addr, vma.pgoff, new)
        return new

    def do_munmap(self, mm: Mm, start: int, length: int):
        """do_munmap: split at both ends, zap, unlink the anon rmap, free the VMAs."""
        end = start + length
        vma = self._find_vma(mm, start)
        if vma is None or vma.start >= end:
            return
        if start > vma.start:
            self.split_vma(vma, start, False)
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
        new_vma = self.vma_merge(mm, prev, addr, addr + length, vma.prot, vma.flags, vma.anon_vma, vma.file, pgoff)
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
