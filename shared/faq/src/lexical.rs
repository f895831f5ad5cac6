//! Okapi BM25 over every phrasing of every entry. An entry's lexical score is its
//! best score over its phrasings.
//!
//! Terms are known by their 64-bit hash (see [`crate::text::term_hash`]). A query
//! walks the posting lists of its rarer terms only: once the postings walked would
//! exceed [`POSTINGS_BUDGET`], the remaining (most common) terms are only added to
//! the documents already found (a galloping merge of the sorted found documents
//! with their posting lists), so a message made of very common words cannot make a
//! query touch most of a large knowledge base.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::text;

/// BM25 saturation and length normalisation; the usual values.
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Postings a query walks before its remaining, more common, terms are only
/// scored on the documents already found.
const POSTINGS_BUDGET: usize = 2_048;

/// A compiled inverted index. Postings hold the full BM25 weight of the term in the
/// document, so a query is only additions.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalIndex {
    /// Sorted term hashes; a term's id is its position.
    pub(crate) terms: Vec<u64>,
    pub(crate) idf: Vec<f32>,
    /// Postings of term t are `offsets[t]..offsets[t + 1]`, in document order.
    pub(crate) offsets: Vec<u32>,
    pub(crate) post_doc: Vec<u32>,
    pub(crate) post_weight: Vec<f32>,
    /// The entry each document (phrasing) belongs to.
    pub(crate) doc_entry: Vec<u32>,
    pub(crate) entries: u32,
    /// The idf given to a term no document contains.
    pub(crate) unseen_idf: f32,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    doc_score: Vec<f32>,
    touched: Vec<u32>,
    entry_score: Vec<f32>,
    entries_touched: Vec<u32>,
}

/// Lexical scores of the entries a query touches.
#[derive(Debug, Clone, Default)]
pub struct LexicalScores {
    /// `(entry, best BM25 over its phrasings)`, sorted by entry.
    pub scores: Vec<(u32, f32)>,
    /// What a document holding every query term once, at average length, would score:
    /// the sum of the query terms' idf. Scores divided by this lie roughly in [0, 1].
    pub ceiling: f32,
}

/// Identity hashing for keys that are already well-mixed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub(crate) type HashMapU64<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PreHashed>>;

impl LexicalIndex {
    /// Index documents given as `(entry index, hashed terms)`, one per phrasing.
    pub fn build<'a>(entries: u32, docs: impl IntoIterator<Item = (u32, &'a [u64])>) -> Self {
        // local term ids in first-seen order; forward lists of (local id, tf)
        let mut local: HashMapU64<u32> = HashMapU64::default();
        let mut hashes: Vec<u64> = Vec::new();
        let mut doc_entry = Vec::new();
        let mut doc_len: Vec<f32> = Vec::new();
        let mut doc_offsets = vec![0u32];
        let mut fwd: Vec<(u32, u32)> = Vec::new();
        let mut ids: Vec<u32> = Vec::new();
        for (entry, terms) in docs {
            doc_entry.push(entry);
            doc_len.push(terms.len() as f32);
            ids.clear();
            for &hash in terms {
                let next = hashes.len() as u32;
                let id = *local.entry(hash).or_insert(next);
                if id == next {
                    hashes.push(hash);
                }
                ids.push(id);
            }
            ids.sort_unstable();
            let mut i = 0;
            while i < ids.len() {
                let mut j = i;
                while j < ids.len() && ids[j] == ids[i] {
                    j += 1;
                }
                fwd.push((ids[i], (j - i) as u32));
                i = j;
            }
            doc_offsets.push(fwd.len() as u32);
        }
        drop(local);
        let n_terms = hashes.len();
        // final term ids follow hash order
        let mut order: Vec<u32> = (0..n_terms as u32).collect();
        order.sort_unstable_by_key(|&t| hashes[t as usize]);
        let mut rank = vec![0u32; n_terms];
        for (r, &t) in order.iter().enumerate() {
            rank[t as usize] = r as u32;
        }
        let terms: Vec<u64> = order.iter().map(|&t| hashes[t as usize]).collect();
        drop(hashes);
        let mut df = vec![0u32; n_terms];
        for (t, _) in &mut fwd {
            *t = rank[*t as usize];
            df[*t as usize] += 1;
        }
        let docs = doc_entry.len().max(1) as f32;
        let avg_len = (doc_len.iter().sum::<f32>() / docs).max(1.0);
        let idf_of = |n: f32| (1.0 + (docs - n + 0.5) / (n + 0.5)).ln();
        let idf: Vec<f32> = df.iter().map(|&n| idf_of(n as f32)).collect();
        let mut offsets = Vec::with_capacity(n_terms + 1);
        let mut total = 0u32;
        for &n in &df {
            offsets.push(total);
            total += n;
        }
        offsets.push(total);
        let mut cursor: Vec<u32> = offsets[..n_terms].to_vec();
        let mut post_doc = vec![0u32; fwd.len()];
        let mut post_weight = vec![0f32; fwd.len()];
        for d in 0..doc_entry.len() {
            let norm = K1 * (1.0 - B + B * doc_len[d] / avg_len);
            let span = doc_offsets[d] as usize..doc_offsets[d + 1] as usize;
            for &(t, tf) in &fwd[span] {
                let tf = tf as f32;
                let weight = idf[t as usize] * tf * (K1 + 1.0) / (tf + norm);
                let slot = &mut cursor[t as usize];
                post_doc[*slot as usize] = d as u32;
                post_weight[*slot as usize] = weight;
                *slot += 1;
            }
        }
        LexicalIndex {
            terms,
            idf,
            offsets,
            post_doc,
            post_weight,
            doc_entry,
            entries,
            unseen_idf: idf_of(0.0),
        }
    }

    fn term_id(&self, hash: u64) -> Option<u32> {
        self.terms.binary_search(&hash).ok().map(|i| i as u32)
    }

    fn postings(&self, t: u32) -> std::ops::Range<usize> {
        self.offsets[t as usize] as usize..self.offsets[t as usize + 1] as usize
    }

    /// Score a message's hashed terms against every phrasing; keep each entry's best.
    pub fn score_terms(&self, terms: &[u64]) -> LexicalScores {
        let mut terms = terms.to_vec();
        terms.sort_unstable();
        terms.dedup();
        let mut ceiling = 0.0;
        let mut term_ids = Vec::with_capacity(terms.len());
        for &hash in &terms {
            match self.term_id(hash) {
                Some(id) => {
                    ceiling += self.idf[id as usize];
                    term_ids.push(id);
                }
                None => ceiling += self.unseen_idf,
            }
        }
        // rarest terms first; ties by id, so the split is deterministic
        term_ids.sort_unstable_by_key(|&t| (self.postings(t).len(), t));
        let mut walked = 0;
        let mut split = term_ids.len();
        for (k, &t) in term_ids.iter().enumerate() {
            walked += self.postings(t).len();
            if k > 0 && walked > POSTINGS_BUDGET {
                split = k;
                break;
            }
        }
        let (walk, lookup) = term_ids.split_at(split);
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            if scratch.doc_score.len() < self.doc_entry.len() {
                scratch.doc_score.resize(self.doc_entry.len(), 0.0);
            }
            scratch.touched.clear();
            for &t in walk {
                let range = self.postings(t);
                for (d, w) in self.post_doc[range.clone()]
                    .iter()
                    .zip(&self.post_weight[range])
                {
                    let slot = &mut scratch.doc_score[*d as usize];
                    if *slot == 0.0 {
                        scratch.touched.push(*d);
                    }
                    *slot += w;
                }
            }
            if !lookup.is_empty() {
                scratch.touched.sort_unstable();
                for &t in lookup {
                    let range = self.postings(t);
                    let docs = &self.post_doc[range.clone()];
                    let weights = &self.post_weight[range];
                    let mut at = 0;
                    for &d in &scratch.touched {
                        at += gallop(&docs[at..], d);
                        if at == docs.len() {
                            break;
                        }
                        if docs[at] == d {
                            scratch.doc_score[d as usize] += weights[at];
                        }
                    }
                }
            }
            if scratch.entry_score.len() < self.entries as usize {
                scratch.entry_score.resize(self.entries as usize, 0.0);
            }
            scratch.entries_touched.clear();
            for &d in &scratch.touched {
                let score = std::mem::take(&mut scratch.doc_score[d as usize]);
                // best phrasing per entry, collected in an entry-indexed scratch array
                let entry = self.doc_entry[d as usize];
                let slot = &mut scratch.entry_score[entry as usize];
                if *slot == 0.0 {
                    scratch.entries_touched.push(entry);
                }
                *slot = slot.max(score);
            }
            scratch.entries_touched.sort_unstable();
            let mut scores: Vec<(u32, f32)> = Vec::with_capacity(scratch.entries_touched.len());
            for &e in &scratch.entries_touched {
                scores.push((e, std::mem::take(&mut scratch.entry_score[e as usize])));
            }
            LexicalScores { scores, ceiling }
        })
    }

    /// Score a message (analysed here) against every phrasing.
    pub fn score(&self, query: &str) -> LexicalScores {
        self.score_terms(&text::analyse(query).terms)
    }

    pub fn documents(&self) -> usize {
        self.doc_entry.len()
    }
}

/// The first position in sorted `docs` holding a value >= `d` (`docs.len()` if none),
/// by exponential then binary search, cheap when it is near the start.
fn gallop(docs: &[u32], d: u32) -> usize {
    let mut high = 1;
    while high < docs.len() && docs[high - 1] < d {
        high *= 2;
    }
    let low = high / 2;
    let high = high.min(docs.len());
    low + docs[low..high].partition_point(|&x| x < d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallop_finds_the_first_not_smaller() {
        let docs = [2, 3, 5, 8, 13, 21, 34, 55, 89];
        for d in 0..100 {
            let expected = docs.partition_point(|&x| x < d);
            assert_eq!(gallop(&docs, d), expected, "{d}");
        }
        assert_eq!(gallop(&[], 7), 0);
    }

    fn index(docs: &[(u32, &str)]) -> LexicalIndex {
        let terms: Vec<(u32, Vec<u64>)> = docs
            .iter()
            .map(|(e, t)| (*e, text::analyse(t).terms))
            .collect();
        LexicalIndex::build(3, terms.iter().map(|(e, t)| (*e, t.as_slice())))
    }

    #[test]
    fn common_terms_beyond_the_budget_still_score_found_documents() {
        // "common" is in more documents than the walking budget allows
        let mut docs: Vec<(u32, String)> = (0..POSTINGS_BUDGET + 10)
            .map(|i| (2, format!("common filler{}", i % 7)))
            .collect();
        docs.push((0, "rare common".into()));
        docs.push((1, "rare other".into()));
        let borrowed: Vec<(u32, &str)> = docs.iter().map(|(e, t)| (*e, t.as_str())).collect();
        let index = index(&borrowed);
        let scores = index.score("rare common");
        let of = |e: u32| scores.scores.iter().find(|s| s.0 == e).map(|s| s.1);
        assert!(of(0).unwrap() > of(1).unwrap());
        // documents with only the common term are not candidates
        assert_eq!(of(2), None);
    }
}
