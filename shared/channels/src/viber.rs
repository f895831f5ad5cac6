//! Viber REST bot API callbacks.
//!
//! Viber signs the raw body: `X-Viber-Content-Signature` is the hex
//! HMAC-SHA256 of it keyed with the bot's auth token ([`schemes::VIBER`]).
//! Setting the webhook makes Viber post a signed `webhook` event that must be
//! answered with 200 before the URL is accepted. One request carries one
//! event; `message` events are customer messages, deduplicated on their
//! `message_token` (an integer beyond 2^53, kept exactly); deliveries,
//! reads, failures, (un)subscriptions and conversation starts yield nothing.
//! Bots talk to one user at a time, so the conversation is the user. Replies
//! go through `send_message` with the auth token in `X-Viber-Auth-Token`;
//! Viber reports failures as a non-zero `status` in a 200 answer.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{InboundMessage, OutboundReply, ReplyContext, Secret, SendError};

use crate::kit::buttons;
use crate::kit::descriptor::build;
use crate::kit::json::{
    MediaFields, contact_card, int, invalid, json_request, location, media, text,
};
use crate::kit::sender::base_url_or;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed, Sender,
    SettingsOf, Signature, TextUnit, Unusable, Verified, WebhookRequest, kind_for_name, reply,
    schemes, text_or_media, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "viber",
    title: "Viber",
    function: Function::IngressIm,
    settings: crate::settings! {
        auth_token: verify => "the bot's token from the Viber Admin Panel (partners.viber.com → your bot → Info); checks `X-Viber-Content-Signature` and sends replies",
        sender_name: optional => "the name replies are sent under (at most 28 characters); default `Support`",
        api_base: optional => "default `https://chatapi.viber.com/pa`",
    },
    build: build::<Viber>,
    dev: |ctx| json!({ "auth_token": ctx.secret("auth_token"), "api_base": ctx.stand_in }),
};

/// A text message takes at most 7000 characters.
const MAX_TEXT_CHARS: usize = 7000;
/// `status` 0 is success; 12 is "too many requests".
const ERRORS: ApiErrors = ApiErrors {
    ok: Some("/status"),
    code: "/status",
    transient: "12",
    stale_token: "",
    retry_after: None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViberConfig {
    pub auth_token: Secret,
    pub sender_name: Option<String>,
    pub api_base: Option<String>,
}

pub struct Viber {
    signature: Signature,
    auth_token: Secret,
    sender_name: String,
    api_base: String,
    sender: Sender,
}

impl SettingsOf for Viber {
    const NAME: &'static str = "viber";
    type Settings = ViberConfig;

    fn new(config: ViberConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        let sender_name = config.sender_name.unwrap_or_else(|| "Support".into());
        if sender_name.trim().is_empty() || sender_name.chars().count() > 28 {
            return Err(unusable("sender_name must be 1-28 characters"));
        }
        Ok(Self {
            signature: Signature::shared(schemes::VIBER, "auth_token", &config.auth_token)?,
            auth_token: config.auth_token,
            sender_name,
            api_base: base_url_or(
                "api_base",
                config.api_base.as_deref(),
                "https://chatapi.viber.com/pa",
            )?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for Viber {
    fn handshake(&self, request: &WebhookRequest, now_ms: i64) -> Handshake {
        let body = serde_json::from_slice::<Value>(request.body()).unwrap_or_default();
        if text(&body, "/event").as_deref() != Some("webhook") {
            return Ok(None);
        }
        self.verify(request, now_ms)?;
        Ok(Some(reply::empty(200)))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let event: Value = serde_json::from_slice(&verified.body)?;
        let kind = text(&event, "/event").ok_or_else(|| invalid("body has no event"))?;
        if kind != "message" {
            return Ok(Vec::new());
        }
        let token = match event.get("message_token") {
            Some(Value::Number(number)) => number.to_string(),
            _ => return Err(invalid("a message without a message_token")),
        };
        let customer =
            text(&event, "/sender/id").ok_or_else(|| invalid("a message without a sender"))?;
        let message = &event["message"];
        let attachments = attachment(message).into_iter().collect::<Vec<_>>();
        let body = text(message, "/text").unwrap_or_default().trim().to_owned();
        if body.is_empty() && attachments.is_empty() {
            return Ok(Vec::new());
        }
        let sent_at_ms = int(&event, "/timestamp").unwrap_or_default();
        Ok(vec![InboundMessage {
            channel: Self::NAME.into(),
            // Callbacks do not name the bot; one auth token is one bot.
            account_id: "bot".into(),
            customer_id: customer.clone(),
            customer_name: text(&event, "/sender/name"),
            conversation_id: customer,
            provider_message_id: token.clone(),
            sent_at_ms,
            kind: text_or_media(&body),
            text: body,
            attachments,
            reply: ReplyContext {
                message_id: Some(token),
                ..ReplyContext::default()
            },
        }])
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        json_request(
            &json!({ "event": "message", "timestamp": now_ms, "chat_hostname": "SN-CHAT-01_",
            "message_token": 4_912_661_846_655_238_145_u64 + now_ms.rem_euclid(1 << 40) as u64,
            "sender": { "id": customer, "name": "Sam", "language": "en", "country": "GB", "api_version": 10 },
            "message": { "type": "text", "text": text }, "silent": false }),
        )
    }
}

#[async_trait]
impl Outbound for Viber {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let url = format!("{}/send_message", self.api_base);
        let token = self.auth_token.expose();
        // Choices as a keyboard with the last part: a tap sends its ActionBody as text.
        let at = buttons::buttons_part(reply, MAX_TEXT_CHARS, TextUnit::Chars);
        self.sender
            .send_text(reply, MAX_TEXT_CHARS, TextUnit::Chars, |index, part| {
                let mut body = json!({ "receiver": reply.conversation_id, "min_api_version": 1,
                    "sender": { "name": self.sender_name }, "type": "text", "text": part });
                if at == Some(index) {
                    body["keyboard"] = buttons::viber_keyboard(&reply.choices);
                }
                self.sender
                    .post_json(&url, None, body)
                    .header("X-Viber-Auth-Token", token)
            })
            .await
    }
}

const MEDIA: MediaFields = MediaFields {
    id: "",
    url: "/media",
    mime: "",
    name: "/file_name",
};

/// What a non-text message carries: a picture, video, file, sticker,
/// location, contact or link.
fn attachment(message: &Value) -> Option<switchboard_domain::Attachment> {
    let kind = text(message, "/type")?;
    match kind.as_str() {
        "location" => {
            let at = &message["location"];
            Some(location(&at["lat"], &at["lon"], text(at, "/address")))
        }
        "contact" => Some(contact_card(
            text(message, "/contact/phone_number"),
            text(message, "/contact/name"),
        )),
        "sticker" => {
            let sticker = MediaFields {
                id: "/sticker_id",
                ..MEDIA
            };
            let id = message.get("sticker_id").map(Value::to_string);
            let found = media(message, Some(kind_for_name("sticker")), &sticker);
            found.map(|found| switchboard_domain::Attachment {
                provider_id: id,
                ..found
            })
        }
        "picture" | "video" | "file" => media(message, Some(kind_for_name(&kind)), &MEDIA),
        "url" => media(
            message,
            Some(switchboard_domain::AttachmentKind::Other),
            &MEDIA,
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{VerifyError, build_request};
    use switchboard_domain::{AttachmentKind, MessageKind};

    fn channel() -> Viber {
        let config = ViberConfig {
            auth_token: "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9".into(),
            sender_name: None,
            api_base: None,
        };
        Viber::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn request(body: &str, signature: &str) -> WebhookRequest {
        let headers = [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-viber-content-signature".to_owned(), signature.to_owned()),
        ];
        build_request("POST", "/webhooks/viber", &headers, body.to_owned()).unwrap()
    }

    fn parse(body: &str) -> Vec<InboundMessage> {
        let request = request(body, "");
        channel()
            .parse(&request, &Verified::assume(&request))
            .unwrap()
    }

    /// The webhook callback and its signature, computed independently:
    /// python3 -c "import hmac,hashlib; print(hmac.new(TOKEN.encode(), BODY.encode(), hashlib.sha256).hexdigest())"
    const WEBHOOK: &str =
        r#"{"event":"webhook","timestamp":4987034606158369000,"message_token":1481059480858}"#;
    const WEBHOOK_SIGNATURE: &str =
        "15c736ad5d7a42e73a5f98bf9bad5a9dc650eaf1faa57e35a3a477bafebf91e0";

    #[test]
    fn the_webhook_callback_is_answered_only_when_signed() {
        let viber = channel();
        let known = request(WEBHOOK, WEBHOOK_SIGNATURE);
        assert_eq!(viber.handshake(&known, 0).unwrap().unwrap().status(), 200);
        let mut signed = request(WEBHOOK, "");
        viber.sign(&mut signed, 0).unwrap();
        assert_eq!(
            signed.headers()["x-viber-content-signature"],
            WEBHOOK_SIGNATURE
        );
        let forged = request(WEBHOOK, &WEBHOOK_SIGNATURE.replace('1', "2"));
        assert!(matches!(
            viber.handshake(&forged, 0),
            Err(VerifyError::BadSignature)
        ));
        let sample = viber.sample("01234567890A=", "hi", 0);
        assert!(viber.handshake(&sample, 0).unwrap().is_none());
    }

    #[test]
    fn message_tokens_stay_exact_and_media_become_attachments() {
        let messages = parse(
            r#"{"event":"message","timestamp":1457764197627,"message_token":4912661846655238145,
            "sender":{"id":"01234567890A=","name":"John McClane","avatar":"http://avatar.example.com","country":"UK","language":"en","api_version":1},
            "message":{"type":"picture","text":"is this the right part?","media":"http://example.com/p.jpg","file_name":"p.jpg"}}"#,
        );
        let message = &messages[0];
        assert_eq!(message.provider_message_id, "4912661846655238145");
        assert_eq!(
            (message.kind, message.customer_name.as_deref()),
            (MessageKind::Text, Some("John McClane"))
        );
        assert_eq!(message.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(
            message.attachments[0].url.as_deref(),
            Some("http://example.com/p.jpg")
        );
        let location = parse(
            r#"{"event":"message","timestamp":1,"message_token":5,"sender":{"id":"U"},
            "message":{"type":"location","location":{"lat":50.76,"lon":4.38}}}"#,
        );
        assert_eq!(
            (location[0].kind, location[0].attachments[0].url.as_deref()),
            (MessageKind::Media, Some("geo:50.76,4.38"))
        );
        for other in [
            r#"{"event":"delivered","timestamp":1,"message_token":5,"user_id":"U"}"#,
            r#"{"event":"seen","timestamp":1,"message_token":5,"user_id":"U"}"#,
            r#"{"event":"subscribed","timestamp":1,"user":{"id":"U"},"message_token":5}"#,
        ] {
            assert!(parse(other).is_empty(), "{other}");
        }
    }
}
