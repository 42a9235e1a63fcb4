//! The simulator's state: the [`Simulator`] struct, its construction, the bookkeeping of
//! the operation in progress (write-side counters, merge sites) and the object lookups
//! the kernel paths use. Allocation accounting is in `alloc.rs`, validation and queries
//! in `query.rs`, pages and page-table entries in `pages.rs`, swap slots in
//! `swapmap.rs`; the kernel paths themselves are `impl Simulator` blocks in `crate::mm`,
//! one file per kernel file.

use std::collections::BTreeMap;

use crate::error::{Result, SimError};
use crate::policy::Policy;
pub use crate::state::alloc::{AllocSite, Inject};
use crate::state::arena::Arena;
use crate::state::objects::*;
use crate::state::pagestore::PageStore;
pub use crate::state::query::{Counts, KindUsage, VmaInfo};

/// Lowest address a mapping may start at (`mmap_min_addr`, 64 KiB by default).
pub const MMAP_MIN_ADDR: u64 = 0x1_0000;
/// End of the user address space on x86-64 with 4-level paging (`TASK_SIZE`).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// `pid_max`'s default: `PID_MAX_LIMIT` on 64-bit kernels, the value systemd sets.
pub const PID_MAX_DEFAULT: u32 = 4 * 1024 * 1024;
/// The range `pid_max` may be set to (`pid_max_min` = `RESERVED_PIDS` + 1, `PID_MAX_LIMIT`).
pub const PID_MAX_MIN: u32 = RESERVED_PIDS + 1;
/// Pids below this are skipped once allocation has wrapped (`RESERVED_PIDS`).
pub const RESERVED_PIDS: u32 = 300;
/// The simulated machine's RAM by default: 1 TiB, far above what a study needs (the
/// 10,000-process fork storm uses 40 GiB) and the same on every host, so results do not
/// depend on the machine running them.
pub const RAM_DEFAULT: u64 = 1 << 40;
/// `NR_CPUS` of a distribution kernel (`CONFIG_NR_CPUS=8192`): the most CPUs
/// `contention` simulates.
pub const NR_CPUS: u32 = 8192;
/// The most threads a batch walk may use.
pub const MAX_THREADS: usize = 1024;

/// Where top-down `mmap(addr=None)` searches start: a fixed, documented `mmap_base`
/// (the kernel randomises it; the simulator must be deterministic).
pub const MMAP_BASE: u64 = 0x7f00_0000_0000;

/// Write-side work of the operations of one kind (the cost of building and
/// tearing down the rmap, per era).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Operations of this kind.
    pub ops: u64,
    pub anon_vma_alloc: u64,
    pub anon_vma_free: u64,
    pub avc_alloc: u64,
    pub avc_free: u64,
    pub vma_alloc: u64,
    pub vma_free: u64,
    pub page_alloc: u64,
    pub page_free: u64,
    /// Entries added to / removed from anon_vma lists or trees.
    pub index_insert: u64,
    pub index_remove: u64,
    /// Chain entries re-keyed in interval trees because their VMA's range changed.
    pub tree_rekey: u64,
    /// Write-side anon_vma lock acquisitions (per anon_vma or per root, per era).
    pub lock_acquire: u64,
}

impl WriteStats {
    pub const FIELDS: [&'static str; 13] = [
        "ops",
        "anon_vma_alloc",
        "anon_vma_free",
        "avc_alloc",
        "avc_free",
        "vma_alloc",
        "vma_free",
        "page_alloc",
        "page_free",
        "index_insert",
        "index_remove",
        "tree_rekey",
        "lock_acquire",
    ];
    pub fn values(&self) -> [u64; 13] {
        [
            self.ops,
            self.anon_vma_alloc,
            self.anon_vma_free,
            self.avc_alloc,
            self.avc_free,
            self.vma_alloc,
            self.vma_free,
            self.page_alloc,
            self.page_free,
            self.index_insert,
            self.index_remove,
            self.tree_rekey,
            self.lock_acquire,
        ]
    }
    fn add(&mut self, o: &WriteStats) {
        self.ops += o.ops;
        self.anon_vma_alloc += o.anon_vma_alloc;
        self.anon_vma_free += o.anon_vma_free;
        self.avc_alloc += o.avc_alloc;
        self.avc_free += o.avc_free;
        self.vma_alloc += o.vma_alloc;
        self.vma_free += o.vma_free;
        self.page_alloc += o.page_alloc;
        self.page_free += o.page_free;
        self.index_insert += o.index_insert;
        self.index_remove += o.index_remove;
        self.tree_rekey += o.tree_rekey;
        self.lock_acquire += o.lock_acquire;
    }
}

/// A live process.
#[derive(Clone, Copy, Debug)]
pub struct Process {
    pub mm: MmId,
    pub parent: u32,
}

/// The simulated machine: processes, their address spaces and the anon rmap of one era.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub struct Simulator {
    pub(crate) policy: Policy,
    pub(crate) seed: u64,
    /// Number of the operation in progress (or last completed); 1-based.
    pub(crate) op: u64,
    pub(crate) op_name: &'static str,
    pub(crate) procs: BTreeMap<u32, Process>,
    pub(crate) next_pid: u32,
    /// `/proc/sys/kernel/pid_max`: pids are below it.
    pub(crate) pid_max: u32,
    /// Simulated RAM in bytes: anon pages (4 KiB each) and the kernel objects at the
    /// era's struct sizes must fit.
    pub(in crate::state) ram: u64,
    /// Allocations that pass every check of `may_alloc` unchecked (0: check the next).
    pub(crate) alloc_fast: u64,
    /// The host-memory guard's budget (`hostmem::budget`), fixed at creation.
    pub(crate) host_budget: u64,
    pub(crate) mms: Arena<Mm>,
    pub(crate) vmas: Arena<Vma>,
    pub(crate) avs: Arena<AnonVma>,
    pub(crate) avcs: Arena<Avc>,
    pub(crate) pages: PageStore,
    pub(crate) allocations: u64,
    /// Allocation attempts per site (indexed like `AllocSite::ALL`).
    pub(crate) site_allocs: [u64; 15],
    pub(in crate::state) inject: Inject,
    pub(in crate::state) rng: u64,
    /// Populated PTEs over every page table.
    pub(in crate::state) ptes: u64,
    /// Where the last operation merged VMAs (mm, an address inside the result), for the
    /// merge part of invariant 7; cleared when the next operation starts.
    pub(in crate::state) merge_sites: Vec<(MmId, u64, u64, bool)>,
    /// An allocation failure inside `vma_merge` was absorbed during this operation (the
    /// kernel then leaves mergeable neighbours unmerged).
    pub(in crate::state) merge_failed: bool,
    /// Swap slots (`swap_map` + swap cache), indexed by slot number.
    pub(crate) swap: crate::state::swapmap::SwapMap,
    /// Interval-tree insertion sequence (tie-break of equal keys).
    pub(in crate::state) tree_seq: u64,
    /// Explicit write-side counters of the operation in progress.
    pub(in crate::state) ws_cur: WriteStats,
    /// Arena (alloc, free) counters when the operation in progress started.
    pub(in crate::state) ws_snap: [(u64, u64); 4],
    /// Totals per operation kind.
    pub(in crate::state) ws_totals: BTreeMap<&'static str, WriteStats>,
    /// The first kernel warning the model hit (`VM_WARN_ON` in `unlink_anon_vmas`: a
    /// counter underflow, an emptied anon_vma still counting VMAs or children), with the
    /// operation; `check()` reports it. A log line, not state: snapshots do not keep it.
    pub(crate) kernel_warning: Option<String>,
}

impl Simulator {
    pub fn new(policy: Policy, seed: u64) -> Simulator {
        Simulator {
            policy,
            seed,
            op: 0,
            op_name: "init",
            procs: BTreeMap::new(),
            next_pid: 1,
            pid_max: PID_MAX_DEFAULT,
            ram: RAM_DEFAULT,
            alloc_fast: 0,
            host_budget: crate::state::hostmem::budget(),
            mms: Arena::default(),
            vmas: Arena::default(),
            avs: Arena::default(),
            avcs: Arena::default(),
            pages: PageStore::default(),
            allocations: 0,
            site_allocs: [0; 15],
            inject: Inject::Off,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            ptes: 0,
            merge_sites: Vec::new(),
            merge_failed: false,
            swap: Default::default(),
            tree_seq: 0,
            ws_cur: WriteStats::default(),
            ws_snap: [(0, 0); 4],
            ws_totals: BTreeMap::new(),
            kernel_warning: None,
        }
    }

    /// Record a kernel warning (`VM_WARN_ON`) the model just hit; the first one is kept.
    pub(crate) fn kernel_warn(&mut self, what: String) {
        if self.kernel_warning.is_none() {
            self.kernel_warning = Some(format!("operation #{} ({}): {what}", self.op, self.op_name));
        }
    }

    /// Build from a policy, refusing inconsistent knob combinations.
    pub fn with_policy(policy: Policy, seed: u64) -> Result<Simulator> {
        policy.validate().map_err(|m| SimError::InvalidArgument(format!("policy {}: {m}", policy.name)))?;
        Ok(Simulator::new(policy, seed))
    }

    /// A simulator for an era spec: a preset name, or a preset with knobs changed
    /// (`6.0+fork_reuse=never`, see [`Policy::from_spec`]).
    pub fn with_era(era: &str, seed: u64) -> Result<Simulator> {
        Policy::from_spec(era).map(|p| Simulator::new(p, seed)).map_err(SimError::InvalidArgument)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Operations started so far.
    pub fn op_count(&self) -> u64 {
        self.op
    }

    pub(crate) fn arena_counts(&self) -> [(u64, u64); 4] {
        [
            self.avs.alloc_free_counts(),
            self.avcs.alloc_free_counts(),
            self.vmas.alloc_free_counts(),
            self.pages.alloc_free_counts(),
        ]
    }

    /// Fold the operation in progress into the per-kind totals.
    fn flush_write_stats(&mut self) {
        if self.op == 0 {
            return;
        }
        let now = self.arena_counts();
        let d = |i: usize| (now[i].0 - self.ws_snap[i].0, now[i].1 - self.ws_snap[i].1);
        let mut w = std::mem::take(&mut self.ws_cur);
        (w.anon_vma_alloc, w.anon_vma_free) = d(0);
        (w.avc_alloc, w.avc_free) = d(1);
        (w.vma_alloc, w.vma_free) = d(2);
        (w.page_alloc, w.page_free) = d(3);
        self.ws_totals.entry(self.op_name).or_default().add(&w);
        self.ws_snap = now;
    }

    /// Write-side work so far, per operation kind (`fork`, `mmap`, `exit`, …).
    pub fn write_stats(&mut self) -> Vec<(&'static str, WriteStats)> {
        self.flush_write_stats();
        self.ws_totals.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Record that this operation merged VMAs of `mm` into one covering `[start, end)`
    /// (`new_range`: a range mapped anew, not an mprotect or madvise of existing VMAs),
    /// for the merge part of invariant 7.
    pub(crate) fn note_merge(&mut self, mm: MmId, start: u64, end: u64, new_range: bool) {
        self.merge_sites.push((mm, start, end, new_range));
    }

    /// Forget the merge sites of `mm` that meet or touch `[start, end)`: that VMA changed
    /// after the merge attempt, in this same operation (its flags: 6.4–6.15's
    /// `ksm_add_vma`; its anon_vma: the populate of an mlock), so invariant 7, which
    /// compares the VMAs as they are now, cannot judge that attempt.
    pub(crate) fn forget_merge_sites(&mut self, mm: MmId, start: u64, end: u64) {
        self.merge_sites.retain(|&(m, s, e, _)| !(m == mm && s <= end && start <= e));
    }

    /// Record that an allocation failure inside `vma_merge` was absorbed (the kernel then
    /// leaves mergeable neighbours unmerged).
    pub(crate) fn note_merge_failed(&mut self) {
        self.merge_failed = true;
    }

    /// Did a `vma_merge` of this operation absorb an allocation failure?
    pub(crate) fn merge_failed(&self) -> bool {
        self.merge_failed
    }

    /// Where this operation merged VMAs: `(mm, start, end, new_range)`.
    pub(crate) fn merge_sites(&self) -> &[(MmId, u64, u64, bool)] {
        &self.merge_sites
    }

    /// Count one write-side anon_vma lock acquisition of this operation.
    #[inline]
    pub(crate) fn count_lock_acquire(&mut self) {
        self.ws_cur.lock_acquire += 1;
    }

    /// Count one entry added to an anon_vma's index.
    #[inline]
    pub(crate) fn count_index_insert(&mut self) {
        self.ws_cur.index_insert += 1;
    }

    /// Count one entry removed from an anon_vma's index.
    #[inline]
    pub(crate) fn count_index_remove(&mut self) {
        self.ws_cur.index_remove += 1;
    }

    /// Count one chain entry re-keyed in an interval tree.
    #[inline]
    pub(crate) fn count_tree_rekey(&mut self) {
        self.ws_cur.tree_rekey += 1;
    }

    /// The next interval-tree insertion number (the tie-break of equal keys).
    pub(crate) fn next_tree_seq(&mut self) -> u64 {
        self.tree_seq += 1;
        self.tree_seq
    }

    pub(crate) fn begin_op(&mut self, name: &'static str) {
        debug_assert!(crate::state::snapshot::OP_NAMES.contains(&name), "add {name:?} to snapshot::OP_NAMES");
        self.flush_write_stats();
        self.ws_cur.ops = 1;
        self.op += 1;
        self.op_name = name;
        self.merge_sites.clear();
        self.merge_failed = false;
    }

    // ----------------------------------------------------------------------------------
    // Lookups
    // ----------------------------------------------------------------------------------

    pub(crate) fn proc_mm(&self, pid: i64) -> Result<MmId> {
        u32::try_from(pid).ok().and_then(|p| self.procs.get(&p)).map(|p| p.mm).ok_or(SimError::NoSuchProcess(pid))
    }

    /// Live pids in increasing order.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.keys().copied().collect()
    }

    pub fn parent_of(&self, pid: i64) -> Result<u32> {
        self.proc_mm(pid)?;
        Ok(self.procs[&(pid as u32)].parent)
    }

    #[inline]
    pub(crate) fn vma(&self, id: VmaId) -> &Vma {
        self.vmas.get(id).expect("live vma") // ok: VMA handles in live structures are live (check() verifies)
    }
    #[inline]
    pub(crate) fn vma_mut(&mut self, id: VmaId) -> &mut Vma {
        self.vmas.get_mut(id).expect("live vma") // ok: as above
    }
    #[inline]
    pub(crate) fn mm(&self, id: MmId) -> &Mm {
        self.mms.get(id).expect("live mm") // ok: mm handles come from the live process table
    }
    #[inline]
    pub(crate) fn mm_mut(&mut self, id: MmId) -> &mut Mm {
        self.mms.get_mut(id).expect("live mm") // ok: as above
    }

    /// The VMA containing `addr`, if any.
    pub(crate) fn find_vma(&self, mm: MmId, addr: u64) -> Option<VmaId> {
        let (_, &v) = self.mm(mm).vmas.range(..=addr).next_back()?;
        (self.vma(v).end > addr).then_some(v)
    }
    /// `find_vma`: the first VMA ending above `addr`.
    pub(crate) fn find_vma_above(&self, mm: MmId, addr: u64) -> Option<VmaId> {
        if let Some(v) = self.find_vma(mm, addr) {
            return Some(v);
        }
        self.mm(mm).vmas.range(addr..).next().map(|(_, &v)| v)
    }
    pub(crate) fn vma_next(&self, v: VmaId) -> Option<VmaId> {
        let vma = self.vma(v);
        self.mm(vma.mm).vmas.range(vma.start + 1..).next().map(|(_, &n)| n)
    }
    pub(crate) fn vma_prev(&self, v: VmaId) -> Option<VmaId> {
        let vma = self.vma(v);
        self.mm(vma.mm).vmas.range(..vma.start).next_back().map(|(_, &n)| n)
    }
    /// VMAs of `mm` intersecting `[start, end)`, in address order.
    pub(crate) fn vmas_in(&self, mm: MmId, start: u64, end: u64) -> Vec<VmaId> {
        let mut out = Vec::new();
        if let Some(v) = self.find_vma(mm, start) {
            out.push(v);
        }
        for (_, &v) in self.mm(mm).vmas.range(start..end) {
            if out.last() != Some(&v) {
                out.push(v);
            }
        }
        out
    }
}
