//! Sparse page tables: the entries of one VMA. A VMA of up to [`DENSE_MAX_PAGES`] pages
//! keeps, once touched, a dense array over its length (at most 32 KiB). A larger one keeps
//! them as the kernel does, in page-table pages of 512 entries (one PMD's span, 2 MiB of
//! address space) that exist only once an entry in their span is populated (`pte_alloc`
//! on the first fault) and go away when their last entry is cleared (`free_pte_range`,
//! here eagerly). Either form is freed with its last entry.
//!
//! Pages are keyed by absolute PMD number (`addr >> PMD_SHIFT`), not by offset into the
//! VMA, so a VMA boundary that moves never re-indexes an entry. Unlike the kernel the
//! simulator keeps one table per VMA rather than per mm (two VMAs that share a 2 MiB span
//! each get a page-table page); this is simulator memory, not a modelled allocation site,
//! so the kernel's allocation counts are unaffected.
//!
//! Memory grows with populated spans, never with mapped length: a 64 TiB mapping with one
//! touched page costs one 4 KiB page-table page.

use crate::state::objects::{Pte, PAGE_SHIFT};

/// Entries per page-table page (`PTRS_PER_PTE` on x86-64).
pub const PTRS_PER_PTE: usize = 512;
/// `PMD_SHIFT`: one page-table page spans `1 << PMD_SHIFT` bytes.
pub const PMD_SHIFT: u32 = PAGE_SHIFT + 9;

/// One page-table page: 512 entries, how many of them are populated, and its PMD number.
#[derive(Clone)]
struct PtePage {
    key: u64,
    used: u32,
    e: [Pte; PTRS_PER_PTE],
}

impl PtePage {
    fn new(key: u64) -> PtePage {
        PtePage { key, used: 0, e: [Pte::NONE; PTRS_PER_PTE] }
    }
}

/// Index of `addr`'s entry in its page-table page.
#[inline]
fn slot(addr: u64) -> usize {
    (addr >> PAGE_SHIFT) as usize & (PTRS_PER_PTE - 1)
}

/// VMAs of up to this many pages (16 MiB) keep a dense array over their whole length once
/// touched: at most 32 KiB, what the kernel's page tables for such a range take when its
/// spans are touched. A walk's lookup is then one array index, as before page tables were
/// sparse. Larger VMAs use table pages.
pub const DENSE_MAX_PAGES: u64 = 4096;

/// The dense form: `e[i]` is the entry of page number `base + i`.
#[derive(Clone, Default)]
#[repr(C)] // what a lookup reads first (`Vma` puts it right after its range)
struct Dense {
    e: Vec<Pte>,
    base: u64,
    used: u32,
}

impl Dense {
    /// One past the last page number the array covers.
    fn end(&self) -> u64 {
        self.base + self.e.len() as u64
    }

    /// A new array over the `pages` pages from page number `base`, holding this one's
    /// entries that fall inside it (`None` if that many entries cannot be allocated).
    fn window(&self, base: u64, pages: u64) -> Option<Dense> {
        let mut e = Vec::new();
        e.try_reserve_exact(pages as usize).ok()?;
        e.resize(pages as usize, Pte::NONE);
        let (lo, hi) = (base.max(self.base), (base + pages).min(self.end()));
        let mut used = 0;
        if lo < hi {
            let src = &self.e[(lo - self.base) as usize..(hi - self.base) as usize];
            e[(lo - base) as usize..(hi - base) as usize].copy_from_slice(src);
            used = src.iter().filter(|p| !p.is_none()).count() as u32;
        }
        Some(Dense { e, base, used })
    }
}

/// The page-table entries of one VMA (see the module documentation): dense for a small
/// VMA, in table pages otherwise. Every operation is correct in either form (an entry
/// outside a dense array turns it into pages); [`PteTable::fit`] picks the form for a
/// VMA's range.
#[derive(Clone, Default)]
#[repr(C)]
pub struct PteTable {
    d: Dense,
    p: Paged,
}

impl std::fmt::Debug for PteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PteTable {
    /// Bytes of one page-table page as the simulator stores it.
    pub const PAGE_BYTES: usize = std::mem::size_of::<PtePage>();

    #[inline(always)]
    fn dense(&self) -> bool {
        !self.d.e.is_empty()
    }

    /// The paged form of the same entries (a dense table is converted).
    fn into_paged(mut self) -> Paged {
        if self.dense() {
            let base = self.d.base;
            for (i, e) in std::mem::take(&mut self.d.e).into_iter().enumerate() {
                if !e.is_none() {
                    self.p.set((base + i as u64) << PAGE_SHIFT, e);
                }
            }
        }
        self.p
    }

    fn from_paged(p: Paged) -> PteTable {
        PteTable { d: Dense::default(), p }
    }

    /// Pick the form for a VMA covering `[start, end)` that holds every entry: dense over
    /// exactly that range when it is small, table pages otherwise.
    pub fn fit(&mut self, start: u64, end: u64) {
        let pages = (end - start) >> PAGE_SHIFT;
        let want_dense = pages <= DENSE_MAX_PAGES && !self.is_empty();
        if self.dense() && want_dense && self.d.base == start >> PAGE_SHIFT && self.d.e.len() as u64 == pages {
            return;
        }
        if self.dense() && want_dense {
            if let Some(d) = self.d.window(start >> PAGE_SHIFT, pages) {
                if d.used == self.d.used {
                    self.d = d; // every entry lies in the new range
                    return;
                }
            }
        }
        let p = std::mem::take(self).into_paged();
        if !want_dense || p.range(0, start).next().is_some() || p.range(end, u64::MAX).next().is_some() {
            *self = PteTable::from_paged(p);
            return;
        }
        let base = start >> PAGE_SHIFT;
        let mut d = Dense { base, used: 0, e: vec![Pte::NONE; pages as usize] };
        for (a, e) in p.iter() {
            d.e[((a >> PAGE_SHIFT) - base) as usize] = e;
            d.used += 1;
        }
        self.d = d;
    }

    /// The entry for `addr` (`Pte::NONE` where none is populated).
    #[inline(always)]
    pub fn get(&self, addr: u64) -> Pte {
        if self.dense() {
            return self.d.e.get((addr >> PAGE_SHIFT).wrapping_sub(self.d.base) as usize).copied().unwrap_or(Pte::NONE);
        }
        self.p.get(addr)
    }

    /// The populated entry for `addr`, for an in-place update that keeps it populated.
    #[inline]
    pub fn get_mut(&mut self, addr: u64) -> Option<&mut Pte> {
        if self.dense() {
            let i = (addr >> PAGE_SHIFT).wrapping_sub(self.d.base) as usize;
            return self.d.e.get_mut(i).filter(|e| !e.is_none());
        }
        self.p.get_mut(addr)
    }

    /// Install `pte` at `addr`, returning the entry it replaces.
    pub fn set(&mut self, addr: u64, pte: Pte) -> Pte {
        if self.dense() {
            let i = (addr >> PAGE_SHIFT).wrapping_sub(self.d.base) as usize;
            if let Some(slot) = self.d.e.get_mut(i) {
                let old = std::mem::replace(slot, pte);
                match (old.is_none(), pte.is_none()) {
                    (true, false) => self.d.used += 1,
                    (false, true) => {
                        self.d.used -= 1;
                        if self.d.used == 0 {
                            self.d = Dense::default(); // freed with its last entry
                        }
                    }
                    _ => {}
                }
                return old;
            }
            if pte.is_none() {
                return Pte::NONE;
            }
            *self = PteTable::from_paged(std::mem::take(self).into_paged());
        }
        self.p.set(addr, pte)
    }

    /// [`PteTable::set`] for a VMA covering `[start, end)`: the first entry of a small
    /// VMA's empty table makes it dense, and a small VMA that grew in place (mremap, brk)
    /// gets its dense array refitted to the new range instead of turning into pages.
    pub fn set_in(&mut self, addr: u64, pte: Pte, start: u64, end: u64) -> Pte {
        let small = (end - start) >> PAGE_SHIFT <= DENSE_MAX_PAGES;
        if small && !pte.is_none() {
            if self.is_empty() {
                let pages = ((end - start) >> PAGE_SHIFT) as usize;
                self.d = Dense { base: start >> PAGE_SHIFT, used: 0, e: vec![Pte::NONE; pages] };
            } else if self.dense() && (addr >> PAGE_SHIFT).wrapping_sub(self.d.base) as usize >= self.d.e.len() {
                self.fit(start, end);
            }
        }
        self.set(addr, pte)
    }

    /// No entry is populated.
    #[inline]
    pub fn is_empty(&self) -> bool {
        !self.dense() && self.p.is_empty()
    }

    /// Populated entries.
    pub fn populated(&self) -> u64 {
        if self.dense() {
            self.d.used as u64
        } else {
            self.p.populated()
        }
    }

    /// Page-table pages held (a dense array counts as the 512-entry pages it spans).
    pub fn pages(&self) -> usize {
        if self.dense() {
            self.d.e.len().div_ceil(PTRS_PER_PTE)
        } else {
            self.p.pages()
        }
    }

    /// Entries allocated, populated or not.
    pub fn slots(&self) -> usize {
        if self.dense() {
            self.d.e.len()
        } else {
            self.p.pages() * PTRS_PER_PTE
        }
    }

    /// Simulator bytes held (by length, and by capacity).
    pub fn bytes(&self) -> (u64, u64) {
        let pb = std::mem::size_of::<Pte>();
        let (a, b) = self.p.bytes();
        (a + (self.d.e.len() * pb) as u64, b + (self.d.e.capacity() * pb) as u64)
    }

    /// Populated entries with their addresses, ascending.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, Pte)> + '_> {
        self.range(0, u64::MAX)
    }

    /// Populated entries of `[start, end)` with their addresses, ascending.
    pub fn range(&self, start: u64, end: u64) -> Box<dyn Iterator<Item = (u64, Pte)> + '_> {
        if self.dense() {
            let base = self.d.base;
            Box::new(
                self.d
                    .e
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| !e.is_none())
                    .map(move |(i, e)| ((base + i as u64) << PAGE_SHIFT, *e))
                    .filter(move |&(a, _)| a >= start && a < end),
            )
        } else {
            Box::new(self.p.range(start, end))
        }
    }

    /// Call `f` on every populated entry of `[start, end)`; `f` may change the entry but
    /// must leave it populated.
    pub fn update_range(&mut self, start: u64, end: u64, mut f: impl FnMut(u64, &mut Pte)) {
        if self.dense() {
            let base = self.d.base;
            for (i, e) in self.d.e.iter_mut().enumerate() {
                let a = (base + i as u64) << PAGE_SHIFT;
                if !e.is_none() && a >= start && a < end {
                    f(a, e);
                }
            }
        } else {
            self.p.update_range(start, end, f)
        }
    }

    /// Remove and return the populated entries of `[start, end)` (zap), ascending.
    pub fn take_range(&mut self, start: u64, end: u64) -> Vec<(u64, Pte)> {
        let out: Vec<(u64, Pte)> = self.range(start, end).collect();
        for &(a, _) in &out {
            self.set(a, Pte::NONE);
        }
        out
    }

    /// Take over every entry of `other` (VMAs merging); call [`PteTable::fit`] after.
    pub fn absorb(&mut self, other: PteTable) {
        if self.is_empty() {
            *self = other;
            return;
        }
        if other.is_empty() {
            return;
        }
        if self.dense() && other.dense() {
            let lo = self.d.base.min(other.d.base);
            let hi = self.d.end().max(other.d.end());
            if let Some(mut d) = (hi - lo <= 2 * DENSE_MAX_PAGES).then(|| self.d.window(lo, hi - lo)).flatten() {
                for (i, &e) in other.d.e.iter().enumerate() {
                    if !e.is_none() {
                        d.e[(other.d.base + i as u64 - lo) as usize] = e;
                    }
                }
                d.used += other.d.used;
                self.d = d;
                return;
            }
        }
        let mut p = std::mem::take(self).into_paged();
        p.absorb(other.into_paged());
        *self = PteTable::from_paged(p);
    }

    /// Move the entries of `[start, end)` into a table of their own (a VMA's part after a
    /// split); call [`PteTable::fit`] on both after.
    pub fn extract(&mut self, start: u64, end: u64) -> PteTable {
        if self.dense() {
            // The part in [start, end) as an array of its own; holes stay in this one
            // until `fit`.
            let (lo, hi) = ((start >> PAGE_SHIFT).max(self.d.base), (end >> PAGE_SHIFT).min(self.d.end()));
            if lo >= hi {
                return PteTable::default();
            }
            if let Some(out) = self.d.window(lo, hi - lo) {
                let (a, b) = ((lo - self.d.base) as usize, (hi - self.d.base) as usize);
                self.d.e[a..b].fill(Pte::NONE);
                self.d.used -= out.used;
                if self.d.used == 0 {
                    self.d = Dense::default();
                }
                return PteTable { d: if out.used == 0 { Dense::default() } else { out }, p: Paged::default() };
            }
        }
        let mut p = std::mem::take(self).into_paged();
        let out = p.extract(start, end);
        *self = PteTable::from_paged(p);
        PteTable::from_paged(out)
    }

    /// The entries around `addr` as one slice with the address of its first entry (a
    /// dense array whole, or the table page covering `addr`), for loops that look up many
    /// entries: the entry of `a` is `slice[(a - first) >> PAGE_SHIFT]` while that is in
    /// the slice.
    #[inline]
    pub fn span(&self, addr: u64) -> Option<(u64, &[Pte])> {
        if self.dense() {
            return Some((self.d.base << PAGE_SHIFT, &self.d.e[..]));
        }
        self.p.span(addr)
    }

    /// The dense array and the address of its first entry, when the table is dense.
    #[inline]
    pub fn dense_slice(&self) -> Option<(u64, &[Pte])> {
        self.dense().then(|| (self.d.base << PAGE_SHIFT, &self.d.e[..]))
    }

    /// Drop entries without clearing their references (the review differential uses it
    /// to corrupt a state; nothing else may).
    #[doc(hidden)]
    pub fn corrupt_drop_last_page(&mut self) {
        if self.dense() {
            self.d = Dense::default();
        } else {
            self.p.corrupt_drop_last_page();
        }
    }
}

/// The paged form of a [`PteTable`]. The directory (`keys`: PMD number and the page's place in `pages`, ascending by PMD)
/// is short (only VMAs of more than 16 MiB have one); the pages sit in one vector in no particular order,
/// so a lookup is a scan of the directory and one load from `pages`, which the processor
/// can fetch in parallel (no pointer chase through a box per page).
#[derive(Clone, Default)]
struct Paged {
    keys: Vec<(u64, u32)>,
    pages: Vec<PtePage>,
}

impl Paged {
    /// Bytes of one page-table page as the simulator stores it.
    pub const PAGE_BYTES: usize = std::mem::size_of::<PtePage>();

    /// Position in `keys` of PMD number `key`.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        if self.keys.len() <= 8 {
            // The common case (VMAs up to 16 MiB): a short scan beats the binary search.
            self.keys.iter().position(|&(k, _)| k == key)
        } else {
            self.keys.binary_search_by_key(&key, |&(k, _)| k).ok()
        }
    }

    #[inline]
    fn page(&self, i: usize) -> &PtePage {
        &self.pages[self.keys[i].1 as usize]
    }

    #[inline]
    fn page_mut(&mut self, i: usize) -> &mut PtePage {
        let p = self.keys[i].1 as usize;
        &mut self.pages[p]
    }

    /// Add `page` (whose PMD number is not present yet) at directory position `i`.
    fn insert_page(&mut self, i: usize, page: PtePage) {
        self.keys.insert(i, (page.key, self.pages.len() as u32));
        self.pages.push(page);
    }

    /// Remove the page at directory position `i` and return it.
    fn remove_page(&mut self, i: usize) -> PtePage {
        let (_, p) = self.keys.remove(i);
        let page = self.pages.swap_remove(p as usize);
        if self.pages.len() * 4 <= self.pages.capacity() {
            self.pages.shrink_to(self.pages.len() * 2); // memory follows the pages held
        }
        if let Some(moved) = self.pages.get(p as usize) {
            if let Ok(j) = self.keys.binary_search_by_key(&moved.key, |&(k, _)| k) {
                self.keys[j].1 = p;
            }
        }
        page
    }

    /// The entry for `addr` (`Pte::NONE` where no page-table page exists).
    #[inline]
    pub fn get(&self, addr: u64) -> Pte {
        match self.find(addr >> PMD_SHIFT) {
            Some(i) => self.page(i).e[slot(addr)],
            None => Pte::NONE,
        }
    }

    /// The populated entry for `addr`, for an in-place update that keeps it populated.
    #[inline]
    pub fn get_mut(&mut self, addr: u64) -> Option<&mut Pte> {
        let i = self.find(addr >> PMD_SHIFT)?;
        let p = &mut self.page_mut(i).e[slot(addr)];
        (!p.is_none()).then_some(p)
    }

    /// Install `pte` at `addr`, returning the entry it replaces. A page-table page is
    /// allocated for the first populated entry of its span and freed with its last.
    pub fn set(&mut self, addr: u64, pte: Pte) -> Pte {
        let key = addr >> PMD_SHIFT;
        let i = match self.keys.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => i,
            Err(_) if pte.is_none() => return Pte::NONE,
            Err(i) => {
                self.insert_page(i, PtePage::new(key));
                i
            }
        };
        let page = self.page_mut(i);
        let old = std::mem::replace(&mut page.e[slot(addr)], pte);
        match (old.is_none(), pte.is_none()) {
            (true, false) => page.used += 1,
            (false, true) => {
                page.used -= 1;
                if page.used == 0 {
                    self.remove_page(i);
                }
            }
            _ => {}
        }
        old
    }

    /// No entry is populated.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Populated entries.
    pub fn populated(&self) -> u64 {
        self.pages.iter().map(|p| p.used as u64).sum()
    }

    /// Page-table pages held.
    pub fn pages(&self) -> usize {
        self.keys.len()
    }

    /// Simulator bytes held: the pages and the directory (by length, and by capacity).
    pub fn bytes(&self) -> (u64, u64) {
        let d = std::mem::size_of::<(u64, u32)>();
        let dir = |n: usize| n * d;
        (
            (self.pages.len() * Self::PAGE_BYTES + dir(self.keys.len())) as u64,
            (self.pages.capacity() * Self::PAGE_BYTES + dir(self.keys.capacity())) as u64,
        )
    }

    /// Populated entries of page `i` of the directory with their addresses.
    fn entries(&self, i: usize) -> impl Iterator<Item = (u64, Pte)> + '_ {
        let page = self.page(i);
        let base = page.key << PMD_SHIFT;
        page.e
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_none())
            .map(move |(j, e)| (base + ((j as u64) << PAGE_SHIFT), *e))
    }

    /// Populated entries with their addresses, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Pte)> + '_ {
        (0..self.keys.len()).flat_map(move |i| self.entries(i))
    }

    /// Directory positions of the pages that span part of `[start, end)`.
    fn span_range(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        if start >= end {
            return 0..0;
        }
        let (lo, hi) = (start >> PMD_SHIFT, (end - 1) >> PMD_SHIFT);
        self.keys.partition_point(|&(k, _)| k < lo)..self.keys.partition_point(|&(k, _)| k <= hi)
    }

    /// Populated entries of `[start, end)` with their addresses, ascending.
    pub fn range(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, Pte)> + '_ {
        self.span_range(start, end).flat_map(move |i| self.entries(i)).filter(move |&(a, _)| a >= start && a < end)
    }

    /// Call `f` on every populated entry of `[start, end)`; `f` may change the entry but
    /// must leave it populated.
    pub fn update_range(&mut self, start: u64, end: u64, mut f: impl FnMut(u64, &mut Pte)) {
        for i in self.span_range(start, end) {
            let page = self.page_mut(i);
            let base = page.key << PMD_SHIFT;
            for (j, e) in page.e.iter_mut().enumerate() {
                let a = base + ((j as u64) << PAGE_SHIFT);
                if !e.is_none() && a >= start && a < end {
                    f(a, e);
                    debug_assert!(!e.is_none(), "update_range must keep entries populated");
                }
            }
        }
    }

    /// Take over every entry of `other` (VMAs merging): its table pages move here whole,
    /// and a page both hold a span of is folded into one.
    pub fn absorb(&mut self, other: Paged) {
        if self.keys.is_empty() {
            *self = other;
            return;
        }
        for page in other.pages {
            match self.keys.binary_search_by_key(&page.key, |&(k, _)| k) {
                Err(i) => self.insert_page(i, page),
                Ok(i) => {
                    let mine = self.page_mut(i);
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
    pub fn extract(&mut self, start: u64, end: u64) -> Paged {
        let mut out = Paged::default();
        let keys: Vec<u64> = self.span_range(start, end).map(|i| self.keys[i].0).collect();
        for key in keys {
            let Ok(i) = self.keys.binary_search_by_key(&key, |&(k, _)| k) else { continue };
            let base = key << PMD_SHIFT;
            let inside = |j: usize| {
                let a = base + ((j as u64) << PAGE_SHIFT);
                a >= start && a < end
            };
            let whole = base >= start && base.saturating_add(1 << PMD_SHIFT) <= end;
            let page = self.page(i);
            let outside = if whole {
                0
            } else {
                (0..PTRS_PER_PTE).filter(|&j| !page.e[j].is_none() && !inside(j)).count() as u32
            };
            if outside == 0 {
                let page = self.remove_page(i);
                out.insert_page(out.keys.len(), page);
            } else if outside < page.used {
                let mut part = PtePage::new(key);
                let page = self.page_mut(i);
                for j in (0..PTRS_PER_PTE).filter(|&j| inside(j)) {
                    if !page.e[j].is_none() {
                        part.e[j] = std::mem::replace(&mut page.e[j], Pte::NONE);
                        part.used += 1;
                    }
                }
                page.used = outside;
                out.insert_page(out.keys.len(), part);
            }
        }
        out
    }

    /// The 512 entries of the page-table page covering `addr`, if it exists, with the
    /// address of the first.
    #[inline]
    pub fn span(&self, addr: u64) -> Option<(u64, &[Pte])> {
        self.find(addr >> PMD_SHIFT).map(|i| (self.page(i).key << PMD_SHIFT, &self.page(i).e[..]))
    }

    /// Drop the highest page-table page without clearing its entries' references (the
    /// review differential uses it to corrupt a state; nothing else may).
    #[doc(hidden)]
    pub fn corrupt_drop_last_page(&mut self) {
        if !self.keys.is_empty() {
            self.remove_page(self.keys.len() - 1);
        }
    }
}

// Snapshot coding (`crate::state::snapshot`): entries run-length coded, so a table costs bytes
// per populated entry, not per page of the range.
impl crate::state::snapshot::Wire for PteTable {
    fn put(&self, w: &mut crate::state::snapshot::Writer) {
        use crate::state::snapshot::put_ptes;
        self.d.e.len().put(w);
        self.d.base.put(w);
        put_ptes(w, &self.d.e);
        self.p.keys.put(w);
        w.varint(self.p.pages.len() as u64);
        for pg in &self.p.pages {
            pg.key.put(w);
            put_ptes(w, &pg.e);
        }
    }
    fn get(r: &mut crate::state::snapshot::Reader<'_>) -> crate::error::Result<Self> {
        use crate::state::snapshot::{get_ptes, vec_with, Wire};
        let bad = |m: &str| crate::error::SimError::InvalidArgument(format!("data: not a valid rmapsim snapshot: {m}"));
        let (n, base): (usize, u64) = Wire::get(r)?;
        // A dense array covers at most two small VMAs being merged (`absorb`); a longer
        // claim would make a few bytes of input allocate gigabytes of empty entries.
        if n as u64 > 2 * DENSE_MAX_PAGES {
            return Err(bad(&format!("a dense page table claims {n} entries (at most {})", 2 * DENSE_MAX_PAGES)));
        }
        let mut e = vec_with(n)?;
        e.resize(n, Pte::NONE);
        let used = get_ptes(r, &mut e)?;
        let d = Dense { e, base, used };
        let keys: Vec<(u64, u32)> = Wire::get(r)?;
        let np = r.read_len()?;
        let mut pages = vec_with(np)?;
        for _ in 0..np {
            let mut pg = PtePage::new(u64::get(r)?);
            pg.used = get_ptes(r, &mut pg.e)?;
            pages.push(pg);
        }
        let keyed = keys.len() == pages.len()
            && keys.windows(2).all(|k| k[0].0 < k[1].0)
            && keys.iter().all(|&(k, i)| pages.get(i as usize).is_some_and(|p| p.key == k));
        if !keyed {
            return Err(bad("a page-table directory does not match its pages"));
        }
        Ok(PteTable { d, p: Paged { keys, pages } })
    }
}

#[cfg(test)]
mod tests;
