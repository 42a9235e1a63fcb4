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

pub mod anon_vma;
pub mod arena;
pub mod check;
pub mod check_incr;
pub mod contention;
pub mod error;
pub mod events;
pub mod fault;
pub mod fuzz;
pub mod hostmem;
pub mod inspect;
pub mod interrupt;
pub mod itree;
pub mod mm;
pub mod mprotect;
pub mod mremap;
pub mod objects;
pub mod pagestore;
pub mod pgtable;
pub mod policy;
pub mod program;
pub mod render;
pub mod rmap;
pub mod sim;
pub mod snapshot;
pub mod swap;
pub mod trace;
pub mod vma;

pub use arena::Id;
pub use error::{Result, SimError};
pub use mprotect::Advice;
pub use objects::{PageId, PAGE_SIZE};
pub use policy::{Policy, ERAS};
pub use rmap::{ScanStats, TotalsSink, WalkMode, WalkResult, WalkSink, WalkTotals};
pub use sim::{Counts, Inject, Simulator, VmaInfo, MMAP_BASE, MMAP_MIN_ADDR, TASK_SIZE};
