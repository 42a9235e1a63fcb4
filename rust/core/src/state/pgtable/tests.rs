//! Tests of `state::pgtable`.

use super::*;
use crate::state::arena::Id;

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
fn a_small_vma_is_dense_and_a_stray_entry_or_a_big_range_makes_it_paged() {
    let (start, end) = (0x10_0000u64, 0x10_0000 + 100 * 4096);
    let mut t = PteTable::default();
    t.set_in(start + 4096, p(1), start, end);
    assert!(t.dense() && t.slots() == 100 && t.populated() == 1);
    assert_eq!(t.get(start + 4096), p(1));
    assert_eq!(t.get(start), Pte::NONE);
    assert_eq!(t.get(end), Pte::NONE, "past the array");
    assert_eq!(t.span(start + 4096).map(|(a, s)| (a, s.len())), Some((start, 100)));
    let mut grown = t.clone();
    grown.set_in(end, p(3), start, end + 4096); // the VMA grew in place: still dense
    assert!(grown.dense() && grown.slots() == 101 && grown.populated() == 2);
    t.set(end + 4096, p(2)); // outside the array: table pages
    assert!(!t.dense());
    assert_eq!(t.iter().collect::<Vec<_>>(), vec![(start + 4096, p(1)), (end + 4096, p(2))]);
    t.fit(start, end + 2 * 4096);
    assert!(t.dense() && t.slots() == 102);
    assert_eq!(t.iter().collect::<Vec<_>>(), vec![(start + 4096, p(1)), (end + 4096, p(2))]);
    let mut big = t.clone();
    big.fit(start, start + (DENSE_MAX_PAGES + 1) * 4096);
    assert!(!big.dense() && big.populated() == 2);
    let right = t.extract(end, u64::MAX);
    assert_eq!((t.populated(), right.populated()), (1, 1));
    t.set(start + 4096, Pte::NONE);
    assert!(t.is_empty() && t.bytes().1 == 0, "freed with its last entry");
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
    assert_eq!(t.span(0x40_0000).map(|(a, s)| (a, s[3])), Some((0x40_0000, p(3))));
}

/// Random splits and joins of VMAs (the `vma_adjust` pattern: tables taken into a
/// pool, extracted per new range, absorbed and fitted), small and big, against a map.
#[test]
fn split_and_join_agree_with_a_map() {
    use std::collections::BTreeMap;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for round in 0..300 {
        // Two adjacent VMAs [a, m) and [m, b), small (dense) or big (paged).
        let unit = if round % 3 == 0 { 4096 * 64 } else { 4096 };
        let a = 0x1000_0000 + next(64) * 4096;
        let m = a + (1 + next(3000)) * unit / 4096 * 4096;
        let b = m + (1 + next(3000)) * unit / 4096 * 4096;
        let (mut l, mut r) = (PteTable::default(), PteTable::default());
        let mut model = BTreeMap::new();
        for k in 0..next(400) {
            let addr = a + next((b - a) / 4096) * 4096;
            let t = if addr < m { &mut l } else { &mut r };
            let (s0, e0) = if addr < m { (a, m) } else { (m, b) };
            t.set_in(addr, p(k as u32 + 1), s0, e0);
            model.insert(addr, p(k as u32 + 1));
        }
        // Join, then split again at a new boundary.
        let mut pool = PteTable::default();
        pool.absorb(l);
        pool.absorb(r);
        let cut = a + (1 + next((b - a) / 4096 - 1)) * 4096;
        let mut nl = pool.extract(a, cut);
        let mut nr = pool.extract(cut, b);
        assert!(pool.is_empty(), "round {round}: entries left behind");
        nl.fit(a, cut);
        nr.fit(cut, b);
        let got: BTreeMap<u64, Pte> = nl.iter().chain(nr.iter()).collect();
        assert_eq!(got, model, "round {round}");
        assert!(nl.iter().all(|(x, _)| x < cut) && nr.iter().all(|(x, _)| x >= cut));
        assert_eq!(nl.populated() + nr.populated(), model.len() as u64);
        for (&x, &e) in &model {
            assert_eq!(if x < cut { nl.get(x) } else { nr.get(x) }, e);
        }
        // A small part ends up dense over exactly its range.
        if (cut - a) >> PAGE_SHIFT <= DENSE_MAX_PAGES && !nl.is_empty() {
            assert_eq!(nl.dense_slice().map(|(s, e)| (s, e.len() as u64)), Some((a, (cut - a) >> PAGE_SHIFT)));
        }
    }
}
