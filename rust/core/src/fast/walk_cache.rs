//! The walk cache: a batch of walks that keeps meeting one anon_vma enumerates its
//! candidates once ([`WalkCache`]) and visits them as one sequential array. Used only by
//! the batch drivers in `crate::fast` (never by `mm/`); each walk's result is that of
//! the kernel's walk, [`Simulator::rmap_walk_one`], which the tests below check after
//! every operation of random runs in every era.

use crate::error::Result;
use crate::mm::rmap::{WalkMode, WalkResult, WalkStart, WalkTarget};
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// One cached candidate of a [`WalkCache`]: the VMA and, copied out of it, what a visit
/// reads (its page range and, for a dense table, the entries), so that a batch walk reads
/// the candidates as one sequential array instead of two cache lines per VMA.
#[derive(Clone, Copy)]
pub(crate) struct Cand<'a> {
    pub vma: &'a Vma,
    /// The dense table's entries (empty for a paged table: look up through `vma`).
    pub(super) e: &'a [Pte],
    /// `vm_pgoff` and the VMA's length in pages.
    pub(super) pgoff: u64,
    pub(super) pages: u64,
    start: u64,
    /// Position in `e` of the VMA's first page.
    pub(super) first: u64,
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
/// Anything unusual (a freed VMA or tree node, a tree whose size disagrees, a `VM_LOCKED`
/// candidate) leaves the cache unusable for that anon_vma: its pages take the uncached walk.
#[derive(Default)]
pub(crate) struct WalkCache<'a> {
    /// The anon_vma of the previous walk, and how many walks in a row it had.
    last: Option<AnonVmaId>,
    streak: u32,
    /// The anon_vma whose candidates `cands` holds, and whether they may be used.
    built: Option<AnonVmaId>,
    pub(super) usable: bool,
    /// The candidates in walk order.
    pub(super) cands: Vec<Cand<'a>>,
    /// The indices every candidate's interval contains (list eras: all).
    lo: u64,
    hi: u64,
}

impl<'a> WalkCache<'a> {
    /// Enumerate `av`'s candidates (see the type's documentation).
    pub(super) fn build(&mut self, sim: &'a Simulator, av: AnonVmaId) {
        self.built = Some(av);
        self.cands.clear();
        self.usable = false;
        let Some(anon_vma) = sim.avs.get(av) else { return };
        // List: every entry, and every page visits them all. Tree: the nodes in order,
        // and the window of indices every node's interval (and subtree) contains.
        let (mut lo, mut hi) = (0u64, u64::MAX);
        let complete = anon_vma.index.for_each_entry(&sim.avcs, |_, v, node| {
            let Some(vma) = sim.vmas.get(v) else { return false };
            if vma.flags & vmflags::LOCKED != 0 {
                return false; // a locked candidate may stop a walk: the uncached walk handles it
            }
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
    pub(super) fn covers(&self, index: u64) -> bool {
        self.lo <= index && index <= self.hi
    }
}

impl Simulator {
    /// [`Simulator::rmap_walk_one`] for the next page of a batch, with the batch's
    /// [`WalkCache`]: the same walk, the same result. The walk's start (the page, its
    /// lock) is the kernel's; the candidates come from the cache when it holds them for
    /// this page, else from the kernel's enumeration ([`Simulator::rmap_walk_anon`]).
    pub(crate) fn rmap_walk_cached<'a>(
        &'a self,
        page: PageId,
        mode: WalkMode,
        cache: &mut WalkCache<'a>,
        mut on_hit: impl FnMut(VmaId, u64),
    ) -> Result<WalkResult> {
        let s = match self.rmap_walk_start(page, mode)? {
            WalkStart::Done(w) => return Ok(w),
            WalkStart::Walk(s) => s,
        };
        let Some(cands) = cache.candidates(self, s.av, s.target.index) else {
            return self.rmap_walk_anon(s, on_hit);
        };
        let (mut w, mut remaining, target) = (s.w, s.remaining, s.target);
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
        Ok(w)
    }
}

#[cfg(test)]
mod tests;
