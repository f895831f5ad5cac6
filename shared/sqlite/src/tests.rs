use std::sync::Arc;

use switchboard_domain::*;

use crate::SqliteStore;

fn message(conversation: &str, id: &str) -> InboundMessage {
    InboundMessage {
        channel: "telegram".into(),
        account_id: "bot".into(),
        customer_id: "c1".into(),
        customer_name: None,
        conversation_id: conversation.into(),
        provider_message_id: id.into(),
        sent_at_ms: 1,
        kind: MessageKind::Text,
        text: "hello".into(),
        attachments: vec![],
        reply: ReplyContext::default(),
    }
}

fn failure(cause: &str) -> crate::Failure {
    crate::Failure {
        error: format!("{cause} failed"),
        cause: cause.into(),
    }
}

fn item(group: &str, dedupe: &str) -> QueueItem {
    QueueItem {
        group: group.into(),
        dedupe_id: dedupe.into(),
        body: dedupe.as_bytes().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_twenty_concurrent_claims_wins() {
    let store = SqliteStore::open_in_memory().unwrap();
    let claims = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim("k", 1_000, 60_000).await.unwrap() })
    });
    let results: Vec<Claim> = futures_join(claims).await;
    assert_eq!(results.iter().filter(|c| **c == Claim::Acquired).count(), 1);
    assert_eq!(
        results.iter().filter(|c| **c == Claim::InProgress).count(),
        19
    );
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn expired_in_progress_claims_are_taken_over_but_done_ones_never() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.claim("a", 1_000, 100).await.unwrap(), Claim::Acquired);
    assert_eq!(
        store.claim("a", 1_050, 100).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store.claim("a", 1_101, 100).await.unwrap(),
        Claim::TakenOver,
        "lease ran out: the crashed holder may have done part of the work"
    );

    store.complete("a", 10_000).await.unwrap();
    assert_eq!(store.claim("a", 5_000, 100).await.unwrap(), Claim::Done);
    assert_eq!(
        store.claim("a", 10_001, 100).await.unwrap(),
        Claim::Acquired,
        "record expired"
    );

    store.release("a").await.unwrap();
    assert_eq!(
        store.claim("a", 10_002, 100).await.unwrap(),
        Claim::Acquired,
        "released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_session_lose_no_turn() {
    let store = SqliteStore::open_in_memory().unwrap();
    let first = message("chat", "m0");
    let key = first.conversation_key();
    let mut session = Session::start(&first, Language::En, 0);
    session.version = store.save(&session).await.unwrap();

    let writers = (0..2).map(|writer| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move {
            for n in 0..25 {
                loop {
                    let mut session = store.load(&key).await.unwrap().unwrap();
                    session.push(Turn {
                        role: Role::Customer,
                        text: format!("{writer}-{n}"),
                        at_ms: n,
                        message_id: None,
                        faq_entry: None,
                        confidence: None,
                        agent: None,
                    });
                    match store.save(&session).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(other) => panic!("{other}"),
                    }
                }
            }
        })
    });
    futures_join(writers).await;
    let session = store.load(&key).await.unwrap().unwrap();
    assert_eq!(session.turns.len(), 50);
    assert_eq!(session.version, 51);
}

#[tokio::test]
async fn a_stale_version_is_a_conflict() {
    let store = SqliteStore::open_in_memory().unwrap();
    let session = Session::start(&message("chat", "m0"), Language::En, 0);
    assert_eq!(store.save(&session).await.unwrap(), 1);
    assert!(
        matches!(store.save(&session).await, Err(StoreError::Conflict(_))),
        "second insert of version 0"
    );
}

#[tokio::test]
async fn queue_keeps_group_order_and_drops_repeated_dedupe_ids() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .send(QueueName::Inbound, item("g1", "a"))
        .await
        .unwrap();
    store
        .send(QueueName::Inbound, item("g1", "b"))
        .await
        .unwrap();
    store
        .send(QueueName::Inbound, item("g2", "c"))
        .await
        .unwrap();
    store
        .send(QueueName::Inbound, item("g1", "a"))
        .await
        .unwrap();
    let now = i64::MAX / 2;

    let a = store
        .receive(QueueName::Inbound, now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.body, b"a");
    // g1 is busy with `a`, so `b` waits; `c` of another group goes ahead.
    let c = store
        .receive(QueueName::Inbound, now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.body, b"c");
    assert!(
        store
            .receive(QueueName::Inbound, now, 1_000)
            .await
            .unwrap()
            .is_none()
    );

    store.ack(&a, now).await.unwrap();
    let b = store
        .receive(QueueName::Inbound, now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.body, b"b");
    store.ack(&b, now).await.unwrap();
    store.ack(&c, now).await.unwrap();
    assert!(
        store
            .receive(QueueName::Inbound, now, 1_000)
            .await
            .unwrap()
            .is_none(),
        "the repeat of `a` was dropped"
    );
}

#[tokio::test]
async fn one_call_leases_the_oldest_item_of_each_free_group_in_line_order() {
    let store = SqliteStore::open_in_memory().unwrap();
    for (group, id) in [
        ("g1", "a"),
        ("g1", "b"),
        ("g2", "c"),
        ("g3", "d"),
        ("g2", "e"),
    ] {
        store
            .send(QueueName::Inbound, item(group, id))
            .await
            .unwrap();
    }
    let now = i64::MAX / 2;
    let first = store
        .receive(QueueName::Inbound, now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.body, b"a");
    // g1 is busy with `a`: `b` waits, and each other group gives its oldest.
    let many = store
        .receive_many(QueueName::Inbound, now, 1_000, 10)
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = many.iter().map(|leased| leased.body.as_slice()).collect();
    assert_eq!(bodies, [b"c".as_slice(), b"d"]);
    assert!(many.iter().all(|leased| leased.attempts == 1));
    assert!(
        store
            .receive_many(QueueName::Inbound, now, 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "every group has an item in flight"
    );
    // Each leased item is settled on its own.
    store.ack(&many[0], now).await.unwrap();
    store.ack(&first, now).await.unwrap();
    let next = store
        .receive_many(QueueName::Inbound, now, 1_000, 1)
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "at most as many as asked");
    assert_eq!(next[0].body, b"b");
    let rest = store
        .receive_many(QueueName::Inbound, now, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].body, b"e");
}

#[tokio::test]
async fn an_unsettled_lease_is_redelivered_and_retries_end_in_dead_letters() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .send(QueueName::EscalationStandard, item("g", "x"))
        .await
        .unwrap();
    let t0 = i64::MAX / 2;
    let first = store
        .receive(QueueName::EscalationStandard, t0, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .receive(QueueName::EscalationStandard, t0 + 999, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    let second = store
        .receive(QueueName::EscalationStandard, t0 + 1_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id, second.attempts), (second.id, 2));

    // The first consumer's late ack must not settle the second one's lease.
    store.ack(&first, t0 + 1_000).await.unwrap();
    store
        .retry(&second, t0 + 1_000, 500, &failure("send:telegram"))
        .await
        .unwrap();
    assert!(
        store
            .receive(QueueName::EscalationStandard, t0 + 1_499, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    let third = store
        .receive(QueueName::EscalationStandard, t0 + 1_500, 1_000)
        .await
        .unwrap()
        .unwrap();
    store
        .dead_letter(&third, &failure("send:telegram"), false, t0 + 1_600)
        .await
        .unwrap();

    let stats = store.stats().await.unwrap();
    let standard = stats
        .iter()
        .find(|s| s.queue == "escalation_standard")
        .unwrap();
    assert_eq!(
        (standard.dead, standard.ready, standard.in_flight),
        (1, 0, 0)
    );
    assert_eq!(
        store
            .redrive(QueueName::EscalationStandard, t0)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .receive(QueueName::EscalationStandard, t0 + 2_000, 1_000)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn everything_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("switchboard.sqlite3");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .send(QueueName::Inbound, item("g", "kept"))
            .await
            .unwrap();
        store.complete("seen", i64::MAX).await.unwrap();
        store.record_contact("telegram:1", 5).await.unwrap();
        store
            .record("Do you ship to Mars?", Language::En, 5)
            .await
            .unwrap();
        store
            .record("do you ship to mars", Language::En, 6)
            .await
            .unwrap();
    }
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let kept = store
        .receive(QueueName::Inbound, i64::MAX / 2, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.body, b"kept");
    assert_eq!(store.claim("seen", 10, 10).await.unwrap(), Claim::Done);
    let before = store
        .record_contact("telegram:1", 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((before.message_count, before.first_seen_ms), (1, 5));
    let gaps = store.most_frequent(10).await.unwrap();
    assert_eq!((gaps.len(), gaps[0].count), (1, 2));
}

fn stats_of(all: &[crate::QueueStats], queue: QueueName) -> crate::QueueStats {
    all.iter()
        .find(|s| s.queue == queue.as_str())
        .unwrap()
        .clone()
}

/// Receives the next item at `now` or panics.
async fn next(store: &SqliteStore, now: i64) -> crate::Leased {
    store
        .receive(QueueName::Inbound, now, 1_000)
        .await
        .unwrap()
        .expect("an item")
}

#[tokio::test]
async fn dead_letters_of_a_cleared_cause_are_redriven_after_one_successful_trial() {
    let store = SqliteStore::open_in_memory().unwrap();
    let t0 = i64::MAX / 4;
    for (group, id) in [("g1", "tg1"), ("g2", "tg2"), ("g3", "mail1"), ("g4", "bad")] {
        store
            .send(QueueName::Inbound, item(group, id))
            .await
            .unwrap();
    }
    // Telegram is down for the first two, SMTP for the third; the fourth is unreadable.
    for cause in ["send:telegram", "send:telegram", "send:email"] {
        let job = next(&store, t0).await;
        store
            .dead_letter(&job, &failure(cause), false, t0)
            .await
            .unwrap();
    }
    let bad = next(&store, t0).await;
    store
        .dead_letter(&bad, &failure("job"), true, t0)
        .await
        .unwrap();
    let stats = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(
        (stats.dead, stats.dead_permanent, stats.dead_lettered_total),
        (4, 1, 4)
    );

    // One trial per cause, never one for the permanent failure, and not a
    // second while the first is under way.
    assert_eq!(store.probe_dead(QueueName::Inbound, t0).await.unwrap(), 2);
    assert_eq!(store.probe_dead(QueueName::Inbound, t0).await.unwrap(), 0);
    let telegram_trial = next(&store, t0).await;
    let email_trial = next(&store, t0).await;
    assert!(telegram_trial.probe && email_trial.probe);
    assert_eq!(telegram_trial.body, b"tg1", "the oldest of its cause");
    assert!(
        store
            .receive(QueueName::Inbound, t0, 1_000)
            .await
            .unwrap()
            .is_none()
    );

    // SMTP is still down: its trial goes back, not counted as a new dead letter.
    store
        .dead_letter(&email_trial, &failure("send:email"), false, t0)
        .await
        .unwrap();
    // Telegram is back: its trial succeeds and brings the other Telegram one along.
    assert_eq!(store.ack(&telegram_trial, t0).await.unwrap(), 1);
    let redriven = next(&store, t0).await;
    assert_eq!(
        (redriven.body.as_slice(), redriven.probe, redriven.attempts),
        (&b"tg2"[..], false, 1)
    );
    store.ack(&redriven, t0).await.unwrap();

    let stats = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(
        (
            stats.dead,
            stats.dead_permanent,
            stats.dead_lettered_total,
            stats.redriven_total,
            stats.done
        ),
        (2, 1, 4, 2, 2)
    );
    // An operator's redrive brings back everything, permanent failures included.
    assert_eq!(store.redrive(QueueName::Inbound, t0).await.unwrap(), 2);
    let stats = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!((stats.dead, stats.ready, stats.redriven_total), (0, 2, 4));
}

#[tokio::test]
async fn a_lease_reports_when_it_ends() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .send(QueueName::Inbound, item("g", "x"))
        .await
        .unwrap();
    let job = store
        .receive(QueueName::Inbound, 5_000_000_000_000, 7_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.lease_until_ms, 5_000_000_007_000);
}

#[tokio::test]
async fn results_are_kept_with_done_keys_only_until_they_expire() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(
        store.claim("reply:1", 1_000, 100).await.unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store.result("reply:1", 1_000).await.unwrap(),
        None,
        "in progress"
    );
    store
        .complete_with_result("reply:1", 10_000, "Orders ship in a day.")
        .await
        .unwrap();
    assert_eq!(
        store.result("reply:1", 5_000).await.unwrap().as_deref(),
        Some("Orders ship in a day.")
    );
    assert_eq!(
        store.result("reply:1", 10_000).await.unwrap(),
        None,
        "expired"
    );
    // Taken over after expiry: the old result goes with the old record.
    assert_eq!(
        store.claim("reply:1", 10_001, 100).await.unwrap(),
        Claim::Acquired
    );
    store.complete("reply:1", 20_000).await.unwrap();
    assert_eq!(store.result("reply:1", 10_002).await.unwrap(), None);
}

#[tokio::test]
async fn a_purge_keeps_the_trace_of_an_interrupted_claim() {
    // The holder died mid-send; the purge that runs at every start must not
    // forget the claim, or the redelivery would acquire it and send again.
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(
        store.claim("sent:r1", 1_000, 100).await.unwrap(),
        Claim::Acquired
    );
    store.purge_expired(60_000).await.unwrap();
    assert_eq!(
        store.claim("sent:r1", 60_000, 100).await.unwrap(),
        Claim::TakenOver
    );
    // Forgotten only after the kept time.
    let later = 60_100 + switchboard_domain::INTERRUPTED_CLAIM_KEPT_MS;
    store.purge_expired(later).await.unwrap();
    assert_eq!(
        store.claim("sent:r1", later, 100).await.unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn payloads_are_stored_and_purged_when_expired() {
    let store = SqliteStore::open_in_memory().unwrap();
    let big = vec![7u8; 600 * 1024];
    let payloads: &dyn PayloadStore = &store;
    payloads.put("inbound/abc", &big, 10_000).await.unwrap();
    assert_eq!(payloads.get("inbound/abc").await.unwrap(), Some(big));
    assert_eq!(payloads.get("inbound/none").await.unwrap(), None);
    store.purge_expired(9_999).await.unwrap();
    assert!(payloads.get("inbound/abc").await.unwrap().is_some());
    store.purge_expired(10_000).await.unwrap();
    assert_eq!(payloads.get("inbound/abc").await.unwrap(), None);
}

#[tokio::test]
async fn a_database_from_before_the_dead_letter_columns_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE idempotency (key TEXT PRIMARY KEY, status TEXT NOT NULL,
                 lease_until INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
                 grp TEXT NOT NULL, dedupe_id TEXT NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL, lease TEXT,
                 last_error TEXT, enqueued_at INTEGER NOT NULL, UNIQUE (queue, dedupe_id));
             INSERT INTO queue (queue, grp, dedupe_id, body, state, visible_at, enqueued_at)
                 VALUES ('inbound', 'g', 'old', x'6f6c64', 'dead', 0, 0);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.probe_dead(QueueName::Inbound, 1).await.unwrap(), 1);
    let old = next(&store, 1).await;
    assert_eq!((old.body.as_slice(), old.probe), (&b"old"[..], true));
    store
        .complete_with_result("k", i64::MAX, "r")
        .await
        .unwrap();
}

#[tokio::test]
async fn every_knowledge_base_import_gets_a_newer_generation() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.knowledge_base_generation().await.unwrap(), None);
    let first = store.save_knowledge_base("a".into(), 5_000).await.unwrap();
    assert_eq!(first, 5_000);
    // two imports in the same millisecond (or a clock that went back) still differ
    let second = store.save_knowledge_base("b".into(), 5_000).await.unwrap();
    let third = store.save_knowledge_base("c".into(), 4_000).await.unwrap();
    assert!(first < second && second < third, "{first} {second} {third}");
    assert_eq!(
        store.knowledge_base_generation().await.unwrap(),
        Some(third)
    );
    assert_eq!(
        store.load_knowledge_base().await.unwrap().as_deref(),
        Some("c")
    );
}

#[tokio::test]
async fn counters_stop_at_the_limit_and_reset_when_expired() {
    let store = SqliteStore::open_in_memory().unwrap();
    for _ in 0..10 {
        assert!(store.increment_below("cap", 10, 0, 1_000).await.unwrap());
    }
    assert!(!store.increment_below("cap", 10, 1, 1_000).await.unwrap());
    assert_eq!(store.count("cap", 1).await.unwrap(), 10);
    assert_eq!(store.count("other", 1).await.unwrap(), 0);
    // Expired: counts as 0 and starts again with the new expiry.
    assert_eq!(store.count("cap", 1_000).await.unwrap(), 0);
    assert!(
        store
            .increment_below("cap", 10, 1_000, 2_000)
            .await
            .unwrap()
    );
    assert_eq!(store.count("cap", 1_500).await.unwrap(), 1);
    // Concurrent takers never pass the limit together.
    let store = Arc::new(store);
    let takers = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.increment_below("race", 5, 0, 10).await.unwrap() })
    });
    let mut granted = 0;
    for taker in takers {
        granted += usize::from(taker.await.unwrap());
    }
    assert_eq!(granted, 5);
}

#[tokio::test]
async fn escalated_conversations_are_listed_by_their_summary_only_while_escalated() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut waiting = Session::start(&message("a", "m1"), Language::En, 0);
    waiting.push(Turn {
        role: Role::Customer,
        text: "x".repeat(500),
        at_ms: 5,
        message_id: Some("m1".into()),
        faq_entry: None,
        confidence: None,
        agent: None,
    });
    waiting.status = SessionStatus::Escalated;
    waiting.handover = Some(Handover {
        at_ms: 5,
        tier: Tier::Vip,
        reason: EscalationReason::VipUnanswered,
        priority: true,
        claimed_by: None,
        agent_answered_at_ms: None,
        breached_at_ms: None,
        first_response_due_ms: None,
        resolved_at_ms: None,
        candidates: Vec::new(),
    });
    waiting.version = store.save(&waiting).await.unwrap();
    let open = Session::start(&message("b", "m2"), Language::En, 0);
    store.save(&open).await.unwrap();

    let listed = store.escalated(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, waiting.key);
    assert_eq!(listed[0].handover.as_ref().unwrap().tier, Tier::Vip);
    assert_eq!(listed[0].preview.chars().count(), PREVIEW_CHARS);

    waiting.status = SessionStatus::Resolved;
    store.save(&waiting).await.unwrap();
    assert!(store.escalated(10).await.unwrap().is_empty());
}

fn customer_turn(text: &str, at_ms: i64) -> Turn {
    Turn {
        role: Role::Customer,
        text: text.into(),
        at_ms,
        message_id: Some(format!("m{at_ms}")),
        faq_entry: None,
        confidence: None,
        agent: None,
    }
}

#[tokio::test]
async fn a_customers_conversations_are_listed_newest_first_by_their_brief() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("customers.sqlite3");
    let store = SqliteStore::open(&path).unwrap();
    let mut older = Session::start(&message("thread-1", "m1"), Language::En, 10);
    older.push(customer_turn(&"y".repeat(500), 10));
    older.push(customer_turn("and another thing", 20));
    older.status = SessionStatus::Resolved;
    store.save(&older).await.unwrap();
    let mut newer = Session::start(&message("thread-2", "m2"), Language::En, 30);
    newer.push(customer_turn("Where is my parcel?", 30));
    store.save(&newer).await.unwrap();
    let mut stranger = message("thread-3", "m3");
    stranger.customer_id = "c2".into();
    let mut other = Session::start(&stranger, Language::En, 40);
    other.push(customer_turn("not theirs", 40));
    store.save(&other).await.unwrap();

    let listed = store
        .customer_conversations("telegram:c1", 20)
        .await
        .unwrap();
    let keys: Vec<_> = listed.iter().map(|brief| brief.key.clone()).collect();
    assert_eq!(keys, [newer.key.clone(), older.key.clone()]);
    assert_eq!(listed[0].first_line, "Where is my parcel?");
    assert_eq!(listed[0].status, SessionStatus::Open);
    assert_eq!(listed[1].status, SessionStatus::Resolved);
    assert_eq!(listed[1].first_line, "y".repeat(PREVIEW_CHARS));
    assert_eq!((listed[1].created_at_ms, listed[1].updated_at_ms), (10, 20));
    let first = store
        .customer_conversations("telegram:c1", 1)
        .await
        .unwrap();
    assert_eq!(first, listed[..1]);
    assert!(
        store
            .customer_conversations("telegram:nobody", 20)
            .await
            .unwrap()
            .is_empty()
    );

    // Sessions saved before the customer was kept beside them are found too.
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE sessions SET customer = NULL, brief = NULL")
        .unwrap();
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(
        reopened
            .customer_conversations("telegram:c1", 20)
            .await
            .unwrap(),
        listed
    );

    // A row that is not JSON does not keep the store from opening.
    drop(reopened);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO sessions (key, version, status, channel, updated_at, data)
             VALUES ('telegram:bot:broken', 1, 'open', 'telegram', 50, 'not json')",
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store
            .customer_conversations("telegram:c1", 20)
            .await
            .unwrap(),
        listed
    );
}

#[tokio::test]
async fn a_stored_tier_wins_and_a_tier_set_before_first_contact_keeps_it_new() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert!(
        store
            .record_contact("telegram:1", 10)
            .await
            .unwrap()
            .is_none()
    );
    let seen = store
        .record_contact("telegram:1", 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((seen.tier, seen.message_count), (Tier::Regular, 1));
    store.set_tier("telegram:1", Tier::Vip).await.unwrap();
    assert_eq!(
        store
            .record_contact("telegram:1", 30)
            .await
            .unwrap()
            .unwrap()
            .tier,
        Tier::Vip
    );

    // Marked VIP before ever writing: a VIP on the first message, counted from it.
    store.set_tier("telegram:2", Tier::Vip).await.unwrap();
    let before = store
        .record_contact("telegram:2", 40)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((before.tier, before.message_count), (Tier::Vip, 0));
    let after = store
        .record_contact("telegram:2", 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((after.first_seen_ms, after.message_count), (40, 1));
}

#[test]
fn receiving_walks_the_pending_items_in_order_without_sorting_them() {
    // With thousands waiting, sorting every ready item on each receive made
    // the local pipeline quadratic (bench pipeline: 19 messages/s at 20,000).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.sqlite3");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    crate::configure_planner(&conn).unwrap();
    let mut statement = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            crate::queue::NEXT_DELIVERABLE
        ))
        .unwrap();
    let plan: Vec<String> = statement
        .query_map(rusqlite::params!["inbound", 0, 8], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|step| step.contains("queue_pending")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
}

#[test]
fn the_look_for_the_next_job_is_planned_once_whatever_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.sqlite3");
    drop(SqliteStore::open(&path).unwrap());
    let reprepared = |configured: bool| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        if configured {
            crate::configure_planner(&conn).unwrap();
        }
        let mut statement = conn.prepare(crate::queue::NEXT_DELIVERABLE).unwrap();
        for now in [1_000, 2_000, 3_000] {
            let rows = statement
                .query_map(rusqlite::params!["inbound", now, 8], |row| {
                    row.get::<_, i64>(0)
                })
                .unwrap();
            assert_eq!(rows.count(), 0);
        }
        statement.get_status(rusqlite::StatementStatus::RePrepare)
    };
    // SQLite re-plans it on each new time unless told to keep its plans.
    assert!(reprepared(false) > 0);
    assert_eq!(reprepared(true), 0);
}

/// Holds the writer for a moment, so that the calls sent meanwhile are
/// waiting together when it turns to them: one batch.
async fn hold_the_writer(store: &SqliteStore) -> tokio::task::JoinHandle<()> {
    let held = store.clone();
    let holding = tokio::spawn(async move {
        held.with(|_| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok(())
        })
        .await
        .unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    holding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_one_transaction_and_each_is_answered_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    let holding = hold_the_writer(&store).await;
    let before = store.write_stats();
    let sends = (0..40).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .send(QueueName::Inbound, item(&format!("g{n}"), &format!("m{n}")))
                .await
        })
    });
    let sends: Vec<_> = sends.collect();
    for sent in futures_join(sends.into_iter()).await {
        sent.unwrap();
    }
    holding.await.unwrap();
    let after = store.write_stats();
    assert_eq!(after.calls - before.calls, 40);
    assert_eq!(
        after.transactions - before.transactions,
        2,
        "the held call's, then one for the forty writes"
    );
    assert_eq!(after.fsyncs - before.fsyncs, 1, "one fsync for the forty");
    let inbound = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(inbound.ready, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_to_commit_fails_every_call_in_it_and_stores_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    // A foreign key checked at commit: a row without its parent makes the
    // COMMIT itself fail, after every call of the batch has done its work.
    store
        .with(|conn| {
            conn.execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .map_err(crate::unavailable)
        })
        .await
        .unwrap();
    let holding = hold_the_writer(&store).await;
    let mut calls = Vec::new();
    for n in 0..10 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            store
                .send(QueueName::Inbound, item(&format!("g{n}"), &format!("m{n}")))
                .await
                .map_err(|e| e.to_string())
        }));
    }
    let orphan = store.clone();
    calls.push(tokio::spawn(async move {
        orphan
            .with(|conn| {
                conn.execute("INSERT INTO child (parent) VALUES (7)", [])
                    .map_err(crate::unavailable)?;
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
    }));
    let answers = futures_join(calls.into_iter()).await;
    holding.await.unwrap();
    assert!(answers.iter().all(|answer| answer.is_err()), "{answers:?}");
    let inbound = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(inbound.ready, 0, "nothing of the failed batch is stored");
    // The next batch commits as usual, and a retry of a failed call succeeds.
    store
        .send(QueueName::Inbound, item("g0", "m0"))
        .await
        .unwrap();
    let inbound = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(inbound.ready, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_call_leaves_the_others_of_its_batch_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    let holding = hold_the_writer(&store).await;
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.send(QueueName::Inbound, item("a", "a")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let panicking = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .with(|conn| -> Result<(), StoreError> {
                    conn.execute(
                        "INSERT INTO queue (queue, grp, dedupe_id, body, state, visible_at, enqueued_at)
                         VALUES ('inbound', 'p', 'p', x'', 'ready', 0, 0)",
                        [],
                    )
                    .unwrap();
                    panic!("a bug in a store call")
                })
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let last = {
        let store = store.clone();
        tokio::spawn(async move { store.send(QueueName::Inbound, item("b", "b")).await })
    };
    first.await.unwrap().unwrap();
    assert!(panicking.await.unwrap().is_err());
    last.await.unwrap().unwrap();
    holding.await.unwrap();
    let inbound = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(
        inbound.ready, 2,
        "the panicking call's write is undone, the others kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_message_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let store = SqliteStore::open(&path).unwrap();
        let sends = (0..20).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim(&format!("ingress:m{n}"), 1_000, 10_000)
                    .await
                    .unwrap();
                store
                    .send(QueueName::Inbound, item(&format!("g{n}"), &format!("m{n}")))
                    .await
                    .unwrap();
                store
                    .complete(&format!("ingress:m{n}"), 100_000)
                    .await
                    .unwrap();
            })
        });
        let sends: Vec<_> = sends.collect();
        futures_join(sends.into_iter()).await;
    }
    let store = SqliteStore::open(&path).unwrap();
    let inbound = stats_of(&store.stats().await.unwrap(), QueueName::Inbound);
    assert_eq!(inbound.ready, 20);
    for n in 0..20 {
        assert_eq!(
            store
                .claim(&format!("ingress:m{n}"), 2_000, 10_000)
                .await
                .unwrap(),
            Claim::Done
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_beside_the_writer_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    // 24 MB through the log in small batches (eight writers, each waiting
    // for its write): six times what calls for a checkpoint.
    let body = vec![7u8; 8_000];
    let writers = (0..8).map(|writer| {
        let (store, body) = (store.clone(), body.clone());
        tokio::spawn(async move {
            for n in (writer..3_000).step_by(8) {
                PayloadStore::put(&store, &format!("p{n}"), &body, i64::MAX)
                    .await
                    .unwrap();
            }
        })
    });
    futures_join(writers).await;
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display()))
            .unwrap()
            .len()
    };
    assert!(
        size("") > 8_000_000,
        "checkpointed into the database: {}",
        size("")
    );
    assert!(
        size("-wal") < 20_000_000,
        "the log started over: {}",
        size("-wal")
    );
    assert_eq!(
        PayloadStore::get(&store, "p2999").await.unwrap().as_deref(),
        Some(body.as_slice())
    );
}

#[tokio::test]
async fn consumers_are_woken_only_for_their_own_queues() {
    use std::time::Duration;
    let store = SqliteStore::open_in_memory().unwrap();
    let mut arrivals = store.arrivals();
    let woken = |arrivals: &mut crate::Arrivals| {
        let mut arrivals = std::mem::replace(arrivals, store.arrivals());
        async move {
            let woken = tokio::time::timeout(
                Duration::from_millis(50),
                arrivals.wait(&[QueueName::Inbound]),
            )
            .await
            .is_ok();
            (woken, arrivals)
        }
    };
    arrivals.mark();
    store
        .send(QueueName::Outbound, item("g", "reply"))
        .await
        .unwrap();
    let delay = Duration::from_secs(60);
    store
        .send_after(QueueName::Inbound, item("later", "later"), delay)
        .await
        .unwrap();
    let (was_woken, mut arrivals) = woken(&mut arrivals).await;
    assert!(!was_woken, "another queue's item, or one not yet visible");

    arrivals.mark();
    store
        .send(QueueName::Inbound, item("g", "a"))
        .await
        .unwrap();
    store
        .send(QueueName::Inbound, item("g", "b"))
        .await
        .unwrap();
    let (was_woken, mut arrivals) = woken(&mut arrivals).await;
    assert!(was_woken, "an item queued after the mark");

    // `b` waits for `a`: settling `a` announces it.
    let a = store
        .receive(QueueName::Inbound, i64::MAX / 2, 1_000)
        .await
        .unwrap()
        .unwrap();
    arrivals.mark();
    let (was_woken, mut arrivals) = woken(&mut arrivals).await;
    assert!(!was_woken, "nothing new since the mark");
    store.ack(&a, i64::MAX / 2).await.unwrap();
    let (was_woken, _) = woken(&mut arrivals).await;
    assert!(was_woken, "the conversation's next item may go");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_queued_and_its_claim_done_in_one_durable_call_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    let keep = 100_000;
    let before = store.write_stats();
    let queued = store
        .send_once(
            "ingress:m1",
            QueueName::Inbound,
            &item("g", "m1"),
            1_000,
            keep,
        )
        .await
        .unwrap();
    let after = store.write_stats();
    assert_eq!(queued, Some(Claim::Acquired));
    assert_eq!(after.calls - before.calls, 1, "one store call");
    assert!(after.fsyncs > before.fsyncs, "on disk before the answer");
    assert_eq!(
        store.claim("ingress:m1", 2_000, 10_000).await.unwrap(),
        Claim::Done
    );
    assert_eq!(
        stats_of(&store.stats().await.unwrap(), QueueName::Inbound).ready,
        1
    );

    // Done already: nothing queued again.
    let again = store
        .send_once(
            "ingress:m1",
            QueueName::Inbound,
            &item("g", "m1-again"),
            2_000,
            keep,
        )
        .await
        .unwrap();
    assert_eq!(again, Some(Claim::Done));
    // Held by a delivery under way: nothing queued, the claim untouched.
    assert_eq!(
        store.claim("ingress:m2", 1_000, 5_000).await.unwrap(),
        Claim::Acquired
    );
    let held = store
        .send_once(
            "ingress:m2",
            QueueName::Inbound,
            &item("g2", "m2"),
            2_000,
            keep,
        )
        .await
        .unwrap();
    assert_eq!(held, Some(Claim::InProgress));
    assert_eq!(
        stats_of(&store.stats().await.unwrap(), QueueName::Inbound).ready,
        1
    );
    // Its lease ran out: taken over, queued, done.
    let taken = store
        .send_once(
            "ingress:m2",
            QueueName::Inbound,
            &item("g2", "m2"),
            7_000,
            keep,
        )
        .await
        .unwrap();
    assert_eq!(taken, Some(Claim::TakenOver));
    assert_eq!(
        store.claim("ingress:m2", 8_000, 10_000).await.unwrap(),
        Claim::Done
    );
    assert_eq!(
        stats_of(&store.stats().await.unwrap(), QueueName::Inbound).ready,
        2
    );
}

#[tokio::test]
async fn dead_letters_are_listed_newest_failure_first_without_their_bodies() {
    let store = SqliteStore::open_in_memory().unwrap();
    let t0 = i64::MAX / 4;
    for (group, id) in [("g1", "m1"), ("g2", "m2"), ("g3", "m3")] {
        store
            .send(QueueName::Inbound, item(group, id))
            .await
            .unwrap();
    }
    store
        .send(QueueName::Outbound, item("g4", "r1"))
        .await
        .unwrap();
    let first = next(&store, t0).await;
    store
        .dead_letter(&first, &failure("send:telegram"), false, t0 + 10)
        .await
        .unwrap();
    let second = next(&store, t0).await;
    store
        .dead_letter(&second, &failure("job"), true, t0 + 20)
        .await
        .unwrap();
    // The third is processed: not a dead letter.
    let third = next(&store, t0).await;
    store.ack(&third, t0 + 30).await.unwrap();
    let reply = store
        .receive(QueueName::Outbound, t0, 1_000)
        .await
        .unwrap()
        .unwrap();
    store
        .dead_letter(&reply, &failure("send:email"), false, t0 + 5)
        .await
        .unwrap();

    let all = store.dead_letters(None, 10).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|d| (d.queue, d.dedupe_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("inbound", "m2"), ("inbound", "m1"), ("outbound", "r1")]
    );
    let m2 = &all[0];
    assert_eq!(
        (
            m2.group.as_str(),
            m2.attempts,
            m2.failed_at_ms,
            m2.permanent
        ),
        ("g2", 1, Some(t0 + 20), true)
    );
    assert_eq!(
        (m2.cause.as_deref(), m2.error.as_deref()),
        (Some("job"), Some("job failed"))
    );
    assert!(m2.enqueued_at_ms > 0);
    let inbound = store
        .dead_letters(Some(QueueName::Inbound), 1)
        .await
        .unwrap();
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0].dedupe_id, "m2");
    assert!(
        store
            .dead_letters(Some(QueueName::Timers), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Redriven, they are no longer dead letters.
    store.redrive(QueueName::Inbound, t0 + 40).await.unwrap();
    assert_eq!(store.dead_letters(None, 10).await.unwrap().len(), 1);
}
