//! The faithful kernel paths, one file per kernel source file (or one side of it):
//!
//! | file          | kernel                                                        |
//! |---------------|---------------------------------------------------------------|
//! | `fork.rs`     | `kernel/fork.c` (`dup_mmap`), `exit_mmap`, exec                |
//! | `vma.rs`      | `mm/mmap.c`, later `mm/vma.c`: create, merge, split, unmap     |
//! | `vma_merge.rs`| `vma_merge` case 8 of 4.9+ (`mm/vma.c` merge-right): next kept |
//! | `mprotect.rs` | `mm/mprotect.c`, `mm/madvise.c`                               |
//! | `mremap.rs`   | `mm/mremap.c`                                                 |
//! | `madv_free.rs`| `mm/madvise.c` `MADV_FREE`, reclaim of lazy-free pages        |
//! | `madv_pageout.rs` | `mm/madvise.c` `MADV_PAGEOUT` (`madvise_pageout`)         |
//! | `mlock.rs`    | `mm/mlock.c`: mlock, mlock2, munlock, mlockall, munlockall     |
//! | `ksm.rs`      | `mm/ksm.c`'s `VM_MERGEABLE` side: `PR_SET_MEMORY_MERGE` (no     |
//! |               | KSM daemon: no page is ever merged)                             |
//! | `anon_vma.rs` | `mm/rmap.c`, write side: prepare, clone, fork, unlink          |
//! | `rmap.rs`     | `mm/rmap.c`, read side: `rmap_walk` and its callers; a page's   |
//! |               | mapping side: `page_add_anon_rmap`, `page_remove_rmap`          |
//! | `memory.rs`   | `mm/memory.c`: faults, zapping page-table entries; `mm/gup.c`'s |
//! |               | populate of a locked range                                      |
//! | `swap.rs`     | `mm/swapfile.c`, `mm/swap_state.c`                             |
//!
//! Calls between them go one way: each file calls only files after it in the order
//! `fork`, `mremap`, `mlock`, `mprotect`, `vma`, `ksm`, `memory`, `swap`, `rmap`,
//! `anon_vma` (`vma_merge` is a part of `vma` kept apart: the two call each other). State is
//! touched through `state`'s methods (`state/mod.rs` says what is still reached
//! directly, and why).

pub mod anon_vma;
pub mod fork;
pub mod ksm;
pub mod madv_free;
pub mod madv_pageout;
pub mod memory;
pub mod mlock;
pub mod mprotect;
pub mod mremap;
pub mod rmap;
pub mod swap;
pub mod vma;
pub mod vma_merge;
