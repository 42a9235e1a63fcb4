//! `MADV_FREE` (`mm/madvise.c`, Linux 4.5+, knob `has_madv_free`) and what reclaim does
//! with the lazy-free pages it leaves (`try_to_unmap_one`'s lazy-free branch in
//! `mm/rmap.c`, `shrink_folio_list` in `mm/vmscan.c`).
//!
//! `madvise_free_single_vma` refuses a VMA that is not anonymous (EINVAL) and then
//! `madvise_free_pte_range` walks the range's entries: a swap entry is dropped
//! (`free_swap_and_cache`, the entry cleared). For a present anonymous page that is in the
//! swap cache or has `PG_dirty` ([`PG_DIRTY`]), the page must be mapped once (mapcount 1;
//! 4.5: "If page is shared with others, we couldn't clear PG_dirty of the page"), must
//! leave the swap cache (`folio_free_swap`: no swap entry may still refer to its slot), and
//! loses `PG_dirty`; otherwise it is skipped. Any other page — shared ones included — is
//! not checked. The entry is then made clean and old (`pte_mkclean`: this mapping's dirty
//! bit only; a child's copy of the entry keeps its own) and the page becomes lazy-free
//! (`folio_mark_lazyfree`: `PG_swapbacked` cleared). The zero page is left alone.
//! (6.18.2: `madvise_free_pte_range` mm/madvise.c 655-787, `folio_mark_lazyfree` mm/swap.c
//! 724-732. Not modelled: that function also leaves a folio alone that is unevictable,
//! mlocked through another process's `VM_LOCKED` mapping, or not yet on the LRU, in another
//! CPU's batch: `madvise_free_single_vma` drains only the calling CPU's.)
//!
//! A write sets the dirty bit of the entry written through (a write fault installs a dirty
//! entry; a write through a clean writable entry dirties it: `lazyfree_written`). Fork
//! copies the bit (`copy_present_pte` cleans only shared mappings).
//!
//! Reclaim (`try_to_unmap`, `MADV_PAGEOUT`) gives a lazy-free page no swap slot (it is not
//! swap-backed). Its rmap walk clears each mapping it finds, moving the entry's dirty bit
//! to the page (`folio_mark_dirty`). While the page stays clean the mapping is discarded
//! (no swap entry: a later read fault maps the zero page, a write a new page) and the walk
//! goes on; at the first dirty one the entry is put back, the page is swap-backed again
//! (`folio_set_swapbacked`) and the walk stops (`walk_abort`): the mappings found before
//! it are gone, the rest stay, the page stays mapped and an ordinary later reclaim swaps
//! it (6.18.2: `try_to_unmap_one` mm/rmap.c 1865-2249, the lazy-free branch 2117-2158).

use crate::error::{Result, SimError};
use crate::mm::rmap::{WalkMode, WalkSink, WalkStart};
use crate::state::objects::*;
use crate::state::pagestore::{LAZYFREE, PG_DIRTY};
use crate::state::sim::Simulator;

impl Simulator {
    /// A live page's `MADV_FREE` state: `(lazyfree, dirty)` — lazy-free (not swap-backed),
    /// and, for a lazy-free page, written again: an entry mapping it has its dirty bit, so
    /// reclaim will make it swap-backed again (`page_info`'s `lazyfree` and `dirty`; both
    /// false for a page that is not lazy-free).
    pub fn page_lazyfree(&self, page: PageId) -> Result<(bool, bool)> {
        self.page_checked(page)?;
        if !self.pages.is_lazyfree(page) {
            return Ok((false, false));
        }
        let mut dirty = self.pages.lazy(page) & PG_DIRTY != 0;
        self.rmap_walk_one(page, WalkMode::Full, |v, a| dirty |= self.vma(v).pte(a).dirty())?;
        Ok((true, dirty))
    }

    /// `MADV_FREE`'s checks before anything changes (with mlock: a `VM_LOCKED` VMA is
    /// EINVAL too, `madvise_dontneed_free_valid_vma`): the era has it (EINVAL before 4.5)
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
                    if self.madvise_free_page(page) {
                        self.set_pte(v, a, pte.cleaned());
                    }
                }
            }
        }
    }

    /// One present page of `madvise_free_pte_range`: false when it is skipped (in the swap
    /// cache or `PG_dirty`, and shared or unable to leave the swap cache); otherwise it
    /// loses `PG_dirty` and becomes lazy-free.
    fn madvise_free_page(&mut self, page: PageId) -> bool {
        let slot = self.pages.swap_slot(page);
        if slot.is_some() || self.pages.lazy(page) & PG_DIRTY != 0 {
            if self.pages.mapcount(page) != Some(1) {
                return false;
            }
            if let Some(slot) = slot {
                // folio_free_swap: only when no swap entry refers to the slot any more
                if self.swap[slot as usize].count != 0 {
                    return false;
                }
                self.swap.set_cache(slot, None);
                self.page_update(page, |p| p.swap = None);
                self.swap.release_if_unused(slot);
            }
        }
        // folio_clear_dirty, then folio_mark_lazyfree
        self.pages.set_lazy(page, LAZYFREE);
        true
    }

    /// A write reached the pages mapped in `[start, end)` of `v`: while any page is
    /// lazy-free, each entry gets its dirty bit (one written through a clean writable entry
    /// did not fault). Entries a fault installed for the write are dirty already, and only
    /// `MADV_FREE` makes a writable entry clean, whose page stays lazy-free while the entry
    /// does (`check()` verifies it): with no lazy-free page there is nothing to do.
    #[inline]
    pub(crate) fn lazyfree_written(&mut self, v: VmaId, start: u64, end: u64) {
        if self.pages.has_lazy() {
            self.dirty_range(v, start, end);
        }
    }

    /// `pte_mkdirty` on every present entry of `[start, end)` of `v` (kept out of line:
    /// the write path calls it only while a page is lazy-free).
    #[cold]
    #[inline(never)]
    fn dirty_range(&mut self, v: VmaId, start: u64, end: u64) {
        self.vma_mut(v).ptes.update_range(start, end, |_, p| *p = p.dirtied());
    }

    /// `PG_dirty` for a mapped page leaving the swap cache (`folio_free_swap` sets it: the
    /// swap copy is about to go); only `MADV_FREE` reads it, so only its eras keep it.
    pub(crate) fn swap_cache_left_dirty(&mut self, page: PageId) {
        if self.policy.has_madv_free {
            let s = self.pages.lazy(page);
            self.pages.set_lazy(page, s | PG_DIRTY);
        }
    }

    /// `try_to_unmap` of a lazy-free page (see the module documentation): the mappings the
    /// walk finds are discarded up to the first dirty one (or none when the page has
    /// `PG_dirty`), where the walk stops, the page becoming swap-backed and dirty again.
    /// False when the page is not lazy-free (the caller swaps it as usual).
    pub(crate) fn try_to_unmap_lazyfree(&mut self, page: PageId, out: &mut impl WalkSink) -> Result<bool> {
        let state = self.pages.lazy(page);
        if state & LAZYFREE == 0 {
            return Ok(false);
        }
        let mut hits: Vec<(VmaId, u64)> = Vec::new();
        let full = self.rmap_walk_one(page, WalkMode::UntilAllFound, |v, a| hits.push((v, a)))?;
        let abort =
            if state & PG_DIRTY != 0 { Some(0) } else { hits.iter().position(|&(v, a)| self.vma(v).pte(a).dirty()) };
        let discard = abort.unwrap_or(hits.len());
        match abort {
            None => out.record(&full),
            Some(k) => {
                // the walk as the kernel makes it: stopped at the (k+1)-th mapping found
                let w = match self.rmap_walk_start(page, WalkMode::UntilAllFound)? {
                    WalkStart::Done(w) => w,
                    WalkStart::Walk(mut s) => {
                        s.remaining = k as u32 + 1;
                        self.rmap_walk_anon(s, |_, _| {})?
                    }
                };
                out.record(&w);
            }
        }
        for &(v, a) in &hits[..discard] {
            // discard: the entry is cleared, no swap entry takes its place
            self.set_pte(v, a, Pte::NONE);
            self.page_remove_rmap(page);
        }
        if abort.is_some() {
            self.pages.set_lazy(page, PG_DIRTY); // folio_mark_dirty + folio_set_swapbacked
        }
        Ok(true)
    }
}
