//! Tests of `state::snapshot`.

use super::*;

fn round<T: Wire>(v: &T) -> (Vec<u8>, T) {
    let mut w = Writer::new();
    v.put(&mut w);
    let b = w.finish().unwrap();
    let mut r = Reader::new(&b);
    let got = T::get(&mut r).unwrap();
    assert_eq!(r.remaining(), 0);
    (b, got)
}

#[test]
fn integers_use_leb128_and_zigzag() {
    assert_eq!(round(&300u64).0, vec![0xAC, 0x02]);
    assert_eq!(round(&u64::MAX).1, u64::MAX);
    assert_eq!(round(&-1i32).0, vec![1]);
    assert_eq!(round(&i32::MIN).1, i32::MIN);
    let (b, v) = round(&vec![Some(1u32), None]);
    assert_eq!(b, vec![2, 1, 1, 0]);
    assert_eq!(v, vec![Some(1), None]);
}

#[test]
fn hostile_lengths_and_bytes_are_errors() {
    let mut r = Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2]);
    assert!(matches!(Vec::<u8>::get(&mut r), Err(SimError::InvalidArgument(_))));
    let eleven = [0xFFu8; 11];
    assert!(Reader::new(&eleven).varint().is_err());
    assert!(bool::get(&mut Reader::new(&[2])).is_err());
    assert!(u16::get(&mut Reader::new(&[0x80, 0x80, 0x04])).is_err());
}

#[test]
fn columns_are_delta_coded() {
    let col = [7u32, 8, 9, 9, 0, u32::MAX, 5];
    let mut w = Writer::new();
    put_deltas(&mut w, &col);
    let b = w.finish().unwrap();
    // deltas +7 +1 +1 0 -9 -1 +6, zigzagged: 14 2 2 0 17 1 12
    assert_eq!(b, vec![7, 14, 2, 2, 0, 17, 1, 12]);
    assert_eq!(get_deltas(&mut Reader::new(&b)).unwrap(), col);
}

#[test]
fn page_table_runs() {
    let mut e = vec![Pte::NONE; 600];
    e[3] = Pte::ZERO;
    e[599] = Pte::swap(7);
    let mut w = Writer::new();
    put_ptes(&mut w, &e);
    let b = w.finish().unwrap();
    // ZERO: gap 3, page 0 (delta 0), flags 1; swap 7: gap 595, delta +7 (zigzag 14), flags 3.
    assert_eq!(b, vec![3, 0, 1, 0xD3, 0x04, 14, 3, 0]);
    let mut out = vec![Pte::NONE; 600];
    assert_eq!(get_ptes(&mut Reader::new(&b), &mut out).unwrap(), 2);
    assert_eq!(out, e);
    let mut short = vec![Pte::NONE; 10];
    assert!(get_ptes(&mut Reader::new(&b), &mut short).is_err());
}

#[test]
fn snapshot_round_trip_and_refusals() {
    let mut s = Simulator::with_era("6.0+fork_reuse=never", 5).unwrap();
    let p = s.spawn().unwrap() as i64;
    let a = s.mmap(p, 64 << 12, None, 3).unwrap();
    s.touch(p, a, 64 << 12, true).unwrap();
    let c = s.fork(p).unwrap() as i64;
    s.touch(c, a, 8 << 12, true).unwrap();
    let b = s.to_snapshot().unwrap();
    let t = Simulator::from_snapshot(&b).unwrap();
    assert_eq!(t.to_snapshot().unwrap(), b);
    assert_eq!(t.policy(), s.policy());
    t.check().unwrap();
    for cut in [0, 7, 8, 27, b.len() - 1] {
        assert!(matches!(Simulator::from_snapshot(&b[..cut]), Err(SimError::InvalidArgument(_))), "cut {cut}");
    }
    let mut flipped = b.clone();
    flipped[40] ^= 1;
    let e = Simulator::from_snapshot(&flipped).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    let mut v4 = b.clone();
    v4[8] = 4;
    let e = Simulator::from_snapshot(&v4).unwrap_err().to_string();
    assert!(e.contains("format version 4"), "{e}");
}

/// An arena's free list and live count are checked as they are read: a free list
/// naming an occupied or out-of-range slot made the next insert panic (index out of
/// bounds) or overwrite a live object, with `check()` passing before it.
#[test]
fn arena_bookkeeping_is_checked_on_read() {
    use crate::state::arena::Arena;
    // slots: [gen 0, freed_by 0, Some(5)], then free list, pins [], live, allocs, frees
    let arena = |free: &[u8], live: u8| {
        let mut b = vec![1, 0, 0, 1, 5, free.len() as u8];
        b.extend_from_slice(free);
        b.extend_from_slice(&[0, live, 1, 0]);
        <Arena<u32> as Wire>::get(&mut Reader::new(&b))
    };
    assert!(arena(&[], 1).is_ok());
    for (free, live) in [(&[0u8][..], 1), (&[3][..], 1), (&[], 2), (&[], 0)] {
        let e = arena(free, live).expect_err("refused").to_string();
        assert!(e.contains("not a valid rmapsim snapshot"), "{e}");
    }
    // An empty slot may be listed once, not twice.
    let b = [1, 1, 7, 0, 2, 0, 0, 0, 0, 1, 1];
    assert!(<Arena<u32> as Wire>::get(&mut Reader::new(&b)).is_err());
    assert!(<Arena<u32> as Wire>::get(&mut Reader::new(&[1, 1, 7, 0, 1, 0, 0, 0, 1, 1])).is_ok());
}

/// Bytes changed behind the checksum's back (the checksum recomputed) decode to an
/// error or to some state, never to a panic: every read is bounds-checked.
#[test]
fn crafted_payloads_never_panic() {
    let mut s = Simulator::with_era("3.19", 1).unwrap();
    let p = s.spawn().unwrap() as i64;
    let a = s.mmap(p, 8 << 12, None, 3).unwrap();
    s.touch(p, a, 8 << 12, true).unwrap();
    s.fork(p).unwrap();
    let good = s.to_snapshot().unwrap();
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut ok, mut err) = (0, 0);
    for _ in 0..400 {
        let mut b = good.clone();
        let body = HEADER..b.len() - 8;
        for _ in 0..1 + next() % 4 {
            let at = body.start + (next() as usize % body.len());
            b[at] = next() as u8;
        }
        let sum = checksum(&b[body.clone()]);
        let n = b.len();
        b[n - 8..].copy_from_slice(&sum.to_le_bytes());
        match std::panic::catch_unwind(|| Simulator::from_snapshot(&b).map(|_| ())) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(_) => panic!("decoding a crafted payload panicked"),
        }
    }
    assert!(err > 150, "most single-byte changes are refused ({ok} decoded, {err} refused)");
}
