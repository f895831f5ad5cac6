//! Webhook ingress: nothing is acknowledged before it is durably queued.

use std::sync::Arc;
use std::time::Duration;

use switchboard_channels::{Channel, HttpReply, ParseError, Registry, VerifyError, WebhookRequest};
use switchboard_domain::{
    Claim, Clock, IdempotencyStore, InboundMessage, QueueError, QueueItem, QueueName,
    QueueProducer, StoreError,
};
use tracing::{info, warn};

use crate::DEDUPE_RETENTION_MS;

/// Largest webhook body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long one ingress attempt owns a message id before a retry may take
/// over: queueing takes milliseconds, and after a crash the provider's retry
/// should not wait long (a repeat that does get queued is dropped by the
/// queue's dedupe id and the worker's claim).
const CLAIM_LEASE_MS: i64 = 10_000;

/// How long a concurrent duplicate waits for the first delivery to be queued.
const DUPLICATE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("unknown channel {0}")]
    UnknownChannel(String),
    #[error("body of {0} bytes exceeds the {MAX_BODY_BYTES} byte limit")]
    TooLarge(usize),
    #[error("request not verified: {0}")]
    Unauthorized(#[from] VerifyError),
    #[error("request body unreadable: {0}")]
    BadRequest(#[from] ParseError),
    #[error("could not record the message")]
    Store(#[from] StoreError),
    #[error("could not queue the message")]
    Queue(#[from] QueueError),
    #[error("a concurrent delivery of the same message is still being queued")]
    StillInProgress,
}

impl IngressError {
    /// The HTTP answer: a status and a JSON reason. Providers retry 5xx, which
    /// is what we want whenever the message was not safely queued.
    pub fn to_reply(&self) -> HttpReply {
        let (status, code) = match self {
            IngressError::UnknownChannel(_) => (404, "unknown_channel"),
            IngressError::TooLarge(_) => (413, "body_too_large"),
            IngressError::Unauthorized(_) => (401, "unauthorized"),
            IngressError::BadRequest(_) => (400, "bad_request"),
            IngressError::Store(_) | IngressError::Queue(_) | IngressError::StillInProgress => {
                (503, "unavailable")
            }
        };
        HttpReply::error(status, code, self.to_string())
    }
}

/// An authentic request: a handshake to answer, or messages to queue.
#[derive(Debug)]
pub enum Admitted {
    Handshake(HttpReply),
    Messages(Vec<InboundMessage>),
}

/// Size limit, handshake, verification and parsing: everything ingress checks
/// before it stores anything. `switchboard webhook check` runs exactly this.
pub fn admit(
    channel: &dyn Channel,
    request: &WebhookRequest,
    now_ms: i64,
) -> Result<Admitted, IngressError> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(IngressError::TooLarge(request.body.len()));
    }
    if let Some(handshake) = channel.handshake(request, now_ms)? {
        return Ok(Admitted::Handshake(handshake));
    }
    channel.verify(request, now_ms)?;
    Ok(Admitted::Messages(channel.parse(request)?))
}

pub struct Ingress {
    channels: Arc<Registry>,
    idempotency: Arc<dyn IdempotencyStore>,
    queue: Arc<dyn QueueProducer>,
    clock: Arc<dyn Clock>,
}

impl Ingress {
    pub fn new(
        channels: Arc<Registry>,
        idempotency: Arc<dyn IdempotencyStore>,
        queue: Arc<dyn QueueProducer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            channels,
            idempotency,
            queue,
            clock,
        }
    }

    /// Whether a channel of that name is configured.
    pub fn check_channel(&self, channel_name: &str) -> Result<(), IngressError> {
        match self.channels.get(channel_name) {
            Some(_) => Ok(()),
            None => Err(IngressError::UnknownChannel(channel_name.to_owned())),
        }
    }

    /// Handles one webhook request and always produces an answer for the provider.
    pub async fn handle(&self, channel_name: &str, request: &WebhookRequest) -> HttpReply {
        let started = std::time::Instant::now();
        let reply = match self.accept(channel_name, request).await {
            Ok(reply) => reply,
            Err(error) => {
                let reply = error.to_reply();
                warn!(channel = channel_name, status = reply.status, error = %error, "webhook rejected");
                reply
            }
        };
        info!(
            channel = channel_name,
            status = reply.status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook handled"
        );
        reply
    }

    pub async fn accept(
        &self,
        channel_name: &str,
        request: &WebhookRequest,
    ) -> Result<HttpReply, IngressError> {
        let channel = self
            .channels
            .get(channel_name)
            .ok_or_else(|| IngressError::UnknownChannel(channel_name.to_owned()))?;
        match admit(channel.as_ref(), request, self.clock.now_ms())? {
            Admitted::Handshake(reply) => {
                info!(channel = channel_name, "handshake answered");
                Ok(reply)
            }
            Admitted::Messages(messages) => {
                for message in &messages {
                    self.enqueue_once(message).await?;
                }
                Ok(channel.acknowledge())
            }
        }
    }

    /// Queues a message unless this provider message id was queued before.
    async fn enqueue_once(&self, message: &InboundMessage) -> Result<(), IngressError> {
        let dedupe_key = message.dedupe_key();
        let claim_key = format!("ingress:{dedupe_key}");
        let deadline = tokio::time::Instant::now() + DUPLICATE_WAIT;
        loop {
            let now_ms = self.clock.now_ms();
            match self
                .idempotency
                .claim(&claim_key, now_ms, CLAIM_LEASE_MS)
                .await?
            {
                // A taken-over claim may have been queued already: the queue drops the repeat.
                Claim::Acquired | Claim::TakenOver => break,
                Claim::Done => {
                    info!(channel = %message.channel, message_id = %message.provider_message_id, "duplicate dropped");
                    return Ok(());
                }
                // Another delivery of the same message is being queued right now.
                // Answer only once it is safely queued, so a failure there is retried.
                Claim::InProgress if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Claim::InProgress => return Err(IngressError::StillInProgress),
            }
        }
        let item = QueueItem {
            group: message.conversation_key().0,
            dedupe_id: dedupe_key,
            body: serde_json::to_vec(message).expect("messages serialise"),
        };
        if let Err(error) = self.queue.send(QueueName::Inbound, item).await {
            // Let the provider's retry take the message over at once.
            if let Err(release_error) = self.idempotency.release(&claim_key).await {
                warn!(error = %release_error, "could not release ingress claim");
            }
            return Err(error.into());
        }
        let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
        if let Err(error) = self.idempotency.complete(&claim_key, keep_until).await {
            // Queued already: a retry meeting the in-progress record waits or gets
            // 503, and after the lease it re-queues; the worker drops the repeat.
            warn!(error = %error, "could not mark ingress claim done");
        }
        info!(channel = %message.channel, message_id = %message.provider_message_id, kind = ?message.kind, "message queued");
        Ok(())
    }
}
