//! Ports: the small traits through which the pipeline reaches the outside
//! world. Adapters (SQLite, DynamoDB, SQS, HTTP senders, SMTP) implement them.

use std::error::Error as StdError;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{ConversationKey, Customer, Feedback, OutboundReply, Tier};
use crate::routing::Language;
use crate::session::{ConversationBrief, ConversationSummary, EscalationTicket, Session};

pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Renders an error with its whole cause chain on one line, for logs and CLI
/// messages. Every error either prints its cause or exposes it as `source`,
/// never both, so each cause appears once.
pub fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Wall-clock time, injectable so tests can fix it.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the record first (optimistic concurrency).
    #[error("conflicting update of {0}")]
    Conflict(String),
    #[error("stored record {key} is unreadable")]
    Corrupt {
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
}

/// Result of trying to take the idempotency record for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the key now and must `complete` or `release` it.
    Acquired,
    /// Like `Acquired`, but an earlier attempt held the key and its lease ran
    /// out before it completed or released it (it crashed or was abandoned):
    /// it may have done part of the work, such as a send whose record was lost.
    TakenOver,
    /// Another attempt holds it and its lease has not expired.
    InProgress,
    /// A previous attempt finished; do not do the work again.
    Done,
}

impl Claim {
    /// Whether the caller owns the key now.
    pub fn is_owned(self) -> bool {
        matches!(self, Claim::Acquired | Claim::TakenOver)
    }
}

/// How long a claim whose holder never finished is remembered after its lease
/// ran out (7 days, as long as finished ones). A redelivery must find it to
/// know that a send may have happened: forgotten with the lease, the next
/// attempt would acquire the key afresh and send a second time.
pub const INTERRUPTED_CLAIM_KEPT_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Idempotency records with a status and an expiry, so that an attempt that
/// crashed half-way can be taken over once its lease runs out while a finished
/// one is never redone. A record in progress outlives its lease by
/// [`INTERRUPTED_CLAIM_KEPT_MS`], so that purges and TTLs keep the trace of
/// an interrupted attempt.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn claim(&self, key: &str, now_ms: i64, lease_ms: i64) -> Result<Claim, StoreError>;
    /// Mark the key done; the record is kept until `keep_until_ms`.
    async fn complete(&self, key: &str, keep_until_ms: i64) -> Result<(), StoreError>;
    /// Mark the key done and keep `result` with it: what the work produced
    /// (the text of a reply that went out), for a later attempt that finds
    /// the key done and must record what was done.
    async fn complete_with_result(
        &self,
        key: &str,
        keep_until_ms: i64,
        result: &str,
    ) -> Result<(), StoreError>;
    /// The result kept with a done key, if it has one and has not expired.
    async fn result(&self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError>;
    /// Give the key up so that a retry can take it at once.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Session>, StoreError>;
    /// Saves `session` if the stored version still equals `session.version`
    /// (0: not stored yet) and returns the new version; otherwise `Conflict`.
    async fn save(&self, session: &Session) -> Result<u64, StoreError>;
    /// Summaries of the conversations waiting for or with a person (status
    /// `escalated`), at most `limit`, in no particular order. Stores keep
    /// the summary beside the session (an index on the status), so the
    /// agents' list does not read whole transcripts.
    async fn escalated(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError>;
    /// The briefs of the customer's conversations (`customer` as
    /// [`Session::customer_key`]), the most recently updated first, at most
    /// `limit`. Stores keep the brief beside the session with an index on
    /// the customer, so this reads no transcripts.
    async fn customer_conversations(
        &self,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<ConversationBrief>, StoreError>;
}

#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Records one contact and returns the customer as it was *before* it:
    /// `None` on first contact. Its `tier` is the stored one (set through the
    /// agents' API) if any, else `regular` once it has written before, else `new`.
    async fn record_contact(&self, key: &str, now_ms: i64) -> Result<Option<Customer>, StoreError>;
    /// Stores the customer's tier (creating the record of a customer not
    /// seen yet); it applies from their next message.
    async fn set_tier(&self, key: &str, tier: Tier) -> Result<(), StoreError>;
}

#[async_trait]
pub trait FeedbackStore: Send + Sync {
    async fn put(&self, feedback: &Feedback) -> Result<(), StoreError>;
}

/// Customer questions the FAQ could not answer, counted, so the business knows
/// which entries to add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeGap {
    pub question: String,
    pub language: Language,
    pub count: u64,
    pub last_seen_ms: i64,
}

#[async_trait]
pub trait GapLog: Send + Sync {
    async fn record(
        &self,
        question: &str,
        language: Language,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    async fn most_frequent(&self, limit: usize) -> Result<Vec<KnowledgeGap>, StoreError>;
}

/// The durable queues between the pipeline's stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    /// Verified inbound messages, ordered per conversation.
    Inbound,
    /// Escalations of VIP customers, handled first.
    EscalationPriority,
    EscalationStandard,
    /// Delayed jobs: reassurance and service-level timers.
    Timers,
    /// Every reply to a customer, the bot's and the agents': sent, retried
    /// and dead-lettered apart from the work that wrote it.
    Outbound,
}

impl QueueName {
    pub const ALL: [QueueName; 5] = [
        QueueName::Inbound,
        QueueName::EscalationPriority,
        QueueName::EscalationStandard,
        QueueName::Timers,
        QueueName::Outbound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Inbound => "inbound",
            QueueName::EscalationPriority => "escalation_priority",
            QueueName::EscalationStandard => "escalation_standard",
            QueueName::Timers => "timers",
            QueueName::Outbound => "outbound",
        }
    }
}

/// One queued item. Items of one `group` are delivered in order, one at a time;
/// a second send with the same `dedupe_id` is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub group: String,
    pub dedupe_id: String,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("queue {queue:?} unavailable")]
pub struct QueueError {
    pub queue: QueueName,
    #[source]
    pub source: BoxError,
}

#[async_trait]
pub trait QueueProducer: Send + Sync {
    /// Returns once the item is durably stored.
    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError>;

    /// Like `send`, but the item is delivered no earlier than `delay` from
    /// now. A queue may deliver it earlier than asked when it cannot wait
    /// that long (SQS waits at most 15 minutes): consumers of delayed jobs
    /// check the time and put the job back for the rest.
    async fn send_after(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        let _ = (item, delay);
        Err(QueueError {
            queue,
            source: "this queue cannot delay jobs".into(),
        })
    }

    /// Queues `item` and records the idempotency key `key` as done until
    /// `keep_until_ms`, as one durable step, unless `key` is done already
    /// (`Claim::Done`: nothing queued) or held by an attempt still under way
    /// (`Claim::InProgress`: nothing queued). An owned claim (`Acquired`,
    /// `TakenOver`) says the item is queued. For a queue kept in the same
    /// store as the idempotency records; `None` (the default): this queue
    /// cannot, and the caller claims, sends and completes step by step.
    async fn send_once(
        &self,
        key: &str,
        queue: QueueName,
        item: &QueueItem,
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<Option<Claim>, QueueError> {
        let _ = (key, queue, item, now_ms, keep_until_ms);
        Ok(None)
    }
}

/// Where the business keeps its customers' tiers (a CRM), asked by customer
/// key (`channel:customer_id`). `Ok(None)`: the customer is not known there.
#[async_trait]
pub trait TierDirectory: Send + Sync {
    async fn tier(&self, customer_key: &str) -> Result<Option<crate::model::Tier>, BoxError>;
}

/// Starts a queued reference to a body stored aside. No job body starts so:
/// bodies are JSON.
pub const PAYLOAD_REFERENCE_PREFIX: &[u8] = b"switchboard-payload:";

/// Where the body of the item with `dedupe_id` in `queue` is stored aside:
/// the same key on every resend, so a retried send overwrites rather than
/// adds, and an erase can find it from the queue's record alone.
pub fn payload_key(queue: QueueName, dedupe_id: &str) -> String {
    use sha2::Digest;
    format!(
        "{}/{}",
        queue.as_str(),
        hex::encode(sha2::Sha256::digest(dedupe_id.as_bytes()))
    )
}

/// Large payloads kept beside the queues (an SQS message holds 256 KiB): the
/// queue carries a reference and the consumer reads the payload back.
#[async_trait]
pub trait PayloadStore: Send + Sync {
    /// Stores `payload` under `key` (replacing any), kept at least until `expires_at_ms`.
    async fn put(&self, key: &str, payload: &[u8], expires_at_ms: i64) -> Result<(), StoreError>;
    /// The payload, or `None` when there is none (never stored, or expired).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Whether a failed send is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Network trouble, rate limits, 5xx: try again later.
    #[error("temporary failure sending on {channel}: {detail}")]
    Transient {
        channel: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Rejected for good (bad token, unknown chat): retrying cannot help.
    #[error("permanent failure sending on {channel}: {detail}")]
    Permanent {
        channel: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Not sent, on purpose (an address that bounces, the daily cap on
    /// automatic email replies): nothing failed and nothing is retried.
    #[error("not sent on {channel}: {reason}")]
    Withheld {
        channel: String,
        reason: &'static str,
    },
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    /// How long the provider asked us to wait, when it said (`Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let SendError::Transient {
            source: Some(source),
            ..
        } = self
        else {
            return None;
        };
        source.downcast_ref::<RetryAfter>().map(|wait| wait.0)
    }

    /// Whether the provider may have the message although the send failed.
    pub fn may_have_delivered(&self) -> bool {
        matches!(self, SendError::Transient { source: Some(source), .. }
            if source.downcast_ref::<MaybeDelivered>().is_some())
    }

    /// The channel (or `email`) the send was for.
    pub fn channel(&self) -> &str {
        match self {
            SendError::Transient { channel, .. }
            | SendError::Permanent { channel, .. }
            | SendError::Withheld { channel, .. } => channel,
        }
    }
}

/// The source of a transient [`SendError`] when the provider named a time to
/// wait (HTTP `Retry-After`, Telegram's `retry_after`): queues may honour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the provider asked to wait {} s", .0.as_secs())]
pub struct RetryAfter(pub std::time::Duration);

/// The source of a send that failed after the request may have reached the
/// provider (a timeout or a broken connection mid-request): sending again
/// could deliver the message twice.
#[derive(Debug, thiserror::Error)]
#[error("the request may have reached the provider")]
pub struct MaybeDelivered(#[source] pub BoxError);

/// Sends a reply on the customer's channel.
#[async_trait]
pub trait ReplySender: Send + Sync {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError>;
}

/// An access token a provider issued and will expire (WeChat, WeCom, Feishu,
/// DingTalk, X), shared by every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub value: crate::Secret,
    /// Unix milliseconds after which the provider no longer accepts it.
    pub expires_at_ms: i64,
    /// Grows by one with every refresh; 0 before the first.
    pub version: u64,
}

/// Shared storage of provider credentials, with a refresh lease so that one
/// instance at a time asks the provider for a new token: some providers
/// (WeChat) invalidate the previous token on every refresh.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Credential>, StoreError>;
    /// Takes the refresh lease for `key` as `owner` if the stored version is
    /// still `seen_version` (0: nothing stored) and no other owner holds an
    /// unexpired lease. `false`: someone else refreshes, or already did.
    async fn lease_refresh(
        &self,
        key: &str,
        owner: &str,
        seen_version: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Stores the new credential (its version is `seen_version + 1`) and ends
    /// the lease, if `owner` still holds it; `Conflict` otherwise.
    async fn put(&self, key: &str, owner: &str, credential: &Credential) -> Result<(), StoreError>;
}

/// Tells the agents about an escalation (email, chat webhook).
#[async_trait]
pub trait AgentNotifier: Send + Sync {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError>;
}

/// Counters that expire, shared by every instance: the per-sender daily cap
/// on automated email replies, and marks such as "this address bounces".
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Adds one to the counter `key` unless it has reached `limit`, and
    /// says whether it did. A counter past its expiry counts as 0; one that
    /// is started lives until `expires_at_ms`.
    async fn increment_below(
        &self,
        key: &str,
        limit: u64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError>;

    /// The counter's value at `now_ms` (0 when absent or expired).
    async fn count(&self, key: &str, now_ms: i64) -> Result<u64, StoreError>;
}

/// Reads objects another service stored: the raw mail Amazon SES's S3 action
/// writes, for mail over SNS's 150 KB.
#[async_trait]
pub trait ObjectReader: Send + Sync {
    /// The object's bytes, or `None` when there is no such object. An object
    /// larger than `max_bytes` is an error (nothing that large is read).
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// No object storage (the local flavour): every object is absent.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObjects;

#[async_trait]
impl ObjectReader for NoObjects {
    async fn read(&self, _: &str, _: &str, _: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
}

/// What reports, experiment results and knowledge-base suggestions read:
/// the sessions and the feedback of a period, from whichever store has them.
#[async_trait]
pub trait ReportRecords: Send + Sync {
    /// Sessions with a message since `since_ms`.
    async fn sessions_since(&self, since_ms: i64) -> Result<Vec<Session>, StoreError>;
    /// Feedback given since `since_ms`.
    async fn feedback_since(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError>;
}

/// Where report pages are kept for people to open (S3 on AWS).
#[async_trait]
pub trait ReportArchive: Send + Sync {
    /// Stores the HTML page under `name` (replacing one of that name) and
    /// returns the link people open it by.
    async fn publish(&self, name: &str, html: &str) -> Result<String, StoreError>;
}
