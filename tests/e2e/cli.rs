use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchboard_channels::registry;
use switchboard_e2e::*;

fn check(dir: &std::path::Path, body: &str, extra: &[&str]) -> (i32, Value, String) {
    let file = dir.join("body.json");
    std::fs::write(&file, body).unwrap();
    let output = Command::new(switchboard_bin())
        .args([
            "webhook",
            "check",
            "--channel",
            "slack",
            "--secret",
            &format!("signing_secret={}", setting("slack", "signing_secret")),
        ])
        .arg("--body-file")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.code().unwrap(),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn webhook_check_verifies_and_normalises_a_captured_request() {
    let dir = tempfile::tempdir().unwrap();
    let body = slack_event("Ev1", "U1", "D1", "1700000000.000100", "Where is my order?");
    let ts = "1700000000";
    let signature = format!(
        "v0={}",
        hmac_hex(
            &setting("slack", "signing_secret"),
            &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]
        )
    );
    let headers = [
        "--header".to_owned(),
        format!("X-Slack-Request-Timestamp: {ts}"),
        "--header".to_owned(),
        format!("X-Slack-Signature: {signature}"),
    ];
    let mut args: Vec<&str> = headers.iter().map(String::as_str).collect();
    args.extend(["--now", "1700000100"]);

    let (code, report, _) = check(dir.path(), &body, &args);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verified"], true);
    assert_eq!(report["messages"][0]["text"], "Where is my order?");
    assert_eq!(report["messages"][0]["customer_id"], "U1");

    // The same request ten minutes later is outside the replay window.
    let mut late = args.clone();
    *late.last_mut().unwrap() = "1700000700";
    let (code, report, _) = check(dir.path(), &body, &late);
    assert_eq!(code, 1);
    assert_eq!(report["verified"], false);
    assert!(report["reason"].as_str().unwrap().contains("window"));

    // A byte changed in the body.
    let (code, report, _) = check(dir.path(), &body.replace("order", "0rder"), &args);
    assert_eq!((code, report["verified"].clone()), (1, Value::Bool(false)));

    // Bad usage.
    let (code, _, stderr) = check(dir.path(), &body, &["--header", "no colon here"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Name: value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_shows_a_newcomer_the_whole_loop_in_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut server = Command::new(switchboard_bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually("server up", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    })
    .await;
    let _ = &base;
    let simulate = |channel: &'static str, text: &'static str| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(switchboard_bin())
                .arg("--config")
                .arg(&config)
                .args([
                    "simulate",
                    "--channel",
                    channel,
                    "--text",
                    text,
                    "--wait",
                    "5",
                ])
                .output()
                .unwrap()
        })
    };
    let output = simulate("telegram", "How long does shipping take?")
        .await
        .unwrap();
    // Every channel of the registry works in development mode.
    let mut others = Vec::new();
    let every_other = registry::known_channels().filter(|name| *name != "telegram");
    for channel in every_other {
        others.push((
            channel,
            simulate(channel, "What are your opening hours?")
                .await
                .unwrap(),
        ));
    }
    // A question for a person, then a follow-up while a person has the conversation.
    let handed_over = simulate("webchat", "Do you repair 1987 blenders?")
        .await
        .unwrap();
    let follow_up = simulate("webchat", "Hello, anyone there?").await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    for (channel, output) in others {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{channel}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("webhook answered 200"),
            "{channel}: {stdout}"
        );
    }
    let stdout = String::from_utf8_lossy(&handed_over.stdout);
    assert!(
        stdout.contains("passed your message to our support team"),
        "{stdout}"
    );
    let stdout = String::from_utf8_lossy(&follow_up.stdout);
    assert!(
        follow_up.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&follow_up.stderr)
    );
    assert!(stdout.contains("is with a person"), "{stdout}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("webhook answered 200"), "{stdout}");
    assert!(
        stdout.contains("reply on telegram:") && stdout.contains("working day"),
        "{stdout}"
    );
}
