//! `anon_vma->head`: the `same_anon_vma` list of 2.6.33–3.6 (in the legacy era of VMAs,
//! from 2.6.34 of `anon_vma_chain` entries), kept in the kernel's order.

use crate::state::objects::{AvcId, VmaId};

/// Position on an [`AvList`]: `>= 0` indexes the tail part, `< 0` the head part.
pub type ListPos = i32;

/// One entry of `anon_vma->head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The chain entry (`None` in the legacy era, where VMAs sit on the list directly).
    pub avc: Option<AvcId>,
    pub vma: VmaId,
}

/// `anon_vma->head` as an order-preserving list with O(1) insertion at either end and
/// O(1) removal by position (removal leaves a hole; holes are compacted in bulk).
///
/// Kernel order is: the head part in reverse insertion order, then the tail part in
/// insertion order — exactly what `list_add` / `list_add_tail` produce.
#[derive(Clone, Default)]
#[cfg_attr(test, derive(Debug))]
pub struct AvList {
    head: Vec<Option<ListEntry>>,
    tail: Vec<Option<ListEntry>>,
    holes: u32,
}

impl AvList {
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len() - self.holes as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `list_add_tail`.
    pub fn push_tail(&mut self, e: ListEntry) -> ListPos {
        self.tail.push(Some(e));
        (self.tail.len() - 1) as ListPos
    }
    /// `list_add` (at the head).
    pub fn push_head(&mut self, e: ListEntry) -> ListPos {
        self.head.push(Some(e));
        -(self.head.len() as ListPos)
    }
    pub fn get(&self, pos: ListPos) -> Option<ListEntry> {
        if pos >= 0 {
            self.tail.get(pos as usize).copied().flatten()
        } else {
            self.head.get((-pos - 1) as usize).copied().flatten()
        }
    }
    /// `list_del`: remove the entry at `pos`.
    pub fn remove(&mut self, pos: ListPos) -> Option<ListEntry> {
        let slot = if pos >= 0 { self.tail.get_mut(pos as usize) } else { self.head.get_mut((-pos - 1) as usize) }?;
        let e = slot.take();
        if e.is_some() {
            self.holes += 1;
        }
        e
    }
    /// Entries in kernel list order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = ListEntry> + '_ {
        self.head.iter().rev().chain(self.tail.iter()).filter_map(|e| *e)
    }
    /// Call `f` on each entry's VMA in kernel order until it returns false (two plain
    /// loops: the rmap walk's hot path).
    #[inline]
    pub fn for_each_vma_while(&self, mut f: impl FnMut(VmaId) -> bool) {
        for e in self.head.iter().rev().flatten() {
            if !f(e.vma) {
                return;
            }
        }
        for e in self.tail.iter().flatten() {
            if !f(e.vma) {
                return;
            }
        }
    }
    /// Entries with their positions, in kernel order.
    pub fn iter_pos(&self) -> impl Iterator<Item = (ListPos, ListEntry)> + '_ {
        let h = self.head.iter().enumerate().rev().filter_map(|(i, e)| e.map(|e| (-(i as ListPos) - 1, e)));
        let t = self.tail.iter().enumerate().filter_map(|(i, e)| e.map(|e| (i as ListPos, e)));
        h.chain(t)
    }
    /// Should the caller compact (many holes)?
    pub fn wants_compaction(&self) -> bool {
        self.holes > 32 && self.holes as usize * 2 > self.head.len() + self.tail.len()
    }
    /// Rebuild without holes, all entries in the tail part in kernel order; returns each
    /// entry's new position so the caller can update back-pointers.
    pub fn compact(&mut self) -> Vec<(ListEntry, ListPos)> {
        let entries: Vec<ListEntry> = self.iter().collect();
        self.head.clear();
        self.tail.clear();
        self.holes = 0;
        entries.into_iter().map(|e| (e, self.push_tail(e))).collect()
    }
    /// Entries and holes held (the length of both parts).
    pub fn slots(&self) -> usize {
        self.head.len() + self.tail.len()
    }
    pub fn heap_bytes(&self) -> usize {
        (self.head.capacity() + self.tail.capacity()) * std::mem::size_of::<Option<ListEntry>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::arena::Id;

    fn e(i: u32) -> ListEntry {
        ListEntry { avc: None, vma: Id::new(i, 0) }
    }

    #[test]
    fn list_order_matches_list_add_and_list_add_tail() {
        let mut l = AvList::default();
        let a = l.push_tail(e(1));
        l.push_head(e(2));
        l.push_tail(e(3));
        let d = l.push_head(e(4));
        let order: Vec<u32> = l.iter().map(|x| x.vma.index()).collect();
        assert_eq!(order, vec![4, 2, 1, 3]);
        assert_eq!(l.remove(a), Some(e(1)));
        assert_eq!(l.remove(a), None);
        assert_eq!(l.remove(d), Some(e(4)));
        assert_eq!(l.len(), 2);
        let order: Vec<u32> = l.iter().map(|x| x.vma.index()).collect();
        assert_eq!(order, vec![2, 3]);
        let moved = l.compact();
        assert_eq!(moved.iter().map(|(x, p)| (x.vma.index(), *p)).collect::<Vec<_>>(), vec![(2, 0), (3, 1)]);
    }
}

// Snapshot coding (`crate::state::snapshot`), field by field.
crate::wire_struct!(ListEntry { avc, vma });
crate::wire_struct!(AvList { head, tail, holes });
