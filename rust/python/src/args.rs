//! Argument converters. Every parameter of the public API arrives as a Python object and
//! goes through one of these (by its kind, see [`crate::params`]), so a bad value always raises an `rmapsim` exception that
//! names the parameter and the value as given (its repr cut to `QUOTE_MAX` characters),
//! never a bare `OverflowError` / `TypeError` from the extraction.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use rmapsim_core::error::QUOTE_MAX;
use rmapsim_core::SimError;

/// Raise the `rmapsim` exception class `kind` (defined in `rmapsim/errors.py`).
pub fn raise(py: Python<'_>, kind: &str, msg: String) -> PyErr {
    match py
        .import("rmapsim.errors")
        .and_then(|m| m.getattr(kind))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
    {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

/// Raise the `rmapsim` exception class matching `e`.
pub fn to_py(py: Python<'_>, e: SimError) -> PyErr {
    raise(py, e.kind(), e.to_string())
}

/// `repr(obj)`, cut to `QUOTE_MAX` characters with the full length noted.
pub fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let r = obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unprintable>".into());
    let n = r.chars().count();
    if n <= QUOTE_MAX {
        return r;
    }
    format!("{}... ({n} chars)", r.chars().take(QUOTE_MAX - 3).collect::<String>())
}

/// `InvalidArgument("<name> must be <want>, got <repr>")`.
pub fn invalid(obj: &Bound<'_, PyAny>, name: &str, want: &str) -> PyErr {
    raise(obj.py(), "InvalidArgument", format!("{name} must be {want}, got {}", short_repr(obj)))
}

/// An int (a Python int or an object with `__index__`, such as a numpy integer; not a
/// bool), saturated to the i128 range: every caller's range check refuses the extremes.
fn int(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<i128> {
    let bad = || invalid(obj, name, "an int");
    if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyString>() {
        return Err(bad());
    }
    let i = if obj.is_instance_of::<PyInt>() {
        obj.clone()
    } else {
        if obj.get_type().name().is_ok_and(|n| n.to_string_lossy() == "bool") {
            return Err(bad()); // numpy.bool_
        }
        obj.call_method0("__index__").map_err(|_| bad())?
    };
    if let Ok(v) = i.extract::<i128>() {
        return Ok(v);
    }
    Ok(if i.lt(0i32).unwrap_or(false) { i128::MIN } else { i128::MAX })
}

/// An int within `lo..=hi`.
pub fn ranged<T: TryFrom<i128>>(obj: &Bound<'_, PyAny>, name: &str, lo: i128, hi: i128) -> PyResult<T> {
    let v = int(obj, name)?;
    if v < lo || v > hi {
        return Err(invalid(obj, name, &format!("an int from {lo} to {hi}")));
    }
    T::try_from(v).map_err(|_| invalid(obj, name, &format!("an int from {lo} to {hi}")))
}

/// An unsigned 64-bit count or size.
pub fn u64_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    ranged(obj, name, 0, u64::MAX as i128)
}

/// A pid: an int, or `NoSuchProcess` naming it as given when no process can have it.
pub fn pid(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    let v = int(obj, "pid")?;
    i64::try_from(v).map_err(|_| raise(obj.py(), "NoSuchProcess", format!("no such process: pid {}", short_repr(obj))))
}

/// An address: an int, `BadAddress` when it cannot be one.
pub fn addr(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let v = int(obj, name)?;
    u64::try_from(v).map_err(|_| {
        raise(
            obj.py(),
            "BadAddress",
            format!("{name} must be an address from 0 to {:#x}, got {}", u64::MAX, short_repr(obj)),
        )
    })
}

/// `True` / `False` (or a numpy bool); ints and everything else are refused.
pub fn flag(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    let is_np_bool = obj.get_type().name().is_ok_and(|n| n.to_string_lossy() == "bool")
        && obj.get_type().module().is_ok_and(|m| m.to_string_lossy() == "numpy");
    if is_np_bool {
        if let Ok(b) = obj.is_truthy() {
            return Ok(b);
        }
    }
    Err(invalid(obj, name, "True or False"))
}

/// A real number within `lo..=hi` (an int or a float, not a bool, not NaN).
pub fn real(obj: &Bound<'_, PyAny>, name: &str, lo: f64, hi: f64) -> PyResult<f64> {
    let want = || invalid(obj, name, &format!("a number from {lo} to {hi}"));
    if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyString>() {
        return Err(want());
    }
    let is_np_bool = obj.get_type().name().is_ok_and(|n| n.to_string_lossy() == "bool");
    if is_np_bool {
        return Err(want());
    }
    let v = match obj.extract::<f64>() {
        Ok(v) => v,
        Err(_) => return Err(want()),
    };
    if v.is_nan() || v < lo || v > hi {
        return Err(want());
    }
    Ok(v)
}

/// A string.
pub fn text(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_string_lossy().into_owned()),
        Err(_) => Err(invalid(obj, name, "a string")),
    }
}

/// The items of a list or tuple.
fn items<'py>(obj: &Bound<'py, PyAny>, name: &str, want: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = obj.cast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    Err(invalid(obj, name, want))
}

/// A list of pids.
pub fn pids(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<i64>> {
    let v = items(obj, name, "a list of pids")?;
    v.iter()
        .map(|p| {
            if p.is_instance_of::<PyBool>() || int(p, name).is_err() {
                return Err(invalid(p, &format!("each of {name}"), "an int"));
            }
            pid(p)
        })
        .collect()
}

/// A page handle: an int; one that cannot be a handle is a `StaleHandle` naming it.
pub fn handle(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    kind_handle(obj, name, "page")
}

/// A handle of an object of `kind` (`page`, `vma`, `anon_vma`, …): an int; one that cannot
/// be a handle is a `StaleHandle` naming it.
pub fn kind_handle(obj: &Bound<'_, PyAny>, name: &str, kind: &str) -> PyResult<u64> {
    let x = int(obj, name).map_err(|_| invalid(obj, name, &format!("an int (a {kind} handle)")))?;
    let an = if kind.starts_with('a') { "an" } else { "a" };
    u64::try_from(x).map_err(|_| {
        raise(obj.py(), "StaleHandle", format!("{kind} handle {} does not name {an} {kind}", short_repr(obj)))
    })
}

/// A list of page handles (None, every anon page, is the caller's case).
pub fn handles(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u64>> {
    let v = items(obj, name, "None or a list of page handles")?;
    v.iter().map(|h| handle(h, &format!("each of {name}"))).collect()
}

/// A list of ints from 0 to 2**64 - 1 (program words).
pub fn words(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u64>> {
    let v = items(obj, name, "a list of ints from 0 to 2**64 - 1")?;
    v.iter()
        .map(|w| {
            if w.is_instance_of::<PyBool>() {
                return Err(invalid(w, &format!("each of {name}"), "an int from 0 to 2**64 - 1"));
            }
            u64_arg(w, &format!("each of {name}"))
        })
        .collect()
}

/// Most worker threads a walk may use.
pub const THREADS_MAX: usize = rmapsim_core::state::sim::MAX_THREADS;

/// Walk threads: None (0 here: all cores) or an int from 1 to `THREADS_MAX`.
pub fn threads(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    if obj.is_none() {
        return Ok(0);
    }
    ranged(obj, name, 1, THREADS_MAX as i128)
        .map_err(|_| invalid(obj, name, &format!("an int from 1 to {THREADS_MAX} or None (all cores)")))
}

/// Op rows `[code, p, a, b, c, d, e]` of u64 each.
pub fn rows(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<[u64; 7]>> {
    let v = items(obj, name, "a list of op rows")?;
    v.iter()
        .enumerate()
        .map(|(i, r)| {
            let row_name = format!("{name}[{i}]");
            let cells = items(r, &row_name, "a row of 7 ints")?;
            if cells.len() != 7 {
                return Err(invalid(r, &row_name, "a row of 7 ints"));
            }
            let mut out = [0u64; 7];
            for (o, c) in out.iter_mut().zip(&cells) {
                *o = u64_arg(c, &row_name)?;
            }
            Ok(out)
        })
        .collect()
}
