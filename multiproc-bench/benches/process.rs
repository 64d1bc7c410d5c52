//! Criterion benchmarks of starting and joining a child process.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc::StartMethod;
use multiproc_bench::spawn_join;

fn start_and_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("process/start+join");
    group.sample_size(30).measurement_time(Duration::from_secs(5));
    for (name, method) in [
        ("spawn", StartMethod::Spawn),
        ("forkserver", StartMethod::ForkServer),
        ("fork", StartMethod::Fork),
    ] {
        group.bench_function(name, |b| b.iter(|| spawn_join(method)));
    }
    group.finish();
}

criterion_group!(benches, start_and_join);
criterion_main!(benches);
