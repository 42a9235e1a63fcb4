"""The address-range system calls: mmap and munmap (mm/mmap.c), mprotect (mm/mprotect.c),
madvise (mm/madvise.c) and mremap (mm/mremap.c), with their argument checks."""

from __future__ import annotations

from typing import List

from ...errors import BadAddress, InvalidArgument, OutOfMemory
from .objects import (
    _ADVICE,
    _FLAG_ADVICE,
    _LATER_ADVICE,
    FILE_MAX,
    MAX_FILE_PAGES,
    PAGE,
    PAGE_SHIFT,
    PRESENT,
    TASK_SIZE,
    Mm,
    Vma,
    _file_args,
    parse_prot,
)


class SyscallMixin:
    """The system calls on address ranges: methods of :class:`ReferenceModel`
    (its state: see :mod:`rmapsim.testing.reference`)."""

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
            # a move that also shrinks unmaps the tail first (across VMA boundaries): only
            # the kept part must lie in one VMA (mremap_to, every era); strict mode wants
            # the tail mapped
            kept_end = old_addr + min(old_len, new_len)
            vma = self._find_vma(mm, old_addr)
            if vma is None or vma.start > old_addr or kept_end > vma.end:
                raise BadAddress(f"[{old_addr:#x}, {kept_end:#x}) is not inside one VMA (EFAULT)")
            if kept_end < old_end:
                self._check_no_hole(mm, kept_end, old_end - kept_end)
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
