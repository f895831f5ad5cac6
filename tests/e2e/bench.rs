//! `switchboard bench`: the peer protocol of the official-SDK harness, on a
//! workload signed here the way Slack signs, and the in-process pipeline run.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use switchboard_e2e::*;

const SECRET: &str = "8f14e45fceea167a5a36dedd4bea2543";
const NOW: i64 = 1_795_132_800;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(switchboard_bin())
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A Slack request as the harness writes it (lower-case headers, the clock).
fn slack_line(n: usize, ts: i64, secret: &str, tamper: Option<&str>) -> Value {
    let body = slack_event(
        &format!("Ev{n}"),
        &format!("U{n}"),
        "D42",
        &format!("{ts}.{n:06}"),
        &format!("Where is order {n}?"),
    );
    let signature = format!(
        "v0={}",
        hmac_hex(
            secret,
            &[b"v0:", ts.to_string().as_bytes(), b":", body.as_bytes()]
        )
    );
    let mut line = json!({
        "channel": "slack", "method": "POST", "url": "https://hooks.example.com/webhooks/slack",
        "headers": {
            "content-type": "application/json",
            "x-slack-request-timestamp": ts.to_string(),
            "x-slack-signature": signature,
        },
        "body": body, "secret": SECRET, "now": NOW,
    });
    if let Some(kind) = tamper {
        line["tamper"] = json!(kind);
    }
    line
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn bench_peer_runs_the_admission_path_over_a_signed_workload() {
    let dir = tempfile::tempdir().unwrap();
    let good: Vec<Value> = (0..20)
        .map(|n| slack_line(n, NOW - 30, SECRET, None))
        .collect();
    write_lines(&dir.path().join("slack.jsonl"), &good);
    let mut tampered: Vec<Value> = (0..3)
        .map(|n| slack_line(n, NOW - 30, "not-the-secret", Some("wrong_secret")))
        .collect();
    tampered.extend((0..2).map(|n| slack_line(n, NOW - 400, SECRET, Some("stale_ts"))));
    let mut edited = slack_line(7, NOW - 30, SECRET, Some("body_digit"));
    edited["body"] = json!(
        edited["body"]
            .as_str()
            .unwrap()
            .replace("order 7", "order 8")
    );
    tampered.push(edited);
    write_lines(&dir.path().join("slack.tampered.jsonl"), &tampered);
    let workdir = dir.path().to_str().unwrap();

    let report = bench(&["peer", "bench", "slack", workdir, "3"]);
    assert_eq!(report["n"], 20, "{report}");
    assert_eq!(report["accepted"], 20);
    assert_eq!(report["rejected"], 0);
    assert_eq!(report["timed_rejects"], 0);
    assert_eq!(report["messages"], 20);
    assert_eq!(report["tampered"], 6);
    assert_eq!(report["tamper_accepted"], 0);
    assert_eq!(
        report["tamper"]["stale_ts"],
        json!({ "n": 2, "rejected": 2 })
    );
    assert_eq!(
        report["tamper"]["wrong_secret"],
        json!({ "n": 3, "rejected": 3 })
    );
    assert_eq!(
        report["tamper"]["body_digit"],
        json!({ "n": 1, "rejected": 1 })
    );
    assert_eq!(report["us_per_req_all"].as_array().unwrap().len(), 3);
    assert_eq!(report["us_verify_only_all"].as_array().unwrap().len(), 2);
    assert!(report["us_per_req"].as_f64().unwrap() > 0.0);
    assert!(
        report["rss_mb"].as_f64().unwrap() >= report["rss_after_sdk_load_mb"].as_f64().unwrap()
    );
    // No manifest here: the digest is reported, not matched.
    assert_eq!(report["digest_ok"], false);

    // What the product does not have, it says so.
    assert_eq!(
        bench(&["peer", "bench", "slack:bolt-app", workdir, "1"]),
        json!({ "unsupported": true })
    );

    let cold = bench(&["peer", "cold", "slack", workdir]);
    assert_eq!(cold["ok"], true, "{cold}");
    let (entry, loaded, done) = (
        cold["t_entry"].as_u64().unwrap(),
        cold["t_loaded"].as_u64().unwrap(),
        cold["t_done"].as_u64().unwrap(),
    );
    assert!(entry <= loaded && loaded <= done, "{cold}");

    let mut future = slack_line(1, NOW + 400, SECRET, None);
    future["case"] = json!("slack_timestamp_400s_in_future");
    let mut fine = slack_line(2, NOW - 10, SECRET, None);
    fine["case"] = json!("slack_fine");
    write_lines(&dir.path().join("extra.jsonl"), &[future, fine]);
    let extra = bench(&["peer", "extra", workdir]);
    assert_eq!(
        extra["results"],
        json!([
            { "case": "slack_timestamp_400s_in_future", "channel": "slack", "accepted": false },
            { "case": "slack_fine", "channel": "slack", "accepted": true },
        ])
    );
}

#[test]
fn bench_pipeline_answers_every_message_and_prints_its_figures() {
    let report = bench(&["pipeline", "--messages", "40", "--customers", "5"]);
    assert_eq!(report["accepted"], 40, "{report}");
    assert_eq!(report["replied"], 40, "{report}");
    assert_eq!(report["kb_entries"], 1000);
    let latency = &report["accept_to_reply_ms"];
    assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
    assert!(report["messages_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_mb"].as_f64().unwrap() > 0.0);
}
