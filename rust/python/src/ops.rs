//! `_core.op_table()`: the operation registry (`rmapsim_core::harness::ops::OPS`) for
//! Python, so that the Python side reads operation names, row codes and argument columns
//! from the one declaration instead of repeating them.

use pyo3::prelude::*;
use rmapsim_core::harness::ops::{ArgKind, OPS};

/// One argument: `(name, kind, column, bit, words)`; `words` are a choice's two words
/// (the first is 1) or a flag's word, else empty.
type Arg = (&'static str, &'static str, usize, u32, Vec<&'static str>);

/// One operation: `(trace word, variant, row code, args, syntax, fuzzed)`.
type Entry = (&'static str, &'static str, u64, Vec<Arg>, String, bool);

/// Every operation, in row-code order; its args in trace order.
#[pyfunction]
pub fn op_table() -> Vec<Entry> {
    OPS.iter()
        .map(|s| {
            let args = s
                .args
                .iter()
                .map(|a| {
                    let words = match a.kind {
                        ArgKind::Choice(yes, no) => vec![yes, no],
                        ArgKind::Flag(w) => vec![w],
                        _ => vec![],
                    };
                    (a.name, a.kind.name(), a.col, a.bit, words)
                })
                .collect();
            (s.name, s.variant, s.code, args, s.syntax(), s.fuzzed)
        })
        .collect()
}
