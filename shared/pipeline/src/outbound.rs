//! The outbound sender: every reply to a customer, the bot's and the
//! agents', leaves through the outbound queue and is sent here, once per
//! reply id, retried with backoff (a provider's `Retry-After` honoured) and
//! dead-lettered when it cannot be delivered. What became of it is recorded
//! on the conversation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_domain::{
    Claim, Clock, ConversationKey, Delivery, DeliveryState, IdempotencyStore, JobLease,
    OutboundReply, PayloadStore, QueueItem, QueueName, QueueProducer, ReplySender, RetryPolicy,
    SendError, Session, SessionStore, StoreError, error_chain, telemetry,
};
use tracing::{Instrument, info, info_span, warn};

use crate::ingress::new_correlation_id;
use crate::{DEDUPE_RETENTION_MS, JobError, SAVE_ATTEMPTS, payload};

/// How long after queueing a reply its conversation may still be unsaved:
/// the worker queues a new conversation's first reply before it saves the
/// conversation, so a fast sender can get there first.
const UNSAVED_CONVERSATION_GRACE_MS: i64 = 5 * 60 * 1000;

/// Waits for a conversation the worker is about to save (1.2 s in all).
const UNSAVED_WAITS_MS: [u64; 5] = [20, 50, 120, 300, 700];

/// Longest failure reason kept on a conversation, in characters.
const MAX_REASON_CHARS: usize = 300;

/// One reply in the outbound queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundJob {
    pub conversation: ConversationKey,
    pub reply: OutboundReply,
    pub queued_at_ms: i64,
    /// The id that follows the customer's message (or the agent's request)
    /// to the reply's log lines; absent in jobs queued before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Queues `reply` for the outbound sender. The queue item is deduplicated by
/// reply id where the queue can (the local queue); the sender's claim makes
/// sure a reply queued twice still goes out once.
pub async fn enqueue(
    queue: &dyn QueueProducer,
    conversation: &ConversationKey,
    reply: OutboundReply,
    correlation_id: &str,
    now_ms: i64,
) -> Result<(), JobError> {
    let job = OutboundJob {
        conversation: conversation.clone(),
        reply,
        queued_at_ms: now_ms,
        correlation_id: Some(correlation_id.to_owned()),
    };
    let item = QueueItem {
        group: conversation.0.clone(),
        dedupe_id: job.reply.reply_id.clone(),
        body: serde_json::to_vec(&job).expect("outbound jobs serialise"),
    };
    queue
        .send(QueueName::Outbound, item)
        .await
        .map_err(|error| JobError::Retryable(Box::new(error)))
}

pub struct OutboundSender {
    pub replies: Arc<dyn ReplySender>,
    pub sessions: Arc<dyn SessionStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Where jobs too large for the queue are kept.
    pub payloads: Arc<dyn PayloadStore>,
    pub clock: Arc<dyn Clock>,
    /// The queue's retry policy, to know a last attempt (then the reply is
    /// recorded as failed: it goes to the dead letters).
    pub retry: RetryPolicy,
}

/// The idempotency key of a reply's delivery.
pub fn delivery_key(reply_id: &str) -> String {
    format!("sent:{reply_id}")
}

impl OutboundSender {
    /// Processes one delivery of a job from the outbound queue; `true` when
    /// this delivery sent the reply, `false` when an earlier one had.
    pub async fn handle(&self, body: &[u8], job: &JobLease) -> Result<bool, JobError> {
        let body = payload::resolve(self.payloads.as_ref(), body).await?;
        let outbound: OutboundJob =
            serde_json::from_slice(&body).map_err(|error| JobError::Permanent(Box::new(error)))?;
        let correlation_id = outbound
            .correlation_id
            .clone()
            .unwrap_or_else(new_correlation_id);
        let span = info_span!("reply", correlation_id = %correlation_id);
        self.send(&outbound, job).instrument(span).await
    }

    async fn send(&self, outbound: &OutboundJob, job: &JobLease) -> Result<bool, JobError> {
        let reply = &outbound.reply;
        let key = delivery_key(&reply.reply_id);
        let now_ms = self.clock.now_ms();
        // The send must be over before the queue may hand the job to another consumer.
        if !job.can_start_send(now_ms) {
            return Err(JobError::Retryable(
                "too little of the job's lease is left to send the reply".into(),
            ));
        }
        match self
            .idempotency
            .claim(&key, now_ms, job.claim_ms(now_ms))
            .await?
        {
            Claim::Acquired => {}
            // The delivery before died while sending: the provider may have
            // the reply already, and nothing can tell.
            Claim::TakenOver => {
                return Err(self
                    .uncertain(
                        outbound,
                        job.attempt,
                        "an earlier attempt died while sending it",
                    )
                    .await);
            }
            Claim::Done => {
                // Sent before; make sure the conversation says so.
                self.record(outbound, DeliveryState::Delivered, job.attempt, None)
                    .await?;
                return Ok(false);
            }
            Claim::InProgress => {
                return Err(JobError::Retryable(
                    "the reply is being sent by another attempt".into(),
                ));
            }
        }
        let sending = std::time::Instant::now();
        match self.replies.send(reply).await {
            Ok(()) => {
                let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
                self.idempotency.complete(&key, keep_until).await?;
                info!(
                    channel = %reply.channel,
                    reply_id = %reply.reply_id,
                    agent = reply.is_from_agent(),
                    attempt = job.attempt,
                    send_ms = sending.elapsed().as_millis() as u64,
                    queued_ms = self.clock.now_ms().saturating_sub(outbound.queued_at_ms),
                    "reply sent"
                );
                // The reply is out: a failure to record it must not send it again
                // (a retry finds the claim done and records it then).
                self.record(outbound, DeliveryState::Delivered, job.attempt, None)
                    .await?;
                Ok(true)
            }
            Err(SendError::Withheld { reason, .. }) => {
                // Decided, not failed: never sent, retried or dead-lettered.
                let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
                self.idempotency.complete(&key, keep_until).await?;
                info!(channel = %reply.channel, reply_id = %reply.reply_id, reason, "reply withheld");
                self.record(
                    outbound,
                    DeliveryState::Withheld,
                    job.attempt,
                    Some(reason.to_owned()),
                )
                .await?;
                Ok(false)
            }
            Err(error) if error.may_have_delivered() => {
                telemetry::reply_failed(&reply.channel);
                warn!(channel = %reply.channel, reply_id = %reply.reply_id, error = %error, "reply failed mid-request");
                // The claim stays taken: a redelivery finds it and does not send.
                Err(self
                    .uncertain(outbound, job.attempt, "the send failed mid-request")
                    .await)
            }
            Err(error) => {
                if let Err(release_error) = self.idempotency.release(&key).await {
                    warn!(error = %release_error, "could not release the delivery claim");
                }
                telemetry::reply_failed(&reply.channel);
                let last = !error.is_transient() || !self.retry.retries_after(job.attempt);
                warn!(channel = %reply.channel, reply_id = %reply.reply_id, attempt = job.attempt, transient = error.is_transient(), last, error = %error, "reply failed");
                let state = if last {
                    DeliveryState::Failed
                } else {
                    DeliveryState::Queued
                };
                if let Err(record_error) = self
                    .record(outbound, state, job.attempt, Some(reason(&error)))
                    .await
                {
                    warn!(error = %error_chain(&record_error), "could not record the failed delivery");
                }
                // A refusal for good (a chat the bot may not write to, an
                // address the mail server does not know) goes to the dead
                // letters at once; anything else is retried with backoff.
                Err(if error.is_transient() {
                    JobError::Retryable(Box::new(error))
                } else {
                    JobError::Permanent(Box::new(error))
                })
            }
        }
    }

    /// The session, waiting a moment when it is not saved yet: the worker
    /// queues a new conversation's first reply just before it saves the
    /// conversation, and a retry would hold up the conversation's next
    /// replies (its queue group) for the whole retry delay.
    async fn load_soon_saved(&self, outbound: &OutboundJob) -> Result<Option<Session>, StoreError> {
        let conversation = &outbound.conversation;
        for wait_ms in UNSAVED_WAITS_MS {
            if let Some(session) = self.sessions.load(conversation).await? {
                return Ok(Some(session));
            }
            let age_ms = self.clock.now_ms().saturating_sub(outbound.queued_at_ms);
            if age_ms >= UNSAVED_CONVERSATION_GRACE_MS {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        }
        self.sessions.load(conversation).await
    }

    /// A reply that may or may not have reached the customer is not sent
    /// again, so that nobody gets it twice: it is recorded as failed on the
    /// conversation and goes to the dead letters (alarmed) for a person to
    /// check with the customer.
    async fn uncertain(&self, outbound: &OutboundJob, attempt: u32, why: &str) -> JobError {
        let reply = &outbound.reply;
        warn!(channel = %reply.channel, reply_id = %reply.reply_id, delivery_uncertain = true, "{why}: the reply may have reached the customer; not sent again");
        let reason = format!("{why}; it may have reached the customer, so it is not sent again");
        if let Err(record_error) = self
            .record(
                outbound,
                DeliveryState::Failed,
                attempt,
                Some(reason.clone()),
            )
            .await
        {
            warn!(error = %error_chain(&record_error), "could not record the uncertain delivery");
        }
        JobError::Permanent(reason.into())
    }

    /// Records the delivery on the conversation, unless a later state is
    /// already there (a redriven reply that failed before and went out now)
    /// or a final one (delivered, withheld).
    async fn record(
        &self,
        outbound: &OutboundJob,
        state: DeliveryState,
        attempts: u32,
        reason: Option<String>,
    ) -> Result<(), JobError> {
        let reply_id = &outbound.reply.reply_id;
        // A tap's acknowledgement is no reply of the transcript's.
        if outbound.reply.acknowledges_only() {
            return Ok(());
        }
        for _ in 0..SAVE_ATTEMPTS {
            let Some(mut session) = self.load_soon_saved(outbound).await? else {
                // Not saved yet (a new conversation's first reply): the
                // retry records it. Much later: erased, nothing to record on.
                let age_ms = self.clock.now_ms().saturating_sub(outbound.queued_at_ms);
                if age_ms < UNSAVED_CONVERSATION_GRACE_MS {
                    return Err(JobError::Retryable(
                        format!(
                            "conversation {} is not saved yet; its delivery is recorded on retry",
                            outbound.conversation
                        )
                        .into(),
                    ));
                }
                return Ok(());
            };
            if let Some(recorded) = session.delivery(reply_id)
                && (matches!(
                    recorded.state,
                    DeliveryState::Delivered | DeliveryState::Withheld
                ) || (recorded.state == state && recorded.attempts >= attempts))
            {
                return Ok(());
            }
            session.record_delivery(Delivery {
                reply_id: reply_id.clone(),
                state,
                attempts,
                at_ms: self.clock.now_ms(),
                reason: reason.clone(),
            });
            match self.sessions.save(&session).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(JobError::Retryable(
            format!("session {} kept changing", outbound.conversation).into(),
        ))
    }
}

/// Why a send failed, for the agents: the error without its source chain,
/// cut to a readable length. (Send errors name the channel and the
/// provider's status, never message text or URLs.)
fn reason(error: &SendError) -> String {
    error.to_string().chars().take(MAX_REASON_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A job queued before jobs carried a correlation id is still read
    /// (the sender then logs under a fresh id); a new one keeps its id.
    #[test]
    fn jobs_without_a_correlation_id_are_read_and_new_ones_keep_theirs() {
        let old = json!({
            "conversation": "telegram:bot:42",
            "reply": {
                "channel": "telegram", "account_id": "bot", "conversation_id": "42",
                "customer_id": "42", "text": "Hello", "reply_id": "r-1"
            },
            "queued_at_ms": 5
        });
        let job: OutboundJob = serde_json::from_value(old).unwrap();
        assert_eq!(job.correlation_id, None);
        assert_eq!(job.reply.reply_id, "r-1");

        let with_id = OutboundJob {
            correlation_id: Some("0190-abc".into()),
            ..job
        };
        let read: OutboundJob =
            serde_json::from_slice(&serde_json::to_vec(&with_id).unwrap()).unwrap();
        assert_eq!(read.correlation_id.as_deref(), Some("0190-abc"));
    }
}
