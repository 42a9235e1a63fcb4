//! The simulator's state and the bookkeeping around it: the kernel objects and their
//! arenas, the page store, page tables, allocation accounting and failure injection, the
//! interrupt flag, and snapshots of the whole. No kernel rule lives here; `mm/` holds them.

pub mod arena;
pub mod hostmem;
pub mod interrupt;
pub mod objects;
pub mod pages;
pub mod pagestore;
pub mod pgtable;
pub mod sim;
pub mod snapshot;
