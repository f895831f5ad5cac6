use std::time::Duration;

use serde_json::json;
use switchboard_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_message_accepted_before_a_crash_is_answered_after_restart() {
    // Accept only: the conversation workers are off, as if the process died
    // between acknowledging and processing.
    let mut server = Server::start(Options {
        conversation_workers: false,
        ..Options::default()
    })
    .await;
    let (status, _) = server
        .post_telegram(&telegram_update(
            10_001,
            555,
            "What are your opening hours?",
        ))
        .await;
    assert_eq!(status, 200);
    server.kill();
    assert!(server.telegram_replies(555).is_empty());

    server.restart(Options::default()).await;
    let replies = eventually("reply after restart", Duration::from_secs(20), || {
        let replies = server.telegram_replies(555);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    assert!(
        replies[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Monday to Saturday")
    );

    // A provider retry of the same update after the restart is not answered again.
    assert_eq!(
        server
            .post_telegram(&telegram_update(
                10_001,
                555,
                "What are your opening hours?"
            ))
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.telegram_replies(555).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_reply_through_the_api_on_the_customers_channel_and_feedback_is_recorded() {
    let server = Server::start(Options::default()).await;
    server
        .post_telegram(&telegram_update(
            11_001,
            666,
            "Do you sell replacement parts for the 1987 model?",
        ))
        .await;
    server.smtp.wait_for(1).await;
    let conversation = format!(
        "telegram:{}:666",
        telegram_bot_token().split(':').next().unwrap()
    );
    let path = format!("/api/conversations/{conversation}/reply");
    let auth = [
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
        ("content-type", "application/json".into()),
        ("idempotency-key", "reply-666".into()),
    ];

    let (status, body) = server
        .post(&path, &[], json!({ "text": "Yes" }).to_string())
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = server
        .post(&path, &auth, json!({ "text": "" }).to_string())
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, _) = server
        .post(
            "/api/conversations/telegram:0:nobody/reply",
            &auth,
            json!({ "text": "Hi" }).to_string(),
        )
        .await;
    assert_eq!(status, 404);

    let (status, body) = server
        .post(
            &path,
            &auth,
            json!({ "text": "Yes, we still stock them.", "agent": "Lee", "resolve": true })
                .to_string(),
        )
        .await;
    // Queued (202), then delivered by the outbound sender.
    assert_eq!(status, 202, "{body}");
    let replies = eventually("the agent's reply", Duration::from_secs(20), || {
        let replies = server.telegram_replies(666);
        (replies.len() == 2).then_some(replies)
    })
    .await;
    assert_eq!(
        replies.last().unwrap().body["text"],
        "Yes, we still stock them."
    );

    let feedback = json!({ "conversation": conversation, "helpful": true, "satisfaction": 5, "comment": "quick" });
    assert_eq!(
        server
            .post("/api/feedback", &auth, feedback.to_string())
            .await
            .0,
        200
    );
    let bad = json!({ "conversation": conversation, "satisfaction": 9 });
    let (status, body) = server.post("/api/feedback", &auth, bad.to_string()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));

    // The business's report reads the same database.
    let output = std::process::Command::new(switchboard_bin())
        .arg("--config")
        .arg(server.config_path())
        .arg("report")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["conversations"], 1);
    assert_eq!(report["escalated_conversations"], 1);
    assert_eq!(report["resolution_rate"], 1.0, "resolved by the agent");
    assert_eq!(report["agent_response_ms"]["count"], 1);
    assert_eq!(report["satisfaction"]["average"], 5.0);
    assert_eq!(
        report["unanswered_questions"][0]["question"],
        "Do you sell replacement parts for the 1987 model?"
    );
}
