//! Speed of the sentiment scorer.
//!
//! `cargo bench -p switchboard-domain --bench sentiment`
//!
//! Besides criterion's timings it prints the one-off cost of building the tables
//! (the first call in a process) and the latency percentiles over every message of
//! our labelled support sets, one message at a time on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_domain::sentiment::{MAX_CHARS, sentiment};

const SUPPORT_EN: &str = include_str!("../sentiment-data/support-en.tsv");
const SUPPORT_ZH: &str = include_str!("../sentiment-data/support-zh.tsv");

fn messages(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text))
        .collect()
}

fn percentiles(label: &str, texts: &[&str]) {
    const ROUNDS: usize = 50;
    let mut times: Vec<Duration> = Vec::with_capacity(texts.len() * ROUNDS);
    for _ in 0..ROUNDS {
        for text in texts {
            let started = Instant::now();
            black_box(sentiment(black_box(text)));
            times.push(started.elapsed());
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "{label}: {} messages x {ROUNDS}: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        texts.len(),
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        times[times.len() - 1].as_secs_f64() * 1e6,
    );
}

fn bench(c: &mut Criterion) {
    let started = Instant::now();
    black_box(sentiment("warm up: builds the tables"));
    eprintln!(
        "first call (builds the lexicon tables): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let en = messages(SUPPORT_EN);
    let zh = messages(SUPPORT_ZH);
    percentiles("support-en", &en);
    percentiles("support-zh", &zh);
    let email = "Hello, I ordered a coffee machine three weeks ago and it still hasn't arrived. \
                 I have written twice and nobody answers. This is not acceptable!! \
                 我已经等了很久了，到底什么时候发货？？ Please refund me or I will file a chargeback. "
        .repeat(12);
    let longest: String = email.chars().cycle().take(MAX_CHARS).collect();
    eprintln!(
        "longest message read: {} characters",
        longest.chars().count()
    );

    let mut group = c.benchmark_group("sentiment");
    group.bench_function("short English", |b| {
        b.iter(|| sentiment(black_box("I'm NOT happy, worst service ever!!!")))
    });
    group.bench_function("short Chinese", |b| {
        b.iter(|| sentiment(black_box("等了好久还没收到，到底怎么回事？？")))
    });
    group.bench_function("2000-character email", |b| {
        b.iter(|| sentiment(black_box(longest.as_str())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
