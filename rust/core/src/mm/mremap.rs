//! `mm/mremap.c`, every era from 2.6.33 to 6.18: shrink, expand in place, or move
//! (`move_vma` → `copy_vma`, `move_page_tables`, `do_munmap` of the source). The code has
//! 2.6.34's structure; 6.1's merge after growing in place (`mremap_expand_merges`) and
//! 6.17's move of a range spanning several VMAs (`mremap_move_multi`) are knobs.

use crate::error::{Result, SimError};
use crate::mm::vma::{MergeCtx, VmaMerge};
use crate::policy::{DontUnmap, Holes, Linking};
use crate::state::objects::*;
use crate::state::sim::{AllocSite, Simulator, TASK_SIZE};

impl Simulator {
    /// `mremap(old_addr, old_len, new_len, MREMAP_MAYMOVE?, [MREMAP_FIXED, new_addr])`.
    /// Returns the address of the (possibly moved) mapping.
    ///
    /// Refused up front, as the kernel refuses them (EINVAL / EFAULT): `new_addr` without
    /// `may_move`, overlapping old and new ranges, an old range that is not inside one VMA
    /// when growing or moving (a move that also shrinks: only the kept part, the tail is
    /// unmapped first). The 6.17+ pure move (knob `mremap_move_multi`: `new_addr` with
    /// `old_len == new_len`) may span several VMAs and holes (`remap_move` below). A shrink
    /// over holes is refused in strict mode (knob `holes`); the kernel, and
    /// `holes="kernel"`, unmap the tail whatever is there. `dontunmap` is
    /// `MREMAP_DONTUNMAP` (see [`Simulator::mremap_dontunmap`]).
    #[allow(clippy::too_many_arguments)]
    pub fn mremap(
        &mut self,
        pid: i64,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        new_addr: Option<u64>,
        dontunmap: bool,
    ) -> Result<u64> {
        let mm = self.proc_mm(pid)?;
        if dontunmap && self.policy.mremap_dontunmap == DontUnmap::None {
            // an unknown flag bit: check_mremap_params' first test
            return Err(SimError::InvalidArgument(format!(
                "dontunmap=True is EINVAL in era {}: MREMAP_DONTUNMAP arrived in Linux 5.7",
                self.policy.name
            )));
        }
        let old_end = Self::mremap_check_args(old_addr, old_len, new_len, may_move, new_addr)?;
        if dontunmap {
            return self.mremap_dontunmap(pid, mm, old_addr, old_len, new_len, may_move, new_addr);
        }
        if let Some(na) = new_addr {
            if self.policy.mremap_move_multi && old_len == new_len && !self.inside_one_vma(mm, old_addr, old_end) {
                return self.remap_move(pid, mm, old_addr, old_end, na, false);
            }
        }
        let shrink_in_place = new_addr.is_none() && new_len <= old_len;
        if shrink_in_place {
            self.mremap_check_shrink(pid, mm, old_addr, old_end)?;
        } else {
            self.mremap_check_move_range(pid, mm, old_addr, old_len, new_len, new_addr.is_some())?;
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

    /// A shrink (or same-size call) in place: in strict mode the old range must be mapped
    /// throughout. The kernel only unmaps the tail (`do_munmap`, holes and all): 6.18
    /// `do_mremap` looks up the VMA at `old_addr` first (mm/mremap.c 1931, EFAULT in
    /// `check_prep_vma` at 1658-1659 when none; it returns at 1676-1677 for a shrink), then
    /// `mremap_at` → `shrink_vma` (1560-1570, 1326-1358), from 5.16 (knob
    /// `mremap_needs_vma`); before, `sys_mremap` shrank before looking anything up, so
    /// even an unmapped `old_addr` succeeded.
    fn mremap_check_shrink(&self, pid: i64, mm: MmId, old_addr: u64, old_end: u64) -> Result<()> {
        match self.policy.holes {
            Holes::Strict => self.check_mapped(pid, mm, old_addr, old_end),
            Holes::Kernel if self.policy.mremap_needs_vma => self.check_mapped(pid, mm, old_addr, old_addr + PAGE_SIZE),
            Holes::Kernel => Ok(()),
        }
    }

    /// The old range of a move or a growth must lie in one VMA ("can't remap across vm area
    /// boundaries", EFAULT). A move to a fixed address that also shrinks unmaps the tail
    /// `[old_addr + new_len, old_addr + old_len)` first — across any VMA boundaries — so
    /// only the shortened range `[old_addr, old_addr + new_len)` must lie in one VMA: every
    /// era (2.6.33's `do_mremap` shrinks before `find_vma`; 2.6.34-6.16 `mremap_to` calls
    /// `do_munmap` on the tail before `vma_to_resize(addr, new_len, ...)`; 6.18
    /// `check_prep_vma` checks `new_len` for `MREMAP_SHRINK`, then `mremap_to` →
    /// `shrink_vma`). In strict mode the tail must be mapped (a hole is refused up front);
    /// the kernel unmaps whatever is there (`holes="kernel"`).
    fn mremap_check_move_range(
        &self,
        pid: i64,
        mm: MmId,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        fixed: bool,
    ) -> Result<()> {
        let shrinks = fixed && new_len < old_len;
        let kept_end = old_addr + if shrinks { new_len } else { old_len };
        if !self.inside_one_vma(mm, old_addr, kept_end) {
            return Err(SimError::BadAddress(format!(
                "[{old_addr:#x}, {kept_end:#x}) is not inside one VMA of pid {pid} (EFAULT)"
            )));
        }
        if shrinks && self.policy.holes == Holes::Strict {
            self.check_mapped(pid, mm, kept_end, old_addr + old_len)?;
        }
        Ok(())
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

    /// `mremap(..., MREMAP_MAYMOVE | MREMAP_DONTUNMAP [| MREMAP_FIXED])` (5.7+, knob
    /// `mremap_dontunmap`): move `[old_addr, old_addr+len)` like any move (`copy_vma`, which
    /// clones the source's chain and shares its anon_vma, then `move_page_tables`: the
    /// pages keep `page->mapping`), but leave the source VMA in place, emptied of its
    /// entries, with its flags (`VM_ACCOUNT` too: 5.7 gives it back, 6.15 restored that).
    /// When the source VMA was exactly the moved range and is not the destination,
    /// `dontunmap_complete` (`move_vma` before 6.16) unlinks its chain (`unlink_anon_vmas`,
    /// "mm: mremap: unlink anon_vmas when mremap with MREMAP_DONTUNMAP success", 5.8;
    /// which clears `vma->anon_vma` from 2555283eb40d, 6.0): a later fault there prepares
    /// a fresh anon_vma. A partly moved VMA keeps its chain, so the moved pages' walks
    /// still visit it (and find nothing there).
    ///
    /// Refused before anything changes: without `may_move` or with `old_len != new_len`
    /// (EINVAL, `check_mremap_params`); an old range not inside one VMA (EFAULT), except
    /// that from 6.17 (knob `mremap_move_multi`) a move to `new_addr` may span several
    /// VMAs and holes (`remap_move`, each part with this flag, as the live 6.18 does);
    /// 5.7-5.12 (`anon_only`) a VMA that is not private anonymous (EINVAL,
    /// `vma_to_resize`).
    #[allow(clippy::too_many_arguments)]
    fn mremap_dontunmap(
        &mut self,
        pid: i64,
        mm: MmId,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        new_addr: Option<u64>,
    ) -> Result<u64> {
        if !may_move || old_len != new_len {
            return Err(SimError::InvalidArgument(format!(
                "dontunmap=True needs may_move=True and new_len == old_len (got may_move={may_move}, old_len {old_len:#x}, new_len {new_len:#x}): EINVAL"
            )));
        }
        let old_end = old_addr + old_len;
        if let Some(na) = new_addr {
            if self.policy.mremap_move_multi && !self.inside_one_vma(mm, old_addr, old_end) {
                // 6.17+: the multi-VMA move takes the flag too (checked on the live 6.18)
                return self.remap_move(pid, mm, old_addr, old_end, na, true);
            }
        }
        // holes: kernel mode (the range must lie in one VMA in both modes)
        let Some(v) = self.find_vma(mm, old_addr).filter(|&v| self.vma(v).end >= old_end) else {
            return Err(SimError::BadAddress(format!(
                "[{old_addr:#x}, {old_end:#x}) is not inside one VMA of pid {pid} (EFAULT)"
            )));
        };
        if self.policy.mremap_dontunmap == DontUnmap::AnonOnly {
            if let Some(f) = self.vma(v).file() {
                return Err(SimError::InvalidArgument(format!(
                    "dontunmap=True needs a private anonymous VMA in era {} (5.7-5.12); [{:#x}, {:#x}) maps file {f}: EINVAL",
                    self.policy.name,
                    self.vma(v).start,
                    self.vma(v).end
                )));
            }
        }
        let dest = match new_addr {
            Some(na) => na,
            None => self.get_unmapped_area(mm, new_len)?,
        };
        self.begin_op("mremap");
        if new_addr.is_some() {
            self.do_munmap(mm, dest, new_len)?;
        }
        self.move_vma_dontunmap(mm, old_addr, old_len, dest)
    }

    /// `move_vma` with `MREMAP_DONTUNMAP`: `copy_vma`, `move_page_tables`, then
    /// `dontunmap_complete` instead of unmapping the source (see
    /// [`Simulator::mremap_dontunmap`]).
    fn move_vma_dontunmap(&mut self, mm: MmId, old_addr: u64, old_len: u64, dest: u64) -> Result<u64> {
        let old_end = old_addr + old_len;
        let Some(vma) = self.find_vma(mm, old_addr) else {
            return Err(SimError::BadAddress(format!("address {old_addr:#x} is not mapped")));
        };
        let new_pgoff = self.vma(vma).pgoff + ((old_addr - self.vma(vma).start) >> PAGE_SHIFT);
        let new_vma = self.copy_vma(mm, vma, dest, old_len, new_pgoff)?;
        self.move_page_tables(mm, old_addr, new_vma, dest, old_len);
        // dontunmap_complete: the whole old VMA loses VM_LOCKED / VM_LOCKONFAULT in place,
        // neither split nor merged (6.18 mm/mremap.c 1253-1254)
        if let Some(old) = self.find_vma(mm, old_addr) {
            self.vma_mut(old).flags &= !vmflags::LOCKED_MASK;
            let whole = self.vma(old).start == old_addr && self.vma(old).end == old_end;
            if old != new_vma && whole {
                self.unlink_anon_vmas(old);
            }
        }
        Ok(dest)
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
                self.populate_if_locked(mm, e, new_end, flags)?;
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
        self.populate_if_locked(mm, e, new_end, flags)?;
        Ok(old_addr)
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
    /// With `dontunmap` each part moves as `MREMAP_DONTUNMAP` does, its source VMA left.
    fn remap_move(&mut self, pid: i64, mm: MmId, start: u64, end: u64, new_addr: u64, dontunmap: bool) -> Result<u64> {
        if self.find_vma(mm, start).is_none() {
            return Err(SimError::BadAddress(format!(
                "mremap move of [{start:#x}, {end:#x}) in pid {pid}: no VMA at its start (EFAULT)"
            )));
        }
        self.begin_op("mremap");
        let (mut cursor, mut last_end, mut target) = (start, None::<u64>, new_addr);
        // the VMAs are looked up afresh each time: a move can merge or split them. The
        // kernel's iterator (for_each_vma_range) never goes back below the end the last VMA
        // had when it was found, and stops once that end is past the range: a destination
        // merged into a source VMA (unfaulted, pgoff following on) is not visited again.
        while let Some(v) = self.find_vma_above(mm, cursor).filter(|&v| cursor < end && self.vma(v).start < end) {
            let (vs, ve) = (self.vma(v).start, self.vma(v).end);
            let addr = vs.max(start);
            let len = end.min(ve) - addr;
            let dest = target + last_end.map_or(0, |le| vs.saturating_sub(le));
            self.do_munmap(mm, dest, len)?;
            let moved = if dontunmap {
                self.move_vma_dontunmap(mm, addr, len, dest)?
            } else {
                self.move_vma(mm, addr, len, len, dest)?
            };
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
        self.populate_if_locked(mm, new_addr + old_len, new_addr + new_len, flags)?;
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
        // (2025 rule: an unfaulted target inherits the source's anon_vma before the merge
        // commits, `Simulator::dup_copied_anon_vma`; a failure there is "no merge".)
        if let Some(merged) =
            self.vma_merge(&VmaMerge { mm, prev, start: addr, end: addr + len, prot, flags, anon_vma: av, pgoff, ctx })
        {
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
