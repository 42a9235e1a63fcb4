//! The simulator's pages and page-table entries as the kernel paths see them: page
//! lookups and updates through the page store, a page's lifetime (freed when nothing maps
//! it and the swap cache does not hold it), and installing an entry with the count of
//! populated entries kept.

use crate::error::{Result, SimError};
use crate::state::objects::*;
use crate::state::pagestore::Stale;
use crate::state::sim::Simulator;

impl Simulator {
    pub(crate) fn page_checked(&self, page: PageId) -> Result<Page> {
        self.page(page).ok_or_else(|| match self.pages.stale(page) {
            Some(Stale::Freed(Some(op))) => SimError::StaleHandle(format!(
                "page handle {:#x} is stale: the page was freed by operation #{op}",
                page.to_u64()
            )),
            Some(Stale::Freed(None)) => SimError::StaleHandle(format!(
                "page handle {:#x} is stale: the page was freed (its slot has been reused since)",
                page.to_u64()
            )),
            _ => SimError::StaleHandle(format!("page handle {:#x} does not name a page", page.to_u64())),
        })
    }

    /// The page `id`, decoded, if live.
    #[inline]
    pub(crate) fn page(&self, id: PageId) -> Option<Page> {
        self.pages.get(id, &self.avs)
    }

    /// Change a live page's fields through `f`; false if `id` is not live.
    pub(crate) fn page_update(&mut self, id: PageId, f: impl FnOnce(&mut Page)) -> bool {
        let Some(mut p) = self.page(id) else { return false };
        f(&mut p);
        self.pages.set(id, p, &mut self.avs)
    }

    /// `alloc_page` for an anonymous page with its fields set.
    pub(crate) fn page_alloc(&mut self, p: Page) -> PageId {
        self.pages.insert(p, &mut self.avs)
    }

    /// Free a page (`free_page`), recording this operation as the one that freed it.
    pub(crate) fn page_free(&mut self, id: PageId) {
        self.pages.remove(id, self.op, &mut self.avs);
    }

    /// Install `pte` at `addr` in `vma` (a page-table page appears with its first entry).
    pub(crate) fn set_pte(&mut self, v: VmaId, addr: u64, pte: Pte) {
        let vma = self.vma_mut(v);
        let (start, end) = (vma.start, vma.end);
        let old = vma.ptes.set_in(addr, pte, start, end);
        match (old.is_none(), pte.is_none()) {
            (true, false) => self.ptes += 1,
            (false, true) => self.ptes -= 1,
            _ => {}
        }
    }

    /// Free a page nobody maps and the swap cache does not hold.
    pub(crate) fn maybe_free_page(&mut self, page: PageId) {
        if self.pages.mapcount(page) == Some(0) && self.pages.swap_slot(page).is_none() {
            self.page_free(page);
        }
    }

    /// One more populated page-table entry per `n` (entries installed in bulk, as
    /// `copy_page_range` and `move_ptes` do, bypassing [`Simulator::set_pte`]).
    #[inline]
    pub(crate) fn ptes_added(&mut self, n: u64) {
        self.ptes += n;
    }

    /// `n` populated page-table entries fewer (cleared in bulk, or by a zap).
    #[inline]
    pub(crate) fn ptes_removed(&mut self, n: u64) {
        self.ptes -= n;
    }

    /// Populated page-table entries over every page table.
    #[inline]
    pub fn pte_count(&self) -> u64 {
        self.ptes
    }
}
