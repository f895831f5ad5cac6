//! Feedback in the customer's channel (issue 13, items 1 and 2): "was this
//! helpful?" under an FAQ answer, and the satisfaction survey after a resolve.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_channels::WebhookRequest;
use switchboard_domain::Feedback;
use switchboard_e2e::*;
use switchboard_sqlite::SqliteStore;

/// No welcome menu: the first answer is a plain FAQ answer.
const NO_MENU: &str = "[tiers]\nmenu_size = 0\n";

async fn stored_feedback(server: &Server) -> Vec<Feedback> {
    let store = SqliteStore::open(&server.database_path()).unwrap();
    store.feedback_since(0).await.unwrap()
}

fn report(server: &Server) -> Value {
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
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn telegram_texts(server: &Server, chat: i64, count: usize) -> Vec<Recorded> {
    eventually("telegram replies", Duration::from_secs(20), || {
        let replies = server.telegram_replies(chat);
        (replies.len() >= count).then_some(replies)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_telegram_answer_asks_with_inline_buttons_and_the_verified_tap_is_recorded_and_reported()
{
    let server = Server::start(Options {
        extra_config: NO_MENU.into(),
        ..Options::default()
    })
    .await;
    let (status, _) = server
        .post_telegram(&telegram_update(
            13_001,
            1301,
            "How long does shipping take?",
        ))
        .await;
    assert_eq!(status, 200);
    let answer = &telegram_texts(&server, 1301, 1).await[0].body;
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("working day") && text.ends_with("Was this helpful?"),
        "{text}"
    );
    let buttons = &answer["reply_markup"]["inline_keyboard"][0];
    assert_eq!(buttons[0]["callback_data"], "1", "{answer}");
    assert_eq!(buttons[1]["callback_data"], "2", "{answer}");

    // A tap whose update does not carry our secret token is refused.
    let tap = telegram_tap(13_002, 1301, 77, "1");
    let forged = [
        ("content-type", "application/json".to_owned()),
        (
            "x-telegram-bot-api-secret-token",
            "not-our-secret".to_owned(),
        ),
    ];
    let (status, _) = server
        .post("/webhooks/telegram", &forged, tap.to_string())
        .await;
    assert_eq!(status, 401);

    // The real tap is recorded, thanked for and its query answered; Telegram's
    // retry of the same update changes nothing.
    assert_eq!(server.post_telegram(&tap).await.0, 200);
    let replies = telegram_texts(&server, 1301, 2).await;
    assert_eq!(replies[1].body["text"], "Thank you for your feedback!");
    assert_eq!(server.post_telegram(&tap).await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.telegram_replies(1301).len(), 2);
    let answered = server.standin.matching("/answerCallbackQuery", |r| {
        r.body["callback_query_id"] == "cb13002"
    });
    assert_eq!(answered.len(), 1);
    let votes = stored_feedback(&server).await;
    assert_eq!(votes.len(), 1, "{votes:?}");
    assert_eq!(votes[0].helpful, Some(true));
    assert_eq!(votes[0].faq_id.as_deref(), Some("shipping-time"));
    assert!(votes[0].conversation.as_str().ends_with(":1301"));

    let report = report(&server);
    assert_eq!(report["satisfaction"]["helpful_votes"], 1, "{report}");
    assert_eq!(report["satisfaction"]["helpful_rate"], 1.0, "{report}");
}

fn webchat_message(conversation: &str, message_id: &str, text: &str) -> WebhookRequest {
    remember_text(text);
    let body = json!({ "conversation_id": conversation, "customer_id": format!("{conversation}-customer"),
                       "message_id": format!("{conversation}-{message_id}"), "text": text });
    signed_request(
        "webchat",
        "application/json",
        &[],
        body.to_string(),
        now_secs() * 1000,
    )
}

async fn webchat_replies(server: &Server, conversation: &str, count: usize) -> Vec<String> {
    let texts = || -> Vec<String> {
        server
            .standin
            .matching("/webchat", |r| r.body["conversation_id"] == conversation)
            .iter()
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for _ in 0..120 {
        let texts = texts();
        if texts.len() >= count {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{conversation}: fewer than {count} replies: {:?}", texts());
}

/// A web chat customer asks for a person, and the agent's reply resolves it.
async fn resolved_by_an_agent(server: &Server, conversation: &str) {
    let ask = webchat_message(conversation, "m1", "I want to talk to a person please");
    assert_eq!(server.post_request(&ask).await.0, 200);
    webchat_replies(server, conversation, 1).await;
    let path = format!("/api/conversations/webchat:default:{conversation}/reply");
    let auth = [
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
        ("content-type", "application/json".into()),
        ("idempotency-key", format!("resolve-{conversation}")),
    ];
    let reply = json!({ "text": "Your refund is on its way.", "agent": "Lee", "resolve": true });
    // The hand-over's reply may arrive before the conversation is saved.
    for _ in 0..40 {
        let (status, body) = server.post(&path, &auth, reply.to_string()).await;
        if status != 404 {
            assert_eq!(status, 202, "{body}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("conversation {conversation} never saved");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_agents_resolve_the_survey_records_the_score_and_a_1_notifies_the_agents() {
    let mut server = Server::start(Options::default()).await;
    let standin = server.standin.base.clone();
    server.stop();
    let config = format!(
        "[feedback.csat]\ndelay_secs = 1\n\n[[notify.webhooks]]\nplatform = \"slack\"\nurl = \"{standin}/hooks/slack\"\n"
    );
    server
        .restart(Options {
            extra_config: config,
            ..Options::default()
        })
        .await;

    resolved_by_an_agent(&server, "csat-a").await;
    // The hand-over, the agent's reply, then the survey.
    let texts = webchat_replies(&server, "csat-a", 3).await;
    assert!(texts[2].contains("How did we do?"), "{texts:?}");
    let score = webchat_message("csat-a", "m2", "4 quick and kind");
    assert_eq!(server.post_request(&score).await.0, 200);
    let texts = webchat_replies(&server, "csat-a", 4).await;
    // Thanked for, not answered from the FAQ nor handed to a person.
    assert_eq!(texts[3], "Thank you for your feedback!", "{texts:?}");
    let scores = stored_feedback(&server).await;
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(scores[0].satisfaction, Some(4));
    assert_eq!(scores[0].comment.as_deref(), Some("quick and kind"));

    resolved_by_an_agent(&server, "csat-b").await;
    webchat_replies(&server, "csat-b", 3).await;
    let hooks_before = server.standin.matching("/hooks/slack", |_| true).len();
    let mails_before = server.smtp.messages().len();
    let low = webchat_message("csat-b", "m2", "1");
    assert_eq!(server.post_request(&low).await.0, 200);
    let texts = webchat_replies(&server, "csat-b", 4).await;
    assert!(texts[3].contains("sorry we fell short"), "{texts:?}");
    // The agents hear of it by email and in their chat.
    let mail = eventually("low-score mail", Duration::from_secs(20), || {
        let mails = server.smtp.messages();
        mails[mails_before.min(mails.len())..]
            .iter()
            .map(|m| mail_text(m))
            .find(|m| m.contains("1 or 2 out of 5"))
    })
    .await;
    assert!(mail.contains("csat-b"), "{mail}");
    eventually("low-score chat notice", Duration::from_secs(20), || {
        (server.standin.matching("/hooks/slack", |_| true).len() > hooks_before).then_some(())
    })
    .await;
    let report = report(&server);
    assert_eq!(
        report["satisfaction"]["distribution"],
        json!([1, 0, 0, 1, 0]),
        "{report}"
    );
}
