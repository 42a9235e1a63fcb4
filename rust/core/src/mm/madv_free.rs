//! `MADV_FREE` (`mm/madvise.c`, Linux 4.5+, knob `has_madv_free`) and what reclaim does
//! with the lazy-free pages it leaves (`try_to_unmap_one`'s lazy-free branch in
//! `mm/rmap.c`, `shrink_folio_list` in `mm/vmscan.c`).
//!
//! `madvise_free_single_vma` refuses a VMA that is not anonymous (EINVAL) and then
//! `madvise_free_pte_range` walks the range's entries: a swap entry is dropped
//! (`free_swap_and_cache`, the entry cleared); a page mapped only here
//! (`folio_maybe_mapped_shared` false: mapcount 1) leaves the swap cache if no swap entry
//! still refers to its slot (`folio_free_swap`; otherwise it is skipped), loses its dirty
//! state, has its PTE made clean and old, and becomes lazy-free (`folio_mark_lazyfree`:
//! `PG_swapbacked` cleared). The zero page and shared pages are left alone.
//!
//! The simulator keeps a page's dirtiness at page level ([`crate::state::pagestore::DIRTY`]):
//! a write fault through any entry sets it. That equals the kernel's per-PTE dirty bits
//! here because a lazy-free page can be written only while it is mapped once (a write to
//! a shared page is a COW copy), and a fork of a written page copies its dirty PTE to the
//! child (`copy_present_pte` keeps the dirty bit of a private mapping), so the entries of a
//! lazy-free page are all clean or all dirty.
//!
//! Reclaim (`try_to_unmap`, `MADV_PAGEOUT`) gives a lazy-free page no swap slot (it is not
//! swap-backed). Its rmap walk clears each entry it finds: while the page is clean the
//! mapping is discarded (no swap entry: a later read fault maps the zero page, a write a
//! new page) and the walk goes on; a dirty page gets its entry back, is marked swap-backed
//! again (`folio_set_swapbacked`) and the walk stops there (`walk_abort`), so the page
//! stays mapped (reclaim then activates it) and an ordinary later reclaim swaps it.

use crate::error::{Result, SimError};
use crate::mm::rmap::{WalkMode, WalkSink, WalkStart};
use crate::state::objects::*;
use crate::state::pagestore::{DIRTY, LAZYFREE};
use crate::state::sim::Simulator;

impl Simulator {
    /// A live page's `MADV_FREE` state: `(lazyfree, dirty)` — lazy-free (not swap-backed),
    /// and written again since (`page_info`'s `lazyfree` and `dirty`; both false for every
    /// page `MADV_FREE` did not mark).
    pub fn page_lazyfree(&self, page: PageId) -> Result<(bool, bool)> {
        self.page_checked(page)?;
        let s = self.pages.lazy(page);
        Ok((s & LAZYFREE != 0, s & DIRTY != 0))
    }

    /// `MADV_FREE`'s checks before anything changes: the era has it (EINVAL before 4.5)
    /// and every VMA of the range is anonymous (`madvise_free_single_vma`: EINVAL; the
    /// kernel fails at that VMA having freed the ones before it, which `holes="kernel"`
    /// does too; strict mode refuses up front).
    pub(crate) fn madvise_free_check(&self, pid: i64, mm: MmId, addr: u64, end: u64) -> Result<()> {
        if !self.policy.has_madv_free {
            return Err(SimError::InvalidArgument(format!(
                "advice \"free\" is EINVAL in era {}: MADV_FREE arrived in Linux 4.5",
                self.policy.name
            )));
        }
        if let Some(v) = self.vmas_in(mm, addr, end).into_iter().find(|&v| self.vma(v).file().is_some()) {
            let x = self.vma(v);
            return Err(SimError::InvalidArgument(format!(
                "advice \"free\" needs anonymous memory (madvise_free_single_vma: EINVAL); [{:#x}, {:#x}) of pid {pid} maps file {}",
                x.start,
                x.end,
                x.file().unwrap_or(0)
            )));
        }
        Ok(())
    }

    /// `madvise_free_single_vma` + `madvise_free_pte_range` over `[addr, end)`, VMA by VMA
    /// in address order (the range was checked by [`Simulator::madvise_free_check`]).
    pub(crate) fn madvise_free(&mut self, mm: MmId, addr: u64, end: u64) {
        for v in self.vmas_in(mm, addr, end) {
            let (s, e) = (self.vma(v).start.max(addr), self.vma(v).end.min(end));
            let entries: Vec<(u64, Pte)> = self.vma(v).ptes.range(s, e).collect();
            for (a, pte) in entries {
                if pte.swap_slot().is_some() {
                    // free_swap_and_cache + clear the entry
                    self.zap_range(v, a, a + PAGE_SIZE);
                } else if let Some(page) = pte.page() {
                    self.madvise_free_page(page);
                }
            }
        }
    }

    /// One present page of `madvise_free_pte_range`: skipped when it may be shared or
    /// when it cannot leave the swap cache; otherwise clean and lazy-free.
    fn madvise_free_page(&mut self, page: PageId) {
        if self.pages.mapcount(page) != Some(1) {
            return; // folio_maybe_mapped_shared (4.5: page_mapcount(page) != 1)
        }
        if let Some(slot) = self.pages.swap_slot(page) {
            // folio_free_swap: only when no swap entry refers to the slot any more
            if self.swap[slot as usize].count != 0 {
                return;
            }
            self.swap.set_cache(slot, None);
            self.page_update(page, |p| p.swap = None);
            self.swap.release_if_unused(slot);
        }
        // folio_clear_dirty, pte_mkclean / pte_mkold, folio_mark_lazyfree
        self.pages.set_lazy(page, LAZYFREE);
    }

    /// A write reached the pages mapped in `[start, end)` of `v`: each lazy-free one is
    /// dirty again (the hardware's dirty bit on its entry).
    pub(crate) fn lazyfree_written(&mut self, v: VmaId, start: u64, end: u64) {
        if !self.pages.has_lazy() {
            return;
        }
        let written: Vec<PageId> = self.vma(v).ptes.range(start, end).filter_map(|(_, p)| p.page()).collect();
        for page in written {
            let state = self.pages.lazy(page);
            if state & LAZYFREE != 0 {
                self.pages.set_lazy(page, state | DIRTY);
            }
        }
    }

    /// `try_to_unmap` of a lazy-free page (see the module documentation): a clean page's
    /// mappings are discarded as the walk finds them; a dirty page's walk stops at its
    /// first mapping, which stays, and the page is swap-backed again. False when the page
    /// is not lazy-free (the caller swaps it as usual).
    pub(crate) fn try_to_unmap_lazyfree(&mut self, page: PageId, out: &mut impl WalkSink) -> Result<bool> {
        let state = self.pages.lazy(page);
        if state & LAZYFREE == 0 {
            return Ok(false);
        }
        if state & DIRTY != 0 {
            let w = match self.rmap_walk_start(page, WalkMode::UntilAllFound)? {
                WalkStart::Done(w) => w,
                WalkStart::Walk(mut s) => {
                    s.remaining = 1; // walk_abort at the first mapping found
                    self.rmap_walk_anon(s, |_, _| {})?
                }
            };
            out.record(&w);
            if w.mappings_found > 0 {
                self.pages.set_lazy(page, 0); // folio_set_swapbacked
            }
            return Ok(true);
        }
        let mut hits: Vec<(VmaId, u64)> = Vec::new();
        let w = self.rmap_walk_one(page, WalkMode::UntilAllFound, |v, a| hits.push((v, a)))?;
        out.record(&w);
        for (v, a) in hits {
            // discard: the entry is cleared, no swap entry takes its place
            self.set_pte(v, a, Pte::NONE);
            self.page_remove_rmap(page);
        }
        Ok(true)
    }
}
