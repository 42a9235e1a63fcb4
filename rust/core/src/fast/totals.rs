//! Grouped totals: the column totals of a batch of full walks, added up anon_vma by
//! anon_vma (the loop interchange of walking every page: a run of pages of one anon_vma
//! enumerates the candidates once and checks each candidate's page table for every page
//! of the run). The figures are those the kernel's per-page walks
//! ([`Simulator::rmap_walk_one`]) add up to; the tests below compare them after every
//! operation of random runs, on randomly corrupted states, and across chunks and threads.

use crate::error::{Result, SimError};
use crate::fast::walk_cache::{Cand, WalkCache};
use crate::mm::rmap::{WalkMode, WalkResult, WalkSink};
use crate::state::interrupt::{self, Meter, Ticker};
use crate::state::objects::*;
use crate::state::pagestore::WalkFields;
use crate::state::sim::Simulator;

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
pub(crate) struct Acc {
    t: WalkTotals,
    h: Hist,
}

impl Acc {
    #[inline]
    pub(crate) fn add(&mut self, w: &WalkResult) {
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
    pub(crate) fn merge(mut self, o: Acc) -> Acc {
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
    pub(crate) fn finish(self) -> WalkTotals {
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

impl Simulator {
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
    ///
    /// Each page walked is one item of `meter`'s progress.
    fn full_totals_by_anon_vma(&self, pages: impl Iterator<Item = WalkFields>, meter: Option<Meter>) -> Result<Acc> {
        let mut acc = Acc::default();
        let mut run: Vec<(PageId, u64)> = Vec::new();
        let mut run_slot: Option<u32> = None;
        let mut run_av: Option<AnonVmaId> = None;
        let mut cache = WalkCache::default();
        let mut ticker = Ticker::metered(meter);
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
                _ => {
                    acc.add(&self.rmap_walk_one(id, WalkMode::Full, |_, _| {})?);
                    ticker.advance(1);
                }
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
                ticker.advance(block.len() as u64);
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
            ticker.advance(1);
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
        let meter = interrupt::expect(fields.as_ref().map_or(self.pages.len(), |f| f.len()) as u64);
        let chunk = |k: usize| {
            let r = k * CHUNK..((k + 1) * CHUNK).min(len);
            match &fields {
                Some(f) => self.full_totals_by_anon_vma(f[r].iter().copied(), meter.clone()),
                None => self.full_totals_by_anon_vma(self.pages.walk_fields(r), meter.clone()),
            }
        };
        if threads == 1 || len <= CHUNK {
            return match &fields {
                Some(f) => self.full_totals_by_anon_vma(f.iter().copied(), meter),
                None => self.full_totals_by_anon_vma(self.pages.walk_fields(0..len), meter),
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
            let meter = interrupt::expect(pages.map_or(self.pages.len(), |p| p.len()) as u64);
            let mut ticker = Ticker::metered(meter);
            match pages {
                None => {
                    for id in self.pages.ids() {
                        ticker.tick()?;
                        acc.add(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                        ticker.advance(1);
                    }
                }
                Some(_) => {
                    for id in self.resolve_page_ids(pages)? {
                        ticker.tick()?;
                        acc.add(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                        ticker.advance(1);
                    }
                }
            }
            return Ok(acc.finish());
        }
        let ids = self.resolve_page_ids(pages)?;
        use rayon::prelude::*;
        let tok = interrupt::token();
        let meter = interrupt::expect(ids.len() as u64);
        let run = || {
            ids.par_iter()
                .with_min_len(4096)
                .try_fold(
                    || (Acc::default(), WalkCache::default(), Ticker::metered(meter.clone())),
                    |(mut acc, mut cache, mut ticker), &id| {
                        tok.check()?;
                        acc.add(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                        ticker.advance(1);
                        ticker.tick()?; // this thread's ticker: it reports, `tok` stops
                        Ok::<_, SimError>((acc, cache, ticker))
                    },
                )
                .map(|r| r.map(|(acc, _, _)| acc))
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

#[cfg(test)]
pub(crate) mod tests;
