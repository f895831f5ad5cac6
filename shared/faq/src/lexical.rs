//! Okapi BM25 over every phrasing of every entry. An entry's lexical score is its
//! best score over its phrasings.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::text;

/// BM25 saturation and length normalisation; the usual values.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// A compiled inverted index. Postings hold the full BM25 weight of the term in the
/// document, so a query is only additions.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalIndex {
    pub(crate) lexicon: HashMap<String, u32>,
    pub(crate) idf: Vec<f32>,
    /// Postings of term t are `offsets[t]..offsets[t + 1]`.
    pub(crate) offsets: Vec<u32>,
    pub(crate) post_doc: Vec<u32>,
    pub(crate) post_weight: Vec<f32>,
    /// The entry each document (phrasing) belongs to.
    pub(crate) doc_entry: Vec<u32>,
    pub(crate) entries: u32,
    /// The idf given to a term no document contains.
    pub(crate) unseen_idf: f32,
}

/// One document per phrasing: `(entry index, text)`.
pub struct Document<'a> {
    pub entry: u32,
    pub text: &'a str,
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
    /// `(entry, best BM25 over its phrasings)`, in no particular order.
    pub scores: Vec<(u32, f32)>,
    /// What a document holding every query term once, at average length, would score:
    /// the sum of the query terms' idf. Scores divided by this lie roughly in [0, 1].
    pub ceiling: f32,
}

impl LexicalIndex {
    pub fn build<'a>(entries: u32, docs: impl IntoIterator<Item = Document<'a>>) -> Self {
        let mut lexicon: HashMap<String, u32> = HashMap::new();
        let mut doc_entry = Vec::new();
        let mut doc_len = Vec::new();
        // (term, doc, tf) triples
        let mut triples: Vec<(u32, u32, u32)> = Vec::new();
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for doc in docs {
            let doc_id = doc_entry.len() as u32;
            doc_entry.push(doc.entry);
            counts.clear();
            let terms = text::terms(doc.text);
            doc_len.push(terms.len() as f32);
            for term in terms {
                let next = lexicon.len() as u32;
                let id = *lexicon.entry(term).or_insert(next);
                *counts.entry(id).or_insert(0) += 1;
            }
            let mut sorted: Vec<(u32, u32)> = counts.iter().map(|(t, c)| (*t, *c)).collect();
            sorted.sort_unstable();
            triples.extend(sorted.into_iter().map(|(t, c)| (t, doc_id, c)));
        }
        triples.sort_unstable();
        let docs = doc_entry.len().max(1) as f32;
        let avg_len = (doc_len.iter().sum::<f32>() / docs).max(1.0);
        let terms = lexicon.len();
        let mut df = vec![0u32; terms];
        for &(t, _, _) in &triples {
            df[t as usize] += 1;
        }
        let idf_of = |n: f32| (1.0 + (docs - n + 0.5) / (n + 0.5)).ln();
        let idf: Vec<f32> = df.iter().map(|&n| idf_of(n as f32)).collect();
        let mut offsets = Vec::with_capacity(terms + 1);
        let mut post_doc = Vec::with_capacity(triples.len());
        let mut post_weight = Vec::with_capacity(triples.len());
        let mut cursor = 0usize;
        for t in 0..terms as u32 {
            offsets.push(post_doc.len() as u32);
            while cursor < triples.len() && triples[cursor].0 == t {
                let (_, d, tf) = triples[cursor];
                let tf = tf as f32;
                let norm = K1 * (1.0 - B + B * doc_len[d as usize] / avg_len);
                post_doc.push(d);
                post_weight.push(idf[t as usize] * tf * (K1 + 1.0) / (tf + norm));
                cursor += 1;
            }
        }
        offsets.push(post_doc.len() as u32);
        LexicalIndex {
            lexicon,
            idf,
            offsets,
            post_doc,
            post_weight,
            doc_entry,
            entries,
            unseen_idf: idf_of(0.0),
        }
    }

    /// Score the query's distinct terms against every phrasing; keep each entry's best.
    pub fn score(&self, query: &str) -> LexicalScores {
        let mut terms = text::terms(query);
        terms.sort_unstable();
        terms.dedup();
        let mut ceiling = 0.0;
        let mut term_ids = Vec::with_capacity(terms.len());
        for term in &terms {
            match self.lexicon.get(term) {
                Some(&id) => {
                    ceiling += self.idf[id as usize];
                    term_ids.push(id);
                }
                None => ceiling += self.unseen_idf,
            }
        }
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            if scratch.doc_score.len() < self.doc_entry.len() {
                scratch.doc_score.resize(self.doc_entry.len(), 0.0);
            }
            scratch.touched.clear();
            for &t in &term_ids {
                let range =
                    self.offsets[t as usize] as usize..self.offsets[t as usize + 1] as usize;
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
            // best phrasing per entry, collected in an entry-indexed scratch array
            if scratch.entry_score.len() < self.entries as usize {
                scratch.entry_score.resize(self.entries as usize, 0.0);
            }
            scratch.entries_touched.clear();
            for &d in &scratch.touched {
                let score = std::mem::take(&mut scratch.doc_score[d as usize]);
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

    pub fn documents(&self) -> usize {
        self.doc_entry.len()
    }
}
