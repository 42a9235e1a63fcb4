//! Machinery around the model (not kernel rules): the invariant checks, the native fuzzer
//! and property-test programs, traces and event logs, pictures and inspection, and the
//! lock-contention model. The harness calls the kernel paths in `mm/`, never the reverse.

pub mod check;
pub mod check_incr;
pub mod contention;
pub mod events;
pub mod fuzz;
pub mod inspect;
pub(crate) mod opgen;
pub mod ops;
pub mod program;
pub mod render;
pub mod trace;
