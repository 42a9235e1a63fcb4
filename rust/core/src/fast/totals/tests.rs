//! The grouped full-walk totals against the per-page walks: after every op of the COW
//! streams (`crate::fast::cow::tests`), on randomly corrupted states (dangling pointers,
//! shared tree nodes, wrong counts: both must report the same error), and across chunks
//! and thread counts. `REVIEW_SEEDS=n` for more seeds.
use crate::harness::opgen::{gen, Mix, Rng};
use crate::harness::trace::{self, Op, Outcome};
use crate::mm::mprotect::Advice;
use crate::mm::rmap::WalkMode;
use crate::policy::Policy;
use crate::state::sim::Simulator;

pub(crate) const ALL_ERAS: &[&str] = crate::policy::ERAS;

pub(crate) fn seeds() -> u64 {
    std::env::var("REVIEW_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2)
}

/// The grouped totals of four page selections (all, a chosen list with repeats, every
/// page by handle, and with `extra` stale handles) equal the per-page walks' totals and
/// the rows' sums; how many selections were compared.
pub(crate) fn walks_agree(sim: &Simulator, extra: &[u64], ctx: &str) -> u64 {
    let ids: Vec<u64> = sim.anon_pages().iter().map(|p| p.to_u64()).collect();
    let chosen: Vec<u64> = ids.iter().rev().step_by(2).chain(ids.iter().take(3)).copied().collect();
    let mut with_extra = chosen.clone();
    with_extra.extend_from_slice(extra);
    let mut n = 0;
    for pages in [None, Some(&chosen[..]), Some(&ids[..]), Some(&with_extra[..])] {
        let grouped = sim.walk_totals(pages, WalkMode::Full, 1).map_err(|e| e.to_string());
        let one = sim.walk_totals_per_page(pages, WalkMode::Full, 1).map_err(|e| e.to_string());
        assert_eq!(grouped, one, "{ctx} pages={:?}", pages.map(|p| p.len()));
        // and the rows
        if let (Ok(g), Ok(rows)) = (&grouped, sim.rmap_walk(pages)) {
            let s = |v: &Vec<u32>| v.iter().map(|&x| x as u64).sum::<u64>();
            assert_eq!(
                (
                    g.walks,
                    g.vmas_visited,
                    g.vmas_in_range,
                    g.ptes_checked,
                    g.mappings_found,
                    g.mapcount,
                    g.tree_nodes_visited
                ),
                (
                    rows.len() as u64,
                    s(&rows.vmas_visited),
                    s(&rows.vmas_in_range),
                    s(&rows.ptes_checked),
                    s(&rows.mappings_found),
                    s(&rows.mapcount),
                    s(&rows.tree_nodes_visited)
                ),
                "{ctx} rows"
            );
        }
        n += 1;
    }
    n
}

/// Random corruption of walk-read fields, then grouped vs per-page.
#[test]
fn review_corrupted_states() {
    let mut compared = 0u64;
    for &era in ALL_ERAS {
        for seed in 0..seeds() * 3 {
            let mut rng = Rng(seed ^ 0xABCDEF);
            let mut sim = Simulator::new(Policy::preset(era).unwrap(), seed);
            let mut runner = trace::Runner::default();
            runner.apply(&mut sim, &Op::Spawn);
            let mut live: Vec<u32> = vec![1];
            let n = 50 + rng.below(300);
            for _ in 0..n {
                let op = gen(&mut rng, &live, &Mix::wide(48, 16, 10), 0.0);
                match (&op, &runner.apply(&mut sim, &op)) {
                    (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
                    (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
                    _ => {}
                }
                if live.is_empty() {
                    break;
                }
            }
            for k in 0..8 {
                corrupt(&mut sim, &mut rng);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    walks_agree(&sim, &[], &format!("{era} seed {seed} corruption {k}"))
                }));
                match r {
                    Ok(c) => compared += c,
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
        }
    }
    eprintln!("corrupted: {compared}");
}

fn corrupt(sim: &mut Simulator, r: &mut Rng) {
    let avs: Vec<_> = sim.avs.iter().map(|(a, _)| a).collect();
    let avcs: Vec<_> = sim.avcs.iter().map(|(a, _)| a).collect();
    let vmas: Vec<_> = sim.vmas.iter().map(|(a, _)| a).collect();
    let pages = sim.anon_pages();
    let pick = |r: &mut Rng, n: usize| r.below(n as u64) as usize;
    match r.below(14) {
        11 if !pages.is_empty() => corrupt_mapping(sim, r, &pages),
        12 | 13 if !avcs.is_empty() => share_a_leaf(sim, r, &avcs),
        0 if !avs.is_empty() => {
            let a = avs[pick(r, avs.len())];
            let d = r.below(3) as i64 - 1;
            if let Some(x) = sim.avs.get_mut(a) {
                x.index.tree_len = (x.index.tree_len as i64 + d).max(0) as u32;
            }
        }
        1 if !vmas.is_empty() => {
            let v = vmas[pick(r, vmas.len())];
            let x = sim.vmas.get_mut(v).unwrap();
            x.ptes.corrupt_drop_last_page();
        }
        2 if !avcs.is_empty() => {
            let c = avcs[pick(r, avcs.len())];
            let x = sim.avcs.get_mut(c).unwrap();
            match r.below(3) {
                0 => x.tree.start = x.tree.start.wrapping_add(r.below(5)).wrapping_sub(2),
                1 => x.tree.last = x.tree.last.wrapping_add(r.below(5)).wrapping_sub(2),
                _ => x.tree.subtree_last = x.tree.subtree_last.wrapping_add(r.below(5)).wrapping_sub(2),
            }
        }
        3 if !vmas.is_empty() => {
            let v = vmas[pick(r, vmas.len())];
            sim.vmas.remove(v, 999);
        }
        4 if !avcs.is_empty() => {
            let c = avcs[pick(r, avcs.len())];
            sim.avcs.remove(c, 999);
        }
        5 if !avs.is_empty() => {
            let a = avs[pick(r, avs.len())];
            sim.avs.remove(a, 999);
        }
        6 if !pages.is_empty() => {
            let p = pages[pick(r, pages.len())];
            let d = [-1i64, 1, 70_000, -70_000, 5][r.below(5) as usize];
            sim.pages.add_mapcount(p, d);
        }
        7 if !vmas.is_empty() => {
            let v = vmas[pick(r, vmas.len())];
            let x = sim.vmas.get_mut(v).unwrap();
            x.pgoff = x.pgoff.wrapping_add(r.below(5)).wrapping_sub(2);
        }
        8 if !pages.is_empty() && !avs.is_empty() => {
            // move a page to another (live or freed-handle) anon_vma
            let p = pages[pick(r, pages.len())];
            let a = avs[pick(r, avs.len())];
            sim.page_update(p, |pg| pg.mapping = a);
        }
        9 if !pages.is_empty() => {
            let p = pages[pick(r, pages.len())];
            let i = r.below(64);
            sim.page_update(p, |pg| pg.index = (pg.index & !63) | i);
        }
        10 if !vmas.is_empty() => {
            let v = vmas[pick(r, vmas.len())];
            sim.vmas.get_mut(v).unwrap().ptes = Default::default();
        }
        _ => {}
    }
}

/// Many pages (beyond one 65,536-slot chunk), threads 1/2/all, every era.
#[test]
fn review_chunks_and_threads() {
    for &era in ALL_ERAS {
        let mut sim = Simulator::with_era(era, 0).unwrap();
        let parent = sim.spawn().unwrap() as i64;
        let a = sim.mmap(parent, 300 * 4096, None, 3).unwrap();
        sim.touch(parent, a, 300 * 4096, true).unwrap();
        let kids: Vec<i64> = sim.fork_many(parent, 260).unwrap().into_iter().map(i64::from).collect();
        sim.touch_many(&kids[..240], a, 300 * 4096, true).unwrap();
        sim.exit(kids[3]).unwrap();
        sim.munmap(kids[5], a + 30 * 4096, 40 * 4096).unwrap();
        sim.mremap(kids[7], a, 100 * 4096, 100 * 4096, true, Some(a + 0x1000_0000), false).unwrap();
        let k8 = kids[8];
        sim.madvise(k8, a, 50 * 4096, Advice::PageOut).unwrap();
        sim.touch(kids[250], a, 300 * 4096, true).unwrap();
        let want = sim.walk_totals_per_page(None, WalkMode::Full, 1).unwrap();
        assert!(want.walks > 65536);
        for t in [1, 2, 3, 0] {
            assert_eq!(sim.walk_totals(None, WalkMode::Full, t).unwrap(), want, "{era} t={t}");
        }
        let ids: Vec<u64> = sim.anon_pages().iter().map(|p| p.to_u64()).collect();
        let chosen: Vec<u64> = ids.iter().step_by(3).chain(ids.iter().rev().step_by(5)).copied().collect();
        let want = sim.walk_totals_per_page(Some(&chosen), WalkMode::Full, 1).unwrap();
        for t in [1, 2, 0] {
            assert_eq!(sim.walk_totals(Some(&chosen), WalkMode::Full, t).unwrap(), want, "{era} chosen t={t}");
        }
    }
}

/// `page->mapping` of a random page set to a freed anon_vma's handle (held aside) or a
/// bogus one.
fn corrupt_mapping(sim: &mut Simulator, r: &mut Rng, pages: &[crate::state::objects::PageId]) {
    // page->mapping set to a freed anon_vma handle (held aside), or a bogus one
    let p = pages[r.below(pages.len() as u64) as usize];
    let freed =
        sim.avs.iter().map(|(a, _)| a).next().map(|a| crate::state::arena::Id::new(a.index(), a.generation() + 7));
    let bogus = if r.chance(0.5) {
        freed.unwrap_or(crate::state::arena::Id::new(u32::MAX, 0))
    } else {
        crate::state::arena::Id::new(u32::MAX - 1, 3)
    };
    sim.page_update(p, |pg| pg.mapping = bogus);
}

/// A random chain entry's tree node gets a leaf of another as a child (a DAG), the
/// anon_vma's tree count adjusted (or not).
fn share_a_leaf(sim: &mut Simulator, r: &mut Rng, avcs: &[crate::state::objects::AvcId]) {
    // share a leaf: X.left/right = leaf Y (a DAG), tree_len adjusted (or not)
    let x = avcs[r.below(avcs.len() as u64) as usize];
    let leaves: Vec<_> = avcs
        .iter()
        .copied()
        .filter(|&c| c != x && sim.avcs.get(c).is_some_and(|a| a.tree.left.is_none() && a.tree.right.is_none()))
        .collect();
    if leaves.is_empty() {
        return;
    }
    let y = leaves[r.below(leaves.len() as u64) as usize];
    let av = sim.avcs.get(x).unwrap().anon_vma;
    let xa = sim.avcs.get_mut(x).unwrap();
    if xa.tree.left.is_none() {
        xa.tree.left = Some(y);
    } else if xa.tree.right.is_none() {
        xa.tree.right = Some(y);
    } else {
        return;
    }
    if r.chance(0.7) {
        if let Some(a) = sim.avs.get_mut(av) {
            a.index.tree_len += 1;
        }
    }
}
