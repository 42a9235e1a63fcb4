//! The COW-run shortcut: a run of write faults that are each the common COW copy (a
//! read-only entry of an anon page other entries map too, in a VMA that has its
//! anon_vma) done with the VMA looked up once per page and, where the allocations are
//! known to pass, as one batch. The only shortcut a kernel path calls: `touch_range`
//! (`mm/memory.rs`) tries it before each fault of a write touch and takes the kernel's
//! `handle_pte_fault` for whatever it does not cover.
//!
//! The tests below run every operation stream on two simulators, the shortcut on and off
//! (`tests::COW_FAST`), and compare outcomes and the complete state after each operation.

use crate::error::Result;
use crate::state::arena::Arena;
use crate::state::objects::*;
use crate::state::pagestore::PageStore;
use crate::state::sim::{AllocSite, Simulator};

impl Simulator {
    /// Write faults from `cur` on, while each is the common COW case: a read-only entry
    /// of an anon page that other entries map too, in a VMA that has its anon_vma. Each is
    /// exactly [`Simulator::do_wp_page`]'s copy path (`reuse_swap_page` says no because the
    /// mapcount is above 1, `anon_vma_prepare` has nothing to do, a new page in
    /// `vma->anon_vma`, the entry replaced, `page_remove_rmap` on the old page, which stays
    /// mapped elsewhere), with the VMA looked up once per page instead of once per step.
    /// Returns the address of the first page that is not such a fault (or `stop`).
    pub(crate) fn cow_copy_run(&mut self, v: VmaId, mut cur: u64, stop: u64) -> Result<u64> {
        #[cfg(test)]
        if !tests::COW_FAST.with(|c| c.get()) {
            return Ok(cur);
        }
        while cur < stop {
            // Allocations `may_alloc` is known to pass go as one batch, the VMA looked up
            // once: the same faults, the same counts.
            let batch = self.alloc_fast.min((stop - cur) / PAGE_SIZE);
            if batch > 0 {
                let Simulator { vmas, pages, avs, .. } = self;
                let vma = vmas.get_mut(v).expect("live vma"); // ok: the caller found it
                let mut done = 0;
                while done < batch {
                    let Some(t) = Self::cow_target(pages, vma, cur) else { break };
                    Self::cow_replace(pages, avs, vma, cur, t);
                    done += 1;
                    cur += PAGE_SIZE;
                }
                self.allocations += done;
                self.site_allocs[AllocSite::PageCow as usize] += done;
                self.alloc_fast -= done;
                #[cfg(test)]
                tests::COW_HITS.with(|c| c.set(c.get() + done));
                if done < batch {
                    break;
                }
                continue;
            }
            let Some(t) = Self::cow_target(&self.pages, self.vma(v), cur) else { break };
            let r = self.may_alloc(AllocSite::PageCow);
            #[cfg(test)]
            if r.is_err() {
                tests::COW_OOM.with(|c| c.set(c.get() + 1));
            }
            r?;
            let Simulator { vmas, pages, avs, .. } = self;
            let vma = vmas.get_mut(v).expect("live vma"); // ok: as above
            Self::cow_replace(pages, avs, vma, cur, t);
            #[cfg(test)]
            tests::COW_HITS.with(|c| c.set(c.get() + 1));
            cur += PAGE_SIZE;
        }
        Ok(cur)
    }

    /// Is the write fault at `cur` [`Simulator::cow_copy_run`]'s case? Then
    /// (`vma->anon_vma`, the page mapped now, the new page's index).
    #[inline(always)]
    fn cow_target(pages: &PageStore, vma: &Vma, cur: u64) -> Option<(AnonVmaId, PageId, u64)> {
        let mapping = vma.anon_vma?;
        let pte = vma.pte(cur);
        let old = pte.page()?;
        if pte.writable() || pages.mapcount(old).is_none_or(|m| m <= 1) {
            return None;
        }
        Some((mapping, old, vma.linear_page_index(cur)))
    }

    /// The copy ([`Simulator::page_alloc`]'s insert, with the fields borrowed apart): a
    /// new page of `vma->anon_vma` mapped writable at `cur` in place of `old`, which loses
    /// a mapping (others still map it). `(mapping, old, index)` is [`Simulator::cow_target`]'s.
    #[inline(always)]
    fn cow_replace(
        pages: &mut PageStore,
        avs: &mut Arena<AnonVma>,
        vma: &mut Vma,
        cur: u64,
        (mapping, old, index): (AnonVmaId, PageId, u64),
    ) {
        let new = pages.insert(Page { mapping, index, mapcount: 1, swap: None, anon: true }, avs);
        if let Some(e) = vma.ptes.get_mut(cur) {
            *e = Pte::present(new, true); // populated before and after: no count changes
        }
        pages.add_mapcount(old, -1);
    }
}

#[cfg(test)]
pub(crate) mod tests;
