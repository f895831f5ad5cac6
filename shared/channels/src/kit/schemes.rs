//! The signature scheme of every channel Switchboard supports or plans to,
//! as data (facts from `SPEC.md` of the channel specifications, section per
//! channel). A channel module verifies and signs with its constant here.
//!
//! Windows: the past bound is the provider's documented one where it has one;
//! the future bound is a small clock skew (60 s) everywhere, so a request
//! cannot be made to stay valid longer than the provider intended.
//!
//! Amazon SES signs through SNS: RSA with a certificate fetched from AWS
//! ([`SNS`], [`super::sns`]).

use super::signature::{At, Digest, Encoding, Mac, MacScheme, Part, Scheme, Unit, Window};

pub const SKEW_SECS: i64 = 60;

const fn window(at: At, unit: Unit, max_age_secs: i64) -> Option<Window> {
    Some(Window {
        at,
        unit,
        max_age_secs,
        max_future_secs: SKEW_SECS,
    })
}

/// HMAC-SHA256 over the raw body, hex or base64, in one header.
const fn body_hmac_sha256(
    header: &'static str,
    prefix: &'static str,
    encoding: Encoding,
) -> Scheme {
    Scheme::Mac(MacScheme {
        mac: Mac::Hmac(Digest::Sha256),
        signed: &[Part::Body],
        sorted: false,
        signature: At::Header(header),
        prefix,
        encoding,
        timestamp: None,
        nonce: None,
    })
}

/// Slack: `v0=` hex HMAC-SHA256 of `v0:{timestamp}:{body}`, 5 minutes.
pub const SLACK: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha256),
    signed: &[
        Part::Text("v0:"),
        Part::Timestamp,
        Part::Text(":"),
        Part::Body,
    ],
    sorted: false,
    signature: At::Header("X-Slack-Signature"),
    prefix: "v0=",
    encoding: Encoding::Hex,
    timestamp: window(At::Header("X-Slack-Request-Timestamp"), Unit::Seconds, 300),
    nonce: None,
});

/// Telegram: the `secret_token` given to `setWebhook`, echoed in a header.
pub const TELEGRAM: Scheme = Scheme::SharedSecret {
    header: "X-Telegram-Bot-Api-Secret-Token",
};

/// Our own web chat: `v1=` hex HMAC-SHA256 of `{timestamp}.{body}`.
pub const WEBCHAT: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha256),
    signed: &[Part::Timestamp, Part::Text("."), Part::Body],
    sorted: false,
    signature: At::Header("X-Switchboard-Signature"),
    prefix: "v1=",
    encoding: Encoding::Hex,
    timestamp: window(At::Header("X-Switchboard-Timestamp"), Unit::Seconds, 300),
    nonce: None,
});

/// Mailgun: form fields; hex HMAC-SHA256 of `timestamp + token`. The window is
/// ours to choose (15 minutes); the token is a nonce, refused when replayed.
pub const MAILGUN: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha256),
    signed: &[Part::Timestamp, Part::Nonce],
    sorted: false,
    signature: At::Form("signature"),
    prefix: "",
    encoding: Encoding::Hex,
    timestamp: window(At::Form("timestamp"), Unit::Seconds, 900),
    nonce: Some(At::Form("token")),
});

/// LINE: base64 HMAC-SHA256 of the body with the channel secret.
pub const LINE: Scheme = body_hmac_sha256("x-line-signature", "", Encoding::Base64);

/// Meta (WhatsApp, Messenger, Instagram): `sha256=` hex HMAC-SHA256 of the
/// body with the app secret.
pub const META: Scheme = body_hmac_sha256("X-Hub-Signature-256", "sha256=", Encoding::Hex);

/// Meta's legacy header: `sha1=` hex HMAC-SHA1 of the body.
pub const META_SHA1: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha1),
    signed: &[Part::Body],
    sorted: false,
    signature: At::Header("X-Hub-Signature"),
    prefix: "sha1=",
    encoding: Encoding::Hex,
    timestamp: None,
    nonce: None,
});

/// Viber: hex HMAC-SHA256 of the body with the auth token.
pub const VIBER: Scheme = body_hmac_sha256("X-Viber-Content-Signature", "", Encoding::Hex);

/// X (Account Activity): `sha256=` base64 HMAC-SHA256 of the body with the
/// consumer secret.
pub const X: Scheme = body_hmac_sha256("x-twitter-webhooks-signature", "sha256=", Encoding::Base64);

/// X's CRC challenge: the answer's `response_token` is this scheme's
/// [`Scheme::expected`] for the GET request.
pub const X_CRC: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha256),
    signed: &[Part::Value(At::Query("crc_token"))],
    sorted: false,
    signature: At::Field("response_token"),
    prefix: "sha256=",
    encoding: Encoding::Base64,
    timestamp: None,
    nonce: None,
});

/// Twilio: base64 HMAC-SHA1 of the public URL followed by the sorted form
/// fields, with the auth token.
pub const TWILIO: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha1),
    signed: &[Part::Url, Part::SortedForm],
    sorted: false,
    signature: At::Header("X-Twilio-Signature"),
    prefix: "",
    encoding: Encoding::Base64,
    timestamp: None,
    nonce: None,
});

/// Discord: Ed25519 over `timestamp ‖ body` with the application's public key.
/// Discord does not document a window; interactions are not retried.
pub const DISCORD: Scheme = Scheme::Ed25519 {
    signed: &[Part::Timestamp, Part::Body],
    signature: At::Header("X-Signature-Ed25519"),
    timestamp: window(At::Header("X-Signature-Timestamp"), Unit::Seconds, 300),
};

/// SendGrid Event Webhook: ECDSA P-256/SHA-256 over `timestamp ‖ body`.
/// SendGrid retries for 24 hours, possibly with the first signature, so the
/// window is a day.
pub const SENDGRID_EVENTS: Scheme = Scheme::EcdsaP256 {
    signed: &[Part::Timestamp, Part::Body],
    signature: At::Header("X-Twilio-Email-Event-Webhook-Signature"),
    timestamp: window(
        At::Header("X-Twilio-Email-Event-Webhook-Timestamp"),
        Unit::Seconds,
        86_400,
    ),
};

/// Amazon SNS (SES receipt rules to HTTPS): RSA SHA-1/SHA-256 over the
/// envelope's canonical string; the signed `Timestamp` at most a day old
/// (SNS retries for hours under a custom delivery policy; duplicates within
/// the week of dedupe retention are dropped by `MessageId`).
pub const SNS: Scheme = Scheme::Sns {
    max_age_secs: 86_400,
};

/// SendGrid Inbound Parse and Postmark inbound are unsigned: basic auth in
/// the URL registered with the provider.
pub const BASIC_AUTH: Scheme = Scheme::BasicAuth;

/// WeChat Official Account, plain mode: hex SHA-1 of the sorted
/// `token, timestamp, nonce` in the query (the body is not covered).
pub const WECHAT: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hash(Digest::Sha1),
    signed: &[Part::Secret, Part::Timestamp, Part::Nonce],
    sorted: true,
    signature: At::Query("signature"),
    prefix: "",
    encoding: Encoding::Hex,
    timestamp: window(At::Query("timestamp"), Unit::Seconds, 300),
    nonce: Some(At::Query("nonce")),
});

/// WeChat safe mode and WeCom: hex SHA-1 of the sorted `token, timestamp,
/// nonce, encrypted` (the `<Encrypt>` text, or `echostr` on the GET), which
/// the channel passes as the field `Encrypt`.
pub const WECHAT_ENCRYPTED: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hash(Digest::Sha1),
    signed: &[
        Part::Secret,
        Part::Timestamp,
        Part::Nonce,
        Part::Value(At::Field("Encrypt")),
    ],
    sorted: true,
    signature: At::Query("msg_signature"),
    prefix: "",
    encoding: Encoding::Hex,
    timestamp: window(At::Query("timestamp"), Unit::Seconds, 300),
    nonce: Some(At::Query("nonce")),
});

/// Feishu / Lark: hex SHA-256 (a plain hash, not an HMAC) of
/// `timestamp + nonce + encrypt_key + body`. UNCONFIRMED: Feishu's retry
/// schedule; the window allows an hour.
pub const FEISHU: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hash(Digest::Sha256),
    signed: &[Part::Timestamp, Part::Nonce, Part::Secret, Part::Body],
    sorted: false,
    signature: At::Header("X-Lark-Signature"),
    prefix: "",
    encoding: Encoding::Hex,
    timestamp: window(At::Header("X-Lark-Request-Timestamp"), Unit::Seconds, 3_600),
    nonce: Some(At::Header("X-Lark-Request-Nonce")),
});

/// DingTalk robot: base64 HMAC-SHA256 of `timestamp + "\n" + app_secret`,
/// keyed with the app secret; the timestamp is in milliseconds, 1 hour.
pub const DINGTALK: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha256),
    signed: &[Part::Timestamp, Part::Text("\n"), Part::Secret],
    sorted: false,
    signature: At::Header("sign"),
    prefix: "",
    encoding: Encoding::Base64,
    timestamp: window(At::Header("timestamp"), Unit::Millis, 3_600),
    nonce: None,
});
