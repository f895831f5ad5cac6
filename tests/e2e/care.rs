//! Issue 12 end to end: service levels with reassurance and breach on short
//! timers, an agent's reply stopping them, the welcome menu, repeated
//! failure, the CRM tier lookup, and the chat notifiers at a recording
//! stand-in.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use switchboard_e2e::*;

const UNANSWERABLE: &str = "My parrot ate the warranty card of the blender, what now";

fn bot_id() -> String {
    telegram_bot_token().split(':').next().unwrap().to_owned()
}

fn texts(server: &Server, chat: i64) -> Vec<String> {
    server
        .telegram_replies(chat)
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn say(server: &Server, update_id: i64, chat: i64, text: &str) {
    remember_text(text);
    let (status, _) = server
        .post_telegram(&telegram_update(update_id, chat, text))
        .await;
    assert_eq!(status, 200);
}

async fn replies_at_least(server: &Server, chat: i64, count: usize) -> Vec<String> {
    eventually("replies", Duration::from_secs(20), || {
        let texts = texts(server, chat);
        (texts.len() >= count).then_some(texts)
    })
    .await
}

fn mails_to(server: &Server, address: &str) -> Vec<String> {
    server
        .smtp
        .messages()
        .into_iter()
        .filter(|m| mail_header(m, "X-Envelope-To").as_deref() == Some(address))
        .collect()
}

/// Short service levels for every tier, and chat notifiers at the stand-in.
fn short_sla(first_response_secs: u64, reassure_after_secs: u64, standin: &str) -> String {
    let mut config = String::new();
    for tier in ["new", "regular", "vip"] {
        config.push_str(&format!(
            "[sla.{tier}]\nfirst_response_secs = {first_response_secs}\nreassure_after_secs = {reassure_after_secs}\n\n"
        ));
    }
    config.push_str(&format!(
        r#"[[notify.webhooks]]
platform = "slack"
url = "{standin}/hooks/slack"

[[notify.webhooks]]
platform = "feishu"
url = "{standin}/hooks/feishu"
secret = "feishu-bot-secret"

[[notify.webhooks]]
platform = "dingtalk"
url = "{standin}/hooks/dingtalk?access_token=robot"
secret = "SECdingtalk-robot-secret"

[[notify.webhooks]]
platform = "teams"
url = "{standin}/hooks/teams-vip"
tickets = "priority"
"#
    ));
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_customer_is_reassured_and_a_breach_reaches_the_priority_address() {
    let mut server = Server::start(Options::default()).await;
    let standin = server.standin.base.clone();
    server.stop();
    server
        .restart(Options {
            extra_config: short_sla(8, 2, &standin),
            ..Options::default()
        })
        .await;
    // A returning (regular) customer: answered first, then a question for a person.
    say(&server, 12_001, 1201, "What are your opening hours?").await;
    replies_at_least(&server, 1201, 1).await;
    say(&server, 12_002, 1201, UNANSWERABLE).await;
    let texts = replies_at_least(&server, 1201, 2).await;
    assert!(
        texts[1].contains("1 minute"),
        "the promise from the SLA: {texts:?}"
    );
    // The hand-over went to the agents' address (not urgent).
    eventually("hand-over mail", Duration::from_secs(20), || {
        (!mails_to(&server, "agents@shop.test").is_empty()).then_some(())
    })
    .await;

    let texts = replies_at_least(&server, 1201, 3).await;
    assert!(texts[2].contains("We're on it"), "{texts:?}");
    let breach = eventually("breach mail", Duration::from_secs(30), || {
        mails_to(&server, "vip-agents@shop.test").into_iter().next()
    })
    .await;
    let subject = mail_header(&breach, "Subject").unwrap();
    assert!(subject.contains("sla breach"), "{subject}");
    assert!(mail_text(&breach).contains("no agent has answered within the service level"));

    // Three reassurances at most, however long the wait.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let reassured = texts_of(&server, 1201, "We're on it");
    assert_eq!(reassured, 3, "{:?}", self::texts(&server, 1201));
    assert_eq!(
        mails_to(&server, "vip-agents@shop.test").len(),
        1,
        "one breach"
    );

    // Every chat notifier got the hand-over, in its format; the VIP-only
    // Teams hook got the breach only.
    let slack = server.standin.matching("/hooks/slack", |_| true);
    assert_eq!(slack.len(), 2, "hand-over and breach");
    assert_eq!(slack[0].body["blocks"][0]["type"], "header");
    let fields = slack[0].body["blocks"][1]["fields"].to_string();
    for fact in [
        "*Tier*\\nregular",
        "*Reason*\\nno_confident_match",
        "*Waiting*",
        "*Conversation*",
    ] {
        assert!(fields.contains(fact), "{fact} in {fields}");
    }
    let feishu = &server.standin.matching("/hooks/feishu", |_| true)[0];
    assert_eq!(feishu.body["msg_type"], "interactive");
    let timestamp = feishu.body["timestamp"].as_str().unwrap();
    assert_eq!(
        feishu.body["sign"].as_str().unwrap(),
        switchboard_channels::notify::feishu_sign("feishu-bot-secret", timestamp)
    );
    let dingtalk = &server.standin.matching("/hooks/dingtalk", |_| true)[0];
    assert_eq!(dingtalk.body["msgtype"], "markdown");
    let query: Vec<(String, String)> = url_pairs(&dingtalk.query);
    let get = |name: &str| query.iter().find(|(k, _)| k == name).unwrap().1.clone();
    assert_eq!(get("access_token"), "robot");
    assert_eq!(
        get("sign"),
        switchboard_channels::notify::dingtalk_sign("SECdingtalk-robot-secret", &get("timestamp"))
    );
    let teams = server.standin.matching("/hooks/teams-vip", |_| true);
    assert_eq!(teams.len(), 1, "the priority hook gets the breach only");
    assert_eq!(
        teams[0].body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(teams[0].body.to_string().contains("SLA breach"));
}

fn texts_of(server: &Server, chat: i64, needle: &str) -> usize {
    texts(server, chat)
        .iter()
        .filter(|t| t.contains(needle))
        .count()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://stand.in/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agents_reply_before_the_timers_stops_reassurance_and_breach() {
    let mut server = Server::start(Options::default()).await;
    let standin = server.standin.base.clone();
    server.stop();
    server
        .restart(Options {
            // long enough that a loaded machine gets the agent's reply in
            // before reassurance is due, short enough to watch both deadlines pass
            extra_config: short_sla(9, 6, &standin),
            ..Options::default()
        })
        .await;
    say(&server, 12_101, 1202, "What are your opening hours?").await;
    replies_at_least(&server, 1202, 1).await;
    say(&server, 12_102, 1202, UNANSWERABLE).await;
    replies_at_least(&server, 1202, 2).await;
    let handed_over = tokio::time::Instant::now();
    let path = format!("/api/conversations/telegram:{}:1202/reply", bot_id());
    let auth = [
        ("authorization", format!("Bearer {ADMIN_TOKEN}")),
        ("content-type", "application/json".into()),
        ("idempotency-key", "care-1202".into()),
    ];
    let (status, body) = server
        .post(
            &path,
            &auth,
            json!({ "text": "Let me check that for you.", "agent": "Lee" }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // past both deadlines (counted from the hand-over), with a margin
    tokio::time::sleep_until(handed_over + Duration::from_secs(12)).await;
    let texts = texts(&server, 1202);
    assert_eq!(
        texts.len(),
        3,
        "answer, hand-over, the agent's reply: {texts:?}"
    );
    assert_eq!(texts_of(&server, 1202, "We're on it"), 0);
    assert!(
        mails_to(&server, "vip-agents@shop.test").is_empty(),
        "no breach"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_customer_gets_the_welcome_menu_and_2_answers_entry_2() {
    let server = Server::start(Options::default()).await;
    say(&server, 12_201, 1203, "hi").await;
    let welcome = &replies_at_least(&server, 1203, 1).await[0];
    assert!(welcome.starts_with("Hi!"), "{welcome}");
    assert!(
        welcome.contains("1. What are your opening hours?\n2. How long does shipping take?"),
        "{welcome}"
    );
    // On Telegram the menu's numbers are also inline buttons; a tap on "2"
    // (a callback query) answers entry 2 and answers the query.
    let keyboard = &server.telegram_replies(1203)[0].body["reply_markup"];
    let buttons = keyboard["inline_keyboard"][0].as_array().unwrap();
    assert!(
        buttons.len() >= 2 && buttons[1]["callback_data"] == "2",
        "{keyboard}"
    );
    let (status, _) = server
        .post_telegram(&telegram_tap(12_202, 1203, 901, "2"))
        .await;
    assert_eq!(status, 200);
    let texts = replies_at_least(&server, 1203, 2).await;
    assert!(texts[1].contains("within one working day"), "{texts:?}");
    let answered = server.standin.matching("/answerCallbackQuery", |r| {
        r.body["callback_query_id"] == "cb12202"
    });
    assert_eq!(answered.len(), 1, "the tap's query is answered once");
    // The answer asks whether it helped: now "1" is a vote, not a menu entry.
    let asked = &server.telegram_replies(1203)[1].body;
    assert_eq!(
        asked["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "1",
        "{asked}"
    );
    say(&server, 12_203, 1203, "1").await;
    let texts = replies_at_least(&server, 1203, 3).await;
    assert_eq!(texts[2], "Thank you for your feedback!", "{texts:?}");
    // A returning customer is not welcomed again.
    say(&server, 12_204, 1203, "What are your opening hours?").await;
    let texts = replies_at_least(&server, 1203, 4).await;
    assert!(
        !texts[3].contains("Hi!") && texts[3].contains("Monday to Saturday"),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_twice_in_a_row_hands_over_as_urgent() {
    let server = Server::start(Options::default()).await;
    say(&server, 12_301, 1204, "hello").await;
    replies_at_least(&server, 1204, 1).await;
    say(&server, 12_302, 1204, UNANSWERABLE).await;
    let mail = eventually("urgent hand-over", Duration::from_secs(20), || {
        mails_to(&server, "vip-agents@shop.test").into_iter().next()
    })
    .await;
    assert!(mail_text(&mail).contains("the bot could not answer twice in a row"));
    assert!(
        mail_header(&mail, "Subject")
            .unwrap()
            .contains("[Priority]")
    );
}

/// The business's CRM: checks our signature, counts calls, answers `vip`
/// for customer 1301, and fails while `down`.
struct Crm {
    base: String,
    calls: Arc<AtomicUsize>,
    bad_signatures: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Crm {
    async fn start(secret: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let bad_signatures = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, b, d, s) = (
            calls.clone(),
            bad_signatures.clone(),
            down.clone(),
            seen.clone(),
        );
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (calls, bad, down, seen) = (c.clone(), b.clone(), d.clone(), s.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let timestamp = header("x-switchboard-timestamp");
                    let expected = format!(
                        "v1={}",
                        hmac_hex(secret, &[timestamp.as_bytes(), b".", &body])
                    );
                    let fresh = timestamp
                        .parse::<i64>()
                        .is_ok_and(|t| (t - now_secs()).abs() < 300);
                    if header("x-switchboard-signature") != expected || !fresh {
                        bad.fetch_add(1, Ordering::SeqCst);
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    if down.load(Ordering::SeqCst) {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    let customer = request["customer"].as_str().unwrap().to_owned();
                    seen.lock().unwrap().push(customer.clone());
                    if customer == "telegram:1301" {
                        axum::Json(json!({ "tier": "vip" })).into_response()
                    } else {
                        StatusCode::NOT_FOUND.into_response()
                    }
                }
            });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            calls,
            bad_signatures,
            down,
            seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_crm_is_asked_signed_cached_and_a_failure_falls_back_to_the_stored_tier() {
    let crm = Crm::start("crm-signing-secret").await;
    let server = Server::start(Options {
        extra_config: format!(
            "[tiers]\nlookup_url = \"{}/tiers\"\nsecret = \"crm-signing-secret\"\ntimeout_ms = 800\ncache_secs = 600\n",
            crm.base
        ),
        ..Options::default()
    })
    .await;
    let question = "Do you sell replacement parts for the 1987 model?";
    // The CRM's VIP: to a person at once, promised the VIP service level.
    say(&server, 12_401, 1301, question).await;
    let texts = replies_at_least(&server, 1301, 1).await;
    assert!(texts[0].contains("15 minutes"), "{texts:?}");
    let mail = eventually("VIP hand-over", Duration::from_secs(20), || {
        mails_to(&server, "vip-agents@shop.test").into_iter().next()
    })
    .await;
    assert!(mail_text(&mail).contains("Tier:              vip"));
    // Asked again within the cache time: not called again.
    say(&server, 12_402, 1301, "hello?").await;
    eventually("the follow-up forwarded", Duration::from_secs(20), || {
        (mails_to(&server, "vip-agents@shop.test").len() >= 2).then_some(())
    })
    .await;
    assert_eq!(crm.calls.load(Ordering::SeqCst), 1, "cached");
    assert_eq!(crm.bad_signatures.load(Ordering::SeqCst), 0, "signed");
    assert_eq!(*crm.seen.lock().unwrap(), vec!["telegram:1301".to_owned()]);

    // The CRM down: the stored tier (new) is used, and the message is answered.
    crm.down.store(true, Ordering::SeqCst);
    say(&server, 12_403, 1302, question).await;
    let texts = replies_at_least(&server, 1302, 1).await;
    assert!(texts[0].contains("4 hours"), "{texts:?}");
    assert_eq!(crm.calls.load(Ordering::SeqCst), 2, "asked, and failed");
}
