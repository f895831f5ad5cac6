//! Expiring counters, kept in the idempotency table under `count:` keys (the
//! same key space, TTL and grants as the dedupe records): `count` and
//! `valid_until_ms`. A counter past `valid_until_ms` counts as 0 whatever
//! DynamoDB's TTL has done yet.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use switchboard_domain::{CounterStore, StoreError};

use super::{ItemReader, TTL_ATTRIBUTE, n, s, ttl_seconds};
use crate::error::AwsError;

const ID: &str = "id";
const COUNT: &str = "count";
const VALID_UNTIL: &str = "valid_until_ms";

#[derive(Debug, Clone)]
pub struct DynamoCounterStore {
    client: Client,
    table: String,
}

impl DynamoCounterStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The item id under which the counter `key` is kept.
    pub(crate) fn id(key: &str) -> String {
        format!("count:{key}")
    }

    /// Adds one to a live counter below the limit; false when there is none
    /// or it is at the limit.
    async fn add_to_live(&self, id: &str, limit: u64, now_ms: i64) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, s(id))
            .update_expression("ADD #count :one")
            .condition_expression("#valid > :now AND #count < :limit")
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_names("#valid", VALID_UNTIL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":limit", n(limit))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(false),
                other => Err(AwsError::dynamo("UpdateItem", &self.table, other)),
            },
        }
    }

    /// Starts the counter at 1 where there is none or it has expired.
    async fn start(&self, id: &str, now_ms: i64, expires_at_ms: i64) -> Result<bool, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ID, s(id))
            .item(COUNT, n(1))
            .item(VALID_UNTIL, n(expires_at_ms))
            .item(TTL_ATTRIBUTE, ttl_seconds(expires_at_ms))
            .condition_expression("attribute_not_exists(#id) OR #valid <= :now")
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#valid", VALID_UNTIL)
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.into_service_error() {
                PutItemError::ConditionalCheckFailedException(_) => Ok(false),
                other => Err(AwsError::dynamo("PutItem", &self.table, other)),
            },
        }
    }
}

#[async_trait]
impl CounterStore for DynamoCounterStore {
    async fn increment_below(
        &self,
        key: &str,
        limit: u64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        if limit == 0 {
            return Ok(false);
        }
        let id = Self::id(key);
        // Live counter, or none: one of the two conditional writes applies.
        // A second round settles a counter started or expired in between.
        for _ in 0..2 {
            if self.add_to_live(&id, limit, now_ms).await? {
                return Ok(true);
            }
            if self.start(&id, now_ms, expires_at_ms).await? {
                return Ok(true);
            }
            if self.count(key, now_ms).await? >= limit {
                return Ok(false);
            }
        }
        Ok(false)
    }

    async fn count(&self, key: &str, now_ms: i64) -> Result<u64, StoreError> {
        let id = Self::id(key);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(&id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("GetItem", &self.table, e))?;
        let Some(item) = output.item() else {
            return Ok(0);
        };
        let reader = ItemReader {
            table: &self.table,
            key: &id,
            item,
        };
        let valid_until: i64 = reader.number(VALID_UNTIL)?;
        Ok(if valid_until > now_ms {
            reader.number::<u64>(COUNT)?
        } else {
            0
        })
    }
}
