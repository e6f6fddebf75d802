//! A minimal timing harness shared by the benches (plain `main()` programs, `harness = false`).
#![allow(dead_code)]

use std::time::Instant;

/// Runs `f` `iters` times (after a warm-up of a tenth of that), best of 5; prints ns per iteration.
pub fn bench(name: &str, iters: u64, f: impl FnMut()) -> f64 {
    bench_items(name, iters, 1, f)
}

/// As `bench`, for an `f` that handles `items` things per call: prints ns per item.
pub fn bench_items(name: &str, iters: u64, items: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / (iters * items) as f64);
    }
    println!("{name:<48} {best:>10.1} ns/op {:>14.0} op/s", 1e9 / best);
    best
}
