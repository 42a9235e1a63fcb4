//! The anon_vma interval tree of Linux 3.7+ (`anon_vma->rb_root`, "mm anon rmap: replace
//! same_anon_vma linked list with an interval tree", bf181b9f9d8d).
//!
//! Each `anon_vma_chain` is a node keyed by its VMA's page-offset interval
//! `[vm_pgoff, vm_pgoff + vma_pages - 1]`, augmented with the largest `last` in its
//! subtree (`rb_subtree_last`). Nodes are ordered by `start`; equal starts keep insertion
//! order (the kernel inserts an equal key to the right), so a walk visits equal intervals
//! in the order they were linked.
//!
//! The kernel balances with a red-black tree. rmapsim uses a treap whose priorities are
//! a fixed hash of the insertion sequence number: the same query semantics, order and
//! O(log n + k) cost, deterministic, but not node-for-node the kernel's shape — so
//! `tree_nodes_visited` is of the kernel's order, not its exact count.
//!
//! The nodes live inside the `Avc` objects (as `rb` lives inside `anon_vma_chain`).

use crate::state::arena::Arena;
use crate::state::objects::{Avc, AvcId};

/// Tree links and key embedded in an `Avc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeLinks {
    pub left: Option<AvcId>,
    pub right: Option<AvcId>,
    /// Interval `[start, last]` in page offsets.
    pub start: u64,
    pub last: u64,
    /// Largest `last` in this subtree (`rb_subtree_last`).
    pub subtree_last: u64,
    /// Insertion sequence number (tie-break for equal starts).
    pub seq: u64,
    pub prio: u64,
}

fn hash(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn links(a: &Arena<Avc>, n: AvcId) -> TreeLinks {
    a.get(n).map(|c| c.tree).unwrap_or_default()
}

#[inline]
fn set_children(a: &mut Arena<Avc>, n: AvcId, left: Option<AvcId>, right: Option<AvcId>) {
    let sl = |x: Option<AvcId>, a: &Arena<Avc>| x.map_or(0, |x| links(a, x).subtree_last);
    let m = sl(left, a).max(sl(right, a));
    if let Some(c) = a.get_mut(n) {
        c.tree.left = left;
        c.tree.right = right;
        c.tree.subtree_last = c.tree.last.max(m);
    }
}

#[inline]
fn key(t: &TreeLinks) -> (u64, u64) {
    (t.start, t.seq)
}

/// Split `root` into keys `< k` and keys `>= k`.
fn split(a: &mut Arena<Avc>, root: Option<AvcId>, k: (u64, u64)) -> (Option<AvcId>, Option<AvcId>) {
    let Some(n) = root else { return (None, None) };
    let t = links(a, n);
    if key(&t) < k {
        let (l, r) = split(a, t.right, k);
        set_children(a, n, t.left, l);
        (Some(n), r)
    } else {
        let (l, r) = split(a, t.left, k);
        set_children(a, n, r, t.right);
        (l, Some(n))
    }
}

/// Merge two treaps where every key of `l` is below every key of `r`.
fn merge(a: &mut Arena<Avc>, l: Option<AvcId>, r: Option<AvcId>) -> Option<AvcId> {
    match (l, r) {
        (None, x) | (x, None) => x,
        (Some(x), Some(y)) => {
            let (tx, ty) = (links(a, x), links(a, y));
            if tx.prio >= ty.prio {
                let m = merge(a, tx.right, Some(y));
                set_children(a, x, tx.left, m);
                Some(x)
            } else {
                let m = merge(a, Some(x), ty.left);
                set_children(a, y, m, ty.right);
                Some(y)
            }
        }
    }
}

/// `anon_vma_interval_tree_insert`: add node `n` (whose `start`/`last` are set) with
/// sequence number `seq`; returns the new root.
pub fn insert(a: &mut Arena<Avc>, root: Option<AvcId>, n: AvcId, seq: u64) -> Option<AvcId> {
    if let Some(c) = a.get_mut(n) {
        c.tree.seq = seq;
        c.tree.prio = hash(seq);
        c.tree.left = None;
        c.tree.right = None;
        c.tree.subtree_last = c.tree.last;
    }
    let k = key(&links(a, n));
    let (l, r) = split(a, root, k);
    let m = merge(a, l, Some(n));
    merge(a, m, r)
}

/// `anon_vma_interval_tree_remove`: take node `n` out; returns the new root.
pub fn remove(a: &mut Arena<Avc>, root: Option<AvcId>, n: AvcId) -> Option<AvcId> {
    let k = key(&links(a, n));
    remove_rec(a, root, n, k)
}

fn remove_rec(a: &mut Arena<Avc>, root: Option<AvcId>, n: AvcId, k: (u64, u64)) -> Option<AvcId> {
    let cur = root?;
    let t = links(a, cur);
    if cur == n {
        return merge(a, t.left, t.right);
    }
    if k < key(&t) {
        let l = remove_rec(a, t.left, n, k);
        set_children(a, cur, l, t.right);
    } else {
        let r = remove_rec(a, t.right, n, k);
        set_children(a, cur, t.left, r);
    }
    Some(cur)
}

/// `anon_vma_interval_tree_foreach(avc, root, pgoff, pgoff)`: call `f` for every node whose
/// interval contains `point`, in order; returns the number of tree nodes examined. `f`
/// returns false to stop the walk early (`rwc->done`).
pub fn query(a: &Arena<Avc>, root: Option<AvcId>, point: u64, f: &mut impl FnMut(AvcId, &Avc) -> bool) -> u32 {
    let mut visited = 0;
    query_rec(a, root, point, f, &mut visited);
    visited
}

/// Returns false when `f` asked to stop. Each node is looked up once and handed to `f`
/// (the walk's hot path: no second lookup, no copy of the links).
fn query_rec(
    a: &Arena<Avc>,
    n: Option<AvcId>,
    point: u64,
    f: &mut impl FnMut(AvcId, &Avc) -> bool,
    visited: &mut u32,
) -> bool {
    let Some(n) = n else { return true };
    *visited += 1;
    let Some(c) = a.get(n) else { return true };
    let t = &c.tree;
    if t.subtree_last < point {
        return true;
    }
    if !query_rec(a, t.left, point, f, visited) {
        return false;
    }
    if t.start > point {
        return true;
    }
    if t.last >= point && !f(n, c) {
        return false;
    }
    query_rec(a, t.right, point, f, visited)
}

/// In-order traversal (every node), for checks.
pub fn for_each(a: &Arena<Avc>, n: Option<AvcId>, f: &mut impl FnMut(AvcId)) {
    if let Some(x) = n {
        let t = links(a, x);
        for_each(a, t.left, f);
        f(x);
        for_each(a, t.right, f);
    }
}

/// Verify ordering, augmentation and heap property; returns the node count.
pub fn validate(a: &Arena<Avc>, root: Option<AvcId>) -> Result<usize, String> {
    fn rec(
        a: &Arena<Avc>,
        n: Option<AvcId>,
        lo: Option<(u64, u64)>,
        hi: Option<(u64, u64)>,
    ) -> Result<(usize, u64), String> {
        let Some(x) = n else { return Ok((0, 0)) };
        let Some(c) = a.get(x) else { return Err(format!("tree node {x:?} is freed")) };
        let t = c.tree;
        let k = key(&t);
        if lo.is_some_and(|l| k <= l) || hi.is_some_and(|h| k >= h) {
            return Err(format!("tree node {x:?} out of order"));
        }
        for ch in [t.left, t.right].into_iter().flatten() {
            if links(a, ch).prio > t.prio {
                return Err(format!("tree node {ch:?} breaks the heap order"));
            }
        }
        let (nl, ml) = rec(a, t.left, lo, Some(k))?;
        let (nr, mr) = rec(a, t.right, Some(k), hi)?;
        let m = t.last.max(ml).max(mr);
        if m != t.subtree_last {
            return Err(format!("tree node {x:?} has subtree_last {} but {m} below it", t.subtree_last));
        }
        Ok((nl + nr + 1, m))
    }
    rec(a, root, None, None).map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::arena::Id;
    use crate::state::objects::Avc;

    fn node(a: &mut Arena<Avc>, start: u64, last: u64) -> AvcId {
        let id = a.insert(Avc { vma: Id::new(0, 0), anon_vma: Id::new(0, 0), pos: 0, tree: TreeLinks::default() });
        if let Some(c) = a.get_mut(id) {
            c.tree.start = start;
            c.tree.last = last;
        }
        id
    }

    /// Brute force against a list: same matches, in (start, insertion) order.
    #[test]
    fn queries_match_brute_force_and_keep_insertion_order() {
        let mut a: Arena<Avc> = Arena::default();
        let mut root = None;
        let mut all = Vec::new();
        let mut seq = 0;
        let mut x = 12345u64;
        for i in 0..300u64 {
            x = hash(x);
            let start = x % 50;
            let last = start + (x >> 20) % 20;
            let n = node(&mut a, start, last);
            seq += 1;
            root = insert(&mut a, root, n, seq);
            all.push((start, seq, last, n));
            if i % 7 == 3 {
                // remove an earlier one
                let k = (x >> 40) as usize % all.len();
                let (_, _, _, victim) = all.remove(k);
                root = remove(&mut a, root, victim);
            }
            if i % 11 == 5 {
                // re-key one: remove, change, reinsert with a new sequence number
                let k = (x >> 33) as usize % all.len();
                let (_, _, _, m) = all.remove(k);
                root = remove(&mut a, root, m);
                let s2 = (x >> 7) % 50;
                if let Some(c) = a.get_mut(m) {
                    c.tree.start = s2;
                    c.tree.last = s2 + 3;
                }
                seq += 1;
                root = insert(&mut a, root, m, seq);
                all.push((s2, seq, s2 + 3, m));
            }
            assert_eq!(validate(&a, root), Ok(all.len()));
        }
        all.sort();
        for p in 0..80 {
            let want: Vec<AvcId> = all.iter().filter(|e| e.0 <= p && p <= e.2).map(|e| e.3).collect();
            let mut got = Vec::new();
            let visited = query(&a, root, p, &mut |n, _| {
                got.push(n);
                true
            });
            assert_eq!(got, want, "point {p}");
            assert!(visited as usize <= all.len());
        }
        // early stop
        let mut n = 0;
        query(&a, root, 10, &mut |_, _| {
            n += 1;
            n < 2
        });
        assert!(n <= 2);
    }
}

crate::wire_struct!(TreeLinks { left, right, start, last, subtree_last, seq, prio });
