//! `mm/mlock.c`: `mlock`, `mlock2(MLOCK_ONFAULT)`, `munlock`, `mlockall`, `munlockall`,
//! and the populate step they share with `MAP_LOCKED`, `mlockall(MCL_FUTURE)`'s later
//! mappings, brk and mremap growth (`__mm_populate` / `populate_vma_page_range`,
//! `mm/gup.c`).
//!
//! What is modelled is what the simulator observes: the `VM_LOCKED` / `VM_LOCKONFAULT`
//! bits of `vm_flags` (so splits and merges, through the same `vma_modify` as mprotect),
//! `mm->def_flags`, the faults that populate a locked range (a private writable mapping
//! is faulted for write, which breaks COW; any other for read; PROT_NONE faults with
//! EFAULT; `VM_LOCKONFAULT` populates nothing), and reclaim's refusal to unmap a page in a
//! locked VMA (`rmap.rs`). There is no LRU, so no unevictable list and no `PG_mlocked`:
//! a page is "evictable again" after munlock only in that walks no longer stop at it.
//! Nothing is counted against `RLIMIT_MEMLOCK` (`mm->locked_vm`): the simulated processes
//! are root (`CAP_IPC_LOCK`), as the live checks under `tests/data/` run.

use crate::error::{Result, SimError};
use crate::mm::mprotect::AtHole;
use crate::state::objects::*;
use crate::state::sim::Simulator;

impl Simulator {
    /// Can a call on `range` (`[start, end)`; `None`: a new mapping) of `pid` fault pages
    /// in (`__mm_populate`)? True when the mm has `VM_LOCKED` in `def_flags`
    /// (`mlockall(MCL_FUTURE)`) or a VMA meeting the range is locked; false for an unknown
    /// pid (the call itself will refuse it). The binding runs such calls with the GIL
    /// released and Ctrl-C polled, as `touch`.
    pub fn may_populate(&self, pid: i64, range: Option<(u64, u64)>) -> bool {
        let Ok(mm) = self.proc_mm(pid) else { return false };
        if self.mm(mm).def_flags & vmflags::LOCKED != 0 {
            return true;
        }
        range.is_some_and(|(start, end)| {
            let end = end.max(start.saturating_add(1));
            self.vmas_in(mm, start, end).into_iter().any(|v| self.vma(v).flags & vmflags::LOCKED != 0)
        })
    }

    /// `mlock(addr, len)` / `mlock2(addr, len, onfault ? MLOCK_ONFAULT : 0)` (`do_mlock`):
    /// round the range out to pages, lock every VMA of it (`apply_vma_lock_flags` →
    /// `mlock_fixup`, splitting and merging like mprotect), then fault it in
    /// (`__mm_populate`; nothing for `onfault`). Errors, as the kernel returns them: a hole
    /// is ENOMEM (`BadAddress`): in strict mode nothing changed; with `holes="kernel"` as
    /// 6.18's `apply_vma_lock_flags` (mm/mlock.c 514-562): no VMA at the start changes
    /// nothing, a later hole leaves the VMAs before it locked, and `do_mlock` (612-657)
    /// then returns without populating anything; a failed split ENOMEM
    /// (`OutOfMemory`); populate errors after the range is locked: PROT_NONE's EFAULT
    /// becomes ENOMEM (`BadAddress`) and a failed page allocation EAGAIN (`TryAgain`),
    /// the range staying locked and the pages faulted so far in place
    /// (`__mlock_posix_error_return`).
    pub fn mlock(&mut self, pid: i64, addr: u64, len: u64, onfault: bool) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        self.check_onfault(onfault, pid, "mlock2's MLOCK_ONFAULT")?;
        let Some((start, end)) = Self::mlock_args(addr, len)? else { return Ok(()) };
        let in_call = |e| Self::in_call(e, "mlock", addr, len);
        self.check_mapped_for(pid, mm, start, end, AtHole::Stop).map_err(in_call)?;
        self.begin_op("mlock");
        let flags = vmflags::LOCKED | if onfault { vmflags::LOCKONFAULT } else { 0 };
        self.apply_vma_lock_flags(mm, start, end, flags).map_err(in_call)?;
        if self.policy.mlock_populates_after {
            self.mm_populate(mm, start, end, false)?;
        }
        Ok(())
    }

    /// `munlock(addr, len)`: clear `VM_LOCKED` / `VM_LOCKONFAULT` over the range
    /// (`apply_vma_lock_flags(start, len, 0)`), re-merging what mlock split. The pages stay
    /// mapped. A hole is ENOMEM (`BadAddress`): nothing changed in strict mode; with
    /// `holes="kernel"` the VMAs before it unlocked, as [`Simulator::mlock`] locks them.
    pub fn munlock(&mut self, pid: i64, addr: u64, len: u64) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        let Some((start, end)) = Self::mlock_args(addr, len)? else { return Ok(()) };
        let in_call = |e| Self::in_call(e, "munlock", addr, len);
        self.check_mapped_for(pid, mm, start, end, AtHole::Stop).map_err(in_call)?;
        self.begin_op("munlock");
        self.apply_vma_lock_flags(mm, start, end, 0).map_err(in_call)
    }

    /// `mlockall(flags)` with `MCL_CURRENT` (`current`), `MCL_FUTURE` (`future`) and
    /// `MCL_ONFAULT` (`onfault`, 4.4+), as `apply_mlockall_flags` does it: `def_flags`
    /// loses its lock bits and, with `future`, gets `VM_LOCKED` (+ `VM_LOCKONFAULT`), so
    /// later mmaps and brk growth are locked (and populated unless on-fault); with
    /// `current` every VMA gets the lock bits (errors ignored), then the whole address
    /// space is populated, errors ignored (`mm_populate(0, TASK_SIZE)`). Neither
    /// `current` nor `future` (flags 0 or `MCL_ONFAULT` alone) is EINVAL.
    pub fn mlockall(&mut self, pid: i64, current: bool, future: bool, onfault: bool) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        self.check_onfault(onfault, pid, "mlockall's MCL_ONFAULT")?;
        if !current && !future {
            return Err(SimError::InvalidArgument(format!(
                "mlockall of pid {pid} needs current=True or future=True (MCL_CURRENT / MCL_FUTURE); {} is EINVAL",
                if onfault { "onfault (MCL_ONFAULT) alone" } else { "no flag" }
            )));
        }
        self.begin_op("mlockall");
        let lock = vmflags::LOCKED | if onfault { vmflags::LOCKONFAULT } else { 0 };
        self.mm_mut(mm).def_flags = if future { lock } else { 0 };
        if !current {
            return Ok(());
        }
        self.apply_to_every_vma(mm, lock)?;
        if self.policy.mlock_populates_after {
            self.mm_populate(mm, 0, u64::MAX, true)?;
        }
        Ok(())
    }

    /// `munlockall()`: `apply_mlockall_flags(0)`: `def_flags` loses its lock bits and every
    /// VMA is unlocked (merging again where it can).
    pub fn munlockall(&mut self, pid: i64) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        self.begin_op("munlockall");
        self.mm_mut(mm).def_flags = 0;
        self.apply_to_every_vma(mm, 0)
    }

    /// A range error of `call(addr, len)`, naming the arguments as given (the range it
    /// names is rounded out to pages).
    fn in_call(e: SimError, call: &str, addr: u64, len: u64) -> SimError {
        match e {
            SimError::BadAddress(m) if m.ends_with("(ENOMEM)") => {
                SimError::BadAddress(format!("{call}(addr={addr:#x}, length={len:#x}): {m}"))
            }
            SimError::BadAddress(m) => {
                SimError::BadAddress(format!("{call}(addr={addr:#x}, length={len:#x}): {m} (ENOMEM)"))
            }
            e => e,
        }
    }

    /// `MLOCK_ONFAULT` / `MCL_ONFAULT` are unknown flag bits (EINVAL) before 4.4.
    fn check_onfault(&self, onfault: bool, pid: i64, what: &str) -> Result<()> {
        if onfault && !self.policy.has_mlock_onfault {
            return Err(SimError::InvalidArgument(format!(
                "onfault=True ({what}) of pid {pid} is EINVAL in era {}: the flag arrived in Linux 4.4",
                self.policy.name
            )));
        }
        Ok(())
    }

    /// `do_mlock`'s range: `len = PAGE_ALIGN(len + offset_in_page(start))`, `start &=
    /// PAGE_MASK` (so an unaligned address is accepted), wrapping as the kernel's unsigned
    /// arithmetic does; an end below the start is EINVAL, an empty range does nothing
    /// (`None`).
    fn mlock_args(addr: u64, len: u64) -> Result<Option<(u64, u64)>> {
        let mask = PAGE_SIZE - 1;
        let start = addr & !mask;
        let rounded = len.wrapping_add(addr & mask).wrapping_add(mask) & !mask;
        let end = start.wrapping_add(rounded);
        if end < start {
            return Err(SimError::InvalidArgument(format!(
                "mlock range addr={addr:#x}, length={len:#x} wraps past the end of the address space (EINVAL)"
            )));
        }
        Ok((end > start).then_some((start, end)))
    }

    /// `apply_vma_lock_flags(start, len, flags)`: each VMA piece of the range gets
    /// `(vm_flags & ~VM_LOCKED_MASK) | flags` through [`Simulator::mlock_fixup`]; a hole
    /// (kernel mode only: strict mode checked the range) is ENOMEM there, the pieces
    /// before it changed (`vma->vm_start != tmp`, and `tmp < end` after the loop).
    fn apply_vma_lock_flags(&mut self, mm: MmId, start: u64, end: u64, flags: u32) -> Result<()> {
        self.for_each_piece(mm, start, end, AtHole::Stop, |s, prev, vma, st, en| {
            let nf = (s.vma(vma).flags & !vmflags::LOCKED_MASK) | flags;
            let (v, changed) = s.mlock_fixup(mm, prev, vma, st, en, nf)?;
            if changed && s.populates_in_fixup(nf) {
                s.populate_vma_page_range(v, st, en)?;
            }
            Ok(v)
        })
    }

    /// `apply_mlockall_flags`'s loop: every VMA, whole, gets `(vm_flags & ~VM_LOCKED_MASK)
    /// | flags`; a failed fixup is ignored ("Ignore errors") and the walk goes on after it.
    fn apply_to_every_vma(&mut self, mm: MmId, flags: u32) -> Result<()> {
        let mut prev = None;
        let mut cur = self.mm(mm).vmas.values().next().copied();
        while let Some(v) = cur {
            let (st, en, f) = {
                let x = self.vma(v);
                (x.start, x.end, x.flags)
            };
            let nf = (f & !vmflags::LOCKED_MASK) | flags;
            let done = match self.mlock_fixup(mm, prev, v, st, en, nf) {
                Ok((d, changed)) => {
                    if changed && self.populates_in_fixup(nf) {
                        let r = self.populate_vma_page_range(d, st, en);
                        if let Err(e @ (SimError::InvariantViolation(_) | SimError::Interrupted)) = r {
                            return Err(e);
                        }
                    }
                    d
                }
                Err(e @ SimError::InvariantViolation(_)) => return Err(e),
                Err(_) => v,
            };
            prev = Some(done);
            cur = self.vma_next(done);
        }
        Ok(())
    }

    /// `mlock_fixup(vma, &prev, start, end, newflags)`: nothing when the flags do not
    /// change; else merge or split like mprotect (`vma_modify_flags` 6.x, `vma_merge` +
    /// `split_vma` before) and set them. Returns the VMA now covering the piece (the new
    /// `prev`) and whether its flags changed.
    fn mlock_fixup(
        &mut self,
        mm: MmId,
        prev: Option<VmaId>,
        vma: VmaId,
        start: u64,
        end: u64,
        newflags: u32,
    ) -> Result<(VmaId, bool)> {
        if self.vma(vma).flags == newflags {
            return Ok((vma, false));
        }
        let prot = self.vma(vma).prot;
        Ok((self.vma_modify(mm, prev, vma, start, end, prot, newflags)?, true))
    }

    /// Before 2.6.38 (knob `mlock_populates_after` off) `mlock_fixup` itself faulted in a
    /// piece it had just locked (`__mlock_vma_pages_range`), so only a piece whose flags
    /// changed is populated, and mlock's loop stops at a populate error.
    fn populates_in_fixup(&self, newflags: u32) -> bool {
        newflags & vmflags::LOCKED != 0 && !self.policy.mlock_populates_after
    }
}
