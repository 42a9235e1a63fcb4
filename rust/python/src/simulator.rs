//! The `Simulator` class (`rmapsim._core.Simulator`; `rmapsim.Simulator` wraps it). Each
//! method declares its parameters by kind ([`crate::params`]), converts them with `args!`,
//! calls the core (long calls with the GIL released, see [`crate::busy`]) and returns
//! plain values, numpy arrays or the dicts of [`crate::dicts`].

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes, PyDict, PyList};

use rmapsim_core::harness::contention::ReclaimModel;
use rmapsim_core::harness::trace;
use rmapsim_core::mm::vma::MapOpts;
use rmapsim_core::state::sim::{WriteStats, NR_CPUS, PID_MAX_DEFAULT, PID_MAX_MIN};
use rmapsim_core::{Inject, SimError, Simulator as Core, TotalsSink, WalkMode, PAGE_SIZE};

use crate::args::to_py;
use crate::batch::{self, EventColumns};
use crate::busy::{borrow, borrow_mut};
use crate::call::{catch, detached, detached_if, IntoPy};
use crate::dicts::{dict, page_dict, ToDict};
use crate::params::{
    args, Addr, Advice, Dict, Flag, Fraction, In, Int, Len, Page, Pages, Pid, Pids, Prot, Rows, Symbols, Text, Threads,
    U64,
};
use crate::policy::policy_of;
use crate::views;

/// A `touch` shorter than this (bytes) is not worth an interrupt poll.
const SHORT_TOUCH: u64 = 1024 * PAGE_SIZE;

/// `fork_many`'s count (the core refuses a negative one, naming it).
type Count = Int<i64, { i64::MIN as i128 }, { i64::MAX as i128 }>;
/// A file identity.
type FileId = Int<u32, 1, { u32::MAX as i128 }>;
/// CPUs `_contention` simulates (up to the core's cap).
type Cpus = Int<u32, 1, { NR_CPUS as i128 }>;
/// `_apply`'s sampling interval.
type Every = Int<usize, 0, { usize::MAX as i128 }>;
/// `inject_enomem`'s nth allocation.
type Nth = Int<u64, 1, { u64::MAX as i128 }>;
type PidMax = Int<u64, { PID_MAX_MIN as i128 }, { PID_MAX_DEFAULT as i128 }>;
type Ram = Int<u64, { PAGE_SIZE as i128 }, { u64::MAX as i128 }>;

/// The native simulator. Use `rmapsim.Simulator`, which wraps this class.
#[pyclass(subclass, module = "rmapsim._core", name = "Simulator")]
pub struct PySimulator {
    inner: Core,
}

#[pymethods]
impl PySimulator {
    #[new]
    #[pyo3(signature = (era = None, seed = None, policy = None))]
    fn new(py: Python<'_>, era: Option<In<Text>>, seed: Option<In<U64>>, policy: Option<In<Dict>>) -> PyResult<Self> {
        args!(era, seed, policy);
        let era = era.unwrap_or_else(|| rmapsim_core::policy::DEFAULT_ERA.to_string());
        let p = policy_of(py, &era, policy.as_ref())?;
        Ok(PySimulator { inner: Core::with_policy(p, seed.unwrap_or(0)).py(py)? })
    }

    /// The simulator's policy: `{knob: value as text}` plus `"name"`.
    fn policy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.inner.policy();
        std::iter::once(("name", p.name.clone())).chain(p.knob_values()).into_py_dict(py)
    }

    /// Write-side work so far per operation kind: `{op: {counter: n}}`.
    fn write_stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let per_op = |w: WriteStats| WriteStats::FIELDS.iter().copied().zip(w.values()).into_py_dict(py);
        let ops = self.inner.write_stats().into_iter().map(|(op, w)| Ok((op, per_op(w)?)));
        ops.collect::<PyResult<Vec<_>>>()?.into_py_dict(py)
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

    fn fork(&mut self, py: Python<'_>, pid: In<Pid>) -> PyResult<u32> {
        args!(pid);
        catch(|| self.inner.fork(pid)).py(py)
    }

    /// `n` forks of `pid`, in order; returns the new pids. Ctrl-C stops it between two
    /// forks with `KeyboardInterrupt`: the children forked so far exist (see `pids()`).
    fn fork_many<'py>(slf: &Bound<'py, Self>, pid: In<Pid>, n: In<Count>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        args!(pid, n);
        let py = slf.py();
        let (mut this, _running) = borrow_mut(slf, "fork_many")?;
        let inner = &mut this.inner;
        let kids = detached(py, || inner.fork_many(pid, n))?;
        Ok(kids.into_iter().map(i64::from).collect::<Vec<_>>().into_pyarray(py))
    }

    fn exit(&mut self, py: Python<'_>, pid: In<Pid>) -> PyResult<()> {
        args!(pid);
        catch(|| self.inner.exit(pid)).py(py)
    }

    /// `pids` is a list of ints (the Python wrapper converts arrays and sequences).
    fn exit_many(slf: &Bound<'_, Self>, pids: In<Pids>) -> PyResult<()> {
        args!(pids);
        let (mut this, _running) = borrow_mut(slf, "exit_many")?;
        let inner = &mut this.inner;
        detached(slf.py(), || inner.exit_many(&pids))
    }

    fn exec(&mut self, py: Python<'_>, pid: In<Pid>) -> PyResult<()> {
        args!(pid);
        catch(|| self.inner.exec(pid)).py(py)
    }

    #[pyo3(signature = (pid, length, addr = None, prot = None, file = None, offset = None, noreserve = In::value(false), stack = In::value(false), noreplace = In::value(false), locked = In::value(false)), text_signature = "($self, pid, length, addr=None, prot=None, file=None, offset=None, noreserve=False, stack=False, noreplace=False, locked=False)")]
    #[allow(clippy::too_many_arguments)]
    fn mmap(
        slf: &Bound<'_, Self>,
        pid: In<Pid>,
        length: In<Len>,
        addr: Option<In<Addr>>,
        prot: Option<In<Prot>>,
        file: Option<In<FileId>>,
        offset: Option<In<U64>>,
        noreserve: In<Flag>,
        stack: In<Flag>,
        noreplace: In<Flag>,
        locked: In<Flag>,
    ) -> PyResult<u64> {
        args!(pid, length, addr, prot);
        let py = slf.py();
        let file = match (file, offset) {
            (None, None) => None,
            (None, Some(_)) => return Err(to_py(py, SimError::InvalidArgument("offset given without file".into()))),
            (Some(file), offset) => {
                args!(file, offset);
                Some((file, offset.unwrap_or(0)))
            }
        };
        args!(noreserve, stack, noreplace, locked);
        let opts = MapOpts { noreserve, stack, noreplace, locked };
        let (mut this, _running) = borrow_mut(slf, "mmap")?;
        let inner = &mut this.inner;
        let prot = prot.unwrap_or(3);
        // MAP_LOCKED or MCL_FUTURE: mm_populate faults the mapping in (can run long)
        let long = locked || inner.may_populate(pid, None);
        detached_if(py, long, || inner.mmap_with(pid, length, addr, prot, file, opts))
    }

    fn set_brk_base(&mut self, py: Python<'_>, pid: In<Pid>, addr: In<Addr>) -> PyResult<()> {
        args!(pid, addr);
        catch(|| self.inner.set_brk_base(pid, addr)).py(py)
    }

    fn brk(slf: &Bound<'_, Self>, pid: In<Pid>, addr: In<Addr>) -> PyResult<u64> {
        args!(pid, addr);
        let py = slf.py();
        let (mut this, _running) = borrow_mut(slf, "brk")?;
        let inner = &mut this.inner;
        // a locked heap or MCL_FUTURE: the growth is faulted in
        let heap = inner.brk_info(pid).map(|(base, brk)| (base.saturating_sub(PAGE_SIZE), brk.max(addr)));
        let long = heap.is_ok_and(|range| inner.may_populate(pid, Some(range)));
        detached_if(py, long, || inner.brk(pid, addr))
    }

    fn brk_info(&self, py: Python<'_>, pid: In<Pid>) -> PyResult<(u64, u64)> {
        args!(pid);
        catch(|| self.inner.brk_info(pid)).py(py)
    }

    fn munmap(&mut self, py: Python<'_>, pid: In<Pid>, addr: In<Addr>, length: In<Len>) -> PyResult<()> {
        args!(pid, addr, length);
        catch(|| self.inner.munmap(pid, addr, length)).py(py)
    }

    #[pyo3(signature = (pid, addr, length, write = In::value(true)), text_signature = "($self, pid, addr, length, write=True)")]
    fn touch(slf: &Bound<'_, Self>, pid: In<Pid>, addr: In<Addr>, length: In<Len>, write: In<Flag>) -> PyResult<()> {
        args!(pid, addr, length, write);
        let py = slf.py();
        let (mut this, _running) = borrow_mut(slf, "touch")?;
        let inner = &mut this.inner;
        if length < SHORT_TOUCH {
            // cannot run long: skip the interrupt poll's setup (a hot call in Python loops)
            return py.detach(|| catch(|| inner.touch(pid, addr, length, write))).py(py);
        }
        detached(py, || inner.touch(pid, addr, length, write))
    }

    /// `pids` is a list of ints (the Python wrapper converts arrays and sequences).
    #[pyo3(signature = (pids, addr, length, write = In::value(true)), text_signature = "($self, pids, addr, length, write=True)")]
    fn touch_many(
        slf: &Bound<'_, Self>,
        pids: In<Pids>,
        addr: In<Addr>,
        length: In<Len>,
        write: In<Flag>,
    ) -> PyResult<()> {
        args!(pids, addr, length, write);
        let (mut this, _running) = borrow_mut(slf, "touch_many")?;
        let inner = &mut this.inner;
        detached(slf.py(), || inner.touch_many(&pids, addr, length, write))
    }

    fn mprotect(slf: &Bound<'_, Self>, pid: In<Pid>, addr: In<Addr>, length: In<Len>, prot: In<Prot>) -> PyResult<()> {
        args!(pid, addr, length, prot);
        let py = slf.py();
        let (mut this, _running) = borrow_mut(slf, "mprotect")?;
        let inner = &mut this.inner;
        // a locked range made writable is faulted in (4.5+)
        let long = inner.may_populate(pid, Some((addr, addr.saturating_add(length))));
        detached_if(py, long, || inner.mprotect(pid, addr, length, prot))
    }

    /// Returns the walks `pageout` made (a dict of columns; empty for other advice).
    fn _madvise<'py>(
        &mut self,
        py: Python<'py>,
        pid: In<Pid>,
        addr: In<Addr>,
        length: In<Len>,
        advice: In<Advice>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pid, addr, length, advice);
        catch(|| self.inner.madvise(pid, addr, length, advice)).py(py)?.to_dict(py)
    }

    #[pyo3(signature = (pid, old_addr, old_len, new_len, may_move = In::value(true), new_addr = None, dontunmap = In::value(false)), text_signature = "($self, pid, old_addr, old_len, new_len, may_move=True, new_addr=None, dontunmap=False)")]
    #[allow(clippy::too_many_arguments)]
    fn mremap(
        slf: &Bound<'_, Self>,
        pid: In<Pid>,
        old_addr: In<Addr>,
        old_len: In<Len>,
        new_len: In<Len>,
        may_move: In<Flag>,
        new_addr: Option<In<Addr>>,
        dontunmap: In<Flag>,
    ) -> PyResult<u64> {
        args!(pid, old_addr, old_len, new_len, may_move, new_addr, dontunmap);
        let py = slf.py();
        let (mut this, _running) = borrow_mut(slf, "mremap")?;
        let inner = &mut this.inner;
        // a locked VMA's growth is faulted in
        let long = inner.may_populate(pid, Some((old_addr, old_addr.saturating_add(old_len))));
        detached_if(py, long, || inner.mremap(pid, old_addr, old_len, new_len, may_move, new_addr, dontunmap))
    }

    /// `try_to_unmap` on a list of page handles or None (every anon page).
    #[pyo3(signature = (pages = None, threads = In::value(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _try_to_unmap<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<In<Pages>>,
        threads: In<Threads>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pages, threads);
        let (mut this, _running) = borrow_mut(slf, "try_to_unmap")?;
        let inner = &mut this.inner;
        detached(slf.py(), || inner.try_to_unmap_par(pages.as_deref(), threads))?.to_dict(slf.py())
    }

    /// `try_to_unmap` keeping only walk totals (a dict as `_walk_totals` returns).
    #[pyo3(signature = (pages = None, threads = In::value(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _try_to_unmap_totals<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<In<Pages>>,
        threads: In<Threads>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pages, threads);
        let (mut this, _running) = borrow_mut(slf, "try_to_unmap")?;
        let inner = &mut this.inner;
        let t = detached(slf.py(), || {
            let mut sink = TotalsSink::default();
            inner.try_to_unmap_into(pages.as_deref(), threads, &mut sink)?;
            Ok(sink.finish())
        })?;
        t.to_dict(slf.py())
    }

    #[pyo3(signature = (pages = None))]
    fn _drop_swap_cache(&mut self, py: Python<'_>, pages: Option<In<Pages>>) -> PyResult<u64> {
        args!(pages);
        catch(|| self.inner.drop_swap_cache(pages.as_deref())).py(py)
    }

    fn render_layout(&self, py: Python<'_>, pid: In<Pid>) -> PyResult<String> {
        args!(pid);
        catch(|| self.inner.render_layout(pid)).py(py)
    }

    /// Apply op rows in one call; returns `(status, value, messages)`: status 0 = ok
    /// (value = result), otherwise the index+1 of the error kind in `ERROR_KINDS`, with its
    /// message. With `check_each`, `check()` runs after every op; the run stops at the first
    /// invariant violation (the rows after it are not applied). `every` > 0 also samples
    /// counts and bytes after every `every`-th op and the last (`trace::Sample`).
    #[pyo3(signature = (rows, check_each = In::value(false), every = In::value(0)), text_signature = "($self, rows, check_each=False, every=0)")]
    #[allow(clippy::type_complexity)]
    fn _apply(
        slf: &Bound<'_, Self>,
        rows: In<Rows>,
        check_each: In<Flag>,
        every: In<Every>,
    ) -> PyResult<(Vec<u8>, Vec<u64>, Vec<String>, Vec<trace::Sample>)> {
        args!(rows as "ops", check_each, every as "sample_every");
        let (mut this, _running) = borrow_mut(slf, "apply")?;
        let ((st, val, msg), samples) = batch::apply(slf.py(), &mut this.inner, &rows, check_each, every)?;
        Ok((st, val, msg, samples))
    }

    /// `_apply` recording the per-operation event log: the outcome columns, then a dict
    /// of event columns (numpy arrays; `kind` a list of str) for `rmapsim.EventLog`.
    #[pyo3(signature = (rows, check_each = In::value(false)), text_signature = "($self, rows, check_each=False)")]
    fn _apply_events<'py>(slf: &Bound<'py, Self>, rows: In<Rows>, check_each: In<Flag>) -> PyResult<EventColumns<'py>> {
        args!(rows as "ops", check_each);
        let (mut this, _running) = borrow_mut(slf, "apply")?;
        batch::apply_events(slf.py(), &mut this.inner, &rows, check_each)
    }

    /// `_apply` continuing an earlier replay (`trace::apply_with`): `pids` are the pids of
    /// the process symbols p1, p2, ... created so far, as the previous call returned them;
    /// returns `(status, value, messages, pids)` with the symbols these rows created added.
    /// `rmapsim.diff` replays a trace one operation at a time with it.
    #[pyo3(signature = (rows, pids), text_signature = "($self, rows, pids)")]
    #[allow(clippy::type_complexity)]
    fn _apply_from(
        slf: &Bound<'_, Self>,
        rows: In<Rows>,
        pids: In<Symbols>,
    ) -> PyResult<(Vec<u8>, Vec<u64>, Vec<String>, Vec<u32>)> {
        args!(rows as "ops", pids);
        let (mut this, _running) = borrow_mut(slf, "apply")?;
        let ((st, val, msg), pids) = batch::apply_from(slf.py(), &mut this.inner, &rows, pids)?;
        Ok((st, val, msg, pids))
    }

    /// The rmap object graph: `{"vmas": [...], "anon_vmas": [...]}` for drawing. Each VMA:
    /// pid, start, end, pgoff, prot, anon_vma, chain (anon_vma handles, oldest first);
    /// each anon_vma: handle, root, parent, entries on its list/tree.
    fn graph<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (vmas, anon_vmas) = self.inner.graph();
        let vmas = PyList::new(py, vmas.into_iter().map(|v| v.to_dict(py)).collect::<PyResult<Vec<_>>>()?)?;
        let avs = PyList::new(py, anon_vmas.into_iter().map(|a| a.to_dict(py)).collect::<PyResult<Vec<_>>>()?)?;
        Ok(dict!(py; "vmas" => vmas, "anon_vmas" => avs))
    }

    /// Allocation attempts so far per site, `{"<slab>@<kernel function>": n}`.
    fn allocation_sites<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.inner.allocation_sites().into_py_dict(py)
    }

    fn anon_pages<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.inner.anon_pages().into_iter().map(|p| p.to_u64()).collect::<Vec<_>>().into_pyarray(py)
    }

    fn page_at(&self, py: Python<'_>, pid: In<Pid>, addr: In<Addr>) -> PyResult<Option<u64>> {
        args!(pid, addr);
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

    /// Every populated page-table entry: `(pids, addrs, kinds, values)` (kind 1 zero page,
    /// 2 anon page with its handle, 3 swap entry with its slot), for `validate-kernel --fuzz`.
    #[allow(clippy::type_complexity)]
    fn _pte_entries<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u8>>, Bound<'py, PyArray1<u64>>)
    {
        let m = self.inner.pte_entries();
        let pids = m.iter().map(|x| x.0).collect::<Vec<_>>().into_pyarray(py);
        let addrs = m.iter().map(|x| x.1).collect::<Vec<_>>().into_pyarray(py);
        let kinds = m.iter().map(|x| x.2).collect::<Vec<_>>().into_pyarray(py);
        let values = m.iter().map(|x| x.3).collect::<Vec<_>>().into_pyarray(py);
        (pids, addrs, kinds, values)
    }

    /// `(pid, vma_start, index)` arrays for a list of page handles (`Simulator.page_owners`
    /// in the core: the lowest pid whose entries refer to each page, -1 for none).
    #[allow(clippy::type_complexity)]
    fn _page_owners<'py>(
        &self,
        py: Python<'py>,
        pages: In<Pages>,
    ) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>)> {
        args!(pages);
        let m = catch(|| Ok(self.inner.page_owners(&pages))).py(py)?;
        let pids = m.iter().map(|x| x.0).collect::<Vec<_>>().into_pyarray(py);
        let starts = m.iter().map(|x| x.1).collect::<Vec<_>>().into_pyarray(py);
        let index = m.iter().map(|x| x.2).collect::<Vec<_>>().into_pyarray(py);
        Ok((pids, starts, index))
    }

    /// `{"anon_vma": handle, "index": page index, "mapcount": n, "swap_slot": slot or None,
    /// "lazyfree": bool, "dirty": bool}` of a live page.
    fn page_info<'py>(&self, py: Python<'py>, page: In<Page>) -> PyResult<Bound<'py, PyDict>> {
        args!(page);
        let h = rmapsim_core::Id::from_u64(page);
        let lazy = catch(|| self.inner.page_lazyfree(h)).py(py)?;
        page_dict(py, "anon_vma", catch(|| self.inner.page_info(h)).py(py)?, lazy)
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
    fn _mm_handle(&self, py: Python<'_>, pid: In<Pid>) -> PyResult<u64> {
        args!(pid);
        catch(|| self.inner.mm_handle(pid)).py(py)
    }
    /// The handle of `pid`'s VMA containing `addr`, or None.
    fn _vma_at(&self, py: Python<'_>, pid: In<Pid>, addr: In<Addr>) -> PyResult<Option<u64>> {
        args!(pid, addr);
        catch(|| self.inner.vma_handle_at(pid, addr)).py(py)
    }

    /// Kernel-faithful `page_referenced` walks; `pages` is a list of handles or None;
    /// `threads` 0 = all cores.
    #[pyo3(signature = (pages = None, threads = In::value(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _page_referenced<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<In<Pages>>,
        threads: In<Threads>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pages, threads);
        let (this, _running) = borrow(slf, "page_referenced")?;
        let inner = &this.inner;
        detached(slf.py(), || inner.page_referenced_par(pages.as_deref(), threads))?.to_dict(slf.py())
    }

    /// Full `rmap_walk`s; `pages` is a list of handles or None; `threads` 0 = all cores.
    #[pyo3(signature = (pages = None, threads = In::value(1)), text_signature = "($self, pages=None, threads=1)")]
    fn _rmap_walk<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<In<Pages>>,
        threads: In<Threads>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pages, threads);
        let (this, _running) = borrow(slf, "rmap_walk")?;
        let inner = &this.inner;
        detached(slf.py(), || inner.rmap_walk_par(pages.as_deref(), threads))?.to_dict(slf.py())
    }

    /// Column totals and the `vmas_visited` histogram of full (`full=True`) or
    /// `page_referenced` walks, without per-page rows.
    #[pyo3(signature = (pages = None, full = In::value(true), threads = In::value(1)), text_signature = "($self, pages=None, full=True, threads=1)")]
    fn _walk_totals<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<In<Pages>>,
        full: In<Flag>,
        threads: In<Threads>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pages, threads, full);
        let (this, _running) = borrow(slf, if full { "rmap_walk" } else { "page_referenced" })?;
        let inner = &this.inner;
        let mode = if full { WalkMode::Full } else { WalkMode::UntilAllFound };
        detached(slf.py(), || inner.walk_totals(pages.as_deref(), mode, threads))?.to_dict(slf.py())
    }

    /// The simulator's own memory per object kind: `{kind: {live, slot_bytes, slots,
    /// bytes, capacity_bytes}}` for mm, vma, anon_vma, anon_vma_chain, page, pte, swap_slot.
    fn _memory_usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let kinds = self.inner.memory_usage().into_iter().map(|k| Ok((k.kind, k.to_dict(py)?)));
        kinds.collect::<PyResult<Vec<_>>>()?.into_py_dict(py)
    }

    /// The lock-contention model over the `page_referenced` walks of `pages`; with
    /// `spans=True` also each CPU's spans (`span_cpu`, `span_kind`, `span_lock`,
    /// `span_start`, `span_end`, `span_candidates`).
    #[pyo3(signature = (pages = None, cpus = In::value(16), per_candidate = In::value(1), handoff = In::value(1), outside = In::value(10), writer_every = In::value(0), writer_hold = In::value(5), spans = In::value(false)), text_signature = "($self, pages=None, cpus=16, per_candidate=1, handoff=1, outside=10, writer_every=0, writer_hold=5, spans=False)")]
    #[allow(clippy::too_many_arguments)]
    fn _contention<'py>(
        slf: &Bound<'py, Self>,
        pages: Option<In<Pages>>,
        cpus: In<Cpus>,
        per_candidate: In<U64>,
        handoff: In<U64>,
        outside: In<U64>,
        writer_every: In<U64>,
        writer_hold: In<U64>,
        spans: In<Flag>,
    ) -> PyResult<Bound<'py, PyDict>> {
        args!(pages, cpus, per_candidate, handoff, outside, writer_every, writer_hold, spans);
        let m = ReclaimModel { cpus, per_candidate, handoff, outside, writer_every, writer_hold };
        let (this, _running) = borrow(slf, "contention")?;
        let inner = &this.inner;
        let r = detached(slf.py(), || inner.contention_with_spans(pages.as_deref(), &m, spans))?;
        crate::dicts::contention_dict(slf.py(), r, cpus)
    }

    /// `/proc/sys/kernel/pid_max` of the simulated machine.
    #[getter]
    fn pid_max(&self) -> u32 {
        self.inner.pid_max()
    }

    fn set_pid_max(&mut self, py: Python<'_>, pid_max: In<PidMax>) -> PyResult<()> {
        args!(pid_max);
        self.inner.set_pid_max(pid_max).py(py)
    }

    /// Simulated RAM in bytes.
    #[getter]
    fn ram(&self) -> u64 {
        self.inner.ram_limit()
    }

    fn set_ram(&mut self, py: Python<'_>, ram: In<Ram>) -> PyResult<()> {
        args!(ram);
        self.inner.set_ram_limit(ram).py(py)
    }

    /// Simulated RAM in use: anon pages plus the kernel objects at the era's sizes.
    fn ram_used(&self) -> u64 {
        self.inner.ram_used()
    }

    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.inner.counts().to_dict(py)
    }

    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (v, a, c) = self.inner.memory();
        Ok(dict!(py; "vm_area_struct" => v, "anon_vma" => a, "anon_vma_chain" => c, "total" => v + a + c))
    }

    fn vmas<'py>(&self, py: Python<'py>, pid: In<Pid>) -> PyResult<Bound<'py, PyList>> {
        args!(pid);
        let vmas = catch(|| self.inner.vmas_of(pid)).py(py)?;
        PyList::new(py, vmas.into_iter().map(|v| v.to_dict(py)).collect::<PyResult<Vec<_>>>()?)
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

    fn parent(&self, py: Python<'_>, pid: In<Pid>) -> PyResult<u32> {
        args!(pid);
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
    fn inject_enomem(&mut self, py: Python<'_>, nth: Option<In<Nth>>, rate: Option<In<Fraction>>) -> PyResult<()> {
        let inj = match (nth, rate) {
            (Some(_), Some(_)) => {
                return Err(to_py(py, SimError::InvalidArgument("give nth or rate, not both".into())))
            }
            (Some(nth), None) => {
                args!(nth);
                Inject::Nth(nth)
            }
            (None, Some(rate)) => {
                args!(rate);
                Inject::Rate(rate)
            }
            (None, None) => Inject::Off,
        };
        catch(|| self.inner.inject_enomem(inj)).py(py)
    }

    /// `mlock(addr, length)`, or `mlock2(..., MLOCK_ONFAULT)` with `onfault`.
    #[pyo3(signature = (pid, addr, length, onfault = In::value(false)), text_signature = "($self, pid, addr, length, onfault=False)")]
    fn mlock(slf: &Bound<'_, Self>, pid: In<Pid>, addr: In<Addr>, length: In<Len>, onfault: In<Flag>) -> PyResult<()> {
        args!(pid, addr, length, onfault);
        let (mut this, _running) = borrow_mut(slf, "mlock")?;
        let inner = &mut this.inner;
        detached(slf.py(), || inner.mlock(pid, addr, length, onfault))
    }

    fn munlock(&mut self, py: Python<'_>, pid: In<Pid>, addr: In<Addr>, length: In<Len>) -> PyResult<()> {
        args!(pid, addr, length);
        catch(|| self.inner.munlock(pid, addr, length)).py(py)
    }

    /// `mlockall(MCL_CURRENT? | MCL_FUTURE? | MCL_ONFAULT?)`.
    #[pyo3(signature = (pid, current = In::value(true), future = In::value(false), onfault = In::value(false)), text_signature = "($self, pid, current=True, future=False, onfault=False)")]
    fn mlockall(
        slf: &Bound<'_, Self>,
        pid: In<Pid>,
        current: In<Flag>,
        future: In<Flag>,
        onfault: In<Flag>,
    ) -> PyResult<()> {
        args!(pid, current, future, onfault);
        let (mut this, _running) = borrow_mut(slf, "mlockall")?;
        let inner = &mut this.inner;
        detached(slf.py(), || inner.mlockall(pid, current, future, onfault))
    }

    fn munlockall(&mut self, py: Python<'_>, pid: In<Pid>) -> PyResult<()> {
        args!(pid);
        catch(|| self.inner.munlockall(pid)).py(py)
    }

    /// `prctl(PR_SET_MEMORY_MERGE, enable)`.
    #[pyo3(signature = (pid, enable = In::value(true)), text_signature = "($self, pid, enable=True)")]
    fn set_memory_merge(&mut self, py: Python<'_>, pid: In<Pid>, enable: In<Flag>) -> PyResult<()> {
        args!(pid, enable);
        catch(|| self.inner.set_memory_merge(pid, enable)).py(py)
    }

    /// `prctl(PR_GET_MEMORY_MERGE)`: does `pid`'s mm merge any (`MMF_VM_MERGE_ANY`)?
    fn memory_merge(&self, py: Python<'_>, pid: In<Pid>) -> PyResult<bool> {
        args!(pid);
        catch(|| self.inner.memory_merge(pid)).py(py)
    }
}
