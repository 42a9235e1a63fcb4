//! The merge paths of later kernels that `vma.rs` (2.6.34's `vma_merge` / `vma_adjust`
//! structure) hands over to: `vma_merge`'s case 8 as 4.9 and 6.x do it (knob
//! `merge_next_survives`), where the VMA after the range survives.

use crate::error::Result;
use crate::state::objects::*;
use crate::state::sim::Simulator;

impl Simulator {
    /// `vma_merge` case 8 from 4.9 (`__vma_adjust`'s `remove_next == 3`, e86f15ee64d8; 6.18
    /// `vma_merge_existing_range`'s merge-right with `__remove_middle`): `next` becomes
    /// `[start, next->vm_end)` at `pgoff` and `middle` (a whole VMA) is freed. Importer
    /// `next`, exporter `middle` (`dup_anon_vma(next, middle)`): the only allocation, before
    /// anything changes. `next`'s chain entries keep their places (re-keyed); `middle`'s go.
    pub(crate) fn merge_next_over(&mut self, middle: VmaId, next: VmaId, start: u64, pgoff: u64) -> Result<()> {
        self.import_anon_vma(next, middle, next)?;
        let mut entries = crate::state::pgtable::PteTable::default();
        self.take_ptes(middle, &mut entries);
        self.take_ptes(next, &mut entries);
        let (mm, mstart, nend) = (self.vma(middle).mm, self.vma(middle).start, self.vma(next).end);
        self.mm_mut(mm).vmas.remove(&mstart);
        self.set_vma_range(next, start, nend, pgoff);
        self.place_ptes(entries, &[next]);
        if self.vma(middle).anon_vma.is_some() {
            self.anon_vma_merge(next, middle);
        }
        self.remove_vma(middle);
        Ok(())
    }
}
