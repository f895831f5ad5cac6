//! Feedback: items under the conversation, sorted by time.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use switchboard_domain::{ConversationKey, Feedback, FeedbackStore, StoreError};

use super::{ItemReader, Retention, TTL_ATTRIBUTE, n, s, ttl_seconds};
use crate::error::AwsError;

const CONVERSATION: &str = "conversation";
const FEEDBACK_ID: &str = "feedback_id";

#[derive(Debug, Clone)]
pub struct DynamoFeedbackStore {
    client: Client,
    table: String,
    retention_ms: i64,
}

impl DynamoFeedbackStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_ms: Retention::default().feedback_ms,
        }
    }

    /// How long feedback is kept.
    pub fn with_retention_ms(mut self, retention_ms: i64) -> Self {
        self.retention_ms = retention_ms;
        self
    }

    /// Every feedback of one conversation, oldest first.
    pub async fn list(&self, conversation: &ConversationKey) -> Result<Vec<Feedback>, StoreError> {
        let mut feedback = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#c = :c")
                .expression_attribute_names("#c", CONVERSATION)
                .expression_attribute_values(":c", s(conversation.as_str()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| AwsError::dynamo("Query", &self.table, e))?;
            for item in output.items() {
                let id = item
                    .get(FEEDBACK_ID)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    .unwrap_or("?");
                let reader = ItemReader {
                    table: &self.table,
                    key: id,
                    item,
                };
                feedback.push(Feedback {
                    conversation: conversation.clone(),
                    helpful: item.get("helpful").and_then(|v| v.as_bool().ok()).copied(),
                    satisfaction: match item.get("satisfaction") {
                        Some(_) => Some(reader.number("satisfaction")?),
                        None => None,
                    },
                    comment: reader.opt_string("comment")?.map(str::to_owned),
                    faq_id: reader.opt_string("faq_id")?.map(str::to_owned),
                    at_ms: reader.number("at_ms")?,
                });
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(feedback),
            }
        }
    }
}

/// Sort key: the time, then a digest of the content, so that a retried put of
/// the same feedback overwrites itself while two different ones in the same
/// millisecond both stay.
fn feedback_id(feedback: &Feedback) -> String {
    let digest = Sha256::digest(serde_json::to_vec(feedback).unwrap_or_default());
    format!(
        "{:013}#{}",
        feedback.at_ms.max(0),
        hex::encode(&digest[..8])
    )
}

#[async_trait]
impl FeedbackStore for DynamoFeedbackStore {
    async fn put(&self, feedback: &Feedback) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(CONVERSATION, s(feedback.conversation.as_str()))
            .item(FEEDBACK_ID, s(feedback_id(feedback)))
            .item("channel", s(feedback.conversation.channel()))
            .item("at_ms", n(feedback.at_ms))
            .item(
                TTL_ATTRIBUTE,
                ttl_seconds(feedback.at_ms.saturating_add(self.retention_ms)),
            );
        if let Some(helpful) = feedback.helpful {
            request = request.item(
                "helpful",
                aws_sdk_dynamodb::types::AttributeValue::Bool(helpful),
            );
        }
        if let Some(satisfaction) = feedback.satisfaction {
            request = request.item("satisfaction", n(satisfaction));
        }
        if let Some(comment) = feedback.comment.as_deref().filter(|c| !c.is_empty()) {
            request = request.item("comment", s(comment));
        }
        if let Some(faq_id) = feedback.faq_id.as_deref() {
            request = request.item("faq_id", s(faq_id));
        }
        request
            .send()
            .await
            .map_err(|e| AwsError::dynamo("PutItem", &self.table, e))?;
        Ok(())
    }
}
