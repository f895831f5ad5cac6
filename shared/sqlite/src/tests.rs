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
        Claim::Acquired,
        "lease ran out"
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

    store.ack(&a).await.unwrap();
    let b = store
        .receive(QueueName::Inbound, now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.body, b"b");
    store.ack(&b).await.unwrap();
    store.ack(&c).await.unwrap();
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
    store.ack(&first).await.unwrap();
    store.retry(&second, t0 + 1_000, 500, "boom").await.unwrap();
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
    store.dead_letter(&third, "gave up").await.unwrap();

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
