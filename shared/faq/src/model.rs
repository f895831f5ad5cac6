//! A learned linear model: multinomial logistic regression over hashed word, word
//! bigram and character n-gram features, one class per entry, trained on the
//! entry's phrasings when the knowledge base is compiled.
//!
//! Weights exist only for (feature, entry) pairs where the feature occurs in one
//! of the entry's phrasings, so the model is sparse (it scales with the size of
//! the knowledge base, not with features × entries) and scoring a message is a
//! walk over short posting lists. Features that occur in a large share of the
//! entries carry no class-specific weight (they are left to the lexical scorer).
//! Training is plain SGD in a fixed, seeded order: the same knowledge base always
//! compiles to the same model.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::text;

/// Training passes over the phrasings.
const EPOCHS: usize = 8;
/// Initial learning rate (inputs are L2-normalised); it decays as 1/(1 + epoch/2).
const LEARNING_RATE: f32 = 1.5;
/// A feature gets class weights only if it occurs in at most this many entries.
/// This only bites on large knowledge bases, where it bounds training and scoring
/// work (such features are nearly useless for telling entries apart anyway).
const MAX_ENTRIES_PER_FEATURE: usize = 160;
/// Training stops after this many weight updates (summed over epochs), so that
/// compiling a very large knowledge base stays fast; small ones get all epochs.
const UPDATE_BUDGET: usize = 600_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// Sorted feature hashes; a feature's index is its position.
    pub(crate) hashes: Vec<u64>,
    /// Weights of feature f are `offsets[f]..offsets[f + 1]` in `classes`/`weights`.
    pub(crate) offsets: Vec<u32>,
    pub(crate) classes: Vec<u32>,
    pub(crate) weights: Vec<f32>,
    pub(crate) entries: u32,
}

/// Hashed features of a phrasing and the entries that use it.
type RawExample = (Vec<(u64, f32)>, Vec<u32>);

/// One training example: a distinct phrasing and the entries that use it.
struct Example {
    features: Vec<(u32, f32)>,
    gold: Vec<u32>,
}

thread_local! {
    static SCORES: RefCell<(Vec<f32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Model output for a message: softmax probabilities of the entries it touched.
#[derive(Debug, Clone, Default)]
pub struct ModelScores {
    /// `(entry, probability)` for entries with any evidence, sorted by entry.
    pub probabilities: Vec<(u32, f32)>,
    /// The probability every other entry gets.
    pub floor: f32,
}

impl LinearModel {
    /// Train on `(entry, text)` phrasings.
    pub fn train<'a>(entries: u32, phrasings: impl IntoIterator<Item = (u32, &'a str)>) -> Self {
        // distinct phrasings, in first-seen order, with every entry that uses them
        let mut by_text: HashMap<Vec<(u64, u32)>, usize> = HashMap::new();
        let mut raw: Vec<RawExample> = Vec::new();
        for (entry, phrasing) in phrasings {
            let features = text::features(phrasing);
            if features.is_empty() {
                continue;
            }
            let key: Vec<(u64, u32)> = features.iter().map(|(h, v)| (*h, v.to_bits())).collect();
            match by_text.get(&key) {
                Some(&i) => {
                    if !raw[i].1.contains(&entry) {
                        raw[i].1.push(entry);
                    }
                }
                None => {
                    by_text.insert(key, raw.len());
                    raw.push((features, vec![entry]));
                }
            }
        }
        drop(by_text);

        // support: which entries each feature occurs in
        let mut pairs: Vec<(u64, u32)> = Vec::new();
        for (features, gold) in &raw {
            for (hash, _) in features {
                pairs.extend(gold.iter().map(|&g| (*hash, g)));
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let cap = MAX_ENTRIES_PER_FEATURE;
        let mut hashes = Vec::new();
        let mut offsets = Vec::new();
        let mut classes = Vec::new();
        let mut start = 0;
        while start < pairs.len() {
            let mut end = start;
            while end < pairs.len() && pairs[end].0 == pairs[start].0 {
                end += 1;
            }
            if end - start <= cap {
                hashes.push(pairs[start].0);
                offsets.push(classes.len() as u32);
                classes.extend(pairs[start..end].iter().map(|p| p.1));
            }
            start = end;
        }
        offsets.push(classes.len() as u32);
        drop(pairs);
        let weights = vec![0.0; classes.len()];
        let mut model = LinearModel {
            hashes,
            offsets,
            classes,
            weights,
            entries,
        };

        let examples: Vec<Example> = raw
            .into_iter()
            .map(|(features, gold)| Example {
                features: model.lookup(&features),
                gold,
            })
            .filter(|e| !e.features.is_empty())
            .collect();
        model.fit(&examples);
        model
    }

    /// Map hashed features to model feature indices, dropping unknown ones.
    fn lookup(&self, features: &[(u64, f32)]) -> Vec<(u32, f32)> {
        features
            .iter()
            .filter_map(|(h, v)| self.hashes.binary_search(h).ok().map(|i| (i as u32, *v)))
            .collect()
    }

    fn fit(&mut self, examples: &[Example]) {
        let n = self.entries as usize;
        let mut scores = vec![0.0f32; n];
        let mut touched: Vec<u32> = Vec::new();
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let work_per_epoch: usize = examples
            .iter()
            .flat_map(|e| &e.features)
            .map(|&(f, _)| (self.offsets[f as usize + 1] - self.offsets[f as usize]) as usize)
            .sum();
        let epochs = (UPDATE_BUDGET / work_per_epoch.max(1)).clamp(1, EPOCHS);
        for epoch in 0..epochs {
            // deterministic Fisher-Yates shuffle
            for i in (1..order.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let rate = LEARNING_RATE / (1.0 + epoch as f32 / 2.0);
            for &i in &order {
                let example = &examples[i];
                self.accumulate(&example.features, &mut scores, &mut touched);
                softmax_in_place(&mut scores, &touched, n);
                let target = 1.0 / example.gold.len() as f32;
                for &(f, x) in &example.features {
                    let range =
                        self.offsets[f as usize] as usize..self.offsets[f as usize + 1] as usize;
                    for k in range {
                        let c = self.classes[k];
                        let y = if example.gold.contains(&c) {
                            target
                        } else {
                            0.0
                        };
                        let gradient = scores[c as usize] - y;
                        self.weights[k] -= rate * gradient * x;
                    }
                }
                for &c in &touched {
                    scores[c as usize] = 0.0;
                }
            }
        }
    }

    /// Add the raw linear scores of the touched entries into `scores`.
    fn accumulate(&self, features: &[(u32, f32)], scores: &mut [f32], touched: &mut Vec<u32>) {
        touched.clear();
        for &(f, x) in features {
            let range = self.offsets[f as usize] as usize..self.offsets[f as usize + 1] as usize;
            for (c, w) in self.classes[range.clone()].iter().zip(&self.weights[range]) {
                let slot = &mut scores[*c as usize];
                if *slot == 0.0 {
                    touched.push(*c);
                }
                // keep touched slots non-zero so that they are recorded once
                *slot += w * x + f32::MIN_POSITIVE;
            }
        }
    }

    /// Softmax probabilities for a message.
    pub fn score(&self, query: &str) -> ModelScores {
        let features = self.lookup(&text::features(query));
        let n = self.entries as usize;
        SCORES.with(|cell| {
            let (scores, touched) = &mut *cell.borrow_mut();
            if scores.len() < n {
                scores.resize(n, 0.0);
            }
            self.accumulate(&features, scores, touched);
            let floor = softmax_in_place(scores, touched, n);
            touched.sort_unstable();
            let probabilities = touched
                .iter()
                .map(|&c| (c, std::mem::take(&mut scores[c as usize])))
                .collect();
            ModelScores {
                probabilities,
                floor,
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Turn the touched entries' scores into probabilities in place; every untouched
/// entry has score 0. Returns the untouched entries' probability.
fn softmax_in_place(scores: &mut [f32], touched: &[u32], entries: usize) -> f32 {
    let untouched = (entries - touched.len()) as f32;
    let mut max = if untouched > 0.0 { 0.0f32 } else { f32::MIN };
    for &c in touched {
        max = max.max(scores[c as usize]);
    }
    let floor_exp = (-max).exp();
    let mut total = untouched * floor_exp;
    for &c in touched {
        let e = (scores[c as usize] - max).exp();
        scores[c as usize] = e;
        total += e;
    }
    for &c in touched {
        // a probability is never exactly zero here, so touched slots stay marked
        scores[c as usize] = (scores[c as usize] / total).max(f32::MIN_POSITIVE);
    }
    floor_exp / total
}

/// A small deterministic generator for the training order.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
