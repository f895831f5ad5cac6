//! Webchat: a generic signed JSON channel for a business's own web chat widget
//! or app backend.
//!
//! # Integrating
//!
//! **Settings** (the `webchat` entry of the channel configuration):
//!
//! ```json
//! { "signing_secret": "a long random string", "reply_url": "https://chat.example.com/switchboard/replies",
//!   "account_id": "default", "replay_window_secs": 300 }
//! ```
//!
//! `account_id` (default `"default"`) and `replay_window_secs` (default 300) are optional.
//!
//! **Sending customer messages.** Your backend (never the browser: the secret
//! must stay on your server) POSTs JSON to `/webhooks/webchat` with:
//!
//! * `Content-Type: application/json`
//! * `X-Switchboard-Timestamp`: the current unix time in seconds;
//! * `X-Switchboard-Signature`: `v1=` followed by the lowercase hex
//!   HMAC-SHA256, keyed with `signing_secret`, of the string
//!   `"{timestamp}.{raw body}"`: the timestamp header's value, a dot, and the
//!   body bytes exactly as sent.
//!
//! Requests more than `replay_window_secs` away from our clock (either way) are
//! refused with 401, as are missing or wrong signatures.
//!
//! The body is one message, or `{"messages": [ … ]}` with up to 100:
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `conversation_id` | yes | your chat or thread id; our replies name it |
//! | `customer_id` | yes | your id for the customer |
//! | `message_id` | yes | your unique id for this message; a resend with the same id is ignored |
//! | `text` | yes | what the customer wrote (may be `""` when there are attachments) |
//! | `customer_name` | no | display name for the agents |
//! | `account_id` | no | your brand or site, when one deployment serves several; default from the settings |
//! | `sent_at` | no | unix seconds; default: the timestamp header |
//! | `attachments` | no | `[{"kind", "url", "mime_type", "name"}]`, every field optional; `kind` is one of `image`, `video`, `audio`, `file`, `sticker`, `location`, `other` (else guessed from `mime_type`) |
//!
//! A body that is not JSON or lacks a required field is answered with 400; an
//! accepted one with `200 {"ok": true}`, once the messages are queued.
//!
//! **Receiving replies.** Switchboard POSTs each reply to `reply_url` as JSON
//! `{"reply_id", "account_id", "conversation_id", "customer_id", "text"}`, signed
//! exactly as above with the same secret and headers, so verify it the same way
//! (and dedupe on `reply_id`, also sent as the `Idempotency-Key` header).
//! Answer 2xx when you have it; a 429 or 5xx (or no answer within 15 s) is
//! retried later, any other status is treated as a permanent refusal.
//!
//! In Python, signing and checking both come down to:
//!
//! ```text
//! mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
//! hmac.compare_digest(header_value, "v1=" + mac)   # and abs(time.time() - timestamp) <= 300
//! ```

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_domain::{
    Attachment, AttachmentKind, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret,
    SendError,
};

use crate::outbound::{self, permanent};
use crate::registry::{ChannelDeps, settings};
use crate::verify::{check_replay_window, hex_signature_matches, hmac_sha256};
use crate::{
    Channel, ConfigError, ParseError, SharedChannel, VerifyError, WebhookRequest, kind_for_mime,
};

const NAME: &str = "webchat";
pub const TIMESTAMP_HEADER: &str = "X-Switchboard-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Switchboard-Signature";
const DEFAULT_WINDOW_SECS: i64 = 300;
const DEFAULT_ACCOUNT: &str = "default";
/// Most messages one request may carry.
pub const MAX_BATCH: usize = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatConfig {
    pub signing_secret: Secret,
    /// Where replies are POSTed.
    pub reply_url: String,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub replay_window_secs: Option<i64>,
}

pub struct Webchat {
    signing_secret: Secret,
    reply_url: String,
    account_id: String,
    window_secs: i64,
    http: reqwest::Client,
}

/// Send-only settings, for checking requests without them.
pub const CHECK_PLACEHOLDERS: &[(&str, &str)] =
    &[("reply_url", "https://example.invalid/not-needed-to-check")];

pub fn build(value: &serde_json::Value, deps: &ChannelDeps) -> Result<SharedChannel, ConfigError> {
    let config: WebchatConfig = settings(NAME, value)?;
    Ok(std::sync::Arc::new(Webchat::new(
        config,
        deps.http.clone(),
    )?))
}

/// The signature header value for a body sent at `timestamp` (unix seconds):
/// `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    format!("v1={}", hex::encode(mac(secret, &timestamp, body)))
}

fn mac(secret: &Secret, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(
        secret.expose().as_bytes(),
        &[timestamp.as_bytes(), b".", body],
    )
}

impl Webchat {
    pub fn new(config: WebchatConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let unusable = |detail: &str| ConfigError::Unusable {
            channel: NAME.into(),
            detail: detail.into(),
        };
        if config.signing_secret.expose().len() < 16 {
            return Err(unusable("signing_secret must be at least 16 characters"));
        }
        let window_secs = config.replay_window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
        if window_secs <= 0 {
            return Err(unusable("replay_window_secs must be positive"));
        }
        let account_id = config.account_id.unwrap_or_else(|| DEFAULT_ACCOUNT.into());
        if account_id.trim().is_empty() {
            return Err(unusable("account_id is empty"));
        }
        let reply_url = outbound::http_url(NAME, "reply_url", &config.reply_url)?;
        Ok(Self {
            signing_secret: config.signing_secret,
            reply_url,
            account_id,
            window_secs,
            http,
        })
    }
}

#[async_trait]
impl Channel for Webchat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<(), VerifyError> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(VerifyError::Missing(TIMESTAMP_HEADER))?
            .trim();
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| VerifyError::Malformed(TIMESTAMP_HEADER))?;
        let presented = signature
            .trim()
            .strip_prefix("v1=")
            .ok_or(VerifyError::Malformed(SIGNATURE_HEADER))?;
        if !hex_signature_matches(
            &mac(&self.signing_secret, timestamp, &request.body),
            presented,
        ) {
            return Err(VerifyError::BadSignature);
        }
        check_replay_window(seconds, now_ms, self.window_secs)
    }

    fn parse(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
        let body: Value = serde_json::from_slice(&request.body)?;
        let items = match body {
            Value::Object(mut object) => match object.remove("messages") {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(ParseError::Invalid("messages must be an array".into())),
                None => vec![Value::Object(object)],
            },
            _ => return Err(ParseError::Invalid("body must be a JSON object".into())),
        };
        if items.len() > MAX_BATCH {
            return Err(ParseError::Invalid(format!(
                "at most {MAX_BATCH} messages per request"
            )));
        }
        let header_seconds = request
            .header(TIMESTAMP_HEADER)
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or_default();
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let wire: WireMessage = serde_json::from_value(item)
                    .map_err(|error| ParseError::Invalid(format!("message {index}: {error}")))?;
                self.normalise(wire, header_seconds)
                    .map_err(|detail| ParseError::Invalid(format!("message {index}: {detail}")))
            })
            .collect()
    }

    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let body = serde_json::to_vec(&WireReply {
            reply_id: &reply.reply_id,
            account_id: &reply.account_id,
            conversation_id: &reply.conversation_id,
            customer_id: &reply.customer_id,
            text: &reply.text,
        })
        .map_err(|_| permanent(NAME, "reply could not be serialised"))?;
        let timestamp = outbound::now_ms().div_euclid(1000);
        let request = self
            .http
            .post(&self.reply_url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                sign(&self.signing_secret, timestamp, &body),
            )
            .header("idempotency-key", &reply.reply_id)
            .body(body);
        let response = outbound::send(NAME, request).await?;
        let status = response.status;
        match outbound::check_status(NAME, status, format!("HTTP {}", status.as_u16())) {
            Ok(()) => {
                tracing::info!(channel = NAME, reply_id = %reply.reply_id, "reply sent");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(
                    channel = NAME,
                    reply_id = %reply.reply_id,
                    status = status.as_u16(),
                    transient = error.is_transient(),
                    "reply_url refused the reply"
                );
                Err(error)
            }
        }
    }
}

impl Webchat {
    fn normalise(
        &self,
        wire: WireMessage,
        header_seconds: i64,
    ) -> Result<InboundMessage, &'static str> {
        let required = |value: String, what: &'static str| {
            if value.trim().is_empty() {
                Err(what)
            } else {
                Ok(value)
            }
        };
        let conversation_id = required(wire.conversation_id, "conversation_id is empty")?;
        let customer_id = required(wire.customer_id, "customer_id is empty")?;
        let message_id = required(wire.message_id, "message_id is empty")?;
        let account_id = match wire.account_id {
            Some(account) if !account.trim().is_empty() => account,
            Some(_) => return Err("account_id is empty"),
            None => self.account_id.clone(),
        };
        let attachments: Vec<Attachment> = wire
            .attachments
            .into_iter()
            .map(WireAttachment::into_attachment)
            .collect();
        let kind = match (wire.text.trim().is_empty(), attachments.is_empty()) {
            (false, _) => MessageKind::Text,
            (true, false) => MessageKind::Media,
            (true, true) => return Err("message has neither text nor attachments"),
        };
        Ok(InboundMessage {
            channel: NAME.into(),
            account_id,
            customer_id,
            customer_name: wire.customer_name.filter(|name| !name.trim().is_empty()),
            conversation_id,
            provider_message_id: message_id,
            sent_at_ms: wire.sent_at.unwrap_or(header_seconds).saturating_mul(1000),
            kind,
            text: wire.text,
            attachments,
            reply: ReplyContext::default(),
        })
    }
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    account_id: Option<String>,
    conversation_id: String,
    customer_id: String,
    #[serde(default)]
    customer_name: Option<String>,
    message_id: String,
    text: String,
    #[serde(default)]
    sent_at: Option<i64>,
    #[serde(default)]
    attachments: Vec<WireAttachment>,
}

#[derive(Deserialize)]
struct WireAttachment {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl WireAttachment {
    fn into_attachment(self) -> Attachment {
        let named = match self.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("image") => Some(AttachmentKind::Image),
            Some("video") => Some(AttachmentKind::Video),
            Some("audio") => Some(AttachmentKind::Audio),
            Some("file") => Some(AttachmentKind::File),
            Some("sticker") => Some(AttachmentKind::Sticker),
            Some("location") => Some(AttachmentKind::Location),
            Some("other") => Some(AttachmentKind::Other),
            _ => None,
        };
        let kind = named
            .or_else(|| self.mime_type.as_deref().map(kind_for_mime))
            .unwrap_or(AttachmentKind::Other);
        Attachment {
            kind,
            provider_id: None,
            url: self.url,
            mime_type: self.mime_type,
            name: self.name,
        }
    }
}

#[derive(Serialize)]
struct WireReply<'a> {
    reply_id: &'a str,
    account_id: &'a str,
    conversation_id: &'a str,
    customer_id: &'a str,
    text: &'a str,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "webchat-test-secret";
    const NOW_MS: i64 = 1_700_000_030_000;
    const KNOWN_BODY: &str = r#"{"conversation_id":"conv-9","customer_id":"cust-7","customer_name":"Zoë","message_id":"m-1","text":"Do you ship to Canada? 你们发货吗","sent_at":1699999990}"#;
    /// Computed independently: python3 -c "import hmac,hashlib;
    /// print(hmac.new(b'webchat-test-secret', b'1700000000.' + KNOWN_BODY.encode(), hashlib.sha256).hexdigest())"
    const KNOWN_SIGNATURE: &str =
        "v1=90b2970ce9cd2cbec04c3d59733e633588a4b5891a5795e21912eddacb7483b0";

    fn channel() -> Webchat {
        Webchat::new(
            WebchatConfig {
                signing_secret: SECRET.into(),
                reply_url: "https://chat.example.com/replies".into(),
                account_id: None,
                replay_window_secs: None,
            },
            reqwest::Client::new(),
        )
        .unwrap()
    }

    fn signed(body: &str, timestamp: i64) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Switchboard-Timestamp".into(), timestamp.to_string()),
                (
                    "X-Switchboard-Signature".into(),
                    sign(&SECRET.into(), timestamp, body.as_bytes()),
                ),
            ],
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn known_answer_vector() {
        assert_eq!(
            sign(&SECRET.into(), 1_700_000_000, KNOWN_BODY.as_bytes()),
            KNOWN_SIGNATURE
        );
        let request = signed(KNOWN_BODY, 1_700_000_000);
        channel().verify(&request, NOW_MS).unwrap();
        let messages = channel().parse(&request).unwrap();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.channel, "webchat");
        assert_eq!(message.account_id, "default");
        assert_eq!(message.conversation_id, "conv-9");
        assert_eq!(message.customer_id, "cust-7");
        assert_eq!(message.customer_name.as_deref(), Some("Zoë"));
        assert_eq!(message.provider_message_id, "m-1");
        assert_eq!(message.sent_at_ms, 1_699_999_990_000);
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "Do you ship to Canada? 你们发货吗");
    }

    #[test]
    fn bad_requests_are_refused() {
        let webchat = channel();
        let mut tampered = signed(KNOWN_BODY, 1_700_000_000);
        tampered.body[5] ^= 1;
        assert!(matches!(
            webchat.verify(&tampered, NOW_MS),
            Err(VerifyError::BadSignature)
        ));
        assert!(matches!(
            webchat.verify(&signed(KNOWN_BODY, 1_700_000_030 - 301), NOW_MS),
            Err(VerifyError::Stale { window_secs: 300 })
        ));
        assert!(
            webchat
                .verify(&signed(KNOWN_BODY, 1_700_000_030 + 300), NOW_MS)
                .is_ok()
        );
        assert!(
            webchat
                .verify(&signed(KNOWN_BODY, 1_700_000_030 + 301), NOW_MS)
                .is_err()
        );
        let mut missing = signed(KNOWN_BODY, 1_700_000_000);
        missing.headers.truncate(2);
        assert!(matches!(
            webchat.verify(&missing, NOW_MS),
            Err(VerifyError::Missing(SIGNATURE_HEADER))
        ));
        let mut wrong_version = signed(KNOWN_BODY, 1_700_000_000);
        wrong_version.headers[2].1 = wrong_version.headers[2].1.replace("v1=", "v0=");
        assert!(matches!(
            webchat.verify(&wrong_version, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
        // A signature made with another secret.
        let mut other = signed(KNOWN_BODY, 1_700_000_000);
        other.headers[2].1 = sign(
            &"another-secret-of-16".into(),
            1_700_000_000,
            KNOWN_BODY.as_bytes(),
        );
        assert!(matches!(
            webchat.verify(&other, NOW_MS),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn batches_attachments_and_defaults() {
        let body = json!({ "messages": [
            { "account_id": "shop-2", "conversation_id": "c1", "customer_id": "u1", "message_id": "a", "text": "hi" },
            { "conversation_id": "c1", "customer_id": "u1", "message_id": "b", "text": "",
              "attachments": [
                { "kind": "IMAGE", "url": "https://cdn.example.com/1.png" },
                { "mime_type": "application/pdf", "name": "invoice.pdf" },
                { "kind": "hologram" }
              ] }
        ]})
        .to_string();
        let messages = channel().parse(&signed(&body, 1_700_000_000)).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].account_id, "shop-2");
        assert_eq!(messages[0].sent_at_ms, 1_700_000_000_000);
        assert_eq!(messages[1].account_id, "default");
        assert_eq!(messages[1].kind, MessageKind::Media);
        let kinds: Vec<_> = messages[1].attachments.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                AttachmentKind::Image,
                AttachmentKind::File,
                AttachmentKind::Other
            ]
        );
        assert_eq!(
            messages[1].attachments[0].url.as_deref(),
            Some("https://cdn.example.com/1.png")
        );
        assert_eq!(
            messages[1].attachments[1].name.as_deref(),
            Some("invoice.pdf")
        );

        assert!(
            channel()
                .parse(&signed(r#"{"messages":[]}"#, 1))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_or_wrong_fields_are_parse_errors() {
        let webchat = channel();
        let too_many = json!({ "messages": vec![json!({}); MAX_BATCH + 1] }).to_string();
        for body in [
            "",
            "[]",
            "\"text\"",
            r#"{"messages":{}}"#,
            r#"{"customer_id":"u","message_id":"m","text":"hi"}"#,
            r#"{"conversation_id":"c","message_id":"m","text":"hi"}"#,
            r#"{"conversation_id":"c","customer_id":"u","text":"hi"}"#,
            r#"{"conversation_id":"c","customer_id":"u","message_id":"m"}"#,
            r#"{"conversation_id":"c","customer_id":"u","message_id":" ","text":"hi"}"#,
            r#"{"conversation_id":"c","customer_id":"u","message_id":"m","text":"  "}"#,
            r#"{"conversation_id":"c","customer_id":7,"message_id":"m","text":"hi"}"#,
            r#"{"conversation_id":"c","customer_id":"u","message_id":"m","text":"hi","sent_at":"yesterday"}"#,
            r#"{"conversation_id":"c","customer_id":"u","message_id":"m","text":"hi","account_id":""}"#,
            too_many.as_str(),
        ] {
            assert!(
                webchat.parse(&signed(body, 1_700_000_000)).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn config_is_checked() {
        let config = |secret: &str, url: &str| WebchatConfig {
            signing_secret: secret.into(),
            reply_url: url.into(),
            account_id: None,
            replay_window_secs: None,
        };
        assert!(Webchat::new(config("short", "https://x.test"), reqwest::Client::new()).is_err());
        assert!(Webchat::new(config(SECRET, "x.test/replies"), reqwest::Client::new()).is_err());
        assert!(
            Webchat::new(
                config(SECRET, "https://x.test/replies"),
                reqwest::Client::new()
            )
            .is_ok()
        );
    }
}
