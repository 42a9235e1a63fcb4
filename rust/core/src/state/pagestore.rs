//! The anonymous pages (`struct page`), packed into 14 bytes a slot.
//!
//! Pages are by far the most numerous object (one per COW copy: 10 million in a
//! 10,000-process × 1,000-page fork storm), so they do not live in a generic
//! [`Arena`] slot (48 bytes) but in four parallel columns:
//!
//! | column | bytes | holds |
//! |---|---|---|
//! | `word` | 4 | live bit, `PageAnon`, `PageSwapCache`, "mapping held aside", `index` bits 32–35, generation (24 bits) |
//! | `mapping` | 4 | `page->mapping`: the anon_vma's slot index |
//! | `index_lo` | 4 | `page->index` bits 0–31 |
//! | `mapcount` | 2 | `page_mapcount`, or [`BIG`] when the count is held aside |
//!
//! Rare states are held aside in small maps keyed by slot: the swap slot of a
//! swap-cache page, a mapcount of 65,535 or more, a `page->index` of 15 · 2^32 or more
//! (file offsets reach the whole unsigned long; anonymous indices stay below 2^35), and a
//! `page->mapping` that was not a live anon_vma when it was set (a dangling pointer in a
//! buggy era, kept exactly).
//!
//! `page->mapping` stores only the anon_vma's slot index. Its generation is implied
//! because the anon_vma arena does not reuse a slot while a page points at it
//! ([`Arena::pin`]): the handle is the slot's live occupant, or, once that anon_vma was
//! freed, the occupant it had (generation − 1). Use-after-free of `page->mapping` is so
//! detected exactly as with full handles.
//!
//! Page handles stay generational (slot index + 24-bit generation; a slot that has used
//! up 2^24 - 1 generations is retired). While a slot is free, its `mapping` and `index_lo`
//! hold the operation number that freed it; once the slot is reused, a stale handle is
//! still reported stale, without that number.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::state::arena::{Arena, Id};
use crate::state::objects::{AnonVma, AnonVmaId, Page, PageId};

const LIVE: u32 = 1 << 31;
const ANON: u32 = 1 << 30;
const SWAPCACHE: u32 = 1 << 29;
const ODD_MAPPING: u32 = 1 << 28;
const INDEX_HI_SHIFT: u32 = 24;
const INDEX_HI_MASK: u32 = 0xF << INDEX_HI_SHIFT;
const GEN_MASK: u32 = (1 << 24) - 1;
/// `mapcount` column value meaning "see `big_mapcount`".
pub const BIG: u16 = u16::MAX;
/// `page->index` values below this are stored inline (bits 32–35 in `word`, the top
/// value 15 excluded); the rest go to the `big_index` side map. Anonymous indices are
/// below 2^35 (user addresses are below 2^47); only private file mappings at large offsets
/// reach the side map.
pub const INDEX_LIMIT: u64 = 15 << 32;
/// Bits 32–35 of `word` all set: the index is in `big_index`.
const INDEX_HI_ASIDE: u32 = INDEX_HI_MASK;

/// A page as a walk reads it: handle, `page->mapping`'s anon_vma slot (`None` when held
/// aside), `page->index`, `page_mapcount`.
pub type WalkFields = (PageId, Option<u32>, u64, u32);

/// Why a page handle does not resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The handle never named a page.
    NotAPage,
    /// The page was freed; by this operation, if the slot has not been reused since.
    Freed(Option<u64>),
}

/// Hasher for the side maps, whose keys are slot indices: one multiply (Fibonacci
/// hashing). The default SipHash was a measurable share of walks over swap-cache pages;
/// a slot index needs no protection against chosen keys.
#[derive(Clone, Default)]
pub struct SlotHasher(u64);

impl Hasher for SlotHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_u32(&mut self, k: u32) {
        self.0 = (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A side map keyed by page slot.
type SlotMap<V> = HashMap<u32, V, BuildHasherDefault<SlotHasher>>;

/// The page store; see the module documentation.
#[derive(Clone, Default)]
pub struct PageStore {
    word: Vec<u32>,
    mapping: Vec<u32>,
    index_lo: Vec<u32>,
    mapcount: Vec<u16>,
    big_mapcount: SlotMap<u32>,
    big_index: SlotMap<u64>,
    swap: SlotMap<u32>,
    odd_mapping: SlotMap<AnonVmaId>,
    free: Vec<u32>,
    live: usize,
    allocs: u64,
    frees: u64,
    /// `MADV_FREE` state of the lazy-free pages (`!PageSwapBacked`): [`LAZYFREE`], plus
    /// [`DIRTY`] once written again. Empty in every other page's slot.
    lazy: SlotMap<u8>,
}

/// [`PageStore::lazy`]: the page is lazy-free (`MADV_FREE` cleared `PG_swapbacked`).
pub const LAZYFREE: u8 = 1;
/// [`PageStore::lazy`]: the lazy-free page was written after `MADV_FREE` (a dirty PTE or
/// `PG_dirty`): reclaim must not discard it.
pub const DIRTY: u8 = 2;

#[cfg(test)]
impl std::fmt::Debug for PageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sorted = |m: &SlotMap<u32>| {
            let mut v: Vec<_> = m.iter().map(|(a, b)| (*a, *b)).collect();
            v.sort();
            v
        };
        let mut odd: Vec<_> = self.odd_mapping.iter().map(|(a, b)| (*a, *b)).collect();
        odd.sort();
        write!(f, "PageStore{{word:{:?} mapping:{:?} index_lo:{:?} mapcount:{:?} big:{:?} swap:{:?} odd:{:?} free:{:?} live:{} allocs:{} frees:{}}}",
            self.word, self.mapping, self.index_lo, self.mapcount, sorted(&self.big_mapcount), sorted(&self.swap), odd, self.free, self.live, self.allocs, self.frees)
    }
}

impl PageStore {
    /// Bytes of one slot over the four columns.
    pub const SLOT_BYTES: usize = 4 + 4 + 4 + 2;

    #[inline]
    fn live_word(&self, id: PageId) -> Option<u32> {
        let w = *self.word.get(id.index() as usize)?;
        (w & LIVE != 0 && w & GEN_MASK == id.generation()).then_some(w)
    }

    #[inline]
    pub fn contains(&self, id: PageId) -> bool {
        self.live_word(id).is_some()
    }

    /// The page, decoded; `avs` supplies `page->mapping`'s generation.
    #[inline]
    pub fn get(&self, id: PageId, avs: &Arena<AnonVma>) -> Option<Page> {
        let (mapping, index, mapcount) = self.walk_get(id, avs)?;
        let w = self.word[id.index() as usize];
        Some(Page { mapping, index, mapcount, swap: self.swap_slot(id), anon: w & ANON != 0 })
    }

    /// What a walk reads of a live page: `page->mapping`, `page->index`, `page_mapcount`
    /// (the page's swap slot is not looked up).
    #[inline(always)]
    pub fn walk_get(&self, id: PageId, avs: &Arena<AnonVma>) -> Option<(AnonVmaId, u64, u32)> {
        let w = self.live_word(id)?;
        let i = id.index();
        let s = i as usize;
        let mapping = if w & ODD_MAPPING != 0 {
            self.odd_mapping.get(&i).copied().unwrap_or(Id::new(u32::MAX, 0))
        } else {
            avs.handle_at(self.mapping[s]).unwrap_or(Id::new(self.mapping[s], 0))
        };
        let index = self.index_at(w, s);
        Some((mapping, index, self.mapcount_of(i)))
    }

    /// `page->index` of slot `s` whose word is `w` (bits 32-35 in the word).
    #[inline]
    fn index_at(&self, w: u32, s: usize) -> u64 {
        if w & INDEX_HI_MASK == INDEX_HI_ASIDE {
            return self.big_index.get(&(s as u32)).copied().unwrap_or(u64::MAX);
        }
        ((w & INDEX_HI_MASK) as u64) << (32 - INDEX_HI_SHIFT) | self.index_lo[s] as u64
    }

    #[inline]
    fn mapcount_of(&self, i: u32) -> u32 {
        match self.mapcount[i as usize] {
            BIG => self.big_mapcount.get(&i).copied().unwrap_or(BIG as u32),
            m => m as u32,
        }
    }

    #[inline]
    fn set_mapcount(&mut self, i: u32, m: u32) {
        if m >= BIG as u32 {
            self.mapcount[i as usize] = BIG;
            self.big_mapcount.insert(i, m);
        } else {
            if self.mapcount[i as usize] == BIG {
                self.big_mapcount.remove(&i);
            }
            self.mapcount[i as usize] = m as u16;
        }
    }

    /// `page_mapcount`, if the page is live.
    #[inline]
    pub fn mapcount(&self, id: PageId) -> Option<u32> {
        self.live_word(id).map(|_| self.mapcount_of(id.index()))
    }

    /// Add `delta` to the mapcount (saturating at 0); returns the new count.
    #[inline]
    pub fn add_mapcount(&mut self, id: PageId, delta: i64) -> Option<u32> {
        self.live_word(id)?;
        let i = id.index();
        let small = self.mapcount[i as usize];
        if small != BIG {
            let m = small as i64 + delta;
            if (0..BIG as i64).contains(&m) {
                self.mapcount[i as usize] = m as u16;
                return Some(m as u32);
            }
        }
        let m = (self.mapcount_of(i) as i64 + delta).clamp(0, u32::MAX as i64) as u32;
        self.set_mapcount(i, m);
        Some(m)
    }

    /// Write every field of slot `i` except liveness and generation.
    fn store(&mut self, i: u32, p: &Page, avs: &mut Arena<AnonVma>) {
        let s = i as usize;
        let old = self.word[s];
        let mut w = old & (LIVE | GEN_MASK);
        if old & INDEX_HI_MASK == INDEX_HI_ASIDE {
            self.big_index.remove(&i);
        }
        if p.index < INDEX_LIMIT {
            w |= ((p.index >> 32) as u32) << INDEX_HI_SHIFT;
        } else {
            w |= INDEX_HI_ASIDE;
            self.big_index.insert(i, p.index);
        }
        self.index_lo[s] = p.index as u32;
        if p.anon {
            w |= ANON;
        }
        // The side maps are touched only when the slot has or had an entry there.
        match p.swap {
            Some(slot) => {
                w |= SWAPCACHE;
                self.swap.insert(i, slot);
            }
            None if old & SWAPCACHE != 0 => {
                self.swap.remove(&i);
            }
            None => {}
        }
        if avs.contains(p.mapping) {
            avs.pin(p.mapping.index());
            self.mapping[s] = p.mapping.index();
            if old & ODD_MAPPING != 0 {
                self.odd_mapping.remove(&i);
            }
        } else {
            w |= ODD_MAPPING;
            self.odd_mapping.insert(i, p.mapping);
        }
        self.word[s] = w;
        self.set_mapcount(i, p.mapcount);
    }

    /// Drop slot `i`'s pin on its anon_vma (before its mapping changes or it is freed).
    fn release_mapping(&mut self, i: u32, avs: &mut Arena<AnonVma>) {
        if self.word[i as usize] & ODD_MAPPING == 0 {
            avs.unpin(self.mapping[i as usize]);
        }
    }

    /// Make room for at least `n` more pages without allocating, fallibly; returns the
    /// inserts that now allocate nothing (free slots plus the columns' spare capacity).
    pub fn try_reserve_room(&mut self, n: usize) -> Result<usize, std::collections::TryReserveError> {
        if self.free.len() + self.spare() < n {
            self.word.try_reserve(n)?;
            self.mapping.try_reserve(n)?;
            self.index_lo.try_reserve(n)?;
            self.mapcount.try_reserve(n)?;
        }
        Ok(self.free.len() + self.spare())
    }

    /// Pushes every column can take without growing.
    fn spare(&self) -> usize {
        let cap = self
            .word
            .capacity()
            .min(self.mapping.capacity())
            .min(self.index_lo.capacity())
            .min(self.mapcount.capacity());
        cap - self.word.len()
    }

    pub fn insert(&mut self, p: Page, avs: &mut Arena<AnonVma>) -> PageId {
        self.live += 1;
        self.allocs += 1;
        // The common case, a page in a live anon_vma, outside the swap cache, with a small
        // mapcount, in a new slot: append the columns directly.
        if self.free.is_empty()
            && p.swap.is_none()
            && p.index < INDEX_LIMIT
            && p.mapcount < BIG as u32
            && avs.contains(p.mapping)
        {
            let i = self.word.len() as u32;
            avs.pin(p.mapping.index());
            let anon = if p.anon { ANON } else { 0 };
            self.word.push(LIVE | anon | ((p.index >> 32) as u32) << INDEX_HI_SHIFT);
            self.mapping.push(p.mapping.index());
            self.index_lo.push(p.index as u32);
            self.mapcount.push(p.mapcount as u16);
            return Id::new(i, 0);
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.word.push(0);
                self.mapping.push(0);
                self.index_lo.push(0);
                self.mapcount.push(0);
                (self.word.len() - 1) as u32
            }
        };
        let gen = self.word[i as usize] & GEN_MASK;
        self.word[i as usize] = LIVE | gen;
        self.store(i, &p, avs);
        Id::new(i, gen)
    }

    /// Replace the page's fields (its handle stays valid). False if `id` is not live.
    pub fn set(&mut self, id: PageId, p: Page, avs: &mut Arena<AnonVma>) -> bool {
        if self.live_word(id).is_none() {
            return false;
        }
        self.release_mapping(id.index(), avs);
        self.store(id.index(), &p, avs);
        true
    }

    /// The swap slot a live page caches (`PageSwapCache` + `page_private`), if any.
    #[inline]
    pub fn swap_slot(&self, id: PageId) -> Option<u32> {
        let w = self.live_word(id)?;
        if w & SWAPCACHE != 0 {
            self.swap.get(&id.index()).copied()
        } else {
            None
        }
    }

    /// Free the page; `op` is the simulator operation number doing it. False if `id` is
    /// not live.
    pub fn remove(&mut self, id: PageId, op: u64, avs: &mut Arena<AnonVma>) -> bool {
        if self.live_word(id).is_none() {
            return false;
        }
        let i = id.index();
        let s = i as usize;
        self.release_mapping(i, avs);
        self.set_mapcount(i, 0);
        if self.word[s] & SWAPCACHE != 0 {
            self.swap.remove(&i);
        }
        if self.word[s] & ODD_MAPPING != 0 {
            self.odd_mapping.remove(&i);
        }
        if self.word[s] & INDEX_HI_MASK == INDEX_HI_ASIDE {
            self.big_index.remove(&i);
        }
        if !self.lazy.is_empty() {
            self.lazy.remove(&i);
        }
        // A slot that has used up its generations is retired (kept free, never reused).
        let gen = ((self.word[s] & GEN_MASK) + 1).min(GEN_MASK);
        self.mapping[s] = (op >> 32) as u32;
        self.index_lo[s] = op as u32;
        self.word[s] = gen;
        if gen < GEN_MASK {
            self.free.push(i);
        }
        self.live -= 1;
        self.frees += 1;
        true
    }

    /// The page's `MADV_FREE` state: 0, or [`LAZYFREE`] with [`DIRTY`] once written again.
    #[inline]
    pub fn lazy(&self, id: PageId) -> u8 {
        if self.lazy.is_empty() || !self.contains(id) {
            return 0;
        }
        self.lazy.get(&id.index()).copied().unwrap_or(0)
    }

    /// Set the page's `MADV_FREE` state (0 clears it); nothing for a page that is not live.
    pub fn set_lazy(&mut self, id: PageId, state: u8) {
        if !self.contains(id) {
            return;
        }
        if state == 0 {
            self.lazy.remove(&id.index());
        } else {
            self.lazy.insert(id.index(), state);
        }
    }

    /// Is any page lazy-free? (Paths that only matter for lazy-free pages test this first.)
    #[inline]
    pub fn has_lazy(&self) -> bool {
        !self.lazy.is_empty()
    }

    /// Why `id` does not resolve (`None` if it does).
    pub fn stale(&self, id: PageId) -> Option<Stale> {
        if self.contains(id) {
            return None;
        }
        let s = id.index() as usize;
        let Some(&w) = self.word.get(s) else { return Some(Stale::NotAPage) };
        if id.generation() >= w & GEN_MASK {
            return Some(Stale::NotAPage); // a generation this slot has not reached
        }
        if w & LIVE != 0 {
            Some(Stale::Freed(None))
        } else {
            Some(Stale::Freed(Some(((self.mapping[s] as u64) << 32) | self.index_lo[s] as u64)))
        }
    }

    /// Live pages in slot order (deterministic).
    pub fn ids(&self) -> impl Iterator<Item = PageId> + '_ {
        self.word.iter().enumerate().filter(|(_, &w)| w & LIVE != 0).map(|(i, &w)| Id::new(i as u32, w & GEN_MASK))
    }

    /// Live pages of slots `slots`, in slot order, with what a walk reads: handle,
    /// `page->mapping` as an anon_vma slot index (`None` when the mapping is held aside),
    /// `page->index` and `page_mapcount`. Straight from the columns, without decoding
    /// through the anon_vma arena.
    pub fn walk_fields(&self, slots: std::ops::Range<usize>) -> impl Iterator<Item = WalkFields> + '_ {
        let slots = slots.start.min(self.word.len())..slots.end.min(self.word.len());
        let base = slots.start;
        self.word[slots].iter().enumerate().filter(|(_, &w)| w & LIVE != 0).map(move |(k, &w)| {
            let s = base + k;
            let slot = (w & ODD_MAPPING == 0).then(|| self.mapping[s]);
            let index = self.index_at(w, s);
            (Id::new(s as u32, w & GEN_MASK), slot, index, self.mapcount_of(s as u32))
        })
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    pub fn alloc_free_counts(&self) -> (u64, u64) {
        (self.allocs, self.frees)
    }
    /// Slots ever created (live plus free).
    pub fn slots(&self) -> usize {
        self.word.len()
    }
    /// Heap bytes of the side maps (by entries; 8 bytes of key and value plus one control
    /// byte each, as `hashbrown` lays them out).
    pub fn side_bytes(&self) -> (usize, usize) {
        let len =
            (self.big_mapcount.len() + self.swap.len()) * 9 + (self.odd_mapping.len() + self.big_index.len()) * 13;
        let cap = (self.big_mapcount.capacity() + self.swap.capacity()) * 9
            + (self.odd_mapping.capacity() + self.big_index.capacity()) * 13;
        (len, cap)
    }
    /// Heap bytes held by the columns and the free list, by capacity.
    pub fn capacity_bytes(&self) -> usize {
        self.word.capacity() * 4
            + self.mapping.capacity() * 4
            + self.index_lo.capacity() * 4
            + self.mapcount.capacity() * 2
            + self.free.capacity() * 4
    }
}

// Snapshot coding (`crate::state::snapshot`). The three `u32` columns are delta coded (see
// `put_deltas`): neighbouring slots usually hold pages of one anon_vma at consecutive
// indices with equal flags, so a page takes about four bytes. The side maps are written in
// slot order.
impl crate::state::snapshot::Wire for PageStore {
    fn put(&self, w: &mut crate::state::snapshot::Writer) {
        use crate::state::snapshot::put_deltas;
        let PageStore {
            word,
            mapping,
            index_lo,
            mapcount,
            big_mapcount,
            big_index,
            swap,
            odd_mapping,
            free,
            live,
            allocs,
            frees,
            lazy,
        } = self;
        put_deltas(w, word);
        put_deltas(w, mapping);
        put_deltas(w, index_lo);
        mapcount.put(w);
        big_mapcount.put(w);
        big_index.put(w);
        swap.put(w);
        odd_mapping.put(w);
        free.put(w);
        live.put(w);
        allocs.put(w);
        frees.put(w);
        lazy.put(w);
    }
    fn get(r: &mut crate::state::snapshot::Reader<'_>) -> crate::error::Result<Self> {
        use crate::state::snapshot::{get_deltas, Wire};
        let s = PageStore {
            word: get_deltas(r)?,
            mapping: get_deltas(r)?,
            index_lo: get_deltas(r)?,
            mapcount: Wire::get(r)?,
            big_mapcount: Wire::get(r)?,
            big_index: Wire::get(r)?,
            swap: Wire::get(r)?,
            odd_mapping: Wire::get(r)?,
            free: Wire::get(r)?,
            live: Wire::get(r)?,
            allocs: Wire::get(r)?,
            frees: Wire::get(r)?,
            lazy: Wire::get(r)?,
        };
        let n = s.word.len();
        if s.mapping.len() != n
            || s.index_lo.len() != n
            || s.mapcount.len() != n
            || s.free.iter().any(|&f| f as usize >= n)
            || s.lazy.keys().any(|&k| k as usize >= n || s.word[k as usize] & LIVE == 0)
        {
            return Err(crate::error::SimError::InvalidArgument(
                "data: not a valid rmapsim snapshot: the page columns disagree".into(),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::objects::Page;

    fn av() -> AnonVma {
        AnonVma {
            index: crate::index::AnonIndex::default(),
            root: Id::new(0, 0),
            parent: Id::new(0, 0),
            refcount: 1,
            degree: 0,
            num_children: 0,
            num_active_vmas: 0,
        }
    }

    fn page(mapping: AnonVmaId, index: u64, mapcount: u32) -> Page {
        Page { mapping, index, mapcount, swap: None, anon: true }
    }

    #[test]
    fn round_trip_and_rare_fields() {
        let mut avs = Arena::default();
        let a = avs.insert(av());
        let mut ps = PageStore::default();
        let p = ps.insert(page(a, (1 << 35) + 7, 1), &mut avs);
        let got = ps.get(p, &avs).unwrap();
        assert_eq!((got.mapping, got.index, got.mapcount, got.swap, got.anon), (a, (1 << 35) + 7, 1, None, true));
        assert_eq!(ps.add_mapcount(p, 70_000), Some(70_001));
        assert_eq!(ps.mapcount(p), Some(70_001));
        assert_eq!(ps.add_mapcount(p, -70_000), Some(1));
        let mut q = got;
        q.swap = Some(9);
        q.anon = false;
        assert!(ps.set(p, q, &mut avs));
        let got = ps.get(p, &avs).unwrap();
        assert_eq!((got.swap, got.anon, got.mapcount), (Some(9), false, 1));
        assert_eq!(PageStore::SLOT_BYTES, 14);
    }

    #[test]
    fn stale_page_handles_and_freed_by() {
        let mut avs = Arena::default();
        let a = avs.insert(av());
        let mut ps = PageStore::default();
        let p = ps.insert(page(a, 1, 1), &mut avs);
        assert_eq!(ps.stale(p), None);
        assert_eq!(ps.stale(Id::new(5, 0)), Some(Stale::NotAPage));
        assert_eq!(ps.stale(Id::new(p.index(), 3)), Some(Stale::NotAPage));
        assert!(ps.remove(p, (7 << 32) | 42, &mut avs));
        assert!(ps.get(p, &avs).is_none());
        assert_eq!(ps.stale(p), Some(Stale::Freed(Some((7 << 32) | 42))));
        let q = ps.insert(page(a, 2, 1), &mut avs);
        assert_eq!(q.index(), p.index(), "LIFO reuse");
        assert_ne!(q, p);
        assert_eq!(ps.stale(p), Some(Stale::Freed(None)), "reused: stale, op unknown");
        assert!(!ps.remove(p, 8, &mut avs), "double free refused");
        assert_eq!(ps.alloc_free_counts(), (2, 1));
        assert_eq!(ps.ids().collect::<Vec<_>>(), vec![q]);
    }

    #[test]
    fn mapping_pins_the_anon_vma_slot() {
        let mut avs = Arena::default();
        let a = avs.insert(av());
        let mut ps = PageStore::default();
        let p = ps.insert(page(a, 1, 1), &mut avs);
        avs.remove(a, 3);
        // the freed anon_vma's slot is not reused while the page points at it
        let b = avs.insert(av());
        assert_ne!(b.index(), a.index());
        let got = ps.get(p, &avs).unwrap();
        assert_eq!(got.mapping, a, "the dangling page->mapping keeps its exact handle");
        assert!(!avs.contains(got.mapping));
        assert_eq!(avs.freed_by(got.mapping), Some(3));
        // the page moves to b: a's slot becomes reusable
        assert!(ps.set(p, page(b, 1, 1), &mut avs));
        let c = avs.insert(av());
        assert_eq!(c.index(), a.index());
        // a mapping that is already dangling when set is kept exactly, aside
        assert!(ps.set(p, page(a, 1, 1), &mut avs));
        assert_eq!(ps.get(p, &avs).unwrap().mapping, a);
        ps.remove(p, 9, &mut avs);
    }
}
