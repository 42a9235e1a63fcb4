//! Page faults on private anonymous memory and the zapping of page-table entries:
//! `mm/memory.c` (`handle_pte_fault`, `do_anonymous_page`, `do_wp_page`, `do_swap_page`,
//! `zap_page_range` / `zap_pte_range`). The rmap calls they make (`page_add_anon_rmap`,
//! `page_move_anon_rmap`, `page_remove_rmap`) are in `rmap.rs`, the swap-slot
//! bookkeeping in `swap.rs`; installing an entry is `state`'s `set_pte`.

use crate::error::{Result, SimError};
use crate::policy::Holes;
use crate::state::interrupt::Ticker;
use crate::state::objects::*;
use crate::state::sim::{AllocSite, Simulator};

impl Simulator {
    /// Check that `[addr, addr+len)` is entirely mapped in `mm` with a protection that
    /// allows the access (x86: any of r/w/x allows a read; a write needs w). With
    /// `holes="kernel"` nothing is checked up front: the accesses run in order and the
    /// first that faults stops them (`touch_range`), as a user program's loop would.
    fn check_access(&self, pid: i64, mm: MmId, addr: u64, len: u64, write: bool) -> Result<()> {
        if self.policy.holes == Holes::Kernel {
            return Self::check_range_any(addr, len).map(|_| ());
        }
        let end = Self::check_range(addr, len)?;
        let mut cur = addr;
        while cur < end {
            cur = self.vma(self.access_vma(pid, mm, cur, write)?).end;
        }
        Ok(())
    }

    /// The VMA an access at `addr` faults in, or the SIGSEGV it gets: no VMA there
    /// (`lock_mm_and_find_vma` fails; a `VM_GROWSDOWN` stack's growth is not modelled), or a
    /// protection that forbids it (`access_error`, arch/x86/mm/fault.c).
    fn access_vma(&self, pid: i64, mm: MmId, addr: u64, write: bool) -> Result<VmaId> {
        let v = self
            .find_vma(mm, addr)
            .ok_or_else(|| SimError::BadAddress(format!("address {addr:#x} is not mapped in pid {pid} (SIGSEGV)")))?;
        let vma = self.vma(v);
        let ok = if write { vma.prot & prot::WRITE != 0 } else { vma.prot & prot::ALL != 0 };
        if !ok {
            return Err(SimError::BadAddress(format!(
                "{} fault at {addr:#x} in pid {pid}: VMA [{:#x}, {:#x}) has prot {} (SIGSEGV)",
                if write { "write" } else { "read" },
                vma.start,
                vma.end,
                Self::prot_string(vma.prot)
            )));
        }
        Ok(v)
    }

    /// Fault in every page of `[addr, addr+len)` of `pid`, as reads or writes. The range
    /// is validated first (in strict mode: all of it mapped and accessible, or nothing
    /// happens; with `holes="kernel"` the pages before the first that faults are
    /// accessed, then `BadAddress`); an allocation failure part way leaves the pages
    /// faulted so far in place (each fault is its own kernel event) and raises
    /// `OutOfMemory`.
    pub fn touch(&mut self, pid: i64, addr: u64, len: u64, write: bool) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        self.check_access(pid, mm, addr, len, write)?;
        self.begin_op("touch");
        self.touch_range(pid, mm, addr, addr + len, write, &mut Ticker::new())
    }

    /// `touch` for several processes, in order; every pid and (in strict mode) range is
    /// validated before any fault happens. An interrupt (see `interrupt`) stops it between
    /// two faults: the processes before have faulted the whole range, the current one part
    /// of it; so does, with `holes="kernel"`, the first access that faults.
    pub fn touch_many(&mut self, pids: &[i64], addr: u64, len: u64, write: bool) -> Result<()> {
        let mut mms = Vec::with_capacity(pids.len());
        for &pid in pids {
            let mm = self.proc_mm(pid)?;
            self.check_access(pid, mm, addr, len, write)?;
            mms.push((pid, mm));
        }
        let meter = crate::state::interrupt::expect(pids.len() as u64);
        let mut ticker = Ticker::new();
        for (pid, mm) in mms {
            ticker.tick()?;
            self.begin_op("touch");
            self.touch_range(pid, mm, addr, addr + len, write, &mut ticker)?;
            if let Some(m) = &meter {
                m.advance(1);
            }
        }
        Ok(())
    }

    /// The faults of `[addr, end)` in order, VMA by VMA, each VMA's protection checked
    /// when the access reaches it. An interrupt (see `interrupt`) stops it between two
    /// faults, the pages faulted so far staying in place. After a write the lazy-free
    /// pages written (those before a fault that failed too) are dirty again.
    fn touch_range(&mut self, pid: i64, mm: MmId, addr: u64, end: u64, write: bool, ticker: &mut Ticker) -> Result<()> {
        let mut cur = addr;
        while cur < end {
            let v = self.access_vma(pid, mm, cur, write)?;
            let (first, stop) = (cur, self.vma(v).end.min(end));
            let faulted = self.touch_vma_range(v, &mut cur, stop, write, ticker);
            if write {
                self.lazyfree_written(v, first, cur);
            }
            faulted?;
        }
        Ok(())
    }

    /// The faults of `[*cur, stop)`, all inside VMA `v`; `*cur` ends after the last page
    /// faulted.
    fn touch_vma_range(&mut self, v: VmaId, cur: &mut u64, stop: u64, write: bool, ticker: &mut Ticker) -> Result<()> {
        /// Pages of one `cow_copy_run` between interrupt checks.
        const COW_RUN: u64 = 1024;
        while *cur < stop {
            if write {
                let run_end = stop.min(cur.saturating_add(COW_RUN * PAGE_SIZE));
                let from = *cur;
                // The one place a kernel path takes a shortcut (crate::fast::cow).
                *cur = self.cow_copy_run(v, *cur, run_end)?;
                ticker.tick_by((*cur - from) / PAGE_SIZE)?;
                if *cur >= run_end {
                    continue;
                }
            }
            ticker.tick()?;
            self.handle_pte_fault(v, *cur, write)?;
            *cur += PAGE_SIZE;
        }
        Ok(())
    }

    /// `handle_pte_fault` for one page.
    pub(crate) fn handle_pte_fault(&mut self, v: VmaId, addr: u64, write: bool) -> Result<()> {
        let pte = self.vma(v).pte(addr);
        if pte.is_none() {
            return self.do_anonymous_page(v, addr, write);
        }
        if let Some(slot) = pte.swap_slot() {
            return self.do_swap_page(v, addr, slot, write);
        }
        if !write || pte.writable() {
            return Ok(()); // only the accessed/dirty bits would change
        }
        self.do_wp_page(v, addr, pte)
    }

    /// `do_anonymous_page`: a read maps the shared zero page (no anon_vma needed); a write
    /// prepares the anon_vma, allocates a page and maps it writable.
    fn do_anonymous_page(&mut self, v: VmaId, addr: u64, write: bool) -> Result<()> {
        if !write {
            self.set_pte(v, addr, Pte::ZERO);
            return Ok(());
        }
        self.anon_vma_prepare(v)?;
        let page = self.alloc_anon_page(v, addr, AllocSite::PageAnonymous)?;
        self.set_pte(v, addr, Pte::present(page, true));
        Ok(())
    }

    /// `alloc_page` + `page_add_new_anon_rmap(page, vma, addr)`: the new page goes into
    /// `vma->anon_vma` at the linear index of `addr`.
    fn alloc_anon_page(&mut self, v: VmaId, addr: u64, site: AllocSite) -> Result<PageId> {
        self.may_alloc(site)?;
        let vma = self.vma(v);
        let Some(mapping) = vma.anon_vma else {
            return Err(SimError::InvariantViolation(format!(
                "internal: VMA [{:#x}, {:#x}) has no anon_vma after anon_vma_prepare",
                vma.start, vma.end
            )));
        };
        let index = vma.linear_page_index(addr);
        Ok(self.page_alloc(Page { mapping, index, mapcount: 1, swap: None, anon: true }))
    }

    /// `do_wp_page` (2.6.34): write to a write-protected entry. The zero page and shared
    /// anon pages are copied; an anon page mapped only here (`reuse_swap_page`) is reused,
    /// and in chain eras moved to this VMA's own anon_vma (`page_move_anon_rmap`).
    fn do_wp_page(&mut self, v: VmaId, addr: u64, pte: Pte) -> Result<()> {
        if let Some(old) = pte.page() {
            if self.reuse_swap_page(old) {
                if self.policy.cow_reuse_moves_page {
                    self.page_move_anon_rmap(old, v, addr);
                }
                self.set_pte(v, addr, Pte::present(old, true));
                return Ok(());
            }
        }
        self.anon_vma_prepare(v)?;
        let new = self.alloc_anon_page(v, addr, AllocSite::PageCow)?;
        self.set_pte(v, addr, Pte::present(new, true));
        if let Some(old) = pte.page() {
            self.page_remove_rmap(old);
        }
        Ok(())
    }

    /// `do_swap_page` (2.6.33 / 2.6.34): fault on a swap entry. The page comes from the
    /// swap cache, or is read into a new page that enters the swap cache. A write fault
    /// that may take the page for itself (`reuse_swap_page`) maps it writable and
    /// *exclusive*; otherwise it is mapped read-only and a write then goes through
    /// `do_wp_page`. The page's first mapping decides `page->mapping` (the era's rule).
    fn do_swap_page(&mut self, v: VmaId, addr: u64, slot: u32, write: bool) -> Result<()> {
        self.swap_slot_checked(slot)?;
        let Some(own) = self.vma(v).anon_vma else {
            let vma = self.vma(v);
            return Err(SimError::InvariantViolation(format!(
                "internal: swap entry at {addr:#x} in VMA [{:#x}, {:#x}) without anon_vma",
                vma.start, vma.end
            )));
        };
        let page = match self.swap_cache_page(slot) {
            Some(p) => p,
            None => {
                // read_swap_cache_async: a new page, added to the swap cache.
                self.may_alloc(AllocSite::PageSwapin)?;
                let vma = self.vma(v);
                let (mapping, index) = (own, vma.linear_page_index(addr));
                let p = self.page_alloc(Page { mapping, index, mapcount: 0, swap: Some(slot), anon: false });
                self.swap.set_cache(slot, Some(p));
                p
            }
        };
        let exclusive = write && self.reuse_swap_page(page);
        self.set_pte(v, addr, Pte::present(page, exclusive));
        self.page_add_anon_rmap(page, v, addr, exclusive);
        self.swap_free(slot);
        if write && !exclusive {
            self.do_wp_page(v, addr, Pte::present(page, false))?;
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------
// Zapping: `zap_page_range` / `zap_pte_range`
// ----------------------------------------------------------------------------------------

impl Simulator {
    /// `zap_page_range` over the whole VMA (`unmap_vmas`): clear every entry.
    pub(crate) fn zap_vma(&mut self, v: VmaId) {
        let ptes = std::mem::take(&mut self.vma_mut(v).ptes);
        if let Some((_, e)) = ptes.dense_slice() {
            for &p in e.iter().filter(|p| !p.is_none()) {
                self.zap_pte(p);
            }
            return;
        }
        for (_, p) in ptes.iter() {
            self.zap_pte(p);
        }
    }

    /// `zap_page_range(vma, start, len)` for part of a VMA (MADV_DONTNEED).
    pub(crate) fn zap_range(&mut self, v: VmaId, start: u64, end: u64) {
        for (_, pte) in self.vma_mut(v).ptes.take_range(start, end) {
            self.zap_pte(pte);
        }
    }

    /// Drop one page-table entry's reference to whatever it maps (zap).
    pub(crate) fn zap_pte(&mut self, pte: Pte) {
        if pte.is_none() {
            return;
        }
        self.ptes_removed(1);
        if let Some(page) = pte.page() {
            self.page_remove_rmap(page);
            self.free_swap_cache(page);
        } else if let Some(slot) = pte.swap_slot() {
            self.free_swap_and_cache(slot);
        }
    }
}

// ----------------------------------------------------------------------------------------
// Populating a locked range: `mm/gup.c` (`__mm_populate`, `populate_vma_page_range`), for
// mlock and mlockall (`mlock.rs`), MAP_LOCKED and `mm->def_flags` (mmap, brk in `vma.rs`),
// mremap growth and mprotect of a locked range.
// ----------------------------------------------------------------------------------------

impl Simulator {
    /// `__mm_populate(start, len, ignore_errors)`: fault in every VMA's part of
    /// `[start, end)` in address order (`populate_vma_page_range`). An error ends it unless
    /// `ignore_errors` (mmap, mlockall, brk, mremap), which goes on with the next VMA.
    pub(crate) fn mm_populate(&mut self, mm: MmId, start: u64, end: u64, ignore_errors: bool) -> Result<()> {
        for v in self.vmas_in(mm, start, end) {
            let (s, e) = (self.vma(v).start.max(start), self.vma(v).end.min(end));
            match self.populate_vma_page_range(v, s, e) {
                Ok(()) => {}
                Err(e @ (SimError::InvariantViolation(_) | SimError::Interrupted)) => return Err(e),
                Err(_) if ignore_errors => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A new or grown range with `flags` (its VMA's): faulted in, errors ignored, when they
    /// have `VM_LOCKED` (`MAP_LOCKED` or `def_flags`: `vm_mmap_pgoff`'s `mm_populate`; brk's;
    /// mremap growth of a locked VMA, `if (locked && new_len > old_len)`; every era).
    pub(crate) fn populate_if_locked(&mut self, mm: MmId, start: u64, end: u64, flags: u32) -> Result<()> {
        if flags & vmflags::LOCKED != 0 && start < end {
            self.mm_populate(mm, start, end, true)?;
        }
        Ok(())
    }

    /// `populate_vma_page_range(vma, start, end)` (`__mlock_vma_pages_range` before 3.x):
    /// nothing for `VM_LOCKONFAULT`; PROT_NONE cannot be faulted (`__get_user_pages`'
    /// EFAULT, which mlock reports as ENOMEM: `BadAddress`); otherwise every page is
    /// faulted, for write when the mapping is writable (private: breaks COW) and for read
    /// otherwise. A failed allocation is EAGAIN for mlock (`TryAgain`), the pages before it
    /// staying faulted.
    pub(crate) fn populate_vma_page_range(&mut self, v: VmaId, start: u64, end: u64) -> Result<()> {
        let (mm, prot, flags, vs, ve) = {
            let x = self.vma(v);
            (x.mm, x.prot, x.flags, x.start, x.end)
        };
        if flags & vmflags::LOCKONFAULT != 0 || start >= end {
            return Ok(());
        }
        if prot & prot::ALL == 0 {
            return Err(SimError::BadAddress(format!(
                "populate of PROT_NONE [{vs:#x}, {ve:#x}) faults (EFAULT, reported as ENOMEM); the range stays locked"
            )));
        }
        let write = prot & prot::WRITE != 0;
        let had_anon_vma = self.vma(v).anon_vma.is_some();
        let pid = i64::from(self.mm(mm).pid);
        let r = match self.touch_range(pid, mm, start, end, write, &mut Ticker::new()) {
            Err(SimError::OutOfMemory(m)) => Err(SimError::TryAgain(format!(
                "{m}; populating the locked range failed (ENOMEM from a fault, reported as EAGAIN); the range stays locked"
            ))),
            r => r,
        };
        if !had_anon_vma && self.vmas.get(v).is_some_and(|x| x.anon_vma.is_some()) {
            // the fault's anon_vma_prepare may make it mergeable with a neighbour that this
            // operation's merge attempt (made before) refused: the kernel leaves them apart
            self.forget_merge_sites(mm, vs, ve);
        }
        r
    }
}
