//! Attribute changes on existing ranges: `mm/mprotect.c` (`mprotect_fixup`) and
//! `mm/madvise.c` (`madvise_behavior`, `madvise_dontneed`, and `MADV_PAGEOUT`'s reclaim).
//! Both walk the range VMA by VMA and, for each piece, try `vma_merge` with the previous
//! VMA before splitting off the piece.

use crate::error::{Result, SimError};
use crate::mm::rmap::ScanStats;
use crate::mm::vma::{MergeCtx, VmaMerge};
use crate::policy::Holes;
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// What the VMA-by-VMA walk of a kernel-mode range does at a hole (see
/// `Simulator::for_each_piece`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtHole {
    /// mprotect: ENOMEM at the hole.
    Stop,
    /// madvise: carry on, ENOMEM at the end.
    Skip,
}

/// `madvise` advice values the simulator models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    Normal,
    Random,
    Sequential,
    DontNeed,
    DontFork,
    DoFork,
    WipeOnFork,
    KeepOnFork,
    PageOut,
    HugePage,
    NoHugePage,
    DontDump,
    DoDump,
    /// `MADV_FREE` (4.5+, `mm::madv_free`).
    Free,
    /// `MADV_MERGEABLE` / `MADV_UNMERGEABLE` (every era): set / clear `VM_MERGEABLE`
    /// (`ksm_madvise`; see `ksm.rs`).
    Mergeable,
    Unmergeable,
}

impl Advice {
    pub const NAMES: &'static [&'static str] = &[
        "normal",
        "random",
        "sequential",
        "dontneed",
        "dontfork",
        "dofork",
        "wipeonfork",
        "keeponfork",
        "pageout",
        "hugepage",
        "nohugepage",
        "dontdump",
        "dodump",
        "free",
        "mergeable",
        "unmergeable",
    ];

    pub fn parse(s: &str) -> Result<Advice> {
        Ok(match s {
            "normal" => Advice::Normal,
            "random" => Advice::Random,
            "sequential" => Advice::Sequential,
            "dontneed" => Advice::DontNeed,
            "dontfork" => Advice::DontFork,
            "dofork" => Advice::DoFork,
            "wipeonfork" => Advice::WipeOnFork,
            "keeponfork" => Advice::KeepOnFork,
            "pageout" => Advice::PageOut,
            "hugepage" => Advice::HugePage,
            "nohugepage" => Advice::NoHugePage,
            "dontdump" => Advice::DontDump,
            "dodump" => Advice::DoDump,
            "free" => Advice::Free,
            "mergeable" => Advice::Mergeable,
            "unmergeable" => Advice::Unmergeable,
            _ => {
                return Err(SimError::InvalidArgument(format!(
                    "unknown advice {}; known: {}",
                    crate::error::quote(s),
                    Advice::NAMES.join(", ")
                )))
            }
        })
    }

    /// The new `vm_flags` for the flag-changing advice, or `None` for the others.
    fn new_flags(self, flags: u32) -> Option<u32> {
        use vmflags::*;
        Some(match self {
            Advice::Normal => flags & !(RAND_READ | SEQ_READ),
            Advice::Random => (flags & !SEQ_READ) | RAND_READ,
            Advice::Sequential => (flags & !RAND_READ) | SEQ_READ,
            Advice::DontFork => flags | DONTCOPY,
            Advice::DoFork => flags & !DONTCOPY,
            Advice::WipeOnFork => flags | WIPEONFORK,
            Advice::KeepOnFork => flags & !WIPEONFORK,
            // hugepage_madvise: one clears the other
            Advice::HugePage => (flags & !NOHUGEPAGE) | HUGEPAGE,
            Advice::NoHugePage => (flags & !HUGEPAGE) | NOHUGEPAGE,
            Advice::DontDump => flags | DONTDUMP,
            Advice::DoDump => flags & !DONTDUMP,
            // ksm_madvise: every VMA here is vma_ksm_compatible
            Advice::Mergeable => flags | MERGEABLE,
            Advice::Unmergeable => flags & !MERGEABLE,
            Advice::DontNeed | Advice::PageOut | Advice::Free => return None,
        })
    }
}

/// `(oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) == VM_LOCKED` (private mappings only).
fn x_flags_locked_ro(flags: u32, old_prot: u8) -> bool {
    flags & vmflags::LOCKED != 0 && old_prot & prot::WRITE == 0
}

impl Simulator {
    /// Refuse a range with a hole, before anything changes (strict mode; what the kernel
    /// does instead, and `holes="kernel"` too, is each caller's business: see
    /// [`Simulator::for_each_piece`] and `mremap_check_shrink`).
    pub(crate) fn check_mapped(&self, pid: i64, mm: MmId, addr: u64, end: u64) -> Result<()> {
        let mut cur = addr;
        while cur < end {
            let v = self.find_vma(mm, cur).ok_or_else(|| {
                SimError::BadAddress(format!("address {cur:#x} in [{addr:#x}, {end:#x}) is not mapped in pid {pid}"))
            })?;
            cur = self.vma(v).end;
        }
        Ok(())
    }

    /// The common part of `mprotect_fixup` and `madvise_behavior`: give `[start, end)` of
    /// `vma` the attributes (`prot`, `flags`), merging with neighbours when possible and
    /// splitting otherwise. Returns the VMA now covering the range (the new `prev`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn vma_modify(
        &mut self,
        mm: MmId,
        prev: Option<VmaId>,
        vma: VmaId,
        start: u64,
        end: u64,
        prot: u8,
        flags: u32,
    ) -> Result<VmaId> {
        let (vstart, vpgoff, av) = {
            let x = self.vma(vma);
            if x.prot == prot && x.flags == flags {
                return Ok(vma);
            }
            (x.start, x.pgoff, x.anon_vma)
        };
        let pgoff = vpgoff + ((start - vstart) >> PAGE_SHIFT);
        let ctx = MergeCtx { middle: Some(vma), copied_from: None };
        let merged =
            match self.vma_merge_nomem(&VmaMerge { mm, prev, start, end, prot, flags, anon_vma: av, pgoff, ctx }) {
                // 6.12+ vma_modify: a merge that failed on ENOMEM fails the call (vmg_nomem)
                Err(e @ SimError::OutOfMemory(_)) if self.policy.merge_nomem_fails && self.vmas.contains(vma) => {
                    return Err(e)
                }
                Ok(m) => m,
                Err(_) => None,
            };
        let v = match merged {
            Some(m) => m,
            None => {
                // A merge that failed half way (2.6.3x's case 6: the second pass's importer
                // clone hits ENOMEM after the first pass freed `vma`) leaves the caller
                // holding a freed VMA — a use-after-free in those kernels.
                if !self.vmas.contains(vma) {
                    return Err(SimError::InvariantViolation(format!(
                        "use-after-free: vma_merge failed after freeing the VMA at {start:#x} (case 6 second pass ENOMEM); {} goes on with it",
                        self.op_name
                    )));
                }
                if start != self.vma(vma).start {
                    self.split_vma(vma, start, true)?;
                }
                if end != self.vma(vma).end {
                    self.split_vma(vma, end, false)?;
                }
                vma
            }
        };
        let x = self.vma_mut(v);
        x.prot = prot;
        x.flags = flags;
        self.note_merge(mm, start, end, false);
        Ok(v)
    }

    /// Walk `[start, end)` piece by piece as `sys_mprotect` / `sys_madvise` do, calling
    /// `fixup(prev, vma, piece_start, piece_end)` which returns the new `prev`. In strict
    /// mode the range was checked mapped, so no hole is met. In kernel mode (`holes`)
    /// a hole is handled by `at_hole`: [`AtHole::Stop`] is mprotect's (6.18
    /// `do_mprotect_pkey`, mm/mprotect.c 934-942 and 1000-1001; the same loop in every
    /// era's `sys_mprotect`): ENOMEM at the hole, the pieces before it changed;
    /// [`AtHole::Skip`] is madvise's (6.18 `madvise_walk_vmas`, mm/madvise.c 1618-1692;
    /// every era's `sys_madvise` keeps `unmapped_error`): go on with the next VMA and
    /// return ENOMEM at the end. Either way the error is `BadAddress`. mlock and munlock
    /// walk like mprotect (6.18 `apply_vma_lock_flags`, mm/mlock.c 514-562).
    pub(crate) fn for_each_piece(
        &mut self,
        mm: MmId,
        start: u64,
        end: u64,
        at_hole: AtHole,
        mut fixup: impl FnMut(&mut Self, Option<VmaId>, VmaId, u64, u64) -> Result<VmaId>,
    ) -> Result<()> {
        let hole =
            |a: u64| SimError::BadAddress(format!("address {a:#x} in [{start:#x}, {end:#x}) is not mapped (ENOMEM)"));
        let first = self.find_vma_above(mm, start).filter(|&v| self.vma(v).start < end);
        let Some(mut vma) = first else { return Err(hole(start)) };
        let mut prev = if start > self.vma(vma).start { Some(vma) } else { self.vma_prev(vma) };
        let mut nstart = start;
        let mut unmapped = None;
        loop {
            let vstart = self.vma(vma).start;
            if vstart > nstart {
                if at_hole == AtHole::Stop {
                    return Err(hole(nstart));
                }
                unmapped.get_or_insert(nstart);
                nstart = vstart;
            }
            let tmp = self.vma(vma).end.min(end);
            let p = fixup(self, prev, vma, nstart, tmp)?;
            prev = Some(p);
            nstart = tmp.max(self.vma(p).end.min(end));
            if nstart >= end {
                break;
            }
            match self.vma_next(p) {
                Some(n) if self.vma(n).start < end => vma = n,
                _ => {
                    unmapped.get_or_insert(nstart);
                    break;
                }
            }
        }
        match unmapped {
            Some(a) => Err(hole(a)),
            None => Ok(()),
        }
    }

    /// Where an mprotect or madvise range must be mapped before anything changes: all of
    /// it in strict mode; in kernel mode only mprotect's start (`vma->vm_start > start`
    /// is ENOMEM before the loop, mm/mprotect.c 904-918) — madvise's walk itself reports
    /// a range with no VMA at all (ENOMEM, nothing changed).
    pub(crate) fn check_mapped_for(&self, pid: i64, mm: MmId, addr: u64, end: u64, at_hole: AtHole) -> Result<()> {
        match (self.policy.holes, at_hole) {
            (Holes::Strict, _) => self.check_mapped(pid, mm, addr, end),
            (Holes::Kernel, AtHole::Stop) => self.check_mapped(pid, mm, addr, addr + PAGE_SIZE),
            (Holes::Kernel, AtHole::Skip) => {
                if self.vmas_in(mm, addr, end).is_empty() {
                    return Err(SimError::BadAddress(format!(
                        "nothing is mapped in [{addr:#x}, {end:#x}) of pid {pid} (ENOMEM)"
                    )));
                }
                Ok(())
            }
        }
    }

    /// `mprotect(addr, len, prot)`: `mprotect_fixup` on each VMA piece, then
    /// `change_protection` — private anonymous entries become read-only, so the next write
    /// faults (and reuses or copies the page).
    pub fn mprotect(&mut self, pid: i64, addr: u64, len: u64, prot: u8) -> Result<()> {
        let mm = self.proc_mm(pid)?;
        if prot & !prot::ALL != 0 {
            return Err(SimError::InvalidArgument(format!("bad prot bits {prot:#x}")));
        }
        let end = Self::check_range(addr, len)?;
        self.check_mapped_for(pid, mm, addr, end, AtHole::Stop)?;
        self.begin_op("mprotect");
        self.for_each_piece(mm, addr, end, AtHole::Stop, |s, prev, vma, st, en| {
            if s.vma(vma).prot == prot {
                return Ok(vma);
            }
            let x = s.vma(vma);
            let mut flags = x.flags;
            let old_prot = x.prot;
            if prot & prot::WRITE != 0 {
                // mprotect_fixup charges only if the old flags have none of VM_ACCOUNT,
                // VM_WRITE, VM_HUGETLB, VM_SHARED, VM_NORESERVE (the last since 2.6.29, so
                // every era): a MAP_NORESERVE range made writable stays uncharged.
                if x.prot & prot::WRITE == 0 && x.flags & (vmflags::ACCOUNT | vmflags::NORESERVE) == 0 {
                    flags |= vmflags::ACCOUNT;
                }
            } else if s.policy.mprotect_unaccounts && x.file().is_none() && x.anon_vma.is_none() {
                flags &= !vmflags::ACCOUNT;
            }
            let v = s.vma_modify(mm, prev, vma, st, en, prot, flags)?;
            s.change_protection(v, st, en);
            // 4.5+: a private VM_LOCKED range becoming writable is faulted in for write at
            // once (COW broken); the result is ignored, as mprotect_fixup ignores it.
            let was_locked_ro = x_flags_locked_ro(flags, old_prot);
            if was_locked_ro && prot & prot::WRITE != 0 && s.policy.mprotect_populates_locked {
                let _ = s.populate_vma_page_range(v, st, en);
            }
            Ok(v)
        })
    }

    /// `change_protection` for a private anonymous range: present entries lose write.
    fn change_protection(&mut self, v: VmaId, start: u64, end: u64) {
        self.vma_mut(v).ptes.update_range(start, end, |_, p| {
            if p.page().is_some() {
                *p = p.write_protected();
            }
        });
    }

    /// `madvise(addr, len, advice)`. Flag advice (`normal`, `random`, `sequential`,
    /// `dontfork`, `dofork`, `wipeonfork`, `keeponfork`) splits and re-merges VMAs like
    /// mprotect; `dontneed` zaps the entries; `pageout` reclaims the pages mapped only
    /// here: anon pages through their rmap walks (`try_to_unmap`), then out of the swap
    /// cache, page-cache pages by dropping their entry (`mm/madv_pageout.rs`). Returns the
    /// walks made (empty except for `pageout`).
    pub fn madvise(&mut self, pid: i64, addr: u64, len: u64, advice: Advice) -> Result<ScanStats> {
        let mm = self.proc_mm(pid)?;
        let end = Self::check_range(addr, len)?;
        let missing = match advice {
            Advice::HugePage | Advice::NoHugePage if !self.policy.has_thp_advice => {
                Some("MADV_HUGEPAGE/NOHUGEPAGE arrived in Linux 2.6.38")
            }
            Advice::DontDump | Advice::DoDump if !self.policy.has_dump_advice => {
                Some("MADV_DONTDUMP/DODUMP arrived in Linux 3.4")
            }
            _ => None,
        };
        if let Some(why) = missing {
            return Err(SimError::InvalidArgument(format!(
                "advice {:?} is EINVAL in era {}: {why}",
                format!("{advice:?}").to_lowercase(),
                self.policy.name
            )));
        }
        if matches!(advice, Advice::WipeOnFork | Advice::KeepOnFork) && !self.policy.has_wipeonfork {
            return Err(SimError::InvalidArgument(format!(
                "advice {:?} is EINVAL in era {}: MADV_WIPEONFORK/KEEPONFORK arrived in Linux 4.14",
                format!("{advice:?}").to_lowercase(),
                self.policy.name
            )));
        }
        if advice == Advice::Free && !self.policy.has_madv_free {
            return self.madvise_free_check(pid, mm, addr, end).map(|_| ScanStats::default());
            // the era's EINVAL
        }
        self.check_mapped_for(pid, mm, addr, end, AtHole::Skip)?;
        // The advice that refuses a VMA (EINVAL): strict mode checks the whole range
        // first; the kernel refuses when its walk reaches that VMA, the VMAs before it done.
        let (work_end, refused) = match (self.madvise_refused(pid, mm, addr, end, advice), self.policy.holes) {
            (Some((_, e)), Holes::Strict) => return Err(e),
            (Some((at, e)), Holes::Kernel) => (at.max(addr), Some(e)),
            (None, _) => (end, None),
        };
        self.begin_op("madvise");
        let done = if work_end <= addr || self.vmas_in(mm, addr, work_end).is_empty() {
            Ok(ScanStats::default())
        } else {
            // madvise_vma_behavior: an allocation failure is EAGAIN (mm/madvise.c 1433-1434)
            self.madvise_range(pid, mm, addr, work_end, advice).map_err(|e| match (e, self.policy.holes) {
                (SimError::OutOfMemory(m), Holes::Kernel) => SimError::TryAgain(format!("{m} (madvise: EAGAIN)")),
                (e, _) => e,
            })
        };
        // A hole before the refused VMA is only remembered (ENOMEM); the refusal returns
        // at once with its EINVAL (madvise_walk_vmas, mm/madvise.c 1651-1669).
        match (done, refused) {
            (Ok(_) | Err(SimError::BadAddress(_)), Some(e)) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(stats), None) => self.range_hole(mm, addr, end).map_or(Ok(stats), Err),
        }
    }

    /// The first VMA of `[addr, end)` that the advice refuses with EINVAL, as its start
    /// and the error: a file VMA for `MADV_WIPEONFORK` (`madvise_behavior_valid` +
    /// `madvise_update_vma`) and `MADV_FREE` (`madvise_free_single_vma`); a `VM_LOCKED`
    /// VMA for `MADV_DONTNEED` / `MADV_FREE` (6.18 `madvise_dontneed_free_valid_vma`,
    /// mm/madvise.c 876-901; `madvise_dontneed` / `madvise_free` before 5.18) and
    /// `MADV_PAGEOUT` (`can_madv_lru_vma`, mm/madvise.c 593-596 and 629-635).
    fn madvise_refused(&self, pid: i64, mm: MmId, addr: u64, end: u64, advice: Advice) -> Option<(u64, SimError)> {
        let (file, locked) = match advice {
            Advice::WipeOnFork => (true, false),
            Advice::Free => (true, true),
            Advice::DontNeed | Advice::PageOut => (false, true),
            _ => return None,
        };
        let name = format!("{advice:?}").to_lowercase();
        self.vmas_in(mm, addr, end).into_iter().find_map(|v| {
            let x = self.vma(v);
            let why = if file && x.file().is_some() {
                format!(
                    "needs anonymous memory; [{:#x}, {:#x}) of pid {pid} maps file {}",
                    x.start,
                    x.end,
                    x.file().unwrap_or(0)
                )
            } else if locked && x.flags & vmflags::LOCKED != 0 {
                format!("is EINVAL on the mlocked VMA [{:#x}, {:#x}) of pid {pid} (VM_LOCKED)", x.start, x.end)
            } else {
                return None;
            };
            Some((x.start, SimError::InvalidArgument(format!("advice {name:?} {why}"))))
        })
    }

    /// Kernel mode: the ENOMEM of a range with a hole (`BadAddress` naming its first
    /// unmapped address), or `None` when `[addr, end)` is mapped throughout.
    fn range_hole(&self, mm: MmId, addr: u64, end: u64) -> Option<SimError> {
        let mut cur = addr;
        while cur < end {
            match self.find_vma(mm, cur) {
                Some(v) => cur = self.vma(v).end,
                None => {
                    return Some(SimError::BadAddress(format!(
                        "address {cur:#x} in [{addr:#x}, {end:#x}) is not mapped (ENOMEM)"
                    )))
                }
            }
        }
        None
    }

    /// The advice applied to `[addr, end)` (validated by [`Simulator::madvise`]), the
    /// mapped parts VMA by VMA.
    fn madvise_range(&mut self, pid: i64, mm: MmId, addr: u64, end: u64, advice: Advice) -> Result<ScanStats> {
        let mut stats = ScanStats::default();
        match advice {
            Advice::DontNeed => {
                for v in self.vmas_in(mm, addr, end) {
                    let (s, e) = (self.vma(v).start.max(addr), self.vma(v).end.min(end));
                    self.zap_range(v, s, e);
                }
            }
            Advice::Free => self.madvise_free(mm, addr, end),
            Advice::PageOut => stats = self.madvise_pageout(mm, addr, end)?,
            _ => {
                // hugepage_madvise (2.6.38-4.3): advice whose flag the visited VMA already
                // has is EINVAL, checked VMA by VMA as the madvise loop visits them. The
                // VMAs before it stay changed, and a flagged VMA that an earlier piece
                // merged with (vma_merge's next, then `start = prev->vm_end`) is never
                // visited, so the call succeeds.
                let strict = match advice {
                    Advice::HugePage if self.policy.thp_advice_strict => vmflags::HUGEPAGE,
                    Advice::NoHugePage if self.policy.thp_advice_strict => vmflags::NOHUGEPAGE,
                    _ => 0,
                };
                self.for_each_piece(mm, addr, end, AtHole::Skip, |s, prev, vma, st, en| {
                    let flags = s.vma(vma).flags;
                    if flags & strict != 0 {
                        return Err(SimError::InvalidArgument(format!(
                            "advice {:?} is EINVAL in era {}: [{:#x}, {:#x}) of pid {pid} already has it (until Linux 4.4)",
                            format!("{advice:?}").to_lowercase(),
                            s.policy.name,
                            s.vma(vma).start,
                            s.vma(vma).end
                        )));
                    }
                    let Some(nf) = advice.new_flags(flags) else { return Ok(vma) };
                    if nf == flags {
                        return Ok(vma);
                    }
                    let prot = s.vma(vma).prot;
                    s.vma_modify(mm, prev, vma, st, en, prot, nf)
                })?;
            }
        }
        Ok(stats)
    }
}
