//! Telegram Bot API webhooks.
//!
//! Telegram does not sign updates. When the bot registers its webhook with
//! `setWebhook` and a `secret_token`, every delivery carries that token in the
//! `X-Telegram-Bot-Api-Secret-Token` header; it is the only proof of origin, so
//! it is required here. Each request holds one `Update`; its `update_id` is the
//! dedupe key.
//!
//! Settings:
//!
//! ```json
//! { "secret_token": "…", "bot_token": "123456:ABC…", "api_base": "https://api.telegram.org" }
//! ```

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{
    Attachment, AttachmentKind, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret,
    SendError,
};

use crate::outbound::{self, permanent};
use crate::registry::{ChannelDeps, settings};
use crate::verify::{constant_time_eq, hmac_sha256};
use crate::{
    Channel, ConfigError, ParseError, SharedChannel, VerifyError, WebhookRequest, kind_for_mime,
};

const NAME: &str = "telegram";
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
const DEFAULT_API_BASE: &str = "https://api.telegram.org";
/// `sendMessage` accepts at most 4096 characters (UTF-16 code units); longer
/// replies go out in parts.
const MAX_TEXT_UNITS: usize = 4096;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The `secret_token` given to `setWebhook`.
    pub secret_token: Secret,
    /// The bot's token from BotFather, `<bot id>:<secret>`.
    pub bot_token: Secret,
    #[serde(default)]
    pub api_base: Option<String>,
}

pub struct Telegram {
    secret_token: Secret,
    bot_token: Secret,
    bot_id: String,
    api_base: String,
    http: reqwest::Client,
}

/// Send-only settings, for checking requests without them.
pub const CHECK_PLACEHOLDERS: &[(&str, &str)] = &[("bot_token", "0:not-needed-to-check")];

pub fn build(value: &serde_json::Value, deps: &ChannelDeps) -> Result<SharedChannel, ConfigError> {
    let config: TelegramConfig = settings(NAME, value)?;
    Ok(std::sync::Arc::new(Telegram::new(
        config,
        deps.http.clone(),
    )?))
}

impl Telegram {
    pub fn new(config: TelegramConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let unusable = |detail: &str| ConfigError::Unusable {
            channel: NAME.into(),
            detail: detail.into(),
        };
        let token = config.secret_token.expose();
        // setWebhook allows 1-256 characters from A-Z, a-z, 0-9, `_` and `-`.
        if token.is_empty()
            || token.len() > 256
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(unusable(
                "secret_token must be 1-256 characters of A-Z a-z 0-9 _ -",
            ));
        }
        let bot_id = match config.bot_token.expose().split_once(':') {
            Some((id, rest))
                if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() =>
            {
                id.to_owned()
            }
            _ => return Err(unusable("bot_token must look like <bot id>:<secret>")),
        };
        let api_base = outbound::base_url(
            NAME,
            "api_base",
            config.api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
        )?;
        Ok(Self {
            secret_token: config.secret_token,
            bot_token: config.bot_token,
            bot_id,
            api_base,
            http,
        })
    }

    /// The bot id, the numeric part of the bot token before `:`.
    pub fn bot_id(&self) -> &str {
        &self.bot_id
    }
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify(&self, request: &WebhookRequest, _now_ms: i64) -> Result<(), VerifyError> {
        let presented = request
            .header(SECRET_HEADER)
            .ok_or(VerifyError::Missing(SECRET_HEADER))?;
        // Compare MACs of both values so that the comparison does not even leak
        // the token's length.
        let key = b"switchboard telegram secret token";
        let expected = hmac_sha256(key, &[self.secret_token.expose().as_bytes()]);
        let presented = hmac_sha256(key, &[presented.as_bytes()]);
        if constant_time_eq(&expected, &presented) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
        let update: Update = serde_json::from_slice(&request.body)?;
        let (message, edited) = match (update.message, update.edited_message) {
            (Some(message), _) => (message, false),
            (None, Some(message)) => (message, true),
            // callback_query, my_chat_member, channel_post, …: not customer messages.
            _ => {
                tracing::debug!(
                    channel = NAME,
                    update_id = update.update_id,
                    "update without a customer message"
                );
                return Ok(Vec::new());
            }
        };
        if message.from.as_ref().is_some_and(|from| from.is_bot) {
            tracing::debug!(
                channel = NAME,
                update_id = update.update_id,
                "dropped a bot's message"
            );
            return Ok(Vec::new());
        }
        Ok(self
            .normalise(update.update_id, message, edited)
            .into_iter()
            .collect())
    }

    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        if reply.text.trim().is_empty() {
            return Err(permanent(NAME, "empty reply text"));
        }
        let chat_id = match reply.conversation_id.parse::<i64>() {
            Ok(id) => json!(id),
            Err(_) => json!(reply.conversation_id),
        };
        let thread_id = reply
            .reply
            .thread_id
            .as_deref()
            .and_then(|id| id.parse::<i64>().ok());
        // The URL holds the bot token: it is never logged, and network errors
        // are stripped of it (see `outbound::network_error`).
        let url = format!(
            "{}/bot{}/sendMessage",
            self.api_base,
            self.bot_token.expose()
        );
        for part in split_text(&reply.text, MAX_TEXT_UNITS) {
            let mut body = json!({ "chat_id": chat_id, "text": part });
            if let Some(thread_id) = thread_id {
                body["message_thread_id"] = json!(thread_id);
            }
            let response = outbound::send(NAME, self.http.post(&url).json(&body)).await?;
            let description = serde_json::from_slice::<ApiAnswer>(&response.body)
                .ok()
                .and_then(|answer| answer.description)
                .unwrap_or_default();
            let detail = format!(
                "HTTP {} {}",
                response.status.as_u16(),
                outbound::clip(&description, 200)
            );
            if let Err(error) = outbound::check_status(NAME, response.status, detail.trim_end()) {
                tracing::warn!(
                    channel = NAME,
                    reply_id = %reply.reply_id,
                    status = response.status.as_u16(),
                    transient = error.is_transient(),
                    "sendMessage failed"
                );
                return Err(error);
            }
        }
        tracing::info!(channel = NAME, reply_id = %reply.reply_id, "reply sent");
        Ok(())
    }
}

impl Telegram {
    fn normalise(&self, update_id: i64, message: Message, edited: bool) -> Option<InboundMessage> {
        let text = message
            .text
            .clone()
            .or_else(|| message.caption.clone())
            .unwrap_or_default();
        let attachments = attachments(&message);
        if text.is_empty() && attachments.is_empty() {
            // Service messages (members joining, pinned messages, …) and content
            // this module does not know carry nothing a person wrote.
            tracing::debug!(
                channel = NAME,
                update_id,
                "message without text or known media"
            );
            return None;
        }
        let kind = if edited {
            MessageKind::Edit
        } else if text.is_empty() {
            MessageKind::Media
        } else {
            MessageKind::Text
        };
        let customer_id = match (&message.from, &message.sender_chat) {
            (Some(from), _) => from.id.to_string(),
            (None, Some(chat)) => chat.id.to_string(),
            (None, None) => message.chat.id.to_string(),
        };
        // An edit is dated by the edit, so the transcript shows when it happened.
        let seconds = if edited {
            message.edit_date.unwrap_or(message.date)
        } else {
            message.date
        };
        let thread_id = if message.is_topic_message {
            message.message_thread_id.map(|id| id.to_string())
        } else {
            None
        };
        Some(InboundMessage {
            channel: NAME.into(),
            account_id: self.bot_id.clone(),
            customer_id,
            customer_name: message.from.as_ref().and_then(User::display_name),
            conversation_id: message.chat.id.to_string(),
            provider_message_id: update_id.to_string(),
            sent_at_ms: seconds.saturating_mul(1000),
            kind,
            text,
            attachments,
            reply: ReplyContext {
                thread_id,
                ..ReplyContext::default()
            },
        })
    }
}

fn attachments(message: &Message) -> Vec<Attachment> {
    let mut out = Vec::new();
    let file = |kind, file: &File| Attachment {
        kind,
        provider_id: Some(file.file_id.clone()),
        url: None,
        mime_type: file.mime_type.clone(),
        name: file.file_name.clone(),
    };
    // Photos come in several sizes, smallest first; the largest is the one to look at.
    if let Some(photo) = message.photo.last() {
        out.push(file(AttachmentKind::Image, photo));
    }
    // Telegram sends a GIF both as `animation` and as `document`; keep one.
    match (&message.animation, &message.document) {
        (Some(animation), _) => out.push(file(AttachmentKind::Video, animation)),
        (None, Some(document)) => {
            let kind = document
                .mime_type
                .as_deref()
                .map_or(AttachmentKind::File, kind_for_mime);
            out.push(file(kind, document));
        }
        (None, None) => {}
    }
    for (kind, media) in [
        (AttachmentKind::Audio, &message.voice),
        (AttachmentKind::Audio, &message.audio),
        (AttachmentKind::Video, &message.video),
        (AttachmentKind::Video, &message.video_note),
        (AttachmentKind::Sticker, &message.sticker),
    ] {
        if let Some(media) = media {
            out.push(file(kind, media));
        }
    }
    if let Some(location) = message
        .venue
        .as_ref()
        .map(|venue| &venue.location)
        .or(message.location.as_ref())
    {
        out.push(Attachment {
            kind: AttachmentKind::Location,
            provider_id: None,
            // RFC 5870 geo URI.
            url: Some(format!("geo:{},{}", location.latitude, location.longitude)),
            mime_type: None,
            name: message.venue.as_ref().map(|venue| venue.title.clone()),
        });
    }
    if let Some(contact) = &message.contact {
        out.push(Attachment {
            kind: AttachmentKind::Other,
            provider_id: None,
            url: contact
                .phone_number
                .as_ref()
                .map(|phone| format!("tel:{phone}")),
            mime_type: Some("text/vcard".into()),
            name: Some(contact.first_name.clone()),
        });
    }
    out
}

/// Splits `text` into pieces of at most `max` UTF-16 code units (the unit in
/// which Telegram measures a message), preferring to break after a newline or
/// a space in the second half of a piece.
fn split_text(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let mut units = 0;
        let mut hard = None;
        for (at, ch) in rest.char_indices() {
            units += ch.len_utf16();
            if units > max {
                // Always move on by at least one character.
                hard = Some(if at == 0 { ch.len_utf8() } else { at });
                break;
            }
        }
        let Some(hard) = hard else { break };
        let window = &rest[..hard];
        let soft = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|at| *at >= hard / 2)
            .map(|at| at + 1);
        let cut = soft.unwrap_or(hard);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    edited_message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    date: i64,
    #[serde(default)]
    edit_date: Option<i64>,
    chat: Chat,
    #[serde(default)]
    from: Option<User>,
    #[serde(default)]
    sender_chat: Option<Chat>,
    #[serde(default)]
    message_thread_id: Option<i64>,
    #[serde(default)]
    is_topic_message: bool,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<File>,
    #[serde(default)]
    document: Option<File>,
    #[serde(default)]
    animation: Option<File>,
    #[serde(default)]
    voice: Option<File>,
    #[serde(default)]
    audio: Option<File>,
    #[serde(default)]
    video: Option<File>,
    #[serde(default)]
    video_note: Option<File>,
    #[serde(default)]
    sticker: Option<File>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    venue: Option<Venue>,
    #[serde(default)]
    contact: Option<Contact>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

impl User {
    fn display_name(&self) -> Option<String> {
        let full = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !full.is_empty() {
            return Some(full);
        }
        self.username
            .as_deref()
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    }
}

#[derive(Deserialize)]
struct File {
    file_id: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct Venue {
    location: Location,
    title: String,
}

#[derive(Deserialize)]
struct Contact {
    first_name: String,
    #[serde(default)]
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Telegram {
        Telegram::new(
            TelegramConfig {
                secret_token: "s3cr3t_T0ken-x".into(),
                bot_token: "123456789:AAE-example".into(),
                api_base: None,
            },
            reqwest::Client::new(),
        )
        .unwrap()
    }

    fn request(body: &str, token: Option<&str>) -> WebhookRequest {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(token) = token {
            headers.push((
                "x-telegram-bot-api-secret-token".to_owned(),
                token.to_owned(),
            ));
        }
        WebhookRequest {
            method: "POST".into(),
            headers,
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    const TEXT_UPDATE: &str = r#"{"update_id":10000,"message":{"date":1441645532,
        "chat":{"last_name":"Test Lastname","id":1111111,"type":"private","first_name":"Test Firstname","username":"Testusername"},
        "message_id":1365,"from":{"last_name":"Test Lastname","id":1111111,"is_bot":false,"first_name":"Test Firstname","username":"Testusername"},
        "text":"/start"}}"#;

    #[test]
    fn secret_token_is_required_and_compared() {
        let telegram = channel();
        assert!(
            telegram
                .verify(&request("{}", Some("s3cr3t_T0ken-x")), 0)
                .is_ok()
        );
        assert!(matches!(
            telegram.verify(&request("{}", Some("s3cr3t_T0ken-y")), 0),
            Err(VerifyError::BadSignature)
        ));
        assert!(matches!(
            telegram.verify(&request("{}", Some("")), 0),
            Err(VerifyError::BadSignature)
        ));
        assert!(matches!(
            telegram.verify(&request("{}", None), 0),
            Err(VerifyError::Missing(_))
        ));
    }

    #[test]
    fn text_message_is_normalised() {
        let messages = channel().parse(&request(TEXT_UPDATE, None)).unwrap();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.channel, "telegram");
        assert_eq!(message.account_id, "123456789");
        assert_eq!(message.customer_id, "1111111");
        assert_eq!(
            message.customer_name.as_deref(),
            Some("Test Firstname Test Lastname")
        );
        assert_eq!(message.conversation_id, "1111111");
        assert_eq!(message.provider_message_id, "10000");
        assert_eq!(message.sent_at_ms, 1_441_645_532_000);
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "/start");
        assert!(message.attachments.is_empty());
        assert_eq!(message.reply, ReplyContext::default());
    }

    #[test]
    fn edits_are_edits_dated_by_the_edit() {
        let body = r#"{"update_id":10001,"edited_message":{"date":1441645532,"edit_date":1441646600,
            "chat":{"id":-1001234,"type":"supergroup"},"message_id":1365,
            "from":{"id":42,"is_bot":false,"username":"only_username"},"text":"Edited text"}}"#;
        let message = &channel().parse(&request(body, None)).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Edit);
        assert_eq!(message.text, "Edited text");
        assert_eq!(message.conversation_id, "-1001234");
        assert_eq!(message.customer_id, "42");
        assert_eq!(message.customer_name.as_deref(), Some("only_username"));
        assert_eq!(message.sent_at_ms, 1_441_646_600_000);
        assert_eq!(message.provider_message_id, "10001");
    }

    #[test]
    fn media_become_attachments() {
        let body = r#"{"update_id":7,"message":{"date":1700000000,"chat":{"id":5},"from":{"id":5,"is_bot":false,"first_name":"Ann"},
            "photo":[{"file_id":"small","width":90,"height":90},{"file_id":"large","width":800,"height":800}],
            "document":{"file_id":"doc1","file_name":"invoice.pdf","mime_type":"application/pdf"},
            "voice":{"file_id":"voice1","mime_type":"audio/ogg","duration":3},
            "location":{"latitude":51.5,"longitude":-0.12}}}"#;
        let message = &channel().parse(&request(body, None)).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Media);
        assert_eq!(message.text, "");
        let kinds: Vec<_> = message.attachments.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                AttachmentKind::Image,
                AttachmentKind::File,
                AttachmentKind::Audio,
                AttachmentKind::Location
            ]
        );
        assert_eq!(message.attachments[0].provider_id.as_deref(), Some("large"));
        assert_eq!(message.attachments[1].name.as_deref(), Some("invoice.pdf"));
        assert_eq!(
            message.attachments[1].mime_type.as_deref(),
            Some("application/pdf")
        );
        assert_eq!(
            message.attachments[2].mime_type.as_deref(),
            Some("audio/ogg")
        );
        assert_eq!(
            message.attachments[3].url.as_deref(),
            Some("geo:51.5,-0.12")
        );
    }

    #[test]
    fn caption_counts_as_text_and_stickers_are_kept() {
        let body = r#"{"update_id":8,"message":{"date":1,"chat":{"id":5},"from":{"id":5,"is_bot":false},
            "video":{"file_id":"v1","mime_type":"video/mp4","file_name":"clip.mp4"},"caption":"is this broken?"}}"#;
        let message = &channel().parse(&request(body, None)).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "is this broken?");
        assert_eq!(message.attachments[0].kind, AttachmentKind::Video);
        assert_eq!(message.customer_name, None);

        let sticker = r#"{"update_id":9,"message":{"date":1,"chat":{"id":5},"from":{"id":5,"is_bot":false},
            "sticker":{"file_id":"st1","width":512,"height":512,"emoji":"👍"}}}"#;
        let message = &channel().parse(&request(sticker, None)).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Media);
        assert_eq!(message.attachments[0].kind, AttachmentKind::Sticker);
        assert_eq!(message.attachments[0].provider_id.as_deref(), Some("st1"));
    }

    #[test]
    fn topic_messages_keep_their_thread() {
        let body = r#"{"update_id":11,"message":{"date":1,"chat":{"id":-100},"from":{"id":5,"is_bot":false},
            "message_thread_id":77,"is_topic_message":true,"text":"hi"}}"#;
        let message = &channel().parse(&request(body, None)).unwrap()[0];
        assert_eq!(message.reply.thread_id.as_deref(), Some("77"));
    }

    #[test]
    fn non_messages_and_bots_yield_nothing() {
        let telegram = channel();
        for body in [
            r#"{"update_id":1,"callback_query":{"id":"4382","from":{"id":1,"is_bot":false,"first_name":"A"},"data":"x"}}"#,
            r#"{"update_id":2,"my_chat_member":{"chat":{"id":1}}}"#,
            r#"{"update_id":3,"channel_post":{"date":1,"chat":{"id":-100},"text":"news"}}"#,
            r#"{"update_id":4,"message":{"date":1,"chat":{"id":1},"from":{"id":9,"is_bot":true},"text":"beep"}}"#,
            r#"{"update_id":5,"message":{"date":1,"chat":{"id":1},"from":{"id":9,"is_bot":false},"new_chat_members":[]}}"#,
        ] {
            assert!(
                telegram.parse(&request(body, None)).unwrap().is_empty(),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_updates_are_parse_errors() {
        let telegram = channel();
        for body in [
            "",
            "not json",
            "[]",
            r#"{"message":{}}"#,
            r#"{"update_id":"x"}"#,
            r#"{"update_id":1,"message":{"date":1}}"#,
        ] {
            assert!(telegram.parse(&request(body, None)).is_err(), "{body}");
        }
    }

    #[test]
    fn config_is_checked_without_echoing_secrets() {
        let bad_token = Telegram::new(
            TelegramConfig {
                secret_token: "has space".into(),
                bot_token: "1:a".into(),
                api_base: None,
            },
            reqwest::Client::new(),
        );
        let bad_bot = Telegram::new(
            TelegramConfig {
                secret_token: "ok".into(),
                bot_token: "nocolon-supersecret".into(),
                api_base: None,
            },
            reqwest::Client::new(),
        );
        for error in [bad_token.err().unwrap(), bad_bot.err().unwrap()] {
            let text = error.to_string();
            assert!(
                !text.contains("supersecret") && !text.contains("has space"),
                "{text}"
            );
        }
        let deps_value = json!({ "secret_token": "ok", "bot_token": "1:a", "unknown": 1 });
        assert!(settings::<TelegramConfig>(NAME, &deps_value).is_err());
    }

    #[test]
    fn long_replies_are_split_on_spaces() {
        let text = "word ".repeat(2000);
        let parts = split_text(&text, MAX_TEXT_UNITS);
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|part| part.encode_utf16().count() <= MAX_TEXT_UNITS)
        );
        assert_eq!(parts.concat(), text);
        assert_eq!(split_text("短", 1), ["短"]);
        assert_eq!(split_text("长长长", 2), ["长长", "长"]);
        assert!(split_text("", 10).is_empty());
    }

    #[test]
    fn split_counts_utf16_units_like_telegram() {
        // Each emoji is two UTF-16 units: 3000 of them need two messages.
        let text = "😀".repeat(3000);
        let parts = split_text(&text, MAX_TEXT_UNITS);
        assert_eq!(
            parts
                .iter()
                .map(|part| part.encode_utf16().count())
                .collect::<Vec<_>>(),
            [4096, 1904]
        );
        assert_eq!(parts.concat(), text);
        // A character wider than the limit still goes out rather than looping.
        assert_eq!(split_text("😀😀", 1), ["😀", "😀"]);
    }
}
