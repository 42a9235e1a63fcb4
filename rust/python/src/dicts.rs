//! Python dicts of core structs, each declared once: `to_dict!` implements [`ToDict`] for a
//! struct from its list of keys, and `dict!` builds a one-off dict from `key => value` pairs
//! (`key =>? value` leaves the key out when the value is None).

use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rmapsim_core::harness::contention::ContentionResult;
use rmapsim_core::harness::events::{Event, WalkEvent, LIVE_KINDS, OBJECT_KINDS};
use rmapsim_core::harness::inspect::{AnonVmaFields, MmFields, VmaFields};
use rmapsim_core::harness::render::{GraphAnonVma, GraphVma};
use rmapsim_core::harness::trace;
use rmapsim_core::state::sim::{AllocSite, Counts, KindUsage, VmaInfo};
use rmapsim_core::{ScanStats, Simulator as Core, WalkTotals};

/// A value's Python dict.
pub trait ToDict {
    fn to_dict(self, py: Python<'_>) -> PyResult<Bound<'_, PyDict>>;
}

/// `dict!(py; "key" => value, "other" =>? optional, ...)`: a new dict (in a function returning
/// `PyResult`).
macro_rules! dict {
    (@put $d:ident;) => {};
    (@put $d:ident; $key:expr =>? $val:expr $(, $($rest:tt)*)?) => {
        if let Some(v) = $val {
            $d.set_item($key, v)?;
        }
        dict!(@put $d; $($($rest)*)?);
    };
    (@put $d:ident; $key:expr => $val:expr $(, $($rest:tt)*)?) => {
        $d.set_item($key, $val)?;
        dict!(@put $d; $($($rest)*)?);
    };
    ($py:expr; $($body:tt)*) => {{
        let d = pyo3::types::PyDict::new($py);
        dict!(@put d; $($body)*);
        d
    }};
}
pub(crate) use dict;

/// `to_dict!(Type { field, ... })` (the fields as keys), `to_dict!(Type: arrays { field,
/// ... })` (each a numpy array), or `to_dict!(Type: |s, py| { "key" => expr, ... })`.
macro_rules! to_dict {
    ($ty:ty: |$s:ident, $py:ident| { $($body:tt)* }) => {
        impl ToDict for $ty {
            fn to_dict($s, $py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
                Ok(dict!($py; $($body)*))
            }
        }
    };
    ($ty:ty: arrays { $($f:ident),+ $(,)? }) => {
        to_dict!($ty: |self, py| { $(stringify!($f) => self.$f.into_pyarray(py)),+ });
    };
    ($ty:ty { $($f:ident),+ $(,)? }) => {
        to_dict!($ty: |self, py| { $(stringify!($f) => self.$f),+ });
    };
}

/// A prot as `vmas()` and the views spell it: "rw", "r", "" (no dashes).
pub fn prot_text(prot: u8) -> String {
    Core::prot_string(prot).replace('-', "")
}

/// The names of the madvise flag bits set in `flags`.
pub fn flag_names(flags: u32) -> Vec<&'static str> {
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
        (LOCKED, "locked"),
        (LOCKONFAULT, "lockonfault"),
        (MERGEABLE, "mergeable"),
    ]
    .iter()
    .filter(|(b, _)| flags & b != 0)
    .map(|&(_, n)| n)
    .collect()
}

// The walks' per-page rows (`ScanStats` in Python) and their totals.
to_dict!(ScanStats: arrays {
    page, anon_vma, vmas_visited, vmas_in_range, ptes_checked, mappings_found, mapcount, tree_nodes_visited,
    lock_id, lock_mode,
});
to_dict!(WalkTotals: |self, py| {
    "walks" => self.walks,
    "total_vmas_visited" => self.vmas_visited,
    "total_vmas_in_range" => self.vmas_in_range,
    "total_ptes_checked" => self.ptes_checked,
    "total_mappings_found" => self.mappings_found,
    "total_mapcount" => self.mapcount,
    "total_tree_nodes_visited" => self.tree_nodes_visited,
    "hist_values" => self.histogram.iter().map(|h| h.0).collect::<Vec<u32>>().into_pyarray(py),
    "hist_counts" => self.histogram.iter().map(|h| h.1).collect::<Vec<u64>>().into_pyarray(py),
});

// What the state queries return.
to_dict!(Counts { mm, vma, anon_vma, anon_vma_chain, page, pte, swap_slot, swap_cache });
to_dict!(KindUsage { live, slot_bytes, slots, bytes, capacity_bytes });
to_dict!(VmaInfo: |self, py| {
    "start" => self.start,
    "end" => self.end,
    "pgoff" => self.pgoff,
    "prot" => prot_text(self.prot),
    "anon_vma" => self.anon_vma,
    "chain_len" => self.chain_len,
    "flags" => flag_names(self.flags),
    "file" => self.file,
});
to_dict!(GraphVma: |self, py| {
    "pid" => self.0,
    "start" => self.1,
    "end" => self.2,
    "pgoff" => self.3,
    "prot" => prot_text(self.4),
    "anon_vma" => self.5,
    "chain" => self.6,
});
to_dict!(GraphAnonVma: |self, py| { "anon_vma" => self.0, "root" => self.1, "parent" => self.2, "entries" => self.3 });

// The views (`rmapsim.views`): fields an era lacks are left out.
to_dict!(MmFields { pid, start_brk, brk, map_count });
to_dict!(VmaFields: |self, py| {
    "vm_start" => self.vm_start,
    "vm_end" => self.vm_end,
    "vm_pgoff" => self.vm_pgoff,
    "prot" => prot_text(self.prot),
    "flags" => flag_names(self.flags),
    "vm_file" => self.vm_file,
    "vm_mm" => self.vm_mm,
    "pid" => self.pid,
    "anon_vma" => self.anon_vma,
    "chain_len" =>? self.chain_len,
});
to_dict!(AnonVmaFields: |self, py| {
    "root" =>? self.root,
    "parent" =>? self.parent,
    "refcount" =>? self.refcount,
    "degree" =>? self.degree,
    "num_children" =>? self.num_children,
    "num_active_vmas" =>? self.num_active_vmas,
    "entries" => self.entries,
    "index" => self.index,
});

/// A live page (`page_info`, the page view): `(anon_vma or mapping, index, mapcount, swap slot)`
/// and its `MADV_FREE` state `(lazyfree, dirty)`.
pub fn page_dict<'py>(
    py: Python<'py>,
    key: &str,
    page: (u64, u64, u32, Option<u32>),
    lazy: (bool, bool),
) -> PyResult<Bound<'py, PyDict>> {
    Ok(dict!(py; key => page.0, "index" => page.1, "mapcount" => page.2, "swap_slot" => page.3,
        "lazyfree" => lazy.0, "dirty" => lazy.1))
}

/// The lock-contention model's result; `cpus` as simulated.
pub fn contention_dict(py: Python<'_>, mut r: ContentionResult, cpus: u32) -> PyResult<Bound<'_, PyDict>> {
    let timeline = |f: fn(&(u64, u32, u32)) -> u64| r.timeline.iter().map(f).collect::<Vec<u64>>();
    let time = timeline(|x| x.0);
    let lock = |f: fn(&(u64, u64, u64, u64)) -> u64| r.locks.iter().map(f).collect::<Vec<u64>>();
    let d = dict!(py;
        "makespan" => r.makespan,
        "hold_time" => r.hold_time,
        "wait_time" => r.wait_time,
        "outside_time" => r.outside_time,
        "spinning" => r.spinning,
        "cpus" => cpus,
        "time" => time.into_pyarray(py),
        "holding" => r.timeline.iter().map(|x| x.1).collect::<Vec<u32>>().into_pyarray(py),
        "waiting" => r.timeline.iter().map(|x| x.2).collect::<Vec<u32>>().into_pyarray(py),
        "lock_id" => lock(|x| x.0).into_pyarray(py),
        "lock_acquisitions" => lock(|x| x.1).into_pyarray(py),
        "lock_hold" => lock(|x| x.2).into_pyarray(py),
        "lock_wait" => lock(|x| x.3).into_pyarray(py),
    );
    if let Some(sp) = r.spans.take() {
        dict!(@put d;
            "span_cpu" => sp.cpu.into_pyarray(py),
            "span_kind" => sp.kind.into_pyarray(py),
            "span_lock" => sp.lock.into_pyarray(py),
            "span_start" => sp.start.into_pyarray(py),
            "span_end" => sp.end.into_pyarray(py),
            "span_candidates" => sp.candidates.into_pyarray(py),
        );
    }
    Ok(d)
}

/// The event log as columns: `kind`, `p`, `pid` (-1: none), `addr` / `len` (`trace::NONE`,
/// 2**64 - 1: none), `alloc:<site>`, `alloc_<kind>`, `freed_<kind>`, `live_<kind>`, and the
/// walk columns (`walk_candidates` -1 when the operation walked nothing).
pub fn event_columns<'py>(py: Python<'py>, ev: &[Event]) -> PyResult<Bound<'py, PyDict>> {
    let col = |f: &dyn Fn(&Event) -> u64| ev.iter().map(f).collect::<Vec<u64>>().into_pyarray(py);
    let walk = |f: fn(&WalkEvent) -> i64| ev.iter().map(|e| e.walk.as_ref().map_or(-1, f)).collect::<Vec<i64>>();
    let d = dict!(py;
        "kind" => ev.iter().map(|e| e.kind).collect::<Vec<_>>(),
        "p" => ev.iter().map(|e| e.p).collect::<Vec<u32>>().into_pyarray(py),
        "pid" => ev.iter().map(|e| e.pid.map_or(-1, i64::from)).collect::<Vec<i64>>().into_pyarray(py),
        "addr" => col(&|e| e.addr.unwrap_or(trace::NONE)),
        "len" => col(&|e| e.len.unwrap_or(trace::NONE)),
    );
    for (i, site) in AllocSite::ALL.iter().enumerate() {
        dict!(@put d; format!("alloc:{}", site.name()) => col(&|e| e.site_allocs[i]));
    }
    for (i, k) in OBJECT_KINDS.iter().enumerate() {
        dict!(@put d; format!("alloc_{k}") => col(&|e| e.allocs[i]), format!("freed_{k}") => col(&|e| e.frees[i]));
    }
    for (i, k) in LIVE_KINDS.iter().enumerate() {
        dict!(@put d; format!("live_{k}") => col(&|e| e.live[i]));
    }
    dict!(@put d;
        "walk_candidates" => walk(|x| x.candidates as i64).into_pyarray(py),
        "walk_in_range" => walk(|x| x.in_range as i64).into_pyarray(py),
        "walk_mappings" => walk(|x| x.mappings as i64).into_pyarray(py),
        "walk_lock" => walk(|x| x.lock as i64).into_pyarray(py),
        "walk_shared" => walk(|x| x.shared as i64).into_pyarray(py),
    );
    Ok(d)
}
