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
        self.candidates_excluding(text, None, language, top)
    }

    /// The entry `id` as a certain candidate (the customer picked it from a menu).
    pub fn entry(&self, id: &str, language: Language) -> Option<FaqCandidate> {
        let entry = self.kb.get(id)?;
        Some(FaqCandidate {
            entry_id: entry.id.clone(),
            question: entry.question.clone(),
            answer: self.kb.answer_for(entry, language).to_owned(),
            confidence: 1.0,
        })
    }

    /// The top questions for a menu: the first `size` entries with an answer
    /// (the business orders its knowledge base, most asked first), each as
    /// its id and the phrasing in `language` where the entry has one.
    pub fn menu(&self, size: usize, language: Language) -> Vec<(String, String)> {
        self.kb
            .entries
            .iter()
            .filter(|entry| !self.kb.answer_for(entry, language).trim().is_empty())
            .take(size)
            .map(|entry| {
                let label = entry
                    .phrasings()
                    .find(|phrasing| Language::detect(phrasing) == language)
                    .unwrap_or(&entry.question);
                (entry.id.clone(), label.to_owned())
            })
            .collect()
    }

    /// Like [`CompiledFaq::candidates`], leaving out the entry with id `except`.
    pub fn candidates_excluding(
        &self,
        text: &str,
        except: Option<&str>,
        language: Language,
        top: usize,
    ) -> Vec<FaqCandidate> {
        let except = except.and_then(|id| self.kb.entries.iter().position(|e| e.id == id));
        let ranking = self.matcher.rank_excluding(text, top, except);
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

    /// Like [`Faq::candidates`], but a short follow-up that only makes sense
    /// with the customer's previous message ("and to Canada?" after a shipping
    /// question) is also matched together with it (leaving out the entry that
    /// answered the previous message), and that reading wins when it is more
    /// confident and confident enough to act on.
    pub fn candidates_in_context(
        &self,
        text: &str,
        context: Option<&Context<'_>>,
        language: Language,
        top: usize,
    ) -> Vec<FaqCandidate> {
        let compiled = self.current();
        let alone = compiled.candidates(text, language, top);
        let Some(context) = context.filter(|_| is_short_follow_up(text)) else {
            return alone;
        };
        // Read together, the previous question dominates: its own answer is
        // left out (a follow-up asks something else), so the follow-up decides
        // among the rest.
        let joined = format!("{}\n{}", context.previous_question, text);
        let together =
            compiled.candidates_excluding(&joined, context.previous_entry, language, top);
        let better = match (together.first(), alone.first()) {
            // and only a reading the bot would act on (at least the offer band)
            (Some(t), best) => {
                t.confidence >= switchboard_faq::shipped_threshold(language)
                    && best.is_none_or(|a| t.confidence > a.confidence)
            }
            (None, _) => false,
        };
        if better { together } else { alone }
    }
}

/// The conversation so far, as far as matching a follow-up needs it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The customer's previous message.
    pub previous_question: &'a str,
    /// The entry the bot answered it with, if it did.
    pub previous_entry: Option<&'a str>,
}

/// Follow-ups that lean on the previous message are short: up to six words,
/// or ten characters of Chinese or Japanese.
fn is_short_follow_up(text: &str) -> bool {
    let cjk = text
        .chars()
        .filter(|&c| {
            switchboard_domain::routing::is_han(c) || switchboard_domain::routing::is_kana(c)
        })
        .count();
    if cjk > 0 {
        return cjk <= 10;
    }
    text.split_whitespace().count() <= 6
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
    fn a_short_follow_up_is_read_with_the_previous_question() {
        let kb = KnowledgeBase::from_jsonl(
            "{\"id\":\"ship-canada\",\"question\":\"How long does delivery to Canada take?\",\"answer\":\"a\",\"paraphrases\":[\"shipping time to Canada\",\"how many days to deliver to Canada\"]}\n\
             {\"id\":\"ship-mexico\",\"question\":\"How long does delivery to Mexico take?\",\"answer\":\"b\",\"paraphrases\":[\"shipping time to Mexico\",\"how many days to deliver to Mexico\"]}\n\
             {\"id\":\"customs-canada\",\"question\":\"Do I pay customs fees in Canada?\",\"answer\":\"c\",\"paraphrases\":[\"import duties Canada\",\"Canada customs charges\"]}\n\
             {\"id\":\"gift\",\"question\":\"Do you sell gift cards?\",\"answer\":\"d\"}\n",
        )
        .unwrap();
        let faq = Faq::new(kb);
        // alone it could be about delivery or customs
        let alone = faq.candidates("what about Canada?", Language::En, 3);
        assert!(alone[0].confidence - alone[1].confidence < 0.1, "{alone:?}");
        let context = Context {
            previous_question: "How long does delivery to Mexico take?",
            previous_entry: Some("ship-mexico"),
        };
        let read = faq.candidates_in_context("what about Canada?", Some(&context), Language::En, 3);
        assert_eq!(read[0].entry_id, "ship-canada");
        assert!(
            read[0].confidence > alone[0].confidence,
            "{read:?} {alone:?}"
        );
        // a message that stands on its own is matched on its own
        let own = faq.candidates_in_context(
            "Do you sell gift cards for birthdays and other occasions?",
            Some(&context),
            Language::En,
            3,
        );
        assert_eq!(own[0].entry_id, "gift");
        // never just the previous answer again
        let again = Context {
            previous_question: "How long does delivery to Canada take?",
            previous_entry: Some("ship-canada"),
        };
        let read = faq.candidates_in_context("ok thanks", Some(&again), Language::En, 3);
        assert_ne!(
            read.first().map(|c| c.entry_id.as_str()),
            Some("ship-canada-repeat")
        );
        assert_eq!(read, faq.candidates("ok thanks", Language::En, 3));
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
