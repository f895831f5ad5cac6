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
}

/// Sessions keep at most this many turns; older ones are dropped first.
pub const MAX_TURNS: usize = 200;

impl Session {
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
        }
    }

    /// Whether a customer turn for this provider message id is already recorded,
    /// which means a redelivery of it has been handled before.
    pub fn has_customer_message(&self, provider_message_id: &str) -> bool {
        self.turns.iter().any(|turn| {
            turn.role == Role::Customer && turn.message_id.as_deref() == Some(provider_message_id)
        })
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
