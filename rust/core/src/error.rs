//! The one error type of the simulator. Each variant maps to one Python exception.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// Unknown or exited pid (Python: `NoSuchProcess`, a `LookupError`).
    NoSuchProcess(i64),
    /// Address not page aligned, outside the user address space, not mapped, or not
    /// accessible for the requested access (Python: `BadAddress`, a `ValueError`).
    BadAddress(String),
    /// Any other bad argument: length, prot string, era name, count (Python:
    /// `InvalidArgument`, a `ValueError`).
    InvalidArgument(String),
    /// A handle whose object was freed or never existed (Python: `StaleHandle`, an
    /// `InvalidArgument`).
    StaleHandle(String),
    /// An allocation failed (injected ENOMEM, or no free address range) and the
    /// operation unwound as the kernel's error path does (Python: `OutOfMemory`).
    OutOfMemory(String),
    /// `check()` found a broken invariant, or a walk met a dangling `page->mapping`
    /// (Python: `InvariantViolation`, an `AssertionError`).
    InvariantViolation(String),
    /// A kernel limit refused the operation as the kernel's `EAGAIN` does (no free pid
    /// below `pid_max`); nothing changed (Python: `TryAgain`, an `OSError`).
    TryAgain(String),
    /// The range is already mapped, as the kernel's `EEXIST` says (`MAP_FIXED_NOREPLACE`
    /// over an existing VMA); nothing changed (Python: `AlreadyMapped`, a
    /// `FileExistsError`).
    AlreadyMapped(String),
    /// The caller's interrupt poll asked the call to stop (see `interrupt`); the call
    /// stopped at a safe boundary (Python: the `KeyboardInterrupt` the poll raised).
    Interrupted,
}

impl SimError {
    /// The Python exception class name for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            SimError::NoSuchProcess(_) => "NoSuchProcess",
            SimError::BadAddress(_) => "BadAddress",
            SimError::InvalidArgument(_) => "InvalidArgument",
            SimError::StaleHandle(_) => "StaleHandle",
            SimError::OutOfMemory(_) => "OutOfMemory",
            SimError::InvariantViolation(_) => "InvariantViolation",
            SimError::TryAgain(_) => "TryAgain",
            SimError::AlreadyMapped(_) => "AlreadyMapped",
            SimError::Interrupted => "Interrupted",
        }
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::NoSuchProcess(pid) => write!(f, "no such process: pid {pid}"),
            SimError::BadAddress(m)
            | SimError::InvalidArgument(m)
            | SimError::StaleHandle(m)
            | SimError::OutOfMemory(m)
            | SimError::InvariantViolation(m)
            | SimError::TryAgain(m)
            | SimError::AlreadyMapped(m) => f.write_str(m),
            SimError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for SimError {}

/// Longest quoted input (in characters) an error message repeats.
pub const QUOTE_MAX: usize = 80;

/// `s` quoted as `{:?}` does, cut to [`QUOTE_MAX`] characters with the full length noted,
/// so an error about a huge token stays one short line.
pub fn quote(s: &str) -> String {
    let n = s.chars().count();
    if n <= QUOTE_MAX {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(QUOTE_MAX - 3).collect();
    format!("{head:?}... ({n} chars)")
}

pub type Result<T> = std::result::Result<T, SimError>;
