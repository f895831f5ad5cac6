//! Every channel is one module of the same shape: answer set-up handshakes,
//! verify the request over its raw bytes, parse it into normalised messages,
//! and send a reply. Adding a channel touches its module and one registry line.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use switchboard_domain::{AttachmentKind, InboundMessage, OutboundReply, ReplySender, SendError};

pub mod email;
pub mod form;
pub mod http;
pub mod mailgun;
pub mod notify;
mod outbound;
pub mod registry;
pub mod slack;
pub mod telegram;
pub mod verify;
pub mod webchat;

pub use http::{HttpReply, WebhookRequest};
pub use registry::{ChannelDeps, Registry};

/// Why a request is not accepted as coming from the provider. Maps to 401.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp outside the {window_secs} s replay window")]
    Stale { window_secs: i64 },
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Why an authentic request cannot be read. Maps to 400.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A channel's configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("channel {channel}: {source}")]
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

/// One messaging channel.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Registry name, also the webhook path segment: `/webhooks/{name}`.
    fn name(&self) -> &'static str;

    /// Answers a set-up handshake (URL verification, challenge) when the request
    /// is one. A handshake the provider signs is verified here as well.
    fn handshake(
        &self,
        _request: &WebhookRequest,
        _now_ms: i64,
    ) -> Result<Option<HttpReply>, VerifyError> {
        Ok(None)
    }

    /// Checks that the request comes from the provider: signature over the raw
    /// bytes in constant time, and the replay window where a timestamp is signed.
    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<(), VerifyError>;

    /// The customer messages in an authentic request. Events that are not
    /// customer messages (receipts, typing, our own bot's posts) yield nothing.
    fn parse(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError>;

    /// The 2xx the provider expects once the messages are durably queued.
    fn acknowledge(&self) -> HttpReply {
        HttpReply::json(200, &serde_json::json!({ "ok": true }))
    }

    /// Sends a reply in the customer's conversation.
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError>;
}

/// Channel configuration as loaded from the config file or secret: one JSON
/// object per channel name, holding that channel's secrets and settings.
pub type ChannelSettings = BTreeMap<String, serde_json::Value>;

/// Routes replies to the channel they belong to.
#[async_trait]
impl ReplySender for Registry {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        match self.get(&reply.channel) {
            Some(channel) => channel.send(reply).await,
            None => Err(SendError::Permanent {
                channel: reply.channel.clone(),
                detail: "channel is not configured".into(),
                source: None,
            }),
        }
    }
}

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
    }
}
