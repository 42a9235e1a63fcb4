//! PyO3 bindings: argument validation, error mapping and numpy output only. All
//! simulation lives in `rmapsim-core`.

use std::sync::{Arc, Mutex};

use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};

use rmapsim_core::harness::contention::ReclaimModel;
use rmapsim_core::harness::fuzz::FuzzConfig;
use rmapsim_core::harness::trace::{self, Op, Outcome};
use rmapsim_core::mm::vma::MapOpts;
use rmapsim_core::policy::{Policy, KNOBS};
use rmapsim_core::state::sim::WriteStats;
use rmapsim_core::{Advice, Inject, ScanStats, SimError, Simulator as Core, TotalsSink, WalkMode, WalkTotals};

/// Every Rust allocation of the extension is counted, for the host-memory guard
/// (`rmapsim_core::state::hostmem`): beyond its budget operations raise `OutOfMemory` instead of
/// the process aborting.
#[global_allocator]
static GLOBAL: rmapsim_core::state::hostmem::CountingAlloc = rmapsim_core::state::hostmem::CountingAlloc;

mod args;
mod ops;
mod views;

use args::{dflt, flag, handles, invalid, opt_addr, opt_dict, opt_text, ranged, real, text, to_py, u64_arg};

trait IntoPy<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}
impl<T> IntoPy<T> for Result<T, SimError> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// Run a core call, turning a panic (a bug in rmapsim) into `InvariantViolation` so no
/// Rust panic reaches Python.
fn catch<T>(f: impl FnOnce() -> Result<T, SimError>) -> Result<T, SimError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(SimError::InvariantViolation(format!(
            "internal error in rmapsim (please report it): {what}; the simulator state may be inconsistent"
        )))
    })
}

/// Run a long core call with the GIL released and Ctrl-C honoured: the core checks an
/// interrupt at chunk boundaries, and its poll re-takes the GIL on this thread at most every
/// `interrupt::POLL_INTERVAL` to run `check_signals`. A signal handler's exception
/// (`KeyboardInterrupt` for Ctrl-C) is raised once the core has stopped at a safe boundary.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, SimError> + Send) -> PyResult<T> {
    match run_interruptible(py, f) {
        (Err(SimError::Interrupted), pending) => Err(pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(()))),
        (r, _) => r.py(py),
    }
}

/// [`detached`]'s run: the core call's result and the exception the poll caught, if any.
fn run_interruptible<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, SimError> + Send,
) -> (Result<T, SimError>, Option<PyErr>) {
    let pending: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let slot = pending.clone();
    let poll = move || {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                if let Ok(mut g) = slot.lock() {
                    *g = Some(e);
                }
                true
            }
        })
    };
    let r = py.detach(|| rmapsim_core::state::interrupt::run(poll, || catch(f)));
    let caught = pending.lock().ok().and_then(|mut g| g.take());
    (r, caught)
}

/// A `touch` shorter than this (bytes) is not worth an interrupt poll.
const SHORT_TOUCH: u64 = 1024 * rmapsim_core::PAGE_SIZE;

/// The long calls in progress (they release the GIL), by simulator object address. Each
/// registers before releasing the GIL and unregisters after re-taking it, so a thread
/// holding the GIL sees every call that holds a borrow of a simulator.
static RUNNING: Mutex<Vec<(usize, &'static str)>> = Mutex::new(Vec::new());

/// A registration in [`RUNNING`], removed on drop.
struct Running(usize, &'static str);

impl Running {
    fn new(slf: &Bound<'_, PySimulator>, call: &'static str) -> Running {
        let key = slf.as_ptr() as usize;
        if let Ok(mut r) = RUNNING.lock() {
            r.push((key, call));
        }
        Running(key, call)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut r) = RUNNING.lock() {
            if let Some(i) = r.iter().position(|&(k, c)| k == self.0 && c == self.1) {
                r.swap_remove(i);
            }
        }
    }
}

fn running_call(obj: &Bound<'_, PyAny>) -> Option<&'static str> {
    let key = obj.as_ptr() as usize;
    RUNNING.lock().ok()?.iter().find(|&&(k, _)| k == key).map(|&(_, c)| c)
}

/// `rmapsim.Busy`: `call` found the simulator borrowed by a long call in another thread.
fn busy(slf: &Bound<'_, PySimulator>, call: &str) -> PyErr {
    let running = running_call(slf.as_any()).unwrap_or("another call");
    let msg = format!("Simulator is busy: {running} is running in another thread ({call} was called)");
    match slf
        .py()
        .import("rmapsim.errors")
        .and_then(|m| m.getattr("Busy"))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
    {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

/// Borrow the simulator for a long read-only call `call` (other read-only calls may share
/// it; a mutating call meanwhile raises `Busy`).
fn borrow<'py>(slf: &Bound<'py, PySimulator>, call: &'static str) -> PyResult<(PyRef<'py, PySimulator>, Running)> {
    let r = slf.try_borrow().map_err(|_| busy(slf, call))?;
    Ok((r, Running::new(slf, call)))
}

/// Borrow the simulator for a long mutating call `call` (any other call meanwhile raises
/// `Busy`).
fn borrow_mut<'py>(
    slf: &Bound<'py, PySimulator>,
    call: &'static str,
) -> PyResult<(PyRefMut<'py, PySimulator>, Running)> {
    let r = slf.try_borrow_mut().map_err(|_| busy(slf, call))?;
    Ok((r, Running::new(slf, call)))
}

fn prot_arg(obj: &Bound<'_, PyAny>) -> PyResult<u8> {
    let s = text(obj, "prot")?;
    Core::parse_prot(&s).py(obj.py())
}

fn advice_arg(obj: &Bound<'_, PyAny>) -> PyResult<Advice> {
    let s = text(obj, "advice")?;
    Advice::parse(&s).py(obj.py())
}

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
fn preset_of(py: Python<'_>, era: &str) -> PyResult<Policy> {
    Policy::from_spec(era).map_err(SimError::InvalidArgument).py(py)
}

/// `era`'s policy with `overrides` applied on top; its name is the canonical spec.
fn policy_of(py: Python<'_>, era: &str, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Policy> {
    let mut p = preset_of(py, era)?;
    if let Some(o) = overrides {
        let base = p.base().to_string();
        set_knobs(&mut p, o)?;
        p.name = p.spec_over(&base);
    }
    Ok(p)
}

fn stats_dict<'py>(py: Python<'py>, s: ScanStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("page", s.page.into_pyarray(py))?;
    d.set_item("anon_vma", s.anon_vma.into_pyarray(py))?;
    d.set_item("vmas_visited", s.vmas_visited.into_pyarray(py))?;
    d.set_item("vmas_in_range", s.vmas_in_range.into_pyarray(py))?;
    d.set_item("ptes_checked", s.ptes_checked.into_pyarray(py))?;
    d.set_item("mappings_found", s.mappings_found.into_pyarray(py))?;
    d.set_item("mapcount", s.mapcount.into_pyarray(py))?;
    d.set_item("tree_nodes_visited", s.tree_nodes_visited.into_pyarray(py))?;
    d.set_item("lock_id", s.lock_id.into_pyarray(py))?;
    d.set_item("lock_mode", s.lock_mode.into_pyarray(py))?;
    Ok(d)
}

fn totals_dict(py: Python<'_>, t: WalkTotals) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("walks", t.walks)?;
    d.set_item("total_vmas_visited", t.vmas_visited)?;
    d.set_item("total_vmas_in_range", t.vmas_in_range)?;
    d.set_item("total_ptes_checked", t.ptes_checked)?;
    d.set_item("total_mappings_found", t.mappings_found)?;
    d.set_item("total_mapcount", t.mapcount)?;
    d.set_item("total_tree_nodes_visited", t.tree_nodes_visited)?;
    let (v, n): (Vec<u32>, Vec<u64>) = t.histogram.into_iter().unzip();
    d.set_item("hist_values", v.into_pyarray(py))?;
    d.set_item("hist_counts", n.into_pyarray(py))?;
    Ok(d)
}

/// Most CPUs `_contention` simulates (the core's cap).
const CONTENTION_CPUS_MAX: u32 = rmapsim_core::state::sim::NR_CPUS;

/// The native simulator. Use `rmapsim.Simulator`, which wraps this class.
#[pyclass(subclass, module = "rmapsim._core", name = "Simulator")]
struct PySimulator {
    inner: Core,
}

#[pymethods]
impl PySimulator {
    #[new]
    #[pyo3(signature = (era = None, seed = None, policy = None))]
    fn new(
        py: Python<'_>,
        era: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        policy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let era = opt_text(era, "era")?.unwrap_or_else(|| rmapsim_core::policy::DEFAULT_ERA.to_string());
        let seed = match seed.filter(|s| !s.is_none()) {
            None => 0,
            Some(s) => u64_arg(s, "seed")?,
        };
        let p = policy_of(py, &era, opt_dict(policy, "policy")?)?;
        Ok(PySimulator { inner: Core::with_policy(p, seed).py(py)? })
    }

    /// The simulator's policy: `{knob: value as text}` plus `"name"`.
    fn policy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", &self.inner.policy().name)?;
        for (k, v) in self.inner.policy().knob_values() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Write-side work so far per operation kind: `{op: {counter: n}}`.
    fn write_stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (op, w) in self.inner.write_stats() {
            let d = PyDict::new(py);
            for (k, v) in WriteStats::FIELDS.iter().zip(w.values()) {
                d.set_item(*k, v)?;
            }
            out.set_item(op, d)?;
        }
        Ok(out)
    }

    /// The era preset name.
    #[getter]
    fn era(&self) -> String {
        self.inner.policy().name.clone()
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed()
    }

    fn spawn(&mut self, py: Python<'_>) -> PyResult<u32> {
        catch(|| self.inner.spawn()).py(py)
    }

    fn fork(&mut self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<u32> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.fork(pid)).py(py)
    }

    /// `n` forks of `pid`, in order; returns the new pids. Ctrl-C stops it between two
    /// forks with `KeyboardInterrupt`: the children forked so far exist (see `pids()`).
    fn fork_many<'py>(
        slf: &Bound<'py, Self>,
        pid: &Bound<'_, PyAny>,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let py = slf.py();
        let pid = args::pid(pid)?;
        let n: i64 = ranged(n, "n", i64::MIN as i128, i64::MAX as i128)?;
        let (mut this, _running) = borrow_mut(slf, "fork_many")?;
        let inner = &mut this.inner;
        let kids = detached(py, || inner.fork_many(pid, n))?;
        Ok(kids.into_iter().map(i64::from).collect::<Vec<_>>().into_pyarray(py))
    }

    fn exit(&mut self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<()> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.exit(pid)).py(py)
    }

    /// `pids` is a list of ints (the Python wrapper converts arrays and sequences).
    fn exit_many(slf: &Bound<'_, Self>, pids: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let pids = args::pids(pids, "pids")?;
        let (mut this, _running) = borrow_mut(slf, "exit_many")?;
        let inner = &mut this.inner;
        detached(py, || inner.exit_many(&pids))
    }

    fn exec(&mut self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<()> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.exec(pid)).py(py)
    }

    #[pyo3(signature = (pid, length, addr = None, prot = None, file = None, offset = None, noreserve = dflt(false), stack = dflt(false)), text_signature = "($self, pid, length, addr=None, prot=None, file=None, offset=None, noreserve=False, stack=False)")]
    #[allow(clippy::too_many_arguments)]
    fn mmap(
        &mut self,
        py: Python<'_>,
        pid: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
        addr: Option<&Bound<'_, PyAny>>,
        prot: Option<&Bound<'_, PyAny>>,
        file: Option<&Bound<'_, PyAny>>,
        offset: Option<&Bound<'_, PyAny>>,
        noreserve: Py<PyAny>,
        stack: Py<PyAny>,
    ) -> PyResult<u64> {
        let pid = args::pid(pid)?;
        let length = u64_arg(length, "length")?;
        let addr = opt_addr(addr, "addr")?;
        let prot = match prot.filter(|p| !p.is_none()) {
            Some(p) => prot_arg(p)?,
            None => 3,
        };
        let file = file.filter(|f| !f.is_none());
        let offset = offset.filter(|o| !o.is_none());
        let file = match (file, offset) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(SimError::InvalidArgument("offset given without file".into())).py(py);
            }
            (Some(f), o) => {
                let f: u32 = ranged(f, "file", 1, u32::MAX as i128)?;
                let o = match o {
                    Some(o) => u64_arg(o, "offset")?,
                    None => 0,
                };
                Some((f, o))
            }
        };
        let opts = MapOpts { noreserve: flag(noreserve.bind(py), "noreserve")?, stack: flag(stack.bind(py), "stack")? };
        catch(|| self.inner.mmap_with(pid, length, addr, prot, file, opts)).py(py)
    }

    fn set_brk_base(&mut self, py: Python<'_>, pid: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<()> {
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        catch(|| self.inner.set_brk_base(pid, addr)).py(py)
    }

    fn brk(&mut self, py: Python<'_>, pid: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<u64> {
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        catch(|| self.inner.brk(pid, addr)).py(py)
    }

    fn brk_info(&self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<(u64, u64)> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.brk_info(pid)).py(py)
    }

    fn munmap(
        &mut self,
        py: Python<'_>,
        pid: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        let length = u64_arg(length, "length")?;
        catch(|| self.inner.munmap(pid, addr, length)).py(py)
    }

    #[pyo3(signature = (pid, addr, length, write = dflt(true)), text_signature = "($self, pid, addr, length, write=True)")]
    fn touch(
        slf: &Bound<'_, Self>,
        pid: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
        write: Py<PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        let length = u64_arg(length, "length")?;
        let write = flag(write.bind(py), "write")?;
        let (mut this, _running) = borrow_mut(slf, "touch")?;
        let inner = &mut this.inner;
        if length < SHORT_TOUCH {
            // cannot run long: skip the interrupt poll's setup (a hot call in Python loops)
            return py.detach(|| catch(|| inner.touch(pid, addr, length, write))).py(py);
        }
        detached(py, || inner.touch(pid, addr, length, write))
    }

    /// `pids` is a list of ints (the Python wrapper converts arrays and sequences).
    #[pyo3(signature = (pids, addr, length, write = dflt(true)), text_signature = "($self, pids, addr, length, write=True)")]
    fn touch_many(
        slf: &Bound<'_, Self>,
        pids: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
        write: Py<PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let pids = args::pids(pids, "pids")?;
        let addr = args::addr(addr, "addr")?;
        let length = u64_arg(length, "length")?;
        let write = flag(write.bind(py), "write")?;
        let (mut this, _running) = borrow_mut(slf, "touch_many")?;
        let inner = &mut this.inner;
        detached(py, || inner.touch_many(&pids, addr, length, write))
    }

    fn mprotect(
        &mut self,
        py: Python<'_>,
        pid: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
        prot: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        let length = u64_arg(length, "length")?;
        let prot = prot_arg(prot)?;
        catch(|| self.inner.mprotect(pid, addr, length, prot)).py(py)
    }

    /// Returns the walks `pageout` made (a dict of columns; empty for other advice).
    fn _madvise<'py>(
        &mut self,
        py: Python<'py>,
        pid: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
        advice: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        let length = u64_arg(length, "length")?;
        let advice = advice_arg(advice)?;
        let s = catch(|| self.inner.madvise(pid, addr, length, advice)).py(py)?;
        stats_dict(py, s)
    }

    #[pyo3(signature = (pid, old_addr, old_len, new_len, may_move = dflt(true), new_addr = None), text_signature = "($self, pid, old_addr, old_len, new_len, may_move=True, new_addr=None)")]
    #[allow(clippy::too_many_arguments)]
    fn mremap(
        &mut self,
        py: Python<'_>,
        pid: &Bound<'_, PyAny>,
        old_addr: &Bound<'_, PyAny>,
        old_len: &Bound<'_, PyAny>,
        new_len: &Bound<'_, PyAny>,
        may_move: Py<PyAny>,
        new_addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let pid = args::pid(pid)?;
        let old_addr = args::addr(old_addr, "old_addr")?;
        let old_len = u64_arg(old_len, "old_len")?;
        let new_len = u64_arg(new_len, "new_len")?;
        let may_move = flag(may_move.bind(py), "may_move")?;
        let new_addr = opt_addr(new_addr, "new_addr")?;
        catch(|| self.inner.mremap(pid, old_addr, old_len, new_len, may_move, new_addr)).py(py)
    }

    /// `try_to_unmap` on a list of page handles or None (every anon page).
    #[pyo3(signature = (pages = None, threads = dflt(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _try_to_unmap<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<&Bound<'_, PyAny>>,
        threads: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let (pages, threads) = (handles(pages, "pages")?, args::threads(Some(threads.bind(py)))?);
        let (mut this, _running) = borrow_mut(slf, "try_to_unmap")?;
        let inner = &mut this.inner;
        let s = detached(py, || inner.try_to_unmap_par(pages.as_deref(), threads))?;
        stats_dict(py, s)
    }

    /// `try_to_unmap` keeping only walk totals (a dict as `_walk_totals` returns).
    #[pyo3(signature = (pages = None, threads = dflt(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _try_to_unmap_totals<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<&Bound<'_, PyAny>>,
        threads: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let (pages, threads) = (handles(pages, "pages")?, args::threads(Some(threads.bind(py)))?);
        let (mut this, _running) = borrow_mut(slf, "try_to_unmap")?;
        let inner = &mut this.inner;
        let t = detached(py, || {
            let mut sink = TotalsSink::default();
            inner.try_to_unmap_into(pages.as_deref(), threads, &mut sink)?;
            Ok(sink.finish())
        })?;
        totals_dict(py, t)
    }

    #[pyo3(signature = (pages = None))]
    fn _drop_swap_cache(&mut self, py: Python<'_>, pages: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let pages = handles(pages, "pages")?;
        catch(|| self.inner.drop_swap_cache(pages.as_deref())).py(py)
    }

    fn render_layout(&self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<String> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.render_layout(pid)).py(py)
    }

    /// Apply op rows in one call; returns `(status, value, messages)`: status 0 = ok
    /// (value = result), otherwise the index+1 of the error kind in `ERROR_KINDS`, with its
    /// message. With `check_each`, `check()` runs after every op; the run stops at the first
    /// invariant violation (the rows after it are not applied). `every` > 0 also samples
    /// counts and bytes after every `every`-th op and the last (`trace::Sample`).
    #[pyo3(signature = (rows, check_each = dflt(false), every = dflt(0)), text_signature = "($self, rows, check_each=False, every=0)")]
    #[allow(clippy::type_complexity)]
    fn _apply(
        slf: &Bound<'_, Self>,
        rows: &Bound<'_, PyAny>,
        check_each: Py<PyAny>,
        every: Py<PyAny>,
    ) -> PyResult<(Vec<u8>, Vec<u64>, Vec<String>, Vec<trace::Sample>)> {
        let py = slf.py();
        let rows = args::rows(rows, "ops")?;
        let check_each = flag(check_each.bind(py), "check_each")?;
        let every: usize = ranged(every.bind(py), "sample_every", 0, usize::MAX as i128)?;
        let (mut this, _running) = borrow_mut(slf, "apply")?;
        let ops = decode_rows(&rows).py(py)?;
        let inner = &mut this.inner;
        let (out, samples) = detached(py, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let (out, samples) = trace::apply_sampled(inner, &ops, check_each, every);
                match out.last() {
                    Some(Outcome::Err(SimError::Interrupted)) => Err(SimError::Interrupted),
                    _ => Ok((out, samples)),
                }
            }))
            .unwrap_or_else(|_| {
                Err(SimError::InvariantViolation("internal error in rmapsim during apply (please report it)".into()))
            })
        })?;
        let (st, val, msg) = outcome_columns(out);
        Ok((st, val, msg, samples))
    }

    /// `_apply` recording the per-operation event log: the outcome columns, then a dict
    /// of event columns (numpy arrays; `kind` a list of str) for `rmapsim.EventLog`.
    #[pyo3(signature = (rows, check_each = dflt(false)), text_signature = "($self, rows, check_each=False)")]
    fn _apply_events<'py>(
        slf: &Bound<'py, Self>,
        rows: &Bound<'_, PyAny>,
        check_each: Py<PyAny>,
    ) -> PyResult<EventColumns<'py>> {
        let py = slf.py();
        let rows = args::rows(rows, "ops")?;
        let check_each = flag(check_each.bind(py), "check_each")?;
        let (mut this, _running) = borrow_mut(slf, "apply")?;
        let ops = decode_rows(&rows).py(py)?;
        let inner = &mut this.inner;
        let (out, events) = detached(py, || {
            catch(|| {
                let (out, ev) = rmapsim_core::harness::events::apply_events(inner, &ops, check_each)?;
                match out.last() {
                    Some(Outcome::Err(SimError::Interrupted)) => Err(SimError::Interrupted),
                    _ => Ok((out, ev)),
                }
            })
        })?;
        let (st, val, msg) = outcome_columns(out);
        Ok((st, val, msg, event_columns(py, &events)?))
    }

    /// `_apply` continuing an earlier replay (`trace::apply_with`): `pids` are the pids of
    /// the process symbols p1, p2, ... created so far, as the previous call returned them;
    /// returns `(status, value, messages, pids)` with the symbols these rows created added.
    /// `rmapsim.diff` replays a trace one operation at a time with it.
    #[pyo3(signature = (rows, pids), text_signature = "($self, rows, pids)")]
    #[allow(clippy::type_complexity)]
    fn _apply_from(
        slf: &Bound<'_, Self>,
        rows: &Bound<'_, PyAny>,
        pids: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<u8>, Vec<u64>, Vec<String>, Vec<u32>)> {
        let py = slf.py();
        let rows = args::rows(rows, "ops")?;
        let symbols = args::pids(pids, "pids")?
            .into_iter()
            .map(|p| u32::try_from(p).map_err(|_| invalid(pids, "pids", "a list of pids from 1 to 2**32 - 1")))
            .collect::<PyResult<Vec<u32>>>()?;
        let (mut this, _running) = borrow_mut(slf, "apply")?;
        let ops = decode_rows(&rows).py(py)?;
        let inner = &mut this.inner;
        let (out, symbols) = detached(py, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut runner = trace::Runner { pids: symbols, ..Default::default() };
                let out = trace::apply_with(inner, &mut runner, &ops, false);
                match out.last() {
                    Some(Outcome::Err(SimError::Interrupted)) => Err(SimError::Interrupted),
                    _ => Ok((out, runner.pids)),
                }
            }))
            .unwrap_or_else(|_| {
                Err(SimError::InvariantViolation("internal error in rmapsim during apply (please report it)".into()))
            })
        })?;
        let (st, val, msg) = outcome_columns(out);
        Ok((st, val, msg, symbols))
    }

    /// The rmap object graph: `{"vmas": [...], "anon_vmas": [...]}` for drawing. Each VMA:
    /// pid, start, end, pgoff, prot, anon_vma, chain (anon_vma handles, oldest first);
    /// each anon_vma: handle, root, parent, entries on its list/tree.
    fn graph<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = self.inner.graph();
        let d = PyDict::new(py);
        let vl = PyList::empty(py);
        for v in g.0 {
            let x = PyDict::new(py);
            x.set_item("pid", v.0)?;
            x.set_item("start", v.1)?;
            x.set_item("end", v.2)?;
            x.set_item("pgoff", v.3)?;
            x.set_item("prot", Core::prot_string(v.4).replace('-', ""))?;
            x.set_item("anon_vma", v.5)?;
            x.set_item("chain", v.6)?;
            vl.append(x)?;
        }
        let al = PyList::empty(py);
        for a in g.1 {
            let x = PyDict::new(py);
            x.set_item("anon_vma", a.0)?;
            x.set_item("root", a.1)?;
            x.set_item("parent", a.2)?;
            x.set_item("entries", a.3)?;
            al.append(x)?;
        }
        d.set_item("vmas", vl)?;
        d.set_item("anon_vmas", al)?;
        Ok(d)
    }

    /// Allocation attempts so far per site, `{"<slab>@<kernel function>": n}`.
    fn allocation_sites<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.allocation_sites() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn anon_pages<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.inner.anon_pages().into_iter().map(|p| p.to_u64()).collect::<Vec<_>>().into_pyarray(py)
    }

    fn page_at(&self, py: Python<'_>, pid: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let pid = args::pid(pid)?;
        let addr = args::addr(addr, "addr")?;
        Ok(catch(|| self.inner.page_at(pid, addr)).py(py)?.map(|p| p.to_u64()))
    }

    /// Every PTE that maps an anon page: `(pids, addresses, pages)`, three arrays in pid
    /// then address order (`page_at` of every mapped address in one call).
    #[allow(clippy::type_complexity)]
    fn _page_mappings<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>) {
        let m = self.inner.page_mappings();
        let pids = m.iter().map(|x| x.0).collect::<Vec<_>>().into_pyarray(py);
        let addrs = m.iter().map(|x| x.1).collect::<Vec<_>>().into_pyarray(py);
        let pages = m.iter().map(|x| x.2.to_u64()).collect::<Vec<_>>().into_pyarray(py);
        (pids, addrs, pages)
    }

    /// `{"anon_vma": handle, "index": page index, "mapcount": n}` of a live page.
    fn page_info<'py>(&self, py: Python<'py>, page: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let h = args::handle(page, "page")?;
        let (av, index, mapcount, swap) = catch(|| self.inner.page_info(rmapsim_core::Id::from_u64(h))).py(py)?;
        let d = PyDict::new(py);
        d.set_item("anon_vma", av)?;
        d.set_item("index", index)?;
        d.set_item("mapcount", mapcount)?;
        d.set_item("swap_slot", swap)?;
        Ok(d)
    }

    // Navigable views (`rmapsim.views`): one object by handle, the list it heads, and the
    // entry points by pid.
    /// The fields of one live object: `kind` is "mm", "vma", "anon_vma", "anon_vma_chain"
    /// or "page"; a freed or unknown handle raises `StaleHandle`.
    fn _view<'py>(
        &self,
        py: Python<'py>,
        kind: &Bound<'_, PyAny>,
        handle: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        views::view(py, &self.inner, kind, handle)
    }
    /// `(anon_vma_chain or None, handle)` pairs of the list an "mm", "vma" or "anon_vma" heads.
    fn _view_list(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        handle: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(Option<u64>, u64)>> {
        views::view_list(py, &self.inner, kind, handle)
    }
    /// The handle of `pid`'s mm_struct.
    fn _mm_handle(&self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<u64> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.mm_handle(pid)).py(py)
    }
    /// The handle of `pid`'s VMA containing `addr`, or None.
    fn _vma_at(&self, py: Python<'_>, pid: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let (pid, addr) = (args::pid(pid)?, args::addr(addr, "addr")?);
        catch(|| self.inner.vma_handle_at(pid, addr)).py(py)
    }

    /// Kernel-faithful `page_referenced` walks; `pages` is a list of handles or None;
    /// `threads` 0 = all cores.
    #[pyo3(signature = (pages = None, threads = dflt(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _page_referenced<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<&Bound<'_, PyAny>>,
        threads: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let (pages, threads) = (handles(pages, "pages")?, args::threads(Some(threads.bind(py)))?);
        let (this, _running) = borrow(slf, "page_referenced")?;
        let inner = &this.inner;
        let s = detached(py, || inner.page_referenced_par(pages.as_deref(), threads))?;
        stats_dict(py, s)
    }

    /// Full `rmap_walk`s; `pages` is a list of handles or None; `threads` 0 = all cores.
    #[pyo3(signature = (pages = None, threads = dflt(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _rmap_walk<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<&Bound<'_, PyAny>>,
        threads: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let (pages, threads) = (handles(pages, "pages")?, args::threads(Some(threads.bind(py)))?);
        let (this, _running) = borrow(slf, "rmap_walk")?;
        let inner = &this.inner;
        let s = detached(py, || inner.rmap_walk_par(pages.as_deref(), threads))?;
        stats_dict(py, s)
    }

    /// Column totals and the `vmas_visited` histogram of full (`full=True`) or
    /// `page_referenced` walks, without per-page rows.
    #[pyo3(signature = (pages = None, full = dflt(true), threads = dflt(1)), text_signature = "($self, pages=None, full=True, threads=1)")]
    fn _walk_totals<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<&Bound<'_, PyAny>>,
        full: Py<PyAny>,
        threads: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let (pages, threads) = (handles(pages, "pages")?, args::threads(Some(threads.bind(py)))?);
        let full = flag(full.bind(py), "full")?;
        let (this, _running) = borrow(slf, if full { "rmap_walk" } else { "page_referenced" })?;
        let inner = &this.inner;
        let mode = if full { WalkMode::Full } else { WalkMode::UntilAllFound };
        let t = detached(py, || inner.walk_totals(pages.as_deref(), mode, threads))?;
        totals_dict(py, t)
    }

    /// The simulator's own memory per object kind: `{kind: {live, slot_bytes, slots,
    /// bytes, capacity_bytes}}` for mm, vma, anon_vma, anon_vma_chain, page, pte, swap_slot.
    fn _memory_usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for k in self.inner.memory_usage() {
            let x = PyDict::new(py);
            x.set_item("live", k.live)?;
            x.set_item("slot_bytes", k.slot_bytes)?;
            x.set_item("slots", k.slots)?;
            x.set_item("bytes", k.bytes)?;
            x.set_item("capacity_bytes", k.capacity_bytes)?;
            d.set_item(k.kind, x)?;
        }
        Ok(d)
    }

    /// The lock-contention model over the `page_referenced` walks of `pages`; with
    /// `spans=True` also each CPU's spans (`span_cpu`, `span_kind`, `span_lock`,
    /// `span_start`, `span_end`, `span_candidates`).
    #[pyo3(signature = (pages = None, cpus = dflt(16), per_candidate = dflt(1), handoff = dflt(1), outside = dflt(10), writer_every = dflt(0), writer_hold = dflt(5), spans = dflt(false)), text_signature = "($self, pages=None, cpus=16, per_candidate=1, handoff=1, outside=10, writer_every=0, writer_hold=5, spans=False)")]
    #[allow(clippy::too_many_arguments)]
    fn _contention<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<&Bound<'_, PyAny>>,
        cpus: Py<PyAny>,
        per_candidate: Py<PyAny>,
        handoff: Py<PyAny>,
        outside: Py<PyAny>,
        writer_every: Py<PyAny>,
        writer_hold: Py<PyAny>,
        spans: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let pages = handles(pages, "pages")?;
        let cpus: u32 = ranged(cpus.bind(py), "cpus", 1, CONTENTION_CPUS_MAX as i128)?;
        let per_candidate = u64_arg(per_candidate.bind(py), "per_candidate")?;
        let handoff = u64_arg(handoff.bind(py), "handoff")?;
        let outside = u64_arg(outside.bind(py), "outside")?;
        let writer_every = u64_arg(writer_every.bind(py), "writer_every")?;
        let writer_hold = u64_arg(writer_hold.bind(py), "writer_hold")?;
        let spans = flag(spans.bind(py), "spans")?;
        let m = ReclaimModel { cpus, per_candidate, handoff, outside, writer_every, writer_hold };
        let (this, _running) = borrow(slf, "contention")?;
        let inner = &this.inner;
        let mut r = detached(py, || inner.contention_with_spans(pages.as_deref(), &m, spans))?;
        let d = PyDict::new(py);
        d.set_item("makespan", r.makespan)?;
        d.set_item("hold_time", r.hold_time)?;
        d.set_item("wait_time", r.wait_time)?;
        d.set_item("outside_time", r.outside_time)?;
        d.set_item("spinning", r.spinning)?;
        d.set_item("cpus", cpus)?;
        let (t, h, w): (Vec<u64>, Vec<u32>, Vec<u32>) =
            r.timeline.iter().fold((vec![], vec![], vec![]), |mut acc, &(t, h, w)| {
                acc.0.push(t);
                acc.1.push(h);
                acc.2.push(w);
                acc
            });
        d.set_item("time", t.into_pyarray(py))?;
        d.set_item("holding", h.into_pyarray(py))?;
        d.set_item("waiting", w.into_pyarray(py))?;
        let cols = |f: fn(&(u64, u64, u64, u64)) -> u64| r.locks.iter().map(f).collect::<Vec<u64>>();
        d.set_item("lock_id", cols(|x| x.0).into_pyarray(py))?;
        d.set_item("lock_acquisitions", cols(|x| x.1).into_pyarray(py))?;
        d.set_item("lock_hold", cols(|x| x.2).into_pyarray(py))?;
        d.set_item("lock_wait", cols(|x| x.3).into_pyarray(py))?;
        if let Some(sp) = r.spans.take() {
            d.set_item("span_cpu", sp.cpu.into_pyarray(py))?;
            d.set_item("span_kind", sp.kind.into_pyarray(py))?;
            d.set_item("span_lock", sp.lock.into_pyarray(py))?;
            d.set_item("span_start", sp.start.into_pyarray(py))?;
            d.set_item("span_end", sp.end.into_pyarray(py))?;
            d.set_item("span_candidates", sp.candidates.into_pyarray(py))?;
        }
        Ok(d)
    }

    /// `/proc/sys/kernel/pid_max` of the simulated machine.
    #[getter]
    fn pid_max(&self) -> u32 {
        self.inner.pid_max()
    }

    fn set_pid_max(&mut self, py: Python<'_>, pid_max: &Bound<'_, PyAny>) -> PyResult<()> {
        use rmapsim_core::state::sim::{PID_MAX_DEFAULT, PID_MAX_MIN};
        let v: u64 = ranged(pid_max, "pid_max", PID_MAX_MIN as i128, PID_MAX_DEFAULT as i128)?;
        self.inner.set_pid_max(v).py(py)
    }

    /// Simulated RAM in bytes.
    #[getter]
    fn ram(&self) -> u64 {
        self.inner.ram_limit()
    }

    fn set_ram(&mut self, py: Python<'_>, ram: &Bound<'_, PyAny>) -> PyResult<()> {
        let v: u64 = ranged(ram, "ram", rmapsim_core::PAGE_SIZE as i128, u64::MAX as i128)?;
        self.inner.set_ram_limit(v).py(py)
    }

    /// Simulated RAM in use: anon pages plus the kernel objects at the era's sizes.
    fn ram_used(&self) -> u64 {
        self.inner.ram_used()
    }

    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.counts();
        let d = PyDict::new(py);
        d.set_item("mm", c.mm)?;
        d.set_item("vma", c.vma)?;
        d.set_item("anon_vma", c.anon_vma)?;
        d.set_item("anon_vma_chain", c.anon_vma_chain)?;
        d.set_item("page", c.page)?;
        d.set_item("pte", c.pte)?;
        d.set_item("swap_slot", c.swap_slot)?;
        d.set_item("swap_cache", c.swap_cache)?;
        Ok(d)
    }

    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (v, a, c) = self.inner.memory();
        let d = PyDict::new(py);
        d.set_item("vm_area_struct", v)?;
        d.set_item("anon_vma", a)?;
        d.set_item("anon_vma_chain", c)?;
        d.set_item("total", v + a + c)?;
        Ok(d)
    }

    fn vmas<'py>(&self, py: Python<'py>, pid: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let pid = args::pid(pid)?;
        let out = PyList::empty(py);
        for v in catch(|| self.inner.vmas_of(pid)).py(py)? {
            let d = PyDict::new(py);
            d.set_item("start", v.start)?;
            d.set_item("end", v.end)?;
            d.set_item("pgoff", v.pgoff)?;
            d.set_item("prot", Core::prot_string(v.prot).replace('-', ""))?;
            d.set_item("anon_vma", v.anon_vma)?;
            d.set_item("chain_len", v.chain_len)?;
            d.set_item("flags", flag_names(v.flags))?;
            d.set_item("file", v.file)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Make this simulator an independent deep copy of `other` (its whole state and
    /// future: random stream, injection, limits). `rmapsim.Simulator.clone` uses it.
    fn _copy_from(slf: &Bound<'_, Self>, other: &Bound<'_, PySimulator>) -> PyResult<()> {
        let copy = {
            let (src, _running) = borrow(other, "clone")?;
            let inner = &src.inner;
            detached(slf.py(), || inner.try_clone())?
        };
        let (mut this, _running) = borrow_mut(slf, "clone")?;
        this.inner = copy;
        Ok(())
    }

    /// The whole state as a versioned snapshot (`rmapsim.Simulator.to_bytes`).
    fn _snapshot<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyBytes>> {
        let buf = {
            let (this, _running) = borrow(slf, "to_bytes")?;
            let inner = &this.inner;
            detached(slf.py(), || catch(|| inner.to_snapshot()))?
        };
        Ok(PyBytes::new(slf.py(), &buf))
    }

    /// Replace this simulator's state with the one `data` (a snapshot) holds; on any
    /// error nothing changes (`rmapsim.Simulator.from_bytes`).
    fn _restore(slf: &Bound<'_, Self>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let bytes = data.as_bytes();
        let restored = detached(slf.py(), || catch(|| Core::from_snapshot(bytes)))?;
        let (mut this, _running) = borrow_mut(slf, "from_bytes")?;
        this.inner = restored;
        Ok(())
    }

    /// The cheap structural checks the native fuzzer runs after every operation (object
    /// links, counts, no rmap oracle); raises `InvariantViolation` like `check`.
    fn _check_structure(slf: &Bound<'_, Self>) -> PyResult<()> {
        let (this, _running) = borrow(slf, "check")?;
        let inner = &this.inner;
        detached(slf.py(), || inner.check_structure())
    }

    /// Check every invariant; raises `InvariantViolation` naming the first broken one.
    /// Ctrl-C stops it with `KeyboardInterrupt` (it changes nothing).
    fn check(slf: &Bound<'_, Self>) -> PyResult<()> {
        let (this, _running) = borrow(slf, "check")?;
        let inner = &this.inner;
        detached(slf.py(), || inner.check())
    }

    fn pids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.pids().into_iter().map(i64::from).collect::<Vec<_>>().into_pyarray(py)
    }

    fn parent(&self, py: Python<'_>, pid: &Bound<'_, PyAny>) -> PyResult<u32> {
        let pid = args::pid(pid)?;
        catch(|| self.inner.parent_of(pid)).py(py)
    }

    /// Running count of allocation attempts.
    fn allocations(&self) -> u64 {
        self.inner.allocations()
    }

    /// Operations performed so far.
    fn operations(&self) -> u64 {
        self.inner.op_count()
    }

    #[pyo3(signature = (nth = None, rate = None))]
    fn inject_enomem(
        &mut self,
        py: Python<'_>,
        nth: Option<&Bound<'_, PyAny>>,
        rate: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let inj = match (nth.filter(|n| !n.is_none()), rate.filter(|r| !r.is_none())) {
            (Some(_), Some(_)) => {
                return Err(to_py(py, SimError::InvalidArgument("give nth or rate, not both".into())));
            }
            (Some(n), None) => Inject::Nth(ranged(n, "nth", 1, u64::MAX as i128)?),
            (None, Some(r)) => Inject::Rate(real(r, "rate", 0.0, 1.0)?),
            (None, None) => Inject::Off,
        };
        catch(|| self.inner.inject_enomem(inj)).py(py)
    }
}

/// `_apply`'s columns of outcomes: status (0 = ok, else the index + 1 of the error kind in
/// `ERROR_KINDS`), value (0 for an error) and message ("" for a success).
fn outcome_columns(out: Vec<Outcome>) -> (Vec<u8>, Vec<u64>, Vec<String>) {
    let (mut st, mut val, mut msg) = (Vec::new(), Vec::new(), Vec::new());
    for o in out {
        match o {
            Outcome::Ok(v) => {
                st.push(0);
                val.push(v);
                msg.push(String::new());
            }
            Outcome::Err(e) => {
                st.push(ERROR_KINDS.iter().position(|k| *k == e.kind()).map_or(255, |i| i as u8 + 1));
                val.push(0);
                msg.push(e.to_string());
            }
        }
    }
    (st, val, msg)
}

/// Error kinds as `_apply` numbers them (status = index + 1).
const ERROR_KINDS: [&str; 7] =
    ["NoSuchProcess", "BadAddress", "InvalidArgument", "StaleHandle", "OutOfMemory", "InvariantViolation", "TryAgain"];

/// The event log as columns: `kind`, `p`, `pid` (-1: none), `addr` / `len` (`trace::NONE`,
/// 2**64 - 1: none),
/// `alloc:<site>`, `alloc_<kind>`, `freed_<kind>`, `live_<kind>`, and the walk columns
/// (`walk_candidates` -1 when the operation walked nothing).
fn event_columns<'py>(py: Python<'py>, ev: &[rmapsim_core::harness::events::Event]) -> PyResult<Bound<'py, PyDict>> {
    use rmapsim_core::harness::events::{LIVE_KINDS, OBJECT_KINDS};
    let d = PyDict::new(py);
    let opt = |x: Option<u64>| x.unwrap_or(trace::NONE);
    d.set_item("kind", ev.iter().map(|e| e.kind).collect::<Vec<_>>())?;
    d.set_item("p", ev.iter().map(|e| e.p).collect::<Vec<u32>>().into_pyarray(py))?;
    d.set_item("pid", ev.iter().map(|e| e.pid.map_or(-1, i64::from)).collect::<Vec<i64>>().into_pyarray(py))?;
    d.set_item("addr", ev.iter().map(|e| opt(e.addr)).collect::<Vec<u64>>().into_pyarray(py))?;
    d.set_item("len", ev.iter().map(|e| opt(e.len)).collect::<Vec<u64>>().into_pyarray(py))?;
    for (i, site) in rmapsim_core::state::sim::AllocSite::ALL.iter().enumerate() {
        d.set_item(
            format!("alloc:{}", site.name()),
            ev.iter().map(|e| e.site_allocs[i]).collect::<Vec<u64>>().into_pyarray(py),
        )?;
    }
    for (i, k) in OBJECT_KINDS.iter().enumerate() {
        d.set_item(format!("alloc_{k}"), ev.iter().map(|e| e.allocs[i]).collect::<Vec<u64>>().into_pyarray(py))?;
        d.set_item(format!("freed_{k}"), ev.iter().map(|e| e.frees[i]).collect::<Vec<u64>>().into_pyarray(py))?;
    }
    for (i, k) in LIVE_KINDS.iter().enumerate() {
        d.set_item(format!("live_{k}"), ev.iter().map(|e| e.live[i]).collect::<Vec<u64>>().into_pyarray(py))?;
    }
    let w = |f: fn(&rmapsim_core::harness::events::WalkEvent) -> i64| {
        ev.iter().map(|e| e.walk.as_ref().map_or(-1, f)).collect::<Vec<i64>>()
    };
    d.set_item("walk_candidates", w(|x| x.candidates as i64).into_pyarray(py))?;
    d.set_item("walk_in_range", w(|x| x.in_range as i64).into_pyarray(py))?;
    d.set_item("walk_mappings", w(|x| x.mappings as i64).into_pyarray(py))?;
    d.set_item("walk_lock", w(|x| x.lock as i64).into_pyarray(py))?;
    d.set_item("walk_shared", w(|x| x.shared as i64).into_pyarray(py))?;
    Ok(d)
}

fn flag_names(flags: u32) -> Vec<&'static str> {
    use rmapsim_core::state::objects::vmflags::*;
    [
        (RAND_READ, "rand"),
        (SEQ_READ, "seq"),
        (DONTCOPY, "dontcopy"),
        (WIPEONFORK, "wipeonfork"),
        (ACCOUNT, "account"),
        (HUGEPAGE, "hugepage"),
        (NOHUGEPAGE, "nohugepage"),
        (DONTDUMP, "dontdump"),
        (NORESERVE, "noreserve"),
    ]
    .iter()
    .filter(|(b, _)| flags & b != 0)
    .map(|&(_, n)| n)
    .collect()
}

/// The list of era preset names, oldest first.
#[pyfunction]
fn eras() -> Vec<&'static str> {
    rmapsim_core::ERAS.to_vec()
}

type OpRows = Vec<[u64; 7]>;
/// What `_apply_events` returns: the per-operation status codes, values and messages, and
/// the event log's columns.
type EventColumns<'py> = (Vec<u8>, Vec<u64>, Vec<String>, Bound<'py, PyDict>);

fn decode_rows(rows: &[[u64; 7]]) -> Result<Vec<Op>, SimError> {
    rows.iter().enumerate().map(|(i, r)| Op::decode(*r, i)).collect()
}

/// Parse a version-1 trace into op rows `[code, p, a, b, c, d, e]`.
#[pyfunction]
fn parse_trace(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<OpRows> {
    let text = args::text(text, "text")?;
    let ops = catch(|| trace::parse(&text)).py(py)?;
    Ok(ops.iter().map(Op::encode).collect())
}

/// Render op rows as a version-1 trace.
#[pyfunction]
#[pyo3(signature = (rows, era = None))]
fn format_trace(py: Python<'_>, rows: &Bound<'_, PyAny>, era: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let rows = args::rows(rows, "ops")?;
    let era = opt_text(era, "era")?;
    let ops = decode_rows(&rows).py(py)?;
    Ok(trace::format(&ops, era.as_deref()))
}

/// The native fuzzer's delta-debugging shrink of op rows that break an invariant in `era`:
/// `(message, shrunk rows)`, or None when the rows break nothing.
#[pyfunction]
#[pyo3(signature = (era, rows, policy = None), text_signature = "(era, rows, policy=None)")]
fn shrink_trace(
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
fn run_program<'py>(
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

/// Run the native fuzzer; returns a dict (ops, runs, seconds, violation, trace, unshrunk_len,
/// jobs). `jobs` workers run in parallel, deterministic per (seed, jobs, max_ops);
/// `incremental=False` runs the structural checks from scratch after every operation.
/// Ctrl-C stops it within a poll interval; the `KeyboardInterrupt` raised then carries that
/// dict as its `fuzz_report` attribute (what was found so far; a violation's trace as far
/// as shrinking got).
#[pyfunction]
#[pyo3(signature = (era, seed = dflt(0), max_ops = dflt(0), seconds = dflt(0.0), fail_rate = dflt(0.0), run_len = dflt(400), full_check_every = dflt(16), policy = None, extended = dflt(false), jobs = dflt(1), incremental = dflt(true)), text_signature = "(era, seed=0, max_ops=0, seconds=0.0, fail_rate=0.0, run_len=400, full_check_every=16, policy=None, extended=False, jobs=1, incremental=True)")]
#[allow(clippy::too_many_arguments)]
fn fuzz<'py>(
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

/// The canonical era spec of `era` with `policy` (`{knob: value}`) applied on top.
#[pyfunction]
#[pyo3(signature = (era, policy = None))]
fn spec(py: Python<'_>, era: &Bound<'_, PyAny>, policy: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    Ok(policy_of(py, &args::text(era, "era")?, opt_dict(policy, "policy")?)?.name)
}

/// The knob values of a preset: `{knob: value as text}`.
#[pyfunction]
fn preset(py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<Vec<(&'static str, String)>> {
    let p = preset_of(py, &args::text(name, "era")?)?;
    Ok(p.knob_values())
}

/// The long call a simulator is running (in another thread), or None.
#[pyfunction]
fn _running(sim: &Bound<'_, PyAny>) -> Option<&'static str> {
    running_call(sim)
}

/// `(name, meaning, kernel change)` of every policy knob.
#[pyfunction]
fn knobs() -> Vec<(&'static str, &'static str, &'static str)> {
    KNOBS.to_vec()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySimulator>()?;
    m.add_function(wrap_pyfunction!(eras, m)?)?;
    m.add_function(wrap_pyfunction!(preset, m)?)?;
    m.add_function(wrap_pyfunction!(spec, m)?)?;
    m.add_function(wrap_pyfunction!(parse_trace, m)?)?;
    m.add_function(wrap_pyfunction!(format_trace, m)?)?;
    m.add_function(wrap_pyfunction!(fuzz, m)?)?;
    m.add_function(wrap_pyfunction!(run_program, m)?)?;
    m.add_function(wrap_pyfunction!(shrink_trace, m)?)?;
    m.add_function(wrap_pyfunction!(knobs, m)?)?;
    m.add_function(wrap_pyfunction!(ops::op_table, m)?)?;
    m.add_function(wrap_pyfunction!(_running, m)?)?;
    m.add("DEFAULT_ERA", rmapsim_core::policy::DEFAULT_ERA)?;
    m.add("ERROR_KINDS", ERROR_KINDS.to_vec())?;
    m.add("PAGE_SIZE", rmapsim_core::PAGE_SIZE)?;
    m.add("MMAP_BASE", rmapsim_core::MMAP_BASE)?;
    m.add("MMAP_MIN_ADDR", rmapsim_core::MMAP_MIN_ADDR)?;
    m.add("TASK_SIZE", rmapsim_core::TASK_SIZE)?;
    Ok(())
}
