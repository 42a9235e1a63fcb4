//! Programs for property-based testing (machinery, not kernel model): a list of 64-bit
//! words decoded into operations the way the native fuzzer draws them, one word per
//! operation, against the live state of a run (which processes exist), so that
//! hypothesis can generate and shrink whole programs as plain integer lists while the
//! engine decodes and runs them at native speed. `rmapsim.testing.programs` uses it.
//!
//! Word `w` seeds the fuzzer's generator for one draw (`fuzz::gen_op`): deleting a word
//! deletes one operation, and every word is a valid operation, so any list is a program.

use crate::error::{Result, SimError};
use crate::fuzz::{gen_op, Rng};
use crate::policy::Policy;
use crate::sim::Simulator;
use crate::trace::{Op, Outcome, Runner};

/// Decode `words` into a program that starts with `spawn`: each word is one operation
/// for the processes alive at that point of a run in `policy` (forks and exits that
/// succeed change who is alive; a program whose processes have all exited stops there).
/// `fail_rate` and `extended` are the fuzzer's (armed allocation failures; file
/// mappings, brk, MAP_NORESERVE and MAP_STACK).
pub fn decode(policy: &Policy, seed: u64, words: &[u64], fail_rate: f64, extended: bool) -> Result<Vec<Op>> {
    Ok(run(policy, seed, words, fail_rate, extended, None)?.ops)
}

/// What [`run`] found.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// The program as decoded, from its `spawn` to the last operation run.
    pub ops: Vec<Op>,
    /// The first broken invariant (the operation that broke it is the last of `ops`).
    pub violation: Option<String>,
}

/// Decode and run `words` in one pass (see [`decode`]). With `checks = Some(k)`, the
/// structural checks run after every operation (incrementally, as in the native fuzzer) and the full `check()` (with the rmap
/// oracle) after every `k`-th and after the last, as in the native fuzzer (`k` = 1: the
/// full check every time); the run stops at the first violation. The zero word is no
/// operation, so a shrinker that zeroes a word deletes it.
pub fn run(
    policy: &Policy,
    seed: u64,
    words: &[u64],
    fail_rate: f64,
    extended: bool,
    checks: Option<u64>,
) -> Result<RunResult> {
    let mut sim = Simulator::with_policy(policy.clone(), seed)?;
    // the native fuzzer's incremental structural check (same verdicts and messages)
    let mut incr = crate::check_incr::IncrementalCheck::default();
    if checks.is_some() {
        incr.attach(&mut sim);
    }
    let mut runner = Runner::default();
    let mut out = RunResult { ops: Vec::with_capacity(words.len() + 1), violation: None };
    out.ops.push(Op::Spawn);
    runner.apply(&mut sim, &Op::Spawn);
    let mut live: Vec<u32> = vec![1];
    let mut ticker = crate::interrupt::Ticker::new();
    let mut n = 0u64;
    for &w in words.iter().filter(|&&w| w != 0) {
        ticker.tick_by(16)?;
        let op = gen_op(&mut Rng(w), &live, fail_rate, extended);
        let res = runner.apply(&mut sim, &op);
        match (&op, &res) {
            (_, Outcome::Err(SimError::Interrupted)) => return Err(SimError::Interrupted),
            (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
            (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
            _ => {}
        }
        out.ops.push(op);
        n += 1;
        if let Some(k) = checks {
            let verdict = match res {
                Outcome::Err(SimError::InvariantViolation(m)) => Err(SimError::InvariantViolation(m)),
                _ if n % k.max(1) == 0 => {
                    let r = sim.check();
                    incr.note(&mut sim);
                    r
                }
                _ => incr.check(&mut sim),
            };
            match verdict {
                Err(SimError::InvariantViolation(m)) => {
                    out.violation = Some(m);
                    return Ok(out);
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        if live.is_empty() {
            break;
        }
    }
    if checks.is_some() {
        match sim.check() {
            Err(SimError::InvariantViolation(m)) => out.violation = Some(m),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
    }
    Ok(out)
}

/// The native fuzzer's delta-debugging shrink of a program that breaks an invariant: the
/// shortest trace it finds that breaks the same invariant, and that violation's message
/// (`None` when `ops` breaks nothing when replayed with a check after every operation).
pub fn shrink(policy: &Policy, ops: &[Op]) -> Option<(String, Vec<Op>)> {
    let m = crate::fuzz::first_violation(policy, ops)?;
    let small = crate::fuzz::shrink(policy, ops, &crate::fuzz::violation_kind(&m));
    let msg = crate::fuzz::first_violation(policy, &small).unwrap_or(m);
    Some((msg, small))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_list_is_a_program_and_decoding_is_deterministic() {
        let p = Policy::preset("6.18").unwrap();
        let words: Vec<u64> = (0..300u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let a = decode(&p, 0, &words, 0.05, true).unwrap();
        assert_eq!(a, decode(&p, 0, &words, 0.05, true).unwrap());
        assert_eq!(a[0], Op::Spawn);
        assert!(a.len() <= words.len() + 1);
        // The zero word is no operation; an empty list is just the spawn.
        assert_eq!(decode(&p, 0, &[], 0.0, false).unwrap(), vec![Op::Spawn]);
        assert_eq!(decode(&p, 0, &[0, 0, 0], 0.0, false).unwrap(), vec![Op::Spawn]);
        let mut with_zeros = words.clone();
        with_zeros.insert(5, 0);
        with_zeros.insert(0, 0);
        assert_eq!(decode(&p, 0, &with_zeros, 0.05, true).unwrap(), a);
    }

    /// A run with checks stops at the first violation, which a replay of its ops finds
    /// again at the same operation.
    #[test]
    fn a_checked_run_stops_at_the_violation_a_replay_finds() {
        let p = Policy::from_spec("2.6.34+prepare_reuse=any_compatible").unwrap();
        let mut x = 7u64;
        let found = (0..400)
            .find_map(|_| {
                let words: Vec<u64> = (0..200)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        x | 1
                    })
                    .collect();
                let r = run(&p, 0, &words, 0.0, false, Some(16)).unwrap();
                r.violation.map(|m| (m, r.ops))
            })
            .expect("the variant breaks invariant 4 within 400 random programs");
        assert!(found.0.starts_with("invariant 4"), "{}", found.0);
        assert_eq!(crate::fuzz::first_violation(&p, &found.1).as_deref().map(|m| &m[..11]), Some("invariant 4"));
        let (msg, small) = shrink(&p, &found.1).unwrap();
        assert!(msg.starts_with("invariant 4") && small.len() <= found.1.len(), "{msg}");
        assert_eq!(shrink(&p, &[Op::Spawn]), None);
    }
}
