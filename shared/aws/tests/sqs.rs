//! The queue adapter, the partial-batch helper and the secret loader against
//! moto's server.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use switchboard_aws::batch::{CAUSE_ATTRIBUTE, ERROR_ATTRIBUTE};
use switchboard_aws::{
    ConsumerSettings, EventSourcePoller, QueueOptions, SqsConsumer, SqsQueueProducer,
    create_queue_with_dlq, load_json_secret, message_body, message_group, process_sqs_batch,
    secret_field,
};
use switchboard_domain::{QueueItem, QueueName, QueueProducer, RetryPolicy};

fn item(group: &str, dedupe: &str, body: &str) -> QueueItem {
    QueueItem {
        group: group.into(),
        dedupe_id: dedupe.into(),
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_record_is_the_only_one_retried_and_ends_in_the_dead_letter_queue() {
    let clients = common::clients().await;
    const MAX_RECEIVES: u32 = 3;
    let options = QueueOptions {
        fifo: false,
        visibility_timeout_s: 1,
        max_receive_count: MAX_RECEIVES,
        ..QueueOptions::default()
    };
    let (queue, dlq) = create_queue_with_dlq(&clients.sqs, &common::unique("escalation"), options)
        .await
        .unwrap();
    let producer = SqsQueueProducer::with_urls(
        clients.sqs.clone(),
        [(QueueName::EscalationStandard, queue.url.clone())],
    );
    let bodies: Vec<String> = (0..6)
        .map(|i| {
            if i == 2 {
                "poison".to_owned()
            } else {
                format!("ticket-{i}")
            }
        })
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        producer
            .send(
                QueueName::EscalationStandard,
                item("ignored", &format!("d{i}"), body),
            )
            .await
            .unwrap();
    }

    let handled: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
    let poller = EventSourcePoller::new(clients.sqs.clone(), queue.clone());
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut dead_lettered = None;
    while dead_lettered.is_none() {
        assert!(
            Instant::now() < deadline,
            "poisoned record never reached the DLQ; handled: {handled:?}"
        );
        if let Some(event) = poller.receive(0).await.unwrap() {
            let response = process_sqs_batch(event.clone(), |record| {
                let body = String::from_utf8(message_body(&record).unwrap()).unwrap();
                *handled.lock().unwrap().entry(body.clone()).or_default() += 1;
                async move {
                    if body == "poison" {
                        Err("cannot parse ticket")
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for record in &event.records {
                let reported = failed.contains(&record.message_id.as_deref().unwrap());
                assert_eq!(
                    reported,
                    record.body.as_deref() == Some("poison"),
                    "only the poisoned record is reported"
                );
            }
            poller.settle(&event, &response).await.unwrap();
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let dlq_poller = EventSourcePoller::new(clients.sqs.clone(), dlq.clone());
        if let Some(event) = dlq_poller.receive(0).await.unwrap() {
            dead_lettered = Some(event);
        }
    }

    let dead = dead_lettered.unwrap();
    let dead_bodies: Vec<_> = dead
        .records
        .iter()
        .map(|r| r.body.clone().unwrap())
        .collect();
    assert_eq!(dead_bodies, ["poison"]);
    let handled = handled.into_inner().unwrap();
    assert_eq!(
        handled.get("poison"),
        Some(&MAX_RECEIVES),
        "tried maxReceiveCount times"
    );
    for body in bodies.iter().filter(|b| *b != "poison") {
        assert_eq!(handled.get(body), Some(&1), "{body} handled exactly once");
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        poller.receive(0).await.unwrap().is_none(),
        "nothing left on the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_failure_holds_back_the_rest_of_its_group_and_duplicates_are_dropped() {
    let clients = common::clients().await;
    let options = QueueOptions {
        fifo: true,
        visibility_timeout_s: 1,
        max_receive_count: 5,
        ..QueueOptions::default()
    };
    let (queue, _dlq) = create_queue_with_dlq(&clients.sqs, &common::unique("inbound"), options)
        .await
        .unwrap();
    let producer = SqsQueueProducer::with_urls(
        clients.sqs.clone(),
        [(QueueName::Inbound, queue.url.clone())],
    );
    // A conversation key longer than SQS allows for a group id, and a provider
    // message id longer than a dedupe id may be: both are hashed.
    let long_group = format!("email:acme:{}", "thread-".repeat(30));
    let sends = [
        (long_group.as_str(), "a1"),
        ("telegram:bot:7", "b1"),
        (long_group.as_str(), "a2"),
        (long_group.as_str(), "a1"), // provider retry of a1: dropped by SQS
        ("telegram:bot:7", "b2"),
        (long_group.as_str(), "a3"),
    ];
    for (group, id) in sends {
        let dedupe = format!("{id}-{}", "x".repeat(150));
        producer
            .send(QueueName::Inbound, item(group, &dedupe, id))
            .await
            .unwrap();
    }

    let handled = Mutex::new(Vec::<String>::new());
    let mut failed_once = false;
    let mut poller = EventSourcePoller::new(clients.sqs.clone(), queue.clone());
    // moto hands out a group's timed-out messages out of order (real SQS does
    // not); returning failed records at once, in order, avoids that quirk.
    poller.retry_failed_at_once = true;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut skipped_a3 = false;
    loop {
        let done = handled
            .lock()
            .unwrap()
            .iter()
            .filter(|b| *b != "a2!")
            .count();
        if done == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not everything was handled: {:?}",
            handled.lock().unwrap()
        );
        let Some(event) = poller.receive(0).await.unwrap() else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        assert!(
            event.records.iter().all(|r| message_group(r).is_some()),
            "FIFO records carry their group"
        );
        let response = process_sqs_batch(event.clone(), |record| {
            let body = String::from_utf8(message_body(&record).unwrap()).unwrap();
            let fail = body == "a2" && !failed_once;
            failed_once |= fail;
            handled
                .lock()
                .unwrap()
                .push(if fail { "a2!".to_owned() } else { body });
            async move { if fail { Err("transient") } else { Ok(()) } }
        })
        .await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| {
                let record = event
                    .records
                    .iter()
                    .find(|r| r.message_id.as_deref() == Some(&f.item_identifier))
                    .unwrap();
                record.body.clone().unwrap()
            })
            .collect();
        if failed.contains(&"a2".to_owned())
            && event
                .records
                .iter()
                .any(|r| r.body.as_deref() == Some("a3"))
        {
            assert!(
                failed.contains(&"a3".to_owned()),
                "a3 follows the failed a2 in its group: {failed:?}"
            );
            skipped_a3 = true;
        }
        poller.settle(&event, &response).await.unwrap();
    }
    let handled = handled.into_inner().unwrap();
    let group_a: Vec<&str> = handled
        .iter()
        .map(String::as_str)
        .filter(|b| b.starts_with('a'))
        .collect();
    let group_b: Vec<&str> = handled
        .iter()
        .map(String::as_str)
        .filter(|b| b.starts_with('b'))
        .collect();
    assert_eq!(
        group_a,
        ["a1", "a2!", "a2", "a3"],
        "in order, a3 never before a2 succeeded, a1 once"
    );
    assert_eq!(group_b, ["b1", "b2"]);
    assert!(failed_once);
    assert!(
        skipped_a3,
        "a3 came in the batch where a2 failed and was held back"
    );
}

#[tokio::test]
async fn escalation_queues_ignore_fifo_fields_and_bodies_round_trip() {
    let clients = common::clients().await;
    let (queue, _) = create_queue_with_dlq(
        &clients.sqs,
        &common::unique("priority"),
        QueueOptions::default(),
    )
    .await
    .unwrap();
    let producer = SqsQueueProducer::with_urls(
        clients.sqs.clone(),
        [(QueueName::EscalationPriority, queue.url.clone())],
    );
    let binary = QueueItem {
        group: "g".into(),
        dedupe_id: "same".into(),
        body: vec![0, 1, 2, 255],
    };
    producer
        .send(QueueName::EscalationPriority, binary.clone())
        .await
        .unwrap();
    producer
        .send(
            QueueName::EscalationPriority,
            item("g", "same", "{\"text\":\"你好\"}"),
        )
        .await
        .unwrap();
    let error = producer
        .send(QueueName::Inbound, item("g", "d", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        error.queue,
        QueueName::Inbound,
        "a queue without URL fails to send"
    );

    let poller = EventSourcePoller::new(clients.sqs.clone(), queue);
    let mut bodies = Vec::new();
    for _ in 0..10 {
        if let Some(event) = poller.receive(1).await.unwrap() {
            bodies.extend(event.records.iter().map(|r| message_body(r).unwrap()));
        }
        if bodies.len() >= 2 {
            break;
        }
    }
    bodies.sort();
    assert_eq!(
        bodies,
        [binary.body, "{\"text\":\"你好\"}".as_bytes().to_vec()],
        "standard queues do not dedupe"
    );
}

#[tokio::test]
async fn channel_secrets_load_as_json_and_errors_do_not_reveal_them() {
    let clients = common::clients().await;
    let good = clients
        .secrets
        .create_secret()
        .name(common::unique("channels"))
        .secret_string(r#"{"telegram_bot_token":"123:abc","smtp_password":"hunter2"}"#)
        .send()
        .await
        .unwrap();
    let secret = load_json_secret(&clients.secrets, good.arn().unwrap())
        .await
        .unwrap();
    assert_eq!(secret["telegram_bot_token"], "123:abc");
    let password = secret_field(&secret, "smtp_password").unwrap();
    assert_eq!(password.expose(), "hunter2");
    assert_eq!(format!("{password:?}"), "Secret(***)");
    assert!(secret_field(&secret, "missing").is_none());

    let bad = clients
        .secrets
        .create_secret()
        .name(common::unique("broken"))
        .secret_string("not-json hunter3")
        .send()
        .await
        .unwrap();
    let error = load_json_secret(&clients.secrets, bad.arn().unwrap())
        .await
        .unwrap_err();
    let text = switchboard_aws::error_chain(&error);
    assert!(
        !text.contains("hunter3") && !text.contains("not-json"),
        "{text}"
    );
    assert!(
        load_json_secret(
            &clients.secrets,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope"
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn warm_up_returns_promptly_even_for_missing_resources() {
    let clients = common::clients().await;
    let started = Instant::now();
    switchboard_aws::warm_up(
        &clients,
        switchboard_aws::WarmUp {
            dynamodb_table: Some("no-such-table"),
            sqs_queue_url: Some("http://127.0.0.1:1/nope"),
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(6));
}

/// A failure as the pipeline reports it: permanent or not, with a cause.
#[derive(Debug, thiserror::Error)]
#[error("{0} failure")]
struct Failed(&'static str);

impl switchboard_domain::JobFailure for Failed {
    fn is_permanent(&self) -> bool {
        self.0 == "permanent"
    }
    fn cause_key(&self) -> String {
        "send:email".into()
    }
}

fn consumer_settings(visibility_s: u64, backoff_ms: i64) -> ConsumerSettings {
    ConsumerSettings {
        visibility: Duration::from_secs(visibility_s),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff_ms: backoff_ms,
            max_backoff_ms: backoff_ms,
        },
    }
}

/// Everything on `queue` within `wait`, as events.
async fn drain(poller: &EventSourcePoller, want: usize, wait: Duration) -> Vec<SqsEvent> {
    let deadline = Instant::now() + wait;
    let mut events = Vec::new();
    while events
        .iter()
        .map(|e: &SqsEvent| e.records.len())
        .sum::<usize>()
        < want
    {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} records came",
            events.len()
        );
        if let Some(event) = poller.receive(1).await.unwrap() {
            events.push(event);
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_backs_off_outages_and_dead_letters_refusals_at_once() {
    let clients = common::clients().await;
    let options = QueueOptions {
        fifo: false,
        visibility_timeout_s: 1,
        max_receive_count: 5,
        ..QueueOptions::default()
    };
    let (queue, dlq) = create_queue_with_dlq(&clients.sqs, &common::unique("tickets"), options)
        .await
        .unwrap();
    let producer = SqsQueueProducer::with_urls(
        clients.sqs.clone(),
        [(QueueName::EscalationStandard, queue.url.clone())],
    );
    for body in ["ok", "refused", "flaky"] {
        producer
            .send(QueueName::EscalationStandard, item("g", body, body))
            .await
            .unwrap();
    }
    // The queue's own visibility is 1 s; the backoff after a failure is 3 s.
    let consumer = SqsConsumer::with_queues(
        clients.sqs.clone(),
        [(queue.url.clone(), dlq.url.clone())],
        consumer_settings(1, 3_000),
    );
    let poller = EventSourcePoller::new(clients.sqs.clone(), queue.clone());
    let handled = Mutex::new(Vec::new());
    let handler = |body: Vec<u8>, lease: switchboard_domain::JobLease| {
        let body = String::from_utf8(body).unwrap();
        handled.lock().unwrap().push((body.clone(), lease.attempt));
        async move {
            match body.as_str() {
                "refused" => Err(Failed("permanent")),
                "flaky" if lease.attempt == 1 => Err(Failed("transient")),
                _ => Ok(()),
            }
        }
    };
    for event in drain(&poller, 3, Duration::from_secs(10)).await {
        let response = consumer.process(event.clone(), 0, handler).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| {
                let record = event
                    .records
                    .iter()
                    .find(|r| r.message_id.as_deref() == Some(&f.item_identifier));
                record.unwrap().body.as_deref().unwrap()
            })
            .collect();
        assert!(failed.iter().all(|b| *b == "flaky"), "{failed:?}");
        poller.settle(&event, &response).await.unwrap();
    }
    let failed_at = Instant::now();

    // The refusal is in the dead-letter queue already, with what failed.
    let dead = drain(
        &EventSourcePoller::new(clients.sqs.clone(), dlq.clone()),
        1,
        Duration::from_secs(5),
    )
    .await;
    let record = &dead[0].records[0];
    assert_eq!(message_body(record).unwrap(), b"refused");
    assert_eq!(
        record.message_attributes[CAUSE_ATTRIBUTE]
            .string_value
            .as_deref(),
        Some("send:email")
    );
    assert!(
        record.message_attributes[ERROR_ATTRIBUTE]
            .string_value
            .as_deref()
            .unwrap()
            .contains("permanent failure")
    );

    // The outage: not back after the queue's 1 s, but after the 3 s backoff.
    tokio::time::sleep(Duration::from_millis(1_800).saturating_sub(failed_at.elapsed())).await;
    assert!(
        poller.receive(0).await.unwrap().is_none(),
        "still backing off"
    );
    let retried = drain(&poller, 1, Duration::from_secs(10)).await;
    assert!(failed_at.elapsed() >= Duration::from_millis(2_500));
    let response = consumer.process(retried[0].clone(), 0, handler).await;
    assert!(response.batch_item_failures.is_empty());
    poller.settle(&retried[0], &response).await.unwrap();
    let mut handled = handled.into_inner().unwrap();
    handled.sort();
    assert_eq!(
        handled,
        [
            ("flaky".to_owned(), 1),
            ("flaky".to_owned(), 2),
            ("ok".to_owned(), 1),
            ("refused".to_owned(), 1)
        ],
        "the refusal was tried once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_end_with_the_invocation_and_a_refused_record_does_not_hold_its_group() {
    let clients = common::clients().await;
    let options = QueueOptions {
        fifo: true,
        visibility_timeout_s: 120,
        max_receive_count: 5,
        ..QueueOptions::default()
    };
    let (queue, dlq) = create_queue_with_dlq(&clients.sqs, &common::unique("inbound"), options)
        .await
        .unwrap();
    let producer = SqsQueueProducer::with_urls(
        clients.sqs.clone(),
        [(QueueName::Inbound, queue.url.clone())],
    );
    for body in ["a1", "a2"] {
        producer
            .send(QueueName::Inbound, item("conversation-a", body, body))
            .await
            .unwrap();
    }
    let consumer = SqsConsumer::with_queues(
        clients.sqs.clone(),
        [(queue.url.clone(), dlq.url.clone())],
        consumer_settings(120, 1_000),
    );
    let poller = EventSourcePoller::new(clients.sqs.clone(), queue.clone());
    let event = drain(&poller, 2, Duration::from_secs(10)).await.remove(0);
    assert_eq!(event.records.len(), 2, "one batch");
    let now = switchboard_domain::Clock::now_ms(&switchboard_domain::SystemClock);
    let deadline = now + 30_000;
    let leases = Mutex::new(Vec::new());
    let response = consumer
        .process(event.clone(), deadline, |body, lease| {
            leases.lock().unwrap().push(lease);
            async move {
                if body == b"a1" {
                    Err(Failed("permanent"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a1 is dead-lettered, a2 done"
    );
    let leases = leases.into_inner().unwrap();
    assert_eq!(leases.len(), 2, "a2 was not held back");
    assert!(leases.iter().all(|l| l.until_ms == deadline), "{leases:?}");
    poller.settle(&event, &response).await.unwrap();
    let dead = drain(
        &EventSourcePoller::new(clients.sqs.clone(), dlq),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(dead[0].records[0].body.as_deref(), Some("a1"));
    assert_eq!(
        message_group(&dead[0].records[0]),
        message_group(&event.records[0]),
        "kept in its conversation's group"
    );

    // Without a deadline (unknown), the queue's visibility timeout bounds the lease.
    producer
        .send(QueueName::Inbound, item("conversation-b", "b1", "b1"))
        .await
        .unwrap();
    let event = drain(&poller, 1, Duration::from_secs(10)).await.remove(0);
    let lease = Mutex::new(None);
    let before = switchboard_domain::Clock::now_ms(&switchboard_domain::SystemClock);
    consumer
        .process(event, 0, |_, l| {
            *lease.lock().unwrap() = Some(l);
            async { Ok::<(), Failed>(()) }
        })
        .await;
    let lease = lease.into_inner().unwrap().unwrap();
    assert!(
        lease.until_ms >= before + 119_000 && lease.until_ms <= before + 121_000,
        "{lease:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_wait_their_delay_capped_at_fifteen_minutes() {
    let clients = common::clients().await;
    let (queue, _) = create_queue_with_dlq(
        &clients.sqs,
        &common::unique("timers"),
        QueueOptions::default(),
    )
    .await
    .unwrap();
    let producer = SqsQueueProducer::with_urls(
        clients.sqs.clone(),
        [(QueueName::Timers, queue.url.clone())],
    );
    let sent = Instant::now();
    producer
        .send_after(
            QueueName::Timers,
            item("t", "t1", "{\"due\":1}"),
            Duration::from_millis(2_500),
        )
        .await
        .unwrap();
    // Longer than SQS allows: sent with the longest delay, not refused.
    producer
        .send_after(
            QueueName::Timers,
            item("t", "t2", "{\"due\":2}"),
            Duration::from_secs(4 * 3600),
        )
        .await
        .unwrap();
    let poller = EventSourcePoller::new(clients.sqs.clone(), queue);
    let event = loop {
        if let Some(event) = poller.receive(1).await.unwrap() {
            break event;
        }
        assert!(sent.elapsed() < Duration::from_secs(20), "never delivered");
    };
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "delivered after {:?}",
        sent.elapsed()
    );
    let bodies: Vec<Vec<u8>> = event
        .records
        .iter()
        .map(|r| message_body(r).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [b"{\"due\":1}".to_vec()],
        "the capped one still waits"
    );
}
