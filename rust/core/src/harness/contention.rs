//! A deterministic lock-contention model (docs/contract.md#locks-and-contention): replay a batch of rmap walks on C
//! simulated CPUs in virtual time, with each era's lock scope and kind.
//!
//! Cost model (virtual time units, "candidate-visits"):
//! - a walk holds its lock for `handoff` (only when it had to wait: the cache line and
//!   wake-up cost of a contended hand-off) plus `per_candidate` × candidates visited;
//! - between two walks a CPU works `outside` units without the lock (isolating the next
//!   page, the page-table work of the previous one);
//! - optionally every `writer_every`-th request is a write-side update (fork, exit,
//!   split) that holds the lock exclusively for `writer_hold` units, even under rwsem.
//!
//! Locks grant in FIFO order. Under an rwsem, a read request joins current readers only
//! when nobody is queued (no writer starvation), and a release wakes the queue head plus
//! every reader directly behind it. Spin locks wait busy ("spinning"); mutexes and rwsems
//! sleep.
//!
//! On request ([`Simulator::contention_with_spans`]) the replay also records each CPU's
//! time as spans: waiting for a lock, holding it for a walk or a write-side update, and
//! working outside it. The default path records nothing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::error::Result;
use crate::state::interrupt::Ticker;

/// One lock request: `cpu` asks for `lock` (shared or exclusive) for `hold` units.
/// `candidates` (the walk's VMAs visited) and `update` (a write-side update, not a walk)
/// only label the request's spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub lock: u64,
    pub shared: bool,
    pub hold: u64,
    pub candidates: u32,
    pub update: bool,
}

/// Span kinds ([`Spans::kind`]): waiting for the lock (spinning or sleeping, as the era's
/// lock kind says), holding it for a `page_referenced` walk, holding it exclusively for a
/// write-side update (fork, exit, split), working without any lock between requests.
pub const SPAN_WAIT: u8 = 0;
pub const SPAN_HOLD: u8 = 1;
pub const SPAN_UPDATE: u8 = 2;
pub const SPAN_OUTSIDE: u8 = 3;

/// Per-CPU time spans of one replay, as columns: span i is CPU `cpu[i]` doing `kind[i]`
/// on lock `lock[i]` (0 for outside work) over `[start[i], end[i])` virtual time;
/// `candidates[i]` is the walk's VMAs visited (0 for waits, updates and outside work).
/// Spans are pushed in the replay's event order; on one CPU they are in time order and
/// never overlap. Waits of 0 units and outside work of 0 units are not recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spans {
    pub cpu: Vec<u32>,
    pub kind: Vec<u8>,
    pub lock: Vec<u64>,
    pub start: Vec<u64>,
    pub end: Vec<u64>,
    pub candidates: Vec<u32>,
}

impl Spans {
    /// Bytes one span takes in the columns.
    pub const BYTES: u64 = (4 + 1 + 8 + 8 + 8 + 4) as u64;

    /// Empty columns with room for `n` spans, reserved fallibly (a failed reservation is
    /// `OutOfMemory`, not an abort).
    pub fn with_capacity(n: usize) -> Result<Spans> {
        let mut s = Spans::default();
        let oom = |e: std::collections::TryReserveError| {
            SimError::OutOfMemory(format!(
                "contention spans: the host cannot hold {n} spans ({} bytes): {e}",
                n as u64 * Spans::BYTES
            ))
        };
        s.cpu.try_reserve_exact(n).map_err(oom)?;
        s.kind.try_reserve_exact(n).map_err(oom)?;
        s.lock.try_reserve_exact(n).map_err(oom)?;
        s.start.try_reserve_exact(n).map_err(oom)?;
        s.end.try_reserve_exact(n).map_err(oom)?;
        s.candidates.try_reserve_exact(n).map_err(oom)?;
        Ok(s)
    }

    pub fn len(&self) -> usize {
        self.cpu.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cpu.is_empty()
    }

    fn push(&mut self, cpu: u32, kind: u8, lock: u64, start: u64, end: u64, candidates: u32) {
        self.cpu.push(cpu);
        self.kind.push(kind);
        self.lock.push(lock);
        self.start.push(start);
        self.end.push(end);
        self.candidates.push(candidates);
    }
}

/// Model parameters.
#[derive(Clone, Copy, Debug)]
pub struct ContentionConfig {
    pub cpus: u32,
    pub handoff: u64,
    pub outside: u64,
    /// Locks spin (busy) rather than sleep while waiting.
    pub spinning: bool,
}

/// What the replay measured.
#[derive(Clone, Debug, Default)]
pub struct ContentionResult {
    pub makespan: u64,
    /// Per lock: (lock id, acquisitions, total hold, total wait).
    pub locks: Vec<(u64, u64, u64, u64)>,
    /// Timeline of changes: (time, CPUs holding a lock, CPUs waiting for one).
    pub timeline: Vec<(u64, u32, u32)>,
    /// CPU-time spent: holding locks, waiting (spinning or sleeping), working outside.
    pub hold_time: u64,
    pub wait_time: u64,
    pub outside_time: u64,
    pub spinning: bool,
    /// Per-CPU spans, when asked for (see [`simulate_with_spans`]).
    pub spans: Option<Spans>,
}

#[derive(Default)]
struct LockState {
    exclusive: bool,
    holders: u32,
    queue: VecDeque<(u32, Request, u64)>, // cpu, request, time requested
    acquisitions: u64,
    hold: u64,
    wait: u64,
}

/// Replay `reqs[cpu]` (each CPU's requests, in order) and measure. Only an interrupt
/// (see `interrupt`) makes it fail.
pub fn simulate(cfg: &ContentionConfig, reqs: &[Vec<Request>]) -> Result<ContentionResult> {
    simulate_with_spans(cfg, reqs, None)
}

/// Most spans a replay of `reqs` records: per request one hold, at most one wait and at
/// most one stretch of outside work.
pub fn max_spans(reqs: &[Vec<Request>]) -> u64 {
    reqs.iter().map(|r| r.len() as u64).sum::<u64>().saturating_mul(3)
}

/// [`simulate`], also recording every CPU's spans into `spans` when given (reserve
/// [`max_spans`] beforehand so that recording never reallocates).
pub fn simulate_with_spans(
    cfg: &ContentionConfig,
    reqs: &[Vec<Request>],
    mut spans: Option<Spans>,
) -> Result<ContentionResult> {
    let mut ticker = Ticker::new();
    let mut res = ContentionResult { spinning: cfg.spinning, ..Default::default() };
    let mut locks: HashMap<u64, LockState> = HashMap::new();
    let mut next = vec![0usize; reqs.len()];
    // Events: (time, kind, cpu). kind 0 = release by cpu, 1 = cpu requests its next lock.
    let mut events: BinaryHeap<Reverse<(u64, u8, u32)>> = BinaryHeap::new();
    for (c, r) in reqs.iter().enumerate() {
        if !r.is_empty() {
            events.push(Reverse((0, 1, c as u32)));
        }
    }
    let (mut holding, mut waiting) = (0u32, 0u32);
    let mut current: Vec<Option<Request>> = vec![None; reqs.len()];
    // Grant `req` to `cpu` at time `t` (waited `waited`): schedule its release.
    let grant = |t: u64,
                 cpu: u32,
                 req: Request,
                 waited: u64,
                 st: &mut LockState,
                 events: &mut BinaryHeap<Reverse<(u64, u8, u32)>>,
                 res: &mut ContentionResult,
                 spans: &mut Option<Spans>| {
        let hold = req.hold + if waited > 0 { cfg.handoff } else { 0 };
        if let Some(sp) = spans {
            if waited > 0 {
                sp.push(cpu, SPAN_WAIT, req.lock, t - waited, t, 0);
            }
            let (kind, cands) = if req.update { (SPAN_UPDATE, 0) } else { (SPAN_HOLD, req.candidates) };
            sp.push(cpu, kind, req.lock, t, t + hold, cands);
        }
        st.holders += 1;
        st.exclusive = !req.shared;
        st.acquisitions += 1;
        st.hold += hold;
        st.wait += waited;
        res.hold_time += hold;
        res.wait_time += waited;
        events.push(Reverse((t + hold, 0, cpu)));
    };
    while let Some(Reverse((t, kind, cpu))) = events.pop() {
        ticker.tick()?;
        res.makespan = res.makespan.max(t);
        let c = cpu as usize;
        if kind == 1 {
            let req = reqs[c][next[c]];
            next[c] += 1;
            current[c] = Some(req);
            let st = locks.entry(req.lock).or_default();
            let free = st.holders == 0;
            let join = st.holders > 0 && !st.exclusive && req.shared && st.queue.is_empty();
            if (free && st.queue.is_empty()) || join {
                grant(t, cpu, req, 0, st, &mut events, &mut res, &mut spans);
                holding += 1;
            } else {
                st.queue.push_back((cpu, req, t));
                waiting += 1;
            }
            mark(t, holding, waiting, &mut res.timeline);
            continue;
        }
        // release
        let Some(req) = current[c].take() else { continue };
        holding -= 1;
        let st = locks.entry(req.lock).or_default();
        st.holders -= 1;
        if st.holders == 0 {
            if let Some((wc, wr, wt)) = st.queue.pop_front() {
                grant(t, wc, wr, t - wt, st, &mut events, &mut res, &mut spans);
                holding += 1;
                waiting -= 1;
                if wr.shared {
                    while st.queue.front().is_some_and(|q| q.1.shared) {
                        if let Some((qc, qr, qt)) = st.queue.pop_front() {
                            grant(t, qc, qr, t - qt, st, &mut events, &mut res, &mut spans);
                            holding += 1;
                            waiting -= 1;
                        }
                    }
                }
            }
        }
        mark(t, holding, waiting, &mut res.timeline);
        if next[c] < reqs[c].len() {
            res.outside_time += cfg.outside;
            if let (Some(sp), true) = (&mut spans, cfg.outside > 0) {
                sp.push(cpu, SPAN_OUTSIDE, 0, t, t + cfg.outside, 0);
            }
            events.push(Reverse((t + cfg.outside, 1, cpu)));
        }
    }
    res.locks = lock_totals(locks);
    res.spans = spans;
    Ok(res)
}

/// Record `(t, holding, waiting)` on the timeline (replacing a point at the same time).
fn mark(t: u64, h: u32, w: u32, tl: &mut Vec<(u64, u32, u32)>) {
    if let Some(last) = tl.last_mut() {
        if last.0 == t {
            last.1 = h;
            last.2 = w;
            return;
        }
    }
    tl.push((t, h, w));
}

/// `(lock, acquisitions, hold, wait)` of every lock, by lock.
fn lock_totals(locks: HashMap<u64, LockState>) -> Vec<(u64, u64, u64, u64)> {
    let mut v: Vec<_> = locks.into_iter().map(|(k, s)| (k, s.acquisitions, s.hold, s.wait)).collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cpus: u32) -> ContentionConfig {
        ContentionConfig { cpus, handoff: 0, outside: 0, spinning: true }
    }

    #[test]
    fn one_exclusive_lock_serialises_and_readers_share() {
        // 4 CPUs, each one walk of 10 units on lock 7
        let ex: Vec<Vec<Request>> =
            (0..4).map(|_| vec![Request { lock: 7, shared: false, hold: 10, ..Default::default() }]).collect();
        let r = simulate(&cfg(4), &ex).unwrap();
        assert_eq!(r.makespan, 40);
        assert_eq!(r.wait_time, 10 + 20 + 30);
        let sh: Vec<Vec<Request>> =
            (0..4).map(|_| vec![Request { lock: 7, shared: true, hold: 10, ..Default::default() }]).collect();
        let r = simulate(&cfg(4), &sh).unwrap();
        assert_eq!((r.makespan, r.wait_time), (10, 0));
        // distinct locks never wait
        let d: Vec<Vec<Request>> =
            (0..4).map(|i| vec![Request { lock: i, shared: false, hold: 10, ..Default::default() }]).collect();
        assert_eq!(simulate(&cfg(4), &d).unwrap().wait_time, 0);
    }

    #[test]
    fn a_queued_writer_blocks_later_readers() {
        let reqs = vec![
            vec![Request { lock: 1, shared: true, hold: 10, ..Default::default() }],
            vec![Request { lock: 1, shared: false, hold: 5, ..Default::default() }],
            vec![Request { lock: 1, shared: true, hold: 10, ..Default::default() }],
        ];
        // t=0: reader 0 holds; writer 1 queues; reader 2 must queue behind the writer.
        let r = simulate(&cfg(3), &reqs).unwrap();
        assert_eq!(r.makespan, 25);
        assert_eq!(r.wait_time, 10 + 15);
    }

    /// The spans as rows (cpu, kind, lock, start, end, candidates), in push order.
    fn rows(s: &Spans) -> Vec<(u32, u8, u64, u64, u64, u32)> {
        (0..s.len()).map(|i| (s.cpu[i], s.kind[i], s.lock[i], s.start[i], s.end[i], s.candidates[i])).collect()
    }

    #[test]
    fn spans_of_a_writer_between_readers() {
        let rd = Request { lock: 1, shared: true, hold: 10, candidates: 3, update: false };
        let reqs =
            vec![vec![rd], vec![Request { lock: 1, shared: false, hold: 5, candidates: 0, update: true }], vec![rd]];
        let plain = simulate(&cfg(3), &reqs).unwrap();
        assert_eq!(plain.spans, None);
        let r = simulate_with_spans(&cfg(3), &reqs, Some(Spans::with_capacity(9).unwrap())).unwrap();
        // hand-derived: reader 0 holds 0..10; the writer waits 0..10, holds 10..15; reader 2
        // queued behind it waits 0..15 and holds 15..25
        assert_eq!(
            rows(r.spans.as_ref().unwrap()),
            vec![
                (0, SPAN_HOLD, 1, 0, 10, 3),
                (1, SPAN_WAIT, 1, 0, 10, 0),
                (1, SPAN_UPDATE, 1, 10, 15, 0),
                (2, SPAN_WAIT, 1, 0, 15, 0),
                (2, SPAN_HOLD, 1, 15, 25, 3),
            ]
        );
        assert_eq!((r.makespan, r.wait_time, r.hold_time), (plain.makespan, plain.wait_time, plain.hold_time));
    }

    #[test]
    fn spans_with_handoff_and_outside_work() {
        // 2 CPUs, 2 exclusive walks of 5 each on one lock, hand-off 2, outside 3
        let w = Request { lock: 9, shared: false, hold: 5, candidates: 5, update: false };
        let reqs = vec![vec![w, w], vec![w, w]];
        let c = ContentionConfig { cpus: 2, handoff: 2, outside: 3, spinning: false };
        let spans = Spans::with_capacity(max_spans(&reqs) as usize).unwrap();
        let cap = spans.cpu.capacity();
        let r = simulate_with_spans(&c, &reqs, Some(spans)).unwrap();
        let s = r.spans.unwrap();
        assert_eq!(
            rows(&s),
            vec![
                (0, SPAN_HOLD, 9, 0, 5, 5),
                (1, SPAN_WAIT, 9, 0, 5, 0),
                (1, SPAN_HOLD, 9, 5, 12, 5),
                (0, SPAN_OUTSIDE, 0, 5, 8, 0),
                (0, SPAN_WAIT, 9, 8, 12, 0),
                (0, SPAN_HOLD, 9, 12, 19, 5),
                (1, SPAN_OUTSIDE, 0, 12, 15, 0),
                (1, SPAN_WAIT, 9, 15, 19, 0),
                (1, SPAN_HOLD, 9, 19, 26, 5),
            ]
        );
        assert_eq!((r.makespan, r.wait_time, r.hold_time), (26, 5 + 4 + 4, 5 + 7 + 7 + 7));
        assert_eq!(s.cpu.capacity(), cap, "recording reallocated");
    }

    #[test]
    fn spans_beyond_the_host_budget_are_refused_and_the_default_path_records_none() {
        let mut s = Simulator::with_era("2.6.33", 0).unwrap();
        let parent = s.spawn().unwrap() as i64;
        let a = s
            .mmap(
                parent,
                4 * crate::PAGE_SIZE,
                None,
                crate::state::objects::prot::READ | crate::state::objects::prot::WRITE,
            )
            .unwrap();
        s.touch(parent, a, 4 * crate::PAGE_SIZE, true).unwrap();
        s.fork_many(parent, 2).unwrap();
        let m = ReclaimModel { cpus: 2, per_candidate: 1, handoff: 1, outside: 10, writer_every: 2, writer_hold: 5 };
        assert_eq!(s.contention(None, &m).unwrap().spans, None);
        let r = s.contention_with_spans(None, &m, true).unwrap();
        // 4 walks of 3 candidates (the parent and 2 children share the pages) and 2 updates
        let sp = r.spans.unwrap();
        let count = |k: u8| sp.kind.iter().filter(|&&x| x == k).count();
        assert_eq!((count(SPAN_HOLD), count(SPAN_UPDATE)), (4, 2));
        assert!(sp.candidates.iter().zip(&sp.kind).all(|(&c, &k)| (k == SPAN_HOLD) == (c == 3)));
        s.host_budget = 0;
        let e = s.contention_with_spans(None, &m, true).unwrap_err();
        assert!(matches!(&e, SimError::OutOfMemory(msg) if msg.contains("contention spans refused")), "{e:?}");
        assert!(s.contention(None, &m).is_ok(), "the default path needs no room");
    }
}

use crate::error::SimError;
use crate::mm::rmap::LOCK_SHARED;
use crate::policy::LockKind;
use crate::state::sim::Simulator;

/// Parameters of [`Simulator::contention`].
#[derive(Clone, Copy, Debug)]
pub struct ReclaimModel {
    pub cpus: u32,
    /// Lock hold per candidate VMA visited (page-table lookup under the lock).
    pub per_candidate: u64,
    pub handoff: u64,
    pub outside: u64,
    /// Every `writer_every`-th request is followed by a write-side update of the same
    /// lock (0 = none), held `writer_hold` units.
    pub writer_every: u64,
    pub writer_hold: u64,
}

impl Simulator {
    /// Replay the `page_referenced` walks of `pages` (all anon pages when `None`) on
    /// `cpus` simulated CPUs, walk i on CPU i mod cpus, under this era's locks (the
    /// anon_vma lock `page_lock_anon_vma` takes in 2.6.33–2.6.34, the root's lock from
    /// 2.6.35, `page_lock_anon_vma_read` taking the rwsem shared from 3.8).
    pub fn contention(&self, pages: Option<&[u64]>, m: &ReclaimModel) -> Result<ContentionResult> {
        self.contention_with_spans(pages, m, false)
    }

    /// [`Simulator::contention`], also recording every CPU's spans (`res.spans`) when
    /// `spans` is true. The spans' room is reserved before the replay: refused with
    /// `OutOfMemory` when it would take rmapsim beyond the host guard's budget (see
    /// `hostmem`) or the host cannot give it.
    pub fn contention_with_spans(
        &self,
        pages: Option<&[u64]>,
        m: &ReclaimModel,
        spans: bool,
    ) -> Result<ContentionResult> {
        if !(1..=crate::state::sim::NR_CPUS).contains(&m.cpus) {
            return Err(SimError::InvalidArgument(format!(
                "cpus must be from 1 to {} (NR_CPUS), got {}",
                crate::state::sim::NR_CPUS,
                m.cpus
            )));
        }
        let stats = self.page_referenced(pages)?;
        let cpus = m.cpus as usize;
        let mut reqs: Vec<Vec<Request>> = vec![Vec::new(); cpus];
        // Every time below is at most the serial schedule's length times the requests
        // (waits included); refuse units that would overflow 64 bits instead of wrapping.
        let overflow = || {
            SimError::InvalidArgument(format!(
                "per_candidate {}, handoff {}, outside {} and writer_hold {} overflow 64-bit time for these walks; \
                 use smaller time units",
                m.per_candidate, m.handoff, m.outside, m.writer_hold
            ))
        };
        let (mut serial, mut n) = (0u64, 1u64);
        let mut add = |hold: u64| -> Result<()> {
            let step = hold.checked_add(m.handoff).and_then(|s| s.checked_add(m.outside)).ok_or_else(overflow)?;
            serial = serial.checked_add(step).ok_or_else(overflow)?;
            n += 1;
            Ok(())
        };
        for i in 0..stats.len() {
            let hold = m.per_candidate.checked_mul(u64::from(stats.vmas_visited[i].max(1))).ok_or_else(overflow)?;
            let r = Request {
                lock: stats.lock_id[i],
                shared: stats.lock_mode[i] == LOCK_SHARED,
                hold,
                candidates: stats.vmas_visited[i],
                update: false,
            };
            add(hold)?;
            reqs[i % cpus].push(r);
            if m.writer_every > 0 && (i as u64 + 1).is_multiple_of(m.writer_every) {
                add(m.writer_hold)?;
                reqs[i % cpus].push(Request {
                    lock: r.lock,
                    shared: false,
                    hold: m.writer_hold,
                    candidates: 0,
                    update: true,
                });
            }
        }
        serial.checked_mul(n).ok_or_else(overflow)?;
        let cfg = ContentionConfig {
            cpus: m.cpus,
            handoff: m.handoff,
            outside: m.outside,
            spinning: self.policy.lock_kind == LockKind::Spin,
        };
        let spans = if spans {
            let n = max_spans(&reqs);
            let bytes = n.saturating_mul(Spans::BYTES);
            let heap = crate::state::hostmem::heap_bytes();
            if heap.saturating_add(bytes) > self.host_budget {
                return Err(SimError::OutOfMemory(format!(
                    "contention spans refused: up to {n} spans need {bytes} bytes and rmapsim holds {heap}, \
                     beyond this process's budget of {} bytes; replay fewer pages or run without spans",
                    self.host_budget
                )));
            }
            Some(Spans::with_capacity(usize::try_from(n).unwrap_or(usize::MAX))?)
        } else {
            None
        };
        simulate_with_spans(&cfg, &reqs, spans)
    }
}
