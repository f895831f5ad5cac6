//! Raw mail (mail-parser and what the email channels do with the result:
//! quoted history cut, addresses read, threading headers, the loop guard).
//! Nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::email::{
    Threading, address_of, auto_reply_block, display_name, domain_of, header, html_to_text,
    new_text, parse_mime,
};

fuzz_target!(|data: &[u8]| {
    let Ok(mail) = parse_mime(data) else {
        let _ = html_to_text(&String::from_utf8_lossy(data));
        return;
    };
    let _ = new_text(&mail.body);
    if let Some(from) = &mail.from {
        let _ = address_of(from).map(|address| domain_of(&address));
        let _ = display_name(from);
    }
    let _ = Threading::of(|name| header(&mail.headers, name));
    let ours = ["support@shop.example".to_owned()];
    let _ = auto_reply_block(
        &mail.headers,
        mail.from.as_deref().unwrap_or_default(),
        &ours,
    );
});
