//! Static word embeddings: a message's meaning as one small vector, so that
//! "delete my FB acc" and "remove Facebook account" come out close although
//! they share no word.
//!
//! The tables (`embeddings/*.sbemb`) were distilled offline from the sentence
//! encoder multilingual-e5-small by `distill/distill.py` (the Model2Vec recipe:
//! every word of the encoder's own vocabulary embedded alone, PCA to 64
//! dimensions, frequency weights, int8). A message's vector is the sum of its
//! words' vectors, normalised. Latin-script words are looked up whole, then by
//! their English stem; runs of Han characters and kana are cut into the longest
//! words the tables know (forward maximum matching), falling back to single
//! characters.
//!
//! The tables are compiled in with the `embeddings` feature (the conversation
//! worker and the command line); without it [`Embeddings::shipped`] is `None`
//! and the matcher scores lexically and with its learned model only.

use std::sync::OnceLock;

use crate::lexical::HashMapU64;
use crate::text::{self, Piece};

/// Dimensions of every vector.
pub const DIMS: usize = 64;
const MAGIC: &[u8; 8] = b"SBEMB\0\0\x02";
/// Longest CJK word, in characters, the segmenter tries.
const MAX_CJK_WORD: usize = 4;

/// The word tables, merged.
pub struct Embeddings {
    /// Row of each whole word (lower case), by hash.
    words: HashMapU64<u32>,
    /// Row of the most probable word of each English stem, by hash.
    stems: HashMapU64<u32>,
    /// Per row: `DIMS` int8 values, and one scale.
    values: Vec<i8>,
    scales: Vec<f32>,
}

/// Any malformed table: a build defect (the tables are compiled in), reported
/// by the tests.
#[derive(Debug, thiserror::Error)]
#[error("embedding table: {0}")]
pub struct TableError(&'static str);

fn word_hash(word: &str) -> u64 {
    text::hash_feature(9, &[word])
}

impl Embeddings {
    /// Merge tables in the format `distill.py` writes: magic, dims and count
    /// (u32 LE), each word (u8 length, UTF-8), the int8 rows, the f32 scales.
    /// Earlier tables and earlier (more probable) words win duplicates.
    pub fn from_tables(tables: &[&[u8]]) -> Result<Embeddings, TableError> {
        let mut out = Embeddings {
            words: HashMapU64::default(),
            stems: HashMapU64::default(),
            values: Vec::new(),
            scales: Vec::new(),
        };
        for bytes in tables {
            out.add_table(bytes)?;
        }
        Ok(out)
    }

    fn add_table(&mut self, bytes: &[u8]) -> Result<(), TableError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(TableError("bad magic"))?;
        let u32_at = |b: &[u8], at: usize| -> Result<usize, TableError> {
            let raw = b.get(at..at + 4).ok_or(TableError("truncated header"))?;
            Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
        };
        if u32_at(rest, 0)? != DIMS {
            return Err(TableError("unexpected dimensions"));
        }
        let count = u32_at(rest, 4)?;
        let mut at = 8;
        let mut words = Vec::with_capacity(count);
        for _ in 0..count {
            let len = *rest.get(at).ok_or(TableError("truncated words"))? as usize;
            let raw = rest
                .get(at + 1..at + 1 + len)
                .ok_or(TableError("truncated words"))?;
            words.push(std::str::from_utf8(raw).map_err(|_| TableError("word not UTF-8"))?);
            at += 1 + len;
        }
        let values = rest
            .get(at..at + count * DIMS)
            .ok_or(TableError("truncated vectors"))?;
        at += count * DIMS;
        let scales = rest
            .get(at..at + count * 4)
            .ok_or(TableError("truncated scales"))?;
        if rest.len() != at + count * 4 {
            return Err(TableError("trailing bytes"));
        }
        let first_row = self.scales.len() as u32;
        self.values.extend(values.iter().map(|&b| b as i8));
        self.scales.extend(
            scales
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        for (i, word) in words.into_iter().enumerate() {
            let row = first_row + i as u32;
            self.words.entry(word_hash(word)).or_insert(row);
            if word.chars().all(|c| c.is_ascii_lowercase()) {
                let stem = text::stem(word);
                self.stems.entry(word_hash(&stem)).or_insert(row);
            }
        }
        Ok(())
    }

    /// The tables compiled into this build, loaded once; `None` without the
    /// `embeddings` feature.
    pub fn shipped() -> Option<&'static Embeddings> {
        static SHIPPED: OnceLock<Option<Embeddings>> = OnceLock::new();
        SHIPPED.get_or_init(load_shipped).as_ref()
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    fn add_row(&self, row: u32, into: &mut [f32; DIMS]) {
        let row = row as usize;
        let scale = self.scales[row];
        let values = &self.values[row * DIMS..(row + 1) * DIMS];
        for (sum, &v) in into.iter_mut().zip(values) {
            *sum += scale * f32::from(v);
        }
    }

    /// Add the rows of the longest known words of a CJK run, left to right.
    fn add_cjk(&self, chars: &[char], into: &mut [f32; DIMS], found: &mut usize) {
        let mut i = 0;
        let mut word = String::new();
        while i < chars.len() {
            let mut step = 1;
            for len in (1..=MAX_CJK_WORD.min(chars.len() - i)).rev() {
                word.clear();
                word.extend(&chars[i..i + len]);
                if let Some(&row) = self.words.get(&word_hash(&word)) {
                    self.add_row(row, into);
                    *found += 1;
                    step = len;
                    break;
                }
            }
            i += step;
        }
    }

    /// The message's unit vector; `None` when it has no word the tables know.
    pub fn embed(&self, message: &str) -> Option<[f32; DIMS]> {
        let mut sum = [0.0f32; DIMS];
        let mut found = 0;
        for piece in text::pieces(message) {
            match piece {
                Piece::Word { surface, stem } => {
                    if surface
                        .chars()
                        .all(|c| c.is_ascii() || c.is_alphabetic() && !is_cjk(c))
                    {
                        let row = self
                            .words
                            .get(&word_hash(&surface))
                            .or_else(|| self.stems.get(&word_hash(&stem)));
                        if let Some(&row) = row {
                            self.add_row(row, &mut sum);
                            found += 1;
                        }
                    } else {
                        let chars: Vec<char> = surface.chars().collect();
                        self.add_cjk(&chars, &mut sum, &mut found);
                    }
                }
                Piece::Han(chars) => self.add_cjk(&chars, &mut sum, &mut found),
            }
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        (found > 0 && norm > 0.0).then(|| {
            sum.iter_mut().for_each(|v| *v /= norm);
            sum
        })
    }
}

/// Kana (and the CJK blocks the Han test leaves out): cut by the segmenter.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x31F0..=0x31FF) || switchboard_domain::routing::is_han(c)
}

#[cfg(feature = "embeddings")]
fn load_shipped() -> Option<Embeddings> {
    const TABLES: [&[u8]; 4] = [
        include_bytes!("../embeddings/english-0.sbemb"),
        include_bytes!("../embeddings/english-1.sbemb"),
        include_bytes!("../embeddings/chinese-0.sbemb"),
        include_bytes!("../embeddings/japanese-0.sbemb"),
    ];
    // The tables are part of the build and checked by the tests: a broken one
    // is a build defect, and matching goes on without embeddings.
    Embeddings::from_tables(&TABLES).ok()
}

#[cfg(not(feature = "embeddings"))]
fn load_shipped() -> Option<Embeddings> {
    None
}

/// Dot product of two vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of three words with chosen directions.
    fn table(words: &[(&str, [i8; 2])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((DIMS as u32).to_le_bytes());
        out.extend((words.len() as u32).to_le_bytes());
        for (word, _) in words {
            out.push(word.len() as u8);
            out.extend(word.as_bytes());
        }
        for (_, v) in words {
            let mut row = [0i8; DIMS];
            row[..2].copy_from_slice(v);
            out.extend(row.iter().map(|&x| x as u8));
        }
        for _ in words {
            out.extend(1.0f32.to_le_bytes());
        }
        out
    }

    #[test]
    fn words_stems_and_cjk_runs_find_their_vectors() {
        let latin = table(&[("refund", [10, 0]), ("password", [0, 10])]);
        let han = table(&[("退款", [10, 0]), ("退", [0, 10])]);
        let e = Embeddings::from_tables(&[&latin, &han]).unwrap();
        assert_eq!(e.len(), 4);
        let refund = e.embed("Refunds?").unwrap(); // by stem
        assert!((refund[0] - 1.0).abs() < 1e-6);
        let chinese = e.embed("我要退款").unwrap(); // the longest word wins
        assert!((chinese[0] - 1.0).abs() < 1e-6, "{chinese:?}");
        assert!(e.embed("zzz qqq").is_none());
        assert!(Embeddings::from_tables(&[&latin[..latin.len() - 1]]).is_err());
    }

    #[cfg(feature = "embeddings")]
    #[test]
    fn the_shipped_tables_load_and_know_meaning() {
        let e = Embeddings::shipped().expect("tables load");
        assert!(e.len() > 25_000, "{}", e.len());
        let sim = |a: &str, b: &str| dot(&e.embed(a).unwrap(), &e.embed(b).unwrap());
        assert!(sim("refund", "money back") > sim("refund", "password"));
        assert!(sim("退款", "退钱") > sim("退款", "密码"));
    }
}
