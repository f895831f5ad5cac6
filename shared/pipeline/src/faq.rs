//! The FAQ as the worker sees it: candidates with answers in the customer's
//! language, from a knowledge base that can be swapped while the worker runs.

use std::sync::{Arc, RwLock};

use switchboard_domain::{FaqCandidate, Language};
use switchboard_faq::{KnowledgeBase, Matcher, MatcherOptions};

/// One compiled knowledge base: immutable once built.
pub struct CompiledFaq {
    kb: KnowledgeBase,
    matcher: Matcher,
    generation: Option<i64>,
}

impl CompiledFaq {
    /// Compile `kb` (the slow part: do it off the async threads for large ones).
    pub fn compile(kb: KnowledgeBase, generation: Option<i64>) -> Self {
        let matcher = Matcher::build_with(&kb, MatcherOptions::for_kb(&kb));
        Self {
            kb,
            matcher,
            generation,
        }
    }

    pub fn knowledge_base(&self) -> &KnowledgeBase {
        &self.kb
    }

    /// The store's generation this was compiled from (`None`: not from the store).
    pub fn generation(&self) -> Option<i64> {
        self.generation
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

/// The knowledge base in use. A new one is compiled beside it and swapped in
/// whole ([`Faq::replace`]): a message is answered from one generation or the
/// next, never from a mixture.
pub struct Faq {
    current: RwLock<Arc<CompiledFaq>>,
}

impl Faq {
    pub fn new(kb: KnowledgeBase) -> Self {
        Self::from_compiled(CompiledFaq::compile(kb, None))
    }

    pub fn from_compiled(compiled: CompiledFaq) -> Self {
        Self {
            current: RwLock::new(Arc::new(compiled)),
        }
    }

    /// The compiled knowledge base in use now; it stays valid (and unchanged)
    /// for as long as the caller holds it, whatever is swapped in meanwhile.
    pub fn current(&self) -> Arc<CompiledFaq> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc:
        // the Arc inside is whole either way.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Swap in a newly compiled knowledge base.
    pub fn replace(&self, compiled: CompiledFaq) {
        let compiled = Arc::new(compiled);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = compiled;
    }

    /// The best `top` entries for `text` in the knowledge base in use now.
    pub fn candidates(&self, text: &str, language: Language, top: usize) -> Vec<FaqCandidate> {
        self.current().candidates(text, language, top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(id: &str, question: &str, answer: &str) -> KnowledgeBase {
        KnowledgeBase::new(vec![switchboard_faq::KbEntry {
            id: id.into(),
            question: question.into(),
            answer: answer.into(),
            ..Default::default()
        }])
        .unwrap()
    }

    #[test]
    fn a_swapped_in_knowledge_base_answers_and_the_old_one_stays_whole() {
        let faq = Faq::new(kb("old", "Do you sell umbrellas?", "Yes, umbrellas."));
        let before = faq.current();
        faq.replace(CompiledFaq::compile(
            kb("new", "Do you sell moon rocks?", "Yes, moon rocks."),
            Some(7),
        ));
        let best = faq.candidates("do you sell moon rocks", Language::En, 1);
        assert_eq!(best[0].entry_id, "new");
        assert_eq!(faq.current().generation(), Some(7));
        // whoever held the old generation still reads it whole
        assert_eq!(before.knowledge_base().entries[0].id, "old");
        assert_eq!(before.generation(), None);
    }
}
