//! The invariants of docs/contract.md#invariants, checked from scratch against a brute-force scan of every
//! page table. Nothing here trusts the incremental bookkeeping it checks.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::{Result, SimError};
use crate::mm::rmap::WalkMode;
use crate::policy::{ForkReuse, Linking};
use crate::state::interrupt::{self, Ticker};
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// The brute-force scan's result: every page's mappings as (pid, VMA, address).
/// The brute-force oracle's result: every present entry as (page, pid, vma, addr), sorted
/// by page slot (32 bytes an entry, one allocation for the whole scan).
struct Truth(Vec<(PageId, u32, VmaId, u64)>);

impl Truth {
    /// The entries mapping `page`, in scan order.
    fn get(&self, page: PageId) -> &[(PageId, u32, VmaId, u64)] {
        let lo = self.0.partition_point(|e| e.0.index() < page.index());
        let hi = lo + self.0[lo..].partition_point(|e| e.0.index() == page.index());
        &self.0[lo..hi]
    }
}

impl Simulator {
    fn violation(&self, inv: u8, name: &str, detail: String) -> SimError {
        SimError::InvariantViolation(format!(
            "invariant {inv} ({name}) broken after operation #{} ({}): {detail}",
            self.op, self.op_name
        ))
    }

    /// Run every invariant; the first broken one is returned as `InvariantViolation`.
    pub fn check(&self) -> Result<()> {
        self.check_inner(true)
    }

    /// Every invariant except the rmap walks of invariant 1 (completeness): cheaper, for
    /// checking after every fuzzed operation.
    pub fn check_structure(&self) -> Result<()> {
        self.check_inner(false)
    }

    fn check_inner(&self, walks: bool) -> Result<()> {
        // Long loops below tick an interrupt Ticker (see `interrupt`); read-only, so an
        // interrupted check changes nothing.
        let truth = self.check_layout_and_scan()?;
        self.check_pages(&truth, walks)?;
        interrupt::check()?;
        self.check_links()?;
        interrupt::check()?;
        self.check_roots_and_counters()?;
        interrupt::check()?;
        self.check_same_anon_vma_same_chain()?;
        interrupt::check()?;
        self.check_accounting()?;
        self.check_merge_site()?;
        if let Some(w) = &self.kernel_warning {
            // What the kernel itself warned about (invariant 5's counters, as the kernel
            // checks them when it releases an anon_vma); sticky, like a log line, so a
            // state that looks sound again afterwards still reports it.
            return Err(SimError::InvariantViolation(format!(
                "invariant 5 (counters) broken: the kernel would warn, {w}"
            )));
        }
        Ok(())
    }

    /// Invariant 7, merge part: after an operation that merges, the VMA it produced is
    /// not left mergeable with a neighbour. (Adjacent mergeable VMAs can legitimately
    /// exist elsewhere: a munmap whose second split fails leaves its first split behind,
    /// exactly as the kernel does.)
    pub(crate) fn check_merge_site(&self) -> Result<()> {
        if self.merge_failed() {
            return Ok(());
        }
        for &(mm, start, end, new_range) in self.merge_sites() {
            self.check_merged_at(mm, start, end, new_range)?;
        }
        Ok(())
    }

    /// `vma_merge` was asked about the range `[start, end)`; it examined only the VMA
    /// ending at `start` and the one starting at `end`. Where the range's VMA still has
    /// such a boundary, the two sides must not be mergeable under the era's rules
    /// (checked in the kernel's direction: the range after `prev`, before `next`).
    fn check_merged_at(&self, mm: MmId, start: u64, end: u64, new_range: bool) -> Result<()> {
        if self.mms.get(mm).is_none() {
            return Ok(());
        }
        let mut stuck = None;
        if let Some(v) = self.find_vma(mm, start).filter(|&v| self.vma(v).start == start) {
            if let Some(p) = self.vma_prev(v).filter(|&p| self.range_mergeable_with(v, p, true, new_range)) {
                stuck = Some((p, v));
            }
        }
        // A boundary shared with the next piece of the same operation was decided by that
        // piece's merge (the range after its prev), checked as that piece's left edge.
        let inner = self.merge_sites().iter().any(|&(m, s, _, _)| m == mm && s == end);
        if let Some(v) = self.find_vma(mm, end - 1).filter(|&v| !inner && self.vma(v).end == end) {
            if let Some(n) = self.vma_next(v).filter(|&n| self.range_mergeable_with(v, n, false, new_range)) {
                stuck = Some((v, n));
            }
        }
        if let Some((a, b)) = stuck {
            let (x, y) = (self.vma(a), self.vma(b));
            return Err(self.violation(
                7,
                "VMA layout",
                format!(
                    "pid {}: adjacent VMAs [{:#x}, {:#x}) and [{:#x}, {:#x}) are mergeable but were left unmerged",
                    self.mm(mm).pid,
                    x.start,
                    x.end,
                    y.start,
                    y.end
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 7 (VMA layout) and the brute-force oracle: every present entry of every
    /// page table, grouped by page, as (pid, vma, addr). Also checks the entry maps a live
    /// page at the right index (invariant 2).
    fn check_layout_and_scan(&self) -> Result<Truth> {
        let need = self.pte_count() as usize;
        let bytes = need as u64 * std::mem::size_of::<(PageId, u32, VmaId, u64)>() as u64;
        let oom = |why: String| {
            SimError::OutOfMemory(format!(
                "check() needs {bytes} bytes for its scan of {need} page-table entries: {why}; nothing was checked"
            ))
        };
        let mut truth = Truth(Vec::new());
        truth.0.try_reserve_exact(need).map_err(|e| oom(e.to_string()))?;
        let mut swap_refs: HashMap<u32, u32> = HashMap::new();
        let mut ticker = Ticker::new();
        for (&pid, proc_) in &self.procs {
            let Some(mm) = self.mms.get(proc_.mm) else {
                return Err(self.violation(6, "accounting", format!("pid {pid} has a freed mm")));
            };
            let mut prev: Option<VmaId> = None;
            for (&key, &v) in &mm.vmas {
                let Some(vma) = self.vmas.get(v) else {
                    return Err(self.violation(6, "accounting", format!("pid {pid} lists freed VMA {v:?}")));
                };
                if vma.mm != proc_.mm || key != vma.start {
                    return Err(self.violation(
                        7,
                        "VMA layout",
                        format!(
                            "pid {pid}: VMA {v:?} filed under {key:#x} but starts at {:#x} or belongs to another mm",
                            vma.start
                        ),
                    ));
                }
                if vma.start % PAGE_SIZE != 0 || vma.end % PAGE_SIZE != 0 || vma.start >= vma.end {
                    return Err(self.violation(
                        7,
                        "VMA layout",
                        format!("pid {pid}: VMA [{:#x}, {:#x}) is empty or unaligned", vma.start, vma.end),
                    ));
                }
                if let Some(p) = prev {
                    let pv = self.vma(p);
                    if pv.end > vma.start {
                        return Err(self.violation(
                            7,
                            "VMA layout",
                            format!(
                                "pid {pid}: VMAs [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap",
                                pv.start, pv.end, vma.start, vma.end
                            ),
                        ));
                    }
                }
                prev = Some(v);
                ticker.tick_by(vma.ptes.pages() as u64 * 32 + 1)?;
                for (addr, pte) in vma.ptes.iter() {
                    if addr < vma.start || addr >= vma.end {
                        return Err(self.violation(
                            7,
                            "VMA layout",
                            format!(
                                "pid {pid}: VMA [{:#x}, {:#x}) holds a page-table entry for {addr:#x}, outside it",
                                vma.start, vma.end
                            ),
                        ));
                    }
                    if let Some(slot) = pte.swap_slot() {
                        if slot as usize >= self.swap.len() {
                            return Err(self.violation(
                                2,
                                "page state",
                                format!("pid {pid} addr {addr:#x} holds a swap entry for nonexistent slot {slot}"),
                            ));
                        }
                        *swap_refs.entry(slot).or_default() += 1;
                        continue;
                    }
                    let Some(page) = pte.page() else { continue };
                    let Some(pg) = self.page(page) else {
                        return Err(self.violation(
                            2,
                            "page state",
                            format!("pid {pid} addr {addr:#x} maps freed page {:#x}", page.to_u64()),
                        ));
                    };
                    if pg.index != vma.linear_page_index(addr) {
                        return Err(self.violation(2, "page state", format!("page {:#x} has index {:#x} but is mapped at pid {pid} addr {addr:#x} (linear index {:#x})", page.to_u64(), pg.index, vma.linear_page_index(addr))));
                    }
                    if pte.writable() && !pte.dirty() && !self.pages.is_lazyfree(page) {
                        // A write fault installs a dirty entry; only MADV_FREE cleans one, and
                        // reclaim discards a lazy-free page's clean mappings or re-dirties it.
                        return Err(self.violation(2, "page state", format!("pid {pid} addr {addr:#x}: a writable clean entry maps page {:#x}, which is not lazy-free", page.to_u64())));
                    }
                    truth.0.push((page, pid, v, addr));
                }
            }
        }
        self.check_swap(&swap_refs)?;
        // In place; (pid, addr) keeps each page's entries in scan order.
        truth.0.sort_unstable_by_key(|e| (e.0.index(), e.1, e.3));
        Ok(truth)
    }

    /// Swap slots: each slot's count equals the swap entries referring to it, its cached
    /// page points back to it, and a slot is in use exactly when either is present.
    fn check_swap(&self, refs: &HashMap<u32, u32>) -> Result<()> {
        let mut used = 0u64;
        for (i, s) in self.swap.iter().enumerate() {
            let slot = i as u32;
            let want = refs.get(&slot).copied().unwrap_or(0);
            if s.count != want {
                return Err(self.violation(
                    2,
                    "page state",
                    format!("swap slot {slot} has count {} but {want} swap entries refer to it", s.count),
                ));
            }
            if let Some(p) = s.cache {
                match self.page(p) {
                    Some(pg) if pg.swap == Some(slot) => {}
                    _ => {
                        return Err(self.violation(
                            2,
                            "page state",
                            format!(
                                "swap slot {slot} caches page {:#x}, which is freed or does not point back",
                                p.to_u64()
                            ),
                        ))
                    }
                }
            }
            if s.count > 0 || s.cache.is_some() {
                used += 1;
            }
        }
        if used != self.swap.used() {
            return Err(self.violation(
                6,
                "accounting",
                format!("{} swap slots counted in use, {used} are", self.swap.used()),
            ));
        }
        Ok(())
    }

    /// Invariants 1 and 2: mapcount equals the number of entries; `page->mapping` is live;
    /// a full walk of each page finds exactly its true mappings.
    fn check_pages(&self, truth: &Truth, walks: bool) -> Result<()> {
        // One buffer for every page's walk hits (no allocation per page).
        let mut ticker = Ticker::new();
        let mut hits: Vec<(VmaId, u64)> = Vec::new();
        for (page, pg) in self.pages.ids().filter_map(|id| Some((id, self.page(id)?))) {
            ticker.tick()?;
            let mappers = truth.get(page);
            if pg.mapcount as usize != mappers.len() {
                return Err(self.violation(
                    2,
                    "page state",
                    format!(
                        "page {:#x} has mapcount {} but {} page-table entries map it",
                        page.to_u64(),
                        pg.mapcount,
                        mappers.len()
                    ),
                ));
            }
            if let Some(slot) = pg.swap {
                if self.swap.get(slot as usize).and_then(|s| s.cache) != Some(page) {
                    return Err(self.violation(
                        2,
                        "page state",
                        format!("page {:#x} claims swap slot {slot}, which does not cache it", page.to_u64()),
                    ));
                }
            }
            let lazy = self.pages.lazy(page);
            if lazy & !3 != 0 || (lazy & 1 != 0 && (lazy & 2 != 0 || !pg.anon || pg.swap.is_some())) {
                // MADV_FREE marks only anonymous pages outside the swap cache, clearing
                // PG_dirty; reclaim never adds a lazy-free page to it (it discards or
                // re-marks it first), and re-marking it sets PG_dirty with PG_swapbacked.
                return Err(self.violation(
                    2,
                    "page state",
                    format!(
                        "page {:#x} has MADV_FREE flags {lazy} (1 lazy-free, 2 PG_dirty) but anon={} swap={:?}",
                        page.to_u64(),
                        pg.anon,
                        pg.swap
                    ),
                ));
            }
            if mappers.is_empty() && pg.swap.is_none_or(|s| self.swap[s as usize].count == 0) {
                return Err(self.violation(
                    6,
                    "accounting",
                    format!(
                        "page {:#x} is allocated but neither mapped nor reachable through a swap entry (leak)",
                        page.to_u64()
                    ),
                ));
            }
            if !self.avs.contains(pg.mapping) {
                return Err(self.violation(
                    2,
                    "page state",
                    format!(
                        "page {:#x} points to anon_vma {:#x}, freed by operation #{} (dangling page->mapping)",
                        page.to_u64(),
                        pg.mapping.to_u64(),
                        self.avs.freed_by(pg.mapping).unwrap_or(0)
                    ),
                ));
            }
            if mappers.is_empty() || !walks {
                continue;
            }
            hits.clear();
            self.rmap_walk_one(page, WalkMode::Full, |v, a| hits.push((v, a)))?;
            hits.sort_unstable_by_key(|&(v, a)| (v.to_u64(), a));
            if hits.windows(2).any(|w| w[0] == w[1]) {
                return Err(self.violation(
                    1,
                    "rmap completeness",
                    format!("the walk of page {:#x} found the same mapping twice", page.to_u64()),
                ));
            }
            for &(_, pid, v, addr) in mappers {
                if hits.binary_search_by_key(&(v.to_u64(), addr), |&(v, a)| (v.to_u64(), a)).is_err() {
                    return Err(self.violation(1, "rmap completeness", format!(
                        "page {:#x} is mapped at pid {pid} addr {addr:#x}, but the rmap walk from its anon_vma {:#x} does not find that mapping",
                        page.to_u64(), pg.mapping.to_u64()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Invariant 3: each chain entry is in its VMA's chain and on its anon_vma's list
    /// exactly once; `vma->anon_vma` is on the VMA's chain (legacy: the VMA is on its
    /// anon_vma's list); no anon_vma has an empty list (it should have been freed).
    fn check_links(&self) -> Result<()> {
        let mut ticker = Ticker::new();
        self.check_chain_entries(&mut ticker)?;
        self.check_indexes(&mut ticker)?;
        self.check_vma_chains(&mut ticker)
    }

    /// Invariant 3 from each chain entry: its VMA and anon_vma are live, it is on its
    /// VMA's chain once, and at its recorded place in its anon_vma's index.
    fn check_chain_entries(&self, ticker: &mut Ticker) -> Result<()> {
        for (c, avc) in self.avcs.iter() {
            ticker.tick()?;
            let Some(vma) = self.vmas.get(avc.vma) else {
                return Err(self.violation(
                    3,
                    "chain/list symmetry",
                    format!("anon_vma_chain {c:?} points to freed VMA {:?}", avc.vma),
                ));
            };
            if vma.chain.iter().filter(|&&x| x == c).count() != 1 {
                return Err(self.violation(
                    3,
                    "chain/list symmetry",
                    format!("anon_vma_chain {c:?} is not exactly once on its VMA's chain"),
                ));
            }
            let Some(av) = self.avs.get(avc.anon_vma) else {
                return Err(self.violation(
                    3,
                    "chain/list symmetry",
                    format!("anon_vma_chain {c:?} points to freed anon_vma {:?}", avc.anon_vma),
                ));
            };
            if let Some(fault) = av.index.entry_fault(self.policy.index, c, avc, vma) {
                return Err(self.violation(3, "chain/list symmetry", fault));
            }
        }
        Ok(())
    }

    /// Invariant 3 from each anon_vma's index (well formed, as many entries as chain
    /// entries, or VMAs in the legacy design); invariant 6: no empty index but a pinned root.
    fn check_indexes(&self, ticker: &mut Ticker) -> Result<()> {
        let mut on_lists = 0usize;
        let legacy = self.policy.linking == Linking::Legacy;
        for (a, av) in self.avs.iter() {
            ticker.tick()?;
            let n = av
                .index
                .verify(self.policy.index, a, &self.avcs, &self.vmas, legacy)
                .map_err(|e| self.violation(3, "chain/list symmetry", e))?;
            on_lists += n;
            if n == 0 && !self.pinned_root(a) {
                return Err(self.violation(
                    6,
                    "accounting",
                    format!("anon_vma {:#x} has an empty {} but was not freed", a.to_u64(), self.policy.index.noun()),
                ));
            }
        }
        let expected = match self.policy.linking {
            Linking::Chain => self.avcs.len(),
            Linking::Legacy => self.vmas.iter().filter(|(_, v)| v.anon_vma.is_some()).count(),
        };
        if on_lists != expected {
            return Err(self.violation(
                3,
                "chain/list symmetry",
                format!("{on_lists} entries on anon_vma lists, expected {expected}"),
            ));
        }
        Ok(())
    }

    /// Invariant 3 from each VMA's chain: live entries of its own, one per anon_vma, its
    /// own anon_vma among them (chain eras); no chain without an anon_vma.
    fn check_vma_chains(&self, ticker: &mut Ticker) -> Result<()> {
        for (v, vma) in self.vmas.iter() {
            ticker.tick()?;
            let mut seen = BTreeSet::new();
            for &c in &vma.chain {
                let Some(avc) = self.avcs.get(c) else {
                    return Err(self.violation(
                        3,
                        "chain/list symmetry",
                        format!("VMA {v:?} chains a freed entry {c:?}"),
                    ));
                };
                if avc.vma != v || !seen.insert(avc.anon_vma) {
                    return Err(self.violation(
                        3,
                        "chain/list symmetry",
                        format!("VMA {v:?}'s chain has a foreign or duplicate entry {c:?}"),
                    ));
                }
            }
            if let Some(av) = vma.anon_vma {
                if !self.avs.contains(av) {
                    return Err(self.violation(
                        3,
                        "chain/list symmetry",
                        format!("VMA [{:#x}, {:#x}) has freed anon_vma {:#x}", vma.start, vma.end, av.to_u64()),
                    ));
                }
                if self.policy.linking == Linking::Chain && !seen.contains(&av) {
                    return Err(self.violation(
                        3,
                        "chain/list symmetry",
                        format!(
                            "VMA [{:#x}, {:#x})'s anon_vma {:#x} is not on its chain",
                            vma.start,
                            vma.end,
                            av.to_u64()
                        ),
                    ));
                }
            } else if !vma.chain.is_empty() {
                return Err(self.violation(
                    3,
                    "chain/list symmetry",
                    format!("VMA [{:#x}, {:#x}) has a chain but no anon_vma", vma.start, vma.end),
                ));
            }
        }
        Ok(())
    }

    /// An anon_vma with an empty index may live on only as a root pinned by children.
    fn pinned_root(&self, a: AnonVmaId) -> bool {
        self.policy.track_root && self.avs.iter().any(|(c, x)| c != a && x.root == a)
    }

    /// Invariants 3 (one root per chain) and 5 (counters): every anon_vma of a chain shares
    /// the chain's root; refcounts, `degree`, `num_children` and `num_active_vmas` equal a
    /// recount from scratch.
    fn check_roots_and_counters(&self) -> Result<()> {
        if !self.policy.track_root {
            return Ok(());
        }
        for (v, vma) in self.vmas.iter() {
            let roots: BTreeSet<AnonVmaId> = vma
                .chain
                .iter()
                .filter_map(|&c| self.avcs.get(c))
                .filter_map(|c| self.avs.get(c.anon_vma))
                .map(|a| a.root)
                .collect();
            if roots.len() > 1 {
                return Err(self.violation(
                    3,
                    "chain/list symmetry",
                    format!(
                        "VMA {v:?} [{:#x}, {:#x}) links anon_vmas of {} different roots",
                        vma.start,
                        vma.end,
                        roots.len()
                    ),
                ));
            }
        }
        let mut active: HashMap<AnonVmaId, u32> = HashMap::new();
        for (_, vma) in self.vmas.iter() {
            if let Some(a) = vma.anon_vma {
                *active.entry(a).or_default() += 1;
            }
        }
        let mut pins: HashMap<AnonVmaId, u32> = HashMap::new();
        let mut children: HashMap<AnonVmaId, u32> = HashMap::new();
        for (c, x) in self.avs.iter() {
            if !self.avs.contains(x.root) || self.avs.get(x.root).is_some_and(|r| r.root != x.root) {
                return Err(self.violation(
                    5,
                    "counters",
                    format!("anon_vma {:#x} has a freed or non-root root {:#x}", c.to_u64(), x.root.to_u64()),
                ));
            }
            if x.root != c {
                *pins.entry(x.root).or_default() += 1;
            }
            if !x.index.is_empty() {
                *children.entry(x.parent).or_default() += 1; // the root counts itself
            }
        }
        for (a, x) in self.avs.iter() {
            let in_use = u32::from(!x.index.is_empty());
            let refs = in_use + pins.get(&a).copied().unwrap_or(0);
            if x.refcount != refs {
                return Err(self.violation(
                    5,
                    "counters",
                    format!("anon_vma {:#x} has refcount {} but a recount gives {refs}", a.to_u64(), x.refcount),
                ));
            }
            let act = active.get(&a).copied().unwrap_or(0);
            let kids = children.get(&a).copied().unwrap_or(0);
            match self.policy.fork_reuse {
                ForkReuse::Never => {}
                ForkReuse::Degree => {
                    if x.degree != act + kids {
                        return Err(self.violation(
                            5,
                            "counters",
                            format!(
                                "anon_vma {:#x} has degree {} but a recount gives {} ({act} VMAs + {kids} children)",
                                a.to_u64(),
                                x.degree,
                                act + kids
                            ),
                        ));
                    }
                }
                ForkReuse::ActiveVmas => {
                    if (x.num_active_vmas, x.num_children) != (act, kids) {
                        return Err(self.violation(5, "counters", format!(
                            "anon_vma {:#x} has num_active_vmas {} / num_children {} but a recount gives {act} / {kids}",
                            a.to_u64(), x.num_active_vmas, x.num_children
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Invariant 4: within one mm, VMAs with the same `anon_vma` link the same set of
    /// anon_vmas (CVE-2022-42703's invariant; 2.6.34-rc4's reason for the singular rule).
    fn check_same_anon_vma_same_chain(&self) -> Result<()> {
        if self.policy.linking != Linking::Chain {
            return Ok(());
        }
        for (&pid, p) in &self.procs {
            let mut by_av: HashMap<AnonVmaId, (VmaId, BTreeSet<AnonVmaId>)> = HashMap::new();
            for &v in self.mm(p.mm).vmas.values() {
                let vma = self.vma(v);
                let Some(av) = vma.anon_vma else { continue };
                let set: BTreeSet<AnonVmaId> =
                    vma.chain.iter().filter_map(|&c| self.avcs.get(c).map(|x| x.anon_vma)).collect();
                match by_av.get(&av) {
                    Some((other, s)) if *s != set => {
                        let o = self.vma(*other);
                        return Err(self.violation(4, "same anon_vma => same chain", format!(
                            "pid {pid}: VMAs [{:#x}, {:#x}) and [{:#x}, {:#x}) share anon_vma {:#x} but link {} vs {} anon_vmas",
                            o.start, o.end, vma.start, vma.end, av.to_u64(), s.len(), set.len()
                        )));
                    }
                    Some(_) => {}
                    None => {
                        by_av.insert(av, (v, set));
                    }
                }
            }
        }
        Ok(())
    }

    /// Invariant 6: every live object is reachable from a live process (no leak), and the
    /// running entry count agrees with a recount.
    fn check_accounting(&self) -> Result<()> {
        if self.mms.len() != self.procs.len() {
            return Err(self.violation(
                6,
                "accounting",
                format!("{} mm objects for {} processes", self.mms.len(), self.procs.len()),
            ));
        }
        let mut vmas = 0usize;
        let mut avcs = 0usize;
        let mut ptes = 0u64;
        let mut avs: HashSet<AnonVmaId> = HashSet::new();
        let mut ticker = Ticker::new();
        for p in self.procs.values() {
            for &v in self.mm(p.mm).vmas.values() {
                ticker.tick_by(self.vma(v).ptes.pages() as u64 * 32 + 1)?;
                vmas += 1;
                let vma = self.vma(v);
                avcs += vma.chain.len();
                avs.extend(vma.anon_vma);
                avs.extend(vma.chain.iter().filter_map(|&c| self.avcs.get(c).map(|x| x.anon_vma)));
                ptes += vma.ptes.populated();
            }
        }
        for pg in self.pages.ids().filter_map(|id| self.page(id)) {
            avs.insert(pg.mapping);
        }
        let roots: Vec<AnonVmaId> = avs.iter().filter_map(|&a| self.avs.get(a).map(|x| x.root)).collect();
        avs.extend(roots);
        let checks = [
            ("VMAs", vmas, self.vmas.len()),
            ("anon_vma_chains", avcs, self.avcs.len()),
            ("anon_vmas", avs.len(), self.avs.len()),
        ];
        for (what, reachable, live) in checks {
            if reachable != live {
                return Err(self.violation(
                    6,
                    "accounting",
                    format!(
                        "{live} {what} allocated but {reachable} reachable from live processes (leak or lost object)"
                    ),
                ));
            }
        }
        let lazy = self.pages.lazy_flags().filter(|&(_, f)| f & 1 != 0).count();
        if lazy != self.pages.lazyfree_pages() {
            return Err(self.violation(
                6,
                "accounting",
                format!("{} lazy-free pages counted, {lazy} marked", self.pages.lazyfree_pages()),
            ));
        }
        if ptes != self.pte_count() {
            return Err(self.violation(
                6,
                "accounting",
                format!("{} page-table entries counted, {ptes} present", self.pte_count()),
            ));
        }
        for (what, (a, f), live) in [
            ("mm", self.mms.alloc_free_counts(), self.mms.len()),
            ("vma", self.vmas.alloc_free_counts(), self.vmas.len()),
            ("anon_vma", self.avs.alloc_free_counts(), self.avs.len()),
            ("anon_vma_chain", self.avcs.alloc_free_counts(), self.avcs.len()),
            ("page", self.pages.alloc_free_counts(), self.pages.len()),
        ] {
            if a - f != live as u64 {
                return Err(self.violation(
                    6,
                    "accounting",
                    format!("{what}: {a} allocated - {f} freed != {live} live"),
                ));
            }
        }
        Ok(())
    }
}
