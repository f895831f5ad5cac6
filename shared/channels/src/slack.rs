//! Slack Events API.
//!
//! Every request is signed: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing
//! secret, "v0:{X-Slack-Request-Timestamp}:{raw body}")>`, and the timestamp
//! must lie within the replay window on either side of now. The
//! `url_verification` handshake is signed like any other request; the
//! `ssl_check` probe of slash commands is not.
//!
//! Settings:
//!
//! ```json
//! { "signing_secret": "…", "bot_token": "xoxb-…", "api_base": "https://slack.com/api", "replay_window_secs": 300 }
//! ```

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{
    Attachment, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret, SendError,
};

use crate::outbound::{self, permanent, transient};
use crate::registry::{ChannelDeps, settings};
use crate::verify::{check_replay_window, hex_signature_matches, hmac_sha256};
use crate::{
    Channel, ConfigError, HttpReply, ParseError, SharedChannel, VerifyError, WebhookRequest,
    kind_for_mime,
};

const NAME: &str = "slack";
const SIGNATURE_HEADER: &str = "X-Slack-Signature";
const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
const DEFAULT_API_BASE: &str = "https://slack.com/api";
const DEFAULT_WINDOW_SECS: i64 = 300;

/// Message subtypes that carry something a person wrote (or changed).
const CUSTOMER_SUBTYPES: &[&str] = &[
    "file_share",
    "message_changed",
    "message_deleted",
    "thread_broadcast",
];

/// `chat.postMessage` errors that may succeed on a later attempt.
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's signing secret (Basic Information → App Credentials).
    pub signing_secret: Secret,
    /// The bot user OAuth token, `xoxb-…`.
    pub bot_token: Secret,
    #[serde(default)]
    pub api_base: Option<String>,
    #[serde(default)]
    pub replay_window_secs: Option<i64>,
}

pub struct Slack {
    signing_secret: Secret,
    bot_token: Secret,
    api_base: String,
    window_secs: i64,
    http: reqwest::Client,
}

/// Send-only settings, for checking requests without them.
pub const CHECK_PLACEHOLDERS: &[(&str, &str)] = &[("bot_token", "xoxb-not-needed-to-check")];

pub fn build(value: &serde_json::Value, deps: &ChannelDeps) -> Result<SharedChannel, ConfigError> {
    let config: SlackConfig = settings(NAME, value)?;
    Ok(std::sync::Arc::new(Slack::new(config, deps.http.clone())?))
}

impl Slack {
    pub fn new(config: SlackConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let unusable = |detail: &str| ConfigError::Unusable {
            channel: NAME.into(),
            detail: detail.into(),
        };
        if config.signing_secret.is_empty() {
            return Err(unusable("signing_secret is empty"));
        }
        if config.bot_token.is_empty() {
            return Err(unusable("bot_token is empty"));
        }
        let window_secs = config.replay_window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
        if window_secs <= 0 {
            return Err(unusable("replay_window_secs must be positive"));
        }
        let api_base = outbound::base_url(
            NAME,
            "api_base",
            config.api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
        )?;
        Ok(Self {
            signing_secret: config.signing_secret,
            bot_token: config.bot_token,
            api_base,
            window_secs,
            http,
        })
    }
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handshake(
        &self,
        request: &WebhookRequest,
        now_ms: i64,
    ) -> Result<Option<HttpReply>, VerifyError> {
        if request.content_type() == "application/x-www-form-urlencoded" {
            let ssl_check = request.query_param("ssl_check").as_deref() == Some("1")
                || request
                    .form_fields()
                    .iter()
                    .any(|(k, v)| k == "ssl_check" && v == "1");
            // Slack's certificate probe for slash commands is unsigned and only
            // wants a 200.
            return Ok(ssl_check.then(|| HttpReply::empty(200)));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return Ok(None);
        };
        if text(&body, "type") != Some("url_verification") {
            return Ok(None);
        }
        self.verify(request, now_ms)?;
        Ok(text(&body, "challenge")
            .map(|challenge| HttpReply::json(200, &json!({ "challenge": challenge }))))
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<(), VerifyError> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(VerifyError::Missing(TIMESTAMP_HEADER))?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::Malformed(TIMESTAMP_HEADER))?;
        let presented = signature
            .trim()
            .strip_prefix("v0=")
            .ok_or(VerifyError::Malformed(SIGNATURE_HEADER))?;
        let expected = hmac_sha256(
            self.signing_secret.expose().as_bytes(),
            &[b"v0:", timestamp.trim().as_bytes(), b":", &request.body],
        );
        if !hex_signature_matches(&expected, presented) {
            return Err(VerifyError::BadSignature);
        }
        check_replay_window(seconds, now_ms, self.window_secs)
    }

    fn parse(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
        if request.content_type() == "application/x-www-form-urlencoded" {
            // Slash commands (`command`) and interactivity (`payload`) are signed
            // Slack requests but not customer messages of this channel.
            let fields = request.form_fields();
            if fields
                .iter()
                .any(|(key, _)| key == "command" || key == "payload")
            {
                tracing::debug!(channel = NAME, "slash command or interaction ignored");
                return Ok(Vec::new());
            }
            return Err(ParseError::Invalid(
                "form body is neither a slash command nor an interaction".into(),
            ));
        }
        let envelope: Value = serde_json::from_slice(&request.body)?;
        let kind = text(&envelope, "type")
            .ok_or_else(|| ParseError::Invalid("body has no type".into()))?;
        if kind != "event_callback" {
            return Ok(Vec::new());
        }
        let event = envelope
            .get("event")
            .filter(|event| event.is_object())
            .ok_or_else(|| ParseError::Invalid("event_callback without an event".into()))?;
        let event_id = text(&envelope, "event_id").unwrap_or_default();
        let messages: Vec<_> = normalise(&envelope, event).into_iter().collect();
        if messages.is_empty() {
            tracing::debug!(channel = NAME, event_id, "event without a customer message");
        }
        Ok(messages)
    }

    fn acknowledge(&self) -> HttpReply {
        HttpReply::empty(200)
    }

    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        if reply.text.trim().is_empty() {
            return Err(permanent(NAME, "empty reply text"));
        }
        let mut body = json!({ "channel": reply.conversation_id, "text": reply.text });
        if let Some(thread) = &reply.reply.thread_id {
            body["thread_ts"] = json!(thread);
        }
        let request = self
            .http
            .post(format!("{}/chat.postMessage", self.api_base))
            .bearer_auth(self.bot_token.expose())
            .json(&body);
        let response = outbound::send(NAME, request).await?;
        let outcome = classify(&response);
        match &outcome {
            Ok(()) => tracing::info!(channel = NAME, reply_id = %reply.reply_id, "reply sent"),
            Err(error) => tracing::warn!(
                channel = NAME,
                reply_id = %reply.reply_id,
                status = response.status.as_u16(),
                transient = error.is_transient(),
                "chat.postMessage failed"
            ),
        }
        outcome
    }
}

/// Slack answers most failures with HTTP 200 and `{"ok": false, "error": "…"}`.
fn classify(response: &outbound::ApiResponse) -> Result<(), SendError> {
    outbound::check_status(
        NAME,
        response.status,
        format!("HTTP {}", response.status.as_u16()),
    )?;
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&response.body)
        .map_err(|_| transient(NAME, "unreadable chat.postMessage answer"))?;
    if answer.ok {
        return Ok(());
    }
    let error = answer.error.unwrap_or_else(|| "unknown_error".into());
    let detail = outbound::clip(&error, 100);
    if TRANSIENT_ERRORS.contains(&error.as_str()) {
        Err(transient(NAME, detail))
    } else {
        Err(permanent(NAME, detail))
    }
}

/// The customer message in one `event_callback`, if there is one.
fn normalise(envelope: &Value, event: &Value) -> Option<InboundMessage> {
    let kind = text(event, "type")?;
    if kind != "message" && kind != "app_mention" {
        return None;
    }
    let subtype = text(event, "subtype");
    if subtype.is_some_and(|subtype| !CUSTOMER_SUBTYPES.contains(&subtype)) || is_bot(event) {
        return None;
    }
    let event_id = text(envelope, "event_id");
    // `body` is the message as it now stands, `message_kind` what happened to it.
    let (body, message_kind, provider_message_id) = match subtype {
        Some("message_changed") => {
            let current = event.get("message")?;
            let previous = event.get("previous_message");
            if is_bot(current) {
                return None;
            }
            // Slack also reports link unfurls and attachment updates as changes;
            // only a change of the text is an edit by the customer.
            if previous.is_some_and(|previous| text(previous, "text") == text(current, "text")) {
                return None;
            }
            let ts = text(current, "ts")?;
            // The edited message keeps its `ts`, so the dedupe key must tell this
            // edit apart from the original and from later edits, yet stay the same
            // when Slack redelivers the same event: the envelope's `event_id`
            // does both (the change event's own `ts` is the fallback).
            let edit = event_id.or_else(|| text(event, "ts"))?;
            (current, MessageKind::Edit, format!("{ts}:edit:{edit}"))
        }
        Some("message_deleted") => {
            let previous = event.get("previous_message")?;
            if is_bot(previous) {
                return None;
            }
            let ts = text(event, "deleted_ts").or_else(|| text(previous, "ts"))?;
            // A message is deleted once, so its `ts` alone identifies the deletion.
            (previous, MessageKind::Delete, format!("{ts}:delete"))
        }
        _ => (event, MessageKind::Text, text(event, "ts")?.to_owned()),
    };

    let customer_id = text(body, "user")?.to_owned();
    let conversation_id = text(event, "channel")?.to_owned();
    let bot_user = envelope
        .get("authorizations")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(|authorization| text(authorization, "user_id"));
    let attachments = files(body);
    let message_text = match message_kind {
        MessageKind::Delete => String::new(),
        _ => strip_mention(text(body, "text").unwrap_or_default(), bot_user),
    };
    let message_kind = match message_kind {
        MessageKind::Text if message_text.is_empty() && !attachments.is_empty() => {
            MessageKind::Media
        }
        MessageKind::Text if message_text.is_empty() => return None,
        other => other,
    };
    let account_id = text(envelope, "team_id")
        .or_else(|| {
            envelope
                .get("authorizations")
                .and_then(Value::as_array)
                .and_then(|list| {
                    list.iter()
                        .find_map(|authorization| text(authorization, "team_id"))
                })
        })
        .or_else(|| text(event, "team"))?
        .to_owned();
    let sent_at_ms = text(event, "ts")
        .and_then(ts_to_ms)
        .or_else(|| {
            envelope
                .get("event_time")
                .and_then(Value::as_i64)
                .map(|s| s.saturating_mul(1000))
        })
        .unwrap_or_default();
    let customer_name = body.get("user_profile").and_then(|profile| {
        ["display_name", "real_name"]
            .into_iter()
            .find_map(|key| text(profile, key).filter(|name| !name.trim().is_empty()))
            .map(str::to_owned)
    });
    Some(InboundMessage {
        channel: NAME.into(),
        account_id,
        customer_id,
        customer_name,
        conversation_id,
        provider_message_id,
        sent_at_ms,
        kind: message_kind,
        text: message_text,
        attachments,
        reply: ReplyContext {
            thread_id: text(body, "thread_ts").map(str::to_owned),
            ..ReplyContext::default()
        },
    })
}

fn is_bot(message: &Value) -> bool {
    message.get("bot_id").is_some_and(|id| !id.is_null())
        || text(message, "subtype") == Some("bot_message")
}

fn files(message: &Value) -> Vec<Attachment> {
    let Some(files) = message.get("files").and_then(Value::as_array) else {
        return Vec::new();
    };
    files
        .iter()
        .filter(|file| file.is_object())
        .map(|file| {
            let mime_type = text(file, "mimetype")
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            Attachment {
                kind: mime_type
                    .as_deref()
                    .map_or(switchboard_domain::AttachmentKind::File, kind_for_mime),
                provider_id: text(file, "id").map(str::to_owned),
                url: text(file, "url_private").map(str::to_owned),
                mime_type,
                name: text(file, "name").map(str::to_owned),
            }
        })
        .collect()
}

/// Drops mentions of our own bot (`<@U0BOT>`), which say nothing about the question.
fn strip_mention(text: &str, bot_user: Option<&str>) -> String {
    match bot_user {
        Some(user) => text.replace(&format!("<@{user}>"), "").trim().to_owned(),
        None => text.trim().to_owned(),
    }
}

/// Slack's `ts` ("1355517523.000005", seconds with a fraction) in unix milliseconds.
pub fn ts_to_ms(ts: &str) -> Option<i64> {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    seconds.checked_mul(1000)?.checked_add(millis)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "slack-test-signing-secret-0001";
    const NOW_MS: i64 = 1_700_000_100_000;

    /// Computed independently: python3 -c "import hmac,hashlib;
    /// print(hmac.new(b'slack-test-signing-secret-0001', b'v0:1700000000:' + KNOWN_BODY.encode(), hashlib.sha256).hexdigest())"
    const KNOWN_BODY: &str = r#"{"type":"event_callback","team_id":"T0TEAM","event_id":"Ev01","event":{"type":"message","channel":"D0CHAN","user":"U0CUST","text":"Où est ma commande ? 我的订单","ts":"1700000000.000200"}}"#;
    const KNOWN_SIGNATURE: &str =
        "v0=32c9b8976f57336c9c1668237cd853005f87f638a07f1c0c49febe14897756fa";

    fn channel() -> Slack {
        Slack::new(
            SlackConfig {
                signing_secret: SECRET.into(),
                bot_token: "xoxb-test".into(),
                api_base: None,
                replay_window_secs: None,
            },
            reqwest::Client::new(),
        )
        .unwrap()
    }

    fn signed(body: &str, timestamp: i64) -> WebhookRequest {
        let ts = timestamp.to_string();
        let mac = hmac_sha256(
            SECRET.as_bytes(),
            &[b"v0:", ts.as_bytes(), b":", body.as_bytes()],
        );
        WebhookRequest {
            method: "POST".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-slack-request-timestamp".into(), ts),
                (
                    "x-slack-signature".into(),
                    format!("v0={}", hex::encode(mac)),
                ),
            ],
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn event(event: Value) -> String {
        json!({
            "type": "event_callback",
            "team_id": "T0TEAM",
            "event_id": "Ev0PV52K21",
            "event_time": 1_700_000_000,
            "authorizations": [{ "team_id": "T0TEAM", "user_id": "U0BOT", "is_bot": true }],
            "event": event,
        })
        .to_string()
    }

    fn parse_one(body: &str) -> Option<InboundMessage> {
        let mut messages = channel().parse(&signed(body, 1_700_000_000)).unwrap();
        assert!(messages.len() <= 1);
        messages.pop()
    }

    #[test]
    fn known_answer_signature_verifies() {
        let request = WebhookRequest {
            headers: vec![
                ("X-Slack-Request-Timestamp".into(), "1700000000".into()),
                ("X-Slack-Signature".into(), KNOWN_SIGNATURE.into()),
            ],
            body: KNOWN_BODY.as_bytes().to_vec(),
            ..Default::default()
        };
        channel().verify(&request, NOW_MS).unwrap();
        let message = &channel().parse(&request).unwrap()[0];
        assert_eq!(message.text, "Où est ma commande ? 我的订单");
    }

    #[test]
    fn tampered_stale_and_missing_are_rejected() {
        let slack = channel();
        let good = signed(KNOWN_BODY, 1_700_000_000);
        slack.verify(&good, NOW_MS).unwrap();

        let mut tampered = good.clone();
        tampered.body.push(b' ');
        assert!(matches!(
            slack.verify(&tampered, NOW_MS),
            Err(VerifyError::BadSignature)
        ));

        let stale = signed(KNOWN_BODY, 1_700_000_100 - 301);
        assert!(matches!(
            slack.verify(&stale, NOW_MS),
            Err(VerifyError::Stale { window_secs: 300 })
        ));
        let future = signed(KNOWN_BODY, 1_700_000_100 + 301);
        assert!(matches!(
            slack.verify(&future, NOW_MS),
            Err(VerifyError::Stale { .. })
        ));

        let mut unsigned = good.clone();
        unsigned
            .headers
            .retain(|(name, _)| name != "x-slack-signature");
        assert!(matches!(
            slack.verify(&unsigned, NOW_MS),
            Err(VerifyError::Missing(_))
        ));
        let mut no_prefix = good.clone();
        no_prefix.headers[2].1 = no_prefix.headers[2].1.replace("v0=", "v1=");
        assert!(matches!(
            slack.verify(&no_prefix, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
        let mut bad_ts = good;
        bad_ts.headers[1].1 = "soon".into();
        assert!(matches!(
            slack.verify(&bad_ts, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn url_verification_is_answered_only_when_signed() {
        let slack = channel();
        let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let reply = slack
            .handshake(&signed(body, 1_700_000_000), NOW_MS)
            .unwrap()
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, "application/json");
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            answer,
            json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
        );

        let mut forged = signed(body, 1_700_000_000);
        forged.body = body.replace("3eZ", "4eZ").into_bytes();
        assert!(slack.handshake(&forged, NOW_MS).is_err());
        assert!(
            slack
                .handshake(&signed(KNOWN_BODY, 1_700_000_000), NOW_MS)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn ssl_check_is_answered_without_a_signature() {
        let request = WebhookRequest {
            method: "POST".into(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: b"ssl_check=1&token=abc".to_vec(),
            ..Default::default()
        };
        let reply = channel().handshake(&request, NOW_MS).unwrap().unwrap();
        assert_eq!((reply.status, reply.body.len()), (200, 0));
    }

    #[test]
    fn plain_message_is_normalised() {
        let message = parse_one(&event(json!({
            "type": "message", "channel": "D0CHAN", "channel_type": "im", "user": "U0CUST",
            "text": "Where is my order?", "ts": "1700000000.000200", "thread_ts": "1699999999.000100",
            "user_profile": { "display_name": "", "real_name": "Cleo Customer" }
        })))
        .unwrap();
        assert_eq!(message.channel, "slack");
        assert_eq!(message.account_id, "T0TEAM");
        assert_eq!(message.conversation_id, "D0CHAN");
        assert_eq!(message.customer_id, "U0CUST");
        assert_eq!(message.customer_name.as_deref(), Some("Cleo Customer"));
        assert_eq!(message.provider_message_id, "1700000000.000200");
        assert_eq!(message.sent_at_ms, 1_700_000_000_000);
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "Where is my order?");
        assert_eq!(
            message.reply.thread_id.as_deref(),
            Some("1699999999.000100")
        );
    }

    #[test]
    fn mentions_of_our_bot_are_stripped_and_team_falls_back_to_authorizations() {
        let body = json!({
            "type": "event_callback", "event_id": "Ev1",
            "authorizations": [{ "team_id": "T0AUTH", "user_id": "U0BOT" }],
            "event": { "type": "app_mention", "channel": "C0CHAN", "user": "U0CUST",
                       "text": "<@U0BOT>  what are your hours?", "ts": "1700000001.5" }
        });
        let message = parse_one(&body.to_string()).unwrap();
        assert_eq!(message.account_id, "T0AUTH");
        assert_eq!(message.text, "what are your hours?");
        assert_eq!(message.sent_at_ms, 1_700_000_001_500);
    }

    #[test]
    fn bots_and_other_subtypes_are_dropped() {
        for dropped in [
            json!({ "type": "message", "channel": "C1", "bot_id": "B1", "text": "beep", "ts": "1.1" }),
            json!({ "type": "message", "subtype": "bot_message", "channel": "C1", "text": "beep", "ts": "1.1" }),
            json!({ "type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1", "text": "joined", "ts": "1.1" }),
            json!({ "type": "message", "subtype": "message_changed", "channel": "C1", "ts": "2.2",
                    "message": { "bot_id": "B1", "text": "new", "ts": "1.1" },
                    "previous_message": { "bot_id": "B1", "text": "old", "ts": "1.1" } }),
            json!({ "type": "reaction_added", "user": { "id": "U1" }, "item": {} }),
            json!({ "type": "message", "channel": "C1", "text": "no user", "ts": "1.1" }),
        ] {
            assert!(parse_one(&event(dropped.clone())).is_none(), "{dropped}");
        }
        assert!(parse_one(r#"{"type":"app_rate_limited","minute_rate_limited":1}"#).is_none());
    }

    #[test]
    fn edits_and_deletes() {
        let changed = json!({
            "type": "message", "subtype": "message_changed", "hidden": true, "channel": "C1", "ts": "1700000050.000300",
            "message": { "type": "message", "user": "U0CUST", "text": "new text", "ts": "1700000000.000200" },
            "previous_message": { "type": "message", "user": "U0CUST", "text": "old text", "ts": "1700000000.000200" }
        });
        let edit = parse_one(&event(changed)).unwrap();
        assert_eq!(edit.kind, MessageKind::Edit);
        assert_eq!(edit.text, "new text");
        assert_eq!(edit.customer_id, "U0CUST");
        assert_eq!(
            edit.provider_message_id,
            "1700000000.000200:edit:Ev0PV52K21"
        );
        assert_eq!(edit.sent_at_ms, 1_700_000_050_000);

        let unfurl = json!({
            "type": "message", "subtype": "message_changed", "channel": "C1", "ts": "3.0",
            "message": { "user": "U0CUST", "text": "see https://x.test", "ts": "1.0", "attachments": [{}] },
            "previous_message": { "user": "U0CUST", "text": "see https://x.test", "ts": "1.0" }
        });
        assert!(parse_one(&event(unfurl)).is_none());

        let deleted = json!({
            "type": "message", "subtype": "message_deleted", "hidden": true, "channel": "C1",
            "ts": "1700000060.000400", "deleted_ts": "1700000000.000200",
            "previous_message": { "type": "message", "user": "U0CUST", "text": "secret", "ts": "1700000000.000200" }
        });
        let delete = parse_one(&event(deleted)).unwrap();
        assert_eq!(delete.kind, MessageKind::Delete);
        assert_eq!(delete.text, "");
        assert_eq!(delete.provider_message_id, "1700000000.000200:delete");
    }

    #[test]
    fn shared_files_become_attachments() {
        let message = parse_one(&event(json!({
            "type": "message", "subtype": "file_share", "channel": "C1", "user": "U0CUST", "text": "", "ts": "5.000001",
            "files": [
                { "id": "F1", "name": "receipt.png", "mimetype": "image/png", "url_private": "https://files.slack.com/F1" },
                { "id": "F2", "name": "notes.txt", "mimetype": "text/plain" },
                "garbage"
            ]
        })))
        .unwrap();
        assert_eq!(message.kind, MessageKind::Media);
        assert_eq!(message.attachments.len(), 2);
        assert_eq!(
            message.attachments[0].kind,
            switchboard_domain::AttachmentKind::Image
        );
        assert_eq!(
            message.attachments[0].url.as_deref(),
            Some("https://files.slack.com/F1")
        );
        assert_eq!(message.attachments[0].name.as_deref(), Some("receipt.png"));
        assert_eq!(message.attachments[0].provider_id.as_deref(), Some("F1"));
        assert_eq!(
            message.attachments[1].kind,
            switchboard_domain::AttachmentKind::File
        );
    }

    #[test]
    fn unreadable_bodies_are_parse_errors() {
        let slack = channel();
        for body in [
            "",
            "not json",
            "{}",
            r#"{"type":5}"#,
            "[1,2]",
            r#"{"type":"event_callback"}"#,
        ] {
            assert!(slack.parse(&signed(body, 1_700_000_000)).is_err(), "{body}");
        }
        let mut command = signed("command=%2Fhelp&text=hi&user_id=U1", 1_700_000_000);
        command.headers[0].1 = "application/x-www-form-urlencoded".into();
        assert!(slack.parse(&command).unwrap().is_empty());
    }

    #[test]
    fn slack_timestamps_convert_to_millis() {
        assert_eq!(ts_to_ms("1355517523.000005"), Some(1_355_517_523_000));
        assert_eq!(ts_to_ms("1355517523.9"), Some(1_355_517_523_900));
        assert_eq!(ts_to_ms("1355517523"), Some(1_355_517_523_000));
        assert_eq!(ts_to_ms("x.1"), None);
        assert_eq!(ts_to_ms("1.-5"), None);
        assert_eq!(ts_to_ms("99999999999999999.0"), None);
    }
}
