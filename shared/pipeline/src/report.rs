//! What the business wants to know: how many conversations the bot resolved,
//! what customers ask most, what went unanswered, when they write, how fast
//! they were answered, and how satisfied they were.

use std::collections::HashMap;

use serde::Serialize;
use switchboard_domain::{Feedback, KnowledgeGap, Role, Session, SessionStatus};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub conversations: u64,
    pub customer_messages: u64,
    /// Bot answers from the FAQ.
    pub answered_by_bot: u64,
    /// Conversations handed to a person at least once.
    pub escalated_conversations: u64,
    /// Hand-overs no agent answered within the tier's first-response target.
    pub sla_breaches: u64,
    /// Conversations the bot handled alone, or that a person marked resolved.
    pub resolution_rate: f64,
    /// Conversations the bot handled alone.
    pub self_service_rate: f64,
    /// FAQ entries answered most, with counts.
    pub top_questions: Vec<(String, u64)>,
    pub unanswered_questions: Vec<KnowledgeGap>,
    /// Customer messages per hour of the day (UTC), index 0 = 00:00–00:59.
    pub messages_by_hour_utc: [u64; 24],
    pub peak_hour_utc: Option<u8>,
    /// Customer message to the next reply from the bot (ms).
    pub bot_response_ms: Percentiles,
    /// Customer message to the next reply from a person, in escalated conversations (ms).
    pub agent_response_ms: Percentiles,
    pub satisfaction: Satisfaction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Satisfaction {
    pub responses: u64,
    /// Mean of the 1–5 scores given.
    pub average: Option<f64>,
    /// "Was this helpful?" answers given.
    pub helpful_votes: u64,
    /// Share of "was this helpful?" answers that said yes.
    pub helpful_rate: Option<f64>,
    /// Count of each score, index 0 = score 1.
    pub distribution: [u64; 5],
}

/// Builds the report from every session and feedback in the period.
pub fn build(
    sessions: &[Session],
    feedback: &[Feedback],
    gaps: Vec<KnowledgeGap>,
    top: usize,
) -> Report {
    let mut report = Report {
        conversations: sessions.len() as u64,
        customer_messages: 0,
        answered_by_bot: 0,
        escalated_conversations: 0,
        sla_breaches: sessions
            .iter()
            .filter(|s| {
                s.handover
                    .as_ref()
                    .is_some_and(|h| h.breached_at_ms.is_some())
            })
            .count() as u64,
        resolution_rate: 0.0,
        self_service_rate: 0.0,
        top_questions: Vec::new(),
        // Recorded masked; masked again for rows older than that.
        unanswered_questions: gaps
            .into_iter()
            .map(|gap| KnowledgeGap {
                question: switchboard_domain::redact::redact(&gap.question).into_owned(),
                ..gap
            })
            .collect(),
        messages_by_hour_utc: [0; 24],
        peak_hour_utc: None,
        bot_response_ms: Percentiles::default(),
        agent_response_ms: Percentiles::default(),
        satisfaction: satisfaction(feedback),
    };
    let mut entries: HashMap<&str, u64> = HashMap::new();
    let (mut bot_times, mut agent_times) = (Vec::new(), Vec::new());
    let (mut self_served, mut resolved) = (0u64, 0u64);
    for session in sessions {
        let escalated = session.status != SessionStatus::Open
            || session.turns.iter().any(|t| t.role == Role::Agent);
        if escalated {
            report.escalated_conversations += 1;
        } else {
            self_served += 1;
        }
        if !escalated || session.status == SessionStatus::Resolved {
            resolved += 1;
        }
        let mut waiting_since: Option<i64> = None;
        for turn in &session.turns {
            match turn.role {
                Role::Customer => {
                    report.customer_messages += 1;
                    report.messages_by_hour_utc[hour_utc(turn.at_ms)] += 1;
                    waiting_since.get_or_insert(turn.at_ms);
                }
                Role::Bot => {
                    if let Some(entry) = &turn.faq_entry {
                        report.answered_by_bot += 1;
                        *entries.entry(entry).or_default() += 1;
                    }
                    if let Some(since) = waiting_since.take() {
                        bot_times.push(turn.at_ms - since);
                    }
                }
                Role::Agent => {
                    // An agent answers what the bot handed over, so count from the
                    // customer's message even if the bot replied in between.
                    let since = waiting_since
                        .take()
                        .or_else(|| last_customer_before(session, turn.at_ms));
                    if let Some(since) = since {
                        agent_times.push(turn.at_ms - since);
                    }
                }
            }
        }
    }
    if !sessions.is_empty() {
        report.self_service_rate = self_served as f64 / sessions.len() as f64;
        report.resolution_rate = resolved as f64 / sessions.len() as f64;
    }
    let mut top_questions: Vec<(String, u64)> = entries
        .into_iter()
        .map(|(id, n)| (id.to_owned(), n))
        .collect();
    top_questions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_questions.truncate(top);
    report.top_questions = top_questions;
    report.peak_hour_utc = report
        .messages_by_hour_utc
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(hour, _)| hour as u8);
    report.bot_response_ms = percentiles(bot_times);
    report.agent_response_ms = percentiles(agent_times);
    report
}

fn last_customer_before(session: &Session, at_ms: i64) -> Option<i64> {
    session
        .turns
        .iter()
        .filter(|t| t.role == Role::Customer && t.at_ms <= at_ms)
        .map(|t| t.at_ms)
        .next_back()
}

fn hour_utc(at_ms: i64) -> usize {
    (at_ms.div_euclid(3_600_000).rem_euclid(24)) as usize
}

fn percentiles(mut values: Vec<i64>) -> Percentiles {
    values.retain(|v| *v >= 0);
    values.sort_unstable();
    let at = |q: f64| -> Option<i64> {
        if values.is_empty() {
            return None;
        }
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        Some(values[rank - 1])
    };
    Percentiles {
        count: values.len() as u64,
        median: at(0.5),
        p90: at(0.9),
    }
}

fn satisfaction(feedback: &[Feedback]) -> Satisfaction {
    let mut result = Satisfaction {
        responses: feedback.len() as u64,
        ..Satisfaction::default()
    };
    let scores: Vec<u8> = feedback
        .iter()
        .filter_map(|f| f.satisfaction)
        .filter(|s| (1..=5).contains(s))
        .collect();
    for score in &scores {
        result.distribution[usize::from(*score) - 1] += 1;
    }
    if !scores.is_empty() {
        result.average =
            Some(scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64);
    }
    let helpful: Vec<bool> = feedback.iter().filter_map(|f| f.helpful).collect();
    result.helpful_votes = helpful.len() as u64;
    if !helpful.is_empty() {
        result.helpful_rate =
            Some(helpful.iter().filter(|h| **h).count() as f64 / helpful.len() as f64);
    }
    result
}

#[cfg(test)]
mod tests {
    use switchboard_domain::{ConversationKey, Language, ReplyContext, Turn};

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn turn(role: Role, at_ms: i64, entry: Option<&str>) -> Turn {
        Turn {
            role,
            text: String::new(),
            at_ms,
            message_id: None,
            faq_entry: entry.map(str::to_owned),
            confidence: None,
        }
    }

    fn session(id: &str, status: SessionStatus, turns: Vec<Turn>) -> Session {
        Session {
            key: ConversationKey(id.into()),
            channel: "telegram".into(),
            account_id: "1".into(),
            conversation_id: id.into(),
            customer_id: id.into(),
            status,
            language: Language::En,
            turns,
            reply: ReplyContext::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
            handover: None,
            menu: Vec::new(),
            pending: None,
            helpful_asked_at_ms: None,
            deliveries: Vec::new(),
        }
    }

    #[test]
    fn summarises_sessions_and_feedback() {
        let sessions = vec![
            // Answered by the bot twice, at 09:00 and 09:30.
            session(
                "a",
                SessionStatus::Open,
                vec![
                    turn(Role::Customer, 9 * HOUR, None),
                    turn(Role::Bot, 9 * HOUR + 200, Some("hours")),
                    turn(Role::Customer, 9 * HOUR + HOUR / 2, None),
                    turn(Role::Bot, 9 * HOUR + HOUR / 2 + 400, Some("hours")),
                ],
            ),
            // Escalated at 09:10, an agent answered 20 minutes later and resolved it.
            session(
                "b",
                SessionStatus::Resolved,
                vec![
                    turn(Role::Customer, 9 * HOUR + 600_000, None),
                    turn(Role::Bot, 9 * HOUR + 600_300, None),
                    turn(Role::Agent, 9 * HOUR + 1_800_000, None),
                ],
            ),
            // Escalated at 22:00, still waiting past the service level.
            Session {
                handover: Some(switchboard_domain::Handover {
                    at_ms: 22 * HOUR,
                    tier: switchboard_domain::Tier::Regular,
                    reason: switchboard_domain::EscalationReason::NoConfidentMatch,
                    priority: false,
                    claimed_by: None,
                    agent_answered_at_ms: None,
                    breached_at_ms: Some(22 * HOUR + 4 * HOUR),
                }),
                ..session(
                    "c",
                    SessionStatus::Escalated,
                    vec![turn(Role::Customer, 22 * HOUR, None)],
                )
            },
        ];
        let feedback = vec![
            Feedback {
                conversation: ConversationKey("a".into()),
                helpful: Some(true),
                satisfaction: Some(5),
                comment: None,
                faq_id: None,
                at_ms: 0,
            },
            Feedback {
                conversation: ConversationKey("b".into()),
                helpful: Some(false),
                satisfaction: Some(2),
                comment: None,
                faq_id: None,
                at_ms: 0,
            },
        ];
        let report = build(&sessions, &feedback, Vec::new(), 5);
        assert_eq!(report.conversations, 3);
        assert_eq!(report.customer_messages, 4);
        assert_eq!(report.answered_by_bot, 2);
        assert_eq!(report.escalated_conversations, 2);
        assert_eq!(report.sla_breaches, 1);
        assert!((report.self_service_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!((report.resolution_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.top_questions, vec![("hours".to_owned(), 2)]);
        assert_eq!(report.messages_by_hour_utc[9], 3);
        assert_eq!(report.peak_hour_utc, Some(9));
        assert_eq!(
            report.bot_response_ms,
            Percentiles {
                count: 3,
                median: Some(300),
                p90: Some(400)
            }
        );
        assert_eq!(report.agent_response_ms.median, Some(1_200_000));
        assert_eq!(report.satisfaction.average, Some(3.5));
        assert_eq!(report.satisfaction.helpful_rate, Some(0.5));
        assert_eq!(report.satisfaction.helpful_votes, 2);
        assert_eq!(report.satisfaction.distribution, [0, 1, 0, 0, 1]);
    }

    #[test]
    fn an_empty_period_has_no_figures() {
        let report = build(&[], &[], Vec::new(), 5);
        assert_eq!(
            (
                report.conversations,
                report.peak_hour_utc,
                report.satisfaction.average
            ),
            (0, None, None)
        );
    }

    #[test]
    fn unanswered_questions_are_masked() {
        let gap = KnowledgeGap {
            question: "card 4111 1111 1111 1111 was charged twice".into(),
            language: Language::En,
            count: 2,
            last_seen_ms: 1,
        };
        let report = build(&[], &[], vec![gap], 5);
        let question = &report.unanswered_questions[0].question;
        assert!(!question.contains("4111 1111"), "{question}");
        assert!(question.ends_with("was charged twice"), "{question}");
        assert_eq!(report.unanswered_questions[0].count, 2);
    }
}
