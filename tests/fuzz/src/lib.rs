//! What the fuzz targets share: every registered channel built with its
//! development settings, and the input format of the webhook targets.
//!
//! A webhook input is one byte that picks the channel (its index in the
//! registry, modulo the number of channels), then an HTTP-like request:
//!
//! ```text
//! METHOD PATH?QUERY\n
//! name: value\n        (header lines; ones `http` refuses are skipped)
//! \n
//! body bytes
//! ```
//!
//! `tests/fuzz/seeds.py` writes the contract fixtures in this form.

use std::sync::LazyLock;

use switchboard_channels::kit::{Function, PublicUrl};
use switchboard_channels::registry::{self, CHANNELS};
use switchboard_channels::{ChannelDeps, SharedChannel, WebhookRequest};

/// The time every request is verified and signed at, so a crash reproduces.
pub const NOW_MS: i64 = 1_700_000_030_000;

/// A registered channel, built once.
pub struct Built {
    pub name: &'static str,
    pub channel: SharedChannel,
    /// A customer id of the kind the channel has, as `simulate` picks it.
    pub customer: &'static str,
}

/// Every registered channel, in registry order, with development settings.
pub static BUILT: LazyLock<Vec<Built>> = LazyLock::new(|| {
    let settings = registry::dev_settings("fuzz-seed", "Shop <support@shop.example>", |name| {
        format!("http://127.0.0.1:9/stand-in/{name}")
    });
    let deps = ChannelDeps::offline();
    CHANNELS
        .iter()
        .map(|spec| Built {
            name: spec.name,
            customer: match spec.function {
                Function::IngressEmail => "customer@example.com",
                _ => "10001",
            },
            channel: registry::build(spec.name, &settings[spec.name], &deps)
                .unwrap_or_else(|e| panic!("development settings of {}: {e}", spec.name)),
        })
        .collect()
});

/// The channel and request an input describes; `None` when the request line
/// cannot make a request at all.
pub fn webhook_request(data: &[u8]) -> Option<(&'static Built, WebhookRequest)> {
    let (&pick, rest) = data.split_first()?;
    let built = &BUILT[usize::from(pick) % BUILT.len()];
    let (head, body) = match rest.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, target) = request_line
        .split_once(' ')
        .unwrap_or(("POST", request_line));
    let target = match target.trim() {
        "" => format!("/webhooks/{}", built.name),
        target => target.to_owned(),
    };
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::POST))
        .uri(target.as_str());
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = http::HeaderName::from_bytes(name.trim().as_bytes());
        let value = http::HeaderValue::from_bytes(value.trim().as_bytes());
        if let (Ok(name), Ok(value)) = (name, value) {
            builder = builder.header(name, value);
        }
    }
    let mut request = builder.body(bytes::Bytes::copy_from_slice(body)).ok()?;
    // As the router does: the URL the provider called (Twilio signs it).
    let url = format!("https://support.example.com{target}");
    request.extensions_mut().insert(PublicUrl(url));
    Some((built, request))
}

/// A request in the input format, for the channel at `index`.
pub fn encode(index: usize, request: &WebhookRequest) -> Vec<u8> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let mut out = vec![u8::try_from(index).unwrap_or_default()];
    out.extend_from_slice(format!("{} {target}\n", request.method()).as_bytes());
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(request.body());
    out
}

/// Writes each channel's own sample request (what `simulate` sends, before
/// signing) into the folder `SWITCHBOARD_FUZZ_SAMPLES` names, if set: seeds
/// beside the contract fixtures, in plain text where a provider encrypts.
pub fn write_samples() {
    let Some(folder) = std::env::var_os("SWITCHBOARD_FUZZ_SAMPLES") else {
        return;
    };
    let folder = std::path::PathBuf::from(folder);
    std::fs::create_dir_all(&folder).expect("the samples folder can be made");
    for (index, built) in BUILT.iter().enumerate() {
        let request = built.channel.sample(
            built.customer,
            "Where is my order? 我的包裹在哪里？",
            NOW_MS,
        );
        let path = folder.join(format!("sample-{}", built.name));
        std::fs::write(&path, encode(index, &request)).expect("a sample can be written");
    }
}

/// Each channel's own sample, signed through `sign`, passes `verify` and
/// parses into at least one message: the signed target reaches parse on
/// every channel. Panics (before fuzzing starts) naming a channel that does not.
pub fn check_signed_samples() {
    for built in BUILT.iter() {
        let channel = &built.channel;
        let mut request = channel.sample(built.customer, "Where is my order?", NOW_MS);
        channel
            .sign(&mut request, NOW_MS)
            .unwrap_or_else(|e| panic!("{}: its sample cannot be signed: {e}", built.name));
        let verified = channel
            .verify(&request, NOW_MS)
            .unwrap_or_else(|e| panic!("{}: its signed sample is refused: {e}", built.name));
        let messages = channel
            .parse(&request, &verified)
            .unwrap_or_else(|e| panic!("{}: its signed sample does not parse: {e}", built.name));
        assert!(
            !messages.is_empty(),
            "{}: its sample holds no message",
            built.name
        );
    }
}
