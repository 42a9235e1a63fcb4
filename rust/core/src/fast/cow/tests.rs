//! Differential tests of `cow_copy_run` against the faithful faults: every stream runs on
//! two simulators, the shortcut on and off, with the same outcomes and the same complete
//! `Debug` state after every op (counters and write stats included); the grouped
//! full-walk totals are compared with the per-page walks on the first after every op
//! (`crate::fast::totals::tests::walks_agree`). `REVIEW_SEEDS=n` for more seeds.
use crate::fast::totals::tests::{seeds, walks_agree};
use crate::harness::fuzz::{gen_op, Rng, BASE};
use crate::harness::trace::{self, Op, Outcome};
use crate::mm::mprotect::Advice;
use crate::policy::Policy;
use crate::state::objects::PAGE_SIZE;
use crate::state::sim::{Inject, Simulator};

thread_local! {
    /// Off: `cow_copy_run` does nothing, every write fault takes `handle_pte_fault`.
    pub(crate) static COW_FAST: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    /// Pages `cow_copy_run` copied, and injected allocation failures it met.
    pub(crate) static COW_HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    pub(crate) static COW_OOM: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

use crate::fast::totals::tests::ALL_ERAS;

/// A wider generator than gen_op: more processes, larger window and lengths, more COW.
pub(crate) fn gen_big(r: &mut Rng, live: &[u32], fail_rate: f64, window: u64, maxlen: u64, maxp: u64) -> Op {
    if fail_rate > 0.0 && r.chance(fail_rate) {
        return Op::Enomem { nth: Some(1 + r.below(8)) };
    }
    let p = live[r.below(live.len() as u64) as usize];
    let addr = BASE + r.below(window) * PAGE_SIZE;
    let len = (1 + r.below(maxlen)) * PAGE_SIZE;
    let prot = [3u8, 3, 1, 3, 0, 3, 3][r.below(7) as usize];
    match r.below(100) {
        0..=9 if (live.len() as u64) < maxp => Op::Fork { p },
        0..=9 => Op::Exit { p },
        10..=13 if live.len() > 1 => Op::Exit { p },
        10..=13 => Op::Fork { p },
        14 => Op::Exec { p },
        15 if r.chance(0.3) => Op::BrkBase { p, addr: BASE + 2 * window * PAGE_SIZE },
        15 => Op::Brk { p, addr: BASE + (2 * window + r.below(6)) * PAGE_SIZE },
        16..=23 if r.chance(0.4) => {
            let file = Some((1 + r.below(2) as u32, (addr - BASE) + r.below(3) * PAGE_SIZE));
            Op::Mmap { p, addr: Some(addr), len, prot, file, noreserve: false, stack: false }
        }
        16..=23 => Op::Mmap { p, addr: Some(addr), len, prot, file: None, noreserve: false, stack: false },
        24..=27 => Op::Munmap { p, addr, len },
        28..=55 => Op::Touch { p, addr, len, write: true },
        56..=62 => Op::Touch { p, addr, len, write: false },
        63..=69 => Op::Mprotect { p, addr, len, prot },
        70..=77 => {
            let advice = [
                Advice::Random,
                Advice::Normal,
                Advice::Sequential,
                Advice::DontNeed,
                Advice::PageOut,
                Advice::PageOut,
                Advice::DontFork,
                Advice::DoFork,
            ][r.below(8) as usize];
            Op::Madvise { p, addr, len, advice }
        }
        78..=86 => {
            let new_addr = if r.chance(0.5) { Some(BASE + (window + r.below(window)) * PAGE_SIZE) } else { None };
            Op::Mremap { p, addr, old_len: len, new_len: (1 + r.below(maxlen)) * PAGE_SIZE, may_move: true, new_addr }
        }
        87..=93 => Op::TryToUnmap { p, addr },
        94..=95 => Op::DropSwapCache,
        _ => Op::Touch { p, addr, len, write: true },
    }
}

fn gen_cow(r: &mut Rng, live: &[u32], fail_rate: f64) -> Op {
    if fail_rate > 0.0 && r.chance(fail_rate) {
        return Op::Enomem { nth: Some(1 + r.below(24)) };
    }
    let window = 32;
    let p = live[r.below(live.len() as u64) as usize];
    let addr = BASE + r.below(window) * PAGE_SIZE;
    let len = (1 + r.below(32)) * PAGE_SIZE;
    match r.below(100) {
        0..=14 if (live.len() as u64) < 8 => Op::Fork { p },
        0..=14 => Op::Exit { p },
        15..=17 if live.len() > 2 => Op::Exit { p },
        15..=17 => Op::Fork { p },
        18..=22 if r.chance(0.5) => {
            let file = Some((1 + r.below(2) as u32, (addr - BASE) + r.below(3) * PAGE_SIZE));
            Op::Mmap { p, addr: Some(addr), len, prot: 3, file, noreserve: false, stack: false }
        }
        18..=22 => Op::Mmap { p, addr: Some(addr), len, prot: 3, file: None, noreserve: false, stack: false },
        23..=25 => Op::Mprotect { p, addr, len, prot: [1u8, 3, 3][r.below(3) as usize] },
        26..=31 => {
            let advice = [Advice::DontNeed, Advice::PageOut, Advice::PageOut, Advice::DontFork, Advice::DoFork]
                [r.below(5) as usize];
            Op::Madvise { p, addr, len, advice }
        }
        32..=36 => {
            let new_addr = if r.chance(0.5) { Some(BASE + (window + r.below(window)) * PAGE_SIZE) } else { None };
            Op::Mremap { p, addr, old_len: len, new_len: (1 + r.below(32)) * PAGE_SIZE, may_move: true, new_addr }
        }
        37..=40 => Op::TryToUnmap { p, addr },
        41 => Op::DropSwapCache,
        42..=50 => Op::Touch { p, addr, len, write: false },
        51 => Op::Munmap { p, addr, len },
        _ => Op::Touch { p, addr, len, write: true },
    }
}

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
            gen_cow(&mut rng, &live, fail)
        } else if big {
            gen_big(&mut rng, &live, fail, 64, 24, 12)
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
