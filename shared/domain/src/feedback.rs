//! Feedback in the customer's own channel: "was this helpful?" after an FAQ
//! answer, and the satisfaction survey (CSAT, 1 to 5 and a comment) after a
//! conversation is resolved. The settings (`[feedback]`), the customer-facing
//! texts, and the readers of the customer's answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Choice, Language};

/// `[feedback]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackSettings {
    /// Ask "was this helpful?" under a confident FAQ answer.
    pub ask_helpful: bool,
    /// Asked at most once per conversation within this many seconds.
    pub helpful_interval_secs: u64,
    /// The question, per language code (`en`, `zh`, ...); the built-in
    /// English and Chinese texts where a language is not set.
    pub helpful_text: BTreeMap<String, String>,
    /// The satisfaction survey after a resolve.
    pub csat: CsatSettings,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        Self {
            ask_helpful: true,
            helpful_interval_secs: 3600,
            helpful_text: BTreeMap::new(),
            csat: CsatSettings::default(),
        }
    }
}

/// `[feedback.csat]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsatSettings {
    pub enabled: bool,
    /// Seconds between the resolve and the question.
    pub delay_secs: u64,
    /// The question, per language code; built-in English and Chinese.
    pub text: BTreeMap<String, String>,
}

impl Default for CsatSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            delay_secs: 60,
            text: BTreeMap::new(),
        }
    }
}

/// The configured text for `language`, else the built-in one.
fn configured<'a>(
    map: &'a BTreeMap<String, String>,
    language: Language,
    builtin: &'a str,
) -> &'a str {
    map.get(language.code())
        .map(String::as_str)
        .filter(|text| !text.trim().is_empty())
        .unwrap_or(builtin)
}

impl FeedbackSettings {
    /// The text appended to an FAQ answer: the question, and where the
    /// channel has no buttons, how to answer it.
    pub fn helpful_question(&self, language: Language, buttons: bool) -> String {
        let chinese = language == Language::Zh;
        let builtin = if chinese {
            "这个回答对您有帮助吗？"
        } else {
            "Was this helpful?"
        };
        let question = configured(&self.helpful_text, language, builtin);
        match (buttons, chinese) {
            (true, _) => question.to_owned(),
            (false, true) => format!("{question}有帮助请回复 1，没有请回复 2。"),
            (false, false) => format!("{question} Reply 1 if it helped, 2 if not."),
        }
    }

    /// The satisfaction question.
    pub fn csat_question(&self, language: Language) -> String {
        let chinese = language == Language::Zh;
        let builtin = if chinese {
            "您的问题已处理完毕。请为本次服务打分：回复 1（很差）到 5（很好），也欢迎附上意见。"
        } else {
            "Your conversation with us is resolved. How did we do? Reply with a score from 1 (poor) to 5 (great), and a comment if you like."
        };
        configured(&self.csat.text, language, builtin).to_owned()
    }
}

/// The buttons under "was this helpful?": "1" helped, "2" did not.
pub fn helpful_choices(language: Language) -> Vec<Choice> {
    let (yes, no) = match language {
        Language::Zh => ("👍 有帮助", "👎 没帮助"),
        _ => ("👍 Yes", "👎 No"),
    };
    vec![Choice::new("1", yes), Choice::new("2", no)]
}

/// The buttons of the satisfaction survey: 1 to 5.
pub fn csat_choices() -> Vec<Choice> {
    (1..=5u8)
        .map(|n| Choice::new(n.to_string(), format!("{n} {}", "⭐".repeat(n.into()))))
        .collect()
}

/// The thanks for a vote or a score.
pub fn thanks(language: Language) -> &'static str {
    match language {
        Language::Zh => "感谢您的反馈！",
        _ => "Thank you for your feedback!",
    }
}

/// Before the offer of a person, after "not helpful".
pub fn sorry(language: Language) -> &'static str {
    match language {
        Language::Zh => "抱歉没能帮到您。",
        _ => "Sorry that didn't help.",
    }
}

/// The answer to a score of 1 or 2 (the agents are told).
pub fn low_score_reply(language: Language) -> &'static str {
    match language {
        Language::Zh => "感谢您的反馈，很抱歉这次没有让您满意。我们的团队会跟进。",
        _ => "Thank you for your feedback, and sorry we fell short. Our team will look into it.",
    }
}

/// A customer's answer to "was this helpful?": `Some(true)` for "1", "👍",
/// "yes", "是"; `Some(false)` for "2", "👎", "no", "没有"; `None` for
/// anything else (a new question, which is routed as usual).
pub fn read_vote(text: &str) -> Option<bool> {
    let folded = text
        .trim()
        .trim_end_matches(['.', '!', '。', '！'])
        .trim()
        .to_lowercase();
    // A tap that sends the button's label ("👍 Yes") reads as its emoji.
    let folded = folded.as_str();
    let yes = [
        "1",
        "１",
        "👍",
        "👍 yes",
        "👍 有帮助",
        "yes",
        "y",
        "yes it did",
        "it did",
        "helpful",
        "是",
        "是的",
        "有",
        "有帮助",
        "有用",
    ];
    let no = [
        "2",
        "２",
        "👎",
        "👎 no",
        "👎 没帮助",
        "no",
        "n",
        "not really",
        "not helpful",
        "否",
        "不是",
        "没有",
        "没帮助",
        "没有帮助",
        "没用",
    ];
    if yes.contains(&folded) {
        Some(true)
    } else if no.contains(&folded) {
        Some(false)
    } else {
        None
    }
}

/// Whether `text` is emoji only ("👍", "❤️", "😂😂", "👍🏽"): an
/// acknowledgement, not a question. Digits, `#` and `*` are emoji too in
/// Unicode's tables, but not on their own here.
pub fn is_emoji_only(text: &str) -> bool {
    use unicode_properties::UnicodeEmoji;
    let mut emoji = false;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii() || !c.is_emoji_char_or_emoji_component() {
            return false;
        }
        emoji |= c.is_emoji_char();
    }
    emoji
}

/// What a reaction, a sticker's emoji or an emoji-only message says about
/// an answer: `Some(true)` when every emoji is clearly positive (👍, ❤️,
/// 👌, 🙏, 😊, ...), `Some(false)` when every one is clearly negative (👎,
/// 😞, 😠, 💔, ...), `None` for anything else (😂, 🤔, a mix), which is
/// recorded and not read as a vote. Skin tones and presentation selectors
/// do not count.
pub fn read_reaction(emoji: &str) -> Option<bool> {
    const POSITIVE: &str = "👍👌👏🙏✅💯🎉❤♥💖💕💗💙💚💛🧡💜😊🙂😀😃😄😁😍🥰🤩";
    const NEGATIVE: &str = "👎❌😞😟🙁☹😕😠😡🤬😢💔";
    let tone = |c: char| ('\u{1F3FB}'..='\u{1F3FF}').contains(&c);
    let mut marks = emoji
        .chars()
        .filter(|&c| !c.is_whitespace() && !tone(c) && !matches!(c, '\u{FE0E}' | '\u{FE0F}'))
        .peekable();
    let first = *marks.peek()?;
    let positive = POSITIVE.contains(first);
    let set = if positive { POSITIVE } else { NEGATIVE };
    marks.all(|c| set.contains(c)).then_some(positive)
}

/// Whether a customer waiting for or talking with a person says the
/// matter is settled ("solved", "thanks, all sorted", "问题解决了"): the
/// conversation is then resolved by the customer.
pub fn says_resolved(text: &str) -> bool {
    let folded = text.trim().to_lowercase();
    let separator = |c: char| c.is_whitespace() || ",.!，。！~".contains(c);
    let mut rest = folded.trim_matches(separator);
    for thanks in ["thank you", "thanks", "谢谢你", "谢谢"] {
        if let Some(after) = rest.strip_prefix(thanks) {
            rest = after.trim_matches(separator);
        }
    }
    const SETTLED: [&str; 16] = [
        "solved",
        "resolved",
        "problem solved",
        "issue solved",
        "issue resolved",
        "it's solved",
        "it is solved",
        "all sorted",
        "sorted",
        "all good now",
        "问题解决了",
        "解决了",
        "已解决",
        "问题已解决",
        "没问题了",
        "好了",
    ];
    SETTLED.contains(&rest)
}

/// The answer to a customer who says it is settled.
pub fn glad(language: Language) -> &'static str {
    match language {
        Language::Zh => "很高兴问题已经解决！如有其他问题，随时联系我们。",
        _ => "Glad it's sorted! Write any time if you need anything else.",
    }
}

/// Longest comment kept with a score.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// A satisfaction score and the rest of the message as its comment: "4",
/// "４", "四", "⭐⭐⭐⭐", "5 thanks!", "4/5 quick", "5分", "五星". `None` for
/// what is not a score: other numbers ("10", "1.5", "0"), a number that
/// starts a word or a sentence ("1st", "一个问题"), and a message asking
/// something ("1 more question: where is my order?"), which is routed as
/// usual.
pub fn read_score(text: &str) -> Option<(u8, Option<String>)> {
    let text = text.trim();
    let stars = text
        .chars()
        .take_while(|c| matches!(c, '⭐' | '★' | '🌟'))
        .count();
    let (score, rest) = if stars > 0 {
        let rest: String = text.chars().skip(stars).collect();
        (u8::try_from(stars).ok()?, rest)
    } else {
        let mut chars = text.chars();
        let first = chars.next()?;
        let score = match first {
            '1'..='5' => first as u32 - '0' as u32,
            '１'..='５' => first as u32 - '０' as u32,
            _ => "一二三四五".chars().position(|h| h == first)? as u32 + 1,
        };
        let rest = chars.as_str();
        let next = rest.chars().next();
        let han = !first.is_ascii_digit() && !('１'..='５').contains(&first);
        // "一个", "五月": a Chinese numeral is a score only alone or as "分"/"星".
        let fits = match next {
            None => true,
            Some(c) if han => matches!(
                c,
                '分' | '星' | '颗' | '⭐' | ' ' | '，' | '。' | '！' | ','
            ),
            Some(c) => !c.is_alphanumeric() || matches!(c, '分' | '星'),
        };
        // "1.5", "1,000", "4/10": not a 1-5 score.
        let decimal =
            rest.starts_with(['.', ',']) && rest[1..].starts_with(|c: char| c.is_ascii_digit());
        let out_of_other = rest.starts_with('/') && !rest.starts_with("/5");
        if !fits || decimal || out_of_other {
            return None;
        }
        (u8::try_from(score).ok()?, rest.to_owned())
    };
    if !(1..=5).contains(&score) {
        return None;
    }
    if rest.contains(['?', '？']) {
        return None;
    }
    let comment = rest.trim_start();
    let comment = comment.strip_prefix("/5").unwrap_or(comment);
    let comment = comment
        .trim_start_matches(['分', '星', '颗', '⭐', '★'])
        .trim_start();
    let word = |w: &str| {
        comment
            .strip_prefix(w)
            .filter(|after| !after.starts_with(char::is_alphanumeric))
    };
    let comment = word("stars").or_else(|| word("star")).unwrap_or(comment);
    let separator = |c: char| c.is_whitespace() || "-:,，.。!！—".contains(c);
    let comment = comment.trim_start_matches(separator).trim();
    let comment = (!comment.is_empty()).then(|| comment.chars().take(MAX_COMMENT_CHARS).collect());
    Some((score, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_in_every_form_are_read() {
        let score = |text: &str| read_score(text).map(|(score, _)| score);
        for (text, expected) in [
            ("1", 1),
            ("5", 5),
            ("５", 5),
            ("五", 5),
            ("三", 3),
            ("⭐⭐⭐⭐", 4),
            ("★★", 2),
            ("5 thanks!", 5),
            ("4/5", 4),
            ("5分", 5),
            ("五星", 5),
            ("4 quick and kind", 4),
            ("  3  ", 3),
            ("2 - slow", 2),
            ("1: nobody answered for a day", 1),
        ] {
            assert_eq!(score(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn the_rest_is_the_comment() {
        assert_eq!(
            read_score("4 quick and kind"),
            Some((4, Some("quick and kind".into())))
        );
        assert_eq!(read_score("5 thanks!"), Some((5, Some("thanks!".into()))));
        assert_eq!(read_score("⭐⭐⭐⭐ 很好"), Some((4, Some("很好".into()))));
        assert_eq!(
            read_score("5分，非常满意"),
            Some((5, Some("非常满意".into())))
        );
        assert_eq!(read_score("3"), Some((3, None)));
        assert_eq!(read_score("4/5 fine"), Some((4, Some("fine".into()))));
        assert_eq!(
            read_score("5 stars, lovely"),
            Some((5, Some("lovely".into())))
        );
    }

    #[test]
    fn what_is_not_a_score_is_not_read_as_one() {
        for text in [
            "",
            "0",
            "6",
            "10",
            "1.5",
            "4/10",
            "1st order never arrived",
            "2nd",
            "一个问题",
            "五月发货吗",
            "⭐⭐⭐⭐⭐⭐",
            "great",
            "where is my order",
            // A question after a number is a question: routed as usual.
            "1 more question: where is my order?",
            "2 items, can I return them?",
            "3个问题？",
        ] {
            assert_eq!(read_score(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_customer_saying_it_is_settled_is_recognised() {
        for text in [
            "Solved!",
            "thanks, solved",
            "Thank you. All sorted.",
            "问题解决了",
            "谢谢，已解决",
        ] {
            assert!(says_resolved(text), "{text}");
        }
        for text in [
            "not solved",
            "is it solved?",
            "solved? no",
            "how do I get a refund",
            "thanks",
        ] {
            assert!(!says_resolved(text), "{text}");
        }
    }

    #[test]
    fn votes_read_numbers_words_and_button_labels() {
        for text in ["1", "１", "👍", "Yes", "yes!", "👍 Yes", "有帮助", "是的"] {
            assert_eq!(read_vote(text), Some(true), "{text}");
        }
        for text in ["2", "２", "👎", "no", "No.", "👎 No", "没有", "没帮助"] {
            assert_eq!(read_vote(text), Some(false), "{text}");
        }
        for text in [
            "3",
            "yes, and where is my parcel",
            "how long does shipping take",
        ] {
            assert_eq!(read_vote(text), None, "{text}");
        }
    }

    #[test]
    fn texts_come_from_config_else_built_in() {
        let mut settings = FeedbackSettings::default();
        assert_eq!(
            settings.helpful_question(Language::En, false),
            "Was this helpful? Reply 1 if it helped, 2 if not."
        );
        assert_eq!(
            settings.helpful_question(Language::Zh, true),
            "这个回答对您有帮助吗？"
        );
        settings
            .helpful_text
            .insert("en".into(), "Did that help?".into());
        assert_eq!(
            settings.helpful_question(Language::En, true),
            "Did that help?"
        );
        // Languages without a text of their own ask in English.
        assert_eq!(
            settings.helpful_question(Language::De, true),
            "Was this helpful?"
        );
        settings.csat.text.insert("zh".into(), "请打分".into());
        assert_eq!(settings.csat_question(Language::Zh), "请打分");
    }

    #[test]
    fn emoji_only_messages_are_told_from_words_and_numbers() {
        for emoji in ["👍", "❤️", "😂😂", "👍🏽", " 🙏 ", "👨‍👩‍👧", "🇯🇵"]
        {
            assert!(is_emoji_only(emoji), "{emoji:?}");
        }
        for other in ["", " ", "1", "#", "ok 👍", "👍 Yes", "谢谢", "a", "1️⃣"] {
            assert!(!is_emoji_only(other), "{other:?}");
        }
    }

    #[test]
    fn reactions_vote_only_when_clearly_positive_or_negative() {
        for yes in ["👍", "👍🏽", "❤️", "❤", "👌", "🙏", "😊", "👍👍", "❤️ 👍"]
        {
            assert_eq!(read_reaction(yes), Some(true), "{yes:?}");
        }
        for no in ["👎", "👎🏿", "😞", "😡", "💔", "👎👎"] {
            assert_eq!(read_reaction(no), Some(false), "{no:?}");
        }
        for neither in ["😂", "🤔", "😮", "👍👎", "", "1", "yes"] {
            assert_eq!(read_reaction(neither), None, "{neither:?}");
        }
    }
}
