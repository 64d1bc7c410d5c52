//! Criterion benchmarks of the cross-process synchronization primitives.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc::Lock;
use multiproc_bench::{event_ping_pong, value_increments_two_processes};

fn sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    let lock = Lock::new().expect("lock");
    group.bench_function("lock+unlock uncontended", |b| {
        b.iter(|| drop(std::hint::black_box(lock.lock().expect("lock"))))
    });
    // These scenarios time a batch themselves and return the time of one op.
    group.bench_function("value increment, 2 processes", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| value_increments_two_processes()).sum())
    });
    group.bench_function("event ping-pong, 2 processes", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| event_ping_pong()).sum())
    });
    group.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
