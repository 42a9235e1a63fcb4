//! The per-operation event log of a trace replay (machinery, not kernel model): for each
//! operation, what it allocated (attempts per allocation site) and freed (objects per
//! kind), the live objects after it, and for a walk (`try_to_unmap`) the candidates it
//! visited and the lock it took. `rmapsim.Simulator.apply(ops, events=True)` and
//! `rmapsim replay --events` present it as a table.

use crate::error::{Result, SimError};
use crate::harness::ops::{ArgKind, OpSpec, NONE};
use crate::harness::trace::{self, Op, Outcome, Runner};
use crate::mm::rmap::LOCK_SHARED;
use crate::state::sim::{AllocSite, Simulator};

/// Object kinds of [`Event::allocs`] and [`Event::frees`], in order.
pub const OBJECT_KINDS: [&str; 4] = ["anon_vma", "anon_vma_chain", "vma", "page"];
/// Object kinds of [`Event::live`], in order.
pub const LIVE_KINDS: [&str; 5] = ["mm", "vma", "anon_vma", "anon_vma_chain", "page"];

/// The rmap walk a `try_to_unmap` operation made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkEvent {
    /// Candidate VMAs visited (list entries or interval-tree hits).
    pub candidates: u32,
    /// Candidates whose range holds the page's index.
    pub in_range: u32,
    /// Mappings of the page found.
    pub mappings: u32,
    /// The anon_vma whose lock the walk took (its handle).
    pub lock: u64,
    /// Taken shared (an rwsem read lock, 3.8+) rather than exclusive.
    pub shared: bool,
}

/// One operation of an event log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The trace word (`fork`, `mmap`, `try_to_unmap`, ...).
    pub kind: &'static str,
    /// The process symbol the operation names (`spawn`: the new one; 0: none).
    pub p: u32,
    /// Its pid in this run, when the symbol names a process.
    pub pid: Option<u32>,
    pub addr: Option<u64>,
    pub len: Option<u64>,
    /// Allocation attempts per site (indexed like `AllocSite::ALL`).
    pub site_allocs: [u64; AllocSite::ALL.len()],
    /// Objects allocated and freed, per [`OBJECT_KINDS`].
    pub allocs: [u64; 4],
    pub frees: [u64; 4],
    /// Live objects after the operation, per [`LIVE_KINDS`].
    pub live: [u64; 5],
    pub walk: Option<WalkEvent>,
}

/// The trace word, process symbol, address and length of `op`: from its row, by the
/// registry's entry (its process argument, its first address and its first length).
fn describe(op: &Op) -> (&'static str, u32, Option<u64>, Option<u64>) {
    let r = op.encode();
    let Some(spec) = OpSpec::of_row(&r) else { return ("?", 0, None, None) };
    let first = |want: &[ArgKind]| spec.args.iter().find(|a| want.contains(&a.kind)).map(|a| r[a.col]);
    let p = first(&[ArgKind::Proc]).map_or(0, |p| p as u32);
    let addr = match spec.args.iter().find(|a| matches!(a.kind, ArgKind::Addr | ArgKind::OptAddr)) {
        Some(a) if a.kind == ArgKind::OptAddr && r[a.col] == NONE => None,
        Some(a) => Some(r[a.col]),
        None => None,
    };
    (spec.name, p, addr, first(&[ArgKind::Len]))
}

/// What the counters read between two operations.
struct Snap {
    sites: [u64; AllocSite::ALL.len()],
    arenas: [(u64, u64); 4],
}

fn snap(sim: &Simulator) -> Snap {
    Snap { sites: sim.site_allocs, arenas: sim.arena_counts() }
}

/// [`trace::apply`] recording one [`Event`] per operation applied (an interrupted batch
/// records the operations before the interrupt). The log is reserved up front, fallibly:
/// a trace too long for the host-memory budget is `OutOfMemory` before anything runs.
pub fn apply_events(sim: &mut Simulator, ops: &[Op], check_each: bool) -> Result<(Vec<Outcome>, Vec<Event>)> {
    let mut events: Vec<Event> = Vec::new();
    events
        .try_reserve_exact(ops.len())
        .map_err(|_| SimError::OutOfMemory(format!("events: no room for the event log of {} operations", ops.len())))?;
    let mut before = snap(sim);
    let out =
        trace::apply_inner(sim, &mut Runner::default(), ops, check_each, |sim: &Simulator, r: &Runner, n: usize| {
            let (kind, p, addr, len) = describe(&ops[n - 1]);
            let p = if kind == "spawn" { r.pids.len() as u32 } else { p };
            let now = snap(sim);
            let mut e = Event {
                kind,
                p,
                addr,
                len,
                pid: r.pids.get((p as usize).wrapping_sub(1)).copied(),
                ..Event::default()
            };
            for (i, s) in e.site_allocs.iter_mut().enumerate() {
                *s = now.sites[i] - before.sites[i];
            }
            for i in 0..4 {
                e.allocs[i] = now.arenas[i].0 - before.arenas[i].0;
                e.frees[i] = now.arenas[i].1 - before.arenas[i].1;
            }
            let c = sim.counts();
            e.live = [c.mm, c.vma, c.anon_vma, c.anon_vma_chain, c.page];
            e.walk = r.last_walk.filter(|_| kind == "try_to_unmap").map(|w| WalkEvent {
                candidates: w.vmas_visited,
                in_range: w.vmas_in_range,
                mappings: w.mappings_found,
                lock: w.lock_id,
                shared: w.lock_mode == LOCK_SHARED,
            });
            events.push(e);
            before = now;
        });
    Ok((out, events))
}
