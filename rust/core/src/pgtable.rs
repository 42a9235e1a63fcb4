//! Sparse page tables: the entries of one VMA, stored as the kernel stores them, in
//! page-table pages of 512 entries (one PMD's span, 2 MiB of address space) that exist
//! only once an entry in their span is populated (`pte_alloc` on the first fault) and go
//! away when their last entry is cleared (`free_pte_range`, here eagerly).
//!
//! Pages are keyed by absolute PMD number (`addr >> PMD_SHIFT`), not by offset into the
//! VMA, so a VMA boundary that moves never re-indexes an entry. Unlike the kernel the
//! simulator keeps one table per VMA rather than per mm (two VMAs that share a 2 MiB span
//! each get a page-table page); this is simulator memory, not a modelled allocation site,
//! so the kernel's allocation counts are unaffected.
//!
//! Memory grows with populated spans, never with mapped length: a 64 TiB mapping with one
//! touched page costs one 4 KiB page-table page.

use crate::objects::{Pte, PAGE_SHIFT};

/// Entries per page-table page (`PTRS_PER_PTE` on x86-64).
pub const PTRS_PER_PTE: usize = 512;
/// `PMD_SHIFT`: one page-table page spans `1 << PMD_SHIFT` bytes.
pub const PMD_SHIFT: u32 = PAGE_SHIFT + 9;

/// One page-table page: 512 entries and how many of them are populated.
#[derive(Clone)]
struct PtePage {
    used: u32,
    e: [Pte; PTRS_PER_PTE],
}

/// Index of `addr`'s entry in its page-table page.
#[inline]
pub fn slot(addr: u64) -> usize {
    (addr >> PAGE_SHIFT) as usize & (PTRS_PER_PTE - 1)
}

/// The page-table entries of one VMA (see the module documentation).
#[derive(Clone, Default)]
pub struct PteTable {
    /// Page-table pages by PMD number, ascending.
    dir: Vec<(u64, Box<PtePage>)>,
}

impl std::fmt::Debug for PteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PteTable {
    /// Bytes of one page-table page as the simulator stores it.
    pub const PAGE_BYTES: usize = std::mem::size_of::<PtePage>();

    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        if self.dir.len() <= 8 {
            // The common case (VMAs up to 16 MiB): a short scan beats the binary search.
            self.dir.iter().position(|(k, _)| *k == key)
        } else {
            self.dir.binary_search_by_key(&key, |(k, _)| *k).ok()
        }
    }

    /// The entry for `addr` (`Pte::NONE` where no page-table page exists).
    #[inline]
    pub fn get(&self, addr: u64) -> Pte {
        match self.find(addr >> PMD_SHIFT) {
            Some(i) => self.dir[i].1.e[slot(addr)],
            None => Pte::NONE,
        }
    }

    /// The populated entry for `addr`, for an in-place update that keeps it populated.
    #[inline]
    pub fn get_mut(&mut self, addr: u64) -> Option<&mut Pte> {
        let i = self.find(addr >> PMD_SHIFT)?;
        let p = &mut self.dir[i].1.e[slot(addr)];
        (!p.is_none()).then_some(p)
    }

    /// Install `pte` at `addr`, returning the entry it replaces. A page-table page is
    /// allocated for the first populated entry of its span and freed with its last.
    pub fn set(&mut self, addr: u64, pte: Pte) -> Pte {
        let key = addr >> PMD_SHIFT;
        let i = match self.dir.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => i,
            Err(_) if pte.is_none() => return Pte::NONE,
            Err(i) => {
                self.dir.insert(i, (key, Box::new(PtePage { used: 0, e: [Pte::NONE; PTRS_PER_PTE] })));
                i
            }
        };
        let page = &mut self.dir[i].1;
        let old = std::mem::replace(&mut page.e[slot(addr)], pte);
        match (old.is_none(), pte.is_none()) {
            (true, false) => page.used += 1,
            (false, true) => {
                page.used -= 1;
                if page.used == 0 {
                    self.dir.remove(i);
                }
            }
            _ => {}
        }
        old
    }

    /// No entry is populated.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.dir.is_empty()
    }

    /// Populated entries.
    pub fn populated(&self) -> u64 {
        self.dir.iter().map(|(_, p)| p.used as u64).sum()
    }

    /// Page-table pages held.
    pub fn pages(&self) -> usize {
        self.dir.len()
    }

    /// Simulator bytes held: the pages and the directory (by length, and by capacity).
    pub fn bytes(&self) -> (u64, u64) {
        let d = std::mem::size_of::<(u64, Box<PtePage>)>();
        let pages = self.dir.len() * Self::PAGE_BYTES;
        ((pages + self.dir.len() * d) as u64, (pages + self.dir.capacity() * d) as u64)
    }

    /// Populated entries with their addresses, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Pte)> + '_ {
        self.dir.iter().flat_map(|(k, p)| {
            let base = k << PMD_SHIFT;
            p.e.iter()
                .enumerate()
                .filter(|(_, e)| !e.is_none())
                .map(move |(i, e)| (base + ((i as u64) << PAGE_SHIFT), *e))
        })
    }

    /// Populated entries of `[start, end)` with their addresses, ascending.
    pub fn range(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, Pte)> + '_ {
        let (lo, hi) = (start >> PMD_SHIFT, end.saturating_sub(1) >> PMD_SHIFT);
        let first = self.dir.partition_point(|(k, _)| *k < lo);
        self.dir[first..].iter().take_while(move |(k, _)| *k <= hi && start < end).flat_map(move |(k, p)| {
            let base = k << PMD_SHIFT;
            p.e.iter()
                .enumerate()
                .map(move |(i, e)| (base + ((i as u64) << PAGE_SHIFT), *e))
                .filter(move |&(a, e)| !e.is_none() && a >= start && a < end)
        })
    }

    /// Call `f` on every populated entry of `[start, end)`; `f` may change the entry but
    /// must leave it populated.
    pub fn update_range(&mut self, start: u64, end: u64, mut f: impl FnMut(u64, &mut Pte)) {
        if start >= end {
            return;
        }
        let (lo, hi) = (start >> PMD_SHIFT, (end - 1) >> PMD_SHIFT);
        let first = self.dir.partition_point(|(k, _)| *k < lo);
        for (k, p) in self.dir[first..].iter_mut().take_while(|(k, _)| *k <= hi) {
            let base = *k << PMD_SHIFT;
            for (i, e) in p.e.iter_mut().enumerate() {
                let a = base + ((i as u64) << PAGE_SHIFT);
                if !e.is_none() && a >= start && a < end {
                    f(a, e);
                    debug_assert!(!e.is_none(), "update_range must keep entries populated");
                }
            }
        }
    }

    /// Take over every entry of `other` (VMAs merging): its table pages move here whole,
    /// and a page both hold a span of is folded into one.
    pub fn absorb(&mut self, other: PteTable) {
        if self.dir.is_empty() {
            *self = other;
            return;
        }
        for (key, page) in other.dir {
            match self.dir.binary_search_by_key(&key, |(k, _)| *k) {
                Err(i) => self.dir.insert(i, (key, page)),
                Ok(i) => {
                    let mine = &mut self.dir[i].1;
                    for (j, e) in page.e.iter().enumerate() {
                        if !e.is_none() {
                            debug_assert!(mine.e[j].is_none(), "two VMAs held the same entry");
                            mine.e[j] = *e;
                            mine.used += 1;
                        }
                    }
                }
            }
        }
    }

    /// Move the entries of `[start, end)` into a table of their own (a VMA's part after a
    /// split): table pages inside the range move whole; a page straddling its edge gives
    /// up the entries inside, or moves whole when it has none outside.
    pub fn extract(&mut self, start: u64, end: u64) -> PteTable {
        let mut out = PteTable::default();
        if start >= end {
            return out;
        }
        let (lo, hi) = (start >> PMD_SHIFT, (end - 1) >> PMD_SHIFT);
        let first = self.dir.partition_point(|(k, _)| *k < lo);
        let last = self.dir.partition_point(|(k, _)| *k <= hi);
        let mut keep = Vec::new();
        for (key, mut page) in self.dir.drain(first..last) {
            let base = key << PMD_SHIFT;
            if base >= start && base.saturating_add(1 << PMD_SHIFT) <= end {
                out.dir.push((key, page)); // wholly inside: no entry to look at
                continue;
            }
            let inside = |j: usize| {
                let a = base + ((j as u64) << PAGE_SHIFT);
                a >= start && a < end
            };
            let outside = (0..PTRS_PER_PTE).filter(|&j| !page.e[j].is_none() && !inside(j)).count() as u32;
            if outside == 0 {
                out.dir.push((key, page));
            } else if outside == page.used {
                keep.push((key, page));
            } else {
                let mut part = Box::new(PtePage { used: 0, e: [Pte::NONE; PTRS_PER_PTE] });
                for j in (0..PTRS_PER_PTE).filter(|&j| inside(j)) {
                    if !page.e[j].is_none() {
                        part.e[j] = std::mem::replace(&mut page.e[j], Pte::NONE);
                        part.used += 1;
                    }
                }
                page.used = outside;
                out.dir.push((key, part));
                keep.push((key, page));
            }
        }
        self.dir.splice(first..first, keep);
        out
    }

    /// Remove and return the populated entries of `[start, end)` (zap), ascending.
    pub fn take_range(&mut self, start: u64, end: u64) -> Vec<(u64, Pte)> {
        let out: Vec<(u64, Pte)> = self.range(start, end).collect();
        for &(a, _) in &out {
            self.set(a, Pte::NONE);
        }
        out
    }

    /// The 512 entries of the page-table page covering `addr`, if it exists (for loops
    /// that look up many entries of one span).
    #[inline]
    pub fn span(&self, addr: u64) -> Option<&[Pte; PTRS_PER_PTE]> {
        self.find(addr >> PMD_SHIFT).map(|i| &self.dir[i].1.e)
    }

    /// Drop the highest page-table page without clearing its entries' references (the
    /// review differential uses it to corrupt a state; nothing else may).
    #[doc(hidden)]
    pub fn corrupt_drop_last_page(&mut self) {
        self.dir.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::Id;

    fn p(i: u32) -> Pte {
        Pte::present(Id::new(i, 0), true)
    }

    #[test]
    fn pages_appear_with_their_first_entry_and_go_with_their_last() {
        let mut t = PteTable::default();
        let big = 0x7f00_0000_0000u64; // far apart spans cost one page each
        assert_eq!(t.set(0x1000, p(1)), Pte::NONE);
        assert_eq!(t.set(big, p(2)), Pte::NONE);
        assert_eq!(t.set(0x2000, p(3)), Pte::NONE);
        assert_eq!((t.pages(), t.populated()), (2, 3));
        assert_eq!(t.get(0x1000), p(1));
        assert_eq!(t.get(0x3000), Pte::NONE);
        assert_eq!(t.get(big + 0x20_0000), Pte::NONE);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(0x1000, p(1)), (0x2000, p(3)), (big, p(2))]);
        assert_eq!(t.range(0x2000, big).collect::<Vec<_>>(), vec![(0x2000, p(3))]);
        assert_eq!(t.set(big, Pte::NONE), p(2));
        assert_eq!(t.pages(), 1);
        assert_eq!(t.set(0x5000, Pte::NONE), Pte::NONE, "clearing an absent entry allocates nothing");
        assert_eq!(t.pages(), 1);
        assert_eq!(t.take_range(0, 0x2000), vec![(0x1000, p(1))]);
        assert_eq!(t.take_range(0, u64::MAX), vec![(0x2000, p(3))]);
        assert!(t.is_empty());
    }

    #[test]
    fn extract_and_absorb_split_and_join_tables() {
        let mut t = PteTable::default();
        let base = 0x4000_0000u64;
        for i in (0..1500u64).step_by(3) {
            t.set(base + i * 4096, p(i as u32));
        }
        let all: Vec<_> = t.iter().collect();
        let cut = base + 700 * 4096; // inside the second table page
        let mut right = t.extract(cut, u64::MAX);
        let left = t.extract(0, cut);
        assert!(t.is_empty());
        assert!(left.iter().all(|(a, _)| a < cut) && right.iter().all(|(a, _)| a >= cut));
        assert_eq!(left.populated() + right.populated(), 500);
        assert_eq!((left.pages(), right.pages()), (2, 2));
        right.absorb(left);
        assert_eq!(right.iter().collect::<Vec<_>>(), all);
        assert_eq!(right.pages(), 3);
        assert_eq!(right.populated(), 500);
        let mut e = PteTable::default();
        e.absorb(right.clone());
        assert_eq!(e.iter().collect::<Vec<_>>(), all);
        assert!(right.extract(0, base).is_empty(), "an empty range takes nothing");
        assert_eq!(right.populated(), 500);
    }

    #[test]
    fn update_range_touches_only_the_range() {
        let mut t = PteTable::default();
        for i in 0..2000u64 {
            t.set(0x40_0000 + i * 4096, p(i as u32));
        }
        assert_eq!(t.pages(), 4);
        let mut n = 0;
        t.update_range(0x40_0000 + 100 * 4096, 0x40_0000 + 1500 * 4096, |_, e| {
            *e = e.write_protected();
            n += 1
        });
        assert_eq!(n, 1400);
        assert!(t.get(0x40_0000 + 99 * 4096).writable());
        assert!(!t.get(0x40_0000 + 100 * 4096).writable());
        assert!(!t.get(0x40_0000 + 1499 * 4096).writable());
        assert!(t.get(0x40_0000 + 1500 * 4096).writable());
        // more than eight pages: the binary-search lookup
        for i in 0..20u64 {
            t.set(0x1_0000_0000 + i * 0x20_0000, p(9));
        }
        assert_eq!(t.get(0x1_0000_0000 + 13 * 0x20_0000), p(9));
        assert_eq!(t.get(0x40_0000 + 7 * 4096), p(7));
        assert_eq!(t.span(0x40_0000).map(|s| s[3]), Some(p(3)));
    }
}
