//! The progress hook (`_core._set_progress_hook`): long calls report their progress to it
//! from the same poll that checks for Ctrl-C (see `call::run_interruptible`), so a call
//! pays for nothing more than that poll. `rmapsim._progress` installs the hook.

use std::sync::Mutex;

use pyo3::prelude::*;

use rmapsim_core::SimError;

use crate::args::to_py;

/// The hook, called as `hook(call, done, total, finished)` with the GIL held: `call` names
/// the long call, `done` and `total` count its items (pages, operations, children; `total`
/// 0 when unknown). It is called at the poll's chunk boundaries once the call has run for
/// a poll interval (20 ms) and has declared its work, then once more with
/// `finished=True` when the call ends, if it was called before.
static HOOK: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// The hook installed, if any (a new reference).
pub fn hook(py: Python<'_>) -> Option<Py<PyAny>> {
    HOOK.lock().ok()?.as_ref().map(|h| h.clone_ref(py))
}

/// Install `hook` (a callable, or None to remove it); returns the previous one. An
/// exception the hook raises stops the call at its next safe boundary, as Ctrl-C does, and
/// is raised from the call (one raised with `finished=True` is reported as unraisable: the
/// call had already completed).
#[pyfunction]
#[pyo3(signature = (hook), text_signature = "(hook)")]
pub fn _set_progress_hook(py: Python<'_>, hook: Option<Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    if let Some(h) = &hook {
        if !h.is_callable() {
            let msg = format!("hook must be a callable or None, got {}", h.get_type().name()?);
            return Err(to_py(py, SimError::InvalidArgument(msg)));
        }
    }
    let mut slot = HOOK.lock().map_err(|_| to_py(py, SimError::InvariantViolation("progress hook lock".into())))?;
    Ok(std::mem::replace(&mut *slot, hook.map(Bound::unbind)))
}
