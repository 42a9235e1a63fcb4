//! The simulator state, allocation accounting and failure injection, argument
//! validation, and the read-only queries (`counts`, `memory`, `vmas`, `page_at`).
//!
//! The kernel paths live in sibling modules, each an `impl Simulator` block named after
//! the kernel file it models: `mm` (fork.c / exit / exec), `vma` (mmap.c), `anon_vma`
//! (rmap.c's linking half), `fault` (memory.c), `rmap` (rmap.c's walking half), `check`.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Result, SimError};
use crate::policy::Policy;
use crate::state::arena::Arena;
use crate::state::objects::*;
use crate::state::pagestore::PageStore;

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

/// Every allocation site, named by the slab cache and the kernel function that
/// allocates from it. `may_alloc` is called at each, in the order the kernel allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AllocSite {
    /// `mm_struct` for `spawn` (`mm_alloc`).
    MmSpawn,
    /// `mm_struct` in `dup_mm` (fork).
    MmFork,
    /// `mm_struct` in `bprm_mm_init` (exec).
    MmExec,
    /// `vm_area_struct` in `mmap_region`.
    VmaMmap,
    /// `vm_area_struct` in `__split_vma`.
    VmaSplit,
    /// `vm_area_struct` in `dup_mmap`.
    VmaFork,
    /// `vm_area_struct` in `copy_vma` (mremap move).
    VmaCopy,
    /// `anon_vma` in `anon_vma_prepare`.
    AnonVmaPrepare,
    /// `anon_vma` in `anon_vma_fork`.
    AnonVmaFork,
    /// `anon_vma_chain` in `anon_vma_prepare`.
    AvcPrepare,
    /// `anon_vma_chain` in `anon_vma_clone`.
    AvcClone,
    /// `anon_vma_chain` in `anon_vma_fork`.
    AvcFork,
    /// page in `do_anonymous_page`.
    PageAnonymous,
    /// page in `do_wp_page` (COW copy).
    PageCow,
    /// page in `do_swap_page` (`read_swap_cache_async`).
    PageSwapin,
}

impl AllocSite {
    pub const ALL: [AllocSite; 15] = [
        AllocSite::MmSpawn,
        AllocSite::MmFork,
        AllocSite::MmExec,
        AllocSite::VmaMmap,
        AllocSite::VmaSplit,
        AllocSite::VmaFork,
        AllocSite::VmaCopy,
        AllocSite::AnonVmaPrepare,
        AllocSite::AnonVmaFork,
        AllocSite::AvcPrepare,
        AllocSite::AvcClone,
        AllocSite::AvcFork,
        AllocSite::PageAnonymous,
        AllocSite::PageCow,
        AllocSite::PageSwapin,
    ];

    /// `"<slab cache>@<kernel function>"`.
    pub fn name(self) -> &'static str {
        match self {
            AllocSite::MmSpawn => "mm_struct@mm_alloc",
            AllocSite::MmFork => "mm_struct@dup_mm",
            AllocSite::MmExec => "mm_struct@bprm_mm_init",
            AllocSite::VmaMmap => "vm_area_struct@mmap_region",
            AllocSite::VmaSplit => "vm_area_struct@__split_vma",
            AllocSite::VmaFork => "vm_area_struct@dup_mmap",
            AllocSite::VmaCopy => "vm_area_struct@copy_vma",
            AllocSite::AnonVmaPrepare => "anon_vma@anon_vma_prepare",
            AllocSite::AnonVmaFork => "anon_vma@anon_vma_fork",
            AllocSite::AvcPrepare => "anon_vma_chain@anon_vma_prepare",
            AllocSite::AvcClone => "anon_vma_chain@anon_vma_clone",
            AllocSite::AvcFork => "anon_vma_chain@anon_vma_fork",
            AllocSite::PageAnonymous => "page@do_anonymous_page",
            AllocSite::PageCow => "page@do_wp_page",
            AllocSite::PageSwapin => "page@do_swap_page",
        }
    }
}

impl fmt::Display for AllocSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Allocation-failure injection (SPEC §5a).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inject {
    Off,
    /// Fail the allocation this many attempts from now (1 = the next one).
    Nth(u64),
    /// Fail each allocation with this probability, from the seeded generator.
    Rate(f64),
}

/// Write-side work of the operations of one kind (SPEC §4's cost of building and
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

/// Object counts, as `counts()` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub mm: u64,
    pub vma: u64,
    pub anon_vma: u64,
    pub anon_vma_chain: u64,
    pub page: u64,
    /// Populated page-table entries (anon pages, zero-page mappings, swap entries).
    pub pte: u64,
    /// Swap slots in use.
    pub swap_slot: u64,
    /// Pages in the swap cache.
    pub swap_cache: u64,
}

/// Simulator memory of one object kind, as `memory_usage()` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindUsage {
    pub kind: &'static str,
    /// Live objects (for `pte`: populated entries).
    pub live: u64,
    /// Bytes of one arena slot (for `pte`: one entry).
    pub slot_bytes: u64,
    /// Slots in use, live or on the free list (for `pte`: entries of the page-table pages
    /// allocated, 512 per page, populated or not).
    pub slots: u64,
    /// `slots * slot_bytes` plus the heap the objects own (chains, lists), by length.
    pub bytes: u64,
    /// The same by allocated capacity (what the allocator holds).
    pub capacity_bytes: u64,
}

/// One VMA as `vmas(pid)` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmaInfo {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub prot: u8,
    /// madvise flag bits (`vmflags`), without the file identity.
    pub flags: u32,
    /// `vm_file` identity, `None` for anonymous memory.
    pub file: Option<u32>,
    pub anon_vma: Option<u64>,
    pub chain_len: usize,
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
    pub(crate) ram: u64,
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
    pub(crate) inject: Inject,
    pub(crate) rng: u64,
    /// Populated PTEs over every page table.
    pub(crate) ptes: u64,
    /// Where the last operation merged VMAs (mm, an address inside the result), for the
    /// merge part of invariant 7; cleared when the next operation starts.
    pub(crate) merge_sites: Vec<(MmId, u64, u64, bool)>,
    /// An allocation failure inside `vma_merge` was absorbed during this operation (the
    /// kernel then leaves mergeable neighbours unmerged).
    pub(crate) merge_failed: bool,
    /// Swap slots (`swap_map` + swap cache), indexed by slot number.
    pub(crate) swap: Vec<SwapSlot>,
    pub(crate) swap_free: Vec<u32>,
    pub(crate) swap_used: u64,
    /// Interval-tree insertion sequence (tie-break of equal keys).
    pub(in crate::state) tree_seq: u64,
    /// Explicit write-side counters of the operation in progress.
    pub(crate) ws_cur: WriteStats,
    /// Arena (alloc, free) counters when the operation in progress started.
    pub(crate) ws_snap: [(u64, u64); 4],
    /// Totals per operation kind.
    pub(crate) ws_totals: BTreeMap<&'static str, WriteStats>,
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
            swap: Vec::new(),
            swap_free: Vec::new(),
            swap_used: 0,
            tree_seq: 0,
            ws_cur: WriteStats::default(),
            ws_snap: [(0, 0); 4],
            ws_totals: BTreeMap::new(),
        }
    }

    /// Build from a preset name.
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
    // Allocation accounting and failure injection
    // ----------------------------------------------------------------------------------

    /// Running count of allocation attempts (every slab allocation the kernel would make).
    pub fn allocations(&self) -> u64 {
        self.allocations
    }

    /// Allocation attempts so far at each site, by `AllocSite::name`.
    pub fn allocation_sites(&self) -> Vec<(&'static str, u64)> {
        AllocSite::ALL.iter().map(|&s| (s.name(), self.site_allocs[s as usize])).collect()
    }

    /// Set failure injection. `Nth(k)` fails the k-th allocation from now (k ≥ 1).
    pub fn inject_enomem(&mut self, inject: Inject) -> Result<()> {
        match inject {
            Inject::Nth(0) => {
                return Err(SimError::InvalidArgument("nth must be >= 1 (1 = the next allocation), got 0".into()))
            }
            Inject::Rate(p) if !(0.0..=1.0).contains(&p) || p.is_nan() => {
                return Err(SimError::InvalidArgument(format!("rate must be within [0, 1], got {p}")))
            }
            _ => {}
        }
        self.inject = inject;
        self.alloc_fast = 0;
        Ok(())
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: tiny, seedable, identical on every platform.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `pid_max` (default [`PID_MAX_DEFAULT`]).
    pub fn pid_max(&self) -> u32 {
        self.pid_max
    }

    /// Set `pid_max` (`/proc/sys/kernel/pid_max`): from [`PID_MAX_MIN`] to
    /// [`PID_MAX_DEFAULT`], as the kernel's sysctl accepts. Live pids at or above it stay
    /// (the kernel does not kill them); new pids are below it.
    pub fn set_pid_max(&mut self, pid_max: u64) -> Result<()> {
        if !(PID_MAX_MIN as u64..=PID_MAX_DEFAULT as u64).contains(&pid_max) {
            return Err(SimError::InvalidArgument(format!(
                "pid_max must be from {PID_MAX_MIN} to {PID_MAX_DEFAULT}, got {pid_max}"
            )));
        }
        self.pid_max = pid_max as u32;
        Ok(())
    }

    /// Simulated RAM in bytes (default [`RAM_DEFAULT`]).
    pub fn ram_limit(&self) -> u64 {
        self.ram
    }

    /// Set the simulated RAM: an allocation that would take anon pages (4 KiB each) plus
    /// vm_area_struct, anon_vma and anon_vma_chain objects (at the era's sizes) beyond it
    /// fails as an ENOMEM at that allocation site, with the kernel's error path.
    pub fn set_ram_limit(&mut self, bytes: u64) -> Result<()> {
        if bytes < PAGE_SIZE {
            return Err(SimError::InvalidArgument(format!("ram must be at least one page (4096 bytes), got {bytes}")));
        }
        self.ram = bytes;
        self.alloc_fast = 0;
        Ok(())
    }

    /// Simulated RAM in use: anon pages and the kernel objects at the era's sizes.
    #[inline]
    pub fn ram_used(&self) -> u64 {
        let (v, a, c) = self.memory();
        (self.pages.len() as u64 * PAGE_SIZE).saturating_add(v + a + c)
    }

    /// Simulated bytes one allocation at `site` takes.
    #[inline]
    fn site_bytes(&self, site: AllocSite) -> u64 {
        let s = &self.policy.sizes;
        match site {
            AllocSite::MmSpawn | AllocSite::MmFork | AllocSite::MmExec => 0,
            AllocSite::VmaMmap | AllocSite::VmaSplit | AllocSite::VmaFork | AllocSite::VmaCopy => {
                s.vm_area_struct as u64
            }
            AllocSite::AnonVmaPrepare | AllocSite::AnonVmaFork => s.anon_vma as u64,
            AllocSite::AvcPrepare | AllocSite::AvcClone | AllocSite::AvcFork => s.anon_vma_chain as u64,
            AllocSite::PageAnonymous | AllocSite::PageCow | AllocSite::PageSwapin => PAGE_SIZE,
        }
    }

    /// Allocations that may pass without any check (see [`Simulator::may_alloc`]).
    const FAST_ALLOCS: u64 = 64;

    /// `kmalloc`/`alloc_page` at `site` (every allocation the kernel could fail with
    /// ENOMEM): counts the attempt and fails it when injection says so, when the simulated
    /// RAM is full, or when the host has no room for it.
    ///
    /// Most calls take the first branch: `alloc_fast` allocations are known to pass
    /// every check (no injection, simulated RAM at least that many pages away, the host
    /// guard read less than 64 allocations ago, room reserved in every container).
    #[inline(always)]
    pub(crate) fn may_alloc(&mut self, site: AllocSite) -> Result<()> {
        self.allocations += 1;
        self.site_allocs[site as usize] += 1;
        if self.alloc_fast > 0 {
            self.alloc_fast -= 1;
            return Ok(());
        }
        self.may_alloc_checked(site)
    }

    /// [`Simulator::may_alloc`]'s checks, then how many allocations may pass unchecked.
    #[cold]
    #[inline(never)]
    fn may_alloc_checked(&mut self, site: AllocSite) -> Result<()> {
        let (need, used) = (self.site_bytes(site), self.ram_used());
        if need > 0 && used.saturating_add(need) > self.ram {
            return Err(SimError::OutOfMemory(format!(
                "allocation #{} ({site}) failed during op #{} ({}): simulated RAM is full ({used} of {} bytes in use)",
                self.allocations, self.op, self.op_name, self.ram
            )));
        }
        let heap = crate::state::hostmem::heap_bytes();
        if heap > self.host_budget {
            return Err(SimError::OutOfMemory(format!(
                "allocation #{} ({site}) refused during op #{} ({}): rmapsim holds {heap} bytes of host memory, \
                 beyond this process's budget of {} bytes (a quarter of what the host allowed when it started, leaving room for check() and the rest of the process)",
                self.allocations, self.op, self.op_name, self.host_budget
            )));
        }
        // Room in every container for this allocation and the unchecked ones after it.
        let n = Self::FAST_ALLOCS as usize + 1;
        let room = (|| -> std::result::Result<usize, std::collections::TryReserveError> {
            Ok(self
                .mms
                .try_reserve_room(n)?
                .min(self.vmas.try_reserve_room(n)?)
                .min(self.avs.try_reserve_room(n)?)
                .min(self.avcs.try_reserve_room(n)?)
                .min(self.pages.try_reserve_room(n)?))
        })()
        .map_err(|e| {
            SimError::OutOfMemory(format!(
                "allocation #{} ({site}) failed during op #{} ({}): the host is out of memory ({e})",
                self.allocations, self.op, self.op_name
            ))
        })?;
        let fail = match self.inject {
            Inject::Off => false,
            Inject::Nth(k) => {
                if k <= 1 {
                    self.inject = Inject::Off;
                    true
                } else {
                    self.inject = Inject::Nth(k - 1);
                    false
                }
            }
            Inject::Rate(p) => ((self.next_random() >> 11) as f64 / (1u64 << 53) as f64) < p,
        };
        if fail {
            return Err(SimError::OutOfMemory(format!(
                "allocation #{} ({site}) failed (injected ENOMEM) during op #{} ({})",
                self.allocations, self.op, self.op_name
            )));
        }
        // No site allocates more than a page (the structs are far smaller), and frees
        // only lower the use.
        let ram_pages = self.ram.saturating_sub(used.saturating_add(need)) / PAGE_SIZE;
        self.alloc_fast = match self.inject {
            Inject::Off => Self::FAST_ALLOCS.min(ram_pages).min(room.saturating_sub(1) as u64),
            _ => 0,
        };
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Lookups and validation
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

    /// Validate a walk's thread count: 0 (all cores) or 1 to [`MAX_THREADS`].
    pub(crate) fn check_threads(threads: usize) -> Result<usize> {
        if threads > MAX_THREADS {
            return Err(SimError::InvalidArgument(format!(
                "threads must be from 1 to {MAX_THREADS} (or all cores), got {threads}"
            )));
        }
        Ok(threads)
    }

    /// Validate a user range: page aligned, positive length, inside
    /// `[MMAP_MIN_ADDR, TASK_SIZE)`.
    pub(crate) fn check_range(addr: u64, len: u64) -> Result<u64> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(SimError::BadAddress(format!("address {addr:#x} is not page aligned (4096)")));
        }
        if len == 0 {
            return Err(SimError::InvalidArgument("length 0 is not positive".into()));
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(SimError::InvalidArgument(format!("length {len} is not a multiple of the page size (4096)")));
        }
        let end = addr.checked_add(len).filter(|&e| addr >= MMAP_MIN_ADDR && e <= TASK_SIZE).ok_or_else(|| {
            SimError::BadAddress(format!(
                "range {addr:#x}+{len:#x} is outside the user address space [{MMAP_MIN_ADDR:#x}, {TASK_SIZE:#x})"
            ))
        })?;
        Ok(end)
    }

    /// Parse a prot string: letters from "rwx" in any order without repeats, or "" /
    /// "none" for `PROT_NONE`.
    pub fn parse_prot(s: &str) -> Result<u8> {
        if s == "none" || s == "-" || s == "---" {
            return Ok(0);
        }
        let mut p = 0u8;
        for c in s.chars() {
            let bit = match c {
                'r' => prot::READ,
                'w' => prot::WRITE,
                'x' => prot::EXEC,
                '-' => 0,
                _ => {
                    return Err(SimError::InvalidArgument(format!(
                        "bad prot {}: use letters from \"rwx\" (e.g. \"rw\"), or \"none\"",
                        crate::error::quote(s)
                    )))
                }
            };
            if bit != 0 && p & bit != 0 {
                return Err(SimError::InvalidArgument(format!(
                    "bad prot {}: {c:?} given twice",
                    crate::error::quote(s)
                )));
            }
            p |= bit;
        }
        Ok(p)
    }

    pub fn prot_string(p: u8) -> String {
        let mut s = String::with_capacity(3);
        s.push(if p & prot::READ != 0 { 'r' } else { '-' });
        s.push(if p & prot::WRITE != 0 { 'w' } else { '-' });
        s.push(if p & prot::EXEC != 0 { 'x' } else { '-' });
        s
    }

    // ----------------------------------------------------------------------------------
    // Queries
    // ----------------------------------------------------------------------------------

    pub fn counts(&self) -> Counts {
        Counts {
            mm: self.mms.len() as u64,
            vma: self.vmas.len() as u64,
            anon_vma: self.avs.len() as u64,
            anon_vma_chain: self.avcs.len() as u64,
            page: self.pages.len() as u64,
            pte: self.ptes,
            swap_slot: self.swap_used,
            swap_cache: self.swap.iter().filter(|s| s.cache.is_some()).count() as u64,
        }
    }

    /// The simulator's own memory per object kind (not the kernel's struct sizes, see
    /// [`Simulator::memory`]): arena slots plus the heap each kind owns. `mm` counts the
    /// VMA tree's entries (16 bytes each) as its heap, `vma` its chain vector, `anon_vma`
    /// its list vectors; page-table entries are their own kind, `pte`.
    /// An independent deep copy: the same state and the same future (random stream,
    /// injection, limits, counters included). Refused with `OutOfMemory` when the copy
    /// would take the host guard's budget (see `hostmem`), instead of aborting.
    pub fn try_clone(&self) -> Result<Simulator> {
        let bytes: u64 = self.memory_usage().iter().map(|k| k.capacity_bytes).sum();
        let heap = crate::state::hostmem::heap_bytes();
        if heap.saturating_add(bytes) > self.host_budget {
            return Err(SimError::OutOfMemory(format!(
                "clone refused: it needs about {bytes} bytes and rmapsim holds {heap}, beyond this process's budget of {} bytes",
                self.host_budget
            )));
        }
        Ok(self.clone())
    }

    pub fn memory_usage(&self) -> Vec<KindUsage> {
        fn arena<T>(kind: &'static str, a: &crate::state::arena::Arena<T>, heap: (u64, u64)) -> KindUsage {
            let sb = crate::state::arena::Arena::<T>::slot_size() as u64;
            KindUsage {
                kind,
                live: a.len() as u64,
                slot_bytes: sb,
                slots: a.slots() as u64,
                bytes: a.slots() as u64 * sb + heap.0,
                capacity_bytes: a.slot_bytes() as u64 + heap.1,
            }
        }
        let entry = std::mem::size_of::<(u64, VmaId)>() as u64;
        let mm_heap = self.mms.iter().map(|(_, m)| m.vmas.len() as u64 * entry).sum::<u64>();
        let avc = std::mem::size_of::<AvcId>() as u64;
        let (mut chain, mut chain_cap, mut pte, mut pte_cap, mut pte_slots) = (0, 0, 0, 0, 0);
        for (_, v) in self.vmas.iter() {
            chain += v.chain.len() as u64 * avc;
            chain_cap += v.chain.capacity() as u64 * avc;
            let (b, c) = v.ptes.bytes();
            pte += b;
            pte_cap += c;
            pte_slots += v.ptes.slots() as u64;
        }
        let (mut list, mut list_cap) = (0, 0);
        for (_, a) in self.avs.iter() {
            let (b, c) = a.index.heap_bytes();
            list += b;
            list_cap += c;
        }
        let pb = std::mem::size_of::<Pte>() as u64;
        let sw = std::mem::size_of::<SwapSlot>() as u64;
        vec![
            arena("mm", &self.mms, (mm_heap, mm_heap)),
            arena("vma", &self.vmas, (chain, chain_cap)),
            arena("anon_vma", &self.avs, (list, list_cap)),
            arena("anon_vma_chain", &self.avcs, (0, 0)),
            {
                let (side, side_cap) = self.pages.side_bytes();
                let sb = PageStore::SLOT_BYTES as u64;
                KindUsage {
                    kind: "page",
                    live: self.pages.len() as u64,
                    slot_bytes: sb,
                    slots: self.pages.slots() as u64,
                    bytes: self.pages.slots() as u64 * sb + side as u64,
                    capacity_bytes: (self.pages.capacity_bytes() + side_cap) as u64,
                }
            },
            KindUsage {
                kind: "pte",
                live: self.ptes,
                slot_bytes: pb,
                slots: pte_slots,
                bytes: pte,
                capacity_bytes: pte_cap,
            },
            KindUsage {
                kind: "swap_slot",
                live: self.swap_used,
                slot_bytes: sw,
                slots: self.swap.len() as u64,
                bytes: self.swap.len() as u64 * sw,
                capacity_bytes: (self.swap.capacity() * sw as usize + self.swap_free.capacity() * 4) as u64,
            },
        ]
    }

    /// Bytes of kernel memory the era's structs would take: (vm_area_struct, anon_vma,
    /// anon_vma_chain).
    pub fn memory(&self) -> (u64, u64, u64) {
        let s = &self.policy.sizes;
        (
            self.vmas.len() as u64 * s.vm_area_struct as u64,
            self.avs.len() as u64 * s.anon_vma as u64,
            self.avcs.len() as u64 * s.anon_vma_chain as u64,
        )
    }

    pub fn vmas_of(&self, pid: i64) -> Result<Vec<VmaInfo>> {
        let mm = self.proc_mm(pid)?;
        Ok(self
            .mm(mm)
            .vmas
            .values()
            .map(|&v| {
                let vma = self.vma(v);
                VmaInfo {
                    start: vma.start,
                    end: vma.end,
                    pgoff: vma.pgoff,
                    prot: vma.prot,
                    flags: vma.flags & vmflags::ADVICE_MASK,
                    file: vma.file(),
                    anon_vma: vma.anon_vma.map(|a| a.to_u64()),
                    chain_len: vma.chain.len(),
                }
            })
            .collect())
    }

    /// Live anon pages, in slot order.
    pub fn anon_pages(&self) -> Vec<PageId> {
        self.pages.ids().collect()
    }

    /// Every PTE that maps an anon page, as `(pid, address, page)` in pid then address
    /// order: the `page_at` of every address of every VMA in one pass over the page
    /// tables (`rmapsim.diff` names pages by their mappings).
    pub fn page_mappings(&self) -> Vec<(u32, u64, PageId)> {
        let mut out = Vec::new();
        for (&pid, p) in &self.procs {
            for &v in self.mm(p.mm).vmas.values() {
                let x = self.vma(v);
                out.extend(x.ptes.range(x.start, x.end).filter_map(|(a, pte)| pte.page().map(|pg| (pid, a, pg))));
            }
        }
        out
    }

    /// The anon page mapped at `addr` in `pid` (`None` for no entry or the zero page).
    pub fn page_at(&self, pid: i64, addr: u64) -> Result<Option<PageId>> {
        Ok(self.pte_at(pid, addr)?.page())
    }

    /// The page-table entry at page-aligned `addr` of `pid` (which a VMA must cover).
    fn pte_at(&self, pid: i64, addr: u64) -> Result<crate::state::objects::Pte> {
        let mm = self.proc_mm(pid)?;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(SimError::BadAddress(format!("address {addr:#x} is not page aligned (4096)")));
        }
        let v = self
            .find_vma(mm, addr)
            .ok_or_else(|| SimError::BadAddress(format!("address {addr:#x} is not mapped in pid {pid}")))?;
        Ok(self.vma(v).pte(addr))
    }

    /// The swap-cache page of the swap entry at `addr` of `pid`, if that entry is a swap
    /// entry whose slot has a page in the swap cache (a trace's `drop_swap_cache p addr`
    /// names a page that no PTE maps this way).
    pub fn swap_cache_page_at(&self, pid: i64, addr: u64) -> Result<Option<PageId>> {
        Ok(self.pte_at(pid, addr)?.swap_slot().and_then(|s| self.swap.get(s as usize).and_then(|x| x.cache)))
    }

    /// Details of one live page: (mapping anon_vma, index, mapcount, swap slot if in the
    /// swap cache).
    pub fn page_info(&self, page: PageId) -> Result<(u64, u64, u32, Option<u32>)> {
        let p = self.page_checked(page)?;
        Ok((p.mapping.to_u64(), p.index, p.mapcount, p.swap))
    }
}
