//! Deciding what happens to a customer message: answer from the FAQ, answer and
//! offer a person, or hand over to a person.

use serde::{Deserialize, Serialize};

use crate::model::Tier;

/// The languages Switchboard answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    En,
    Zh,
}

impl Language {
    /// Chinese when at least a fifth of the letters are Han characters (a Chinese
    /// sentence with an English product name is still Chinese), else English.
    pub fn detect(text: &str) -> Language {
        let (mut han, mut letters) = (0usize, 0usize);
        for ch in text.chars() {
            if is_han(ch) {
                han += 1;
                letters += 1;
            } else if ch.is_alphabetic() {
                letters += 1;
            }
        }
        if han > 0 && han * 5 >= letters {
            Language::Zh
        } else {
            Language::En
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        match code.to_ascii_lowercase().as_str() {
            "en" => Some(Language::En),
            "zh" | "zh-cn" | "zh-hans" | "zh-tw" | "zh-hant" => Some(Language::Zh),
            _ => None,
        }
    }
}

/// CJK unified ideographs (with extension A and the compatibility block).
pub fn is_han(ch: char) -> bool {
    matches!(ch as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// One FAQ entry the matcher considered for a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqCandidate {
    pub entry_id: String,
    pub question: String,
    /// The answer in the customer's language (or the entry's default answer).
    pub answer: String,
    /// Calibrated confidence in [0, 1] that this entry answers the message.
    pub confidence: f32,
}

/// Why a conversation went to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    AskedForHuman,
    NegativeSentiment,
    NoConfidentMatch,
    VipUnanswered,
    /// Media or an empty message the bot cannot read.
    NotText,
    /// The customer wrote again while waiting for a person.
    FollowUp,
}

impl EscalationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationReason::AskedForHuman => "asked_for_human",
            EscalationReason::NegativeSentiment => "negative_sentiment",
            EscalationReason::NoConfidentMatch => "no_confident_match",
            EscalationReason::VipUnanswered => "vip_unanswered",
            EscalationReason::NotText => "not_text",
            EscalationReason::FollowUp => "follow_up",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            EscalationReason::AskedForHuman => "the customer asked for a person",
            EscalationReason::NegativeSentiment => "the customer sounds upset",
            EscalationReason::NoConfidentMatch => "no FAQ entry answers the question confidently",
            EscalationReason::VipUnanswered => "a VIP customer's question the FAQ cannot answer",
            EscalationReason::NotText => "a message the bot cannot read (media or empty)",
            EscalationReason::FollowUp => "the customer wrote again while waiting for a person",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Reply with the candidate's answer; `offer_human` appends an offer of a person.
    Answer {
        candidate: FaqCandidate,
        offer_human: bool,
    },
    Escalate {
        reason: EscalationReason,
    },
}

/// Confidence bands. At or above `answer` the bot answers; from `offer` up to
/// `answer` it answers and offers a person; below `offer` it hands over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceBands {
    pub answer: f32,
    pub offer: f32,
}

impl Default for ConfidenceBands {
    fn default() -> Self {
        Self {
            answer: 0.70,
            offer: 0.45,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingPolicy {
    pub english: ConfidenceBands,
    pub chinese: ConfidenceBands,
}

impl Default for RoutingPolicy {
    /// The bands shipped with the FAQ matcher (see shared/faq/README.md): where
    /// about 96% of the messages answered outright get the right entry.
    fn default() -> Self {
        Self {
            english: ConfidenceBands {
                answer: 0.70,
                offer: 0.45,
            },
            chinese: ConfidenceBands {
                answer: 0.65,
                offer: 0.45,
            },
        }
    }
}

impl RoutingPolicy {
    pub fn bands(&self, language: Language) -> ConfidenceBands {
        match language {
            Language::En => self.english,
            Language::Zh => self.chinese,
        }
    }

    /// The routing rule. An explicit ask for a person or clear anger always goes
    /// to a person; otherwise confidence decides, except that a VIP is never
    /// left with an unsure bot answer.
    pub fn decide(
        &self,
        tier: Tier,
        language: Language,
        text: &str,
        best: Option<&FaqCandidate>,
    ) -> Decision {
        if text.trim().is_empty() {
            return Decision::Escalate {
                reason: EscalationReason::NotText,
            };
        }
        if asks_for_human(text) {
            return Decision::Escalate {
                reason: EscalationReason::AskedForHuman,
            };
        }
        if sentiment(text) <= NEGATIVE_SENTIMENT {
            return Decision::Escalate {
                reason: EscalationReason::NegativeSentiment,
            };
        }
        let bands = self.bands(language);
        match best {
            Some(candidate) if candidate.confidence >= bands.answer => Decision::Answer {
                candidate: candidate.clone(),
                offer_human: false,
            },
            Some(_) if tier == Tier::Vip => Decision::Escalate {
                reason: EscalationReason::VipUnanswered,
            },
            Some(candidate) if candidate.confidence >= bands.offer => Decision::Answer {
                candidate: candidate.clone(),
                offer_human: true,
            },
            _ if tier == Tier::Vip => Decision::Escalate {
                reason: EscalationReason::VipUnanswered,
            },
            _ => Decision::Escalate {
                reason: EscalationReason::NoConfidentMatch,
            },
        }
    }
}

/// Sentiment at or below this is "clearly negative".
pub const NEGATIVE_SENTIMENT: f32 = -0.5;

/// Whether the customer explicitly asks for a person: an intent, not a word
/// ("agent please" and "转人工" ask; "what are your customer service hours?"
/// and "I don't need a human" do not). See [`crate::intent`].
pub fn asks_for_human(text: &str) -> bool {
    crate::intent::asks_for_person(text)
}

const NEGATIVE_EN: &[&str] = &[
    "angry",
    "furious",
    "terrible",
    "awful",
    "horrible",
    "worst",
    "useless",
    "ridiculous",
    "unacceptable",
    "disgusting",
    "pathetic",
    "scam",
    "fraud",
    "hate",
    "garbage",
    "rubbish",
    "incompetent",
    "disappointed",
    "outrageous",
    "lawyer",
    "sue",
    "complaint",
    "cheated",
];
const NEGATIVE_ZH: &[&str] = &[
    "垃圾",
    "差评",
    "投诉",
    "骗子",
    "骗人",
    "太差",
    "气死",
    "恶心",
    "坑人",
    "无语",
    "退钱",
    "什么破",
    "生气",
    "愤怒",
    "失望",
    "忽悠",
    "欺骗",
    "举报",
];

/// A small lexicon score in [-1, 0]: 0 is neutral, -1 furious. Only negative
/// signals matter for routing, so positive words are not scored.
pub fn sentiment(text: &str) -> f32 {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut hits = words.iter().filter(|w| NEGATIVE_EN.contains(w)).count();
    hits += NEGATIVE_ZH.iter().filter(|w| text.contains(*w)).count();
    let shouting = text.contains("!!") || text.contains("！！") || is_shouting(text);
    let score = hits as f32 * 0.35 + if shouting && hits > 0 { 0.3 } else { 0.0 };
    -(score.min(1.0))
}

/// Mostly capital letters over a sentence-sized message.
fn is_shouting(text: &str) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    letters.len() >= 12
        && letters.iter().filter(|c| c.is_ascii_uppercase()).count() * 10 >= letters.len() * 8
}

/// Customer-facing texts, per language.
pub mod texts {
    use super::Language;

    pub fn offer_human(language: Language) -> &'static str {
        match language {
            Language::En => {
                "If this doesn't answer your question, reply \"agent\" and a person will help."
            }
            Language::Zh => "如果没有解决您的问题，请回复“人工”，我们的客服会为您处理。",
        }
    }

    pub fn handed_over(language: Language, expected_response: &str) -> String {
        match language {
            Language::En => format!(
                "Thanks, I've passed your message to our support team. A person will reply here within about {expected_response}."
            ),
            Language::Zh => format!("已为您转接人工客服，预计{expected_response}内在这里回复您。"),
        }
    }

    /// "15 minutes" / "15分钟".
    pub fn duration(language: Language, minutes: u32) -> String {
        match (language, minutes) {
            (Language::En, m) if m % 60 == 0 && m >= 60 => {
                let hours = m / 60;
                format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
            }
            (Language::En, m) => format!("{m} minutes"),
            (Language::Zh, m) if m % 60 == 0 && m >= 60 => format!("{}小时", m / 60),
            (Language::Zh, m) => format!("{m}分钟"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(confidence: f32) -> FaqCandidate {
        FaqCandidate {
            entry_id: "hours".into(),
            question: "When are you open?".into(),
            answer: "9 to 5".into(),
            confidence,
        }
    }

    #[test]
    fn detects_chinese_and_english() {
        assert_eq!(Language::detect("我的订单什么时候发货"), Language::Zh);
        assert_eq!(Language::detect("iPhone 15 的运费是多少"), Language::Zh);
        assert_eq!(Language::detect("Where is my order?"), Language::En);
        assert_eq!(Language::detect(""), Language::En);
    }

    #[test]
    fn explicit_asks_for_a_person() {
        for text in [
            "I want to talk to a human",
            "AGENT please",
            "转人工",
            "人工客服在吗",
            "Can I speak to someone?",
            "real person pls",
        ] {
            assert!(asks_for_human(text), "{text}");
        }
        for text in [
            "What are your opening hours?",
            "I paid in person",
            "营业时间是几点",
            "What are your customer service hours?",
            "How can I contact customer support?",
            "Do you have an agent in Germany?",
            "你们的客服用人工智能吗",
            "I don't need a human",
        ] {
            assert!(!asks_for_human(text), "{text}");
        }
    }

    #[test]
    fn clearly_negative_messages_score_low() {
        assert!(
            sentiment("This is the worst service, absolutely unacceptable!!") <= NEGATIVE_SENTIMENT
        );
        assert!(sentiment("垃圾商家，我要投诉") <= NEGATIVE_SENTIMENT);
        assert!(sentiment("How do I reset my password?") > NEGATIVE_SENTIMENT);
        assert!(sentiment("I'm a bit disappointed") > NEGATIVE_SENTIMENT);
    }

    #[test]
    fn routing_follows_the_bands() {
        let policy = RoutingPolicy::default();
        let en = Language::En;
        assert!(matches!(
            policy.decide(Tier::Regular, en, "when do you open", Some(&candidate(0.9))),
            Decision::Answer {
                offer_human: false,
                ..
            }
        ));
        assert!(matches!(
            policy.decide(Tier::Regular, en, "when do you open", Some(&candidate(0.5))),
            Decision::Answer {
                offer_human: true,
                ..
            }
        ));
        assert_eq!(
            policy.decide(Tier::Regular, en, "when do you open", Some(&candidate(0.1))),
            Decision::Escalate {
                reason: EscalationReason::NoConfidentMatch
            }
        );
        assert_eq!(
            policy.decide(Tier::Vip, en, "when do you open", Some(&candidate(0.5))),
            Decision::Escalate {
                reason: EscalationReason::VipUnanswered
            }
        );
        assert_eq!(
            policy.decide(
                Tier::Regular,
                en,
                "agent, when do you open",
                Some(&candidate(0.99))
            ),
            Decision::Escalate {
                reason: EscalationReason::AskedForHuman
            }
        );
        assert_eq!(
            policy.decide(Tier::New, en, "  ", None),
            Decision::Escalate {
                reason: EscalationReason::NotText
            }
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(texts::duration(Language::En, 15), "15 minutes");
        assert_eq!(texts::duration(Language::En, 60), "1 hour");
        assert_eq!(texts::duration(Language::En, 240), "4 hours");
        assert_eq!(texts::duration(Language::Zh, 120), "2小时");
    }
}
