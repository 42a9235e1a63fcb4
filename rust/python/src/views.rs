//! Object inspection by handle for `rmapsim.views` (`Simulator._view`, `_view_list`): one
//! object's fields as a dict, or the list it heads. Fields an era lacks are left out of the
//! dict (the Python view raises `AttributeError` naming the era).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rmapsim_core::harness::inspect::KINDS;
use rmapsim_core::Simulator as Core;

use crate::args::{kind_handle, raise, short_repr, text};
use crate::call::{catch, IntoPy};
use crate::dicts::{dict, page_dict, ToDict};

/// `kind`: one of the kinds `_view` reads, and `handle` an object handle of that kind.
fn kind_and_handle(kind: &Bound<'_, PyAny>, handle: &Bound<'_, PyAny>) -> PyResult<(&'static str, u64)> {
    let s = text(kind, "kind")?;
    let k = KINDS.iter().copied().find(|k| *k == s).ok_or_else(|| {
        let msg = format!("kind must be one of {}, got {}", KINDS.join(", "), short_repr(kind));
        raise(kind.py(), "InvalidArgument", msg)
    })?;
    Ok((k, kind_handle(handle, "handle", k)?))
}

/// `Simulator._view(kind, handle)`: the fields of one live object.
pub fn view<'py>(
    py: Python<'py>,
    sim: &Core,
    kind: &Bound<'_, PyAny>,
    handle: &Bound<'_, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let (kind, h) = kind_and_handle(kind, handle)?;
    match kind {
        "mm" => catch(|| sim.inspect_mm(h)).py(py)?.to_dict(py),
        "vma" => catch(|| sim.inspect_vma(h)).py(py)?.to_dict(py),
        "anon_vma" => catch(|| sim.inspect_anon_vma(h)).py(py)?.to_dict(py),
        "anon_vma_chain" => {
            let (vma, av) = catch(|| sim.inspect_avc(h)).py(py)?;
            Ok(dict!(py; "vma" => vma, "anon_vma" => av))
        }
        _ => {
            let lazy = catch(|| sim.page_lazyfree(rmapsim_core::Id::from_u64(h))).py(py)?;
            page_dict(py, "mapping", catch(|| sim.inspect_page(h)).py(py)?, lazy)
        }
    }
}

/// `Simulator._view_list(kind, handle)`: the list an mm, VMA or anon_vma heads, as
/// `(anon_vma_chain handle or None, handle)` pairs in kernel order.
pub fn view_list(
    py: Python<'_>,
    sim: &Core,
    kind: &Bound<'_, PyAny>,
    handle: &Bound<'_, PyAny>,
) -> PyResult<Vec<(Option<u64>, u64)>> {
    let (kind, h) = kind_and_handle(kind, handle)?;
    catch(|| sim.inspect_list(kind, h)).py(py)
}
