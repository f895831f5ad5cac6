//! `multipart/form-data` (multer with our bounds): the first line is the
//! Content-Type's boundary parameter as sent, the rest the body. Nothing
//! panics, and a form read has at most `MAX_PARTS` parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::kit::build_request;
use switchboard_channels::kit::form::{MAX_PARTS, parse_multipart, read_form};

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let boundary = String::from_utf8_lossy(boundary);
    let body = bytes::Bytes::copy_from_slice(body);
    if let Ok(form) = parse_multipart(body.clone(), &boundary) {
        assert!(form.fields.len() + form.files.len() <= MAX_PARTS);
        let _ = form.attachments();
    }
    let headers = [(
        "content-type".to_owned(),
        format!("multipart/form-data; boundary={boundary}"),
    )];
    if let Ok(request) = build_request("POST", "/webhooks/sendgrid", &headers, body)
        && let Ok(form) = read_form(&request)
    {
        assert!(form.fields.len() + form.files.len() <= MAX_PARTS);
    }
});
