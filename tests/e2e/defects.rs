//! Regression tests for the defects found by probing the running product
//! (issue 16, items 2, 3, 4, 6, 7 and 8).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_e2e::*;

fn form_fields(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn form(fields: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The slow shape: a thousand small parts delimited by bare LFs, then one
/// large part, 1 MiB in all. A parser that looks for the CRLF delimiter from
/// every part to the end of the body does a megabyte of work per part.
pub fn lf_only_multipart() -> String {
    let mut body = String::new();
    for n in 0..999 {
        body.push_str(&format!(
            "--b\nContent-Disposition: form-data; name=\"f{n}\"\n\nx\n"
        ));
    }
    body.push_str("--b\nContent-Disposition: form-data; name=\"pad\"\n\n");
    body.push_str(&"y".repeat(1024 * 1024 - body.len() - 8));
    body.push_str("\n--b--\n");
    body
}

/// 16.2: a 1 MiB multipart body with LF-only delimiters took 4.4 s to parse
/// before authentication, on the runtime's threads.
#[tokio::test(flavor = "multi_thread")]
async fn lf_only_multipart_bodies_are_refused_quickly_and_the_server_stays_responsive() {
    let server = Server::start(Options::default()).await;
    let body = lf_only_multipart();
    let started = Instant::now();
    let posts: Vec<_> = (0..2)
        .map(|_| {
            let (base, body) = (server.base.clone(), body.clone());
            tokio::spawn(async move {
                let headers = [("content-type", "multipart/form-data; boundary=b".to_owned())];
                let started = Instant::now();
                let (status, _) =
                    post_to(&base, "/webhooks/mailgun", &headers, body.into_bytes()).await;
                (status, started.elapsed())
            })
        })
        .collect();
    // Meanwhile the server answers its health check at once.
    let client = reqwest::Client::new();
    while started.elapsed() < Duration::from_millis(500) {
        let asked = Instant::now();
        let health = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert!(health.status().is_success());
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "healthz took {:?}",
            asked.elapsed()
        );
    }
    for post in posts {
        let (status, elapsed) = post.await.unwrap();
        assert_eq!(status, 401, "unauthenticated");
        // A correctness bound for a debug build on a loaded machine, not a benchmark.
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    }
}

/// 16.3: a captured timestamp/token/signature was accepted again with another
/// sender and body; timestamps 14 minutes ahead were accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_mailgun_signature_is_good_for_one_mail_only() {
    let server = Server::start(Options::default()).await;
    let headers = [("content-type", FORM.to_owned())];
    let first = mailgun_form(
        "ann@customer.test",
        "Returns",
        "How do I return an item?",
        "<m-1@customer.test>",
        &[],
    );
    assert_eq!(
        server
            .post("/webhooks/mailgun", &headers, first.clone())
            .await
            .0,
        200
    );

    // The same triple on another mail: refused.
    let signed: Vec<(String, String)> = form_fields(&first)
        .into_iter()
        .filter(|(k, _)| ["timestamp", "token", "signature"].contains(&k.as_str()))
        .collect();
    let other = mailgun_form(
        "mallory@evil.test",
        "Refund",
        "Please refund me to this account now",
        "<m-2@evil.test>",
        &[],
    );
    let mut replayed: Vec<(String, String)> = form_fields(&other)
        .into_iter()
        .filter(|(k, _)| !["timestamp", "token", "signature"].contains(&k.as_str()))
        .collect();
    replayed.extend(signed);
    let (status, body) = server
        .post("/webhooks/mailgun", &headers, form(&replayed))
        .await;
    assert_eq!(status, 401, "{body}");

    // The same request again (Mailgun retrying it) is fine, and answered once.
    assert_eq!(
        server.post("/webhooks/mailgun", &headers, first).await.0,
        200
    );
    server.smtp.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.smtp.messages().len(), 1);
    assert_eq!(server.queued_total("inbound").await, 1);

    // Signed fourteen minutes ahead: refused.
    let mut ahead = form_fields(&mailgun_form(
        "bo@customer.test",
        "Hi",
        "How do I return an item?",
        "<m-3@customer.test>",
        &[],
    ));
    ahead.retain(|(k, _)| !["timestamp", "token", "signature"].contains(&k.as_str()));
    let mut request = switchboard_channels::kit::build_request(
        "POST",
        "/webhooks/mailgun",
        &[("content-type".into(), FORM.into())],
        form(&ahead),
    )
    .unwrap();
    channel("mailgun")
        .sign(&mut request, (now_secs() + 14 * 60) * 1000)
        .unwrap();
    assert_eq!(server.post_request(&request).await.0, 401);
}

/// 16.4: the dedupe key was `team:ts`, but `ts` is unique only per channel.
#[tokio::test(flavor = "multi_thread")]
async fn slack_messages_with_the_same_ts_in_two_channels_are_both_answered() {
    let server = Server::start(Options::default()).await;
    let ts = "1700000000.000100";
    let one = slack_event("Ev1", "U1", "D1", ts, "How long does shipping take?");
    let two = slack_event("Ev2", "U2", "D2", ts, "How long does shipping take?");
    assert_eq!(server.post_slack(&one, now_secs()).await.0, 200);
    assert_eq!(server.post_slack(&two, now_secs()).await.0, 200);
    let replies = eventually("two replies", Duration::from_secs(20), || {
        let replies = server.standin.matching("/slack/chat.postMessage", |_| true);
        (replies.len() >= 2).then_some(replies)
    })
    .await;
    let mut channels: Vec<_> = replies
        .iter()
        .map(|r| r.body["channel"].as_str().unwrap().to_owned())
        .collect();
    channels.sort();
    assert_eq!(channels, ["D1", "D2"]);
}

/// 16.6: a rejected request's log line repeated serde's message, and with it
/// the body's text.
#[tokio::test(flavor = "multi_thread")]
async fn refused_bodies_do_not_reach_the_log() {
    let server = Server::start(Options::default()).await;
    let secret = "my password is hunter2 and my card is 4111";
    remember_text(secret);
    let webchat = json!({ "conversation_id": "c", "customer_id": "u", "message_id": "m", "text": "hi", "sent_at": secret });
    let request = signed_request(
        "webchat",
        "application/json",
        &[],
        webchat.to_string(),
        now_secs() * 1000,
    );
    let (status, body) = server.post_request(&request).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        !body.to_string().contains("hunter2"),
        "nor in the answer: {body}"
    );
    let telegram = json!({ "update_id": secret, "message": { "text": secret } });
    let request = signed_request(
        "telegram",
        "application/json",
        &[],
        telegram.to_string(),
        now_secs() * 1000,
    );
    assert_eq!(server.post_request(&request).await.0, 400);
    let log = server.log();
    assert!(log.contains("webhook rejected"), "the rejection is logged");
    assert!(!log.contains("hunter2"), "{log}");
}

/// 16.7: an authentic Mailgun post without a sender was `verified: true` and
/// exit 1, which must mean "not authentic".
#[test]
fn webhook_check_tells_unreadable_from_not_authentic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    let request = signed_request(
        "mailgun",
        FORM,
        &[],
        "recipient=support%40shop.test&subject=Hi",
        now_secs() * 1000,
    );
    std::fs::write(&file, request.body()).unwrap();
    let key = setting("mailgun", "signing_key");
    let run = |key: &str| {
        let output = std::process::Command::new(switchboard_bin())
            .args([
                "webhook",
                "check",
                "--channel",
                "mailgun",
                "--secret",
                &format!("signing_key={key}"),
            ])
            .args(["--header", &format!("Content-Type: {FORM}"), "--body-file"])
            .arg(&file)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (output.status.code().unwrap(), report)
    };
    let (code, report) = run(&key);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["verified"], true);
    assert!(
        report["error"].as_str().unwrap().contains("sender"),
        "{report}"
    );
    let (code, report) = run("another-key");
    assert_eq!((code, report["verified"].clone()), (1, json!(false)));
}

/// 16.8: development mode's recorded replies were readable without a token,
/// and connections sending a header byte a second were never closed.
#[tokio::test(flavor = "multi_thread")]
async fn slow_connections_are_closed_and_dev_replies_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut server = std::process::Command::new(switchboard_bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually("server up", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies = client
        .get(format!("{base}/dev/replies"))
        .send()
        .await
        .unwrap();
    assert_eq!(replies.status(), 401);
    let secrets: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("data/dev-secrets.json")).unwrap(),
    )
    .unwrap();
    let token = secrets["admin_token"].as_str().unwrap();
    let replies = client
        .get(format!("{base}/dev/replies"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(replies.status(), 200);

    // 200 connections, each sending one byte of a request line a second.
    let slow: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(900)))
                    .unwrap();
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                    if started.elapsed() > Duration::from_secs(40) {
                        return None;
                    }
                    let mut buffer = [0u8; 512];
                    match stream.read(&mut buffer) {
                        Ok(0) => return Some(started.elapsed()), // closed by the server
                        Ok(_) => return Some(started.elapsed()), // an error answer, then closed
                        Err(_) => {}                             // nothing yet
                    }
                    if stream.write_all(&[*byte]).is_err() {
                        return Some(started.elapsed());
                    }
                }
                None
            })
        })
        .collect();
    // Meanwhile the server serves others.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let closed: Vec<_> =
        tokio::task::spawn_blocking(move || slow.into_iter().map(|t| t.join().unwrap()).collect())
            .await
            .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    for after in closed {
        let after = after.expect("the server never closed a slow connection");
        assert!(after < Duration::from_secs(20), "closed after {after:?}");
    }
}
