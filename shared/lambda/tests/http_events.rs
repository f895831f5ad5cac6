//! The router behind `lambda_http`, fed the events API Gateway (HTTP API,
//! payload v2) and Lambda Function URLs send (shapes from AWS's docs and the
//! aws-lambda-rust-runtime fixtures), over the embedded store: the raw body
//! reaches verification byte for byte, base64-encoded or not.

use serde_json::{Value, json};
use switchboard_app::config::{Channels, Config};
use switchboard_app::local::Local;
use switchboard_channels::kit::reply;
use switchboard_e2e::{channel_settings, signed_request};
use switchboard_lambda::invoke;

async fn app(dir: &std::path::Path) -> Local {
    let config = Config {
        data_dir: dir.to_owned(),
        channels: Channels(channel_settings("http://127.0.0.1:9")),
        ..Config::default()
    };
    Local::open(config).await.unwrap()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An HTTP API v2 event; `function_url` gives the Function URL flavour.
fn event(
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    encoded: bool,
    function_url: bool,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let domain = if function_url {
        "abcdefghij.lambda-url.eu-west-1.on.aws"
    } else {
        "abc123.execute-api.eu-west-1.amazonaws.com"
    };
    let body = if encoded {
        base64(body)
    } else {
        String::from_utf8(body.to_vec()).unwrap()
    };
    json!({
        "version": "2.0",
        "routeKey": if function_url { "$default" } else { "POST /webhooks/{channel}" },
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": domain,
            "domainPrefix": "abc123",
            "http": { "method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "provider" },
            "requestId": "r1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390u64
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

fn headers(request: &switchboard_channels::WebhookRequest) -> Vec<(String, String)> {
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn base64_bodies_reach_verification_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let local = app(dir.path()).await;
    let now = switchboard_e2e::now_secs() * 1000;
    // CRLF, non-ASCII and a body that is not UTF-8 at all: only the exact
    // bytes verify.
    let json_body = "{\"conversation_id\":\"c\",\"customer_id\":\"u\",\"message_id\":\"m-1\",\"text\":\"caf\u{e9} 咖啡\"}\r\n";
    let binary: &[u8] = b"{\"conversation_id\":\"c\",\"text\":\"\xff\xfe\"}";
    for function_url in [false, true] {
        let signed = signed_request("webchat", "application/json", &[], json_body, now);
        let answer = invoke(
            local.app.router(true),
            event(
                "/webhooks/webchat",
                &headers(&signed),
                json_body.as_bytes(),
                true,
                function_url,
            ),
        )
        .await
        .unwrap();
        assert_eq!(answer["statusCode"], 200, "{answer}");

        // Signed over bytes that are not UTF-8: authentic (so not 401) but unreadable (400).
        let signed = signed_request("webchat", "application/json", &[], binary, now);
        let answer = invoke(
            local.app.router(true),
            event(
                "/webhooks/webchat",
                &headers(&signed),
                binary,
                true,
                function_url,
            ),
        )
        .await
        .unwrap();
        assert_eq!(answer["statusCode"], 400, "{answer}");

        // One byte off: 401.
        let mut forged = binary.to_vec();
        let at = forged.len() - 3;
        forged[at] ^= 1;
        let answer = invoke(
            local.app.router(true),
            event(
                "/webhooks/webchat",
                &headers(&signed),
                &forged,
                true,
                function_url,
            ),
        )
        .await
        .unwrap();
        assert_eq!(answer["statusCode"], 401, "{answer}");
    }
    // Not base64-encoded: the text as it is.
    let signed = signed_request(
        "webchat",
        "application/json",
        &[],
        json_body.replace("m-1", "m-2"),
        now,
    );
    let answer = invoke(
        local.app.router(true),
        event(
            "/webhooks/webchat",
            &headers(&signed),
            signed.body(),
            false,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["headers"]["content-type"], "application/json");
    assert_eq!(
        answer["body"],
        reply::json(200, &json!({ "ok": true }))
            .body()
            .as_ref()
            .iter()
            .map(|b| *b as char)
            .collect::<String>()
    );
    assert_eq!(
        local.store.stats().await.unwrap()[0].ready,
        2,
        "two messages queued"
    );
}

#[tokio::test]
async fn unknown_routes_and_channels_answer_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let local = app(dir.path()).await;
    let answer = invoke(
        local.app.router(false),
        event("/webhooks/pigeon", &[], b"{}", false, false),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 404);
    assert!(answer["body"].as_str().unwrap().contains("unknown_channel"));
    let answer = invoke(
        local.app.router(false),
        event("/elsewhere", &[], b"{}", false, false),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 404);
    // The agents' API is not served by the webhook-only functions.
    let answer = invoke(
        local.app.router(false),
        event("/api/feedback", &[], b"{}", false, false),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 403);
}
