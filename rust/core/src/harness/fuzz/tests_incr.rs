//! Tests of the fuzzer's incremental structural checks and of its parallel workers
//! (a child module of `fuzz`, for `gen_op`).

use super::*;
use crate::policy::ERAS;
use crate::state::objects::PAGE_SIZE;

/// After every operation of random runs in every era (with and without failure injection,
/// both op mixes), the incremental check gives exactly the from-scratch structural check's
/// result, message included, with the full `check()` every 16th operation as in the
/// fuzzer. Runs stop at their first violation (the buggy eras break several times), as
/// the fuzzer does.
#[test]
fn incremental_checks_give_the_from_scratch_verdicts() {
    let (mut compared, mut broken) = (0u64, 0u64);
    let mut incr = IncrementalCheck::default();
    for era in ERAS {
        let policy = Policy::preset(era).unwrap();
        for (seed, ext, fail) in [(1u64, false, 0.02), (2, true, 0.02), (3, false, 0.0), (4, true, 0.06)] {
            let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
            for run in 0..6u64 {
                let mut sim = Simulator::new(policy.clone(), seed + run);
                incr.attach(&mut sim);
                let mut runner = trace::Runner::default();
                runner.apply(&mut sim, &Op::Spawn);
                let mut live: Vec<u32> = vec![1];
                for i in 0..400u64 {
                    let op = gen_op(&mut rng, &live, fail, ext);
                    let res = runner.apply(&mut sim, &op);
                    match (&op, &res) {
                        (_, Outcome::Err(SimError::InvariantViolation(_))) => {
                            broken += 1;
                            break;
                        }
                        (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
                        (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
                        _ => {}
                    }
                    if (i + 1) % 16 == 0 {
                        let full = sim.check();
                        incr.note(&mut sim);
                        if full.is_err() {
                            broken += 1;
                            break;
                        }
                        continue;
                    }
                    let scratch = sim.check_structure();
                    assert_eq!(incr.check(&mut sim), scratch, "{era} seed {seed} run {run} op {i}: {op}");
                    compared += 1;
                    if scratch.is_err() {
                        broken += 1;
                        break;
                    }
                    if live.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    assert_eq!(incr.disagreements, 0, "the incremental check saw problems the from-scratch one did not");
    eprintln!("{compared} compared, {broken} broken");
    assert!(compared > 80_000 && broken >= 2, "{compared} compared, {broken} broken");
}

/// A state broken behind the operations' back is caught whatever the operation touched:
/// a VMA stretched over its neighbour (its process untouched since), a page's mapcount
/// and a swap slot's count (neither tracked), an anon_vma's degree, a chain entry's
/// interval-tree key. The incremental check reports the from-scratch message each time.
#[test]
fn the_incremental_check_catches_corruption_it_was_not_told_about() {
    let build = || {
        let mut sim = Simulator::new(Policy::preset("6.18").unwrap(), 0);
        let mut incr = IncrementalCheck::default();
        incr.attach(&mut sim);
        let a = sim.spawn().unwrap() as i64;
        let base = 0x1000_0000u64;
        sim.mmap(a, 4 * PAGE_SIZE, Some(base), 3).unwrap();
        sim.mmap(a, 4 * PAGE_SIZE, Some(base + 4 * PAGE_SIZE), 1).unwrap();
        sim.touch(a, base, 4 * PAGE_SIZE, true).unwrap();
        let b = sim.fork(a).unwrap() as i64;
        sim.touch(b, base, PAGE_SIZE, true).unwrap();
        let page = sim.page_at(a, base + PAGE_SIZE).unwrap().unwrap();
        sim.try_to_unmap(Some(&[page.to_u64()])).unwrap();
        let c = sim.spawn().unwrap() as i64;
        sim.mmap(c, PAGE_SIZE, Some(base), 3).unwrap();
        assert_eq!(incr.check(&mut sim), Ok(()));
        (sim, incr, a, b)
    };
    type Corrupt = fn(&mut Simulator, i64, i64);
    let corruptions: [(&str, Corrupt); 5] = [
        ("stretched VMA", |sim, a, _| {
            let v = sim.find_vma(sim.procs[&(a as u32)].mm, 0x1000_0000).unwrap();
            sim.vmas.get_mut(v).unwrap().end += PAGE_SIZE;
        }),
        ("mapcount", |sim, _, b| {
            let page = sim.page_at(b, 0x1000_0000).unwrap().unwrap();
            sim.pages.add_mapcount(page, 1);
        }),
        ("swap count", |sim, _, _| sim.swap.iter_mut().find(|s| s.count > 0).unwrap().count += 1),
        ("degree", |sim, _, _| {
            let a = sim.avs.iter().next().unwrap().0;
            sim.avs.get_mut(a).unwrap().num_active_vmas += 1;
        }),
        ("tree key", |sim, _, _| {
            let c = sim.avcs.iter().next().unwrap().0;
            sim.avcs.get_mut(c).unwrap().tree.last += 1;
        }),
    ];
    for (what, corrupt) in corruptions {
        let (mut sim, mut incr, a, b) = build();
        corrupt(&mut sim, a, b);
        let scratch = sim.check_structure();
        assert!(matches!(scratch, Err(SimError::InvariantViolation(_))), "{what}: {scratch:?}");
        assert_eq!(incr.check(&mut sim), scratch, "{what}");
    }
}

/// The budget split, by hand: 10 over 3 workers is 4 + 3 + 3, 2 over 3 is 1 + 1 + 0.
#[test]
fn the_operation_budget_is_split_with_the_remainder_first() {
    let split = |n, j| (0..j).map(|w| worker_budget(n, j, w)).collect::<Vec<_>>();
    assert_eq!(split(10, 3), [4, 3, 3]);
    assert_eq!(split(2, 3), [1, 1, 0]);
    assert_eq!(split(7, 1), [7]);
    assert_eq!(split(0, 2), [u64::MAX, u64::MAX]);
    assert_eq!(worker_seed(99, 0), 99);
    assert_ne!(worker_seed(99, 1), worker_seed(99, 2));
}

fn cfg_jobs(era: &str, seed: u64, max_ops: u64, jobs: u32) -> FuzzConfig {
    FuzzConfig { jobs, ..super::tests::cfg(era, seed, max_ops) }
}

/// Two workers without a violation do exactly what two single-worker sessions with the
/// derived seeds and the split budget do, added up; repeated sessions agree.
#[test]
fn two_workers_add_up_to_two_single_worker_sessions() {
    let two = fuzz(&cfg_jobs("6.18", 5, 30_001, 2)).unwrap();
    let w0 = fuzz(&cfg_jobs("6.18", 5, 15_001, 1)).unwrap();
    let w1 = fuzz(&cfg_jobs("6.18", worker_seed(5, 1), 15_000, 1)).unwrap();
    assert!(two.violation.is_none() && w0.violation.is_none() && w1.violation.is_none());
    assert_eq!((two.ops, two.runs), (30_001, w0.runs + w1.runs));
    let again = fuzz(&cfg_jobs("6.18", 5, 30_001, 2)).unwrap();
    assert_eq!((again.ops, again.runs), (two.ops, two.runs));
}

/// With violations, the session reports the first in (operation index, worker) order,
/// whichever thread got there first, and counts the operations before it in that order:
/// derived by hand from each worker's own first violation (a single-worker session with
/// its seed and budget). Repeated sessions give the same report.
#[test]
fn two_workers_report_the_first_violation_in_session_order() {
    for seed in [1u64, 3] {
        let budget = 100_000;
        let solo: Vec<FuzzReport> =
            (0..2).map(|w| fuzz(&cfg_jobs("2.6.34-rc1", worker_seed(seed, w), budget, 1)).unwrap()).collect();
        // a single worker's `ops` at a violation is its index + 1
        let k: Vec<u64> = solo.iter().map(|r| r.ops - 1).collect();
        assert!(solo.iter().all(|r| r.violation.is_some()), "seed {seed}");
        let w = if k[0] <= k[1] { 0 } else { 1 };
        let want_ops = if w == 0 { (k[0] + 1) + k[0] } else { 2 * (k[1] + 1) };
        for _ in 0..2 {
            let r = fuzz(&cfg_jobs("2.6.34-rc1", seed, 2 * budget, 2)).unwrap();
            assert_eq!(r.ops, want_ops, "seed {seed}");
            assert_eq!(r.violation.as_ref().map(|v| &v.1), solo[w].violation.as_ref().map(|v| &v.1), "seed {seed}");
            assert_eq!(r.unshrunk_len, solo[w].unshrunk_len);
        }
    }
}

/// The catalogued bugs (docs/bugs.md) as (bug, era spec, seed, fail rate, extended, the
/// kind of violation the fuzzer meets first). Each 2.6.34-rc1 bug also alone on 2.6.34
/// (with `adjust_imports_upfront`, which removes 2.6.34's own case-6 defect).
const CATALOGUE: &[(&str, &str, u64, f64, bool, &str)] = &[
    ("2.6.34-rc1 (all five)", "2.6.34-rc1", 1, 0.02, false, "invariant 3"),
    (
        "prepare-time reuse",
        "2.6.34+prepare_reuse=any_compatible,adjust_imports_upfront=true",
        3,
        0.02,
        false,
        "invariant 4",
    ),
    (
        "swap-in anon_vma",
        "2.6.34+swapin_target=vma_anon_vma,adjust_imports_upfront=true",
        3,
        0.02,
        false,
        "invariant 2",
    ),
    (
        "importer clones own chain",
        "2.6.34+importer_clones_exporter=false,adjust_imports_upfront=true",
        1,
        0.02,
        false,
        "invariant 3",
    ),
    (
        "fork error path leak",
        "2.6.34+fork_error_unlinks=false,adjust_imports_upfront=true",
        4,
        0.02,
        false,
        "invariant 3",
    ),
    ("3.19 double reuse", "3.19", 9, 0.0, false, "invariant 4"),
    ("2.6.34 case-6 ENOMEM", "2.6.34", 18, 0.02, false, "use-after-free"),
    ("7.0-rc1 stale anon_vma", "7.0-rc1", 1, 0.02, false, "invariant 3"),
];

/// The rest of the table in docs/fuzzing.md (slower: `cargo test --release -- --ignored`).
const CATALOGUE_SLOW: &[(&str, &str, u64, f64, bool, &str)] = &[
    ("2.6.34-rc1 (all five)", "2.6.34-rc1", 2, 0.02, false, "invariant 3"),
    ("2.6.34-rc1 (all five)", "2.6.34-rc1", 3, 0.02, false, "invariant 4"),
    ("2.6.34-rc1 (all five)", "2.6.34-rc1", 4, 0.02, false, "invariant 2"),
    ("reversed clone", "2.6.34+clone_reverses_chain=true,adjust_imports_upfront=true", 4, 0.02, false, "invariant 2"),
    ("3.19 double reuse", "3.19", 1, 0.0, false, "invariant 4"),
    ("copy_vma merge", "2.6.35", 1, 0.0, true, "invariant 1"),
    ("2.6.34 case-6 ENOMEM", "2.6.34", 4, 0.02, false, "use-after-free"),
];

/// Where a single worker meets its first violation: (operation index, message).
fn first_find(spec: &str, seed: u64, fail_rate: f64, extended: bool, incremental: bool, every: u64) -> (u64, String) {
    let cfg = FuzzConfig {
        policy: Policy::from_spec(spec).unwrap(),
        seed,
        max_ops: 1_000_000,
        seconds: 0.0,
        fail_rate,
        run_len: 400,
        full_check_every: every,
        extended,
        jobs: 1,
        incremental,
    };
    let out = worker(&cfg, 0, Instant::now(), &AtomicU64::new(u64::MAX), None);
    let (k, m, _) = out.found.unwrap_or_else(|| panic!("{spec} seed {seed}: no violation"));
    (k, m)
}

/// The mutation check: each catalogued bug is a mutation of a correct era, and the fuzzer
/// with incremental checks finds it at the same operation, with the same message, as with
/// the from-scratch structural checks, and not later than with the full `check()` after
/// every operation.
fn incremental_checks_find_the_catalogued_bugs_as_early(rows: &[(&str, &str, u64, f64, bool, &str)]) {
    for &(bug, spec, seed, fail, ext, kind) in rows {
        let inc = first_find(spec, seed, fail, ext, true, 16);
        let scratch = first_find(spec, seed, fail, ext, false, 16);
        let every_op = first_find(spec, seed, fail, ext, false, 1);
        assert_eq!(inc, scratch, "{bug}: {spec} seed {seed}");
        assert!(inc.0 <= every_op.0, "{bug}: found at {} incrementally, {} with check() every op", inc.0, every_op.0);
        assert_eq!(violation_kind(&inc.1), kind, "{bug}: {}", inc.1);
        eprintln!("{bug} | {spec} | {seed} | {} | {} | {} | {kind}", inc.0 + 1, scratch.0 + 1, every_op.0 + 1);
    }
}

#[test]
fn incremental_checks_find_the_catalogued_bugs_as_early_as_full_checks() {
    incremental_checks_find_the_catalogued_bugs_as_early(CATALOGUE);
}

#[test]
#[ignore]
fn incremental_checks_find_the_catalogued_bugs_as_early_as_full_checks_slow() {
    incremental_checks_find_the_catalogued_bugs_as_early(CATALOGUE_SLOW);
}
