//! One customer's data, everywhere it is stored: exported on request, erased
//! on request (the rights of access and erasure).

use async_trait::async_trait;
use serde::Serialize;

use crate::model::{Customer, Feedback, MAX_CUSTOMER_KEY_BYTES};
use crate::ports::StoreError;
use crate::session::{Role, Session};

/// A customer as the stores know them: `channel:customer_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef {
    pub channel: String,
    pub customer_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a customer is named CHANNEL:CUSTOMER_ID (for example telegram:123456789), at most {MAX_CUSTOMER_KEY_BYTES} bytes"
)]
pub struct BadCustomerRef;

impl std::str::FromStr for CustomerRef {
    type Err = BadCustomerRef;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let (channel, customer_id) = key.split_once(':').ok_or(BadCustomerRef)?;
        let channel_ok = !channel.is_empty()
            && channel
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !channel_ok
            || customer_id.trim().is_empty()
            || key.len() > MAX_CUSTOMER_KEY_BYTES
            || key.chars().any(char::is_control)
        {
            return Err(BadCustomerRef);
        }
        Ok(Self {
            channel: channel.to_owned(),
            customer_id: customer_id.to_owned(),
        })
    }
}

impl CustomerRef {
    /// The key of the customer record (`channel:customer_id`).
    pub fn key(&self) -> String {
        format!("{}:{}", self.channel, self.customer_id)
    }

    /// Whether `session` is one of this customer's conversations.
    pub fn owns(&self, session: &Session) -> bool {
        session.channel == self.channel && session.customer_id == self.customer_id
    }
}

/// A queued item that belongs to the customer: a message not yet processed,
/// an escalation not yet sent to agents, a reply waiting to go out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedData {
    pub queue: String,
    /// `ready`, `leased` or `dead`.
    pub state: String,
    pub enqueued_at_ms: i64,
    /// The item as queued (JSON), or its text when it is not JSON.
    pub body: serde_json::Value,
}

/// Everything stored about one customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerExport {
    pub customer: String,
    /// The contact record, `None` when the customer never wrote (or was erased).
    pub record: Option<Customer>,
    /// Every conversation, with its transcript.
    pub conversations: Vec<Session>,
    pub feedback: Vec<Feedback>,
    /// Work still queued for the customer (the local queues; SQS cannot be read
    /// without consuming, so on AWS this list is empty).
    pub queued: Vec<QueuedData>,
    /// Questions of theirs kept in the unanswered-questions log.
    pub unanswered_questions: Vec<String>,
}

const DAY_MS: i64 = 86_400_000;

/// How many days a daily reply counter is kept: the day it counts, and the
/// next (so a counter read just after midnight still finds yesterday's).
pub const AUTO_REPLY_COUNTER_DAYS: i64 = 2;

/// The day (since the epoch, UTC) that the daily reply counters file `now_ms` under.
pub fn counter_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// When the counter of `day` stops counting, in Unix milliseconds.
pub fn counter_day_expiry_ms(day: i64) -> i64 {
    day.saturating_add(AUTO_REPLY_COUNTER_DAYS)
        .saturating_mul(DAY_MS)
}

/// The counter of automatic replies mailed to `address` (lower case) on
/// `day` (days since the epoch): the email channels' daily cap.
pub fn auto_reply_counter_key(channel: &str, address: &str, day: i64) -> String {
    format!("{}{day}", auto_reply_counter_prefix(channel, address))
}

/// What every day's [`auto_reply_counter_key`] of `address` starts with.
fn auto_reply_counter_prefix(channel: &str, address: &str) -> String {
    format!("auto-replies:{channel}:{address}:")
}

/// The mark of an `address` (lower case) that bounces.
pub fn undeliverable_counter_key(channel: &str, address: &str) -> String {
    format!("undeliverable:{channel}:{address}")
}

impl CustomerRef {
    /// The counters that name this customer: the key of their bounce mark,
    /// and the prefix of their daily reply counters' keys.
    pub fn counter_keys(&self) -> (String, String) {
        let address = self.customer_id.to_lowercase();
        (
            undeliverable_counter_key(&self.channel, &address),
            auto_reply_counter_prefix(&self.channel, &address),
        )
    }

    /// The keys of this customer's counters that can still count at `now_ms`,
    /// for stores that cannot delete by prefix (DynamoDB): the bounce mark,
    /// and the daily reply counters of the days still kept and of tomorrow
    /// (a sender whose clock runs ahead).
    pub fn live_counter_keys(&self, now_ms: i64) -> Vec<String> {
        let address = self.customer_id.to_lowercase();
        let today = counter_day(now_ms);
        let first_kept = today.saturating_sub(AUTO_REPLY_COUNTER_DAYS - 1);
        let mut keys = vec![undeliverable_counter_key(&self.channel, &address)];
        keys.extend(
            (first_kept..=today.saturating_add(1))
                .map(|day| auto_reply_counter_key(&self.channel, &address, day)),
        );
        keys
    }
}

/// What an erase removed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    pub customer: String,
    pub records: usize,
    pub conversations: usize,
    pub feedback: usize,
    pub queued: usize,
    pub unanswered_questions: usize,
    pub outbox: usize,
    /// Counters naming them (the email channels' reply cap, bounce marks).
    pub counters: usize,
}

impl Erasure {
    pub fn total(&self) -> usize {
        self.records
            + self.conversations
            + self.feedback
            + self.queued
            + self.unanswered_questions
            + self.outbox
            + self.counters
    }
}

/// The texts a customer wrote in these conversations (to find them in logs
/// that are not keyed by customer, like the unanswered questions).
pub fn customer_texts(conversations: &[Session]) -> Vec<String> {
    let mut texts: Vec<String> = conversations
        .iter()
        .flat_map(|session| &session.turns)
        .filter(|turn| turn.role == Role::Customer)
        .map(|turn| turn.text.clone())
        .collect();
    texts.sort();
    texts.dedup();
    texts
}

/// The stores' side of export and erase.
#[async_trait]
pub trait CustomerData: Send + Sync {
    async fn export(&self, customer: &CustomerRef) -> Result<CustomerExport, StoreError>;
    /// Removes everything stored about the customer. Erasing twice is not an
    /// error: the second erase removes nothing.
    async fn erase(&self, customer: &CustomerRef) -> Result<Erasure, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counter_keys_cover_every_counter_the_cap_can_still_read() {
        let customer: CustomerRef = "sendgrid:Ann@Example.com".parse().unwrap();
        let now_ms = 20_000 * DAY_MS + 5;
        let keys = customer.live_counter_keys(now_ms);
        assert!(keys.contains(&undeliverable_counter_key("sendgrid", "ann@example.com")));
        // A counter started on `day` still counts until its expiry.
        for day in 19_990..20_010 {
            let key = auto_reply_counter_key("sendgrid", "ann@example.com", day);
            let live = day <= counter_day(now_ms) && counter_day_expiry_ms(day) > now_ms;
            if live {
                assert!(keys.contains(&key), "day {day} missing");
            }
        }
        assert!(keys.contains(&auto_reply_counter_key(
            "sendgrid",
            "ann@example.com",
            20_001
        )));
        let (bounce_mark, daily_prefix) = customer.counter_keys();
        assert!(keys[0] == bounce_mark && keys[1..].iter().all(|k| k.starts_with(&daily_prefix)));
    }

    #[test]
    fn customer_refs_are_channel_colon_id() {
        let customer: CustomerRef = "email:ann@example.com".parse().unwrap();
        assert_eq!(customer.channel, "email");
        assert_eq!(customer.customer_id, "ann@example.com");
        assert_eq!(customer.key(), "email:ann@example.com");
        // Ids may hold colons themselves (the first one separates).
        let customer: CustomerRef = "slack:T1:U2".parse().unwrap();
        assert_eq!(customer.customer_id, "T1:U2");
        for bad in [
            "",
            "telegram",
            ":123",
            "telegram:",
            "telegram: ",
            "Tele gram:1",
            "telegram:1\n2",
        ] {
            assert_eq!(bad.parse::<CustomerRef>(), Err(BadCustomerRef), "{bad:?}");
        }
        let long = format!("telegram:{}", "9".repeat(MAX_CUSTOMER_KEY_BYTES));
        assert_eq!(long.parse::<CustomerRef>(), Err(BadCustomerRef));
    }
}
