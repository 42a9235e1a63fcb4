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

use crate::error::{Result, SimError};
use crate::policy::{LockKind, LockScope, SwapinTarget};
use crate::state::arena::Id;
use crate::state::interrupt::{self, Ticker};
use crate::state::objects::*;
use crate::state::pagestore::WalkFields;
use crate::state::sim::Simulator;

/// How far a walk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkMode {
    /// `rmap_walk_anon` (migration's `remove_migration_ptes`, the checker): every
    /// candidate is visited.
    Full,
    /// `page_referenced_anon`: stop as soon as `page_mapcount` mappings were found
    /// (`if (!mapcount) break;`); an unmapped page is not walked at all.
    UntilAllFound,
}

/// One page's walk and, when asked for, the mappings it found (VMA, address).
pub(crate) type WalkWithHits = (WalkResult, Vec<(VmaId, u64)>);

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
/// totals ([`WalkTotals`] via [`TotalsSink`]).
pub trait WalkSink {
    fn record(&mut self, w: &WalkResult);
}

impl WalkSink for ScanStats {
    fn record(&mut self, w: &WalkResult) {
        self.push(w);
    }
}

/// Accumulates [`WalkTotals`]; [`TotalsSink::finish`] gives them.
#[derive(Default)]
pub struct TotalsSink(Acc);

impl WalkSink for TotalsSink {
    fn record(&mut self, w: &WalkResult) {
        self.0.add(w);
    }
}

impl TotalsSink {
    pub fn finish(self) -> WalkTotals {
        self.0.finish()
    }
}

/// Column totals of a batch of walks, without per-page rows: what a full walk of millions
/// of pages needs when only the aggregate cost matters (no 49-byte row per page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkTotals {
    pub walks: u64,
    pub vmas_visited: u64,
    pub vmas_in_range: u64,
    pub ptes_checked: u64,
    pub mappings_found: u64,
    pub mapcount: u64,
    pub tree_nodes_visited: u64,
    /// `vmas_visited` histogram: `(value, walks)` in increasing value order.
    pub histogram: Vec<(u32, u64)>,
}

/// Histogram accumulator: dense below `DENSE`, sparse above.
#[derive(Default)]
struct Hist {
    dense: Vec<u64>,
    sparse: std::collections::BTreeMap<u32, u64>,
}

impl Hist {
    const DENSE: u32 = 4096;
    #[inline]
    fn add(&mut self, v: u32, n: u64) {
        if v < Self::DENSE {
            if self.dense.len() <= v as usize {
                self.dense.resize(v as usize + 1, 0);
            }
            self.dense[v as usize] += n;
        } else {
            *self.sparse.entry(v).or_insert(0) += n;
        }
    }
    fn merge(mut self, o: Hist) -> Hist {
        for (v, &n) in o.dense.iter().enumerate() {
            if n != 0 {
                self.add(v as u32, n);
            }
        }
        for (v, n) in o.sparse {
            self.add(v, n);
        }
        self
    }
}

/// Running totals plus histogram while walking.
#[derive(Default)]
struct Acc {
    t: WalkTotals,
    h: Hist,
}

impl Acc {
    #[inline]
    fn add(&mut self, w: &WalkResult) {
        let t = &mut self.t;
        t.walks += 1;
        t.vmas_visited += w.vmas_visited as u64;
        t.vmas_in_range += w.vmas_in_range as u64;
        t.ptes_checked += w.ptes_checked as u64;
        t.mappings_found += w.mappings_found as u64;
        t.mapcount += w.mapcount as u64;
        t.tree_nodes_visited += w.tree_nodes_visited as u64;
        self.h.add(w.vmas_visited, 1);
    }
    fn merge(mut self, o: Acc) -> Acc {
        let (t, u) = (&mut self.t, &o.t);
        t.walks += u.walks;
        t.vmas_visited += u.vmas_visited;
        t.vmas_in_range += u.vmas_in_range;
        t.ptes_checked += u.ptes_checked;
        t.mappings_found += u.mappings_found;
        t.mapcount += u.mapcount;
        t.tree_nodes_visited += u.tree_nodes_visited;
        self.h = std::mem::take(&mut self.h).merge(o.h);
        self
    }
    fn finish(self) -> WalkTotals {
        let mut t = self.t;
        t.histogram = self
            .h
            .dense
            .iter()
            .enumerate()
            .filter(|(_, &n)| n != 0)
            .map(|(v, &n)| (v as u32, n))
            .chain(self.h.sparse)
            .collect();
        t
    }
}

/// The page one walk looks for.
struct WalkTarget {
    page: PageId,
    index: u64,
    mode: WalkMode,
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
            on_hit(vma_id, addr);
            *remaining = remaining.saturating_sub(1);
            if self.mode == WalkMode::UntilAllFound && *remaining == 0 {
                return false;
            }
        }
        true
    }
}

/// One cached candidate of a [`WalkCache`]: the VMA and, copied out of it, what a visit
/// reads (its page range and, for a dense table, the entries), so that a batch walk reads
/// the candidates as one sequential array instead of two cache lines per VMA.
#[derive(Clone, Copy)]
pub(crate) struct Cand<'a> {
    pub vma: &'a Vma,
    /// The dense table's entries (empty for a paged table: look up through `vma`).
    e: &'a [Pte],
    /// `vm_pgoff` and the VMA's length in pages.
    pgoff: u64,
    pages: u64,
    start: u64,
    /// Position in `e` of the VMA's first page.
    first: u64,
    pub id: VmaId,
    /// Interval-tree eras: ancestors pending when it is visited.
    pending: u32,
}

impl<'a> Cand<'a> {
    fn new(id: VmaId, vma: &'a Vma, pending: u32) -> Cand<'a> {
        let (e, first) = match vma.ptes.dense_slice() {
            Some((base, e)) => (e, (vma.start >> PAGE_SHIFT).wrapping_sub(base >> PAGE_SHIFT)),
            None => (&[][..], 0),
        };
        Cand { vma, e, pgoff: vma.pgoff, pages: vma.pages(), start: vma.start, first, id, pending }
    }

    /// The entry of the VMA's page `off` (`off < pages`): from the dense array, or
    /// through the VMA for a paged table.
    #[inline(always)]
    fn entry(&self, off: u64) -> Pte {
        match self.e.get(off.wrapping_add(self.first) as usize) {
            Some(&e) => e,
            None if self.e.is_empty() => self.vma.pte(self.start + (off << PAGE_SHIFT)),
            None => Pte::NONE, // a dense table holds every entry of its VMA
        }
    }
}

impl WalkTarget {
    /// [`WalkTarget::visit`] over cached candidates in order, until the walk stops: the
    /// same counters, the same hits, the same stop. The counters live in locals (in
    /// registers) and are added to `w` at the end; kept in `w` they were a store-to-load
    /// chain per candidate. Returns `None` when every candidate was visited, else the
    /// position of the one the walk stopped at. A long list goes through a call of its
    /// own ([`WalkTarget::visit_many_cands`]), so the loop has the registers to itself.
    #[inline(always)]
    fn visit_cands(
        &self,
        cands: &[Cand],
        w: &mut WalkResult,
        remaining: &mut u32,
        on_hit: &mut impl FnMut(VmaId, u64),
    ) -> Option<usize> {
        let (mut in_range, mut found, mut left) = (0u32, 0u32, *remaining);
        let until_found = self.mode == WalkMode::UntilAllFound;
        let mut stop = None;
        for (k, c) in cands.iter().enumerate() {
            let off = self.index.wrapping_sub(c.pgoff);
            if off >= c.pages {
                continue; // vma_address: outside the VMA
            }
            in_range += 1;
            if c.entry(off).maps(self.page) {
                found += 1;
                on_hit(c.id, c.start + (off << PAGE_SHIFT));
                left = left.saturating_sub(1);
                if until_found && left == 0 {
                    stop = Some(k);
                    break;
                }
            }
        }
        w.vmas_visited += stop.map_or(cands.len(), |k| k + 1) as u32;
        w.vmas_in_range += in_range;
        w.ptes_checked += in_range;
        w.mappings_found += found;
        *remaining = left;
        stop
    }

    /// [`WalkTarget::visit_cands`], not inlined.
    #[inline(never)]
    fn visit_many_cands(
        &self,
        cands: &[Cand],
        w: &mut WalkResult,
        remaining: &mut u32,
        on_hit: &mut impl FnMut(VmaId, u64),
    ) -> Option<usize> {
        self.visit_cands(cands, w, remaining, on_hit)
    }
}

/// The candidates of the anon_vma a batch of walks keeps meeting, enumerated once: a run of
/// pages of one anon_vma (the common case in page-store order) then skips the list or tree
/// traversal and the arena lookups of every candidate. Built on the second consecutive
/// page of an anon_vma, so pages in random order pay nothing. The walk order, early stop
/// and every counter are those of the uncached walk:
///
/// * list eras: the list's VMAs in list order;
/// * interval-tree eras: the nodes in order, for pages whose index lies in every node's
///   interval (so the query takes every node). A walk that stops at the k-th node has
///   then entered k + 1 nodes plus the ancestors still waiting for their own turn (those
///   whose left subtree holds it), which the traversal's stack gives.
///
/// Anything unusual (a freed VMA or tree node, a tree whose size disagrees) leaves the
/// cache unusable for that anon_vma: its pages take the uncached walk.
#[derive(Default)]
pub(crate) struct WalkCache<'a> {
    /// The anon_vma of the previous walk, and how many walks in a row it had.
    last: Option<AnonVmaId>,
    streak: u32,
    /// The anon_vma whose candidates `cands` holds, and whether they may be used.
    built: Option<AnonVmaId>,
    usable: bool,
    /// The candidates in walk order.
    cands: Vec<Cand<'a>>,
    /// The indices every candidate's interval contains (list eras: all).
    lo: u64,
    hi: u64,
}

impl<'a> WalkCache<'a> {
    /// Enumerate `av`'s candidates (see the type's documentation).
    fn build(&mut self, sim: &'a Simulator, av: AnonVmaId) {
        self.built = Some(av);
        self.cands.clear();
        self.usable = false;
        let Some(anon_vma) = sim.avs.get(av) else { return };
        // List: every entry, and every page visits them all. Tree: the nodes in order,
        // and the window of indices every node's interval (and subtree) contains.
        let (mut lo, mut hi) = (0u64, u64::MAX);
        let complete = anon_vma.index.for_each_entry(&sim.avcs, |_, v, node| {
            let Some(vma) = sim.vmas.get(v) else { return false };
            let pending = node.map_or(0, |(t, pending)| {
                lo = lo.max(t.start);
                hi = hi.min(t.last).min(t.subtree_last);
                pending
            });
            self.cands.push(Cand::new(v, vma, pending));
            true
        });
        self.lo = lo;
        self.hi = hi;
        self.usable = complete && self.cands.len() == anon_vma.index.len() && lo <= hi;
    }

    /// Note a walk of `av`; the candidates to use for a page at `index`, if cached.
    fn candidates(&mut self, sim: &'a Simulator, av: AnonVmaId, index: u64) -> Option<&[Cand<'a>]> {
        if self.last == Some(av) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.last = Some(av);
            self.streak = 1;
        }
        if self.streak < 2 {
            return None;
        }
        if self.built != Some(av) {
            self.build(sim, av);
        }
        (self.usable && self.covers(index)).then_some(&self.cands[..])
    }

    /// Does a page at `index` visit exactly the cached candidates?
    fn covers(&self, index: u64) -> bool {
        self.lo <= index && index <= self.hi
    }
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

    /// Walk one page's rmap; `on_hit(vma, addr)` is called for every mapping found.
    pub fn rmap_walk_one(&self, page: PageId, mode: WalkMode, on_hit: impl FnMut(VmaId, u64)) -> Result<WalkResult> {
        self.rmap_walk_cached(page, mode, &mut WalkCache::default(), on_hit)
    }

    /// [`Simulator::rmap_walk_one`] for the next page of a batch, with the batch's
    /// [`WalkCache`]: the same walk, the same result.
    pub(crate) fn rmap_walk_cached<'a>(
        &'a self,
        page: PageId,
        mode: WalkMode,
        cache: &mut WalkCache<'a>,
        mut on_hit: impl FnMut(VmaId, u64),
    ) -> Result<WalkResult> {
        let Some((mapping, index, mapcount)) = self.pages.walk_get(page, &self.avs) else {
            // page_checked explains why the handle does not resolve.
            return Err(self.page_checked(page).err().unwrap_or_else(|| {
                SimError::StaleHandle(format!("page handle {:#x} does not name a page", page.to_u64()))
            }));
        };
        let mut w = WalkResult { page: page.to_u64(), anon_vma: mapping.to_u64(), ..WalkResult::default() };
        // page_lock_anon_vma: an unmapped page (say, one left in the swap cache) is not
        // walked; its page->mapping may legitimately be stale.
        if mapcount == 0 {
            return Ok(w);
        }
        let av = self.page_anon_vma(page, mapping, index)?;
        let (lock_id, lock_mode) = self.walk_lock(av);
        w.mapcount = mapcount;
        w.lock_id = lock_id;
        w.lock_mode = lock_mode;
        let mut remaining = mapcount;
        let target = WalkTarget { page, index, mode };
        if let Some(cands) = cache.candidates(self, av, index) {
            let stop = if cands.len() > 8 {
                target.visit_many_cands(cands, &mut w, &mut remaining, &mut on_hit)
            } else {
                target.visit_cands(cands, &mut w, &mut remaining, &mut on_hit)
            };
            if self.policy.index.keyed() {
                // Stopped at the k-th node: the k + 1 nodes entered plus the ancestors
                // still pending.
                w.tree_nodes_visited = match stop {
                    None => cands.len() as u32,
                    Some(k) => k as u32 + 1 + cands[k].pending,
                };
            }
            return Ok(w);
        }
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
        w.tree_nodes_visited = anon_vma.index.for_each_candidate(&self.avcs, index, |v| visit(v, &mut w));
        if let Some(e) = bad {
            return Err(e);
        }
        Ok(w)
    }

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

    /// Walk every page, on `threads` worker threads (0 = all cores, 1 = this thread), each
    /// with its own [`WalkCache`]. Walks are read-only and independent, and results are
    /// gathered in page order, so the output is identical at any thread count.
    pub(crate) fn walk_many<'a>(
        &'a self,
        ids: &[PageId],
        mode: WalkMode,
        threads: usize,
        collect_hits: bool,
    ) -> Result<Vec<WalkWithHits>> {
        let one = |cache: &mut WalkCache<'a>, id: PageId| {
            let mut hits = Vec::new();
            let w = self.rmap_walk_cached(id, mode, cache, |v, a| {
                if collect_hits {
                    hits.push((v, a))
                }
            })?;
            Ok((w, hits))
        };
        let sequential = || {
            let mut cache = WalkCache::default();
            let mut ticker = Ticker::new();
            ids.iter()
                .map(|&id| {
                    ticker.tick()?;
                    one(&mut cache, id)
                })
                .collect()
        };
        if threads == 1 || ids.len() < 2 {
            return sequential();
        }
        use rayon::prelude::*;
        let tok = interrupt::token();
        let run = || {
            ids.par_iter()
                .with_min_len(256)
                .map_init(WalkCache::default, |c, &id| {
                    tok.check()?;
                    one(c, id)
                })
                .collect::<Result<Vec<_>>>()
        };
        if threads == 0 {
            return interrupt::join_polling(run);
        }
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => interrupt::join_polling(|| pool.install(run)),
            Err(_) => sequential(),
        }
    }

    fn walk_batch(&self, pages: Option<&[u64]>, mode: WalkMode, threads: usize) -> Result<ScanStats> {
        let threads = Self::check_threads(threads)?;
        let ids = self.resolve_page_ids(pages)?;
        let mut out = ScanStats::with_capacity(ids.len());
        let sequential = |out: &mut ScanStats| -> Result<()> {
            let mut cache = WalkCache::default();
            let mut ticker = Ticker::new();
            for &id in &ids {
                ticker.tick()?;
                out.push(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
            }
            Ok(())
        };
        if threads == 1 || ids.len() < 2 {
            sequential(&mut out)?;
            return Ok(out);
        }
        use rayon::prelude::*;
        let tok = interrupt::token();
        let run = || {
            ids.par_iter()
                .with_min_len(256)
                .map_init(WalkCache::default, |cache, &id| {
                    tok.check()?;
                    self.rmap_walk_cached(id, mode, cache, |_, _| {})
                })
                .collect::<Result<Vec<_>>>()
        };
        let pool = (threads != 0).then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build());
        let res = match pool {
            None => interrupt::join_polling(run)?,
            Some(Ok(pool)) => interrupt::join_polling(|| pool.install(run))?,
            Some(Err(_)) => {
                sequential(&mut out)?;
                return Ok(out);
            }
        };
        for w in &res {
            out.push(w);
        }
        Ok(out)
    }

    /// `page_referenced` on each page (all anon pages when `None`): kernel-faithful walks
    /// that stop once every mapping was found.
    pub fn page_referenced(&self, pages: Option<&[u64]>) -> Result<ScanStats> {
        self.walk_batch(pages, WalkMode::UntilAllFound, 1)
    }

    /// `page_referenced` on `threads` threads (0 = all cores); same result as sequential.
    pub fn page_referenced_par(&self, pages: Option<&[u64]>, threads: usize) -> Result<ScanStats> {
        self.walk_batch(pages, WalkMode::UntilAllFound, threads)
    }

    /// `rmap_walk` on `threads` threads (0 = all cores); same result as sequential.
    pub fn rmap_walk_par(&self, pages: Option<&[u64]>, threads: usize) -> Result<ScanStats> {
        self.walk_batch(pages, WalkMode::Full, threads)
    }

    /// `rmap_walk` on each page: every candidate is visited.
    pub fn rmap_walk(&self, pages: Option<&[u64]>) -> Result<ScanStats> {
        self.walk_batch(pages, WalkMode::Full, 1)
    }

    /// Full-walk totals of `ids` computed anon_vma by anon_vma: the loop interchange of
    /// walking every page. Consecutive pages (in `ids` order) with the same live
    /// `page->mapping` form a run; the run's candidates are enumerated once and each
    /// candidate's page table is checked for every page of the run. Every figure is the
    /// one the per-page walks ([`Simulator::rmap_walk_one`], [`WalkMode::Full`]) would
    /// add up to:
    ///
    /// * list eras: each page visits every entry of the list, so the run's candidates
    ///   are exactly the per-page candidates;
    /// * interval-tree eras: a page whose index lies in every node's interval visits
    ///   every node (each node's `start <= index <= subtree_last`), so the run's nodes
    ///   are its candidates and `tree_nodes_visited` is the node count. Pages outside
    ///   that common window, and runs much shorter than the tree, are walked one by one.
    ///
    /// Unwalked pages (mapcount 0) and everything unusual go through the per-page walk.
    /// Any error is returned as soon as it is seen; the caller re-runs the per-page walks
    /// to report the first error in page order.
    fn full_totals_by_anon_vma(&self, pages: impl Iterator<Item = WalkFields>) -> Result<Acc> {
        let mut acc = Acc::default();
        let mut run: Vec<(PageId, u64)> = Vec::new();
        let mut run_slot: Option<u32> = None;
        let mut run_av: Option<AnonVmaId> = None;
        let mut cache = WalkCache::default();
        let mut ticker = Ticker::new();
        for (id, slot, index, mapcount) in pages {
            ticker.tick()?;
            if mapcount != 0 && slot.is_some() && slot != run_slot {
                if let Some(av) = run_av {
                    self.full_totals_run(av, &run, &mut cache, &mut acc, &mut ticker)?;
                }
                run.clear();
                run_slot = slot;
                run_av = slot.and_then(|s| self.avs.handle_at(s)).filter(|&a| self.avs.contains(a));
            }
            match run_av {
                Some(_) if mapcount != 0 && slot == run_slot => {
                    acc.t.mapcount += mapcount as u64;
                    run.push((id, index));
                }
                _ => acc.add(&self.rmap_walk_one(id, WalkMode::Full, |_, _| {})?),
            }
        }
        if let Some(av) = run_av {
            self.full_totals_run(av, &run, &mut cache, &mut acc, &mut ticker)?;
        }
        Ok(acc)
    }

    /// `(handle, mapping slot, index, mapcount)` of each of `ids`, for
    /// [`Simulator::full_totals_by_anon_vma`].
    fn walk_fields_of(&self, ids: &[PageId]) -> Result<Vec<WalkFields>> {
        ids.iter()
            .map(|&id| {
                let p = self.page_checked(id)?;
                let slot = self.avs.contains(p.mapping).then(|| p.mapping.index());
                Ok((id, slot, p.index, p.mapcount))
            })
            .collect()
    }

    /// One run of [`Simulator::full_totals_by_anon_vma`]: `run` holds the pages (handle,
    /// index) whose `page->mapping` is the live anon_vma `av`; their mapcounts are already
    /// counted.
    fn full_totals_run<'a>(
        &'a self,
        av: AnonVmaId,
        run: &[(PageId, u64)],
        cache: &mut WalkCache<'a>,
        acc: &mut Acc,
        ticker: &mut Ticker,
    ) -> Result<()> {
        // Enumerating the whole tree pays off only for runs not much shorter than the tree.
        let short = self.policy.index.keyed() && self.avs.get(av).is_some_and(|a| a.index.len() > 4 * run.len() + 16);
        if !short {
            cache.build(self, av);
        }
        if short || !cache.usable {
            // one by one (a freed VMA or tree node makes those walks report it)
            return self.full_totals_window(&[], &[], run, acc, ticker);
        }
        if run.iter().all(|&(_, i)| cache.covers(i)) {
            return self.full_totals_window(run, &cache.cands, &[], acc, ticker);
        }
        let (inside, outside): (Vec<_>, Vec<_>) = run.iter().partition(|&&(_, i)| cache.covers(i));
        self.full_totals_window(&inside, &cache.cands, &outside, acc, ticker)
    }

    /// For one candidate: how many of `pages` fall in its range, and how many of those its
    /// page table maps. The run's pages are consecutive, so a slice of entries is looked
    /// up once and indexed while the pages stay in it. A function of its own so the two
    /// counters stay in registers (inlined into the caller's loop they spilled to memory,
    /// a store-to-load chain per page).
    #[inline(never)]
    fn count_mapped(c: &Cand, pages: &[(PageId, u64)]) -> (u64, u64) {
        let (mut in_range, mut found) = (0u64, 0u64);
        if !c.e.is_empty() {
            let (e, pgoff, n, first) = (c.e, c.pgoff, c.pages, c.first);
            for &(id, index) in pages {
                let off = index.wrapping_sub(pgoff);
                if off >= n {
                    continue;
                }
                in_range += 1;
                if let Some(e) = e.get(off.wrapping_add(first) as usize) {
                    found += e.maps(id) as u64;
                }
            }
            return (in_range, found);
        }
        let vma = c.vma;
        let (mut first, mut slice): (u64, &[Pte]) = (0, &[]);
        for &(id, index) in pages {
            let Some(addr) = vma.address_of(index) else { continue };
            in_range += 1;
            let mut i = (addr.wrapping_sub(first) >> PAGE_SHIFT) as usize;
            if i >= slice.len() {
                (first, slice) = vma.ptes.span(addr).unwrap_or((addr, &[]));
                i = ((addr - first) >> PAGE_SHIFT) as usize;
            }
            if let Some(e) = slice.get(i) {
                found += e.maps(id) as u64;
            }
        }
        (in_range, found)
    }

    /// Add the walks of `pages`, each of which visits exactly `cands` (in a tree era: each
    /// of which lies in every node's interval), then walk `outside` page by page. The
    /// ticker counts a page-table check as 1/16 of a page.
    fn full_totals_window(
        &self,
        pages: &[(PageId, u64)],
        cands: &[Cand],
        outside: &[(PageId, u64)],
        acc: &mut Acc,
        ticker: &mut Ticker,
    ) -> Result<()> {
        if !pages.is_empty() {
            // Pages a block at a time across every candidate, so the block stays in cache
            // (the figures are sums, in any order).
            const BLOCK: usize = 1 << 15;
            let (mut in_range, mut found) = (0u64, 0u64);
            for block in pages.chunks(BLOCK) {
                for c in cands {
                    ticker.tick_by(block.len() as u64 / 16)?;
                    let (r, f) = Self::count_mapped(c, block);
                    in_range += r;
                    found += f;
                }
            }
            let (g, l) = (pages.len() as u64, cands.len() as u64);
            let t = &mut acc.t;
            t.walks += g;
            t.vmas_visited += g * l;
            t.vmas_in_range += in_range;
            t.ptes_checked += in_range;
            t.mappings_found += found;
            if self.policy.index.keyed() {
                t.tree_nodes_visited += g * l;
            }
            acc.h.add(l as u32, g);
        }
        for &(id, index) in outside {
            ticker.tick()?;
            let w = self.rmap_walk_one(id, WalkMode::Full, |_, _| {})?;
            // Its mapcount is already in the totals.
            acc.t.mapcount -= w.mapcount as u64;
            debug_assert_eq!(self.page(id).map(|p| p.index), Some(index));
            acc.add(&w);
        }
        Ok(())
    }

    /// The same walks as [`Simulator::rmap_walk_par`] / [`Simulator::page_referenced_par`]
    /// (by `mode`), keeping only column totals and the `vmas_visited` histogram: memory
    /// stays constant in the number of pages walked. With `pages = None` the live pages
    /// are walked straight from the page arena, in slot order. Full walks are added up
    /// anon_vma by anon_vma (`full_totals_grouped`); the figures are the same.
    pub fn walk_totals(&self, pages: Option<&[u64]>, mode: WalkMode, threads: usize) -> Result<WalkTotals> {
        let threads = Self::check_threads(threads)?;
        if mode == WalkMode::Full {
            match self.full_totals_grouped(pages, threads) {
                Ok(acc) => return Ok(acc.finish()),
                Err(SimError::Interrupted) => return Err(SimError::Interrupted),
                Err(_) => {}
            }
            // An error: the per-page walks report the first one in page order.
            return self.walk_totals_per_page(pages, mode, 1);
        }
        self.walk_totals_per_page(pages, mode, threads)
    }

    /// [`Simulator::full_totals_by_anon_vma`] over all live pages (`None`, in slot order)
    /// or `pages`, split into chunks on `threads` threads. The totals are sums and the
    /// histogram counts, so they do not depend on how the pages are split.
    fn full_totals_grouped(&self, pages: Option<&[u64]>, threads: usize) -> Result<Acc> {
        const CHUNK: usize = 1 << 16;
        let fields = match pages {
            Some(_) => Some(self.walk_fields_of(&self.resolve_page_ids(pages)?)?),
            None => None,
        };
        let len = fields.as_ref().map_or(self.pages.slots(), |f| f.len());
        let chunk = |k: usize| {
            let r = k * CHUNK..((k + 1) * CHUNK).min(len);
            match &fields {
                Some(f) => self.full_totals_by_anon_vma(f[r].iter().copied()),
                None => self.full_totals_by_anon_vma(self.pages.walk_fields(r)),
            }
        };
        if threads == 1 || len <= CHUNK {
            return match &fields {
                Some(f) => self.full_totals_by_anon_vma(f.iter().copied()),
                None => self.full_totals_by_anon_vma(self.pages.walk_fields(0..len)),
            };
        }
        let chunks = len.div_ceil(CHUNK);
        use rayon::prelude::*;
        let tok = interrupt::token();
        let run = || {
            (0..chunks).into_par_iter().map(|k| tok.enter(|| chunk(k))).try_reduce(Acc::default, |a, b| Ok(a.merge(b)))
        };
        if threads == 0 {
            return interrupt::join_polling(run);
        }
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => interrupt::join_polling(|| pool.install(run)),
            Err(_) => self.full_totals_grouped(pages, 1),
        }
    }

    /// Totals of `rmap_walk_one` on every live page, each walk on its own (no
    /// [`WalkCache`]): the reference the batch paths are tested against.
    #[cfg(test)]
    pub(crate) fn walk_totals_uncached(&self, pages: Option<&[u64]>, mode: WalkMode) -> Result<WalkTotals> {
        let mut acc = Acc::default();
        for id in self.resolve_page_ids(pages)? {
            acc.add(&self.rmap_walk_one(id, mode, |_, _| {})?);
        }
        Ok(acc.finish())
    }

    /// [`Simulator::walk_totals`] one page at a time, with a [`WalkCache`] per thread
    /// (`page_referenced` always goes here; full walks too when the grouped computation
    /// met an error).
    pub(crate) fn walk_totals_per_page(
        &self,
        pages: Option<&[u64]>,
        mode: WalkMode,
        threads: usize,
    ) -> Result<WalkTotals> {
        if threads == 1 {
            let mut acc = Acc::default();
            let mut cache = WalkCache::default();
            let mut ticker = Ticker::new();
            match pages {
                None => {
                    for id in self.pages.ids() {
                        ticker.tick()?;
                        acc.add(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                    }
                }
                Some(_) => {
                    for id in self.resolve_page_ids(pages)? {
                        ticker.tick()?;
                        acc.add(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                    }
                }
            }
            return Ok(acc.finish());
        }
        let ids = self.resolve_page_ids(pages)?;
        use rayon::prelude::*;
        let tok = interrupt::token();
        let run = || {
            ids.par_iter()
                .with_min_len(4096)
                .try_fold(
                    || (Acc::default(), WalkCache::default()),
                    |(mut acc, mut cache), &id| {
                        tok.check()?;
                        acc.add(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                        Ok::<_, SimError>((acc, cache))
                    },
                )
                .map(|r| r.map(|(acc, _)| acc))
                .try_reduce(Acc::default, |a, b| Ok(a.merge(b)))
        };
        let acc = if threads == 0 {
            interrupt::join_polling(run)
        } else {
            match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                Ok(pool) => interrupt::join_polling(|| pool.install(run)),
                Err(_) => return self.walk_totals_per_page(pages, mode, 1),
            }
        }?;
        Ok(acc.finish())
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
