//! Knowledge gaps: unanswered questions counted with an atomic `ADD`, listed
//! most frequent first through the `by_count` index.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use switchboard_domain::{GapLog, KnowledgeGap, Language, StoreError};

use super::{ItemReader, Retention, TTL_ATTRIBUTE, n, s, ttl_seconds};
use crate::error::AwsError;

const QUESTION_KEY: &str = "question_key";
/// Constant partition key of the `by_count` index: every gap in one ordered list.
const KIND: &str = "kind";
const GAP_KIND: &str = "gap";
const COUNT: &str = "count";
pub(crate) const BY_COUNT_INDEX: &str = "by_count";

/// Partition keys may hold 2048 bytes; longer questions are keyed by digest.
const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone)]
pub struct DynamoGapLog {
    client: Client,
    table: String,
    retention_ms: i64,
}

impl DynamoGapLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_ms: Retention::default().gaps_ms,
        }
    }

    /// How long a gap is kept after it was last asked.
    pub fn with_retention_ms(mut self, retention_ms: i64) -> Self {
        self.retention_ms = retention_ms;
        self
    }
}

/// Folds a question so that case, spacing and punctuation do not split its count.
pub(crate) fn question_key(question: &str) -> String {
    let folded = question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if folded.len() > MAX_KEY_BYTES {
        format!("sha256:{}", hex::encode(Sha256::digest(folded.as_bytes())))
    } else {
        folded
    }
}

#[async_trait]
impl GapLog for DynamoGapLog {
    async fn record(
        &self,
        question: &str,
        language: Language,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = question_key(question);
        if key.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key(QUESTION_KEY, s(key))
            .update_expression(
                "SET question = :question, #lang = :lang, last_seen_ms = :now, #kind = :kind, #ttl = :ttl \
                 ADD #count :one",
            )
            .expression_attribute_names("#lang", "language")
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":question", s(question.trim()))
            .expression_attribute_values(":lang", s(language.code()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":kind", s(GAP_KIND))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", ttl_seconds(now_ms.saturating_add(self.retention_ms)))
            .send()
            .await
            .map_err(|e| AwsError::dynamo("UpdateItem", &self.table, e))?;
        Ok(())
    }

    async fn most_frequent(&self, limit: usize) -> Result<Vec<KnowledgeGap>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page = i32::try_from(limit.clamp(25, 1000)).unwrap_or(1000);
        let mut gaps: Vec<KnowledgeGap> = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_COUNT_INDEX)
                .key_condition_expression("#kind = :kind")
                .expression_attribute_names("#kind", KIND)
                .expression_attribute_values(":kind", s(GAP_KIND))
                .scan_index_forward(false)
                .limit(page)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| AwsError::dynamo("Query", &self.table, e))?;
            for item in output.items() {
                let key = item
                    .get(QUESTION_KEY)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    .unwrap_or("?");
                let reader = ItemReader {
                    table: &self.table,
                    key,
                    item,
                };
                gaps.push(KnowledgeGap {
                    question: reader.string("question")?.to_owned(),
                    language: Language::from_code(reader.string("language")?).unwrap_or_default(),
                    count: reader.number(COUNT)?,
                    last_seen_ms: reader.number("last_seen_ms")?,
                });
            }
            // Read on past `limit` while the count ties with the last place, so
            // that ties are broken by recency like the other stores do.
            let settled = gaps.len() > limit && gaps[limit].count < gaps[limit - 1].count;
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() && !settled => start = Some(key.clone()),
                _ => break,
            }
        }
        gaps.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.last_seen_ms.cmp(&a.last_seen_ms))
        });
        gaps.truncate(limit);
        Ok(gaps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_fold_case_spacing_and_punctuation() {
        assert_eq!(
            question_key("  Where is   my ORDER?! "),
            "where is my order"
        );
        assert_eq!(
            question_key("where is my order"),
            question_key("Where is my order?")
        );
        assert_eq!(question_key("?!"), "");
    }

    #[test]
    fn long_questions_are_keyed_by_digest() {
        let key = question_key(&"word ".repeat(1000));
        assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
    }
}
