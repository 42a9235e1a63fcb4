//! The walk cache and the grouped totals against the kernel's walks one by one, after
//! every operation of random runs in every era.
use crate::harness::fuzz::gen_op;
use crate::harness::opgen::Rng;
use crate::harness::trace::{self, Op, Outcome};
use crate::mm::rmap::WalkMode;
use crate::policy::Policy;
use crate::state::sim::Simulator;

/// The grouped full-walk totals (`walk_totals`, anon_vma by anon_vma) equal the
/// per-page walks' totals after every operation of random runs in every era, including
/// the buggy eras' dangling pointers (where both must report the same error), for all
/// pages and for a chosen list with repeats.
#[test]
fn grouped_full_walk_totals_equal_the_per_page_walks() {
    let mut compared = 0u64;
    for era in crate::policy::ERAS {
        for (seed, ext) in [(1u64, false), (2, true), (3, false), (4, true), (5, false), (6, false)] {
            let mut rng = Rng(seed.wrapping_mul(0x1234_5678_9ABC));
            let mut sim = Simulator::new(Policy::preset(era).unwrap(), seed);
            let mut runner = trace::Runner::default();
            runner.apply(&mut sim, &Op::Spawn);
            let mut live: Vec<u32> = vec![1];
            for _ in 0..1000 {
                let op = gen_op(&mut rng, &live, 0.02, ext);
                match (&op, &runner.apply(&mut sim, &op)) {
                    (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
                    (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
                    _ => {}
                }
                let ids: Vec<u64> = sim.anon_pages().iter().map(|p| p.to_u64()).collect();
                let chosen: Vec<u64> = ids.iter().rev().step_by(2).chain(ids.iter().take(3)).copied().collect();
                for pages in [None, Some(&chosen[..])] {
                    let uncached = sim.walk_totals_uncached(pages, WalkMode::Full).map_err(|e| e.to_string());
                    let grouped = sim.walk_totals(pages, WalkMode::Full, 1).map_err(|e| e.to_string());
                    let one_by_one = sim.walk_totals_per_page(pages, WalkMode::Full, 1).map_err(|e| e.to_string());
                    assert_eq!(grouped, uncached, "{era} seed {seed}");
                    assert_eq!(one_by_one, uncached, "{era} seed {seed}");
                    // page_referenced: the batch walks (with their WalkCache) against walks
                    // one by one
                    let until = WalkMode::UntilAllFound;
                    let uncached = sim.walk_totals_uncached(pages, until).map_err(|e| e.to_string());
                    let cached = sim.walk_totals_per_page(pages, until, 1).map_err(|e| e.to_string());
                    assert_eq!(cached, uncached, "{era} seed {seed} (page_referenced)");
                    let rows = sim.page_referenced(pages).map_err(|e| e.to_string());
                    let one: std::result::Result<Vec<_>, String> =
                        sim.resolve_page_ids(pages).map_err(|e| e.to_string()).and_then(|ids| {
                            ids.iter()
                                .map(|&id| sim.rmap_walk_one(id, until, |_, _| {}).map_err(|e| e.to_string()))
                                .collect()
                        });
                    match (rows, one) {
                        (Ok(rows), Ok(one)) => {
                            let mut want = crate::mm::rmap::ScanStats::default();
                            for w in &one {
                                want.push(w);
                            }
                            assert_eq!(rows, want, "{era} seed {seed} (page_referenced rows)");
                        }
                        (a, b) => assert_eq!(a.err(), b.err(), "{era} seed {seed}"),
                    }
                    compared += 1;
                }
                if live.is_empty() {
                    break;
                }
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
}
