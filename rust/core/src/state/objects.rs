//! The simulated kernel objects: `mm_struct`, `vm_area_struct`, `anon_vma`,
//! `anon_vma_chain`, anonymous `page`, and page-table entries.
//!
//! Locking notes name the kernel lock that protects the field in the era modelled; the
//! simulator is single-threaded on the write side, so they document, not enforce.

use std::collections::BTreeMap;

pub use crate::index::list::{AvList, ListEntry, ListPos};
use crate::state::arena::Id;

pub type MmId = Id<Mm>;
pub type VmaId = Id<Vma>;
pub type AnonVmaId = Id<AnonVma>;
pub type AvcId = Id<Avc>;
pub type PageId = Id<Page>;

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// `PROT_READ` / `PROT_WRITE` / `PROT_EXEC` as the VMA's `VM_READ|VM_WRITE|VM_EXEC`.
pub mod prot {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const EXEC: u8 = 4;
    pub const ALL: u8 = READ | WRITE | EXEC;
}

/// Merge-relevant `vm_flags` bits other than protection (set by madvise).
pub mod vmflags {
    pub const RAND_READ: u32 = 1 << 0;
    pub const SEQ_READ: u32 = 1 << 1;
    pub const DONTCOPY: u32 = 1 << 2;
    pub const WIPEONFORK: u32 = 1 << 3;
    /// `VM_ACCOUNT`: a private writable mapping (not `VM_NORESERVE`) is charged to the commit limit
    /// (`accountable_mapping` at mmap, `mprotect_fixup` when it first becomes writable).
    /// mprotect keeps it when the range becomes read-only (from 6.7 it drops it from an
    /// anonymous VMA with no anon_vma yet: knob `mprotect_unaccounts`), so a once-writable
    /// range stops merging with a never-writable neighbour of equal protection (the ELF
    /// loader's RELRO stays apart from the read-only segment before it).
    pub const ACCOUNT: u32 = 1 << 4;
    /// `VM_HUGEPAGE` / `VM_NOHUGEPAGE` (MADV_HUGEPAGE / MADV_NOHUGEPAGE) and `VM_DONTDUMP`.
    pub const HUGEPAGE: u32 = 1 << 5;
    pub const NOHUGEPAGE: u32 = 1 << 6;
    pub const DONTDUMP: u32 = 1 << 7;
    /// `VM_NORESERVE`: mmap with `MAP_NORESERVE` (`do_mmap`/`do_mmap_pgoff`, honoured when
    /// overcommit is not `OVERCOMMIT_NEVER`; the default heuristic mode is assumed). Such a
    /// mapping is never charged: `accountable_mapping` is false for it and
    /// `mprotect_fixup` does not add `VM_ACCOUNT` when it becomes writable. Being a
    /// `vm_flags` bit it takes part in every merge comparison (`is_mergeable_vma`), is
    /// copied by fork (`dup_mmap`) and kept by splits and mremap moves (`copy_vma`).
    pub const NORESERVE: u32 = 1 << 8;
    /// `VM_LOCKED` (mlock, mlock2, mlockall, `MAP_LOCKED`, `mm->def_flags` after
    /// `mlockall(MCL_FUTURE)`) and `VM_LOCKONFAULT` (mlock2's `MLOCK_ONFAULT`, `MCL_ONFAULT`,
    /// 4.4+): see `mm/mlock.rs`. Both take part in merge comparisons; fork clears both in
    /// the child (`dup_mmap`).
    pub const LOCKED: u32 = 1 << 9;
    pub const LOCKONFAULT: u32 = 1 << 10;
    /// `VM_LOCKED_MASK`: what mlock and munlock replace.
    pub const LOCKED_MASK: u32 = LOCKED | LOCKONFAULT;
    /// `VM_MERGEABLE` (MADV_MERGEABLE, `PR_SET_MEMORY_MERGE`): see `mm/ksm.rs`. Only its
    /// effect on splits and merges is modelled; no KSM daemon ever merges a page.
    pub const MERGEABLE: u32 = 1 << 11;
    /// Bits 12–31 hold the mapping's `vm_file` identity (0: anonymous). Every kernel rule
    /// that compares `vm_flags` for merging (`is_mergeable_vma`, `anon_vma_compatible`)
    /// also compares `vm_file`, so keeping the file in the compared word makes one
    /// comparison do both.
    pub const FILE_SHIFT: u32 = 12;
    pub const FILE_MAX: u32 = (1 << 20) - 1;
    /// The flag bits proper (advice, `VM_ACCOUNT`, `VM_NORESERVE`, the lock and KSM
    /// bits), without the file identity.
    pub const ADVICE_MASK: u32 = (1 << FILE_SHIFT) - 1;
}

/// `mm_struct`: one address space.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub struct Mm {
    pub pid: u32,
    /// `mm->start_brk` / `mm->brk`: the heap's base (set by the ELF loader; here by
    /// `set_brk_base`) and current break. 0 until a base is set.
    pub start_brk: u64,
    pub brk: u64,
    /// `mm->def_flags`: the `vm_flags` every new mapping of this mm gets; here only
    /// `VM_LOCKED` / `VM_LOCKONFAULT` (`mlockall(MCL_FUTURE)`, `mm/mlock.rs`). Never
    /// inherited: fork and exec start from 0 (`mm_init`).
    pub def_flags: u32,
    /// `MMF_VM_MERGE_ANY` (`prctl(PR_SET_MEMORY_MERGE, 1)`, 6.4+, `mm/ksm.rs`): every
    /// eligible VMA gets `VM_MERGEABLE`. Kept across fork and exec (`MMF_INIT_MASK`).
    pub merge_any: bool,
    /// VMAs by start address (the kernel's VMA tree + list); protected by `mmap_sem`.
    pub vmas: BTreeMap<u64, VmaId>,
}

/// `vm_area_struct`: a contiguous range of one address space with uniform attributes.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
#[repr(C)] // the fields a walk's visit reads come first, in one cache line (see `pgtable`)
pub struct Vma {
    /// Byte addresses, page aligned, `start < end`.
    pub start: u64,
    pub end: u64,
    /// Linear page offset of `start` (`vm_pgoff`); `start >> 12` when created by mmap.
    pub pgoff: u64,
    /// The part of the mm's page table that covers this VMA: sparse, page-table pages of
    /// 512 entries that exist only where an entry is populated.
    pub ptes: crate::state::pgtable::PteTable,
    pub mm: MmId,
    pub prot: u8,
    pub flags: u32,
    /// Where new anonymous pages of this VMA go (`vma->anon_vma`); protected by
    /// `mmap_sem` + `page_table_lock`.
    pub anon_vma: Option<AnonVmaId>,
    /// `vma->anon_vma_chain`, stored **oldest first** (index 0 is the tail of the kernel
    /// list, the last element its head). Empty in the legacy era.
    pub chain: Vec<AvcId>,
    /// Legacy era only: this VMA's position on `anon_vma->head` (`anon_vma_node`).
    pub av_pos: ListPos,
}

impl Vma {
    /// `vma->vm_file` identity: `None` for an anonymous mapping.
    #[inline]
    pub fn file(&self) -> Option<u32> {
        let f = self.flags >> vmflags::FILE_SHIFT;
        (f != 0).then_some(f)
    }
    #[inline]
    pub fn pages(&self) -> u64 {
        (self.end - self.start) >> PAGE_SHIFT
    }
    /// `linear_page_index(vma, addr)`.
    #[inline]
    pub fn linear_page_index(&self, addr: u64) -> u64 {
        self.pgoff + ((addr - self.start) >> PAGE_SHIFT)
    }
    /// `vma_address(page, vma)`: the address at which page index `index` would be mapped,
    /// or `None` when it falls outside the VMA (the kernel's `-EFAULT`).
    #[inline]
    pub fn address_of(&self, index: u64) -> Option<u64> {
        let off = index.wrapping_sub(self.pgoff);
        if off < self.pages() {
            Some(self.start + (off << PAGE_SHIFT))
        } else {
            None
        }
    }
    #[inline(always)]
    pub fn pte(&self, addr: u64) -> Pte {
        self.ptes.get(addr)
    }
}

/// `anon_vma`: the object `page->mapping` points at for anonymous pages.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub struct AnonVma {
    /// The VMAs that may map its pages: `anon_vma->head` (≤ 3.6) or `anon_vma->rb_root`
    /// (3.7+), see [`crate::index`].
    pub index: crate::index::AnonIndex,
    /// `anon_vma->root` (2.6.35+): the oldest anon_vma of the fork tree; its lock is
    /// the lock of the whole tree. Self for a root (and in eras without roots).
    pub root: AnonVmaId,
    /// `anon_vma->parent` (3.19+): the anon_vma of the parent VMA at fork; self for a root.
    pub parent: AnonVmaId,
    /// `anon_vma->refcount` (2.6.35+ eras): 1 while in use, plus one per child anon_vma
    /// pinning this root.
    pub refcount: u32,
    /// `anon_vma->degree` (3.19–5.19): VMAs using this as `->anon_vma` plus child
    /// anon_vmas (the root counting itself).
    pub degree: u32,
    /// `anon_vma->num_children` (6.0+): anon_vmas whose parent this is (root: itself too).
    pub num_children: u32,
    /// `anon_vma->num_active_vmas` (6.0+): VMAs whose `->anon_vma` this is.
    pub num_active_vmas: u32,
}

/// `anon_vma_chain`: links one VMA to one anon_vma.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub struct Avc {
    pub vma: VmaId,
    pub anon_vma: AnonVmaId,
    /// Position on `anon_vma->head` (`same_anon_vma`), list eras.
    pub pos: ListPos,
    /// Node in `anon_vma->rb_root` (`rb` + `rb_subtree_last`), interval-tree eras.
    pub tree: crate::index::itree::TreeLinks,
}

/// An anonymous page, as [`crate::state::pagestore::PageStore`] decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// `page->mapping` (an anon_vma). Protected by the page lock.
    pub mapping: AnonVmaId,
    /// `page->index`: the linear page offset the page was created at.
    pub index: u64,
    /// `page_mapcount`: present PTEs mapping this page.
    pub mapcount: u32,
    /// `PageSwapCache` + `page_private`: the swap slot this page caches, if any.
    pub swap: Option<u32>,
    /// `PageAnon`: `mapping` has been set by a mapping. False only for a page read from
    /// swap that has not been mapped yet.
    pub anon: bool,
}

/// One swap slot (`swap_map[offset]` plus the swap cache's radix-tree entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapSlot {
    /// Swap entries in page tables referring to this slot (the swap count).
    pub count: u32,
    /// The page in the swap cache for this slot (`SWAP_HAS_CACHE`).
    pub cache: Option<PageId>,
}

/// A page-table entry, packed in 8 bytes: kind in bits 0–1, write bit 2, the page handle's
/// generation in bits 3–30 (page generations stay below 2^24: `state::pagestore`), the
/// hardware dirty bit 31 (present entries) and index in 32–63.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Pte(u64);

const PTE_KIND_MASK: u64 = 3;
const PTE_ZERO: u64 = 1;
const PTE_PRESENT: u64 = 2;
const PTE_SWAP: u64 = 3;
const PTE_WRITE: u64 = 4;
/// `pte_dirty`: the page was written through this entry since it was made or cleaned.
const PTE_DIRTY: u64 = 1 << 31;
const PTE_GEN_MASK: u64 = 0x0FFF_FFFF;

impl Pte {
    pub const NONE: Pte = Pte(0);
    /// The packed word (for snapshots).
    #[inline]
    pub fn raw(self) -> u64 {
        self.0
    }
    /// An entry from its packed word (for snapshots; any word decodes to some entry).
    #[inline]
    pub fn from_raw(v: u64) -> Pte {
        Pte(v)
    }
    /// Read-only mapping of the shared zero page (not an anon page).
    pub const ZERO: Pte = Pte(PTE_ZERO);

    /// An entry mapping `page`; a writable one is made by a write fault, so it is also
    /// dirty (`maybe_mkwrite(pte_mkdirty(entry))`), a read-only one clean. (A page
    /// generation is below 2^24, `state::pagestore`: it never reaches the dirty bit.)
    #[inline]
    pub fn present(page: PageId, writable: bool) -> Pte {
        Pte(((page.index() as u64) << 32)
            | ((page.generation() as u64) << 3)
            | if writable { PTE_WRITE | PTE_DIRTY } else { 0 }
            | PTE_PRESENT)
    }
    #[inline]
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
    #[inline]
    pub fn is_zero(self) -> bool {
        self.0 == PTE_ZERO
    }
    /// The anon page this entry maps, if present.
    #[inline]
    pub fn page(self) -> Option<PageId> {
        if self.0 & PTE_KIND_MASK == PTE_PRESENT {
            Some(Id::new((self.0 >> 32) as u32, ((self.0 >> 3) & PTE_GEN_MASK) as u32))
        } else {
            None
        }
    }
    /// A swap entry for slot `slot`.
    #[inline]
    pub fn swap(slot: u32) -> Pte {
        Pte(((slot as u64) << 32) | PTE_SWAP)
    }
    /// The swap slot of a swap entry.
    #[inline]
    pub fn swap_slot(self) -> Option<u32> {
        if self.0 & PTE_KIND_MASK == PTE_SWAP {
            Some((self.0 >> 32) as u32)
        } else {
            None
        }
    }
    /// Does this entry map `page` (present, either write or dirty state)?
    #[inline]
    pub fn maps(self, page: PageId) -> bool {
        (self.0 & !(PTE_WRITE | PTE_DIRTY)) == (Pte::present(page, false).0)
    }
    /// `pte_dirty` of a present entry.
    #[inline]
    pub fn dirty(self) -> bool {
        self.0 & PTE_KIND_MASK == PTE_PRESENT && self.0 & PTE_DIRTY != 0
    }
    /// `pte_mkclean` (MADV_FREE).
    #[inline]
    pub fn cleaned(self) -> Pte {
        Pte(self.0 & !PTE_DIRTY)
    }
    /// `pte_mkdirty`: a present entry written through (others unchanged).
    #[inline]
    pub fn dirtied(self) -> Pte {
        if self.0 & PTE_KIND_MASK == PTE_PRESENT {
            Pte(self.0 | PTE_DIRTY)
        } else {
            self
        }
    }
    #[inline]
    pub fn writable(self) -> bool {
        self.0 & PTE_WRITE != 0
    }
    #[inline]
    pub fn write_protected(self) -> Pte {
        Pte(self.0 & !PTE_WRITE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_packing_round_trips() {
        let p: PageId = Id::new(123_456, 0x00BC_DEF0);
        let w = Pte::present(p, true);
        assert_eq!(w.page(), Some(p));
        assert!(w.writable() && w.maps(p) && w.dirty());
        assert!(!w.write_protected().writable() && w.write_protected().maps(p) && w.write_protected().dirty());
        assert!(w.cleaned().maps(p) && !w.cleaned().dirty() && w.cleaned().writable());
        assert!(!Pte::present(p, false).dirty() && Pte::present(p, false).dirtied().dirty());
        assert_eq!(Pte::swap(77).dirtied(), Pte::swap(77));
        assert!(!w.maps(Id::new(123_456, 1)));
        assert_eq!(Pte::ZERO.page(), None);
        assert_eq!(Pte::swap(77).swap_slot(), Some(77));
        assert_eq!(Pte::swap(77).page(), None);
        assert_eq!(w.swap_slot(), None);
        assert!(Pte::NONE.is_none() && Pte::ZERO.is_zero());
    }
}

// Snapshot coding (`crate::state::snapshot`), field by field.
// Mm's coding is in snapshot/upgrade.rs (format 2 has no def_flags / merge_any).
crate::wire_struct!(Vma { start, end, pgoff, ptes, mm, prot, flags, anon_vma, chain, av_pos });
crate::wire_struct!(AnonVma { index, root, parent, refcount, degree, num_children, num_active_vmas });
crate::wire_struct!(Avc { vma, anon_vma, pos, tree });
