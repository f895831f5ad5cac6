//! The agents' side: the list of conversations waiting for a person, a
//! conversation with its transcript, claiming, replying (queued for the
//! outbound sender, once per idempotency key), resolving, customers' tiers,
//! and the customers' feedback.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_domain::feedback::CsatSettings;
use switchboard_domain::model::MAX_CONVERSATION_KEY_BYTES;
use switchboard_domain::{
    AGENT_REPLY_PREFIX, Claim, Clock, ConversationKey, ConversationSummary, CustomerStore,
    Delivery, DeliveryState, Feedback, FeedbackStore, IdempotencyStore, OutboundReply,
    QueueProducer, Role, Session, SessionStatus, SessionStore, SlaPolicy, StoreError, Tier, Turn,
};
use tracing::info;
use utoipa::ToSchema;

use crate::ingress::new_correlation_id;
use crate::{DEDUPE_RETENTION_MS, JobError, SAVE_ATTEMPTS, outbound, stable_id};

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("no conversation {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but not acceptable (an unknown tier).
    #[error("{0}")]
    Unprocessable(String),
    /// Another agent got there first, or the same request is still under way.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the reply could not be queued")]
    Queue(#[source] JobError),
}

impl DeskError {
    pub fn status(&self) -> u16 {
        match self {
            DeskError::NotFound(_) => 404,
            DeskError::Invalid(_) => 400,
            DeskError::Unprocessable(_) => 422,
            DeskError::Conflict(_) => 409,
            DeskError::Store(StoreError::Conflict(_)) => 409,
            DeskError::Store(_) | DeskError::Queue(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            DeskError::NotFound(_) => "not_found",
            DeskError::Invalid(_) => "bad_request",
            DeskError::Unprocessable(_) => "unprocessable",
            DeskError::Conflict(_) | DeskError::Store(StoreError::Conflict(_)) => "conflict",
            DeskError::Store(_) | DeskError::Queue(_) => "unavailable",
        }
    }
}

/// An agent's answer to a conversation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentReply {
    /// The reply, as the customer will read it.
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
    /// Who answered, for the transcript (default: the token's holder).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub agent: Option<String>,
    /// Close the conversation after this reply; the bot answers again afterwards.
    #[serde(default)]
    pub resolve: bool,
}

/// Who claims or resolves a conversation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// The agent's name (default: the token's holder).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub agent: Option<String>,
}

/// A customer's tier.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierInput {
    /// `new`, `regular` or `vip`.
    #[schema(example = "vip")]
    pub tier: String,
}

/// A customer's feedback on a conversation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    /// The conversation's key, `channel:account:conversation`.
    pub conversation: String,
    #[serde(default)]
    pub helpful: Option<bool>,
    /// 1 to 5.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5)]
    pub satisfaction: Option<u8>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// The hand-over of a conversation to a person.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoverView {
    /// When the bot handed over (unix ms).
    pub at_ms: i64,
    /// `new`, `regular` or `vip`, when handed over.
    pub tier: String,
    /// Why: `asked_for_human`, `negative_sentiment`, `no_confident_match`, ...
    pub reason: String,
    pub priority: bool,
    /// How long the customer has waited for a person (ms; 0 once answered).
    pub waiting_ms: i64,
    /// When an agent's first answer is due (unix ms), by the tier's service level.
    pub first_response_due_ms: i64,
    pub claimed_by: Option<String>,
    pub agent_answered_at_ms: Option<i64>,
    /// The FAQ entries considered at the hand-over, best first: answers to start from.
    pub candidates: Vec<CandidateView>,
}

/// An FAQ entry an agent may start an answer from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CandidateView {
    pub entry_id: String,
    pub question: String,
    /// The answer in the customer's language.
    pub answer: String,
    /// The matcher's calibrated confidence (0-1).
    pub confidence: f32,
}

/// One conversation in the waiting list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitingConversation {
    /// `channel:account:conversation`: the `{key}` of the other routes.
    pub key: String,
    pub channel: String,
    /// The customer's key, `channel:customer_id` (for `PUT /api/customers/{key}`).
    pub customer: String,
    pub tier: String,
    pub reason: String,
    pub priority: bool,
    pub handed_over_at_ms: i64,
    pub waiting_ms: i64,
    pub first_response_due_ms: i64,
    pub claimed_by: Option<String>,
    /// The customer's last message, shortened.
    pub preview: String,
    pub language: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<WaitingConversation>,
    /// How many conversations are waiting in all (the list may be cut at `limit`).
    pub total: usize,
}

/// What became of a reply of ours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `queued`, `delivered`, `failed` or `withheld` (not sent on purpose: an address that bounces, the daily cap on automatic email replies).
    pub state: String,
    pub attempts: u32,
    pub at_ms: Option<i64>,
    /// Why the last attempt failed.
    pub reason: Option<String>,
}

/// One turn of the transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnView {
    /// `customer`, `bot` or `agent`.
    pub role: String,
    pub text: String,
    pub at_ms: i64,
    /// The provider's message id (customer) or our reply id (bot, agent).
    pub message_id: Option<String>,
    /// For our replies: their delivery.
    pub delivery: Option<DeliveryView>,
    /// For the bot's answers: the FAQ entry answered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faq_entry: Option<String>,
    /// For the bot's answers: the matcher's confidence in that entry (0-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// For an agent's reply: who wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// A conversation with its transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationView {
    pub key: String,
    pub channel: String,
    pub customer: String,
    /// `open` (the bot has it), `escalated` (waiting for or with a person), `resolved`.
    pub status: String,
    pub language: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub handover: Option<HandoverView>,
    pub turns: Vec<TurnView>,
    /// The same customer's other conversations (another email thread, or a
    /// key written on before), the most recently updated first, at most 20.
    pub earlier: Vec<EarlierConversation>,
}

/// Another conversation of the same customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EarlierConversation {
    /// The `{key}` to open it by.
    pub key: String,
    pub channel: String,
    /// `open`, `escalated` or `resolved`.
    pub status: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The customer's first message in it, shortened.
    pub first_line: String,
}

/// A reply accepted for delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplyAccepted {
    pub reply_id: String,
    /// `queued` when accepted; a repeated request shows the state now.
    pub state: String,
    pub conversation: String,
}

/// The customer's stored tier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerTier {
    pub customer: String,
    pub tier: String,
}

/// Longest feedback comment kept.
const MAX_COMMENT_CHARS: usize = 2000;
/// Longest reply an agent may send.
pub const MAX_REPLY_CHARS: usize = 20_000;
/// Longest agent name.
const MAX_AGENT_CHARS: usize = 200;
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;
/// At most this many waiting conversations are read for the list.
pub const MAX_WAITING: usize = 10_000;
/// A conversation lists at most this many of the customer's others.
pub const MAX_EARLIER: usize = 20;
/// How long an agent's reply request holds its idempotency key while it runs.
const REPLY_LEASE_MS: i64 = 30_000;

pub struct AgentDesk {
    pub sessions: Arc<dyn SessionStore>,
    pub customers: Arc<dyn CustomerStore>,
    pub feedback: Arc<dyn FeedbackStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The outbound queue agents' replies leave by.
    pub queue: Arc<dyn QueueProducer>,
    pub clock: Arc<dyn Clock>,
    /// Service levels, for the first-response deadline.
    pub sla: SlaPolicy,
    /// The satisfaction survey a resolve schedules (`[feedback.csat]`).
    pub csat: CsatSettings,
}

/// A conversation key as the routes take it: `channel:account:conversation`.
fn conversation_key(key: &str) -> Result<ConversationKey, DeskError> {
    let mut parts = key.splitn(3, ':');
    let channel = parts.next().unwrap_or_default();
    let account = parts.next();
    let conversation = parts.next();
    let channel_ok = !channel.is_empty()
        && channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !channel_ok
        || account.is_none()
        || conversation.is_none_or(str::is_empty)
        || key.len() > MAX_CONVERSATION_KEY_BYTES
        || key.chars().any(char::is_control)
    {
        return Err(DeskError::Invalid(format!(
            "a conversation is named CHANNEL:ACCOUNT:CONVERSATION (for example telegram:bot:12345), at most {MAX_CONVERSATION_KEY_BYTES} bytes"
        )));
    }
    Ok(ConversationKey(key.to_owned()))
}

/// The agent's name: given, else the token's holder; bounded, no control characters.
fn agent_name(given: Option<&str>, caller: &str) -> Result<String, DeskError> {
    let name = given
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(caller);
    if name.chars().count() > MAX_AGENT_CHARS || name.chars().any(char::is_control) {
        return Err(DeskError::Invalid(format!(
            "agent must be at most {MAX_AGENT_CHARS} characters, without control characters"
        )));
    }
    Ok(name.to_owned())
}

fn handover_view(
    session_handover: &switchboard_domain::Handover,
    sla: &SlaPolicy,
    now_ms: i64,
) -> HandoverView {
    HandoverView {
        at_ms: session_handover.at_ms,
        tier: session_handover.tier.as_str().to_owned(),
        reason: session_handover.reason.as_str().to_owned(),
        priority: session_handover.priority,
        waiting_ms: match session_handover.agent_answered_at_ms {
            Some(_) => 0,
            None => now_ms.saturating_sub(session_handover.at_ms).max(0),
        },
        first_response_due_ms: session_handover.first_response_due(sla),
        claimed_by: session_handover.claimed_by.clone(),
        agent_answered_at_ms: session_handover.agent_answered_at_ms,
        candidates: session_handover
            .candidates
            .iter()
            .map(|candidate| CandidateView {
                entry_id: candidate.entry_id.clone(),
                question: candidate.question.clone(),
                answer: candidate.answer.clone(),
                confidence: candidate.confidence,
            })
            .collect(),
    }
}

fn status_name(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Open => "open",
        SessionStatus::Escalated => "escalated",
        SessionStatus::Resolved => "resolved",
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Bot => "bot",
        Role::Agent => "agent",
    }
}

fn language_name(language: switchboard_domain::Language) -> String {
    serde_json::to_value(language)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn delivery_view(delivery: Option<&Delivery>) -> DeliveryView {
    match delivery {
        Some(delivery) => DeliveryView {
            state: delivery.state.as_str().to_owned(),
            attempts: delivery.attempts,
            at_ms: Some(delivery.at_ms),
            reason: delivery.reason.clone(),
        },
        None => DeliveryView {
            state: DeliveryState::Queued.as_str().to_owned(),
            attempts: 0,
            at_ms: None,
            reason: None,
        },
    }
}

impl AgentDesk {
    /// The conversations waiting for or with a person: VIP first, then the
    /// longest waiting; at most `limit` of them.
    pub async fn waiting(&self, limit: usize) -> Result<ConversationList, DeskError> {
        let mut summaries = self.sessions.escalated(MAX_WAITING).await?;
        let now_ms = self.clock.now_ms();
        let order = |summary: &ConversationSummary| {
            let handover = summary.handover.as_ref();
            (
                !handover.is_some_and(|h| h.tier == Tier::Vip),
                handover.map_or(summary.updated_at_ms, |h| h.at_ms),
                summary.key.0.clone(),
            )
        };
        summaries.sort_by_cached_key(order);
        let total = summaries.len();
        let conversations = summaries
            .into_iter()
            .take(limit)
            .map(|summary| {
                let handover = summary
                    .handover
                    .as_ref()
                    .map(|h| handover_view(h, &self.sla, now_ms));
                WaitingConversation {
                    customer: format!("{}:{}", summary.channel, summary.customer_id),
                    key: summary.key.0,
                    channel: summary.channel,
                    tier: handover
                        .as_ref()
                        .map_or("regular", |h| h.tier.as_str())
                        .to_owned(),
                    reason: handover
                        .as_ref()
                        .map(|h| h.reason.clone())
                        .unwrap_or_default(),
                    priority: handover.as_ref().is_some_and(|h| h.priority),
                    handed_over_at_ms: handover.as_ref().map_or(summary.updated_at_ms, |h| h.at_ms),
                    waiting_ms: handover.as_ref().map_or(0, |h| h.waiting_ms),
                    first_response_due_ms: handover
                        .as_ref()
                        .map_or(summary.updated_at_ms, |h| h.first_response_due_ms),
                    claimed_by: handover.and_then(|h| h.claimed_by),
                    preview: summary.preview,
                    language: language_name(summary.language),
                }
            })
            .collect();
        Ok(ConversationList {
            conversations,
            total,
        })
    }

    async fn load(&self, key: &ConversationKey) -> Result<Session, DeskError> {
        self.sessions
            .load(key)
            .await?
            .ok_or_else(|| DeskError::NotFound(key.0.clone()))
    }

    /// A conversation with its transcript and the delivery of our replies.
    pub async fn conversation(&self, key: &str) -> Result<ConversationView, DeskError> {
        let key = conversation_key(key)?;
        let session = self.load(&key).await?;
        let now_ms = self.clock.now_ms();
        let turns = session
            .turns
            .iter()
            .map(|turn| TurnView {
                role: role_name(turn.role).to_owned(),
                text: turn.text.clone(),
                at_ms: turn.at_ms,
                message_id: turn.message_id.clone(),
                delivery: match (turn.role, &turn.message_id) {
                    (Role::Bot | Role::Agent, Some(id)) => {
                        Some(delivery_view(session.delivery(id)))
                    }
                    _ => None,
                },
                faq_entry: turn.faq_entry.clone(),
                confidence: turn.confidence,
                agent: turn.agent.clone(),
            })
            .collect();
        // One more than shown, as the conversation itself is among them.
        let earlier = self
            .sessions
            .customer_conversations(&session.customer_key(), MAX_EARLIER + 1)
            .await?
            .into_iter()
            .filter(|brief| brief.key != session.key)
            .take(MAX_EARLIER)
            .map(|brief| EarlierConversation {
                key: brief.key.0,
                channel: brief.channel,
                status: status_name(brief.status).to_owned(),
                created_at_ms: brief.created_at_ms,
                updated_at_ms: brief.updated_at_ms,
                first_line: brief.first_line,
            })
            .collect();
        Ok(ConversationView {
            key: session.key.0.clone(),
            channel: session.channel.clone(),
            customer: session.customer_key(),
            status: status_name(session.status).to_owned(),
            language: language_name(session.language),
            created_at_ms: session.created_at_ms,
            updated_at_ms: session.updated_at_ms,
            handover: session
                .handover
                .as_ref()
                .map(|h| handover_view(h, &self.sla, now_ms)),
            turns,
            earlier,
        })
    }

    /// Loads, changes and saves the session with optimistic concurrency;
    /// `change` sees the latest version on every attempt.
    async fn update<T>(
        &self,
        key: &ConversationKey,
        mut change: impl FnMut(&mut Session) -> Result<T, DeskError>,
    ) -> Result<T, DeskError> {
        for _ in 0..SAVE_ATTEMPTS {
            let mut session = self.load(key).await?;
            let outcome = change(&mut session)?;
            match self.sessions.save(&session).await {
                Ok(_) => return Ok(outcome),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(DeskError::Store(StoreError::Conflict(key.0.clone())))
    }

    /// Takes the conversation for `agent`. Claiming it again is fine; one
    /// another agent holds is a conflict.
    pub async fn claim(
        &self,
        key: &str,
        input: &AgentInput,
        caller: &str,
    ) -> Result<ConversationView, DeskError> {
        let key = conversation_key(key)?;
        let agent = agent_name(input.agent.as_deref(), caller)?;
        let now_ms = self.clock.now_ms();
        self.update(&key, |session| {
            if session.status != SessionStatus::Escalated {
                return Err(DeskError::Conflict(format!(
                    "conversation {} is not waiting for a person (status {})",
                    session.key,
                    status_name(session.status)
                )));
            }
            let handover = session
                .handover
                .get_or_insert(switchboard_domain::Handover {
                    at_ms: now_ms,
                    tier: Tier::Regular,
                    reason: switchboard_domain::EscalationReason::AskedForHuman,
                    priority: false,
                    claimed_by: None,
                    agent_answered_at_ms: None,
                    breached_at_ms: None,
                    first_response_due_ms: None,
                    resolved_at_ms: None,
                    candidates: Vec::new(),
                });
            match &handover.claimed_by {
                Some(holder) if *holder != agent => Err(DeskError::Conflict(format!(
                    "conversation {} is claimed by {holder}",
                    session.key
                ))),
                _ => {
                    handover.claimed_by = Some(agent.clone());
                    Ok(())
                }
            }
        })
        .await?;
        info!(conversation = %key, "conversation claimed");
        self.conversation(&key.0).await
    }

    /// Closes the conversation: the bot answers the customer's next message.
    pub async fn resolve(
        &self,
        key: &str,
        input: &AgentInput,
        caller: &str,
    ) -> Result<ConversationView, DeskError> {
        let key = conversation_key(key)?;
        let agent = agent_name(input.agent.as_deref(), caller)?;
        // The survey is queued first: should saving fail, it finds the
        // conversation unresolved when it fires and does nothing.
        let current = self.load(&key).await?;
        if current.status != SessionStatus::Resolved {
            self.schedule_survey(&current).await?;
        }
        let now_ms = self.clock.now_ms();
        self.update(&key, |session| {
            if let Some(handover) = &mut session.handover {
                handover.claimed_by.get_or_insert_with(|| agent.clone());
            }
            session.set_status(SessionStatus::Resolved, now_ms);
            Ok(())
        })
        .await?;
        info!(conversation = %key, "conversation resolved");
        self.conversation(&key.0).await
    }

    /// Queues the satisfaction survey of a conversation being resolved.
    async fn schedule_survey(&self, session: &Session) -> Result<(), DeskError> {
        crate::survey::schedule_survey(
            self.queue.as_ref(),
            &self.csat,
            session,
            self.clock.now_ms(),
        )
        .await
        .map_err(DeskError::Queue)
    }

    /// Queues the agent's reply for delivery on the customer's channel and
    /// records it in the transcript. The same `idempotency_key` on the same
    /// conversation never queues a second reply: a repeat of the same
    /// request gets the first reply's id and its delivery state, the key
    /// with another text, agent or `resolve` is refused (422).
    pub async fn reply(
        &self,
        key: &str,
        idempotency_key: &str,
        input: &AgentReply,
        caller: &str,
    ) -> Result<ReplyAccepted, DeskError> {
        let key = conversation_key(key)?;
        if input.text.trim().is_empty() {
            return Err(DeskError::Invalid("text must not be empty".into()));
        }
        if input.text.chars().count() > MAX_REPLY_CHARS {
            return Err(DeskError::Invalid(format!(
                "text must be at most {MAX_REPLY_CHARS} characters"
            )));
        }
        let agent = agent_name(input.agent.as_deref(), caller)?;
        // The reply id follows from the request, so a retried request (even
        // after a crash half-way) names the same reply, which goes out once.
        let request = format!("{key}\n{idempotency_key}");
        let reply_id = format!(
            "{AGENT_REPLY_PREFIX}{}",
            stable_id("x", &request).trim_start_matches("x-")
        );
        let claim_key = format!("agent-reply:{}", stable_id("k", &request));
        // What the key was first used for, kept with it: a repeat must ask
        // for the same reply, or a new reply would be silently dropped.
        let fingerprint = stable_id(
            "b",
            &serde_json::to_string(&(&agent, input.resolve, &input.text))
                .expect("strings serialise"),
        );
        // An agent's reply is an event of its own: a fresh id follows it to
        // the sender's "reply sent".
        let correlation_id = new_correlation_id();
        let now_ms = self.clock.now_ms();
        let mut session = self.load(&key).await?;
        match self
            .idempotency
            .claim(&claim_key, now_ms, REPLY_LEASE_MS)
            .await?
        {
            Claim::Done => {
                // Keys completed before fingerprints were kept have none: a repeat then.
                let first = self.idempotency.result(&claim_key, now_ms).await?;
                if first.is_some_and(|first| first != fingerprint) {
                    return Err(DeskError::Unprocessable(
                        "this Idempotency-Key was already used for another reply (a different text, agent or resolve); nothing was queued: send a new reply with a new key".into(),
                    ));
                }
                let state = session
                    .delivery(&reply_id)
                    .map_or(DeliveryState::Queued, |d| d.state);
                return Ok(ReplyAccepted {
                    reply_id,
                    state: state.as_str().to_owned(),
                    conversation: key.0,
                });
            }
            Claim::InProgress => {
                return Err(DeskError::Conflict(
                    "a request with this Idempotency-Key is still being handled; try again shortly"
                        .into(),
                ));
            }
            Claim::Acquired | Claim::TakenOver => {}
        }
        let result = async {
            // The transcript first, so the sender always finds the reply to
            // record its delivery on.
            let turn = Turn {
                role: Role::Agent,
                text: input.text.clone(),
                at_ms: now_ms,
                message_id: Some(reply_id.clone()),
                faq_entry: None,
                confidence: None,
                agent: Some(agent.clone()),
            };
            if input.resolve && session.status != SessionStatus::Resolved {
                self.schedule_survey(&session).await?;
            }
            let mut attempts = 0;
            loop {
                attempts += 1;
                if !session
                    .turns
                    .iter()
                    .any(|t| t.message_id.as_deref() == Some(reply_id.as_str()))
                {
                    session.push(turn.clone());
                }
                if session
                    .delivery(&reply_id)
                    .is_none_or(|d| d.state == DeliveryState::Failed)
                {
                    session.record_delivery(Delivery {
                        reply_id: reply_id.clone(),
                        state: DeliveryState::Queued,
                        attempts: 0,
                        at_ms: now_ms,
                        reason: None,
                    });
                }
                if let Some(handover) = &mut session.handover {
                    handover.agent_answered_at_ms.get_or_insert(now_ms);
                    handover.claimed_by.get_or_insert_with(|| agent.clone());
                }
                let status = if input.resolve {
                    SessionStatus::Resolved
                } else {
                    SessionStatus::Escalated
                };
                session.set_status(status, now_ms);
                match self.sessions.save(&session).await {
                    Ok(_) => break,
                    Err(StoreError::Conflict(_)) if attempts < SAVE_ATTEMPTS => {
                        session = self.load(&key).await?;
                    }
                    Err(other) => return Err(DeskError::from(other)),
                }
            }
            let reply = OutboundReply {
                channel: session.channel.clone(),
                account_id: session.account_id.clone(),
                conversation_id: session.conversation_id.clone(),
                customer_id: session.customer_id.clone(),
                text: input.text.clone(),
                reply: session.reply.clone(),
                reply_id: reply_id.clone(),
                choices: Vec::new(),
            };
            outbound::enqueue(self.queue.as_ref(), &key, reply, &correlation_id, now_ms)
                .await
                .map_err(DeskError::Queue)?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
                self.idempotency
                    .complete_with_result(&claim_key, keep_until, &fingerprint)
                    .await?;
                info!(conversation = %key, reply_id, correlation_id, resolve = input.resolve, "agent reply queued");
                Ok(ReplyAccepted {
                    reply_id,
                    state: DeliveryState::Queued.as_str().to_owned(),
                    conversation: key.0,
                })
            }
            Err(error) => {
                // Not queued: the client's retry with the same key may try again.
                if let Err(release) = self.idempotency.release(&claim_key).await {
                    tracing::warn!(error = %release, "could not release the reply's idempotency key");
                }
                Err(error)
            }
        }
    }

    /// Stores a customer's tier; the worker uses it from their next message,
    /// and a hand-over of theirs still waiting for a first answer takes it now.
    pub async fn set_tier(
        &self,
        customer: &str,
        input: &TierInput,
    ) -> Result<CustomerTier, DeskError> {
        let customer = crate::privacy::customer_ref(customer)
            .map_err(|error| DeskError::Invalid(error.to_string()))?;
        let tier: Tier = input.tier.parse().map_err(|()| {
            DeskError::Unprocessable(format!(
                "tier must be one of new, regular, vip (got {:?})",
                input.tier.chars().take(20).collect::<String>()
            ))
        })?;
        let key = customer.key();
        self.customers.set_tier(&key, tier).await?;
        // Conversations of theirs already waiting move with the tier (list
        // order, priority, first-response deadline).
        let waiting: Vec<ConversationKey> = self
            .sessions
            .escalated(MAX_WAITING)
            .await?
            .into_iter()
            .filter(|s| s.channel == customer.channel && s.customer_id == customer.customer_id)
            .map(|s| s.key)
            .collect();
        for conversation in &waiting {
            self.update(conversation, |session| {
                if let Some(handover) = &mut session.handover
                    && handover.agent_answered_at_ms.is_none()
                {
                    handover.tier = tier;
                    handover.priority = tier == Tier::Vip;
                }
                Ok(())
            })
            .await?;
        }
        info!(channel = %customer.channel, tier = tier.as_str(), waiting = waiting.len(), "customer tier set");
        Ok(CustomerTier {
            customer: key,
            tier: tier.as_str().to_owned(),
        })
    }

    /// Validates and stores feedback for an existing conversation.
    pub async fn feedback(&self, input: &FeedbackInput) -> Result<(), DeskError> {
        if input.helpful.is_none() && input.satisfaction.is_none() && input.comment.is_none() {
            return Err(DeskError::Invalid(
                "give at least one of helpful, satisfaction, comment".into(),
            ));
        }
        if let Some(score) = input.satisfaction
            && !(1..=5).contains(&score)
        {
            return Err(DeskError::Invalid(
                "satisfaction must be between 1 and 5".into(),
            ));
        }
        if input
            .comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(DeskError::Invalid(format!(
                "comment must be at most {MAX_COMMENT_CHARS} characters"
            )));
        }
        let key = ConversationKey(input.conversation.clone());
        if input.conversation.len() > MAX_CONVERSATION_KEY_BYTES
            || self.sessions.load(&key).await?.is_none()
        {
            return Err(DeskError::NotFound(input.conversation.clone()));
        }
        let feedback = Feedback {
            conversation: key,
            helpful: input.helpful,
            satisfaction: input.satisfaction,
            comment: input.comment.clone(),
            faq_id: None,
            at_ms: self.clock.now_ms(),
        };
        self.feedback.put(&feedback).await?;
        info!(conversation = %feedback.conversation, "feedback recorded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_keys_are_checked() {
        assert!(conversation_key("telegram:bot:42").is_ok());
        assert!(conversation_key("email:support@shop.test:sb.abc").is_ok());
        assert!(
            conversation_key("slack:T1:C2:1700.1").is_ok(),
            "ids may hold colons"
        );
        for bad in [
            "",
            "telegram",
            "telegram:bot",
            "telegram:bot:",
            "Tele gram:a:b",
            "x:y:\u{7}",
        ] {
            assert!(conversation_key(bad).is_err(), "{bad:?}");
        }
        assert!(conversation_key(&format!("telegram:bot:{}", "9".repeat(700))).is_err());
    }

    #[test]
    fn agent_names_default_to_the_caller_and_are_bounded() {
        assert_eq!(agent_name(None, "lee").unwrap(), "lee");
        assert_eq!(agent_name(Some("  "), "lee").unwrap(), "lee");
        assert_eq!(agent_name(Some("Ann"), "lee").unwrap(), "Ann");
        assert!(agent_name(Some(&"a".repeat(201)), "lee").is_err());
        assert!(agent_name(Some("a\nb"), "lee").is_err());
    }
}
