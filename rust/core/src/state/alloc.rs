//! Allocation accounting and failure injection: every allocation the kernel could fail
//! with ENOMEM goes through [`Simulator::may_alloc`], which counts it by site and fails
//! it when injection says so, when the simulated RAM is full, or when the host has no
//! room for it.

use std::fmt;

use crate::error::{Result, SimError};
use crate::state::objects::PAGE_SIZE;
use crate::state::sim::Simulator;

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

/// Allocation-failure injection (docs/contract.md#allocation-failure).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inject {
    Off,
    /// Fail the allocation this many attempts from now (1 = the next one).
    Nth(u64),
    /// Fail each allocation with this probability, from the seeded generator.
    Rate(f64),
}

impl Simulator {
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
}
