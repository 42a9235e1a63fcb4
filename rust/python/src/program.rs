//! Programs (`rmapsim.testing.programs`): `run_program` decodes and runs program words,
//! `shrink_trace` delta-debugs op rows that break an invariant.

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use rmapsim_core::harness::trace::Op;

use crate::args::{self, dflt, flag, opt_dict, ranged, real, u64_arg};
use crate::batch::{decode_rows, OpRows};
use crate::call::{catch, detached, IntoPy};
use crate::policy::policy_of;

/// The native fuzzer's delta-debugging shrink of op rows that break an invariant in `era`:
/// `(message, shrunk rows)`, or None when the rows break nothing.
#[pyfunction]
#[pyo3(signature = (era, rows, policy = None), text_signature = "(era, rows, policy=None)")]
pub fn shrink_trace(
    py: Python<'_>,
    era: &Bound<'_, PyAny>,
    rows: &Bound<'_, PyAny>,
    policy: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<(String, OpRows)>> {
    let era = args::text(era, "era")?;
    let rows = args::rows(rows, "rows")?;
    let p = policy_of(py, &era, opt_dict(policy, "policy")?)?;
    let ops = decode_rows(&rows).py(py)?;
    let r = detached(py, || catch(|| Ok(rmapsim_core::harness::program::shrink(&p, &ops))))?;
    Ok(r.map(|(m, small)| (m, small.iter().map(Op::encode).collect())))
}

/// Decode and run program words in one call (`rmapsim_core::harness::program::run`): one operation
/// per word, drawn as the native fuzzer draws it for the processes alive at that point of a
/// run in `era` (a spec) with knob overrides `policy`; structural checks after every
/// operation, the full `check()` every `full_check_every` operations and after the last
/// (0: no checks, just decode). `words`: a list of ints, or bytes holding little-endian
/// 64-bit words. Returns `(the op rows run, flat: 7 numbers a row, violation or None)`.
#[pyfunction]
#[pyo3(signature = (era, words, seed = dflt(0), fail_rate = dflt(0.0), extended = dflt(false), policy = None, full_check_every = dflt(16)), text_signature = "(era, words, seed=0, fail_rate=0.0, extended=False, policy=None, full_check_every=16)")]
#[allow(clippy::too_many_arguments)]
pub fn run_program<'py>(
    py: Python<'py>,
    era: &Bound<'_, PyAny>,
    words: &Bound<'_, PyAny>,
    seed: Py<PyAny>,
    fail_rate: Py<PyAny>,
    extended: Py<PyAny>,
    policy: Option<&Bound<'_, PyAny>>,
    full_check_every: Py<PyAny>,
) -> PyResult<(Bound<'py, PyArray1<u64>>, Option<String>)> {
    let era = args::text(era, "era")?;
    let words = match words.cast::<PyBytes>() {
        Ok(b) if b.as_bytes().len() % 8 == 0 => {
            b.as_bytes().chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
        }
        Ok(_) => {
            return Err(args::invalid(words, "words", "bytes of whole little-endian 64-bit words, or a list of ints"))
        }
        Err(_) => args::words(words, "words")?,
    };
    let seed = u64_arg(seed.bind(py), "seed")?;
    let fail_rate = real(fail_rate.bind(py), "fail_rate", 0.0, 1.0)?;
    let extended = flag(extended.bind(py), "extended")?;
    let every: u64 = ranged(full_check_every.bind(py), "full_check_every", 0, u64::MAX as i128)?;
    let p = policy_of(py, &era, opt_dict(policy, "policy")?)?;
    let checks = (every > 0).then_some(every);
    let r =
        detached(py, || catch(|| rmapsim_core::harness::program::run(&p, seed, &words, fail_rate, extended, checks)))?;
    let flat: Vec<u64> = r.ops.iter().flat_map(Op::encode).collect();
    Ok((flat.into_pyarray(py), r.violation))
}
