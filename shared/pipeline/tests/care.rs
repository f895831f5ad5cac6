//! Tiers, the welcome menu, urgency, and the service-level timers of a
//! hand-over, over the real embedded store with a recording reply sender and
//! a clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use switchboard_domain::*;
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::desk::{AgentDesk, AgentInput};
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::outbound::OutboundSender;
use switchboard_pipeline::timers::TimerOutcome;
use switchboard_pipeline::worker::{ConversationWorker, Outcome, WorkerSettings};
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

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Fixture {
    store: SqliteStore,
    replies: Arc<Replies>,
    clock: Arc<TestClock>,
    worker: ConversationWorker,
    sender: OutboundSender,
}

impl Fixture {
    fn new(settings: WorkerSettings, tiers: Option<Arc<dyn TierDirectory>>) -> Self {
        let store = SqliteStore::open_in_memory().unwrap();
        let replies = Arc::new(Replies::default());
        // A little ahead of the queue's own clock, so what is queued now is visible now.
        let clock = Arc::new(TestClock(AtomicI64::new(SystemClock.now_ms() + 5_000)));
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
            clock: clock.clone(),
            settings,
            tiers,
        };
        let sender = OutboundSender {
            replies: replies.clone(),
            sessions: Arc::new(store.clone()),
            idempotency: Arc::new(store.clone()),
            payloads: Arc::new(store.clone()),
            clock: clock.clone(),
            retry: RetryPolicy::default(),
        };
        Self {
            store,
            replies,
            clock,
            worker,
            sender,
        }
    }

    fn advance_secs(&self, secs: i64) {
        self.clock.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    fn lease(&self) -> JobLease {
        JobLease::new(1, self.clock.now_ms(), 60_000)
    }

    async fn say(&self, id: &str, customer: &str, text: &str) -> Outcome {
        let body = serde_json::to_vec(&InboundMessage {
            channel: "telegram".into(),
            account_id: "1".into(),
            customer_id: customer.into(),
            customer_name: None,
            conversation_id: customer.into(),
            provider_message_id: id.into(),
            sent_at_ms: self.clock.now_ms(),
            kind: MessageKind::Text,
            text: text.into(),
            attachments: vec![],
            reply: ReplyContext::default(),
        })
        .unwrap();
        self.worker.handle(&body, &self.lease()).await.unwrap()
    }

    /// What the customer has received: the outbound queue delivered first.
    async fn texts(&self) -> Vec<String> {
        while let Some(job) = self
            .store
            .receive(QueueName::Outbound, self.clock.now_ms(), 60_000)
            .await
            .unwrap()
        {
            self.sender.handle(&job.body, &self.lease()).await.unwrap();
            self.store.ack(&job, self.clock.now_ms()).await.unwrap();
        }
        self.replies
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.text.clone())
            .collect()
    }

    /// Every timer due by the test clock, handled once each, in order. (The
    /// queue keeps time by the system clock, behind the test's: a job it
    /// hands out early goes back, and is left out of the outcomes.)
    async fn fire_due_timers(&self) -> Vec<TimerOutcome> {
        let mut outcomes = Vec::new();
        for _ in 0..50 {
            let Some(job) = self
                .store
                .receive(QueueName::Timers, self.clock.now_ms(), 60_000)
                .await
                .unwrap()
            else {
                break;
            };
            let outcome = self
                .worker
                .handle_timer(&job.body, &self.lease())
                .await
                .unwrap();
            if outcome != TimerOutcome::Rescheduled {
                outcomes.push(outcome);
            }
            self.store.ack(&job, self.clock.now_ms()).await.unwrap();
        }
        outcomes
    }

    async fn session(&self, customer: &str) -> Session {
        let key = ConversationKey::new("telegram", "1", customer);
        self.store.load(&key).await.unwrap().unwrap()
    }

    async fn tickets(&self, queue: QueueName) -> Vec<EscalationTicket> {
        let mut tickets = Vec::new();
        while let Some(job) = self
            .store
            .receive(queue, self.clock.now_ms(), 60_000)
            .await
            .unwrap()
        {
            tickets.push(serde_json::from_slice(&job.body).unwrap());
            self.store.ack(&job, self.clock.now_ms()).await.unwrap();
        }
        tickets
    }
}

fn short_sla() -> WorkerSettings {
    let tier = TierSla {
        first_response_secs: 600,
        reassure_after_secs: 60,
    };
    WorkerSettings {
        sla: SlaPolicy {
            new: tier,
            regular: tier,
            vip: tier,
        },
        ..WorkerSettings::default()
    }
}

#[tokio::test]
async fn a_waiting_customer_is_reassured_three_times_and_a_breach_goes_to_the_priority_queue() {
    let f = Fixture::new(short_sla(), None);
    assert_eq!(
        f.say("1", "c1", "I want to talk to a human").await,
        Outcome::Escalated(EscalationReason::AskedForHuman)
    );
    assert!(
        f.texts().await[0].contains("10 minutes"),
        "{:?}",
        f.texts().await
    );
    let first = f.tickets(QueueName::EscalationPriority).await;
    assert_eq!(first.len(), 1, "an explicit ask is urgent");
    assert!(f.fire_due_timers().await.is_empty(), "nothing due yet");

    f.advance_secs(61);
    let fired = f.fire_due_timers().await;
    assert_eq!(fired, vec![TimerOutcome::Reassured(1)]);
    let texts = f.texts().await;
    assert_eq!(texts.len(), 2);
    assert!(texts[1].contains("We're on it"), "{texts:?}");
    assert!(texts[1].contains("9 minutes"), "the wait left: {texts:?}");

    // Two more intervals, then the target: two more reassurances, the breach.
    f.advance_secs(600);
    let fired = f.fire_due_timers().await;
    assert_eq!(
        fired,
        vec![
            TimerOutcome::Breached,
            TimerOutcome::Reassured(2),
            TimerOutcome::Reassured(3)
        ]
    );
    f.advance_secs(3600);
    assert!(f.fire_due_timers().await.is_empty(), "at most three");
    assert_eq!(f.texts().await.len(), 4);

    let breach = f.tickets(QueueName::EscalationPriority).await;
    assert_eq!(breach.len(), 1);
    assert_eq!(breach[0].reason, EscalationReason::SlaBreach);
    assert!(breach[0].priority);
    let session = f.session("c1").await;
    let handover = session.handover.unwrap();
    assert!(handover.breached_at_ms.is_some(), "the breach is recorded");
    let reassured = session
        .turns
        .iter()
        .filter(|t| t.role == Role::Bot && t.text.contains("We're on it"))
        .count();
    assert_eq!(reassured, 3, "reassurances are in the transcript");
}

#[tokio::test]
async fn a_redelivered_timer_sends_no_second_reassurance_and_an_early_one_waits() {
    let f = Fixture::new(short_sla(), None);
    f.say("1", "c1", "I want to talk to a human").await;
    f.advance_secs(61);
    let job = f
        .store
        .receive(QueueName::Timers, f.clock.now_ms(), 60_000)
        .await
        .unwrap()
        .unwrap();
    let redelivery = JobLease::new(2, f.clock.now_ms(), 60_000);
    assert_eq!(
        f.worker.handle_timer(&job.body, &f.lease()).await.unwrap(),
        TimerOutcome::Reassured(1)
    );
    assert_eq!(
        f.worker.handle_timer(&job.body, &redelivery).await.unwrap(),
        TimerOutcome::Reassured(1)
    );
    assert_eq!(
        f.texts().await.len(),
        2,
        "one hand-over notice, one reassurance"
    );
    let session = f.session("c1").await;
    assert_eq!(session.turns.len(), 3, "recorded once");

    // A timer delivered before it is due (SQS waits at most 15 minutes)
    // goes back for the rest.
    let early = serde_json::to_vec(&serde_json::json!({
        "kind": "breach", "conversation": "telegram:1:c1",
        "handover_at_ms": session.handover.unwrap().at_ms, "number": 0,
        "due_at_ms": f.clock.now_ms() + 3_600_000
    }))
    .unwrap();
    assert_eq!(
        f.worker.handle_timer(&early, &f.lease()).await.unwrap(),
        TimerOutcome::Rescheduled
    );
}

#[tokio::test]
async fn an_agents_answer_or_a_resolution_stops_the_timers() {
    let f = Fixture::new(short_sla(), None);
    f.say("1", "c1", "I want to talk to a human").await;
    f.say("2", "c2", "I want to talk to a human").await;
    // As the agents' API records it.
    let mut answered = f.session("c1").await;
    answered.handover.as_mut().unwrap().agent_answered_at_ms = Some(f.clock.now_ms());
    f.store.save(&answered).await.unwrap();
    let mut resolved = f.session("c2").await;
    resolved.status = SessionStatus::Resolved;
    f.store.save(&resolved).await.unwrap();

    f.advance_secs(3600);
    let fired = f.fire_due_timers().await;
    assert!(fired.iter().all(|o| *o == TimerOutcome::Stale), "{fired:?}");
    assert_eq!(f.texts().await.len(), 2, "only the two hand-over notices");
    assert!(f.tickets(QueueName::EscalationPriority).await.len() == 2);
}

#[tokio::test]
async fn follow_ups_while_waiting_are_acknowledged_at_most_once_an_interval() {
    let f = Fixture::new(short_sla(), None);
    f.say("1", "c1", "I want to talk to a human").await;
    f.advance_secs(10);
    assert_eq!(
        f.say("2", "c1", "hello?").await,
        Outcome::Escalated(EscalationReason::FollowUp)
    );
    assert_eq!(
        f.texts().await.len(),
        1,
        "just told: no acknowledgement yet"
    );
    f.advance_secs(55);
    f.say("3", "c1", "anyone there?").await;
    assert_eq!(f.texts().await.len(), 2);
    assert!(f.texts().await[1].contains("added this to your conversation"));
    f.advance_secs(5);
    f.say("4", "c1", "please").await;
    assert_eq!(f.texts().await.len(), 2, "once an interval");
    // After an agent's answer the bot stays quiet.
    let mut session = f.session("c1").await;
    session.handover.as_mut().unwrap().agent_answered_at_ms = Some(f.clock.now_ms());
    f.store.save(&session).await.unwrap();
    f.advance_secs(600);
    f.say("5", "c1", "thanks").await;
    assert_eq!(f.texts().await.len(), 2);
}

fn with_menu() -> WorkerSettings {
    WorkerSettings {
        menu_size: 4,
        // Picks one after another; "was this helpful?" would take the numbers.
        feedback: feedback::FeedbackSettings {
            ask_helpful: false,
            ..Default::default()
        },
        ..WorkerSettings::default()
    }
}

#[tokio::test]
async fn a_new_customers_real_question_the_bot_cannot_answer_goes_to_a_person() {
    let f = Fixture::new(with_menu(), None);
    assert_eq!(
        f.say(
            "1",
            "c1",
            "Do you sell replacement parts for the 1987 model?"
        )
        .await,
        Outcome::Escalated(EscalationReason::NoConfidentMatch)
    );
}

#[tokio::test]
async fn a_new_customer_gets_the_welcome_menu_and_a_number_answers_its_entry() {
    let f = Fixture::new(with_menu(), None);
    assert_eq!(f.say("1", "c1", "hello there").await, Outcome::Welcomed);
    let welcome = &f.texts().await[0];
    assert!(welcome.starts_with("Hi!"), "{welcome}");
    assert!(
        welcome.contains("1. What are your opening hours?\n2. How long does shipping take?"),
        "{welcome}"
    );
    assert!(
        welcome.contains("4. When will I get my refund?"),
        "{welcome}"
    );
    assert!(!welcome.contains("5. "), "{welcome}");
    assert_eq!(
        f.session("c1").await.menu,
        vec!["opening-hours", "shipping-time", "returns", "refund"]
    );
    for (id, pick) in [("2", "2"), ("3", "２"), ("4", "二")] {
        assert_eq!(f.say(id, "c1", pick).await, Outcome::Answered);
        let answer = f.texts().await.last().unwrap().clone();
        assert!(answer.contains("working day"), "{pick}: {answer}");
    }
    // Another question forgets the menu.
    f.say("5", "c1", "How do I reset my password?").await;
    assert!(f.session("c1").await.menu.is_empty());

    // A first message the bot can answer: welcome, answer and menu; a
    // returning customer gets no welcome.
    f.say("6", "c2", "What are your opening hours?").await;
    let first = f.texts().await.last().unwrap().clone();
    assert!(
        first.starts_with("Hi!") && first.contains("Monday to Saturday") && first.contains("1. ")
    );
    f.say("7", "c2", "How long does shipping take?").await;
    let second = f.texts().await.last().unwrap().clone();
    assert!(
        !second.contains("Hi!") && second.contains("working day"),
        "{second}"
    );
}

#[tokio::test]
async fn chinese_customers_get_the_chinese_welcome() {
    let f = Fixture::new(with_menu(), None);
    assert_eq!(f.say("1", "c1", "你好").await, Outcome::Welcomed);
    let welcome = &f.texts().await[0];
    assert!(welcome.starts_with("您好"), "{welcome}");
    assert!(welcome.contains("常见问题"), "{welcome}");
    assert_eq!(f.say("2", "c1", "1").await, Outcome::Answered);
    assert!(
        f.texts().await[1].contains("周一至周六"),
        "{:?}",
        f.texts().await
    );
}

#[tokio::test]
async fn the_bot_failing_twice_in_a_row_hands_over_with_priority() {
    let f = Fixture::new(with_menu(), None);
    assert_eq!(f.say("1", "c1", "hi").await, Outcome::Welcomed);
    assert_eq!(
        f.say("2", "c1", "the spare gasket for the old blender")
            .await,
        Outcome::Escalated(EscalationReason::RepeatedFailure)
    );
    let tickets = f.tickets(QueueName::EscalationPriority).await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].reason, EscalationReason::RepeatedFailure);
    assert!(tickets[0].priority);
}

struct Directory(Result<Option<Tier>, &'static str>);

#[async_trait]
impl TierDirectory for Directory {
    async fn tier(&self, _customer: &str) -> Result<Option<Tier>, BoxError> {
        self.0.map_err(Into::into)
    }
}

#[tokio::test]
async fn the_crms_vip_goes_to_a_person_at_once_and_a_failing_crm_leaves_the_stored_tier() {
    let question = "Do you sell replacement parts for the 1987 model?";
    let vip = Fixture::new(with_menu(), Some(Arc::new(Directory(Ok(Some(Tier::Vip))))));
    assert_eq!(
        vip.say("1", "c1", question).await,
        Outcome::Escalated(EscalationReason::VipUnanswered)
    );
    let tickets = vip.tickets(QueueName::EscalationPriority).await;
    assert_eq!(tickets[0].tier, Tier::Vip);
    assert!(
        vip.texts().await[0].contains("15 minutes"),
        "the VIP service level"
    );

    let down = Fixture::new(with_menu(), Some(Arc::new(Directory(Err("timed out")))));
    assert_eq!(
        down.say("1", "c1", question).await,
        Outcome::Escalated(EscalationReason::NoConfidentMatch)
    );
    assert!(
        down.texts().await[0].contains("4 hours"),
        "the new tier's service level"
    );
}

impl Fixture {
    fn last_reply(&self) -> OutboundReply {
        self.replies.0.lock().unwrap().last().unwrap().clone()
    }

    async fn feedback(&self) -> Vec<Feedback> {
        self.store.feedback_since(0).await.unwrap()
    }

    fn desk(&self) -> AgentDesk {
        AgentDesk {
            sessions: Arc::new(self.store.clone()),
            customers: Arc::new(self.store.clone()),
            feedback: Arc::new(self.store.clone()),
            idempotency: Arc::new(self.store.clone()),
            queue: Arc::new(self.store.clone()),
            clock: self.clock.clone(),
            sla: SlaPolicy::default(),
            csat: self.worker.settings.feedback.csat.clone(),
        }
    }
}

#[tokio::test]
async fn an_faq_answer_asks_whether_it_helped_at_most_hourly_and_the_vote_is_stored() {
    let f = Fixture::new(WorkerSettings::default(), None);
    assert_eq!(
        f.say("1", "c1", "How long does shipping take?").await,
        Outcome::Answered
    );
    f.texts().await;
    let asked = f.last_reply();
    assert!(
        asked.text.ends_with("\n\nWas this helpful?"),
        "{}",
        asked.text
    );
    let values: Vec<&str> = asked.choices.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["1", "2"]);
    // "1" answers the question, is stored against the entry, and thanked for.
    assert_eq!(f.say("2", "c1", "1").await, Outcome::Feedback);
    assert_eq!(
        f.texts().await.last().unwrap(),
        "Thank you for your feedback!"
    );
    let votes = f.feedback().await;
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].helpful, Some(true));
    assert_eq!(votes[0].faq_id.as_deref(), Some("shipping-time"));
    assert_eq!(votes[0].conversation, f.session("c1").await.key);
    // A redelivered vote is not stored twice.
    assert_eq!(f.say("2", "c1", "1").await, Outcome::Duplicate);
    assert_eq!(f.feedback().await.len(), 1);
    // Within the hour the next answer does not ask again.
    f.say("3", "c1", "What are your opening hours?").await;
    f.texts().await;
    assert!(f.last_reply().choices.is_empty());
    assert!(!f.last_reply().text.contains("helpful"));
    // An hour on it asks again; "not helpful" offers a person.
    f.advance_secs(3601);
    f.say("5", "c1", "How long does shipping take?").await;
    f.texts().await;
    assert!(f.last_reply().text.ends_with("Was this helpful?"));
    assert_eq!(f.say("6", "c1", "👎 No").await, Outcome::Feedback);
    let offer = f.texts().await.last().unwrap().clone();
    assert!(offer.contains("a person will help"), "{offer}");
    let votes = f.feedback().await;
    assert_eq!(votes.len(), 2);
    assert_eq!(votes[1].helpful, Some(false));
    // With no question pending, "1" is no vote.
    assert_eq!(f.session("c1").await.pending, None);
    assert_ne!(f.say("7", "c1", "1").await, Outcome::Feedback);
    assert_eq!(f.feedback().await.len(), 2);
}

#[tokio::test]
async fn without_buttons_the_question_says_how_to_answer_in_the_customers_language() {
    let f = Fixture::new(WorkerSettings::default(), None);
    let body = serde_json::to_vec(&InboundMessage {
        channel: "webchat".into(),
        account_id: "site".into(),
        customer_id: "w1".into(),
        customer_name: None,
        conversation_id: "w1".into(),
        provider_message_id: "w-1".into(),
        sent_at_ms: f.clock.now_ms(),
        kind: MessageKind::Text,
        text: "运费多少钱？".into(),
        attachments: vec![],
        reply: ReplyContext::default(),
    })
    .unwrap();
    f.worker.handle(&body, &f.lease()).await.unwrap();
    f.texts().await;
    let asked = f.last_reply();
    assert!(asked.choices.is_empty());
    assert!(
        asked
            .text
            .ends_with("这个回答对您有帮助吗？有帮助请回复 1，没有请回复 2。"),
        "{}",
        asked.text
    );
}

#[tokio::test]
async fn a_resolve_is_followed_by_the_survey_and_a_low_score_tells_the_agents() {
    let f = Fixture::new(WorkerSettings::default(), None);
    let desk = f.desk();
    let agent = AgentInput {
        agent: Some("Lee".into()),
    };
    for customer in ["c1", "c2"] {
        f.say(
            &format!("{customer}-1"),
            customer,
            "I want to talk to a person",
        )
        .await;
        let key = f.session(customer).await.key;
        desk.resolve(key.as_str(), &agent, "admin").await.unwrap();
    }
    f.tickets(QueueName::EscalationPriority).await;
    f.tickets(QueueName::EscalationStandard).await;
    let resolved_at = f.session("c1").await.handover.unwrap().resolved_at_ms;
    assert!(resolved_at.is_some());
    // Not before the delay.
    assert!(!f.fire_due_timers().await.contains(&TimerOutcome::Surveyed));
    f.advance_secs(61);
    let outcomes = f.fire_due_timers().await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == TimerOutcome::Surveyed)
            .count(),
        2,
        "{outcomes:?}"
    );
    f.texts().await;
    let survey = f.last_reply();
    assert!(
        survey.text.contains("from 1 (poor) to 5 (great)"),
        "{}",
        survey.text
    );
    assert_eq!(survey.choices.len(), 5);
    assert_eq!(f.session("c1").await.pending, Some(Pending::Satisfaction));

    assert_eq!(
        f.say("c1-2", "c1", "4 quick and kind").await,
        Outcome::Feedback
    );
    assert_eq!(f.say("c2-2", "c2", "１").await, Outcome::Feedback);
    let scores = f.feedback().await;
    assert_eq!(scores.len(), 2);
    assert_eq!(scores[0].satisfaction, Some(4));
    assert_eq!(scores[0].comment.as_deref(), Some("quick and kind"));
    assert_eq!(scores[1].satisfaction, Some(1));
    // Only the 1 reaches the agents; neither conversation is handed over again.
    let tickets = f.tickets(QueueName::EscalationStandard).await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].reason, EscalationReason::LowSatisfaction);
    assert_eq!(tickets[0].customer_id, "c2");
    assert_eq!(f.session("c2").await.status, SessionStatus::Resolved);
    // The survey's answer does not move the resolve time.
    let handover = f.session("c1").await.handover.unwrap();
    assert_eq!(handover.resolved_at_ms, resolved_at);
    // The survey is asked once per resolve, and the answer only while asked.
    assert_eq!(
        f.say("c1-3", "c1", "5").await,
        Outcome::Escalated(EscalationReason::NoConfidentMatch)
    );
}

#[tokio::test]
async fn a_customer_saying_it_is_settled_resolves_the_hand_over_and_gets_the_survey() {
    let f = Fixture::new(WorkerSettings::default(), None);
    f.say("1", "c1", "I want to talk to a person").await;
    assert_eq!(f.session("c1").await.status, SessionStatus::Escalated);
    assert_eq!(
        f.say("2", "c1", "Thanks, solved!").await,
        Outcome::ResolvedByCustomer
    );
    let settled = f.session("c1").await;
    assert_eq!(settled.status, SessionStatus::Resolved);
    let handover = settled.handover.unwrap();
    assert!(
        handover
            .resolved_at_ms
            .is_some_and(|at| at >= handover.at_ms)
    );
    assert!(
        f.texts()
            .await
            .last()
            .unwrap()
            .starts_with("Glad it's sorted")
    );
    f.advance_secs(61);
    assert!(f.fire_due_timers().await.contains(&TimerOutcome::Surveyed));
    assert_eq!(f.say("3", "c1", "5").await, Outcome::Feedback);
    assert_eq!(f.feedback().await[0].satisfaction, Some(5));
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_reply_is_refused_and_a_true_retry_is_not() {
    use switchboard_pipeline::desk::{AgentReply, DeskError};
    let f = Fixture::new(WorkerSettings::default(), None);
    f.say("1", "c1", "I want to talk to a human").await;
    f.texts().await;
    let desk = f.desk();
    let key = f.session("c1").await.key.0;
    let reply = |text: &str| AgentReply {
        text: text.into(),
        agent: Some("lee".into()),
        resolve: false,
    };
    let first = desk
        .reply(&key, "k-1", &reply("Your refund is on its way."), "lee")
        .await
        .unwrap();
    // A retry of the same request names the same reply.
    let again = desk
        .reply(&key, "k-1", &reply("Your refund is on its way."), "lee")
        .await
        .unwrap();
    assert_eq!(again.reply_id, first.reply_id);
    // The key with another text is refused, not silently dropped.
    let refused = desk
        .reply(&key, "k-1", &reply("And a voucher too."), "lee")
        .await
        .unwrap_err();
    assert!(matches!(refused, DeskError::Unprocessable(_)), "{refused}");
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .to_string()
            .contains("already used for another reply")
    );
    // So is the same text closing the conversation.
    let closing = AgentReply {
        resolve: true,
        ..reply("Your refund is on its way.")
    };
    assert_eq!(
        desk.reply(&key, "k-1", &closing, "lee")
            .await
            .unwrap_err()
            .status(),
        422
    );
    let sent = f.texts().await;
    assert_eq!(
        sent.iter()
            .filter(|t| t.as_str() == "Your refund is on its way.")
            .count(),
        1
    );
    assert!(!sent.iter().any(|t| t == "And a voucher too."));
    let agent_turns = f
        .session("c1")
        .await
        .turns
        .iter()
        .filter(|t| t.role == Role::Agent)
        .count();
    assert_eq!(agent_turns, 1);
    // A new key sends the new reply.
    desk.reply(&key, "k-2", &reply("And a voucher too."), "lee")
        .await
        .unwrap();
    assert!(f.texts().await.iter().any(|t| t == "And a voucher too."));
}

impl Fixture {
    /// A message of `kind` (a reaction, a tap, a sticker, a keyword) from `customer`.
    async fn deliver(
        &self,
        id: &str,
        customer: &str,
        kind: MessageKind,
        text: &str,
        tap: Option<&str>,
        attachments: Vec<Attachment>,
    ) -> Outcome {
        let body = serde_json::to_vec(&InboundMessage {
            channel: "telegram".into(),
            account_id: "1".into(),
            customer_id: customer.into(),
            customer_name: None,
            conversation_id: customer.into(),
            provider_message_id: id.into(),
            sent_at_ms: self.clock.now_ms(),
            kind,
            text: text.into(),
            attachments,
            reply: ReplyContext {
                reply_token: tap.map(Into::into),
                ..ReplyContext::default()
            },
        })
        .unwrap();
        self.worker.handle(&body, &self.lease()).await.unwrap()
    }

    async fn no_tickets(&self) {
        for queue in [QueueName::EscalationStandard, QueueName::EscalationPriority] {
            assert!(self.tickets(queue).await.is_empty(), "{queue:?}");
        }
    }
}

fn sticker(emoji: Option<&str>) -> Vec<Attachment> {
    vec![Attachment {
        kind: AttachmentKind::Sticker,
        provider_id: Some("st1".into()),
        url: None,
        mime_type: None,
        name: emoji.map(Into::into),
    }]
}

#[tokio::test]
async fn reactions_stickers_and_emoji_vote_on_an_open_question_and_are_otherwise_only_recorded() {
    let f = Fixture::new(WorkerSettings::default(), None);
    f.say("1", "c1", "How long does shipping take?").await;
    assert_eq!(f.texts().await.len(), 1);
    // A clear reaction to "was this helpful?" is the vote.
    let heart = f
        .deliver("2", "c1", MessageKind::Reaction, "❤️", None, vec![])
        .await;
    assert_eq!(heart, Outcome::Feedback);
    assert_eq!(
        f.texts().await.last().unwrap(),
        "Thank you for your feedback!"
    );
    assert_eq!(f.feedback().await[0].helpful, Some(true));
    // Anything after it, or unclear, is kept in the transcript only.
    let quiet = [
        (MessageKind::Reaction, "❤️", vec![]),
        (MessageKind::Reaction, "😂", vec![]),
        (MessageKind::Text, "👍", vec![]),
        (MessageKind::Media, "", sticker(Some("😂"))),
    ];
    for (n, (kind, text, attachments)) in quiet.into_iter().enumerate() {
        let id = format!("q{n}");
        let outcome = f.deliver(&id, "c1", kind, text, None, attachments).await;
        assert_eq!(outcome, Outcome::Recorded, "{kind:?} {text:?}");
    }
    assert_eq!(f.texts().await.len(), 2, "no reply to a reaction");
    f.no_tickets().await;
    let session = f.session("c1").await;
    assert_eq!(session.status, SessionStatus::Open);
    let last: Vec<&str> = session.turns[session.turns.len() - 4..]
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        last,
        ["[reaction ❤️]", "[reaction 😂]", "👍", "[sticker 😂]"]
    );

    // A sticker's emoji votes too, and an unclear one leaves the question open.
    f.advance_secs(3601);
    f.say("3", "c1", "How do I return an item?").await;
    f.texts().await;
    assert!(f.last_reply().text.ends_with("Was this helpful?"));
    let unclear = f
        .deliver("4", "c1", MessageKind::Reaction, "🤔", None, vec![])
        .await;
    assert_eq!(unclear, Outcome::Recorded);
    let down = f
        .deliver("5", "c1", MessageKind::Media, "", None, sticker(Some("👎")))
        .await;
    assert_eq!(down, Outcome::Feedback);
    assert!(
        f.texts()
            .await
            .last()
            .unwrap()
            .starts_with("Sorry that didn't help.")
    );
    assert_eq!(f.feedback().await.len(), 2);
    assert_eq!(f.feedback().await[1].helpful, Some(false));
    f.no_tickets().await;
}

#[tokio::test]
async fn a_tap_answering_nothing_open_is_acknowledged_and_not_read_as_a_question() {
    let f = Fixture::new(WorkerSettings::default(), None);
    f.say("1", "c1", "How long does shipping take?").await;
    f.texts().await;
    let first = f
        .deliver("2", "c1", MessageKind::Choice, "1", Some("cb1"), vec![])
        .await;
    assert_eq!(first, Outcome::Feedback);
    // The same button again: acknowledged, not "1" asked of the FAQ.
    let again = f
        .deliver("3", "c1", MessageKind::Choice, "1", Some("cb2"), vec![])
        .await;
    assert_eq!(again, Outcome::Recorded);
    let sent = f.texts().await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    let ack = f.last_reply();
    assert!(ack.acknowledges_only(), "{ack:?}");
    assert_eq!(ack.reply.reply_token.as_deref(), Some("cb2"));
    assert_eq!(f.feedback().await.len(), 1, "counted once");
    f.no_tickets().await;
    let session = f.session("c1").await;
    assert_eq!(session.status, SessionStatus::Open);
    assert_eq!(session.turns.last().unwrap().role, Role::Customer);
    assert!(session.delivery(&ack.reply_id).is_none());
    // A redelivery acknowledges nothing more.
    let redelivered = f
        .deliver("3", "c1", MessageKind::Choice, "1", Some("cb2"), vec![])
        .await;
    assert_eq!(redelivered, Outcome::Duplicate);
    assert_eq!(f.texts().await.len(), 3);
}

#[tokio::test]
async fn a_keyword_the_provider_answers_gets_no_reply_and_no_hand_over() {
    let f = Fixture::new(WorkerSettings::default(), None);
    f.say("1", "c1", "How long does shipping take?").await;
    f.texts().await;
    for (id, word) in [("2", "STOP"), ("3", "HELP"), ("4", "START")] {
        let outcome = f
            .deliver(id, "c1", MessageKind::Keyword, word, None, vec![])
            .await;
        assert_eq!(outcome, Outcome::Recorded, "{word}");
    }
    assert_eq!(f.texts().await.len(), 1);
    f.no_tickets().await;
    // Nor while a person has the conversation: the transcript shows it.
    f.say("5", "c2", "I want to talk to a human").await;
    f.texts().await;
    f.tickets(QueueName::EscalationPriority).await;
    f.tickets(QueueName::EscalationStandard).await;
    let stop = f
        .deliver("6", "c2", MessageKind::Keyword, "STOP", None, vec![])
        .await;
    assert_eq!(stop, Outcome::Recorded);
    let thumbs = f
        .deliver("7", "c2", MessageKind::Reaction, "👍", None, vec![])
        .await;
    assert_eq!(thumbs, Outcome::Recorded);
    f.no_tickets().await;
    let session = f.session("c2").await;
    assert_eq!(session.status, SessionStatus::Escalated);
    assert_eq!(session.turns.last().unwrap().text, "[reaction 👍]");
    assert!(session.turns.iter().any(|t| t.text == "STOP"));
}
