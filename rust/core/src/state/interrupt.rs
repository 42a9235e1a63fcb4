//! Interrupting long calls (Ctrl-C from a binding). The core knows nothing of signals: a
//! caller installs a poll with [`run`], and long loops call [`check`] (or a [`Ticker`]) at
//! chunk boundaries, never per candidate. The installing thread calls the poll at most every
//! [`POLL_INTERVAL`]; once it answers true the call's flag is set and every thread working
//! for the call (see [`join_polling`], [`Token`]) stops with [`SimError::Interrupted`].
//! Without [`run`] (plain Rust use) every check is a thread-local read.
//!
//! Progress rides the same poll: the outermost long loop of a call declares its amount of
//! work with [`expect`] and counts it at chunk boundaries through the [`Meter`] it gets
//! (or a [`Ticker`] holding it); the poll reads it with [`progress`], so a binding can
//! report it when it re-takes the GIL for the signal check, at no other cost.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Result, SimError};

/// How often the installing thread calls the poll (at most).
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

type Poll = Box<dyn Fn() -> bool + Send + Sync>;

struct Shared {
    stop: AtomicBool,
    poll: Poll,
    owner: ThreadId,
    start: Instant,
    /// Nanoseconds after `start` of the next poll.
    next: AtomicU64,
    /// Has a loop declared the call's work ([`expect`])? Only the first does.
    declared: AtomicBool,
    /// The work declared and the work counted so far (items: pages, operations, children).
    total: AtomicU64,
    done: AtomicU64,
}

impl Shared {
    fn poll_due(&self) -> bool {
        let now = self.start.elapsed().as_nanos() as u64;
        if now < self.next.load(Relaxed) {
            return false;
        }
        self.next.store(now + POLL_INTERVAL.as_nanos() as u64, Relaxed);
        if (self.poll)() {
            self.stop.store(true, Relaxed);
        }
        self.stop.load(Relaxed)
    }
}

/// A thread's view of the current call's interrupt state (cheap to clone; `Sync`, so
/// rayon workers can share one).
#[derive(Clone, Default)]
pub struct Token(Option<Arc<Shared>>);

impl Token {
    /// `Err(Interrupted)` once the call is interrupted. On the installing thread this also
    /// calls the poll when [`POLL_INTERVAL`] has passed since the last one.
    #[inline]
    pub fn check(&self) -> Result<()> {
        let Some(s) = &self.0 else { return Ok(()) };
        if s.stop.load(Relaxed) || (std::thread::current().id() == s.owner && s.poll_due()) {
            return Err(SimError::Interrupted);
        }
        Ok(())
    }

    /// Has the call been interrupted (no polling)?
    #[inline]
    pub fn stopped(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.stop.load(Relaxed))
    }

    /// Run `f` with this token as the current thread's (for work handed to another thread).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let prev = CURRENT.with(|c| c.replace(self.clone()));
        let out = f();
        CURRENT.with(|c| *c.borrow_mut() = prev);
        out
    }
}

thread_local! {
    static CURRENT: RefCell<Token> = const { RefCell::new(Token(None)) };
}

/// The current thread's token.
pub fn token() -> Token {
    CURRENT.with(|c| c.borrow().clone())
}

/// [`Token::check`] of the current thread's token.
#[inline]
pub fn check() -> Result<()> {
    CURRENT.with(|c| c.borrow().check())
}

/// Has the current call been interrupted (no polling)?
pub fn stopped() -> bool {
    CURRENT.with(|c| c.borrow().stopped())
}

/// Run `f` on this thread with `poll` as its interrupt poll (called from this thread only,
/// at most every [`POLL_INTERVAL`]).
pub fn run<T>(poll: impl Fn() -> bool + Send + Sync + 'static, f: impl FnOnce() -> T) -> T {
    let s = Shared {
        stop: AtomicBool::new(false),
        poll: Box::new(poll),
        owner: std::thread::current().id(),
        start: Instant::now(),
        next: AtomicU64::new(POLL_INTERVAL.as_nanos() as u64),
        declared: AtomicBool::new(false),
        total: AtomicU64::new(0),
        done: AtomicU64::new(0),
    };
    Token(Some(Arc::new(s))).enter(f)
}

/// Run `f`, which blocks this thread (a rayon `install` or parallel iterator), so that
/// the call stays interruptible: with a poll installed, `f` runs on a helper thread
/// (sharing the token) while this thread polls and sets the flag the workers check.
pub fn join_polling<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let tok = token();
    let Some(s) = tok.0.clone().filter(|s| s.owner == std::thread::current().id()) else { return f() };
    let me = std::thread::current();
    std::thread::scope(|scope| {
        let h = scope.spawn(|| {
            let out = tok.enter(f);
            me.unpark();
            out
        });
        while !h.is_finished() {
            std::thread::park_timeout(POLL_INTERVAL);
            if !s.stop.load(Relaxed) {
                s.poll_due();
            }
        }
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// The progress of a call as (items done, items declared), once a loop declared its
/// work with [`expect`]; `None` without a poll or before any declaration.
pub fn progress() -> Option<(u64, u64)> {
    CURRENT.with(|c| {
        let t = c.borrow();
        let s = t.0.as_ref().filter(|s| s.declared.load(Relaxed))?;
        Some((s.done.load(Relaxed), s.total.load(Relaxed)))
    })
}

/// Declare that the current call has `total` items of work (0: unknown), counted through
/// the [`Meter`] returned. Only the first declaration of a call counts: a loop nested in
/// another's (a fork inside a replayed trace) gets `None` and reports nothing, so the
/// items stay those of the outermost loop. `None` too without a poll ([`run`]).
pub fn expect(total: u64) -> Option<Meter> {
    CURRENT.with(|c| {
        let t = c.borrow();
        let s = t.0.as_ref()?;
        if s.declared.swap(true, Relaxed) {
            return None;
        }
        s.total.store(total, Relaxed);
        Some(Meter(s.clone()))
    })
}

/// Counts the declared work of a call ([`expect`]); clone it for the threads working for
/// the call. A relaxed add per report: report at chunk boundaries (or through a
/// [`Ticker`], which adds at its checks).
#[derive(Clone)]
pub struct Meter(Arc<Shared>);

impl Meter {
    /// `items` more of the declared work done.
    #[inline]
    pub fn advance(&self, items: u64) {
        self.0.done.fetch_add(items, Relaxed);
    }
}

/// Counts work between checks: [`Ticker::tick`] checks every `EVERY` units (pages, ops).
/// With a [`Meter`] ([`Ticker::metered`]), the items given to [`Ticker::advance`] are
/// added to it at each check and when the ticker is dropped.
pub struct Ticker {
    tok: Token,
    n: u64,
    meter: Option<Meter>,
    items: u64,
}

impl Default for Ticker {
    fn default() -> Self {
        Ticker::new()
    }
}

impl Ticker {
    const EVERY: u64 = 1024;

    pub fn new() -> Ticker {
        Ticker { tok: token(), n: 0, meter: None, items: 0 }
    }

    /// A ticker that reports progress to `meter` (none: a plain [`Ticker::new`]).
    pub fn metered(meter: Option<Meter>) -> Ticker {
        Ticker { tok: token(), n: 0, meter, items: 0 }
    }

    /// `items` of the declared work done (reported at the next check); nothing without a
    /// meter.
    #[inline]
    pub fn advance(&mut self, items: u64) {
        if self.meter.is_some() {
            self.items += items;
        }
    }

    fn report(&mut self) {
        if let Some(m) = &self.meter {
            m.advance(std::mem::take(&mut self.items));
        }
    }

    /// One unit of work; checks every `EVERY` units.
    #[inline]
    pub fn tick(&mut self) -> Result<()> {
        self.tick_by(1)
    }

    /// `units` units of work (say, the pages of a run times its candidates / 16).
    #[inline]
    pub fn tick_by(&mut self, units: u64) -> Result<()> {
        self.n += units;
        if self.n >= Self::EVERY {
            self.n = 0;
            self.report();
            return self.tok.check();
        }
        Ok(())
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    #[test]
    fn without_a_poll_nothing_stops() {
        assert!(check().is_ok());
        let mut t = Ticker::new();
        assert!((0..10_000).all(|_| t.tick().is_ok()));
    }

    #[test]
    fn a_poll_that_says_stop_stops_the_loop_within_an_interval() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let t0 = Instant::now();
        let r = run(
            move || c.fetch_add(1, Relaxed) >= 2,
            || -> Result<()> {
                loop {
                    check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
            },
        );
        assert_eq!(r, Err(SimError::Interrupted));
        assert_eq!(calls.load(Relaxed), 3);
        assert!(t0.elapsed() >= 2 * POLL_INTERVAL);
        assert!(check().is_ok(), "the token is gone after run");
    }

    #[test]
    fn the_first_declaration_is_the_calls_progress() {
        assert!(expect(10).is_none() && progress().is_none(), "no poll, no progress");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        run(
            move || {
                s.lock().unwrap().push(progress());
                false
            },
            || {
                assert_eq!(progress(), None, "nothing declared yet");
                let m = expect(3000).expect("the first declaration");
                assert!(expect(7).is_none(), "a nested loop's declaration is refused");
                let mut t = Ticker::metered(Some(m.clone()));
                for _ in 0..2500 {
                    t.tick().unwrap();
                    t.advance(1);
                }
                // checks at ticks 1024 and 2048 reported the items advanced before them
                // (each iteration ticks, then advances): 2047; the rest waits for a check
                assert_eq!(progress(), Some((2047, 3000)));
                drop(t);
                assert_eq!(progress(), Some((2500, 3000)), "dropping the ticker reports the rest");
                m.advance(500);
                assert_eq!(progress(), Some((3000, 3000)));
                std::thread::sleep(POLL_INTERVAL * 2);
                check().unwrap();
            },
        );
        assert_eq!(seen.lock().unwrap().last(), Some(&Some((3000, 3000))), "the poll reads the progress");
        assert_eq!(progress(), None, "gone after run");
    }

    #[test]
    fn workers_of_join_polling_see_the_flag() {
        let r = run(
            || true,
            || {
                join_polling(|| {
                    let tok = token();
                    std::thread::scope(|s| {
                        s.spawn(|| loop {
                            if tok.stopped() {
                                return;
                            }
                            std::thread::yield_now();
                        });
                    });
                    check()
                })
            },
        );
        assert_eq!(r, Err(SimError::Interrupted));
    }
}
