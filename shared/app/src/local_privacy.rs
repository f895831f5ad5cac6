//! Export and erase for the local process: the SQLite store, plus the files
//! beside it that can hold a customer's words (development mode's recorded
//! replies, the mail outbox used when no SMTP server is configured).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use switchboard_domain::StoreError;
use switchboard_domain::privacy::{CustomerData, CustomerExport, CustomerRef, Erasure};
use switchboard_sqlite::SqliteStore;

pub struct LocalCustomerData {
    pub store: SqliteStore,
    pub data_dir: PathBuf,
}

#[async_trait]
impl CustomerData for LocalCustomerData {
    async fn export(&self, customer: &CustomerRef) -> Result<CustomerExport, StoreError> {
        self.store.export(customer).await
    }

    async fn erase(&self, customer: &CustomerRef) -> Result<Erasure, StoreError> {
        // What identifies the customer in the files: the conversations' ids
        // (escalation mails carry the conversation key) and the customer id.
        let conversations = self.store.export(customer).await?.conversations;
        let mut erasure = self.store.erase(customer).await?;
        let keys: Vec<String> = conversations.iter().map(|s| s.key.0.clone()).collect();
        let mut ids: Vec<String> = conversations
            .iter()
            .map(|s| s.conversation_id.clone())
            .collect();
        ids.push(customer.customer_id.clone());
        let data_dir = self.data_dir.clone();
        let channel = customer.channel.clone();
        let (files, lines) = tokio::task::spawn_blocking(move || {
            let lines = erase_dev_replies(&data_dir.join("dev-replies.jsonl"), &channel, &ids)?;
            let files = erase_outbox(&data_dir.join("outbox"), &keys, &ids)?;
            Ok::<_, std::io::Error>((files, lines))
        })
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        erasure.outbox = files + lines;
        Ok(erasure)
    }
}

/// Drops the recorded replies of `channel` addressed to one of `ids` (a
/// provider payload names the recipient in a field of its own, or the path
/// the reply was posted to does: X, Discord).
fn erase_dev_replies(path: &Path, channel: &str, ids: &[String]) -> std::io::Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut kept = String::with_capacity(text.len());
    let mut removed = 0;
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if dev_reply_addressed_to(&record, channel, ids) {
            removed += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if removed > 0 {
        std::fs::write(path, kept)?;
    }
    Ok(removed)
}

/// Whether a recorded development reply (`{"channel", "path", "payload"}`)
/// of `channel` is addressed to one of `ids`: providers name the recipient in
/// the body (`chat_id`, `to`, `recipient.id`, `replyToken`) or in the URL
/// (Discord, X, DingTalk's session webhook). Erase and `simulate` ask this.
pub fn dev_reply_addressed_to(record: &serde_json::Value, channel: &str, ids: &[String]) -> bool {
    let path = record["path"].as_str().unwrap_or_default();
    let in_path = path
        .split(['/', '?', '&', '='])
        .any(|segment| !segment.is_empty() && ids.iter().any(|id| id == segment));
    record["channel"] == channel && (in_path || mentions(&record["payload"], ids))
}

/// Whether any string or number in `value` is one of `ids`.
fn mentions(value: &serde_json::Value, ids: &[String]) -> bool {
    match value {
        serde_json::Value::String(text) => ids.iter().any(|id| id == text),
        serde_json::Value::Number(number) => ids.iter().any(|id| *id == number.to_string()),
        serde_json::Value::Array(items) => items.iter().any(|item| mentions(item, ids)),
        serde_json::Value::Object(map) => map.values().any(|item| mentions(item, ids)),
        _ => false,
    }
}

/// Deletes the outbox mails about one of the customer's conversations (the
/// escalation and notification mails' `X-Switchboard-Conversation` header) or
/// addressed to or from the customer's address (ids with an `@`). Headers are
/// compared whole: `telegram:bot:8` is not `telegram:bot:88`.
fn erase_outbox(dir: &Path, conversations: &[String], ids: &[String]) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let addresses: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| id.contains('@'))
        .collect();
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let bytes = std::fs::read(&path)?;
        if mail_names(&bytes, conversations, &addresses) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether a mail's headers name one of `conversations` or `addresses`.
fn mail_names(mail: &[u8], conversations: &[String], addresses: &[&str]) -> bool {
    let Some(message) = mail_parser::MessageParser::new().parse_headers(mail) else {
        return false;
    };
    let about_conversation = message
        .header("X-Switchboard-Conversation")
        .and_then(|value| value.as_text())
        .is_some_and(|key| conversations.iter().any(|c| c == key.trim()));
    let party = |header: Option<&mail_parser::Address>| {
        header.is_some_and(|list| {
            list.iter().any(|a| {
                a.address().is_some_and(|mailbox| {
                    addresses.iter().any(|id| mailbox.eq_ignore_ascii_case(id))
                })
            })
        })
    };
    about_conversation
        || party(message.to())
        || party(message.cc())
        || party(message.bcc())
        || party(message.from())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_replies_to_the_customer_go_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev-replies.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"channel":"telegram","payload":{"chat_id":4417,"text":"a"}}"#,
                "\n",
                r#"{"channel":"telegram","payload":{"chat_id":9,"text":"4417"}}"#,
                "\n",
                r#"{"channel":"slack","payload":{"channel":"4417"}}"#,
                "\n",
                r#"{"channel":"x","path":"/2/dm_conversations/with/4417/messages","payload":{"text":"b"}}"#,
                "\n",
                r#"{"channel":"x","path":"/2/dm_conversations/with/9/messages","payload":{"text":"c"}}"#,
                "\n",
            ),
        )
        .unwrap();
        // The second line mentions 4417 as its text, which also counts: a
        // recorded reply that quotes the id is the customer's data too.
        let removed = erase_dev_replies(&path, "telegram", &["4417".into()]).unwrap();
        assert_eq!(removed, 2);
        // X names the recipient in the path only.
        let removed = erase_dev_replies(&path, "x", &["4417".into()]).unwrap();
        assert_eq!(removed, 1);
        let left = std::fs::read_to_string(&path).unwrap();
        assert_eq!(left.lines().count(), 2);
        assert!(left.contains("slack") && left.contains("with/9/"));
    }

    #[test]
    fn outbox_mails_naming_the_conversation_or_address_go() {
        let dir = tempfile::tempdir().unwrap();
        let mail = |name: &str, headers: &str| {
            let text = format!("{headers}Subject: s\r\n\r\nConversation: telegram:bot:4417\r\n");
            std::fs::write(dir.path().join(name), text).unwrap();
        };
        mail("a.eml", "X-Switchboard-Conversation: telegram:bot:4417\r\n");
        mail("b.eml", "To: Ann <ANN@example.com>\r\n");
        mail("c.eml", "To: bob@example.com\r\n");
        // Other customers whose keys or addresses start with the same text,
        // and a body that quotes the key: all kept.
        mail(
            "d.eml",
            "X-Switchboard-Conversation: telegram:bot:44170\r\n",
        );
        mail("e.eml", "To: xann@example.com\r\n");
        mail("f.eml", "To: ann@example.com.evil\r\n");
        let conversations = ["telegram:bot:4417".to_owned()];
        let ids = ["4417".to_owned(), "ann@example.com".to_owned()];
        assert_eq!(erase_outbox(dir.path(), &conversations, &ids).unwrap(), 2);
        for kept in ["c.eml", "d.eml", "e.eml", "f.eml"] {
            assert!(dir.path().join(kept).exists(), "{kept} was deleted");
        }
        assert_eq!(
            erase_outbox(&dir.path().join("none"), &conversations, &ids).unwrap(),
            0
        );
    }
}
