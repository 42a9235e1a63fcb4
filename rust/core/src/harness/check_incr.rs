//! The incremental structural check: what [`Simulator::check_structure`] checks, after one
//! more operation on a state that passed it, rechecking only what the operation touched.
//!
//! The arenas log every slot they hand out for writing, fill or free ([`Arena::track`]).
//! Page tables live in their VMAs, so an operation that changed a process's layout or page
//! table touched its mm or one of its VMAs. The per-process part of the check (invariant 7's
//! layout, the page-table scan of invariant 2, invariant 4) reruns for those processes
//! only; every other process contributes the entries and counts cached from its last scan.
//! A VMA's process is read from the VMA, or for a freed one from the cache (the process it
//! belonged to at the last scan). A chain entry written makes its VMA's process dirty.
//!
//! The object-graph part (pages, swap slots, chains, lists and trees, roots and counters,
//! accounting) involves few objects in a fuzz run and reruns in full, but without the
//! allocations, hash maps and sets of the from-scratch check: scratch vectors indexed by
//! slot, reused from operation to operation. Cached page-table entries are re-verified
//! against their pages every time (a page freed by another process's operation).
//!
//! The check decides only whether the state is broken. When it finds a problem, the
//! from-scratch [`Simulator::check_structure`] runs and its result is returned, so the
//! message is exactly the one the full structural check gives.
//!
//! [`Arena::track`]: crate::state::arena::Arena::track

use crate::error::{Result, SimError};
use crate::policy::{ForkReuse, Linking};
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// A cached page-table entry of a process: the page (with the `page->index` its address
/// gives) or a swap slot.
#[derive(Clone, Copy)]
enum Entry {
    Page(PageId, u64),
    Swap(u32),
}

/// What the last scan of one process found (valid while its mm and VMAs are untouched).
#[derive(Clone, Default)]
struct MmScan {
    /// The mm scanned (a reused slot's new occupant has another generation).
    mm: Option<MmId>,
    entries: Vec<Entry>,
    /// Populated entries of its page tables.
    ptes: u64,
    /// Chain entries of its VMAs.
    chain: usize,
    /// `vma->anon_vma` and the anon_vmas its chains link (with repeats).
    avs: Vec<AnonVmaId>,
}

/// Incremental structural checking of one simulator (see the module documentation).
#[derive(Default)]
pub struct IncrementalCheck {
    /// Per mm slot.
    scans: Vec<MmScan>,
    /// Per VMA slot: the mm slot + 1 of the process it was in at its last scan (0: none).
    owner: Vec<u32>,
    /// Per mm slot: touched since the last check.
    dirty: Vec<bool>,
    /// Per chain entry slot: the anon_vma slot + 1 it was on at the last check (0: none).
    avc_av: Vec<u32>,
    /// Per anon_vma slot: the anon_vma whose interval tree passed validation and has not
    /// been touched since (its own fields, or the chain entries that are its nodes).
    tree_ok: Vec<Option<AnonVmaId>>,
    log: Vec<u32>,
    // Scratch, indexed by slot.
    page_refs: Vec<u32>,
    swap_refs: Vec<u32>,
    av_mark: Vec<u32>,
    av_active: Vec<u32>,
    av_pins: Vec<u32>,
    av_children: Vec<u32>,
    sets: Vec<AnonVmaId>,
    by_av: Vec<(AnonVmaId, u32, u32)>,
    /// Checks where this check saw a problem that the from-scratch check did not (a bug
    /// here; the from-scratch verdict is what counts).
    pub disagreements: u64,
}

/// A problem was found (the from-scratch check says which).
struct Broken;

type Found = std::result::Result<(), Broken>;

fn ensure(ok: bool) -> Found {
    if ok {
        Ok(())
    } else {
        Err(Broken)
    }
}

/// `v[i]`, growing `v` with zeros to hold it.
fn at<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl IncrementalCheck {
    /// Start tracking `sim` (a fresh simulator, or one to check from scratch next time).
    pub fn attach(&mut self, sim: &mut Simulator) {
        for s in &mut self.scans {
            s.mm = None;
        }
        self.owner.iter_mut().for_each(|o| *o = 0);
        self.dirty.iter_mut().for_each(|d| *d = false);
        self.avc_av.iter_mut().for_each(|a| *a = 0);
        self.tree_ok.iter_mut().for_each(|t| *t = None);
        sim.mms.track(true);
        sim.vmas.track(true);
        sim.avs.track(true);
        sim.avcs.track(true);
    }

    /// Check `sim` after an operation (the state before it passed this check or
    /// `check_structure`); the same verdict and message as `sim.check_structure()`.
    pub fn check(&mut self, sim: &mut Simulator) -> Result<()> {
        self.mark(sim);
        if sim.kernel_warning.is_none() && self.verify(sim).is_ok() {
            return Ok(());
        }
        let full = sim.check_structure();
        if full.is_ok() {
            self.disagreements += 1;
            self.attach(sim);
        }
        full
    }

    /// Take note of what the operation touched without checking (the caller checked the
    /// state from scratch, and it passed).
    pub fn note(&mut self, sim: &mut Simulator) {
        self.mark(sim);
    }

    /// Mark the processes whose mm, VMAs or chain entries the operation touched.
    fn mark(&mut self, sim: &mut Simulator) {
        self.log.clear();
        sim.mms.drain_touched(&mut self.log);
        for &s in &self.log {
            *at(&mut self.dirty, s as usize) = true;
        }
        self.log.clear();
        sim.avs.drain_touched(&mut self.log);
        for &s in &self.log {
            if let Some(t) = self.tree_ok.get_mut(s as usize) {
                *t = None;
            }
        }
        // a chain entry written (or filled) stands for its VMA, and is a node of its
        // anon_vma's tree (now, or at the last check)
        self.log.clear();
        sim.avcs.drain_touched(&mut self.log);
        for s in self.log.iter_mut() {
            if let Some(&a) = self.avc_av.get(*s as usize).filter(|&&a| a > 0) {
                if let Some(t) = self.tree_ok.get_mut(a as usize - 1) {
                    *t = None;
                }
            }
            *s = match sim.avcs.handle_at(*s).and_then(|c| sim.avcs.get(c)) {
                Some(avc) => {
                    if let Some(t) = self.tree_ok.get_mut(avc.anon_vma.index() as usize) {
                        *t = None;
                    }
                    avc.vma.index()
                }
                None => u32::MAX,
            };
        }
        sim.vmas.drain_touched(&mut self.log);
        for &s in &self.log {
            if let Some(v) = sim.vmas.handle_at(s).and_then(|v| sim.vmas.get(v)) {
                *at(&mut self.dirty, v.mm.index() as usize) = true;
            }
            if let Some(&o) = self.owner.get(s as usize).filter(|&&o| o > 0) {
                *at(&mut self.dirty, o as usize - 1) = true;
            }
        }
    }

    fn verify(&mut self, sim: &Simulator) -> Found {
        self.page_refs.clear();
        self.page_refs.resize(sim.pages.slots(), 0);
        self.swap_refs.clear();
        self.swap_refs.resize(sim.swap.len(), 0);
        let (mut vmas, mut avcs, mut ptes) = (0usize, 0usize, 0u64);
        self.av_mark.clear();
        self.av_mark.resize(sim.avs.slots(), 0);
        for proc_ in sim.procs.values() {
            ensure(sim.mms.contains(proc_.mm))?;
            let slot = proc_.mm.index() as usize;
            let stale = self.scans.get(slot).is_none_or(|s| s.mm != Some(proc_.mm));
            if stale || self.dirty.get(slot).copied().unwrap_or(false) {
                self.scan(sim, proc_.mm)?;
            }
            let s = &self.scans[slot];
            for &e in &s.entries {
                match e {
                    Entry::Page(page, index) => {
                        ensure(sim.page(page).is_some_and(|pg| pg.index == index))?;
                        self.page_refs[page.index() as usize] += 1;
                    }
                    Entry::Swap(slot) => {
                        ensure((slot as usize) < sim.swap.len())?;
                        self.swap_refs[slot as usize] += 1;
                    }
                }
            }
            vmas += sim.mm(proc_.mm).vmas.len();
            avcs += s.chain;
            ptes += s.ptes;
            for &a in &s.avs {
                if let Some(m) = self.av_mark.get_mut(a.index() as usize) {
                    *m = 1;
                }
            }
        }
        self.dirty.iter_mut().for_each(|d| *d = false);
        self.check_swap(sim)?;
        self.check_pages(sim)?;
        self.check_links(sim)?;
        self.check_roots_and_counters(sim)?;
        self.check_accounting(sim, vmas, avcs, ptes)?;
        ensure(sim.merge_site_ok())
    }

    /// The per-process part for one mm: layout, page-table entries, invariant 4.
    fn scan(&mut self, sim: &Simulator, mm_id: MmId) -> Found {
        let slot = mm_id.index() as usize;
        let mut s = std::mem::take(at(&mut self.scans, slot));
        s.mm = None;
        s.entries.clear();
        s.avs.clear();
        (s.ptes, s.chain) = (0, 0);
        let r = self.scan_into(sim, mm_id, &mut s);
        if r.is_ok() {
            s.mm = Some(mm_id);
        }
        self.scans[slot] = s;
        r
    }

    fn scan_into(&mut self, sim: &Simulator, mm_id: MmId, s: &mut MmScan) -> Found {
        let mm = sim.mm(mm_id);
        let mut prev_end = 0u64;
        self.by_av.clear();
        self.sets.clear();
        for (i, (&key, &v)) in mm.vmas.iter().enumerate() {
            let vma = sim.vmas.get(v).ok_or(Broken)?;
            ensure(vma.mm == mm_id && key == vma.start)?;
            ensure(vma.start % PAGE_SIZE == 0 && vma.end % PAGE_SIZE == 0 && vma.start < vma.end)?;
            ensure(i == 0 || prev_end <= vma.start)?;
            prev_end = vma.end;
            *at(&mut self.owner, v.index() as usize) = mm_id.index() + 1;
            if !vma.ptes.is_empty() {
                for (addr, pte) in vma.ptes.iter() {
                    ensure(addr >= vma.start && addr < vma.end)?;
                    if let Some(slot) = pte.swap_slot() {
                        s.entries.push(Entry::Swap(slot));
                    } else if let Some(page) = pte.page() {
                        s.entries.push(Entry::Page(page, vma.linear_page_index(addr)));
                    }
                }
                s.ptes += vma.ptes.populated();
            }
            s.chain += vma.chain.len();
            s.avs.extend(vma.anon_vma);
            let from = self.sets.len();
            for &c in &vma.chain {
                if let Some(x) = sim.avcs.get(c) {
                    s.avs.push(x.anon_vma);
                    self.sets.push(x.anon_vma);
                }
            }
            // invariant 4: VMAs sharing an anon_vma link the same set of anon_vmas
            if sim.policy.linking == Linking::Chain {
                if let Some(av) = vma.anon_vma {
                    let set = &mut self.sets[from..];
                    set.sort_unstable();
                    let mut n = 0;
                    for j in 0..set.len() {
                        if j == 0 || set[j] != set[n - 1] {
                            set[n] = set[j];
                            n += 1;
                        }
                    }
                    self.sets.truncate(from + n);
                    let (from, to) = (from as u32, (from + n) as u32);
                    match self.by_av.iter().find(|e| e.0 == av) {
                        Some(&(_, a, b)) => {
                            ensure(self.sets[a as usize..b as usize] == self.sets[from as usize..to as usize])?
                        }
                        None => self.by_av.push((av, from, to)),
                    }
                    continue;
                }
            }
            self.sets.truncate(from);
        }
        Ok(())
    }

    fn check_swap(&self, sim: &Simulator) -> Found {
        let mut used = 0u64;
        for (i, s) in sim.swap.iter().enumerate() {
            ensure(s.count == self.swap_refs[i])?;
            if let Some(p) = s.cache {
                ensure(sim.page(p).is_some_and(|pg| pg.swap == Some(i as u32)))?;
            }
            used += u64::from(s.count > 0 || s.cache.is_some());
        }
        ensure(used == sim.swap.used())
    }

    /// Invariant 2 (without the walks) and the leak part of 6, page by page.
    fn check_pages(&mut self, sim: &Simulator) -> Found {
        for id in sim.pages.ids() {
            let Some(pg) = sim.page(id) else { continue };
            let mapped = self.page_refs[id.index() as usize];
            ensure(pg.mapcount == mapped)?;
            if let Some(slot) = pg.swap {
                ensure(sim.swap.get(slot as usize).and_then(|s| s.cache) == Some(id))?;
            }
            ensure(mapped > 0 || pg.swap.is_some_and(|s| sim.swap[s as usize].count > 0))?;
            ensure(sim.avs.contains(pg.mapping))?;
            if let Some(m) = self.av_mark.get_mut(pg.mapping.index() as usize) {
                *m = 1;
            }
        }
        Ok(())
    }

    /// Invariant 3 and the empty-index part of 6, as `check_links`.
    fn check_links(&mut self, sim: &Simulator) -> Found {
        let kind = sim.policy.index;
        for (c, avc) in sim.avcs.iter() {
            *at(&mut self.avc_av, c.index() as usize) = avc.anon_vma.index() + 1;
            let vma = sim.vmas.get(avc.vma).ok_or(Broken)?;
            ensure(vma.chain.iter().filter(|&&x| x == c).count() == 1)?;
            let av = sim.avs.get(avc.anon_vma).ok_or(Broken)?;
            ensure(av.index.entry_fault(kind, c, avc, vma).is_none())?;
        }
        let mut on_lists = 0usize;
        let legacy = sim.policy.linking == Linking::Legacy;
        for (a, av) in sim.avs.iter() {
            // A tree verified since its last change is not verified again.
            let ok = at(&mut self.tree_ok, a.index() as usize);
            if !kind.keyed() || *ok != Some(a) {
                av.index.verify(kind, a, &sim.avcs, &sim.vmas, legacy).map_err(|_| Broken)?;
                if kind.keyed() {
                    *ok = Some(a);
                }
            }
            ensure(!av.index.is_empty() || self.pinned_root(sim, a))?;
            on_lists += av.index.len();
        }
        let mut expected = sim.avcs.len();
        if sim.policy.linking == Linking::Legacy {
            expected = sim.vmas.iter().filter(|(_, v)| v.anon_vma.is_some()).count();
        }
        ensure(on_lists == expected)?;
        for (v, vma) in sim.vmas.iter() {
            for (i, &c) in vma.chain.iter().enumerate() {
                let avc = sim.avcs.get(c).ok_or(Broken)?;
                ensure(avc.vma == v)?;
                // no two entries of one chain link the same anon_vma (chains are short)
                for &d in &vma.chain[..i] {
                    ensure(sim.avcs.get(d).is_some_and(|x| x.anon_vma != avc.anon_vma))?;
                }
            }
            match vma.anon_vma {
                Some(av) => {
                    ensure(sim.avs.contains(av))?;
                    if sim.policy.linking == Linking::Chain {
                        ensure(vma.chain.iter().any(|&c| sim.avcs.get(c).is_some_and(|x| x.anon_vma == av)))?;
                    }
                }
                None => ensure(vma.chain.is_empty())?,
            }
        }
        Ok(())
    }

    /// As `Simulator::pinned_root`: an anon_vma some other anon_vma has as its root.
    fn pinned_root(&self, sim: &Simulator, a: AnonVmaId) -> bool {
        sim.policy.track_root && sim.avs.iter().any(|(c, x)| c != a && x.root == a)
    }

    /// Invariants 3 (one root per chain) and 5 (counters), recounted into slot vectors.
    fn check_roots_and_counters(&mut self, sim: &Simulator) -> Found {
        if !sim.policy.track_root {
            return Ok(());
        }
        let n = sim.avs.slots();
        for v in [&mut self.av_active, &mut self.av_pins, &mut self.av_children] {
            v.clear();
            v.resize(n, 0);
        }
        for (_, vma) in sim.vmas.iter() {
            let mut root = None;
            for x in vma.chain.iter().filter_map(|&c| sim.avcs.get(c)).filter_map(|c| sim.avs.get(c.anon_vma)) {
                ensure(root.is_none_or(|r| r == x.root))?;
                root = Some(x.root);
            }
            if let Some(a) = vma.anon_vma {
                self.av_active[a.index() as usize] += 1;
            }
        }
        for (c, x) in sim.avs.iter() {
            ensure(sim.avs.get(x.root).is_some_and(|r| r.root == x.root))?;
            if x.root != c {
                self.av_pins[x.root.index() as usize] += 1;
            }
            // (a parent freed before its child counts under a handle no live anon_vma has)
            if !x.index.is_empty() && sim.avs.contains(x.parent) {
                self.av_children[x.parent.index() as usize] += 1;
            }
        }
        for (a, x) in sim.avs.iter() {
            let i = a.index() as usize;
            ensure(x.refcount == u32::from(!x.index.is_empty()) + self.av_pins[i])?;
            let (act, kids) = (self.av_active[i], self.av_children[i]);
            ensure(match sim.policy.fork_reuse {
                ForkReuse::Never => true,
                ForkReuse::Degree => x.degree == act + kids,
                ForkReuse::ActiveVmas => (x.num_active_vmas, x.num_children) == (act, kids),
            })?;
        }
        Ok(())
    }

    /// Invariant 6: every live object reachable from a live process, counts agree.
    fn check_accounting(&mut self, sim: &Simulator, vmas: usize, avcs: usize, ptes: u64) -> Found {
        ensure(sim.mms.len() == sim.procs.len())?;
        // anon_vmas reachable: marked by the scans and the pages, then their roots
        let mut reachable = 0usize;
        for (a, x) in sim.avs.iter() {
            if self.av_mark[a.index() as usize] == 1 {
                reachable += 1;
                let r = x.root.index() as usize;
                if sim.avs.contains(x.root) && self.av_mark[r] == 0 {
                    self.av_mark[r] = 2;
                }
            }
        }
        reachable += self.av_mark.iter().filter(|&&m| m == 2).count();
        ensure(vmas == sim.vmas.len() && avcs == sim.avcs.len() && reachable == sim.avs.len())?;
        ensure(ptes == sim.pte_count())?;
        for ((a, f), live) in [
            (sim.mms.alloc_free_counts(), sim.mms.len()),
            (sim.vmas.alloc_free_counts(), sim.vmas.len()),
            (sim.avs.alloc_free_counts(), sim.avs.len()),
            (sim.avcs.alloc_free_counts(), sim.avcs.len()),
            (sim.pages.alloc_free_counts(), sim.pages.len()),
        ] {
            ensure(a - f == live as u64)?;
        }
        Ok(())
    }
}

impl Simulator {
    /// Invariant 7's merge part holds (`check_merge_site` without the message).
    pub(crate) fn merge_site_ok(&self) -> bool {
        !matches!(self.check_merge_site(), Err(SimError::InvariantViolation(_)))
    }
}
