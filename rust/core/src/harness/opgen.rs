//! The one random-operation generator of the Rust side (machinery, not kernel model): the
//! native fuzzer (`harness::fuzz`), the property-test programs (`harness::program`, one
//! draw per 64-bit word) and the fast paths' differential tests (`crate::fast`) all draw
//! their operations here, each with its own [`Mix`]: which operations, how often, over
//! what address window and lengths.
//!
//! One draw reads, in order: the armed-failure coin, the process, the address, the
//! length, the protection, the operation (a number below 100 against the mix's
//! [`Mix::shares`]), then what that operation needs. The default mix ([`Mix::FUZZ`]) is
//! the fuzzer's original stream, pinned by a test so that seeds keep finding what they
//! found.

use crate::harness::trace::Op;
use crate::mm::mprotect::Advice;
use crate::state::objects::PAGE_SIZE;

/// splitmix64: the generator's source of randomness. A program's word seeds one (one
/// operation per word), the fuzzer's session seed one per worker.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Where the generated ranges start: the window is `BASE` and the `window` pages after it
/// (moves may also land in the `window` pages after that, the heap right above both).
pub(crate) const BASE: u64 = 0x1000_0000;

/// One operation mix of [`gen`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    /// Pages of the address window; lengths are 1 to `max_len` pages.
    pub window: u64,
    pub max_len: u64,
    /// A fork needs fewer live processes than this (else it exits instead); an exit more
    /// than `exit_above` (else it forks instead).
    pub max_procs: u64,
    pub exit_above: usize,
    /// An armed failure fails the 1st to `enomem_max`-th allocation from now.
    pub enomem_max: u64,
    /// Protections drawn for mmap and mprotect; `mmap_prot` overrides the mmap's.
    pub prots: &'static [u8],
    pub mmap_prot: Option<u8>,
    pub advice: &'static [Advice],
    /// Advice drawn after `advice` (as if appended to it).
    pub more_advice: &'static [Advice],
    /// Chances of a private file mapping (and the page offsets its file offset may add),
    /// of MAP_NORESERVE and of MAP_STACK; 0 draws nothing.
    pub file: f64,
    pub file_slots: u64,
    pub noreserve: f64,
    pub stack: f64,
    /// Chances of MAP_FIXED_NOREPLACE (anonymous mmaps) and of MREMAP_DONTUNMAP (a move
    /// of the same length); 0 draws nothing.
    pub noreplace: f64,
    pub dontunmap: f64,
    /// Chance of MAP_LOCKED on an anonymous mmap; 0 draws nothing.
    pub locked: f64,
    /// brk at the exec slot (half the time), else exec only.
    pub brk: bool,
    /// Moves land anywhere in both windows, rather than in the second one.
    pub move_anywhere: bool,
    /// `(operation, share of 100)` in draw order; what is left over is a write touch.
    pub shares: &'static [(Pick, u64)],
    /// Shares drawn after `shares` (as if appended to it).
    pub more_shares: &'static [(Pick, u64)],
}

/// The extended mix's advice: [`ADVICE_7`] and `MADV_FREE` (twice as often as the others).
const ADVICE_EXT: &[Advice] = &[
    Advice::Random,
    Advice::Normal,
    Advice::Sequential,
    Advice::DontNeed,
    Advice::PageOut,
    Advice::DontFork,
    Advice::DoFork,
    Advice::Free,
    Advice::Free,
];

/// The fuzzer's original seven advice values (the head of [`ADVICE_EXT`]).
const ADVICE_7: &[Advice] = ADVICE_EXT.split_at(7).0;

/// What a draw picks; [`gen`] then draws the operation's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pick {
    Fork,
    Exit,
    /// exec, or (in a mix with `brk`) brk or its base half the time
    Exec,
    Mmap,
    Munmap,
    TouchWrite,
    TouchRead,
    Mprotect,
    Madvise,
    Mremap,
    TryToUnmap,
    DropSwapCache,
    /// mlock (on-fault a third of the time), munlock, mlockall, munlockall
    Mlock,
    /// prctl(PR_SET_MEMORY_MERGE) on or off
    MemoryMerge,
}

use Pick as K;

/// The fuzzer's shares.
const FUZZ_SHARES: &[(Pick, u64)] = &[
    (K::Fork, 10),
    (K::Exit, 5),
    (K::Exec, 1),
    (K::Mmap, 10),
    (K::Munmap, 5),
    (K::TouchWrite, 20),
    (K::TouchRead, 6),
    (K::Mprotect, 10),
    (K::Madvise, 10),
    (K::Mremap, 8),
    (K::TryToUnmap, 9),
    (K::DropSwapCache, 3),
];

/// What the extended mix draws beyond the fuzzer's: the lock family and KSM's prctl
/// (shares taken from what was left to write touches), and KSM's two advice.
const EXT_SHARES: &[(Pick, u64)] = &[(K::Mlock, 2), (K::MemoryMerge, 1)];
const EXT_ADVICE: &[Advice] = &[Advice::Mergeable, Advice::Unmergeable];

impl Mix {
    /// The native fuzzer's original mix: a 24-page window, 1–4 page ranges, 6 processes.
    pub(crate) const FUZZ: Mix = Mix {
        window: 24,
        max_len: 4,
        max_procs: 6,
        exit_above: 1,
        enomem_max: 4,
        prots: &[3, 3, 1, 3, 0],
        mmap_prot: None,
        advice: ADVICE_7,
        more_advice: &[],
        file: 0.0,
        file_slots: 2,
        noreserve: 0.0,
        stack: 0.0,
        noreplace: 0.0,
        dontunmap: 0.0,
        locked: 0.0,
        brk: false,
        move_anywhere: false,
        shares: FUZZ_SHARES,
        more_shares: &[],
    };

    /// `--extended`: also private file mappings, brk, MAP_NORESERVE, MAP_STACK,
    /// MAP_FIXED_NOREPLACE, MREMAP_DONTUNMAP, MADV_FREE and MAP_LOCKED, moves anywhere
    /// in both windows, the mlock family, KSM's advice and prctl.
    pub(crate) const FUZZ_EXT: Mix = Mix {
        file: 0.3,
        noreserve: 0.2,
        stack: 0.15,
        noreplace: 0.15,
        dontunmap: 0.2,
        advice: ADVICE_EXT,
        brk: true,
        move_anywhere: true,
        locked: 0.05,
        more_advice: EXT_ADVICE,
        more_shares: EXT_SHARES,
        ..Mix::FUZZ
    };

    /// The fuzzer's mix, or its extended form.
    pub(crate) fn fuzz(extended: bool) -> Mix {
        if extended {
            Mix::FUZZ_EXT
        } else {
            Mix::FUZZ
        }
    }

    /// Wider: more processes, a larger window and longer ranges, more write touches
    /// (the fast paths' differential tests).
    #[cfg(test)]
    pub(crate) const fn wide(window: u64, max_len: u64, max_procs: u64) -> Mix {
        Mix {
            window,
            max_len,
            max_procs,
            enomem_max: 8,
            prots: &[3, 3, 1, 3, 0, 3, 3],
            advice: &[
                Advice::Random,
                Advice::Normal,
                Advice::Sequential,
                Advice::DontNeed,
                Advice::PageOut,
                Advice::PageOut,
                Advice::DontFork,
                Advice::DoFork,
            ],
            file: 0.4,
            file_slots: 3,
            brk: true,
            shares: &[
                (K::Fork, 10),
                (K::Exit, 4),
                (K::Exec, 2),
                (K::Mmap, 8),
                (K::Munmap, 4),
                (K::TouchWrite, 28),
                (K::TouchRead, 7),
                (K::Mprotect, 7),
                (K::Madvise, 8),
                (K::Mremap, 9),
                (K::TryToUnmap, 7),
                (K::DropSwapCache, 2),
                (K::Mlock, 3),
            ],
            locked: 0.05,
            ..Mix::FUZZ
        }
    }

    /// Mostly COW: many forks of writable mappings written again and again (the COW-run
    /// shortcut's differential test).
    #[cfg(test)]
    pub(crate) const COW: Mix = Mix {
        window: 32,
        max_len: 32,
        max_procs: 8,
        exit_above: 2,
        enomem_max: 24,
        prots: &[1, 3, 3],
        mmap_prot: Some(3),
        advice: &[Advice::DontNeed, Advice::PageOut, Advice::PageOut, Advice::DontFork, Advice::DoFork],
        file: 0.5,
        file_slots: 3,
        shares: &[
            (K::Fork, 15),
            (K::Exit, 3),
            (K::Mmap, 5),
            (K::Mprotect, 3),
            (K::Madvise, 6),
            (K::Mremap, 5),
            (K::TryToUnmap, 4),
            (K::DropSwapCache, 1),
            (K::TouchRead, 9),
            (K::Munmap, 1),
        ],
        ..Mix::FUZZ
    };
}

/// The operation a draw of `x` (below 100) picks from the mix's shares (then its
/// `more_shares`): the first whose running total passes `x`, else a write touch.
fn pick(m: &Mix, x: u64) -> Pick {
    let mut total = 0;
    for &(k, n) in m.shares.iter().chain(m.more_shares) {
        total += n;
        if x < total {
            return k;
        }
    }
    K::TouchWrite
}

/// One random operation for the processes `live` (symbols) of a run, drawn from `r` in
/// the mix `m`; with probability `fail_rate` an armed allocation failure instead.
pub(crate) fn gen(r: &mut Rng, live: &[u32], m: &Mix, fail_rate: f64) -> Op {
    if fail_rate > 0.0 && r.chance(fail_rate) {
        return Op::Enomem { nth: Some(1 + r.below(m.enomem_max)) };
    }
    let p = live[r.below(live.len() as u64) as usize];
    let addr = BASE + r.below(m.window) * PAGE_SIZE;
    let len = (1 + r.below(m.max_len)) * PAGE_SIZE;
    let prot = m.prots[r.below(m.prots.len() as u64) as usize];
    let coin = |r: &mut Rng, p: f64| p > 0.0 && r.chance(p);
    let kind = match pick(m, r.below(100)) {
        K::Fork if live.len() as u64 >= m.max_procs => K::Exit,
        K::Exit if live.len() <= m.exit_above => K::Fork,
        k => k,
    };
    match kind {
        K::Fork => Op::Fork { p },
        K::Exit => Op::Exit { p },
        K::Exec if !m.brk || r.chance(0.5) => Op::Exec { p },
        // the heap sits right after the window (and its moves), so brk meets mmaps there
        K::Exec if r.chance(0.3) => Op::BrkBase { p, addr: BASE + 2 * m.window * PAGE_SIZE },
        K::Exec => Op::Brk { p, addr: BASE + (2 * m.window + r.below(6)) * PAGE_SIZE },
        K::Mmap => {
            let prot = m.mmap_prot.unwrap_or(prot);
            if coin(r, m.file) {
                // two files, offset = window slot (+ a page or two) so that neighbours
                // sometimes continue each other
                let file = Some((1 + r.below(2) as u32, (addr - BASE) + r.below(m.file_slots) * PAGE_SIZE));
                let noreserve = coin(r, m.noreserve);
                let (noreplace, locked) = (false, false);
                Op::Mmap { p, addr: Some(addr), len, prot, file, noreserve, stack: false, noreplace, locked }
            } else {
                let (noreserve, stack) = (coin(r, m.noreserve), coin(r, m.stack));
                let noreplace = coin(r, m.noreplace);
                let locked = coin(r, m.locked);
                Op::Mmap { p, addr: Some(addr), len, prot, file: None, noreserve, stack, noreplace, locked }
            }
        }
        K::Munmap => Op::Munmap { p, addr, len },
        K::TouchWrite => Op::Touch { p, addr, len, write: true },
        K::TouchRead => Op::Touch { p, addr, len, write: false },
        K::Mprotect => Op::Mprotect { p, addr, len, prot },
        K::Madvise => {
            let i = r.below((m.advice.len() + m.more_advice.len()) as u64) as usize;
            let advice = m.advice.get(i).copied().unwrap_or_else(|| m.more_advice[i - m.advice.len()]);
            Op::Madvise { p, addr, len, advice }
        }
        K::Mremap => {
            // moves land in the second window; with `move_anywhere` anywhere in both, so
            // a VMA can also move back beside what was mapped at its old place meanwhile
            let (lo, span) = if m.move_anywhere { (0, 2 * m.window) } else { (m.window, m.window) };
            let new_addr = if r.chance(0.5) { Some(BASE + (lo + r.below(span)) * PAGE_SIZE) } else { None };
            let new_len = (1 + r.below(m.max_len)) * PAGE_SIZE;
            // MREMAP_DONTUNMAP needs old_len == new_len (else EINVAL)
            let dontunmap = coin(r, m.dontunmap);
            let new_len = if dontunmap { len } else { new_len };
            Op::Mremap { p, addr, old_len: len, new_len, may_move: true, new_addr, dontunmap }
        }
        K::TryToUnmap => Op::TryToUnmap { p, addr },
        K::DropSwapCache => Op::DropSwapCache,
        K::Mlock => match r.below(20) {
            0..=8 => Op::Mlock { p, addr, len, onfault: r.chance(0.3) },
            9..=13 => Op::Munlock { p, addr, len },
            14..=16 => Op::Mlockall { p, current: r.chance(0.7), future: r.chance(0.4), onfault: r.chance(0.2) },
            _ => Op::Munlockall { p },
        },
        K::MemoryMerge => Op::MemoryMerge { p, on: r.chance(0.5) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::ops::{OpSpec, OPS};

    /// The registry's `fuzzed` marks are what the fuzzer's extended mix generates: an
    /// operation added to the registry is either given a share here or marked quiet there.
    #[test]
    fn the_registry_marks_what_the_fuzzer_generates() {
        let mut r = Rng(11);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50_000u32 {
            let live: Vec<u32> = (1..=1 + i % 6).collect();
            let row = gen(&mut r, &live, &Mix::FUZZ_EXT, 0.05).encode();
            seen.insert(OpSpec::of_row(&row).expect("a registered operation").variant);
        }
        let marked: std::collections::BTreeSet<_> = OPS.iter().filter(|s| s.fuzzed).map(|s| s.variant).collect();
        assert_eq!(seen, marked);
    }

    /// The extended mix draws MAP_FIXED_NOREPLACE, MREMAP_DONTUNMAP (always a same-length
    /// move) and MADV_FREE; the default mix, pinned, never does.
    #[test]
    fn only_the_extended_mix_draws_noreplace_dontunmap_and_free() {
        for (m, want) in [(Mix::FUZZ_EXT, true), (Mix::FUZZ, false)] {
            let mut r = Rng(7);
            let (mut noreplace, mut dontunmap, mut free) = (0, 0, 0);
            for i in 0..20_000u32 {
                let live: Vec<u32> = (1..=1 + i % 4).collect();
                match gen(&mut r, &live, &m, 0.0) {
                    Op::Mmap { noreplace: true, .. } => noreplace += 1,
                    Op::Mremap { dontunmap: true, old_len, new_len, .. } => {
                        assert_eq!(old_len, new_len);
                        dontunmap += 1
                    }
                    Op::Madvise { advice: Advice::Free, .. } => free += 1,
                    _ => {}
                }
            }
            assert_eq!((noreplace > 0, dontunmap > 0, free > 0), (want, want, want), "{m:?}");
        }
    }

    /// Each mix's shares fit in 100 and name only operations [`gen`] generates.
    #[test]
    fn the_mixes_are_well_formed() {
        for m in [Mix::FUZZ, Mix::FUZZ_EXT, Mix::wide(64, 24, 12), Mix::COW] {
            assert!(m.shares.iter().chain(m.more_shares).map(|s| s.1).sum::<u64>() <= 100, "{m:?}");
            let mut r = Rng(3);
            let mut words = std::collections::BTreeSet::new();
            for i in 0..20_000u32 {
                let live: Vec<u32> = (1..=1 + i % 5).collect();
                let op = gen(&mut r, &live, &m, 0.05);
                words.insert(op.to_string().split(' ').next().unwrap().to_string());
            }
            let word = |k: Pick| match k {
                K::TouchWrite | K::TouchRead => "touch".to_string(),
                K::TryToUnmap => "try_to_unmap".to_string(),
                K::DropSwapCache => "drop_swap_cache".to_string(),
                K::MemoryMerge => "memory_merge".to_string(),
                k => format!("{k:?}").to_lowercase(),
            };
            for w in m.shares.iter().chain(m.more_shares).map(|s| word(s.0)).chain(["touch".into(), "enomem".into()]) {
                assert!(words.contains(&w), "{w} never drawn in {m:?}");
            }
            assert_eq!(words.contains("brk"), m.brk, "{m:?}");
        }
    }

    /// The fuzzer's stream, blind to the state, draws ranges over holes all the time: under
    /// `holes=kernel` munmaps of nothing succeed and mprotect / madvise fail at holes
    /// (having changed what came first), with every check passing after every operation.
    #[test]
    fn kernel_hole_mode_runs_the_hole_cases_the_stream_draws() {
        use crate::error::SimError;
        use crate::harness::trace::{apply, Outcome};
        use crate::policy::Policy;
        use crate::state::sim::Simulator;
        let mut r = Rng(5);
        let mut live = vec![1u32];
        let mut ops = vec![Op::Spawn];
        for _ in 0..3000 {
            let op = gen(&mut r, &live, &Mix::FUZZ_EXT, 0.02);
            if let Op::Fork { .. } = op {
                live.push(live.len() as u32 + 1);
            }
            ops.push(op);
        }
        let run = |spec: &str| {
            let mut sim = Simulator::new(Policy::from_spec(spec).unwrap(), 0);
            apply(&mut sim, &ops, true)
        };
        let (strict, kernel) = (run("6.18"), run("6.18+holes=kernel"));
        let count = |out: &[Outcome], pred: &dyn Fn(&Op, &Outcome) -> bool| {
            ops.iter().zip(out).filter(|(o, r)| pred(o, r)).count()
        };
        let munmap_ok = |o: &Op, r: &Outcome| matches!((o, r), (Op::Munmap { .. }, Outcome::Ok(_)));
        let range_err = |o: &Op, r: &Outcome| {
            matches!(o, Op::Mprotect { .. } | Op::Madvise { .. }) && matches!(r, Outcome::Err(SimError::BadAddress(_)))
        };
        assert_eq!(kernel.len(), ops.len(), "a violation stopped the kernel-mode run");
        assert!(!kernel.iter().any(|r| matches!(r, Outcome::Err(SimError::InvariantViolation(_)))));
        assert!(count(&kernel, &munmap_ok) > count(&strict, &munmap_ok));
        assert!(count(&kernel, &range_err) > 0);
    }
}
