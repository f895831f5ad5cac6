//! A compact binary form of a compiled matcher, so that a large knowledge base is
//! compiled once (at import) and loaded quickly. Little-endian, length-prefixed
//! arrays behind a magic number and a format version.

use crate::FaqError;
use crate::embed::DIMS;
use crate::lexical::LexicalIndex;
use crate::matcher::{Matcher, MatcherOptions, SemanticIndex, class_index};
use crate::model::LinearModel;

const MAGIC: &[u8; 8] = b"SBFAQ\0\0\x04";

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u64).to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        v.iter()
            .for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    fn f32s(&mut self, v: &[f32]) {
        self.len(v.len());
        v.iter()
            .for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    fn u64s(&mut self, v: &[u64]) {
        self.len(v.len());
        v.iter()
            .for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    fn lexical(&mut self, index: &LexicalIndex) {
        self.u64s(&index.terms);
        self.f32s(&index.idf);
        self.u32s(&index.offsets);
        self.u32s(&index.post_doc);
        self.f32s(&index.post_weight);
        self.u32s(&index.doc_entry);
        self.u32(index.entries);
        self.f32(index.unseen_idf);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

fn corrupt(what: &str) -> FaqError {
    FaqError::Corrupt(format!("truncated or invalid at {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FaqError> {
        if self.bytes.len() < n {
            return Err(corrupt(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self, what: &str) -> Result<u32, FaqError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().map_err(|_| corrupt(what))?,
        ))
    }
    fn f32(&mut self, what: &str) -> Result<f32, FaqError> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    fn len(&mut self, what: &str) -> Result<usize, FaqError> {
        let n = u64::from_le_bytes(self.take(8, what)?.try_into().map_err(|_| corrupt(what))?);
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len())
            .ok_or_else(|| corrupt(what))
    }
    fn string(&mut self, what: &str) -> Result<String, FaqError> {
        let n = self.len(what)?;
        String::from_utf8(self.take(n, what)?.to_vec()).map_err(|_| corrupt(what))
    }
    /// A length-prefixed array of `N`-byte little-endian values, decoded in one
    /// pass into one allocation.
    fn array<const N: usize, T>(
        &mut self,
        what: &str,
        decode: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, FaqError> {
        let n = self.len(what)?;
        let bytes = self.take(n.checked_mul(N).ok_or_else(|| corrupt(what))?, what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| decode(c.try_into().unwrap_or([0; N])))
            .collect())
    }
    fn u32s(&mut self, what: &str) -> Result<Vec<u32>, FaqError> {
        self.array(what, u32::from_le_bytes)
    }
    fn f32s(&mut self, what: &str) -> Result<Vec<f32>, FaqError> {
        self.array(what, f32::from_le_bytes)
    }
    fn u64s(&mut self, what: &str) -> Result<Vec<u64>, FaqError> {
        self.array(what, u64::from_le_bytes)
    }
    fn lexical(&mut self) -> Result<LexicalIndex, FaqError> {
        let index = LexicalIndex {
            terms: self.u64s("terms")?,
            idf: self.f32s("idf")?,
            offsets: self.u32s("offsets")?,
            post_doc: self.u32s("postings")?,
            post_weight: self.f32s("weights")?,
            doc_entry: self.u32s("documents")?,
            entries: self.u32("entries")?,
            unseen_idf: self.f32("idf")?,
        };
        let terms = index.terms.len();
        let postings = index.post_doc.len();
        let consistent = index.terms.windows(2).all(|w| w[0] < w[1])
            && index.idf.len() == terms
            && index.offsets.len() == terms + 1
            && index.post_weight.len() == postings
            && index.offsets.windows(2).all(|w| w[0] <= w[1])
            && index
                .offsets
                .last()
                .is_some_and(|&o| o as usize == postings)
            && index
                .post_doc
                .iter()
                .all(|&d| (d as usize) < index.doc_entry.len())
            && index.doc_entry.iter().all(|&e| e < index.entries);
        if !consistent {
            return Err(FaqError::Corrupt("inconsistent lexical index".into()));
        }
        Ok(index)
    }
}

impl Matcher {
    /// The compiled matcher as bytes (see [`Matcher::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(MAGIC);
        w.u32(u32::from(self.options.index_answers) | (u32::from(self.options.semantic) << 1));
        w.len(self.ids.len());
        for id in &self.ids {
            w.str(id);
        }
        w.lexical(&self.lexical);
        match &self.answers {
            Some(answers) => {
                w.u32(1);
                w.lexical(answers);
            }
            None => w.u32(0),
        }
        w.u64s(&self.model.hashes);
        w.u32s(&self.model.offsets);
        w.u32s(&self.model.classes);
        w.f32s(&self.model.weights);
        w.u32(self.model.entries);
        w.u32s(&self.entry_class);
        match &self.semantic {
            Some(semantic) => {
                w.u32(1);
                w.f32s(&semantic.centroids);
                w.u32s(&semantic.offsets);
                w.len(semantic.vectors.len());
                w.0.extend(semantic.vectors.iter().map(|&v| v as u8));
            }
            None => w.u32(0),
        }
        w.0
    }

    /// Load a matcher written by [`Matcher::to_bytes`], checking its consistency.
    pub fn from_bytes(bytes: &[u8]) -> Result<Matcher, FaqError> {
        let mut r = Reader { bytes };
        if r.take(MAGIC.len(), "header")? != MAGIC {
            return Err(FaqError::Corrupt(
                "not a compiled matcher of this version".into(),
            ));
        }
        let flags = r.u32("options")?;
        let options = MatcherOptions {
            index_answers: flags & 1 != 0,
            semantic: flags & 2 != 0,
        };
        let n = r.len("ids")?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(r.string("id")?);
        }
        let lexical = r.lexical()?;
        let answers = match r.u32("answers")? {
            0 => None,
            _ => Some(r.lexical()?),
        };
        let mut model = LinearModel {
            hashes: r.u64s("features")?,
            offsets: r.u32s("feature offsets")?,
            classes: r.u32s("classes")?,
            weights: r.f32s("weights")?,
            entries: r.u32("entries")?,
            table: Vec::new(),
        };
        let entry_class = r.u32s("entry classes")?;
        let semantic = match r.u32("semantic")? {
            0 => None,
            _ => Some(SemanticIndex {
                centroids: r.f32s("centroids")?,
                offsets: r.u32s("phrasing offsets")?,
                vectors: r.array("phrasing vectors", |[b]: [u8; 1]| b as i8)?,
            }),
        };
        if !r.bytes.is_empty() {
            return Err(FaqError::Corrupt("trailing bytes".into()));
        }
        let entries = ids.len() as u32;
        let consistent = lexical.entries == entries
            && answers.as_ref().is_none_or(|a| a.entries == entries)
            && entry_class.len() == ids.len()
            && entry_class.iter().all(|&c| c < model.entries)
            && model.entries as usize <= ids.len()
            && model.hashes.windows(2).all(|w| w[0] < w[1])
            && model.offsets.len() == model.hashes.len() + 1
            && model.classes.len() == model.weights.len()
            && model.offsets.windows(2).all(|w| w[0] <= w[1])
            && model
                .offsets
                .last()
                .is_some_and(|&o| o as usize == model.classes.len())
            && model.classes.iter().all(|&c| c < model.entries);
        if !consistent {
            return Err(FaqError::Corrupt("inconsistent model".into()));
        }
        if let Some(semantic) = &semantic {
            let phrasings = semantic.vectors.len() / DIMS;
            let consistent = semantic.centroids.len() == ids.len() * DIMS
                && semantic.offsets.len() == ids.len() + 1
                && semantic.vectors.len() % DIMS == 0
                && semantic.offsets.windows(2).all(|w| w[0] <= w[1])
                && semantic
                    .offsets
                    .last()
                    .is_some_and(|&o| o as usize == phrasings);
            if !consistent {
                return Err(FaqError::Corrupt("inconsistent phrasing vectors".into()));
            }
        }
        model.build_table();
        let (class_offsets, class_entries) = class_index(&entry_class, model.entries);
        if class_entries.is_empty() != (model.entries as usize == ids.len())
            || class_offsets.windows(2).any(|w| w[0] == w[1])
        {
            return Err(FaqError::Corrupt("inconsistent entry classes".into()));
        }
        Ok(Matcher {
            options,
            ids,
            lexical,
            answers,
            model,
            entry_class,
            class_offsets,
            class_entries,
            semantic,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Matcher, MatcherOptions, sample_kb};

    #[test]
    fn round_trip_gives_the_same_rankings() {
        let kb = sample_kb();
        for options in [
            MatcherOptions {
                index_answers: false,
                semantic: false,
            },
            MatcherOptions {
                index_answers: true,
                semantic: false,
            },
        ] {
            let matcher = Matcher::build_with(&kb, options);
            let loaded = Matcher::from_bytes(&matcher.to_bytes()).unwrap();
            assert_eq!(loaded, matcher);
            for query in [
                "where is my parcel",
                "退款多久到账",
                "opening hours on sunday",
            ] {
                assert_eq!(loaded.rank(query, 5), matcher.rank(query, 5));
            }
        }
    }

    #[test]
    fn damaged_bytes_are_rejected() {
        let bytes = Matcher::build(&sample_kb()).to_bytes();
        assert!(Matcher::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        assert!(Matcher::from_bytes(b"hello").is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Matcher::from_bytes(&extra).is_err());
        let mut wrong = bytes;
        wrong[0] = b'X';
        assert!(Matcher::from_bytes(&wrong).is_err());
    }
}
