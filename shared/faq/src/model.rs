//! A learned linear model: multinomial logistic regression over hashed word, word
//! bigram and character n-gram features, one class per entry (or per group of
//! entries with identical phrasings, see `Matcher`), trained on the phrasings
//! when the knowledge base is compiled.
//!
//! Weights exist only for (feature, class) pairs where the feature occurs in one
//! of the class's phrasings, so the model is sparse (it scales with the size of
//! the knowledge base, not with features × classes) and scoring a message is a
//! walk over short posting lists. Features that occur in a large share of the
//! classes carry no class-specific weight (they are left to the lexical scorer).
//! Training is plain SGD in a fixed, seeded order: the same knowledge base always
//! compiles to the same model.

use crate::lexical::HashMapU64;
use crate::text;
use std::cell::RefCell;

/// Training passes over the phrasings.
const EPOCHS: usize = 8;
/// Initial learning rate (inputs are L2-normalised); it decays as 1/(1 + epoch/2).
const LEARNING_RATE: f32 = 1.5;
/// A feature gets class weights only if it occurs in at most this many entries.
/// This only bites on large knowledge bases, where it bounds training and scoring
/// work (such features are nearly useless for telling entries apart anyway).
const MAX_ENTRIES_PER_FEATURE: usize = 160;
/// Training is also bounded by examples seen (summed over epochs): a knowledge
/// base with 20,000 distinct phrasings or fewer gets every epoch, one with 100,000
/// gets one and a half (but every example is seen at least once).
const STEP_BUDGET: usize = 160_000;
/// Gradients below this (classes the model already rules out) are not applied.
const MIN_GRADIENT: f32 = 1e-5;
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
    /// Open-addressing table from feature hash to feature index (`u32::MAX` is
    /// empty); derived from `hashes`, rebuilt on load.
    pub(crate) table: Vec<u32>,
}

/// Gives feature hashes small ids in first-seen order, and turns a phrasing's raw
/// features into `(id, value)` pairs: a repeated feature keeps its largest value,
/// and the phrasing is scaled to unit L2 norm.
#[derive(Default)]
pub struct Interner {
    ids: HashMapU64<u32>,
    /// The hash of each id.
    pub hashes: Vec<u64>,
    /// Per id, scratch: where it sits in the phrasing being interned.
    position: Vec<u32>,
}

impl Interner {
    pub fn intern(&mut self, features: &[(u64, f32)]) -> Vec<(u32, f32)> {
        let mut ids: Vec<(u32, f32)> = Vec::with_capacity(features.len());
        for &(h, v) in features {
            let next = self.hashes.len() as u32;
            let id = *self.ids.entry(h).or_insert(next);
            if id == next {
                self.hashes.push(h);
                self.position.push(u32::MAX);
            }
            match self.position[id as usize] {
                u32::MAX => {
                    self.position[id as usize] = ids.len() as u32;
                    ids.push((id, v));
                }
                at => ids[at as usize].1 = ids[at as usize].1.max(v),
            }
        }
        for &(id, _) in &ids {
            self.position[id as usize] = u32::MAX;
        }
        let norm = ids.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            ids.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        ids
    }

    /// Append the ids of `other` (interned separately, on texts that come after
    /// this interner's): returns, for each of `other`'s ids, its id here. Ids end
    /// up exactly as if every text had been interned here, in order.
    pub fn absorb(&mut self, other: Interner) -> Vec<u32> {
        other
            .hashes
            .into_iter()
            .map(|h| {
                let next = self.hashes.len() as u32;
                let id = *self.ids.entry(h).or_insert(next);
                if id == next {
                    self.hashes.push(h);
                    self.position.push(u32::MAX);
                }
                id
            })
            .collect()
    }
}

/// A distinct phrasing's (local feature id, value) pairs and the entries using it.
type RawExample = (Vec<(u32, f32)>, Vec<u32>);

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
    /// Train on phrasings given as `(entry, hashed features)` (see [`text::analyse`]),
    /// in entry order. Features may come unsorted and repeated (as
    /// [`text::Analyser::analyse_raw`] gives them): a repeated feature keeps its
    /// largest value, and each phrasing is scaled to unit L2 norm.
    pub fn train(
        entries: u32,
        phrasings: impl IntoIterator<Item = (u32, Vec<(u64, f32)>)>,
    ) -> Self {
        let mut interner = Interner::default();
        let interned: Vec<(u32, Vec<(u32, f32)>)> = phrasings
            .into_iter()
            .map(|(entry, features)| (entry, interner.intern(&features)))
            .collect();
        Self::train_interned(entries, interner.hashes, interned)
    }

    /// Train on phrasings whose features were interned by an [`Interner`]:
    /// `hashes[id]` is the hash of feature `id`.
    pub fn train_interned(
        entries: u32,
        hashes: Vec<u64>,
        phrasings: impl IntoIterator<Item = (u32, Vec<(u32, f32)>)>,
    ) -> Self {
        // distinct phrasings in first-seen order, with every entry that uses them
        let mut by_content: HashMapU64<u32> = HashMapU64::default();
        let mut raw: Vec<RawExample> = Vec::new();
        let mut uses: Vec<(u32, u32)> = Vec::new(); // (entry, example)
        for (entry, ids) in phrasings {
            if ids.is_empty() {
                continue;
            }
            let mut content = 0x9E37_79B9_7F4A_7C15u64;
            for &(id, v) in &ids {
                content = (content ^ u64::from(id) ^ (u64::from(v.to_bits()) << 32))
                    .wrapping_mul(0x0100_0000_01b3);
            }
            let example = match by_content.get(&content) {
                Some(&i) if raw[i as usize].0 == ids => i,
                _ => {
                    let i = raw.len() as u32;
                    by_content.entry(content).or_insert(i);
                    raw.push((ids, Vec::new()));
                    i
                }
            };
            let gold = &mut raw[example as usize].1;
            if !gold.contains(&entry) {
                gold.push(entry);
                uses.push((entry, example));
            }
        }
        drop(by_content);
        uses.sort_by_key(|u| u.0);

        // support: in how many entries each feature occurs
        let n_local = hashes.len();
        let mut last = vec![u32::MAX; n_local];
        let mut support = vec![0u32; n_local];
        for &(entry, example) in &uses {
            for &(f, _) in &raw[example as usize].0 {
                if last[f as usize] != entry {
                    last[f as usize] = entry;
                    support[f as usize] += 1;
                }
            }
        }
        // kept features, in hash order
        let mut kept: Vec<u32> = (0..n_local as u32)
            .filter(|&f| support[f as usize] as usize <= MAX_ENTRIES_PER_FEATURE)
            .collect();
        kept.sort_unstable_by_key(|&f| hashes[f as usize]);
        let mut final_id = vec![u32::MAX; n_local];
        let mut offsets = Vec::with_capacity(kept.len() + 1);
        let mut total = 0u32;
        for (i, &f) in kept.iter().enumerate() {
            final_id[f as usize] = i as u32;
            offsets.push(total);
            total += support[f as usize];
        }
        offsets.push(total);
        let model_hashes: Vec<u64> = kept.iter().map(|&f| hashes[f as usize]).collect();
        drop(hashes);
        drop(support);
        // classes of each feature, ascending (entries are visited in order)
        let mut classes = vec![0u32; total as usize];
        let mut cursor: Vec<u32> = offsets[..kept.len()].to_vec();
        last.fill(u32::MAX);
        for &(entry, example) in &uses {
            for &(f, _) in &raw[example as usize].0 {
                let id = final_id[f as usize];
                if id != u32::MAX && last[f as usize] != entry {
                    last[f as usize] = entry;
                    classes[cursor[id as usize] as usize] = entry;
                    cursor[id as usize] += 1;
                }
            }
        }
        drop(uses);
        let weights = vec![0.0; classes.len()];
        let mut model = LinearModel {
            hashes: model_hashes,
            offsets,
            classes,
            weights,
            entries,
            table: Vec::new(),
        };
        model.build_table();
        let examples: Vec<Example> = raw
            .into_iter()
            .map(|(features, gold)| Example {
                features: features
                    .into_iter()
                    .filter_map(|(f, v)| {
                        let id = final_id[f as usize];
                        (id != u32::MAX).then_some((id, v))
                    })
                    .collect(),
                gold,
            })
            .filter(|e| !e.features.is_empty())
            .collect();
        model.fit(&examples);
        model
    }

    /// (Re)build the hash table over `hashes`.
    pub(crate) fn build_table(&mut self) {
        let size = (self.hashes.len() * 2).next_power_of_two().max(16);
        let mask = size - 1;
        let mut table = vec![u32::MAX; size];
        for (f, &h) in self.hashes.iter().enumerate() {
            let mut i = h as usize & mask;
            while table[i] != u32::MAX {
                i = (i + 1) & mask;
            }
            table[i] = f as u32;
        }
        self.table = table;
    }

    fn find(&self, hash: u64) -> Option<u32> {
        let mask = self.table.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let f = self.table[i];
            if f == u32::MAX {
                return None;
            }
            if self.hashes[f as usize] == hash {
                return Some(f);
            }
            i = (i + 1) & mask;
        }
    }

    /// Map hashed features to model feature indices, dropping unknown ones.
    fn lookup(&self, features: &[(u64, f32)]) -> Vec<(u32, f32)> {
        features
            .iter()
            .filter_map(|&(h, v)| self.find(h).map(|i| (i, v)))
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
        // whole epochs within the update budget, and at most STEP_BUDGET examples
        // seen in all (the last epoch may then stop part-way through its order)
        let epochs = (UPDATE_BUDGET / work_per_epoch.max(1)).clamp(1, EPOCHS);
        let mut steps_left = (epochs * examples.len()).min(STEP_BUDGET.max(examples.len()));
        // (class, weight) side by side while training: one cache line serves both
        let mut pairs: Vec<(u32, f32)> = self
            .classes
            .iter()
            .copied()
            .zip(self.weights.iter().copied())
            .collect();
        let offsets = &self.offsets;
        let span = |f: u32| offsets[f as usize] as usize..offsets[f as usize + 1] as usize;
        for epoch in 0..epochs {
            // deterministic Fisher-Yates shuffle
            for i in (1..order.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let rate = LEARNING_RATE / (1.0 + epoch as f32 / 2.0);
            let take = steps_left.min(order.len());
            steps_left -= take;
            for &i in &order[..take] {
                let example = &examples[i];
                touched.clear();
                for &(f, x) in &example.features {
                    for &(c, w) in &pairs[span(f)] {
                        add_score(&mut scores, &mut touched, c, w * x);
                    }
                }
                softmax_in_place(&mut scores, &touched, n);
                let target = 1.0 / example.gold.len() as f32;
                let single = (example.gold.len() == 1).then(|| example.gold[0]);
                for &(f, x) in &example.features {
                    let step = rate * x;
                    for (c, w) in &mut pairs[span(f)] {
                        let p = scores[*c as usize];
                        let is_gold = match single {
                            Some(g) => *c == g,
                            None => example.gold.contains(c),
                        };
                        let gradient = if is_gold {
                            p - target
                        } else if p < MIN_GRADIENT {
                            // negligible, and would only make denormal weights
                            continue;
                        } else {
                            p
                        };
                        *w -= step * gradient;
                    }
                }
                for &c in &touched {
                    scores[c as usize] = 0.0;
                }
            }
        }
        for (w, (_, trained)) in self.weights.iter_mut().zip(pairs) {
            *w = trained;
        }
    }

    /// Add the raw linear scores of the touched entries into `scores`.
    fn accumulate(&self, features: &[(u32, f32)], scores: &mut [f32], touched: &mut Vec<u32>) {
        touched.clear();
        for &(f, x) in features {
            let range = self.offsets[f as usize] as usize..self.offsets[f as usize + 1] as usize;
            for (c, w) in self.classes[range.clone()].iter().zip(&self.weights[range]) {
                add_score(scores, touched, *c, w * x);
            }
        }
    }

    /// Softmax probabilities for a message.
    pub fn score(&self, query: &str) -> ModelScores {
        self.score_features(&text::features(query))
    }

    /// Softmax probabilities for a message's hashed features.
    pub fn score_features(&self, features: &[(u64, f32)]) -> ModelScores {
        let features = self.lookup(features);
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

/// Add `delta` to class `c`'s score, recording `c` in `touched` the first time.
///
/// A slot's being non-zero is what marks it as touched, so a slot must never
/// return to exactly zero: weights of opposite sign can cancel exactly (a feature
/// pushing a class up and another pushing it down by the same amount), and the
/// class would then be recorded twice.
#[inline]
fn add_score(scores: &mut [f32], touched: &mut Vec<u32>, c: u32, delta: f32) {
    let slot = &mut scores[c as usize];
    if *slot == 0.0 {
        touched.push(c);
    }
    *slot += delta;
    if *slot == 0.0 {
        *slot = f32::MIN_POSITIVE;
    }
}

/// Turn the touched entries' scores into probabilities in place; every untouched
/// entry has score 0. Returns the untouched entries' probability. `touched` holds
/// distinct entries (see [`add_score`]).
fn softmax_in_place(scores: &mut [f32], touched: &[u32], entries: usize) -> f32 {
    debug_assert!(touched.len() <= entries, "touched entries are distinct");
    let untouched = entries.saturating_sub(touched.len()) as f32;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose weights are given as (feature hash, class, weight).
    fn model_with(entries: u32, weights: &[(u64, u32, f32)]) -> LinearModel {
        let mut hashes: Vec<u64> = weights.iter().map(|w| w.0).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut offsets = vec![0u32];
        let (mut classes, mut values) = (Vec::new(), Vec::new());
        for &h in &hashes {
            let mut row: Vec<(u32, f32)> = weights
                .iter()
                .filter(|w| w.0 == h)
                .map(|w| (w.1, w.2))
                .collect();
            row.sort_by_key(|r| r.0);
            classes.extend(row.iter().map(|r| r.0));
            values.extend(row.iter().map(|r| r.1));
            offsets.push(classes.len() as u32);
        }
        let mut model = LinearModel {
            hashes,
            offsets,
            classes,
            weights: values,
            entries,
            table: Vec::new(),
        };
        model.build_table();
        model
    }

    #[test]
    fn a_class_whose_sum_returns_to_zero_is_counted_once() {
        // class 0 gets +0.5, then -0.5 (back to exactly zero), then +0.25: it
        // used to be recorded as touched twice, and with one entry the softmax
        // computed 1 - 2 entries (a panic in debug builds, garbage in release)
        let model = model_with(1, &[(10, 0, 0.5), (20, 0, -0.5), (30, 0, 0.25)]);
        let scores = model.score_features(&[(10, 0.6), (20, 0.6), (30, 0.4)]);
        assert_eq!(scores.probabilities.len(), 1);
        assert!((scores.probabilities[0].1 - 1.0).abs() < 1e-6, "{scores:?}");
        // with more entries the probabilities still sum to one
        let model = model_with(
            3,
            &[(10, 1, 0.5), (20, 1, -0.5), (30, 1, 0.25), (30, 2, 1.0)],
        );
        let scores = model.score_features(&[(10, 0.6), (20, 0.6), (30, 0.4)]);
        let touched: Vec<u32> = scores.probabilities.iter().map(|p| p.0).collect();
        assert_eq!(touched, vec![1, 2]);
        let total: f32 = scores.probabilities.iter().map(|p| p.1).sum::<f32>() + scores.floor;
        assert!((total - 1.0).abs() < 1e-5, "{scores:?}");
    }

    #[test]
    fn interning_in_two_parts_numbers_features_as_one_pass_does() {
        let texts = [
            "where is my parcel",
            "parcel tracking number",
            "退款多久到账",
            "where is my refund",
            "refund refund",
        ];
        let raw: Vec<Vec<(u64, f32)>> = texts
            .iter()
            .map(|t| text::Analyser::new().analyse_raw(t).features)
            .collect();
        let mut one = Interner::default();
        let whole: Vec<Vec<(u32, f32)>> = raw.iter().map(|f| one.intern(f)).collect();
        let (mut first, mut second) = (Interner::default(), Interner::default());
        let mut split: Vec<Vec<(u32, f32)>> = raw[..2].iter().map(|f| first.intern(f)).collect();
        let later: Vec<Vec<(u32, f32)>> = raw[2..].iter().map(|f| second.intern(f)).collect();
        let renumber = first.absorb(second);
        split.extend(later.into_iter().map(|mut f| {
            f.iter_mut()
                .for_each(|(id, _)| *id = renumber[*id as usize]);
            f
        }));
        assert_eq!(split, whole);
        assert_eq!(first.hashes, one.hashes);
        // a repeated word counts once, and every phrasing has unit norm
        for f in &whole {
            let norm: f32 = f.iter().map(|(_, v)| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-5);
        }
    }
}
