//! The agents' API and its tokens: scopes, hashed configuration, refusals.

use serde_json::json;
use switchboard_e2e::{ADMIN_TOKEN, AGENT_TOKEN, Options, Server};

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_by_hash_and_scope() {
    let server = Server::start(Options::default()).await;
    let path = "/api/conversations/telegram:0:nobody/reply";
    let body = json!({ "text": "Hello" }).to_string();
    let bearer = |token: &str| {
        [
            ("authorization", format!("Bearer {token}")),
            ("content-type", "application/json".to_owned()),
            ("idempotency-key", "k1".to_owned()),
        ]
    };

    // The agent token, configured only by its SHA-256, passes the agent
    // route's check (the conversation does not exist: 404, not 401).
    let (status, answer) = server.post(path, &bearer(AGENT_TOKEN), body.clone()).await;
    assert_eq!(status, 404, "{answer}");
    // So does the admin token.
    let (status, _) = server.post(path, &bearer(ADMIN_TOKEN), body.clone()).await;
    assert_eq!(status, 404);

    // The hash itself, a near miss, another scheme and no token are refused.
    for header in [
        "Bearer 4053a8b2ede072c6aa35664eb952eeabb9d27dd0fa96e9d77f64b91065e812d9",
        "Bearer sbk_test-agent-token2",
        "Basic sbk_test-agent-token",
        "",
    ] {
        let headers = [
            ("authorization", header.to_owned()),
            ("content-type", "application/json".to_owned()),
        ];
        let (status, answer) = server.post(path, &headers, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized")),
            "{header:?}"
        );
    }
    assert!(
        !server.log().contains(AGENT_TOKEN),
        "tokens never reach the log"
    );

    // Health: alive for anyone, the queues' figures only for an admin.
    let health = |token: Option<&'static str>| {
        let mut request = reqwest::Client::new().get(format!("{}/healthz", server.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    assert_eq!(health(None).await, json!({ "ok": true }));
    assert_eq!(health(Some(AGENT_TOKEN)).await, json!({ "ok": true }));
    assert!(health(Some(ADMIN_TOKEN)).await["queues"].is_array());
}

/// `switchboard token create` prints a fresh token once, with the SHA-256 that
/// goes in the configuration; bad input is a clear error with a non-zero exit.
#[test]
fn token_create_prints_a_token_and_its_hash() {
    use sha2::{Digest, Sha256};
    let create = |args: &[&str]| {
        std::process::Command::new(switchboard_e2e::switchboard_bin())
            .args(["token", "create"])
            .args(args)
            .output()
            .unwrap()
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out = create(&["--name", "lee", "--scope", "agent", "--json"]);
        assert!(out.status.success(), "{out:?}");
        let entry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = entry["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("sbk_") && token.len() > 40, "{token}");
        assert_eq!(entry["scope"], "agent");
        assert_eq!(entry["name"], "lee");
        assert_eq!(
            entry["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(token.as_bytes()))
        );
        seen.push(token);
    }
    assert_ne!(seen[0], seen[1], "every token is new");

    let out = create(&["--name", "lee", "--scope", "owner"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner"));
    let out = create(&["--name", " ", "--scope", "admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
}

/// A token removed from the config file stops working in a running `serve`
/// within seconds; an edit that breaks the file keeps the tokens in use (and
/// is logged); a token added works without a restart. `token list` shows
/// holders, scopes and hash prefixes, never a token.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_server_follows_the_config_files_tokens() {
    use std::time::Duration;
    let server = Server::start(Options::default()).await;
    let status_for = |token: &'static str| {
        let request = reqwest::Client::new()
            .get(format!("{}/api/conversations", server.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status_for(AGENT_TOKEN).await, 200);
    let list = |config: &std::path::Path| {
        let out = std::process::Command::new(switchboard_e2e::switchboard_bin())
            .arg("--config")
            .arg(config)
            .args(["token", "list", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = list(&server.config_path());
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        rows[1],
        json!({ "name": "lee", "scope": "agent", "sha256_prefix": "4053a8b2ede0", "source": "server.tokens" })
    );
    assert_eq!(
        (&rows[0]["name"], &rows[0]["scope"]),
        (&json!("admin"), &json!("admin"))
    );
    assert!(
        !listed.contains(ADMIN_TOKEN) && !listed.contains(AGENT_TOKEN),
        "{listed}"
    );

    // Revoke lee's token: remove it from the file.
    let path = server.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    let lee_line = original
        .lines()
        .find(|line| line.starts_with("tokens = "))
        .unwrap()
        .to_owned();
    std::fs::write(&path, original.replace(&lee_line, "")).unwrap();
    switchboard_e2e::until(
        "the revoked token refused",
        Duration::from_secs(15),
        || async { (status_for(AGENT_TOKEN).await == 401).then_some(()) },
    )
    .await;
    assert_eq!(status_for(ADMIN_TOKEN).await, 200);
    assert!(!list(&path).contains("lee"));

    // A broken edit: the tokens in use stay (lee stays out, admin stays in).
    std::fs::write(&path, format!("{original}\n[server\n")).unwrap();
    switchboard_e2e::until("the bad edit reported", Duration::from_secs(15), || async {
        server
            .log()
            .contains("agents' API tokens not reloaded")
            .then_some(())
    })
    .await;
    assert_eq!(status_for(AGENT_TOKEN).await, 401);
    assert_eq!(status_for(ADMIN_TOKEN).await, 200);
    assert!(
        server.log().contains("switchboard.toml: line "),
        "{}",
        server.log()
    );

    // Fixed, with lee's token back: accepted again without a restart.
    std::fs::write(&path, &original).unwrap();
    switchboard_e2e::until(
        "the restored token accepted",
        Duration::from_secs(15),
        || async { (status_for(AGENT_TOKEN).await == 200).then_some(()) },
    )
    .await;
    let log = server.log();
    assert!(
        !log.contains(AGENT_TOKEN) && !log.contains(ADMIN_TOKEN),
        "tokens never reach the log"
    );
}
