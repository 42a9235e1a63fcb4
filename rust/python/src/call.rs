//! Calling into the core: error mapping, panics caught, long calls with the GIL released
//! and Ctrl-C honoured, their progress reported to the progress hook (`progress.rs`).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use rmapsim_core::SimError;

use crate::args::to_py;

pub trait IntoPy<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}
impl<T> IntoPy<T> for Result<T, SimError> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// Run a core call, turning a panic (a bug in rmapsim) into `InvariantViolation` so no
/// Rust panic reaches Python.
pub fn catch<T>(f: impl FnOnce() -> Result<T, SimError>) -> Result<T, SimError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(SimError::InvariantViolation(format!(
            "internal error in rmapsim (please report it): {what}; the simulator state may be inconsistent"
        )))
    })
}

/// Run a long core call with the GIL released and Ctrl-C honoured: the core checks an
/// interrupt at chunk boundaries, and its poll re-takes the GIL on this thread at most every
/// `interrupt::POLL_INTERVAL` to run `check_signals`. A signal handler's exception
/// (`KeyboardInterrupt` for Ctrl-C) is raised once the core has stopped at a safe boundary.
pub fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, SimError> + Send) -> PyResult<T> {
    match run_interruptible(py, f) {
        (Err(SimError::Interrupted), pending) => Err(pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(()))),
        (r, _) => r.py(py),
    }
}

/// [`detached`] when `long` (the call may run long: it faults a locked range in), else the
/// call as it is, GIL held (a short call in a Python loop pays for no interrupt poll).
pub fn detached_if<T: Send>(py: Python<'_>, long: bool, f: impl FnOnce() -> Result<T, SimError> + Send) -> PyResult<T> {
    if long {
        detached(py, f)
    } else {
        catch(f).py(py)
    }
}

/// [`detached`]'s run: the core call's result and the exception the poll caught, if any.
/// The call is named to the progress hook as the long call registered (`busy.rs`).
pub fn run_interruptible<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, SimError> + Send,
) -> (Result<T, SimError>, Option<PyErr>) {
    run_interruptible_as(py, crate::busy::current_call(), f)
}

/// [`run_interruptible`] naming the call `call` to the progress hook. The poll, which
/// re-takes the GIL for `check_signals`, also passes the call's progress (once its loop
/// has declared it) to the hook; an exception from either stops the call at its next
/// chunk boundary and is returned as the one caught.
pub fn run_interruptible_as<T: Send>(
    py: Python<'_>,
    call: &'static str,
    f: impl FnOnce() -> Result<T, SimError> + Send,
) -> (Result<T, SimError>, Option<PyErr>) {
    use rmapsim_core::state::interrupt;
    let pending: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let slot = pending.clone();
    let hook = crate::progress::hook(py).map(Arc::new);
    let reported = Arc::new(AtomicBool::new(false));
    let (hook_in, reported_in) = (hook.clone(), reported.clone());
    let poll = move || {
        Python::attach(|py| {
            let r = py.check_signals().and_then(|()| match (&hook_in, interrupt::progress()) {
                (Some(h), Some((done, total))) => {
                    reported_in.store(true, Relaxed);
                    h.call1(py, (call, done, total, false)).map(drop)
                }
                _ => Ok(()),
            });
            match r {
                Ok(()) => false,
                Err(e) => {
                    if let Ok(mut g) = slot.lock() {
                        *g = Some(e);
                    }
                    true
                }
            }
        })
    };
    let (r, last) = py.detach(|| interrupt::run(poll, || (catch(f), interrupt::progress())));
    let caught = pending.lock().ok().and_then(|mut g| g.take());
    if let (Some(h), Some((done, total)), true) = (&hook, last, reported.load(Relaxed)) {
        // The call is over: an exception now cannot stop it. It is reported as unraisable,
        // unless the call already stopped on one (a hook that raised raises again).
        if let (Err(e), None) = (h.call1(py, (call, done, total, true)), &caught) {
            e.write_unraisable(py, Some(h.bind(py)));
        }
    }
    (r, caught)
}
