//! Programs for property-based testing (machinery, not kernel model): a list of 64-bit
//! words decoded into operations the way the native fuzzer draws them, one word per
//! operation, against the live state of a run (which processes exist), so that
//! hypothesis can generate and shrink whole programs as plain integer lists while the
//! engine decodes and runs them at native speed. `rmapsim.testing.programs` uses it.
//!
//! Word `w` seeds the one generator (`harness::opgen`, in the fuzzer's mix) for one draw:
//! deleting a word deletes one operation, and every word is a valid operation, so any
//! list is a program.

use crate::error::{Result, SimError};
use crate::harness::opgen::{gen, Mix, Rng, BASE};
use crate::harness::trace::{Op, Outcome, Runner};
use crate::policy::Policy;
use crate::state::sim::Simulator;

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
    let mut incr = crate::harness::check_incr::IncrementalCheck::default();
    if checks.is_some() {
        incr.attach(&mut sim);
    }
    let mut runner = Runner::default();
    let mut out = RunResult { ops: Vec::with_capacity(words.len() + 1), violation: None };
    out.ops.push(Op::Spawn);
    runner.apply(&mut sim, &Op::Spawn);
    let mut live: Vec<u32> = vec![1];
    let mut ticker = crate::state::interrupt::Ticker::new();
    let mut n = 0u64;
    let mix = Mix::fuzz(extended);
    for &w in words.iter().filter(|&&w| w != 0) {
        ticker.tick_by(16)?;
        let mut op = gen(&mut Rng(w), &live, &mix, fail_rate);
        if extended {
            seek_merge(&sim, &runner, &mut op, w);
        }
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
                _ if n.is_multiple_of(k.max(1)) => {
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

/// The extended mix's one bias beyond the native fuzzer's draw (its top two bits pick one
/// move in four): a move with a destination goes where its pages' offsets line up with
/// another VMA of the process, so the moved range lands beside or over a VMA it could
/// merge with (`copy_vma`'s `vma_merge`). That is where the 2.6.33–2.6.35 copy_vma merge
/// into an unfaulted neighbour lives, which uniform destinations reach about once in 10
/// million operations.
fn seek_merge(sim: &Simulator, runner: &Runner, op: &mut Op, w: u64) {
    let Op::Mremap { p, addr, new_addr: Some(to), .. } = op else { return };
    if w >> 62 != 0 {
        return;
    }
    let Some(&pid) = runner.pids.get(*p as usize - 1) else { return };
    let Ok(vmas) = sim.vmas_of(pid as i64) else { return };
    let Some(src) = vmas.iter().find(|v| v.start <= *addr && *addr < v.end) else { return };
    let pgoff = src.pgoff + ((*addr - src.start) >> crate::state::objects::PAGE_SHIFT);
    let others: Vec<_> = vmas.iter().filter(|v| v.start != src.start && v.file == src.file).collect();
    if others.is_empty() {
        return;
    }
    let v = others[((w >> 40) % others.len() as u64) as usize];
    // where page `pgoff` would sit if `v`'s offsets continued (page aligned, in the windows)
    let at = (v.start as i128) + ((pgoff as i128 - v.pgoff as i128) << crate::state::objects::PAGE_SHIFT);
    let lo = BASE as i128;
    let hi = lo + ((2 * Mix::FUZZ.window as i128) << crate::state::objects::PAGE_SHIFT);
    if (lo..hi).contains(&at) {
        *to = at as u64;
    }
}

/// The native fuzzer's delta-debugging shrink of a program that breaks an invariant: the
/// shortest trace it finds that breaks the same invariant, and that violation's message
/// (`None` when `ops` breaks nothing when replayed with a check after every operation).
pub fn shrink(policy: &Policy, ops: &[Op]) -> Option<(String, Vec<Op>)> {
    let m = crate::harness::fuzz::first_violation(policy, ops)?;
    let small = crate::harness::fuzz::shrink(policy, ops, &crate::harness::fuzz::violation_kind(&m));
    let msg = crate::harness::fuzz::first_violation(policy, &small).unwrap_or(m);
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
        assert_eq!(
            crate::harness::fuzz::first_violation(&p, &found.1).as_deref().map(|m| &m[..11]),
            Some("invariant 4")
        );
        let (msg, small) = shrink(&p, &found.1).unwrap();
        assert!(msg.starts_with("invariant 4") && small.len() <= found.1.len(), "{msg}");
        assert_eq!(shrink(&p, &[Op::Spawn]), None);
    }

    /// A moved VMA's merge-seeking destination is where its page offsets line up with
    /// another VMA of the process: for a faulted anonymous VMA (offset = address when
    /// mapped, kept by moves), its old place next to the one it was cut from.
    #[test]
    fn seek_merge_lines_the_offsets_up() {
        use crate::state::objects::PAGE_SIZE as P;
        let mut sim = Simulator::with_era("2.6.33", 0).unwrap();
        let mut runner = Runner::default();
        for op in [
            Op::Spawn,
            Op::Mmap {
                p: 1,
                addr: Some(BASE),
                len: 4 * P,
                prot: 3,
                file: None,
                noreserve: false,
                stack: false,
                noreplace: false,
                locked: false,
            },
            Op::Touch { p: 1, addr: BASE, len: 4 * P, write: true }, // faulted: a move keeps the offsets
            Op::Mremap {
                p: 1,
                addr: BASE + 2 * P,
                old_len: 2 * P,
                new_len: 2 * P,
                may_move: true,
                new_addr: Some(BASE + 30 * P),
                dontunmap: false,
            },
        ] {
            assert!(matches!(runner.apply(&mut sim, &op), Outcome::Ok(_)), "{op}");
        }
        let back = |w: u64| {
            let mut op = Op::Mremap {
                p: 1,
                addr: BASE + 30 * P,
                old_len: 2 * P,
                new_len: 2 * P,
                may_move: true,
                new_addr: Some(BASE + 40 * P),
                dontunmap: false,
            };
            seek_merge(&sim, &runner, &mut op, w);
            match op {
                Op::Mremap { new_addr, .. } => new_addr,
                _ => unreachable!(),
            }
        };
        assert_eq!(
            back(1),
            Some(BASE + 2 * P),
            "top bits 00: the move goes where its offsets continue [BASE, BASE+2P)"
        );
        assert_eq!(back(1 << 62), Some(BASE + 40 * P), "other top bits: the drawn destination stays");
    }
}
