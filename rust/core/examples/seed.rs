//! The seed scenario (N = P = 1000) on the engine alone, phase by phase; a target for
//! `perf record` when working on the fault and walk paths.
//!
//! `cargo run --release -p rmapsim-core --example seed -- [ERA] [REPS] [PHASE]`, where
//! PHASE `touch` skips the walk, `walk` skips the children's writes, `exit` adds the exits.
use std::time::Instant;

use rmapsim_core::mm::rmap::WalkMode;
use rmapsim_core::state::sim::Simulator;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let era = args.get(1).map_or("6.18", |s| s.as_str());
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let only = args.get(3).map_or("", |s| s.as_str());
    let (n, p) = (1000i64, 1000u64);
    for _ in 0..reps {
        let t0 = Instant::now();
        let mut sim = Simulator::with_era(era, 0).expect("era");
        let parent = sim.spawn().expect("spawn") as i64;
        let a = sim.mmap(parent, p * 4096, None, 3).expect("mmap");
        sim.touch(parent, a, p * 4096, true).expect("touch");
        let kids: Vec<i64> = sim.fork_many(parent, n).expect("fork").into_iter().map(i64::from).collect();
        let t1 = Instant::now();
        if only != "walk" {
            sim.touch_many(&kids, a, p * 4096, true).expect("touch_many");
        }
        let t2 = Instant::now();
        let mut visits = 0;
        if only != "touch" {
            visits = sim.walk_totals(None, WalkMode::Full, 1).expect("walk").vmas_visited;
        }
        let t3 = Instant::now();
        if only == "exit" {
            let mut all = kids.clone();
            all.push(parent);
            sim.exit_many(&all).expect("exit");
            println!("exits {:.1} ms", (Instant::now() - t3).as_secs_f64() * 1e3);
        }
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        println!(
            "{era}: setup+fork {:.1} ms, touch {:.1} ms, walk {:.1} ms ({visits} visits), total {:.1} ms",
            ms(t1 - t0),
            ms(t2 - t1),
            ms(t3 - t2),
            ms(t3 - t0)
        );
    }
}
