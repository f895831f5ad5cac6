//! Export and erase of one customer across the DynamoDB tables.
//!
//! Sessions are keyed by conversation, so a customer's are found with a
//! filtered `Scan` of the sessions table. Erasure is rare and run by an
//! operator, which a scan suits up to hundreds of thousands of conversations;
//! beyond that a `customer` index would be the next step.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use switchboard_domain::privacy::{
    CustomerData, CustomerExport, CustomerRef, Erasure, customer_texts,
};
use switchboard_domain::redact::redact;
use switchboard_domain::{
    Clock, ConversationKey, Customer, Session, StoreError, SystemClock, Tier,
};

use super::gaps::question_key;
use super::{DynamoCounterStore, DynamoFeedbackStore, Item, ItemReader, s};
use crate::config::AwsResources;
use crate::error::AwsError;

#[derive(Debug, Clone)]
pub struct DynamoCustomerData {
    client: Client,
    sessions_table: String,
    customers_table: String,
    feedback_table: String,
    gaps_table: String,
    /// Where the email channels' reply counters and bounce marks are kept.
    counters_table: String,
}

impl DynamoCustomerData {
    pub fn new(client: Client, resources: &AwsResources) -> Self {
        Self {
            client,
            sessions_table: resources.sessions_table.clone(),
            customers_table: resources.customers_table.clone(),
            feedback_table: resources.feedback_table.clone(),
            gaps_table: resources.gaps_table.clone(),
            counters_table: resources.idempotency_table.clone(),
        }
    }

    async fn conversations(&self, customer: &CustomerRef) -> Result<Vec<Session>, StoreError> {
        let table = &self.sessions_table;
        let mut sessions = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(table)
                .filter_expression("channel = :channel AND customer_id = :customer")
                .expression_attribute_values(":channel", s(&customer.channel))
                .expression_attribute_values(":customer", s(&customer.customer_id))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::dynamo("Scan", table, e))?;
            for item in output.items() {
                let key = match item.get("conversation") {
                    Some(aws_sdk_dynamodb::types::AttributeValue::S(key)) => key.as_str(),
                    _ => "",
                };
                let reader = ItemReader { table, key, item };
                let mut session: Session = serde_json::from_str(reader.string("session")?)
                    .map_err(|e| StoreError::Corrupt {
                        key: key.to_owned(),
                        source: Box::new(e),
                    })?;
                session.version = reader.number("version")?;
                sessions.push(session);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        sessions.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(sessions)
    }

    async fn record(&self, customer: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        let table = &self.customers_table;
        let key = customer.key();
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key("customer", s(&key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("GetItem", table, e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let reader = ItemReader {
            table,
            key: &key,
            item,
        };
        let message_count: u64 = reader.number("message_count")?;
        let tier = reader
            .opt_string("tier")?
            .and_then(|t| serde_json::from_value(serde_json::Value::String(t.to_owned())).ok())
            .unwrap_or(if message_count > 1 {
                Tier::Regular
            } else {
                Tier::New
            });
        Ok(Some(Customer {
            key: key.clone(),
            tier,
            first_seen_ms: reader.number("first_seen_ms")?,
            last_seen_ms: reader.number("last_seen_ms")?,
            message_count,
        }))
    }

    /// The gap items (key, wording) holding one of the customer's questions.
    async fn gaps(&self, conversations: &[Session]) -> Result<Vec<(String, String)>, StoreError> {
        let table = &self.gaps_table;
        let mut keys: Vec<String> = customer_texts(conversations)
            .iter()
            .flat_map(|text| [question_key(text), question_key(&redact(text))])
            .filter(|key| !key.is_empty())
            .collect();
        keys.sort();
        keys.dedup();
        let mut gaps = Vec::new();
        for key in keys {
            let output = self
                .client
                .get_item()
                .table_name(table)
                .key("question_key", s(&key))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| AwsError::dynamo("GetItem", table, e))?;
            if let Some(item) = output.item() {
                let reader = ItemReader {
                    table,
                    key: &key,
                    item,
                };
                let question = reader.string("question")?.to_owned();
                gaps.push((key, question));
            }
        }
        Ok(gaps)
    }

    /// The feedback items' sort keys of one conversation.
    async fn feedback_ids(
        &self,
        conversation: &ConversationKey,
    ) -> Result<Vec<String>, StoreError> {
        let table = &self.feedback_table;
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("conversation = :conversation")
                .expression_attribute_values(":conversation", s(conversation.as_str()))
                .projection_expression("feedback_id")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::dynamo("Query", table, e))?;
            for item in output.items() {
                if let Some(aws_sdk_dynamodb::types::AttributeValue::S(id)) =
                    item.get("feedback_id")
                {
                    ids.push(id.clone());
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(ids),
            }
        }
    }

    /// Deletes one item; whether it was there.
    async fn delete(&self, table: &str, key: Item) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("DeleteItem", table, e))?;
        Ok(output.attributes().is_some_and(|item| !item.is_empty()))
    }
}

fn key(pairs: &[(&str, &str)]) -> Item {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), s(*value)))
        .collect()
}

#[async_trait]
impl CustomerData for DynamoCustomerData {
    async fn export(&self, customer: &CustomerRef) -> Result<CustomerExport, StoreError> {
        let conversations = self.conversations(customer).await?;
        let feedback_store = DynamoFeedbackStore::new(self.client.clone(), &self.feedback_table);
        let mut feedback = Vec::new();
        for session in &conversations {
            feedback.extend(feedback_store.list(&session.key).await?);
        }
        Ok(CustomerExport {
            customer: customer.key(),
            record: self.record(customer).await?,
            feedback,
            queued: Vec::new(),
            unanswered_questions: self
                .gaps(&conversations)
                .await?
                .into_iter()
                .map(|(_, question)| question)
                .collect(),
            conversations,
        })
    }

    async fn erase(&self, customer: &CustomerRef) -> Result<Erasure, StoreError> {
        let conversations = self.conversations(customer).await?;
        let gaps = self.gaps(&conversations).await?;
        let mut erasure = Erasure {
            customer: customer.key(),
            ..Erasure::default()
        };
        // Feedback and gaps first: if the erase stops half-way, the sessions
        // that lead to them are still there for the next attempt.
        for session in &conversations {
            for id in self.feedback_ids(&session.key).await? {
                let item = key(&[("conversation", session.key.as_str()), ("feedback_id", &id)]);
                erasure.feedback += usize::from(self.delete(&self.feedback_table, item).await?);
            }
        }
        for (question_key, _) in &gaps {
            let item = key(&[("question_key", question_key)]);
            erasure.unanswered_questions += usize::from(self.delete(&self.gaps_table, item).await?);
        }
        for session in &conversations {
            let item = key(&[("conversation", session.key.as_str())]);
            erasure.conversations += usize::from(self.delete(&self.sessions_table, item).await?);
        }
        // Counters cannot be listed by key prefix here, so the erase names every
        // one that can still count; older ones have expired.
        for counter in customer.live_counter_keys(SystemClock.now_ms()) {
            let item = key(&[("id", &DynamoCounterStore::id(&counter))]);
            erasure.counters += usize::from(self.delete(&self.counters_table, item).await?);
        }
        let item = key(&[("customer", &customer.key())]);
        erasure.records = usize::from(self.delete(&self.customers_table, item).await?);
        Ok(erasure)
    }
}
