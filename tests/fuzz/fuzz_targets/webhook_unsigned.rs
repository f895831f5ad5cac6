//! An unsigned request, any shape, to any channel: verification refuses it,
//! a handshake hands nothing out for it, and nothing panics. Parsing runs on
//! the bytes as if verified too, since parse must not panic on anything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::Verified;
use switchboard_fuzz::{NOW_MS, webhook_request, write_samples};

fuzz_target!(init: write_samples(), |data: &[u8]| {
    let Some((built, request)) = webhook_request(data) else {
        return;
    };
    let channel = &built.channel;
    assert!(
        channel.verify(&request, NOW_MS).is_err(),
        "{}: an unsigned request passed verification",
        built.name
    );
    // A handshake may refuse (4xx) or answer a bare probe (Slack's unsigned
    // `ssl_check` wants an empty 200), but hands out nothing: X's CRC
    // challenge is unsigned by design, its answer an HMAC of the token under
    // our secret that proves we hold it.
    if let Ok(Some(answer)) = channel.handshake(&request, NOW_MS) {
        let hands_out = answer.status().is_success() && !answer.body().is_empty();
        assert!(
            !hands_out || built.name == "x",
            "{}: an unsigned request was answered as a handshake",
            built.name
        );
    }
    let _ = channel.parse(&request, &Verified::assume(&request));
});
