//! Speed of `redact` (the worker masks every unanswered question, and every
//! stored turn with `[privacy] redact_transcripts`) over our labelled support
//! messages, English and Chinese, plus ones carrying an address and numbers.
//!
//! `cargo bench -p switchboard-domain --bench redact`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_domain::redact::redact;

const SUPPORT_EN: &str = include_str!("../sentiment-data/support-en.tsv");
const SUPPORT_ZH: &str = include_str!("../sentiment-data/support-zh.tsv");

fn messages() -> Vec<String> {
    let mut texts: Vec<String> = [SUPPORT_EN, SUPPORT_ZH]
        .iter()
        .flat_map(|source| source.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text.to_owned()))
        .collect();
    let with_data: Vec<String> = texts
        .iter()
        .take(50)
        .map(|text| {
            format!("{text} Reach me at jane.doe@example.com or +44 20 7946 0958, order 1234567.")
        })
        .collect();
    texts.extend(with_data);
    texts
}

fn bench(c: &mut Criterion) {
    let texts = messages();
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("support messages", |b| {
        b.iter(|| {
            for text in &texts {
                black_box(redact(black_box(text)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
