//! Speed and size of the matcher on a synthetic knowledge base of 10,000 entries
//! with 10 phrasings each (generated deterministically, no data files needed).
//!
//! `cargo bench -p switchboard-faq --bench matcher`
//!
//! Besides criterion's timings it prints the query latency percentiles and the
//! size of the compiled matcher.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_faq::Matcher;

mod synthetic;
use synthetic::{ENTRIES, PHRASINGS, synthetic_kb};

fn bench(c: &mut Criterion) {
    let (kb, queries) = synthetic_kb();
    let started = Instant::now();
    let matcher = Matcher::build(&kb);
    let compile = started.elapsed();
    let bytes = matcher.to_bytes();

    // latency distribution of single queries
    let mut times: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            black_box(matcher.rank(q, 10));
            t.elapsed()
        })
        .collect();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let started = Instant::now();
    let loaded = Matcher::from_bytes(&bytes).expect("round trip");
    let load = started.elapsed();
    assert_eq!(loaded.len(), ENTRIES);
    let hits = queries
        .iter()
        .enumerate()
        .filter(|(i, q)| matcher.rank(q, 1).top().is_some_and(|t| t.entry == i * 10))
        .count();
    eprintln!(
        "synthetic KB {ENTRIES} x {PHRASINGS}: compile {:.0} ms, load {:.1} ms, compiled size {:.1} MB, \
         query p50 {:.0} us p99 {:.0} us, P@1 {:.3}",
        compile.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        bytes.len() as f64 / 1e6,
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        hits as f64 / queries.len() as f64,
    );

    let mut group = c.benchmark_group("faq");
    group.sample_size(10);
    group.bench_function("compile 10k x 10", |b| {
        b.iter(|| black_box(Matcher::build(&kb)))
    });
    group.bench_function("load compiled", |b| {
        b.iter(|| black_box(Matcher::from_bytes(&bytes).unwrap()))
    });
    group.finish();
    let mut next = 0;
    c.bench_function("rank one query", |b| {
        b.iter(|| {
            next = (next + 1) % queries.len();
            black_box(matcher.rank(&queries[next], 10))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
