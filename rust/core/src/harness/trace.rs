//! Traces: a documented, versioned, line-oriented text form of an operation sequence, its
//! parser and printer, and `apply`, which runs operations and reports each result.
//!
//! Format (version 1), one operation per line, `#` starts a comment:
//!
//! ```text
//! # rmapsim trace v1
//! spawn                                   # creates p1
//! fork p1                                 # creates p2 (processes are numbered p1, p2, … in creation order)
//! mmap p1 0x10000000 0x4000 rw            # address "-" lets the kernel choose
//! mmap p1 0x400000 0x2000 rx file 3 0x0    # private file mapping: file identity 3, byte offset 0
//! mmap p1 0x30000000 0x8000 rw noreserve  # MAP_NORESERVE (after "file ID OFF" when both)
//! mmap p1 0x40000000 0x8000 rw stack      # MAP_STACK (after "noreserve" when both)
//! mmap p1 0x50000000 0x1000 rw noreplace  # MAP_FIXED_NOREPLACE (after "stack" when both)
//! mmap p1 0x60000000 0x2000 rw locked     # MAP_LOCKED (last)
//! brkbase p1 0x555555560000              # the ELF loader's heap base (mm->start_brk)
//! brk p1 0x555555581000                  # brk(2): grow or shrink the heap
//! touch p1 0x10000000 0x4000 w            # w = write fault, r = read fault
//! munmap p1 0x10000000 0x1000
//! mprotect p1 0x10001000 0x1000 r
//! madvise p1 0x10002000 0x2000 random
//! mremap p1 0x10002000 0x2000 0x4000 move 0x20000000   # "move"/"nomove", optional new address
//! mremap p1 0x10002000 0x2000 0x2000 move dontunmap   # MREMAP_DONTUNMAP (last)
//! try_to_unmap p1 0x10003000              # the page mapped at that address of p1
//! drop_swap_cache                        # every swap-cache page no PTE maps
//! drop_swap_cache p1 0x10003000           # only that of the swap entry at that address of p1
//! enomem 3                                # the 3rd allocation from now fails; "enomem off"
//! mlock p1 0x10000000 0x2000              # mlock; "onfault" at the end: mlock2(MLOCK_ONFAULT)
//! munlock p1 0x10000000 0x1000
//! mlockall p1 current future              # MCL_CURRENT, MCL_FUTURE, "onfault" (in this order)
//! munlockall p1
//! memory_merge p1 on                      # prctl(PR_SET_MEMORY_MERGE, 1); "off"
//! exit p2
//! exec p1
//! check
//! ```
//!
//! Numbers are decimal or `0x` hex. Processes are symbols, pages are named by (process,
//! address): traces do not depend on handle values.

use std::fmt;
use std::iter::Peekable;

use crate::error::{quote, Result, SimError};
use crate::harness::ops::{advice_at, advice_index, advice_name, ArgKind, ArgSpec, OpSpec};
pub use crate::harness::ops::{Op, NONE};
use crate::mm::mprotect::Advice;
use crate::state::interrupt::Ticker;
use crate::state::sim::{Inject, Simulator};

/// The header line every version-1 trace starts with.
pub const HEADER: &str = "# rmapsim trace v1";

impl fmt::Display for Op {
    /// The operation's trace line, written from its row by its registry entry
    /// ([`OPS`](crate::harness::ops::OPS)).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.encode();
        let Some(spec) = OpSpec::of_row(&r) else { return write!(f, "?{}", r[0]) };
        write!(f, "{}", spec.name)?;
        for a in spec.args {
            let v = r[a.col];
            match a.kind {
                ArgKind::Proc => write!(f, " p{v}")?,
                ArgKind::Addr | ArgKind::Len => write!(f, " {v:#x}")?,
                ArgKind::OptAddr if v == NONE => write!(f, " -")?,
                ArgKind::OptAddr => write!(f, " {v:#x}")?,
                ArgKind::Prot => {
                    let s = Simulator::prot_string(v as u8 & 7).replace('-', "");
                    write!(f, " {}", if s.is_empty() { "none" } else { &s })?
                }
                ArgKind::Choice(yes, no) => write!(f, " {}", if v & 1 != 0 { yes } else { no })?,
                ArgKind::Advice => write!(f, " {}", advice_at(v).map_or("?", advice_name))?,
                ArgKind::File if v != 0 => write!(f, " file {v} {:#x}", r[a.col + 1])?,
                ArgKind::Flag(w) if (v >> a.bit) & 1 != 0 => write!(f, " {w}")?,
                ArgKind::TrailingAddr if v != NONE => write!(f, " {v:#x}")?,
                ArgKind::CountOrOff if v == NONE => write!(f, " off")?,
                ArgKind::CountOrOff => write!(f, " {v}")?,
                ArgKind::File | ArgKind::Flag(_) | ArgKind::TrailingAddr => {}
            }
        }
        Ok(())
    }
}

/// Render a trace (with its header; `era` as a comment when given).
pub fn format(ops: &[Op], era: Option<&str>) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    if let Some(e) = era {
        s.push_str(&std::format!("# era {e}\n"));
    }
    for op in ops {
        s.push_str(&op.to_string());
        s.push('\n');
    }
    s
}

fn bad(line: usize, msg: impl fmt::Display) -> SimError {
    SimError::InvalidArgument(std::format!("trace line {line}: {msg}"))
}

fn num(tok: Option<&str>, line: usize, what: &str) -> Result<u64> {
    let t = tok.ok_or_else(|| bad(line, std::format!("expected {what}, found end of line")))?;
    let r = match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse::<u64>(),
    };
    r.map_err(|_| bad(line, std::format!("expected {what} (decimal or 0x hex), found {}", quote(t))))
}

fn sym(tok: Option<&str>, line: usize) -> Result<u32> {
    let t = tok.ok_or_else(|| bad(line, "expected a process symbol like p1, found end of line"))?;
    t.strip_prefix('p')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| bad(line, std::format!("expected a process symbol like p1, found {}", quote(t))))
}

/// `yes` (true) or `no` (false).
fn choice(tok: Option<&str>, line: usize, yes: &str, no: &str) -> Result<bool> {
    match tok {
        Some(t) if t == yes => Ok(true),
        Some(t) if t == no => Ok(false),
        other => Err(bad(
            line,
            std::format!("expected {yes} or {no}, found {}", other.map_or_else(|| "end of line".to_string(), quote)),
        )),
    }
}

fn prot(tok: Option<&str>, line: usize) -> Result<u8> {
    let t = tok.ok_or_else(|| bad(line, "expected a prot like rw, found end of line"))?;
    Simulator::parse_prot(t).map_err(|e| bad(line, e))
}

/// Parse a version-1 trace. Errors name the line number and what was expected; nothing
/// is returned for a trace that does not parse completely.
pub fn parse(text: &str) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    let mut seen_header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if !seen_header {
            if raw.trim().is_empty() {
                continue;
            }
            if raw.trim() != HEADER {
                return Err(bad(line, std::format!("expected the header {HEADER:?}, found {}", quote(raw.trim()))));
            }
            seen_header = true;
            continue;
        }
        let content = raw.split('#').next().unwrap_or("");
        let mut words = content.split_whitespace().peekable();
        let Some(word) = words.next() else { continue };
        ops.push(parse_op(word, &mut words, line)?);
    }
    if !seen_header {
        return Err(bad(1, std::format!("empty trace: expected the header {HEADER:?}")));
    }
    Ok(ops)
}

/// One trace line's operation: the registry's entry for `word`, its arguments read into
/// the operation's row in order, then the row decoded.
fn parse_op<'a>(word: &str, t: &mut Peekable<impl Iterator<Item = &'a str>>, line: usize) -> Result<Op> {
    let spec = OpSpec::of_word(word, t.peek().is_some())
        .ok_or_else(|| bad(line, std::format!("unknown operation {}", quote(word))))?;
    let mut r = [0u64; 7];
    r[0] = spec.code;
    let mut flagged = false;
    for a in spec.args {
        flagged |= parse_arg(a, t, line, &mut r[a.col..])?;
    }
    if let Some(extra) = t.next() {
        let optional: Vec<String> = spec.args.iter().filter_map(|a| optional_word(a.kind)).collect();
        if optional.is_empty() || flagged {
            return Err(bad(line, std::format!("unexpected {} after {word}", quote(extra))));
        }
        let list = optional.join(", ");
        return Err(bad(line, std::format!("expected {list} or end of line, found {}", quote(extra))));
    }
    Op::decode(r, line)
}

/// The word an optional argument starts with, quoted (`"file"`).
fn optional_word(k: ArgKind) -> Option<String> {
    match k {
        ArgKind::File => Some("\"file\"".to_string()),
        ArgKind::Flag(w) => Some(std::format!("{w:?}")),
        _ => None,
    }
}

/// Read one argument into `cols` (its column first); true when it is a flag that was
/// given.
fn parse_arg<'a>(
    a: &ArgSpec,
    t: &mut Peekable<impl Iterator<Item = &'a str>>,
    line: usize,
    cols: &mut [u64],
) -> Result<bool> {
    cols[0] |= match a.kind {
        ArgKind::Proc => sym(t.next(), line)? as u64,
        ArgKind::Addr | ArgKind::Len => num(t.next(), line, a.what)?,
        ArgKind::OptAddr => match t.next() {
            Some("-") => NONE,
            v => num(v, line, a.what)?,
        },
        ArgKind::Prot => prot(t.next(), line)? as u64,
        ArgKind::Choice(yes, no) => choice(t.next(), line, yes, no)? as u64,
        ArgKind::Advice => {
            let v = t.next().ok_or_else(|| bad(line, std::format!("expected {}, found end of line", a.what)))?;
            advice_index(Advice::parse(v).map_err(|e| bad(line, e))?)
        }
        ArgKind::File if t.peek() == Some(&"file") => {
            t.next();
            let id = num(t.next(), line, "a file identity")?;
            let id = u32::try_from(id)
                .ok()
                .filter(|&i| i >= 1)
                .ok_or_else(|| bad(line, std::format!("file identity must be 1..2^32, found {id}")))?;
            cols[1] = num(t.next(), line, "a file offset")?;
            id as u64
        }
        ArgKind::Flag(w) if t.peek() == Some(&w) => {
            t.next();
            cols[0] |= 1 << a.bit;
            return Ok(true);
        }
        ArgKind::File | ArgKind::Flag(_) => 0,
        // a word (a flag such as "dontunmap") after it means the address is left out
        ArgKind::TrailingAddr => match t.peek() {
            None => NONE,
            Some(w) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => NONE,
            Some(_) => num(t.next(), line, a.what)?,
        },
        ArgKind::CountOrOff => match t.next() {
            Some("off") => NONE,
            v => num(v, line, a.what)?,
        },
    };
    Ok(false)
}

/// The outcome of one applied operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded; the value is the new process symbol (spawn, fork), the address (mmap,
    /// mremap), the pages dropped (drop_swap_cache), or 0.
    Ok(u64),
    /// Failed with this error; the state is as the kernel would leave it.
    Err(SimError),
}

impl Outcome {
    pub fn is_violation(&self) -> bool {
        matches!(self, Outcome::Err(SimError::InvariantViolation(_)))
    }
}

/// Runs ops against a simulator, mapping process symbols to pids.
#[derive(Default)]
pub struct Runner {
    /// pid of symbol p(i+1).
    pub pids: Vec<u32>,
    /// The walk of the last operation, when it was a `try_to_unmap` of a mapped page.
    pub last_walk: Option<crate::mm::rmap::WalkResult>,
}

impl Runner {
    fn pid(&self, p: u32) -> Result<i64> {
        self.pids
            .get(p as usize - 1)
            .map(|&x| x as i64)
            .ok_or_else(|| SimError::InvalidArgument(std::format!("process p{p} was never created in this trace")))
    }

    /// Apply one operation.
    pub fn apply(&mut self, sim: &mut Simulator, op: &Op) -> Outcome {
        self.last_walk = None;
        match self.apply_inner(sim, op) {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        }
    }

    fn apply_inner(&mut self, sim: &mut Simulator, op: &Op) -> Result<u64> {
        Ok(match *op {
            Op::Spawn => {
                let pid = sim.spawn()?;
                self.pids.push(pid);
                self.pids.len() as u64
            }
            Op::Fork { p } => {
                let pid = sim.fork(self.pid(p)?)?;
                self.pids.push(pid);
                self.pids.len() as u64
            }
            Op::Exit { p } => {
                sim.exit(self.pid(p)?)?;
                0
            }
            Op::Exec { p } => {
                sim.exec(self.pid(p)?)?;
                0
            }
            Op::Mmap { p, addr, len, prot, file, noreserve, stack, noreplace, locked } => {
                let opts = crate::mm::vma::MapOpts { noreserve, stack, noreplace, locked };
                sim.mmap_with(self.pid(p)?, len, addr, prot, file, opts)?
            }
            Op::Brk { p, addr } => sim.brk(self.pid(p)?, addr)?,
            Op::BrkBase { p, addr } => {
                sim.set_brk_base(self.pid(p)?, addr)?;
                0
            }
            Op::Munmap { p, addr, len } => {
                sim.munmap(self.pid(p)?, addr, len)?;
                0
            }
            Op::Touch { p, addr, len, write } => {
                sim.touch(self.pid(p)?, addr, len, write)?;
                0
            }
            Op::Mprotect { p, addr, len, prot } => {
                sim.mprotect(self.pid(p)?, addr, len, prot)?;
                0
            }
            Op::Madvise { p, addr, len, advice } => {
                sim.madvise(self.pid(p)?, addr, len, advice)?;
                0
            }
            Op::Mremap { p, addr, old_len, new_len, may_move, new_addr, dontunmap } => {
                sim.mremap(self.pid(p)?, addr, old_len, new_len, may_move, new_addr, dontunmap)?
            }
            Op::TryToUnmap { p, addr } => {
                let pid = self.pid(p)?;
                match sim.page_at(pid, addr)? {
                    Some(page) => {
                        let s = sim.try_to_unmap(Some(&[page.to_u64()]))?;
                        self.last_walk = (!s.page.is_empty()).then(|| crate::mm::rmap::WalkResult {
                            page: s.page[0],
                            anon_vma: s.anon_vma[0],
                            vmas_visited: s.vmas_visited[0],
                            vmas_in_range: s.vmas_in_range[0],
                            ptes_checked: s.ptes_checked[0],
                            mappings_found: s.mappings_found[0],
                            mapcount: s.mapcount[0],
                            tree_nodes_visited: s.tree_nodes_visited[0],
                            lock_id: s.lock_id[0],
                            lock_mode: s.lock_mode[0],
                        });
                        1
                    }
                    None => 0,
                }
            }
            Op::DropSwapCache => sim.drop_swap_cache(None)?,
            Op::DropSwapCacheAt { p, addr } => {
                let page = sim.swap_cache_page_at(self.pid(p)?, addr)?;
                sim.drop_swap_cache(Some(&page.map(|h| h.to_u64()).into_iter().collect::<Vec<_>>()))?
            }
            Op::Enomem { nth } => {
                sim.inject_enomem(nth.map_or(Inject::Off, Inject::Nth))?;
                0
            }
            Op::Check => {
                sim.check()?;
                0
            }
            Op::Mlock { p, addr, len, onfault } => {
                sim.mlock(self.pid(p)?, addr, len, onfault)?;
                0
            }
            Op::Munlock { p, addr, len } => {
                sim.munlock(self.pid(p)?, addr, len)?;
                0
            }
            Op::Mlockall { p, current, future, onfault } => {
                sim.mlockall(self.pid(p)?, current, future, onfault)?;
                0
            }
            Op::Munlockall { p } => {
                sim.munlockall(self.pid(p)?)?;
                0
            }
            Op::MemoryMerge { p, on } => {
                sim.set_memory_merge(self.pid(p)?, on)?;
                0
            }
        })
    }
}

/// Apply `ops` on `sim`; with `check_each`, run `check()` after every operation that
/// succeeded or failed cleanly and stop at the first violation (its outcome is the last).
/// An interrupt (see `interrupt`) stops the batch between two operations (or inside a
/// long one, at its own boundary); the outcomes then end with an extra
/// `Outcome::Err(SimError::Interrupted)`.
pub fn apply(sim: &mut Simulator, ops: &[Op], check_each: bool) -> Vec<Outcome> {
    apply_sampled(sim, ops, check_each, 0).0
}

/// One sample of [`apply_sampled`]: operations applied so far, then live processes, VMAs,
/// anon_vmas, anon_vma_chains and anon pages, then the bytes of VMAs, anon_vmas and
/// chains at the era's struct sizes.
pub type Sample = [u64; 9];

/// [`apply`], sampling object counts and bytes after every `every`-th operation and after
/// the last (never when `every` is 0): the memory of a replay over time.
pub fn apply_sampled(sim: &mut Simulator, ops: &[Op], check_each: bool, every: usize) -> (Vec<Outcome>, Vec<Sample>) {
    let mut samples = Vec::new();
    let sample = |sim: &Simulator, n: usize| {
        let c = sim.counts();
        let (v, a, ch) = sim.memory();
        [n as u64, sim.pids().len() as u64, c.vma, c.anon_vma, c.anon_vma_chain, c.page, v, a, ch]
    };
    let out = apply_inner(sim, &mut Runner::default(), ops, check_each, |sim, _, n| {
        if every > 0 && n % every == 0 {
            samples.push(sample(sim, n));
        }
    });
    if every > 0 && out.len() % every != 0 {
        samples.push(sample(sim, out.len()));
    }
    (out, samples)
}

/// [`apply`] continuing an earlier replay: `runner` holds the process symbols that replay
/// created (its `pids`), so the ops may name them, and gains the ones these ops create.
/// A lockstep replay (`rmapsim diff`) applies a trace one operation at a time this way.
pub fn apply_with(sim: &mut Simulator, runner: &mut Runner, ops: &[Op], check_each: bool) -> Vec<Outcome> {
    apply_inner(sim, runner, ops, check_each, |_, _, _| {})
}

/// The loop of [`apply`]: `after(sim, runner, n)` runs after the `n`-th operation
/// (1-based), the one that broke an invariant included, before `check_each`'s check.
pub(crate) fn apply_inner(
    sim: &mut Simulator,
    r: &mut Runner,
    ops: &[Op],
    check_each: bool,
    mut after: impl FnMut(&Simulator, &Runner, usize),
) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(ops.len());
    let mut ticker = Ticker::metered(crate::state::interrupt::expect(ops.len() as u64));
    for op in ops {
        if let Err(e) = ticker.tick_by(16) {
            out.push(Outcome::Err(e));
            break;
        }
        let o = r.apply(sim, op);
        ticker.advance(1);
        if o == Outcome::Err(SimError::Interrupted) {
            out.push(o.clone());
            out.push(o);
            break;
        }
        let stop = o.is_violation();
        out.push(o);
        after(sim, r, out.len());
        if stop {
            break;
        }
        if check_each {
            if let Err(e) = sim.check() {
                if e == SimError::Interrupted {
                    out.push(Outcome::Err(e));
                } else if let Some(last) = out.last_mut() {
                    *last = Outcome::Err(e);
                }
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "# rmapsim trace v1\n# era 6.18\nspawn\nmmap p1 0x10000000 0x4000 rw\ntouch p1 0x10000000 0x4000 w # fault\nfork p1\nmprotect p2 0x10001000 0x1000 r\nmadvise p2 0x10002000 0x2000 random\nmremap p2 0x10002000 0x2000 0x4000 move 0x20000000\ntry_to_unmap p1 0x10000000\ndrop_swap_cache\ndrop_swap_cache p2 0x10001000\nenomem 3\nenomem off\nmmap p1 - 0x1000 none\nexit p2\nexec p1\ncheck\n";

    #[test]
    fn parse_format_round_trip() {
        let ops = parse(T).unwrap();
        assert_eq!(ops.len(), 16);
        let text = format(&ops, Some("6.18"));
        assert_eq!(parse(&text).unwrap(), ops);
    }

    #[test]
    fn apply_with_one_op_at_a_time_is_one_batch() {
        let ops: Vec<Op> = parse(T).unwrap().into_iter().filter(|o| !matches!(o, Op::Check)).collect();
        let mut batch = Simulator::with_era("6.18", 0).unwrap();
        let whole = apply(&mut batch, &ops, false);
        let mut step = Simulator::with_era("6.18", 0).unwrap();
        let mut runner = Runner::default();
        let mut each = Vec::new();
        for op in &ops {
            each.extend(apply_with(&mut step, &mut runner, std::slice::from_ref(op), false));
        }
        assert_eq!(each, whole);
        assert_eq!(runner.pids, vec![1, 2]);
        assert_eq!(step.counts(), batch.counts());
        assert_eq!(step.graph(), batch.graph());
        // A fresh runner knows no symbol: the same op fails cleanly.
        let again = apply_with(&mut step, &mut Runner::default(), &ops[4..5], false);
        assert!(matches!(&again[0], Outcome::Err(SimError::InvalidArgument(m)) if m.contains("p2 was never created")));
    }

    #[test]
    fn page_owners_is_the_lowest_entry_referring_to_each_page() {
        // a fork, a split, a move, a swap-out dropped; then a COW page of the child in the moved
        // VMA, and a shared page swapped out and kept in the swap cache (swap entries only)
        let text = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x4000 rw\ntouch p1 0x10000000 0x4000 w\n\
                    fork p1\nmprotect p2 0x10001000 0x1000 r\nmremap p2 0x10002000 0x2000 0x4000 move 0x20000000\n\
                    try_to_unmap p1 0x10000000\ndrop_swap_cache\ntouch p2 0x20001000 0x1000 w\n\
                    try_to_unmap p1 0x10001000\n";
        let mut sim = Simulator::with_era("6.18", 0).unwrap();
        let out = apply(&mut sim, &parse(text).unwrap(), false);
        assert!(out.iter().all(|o| matches!(o, Outcome::Ok(_))), "{out:?}");
        let pages: Vec<u64> = sim.anon_pages().iter().map(|p| p.to_u64()).collect();
        let entries = sim.pte_entries(); // (pid, addr, kind, value) in pid then address order
        let mut want = Vec::new();
        for &h in &pages {
            let (_, index, _, swap) = sim.page_info(crate::state::arena::Id::from_u64(h)).unwrap();
            let refers = |e: &&(u32, u64, u8, u64)| {
                (e.2 == 2 && e.3 == h) || (e.2 == 3 && swap.is_some_and(|s| u64::from(s) == e.3))
            };
            let first = entries.iter().filter(refers).min_by_key(|e| (e.0, e.1));
            want.push(match first {
                Some(&(pid, addr, _, _)) => {
                    let vmas = sim.vmas_of(i64::from(pid)).unwrap();
                    let v = vmas.iter().find(|v| v.start <= addr && addr < v.end).unwrap();
                    (i64::from(pid), v.start, index)
                }
                None => (-1, 0, index),
            });
        }
        assert!(want.contains(&(2, 0x20000000, 0x10003))); // the child's copy: its moved VMA, the old index
        assert!(want.contains(&(1, 0x10000000, 0x10001))); // swapped out: p1's swap entry, in p1's one VMA
        assert_eq!(sim.page_owners(&pages), want);
        assert_eq!(sim.page_owners(&[u64::MAX]), vec![(-1, 0, u64::MAX)]); // no such page
    }

    #[test]
    fn page_mappings_is_page_at_over_every_vma() {
        let mut sim = Simulator::with_era("6.18", 0).unwrap();
        let _ = apply(&mut sim, &parse(T).unwrap()[..9], false); // forks, COW, a split, a move, a swap-out
        let mut want = Vec::new();
        for pid in sim.pids() {
            for v in sim.vmas_of(pid as i64).unwrap() {
                for a in (v.start..v.end).step_by(crate::PAGE_SIZE as usize) {
                    if let Some(pg) = sim.page_at(pid as i64, a).unwrap() {
                        want.push((pid, a, pg));
                    }
                }
            }
        }
        assert!(want.len() >= 4, "{want:?}");
        assert_eq!(sim.page_mappings(), want);
    }

    #[test]
    fn noreserve_round_trips_in_text_and_rows() {
        let t = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x4000 rw noreserve\n\
                 mmap p1 0x20000000 0x2000 r file 3 0x1000 noreserve\nmmap p1 0x30000000 0x1000 rw\n";
        let ops = parse(t).unwrap();
        assert!(matches!(ops[1], Op::Mmap { noreserve: true, file: None, prot: 3, .. }));
        assert!(matches!(ops[2], Op::Mmap { noreserve: true, file: Some((3, 0x1000)), prot: 1, .. }));
        assert!(matches!(ops[3], Op::Mmap { noreserve: false, .. }));
        assert_eq!(parse(&format(&ops, None)).unwrap(), ops);
        assert_eq!(ops[1].encode()[4], 3 | 8);
        assert_eq!(ops[3].encode()[4], 3);
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(&Op::decode(op.encode(), i).unwrap(), op);
        }
        let mut row = ops[1].encode();
        row[4] = 128 | 3; // bit 7: no flag (bit 6 is MAP_LOCKED)
        assert!(Op::decode(row, 0).unwrap_err().to_string().contains("plus 8 for noreserve, 16 for stack"));
        for bad_line in [
            "mmap p1 0x1000 0x1000 rw noreserv",
            "mmap p1 0x1000 0x1000 rw noreserve file 1 0x0",
            "mmap p1 0x1000 0x1000 rw stack noreserve",
            "mmap p1 0x1000 0x1000 rw stack stack",
        ] {
            let e = parse(&std::format!("{HEADER}\n{bad_line}\n")).unwrap_err().to_string();
            assert!(e.contains("line 2"), "{bad_line}: {e}");
        }
    }

    /// `noreplace` (bit 5 of the prot column) and `dontunmap` (bit 1 of mremap's may_move
    /// column, after an optional new address) round-trip through text and rows.
    #[test]
    fn noreplace_and_dontunmap_round_trip() {
        let t = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x4000 rw stack noreplace\n\
                 mremap p1 0x10000000 0x2000 0x2000 move 0x20000000 dontunmap\n\
                 mremap p1 0x10002000 0x1000 0x1000 move dontunmap\nmremap p1 0x10003000 0x1000 0x2000 move\n";
        let ops = parse(t).unwrap();
        assert!(matches!(ops[1], Op::Mmap { noreplace: true, stack: true, noreserve: false, .. }));
        assert!(matches!(ops[2], Op::Mremap { dontunmap: true, new_addr: Some(0x2000_0000), may_move: true, .. }));
        assert!(matches!(ops[3], Op::Mremap { dontunmap: true, new_addr: None, .. }));
        assert!(matches!(ops[4], Op::Mremap { dontunmap: false, new_addr: None, .. }));
        assert_eq!(parse(&format(&ops, None)).unwrap(), ops);
        assert_eq!(ops[1].encode()[4], 3 | 16 | 32);
        assert_eq!(ops[2].encode()[5], 1 | 2);
        assert_eq!(ops[4].encode()[5], 1);
        let mut row = ops[2].encode();
        row[5] = 4;
        assert!(Op::decode(row, 0).unwrap_err().to_string().contains("plus 2 for dontunmap"));
        for bad_line in [
            "mremap p1 0x1000 0x1000 0x1000 move dontunmap 0x2000",
            "mremap p1 0x1000 0x1000 0x1000 move dontunmp",
            "mmap p1 0x1000 0x1000 rw noreplace stack",
        ] {
            let e = parse(&std::format!("{HEADER}\n{bad_line}\n")).unwrap_err().to_string();
            assert!(e.contains("line 2"), "{bad_line}: {e}");
        }
    }

    #[test]
    fn stack_round_trips_in_text_and_rows() {
        let t = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x4000 rw stack\n\
                 mmap p1 0x20000000 0x2000 rw file 3 0x1000 noreserve stack\n";
        let ops = parse(t).unwrap();
        assert!(matches!(ops[1], Op::Mmap { stack: true, noreserve: false, file: None, .. }));
        assert!(matches!(ops[2], Op::Mmap { stack: true, noreserve: true, file: Some((3, 0x1000)), .. }));
        assert_eq!(parse(&format(&ops, None)).unwrap(), ops);
        assert_eq!(ops[1].encode()[4], 3 | 16);
        assert_eq!(ops[2].encode()[4], 3 | 8 | 16);
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(&Op::decode(op.encode(), i).unwrap(), op);
        }
    }

    #[test]
    fn malformed_traces_name_the_line() {
        for (t, want) in [
            ("spawn\n", "line 1: expected the header"),
            ("# rmapsim trace v1\nspawn\nfork q1\n", "line 3: expected a process symbol"),
            ("# rmapsim trace v1\nmmap p1 0x1000 zz rw\n", "line 2: expected a length"),
            ("# rmapsim trace v1\ntouch p1 0x1000 0x1000 x\n", "line 2: expected w or r"),
            ("# rmapsim trace v1\nspawn p1\n", "line 2: unexpected"),
            ("# rmapsim trace v1\nfly p1\n", "line 2: unknown operation"),
            ("", "empty trace"),
        ] {
            let e = parse(t).unwrap_err().to_string();
            assert!(e.contains(want), "{t:?}: {e}");
        }
    }

    #[test]
    fn apply_runs_and_reports_each_result() {
        let mut s = Simulator::with_era("6.18", 0).unwrap();
        let out = apply(&mut s, &parse(T).unwrap(), true);
        assert_eq!(out.len(), 16);
        assert_eq!(out[0], Outcome::Ok(1));
        assert_eq!(out[1], Outcome::Ok(0x1000_0000));
        assert_eq!(out[3], Outcome::Ok(2));
        assert_eq!(out[6], Outcome::Ok(0x2000_0000));
        assert!(out.iter().all(|o| matches!(o, Outcome::Ok(_))), "{out:?}");
    }

    /// `drop_swap_cache p addr` drops the swap-cache page of that swap entry only: after
    /// `try_to_unmap` the shared page is unmapped from both processes and sits in the swap
    /// cache; the second drop finds nothing left to drop.
    #[test]
    fn drop_swap_cache_of_one_swap_entry() {
        let t = "# rmapsim trace v1\nspawn\nmmap p1 0x10000000 0x2000 rw\ntouch p1 0x10000000 0x2000 w\nfork p1\n\
                 try_to_unmap p1 0x10000000\ntry_to_unmap p1 0x10001000\ndrop_swap_cache p2 0x10000000\n\
                 drop_swap_cache p1 0x10000000\ndrop_swap_cache p1 0x10001000\ncheck\n";
        let mut s = Simulator::with_era("6.18", 0).unwrap();
        let out = apply(&mut s, &parse(t).unwrap(), true);
        let got: Vec<_> = out[6..9].to_vec();
        assert_eq!(got, vec![Outcome::Ok(1), Outcome::Ok(0), Outcome::Ok(1)]);
        assert_eq!(s.counts().page, 0);
        assert_eq!(out.len(), 10);
    }
}
