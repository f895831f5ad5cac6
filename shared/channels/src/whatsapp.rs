//! WhatsApp Cloud API webhooks.
//!
//! Meta signs the raw body with the app secret ([`schemes::META`]) and sets
//! the webhook up with the `hub.*` GET ([`META_HUB`]). One request batches
//! entries, each with changes, each with messages from possibly several
//! customers: every message is queued, on its `wamid` id. Status updates
//! (sent, delivered, read, failed) are receipts and yield nothing; Cloud API
//! does not echo our own messages on the `messages` field. Replies go from the
//! number the customer wrote to, within the 24-hour customer-service window
//! (later only templates may be sent: such a reply fails visibly).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{
    Clock, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret, SendError,
};

use crate::kit::buttons;
use crate::kit::descriptor::build;
use crate::kit::handshake::META_HUB;
use crate::kit::json::{invalid, json_request};
use crate::kit::meta::{GRAPH_API, GRAPH_ERRORS, Notification, whatsapp_not_text};
use crate::kit::raw::Object;
use crate::kit::sender::base_url_or;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed, ReplyWindow, Sender,
    SettingsOf, Signature, TextUnit, Unusable, Verified, WebhookRequest, required, schemes,
    text_or_media,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "whatsapp",
    title: "WhatsApp (Cloud API)",
    function: Function::IngressIm,
    settings: crate::settings! {
        app_secret: verify => "App settings → Basic → App secret; requests are checked with `X-Hub-Signature-256` over the raw body",
        verify_token: verify => "any string you choose and type into WhatsApp → Configuration → Webhook → Verify token; the `hub.challenge` GET is answered only with it",
        access_token: send("not-needed-to-check") => "a system user's permanent token with `whatsapp_business_messaging`; replies go through `/{phone_number_id}/messages`",
        phone_number_id: send("0") => "WhatsApp → API Setup → Phone number ID (replies go from the number the customer wrote to)",
        api_base: optional => "default `https://graph.facebook.com/v21.0`",
    },
    build: build::<WhatsApp>,
    dev: |ctx| {
        json!({ "app_secret": ctx.secret("app_secret"), "verify_token": ctx.secret("verify_token"),
                "access_token": ctx.secret("access_token"), "phone_number_id": "106540352242922",
                "api_base": ctx.stand_in })
    },
};

/// A text message's body takes at most 4096 characters.
const MAX_TEXT_CHARS: usize = 4096;
/// Free-form replies only within 24 hours of the customer's last message.
const SERVICE_WINDOW: ReplyWindow = ReplyWindow {
    standard_hours: 24,
    agent_tag: None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub access_token: Secret,
    pub phone_number_id: String,
    pub api_base: Option<String>,
}

pub struct WhatsApp {
    signature: Signature,
    verify_token: Secret,
    access_token: Secret,
    phone_number_id: String,
    api_base: String,
    sender: Sender,
    clock: std::sync::Arc<dyn Clock>,
}

impl SettingsOf for WhatsApp {
    const NAME: &'static str = "whatsapp";
    type Settings = WhatsAppConfig;

    fn new(config: WhatsAppConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("verify_token", &config.verify_token)?;
        required("access_token", &config.access_token)?;
        let id = config.phone_number_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::kit::unusable(
                "phone_number_id must be the number's numeric id",
            ));
        }
        Ok(Self {
            signature: Signature::shared(schemes::META, "app_secret", &config.app_secret)?,
            verify_token: config.verify_token,
            access_token: config.access_token,
            phone_number_id: id.to_owned(),
            api_base: base_url_or("api_base", config.api_base.as_deref(), GRAPH_API)?,
            sender: Sender::new(Self::NAME, deps.http.clone(), GRAPH_ERRORS),
            clock: deps.clock.clone(),
        })
    }
}

impl Inbound for WhatsApp {
    fn handshake(&self, request: &WebhookRequest, _now_ms: i64) -> Handshake {
        META_HUB.answer(request, &self.verify_token)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let body: Notification = serde_json::from_slice(&verified.body)?;
        if body.object.as_deref() != Some("whatsapp_business_account") {
            return Err(invalid(
                "the webhook object is not whatsapp_business_account",
            ));
        }
        let entries = body
            .entry
            .ok_or_else(|| invalid("body has no entry list"))?;
        let changes = entries.into_iter().flat_map(|entry| entry.changes);
        let mut out = Vec::new();
        for change in changes.filter(|c| c.field.as_deref() == Some("messages")) {
            let value = change.value.unwrap_or_default();
            let account = value.metadata.and_then(|m| m.phone_number_id);
            let account = account.ok_or_else(|| invalid("a change without its phone_number_id"))?;
            for message in value.messages.into_iter().map(Object::of) {
                let from = message.str("from");
                let from = from.ok_or_else(|| invalid("a message without from"))?;
                let contact = value
                    .contacts
                    .iter()
                    .find(|c| c.wa_id == Some(from.clone()));
                let name =
                    contact.and_then(|c| Some(c.profile.as_ref()?.name.as_ref()?.to_string()));
                out.extend(normalise(&account, &from, name, &message));
            }
        }
        Ok(out)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let id = format!("wamid.sample{now_ms}{customer}");
        json_request(
            &json!({ "object": "whatsapp_business_account", "entry": [{ "id": "102290129340398",
            "changes": [{ "field": "messages", "value": { "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": self.phone_number_id },
                "contacts": [{ "profile": { "name": "Sam" }, "wa_id": customer }],
                "messages": [{ "from": customer, "id": id, "timestamp": (now_ms / 1000).to_string(),
                               "type": "text", "text": { "body": text } }] } }] }] }),
        )
    }
}

#[async_trait]
impl Outbound for WhatsApp {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        SERVICE_WINDOW.check(&reply.channel, reply, false, self.clock.now_ms())?;
        let from = match reply.account_id.is_empty() {
            true => &self.phone_number_id,
            false => &reply.account_id,
        };
        let url = format!("{}/{from}/messages", self.api_base);
        let token = self.access_token.expose();
        let (limit, at) = buttons::split(reply, MAX_TEXT_CHARS, buttons::WHATSAPP_BODY_CHARS);
        self.sender
            .send_text(reply, limit, TextUnit::Chars, |index, part| {
                let choices = (at == Some(index)).then_some(reply.choices.as_slice());
                let body = buttons::whatsapp_message(&reply.customer_id, part, choices);
                self.sender.post_json(&url, Some(token), body)
            })
            .await
    }
}

/// One entry of `value.messages`; `None` for what a customer did not write
/// (system notices, unsupported types, a reaction taken back).
fn normalise(
    account: &str,
    from: &str,
    name: Option<String>,
    message: &Object,
) -> Option<InboundMessage> {
    let kind = message.str("type")?;
    let mut quoted = message.object("context").and_then(|c| c.string("id"));
    let (body, attachments) = match kind.as_ref() {
        "text" => (
            message.object("text").and_then(|t| t.string("body")),
            Vec::new(),
        ),
        _ => whatsapp_not_text(&kind, &message.value(), &mut quoted)?,
    };
    let body = body.unwrap_or_default().trim().to_owned();
    if body.is_empty() && attachments.is_empty() {
        return None;
    }
    let seconds: Option<i64> = message.str("timestamp").and_then(|t| t.parse().ok());
    let sent_at_ms = seconds.unwrap_or_default().saturating_mul(1000);
    let id = message.string("id")?;
    Some(InboundMessage {
        channel: "whatsapp".into(),
        account_id: account.to_owned(),
        customer_id: from.to_owned(),
        customer_name: name,
        conversation_id: from.to_owned(),
        provider_message_id: id.clone(),
        sent_at_ms,
        kind: match kind.as_ref() {
            "reaction" => MessageKind::Reaction,
            // A tap on one of our buttons (a template's button is the business's own).
            "interactive" => MessageKind::Choice,
            _ => text_or_media(&body),
        },
        text: body,
        attachments,
        reply: ReplyContext {
            message_id: quoted.or(Some(id)),
            customer_sent_at_ms: Some(sent_at_ms),
            ..ReplyContext::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{ParseError, RequestExt, build_request};
    use serde_json::Value;

    fn channel() -> WhatsApp {
        let config = WhatsAppConfig {
            app_secret: "wa-app-secret".into(),
            verify_token: "meatyhamhock".into(),
            access_token: "EAAG-test".into(),
            phone_number_id: "106540352242922".into(),
            api_base: None,
        };
        WhatsApp::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn parse(body: &Value) -> Result<Vec<InboundMessage>, ParseError> {
        let request = json_request(body);
        channel().parse(&request, &Verified::assume(&request))
    }

    fn envelope(messages: Value, contacts: Value) -> Value {
        json!({ "object": "whatsapp_business_account", "entry": [{ "id": "WABA", "changes": [{ "field": "messages",
            "value": { "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "contacts": contacts, "messages": messages } }] }] })
    }

    #[test]
    fn every_message_of_every_change_is_read() {
        let first = envelope(
            json!([{ "from": "16315551181", "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": { "body": "Hi" } },
                   { "from": "16315551182", "id": "wamid.B", "timestamp": "1700000001", "type": "text", "text": { "body": "你好" } }]),
            json!([{ "profile": { "name": "Kerry" }, "wa_id": "16315551181" }, { "profile": { "name": "李" }, "wa_id": "16315551182" }]),
        );
        let mut body = first.clone();
        let second = first["entry"][0]["changes"][0].clone();
        body["entry"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "WABA", "changes": [second] }));
        let messages = parse(&body).unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[1].customer_name.as_deref(), Some("李"));
        assert_eq!(messages[1].conversation_id, "16315551182");
        assert_eq!(messages[1].sent_at_ms, 1_700_000_001_000);
        assert_eq!(messages[0].account_id, "106540352242922");
    }

    #[test]
    fn media_location_reactions_and_buttons_are_normalised_and_others_dropped() {
        let messages = parse(&envelope(json!([
            { "from": "1", "id": "w1", "timestamp": "1", "type": "image", "image": { "id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "x", "caption": "broken" } },
            { "from": "1", "id": "w2", "timestamp": "1", "type": "location", "location": { "latitude": 38.9, "longitude": -77.0, "name": "Shop" } },
            { "from": "1", "id": "w3", "timestamp": "1", "type": "reaction", "reaction": { "message_id": "wamid.OURS", "emoji": "👍" } },
            { "from": "1", "id": "w4", "timestamp": "1", "type": "interactive", "interactive": { "type": "button_reply", "button_reply": { "id": "b1", "title": "Track order" } } },
            { "from": "1", "id": "w5", "timestamp": "1", "type": "reaction", "reaction": { "message_id": "wamid.OURS", "emoji": "" } },
            { "from": "1", "id": "w6", "timestamp": "1", "type": "system", "system": { "body": "changed number" } },
            { "from": "1", "id": "w7", "timestamp": "1", "type": "unsupported", "errors": [{ "code": 131051 }] },
            { "from": "1", "id": "w8", "timestamp": "1", "type": "document", "document": { "id": "DOC", "mime_type": "application/pdf", "filename": "invoice.pdf" } }
        ]), json!([]))).unwrap();
        let summary: Vec<_> = messages
            .iter()
            .map(|m| (m.provider_message_id.as_str(), m.kind, m.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("w1", MessageKind::Text, "broken"),
                ("w2", MessageKind::Media, ""),
                ("w3", MessageKind::Reaction, "👍"),
                // A button of ours: its id is the choice.
                ("w4", MessageKind::Choice, "b1"),
                ("w8", MessageKind::Media, ""),
            ]
        );
        assert_eq!(
            messages[0].attachments[0].provider_id.as_deref(),
            Some("MEDIA1")
        );
        assert_eq!(
            messages[1].attachments[0].url.as_deref(),
            Some("geo:38.9,-77.0")
        );
        assert_eq!(messages[2].reply.message_id.as_deref(), Some("wamid.OURS"));
        assert_eq!(
            messages[4].attachments[0].name.as_deref(),
            Some("invoice.pdf")
        );
    }

    #[test]
    fn statuses_and_other_fields_yield_nothing_and_bad_bodies_are_errors() {
        let statuses = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "W", "changes": [{ "field": "messages",
            "value": { "metadata": { "phone_number_id": "1" }, "statuses": [{ "id": "wamid.X", "status": "read", "timestamp": "1", "recipient_id": "2" }] } }] }] });
        assert!(parse(&statuses).unwrap().is_empty());
        let other = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "W", "changes": [{ "field": "account_update", "value": {} }] }] });
        assert!(parse(&other).unwrap().is_empty());
        assert!(parse(&json!({ "object": "page", "entry": [] })).is_err());
        assert!(parse(&json!({ "object": "whatsapp_business_account" })).is_err());
    }

    #[test]
    fn the_handshake_needs_the_verify_token() {
        let get = |token: &str| {
            let path = format!(
                "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}"
            );
            build_request("GET", &path, &[], "").unwrap()
        };
        let answer = channel()
            .handshake(&get("meatyhamhock"), 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            (answer.status().as_u16(), answer.body().as_ref()),
            (200, b"1158201444".as_ref())
        );
        assert_eq!(
            channel()
                .handshake(&get("wrong"), 0)
                .unwrap()
                .unwrap()
                .status(),
            403
        );
        let sample = channel().sample("16315551181", "hi", 1_700_000_000_000);
        assert!(channel().handshake(&sample, 0).unwrap().is_none());
        assert_eq!(sample.content_type(), "application/json");
    }

    #[test]
    fn late_replies_fail_visibly() {
        let now = channel().clock.now_ms();
        let request = channel().sample("1", "hi", now - 25 * 3_600_000);
        let message = &channel()
            .parse(&request, &Verified::assume(&request))
            .unwrap()[0];
        let reply = OutboundReply::to_message(message, "answer", "r-1");
        let error = futures_block(channel().send(&reply)).unwrap_err();
        assert!(
            !error.is_transient() && error.to_string().contains("24 hours"),
            "{error}"
        );
    }

    fn futures_block<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }
}
