//! Criterion benches of the core's hot paths. Run: `cargo bench -p rmapsim-core`
//! (small sample sizes: the whole set runs in about a minute).
//!
//! * `rmap_walk_per_candidate`: a full walk of every page, throughput in candidate VMAs,
//!   in a list era with one anon_vma per family (2.6.33), a chain list era (2.6.34) and
//!   an interval-tree era (6.18): the aggregate walk (totals, computed anon_vma by
//!   anon_vma);
//! * `rmap_walk_page_by_page`: the same walks one page at a time, with a row per page
//!   (`rmap_walk`);
//! * `fork_large_family`: `dup_mmap` of a parent whose 512 faulted pages are shared with
//!   a family of 256 (`anon_vma_fork`, `copy_page_range`), throughput in PTEs copied;
//! * `cow_fault`: `do_wp_page` copies, throughput in faults;
//! * `split_merge`: `mprotect` splitting a shared, faulted VMA in two and merging it back
//!   (`__split_vma`, `vma_merge`, `anon_vma_clone`);
//! * `exit`: `exit_mmap` of a family (zap, `unlink_anon_vmas`), throughput in PTEs;
//! * `fork_storm_build`: the seed scenario's whole build;
//! * `fuzz_6_18`: the native fuzzer on 6.18 with allocation-failure injection, throughput
//!   in operations: incremental and from-scratch structural checks, one and two workers.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rmapsim_core::Simulator;

const PG: u64 = 4096;
const RW: u8 = 3;

/// Parent maps and writes `p` pages and forks `n` children; each child writes every page
/// when `cow`. Returns the simulator, the parent, the children and the address.
fn family(era: &str, n: i64, p: u64, cow: bool) -> (Simulator, i64, Vec<i64>, u64) {
    let mut s = Simulator::with_era(era, 0).expect("era");
    let parent = s.spawn().expect("spawn") as i64;
    let a = s.mmap(parent, p * PG, None, RW).expect("mmap");
    s.touch(parent, a, p * PG, true).expect("touch");
    let kids: Vec<i64> = s.fork_many(parent, n).expect("fork").into_iter().map(i64::from).collect();
    if cow {
        s.touch_many(&kids, a, p * PG, true).expect("touch");
    }
    (s, parent, kids, a)
}

fn quick<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    g
}

fn bench_walk(c: &mut Criterion) {
    let mut g = quick(c, "rmap_walk_per_candidate");
    for era in ["2.6.33", "2.6.34", "6.18"] {
        let (s, ..) = family(era, 200, 200, true);
        let visits: u64 = s.rmap_walk(None).expect("walk").vmas_visited.iter().map(|&v| v as u64).sum();
        g.throughput(Throughput::Elements(visits));
        g.bench_with_input(BenchmarkId::from_parameter(era), &s, |b, s| {
            b.iter(|| s.walk_totals(None, rmapsim_core::WalkMode::Full, 1).expect("walk"))
        });
    }
    g.finish();
    let mut g = quick(c, "rmap_walk_page_by_page");
    for era in ["2.6.33", "2.6.34", "6.18"] {
        let (s, ..) = family(era, 200, 200, true);
        let visits: u64 = s.rmap_walk(None).expect("walk").vmas_visited.iter().map(|&v| v as u64).sum();
        g.throughput(Throughput::Elements(visits));
        g.bench_with_input(BenchmarkId::from_parameter(era), &s, |b, s| b.iter(|| s.rmap_walk(None).expect("walk")));
    }
    g.finish();
}

fn bench_fork(c: &mut Criterion) {
    let mut g = quick(c, "fork_large_family");
    for era in ["2.6.33", "2.6.34", "6.18"] {
        g.throughput(Throughput::Elements(512));
        g.bench_function(era, |b| {
            b.iter_batched_ref(
                || family(era, 256, 512, true),
                |(s, parent, ..)| s.fork(*parent).expect("fork"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_cow(c: &mut Criterion) {
    let mut g = quick(c, "cow_fault");
    for era in ["2.6.33", "2.6.34", "6.18"] {
        g.throughput(Throughput::Elements(64 * 256));
        g.bench_function(era, |b| {
            b.iter_batched_ref(
                || family(era, 64, 256, false),
                |(s, _, kids, a)| s.touch_many(kids, *a, 256 * PG, true).expect("cow"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_split_merge(c: &mut Criterion) {
    let mut g = quick(c, "split_merge");
    for era in ["2.6.34", "6.18"] {
        let (mut s, parent, _, a) = family(era, 32, 64, false);
        g.bench_function(era, |b| {
            b.iter(|| {
                s.mprotect(parent, a + 32 * PG, 32 * PG, 1).expect("split");
                s.mprotect(parent, a + 32 * PG, 32 * PG, RW).expect("merge");
            })
        });
    }
    g.finish();
}

fn bench_exit(c: &mut Criterion) {
    let mut g = quick(c, "exit");
    for era in ["2.6.33", "2.6.34", "6.18"] {
        g.throughput(Throughput::Elements(65 * 256));
        g.bench_function(era, |b| {
            b.iter_batched_ref(
                || family(era, 64, 256, true),
                |(s, parent, kids, _)| {
                    for &k in kids.iter() {
                        s.exit(k).expect("exit");
                    }
                    s.exit(*parent).expect("exit");
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_fork_cow(c: &mut Criterion) {
    let mut g = quick(c, "fork_storm_build");
    for era in ["2.6.33", "2.6.34", "6.18"] {
        g.throughput(Throughput::Elements(200 * 200));
        g.bench_function(era, |b| b.iter(|| family(era, 200, 200, true)));
    }
    g.finish();
}

fn bench_fuzz(c: &mut Criterion) {
    use rmapsim_core::harness::fuzz::{fuzz, FuzzConfig};
    let mut g = quick(c, "fuzz_6_18");
    const OPS: u64 = 200_000;
    g.throughput(Throughput::Elements(OPS));
    for (name, jobs, incremental) in [("incremental_1", 1, true), ("scratch_1", 1, false), ("incremental_2", 2, true)] {
        let cfg = FuzzConfig {
            policy: rmapsim_core::Policy::preset("6.18").expect("era"),
            seed: 11,
            max_ops: OPS,
            seconds: 0.0,
            fail_rate: 0.02,
            run_len: 400,
            full_check_every: 16,
            extended: false,
            jobs,
            incremental,
        };
        g.bench_function(name, |b| b.iter(|| fuzz(&cfg).expect("fuzz")));
    }
    g.finish();
}

criterion_group!(benches, bench_walk, bench_fork, bench_cow, bench_split_merge, bench_exit, bench_fork_cow, bench_fuzz);
criterion_main!(benches);
