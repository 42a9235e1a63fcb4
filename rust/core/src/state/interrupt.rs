//! Interrupting long calls (Ctrl-C from a binding). The core knows nothing of signals: a
//! caller installs a poll with [`run`], and long loops call [`check`] (or a [`Ticker`]) at
//! chunk boundaries, never per candidate. The installing thread calls the poll at most every
//! [`POLL_INTERVAL`]; once it answers true the call's flag is set and every thread working
//! for the call (see [`join_polling`], [`Token`]) stops with [`SimError::Interrupted`].
//! Without [`run`] (plain Rust use) every check is a thread-local read.

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

/// Counts work between checks: [`Ticker::tick`] checks every `EVERY` units (pages, ops).
pub struct Ticker {
    tok: Token,
    n: u64,
}

impl Default for Ticker {
    fn default() -> Self {
        Ticker::new()
    }
}

impl Ticker {
    const EVERY: u64 = 1024;

    pub fn new() -> Ticker {
        Ticker { tok: token(), n: 0 }
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
            return self.tok.check();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
