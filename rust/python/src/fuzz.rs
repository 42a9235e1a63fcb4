//! The native fuzzer (`_core.fuzz`, `rmapsim fuzz`).

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rmapsim_core::harness::fuzz::FuzzConfig;
use rmapsim_core::harness::trace;
use rmapsim_core::SimError;

use crate::args::{self, dflt, flag, opt_dict, real, to_py, u64_arg};
use crate::call::{run_interruptible, IntoPy};
use crate::policy::policy_of;

/// Run the native fuzzer; returns a dict (ops, runs, seconds, violation, trace, unshrunk_len,
/// jobs). `jobs` workers run in parallel, deterministic per (seed, jobs, max_ops);
/// `incremental=False` runs the structural checks from scratch after every operation.
/// Ctrl-C stops it within a poll interval; the `KeyboardInterrupt` raised then carries that
/// dict as its `fuzz_report` attribute (what was found so far; a violation's trace as far
/// as shrinking got).
#[pyfunction]
#[pyo3(signature = (era, seed = dflt(0), max_ops = dflt(0), seconds = dflt(0.0), fail_rate = dflt(0.0), run_len = dflt(400), full_check_every = dflt(16), policy = None, extended = dflt(false), jobs = dflt(1), incremental = dflt(true)), text_signature = "(era, seed=0, max_ops=0, seconds=0.0, fail_rate=0.0, run_len=400, full_check_every=16, policy=None, extended=False, jobs=1, incremental=True)")]
#[allow(clippy::too_many_arguments)]
pub fn fuzz<'py>(
    py: Python<'py>,
    era: &Bound<'_, PyAny>,
    seed: Py<PyAny>,
    max_ops: Py<PyAny>,
    seconds: Py<PyAny>,
    fail_rate: Py<PyAny>,
    run_len: Py<PyAny>,
    full_check_every: Py<PyAny>,
    policy: Option<&Bound<'_, PyAny>>,
    extended: Py<PyAny>,
    jobs: Py<PyAny>,
    incremental: Py<PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let era = args::text(era, "era")?;
    let seed = u64_arg(seed.bind(py), "seed")?;
    let max_ops = u64_arg(max_ops.bind(py), "max_ops")?;
    let seconds = real(seconds.bind(py), "seconds", 0.0, f64::MAX)?;
    let fail_rate = real(fail_rate.bind(py), "fail_rate", 0.0, 1.0)?;
    let run_len = u64_arg(run_len.bind(py), "run_len")?;
    let full_check_every = u64_arg(full_check_every.bind(py), "full_check_every")?;
    let extended = flag(extended.bind(py), "extended")?;
    let jobs = u64_arg(jobs.bind(py), "jobs")?;
    let incremental = flag(incremental.bind(py), "incremental")?;
    let max_jobs = rmapsim_core::harness::fuzz::MAX_JOBS;
    if !(1..=max_jobs as u64).contains(&jobs) {
        return Err(to_py(py, SimError::InvalidArgument(format!("jobs must be from 1 to {max_jobs}, got {jobs}"))));
    }
    let p = policy_of(py, &era, opt_dict(policy, "policy")?)?;
    if max_ops == 0 && seconds <= 0.0 {
        return Err(to_py(py, SimError::InvalidArgument("give max_ops > 0 or seconds > 0".into())));
    }
    let cfg = FuzzConfig {
        policy: p,
        seed,
        max_ops,
        seconds,
        fail_rate,
        run_len: run_len.max(1),
        full_check_every,
        extended,
        jobs: jobs as u32,
        incremental,
    };
    let name = cfg.policy.name.clone();
    let (r, pending) = run_interruptible(py, || rmapsim_core::harness::fuzz::fuzz(&cfg));
    let interrupted = || pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(()));
    let r = match r {
        Err(SimError::Interrupted) => return Err(interrupted()),
        r => r.py(py)?,
    };
    let d = PyDict::new(py);
    d.set_item("ops", r.ops)?;
    d.set_item("runs", r.runs)?;
    d.set_item("seconds", r.seconds)?;
    d.set_item("unshrunk_len", r.unshrunk_len)?;
    d.set_item("jobs", jobs)?;
    match r.violation {
        Some((m, ops)) => {
            d.set_item("violation", m)?;
            d.set_item("trace", trace::format(&ops, Some(&name)))?;
        }
        None => {
            d.set_item("violation", py.None())?;
            d.set_item("trace", py.None())?;
        }
    }
    if r.interrupted {
        let e = interrupted();
        e.value(py).setattr("fuzz_report", d)?;
        return Err(e);
    }
    Ok(d)
}
