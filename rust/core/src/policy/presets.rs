//! The presets: one row per kernel release, each the change that release made to the
//! preset before it (the knobs themselves are declared once, in `policy_knobs!`).

use super::*;

/// Names of the presets, oldest first.
pub const ERAS: &[&str] =
    &["2.6.33", "2.6.34-rc1", "2.6.34", "2.6.35", "3.0", "3.7", "3.8", "3.19", "6.0", "6.18", "7.0-rc1", "7.0"];

/// The default era.
pub const DEFAULT_ERA: &str = "6.18";

/// 2.6.33: the first preset, every knob at its legacy value.
fn legacy() -> Policy {
    Policy {
        name: "2.6.33".into(),
        linking: Linking::Legacy,
        prepare_reuse: PrepareReuse::AnyCompatible,
        cow_reuse_moves_page: false,
        prepare_links_at_head: false,
        swapin_target: SwapinTarget::VmaAnonVma,
        clone_reverses_chain: false,
        importer_clones_exporter: true,
        fork_error_unlinks: true,
        has_wipeonfork: false,
        has_thp_advice: false,
        thp_advice_strict: false,
        has_dump_advice: false,
        adjust_imports_upfront: false,
        mremap_expand_merges: false,
        mremap_move_multi: false,
        map_stack_nohugepage: false,
        mprotect_unaccounts: false,
        brk_heap_only: false,
        track_root: false,
        swapin_keeps_anon_mapping: false,
        index: IndexKind::List,
        fork_reuse: ForkReuse::Never,
        merge_rule: MergeAnonRule::Simple,
        lock_scope: LockScope::PerAnonVma,
        lock_kind: LockKind::Spin,
        has_madv_free: false,
        has_map_fixed_noreplace: false,
        mremap_dontunmap: DontUnmap::None,
        merge_next_survives: false,
        merge_nomem_fails: false,
        mremap_needs_vma: false,
        holes: Holes::Strict,
        mlock_populates_after: false,
        has_mlock_onfault: false,
        mprotect_populates_locked: false,
        memory_merge: MemoryMerge::None,
        fork_alloc_first: false,
        clone_allocs_first: false,
        clone_error_clears_anon_vma: true,
        sizes: StructSizes { vm_area_struct: 176, anon_vma: 24, anon_vma_chain: 0 },
    }
}

/// A release and the change it made to the preset before it.
type Row = (&'static str, fn(Policy) -> Policy);

/// The presets after 2.6.33, oldest first.
const ROWS: &[Row] = &[
    ("2.6.34-rc1", |p| Policy {
        linking: Linking::Chain,
        cow_reuse_moves_page: true,
        prepare_links_at_head: true,
        clone_reverses_chain: true,
        importer_clones_exporter: false,
        fork_error_unlinks: false,
        sizes: StructSizes { anon_vma_chain: 48, ..p.sizes },
        ..p
    }),
    ("2.6.34", |p| Policy {
        prepare_reuse: PrepareReuse::SingularChain,
        swapin_target: SwapinTarget::OldestUnlessExclusive,
        clone_reverses_chain: false,
        importer_clones_exporter: true,
        fork_error_unlinks: true,
        ..p
    }),
    ("2.6.35", |p| Policy {
        track_root: true,
        swapin_target: SwapinTarget::RootUnlessExclusive,
        lock_scope: LockScope::Root,
        // list_add_tail at prepare came with THP's ordering rule (2.6.38); kept at head here.
        sizes: StructSizes { anon_vma: 32, ..p.sizes },
        ..p
    }),
    ("3.0", |p| Policy {
        lock_kind: LockKind::Mutex,
        merge_rule: MergeAnonRule::SingularChain,
        swapin_keeps_anon_mapping: true,
        prepare_links_at_head: false,
        has_thp_advice: true,
        thp_advice_strict: true,
        mlock_populates_after: true,
        sizes: StructSizes { anon_vma: 64, ..p.sizes },
        ..p
    }),
    ("3.7", |p| Policy {
        index: IndexKind::IntervalTree,
        has_dump_advice: true,
        sizes: StructSizes { vm_area_struct: 184, anon_vma: 56, anon_vma_chain: 64 },
        ..p
    }),
    ("3.8", |p| Policy { lock_kind: LockKind::RwSem, ..p }),
    ("3.19", |p| Policy {
        fork_reuse: ForkReuse::Degree,
        sizes: StructSizes { vm_area_struct: 200, anon_vma: 72, anon_vma_chain: 64 },
        ..p
    }),
    ("6.0", |p| Policy {
        fork_reuse: ForkReuse::ActiveVmas,
        has_wipeonfork: true,
        thp_advice_strict: false,
        adjust_imports_upfront: true,
        has_madv_free: true,
        has_map_fixed_noreplace: true,
        mremap_dontunmap: DontUnmap::Any,
        // 4.9 (e86f15ee64d8): vma_merge case 8 keeps next (remove_next == 3).
        merge_next_survives: true,
        // 5.16 (550a7d60bd5e): do_mremap looks up old_addr's VMA first.
        mremap_needs_vma: true,
        has_mlock_onfault: true,
        mprotect_populates_locked: true,
        sizes: StructSizes { vm_area_struct: 200, anon_vma: 96, anon_vma_chain: 64 },
        ..p
    }),
    ("6.18", |p| Policy {
        merge_rule: MergeAnonRule::Case2025,
        // 6.12 (vma_merge_struct): vma_modify fails on vmg_nomem instead of splitting.
        merge_nomem_fails: true,
        mremap_expand_merges: true,
        mremap_move_multi: true,
        map_stack_nohugepage: true,
        mprotect_unaccounts: true,
        brk_heap_only: true,
        memory_merge: MemoryMerge::BeforeMerge,
        sizes: StructSizes { vm_area_struct: 192, anon_vma: 96, anon_vma_chain: 64 },
        ..p
    }),
    // The anon_vma clean-up series (Lorenzo Stoakes, merged for 7.0-rc1): fork allocates
    // first, clone allocates every entry before linking and produces the source chain
    // reversed — with the regression of cleanup_partial_anon_vmas() keeping a stale
    // dst->anon_vma (rc1..rc5). Struct sizes as 6.18 (same struct text; not measured).
    ("7.0-rc1", |p| Policy {
        clone_reverses_chain: true,
        fork_alloc_first: true,
        clone_allocs_first: true,
        clone_error_clears_anon_vma: false,
        ..p
    }),
    // 7.0-rc6 (3a206a8649f8, "mm/rmap: clear vma->anon_vma on error"); 7.0 and 7.1 as well.
    ("7.0", |p| Policy { clone_error_clears_anon_vma: true, ..p }),
];

impl Policy {
    /// The named preset, or `None` for an unknown name.
    pub fn preset(name: &str) -> Option<Policy> {
        let mut p = legacy();
        for &(era, change) in ROWS {
            if p.name == name {
                return Some(p);
            }
            p = Policy { name: era.into(), ..change(p) };
        }
        (p.name == name).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_are_the_eras_in_order() {
        let names: Vec<&str> = std::iter::once("2.6.33").chain(ROWS.iter().map(|r| r.0)).collect();
        assert_eq!(names, ERAS);
    }
}
