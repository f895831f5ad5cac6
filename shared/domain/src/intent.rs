//! Does the customer ask to be put through to a person?
//!
//! Not a word list: a message that merely mentions "customer service", an
//! "agent" or 人工 (as in 人工智能, artificial intelligence) is an ordinary
//! question the FAQ may answer. A request is a form: a bare call ("agent
//! please", "人工"), a verb of being put through with a person as its target
//! ("connect me to a human", "转人工", "找客服"), or a wish for a person ("I need
//! a real person", "我要真人"), and not negated ("I don't need a human", "不用转人工").
//! Each clause of the message is judged on its own, so "no bots, a human please"
//! asks and "no agent please, just answer here" does not.
//!
//! Measured on labelled sets of our own (tests/data/asks_for_person_*.tsv,
//! printed by the `asks_for_person` test).

/// Whether the customer asks for a person, in any of the languages we detect.
pub fn asks_for_person(text: &str) -> bool {
    english(text) || chinese(text) || other_languages(text)
}

// ---------------------------------------------------------------- English

/// Words that name a person the customer could be put through to.
const PERSON: &[&str] = &[
    "advisor",
    "agent",
    "agents",
    "anybody",
    "anyone",
    "consultant",
    "employee",
    "human",
    "humans",
    "manager",
    "operator",
    "people",
    "person",
    "rep",
    "representative",
    "representatives",
    "somebody",
    "someone",
    "supervisor",
];

/// Teams rather than people: a request only with a verb of talking or being put
/// through ("speak to customer service"), never by being mentioned or contacted
/// ("how can I contact customer support?" asks for contact details).
const TEAM_HEADS: &[&str] = &["service", "support", "care", "team"];

/// Verbs of being put through to someone, by the kind of target they need.
const TALK_VERBS: &[&str] = &[
    "chat", "connect", "escalate", "hand", "pass", "put", "speak", "switch", "take", "talk",
    "transfer",
];
const REACH_VERBS: &[&str] = &["call", "contact", "get", "give", "have", "let", "reach"];
/// Wishes: "I need a human", "I'd like a call back from an agent".
const WISH_VERBS: &[&str] = &[
    "demand", "like", "need", "prefer", "rather", "request", "wanna", "want",
];
const NEGATIONS: &[&str] = &[
    "didnt", "dont", "doesnt", "neednt", "never", "no", "nobody", "not", "without",
];
/// Words a bare call may carry besides the person ("a real human please!").
const BARE_FILLERS: &[&str] = &[
    "a",
    "actual",
    "an",
    "asap",
    "assistance",
    "being",
    "hello",
    "help",
    "hey",
    "hi",
    "just",
    "live",
    "now",
    "ok",
    "okay",
    "please",
    "pls",
    "plz",
    "real",
    "support",
    "the",
];

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Person,
    Team,
}

/// The target starting at word `i`, if any ("customer service" is a team).
fn target_at(words: &[String], i: usize) -> Option<Target> {
    let word = words[i].as_str();
    if PERSON.contains(&word) {
        return Some(Target::Person);
    }
    // "connect me to support"
    if word == "support" && i > 0 && matches!(words[i - 1].as_str(), "to" | "with") {
        return Some(Target::Team);
    }
    if matches!(word, "customer" | "support")
        && words
            .get(i + 1)
            .is_some_and(|next| TEAM_HEADS.contains(&next.as_str()))
    {
        return Some(Target::Team);
    }
    None
}

fn english(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower
        .split(['.', '!', '?', ';', ',', ':', '\n'])
        .any(|clause| english_clause(&words_of(clause)))
}

/// Lower-case words, apostrophes dropped ("don't" -> "dont", "I'd" -> "id").
fn words_of(clause: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for ch in clause.chars() {
        if ch.is_alphanumeric() || (ch == '-' && !word.is_empty()) {
            // "human-sized", "person-to-person" stay one word
            word.push(ch);
        } else if matches!(ch, '\'' | '\u{2019}') && !word.is_empty() {
            continue;
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn english_clause(words: &[String]) -> bool {
    if words.is_empty() {
        return false;
    }
    let is = |i: usize, set: &[&str]| words.get(i).is_some_and(|w| set.contains(&w.as_str()));
    // a bare call: "agent", "a real person please", "human support"
    if words
        .iter()
        .all(|w| PERSON.contains(&w.as_str()) || BARE_FILLERS.contains(&w.as_str()))
        && words.iter().any(|w| PERSON.contains(&w.as_str()))
    {
        return true;
    }
    for (t, _) in words.iter().enumerate() {
        let Some(target) = target_at(words, t) else {
            continue;
        };
        // "is a human there?", "any humans around?"
        if target == Target::Person
            && is(t + 1, &["there", "around", "available", "online", "here"])
            && (is(0, &["is", "are", "any"]))
        {
            return !negated(words, t);
        }
        // the target asked to act: "can someone call me", "a human help me",
        // "is there a human I can talk to"
        if target == Target::Person {
            let after = &words[t + 1..words.len().min(t + 7)];
            let acts = after
                .windows(2)
                .any(|w| matches!(w[0].as_str(), "call" | "contact" | "help") && w[1] == "me")
                || after.windows(3).any(|w| {
                    matches!(w[0].as_str(), "i" | "we")
                        && matches!(w[1].as_str(), "can" | "could")
                        && matches!(w[2].as_str(), "talk" | "speak" | "chat")
                });
            if acts {
                return !negated(words, t);
            }
        }
        // a verb of being put through (or, for people, reached) shortly before
        let from = t.saturating_sub(5);
        for v in (from..t).rev() {
            let verb = base_form(&words[v]);
            // "your chat", "the call": nouns, not verbs
            if v > 0 && is(v - 1, &["the", "your", "a", "this", "my", "live", "our"]) {
                continue;
            }
            // "have", "get", "give" only when the customer is to have one:
            // "can I have a human", "get me an agent", "give me an operator"
            let for_me = !matches!(verb, "have" | "get" | "give")
                || v == 0
                || is(v + 1, &["me", "us"])
                || v > 0 && is(v - 1, &["i", "we", "please"]);
            let fits = TALK_VERBS.contains(&verb)
                || (target == Target::Person && REACH_VERBS.contains(&verb) && for_me);
            if fits {
                return !negated(words, v);
            }
        }
        // a wish for a person: "I need a human", "I'd like to be contacted by a person"
        if target == Target::Person {
            let from = t.saturating_sub(6);
            if let Some(v) = (from..t)
                .rev()
                .find(|&v| WISH_VERBS.contains(&words[v].as_str()))
            {
                return !negated(words, v);
            }
        }
    }
    false
}

/// The verb behind common inflections: "transferred", "talking", "connects".
fn base_form(word: &str) -> &str {
    for (suffix, keep_double) in [("ing", true), ("ed", true)] {
        if let Some(stem) = word.strip_suffix(suffix) {
            let known = |w: &str| TALK_VERBS.contains(&w) || REACH_VERBS.contains(&w);
            if known(stem) {
                return stem;
            }
            // "transferred" -> "transfer"
            if keep_double && stem.len() > 2 {
                let undoubled = &stem[..stem.len() - 1];
                if stem.as_bytes()[stem.len() - 1] == stem.as_bytes()[stem.len() - 2]
                    && known(undoubled)
                {
                    return undoubled;
                }
            }
        }
    }
    word
}

/// A negation before position `at` in the clause ("I don't need", "no need for").
fn negated(words: &[String], at: usize) -> bool {
    words[..at].iter().any(|w| NEGATIONS.contains(&w.as_str()))
}

// ---------------------------------------------------------------- Chinese

/// 人工 followed by these is not a person: 人工智能 (AI), 人工费 (labour cost) ...
const RENGONG_NOT_PERSON: &[char] = &[
    '智', '费', '合', '成', '草', '缝', '湖', '降', '制', '种', '养', '材', '发', '包', '检', '安',
];
/// 真人 followed by these is about photos, sizes or shows, not a person to talk to.
const ZHENREN_NOT_PERSON: &[char] = &['秀', '大', '照', '试', '图', '版'];
const ZH_NEGATIONS: &[&str] = &[
    "不要",
    "不用",
    "不需要",
    "别",
    "无需",
    "没必要",
    "不想",
    "不必",
    "用不着",
];
/// Asking about the service rather than for it: hours, numbers, places, jobs.
const ZH_ABOUT: &[&str] = &[
    "几点",
    "时间",
    "电话",
    "号码",
    "邮箱",
    "多久",
    "上班",
    "下班",
    "周末",
    "哪个城市",
    "招",
    "应聘",
    "岗位",
    "上次",
    "之前",
    "昨天",
    "态度",
    "是真人",
    "真人吗",
    "还是真人",
];
/// Verbs of asking for someone: 找客服, 转客服, 叫你们经理, 让人工客服联系我 ...
const ZH_ASK_VERBS: &[char] = &['找', '转', '接', '要', '叫', '让', '换', '求'];

fn chinese(text: &str) -> bool {
    text.split([
        '，', ',', '。', '.', '！', '!', '？', '?', '；', ';', '、', ' ', '\n', '～', '~',
    ])
    .any(chinese_clause)
}

fn chinese_clause(clause: &str) -> bool {
    let chars: Vec<char> = clause.chars().collect();
    if chars.is_empty() {
        return false;
    }
    let find = |needle: &str| -> Vec<usize> {
        let n: Vec<char> = needle.chars().collect();
        (0..chars.len())
            .filter(|&i| chars[i..].starts_with(&n))
            .collect()
    };
    let negated_before = |at: usize| {
        let before: String = chars[..at].iter().collect();
        ZH_NEGATIONS.iter().any(|n| before.contains(n))
    };
    let about = ZH_ABOUT.iter().any(|a| clause.contains(a));
    let ask_verb_before = |at: usize, reach: usize| {
        chars[at.saturating_sub(reach)..at]
            .iter()
            .any(|c| ZH_ASK_VERBS.contains(c))
    };
    // 人工 / 真人 / 活人: a person unless followed by a non-person use
    let mut person_at: Vec<usize> = Vec::new();
    for i in find("人工") {
        if chars
            .get(i + 2)
            .is_none_or(|next| !RENGONG_NOT_PERSON.contains(next))
        {
            person_at.push(i);
        }
    }
    for i in find("真人") {
        if chars
            .get(i + 2)
            .is_none_or(|next| !ZHENREN_NOT_PERSON.contains(next))
        {
            person_at.push(i);
        }
    }
    person_at.extend(find("活人"));
    for &i in &person_at {
        if negated_before(i) {
            continue;
        }
        if about && !ask_verb_before(i, 3) {
            continue;
        }
        return true;
    }
    // staff: 客服, 客服人员, 工作人员, 经理 ... asked for, talked with, or asked to act
    let talk_word = ["聊", "说", "通话", "沟通"]
        .iter()
        .any(|w| clause.contains(w));
    for needle in ["客服", "工作人员", "经理", "主管", "老板"] {
        for i in find(needle) {
            let end = i + needle.chars().count();
            let rest: String = chars[end..].iter().collect();
            let with_before = chars[i.saturating_sub(4)..i]
                .iter()
                .any(|c| matches!(c, '跟' | '和'));
            let acts = ["联系我", "处理", "回电", "给我回"]
                .iter()
                .any(|w| rest.starts_with(w) || rest.starts_with(&format!("人员{w}")));
            let asked = ask_verb_before(i, 4)
                || (with_before && talk_word)
                || (needle == "客服" && (rest.starts_with("在吗") || rest.starts_with("在不在")))
                || (acts && !about);
            if asked && !negated_before(i) && (!about || ask_verb_before(i, 4)) {
                return true;
            }
        }
    }
    // someone at all: 有人吗, 找个人, 和人说话
    [
        "有人吗",
        "有人在",
        "找个人",
        "换个人",
        "和人说",
        "跟人说",
        "和人聊",
        "跟人聊",
    ]
    .iter()
    .any(|p| find(p).into_iter().any(|i| !negated_before(i)))
}

// ---------------------------------------------------------- other languages

/// Japanese, Spanish, French and German: the common explicit requests only.
fn other_languages(text: &str) -> bool {
    let lower = text.to_lowercase();
    const JA: &[&str] = &[
        "オペレーター",
        "担当者",
        "人と話",
        "有人対応",
        "人間と話",
        "スタッフと話",
    ];
    const LATIN: &[&str] = &[
        // Spanish
        "hablar con una persona",
        "hablar con un humano",
        "hablar con un agente",
        "hablar con un asesor",
        "persona real",
        "agente humano",
        // French
        "parler à un humain",
        "parler à une personne",
        "parler à un conseiller",
        "parler à un agent",
        "parler avec un humain",
        "vraie personne",
        "conseiller humain",
        // German
        "mit einem menschen",
        "mit einer person",
        "mit einem mitarbeiter",
        "mit einer mitarbeiterin",
        "mit einem berater",
        "echten menschen",
        "echte person",
    ];
    const NEGATED: &[&str] = &[
        "no quiero",
        "no necesito",
        "pas besoin",
        "ne veux pas",
        "nicht",
        "kein",
        "不要",
        "必要ない",
        "いらない",
        "不要です",
    ];
    (JA.iter().any(|p| text.contains(p)) || LATIN.iter().any(|p| lower.contains(p)))
        && !NEGATED.iter().any(|n| lower.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_ordinary_questions_are_not_requests() {
        for text in [
            "What are your customer service hours?",
            "How can I contact customer support?",
            "Do you have an agent in Germany?",
            "你们的客服用人工智能吗",
            "I don't need a human",
            "不用转人工",
        ] {
            assert!(!asks_for_person(text), "{text}");
        }
    }

    #[test]
    fn requests_in_every_form() {
        for text in [
            "I want to talk to a human",
            "AGENT please",
            "Can I speak to someone?",
            "No bots please, a real human",
            "转人工",
            "人工客服在吗",
            "不要机器人，我要人工",
            "Quiero hablar con una persona",
            "Je veux parler à un humain",
            "Ich möchte mit einem Menschen sprechen",
            "オペレーターと話したい",
        ] {
            assert!(asks_for_person(text), "{text}");
        }
    }
}
