//! Provider access tokens: one item per credential. Refreshes take a lease
//! with a conditional write on the version last seen, so one instance at a
//! time asks the provider, and a new token is stored only by its lease holder.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use switchboard_domain::{Credential, CredentialStore, Secret, StoreError};

use super::{ItemReader, n, s};
use crate::error::AwsError;

const KEY: &str = "credential";
const VALUE: &str = "token";
const EXPIRES: &str = "token_expires_ms";
const VERSION: &str = "version";
const OWNER: &str = "lease_owner";
const UNTIL: &str = "lease_until_ms";

#[derive(Debug, Clone)]
pub struct DynamoCredentialStore {
    client: Client,
    table: String,
}

impl DynamoCredentialStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn conditional_check_failed<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl CredentialStore for DynamoCredentialStore {
    async fn get(&self, key: &str) -> Result<Option<Credential>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(key))
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
        let Some(value) = reader.opt_string(VALUE)? else {
            return Ok(None);
        };
        Ok(Some(Credential {
            value: Secret::new(value),
            expires_at_ms: reader.number(EXPIRES)?,
            version: reader.number(VERSION)?,
        }))
    }

    async fn lease_refresh(
        &self,
        key: &str,
        owner: &str,
        seen_version: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let version_is_seen = if seen_version == 0 {
            "(attribute_not_exists(#version) OR #version = :seen)"
        } else {
            "#version = :seen"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .update_expression("SET #owner = :me, #until = :until")
            .condition_expression(format!(
                "{version_is_seen} AND (attribute_not_exists(#owner) OR #owner = :me OR #until <= :now)"
            ))
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#until", UNTIL)
            .expression_attribute_values(":seen", n(seen_version))
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":until", n(now_ms.saturating_add(lease_ms)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if conditional_check_failed(&error) => Ok(false),
            Err(error) => Err(AwsError::dynamo("UpdateItem", &self.table, error).into()),
        }
    }

    async fn put(&self, key: &str, owner: &str, credential: &Credential) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .update_expression("SET #value = :value, #expires = :expires, #version = :version REMOVE #owner, #until")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#value", VALUE)
            .expression_attribute_names("#expires", EXPIRES)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#until", UNTIL)
            .expression_attribute_values(":value", s(credential.value.expose()))
            .expression_attribute_values(":expires", n(credential.expires_at_ms))
            .expression_attribute_values(":version", n(credential.version))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if conditional_check_failed(&error) => {
                Err(StoreError::Conflict(key.to_owned()))
            }
            Err(error) => Err(AwsError::dynamo("UpdateItem", &self.table, error).into()),
        }
    }
}
