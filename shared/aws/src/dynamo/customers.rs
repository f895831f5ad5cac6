//! Customers: one item per `channel:customer_id`, counted with one atomic update.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use switchboard_domain::{Clock, Customer, CustomerStore, StoreError, Tier};

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
        // A record made by setting the tier has no contact yet.
        let count = |name: &str| -> Result<i64, StoreError> {
            Ok(match item.contains_key(name) {
                true => reader.number(name)?,
                false => 0,
            })
        };
        let message_count = u64::try_from(count("message_count")?).unwrap_or_default();
        // A tier stored through the agents' API wins; else a returning customer is regular.
        let tier = reader
            .opt_string("tier")?
            .and_then(|t| t.parse().ok())
            .unwrap_or(if message_count > 0 {
                Tier::Regular
            } else {
                Tier::New
            });
        Ok(Some(Customer {
            key: key.to_owned(),
            tier,
            first_seen_ms: count("first_seen_ms")?,
            last_seen_ms: count("last_seen_ms")?,
            message_count,
        }))
    }

    async fn set_tier(&self, key: &str, tier: Tier) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(CUSTOMER, s(key))
            // A customer not seen yet is kept as long as one just seen.
            .update_expression("SET tier = :tier, #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":tier", s(tier.as_str()))
            .expression_attribute_values(
                ":ttl",
                ttl_seconds(
                    switchboard_domain::SystemClock
                        .now_ms()
                        .saturating_add(self.retention_ms),
                ),
            )
            .send()
            .await
            .map_err(|e| AwsError::dynamo("UpdateItem", &self.table, e))?;
        Ok(())
    }
}
