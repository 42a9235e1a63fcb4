//! Era specs and knob overrides: the policy a simulator, fuzzer or program runs, and the
//! module functions that describe the presets and knobs.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use rmapsim_core::policy::{Policy, KNOBS};
use rmapsim_core::SimError;

use crate::args::{invalid, text};
use crate::call::IntoPy;
use crate::params::{args, Dict, In, Text};

/// Apply `{knob: value}` overrides; a bool value is its text ("true"), anything else its str().
fn set_knobs(p: &mut Policy, overrides: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = overrides.py();
    for (k, v) in overrides.iter() {
        let k = text(&k, "policy knob name")?;
        let v = if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
            b.is_true().to_string()
        } else if v.is_instance_of::<PyString>() || v.is_instance_of::<pyo3::types::PyInt>() {
            v.str()?.to_string()
        } else {
            return Err(invalid(
                &v,
                &format!("policy knob {}", rmapsim_core::error::quote(&k)),
                "a string, bool or int",
            ));
        };
        p.set_knob(&k, &v).map_err(|m| SimError::InvalidArgument(format!("policy: {m}"))).py(py)?;
    }
    Ok(())
}

/// The policy of era spec `era` (a preset, or `BASE+knob=value,...`), or
/// InvalidArgument quoting the spec.
pub fn preset_of(py: Python<'_>, era: &str) -> PyResult<Policy> {
    Policy::from_spec(era).map_err(SimError::InvalidArgument).py(py)
}

/// `era`'s policy with `overrides` applied on top; its name is the canonical spec.
pub fn policy_of(py: Python<'_>, era: &str, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Policy> {
    let mut p = preset_of(py, era)?;
    if let Some(o) = overrides {
        let base = p.base().to_string();
        set_knobs(&mut p, o)?;
        p.name = p.spec_over(&base);
    }
    Ok(p)
}

/// The list of era preset names, oldest first.
#[pyfunction]
pub fn eras() -> Vec<&'static str> {
    rmapsim_core::ERAS.to_vec()
}

/// The canonical era spec of `era` with `policy` (`{knob: value}`) applied on top.
#[pyfunction]
#[pyo3(signature = (era, policy = None))]
pub fn spec(py: Python<'_>, era: In<Text>, policy: Option<In<Dict>>) -> PyResult<String> {
    args!(era, policy);
    Ok(policy_of(py, &era, policy.as_ref())?.name)
}

/// The knob values of a preset: `{knob: value as text}`.
#[pyfunction]
pub fn preset(py: Python<'_>, name: In<Text>) -> PyResult<Vec<(&'static str, String)>> {
    args!(name as "era");
    Ok(preset_of(py, &name)?.knob_values())
}

/// `(name, meaning, kernel change)` of every policy knob.
#[pyfunction]
pub fn knobs() -> Vec<(&'static str, &'static str, &'static str)> {
    KNOBS.to_vec()
}
