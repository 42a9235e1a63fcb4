//! Criterion benches of the core's hot paths. Run: `cargo bench -p rmapsim-core`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmapsim_core::Simulator;

const PG: u64 = 4096;

/// Parent maps and writes `p` pages, forks `n` children, each child writes every page.
fn seed(era: &str, n: i64, p: u64) -> Simulator {
    let mut s = Simulator::with_era(era, 0).expect("era");
    let parent = s.spawn().expect("spawn") as i64;
    let a = s.mmap(parent, p * PG, None, 3).expect("mmap");
    s.touch(parent, a, p * PG, true).expect("touch");
    let kids: Vec<i64> = s.fork_many(parent, n).expect("fork").into_iter().map(i64::from).collect();
    s.touch_many(&kids, a, p * PG, true).expect("touch");
    s
}

fn bench_walk(c: &mut Criterion) {
    let mut g = c.benchmark_group("rmap_walk_per_candidate");
    for era in ["2.6.33", "2.6.34"] {
        let s = seed(era, 200, 200);
        let visits: u64 = s.rmap_walk(None).expect("walk").vmas_visited.iter().map(|&v| v as u64).sum();
        g.throughput(Throughput::Elements(visits));
        g.bench_with_input(BenchmarkId::from_parameter(era), &s, |b, s| b.iter(|| s.rmap_walk(None).expect("walk")));
    }
    g.finish();
}

fn bench_fork_cow(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork_storm_build");
    g.sample_size(10);
    for era in ["2.6.33", "2.6.34"] {
        g.throughput(Throughput::Elements(200 * 200));
        g.bench_function(era, |b| b.iter(|| seed(era, 200, 200)));
    }
    g.finish();
}

criterion_group!(benches, bench_walk, bench_fork_cow);
criterion_main!(benches);
