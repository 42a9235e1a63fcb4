//! The host-memory guard: how much heap rmapsim's Rust code holds in this process, and
//! how much it may hold before operations fail with `OutOfMemory` instead of the process
//! aborting (Rust aborts on a failed allocation).
//!
//! [`CountingAlloc`] is the global allocator of the Python extension (it wraps the system
//! allocator and keeps a running total). The budget is fixed once per process from what
//! the host allows then: a quarter of the smallest of `MemAvailable`, the address-space limit
//! (`RLIMIT_AS`) less the process's current size, and the data limit (`RLIMIT_DATA`) less
//! its current data, plus the heap already held. Without the counting allocator (the
//! core's own tests) the total reads 0 and the guard never fires.
//!
//! This guard depends on the host by nature; the simulated machine's own limit, which is
//! deterministic, is the Simulator's `ram` (see `Simulator::set_ram_limit`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static HEAP: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that counts the bytes it has handed out.
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is
// only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            HEAP.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            HEAP.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        HEAP.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            HEAP.fetch_add(new, Ordering::Relaxed);
            HEAP.fetch_sub(l.size(), Ordering::Relaxed);
        }
        q
    }
}

/// Heap bytes currently held through [`CountingAlloc`] (0 if it is not installed).
#[inline]
pub fn heap_bytes() -> u64 {
    HEAP.load(Ordering::Relaxed) as u64
}

fn proc_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The soft limit of one `/proc/self/limits` row, in bytes (`None`: unlimited or unknown).
fn soft_limit(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The heap bytes rmapsim may hold in this process (see the module documentation);
/// `u64::MAX` where the host tells nothing.
pub fn budget() -> u64 {
    static BUDGET: OnceLock<u64> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mut room = proc_field("/proc/meminfo", "MemAvailable:").unwrap_or(u64::MAX);
        if let Some(lim) = soft_limit("Max address space") {
            room = room.min(lim.saturating_sub(proc_field("/proc/self/status", "VmSize:").unwrap_or(0)));
        }
        if let Some(lim) = soft_limit("Max data size") {
            room = room.min(lim.saturating_sub(proc_field("/proc/self/status", "VmData:").unwrap_or(0)));
        }
        if room == u64::MAX {
            return u64::MAX;
        }
        (room / 4).saturating_add(heap_bytes())
    })
}
