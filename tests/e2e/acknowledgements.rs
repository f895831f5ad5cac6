//! Acknowledgements that are not questions: reactions, stickers, emoji, a
//! button tapped twice, and the SMS keywords Twilio answers itself. They
//! vote on an open "was this helpful?" or are only recorded: never a bot
//! reply to a "❤️", never a hand-over.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_channels::PublicUrl;
use switchboard_e2e::*;

/// No welcome menu, and "was this helpful?" under every answer.
const ALWAYS_ASK: &str = "[tiers]\nmenu_size = 0\n\n[feedback]\nhelpful_interval_secs = 0\n";

async fn conversation(server: &Server, key: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/api/conversations/{key}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{key}");
    response.json().await.unwrap()
}

/// The conversation once it holds `turns` turns.
/// The texts of a conversation view's turns, in order.
fn turn_texts(view: &Value) -> Vec<&str> {
    let turns = view["turns"].as_array().unwrap();
    turns.iter().map(|t| t["text"].as_str().unwrap()).collect()
}

async fn with_turns(server: &Server, key: &str, turns: usize) -> Value {
    for _ in 0..80 {
        let view = conversation(server, key).await;
        if view["turns"].as_array().map_or(0, Vec::len) >= turns {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{key}: fewer than {turns} turns: {}",
        conversation(server, key).await
    );
}

fn not_handed_over(view: &Value) {
    assert_ne!(view["status"], "escalated", "{view}");
    assert!(view["handover"].is_null(), "{view}");
}

fn sticker(update_id: i64, chat_id: i64, emoji: &str) -> Value {
    json!({ "update_id": update_id, "message": {
        "message_id": update_id % 100_000, "date": now_secs(),
        "from": { "id": chat_id, "is_bot": false, "first_name": "Ana" },
        "chat": { "id": chat_id, "first_name": "Ana", "type": "private" },
        "sticker": { "file_id": "CAAD", "file_unique_id": "x", "type": "regular", "width": 512,
                     "height": 512, "is_animated": false, "is_video": false, "emoji": emoji } } })
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_stickers_vote_and_a_second_tap_is_acknowledged_without_a_reply() {
    let server = Server::start(Options {
        extra_config: ALWAYS_ASK.into(),
        ..Options::default()
    })
    .await;
    let chat = 1801;
    let token = telegram_bot_token();
    let bot_id = token.split(':').next().unwrap();
    let key = format!("telegram:{bot_id}:{chat}");
    let server = &server;
    let sends = |count: usize| async move {
        eventually("telegram replies", Duration::from_secs(20), || {
            let replies = server.telegram_replies(chat);
            (replies.len() >= count).then_some(replies)
        })
        .await
    };
    let question = telegram_update(18_001, chat, "How long does shipping take?");
    assert_eq!(server.post_telegram(&question).await.0, 200);
    assert!(
        sends(1).await[0].body["text"]
            .as_str()
            .unwrap()
            .ends_with("Was this helpful?")
    );
    // The 👍 button: the vote. The same button again: its query is
    // answered, and nothing is written or handed over.
    assert_eq!(
        server
            .post_telegram(&telegram_tap(18_002, chat, 7, "1"))
            .await
            .0,
        200
    );
    assert_eq!(
        sends(2).await[1].body["text"],
        "Thank you for your feedback!"
    );
    assert_eq!(
        server
            .post_telegram(&telegram_tap(18_003, chat, 7, "1"))
            .await
            .0,
        200
    );
    eventually("the second tap answered", Duration::from_secs(20), || {
        let answered = server.standin.matching("/answerCallbackQuery", |r| {
            r.body["callback_query_id"] == "cb18003"
        });
        (!answered.is_empty()).then_some(())
    })
    .await;
    // A sticker with nothing asked: recorded only.
    assert_eq!(
        server.post_telegram(&sticker(18_004, chat, "😂")).await.0,
        200
    );
    let view = with_turns(server, &key, 6).await;
    not_handed_over(&view);
    // A 👍 sticker under the next answer is that answer's vote.
    let next = telegram_update(18_005, chat, "How do I return an item?");
    assert_eq!(server.post_telegram(&next).await.0, 200);
    sends(3).await;
    assert_eq!(
        server.post_telegram(&sticker(18_006, chat, "👍")).await.0,
        200
    );
    assert_eq!(
        sends(4).await[3].body["text"],
        "Thank you for your feedback!"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.telegram_replies(chat).len(),
        4,
        "nothing else written"
    );
    let view = with_turns(server, &key, 10).await;
    not_handed_over(&view);
    let texts = turn_texts(&view);
    assert!(texts.contains(&"[sticker 😂]"), "{texts:?}");
}

fn whatsapp(id: &str, message: Value) -> Value {
    let mut message = message;
    message["from"] = json!("16505550188");
    message["id"] = json!(id);
    message["timestamp"] = json!(now_secs().to_string());
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": "102290129340398",
        "changes": [{ "field": "messages", "value": { "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881",
                          "phone_number_id": setting("whatsapp", "phone_number_id") },
            "messages": [message] } }] }] })
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_reactions_vote_once_and_are_otherwise_only_recorded() {
    let server = Server::start(Options {
        extra_config: ALWAYS_ASK.into(),
        ..Options::default()
    })
    .await;
    let phone = setting("whatsapp", "phone_number_id");
    let key = format!("whatsapp:{phone}:16505550188");
    let path = format!("/whatsapp/{phone}/messages");
    let server = &server;
    let post = |id: &str, message: Value| {
        let body = whatsapp(id, message).to_string();
        let request = signed_request("whatsapp", "application/json", &[], body, now_secs() * 1000);
        async move { server.post_request(&request).await.0 }
    };
    let replies = |count: usize| {
        let path = path.clone();
        async move {
            eventually("whatsapp replies", Duration::from_secs(20), || {
                let replies = server.standin.matching(&path, |_| true);
                (replies.len() >= count).then_some(replies)
            })
            .await
        }
    };
    let question = "How long does shipping take?";
    remember_text(question);
    let text = json!({ "type": "text", "text": { "body": question } });
    assert_eq!(post("wamid.R1", text).await, 200);
    replies(1).await;
    let react = |emoji: &str| json!({ "type": "reaction", "reaction": { "message_id": "wamid.OURS", "emoji": emoji } });
    assert_eq!(post("wamid.R2", react("👍")).await, 200);
    let thanked = replies(2).await;
    assert_eq!(
        thanked[1].body["text"]["body"],
        "Thank you for your feedback!"
    );
    assert_eq!(post("wamid.R3", react("❤️")).await, 200);
    assert_eq!(post("wamid.R4", react("😂")).await, 200);
    let view = with_turns(server, &key, 6).await;
    not_handed_over(&view);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.standin.matching(&path, |_| true).len(),
        2,
        "no reply to a reaction"
    );
    let last = &view["turns"].as_array().unwrap()[5];
    assert_eq!(last["text"], "[reaction 😂]", "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_sms_keywords_get_no_reply_and_no_hand_over() {
    let server = Server::start(Options::default()).await;
    let channel = channel("twilio");
    let customer = "+14155550188";
    let key = format!("twilio:{}:{customer}", setting("twilio", "account_sid"));
    let path = format!(
        "/twilio/2010-04-01/Accounts/{}/Messages.json",
        setting("twilio", "account_sid")
    );
    for (n, word) in ["STOP", "help", " Unsubscribe "].into_iter().enumerate() {
        // Sample ids follow the clock: one a millisecond apart.
        let mut request = channel.sample(customer, word, now_secs() * 1000 + n as i64);
        request
            .extensions_mut()
            .insert(PublicUrl(format!("{}/webhooks/twilio", server.base)));
        channel.sign(&mut request, 0).unwrap();
        let (status, answer) = server.post_request(&request).await;
        assert_eq!(status, 200, "{answer}");
    }
    let view = with_turns(&server, &key, 3).await;
    not_handed_over(&view);
    let texts = turn_texts(&view);
    assert_eq!(texts, ["STOP", "help", "Unsubscribe"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        server.standin.matching(&path, |_| true).is_empty(),
        "no reply"
    );
    let tickets = server.queued_total("escalation_standard").await
        + server.queued_total("escalation_priority").await;
    assert_eq!(tickets, 0, "no hand-over");
}
