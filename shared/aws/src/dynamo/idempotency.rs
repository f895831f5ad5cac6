//! Idempotency records: one item per key with a status and the time until
//! which it holds, written with conditional puts (the scheme of AWS Lambda
//! Powertools' idempotency utility).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use switchboard_domain::{Claim, INTERRUPTED_CLAIM_KEPT_MS, IdempotencyStore, StoreError};

use super::{Item, ItemReader, TTL_ATTRIBUTE, n, s, ttl_seconds};
use crate::error::AwsError;

const ID: &str = "id";
const STATUS: &str = "status";
/// Lease end for an in-progress record, keep-until for a completed one (unix ms).
/// A record past this time counts as absent, whatever DynamoDB's TTL has done yet.
const VALID_UNTIL: &str = "valid_until_ms";
/// What the finished work produced (a reply's text), on completed records only.
const RESULT: &str = "result";
const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn status_of(&self, key: &str, item: &Item) -> Result<Claim, AwsError> {
        let reader = ItemReader {
            table: &self.table,
            key,
            item,
        };
        match reader.string(STATUS)? {
            COMPLETED => Ok(Claim::Done),
            _ => Ok(Claim::InProgress),
        }
    }

    async fn try_claim(
        &self,
        key: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Claim>, AwsError> {
        let lease_until = now_ms.saturating_add(lease_ms);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ID, s(key))
            .item(STATUS, s(IN_PROGRESS))
            .item(VALID_UNTIL, n(lease_until))
            // Kept past the lease: a redelivery must find an interrupted claim.
            .item(
                TTL_ATTRIBUTE,
                ttl_seconds(lease_until.saturating_add(INTERRUPTED_CLAIM_KEPT_MS)),
            )
            .condition_expression("attribute_not_exists(#id) OR #valid <= :now")
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#valid", VALID_UNTIL)
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            // An in-progress record replaced: its holder's lease ran out.
            Ok(output) => Ok(Some(
                match output.attributes().and_then(|old| old.get(STATUS)) {
                    Some(AttributeValue::S(status)) if status == IN_PROGRESS => Claim::TakenOver,
                    _ => Claim::Acquired,
                },
            )),
            Err(error) => match error.into_service_error() {
                PutItemError::ConditionalCheckFailedException(failed) => match failed.item() {
                    Some(item) => self.status_of(key, item).map(Some),
                    // Servers that do not return the old item: read it.
                    None => self.read_status(key).await,
                },
                other => Err(AwsError::dynamo("PutItem", &self.table, other)),
            },
        }
    }

    /// The claim a failed conditional put stands for; `None` when the record
    /// vanished in between (released), so the caller should try again.
    async fn read_status(&self, key: &str) -> Result<Option<Claim>, AwsError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("GetItem", &self.table, e))?;
        output
            .item()
            .map(|item| self.status_of(key, item))
            .transpose()
    }
}

impl DynamoIdempotencyStore {
    async fn finish(
        &self,
        key: &str,
        keep_until_ms: i64,
        result: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#valid", VALID_UNTIL)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#result", RESULT)
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":keep", n(keep_until_ms))
            .expression_attribute_values(":ttl", ttl_seconds(keep_until_ms));
        request = match result {
            Some(result) => request
                .update_expression(
                    "SET #status = :completed, #valid = :keep, #ttl = :ttl, #result = :result",
                )
                .expression_attribute_values(":result", s(result)),
            None => request.update_expression(
                "SET #status = :completed, #valid = :keep, #ttl = :ttl REMOVE #result",
            ),
        };
        request
            .send()
            .await
            .map_err(|e| AwsError::dynamo("UpdateItem", &self.table, e))?;
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(&self, key: &str, now_ms: i64, lease_ms: i64) -> Result<Claim, StoreError> {
        // A record can only vanish between the put and the read through a
        // release, so a second attempt settles it; a third is for safety.
        for _ in 0..3 {
            if let Some(claim) = self.try_claim(key, now_ms, lease_ms).await? {
                return Ok(claim);
            }
        }
        Err(StoreError::Conflict(key.to_owned()))
    }

    async fn complete(&self, key: &str, keep_until_ms: i64) -> Result<(), StoreError> {
        self.finish(key, keep_until_ms, None).await
    }

    async fn complete_with_result(
        &self,
        key: &str,
        keep_until_ms: i64,
        result: &str,
    ) -> Result<(), StoreError> {
        self.finish(key, keep_until_ms, Some(result)).await
    }

    async fn result(&self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::dynamo("GetItem", &self.table, e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let reader = ItemReader {
            table: &self.table,
            key,
            item,
        };
        if reader.string(STATUS)? != COMPLETED || reader.number::<i64>(VALID_UNTIL)? <= now_ms {
            return Ok(None);
        }
        Ok(reader.opt_string(RESULT)?.map(str::to_owned))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        // Only an in-progress record is given up; a late release must not
        // undo a completion.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ID, s(key))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(AwsError::dynamo("DeleteItem", &self.table, error).into()),
        }
    }
}
