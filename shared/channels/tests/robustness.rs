//! Hostile input never panics: every registered channel's handshake, verify
//! and parse run over its contract fixture's requests truncated, bit-flipped
//! and replaced by random bytes, with odd header values, and signed with
//! absurd timestamps.

mod common;

use std::sync::Arc;

use common::{Fixture, Mailbox, NOW_MS, signed};
use serde_json::Value;
use switchboard_channels::{SharedChannel, Verified, WebhookRequest, registry};

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

fn exercise(channel: &SharedChannel, request: &WebhookRequest) {
    let _ = channel.handshake(request, NOW_MS);
    if let Ok(verified) = channel.verify(request, NOW_MS) {
        let _ = channel.parse(request, &verified);
    }
    // Parsing runs only on verified requests, but must not panic on anything.
    let _ = channel.parse(request, &Verified::assume(request));
}

/// Every request of a channel's fixture, signed.
fn seeds(fixture: &Fixture, channel: &SharedChannel) -> Vec<WebhookRequest> {
    let mut specs: Vec<&Value> = vec![&fixture.json["message"]["request"], &fixture.json["retry"]];
    specs.extend(fixture.get("/batch/request"));
    specs.extend(
        fixture
            .get("/dropped")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    );
    let handshakes = fixture.get("/handshakes").and_then(Value::as_array);
    specs.extend(handshakes.into_iter().flatten().map(|h| &h["request"]));
    specs
        .into_iter()
        .map(|spec| signed(channel, spec, NOW_MS))
        .collect()
}

fn with_body(request: &WebhookRequest, body: Vec<u8>) -> WebhookRequest {
    let mut changed = request.clone();
    *changed.body_mut() = body.into();
    changed
}

#[test]
fn mutated_requests_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for spec in registry::CHANNELS {
        let fixture = Fixture::load(spec.name);
        let channel = fixture.build("http://127.0.0.1:9", Arc::new(Mailbox::default()));
        for seed in seeds(&fixture, &channel) {
            exercise(&channel, &seed);
            let body = seed.body().to_vec();
            for cut in (0..=body.len()).step_by((body.len() / 150).max(1)) {
                exercise(&channel, &with_body(&seed, body[..cut].to_vec()));
            }
            for _ in 0..300 {
                let mut flipped = body.clone();
                for _ in 0..=rng.below(4) {
                    if !flipped.is_empty() {
                        let at = rng.below(flipped.len());
                        flipped[at] = rng.next() as u8;
                    }
                }
                exercise(&channel, &with_body(&seed, flipped));
            }
            for content_type in [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=b",
                "multipart/form-data",
                "",
                "text/plain; charset=\"unterminated",
            ] {
                for _ in 0..40 {
                    let random: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                    let mut request = with_body(&seed, random);
                    request
                        .headers_mut()
                        .insert("content-type", content_type.parse().unwrap());
                    exercise(&channel, &request);
                }
            }
            let names: Vec<_> = seed.headers().keys().cloned().collect();
            for value in [
                "",
                " ",
                "v0=",
                "v1=zz",
                "sha256=",
                "-9223372036854775808",
                "9223372036854775807",
                "１２３",
            ] {
                for name in &names {
                    let mut request = seed.clone();
                    request
                        .headers_mut()
                        .insert(name.clone(), value.parse().unwrap());
                    exercise(&channel, &request);
                }
            }
        }
    }
}

#[test]
fn signed_requests_with_absurd_timestamps_are_refused_without_panic() {
    for spec in registry::CHANNELS {
        let fixture = Fixture::load(spec.name);
        let channel = fixture.build("http://127.0.0.1:9", Arc::new(Mailbox::default()));
        let Some(window) = channel.scheme().window().copied() else {
            continue;
        };
        let message = &fixture.json["message"]["request"];
        for then in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            0,
            -1,
            NOW_MS - (window.max_age_secs + 1) * 1000,
        ] {
            let request = signed(&channel, message, then);
            assert!(
                channel.verify(&request, NOW_MS).is_err(),
                "{}: {then}",
                spec.name
            );
            exercise(&channel, &request);
        }
        // The same request at the right time passes, so the refusals are the window's.
        assert!(
            channel
                .verify(&signed(&channel, message, NOW_MS), NOW_MS)
                .is_ok(),
            "{}",
            spec.name
        );
    }
}
