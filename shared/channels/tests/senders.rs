//! The HTTP senders against a local server that records what it receives:
//! the right path, headers and JSON, and how the provider's answer is classified.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use switchboard_channels::kit::build_request;
use switchboard_channels::notify::{ChatWebhookConfig, ChatWebhookNotifier};
use switchboard_channels::{ChannelDeps, SharedChannel, registry};
use switchboard_domain::{
    AgentNotifier, Choice, ConversationKey, EscalationReason, EscalationTicket, Language,
    OutboundReply, ReplyContext, Secret, SendError, Tier,
};

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the sender posts JSON")
    }
}

#[derive(Clone)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    answer: Arc<Mutex<String>>,
    /// Answers for paths ending with a suffix: `(suffix, status, body)`.
    by_path: Arc<Mutex<Vec<(String, u16, String)>>>,
}

/// A local HTTP server answering every request with the configured status and
/// JSON body, and keeping every request.
struct Server {
    base: String,
    recorder: Recorder,
}

impl Server {
    async fn start() -> Self {
        let recorder = Recorder {
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            answer: Arc::new(Mutex::new(r#"{"ok":true}"#.to_owned())),
            by_path: Arc::default(),
        };
        let app = Router::new().fallback(record).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{address}"),
            recorder,
        }
    }

    fn answer(&self, status: u16, body: &str) {
        self.recorder.status.store(status, Ordering::SeqCst);
        *self.recorder.answer.lock().unwrap() = body.to_owned();
    }

    fn answer_at(&self, suffix: &str, status: u16, body: &str) {
        let answer = (suffix.to_owned(), status, body.to_owned());
        self.recorder.by_path.lock().unwrap().push(answer);
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.recorder.received.lock().unwrap())
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    recorder.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let special = recorder
        .by_path
        .lock()
        .unwrap()
        .iter()
        .find(|(suffix, _, _)| uri.path().ends_with(suffix.as_str()))
        .cloned();
    let (status, answer) = match special {
        Some((_, status, body)) => (status, body),
        None => (
            recorder.status.load(Ordering::SeqCst),
            recorder.answer.lock().unwrap().clone(),
        ),
    };
    let status = StatusCode::from_u16(status).unwrap();
    (status, [("content-type", "application/json")], answer)
}

fn channel(name: &str, settings: Value) -> SharedChannel {
    registry::build(name, &settings, &ChannelDeps::offline()).unwrap()
}

fn reply(channel: &str, conversation: &str, thread: Option<&str>) -> OutboundReply {
    OutboundReply {
        channel: channel.into(),
        account_id: "acct".into(),
        conversation_id: conversation.into(),
        customer_id: "cust-1".into(),
        text: "Your order ships tomorrow. 明天发货。".into(),
        reply: ReplyContext {
            thread_id: thread.map(Into::into),
            ..ReplyContext::default()
        },
        reply_id: "reply-0001".into(),
        choices: Vec::new(),
    }
}

/// The whole error as a log line with its sources would show it.
fn chain(error: &SendError) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(&format!(" / {inner} / {inner:?}"));
        source = inner.source();
    }
    text
}

#[tokio::test]
async fn telegram_posts_send_message() {
    let server = Server::start().await;
    let telegram = channel(
        "telegram",
        json!({ "secret_token": "tok", "bot_token": "4242:SECRET-bot-token", "api_base": server.base }),
    );
    server.answer(200, r#"{"ok":true,"result":{"message_id":5}}"#);
    telegram
        .send(&reply("telegram", "-100777", Some("12")))
        .await
        .unwrap();
    let received = server.take();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/bot4242:SECRET-bot-token/sendMessage");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({ "chat_id": -100777, "text": "Your order ships tomorrow. 明天发货。", "message_thread_id": 12 })
    );

    // In a group, the answer quotes the customer's message (its message_id,
    // not the update_id that deduplicates it); in a private chat it does not.
    let mut quoting = reply("telegram", "-100777", None);
    quoting.reply.message_id = Some("55".into());
    telegram.send(&quoting).await.unwrap();
    let body = server.take()[0].json();
    assert_eq!(
        body["reply_parameters"],
        json!({ "message_id": 55, "allow_sending_without_reply": true })
    );
    quoting.conversation_id = "4242".into();
    telegram.send(&quoting).await.unwrap();
    assert_eq!(server.take()[0].json().get("reply_parameters"), None);

    // Choices go as inline buttons, on the first part only.
    let mut menu = reply("telegram", "4242", None);
    menu.choices = vec![Choice::new("1", "👍 Yes"), Choice::new("2", "👎 No")];
    telegram.send(&menu).await.unwrap();
    assert_eq!(
        server.take()[0].json()["reply_markup"],
        json!({ "inline_keyboard": [[{ "text": "👍 Yes", "callback_data": "1" },
                                     { "text": "👎 No", "callback_data": "2" }]] })
    );

    // A reply to a tap answers its callback query first, and a refused
    // answer (too late) does not hold the reply back.
    menu.reply.reply_token = Some("4382bfdwdsb323b2d9".into());
    server.answer_at(
        "/answerCallbackQuery",
        400,
        r#"{"ok":false,"description":"Bad Request: query is too old"}"#,
    );
    telegram.send(&menu).await.unwrap();
    let calls = server.take();
    assert!(
        calls[0].path.ends_with("/answerCallbackQuery"),
        "{}",
        calls[0].path
    );
    assert_eq!(
        calls[0].json(),
        json!({ "callback_query_id": "4382bfdwdsb323b2d9" })
    );
    assert!(calls[1].path.ends_with("/sendMessage"));

    // A username-style chat id goes as a string.
    telegram
        .send(&reply("telegram", "@shopchannel", None))
        .await
        .unwrap();
    assert_eq!(
        server.take()[0].json(),
        json!({ "chat_id": "@shopchannel", "text": "Your order ships tomorrow. 明天发货。" })
    );

    for (status, transient) in [
        (500, true),
        (502, true),
        (429, true),
        (400, false),
        (403, false),
    ] {
        server.answer(
            status,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        );
        let error = telegram
            .send(&reply("telegram", "1", None))
            .await
            .unwrap_err();
        assert_eq!(error.is_transient(), transient, "{status}");
        assert!(
            !chain(&error).contains("SECRET-bot-token"),
            "{}",
            chain(&error)
        );
    }
}

#[tokio::test]
async fn telegram_network_errors_are_transient_and_hide_the_token() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let telegram = channel(
        "telegram",
        json!({ "secret_token": "tok", "bot_token": "4242:SECRET-bot-token", "api_base": format!("http://127.0.0.1:{port}") }),
    );
    let error = telegram
        .send(&reply("telegram", "1", None))
        .await
        .unwrap_err();
    assert!(error.is_transient());
    let text = chain(&error);
    assert!(
        !text.contains("SECRET-bot-token") && !text.contains("4242"),
        "{text}"
    );
}

#[tokio::test]
async fn slack_posts_chat_post_message() {
    let server = Server::start().await;
    let slack = channel(
        "slack",
        json!({ "signing_secret": "sign", "bot_token": "xoxb-test-token", "api_base": format!("{}/api/", server.base) }),
    );
    server.answer(200, r#"{"ok":true,"channel":"C1","ts":"1.2"}"#);
    slack
        .send(&reply("slack", "C0CHAN", Some("1700000000.000200")))
        .await
        .unwrap();
    let request = &server.take()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/chat.postMessage");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer xoxb-test-token")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({ "channel": "C0CHAN", "text": "Your order ships tomorrow. 明天发货。", "thread_ts": "1700000000.000200" })
    );

    slack.send(&reply("slack", "D0DM", None)).await.unwrap();
    assert_eq!(server.take()[0].json().get("thread_ts"), None);

    for (status, body, transient) in [
        (200, r#"{"ok":false,"error":"ratelimited"}"#, true),
        (200, r#"{"ok":false,"error":"internal_error"}"#, true),
        (200, r#"{"ok":false,"error":"channel_not_found"}"#, false),
        (200, r#"{"ok":false,"error":"invalid_auth"}"#, false),
        (429, r#"{"ok":false,"error":"ratelimited"}"#, true),
        (500, "oops", true),
        (503, "", true),
        (400, r#"{"ok":false,"error":"invalid_arguments"}"#, false),
        (200, "not json", true),
    ] {
        server.answer(status, body);
        let error = slack
            .send(&reply("slack", "C0CHAN", None))
            .await
            .unwrap_err();
        assert_eq!(error.is_transient(), transient, "{status} {body}");
        assert!(!chain(&error).contains("xoxb-test-token"));
    }
}

#[tokio::test]
async fn webchat_posts_signed_replies() {
    let server = Server::start().await;
    let secret = "webchat-secret-for-tests";
    let webchat = channel(
        "webchat",
        json!({ "signing_secret": secret, "reply_url": format!("{}/switchboard/replies", server.base) }),
    );
    server.answer(204, "");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    webchat
        .send(&reply("webchat", "conv-9", None))
        .await
        .unwrap();
    let request = &server.take()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/switchboard/replies");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some("reply-0001"));
    assert_eq!(
        request.json(),
        json!({
            "reply_id": "reply-0001", "account_id": "acct", "conversation_id": "conv-9",
            "customer_id": "cust-1", "text": "Your order ships tomorrow. 明天发货。"
        })
    );
    // The integrator can check us exactly as we check them.
    let timestamp: i64 = request
        .header("x-switchboard-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((before..=before + 5).contains(&timestamp));
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let echoed = build_request("POST", "/", &headers, request.body.clone()).unwrap();
    webchat.verify(&echoed, timestamp * 1000).unwrap();

    for (status, transient) in [
        (500, true),
        (503, true),
        (429, true),
        (408, true),
        (400, false),
        (404, false),
        (401, false),
    ] {
        server.answer(status, "{}");
        let error = webchat
            .send(&reply("webchat", "conv-9", None))
            .await
            .unwrap_err();
        assert_eq!(error.is_transient(), transient, "{status}");
    }
}

#[tokio::test]
async fn chat_webhook_notifier_posts_a_text_summary() {
    let server = Server::start().await;
    let notifier = ChatWebhookNotifier::new(
        ChatWebhookConfig {
            url: Secret::new(format!("{}/services/T0/B0/XYZ", server.base)),
        },
        reqwest::Client::new(),
    )
    .unwrap();
    let ticket = EscalationTicket {
        ticket_id: "tk-1".into(),
        conversation: ConversationKey::new("slack", "T0", "D0"),
        channel: "slack".into(),
        customer_id: "U1".into(),
        customer_name: None,
        tier: Tier::Regular,
        reason: EscalationReason::NoConfidentMatch,
        priority: false,
        language: Language::En,
        question: "Do you sell gift cards?".into(),
        transcript: Vec::new(),
        candidates: Vec::new(),
        expected_response: "4 hours".into(),
        created_at_ms: 0,
        correlation_id: Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into()),
    };
    notifier.notify(&ticket).await.unwrap();
    let request = &server.take()[0];
    assert_eq!(request.path, "/services/T0/B0/XYZ");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let text = request.json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with(
        "[Switchboard] Escalation on slack: no FAQ entry answers the question confidently\n"
    ));
    assert!(text.ends_with("> Do you sell gift cards?"));
    assert!(text.contains("\nCorrelation id: 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\n"));

    server.answer(500, "");
    assert!(notifier.notify(&ticket).await.unwrap_err().is_transient());
    server.answer(404, "");
    assert!(!notifier.notify(&ticket).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn line_replies_with_the_token_then_pushes_once_it_is_refused() {
    let server = Server::start().await;
    let line = channel(
        "line",
        json!({ "channel_secret": "s", "channel_access_token": "line-token", "api_base": server.base }),
    );
    let mut answer = reply("line", "U0CUST", None);
    answer.reply.reply_token = Some("reply-token-1".into());
    answer.text = format!("{}\n{}", "长".repeat(5_000), "短");
    line.send(&answer).await.unwrap();
    let calls = server.take();
    assert_eq!(calls.len(), 1, "two parts, one reply call");
    assert_eq!(calls[0].path, "/v2/bot/message/reply");
    assert_eq!(calls[0].header("authorization"), Some("Bearer line-token"));
    let body = calls[0].json();
    assert_eq!(body["replyToken"], "reply-token-1");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["messages"][1]["text"].as_str().map(str::trim),
        Some("短")
    );
    assert_eq!(body["messages"][1].get("quickReply"), None);

    // A menu's choices as quick replies, on the last bubble only.
    answer.choices = vec![Choice::new("1", "1"), Choice::new("2", "2")];
    line.send(&answer).await.unwrap();
    let body = server.take()[0].json();
    assert_eq!(body["messages"][0].get("quickReply"), None);
    assert_eq!(
        body["messages"][1]["quickReply"]["items"][1],
        json!({ "type": "action", "action": { "type": "message", "label": "2", "text": "2" } })
    );
    answer.choices.clear();

    // An expired (or used) token: the same messages go by push, with a retry key.
    server.answer_at("/reply", 400, r#"{"message":"Invalid reply token"}"#);
    answer.text = "明天发货。".into();
    line.send(&answer).await.unwrap();
    let calls = server.take();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].path, "/v2/bot/message/push");
    assert_eq!(
        calls[1].json(),
        json!({ "to": "U0CUST", "messages": [{ "type": "text", "text": "明天发货。" }] })
    );
    let key = calls[1].header("x-line-retry-key").unwrap().to_owned();
    line.send(&answer).await.unwrap();
    assert_eq!(
        server.take()[1].header("x-line-retry-key"),
        Some(key.as_str()),
        "the same reply, the same key"
    );

    // Other refusals are not retried by push.
    let mut other = reply("line", "U0CUST", None);
    other.reply.reply_token = Some("t".into());
    let fresh = Server::start().await;
    fresh.answer(400, r#"{"message":"The request body has 1 error(s)"}"#);
    let line = channel(
        "line",
        json!({ "channel_secret": "s", "channel_access_token": "line-token", "api_base": fresh.base }),
    );
    let error = line.send(&other).await.unwrap_err();
    assert!(!error.is_transient());
    assert_eq!(fresh.take().len(), 1);
    fresh.answer(429, r#"{"message":"Too many requests"}"#);
    assert!(line.send(&other).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn wechat_sends_customer_service_messages_with_a_cached_token() {
    let server = Server::start().await;
    server.answer_at(
        "/cgi-bin/token",
        200,
        r#"{"access_token":"ACCESS_TOKEN","expires_in":7200}"#,
    );
    server.answer(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    let wechat = channel(
        "wechat",
        json!({ "token": "t", "app_id": "wxAPP", "app_secret": "app-secret", "api_base": server.base }),
    );
    wechat.send(&reply("wechat", "oCUST", None)).await.unwrap();
    wechat.send(&reply("wechat", "oCUST", None)).await.unwrap();
    let calls = server.take();
    let paths: Vec<_> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/cgi-bin/token",
            "/cgi-bin/message/custom/send",
            "/cgi-bin/message/custom/send"
        ],
        "one token for both"
    );
    assert_eq!(calls[0].method, "GET");
    assert_eq!(
        calls[1].json(),
        json!({ "touser": "cust-1", "msgtype": "text", "text": { "content": "Your order ships tomorrow. 明天发货。" } })
    );
    for (body, transient) in [
        (r#"{"errcode":-1,"errmsg":"system error"}"#, true),
        (
            r#"{"errcode":45015,"errmsg":"response out of time limit"}"#,
            false,
        ),
        (r#"{"errcode":40003,"errmsg":"invalid openid"}"#, false),
    ] {
        server.answer(200, body);
        let error = wechat
            .send(&reply("wechat", "oCUST", None))
            .await
            .unwrap_err();
        assert_eq!(error.is_transient(), transient, "{body}");
        assert!(!chain(&error).contains("app-secret") && !chain(&error).contains("ACCESS_TOKEN"));
    }
}

#[tokio::test]
async fn feishu_replies_to_the_message_with_a_tenant_token() {
    let server = Server::start().await;
    server.answer_at(
        "/tenant_access_token/internal",
        200,
        r#"{"code":0,"msg":"ok","tenant_access_token":"t-123","expire":7200}"#,
    );
    server.answer(200, r#"{"code":0,"msg":"success","data":{}}"#);
    let feishu = channel(
        "feishu",
        json!({ "app_id": "cli_1", "app_secret": "feishu-secret", "verification_token": "v", "encrypt_key": "k", "base_url": server.base }),
    );
    let mut answer = reply("feishu", "oc_1", None);
    answer.reply.message_id = Some("om_1".into());
    feishu.send(&answer).await.unwrap();
    let calls = server.take();
    assert_eq!(
        calls[0].path,
        "/open-apis/auth/v3/tenant_access_token/internal"
    );
    assert_eq!(
        calls[0].json(),
        json!({ "app_id": "cli_1", "app_secret": "feishu-secret" })
    );
    assert_eq!(calls[1].path, "/open-apis/im/v1/messages/om_1/reply");
    assert_eq!(calls[1].header("authorization"), Some("Bearer t-123"));
    let body = calls[1].json();
    assert_eq!(body["msg_type"], "text");
    let content: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["text"], "Your order ships tomorrow. 明天发货。");
    let uuid = body["uuid"].as_str().unwrap().to_owned();
    feishu.send(&answer).await.unwrap();
    let again = server.take();
    assert_eq!(again.len(), 1, "the token is cached");
    assert_eq!(
        again[0].json()["uuid"],
        uuid,
        "a retried reply keeps its uuid"
    );

    for (body, transient) in [
        (
            r#"{"code":99991400,"msg":"request trigger frequency limit"}"#,
            true,
        ),
        (r#"{"code":230002,"msg":"bot not in chat"}"#, false),
    ] {
        server.answer(200, body);
        let error = feishu.send(&answer).await.unwrap_err();
        assert_eq!(error.is_transient(), transient, "{body}");
        assert!(!chain(&error).contains("t-123") && !chain(&error).contains("feishu-secret"));
    }
}

#[tokio::test]
async fn dingtalk_answers_on_the_session_webhook_path_at_dingtalks_host() {
    let server = Server::start().await;
    server.answer(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    let dingtalk = channel(
        "dingtalk",
        json!({ "app_secret": "s", "api_base": server.base }),
    );
    let mut answer = reply("dingtalk", "cid1", Some("2"));
    // The host named in the (unsigned) body is never called: only its path.
    answer.reply.reply_token = Some(format!(
        "{}@https://attacker.example/robot/sendBySession?session=abc",
        i64::MAX
    ));
    dingtalk.send(&answer).await.unwrap();
    let call = &server.take()[0];
    assert_eq!(call.path, "/robot/sendBySession");
    assert_eq!(
        call.json(),
        json!({ "msgtype": "text", "text": { "content": "Your order ships tomorrow. 明天发货。" }, "at": { "atUserIds": ["cust-1"] } })
    );
    server.answer(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#);
    assert!(dingtalk.send(&answer).await.unwrap_err().is_transient());
    server.answer(200, r#"{"errcode":300001,"errmsg":"session not found"}"#);
    assert!(!dingtalk.send(&answer).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn twilio_refusing_an_opted_out_number_is_permanent_and_says_why() {
    let server = Server::start().await;
    let twilio = channel(
        "twilio",
        json!({ "auth_token": "tok", "account_sid": "AC123", "from_number": "+15005550006",
                "api_base": server.base }),
    );
    // Twilio's answer to a number that replied STOP.
    server.answer(
        400,
        r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","more_info":"https://www.twilio.com/docs/errors/21610","status":400}"#,
    );
    let error = twilio
        .send(&reply("twilio", "+14155550100", None))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("21610") && text.contains("opted out"),
        "{text}"
    );
    assert_eq!(server.take().len(), 1, "sent once, not retried in place");
    // A rate limit is still worth another attempt.
    server.answer(
        429,
        r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
    );
    let limited = twilio
        .send(&reply("twilio", "+14155550100", None))
        .await
        .unwrap_err();
    assert!(limited.is_transient(), "{limited}");
}

#[tokio::test]
async fn telegram_acknowledges_a_tap_that_needs_no_answer_without_writing() {
    let server = Server::start().await;
    let telegram = channel(
        "telegram",
        json!({ "secret_token": "tok", "bot_token": "4242:SECRET-bot-token", "api_base": server.base }),
    );
    server.answer(200, r#"{"ok":true,"result":true}"#);
    let mut tap = reply("telegram", "4242", None);
    tap.text = String::new();
    tap.reply.reply_token = Some("4382bfdwdsb323b2d9".into());
    telegram.send(&tap).await.unwrap();
    let received = server.take();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/bot4242:SECRET-bot-token/answerCallbackQuery"]);
    assert_eq!(
        received[0].json(),
        json!({ "callback_query_id": "4382bfdwdsb323b2d9" })
    );
    // Without a query to answer, an empty reply is still refused.
    tap.reply.reply_token = None;
    assert!(!telegram.send(&tap).await.unwrap_err().is_transient());
    assert!(server.take().is_empty());
}
