//! SendGrid Inbound Parse: each mail is POSTed as `multipart/form-data`, parsed
//! (`headers`, `text`, `html`, `from`, `envelope`, files) or raw (the whole mail
//! in `email`). Unsigned: the URL registered carries HTTP basic auth.
//!
//! The route also takes the signed Event Webhook (ECDSA P-256 with `public_key`,
//! [`schemes::SENDGRID_EVENTS`]): `bounce`/`dropped` mark the address undeliverable.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{OutboundReply, Secret, SendError};

use crate::email::{
    EmailTransport, Identity, ReceivedMail, ReplyLimits, header, html_to_text, new_text, parse_mime,
};
use crate::kit::descriptor::build;
use crate::kit::json::invalid;
use crate::kit::signature::p256_public_key;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Inbound, Outbound, Parsed, RequestExt, SettingsOf,
    Signature, Unusable, Verified, VerifyError, WebhookRequest, build_request, read_form, schemes,
    unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "sendgrid",
    title: "Email via SendGrid",
    function: Function::IngressEmail,
    settings: crate::settings! {
        inbound_username: verify => "the user name in the Inbound Parse URL you give SendGrid (`https://user:password@…/webhooks/sendgrid`)",
        inbound_password: verify => "the password in that URL",
        from_address: send("support@example.invalid") => "your support address; automated replies come from it",
        public_key: optional => "the Event Webhook's verification key (base64 DER, P-256), from Settings → Mail Settings → Event Webhook → Signed Event Webhook; without it, event posts are refused",
        our_addresses: optional => "further addresses of ours, never answered automatically",
        message_id_domain: optional => "domain of our replies' `Message-ID`s; default: that of `from_address`",
        max_auto_replies_per_day: optional => "automated replies per sender per day, default 10",
    },
    build: build::<Sendgrid>,
    dev: |ctx| {
        json!({
            "inbound_username": "sendgrid",
            "inbound_password": ctx.secret("inbound_password"),
            "from_address": ctx.from_address,
        })
    },
};

const EVENT_SIGNATURE: &str = "X-Twilio-Email-Event-Webhook-Signature";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridConfig {
    pub inbound_username: String,
    pub inbound_password: Secret,
    pub from_address: String,
    pub public_key: Option<String>,
    #[serde(default)]
    pub our_addresses: Vec<String>,
    pub message_id_domain: Option<String>,
    pub max_auto_replies_per_day: Option<u64>,
}

pub struct Sendgrid {
    signature: Signature,
    events: Option<Signature>,
    identity: Identity,
    email: Arc<dyn EmailTransport>,
    limits: ReplyLimits,
}

impl SettingsOf for Sendgrid {
    const NAME: &'static str = "sendgrid";
    type Settings = SendgridConfig;

    fn new(config: SendgridConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        let events = match config.public_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(key) => {
                let key = p256_public_key(key)
                    .ok_or_else(|| unusable("public_key is not a base64 DER P-256 key"))?;
                Some(Signature::p256(schemes::SENDGRID_EVENTS, key, None))
            }
        };
        let domain = config.message_id_domain.as_deref();
        Ok(Self {
            signature: Signature::basic(&config.inbound_username, &config.inbound_password)?,
            events,
            identity: Identity::new(&config.from_address, &config.our_addresses, domain)?,
            email: deps.email.clone(),
            limits: ReplyLimits::new(Self::NAME, deps, config.max_auto_replies_per_day)?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    email: Option<String>,
    event: Option<String>,
}

impl Sendgrid {
    fn events(&self, request: &WebhookRequest) -> Option<Result<&Signature, VerifyError>> {
        request.header(EVENT_SIGNATURE)?;
        Some(
            self.events
                .as_ref()
                .ok_or(VerifyError::Missing("public_key setting")),
        )
    }
}

#[async_trait]
impl Inbound for Sendgrid {
    /// Bounces and drops of a verified Event Webhook post are recorded here
    /// (the store is async); `parse` then yields nothing for the post.
    async fn prepare(&self, request: &mut WebhookRequest, now_ms: i64) -> Result<(), VerifyError> {
        if self.events(request).is_none() {
            return Ok(());
        }
        let verified = self.verify(request, now_ms)?;
        let events: Vec<Event> = serde_json::from_slice(&verified.body).unwrap_or_default();
        for event in events {
            if let (Some("bounce" | "dropped"), Some(email)) =
                (event.event.as_deref(), &event.email)
            {
                self.limits.mark_undeliverable(email, now_ms).await;
            }
        }
        Ok(())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        match self.events(request) {
            Some(events) => events?.verify(request, &[], now_ms),
            None => self.signature.verify(request, &[], now_ms),
        }
    }

    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed {
        // Event posts are JSON; a Parse post is a form, signed or not.
        if request.content_type() == "application/json" {
            let _: Vec<Event> = serde_json::from_slice(&verified.body)?;
            return Ok(Vec::new());
        }
        let form = match &verified.form {
            Some(form) => form.clone(),
            None => read_form(request)?,
        };
        let envelope: Envelope = form
            .non_empty("envelope")
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| invalid("envelope is not JSON"))?
            .unwrap_or_default();
        let mut mail = match form.non_empty("email").and(form.bytes("email")) {
            // The raw mail's bytes, so that its declared charsets decode it.
            Some(raw) => {
                let mail = parse_mime(raw)?;
                ReceivedMail {
                    text: mail.customer_text(),
                    headers: mail.headers,
                    from: mail.from,
                    subject: mail.subject,
                    attachments: mail.attachments,
                    ..ReceivedMail::default()
                }
            }
            None => {
                let block = form.get("headers").unwrap_or_default();
                let head = parse_mime(format!("{}\r\n\r\n", block.trim_end()).as_bytes())?;
                // Body fields come in the mail's own charset, named in `charsets`.
                let charsets: std::collections::HashMap<String, String> = form
                    .non_empty("charsets")
                    .and_then(|json| serde_json::from_str(json).ok())
                    .unwrap_or_default();
                let field = |name| form.decoded(name, charsets.get(name).map(String::as_str));
                let text = match field("text").filter(|t| !t.trim().is_empty()) {
                    Some(text) => new_text(&text),
                    None => new_text(&html_to_text(&field("html").unwrap_or_default())),
                };
                ReceivedMail {
                    from: field("from").filter(|f| !f.trim().is_empty()).or(head.from),
                    subject: field("subject").map_or(head.subject, |s| s.trim().to_owned()),
                    headers: head.headers,
                    text,
                    attachments: form.attachments(),
                    ..ReceivedMail::default()
                }
            }
        };
        mail.envelope_sender = envelope.from;
        mail.recipient = envelope
            .to
            .first()
            .cloned()
            .or_else(|| form.non_empty("to").map(str::to_owned))
            .or_else(|| header(&mail.headers, "To").map(str::to_owned));
        // Without a Message-ID, SendGrid's retry of the same post has the same bytes.
        mail.delivery_id = Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            request.body(),
        )));
        self.identity.inbound(Self::NAME, mail)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let to = crate::email::address_of(&self.identity.from_address).unwrap_or_default();
        let raw = crate::email::sample_mail(customer, &to, text, now_ms);
        let envelope = json!({ "to": [to], "from": customer }).to_string();
        let mut body = String::new();
        for (name, value) in [
            ("email", raw.as_str()),
            ("envelope", &envelope),
            ("to", &to),
            ("from", customer),
        ] {
            body.push_str(&format!(
                "--xYzZY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--xYzZY--\r\n");
        let headers = [(
            "content-type".to_owned(),
            "multipart/form-data; boundary=xYzZY".to_owned(),
        )];
        build_request("POST", "/webhooks", &headers, body).expect("a valid request")
    }
}

#[derive(Debug, Default, Deserialize)]
struct Envelope {
    #[serde(default)]
    to: Vec<String>,
    from: Option<String>,
}

#[async_trait]
impl Outbound for Sendgrid {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        self.limits.check(reply).await?;
        self.identity
            .send_reply(Self::NAME, self.email.as_ref(), reply)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::{AttachmentKind, InboundMessage};

    /// SendGrid's published Event Webhook vector (sendgrid-python,
    /// test/unit/test_eventwebhook.py): key, signature, timestamp, payload.
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const TIMESTAMP: &str = "1600112502";
    const PAYLOAD: &str = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";
    const NOW_MS: i64 = 1_600_112_510_000;

    fn channel(deps: &ChannelDeps) -> Sendgrid {
        let config = serde_json::from_value(json!({
            "inbound_username": "parse", "inbound_password": "secret-pass",
            "from_address": "support@shop.example", "public_key": PUBLIC_KEY,
        }))
        .unwrap();
        Sendgrid::new(config, deps).unwrap()
    }

    fn event_post(signature: &str, body: &str) -> WebhookRequest {
        let headers = [
            ("content-type".to_owned(), "application/json".to_owned()),
            (EVENT_SIGNATURE.to_owned(), signature.to_owned()),
            (
                "X-Twilio-Email-Event-Webhook-Timestamp".to_owned(),
                TIMESTAMP.to_owned(),
            ),
        ];
        build_request("POST", "/webhooks/sendgrid", &headers, body.to_owned()).unwrap()
    }

    fn form_post(file: &str) -> WebhookRequest {
        let path = format!("{}/tests/data/sendgrid/{file}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(path).unwrap();
        let content_type = "multipart/form-data; boundary=xYzZY".to_owned();
        let request = build_request("POST", "/", &[("content-type".into(), content_type)], body);
        request.unwrap()
    }

    fn parse(channel: &Sendgrid, request: &WebhookRequest) -> Vec<InboundMessage> {
        channel.parse(request, &Verified::assume(request)).unwrap()
    }

    struct Fixed;

    impl switchboard_domain::Clock for Fixed {
        fn now_ms(&self) -> i64 {
            NOW_MS
        }
    }

    #[tokio::test]
    async fn signed_event_posts_verify_and_bounces_stop_replies() {
        let deps = ChannelDeps {
            clock: std::sync::Arc::new(Fixed),
            ..ChannelDeps::offline()
        };
        let sendgrid = channel(&deps);
        let post = event_post(SIGNATURE, PAYLOAD);
        let verified = sendgrid.verify(&post, NOW_MS).unwrap();
        assert!(sendgrid.parse(&post, &verified).unwrap().is_empty());
        // Without the trailing CRLF, or with another signature: refused.
        let trimmed = event_post(SIGNATURE, PAYLOAD.trim_end());
        assert!(matches!(
            sendgrid.verify(&trimmed, NOW_MS),
            Err(VerifyError::BadSignature)
        ));
        let other = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
        assert!(
            sendgrid
                .verify(&event_post(other, PAYLOAD), NOW_MS)
                .is_err()
        );
        let late = NOW_MS + 2 * 86_400_000;
        assert!(matches!(
            sendgrid.verify(&post, late),
            Err(VerifyError::Stale { .. })
        ));
        // The dropped address gets no automated reply; an agent still can write.
        sendgrid.prepare(&mut post.clone(), NOW_MS).await.unwrap();
        let mut reply = OutboundReply {
            channel: "sendgrid".into(),
            account_id: "support@shop.example".into(),
            conversation_id: "c".into(),
            customer_id: "hello@world.com".into(),
            text: "hi".into(),
            reply: Default::default(),
            reply_id: "r-1".into(),
            choices: Vec::new(),
        };
        assert!(
            matches!(
                sendgrid.send(&reply).await,
                Err(SendError::Withheld {
                    reason: "the address bounces",
                    ..
                })
            ),
            "an automatic reply to a bouncing address is withheld"
        );
        reply.reply_id = "a-1".into();
        assert!(
            sendgrid.send(&reply).await.is_err(),
            "no thread: tried to mail"
        );
        // Without a public key, event posts are refused.
        let config = serde_json::from_value(json!({
            "inbound_username": "parse", "inbound_password": "p", "from_address": "s@shop.example",
        }))
        .unwrap();
        let unsigned = Sendgrid::new(config, &deps).unwrap();
        assert!(matches!(
            unsigned.verify(&post, NOW_MS),
            Err(VerifyError::Missing(_))
        ));
    }

    #[test]
    fn parsed_mode_and_attachments_are_read() {
        let sendgrid = channel(&ChannelDeps::offline());
        let message = &parse(&sendgrid, &form_post("default_data.txt"))[0];
        assert_eq!(message.customer_id, "test@example.com");
        assert_eq!(message.account_id, "inbound@inbound.example.com");
        assert_eq!(message.text, "Hello Twilio SendGrid!");
        assert_eq!(
            message.reply.email.as_ref().unwrap().subject,
            "Testing non-raw"
        );
        let message = &parse(&sendgrid, &form_post("raw_data_with_attachments.txt"))[0];
        assert_eq!(message.text, "Hello Twilio SendGrid!");
        assert_eq!(message.attachments.len(), 1);
        assert_eq!(message.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(message.attachments[0].name.as_deref(), Some("SendGrid.jpg"));
        // A retry is the same bytes: the same dedupe key without a Message-ID.
        let again = &parse(&sendgrid, &form_post("raw_data_with_attachments.txt"))[0];
        assert_eq!(again.dedupe_key(), message.dedupe_key());
    }

    #[test]
    fn basic_auth_is_required() {
        let sendgrid = channel(&ChannelDeps::offline());
        let mut sample = sendgrid.sample("ann@customer.example", "Where is my parcel?", NOW_MS);
        assert!(matches!(
            sendgrid.verify(&sample, NOW_MS),
            Err(VerifyError::Missing(_))
        ));
        sendgrid.sign(&mut sample, NOW_MS).unwrap();
        let verified = sendgrid.verify(&sample, NOW_MS).unwrap();
        let message = &sendgrid.parse(&sample, &verified).unwrap()[0];
        assert_eq!(message.text, "Where is my parcel?");
        assert_eq!(message.customer_id, "ann@customer.example");
    }

    #[test]
    fn parsed_mode_fields_are_decoded_in_the_charsets_sendgrid_names() {
        let sendgrid = channel(&ChannelDeps::offline());
        // 你好 in GB2312 as the text, the subject in UTF-8, as SendGrid posts
        // a Chinese mail in parsed mode.
        let mut body = Vec::new();
        let mut part = |name: &str, value: &[u8]| {
            body.extend_from_slice(
                format!("--xYzZY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        };
        part("headers", b"Message-ID: <gb@customer.example>\nFrom: ann@customer.example\nTo: support@shop.example");
        part("from", b"ann@customer.example");
        part("to", b"support@shop.example");
        part("subject", "问题".as_bytes());
        part("text", &[0xC4, 0xE3, 0xBA, 0xC3]);
        part(
            "charsets",
            br#"{"to":"UTF-8","subject":"UTF-8","from":"UTF-8","text":"gb2312"}"#,
        );
        body.extend_from_slice(b"--xYzZY--\r\n");
        let headers = [(
            "content-type".to_owned(),
            "multipart/form-data; boundary=xYzZY".to_owned(),
        )];
        let request = build_request("POST", "/webhooks/sendgrid", &headers, body).unwrap();
        let message = &parse(&sendgrid, &request)[0];
        assert_eq!(message.text, "你好");
        assert_eq!(message.reply.email.as_ref().unwrap().subject, "问题");
    }

    /// A raw-mode post whose `email` field is `mail`, bytes as they are.
    fn raw_post(mail: &[u8]) -> WebhookRequest {
        let mut body =
            b"--xYzZY\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n".to_vec();
        body.extend_from_slice(mail);
        body.extend_from_slice(b"\r\n--xYzZY--\r\n");
        let headers = [(
            "content-type".to_owned(),
            "multipart/form-data; boundary=xYzZY".to_owned(),
        )];
        build_request("POST", "/webhooks/sendgrid", &headers, body).unwrap()
    }

    #[test]
    fn raw_mail_is_decoded_in_its_declared_charset() {
        let sendgrid = channel(&ChannelDeps::offline());
        let mail = |charset: &str, body: &[u8]| {
            let mut raw = format!(
                "From: jane@customer.example\r\nTo: support@shop.example\r\n\
                 Subject: Hi\r\nMessage-ID: <{charset}@customer.example>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset={charset}\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\r\n"
            )
            .into_bytes();
            raw.extend_from_slice(body);
            parse(&sendgrid, &raw_post(&raw)).remove(0).text
        };
        // Valid UTF-8 exact, each invalid byte one U+FFFD.
        assert_eq!(
            mail("utf-8", b"Caf\xc3\xa9 \xe8\xae\xa2\xe5\x8d\x95 \xff\xfe ok"),
            "Café 订单 \u{FFFD}\u{FFFD} ok"
        );
        // Other charsets, in 8 bits: their own characters.
        assert_eq!(mail("iso-8859-1", b"Caf\xe9 cr\xe8me"), "Café crème");
        assert_eq!(mail("GB2312", b"\xc4\xe3\xba\xc3"), "你好");
        assert_eq!(
            mail("Shift_JIS", b"\x82\xa0\x82\xe8\x82\xaa\x82\xc6\x82\xa4"),
            "ありがとう"
        );
    }
}
