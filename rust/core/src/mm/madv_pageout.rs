//! `MADV_PAGEOUT` (5.4+): `madvise_pageout` and its page-table walk
//! `madvise_cold_or_pageout_pte_range` (mm/madvise.c, 6.18 lines 356-568 and 629-652).
//!
//! The walk visits the present entries of the range. It leaves alone the zero page
//! (`vm_normal_folio` gives none) and every folio mapped more than once anywhere
//! (`folio_mapcount(folio) != folio_nr_pages(folio)`: "do not interfere with other
//! mappings"), and isolates the rest for `reclaim_pages`, which unmaps them
//! (`try_to_unmap`) and frees them: an anon page goes to swap, a page-cache page of a
//! file mapping (clean: the files are never written through a private mapping) is simply
//! dropped, so its entry is gone and the next access faults it in again.
//!
//! A page-cache page is paged out only when the caller could open the file for writing
//! (`can_do_file_pageout`: the inode's owner, `CAP_FOWNER`, or write permission); rmapsim
//! has no credentials and takes the caller to be the file's owner (as the root of
//! `validate-kernel --fuzz` is). A file's page is named by the file and its page offset;
//! in a file VMA the zero-page entry stands for the page-cache page a read fault mapped.

use crate::error::Result;
use crate::mm::rmap::ScanStats;
use crate::state::objects::*;
use crate::state::sim::Simulator;
use std::collections::HashMap;

impl Simulator {
    /// `madvise_pageout` for the mapped parts of `[addr, end)` of `mm`: the anon pages
    /// this process maps exclusively go through their rmap walks (`try_to_unmap`) and
    /// out of the swap cache; the page-cache pages mapped nowhere else are dropped
    /// (`madvise_pageout_file`). Returns the walks made.
    pub(crate) fn madvise_pageout(&mut self, mm: MmId, addr: u64, end: u64) -> Result<ScanStats> {
        let mut stats = ScanStats::default();
        let mut victims = Vec::new();
        for v in self.vmas_in(mm, addr, end) {
            let vma = self.vma(v);
            let (s, e) = (vma.start.max(addr), vma.end.min(end));
            for (_, pte) in vma.ptes.range(s, e) {
                // MADV_PAGEOUT leaves pages that may be shared alone.
                if let Some(p) = pte.page().filter(|&p| self.pages.mapcount(p) == Some(1)) {
                    victims.push(p);
                }
            }
        }
        for p in victims {
            self.try_to_unmap_one_page(p, &mut stats)?;
            if self.pages.mapcount(p) == Some(0) {
                self.delete_from_swap_cache(p);
            }
        }
        self.madvise_pageout_file(mm, addr, end);
        Ok(stats)
    }

    /// The page-cache side of `madvise_cold_or_pageout_pte_range`: a file page mapped in
    /// `[addr, end)` of `mm` and by no other entry of any process (`folio_mapcount` 1)
    /// is reclaimed, its one entry removed. A page another process maps too, or this
    /// one at a second address, stays.
    fn madvise_pageout_file(&mut self, mm: MmId, addr: u64, end: u64) {
        // (file, page offset) -> where this range maps it
        let mut here: HashMap<(u32, u64), (VmaId, u64)> = HashMap::new();
        for v in self.vmas_in(mm, addr, end) {
            let vma = self.vma(v);
            let Some(f) = vma.file() else { continue };
            let (s, e) = (vma.start.max(addr), vma.end.min(end));
            for (a, pte) in vma.ptes.range(s, e) {
                if pte.is_zero() {
                    here.insert((f, vma.pgoff + (a - vma.start) / PAGE_SIZE), (v, a));
                }
            }
        }
        if here.is_empty() {
            return;
        }
        let mut files: Vec<u32> = here.keys().map(|&(f, _)| f).collect();
        files.sort_unstable();
        files.dedup();
        let mut mapcount: HashMap<(u32, u64), u32> = HashMap::new();
        for (_, m) in self.mms.iter() {
            for &v in m.vmas.values() {
                let vma = self.vma(v);
                let Some(f) = vma.file().filter(|f| files.contains(f)) else { continue };
                for (a, pte) in vma.ptes.range(vma.start, vma.end) {
                    let key = (f, vma.pgoff + (a - vma.start) / PAGE_SIZE);
                    if pte.is_zero() && here.contains_key(&key) {
                        *mapcount.entry(key).or_default() += 1;
                    }
                }
            }
        }
        let mut gone: Vec<(VmaId, u64)> =
            here.iter().filter(|(k, _)| mapcount.get(k) == Some(&1)).map(|(_, &at)| at).collect();
        gone.sort_unstable_by_key(|&(v, a)| (v.to_u64(), a));
        for (v, a) in gone {
            self.zap_range(v, a, a + PAGE_SIZE);
        }
    }
}
