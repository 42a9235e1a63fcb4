//! Shortcuts around the faithful kernel paths, each beside the test that proves it equal
//! to the path it shortcuts (a child `tests` module of its file):
//!
//! | file            | shortcut                                                     | proven against                     |
//! |-----------------|--------------------------------------------------------------|------------------------------------|
//! | `walk_cache.rs` | a batch's walks of one anon_vma share its enumerated candidates | `rmap_walk_one`, page by page     |
//! | `totals.rs`     | full-walk totals added up anon_vma by anon_vma                | the per-page walks' totals         |
//! | `batch.rs`      | walks of many pages (`rmap_walk`, `page_referenced`, batch `try_to_unmap`) on worker threads | the sequential walks |
//! | `cow.rs`        | runs of COW write faults as one batch                        | `handle_pte_fault` on every page   |
//!
//! The rule: `fast/` and `harness/` call the kernel paths in `mm/`; `mm/` never calls
//! `harness/`, and calls `fast/` at exactly one dispatch point:
//!
//! * `Simulator::touch_range` (`mm/memory.rs`), the loop of a touch's faults, tries
//!   [`Simulator::cow_copy_run`](crate::state::sim::Simulator) before each write fault
//!   and takes the kernel's `handle_pte_fault` for the page it stops at. The choice
//!   sits inside the loop because a run can end at any page (a private page, an armed
//!   allocation failure) and the loop must continue there with the faithful fault.
//!
//! The walks are inverted instead: the kernel's walk of one page
//! (`Simulator::rmap_walk_one`, in two steps `rmap_walk_start` / `rmap_walk_anon`)
//! knows nothing of caches; the batch entry points here (`rmap_walk`,
//! `page_referenced`, `walk_totals`, `try_to_unmap`) call those steps and choose the
//! cached candidates or the grouped totals themselves.

pub(crate) mod batch;
pub(crate) mod cow;
pub mod totals;
pub(crate) mod walk_cache;
