//! The faithful kernel paths, one file per kernel source file (or one side of it):
//!
//! | file          | kernel                                                        |
//! |---------------|---------------------------------------------------------------|
//! | `fork.rs`     | `kernel/fork.c` (`dup_mmap`), `exit_mmap`, exec                |
//! | `vma.rs`      | `mm/mmap.c`, later `mm/vma.c`: create, merge, split, unmap     |
//! | `mprotect.rs` | `mm/mprotect.c`, `mm/madvise.c`, `mm/mlock.c`                  |
//! | `mremap.rs`   | `mm/mremap.c`                                                 |
//! | `anon_vma.rs` | `mm/rmap.c`, write side: prepare, clone, fork, unlink          |
//! | `rmap.rs`     | `mm/rmap.c`, read side: `rmap_walk` and its callers            |
//! | `memory.rs`   | `mm/memory.c`: faults                                         |
//! | `swap.rs`     | `mm/swapfile.c`, `mm/swap_state.c`                             |

pub mod anon_vma;
pub mod fork;
pub mod memory;
pub mod mprotect;
pub mod mremap;
pub mod rmap;
pub mod swap;
pub mod vma;
