//! The operations of traces, op arrays, fuzzers and event logs.

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
    /// `stack`: `MAP_STACK` (`VM_NOHUGEPAGE` in eras from 6.7).
    Mmap {
        p: u32,
        addr: Option<u64>,
        len: u64,
        prot: u8,
        file: Option<(u32, u64)>,
        noreserve: bool,
        stack: bool,
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
}

pub(crate) fn advice_name(a: Advice) -> &'static str {
    Advice::NAMES[ADVICES.iter().position(|&x| x == a).unwrap_or(0)]
}

/// Sentinel for "none" in the op-array form.
pub const NONE: u64 = u64::MAX;

const ADVICES: [Advice; 13] = [
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
];

impl Op {
    /// The op-array row `[code, p, a, b, c, d, e]` (see `python/rmapsim/trace.py`).
    pub fn encode(&self) -> [u64; 7] {
        let o = |x: Option<u64>| x.unwrap_or(NONE);
        match *self {
            Op::Spawn => [0, 0, 0, 0, 0, 0, 0],
            Op::Fork { p } => [1, p as u64, 0, 0, 0, 0, 0],
            Op::Exit { p } => [2, p as u64, 0, 0, 0, 0, 0],
            Op::Exec { p } => [3, p as u64, 0, 0, 0, 0, 0],
            Op::Mmap { p, addr, len, prot, file, noreserve, stack } => {
                // bit 3 of the prot column: MAP_NORESERVE, bit 4: MAP_STACK (rows without
                // them are unchanged)
                let pr = prot as u64 | (noreserve as u64) << 3 | (stack as u64) << 4;
                match file {
                    None => [4, p as u64, o(addr), len, pr, 0, 0],
                    Some((id, off)) => [4, p as u64, o(addr), len, pr, id as u64, off],
                }
            }
            Op::Munmap { p, addr, len } => [5, p as u64, addr, len, 0, 0, 0],
            Op::Touch { p, addr, len, write } => [6, p as u64, addr, len, write as u64, 0, 0],
            Op::Mprotect { p, addr, len, prot } => [7, p as u64, addr, len, prot as u64, 0, 0],
            Op::Madvise { p, addr, len, advice } => {
                [8, p as u64, addr, len, ADVICES.iter().position(|&x| x == advice).unwrap_or(0) as u64, 0, 0]
            }
            Op::Mremap { p, addr, old_len, new_len, may_move, new_addr } => {
                [9, p as u64, addr, old_len, new_len, may_move as u64, o(new_addr)]
            }
            Op::TryToUnmap { p, addr } => [10, p as u64, addr, 0, 0, 0, 0],
            Op::DropSwapCache => [11, 0, 0, 0, 0, 0, 0],
            Op::DropSwapCacheAt { p, addr } => [11, p as u64, addr, 0, 0, 0, 0],
            Op::Enomem { nth } => [12, 0, o(nth), 0, 0, 0, 0],
            Op::Check => [13, 0, 0, 0, 0, 0, 0],
            Op::Brk { p, addr } => [14, p as u64, addr, 0, 0, 0, 0],
            Op::BrkBase { p, addr } => [15, p as u64, addr, 0, 0, 0, 0],
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
        Ok(match r[0] {
            0 => Op::Spawn,
            1 => Op::Fork { p: p()? },
            2 => Op::Exit { p: p()? },
            3 => Op::Exec { p: p()? },
            4 => Op::Mmap {
                p: p()?,
                addr: opt(r[2]),
                len: r[3],
                prot: if r[4] & !0x1f == 0 {
                    prot(r[4] & 7)?
                } else {
                    return Err(bad("mmap prot must be a combination of 1|2|4, plus 8 for noreserve, 16 for stack"));
                },
                file: match r[5] {
                    0 => None,
                    id => Some((u32::try_from(id).map_err(|_| bad("file identity must fit 32 bits"))?, r[6])),
                },
                noreserve: r[4] & 8 != 0,
                stack: r[4] & 16 != 0,
            },
            5 => Op::Munmap { p: p()?, addr: r[2], len: r[3] },
            6 => Op::Touch { p: p()?, addr: r[2], len: r[3], write: r[4] != 0 },
            7 => Op::Mprotect { p: p()?, addr: r[2], len: r[3], prot: prot(r[4])? },
            8 => Op::Madvise {
                p: p()?,
                addr: r[2],
                len: r[3],
                advice: *ADVICES.get(r[4] as usize).ok_or_else(|| bad("advice index out of range"))?,
            },
            9 => Op::Mremap {
                p: p()?,
                addr: r[2],
                old_len: r[3],
                new_len: r[4],
                may_move: r[5] != 0,
                new_addr: opt(r[6]),
            },
            10 => Op::TryToUnmap { p: p()?, addr: r[2] },
            11 if r[1] == 0 => Op::DropSwapCache,
            11 => Op::DropSwapCacheAt { p: p()?, addr: r[2] },
            12 => Op::Enomem { nth: opt(r[2]) },
            13 => Op::Check,
            14 => Op::Brk { p: p()?, addr: r[2] },
            15 => Op::BrkBase { p: p()?, addr: r[2] },
            _ => return Err(bad("unknown op code")),
        })
    }
}
