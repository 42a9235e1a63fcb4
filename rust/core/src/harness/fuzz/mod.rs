//! The native fuzzer: random operation sequences over a small family of processes and a
//! small address window (so that merges, splits, overlaps, COW and swap are frequent),
//! with injected allocation failures, checked after every operation; a violation is
//! shrunk by delta debugging to a minimal trace that reproduces it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::error::{Result, SimError};
use crate::harness::check_incr::IncrementalCheck;
use crate::harness::trace::{self, Op, Outcome};
use crate::policy::Policy;
use crate::state::interrupt::{self, Ticker};
use crate::state::sim::Simulator;

/// Fuzzer settings.
#[derive(Clone, Debug)]
pub struct FuzzConfig {
    pub policy: Policy,
    pub seed: u64,
    /// Stop after this many operations (0 = no limit)…
    pub max_ops: u64,
    /// …or after this many seconds (0 = no limit).
    pub seconds: f64,
    /// Probability per operation of arming an allocation failure.
    pub fail_rate: f64,
    /// Operations per run before the state is thrown away and a new run starts.
    pub run_len: u64,
    /// Full `check()` (with the rmap oracle) every this many operations; the cheap
    /// structural checks run after every operation.
    pub full_check_every: u64,
    /// Also generate private file mappings, brk and MAP_NORESERVE mappings (off: the
    /// original operation mix, so seeds keep their streams).
    pub extended: bool,
    /// Parallel workers, 1 to [`MAX_JOBS`]; worker 0 is the single-worker fuzzer.
    pub jobs: u32,
    /// Structural checks by [`IncrementalCheck`] (recheck what each operation touched)
    /// rather than from scratch; the same verdicts and messages.
    pub incremental: bool,
}

/// What a fuzz session found.
#[derive(Clone, Debug)]
pub struct FuzzReport {
    pub ops: u64,
    pub runs: u64,
    pub seconds: f64,
    /// The violation message and the shrunk trace that reproduces it.
    pub violation: Option<(String, Vec<Op>)>,
    /// Length of the failing run before shrinking.
    pub unshrunk_len: usize,
    /// An interrupt (see `interrupt`) stopped the session: the figures are those so far,
    /// and a violation's trace is as far as shrinking got (it still reproduces).
    pub interrupted: bool,
}

pub(crate) use crate::harness::opgen::Rng;
use crate::harness::opgen::{gen, Mix};

/// One random operation of the fuzzer's mix (or its extended form) for the processes
/// `live` (symbols) of a run.
pub(crate) fn gen_op(r: &mut Rng, live: &[u32], fail_rate: f64, ext: bool) -> Op {
    gen(r, live, &Mix::fuzz(ext), fail_rate)
}

/// Replay `ops` on a fresh simulator, checking after every operation; the first
/// violation's message, if any.
pub fn first_violation(policy: &Policy, ops: &[Op]) -> Option<String> {
    let mut sim = Simulator::new(policy.clone(), 0);
    let out = trace::apply(&mut sim, ops, true);
    match out.last() {
        Some(Outcome::Err(SimError::InvariantViolation(m))) => Some(m.clone()),
        _ => None,
    }
}

/// The invariant a violation message names ("invariant N"), or the message's first words
/// (a use-after-free found by a walk).
pub(crate) fn violation_kind(m: &str) -> String {
    if let Some(i) = m.find("invariant ") {
        m[i..].split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    } else {
        m.split(':').next().unwrap_or(m).to_string()
    }
}

/// Delta debugging (ddmin), then single-operation removal: a minimal subsequence that
/// still produces a violation of the same kind. Once interrupted (see `interrupt`) no
/// candidate counts as failing, so it returns the smallest failing sequence found so far.
pub fn shrink(policy: &Policy, ops: &[Op], kind: &str) -> Vec<Op> {
    let fails = |c: &[Op]| {
        !interrupt::stopped()
            && first_violation(policy, c).is_some_and(|m| violation_kind(&m) == kind && !interrupt::stopped())
    };
    let mut cur: Vec<Op> = ops.to_vec();
    let mut n = 2usize;
    while cur.len() >= 2 {
        let chunk = cur.len().div_ceil(n);
        let mut reduced = false;
        for i in 0..n {
            let (lo, hi) = (i * chunk, ((i + 1) * chunk).min(cur.len()));
            if lo >= hi {
                break;
            }
            let complement: Vec<Op> = cur[..lo].iter().chain(&cur[hi..]).cloned().collect();
            if fails(&complement) {
                cur = complement;
                reduced = true;
                break;
            }
        }
        if reduced {
            n = (n - 1).max(2);
        } else {
            if n >= cur.len() {
                break;
            }
            n = (2 * n).min(cur.len());
        }
    }
    loop {
        let before = cur.len();
        // Drop a whole process: the op that created it and every op naming it, with the
        // later process symbols renumbered (plain removal would shift them all).
        let mut s = 1u32;
        let mut created = 0u32;
        let mut idx = 0;
        while idx < cur.len() {
            if matches!(cur[idx], Op::Spawn | Op::Fork { .. }) {
                created += 1;
                if created == s {
                    if let Some(c) = drop_process(&cur, s) {
                        if fails(&c) {
                            cur = c;
                            idx = 0;
                            created = 0;
                            continue;
                        }
                    }
                    s += 1;
                }
            }
            idx += 1;
        }
        let mut i = 0;
        while i < cur.len() {
            let mut c = cur.clone();
            c.remove(i);
            if fails(&c) {
                cur = c;
            } else {
                i += 1;
            }
        }
        if cur.len() == before {
            return cur;
        }
    }
}

/// `ops` without process `s`: its creating op and every op naming it are removed, later
/// symbols shift down by one; processes forked from `s` are forked from `s`'s parent
/// instead (or spawned, when `s` was spawned).
fn drop_process(ops: &[Op], s: u32) -> Option<Vec<Op>> {
    let mut out = Vec::with_capacity(ops.len());
    let mut created = 0u32;
    let mut parent: Option<u32> = None;
    for op in ops {
        let creates = matches!(op, Op::Spawn | Op::Fork { .. });
        if creates {
            created += 1;
        }
        if creates && created == s {
            parent = match op {
                Op::Fork { p } => Some(*p),
                _ => None,
            };
            continue;
        }
        let mut op = op.clone();
        if let Op::Fork { p } = op {
            if p == s {
                op = match parent {
                    Some(pp) => Op::Fork { p: pp },
                    None => Op::Spawn,
                };
            }
        }
        match op.process() {
            Some(p) if p == s => continue,
            Some(p) if p > s => op = op.with_process(p - 1),
            _ => {}
        }
        out.push(op);
    }
    Some(out)
}

/// Most parallel workers of one session.
pub const MAX_JOBS: u32 = 64;

/// What one worker did: its operations, the operation index at which each of its runs
/// started, and its first violation (the operation index, message, unshrunk run).
#[derive(Default)]
struct WorkerOut {
    ops: u64,
    run_starts: Vec<u64>,
    found: Option<(u64, String, Vec<Op>)>,
    interrupted: bool,
}

/// The seed of worker `w` of a session seeded `seed`: worker 0 has the session's seed
/// (so `jobs = 1` is the single-worker fuzzer), the others a splitmix64 mix of both.
pub fn worker_seed(seed: u64, w: u32) -> u64 {
    if w == 0 {
        return seed;
    }
    Rng(seed ^ (w as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next()
}

/// Worker `w`'s share of an operation budget: `max_ops / jobs`, the remainder going one
/// each to the first workers (`u64::MAX`: no limit, for `max_ops = 0`).
pub fn worker_budget(max_ops: u64, jobs: u32, w: u32) -> u64 {
    if max_ops == 0 {
        return u64::MAX;
    }
    let j = jobs.max(1) as u64;
    max_ops / j + u64::from((w as u64) < max_ops % j)
}

/// Where a worker's operation falls in the session's deterministic order: by operation
/// index within the worker, then by worker. The violation reported is the first in this
/// order, wherever the threads were when it was found.
fn order_key(i: u64, w: u32) -> u64 {
    (i << 8) | w as u64
}

/// One worker: runs of random operations until its budget, a violation, a violation of
/// another worker earlier in the session order (`best`), or an interrupt.
/// Each operation is one item of `meter`'s progress.
fn worker(cfg: &FuzzConfig, w: u32, t0: Instant, best: &AtomicU64, meter: Option<interrupt::Meter>) -> WorkerOut {
    let seed = worker_seed(cfg.seed, w);
    let budget = worker_budget(cfg.max_ops, cfg.jobs, w);
    let mut rng = Rng(seed ^ 0x5EED_F022);
    let mut out = WorkerOut::default();
    let mut ticker = Ticker::metered(meter);
    let mut incr = IncrementalCheck::default();
    let mut ops: Vec<Op> = Vec::with_capacity(cfg.run_len.min(1 << 16) as usize + 1);
    let mut live: Vec<u32> = Vec::with_capacity(Mix::FUZZ.max_procs as usize);
    let done = |n: u64| {
        n >= budget
            || order_key(n, w) > best.load(Relaxed)
            || (cfg.seconds > 0.0 && n.is_multiple_of(64) && t0.elapsed().as_secs_f64() >= cfg.seconds)
    };
    'session: while !done(out.ops) {
        out.run_starts.push(out.ops);
        let mut sim = Simulator::new(cfg.policy.clone(), seed.wrapping_add(out.run_starts.len() as u64));
        if cfg.incremental {
            incr.attach(&mut sim);
        }
        let mut runner = trace::Runner::default();
        ops.clear();
        ops.push(Op::Spawn);
        runner.apply(&mut sim, &Op::Spawn);
        live.clear();
        live.push(1);
        for i in 0..cfg.run_len {
            if done(out.ops) {
                break;
            }
            if ticker.tick_by(16).is_err() {
                out.interrupted = true;
                break 'session;
            }
            let op = gen_op(&mut rng, &live, cfg.fail_rate, cfg.extended);
            let res = runner.apply(&mut sim, &op);
            if res == Outcome::Err(SimError::Interrupted) {
                out.interrupted = true;
                break 'session;
            }
            out.ops += 1;
            ticker.advance(1);
            match (&op, &res) {
                (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
                (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
                _ => {}
            }
            ops.push(op);
            let full = cfg.full_check_every > 0 && (i + 1) % cfg.full_check_every == 0;
            let verdict = match res {
                Outcome::Err(SimError::InvariantViolation(m)) => Some(m),
                _ => {
                    let r = match (full, cfg.incremental) {
                        (true, inc) => {
                            let r = sim.check();
                            if inc {
                                incr.note(&mut sim);
                            }
                            r
                        }
                        (false, true) => incr.check(&mut sim),
                        (false, false) => sim.check_structure(),
                    };
                    match r {
                        Err(SimError::Interrupted) => {
                            out.interrupted = true;
                            break 'session;
                        }
                        r => r.err().map(|e| e.to_string()),
                    }
                }
            };
            if let Some(m) = verdict {
                best.fetch_min(order_key(out.ops - 1, w), Relaxed);
                out.found = Some((out.ops - 1, m, ops.clone()));
                break 'session;
            }
            if live.is_empty() {
                break;
            }
        }
    }
    out
}

/// Run the fuzzer: `jobs` workers (see [`worker_seed`], [`worker_budget`]). Deterministic
/// for a given seed, `jobs` and operation budget: the violation reported is the first in
/// (operation index within its worker, worker) order, and the operations and runs counted
/// are those up to it in that order. A time budget only decides where it stops (and so,
/// with several workers, what is counted and found).
pub fn fuzz(cfg: &FuzzConfig) -> Result<FuzzReport> {
    cfg.policy.validate().map_err(SimError::InvalidArgument)?;
    if !(1..=MAX_JOBS).contains(&cfg.jobs) {
        return Err(SimError::InvalidArgument(format!("jobs must be from 1 to {MAX_JOBS}, got {}", cfg.jobs)));
    }
    let t0 = Instant::now();
    let best = AtomicU64::new(u64::MAX);
    let meter = interrupt::expect(cfg.max_ops); // 0 (unknown) for a time budget
    if cfg.jobs == 1 {
        let out = worker(cfg, 0, t0, &best, meter);
        return Ok(finish(cfg, vec![out], t0));
    }
    Ok(interrupt::join_polling(|| {
        let tok = interrupt::token();
        let outs = std::thread::scope(|s| {
            let hs: Vec<_> = (0..cfg.jobs)
                .map(|w| {
                    let (tok, best, meter) = (tok.clone(), &best, meter.clone());
                    s.spawn(move || tok.enter(|| worker(cfg, w, t0, best, meter)))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        finish(cfg, outs, t0)
    }))
}

/// The session's report from its workers' results: the first violation in session order,
/// shrunk; the operations and runs up to it.
fn finish(cfg: &FuzzConfig, outs: Vec<WorkerOut>, t0: Instant) -> FuzzReport {
    let winner = (0..outs.len())
        .filter_map(|w| outs[w].found.as_ref().map(|f| (order_key(f.0, w as u32), w)))
        .min()
        .map(|(_, w)| w);
    let mut report = FuzzReport {
        ops: 0,
        runs: 0,
        seconds: 0.0,
        violation: None,
        unshrunk_len: 0,
        interrupted: outs.iter().any(|o| o.interrupted),
    };
    let k = winner.map(|w| (outs[w].found.as_ref().map_or(0, |f| f.0), w));
    for (w, o) in outs.iter().enumerate() {
        // operations before the winning one in session order
        let n = match k {
            Some((k, ww)) => o.ops.min(k + u64::from(w <= ww)),
            None => o.ops,
        };
        report.ops += n;
        report.runs += o.run_starts.partition_point(|&s| s < n) as u64;
    }
    if let Some(w) = winner {
        let (_, m, ops) = outs[w].found.clone().expect("the winner found a violation");
        report.unshrunk_len = ops.len();
        let kind = violation_kind(&m);
        let small = shrink(&cfg.policy, &ops, &kind);
        let msg = first_violation(&cfg.policy, &small).unwrap_or(m);
        report.violation = Some((msg, small));
        report.interrupted |= interrupt::stopped();
    }
    report.seconds = t0.elapsed().as_secs_f64();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg(era: &str, seed: u64, max_ops: u64) -> FuzzConfig {
        FuzzConfig {
            policy: Policy::preset(era).unwrap(),
            seed,
            max_ops,
            seconds: 0.0,
            fail_rate: 0.02,
            run_len: 300,
            full_check_every: 16,
            extended: false,
            jobs: 1,
            incremental: true,
        }
    }

    /// The default op mix is pinned: a digest of 20,000 ops of seed 7 (the stream before
    /// `noreserve` joined the extended mix), so adding ops to `--extended` cannot shift it.
    #[test]
    fn the_default_op_stream_is_pinned() {
        let digest = |ext: bool| {
            let mut r = Rng(7);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for i in 0..20_000u32 {
                let live: Vec<u32> = (1..=1 + i % 5).collect();
                for b in gen_op(&mut r, &live, 0.02, ext).to_string().bytes() {
                    h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
                }
            }
            h
        };
        assert_eq!(digest(false), 0x2ee2_7755_c087_6255);
        assert_ne!(digest(true), digest(false));
    }

    #[test]
    fn finds_and_shrinks_the_rc1_bugs_deterministically() {
        let a = fuzz(&cfg("2.6.34-rc1", 1, 200_000)).unwrap();
        let (msg, small) = a.violation.clone().expect("rc1 must break");
        assert!(small.len() < a.unshrunk_len && small.len() <= 40, "{} ops: {msg}", small.len());
        // the reproducer replays to the same kind of violation, in rc1 only
        let rc1 = Policy::preset("2.6.34-rc1").unwrap();
        assert_eq!(first_violation(&rc1, &small).map(|m| violation_kind(&m)), Some(violation_kind(&msg)));
        assert_eq!(first_violation(&Policy::preset("2.6.34").unwrap(), &small), None);
        // same seed, same result
        let b = fuzz(&cfg("2.6.34-rc1", 1, 200_000)).unwrap();
        assert_eq!(b.violation.map(|v| v.1), Some(small));
    }

    /// An interrupt during shrinking (the poll says stop on its fifth call, 100 ms in: the
    /// violation takes milliseconds to find, shrinking much longer) returns the violation
    /// with the smallest reproducer found so far.
    #[test]
    fn an_interrupt_while_shrinking_keeps_a_reproducer() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let t0 = Instant::now();
        let full = fuzz(&cfg("2.6.34-rc1", 1, 200_000)).unwrap();
        let took = t0.elapsed();
        let polls = move || calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 4;
        if took < 10 * interrupt::POLL_INTERVAL {
            return; // too fast here to be interrupted while shrinking
        }
        let r = interrupt::run(polls, || fuzz(&cfg("2.6.34-rc1", 1, 200_000))).unwrap();
        assert!(r.interrupted);
        let (msg, small) = r.violation.expect("the violation is found before the interrupt");
        assert!(small.len() <= r.unshrunk_len);
        let rc1 = Policy::preset("2.6.34-rc1").unwrap();
        assert_eq!(first_violation(&rc1, &small).map(|m| violation_kind(&m)), Some(violation_kind(&msg)));
        assert!(full.violation.is_some_and(|(_, s)| s.len() <= small.len()));
    }

    #[test]
    fn correct_eras_survive_a_short_fuzz() {
        for era in ["2.6.34", "6.0", "6.18"] {
            let r = fuzz(&cfg(era, 7, 20_000)).unwrap();
            assert!(r.violation.is_none(), "{era}: {:?}", r.violation);
            assert_eq!(r.ops, 20_000);
        }
    }
}

#[cfg(test)]
mod tests_incr;
