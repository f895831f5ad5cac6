//! The agents' side: replying to a customer on their channel, closing a
//! conversation, and recording the customer's feedback.

use std::sync::Arc;

use serde::Deserialize;
use switchboard_domain::{
    AGENT_REPLY_PREFIX, Clock, ConversationKey, Feedback, FeedbackStore, OutboundReply,
    ReplySender, Role, SendError, SessionStatus, SessionStore, StoreError, Turn,
};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("no conversation {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl DeskError {
    pub fn status(&self) -> u16 {
        match self {
            DeskError::NotFound(_) => 404,
            DeskError::Invalid(_) => 400,
            DeskError::Store(_) => 503,
            DeskError::Send(error) if error.is_transient() => 503,
            DeskError::Send(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            DeskError::NotFound(_) => "not_found",
            DeskError::Invalid(_) => "bad_request",
            DeskError::Store(_) => "unavailable",
            DeskError::Send(_) => "send_failed",
        }
    }
}

/// An agent's answer to a conversation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReply {
    pub text: String,
    /// Who answered, for the transcript.
    #[serde(default)]
    pub agent: Option<String>,
    /// Close the conversation after this reply; the bot answers again afterwards.
    #[serde(default)]
    pub resolve: bool,
}

/// A customer's feedback on a conversation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    pub conversation: String,
    #[serde(default)]
    pub helpful: Option<bool>,
    #[serde(default)]
    pub satisfaction: Option<u8>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Longest feedback comment kept.
const MAX_COMMENT_CHARS: usize = 2000;

pub struct AgentDesk {
    pub sessions: Arc<dyn SessionStore>,
    pub feedback: Arc<dyn FeedbackStore>,
    pub replies: Arc<dyn ReplySender>,
    pub clock: Arc<dyn Clock>,
}

impl AgentDesk {
    /// Sends the agent's reply on the customer's channel and records it.
    pub async fn reply(&self, conversation: &str, reply: &AgentReply) -> Result<(), DeskError> {
        if reply.text.trim().is_empty() {
            return Err(DeskError::Invalid("text must not be empty".into()));
        }
        let key = ConversationKey(conversation.to_owned());
        let mut session = self
            .sessions
            .load(&key)
            .await?
            .ok_or_else(|| DeskError::NotFound(conversation.to_owned()))?;
        let now_ms = self.clock.now_ms();
        let reply_id = format!("{AGENT_REPLY_PREFIX}{}", uuid::Uuid::now_v7());
        let outbound = OutboundReply {
            channel: session.channel.clone(),
            account_id: session.account_id.clone(),
            conversation_id: session.conversation_id.clone(),
            customer_id: session.customer_id.clone(),
            text: reply.text.clone(),
            reply: session.reply.clone(),
            reply_id: reply_id.clone(),
        };
        self.replies.send(&outbound).await?;
        info!(conversation = %key, reply_id, "agent reply sent");
        let turn = Turn {
            role: Role::Agent,
            text: match &reply.agent {
                Some(agent) => format!("{agent}: {}", reply.text),
                None => reply.text.clone(),
            },
            at_ms: now_ms,
            message_id: Some(reply_id),
            faq_entry: None,
            confidence: None,
        };
        // The reply is out; record it even if the worker changes the session meanwhile.
        loop {
            session.push(turn.clone());
            // The first answer stops the reassurance and service-level timers.
            if let Some(handover) = session.handover.as_mut() {
                handover.agent_answered_at_ms.get_or_insert(now_ms);
            }
            session.status = if reply.resolve {
                SessionStatus::Resolved
            } else {
                SessionStatus::Escalated
            };
            match self.sessions.save(&session).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => {
                    session = self
                        .sessions
                        .load(&key)
                        .await?
                        .ok_or_else(|| DeskError::NotFound(conversation.to_owned()))?;
                }
                Err(other) => return Err(other.into()),
            }
        }
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
        if self.sessions.load(&key).await?.is_none() {
            return Err(DeskError::NotFound(input.conversation.clone()));
        }
        let feedback = Feedback {
            conversation: key,
            helpful: input.helpful,
            satisfaction: input.satisfaction,
            comment: input.comment.clone(),
            at_ms: self.clock.now_ms(),
        };
        self.feedback.put(&feedback).await?;
        info!(conversation = %feedback.conversation, "feedback recorded");
        Ok(())
    }
}
