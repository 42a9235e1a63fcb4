//! `mm/mremap.c`, every era from 2.6.33 to 6.18: shrink, expand in place, or move
//! (`move_vma` → `copy_vma`, `move_page_tables`, `do_munmap` of the source). The code has
//! 2.6.34's structure; 6.1's merge after growing in place (`mremap_expand_merges`) and
//! 6.17's move of a range spanning several VMAs (`mremap_move_multi`) are knobs.

use crate::error::{Result, SimError};
use crate::mm::vma::{MergeCtx, VmaMerge};
use crate::policy::{Linking, MergeAnonRule};
use crate::state::objects::*;
use crate::state::sim::{AllocSite, Simulator, TASK_SIZE};

impl Simulator {
    /// `mremap(old_addr, old_len, new_len, MREMAP_MAYMOVE?, [MREMAP_FIXED, new_addr])`.
    /// Returns the address of the (possibly moved) mapping.
    ///
    /// rmapsim refuses up front what the kernel refuses (EINVAL / EFAULT): `new_addr`
    /// without `may_move`, overlapping old and new ranges, an old range that is not inside
    /// one VMA (when growing or moving) or has holes (when shrinking). The exception is the
    /// 6.17+ pure move (knob `mremap_move_multi`: `new_addr` with `old_len == new_len`),
    /// which may span several VMAs and holes (`remap_move` below).
    pub fn mremap(
        &mut self,
        pid: i64,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        new_addr: Option<u64>,
    ) -> Result<u64> {
        let mm = self.proc_mm(pid)?;
        let old_end = Self::mremap_check_args(old_addr, old_len, new_len, may_move, new_addr)?;
        if let Some(na) = new_addr {
            if self.policy.mremap_move_multi && old_len == new_len && !self.inside_one_vma(mm, old_addr, old_end) {
                return self.remap_move(pid, mm, old_addr, old_end, na);
            }
        }
        let shrink_in_place = new_addr.is_none() && new_len <= old_len;
        if shrink_in_place {
            self.check_mapped(pid, mm, old_addr, old_end)?;
        } else {
            if !self.inside_one_vma(mm, old_addr, old_end) {
                return Err(SimError::BadAddress(format!(
                    "[{old_addr:#x}, {old_end:#x}) is not inside one VMA of pid {pid} (EFAULT)"
                )));
            }
        }
        if new_addr.is_none() && !shrink_in_place && !may_move && !self.vma_expandable(mm, old_addr, old_len, new_len) {
            return Err(SimError::OutOfMemory(format!(
                "cannot grow [{old_addr:#x}, {old_end:#x}) to {new_len:#x} bytes in place and may_move is False (ENOMEM)"
            )));
        }
        // a move's destination is searched before the op begins: no room (ENOMEM) changes nothing
        let moves = new_addr.is_none() && !shrink_in_place && !self.vma_expandable(mm, old_addr, old_len, new_len);
        let dest = if moves { Some(self.get_unmapped_area(mm, new_len)?) } else { None };
        self.begin_op("mremap");
        if let Some(na) = new_addr {
            // mremap_to
            self.do_munmap(mm, na, new_len)?;
            let mut old_len = old_len;
            if old_len >= new_len {
                if old_len > new_len {
                    self.do_munmap(mm, old_addr + new_len, old_len - new_len)?;
                }
                old_len = new_len;
            }
            return self.move_vma(mm, old_addr, old_len, new_len, na);
        }
        if shrink_in_place {
            if old_len > new_len {
                self.do_munmap(mm, old_addr + new_len, old_len - new_len)?;
            }
            return Ok(old_addr);
        }
        if self.vma_expandable(mm, old_addr, old_len, new_len) {
            return self.mremap_grow_in_place(mm, old_addr, old_len, new_len);
        }
        let na = match dest {
            Some(na) => na,
            None => self.get_unmapped_area(mm, new_len)?,
        };
        self.move_vma(mm, old_addr, old_len, new_len, na)
    }

    /// `mremap`'s argument checks, in the kernel's order (EINVAL before anything is looked
    /// up); the old range's end.
    fn mremap_check_args(
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        new_addr: Option<u64>,
    ) -> Result<u64> {
        let old_end = Self::check_range(old_addr, old_len)?;
        if new_len == 0 {
            return Err(SimError::InvalidArgument("new_len 0 is not positive".into()));
        }
        if !new_len.is_multiple_of(PAGE_SIZE) {
            return Err(SimError::InvalidArgument(format!(
                "new_len {new_len} is not a multiple of the page size (4096)"
            )));
        }
        if new_len > TASK_SIZE {
            // "Is the new length silly?" (EINVAL, before anything is looked at)
            return Err(SimError::InvalidArgument(format!(
                "new_len {new_len} is larger than the user address space ({TASK_SIZE:#x} bytes)"
            )));
        }
        if let Some(na) = new_addr {
            if !may_move {
                return Err(SimError::InvalidArgument(format!(
                    "new_addr {na:#x} needs may_move=True (MREMAP_FIXED without MREMAP_MAYMOVE is EINVAL)"
                )));
            }
            let ne = Self::check_range(na, new_len)?;
            if na < old_end && old_addr < ne {
                return Err(SimError::InvalidArgument(format!(
                    "new range [{na:#x}, {ne:#x}) overlaps old range [{old_addr:#x}, {old_end:#x})"
                )));
            }
        }
        Ok(old_end)
    }

    /// Grow the VMA at `old_addr` in place (`vma_expandable` said the room is there): 6.1+
    /// merges the grown part like a new range (`vma_merge_extend`), else `vma_adjust`
    /// moves the end.
    fn mremap_grow_in_place(&mut self, mm: MmId, old_addr: u64, old_len: u64, new_len: u64) -> Result<u64> {
        let Some(v) = self.find_vma(mm, old_addr) else { return Ok(old_addr) };
        let (s, e, pg, pages, prot, flags, av) = {
            let x = self.vma(v);
            (x.start, x.end, x.pgoff, x.pages(), x.prot, x.flags, x.anon_vma)
        };
        let new_end = old_addr + new_len;
        if self.policy.mremap_expand_merges {
            // 6.1+ (ca3d76b0aa80): vma_merge_extend, the grown part as a new range after
            // the VMA itself, so it also merges with a compatible next VMA.
            let ctx = MergeCtx::default();
            if self
                .vma_merge(&VmaMerge {
                    mm,
                    prev: Some(v),
                    start: e,
                    end: new_end,
                    prot,
                    flags,
                    anon_vma: av,
                    pgoff: pg + pages,
                    ctx,
                })
                .is_some()
            {
                self.note_merge(mm, e, new_end, true);
                self.mremap_populate(mm, flags, e, new_end)?;
                return Ok(old_addr);
            }
            if self.merge_failed() {
                // expand_vma_in_place: vma_merge_extend returned NULL -> ENOMEM, nothing changed
                return Err(SimError::OutOfMemory(format!(
                    "mremap of [{old_addr:#x}, {:#x}) in place: vma_merge_extend failed (ENOMEM); nothing changed",
                    old_addr + old_len
                )));
            }
        }
        self.vma_adjust(v, s, new_end, pg, None)?;
        self.mremap_populate(mm, flags, e, new_end)?;
        Ok(old_addr)
    }

    /// mremap of a `VM_LOCKED` VMA: the grown part is populated like mlock's, errors
    /// ignored (`if (locked && new_len > old_len) mm_populate(...)`, every era).
    fn mremap_populate(&mut self, mm: MmId, flags: u32, start: u64, end: u64) -> Result<()> {
        if flags & vmflags::LOCKED != 0 && start < end {
            self.mm_populate(mm, start, end, true)?;
        }
        Ok(())
    }

    fn inside_one_vma(&self, mm: MmId, start: u64, end: u64) -> bool {
        self.find_vma(mm, start).is_some_and(|v| self.vma(v).end >= end)
    }

    /// `remap_move` (6.17+): a pure move (`MREMAP_FIXED`, `old_len == new_len`) of
    /// `[start, end)` spanning several VMAs. Each VMA's part of the range moves in address
    /// order with `mremap_to` (unmap the destination, `move_vma`); the first part goes to
    /// `new_addr` and each later one after the previous destination plus the gap between
    /// the source VMAs, so gaps are kept. A range that does not begin inside a VMA is
    /// EFAULT, with nothing changed. A failure part way (an injected ENOMEM) returns the
    /// error with the parts already moved left moved, as in the kernel.
    fn remap_move(&mut self, pid: i64, mm: MmId, start: u64, end: u64, new_addr: u64) -> Result<u64> {
        if self.find_vma(mm, start).is_none() {
            return Err(SimError::BadAddress(format!(
                "mremap move of [{start:#x}, {end:#x}) in pid {pid}: no VMA at its start (EFAULT)"
            )));
        }
        self.begin_op("mremap");
        let (mut cursor, mut last_end, mut target) = (start, None::<u64>, new_addr);
        // the VMAs are looked up afresh each time: a move can merge or split them
        while let Some(v) = self.find_vma_above(mm, cursor).filter(|&v| self.vma(v).start < end) {
            let (vs, ve) = (self.vma(v).start, self.vma(v).end);
            let addr = vs.max(start);
            let len = end.min(ve) - addr;
            let dest = target + last_end.map_or(0, |le| vs.saturating_sub(le));
            self.do_munmap(mm, dest, len)?;
            let moved = self.move_vma(mm, addr, len, len, dest)?;
            last_end = Some(ve);
            target = moved + len;
            cursor = ve;
        }
        Ok(new_addr)
    }

    /// `vma_expandable`: the old range ends its VMA and the VMA can grow by the difference
    /// without meeting the next one.
    fn vma_expandable(&self, mm: MmId, old_addr: u64, old_len: u64, new_len: u64) -> bool {
        let Some(v) = self.find_vma(mm, old_addr) else { return false };
        let vma = self.vma(v);
        if old_addr + old_len != vma.end || new_len <= old_len {
            return false;
        }
        let Some(end) = vma.end.checked_add(new_len - old_len).filter(|&e| e <= TASK_SIZE) else { return false };
        self.vma_next(v).is_none_or(|n| self.vma(n).start >= end)
    }

    /// `move_vma`: copy the VMA to `new_addr` (`copy_vma`), move the page-table entries
    /// (`move_page_tables`), unmap the old range. As in the kernel, a failure to unmap the
    /// old range (a split hitting ENOMEM) is ignored: the old range stays mapped, empty.
    fn move_vma(&mut self, mm: MmId, old_addr: u64, old_len: u64, new_len: u64, new_addr: u64) -> Result<u64> {
        let Some(vma) = self.find_vma(mm, old_addr) else {
            return Err(SimError::BadAddress(format!("address {old_addr:#x} is not mapped")));
        };
        let new_pgoff = self.vma(vma).pgoff + ((old_addr - self.vma(vma).start) >> PAGE_SHIFT);
        let flags = self.vma(vma).flags;
        let new_vma = self.copy_vma(mm, vma, new_addr, new_len, new_pgoff)?;
        self.move_page_tables(mm, old_addr, new_vma, new_addr, old_len);
        let _ = self.do_munmap(mm, old_addr, old_len);
        self.mremap_populate(mm, flags, new_addr + old_len, new_addr + new_len)?;
        Ok(new_addr)
    }

    /// `copy_vma` (2.6.34): the destination VMA for a move. An unfaulted anonymous VMA
    /// (`vma_is_anonymous`, so not a private file mapping)
    /// takes the pgoff of its new address (to merge more easily); a faulted one keeps its
    /// pgoff so page indices stay valid. Try `vma_merge` at the destination first;
    /// otherwise allocate a VMA and clone the chain (can fail: nothing changes).
    fn copy_vma(&mut self, mm: MmId, vma: VmaId, addr: u64, len: u64, pgoff: u64) -> Result<VmaId> {
        let (prot, flags, av) = {
            let v = self.vma(vma);
            (v.prot, v.flags, v.anon_vma)
        };
        let anonymous = flags >> crate::state::objects::vmflags::FILE_SHIFT == 0;
        let pgoff = if av.is_none() && anonymous { addr >> PAGE_SHIFT } else { pgoff };
        let prev = self.mm(mm).vmas.range(..addr).next_back().map(|(_, &v)| v);
        let ctx = MergeCtx { middle: None, copied_from: Some(vma) };
        if let Some(merged) =
            self.vma_merge(&VmaMerge { mm, prev, start: addr, end: addr + len, prot, flags, anon_vma: av, pgoff, ctx })
        {
            // 2025 rule: an unfaulted target inherits the source's anon_vma (dup_anon_vma).
            if self.policy.merge_rule == MergeAnonRule::Case2025 && self.vma(merged).anon_vma.is_none() && av.is_some()
            {
                self.import_anon_vma(merged, vma, merged)?;
            }
            return Ok(merged);
        }
        let new = self.vma_alloc(AllocSite::VmaCopy, mm, addr, addr + len, pgoff, prot, flags)?;
        self.vma_mut(new).anon_vma = av;
        if self.policy.linking == Linking::Chain {
            if let Err(e) = self.anon_vma_clone(new, vma) {
                self.remove_vma(new);
                return Err(e);
            }
        }
        self.vma_link_new(new);
        Ok(new)
    }

    /// `move_page_tables`: every entry of `[old_addr, old_addr+len)` moves, unchanged, to
    /// the same offset from `new_addr` in `new_vma`.
    fn move_page_tables(&mut self, mm: MmId, old_addr: u64, new_vma: VmaId, new_addr: u64, len: u64) {
        // Only populated entries move, so the cost follows the pages, not the length. The
        // two ranges never overlap, so taking every source entry first is the same as
        // moving them one by one (new_vma may be the source VMA itself, grown by a merge).
        let end = old_addr + len;
        let mut moved = Vec::new();
        for src in self.vmas_in(mm, old_addr, end) {
            moved.extend(self.vma_mut(src).ptes.take_range(old_addr, end));
        }
        self.ptes_removed(moved.len() as u64);
        for (addr, pte) in moved {
            self.set_pte(new_vma, addr - old_addr + new_addr, pte);
        }
    }
}
