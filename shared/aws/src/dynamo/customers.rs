//! Customers: one item per `channel:customer_id`, counted with one atomic update.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use switchboard_domain::{Customer, CustomerStore, StoreError, Tier};

use super::{ItemReader, Retention, TTL_ATTRIBUTE, n, s, ttl_seconds};
use crate::error::AwsError;

const CUSTOMER: &str = "customer";

#[derive(Debug, Clone)]
pub struct DynamoCustomerStore {
    client: Client,
    table: String,
    retention_ms: i64,
}

impl DynamoCustomerStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_ms: Retention::default().customers_ms,
        }
    }

    /// How long a customer is remembered after the last contact.
    pub fn with_retention_ms(mut self, retention_ms: i64) -> Self {
        self.retention_ms = retention_ms;
        self
    }
}

#[async_trait]
impl CustomerStore for DynamoCustomerStore {
    async fn record_contact(&self, key: &str, now_ms: i64) -> Result<Option<Customer>, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CUSTOMER, s(key))
            .update_expression(
                "SET first_seen_ms = if_not_exists(first_seen_ms, :now), last_seen_ms = :now, #ttl = :ttl \
                 ADD message_count :one",
            )
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", ttl_seconds(now_ms.saturating_add(self.retention_ms)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("UpdateItem", &self.table, e))?;
        let Some(item) = output.attributes().filter(|item| !item.is_empty()) else {
            return Ok(None);
        };
        let reader = ItemReader {
            table: &self.table,
            key,
            item,
        };
        // A tier stored by hand (e.g. "vip") wins; a returning customer is regular otherwise.
        let tier = reader
            .opt_string("tier")?
            .and_then(|t| serde_json::from_value(serde_json::Value::String(t.to_owned())).ok())
            .unwrap_or(Tier::Regular);
        Ok(Some(Customer {
            key: key.to_owned(),
            tier,
            first_seen_ms: reader.number("first_seen_ms")?,
            last_seen_ms: reader.number("last_seen_ms")?,
            message_count: reader.number("message_count")?,
        }))
    }
}
