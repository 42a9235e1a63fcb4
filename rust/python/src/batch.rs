//! Batches of operations (`Simulator._apply`, `_apply_events`, `_apply_from`): op rows in,
//! per-operation outcome columns and the event log's columns out.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rmapsim_core::harness::trace::{self, Op, Outcome};
use rmapsim_core::{SimError, Simulator as Core};

use crate::call::{catch, detached, IntoPy};
use crate::dicts::event_columns;

/// The outcome columns: status, value, message of each operation.
pub type Outcomes = (Vec<u8>, Vec<u64>, Vec<String>);

/// A batch's outcomes and more, or `Interrupted` when Ctrl-C stopped it (the last outcome
/// says so).
fn stopped<T>(r: (Vec<Outcome>, T)) -> Result<(Vec<Outcome>, T), SimError> {
    match r.0.last() {
        Some(Outcome::Err(SimError::Interrupted)) => Err(SimError::Interrupted),
        _ => Ok(r),
    }
}

/// Run a replay, a panic (a bug in rmapsim) becoming `InvariantViolation`.
fn guarded<T>(f: impl FnOnce() -> Result<T, SimError>) -> Result<T, SimError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(SimError::InvariantViolation("internal error in rmapsim during apply (please report it)".into()))
    })
}

/// `_apply`: the rows applied (`trace::apply_sampled`), their outcomes and the samples.
pub fn apply(
    py: Python<'_>,
    sim: &mut Core,
    rows: &[[u64; 7]],
    check_each: bool,
    every: usize,
) -> PyResult<(Outcomes, Vec<trace::Sample>)> {
    let ops = decode_rows(rows).py(py)?;
    let (out, samples) = detached(py, || guarded(|| stopped(trace::apply_sampled(sim, &ops, check_each, every))))?;
    Ok((outcome_columns(out), samples))
}

/// `_apply_events`: the outcomes and the event log's columns.
pub fn apply_events<'py>(
    py: Python<'py>,
    sim: &mut Core,
    rows: &[[u64; 7]],
    check_each: bool,
) -> PyResult<EventColumns<'py>> {
    let ops = decode_rows(rows).py(py)?;
    let (out, events) =
        detached(py, || catch(|| stopped(rmapsim_core::harness::events::apply_events(sim, &ops, check_each)?)))?;
    let (st, val, msg) = outcome_columns(out);
    Ok((st, val, msg, event_columns(py, &events)?))
}

/// `_apply_from`: the rows applied after a replay whose process symbols had `pids`; the
/// outcomes and the symbols' pids after.
pub fn apply_from(py: Python<'_>, sim: &mut Core, rows: &[[u64; 7]], pids: Vec<u32>) -> PyResult<(Outcomes, Vec<u32>)> {
    let ops = decode_rows(rows).py(py)?;
    let (out, pids) = detached(py, || {
        guarded(|| {
            let mut runner = trace::Runner { pids, ..Default::default() };
            let out = trace::apply_with(sim, &mut runner, &ops, false);
            stopped((out, runner.pids))
        })
    })?;
    Ok((outcome_columns(out), pids))
}

/// `_apply`'s columns of outcomes: status (0 = ok, else the index + 1 of the error kind in
/// `ERROR_KINDS`), value (0 for an error) and message ("" for a success).
pub fn outcome_columns(out: Vec<Outcome>) -> Outcomes {
    let (mut st, mut val, mut msg) = (Vec::new(), Vec::new(), Vec::new());
    for o in out {
        match o {
            Outcome::Ok(v) => {
                st.push(0);
                val.push(v);
                msg.push(String::new());
            }
            Outcome::Err(e) => {
                st.push(ERROR_KINDS.iter().position(|k| *k == e.kind()).map_or(255, |i| i as u8 + 1));
                val.push(0);
                msg.push(e.to_string());
            }
        }
    }
    (st, val, msg)
}

/// Error kinds as `_apply` numbers them (status = index + 1).
pub const ERROR_KINDS: [&str; 8] = [
    "NoSuchProcess",
    "BadAddress",
    "InvalidArgument",
    "StaleHandle",
    "OutOfMemory",
    "InvariantViolation",
    "TryAgain",
    "AlreadyMapped",
];

pub type OpRows = Vec<[u64; 7]>;
/// What `_apply_events` returns: the per-operation status codes, values and messages, and
/// the event log's columns.
pub type EventColumns<'py> = (Vec<u8>, Vec<u64>, Vec<String>, Bound<'py, PyDict>);

pub fn decode_rows(rows: &[[u64; 7]]) -> Result<Vec<Op>, SimError> {
    rows.iter().enumerate().map(|(i, r)| Op::decode(*r, i)).collect()
}
