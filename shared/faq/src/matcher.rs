//! The compiled matcher: ranks knowledge-base entries for a customer message and
//! says how sure it is.

use switchboard_domain::{ConfidenceBands, Language};

use crate::kb::KnowledgeBase;
use crate::lexical::{Document, LexicalIndex};
use crate::model::LinearModel;

/// How a knowledge base is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatcherOptions {
    /// Also match against the answer text (useful when entries have few or no
    /// paraphrases and long answers, as in community Q&A).
    pub index_answers: bool,
}

impl MatcherOptions {
    /// Sensible options for a knowledge base: answers are indexed when it looks
    /// like community Q&A — fewer than one entry in ten has paraphrases and most
    /// entries have a substantial answer (on average over 15 words).
    pub fn for_kb(kb: &KnowledgeBase) -> MatcherOptions {
        let n = kb.entries.len().max(1);
        let with_paraphrases = kb
            .entries
            .iter()
            .filter(|e| !e.paraphrases.is_empty())
            .count();
        let answer_words: usize = kb
            .entries
            .iter()
            .map(|e| e.answer.split_whitespace().count())
            .sum();
        MatcherOptions {
            index_answers: with_paraphrases * 10 < n && answer_words > 15 * n,
        }
    }
}

/// A compiled knowledge base. Immutable and shareable across threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub(crate) options: MatcherOptions,
    pub(crate) ids: Vec<String>,
    pub(crate) lexical: LexicalIndex,
    pub(crate) model: LinearModel,
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
        let phrasings = kb
            .entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.phrasings().map(move |p| (i as u32, p)));
        let answers = kb
            .entries
            .iter()
            .enumerate()
            .filter(|_| options.index_answers && train_on_answers())
            .map(|(i, e)| (i as u32, e.answer.as_str()));
        let model = LinearModel::train(kb.entries.len() as u32, phrasings.chain(answers));
        Matcher {
            options,
            ids: kb.entries.iter().map(|e| e.id.clone()).collect(),
            lexical,
            model,
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
        let model = self.model.score(query);
        let ceiling = lexical.ceiling.max(1e-6);
        let lex_weight = knob("LEX", 0.5);
        // merge the two sparse score lists (both sorted by entry)
        let mut combined: Vec<(u32, f32, f32, f32)> = Vec::new(); // entry, final, prob, lex
        let (mut i, mut j) = (0, 0);
        let (l, m) = (&lexical.scores, &model.probabilities);
        while i < l.len() || j < m.len() {
            let le = l.get(i).map_or(u32::MAX, |x| x.0);
            let me = m.get(j).map_or(u32::MAX, |x| x.0);
            let entry = le.min(me);
            let lex = if le == entry {
                i += 1;
                l[i - 1].1 / ceiling
            } else {
                0.0
            };
            let prob = if me == entry {
                j += 1;
                m[j - 1].1
            } else {
                model.floor
            };
            combined.push((entry, prob + lex_weight * lex, prob, lex));
        }
        combined.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let confidence = match combined.first() {
            None => 0.0,
            Some(first) => {
                let second = combined.get(1).map_or((0, 0.0, 0.0, 0.0), |s| *s);
                calibrate(first.2, first.3, first.1 - second.1)
            }
        };
        if std::env::var_os("FAQ_DUMP").is_some() {
            let f = combined.first().copied().unwrap_or((0, 0.0, 0.0, 0.0));
            let s2 = combined.get(1).copied().unwrap_or((0, 0.0, 0.0, 0.0));
            eprintln!("DUMP {} {} {} {}", f.2, f.3, f.1 - s2.1, model.floor);
        }
        let candidates = combined
            .iter()
            .take(top)
            .enumerate()
            .map(|(rank, &(entry, score, prob, lex))| Scored {
                entry: entry as usize,
                id: self.ids[entry as usize].clone(),
                score,
                confidence: if rank == 0 {
                    confidence
                } else {
                    calibrate(prob, lex, 0.0).min(confidence)
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

/// Development knob (read once per call; removed once the values are fixed).
fn knob(name: &str, default: f32) -> f32 {
    std::env::var(format!("FAQ_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn train_on_answers() -> bool {
    knob("ANS", 0.0) > 0.0
}

/// Confidence that the top entry is right, from the model's probability for it,
/// the share of the message its best phrasing covers lexically, and its lead.
fn calibrate(prob: f32, lex: f32, lead: f32) -> f32 {
    let z = knob("CA", 5.0) * prob
        + knob("CB", 3.0) * lex.min(1.5)
        + knob("CC", 3.0) * lead
        + knob("CD", -4.0);
    sigmoid(z)
}

pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The confidence bands the matcher is calibrated for: at or above `answer` the
/// bot answers; from `offer` it answers and offers a person; below `offer` it
/// hands over.
pub fn bands(language: Language) -> ConfidenceBands {
    match language {
        Language::En => ConfidenceBands {
            answer: 0.70,
            offer: 0.45,
        },
        Language::Zh => ConfidenceBands {
            answer: 0.70,
            offer: 0.45,
        },
    }
}

/// The shipped decision threshold: below it the product hands over to a person.
pub fn shipped_threshold(language: Language) -> f32 {
    bands(language).offer
}
