//! The simulator's state and the bookkeeping around it: the kernel objects and their
//! arenas, the page store, page tables, allocation accounting and failure injection, the
//! interrupt flag, and snapshots of the whole. No kernel rule lives here; `mm/` holds them.
//!
//! | file           | holds                                                             |
//! |----------------|-------------------------------------------------------------------|
//! | `sim.rs`       | the `Simulator` struct, the operation in progress, object lookups |
//! | `alloc.rs`     | allocation sites, `may_alloc`, failure injection, the RAM limit   |
//! | `query.rs`     | argument validation, limits, read-only queries                    |
//! | `pages.rs`     | page lookups and lifetime, `set_pte` and the populated-entry count |
//! | `swapmap.rs`   | swap slots: counts, swap-cache entries, free slots                |
//! | `objects.rs`   | `mm_struct`, `vm_area_struct`, `anon_vma`, `anon_vma_chain`, PTEs  |
//! | `arena.rs`, `pagestore.rs`, `pgtable.rs` | the containers                          |
//! | `snapshot.rs`, `hostmem.rs`, `interrupt.rs` | snapshots, the host guard, interrupts |
//!
//! # How the kernel paths touch state
//!
//! Accounting and counters are private to `state` (`pub(in crate::state)`) and changed
//! through named methods: the populated-entry count (`set_pte`, `ptes_added`,
//! `ptes_removed`), the write-side counters (`count_lock_acquire`, `count_index_insert`,
//! …), merge sites (`note_merge`, `note_merge_failed`), the interval-tree insertion
//! number (`next_tree_seq`), injection, the random stream and the RAM limit. Swap slots
//! are a [`swapmap::SwapMap`], which anyone may read as a slice and only its methods
//! change.
//!
//! What is still reached directly, and why:
//! * the arenas (`mms`, `vmas`, `avs`, `avcs`) and the page store (`pages`) are
//!   `pub(crate)`: the kernel paths follow and rewrite the object graph itself (a VMA's
//!   range and chain, an anon_vma's counters), which is what they model; an anon_vma's
//!   index is changed only through [`crate::index::AnonIndex`];
//! * `policy`, `op`, `op_name`, `seed`: read by every path (`op` names the freeing
//!   operation in use-after-free reports);
//! * `procs`, `next_pid`, `pid_max`: the pid table, owned by `mm/fork.rs` (`kernel/fork.c`
//!   and `kernel/pid.c` in one);
//! * `allocations`, `site_allocs`, `alloc_fast`: the COW fast path (`cow_copy_run`)
//!   charges a run of allocations at once; it is moving to `fast/` and should then call
//!   a batch form of `may_alloc` here;
//! * `host_budget`: the contention harness checks spans against it and its test lowers it.

pub mod alloc;
pub mod arena;
pub mod hostmem;
pub mod interrupt;
pub mod objects;
pub mod pages;
pub mod pagestore;
pub mod pgtable;
pub mod query;
pub mod sim;
pub mod snapshot;
pub mod swapmap;
