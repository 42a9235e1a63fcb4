//! Batches of walks: the pages of `rmap_walk`, `page_referenced` and `try_to_unmap`
//! walked one after another or on worker threads, each thread with its own
//! [`WalkCache`]. The kernel walks one page at a time (`mm/rmap.rs`); these drivers give
//! the same rows in page order at any thread count.

use crate::error::Result;
use crate::fast::walk_cache::WalkCache;
use crate::mm::rmap::{ScanStats, WalkMode, WalkResult, WalkSink};
use crate::state::interrupt::{self, Ticker};
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// One page's walk and, when asked for, the mappings it found (VMA, address).
pub(crate) type WalkWithHits = (WalkResult, Vec<(VmaId, u64)>);

impl Simulator {
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
        let meter = interrupt::expect(ids.len() as u64);
        let sequential = || {
            let mut cache = WalkCache::default();
            let mut ticker = Ticker::metered(meter.clone());
            ids.iter()
                .map(|&id| {
                    ticker.tick()?;
                    ticker.advance(1);
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
                .map_init(
                    || (WalkCache::default(), Ticker::metered(meter.clone())),
                    |(c, ticker), &id| {
                        tok.check()?;
                        ticker.advance(1);
                        ticker.tick()?; // this thread's ticker: it reports, `tok` stops
                        one(c, id)
                    },
                )
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
        let meter = interrupt::expect(ids.len() as u64);
        let sequential = |out: &mut ScanStats| -> Result<()> {
            let mut cache = WalkCache::default();
            let mut ticker = Ticker::metered(meter.clone());
            for &id in &ids {
                ticker.tick()?;
                out.push(&self.rmap_walk_cached(id, mode, &mut cache, |_, _| {})?);
                ticker.advance(1);
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
                .map_init(
                    || (WalkCache::default(), Ticker::metered(meter.clone())),
                    |(cache, ticker), &id| {
                        tok.check()?;
                        ticker.advance(1);
                        ticker.tick()?; // this thread's ticker: it reports, `tok` stops
                        self.rmap_walk_cached(id, mode, cache, |_, _| {})
                    },
                )
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

    /// `try_to_unmap` (`try_to_unmap_anon`, 2.6.33 / 2.6.34) on each page (every anon page
    /// when `None`): put the page in the swap cache, then walk its rmap replacing every
    /// entry found with a swap entry, stopping once the page is no longer mapped. A
    /// mapping the walk cannot find stays mapped — the checker reports it.
    pub fn try_to_unmap(&mut self, pages: Option<&[u64]>) -> Result<ScanStats> {
        self.try_to_unmap_par(pages, 1)
    }

    /// `try_to_unmap` with the walks on `threads` threads (0 = all cores). The pages get
    /// their swap slots first, in order; the walks (read-only: one page's walk never
    /// looks at another page's entries) run in parallel; the unmapping is applied in page
    /// order. The result is identical to the sequential one at any thread count.
    pub fn try_to_unmap_par(&mut self, pages: Option<&[u64]>, threads: usize) -> Result<ScanStats> {
        let mut out = ScanStats::default();
        self.try_to_unmap_into(pages, threads, &mut out)?;
        Ok(out)
    }

    /// `try_to_unmap_par` recording each walk in `out` (rows or totals). An interrupt (see
    /// `interrupt`) stops it between two pages: the pages before are unmapped, and some
    /// of the rest may be in the swap cache while still mapped (a state reclaim also
    /// leaves).
    pub fn try_to_unmap_into(&mut self, pages: Option<&[u64]>, threads: usize, out: &mut impl WalkSink) -> Result<()> {
        let threads = Self::check_threads(threads)?;
        let ids = self.resolve_page_ids(pages)?;
        self.begin_op("try_to_unmap");
        let meter = interrupt::expect(ids.len() as u64);
        let mut slots = Vec::with_capacity(ids.len());
        let mut ticker = Ticker::new();
        for &id in &ids {
            ticker.tick()?;
            slots.push(self.swap_slot_for_unmap(id)?);
        }
        // Walks go in chunks so that memory stays bounded for millions of pages; a page's
        // walk does not depend on other pages' unmapping, so chunking changes nothing.
        const CHUNK: usize = 1 << 16;
        let unique = pages.is_none(); // every live page once
        let mut seen = std::collections::HashSet::new();
        for (ids, slots) in ids.chunks(CHUNK).zip(slots.chunks(CHUNK)) {
            let walks = self.walk_many(ids, WalkMode::UntilAllFound, threads, true)?;
            if let Some(m) = &meter {
                m.advance(ids.len() as u64);
            }
            for ((&id, &slot), (w, hits)) in ids.iter().zip(slots).zip(walks) {
                ticker.tick()?;
                let first = unique || seen.insert(id);
                if first && !self.pages.is_lazyfree(id) {
                    out.record(&w);
                    if let Some(slot) = slot {
                        self.unmap_hits(id, slot, &hits);
                    }
                } else if self.pages.contains(id) {
                    // the same page again, or MADV_FREE's lazy-free page (discarded or
                    // re-marked, not swapped): walk it now, as a sequential pass would
                    self.try_to_unmap_one_page(id, out)?;
                } else {
                    // discarded by its earlier visit in this call: nothing left to find
                    out.record(&WalkResult::default());
                }
            }
        }
        Ok(())
    }
}
