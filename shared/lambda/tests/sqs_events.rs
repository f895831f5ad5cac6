//! The worker handler fed an SQS event exactly as Lambda delivers it from a
//! FIFO queue (shape from AWS's documentation), over the embedded store: a
//! poisoned record is the only failure reported, and the rest of its message
//! group is held back so the conversation stays in order.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use switchboard_domain::{
    InboundMessage, MessageKind, OutboundReply, ReplyContext, ReplySender, SendError, SystemClock,
};
use switchboard_faq::KnowledgeBase;
use switchboard_lambda::handlers;
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::worker::{ConversationWorker, WorkerSettings};
use switchboard_sqlite::SqliteStore;

#[derive(Default)]
struct Replies(Mutex<Vec<OutboundReply>>);

#[async_trait]
impl ReplySender for Replies {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        self.0.lock().unwrap().push(reply.clone());
        Ok(())
    }
}

fn message(id: &str, chat: &str, text: &str) -> String {
    serde_json::to_string(&InboundMessage {
        channel: "telegram".into(),
        account_id: "1".into(),
        customer_id: chat.into(),
        customer_name: None,
        conversation_id: chat.into(),
        provider_message_id: id.into(),
        sent_at_ms: 1,
        kind: MessageKind::Text,
        text: text.into(),
        attachments: vec![],
        reply: ReplyContext::default(),
    })
    .unwrap()
}

fn record(id: &str, group: &str, body: &str) -> serde_json::Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795132800000",
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": group,
            "SenderId": "AIDAIO23YVJENQZJOL4VO",
            "MessageDeduplicationId": format!("dedupe-{id}"),
            "ApproximateFirstReceiveTimestamp": "1795132800001"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:switchboard-inbound.fifo",
        "awsRegion": "eu-west-1"
    })
}

#[tokio::test]
async fn a_poisoned_record_fails_alone_and_holds_back_only_its_own_conversation() {
    let store = SqliteStore::open_in_memory().unwrap();
    let replies = Arc::new(Replies::default());
    let worker = ConversationWorker {
        sessions: Arc::new(store.clone()),
        customers: Arc::new(store.clone()),
        gaps: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        queue: Arc::new(store.clone()),
        replies: replies.clone(),
        faq: Arc::new(Faq::new(
            KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML).unwrap(),
        )),
        clock: Arc::new(SystemClock),
        settings: WorkerSettings::default(),
    };
    let conversation_a = "telegram:1:a";
    let conversation_b = "telegram:1:b";
    let event: SqsEvent = serde_json::from_value(json!({ "Records": [
        record("m1", conversation_a, "{ this is not a message"),
        record("m2", conversation_a, &message("2", "a", "What are your opening hours?")),
        record("m3", conversation_b, &message("3", "b", "How long does shipping take?")),
    ]}))
    .unwrap();

    let response = handlers::inbound(&worker, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        ["m1", "m2"],
        "the poisoned record, and the later record of its group"
    );
    let replies = replies.0.lock().unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].conversation_id, "b");
}
