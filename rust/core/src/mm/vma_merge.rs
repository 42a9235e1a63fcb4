//! The merge paths of later kernels that `vma.rs` (2.6.34's `vma_merge` / `vma_adjust`
//! structure) hands over to: `vma_merge`'s case 8 as 4.9 and 6.x do it (knob
//! `merge_next_survives`), where the VMA after the range survives, and the 2025 rule's
//! anon_vma of a range mremap copies (`merge_rule=case_2025`).

use crate::error::Result;
use crate::mm::vma::MergeCtx;
use crate::policy::MergeAnonRule;
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

    /// `vma_expand`'s `dup_anon_vma(target, vmg->copied_from)` (the 2025 merge rule,
    /// 61f67c230a5e; 6.18.8 and 6.19, 7.0-rc6 mm/vma.c 1196-1204): before a merge of the
    /// range mremap copies to commits, an unfaulted `target` takes the anon_vma and chain of
    /// the VMA copied from, unless the next VMA it absorbs (`removed`) brings one
    /// (`vma_adjust` imports that). An allocation failure changes nothing but the failed
    /// clone's own cleanup (a stale pointer in 7.0-rc1): the merge is abandoned and
    /// `copy_vma` maps a new VMA instead, as the kernel's does.
    pub(crate) fn dup_copied_anon_vma(&mut self, target: VmaId, removed: Option<VmaId>, ctx: MergeCtx) -> Result<()> {
        let Some(src) = ctx.copied_from else { return Ok(()) };
        if self.policy.merge_rule != MergeAnonRule::Case2025 || removed.is_some_and(|n| self.vma(n).anon_vma.is_some())
        {
            return Ok(());
        }
        self.import_anon_vma(target, src, target)
    }
}
