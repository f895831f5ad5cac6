//! Hostile input never panics: every channel's handshake, verify and parse run
//! over truncated, bit-flipped and random requests, and over correctly signed
//! requests with absurd timestamps.

use std::sync::Arc;

use serde_json::json;
use switchboard_channels::email::OutboxTransport;
use switchboard_channels::verify::hmac_sha256;
use switchboard_channels::{ChannelDeps, SharedChannel, WebhookRequest, registry, webchat};
use switchboard_domain::Secret;

const NOW_MS: i64 = 1_700_000_000_000;
const SLACK_SECRET: &str = "slack-secret";
const WEBCHAT_SECRET: &str = "webchat-secret-0123456789";
const MAILGUN_KEY: &str = "mailgun-key";

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn channel(name: &str, settings: serde_json::Value) -> SharedChannel {
    let deps = ChannelDeps {
        http: reqwest::Client::new(),
        email: Arc::new(OutboxTransport::new(
            std::env::temp_dir().join("switchboard-robustness-unused"),
        )),
    };
    registry::build(name, &settings, &deps).unwrap()
}

fn request(content_type: &str, headers: &[(&str, String)], body: &[u8]) -> WebhookRequest {
    let mut all = vec![("content-type".to_owned(), content_type.to_owned())];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
    WebhookRequest {
        method: "POST".into(),
        url: String::new(),
        query: String::new(),
        headers: all,
        body: body.to_vec(),
    }
}

fn slack_request(timestamp: &str, body: &[u8]) -> WebhookRequest {
    let mac = hmac_sha256(
        SLACK_SECRET.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    request(
        "application/json",
        &[
            ("x-slack-request-timestamp", timestamp.to_owned()),
            ("x-slack-signature", format!("v0={}", hex::encode(mac))),
        ],
        body,
    )
}

fn webchat_request(timestamp: &str, body: &[u8]) -> WebhookRequest {
    let mac = hmac_sha256(
        WEBCHAT_SECRET.as_bytes(),
        &[timestamp.as_bytes(), b".", body],
    );
    request(
        "application/json",
        &[
            ("x-switchboard-timestamp", timestamp.to_owned()),
            (
                "x-switchboard-signature",
                format!("v1={}", hex::encode(mac)),
            ),
        ],
        body,
    )
}

fn mailgun_body(timestamp: &str) -> Vec<u8> {
    let token = "t0k3n";
    let signature = hex::encode(hmac_sha256(
        MAILGUN_KEY.as_bytes(),
        &[timestamp.as_bytes(), token.as_bytes()],
    ));
    let headers = r#"[["Message-Id","<a@b.example>"],["References","<r@b.example> <s@b.example>"],["Auto-Submitted","no"]]"#;
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("timestamp", timestamp),
            ("token", token),
            ("signature", &signature),
            ("recipient", "support@shop.example"),
            ("sender", "jane@customer.example"),
            ("from", "Jane <jane@customer.example>"),
            ("subject", "Re: order"),
            ("body-plain", "where is it? 在哪里"),
            ("message-headers", headers),
        ])
        .finish()
        .into_bytes()
}

fn exercise(channel: &SharedChannel, request: &WebhookRequest) {
    let _ = channel.handshake(request, NOW_MS);
    let _ = channel.verify(request, NOW_MS);
    let _ = channel.parse(request);
}

fn seeds() -> Vec<(SharedChannel, Vec<WebhookRequest>)> {
    let telegram = channel(
        "telegram",
        json!({ "secret_token": "tok", "bot_token": "1:x" }),
    );
    let slack = channel(
        "slack",
        json!({ "signing_secret": SLACK_SECRET, "bot_token": "xoxb" }),
    );
    let webchat = channel(
        "webchat",
        json!({ "signing_secret": WEBCHAT_SECRET, "reply_url": "https://x.example/r" }),
    );
    let mailgun = channel(
        "mailgun",
        json!({ "signing_key": MAILGUN_KEY, "from_address": "support@shop.example" }),
    );

    let telegram_body = br#"{"update_id":1,"message":{"date":1,"chat":{"id":2},"from":{"id":3,"is_bot":false,"first_name":"A"},"text":"hi","photo":[{"file_id":"p"}],"location":{"latitude":1.5,"longitude":2.5}}}"#;
    let slack_body = br#"{"type":"event_callback","team_id":"T","event_id":"E","authorizations":[{"team_id":"T","user_id":"B"}],"event":{"type":"message","subtype":"message_changed","channel":"C","ts":"2.0","message":{"user":"U","text":"new <@B>","ts":"1.0","files":[{"id":"F","mimetype":"image/png"}]},"previous_message":{"user":"U","text":"old","ts":"1.0"}}}"#;
    let webchat_body = br#"{"messages":[{"conversation_id":"c","customer_id":"u","message_id":"m","text":"hi","attachments":[{"kind":"image","url":"https://x"}]}]}"#;
    let multipart = b"--b\r\nContent-Disposition: form-data; name=\"recipient\"\r\n\r\nsupport@shop.example\r\n--b\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename*=UTF-8''%E5%8F%91.png\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--b--\r\n";

    vec![
        (
            telegram,
            vec![request(
                "application/json",
                &[("x-telegram-bot-api-secret-token", "tok".into())],
                telegram_body,
            )],
        ),
        (
            slack,
            vec![
                slack_request("1700000000", slack_body),
                slack_request(
                    "1700000000",
                    br#"{"type":"url_verification","challenge":"c"}"#,
                ),
                request(
                    "application/x-www-form-urlencoded",
                    &[],
                    b"ssl_check=1&command=%2Fx",
                ),
            ],
        ),
        (webchat, vec![webchat_request("1700000000", webchat_body)]),
        (
            mailgun,
            vec![
                request(
                    "application/x-www-form-urlencoded",
                    &[],
                    &mailgun_body("1700000000"),
                ),
                request("multipart/form-data; boundary=b", &[], multipart),
            ],
        ),
    ]
}

#[test]
fn mutated_requests_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for (channel, requests) in seeds() {
        for seed in requests {
            // The seed itself, then its mutations.
            exercise(&channel, &seed);
            let len = seed.body.len();
            for cut in (0..=len).step_by((len / 150).max(1)) {
                let mut truncated = seed.clone();
                truncated.body.truncate(cut);
                exercise(&channel, &truncated);
            }
            for _ in 0..400 {
                let mut flipped = seed.clone();
                for _ in 0..=rng.below(4) {
                    if !flipped.body.is_empty() {
                        let at = rng.below(flipped.body.len());
                        flipped.body[at] = rng.next() as u8;
                    }
                }
                exercise(&channel, &flipped);
            }
            for content_type in [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=b",
                "multipart/form-data",
                "",
                "text/plain; charset=\"unterminated",
            ] {
                for _ in 0..50 {
                    let body: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                    let mut random = seed.clone();
                    random.headers[0].1 = content_type.to_owned();
                    random.body = body;
                    exercise(&channel, &random);
                }
            }
            let mut header_values = seed.clone();
            for value in [
                "",
                " ",
                "v0=",
                "v1=zz",
                "v0=é",
                "-9223372036854775808",
                "9223372036854775807",
                "１２３",
            ] {
                for index in 0..header_values.headers.len() {
                    header_values.headers[index].1 = value.to_owned();
                    exercise(&channel, &header_values);
                }
            }
        }
    }
}

#[test]
fn signed_requests_with_absurd_timestamps_are_refused_without_panic() {
    let slack = channel(
        "slack",
        json!({ "signing_secret": SLACK_SECRET, "bot_token": "xoxb" }),
    );
    let webchat = channel(
        "webchat",
        json!({ "signing_secret": WEBCHAT_SECRET, "reply_url": "https://x.example/r" }),
    );
    let mailgun = channel(
        "mailgun",
        json!({ "signing_key": MAILGUN_KEY, "from_address": "support@shop.example" }),
    );
    let body = br#"{"conversation_id":"c","customer_id":"u","message_id":"m","text":"hi"}"#;
    for timestamp in ["-9223372036854775808", "9223372036854775807", "0", "-1"] {
        assert!(
            slack
                .verify(&slack_request(timestamp, body), NOW_MS)
                .is_err(),
            "{timestamp}"
        );
        assert!(
            webchat
                .verify(&webchat_request(timestamp, body), NOW_MS)
                .is_err(),
            "{timestamp}"
        );
        let form = request(
            "application/x-www-form-urlencoded",
            &[],
            &mailgun_body(timestamp),
        );
        assert!(mailgun.verify(&form, NOW_MS).is_err(), "{timestamp}");
        // Parsing what is signed but stale still does not panic.
        let _ = webchat.parse(&webchat_request(timestamp, body));
        let _ = mailgun.parse(&form);
    }
    // The same requests at the right time pass, so the refusals above are the window's.
    assert!(
        slack
            .verify(&slack_request("1700000000", body), NOW_MS)
            .is_ok()
    );
    assert!(
        webchat
            .verify(&webchat_request("1700000000", body), NOW_MS)
            .is_ok()
    );
    let form = request(
        "application/x-www-form-urlencoded",
        &[],
        &mailgun_body("1700000000"),
    );
    assert!(mailgun.verify(&form, NOW_MS).is_ok());
    assert_eq!(
        webchat::sign(&Secret::new(WEBCHAT_SECRET), 1_700_000_000, body),
        webchat_request("1700000000", body).headers[2].1
    );
}
