//! Reverse-map walks of anonymous pages — the read side of `mm/rmap.c`
//! (`page_lock_anon_vma`, `page_referenced_anon`, `rmap_walk_anon`) — and, in the last
//! section, a page's mapping side (`page_add_anon_rmap`, `page_move_anon_rmap`,
//! `page_remove_rmap`).
//!
//! A walk starts at `page->mapping`, takes that anon_vma's lock, enumerates its index
//! (legacy: VMAs; chain eras: chain entries; see [`crate::index::AnonIndex`]) and for
//! every candidate computes `vma_address`; in-range candidates cost a page-table lookup.
//! What each walk paid is returned as one row of [`ScanStats`].
//!
//! # Lock order
//!
//! The kernel nests these locks in this order, outermost first:
//!
//! 1. `mm->mmap_lock` (`mmap_sem` before 5.8) of the address space being changed;
//! 2. the anon_vma lock — the anon_vma's own (≤ 2.6.34) or its root's (2.6.35+): a
//!    spinlock (≤ 2.6.39), a mutex (3.0–3.7), an rwsem (3.8+);
//! 3. the page-table lock of the entries touched.
//!
//! The model runs one operation at a time, so it takes no lock; it records the ones the
//! kernel would take. A write-side operation (fork, mmap, mprotect, munmap, mremap, a
//! fault) is as if it held its mm's `mmap_lock`; each anon_vma lock it would take is
//! counted in `WriteStats::lock_acquire` (`lock_anon_vma_root` keeps a root across a
//! loop and is counted once). A walk holds no `mmap_lock` — reclaim and migration reach
//! a page without knowing its mm — and takes exactly one lock, `page->mapping`'s anon_vma
//! lock (or its root's) for reading from 3.8, exclusively before; each row of
//! [`ScanStats`] names it (`lock_id`, `lock_mode`). Page-table locks are implied by
//! every entry read or written and not recorded.
//!
//! Only the kernel's walk of one page lives here ([`Simulator::rmap_walk_one`], in two
//! steps: `rmap_walk_start` and `rmap_walk_anon`). Walking many pages (`rmap_walk`,
//! `page_referenced`, `walk_totals`, the batch `try_to_unmap`) is machinery in
//! `crate::fast`, which calls these steps and may take shortcuts proven equal to them
//! (a candidate cache, grouped totals).

use crate::error::{Result, SimError};
use crate::policy::{LockKind, LockScope, SwapinTarget};
use crate::state::arena::Id;
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// How far a walk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkMode {
    /// `rmap_walk_anon` (migration's `remove_migration_ptes`, the checker): every
    /// candidate is visited.
    Full,
    /// `page_referenced_anon`: stop as soon as `page_mapcount` mappings were found
    /// (`if (!mapcount) break;`); an unmapped page is not walked at all. A mapping found
    /// in a `VM_LOCKED` VMA also stops it, unreported to the caller (try_to_unmap leaves
    /// it mapped).
    UntilAllFound,
}

/// Lock modes recorded per walk.
pub const LOCK_EXCLUSIVE: u8 = 0;
pub const LOCK_SHARED: u8 = 1;

/// Per-walk statistics, one row per walked page, column-oriented.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub page: Vec<u64>,
    pub anon_vma: Vec<u64>,
    /// Candidate VMAs enumerated (list entries visited).
    pub vmas_visited: Vec<u32>,
    /// Candidates whose range contains the page's index (`vma_address` succeeded).
    pub vmas_in_range: Vec<u32>,
    /// Page-table entries looked up.
    pub ptes_checked: Vec<u32>,
    /// Entries found mapping the page.
    pub mappings_found: Vec<u32>,
    /// `page_mapcount` at walk time (the truth).
    pub mapcount: Vec<u32>,
    /// Interval-tree nodes visited (0 in list eras).
    pub tree_nodes_visited: Vec<u32>,
    /// The lock taken (an anon_vma handle).
    pub lock_id: Vec<u64>,
    pub lock_mode: Vec<u8>,
}

impl ScanStats {
    pub fn with_capacity(n: usize) -> ScanStats {
        ScanStats {
            page: Vec::with_capacity(n),
            anon_vma: Vec::with_capacity(n),
            vmas_visited: Vec::with_capacity(n),
            vmas_in_range: Vec::with_capacity(n),
            ptes_checked: Vec::with_capacity(n),
            mappings_found: Vec::with_capacity(n),
            mapcount: Vec::with_capacity(n),
            tree_nodes_visited: Vec::with_capacity(n),
            lock_id: Vec::with_capacity(n),
            lock_mode: Vec::with_capacity(n),
        }
    }
    pub fn len(&self) -> usize {
        self.page.len()
    }
    pub fn is_empty(&self) -> bool {
        self.page.is_empty()
    }
    pub(crate) fn push(&mut self, w: &WalkResult) {
        self.page.push(w.page);
        self.anon_vma.push(w.anon_vma);
        self.vmas_visited.push(w.vmas_visited);
        self.vmas_in_range.push(w.vmas_in_range);
        self.ptes_checked.push(w.ptes_checked);
        self.mappings_found.push(w.mappings_found);
        self.mapcount.push(w.mapcount);
        self.tree_nodes_visited.push(w.tree_nodes_visited);
        self.lock_id.push(w.lock_id);
        self.lock_mode.push(w.lock_mode);
    }
}

/// One walk's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkResult {
    pub page: u64,
    pub anon_vma: u64,
    pub vmas_visited: u32,
    pub vmas_in_range: u32,
    pub ptes_checked: u32,
    pub mappings_found: u32,
    pub mapcount: u32,
    pub tree_nodes_visited: u32,
    pub lock_id: u64,
    pub lock_mode: u8,
}

/// Where a batch of walks records each walk: per-page rows ([`ScanStats`]) or running
/// totals (`WalkTotals` via `TotalsSink`, in `crate::fast::totals`).
pub trait WalkSink {
    fn record(&mut self, w: &WalkResult);
}

impl WalkSink for ScanStats {
    fn record(&mut self, w: &WalkResult) {
        self.push(w);
    }
}

/// The page one walk looks for.
pub(crate) struct WalkTarget {
    pub(crate) page: PageId,
    pub(crate) index: u64,
    pub(crate) mode: WalkMode,
}

impl WalkTarget {
    /// One candidate VMA (counted as visited): `vma_address`, then the page-table lookup. False when the walk stops here
    /// (`page_referenced` has found all `page_mapcount` mappings).
    #[inline(always)]
    fn visit(
        &self,
        vma_id: VmaId,
        vma: &Vma,
        w: &mut WalkResult,
        remaining: &mut u32,
        on_hit: &mut impl FnMut(VmaId, u64),
    ) -> bool {
        w.vmas_visited += 1;
        let Some(addr) = vma.address_of(self.index) else { return true };
        w.vmas_in_range += 1;
        w.ptes_checked += 1;
        if vma.pte(addr).maps(self.page) {
            w.mappings_found += 1;
            if self.mode == WalkMode::UntilAllFound && vma.flags & vmflags::LOCKED != 0 {
                // folio_referenced_one / try_to_unmap_one (page_referenced_one before
                // 5.x; every era alike): a mapping in a VM_LOCKED VMA ends the walk
                // (`return false` / SWAP_MLOCK) and is not unmapped.
                return false;
            }
            on_hit(vma_id, addr);
            *remaining = remaining.saturating_sub(1);
            if self.mode == WalkMode::UntilAllFound && *remaining == 0 {
                return false;
            }
        }
        true
    }
}

/// What [`Simulator::rmap_walk_start`] leaves to do.
pub(crate) enum WalkStart {
    /// Nothing: the page is not walked (mapcount 0); its row is complete.
    Done(WalkResult),
    /// The candidates are still to visit.
    Walk(Walking),
}

/// A walk whose lock is taken: its row so far, the anon_vma whose candidates it visits,
/// the mappings it has still to find and the page it looks for.
pub(crate) struct Walking {
    pub(crate) w: WalkResult,
    pub(crate) av: AnonVmaId,
    pub(crate) remaining: u32,
    pub(crate) target: WalkTarget,
}

impl Simulator {
    /// `page_lock_anon_vma`: which lock a walk of a page in `av` takes, and how.
    /// (`page_lock_anon_vma_read` from 3.8: the root's rwsem, shared.)
    fn walk_lock(&self, av: AnonVmaId) -> (u64, u8) {
        let id = match self.policy.lock_scope {
            LockScope::PerAnonVma => av,
            LockScope::Root => self.avs.get(av).map_or(av, |a| a.root),
        };
        let mode = match self.policy.lock_kind {
            LockKind::Spin | LockKind::Mutex => LOCK_EXCLUSIVE,
            LockKind::RwSem => LOCK_SHARED,
        };
        (id.to_u64(), mode)
    }

    /// Resolve `page->mapping`, reporting a dangling pointer as the use-after-free the
    /// kernel would suffer.
    pub(crate) fn page_anon_vma(&self, page: PageId, mapping: AnonVmaId, index: u64) -> Result<AnonVmaId> {
        if self.avs.contains(mapping) {
            Ok(mapping)
        } else {
            Err(SimError::InvariantViolation(format!(
                "use-after-free: page {:#x} (index {:#x}) has page->mapping = anon_vma {:#x}, freed by operation #{}",
                page.to_u64(),
                index,
                mapping.to_u64(),
                self.avs.freed_by(mapping).unwrap_or(0)
            )))
        }
    }

    /// Walk one page's rmap (`rmap_walk_anon` / `page_referenced_anon`); `on_hit(vma,
    /// addr)` is called for every mapping found. Not inlined: the batch loops that call
    /// it for their odd pages stay small (inlined there it cost the grouped totals 10 %).
    #[inline(never)]
    pub fn rmap_walk_one(&self, page: PageId, mode: WalkMode, on_hit: impl FnMut(VmaId, u64)) -> Result<WalkResult> {
        match self.rmap_walk_start(page, mode)? {
            WalkStart::Done(w) => Ok(w),
            WalkStart::Walk(s) => self.rmap_walk_anon(s, on_hit),
        }
    }

    /// The first step of a walk: resolve the page and `page->mapping`, and take the lock
    /// (`page_lock_anon_vma`). An unmapped page (say, one left in the swap cache) is not
    /// walked: its row is complete already, and its `page->mapping` may legitimately be
    /// stale.
    #[inline(always)]
    pub(crate) fn rmap_walk_start(&self, page: PageId, mode: WalkMode) -> Result<WalkStart> {
        let Some((mapping, index, mapcount)) = self.pages.walk_get(page, &self.avs) else {
            // page_checked explains why the handle does not resolve.
            return Err(self.page_checked(page).err().unwrap_or_else(|| {
                SimError::StaleHandle(format!("page handle {:#x} does not name a page", page.to_u64()))
            }));
        };
        let mut w = WalkResult { page: page.to_u64(), anon_vma: mapping.to_u64(), ..WalkResult::default() };
        if mapcount == 0 {
            return Ok(WalkStart::Done(w));
        }
        let av = self.page_anon_vma(page, mapping, index)?;
        let (lock_id, lock_mode) = self.walk_lock(av);
        w.mapcount = mapcount;
        w.lock_id = lock_id;
        w.lock_mode = lock_mode;
        Ok(WalkStart::Walk(Walking { w, av, remaining: mapcount, target: WalkTarget { page, index, mode } }))
    }

    /// The second step (`rmap_walk_anon`'s loop): every candidate of the anon_vma's list
    /// (list eras) or interval-tree query (3.7+), each visited by [`WalkTarget::visit`],
    /// until the walk stops. A candidate that is freed is the use-after-free the kernel
    /// would suffer: the walk stops there and reports it.
    #[inline(always)]
    pub(crate) fn rmap_walk_anon(&self, s: Walking, mut on_hit: impl FnMut(VmaId, u64)) -> Result<WalkResult> {
        let Walking { mut w, av, mut remaining, target } = s;
        let Some(anon_vma) = self.avs.get(av) else { return Ok(w) };
        // One candidate: vma_address, then the page-table lookup. Returns false to stop.
        let mut bad: Option<SimError> = None;
        let mut visit = |vma_id: VmaId, w: &mut WalkResult| -> bool {
            let Some(vma) = self.vmas.get(vma_id) else {
                w.vmas_visited += 1;
                bad = Some(SimError::InvariantViolation(format!(
                    "use-after-free: anon_vma {:#x} links VMA {:#x}, freed by operation #{}",
                    av.to_u64(),
                    vma_id.to_u64(),
                    self.vmas.freed_by(vma_id).unwrap_or(0)
                )));
                return false;
            };
            target.visit(vma_id, vma, w, &mut remaining, &mut on_hit)
        };
        w.tree_nodes_visited = anon_vma.index.for_each_candidate(&self.avcs, target.index, |v| visit(v, &mut w));
        if let Some(e) = bad {
            return Err(e);
        }
        Ok(w)
    }

    /// The pages a batch walks: `pages` as handles (each must name a live page), or every
    /// anonymous page.
    pub(crate) fn resolve_page_ids(&self, pages: Option<&[u64]>) -> Result<Vec<PageId>> {
        match pages {
            Some(ps) => {
                let ids: Vec<PageId> = ps.iter().map(|&h| Id::from_u64(h)).collect();
                for &id in &ids {
                    self.page_checked(id)?;
                }
                Ok(ids)
            }
            None => Ok(self.anon_pages()),
        }
    }
}

// ----------------------------------------------------------------------------------------
// Mapping and unmapping one page: the page's side of `mm/rmap.c`
// ----------------------------------------------------------------------------------------

impl Simulator {
    /// `page_add_anon_rmap(page, vma, address)` with 2.6.34-rc4's `exclusive`: one more
    /// mapping. When the page is mapped for the first time (≤ 2.6.35), or is not yet
    /// anonymous (3.0+: `if (PageAnon(page)) return;`), `__page_set_anon_rmap` chooses its
    /// anon_vma: `vma->anon_vma` (2.6.33, 2.6.34-rc1), or unless exclusive the oldest on
    /// the VMA's chain (2.6.34-rc4) / the root (2.6.35+).
    pub(crate) fn page_add_anon_rmap(&mut self, page: PageId, v: VmaId, addr: u64, exclusive: bool) {
        let vma = self.vma(v);
        let own = vma.anon_vma;
        let target = match self.policy.swapin_target {
            SwapinTarget::VmaAnonVma => own,
            _ if exclusive => own,
            SwapinTarget::OldestUnlessExclusive => {
                vma.chain.first().and_then(|&c| self.avcs.get(c)).map(|c| c.anon_vma).or(own)
            }
            SwapinTarget::RootUnlessExclusive => own.and_then(|a| self.avs.get(a)).map(|a| a.root).or(own),
        };
        let index = vma.linear_page_index(addr);
        let keeps = self.policy.swapin_keeps_anon_mapping;
        self.page_update(page, |p| {
            p.mapcount += 1;
            let set = if keeps { !p.anon } else { p.mapcount == 1 };
            if set {
                if let Some(t) = target {
                    p.mapping = t;
                }
                p.index = index;
                p.anon = true;
            }
        });
    }

    /// `page_move_anon_rmap(page, vma, address)` (2.6.34, seed thread patch 3): the page
    /// belongs to this process alone after a COW fault, so point it at the VMA's own
    /// anon_vma; rmap will then not search the parent or siblings for it.
    pub(crate) fn page_move_anon_rmap(&mut self, page: PageId, v: VmaId, addr: u64) {
        let vma = self.vma(v);
        debug_assert_eq!(self.page(page).map(|p| p.index), Some(vma.linear_page_index(addr)));
        if let Some(av) = vma.anon_vma {
            self.page_update(page, |p| p.mapping = av);
        }
    }

    /// `page_remove_rmap` for one present entry: drop a mapcount; a page nobody maps any
    /// more is freed unless the swap cache holds it.
    pub(crate) fn page_remove_rmap(&mut self, page: PageId) {
        if self.pages.add_mapcount(page, -1).is_some() {
            self.maybe_free_page(page);
        }
    }
}
