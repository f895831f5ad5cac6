//! The queue port on SQS. A FIFO queue (URL ending in `.fifo`) gets the item's
//! group as `MessageGroupId` and its dedupe id as `MessageDeduplicationId`; a
//! standard queue ignores both.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use switchboard_domain::{QueueError, QueueItem, QueueName, QueueProducer};

use crate::config::AwsResources;
use crate::error::{AwsError, queue_error};

/// Message attribute telling that the body is base64 of the item's bytes
/// (used only for bodies SQS cannot carry as text).
pub const ENCODING_ATTRIBUTE: &str = "switchboard-encoding";
const BASE64_ENCODING: &str = "base64";
/// Longest `MessageGroupId` / `MessageDeduplicationId` SQS accepts.
const MAX_FIFO_ID: usize = 128;

#[derive(Debug, Clone)]
pub struct SqsQueueProducer {
    client: Client,
    urls: HashMap<QueueName, String>,
}

impl SqsQueueProducer {
    pub fn new(client: Client, resources: &AwsResources) -> Self {
        let urls = QueueName::ALL
            .iter()
            .map(|q| (*q, resources.queue_url(*q).to_owned()))
            .collect();
        Self { client, urls }
    }

    /// A producer with explicit URLs; queues without one fail to send.
    pub fn with_urls(client: Client, urls: impl IntoIterator<Item = (QueueName, String)>) -> Self {
        Self {
            client,
            urls: urls.into_iter().collect(),
        }
    }
}

pub fn is_fifo_url(url: &str) -> bool {
    url.trim_end_matches('/').ends_with(".fifo")
}

/// An id SQS accepts as `MessageGroupId` / `MessageDeduplicationId`: the value
/// itself when it is 1 to 128 printable ASCII characters, else its SHA-256 in hex.
pub fn fifo_id(raw: &str) -> String {
    let valid = !raw.is_empty()
        && raw.len() <= MAX_FIFO_ID
        && raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if valid {
        raw.to_owned()
    } else {
        hex::encode(Sha256::digest(raw.as_bytes()))
    }
}

/// Whether SQS can carry `text` as a message body (its allowed XML characters).
fn sqs_text(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    })
}

/// The body to send and whether it is base64. SQS refuses empty bodies, so an
/// empty item goes as a single space flagged base64 (which decodes to nothing).
fn encode_body(body: Vec<u8>) -> (String, bool) {
    match String::from_utf8(body) {
        Ok(text) if text.is_empty() => (" ".to_owned(), true),
        Ok(text) if sqs_text(&text) => (text, false),
        Ok(text) => (BASE64.encode(text.as_bytes()), true),
        Err(error) => (BASE64.encode(error.as_bytes()), true),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("SQS record has no body")]
    Missing,
    #[error("SQS record body is not valid base64")]
    Base64(#[source] base64::DecodeError),
}

/// The bytes a [`QueueProducer::send`] put into this record.
pub fn message_body(message: &SqsMessage) -> Result<Vec<u8>, BodyError> {
    let body = message.body.as_deref().ok_or(BodyError::Missing)?;
    let encoded = message
        .message_attributes
        .get(ENCODING_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .is_some_and(|v| v == BASE64_ENCODING);
    if encoded {
        BASE64.decode(body.trim()).map_err(BodyError::Base64)
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// Longest `DelaySeconds` SQS accepts.
pub const MAX_DELAY_SECS: u64 = 900;

#[async_trait]
impl QueueProducer for SqsQueueProducer {
    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError> {
        self.send_delayed(queue, item, 0).await
    }

    /// `DelaySeconds`, at most 15 minutes: a longer timer arrives early and
    /// its consumer queues it again for the rest. (A FIFO queue takes no
    /// per-message delay: delayed jobs go to a standard queue.)
    async fn send_after(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        // Rounded up, so that a job never arrives before it is due unless capped.
        let secs = delay
            .as_millis()
            .div_ceil(1000)
            .min(u128::from(MAX_DELAY_SECS)) as i32;
        self.send_delayed(queue, item, secs).await
    }
}

impl SqsQueueProducer {
    async fn send_delayed(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay_secs: i32,
    ) -> Result<(), QueueError> {
        let url = self
            .urls
            .get(&queue)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                queue_error(
                    queue,
                    AwsError::Config(format!("no URL for queue {}", queue.as_str())),
                )
            })?;
        let (body, base64) = encode_body(item.body);
        let mut request = self.client.send_message().queue_url(url).message_body(body);
        if base64 {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(BASE64_ENCODING)
                .build()
                .map_err(|e| queue_error(queue, AwsError::sqs("SendMessage", url, e)))?;
            request = request.message_attributes(ENCODING_ATTRIBUTE, attribute);
        }
        if delay_secs > 0 {
            request = request.delay_seconds(delay_secs);
        }
        if is_fifo_url(url) {
            request = request
                .message_group_id(fifo_id(&item.group))
                .message_deduplication_id(fifo_id(&item.dedupe_id));
        }
        request
            .send()
            .await
            .map_err(|e| queue_error(queue, AwsError::sqs("SendMessage", url, e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessageAttribute;

    #[test]
    fn fifo_ids_pass_through_when_valid_and_are_hashed_otherwise() {
        assert_eq!(fifo_id("telegram:bot:42"), "telegram:bot:42");
        let long = "x".repeat(129);
        assert_eq!(fifo_id(&long).len(), 64);
        assert_ne!(fifo_id(&long), fifo_id(&"x".repeat(130)));
        assert_eq!(fifo_id(&"y".repeat(128)), "y".repeat(128));
        assert_eq!(fifo_id("a b").len(), 64, "spaces are not allowed");
        assert_eq!(fifo_id("email:客服@example.com").len(), 64);
        assert_eq!(fifo_id("").len(), 64);
    }

    #[test]
    fn fifo_urls_are_recognised() {
        assert!(is_fifo_url(
            "https://sqs.eu-west-1.amazonaws.com/1/inbound.fifo"
        ));
        assert!(!is_fifo_url(
            "https://sqs.eu-west-1.amazonaws.com/1/escalation"
        ));
    }

    fn record(body: String, base64: bool) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.body = Some(body);
        if base64 {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = Some(BASE64_ENCODING.into());
            attribute.data_type = Some("String".into());
            message
                .message_attributes
                .insert(ENCODING_ATTRIBUTE.into(), attribute);
        }
        message
    }

    #[test]
    fn bodies_round_trip_as_text_or_base64() {
        for body in [
            b"{\"text\":\"\xe4\xbd\xa0\xe5\xa5\xbd\"}".to_vec(),
            vec![0, 159, 146, 150],
            b"a\x01b".to_vec(),
            vec![],
        ] {
            let (text, base64) = encode_body(body.clone());
            assert_eq!(message_body(&record(text, base64)).unwrap(), body);
        }
        assert!(!encode_body(b"{\"a\":1}".to_vec()).1, "JSON goes as text");
        assert!(
            encode_body(b"a\x01b".to_vec()).1,
            "control characters need base64"
        );
    }
}
