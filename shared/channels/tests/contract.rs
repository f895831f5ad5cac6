//! The contract every channel keeps, run for every channel of the registry
//! with its own fixture (`tests/fixtures/<channel>.json`):
//!
//! * a signed request is accepted and normalised as the fixture expects;
//! * a changed body (where the provider signs it), a foreign signature and a
//!   changed timestamp are refused, and so is a stale request;
//! * the set-up handshakes are answered;
//! * every message of a batched request is yielded;
//! * the provider's retry has the same dedupe keys (so it is queued once);
//! * our own bot's messages, receipts and other events yield nothing;
//! * the reply is formatted as the provider documents, checked at a recording
//!   stand-in server (or mailbox, for email).

mod common;

use std::sync::Arc;

use common::{Fixture, Mailbox, NOW_MS, StandIn, request, signed};
use serde_json::Value;
use switchboard_channels::kit::signature::At;
use switchboard_channels::{RequestExt, SharedChannel, VerifyError, WebhookRequest, registry};
use switchboard_domain::{InboundMessage, OutboundReply};

#[tokio::test]
async fn every_channel_keeps_the_contract() {
    for spec in registry::CHANNELS {
        contract(Fixture::load(spec.name)).await;
    }
}

fn accept(channel: &SharedChannel, request: &WebhookRequest, what: &str) -> Vec<InboundMessage> {
    let verified = channel
        .verify(request, NOW_MS)
        .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
    channel
        .parse(request, &verified)
        .unwrap_or_else(|e| panic!("{what}: unreadable: {e}"))
}

async fn contract(fixture: Fixture) {
    let name = fixture.channel;
    let stand_in = StandIn::start().await;
    let mailbox = Arc::new(Mailbox::default());
    let channel = fixture.build(&stand_in.base, mailbox.clone());

    // Accepted and normalised.
    let message_spec = &fixture
        .get("/message/request")
        .unwrap_or_else(|| panic!("{name}: no message"));
    let good = signed(&channel, message_spec, NOW_MS);
    let messages = accept(&channel, &good, name);
    let expected = fixture
        .get("/message/expect")
        .and_then(Value::as_array)
        .unwrap();
    assert_eq!(messages.len(), expected.len(), "{name}: messages");
    for (message, expect) in messages.iter().zip(expected) {
        let actual = serde_json::to_value(message).unwrap();
        for (field, value) in expect.as_object().unwrap() {
            assert_eq!(&actual[field], value, "{name}: {field}");
        }
        assert_eq!(message.channel, name);
    }

    // A changed body, a foreign signature, a changed timestamp, a stale request.
    if fixture.get("/body_signed") == Some(&Value::Bool(true)) {
        let mut changed = good.clone();
        let extra = if good.content_type().contains("json") {
            " "
        } else {
            "&x=1"
        };
        *changed.body_mut() = [good.body().as_ref(), extra.as_bytes()].concat().into();
        assert!(
            channel.verify(&changed, NOW_MS).is_err(),
            "{name}: changed body accepted"
        );
    }
    let foreign = signed(&fixture.impostor(), message_spec, NOW_MS);
    assert!(
        matches!(
            channel.verify(&foreign, NOW_MS),
            Err(VerifyError::BadSignature)
        ),
        "{name}: a foreign signature was not refused as such"
    );
    if let Some(window) = channel.scheme().window().copied() {
        let tampered = shift_timestamp(&good, window.at);
        assert!(
            channel.verify(&tampered, NOW_MS).is_err(),
            "{name}: changed timestamp accepted"
        );
        let then = NOW_MS - (window.max_age_secs + 10) * 1000;
        let stale = signed(&channel, message_spec, then);
        assert!(
            matches!(
                channel.verify(&stale, NOW_MS),
                Err(VerifyError::Stale { .. })
            ),
            "{name}: stale request accepted"
        );
    }
    assert!(
        channel.verify(&request(message_spec), NOW_MS).is_err(),
        "{name}: unsigned accepted"
    );

    // Handshakes.
    for handshake in fixture
        .get("/handshakes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let request = if handshake.get("unsigned") == Some(&Value::Bool(true)) {
            request(&handshake["request"])
        } else {
            signed(&channel, &handshake["request"], NOW_MS)
        };
        let reply = channel
            .handshake(&request, NOW_MS)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: handshake not answered"));
        assert_eq!(
            reply.status().as_u16() as u64,
            handshake["status"].as_u64().unwrap(),
            "{name}"
        );
        let body = String::from_utf8_lossy(reply.body());
        assert!(
            body.contains(handshake["body"].as_str().unwrap()),
            "{name}: handshake answer {body}"
        );
    }

    // Batches.
    if let Some(batch) = fixture.get("/batch") {
        let messages = accept(&channel, &signed(&channel, &batch["request"], NOW_MS), name);
        assert_eq!(
            messages.len() as u64,
            batch["count"].as_u64().unwrap(),
            "{name}: batch"
        );
    }

    // The provider's retry: same dedupe keys.
    let retry = fixture
        .get("/retry")
        .unwrap_or_else(|| panic!("{name}: no retry"));
    let again = accept(&channel, &signed(&channel, retry, NOW_MS + 1000), name);
    let keys = |messages: &[InboundMessage]| {
        messages
            .iter()
            .map(InboundMessage::dedupe_key)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&again), keys(&messages), "{name}: a retry must dedupe");

    // Our own messages, receipts and other events.
    for dropped in fixture
        .get("/dropped")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let messages = accept(&channel, &signed(&channel, dropped, NOW_MS), name);
        assert!(
            messages.is_empty(),
            "{name}: should yield nothing: {dropped}"
        );
    }

    let text = "Orders leave within one working day. 一个工作日内发货。";

    // The reply, as the provider documents it.
    let reply = OutboundReply::to_message(&messages[0], text, "reply-contract-1");
    channel
        .send(&reply)
        .await
        .unwrap_or_else(|e| panic!("{name}: send failed: {e}"));
    let fill = |value: &str| {
        value
            .replace("{text}", text)
            .replace("{reply_id}", &reply.reply_id)
    };
    let expect = fixture
        .get("/reply")
        .unwrap_or_else(|| panic!("{name}: no reply"));
    if let Some(Value::Object(headers)) = expect.get("email") {
        let sent = mailbox.0.lock().unwrap().remove(0);
        for (header, value) in headers {
            assert_eq!(
                sent.headers().get_raw(header),
                Some(fill(value.as_str().unwrap()).as_str()),
                "{name}: {header}"
            );
        }
        return;
    }
    // A channel whose tokens expire fetches one first, then calls once.
    let mut received = stand_in.take();
    if let Some(token_path) = expect.get("token_path").and_then(Value::as_str) {
        let fetched = received
            .iter()
            .filter(|call| call.path.ends_with(token_path))
            .count();
        assert_eq!(fetched, 1, "{name}: one token fetch");
        received.retain(|call| !call.path.ends_with(token_path));
    }
    assert_eq!(received.len(), 1, "{name}: one call");
    let call = &received[0];
    assert!(
        call.path.ends_with(expect["path"].as_str().unwrap()),
        "{name}: {}",
        call.path
    );
    if let Some(query) = expect.get("query").and_then(Value::as_str) {
        assert!(call.query.contains(query), "{name}: query {}", call.query);
    }
    for (header, value) in expect
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let actual = call.headers.get(header).and_then(|v| v.to_str().ok());
        assert_eq!(
            actual,
            Some(fill(value.as_str().unwrap()).as_str()),
            "{name}: {header}"
        );
    }
    // A form-encoded API call (Twilio's Messages API), field by field.
    if let Some(Value::Object(fields)) = expect.get("form") {
        let sent: Vec<(String, String)> = form_urlencoded::parse(&call.body).into_owned().collect();
        for (field, value) in fields {
            let actual = sent
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.clone());
            assert_eq!(
                actual,
                Some(fill(value.as_str().unwrap())),
                "{name}: {field}"
            );
        }
        return;
    }
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    for (pointer, value) in expect["json"].as_object().unwrap() {
        let value = match value {
            Value::String(text) => Value::String(fill(text)),
            other => other.clone(),
        };
        assert_eq!(
            body.pointer(pointer),
            Some(&value),
            "{name}: {pointer} in {body}"
        );
    }
    buttons(&fixture, &channel, &stand_in, &messages[0], text).await;
}

/// Where the channel has buttons: a reply's choices as the provider
/// documents them, and a tap on one coming back as the customer's message.
async fn buttons(
    fixture: &Fixture,
    channel: &SharedChannel,
    stand_in: &StandIn,
    message: &InboundMessage,
    text: &str,
) {
    let name = fixture.channel;
    let Some(buttons) = fixture.get("/buttons") else {
        return;
    };
    for case in buttons["replies"].as_array().unwrap() {
        let mut reply = OutboundReply::to_message(message, text, "reply-contract-choices");
        reply.choices = serde_json::from_value(case["choices"].clone()).unwrap();
        channel
            .send(&reply)
            .await
            .unwrap_or_else(|e| panic!("{name}: send with choices failed: {e}"));
        let calls = stand_in.take();
        let body: Value = serde_json::from_slice(&calls.last().unwrap().body).unwrap();
        for (pointer, value) in case["json"].as_object().unwrap() {
            let value = match value {
                Value::String(expected) => Value::String(expected.replace("{text}", text)),
                other => other.clone(),
            };
            assert_eq!(
                body.pointer(pointer),
                Some(&value),
                "{name}: {pointer} in {body}"
            );
        }
    }
    let Some(tap) = buttons.get("tap") else {
        return;
    };
    let taps = accept(channel, &signed(channel, &tap["request"], NOW_MS), name);
    let expected = tap["expect"].as_array().unwrap();
    assert_eq!(taps.len(), expected.len(), "{name}: taps");
    for (message, expect) in taps.iter().zip(expected) {
        let actual = serde_json::to_value(message).unwrap();
        for (field, value) in expect.as_object().unwrap() {
            assert_eq!(&actual[field], value, "{name}: tap {field}");
        }
    }
}

/// The same request with its signed timestamp one second later.
fn shift_timestamp(request: &WebhookRequest, at: At) -> WebhookRequest {
    let later = |value: &str| (value.trim().parse::<i64>().unwrap() + 1).to_string();
    let mut changed = request.clone();
    match at {
        At::Header(name) => {
            let value = later(request.header(name).unwrap());
            changed.headers_mut().insert(name, value.parse().unwrap());
        }
        At::Form(name) => {
            let fields = request.form_fields().into_iter().map(|(k, v)| {
                let v = if k == name { later(&v) } else { v };
                (k, v)
            });
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            *changed.body_mut() = body.into();
        }
        At::Query(name) => {
            let query = form_urlencoded::parse(
                request.uri().query().unwrap_or_default().as_bytes(),
            )
            .map(|(k, v)| {
                let v = if k == name { later(&v) } else { v.into_owned() };
                (k.into_owned(), v)
            });
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            *changed.uri_mut() = format!("{}?{query}", request.uri().path()).parse().unwrap();
        }
        At::Field(_) => unreachable!("a timestamp travels in the request"),
    }
    changed
}

/// Fixtures exist only for registered channels, so none goes stale unnoticed.
#[test]
fn every_fixture_belongs_to_a_registered_channel() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".json")
            .to_owned();
        assert!(
            registry::spec(&name).is_some(),
            "fixture for unknown channel {name}"
        );
    }
}

/// The kit's promise: a channel is a small module. Lines outside its test
/// module, comments and blank lines included (`src/<channel>.rs`).
#[test]
fn every_channel_module_fits_in_250_lines() {
    for spec in registry::CHANNELS {
        let path = format!("{}/src/{}.rs", env!("CARGO_MANIFEST_DIR"), spec.name);
        let source = std::fs::read_to_string(&path).unwrap();
        let code = source.split("#[cfg(test)]\nmod tests").next().unwrap();
        let lines = code.trim_end().lines().count();
        assert!(lines <= 250, "{path}: {lines} lines without its tests");
    }
}
