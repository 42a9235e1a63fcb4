//! The native fuzzer (`_core.fuzz`, `rmapsim fuzz`).

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rmapsim_core::harness::fuzz::{FuzzConfig, MAX_JOBS};
use rmapsim_core::harness::trace;
use rmapsim_core::SimError;

use crate::args::to_py;
use crate::call::{run_interruptible_as, IntoPy};
use crate::dicts::dict;
use crate::params::{args, Dict, Flag, Fraction, In, Seconds, Text, U64};
use crate::policy::policy_of;

/// Run the native fuzzer; returns a dict (ops, runs, seconds, violation, trace, unshrunk_len,
/// jobs). `jobs` workers run in parallel, deterministic per (seed, jobs, max_ops);
/// `incremental=False` runs the structural checks from scratch after every operation.
/// Ctrl-C stops it within a poll interval; the `KeyboardInterrupt` raised then carries that
/// dict as its `fuzz_report` attribute (what was found so far; a violation's trace as far
/// as shrinking got).
#[pyfunction]
#[pyo3(signature = (era, seed = In::value(0), max_ops = In::value(0), seconds = In::value(0.0), fail_rate = In::value(0.0), run_len = In::value(400), full_check_every = In::value(16), policy = None, extended = In::value(false), jobs = In::value(1), incremental = In::value(true)), text_signature = "(era, seed=0, max_ops=0, seconds=0.0, fail_rate=0.0, run_len=400, full_check_every=16, policy=None, extended=False, jobs=1, incremental=True)")]
#[allow(clippy::too_many_arguments)]
pub fn fuzz<'py>(
    py: Python<'py>,
    era: In<Text>,
    seed: In<U64>,
    max_ops: In<U64>,
    seconds: In<Seconds>,
    fail_rate: In<Fraction>,
    run_len: In<U64>,
    full_check_every: In<U64>,
    policy: Option<In<Dict>>,
    extended: In<Flag>,
    jobs: In<U64>,
    incremental: In<Flag>,
) -> PyResult<Bound<'py, PyDict>> {
    args!(era, seed, max_ops, seconds, fail_rate, run_len, full_check_every, extended, jobs, incremental);
    if !(1..=MAX_JOBS as u64).contains(&jobs) {
        let msg = format!("jobs must be from 1 to {MAX_JOBS}, got {jobs}");
        return Err(to_py(py, SimError::InvalidArgument(msg)));
    }
    args!(policy);
    let policy = policy_of(py, &era, policy.as_ref())?;
    if max_ops == 0 && seconds <= 0.0 {
        return Err(to_py(py, SimError::InvalidArgument("give max_ops > 0 or seconds > 0".into())));
    }
    let run_len = run_len.max(1);
    let jobs = jobs as u32;
    let cfg = FuzzConfig {
        policy,
        seed,
        max_ops,
        seconds,
        fail_rate,
        run_len,
        full_check_every,
        extended,
        jobs,
        incremental,
    };
    let (r, pending) = run_interruptible_as(py, "fuzz", || rmapsim_core::harness::fuzz::fuzz(&cfg));
    let interrupted = || pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(()));
    let r = match r {
        Err(SimError::Interrupted) => return Err(interrupted()),
        r => r.py(py)?,
    };
    let (violation, trace) = match r.violation {
        Some((m, ops)) => (Some(m), Some(trace::format(&ops, Some(&cfg.policy.name)))),
        None => (None, None),
    };
    let d = dict!(py;
        "ops" => r.ops,
        "runs" => r.runs,
        "seconds" => r.seconds,
        "unshrunk_len" => r.unshrunk_len,
        "jobs" => jobs as u64,
        "violation" => violation,
        "trace" => trace,
    );
    if r.interrupted {
        let e = interrupted();
        e.value(py).setattr("fuzz_report", d)?;
        return Err(e);
    }
    Ok(d)
}
