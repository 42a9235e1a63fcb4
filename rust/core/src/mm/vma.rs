//! VMA creation, merging, splitting and unmapping: `mm/mmap.c` (from 6.1 partly, and
//! from 6.7 `mm/vma.c`), for every era from 2.6.33 to 6.18. The code follows the
//! 2.6.33/2.6.34 structure (`vma_merge`'s eight cases, `vma_adjust`, `__split_vma`,
//! `do_munmap`); later eras' rules enter through the policy knobs read here: the
//! anon_vma merge rule (`merge_rule`: 3.0's singular chain, 2025's case rule), the
//! importer chosen up front (`adjust_imports_upfront`), brk's heap-only growth of 6.1
//! (`brk_heap_only`), `MAP_STACK`'s `VM_NOHUGEPAGE` of 6.7 (`map_stack_nohugepage`).
//!
//! Page-table entries are stored per VMA (`Vma::ptes`, sparse and keyed by address), so
//! whenever VMA boundaries move the entries are handed to whichever VMA now covers their
//! address; the union of the ranges involved never changes in `vma_adjust`, so no entry
//! is lost.

use crate::error::{Result, SimError};
use crate::policy::{Linking, MergeAnonRule};
use crate::state::objects::*;

/// What a range being merged belongs to, for the 2025 merge rule.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MergeCtx {
    /// The VMA an existing range is part of (mprotect, madvise).
    pub middle: Option<VmaId>,
    /// The VMA an mremap copies from.
    pub copied_from: Option<VmaId>,
}
use crate::state::sim::{AllocSite, Simulator, MMAP_BASE, MMAP_MIN_ADDR, TASK_SIZE};

/// One `vma_merge` request: the range `[start, end)` of `mm` after `prev`, with the
/// attributes it would have (protection, flags, anon_vma, `vm_pgoff` of `start`) and the
/// caller's context. Our own counterpart of the kernel's `struct vma_merge_struct`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VmaMerge {
    pub mm: MmId,
    pub prev: Option<VmaId>,
    pub start: u64,
    pub end: u64,
    pub prot: u8,
    pub flags: u32,
    pub anon_vma: Option<AnonVmaId>,
    pub pgoff: u64,
    pub ctx: MergeCtx,
}

/// The `MAP_*` flags of an mmap besides `MAP_PRIVATE`/`MAP_ANONYMOUS`/`MAP_FIXED`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapOpts {
    /// `MAP_NORESERVE`: the VMA gets `VM_NORESERVE` and is never charged (no `VM_ACCOUNT`).
    pub noreserve: bool,
    /// `MAP_STACK`: `VM_NOHUGEPAGE` from 6.7 (knob `map_stack_nohugepage`), else nothing.
    pub stack: bool,
    /// `MAP_FIXED_NOREPLACE` (4.17+, knob `has_map_fixed_noreplace`): the address is fixed
    /// but an overlap with any VMA is EEXIST (`AlreadyMapped`), nothing unmapped. Before
    /// 4.17 the bit was unknown and `do_mmap` ignored it, so the address was a hint.
    pub noreplace: bool,
    /// `MAP_LOCKED`: `VM_LOCKED` (`calc_vm_flag_bits`), and the range is populated like
    /// mlock's, errors ignored (`mm_populate`).
    pub locked: bool,
}

impl Simulator {
    // ----------------------------------------------------------------------------------
    // Page-table entry plumbing
    // ----------------------------------------------------------------------------------

    /// Move `v`'s page-table entries into `pool`; leaves `v` with none.
    pub(crate) fn take_ptes(&mut self, v: VmaId, pool: &mut crate::state::pgtable::PteTable) {
        pool.absorb(std::mem::take(&mut self.vma_mut(v).ptes));
    }

    /// Hand each VMA among `targets` the entries of `pool` it now covers (table pages
    /// move whole where they can).
    pub(crate) fn place_ptes(&mut self, mut pool: crate::state::pgtable::PteTable, targets: &[VmaId]) {
        for &t in targets {
            let (s, e) = (self.vma(t).start, self.vma(t).end);
            let mine = pool.extract(s, e);
            let ptes = &mut self.vma_mut(t).ptes;
            ptes.absorb(mine);
            ptes.fit(s, e);
        }
        debug_assert!(pool.is_empty(), "page-table entries lost their VMA");
    }

    // ----------------------------------------------------------------------------------
    // VMA objects
    // ----------------------------------------------------------------------------------

    /// Allocate a VMA object (not yet in any mm).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn vma_alloc(
        &mut self,
        site: AllocSite,
        mm: MmId,
        start: u64,
        end: u64,
        pgoff: u64,
        prot: u8,
        flags: u32,
    ) -> Result<VmaId> {
        self.may_alloc(site)?;
        Ok(self.vmas.insert(Vma {
            mm,
            start,
            end,
            pgoff,
            prot,
            flags,
            anon_vma: None,
            chain: Vec::new(),
            av_pos: 0,
            ptes: Default::default(),
        }))
    }

    /// `__vma_link`: insert into the mm's VMA tree (and in the legacy era onto the
    /// anon_vma list, `__anon_vma_link`).
    fn vma_link(&mut self, v: VmaId, legacy_link_anon: bool) {
        let (mm, start) = {
            let vma = self.vma(v);
            (vma.mm, vma.start)
        };
        self.mm_mut(mm).vmas.insert(start, v);
        if legacy_link_anon && self.policy.linking == Linking::Legacy {
            self.anon_vma_link(v);
        }
    }

    /// `vma_link` of a new VMA into its mm (and, legacy era, onto its anon_vma's list).
    pub(crate) fn vma_link_new(&mut self, v: VmaId) {
        self.vma_link(v, true);
    }

    /// Free a VMA that is out of its mm and unlinked from every anon_vma.
    pub(crate) fn remove_vma(&mut self, v: VmaId) {
        // A non-empty chain here is a leak of a buggy era (the checker reports it).
        self.vmas.remove(v, self.op);
    }

    pub(crate) fn set_vma_range(&mut self, v: VmaId, start: u64, end: u64, pgoff: u64) {
        let (mm, old_start) = {
            let vma = self.vma(v);
            (vma.mm, vma.start)
        };
        if old_start != start {
            let m = self.mm_mut(mm);
            m.vmas.remove(&old_start);
            m.vmas.insert(start, v);
        }
        let vma = self.vma_mut(v);
        let changed = (vma.start, vma.end, vma.pgoff) != (start, end, pgoff);
        vma.start = start;
        vma.end = end;
        vma.pgoff = pgoff;
        if changed {
            self.rekey_vma(v);
        }
    }

    // ----------------------------------------------------------------------------------
    // vma_adjust / vma_merge / split
    // ----------------------------------------------------------------------------------

    /// `vma_adjust(vma, start, end, pgoff, insert)` (mm/mmap.c, 2.6.34 with the rc4
    /// importer/exporter fix; 2.6.33 links instead of cloning): change `vma`'s range,
    /// and either insert the split-off `insert`, or shift the boundary with / remove the
    /// next VMA. The only allocation (the importer's `anon_vma_clone`) happens before
    /// anything changes, so a failure leaves the state untouched.
    pub(crate) fn vma_adjust(
        &mut self,
        vma: VmaId,
        start: u64,
        end: u64,
        pgoff: u64,
        insert: Option<VmaId>,
    ) -> Result<()> {
        let target_end = end;
        let mut end = end;
        let mut next = self.vma_next(vma);
        loop {
            let mut remove_next = 0u8;
            let mut adjust_next: i64 = 0;
            if let (Some(n), None) = (next, insert) {
                let (n_start, n_end) = (self.vma(n).start, self.vma(n).end);
                let mut pair = None;
                if end >= n_end {
                    // vma expands over all of next (and perhaps the one after: case 6).
                    remove_next = 1 + u8::from(end > n_end);
                    end = n_end;
                    pair = Some((vma, n));
                    // Later kernels pick the exporter before changing anything: when
                    // next has no anon_vma, the one after it may (case 6), so a failed
                    // clone cannot strike after the first VMA was already removed.
                    if remove_next == 2 && self.vma(n).anon_vma.is_none() && self.policy.adjust_imports_upfront {
                        if let Some(nn) = self.vma_next(n) {
                            pair = Some((vma, nn));
                        }
                    }
                } else if end > n_start {
                    // vma expands over part of next: case 5 moves the boundary up.
                    adjust_next = ((end - n_start) >> PAGE_SHIFT) as i64;
                    pair = Some((vma, n));
                } else if end < self.vma(vma).end {
                    // vma shrinks and next grows: case 4 moves the boundary down.
                    adjust_next = -(((self.vma(vma).end - end) >> PAGE_SHIFT) as i64);
                    pair = Some((n, vma));
                }
                if let Some((importer, exporter)) = pair {
                    self.import_anon_vma(importer, exporter, vma)?;
                }
            }
            // Nothing below can fail.
            let mut entries = crate::state::pgtable::PteTable::default();
            self.take_ptes(vma, &mut entries);
            if let Some(n) = next.filter(|_| remove_next > 0 || adjust_next != 0) {
                self.take_ptes(n, &mut entries);
            }
            if let Some(ins) = insert {
                self.take_ptes(ins, &mut entries);
            }
            self.set_vma_range(vma, start, end, pgoff);
            let mut targets = vec![vma];
            if let Some(n) = next {
                if adjust_next != 0 {
                    let (ns, ne, np) = {
                        let nv = self.vma(n);
                        (nv.start, nv.end, nv.pgoff)
                    };
                    let d = adjust_next * PAGE_SIZE as i64;
                    self.set_vma_range(n, (ns as i64 + d) as u64, ne, (np as i64 + adjust_next) as u64);
                    targets.push(n);
                }
            }
            if let Some(n) = next.filter(|_| remove_next > 0) {
                let nstart = self.vma(n).start;
                self.mm_mut(self.vma(vma).mm).vmas.remove(&nstart);
                self.place_ptes(entries, &targets);
                if self.vma(n).anon_vma.is_some() {
                    self.anon_vma_merge(vma, n);
                }
                self.remove_vma(n);
                if remove_next == 2 {
                    next = self.vma_next(vma);
                    end = target_end;
                    continue;
                }
            } else {
                if let Some(ins) = insert {
                    self.vma_link(ins, true);
                    targets.push(ins);
                }
                self.place_ptes(entries, &targets);
            }
            return Ok(());
        }
    }

    /// The pair rule of `vma_merge` for prev and next around a range (every era): not two
    /// different anon_vmas.
    pub(crate) fn is_mergeable_anon_vma(a: Option<AnonVmaId>, b: Option<AnonVmaId>) -> bool {
        a.is_none() || b.is_none() || a == b
    }

    /// Did `v` inherit uncowed pages from ancestors (`vma_had_uncowed_parents`: a faulted
    /// VMA whose chain is not singular)?
    fn had_uncowed_parents(&self, v: Option<VmaId>) -> bool {
        v.is_some_and(|v| {
            let x = self.vma(v);
            x.anon_vma.is_some() && x.chain.len() != 1
        })
    }

    /// `is_mergeable_anon_vma` of the era: may a range whose anon_vma is `src_av` merge
    /// into neighbour `tgt`? `ctx` names the VMA the range belongs to (existing-range
    /// merges) or is copied from (mremap).
    fn anon_mergeable(&self, tgt: VmaId, src_av: Option<AnonVmaId>, ctx: MergeCtx) -> bool {
        let t = self.vma(tgt);
        match self.policy.merge_rule {
            MergeAnonRule::Simple => Self::is_mergeable_anon_vma(src_av, t.anon_vma),
            MergeAnonRule::SingularChain => {
                ((src_av.is_none() || t.anon_vma.is_none()) && t.chain.len() == 1) || src_av == t.anon_vma
            }
            MergeAnonRule::Case2025 => match (t.anon_vma, src_av) {
                (None, Some(_)) => !self.had_uncowed_parents(ctx.middle) && !self.had_uncowed_parents(ctx.copied_from),
                (Some(_), None) => !self.had_uncowed_parents(Some(tgt)),
                (a, b) => a == b,
            },
        }
    }

    /// `is_mergeable_vma`: same flags (protection included) and same `vm_file` (part of
    /// the flags word).
    fn is_mergeable_vma(&self, v: VmaId, prot: u8, flags: u32) -> bool {
        let vma = self.vma(v);
        vma.prot == prot && vma.flags == flags
    }

    /// `can_vma_merge_after(prev, …, pgoff)`: the range may be appended to `prev`.
    fn can_vma_merge_after(
        &self,
        prev: VmaId,
        prot: u8,
        flags: u32,
        av: Option<AnonVmaId>,
        pgoff: u64,
        ctx: MergeCtx,
    ) -> bool {
        let p = self.vma(prev);
        self.is_mergeable_vma(prev, prot, flags) && self.anon_mergeable(prev, av, ctx) && p.pgoff + p.pages() == pgoff
    }

    /// `can_vma_merge_before(next, …, pgoff)`: the range may be prepended to `next`.
    fn can_vma_merge_before(
        &self,
        next: VmaId,
        prot: u8,
        flags: u32,
        av: Option<AnonVmaId>,
        pgoff: u64,
        ctx: MergeCtx,
    ) -> bool {
        self.is_mergeable_vma(next, prot, flags) && self.anon_mergeable(next, av, ctx) && self.vma(next).pgoff == pgoff
    }

    /// Would `vma_merge`, asked about range `r` (a whole VMA: an existing range, or a new
    /// one when `new_range`), merge it with neighbour `o` (after it when `o_is_prev`)?
    pub(crate) fn range_mergeable_with(&self, r: VmaId, o: VmaId, o_is_prev: bool, new_range: bool) -> bool {
        let x = self.vma(r);
        let ctx = MergeCtx { middle: (!new_range).then_some(r), copied_from: None };
        if o_is_prev {
            self.vma(o).end == x.start && self.can_vma_merge_after(o, x.prot, x.flags, x.anon_vma, x.pgoff, ctx)
        } else {
            x.end == self.vma(o).start
                && self.can_vma_merge_before(o, x.prot, x.flags, x.anon_vma, x.pgoff + x.pages(), ctx)
        }
    }

    /// `vma_merge(mm, prev, addr, end, vm_flags, anon_vma, pgoff)` (2.6.33 structure, every era): merge
    /// the range `[addr, end)` — new (mmap) or an existing part of a VMA (mprotect,
    /// madvise) — with `prev` and/or the following VMA when attributes, pgoff and
    /// anon_vmas allow. Returns the VMA now covering the range, or `None` when no merge
    /// applies. The eight cases are the kernel's.
    ///
    /// As in the kernel (`if (err) return NULL;`), a failure of the `vma_adjust` inside
    /// (the importer's ENOMEM) is reported as "no merge"; the caller carries on.
    pub(crate) fn vma_merge(&mut self, m: &VmaMerge) -> Option<VmaId> {
        self.vma_merge_nomem(m).unwrap_or(None)
    }

    /// [`Simulator::vma_merge`] that also says when the merge failed on an allocation
    /// (`Err`, the state as before the merge): 6.12+'s `vmg_nomem` (knob
    /// `merge_nomem_fails`) for the callers that report it.
    pub(crate) fn vma_merge_nomem(&mut self, m: &VmaMerge) -> Result<Option<VmaId>> {
        self.vma_merge_inner(m).inspect_err(|_| self.note_merge_failed())
    }

    fn vma_merge_inner(&mut self, m: &VmaMerge) -> Result<Option<VmaId>> {
        let &VmaMerge { mm, prev, start: addr, end, prot, flags, anon_vma: av, pgoff, ctx } = m;
        let pglen = (end - addr) >> PAGE_SHIFT;
        let mut next = match prev {
            Some(p) => self.vma_next(p),
            None => self.mm(mm).vmas.values().next().copied(),
        };
        let area = next;
        if let Some(n) = next {
            if self.vma(n).end == end {
                // cases 6, 7, 8: the range is exactly an existing VMA.
                next = self.vma_next(n);
            }
        }
        if let Some(p) = prev {
            if self.vma(p).end == addr && self.can_vma_merge_after(p, prot, flags, av, pgoff, ctx) {
                let pv = self.vma(p);
                let (ps, ppg) = (pv.start, pv.pgoff);
                let with_next = next.filter(|&n| {
                    end == self.vma(n).start
                        && self.can_vma_merge_before(n, prot, flags, av, pgoff + pglen, ctx)
                        && Self::is_mergeable_anon_vma(self.vma(p).anon_vma, self.vma(n).anon_vma)
                });
                self.dup_copied_anon_vma(p, with_next, ctx)?;
                match with_next {
                    // cases 1, 6
                    Some(n) => {
                        let ne = self.vma(n).end;
                        self.vma_adjust(p, ps, ne, ppg, None)?
                    }
                    // cases 2, 5, 7
                    None => self.vma_adjust(p, ps, end, ppg, None)?,
                }
                return Ok(Some(p));
            }
        }
        if let Some(n) = next {
            if end == self.vma(n).start && self.can_vma_merge_before(n, prot, flags, av, pgoff + pglen, ctx) {
                match prev {
                    Some(p) if addr < self.vma(p).end => {
                        // case 4
                        let (ps, ppg) = (self.vma(p).start, self.vma(p).pgoff);
                        self.vma_adjust(p, ps, addr, ppg, None)?;
                    }
                    _ if area != Some(n) && self.policy.merge_next_survives => {
                        // case 8 from 4.9: next grows down over area, which is freed
                        let Some(a) = area else { return Ok(None) };
                        self.merge_next_over(a, n, addr, self.vma(n).pgoff - pglen)?;
                        return Ok(Some(n));
                    }
                    _ => {
                        // cases 3, 8 (before 4.9: area grows over next)
                        let Some(a) = area else { return Ok(None) };
                        let (ne, npg) = (self.vma(n).end, self.vma(n).pgoff);
                        self.dup_copied_anon_vma(a, None, ctx)?;
                        self.vma_adjust(a, addr, ne, npg - pglen, None)?;
                    }
                }
                return Ok(area);
            }
        }
        Ok(None)
    }

    /// `__split_vma(mm, vma, addr, new_below)` (2.6.34): split at `addr`; the new VMA
    /// takes the part below `addr` when `new_below`, else the part above. In 2.6.34 the
    /// new VMA clones the chain (can fail: the new VMA is freed and nothing changes).
    pub(crate) fn split_vma(&mut self, v: VmaId, addr: u64, new_below: bool) -> Result<VmaId> {
        let (mm, start, end, pgoff, prot, flags, av) = {
            let x = self.vma(v);
            (x.mm, x.start, x.end, x.pgoff, x.prot, x.flags, x.anon_vma)
        };
        debug_assert!(start < addr && addr < end);
        let new = if new_below {
            self.vma_alloc(AllocSite::VmaSplit, mm, start, addr, pgoff, prot, flags)?
        } else {
            self.vma_alloc(AllocSite::VmaSplit, mm, addr, end, pgoff + ((addr - start) >> PAGE_SHIFT), prot, flags)?
        };
        self.vma_mut(new).anon_vma = av;
        if self.policy.linking == Linking::Chain {
            if let Err(e) = self.anon_vma_clone(new, v) {
                self.remove_vma(new);
                return Err(e);
            }
        }
        let r = if new_below {
            self.vma_adjust(v, addr, end, pgoff + ((addr - start) >> PAGE_SHIFT), Some(new))
        } else {
            self.vma_adjust(v, start, addr, pgoff, Some(new))
        };
        if let Err(e) = r {
            self.unlink_anon_vmas(new);
            self.remove_vma(new);
            return Err(e);
        }
        Ok(new)
    }

    // ----------------------------------------------------------------------------------
    // mmap / munmap
    // ----------------------------------------------------------------------------------

    /// `arch_get_unmapped_area_topdown`, simplified: the highest free gap below
    /// `MMAP_BASE` that fits.
    pub(crate) fn get_unmapped_area(&self, mm: MmId, len: u64) -> Result<u64> {
        let mut ceiling = MMAP_BASE;
        for (_, &v) in self.mm(mm).vmas.range(..MMAP_BASE).rev() {
            let vma = self.vma(v);
            if vma.end <= ceiling && ceiling - vma.end >= len {
                return Ok(ceiling - len);
            }
            ceiling = ceiling.min(vma.start);
        }
        if ceiling >= MMAP_MIN_ADDR && ceiling - MMAP_MIN_ADDR >= len {
            return Ok(ceiling - len);
        }
        Err(SimError::OutOfMemory(format!("no free range of {len:#x} bytes below mmap_base {MMAP_BASE:#x}")))
    }

    /// `mmap(addr, length, prot, MAP_PRIVATE|MAP_ANONYMOUS[|MAP_FIXED])`: `do_mmap_pgoff`
    /// + `mmap_region`. With `addr`, MAP_FIXED: whatever is mapped there is unmapped first.
    pub fn mmap(&mut self, pid: i64, len: u64, addr: Option<u64>, prot: u8) -> Result<u64> {
        self.mmap_with(pid, len, addr, prot, None, MapOpts::default())
    }

    /// `mmap(addr, length, prot, MAP_PRIVATE[|MAP_ANONYMOUS][|MAP_FIXED], fd, offset)`
    /// (`do_mmap` + `mmap_region`, every era). `file` is `(identity ≥ 1, byte offset)` for a
    /// private file mapping, as the ELF loader makes for text and data: `vm_pgoff` is the
    /// file page offset and the mapping merges only with the same file at the contiguous
    /// offset. A read fault maps the page-cache page (not anonymous); the first write to a
    /// page COWs it into an anonymous page of the VMA's anon_vma, as for anonymous memory.
    pub fn mmap_file(
        &mut self,
        pid: i64,
        len: u64,
        addr: Option<u64>,
        prot: u8,
        file: Option<(u32, u64)>,
    ) -> Result<u64> {
        self.mmap_with(pid, len, addr, prot, file, MapOpts::default())
    }

    /// The general mmap: [`Simulator::mmap_file`] plus the `MAP_*` flags of [`MapOpts`]:
    /// `noreserve` (`MAP_NORESERVE`) and `stack` (`MAP_STACK`: `VM_NOHUGEPAGE` where the era
    /// maps it so, 6.7+, knob `map_stack_nohugepage`; a no-op before).
    /// `do_mmap` (`do_mmap_pgoff` before 3.9; `mmap_region` itself in 2.6.3x) turns
    /// `MAP_NORESERVE` into `VM_NORESERVE` when overcommit is not `OVERCOMMIT_NEVER` (the
    /// default heuristic mode is assumed, so always here); `accountable_mapping` then
    /// charges, and sets `VM_ACCOUNT` on, only a writable mapping without `VM_NORESERVE`.
    pub fn mmap_with(
        &mut self,
        pid: i64,
        len: u64,
        addr: Option<u64>,
        prot: u8,
        file: Option<(u32, u64)>,
        opts: MapOpts,
    ) -> Result<u64> {
        let MapOpts { noreserve, stack, noreplace, locked } = opts;
        let mm = self.proc_mm(pid)?;
        if prot & !prot::ALL != 0 {
            return Err(SimError::InvalidArgument(format!("bad prot bits {prot:#x}")));
        }
        if let Some((f, off)) = file {
            if f == 0 || f > vmflags::FILE_MAX {
                return Err(SimError::InvalidArgument(format!(
                    "file identity must be in 1..={}, got {f}",
                    vmflags::FILE_MAX
                )));
            }
            if off % PAGE_SIZE != 0 || (off >> PAGE_SHIFT).checked_add(len >> PAGE_SHIFT).is_none_or(|e| e > 1 << 52) {
                return Err(SimError::InvalidArgument(format!(
                    "file offset must be page aligned and below 2^64, got {off:#x}"
                )));
            }
        }
        let addr = match addr {
            Some(a) if noreplace => self.map_fixed_noreplace(pid, mm, a, len)?,
            Some(a) => {
                Self::check_range(a, len)?;
                a
            }
            None if noreplace => {
                return Err(SimError::InvalidArgument(
                    "noreplace=True (MAP_FIXED_NOREPLACE) needs an address (addr=None)".into(),
                ))
            }
            None => {
                Self::check_range(MMAP_MIN_ADDR, len)?;
                self.get_unmapped_area(mm, len)?
            }
        };
        self.begin_op("mmap");
        let mut flags = if noreserve { vmflags::NORESERVE } else { 0 };
        if stack && self.policy.map_stack_nohugepage {
            flags |= vmflags::NOHUGEPAGE; // calc_vm_flag_bits
        }
        // accountable_mapping: (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE
        if prot & prot::WRITE != 0 && !noreserve {
            flags |= vmflags::ACCOUNT;
        }
        // do_mmap: MAP_LOCKED and mm->def_flags (mlockall(MCL_FUTURE)); KSM's merge-any
        flags |= self.mm(mm).def_flags | if locked { vmflags::LOCKED } else { 0 };
        let flags = self.ksm_vma_flags(mm, flags);
        let addr = match file {
            None => self.mmap_region(mm, addr, len, prot, flags, addr >> PAGE_SHIFT)?,
            Some((f, off)) => {
                self.mmap_region(mm, addr, len, prot, flags | f << vmflags::FILE_SHIFT, off >> PAGE_SHIFT)?
            }
        };
        self.ksm_add_vma(mm, addr);
        self.populate_if_locked(mm, addr, addr + len, flags)?;
        Ok(addr)
    }

    /// The address of an mmap with `MAP_FIXED_NOREPLACE` at `a`. 4.17+ (`do_mmap`: the
    /// flag implies `MAP_FIXED`, and `find_vma_intersection` over the range is EEXIST):
    /// `a`, or `AlreadyMapped` with nothing changed. Before 4.17 `do_mmap` ignored the
    /// unknown bit and, without `MAP_FIXED`, `a` was a hint
    /// (`arch_get_unmapped_area_topdown`): taken when the whole range is free and inside
    /// `[mmap_min_addr, TASK_SIZE)`, else the usual search.
    fn map_fixed_noreplace(&self, pid: i64, mm: MmId, a: u64, len: u64) -> Result<u64> {
        let end = Self::check_range(a, len)?;
        let overlap = self.vmas_in(mm, a, end).first().copied();
        if !self.policy.has_map_fixed_noreplace {
            if overlap.is_none() && a >= MMAP_MIN_ADDR {
                return Ok(a);
            }
            Self::check_range(MMAP_MIN_ADDR, len)?;
            return self.get_unmapped_area(mm, len);
        }
        if let Some(v) = overlap {
            let x = self.vma(v);
            return Err(SimError::AlreadyMapped(format!(
                "mmap with noreplace (MAP_FIXED_NOREPLACE) of [{a:#x}, {end:#x}) in pid {pid} overlaps VMA [{:#x}, {:#x}) (EEXIST); nothing changed",
                x.start, x.end
            )));
        }
        Ok(a)
    }

    /// `mmap_region`: unmap what is in the way, then merge with a neighbour or link a new VMA.
    pub(crate) fn mmap_region(
        &mut self,
        mm: MmId,
        addr: u64,
        len: u64,
        prot: u8,
        flags: u32,
        pgoff: u64,
    ) -> Result<u64> {
        let end = addr + len;
        if !self.vmas_in(mm, addr, end).is_empty() {
            self.do_munmap(mm, addr, len)?;
        }
        let prev = self.mm(mm).vmas.range(..addr).next_back().map(|(_, &v)| v);
        self.map_new_range(mm, prev, addr, end, prot, flags, pgoff)?;
        self.note_merge(mm, addr, end, true);
        Ok(addr)
    }

    /// A new range in a hole: `vma_merge` with `prev` (and the next VMA), else a new VMA
    /// linked in (mmap_region's tail, and brk's `do_brk_flags`).
    #[allow(clippy::too_many_arguments)]
    fn map_new_range(
        &mut self,
        mm: MmId,
        prev: Option<VmaId>,
        addr: u64,
        end: u64,
        prot: u8,
        flags: u32,
        pgoff: u64,
    ) -> Result<()> {
        if self
            .vma_merge(&VmaMerge {
                mm,
                prev,
                start: addr,
                end,
                prot,
                flags,
                anon_vma: None,
                pgoff,
                ctx: MergeCtx::default(),
            })
            .is_none()
        {
            let v = self.vma_alloc(AllocSite::VmaMmap, mm, addr, end, pgoff, prot, flags)?;
            self.vma_link(v, true);
        }
        Ok(())
    }

    /// `set_brk_base`: where the heap starts (`mm->start_brk = mm->brk`), as the ELF loader
    /// sets it after the bss. `addr` must be page aligned; the break must not be in use yet
    /// (a base already set is refused, exec gives a fresh mm).
    pub fn set_brk_base(&mut self, pid: i64, addr: u64) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        Self::check_range(addr, PAGE_SIZE)?;
        if self.mm(mm).start_brk != 0 {
            return Err(SimError::InvalidArgument(format!(
                "pid {pid} already has a brk base {:#x}",
                self.mm(mm).start_brk
            )));
        }
        let m = self.mm_mut(mm);
        m.start_brk = addr;
        m.brk = addr;
        Ok(())
    }

    /// `(mm->start_brk, mm->brk)` of `pid` (0, 0 until a base is set).
    pub fn brk_info(&self, pid: i64) -> Result<(u64, u64)> {
        let mm = self.proc_mm(pid)?;
        Ok((self.mm(mm).start_brk, self.mm(mm).brk))
    }

    /// `brk(new)` (mm/mmap.c `SYSCALL_DEFINE1(brk)`, 6.x): move the program break. Returns
    /// the break afterwards; like the kernel, a request that cannot be met (below the
    /// base, into another mapping, no base set) leaves it unchanged and returns the old
    /// one. Shrinking unmaps `[PAGE_ALIGN(new), PAGE_ALIGN(old))`; growing maps
    /// `[PAGE_ALIGN(old), PAGE_ALIGN(new))` read-write anonymous (`do_brk_flags`), which
    /// expands the heap VMA when it can merge (`vma_merge_new_range`, so the heap's
    /// anon_vma is reused) and otherwise allocates a VMA.
    pub fn brk(&mut self, pid: i64, new: u64) -> Result<u64> {
        let mm = self.proc_mm(pid)?;
        let (start_brk, cur) = (self.mm(mm).start_brk, self.mm(mm).brk);
        if start_brk == 0 || new < start_brk || new > TASK_SIZE {
            return Ok(cur);
        }
        let align = |x: u64| (x + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let (newbrk, oldbrk) = (align(new), align(cur));
        self.begin_op("brk");
        if newbrk == oldbrk {
            self.mm_mut(mm).brk = new;
            return Ok(new);
        }
        if new < cur {
            // 6.1+: only a heap actually mapped in [newbrk, oldbrk) is shrunk.
            let unmapped = self.vmas_in(mm, newbrk, oldbrk).is_empty();
            if unmapped && self.policy.brk_heap_only {
                return Ok(cur);
            }
            if !unmapped {
                self.do_munmap(mm, newbrk, oldbrk - newbrk)?;
            }
            self.mm_mut(mm).brk = new;
            return Ok(new);
        }
        // Refuse to grow into (or within a guard page of) the next mapping.
        if let Some((&s, _)) = self.mm(mm).vmas.range(oldbrk..).next() {
            if newbrk + PAGE_SIZE > s {
                return Ok(cur);
            }
        }
        if !self.vmas_in(mm, oldbrk, newbrk).is_empty() {
            return Ok(cur);
        }
        // 6.1+ do_brk_flags(brkvma = vma_prev_limit(start_brk)): only a VMA reaching above
        // start_brk (the heap itself) may be expanded, never the bss below the heap; before
        // 6.1, do_brk's vma_merge took any previous VMA. The guard gap keeps the next VMA
        // from being adjacent.
        let heap_only = self.policy.brk_heap_only;
        let (rw, pgoff) = (prot::READ | prot::WRITE, oldbrk >> PAGE_SHIFT);
        let prev = self
            .mm(mm)
            .vmas
            .range(..oldbrk)
            .next_back()
            .map(|(_, &v)| v)
            .filter(|&v| !heap_only || self.vma(v).end > start_brk);
        // do_brk_flags: VM_ACCOUNT | mm->def_flags (and KSM's merge-any)
        let flags = self.ksm_vma_flags(mm, vmflags::ACCOUNT | self.mm(mm).def_flags);
        self.map_new_range(mm, prev, oldbrk, newbrk, rw, flags, pgoff)?;
        if prev.is_some() {
            self.note_merge(mm, oldbrk, newbrk, true);
        }
        self.ksm_add_vma(mm, oldbrk); // after note_merge: it forgets the site it re-flags
        self.mm_mut(mm).brk = new;
        self.populate_if_locked(mm, oldbrk, newbrk, flags)?;
        Ok(new)
    }

    /// `munmap(addr, length)`. A range with no mapping at all is refused with `BadAddress`
    /// in strict mode (knob `holes`: almost always a script's mistake); in kernel mode it
    /// succeeds, changing nothing, as every era's `do_munmap` does (6.18 `do_vmi_munmap`,
    /// mm/vma.c 1562-1585). Holes inside a range are fine in both modes.
    pub fn munmap(&mut self, pid: i64, addr: u64, len: u64) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        Self::check_range(addr, len)?;
        if self.vmas_in(mm, addr, addr + len).is_empty() {
            if self.policy.holes == crate::policy::Holes::Kernel {
                self.begin_op("munmap");
                return Ok(());
            }
            return Err(SimError::BadAddress(format!(
                "nothing is mapped in [{addr:#x}, {:#x}) of pid {pid}",
                addr + len
            )));
        }
        self.begin_op("munmap");
        self.do_munmap(mm, addr, len)
    }

    /// `do_munmap` (2.6.34): split at both ends as needed, then tear down every VMA in
    /// the range — zap the entries (`unmap_region`), unlink the anon_vmas
    /// (`free_pgtables`), free the VMAs (`remove_vma_list`).
    pub(crate) fn do_munmap(&mut self, mm: MmId, start: u64, len: u64) -> Result<()> {
        let end = start + len;
        let Some(vma) = self.find_vma_above(mm, start) else {
            return Ok(());
        };
        if self.vma(vma).start >= end {
            return Ok(());
        }
        if start > self.vma(vma).start {
            self.split_vma(vma, start, false)?;
        }
        if let Some(last) = self.find_vma(mm, end.saturating_sub(1)) {
            if self.vma(last).end > end {
                self.split_vma(last, end, true)?;
            }
        }
        let doomed = self.vmas_in(mm, start, end);
        for &v in &doomed {
            let s = self.vma(v).start;
            self.mm_mut(mm).vmas.remove(&s);
        }
        self.unmap_region(&doomed);
        Ok(())
    }

    /// `unmap_region` + `remove_vma_list` for VMAs already detached from their mm.
    pub(crate) fn unmap_region(&mut self, doomed: &[VmaId]) {
        for &v in doomed {
            self.zap_vma(v);
        }
        for &v in doomed {
            self.unlink_anon_vmas(v);
        }
        for &v in doomed {
            self.remove_vma(v);
        }
    }
}
