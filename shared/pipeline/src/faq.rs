//! The FAQ as the worker sees it: candidates with answers in the customer's language.

use switchboard_domain::{FaqCandidate, Language};
use switchboard_faq::{KnowledgeBase, Matcher};

/// A knowledge base compiled for matching. Immutable; rebuild to change it.
pub struct Faq {
    kb: KnowledgeBase,
    matcher: Matcher,
}

impl Faq {
    pub fn new(kb: KnowledgeBase) -> Self {
        let matcher = Matcher::build(&kb);
        Self { kb, matcher }
    }

    pub fn knowledge_base(&self) -> &KnowledgeBase {
        &self.kb
    }

    /// The best `top` entries for `text`, each with its answer in `language`.
    pub fn candidates(&self, text: &str, language: Language, top: usize) -> Vec<FaqCandidate> {
        let ranking = self.matcher.rank(text, top);
        ranking
            .candidates
            .iter()
            .filter_map(|scored| {
                let entry = self.kb.entries.get(scored.entry)?;
                Some(FaqCandidate {
                    entry_id: entry.id.clone(),
                    question: entry.question.clone(),
                    answer: self.kb.answer_for(entry, language).to_owned(),
                    confidence: scored.confidence,
                })
            })
            .collect()
    }
}
