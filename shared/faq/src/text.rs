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

/// Index terms for the lexical scorer: word stems, Han unigrams and bigrams.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in pieces(text) {
        match piece {
            Piece::Word { stem, .. } => out.push(stem),
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

/// Feature namespaces of the learned model.
const NS_WORD: u8 = 1;
const NS_BIGRAM: u8 = 2;
const NS_CHARS: u8 = 3;
const NS_HAN: u8 = 4;

/// Hashed features for the learned model, L2-normalised, sorted by hash, distinct:
/// word stems and stem bigrams, character 3- to 5-grams inside words (so that a
/// typo still shares most of a word's features), and Han character 1- to 3-grams.
pub fn features(text: &str) -> Vec<(u64, f32)> {
    let mut raw: Vec<(u64, f32)> = Vec::new();
    let mut previous: Option<String> = None;
    for piece in pieces(text) {
        match piece {
            Piece::Word { surface, stem } => {
                raw.push((hash_feature(NS_WORD, &[&stem]), 1.0));
                if let Some(prev) = &previous {
                    raw.push((hash_feature(NS_BIGRAM, &[prev, &stem]), 0.8));
                }
                let padded: Vec<char> = std::iter::once('<')
                    .chain(surface.chars())
                    .chain(std::iter::once('>'))
                    .collect();
                if padded.len() > 4 {
                    let mut buf = String::new();
                    for n in 3..=5 {
                        for window in padded.windows(n) {
                            buf.clear();
                            buf.extend(window);
                            raw.push((hash_feature(NS_CHARS, &[&buf]), 0.35));
                        }
                    }
                }
                previous = Some(stem);
            }
            Piece::Han(chars) => {
                previous = None;
                let mut buf = String::new();
                for n in 1..=3 {
                    let weight = [0.6, 1.0, 0.8][n - 1];
                    for window in chars.windows(n) {
                        buf.clear();
                        buf.extend(window);
                        raw.push((hash_feature(NS_HAN, &[&buf]), weight));
                    }
                }
            }
        }
    }
    raw.sort_unstable_by_key(|f| f.0);
    // repeated features: keep the largest weight (presence, not counts)
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
    fn hashing_is_stable_and_namespaced() {
        assert_eq!(hash_feature(1, &["a", "b"]), hash_feature(1, &["a", "b"]));
        assert_ne!(hash_feature(1, &["a", "b"]), hash_feature(2, &["a", "b"]));
        assert_ne!(hash_feature(1, &["ab"]), hash_feature(1, &["a", "b"]));
    }
}
