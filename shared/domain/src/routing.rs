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
    Ja,
    Es,
    Fr,
    De,
}

impl Language {
    pub const ALL: [Language; 6] = [
        Language::En,
        Language::Zh,
        Language::Ja,
        Language::Es,
        Language::Fr,
        Language::De,
    ];

    /// Japanese when the message has kana; Chinese when at least a fifth of
    /// the letters are Han characters (a Chinese sentence with an English
    /// product name is still Chinese); otherwise English, Spanish, French or
    /// German by their letters and most common words, English when unsure.
    pub fn detect(text: &str) -> Language {
        let (mut han, mut kana, mut letters) = (0usize, 0usize, 0usize);
        for ch in text.chars() {
            if is_han(ch) {
                han += 1;
                letters += 1;
            } else if is_kana(ch) {
                kana += 1;
                letters += 1;
            } else if ch.is_alphabetic() {
                letters += 1;
            }
        }
        if kana > 0 && (kana + han) * 5 >= letters {
            return Language::Ja;
        }
        if han > 0 && han * 5 >= letters {
            return Language::Zh;
        }
        detect_latin(text)
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
            Language::Ja => "ja",
            Language::Es => "es",
            Language::Fr => "fr",
            Language::De => "de",
        }
    }

    /// The language's name in English, for agents.
    pub fn name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Zh => "Chinese",
            Language::Ja => "Japanese",
            Language::Es => "Spanish",
            Language::Fr => "French",
            Language::De => "German",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        let code = code.to_ascii_lowercase();
        // "zh-TW", "es-MX", "de_AT": the language part decides
        let primary = code.split(['-', '_']).next().unwrap_or("");
        match primary {
            "en" => Some(Language::En),
            "zh" => Some(Language::Zh),
            "ja" => Some(Language::Ja),
            "es" => Some(Language::Es),
            "fr" => Some(Language::Fr),
            "de" => Some(Language::De),
            _ => None,
        }
    }

    /// Whether the language is written with CJK characters (Chinese, Japanese).
    pub fn is_cjk(self) -> bool {
        matches!(self, Language::Zh | Language::Ja)
    }
}

/// Hiragana and katakana (with the phonetic extensions).
pub fn is_kana(ch: char) -> bool {
    matches!(ch as u32, 0x3040..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F)
}

/// Common words (and letters) that mark a Latin-script language; English when
/// none of the others scores higher.
fn detect_latin(text: &str) -> Language {
    const ES: &[&str] = &[
        "el", "la", "los", "las", "de", "del", "que", "y", "en", "un", "una", "es", "por", "para",
        "con", "mi", "mis", "no", "se", "como", "cuándo", "cuando", "dónde", "donde", "qué",
        "quiero", "puedo", "tengo", "pedido", "hola", "gracias", "está", "son", "al", "lo", "su",
        "envío", "cuánto", "cuesta", "hay",
    ];
    const FR: &[&str] = &[
        "le",
        "la",
        "les",
        "des",
        "de",
        "du",
        "un",
        "une",
        "et",
        "est",
        "je",
        "vous",
        "nous",
        "mon",
        "ma",
        "mes",
        "pour",
        "avec",
        "pas",
        "ne",
        "que",
        "qui",
        "quand",
        "où",
        "comment",
        "est-ce",
        "bonjour",
        "merci",
        "commande",
        "livraison",
        "au",
        "aux",
        "sur",
        "dans",
        "puis",
        "combien",
        "suis",
        "ai",
        "votre",
        "c'est",
    ];
    const DE: &[&str] = &[
        "der",
        "die",
        "das",
        "den",
        "dem",
        "des",
        "und",
        "ist",
        "ich",
        "sie",
        "wir",
        "nicht",
        "ein",
        "eine",
        "einen",
        "mit",
        "für",
        "auf",
        "zu",
        "mein",
        "meine",
        "meinen",
        "wie",
        "wann",
        "wo",
        "was",
        "kann",
        "können",
        "bestellung",
        "hallo",
        "danke",
        "bitte",
        "ist",
        "habe",
        "haben",
        "lieferung",
        "von",
        "noch",
        "wird",
    ];
    const EN: &[&str] = &[
        "the", "a", "an", "and", "is", "are", "i", "you", "my", "your", "to", "of", "in", "for",
        "on", "with", "how", "what", "when", "where", "can", "do", "does", "it", "this", "that",
        "order", "hello", "thanks", "please", "not", "have", "be", "me", "we", "will",
    ];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let count = |list: &[&str]| words.iter().filter(|w| list.contains(w)).count() as f32;
    let letters = |set: &str| lower.chars().filter(|c| set.contains(*c)).count() as f32;
    let scores = [
        (Language::En, count(EN)),
        (
            Language::Es,
            count(ES) + 2.0 * letters("ñ¿¡") + 0.5 * letters("áíóú"),
        ),
        (
            Language::Fr,
            count(FR) + 2.0 * letters("çœ") + 0.5 * letters("àâèêëîïôûù"),
        ),
        (Language::De, count(DE) + 2.0 * letters("äöüß")),
    ];
    let mut best = (Language::En, scores[0].1);
    for &(language, score) in &scores[1..] {
        if score > best.1 {
            best = (language, score);
        }
    }
    best.0
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
    /// The bot could not answer twice in a row.
    RepeatedFailure,
    /// No agent answered within the tier's first-response target.
    SlaBreach,
    /// The customer rated the service 1 or 2 out of 5 after a resolve.
    LowSatisfaction,
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
            EscalationReason::RepeatedFailure => "repeated_failure",
            EscalationReason::SlaBreach => "sla_breach",
            EscalationReason::LowSatisfaction => "low_satisfaction",
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
            EscalationReason::RepeatedFailure => "the bot could not answer twice in a row",
            EscalationReason::SlaBreach => {
                "no agent has answered within the service level: the customer is still waiting"
            }
            EscalationReason::LowSatisfaction => {
                "the customer rated the resolved conversation 1 or 2 out of 5"
            }
        }
    }

    /// Whether the reason makes a ticket urgent (the priority queue and
    /// address): anger, an explicit ask for a person, repeated failure, and
    /// a missed service level.
    pub fn is_urgent(self) -> bool {
        matches!(
            self,
            EscalationReason::AskedForHuman
                | EscalationReason::NegativeSentiment
                | EscalationReason::RepeatedFailure
                | EscalationReason::SlaBreach
        )
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
    /// The bands for a language: the Chinese ones for the CJK languages (the
    /// matcher reads them by characters), the English ones for the others.
    pub fn bands(&self, language: Language) -> ConfidenceBands {
        if language.is_cjk() {
            self.chinese
        } else {
            self.english
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
        if crate::sentiment::is_clearly_negative(text) {
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

/// Whether the customer explicitly asks for a person: an intent, not a word
/// ("agent please" and "转人工" ask; "what are your customer service hours?"
/// and "I don't need a human" do not). See [`crate::intent`].
pub fn asks_for_human(text: &str) -> bool {
    crate::intent::asks_for_person(text)
}

/// Customer-facing texts, per language.
pub mod texts {
    use super::Language;

    /// Appended to an answer the bot is not sure of.
    pub fn offer_human(language: Language) -> &'static str {
        match language {
            Language::En => {
                "If this doesn't answer your question, reply \"agent\" and a person will help."
            }
            Language::Zh => "如果没有解决您的问题，请回复“人工”，我们的客服会为您处理。",
            Language::Ja => {
                "解決しない場合は「オペレーター」と返信してください。担当者が対応いたします。"
            }
            Language::Es => {
                "Si esto no responde a tu pregunta, responde \"agente\" y una persona te ayudará."
            }
            Language::Fr => {
                "Si cela ne répond pas à votre question, répondez « conseiller » et une personne vous aidera."
            }
            Language::De => {
                "Falls das Ihre Frage nicht beantwortet, antworten Sie „Mitarbeiter“ und ein Mensch hilft Ihnen weiter."
            }
        }
    }

    /// Sent when the conversation goes to a person.
    pub fn handed_over(language: Language, expected_response: &str) -> String {
        match language {
            Language::En => format!(
                "Thanks, I've passed your message to our support team. A person will reply here within about {expected_response}."
            ),
            Language::Zh => format!("已为您转接人工客服，预计{expected_response}内在这里回复您。"),
            Language::Ja => format!(
                "お問い合わせを担当者に引き継ぎました。{expected_response}以内にこちらでご返信いたします。"
            ),
            Language::Es => format!(
                "Gracias, he pasado tu mensaje a nuestro equipo de atención. Una persona te responderá aquí en unos {expected_response}."
            ),
            Language::Fr => format!(
                "Merci, j'ai transmis votre message à notre équipe. Une personne vous répondra ici d'ici {expected_response} environ."
            ),
            Language::De => format!(
                "Danke, ich habe Ihre Nachricht an unser Support-Team weitergegeben. Ein Mensch antwortet Ihnen hier in etwa {expected_response}."
            ),
        }
    }

    /// Sent when the customer writes again while waiting for a person.
    pub fn reassurance(language: Language) -> &'static str {
        match language {
            Language::En => {
                "Thanks, I've added this to your conversation. A person will reply here soon."
            }
            Language::Zh => "已收到，我们已将这条消息补充到您的咨询中，客服会尽快在这里回复您。",
            Language::Ja => {
                "ありがとうございます。このメッセージもお問い合わせに追加しました。担当者がまもなくご返信いたします。"
            }
            Language::Es => {
                "Gracias, lo he añadido a tu conversación. Una persona te responderá aquí pronto."
            }
            Language::Fr => {
                "Merci, je l'ai ajouté à votre conversation. Une personne vous répondra ici bientôt."
            }
            Language::De => {
                "Danke, ich habe das Ihrem Gespräch hinzugefügt. Ein Mensch antwortet Ihnen hier in Kürze."
            }
        }
    }

    /// Sent by the reassurance timer while the customer waits for a person,
    /// with the expected wait ("about 10 minutes").
    pub fn still_waiting(language: Language, expected_wait: &str) -> String {
        match language {
            Language::En => format!(
                "We're on it: your request is with our support team. Thanks for your patience; a person will reply here in about {expected_wait}."
            ),
            Language::Zh => {
                format!(
                    "正在为您查询，请稍候。客服人员预计{expected_wait}内在这里回复您，感谢您的耐心等待。"
                )
            }
            Language::Ja => format!(
                "ただいま確認しております。少々お待ちください。担当者が{expected_wait}ほどでこちらにご返信いたします。"
            ),
            Language::Es => format!(
                "Estamos en ello: tu consulta está con nuestro equipo. Gracias por tu paciencia; una persona te responderá aquí en unos {expected_wait}."
            ),
            Language::Fr => format!(
                "Nous nous en occupons : votre demande est entre les mains de notre équipe. Merci de votre patience ; une personne vous répondra ici d'ici {expected_wait} environ."
            ),
            Language::De => format!(
                "Wir kümmern uns darum: Ihre Anfrage liegt bei unserem Support-Team. Danke für Ihre Geduld; ein Mensch antwortet Ihnen hier in etwa {expected_wait}."
            ),
        }
    }

    /// Introduces the numbered menu of common questions.
    pub fn menu_intro(language: Language) -> &'static str {
        match language {
            Language::En => "Common questions (reply with a number):",
            Language::Zh => "常见问题（回复数字即可）：",
            Language::Ja => "よくあるご質問（番号でご返信ください）：",
            Language::Es => "Preguntas frecuentes (responde con un número):",
            Language::Fr => "Questions fréquentes (répondez par un chiffre) :",
            Language::De => "Häufige Fragen (antworten Sie mit einer Zahl):",
        }
    }

    /// Closes the menu: a person is one word away.
    pub fn menu_or_person(language: Language) -> &'static str {
        match language {
            Language::En => "Or just ask your question; reply \"agent\" for a person.",
            Language::Zh => "也可以直接提问；回复“人工”转接客服。",
            Language::Ja => {
                "ご質問をそのままお送りいただくこともできます。担当者をご希望の場合は「オペレーター」と返信してください。"
            }
            Language::Es => {
                "O escribe tu pregunta; responde \"agente\" para hablar con una persona."
            }
            Language::Fr => {
                "Ou posez directement votre question ; répondez « conseiller » pour parler à une personne."
            }
            Language::De => {
                "Oder stellen Sie einfach Ihre Frage; antworten Sie „Mitarbeiter“ für einen Menschen."
            }
        }
    }

    /// The greeting for a new conversation.
    pub fn welcome(language: Language) -> &'static str {
        match language {
            Language::En => {
                "Hi! Ask me anything about your order, delivery, returns or your account."
            }
            Language::Zh => "您好！订单、配送、退换货或账户的问题都可以问我。",
            Language::Ja => {
                "こんにちは！ご注文、配送、返品、アカウントについて何でもお尋ねください。"
            }
            Language::Es => {
                "¡Hola! Pregúntame lo que quieras sobre tu pedido, el envío, las devoluciones o tu cuenta."
            }
            Language::Fr => {
                "Bonjour ! Posez-moi vos questions sur votre commande, la livraison, les retours ou votre compte."
            }
            Language::De => {
                "Hallo! Fragen Sie mich alles zu Ihrer Bestellung, Lieferung, Rücksendung oder Ihrem Konto."
            }
        }
    }

    /// The satisfaction survey (CSAT) after a conversation.
    pub fn satisfaction_survey(language: Language) -> &'static str {
        match language {
            Language::En => {
                "How satisfied are you with the help you got? Reply with a number from 1 (not at all) to 5 (very)."
            }
            Language::Zh => "您对本次服务满意吗？请回复1（很不满意）到5（非常满意）之间的数字。",
            Language::Ja => {
                "今回の対応にどの程度ご満足いただけましたか？1（不満）から5（大変満足）の数字でご返信ください。"
            }
            Language::Es => {
                "¿Qué tan satisfecho estás con la ayuda recibida? Responde con un número del 1 (nada) al 5 (mucho)."
            }
            Language::Fr => {
                "Êtes-vous satisfait de l'aide reçue ? Répondez par un chiffre de 1 (pas du tout) à 5 (très)."
            }
            Language::De => {
                "Wie zufrieden sind Sie mit der Hilfe? Antworten Sie mit einer Zahl von 1 (gar nicht) bis 5 (sehr)."
            }
        }
    }

    /// "15 minutes" / "15分钟" / "2 horas" ...
    pub fn duration(language: Language, minutes: u32) -> String {
        let hours = (minutes.is_multiple_of(60) && minutes >= 60).then_some(minutes / 60);
        let plural = |n: u32, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        match (language, hours) {
            (Language::En, Some(h)) => plural(h, "hour", "hours"),
            (Language::En, None) => plural(minutes, "minute", "minutes"),
            (Language::Zh, Some(h)) => format!("{h}小时"),
            (Language::Zh, None) => format!("{minutes}分钟"),
            (Language::Ja, Some(h)) => format!("{h}時間"),
            (Language::Ja, None) => format!("{minutes}分"),
            (Language::Es, Some(h)) => plural(h, "hora", "horas"),
            (Language::Es, None) => plural(minutes, "minuto", "minutos"),
            (Language::Fr, Some(h)) => plural(h, "heure", "heures"),
            (Language::Fr, None) => plural(minutes, "minute", "minutes"),
            (Language::De, Some(h)) => plural(h, "Stunde", "Stunden"),
            (Language::De, None) => plural(minutes, "Minute", "Minuten"),
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
    fn clearly_negative_messages_go_to_a_person() {
        let policy = RoutingPolicy::default();
        let angry = Decision::Escalate {
            reason: EscalationReason::NegativeSentiment,
        };
        for text in [
            "This is the worst service, absolutely unacceptable!!",
            "垃圾商家，我要投诉",
        ] {
            let language = Language::detect(text);
            let decision = policy.decide(Tier::Regular, language, text, Some(&candidate(0.99)));
            assert_eq!(decision, angry, "{text}");
        }
        for text in ["How do I reset my password?", "I'm a bit disappointed"] {
            let decision = policy.decide(Tier::Regular, Language::En, text, Some(&candidate(0.99)));
            assert_ne!(decision, angry, "{text}");
        }
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
    fn detects_six_languages() {
        for (text, language) in [
            ("Where is my order?", Language::En),
            ("我的订单什么时候发货", Language::Zh),
            ("注文した商品はいつ届きますか", Language::Ja),
            ("返品したいです", Language::Ja),
            ("¿Cuándo llega mi pedido?", Language::Es),
            ("Quiero devolver los zapatos", Language::Es),
            ("Où est ma commande ?", Language::Fr),
            ("Je voudrais retourner mes chaussures", Language::Fr),
            ("Wo ist meine Bestellung?", Language::De),
            ("Ich möchte die Schuhe zurückgeben", Language::De),
            ("refund", Language::En),
        ] {
            assert_eq!(Language::detect(text), language, "{text}");
        }
        for language in Language::ALL {
            assert_eq!(Language::from_code(language.code()), Some(language));
        }
        assert_eq!(Language::from_code("es-MX"), Some(Language::Es));
        assert_eq!(Language::from_code("pt"), None);
    }

    #[test]
    fn every_system_text_exists_in_every_language() {
        for language in Language::ALL {
            let expected = texts::duration(language, 240);
            for text in [
                texts::offer_human(language).to_owned(),
                texts::handed_over(language, &expected),
                texts::reassurance(language).to_owned(),
                texts::welcome(language).to_owned(),
                texts::satisfaction_survey(language).to_owned(),
            ] {
                assert!(!text.trim().is_empty());
                // written in the language it is for (English only for English)
                if language != Language::En {
                    assert_ne!(
                        Language::detect(&text),
                        Language::En,
                        "{language:?}: {text}"
                    );
                }
            }
            assert!(texts::handed_over(language, &expected).contains(&expected));
        }
        assert_eq!(RoutingPolicy::default().bands(Language::Ja).answer, 0.65);
        assert_eq!(RoutingPolicy::default().bands(Language::Fr).answer, 0.70);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(texts::duration(Language::En, 15), "15 minutes");
        assert_eq!(texts::duration(Language::En, 60), "1 hour");
        assert_eq!(texts::duration(Language::En, 240), "4 hours");
        assert_eq!(texts::duration(Language::Zh, 120), "2小时");
        assert_eq!(texts::duration(Language::Es, 60), "1 hora");
        assert_eq!(texts::duration(Language::De, 15), "15 Minuten");
    }
}
