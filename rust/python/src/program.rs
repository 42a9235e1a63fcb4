//! Programs (`rmapsim.testing.programs`): `run_program` decodes and runs program words,
//! `shrink_trace` delta-debugs op rows that break an invariant.

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use rmapsim_core::harness::program;
use rmapsim_core::harness::trace::Op;

use crate::batch::{decode_rows, OpRows};
use crate::call::{catch, detached, IntoPy};
use crate::params::{args, Dict, Flag, Fraction, In, Rows, Text, Words, U64};
use crate::policy::policy_of;

/// The native fuzzer's delta-debugging shrink of op rows that break an invariant in `era`:
/// `(message, shrunk rows)`, or None when the rows break nothing.
#[pyfunction]
#[pyo3(signature = (era, rows, policy = None), text_signature = "(era, rows, policy=None)")]
pub fn shrink_trace(
    py: Python<'_>,
    era: In<Text>,
    rows: In<Rows>,
    policy: Option<In<Dict>>,
) -> PyResult<Option<(String, OpRows)>> {
    args!(era, rows, policy);
    let p = policy_of(py, &era, policy.as_ref())?;
    let ops = decode_rows(&rows).py(py)?;
    let r = detached(py, || catch(|| Ok(program::shrink(&p, &ops))))?;
    Ok(r.map(|(m, small)| (m, small.iter().map(Op::encode).collect())))
}

/// Decode and run program words in one call (`rmapsim_core::harness::program::run`): one operation
/// per word, drawn as the native fuzzer draws it for the processes alive at that point of a
/// run in `era` (a spec) with knob overrides `policy`; structural checks after every
/// operation, the full `check()` every `full_check_every` operations and after the last
/// (0: no checks, just decode). `words`: a list of ints, or bytes holding little-endian
/// 64-bit words. Returns `(the op rows run, flat: 7 numbers a row, violation or None)`.
#[pyfunction]
#[pyo3(signature = (era, words, seed = In::value(0), fail_rate = In::value(0.0), extended = In::value(false), policy = None, full_check_every = In::value(16)), text_signature = "(era, words, seed=0, fail_rate=0.0, extended=False, policy=None, full_check_every=16)")]
#[allow(clippy::too_many_arguments)]
pub fn run_program<'py>(
    py: Python<'py>,
    era: In<Text>,
    words: In<Words>,
    seed: In<U64>,
    fail_rate: In<Fraction>,
    extended: In<Flag>,
    policy: Option<In<Dict>>,
    full_check_every: In<U64>,
) -> PyResult<(Bound<'py, PyArray1<u64>>, Option<String>)> {
    args!(era, words, seed, fail_rate, extended, full_check_every, policy);
    let p = policy_of(py, &era, policy.as_ref())?;
    let checks = (full_check_every > 0).then_some(full_check_every);
    let r = detached(py, || catch(|| program::run(&p, seed, &words, fail_rate, extended, checks)))?;
    let flat: Vec<u64> = r.ops.iter().flat_map(Op::encode).collect();
    Ok((flat.into_pyarray(py), r.violation))
}
