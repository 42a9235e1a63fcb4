//! The operation registry: every operation of traces, op arrays (`_apply`'s rows of
//! `[u64; 7]`), fuzzers and event logs, declared once in [`OPS`]: its trace word, its
//! [`Op`] variant, its row code and its arguments (name, [`ArgKind`], row column). The
//! trace parser and printer (`harness::trace`), the event log (`harness::events`) and
//! Python (`rmapsim._core.op_table()`) read the table; the generator (`harness::opgen`)
//! is checked against its `fuzzed` marks.
//!
//! Adding an operation touches three files (a trial, `mlock pN ADDR LEN` added on a
//! scratch branch and deleted, needed exactly these; clippy and the tests here passed):
//!
//! 1. the kernel path itself, a `Simulator` method in `mm/` (the file of its kernel file);
//! 2. `harness/ops.rs` (this file): the [`Op`] variant, its row in [`OPS`] (marked
//!    `quiet` unless fuzzed), its arms of [`Op::encode`] and [`Op::decode`];
//! 3. `harness/trace.rs`: its arm of `Runner::apply_inner` (the method it calls).
//!
//! It is then in trace text, op-array rows and `_apply`, the event log, the shrinker and
//! `op_table()`. Optionally: `harness/opgen.rs` for the fuzzer to generate it (a `Pick`
//! and a share, and drop `quiet`); `python/rmapsim/trace.py`'s `CODES` until it is read
//! from `op_table()`; a Python method of its own in `rust/python/src/` and
//! `python/rmapsim/_core.pyi`.
//!
//! Trace text, op-array rows, the event log's columns and `op_table()` follow from the
//! table; beyond the codec here, the runner's arms and the generator's picks, only
//! process creation (spawn, fork) is named by the fuzzer and the program decoder.

use crate::error::{Result, SimError};
use crate::mm::mprotect::Advice;

/// One operation; `p` fields are process symbols (1 = p1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Spawn,
    Fork {
        p: u32,
    },
    Exit {
        p: u32,
    },
    Exec {
        p: u32,
    },
    /// `noreserve`: `MAP_NORESERVE` (the VMA gets `VM_NORESERVE`, never `VM_ACCOUNT`);
    /// `stack`: `MAP_STACK` (`VM_NOHUGEPAGE` in eras from 6.7); `locked`: `MAP_LOCKED`.
    Mmap {
        p: u32,
        addr: Option<u64>,
        len: u64,
        prot: u8,
        file: Option<(u32, u64)>,
        noreserve: bool,
        stack: bool,
        /// `MAP_FIXED_NOREPLACE` (4.17+; a hint before).
        noreplace: bool,
        /// `MAP_LOCKED`.
        locked: bool,
    },
    Munmap {
        p: u32,
        addr: u64,
        len: u64,
    },
    Touch {
        p: u32,
        addr: u64,
        len: u64,
        write: bool,
    },
    Mprotect {
        p: u32,
        addr: u64,
        len: u64,
        prot: u8,
    },
    Madvise {
        p: u32,
        addr: u64,
        len: u64,
        advice: Advice,
    },
    Mremap {
        p: u32,
        addr: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        new_addr: Option<u64>,
        /// `MREMAP_DONTUNMAP` (5.7+): the source VMA stays, emptied.
        dontunmap: bool,
    },
    TryToUnmap {
        p: u32,
        addr: u64,
    },
    DropSwapCache,
    /// `drop_swap_cache` of one page: the swap-cache page of the swap entry at `addr` of
    /// `p` (nothing when there is none, or when the page is mapped).
    DropSwapCacheAt {
        p: u32,
        addr: u64,
    },
    Enomem {
        nth: Option<u64>,
    },
    Check,
    Brk {
        p: u32,
        addr: u64,
    },
    BrkBase {
        p: u32,
        addr: u64,
    },
    /// `mlock` (`onfault`: `mlock2(MLOCK_ONFAULT)`).
    Mlock {
        p: u32,
        addr: u64,
        len: u64,
        onfault: bool,
    },
    Munlock {
        p: u32,
        addr: u64,
        len: u64,
    },
    /// `mlockall(MCL_CURRENT? | MCL_FUTURE? | MCL_ONFAULT?)`.
    Mlockall {
        p: u32,
        current: bool,
        future: bool,
        onfault: bool,
    },
    Munlockall {
        p: u32,
    },
    /// `prctl(PR_SET_MEMORY_MERGE, on)`.
    MemoryMerge {
        p: u32,
        on: bool,
    },
}

pub(crate) fn advice_name(a: Advice) -> &'static str {
    Advice::NAMES[ADVICES.iter().position(|&x| x == a).unwrap_or(0)]
}

/// What an argument is: how a trace line writes it and how its row column holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A process symbol `pN` (N >= 1).
    Proc,
    /// An address (decimal or 0x hex).
    Addr,
    /// An address, or `-` for none (the kernel chooses); none is [`NONE`] in the row.
    OptAddr,
    /// A length in bytes.
    Len,
    /// A protection such as `rw` or `none`: the low three bits of the column.
    Prot,
    /// One of two words: the first is 1, the second 0.
    Choice(&'static str, &'static str),
    /// An advice name: its index in the advice table.
    Advice,
    /// Optional `file ID OFF`: the identity (0: anonymous) and the next column the offset.
    File,
    /// An optional flag word: bit `bit` of the column.
    Flag(&'static str),
    /// An optional address at the end of the line ([`NONE`] when absent).
    TrailingAddr,
    /// A count, or `off` ([`NONE`]).
    CountOrOff,
}

impl ArgKind {
    /// The name `op_table()` gives the kind.
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::Proc => "proc",
            ArgKind::Addr => "addr",
            ArgKind::OptAddr => "opt_addr",
            ArgKind::Len => "len",
            ArgKind::Prot => "prot",
            ArgKind::Choice(..) => "choice",
            ArgKind::Advice => "advice",
            ArgKind::File => "file",
            ArgKind::Flag(_) => "flag",
            ArgKind::TrailingAddr => "trailing_addr",
            ArgKind::CountOrOff => "count_or_off",
        }
    }

    /// May a line leave it out?
    pub fn optional(self) -> bool {
        matches!(self, ArgKind::File | ArgKind::Flag(_) | ArgKind::TrailingAddr)
    }
}

/// One argument of an operation.
#[derive(Clone, Copy, Debug)]
pub struct ArgSpec {
    /// The [`Op`] field it fills.
    pub name: &'static str,
    pub kind: ArgKind,
    /// Its column of the `[code, p, a, b, c, d, e]` row (1-6).
    pub col: usize,
    /// [`ArgKind::Flag`]: its bit of the column.
    pub bit: u32,
    /// What a parse error says was expected ("an address").
    pub what: &'static str,
}

/// One operation of the registry.
#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    /// The trace word (two operations may share one: `drop_swap_cache` with and without
    /// a page).
    pub name: &'static str,
    pub variant: &'static str,
    /// The row code (column 0); operations sharing a word share it, the one without
    /// arguments having 0 in column 1.
    pub code: u64,
    pub args: &'static [ArgSpec],
    /// The native fuzzer generates it (`harness::opgen`, checked by a test there).
    pub fuzzed: bool,
}

const fn arg(name: &'static str, kind: ArgKind, col: usize, what: &'static str) -> ArgSpec {
    ArgSpec { name, kind, col, bit: 0, what }
}
const P: ArgSpec = arg("p", ArgKind::Proc, 1, "a process symbol like p1");
const ADDR: ArgSpec = arg("addr", ArgKind::Addr, 2, "an address");
const LEN: ArgSpec = arg("len", ArgKind::Len, 3, "a length");

const fn op(name: &'static str, variant: &'static str, code: u64, args: &'static [ArgSpec]) -> OpSpec {
    OpSpec { name, variant, code, args, fuzzed: true }
}
const fn quiet(o: OpSpec) -> OpSpec {
    OpSpec { fuzzed: false, ..o }
}

/// Every operation, in row-code order.
pub const OPS: &[OpSpec] = &[
    quiet(op("spawn", "Spawn", 0, &[])),
    op("fork", "Fork", 1, &[P]),
    op("exit", "Exit", 2, &[P]),
    op("exec", "Exec", 3, &[P]),
    op(
        "mmap",
        "Mmap",
        4,
        &[
            P,
            arg("addr", ArgKind::OptAddr, 2, "an address or -"),
            LEN,
            arg("prot", ArgKind::Prot, 4, "a prot like rw"),
            arg("file", ArgKind::File, 5, "a file identity"),
            ArgSpec { bit: 3, ..arg("noreserve", ArgKind::Flag("noreserve"), 4, "") },
            ArgSpec { bit: 4, ..arg("stack", ArgKind::Flag("stack"), 4, "") },
            ArgSpec { bit: 5, ..arg("noreplace", ArgKind::Flag("noreplace"), 4, "") },
            ArgSpec { bit: 6, ..arg("locked", ArgKind::Flag("locked"), 4, "") },
        ],
    ),
    op("munmap", "Munmap", 5, &[P, ADDR, LEN]),
    op("touch", "Touch", 6, &[P, ADDR, LEN, arg("write", ArgKind::Choice("w", "r"), 4, "")]),
    op("mprotect", "Mprotect", 7, &[P, ADDR, LEN, arg("prot", ArgKind::Prot, 4, "a prot like rw")]),
    op("madvise", "Madvise", 8, &[P, ADDR, LEN, arg("advice", ArgKind::Advice, 4, "an advice")]),
    op(
        "mremap",
        "Mremap",
        9,
        &[
            P,
            ADDR,
            arg("old_len", ArgKind::Len, 3, "the old length"),
            arg("new_len", ArgKind::Len, 4, "the new length"),
            arg("may_move", ArgKind::Choice("move", "nomove"), 5, ""),
            arg("new_addr", ArgKind::TrailingAddr, 6, "a new address"),
            ArgSpec { bit: 1, ..arg("dontunmap", ArgKind::Flag("dontunmap"), 5, "") },
        ],
    ),
    op("try_to_unmap", "TryToUnmap", 10, &[P, ADDR]),
    op("drop_swap_cache", "DropSwapCache", 11, &[]),
    quiet(op("drop_swap_cache", "DropSwapCacheAt", 11, &[P, ADDR])),
    op("enomem", "Enomem", 12, &[arg("nth", ArgKind::CountOrOff, 2, "a count or off")]),
    quiet(op("check", "Check", 13, &[])),
    op("brk", "Brk", 14, &[P, ADDR]),
    op("brkbase", "BrkBase", 15, &[P, ADDR]),
    op("mlock", "Mlock", 16, &[P, ADDR, LEN, arg("onfault", ArgKind::Flag("onfault"), 4, "")]),
    op("munlock", "Munlock", 17, &[P, ADDR, LEN]),
    op(
        "mlockall",
        "Mlockall",
        18,
        &[
            P,
            arg("current", ArgKind::Flag("current"), 2, ""),
            ArgSpec { bit: 1, ..arg("future", ArgKind::Flag("future"), 2, "") },
            ArgSpec { bit: 2, ..arg("onfault", ArgKind::Flag("onfault"), 2, "") },
        ],
    ),
    op("munlockall", "Munlockall", 19, &[P]),
    op("memory_merge", "MemoryMerge", 20, &[P, arg("on", ArgKind::Choice("on", "off"), 2, "")]),
];

impl OpSpec {
    /// The operation of a row: by its code, and for a shared code by whether column 1
    /// names a process.
    pub fn of_row(r: &[u64; 7]) -> Option<&'static OpSpec> {
        OPS.iter().filter(|s| s.code == r[0]).min_by_key(|s| s.args.is_empty() != (r[1] == 0))
    }

    /// The operation a trace line starting with `word` means, given whether more words
    /// follow (for words two operations share).
    pub fn of_word(word: &str, more: bool) -> Option<&'static OpSpec> {
        OPS.iter().filter(|s| s.name == word).min_by_key(|s| s.args.is_empty() == more)
    }

    /// The trace syntax, such as `touch pN ADDR LEN w|r`.
    pub fn syntax(&self) -> String {
        let mut s = self.name.to_string();
        for a in self.args {
            let w = match a.kind {
                ArgKind::Proc => "pN".to_string(),
                ArgKind::Addr => "ADDR".to_string(),
                ArgKind::OptAddr => "ADDR|-".to_string(),
                ArgKind::Len => a.name.to_uppercase(),
                ArgKind::Prot => "PROT".to_string(),
                ArgKind::Choice(y, n) => std::format!("{y}|{n}"),
                ArgKind::Advice => "ADVICE".to_string(),
                ArgKind::File => "[file ID OFF]".to_string(),
                ArgKind::Flag(w) => std::format!("[{w}]"),
                ArgKind::TrailingAddr => std::format!("[{}]", a.name.to_uppercase()),
                ArgKind::CountOrOff => "N|off".to_string(),
            };
            s.push(' ');
            s.push_str(&w);
        }
        s
    }
}

/// The advice a row column holds (its index in the advice table), and back.
pub(crate) fn advice_index(a: Advice) -> u64 {
    ADVICES.iter().position(|&x| x == a).unwrap_or(0) as u64
}
pub(crate) fn advice_at(i: u64) -> Option<Advice> {
    ADVICES.get(i as usize).copied()
}

/// Sentinel for "none" in the op-array form.
pub const NONE: u64 = u64::MAX;

const ADVICES: [Advice; 16] = [
    Advice::Normal,
    Advice::Random,
    Advice::Sequential,
    Advice::DontNeed,
    Advice::DontFork,
    Advice::DoFork,
    Advice::WipeOnFork,
    Advice::KeepOnFork,
    Advice::PageOut,
    Advice::HugePage,
    Advice::NoHugePage,
    Advice::DontDump,
    Advice::DoDump,
    Advice::Free,
    Advice::Mergeable,
    Advice::Unmergeable,
];

impl Op {
    /// The process symbol the operation names (by the registry: its process argument).
    pub fn process(&self) -> Option<u32> {
        let r = self.encode();
        let spec = OpSpec::of_row(&r)?;
        spec.args.iter().find(|a| a.kind == ArgKind::Proc).map(|a| r[a.col] as u32)
    }

    /// The operation naming process `p` instead (itself when it names none; `p` >= 1).
    pub fn with_process(&self, p: u32) -> Op {
        let mut r = self.encode();
        match OpSpec::of_row(&r).and_then(|s| s.args.iter().find(|a| a.kind == ArgKind::Proc)) {
            Some(a) => {
                r[a.col] = p as u64;
                Op::decode(r, 0).unwrap_or_else(|_| self.clone())
            }
            None => self.clone(),
        }
    }

    /// The op-array row `[code, p, a, b, c, d, e]` (see `python/rmapsim/trace.py`).
    pub fn encode(&self) -> [u64; 7] {
        let o = |x: Option<u64>| x.unwrap_or(NONE);
        match *self {
            Op::Spawn => [0, 0, 0, 0, 0, 0, 0],
            Op::Fork { p } => [1, p as u64, 0, 0, 0, 0, 0],
            Op::Exit { p } => [2, p as u64, 0, 0, 0, 0, 0],
            Op::Exec { p } => [3, p as u64, 0, 0, 0, 0, 0],
            Op::Mmap { p, addr, len, prot, file, noreserve, stack, noreplace, locked } => {
                // bit 3 of the prot column: MAP_NORESERVE, bit 4: MAP_STACK, bit 5:
                // MAP_FIXED_NOREPLACE, bit 6: MAP_LOCKED (rows without them are unchanged)
                let pr = prot as u64
                    | (noreserve as u64) << 3
                    | (stack as u64) << 4
                    | (noreplace as u64) << 5
                    | (locked as u64) << 6;
                match file {
                    None => [4, p as u64, o(addr), len, pr, 0, 0],
                    Some((id, off)) => [4, p as u64, o(addr), len, pr, id as u64, off],
                }
            }
            Op::Munmap { p, addr, len } => [5, p as u64, addr, len, 0, 0, 0],
            Op::Touch { p, addr, len, write } => [6, p as u64, addr, len, write as u64, 0, 0],
            Op::Mprotect { p, addr, len, prot } => [7, p as u64, addr, len, prot as u64, 0, 0],
            Op::Madvise { p, addr, len, advice } => [8, p as u64, addr, len, advice_index(advice), 0, 0],
            Op::Mremap { p, addr, old_len, new_len, may_move, new_addr, dontunmap } => {
                // bit 1 of the may_move column: MREMAP_DONTUNMAP
                [9, p as u64, addr, old_len, new_len, may_move as u64 | (dontunmap as u64) << 1, o(new_addr)]
            }
            Op::TryToUnmap { p, addr } => [10, p as u64, addr, 0, 0, 0, 0],
            Op::DropSwapCache => [11, 0, 0, 0, 0, 0, 0],
            Op::DropSwapCacheAt { p, addr } => [11, p as u64, addr, 0, 0, 0, 0],
            Op::Enomem { nth } => [12, 0, o(nth), 0, 0, 0, 0],
            Op::Check => [13, 0, 0, 0, 0, 0, 0],
            Op::Brk { p, addr } => [14, p as u64, addr, 0, 0, 0, 0],
            Op::BrkBase { p, addr } => [15, p as u64, addr, 0, 0, 0, 0],
            Op::Mlock { p, addr, len, onfault } => [16, p as u64, addr, len, onfault as u64, 0, 0],
            Op::Munlock { p, addr, len } => [17, p as u64, addr, len, 0, 0, 0],
            Op::Mlockall { p, current, future, onfault } => {
                [18, p as u64, current as u64 | (future as u64) << 1 | (onfault as u64) << 2, 0, 0, 0, 0]
            }
            Op::Munlockall { p } => [19, p as u64, 0, 0, 0, 0, 0],
            Op::MemoryMerge { p, on } => [20, p as u64, on as u64, 0, 0, 0, 0],
        }
    }

    /// Inverse of [`Op::encode`]; `row` names the row in errors.
    pub fn decode(r: [u64; 7], row: usize) -> Result<Op> {
        let bad = |m: &str| SimError::InvalidArgument(std::format!("op row {row}: {m} (row {r:?})"));
        let p = || -> Result<u32> {
            u32::try_from(r[1]).ok().filter(|&p| p >= 1).ok_or_else(|| bad("process symbol must be >= 1"))
        };
        let prot = |v: u64| -> Result<u8> {
            u8::try_from(v).ok().filter(|&x| x & !7 == 0).ok_or_else(|| bad("prot must be a combination of 1|2|4"))
        };
        let opt = |v: u64| (v != NONE).then_some(v);
        // a column of flag bits: nothing beyond `mask`
        let flag = |v: u64, mask: u64| -> Result<u64> {
            if v & !mask == 0 {
                Ok(v)
            } else {
                Err(bad(&std::format!("flag column must be within {mask:#x}")))
            }
        };
        Ok(match r[0] {
            0 => Op::Spawn,
            1 => Op::Fork { p: p()? },
            2 => Op::Exit { p: p()? },
            3 => Op::Exec { p: p()? },
            4 => Op::Mmap {
                p: p()?,
                addr: opt(r[2]),
                len: r[3],
                prot: if r[4] & !0x7f == 0 {
                    prot(r[4] & 7)?
                } else {
                    return Err(bad(
                        "mmap prot must be a combination of 1|2|4, plus 8 for noreserve, 16 for stack, 32 for noreplace, 64 for locked",
                    ));
                },
                file: match r[5] {
                    0 => None,
                    id => Some((u32::try_from(id).map_err(|_| bad("file identity must fit 32 bits"))?, r[6])),
                },
                noreserve: r[4] & 8 != 0,
                stack: r[4] & 16 != 0,
                noreplace: r[4] & 32 != 0,
                locked: r[4] & 64 != 0,
            },
            5 => Op::Munmap { p: p()?, addr: r[2], len: r[3] },
            6 => Op::Touch { p: p()?, addr: r[2], len: r[3], write: r[4] != 0 },
            7 => Op::Mprotect { p: p()?, addr: r[2], len: r[3], prot: prot(r[4])? },
            8 => Op::Madvise {
                p: p()?,
                addr: r[2],
                len: r[3],
                advice: advice_at(r[4]).ok_or_else(|| bad("advice index out of range"))?,
            },
            9 => Op::Mremap {
                p: p()?,
                addr: r[2],
                old_len: r[3],
                new_len: r[4],
                may_move: if r[5] & !3 == 0 {
                    r[5] & 1 != 0
                } else {
                    return Err(bad("mremap's may_move column must be 0|1, plus 2 for dontunmap"));
                },
                new_addr: opt(r[6]),
                dontunmap: r[5] & 2 != 0,
            },
            10 => Op::TryToUnmap { p: p()?, addr: r[2] },
            11 if r[1] == 0 => Op::DropSwapCache,
            11 => Op::DropSwapCacheAt { p: p()?, addr: r[2] },
            12 => Op::Enomem { nth: opt(r[2]) },
            13 => Op::Check,
            14 => Op::Brk { p: p()?, addr: r[2] },
            15 => Op::BrkBase { p: p()?, addr: r[2] },
            16 => Op::Mlock { p: p()?, addr: r[2], len: r[3], onfault: flag(r[4], 1)? != 0 },
            17 => Op::Munlock { p: p()?, addr: r[2], len: r[3] },
            18 => Op::Mlockall {
                p: p()?,
                current: flag(r[2], 7)? & 1 != 0,
                future: r[2] & 2 != 0,
                onfault: r[2] & 4 != 0,
            },
            19 => Op::Munlockall { p: p()? },
            20 => Op::MemoryMerge { p: p()?, on: flag(r[2], 1)? != 0 },
            _ => return Err(bad("unknown op code")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::trace;

    /// A row of `spec` with every argument given (`full`) or every optional one left out.
    fn sample_row(spec: &OpSpec, full: bool) -> [u64; 7] {
        let mut r = [spec.code, 0, 0, 0, 0, 0, 0];
        for a in spec.args {
            let v = match a.kind {
                ArgKind::Proc => 2,
                ArgKind::Addr => 0x1000_0000 + 0x1000 * a.col as u64,
                ArgKind::OptAddr | ArgKind::TrailingAddr if !full => NONE,
                ArgKind::OptAddr | ArgKind::TrailingAddr => 0x2000_0000,
                ArgKind::Len => 0x3000 + 0x1000 * a.col as u64,
                ArgKind::Prot => 5,
                ArgKind::Choice(..) => full as u64,
                ArgKind::Advice => 8,
                ArgKind::File if full => {
                    r[a.col + 1] = 0x5000;
                    3
                }
                ArgKind::Flag(_) if full => 1 << a.bit,
                ArgKind::File | ArgKind::Flag(_) => 0,
                ArgKind::CountOrOff if full => 7,
                ArgKind::CountOrOff => NONE,
            };
            r[a.col] |= v;
        }
        r
    }

    /// Each registry entry's columns are those its hand-written arms of `Op::encode` and
    /// `Op::decode` use: a row built from the entry alone decodes to an operation of the
    /// entry's variant that encodes back to the same row and round-trips through its
    /// trace line, whose words are the entry's name and arguments.
    #[test]
    fn every_entry_agrees_with_the_codec_and_the_trace_syntax() {
        for spec in OPS {
            for full in [false, true] {
                let row = sample_row(spec, full);
                let op = Op::decode(row, 0).unwrap_or_else(|e| panic!("{}: {e}", spec.variant));
                assert!(std::format!("{op:?}").starts_with(spec.variant), "{} decoded to {op:?}", spec.variant);
                assert_eq!(op.encode(), row, "{}", spec.variant);
                assert_eq!(OpSpec::of_row(&row).map(|s| s.variant), Some(spec.variant));
                let line = op.to_string();
                assert_eq!(line.split(' ').next(), Some(spec.name), "{line}");
                let required = spec.args.iter().filter(|a| !a.kind.optional()).count();
                assert!(line.split(' ').count() > required, "{line}: {}", spec.syntax());
                let names_one = spec.args.iter().any(|a| a.kind == ArgKind::Proc);
                assert_eq!(op.process(), names_one.then_some(2), "{line}");
                assert_eq!(op.with_process(5).process(), names_one.then_some(5), "{line}");
                let text = trace::format(std::slice::from_ref(&op), None);
                assert_eq!(trace::parse(&text).unwrap(), vec![op.clone()], "{line}");
            }
        }
    }

    #[test]
    fn codes_are_unique_but_for_shared_words() {
        for (i, a) in OPS.iter().enumerate() {
            for b in &OPS[i + 1..] {
                assert_eq!(a.code == b.code, a.name == b.name, "{} / {}", a.variant, b.variant);
                assert_ne!(a.variant, b.variant);
            }
        }
        let mmap = OPS.iter().find(|s| s.name == "mmap").unwrap();
        assert_eq!(mmap.syntax(), "mmap pN ADDR|- LEN PROT [file ID OFF] [noreserve] [stack] [noreplace] [locked]");
        let mremap = OPS.iter().find(|s| s.name == "mremap").unwrap();
        assert_eq!(mremap.syntax(), "mremap pN ADDR OLD_LEN NEW_LEN move|nomove [NEW_ADDR] [dontunmap]");
        let word = |w: &str| OPS.iter().find(|s| s.name == w).unwrap().syntax();
        assert_eq!(word("mlock"), "mlock pN ADDR LEN [onfault]");
        assert_eq!(word("mlockall"), "mlockall pN [current] [future] [onfault]");
        assert_eq!(word("memory_merge"), "memory_merge pN on|off");
    }
}
