//! The chat notifiers (Slack, Feishu, DingTalk, Teams) against a local server
//! that records what it receives: each platform's format, its signature with
//! known answers, and how its answers are classified.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use serde_json::Value;
use switchboard_channels::notify::{
    ChatHookConfig, ChatHookNotifier, ChatPlatform, TicketFilter, dingtalk_sign, feishu_sign,
};
use switchboard_domain::{
    AgentNotifier, Clock, ConversationKey, EscalationReason, EscalationTicket, Language, Secret,
    Tier,
};

const NOW_MS: i64 = 1_700_000_000_000;

struct FixedClock;

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        NOW_MS
    }
}

#[derive(Clone, Debug)]
struct Received {
    path: String,
    query: String,
    body: Value,
}

/// Records each request; answers with the status and body set for it.
struct Hook {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<(u16, String)>>,
}

impl Hook {
    async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer = Arc::new(Mutex::new((200, "{}".to_owned())));
        let (sink, reply) = (received.clone(), answer.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
            let (sink, reply) = (sink.clone(), reply.clone());
            async move {
                sink.lock().unwrap().push(Received {
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or_default().to_owned(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                let (status, body) = reply.lock().unwrap().clone();
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            received,
            answer,
        }
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }

    fn notifier(
        &self,
        platform: ChatPlatform,
        path: &str,
        secret: Option<&str>,
        tickets: TicketFilter,
    ) -> ChatHookNotifier {
        ChatHookNotifier::new(
            ChatHookConfig {
                platform,
                url: Secret::new(format!("{}{path}", self.base)),
                secret: secret.map(|s| Secret::new(s.to_owned())),
                tickets,
            },
            Some("https://support.shop.example/"),
            reqwest::Client::new(),
            Arc::new(FixedClock),
        )
        .unwrap()
    }
}

fn ticket(tier: Tier, reason: EscalationReason) -> EscalationTicket {
    EscalationTicket {
        ticket_id: "tk-7".into(),
        conversation: ConversationKey::new("telegram", "bot", "42"),
        channel: "telegram".into(),
        customer_id: "42".into(),
        customer_name: Some("Ann".into()),
        tier,
        reason,
        priority: tier == Tier::Vip,
        language: Language::En,
        question: "Where is my parcel? Call +44 7700 900123".into(),
        transcript: Vec::new(),
        candidates: Vec::new(),
        expected_response: "4 hours".into(),
        // Waiting for 12 minutes.
        created_at_ms: NOW_MS - 12 * 60_000,
        correlation_id: None,
    }
}

#[test]
fn signatures_match_known_answers() {
    // Computed with Python's hmac module from the platforms' documented recipes.
    assert_eq!(
        feishu_sign("feishu-secret", "1700000000"),
        "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU="
    );
    assert_eq!(
        dingtalk_sign("SECrobot", "1700000000000"),
        "bIKB+x0yFM4EoCHe1wCXA8llRkoGzraJLkId7Q9UZJ8="
    );
}

#[tokio::test]
async fn each_platform_gets_its_own_format_with_tier_reason_wait_and_link() {
    let hook = Hook::start().await;
    let regular = ticket(Tier::Regular, EscalationReason::NoConfidentMatch);

    hook.answer(200, "ok");
    hook.notifier(ChatPlatform::Slack, "/slack", None, TicketFilter::All)
        .notify(&regular)
        .await
        .unwrap();
    let slack = &hook.take()[0];
    assert_eq!(slack.path, "/slack");
    let fields = slack.body["blocks"][1]["fields"].to_string();
    for fact in [
        "*Tier*\\nregular",
        "*Reason*\\nno_confident_match",
        "*Waiting*\\n12 min",
        "*Conversation*\\ntelegram:bot:42",
    ] {
        assert!(fields.contains(fact), "{fact}: {fields}");
    }
    assert!(
        slack.body["text"]
            .as_str()
            .unwrap()
            .contains("Waiting: 12 min")
    );
    assert!(slack.body.to_string().contains(
        "<https://support.shop.example/api/conversations/telegram:bot:42|Open the conversation>"
    ));
    assert!(!slack.body.to_string().contains("900123"), "masked");

    hook.answer(200, r#"{"code":0,"msg":"success"}"#);
    hook.notifier(
        ChatPlatform::Feishu,
        "/open-apis/bot/v2/hook/abc",
        Some("feishu-secret"),
        TicketFilter::All,
    )
    .notify(&regular)
    .await
    .unwrap();
    let feishu = &hook.take()[0];
    assert_eq!(feishu.body["timestamp"], "1700000000");
    assert_eq!(
        feishu.body["sign"],
        "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU="
    );
    assert_eq!(feishu.body["msg_type"], "interactive");
    assert_eq!(feishu.body["card"]["header"]["template"], "blue");
    let content = feishu.body["card"]["elements"][0]["text"]["content"]
        .as_str()
        .unwrap();
    assert!(content.contains("**Tier**: regular") && content.contains("**Waiting**: 12 min"));

    hook.answer(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    hook.notifier(
        ChatPlatform::Dingtalk,
        "/robot/send?access_token=tok",
        Some("SECrobot"),
        TicketFilter::All,
    )
    .notify(&regular)
    .await
    .unwrap();
    let dingtalk = &hook.take()[0];
    assert_eq!(
        dingtalk.query,
        "access_token=tok&timestamp=1700000000000&sign=bIKB%2Bx0yFM4EoCHe1wCXA8llRkoGzraJLkId7Q9UZJ8%3D"
    );
    assert_eq!(dingtalk.body["msgtype"], "markdown");
    assert!(
        dingtalk.body["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains("- **Reason**: no_confident_match")
    );

    // Teams: a priority-only hook skips the regular ticket and takes the VIP's.
    hook.answer(202, "1");
    let teams = hook.notifier(
        ChatPlatform::Teams,
        "/workflows/run",
        None,
        TicketFilter::Priority,
    );
    teams.notify(&regular).await.unwrap();
    assert!(hook.take().is_empty(), "not for the priority hook");
    teams
        .notify(&ticket(Tier::Vip, EscalationReason::SlaBreach))
        .await
        .unwrap();
    let card = &hook.take()[0].body;
    assert_eq!(card["type"], "message");
    let content = &card["attachments"][0]["content"];
    assert_eq!(
        card["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(content["type"], "AdaptiveCard");
    assert_eq!(
        content["body"][0]["text"],
        "[Switchboard][VIP] SLA breach on telegram"
    );
    assert_eq!(content["body"][0]["color"], "Attention");
    assert!(
        content["body"][1]["facts"]
            .to_string()
            .contains(r#"{"title":"Tier","value":"vip"}"#)
    );
    assert_eq!(content["actions"][0]["type"], "Action.OpenUrl");
}

#[tokio::test]
async fn refusals_inside_200_answers_are_failures() {
    let hook = Hook::start().await;
    let regular = ticket(Tier::Regular, EscalationReason::AskedForHuman);
    let feishu = hook.notifier(ChatPlatform::Feishu, "/hook", Some("s"), TicketFilter::All);
    // A wrong signature: refused for good.
    hook.answer(
        200,
        r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}"#,
    );
    assert!(!feishu.notify(&regular).await.unwrap_err().is_transient());
    // DingTalk's "too fast": try again later.
    let dingtalk = hook.notifier(
        ChatPlatform::Dingtalk,
        "/robot/send?access_token=t",
        None,
        TicketFilter::All,
    );
    hook.answer(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#);
    assert!(dingtalk.notify(&regular).await.unwrap_err().is_transient());
    // Slack: a revoked webhook.
    let slack = hook.notifier(ChatPlatform::Slack, "/s", None, TicketFilter::All);
    hook.answer(404, "no_service");
    assert!(!slack.notify(&regular).await.unwrap_err().is_transient());
    hook.answer(503, "");
    assert!(slack.notify(&regular).await.unwrap_err().is_transient());
}

#[test]
fn configuration_is_checked() {
    let make = |platform, url: &str, secret: Option<&str>| {
        ChatHookNotifier::new(
            ChatHookConfig {
                platform,
                url: Secret::new(url.to_owned()),
                secret: secret.map(|s| Secret::new(s.to_owned())),
                tickets: TicketFilter::All,
            },
            None,
            reqwest::Client::new(),
            Arc::new(FixedClock),
        )
    };
    assert!(make(ChatPlatform::Feishu, "https://open.feishu.cn/x", Some("k")).is_ok());
    assert!(make(ChatPlatform::Feishu, "open.feishu.cn/x", None).is_err());
    assert!(make(ChatPlatform::Feishu, "https://open.feishu.cn/x", Some(" ")).is_err());
    assert!(make(ChatPlatform::Slack, "https://hooks.slack.com/x", Some("k")).is_err());
}
