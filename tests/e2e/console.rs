//! The agents' console (`GET /console`) in headless Chromium, driven by
//! playwright-core (`tests/browser/console.js`) against `switchboard serve`
//! and the stand-in Telegram API: sign in, escalations listed within 5 s, a
//! VIP above an older regular, a reply delivered exactly once, resolve, a
//! customer's `<script>` shown as text, a change without the CSRF token
//! refused, the customer's earlier conversation listed and opened. Screenshots go to `target/console-screenshots/`.
//!
//! Needs SWITCHBOARD_CHROMIUM and SWITCHBOARD_PLAYWRIGHT
//! (`eval "$(tests/services/browser.sh env)"`; `tests/run.sh` exports them).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_e2e::{
    AGENT_TOKEN, Options, Server, now_secs, signed_request, telegram_bot_token, telegram_update,
};

const REGULAR_CHAT: i64 = 8801;
const VIP_CHAT: i64 = 8802;
/// A group in which the regular customer wrote before: another conversation
/// of the same customer, listed among the earlier ones.
const REGULAR_GROUP: i64 = -8801;
const GROUP_QUESTION: &str = "Do you ship to Norway?";

fn conversation(chat_id: i64) -> String {
    let bot = telegram_bot_token();
    format!("telegram:{}:{chat_id}", bot.split(':').next().unwrap())
}

/// A signed Telegram webhook as the browser script posts it.
fn signed_webhook(update: &Value) -> Value {
    let request = signed_request(
        "telegram",
        "application/json",
        &[],
        update.to_string(),
        now_secs() * 1000,
    );
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().into()))
        .collect();
    json!({
        "headers": headers,
        "body": String::from_utf8(request.body().to_vec()).unwrap(),
    })
}

fn browser_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `tests/services/browser.sh install` and \
             `eval \"$(tests/services/browser.sh env)\"` (tests/run.sh does both)"
        )
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_lists_answers_and_resolves_in_a_real_browser() {
    let chromium = browser_env("SWITCHBOARD_CHROMIUM");
    let playwright = browser_env("SWITCHBOARD_PLAYWRIGHT");
    let server = Server::start(Options {
        vip_customers: vec![format!("telegram:{VIP_CHAT}")],
        report_url: Some("/reports/switchboard.html".into()),
        ..Options::default()
    })
    .await;
    // The older customer is a regular one.
    let response = reqwest::Client::new()
        .put(format!(
            "{}/api/customers/telegram:{REGULAR_CHAT}",
            server.base
        ))
        .bearer_auth(AGENT_TOKEN)
        .json(&json!({ "tier": "regular" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The regular asked the bot something first: the transcript shows the FAQ entry it answered from.
    let (status, _) = server
        .post_telegram(&telegram_update(
            88_000,
            REGULAR_CHAT,
            "How long does shipping take?",
        ))
        .await;
    assert_eq!(status, 200);
    switchboard_e2e::eventually("the bot's answer", Duration::from_secs(20), || {
        (!server.telegram_replies(REGULAR_CHAT).is_empty()).then_some(())
    })
    .await;

    // The same customer wrote in a group before: an earlier conversation.
    let mut in_group = telegram_update(87_999, REGULAR_GROUP, GROUP_QUESTION);
    in_group["message"]["from"]["id"] = json!(REGULAR_CHAT);
    in_group["message"]["chat"] =
        json!({ "id": REGULAR_GROUP, "title": "Ana's team", "type": "group" });
    let (status, _) = server.post_telegram(&in_group).await;
    assert_eq!(status, 200);
    switchboard_e2e::eventually(
        "the bot's answer in the group",
        Duration::from_secs(20),
        || (!server.telegram_replies(REGULAR_GROUP).is_empty()).then_some(()),
    )
    .await;
    // Handed over and resolved by an agent: out of the queue, not forgotten.
    // The reply can go out a moment before the worker has saved the
    // conversation (404 until then).
    let resolve_url = format!(
        "{}/api/conversations/{}/resolve",
        server.base,
        conversation(REGULAR_GROUP)
    );
    switchboard_e2e::until("the resolve", Duration::from_secs(20), || async {
        let response = reqwest::Client::new()
            .post(&resolve_url)
            .bearer_auth(AGENT_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => Some(()),
            404 => None,
            other => panic!("resolve answered {other}"),
        }
    })
    .await;

    let webhooks = json!({
        "regular": signed_webhook(&telegram_update(
            88_001,
            REGULAR_CHAT,
            "I want to talk to a human please",
        )),
        "vip": signed_webhook(&telegram_update(
            88_002,
            VIP_CHAT,
            "I want to talk to a human please <script>window.pwned = 1</script>",
        )),
    });
    let webhooks_path = server.dir.path().join("webhooks.json");
    std::fs::write(&webhooks_path, webhooks.to_string()).unwrap();
    let shots = target_dir().join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for old in ["queue.png", "conversation.png", "earlier.png"] {
        let _ = std::fs::remove_file(shots.join(old));
    }
    let reply_text = "Hello, this is Lee from support: your parcel left today.";
    switchboard_e2e::remember_text(reply_text);

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/console.js");
    let output = tokio::task::spawn_blocking({
        let base = server.base.clone();
        let shots = shots.clone();
        move || {
            Command::new("node")
                .arg(script)
                .env("SWITCHBOARD_CHROMIUM", chromium)
                .env("SWITCHBOARD_PLAYWRIGHT", playwright)
                .env("CONSOLE_BASE", base)
                .env("CONSOLE_TOKEN", AGENT_TOKEN)
                .env("CONSOLE_WEBHOOKS", webhooks_path)
                .env("CONSOLE_SCREENSHOTS", shots)
                .env("CONSOLE_REPLY", reply_text)
                .env("CONSOLE_REGULAR", conversation(REGULAR_CHAT))
                .env("CONSOLE_VIP", conversation(VIP_CHAT))
                .env("CONSOLE_EARLIER", conversation(REGULAR_GROUP))
                .env("CONSOLE_EARLIER_TEXT", GROUP_QUESTION)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log()
    );
    let figures: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .expect("the script prints its figures");
    println!("console figures: {figures}");
    println!("screenshots: {}", shots.display());
    for shot in ["queue.png", "conversation.png", "earlier.png"] {
        let size = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "{shot} saved ({size} bytes)");
    }
    assert!(figures["regular_listed_ms"].as_u64().unwrap() <= 5000);
    assert!(figures["vip_listed_ms"].as_u64().unwrap() <= 5000);

    // The reply reached Telegram exactly once, even though it was posted twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent: Vec<_> = server
        .telegram_replies(VIP_CHAT)
        .into_iter()
        .filter(|r| {
            r.body["text"]
                .as_str()
                .is_some_and(|t| t.contains(reply_text))
        })
        .collect();
    assert_eq!(sent.len(), 1, "the agent's reply sent once: {sent:?}");
    // Resolved, and the regular still waits.
    let list = server.get_json("/api/conversations", AGENT_TOKEN).await;
    let keys: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [conversation(REGULAR_CHAT)]);
}
