//! Scenario tests of the core (public API only), written from the kernel's rules.

use rmapsim_core::state::objects::prot;
use rmapsim_core::*;

const PG: u64 = PAGE_SIZE;
const RW: u8 = prot::READ | prot::WRITE;

fn sim(era: &str) -> Simulator {
    Simulator::with_era(era, 0).unwrap()
}

/// Parent maps and writes `p` pages, forks `n` children, each child writes every page.
fn seed(era: &str, n: i64, p: u64) -> Simulator {
    let mut s = sim(era);
    let parent = s.spawn().unwrap() as i64;
    let a = s.mmap(parent, p * PG, None, RW).unwrap();
    s.touch(parent, a, p * PG, true).unwrap();
    let kids: Vec<i64> = s.fork_many(parent, n).unwrap().into_iter().map(i64::from).collect();
    s.touch_many(&kids, a, p * PG, true).unwrap();
    s.check().unwrap();
    s
}

#[test]
fn seed_scenario_full_walk_closed_forms() {
    for &(n, p) in &[(1i64, 1u64), (3, 5), (10, 7), (40, 3)] {
        // 2.6.33: one family anon_vma listing all N+1 VMAs; every walk visits all.
        let s = seed("2.6.33", n, p);
        let st = s.rmap_walk(None).unwrap();
        assert_eq!(st.len() as u64, p * (n as u64 + 1));
        assert!(st.vmas_visited.iter().all(|&v| v as i64 == n + 1));
        assert!(st.mappings_found.iter().all(|&m| m == 1));
        let c = s.counts();
        assert_eq!((c.anon_vma, c.anon_vma_chain), (1, 0));

        // 2.6.34: the parent's anon_vma lists parent + N children; a child's own lists 1.
        let s = seed("2.6.34", n, p);
        let st = s.rmap_walk(None).unwrap();
        let total: u64 = st.vmas_visited.iter().map(|&v| v as u64).sum();
        assert_eq!(total, p * (n as u64 + 1) + p * n as u64);
        // mean = (2N+1)/(N+1)
        assert_eq!(total * (n as u64 + 1), st.len() as u64 * (2 * n as u64 + 1));
        let c = s.counts();
        assert_eq!((c.anon_vma, c.anon_vma_chain), (n as u64 + 1, 2 * n as u64 + 1));
    }
}

#[test]
fn page_referenced_stops_at_mapcount() {
    // 2.6.33: list = parent, child1..childN (list_add_tail at prepare and fork). The page
    // of child k is found at position k+1; parent pages at position 1.
    let (n, p) = (6i64, 2u64);
    let s = seed("2.6.33", n, p);
    let st = s.page_referenced(None).unwrap();
    let total: u64 = st.vmas_visited.iter().map(|&v| v as u64).sum();
    let expect = p + p * (1..=n as u64).map(|k| k + 1).sum::<u64>();
    assert_eq!(total, expect);
    // 2.6.34: every page is found first on its anon_vma's list.
    let s = seed("2.6.34", n, p);
    let st = s.page_referenced(None).unwrap();
    assert!(st.vmas_visited.iter().all(|&v| v == 1));
}

#[test]
fn cow_reuse_moves_page_only_in_chain_era() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let addr = s.mmap(a, PG, None, RW).unwrap();
        s.touch(a, addr, PG, true).unwrap();
        let b = s.fork(a).unwrap() as i64;
        let page = s.page_at(a, addr).unwrap().unwrap();
        assert_eq!(s.page_at(b, addr).unwrap(), Some(page));
        s.exit(a).unwrap();
        // b is now the only mapper: the write reuses the page.
        s.touch(b, addr, PG, true).unwrap();
        assert_eq!(s.page_at(b, addr).unwrap(), Some(page));
        let (mapping, _, mapcount, _) = s.page_info(page).unwrap();
        assert_eq!(mapcount, 1);
        let own = s.vmas_of(b).unwrap()[0].anon_vma.unwrap();
        if *era == "2.6.34" {
            assert_eq!(mapping, own, "page_move_anon_rmap moved it to the child's anon_vma");
        }
        s.check().unwrap();
    }
}

#[test]
fn munmap_middle_splits_and_keeps_chains() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let addr = s.mmap(a, 8 * PG, None, RW).unwrap();
        s.touch(a, addr, 8 * PG, true).unwrap();
        let b = s.fork(a).unwrap() as i64;
        s.munmap(b, addr + 2 * PG, 3 * PG).unwrap();
        let v = s.vmas_of(b).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].start, v[0].end, v[0].pgoff), (addr, addr + 2 * PG, addr / PG));
        assert_eq!((v[1].start, v[1].end, v[1].pgoff), (addr + 5 * PG, addr + 8 * PG, addr / PG + 5));
        assert_eq!(v[0].anon_vma, v[1].anon_vma);
        assert_eq!(v[0].chain_len, v[1].chain_len);
        s.check().unwrap();
        s.exit(a).unwrap();
        s.exit(b).unwrap();
        s.check().unwrap();
        assert_eq!(s.counts(), Counts::default());
    }
}

#[test]
fn prepare_reuses_neighbour_only_with_singular_chain_in_2_6_34() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        // X (rw) then Y (r) directly above it: different prot, so vma_merge keeps them
        // apart, but anon_vma_compatible ignores prot.
        let x = s.mmap(a, 2 * PG, Some(0x1000_0000), RW).unwrap();
        s.touch(a, x, PG, true).unwrap();
        let b = s.fork(a).unwrap() as i64; // b's X has a chain of 2 in 2.6.34
        let y = s.mmap(b, 2 * PG, Some(x + 2 * PG), prot::READ | prot::WRITE | prot::EXEC).unwrap();
        s.touch(b, y, PG, true).unwrap();
        let v = s.vmas_of(b).unwrap();
        assert_eq!(v.len(), 2);
        if era == &"2.6.34-rc1" {
            // The patch as posted reused a neighbour whose chain has two entries: the two
            // VMAs now share an anon_vma but not a chain (the bug d0e9fe1758f2 fixed).
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains("invariant 4"), "{e}");
            continue;
        }
        if s.policy().prepare_reuse == rmapsim_core::policy::PrepareReuse::AnyCompatible {
            assert_eq!(v[0].anon_vma, v[1].anon_vma, "2.6.33 and the patch as posted reuse any compatible neighbour");
        } else {
            assert_ne!(v[0].anon_vma, v[1].anon_vma, "rc4 rule: neighbour chain is not singular");
        }
        // In the parent the neighbour's chain is singular: reuse in both eras.
        let y2 = s.mmap(a, 2 * PG, Some(x + 2 * PG), prot::READ | prot::WRITE | prot::EXEC).unwrap();
        s.touch(a, y2, PG, true).unwrap();
        let v = s.vmas_of(a).unwrap();
        assert_eq!(v[0].anon_vma, v[1].anon_vma);
        s.check().unwrap();
    }
}

#[test]
fn mmap_merges_with_neighbours_and_fixed_replaces() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let base = 0x2000_0000;
        s.mmap(a, 2 * PG, Some(base), RW).unwrap();
        s.mmap(a, 2 * PG, Some(base + 4 * PG), RW).unwrap();
        assert_eq!(s.vmas_of(a).unwrap().len(), 2);
        s.mmap(a, 2 * PG, Some(base + 2 * PG), RW).unwrap(); // case 1: fills the hole
        let v = s.vmas_of(a).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].start, v[0].end, v[0].pgoff), (base, base + 6 * PG, base / PG));
        s.touch(a, base, 6 * PG, true).unwrap();
        let pages = s.counts().page;
        s.mmap(a, 2 * PG, Some(base + 2 * PG), prot::READ).unwrap(); // MAP_FIXED over pages
        assert_eq!(s.counts().page, pages - 2);
        assert_eq!(s.vmas_of(a).unwrap().len(), 3);
        s.check().unwrap();
    }
}

/// Fail every allocation of a fork/COW/munmap scenario in turn: each failure raises
/// OutOfMemory, leaves every invariant intact, and after all processes exit nothing is
/// left allocated.
#[test]
fn every_allocation_failure_unwinds_cleanly() {
    for era in ERAS {
        let scenario = |s: &mut Simulator| -> Result<()> {
            let a = s.spawn()? as i64;
            let addr = s.mmap(a, 6 * PG, Some(0x4000_0000), RW)?;
            s.touch(a, addr, 6 * PG, true)?;
            let b = s.fork(a)? as i64;
            let c = s.fork(b)? as i64;
            s.touch(c, addr, 3 * PG, true)?;
            s.munmap(b, addr + 2 * PG, 2 * PG)?;
            s.mmap(c, 2 * PG, Some(addr + 6 * PG), RW)?;
            s.touch(c, addr + 6 * PG, 2 * PG, true)?;
            s.exec(b)?;
            // VMA surgery and swap
            s.mprotect(c, addr + PG, 2 * PG, prot::READ)?;
            s.madvise(c, addr + 5 * PG, 2 * PG, rmapsim_core::Advice::Random)?;
            let d = s.fork(c)? as i64;
            s.mremap(d, addr + 3 * PG, 2 * PG, 4 * PG, true, Some(0x5000_0000), false)?;
            let pages: Vec<u64> = s.anon_pages().iter().map(|p| p.to_u64()).collect();
            s.try_to_unmap(Some(&pages[..2]))?;
            s.touch(d, 0x5000_0000, 4 * PG, true)?;
            s.touch(c, addr + 6 * PG, 2 * PG, true)?;
            s.mprotect(c, addr, 8 * PG, RW)?;
            s.madvise(c, addr, 8 * PG, rmapsim_core::Advice::Normal)?;
            Ok(())
        };
        let mut leaks_seen = 0;
        let mut absorbed = 0;
        let mut clean = sim(era);
        scenario(&mut clean).unwrap();
        let total = clean.allocations();
        assert!(total > 20);
        for k in 1..=total {
            let mut s = sim(era);
            s.inject_enomem(Inject::Nth(k)).unwrap();
            let r = scenario(&mut s);
            let msg = match r {
                Err(SimError::OutOfMemory(m)) => m,
                // vma_merge absorbs its own ENOMEM (the kernel's `if (err) return NULL;`)
                // and the operation goes on by splitting: no error reaches the caller.
                Ok(()) => {
                    absorbed += 1;
                    s.check().unwrap_or_else(|e| panic!("{era} k={k} (absorbed): {e}"));
                    String::new()
                }
                Err(e) => panic!("{era} k={k}: {e}"),
            };
            if !s.policy().fork_error_unlinks && msg.contains("@anon_vma_fork") {
                // The patch as posted leaks the cloned chain of the VMA dup_mmap frees:
                // the checker must see the dangling entries.
                let e = s.check().unwrap_err().to_string();
                assert!(e.contains("freed") || e.contains("leak"), "{era} k={k}: {e}");
                leaks_seen += 1;
                continue;
            }
            s.check().unwrap_or_else(|e| panic!("{era} k={k}: {e}"));
            for pid in s.pids() {
                s.exit(pid as i64).unwrap();
            }
            s.check().unwrap();
            assert_eq!(s.counts(), Counts::default(), "{era} k={k}: leak");
        }
        // anon_vma_fork has two allocations after the clone (its anon_vma and its chain
        // entry) per faulted parent VMA: fork b (1 VMA) + fork c (1) + fork d (5 VMAs:
        // the mprotect and madvise splits) = 2 + 2 + 10 failure points that leak in rc1.
        assert_eq!(leaks_seen, if era == &"2.6.34-rc1" { 14 } else { 0 }, "{era}");
        eprintln!("{era}: {total} allocations failed in turn, {absorbed} absorbed by vma_merge");
    }
}

#[test]
fn stale_page_handle_is_reported() {
    let mut s = sim("2.6.34");
    let a = s.spawn().unwrap() as i64;
    let addr = s.mmap(a, PG, None, RW).unwrap();
    s.touch(a, addr, PG, true).unwrap();
    let page = s.page_at(a, addr).unwrap().unwrap();
    s.munmap(a, addr, PG).unwrap();
    let e = s.page_referenced(Some(&[page.to_u64()])).unwrap_err();
    assert!(matches!(e, SimError::StaleHandle(ref m) if m.contains("freed by operation #4")), "{e}");
}

/// The "overly anonymous anon_vma" (LWN 2010-04-13): A writes a page, forks B, the page
/// is swapped out and stays in the swap cache, B faults it in first, then A maps it
/// from the swap cache. In the patch as posted the page lands in B's own anon_vma, which
/// A's VMA is not linked to: rmap can no longer find A's mapping.
#[test]
fn swapin_by_child_first_loses_parent_mapping_only_in_rc1() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let addr = s.mmap(a, PG, None, RW).unwrap();
        s.touch(a, addr, PG, true).unwrap();
        let b = s.fork(a).unwrap() as i64;
        let page = s.page_at(a, addr).unwrap().unwrap();
        let st = s.try_to_unmap(Some(&[page.to_u64()])).unwrap();
        assert_eq!(st.mappings_found, vec![2]);
        assert_eq!(s.counts().swap_cache, 1);
        s.check().unwrap();
        s.touch(b, addr, PG, false).unwrap(); // B swaps it in first (read fault)
        s.touch(a, addr, PG, false).unwrap(); // A maps it from the swap cache
        assert_eq!(s.page_at(a, addr).unwrap(), Some(page));
        assert_eq!(s.page_at(b, addr).unwrap(), Some(page));
        let r = s.check();
        if era == &"2.6.34-rc1" {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("invariant 1") && e.contains(&format!("pid {a}")), "{e}");
            // and once B exits, its anon_vma is freed under the page A still maps
            s.exit(b).unwrap();
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains("freed"), "{e}");
        } else {
            r.unwrap();
            s.exit(b).unwrap();
            s.check().unwrap();
        }
    }
}

#[test]
fn swap_entries_are_shared_on_fork_and_freed_on_exit() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let addr = s.mmap(a, 4 * PG, None, RW).unwrap();
        s.touch(a, addr, 4 * PG, true).unwrap();
        s.try_to_unmap(None).unwrap();
        assert_eq!(s.drop_swap_cache(None).unwrap(), 4);
        let c = s.counts();
        assert_eq!((c.page, c.swap_slot, c.pte), (0, 4, 4));
        let b = s.fork(a).unwrap() as i64;
        s.check().unwrap();
        // a write swap-in by A: the slot is shared with B, so A cannot take the page
        // exclusively: it reads it into the swap cache and copies it.
        s.touch(a, addr, PG, true).unwrap();
        let c = s.counts();
        assert_eq!((c.page, c.swap_cache), (2, 1));
        s.check().unwrap();
        s.exit(b).unwrap();
        s.exit(a).unwrap();
        assert_eq!(s.counts(), Counts::default());
    }
}

#[test]
fn mprotect_splits_then_remerges() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let base = 0x3000_0000;
        s.mmap(a, 10 * PG, Some(base), RW).unwrap();
        s.touch(a, base, 10 * PG, true).unwrap();
        s.mprotect(a, base + 3 * PG, 4 * PG, prot::READ).unwrap();
        let v = s.vmas_of(a).unwrap();
        assert_eq!(
            v.iter().map(|x| (x.start, x.end)).collect::<Vec<_>>(),
            vec![(base, base + 3 * PG), (base + 3 * PG, base + 7 * PG), (base + 7 * PG, base + 10 * PG)]
        );
        assert!(v.iter().all(|x| x.anon_vma == v[0].anon_vma));
        s.check().unwrap();
        s.mprotect(a, base + 3 * PG, 4 * PG, RW).unwrap(); // case 6: all three merge
        let v = s.vmas_of(a).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(s.counts().anon_vma_chain, if era == &"2.6.33" { 0 } else { 1 });
        s.check().unwrap();
    }
}

#[test]
fn mremap_move_keeps_pgoff_and_pages() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let old = s.mmap(a, 4 * PG, Some(0x5000_0000), RW).unwrap();
        s.touch(a, old, 4 * PG, true).unwrap();
        let b = s.fork(a).unwrap() as i64;
        let pages: Vec<_> = (0..4).map(|i| s.page_at(b, old + i * PG).unwrap()).collect();
        let new = s.mremap(b, old, 4 * PG, 8 * PG, true, Some(0x6000_0000), false).unwrap();
        assert_eq!(new, 0x6000_0000);
        let v = s.vmas_of(b).unwrap();
        assert_eq!((v[0].start, v[0].end, v[0].pgoff), (new, new + 8 * PG, old / PG));
        let moved: Vec<_> = (0..4).map(|i| s.page_at(b, new + i * PG).unwrap()).collect();
        assert_eq!(moved, pages);
        s.check().unwrap();
        s.touch(b, new, 8 * PG, true).unwrap();
        s.check().unwrap();
        // shrink and grow in place
        assert_eq!(s.mremap(a, old, 4 * PG, 2 * PG, false, None, false).unwrap(), old);
        assert_eq!(s.mremap(a, old, 2 * PG, 6 * PG, false, None, false).unwrap(), old);
        s.check().unwrap();
    }
}

/// In the patch as posted, vma_adjust's importer cloned its own (empty) chain: filling
/// the hole between an unfaulted VMA and a faulted one makes the merged VMA point at an
/// anon_vma it is not linked to.
#[test]
fn importer_clone_bug_only_in_rc1() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let base = 0x7000_0000;
        s.mmap(a, 2 * PG, Some(base), RW).unwrap();
        s.mmap(a, 2 * PG, Some(base + 4 * PG), RW).unwrap();
        s.touch(a, base + 4 * PG, 2 * PG, true).unwrap(); // only the upper VMA faulted
        s.mmap(a, 2 * PG, Some(base + 2 * PG), RW).unwrap(); // case 1: prev imports next
        assert_eq!(s.vmas_of(a).unwrap().len(), 1);
        let r = s.check();
        if era == &"2.6.34-rc1" {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("freed") || e.contains("not on its chain"), "{e}");
        } else {
            r.unwrap();
        }
    }
}

/// A latent defect the simulator exposes in the 2.6.33/2.6.34 code it models. `copy_vma`
/// (mremap move) calls `vma_merge` with the source's anon_vma; `is_mergeable_anon_vma`
/// of that time accepts a neighbour *without* anon_vma, so a faulted VMA moved back
/// next to an unfaulted, pgoff-contiguous VMA is merged into it by `vma_adjust` case 2,
/// which has no importer step for a new range. `move_page_tables` then moves the pages
/// into a VMA with no anon_vma, and unmapping the source frees their anon_vma. Later
/// kernels refuse this merge (`is_mergeable_anon_vma` gained the singular-chain test
/// of "mmap: avoid merging cloned VMAs"); an unfaulted target has an empty chain.
#[test]
fn mremap_back_beside_unfaulted_prev_loses_the_anon_vma() {
    for era in ERAS {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let home = 0x1000_0000;
        s.mmap(a, 2 * PG, Some(home), RW).unwrap();
        s.touch(a, home, 2 * PG, true).unwrap();
        s.mremap(a, home, 2 * PG, 2 * PG, true, Some(0x2000_0000), false).unwrap(); // pgoff kept
        s.mmap(a, PG, Some(home - PG), RW).unwrap(); // unfaulted, pgoff contiguous
        s.mremap(a, 0x2000_0000, 2 * PG, 2 * PG, true, Some(home), false).unwrap();
        let v = s.vmas_of(a).unwrap();
        match s.policy().merge_rule {
            rmapsim_core::policy::MergeAnonRule::Simple => {
                assert_eq!((v.len(), v[0].start, v[0].end, v[0].anon_vma), (1, home - PG, home + 2 * PG, None));
                let e = s.check().unwrap_err().to_string();
                assert!(e.contains("dangling page->mapping"), "{era}: {e}");
            }
            // 965f55dea0e3: an unfaulted target (empty chain) refuses the faulted range.
            rmapsim_core::policy::MergeAnonRule::SingularChain => {
                assert_eq!(v.len(), 2, "{era}");
                s.check().unwrap();
            }
            // 2025 rule: the merge is allowed and the target inherits the anon_vma.
            rmapsim_core::policy::MergeAnonRule::Case2025 => {
                assert_eq!((v.len(), v[0].start, v[0].end), (1, home - PG, home + 2 * PG), "{era}");
                assert!(v[0].anon_vma.is_some());
                s.check().unwrap();
            }
        }
    }
}

/// Fork → parent exits → child writes, G times (Daniel Forrest's "Repeated fork() causes
/// SLAB to grow without bound"). Derived by hand from each era's rules (see
/// docs/design.md): without fork reuse every generation adds a level that the next
/// child still links; with 3.19's degree rule or 6.0's num_children/num_active_vmas rule
/// the third generation reuses the abandoned level and the tree stays at three.
#[test]
fn generation_chain_grows_only_without_fork_reuse() {
    for era in ERAS {
        for g in 1..=6u64 {
            let mut s = sim(era);
            let mut p = s.spawn().unwrap() as i64;
            let addr = s.mmap(p, PG, None, RW).unwrap();
            s.touch(p, addr, PG, true).unwrap();
            for _ in 0..g {
                let c = s.fork(p).unwrap() as i64;
                s.exit(p).unwrap();
                s.touch(c, addr, PG, true).unwrap();
                p = c;
            }
            s.check().unwrap_or_else(|e| panic!("{era} G={g}: {e}"));
            let c = s.counts();
            let chain = s.vmas_of(p).unwrap()[0].chain_len as u64;
            let want = match s.policy().fork_reuse {
                _ if s.policy().linking == rmapsim_core::policy::Linking::Legacy => (1, 0),
                rmapsim_core::policy::ForkReuse::Never => (g + 1, g + 1),
                _ => (g.min(2) + 1, g.min(2) + 1),
            };
            assert_eq!((c.anon_vma, chain), want, "{era} G={g}");
            assert_eq!(c.page, 1);
        }
    }
}

/// A region split by mprotect into K single-page VMAs, shared by a family of N+1
/// processes: the parent page's anon_vma links K(N+1) VMAs. A list walk visits all of
/// them; an interval-tree walk visits only the N+1 that cover the page's index.
#[test]
fn interval_tree_visits_only_covering_pieces() {
    let (k, n) = (8u64, 5i64);
    for era in ERAS {
        let mut s = sim(era);
        let p = s.spawn().unwrap() as i64;
        let base = 0x4000_0000;
        s.mmap(p, k * PG, Some(base), RW).unwrap();
        s.touch(p, base, k * PG, true).unwrap();
        for i in (1..k).step_by(2) {
            s.mprotect(p, base + i * PG, PG, prot::READ).unwrap();
        }
        assert_eq!(s.vmas_of(p).unwrap().len() as u64, k);
        s.fork_many(p, n).unwrap();
        s.check().unwrap();
        let page = s.page_at(p, base + 3 * PG).unwrap().unwrap();
        let st = s.rmap_walk(Some(&[page.to_u64()])).unwrap();
        let (visited, in_range, found) = (st.vmas_visited[0] as u64, st.vmas_in_range[0] as u64, st.mappings_found[0]);
        assert_eq!((in_range, found), (n as u64 + 1, n as u32 + 1), "{era}");
        match s.policy().index {
            rmapsim_core::policy::IndexKind::List if s.policy().linking == rmapsim_core::policy::Linking::Legacy => {
                assert_eq!(visited, k * (n as u64 + 1), "{era}")
            }
            rmapsim_core::policy::IndexKind::List => assert_eq!(visited, k * (n as u64 + 1), "{era}"),
            rmapsim_core::policy::IndexKind::IntervalTree => {
                assert_eq!(visited, n as u64 + 1, "{era}");
                assert!(st.tree_nodes_visited[0] as u64 > n as u64);
            }
        }
    }
}

/// The ordering claim of issue 4: with early stop (`try_to_unmap`), a page whose only
/// mapper was forked last costs N+1 candidates, one whose only mapper was forked first
/// costs 2 (the parent's entry comes first in both lists and trees).
#[test]
fn try_to_unmap_cost_depends_on_fork_order() {
    let n = 6i64;
    for era in ["2.6.34", "3.0", "3.8", "6.18"] {
        let mut s = sim(era);
        let p = s.spawn().unwrap() as i64;
        let addr = s.mmap(p, 2 * PG, None, RW).unwrap();
        s.touch(p, addr, 2 * PG, true).unwrap();
        let kids = s.fork_many(p, n).unwrap();
        // parent gives up its pages: page 0 stays mapped only in the first child, page 1
        // only in the last
        let (first, last) = (kids[0] as i64, kids[n as usize - 1] as i64);
        let p0 = s.page_at(p, addr).unwrap().unwrap();
        let p1 = s.page_at(p, addr + PG).unwrap().unwrap();
        // MADV_DONTNEED zaps the entries but keeps the VMAs (and their list entries).
        for &c in &kids {
            let c = c as i64;
            if c != first {
                s.madvise(c, addr, PG, rmapsim_core::Advice::DontNeed).unwrap();
            }
            if c != last {
                s.madvise(c, addr + PG, PG, rmapsim_core::Advice::DontNeed).unwrap();
            }
        }
        s.madvise(p, addr, 2 * PG, rmapsim_core::Advice::DontNeed).unwrap();
        let st = s.try_to_unmap(Some(&[p0.to_u64(), p1.to_u64()])).unwrap();
        assert_eq!(st.mappings_found, vec![1, 1], "{era}");
        assert_eq!(st.vmas_visited, vec![2, n as u32 + 1], "{era}: first child at 2, last at N+1");
        s.check().unwrap();
    }
}

/// mprotect case 6 (prev and next both absorb the middle) where only the VMA after the
/// middle is faulted: 2.6.3x's vma_adjust finds the exporter on its second pass, after
/// the middle was freed; an ENOMEM there leaves mprotect holding a freed VMA. Kernels
/// that choose the exporter first fail before changing anything.
#[test]
fn case6_second_pass_enomem() {
    for era in ["2.6.34", "3.19", "6.0", "6.18"] {
        let mut s = sim(era);
        let a = s.spawn().unwrap() as i64;
        let base = 0x2000_0000;
        // P and N read-write (VM_ACCOUNT), N faulted; V read-only (no VM_ACCOUNT) in
        // between, then made read-write: all three alike, case 6. (Made read-only the other
        // way round, 6.7+ would uncharge the unfaulted V but not the faulted N.)
        s.mmap(a, 3 * PG, Some(base), RW).unwrap(); // P, unfaulted
        s.mmap(a, 3 * PG, Some(base + 7 * PG), RW).unwrap(); // N, faulted
        s.touch(a, base + 7 * PG, 3 * PG, true).unwrap();
        s.mmap(a, 4 * PG, Some(base + 3 * PG), prot::READ).unwrap(); // V, unfaulted, in between
        let v = s.vmas_of(a).unwrap();
        assert_eq!((v.len(), v[1].anon_vma, v[2].anon_vma.is_some()), (3, None, true));
        s.inject_enomem(Inject::Nth(1)).unwrap();
        let r = s.mprotect(a, base + 3 * PG, 4 * PG, RW);
        if s.policy().merge_nomem_fails {
            // 6.12+ vma_modify: the failed merge fails mprotect with ENOMEM, nothing changed
            let e = r.unwrap_err().to_string();
            assert!(e.contains("anon_vma_chain@anon_vma_clone"), "{era}: {e}");
            assert_eq!(s.vmas_of(a).unwrap().len(), 3);
        } else if s.policy().adjust_imports_upfront {
            r.unwrap(); // the merge is abandoned (absorbed ENOMEM) and V changes alone
            assert_eq!(s.vmas_of(a).unwrap().len(), 3);
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("use-after-free"), "{era}: {e}");
        }
        s.check().unwrap_or_else(|e| panic!("{era}: {e}"));
    }
}

/// Batch walks give identical results at any thread count, and a parallel
/// try_to_unmap leaves the same state as a sequential one (repeated pages included).
#[test]
fn parallel_walks_match_sequential() {
    for era in ["2.6.33", "2.6.34", "6.18"] {
        let s = seed(era, 12, 40);
        let one = s.rmap_walk_par(None, 1).unwrap();
        for t in [0, 2, 4] {
            assert_eq!(s.rmap_walk_par(None, t).unwrap(), one, "{era} threads={t}");
            assert_eq!(s.page_referenced_par(None, t).unwrap(), s.page_referenced(None).unwrap());
        }
        let mut pages: Vec<u64> = s.anon_pages().iter().map(|p| p.to_u64()).collect();
        pages.extend(pages[..5].to_vec()); // repeats
        let mut a = seed(era, 12, 40);
        let mut b = seed(era, 12, 40);
        let ra = a.try_to_unmap_par(Some(&pages), 1).unwrap();
        let rb = b.try_to_unmap_par(Some(&pages), 4).unwrap();
        assert_eq!(ra, rb, "{era}");
        assert_eq!(a.counts(), b.counts());
        a.check().unwrap();
        assert_eq!(
            format!("{:?}", a.page_referenced(None).unwrap()),
            format!("{:?}", b.page_referenced(None).unwrap())
        );
    }
}

/// The contention picture of the 2010 thread, on 16 simulated CPUs: one family lock held
/// for N+1 candidates per walk (2.6.33) keeps most CPUs waiting; per-anon_vma locks
/// (2.6.34) and shared rwsem walks (3.8+) do not.
#[test]
fn contention_model_shows_the_family_lock() {
    let m = rmapsim_core::harness::contention::ReclaimModel {
        cpus: 16,
        per_candidate: 1,
        handoff: 1,
        outside: 10,
        writer_every: 0,
        writer_hold: 0,
    };
    let waiting_share = |era: &str| {
        let s = seed(era, 30, 20);
        let r = s.contention(None, &m).unwrap();
        r.wait_time as f64 / (r.makespan as f64 * 16.0)
    };
    let (old, chain, rw) = (waiting_share("2.6.33"), waiting_share("2.6.34"), waiting_share("3.8"));
    assert!(old > 0.5, "2.6.33: {old}");
    assert!(chain < 0.2 && rw < 0.05, "2.6.34 {chain}, 3.8 {rw}");
}
