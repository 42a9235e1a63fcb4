//! Object inspection by handle for `rmapsim.views` (`Simulator._view`, `_view_list`): one
//! object's fields as a dict, or the list it heads. Fields an era lacks are left out of the
//! dict (the Python view raises `AttributeError` naming the era).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rmapsim_core::Simulator as Core;

use crate::args::{kind_handle, raise, short_repr, text};
use crate::call::{catch, IntoPy};
use crate::simulator::flag_names;

/// The kinds `_view` reads.
const KINDS: &[&str] = &["mm", "vma", "anon_vma", "anon_vma_chain", "page"];

fn kind_arg(obj: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    let s = text(obj, "kind")?;
    KINDS.iter().copied().find(|k| *k == s).ok_or_else(|| {
        raise(obj.py(), "InvalidArgument", format!("kind must be one of {}, got {}", KINDS.join(", "), short_repr(obj)))
    })
}

fn set_opt<'py, T: for<'a> IntoPyObject<'a>>(d: &Bound<'py, PyDict>, key: &str, v: Option<T>) -> PyResult<()> {
    match v {
        Some(v) => d.set_item(key, v),
        None => Ok(()),
    }
}

/// `Simulator._view(kind, handle)`: the fields of one live object.
pub fn view<'py>(
    py: Python<'py>,
    sim: &Core,
    kind: &Bound<'_, PyAny>,
    handle: &Bound<'_, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind = kind_arg(kind)?;
    let h = kind_handle(handle, "handle", kind)?;
    let d = PyDict::new(py);
    match kind {
        "mm" => {
            let m = catch(|| sim.inspect_mm(h)).py(py)?;
            d.set_item("pid", m.pid)?;
            d.set_item("start_brk", m.start_brk)?;
            d.set_item("brk", m.brk)?;
            d.set_item("map_count", m.map_count)?;
        }
        "vma" => {
            let v = catch(|| sim.inspect_vma(h)).py(py)?;
            d.set_item("vm_start", v.vm_start)?;
            d.set_item("vm_end", v.vm_end)?;
            d.set_item("vm_pgoff", v.vm_pgoff)?;
            d.set_item("prot", Core::prot_string(v.prot).replace('-', ""))?;
            d.set_item("flags", flag_names(v.flags))?;
            d.set_item("vm_file", v.vm_file)?;
            d.set_item("vm_mm", v.vm_mm)?;
            d.set_item("pid", v.pid)?;
            d.set_item("anon_vma", v.anon_vma)?;
            set_opt(&d, "chain_len", v.chain_len)?;
        }
        "anon_vma" => {
            let a = catch(|| sim.inspect_anon_vma(h)).py(py)?;
            set_opt(&d, "root", a.root)?;
            set_opt(&d, "parent", a.parent)?;
            set_opt(&d, "refcount", a.refcount)?;
            set_opt(&d, "degree", a.degree)?;
            set_opt(&d, "num_children", a.num_children)?;
            set_opt(&d, "num_active_vmas", a.num_active_vmas)?;
            d.set_item("entries", a.entries)?;
            d.set_item("index", a.index)?;
        }
        "anon_vma_chain" => {
            let (vma, av) = catch(|| sim.inspect_avc(h)).py(py)?;
            d.set_item("vma", vma)?;
            d.set_item("anon_vma", av)?;
        }
        _ => {
            let (mapping, index, mapcount, swap) = catch(|| sim.inspect_page(h)).py(py)?;
            d.set_item("mapping", mapping)?;
            d.set_item("index", index)?;
            d.set_item("mapcount", mapcount)?;
            d.set_item("swap_slot", swap)?;
        }
    }
    Ok(d)
}

/// `Simulator._view_list(kind, handle)`: the list an mm, VMA or anon_vma heads, as
/// `(anon_vma_chain handle or None, handle)` pairs in kernel order.
pub fn view_list(
    py: Python<'_>,
    sim: &Core,
    kind: &Bound<'_, PyAny>,
    handle: &Bound<'_, PyAny>,
) -> PyResult<Vec<(Option<u64>, u64)>> {
    let kind = kind_arg(kind)?;
    let h = kind_handle(handle, "handle", kind)?;
    catch(|| sim.inspect_list(kind, h)).py(py)
}
