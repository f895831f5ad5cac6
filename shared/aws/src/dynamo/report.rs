//! What reports read: the sessions and feedback of a period, by scanning
//! their tables (reports run weekly or by hand; no index is kept for them).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use switchboard_domain::{ConversationKey, Feedback, ReportRecords, Session, StoreError};

use super::{ItemReader, n};
use crate::error::AwsError;

type Item = std::collections::HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoReportRecords {
    client: Client,
    sessions_table: String,
    feedback_table: String,
}

impl DynamoReportRecords {
    pub fn new(
        client: Client,
        sessions_table: impl Into<String>,
        feedback_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            sessions_table: sessions_table.into(),
            feedback_table: feedback_table.into(),
        }
    }

    /// Every item of `table` whose number `attribute` is at least `since_ms`.
    async fn scan_since(
        &self,
        table: &str,
        attribute: &str,
        since_ms: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(table)
                .filter_expression("#at >= :since")
                .expression_attribute_names("#at", attribute)
                .expression_attribute_values(":since", n(since_ms))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::dynamo("Scan", table, e))?;
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value,
        _ => "",
    }
}

#[async_trait]
impl ReportRecords for DynamoReportRecords {
    async fn sessions_since(&self, since_ms: i64) -> Result<Vec<Session>, StoreError> {
        let table = &self.sessions_table;
        let mut sessions = Vec::new();
        for item in self.scan_since(table, "updated_at_ms", since_ms).await? {
            let key = text(&item, "conversation");
            let reader = ItemReader {
                table,
                key,
                item: &item,
            };
            let mut session: Session =
                serde_json::from_str(reader.string("session")?).map_err(|e| {
                    StoreError::Corrupt {
                        key: key.to_owned(),
                        source: Box::new(e),
                    }
                })?;
            session.version = reader.number("version")?;
            sessions.push(session);
        }
        sessions.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(sessions)
    }

    async fn feedback_since(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError> {
        let table = &self.feedback_table;
        let mut feedback = Vec::new();
        for item in self.scan_since(table, "at_ms", since_ms).await? {
            let key = text(&item, "feedback_id");
            let reader = ItemReader {
                table,
                key,
                item: &item,
            };
            feedback.push(Feedback {
                conversation: ConversationKey(text(&item, "conversation").to_owned()),
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
        feedback.sort_by_key(|f| f.at_ms);
        Ok(feedback)
    }
}
