//! LINE Messaging API: every request is signed ([`schemes::LINE`]) and may
//! carry many events. The console's "Verify" button posts a signed request
//! with no events or with dummy reply tokens (all `0` or all `f`): it gets
//! 200 and no reply. Events are deduplicated on `webhookEventId`. Replies use
//! the event's reply token and fall back to the push API once LINE refuses
//! the token (it is single-use and short-lived); a push carries a retry key
//! derived from our reply id, so a retried push is not delivered twice.

use std::borrow::Cow;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{
    AttachmentKind, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret, SendError,
};

use crate::kit::descriptor::build;
use crate::kit::json::{MediaFields, invalid, json_request, location, media, text};
use crate::kit::raw::Object;
use crate::kit::sender::base_url_or;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Inbound, Outbound, Parsed, STATUS_ONLY, Sender,
    SettingsOf, Signature, TextUnit, Unusable, Verified, WebhookRequest, idempotency_key, required,
    schemes, split_text,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "line",
    title: "LINE (Messaging API)",
    function: Function::IngressIm,
    settings: crate::settings! {
        channel_secret: verify => "LINE Developers console → your Messaging API channel → Basic settings → Channel secret; checks `x-line-signature`",
        channel_access_token: send("not-needed-to-check") => "Messaging API tab → Channel access token (long-lived); replies go through `/v2/bot/message/reply`, else `/push`",
        api_base: optional => "default `https://api.line.me`",
    },
    build: build::<Line>,
    dev: |ctx| {
        json!({ "channel_secret": ctx.secret("channel_secret"),
                "channel_access_token": ctx.secret("channel_access_token"), "api_base": ctx.stand_in })
    },
};

/// A text message holds at most 5,000 characters; one call carries at most 5 messages.
const MAX_TEXT_CHARS: usize = 5_000;
const MESSAGES_PER_CALL: usize = 5;
const ERRORS: ApiErrors = ApiErrors {
    code: "/message",
    ..STATUS_ONLY
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub channel_secret: Secret,
    pub channel_access_token: Secret,
    pub api_base: Option<String>,
}

pub struct Line {
    signature: Signature,
    access_token: Secret,
    api_base: String,
    sender: Sender,
}

impl SettingsOf for Line {
    const NAME: &'static str = "line";
    type Settings = LineConfig;

    fn new(config: LineConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("channel_access_token", &config.channel_access_token)?;
        let signature = Signature::shared(schemes::LINE, "channel_secret", &config.channel_secret)?;
        let api_base = config.api_base.as_deref();
        Ok(Self {
            signature,
            access_token: config.channel_access_token,
            api_base: base_url_or("api_base", api_base, "https://api.line.me")?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for Line {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _request: &WebhookRequest, verified: &Verified) -> Parsed {
        // Read in place (`kit::raw`): no `Value` tree for text messages.
        let body = Object::parse(&verified.body)?;
        let events = body.items("events");
        let events = events.ok_or_else(|| invalid("body has no events list"))?;
        let bot = body.str("destination").unwrap_or_default();
        Ok(events
            .into_iter()
            .filter_map(|event| normalise(&bot, &Object::of(event)))
            .collect())
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        json_request(
            &json!({ "destination": "U0000000000000000000000000000b0t", "events": [{
            "type": "message", "mode": "active", "timestamp": now_ms,
            "webhookEventId": format!("01SAMPLE{now_ms}"),
            "deliveryContext": { "isRedelivery": false },
            "replyToken": format!("sample{now_ms}"),
            "source": { "type": "user", "userId": customer },
            "message": { "id": now_ms.to_string(), "type": "text", "quoteToken": "q", "text": text } }] }),
        )
    }
}

#[async_trait]
impl Outbound for Line {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        if reply.text.trim().is_empty() {
            return Err(crate::kit::permanent(Self::NAME, "empty reply text"));
        }
        let parts = split_text(&reply.text, MAX_TEXT_CHARS, TextUnit::Chars);
        let token = self.access_token.expose();
        // Choices as quick replies on the last bubble: a tap sends the choice as text.
        let items = crate::kit::buttons::line_quick_replies(&reply.choices);
        let last = parts.len().saturating_sub(1);
        for (index, chunk) in parts.chunks(MESSAGES_PER_CALL).enumerate() {
            let message = |(i, part)| {
                let mut message = json!({ "type": "text", "text": part });
                if index * MESSAGES_PER_CALL + i == last && !items.is_empty() {
                    message["quickReply"] = json!({ "items": items });
                }
                message
            };
            let messages: Vec<Value> = chunk.iter().enumerate().map(message).collect();
            // The reply token serves once, for the first call only.
            if let Some(reply_token) = reply.reply.reply_token.as_deref().filter(|_| index == 0) {
                let url = format!("{}/v2/bot/message/reply", self.api_base);
                let body = json!({ "replyToken": reply_token, "messages": messages });
                let request = self.sender.post_json(&url, Some(token), body);
                match self.sender.call(&reply.reply_id, request).await {
                    Err(SendError::Permanent { detail, .. })
                        if detail.contains("Invalid reply token") => {}
                    other => {
                        other?;
                        continue;
                    }
                }
            }
            let url = format!("{}/v2/bot/message/push", self.api_base);
            let body = json!({ "to": reply.conversation_id, "messages": messages });
            let request = self.sender.post_json(&url, Some(token), body);
            let retry_key = idempotency_key(&reply.reply_id, index);
            self.sender
                .call(
                    &reply.reply_id,
                    request.header("X-Line-Retry-Key", retry_key),
                )
                .await?;
        }
        Ok(())
    }
}

/// The customer message in one event, if it is one.
fn normalise(bot: &str, event: &Object) -> Option<InboundMessage> {
    let kind = event.str("type")?;
    // In standby another channel owns the chat; the bot must stay silent.
    if event.str("mode").as_deref() == Some("standby") {
        return None;
    }
    let source = event.object("source")?;
    let user = source.str("userId");
    if user.as_deref() == Some(bot) {
        return None;
    }
    let conversation = match &*source.str("type")? {
        "group" => source.str("groupId")?,
        "room" => source.str("roomId")?,
        _ => user.clone()?,
    };
    let message = event.object("message");
    let (message_kind, message_id) = match &*kind {
        "message" => (MessageKind::Text, message.as_ref()?.str("id")?),
        "messageEdited" => (MessageKind::Edit, message.as_ref()?.str("id")?),
        "unsend" => (
            MessageKind::Delete,
            event.object("unsend")?.str("messageId")?,
        ),
        _ => return None,
    };
    let mut attachments = Vec::new();
    let mut body = Cow::Borrowed("");
    if let (Some(message), false) = (message, message_kind == MessageKind::Delete) {
        match &*message.str("type")? {
            "text" => body = message.str("text").unwrap_or_default(),
            "location" => {
                let message = message.value();
                let name = text(&message, "/title").or_else(|| text(&message, "/address"));
                attachments.push(location(&message["latitude"], &message["longitude"], name));
            }
            other => {
                let kind = match other {
                    "image" | "sticker" => AttachmentKind::Image,
                    "video" => AttachmentKind::Video,
                    "audio" => AttachmentKind::Audio,
                    _ => AttachmentKind::File,
                };
                attachments.extend(media(&message.value(), Some(kind), &MEDIA));
            }
        }
    }
    let message_kind = match message_kind {
        MessageKind::Text if body.trim().is_empty() && attachments.is_empty() => return None,
        MessageKind::Text if body.trim().is_empty() => MessageKind::Media,
        other => other,
    };
    // Dummy reply tokens mark the console's verify request: never reply to them.
    let dummy =
        |token: &Cow<str>| token.bytes().all(|b| b == b'0') || token.bytes().all(|b| b == b'f');
    let reply_token = event.str("replyToken");
    if reply_token.as_ref().is_some_and(dummy) {
        return None;
    }
    let event_id = event.str("webhookEventId").map(Cow::into_owned);
    Some(InboundMessage {
        channel: "line".into(),
        account_id: bot.to_owned(),
        customer_id: user.unwrap_or_else(|| conversation.clone()).into_owned(),
        customer_name: None,
        conversation_id: conversation.into_owned(),
        provider_message_id: event_id.unwrap_or(format!("{message_id}:{kind}")),
        sent_at_ms: event.int("timestamp").unwrap_or_default(),
        kind: message_kind,
        text: body.trim().to_owned(),
        attachments,
        reply: ReplyContext {
            reply_token: reply_token.map(Cow::into_owned),
            message_id: Some(message_id.into_owned()),
            ..ReplyContext::default()
        },
    })
}

/// LINE keeps media on its content API under the message id.
const MEDIA: MediaFields = MediaFields {
    id: "/id",
    url: "/contentProvider/originalContentUrl",
    mime: "",
    name: "/fileName",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{VerifyError, build_request};

    fn channel(secret: &str) -> Line {
        let config = LineConfig {
            channel_secret: secret.into(),
            channel_access_token: "token".into(),
            api_base: None,
        };
        Line::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn request(body: &str, signature: &str) -> WebhookRequest {
        let headers = [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-line-signature".to_owned(), signature.to_owned()),
        ];
        build_request("POST", "/webhooks/line", &headers, body.to_owned()).unwrap()
    }

    /// line-bot-sdk-nodejs `test/validate-signature.spec.ts`: the valid
    /// signature, and the invalid one that differs only in letter case.
    #[test]
    fn sdk_known_answer_and_case_sensitivity() {
        let line = channel("test_secret");
        let body = r#"{"hello":"world"}"#;
        line.verify(
            &request(body, "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="),
            0,
        )
        .unwrap();
        let wrong_case = request(body, "t7Hn4ZDHqs6e+wdvi5TyQivzie0DmMUmuXEBqyyE/tM=");
        assert!(matches!(
            line.verify(&wrong_case, 0),
            Err(VerifyError::BadSignature)
        ));
    }

    fn parse(body: Value) -> Vec<InboundMessage> {
        let line = channel("s");
        let request = json_request(&body);
        line.parse(&request, &Verified::assume(&request)).unwrap()
    }

    /// The edit event of the Messaging API reference.
    #[test]
    fn edits_media_and_groups() {
        let messages = parse(json!({ "destination": "Ubot", "events": [
            { "type": "messageEdited", "replyToken": "950e63e8f46542ab89f645b4c2a1180a",
              "message": { "type": "text", "id": "610830548529053697", "quoteToken": "XyiyoB3R1BA...", "text": "Edited message" },
              "webhookEventId": "01KPW6071XGPXPAF4XCN96XEAN", "deliveryContext": { "isRedelivery": false },
              "timestamp": 1776914799524_i64, "source": { "type": "group", "groupId": "Ca56f94637c...", "userId": "U4af4980629..." }, "mode": "active" },
            { "type": "message", "message": { "type": "image", "id": "354718705033693859", "contentProvider": { "type": "line" } },
              "webhookEventId": "01I", "timestamp": 1, "source": { "type": "room", "roomId": "Rroom", "userId": "U1" }, "replyToken": "t", "mode": "active" },
            { "type": "message", "message": { "type": "text", "id": "9", "text": "echo" },
              "webhookEventId": "01J", "timestamp": 1, "source": { "type": "user", "userId": "Ubot" }, "replyToken": "t", "mode": "active" }
        ] }));
        assert_eq!(messages.len(), 2);
        let edit = &messages[0];
        assert_eq!(
            (edit.kind, edit.text.as_str()),
            (MessageKind::Edit, "Edited message")
        );
        assert_eq!(edit.conversation_id, "Ca56f94637c...");
        assert_eq!(edit.customer_id, "U4af4980629...");
        assert_eq!(edit.reply.message_id.as_deref(), Some("610830548529053697"));
        let image = &messages[1];
        assert_eq!(
            (image.kind, image.conversation_id.as_str()),
            (MessageKind::Media, "Rroom")
        );
        assert_eq!(image.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(
            image.attachments[0].provider_id.as_deref(),
            Some("354718705033693859")
        );
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        let line = channel("s");
        for body in ["", "[]", "{}", r#"{"events": 5}"#] {
            let request = request(body, "x");
            assert!(
                line.parse(&request, &Verified::assume(&request)).is_err(),
                "{body}"
            );
        }
    }
}
