//! The FAQ knowledge base as JSON documents, one item per entry, in order.
//!
//! Entries are written under a new *generation* (a partition of its own) and
//! then made current by one conditional update of a pointer item, so readers
//! never see half of an import. The generation before the current one is kept
//! (a reader may still be paging through it); older ones are deleted.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use sha2::{Digest, Sha256};
use switchboard_domain::StoreError;

use super::{Item, ItemReader, n, s};
use crate::dynamo::sessions::MAX_DOCUMENT_BYTES;
use crate::error::AwsError;

const KB: &str = "kb";
const ENTRY: &str = "entry";
const DOCUMENT: &str = "doc";
const POINTER: &str = "#current";
const GENERATION: &str = "generation";
const PREVIOUS: &str = "previous_generation";
const BATCH: usize = 25;

#[derive(Debug, Clone)]
pub struct DynamoKnowledgeBase {
    client: Client,
    table: String,
    name: String,
}

impl DynamoKnowledgeBase {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            name: "default".to_owned(),
        }
    }

    /// Several knowledge bases can share the table under different names.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the knowledge base with `entries`, kept in this order.
    /// Returns the new generation.
    pub async fn put_entries(
        &self,
        entries: &[serde_json::Value],
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let raw = entries
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt {
                key: self.name.clone(),
                source: Box::new(e),
            })?;
        self.put_raw_entries(&raw, now_ms).await
    }

    /// Like [`DynamoKnowledgeBase::put_entries`] with each entry as JSON text
    /// (stored as given after checking that it parses).
    pub async fn put_raw_entries(
        &self,
        entries: &[String],
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let mut digest = Sha256::new();
        for (index, entry) in entries.iter().enumerate() {
            serde_json::from_str::<serde::de::IgnoredAny>(entry).map_err(|e| {
                StoreError::Corrupt {
                    key: format!("{} entry {}", self.name, index + 1),
                    source: Box::new(e),
                }
            })?;
            if entry.len() > MAX_DOCUMENT_BYTES {
                return Err(AwsError::Malformed {
                    table: self.table.clone(),
                    key: format!("{} entry {}", self.name, index + 1),
                    detail: format!("{} bytes is more than one item holds", entry.len()),
                }
                .into());
            }
            digest.update(entry.as_bytes());
            digest.update(b"\n");
        }
        let generation = format!(
            "{:013}-{}",
            now_ms.max(0),
            &hex::encode(digest.finalize())[..12]
        );
        let (current, previous) = self.pointer().await?;
        if current.as_deref() == Some(generation.as_str()) {
            return Ok(generation);
        }

        let partition = self.partition(&generation);
        let writes = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let mut item = Item::new();
                item.insert(KB.into(), s(&partition));
                item.insert(ENTRY.into(), s(format!("{index:06}")));
                item.insert(DOCUMENT.into(), s(entry));
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| self.error("BatchWriteItem", e))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, AwsError>>()?;
        self.batch_write(writes).await?;

        // Flip the pointer, unless someone else flipped it since we read it.
        let mut flip = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KB, s(&self.name))
            .key(ENTRY, s(POINTER))
            .update_expression(
                "SET #gen = :gen, #prev = :prev, entry_count = :count, updated_at_ms = :now",
            )
            .expression_attribute_names("#gen", GENERATION)
            .expression_attribute_names("#prev", PREVIOUS)
            .expression_attribute_values(":gen", s(&generation))
            .expression_attribute_values(":prev", s(current.clone().unwrap_or_default()))
            .expression_attribute_values(":count", n(entries.len()))
            .expression_attribute_values(":now", n(now_ms));
        flip = match &current {
            Some(current) => flip
                .condition_expression("#gen = :expected")
                .expression_attribute_values(":expected", s(current)),
            None => flip.condition_expression("attribute_not_exists(#gen)"),
        };
        if let Err(error) = flip.send().await {
            let error = error.into_service_error();
            self.delete_generation(&generation).await?;
            return Err(match error {
                UpdateItemError::ConditionalCheckFailedException(_) => {
                    StoreError::Conflict(self.name.clone())
                }
                other => self.error("UpdateItem", other).into(),
            });
        }
        if let Some(previous) = previous.filter(|p| !p.is_empty() && *p != generation) {
            self.delete_generation(&previous).await?;
        }
        Ok(generation)
    }

    /// The current entries, in the order they were put; empty if none were.
    pub async fn load_entries(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        self.load_raw_entries()
            .await?
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
                    key: format!("{} entry {}", self.name, index + 1),
                    source: Box::new(e),
                })
            })
            .collect()
    }

    /// The current entries as the JSON text they were stored as.
    pub async fn load_raw_entries(&self) -> Result<Vec<String>, StoreError> {
        let (current, _) = self.pointer().await?;
        let Some(generation) = current else {
            return Ok(Vec::new());
        };
        let partition = self.partition(&generation);
        let mut entries = Vec::new();
        for item in self.query_partition(&partition, false).await? {
            let key = item
                .get(ENTRY)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let reader = ItemReader {
                table: &self.table,
                key: &key,
                item: &item,
            };
            entries.push(reader.string(DOCUMENT)?.to_owned());
        }
        Ok(entries)
    }

    /// The current entries as JSON Lines (one entry a line), or `None` if no
    /// knowledge base was put yet.
    pub async fn load_jsonl(&self) -> Result<Option<String>, StoreError> {
        let (current, _) = self.pointer().await?;
        if current.is_none() {
            return Ok(None);
        }
        let entries = self.load_raw_entries().await?;
        // Stored text may be pretty-printed; JSON Lines needs one line each.
        let lines = entries
            .into_iter()
            .map(|raw| {
                if !raw.contains(['\n', '\r']) {
                    return Ok(raw);
                }
                serde_json::from_str::<serde_json::Value>(&raw)
                    .and_then(|v| serde_json::to_string(&v))
                    .map_err(|e| StoreError::Corrupt {
                        key: self.name.clone(),
                        source: Box::new(e),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(lines.join("\n")))
    }

    fn partition(&self, generation: &str) -> String {
        format!("{}#{generation}", self.name)
    }

    fn error(
        &self,
        operation: &'static str,
        source: impl Into<switchboard_domain::BoxError>,
    ) -> AwsError {
        AwsError::dynamo(operation, &self.table, source)
    }

    /// `(current, previous)` generation.
    async fn pointer(&self) -> Result<(Option<String>, Option<String>), StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KB, s(&self.name))
            .key(ENTRY, s(POINTER))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        let Some(item) = output.item() else {
            return Ok((None, None));
        };
        let reader = ItemReader {
            table: &self.table,
            key: &self.name,
            item,
        };
        let current = reader.opt_string(GENERATION)?.map(str::to_owned);
        let previous = reader
            .opt_string(PREVIOUS)?
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        Ok((current, previous))
    }

    async fn query_partition(
        &self,
        partition: &str,
        keys_only: bool,
    ) -> Result<Vec<Item>, AwsError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#kb = :kb")
                .expression_attribute_names("#kb", KB)
                .expression_attribute_values(":kb", s(partition))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if keys_only {
                query = query
                    .projection_expression("#kb, #entry")
                    .expression_attribute_names("#entry", ENTRY);
            }
            let output = query.send().await.map_err(|e| self.error("Query", e))?;
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    async fn delete_generation(&self, generation: &str) -> Result<(), AwsError> {
        let partition = self.partition(generation);
        let deletes = self
            .query_partition(&partition, true)
            .await?
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| self.error("BatchWriteItem", e))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, AwsError>>()?;
        self.batch_write(deletes).await
    }

    /// Writes in batches of 25, retrying what DynamoDB leaves unprocessed.
    async fn batch_write(&self, writes: Vec<WriteRequest>) -> Result<(), AwsError> {
        for chunk in writes.chunks(BATCH) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| self.error("BatchWriteItem", e))?;
                pending = output
                    .unprocessed_items()
                    .and_then(|items| items.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(AwsError::Unprocessed {
                            operation: "BatchWriteItem",
                            table: self.table.clone(),
                            pending: pending.len(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
                }
            }
        }
        Ok(())
    }
}
