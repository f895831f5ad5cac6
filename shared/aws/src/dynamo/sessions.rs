//! Sessions with their transcripts, saved with optimistic concurrency on a
//! `version` attribute.

use std::borrow::Cow;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use switchboard_domain::{
    ConversationBrief, ConversationKey, ConversationSummary, Session, SessionStatus, SessionStore,
    StoreError,
};

use super::{ItemReader, Retention, TTL_ATTRIBUTE, n, s, ttl_seconds};
use crate::error::AwsError;

const CONVERSATION: &str = "conversation";
const VERSION: &str = "version";
const DOCUMENT: &str = "session";
/// Present only while a conversation waits for or is with a person, so the
/// `waiting` index (sparse) holds exactly those.
const WAITING: &str = "waiting";
const WAITING_SINCE: &str = "waiting_since_ms";
const SUMMARY: &str = "summary";
/// The index of the conversations with a person (`waiting` = `escalated`,
/// ordered by `waiting_since_ms`), projecting the summary only.
pub const WAITING_INDEX: &str = "waiting";

/// `channel:customer_id`, on every session: the `customer` index's key.
const CUSTOMER: &str = "customer";
const UPDATED_AT: &str = "updated_at_ms";
const BRIEF: &str = "brief";
/// The index of a customer's conversations (`customer`, ordered by
/// `updated_at_ms`), projecting the brief only.
pub const CUSTOMER_INDEX: &str = "customer";

/// DynamoDB items are limited to 400 KB; the session document stays below
/// this so that the other attributes fit beside it.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 380_000;

#[derive(Debug, Clone)]
pub struct DynamoSessionStore {
    client: Client,
    table: String,
    retention_ms: i64,
}

impl DynamoSessionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_ms: Retention::default().sessions_ms,
        }
    }

    /// How long a session is kept after its last update.
    pub fn with_retention_ms(mut self, retention_ms: i64) -> Self {
        self.retention_ms = retention_ms;
        self
    }
}

/// The session as stored: JSON, with the oldest turns dropped if the
/// transcript would not fit in one item.
fn document(session: &Session) -> Result<String, serde_json::Error> {
    let mut session = Cow::Borrowed(session);
    loop {
        let json = serde_json::to_string(&*session)?;
        if json.len() <= MAX_DOCUMENT_BYTES || session.turns.is_empty() {
            return Ok(json);
        }
        let dropped = (session.turns.len() / 10).max(1);
        session.to_mut().turns.drain(..dropped);
        tracing::warn!(
            conversation = %session.key,
            dropped,
            "session transcript too large for one item; dropped the oldest turns"
        );
    }
}

fn status_name(session: &Session) -> String {
    serde_json::to_value(session.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[async_trait]
impl SessionStore for DynamoSessionStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Session>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CONVERSATION, s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("GetItem", &self.table, e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let reader = ItemReader {
            table: &self.table,
            key: key.as_str(),
            item,
        };
        let version: u64 = reader.number(VERSION)?;
        let mut session: Session =
            serde_json::from_str(reader.string(DOCUMENT)?).map_err(|e| StoreError::Corrupt {
                key: key.0.clone(),
                source: Box::new(e),
            })?;
        session.version = version;
        Ok(Some(session))
    }

    async fn save(&self, session: &Session) -> Result<u64, StoreError> {
        let key = session.key.as_str();
        let doc = document(session).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            source: Box::new(e),
        })?;
        let brief = serde_json::to_string(&session.brief()).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            source: Box::new(e),
        })?;
        let expected = session.version;
        let next = expected + 1;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(CONVERSATION, s(key))
            .item(VERSION, n(next))
            .item("channel", s(&session.channel))
            .item("customer_id", s(&session.customer_id))
            .item("status", s(status_name(session)))
            .item(UPDATED_AT, n(session.updated_at_ms))
            .item(CUSTOMER, s(session.customer_key()))
            .item(BRIEF, s(brief))
            .item(DOCUMENT, s(doc))
            .item(
                TTL_ATTRIBUTE,
                ttl_seconds(session.updated_at_ms.saturating_add(self.retention_ms)),
            );
        let request = if session.status == SessionStatus::Escalated {
            let summary = session.summary();
            let since = summary
                .handover
                .as_ref()
                .map_or(session.updated_at_ms, |h| h.at_ms);
            let summary = serde_json::to_string(&summary).map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                source: Box::new(e),
            })?;
            request
                .item(WAITING, s("escalated"))
                .item(WAITING_SINCE, n(since))
                .item(SUMMARY, s(summary))
        } else {
            request
        };
        let request = if expected == 0 {
            request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", CONVERSATION)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":expected", n(expected))
        };
        match request.send().await {
            Ok(_) => Ok(next),
            Err(error) => match error.into_service_error() {
                PutItemError::ConditionalCheckFailedException(_) => {
                    Err(StoreError::Conflict(key.to_owned()))
                }
                other => Err(AwsError::dynamo("PutItem", &self.table, other).into()),
            },
        }
    }

    async fn escalated(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut summaries = Vec::new();
        let mut start = None;
        while summaries.len() < limit {
            let (page, next) = self.escalated_page(start, limit - summaries.len()).await?;
            summaries.extend(page);
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(summaries)
    }

    async fn customer_conversations(
        &self,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<ConversationBrief>, StoreError> {
        let mut briefs = Vec::new();
        let mut start = None;
        while briefs.len() < limit {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CUSTOMER_INDEX)
                .key_condition_expression("#customer = :customer")
                .expression_attribute_names("#customer", CUSTOMER)
                .expression_attribute_values(":customer", s(customer))
                .scan_index_forward(false)
                .limit(
                    i32::try_from((limit - briefs.len()).min(1000))
                        .unwrap_or(1000)
                        .max(1),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| AwsError::dynamo("Query", &self.table, e))?;
            for item in output.items() {
                briefs.push(self.json_attribute(item, BRIEF)?);
            }
            match output.last_evaluated_key().filter(|key| !key.is_empty()) {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        briefs.truncate(limit);
        Ok(briefs)
    }
}

impl DynamoSessionStore {
    /// A JSON document kept in one attribute of a session item (the waiting
    /// list's summary, the customer index's brief).
    fn json_attribute<T: serde::de::DeserializeOwned>(
        &self,
        item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
        attribute: &str,
    ) -> Result<T, StoreError> {
        let key = item
            .get(CONVERSATION)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .unwrap_or("?");
        let reader = ItemReader {
            table: &self.table,
            key,
            item,
        };
        serde_json::from_str(reader.string(attribute)?).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            source: Box::new(e),
        })
    }

    async fn escalated_page(
        &self,
        start: Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        limit: usize,
    ) -> Result<
        (
            Vec<ConversationSummary>,
            Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        ),
        StoreError,
    > {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(WAITING_INDEX)
            .key_condition_expression("#waiting = :escalated")
            .expression_attribute_names("#waiting", WAITING)
            .expression_attribute_values(":escalated", s("escalated"))
            .limit(i32::try_from(limit.min(1000)).unwrap_or(1000).max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("Query", &self.table, e))?;
        let mut summaries = Vec::with_capacity(output.items().len());
        for item in output.items() {
            summaries.push(self.json_attribute(item, SUMMARY)?);
        }
        let next = output
            .last_evaluated_key()
            .filter(|key| !key.is_empty())
            .cloned();
        Ok((summaries, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::{InboundMessage, Language, Role, Turn};

    fn session_with(turns: usize, text_len: usize) -> Session {
        let message: InboundMessage = serde_json::from_value(serde_json::json!({
            "channel": "telegram", "account_id": "bot", "customer_id": "42", "conversation_id": "chat",
            "provider_message_id": "1", "sent_at_ms": 0, "kind": "text", "text": "hi"
        }))
        .unwrap();
        let mut session = Session::start(&message, Language::En, 0);
        for i in 0..turns {
            session.push(Turn {
                role: Role::Customer,
                text: "x".repeat(text_len),
                at_ms: i as i64,
                message_id: Some(i.to_string()),
                faq_entry: None,
                confidence: None,
                agent: None,
            });
        }
        session.version = 3;
        session
    }

    #[test]
    fn small_sessions_are_stored_whole() {
        let session = session_with(5, 10);
        let stored: Session = serde_json::from_str(&document(&session).unwrap()).unwrap();
        assert_eq!(stored, session);
    }

    #[test]
    fn oversized_transcripts_lose_their_oldest_turns() {
        let session = session_with(200, 4_000);
        let doc = document(&session).unwrap();
        assert!(doc.len() <= MAX_DOCUMENT_BYTES);
        let stored: Session = serde_json::from_str(&doc).unwrap();
        assert!(
            stored.turns.len() < 200 && stored.turns.len() > 50,
            "{}",
            stored.turns.len()
        );
        assert_eq!(stored.turns.last(), session.turns.last());
    }
}
