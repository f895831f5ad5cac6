//! The channel kit: what every channel module is built from.
//!
//! A channel is an [`Inbound`] half (handshake, verify over the raw bytes,
//! parse into normalised messages) and an [`Outbound`] half (send a reply),
//! plus a [`ChannelSpec`]: its name, typed settings, development-mode
//! settings and the Lambda function that hosts its route. Signature schemes
//! are data ([`signature`], [`schemes`]), replies go through one [`Sender`],
//! provider tokens through one [`TokenCache`].

pub mod buttons;
pub mod counters;
pub mod credentials;
pub mod crypto;
pub mod descriptor;
pub mod form;
pub mod handshake;
pub mod json;
pub mod meta;
pub mod raw;
pub mod request;
pub mod schemes;
pub mod sender;
pub mod signature;
pub mod sms;
pub mod sns;
pub mod stored;
pub mod wechat_family;
pub mod window;
pub mod xml;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_domain::{AttachmentKind, InboundMessage, OutboundReply, SendError};

pub use credentials::{Fresh, TokenCache, call_with_token, fetch_token, send_text_with_token};
pub use descriptor::{ChannelDeps, ChannelSpec, DevContext, Function, Need, Setting, SettingsOf};
pub use form::{Form, FormError, read_form};
pub use request::{
    HttpReply, PublicUrl, RequestExt, WebhookRequest, at_public_base, build_request, called_at,
    port_variants, reply,
};
pub use sender::{
    ApiErrors, ApiResponse, STATUS_ONLY, Sender, TextUnit, idempotency_key, permanent, split_text,
};
pub use signature::{Key, Scheme, SignError, Signature, SigningKey};
pub use window::{Allowed, ReplyWindow};

/// Why a request is not accepted as coming from the provider. Maps to 401.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp outside the {window_secs} s replay window")]
    Stale { window_secs: i64 },
    #[error("timestamp more than {skew_secs} s in the future")]
    Future { skew_secs: i64 },
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("signature already used")]
    Replayed,
    /// What verification needs could not be had just now (a provider's
    /// certificate); the provider should retry. Maps to 503.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
}

/// Why an authentic request cannot be read. Maps to 400. Never carries text
/// from the body (serde's messages quote it): kinds and positions only.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON ({kind} error at line {line} column {column})")]
    Json {
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error(transparent)]
    Form(#[from] FormError),
    /// Our own description of what is missing or wrong.
    #[error("{0}")]
    Invalid(String),
}

impl From<serde_json::Error> for ParseError {
    fn from(error: serde_json::Error) -> Self {
        use serde_json::error::Category;
        ParseError::Json {
            kind: match error.classify() {
                Category::Io => "io",
                Category::Syntax => "syntax",
                Category::Data => "data",
                Category::Eof => "end of input",
            },
            line: error.line(),
            column: error.column(),
        }
    }
}

/// A channel's configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The source (serde's message) names the field.
    #[error("channel {channel}: invalid settings")]
    Invalid {
        channel: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("channel {channel}: {detail}")]
    Unusable { channel: String, detail: String },
    #[error("unknown channel {0}")]
    UnknownChannel(String),
}

/// A setting a channel cannot work with; the kit adds the channel's name.
#[derive(Debug)]
pub struct Unusable(pub String);

pub fn unusable(detail: impl Into<String>) -> Unusable {
    Unusable(detail.into())
}

/// A secret setting that must not be empty.
pub fn required(name: &str, value: &switchboard_domain::Secret) -> Result<(), Unusable> {
    match value.expose().trim().is_empty() {
        true => Err(unusable(format!("{name} is empty"))),
        false => Ok(()),
    }
}

/// A request that passed verification.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// The verified bytes, decrypted where the provider encrypts.
    pub body: Bytes,
    /// A value the provider never sends twice (Mailgun's token); ingress
    /// refuses a request that reuses one with another body.
    pub nonce: Option<String>,
    /// The form, when verification had to read it.
    pub form: Option<Form>,
}

impl Verified {
    /// The request's body taken as verified, for parsing a request whose
    /// verification is not the point (tests, fixtures).
    pub fn assume(request: &WebhookRequest) -> Self {
        Self {
            body: request.body().clone(),
            ..Self::default()
        }
    }
}

/// What [`Inbound::parse`] returns.
pub type Parsed = Result<Vec<InboundMessage>, ParseError>;

/// What [`Inbound::handshake`] returns: an answer when the request is a handshake.
pub type Handshake = Result<Option<HttpReply>, VerifyError>;

/// The receiving half of a channel.
#[async_trait]
pub trait Inbound: Send + Sync {
    /// Fetches what verification needs from the network (a provider's
    /// signing certificate) and makes set-up calls a verified handshake asks
    /// for (confirming a subscription), before the synchronous checks.
    /// What it fetched after verifying (a mail stored elsewhere) goes in the
    /// request's extensions for `parse`. `webhook check` does not call it: it
    /// verifies with pinned settings.
    async fn prepare(
        &self,
        _request: &mut WebhookRequest,
        _now_ms: i64,
    ) -> Result<(), VerifyError> {
        Ok(())
    }

    /// Answers a set-up handshake (URL verification, challenge) when the
    /// request is one. A handshake the provider signs is verified here too.
    fn handshake(&self, _request: &WebhookRequest, _now_ms: i64) -> Handshake {
        Ok(None)
    }

    /// The scheme and key requests are verified with (the main one, where a
    /// provider has several), with this channel's window.
    fn signature(&self) -> &Signature;

    /// Checks that the request comes from the provider (constant-time, replay
    /// window where a timestamp is signed) and returns the verified bytes,
    /// decrypted where the provider encrypts.
    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        self.signature().verify(request, &[], now_ms)
    }

    /// The customer messages in an authentic request. Events that are not
    /// customer messages (receipts, typing, our own bot's posts) yield nothing.
    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed;

    /// The 2xx the provider expects once the messages are durably queued.
    fn acknowledge(&self) -> HttpReply {
        reply::json(200, &serde_json::json!({ "ok": true }))
    }

    /// An unsigned request as the provider would send it for a customer's
    /// message (`simulate`, development mode, tests).
    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest;

    /// Signs a request as the provider would.
    fn sign(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), SignError> {
        self.signature().sign(request, &[], now_ms, &nonce())
    }

    /// The scheme requests are verified with.
    fn scheme(&self) -> Scheme {
        self.signature().scheme
    }
}

/// The sending half of a channel.
#[async_trait]
pub trait Outbound: Send + Sync {
    /// Sends a reply in the customer's conversation.
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError>;
}

/// Both halves.
pub trait Channel: Inbound + Outbound {}

impl<T: Inbound + Outbound> Channel for T {}

pub type SharedChannel = Arc<dyn Channel>;

/// The attachment kind for a media type such as `image/png` (case-insensitive).
pub fn kind_for_mime(mime: &str) -> AttachmentKind {
    let top = mime.split('/').next().unwrap_or_default().trim();
    if top.eq_ignore_ascii_case("image") {
        AttachmentKind::Image
    } else if top.eq_ignore_ascii_case("video") {
        AttachmentKind::Video
    } else if top.eq_ignore_ascii_case("audio") {
        AttachmentKind::Audio
    } else {
        AttachmentKind::File
    }
}

/// The attachment kind a provider names (`image`, `video`, `audio`,
/// `sticker`; `file`, `document` and anything else are files).
pub fn kind_for_name(name: &str) -> AttachmentKind {
    match name {
        "image" | "picture" | "photo" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" | "voice" => AttachmentKind::Audio,
        "sticker" => AttachmentKind::Sticker,
        _ => AttachmentKind::File,
    }
}

/// A message with words is text; one without (attachments only) is media.
pub fn text_or_media(text: &str) -> switchboard_domain::MessageKind {
    match text.trim().is_empty() {
        true => switchboard_domain::MessageKind::Media,
        false => switchboard_domain::MessageKind::Text,
    }
}

/// A random token for development secrets.
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh 50-character nonce (the length of Mailgun's tokens).
pub fn nonce() -> String {
    format!("{}{}", random_token(), random_token())[..50].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_attachment_kinds() {
        assert_eq!(kind_for_mime("image/png"), AttachmentKind::Image);
        assert_eq!(kind_for_mime("Video/MP4"), AttachmentKind::Video);
        assert_eq!(
            kind_for_mime("audio/ogg; codecs=opus"),
            AttachmentKind::Audio
        );
        assert_eq!(kind_for_mime("application/pdf"), AttachmentKind::File);
        assert_eq!(kind_for_mime(""), AttachmentKind::File);
        assert_eq!(kind_for_name("sticker"), AttachmentKind::Sticker);
        assert_eq!(kind_for_name("document"), AttachmentKind::File);
        assert_eq!(text_or_media(" "), switchboard_domain::MessageKind::Media);
    }

    #[test]
    fn json_parse_errors_never_carry_body_text() {
        let error: ParseError =
            serde_json::from_str::<serde_json::Value>("{\"a\": my password is hunter2}")
                .unwrap_err()
                .into();
        let text = error.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("password"),
            "{text}"
        );
        assert!(text.contains("line 1"), "{text}");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Typed {
            n: i64,
        }
        let error: ParseError = serde_json::from_str::<Typed>(r#"{"n": "hunter2"}"#)
            .unwrap_err()
            .into();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
