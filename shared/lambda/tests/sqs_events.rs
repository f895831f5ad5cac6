//! The worker handler fed an SQS event exactly as Lambda delivers it from a
//! FIFO queue (shape from AWS's documentation), over the embedded store, with
//! the dead-letter queue on moto: a poisoned record goes to the dead-letter
//! queue at once, a failing one is the only failure reported, and the rest of
//! its message group is held back so the conversation stays in order.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use switchboard_aws::{
    Clients, ConsumerSettings, EventSourcePoller, QueueOptions, SqsConsumer, create_queue_with_dlq,
};
use switchboard_domain::{
    InboundMessage, MessageKind, QueueError, QueueItem, QueueName, QueueProducer, ReplyContext,
    SystemClock,
};
use switchboard_e2e::aws_test_endpoint;
use switchboard_faq::KnowledgeBase;
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::worker::{ConversationWorker, WorkerSettings};
use switchboard_sqlite::SqliteStore;

/// The queues, with the replies queued recorded; queueing conversation
/// `c`'s reply fails (the queue is unavailable for it).
#[derive(Default)]
struct Replies(Mutex<Vec<QueueItem>>);

#[async_trait]
impl QueueProducer for Replies {
    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError> {
        if item.group == "telegram:1:c" {
            return Err(QueueError {
                queue,
                source: "unavailable".into(),
            });
        }
        if queue == QueueName::Outbound {
            self.0.lock().unwrap().push(item);
        }
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

fn record(queue_arn: &str, id: &str, group: &str, body: &str) -> serde_json::Value {
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
        "eventSourceARN": queue_arn,
        "awsRegion": "eu-west-1"
    })
}

#[tokio::test]
async fn a_poisoned_record_is_dead_lettered_at_once_and_a_failing_one_holds_back_its_conversation()
{
    let clients = Clients::local(
        &aws_test_endpoint("SWITCHBOARD_TEST_DYNAMODB_ENDPOINT"),
        &aws_test_endpoint("SWITCHBOARD_TEST_MOTO_ENDPOINT"),
    )
    .await;
    let options = QueueOptions {
        fifo: true,
        ..QueueOptions::default()
    };
    let name = format!("events{}", std::process::id());
    let (queue, dlq) = create_queue_with_dlq(&clients.sqs, &name, options)
        .await
        .unwrap();
    let store = SqliteStore::open_in_memory().unwrap();
    let replies = Arc::new(Replies::default());
    let worker = Consumer {
        stage: ConversationWorker {
            sessions: Arc::new(store.clone()),
            customers: Arc::new(store.clone()),
            gaps: Arc::new(store.clone()),
            feedback: Arc::new(store.clone()),
            idempotency: Arc::new(store.clone()),
            queue: replies.clone(),
            payloads: Arc::new(store.clone()),
            faq: Arc::new(Faq::new(
                KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML).unwrap(),
            )),
            clock: Arc::new(SystemClock),
            settings: WorkerSettings::default(),
            tiers: None,
        },
        sqs: SqsConsumer::with_queues(
            clients.sqs.clone(),
            [(queue.url.clone(), dlq.url.clone())],
            ConsumerSettings::default(),
        ),
    };
    let (a, b, c) = ("telegram:1:a", "telegram:1:b", "telegram:1:c");
    let arn = queue.arn.as_str();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": [
        record(arn, "m1", a, "{ this is not a message"),
        record(arn, "m2", a, &message("2", "a", "What are your opening hours?")),
        record(arn, "m3", b, &message("3", "b", "How long does shipping take?")),
        record(arn, "m4", c, &message("4", "c", "How long does shipping take?")),
        record(arn, "m5", c, &message("5", "c", "What are your opening hours?")),
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
        ["m4", "m5"],
        "the record whose reply could not be queued, and the later record of its group"
    );
    let mut answered: Vec<String> = replies
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.group.clone())
        .collect();
    answered.sort();
    assert_eq!(answered, [a, b], "a's conversation went on without m1");
    let dead = EventSourcePoller::new(clients.sqs.clone(), dlq)
        .receive(1)
        .await
        .unwrap()
        .expect("m1 in the dead-letter queue");
    assert_eq!(
        dead.records[0].body.as_deref(),
        Some("{ this is not a message")
    );
}
