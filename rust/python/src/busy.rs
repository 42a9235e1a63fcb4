//! `Busy`: the long calls (which release the GIL) register the simulator they borrow, so a
//! call from another thread meanwhile is refused naming the call in progress.

use std::cell::Cell;
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::simulator::PySimulator;

/// The long calls in progress (they release the GIL), by simulator object address. Each
/// registers before releasing the GIL and unregisters after re-taking it, so a thread
/// holding the GIL sees every call that holds a borrow of a simulator.
static RUNNING: Mutex<Vec<(usize, &'static str)>> = Mutex::new(Vec::new());

thread_local! {
    /// The long call this thread is making (the progress hook is told its name).
    static CURRENT: Cell<&'static str> = const { Cell::new("") };
}

/// The long call this thread registered last and is still making ("" if none).
pub fn current_call() -> &'static str {
    CURRENT.with(Cell::get)
}

/// A registration in [`RUNNING`], removed on drop (with the thread's previous
/// [`current_call`] restored).
pub struct Running(usize, &'static str, &'static str);

impl Running {
    fn new(slf: &Bound<'_, PySimulator>, call: &'static str) -> Running {
        let key = slf.as_ptr() as usize;
        if let Ok(mut r) = RUNNING.lock() {
            r.push((key, call));
        }
        Running(key, call, CURRENT.with(|c| c.replace(call)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.2));
        if let Ok(mut r) = RUNNING.lock() {
            if let Some(i) = r.iter().position(|&(k, c)| k == self.0 && c == self.1) {
                r.swap_remove(i);
            }
        }
    }
}

pub fn running_call(obj: &Bound<'_, PyAny>) -> Option<&'static str> {
    let key = obj.as_ptr() as usize;
    RUNNING.lock().ok()?.iter().find(|&&(k, _)| k == key).map(|&(_, c)| c)
}

/// `rmapsim.Busy`: `call` found the simulator borrowed by a long call in another thread.
fn busy(slf: &Bound<'_, PySimulator>, call: &str) -> PyErr {
    let running = running_call(slf.as_any()).unwrap_or("another call");
    let msg = format!("Simulator is busy: {running} is running in another thread ({call} was called)");
    match slf
        .py()
        .import("rmapsim.errors")
        .and_then(|m| m.getattr("Busy"))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
    {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

/// Borrow the simulator for a long read-only call `call` (other read-only calls may share
/// it; a mutating call meanwhile raises `Busy`).
pub fn borrow<'py>(slf: &Bound<'py, PySimulator>, call: &'static str) -> PyResult<(PyRef<'py, PySimulator>, Running)> {
    let r = slf.try_borrow().map_err(|_| busy(slf, call))?;
    Ok((r, Running::new(slf, call)))
}

/// Borrow the simulator for a long mutating call `call` (any other call meanwhile raises
/// `Busy`).
pub fn borrow_mut<'py>(
    slf: &Bound<'py, PySimulator>,
    call: &'static str,
) -> PyResult<(PyRefMut<'py, PySimulator>, Running)> {
    let r = slf.try_borrow_mut().map_err(|_| busy(slf, call))?;
    Ok((r, Running::new(slf, call)))
}

/// The long call a simulator is running (in another thread), or None.
#[pyfunction]
pub fn _running(sim: &Bound<'_, PyAny>) -> Option<&'static str> {
    running_call(sim)
}
