//! A customer's data exported and erased through the agents' API and the CLI,
//! checked on the raw bytes of the database; the unanswered-question log masked.

use std::time::Duration;

use serde_json::Value;
use switchboard_e2e::{
    ADMIN_TOKEN, AGENT_TOKEN, Options, Server, eventually, switchboard_bin, telegram_update,
};

const ANN: i64 = 7_419_930_217;
const BOB: i64 = 5_118_240_663;

async fn call(server: &Server, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every byte of the database file and its logs.
fn database_bytes(server: &Server) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(server.dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("sqlite3") {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_is_exported_and_erased_everywhere() {
    let server = Server::start(Options::default()).await;
    let ann_question = "parcel zebra-quartz never came, call me on +44 7700 900123";
    server
        .post_telegram(&telegram_update(81_001, ANN, ann_question))
        .await;
    server
        .post_telegram(&telegram_update(81_002, BOB, "parcel walrus-ochre is late"))
        .await;
    for chat in [ANN, BOB] {
        eventually("the holding reply", Duration::from_secs(30), || {
            (!server.telegram_replies(chat).is_empty()).then_some(())
        })
        .await;
    }
    let ann = format!("/api/customers/telegram:{ANN}");

    // The unanswered-question log keeps the question masked. (The reply
    // leaves by the outbound queue, so it can arrive before the worker has
    // logged the gap.)
    let gaps = eventually("the gap logged", Duration::from_secs(20), || {
        let gaps = std::process::Command::new(switchboard_bin())
            .arg("--config")
            .arg(server.config_path())
            .args(["kb", "gaps"])
            .output()
            .unwrap();
        let gaps = String::from_utf8_lossy(&gaps.stdout).into_owned();
        gaps.contains("zebra").then_some(gaps)
    })
    .await;
    assert!(
        !gaps.contains("900123"),
        "the phone number is masked: {gaps}"
    );

    // An agent token may not export or erase.
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        &format!("{ann}/export"),
        AGENT_TOKEN,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&server, reqwest::Method::DELETE, &ann, AGENT_TOKEN).await;
    assert_eq!(status, 403);
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/customers/nocolon/export",
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    // a channel Switchboard does not have: refused, not an empty export
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/customers/nochannel:1/export",
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    assert!(
        body["reason"].as_str().unwrap().contains("nochannel"),
        "{body}"
    );

    let (status, export) = call(
        &server,
        reqwest::Method::GET,
        &format!("{ann}/export"),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["customer"], format!("telegram:{ANN}"));
    assert_eq!(export["record"]["message_count"], 1);
    let transcript = export["conversations"][0]["turns"].to_string();
    assert!(transcript.contains("zebra-quartz"), "{export}");
    assert!(
        !export.to_string().contains("walrus"),
        "only Ann's data: {export}"
    );
    assert_eq!(export["unanswered_questions"].as_array().unwrap().len(), 1);

    // The CLI prints the same document.
    let cli = std::process::Command::new(switchboard_bin())
        .arg("--config")
        .arg(server.config_path())
        .args(["customer", "export", &format!("telegram:{ANN}")])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let cli_export: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli_export["conversations"], export["conversations"]);

    assert!(holds(&database_bytes(&server), "zebra-quartz"));
    let (status, erased) = call(&server, reqwest::Method::DELETE, &ann, ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["records"], 1);
    assert_eq!(erased["conversations"], 1);
    assert_eq!(erased["unanswered_questions"], 1);

    // Nothing of Ann in the database file or its write-ahead log.
    let bytes = database_bytes(&server);
    // (the phone number whole: four digits alone turn up in any timestamp)
    for trace in [
        ANN.to_string().as_str(),
        "zebra-quartz",
        "7700 900123",
        "7700900123",
    ] {
        assert!(!holds(&bytes, trace), "{trace} survived the erase");
    }
    assert!(holds(&bytes, "walrus-ochre"), "Bob is kept");

    let (status, export) = call(
        &server,
        reqwest::Method::GET,
        &format!("{ann}/export"),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    assert!(export["record"].is_null() && export["conversations"] == Value::Array(vec![]));

    // The CLI erase of an unknown customer removes nothing and says so.
    let cli = std::process::Command::new(switchboard_bin())
        .arg("--config")
        .arg(server.config_path())
        .args(["customer", "erase", "telegram:404404404"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let erased: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(erased["conversations"], 0);
    let bad = std::process::Command::new(switchboard_bin())
        .args(["customer", "erase", "no-colon"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CHANNEL:CUSTOMER_ID"));
}
