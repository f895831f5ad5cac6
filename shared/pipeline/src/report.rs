//! What the business wants to know: how many conversations the bot resolved,
//! what customers ask most, what went unanswered, when they write, how fast
//! they were answered, how satisfied they were, and how the A/B variants did.
//!
//! Computed once, here, over records any store can give (sessions with their
//! transcripts and hand-overs, feedback): the SQLite file and the DynamoDB
//! tables feed the same [`build`]; [`crate::report_html`] draws it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use switchboard_domain::{
    EscalationReason, Experiments, Feedback, Language, Role, Session, SessionStatus, SlaPolicy,
    Tier, texts,
};

use crate::stats::{Mean, Proportion, two_proportion_p_value};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// What a report is built from.
pub struct ReportInput<'a> {
    /// Sessions active in the period (a store's "updated since").
    pub sessions: &'a [Session],
    /// Feedback given in the period.
    pub feedback: &'a [Feedback],
    pub from_ms: i64,
    pub to_ms: i64,
    /// How many top and unanswered questions to list.
    pub top: usize,
    /// The first-response targets the SLA is judged by.
    pub sla: &'a SlaPolicy,
    pub experiments: &'a Experiments,
    /// FAQ entry id to its question, to label entries (missing: the id alone).
    pub labels: &'a HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub period: Period,
    pub conversations: u64,
    pub customer_messages: u64,
    /// Bot answers from the FAQ.
    pub answered_by_bot: u64,
    /// Conversations handed to a person at least once.
    pub escalated_conversations: u64,
    /// Hand-overs no agent answered within the tier's first-response target.
    pub sla_breaches: u64,
    /// Conversations the bot handled alone, or that a person marked resolved
    /// (the rates are `None`, JSON null, when there was no conversation).
    pub resolution_rate: Option<f64>,
    /// Conversations the bot handled alone (bot resolution rate).
    pub self_service_rate: Option<f64>,
    /// Conversations handed to a person.
    pub escalation_rate: Option<f64>,
    /// Customer messages per day and channel.
    pub volume: Vec<DayVolume>,
    /// Customer messages per weekday (0 = Monday) and hour (UTC).
    pub messages_by_weekday_hour_utc: [[u64; 24]; 7],
    /// Customer messages per hour of the day (UTC), index 0 = 00:00–00:59.
    pub messages_by_hour_utc: [u64; 24],
    pub peak_hour_utc: Option<u8>,
    /// The busiest weekday and hour, e.g. "Tue 14:00".
    pub peak_slot_utc: Option<String>,
    /// Customer message to the next reply from the bot (ms).
    pub bot_response_ms: Percentiles,
    /// Customer message to the next reply from a person, in escalated conversations (ms).
    pub agent_response_ms: Percentiles,
    /// Hand-overs by tier: first response, resolution, service level met.
    pub by_tier: Vec<TierFigures>,
    pub satisfaction: Satisfaction,
    /// FAQ entries answered most.
    pub top_questions: Vec<TopQuestion>,
    /// Customer questions the bot could not answer in the period, most
    /// frequent first (masked).
    pub unanswered_questions: Vec<UnansweredQuestion>,
    /// FAQ entries with "not helpful" votes, most first.
    pub least_helpful: Vec<EntryVotes>,
    /// A/B experiments, per variant.
    pub experiments: Vec<ExperimentResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// The first and last day covered (UTC dates, both included).
    pub from: String,
    pub to: String,
    /// How many dates that is.
    pub days: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayVolume {
    pub date: String,
    pub total: u64,
    pub by_channel: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierFigures {
    pub tier: &'static str,
    pub handovers: u64,
    /// Hand-over to an agent's first answer (ms).
    pub first_response_ms: Percentiles,
    /// Hand-over to the last message of conversations marked resolved (ms).
    pub resolution_ms: Percentiles,
    /// Share of hand-overs answered within the tier's first-response target,
    /// of those answered or past it (the still-waiting within it are not judged).
    pub sla_met: Proportion,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Satisfaction {
    pub responses: u64,
    /// Mean of the 1–5 scores given.
    pub average: Option<f64>,
    /// Share of "was this helpful?" answers that said yes.
    pub helpful_rate: Option<f64>,
    pub helpful_votes: u64,
    /// Count of each score, index 0 = score 1.
    pub distribution: [u64; 5],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopQuestion {
    pub entry: String,
    /// The entry's question, when the knowledge base has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    pub count: u64,
}

/// How the bot handled a question it had no sure answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unanswered {
    /// No answer: handed to a person.
    NotAnswered,
    /// An unsure answer with the offer of a person.
    OfferedPerson,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnansweredQuestion {
    pub question: String,
    pub language: Language,
    pub count: u64,
    pub not_answered: u64,
    pub offered_person: u64,
    /// UTC, "2026-11-28 14:05".
    pub last_seen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryVotes {
    pub entry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    pub helpful: u64,
    pub not_helpful: u64,
    pub helpful_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentResult {
    pub experiment: String,
    /// The variant the others are tested against.
    pub baseline: String,
    pub variants: Vec<VariantResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantResult {
    pub variant: String,
    pub conversations: u64,
    /// Conversations the bot handled alone.
    pub bot_resolution: Proportion,
    pub escalation: Proportion,
    /// "Was this helpful?" votes that said yes.
    pub helpful: Proportion,
    /// Satisfaction scores 1–5.
    pub csat: Mean,
    /// Two-sided p-value of the two-proportion z-test of `bot_resolution`
    /// against the baseline's (absent for the baseline itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_p_value: Option<f64>,
}

/// The records of a period, as a store gives them.
pub struct Records {
    pub sessions: Vec<Session>,
    pub feedback: Vec<Feedback>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The period a report covers, `from_ms` to `to_ms` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    /// The last `days` calendar days (UTC), today included up to `now_ms`:
    /// `--days 7` on a Saturday covers Sunday to Saturday, seven dates.
    pub fn last_days(days: u32, now_ms: i64) -> Self {
        let today = start_of_day(now_ms);
        let earlier = i64::from(days.saturating_sub(1)).saturating_mul(DAY_MS);
        Self {
            from_ms: today.saturating_sub(earlier),
            to_ms: now_ms,
        }
    }

    /// The `days` whole calendar days (UTC) before today: what a report run
    /// on a schedule covers, so that one run's period ends where the next
    /// one's starts.
    pub fn days_before_today(days: u32, now_ms: i64) -> Self {
        let today = start_of_day(now_ms);
        Self {
            from_ms: today.saturating_sub(i64::from(days).saturating_mul(DAY_MS)),
            to_ms: today.saturating_sub(1),
        }
    }
}

/// Midnight (UTC) of the day `at_ms` falls on.
fn start_of_day(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS).saturating_mul(DAY_MS)
}

/// Reads the records of `window` from `store`: every section of a report,
/// experiment results and suggestions cover the same period. Conversations
/// whose every message came after the period are left out.
pub async fn read(
    store: &dyn switchboard_domain::ReportRecords,
    window: Window,
) -> Result<Records, switchboard_domain::StoreError> {
    let mut sessions = store.sessions_since(window.from_ms).await?;
    sessions.retain(|s| s.turns.is_empty() || s.turns.iter().any(|t| t.at_ms <= window.to_ms));
    let mut feedback = store.feedback_since(window.from_ms).await?;
    feedback.retain(|f| f.at_ms <= window.to_ms);
    Ok(Records {
        sessions,
        feedback,
        from_ms: window.from_ms,
        to_ms: window.to_ms,
    })
}

/// One customer question the bot had no sure answer to.
#[derive(Debug, Clone, PartialEq)]
pub struct UnansweredTurn {
    /// Masked.
    pub question: String,
    pub language: Language,
    pub at_ms: i64,
    pub outcome: Unanswered,
    /// The first reply a person wrote after it, when one did.
    pub agent_answer: Option<String>,
}

/// The customer turn the current hand-over answered: the last one before
/// our first reply written at or after the hand-over (customer turns carry the
/// provider's clock, ours the server's), else the last one before it.
fn handover_turn(session: &Session) -> Option<usize> {
    let handover = session.handover.as_ref()?;
    let turns = &session.turns;
    turns
        .iter()
        .position(|t| t.role != Role::Customer && t.at_ms >= handover.at_ms)
        .and_then(|reply| {
            turns[..reply]
                .iter()
                .rposition(|t| t.role == Role::Customer)
        })
        .or_else(|| {
            turns
                .iter()
                .rposition(|t| t.role == Role::Customer && t.at_ms <= handover.at_ms)
        })
}

/// The questions in `sessions` between `from_ms` and `to_ms` that the bot
/// could not answer: handed over for want of an answer, or answered unsure
/// with the offer of a person. Follow-ups while a person had the
/// conversation, asks for a person and greetings answered with the menu are
/// not questions the knowledge base lacks.
pub fn unanswered_turns(sessions: &[Session], from_ms: i64, to_ms: i64) -> Vec<UnansweredTurn> {
    let mut found = Vec::new();
    for session in sessions {
        let handed_over = handover_turn(session);
        for (i, turn) in session.turns.iter().enumerate() {
            if turn.role != Role::Customer || turn.at_ms < from_ms || turn.at_ms > to_ms {
                continue;
            }
            let rest = &session.turns[i + 1..];
            let reply = rest
                .iter()
                .take_while(|t| t.role != Role::Customer)
                .find(|t| t.role == Role::Bot);
            let outcome = match reply {
                Some(bot) if bot.faq_entry.is_some() => {
                    if bot.text.contains(texts::offer_human(session.language))
                        || bot
                            .text
                            .contains(texts::offer_human(Language::detect(&turn.text)))
                    {
                        Unanswered::OfferedPerson
                    } else {
                        continue;
                    }
                }
                // A welcome (with the menu) carries a confidence; a hand-over does not.
                Some(bot) if bot.confidence.is_some() => continue,
                _ => match session.handover.as_ref().zip(handed_over) {
                    Some((handover, at)) if at == i => {
                        if matches!(
                            handover.reason,
                            EscalationReason::NoConfidentMatch
                                | EscalationReason::VipUnanswered
                                | EscalationReason::RepeatedFailure
                        ) {
                            Unanswered::NotAnswered
                        } else {
                            continue;
                        }
                    }
                    // Written while a person had the conversation.
                    Some((_, at)) if at < i => continue,
                    _ => match reply {
                        Some(_) => Unanswered::NotAnswered,
                        None => continue,
                    },
                },
            };
            // The answer is the turn's text; transcripts from before turns
            // recorded their agent carry "<claimer>: <text>".
            let claimer = session
                .handover
                .as_ref()
                .and_then(|h| h.claimed_by.as_deref());
            let agent_answer = rest.iter().find(|t| t.role == Role::Agent).map(|t| {
                let legacy_prefix = claimer.filter(|_| t.agent.is_none());
                legacy_prefix
                    .and_then(|name| t.text.strip_prefix(name)?.strip_prefix(": "))
                    .unwrap_or(&t.text)
                    .to_owned()
            });
            found.push(UnansweredTurn {
                question: switchboard_domain::redact::redact(turn.text.trim()).into_owned(),
                language: Language::detect(&turn.text),
                at_ms: turn.at_ms,
                outcome,
                agent_answer,
            });
        }
    }
    found
}

/// Builds the report of the period.
pub fn build(input: &ReportInput<'_>) -> Report {
    let sessions = input.sessions;
    let in_period = |at: i64| at >= input.from_ms && at <= input.to_ms;
    let mut entries: HashMap<&str, u64> = HashMap::new();
    let (mut bot_times, mut agent_times) = (Vec::new(), Vec::new());
    let (mut self_served, mut resolved, mut escalated_count) = (0u64, 0u64, 0u64);
    let mut customer_messages = 0u64;
    let mut answered_by_bot = 0u64;
    let mut heat = [[0u64; 24]; 7];
    let mut volume: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    for session in sessions {
        let escalated = is_escalated(session);
        if escalated {
            escalated_count += 1;
        } else {
            self_served += 1;
        }
        if !escalated || session.status == SessionStatus::Resolved {
            resolved += 1;
        }
        let mut waiting_since: Option<i64> = None;
        for turn in &session.turns {
            if !in_period(turn.at_ms) {
                continue;
            }
            match turn.role {
                Role::Customer => {
                    customer_messages += 1;
                    let (weekday, hour) = weekday_hour(turn.at_ms);
                    heat[weekday][hour] += 1;
                    *volume
                        .entry(turn.at_ms.div_euclid(DAY_MS))
                        .or_default()
                        .entry(session.channel.clone())
                        .or_default() += 1;
                    waiting_since.get_or_insert(turn.at_ms);
                }
                Role::Bot => {
                    if let Some(entry) = &turn.faq_entry {
                        answered_by_bot += 1;
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
    let conversations = sessions.len() as u64;
    let share = |n: u64| (conversations > 0).then(|| n as f64 / conversations as f64);
    let mut messages_by_hour_utc = [0u64; 24];
    for day in &heat {
        for (hour, n) in day.iter().enumerate() {
            messages_by_hour_utc[hour] += n;
        }
    }
    let peak_hour_utc =
        busiest(messages_by_hour_utc.iter().copied().enumerate()).map(|hour| hour as u8);
    let peak_slot_utc = busiest(
        heat.iter()
            .enumerate()
            .flat_map(|(d, hours)| hours.iter().enumerate().map(move |(h, n)| (d * 24 + h, *n))),
    )
    .map(|slot| format!("{} {:02}:00", WEEKDAYS[slot / 24], slot % 24));

    let mut top_questions: Vec<TopQuestion> = entries
        .into_iter()
        .map(|(id, count)| TopQuestion {
            entry: id.to_owned(),
            question: input.labels.get(id).cloned(),
            count,
        })
        .collect();
    top_questions.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.entry.cmp(&b.entry)));
    top_questions.truncate(input.top);

    Report {
        period: Period {
            from: date(input.from_ms),
            to: date(input.to_ms),
            // The dates `from` to `to` name, both included.
            days: u64::try_from(
                (input.to_ms.div_euclid(DAY_MS) - input.from_ms.div_euclid(DAY_MS) + 1).max(0),
            )
            .unwrap_or_default(),
        },
        conversations,
        customer_messages,
        answered_by_bot,
        escalated_conversations: escalated_count,
        sla_breaches: sessions
            .iter()
            .filter(|s| {
                s.handover
                    .as_ref()
                    .is_some_and(|h| h.breached_at_ms.is_some())
            })
            .count() as u64,
        resolution_rate: share(resolved),
        self_service_rate: share(self_served),
        escalation_rate: share(escalated_count),
        volume: volume
            .into_iter()
            .map(|(day, by_channel)| DayVolume {
                date: date(day * DAY_MS),
                total: by_channel.values().sum(),
                by_channel,
            })
            .collect(),
        messages_by_weekday_hour_utc: heat,
        messages_by_hour_utc,
        peak_hour_utc,
        peak_slot_utc,
        bot_response_ms: percentiles(bot_times),
        agent_response_ms: percentiles(agent_times),
        by_tier: by_tier(sessions, input.sla, input.to_ms),
        satisfaction: satisfaction(input.feedback),
        top_questions,
        unanswered_questions: unanswered_questions(
            unanswered_turns(sessions, input.from_ms, input.to_ms),
            input.top,
        ),
        least_helpful: least_helpful(sessions, input.feedback, input.labels, input.top),
        experiments: experiment_results(input.experiments, sessions, input.feedback),
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Handed to a person at least once.
fn is_escalated(session: &Session) -> bool {
    session.status != SessionStatus::Open
        || session.handover.is_some()
        || session.turns.iter().any(|t| t.role == Role::Agent)
}

/// The index with the largest count (the earliest on a tie), if any count is above 0.
fn busiest(counts: impl Iterator<Item = (usize, u64)>) -> Option<usize> {
    counts
        .filter(|(_, n)| *n > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(i, _)| i)
}

fn last_customer_before(session: &Session, at_ms: i64) -> Option<i64> {
    session
        .turns
        .iter()
        .filter(|t| t.role == Role::Customer && t.at_ms <= at_ms)
        .map(|t| t.at_ms)
        .next_back()
}

/// Weekday (0 = Monday) and hour, UTC. 1970-01-01 was a Thursday.
fn weekday_hour(at_ms: i64) -> (usize, usize) {
    let day = at_ms.div_euclid(DAY_MS);
    let weekday = (day + 3).rem_euclid(7) as usize;
    let hour = (at_ms.rem_euclid(DAY_MS) / HOUR_MS) as usize;
    (weekday, hour)
}

/// "2026-11-28" (UTC).
pub fn date(at_ms: i64) -> String {
    timestamp(at_ms).map_or_else(String::new, |t| {
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    })
}

/// "2026-11-28 14:05" (UTC).
pub fn date_time(at_ms: i64) -> String {
    timestamp(at_ms).map_or_else(String::new, |t| {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    })
}

fn timestamp(at_ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000)).ok()
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

fn by_tier(sessions: &[Session], sla: &SlaPolicy, now_ms: i64) -> Vec<TierFigures> {
    [Tier::Vip, Tier::Regular, Tier::New]
        .into_iter()
        .map(|tier| {
            let handovers: Vec<(&Session, &switchboard_domain::Handover)> = sessions
                .iter()
                .filter_map(|s| Some((s, s.handover.as_ref()?)))
                .filter(|(_, h)| h.tier == tier)
                .collect();
            let first: Vec<i64> = handovers
                .iter()
                .filter_map(|(_, h)| Some(h.agent_answered_at_ms? - h.at_ms))
                .collect();
            let resolution: Vec<i64> = handovers
                .iter()
                .filter(|(s, _)| s.status == SessionStatus::Resolved)
                // Older hand-overs have no resolve time: their last change.
                .map(|(s, h)| h.resolved_at_ms.unwrap_or(s.updated_at_ms) - h.at_ms)
                .collect();
            let (mut met, mut judged) = (0u64, 0u64);
            for (_, handover) in &handovers {
                // The promise made at the hand-over, not today's settings.
                let due_ms = handover.first_response_due(sla);
                match handover.agent_answered_at_ms {
                    Some(at) => {
                        judged += 1;
                        if at <= due_ms && handover.breached_at_ms.is_none() {
                            met += 1;
                        }
                    }
                    None if handover.breached_at_ms.is_some() || now_ms > due_ms => judged += 1,
                    None => {}
                }
            }
            TierFigures {
                tier: tier.as_str(),
                handovers: handovers.len() as u64,
                first_response_ms: percentiles(first),
                resolution_ms: percentiles(resolution),
                sla_met: Proportion::new(met, judged),
            }
        })
        .collect()
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

/// One line of `kb gaps`: a question, how it was handled, how often.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub outcome: Unanswered,
    pub question: String,
    pub language: Language,
    pub count: u64,
    pub last_seen: String,
}

/// The unanswered questions per outcome (the same question, case and
/// spacing aside), most frequent first, at most `limit` of each outcome.
pub fn gaps(turns: Vec<UnansweredTurn>, limit: usize) -> Vec<Gap> {
    let mut groups: HashMap<(Unanswered, String), (Gap, i64)> = HashMap::new();
    for turn in turns {
        let key = turn
            .question
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let (gap, last) = groups.entry((turn.outcome, key)).or_insert_with(|| {
            (
                Gap {
                    outcome: turn.outcome,
                    question: turn.question.clone(),
                    language: turn.language,
                    count: 0,
                    last_seen: String::new(),
                },
                i64::MIN,
            )
        });
        gap.count += 1;
        *last = (*last).max(turn.at_ms);
    }
    let mut list: Vec<Gap> = groups
        .into_values()
        .map(|(mut gap, last)| {
            gap.last_seen = date_time(last);
            gap
        })
        .collect();
    list.sort_by(|a, b| {
        a.outcome
            .cmp(&b.outcome)
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| b.last_seen.cmp(&a.last_seen))
            .then_with(|| a.question.cmp(&b.question))
    });
    let mut kept: HashMap<Unanswered, usize> = HashMap::new();
    list.retain(|gap| {
        let n = kept.entry(gap.outcome).or_default();
        *n += 1;
        *n <= limit
    });
    list
}

/// Groups the same question (case and spacing aside), most frequent first.
fn unanswered_questions(turns: Vec<UnansweredTurn>, top: usize) -> Vec<UnansweredQuestion> {
    let mut groups: HashMap<String, UnansweredQuestion> = HashMap::new();
    for turn in turns {
        let key = turn
            .question
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let group = groups.entry(key).or_insert_with(|| UnansweredQuestion {
            question: turn.question.clone(),
            language: turn.language,
            count: 0,
            not_answered: 0,
            offered_person: 0,
            last_seen: String::new(),
        });
        group.count += 1;
        match turn.outcome {
            Unanswered::NotAnswered => group.not_answered += 1,
            Unanswered::OfferedPerson => group.offered_person += 1,
        }
        let seen = date_time(turn.at_ms);
        if seen > group.last_seen {
            group.last_seen = seen;
        }
    }
    let mut list: Vec<UnansweredQuestion> = groups.into_values().collect();
    list.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| b.last_seen.cmp(&a.last_seen))
            .then_with(|| a.question.cmp(&b.question))
    });
    list.truncate(top);
    list
}

/// The FAQ entry a helpful vote is about: the one it names, else the last
/// entry the bot answered from in its conversation before the vote.
pub fn voted_entry(feedback: &Feedback, sessions: &HashMap<&str, &Session>) -> Option<String> {
    if let Some(entry) = &feedback.faq_id {
        return Some(entry.clone());
    }
    sessions
        .get(feedback.conversation.as_str())?
        .turns
        .iter()
        .rev()
        .filter(|t| t.role == Role::Bot && t.at_ms <= feedback.at_ms)
        .find_map(|t| t.faq_entry.clone())
}

/// Helpful votes per FAQ entry.
pub fn votes_by_entry(sessions: &[Session], feedback: &[Feedback]) -> BTreeMap<String, (u64, u64)> {
    let by_key: HashMap<&str, &Session> = sessions.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut votes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for vote in feedback {
        let Some(helpful) = vote.helpful else {
            continue;
        };
        let Some(entry) = voted_entry(vote, &by_key) else {
            continue;
        };
        let counts = votes.entry(entry).or_default();
        if helpful {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    votes
}

fn least_helpful(
    sessions: &[Session],
    feedback: &[Feedback],
    labels: &HashMap<String, String>,
    top: usize,
) -> Vec<EntryVotes> {
    let mut list: Vec<EntryVotes> = votes_by_entry(sessions, feedback)
        .into_iter()
        .filter(|(_, (_, no))| *no > 0)
        .map(|(entry, (helpful, not_helpful))| EntryVotes {
            question: labels.get(&entry).cloned(),
            entry,
            helpful,
            not_helpful,
            helpful_rate: Proportion::new(helpful, helpful + not_helpful).rate,
        })
        .collect();
    list.sort_by(|a, b| {
        b.not_helpful
            .cmp(&a.not_helpful)
            .then_with(|| a.helpful.cmp(&b.helpful))
            .then_with(|| a.entry.cmp(&b.entry))
    });
    list.truncate(top);
    list
}

/// Per experiment and variant: conversations, bot resolution and escalation
/// rates, helpful rate and mean satisfaction with 95% intervals, and the
/// z-test of bot resolution against the baseline. Sessions count under the
/// variants they recorded; variants no longer configured are still listed.
pub fn experiment_results(
    experiments: &Experiments,
    sessions: &[Session],
    feedback: &[Feedback],
) -> Vec<ExperimentResult> {
    #[derive(Default)]
    struct Tally {
        conversations: u64,
        self_served: u64,
        escalated: u64,
        helpful: u64,
        votes: u64,
        scores: Vec<f64>,
    }
    let mut names: Vec<&String> = experiments.0.keys().collect();
    for session in sessions {
        names.extend(session.variants.keys());
    }
    names.sort();
    names.dedup();
    let variant_of: HashMap<&str, &Session> =
        sessions.iter().map(|s| (s.key.as_str(), s)).collect();
    names
        .into_iter()
        .map(|name| {
            let mut tallies: BTreeMap<String, Tally> = experiments
                .0
                .get(name)
                .map(|e| {
                    e.variants
                        .keys()
                        .map(|v| (v.clone(), Tally::default()))
                        .collect()
                })
                .unwrap_or_default();
            for session in sessions {
                let Some(variant) = session.variants.get(name) else {
                    continue;
                };
                let tally = tallies.entry(variant.clone()).or_default();
                tally.conversations += 1;
                if is_escalated(session) {
                    tally.escalated += 1;
                } else {
                    tally.self_served += 1;
                }
            }
            for vote in feedback {
                let Some(variant) = variant_of
                    .get(vote.conversation.as_str())
                    .and_then(|s| s.variants.get(name))
                else {
                    continue;
                };
                let tally = tallies.entry(variant.clone()).or_default();
                if let Some(helpful) = vote.helpful {
                    tally.votes += 1;
                    tally.helpful += u64::from(helpful);
                }
                if let Some(score) = vote.satisfaction.filter(|s| (1..=5).contains(s)) {
                    tally.scores.push(f64::from(score));
                }
            }
            let baseline = experiments
                .0
                .get(name)
                .and_then(|e| e.baseline())
                .map(str::to_owned)
                .or_else(|| tallies.keys().next().cloned())
                .unwrap_or_default();
            let resolution = |t: &Tally| Proportion::new(t.self_served, t.conversations);
            let base_resolution = tallies.get(&baseline).map(resolution);
            // The baseline first, then the others by name.
            let mut order: Vec<&String> = tallies.keys().collect();
            order.sort_by_key(|v| (**v != baseline, (*v).clone()));
            let variants = order
                .into_iter()
                .map(|variant| {
                    let tally = &tallies[variant];
                    let bot_resolution = resolution(tally);
                    VariantResult {
                        variant: variant.clone(),
                        conversations: tally.conversations,
                        bot_resolution,
                        escalation: Proportion::new(tally.escalated, tally.conversations),
                        helpful: Proportion::new(tally.helpful, tally.votes),
                        csat: Mean::of(&tally.scores),
                        resolution_p_value: if *variant == baseline {
                            None
                        } else {
                            base_resolution
                                .as_ref()
                                .and_then(|base| two_proportion_p_value(&bot_resolution, base))
                        },
                    }
                })
                .collect();
            ExperimentResult {
                experiment: name.clone(),
                baseline,
                variants,
            }
        })
        .collect()
}

/// Milliseconds as people read a wait: "850 ms", "42 s", "7 min", "3.5 h".
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{} s", ms / 1_000),
        ms if ms < HOUR_MS => format!("{} min", ms / 60_000),
        ms => format!("{:.1} h", ms as f64 / HOUR_MS as f64),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

fn times(p: &Percentiles) -> String {
    match (p.median, p.p90) {
        (Some(median), Some(p90)) => format!(
            "median {}, p90 {} ({} measured)",
            duration(median),
            duration(p90),
            p.count
        ),
        _ => "none measured".to_owned(),
    }
}

/// The report as people read it on a terminal.
pub fn summary(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let r = report;
    let _ = writeln!(
        out,
        "Switchboard report, {} to {} ({} days, UTC)\n",
        r.period.from, r.period.to, r.period.days
    );
    let _ = writeln!(
        out,
        "Conversations      {:>6}   customer messages {}",
        r.conversations, r.customer_messages
    );
    let _ = writeln!(
        out,
        "Bot resolution     {:>6}   (resolved overall {}, handed to a person {})",
        percent(r.self_service_rate),
        percent(r.resolution_rate),
        percent(r.escalation_rate)
    );
    let _ = writeln!(out, "Bot answers        {:>6}", r.answered_by_bot);
    let _ = writeln!(
        out,
        "Busiest            {:>6}   (peak hour {})",
        r.peak_slot_utc.as_deref().unwrap_or("–"),
        r.peak_hour_utc
            .map_or_else(|| "–".to_owned(), |h| format!("{h:02}:00"))
    );
    let _ = writeln!(out, "Bot replies        {}", times(&r.bot_response_ms));
    let _ = writeln!(out, "Agent replies      {}", times(&r.agent_response_ms));
    for tier in r.by_tier.iter().filter(|t| t.handovers > 0) {
        let _ = writeln!(
            out,
            "  {:<8} {} hand-overs; first response {}; SLA met {}",
            tier.tier,
            tier.handovers,
            times(&tier.first_response_ms),
            percent(tier.sla_met.rate)
        );
    }
    let s = &r.satisfaction;
    let _ = writeln!(
        out,
        "Satisfaction       {}   scores 1-5: {:?}; helpful {} of {} votes",
        s.average
            .map_or_else(|| "–".to_owned(), |a| format!("{a:.2}")),
        s.distribution,
        percent(s.helpful_rate),
        s.helpful_votes
    );
    if !r.top_questions.is_empty() {
        let _ = writeln!(out, "\nTop questions");
        for q in &r.top_questions {
            let _ = writeln!(
                out,
                "  {:>5}  {}",
                q.count,
                q.question.as_deref().unwrap_or(&q.entry)
            );
        }
    }
    if !r.unanswered_questions.is_empty() {
        let _ = writeln!(
            out,
            "\nUnanswered questions (not answered / offered a person, last seen)"
        );
        for q in &r.unanswered_questions {
            let _ = writeln!(
                out,
                "  {:>5}  {}  ({} / {}, {})",
                q.count, q.question, q.not_answered, q.offered_person, q.last_seen
            );
        }
    }
    if !r.least_helpful.is_empty() {
        let _ = writeln!(out, "\nLeast helpful FAQ entries (not helpful / helpful)");
        for e in &r.least_helpful {
            let _ = writeln!(
                out,
                "  {} / {}  {}",
                e.not_helpful,
                e.helpful,
                e.question.as_deref().unwrap_or(&e.entry)
            );
        }
    }
    for experiment in &r.experiments {
        let _ = writeln!(
            out,
            "\nExperiment {} (against {})",
            experiment.experiment, experiment.baseline
        );
        for v in &experiment.variants {
            let _ = writeln!(
                out,
                "  {:<12} {:>5} conversations, bot resolution {}, escalation {}, helpful {}, CSAT {}{}",
                v.variant,
                v.conversations,
                percent(v.bot_resolution.rate),
                percent(v.escalation.rate),
                percent(v.helpful.rate),
                v.csat
                    .mean
                    .map_or_else(|| "–".to_owned(), |m| format!("{m:.2}")),
                v.resolution_p_value
                    .map_or_else(String::new, |p| format!(", p = {p:.3}"))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use switchboard_domain::{ConversationKey, Handover, ReplyContext, Turn};

    use super::*;

    const HOUR: i64 = 3_600_000;
    /// Monday 2026-11-23 00:00 UTC.
    const MONDAY: i64 = 1_795_392_000_000;

    fn turn(role: Role, at_ms: i64, entry: Option<&str>) -> Turn {
        Turn {
            role,
            text: String::new(),
            at_ms,
            message_id: None,
            faq_entry: entry.map(str::to_owned),
            confidence: None,
            agent: None,
        }
    }

    fn said(role: Role, at_ms: i64, text: &str) -> Turn {
        Turn {
            text: text.into(),
            ..turn(role, at_ms, None)
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
            updated_at_ms: turns.last().map_or(0, |t| t.at_ms),
            turns,
            reply: ReplyContext::default(),
            created_at_ms: 0,
            version: 1,
            handover: None,
            menu: Vec::new(),
            pending: None,
            helpful_asked_at_ms: None,
            deliveries: Vec::new(),
            variants: Default::default(),
        }
    }

    fn handover(at_ms: i64, reason: EscalationReason) -> Handover {
        Handover {
            at_ms,
            tier: Tier::Regular,
            reason,
            priority: false,
            claimed_by: None,
            agent_answered_at_ms: None,
            breached_at_ms: None,
            first_response_due_ms: None,
            resolved_at_ms: None,
            candidates: Vec::new(),
        }
    }

    fn vote(conversation: &str, helpful: Option<bool>, satisfaction: Option<u8>) -> Feedback {
        Feedback {
            conversation: ConversationKey(conversation.into()),
            helpful,
            satisfaction,
            comment: None,
            faq_id: None,
            at_ms: MONDAY + 23 * HOUR,
        }
    }

    fn input<'a>(
        sessions: &'a [Session],
        feedback: &'a [Feedback],
        experiments: &'a Experiments,
        sla: &'a SlaPolicy,
        labels: &'a HashMap<String, String>,
    ) -> ReportInput<'a> {
        ReportInput {
            sessions,
            feedback,
            from_ms: MONDAY - 6 * 24 * HOUR,
            to_ms: MONDAY + 24 * HOUR,
            top: 5,
            sla,
            experiments,
            labels,
        }
    }

    fn sample() -> Vec<Session> {
        vec![
            // Answered by the bot twice, at 09:00 and 09:30 on Monday.
            session(
                "a",
                SessionStatus::Open,
                vec![
                    turn(Role::Customer, MONDAY + 9 * HOUR, None),
                    turn(Role::Bot, MONDAY + 9 * HOUR + 200, Some("hours")),
                    turn(Role::Customer, MONDAY + 9 * HOUR + HOUR / 2, None),
                    turn(Role::Bot, MONDAY + 9 * HOUR + HOUR / 2 + 400, Some("hours")),
                ],
            ),
            // Escalated at 09:10, an agent answered 20 minutes later and resolved it.
            Session {
                handover: Some(Handover {
                    agent_answered_at_ms: Some(MONDAY + 9 * HOUR + 1_800_000),
                    ..handover(
                        MONDAY + 9 * HOUR + 600_000,
                        EscalationReason::NoConfidentMatch,
                    )
                }),
                ..session(
                    "b",
                    SessionStatus::Resolved,
                    vec![
                        said(
                            Role::Customer,
                            MONDAY + 9 * HOUR + 600_000,
                            "Do you sell parts?",
                        ),
                        turn(Role::Bot, MONDAY + 9 * HOUR + 600_300, None),
                        said(Role::Agent, MONDAY + 9 * HOUR + 1_800_000, "Yes, ask us."),
                    ],
                )
            },
            // Escalated at 22:00, still waiting past the service level.
            Session {
                handover: Some(Handover {
                    breached_at_ms: Some(MONDAY + 26 * HOUR),
                    ..handover(MONDAY + 22 * HOUR, EscalationReason::AskedForHuman)
                }),
                ..session(
                    "c",
                    SessionStatus::Escalated,
                    vec![said(Role::Customer, MONDAY + 22 * HOUR, "agent please")],
                )
            },
        ]
    }

    #[test]
    fn resolution_ends_at_the_resolve_and_service_levels_keep_the_promise_made() {
        let at = MONDAY + 9 * HOUR;
        // Resolved a second after the hand-over; the survey's answer came an
        // hour later and changed the conversation then.
        let resolved = Session {
            handover: Some(Handover {
                agent_answered_at_ms: Some(at + 1_000),
                resolved_at_ms: Some(at + 1_000),
                first_response_due_ms: Some(at + 4 * HOUR),
                ..handover(at, EscalationReason::AskedForHuman)
            }),
            updated_at_ms: at + HOUR,
            ..session("r", SessionStatus::Resolved, Vec::new())
        };
        // Answered after two hours, within the four promised at the hand-over
        // although the service level is one hour now.
        let answered = Session {
            handover: Some(Handover {
                agent_answered_at_ms: Some(at + 2 * HOUR),
                first_response_due_ms: Some(at + 4 * HOUR),
                ..handover(at, EscalationReason::AskedForHuman)
            }),
            ..session("s", SessionStatus::Escalated, Vec::new())
        };
        let mut sla = SlaPolicy::default();
        sla.regular.first_response_secs = 3600;
        let tiers = by_tier(&[resolved, answered], &sla, at + 3 * HOUR);
        let regular = tiers.iter().find(|t| t.tier == "regular").unwrap();
        assert_eq!(regular.resolution_ms.median, Some(1_000));
        assert_eq!((regular.sla_met.count, regular.sla_met.total), (2, 2));
    }

    #[test]
    fn rates_of_no_conversation_are_unknown_not_zero() {
        let (experiments, sla) = (Experiments::default(), SlaPolicy::default());
        let report = build(&input(&[], &[], &experiments, &sla, &HashMap::new()));
        assert_eq!(report.conversations, 0);
        assert_eq!(
            (
                report.resolution_rate,
                report.self_service_rate,
                report.escalation_rate
            ),
            (None, None, None)
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["resolution_rate"].is_null(), "{json}");
        let text = summary(&report);
        assert!(text.contains("Bot resolution          –"), "{text}");
    }

    #[test]
    fn summarises_sessions_and_feedback() {
        let sessions = sample();
        let feedback = vec![
            vote("a", Some(true), Some(5)),
            vote("b", Some(false), Some(2)),
        ];
        let (experiments, sla) = (Experiments::default(), SlaPolicy::default());
        let labels = HashMap::from([("hours".to_owned(), "When are you open?".to_owned())]);
        let report = build(&input(&sessions, &feedback, &experiments, &sla, &labels));
        assert_eq!(report.conversations, 3);
        assert_eq!(report.customer_messages, 4);
        assert_eq!(report.answered_by_bot, 2);
        assert_eq!(report.escalated_conversations, 2);
        assert_eq!(report.sla_breaches, 1);
        assert!((report.self_service_rate.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert!((report.resolution_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert!((report.escalation_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.top_questions[0].count, 2);
        assert_eq!(
            report.top_questions[0].question.as_deref(),
            Some("When are you open?")
        );
        assert_eq!(report.messages_by_hour_utc[9], 3);
        assert_eq!(report.messages_by_weekday_hour_utc[0][9], 3);
        assert_eq!(report.peak_hour_utc, Some(9));
        assert_eq!(report.peak_slot_utc.as_deref(), Some("Mon 09:00"));
        assert_eq!(report.volume.len(), 1);
        assert_eq!(report.volume[0].date, "2026-11-23");
        assert_eq!(report.volume[0].by_channel["telegram"], 4);
        assert_eq!(report.period.to, "2026-11-24");
        assert_eq!(
            report.bot_response_ms,
            Percentiles {
                count: 3,
                median: Some(300),
                p90: Some(400)
            }
        );
        assert_eq!(report.agent_response_ms.median, Some(1_200_000));
        let regular = report.by_tier.iter().find(|t| t.tier == "regular").unwrap();
        assert_eq!(regular.handovers, 2);
        assert_eq!(regular.first_response_ms.median, Some(1_200_000));
        assert_eq!(regular.resolution_ms.median, Some(1_200_000));
        // One answered within 4 h, one breached.
        assert_eq!((regular.sla_met.count, regular.sla_met.total), (1, 2));
        assert_eq!(report.satisfaction.average, Some(3.5));
        assert_eq!(report.satisfaction.helpful_rate, Some(0.5));
        assert_eq!(report.satisfaction.helpful_votes, 2);
        assert_eq!(report.satisfaction.distribution, [0, 1, 0, 0, 1]);
        // The "not helpful" vote in b has no FAQ answer to blame; a's
        // "helpful" goes to the entry a answered from.
        assert!(report.least_helpful.is_empty());
        // Only b's question was unanswered: c asked for a person.
        assert_eq!(report.unanswered_questions.len(), 1);
        assert_eq!(
            report.unanswered_questions[0].question,
            "Do you sell parts?"
        );
        assert_eq!(report.unanswered_questions[0].last_seen, "2026-11-23 09:10");
        let text = summary(&report);
        assert!(text.contains("When are you open?"), "{text}");
        assert!(text.contains("Mon 09:00"), "{text}");
    }

    #[test]
    fn every_section_keeps_to_the_period() {
        let sessions = sample();
        let (experiments, sla, labels) =
            (Experiments::default(), SlaPolicy::default(), HashMap::new());
        let mut later = input(&sessions, &[], &experiments, &sla, &labels);
        later.from_ms = MONDAY + 12 * HOUR;
        let report = build(&later);
        assert!(report.unanswered_questions.is_empty());
        assert_eq!(report.customer_messages, 1, "only c's, at 22:00");
        assert_eq!(report.answered_by_bot, 0);
    }

    #[test]
    fn unanswered_questions_separate_no_answer_from_an_offer_and_carry_the_agents_answer() {
        let offer = format!("Our hours are 9-5.\n\n{}", texts::offer_human(Language::En));
        let sessions = vec![
            session(
                "x",
                SessionStatus::Open,
                vec![
                    said(Role::Customer, MONDAY, "Are you open on holidays?"),
                    Turn {
                        faq_entry: Some("hours".into()),
                        confidence: Some(0.5),
                        ..said(Role::Bot, MONDAY + 1, &offer)
                    },
                ],
            ),
            Session {
                handover: Some(Handover {
                    claimed_by: Some("Lee".into()),
                    ..handover(MONDAY + HOUR, EscalationReason::NoConfidentMatch)
                }),
                ..session(
                    "y",
                    SessionStatus::Resolved,
                    vec![
                        said(
                            Role::Customer,
                            MONDAY + HOUR,
                            "Card 4111 1111 1111 1111 was charged twice",
                        ),
                        said(Role::Bot, MONDAY + HOUR + 1, "A person will answer"),
                        said(Role::Customer, MONDAY + HOUR + 5, "hello??"),
                        said(
                            Role::Agent,
                            MONDAY + 2 * HOUR,
                            "Lee: Refunded the second charge.",
                        ),
                    ],
                )
            },
        ];
        let turns = unanswered_turns(&sessions, 0, i64::MAX);
        assert_eq!(turns.len(), 2, "the follow-up is not a question: {turns:?}");
        assert_eq!(turns[0].outcome, Unanswered::OfferedPerson);
        assert_eq!(turns[0].agent_answer, None);
        assert_eq!(turns[1].outcome, Unanswered::NotAnswered);
        assert!(!turns[1].question.contains("4111 1111"), "masked");
        assert_eq!(
            turns[1].agent_answer.as_deref(),
            Some("Refunded the second charge.")
        );
    }

    #[test]
    fn a_hand_over_is_matched_to_its_turn_although_the_provider_clock_is_earlier() {
        // Customer turns carry the provider's send time, the hand-over and our
        // reply the server's: seconds apart, never equal.
        let handed_over = |id: &str, reason, text: &str| Session {
            handover: Some(handover(MONDAY + 2_500, reason)),
            ..session(
                id,
                SessionStatus::Escalated,
                vec![
                    said(Role::Customer, MONDAY, text),
                    said(Role::Bot, MONDAY + 2_500, "A person will answer"),
                    said(Role::Customer, MONDAY + 60_000, "still there?"),
                ],
            )
        };
        let sessions = vec![
            handed_over("p", EscalationReason::AskedForHuman, "agent please"),
            handed_over(
                "q",
                EscalationReason::NoConfidentMatch,
                "Do you ship to Mars?",
            ),
        ];
        let turns = unanswered_turns(&sessions, 0, i64::MAX);
        let questions: Vec<&str> = turns.iter().map(|t| t.question.as_str()).collect();
        assert_eq!(questions, vec!["Do you ship to Mars?"], "{turns:?}");
        assert_eq!(turns[0].outcome, Unanswered::NotAnswered);
    }

    #[test]
    fn the_agents_answer_is_the_text_the_customer_received() {
        // Claimed by one agent, answered by another: the name is on the turn,
        // not in its text, so nothing is stripped or left behind.
        let sessions = vec![Session {
            handover: Some(Handover {
                claimed_by: Some("lee".into()),
                ..handover(MONDAY + 1, EscalationReason::NoConfidentMatch)
            }),
            ..session(
                "r",
                SessionStatus::Escalated,
                vec![
                    said(Role::Customer, MONDAY, "Do you sell gift cards?"),
                    said(Role::Bot, MONDAY + 1, "A person will answer"),
                    Turn {
                        agent: Some("admin".into()),
                        ..said(Role::Agent, MONDAY + HOUR, "Yes: from 10 to 100 euros.")
                    },
                ],
            )
        }];
        let turns = unanswered_turns(&sessions, 0, i64::MAX);
        assert_eq!(
            turns[0].agent_answer.as_deref(),
            Some("Yes: from 10 to 100 euros.")
        );
    }

    #[test]
    fn gaps_list_each_outcome_apart_most_frequent_first() {
        let asked = |question: &str, outcome, at_ms| UnansweredTurn {
            question: question.into(),
            language: Language::En,
            at_ms,
            outcome,
            agent_answer: None,
        };
        let turns = vec![
            asked(
                "Are you open on holidays?",
                Unanswered::OfferedPerson,
                MONDAY,
            ),
            asked("Do you sell parts?", Unanswered::NotAnswered, MONDAY),
            asked(
                "do you  sell parts?",
                Unanswered::NotAnswered,
                MONDAY + HOUR,
            ),
            asked("Do you sell parts?", Unanswered::OfferedPerson, MONDAY),
            asked("Is there a discount?", Unanswered::NotAnswered, MONDAY),
        ];
        let found = gaps(turns.clone(), 5);
        let listed: Vec<(Unanswered, &str, u64)> = found
            .iter()
            .map(|g| (g.outcome, g.question.as_str(), g.count))
            .collect();
        assert_eq!(
            listed,
            vec![
                (Unanswered::NotAnswered, "Do you sell parts?", 2),
                (Unanswered::NotAnswered, "Is there a discount?", 1),
                (Unanswered::OfferedPerson, "Are you open on holidays?", 1),
                (Unanswered::OfferedPerson, "Do you sell parts?", 1),
            ]
        );
        assert_eq!(gaps(turns.clone(), 5)[0].last_seen, "2026-11-23 01:00");
        assert_eq!(gaps(turns, 1).len(), 2, "at most one of each outcome");
    }

    #[test]
    fn not_helpful_votes_are_counted_against_the_entry_answered() {
        let sessions = sample();
        let mut named = vote("b", Some(false), None);
        named.faq_id = Some("returns".into());
        let feedback = vec![
            vote("a", Some(false), None),
            vote("a", Some(false), None),
            vote("a", Some(true), None),
            named,
        ];
        let (experiments, sla, labels) =
            (Experiments::default(), SlaPolicy::default(), HashMap::new());
        let report = build(&input(&sessions, &feedback, &experiments, &sla, &labels));
        let least: Vec<(&str, u64, u64)> = report
            .least_helpful
            .iter()
            .map(|e| (e.entry.as_str(), e.not_helpful, e.helpful))
            .collect();
        assert_eq!(least, vec![("hours", 2, 1), ("returns", 1, 0)]);
    }

    #[test]
    fn experiments_are_reported_per_variant_against_the_baseline() {
        let experiments: Experiments = serde_json::from_value(serde_json::json!({
            "bands": {"variants": {"control": 1, "eager": 1}}
        }))
        .unwrap();
        let mut sessions = Vec::new();
        // control: 2 of 4 resolved by the bot; eager: 4 of 4.
        for i in 0..8 {
            let escalated = i < 2;
            let mut s = session(
                &format!("s{i}"),
                if escalated {
                    SessionStatus::Escalated
                } else {
                    SessionStatus::Open
                },
                vec![turn(Role::Customer, MONDAY, None)],
            );
            s.variants.insert(
                "bands".into(),
                if i < 4 { "control" } else { "eager" }.into(),
            );
            sessions.push(s);
        }
        let feedback = vec![vote("s4", Some(true), Some(4)), vote("s5", None, Some(5))];
        let results = experiment_results(&experiments, &sessions, &feedback);
        assert_eq!(results.len(), 1);
        let [control, eager] = &results[0].variants[..] else {
            panic!("{results:?}")
        };
        assert_eq!(
            (control.variant.as_str(), eager.variant.as_str()),
            ("control", "eager")
        );
        assert_eq!(control.bot_resolution.rate, Some(0.5));
        assert_eq!(eager.bot_resolution.rate, Some(1.0));
        assert_eq!(control.escalation.count, 2);
        assert_eq!(control.resolution_p_value, None);
        // pooled 6/8: z = 0.5 / sqrt(0.75 * 0.25 * 0.5) = 1.633, p = 0.1025
        let p = eager.resolution_p_value.unwrap();
        assert!((p - 0.102_470).abs() < 1e-4, "{p}");
        assert_eq!(eager.csat.mean, Some(4.5));
        assert_eq!((eager.helpful.count, eager.helpful.total), (1, 1));
    }

    /// `--days 7` means seven dates, today's included, and says so in
    /// the heading, the JSON and the page alike; a scheduled week is the
    /// seven whole days before the run.
    #[test]
    fn a_seven_day_report_covers_and_names_seven_dates() {
        let saturday_afternoon = MONDAY + 5 * 24 * HOUR + 15 * HOUR;
        let window = Window::last_days(7, saturday_afternoon);
        assert_eq!(window.from_ms, MONDAY - 24 * HOUR);
        assert_eq!(window.to_ms, saturday_afternoon);
        let (experiments, sla, labels) =
            (Experiments::default(), SlaPolicy::default(), HashMap::new());
        let report = build(&ReportInput {
            from_ms: window.from_ms,
            to_ms: window.to_ms,
            ..input(&[], &[], &experiments, &sla, &labels)
        });
        assert_eq!(
            (
                report.period.from.as_str(),
                report.period.to.as_str(),
                report.period.days
            ),
            ("2026-11-22", "2026-11-28", 7)
        );
        assert!(
            summary(&report)
                .starts_with("Switchboard report, 2026-11-22 to 2026-11-28 (7 days, UTC)")
        );
        assert!(
            crate::report_html::render(&report).contains("2026-11-22 to 2026-11-28 (7 days, UTC)")
        );
        assert_eq!(
            Window::last_days(1, saturday_afternoon).from_ms,
            MONDAY + 5 * 24 * HOUR
        );

        let next_monday = MONDAY + 7 * 24 * HOUR + 7 * HOUR;
        let week = Window::days_before_today(7, next_monday);
        assert_eq!(
            (week.from_ms, week.to_ms),
            (MONDAY, MONDAY + 7 * 24 * HOUR - 1)
        );
        let report = build(&ReportInput {
            from_ms: week.from_ms,
            to_ms: week.to_ms,
            ..input(&[], &[], &experiments, &sla, &labels)
        });
        assert_eq!(
            (
                report.period.from.as_str(),
                report.period.to.as_str(),
                report.period.days
            ),
            ("2026-11-23", "2026-11-29", 7)
        );
    }

    #[test]
    fn an_empty_period_has_no_figures() {
        let (experiments, sla, labels) =
            (Experiments::default(), SlaPolicy::default(), HashMap::new());
        let report = build(&input(&[], &[], &experiments, &sla, &labels));
        assert_eq!(
            (
                report.conversations,
                report.peak_hour_utc,
                report.satisfaction.average
            ),
            (0, None, None)
        );
        assert!(summary(&report).contains("Conversations"));
    }

    #[test]
    fn weekdays_and_dates_are_utc() {
        assert_eq!(weekday_hour(MONDAY + 14 * HOUR), (0, 14));
        assert_eq!(weekday_hour(0), (3, 0), "1970-01-01 was a Thursday");
        assert_eq!(
            date_time(MONDAY + 14 * HOUR + 5 * 60_000),
            "2026-11-23 14:05"
        );
        assert_eq!(duration(90_000), "1 min");
    }
}
