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
use switchboard_faq::{KbEntry, KnowledgeBase, Matcher};

const ENTRIES: usize = 10_000;
const PHRASINGS: usize = 10;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Roughly Zipf-distributed index in 0..n.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

fn vocabulary(rng: &mut Rng, size: usize) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ter", "pan", "dor", "shi", "vel", "ro", "na", "qui", "zen", "bar",
        "tis", "mu", "fle", "gro", "ple", "sto", "wen",
    ];
    (0..size)
        .map(|_| {
            (0..2 + rng.below(2))
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect()
        })
        .collect()
}

/// Each entry has its own four topic words; phrasings mix two or three of them
/// with common (Zipf-distributed) words.
fn synthetic_kb() -> (KnowledgeBase, Vec<String>) {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let words = vocabulary(&mut rng, 30_000);
    let phrase = |rng: &mut Rng, topic: &[usize]| {
        let mut out = Vec::new();
        for _ in 0..4 + rng.below(5) {
            out.push(words[rng.zipf(2_000)].clone());
        }
        for _ in 0..2 + rng.below(2) {
            let at = rng.below(out.len() + 1);
            out.insert(at, words[topic[rng.below(topic.len())]].clone());
        }
        out.join(" ")
    };
    let mut entries = Vec::with_capacity(ENTRIES);
    let mut queries = Vec::new();
    for i in 0..ENTRIES {
        let topic: Vec<usize> = (0..4).map(|_| 2_000 + rng.below(28_000)).collect();
        let mut phrasings: Vec<String> = (0..PHRASINGS).map(|_| phrase(&mut rng, &topic)).collect();
        let question = phrasings.remove(0);
        if i % 10 == 0 {
            queries.push(phrase(&mut rng, &topic));
        }
        entries.push(KbEntry {
            id: format!("e{i:05}"),
            question,
            answer: format!("answer {i}"),
            paraphrases: phrasings,
            ..KbEntry::default()
        });
    }
    (KnowledgeBase { entries }, queries)
}

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
