//! Differential tests of `cow_copy_run` against the faithful faults: every stream runs on
//! two simulators, the shortcut on and off, with the same outcomes and the same complete
//! `Debug` state after every op (counters and write stats included); the grouped
//! full-walk totals are compared with the per-page walks on the first after every op
//! (`crate::fast::totals::tests::walks_agree`). `REVIEW_SEEDS=n` for more seeds.
use crate::fast::totals::tests::{seeds, walks_agree};
use crate::harness::fuzz::gen_op;
use crate::harness::opgen::{gen, Mix, Rng};
use crate::harness::trace::{self, Op, Outcome};
use crate::policy::Policy;
use crate::state::sim::{Inject, Simulator};

thread_local! {
    /// Off: `cow_copy_run` does nothing, every write fault takes `handle_pte_fault`.
    pub(crate) static COW_FAST: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    /// Pages `cow_copy_run` copied, and injected allocation failures it met.
    pub(crate) static COW_HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    pub(crate) static COW_OOM: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

use crate::fast::totals::tests::ALL_ERAS;

fn dump(sim: &Simulator) -> String {
    format!("{sim:?}")
}

/// Run a stream on two simulators (COW fast path on / off), comparing outcomes and full
/// state after each op, and the grouped walk with the per-page walk on the first.
#[allow(clippy::too_many_arguments)]
fn diff_run(
    era: &str,
    seed: u64,
    nops: usize,
    big: bool,
    ext: bool,
    fail: f64,
    rate: Option<f64>,
    dump_every: usize,
) -> (u64, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9) ^ 0xC0FFEE);
    let mut a = Simulator::new(Policy::preset(era).unwrap(), seed);
    let mut b = Simulator::new(Policy::preset(era).unwrap(), seed);
    let mut ra = trace::Runner::default();
    let mut rb = trace::Runner::default();
    ra.apply(&mut a, &Op::Spawn);
    COW_FAST.with(|c| c.set(false));
    rb.apply(&mut b, &Op::Spawn);
    COW_FAST.with(|c| c.set(true));
    if let Some(p) = rate {
        a.inject_enomem(Inject::Rate(p)).unwrap();
        b.inject_enomem(Inject::Rate(p)).unwrap();
    }
    let mut live: Vec<u32> = vec![1];
    let mut seen: Vec<u64> = Vec::new();
    let mut ops = vec![Op::Spawn];
    let mut walks = 0;
    for i in 0..nops {
        let op = if big && !ext {
            gen(&mut rng, &live, &Mix::COW, fail)
        } else if big {
            gen(&mut rng, &live, &Mix::wide(64, 24, 12), fail)
        } else {
            gen_op(&mut rng, &live, fail, ext)
        };
        ops.push(op.clone());
        let oa = ra.apply(&mut a, &op);
        COW_FAST.with(|c| c.set(false));
        let ob = rb.apply(&mut b, &op);
        COW_FAST.with(|c| c.set(true));
        assert_eq!(oa, ob, "{era} seed {seed} op {i} {op}\n{}", trace::format(&ops, Some(era)));
        if dump_every > 0 && i % dump_every == 0 {
            assert!(
                dump(&a) == dump(&b),
                "{era} seed {seed} op {i} {op} state differs\n{}",
                trace::format(&ops, Some(era))
            );
        }
        match (&op, &oa) {
            (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
            (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
            _ => {}
        }
        for id in a.anon_pages() {
            if seen.len() < 4096 && rng.chance(0.05) {
                seen.push(id.to_u64());
            }
        }
        let stale: Vec<u64> = if rng.chance(0.1) { seen.iter().rev().take(3).copied().collect() } else { vec![] };
        walks += walks_agree(&a, &stale, &format!("{era} seed {seed} op {i} {op}"));
        if live.is_empty() {
            break;
        }
    }
    assert!(dump(&a) == dump(&b), "{era} seed {seed} final state differs");
    assert_eq!(a.allocations(), b.allocations());
    assert_eq!(a.allocation_sites(), b.allocation_sites());
    assert_eq!(a.write_stats(), b.write_stats());
    assert_eq!(a.op_count(), b.op_count());
    (ops.len() as u64, walks)
}

#[test]
fn review_small_streams() {
    let (mut ops, mut walks) = (0, 0);
    for &era in ALL_ERAS {
        for seed in 0..seeds() {
            for (ext, fail) in [(true, 0.02), (false, 0.02), (true, 0.15)] {
                let (o, w) = diff_run(era, seed * 7 + 1, 600, false, ext, fail, None, 1);
                ops += o;
                walks += w;
            }
        }
    }
    eprintln!("small: {ops} ops, {walks} walk comparisons");
}

#[test]
fn review_cow_streams() {
    let (mut ops, mut walks) = (0, 0);
    for &era in ALL_ERAS {
        for seed in 0..seeds() {
            for (fail, rate) in [(0.0, None), (0.08, None), (0.0, Some(0.02))] {
                let (o, w) = diff_run(era, seed * 17 + 3, 400, true, false, fail, rate, 1);
                ops += o;
                walks += w;
            }
        }
    }
    let (hits, oom) = (COW_HITS.with(|c| c.get()), COW_OOM.with(|c| c.get()));
    eprintln!("cow: cow_copy_run copies {hits}, injected ENOMEM inside it {oom}");
    assert!(hits > 1000 && oom > 10, "the fast path was exercised: {hits} copies, {oom} ENOMEM");
    eprintln!("cow: {ops} ops, {walks} walk comparisons");
}

#[test]
fn review_big_streams() {
    let (mut ops, mut walks) = (0, 0);
    for &era in ALL_ERAS {
        for seed in 0..seeds() {
            for (fail, rate) in [(0.0, None), (0.05, None), (0.0, Some(0.03))] {
                let (o, w) = diff_run(era, seed * 13 + 5, 500, true, true, fail, rate, 5);
                ops += o;
                walks += w;
            }
        }
    }
    eprintln!("big: {ops} ops, {walks} walk comparisons");
}
