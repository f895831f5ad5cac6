//! The channels of issue 10 end to end: WhatsApp, Messenger, Instagram,
//! Viber, Discord, X and Twilio against `switchboard serve` with recording
//! stand-ins, and `webhook check` on a signed request of every channel.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_channels::{PublicUrl, registry};
use switchboard_e2e::*;

fn headers_of(request: &switchboard_channels::WebhookRequest) -> Vec<(&str, String)> {
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn whatsapp_message(from: &str, id: &str, text: &str) -> Value {
    remember_text(text);
    json!({ "from": from, "id": id, "timestamp": now_secs().to_string(), "type": "text", "text": { "body": text } })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whatsapp_request_with_three_messages_from_two_customers_gets_three_answers_once() {
    let server = Server::start(Options::default()).await;
    let phone_number_id = setting("whatsapp", "phone_number_id");
    let body = json!({ "object": "whatsapp_business_account", "entry": [
        { "id": "102290129340398", "changes": [{ "field": "messages", "value": { "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": phone_number_id },
            "contacts": [{ "profile": { "name": "Ana" }, "wa_id": "16505550001" }, { "profile": { "name": "王芳" }, "wa_id": "8613800000002" }],
            "messages": [whatsapp_message("16505550001", "wamid.E2E1", "What are your opening hours?"),
                         whatsapp_message("8613800000002", "wamid.E2E2", "你们几点开门？")] } }] },
        { "id": "102290129340398", "changes": [{ "field": "messages", "value": { "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": phone_number_id },
            "messages": [whatsapp_message("16505550001", "wamid.E2E3", "How long does shipping take?")] } }] }
    ] })
    .to_string();
    let request = signed_request("whatsapp", "application/json", &[], body, now_secs() * 1000);
    let (status, _) = server.post_request(&request).await;
    assert_eq!(status, 200);
    let path = format!("/whatsapp/{phone_number_id}/messages");
    let replies = eventually("three whatsapp replies", Duration::from_secs(30), || {
        let replies = server.standin.matching(&path, |_| true);
        (replies.len() >= 3).then_some(replies)
    })
    .await;
    let to = |customer: &str| {
        replies
            .iter()
            .filter(|r| r.body["to"] == customer)
            .collect::<Vec<_>>()
    };
    assert_eq!(to("16505550001").len(), 2, "two answers for Ana");
    let chinese = to("8613800000002");
    assert_eq!(chinese.len(), 1, "one answer for 王芳");
    // A welcome's menu comes as an interactive list, its text as the body.
    let body = &chinese[0].body;
    let text = body["text"]["body"].as_str();
    let text = text
        .or(body["interactive"]["body"]["text"].as_str())
        .unwrap();
    assert!(
        text.contains("周一至周六"),
        "the Chinese customer gets the Chinese answer: {text}"
    );
    assert!(replies.iter().all(|r| r.header("authorization")
        == Some(&format!("Bearer {}", setting("whatsapp", "access_token")))));

    // Meta redelivers the whole request: nothing is answered twice.
    let (status, _) = server.post_request(&request).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.standin.matching(&path, |_| true).len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_handshakes_need_the_verify_token() {
    let server = Server::start(Options::default()).await;
    let client = reqwest::Client::new();
    for channel in ["whatsapp", "messenger", "instagram"] {
        let token = setting(channel, "verify_token");
        let get = |token: String| {
            let url = format!(
                "{}/webhooks/{channel}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}",
                server.base
            );
            client.get(url).send()
        };
        let right = get(token.clone()).await.unwrap();
        assert_eq!(right.status(), 200, "{channel}");
        assert_eq!(right.text().await.unwrap(), "1158201444");
        let wrong = get(format!("{token}x")).await.unwrap();
        assert_eq!(wrong.status(), 403, "{channel}");
    }
    // A Messenger message and an unsigned one.
    let body = json!({ "object": "page", "entry": [{ "id": "PAGE", "time": 1, "messaging": [
        { "sender": { "id": "PSID1" }, "recipient": { "id": "PAGE" }, "timestamp": now_secs() * 1000,
          "message": { "mid": "m_e2e_1", "text": "How long does shipping take?" } }] }] })
    .to_string();
    remember_text("How long does shipping take?");
    let (status, _) = server
        .post(
            "/webhooks/messenger",
            &[("content-type", "application/json".into())],
            body.clone(),
        )
        .await;
    assert_eq!(status, 401, "unsigned");
    let request = signed_request(
        "messenger",
        "application/json",
        &[],
        body,
        now_secs() * 1000,
    );
    assert_eq!(server.post_request(&request).await.0, 200);
    let replies = eventually("messenger reply", Duration::from_secs(20), || {
        let replies = server.standin.matching("/messenger/me/messages", |_| true);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    assert_eq!(replies[0].body["recipient"]["id"], "PSID1");
    assert_eq!(replies[0].body["messaging_type"], "RESPONSE");
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_refuses_bad_signatures_answers_ping_and_follows_up_on_support() {
    let server = Server::start(Options::default()).await;
    let ping = json!({ "type": 1, "id": "1", "application_id": setting("discord", "application_id"), "token": "t", "version": 1 }).to_string();
    let signed = signed_request(
        "discord",
        "application/json",
        &[],
        ping.clone(),
        now_secs() * 1000,
    );
    let (status, answer) = server.post_request(&signed).await;
    assert_eq!((status, answer), (200, json!({ "type": 1 })));
    // Discord's probe: the same PING with a signature that does not verify.
    let mut headers = headers_of(&signed);
    for (name, value) in headers.iter_mut() {
        if *name == "x-signature-ed25519" {
            let first = if value.starts_with('0') { "1" } else { "0" };
            *value = format!("{first}{}", &value[1..]);
        }
    }
    let (status, _) = server
        .post("/webhooks/discord", &headers, ping.clone())
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .post(
            "/webhooks/discord",
            &[("content-type", "application/json".into())],
            ping,
        )
        .await;
    assert_eq!(status, 401, "unsigned");

    let channel = channel("discord");
    let question = "What are your opening hours?";
    remember_text(question);
    let mut request = channel.sample("53908232506183680", question, now_secs() * 1000);
    *request.uri_mut() = "/webhooks/discord".parse().unwrap();
    channel.sign(&mut request, now_secs() * 1000).unwrap();
    let (status, answer) = server.post_request(&request).await;
    assert_eq!((status, answer), (200, json!({ "type": 5 })), "deferred");
    let token: Value = serde_json::from_slice(request.body()).unwrap();
    let path = format!(
        "/discord/webhooks/{}/{}",
        setting("discord", "application_id"),
        token["token"].as_str().unwrap()
    );
    let replies = eventually("discord follow-up", Duration::from_secs(20), || {
        let replies = server.standin.matching(&path, |_| true);
        (!replies.is_empty()).then_some(replies)
    })
    .await;
    assert!(
        replies[0].body["content"]
            .as_str()
            .unwrap()
            .contains("Monday to Saturday")
    );
    // Handed to a person, then asked again at once: Discord shows "thinking"
    // until a follow-up comes, so even the follow-up the bot would otherwise
    // leave to the person gets one.
    for (n, text) in ["I want to talk to a person", "Are you still there?"]
        .into_iter()
        .enumerate()
    {
        remember_text(text);
        let at_ms = now_secs() * 1000 + 1 + n as i64;
        let mut request = channel.sample("53908232506183680", text, at_ms);
        *request.uri_mut() = "/webhooks/discord".parse().unwrap();
        channel.sign(&mut request, at_ms).unwrap();
        assert_eq!(server.post_request(&request).await.0, 200);
        let interaction: Value = serde_json::from_slice(request.body()).unwrap();
        let path = format!(
            "/discord/webhooks/{}/{}",
            setting("discord", "application_id"),
            interaction["token"].as_str().unwrap()
        );
        eventually(text, Duration::from_secs(20), || {
            (!server.standin.matching(&path, |_| true).is_empty()).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_requests_signed_for_another_url_are_refused() {
    let server = Server::start(Options::default()).await;
    let channel = channel("twilio");
    let text = "How long does shipping take?";
    remember_text(text);
    let sign_for = |url: String| {
        let mut request = channel.sample("+14155550123", text, now_secs() * 1000);
        request.extensions_mut().insert(PublicUrl(url));
        channel.sign(&mut request, 0).unwrap();
        request
    };
    let elsewhere = sign_for("https://attacker.example/webhooks/twilio".into());
    assert_eq!(server.post_request(&elsewhere).await.0, 401);
    let right = sign_for(format!("{}/webhooks/twilio", server.base));
    let (status, answer) = server.post_request(&right).await;
    assert_eq!(status, 200);
    assert!(
        answer
            .as_str()
            .is_some_and(|twiml| twiml.contains("<Response/>")),
        "{answer}"
    );
    let path = format!(
        "/twilio/2010-04-01/Accounts/{}/Messages.json",
        setting("twilio", "account_sid")
    );
    eventually("twilio reply", Duration::from_secs(20), || {
        (!server.standin.matching(&path, |_| true).is_empty()).then_some(())
    })
    .await;
    // Twilio retries the same MessageSid: no second reply.
    assert_eq!(server.post_request(&right).await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.standin.matching(&path, |_| true).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn viber_and_x_set_up_and_answer() {
    let server = Server::start(Options::default()).await;
    let webhook = json!({ "event": "webhook", "timestamp": now_secs() * 1000, "message_token": 241256543215_u64 }).to_string();
    let signed = signed_request("viber", "application/json", &[], webhook, now_secs() * 1000);
    assert_eq!(server.post_request(&signed).await.0, 200);
    let crc = reqwest::get(format!(
        "{}/webhooks/x?crc_token=NjRhZDlkZjQtM2YzZS00NGRl",
        server.base
    ))
    .await
    .unwrap();
    assert_eq!(crc.status(), 200);
    let crc: Value = crc.json().await.unwrap();
    let get = switchboard_channels::kit::build_request(
        "GET",
        "/webhooks/x?crc_token=NjRhZDlkZjQtM2YzZS00NGRl",
        &[],
        "",
    )
    .unwrap();
    let answer = channel("x").handshake(&get, 0).unwrap().unwrap();
    let expected: Value = serde_json::from_slice(answer.body()).unwrap();
    let expected = &expected["response_token"];
    let mac = hmac_base64(
        &setting("x", "consumer_secret"),
        b"NjRhZDlkZjQtM2YzZS00NGRl",
    );
    assert_eq!(expected.as_str(), Some(format!("sha256={mac}").as_str()));
    assert_eq!(&crc["response_token"], expected);
    for (name, path) in [
        ("viber", "/viber/send_message"),
        ("x", "/x/2/dm_conversations/with/3001969357/messages"),
    ] {
        let text = "What are your opening hours?";
        remember_text(text);
        let customer = if name == "x" {
            "3001969357"
        } else {
            "01234567890A="
        };
        let mut request = channel(name).sample(customer, text, now_secs() * 1000);
        *request.uri_mut() = format!("/webhooks/{name}").parse().unwrap();
        channel(name).sign(&mut request, now_secs() * 1000).unwrap();
        assert_eq!(server.post_request(&request).await.0, 200, "{name}");
        let replies = eventually(name, Duration::from_secs(20), || {
            let replies = server.standin.matching(path, |_| true);
            (!replies.is_empty()).then_some(replies)
        })
        .await;
        assert!(
            replies[0].body["text"]
                .as_str()
                .unwrap()
                .contains("Monday to Saturday"),
            "{name}"
        );
    }
}

/// `webhook check` verifies and normalises a signed request of every channel
/// with the verification settings alone, and refuses it under another secret.
#[test]
fn webhook_check_reads_every_channel() {
    let dir = tempfile::tempdir().unwrap();
    let url = "https://support.example.com/webhooks/check";
    for spec in registry::CHANNELS {
        let name = spec.name;
        let text = "Where is my order? 我的订单在哪里？";
        let channel = channel(name);
        let customer = if spec.function == switchboard_channels::kit::Function::IngressEmail {
            "customer@example.com"
        } else {
            "10001"
        };
        let mut request = channel.sample(customer, text, now_secs() * 1000);
        request.extensions_mut().insert(PublicUrl(url.into()));
        channel.sign(&mut request, now_secs() * 1000).unwrap();
        let body = dir.path().join(format!("{name}.body"));
        std::fs::write(&body, request.body()).unwrap();
        // Some providers sign the query string (WeChat, WeCom): check the URL as called.
        let called = match request.uri().query() {
            Some(query) => format!("{url}?{query}"),
            None => url.to_owned(),
        };
        let url = called.as_str();
        let ours = channel_settings("http://127.0.0.1:9");
        // Another deployment's settings: valid, but other secrets and keys.
        let theirs = registry::dev_settings("another-seed", SUPPORT_ADDRESS, |_| {
            "http://127.0.0.1:9".into()
        });
        let run = |foreign: bool| {
            let settings = if foreign { &theirs } else { &ours };
            let mut command = Command::new(switchboard_bin());
            command
                .args(["webhook", "check", "--channel", name, "--url", url])
                .arg("--body-file")
                .arg(&body);
            // The verification settings, and the optional ones that change what
            // is verified (WeChat's safe mode needs its `encoding_aes_key`).
            for setting in spec.settings.iter().filter(|s| {
                matches!(
                    s.need,
                    switchboard_channels::kit::Need::Verify
                        | switchboard_channels::kit::Need::Optional
                )
            }) {
                if let Some(value) = settings[name][setting.name].as_str() {
                    command
                        .arg("--secret")
                        .arg(format!("{}={value}", setting.name));
                }
            }
            for (header, value) in request.headers() {
                command
                    .arg("--header")
                    .arg(format!("{header}: {}", value.to_str().unwrap()));
            }
            let output = command.output().unwrap();
            let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            (
                output.status.code(),
                report,
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        let (code, report, stderr) = run(false);
        assert_eq!(code, Some(0), "{name}: {report} {stderr}");
        assert_eq!(report["messages"][0]["channel"], name, "{name}: {report}");
        assert!(
            report["messages"][0]["text"]
                .as_str()
                .unwrap()
                .contains("我的订单"),
            "{name}: {report}"
        );
        // SNS signs with AWS's certificate, the same for every deployment; SES
        // is bound to one by its topic, which development settings share.
        if name == "ses" {
            continue;
        }
        let (code, report, stderr) = run(true);
        assert_eq!(
            code,
            Some(1),
            "{name}: another secret must not verify: {report} {stderr}"
        );
    }
}

fn hmac_base64(key: &str, message: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    base64_encode(&mac.finalize().into_bytes())
}

/// Standard base64 with padding (the test's own, to check the server's).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}
