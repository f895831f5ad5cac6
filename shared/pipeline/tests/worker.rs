//! The conversation worker and notifier over the real embedded store, with a
//! recording reply sender and notifier.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use switchboard_domain::*;
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::worker::{ConversationWorker, Outcome, WorkerSettings};
use switchboard_sqlite::SqliteStore;

#[derive(Default)]
struct Recorder {
    replies: Mutex<Vec<OutboundReply>>,
    tickets: Mutex<Vec<EscalationTicket>>,
    /// Fail this many sends first, transiently.
    failures_left: Mutex<u32>,
}

#[async_trait]
impl ReplySender for Recorder {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let mut left = self.failures_left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(SendError::Transient {
                channel: reply.channel.clone(),
                detail: "503".into(),
                source: None,
            });
        }
        self.replies.lock().unwrap().push(reply.clone());
        Ok(())
    }
}

#[async_trait]
impl AgentNotifier for Recorder {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError> {
        self.tickets.lock().unwrap().push(ticket.clone());
        Ok(())
    }
}

struct Fixture {
    store: SqliteStore,
    recorder: Arc<Recorder>,
    worker: ConversationWorker,
}

fn fixture(settings: WorkerSettings) -> Fixture {
    let store = SqliteStore::open_in_memory().unwrap();
    let recorder = Arc::new(Recorder::default());
    let kb = KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML).unwrap();
    let worker = ConversationWorker {
        sessions: Arc::new(store.clone()),
        customers: Arc::new(store.clone()),
        gaps: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        queue: Arc::new(store.clone()),
        replies: recorder.clone(),
        faq: Arc::new(Faq::new(kb)),
        clock: Arc::new(SystemClock),
        settings,
    };
    Fixture {
        store,
        recorder,
        worker,
    }
}

fn message(id: &str, customer: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&InboundMessage {
        channel: "telegram".into(),
        account_id: "1".into(),
        customer_id: customer.into(),
        customer_name: None,
        conversation_id: customer.into(),
        provider_message_id: id.into(),
        sent_at_ms: 1,
        kind: MessageKind::Text,
        text: text.into(),
        attachments: vec![],
        reply: ReplyContext::default(),
    })
    .unwrap()
}

#[tokio::test]
async fn a_confident_match_is_answered_once_however_often_the_job_comes() {
    let f = fixture(WorkerSettings::default());
    let job = message("1", "c1", "What are your opening hours?");
    assert_eq!(f.worker.handle(&job).await.unwrap(), Outcome::Answered);
    assert_eq!(f.worker.handle(&job).await.unwrap(), Outcome::Duplicate);
    let replies = f.recorder.replies.lock().unwrap();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].text.contains("Monday to Saturday"));
}

#[tokio::test]
async fn a_failed_send_is_retried_without_a_second_reply_or_lost_turn() {
    let f = fixture(WorkerSettings::default());
    *f.recorder.failures_left.lock().unwrap() = 1;
    let job = message("1", "c1", "How long does shipping take?");
    let error = f.worker.handle(&job).await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(f.worker.handle(&job).await.unwrap(), Outcome::Answered);
    assert_eq!(f.recorder.replies.lock().unwrap().len(), 1);
    let key = ConversationKey::new("telegram", "1", "c1");
    let session = f.store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        session.turns.len(),
        2,
        "customer turn and answer, once each"
    );
}

#[tokio::test]
async fn unanswerable_questions_escalate_and_are_counted_as_gaps_and_vips_go_first() {
    let mut settings = WorkerSettings::default();
    settings.vip_customers.insert("telegram:vip".into());
    let f = fixture(settings);
    let question = "Do you sell replacement parts for the 1987 model?";
    let outcome = f
        .worker
        .handle(&message("1", "c1", question))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Escalated(EscalationReason::NoConfidentMatch)
    );
    let outcome = f
        .worker
        .handle(&message("2", "vip", question))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Escalated(EscalationReason::VipUnanswered));

    let gaps = f.store.most_frequent(5).await.unwrap();
    assert_eq!((gaps.len(), gaps[0].count), (1, 2));
    let stats = f.store.stats().await.unwrap();
    let ready = |name: &str| stats.iter().find(|s| s.queue == name).unwrap().ready;
    assert_eq!(
        (ready("escalation_standard"), ready("escalation_priority")),
        (1, 1)
    );

    // The notifier delivers each ticket once.
    let notifier = EscalationNotifier {
        notifier: f.recorder.clone(),
        idempotency: Arc::new(f.store.clone()),
        clock: Arc::new(SystemClock),
    };
    let job = f
        .store
        .receive(QueueName::EscalationPriority, SystemClock.now_ms(), 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(notifier.handle(&job.body).await.unwrap());
    assert!(
        !notifier.handle(&job.body).await.unwrap(),
        "a redelivered ticket is not sent again"
    );
    let tickets = f.recorder.tickets.lock().unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!((tickets[0].tier, tickets[0].priority), (Tier::Vip, true));
    assert_eq!(tickets[0].expected_response, "15 minutes");
}

#[tokio::test]
async fn while_a_person_has_the_conversation_the_bot_only_forwards() {
    let f = fixture(WorkerSettings::default());
    f.worker
        .handle(&message("1", "c1", "I want to talk to a human"))
        .await
        .unwrap();
    assert_eq!(
        f.recorder.replies.lock().unwrap().len(),
        1,
        "told a person will answer"
    );
    let outcome = f
        .worker
        .handle(&message("2", "c1", "What are your opening hours?"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Escalated(EscalationReason::FollowUp));
    assert_eq!(
        f.recorder.replies.lock().unwrap().len(),
        1,
        "no bot answer to a follow-up"
    );
}

#[tokio::test]
async fn an_unreadable_job_is_a_permanent_failure() {
    let f = fixture(WorkerSettings::default());
    let error = f.worker.handle(b"{not a message").await.unwrap_err();
    assert!(!error.is_retryable());
}
