//! Telegram Bot API webhooks. Telegram does not sign updates: the `secret_token` given to
//! `setWebhook` comes back in `X-Telegram-Bot-Api-Secret-Token` on every delivery, the only proof
//! of origin, so it is required here. Each request holds one `Update`; its `update_id` is the
//! dedupe key, and the message's own `message_id` is what a reply quotes.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{
    Attachment, AttachmentKind, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret,
    SendError,
};

use crate::kit::buttons;
use crate::kit::descriptor::build;
use crate::kit::json::{
    MediaFields, id_value, invalid, json_request, location, media, parse_int, text,
};
use crate::kit::raw::Object;
use crate::kit::sender::base_url_or;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Inbound, Outbound, Parsed, STATUS_ONLY, Sender,
    SettingsOf, Signature, TextUnit, Unusable, Verified, WebhookRequest, schemes, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "telegram",
    title: "Telegram",
    function: Function::IngressIm,
    settings: crate::settings! {
        secret_token: verify => "the `secret_token` you pass to `setWebhook` (1-256 of `A-Z a-z 0-9 _ -`); checked against `X-Telegram-Bot-Api-Secret-Token`",
        bot_token: send("0:not-needed-to-check") => "from BotFather; replies go through `sendMessage`",
        api_base: optional => "default `https://api.telegram.org`",
    },
    build: build::<Telegram>,
    dev: |ctx| {
        json!({ "secret_token": ctx.secret("secret_token"), "api_base": ctx.stand_in,
                       "bot_token": format!("1000001:{}", ctx.secret("bot_token")) })
    },
};

/// `sendMessage` takes at most 4096 UTF-16 code units; longer replies go in parts.
const MAX_TEXT_UNITS: usize = 4096;
const ERRORS: ApiErrors = ApiErrors {
    code: "/description",
    retry_after: Some("/parameters/retry_after"),
    ..STATUS_ONLY
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub secret_token: Secret,
    /// `<bot id>:<secret>`.
    pub bot_token: Secret,
    pub api_base: Option<String>,
}

pub struct Telegram {
    signature: Signature,
    bot_token: Secret,
    bot_id: String,
    api_base: String,
    sender: Sender,
}

impl SettingsOf for Telegram {
    const NAME: &'static str = "telegram";
    type Settings = TelegramConfig;

    fn new(config: TelegramConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        let token = config.secret_token.expose();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if token.is_empty() || token.len() > 256 || !token.bytes().all(allowed) {
            return Err(unusable("secret_token must be 1-256 of A-Z a-z 0-9 _ -"));
        }
        let bot_id = match config.bot_token.expose().split_once(':') {
            Some((id, rest)) if id.parse::<u64>().is_ok() && !rest.is_empty() => id.to_owned(),
            _ => return Err(unusable("bot_token must look like <bot id>:<secret>")),
        };
        let api_base = config.api_base.as_deref();
        Ok(Self {
            signature: Signature::shared(schemes::TELEGRAM, "secret_token", &config.secret_token)?,
            bot_token: config.bot_token,
            bot_id,
            api_base: base_url_or("api_base", api_base, "https://api.telegram.org")?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for Telegram {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let update = Object::parse(&verified.body)?;
        let update_id = update.int("update_id");
        let update_id = update_id.ok_or_else(|| invalid("update without an update_id"))?;
        // A tap on one of our buttons is the customer's choice.
        if update.raw("callback_query").is_some()
            && let Some(parsed) = buttons::telegram_callback(&update.value(), &self.bot_id)
        {
            return parsed;
        }
        // my_chat_member, channel_post, …: not customer messages.
        let (message, edited) = match (update.raw("message"), update.raw("edited_message")) {
            (Some(message), _) => (Object::of(message), false),
            (None, Some(message)) => (Object::of(message), true),
            _ => return Ok(Vec::new()),
        };
        let (Some(date), Some(chat)) = (message.int("date"), message.int_in("chat", "id")) else {
            return Err(invalid("message without a date or chat"));
        };
        let words = |key| message.str(key).filter(|text| !text.trim().is_empty());
        let text = words("text").or(words("caption")).unwrap_or_default();
        let attachments = message.value_if_any(MEDIA).map(|media| attachments(&media));
        let attachments = attachments.unwrap_or_default();
        // Bots (ourselves) and service messages (members joining, pins, …) carry nothing a customer wrote.
        let from = message.object("from").unwrap_or_default();
        if from.is_true("is_bot") || (text.is_empty() && attachments.is_empty()) {
            return Ok(Vec::new());
        }
        let kind = match (edited, text.is_empty()) {
            (true, _) => MessageKind::Edit,
            (false, true) => MessageKind::Media,
            (false, false) => MessageKind::Text,
        };
        let customer = from.int("id").or(message.int_in("sender_chat", "id"));
        // An edit is dated by the edit, so the transcript shows when it happened.
        let seconds = message.int("edit_date").filter(|_| edited).unwrap_or(date);
        let id = |key| message.int(key).map(|id| id.to_string());
        Ok(vec![InboundMessage {
            channel: Self::NAME.into(),
            account_id: self.bot_id.clone(),
            customer_id: customer.unwrap_or(chat).to_string(),
            customer_name: from.person_name(),
            conversation_id: chat.to_string(),
            provider_message_id: update_id.to_string(),
            sent_at_ms: seconds.saturating_mul(1000),
            kind,
            text: text.into_owned(),
            attachments,
            reply: ReplyContext {
                thread_id: id("message_thread_id").filter(|_| message.is_true("is_topic_message")),
                message_id: id("message_id"),
                ..ReplyContext::default()
            },
        }])
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let id = now_ms.rem_euclid(1 << 40);
        let chat = id_value(customer);
        json_request(&json!({ "update_id": id, "message": {
            "message_id": id % 1_000_000, "date": now_ms / 1000, "text": text,
            "from": { "id": chat, "is_bot": false, "first_name": "Sam" },
            "chat": { "id": chat, "type": "private", "first_name": "Sam" } } }))
    }
}

#[async_trait]
impl Outbound for Telegram {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let chat_id = id_value(&reply.conversation_id);
        let context = &reply.reply;
        let thread_id = parse_int(context.thread_id.as_deref());
        // In a group, the answer quotes the question it answers.
        let group = chat_id.as_i64().is_some_and(|id| id < 0);
        let quoted = parse_int(context.message_id.as_deref()).filter(|_| group);
        // The URL holds the bot token; the sender never logs URLs.
        let (base, token) = (&self.api_base, self.bot_token.expose());
        let bot = format!("{base}/bot{token}");
        buttons::telegram_answer_query(&self.sender, &bot, reply).await;
        let url = format!("{bot}/sendMessage");
        // Choices as inline buttons: a tap comes back as a `callback_query`.
        let menu = buttons::telegram_keyboard(&reply.choices);
        self.sender
            .send_text(reply, MAX_TEXT_UNITS, TextUnit::Utf16, |index, part| {
                let mut body =
                    json!({ "chat_id": chat_id, "text": part, "message_thread_id": thread_id });
                if let (0, Some(message_id)) = (index, quoted) {
                    body["reply_parameters"] =
                        json!({ "message_id": message_id, "allow_sending_without_reply": true });
                }
                if index == 0 && !reply.choices.is_empty() {
                    body["reply_markup"] = menu.clone();
                }
                self.sender.post_json(&url, None, body)
            })
            .await
    }
}

/// What [`attachments`] reads: a message without any is never made a `Value`.
const MEDIA: &str =
    "photo animation document voice audio video video_note sticker venue location contact";

const FILE: MediaFields = MediaFields {
    id: "/file_id",
    url: "",
    mime: "/mime_type",
    name: "/file_name",
};

/// A sticker is named by its emoji, which the worker reads as a reaction.
const STICKER: MediaFields = MediaFields::keyed("/file_id", "/emoji");

fn attachments(message: &Value) -> Vec<Attachment> {
    let file = |kind, file: &Value, fields| media(file, Some(kind), fields);
    let mut out = Vec::new();
    // Photos come in several sizes, smallest first; the largest is the one to look at.
    let photos = message.get("photo").and_then(Value::as_array);
    out.extend(photos.and_then(|sizes| file(AttachmentKind::Image, sizes.last()?, &FILE)));
    // Telegram sends a GIF both as `animation` and as `document`; keep one.
    if message.get("animation").is_none() {
        out.extend(
            message
                .get("document")
                .and_then(|doc| media(doc, None, &FILE)),
        );
    }
    for (key, kind, fields) in [
        ("animation", AttachmentKind::Video, &FILE),
        ("voice", AttachmentKind::Audio, &FILE),
        ("audio", AttachmentKind::Audio, &FILE),
        ("video", AttachmentKind::Video, &FILE),
        ("video_note", AttachmentKind::Video, &FILE),
        ("sticker", AttachmentKind::Sticker, &STICKER),
    ] {
        out.extend(message.get(key).and_then(|media| file(kind, media, fields)));
    }
    let venue = message.get("venue");
    let place = venue.and_then(|venue| venue.get("location"));
    if let Some(at) = place.or(message.get("location")) {
        let name = venue.and_then(|venue| text(venue, "/title"));
        out.push(location(&at["latitude"], &at["longitude"], name));
    }
    if let Some(contact) = message.get("contact") {
        out.push(Attachment {
            kind: AttachmentKind::Other,
            provider_id: None,
            url: text(contact, "/phone_number").map(|phone| format!("tel:{phone}")),
            mime_type: Some("text/vcard".into()),
            name: text(contact, "/first_name"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{ParseError, VerifyError};

    use crate::kit::build_request;

    fn config(secret_token: &str, bot_token: &str) -> TelegramConfig {
        TelegramConfig {
            secret_token: secret_token.into(),
            bot_token: bot_token.into(),
            api_base: None,
        }
    }

    fn channel() -> Telegram {
        Telegram::new(
            config("s3cr3t_T0ken-x", "123456789:AAE-example"),
            &ChannelDeps::offline(),
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
        build_request("POST", "/webhooks/telegram", &headers, body.to_owned()).unwrap()
    }

    impl Telegram {
        fn parse_body(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
            self.parse(request, &Verified::assume(request))
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
        let messages = channel().parse_body(&request(TEXT_UPDATE, None)).unwrap();
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
        assert_eq!(message.reply.message_id.as_deref(), Some("1365"));
        assert_eq!(message.reply.thread_id, None);
    }

    #[test]
    fn edits_are_edits_dated_by_the_edit() {
        let body = r#"{"update_id":10001,"edited_message":{"date":1441645532,"edit_date":1441646600,
            "chat":{"id":-1001234,"type":"supergroup"},"message_id":1365,
            "from":{"id":42,"is_bot":false,"username":"only_username"},"text":"Edited text"}}"#;
        let message = &channel().parse_body(&request(body, None)).unwrap()[0];
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
        let message = &channel().parse_body(&request(body, None)).unwrap()[0];
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
        let message = &channel().parse_body(&request(body, None)).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "is this broken?");
        assert_eq!(message.attachments[0].kind, AttachmentKind::Video);
        assert_eq!(message.customer_name, None);

        let sticker = r#"{"update_id":9,"message":{"date":1,"chat":{"id":5},"from":{"id":5,"is_bot":false},
            "sticker":{"file_id":"st1","width":512,"height":512,"emoji":"👍"}}}"#;
        let message = &channel().parse_body(&request(sticker, None)).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Media);
        assert_eq!(message.attachments[0].kind, AttachmentKind::Sticker);
        assert_eq!(message.attachments[0].provider_id.as_deref(), Some("st1"));
        // Named by its emoji, which the worker reads as a reaction.
        assert_eq!(message.attachments[0].name.as_deref(), Some("👍"));
    }

    #[test]
    fn a_tap_on_a_button_is_a_choice_answering_its_query() {
        let body = r#"{"update_id":12,"callback_query":{"id":"cb1","from":{"id":5,"is_bot":false,"first_name":"A"},
            "chat_instance":"x","data":"1","message":{"message_id":9,"date":2,"chat":{"id":5,"type":"private"},"text":"Was this helpful?"}}}"#;
        let message = &channel().parse_body(&request(body, None)).unwrap()[0];
        assert_eq!(
            (message.kind, message.text.as_str()),
            (MessageKind::Choice, "1")
        );
        assert_eq!(message.reply.reply_token.as_deref(), Some("cb1"));
    }

    #[test]
    fn topic_messages_keep_their_thread() {
        let body = r#"{"update_id":11,"message":{"date":1,"chat":{"id":-100},"from":{"id":5,"is_bot":false},
            "message_thread_id":77,"is_topic_message":true,"text":"hi"}}"#;
        let message = &channel().parse_body(&request(body, None)).unwrap()[0];
        assert_eq!(message.reply.thread_id.as_deref(), Some("77"));
    }

    #[test]
    fn a_button_tap_is_dated_on_arrival_not_by_the_message_with_the_buttons() {
        // The buttons were sent at `date`; the tap may come hours later.
        let body = r#"{"update_id":12,"callback_query":{"id":"77","from":{"id":5,"is_bot":false},
            "message":{"message_id":3,"date":1441645532,"chat":{"id":5}},"data":"1"}}"#;
        let tap = &channel().parse_body(&request(body, None)).unwrap()[0];
        assert_eq!((tap.text.as_str(), tap.sent_at_ms), ("1", 0));
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
                telegram
                    .parse_body(&request(body, None))
                    .unwrap()
                    .is_empty(),
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
            assert!(telegram.parse_body(&request(body, None)).is_err(), "{body}");
        }
    }

    #[test]
    fn config_is_checked_without_echoing_secrets() {
        let deps = ChannelDeps::offline();
        let bad_token = Telegram::new(config("has space", "1:a"), &deps);
        let bad_bot = Telegram::new(config("ok", "nocolon-supersecret"), &deps);
        for Unusable(text) in [bad_token.err().unwrap(), bad_bot.err().unwrap()] {
            assert!(
                !text.contains("supersecret") && !text.contains("has space"),
                "{text}"
            );
        }
        let unknown = json!({ "secret_token": "ok", "bot_token": "1:a", "unknown": 1 });
        assert!(serde_json::from_value::<TelegramConfig>(unknown).is_err());
    }

    #[test]
    fn the_message_id_is_kept_for_replies_beside_the_update_id() {
        let message = &channel().parse_body(&request(TEXT_UPDATE, None)).unwrap()[0];
        assert_eq!(message.provider_message_id, "10000");
        assert_eq!(message.reply.message_id.as_deref(), Some("1365"));
    }

    #[test]
    fn samples_are_signed_with_the_secret_token() {
        let telegram = channel();
        let mut sample = telegram.sample("42", "hello", 1_700_000_000_000);
        assert!(telegram.verify(&sample, 0).is_err());
        telegram.sign(&mut sample, 0).unwrap();
        let verified = telegram.verify(&sample, 0).unwrap();
        let message = &telegram.parse(&sample, &verified).unwrap()[0];
        assert_eq!(
            (message.customer_id.as_str(), message.text.as_str()),
            ("42", "hello")
        );
    }
}
