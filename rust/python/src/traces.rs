//! Trace text: `parse_trace` and `format_trace` (`rmapsim.trace`).

use pyo3::prelude::*;

use rmapsim_core::harness::trace::{self, Op};

use crate::batch::{decode_rows, OpRows};
use crate::call::{catch, IntoPy};
use crate::params::{args, In, Rows, Text};

/// Parse a version-1 trace into op rows `[code, p, a, b, c, d, e]`.
#[pyfunction]
pub fn parse_trace(py: Python<'_>, text: In<Text>) -> PyResult<OpRows> {
    args!(text);
    let ops = catch(|| trace::parse(&text)).py(py)?;
    Ok(ops.iter().map(Op::encode).collect())
}

/// Render op rows as a version-1 trace.
#[pyfunction]
#[pyo3(signature = (rows, era = None))]
pub fn format_trace(py: Python<'_>, rows: In<Rows>, era: Option<In<Text>>) -> PyResult<String> {
    args!(rows as "ops", era);
    let ops = decode_rows(&rows).py(py)?;
    Ok(trace::format(&ops, era.as_deref()))
}
