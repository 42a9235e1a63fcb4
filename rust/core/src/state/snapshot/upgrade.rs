//! Reading older snapshot formats: what an old state means in today's terms.

use crate::state::sim::Simulator;

impl Simulator {
    /// A format-2 state in today's terms. Format 2 kept a page's dirtiness only for
    /// lazy-free pages (flag 2: written after `MADV_FREE`, through its one entry or all of
    /// them), and no entry had a dirty bit. So: every present entry of a page that is not
    /// lazy-free becomes dirty (an anonymous page is made by a write fault, and fork copies
    /// the bit); a lazy-free page's entries become dirty exactly when flag 2 was set, which
    /// is then cleared (`PG_dirty` never stays on a lazy-free page). `PG_dirty` of pages
    /// that left the swap cache while mapped was not recorded, and stays clear.
    pub(super) fn upgrade_format_2(&mut self) {
        let ids: Vec<_> = self.vmas.iter().map(|(v, _)| v).collect();
        for v in ids {
            let mut ptes = std::mem::take(&mut self.vma_mut(v).ptes);
            ptes.update_range(0, u64::MAX, |_, p| {
                if let Some(page) = p.page() {
                    let flags = self.pages.lazy(page);
                    if flags & 1 == 0 || flags & 2 != 0 {
                        *p = p.dirtied();
                    }
                }
            });
            self.vma_mut(v).ptes = ptes;
        }
        let written: Vec<_> = self.pages.ids().filter(|&p| self.pages.lazy(p) == 3).collect();
        for page in written {
            self.pages.set_lazy(page, 1);
        }
    }
}

/// An mm's coding. Format 2 had no `def_flags` / `merge_any` (mlock and KSM came after):
/// they read as 0 / off, which is what every mm of such a state had.
impl crate::state::snapshot::Wire for crate::state::objects::Mm {
    fn put(&self, w: &mut crate::state::snapshot::Writer) {
        self.pid.put(w);
        self.start_brk.put(w);
        self.brk.put(w);
        self.def_flags.put(w);
        self.merge_any.put(w);
        self.vmas.put(w);
    }
    fn get(r: &mut crate::state::snapshot::Reader<'_>) -> crate::error::Result<Self> {
        use crate::state::snapshot::Wire;
        let (pid, start_brk, brk) = (u32::get(r)?, u64::get(r)?, u64::get(r)?);
        let (def_flags, merge_any) = if r.ptes_v2 { (0, false) } else { (u32::get(r)?, bool::get(r)?) };
        Ok(crate::state::objects::Mm { pid, start_brk, brk, def_flags, merge_any, vmas: Wire::get(r)? })
    }
}
