//! Text analysis shared by the lexical index and the learned model.
//!
//! Text is normalised (full-width forms folded to ASCII, lower case), then cut into
//! pieces: runs of letters and digits outside the Han block are English-like words,
//! runs of Han characters are Chinese. Words are stemmed with the Snowball English
//! stemmer; Chinese is used as character unigrams and bigrams (no dictionary needed,
//! robust to the missing spaces, typos and slang of chat messages).

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use switchboard_domain::routing::is_han;

/// A piece of a message, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A lower-cased word (letters and digits), with its stem.
    Word { surface: String, stem: String },
    /// A run of Han characters.
    Han(Vec<char>),
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// The Snowball English stem of a lower-case word.
pub fn stem(word: &str) -> String {
    stemmer().stem(word).into_owned()
}

/// Fold full-width ASCII forms and the ideographic space, and lower-case.
fn fold(ch: char) -> char {
    let code = ch as u32;
    let ch = match code {
        0xFF01..=0xFF5E => char::from_u32(code - 0xFEE0).unwrap_or(ch),
        0x3000 => ' ',
        _ => ch,
    };
    if ch.is_ascii() {
        ch.to_ascii_lowercase()
    } else {
        ch.to_lowercase().next().unwrap_or(ch)
    }
}

/// Apostrophes inside words are dropped ("don't" -> "dont", "what's" -> "whats").
fn is_apostrophe(ch: char) -> bool {
    matches!(ch, '\'' | '\u{2019}' | '`')
}

/// Cut text into words and Han runs.
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut han: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<Piece>| {
        if !word.is_empty() {
            let stem = stemmer().stem(word).into_owned();
            out.push(Piece::Word {
                surface: std::mem::take(word),
                stem,
            });
        }
    };
    let flush_han = |han: &mut Vec<char>, out: &mut Vec<Piece>| {
        if !han.is_empty() {
            out.push(Piece::Han(std::mem::take(han)));
        }
    };
    for raw in text.chars() {
        let ch = fold(raw);
        if is_han(ch) {
            flush_word(&mut word, &mut out);
            han.push(ch);
        } else if ch.is_alphanumeric() {
            flush_han(&mut han, &mut out);
            word.push(ch);
        } else if is_apostrophe(ch) && !word.is_empty() {
            // skip, the word continues
        } else {
            flush_word(&mut word, &mut out);
            flush_han(&mut han, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_han(&mut han, &mut out);
    out
}

/// Index terms for the lexical scorer: word stems (but not of stop words), Han
/// unigrams and bigrams.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in pieces(text) {
        match piece {
            Piece::Word { surface, stem } => {
                if !is_stop_word(&surface) {
                    out.push(stem)
                }
            }
            Piece::Han(chars) => {
                for (i, ch) in chars.iter().enumerate() {
                    out.push(ch.to_string());
                    if let Some(next) = chars.get(i + 1) {
                        let mut bigram = String::with_capacity(8);
                        bigram.push(*ch);
                        bigram.push(*next);
                        out.push(bigram);
                    }
                }
            }
        }
    }
    out
}

/// A deterministic 64-bit FNV-1a hash with a namespace byte, for hashed features.
pub fn hash_feature(namespace: u8, parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(namespace);
    hash = hash.wrapping_mul(0x0100_0000_01b3);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0x1f;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // final avalanche so that low bits are well mixed
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
}

/// Feature namespaces of the learned model (and namespace 0 for index terms).
const NS_TERM: u8 = 0;
const NS_WORD: u8 = 1;
const NS_BIGRAM: u8 = 2;
const NS_CHARS: u8 = 3;
const NS_HAN: u8 = 4;
#[cfg(feature = "jieba")]
const NS_HAN_WORD: u8 = 5;

/// Streaming FNV-1a with a final avalanche: hashes pieces of text without first
/// building them as strings.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new(namespace: u8) -> Fnv {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325 ^ u64::from(namespace));
        h.0 = h.0.wrapping_mul(0x0100_0000_01b3);
        h
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn char(&mut self, ch: char) {
        let mut buf = [0u8; 4];
        self.bytes(ch.encode_utf8(&mut buf).as_bytes());
    }
    fn finish(self) -> u64 {
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash
    }
}

/// The hash under which the lexical index knows an index term (see [`terms`]).
pub fn term_hash(term: &str) -> u64 {
    let mut h = Fnv::new(NS_TERM);
    h.bytes(term.as_bytes());
    h.finish()
}

/// A message or phrasing analysed once for both scorers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Hashed index terms for the lexical scorer, in reading order, repeats kept
    /// (the hashes of [`terms`]).
    pub terms: Vec<u64>,
    /// Hashed features for the learned model, as [`features`] returns them.
    pub features: Vec<(u64, f32)>,
}

/// Hashes derived from a word's stem: its index term and its model feature.
#[derive(Clone, Copy)]
struct StemHashes {
    term: u64,
    word: u64,
}

fn stem_hashes(surface: &str) -> StemHashes {
    let stem = stemmer().stem(surface);
    let mut word = Fnv::new(NS_WORD);
    word.bytes(stem.as_bytes());
    StemHashes {
        term: term_hash(&stem),
        word: word.finish(),
    }
}

/// What a word contributes, whatever its neighbours: stem hashes and the hashes
/// of its character n-grams (a range of `WordCache::grams`).
#[derive(Clone)]
struct WordHashes {
    stem: StemHashes,
    grams: std::ops::Range<usize>,
}

#[derive(Default)]
struct WordCache {
    words: std::collections::HashMap<String, WordHashes>,
    grams: Vec<u64>,
}

/// Common English function words: they say little about which entry a message is
/// about, and in a lexical score they reward phrasings for sharing the message's
/// grammar rather than its topic. Only the lexical scorer skips them; the learned
/// model still sees them (there they can carry intent, e.g. "how" vs "why").
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "being", "but", "by",
    "can", "could", "d", "did", "do", "does", "doing", "for", "from", "had", "has", "have",
    "having", "he", "her", "here", "hers", "him", "his", "how", "i", "id", "if", "ill", "im", "in",
    "into", "is", "it", "its", "ive", "just", "ll", "me", "might", "my", "myself", "of", "on",
    "or", "our", "ours", "possible", "s", "shall", "she", "should", "so", "some", "such", "t",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "too", "very", "was", "way", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your", "youre", "yours",
];

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Weight of a character n-gram feature (before normalisation; a word is 1).
const GRAM_WEIGHT: f32 = 0.35;

/// Hashes of the character 3- and 4-grams of a word padded with `<` and `>`
/// (none for words of one or two characters); `chars` is scratch space.
fn char_grams(word: &str, chars: &mut Vec<char>, out: &mut Vec<u64>) {
    chars.clear();
    chars.push('<');
    chars.extend(word.chars());
    chars.push('>');
    if chars.len() > 4 {
        for n in 3..=4 {
            for window in chars.windows(n) {
                let mut h = Fnv::new(NS_CHARS);
                window.iter().for_each(|&c| h.char(c));
                out.push(h.finish());
            }
        }
    }
    chars.clear();
}

/// Analyses many texts, remembering what each distinct word contributes
/// (compiling a knowledge base sees the same words over and over).
#[derive(Default)]
pub struct Analyser {
    cache: WordCache,
}

impl Analyser {
    pub fn new() -> Analyser {
        Analyser::default()
    }

    pub fn analyse(&mut self, text: &str) -> Analysis {
        let mut analysis = self.analyse_raw(text);
        analysis.features = normalise(analysis.features);
        analysis
    }

    /// Like [`Analyser::analyse`], but the features are left in reading order,
    /// repeats included, not normalised ([`crate::model::LinearModel::train`]
    /// does that more cheaply itself).
    pub fn analyse_raw(&mut self, text: &str) -> Analysis {
        analyse_with(text, Some(&mut self.cache))
    }
}

/// Analyse text for both scorers in one pass.
pub fn analyse(text: &str) -> Analysis {
    let mut analysis = analyse_with(text, None);
    analysis.features = normalise(analysis.features);
    analysis
}

fn analyse_with(text: &str, mut cache: Option<&mut WordCache>) -> Analysis {
    let mut terms = Vec::with_capacity(text.len() / 3);
    let mut raw: Vec<(u64, f32)> = Vec::with_capacity(text.len() * 3);
    let mut previous: Option<u64> = None;
    let mut word = String::new();
    let mut chars: Vec<char> = Vec::new(); // the current word padded, or Han run
    let mut word_done = |word: &mut String,
                         chars: &mut Vec<char>,
                         previous: &mut Option<u64>,
                         terms: &mut Vec<u64>,
                         raw: &mut Vec<(u64, f32)>| {
        if word.is_empty() {
            return;
        }
        let cached = cache.as_deref_mut().map(|cache| {
            let hashes = match cache.words.get(word.as_str()) {
                Some(h) => h.clone(),
                None => {
                    let start = cache.grams.len();
                    char_grams(word, chars, &mut cache.grams);
                    let h = WordHashes {
                        stem: stem_hashes(word),
                        grams: start..cache.grams.len(),
                    };
                    cache.words.insert(word.clone(), h.clone());
                    h
                }
            };
            raw.extend(cache.grams[hashes.grams].iter().map(|&g| (g, GRAM_WEIGHT)));
            hashes.stem
        });
        let stem = match cached {
            Some(stem) => stem,
            None => {
                let mut grams = Vec::new();
                char_grams(word, chars, &mut grams);
                raw.extend(grams.into_iter().map(|g| (g, GRAM_WEIGHT)));
                stem_hashes(word)
            }
        };
        if !is_stop_word(word) {
            terms.push(stem.term);
        }
        raw.push((stem.word, 1.0));
        if let Some(prev) = *previous {
            let mut h = Fnv::new(NS_BIGRAM);
            h.bytes(&prev.to_le_bytes());
            h.bytes(&stem.word.to_le_bytes());
            raw.push((h.finish(), 0.8));
        }
        *previous = Some(stem.word);
        word.clear();
    };
    let han_done = |chars: &mut Vec<char>, terms: &mut Vec<u64>, raw: &mut Vec<(u64, f32)>| {
        if chars.is_empty() {
            return;
        }
        for (i, &ch) in chars.iter().enumerate() {
            let mut h = Fnv::new(NS_TERM);
            h.char(ch);
            terms.push(h.finish());
            if let Some(&next) = chars.get(i + 1) {
                h.char(next);
                terms.push(h.finish());
            }
        }
        #[cfg(feature = "jieba")]
        jieba_words(chars, terms, raw);
        for n in 1..=3 {
            let weight = [0.6, 1.0, 0.8][n - 1];
            for window in chars.windows(n) {
                let mut h = Fnv::new(NS_HAN);
                window.iter().for_each(|&c| h.char(c));
                raw.push((h.finish(), weight));
            }
        }
        chars.clear();
    };
    let mut in_han = false;
    for raw_ch in text.chars() {
        let ch = fold(raw_ch);
        if is_han(ch) {
            if !in_han {
                word_done(&mut word, &mut chars, &mut previous, &mut terms, &mut raw);
                in_han = true;
            }
            previous = None;
            chars.push(ch);
        } else if ch.is_alphanumeric() {
            if in_han {
                han_done(&mut chars, &mut terms, &mut raw);
                in_han = false;
            }
            word.push(ch);
        } else if is_apostrophe(ch) && !word.is_empty() {
            // skip, the word continues
        } else if in_han {
            han_done(&mut chars, &mut terms, &mut raw);
            in_han = false;
        } else {
            word_done(&mut word, &mut chars, &mut previous, &mut terms, &mut raw);
        }
    }
    if in_han {
        han_done(&mut chars, &mut terms, &mut raw);
    } else {
        word_done(&mut word, &mut chars, &mut previous, &mut terms, &mut raw);
    }
    Analysis {
        terms,
        features: raw,
    }
}

/// Words of a Han run as jieba segments it (dictionary words of two or more
/// characters), as index terms and model features beside the character n-grams.
#[cfg(feature = "jieba")]
fn jieba_words(chars: &[char], terms: &mut Vec<u64>, raw: &mut Vec<(u64, f32)>) {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    let jieba = JIEBA.get_or_init(jieba_rs::Jieba::new);
    let run: String = chars.iter().collect();
    for token in jieba.cut(&run, false) {
        let word = token.word;
        if word.chars().count() < 2 {
            continue;
        }
        let mut term = Fnv::new(NS_TERM);
        term.bytes(b"w:");
        term.bytes(word.as_bytes());
        terms.push(term.finish());
        let mut feature = Fnv::new(NS_HAN_WORD);
        feature.bytes(word.as_bytes());
        raw.push((feature.finish(), 1.0));
    }
}

/// Hashed features for the learned model, L2-normalised, sorted by hash, distinct:
/// word stems and stem bigrams, character 3- and 4-grams inside words (so that a
/// typo still shares most of a word's features), and Han character 1- to 3-grams.
pub fn features(text: &str) -> Vec<(u64, f32)> {
    analyse(text).features
}

/// Sort, keep each feature once with its largest weight (presence, not counts),
/// and scale to unit L2 norm.
fn normalise(mut raw: Vec<(u64, f32)>) -> Vec<(u64, f32)> {
    raw.sort_unstable_by_key(|f| f.0);
    raw.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 = kept.1.max(later.1);
            true
        } else {
            false
        }
    });
    let norm = raw.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, w) in &mut raw {
            *w /= norm;
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_stemmed_and_apostrophes_dropped() {
        assert_eq!(
            terms("Refunds REFUNDED, don't!"),
            vec!["refund", "refund", "dont"]
        );
    }

    #[test]
    fn full_width_forms_fold_to_ascii() {
        assert_eq!(terms("ＡＣＭＥ　Ｓｈｏｐ"), vec!["acm", "shop"]);
    }

    #[test]
    fn han_runs_become_unigrams_and_bigrams() {
        assert_eq!(terms("退款"), vec!["退", "退款", "款"]);
        let mixed = terms("iPhone退货");
        assert_eq!(mixed, vec!["iphon", "退", "退货", "货"]);
    }

    #[test]
    fn analysis_hashes_the_index_terms() {
        for text in [
            "Refunds REFUNDED, don't!",
            "iPhone退货了吗",
            "ＡＣＭＥ　Ｓｈｏｐ",
        ] {
            let expected: Vec<u64> = terms(text).iter().map(|t| term_hash(t)).collect();
            assert_eq!(analyse(text).terms, expected, "{text}");
        }
    }

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hashing_is_stable_and_namespaced() {
        assert_eq!(hash_feature(1, &["a", "b"]), hash_feature(1, &["a", "b"]));
        assert_ne!(hash_feature(1, &["a", "b"]), hash_feature(2, &["a", "b"]));
        assert_ne!(hash_feature(1, &["ab"]), hash_feature(1, &["a", "b"]));
    }
}
