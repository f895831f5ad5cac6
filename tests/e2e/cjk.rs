//! LINE, WeChat, WeCom, Feishu and DingTalk against `switchboard serve`: a
//! signed (and, where the provider encrypts, encrypted) Chinese question gets
//! the Chinese FAQ answer through the provider's documented reply call, with
//! a cached access token; the same request delivered again gets no second
//! reply; an unanswerable question reaches the agents' mailbox and the
//! customer is told so in Chinese.

use std::time::Duration;

use serde_json::Value;
use switchboard_channels::WebhookRequest;
use switchboard_e2e::*;

/// How one provider's replies look at the stand-in.
struct Provider {
    channel: &'static str,
    /// The reply call's path, after `/<channel>`.
    reply_path: &'static str,
    /// The token endpoint's path, where the provider's tokens expire.
    token_path: Option<&'static str>,
    text: fn(&Recorded) -> String,
}

fn pointer(recorded: &Recorded, pointer: &str) -> String {
    recorded
        .body
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A customer's message as the provider sends it, signed (and encrypted) with
/// the development settings the server runs with.
fn delivery(channel_name: &str, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
    let channel = channel(channel_name);
    let mut request = channel.sample(customer, text, now_ms);
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    *request.uri_mut() = format!("/webhooks/{channel_name}{query}").parse().unwrap();
    channel.sign(&mut request, now_ms).unwrap();
    request
}

async fn answered_in_chinese_once_and_escalated(provider: Provider) {
    let name = provider.channel;
    let server = Server::start(Options::default()).await;
    let now_ms = now_secs() * 1000;
    let prefix = format!("/{name}/");
    let replies = || {
        let ours = |r: &Recorded| r.path.starts_with(&prefix);
        server.standin.matching(provider.reply_path, ours)
    };

    let question = delivery(name, "cust-zh-1", "你们几点开门？", now_ms);
    let (status, _) = server.post_request(&question).await;
    assert_eq!(status, 200, "{name}");
    let first = eventually("answer", Duration::from_secs(20), || {
        let replies = replies();
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    let answer = (provider.text)(&first[0]);
    assert!(
        answer.contains("周一至周六"),
        "{name}: Chinese FAQ answer: {answer}"
    );

    // The same delivery again (the provider's retry): accepted, not answered again.
    let (status, _) = server.post_request(&question).await;
    assert_eq!(status, 200, "{name}: redelivery");

    remember_text("我的鹦鹉把搅拌机的保修卡吃掉了，现在怎么办");
    let unanswerable = delivery(
        name,
        "cust-zh-1",
        "我的鹦鹉把搅拌机的保修卡吃掉了，现在怎么办",
        now_ms + 7,
    );
    let (status, _) = server.post_request(&unanswerable).await;
    assert_eq!(status, 200, "{name}");
    let mails = server.smtp.wait_for(1).await;
    let mail = mail_text(&mails[0]);
    assert!(
        mail.contains("保修卡"),
        "{name}: the agents get the question: {mail}"
    );
    assert!(
        mail_header(&mails[0], "Subject").unwrap().contains(name),
        "{name}"
    );
    let all = eventually("hand-over notice", Duration::from_secs(20), || {
        let replies = replies();
        (replies.len() >= 2).then_some(replies)
    })
    .await;
    let notice = (provider.text)(&all[1]);
    assert!(
        notice.contains("人工客服"),
        "{name}: a Chinese hand-over notice: {notice}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replies().len(),
        2,
        "{name}: the redelivered question got no second answer"
    );
    if let Some(token_path) = provider.token_path {
        let fetched = server
            .standin
            .matching(token_path, |r| r.path.starts_with(&format!("/{name}/")));
        assert_eq!(
            fetched.len(),
            1,
            "{name}: one access token, cached for both replies"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn line_answers_with_the_reply_token() {
    answered_in_chinese_once_and_escalated(Provider {
        channel: "line",
        reply_path: "/v2/bot/message/reply",
        token_path: None,
        text: |r| pointer(r, "/messages/0/text"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wechat_answers_encrypted_messages_through_the_customer_service_api() {
    answered_in_chinese_once_and_escalated(Provider {
        channel: "wechat",
        reply_path: "/cgi-bin/message/custom/send",
        token_path: Some("/cgi-bin/token"),
        text: |r| {
            assert!(
                r.query.contains("access_token=stand-in-token"),
                "{}",
                r.query
            );
            pointer(r, "/text/content")
        },
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_answers_through_message_send() {
    answered_in_chinese_once_and_escalated(Provider {
        channel: "wecom",
        reply_path: "/cgi-bin/message/send",
        token_path: Some("/cgi-bin/gettoken"),
        text: |r| {
            assert!(
                r.query.contains("access_token=stand-in-token"),
                "{}",
                r.query
            );
            assert_eq!(r.body["agentid"], 1000002);
            pointer(r, "/text/content")
        },
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_replies_to_the_message_with_a_tenant_token() {
    answered_in_chinese_once_and_escalated(Provider {
        channel: "feishu",
        reply_path: "/reply",
        token_path: Some("/open-apis/auth/v3/tenant_access_token/internal"),
        text: |r| {
            assert_eq!(r.header("authorization"), Some("Bearer stand-in-token"));
            let content: Value = serde_json::from_str(&pointer(r, "/content")).unwrap();
            if pointer(r, "/msg_type") != "interactive" {
                return content["text"].as_str().unwrap_or_default().to_owned();
            }
            // An answer asking "helpful?": a card, the text then the buttons.
            let buttons = &content["elements"][1]["actions"];
            assert_eq!(buttons[1]["value"]["choice"], "2", "{content}");
            let text = &content["elements"][0]["text"]["content"];
            text.as_str().unwrap_or_default().to_owned()
        },
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_answers_on_the_session_webhook() {
    answered_in_chinese_once_and_escalated(Provider {
        channel: "dingtalk",
        reply_path: "/robot/sendBySession",
        token_path: None,
        text: |r| match pointer(r, "/msgtype").as_str() {
            // An answer asking "helpful?": an action card whose buttons send 1 or 2.
            "actionCard" => {
                let button = pointer(r, "/actionCard/btns/1/actionURL");
                assert_eq!(button, "dtmd://dingtalkclient/sendMessage?content=2");
                pointer(r, "/actionCard/text")
            }
            _ => pointer(r, "/text/content"),
        },
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handshakes_are_answered_by_the_server() {
    let server = Server::start(Options::default()).await;
    // WeChat's URL check: the echostr back, once the signature holds.
    let now_ms = now_secs() * 1000;
    let wechat = channel("wechat");
    let mut check = switchboard_channels::kit::build_request(
        "GET",
        "/webhooks/wechat?echostr=4975731238274234",
        &[] as &[(String, String)],
        Vec::new(),
    )
    .unwrap();
    wechat.sign(&mut check, now_ms).unwrap();
    let path = check.uri().path_and_query().unwrap().as_str().to_owned();
    let response = reqwest::get(format!("{}{path}", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "4975731238274234");
    // The signature covers token, timestamp and nonce (not `echostr`).
    let forged = path.replace("nonce=", "nonce=1");
    let response = reqwest::get(format!("{}{forged}", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Feishu's challenge, encrypted with the Encrypt Key and carrying the token.
    let token = setting("feishu", "verification_token");
    let body = serde_json::json!({ "challenge": "ajls384kdjx98XX", "token": token, "type": "url_verification" });
    let request = signed_request("feishu", "application/json", &[], body.to_string(), now_ms);
    let (status, answer) = server.post_request(&request).await;
    assert_eq!(
        (status, answer["challenge"].as_str()),
        (200, Some("ajls384kdjx98XX"))
    );

    // LINE's "Verify" button: signed, no events; answered 200, nothing sent.
    let body = r#"{"destination":"Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","events":[]}"#;
    let request = signed_request("line", "application/json", &[], body, now_ms);
    let (status, _) = server.post_request(&request).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server
            .standin
            .matching("", |r| r.path.starts_with("/line/"))
            .is_empty()
    );
}

/// `webhook check` verifies, decrypts and normalises each provider's request
/// offline, with the settings given as `--secret NAME=VALUE`.
#[test]
fn webhook_check_reads_each_providers_request() {
    let dir = tempfile::tempdir().unwrap();
    let now_ms = 1_700_000_000_000;
    let settings = channel_settings("http://127.0.0.1:9");
    for name in ["line", "wechat", "wecom", "feishu", "dingtalk"] {
        let request = delivery(name, "cust-check", "退货要多久？", now_ms);
        let check = |now: &str, body: &[u8]| {
            let file = dir.path().join(format!("{name}.body"));
            std::fs::write(&file, body).unwrap();
            let mut command = std::process::Command::new(switchboard_bin());
            let query = request
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            command.args(["webhook", "check", "--channel", name, "--now", now]);
            command.args([
                "--url",
                &format!("https://shop.example/webhooks/{name}{query}"),
            ]);
            command.arg("--body-file").arg(&file);
            for (header, value) in request.headers() {
                command.args([
                    "--header",
                    &format!("{header}: {}", value.to_str().unwrap()),
                ]);
            }
            for (key, value) in settings[name].as_object().unwrap() {
                if let Some(value) = value.as_str() {
                    command.args(["--secret", &format!("{key}={value}")]);
                }
            }
            let output = command.output().unwrap();
            let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            (output.status.code(), report)
        };
        let (code, report) = check("1700000005", request.body());
        assert_eq!(code, Some(0), "{name}: {report}");
        assert_eq!(
            report["messages"][0]["text"], "退货要多久？",
            "{name}: {report}"
        );
        assert_eq!(report["messages"][0]["channel"], name);
        // LINE signs the body but no time; the others sign a time.
        let (code, report) = match name {
            "line" => check("1700000005", &[request.body().as_ref(), b" "].concat()),
            _ => check("1700009000", request.body()),
        };
        assert_eq!(
            (code, &report["verified"]),
            (Some(1), &Value::Bool(false)),
            "{name}: {report}"
        );
    }
}
