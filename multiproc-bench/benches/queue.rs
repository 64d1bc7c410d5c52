//! Criterion benchmarks of the queues.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc_bench::{queue_big_one_way, queue_round_trip, queue_small_one_way};

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    // Each scenario times a batch itself and returns the time of one message.
    for (name, run) in [
        ("round trip, small message", queue_round_trip as fn() -> Duration),
        ("one-way 64 B", queue_small_one_way),
        ("one-way 1 MiB", queue_big_one_way),
    ] {
        group.bench_function(name, |b| b.iter_custom(|iters| (0..iters).map(|_| run()).sum()));
    }
    group.finish();
}

criterion_group!(benches, queue);
criterion_main!(benches);
