//! Criterion benchmark of the correlator core: simulated events applied to a RocksDB
//! store (decoded beforehand), and canonical JSON decoding on its own.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use lockstep::config::Config;
use lockstep::correlate::{Correlator, Rules};
use lockstep::decode;
use lockstep::simulate::{generate, Scenario};
use lockstep::store::Store;

fn bench(c: &mut Criterion) {
    let events = generate(&Scenario::new(3, 2_000));
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("correlate_into_rocksdb", |b| {
        b.iter_batched(
            || Correlator::new(Rules::from(&Config::default()), Store::temporary().unwrap()),
            |mut correlator| {
                let mut out = Vec::new();
                let mut sorted = events.clone();
                sorted.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
                for e in &sorted {
                    correlator.apply(e, &mut out).unwrap();
                }
                correlator.commit().unwrap();
                out.len()
            },
            BatchSize::PerIteration,
        )
    });
    let lines: Vec<String> = events.iter().map(decode::json::encode).collect();
    group.bench_function("decode_canonical_json", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| decode::json::decode(l.as_bytes()).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
