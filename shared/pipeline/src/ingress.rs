//! Webhook ingress: nothing is acknowledged before it is durably queued.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_channels::kit::reply;
use switchboard_channels::{
    HttpReply, ParseError, Registry, SharedChannel, Verified, VerifyError, WebhookRequest,
};
use switchboard_domain::{
    Claim, Clock, IdempotencyStore, InboundMessage, QueueError, QueueItem, QueueName,
    QueueProducer, StoreError,
};
use tracing::{Instrument, info, info_span, warn};

use crate::DEDUPE_RETENTION_MS;

/// What ingress queues for the worker: the message and the correlation id it
/// was given on arrival, which the worker's, the reply's and the notifier's
/// log lines and the ticket carry. (Jobs queued before the id existed read
/// without one.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(flatten)]
    pub message: InboundMessage,
}

/// [`QueuedMessage`] as written, without copying the message.
#[derive(Serialize)]
struct QueuedMessageRef<'a> {
    correlation_id: &'a str,
    #[serde(flatten)]
    message: &'a InboundMessage,
}

/// A new correlation id: a UUIDv7, so ids sort by arrival.
pub fn new_correlation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Largest webhook body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Bodies larger than this are verified and parsed off the async runtime's
/// threads, so that a slow parse cannot hold up other requests.
const BLOCKING_ADMISSION_BYTES: usize = 64 * 1024;

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
    Unauthorized(VerifyError),
    #[error("request body unreadable: {0}")]
    BadRequest(ParseError),
    #[error("could not record the message")]
    Store(#[source] StoreError),
    #[error("could not queue the message")]
    Queue(#[source] QueueError),
    #[error("a concurrent delivery of the same message is still being queued")]
    StillInProgress,
}

impl From<StoreError> for IngressError {
    fn from(error: StoreError) -> Self {
        IngressError::Store(error)
    }
}

impl From<QueueError> for IngressError {
    fn from(error: QueueError) -> Self {
        IngressError::Queue(error)
    }
}

impl IngressError {
    /// The HTTP answer: a status and a JSON reason. Providers retry 5xx, which
    /// is what we want whenever the message was not safely queued.
    pub fn to_reply(&self) -> HttpReply {
        let (status, code) = match self {
            IngressError::UnknownChannel(_) => (404, "unknown_channel"),
            IngressError::TooLarge(_) => (413, "body_too_large"),
            IngressError::Unauthorized(VerifyError::Unavailable(_)) => (503, "unavailable"),
            IngressError::Unauthorized(_) => (401, "unauthorized"),
            IngressError::BadRequest(_) => (400, "bad_request"),
            IngressError::Store(_) | IngressError::Queue(_) | IngressError::StillInProgress => {
                (503, "unavailable")
            }
        };
        reply::error(status, code, self.to_string())
    }
}

/// An authentic request: a handshake to answer, or messages to queue.
#[derive(Debug)]
pub enum Admitted {
    Handshake(HttpReply),
    Messages {
        messages: Vec<InboundMessage>,
        verified: Verified,
    },
}

/// Size limit, handshake, verification and parsing: everything ingress checks
/// before it stores anything. `switchboard webhook check` runs exactly this.
pub fn admit(
    channel: &dyn switchboard_channels::Channel,
    request: &WebhookRequest,
    now_ms: i64,
) -> Result<Admitted, IngressError> {
    if request.body().len() > MAX_BODY_BYTES {
        return Err(IngressError::TooLarge(request.body().len()));
    }
    if let Some(handshake) = channel
        .handshake(request, now_ms)
        .map_err(IngressError::Unauthorized)?
    {
        return Ok(Admitted::Handshake(handshake));
    }
    let verified = channel
        .verify(request, now_ms)
        .map_err(IngressError::Unauthorized)?;
    let messages = channel
        .parse(request, &verified)
        .map_err(IngressError::BadRequest)?;
    if let Some(field) = messages.iter().find_map(InboundMessage::unservable_id) {
        return Err(IngressError::BadRequest(ParseError::Invalid(format!(
            "{field} too long or with control characters"
        ))));
    }
    Ok(Admitted::Messages { messages, verified })
}

/// [`admit`], off the async runtime's threads when the body is large.
async fn admit_off_runtime(
    channel: SharedChannel,
    request: WebhookRequest,
    now_ms: i64,
) -> Result<Admitted, IngressError> {
    if request.body().len() <= BLOCKING_ADMISSION_BYTES {
        return admit(channel.as_ref(), &request, now_ms);
    }
    tokio::task::spawn_blocking(move || admit(channel.as_ref(), &request, now_ms))
        .await
        .unwrap_or_else(|_| Err(IngressError::StillInProgress))
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
    pub async fn handle(&self, channel_name: &str, request: WebhookRequest) -> HttpReply {
        let started = std::time::Instant::now();
        let reply = match self.accept(channel_name, request).await {
            Ok(reply) => reply,
            Err(error) => {
                let reply = error.to_reply();
                // The error names what failed (a kind and a position for
                // unreadable bodies), never the body's text.
                let error = switchboard_domain::error_chain(&error);
                warn!(
                    channel = channel_name,
                    status = reply.status().as_u16(),
                    error,
                    "webhook rejected"
                );
                reply
            }
        };
        info!(
            channel = channel_name,
            status = reply.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook handled"
        );
        reply
    }

    pub async fn accept(
        &self,
        channel_name: &str,
        request: WebhookRequest,
    ) -> Result<HttpReply, IngressError> {
        let channel = self
            .channels
            .get(channel_name)
            .ok_or_else(|| IngressError::UnknownChannel(channel_name.to_owned()))?
            .clone();
        let now_ms = self.clock.now_ms();
        let keep_nonce_ms = channel.scheme().window().map_or(DEDUPE_RETENTION_MS, |w| {
            (w.max_age_secs + w.max_future_secs + 60).saturating_mul(1000)
        });
        // Key material a channel fetches (a provider's certificate) and
        // set-up calls it makes, before the synchronous checks.
        let mut request = request;
        channel
            .prepare(&mut request, now_ms)
            .await
            .map_err(IngressError::Unauthorized)?;
        match admit_off_runtime(channel.clone(), request, now_ms).await? {
            Admitted::Handshake(reply) => {
                info!(channel = channel_name, "handshake answered");
                Ok(reply)
            }
            Admitted::Messages { messages, verified } => {
                let nonce = self.spend_nonce(channel_name, &verified).await?;
                for message in &messages {
                    if let Err(error) = self.enqueue_once(message).await {
                        self.release(&nonce).await;
                        return Err(error);
                    }
                }
                let keep_until = self.clock.now_ms().saturating_add(keep_nonce_ms);
                for key in &nonce {
                    if let Err(error) = self.idempotency.complete(key, keep_until).await {
                        warn!(error = %error, "could not record a spent nonce");
                    }
                }
                Ok(channel.acknowledge())
            }
        }
    }

    /// Refuses a nonce (Mailgun's token) seen before with another body. The
    /// same request delivered again is let through: dedupe drops its messages.
    /// Returns the keys to complete once the messages are queued.
    async fn spend_nonce(
        &self,
        channel_name: &str,
        verified: &Verified,
    ) -> Result<Vec<String>, IngressError> {
        let Some(nonce) = &verified.nonce else {
            return Ok(Vec::new());
        };
        let body_hash = {
            use sha2::{Digest, Sha256};
            hex::encode(&Sha256::digest(&verified.body)[..16])
        };
        let nonce_key = format!("nonce:{channel_name}:{nonce}");
        let request_key = format!("{nonce_key}:{body_hash}");
        let now_ms = self.clock.now_ms();
        let first_use = self
            .idempotency
            .claim(&nonce_key, now_ms, CLAIM_LEASE_MS)
            .await?;
        let this_request = self
            .idempotency
            .claim(&request_key, now_ms, CLAIM_LEASE_MS)
            .await?;
        match (first_use, this_request) {
            (Claim::Acquired, Claim::Acquired) => Ok(vec![nonce_key, request_key]),
            (Claim::Acquired, _) => Ok(vec![nonce_key]),
            (_, Claim::Acquired) => {
                self.release(&[request_key]).await;
                warn!(
                    channel = channel_name,
                    "signature replayed with another body"
                );
                Err(IngressError::Unauthorized(VerifyError::Replayed))
            }
            // The identical request again (a provider retry).
            _ => Ok(Vec::new()),
        }
    }

    async fn release(&self, keys: &[String]) {
        for key in keys {
            if let Err(error) = self.idempotency.release(key).await {
                warn!(error = %error, "could not release a nonce claim");
            }
        }
    }

    /// Queues a message unless this provider message id was queued before,
    /// under a new correlation id.
    async fn enqueue_once(&self, message: &InboundMessage) -> Result<(), IngressError> {
        let correlation_id = new_correlation_id();
        let span = info_span!("message", correlation_id = %correlation_id);
        self.enqueue_once_as(message, correlation_id)
            .instrument(span)
            .await
    }

    async fn enqueue_once_as(
        &self,
        message: &InboundMessage,
        correlation_id: String,
    ) -> Result<(), IngressError> {
        let dedupe_key = message.dedupe_key();
        let claim_key = format!("ingress:{dedupe_key}");
        let deadline = tokio::time::Instant::now() + DUPLICATE_WAIT;
        let item = QueueItem {
            group: message.conversation_key().0,
            dedupe_id: dedupe_key,
            body: serde_json::to_vec(&QueuedMessageRef {
                correlation_id: &correlation_id,
                message,
            })
            .expect("messages serialise"),
        };
        // Where the queue and the claims share a store, the claim and the
        // queueing are one durable step; elsewhere: claim, queue, complete.
        let queued_with_claim = loop {
            let now_ms = self.clock.now_ms();
            let keep_until_ms = now_ms.saturating_add(DEDUPE_RETENTION_MS);
            let in_one_step = self
                .queue
                .send_once(&claim_key, QueueName::Inbound, &item, now_ms, keep_until_ms)
                .await?;
            let claim = match in_one_step {
                Some(claim) => claim,
                None => {
                    self.idempotency
                        .claim(&claim_key, now_ms, CLAIM_LEASE_MS)
                        .await?
                }
            };
            match claim {
                // A taken-over claim may have been queued already: the queue drops the repeat.
                Claim::Acquired | Claim::TakenOver => break in_one_step.is_some(),
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
        };
        if !queued_with_claim {
            self.send_and_complete(&claim_key, item).await?;
        }
        switchboard_domain::telemetry::message_received(&message.channel);
        info!(channel = %message.channel, message_id = %message.provider_message_id, kind = ?message.kind, "message queued");
        Ok(())
    }

    /// Queues the item of a claim held, then marks the claim done.
    async fn send_and_complete(
        &self,
        claim_key: &str,
        item: QueueItem,
    ) -> Result<(), IngressError> {
        if let Err(error) = self.queue.send(QueueName::Inbound, item).await {
            // Let the provider's retry take the message over at once.
            if let Err(release_error) = self.idempotency.release(claim_key).await {
                warn!(error = %release_error, "could not release ingress claim");
            }
            return Err(error.into());
        }
        let keep_until = self.clock.now_ms() + DEDUPE_RETENTION_MS;
        if let Err(error) = self.idempotency.complete(claim_key, keep_until).await {
            // Queued already: a retry meeting the in-progress record waits or gets
            // 503, and after the lease it re-queues; the worker drops the repeat.
            warn!(error = %error, "could not mark ingress claim done");
        }
        Ok(())
    }
}
