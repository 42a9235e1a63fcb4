//! The swap device's bookkeeping: `swap_map` (one count per slot of the page-table
//! entries referring to it), the swap cache's entry per slot, the free slots and the
//! count in use. The swap rules (`mm/swapfile.c`, `mm/swap_state.c`) live in `mm/swap.rs`
//! and change a slot only through these methods; everyone may read the slots (the map
//! dereferences to a slice of [`SwapSlot`]).

use crate::state::objects::{PageId, SwapSlot};

/// The slots by number, the free ones, and how many are in use.
#[derive(Clone, Default)]
#[cfg_attr(test, derive(Debug))]
pub struct SwapMap {
    slots: Vec<SwapSlot>,
    /// Freed slots, reused last freed first.
    free_slots: Vec<u32>,
    used: u64,
}

impl std::ops::Deref for SwapMap {
    type Target = [SwapSlot];
    fn deref(&self) -> &[SwapSlot] {
        &self.slots
    }
}

/// The harness's corruption tests write slots directly.
#[cfg(test)]
impl std::ops::DerefMut for SwapMap {
    fn deref_mut(&mut self) -> &mut [SwapSlot] {
        &mut self.slots
    }
}

impl SwapMap {
    /// Take a free slot, the most recently freed first (`scan_swap_map`'s outcome here).
    pub fn alloc(&mut self) -> u32 {
        self.used += 1;
        match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(SwapSlot::default());
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Free `slot` if no entry refers to it and no page caches it.
    pub fn release_if_unused(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.count == 0 && s.cache.is_none() {
            *s = SwapSlot::default();
            self.free_slots.push(slot);
            self.used -= 1;
        }
    }

    /// One more entry refers to `slot`.
    pub fn dup(&mut self, slot: u32) {
        self.slots[slot as usize].count += 1;
    }

    /// One entry fewer refers to `slot`; the count left.
    pub fn put(&mut self, slot: u32) -> u32 {
        let s = &mut self.slots[slot as usize];
        s.count = s.count.saturating_sub(1);
        s.count
    }

    /// Set (or clear) the swap-cache page of `slot`.
    pub fn set_cache(&mut self, slot: u32, page: Option<PageId>) {
        self.slots[slot as usize].cache = page;
    }

    /// Slots in use.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Bytes the map holds by capacity.
    pub fn capacity_bytes(&self) -> u64 {
        (self.slots.capacity() * std::mem::size_of::<SwapSlot>() + self.free_slots.capacity() * 4) as u64
    }
}

crate::wire_struct!(SwapMap { slots, free_slots, used });
