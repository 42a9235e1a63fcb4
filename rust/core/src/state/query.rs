//! Argument validation, limits and the read-only queries (`counts`, `memory_usage`,
//! `vmas_of`, `page_at`, …) of the simulator.

use crate::error::{Result, SimError};
use crate::state::objects::*;
use crate::state::pagestore::PageStore;
use crate::state::sim::{Simulator, MAX_THREADS, MMAP_MIN_ADDR, PID_MAX_DEFAULT, PID_MAX_MIN, TASK_SIZE};

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

impl Simulator {
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
        let end = Self::check_range_any(addr, len)?;
        if addr < MMAP_MIN_ADDR || end > TASK_SIZE {
            return Err(SimError::BadAddress(format!(
                "range {addr:#x}+{len:#x} is outside the user address space [{MMAP_MIN_ADDR:#x}, {TASK_SIZE:#x})"
            )));
        }
        Ok(end)
    }

    /// [`Simulator::check_range`] without the user-address-space bounds: page aligned, a
    /// positive multiple of the page size, not wrapping. What 6.18's `is_valid_madvise`
    /// (mm/madvise.c 1793-1812) checks, and all a user loop of accesses needs; used with
    /// `holes="kernel"`, where the parts outside every VMA are holes like any other.
    pub(crate) fn check_range_any(addr: u64, len: u64) -> Result<u64> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(SimError::BadAddress(format!("address {addr:#x} is not page aligned (4096)")));
        }
        if len == 0 {
            return Err(SimError::InvalidArgument("length 0 is not positive".into()));
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(SimError::InvalidArgument(format!("length {len} is not a multiple of the page size (4096)")));
        }
        addr.checked_add(len).ok_or_else(|| {
            SimError::BadAddress(format!(
                "range {addr:#x}+{len:#x} is outside the user address space [{MMAP_MIN_ADDR:#x}, {TASK_SIZE:#x})"
            ))
        })
    }

    /// Every prot spelling [`Self::parse_prot`] accepts, as `(spelling, bits)`: `""` and
    /// `"none"` for `PROT_NONE`, the letters of `"rwx"` in any order without repeats, and the
    /// three-column form of `/proc/PID/maps` and of the simulator's own messages (`"r-x"`,
    /// `"---"`). Python's `rmapsim.Prot` lists the same strings (`_core.PROT_NAMES`).
    pub const PROT_NAMES: &'static [(&'static str, u8)] = &[
        ("", 0),
        ("none", 0),
        ("r", prot::READ),
        ("w", prot::WRITE),
        ("x", prot::EXEC),
        ("rw", prot::READ | prot::WRITE),
        ("wr", prot::READ | prot::WRITE),
        ("rx", prot::READ | prot::EXEC),
        ("xr", prot::READ | prot::EXEC),
        ("wx", prot::WRITE | prot::EXEC),
        ("xw", prot::WRITE | prot::EXEC),
        ("rwx", prot::ALL),
        ("rxw", prot::ALL),
        ("wrx", prot::ALL),
        ("wxr", prot::ALL),
        ("xrw", prot::ALL),
        ("xwr", prot::ALL),
        ("---", 0),
        ("r--", prot::READ),
        ("-w-", prot::WRITE),
        ("--x", prot::EXEC),
        ("rw-", prot::READ | prot::WRITE),
        ("r-x", prot::READ | prot::EXEC),
        ("-wx", prot::WRITE | prot::EXEC),
    ];

    /// Parse a prot string: one of [`Self::PROT_NAMES`].
    pub fn parse_prot(s: &str) -> Result<u8> {
        Self::PROT_NAMES.iter().find(|(n, _)| *n == s).map(|&(_, bits)| bits).ok_or_else(|| {
            SimError::InvalidArgument(format!(
                "bad prot {}: use letters from \"rwx\" in any order without repeats (e.g. \"rw\"), \"none\" or \"\", \
                 or the maps form (\"r-x\")",
                crate::error::quote(s)
            ))
        })
    }

    pub fn prot_string(p: u8) -> String {
        let mut s = String::with_capacity(3);
        s.push(if p & prot::READ != 0 { 'r' } else { '-' });
        s.push(if p & prot::WRITE != 0 { 'w' } else { '-' });
        s.push(if p & prot::EXEC != 0 { 'x' } else { '-' });
        s
    }

    pub fn counts(&self) -> Counts {
        Counts {
            mm: self.mms.len() as u64,
            vma: self.vmas.len() as u64,
            anon_vma: self.avs.len() as u64,
            anon_vma_chain: self.avcs.len() as u64,
            page: self.pages.len() as u64,
            pte: self.ptes,
            swap_slot: self.swap.used(),
            swap_cache: self.swap.iter().filter(|s| s.cache.is_some()).count() as u64,
        }
    }

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

    /// The simulator's own memory per object kind (not the kernel's struct sizes, see
    /// [`Simulator::memory`]): arena slots plus the heap each kind owns. `mm` counts the
    /// VMA tree's entries (16 bytes each) as its heap, `vma` its chain vector, `anon_vma`
    /// its list vectors; page-table entries are their own kind, `pte`.
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
                live: self.swap.used(),
                slot_bytes: sw,
                slots: self.swap.len() as u64,
                bytes: self.swap.len() as u64 * sw,
                capacity_bytes: self.swap.capacity_bytes(),
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

    /// Every populated page-table entry of every process, as `(pid, addr, kind, value)`
    /// in pid then address order: kind 1 the zero page (value 0), 2 an anon page (value
    /// its handle), 3 a swap entry (value its slot). What `/proc/<pid>/pagemap` tells of a
    /// real process (`rmapsim validate-kernel --fuzz` compares the two).
    pub fn pte_entries(&self) -> Vec<(u32, u64, u8, u64)> {
        let mut out = Vec::new();
        for (&pid, p) in &self.procs {
            for &v in self.mm(p.mm).vmas.values() {
                let x = self.vma(v);
                out.extend(x.ptes.range(x.start, x.end).filter_map(|(a, pte)| {
                    if pte.is_zero() {
                        Some((pid, a, 1, 0))
                    } else if let Some(pg) = pte.page() {
                        Some((pid, a, 2, pg.to_u64()))
                    } else {
                        pte.swap_slot().map(|s| (pid, a, 3, s as u64))
                    }
                }));
            }
        }
        out
    }

    /// Where each page of `pages` (handles) is mapped, for `ScanStats.to_pandas()`: the
    /// lowest pid whose page tables refer to it — a present entry mapping it, or a swap
    /// entry for its swap slot (a page `try_to_unmap` swapped out and the swap cache
    /// still holds) — with the start of that process's VMA holding its lowest such
    /// address, and `page->index`. `(-1, 0, index)` for a page no entry refers to, and
    /// `(-1, 0, u64::MAX)` for a handle that names no live page (freed since the walk, as
    /// `MADV_PAGEOUT` frees what it reclaims). One pass over the page tables (pid order,
    /// then address order: the first entry found is the one wanted), stopping once every
    /// page is placed.
    pub fn page_owners(&self, pages: &[u64]) -> Vec<(i64, u64, u64)> {
        use std::collections::HashMap;
        let mut at: HashMap<PageId, (i64, u64)> = HashMap::with_capacity(pages.len());
        let mut slots: HashMap<u32, PageId> = HashMap::new();
        let mut index = Vec::with_capacity(pages.len());
        for &h in pages {
            let id = crate::state::arena::Id::from_u64(h);
            let Ok(p) = self.page_checked(id) else {
                index.push(u64::MAX); // freed since (reclaim dropped it): nowhere
                continue;
            };
            index.push(p.index);
            at.insert(id, (-1, 0));
            if let Some(s) = p.swap {
                slots.insert(s, id);
            }
        }
        let mut left = at.len();
        if left == 0 {
            return pages.iter().map(|_| (-1, 0, u64::MAX)).collect();
        }
        'procs: for (&pid, p) in &self.procs {
            for &v in self.mm(p.mm).vmas.values() {
                let x = self.vma(v);
                for (_, pte) in x.ptes.range(x.start, x.end) {
                    let pg = pte.page().or_else(|| pte.swap_slot().and_then(|s| slots.get(&s).copied()));
                    if let Some(e) = pg.and_then(|pg| at.get_mut(&pg)) {
                        if e.0 < 0 {
                            *e = (i64::from(pid), x.start);
                            left -= 1;
                            if left == 0 {
                                break 'procs;
                            }
                        }
                    }
                }
            }
        }
        pages
            .iter()
            .zip(index)
            .map(|(&h, i)| {
                let (pid, start) = at.get(&crate::state::arena::Id::from_u64(h)).copied().unwrap_or((-1, 0));
                (pid, start, i)
            })
            .collect()
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
