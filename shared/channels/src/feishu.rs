//! Feishu / Lark events (HTTP, schema 2.0): bodies `{"encrypt": …}`, signed by `X-Lark-Signature`
//! (plain SHA-256, [`schemes::FEISHU`]), carrying our Verification Token. The unsigned
//! `url_verification` is answered from the token alone, at once (Feishu waits 1 s).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{
    Attachment, AttachmentKind, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret,
    SendError,
};

use crate::kit::buttons;
use crate::kit::crypto::{feishu_encrypt, feishu_open, random_16};
use crate::kit::json::{MediaFields, invalid, json_request, location, media, strings_named, text};
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed, Sender,
    SettingsOf, SignError, Signature, TokenCache, Unusable, Verified, VerifyError, WebhookRequest,
    fetch_token, idempotency_key, nonce, reply, required, schemes, send_text_with_token,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "feishu",
    title: "Feishu / Lark",
    function: Function::IngressIm,
    settings: crate::settings! {
        app_id: send("cli_not_needed_to_check") => "open.feishu.cn/app (Lark: open.larksuite.com/app) → your app → Credentials & Basic Info → App ID",
        app_secret: send("not-needed-to-check") => "same page, App Secret; for the tenant access token",
        verification_token: verify => "Events & Callbacks → Encryption strategy → Verification Token; checked in every event",
        encrypt_key: verify => "same page, Encrypt Key; decrypts events and checks `X-Lark-Signature`",
        base_url: optional => "default `https://open.feishu.cn`; Lark: `https://open.larksuite.com`",
    },
    build: crate::kit::descriptor::build::<Feishu>,
    dev: |ctx| {
        json!({ "app_id": "cli_development", "app_secret": ctx.secret("app_secret"),
        "verification_token": ctx.secret("verification_token"), "encrypt_key": ctx.secret("encrypt_key"), "base_url": ctx.stand_in })
    },
};

/// A request body may hold 150 KB; the text goes JSON-encoded twice.
const MAX_TEXT_BYTES: usize = 50_000;
/// `code` in every answer; 9999166x: the tenant access token is invalid or expired.
const ERRORS: ApiErrors = ApiErrors {
    ok: Some("/code"),
    code: "/code",
    transient: "99991400 1254290 1255001 1255002",
    stale_token: "99991661 99991663 99991668 99991677",
    retry_after: None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    pub app_id: String,
    pub app_secret: Secret,
    pub verification_token: Secret,
    pub encrypt_key: Secret,
    pub base_url: Option<String>,
}

pub struct Feishu {
    config: FeishuConfig,
    signature: Signature,
    api: String,
    tokens: TokenCache,
    sender: Sender,
}

impl SettingsOf for Feishu {
    const NAME: &'static str = "feishu";
    type Settings = FeishuConfig;

    fn new(config: FeishuConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("app_secret", &config.app_secret)?;
        required("verification_token", &config.verification_token)?;
        let base = config.base_url.as_deref();
        let base = crate::kit::sender::base_url_or("base_url", base, "https://open.feishu.cn")?;
        Ok(Self {
            signature: Signature::shared(schemes::FEISHU, "encrypt_key", &config.encrypt_key)?,
            tokens: TokenCache::shared(format!("feishu:{}", config.app_id), deps),
            config,
            api: format!("{base}/open-apis"),
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Feishu {
    /// The event, decrypted when it came encrypted, carrying our Verification Token.
    fn event(&self, body: &[u8]) -> Result<Value, VerifyError> {
        let event = feishu_open(self.config.encrypt_key.expose(), body);
        let event = event.map_err(|_| VerifyError::Malformed("event"))?;
        let token = text(&event, "/header/token").or_else(|| text(&event, "/token"));
        let token = token.unwrap_or_default();
        let expected = self.config.verification_token.expose().as_bytes();
        match crate::kit::signature::secret_eq(token.as_bytes(), expected) {
            true => Ok(event),
            false => Err(VerifyError::BadSignature),
        }
    }
}

impl Inbound for Feishu {
    fn handshake(&self, request: &WebhookRequest, _now_ms: i64) -> Handshake {
        // A challenge with a wrong token is no handshake; `verify` refuses it.
        let event = self.event(request.body()).ok();
        let event = event.filter(|e| text(e, "/type").as_deref() == Some("url_verification"));
        let challenge = event.and_then(|event| text(&event, "/challenge"));
        Ok(challenge.map(|challenge| reply::json(200, &json!({ "challenge": challenge }))))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        let verified = self.signature.verify(request, &[], now_ms)?;
        let event = self.event(request.body())?;
        let body = event.to_string().into();
        Ok(Verified { body, ..verified })
    }

    fn parse(&self, _request: &WebhookRequest, verified: &Verified) -> Parsed {
        let event: Value = serde_json::from_slice(&verified.body)?;
        // Schema 1.0 envelopes (`uuid`, `event.type`) are not subscribed to.
        if text(&event, "/header/event_type").is_none() && event.get("uuid").is_none() {
            return Err(invalid("event has no header.event_type"));
        }
        let message = || Ok(normalise(&event).into_iter().collect());
        buttons::feishu_card_action(&event).unwrap_or_else(message)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let body = json!({ "schema": "2.0", "header": { "event_id": format!("sample{now_ms}"),
            "token": self.config.verification_token.expose(), "create_time": now_ms.to_string(),
            "event_type": "im.message.receive_v1", "tenant_key": "sample", "app_id": self.config.app_id },
            "event": { "sender": { "sender_id": { "open_id": customer }, "sender_type": "user", "tenant_key": "sample" },
              "message": { "message_id": format!("om_{now_ms}"), "create_time": now_ms.to_string(),
                "chat_id": format!("oc_{customer}"), "chat_type": "p2p", "message_type": "text",
                "content": json!({ "text": text }).to_string() } } });
        json_request(&body)
    }

    fn sign(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), SignError> {
        let key = self.config.encrypt_key.expose();
        let sealed = feishu_encrypt(key, &random_16(), request.body());
        *request.body_mut() = json!({ "encrypt": sealed }).to_string().into();
        self.signature.sign(request, &[], now_ms, &nonce())
    }
}

#[async_trait]
impl Outbound for Feishu {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let (api, config) = (&self.api, &self.config); // borrowed by the closures
        let fetch = || {
            let url = format!("{api}/auth/v3/tenant_access_token/internal");
            let body = json!({ "app_id": config.app_id, "app_secret": config.app_secret.expose() });
            let request = self.sender.post_json(&url, None, body);
            fetch_token(&self.sender, request, "/tenant_access_token", "/expire")
        };
        // Answer the customer's message; without one (never seen), post to the chat.
        let url = match &reply.reply.message_id {
            Some(id) => format!("{api}/im/v1/messages/{id}/reply"),
            None => format!("{api}/im/v1/messages?receive_id_type=chat_id"),
        };
        let (limit, card_at) = buttons::feishu_split(reply, MAX_TEXT_BYTES); // the last part a card?
        let build = |index: usize, part: &str, token: &Secret| {
            let choices = (card_at == Some(index)).then_some(reply.choices.as_slice());
            let (kind, content) = buttons::feishu_content(part, choices);
            let body = json!({ "receive_id": reply.conversation_id, "msg_type": kind,
                "content": content, "uuid": idempotency_key(&reply.reply_id, index) });
            self.sender.post_json(&url, Some(token.expose()), body)
        };
        send_text_with_token(&self.sender, reply, limit, &self.tokens, fetch, build).await
    }
}

/// The customer message in a message event, if it is one: received (text,
/// rich text, media, location; not from a bot, ours included) or recalled.
fn normalise(event: &Value) -> Option<InboundMessage> {
    let kind = text(event, "/header/event_type")?;
    (kind == "im.message.receive_v1" || kind == "im.message.recalled_v1").then_some(())?;
    let (body, recalled) = (&event["event"], kind == "im.message.recalled_v1");
    let message = body.get("message").unwrap_or(body);
    let (id, chat) = (text(message, "/message_id")?, text(message, "/chat_id")?);
    let from_user = text(body, "/sender/sender_type").as_deref() == Some("user");
    let found = recalled.then(Default::default).or_else(|| content(message));
    let (words, attachment) = found.filter(|_| recalled || from_user)?;
    let customer = text(body, "/sender/sender_id/open_id").unwrap_or_else(|| chat.clone());
    let time = text(message, "/create_time").or_else(|| text(body, "/recall_time"));
    let event_id = text(event, "/header/event_id").unwrap_or_else(|| id.clone());
    let recall = format!("{id}:recalled");
    let kind = [MessageKind::Text, MessageKind::Media][usize::from(words.is_empty())];
    Some(InboundMessage {
        channel: "feishu".into(),
        account_id: text(event, "/header/app_id").unwrap_or_default(),
        customer_id: customer,
        customer_name: None,
        conversation_id: chat,
        provider_message_id: if recalled { recall } else { event_id },
        sent_at_ms: time.and_then(|t| t.parse().ok()).unwrap_or_default(),
        kind: if recalled { MessageKind::Delete } else { kind },
        text: words,
        attachments: attachment.into_iter().collect(),
        reply: ReplyContext {
            message_id: Some(id),
            ..ReplyContext::default()
        },
    })
}

/// Text and attachment of a received message, whose `content` is a JSON
/// string; mentions (`@_user_1` placeholders) are not part of the question.
fn content(message: &Value) -> Option<(String, Option<Attachment>)> {
    let content: Value = serde_json::from_str(&text(message, "/content")?).ok()?;
    let (words, attachment) = match text(message, "/message_type")?.as_str() {
        "text" => (text(&content, "/text")?, None),
        "post" => {
            let mut pieces: Vec<String> = text(&content, "/title").into_iter().collect();
            let tree = content.get("content").unwrap_or(&Value::Null);
            pieces.extend(strings_named(tree, "text")); // rich text: its text elements
            (pieces.join(" "), None)
        }
        "location" => {
            let (lat, lon) = (&content["latitude"], &content["longitude"]);
            let place = location(lat, lon, text(&content, "/name"));
            (String::new(), Some(place))
        }
        other => match MEDIA.iter().find(|(name, _, _)| *name == other) {
            Some((_, kind, id)) => {
                let fields = MediaFields::keyed(id, "/file_name");
                (String::new(), Some(media(&content, Some(*kind), &fields)?))
            }
            None => (String::new(), Some(crate::kit::json::unreadable(other))), // for a person
        },
    };
    let keys = strings_named(&message["mentions"], "key");
    let words = keys.iter().fold(words, |words, key| words.replace(key, ""));
    Some((words.trim().to_owned(), attachment))
}

/// Media message types: the attachment kind and where the file's key is.
const MEDIA: [(&str, AttachmentKind, &str); 5] = [
    ("image", AttachmentKind::Image, "/image_key"),
    ("file", AttachmentKind::File, "/file_key"),
    ("audio", AttachmentKind::Audio, "/file_key"),
    ("media", AttachmentKind::Video, "/file_key"),
    ("sticker", AttachmentKind::Sticker, "/file_key"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;

    fn channel() -> Feishu {
        let config = FeishuConfig {
            app_id: "cli_1".into(),
            app_secret: "secret".into(),
            verification_token: "v-token".into(),
            encrypt_key: "feishu-test-key".into(),
            base_url: None,
        };
        Feishu::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn request(headers: &[(&str, &str)], body: &str) -> WebhookRequest {
        let mut all = vec![("content-type".to_owned(), "application/json".to_owned())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        build_request("POST", "/webhooks/feishu", &all, body.to_owned()).unwrap()
    }

    /// No published known answer exists; this one was computed independently:
    /// python3 -c "import hashlib; print(hashlib.sha256(b'1700000000' +
    /// b'13ae2e0a' + b'feishu-test-key' + BODY).hexdigest())". A plain hash:
    /// an HMAC of the same parts would not match.
    #[test]
    fn signature_is_a_plain_sha256_of_timestamp_nonce_key_and_body() {
        let body = r#"{"encrypt":"FIAfJPGRmFZWkaxPQ1XrJZVbv2JwdjfLk4jx0k/U1deAqYK3AXOZ5zcHt/cC4ZNTqYwWUW/EoL+b2hW/C4zoAQQ5CeMtbxX2zHjm+E4nX/Aww+FHUL6iuIMaeL2KLxqdtbHRC50vgC2YI7xohnb3KuCNBMUzLiPeNIpVdnYaeteCmSaESb+AZpJB0tdZ7Hir2Ohqq/Ly8QL9VowQ76M8uYBOPg3MYRnCRXxHLb3Sls6DmfLt2bYcSq3lEvz+7WQzlDzYNKMcqSGH1kTqs2qqlBGMLDuPUAgwmmqHl1o0TFDvgb1+J7wvn5uWH9DdwZ0fJfZ7ecxhRN4A9iVqGnRhGpjAjY3p+y2eeybk6Yq3SNGk="}"#;
        let headers = [
            ("X-Lark-Request-Timestamp", "1700000000"),
            ("X-Lark-Request-Nonce", "13ae2e0a"),
            (
                "X-Lark-Signature",
                "5cc5408132d97f48f4aa758d656c1b0b51bfc3bc79e8c6da6a70c6a54ab895b4",
            ),
        ];
        let feishu = channel();
        let signed = request(&headers, body);
        let error = feishu.verify(&signed, 1_700_000_000_000).unwrap_err();
        // The signature holds; the body is not one of ours (another key sealed it).
        assert!(matches!(error, VerifyError::Malformed(_)), "{error}");
        let mut changed = signed.clone();
        changed
            .headers_mut()
            .insert("x-lark-request-nonce", "13ae2e0b".parse().unwrap());
        assert!(matches!(
            feishu.verify(&changed, 1_700_000_000_000),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn url_verification_needs_our_token_only() {
        let feishu = channel();
        let plain =
            r#"{"challenge":"ajls384kdjx98XX","token":"v-token","type":"url_verification"}"#;
        let answer = feishu.handshake(&request(&[], plain), 0).unwrap().unwrap();
        assert_eq!(
            answer.body().as_ref(),
            br#"{"challenge":"ajls384kdjx98XX"}"#
        );
        let mut sealed = request(&[], plain);
        feishu.sign(&mut sealed, 0).unwrap();
        assert!(feishu.handshake(&sealed, 0).unwrap().is_some());
        let forged = plain.replace("v-token", "v-tokeN");
        assert!(
            feishu
                .handshake(&request(&[], &forged), 0)
                .unwrap()
                .is_none()
        );
        assert!(feishu.verify(&request(&[], &forged), 0).is_err());
    }

    fn parse(event: Value) -> Vec<InboundMessage> {
        let feishu = channel();
        let request = json_request(&event);
        feishu.parse(&request, &Verified::assume(&request)).unwrap()
    }

    fn received(message_type: &str, content: Value) -> Value {
        json!({ "schema": "2.0", "header": { "event_id": "e1", "event_type": "im.message.receive_v1", "app_id": "cli_1" },
            "event": { "sender": { "sender_id": { "open_id": "ou_1" }, "sender_type": "user" },
              "message": { "message_id": "om_1", "chat_id": "oc_1", "chat_type": "p2p", "create_time": "1609073151345",
                "message_type": message_type, "content": content.to_string() } } })
    }

    #[test]
    fn rich_text_media_location_and_recalls() {
        let post = json!({ "title": "订单", "content": [[{ "tag": "text", "text": "几点" }, { "tag": "at", "user_id": "@_user_1" }], [{ "tag": "text", "text": "开门" }]] });
        assert_eq!(parse(received("post", post))[0].text, "订单 几点 开门");
        let image = &parse(received("image", json!({ "image_key": "img_v2_1" })))[0];
        assert_eq!(
            (image.kind, image.attachments[0].provider_id.as_deref()),
            (MessageKind::Media, Some("img_v2_1"))
        );
        assert_eq!(image.attachments[0].kind, AttachmentKind::Image);
        let place = &parse(received(
            "location",
            json!({ "name": "北京", "latitude": "39.9", "longitude": "116.4" }),
        ))[0];
        assert_eq!(place.attachments[0].kind, AttachmentKind::Location);
        // What the bot cannot read still reaches a person, named by its type;
        // a sticker is a sticker (recorded, or a vote).
        for (kind, content) in [
            ("merge_forward", json!({})),
            ("interactive", json!({ "elements": [] })),
            ("share_chat", json!({ "chat_id": "oc_2" })),
        ] {
            let message = &parse(received(kind, content))[0];
            assert_eq!(message.kind, MessageKind::Media, "{kind}");
            assert_eq!(message.attachments[0].kind, AttachmentKind::Other);
            assert_eq!(message.attachments[0].name.as_deref(), Some(kind));
        }
        let sticker = &parse(received("sticker", json!({ "file_key": "st_1" })))[0];
        assert_eq!(sticker.attachments[0].kind, AttachmentKind::Sticker);
        let recalled = json!({ "schema": "2.0", "header": { "event_id": "e2", "event_type": "im.message.recalled_v1", "app_id": "cli_1" },
            "event": { "message_id": "om_1", "chat_id": "oc_1", "recall_time": "1609073151400", "recall_type": "message_owner" } });
        let recall = &parse(recalled)[0];
        assert_eq!(
            (recall.kind, recall.provider_message_id.as_str()),
            (MessageKind::Delete, "om_1:recalled")
        );
        // Schema 1.0 is not subscribed to; a body without any event type is an error.
        assert!(parse(json!({ "uuid": "u1", "event": { "type": "message" } })).is_empty());
        let request = json_request(&json!({ "schema": "2.0" }));
        assert!(
            channel()
                .parse(&request, &Verified::assume(&request))
                .is_err()
        );
    }
}
