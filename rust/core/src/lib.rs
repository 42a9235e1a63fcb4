//! rmapsim-core: a simulation of the Linux kernel's anonymous reverse mapping — `mm`,
//! VMAs, `anon_vma`, `anon_vma_chain`, anonymous pages and page tables — under the kernel
//! designs since 2.6.33, with rmap-walk cost accounting and an invariant checker.
//!
//! Function names mirror the kernel's (`anon_vma_prepare`, `anon_vma_clone`,
//! `anon_vma_fork`, `unlink_anon_vmas`, `vma_merge`, `vma_adjust`, `page_move_anon_rmap`,
//! `page_referenced`, `rmap_walk`); each doc comment names the kernel function and era.
//!
//! ```
//! use rmapsim_core::Simulator;
//! # fn main() -> rmapsim_core::Result<()> {
//! let mut sim = Simulator::with_era("2.6.34", 0)?;
//! let parent = sim.spawn()? as i64;
//! let addr = sim.mmap(parent, 4 * 4096, None, 3)?;
//! sim.touch(parent, addr, 4 * 4096, true)?;
//! let child = sim.fork(parent)? as i64;
//! sim.touch(child, addr, 4 * 4096, true)?;
//! let stats = sim.rmap_walk(None)?;
//! // parent pages: 2 candidates (parent + child); child pages: 1.
//! assert_eq!(stats.vmas_visited.iter().sum::<u32>(), 4 * 2 + 4 * 1);
//! sim.check()?;
//! # Ok(())
//! # }
//! ```

// The module map (docs/design.md walks through it):
//   policy/   the eras as data: knobs and presets
//   state/    the simulator's state: objects, arenas, pages, page tables, accounting,
//             snapshots; no kernel rule lives here
//   index/    the anon_vma's index of VMAs (a list, or the interval tree of 3.7+)
//   mm/       the faithful kernel paths, one file per kernel file (or side of one)
//   fast/     shortcuts around the kernel paths, each beside its equivalence test
//   harness/  machinery around the model: checks, fuzzers, traces, rendering, contention
// Dependencies point down this list's reverse: harness → fast → mm → index/state → policy
// (mm calls fast at one documented dispatch point, see fast/mod.rs).
pub mod error;
pub mod fast;
pub mod harness;
pub mod index;
pub mod mm;
pub mod policy;
pub mod state;

pub use error::{Result, SimError};
pub use fast::totals::{TotalsSink, WalkTotals};
pub use mm::mprotect::Advice;
pub use mm::rmap::{ScanStats, WalkMode, WalkResult, WalkSink};
pub use policy::{Policy, ERAS};
pub use state::arena::Id;
pub use state::objects::{PageId, PAGE_SIZE};
pub use state::sim::{Counts, Inject, Simulator, VmaInfo, MMAP_BASE, MMAP_MIN_ADDR, TASK_SIZE};
