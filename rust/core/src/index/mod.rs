//! The anon_vma's index of the VMAs that may map its pages: the `same_anon_vma` list of
//! 2.6.33–3.6 (`anon_vma->head`), or the interval tree of 3.7+ (`anon_vma->rb_root`).
//!
//! [`AnonIndex`] owns one anon_vma's index and is the only code that depends on which
//! kind the era uses (the `index` knob, [`IndexKind`]): the kernel paths insert, remove
//! and re-key through it and the walks enumerate candidates through it; the checks ask
//! it to verify itself. Each chain entry carries its side of the index (`Avc::pos` on a
//! list, `Avc::tree` in a tree), as `anon_vma_chain` embeds `same_anon_vma` and `rb`.
//!
//! Reads need no kind: an anon_vma's entries are all on its list or all in its tree, so
//! the storage in use is the non-empty one. Insertion is told the kind.

pub mod itree;
pub mod list;

use crate::policy::IndexKind;
use crate::state::arena::Arena;
use crate::state::objects::{AnonVmaId, Avc, AvcId, Vma, VmaId};
use itree::TreeLinks;
use list::{AvList, ListEntry, ListPos};

impl IndexKind {
    /// Are entries keyed by their VMA's page-offset range (the interval tree)? Then a
    /// walk enumerates only the entries whose range holds the page, counting the tree
    /// nodes it passes, and a VMA whose range or `vm_pgoff` changes must be re-keyed
    /// (`anon_vma_interval_tree_pre_update_vma` / `post_update_vma`).
    #[inline(always)]
    pub fn keyed(self) -> bool {
        match self {
            IndexKind::List => false,
            IndexKind::IntervalTree => true,
        }
    }

    /// The kernel's name of the anon_vma field holding the index.
    pub fn field_name(self) -> &'static str {
        match self {
            IndexKind::List => "head",
            IndexKind::IntervalTree => "rb_root",
        }
    }

    /// "list" or "tree", for messages.
    pub fn noun(self) -> &'static str {
        match self {
            IndexKind::List => "list",
            IndexKind::IntervalTree => "tree",
        }
    }
}

/// One anon_vma's index of VMAs. The fields are the storage (snapshots code them in this
/// order); only this module interprets them — the harness's mutation tests alone write
/// them directly, to corrupt them on purpose.
#[derive(Clone, Default)]
#[cfg_attr(test, derive(Debug))]
pub struct AnonIndex {
    /// `anon_vma->head` (≤ 3.6): chain entries (legacy: VMAs) in kernel list order;
    /// protected by the anon_vma's (root's, 2.6.35+) lock.
    pub(crate) list: AvList,
    /// `anon_vma->rb_root` (3.7+): the same entries in an interval tree whose nodes live
    /// in the chain entries.
    pub(crate) tree: Option<AvcId>,
    /// Entries in `tree`.
    pub(crate) tree_len: u32,
}

/// The key of a VMA's entries in the interval tree: `[vm_pgoff, vm_pgoff + pages - 1]`.
#[inline]
pub fn key_of(vma: &Vma) -> (u64, u64) {
    (vma.pgoff, vma.pgoff + vma.pages() - 1)
}

impl AnonIndex {
    /// Entries held.
    #[inline]
    pub fn len(&self) -> usize {
        self.list.len() + self.tree_len as usize
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Link chain entry `avc` (whose VMA's tree key is `key`): `list_add` /
    /// `list_add_tail` (by `at_head`) on a list, `anon_vma_interval_tree_insert` with
    /// insertion number `seq` (the tie-break of equal keys) in a tree.
    pub fn insert(
        &mut self,
        kind: IndexKind,
        avcs: &mut Arena<Avc>,
        avc: AvcId,
        key: (u64, u64),
        at_head: bool,
        seq: u64,
    ) {
        if kind.keyed() {
            if let Some(c) = avcs.get_mut(avc) {
                (c.tree.start, c.tree.last) = key;
            }
            self.tree = itree::insert(avcs, self.tree, avc, seq);
            self.tree_len += 1;
            return;
        }
        let Some(vma) = avcs.get(avc).map(|c| c.vma) else { return };
        let e = ListEntry { avc: Some(avc), vma };
        let pos = if at_head { self.list.push_head(e) } else { self.list.push_tail(e) };
        if let Some(c) = avcs.get_mut(avc) {
            c.pos = pos;
        }
    }

    /// Unlink chain entry `avc` (`list_del` / `anon_vma_interval_tree_remove`); true when
    /// the index became empty.
    pub fn remove(&mut self, avcs: &mut Arena<Avc>, avc: AvcId) -> bool {
        if self.tree.is_some() {
            self.tree = itree::remove(avcs, self.tree, avc);
            self.tree_len = self.tree_len.saturating_sub(1);
            return self.tree_len == 0;
        }
        let Some(pos) = avcs.get(avc).map(|c| c.pos) else { return false };
        self.list_del(pos, avcs, |_, _| {})
    }

    /// Re-key chain entry `avc` after its VMA's range or `vm_pgoff` changed to `key`: out
    /// of the tree and back in with insertion number `seq`. Only for a keyed index.
    pub fn rekey(&mut self, avcs: &mut Arena<Avc>, avc: AvcId, key: (u64, u64), seq: u64) {
        debug_assert!(self.tree.is_some(), "re-keying an entry of a list");
        self.tree = itree::remove(avcs, self.tree, avc);
        if let Some(c) = avcs.get_mut(avc) {
            (c.tree.start, c.tree.last) = key;
        }
        self.tree = itree::insert(avcs, self.tree, avc, seq);
    }

    /// `__anon_vma_link` (≤ 2.6.33): VMA `vma` itself at the list's tail; its position.
    pub fn link_vma(&mut self, vma: VmaId) -> ListPos {
        self.list.push_tail(ListEntry { avc: None, vma })
    }

    /// `list_del` of the entry at `pos`; true when the list became empty. Compacting the
    /// list moves entries: a chain entry's `pos` is updated here, a VMA on the list (the
    /// legacy era) is handed to `moved_vma` with its new position.
    pub fn list_del(&mut self, pos: ListPos, avcs: &mut Arena<Avc>, mut moved_vma: impl FnMut(VmaId, ListPos)) -> bool {
        self.list.remove(pos);
        if self.list.wants_compaction() {
            for (e, p) in self.list.compact() {
                match e.avc {
                    Some(c) => {
                        if let Some(c) = avcs.get_mut(c) {
                            c.pos = p;
                        }
                    }
                    None => moved_vma(e.vma, p),
                }
            }
        }
        self.list.is_empty()
    }

    /// The walk's enumeration: call `f` on the VMA of every entry that may map a page at
    /// offset `pgoff`, in index order, until it returns false (`rwc->done`). A list gives
    /// every entry (`list_for_each_entry`); a tree the entries whose range holds `pgoff`
    /// (`anon_vma_interval_tree_foreach`). Returns the tree nodes examined (0 for a list).
    #[inline(always)]
    pub fn for_each_candidate(&self, avcs: &Arena<Avc>, pgoff: u64, mut f: impl FnMut(VmaId) -> bool) -> u32 {
        match self.tree {
            Some(_) => itree::query(avcs, self.tree, pgoff, &mut |_, avc| f(avc.vma)),
            None => {
                self.list.for_each_vma_while(f);
                0
            }
        }
    }

    /// Every entry in index order, as `(chain entry, VMA)` (the chain entry is `None`
    /// for a VMA on a legacy list) and, in a tree, its node and the ancestors pending
    /// when an in-order traversal reaches it; until `f` returns false. False when `f`
    /// stopped the traversal or a tree node is freed.
    pub fn for_each_entry(
        &self,
        avcs: &Arena<Avc>,
        mut f: impl FnMut(Option<AvcId>, VmaId, Option<(&TreeLinks, u32)>) -> bool,
    ) -> bool {
        if self.tree.is_none() {
            let mut go = true;
            for e in self.list.iter() {
                go = f(e.avc, e.vma, None);
                if !go {
                    break;
                }
            }
            return go;
        }
        let mut stack: Vec<AvcId> = Vec::new();
        let mut cur = self.tree;
        loop {
            while let Some(c) = cur {
                stack.push(c);
                cur = match avcs.get(c) {
                    Some(avc) => avc.tree.left,
                    None => return false,
                };
            }
            let Some(c) = stack.pop() else { return true };
            let Some(avc) = avcs.get(c) else { return false };
            if !f(Some(c), avc.vma, Some((&avc.tree, stack.len() as u32))) {
                return false;
            }
            cur = avc.tree.right;
        }
    }

    /// Why chain entry `c` (`avc`, of VMA `vma`) is not where the index says it is, if
    /// it is not: in a tree, keyed by its VMA's current range; on a list, at its
    /// recorded place.
    pub fn entry_fault(&self, kind: IndexKind, c: AvcId, avc: &Avc, vma: &Vma) -> Option<String> {
        if kind.keyed() {
            let (s, l) = key_of(vma);
            return ((avc.tree.start, avc.tree.last) != (s, l)).then(|| {
                format!(
                    "anon_vma_chain {c:?} is keyed [{:#x}, {:#x}] in the interval tree but its VMA covers pgoff [{s:#x}, {l:#x}]",
                    avc.tree.start, avc.tree.last
                )
            });
        }
        (self.list.get(avc.pos) != Some(ListEntry { avc: Some(c), vma: avc.vma }))
            .then(|| format!("anon_vma_chain {c:?} is not at its recorded place on anon_vma {:?}'s list", avc.anon_vma))
    }

    /// Verify anon_vma `a`'s index and return its entry count: a tree's shape, order,
    /// augmentation, count and ownership; a list's back-pointers (each chain entry's
    /// `pos`, or — `legacy` — each listed VMA's `anon_vma` and `av_pos`).
    pub fn verify(
        &self,
        kind: IndexKind,
        a: AnonVmaId,
        avcs: &Arena<Avc>,
        vmas: &Arena<Vma>,
        legacy: bool,
    ) -> Result<usize, String> {
        let name = a.to_u64();
        let foreign_storage = match kind.keyed() {
            true => !self.list.is_empty(),
            false => self.tree.is_some() || self.tree_len != 0,
        };
        if foreign_storage {
            return Err(format!("anon_vma {name:#x} keeps entries outside its {}", kind.noun()));
        }
        if kind.keyed() {
            let n = itree::validate(avcs, self.tree).map_err(|e| format!("anon_vma {name:#x}'s tree: {e}"))?;
            if n != self.tree_len as usize {
                return Err(format!("anon_vma {name:#x}'s tree holds {n} entries, counted {}", self.tree_len));
            }
            let mut foreign = None;
            itree::for_each(avcs, self.tree, &mut |c| {
                if avcs.get(c).is_none_or(|x| x.anon_vma != a) {
                    foreign = Some(c);
                }
            });
            return match foreign {
                Some(c) => Err(format!("anon_vma {name:#x}'s tree holds a foreign entry {c:?}")),
                None => Ok(n),
            };
        }
        for (pos, e) in self.list.iter_pos() {
            match e.avc {
                Some(c) => match avcs.get(c) {
                    Some(avc) if avc.anon_vma == a && avc.pos == pos && avc.vma == e.vma => {}
                    _ => return Err(format!("anon_vma {name:#x} lists a stale or foreign chain entry {c:?}")),
                },
                None => match vmas.get(e.vma) {
                    Some(v) if legacy && v.anon_vma == Some(a) && v.av_pos == pos => {}
                    _ => return Err(format!("anon_vma {name:#x} lists VMA {:?} that does not point back", e.vma)),
                },
            }
        }
        Ok(self.len())
    }

    /// Simulator heap the index owns outside the arenas: (by length, by capacity).
    pub fn heap_bytes(&self) -> (u64, u64) {
        let le = std::mem::size_of::<Option<ListEntry>>() as u64;
        (self.list.slots() as u64 * le, self.list.heap_bytes() as u64)
    }
}

crate::wire_struct!(AnonIndex { list, tree, tree_len });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::arena::Id;

    const AV: AnonVmaId = Id::new(0, 0);

    /// Chain entries for VMAs 1, 2, … (the VMAs themselves are not needed).
    fn entries(avcs: &mut Arena<Avc>, n: u32) -> Vec<AvcId> {
        (1..=n)
            .map(|v| avcs.insert(Avc { vma: Id::new(v, 0), anon_vma: AV, pos: 0, tree: TreeLinks::default() }))
            .collect()
    }

    fn candidates(ix: &AnonIndex, avcs: &Arena<Avc>, pgoff: u64) -> (Vec<u32>, u32) {
        let mut out = Vec::new();
        let nodes = ix.for_each_candidate(avcs, pgoff, |v| {
            out.push(v.index());
            true
        });
        (out, nodes)
    }

    #[test]
    fn a_list_gives_every_entry_in_list_add_order() {
        let (mut avcs, mut ix) = (Arena::default(), AnonIndex::default());
        let c = entries(&mut avcs, 3);
        // list_add_tail(1), list_add(2), list_add_tail(3): 2, 1, 3.
        for (&e, head) in c.iter().zip([false, true, false]) {
            ix.insert(IndexKind::List, &mut avcs, e, (0, 0), head, 0);
        }
        assert_eq!(candidates(&ix, &avcs, 12345), (vec![2, 1, 3], 0), "a list ignores the offset");
        assert!(!ix.remove(&mut avcs, c[1]));
        assert_eq!(candidates(&ix, &avcs, 0).0, vec![1, 3]);
        assert_eq!(ix.verify(IndexKind::List, AV, &avcs, &Arena::default(), false), Ok(2));
        ix.tree_len = 1;
        assert!(ix
            .verify(IndexKind::List, AV, &avcs, &Arena::default(), false)
            .unwrap_err()
            .contains("outside its list"));
    }

    #[test]
    fn a_tree_gives_the_entries_covering_the_offset_and_rekeys() {
        let (mut avcs, mut ix) = (Arena::default(), AnonIndex::default());
        let c = entries(&mut avcs, 3);
        for (k, (&e, key)) in c.iter().zip([(0, 9), (5, 5), (20, 29)]).enumerate() {
            ix.insert(IndexKind::IntervalTree, &mut avcs, e, key, false, k as u64 + 1);
        }
        assert_eq!(ix.len(), 3);
        let (at5, nodes) = candidates(&ix, &avcs, 5);
        assert_eq!(at5, vec![1, 2]);
        assert!(nodes >= 2);
        assert_eq!(candidates(&ix, &avcs, 25).0, vec![3]);
        assert_eq!(candidates(&ix, &avcs, 15).0, Vec::<u32>::new());
        ix.rekey(&mut avcs, c[2], (3, 4), 4);
        assert_eq!(candidates(&ix, &avcs, 4).0, vec![1, 3], "ordered by start: [0, 9] then [3, 4]");
        assert_eq!(candidates(&ix, &avcs, 25).0, Vec::<u32>::new());
        assert_eq!(ix.verify(IndexKind::IntervalTree, AV, &avcs, &Arena::default(), false), Ok(3));
        ix.tree_len = 4;
        assert!(ix
            .verify(IndexKind::IntervalTree, AV, &avcs, &Arena::default(), false)
            .unwrap_err()
            .contains("counted 4"));
        ix.tree_len = 3;
        assert!(!ix.remove(&mut avcs, c[0]) && !ix.remove(&mut avcs, c[1]));
        assert!(ix.remove(&mut avcs, c[2]), "the last removal empties the tree");
        assert!(ix.is_empty());
    }
}
