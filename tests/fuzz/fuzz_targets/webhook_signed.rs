//! Any request to any channel, signed with the channel's own scheme (sealed
//! where the provider encrypts) through the kit's `sign`, so verification
//! passes and parse runs on what verify returns (checked on every channel's
//! own sample before fuzzing starts). Nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{NOW_MS, check_signed_samples, webhook_request, write_samples};

fuzz_target!(init: { check_signed_samples(); write_samples() }, |data: &[u8]| {
    let Some((built, mut request)) = webhook_request(data) else {
        return;
    };
    let channel = &built.channel;
    if channel.sign(&mut request, NOW_MS).is_err() {
        return;
    }
    let _ = channel.handshake(&request, NOW_MS);
    if let Ok(verified) = channel.verify(&request, NOW_MS) {
        let _ = channel.parse(&request, &verified);
    }
});
