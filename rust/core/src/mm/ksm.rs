//! The `VM_MERGEABLE` side of `mm/ksm.c`: `prctl(PR_SET_MEMORY_MERGE)` (6.4+,
//! `ksm_enable_merge_any` / `ksm_disable_merge_any`, `MMF_VM_MERGE_ANY`) and the flag a
//! new mapping gets under it (`ksm_vma_flags` 6.16+, `ksm_add_vma` 6.4–6.15).
//! `MADV_MERGEABLE` / `MADV_UNMERGEABLE` (`ksm_madvise`) are flag advice in
//! `mprotect.rs`.
//!
//! Only the flag is modelled, and with it its effect on splits and merges (it is part of
//! every `vm_flags` comparison). There is no KSM daemon (`ksmd`): no page is ever merged,
//! so `MADV_UNMERGEABLE` has no pages to break out again (`unmerge_ksm_pages`). Every VMA
//! the simulator can make (private anonymous or private file) is KSM-compatible
//! (`vma_ksm_compatible` refuses shared, `VM_PFNMAP`/`VM_IO`/`VM_MIXEDMAP`, hugetlb, DAX
//! and droppable mappings, none of which exist here), so no advice is ever ignored and
//! none is EINVAL (only a kernel built without `CONFIG_KSM` refuses it).

use crate::error::{Result, SimError};
use crate::policy::MemoryMerge;
use crate::state::objects::*;
use crate::state::sim::Simulator;

impl Simulator {
    /// `prctl(PR_SET_MEMORY_MERGE, enable)` (6.4+, EINVAL before). On: unless the mm
    /// already has `MMF_VM_MERGE_ANY`, set it and give every VMA `VM_MERGEABLE`
    /// (`ksm_add_vmas`: the flag is set in place, so neighbours that now match do not
    /// merge until a later operation touches them). Off: unless the flag is clear already,
    /// clear `VM_MERGEABLE` from every VMA (`ksm_del_vmas`, MADV_MERGEABLE's too), again
    /// without merging, and clear `MMF_VM_MERGE_ANY`. Fork and exec keep the mm's setting.
    pub fn set_memory_merge(&mut self, pid: i64, enable: bool) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        if self.policy.memory_merge == MemoryMerge::None {
            return Err(SimError::InvalidArgument(format!(
                "prctl(PR_SET_MEMORY_MERGE, enable={}) of pid {pid} is EINVAL in era {}: it arrived in Linux 6.4",
                if enable { "True" } else { "False" },
                self.policy.name
            )));
        }
        if self.mm(mm).merge_any == enable {
            return Ok(());
        }
        self.begin_op("memory_merge");
        self.mm_mut(mm).merge_any = enable;
        let vmas: Vec<VmaId> = self.mm(mm).vmas.values().copied().collect();
        for v in vmas {
            let x = self.vma_mut(v);
            if enable {
                x.flags |= vmflags::MERGEABLE;
            } else {
                x.flags &= !vmflags::MERGEABLE;
            }
        }
        Ok(())
    }

    /// Is `MMF_VM_MERGE_ANY` set for `pid` (`prctl(PR_GET_MEMORY_MERGE)`)?
    pub fn memory_merge(&self, pid: i64) -> Result<bool> {
        Ok(self.mm(self.proc_mm(pid)?).merge_any)
    }

    /// `ksm_vma_flags(mm, file, vm_flags)` (6.16+): the flags of a new mapping of `mm`,
    /// with `VM_MERGEABLE` when the mm merges any, before the merge attempt.
    pub(crate) fn ksm_vma_flags(&self, mm: MmId, flags: u32) -> u32 {
        if self.mm(mm).merge_any && self.policy.memory_merge == MemoryMerge::BeforeMerge {
            flags | vmflags::MERGEABLE
        } else {
            flags
        }
    }

    /// `ksm_add_vma(vma)` (6.4–6.15): after a new mapping was merged or linked, the VMA now
    /// covering `addr` gets `VM_MERGEABLE` when the mm merges any. So the new range merged
    /// only with a neighbour without the flag, and the merged VMA has it afterwards (a new
    /// VMA beside a `VM_MERGEABLE` one stays apart: the bug 6.16 fixed). The merge check of
    /// invariant 7 forgets this mapping's site, decided with the flags before.
    pub(crate) fn ksm_add_vma(&mut self, mm: MmId, addr: u64) {
        if !self.mm(mm).merge_any || self.policy.memory_merge != MemoryMerge::AfterMerge {
            return;
        }
        if let Some(v) = self.find_vma(mm, addr) {
            self.vma_mut(v).flags |= vmflags::MERGEABLE;
            let (s, e) = (self.vma(v).start, self.vma(v).end);
            self.forget_merge_sites(mm, s, e);
        }
    }
}
