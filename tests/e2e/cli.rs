use std::process::Command;
use std::time::Duration;

use serde_json::Value;
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
    // `switchboard simulate ARGS` against the running server
    let run = |args: Vec<&'static str>| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(switchboard_bin())
                .arg("--config")
                .arg(&config)
                .arg("simulate")
                .args(args)
                .output()
                .unwrap()
        })
    };
    let simulate = |channel: &'static str, text: &'static str| {
        run(vec!["--channel", channel, "--text", text, "--wait", "5"])
    };
    let output = simulate("telegram", "How long does shipping take?")
        .await
        .unwrap();
    // Every channel of the registry works in development mode.
    let mut others = Vec::new();
    let channels = switchboard_channels::registry::known_channels().filter(|c| *c != "telegram");
    for channel in channels {
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
    let blank = run(vec!["--channel", "telegram", "--text", " "])
        .await
        .unwrap();
    // Telegram's ids are numbers, email's are addresses.
    let mut misfits = Vec::new();
    for (channel, customer) in [("telegram", "sim123"), ("postmark", "not-an-address")] {
        let args = vec!["--channel", channel, "--customer", customer, "--text", "Hi"];
        misfits.push(run(args).await.unwrap());
    }
    let unanswered = run(vec![
        "--channel",
        "telegram",
        "--customer",
        "30003",
        "--text",
        "Hi",
        "--wait",
        "0",
    ])
    .await
    .unwrap();
    // Nobody reads the output any more (`| head -0`): a quiet end, no panic.
    let unread = tokio::task::spawn_blocking(move || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Command::new(switchboard_bin())
            .arg("--config")
            .arg(&config)
            .args([
                "simulate",
                "--channel",
                "slack",
                "--text",
                "Hi",
                "--wait",
                "1",
            ])
            .stdout(writer)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
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
        // The reply's text as the customer reads it, whatever the payload's shape
        // (DingTalk's action card, WhatsApp's interactive message, Feishu's card).
        let email = switchboard_channels::registry::spec(channel)
            .is_some_and(|spec| spec.function == switchboard_channels::kit::Function::IngressEmail);
        let reply = stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("reply on {channel}: ")));
        let readable = |text: &str| !text.trim().is_empty() && !text.starts_with('{');
        assert!(
            email || (reply.is_some_and(readable) && stdout.contains("Our shop and support team")),
            "{channel}: {stdout}"
        );
    }
    // A blank message is refused before anything is posted.
    let stderr = String::from_utf8_lossy(&blank.stderr);
    assert!(
        blank.status.code() == Some(2) && stderr.contains("empty"),
        "{:?} {stderr}",
        blank.status
    );
    assert!(!String::from_utf8_lossy(&blank.stdout).contains("webhook answered"));
    // A customer id the channel cannot have: a usage error, nothing posted.
    for misfit in misfits {
        let stderr = String::from_utf8_lossy(&misfit.stderr);
        assert!(
            misfit.status.code() == Some(2) && stderr.contains("--customer"),
            "{:?} {stderr}",
            misfit.status
        );
        assert!(!String::from_utf8_lossy(&misfit.stdout).contains("webhook answered"));
    }
    // No reply in time: said so, with its own exit status.
    let stdout = String::from_utf8_lossy(&unanswered.stdout);
    assert!(
        unanswered.status.code() == Some(3) && stdout.contains("no reply within 0 s"),
        "{:?} {stdout}",
        unanswered.status
    );
    let stderr = String::from_utf8_lossy(&unread.stderr);
    assert!(
        matches!(unread.status.code(), Some(0 | 141)) && !stderr.contains("panicked"),
        "{:?} {stderr}",
        unread.status
    );
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

/// `webhook check` for any channel: exit code and report.
fn check_channel(
    dir: &std::path::Path,
    channel: &str,
    body: &[u8],
    args: &[String],
) -> (i32, Value) {
    let file = dir.join(format!("{channel}-body"));
    std::fs::write(&file, body).unwrap();
    let output = Command::new(switchboard_bin())
        .args(["webhook", "check", "--channel", channel])
        .args(args)
        .arg("--body-file")
        .arg(&file)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap(), report)
}

fn data(path: &str) -> String {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/channels/tests/data");
    std::fs::read_to_string(root.join(path)).unwrap()
}

#[test]
fn webhook_check_verifies_ses_through_sns_offline_with_a_pinned_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // A message AWS signed (SignatureVersion 1) with its SNS certificate.
    let messages: Vec<Value> = serde_json::from_str(&data("sns/aws-sns-2022.json")).unwrap();
    let aws = messages[0].to_string();
    let args = |topic: &str, pem: &str, now: &str| {
        vec![
            "--secret".to_owned(),
            format!("topic_arn={topic}"),
            "--secret".to_owned(),
            format!("signing_cert_pem={pem}"),
            "--now".to_owned(),
            now.to_owned(),
        ]
    };
    let topic = messages[0]["TopicArn"].as_str().unwrap();
    let aws_pem = data("sns/aws-sns-2022.pem");
    let (code, report) = check_channel(
        dir.path(),
        "ses",
        aws.as_bytes(),
        &args(topic, &aws_pem, "1659049200"),
    );
    // Authentic, but "Hello world" is not an SES notification.
    assert_eq!(
        (code, &report["verified"]),
        (3, &Value::Bool(true)),
        "{report}"
    );
    let changed = aws.replace("Hello world", "Hello World");
    let (code, report) = check_channel(
        dir.path(),
        "ses",
        changed.as_bytes(),
        &args(topic, &aws_pem, "1659049200"),
    );
    assert_eq!(
        (code, &report["verified"]),
        (1, &Value::Bool(false)),
        "{report}"
    );
    let (code, _) = check_channel(
        dir.path(),
        "ses",
        aws.as_bytes(),
        &args("arn:aws:sns:us-east-2:1:other", &aws_pem, "1659049200"),
    );
    assert_eq!(code, 1, "another topic");

    // An SES notification signed with a test certificate is normalised.
    let cert = data("sns/test-signing-cert.pem");
    let settings = serde_json::json!({
        "topic_arn": "arn:aws:sns:us-east-1:012345678912:example-topic",
        "from_address": "support@shop.test",
        "signing_cert_pem": cert,
        "signing_key_pem": data("sns/test-signing-key.pem"),
    });
    let ses = switchboard_channels::registry::build(
        "ses",
        &settings,
        &switchboard_channels::ChannelDeps::offline(),
    )
    .unwrap();
    let mut request = ses.sample("ann@customer.test", "Wo ist mein Paket?", 1_700_000_000_000);
    ses.sign(&mut request, 1_700_000_000_000).unwrap();
    let topic = settings["topic_arn"].as_str().unwrap();
    let (code, report) = check_channel(
        dir.path(),
        "ses",
        request.body(),
        &args(topic, &cert, "1700000060"),
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["messages"][0]["text"], "Wo ist mein Paket?");
    assert_eq!(report["messages"][0]["customer_id"], "ann@customer.test");
}

#[test]
fn webhook_check_verifies_a_signed_sendgrid_event_post() {
    let dir = tempfile::tempdir().unwrap();
    // SendGrid's published vector (sendgrid-python test/unit/test_eventwebhook.py).
    let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    let signature = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    let payload = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";
    let args: Vec<String> = [
        "--secret",
        "inbound_username=parse",
        "--secret",
        "inbound_password=unused",
        "--secret",
        &format!("public_key={key}"),
        "--header",
        "Content-Type: application/json",
        "--header",
        &format!("X-Twilio-Email-Event-Webhook-Signature: {signature}"),
        "--header",
        "X-Twilio-Email-Event-Webhook-Timestamp: 1600112502",
        "--now",
        "1600112510",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, report) = check_channel(dir.path(), "sendgrid", payload.as_bytes(), &args);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verified"], true);
    assert_eq!(report["messages"], serde_json::json!([]));
    let (code, report) =
        check_channel(dir.path(), "sendgrid", payload.trim_end().as_bytes(), &args);
    assert_eq!(
        (code, &report["verified"]),
        (1, &Value::Bool(false)),
        "{report}"
    );
}
