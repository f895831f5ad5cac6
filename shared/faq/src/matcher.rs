//! The compiled matcher: ranks knowledge-base entries for a customer message and
//! says how sure it is.

use switchboard_domain::Language;

use crate::kb::KnowledgeBase;
use crate::lexical::{Document, LexicalIndex};

/// How a knowledge base is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatcherOptions {
    /// Also match against the answer text (useful when entries have few or no
    /// paraphrases and long answers, as in community Q&A).
    pub index_answers: bool,
}

/// A compiled knowledge base. Immutable and shareable across threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub(crate) options: MatcherOptions,
    pub(crate) ids: Vec<String>,
    pub(crate) lexical: LexicalIndex,
}

/// The ranked entries for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Best first; ties go to the earlier knowledge-base entry.
    pub candidates: Vec<Scored>,
    /// Confidence that the top candidate is right, in [0, 1]; 0 when there is none.
    pub confidence: f32,
    /// The language of the message.
    pub language: Language,
}

impl Ranking {
    pub fn top(&self) -> Option<&Scored> {
        self.candidates.first()
    }
}

/// One ranked entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Index into `KnowledgeBase::entries`.
    pub entry: usize,
    pub id: String,
    /// The matcher's score (comparable within one ranking only).
    pub score: f32,
    /// Confidence that this entry is the right one, in [0, 1].
    pub confidence: f32,
}

impl Matcher {
    pub fn build(kb: &KnowledgeBase) -> Matcher {
        Self::build_with(kb, MatcherOptions::default())
    }

    pub fn build_with(kb: &KnowledgeBase, options: MatcherOptions) -> Matcher {
        let mut texts: Vec<(u32, String)> = Vec::new();
        for (i, entry) in kb.entries.iter().enumerate() {
            let i = i as u32;
            if options.index_answers {
                let mut first = entry.question.clone();
                for answer in std::iter::once(&entry.answer).chain(entry.answers.values()) {
                    first.push('\n');
                    first.push_str(answer);
                }
                texts.push((i, first));
                texts.extend(entry.paraphrases.iter().map(|p| (i, p.clone())));
            } else {
                texts.extend(entry.phrasings().map(|p| (i, p.to_string())));
            }
        }
        let docs = texts.iter().map(|(entry, text)| Document {
            entry: *entry,
            text,
        });
        let lexical = LexicalIndex::build(kb.entries.len() as u32, docs);
        Matcher {
            options,
            ids: kb.entries.iter().map(|e| e.id.clone()).collect(),
            lexical,
        }
    }

    pub fn options(&self) -> MatcherOptions {
        self.options
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `top` best entries for `query`, with calibrated confidence.
    pub fn rank(&self, query: &str, top: usize) -> Ranking {
        let language = Language::detect(query);
        let lexical = self.lexical.score(query);
        let mut scored: Vec<(u32, f32)> = lexical.scores;
        sort_best_first(&mut scored);
        let ceiling = lexical.ceiling.max(1e-6);
        let first = scored.first().map_or(0.0, |s| s.1 / ceiling);
        let second = scored.get(1).map_or(0.0, |s| s.1 / ceiling);
        let confidence = if scored.is_empty() {
            0.0
        } else {
            lexical_confidence(first, second)
        };
        let candidates = scored
            .iter()
            .take(top)
            .enumerate()
            .map(|(rank, &(entry, score))| Scored {
                entry: entry as usize,
                id: self.ids[entry as usize].clone(),
                score,
                confidence: if rank == 0 {
                    confidence
                } else {
                    lexical_confidence(score / ceiling, first).min(confidence)
                },
            })
            .collect();
        Ranking {
            candidates,
            confidence,
            language,
        }
    }
}

/// Sort by score, best first; equal scores keep knowledge-base order.
pub(crate) fn sort_best_first(scored: &mut [(u32, f32)]) {
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Confidence from the normalised top score (the share of the message's
/// information the best phrasing covers) and its lead over the runner-up.
fn lexical_confidence(first: f32, second: f32) -> f32 {
    let coverage = first.clamp(0.0, 1.5);
    let lead = (first - second).max(0.0);
    let z = 7.0 * (coverage - 0.45) + 6.0 * lead;
    sigmoid(z)
}

pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}
