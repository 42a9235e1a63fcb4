//! PyO3 bindings: argument validation, error mapping and numpy output only. All
//! simulation lives in `rmapsim-core`. This file registers the module; each exposed class
//! and group of functions has its own file.

use pyo3::prelude::*;

/// Every Rust allocation of the extension is counted, for the host-memory guard
/// (`rmapsim_core::state::hostmem`): beyond its budget operations raise `OutOfMemory` instead of
/// the process aborting.
#[global_allocator]
static GLOBAL: rmapsim_core::state::hostmem::CountingAlloc = rmapsim_core::state::hostmem::CountingAlloc;

mod args;
mod batch;
mod busy;
mod call;
mod dicts;
mod fuzz;
mod ops;
mod params;
mod policy;
mod program;
mod progress;
mod simulator;
mod traces;
mod views;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<simulator::PySimulator>()?;
    m.add_function(wrap_pyfunction!(policy::eras, m)?)?;
    m.add_function(wrap_pyfunction!(policy::preset, m)?)?;
    m.add_function(wrap_pyfunction!(policy::spec, m)?)?;
    m.add_function(wrap_pyfunction!(traces::parse_trace, m)?)?;
    m.add_function(wrap_pyfunction!(traces::format_trace, m)?)?;
    m.add_function(wrap_pyfunction!(fuzz::fuzz, m)?)?;
    m.add_function(wrap_pyfunction!(program::run_program, m)?)?;
    m.add_function(wrap_pyfunction!(program::shrink_trace, m)?)?;
    m.add_function(wrap_pyfunction!(policy::knobs, m)?)?;
    m.add_function(wrap_pyfunction!(ops::op_table, m)?)?;
    m.add_function(wrap_pyfunction!(busy::_running, m)?)?;
    m.add_function(wrap_pyfunction!(progress::_set_progress_hook, m)?)?;
    m.add("DEFAULT_ERA", rmapsim_core::policy::DEFAULT_ERA)?;
    m.add("ERROR_KINDS", batch::ERROR_KINDS.to_vec())?;
    // every spelling `prot` and `advice` accept (rmapsim.Prot / rmapsim.Advice list the same)
    m.add("PROT_NAMES", rmapsim_core::Simulator::PROT_NAMES.iter().map(|p| p.0).collect::<Vec<_>>())?;
    m.add("ADVICE_NAMES", rmapsim_core::Advice::NAMES.to_vec())?;
    m.add("PAGE_SIZE", rmapsim_core::PAGE_SIZE)?;
    m.add("MMAP_BASE", rmapsim_core::MMAP_BASE)?;
    m.add("MMAP_MIN_ADDR", rmapsim_core::MMAP_MIN_ADDR)?;
    m.add("TASK_SIZE", rmapsim_core::TASK_SIZE)?;
    Ok(())
}
