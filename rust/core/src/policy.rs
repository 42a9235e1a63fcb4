//! Era policies: the kernel's anon-rmap design as data.
//!
//! One engine runs every era. An era is a [`Policy`]: a set of orthogonal knobs read at
//! the few decision points the kernel itself has (how VMAs are linked to anon_vmas,
//! whether `anon_vma_prepare` may reuse a neighbour's anon_vma, whether COW reuse moves
//! the page, which lock a walk takes) plus the struct sizes used for memory accounting.
//! Presets are named after the kernel release that shipped the design.

use std::fmt;

/// How VMAs are attached to anon_vmas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linking {
    /// ≤ 2.6.33: one anon_vma per fork family; every VMA of the family sits directly on
    /// `anon_vma->head` (through `vma->anon_vma_node`). Fork allocates nothing.
    Legacy,
    /// 2.6.34+ (commit 5beb49305251): `anon_vma_chain` objects link each VMA to every
    /// anon_vma whose pages it may map; each fork gives the child VMA its own anon_vma.
    Chain,
}

/// Which neighbour anon_vma `anon_vma_prepare` → `find_mergeable_anon_vma` may reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareReuse {
    /// Any adjacent, compatible neighbour that has an anon_vma (2.6.33, 2.6.34-rc1..rc3).
    AnyCompatible,
    /// Only a neighbour whose `anon_vma_chain` is singular (2.6.34-rc4, d0e9fe1758f2
    /// "Simplify and comment on anon_vma re-use for anon_vma_prepare()"), so that VMAs
    /// sharing `->anon_vma` keep identical chains.
    SingularChain,
}

/// Which anon_vma a page gets when it is mapped for the first time by a swap-in fault
/// (`__page_set_anon_rmap` called from `do_swap_page`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapinTarget {
    /// The faulting VMA's own `vma->anon_vma` (2.6.33, where the family shares one; and
    /// 2.6.34-rc1..rc3, where it is **the bug**: a page still mapped by the parent can end
    /// up in a child's anon_vma, which the parent's VMA is not linked to).
    VmaAnonVma,
    /// The oldest anon_vma on the VMA's chain unless the fault maps the page exclusively
    /// (2.6.34-rc4, ea90002b0fa7 "anonvma: when setting up page->mapping, we need to pick
    /// the _oldest_ anonvma").
    OldestUnlessExclusive,
}

/// Where a walk-side or link-side lock lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockScope {
    /// The anon_vma's own lock (≤ 2.6.34).
    PerAnonVma,
}

/// Kind of the anon_vma lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// `spinlock_t` (≤ 2.6.39): walks and updates are exclusive.
    Spin,
}

/// Bytes per kernel object on x86-64, for [`crate::Simulator::memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructSizes {
    pub vm_area_struct: u32,
    pub anon_vma: u32,
    /// 0 in eras without `anon_vma_chain`.
    pub anon_vma_chain: u32,
}

/// A complete era description. Build one with [`Policy::preset`] and adjust fields to
/// ablate a single knob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Preset name (kernel version) or a user label.
    pub name: String,
    pub linking: Linking,
    pub prepare_reuse: PrepareReuse,
    /// COW reuse of an exclusively mapped page calls `page_move_anon_rmap`, moving the
    /// page into the faulting VMA's own anon_vma (2.6.34, seed thread patch 3).
    pub cow_reuse_moves_page: bool,
    /// `anon_vma_prepare` links the new chain entry at the *head* of the anon_vma's list
    /// (the 2.6.34 `list_add`), rather than the tail (2.6.33 `list_add_tail`). Only walk
    /// order, and so early-stopping walk cost, depends on it.
    pub prepare_links_at_head: bool,
    pub swapin_target: SwapinTarget,
    /// `anon_vma_clone` walks the source chain newest → oldest while adding each entry at
    /// the head of the destination chain, so the clone comes out in reverse order (the
    /// patch as posted; fixed in 2.6.34-rc4 by walking the source in reverse).
    pub clone_reverses_chain: bool,
    /// `vma_adjust`'s importer clones the chain of the *exporter* (the VMA whose pages
    /// it absorbs). The patch as posted cloned `vma`'s own chain, which is empty when
    /// `vma` is the importer (fixed in 2.6.34-rc4 by 287d97ac "vma_adjust: fix the
    /// copying of anon_vma chains").
    pub importer_clones_exporter: bool,
    /// `anon_vma_fork` unlinks the chain it cloned when a later allocation fails. The
    /// patch as posted returned -ENOMEM without unlinking, leaking the chain entries of a
    /// VMA that `dup_mmap` then frees.
    pub fork_error_unlinks: bool,
    /// `MADV_WIPEONFORK` / `MADV_KEEPONFORK` exist (Linux 4.14+); otherwise EINVAL.
    pub has_wipeonfork: bool,
    pub lock_scope: LockScope,
    pub lock_kind: LockKind,
    pub sizes: StructSizes,
}

/// Names of the presets, oldest first.
pub const ERAS: &[&str] = &["2.6.33", "2.6.34-rc1", "2.6.34"];

impl Policy {
    /// The named preset, or `None` for an unknown name.
    pub fn preset(name: &str) -> Option<Policy> {
        match name {
            "2.6.33" => Some(Policy {
                name: name.into(),
                linking: Linking::Legacy,
                prepare_reuse: PrepareReuse::AnyCompatible,
                cow_reuse_moves_page: false,
                prepare_links_at_head: false,
                swapin_target: SwapinTarget::VmaAnonVma,
                clone_reverses_chain: false,
                importer_clones_exporter: true,
                fork_error_unlinks: true,
                has_wipeonfork: false,
                lock_scope: LockScope::PerAnonVma,
                lock_kind: LockKind::Spin,
                sizes: StructSizes { vm_area_struct: 176, anon_vma: 24, anon_vma_chain: 0 },
            }),
            "2.6.34-rc1" => Some(Policy {
                name: name.into(),
                linking: Linking::Chain,
                prepare_reuse: PrepareReuse::AnyCompatible,
                cow_reuse_moves_page: true,
                prepare_links_at_head: true,
                swapin_target: SwapinTarget::VmaAnonVma,
                clone_reverses_chain: true,
                importer_clones_exporter: false,
                fork_error_unlinks: false,
                has_wipeonfork: false,
                lock_scope: LockScope::PerAnonVma,
                lock_kind: LockKind::Spin,
                sizes: StructSizes { vm_area_struct: 176, anon_vma: 24, anon_vma_chain: 48 },
            }),
            "2.6.34" => Some(Policy {
                name: name.into(),
                linking: Linking::Chain,
                prepare_reuse: PrepareReuse::SingularChain,
                cow_reuse_moves_page: true,
                prepare_links_at_head: true,
                swapin_target: SwapinTarget::OldestUnlessExclusive,
                clone_reverses_chain: false,
                importer_clones_exporter: true,
                fork_error_unlinks: true,
                has_wipeonfork: false,
                lock_scope: LockScope::PerAnonVma,
                lock_kind: LockKind::Spin,
                sizes: StructSizes { vm_area_struct: 176, anon_vma: 24, anon_vma_chain: 48 },
            }),
            _ => None,
        }
    }

    pub fn is_chain(&self) -> bool {
        self.linking == Linking::Chain
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn presets_exist_and_differ_in_linking() {
        for e in ERAS {
            assert_eq!(Policy::preset(e).map(|p| p.name), Some(e.to_string()));
        }
        assert!(Policy::preset("2.6.32").is_none());
        assert_eq!(Policy::preset("2.6.33").map(|p| p.linking), Some(Linking::Legacy));
        assert_eq!(Policy::preset("2.6.34").map(|p| p.linking), Some(Linking::Chain));
    }
}
