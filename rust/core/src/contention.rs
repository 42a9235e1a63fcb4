//! A deterministic lock-contention model (SPEC §6): replay a batch of rmap walks on C
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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::error::Result;
use crate::interrupt::Ticker;

/// One lock request: `cpu` asks for `lock` (shared or exclusive) for `hold` units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub lock: u64,
    pub shared: bool,
    pub hold: u64,
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
    let mark = |t: u64, h: u32, w: u32, tl: &mut Vec<(u64, u32, u32)>| {
        if let Some(last) = tl.last_mut() {
            if last.0 == t {
                last.1 = h;
                last.2 = w;
                return;
            }
        }
        tl.push((t, h, w));
    };
    // Grant `req` to `cpu` at time `t` (waited `waited`): schedule its release.
    let grant = |t: u64,
                 cpu: u32,
                 req: Request,
                 waited: u64,
                 st: &mut LockState,
                 events: &mut BinaryHeap<Reverse<(u64, u8, u32)>>,
                 res: &mut ContentionResult| {
        let hold = req.hold + if waited > 0 { cfg.handoff } else { 0 };
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
                grant(t, cpu, req, 0, st, &mut events, &mut res);
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
                grant(t, wc, wr, t - wt, st, &mut events, &mut res);
                holding += 1;
                waiting -= 1;
                if wr.shared {
                    while st.queue.front().is_some_and(|q| q.1.shared) {
                        if let Some((qc, qr, qt)) = st.queue.pop_front() {
                            grant(t, qc, qr, t - qt, st, &mut events, &mut res);
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
            events.push(Reverse((t + cfg.outside, 1, cpu)));
        }
    }
    let mut v: Vec<(u64, u64, u64, u64)> =
        locks.into_iter().map(|(k, s)| (k, s.acquisitions, s.hold, s.wait)).collect();
    v.sort_unstable();
    res.locks = v;
    Ok(res)
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
        let ex: Vec<Vec<Request>> = (0..4).map(|_| vec![Request { lock: 7, shared: false, hold: 10 }]).collect();
        let r = simulate(&cfg(4), &ex).unwrap();
        assert_eq!(r.makespan, 40);
        assert_eq!(r.wait_time, 10 + 20 + 30);
        let sh: Vec<Vec<Request>> = (0..4).map(|_| vec![Request { lock: 7, shared: true, hold: 10 }]).collect();
        let r = simulate(&cfg(4), &sh).unwrap();
        assert_eq!((r.makespan, r.wait_time), (10, 0));
        // distinct locks never wait
        let d: Vec<Vec<Request>> = (0..4).map(|i| vec![Request { lock: i, shared: false, hold: 10 }]).collect();
        assert_eq!(simulate(&cfg(4), &d).unwrap().wait_time, 0);
    }

    #[test]
    fn a_queued_writer_blocks_later_readers() {
        let reqs = vec![
            vec![Request { lock: 1, shared: true, hold: 10 }],
            vec![Request { lock: 1, shared: false, hold: 5 }],
            vec![Request { lock: 1, shared: true, hold: 10 }],
        ];
        // t=0: reader 0 holds; writer 1 queues; reader 2 must queue behind the writer.
        let r = simulate(&cfg(3), &reqs).unwrap();
        assert_eq!(r.makespan, 25);
        assert_eq!(r.wait_time, 10 + 15);
    }
}

use crate::error::SimError;
use crate::policy::LockKind;
use crate::rmap::LOCK_SHARED;
use crate::sim::Simulator;

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
    /// `cpus` simulated CPUs, walk i on CPU i mod cpus, under this era's locks.
    pub fn contention(&self, pages: Option<&[u64]>, m: &ReclaimModel) -> Result<ContentionResult> {
        if !(1..=crate::sim::NR_CPUS).contains(&m.cpus) {
            return Err(SimError::InvalidArgument(format!(
                "cpus must be from 1 to {} (NR_CPUS), got {}",
                crate::sim::NR_CPUS,
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
            let r = Request { lock: stats.lock_id[i], shared: stats.lock_mode[i] == LOCK_SHARED, hold };
            add(hold)?;
            reqs[i % cpus].push(r);
            if m.writer_every > 0 && (i as u64 + 1).is_multiple_of(m.writer_every) {
                add(m.writer_hold)?;
                reqs[i % cpus].push(Request { lock: r.lock, shared: false, hold: m.writer_hold });
            }
        }
        serial.checked_mul(n).ok_or_else(overflow)?;
        let cfg = ContentionConfig {
            cpus: m.cpus,
            handoff: m.handoff,
            outside: m.outside,
            spinning: self.policy.lock_kind == LockKind::Spin,
        };
        simulate(&cfg, &reqs)
    }
}
