//! Typed generational arenas.
//!
//! Every simulated kernel object (mm, VMA, anon_vma, anon_vma_chain, page) lives in an
//! [`Arena`] and is named by a small copyable handle: a slot index plus the slot's
//! generation at allocation time. Freeing an object bumps the slot's generation, so a
//! handle kept past the free no longer resolves: [`Arena::get`] returns `None` and
//! [`Arena::freed_by`] tells which simulator operation freed it. That turns what would be
//! a use-after-free in the kernel into a detected, reportable event here.

use std::fmt;
use std::marker::PhantomData;

/// A generational handle to an object of type `T` in an [`Arena<T>`].
pub struct Id<T> {
    idx: u32,
    gen: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    pub(crate) const fn new(idx: u32, gen: u32) -> Self {
        Id { idx, gen, _t: PhantomData }
    }
    /// Slot index (stable while the object lives; reused after free).
    #[inline]
    pub fn index(self) -> u32 {
        self.idx
    }
    /// Generation of the slot when this object was allocated.
    #[inline]
    pub fn generation(self) -> u32 {
        self.gen
    }
    /// The handle as one integer, `generation << 32 | index`: what Python sees.
    #[inline]
    pub fn to_u64(self) -> u64 {
        ((self.gen as u64) << 32) | self.idx as u64
    }
    /// Inverse of [`Id::to_u64`]; the result may be stale or out of range, which
    /// [`Arena::get`] detects.
    #[inline]
    pub fn from_u64(v: u64) -> Self {
        Id::new(v as u32, (v >> 32) as u32)
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, o: &Self) -> bool {
        self.idx == o.idx && self.gen == o.gen
    }
}
impl<T> Eq for Id<T> {}
impl<T> std::hash::Hash for Id<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.to_u64().hash(h)
    }
}
impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Id<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.to_u64().cmp(&o.to_u64())
    }
}
impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}g{}", self.idx, self.gen)
    }
}

/// Generations are kept below this bound (see [`crate::state::objects::Pte`]).
pub const MAX_GENERATION: u32 = 1 << 29;

#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
struct Slot<T> {
    gen: u32,
    /// Operation number that freed the previous occupant (valid while `val` is `None`).
    freed_by: u64,
    val: Option<T>,
}

/// A slab of `T` with generational handles and a LIFO free list (like a kernel slab,
/// the most recently freed slot is reused first).
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub struct Arena<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// Per slot: references from outside that name the slot by index alone (see
    /// [`Arena::pin`]); empty for arenas that never pin.
    pins: Vec<u32>,
    live: usize,
    allocs: u64,
    frees: u64,
    /// Slots written since the last [`Arena::drain_touched`], while tracking is on.
    touched: TouchLog,
}

/// The slots an arena handed out for writing ([`Arena::get_mut`]), filled and freed since
/// the last drain, while tracking is on ([`Arena::track`]): what the incremental checks
/// recheck. Not part of a snapshot (a restored arena starts untracked).
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Default)]
pub struct TouchLog {
    on: bool,
    slots: Vec<u32>,
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Arena {
            slots: Vec::new(),
            free: Vec::new(),
            pins: Vec::new(),
            live: 0,
            allocs: 0,
            frees: 0,
            touched: TouchLog::default(),
        }
    }
}

impl<T> Arena<T> {
    /// Make room for at least `n` more inserts without allocating, fallibly; returns the
    /// inserts that now allocate nothing (free slots plus spare capacity).
    pub fn try_reserve_room(&mut self, n: usize) -> std::result::Result<usize, std::collections::TryReserveError> {
        let spare = self.slots.capacity() - self.slots.len();
        if self.free.len() + spare < n {
            self.slots.try_reserve(n)?;
        }
        Ok(self.free.len() + self.slots.capacity() - self.slots.len())
    }

    /// Record writes to slots from now on (`true`) or stop (`false`, dropping the log).
    pub fn track(&mut self, on: bool) {
        self.touched.on = on;
        self.touched.slots.clear();
    }

    /// Move the slots written, filled or freed since the last drain into `out` (in order,
    /// with repeats); empty unless tracking is on.
    pub fn drain_touched(&mut self, out: &mut Vec<u32>) {
        out.append(&mut self.touched.slots);
    }

    #[inline]
    fn touch(&mut self, idx: u32) {
        if self.touched.on {
            self.touched.slots.push(idx);
        }
    }

    /// Place `val` in a slot and return its handle.
    pub fn insert(&mut self, val: T) -> Id<T> {
        self.live += 1;
        self.allocs += 1;
        let id = if let Some(idx) = self.free.pop() {
            let s = &mut self.slots[idx as usize];
            s.val = Some(val);
            Id::new(idx, s.gen)
        } else {
            let idx = self.slots.len() as u32;
            self.slots.push(Slot { gen: 0, freed_by: 0, val: Some(val) });
            Id::new(idx, 0)
        };
        self.touch(id.idx);
        id
    }

    /// Free the object; `op` is the simulator operation number doing it.
    pub fn remove(&mut self, id: Id<T>, op: u64) -> Option<T> {
        let s = self.slots.get_mut(id.idx as usize)?;
        if s.gen != id.gen || s.val.is_none() {
            return None;
        }
        let v = s.val.take();
        s.gen = s.gen.wrapping_add(1);
        let gen = s.gen;
        s.freed_by = op;
        // Generations stay below 2^29 so that a page handle packs into a PTE; a slot
        // that reaches it is retired rather than reused.
        if gen < MAX_GENERATION && self.pins.get(id.idx as usize).is_none_or(|&n| n == 0) {
            self.free.push(id.idx);
        }
        self.live -= 1;
        self.frees += 1;
        self.touch(id.idx);
        v
    }

    /// Count one reference to slot `idx` held by index alone (a page's `page->mapping`):
    /// until every pin is dropped, a freed slot is not reused, so the index keeps naming
    /// the object it was taken for, live or freed ([`Arena::handle_at`]).
    pub fn pin(&mut self, idx: u32) {
        if self.pins.len() <= idx as usize {
            self.pins.resize(idx as usize + 1, 0);
        }
        self.pins[idx as usize] += 1;
    }

    /// Drop a pin; the last pin of a freed slot makes it reusable.
    pub fn unpin(&mut self, idx: u32) {
        let Some(n) = self.pins.get_mut(idx as usize) else { return };
        *n = n.saturating_sub(1);
        if *n == 0 {
            if let Some(s) = self.slots.get(idx as usize) {
                if s.val.is_none() && s.gen < MAX_GENERATION {
                    self.free.push(idx);
                }
            }
        }
    }

    /// The handle of slot `idx`'s object: the live one, or the one freed last (for a
    /// pinned slot, the object the pin was taken for).
    #[inline]
    pub fn handle_at(&self, idx: u32) -> Option<Id<T>> {
        let s = self.slots.get(idx as usize)?;
        match s.val {
            Some(_) => Some(Id::new(idx, s.gen)),
            None => Some(Id::new(idx, s.gen.checked_sub(1)?)),
        }
    }

    #[inline]
    pub fn get(&self, id: Id<T>) -> Option<&T> {
        match self.slots.get(id.idx as usize) {
            Some(s) if s.gen == id.gen => s.val.as_ref(),
            _ => None,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, id: Id<T>) -> Option<&mut T> {
        if self.touched.on {
            self.touched.slots.push(id.idx);
        }
        match self.slots.get_mut(id.idx as usize) {
            Some(s) if s.gen == id.gen => s.val.as_mut(),
            _ => None,
        }
    }

    #[inline]
    pub fn contains(&self, id: Id<T>) -> bool {
        self.get(id).is_some()
    }

    /// If `id` names a slot whose object was freed, the operation number of the most
    /// recent free of that slot (the free that made `id` stale, unless the slot was reused
    /// and freed again since).
    pub fn freed_by(&self, id: Id<T>) -> Option<u64> {
        let s = self.slots.get(id.idx as usize)?;
        if id.gen < s.gen {
            Some(s.freed_by)
        } else {
            None
        }
    }

    /// Live objects.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    /// Allocations and frees since creation (for the accounting invariant).
    pub fn alloc_free_counts(&self) -> (u64, u64) {
        (self.allocs, self.frees)
    }

    /// Live objects in slot order (deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (Id<T>, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.val.as_ref().map(|v| (Id::new(i as u32, s.gen), v)))
    }

    /// Bytes of one slot (the object, its generation and free bookkeeping).
    pub const fn slot_size() -> usize {
        std::mem::size_of::<Slot<T>>()
    }
    /// Slots ever created (live plus free); `slot_size() * slots()` bytes are in use.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Heap bytes held by the slot vector (not counting what `T` owns).
    pub fn slot_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<T>>()
            + (self.free.capacity() + self.pins.capacity()) * std::mem::size_of::<u32>()
    }
}

// Snapshot coding (`crate::state::snapshot`).
crate::wire_struct!(Slot<T> { gen, freed_by, val });
/// An arena's bookkeeping is checked as it is read (`check()` sees objects, not free
/// lists): every free-list entry names an empty slot below the slot count, once, and
/// `live` counts the occupied slots. A snapshot that breaks this is refused rather than
/// left to panic on the next insert.
impl<T: crate::state::snapshot::Wire> crate::state::snapshot::Wire for Arena<T> {
    fn put(&self, w: &mut crate::state::snapshot::Writer) {
        let Arena { slots, free, pins, live, allocs, frees, touched: _ } = self;
        slots.put(w);
        free.put(w);
        pins.put(w);
        live.put(w);
        allocs.put(w);
        frees.put(w);
    }
    fn get(r: &mut crate::state::snapshot::Reader<'_>) -> crate::error::Result<Self> {
        use crate::state::snapshot::Wire;
        let (slots, free, pins): (Vec<Slot<T>>, Vec<u32>, Vec<u32>) = Wire::get(r)?;
        let (live, allocs, frees): (usize, u64, u64) = Wire::get(r)?;
        let bad = |m: &str| crate::error::SimError::InvalidArgument(format!("data: not a valid rmapsim snapshot: {m}"));
        let mut listed = vec![false; slots.len()];
        for &i in &free {
            match slots.get(i as usize) {
                Some(s) if s.val.is_none() && !listed[i as usize] => listed[i as usize] = true,
                _ => {
                    return Err(bad("an arena's free list names a slot that is out of range, occupied or listed twice"))
                }
            }
        }
        if slots.iter().filter(|s| s.val.is_some()).count() != live {
            return Err(bad("an arena's live count does not match its occupied slots"));
        }
        Ok(Arena { slots, free, pins, live, allocs, frees, touched: TouchLog::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_are_detected_and_slots_reused() {
        let mut a: Arena<&str> = Arena::default();
        let x = a.insert("x");
        assert_eq!(a.get(x), Some(&"x"));
        assert_eq!(a.remove(x, 7), Some("x"));
        assert!(a.get(x).is_none());
        assert_eq!(a.freed_by(x), Some(7));
        let y = a.insert("y");
        assert_eq!(y.index(), x.index(), "LIFO reuse of the freed slot");
        assert_ne!(y, x);
        assert!(a.get(x).is_none(), "old handle stays stale after reuse");
        assert_eq!(a.freed_by(y), None);
        assert_eq!(a.remove(x, 8), None, "double free is refused");
        assert_eq!(a.len(), 1);
        assert_eq!(a.alloc_free_counts(), (2, 1));
        assert_eq!(Id::<&str>::from_u64(y.to_u64()), y);
    }

    #[test]
    fn out_of_range_handle_is_none() {
        let a: Arena<u8> = Arena::default();
        assert!(a.get(Id::new(5, 0)).is_none());
        assert_eq!(a.freed_by(Id::new(5, 0)), None);
    }
}
