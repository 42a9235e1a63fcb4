//! Calling into the core: error mapping, panics caught, long calls with the GIL released
//! and Ctrl-C honoured.

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
pub fn run_interruptible<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, SimError> + Send,
) -> (Result<T, SimError>, Option<PyErr>) {
    let pending: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let slot = pending.clone();
    let poll = move || {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                if let Ok(mut g) = slot.lock() {
                    *g = Some(e);
                }
                true
            }
        })
    };
    let r = py.detach(|| rmapsim_core::state::interrupt::run(poll, || catch(f)));
    let caught = pending.lock().ok().and_then(|mut g| g.take());
    (r, caught)
}
