//! The conversation worker, the outbound sender and the notifier over the
//! real embedded store, with a recording reply sender and notifier.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_domain::*;
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::JobError;
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::outbound::OutboundSender;
use switchboard_pipeline::payload::OffloadingQueue;
use switchboard_pipeline::worker::{ConversationWorker, Outcome, WorkerSettings};
use switchboard_sqlite::SqliteStore;

#[derive(Default)]
struct Recorder {
    replies: Mutex<Vec<OutboundReply>>,
    tickets: Mutex<Vec<EscalationTicket>>,
    /// Fail this many sends first, transiently.
    failures_left: Mutex<u32>,
    /// Refuse every send for good (a 4xx from the provider, an SMTP 5xx).
    refuse: Mutex<bool>,
    /// Never answer the next send (a process that dies while sending).
    hang_once: Mutex<bool>,
}

impl Recorder {
    async fn outcome(&self, channel: &str) -> Result<(), SendError> {
        if std::mem::take(&mut *self.hang_once.lock().unwrap()) {
            std::future::pending::<()>().await;
        }
        if *self.refuse.lock().unwrap() {
            return Err(SendError::Permanent {
                channel: channel.into(),
                detail: "550 no such user".into(),
                source: None,
            });
        }
        let mut left = self.failures_left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(SendError::Transient {
                channel: channel.into(),
                detail: "503".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ReplySender for Recorder {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        self.outcome(&reply.channel).await?;
        self.replies.lock().unwrap().push(reply.clone());
        Ok(())
    }
}

#[async_trait]
impl AgentNotifier for Recorder {
    async fn notify(&self, ticket: &EscalationTicket) -> Result<(), SendError> {
        self.outcome("email").await?;
        self.tickets.lock().unwrap().push(ticket.clone());
        Ok(())
    }
}

/// A session store that fails the next save, as a crash right after the
/// reply went out would leave things.
struct FailingSave {
    inner: SqliteStore,
    fail_next: Mutex<bool>,
}

#[async_trait]
impl SessionStore for FailingSave {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Session>, StoreError> {
        self.inner.load(key).await
    }
    async fn save(&self, session: &Session) -> Result<u64, StoreError> {
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(StoreError::Unavailable("disk gone".into()));
        }
        self.inner.save(session).await
    }
    async fn escalated(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        self.inner.escalated(limit).await
    }
    async fn customer_conversations(
        &self,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<ConversationBrief>, StoreError> {
        self.inner.customer_conversations(customer, limit).await
    }
}

/// A first delivery with a minute's lease.
fn lease() -> JobLease {
    JobLease::new(1, SystemClock.now_ms(), 60_000)
}

fn redelivery(attempt: u32) -> JobLease {
    JobLease::new(attempt, SystemClock.now_ms(), 60_000)
}

struct Fixture {
    store: SqliteStore,
    recorder: Arc<Recorder>,
    worker: ConversationWorker,
    sender: OutboundSender,
}

impl Fixture {
    /// The next reply in the outbound queue, leased.
    async fn next_reply(&self) -> Option<switchboard_sqlite::Leased> {
        self.store
            .receive(QueueName::Outbound, SystemClock.now_ms(), 60_000)
            .await
            .unwrap()
    }

    /// Sends every queued reply, as the outbound runner does.
    async fn deliver(&self) {
        while let Some(job) = self.next_reply().await {
            self.sender.handle(&job.body, &lease()).await.unwrap();
            self.store.ack(&job, SystemClock.now_ms()).await.unwrap();
        }
    }

    fn sent(&self) -> usize {
        self.recorder.replies.lock().unwrap().len()
    }
}

fn fixture(settings: WorkerSettings) -> Fixture {
    let store = SqliteStore::open_in_memory().unwrap();
    let recorder = Arc::new(Recorder::default());
    let kb = KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML).unwrap();
    let worker = ConversationWorker {
        sessions: Arc::new(store.clone()),
        customers: Arc::new(store.clone()),
        gaps: Arc::new(store.clone()),
        feedback: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        queue: Arc::new(store.clone()),
        payloads: Arc::new(store.clone()),
        faq: Arc::new(Faq::new(kb)),
        clock: Arc::new(SystemClock),
        settings,
        tiers: None,
    };
    let sender = OutboundSender {
        replies: recorder.clone(),
        sessions: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        payloads: Arc::new(store.clone()),
        clock: Arc::new(SystemClock),
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
    };
    Fixture {
        store,
        recorder,
        worker,
        sender,
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
    assert_eq!(
        f.worker.handle(&job, &lease()).await.unwrap(),
        Outcome::Answered
    );
    assert_eq!(
        f.worker.handle(&job, &lease()).await.unwrap(),
        Outcome::Duplicate
    );
    assert!(
        f.recorder.replies.lock().unwrap().is_empty(),
        "queued, not sent inline"
    );
    f.deliver().await;
    let replies = f.recorder.replies.lock().unwrap();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].text.contains("Monday to Saturday"));
}

#[tokio::test]
async fn a_failed_send_is_retried_without_a_second_reply_and_its_state_is_recorded() {
    let f = fixture(WorkerSettings::default());
    *f.recorder.failures_left.lock().unwrap() = 1;
    let job = message("1", "c1", "How long does shipping take?");
    assert_eq!(
        f.worker.handle(&job, &lease()).await.unwrap(),
        Outcome::Answered
    );
    let key = ConversationKey::new("telegram", "1", "c1");
    let session = f.store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        session.turns.len(),
        2,
        "customer turn and answer, once each"
    );
    let reply_id = session.turns[1].message_id.clone().unwrap();

    let queued = f.next_reply().await.unwrap();
    let error = f.sender.handle(&queued.body, &lease()).await.unwrap_err();
    assert!(error.is_retryable());
    let delivery = f
        .store
        .load(&key)
        .await
        .unwrap()
        .unwrap()
        .delivery(&reply_id)
        .cloned()
        .unwrap();
    assert_eq!(
        (delivery.state, delivery.attempts),
        (DeliveryState::Queued, 1)
    );
    assert!(delivery.reason.unwrap().contains("503"));

    assert!(f.sender.handle(&queued.body, &redelivery(2)).await.unwrap());
    assert!(
        !f.sender.handle(&queued.body, &redelivery(3)).await.unwrap(),
        "a reply id is sent once"
    );
    assert_eq!(f.sent(), 1);
    let session = f.store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        session.delivery(&reply_id).unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(session.turns.len(), 2);
}

#[tokio::test]
async fn unanswerable_questions_escalate_and_are_counted_as_gaps_and_vips_go_first() {
    let mut settings = WorkerSettings::default();
    settings.vip_customers.insert("telegram:vip".into());
    let f = fixture(settings);
    let question = "Do you sell replacement parts for the 1987 model?";
    let outcome = f
        .worker
        .handle(&message("1", "c1", question), &lease())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Escalated(EscalationReason::NoConfidentMatch)
    );
    let outcome = f
        .worker
        .handle(&message("2", "vip", question), &lease())
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
        payloads: Arc::new(f.store.clone()),
        clock: Arc::new(SystemClock),
    };
    let job = f
        .store
        .receive(QueueName::EscalationPriority, SystemClock.now_ms(), 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(notifier.handle(&job.body, &lease()).await.unwrap());
    assert!(
        !notifier.handle(&job.body, &lease()).await.unwrap(),
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
        .handle(&message("1", "c1", "I want to talk to a human"), &lease())
        .await
        .unwrap();
    f.deliver().await;
    assert_eq!(f.sent(), 1, "told a person will answer");
    let outcome = f
        .worker
        .handle(
            &message("2", "c1", "What are your opening hours?"),
            &lease(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Escalated(EscalationReason::FollowUp));
    f.deliver().await;
    assert_eq!(
        f.recorder.replies.lock().unwrap().len(),
        1,
        "no bot answer to a follow-up"
    );
}

#[tokio::test]
async fn an_unreadable_job_is_a_permanent_failure() {
    let f = fixture(WorkerSettings::default());
    let error = f
        .worker
        .handle(b"{not a message", &lease())
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(error.cause_key(), "unreadable");
    let error = f.sender.handle(b"{}", &lease()).await.unwrap_err();
    assert!(!error.is_retryable());
}

/// The recorded delivery of the first reply in conversation `c1`.
async fn first_delivery(f: &Fixture) -> Delivery {
    let key = ConversationKey::new("telegram", "1", "c1");
    let session = f.store.load(&key).await.unwrap().unwrap();
    let reply_id = session.turns[1].message_id.clone().unwrap();
    session.delivery(&reply_id).cloned().unwrap()
}

#[tokio::test]
async fn a_reply_interrupted_while_sending_is_dead_lettered_and_never_sent_twice() {
    let f = fixture(WorkerSettings::default());
    let job = message("1", "c1", "What are your opening hours?");
    f.worker.handle(&job, &lease()).await.unwrap();
    let queued = f.next_reply().await.unwrap();
    // The first delivery dies while sending (its future is dropped, as a
    // killed process leaves things): its claim stays behind, unreleased.
    *f.recorder.hang_once.lock().unwrap() = true;
    let short = JobLease::new(1, SystemClock.now_ms(), 300);
    let crashed = tokio::time::timeout(
        Duration::from_millis(200),
        f.sender.handle(&queued.body, &short),
    )
    .await;
    assert!(crashed.is_err(), "the first delivery never finished");
    // Once the lease has run out the queue hands the job out again: the
    // provider may have the reply, so it goes to the dead letters instead
    // of out a second time, and the conversation says why.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let error = f
        .sender
        .handle(&queued.body, &redelivery(2))
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    let delivery = first_delivery(&f).await;
    assert_eq!(delivery.state, DeliveryState::Failed);
    assert!(
        delivery
            .reason
            .unwrap()
            .contains("may have reached the customer")
    );
    // A redrive of the dead letter does not send it either.
    assert!(f.sender.handle(&queued.body, &redelivery(1)).await.is_err());
    assert_eq!(f.sent(), 0);
}

/// A provider that takes the request and then breaks the connection.
struct BrokenMidRequest;

#[async_trait]
impl ReplySender for BrokenMidRequest {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        Err(SendError::Transient {
            channel: reply.channel.clone(),
            detail: "request timed out".into(),
            source: Some(Box::new(MaybeDelivered("timed out".into()))),
        })
    }
}

#[tokio::test]
async fn a_send_that_fails_mid_request_is_not_retried() {
    let mut f = fixture(WorkerSettings::default());
    f.sender.replies = Arc::new(BrokenMidRequest);
    let job = message("1", "c1", "What are your opening hours?");
    f.worker.handle(&job, &lease()).await.unwrap();
    let queued = f.next_reply().await.unwrap();
    let error = f.sender.handle(&queued.body, &lease()).await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert_eq!(first_delivery(&f).await.state, DeliveryState::Failed);
    // Even a provider that works again gets no second copy.
    f.sender.replies = f.recorder.clone();
    assert!(f.sender.handle(&queued.body, &redelivery(2)).await.is_err());
    assert_eq!(f.sent(), 0);
}

#[tokio::test]
async fn a_send_is_not_started_without_time_to_finish_it_within_the_lease() {
    let f = fixture(WorkerSettings::default());
    let job = message("1", "c1", "What are your opening hours?");
    f.worker.handle(&job, &lease()).await.unwrap();
    let queued = f.next_reply().await.unwrap();
    let now = SystemClock.now_ms();
    let nearly_over = JobLease {
        attempt: 1,
        started_at_ms: now - 55_000,
        until_ms: now + 5_000,
    };
    let error = f
        .sender
        .handle(&queued.body, &nearly_over)
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(f.sent(), 0);
    assert!(f.sender.handle(&queued.body, &redelivery(2)).await.unwrap());
}

#[tokio::test]
async fn a_reply_sent_before_a_crash_is_recorded_as_sent_even_if_things_changed_since() {
    let store = SqliteStore::open_in_memory().unwrap();
    let sessions = Arc::new(FailingSave {
        inner: store.clone(),
        fail_next: Mutex::new(false),
    });
    let mut f = fixture(WorkerSettings::default());
    f.store = store.clone();
    f.worker.sessions = sessions.clone();
    f.worker.customers = Arc::new(store.clone());
    f.worker.idempotency = Arc::new(store.clone());
    f.worker.gaps = Arc::new(store.clone());
    f.worker.queue = Arc::new(store.clone());
    f.worker.payloads = Arc::new(store.clone());
    f.sender.sessions = Arc::new(store.clone());
    let key = ConversationKey::new("telegram", "1", "c1");

    f.worker
        .handle(
            &message("1", "c1", "How long does shipping take?"),
            &lease(),
        )
        .await
        .unwrap();
    // The answer is queued, then the transcript cannot be saved (a crash).
    *sessions.fail_next.lock().unwrap() = true;
    let job = message("2", "c1", "What are your opening hours?");
    assert!(
        f.worker
            .handle(&job, &lease())
            .await
            .unwrap_err()
            .is_retryable()
    );
    f.deliver().await;
    let replies_before = f.recorder.replies.lock().unwrap().len();
    let sent = f
        .recorder
        .replies
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .text
        .clone();
    // Meanwhile an agent takes the conversation over: now the bot would stay quiet.
    let mut session = store.load(&key).await.unwrap().unwrap();
    session.status = SessionStatus::Escalated;
    store.save(&session).await.unwrap();

    f.worker.handle(&job, &redelivery(2)).await.unwrap();
    f.deliver().await;
    assert_eq!(
        f.recorder.replies.lock().unwrap().len(),
        replies_before,
        "not sent again"
    );
    let session = store.load(&key).await.unwrap().unwrap();
    let texts: Vec<(Role, &str)> = session
        .turns
        .iter()
        .map(|t| (t.role, t.text.as_str()))
        .collect();
    let n = texts.len();
    assert_eq!(
        texts[n - 2..],
        [
            (Role::Customer, "What are your opening hours?"),
            (Role::Bot, sent.as_str())
        ],
        "the answered turn is in the transcript with the text that went out"
    );
}

#[tokio::test]
async fn refusals_for_good_are_permanent_failures_and_outages_are_not() {
    let f = fixture(WorkerSettings::default());
    let state = |conversation: &'static str| {
        let store = f.store.clone();
        async move {
            let key = ConversationKey::new("telegram", "1", conversation);
            let session = store.load(&key).await.unwrap().unwrap();
            let reply_id = session.turns[1].message_id.clone().unwrap();
            session.delivery(&reply_id).cloned().unwrap()
        }
    };
    *f.recorder.refuse.lock().unwrap() = true;
    f.worker
        .handle(
            &message("1", "c1", "What are your opening hours?"),
            &lease(),
        )
        .await
        .unwrap();
    let queued = f.next_reply().await.unwrap();
    let error = f.sender.handle(&queued.body, &lease()).await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert_eq!(error.cause_key(), "send:telegram");
    let failed = state("c1").await;
    assert_eq!(failed.state, DeliveryState::Failed, "dead-lettered at once");
    assert!(failed.reason.unwrap().contains("550"));
    f.store.ack(&queued, SystemClock.now_ms()).await.unwrap();

    *f.recorder.refuse.lock().unwrap() = false;
    *f.recorder.failures_left.lock().unwrap() = 3;
    f.worker
        .handle(
            &message("2", "c2", "What are your opening hours?"),
            &lease(),
        )
        .await
        .unwrap();
    let queued = f.next_reply().await.unwrap();
    let error = f.sender.handle(&queued.body, &lease()).await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(error.cause_key(), "send:telegram");
    assert_eq!(state("c2").await.state, DeliveryState::Queued, "retried");
    f.sender
        .handle(&queued.body, &redelivery(2))
        .await
        .unwrap_err();
    // The policy's last attempt: the queue dead-letters it next.
    f.sender
        .handle(&queued.body, &redelivery(3))
        .await
        .unwrap_err();
    let failed = state("c2").await;
    assert_eq!((failed.state, failed.attempts), (DeliveryState::Failed, 3));

    // The same for the agents' notifications.
    let notifier = EscalationNotifier {
        notifier: f.recorder.clone(),
        idempotency: Arc::new(f.store.clone()),
        payloads: Arc::new(f.store.clone()),
        clock: Arc::new(SystemClock),
    };
    f.worker
        .handle(&message("3", "c3", "I want to talk to a human"), &lease())
        .await
        .unwrap();
    // An explicit ask is urgent: the priority queue.
    let ticket = f
        .store
        .receive(QueueName::EscalationPriority, SystemClock.now_ms(), 1_000)
        .await
        .unwrap()
        .unwrap();
    *f.recorder.refuse.lock().unwrap() = true;
    let error = notifier.handle(&ticket.body, &lease()).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(error.cause_key(), "send:email");
    *f.recorder.refuse.lock().unwrap() = false;
    assert!(notifier.handle(&ticket.body, &redelivery(2)).await.unwrap());
}

#[tokio::test]
async fn large_messages_and_tickets_are_read_back_from_the_payload_store() {
    let mut f = fixture(WorkerSettings::default());
    let offloading: Arc<dyn QueueProducer> = Arc::new(OffloadingQueue::new(
        Arc::new(f.store.clone()),
        Arc::new(f.store.clone()),
        Arc::new(SystemClock),
    ));
    f.worker.queue = offloading.clone();
    // 300 KiB of text that matches nothing: answered with a hand-over and a ticket.
    let text = "My blender from 1987 rattles. ".repeat(10_000);
    let body = message("1", "c1", &text);
    offloading
        .send(
            QueueName::Inbound,
            QueueItem {
                group: "g".into(),
                dedupe_id: "d".into(),
                body,
            },
        )
        .await
        .unwrap();
    let job = f
        .store
        .receive(QueueName::Inbound, SystemClock.now_ms(), 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(job.body.len() < 1024, "queued as a reference");
    let outcome = f.worker.handle(&job.body, &lease()).await.unwrap();
    assert!(matches!(outcome, Outcome::Escalated(_)), "{outcome:?}");
    let ticket = f
        .store
        .receive(QueueName::EscalationStandard, SystemClock.now_ms(), 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(ticket.body.len() < 1024, "the ticket too");
    let notifier = EscalationNotifier {
        notifier: f.recorder.clone(),
        idempotency: Arc::new(f.store.clone()),
        payloads: Arc::new(f.store.clone()),
        clock: Arc::new(SystemClock),
    };
    assert!(notifier.handle(&ticket.body, &lease()).await.unwrap());
    assert_eq!(f.recorder.tickets.lock().unwrap()[0].question, text);
}

#[test]
fn failures_name_their_cause() {
    let error = JobError::Retryable(Box::new(StoreError::Unavailable("x".into())));
    assert_eq!(error.cause_key(), "store");
    assert_eq!(error.retry_after_ms(), None);
    let asked = JobError::Retryable(Box::new(SendError::Transient {
        channel: "telegram".into(),
        detail: "429".into(),
        source: Some(Box::new(RetryAfter(Duration::from_secs(30)))),
    }));
    assert_eq!(asked.retry_after_ms(), Some(30_000));
    let policy = RetryPolicy::default();
    assert_eq!(
        policy.delay_ms(1, &asked),
        30_000,
        "longer than the backoff"
    );
    assert_eq!(
        policy.delay_ms(9, &asked),
        policy.backoff_ms(9),
        "never shorter"
    );
}

#[tokio::test]
async fn customers_in_different_variants_get_different_band_decisions_and_keep_their_variant() {
    let question = "Do you sell replacement parts for the 1987 model?";
    let kb = KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML).unwrap();
    let best = Faq::new(kb).candidates(question, Language::En, 1)[0].confidence;
    let defaults = RoutingPolicy::default();
    assert!(
        best < defaults.english.offer,
        "{best}: escalated by default"
    );
    // The eager variant answers this question outright; control hands it over.
    let answer = (best - 0.01).max(0.0);
    let experiments: Experiments = serde_json::from_value(serde_json::json!({
        "bands": {
            "variants": {"control": 50, "eager": 50},
            "eager": {"english_answer": answer, "english_offer": answer}
        }
    }))
    .unwrap();
    experiments.validate(&defaults).unwrap();
    let variant =
        |customer: &str| experiments.assign(&format!("telegram:{customer}"))["bands"].clone();
    let customers: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let control = customers.iter().find(|c| variant(c) == "control").unwrap();
    let eager = customers.iter().find(|c| variant(c) == "eager").unwrap();
    let f = fixture(WorkerSettings {
        experiments: experiments.clone(),
        ..WorkerSettings::default()
    });

    let outcome = |id: &'static str, customer: &str| {
        let job = message(id, customer, question);
        let worker = &f.worker;
        async move { worker.handle(&job, &lease()).await.unwrap() }
    };
    assert_eq!(
        outcome("1", control).await,
        Outcome::Escalated(EscalationReason::NoConfidentMatch)
    );
    assert_eq!(outcome("2", eager).await, Outcome::Answered);
    for (customer, expected) in [(control, "control"), (eager, "eager")] {
        let key = ConversationKey::new("telegram", "1", customer);
        let session = f.store.load(&key).await.unwrap().unwrap();
        assert_eq!(session.variants["bands"], expected, "{customer}");
    }
    // Sticky: the eager customer's next conversation is eager too.
    let mut next: InboundMessage = serde_json::from_slice(&message("3", eager, question)).unwrap();
    next.conversation_id = "another-chat".into();
    let outcome = f
        .worker
        .handle(&serde_json::to_vec(&next).unwrap(), &lease())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Answered);
}
