//! Swap slots and the swap cache (`mm/swapfile.c`, `mm/swap_state.c`), the part of
//! reclaim that unmaps pages (`try_to_unmap`, `mm/rmap.c`) and dropping unmapped pages
//! from the swap cache (the end of `shrink_page_list`).
//!
//! A swap slot counts the swap entries in page tables that refer to it and may hold one
//! page in the swap cache. A slot is free when both are gone. A page lives while it is
//! mapped or in the swap cache.

use crate::error::{Result, SimError};
use crate::mm::rmap::{WalkMode, WalkSink};
use crate::state::objects::*;
use crate::state::sim::Simulator;

impl Simulator {
    /// `get_swap_page`: take a free slot (lowest recently freed first).
    fn get_swap_page(&mut self) -> u32 {
        self.swap.alloc()
    }

    /// `add_to_swap`: give an anon page a swap slot and put it in the swap cache.
    fn add_to_swap(&mut self, page: PageId) -> u32 {
        let slot = self.get_swap_page();
        self.swap.set_cache(slot, Some(page));
        self.page_update(page, |p| p.swap = Some(slot));
        slot
    }

    /// `delete_from_swap_cache`: the page leaves the swap cache (and is freed if
    /// unmapped); the slot is freed if no entry refers to it.
    pub(crate) fn delete_from_swap_cache(&mut self, page: PageId) {
        let Some(slot) = self.page(page).and_then(|p| p.swap) else { return };
        self.page_update(page, |p| p.swap = None);
        self.swap.set_cache(slot, None);
        self.swap.release_if_unused(slot);
        self.maybe_free_page(page);
    }

    /// `swap_duplicate`: one more page-table entry refers to `slot` (fork).
    pub(crate) fn swap_duplicate(&mut self, slot: u32) {
        self.swap.dup(slot);
    }

    /// `swap_free`: one entry fewer refers to `slot`.
    pub(crate) fn swap_free(&mut self, slot: u32) {
        self.swap.put(slot);
        self.swap.release_if_unused(slot);
    }

    /// `free_swap_and_cache` (zap of a swap entry): drop the entry's reference; when no
    /// entry refers to the slot any more, an unmapped swap-cache page goes too.
    pub(crate) fn free_swap_and_cache(&mut self, slot: u32) {
        if self.swap.put(slot) == 0 {
            if let Some(page) = self.swap[slot as usize].cache {
                if self.pages.mapcount(page) == Some(0) {
                    self.delete_from_swap_cache(page);
                    return;
                }
            }
        }
        self.swap.release_if_unused(slot);
    }

    /// `free_swap_cache` (the mmu_gather's batch free after a zap): a swap-cache page that
    /// is no longer mapped and that no swap entry refers to leaves the swap cache.
    pub(crate) fn free_swap_cache(&mut self, page: PageId) {
        if self.pages.mapcount(page) == Some(0) {
            if let Some(slot) = self.pages.swap_slot(page) {
                if self.swap[slot as usize].count == 0 {
                    self.delete_from_swap_cache(page);
                }
            }
        }
    }

    /// `try_to_unmap` of one page, now (MADV_PAGEOUT, repeated pages).
    pub(crate) fn try_to_unmap_one_page(&mut self, page: PageId, out: &mut impl WalkSink) -> Result<()> {
        if self.try_to_unmap_lazyfree(page, out)? {
            return Ok(());
        }
        let slot = self.swap_slot_for_unmap(page)?;
        let mut hits: Vec<(VmaId, u64)> = Vec::new();
        let w = self.rmap_walk_one(page, WalkMode::UntilAllFound, |v, a| hits.push((v, a)))?;
        out.record(&w);
        if let Some(slot) = slot {
            self.unmap_hits(page, slot, &hits);
        }
        Ok(())
    }

    /// The swap slot `try_to_unmap` turns the page's mappings into: its swap-cache slot,
    /// a new one for a mapped page (`add_to_swap`), none for an unmapped page or a
    /// lazy-free one (not swap-backed: `shrink_folio_list` does not add it to swap).
    pub(crate) fn swap_slot_for_unmap(&mut self, page: PageId) -> Result<Option<u32>> {
        let p = self.page_checked(page)?;
        if self.pages.lazy(page) != 0 {
            return Ok(None);
        }
        Ok(match (p.swap, p.mapcount > 0) {
            (Some(s), _) => Some(s),
            (None, true) => Some(self.add_to_swap(page)),
            (None, false) => None,
        })
    }

    pub(crate) fn unmap_hits(&mut self, page: PageId, slot: u32, hits: &[(VmaId, u64)]) {
        for &(v, addr) in hits {
            self.set_pte(v, addr, Pte::swap(slot));
            self.swap_duplicate(slot);
            self.pages.add_mapcount(page, -1);
        }
    }

    /// Drop each unmapped swap-cache page from the swap cache, freeing it (the end of
    /// reclaim). Pages still mapped or not in the swap cache are left alone. Returns how
    /// many were dropped.
    pub fn drop_swap_cache(&mut self, pages: Option<&[u64]>) -> Result<u64> {
        let ids = self.resolve_page_ids(pages)?;
        self.begin_op("drop_swap_cache");
        let mut n = 0;
        for id in ids {
            if self.page(id).is_some_and(|p| p.mapcount == 0 && p.swap.is_some()) {
                self.delete_from_swap_cache(id);
                n += 1;
            }
        }
        Ok(n)
    }

    /// `reuse_swap_page(page)`: may the faulting process take the page for itself? Only
    /// when it maps it at most once and no other swap entry refers to its slot; then the
    /// page also leaves the swap cache (it is not freed: the caller maps it).
    pub(crate) fn reuse_swap_page(&mut self, page: PageId) -> bool {
        match self.pages.mapcount(page) {
            None => return false,
            Some(m) if m > 1 => return false, // shared: copy (the common COW case)
            _ => {}
        }
        let Some(p) = self.page(page) else { return false };
        let mut count = p.mapcount as u64;
        if count <= 1 {
            if let Some(slot) = p.swap {
                count += self.swap[slot as usize].count as u64;
                if count == 1 {
                    self.swap.set_cache(slot, None);
                    self.page_update(page, |p| p.swap = None);
                    self.swap.release_if_unused(slot);
                }
            }
        }
        count <= 1
    }

    pub(crate) fn swap_cache_page(&self, slot: u32) -> Option<PageId> {
        self.swap.get(slot as usize).and_then(|s| s.cache)
    }

    pub(crate) fn swap_slot_checked(&self, slot: u32) -> Result<SwapSlot> {
        self.swap.get(slot as usize).copied().ok_or_else(|| {
            SimError::InvariantViolation(format!("swap entry refers to slot {slot}, which does not exist"))
        })
    }
}
