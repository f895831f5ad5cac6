use std::time::Duration;

use serde_json::json;
use switchboard_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn telegram_question_matching_the_faq_is_answered_on_telegram() {
    let server = Server::start(Options::default()).await;
    let (status, _) = server
        .post_telegram(&telegram_update(5001, 111, "What are your opening hours?"))
        .await;
    assert_eq!(status, 200);

    let replies = eventually("telegram reply", Duration::from_secs(20), || {
        let replies = server.telegram_replies(111);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    assert_eq!(
        replies[0].path,
        format!("/telegram/bot{}/sendMessage", telegram_bot_token())
    );
    let text = replies[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("Monday to Saturday"),
        "answer from the FAQ: {text}"
    );
    assert!(
        server.smtp.messages().is_empty(),
        "no escalation for an answered question"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chinese_question_gets_the_chinese_answer() {
    let server = Server::start(Options::default()).await;
    server
        .post_telegram(&telegram_update(5002, 112, "你们几点开门？"))
        .await;
    let replies = eventually("telegram reply", Duration::from_secs(20), || {
        let replies = server.telegram_replies(112);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    let text = replies[0].body["text"].as_str().unwrap();
    assert!(text.contains("周一至周六"), "answer in Chinese: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_question_matching_the_faq_is_answered_on_slack() {
    let server = Server::start(Options::default()).await;
    let body = slack_event(
        "Ev001",
        "U123",
        "D456",
        "1700000000.000100",
        "How long does shipping take?",
    );
    let (status, _) = server.post_slack(&body, now_secs()).await;
    assert_eq!(status, 200);

    let replies = eventually("slack reply", Duration::from_secs(20), || {
        let replies = server.standin.matching("/slack/chat.postMessage", |_| true);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    assert_eq!(replies[0].body["channel"], "D456");
    assert_eq!(
        replies[0].header("authorization"),
        Some("Bearer xoxb-development")
    );
    assert!(
        replies[0].body["text"]
            .as_str()
            .unwrap()
            .contains("working day")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unanswerable_question_escalates_to_the_agents_by_email_with_the_transcript() {
    let server = Server::start(Options::default()).await;
    server
        .post_telegram(&telegram_update(6001, 222, "What are your opening hours?"))
        .await;
    eventually("first answer", Duration::from_secs(20), || {
        (!server.telegram_replies(222).is_empty()).then_some(())
    })
    .await;

    server
        .post_telegram(&telegram_update(
            6002,
            222,
            "My parrot ate the warranty card of the blender, what now",
        ))
        .await;
    let mails = server.smtp.wait_for(1).await;
    let mail = &mail_text(&mails[0]);
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("agents@shop.test")
    );
    assert!(
        mail_header(&mails[0], "Subject")
            .unwrap()
            .contains("telegram")
    );
    // The whole transcript: the earlier question, the bot's answer, and the new message.
    assert!(mail.contains("What are your opening hours?"), "{mail}");
    assert!(mail.contains("Monday to Saturday"), "{mail}");
    assert!(mail.contains("parrot ate the warranty card"), "{mail}");

    // The customer is told a person will answer, and roughly when.
    let replies = eventually("hand-over notice", Duration::from_secs(20), || {
        let replies = server.telegram_replies(222);
        (replies.len() >= 2).then_some(replies)
    })
    .await;
    assert!(
        replies[1].body["text"]
            .as_str()
            .unwrap()
            .contains("4 hours"),
        "{:?}",
        replies[1].body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_ask_for_a_person_escalates_even_when_the_faq_matches() {
    let server = Server::start(Options::default()).await;
    server
        .post_telegram(&telegram_update(6101, 223, "opening hours? I want a human"))
        .await;
    let mails = server.smtp.wait_for(1).await;
    let text = mail_text(&mails[0]);
    assert!(text.contains("asked for a person"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_update_delivered_five_times_also_concurrently_gets_exactly_one_reply() {
    let server = Server::start(Options::default()).await;
    let update = telegram_update(7001, 333, "How do I return an item?");
    // Five deliveries at once, then five more one after another.
    let concurrent: Vec<_> = (0..5)
        .map(|_| {
            let (base, update) = (server.base.clone(), update.clone());
            tokio::spawn(async move { post_telegram_to(&base, &update).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in concurrent {
        statuses.push(handle.await.unwrap());
    }
    for _ in 0..5 {
        statuses.push(server.post_telegram(&update).await.0);
    }
    // A delivery racing the first one may be told to retry (503); none is refused.
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 503)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 6,
        "{statuses:?}"
    );
    eventually("the reply", Duration::from_secs(20), || {
        (!server.telegram_replies(333).is_empty()).then_some(())
    })
    .await;
    // Give any second reply time to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.telegram_replies(333).len(), 1);
    assert_eq!(server.queued_total("inbound").await, 1, "queued once");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_a_reason_and_nothing_is_stored() {
    let server = Server::start(Options::default()).await;
    let update = telegram_update(8001, 444, "What are your opening hours?").to_string();

    // Wrong and missing Telegram secret.
    let (status, body) = server
        .post(
            "/webhooks/telegram",
            &[("x-telegram-bot-api-secret-token", "wrong".into())],
            update.clone(),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert!(body["reason"].as_str().is_some());
    let (status, _) = server.post("/webhooks/telegram", &[], update.clone()).await;
    assert_eq!(status, 401);

    // Slack: stale timestamp, tampered signature, missing signature header.
    let slack = slack_event(
        "Ev900",
        "U9",
        "D9",
        "1700000000.000900",
        "What are your opening hours?",
    );
    let (status, _) = server.post_slack(&slack, now_secs() - 301).await;
    assert_eq!(status, 401);
    let ts = now_secs().to_string();
    let (status, _) = server
        .post(
            "/webhooks/slack",
            &[
                ("x-slack-request-timestamp", ts.clone()),
                ("x-slack-signature", format!("v0={}", "0".repeat(64))),
            ],
            slack.clone(),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .post(
            "/webhooks/slack",
            &[("x-slack-request-timestamp", ts)],
            slack.clone(),
        )
        .await;
    assert_eq!(status, 401);

    // Authentic but unreadable body.
    let (status, body) = server
        .post(
            "/webhooks/telegram",
            &[(
                "x-telegram-bot-api-secret-token",
                setting("telegram", "secret_token"),
            )],
            "{not json",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "bad_request");

    // Over 1 MiB.
    let huge = format!(
        "{{\"update_id\": 1, \"pad\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let (status, body) = server
        .post(
            "/webhooks/telegram",
            &[(
                "x-telegram-bot-api-secret-token",
                setting("telegram", "secret_token"),
            )],
            huge,
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "body_too_large");

    // Authentic, but with ids the agents' API, export and erase could never
    // take: refused, so no conversation exists that nobody can serve.
    for (conversation, customer, field) in [
        ("z".repeat(2000), "c1".to_owned(), "conversation id"),
        ("c2".to_owned(), "y".repeat(600), "customer id"),
        ("c3".to_owned(), "line\nbreak".to_owned(), "customer id"),
    ] {
        let body = json!({ "conversation_id": conversation, "customer_id": customer,
                           "message_id": "m1", "text": "agent please" });
        let request = signed_request(
            "webchat",
            "application/json",
            &[],
            body.to_string(),
            now_secs() * 1000,
        );
        let (status, body) = server.post_request(&request).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["reason"].as_str().unwrap().contains(field), "{body}");
    }

    // Unknown channel.
    let (status, body) = server.post("/webhooks/carrier-pigeon", &[], "{}").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown_channel");

    // Nothing of the above was queued or answered.
    assert_eq!(server.queued_total("inbound").await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.standin.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_url_verification_is_answered_with_the_challenge() {
    let server = Server::start(Options::default()).await;
    let body = json!({ "token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification" })
        .to_string();
    let (status, answer) = server.post_slack(&body, now_secs()).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
    );
    // Unsigned, the same handshake is refused.
    let (status, _) = server.post("/webhooks/slack", &[], body).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn vip_escalation_is_handled_before_an_earlier_regular_one() {
    let mut server = Server::start(Options {
        notifier: false,
        vip_customers: vec!["telegram:900".into()],
        ..Options::default()
    })
    .await;
    // The regular customer's escalation is queued first.
    server
        .post_telegram(&telegram_update(
            9001,
            901,
            "Do you sell replacement parts for the 1987 model?",
        ))
        .await;
    eventually("regular ticket queued", Duration::from_secs(20), || {
        futures_block(server.queued_total("escalation_standard"))
            .eq(&1)
            .then_some(())
    })
    .await;
    server
        .post_telegram(&telegram_update(
            9002,
            900,
            "Do you sell replacement parts for the 1987 model?",
        ))
        .await;
    eventually("vip ticket queued", Duration::from_secs(20), || {
        futures_block(server.queued_total("escalation_priority"))
            .eq(&1)
            .then_some(())
    })
    .await;

    // Now one notifier starts with both waiting (several would take both at once).
    server.stop();
    server
        .restart(Options {
            vip_customers: vec!["telegram:900".into()],
            notifier_concurrency: 1,
            ..Options::default()
        })
        .await;
    let mails = server.smtp.wait_for(2).await;
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("vip-agents@shop.test"),
        "VIP first"
    );
    assert!(mail_header(&mails[0], "Subject").unwrap().contains("VIP"));
    assert_eq!(
        mail_header(&mails[1], "X-Envelope-To").as_deref(),
        Some("agents@shop.test")
    );
    // The VIP was promised the priority response time.
    let vip_notice = server.telegram_replies(900);
    assert!(
        vip_notice[0].body["text"]
            .as_str()
            .unwrap()
            .contains("15 minutes")
    );
}

/// Runs a future to completion from synchronous polling code.
fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}
