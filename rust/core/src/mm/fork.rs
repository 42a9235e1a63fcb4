//! Process lifecycle: `kernel/fork.c` (`dup_mmap`), `mm/mmap.c` (`exit_mmap`) and exec's
//! switch to a fresh mm.

use std::collections::BTreeMap;

use crate::error::{Result, SimError};
use crate::policy::Linking;
use crate::state::interrupt;
use crate::state::objects::*;
use crate::state::sim::{AllocSite, Process, Simulator, RESERVED_PIDS};

impl Simulator {
    /// `mm_alloc`: a new, empty address space.
    fn mm_alloc(&mut self, pid: u32, site: AllocSite) -> Result<MmId> {
        self.may_alloc(site)?;
        Ok(self.mms.insert(Mm { pid, vmas: BTreeMap::new(), start_brk: 0, brk: 0, def_flags: 0, merge_any: false }))
    }

    /// Pids still free below `pid_max` (`alloc_pid`'s range: from 1 until allocation first
    /// wraps, then from `RESERVED_PIDS`).
    pub fn free_pids(&self) -> u64 {
        let min = if self.next_pid > RESERVED_PIDS { RESERVED_PIDS } else { 1 };
        let in_range = self.procs.range(min..self.pid_max).count() as u64;
        (self.pid_max - min) as u64 - in_range
    }

    /// `alloc_pid` (`idr_alloc_cyclic` from the last pid + 1, wrapping to `RESERVED_PIDS`
    /// at `pid_max`): the pid the next process gets, or EAGAIN when none is free. Checked
    /// before anything is allocated (the kernel allocates the pid after `copy_mm` and
    /// unwinds; the state is the same, but no allocation attempts are counted here).
    fn alloc_pid(&self) -> Result<u32> {
        let min = if self.next_pid > RESERVED_PIDS { RESERVED_PIDS } else { 1 };
        let start = if (min..self.pid_max).contains(&self.next_pid) { self.next_pid } else { min };
        let first_free = |lo: u32, hi: u32| (lo..hi).find(|p| !self.procs.contains_key(p));
        if let Some(pid) = first_free(start, self.pid_max).or_else(|| first_free(min, start)) {
            return Ok(pid);
        }
        Err(SimError::TryAgain(format!(
            "no free pid below pid_max {} ({} processes live): fork fails with EAGAIN; nothing changed",
            self.pid_max,
            self.procs.len()
        )))
    }

    /// A new process with an empty address space (its parent is "pid 0").
    pub fn spawn(&mut self) -> Result<u32> {
        let pid = self.alloc_pid()?;
        self.begin_op("spawn");
        let mm = self.mm_alloc(pid, AllocSite::MmSpawn)?;
        self.next_pid = pid + 1;
        self.procs.insert(pid, Process { mm, parent: 0 });
        Ok(pid)
    }

    /// `fork()`: `dup_mm` → `dup_mmap`. Returns the child's pid. On ENOMEM the half-built
    /// child mm is torn down (`mmput` → `exit_mmap`) and no process is created.
    pub fn fork(&mut self, pid: i64) -> Result<u32> {
        let parent_mm = self.proc_mm(pid)?;
        let child = self.alloc_pid()?;
        self.begin_op("fork");
        let mm = self.mm_alloc(child, AllocSite::MmFork)?;
        // dup_mm copies the mm_struct, heap bounds included; mm_init keeps MMF_VM_MERGE_ANY
        // (MMF_INIT_MASK) but none of def_flags' lock bits (VM_INIT_DEF_MASK).
        let (sb, b) = (self.mm(parent_mm).start_brk, self.mm(parent_mm).brk);
        (self.mm_mut(mm).start_brk, self.mm_mut(mm).brk) = (sb, b);
        self.mm_mut(mm).merge_any = self.mm(parent_mm).merge_any;
        if let Err(e) = self.dup_mmap(mm, parent_mm) {
            self.exit_mmap(mm);
            self.mms.remove(mm, self.op);
            return Err(e);
        }
        self.next_pid = child + 1;
        self.procs.insert(child, Process { mm, parent: pid as u32 });
        Ok(child)
    }

    /// `n` forks of `pid`, in order. Stops at the first failure (the children created so
    /// far stay, as they would in the kernel) and reports how many were made. An interrupt
    /// (see `interrupt`) stops it between two forks: the children forked so far exist.
    pub fn fork_many(&mut self, pid: i64, n: i64) -> Result<Vec<u32>> {
        self.proc_mm(pid)?;
        if n < 1 {
            return Err(SimError::InvalidArgument(format!("fork_many needs n >= 1, got {n}")));
        }
        let free = self.free_pids();
        if n as u64 > free {
            return Err(SimError::TryAgain(format!(
                "fork_many({pid}, {n}): only {free} pids are free below pid_max {}: the kernel's fork would fail \
                 with EAGAIN after those; nothing was forked",
                self.pid_max
            )));
        }
        let mut out = Vec::with_capacity(n as usize);
        let meter = interrupt::expect(n as u64);
        for _ in 0..n {
            interrupt::check()?;
            match self.fork(pid) {
                Ok(c) => {
                    out.push(c);
                    if let Some(m) = &meter {
                        m.advance(1);
                    }
                }
                Err(SimError::OutOfMemory(m)) => {
                    return Err(SimError::OutOfMemory(format!(
                        "{m}; fork_many created {} of {n} children before failing: {:?}",
                        out.len(),
                        out
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `dup_mmap(mm, oldmm)` (2.6.33 / 2.6.34): copy each VMA not marked `DONTCOPY`, link
    /// it to the anon rmap (`anon_vma_link` / `anon_vma_fork`), insert it, then copy its
    /// page-table entries (`copy_page_range`).
    fn dup_mmap(&mut self, mm: MmId, oldmm: MmId) -> Result<()> {
        let parents: Vec<VmaId> = self.mm(oldmm).vmas.values().copied().collect();
        for mpnt in parents {
            let (start, end, pgoff, prot, flags, av) = {
                let v = self.vma(mpnt);
                (v.start, v.end, v.pgoff, v.prot, v.flags, v.anon_vma)
            };
            if flags & vmflags::DONTCOPY != 0 {
                continue;
            }
            // the child's copy is never locked (vm_flags_clear(tmp, VM_LOCKED_MASK))
            let child_flags = flags & !vmflags::LOCKED_MASK;
            let tmp = self.vma_alloc(AllocSite::VmaFork, mm, start, end, pgoff, prot, child_flags)?;
            let wipe = flags & vmflags::WIPEONFORK != 0;
            if !wipe {
                match self.policy.linking {
                    Linking::Legacy => {
                        self.vma_mut(tmp).anon_vma = av;
                        self.anon_vma_link(tmp);
                    }
                    Linking::Chain => {
                        if let Err(e) = self.anon_vma_fork(tmp, mpnt) {
                            self.remove_vma(tmp);
                            return Err(e);
                        }
                    }
                }
            }
            self.mm_mut(mm).vmas.insert(start, tmp);
            if !wipe {
                self.copy_page_range(tmp, mpnt);
            }
        }
        Ok(())
    }

    /// `copy_page_range(dst_vma, src_vma)`: nothing for a VMA without anon_vma (its
    /// faults will fill it again); otherwise share every entry copy-on-write: present
    /// pages are write-protected in both and gain a mapcount.
    fn copy_page_range(&mut self, dst: VmaId, src: VmaId) {
        if self.vma(src).anon_vma.is_none() || self.vma(src).ptes.is_empty() {
            return;
        }
        let mut ptes = std::mem::take(&mut self.vma_mut(src).ptes);
        let mut populated = 0u64;
        ptes.update_range(0, u64::MAX, |_, p| {
            populated += 1;
            if let Some(page) = p.page() {
                *p = p.write_protected();
                self.pages.add_mapcount(page, 1);
            } else if let Some(slot) = p.swap_slot() {
                self.swap_duplicate(slot);
            }
        });
        self.vma_mut(dst).ptes = ptes.clone();
        self.vma_mut(src).ptes = ptes;
        self.ptes_added(populated);
    }

    /// `exit_mmap`: zap every VMA, unlink the anon rmap in address order
    /// (`free_pgtables`), free the VMAs. The mm itself is left to the caller.
    pub(crate) fn exit_mmap(&mut self, mm: MmId) {
        let doomed: Vec<VmaId> = std::mem::take(&mut self.mm_mut(mm).vmas).into_values().collect();
        self.unmap_region(&doomed);
    }

    /// `exit()`: tear the address space down and remove the process. Its children are
    /// reparented to pid 0.
    pub fn exit(&mut self, pid: i64) -> Result<()> {
        self.exit_many(&[pid])
    }

    /// `exit()` of each of `pids`, in order: the same as calling [`Simulator::exit`] on
    /// each, with every pid validated first (each must be live, none repeated), so a bad
    /// list changes nothing. Children of the exiting processes are reparented once, at
    /// the end. An interrupt (see `interrupt`) stops it between two exits: the processes
    /// before have exited (their children reparented), the rest are untouched.
    pub fn exit_many(&mut self, pids: &[i64]) -> Result<()> {
        let mut mms = Vec::with_capacity(pids.len());
        let mut seen = std::collections::HashSet::with_capacity(pids.len());
        for &pid in pids {
            mms.push(self.proc_mm(pid)?);
            if !seen.insert(pid) {
                return Err(SimError::InvalidArgument(format!("pid {pid} appears more than once in pids")));
            }
        }
        let mut stopped = Ok(());
        let meter = interrupt::expect(pids.len() as u64);
        for (k, (&pid, mm)) in pids.iter().zip(mms).enumerate() {
            if let Err(e) = interrupt::check() {
                seen = pids[..k].iter().copied().collect();
                stopped = Err(e);
                break;
            }
            self.begin_op("exit");
            self.exit_mmap(mm);
            self.mms.remove(mm, self.op);
            self.procs.remove(&(pid as u32));
            if let Some(m) = &meter {
                m.advance(1);
            }
        }
        for p in self.procs.values_mut() {
            if seen.contains(&(p.parent as i64)) {
                p.parent = 0;
            }
        }
        stopped
    }

    /// `execve()`: a fresh mm is allocated (`bprm_mm_init`), then the old one is torn
    /// down (`exec_mmap` → `mmput`). The pid is kept; the new address space is empty.
    pub fn exec(&mut self, pid: i64) -> Result<()> {
        let old = self.proc_mm(pid)?;
        self.begin_op("exec");
        let mm = self.mm_alloc(pid as u32, AllocSite::MmExec)?;
        // mm_init: MMF_VM_MERGE_ANY survives exec, def_flags' lock bits do not
        self.mm_mut(mm).merge_any = self.mm(old).merge_any;
        self.exit_mmap(old);
        self.mms.remove(old, self.op);
        if let Some(p) = self.procs.get_mut(&(pid as u32)) {
            p.mm = mm;
        }
        Ok(())
    }
}
