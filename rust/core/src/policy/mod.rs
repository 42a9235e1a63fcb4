//! Era policies: the kernel's anon-rmap design as data.
//!
//! One engine runs every era. An era is a [`Policy`]: a set of orthogonal knobs read at
//! the few decision points the kernel itself has (how VMAs are linked to anon_vmas,
//! whether `anon_vma_prepare` may reuse a neighbour's anon_vma, whether COW reuse moves
//! the page, which lock a walk takes) plus the struct sizes used for memory accounting.
//! Presets are named after the kernel release that shipped the design.

use crate::error::quote;
use std::fmt;

pub mod knobs;
mod presets;
use knobs::{knob_enum, policy_knobs};
pub use presets::{DEFAULT_ERA, ERAS};

knob_enum! {
/// How VMAs are attached to anon_vmas.
pub enum Linking {
    /// ≤ 2.6.33: one anon_vma per fork family; every VMA of the family sits directly on
    /// `anon_vma->head` (through `vma->anon_vma_node`). Fork allocates nothing.
    Legacy = "legacy",
    /// 2.6.34+ (commit 5beb49305251): `anon_vma_chain` objects link each VMA to every
    /// anon_vma whose pages it may map; each fork gives the child VMA its own anon_vma.
    Chain = "chain",
}
}

knob_enum! {
/// Which neighbour anon_vma `anon_vma_prepare` → `find_mergeable_anon_vma` may reuse.
pub enum PrepareReuse {
    /// Any adjacent, compatible neighbour that has an anon_vma (2.6.33, 2.6.34-rc1..rc3).
    AnyCompatible = "any_compatible",
    /// Only a neighbour whose `anon_vma_chain` is singular (2.6.34-rc4, d0e9fe1758f2
    /// "Simplify and comment on anon_vma re-use for anon_vma_prepare()"), so that VMAs
    /// sharing `->anon_vma` keep identical chains.
    SingularChain = "singular_chain",
}
}

knob_enum! {
/// Which anon_vma a page gets when it is mapped for the first time by a swap-in fault
/// (`__page_set_anon_rmap` called from `do_swap_page`).
pub enum SwapinTarget {
    /// The faulting VMA's own `vma->anon_vma` (2.6.33, where the family shares one; and
    /// 2.6.34-rc1..rc3, where it is **the bug**: a page still mapped by the parent can end
    /// up in a child's anon_vma, which the parent's VMA is not linked to).
    VmaAnonVma = "vma_anon_vma",
    /// The oldest anon_vma on the VMA's chain unless the fault maps the page exclusively
    /// (2.6.34-rc4, ea90002b0fa7 "anonvma: when setting up page->mapping, we need to pick
    /// the _oldest_ anonvma").
    OldestUnlessExclusive = "oldest_unless_exclusive",
    /// `anon_vma->root` unless exclusive (2.6.35+, "mm: always lock the root (oldest)
    /// anon_vma").
    RootUnlessExclusive = "root_unless_exclusive",
}
}

knob_enum! {
/// The kind of rmap index an anon_vma keeps (the `index` knob): what a walk enumerates.
/// Only [`crate::index`] acts on it.
pub enum IndexKind {
    /// `anon_vma->head` list: every entry is a candidate (≤ 3.6).
    List = "list",
    /// `anon_vma->rb_root` interval tree keyed by the VMA's pgoff range: only entries
    /// covering the page's index are candidates (3.7+, bf181b9f9d8d).
    IntervalTree = "interval_tree",
}
}

knob_enum! {
/// Whether `anon_vma_fork` may reuse an existing anon_vma instead of allocating one.
pub enum ForkReuse {
    /// Always allocate (2.6.34–3.18).
    Never = "never",
    /// 3.19 (7a3ef208e662 "mm: prevent endless growth of anon_vma hierarchy"): the first
    /// chain entry, oldest first, that is not the source's own and has `degree < 2` —
    /// including the ambiguity that became CVE-2022-42703.
    Degree = "degree",
    /// 6.0 (2555283eb40d): the first entry with `num_active_vmas == 0 &&
    /// num_children < 2`.
    ActiveVmas = "active_vmas",
}
}

knob_enum! {
/// `is_mergeable_anon_vma`: when may VMAs with these anon_vmas merge?
pub enum MergeAnonRule {
    /// Either side without an anon_vma, or the same one (≤ 2.6.39).
    Simple = "simple",
    /// "mmap: avoid merging cloned VMAs" (965f55dea0e3): a side without an anon_vma is
    /// only accepted when the neighbour checked has a singular chain (3.0–6.14; this
    /// also refused unfaulted-target / faulted-source merges, the "incorrectly disallowed"
    /// merges of docs/eras.md).
    SingularChain = "singular_chain",
    /// "mm/vma: fix incorrectly disallowed anonymous VMA merges" (2025): decided by case —
    /// unfaulted target + faulted source when the source has no uncowed parents (the
    /// target then inherits the source's anon_vma); faulted target + unfaulted source when
    /// the target has none; both faulted when they share the anon_vma.
    Case2025 = "case_2025",
}
}

knob_enum! {
/// Where a walk-side or link-side lock lives.
pub enum LockScope {
    /// The anon_vma's own lock (≤ 2.6.34).
    PerAnonVma = "per_anon_vma",
    /// The root anon_vma's lock, for the whole fork tree (2.6.35+).
    Root = "root",
}
}

knob_enum! {
/// Kind of the anon_vma lock.
pub enum LockKind {
    /// `spinlock_t` (≤ 2.6.39): walks and updates are exclusive.
    Spin = "spin",
    /// `struct mutex` (3.0–3.7): exclusive, sleeping.
    Mutex = "mutex",
    /// `rw_semaphore` (3.8+): walks take it shared, updates exclusive.
    RwSem = "rwsem",
}
}

knob_enum! {
/// `prctl(PR_SET_MEMORY_MERGE)` (`MMF_VM_MERGE_ANY`) and when a new VMA gets its
/// `VM_MERGEABLE` (`mm/ksm.rs`).
pub enum MemoryMerge {
    /// No such prctl (before 6.4): EINVAL.
    None = "none",
    /// 6.4–6.15: `ksm_add_vma` marks the new VMA after the merge attempt, so a new
    /// mapping never merges with a mergeable neighbour (and a merge with a plain one makes
    /// the merged VMA mergeable).
    AfterMerge = "after_merge",
    /// 6.16+: `ksm_vma_flags` sets the flag before the merge attempt (the new range merges
    /// with a mergeable neighbour).
    BeforeMerge = "before_merge",
}
}

/// Bytes per kernel object on x86-64, for [`crate::Simulator::memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructSizes {
    pub vm_area_struct: u32,
    pub anon_vma: u32,
    /// 0 in eras without `anon_vma_chain`.
    pub anon_vma_chain: u32,
}

knob_enum! {
/// Which VMAs `mremap(MREMAP_DONTUNMAP)` accepts (the `mremap_dontunmap` knob).
pub enum DontUnmap {
    /// The flag is unknown: EINVAL (before 5.7).
    None = "none",
    /// Private anonymous VMAs only (`vma_to_resize`, 5.7 to 5.12).
    AnonOnly = "anon_only",
    /// Any VMA but `VM_DONTEXPAND` / `VM_PFNMAP` ones (5.13+): private file mappings too.
    Any = "any",
}
}

knob_enum! {
/// How a range with holes is treated (the `holes` knob; `Simulator(..., holes=...)`).
pub enum Holes {
    /// A hole anywhere in the range raises `BadAddress` and nothing changes (the default
    /// of every preset: bad input in a simulation script changes nothing).
    Strict = "strict",
    /// Exactly the kernel: munmap of nothing succeeds; mprotect and madvise work VMA by
    /// VMA and return the kernel's error at the hole, keeping what they changed; mremap
    /// shrinking over holes succeeds.
    Kernel = "kernel",
}
}

policy_knobs! {
/// A complete era description. Build one with [`Policy::preset`] and adjust fields to
/// ablate a single knob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Preset name (kernel version) or a user label.
    pub name: String,
    pub linking: Linking => "legacy: VMAs sit on one family anon_vma; chain: anon_vma_chain links each VMA to every anon_vma it may map", "2.6.34 (5beb49305251)";
    pub prepare_reuse: PrepareReuse => "which neighbour anon_vma anon_vma_prepare may reuse: any_compatible, or singular_chain (neighbour's chain has one entry)", "2.6.34-rc4 (d0e9fe1758f2)";
    /// COW reuse of an exclusively mapped page calls `page_move_anon_rmap`, moving the
    /// page into the faulting VMA's own anon_vma (2.6.34, seed thread patch 3).
    pub cow_reuse_moves_page: bool => "a COW fault that reuses an exclusive page moves it to the VMA's own anon_vma (page_move_anon_rmap)", "2.6.34 (seed thread patch 3)";
    /// `anon_vma_prepare` links the new chain entry at the *head* of the anon_vma's list
    /// (the 2.6.34 `list_add`), rather than the tail (2.6.33 `list_add_tail`). Only walk
    /// order, and so early-stopping walk cost, depends on it.
    pub prepare_links_at_head: bool => "anon_vma_prepare adds its chain entry at the head of the anon_vma list (list_add) instead of the tail", "2.6.34 (head); 2.6.38 back to tail";
    pub swapin_target: SwapinTarget => "anon_vma of a page first mapped by swap-in: vma_anon_vma, oldest_unless_exclusive, root_unless_exclusive", "2.6.34-rc4 (ea90002b0fa7); 2.6.35 root";
    /// `anon_vma_clone` walks the source chain newest → oldest while adding each entry at
    /// the head of the destination chain, so the clone comes out in reverse order (the
    /// patch as posted; fixed in 2.6.34-rc4 by walking the source in reverse). 7.0 does it
    /// again (its first pass walks the source head → tail, adding at the head; fork reuse
    /// is then offered in that order): harmless once non-roots pin the root (`track_root`).
    pub clone_reverses_chain: bool => "anon_vma_clone produces the source chain in reverse order (fork reuse is tried in that order)", "the patch as posted, fixed in 2.6.34-rc4; again from 7.0-rc1 (bfc2b13b05a1 / d17f02417a33), harmless with track_root";
    /// `vma_adjust`'s importer clones the chain of the *exporter* (the VMA whose pages
    /// it absorbs). The patch as posted cloned `vma`'s own chain, which is empty when
    /// `vma` is the importer (fixed in 2.6.34-rc4 by 287d97ac "vma_adjust: fix the
    /// copying of anon_vma chains").
    pub importer_clones_exporter: bool => "vma_adjust's importer clones the exporter's chain (false: its own, the posted patch's bug)", "2.6.34-rc4 (287d97ac)";
    /// `anon_vma_fork` unlinks the chain it cloned when a later allocation fails. The
    /// patch as posted returned -ENOMEM without unlinking, leaking the chain entries of a
    /// VMA that `dup_mmap` then frees.
    pub fork_error_unlinks: bool => "anon_vma_fork unlinks the cloned chain when a later allocation fails (false: leak, the posted patch)", "2.6.34";
    /// `MADV_WIPEONFORK` / `MADV_KEEPONFORK` exist (Linux 4.14+); otherwise EINVAL.
    pub has_wipeonfork: bool => "MADV_WIPEONFORK / MADV_KEEPONFORK exist", "4.14";
    /// `MADV_HUGEPAGE` / `MADV_NOHUGEPAGE` exist (2.6.38, transparent hugepages); otherwise
    /// EINVAL. Only their `VM_HUGEPAGE` / `VM_NOHUGEPAGE` flags are modelled (they split and
    /// merge VMAs), not huge pages.
    pub has_thp_advice: bool => "MADV_HUGEPAGE / MADV_NOHUGEPAGE exist (their VM_HUGEPAGE / VM_NOHUGEPAGE flags split and merge VMAs)", "2.6.38";
    /// `MADV_HUGEPAGE` on a VMA that already has `VM_HUGEPAGE` (`MADV_NOHUGEPAGE`: already
    /// `VM_NOHUGEPAGE`) is EINVAL (`hugepage_madvise`'s "over-protective like KSM" test,
    /// 2.6.38 until 4.4, "mm: Loosen MADV_NOHUGEPAGE to enable Qemu postcopy on s390");
    /// later kernels accept the repeat.
    pub thp_advice_strict: bool => "MADV_HUGEPAGE on a VMA that already has VM_HUGEPAGE (NOHUGEPAGE: VM_NOHUGEPAGE) is EINVAL", "2.6.38; accepted again from 4.4 (\"mm: Loosen MADV_NOHUGEPAGE to enable Qemu postcopy on s390\")";
    /// `MADV_DONTDUMP` / `MADV_DODUMP` exist (3.4); otherwise EINVAL.
    pub has_dump_advice: bool => "MADV_DONTDUMP / MADV_DODUMP exist (VM_DONTDUMP)", "3.4";
    /// `vma_adjust` chooses the VMA to import an anon_vma from before removing anything,
    /// looking past an unfaulted `next` in case 6; earlier kernels found it only on the
    /// second pass, after `next` was freed (a failed clone there is a use-after-free).
    pub adjust_imports_upfront: bool => "vma_adjust picks the anon_vma exporter before removing anything (case 6 looks past an unfaulted next)", "4.x (release unverified); 6.x merge code dups first";
    /// mremap growing a VMA in place merges the grown part like a new range, so the VMA
    /// also merges with a compatible next one (6.1+, "mm: add merging after mremap
    /// resize"); before, `vma_adjust` only moved the end.
    pub mremap_expand_merges: bool => "mremap growing a VMA in place also merges it with a compatible next VMA", "6.1 (ca3d76b0aa80)";
    /// mremap with `MREMAP_FIXED` and `old_len == new_len` (a pure move) may span several
    /// VMAs and gaps: each VMA's part moves in address order, the gaps between them kept,
    /// and a gap only at the start is EFAULT (6.17+, `remap_move`, "mm/mremap: permit
    /// mremap() move of multiple VMAs"); before, the range had to lie inside one VMA.
    pub mremap_move_multi: bool => "mremap with MREMAP_FIXED and old_len == new_len moves every VMA of a range that spans several (gaps kept; a gap at the start is EFAULT)", "6.17 (\"mm/mremap: permit mremap() move of multiple VMAs\")";
    /// `MAP_STACK` gives the new VMA `VM_NOHUGEPAGE` (`calc_vm_flag_bits`, 6.7+: "mm: mmap:
    /// map MAP_STACK to VM_NOHUGEPAGE", c4608d1bf7c6; only with THP configured since 2025,
    /// assumed here), so a thread stack does not merge with plain anonymous neighbours.
    /// Before, `MAP_STACK` was a no-op.
    pub map_stack_nohugepage: bool => "mmap with MAP_STACK sets VM_NOHUGEPAGE (a thread stack stays apart from plain anonymous neighbours)", "6.7 (c4608d1bf7c6, \"mm: mmap: map MAP_STACK to VM_NOHUGEPAGE\")";
    /// mprotect to non-writable drops `VM_ACCOUNT` from an anonymous VMA that has no
    /// anon_vma yet (`mprotect_fixup`'s `else if ((oldflags & VM_ACCOUNT) &&
    /// vma_is_anonymous(vma) && !vma->anon_vma)`, 6.7+); before, the charge stayed.
    pub mprotect_unaccounts: bool => "mprotect to non-writable clears VM_ACCOUNT of an anonymous VMA without anon_vma (it merges with never-writable neighbours again)", "6.7 (\"allow unfaulted VMAs to be unaccounted on mprotect()\"; checked on the live 6.18)";
    /// brk follows the 6.1 maple-tree code: growth expands only the heap VMA
    /// (`vma_prev_limit(start_brk)`, never the bss below it) and a shrink over an unmapped
    /// range keeps the old break. Before 6.1, `do_brk` ran a full `vma_merge` with any
    /// previous VMA and a shrink always unmapped and moved the break.
    pub brk_heap_only: bool => "brk growth expands only the heap VMA (never the bss below start_brk); a shrink over an unmapped heap keeps the break", "6.1 (maple tree brk rewrite)";
    /// anon_vmas record their fork tree's root, non-roots pin the root so it is freed
    /// last, and anon_vmas are reference counted (2.6.35+).
    pub track_root: bool => "anon_vmas record the root of their fork tree; non-roots pin it; anon_vmas are refcounted", "2.6.35 (Rik van Riel's root series)";
    /// A page that is already anonymous keeps `page->mapping` when it is mapped again from
    /// the swap cache (`if (PageAnon(page)) return;` in `__page_set_anon_rmap`); before,
    /// its first mapping chose again. On from 3.0 here (the exact release is unverified).
    pub swapin_keeps_anon_mapping: bool => "a page that is already anonymous keeps page->mapping when mapped again from the swap cache", "3.0 here (exact release unverified)";
    pub index: IndexKind => "what a walk enumerates: list (every entry), or interval_tree (entries covering the page index)", "3.7 (bf181b9f9d8d)";
    pub fork_reuse: ForkReuse => "anon_vma_fork reuse: never, degree (3.19, degree < 2 and not src's own), active_vmas (6.0)", "3.19 (7a3ef208e662); 6.0 (2555283eb40d)";
    pub merge_rule: MergeAnonRule => "is_mergeable_anon_vma: simple, singular_chain (965f55dea0e3), case_2025 (fix of incorrectly disallowed merges)", "3.0; 2025";
    pub lock_scope: LockScope => "lock of walks and updates: per_anon_vma, or root (one lock per fork tree)", "2.6.35";
    pub lock_kind: LockKind => "spin, mutex (3.0), rwsem with shared walks (3.8, 5a505085f043)", "3.0; 3.8";
    /// `MADV_FREE` exists (4.5, 854e9ed09ded "mm: support madvise(MADV_FREE)"): lazy-free
    /// marking of exclusively mapped anonymous pages that reclaim then discards unless they
    /// were written again; otherwise the advice is EINVAL.
    pub has_madv_free: bool => "MADV_FREE exists (lazy-free pages: reclaim discards them instead of swapping unless written again)", "4.5 (854e9ed09ded)";
    /// `MAP_FIXED_NOREPLACE` exists (4.17, a4ff8e8620d3): a fixed mapping that fails with
    /// EEXIST over an existing VMA. Before, `do_mmap` ignored the unknown bit, so the
    /// address was only a hint (without `MAP_FIXED`).
    pub has_map_fixed_noreplace: bool => "MAP_FIXED_NOREPLACE exists (EEXIST over an existing VMA); before, the flag was ignored and the address only a hint", "4.17 (a4ff8e8620d3)";
    pub mremap_dontunmap: DontUnmap => "MREMAP_DONTUNMAP: none (EINVAL), anon_only (private anonymous VMAs, 5.7), any (also private file VMAs, 5.13)", "5.7 (e346b3813067); 5.13 (a4609387859f)";
    /// `vma_merge` case 8 — an existing range that is a whole VMA (`middle`) and merges
    /// only with the VMA after it — keeps `next`: `next` grows down over the range and
    /// `middle` is freed, `middle`'s chain cloned into `next` only when `next` has no
    /// anon_vma (4.9, e86f15ee64d8 "mm: vma_merge: fix vm_page_prot SMP race condition
    /// against rmap_walk": `__vma_adjust`'s `remove_next == 3`, `swap(vma, next)`; 6.x
    /// `vma_merge_existing_range`'s merge-right branch, `dup_anon_vma(next, middle)`).
    /// Before, `middle` grew over `next` and imported `next`'s chain.
    pub merge_next_survives: bool => "vma_merge case 8 (a whole VMA merging only with the next one) keeps next and frees the range's VMA, cloning its chain into next only if next has no anon_vma (false: the range's VMA grows over next and imports next's chain)", "4.9 (e86f15ee64d8)";
    /// An allocation failure inside the merge of an existing range (`dup_anon_vma`'s
    /// chain clone when the VMA that grows has no anon_vma) fails the call: 6.18's
    /// `vma_modify` returns `-ENOMEM` when `vmg_nomem` (mm/vma.c 1609-1612), with nothing
    /// changed by the merge, instead of splitting as the older `vma_merge` callers did
    /// after it returned NULL. mprotect, madvise and mlock go through it; merges of a new
    /// range (mmap, the mremap copy) still fall back to a new VMA.
    pub merge_nomem_fails: bool => "an allocation failure in an existing-range merge (mprotect/madvise/mlock) fails the call with ENOMEM instead of splitting (vma_modify's vmg_nomem)", "6.12 (the 'mm: remove vma_merge()' series of 2024-08; release not checked against a tag)";
    /// `mremap` looks up the VMA at `old_addr` before anything else (EFAULT when none), a
    /// shrink in place too (5.16, 550a7d60bd5e "mm, hugepages: add mremap() support for
    /// hugepage backed vma"; 6.18 `do_mremap` → `check_prep_vma`). Before, a shrink in
    /// place only unmapped the tail, whatever was mapped. Seen only with `holes=kernel`
    /// (strict mode refuses a shrink over a hole anyway).
    pub mremap_needs_vma: bool => "mremap looks up the VMA at old_addr first (EFAULT when none), also for a shrink in place (visible with holes=kernel)", "5.16 (550a7d60bd5e)";
    /// Ranges with holes (an rmapsim option, not a kernel change): `strict` refuses a
    /// range with a hole with `BadAddress` before anything changes; `kernel` does what
    /// 6.18 does (munmap of nothing succeeds, mprotect / madvise apply VMA by VMA and fail
    /// at the hole having changed what came before, mremap shrink over holes succeeds).
    pub holes: Holes => "ranges with holes: strict (BadAddress, nothing changed) or kernel (exactly as the kernel: partial application, the kernel's errno)", "rmapsim option";
    /// mlock populates the locked range after every VMA has been locked (`__mm_populate`
    /// with `mmap_sem` dropped, 2.6.38+); before, `mlock_fixup` faulted each piece in as it
    /// locked it, so a populate error (PROT_NONE's EFAULT) left the later VMAs unlocked.
    pub mlock_populates_after: bool => "mlock locks every VMA of the range first, then populates (a populate error leaves the whole range locked); false: each piece is populated as mlock_fixup locks it, and an error stops the loop", "2.6.38 (53a7706d5ed8, \"mlock: do not hold mmap_sem for extended periods of time\": do_mlock_pages)";
    /// `mlock2(MLOCK_ONFAULT)` and `mlockall(MCL_ONFAULT)`: `VM_LOCKONFAULT`, lock
    /// without populating (4.4, the mlock2 syscall); before, the flag is EINVAL.
    pub has_mlock_onfault: bool => "mlock2(MLOCK_ONFAULT) / mlockall(MCL_ONFAULT) exist (VM_LOCKONFAULT: locked, nothing populated)", "4.4 (a8ca5d0ecbdd, \"mm: mlock: add new mlock system call\", and MCL_ONFAULT in the same series)";
    /// `mprotect_fixup` populates a private `VM_LOCKED` range that becomes writable
    /// (write faults: COW broken at once), 4.5+; before, its pages stayed as they were.
    pub mprotect_populates_locked: bool => "mprotect making a private VM_LOCKED range writable faults it in for write (populate_vma_page_range)", "4.5 (36f881883c57, \"mm: fix mprotect() behaviour on VM_LOCKED VMAs\")";
    pub memory_merge: MemoryMerge => "prctl(PR_SET_MEMORY_MERGE): none (EINVAL), after_merge (6.4: a new VMA is marked VM_MERGEABLE after its merge attempt), before_merge (6.16: before it)", "6.4 (d7597f59d1d3); 6.16 (\"mm: prevent KSM from breaking VMA merging for new VMAs\"; checked on the live 6.18)";
    /// `anon_vma_fork` allocates the child's anon_vma and its chain entry *before* cloning
    /// the parent's chain, and frees both again when the clone fails or reuses an anon_vma
    /// (7.0: "mm/rmap: eliminate partial anon_vma tear-down in anon_vma_fork()"); before,
    /// it cloned first and allocated only when nothing was reused, unlinking the half-built
    /// chain on failure.
    pub fork_alloc_first: bool => "anon_vma_fork allocates its anon_vma and chain entry before cloning and frees them on reuse or error (false: clone first, allocate only without reuse)", "7.0-rc1 (91901a441fa1)";
    /// `anon_vma_clone` allocates every chain entry before linking any (7.0: "mm/rmap:
    /// allocate anon_vma_chain objects unlocked when possible"); an ENOMEM frees them
    /// (`cleanup_partial_anon_vmas`) with no lock taken and no tree touched. Before, each
    /// entry was linked as it was allocated and a failure unlinked the ones made.
    pub clone_allocs_first: bool => "anon_vma_clone allocates every chain entry before linking any; ENOMEM frees them untouched (false: link as it goes, unlink on ENOMEM)", "7.0-rc1 (bfc2b13b05a1)";
    /// A failed `anon_vma_clone` clears `dst->anon_vma`. False is the 7.0-rc1..rc5
    /// regression: `cleanup_partial_anon_vmas` left it set, uncounted in
    /// `num_active_vmas`, on a VMA that survives (an unfaulted merge target of
    /// `dup_anon_vma`); fixed by 3a206a8649f8 "mm/rmap: clear vma->anon_vma on error".
    /// With 6.18's error path (`clone_allocs_first = false`) the unlink that follows sees
    /// the pointer instead, takes one active VMA off that anon_vma and clears it: the
    /// undercount that 6.18's comment in `anon_vma_clone` guards against.
    pub clone_error_clears_anon_vma: bool => "a failed anon_vma_clone clears dst->anon_vma (false: the 7.0-rc1..rc5 regression, a stale uncounted anon_vma on the merge target)", "2.6.34; regressed in 7.0-rc1 (bfc2b13b05a1 series), fixed in 7.0-rc6 (3a206a8649f8)";
    sizes: StructSizes {
        "size_vm_area_struct" => vm_area_struct, "bytes per vm_area_struct for memory()", "per era";
        "size_anon_vma" => anon_vma, "bytes per anon_vma for memory()", "per era";
        "size_anon_vma_chain" => anon_vma_chain, "bytes per anon_vma_chain for memory()", "per era";
    }
}
}

impl Policy {
    /// Refuse knob combinations the engine cannot run (each names the knob to fix).
    pub fn validate(&self) -> Result<(), String> {
        let chain = self.linking == Linking::Chain;
        let checks: [(bool, &str); 5] = [
            (chain || self.index == IndexKind::List, "index=IntervalTree needs linking=Chain"),
            (chain || self.fork_reuse == ForkReuse::Never, "fork_reuse needs linking=Chain"),
            (self.track_root || self.lock_scope == LockScope::PerAnonVma, "lock_scope=Root needs track_root"),
            (
                self.track_root || self.swapin_target != SwapinTarget::RootUnlessExclusive,
                "swapin_target=RootUnlessExclusive needs track_root",
            ),
            (self.track_root || self.fork_reuse == ForkReuse::Never, "fork_reuse needs track_root (parent/root links)"),
        ];
        for (ok, msg) in checks {
            if !ok {
                return Err(msg.to_string());
            }
        }
        Ok(())
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
    fn every_preset_is_valid() {
        for e in ERAS {
            assert_eq!(Policy::preset(e).map(|p| p.validate()), Some(Ok(())), "{e}");
        }
        let mut p = Policy::preset("2.6.33").unwrap();
        p.index = IndexKind::IntervalTree;
        assert!(p.validate().is_err());
    }

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

/// Edit distance of two short names (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + (ca != cb) as usize).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest of `names` to `got`, as " (did you mean X?)", when one is close.
fn suggest<'a>(got: &str, names: impl Iterator<Item = &'a str>) -> String {
    if got.len() > 64 {
        return String::new(); // no name is that long; spare the distance computation
    }
    names
        .map(|n| (distance(got, n), n))
        .filter(|&(d, n)| d <= 2.max(n.len() / 4))
        .min()
        .map_or(String::new(), |(_, n)| format!(" (did you mean {n}?)"))
}

impl Policy {
    /// Parse an era spec, `BASE[+knob=value[,knob=value...]]`: a preset with knobs
    /// changed, e.g. `6.0+fork_reuse=never`. The policy's name is the canonical spec
    /// ([`Policy::spec`]). Errors quote the spec and name the part that is wrong.
    pub fn from_spec(spec: &str) -> Result<Policy, String> {
        let (base, knobs) = match spec.split_once('+') {
            Some((b, k)) => (b.trim(), Some(k)),
            None => (spec.trim(), None),
        };
        let mut p = Policy::preset(base).ok_or_else(|| {
            format!(
                "unknown era {} in era spec {}{}; eras: {} (`rmapsim eras` lists them and their knobs)",
                quote(base),
                quote(spec),
                suggest(base, ERAS.iter().copied()),
                ERAS.join(", ")
            )
        })?;
        let mut seen: Vec<&str> = Vec::new();
        for item in knobs.into_iter().flat_map(|k| k.split(',')) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(format!("era spec {}: {} is not knob=value", quote(spec), quote(item.trim())));
            };
            let (k, v) = (k.trim(), v.trim());
            if !KNOBS.iter().any(|x| x.0 == k) {
                return Err(format!(
                    "era spec {}: unknown knob {}{} (`rmapsim eras` lists the knobs)",
                    quote(spec),
                    quote(k),
                    suggest(k, KNOBS.iter().map(|x| x.0))
                ));
            }
            if seen.contains(&k) {
                return Err(format!("era spec {}: knob {k} is given twice", quote(spec)));
            }
            seen.push(k);
            p.set_knob(k, v).map_err(|m| format!("era spec {}: {m}", quote(spec)))?;
        }
        p.validate().map_err(|m| format!("era spec {}: {m}", quote(spec)))?;
        p.name = p.spec_over(base);
        Ok(p)
    }

    /// The base preset of this policy's name (the part before `+`).
    pub fn base(&self) -> &str {
        self.name.split('+').next().unwrap_or("").trim_end_matches('*')
    }

    /// The canonical spec of this policy over preset `base`: `base` plus, in knob order,
    /// every knob whose value differs from the preset's (just `base` when none does).
    pub fn spec_over(&self, base: &str) -> String {
        let Some(preset) = Policy::preset(base) else { return base.to_string() };
        let theirs = preset.knob_values();
        let diff: Vec<String> = self
            .knob_values()
            .into_iter()
            .zip(theirs)
            .filter(|(a, b)| a.1 != b.1)
            .map(|((k, v), _)| format!("{k}={v}"))
            .collect();
        if diff.is_empty() {
            base.to_string()
        } else {
            format!("{base}+{}", diff.join(","))
        }
    }

    /// The canonical spec of this policy ([`Policy::spec_over`] its base).
    pub fn spec(&self) -> String {
        self.spec_over(self.base())
    }
}

#[cfg(test)]
mod knob_tests {
    use super::*;

    #[test]
    fn knobs_round_trip_through_text() {
        for e in ERAS {
            let p = Policy::preset(e).unwrap();
            let mut q = Policy::preset("2.6.33").unwrap();
            for (k, v) in p.knob_values() {
                q.set_knob(k, &v).unwrap();
            }
            q.name = p.name.clone();
            assert_eq!(p, q, "{e}");
            assert_eq!(p.knob_values().len(), KNOBS.len());
        }
        let mut p = Policy::preset("6.18").unwrap();
        assert!(p.set_knob("index", "btree").unwrap_err().contains("interval_tree"));
        assert!(p.set_knob("nope", "1").unwrap_err().contains("unknown knob"));
    }

    #[test]
    fn era_specs_parse_to_their_canonical_form() {
        let p = Policy::from_spec("6.0 + cow_reuse_moves_page=false , fork_reuse=never").unwrap();
        assert_eq!(p.fork_reuse, ForkReuse::Never);
        assert!(!p.cow_reuse_moves_page);
        // Knob order, not the order given; spaces dropped.
        assert_eq!(p.name, "6.0+cow_reuse_moves_page=false,fork_reuse=never");
        assert_eq!(Policy::from_spec(&p.name).unwrap(), p);
        // A knob set to the preset's own value is not part of the spec.
        assert_eq!(Policy::from_spec("6.18+index=interval_tree").unwrap().name, "6.18");
        assert_eq!(Policy::from_spec("3.19").unwrap(), Policy::preset("3.19").unwrap());
        let e = Policy::from_spec("6.0+fork_reus=never").unwrap_err();
        assert!(e.contains("unknown knob \"fork_reus\"") && e.contains("did you mean fork_reuse?"), "{e}");
        assert!(!e.contains("lock_kind"), "the error does not list every knob: {e}");
        let e = Policy::from_spec("6.1").unwrap_err();
        assert!(e.contains("unknown era \"6.1\"") && e.contains("did you mean"), "{e}");
        assert!(Policy::from_spec("6.0+fork_reuse").unwrap_err().contains("not knob=value"));
        assert!(Policy::from_spec("6.0+fork_reuse=never,fork_reuse=never").unwrap_err().contains("twice"));
        assert!(Policy::from_spec("6.0+fork_reuse=sometimes").unwrap_err().contains("bad value"));
    }
}
