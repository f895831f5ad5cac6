//! The queue adapter, the partial-batch helper and the secret loader against
//! moto's server.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_aws::{
    EventSourcePoller, QueueOptions, SqsQueueProducer, create_queue_with_dlq, load_json_secret,
    message_body, message_group, process_sqs_batch, secret_field,
};
use switchboard_domain::{QueueItem, QueueName, QueueProducer};

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
