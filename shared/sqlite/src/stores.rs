//! The store ports on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use switchboard_domain::{
    Claim, ConversationBrief, ConversationKey, ConversationSummary, Customer, CustomerStore,
    Feedback, FeedbackStore, GapLog, INTERRUPTED_CLAIM_KEPT_MS, IdempotencyStore, KnowledgeGap,
    Language, PayloadStore, Session, SessionStatus, SessionStore, StoreError, Tier,
};

use crate::{Cached, SqliteStore, unavailable};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(&self, key: &str, now_ms: i64, lease_ms: i64) -> Result<Claim, StoreError> {
        let key = key.to_owned();
        self.with_claim(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let claim = claim_of(claim_record(&tx, &key)?, now_ms);
            if claim.is_owned() {
                let lease_until = now_ms.saturating_add(lease_ms);
                let expires_at = lease_until.saturating_add(INTERRUPTED_CLAIM_KEPT_MS);
                tx.execute_cached(
                    "INSERT INTO idempotency (key, status, lease_until, expires_at) VALUES (?1, 'in_progress', ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET status = 'in_progress', lease_until = ?2, expires_at = ?3, result = NULL",
                    params![key, lease_until, expires_at],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(claim)
        })
        .await
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
        self.finish(key, keep_until_ms, Some(result.to_owned()))
            .await
    }

    async fn result(&self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.query_row_cached(
                "SELECT result FROM idempotency WHERE key = ?1 AND status = 'done' AND expires_at > ?2",
                params![key, now_ms],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(unavailable)
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.execute_cached(
                "DELETE FROM idempotency WHERE key = ?1 AND status = 'in_progress'",
                [key],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

/// What claiming a key finds, from its record `(status, lease_until, expires_at)`.
pub(crate) fn claim_of(existing: Option<(String, i64, i64)>, now_ms: i64) -> Claim {
    match existing {
        Some((status, _, expires_at)) if status == "done" && expires_at > now_ms => Claim::Done,
        Some((status, lease_until, _)) if status != "done" && lease_until > now_ms => {
            Claim::InProgress
        }
        Some((status, _, _)) if status != "done" => Claim::TakenOver,
        _ => Claim::Acquired,
    }
}

/// The record of `key`: `(status, lease_until, expires_at)`.
pub(crate) fn claim_record(
    conn: &rusqlite::Connection,
    key: &str,
) -> Result<Option<(String, i64, i64)>, StoreError> {
    conn.query_row_cached(
        "SELECT status, lease_until, expires_at FROM idempotency WHERE key = ?1",
        [key],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .optional()
    .map_err(unavailable)
}

/// Records `key` as done until `keep_until_ms`, with what the work produced.
pub(crate) fn mark_done(
    conn: &rusqlite::Connection,
    key: &str,
    keep_until_ms: i64,
    result: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute_cached(
        "INSERT INTO idempotency (key, status, lease_until, expires_at, result) VALUES (?1, 'done', 0, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET status = 'done', lease_until = 0, expires_at = ?2, result = ?3",
        params![key, keep_until_ms, result],
    )
    .map_err(unavailable)?;
    Ok(())
}

impl SqliteStore {
    async fn finish(
        &self,
        key: &str,
        keep_until_ms: i64,
        result: Option<String>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.with(move |conn| mark_done(conn, &key, keep_until_ms, result.as_deref()))
            .await
    }
}

#[async_trait]
impl PayloadStore for SqliteStore {
    async fn put(&self, key: &str, payload: &[u8], expires_at_ms: i64) -> Result<(), StoreError> {
        let (key, payload) = (key.to_owned(), payload.to_vec());
        self.with(move |conn| {
            conn.execute_cached(
                "INSERT INTO payloads (key, body, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET body = ?2, expires_at = MAX(expires_at, ?3)",
                params![key, payload, expires_at_ms],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.query_row_cached("SELECT body FROM payloads WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Session>, StoreError> {
        let key = key.0.clone();
        let read = key.clone();
        let row: Option<(i64, String)> = self
            .with(move |conn| {
                conn.query_row_cached(
                    "SELECT version, data FROM sessions WHERE key = ?1",
                    [&read],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        // Decoded here, not on the store's one thread.
        row.map(|(version, data)| {
            let mut session: Session =
                serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                    key,
                    source: Box::new(e),
                })?;
            session.version = version as u64;
            Ok(session)
        })
        .transpose()
    }

    async fn save(&self, session: &Session) -> Result<u64, StoreError> {
        let data = serde_json::to_string(session).map_err(|e| StoreError::Corrupt {
            key: session.key.0.clone(),
            source: Box::new(e),
        })?;
        let key = session.key.0.clone();
        let expected = session.version as i64;
        let status = serde_json::to_value(session.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let channel = session.channel.clone();
        let updated_at = session.updated_at_ms;
        let summary = (session.status == SessionStatus::Escalated)
            .then(|| serde_json::to_string(&session.summary()))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                key: session.key.0.clone(),
                source: Box::new(e),
            })?;
        let customer = session.customer_key();
        let brief = serde_json::to_string(&session.brief()).map_err(|e| StoreError::Corrupt {
            key: session.key.0.clone(),
            source: Box::new(e),
        })?;
        self.with(move |conn| {
            let changed = if expected == 0 {
                conn.execute_cached(
                    "INSERT INTO sessions (key, version, status, channel, updated_at, data, summary, customer, brief)
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (key) DO NOTHING",
                    params![key, status, channel, updated_at, data, summary, customer, brief],
                )
            } else {
                conn.execute_cached(
                    "UPDATE sessions SET version = version + 1, status = ?2, updated_at = ?3, data = ?4, summary = ?6,
                     customer = ?7, brief = ?8
                     WHERE key = ?1 AND version = ?5",
                    params![key, status, updated_at, data, expected, summary, customer, brief],
                )
            }
            .map_err(unavailable)?;
            if changed == 1 { Ok(expected as u64 + 1) } else { Err(StoreError::Conflict(key)) }
        })
        .await
    }

    async fn escalated(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT key, summary, data FROM sessions WHERE status = 'escalated' LIMIT ?1",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map([limit], |row| {
                    let key: String = row.get(0)?;
                    let summary: Option<String> = row.get(1)?;
                    // Rows saved before summaries were kept: read the session.
                    let text = match summary {
                        Some(summary) => (true, summary),
                        None => (false, row.get(2)?),
                    };
                    Ok((key, text))
                })
                .map_err(unavailable)?;
            let mut summaries = Vec::new();
            for row in rows {
                let (key, (is_summary, text)) = row.map_err(unavailable)?;
                let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                    key: key.clone(),
                    source: Box::new(e),
                };
                summaries.push(if is_summary {
                    serde_json::from_str(&text).map_err(corrupt)?
                } else {
                    serde_json::from_str::<Session>(&text)
                        .map_err(corrupt)?
                        .summary()
                });
            }
            Ok(summaries)
        })
        .await
    }

    async fn customer_conversations(
        &self,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<ConversationBrief>, StoreError> {
        let customer = customer.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT key, brief, data FROM sessions WHERE customer = ?1
                     ORDER BY updated_at DESC, key LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![customer, limit], |row| {
                    let key: String = row.get(0)?;
                    let brief: Option<String> = row.get(1)?;
                    // Rows saved before briefs were kept: read the session.
                    let text = match brief {
                        Some(brief) => (true, brief),
                        None => (false, row.get(2)?),
                    };
                    Ok((key, text))
                })
                .map_err(unavailable)?;
            let mut briefs = Vec::new();
            for row in rows {
                let (key, (is_brief, text)) = row.map_err(unavailable)?;
                let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                    key: key.clone(),
                    source: Box::new(e),
                };
                briefs.push(if is_brief {
                    serde_json::from_str(&text).map_err(corrupt)?
                } else {
                    serde_json::from_str::<Session>(&text)
                        .map_err(corrupt)?
                        .brief()
                });
            }
            Ok(briefs)
        })
        .await
    }
}

#[async_trait]
impl CustomerStore for SqliteStore {
    async fn record_contact(&self, key: &str, now_ms: i64) -> Result<Option<Customer>, StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let before: Option<Customer> = tx
                .query_row_cached(
                    "SELECT first_seen, last_seen, message_count, tier FROM customers WHERE key = ?1",
                    [&key],
                    |row| {
                        let message_count = row.get::<_, i64>(2)?.max(0) as u64;
                        let stored: Option<String> = row.get(3)?;
                        Ok(Customer {
                            key: key.clone(),
                            tier: stored
                                .and_then(|tier| tier.parse().ok())
                                .unwrap_or(if message_count > 0 { Tier::Regular } else { Tier::New }),
                            first_seen_ms: row.get(0)?,
                            last_seen_ms: row.get(1)?,
                            message_count,
                        })
                    },
                )
                .optional()
                .map_err(unavailable)?;
            tx.execute_cached(
                "INSERT INTO customers (key, first_seen, last_seen, message_count) VALUES (?1, ?2, ?2, 1)
                 ON CONFLICT (key) DO UPDATE SET last_seen = ?2, message_count = message_count + 1,
                   first_seen = CASE WHEN message_count = 0 THEN ?2 ELSE first_seen END",
                params![key, now_ms],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(before)
        })
        .await
    }

    async fn set_tier(&self, key: &str, tier: Tier) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.execute_cached(
                "INSERT INTO customers (key, first_seen, last_seen, message_count, tier) VALUES (?1, 0, 0, 0, ?2)
                 ON CONFLICT (key) DO UPDATE SET tier = ?2",
                params![key, tier.as_str()],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl FeedbackStore for SqliteStore {
    async fn put(&self, feedback: &Feedback) -> Result<(), StoreError> {
        let feedback = feedback.clone();
        self.with(move |conn| {
            conn.execute_cached(
                "INSERT INTO feedback (conversation, helpful, satisfaction, comment, at, faq_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![feedback.conversation.0, feedback.helpful, feedback.satisfaction, feedback.comment, feedback.at_ms, feedback.faq_id],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

/// Folds a question so that case, spacing and punctuation do not split its count.
pub(crate) fn normalize_question(question: &str) -> String {
    question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl GapLog for SqliteStore {
    async fn record(
        &self,
        question: &str,
        language: Language,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let normalized = normalize_question(question);
        if normalized.is_empty() {
            return Ok(());
        }
        let question = question.trim().to_owned();
        self.with(move |conn| {
            conn.execute_cached(
                "INSERT INTO gaps (normalized, question, language, count, last_seen) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (normalized) DO UPDATE SET question = ?2, count = count + 1, last_seen = ?4",
                params![normalized, question, language.code(), now_ms],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn most_frequent(&self, limit: usize) -> Result<Vec<KnowledgeGap>, StoreError> {
        self.with(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT question, language, count, last_seen FROM gaps
                     ORDER BY count DESC, last_seen DESC LIMIT ?1",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map([limit as i64], |row| {
                    Ok(KnowledgeGap {
                        question: row.get(0)?,
                        language: Language::from_code(&row.get::<_, String>(1)?)
                            .unwrap_or_default(),
                        count: row.get::<_, i64>(2)? as u64,
                        last_seen_ms: row.get(3)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}

impl SqliteStore {
    /// Replaces the stored knowledge base (JSONL, one entry a line) and returns
    /// its generation: the import time, made strictly greater than the previous
    /// generation's, so that a running server sees every import as new.
    pub async fn save_knowledge_base(&self, jsonl: String, now_ms: i64) -> Result<i64, StoreError> {
        self.with(move |conn| {
            conn.query_row_cached(
                "INSERT INTO knowledge_base (id, jsonl, imported_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET jsonl = ?1,
                     imported_at = max(?2, knowledge_base.imported_at + 1)
                 RETURNING imported_at",
                params![jsonl, now_ms],
                |row| row.get(0),
            )
            .map_err(unavailable)
        })
        .await
    }

    /// The generation of the stored knowledge base (see
    /// [`SqliteStore::save_knowledge_base`]); `None` before the first import.
    pub async fn knowledge_base_generation(&self) -> Result<Option<i64>, StoreError> {
        self.with(|conn| {
            conn.query_row_cached(
                "SELECT imported_at FROM knowledge_base WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    /// The stored knowledge base, if one was imported.
    pub async fn load_knowledge_base(&self) -> Result<Option<String>, StoreError> {
        self.with(|conn| {
            conn.query_row_cached("SELECT jsonl FROM knowledge_base WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    /// Sessions updated since `since_ms`, for reports.
    pub async fn sessions_since(&self, since_ms: i64) -> Result<Vec<Session>, StoreError> {
        self.with(move |conn| sessions_where(conn, "updated_at >= ?1", [since_ms]))
            .await
    }

    /// Feedback given since `since_ms`, for reports.
    pub async fn feedback_since(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError> {
        self.with(move |conn| {
            let mut statement = conn
                .prepare("SELECT conversation, helpful, satisfaction, comment, at, faq_id FROM feedback WHERE at >= ?1 ORDER BY id")
                .map_err(unavailable)?;
            let rows = statement
                .query_map([since_ms], |row| {
                    Ok(Feedback {
                        conversation: ConversationKey(row.get(0)?),
                        helpful: row.get(1)?,
                        satisfaction: row.get(2)?,
                        comment: row.get(3)?,
                        faq_id: row.get(5)?,
                        at_ms: row.get(4)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    /// Forgets idempotency records and finished queue items past their time.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.with(move |conn| {
            let records = conn
                .execute_cached("DELETE FROM idempotency WHERE expires_at <= ?1", [now_ms])
                .map_err(unavailable)?;
            // Done items are kept a day so that the queue's own dedupe still sees them.
            let items = conn
                .execute_cached(
                    "DELETE FROM queue WHERE state = 'done' AND visible_at <= ?1",
                    [now_ms - 86_400_000],
                )
                .map_err(unavailable)?;
            let payloads = conn
                .execute_cached("DELETE FROM payloads WHERE expires_at <= ?1", [now_ms])
                .map_err(unavailable)?;
            Ok(records + items + payloads)
        })
        .await
    }
}

/// The sessions of `SELECT ... FROM sessions WHERE <condition>`, decoded,
/// each with its stored version.
pub(crate) fn sessions_where(
    conn: &rusqlite::Connection,
    condition: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Session>, StoreError> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT key, version, data FROM sessions WHERE {condition}"
        ))
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(unavailable)?;
    let mut sessions = Vec::new();
    for row in rows {
        let (key, version, data) = row.map_err(unavailable)?;
        let mut session: Session =
            serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                key,
                source: Box::new(e),
            })?;
        session.version = u64::try_from(version).unwrap_or_default();
        sessions.push(session);
    }
    Ok(sessions)
}

#[async_trait]
impl switchboard_domain::ReportRecords for SqliteStore {
    async fn sessions_since(&self, since_ms: i64) -> Result<Vec<Session>, StoreError> {
        SqliteStore::sessions_since(self, since_ms).await
    }

    async fn feedback_since(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError> {
        SqliteStore::feedback_since(self, since_ms).await
    }
}
