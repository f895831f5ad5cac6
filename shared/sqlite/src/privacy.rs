//! Export and erase of one customer's data, and the retention sweep.
//!
//! Erasing leaves no copy behind in the file: `secure_delete` overwrites the
//! freed content, and a `TRUNCATE` checkpoint empties the write-ahead log.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use switchboard_domain::privacy::{
    CustomerData, CustomerExport, CustomerRef, Erasure, QueuedData, customer_texts,
};
use switchboard_domain::redact::redact;
use switchboard_domain::{
    ConversationKey, Customer, Feedback, QueueName, Session, StoreError, Tier, payload_key,
};

use crate::stores::{normalize_question, sessions_where};
use crate::{SqliteStore, unavailable};

#[async_trait]
impl CustomerData for SqliteStore {
    async fn export(&self, customer: &CustomerRef) -> Result<CustomerExport, StoreError> {
        let customer = customer.clone();
        self.with_alone(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let conversations = conversations_of(&tx, &customer)?;
            let keys: Vec<String> = conversations.iter().map(|s| s.key.0.clone()).collect();
            let texts = customer_texts(&conversations);
            Ok(CustomerExport {
                customer: customer.key(),
                record: record_of(&tx, &customer)?,
                feedback: feedback_of(&tx, &keys)?,
                queued: queued_for(&tx, &keys)?,
                unanswered_questions: gaps_of(&tx, &texts)?
                    .into_iter()
                    .map(|(_, question)| question)
                    .collect(),
                conversations,
            })
        })
        .await
    }

    async fn erase(&self, customer: &CustomerRef) -> Result<Erasure, StoreError> {
        let customer = customer.clone();
        self.with_alone(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let conversations = conversations_of(&tx, &customer)?;
            let keys: Vec<String> = conversations.iter().map(|s| s.key.0.clone()).collect();
            let gaps = gaps_of(&tx, &customer_texts(&conversations))?;
            let mut erasure = Erasure {
                customer: customer.key(),
                ..Erasure::default()
            };
            erasure.records = tx
                .execute("DELETE FROM customers WHERE key = ?1", [customer.key()])
                .map_err(unavailable)?;
            for key in &keys {
                erasure.conversations += tx
                    .execute("DELETE FROM sessions WHERE key = ?1", [key])
                    .map_err(unavailable)?;
                erasure.feedback += tx
                    .execute("DELETE FROM feedback WHERE conversation = ?1", [key])
                    .map_err(unavailable)?;
                // Bodies stored aside go with their items (a finished item's
                // record still names where its body was).
                for payload in payload_keys(&tx, key)? {
                    tx.execute("DELETE FROM payloads WHERE key = ?1", [payload])
                        .map_err(unavailable)?;
                }
                // Every state: even a finished item keeps the conversation key as its group.
                erasure.queued += tx
                    .execute(&format!("DELETE FROM queue WHERE {OF_CONVERSATION}"), [key])
                    .map_err(unavailable)?;
            }
            let (bounce_mark, daily_prefix) = customer.counter_keys();
            erasure.counters += tx
                .execute("DELETE FROM counters WHERE key = ?1", [bounce_mark])
                .map_err(unavailable)?;
            erasure.counters += tx
                .execute(
                    "DELETE FROM counters WHERE substr(key, 1, length(?1)) = ?1",
                    [daily_prefix],
                )
                .map_err(unavailable)?;
            // A gap counts everyone who asked the same question, but it keeps the
            // wording of one of them: it goes as a whole.
            for (normalized, _) in &gaps {
                erasure.unanswered_questions += tx
                    .execute("DELETE FROM gaps WHERE normalized = ?1", [normalized])
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            checkpoint(conn)?;
            Ok(erasure)
        })
        .await
    }
}

impl SqliteStore {
    /// Deletes conversations not updated, and feedback not given, within the
    /// retention periods (`None` keeps them). Returns (conversations, feedback).
    pub async fn sweep_retention(
        &self,
        conversations_before_ms: Option<i64>,
        feedback_before_ms: Option<i64>,
    ) -> Result<(usize, usize), StoreError> {
        self.with_alone(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let mut conversations = 0;
            if let Some(before) = conversations_before_ms {
                // The queue items of a conversation being deleted go with it,
                // unless still waiting to be processed.
                tx.execute(
                    "DELETE FROM queue WHERE state = 'done' AND grp IN
                       (SELECT key FROM sessions WHERE updated_at < ?1)",
                    [before],
                )
                .map_err(unavailable)?;
                conversations = tx
                    .execute("DELETE FROM sessions WHERE updated_at < ?1", [before])
                    .map_err(unavailable)?;
                // An unanswered question keeps a customer's wording: it goes
                // when no conversation it was seen in can be left.
                tx.execute("DELETE FROM gaps WHERE last_seen < ?1", [before])
                    .map_err(unavailable)?;
            }
            let mut feedback = 0;
            if let Some(before) = feedback_before_ms {
                feedback = tx
                    .execute("DELETE FROM feedback WHERE at < ?1", [before])
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            if conversations + feedback > 0 {
                checkpoint(conn)?;
            }
            Ok((conversations, feedback))
        })
        .await
    }
}

/// Moves the log into the database file and truncates it, so that deleted
/// content (already overwritten there by `secure_delete`) survives nowhere.
fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(unavailable)
}

fn conversations_of(tx: &Transaction, customer: &CustomerRef) -> Result<Vec<Session>, StoreError> {
    sessions_where(
        tx,
        "channel = ?1 AND json_extract(data, '$.customer_id') = ?2 ORDER BY key",
        params![customer.channel, customer.customer_id],
    )
}

fn record_of(tx: &Transaction, customer: &CustomerRef) -> Result<Option<Customer>, StoreError> {
    let key = customer.key();
    tx.query_row(
        "SELECT first_seen, last_seen, message_count FROM customers WHERE key = ?1",
        [&key],
        |row| {
            let message_count = u64::try_from(row.get::<_, i64>(2)?).unwrap_or_default();
            Ok(Customer {
                key: key.clone(),
                tier: if message_count > 1 {
                    Tier::Regular
                } else {
                    Tier::New
                },
                first_seen_ms: row.get(0)?,
                last_seen_ms: row.get(1)?,
                message_count,
            })
        },
    )
    .optional()
    .map_err(unavailable)
}

fn feedback_of(tx: &Transaction, keys: &[String]) -> Result<Vec<Feedback>, StoreError> {
    let mut statement = tx
        .prepare(
            "SELECT conversation, helpful, satisfaction, comment, at, faq_id FROM feedback
             WHERE conversation = ?1 ORDER BY id",
        )
        .map_err(unavailable)?;
    let mut feedback = Vec::new();
    for key in keys {
        let rows = statement
            .query_map([key], |row| {
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
        for row in rows {
            feedback.push(row.map_err(unavailable)?);
        }
    }
    Ok(feedback)
}

/// Queue items of the conversation `?1`: its group, or a group of its own
/// named `<conversation>#...` (a timer, ordered apart from the conversation).
const OF_CONVERSATION: &str = "(grp = ?1 OR substr(grp, 1, length(?1) + 1) = ?1 || '#')";

fn queued_for(tx: &Transaction, keys: &[String]) -> Result<Vec<QueuedData>, StoreError> {
    let mut statement = tx
        .prepare(&format!(
            "SELECT queue, state, enqueued_at, body FROM queue
                 WHERE {OF_CONVERSATION} AND state != 'done' ORDER BY id"
        ))
        .map_err(unavailable)?;
    let mut queued = Vec::new();
    for key in keys {
        let rows = statement
            .query_map([key], |row| {
                let mut body: Vec<u8> = row.get(3)?;
                if let Some(key) = body.strip_prefix(switchboard_domain::PAYLOAD_REFERENCE_PREFIX) {
                    let key = String::from_utf8_lossy(key).into_owned();
                    body = tx
                        .query_row("SELECT body FROM payloads WHERE key = ?1", [key], |row| {
                            row.get(0)
                        })
                        .unwrap_or(body);
                }
                Ok(QueuedData {
                    queue: row.get(0)?,
                    state: row.get(1)?,
                    enqueued_at_ms: row.get(2)?,
                    body: serde_json::from_slice(&body).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
                    }),
                })
            })
            .map_err(unavailable)?;
        for row in rows {
            queued.push(row.map_err(unavailable)?);
        }
    }
    Ok(queued)
}

/// Where the bodies of the queue items of conversation `key` would be stored aside.
fn payload_keys(tx: &Transaction, key: &str) -> Result<Vec<String>, StoreError> {
    let mut statement = tx
        .prepare(&format!(
            "SELECT queue, dedupe_id FROM queue WHERE {OF_CONVERSATION}"
        ))
        .map_err(unavailable)?;
    let rows = statement
        .query_map([key], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(unavailable)?;
    let mut keys = Vec::new();
    for row in rows {
        let (queue, dedupe_id) = row.map_err(unavailable)?;
        if let Some(queue) = QueueName::ALL.into_iter().find(|q| q.as_str() == queue) {
            keys.push(payload_key(queue, &dedupe_id));
        }
    }
    Ok(keys)
}

/// The unanswered-question rows (normalised key, wording) holding one of `texts`.
fn gaps_of(tx: &Transaction, texts: &[String]) -> Result<Vec<(String, String)>, StoreError> {
    let mut statement = tx
        .prepare("SELECT normalized, question FROM gaps WHERE normalized = ?1")
        .map_err(unavailable)?;
    let mut gaps = Vec::new();
    // The log keeps questions redacted; older rows may hold the raw text.
    let forms = texts
        .iter()
        .flat_map(|text| [normalize_question(text), normalize_question(&redact(text))]);
    for form in forms {
        if let Some(gap) = statement
            .query_row([form], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(unavailable)?
        {
            if !gaps.contains(&gap) {
                gaps.push(gap);
            }
        }
    }
    Ok(gaps)
}

#[cfg(test)]
mod tests {
    use switchboard_domain::{
        CustomerStore, FeedbackStore, GapLog, InboundMessage, Language, MessageKind, PayloadStore,
        QueueItem, QueueName, QueueProducer, ReplyContext, Role, SessionStore, Turn,
    };

    use super::*;

    fn message(customer: &str, text: &str) -> InboundMessage {
        InboundMessage {
            channel: "telegram".into(),
            account_id: "bot".into(),
            customer_id: customer.into(),
            customer_name: Some(format!("Name-{customer}")),
            conversation_id: customer.into(),
            provider_message_id: format!("m-{customer}"),
            sent_at_ms: 1,
            kind: MessageKind::Text,
            text: text.into(),
            attachments: vec![],
            reply: ReplyContext::default(),
        }
    }

    /// One customer's session, contact, feedback, gap and queued message.
    async fn customer_writes(store: &SqliteStore, customer: &str, text: &str) {
        let inbound = message(customer, text);
        let mut session = Session::start(&inbound, Language::En, 1_000);
        session.push(customer_turn(text, 1_000));
        store.save(&session).await.unwrap();
        store
            .record_contact(&format!("telegram:{customer}"), 1_000)
            .await
            .unwrap();
        FeedbackStore::put(
            store,
            &Feedback {
                conversation: session.key.clone(),
                helpful: Some(false),
                satisfaction: Some(2),
                comment: Some(format!("comment of {customer}")),
                faq_id: None,
                at_ms: 2_000,
            },
        )
        .await
        .unwrap();
        GapLog::record(store, text, Language::En, 1_000)
            .await
            .unwrap();
        store
            .send(
                QueueName::Inbound,
                QueueItem {
                    group: session.key.0.clone(),
                    dedupe_id: format!("telegram:bot:m-{customer}"),
                    body: serde_json::to_vec(&inbound).unwrap(),
                },
            )
            .await
            .unwrap();
        // A large message, its body stored aside and a reference queued.
        let dedupe_id = format!("telegram:bot:big-{customer}");
        let key = payload_key(QueueName::Inbound, &dedupe_id);
        let large = format!("{{\"text\":\"attached: {text}\"}}");
        PayloadStore::put(store, &key, large.as_bytes(), i64::MAX)
            .await
            .unwrap();
        let mut reference = switchboard_domain::PAYLOAD_REFERENCE_PREFIX.to_vec();
        reference.extend_from_slice(key.as_bytes());
        store
            .send(
                QueueName::Inbound,
                QueueItem {
                    group: session.key.0.clone(),
                    dedupe_id,
                    body: reference,
                },
            )
            .await
            .unwrap();
    }

    fn customer_turn(text: &str, at_ms: i64) -> Turn {
        Turn {
            role: Role::Customer,
            text: text.into(),
            at_ms,
            message_id: None,
            faq_entry: None,
            confidence: None,
            agent: None,
        }
    }

    fn file_bytes(dir: &std::path::Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        bytes
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    #[tokio::test]
    async fn export_holds_everything_and_erase_leaves_no_byte_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        let ann = "ann7391";
        let ann_text = "where is parcel zebra-quartz-4417";
        customer_writes(&store, ann, ann_text).await;
        customer_writes(&store, "bob2288", "refund for order walrus-9").await;
        let ann_ref: CustomerRef = format!("telegram:{ann}").parse().unwrap();

        let export = store.export(&ann_ref).await.unwrap();
        assert_eq!(export.customer, "telegram:ann7391");
        assert_eq!(export.record.as_ref().unwrap().message_count, 1);
        assert_eq!(export.conversations.len(), 1);
        assert_eq!(export.conversations[0].turns[0].text, ann_text);
        assert_eq!(export.feedback.len(), 1);
        assert_eq!(
            export.feedback[0].comment.as_deref(),
            Some("comment of ann7391")
        );
        assert_eq!(export.queued.len(), 2);
        assert_eq!(export.queued[0].body["text"], ann_text);
        assert_eq!(
            export.queued[1].body["text"],
            format!("attached: {ann_text}")
        );
        assert_eq!(export.unanswered_questions, vec![ann_text.to_owned()]);
        let exported = serde_json::to_string(&export).unwrap();
        assert!(!exported.contains("bob2288") && !exported.contains("walrus"));

        assert!(contains(&file_bytes(dir.path()), "zebra-quartz"));
        let erasure = store.erase(&ann_ref).await.unwrap();
        assert_eq!(
            (
                erasure.records,
                erasure.conversations,
                erasure.feedback,
                erasure.queued
            ),
            (1, 1, 1, 2)
        );
        assert_eq!(erasure.unanswered_questions, 1);

        // The raw bytes of the database and its log: nothing of Ann is left.
        let bytes = file_bytes(dir.path());
        for trace in [ann, "zebra-quartz", "Name-ann7391", "comment of ann"] {
            assert!(!contains(&bytes, trace), "{trace} is still in the file");
        }
        // Bob is untouched.
        let bob: CustomerRef = "telegram:bob2288".parse().unwrap();
        let export = store.export(&bob).await.unwrap();
        assert_eq!(
            (
                export.conversations.len(),
                export.feedback.len(),
                export.queued.len()
            ),
            (1, 1, 2)
        );
        assert!(contains(&bytes, "walrus-9"));
        // A second erase finds nothing.
        assert_eq!(store.erase(&ann_ref).await.unwrap().total(), 0);
        let empty = store.export(&ann_ref).await.unwrap();
        assert!(empty.record.is_none() && empty.conversations.is_empty());
    }

    #[tokio::test]
    async fn erase_takes_the_counters_that_name_an_address() {
        use switchboard_domain::CounterStore;
        use switchboard_domain::privacy::{auto_reply_counter_key, undeliverable_counter_key};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        let far = 10 * 86_400_000;
        for address in ["rate@example.net", "rate@example.network"] {
            for key in [
                auto_reply_counter_key("sendgrid", address, 3),
                auto_reply_counter_key("sendgrid", address, 4),
                undeliverable_counter_key("sendgrid", address),
            ] {
                assert!(store.increment_below(&key, 10, 0, far).await.unwrap());
            }
        }
        let rate: CustomerRef = "sendgrid:Rate@Example.net".parse().unwrap();
        assert_eq!(store.erase(&rate).await.unwrap().counters, 3);
        let bytes = file_bytes(dir.path());
        assert!(!contains(&bytes, "rate@example.net:"), "the cap's counters");
        let bounced = undeliverable_counter_key("sendgrid", "rate@example.net");
        assert_eq!(store.count(&bounced, 0).await.unwrap(), 0);
        // the longer address is someone else's
        let other = undeliverable_counter_key("sendgrid", "rate@example.network");
        assert_eq!(store.count(&other, 0).await.unwrap(), 1);
        assert_eq!(store.erase(&rate).await.unwrap().total(), 0);
    }

    #[tokio::test]
    async fn retention_sweeps_old_conversations_their_questions_and_feedback() {
        let store = SqliteStore::open_in_memory().unwrap();
        customer_writes(&store, "old1", "old question").await;
        let recent = message("new1", "recent question");
        let mut session = Session::start(&recent, Language::En, 50_000);
        session.push(customer_turn("recent question", 50_000));
        store.save(&session).await.unwrap();

        assert_eq!(
            store
                .sweep_retention(Some(10_000), Some(1_500))
                .await
                .unwrap(),
            (1, 0)
        );
        assert_eq!(
            store.sweep_retention(None, Some(3_000)).await.unwrap(),
            (0, 1)
        );
        let old: CustomerRef = "telegram:old1".parse().unwrap();
        assert!(store.export(&old).await.unwrap().conversations.is_empty());
        // the unanswered question seen only then went with it
        let gaps = GapLog::most_frequent(&store, 10).await.unwrap();
        assert!(
            gaps.iter().all(|g| g.question != "old question"),
            "{gaps:?}"
        );
        let recent: CustomerRef = "telegram:new1".parse().unwrap();
        assert_eq!(store.export(&recent).await.unwrap().conversations.len(), 1);
    }
}
