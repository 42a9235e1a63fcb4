//! Differential tests of the fast paths against the general code they shortcut:
//! `cow_copy_run` (on vs off: same outcomes and the same complete `Debug` state after
//! every op, counters and write stats included) and the grouped full-walk totals (vs the
//! per-page walks, also on randomly corrupted states). `REVIEW_SEEDS=n` for more seeds.
use super::*;
use crate::mm::memory::COW_FAST;
use crate::mm::rmap::WalkMode;
use crate::state::sim::Inject;

const ALL_ERAS: &[&str] = crate::policy::ERAS;

/// A wider generator than gen_op: more processes, larger window and lengths, more COW.
fn gen_big(r: &mut Rng, live: &[u32], fail_rate: f64, window: u64, maxlen: u64, maxp: u64) -> Op {
    if fail_rate > 0.0 && r.chance(fail_rate) {
        return Op::Enomem { nth: Some(1 + r.below(8)) };
    }
    let p = live[r.below(live.len() as u64) as usize];
    let addr = BASE + r.below(window) * PAGE_SIZE;
    let len = (1 + r.below(maxlen)) * PAGE_SIZE;
    let prot = [3u8, 3, 1, 3, 0, 3, 3][r.below(7) as usize];
    match r.below(100) {
        0..=9 if (live.len() as u64) < maxp => Op::Fork { p },
        0..=9 => Op::Exit { p },
        10..=13 if live.len() > 1 => Op::Exit { p },
        10..=13 => Op::Fork { p },
        14 => Op::Exec { p },
        15 if r.chance(0.3) => Op::BrkBase { p, addr: BASE + 2 * window * PAGE_SIZE },
        15 => Op::Brk { p, addr: BASE + (2 * window + r.below(6)) * PAGE_SIZE },
        16..=23 if r.chance(0.4) => {
            let file = Some((1 + r.below(2) as u32, (addr - BASE) + r.below(3) * PAGE_SIZE));
            Op::Mmap { p, addr: Some(addr), len, prot, file, noreserve: false, stack: false }
        }
        16..=23 => Op::Mmap { p, addr: Some(addr), len, prot, file: None, noreserve: false, stack: false },
        24..=27 => Op::Munmap { p, addr, len },
        28..=55 => Op::Touch { p, addr, len, write: true },
        56..=62 => Op::Touch { p, addr, len, write: false },
        63..=69 => Op::Mprotect { p, addr, len, prot },
        70..=77 => {
            let advice = [
                Advice::Random,
                Advice::Normal,
                Advice::Sequential,
                Advice::DontNeed,
                Advice::PageOut,
                Advice::PageOut,
                Advice::DontFork,
                Advice::DoFork,
            ][r.below(8) as usize];
            Op::Madvise { p, addr, len, advice }
        }
        78..=86 => {
            let new_addr = if r.chance(0.5) { Some(BASE + (window + r.below(window)) * PAGE_SIZE) } else { None };
            Op::Mremap { p, addr, old_len: len, new_len: (1 + r.below(maxlen)) * PAGE_SIZE, may_move: true, new_addr }
        }
        87..=93 => Op::TryToUnmap { p, addr },
        94..=95 => Op::DropSwapCache,
        _ => Op::Touch { p, addr, len, write: true },
    }
}

fn gen_cow(r: &mut Rng, live: &[u32], fail_rate: f64) -> Op {
    if fail_rate > 0.0 && r.chance(fail_rate) {
        return Op::Enomem { nth: Some(1 + r.below(24)) };
    }
    let window = 32;
    let p = live[r.below(live.len() as u64) as usize];
    let addr = BASE + r.below(window) * PAGE_SIZE;
    let len = (1 + r.below(32)) * PAGE_SIZE;
    match r.below(100) {
        0..=14 if (live.len() as u64) < 8 => Op::Fork { p },
        0..=14 => Op::Exit { p },
        15..=17 if live.len() > 2 => Op::Exit { p },
        15..=17 => Op::Fork { p },
        18..=22 if r.chance(0.5) => {
            let file = Some((1 + r.below(2) as u32, (addr - BASE) + r.below(3) * PAGE_SIZE));
            Op::Mmap { p, addr: Some(addr), len, prot: 3, file, noreserve: false, stack: false }
        }
        18..=22 => Op::Mmap { p, addr: Some(addr), len, prot: 3, file: None, noreserve: false, stack: false },
        23..=25 => Op::Mprotect { p, addr, len, prot: [1u8, 3, 3][r.below(3) as usize] },
        26..=31 => {
            let advice = [Advice::DontNeed, Advice::PageOut, Advice::PageOut, Advice::DontFork, Advice::DoFork]
                [r.below(5) as usize];
            Op::Madvise { p, addr, len, advice }
        }
        32..=36 => {
            let new_addr = if r.chance(0.5) { Some(BASE + (window + r.below(window)) * PAGE_SIZE) } else { None };
            Op::Mremap { p, addr, old_len: len, new_len: (1 + r.below(32)) * PAGE_SIZE, may_move: true, new_addr }
        }
        37..=40 => Op::TryToUnmap { p, addr },
        41 => Op::DropSwapCache,
        42..=50 => Op::Touch { p, addr, len, write: false },
        51 => Op::Munmap { p, addr, len },
        _ => Op::Touch { p, addr, len, write: true },
    }
}

fn dump(sim: &Simulator) -> String {
    format!("{sim:?}")
}

fn walks_agree(sim: &Simulator, extra: &[u64], ctx: &str) -> u64 {
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

/// Run a stream on two simulators (COW fast path on / off), comparing outcomes and full
/// state after each op, and the grouped walk with the per-page walk on the first.
#[allow(clippy::too_many_arguments)]
fn diff_run(
    era: &str,
    seed: u64,
    nops: usize,
    big: bool,
    ext: bool,
    fail: f64,
    rate: Option<f64>,
    dump_every: usize,
) -> (u64, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9) ^ 0xC0FFEE);
    let mut a = Simulator::new(Policy::preset(era).unwrap(), seed);
    let mut b = Simulator::new(Policy::preset(era).unwrap(), seed);
    let mut ra = trace::Runner::default();
    let mut rb = trace::Runner::default();
    ra.apply(&mut a, &Op::Spawn);
    COW_FAST.with(|c| c.set(false));
    rb.apply(&mut b, &Op::Spawn);
    COW_FAST.with(|c| c.set(true));
    if let Some(p) = rate {
        a.inject_enomem(Inject::Rate(p)).unwrap();
        b.inject_enomem(Inject::Rate(p)).unwrap();
    }
    let mut live: Vec<u32> = vec![1];
    let mut seen: Vec<u64> = Vec::new();
    let mut ops = vec![Op::Spawn];
    let mut walks = 0;
    for i in 0..nops {
        let op = if big && !ext {
            gen_cow(&mut rng, &live, fail)
        } else if big {
            gen_big(&mut rng, &live, fail, 64, 24, 12)
        } else {
            gen_op(&mut rng, &live, fail, ext)
        };
        ops.push(op.clone());
        let oa = ra.apply(&mut a, &op);
        COW_FAST.with(|c| c.set(false));
        let ob = rb.apply(&mut b, &op);
        COW_FAST.with(|c| c.set(true));
        assert_eq!(oa, ob, "{era} seed {seed} op {i} {op}\n{}", trace::format(&ops, Some(era)));
        if dump_every > 0 && i % dump_every == 0 {
            assert!(
                dump(&a) == dump(&b),
                "{era} seed {seed} op {i} {op} state differs\n{}",
                trace::format(&ops, Some(era))
            );
        }
        match (&op, &oa) {
            (Op::Fork { .. }, Outcome::Ok(s)) => live.push(*s as u32),
            (Op::Exit { p }, Outcome::Ok(_)) => live.retain(|x| x != p),
            _ => {}
        }
        for id in a.anon_pages() {
            if seen.len() < 4096 && rng.chance(0.05) {
                seen.push(id.to_u64());
            }
        }
        let stale: Vec<u64> = if rng.chance(0.1) { seen.iter().rev().take(3).copied().collect() } else { vec![] };
        walks += walks_agree(&a, &stale, &format!("{era} seed {seed} op {i} {op}"));
        if live.is_empty() {
            break;
        }
    }
    assert!(dump(&a) == dump(&b), "{era} seed {seed} final state differs");
    assert_eq!(a.allocations(), b.allocations());
    assert_eq!(a.allocation_sites(), b.allocation_sites());
    assert_eq!(a.write_stats(), b.write_stats());
    assert_eq!(a.op_count(), b.op_count());
    (ops.len() as u64, walks)
}

fn seeds() -> u64 {
    std::env::var("REVIEW_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2)
}

#[test]
fn review_small_streams() {
    let (mut ops, mut walks) = (0, 0);
    for &era in ALL_ERAS {
        for seed in 0..seeds() {
            for (ext, fail) in [(true, 0.02), (false, 0.02), (true, 0.15)] {
                let (o, w) = diff_run(era, seed * 7 + 1, 600, false, ext, fail, None, 1);
                ops += o;
                walks += w;
            }
        }
    }
    eprintln!("small: {ops} ops, {walks} walk comparisons");
}

#[test]
fn review_cow_streams() {
    let (mut ops, mut walks) = (0, 0);
    for &era in ALL_ERAS {
        for seed in 0..seeds() {
            for (fail, rate) in [(0.0, None), (0.08, None), (0.0, Some(0.02))] {
                let (o, w) = diff_run(era, seed * 17 + 3, 400, true, false, fail, rate, 1);
                ops += o;
                walks += w;
            }
        }
    }
    let (hits, oom) = (crate::mm::memory::COW_HITS.with(|c| c.get()), crate::mm::memory::COW_OOM.with(|c| c.get()));
    eprintln!("cow: cow_copy_run copies {hits}, injected ENOMEM inside it {oom}");
    assert!(hits > 1000 && oom > 10, "the fast path was exercised: {hits} copies, {oom} ENOMEM");
    eprintln!("cow: {ops} ops, {walks} walk comparisons");
}

#[test]
fn review_big_streams() {
    let (mut ops, mut walks) = (0, 0);
    for &era in ALL_ERAS {
        for seed in 0..seeds() {
            for (fail, rate) in [(0.0, None), (0.05, None), (0.0, Some(0.03))] {
                let (o, w) = diff_run(era, seed * 13 + 5, 500, true, true, fail, rate, 5);
                ops += o;
                walks += w;
            }
        }
    }
    eprintln!("big: {ops} ops, {walks} walk comparisons");
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
                let op = gen_big(&mut rng, &live, 0.0, 48, 16, 10);
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
        11 if !pages.is_empty() => {
            // page->mapping set to a freed anon_vma handle (held aside), or a bogus one
            let p = pages[pick(r, pages.len())];
            let freed = sim
                .avs
                .iter()
                .map(|(a, _)| a)
                .next()
                .map(|a| crate::state::arena::Id::new(a.index(), a.generation() + 7));
            let bogus = if r.chance(0.5) {
                freed.unwrap_or(crate::state::arena::Id::new(u32::MAX, 0))
            } else {
                crate::state::arena::Id::new(u32::MAX - 1, 3)
            };
            sim.page_update(p, |pg| pg.mapping = bogus);
        }
        12 | 13 if !avcs.is_empty() => {
            // share a leaf: X.left/right = leaf Y (a DAG), tree_len adjusted (or not)
            let x = avcs[pick(r, avcs.len())];
            let leaves: Vec<_> = avcs
                .iter()
                .copied()
                .filter(|&c| c != x && sim.avcs.get(c).is_some_and(|a| a.tree.left.is_none() && a.tree.right.is_none()))
                .collect();
            if leaves.is_empty() {
                return;
            }
            let y = leaves[pick(r, leaves.len())];
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
        sim.mremap(kids[7], a, 100 * 4096, 100 * 4096, true, Some(a + 0x1000_0000)).unwrap();
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
