//! Conversations with their transcripts, and the escalation tickets built from them.

use serde::{Deserialize, Serialize};

use crate::model::{ConversationKey, InboundMessage, ReplyContext, Tier};
use crate::routing::{EscalationReason, FaqCandidate, Language};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Bot,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub at_ms: i64,
    /// The provider's message id for customer turns; our reply id for ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The FAQ entry a bot turn answered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faq_entry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Who wrote an agent's turn (its text is what the customer received).
    /// Older transcripts have none and carry "<agent>: " in the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl Turn {
    /// One of our replies, not from the FAQ (a welcome, a thank-you, a survey).
    pub fn bot(text: String, at_ms: i64, reply_id: String) -> Self {
        Self {
            role: Role::Bot,
            text,
            at_ms,
            message_id: Some(reply_id),
            faq_entry: None,
            confidence: None,
            agent: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// The bot is handling it.
    Open,
    /// Waiting for or with a person.
    Escalated,
    Resolved,
}

/// A conversation and its transcript. `version` is the optimistic-concurrency
/// token: a store only saves a session whose version matches the stored one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub key: ConversationKey,
    pub channel: String,
    pub account_id: String,
    pub conversation_id: String,
    pub customer_id: String,
    pub status: SessionStatus,
    pub language: Language,
    pub turns: Vec<Turn>,
    /// How to reply in this conversation (thread, email headers) as of the
    /// customer's latest message; agents' replies use it.
    #[serde(default)]
    pub reply: ReplyContext,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// 0 for a session that has never been saved.
    pub version: u64,
    /// Set when the conversation is handed to a person; kept after it is resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// The FAQ entries of the numbered menu last shown, so that "2" answers
    /// the second; cleared when the customer asks something else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub menu: Vec<String>,
    /// The last question we asked the customer, so that a reply of "1"
    /// means what it asked: a menu entry, a helpful vote, or a score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// When "was this helpful?" was last asked (asked at most once an interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful_asked_at_ms: Option<i64>,
    /// What became of our replies (by reply id), as the outbound sender
    /// records it. A reply of ours with no entry here is still queued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<Delivery>,
    /// The customer's variant of each A/B experiment (experiment name to
    /// variant), recorded when the conversation meets the experiment.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub variants: std::collections::BTreeMap<String, String>,
}

/// A question of ours the customer's next message may answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pending {
    /// The numbered menu (its entries in `Session::menu`).
    Menu,
    /// "Was this helpful?" about the FAQ entry `faq_id`.
    Helpful { faq_id: String },
    /// The satisfaction survey after a resolve.
    Satisfaction,
}

/// Where a reply of ours stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting in the outbound queue, or being retried.
    Queued,
    Delivered,
    /// Given up: in the dead letters.
    Failed,
    /// Not sent, on purpose (see `SendError::Withheld`).
    Withheld,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Withheld => "withheld",
        }
    }
}

/// The delivery of one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub reply_id: String,
    pub state: DeliveryState,
    /// Attempts at sending so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the state was last recorded (unix ms).
    pub at_ms: i64,
    /// Why the last attempt failed (the provider's refusal, an outage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Sessions keep the deliveries of this many replies; older ones are dropped.
pub const MAX_DELIVERIES: usize = 100;

/// Longest preview of the customer's last message in a summary, in characters.
pub const PREVIEW_CHARS: usize = 140;

/// What the agents' list shows of a conversation waiting for a person; kept
/// beside the session so the list never reads transcripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub key: ConversationKey,
    pub channel: String,
    pub customer_id: String,
    pub language: Language,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// The customer's last message, cut to [`PREVIEW_CHARS`].
    #[serde(default)]
    pub preview: String,
    pub updated_at_ms: i64,
}

/// One of a customer's conversations as the agents see it beside another:
/// kept beside the session (like [`ConversationSummary`]) so that listing a
/// customer's conversations never reads transcripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationBrief {
    pub key: ConversationKey,
    pub channel: String,
    pub status: SessionStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The customer's first message, cut to [`PREVIEW_CHARS`] as the
    /// waiting list's preview is.
    #[serde(default)]
    pub first_line: String,
}

/// A hand-over to a person: when, for whom, why, and what the agents have done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    pub at_ms: i64,
    pub tier: Tier,
    pub reason: EscalationReason,
    pub priority: bool,
    /// The agent who claimed the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// When an agent first answered (stops the reassurance and SLA timers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_answered_at_ms: Option<i64>,
    /// When the first-response target passed without an agent's answer
    /// (the breach the reports count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at_ms: Option<i64>,
    /// When an agent's first answer is due, by the service level in force at
    /// the hand-over (later changes to `[sla.*]` do not move it). Absent on
    /// hand-overs stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_due_ms: Option<i64>,
    /// When an agent resolved the conversation (what the customer does
    /// afterwards, the survey's answer say, does not lengthen the resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<i64>,
    /// The FAQ entries the matcher considered when the conversation was
    /// handed over, best first: answers an agent may start from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<FaqCandidate>,
}

impl Handover {
    /// Whether the customer is still waiting for a person's first answer.
    pub fn waiting(&self) -> bool {
        self.agent_answered_at_ms.is_none()
    }

    /// When an agent's first answer is due: as promised at the hand-over,
    /// or by `sla` for hand-overs stored before the promise was kept.
    pub fn first_response_due(&self, sla: &crate::SlaPolicy) -> i64 {
        self.first_response_due_ms
            .unwrap_or_else(|| sla.first_response_deadline_ms(self.tier, self.at_ms))
    }
}

/// Sessions keep at most this many turns; older ones are dropped first.
pub const MAX_TURNS: usize = 200;

impl Session {
    /// Moves the conversation to `status`; entering `Resolved` records when
    /// on the hand-over (the end of its time to resolution).
    pub fn set_status(&mut self, status: SessionStatus, now_ms: i64) {
        if status == SessionStatus::Resolved
            && self.status != SessionStatus::Resolved
            && let Some(handover) = &mut self.handover
        {
            handover.resolved_at_ms = Some(now_ms);
        }
        self.status = status;
    }

    pub fn start(message: &InboundMessage, language: Language, now_ms: i64) -> Self {
        Self {
            key: message.conversation_key(),
            channel: message.channel.clone(),
            account_id: message.account_id.clone(),
            conversation_id: message.conversation_id.clone(),
            customer_id: message.customer_id.clone(),
            status: SessionStatus::Open,
            language,
            turns: Vec::new(),
            reply: message.reply.clone(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            version: 0,
            handover: None,
            menu: Vec::new(),
            pending: None,
            helpful_asked_at_ms: None,
            deliveries: Vec::new(),
            variants: Default::default(),
        }
    }

    /// The recorded delivery of our reply `reply_id`, if any.
    pub fn delivery(&self, reply_id: &str) -> Option<&Delivery> {
        self.deliveries.iter().find(|d| d.reply_id == reply_id)
    }

    /// Records (or replaces) the delivery of a reply, keeping the newest
    /// [`MAX_DELIVERIES`].
    pub fn record_delivery(&mut self, delivery: Delivery) {
        self.deliveries.retain(|d| d.reply_id != delivery.reply_id);
        self.deliveries.push(delivery);
        if self.deliveries.len() > MAX_DELIVERIES {
            let excess = self.deliveries.len() - MAX_DELIVERIES;
            self.deliveries.drain(..excess);
        }
    }

    /// The summary the agents' list shows.
    pub fn summary(&self) -> ConversationSummary {
        let preview = self
            .turns
            .iter()
            .rev()
            .find(|turn| turn.role == Role::Customer)
            .map(|turn| turn.text.chars().take(PREVIEW_CHARS).collect())
            .unwrap_or_default();
        ConversationSummary {
            key: self.key.clone(),
            channel: self.channel.clone(),
            customer_id: self.customer_id.clone(),
            language: self.language,
            // The list shows no FAQ candidates: the summary stays small.
            handover: self.handover.clone().map(|handover| Handover {
                candidates: Vec::new(),
                ..handover
            }),
            preview,
            updated_at_ms: self.updated_at_ms,
        }
    }

    /// The brief a customer's list of conversations shows.
    pub fn brief(&self) -> ConversationBrief {
        let first_line = self
            .turns
            .iter()
            .find(|turn| turn.role == Role::Customer)
            .map(|turn| turn.text.chars().take(PREVIEW_CHARS).collect())
            .unwrap_or_default();
        ConversationBrief {
            key: self.key.clone(),
            channel: self.channel.clone(),
            status: self.status,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            first_line,
        }
    }

    /// The customer's key, `channel:customer_id` (as
    /// [`InboundMessage::customer_key`]): the same person in every
    /// conversation on that channel.
    pub fn customer_key(&self) -> String {
        format!("{}:{}", self.channel, self.customer_id)
    }

    /// Whether a customer turn for this provider message id is already recorded,
    /// which means a redelivery of it has been handled before.
    pub fn has_customer_message(&self, provider_message_id: &str) -> bool {
        self.turns.iter().any(|turn| {
            turn.role == Role::Customer && turn.message_id.as_deref() == Some(provider_message_id)
        })
    }

    /// Appends `turn` unless a turn with its message id is there already (a
    /// retried job's reply); whether it was appended.
    pub fn push_once(&mut self, turn: Turn) -> bool {
        let known =
            turn.message_id.is_some() && self.turns.iter().any(|t| t.message_id == turn.message_id);
        if !known {
            self.push(turn);
        }
        !known
    }

    pub fn push(&mut self, turn: Turn) {
        self.updated_at_ms = self.updated_at_ms.max(turn.at_ms);
        self.turns.push(turn);
        if self.turns.len() > MAX_TURNS {
            let excess = self.turns.len() - MAX_TURNS;
            self.turns.drain(..excess);
        }
    }
}

/// What the agents receive when a conversation needs a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationTicket {
    pub ticket_id: String,
    pub conversation: ConversationKey,
    pub channel: String,
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    pub tier: Tier,
    pub reason: EscalationReason,
    pub priority: bool,
    pub language: Language,
    /// The message that triggered the escalation.
    pub question: String,
    pub transcript: Vec<Turn>,
    /// FAQ entries the matcher considered, best first.
    pub candidates: Vec<FaqCandidate>,
    /// What the customer was promised, e.g. "15 minutes".
    pub expected_response: String,
    pub created_at_ms: i64,
    /// The id ingress gave the message that raised the ticket; every log line
    /// about that message carries it as `correlation_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}
