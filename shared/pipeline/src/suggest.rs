//! A knowledge base that learns: proposed entries from the questions the
//! bot could not answer (similar wordings grouped, with the answer an agent
//! gave where a person took over), and FAQ entries customers voted "not
//! helpful". Nothing here changes the live knowledge base: suggestions are
//! printed or written as JSONL for people to edit and `kb import`.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use switchboard_domain::{Feedback, Language, Session};
use switchboard_faq::KbEntry;
use switchboard_faq::text::{features, terms};

use crate::report::{Unanswered, UnansweredTurn, date_time, unanswered_turns, votes_by_entry};

/// Two questions are one suggestion from this similarity (0 to 1) on; set
/// where rephrasings of one question group and different questions on one
/// topic ("parts for the 1987 model" / "parts for the 2020 model") mostly do not.
pub const SIMILAR: f32 = 0.42;

/// Phrasings shown per suggestion.
const EXAMPLES: usize = 5;

/// An entry is flagged from this many "not helpful" votes, when they are at
/// least half of its votes.
pub const FLAG_MIN_NOT_HELPFUL: u64 = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestions {
    /// Proposed new entries, most valuable first.
    pub entries: Vec<Suggestion>,
    /// Existing entries customers often found unhelpful.
    pub flagged: Vec<FlaggedEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// A stable id for the proposed entry (`suggested-` and a digest of its question).
    pub id: String,
    /// The most common phrasing.
    pub question: String,
    pub language: Language,
    /// Times customers asked it in the period.
    pub count: u64,
    pub not_answered: u64,
    pub offered_person: u64,
    /// Distinct phrasings, most frequent first.
    pub examples: Vec<String>,
    /// The latest answer a person gave to one of them (masked), ready to edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_answer: Option<String>,
    pub last_seen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedEntry {
    pub entry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    pub not_helpful: u64,
    pub helpful: u64,
}

struct Phrasing {
    text: String,
    language: Language,
    count: u64,
    not_answered: u64,
    offered_person: u64,
    last_at_ms: i64,
    /// (when, answer): the latest agent answer.
    agent_answer: Option<(i64, String)>,
    terms: BTreeSet<String>,
    features: Vec<(u64, f32)>,
}

/// Suggestions from the sessions and feedback of a period.
pub fn suggest(
    sessions: &[Session],
    feedback: &[Feedback],
    from_ms: i64,
    to_ms: i64,
    labels: &HashMap<String, String>,
) -> Suggestions {
    Suggestions {
        entries: cluster(unanswered_turns(sessions, from_ms, to_ms)),
        flagged: flagged(sessions, feedback, labels),
    }
}

/// How alike two phrasings are: the mean of the cosine of their content
/// words (stems without stop words; Han characters and pairs) and the cosine
/// of the matcher's features (character n-grams too, so typos still match).
fn similarity(a: &Phrasing, b: &Phrasing) -> f32 {
    let shared = a.terms.intersection(&b.terms).count() as f32;
    let words = if a.terms.is_empty() || b.terms.is_empty() {
        0.0
    } else {
        shared / ((a.terms.len() * b.terms.len()) as f32).sqrt()
    };
    (words + dot(&a.features, &b.features)) / 2.0
}

/// The dot product of two sparse vectors sorted by index.
fn dot(a: &[(u64, f32)], b: &[(u64, f32)]) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// Groups the questions: identical wordings first, then each phrasing (most
/// asked first) joins the group it is most alike on average, if that is at
/// least [`SIMILAR`], else starts one.
fn cluster(turns: Vec<UnansweredTurn>) -> Vec<Suggestion> {
    let mut phrasings: HashMap<String, Phrasing> = HashMap::new();
    for turn in turns {
        let key = turn
            .question
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if key.is_empty() {
            continue;
        }
        let phrasing = phrasings.entry(key).or_insert_with(|| Phrasing {
            terms: terms(&turn.question).into_iter().collect(),
            features: features(&turn.question),
            text: turn.question.clone(),
            language: turn.language,
            count: 0,
            not_answered: 0,
            offered_person: 0,
            last_at_ms: turn.at_ms,
            agent_answer: None,
        });
        phrasing.count += 1;
        match turn.outcome {
            Unanswered::NotAnswered => phrasing.not_answered += 1,
            Unanswered::OfferedPerson => phrasing.offered_person += 1,
        }
        phrasing.last_at_ms = phrasing.last_at_ms.max(turn.at_ms);
        if let Some(answer) = turn.agent_answer
            && phrasing
                .agent_answer
                .as_ref()
                .is_none_or(|(at, _)| *at <= turn.at_ms)
        {
            let masked = switchboard_domain::redact::redact(&answer).into_owned();
            phrasing.agent_answer = Some((turn.at_ms, masked));
        }
    }
    let mut phrasings: Vec<Phrasing> = phrasings.into_values().collect();
    phrasings.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));

    let mut groups: Vec<Vec<Phrasing>> = Vec::new();
    for phrasing in phrasings {
        let best = groups
            .iter()
            .enumerate()
            .map(|(i, group)| {
                let mean = group.iter().map(|p| similarity(p, &phrasing)).sum::<f32>()
                    / group.len() as f32;
                (i, mean)
            })
            .filter(|(_, mean)| *mean >= SIMILAR)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, _)) => groups[i].push(phrasing),
            None => groups.push(vec![phrasing]),
        }
    }
    let mut suggestions: Vec<Suggestion> = groups.into_iter().map(suggestion).collect();
    // Most asked first; with an agent's answer (ready to use) before without.
    suggestions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| b.agent_answer.is_some().cmp(&a.agent_answer.is_some()))
            .then_with(|| b.last_seen.cmp(&a.last_seen))
            .then_with(|| a.question.cmp(&b.question))
    });
    suggestions
}

fn suggestion(group: Vec<Phrasing>) -> Suggestion {
    use sha2::{Digest, Sha256};
    let first = &group[0];
    let agent_answer = group
        .iter()
        .filter_map(|p| p.agent_answer.as_ref())
        .max_by_key(|(at, _)| *at)
        .map(|(_, answer)| answer.clone());
    let digest = Sha256::digest(first.text.to_lowercase().as_bytes());
    Suggestion {
        id: format!("suggested-{}", hex::encode(&digest[..4])),
        question: first.text.clone(),
        language: first.language,
        count: group.iter().map(|p| p.count).sum(),
        not_answered: group.iter().map(|p| p.not_answered).sum(),
        offered_person: group.iter().map(|p| p.offered_person).sum(),
        examples: group
            .iter()
            .take(EXAMPLES)
            .map(|p| p.text.clone())
            .collect(),
        agent_answer,
        last_seen: date_time(group.iter().map(|p| p.last_at_ms).max().unwrap_or_default()),
    }
}

fn flagged(
    sessions: &[Session],
    feedback: &[Feedback],
    labels: &HashMap<String, String>,
) -> Vec<FlaggedEntry> {
    let mut list: Vec<FlaggedEntry> = votes_by_entry(sessions, feedback)
        .into_iter()
        .filter(|(_, (yes, no))| *no >= FLAG_MIN_NOT_HELPFUL && *no >= *yes)
        .map(|(entry, (helpful, not_helpful))| FlaggedEntry {
            question: labels.get(&entry).cloned(),
            entry,
            not_helpful,
            helpful,
        })
        .collect();
    list.sort_by(|a, b| {
        b.not_helpful
            .cmp(&a.not_helpful)
            .then_with(|| a.entry.cmp(&b.entry))
    });
    list
}

/// The suggestions as knowledge-base JSONL (`kb import --merge` adds them):
/// the most common phrasing as the question, the others as paraphrases, the
/// agent's answer as the answer. An entry nobody answered has an empty
/// answer, which `kb import` refuses until someone writes one.
pub fn to_jsonl(suggestions: &[Suggestion]) -> String {
    let mut out = String::new();
    for s in suggestions {
        let entry = KbEntry {
            id: s.id.clone(),
            question: s.question.clone(),
            answer: s.agent_answer.clone().unwrap_or_default(),
            answers: Default::default(),
            lang: Some(s.language.code().to_owned()),
            paraphrases: s.examples.iter().skip(1).cloned().collect(),
        };
        out.push_str(&serde_json::to_string(&entry).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use switchboard_domain::{
        ConversationKey, EscalationReason, Handover, ReplyContext, Role, SessionStatus, Tier, Turn,
    };

    use super::*;

    fn turn(role: Role, at_ms: i64, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
            at_ms,
            message_id: None,
            faq_entry: None,
            confidence: None,
            agent: None,
        }
    }

    /// A conversation handed over on `question` for want of an answer,
    /// answered by an agent when `answer` is given.
    fn handed_over(id: usize, at_ms: i64, question: &str, answer: Option<&str>) -> Session {
        let mut turns = vec![
            turn(Role::Customer, at_ms, question),
            turn(Role::Bot, at_ms + 1, "A person will answer."),
        ];
        if let Some(answer) = answer {
            turns.push(turn(Role::Agent, at_ms + 60_000, answer));
        }
        Session {
            key: ConversationKey(format!("telegram:1:{id}")),
            channel: "telegram".into(),
            account_id: "1".into(),
            conversation_id: id.to_string(),
            customer_id: id.to_string(),
            status: SessionStatus::Escalated,
            language: Language::detect(question),
            updated_at_ms: turns.last().unwrap().at_ms,
            turns,
            reply: ReplyContext::default(),
            created_at_ms: at_ms,
            version: 1,
            handover: Some(Handover {
                at_ms,
                tier: Tier::Regular,
                reason: EscalationReason::NoConfidentMatch,
                priority: false,
                claimed_by: None,
                agent_answered_at_ms: None,
                breached_at_ms: None,
                first_response_due_ms: None,
                resolved_at_ms: None,
                candidates: Vec::new(),
            }),
            menu: Vec::new(),
            pending: None,
            helpful_asked_at_ms: None,
            deliveries: Vec::new(),
            variants: Default::default(),
        }
    }

    const PARTS: [&str; 5] = [
        "Do you sell replacement parts for the 1987 model?",
        "can i buy spare parts for my 1987 model",
        "Where do I get replacement parts for a 1987 model?",
        "Are replacement parts for the 1987 model still sold?",
        "replacment part for 1987 model??",
    ];

    const OTHERS: [&str; 6] = [
        "Do you ship to Iceland?",
        "My invoice shows the wrong company name",
        "Can I change the colour of my order after paying?",
        "你们周日营业吗",
        "发票抬头开错了怎么办",
        "Is there a student discount?",
    ];

    #[test]
    fn five_rephrasings_are_one_suggestion_with_the_agents_answer() {
        let mut sessions = Vec::new();
        for (i, question) in PARTS.iter().enumerate() {
            let answer = (i == 2).then_some("Yes: order them at parts.example.com.");
            sessions.push(handed_over(i, 1_000 * i as i64, question, answer));
        }
        for (i, question) in OTHERS.iter().enumerate() {
            sessions.push(handed_over(100 + i, 50_000, question, None));
        }
        let found = suggest(&sessions, &[], 0, i64::MAX, &HashMap::new());
        let parts: Vec<&Suggestion> = found
            .entries
            .iter()
            .filter(|s| s.examples.iter().any(|e| e.contains("1987")))
            .collect();
        assert_eq!(parts.len(), 1, "{:#?}", found.entries);
        let parts = parts[0];
        assert_eq!(parts.count, 5);
        assert_eq!(parts.examples.len(), 5);
        assert_eq!(found.entries[0].id, parts.id, "most asked first");
        assert_eq!(
            parts.agent_answer.as_deref(),
            Some("Yes: order them at parts.example.com.")
        );
        assert_eq!(
            found.entries.len(),
            1 + OTHERS.len(),
            "different questions stay apart: {:#?}",
            found.entries
        );
        let jsonl = to_jsonl(&found.entries);
        let first: KbEntry = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(first.paraphrases.len(), 4);
        assert!(first.answer.starts_with("Yes: order them"));
        // Importable once every entry has an answer: the others have none yet.
        assert!(switchboard_faq::KnowledgeBase::from_jsonl_answerable(&jsonl).is_err());
        let answered: Vec<Suggestion> = found
            .entries
            .iter()
            .filter(|s| s.agent_answer.is_some())
            .cloned()
            .collect();
        switchboard_faq::KnowledgeBase::from_jsonl_answerable(&to_jsonl(&answered)).unwrap();
    }

    #[test]
    fn chinese_rephrasings_group_too() {
        let questions = [
            "你们周日营业吗",
            "周日营业吗？",
            "周日你们营业不营业",
            "发票抬头开错了怎么办",
        ];
        let sessions: Vec<Session> = questions
            .iter()
            .enumerate()
            .map(|(i, q)| handed_over(i, 0, q, None))
            .collect();
        let found = suggest(&sessions, &[], 0, i64::MAX, &HashMap::new());
        assert_eq!(found.entries.len(), 2, "{:#?}", found.entries);
        assert_eq!(found.entries[0].count, 3);
    }

    #[test]
    fn entries_with_many_not_helpful_votes_are_flagged() {
        let mut session = handed_over(1, 0, "hi", None);
        session.turns.push(Turn {
            faq_entry: Some("returns".into()),
            ..turn(Role::Bot, 10, "30 days")
        });
        let vote = |helpful: bool| Feedback {
            conversation: session.key.clone(),
            helpful: Some(helpful),
            satisfaction: None,
            comment: None,
            faq_id: None,
            at_ms: 20,
        };
        let labels = HashMap::from([("returns".to_owned(), "How do returns work?".to_owned())]);
        let two = [vote(false), vote(false), vote(true)];
        let sessions = [session.clone()];
        assert!(
            suggest(&sessions, &two, 0, i64::MAX, &labels)
                .flagged
                .is_empty()
        );
        let three = [vote(false), vote(false), vote(false), vote(true)];
        let flagged = suggest(&sessions, &three, 0, i64::MAX, &labels).flagged;
        assert_eq!(flagged.len(), 1);
        assert_eq!(
            (
                flagged[0].entry.as_str(),
                flagged[0].not_helpful,
                flagged[0].question.as_deref()
            ),
            ("returns", 3, Some("How do returns work?"))
        );
    }
}
