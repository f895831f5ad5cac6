//! A corpus of real-world-shaped mail (`tests/data/corpus/*.eml`: Gmail,
//! Outlook, Apple Mail, Foxmail and QQ Mail, GBK/GB2312/GB18030/Big5 and
//! windows-1252, HTML-only, forwarded, attachments and inline images,
//! out-of-office, lists, bounces) with the new text and thread each must
//! give (`expected.json`). Every mail goes through the one MIME parser, the
//! quote removal, the loop guard and the threading that the email channels use.

use std::collections::BTreeMap;

use serde_json::Value;
use switchboard_channels::email::{Identity, ReceivedMail, parse_mime};

fn corpus() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus")
}

#[test]
fn every_corpus_mail_gives_its_new_text_and_thread() {
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("expected.json")).unwrap())
            .unwrap();
    let files: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    assert!(files.len() >= 30, "{} mails", files.len());
    assert_eq!(
        files.len(),
        expected.len(),
        "every mail has its expectation"
    );
    let identity = Identity::new("Shop Support <support@shop.example>", &[], None).unwrap();
    let mut threads: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, expect) in &expected {
        let raw = std::fs::read(corpus().join(name)).unwrap();
        let mail = parse_mime(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let received = ReceivedMail {
            text: mail.customer_text(),
            headers: mail.headers,
            from: mail.from,
            recipient: mail.to,
            subject: mail.subject,
            attachments: mail.attachments,
            ..ReceivedMail::default()
        };
        let messages = identity
            .inbound("corpus", received)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if expect["reply"] == Value::Bool(false) {
            assert!(
                messages.is_empty(),
                "{name}: automated mail must get no reply"
            );
            continue;
        }
        assert_eq!(messages.len(), 1, "{name}");
        let message = &messages[0];
        assert_eq!(
            message.text,
            expect["text"].as_str().unwrap(),
            "{name}: new text"
        );
        assert_eq!(message.account_id, "support@shop.example", "{name}");
        if let Some(names) = expect.get("attachments").and_then(Value::as_array) {
            let actual: Vec<_> = message
                .attachments
                .iter()
                .filter_map(|a| a.name.clone())
                .collect();
            let names: Vec<_> = names
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(actual, names, "{name}: attachments");
        }
        if let Some(reply_to) = expect.get("reply_to").and_then(Value::as_str) {
            assert_eq!(
                message.reply.email.as_ref().unwrap().reply_to,
                reply_to,
                "{name}"
            );
        }
        // Mails of one thread share a conversation; different threads never do.
        let label = expect["thread"].as_str().unwrap().to_owned();
        match threads.get(&label) {
            Some((first, conversation)) => assert_eq!(
                &message.conversation_id, conversation,
                "{name} should join the conversation of {first}"
            ),
            None => {
                let clash = threads
                    .iter()
                    .find(|(_, (_, c))| c == &message.conversation_id);
                assert!(clash.is_none(), "{name} joined another thread: {clash:?}");
                threads.insert(label, (name.clone(), message.conversation_id.clone()));
            }
        }
    }
}
