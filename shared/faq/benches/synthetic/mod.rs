//! A synthetic knowledge base for the speed benchmarks: 10,000 entries with 10
//! phrasings each, generated deterministically (no data files needed). Shared by
//! `benches/matcher.rs` and `examples/latency.rs`.

use switchboard_faq::{KbEntry, KnowledgeBase};

pub const ENTRIES: usize = 10_000;
pub const PHRASINGS: usize = 10;

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
pub fn synthetic_kb() -> (KnowledgeBase, Vec<String>) {
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
