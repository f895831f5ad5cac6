//! The message pipeline, one code path for AWS Lambda and the local server:
//!
//! * [`ingress::Ingress`]: verify → handshake → parse → dedupe → enqueue → 2xx;
//! * [`worker::ConversationWorker`]: session and customer → FAQ → decision →
//!   reply queued → transcript, or an escalation ticket;
//! * [`notifier::EscalationNotifier`]: tickets → agents;
//! * [`outbound::OutboundSender`]: every reply, from the outbound queue to
//!   the customer's channel, once per reply id;
//! * [`desk::AgentDesk`]: agents' replies and customers' feedback;
//! * [`privacy::CustomerPrivacy`]: a customer's data exported or erased.
//!
//! The stages meet only through the ports of `switchboard-domain`.

pub mod access;
pub mod agents_api;
pub mod console;
pub mod desk;
pub mod faq;
pub mod http;
pub mod ingress;
pub mod notifier;
pub mod outbound;
pub mod payload;
pub mod privacy;
pub mod report;
pub mod report_html;
pub mod stats;
pub mod suggest;
pub mod survey;
pub mod timers;
pub mod weekly;
pub mod worker;

use switchboard_domain::{JobFailure, QueueError, SendError, StoreError, error_chain};

/// How a queued job failed, which decides whether the queue tries again. It
/// prints its whole cause (queues keep the text with the job) and exposes no
/// source of its own.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (store or provider temporarily unavailable).
    #[error("retryable: {}", error_chain(.0.as_ref()))]
    Retryable(Box<dyn std::error::Error + Send + Sync>),
    /// Will fail the same way every time (unreadable job): straight to the dead letters.
    #[error("permanent: {}", error_chain(.0.as_ref()))]
    Permanent(Box<dyn std::error::Error + Send + Sync>),
}

impl JobError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, JobError::Retryable(_))
    }
}

impl JobFailure for JobError {
    fn is_permanent(&self) -> bool {
        !self.is_retryable()
    }

    fn cause_key(&self) -> String {
        let (JobError::Retryable(source) | JobError::Permanent(source)) = self;
        if let Some(send) = source.downcast_ref::<SendError>() {
            format!("send:{}", send.channel())
        } else if let Some(queue) = source.downcast_ref::<QueueError>() {
            format!("queue:{}", queue.queue.as_str())
        } else if source.is::<StoreError>() {
            "store".to_owned()
        } else if source.is::<serde_json::Error>() {
            "unreadable".to_owned()
        } else {
            "other".to_owned()
        }
    }

    fn retry_after_ms(&self) -> Option<i64> {
        let JobError::Retryable(source) = self else {
            return None;
        };
        let wait = source.downcast_ref::<SendError>()?.retry_after()?;
        Some(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
    }
}

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt { .. } => JobError::Permanent(Box::new(error)),
            other => JobError::Retryable(Box::new(other)),
        }
    }
}

/// How long finished idempotency records are kept: longer than any provider
/// retries (Mailgun retries for 8 hours, Telegram keeps updates for 24 hours).
/// Attempts at saving a session that others keep changing (optimistic
/// concurrency), for every stage that writes sessions.
pub(crate) const SAVE_ATTEMPTS: usize = 8;

pub const DEDUPE_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A stable short id derived from a key, for ticket and reply ids.
pub fn stable_id(prefix: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    format!("{prefix}-{}", hex::encode(&digest[..12]))
}
