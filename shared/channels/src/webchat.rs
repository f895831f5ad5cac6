//! Webchat: a signed JSON channel for a business's own web chat widget or app
//! backend. The integration guide (request and reply formats, signing) is the
//! README's section "Web chat or your own app"; the scheme is
//! [`schemes::WEBCHAT`], the same for customer messages and our replies.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use switchboard_domain::{
    Attachment, AttachmentKind, Clock, InboundMessage, MessageKind, OutboundReply, ReplyContext,
    Secret, SendError,
};

use crate::kit::descriptor::build;
use crate::kit::json::{invalid, json_request, text};
use crate::kit::sender::http_url;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Inbound, Outbound, ParseError, Parsed, RequestExt,
    STATUS_ONLY, Sender, SettingsOf, Signature, Unusable, Verified, WebhookRequest, build_request,
    kind_for_mime, nonce, permanent, schemes, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "webchat",
    title: "Web chat or your own app",
    function: Function::IngressIm,
    settings: crate::settings! {
        signing_secret: verify => "at least 16 characters; signs both directions",
        reply_url: send("https://example.invalid/not-needed-to-check") => "where we POST replies",
        account_id: optional => "default `default`",
        replay_window_secs: optional => "default 300",
    },
    build: build::<Webchat>,
    dev: |ctx| json!({ "signing_secret": ctx.secret("signing_secret"), "reply_url": ctx.stand_in }),
};

/// Most messages one request may carry.
pub const MAX_BATCH: usize = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatConfig {
    pub signing_secret: Secret,
    pub reply_url: String,
    pub account_id: Option<String>,
    pub replay_window_secs: Option<i64>,
}

pub struct Webchat {
    signature: Signature,
    reply_url: String,
    account_id: String,
    sender: Sender,
}

impl SettingsOf for Webchat {
    const NAME: &'static str = "webchat";
    type Settings = WebchatConfig;

    fn new(config: WebchatConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        if config.signing_secret.expose().len() < 16 {
            return Err(unusable("signing_secret must be at least 16 characters"));
        }
        let account_id = config.account_id.unwrap_or_else(|| "default".into());
        if account_id.trim().is_empty() {
            return Err(unusable("account_id is empty"));
        }
        let signature =
            Signature::shared(schemes::WEBCHAT, "signing_secret", &config.signing_secret)?;
        Ok(Self {
            signature: signature.window(config.replay_window_secs)?,
            reply_url: http_url("reply_url", &config.reply_url)?,
            account_id,
            sender: Sender::new(Self::NAME, deps.http.clone(), STATUS_ONLY),
        })
    }
}

impl Inbound for Webchat {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed {
        let items = match serde_json::from_slice(&verified.body)? {
            Value::Object(mut object) => match object.remove("messages") {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(invalid("messages must be an array")),
                None => vec![Value::Object(object)],
            },
            _ => return Err(invalid("body must be a JSON object")),
        };
        if items.len() > MAX_BATCH {
            return Err(invalid(&format!(
                "at most {MAX_BATCH} messages per request"
            )));
        }
        let timestamp = request
            .header("X-Switchboard-Timestamp")
            .and_then(|t| t.trim().parse::<i64>().ok());
        let normalise = |(index, item): (usize, Value)| {
            self.normalise(&item, timestamp.unwrap_or_default())
                .map_err(|detail| ParseError::Invalid(format!("message {index}: {detail}")))
        };
        items.into_iter().enumerate().map(normalise).collect()
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        json_request(
            &json!({ "conversation_id": format!("chat-{customer}"), "customer_id": customer,
                              "message_id": format!("m-{now_ms}"), "text": text }),
        )
    }
}

#[async_trait]
impl Outbound for Webchat {
    /// POSTs the reply to `reply_url`, signed like the customers' messages.
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let failed = |what: &str| permanent(Self::NAME, format!("reply could not be {what}"));
        let body = serde_json::to_vec(&WireReply {
            reply_id: &reply.reply_id,
            account_id: &reply.account_id,
            conversation_id: &reply.conversation_id,
            customer_id: &reply.customer_id,
            text: &reply.text,
        })
        .map_err(|_| failed("serialised"))?;
        let headers = [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("idempotency-key".to_owned(), reply.reply_id.clone()),
        ];
        let mut request =
            build_request("POST", &self.reply_url, &headers, body).map_err(|_| failed("built"))?;
        let now_ms = switchboard_domain::SystemClock.now_ms();
        self.signature
            .sign(&mut request, &[], now_ms, &nonce())
            .map_err(|_| failed("signed"))?;
        let request = reqwest::Request::try_from(request).map_err(|_| failed("built"))?;
        let call = reqwest::RequestBuilder::from_parts(self.sender.http().clone(), request);
        self.sender.call(&reply.reply_id, call).await.map(|_| ())
    }
}

impl Webchat {
    fn normalise(&self, item: &Value, header_seconds: i64) -> Result<InboundMessage, String> {
        let empty = Map::new();
        let object = item.as_object().unwrap_or(&empty);
        let field = |name: &str| match object.get(name) {
            Some(Value::String(value)) => Ok(Some(value.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(format!("{name} must be a string")),
        };
        let required = |name: &str| match field(name)? {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(format!("{name} is missing or empty")),
        };
        let (conversation_id, customer_id) =
            (required("conversation_id")?, required("customer_id")?);
        let message_id = required("message_id")?;
        let text = field("text")?.ok_or("text is missing")?;
        let account_id = match field("account_id")? {
            Some(account) if account.trim().is_empty() => return Err("account_id is empty".into()),
            account => account.unwrap_or_else(|| self.account_id.clone()),
        };
        let sent_at = match object.get("sent_at") {
            None | Some(Value::Null) => header_seconds,
            Some(value) => value.as_i64().ok_or("sent_at must be unix seconds")?,
        };
        let attachments: Vec<Attachment> = match object.get("attachments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list.iter().map(attachment).collect(),
            Some(_) => return Err("attachments must be an array".into()),
        };
        let kind = match (text.trim().is_empty(), attachments.is_empty()) {
            (false, _) => MessageKind::Text,
            (true, false) => MessageKind::Media,
            (true, true) => return Err("message has neither text nor attachments".into()),
        };
        Ok(InboundMessage {
            channel: Self::NAME.into(),
            account_id,
            customer_id,
            customer_name: field("customer_name")?.filter(|name| !name.trim().is_empty()),
            conversation_id,
            provider_message_id: message_id,
            sent_at_ms: sent_at.saturating_mul(1000),
            kind,
            text,
            attachments,
            reply: ReplyContext::default(),
        })
    }
}

/// `{"kind", "url", "mime_type", "name"}`, every field optional.
fn attachment(item: &Value) -> Attachment {
    let named = match text(item, "/kind")
        .map(|kind| kind.to_ascii_lowercase())
        .as_deref()
    {
        Some("image") => Some(AttachmentKind::Image),
        Some("video") => Some(AttachmentKind::Video),
        Some("audio") => Some(AttachmentKind::Audio),
        Some("file") => Some(AttachmentKind::File),
        Some("sticker") => Some(AttachmentKind::Sticker),
        Some("location") => Some(AttachmentKind::Location),
        Some("other") => Some(AttachmentKind::Other),
        _ => None,
    };
    let mime_type = text(item, "/mime_type");
    let guessed = mime_type.as_deref().map(kind_for_mime);
    Attachment {
        kind: named.or(guessed).unwrap_or(AttachmentKind::Other),
        provider_id: None,
        url: text(item, "/url"),
        mime_type,
        name: text(item, "/name"),
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
    use super::*;
    use crate::kit::VerifyError;

    const SECRET: &str = "webchat-test-secret";
    const NOW_MS: i64 = 1_700_000_030_000;
    const KNOWN_BODY: &str = r#"{"conversation_id":"conv-9","customer_id":"cust-7","customer_name":"Zoë","message_id":"m-1","text":"Do you ship to Canada? 你们发货吗","sent_at":1699999990}"#;
    /// Computed independently: python3 -c "import hmac,hashlib;
    /// print(hmac.new(b'webchat-test-secret', b'1700000000.' + KNOWN_BODY.encode(), hashlib.sha256).hexdigest())"
    const KNOWN_SIGNATURE: &str =
        "v1=90b2970ce9cd2cbec04c3d59733e633588a4b5891a5795e21912eddacb7483b0";

    fn config(secret: &str, url: &str) -> WebchatConfig {
        WebchatConfig {
            signing_secret: secret.into(),
            reply_url: url.into(),
            account_id: None,
            replay_window_secs: None,
        }
    }

    fn channel() -> Webchat {
        Webchat::new(
            config(SECRET, "https://chat.example.com/replies"),
            &ChannelDeps::offline(),
        )
        .unwrap()
    }

    fn signed(body: &str, timestamp: i64) -> WebhookRequest {
        let mut request = json_request(&serde_json::from_str::<Value>(body).unwrap_or(Value::Null));
        *request.body_mut() = body.to_owned().into();
        channel().sign(&mut request, timestamp * 1000).unwrap();
        request
    }

    fn parse(request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
        channel().parse(request, &Verified::assume(request))
    }

    fn with_signature(mut request: WebhookRequest, value: &str) -> WebhookRequest {
        request
            .headers_mut()
            .insert("x-switchboard-signature", value.parse().unwrap());
        request
    }

    #[test]
    fn known_answer_vector() {
        let request = signed(KNOWN_BODY, 1_700_000_000);
        assert_eq!(
            request.headers()["x-switchboard-signature"],
            KNOWN_SIGNATURE
        );
        let verified = channel().verify(&request, NOW_MS).unwrap();
        let messages = channel().parse(&request, &verified).unwrap();
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
        let mut bytes = tampered.body().to_vec();
        bytes[5] ^= 1;
        *tampered.body_mut() = bytes.into();
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
                .verify(&signed(KNOWN_BODY, 1_700_000_030 + 60), NOW_MS)
                .is_ok()
        );
        assert!(matches!(
            webchat.verify(&signed(KNOWN_BODY, 1_700_000_030 + 61), NOW_MS),
            Err(VerifyError::Future { skew_secs: 60 })
        ));
        let mut missing = signed(KNOWN_BODY, 1_700_000_000);
        missing.headers_mut().remove("x-switchboard-signature");
        assert!(matches!(
            webchat.verify(&missing, NOW_MS),
            Err(VerifyError::Missing("X-Switchboard-Signature"))
        ));
        let good = signed(KNOWN_BODY, 1_700_000_000);
        let v0 = good.headers()["x-switchboard-signature"]
            .to_str()
            .unwrap()
            .replace("v1=", "v0=");
        assert!(matches!(
            webchat.verify(&with_signature(good.clone(), &v0), NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
        // A signature made with another secret.
        let other = Webchat::new(
            config("another-secret-of-16", "https://x.test"),
            &ChannelDeps::offline(),
        )
        .unwrap();
        let mut foreign = signed(KNOWN_BODY, 1_700_000_000);
        other.sign(&mut foreign, 1_700_000_000_000).unwrap();
        assert!(matches!(
            webchat.verify(&foreign, NOW_MS),
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
        let messages = parse(&signed(&body, 1_700_000_000)).unwrap();
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

        assert!(parse(&signed(r#"{"messages":[]}"#, 1)).unwrap().is_empty());
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
                webchat
                    .parse(
                        &signed(body, 1_700_000_000),
                        &Verified::assume(&signed(body, 1))
                    )
                    .is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn config_is_checked() {
        let deps = ChannelDeps::offline();
        assert!(Webchat::new(config("short", "https://x.test"), &deps).is_err());
        assert!(Webchat::new(config(SECRET, "x.test/replies"), &deps).is_err());
        assert!(Webchat::new(config(SECRET, "https://x.test/replies"), &deps).is_ok());
    }

    #[test]
    fn field_errors_name_the_field_not_its_value() {
        let body = r#"{"conversation_id":"c","customer_id":"u","message_id":"m","text":"hi","sent_at":"my password is hunter2"}"#;
        let error = parse(&signed(body, 1)).unwrap_err().to_string();
        assert!(
            error.contains("sent_at") && !error.contains("hunter2"),
            "{error}"
        );
    }
}
