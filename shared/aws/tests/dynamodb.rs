//! The store adapters against DynamoDB Local.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use serde_json::json;
use switchboard_aws::{
    DynamoCustomerStore, DynamoFeedbackStore, DynamoGapLog, DynamoIdempotencyStore,
    DynamoKnowledgeBase, DynamoSessionStore, TTL_ATTRIBUTE,
};
use switchboard_domain::{
    Claim, ConversationKey, CustomerStore, EscalationReason, Feedback, FeedbackStore, GapLog,
    Handover, IdempotencyStore, InboundMessage, Language, Role, Session, SessionStatus,
    SessionStore, StoreError, Tier, Turn,
};
use tokio::sync::Barrier;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_claims_of_one_key_have_exactly_one_winner() {
    let local = common::local().await;
    let store = Arc::new(DynamoIdempotencyStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.idempotency_table,
    ));
    let barrier = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .claim("telegram:bot:update-7", 1_000, 30_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claims = Vec::new();
    for task in tasks {
        claims.push(task.await.unwrap());
    }
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::Acquired).count(),
        1,
        "{claims:?}"
    );
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::InProgress).count(),
        19,
        "{claims:?}"
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_but_a_completed_record_never_is() {
    let local = common::local().await;
    let table = &local.resources.idempotency_table;
    let store = DynamoIdempotencyStore::new(local.clients.dynamodb.clone(), table);

    assert_eq!(store.claim("k", 0, 1_000).await.unwrap(), Claim::Acquired);
    assert_eq!(
        store.claim("k", 999, 1_000).await.unwrap(),
        Claim::InProgress,
        "lease still running"
    );
    // The first attempt crashed; once its lease has run out another takes over.
    assert_eq!(
        store.claim("k", 1_000, 1_000).await.unwrap(),
        Claim::TakenOver,
        "expired lease is taken over"
    );
    assert_eq!(
        store.claim("k", 1_500, 1_000).await.unwrap(),
        Claim::InProgress,
        "the new lease holds"
    );

    store.complete("k", 86_400_000).await.unwrap();
    for now in [1_500, 2_001, 50_000_000, 86_399_999] {
        assert_eq!(
            store.claim("k", now, 1_000).await.unwrap(),
            Claim::Done,
            "completed at {now}"
        );
    }
    store.release("k").await.unwrap();
    assert_eq!(
        store.claim("k", 3_000, 1_000).await.unwrap(),
        Claim::Done,
        "release must not undo a completion"
    );

    // Records carry the TTL attribute in epoch seconds.
    let item = local
        .clients
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S("k".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item.get(TTL_ATTRIBUTE),
        Some(&AttributeValue::N("86400".into()))
    );
    assert_eq!(
        item.get("status"),
        Some(&AttributeValue::S("COMPLETED".into()))
    );

    // An in-progress claim outlives its lease in the table: TTL must not
    // delete the trace of an interrupted send before a redelivery finds it.
    assert_eq!(store.claim("j", 0, 1_000).await.unwrap(), Claim::Acquired);
    let claimed = local
        .clients
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S("j".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let kept_secs = (1_000 + switchboard_domain::INTERRUPTED_CLAIM_KEPT_MS) / 1_000;
    assert_eq!(
        claimed.get(TTL_ATTRIBUTE),
        Some(&AttributeValue::N(kept_secs.to_string()))
    );

    // Past its keep-until time a completed record counts as gone (TTL may lag).
    assert_eq!(
        store.claim("k", 86_400_000, 1_000).await.unwrap(),
        Claim::Acquired
    );

    // A released in-progress record can be claimed again at once.
    assert_eq!(store.claim("r", 0, 60_000).await.unwrap(), Claim::Acquired);
    store.release("r").await.unwrap();
    assert_eq!(store.claim("r", 1, 60_000).await.unwrap(), Claim::Acquired);
}

fn message(conversation: &str) -> InboundMessage {
    serde_json::from_value(json!({
        "channel": "telegram", "account_id": "bot", "customer_id": "42", "conversation_id": conversation,
        "provider_message_id": "m0", "sent_at_ms": 0, "kind": "text", "text": "hello"
    }))
    .unwrap()
}

fn turn(id: String, at_ms: i64) -> Turn {
    Turn {
        role: Role::Customer,
        text: format!("turn {id}"),
        at_ms,
        message_id: Some(id),
        faq_entry: None,
        confidence: None,
        agent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_workers_lose_no_turn() {
    let local = common::local().await;
    let store = Arc::new(DynamoSessionStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.sessions_table,
    ));
    let key = ConversationKey::new("telegram", "bot", "chat-1");
    let conflicts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const TURNS: usize = 15;

    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|worker| {
            let (store, key, conflicts) = (store.clone(), key.clone(), conflicts.clone());
            tokio::spawn(async move {
                for i in 0..TURNS {
                    loop {
                        let mut session = match store.load(&key).await.unwrap() {
                            Some(session) => session,
                            None => Session::start(&message("chat-1"), Language::En, 0),
                        };
                        session.push(turn(format!("{worker}-{i}"), i as i64));
                        match store.save(&session).await {
                            Ok(version) => {
                                assert_eq!(version, session.version + 1);
                                break;
                            }
                            Err(StoreError::Conflict(_)) => {
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(other) => {
                                panic!("save failed: {}", switchboard_aws::error_chain(&other))
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }

    let session = store.load(&key).await.unwrap().expect("session stored");
    let ids: BTreeSet<String> = session
        .turns
        .iter()
        .filter_map(|t| t.message_id.clone())
        .collect();
    let expected: BTreeSet<String> = ["a", "b"]
        .iter()
        .flat_map(|w| (0..TURNS).map(move |i| format!("{w}-{i}")))
        .collect();
    assert_eq!(
        ids, expected,
        "every turn of both workers is in the transcript"
    );
    assert_eq!(session.turns.len(), 2 * TURNS, "and none twice");
    assert_eq!(
        session.version,
        2 * TURNS as u64,
        "one version per successful save"
    );
    eprintln!(
        "conflicts retried: {}",
        conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[tokio::test]
async fn stale_and_duplicate_first_saves_conflict() {
    let local = common::local().await;
    let store = DynamoSessionStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.sessions_table,
    );
    let mut fresh = Session::start(&message("chat-2"), Language::Zh, 5);
    fresh.push(turn("m1".into(), 6));
    assert_eq!(store.save(&fresh).await.unwrap(), 1);
    assert!(
        matches!(store.save(&fresh).await, Err(StoreError::Conflict(_))),
        "a second new session conflicts"
    );

    let mut loaded = store.load(&fresh.key).await.unwrap().unwrap();
    assert_eq!(loaded.version, 1);
    assert_eq!(loaded.turns, fresh.turns);
    assert_eq!(loaded.language, Language::Zh);
    let stale = loaded.clone();
    loaded.push(turn("m2".into(), 7));
    assert_eq!(store.save(&loaded).await.unwrap(), 2);
    assert!(
        matches!(store.save(&stale).await, Err(StoreError::Conflict(_))),
        "a stale version conflicts"
    );
    assert_eq!(
        store.load(&fresh.key).await.unwrap().unwrap().turns.len(),
        2
    );
    assert!(
        store
            .load(&ConversationKey::new("telegram", "bot", "nobody"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_are_counted_atomically_and_returned_as_before() {
    let local = common::local().await;
    let store = Arc::new(DynamoCustomerStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.customers_table,
    ));
    assert_eq!(
        store.record_contact("telegram:42", 100).await.unwrap(),
        None,
        "first contact"
    );
    let before = store
        .record_contact("telegram:42", 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            before.first_seen_ms,
            before.last_seen_ms,
            before.message_count
        ),
        (100, 100, 1)
    );

    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record_contact("telegram:42", 300 + i)
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let mut counts = BTreeSet::new();
    for task in tasks {
        counts.insert(task.await.unwrap().message_count);
    }
    assert_eq!(
        counts,
        (2..12).collect::<BTreeSet<u64>>(),
        "each contact saw a distinct count"
    );
    let last = store
        .record_contact("telegram:42", 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.first_seen_ms, last.message_count), (100, 12));
}

#[tokio::test]
async fn feedback_is_kept_per_conversation_and_retries_do_not_duplicate() {
    let local = common::local().await;
    let store = DynamoFeedbackStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.feedback_table,
    );
    let conversation = ConversationKey::new("slack", "T1", "C1");
    let first = Feedback {
        conversation: conversation.clone(),
        helpful: Some(true),
        satisfaction: None,
        comment: None,
        faq_id: Some("shipping".into()),
        at_ms: 10,
    };
    let second = Feedback {
        conversation: conversation.clone(),
        helpful: None,
        satisfaction: Some(4),
        comment: Some("quick answer".into()),
        faq_id: None,
        at_ms: 10,
    };
    store.put(&first).await.unwrap();
    store.put(&first).await.unwrap();
    store.put(&second).await.unwrap();
    let listed = store.list(&conversation).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&first) && listed.contains(&second));
    assert!(
        store
            .list(&ConversationKey::new("slack", "T1", "other"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn gaps_are_counted_and_listed_most_frequent_first() {
    let local = common::local().await;
    let log = DynamoGapLog::new(local.clients.dynamodb.clone(), &local.resources.gaps_table);
    for (question, times) in [
        ("Do you ship to Mars?", 3),
        ("Can I pay in gold?", 1),
        ("退货要多久？", 2),
    ] {
        for i in 0..times {
            log.record(question, Language::detect(question), 100 + i)
                .await
                .unwrap();
        }
    }
    log.record("do you SHIP to mars", Language::En, 500)
        .await
        .unwrap();
    log.record("  ?! ", Language::En, 600).await.unwrap();
    let gaps = log.most_frequent(2).await.unwrap();
    assert_eq!(gaps.len(), 2);
    assert_eq!(
        (
            gaps[0].question.as_str(),
            gaps[0].count,
            gaps[0].last_seen_ms
        ),
        ("do you SHIP to mars", 4, 500)
    );
    assert_eq!(
        (gaps[1].question.as_str(), gaps[1].count, gaps[1].language),
        ("退货要多久？", 2, Language::Zh)
    );
    assert_eq!(
        log.most_frequent(10).await.unwrap().len(),
        3,
        "blank questions are not recorded"
    );
}

#[tokio::test]
async fn the_knowledge_base_is_replaced_as_a_whole_and_keeps_its_order() {
    let local = common::local().await;
    let kb = DynamoKnowledgeBase::new(local.clients.dynamodb.clone(), &local.resources.kb_table);
    assert!(kb.load_entries().await.unwrap().is_empty());
    assert_eq!(kb.load_jsonl().await.unwrap(), None);

    let first: Vec<_> = (0..40)
        .map(|i| json!({"id": format!("e{i}"), "question": format!("q{i}"), "answer": "a"}))
        .collect();
    kb.put_entries(&first, 1).await.unwrap();
    assert_eq!(
        kb.load_entries().await.unwrap(),
        first,
        "40 entries (two write batches) in order"
    );

    let second = vec![r#"{"id":"only","question":"营业时间？","answer":"9-18"}"#.to_owned()];
    kb.put_raw_entries(&second, 2).await.unwrap();
    assert_eq!(kb.load_raw_entries().await.unwrap(), second);
    assert_eq!(kb.load_jsonl().await.unwrap().unwrap(), second[0]);
    let third = vec![json!({"id": "x", "question": "q", "answer": "a"})];
    kb.put_entries(&third, 3).await.unwrap();
    assert_eq!(kb.load_entries().await.unwrap(), third);

    // The first generation is gone; the second is kept for readers still on it.
    let items = local
        .clients
        .dynamodb
        .scan()
        .table_name(&local.resources.kb_table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        items.count(),
        1 + 1 + 1,
        "pointer + previous generation's entry + current entry"
    );
    assert!(
        kb.put_raw_entries(&["{not json".to_owned()], 4)
            .await
            .is_err()
    );
    assert_eq!(
        kb.load_entries().await.unwrap(),
        third,
        "a rejected import changes nothing"
    );
}

#[tokio::test]
async fn every_table_has_ttl_on_expires_at() {
    let local = common::local().await;
    let r = &local.resources;
    for table in [
        &r.sessions_table,
        &r.customers_table,
        &r.idempotency_table,
        &r.feedback_table,
        &r.gaps_table,
        &r.kb_table,
    ] {
        let ttl = local
            .clients
            .dynamodb
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .unwrap();
        let description = ttl.time_to_live_description().unwrap();
        assert_eq!(
            description.time_to_live_status(),
            Some(&TimeToLiveStatus::Enabled),
            "{table}"
        );
        assert_eq!(description.attribute_name(), Some(TTL_ATTRIBUTE), "{table}");
    }
}

#[tokio::test]
async fn a_completed_record_keeps_its_result_until_it_expires() {
    let local = common::local().await;
    let store = DynamoIdempotencyStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.idempotency_table,
    );
    assert_eq!(
        store.claim("reply:1", 0, 1_000).await.unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store.result("reply:1", 10).await.unwrap(),
        None,
        "in progress"
    );
    store
        .complete_with_result("reply:1", 100_000, "Orders leave within a day.")
        .await
        .unwrap();
    assert_eq!(
        store.result("reply:1", 50_000).await.unwrap().as_deref(),
        Some("Orders leave within a day.")
    );
    assert_eq!(
        store.result("reply:1", 100_000).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.result("reply:none", 10).await.unwrap(), None);
    // A record taken over after expiry and completed without a result has none.
    assert_eq!(
        store.claim("reply:1", 100_001, 1_000).await.unwrap(),
        Claim::Acquired
    );
    store.complete("reply:1", 200_000).await.unwrap();
    assert_eq!(store.result("reply:1", 100_002).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_stop_at_the_limit_under_concurrency_and_reset_when_expired() {
    use switchboard_aws::DynamoCounterStore;
    use switchboard_domain::CounterStore;
    let local = common::local().await;
    let table = &local.resources.idempotency_table;
    let store = Arc::new(DynamoCounterStore::new(
        local.clients.dynamodb.clone(),
        table,
    ));
    let barrier = Arc::new(Barrier::new(15));
    let tasks: Vec<_> = (0..15)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .increment_below("auto-replies:ses:jane@x.example:1", 10, 1_000, 90_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        granted += usize::from(task.await.unwrap());
    }
    assert_eq!(granted, 10, "ten automated replies a day, never eleven");
    let key = "auto-replies:ses:jane@x.example:1";
    assert_eq!(store.count(key, 2_000).await.unwrap(), 10);
    assert!(!store.increment_below(key, 10, 2_000, 90_000).await.unwrap());
    // Past its expiry the counter is 0 and starts again.
    assert_eq!(store.count(key, 90_000).await.unwrap(), 0);
    assert!(
        store
            .increment_below(key, 10, 90_000, 180_000)
            .await
            .unwrap()
    );
    assert_eq!(store.count(key, 90_001).await.unwrap(), 1);
    assert_eq!(store.count("absent", 0).await.unwrap(), 0);
    // The counters share the idempotency table without touching its records.
    let dedupe = DynamoIdempotencyStore::new(local.clients.dynamodb.clone(), table);
    assert_eq!(dedupe.claim(key, 0, 1_000).await.unwrap(), Claim::Acquired);
}

#[tokio::test]
async fn a_stored_tier_wins_even_before_the_first_contact() {
    let local = common::local().await;
    let store = DynamoCustomerStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.customers_table,
    );
    // Marked VIP before ever writing: a VIP on the first message, with no contact counted yet.
    store.set_tier("telegram:7", Tier::Vip).await.unwrap();
    let before = store
        .record_contact("telegram:7", 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((before.tier, before.message_count), (Tier::Vip, 0));
    let after = store
        .record_contact("telegram:7", 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.tier, after.first_seen_ms, after.message_count),
        (Tier::Vip, 100, 1)
    );
    // A returning customer without a stored tier is regular; set back, it applies at once.
    store.record_contact("telegram:8", 100).await.unwrap();
    assert_eq!(
        store
            .record_contact("telegram:8", 200)
            .await
            .unwrap()
            .unwrap()
            .tier,
        Tier::Regular
    );
    store.set_tier("telegram:8", Tier::New).await.unwrap();
    assert_eq!(
        store
            .record_contact("telegram:8", 300)
            .await
            .unwrap()
            .unwrap()
            .tier,
        Tier::New
    );
}

#[tokio::test]
async fn the_waiting_index_holds_exactly_the_escalated_conversations_and_a_limit_cuts_the_list() {
    let local = common::local().await;
    let store = DynamoSessionStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.sessions_table,
    );
    let session = |i: usize| {
        let message: InboundMessage = serde_json::from_value(json!({
            "channel": "telegram", "account_id": "bot", "customer_id": i.to_string(),
            "conversation_id": i.to_string(), "provider_message_id": format!("m{i}"),
            "sent_at_ms": 0, "kind": "text", "text": "hi"
        }))
        .unwrap();
        Session::start(&message, Language::En, i as i64)
    };
    let mut saved = Vec::new();
    for i in 0..25 {
        let mut s = session(i);
        s.push(Turn {
            role: Role::Customer,
            text: format!("question {i}"),
            at_ms: i as i64,
            message_id: Some(format!("m{i}")),
            faq_entry: None,
            confidence: None,
            agent: None,
        });
        if i % 5 != 0 {
            s.status = SessionStatus::Escalated;
            s.handover = Some(Handover {
                at_ms: i as i64,
                tier: Tier::Regular,
                reason: EscalationReason::AskedForHuman,
                priority: false,
                claimed_by: None,
                agent_answered_at_ms: None,
                breached_at_ms: None,
                first_response_due_ms: None,
                resolved_at_ms: None,
                candidates: Vec::new(),
            });
        }
        s.version = store.save(&s).await.unwrap();
        saved.push(s);
    }
    let listed = store.escalated(1_000).await.unwrap();
    assert_eq!(listed.len(), 20, "the five open ones are not in the index");
    assert!(listed.iter().any(|s| s.preview == "question 7"));
    // Pages of at most the limit; a limit cuts the list.
    assert_eq!(store.escalated(7).await.unwrap().len(), 7);
    // Resolved: out of the index (the attribute is gone with the put).
    let mut resolved = saved[1].clone();
    resolved.status = SessionStatus::Resolved;
    store.save(&resolved).await.unwrap();
    let listed = store.escalated(1_000).await.unwrap();
    assert_eq!(listed.len(), 19);
    assert!(!listed.iter().any(|s| s.key == resolved.key));
}

#[tokio::test]
async fn the_customer_index_lists_a_customers_conversations_newest_first() {
    let local = common::local().await;
    let store = DynamoSessionStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.sessions_table,
    );
    let thread = |customer: &str, thread: usize, at_ms: i64, text: &str| {
        let message: InboundMessage = serde_json::from_value(json!({
            "channel": "email", "account_id": "support@shop.test", "customer_id": customer,
            "conversation_id": format!("thread-{thread}"), "provider_message_id": format!("m{thread}"),
            "sent_at_ms": at_ms, "kind": "text", "text": text
        }))
        .unwrap();
        let mut session = Session::start(&message, Language::En, at_ms);
        session.push(turn(format!("m{thread}"), at_ms));
        session.turns[0].text = text.to_owned();
        session
    };
    // Thirty threads of one customer (more than a page of a small limit),
    // and one of another.
    let mut sessions = Vec::new();
    for i in 0..30 {
        let mut session = thread(
            "ann@example.com",
            i,
            1_000 + i as i64,
            &format!("order {i}"),
        );
        if i % 2 == 0 {
            session.status = SessionStatus::Resolved;
        }
        session.version = store.save(&session).await.unwrap();
        sessions.push(session);
    }
    store
        .save(&thread("bob@example.com", 99, 5_000, "not Ann's"))
        .await
        .unwrap();

    let listed = store
        .customer_conversations("email:ann@example.com", 20)
        .await
        .unwrap();
    assert_eq!(listed.len(), 20);
    assert_eq!(listed[0], sessions[29].brief());
    assert_eq!(listed[0].first_line, "order 29");
    assert_eq!(listed[1].status, SessionStatus::Resolved);
    assert_eq!(listed[19].key, sessions[10].key);
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].updated_at_ms > pair[1].updated_at_ms)
    );
    assert_eq!(
        store
            .customer_conversations("email:ann@example.com", 1_000)
            .await
            .unwrap()
            .len(),
        30
    );

    // A later message moves a conversation to the top.
    let mut revived = sessions[3].clone();
    revived.push(turn("m-late".into(), 9_000));
    store.save(&revived).await.unwrap();
    let listed = store
        .customer_conversations("email:ann@example.com", 2)
        .await
        .unwrap();
    assert_eq!(
        (listed[0].key.clone(), listed[0].first_line.as_str()),
        (revived.key, "order 3")
    );
    assert_eq!(listed[1].key, sessions[29].key);
    assert!(
        store
            .customer_conversations("email:nobody@example.com", 20)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn reports_read_the_sessions_and_feedback_of_the_period() {
    use switchboard_domain::ReportRecords;
    let local = common::local().await;
    let sessions = DynamoSessionStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.sessions_table,
    );
    let feedback = DynamoFeedbackStore::new(
        local.clients.dynamodb.clone(),
        &local.resources.feedback_table,
    );
    for (chat, at_ms) in [("old", 1_000), ("new", 5_000)] {
        let mut session = Session::start(&message(chat), Language::En, at_ms);
        session.variants.insert("bands".into(), "eager".into());
        sessions.save(&session).await.unwrap();
        feedback
            .put(&Feedback {
                conversation: session.key.clone(),
                helpful: Some(false),
                satisfaction: Some(2),
                comment: None,
                faq_id: None,
                at_ms,
            })
            .await
            .unwrap();
    }
    let records = switchboard_aws::DynamoReportRecords::new(
        local.clients.dynamodb.clone(),
        &local.resources.sessions_table,
        &local.resources.feedback_table,
    );
    let read = records.sessions_since(3_000).await.unwrap();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].conversation_id, "new");
    assert_eq!(read[0].variants["bands"], "eager", "variants are kept");
    assert_eq!(read[0].version, 1);
    let given = records.feedback_since(3_000).await.unwrap();
    assert_eq!(given.len(), 1, "{given:?}");
    assert_eq!(
        (
            given[0].conversation.clone(),
            given[0].satisfaction,
            given[0].helpful
        ),
        (read[0].key.clone(), Some(2), Some(false))
    );
    assert_eq!(records.sessions_since(0).await.unwrap().len(), 2);
}
