//! Mailgun inbound routes: a route whose action is `forward("https://…/webhooks/mailgun")`
//! POSTs each received mail as a form, `application/x-www-form-urlencoded`, or
//! `multipart/form-data` when it has attachments.
//!
//! The form carries `timestamp`, `token` and `signature` = hex HMAC-SHA256 of
//! `timestamp + token`, keyed with the HTTP webhook signing key. The timestamp
//! is checked against a replay window on both sides of now (Mailgun leaves the
//! width to us; the default is 15 minutes). Replies go out by email through the
//! configured [`EmailTransport`], threaded under the customer's mail.
//!
//! Settings:
//!
//! ```json
//! { "signing_key": "…", "from_address": "Shop Support <support@shop.example>",
//!   "our_addresses": ["help@shop.example"], "replay_window_secs": 900, "message_id_domain": "shop.example" }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use switchboard_domain::{
    Attachment, AttachmentKind, EmailThread, InboundMessage, MessageKind, OutboundReply,
    ReplyContext, Secret, SendError,
};

use crate::email::{self, EmailTransport, address_of, auto_reply_block, display_name, message_ids};
use crate::form::{Form, read_form};
use crate::outbound::permanent;
use crate::registry::{ChannelDeps, settings};
use crate::verify::{check_replay_window, hex_signature_matches, hmac_sha256};
use crate::{
    Channel, ConfigError, ParseError, SharedChannel, VerifyError, WebhookRequest, kind_for_mime,
};

const NAME: &str = "mailgun";
const DEFAULT_WINDOW_SECS: i64 = 900;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunConfig {
    /// The HTTP webhook signing key (Sending → Webhooks in the Mailgun console).
    pub signing_key: Secret,
    /// Our support address; replies come from it. `Name <address>` or a bare address.
    pub from_address: String,
    /// Further addresses of ours, never to be answered automatically.
    #[serde(default)]
    pub our_addresses: Vec<String>,
    #[serde(default)]
    pub replay_window_secs: Option<i64>,
    /// Domain of our replies' `Message-ID`s; default: the domain of `from_address`.
    #[serde(default)]
    pub message_id_domain: Option<String>,
}

pub struct Mailgun {
    signing_key: Secret,
    from_address: String,
    our_addresses: Vec<String>,
    window_secs: i64,
    message_id_domain: String,
    email: Arc<dyn EmailTransport>,
}

/// Send-only settings, for checking requests without them.
pub const CHECK_PLACEHOLDERS: &[(&str, &str)] = &[("from_address", "support@example.invalid")];

pub fn build(value: &serde_json::Value, deps: &ChannelDeps) -> Result<SharedChannel, ConfigError> {
    let config: MailgunConfig = settings(NAME, value)?;
    Ok(Arc::new(Mailgun::new(config, deps.email.clone())?))
}

impl Mailgun {
    pub fn new(config: MailgunConfig, email: Arc<dyn EmailTransport>) -> Result<Self, ConfigError> {
        let unusable = |detail: &str| ConfigError::Unusable {
            channel: NAME.into(),
            detail: detail.into(),
        };
        if config.signing_key.is_empty() {
            return Err(unusable("signing_key is empty"));
        }
        let from_address = config.from_address.trim().to_owned();
        if address_of(&from_address).is_none()
            || from_address.parse::<lettre::message::Mailbox>().is_err()
        {
            return Err(unusable("from_address is not an email address"));
        }
        if config
            .our_addresses
            .iter()
            .any(|address| address_of(address).is_none())
        {
            return Err(unusable(
                "our_addresses holds something that is not an email address",
            ));
        }
        let window_secs = config.replay_window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
        if window_secs <= 0 {
            return Err(unusable("replay_window_secs must be positive"));
        }
        let message_id_domain = match config.message_id_domain {
            Some(domain) => domain.trim().to_owned(),
            None => email::domain_of(&from_address).unwrap_or_default(),
        };
        if message_id_domain.is_empty() {
            return Err(unusable("message_id_domain is empty"));
        }
        let mut our_addresses = config.our_addresses;
        our_addresses.push(from_address.clone());
        Ok(Self {
            signing_key: config.signing_key,
            from_address,
            our_addresses,
            window_secs,
            message_id_domain,
            email,
        })
    }
}

#[async_trait]
impl Channel for Mailgun {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<(), VerifyError> {
        let form = read_form(request).map_err(|_| VerifyError::Malformed("form body"))?;
        let timestamp = form
            .non_empty("timestamp")
            .ok_or(VerifyError::Missing("timestamp"))?;
        let token = form
            .non_empty("token")
            .ok_or(VerifyError::Missing("token"))?;
        let signature = form
            .non_empty("signature")
            .ok_or(VerifyError::Missing("signature"))?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::Malformed("timestamp"))?;
        let expected = hmac_sha256(
            self.signing_key.expose().as_bytes(),
            &[timestamp.as_bytes(), token.as_bytes()],
        );
        if !hex_signature_matches(&expected, signature) {
            return Err(VerifyError::BadSignature);
        }
        check_replay_window(seconds, now_ms, self.window_secs)
    }

    fn parse(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
        let form = read_form(request)?;
        let headers = match form.non_empty("message-headers") {
            Some(raw) => parse_headers(raw)?,
            None => Vec::new(),
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        };

        let from = form.non_empty("from").or_else(|| header("From"));
        let envelope_sender = form.get("sender");
        let customer_id = from
            .and_then(address_of)
            .or_else(|| envelope_sender.and_then(address_of))
            .ok_or_else(|| ParseError::Invalid("mail without a sender address".into()))?;
        let recipient = form
            .non_empty("recipient")
            .or_else(|| header("To"))
            .and_then(address_of)
            .ok_or_else(|| ParseError::Invalid("mail without a recipient address".into()))?;

        // Never answer a machine: check the headers with the From mailbox, and the
        // envelope sender on its own (bounces come from `<>` or mailer-daemon).
        let blocked = auto_reply_block(&headers, from.unwrap_or(&customer_id), &self.our_addresses)
            .or_else(|| match envelope_sender.map(str::trim) {
                Some("" | "<>") => Some("null-return-path"),
                Some(sender) => auto_reply_block(&[], sender, &self.our_addresses),
                None => None,
            });
        if let Some(reason) = blocked {
            tracing::info!(channel = NAME, reason, "not answering automated mail");
            return Ok(Vec::new());
        }

        let message_id = header("Message-Id").and_then(email::normalize_message_id);
        let references: Vec<String> = header("References").map(message_ids).unwrap_or_default();
        let in_reply_to =
            header("In-Reply-To").and_then(|value| message_ids(value).into_iter().next());
        let token = form.non_empty("token").unwrap_or_default();
        // The thread's root: the first mail of the thread is the first reference
        // of every later one, so a customer's follow-ups share one conversation.
        let root = references
            .first()
            .or(in_reply_to.as_ref())
            .or(message_id.as_ref())
            .map(|id| bare_id(id).to_owned())
            .unwrap_or_else(|| token.to_owned());
        let provider_message_id = message_id
            .as_deref()
            .map(bare_id)
            .unwrap_or(token)
            .to_owned();
        if provider_message_id.is_empty() {
            return Err(ParseError::Invalid(
                "mail without a Message-Id or token".into(),
            ));
        }

        let subject = form
            .get("subject")
            .or_else(|| header("Subject"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let body = form
            .non_empty("stripped-text")
            .or_else(|| form.get("body-plain"))
            .unwrap_or_default()
            .trim();
        // Some customers write the whole question in the subject line.
        let text = if body.is_empty() {
            subject.clone()
        } else {
            body.to_owned()
        };
        let attachments = attachments(&form);
        let kind = if text.is_empty() {
            MessageKind::Media
        } else {
            MessageKind::Text
        };
        let reply_to = header("Reply-To")
            .and_then(address_of)
            .unwrap_or_else(|| customer_id.clone());
        let sent_at_ms = form
            .get("timestamp")
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or_default()
            .saturating_mul(1000);

        Ok(vec![InboundMessage {
            channel: NAME.into(),
            account_id: recipient.clone(),
            customer_id,
            customer_name: from.and_then(display_name),
            conversation_id: root,
            provider_message_id,
            sent_at_ms,
            kind,
            text,
            attachments,
            reply: ReplyContext {
                email: Some(EmailThread {
                    message_id: message_id.unwrap_or_default(),
                    references,
                    subject,
                    reply_to,
                    to: recipient,
                }),
                ..ReplyContext::default()
            },
        }])
    }

    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let thread = reply
            .reply
            .email
            .as_ref()
            .ok_or_else(|| permanent(NAME, "reply without email threading data"))?;
        let message = email::build_reply(
            thread,
            &self.from_address,
            &reply.text,
            &self.message_id_domain,
        )
        .map_err(|error| permanent(NAME, error.to_string()))?;
        match self.email.send(message).await {
            Ok(()) => {
                tracing::info!(channel = NAME, reply_id = %reply.reply_id, "reply mailed");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(channel = NAME, reply_id = %reply.reply_id, transient = error.is_transient(), "reply not mailed");
                Err(error)
            }
        }
    }
}

/// `message-headers`: a JSON array of `[name, value]` pairs.
fn parse_headers(raw: &str) -> Result<Vec<(String, String)>, ParseError> {
    let pairs: Vec<serde_json::Value> = serde_json::from_str(raw)
        .map_err(|_| ParseError::Invalid("message-headers is not a JSON array".into()))?;
    Ok(pairs
        .iter()
        .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([name, value]) => Some((name.as_str()?.to_owned(), value.as_str()?.to_owned())),
            _ => None,
        })
        .collect())
}

fn attachments(form: &Form) -> Vec<Attachment> {
    form.files
        .iter()
        .map(|file| Attachment {
            kind: file
                .content_type
                .as_deref()
                .map_or(AttachmentKind::File, kind_for_mime),
            provider_id: None,
            url: None,
            mime_type: file.content_type.clone(),
            name: Some(file.filename.clone()).filter(|name| !name.is_empty()),
        })
        .collect()
}

fn bare_id(id: &str) -> &str {
    id.trim_start_matches('<').trim_end_matches('>')
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    const KEY: &str = "mailgun-test-signing-key-0001";
    const TOKEN: &str = "5f2b8c1e9d3a4b6c7e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c";
    /// Computed independently: python3 -c "import hmac,hashlib;
    /// print(hmac.new(b'mailgun-test-signing-key-0001', b'1700000000' + TOKEN, hashlib.sha256).hexdigest())"
    const KNOWN_SIGNATURE: &str =
        "49007d10ad6bd6ccd742efbeee7c73d1c8342d8954aa08beb992f9a3d455dbc9";
    const NOW_MS: i64 = 1_700_000_500_000;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<lettre::Message>>);

    #[async_trait]
    impl EmailTransport for Recorder {
        async fn send(&self, message: lettre::Message) -> Result<(), SendError> {
            self.0.lock().unwrap().push(message);
            Ok(())
        }
    }

    fn channel_with(recorder: Arc<Recorder>) -> Mailgun {
        let config: MailgunConfig = serde_json::from_value(json!({
            "signing_key": KEY,
            "from_address": "Shop Support <support@shop.example>",
            "our_addresses": ["help@shop.example"],
        }))
        .unwrap();
        Mailgun::new(config, recorder).unwrap()
    }

    fn channel() -> Mailgun {
        channel_with(Arc::default())
    }

    fn headers_json(pairs: &[(&str, &str)]) -> String {
        serde_json::to_string(&pairs.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>()).unwrap()
    }

    fn form_request(fields: &[(&str, &str)]) -> WebhookRequest {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        WebhookRequest {
            method: "POST".into(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: body.into_bytes(),
            ..Default::default()
        }
    }

    fn signed_fields<'a>(timestamp: &'a str, signature: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("timestamp", timestamp),
            ("token", TOKEN),
            ("signature", signature),
        ]
    }

    fn signature(timestamp: &str) -> String {
        hex::encode(hmac_sha256(
            KEY.as_bytes(),
            &[timestamp.as_bytes(), TOKEN.as_bytes()],
        ))
    }

    fn customer_mail(extra_headers: &[(&str, &str)]) -> WebhookRequest {
        let mut headers = vec![
            ("Received", "by mx.example"),
            ("From", "\"Jane Doe\" <Jane@Customer.example>"),
            ("To", "support@shop.example"),
            ("Subject", "Re: Where is my order?"),
            ("Message-Id", "<CAF=m2@mail.customer.example>"),
            ("In-Reply-To", "<reply1@shop.example>"),
            (
                "References",
                "<m1@mail.customer.example>\r\n <reply1@shop.example>",
            ),
        ];
        headers.extend_from_slice(extra_headers);
        let message_headers = headers_json(&headers);
        let sig = signature("1700000000");
        let mut fields = signed_fields("1700000000", &sig);
        fields.extend([
            ("recipient", "Support@Shop.example"),
            ("sender", "jane@customer.example"),
            ("from", "\"Jane Doe\" <Jane@Customer.example>"),
            ("subject", "Re: Where is my order?"),
            (
                "body-plain",
                "Still nothing.\n\n> On Monday you wrote:\n> quoted",
            ),
            ("stripped-text", "Still nothing."),
            ("message-headers", &message_headers),
        ]);
        form_request(&fields)
    }

    #[test]
    fn known_answer_signature_verifies() {
        let request = form_request(&signed_fields("1700000000", KNOWN_SIGNATURE));
        channel().verify(&request, NOW_MS).unwrap();
        assert_eq!(signature("1700000000"), KNOWN_SIGNATURE);
    }

    #[test]
    fn bad_signatures_stale_and_missing_fields_are_refused() {
        let mailgun = channel();
        let wrong = KNOWN_SIGNATURE.replace('4', "5");
        assert!(matches!(
            mailgun.verify(&form_request(&signed_fields("1700000000", &wrong)), NOW_MS),
            Err(VerifyError::BadSignature)
        ));
        // A valid signature moved to another timestamp no longer matches.
        assert!(matches!(
            mailgun.verify(
                &form_request(&signed_fields("1700000001", KNOWN_SIGNATURE)),
                NOW_MS
            ),
            Err(VerifyError::BadSignature)
        ));
        let old = (NOW_MS / 1000 - 901).to_string();
        let old_signature = signature(&old);
        assert!(matches!(
            mailgun.verify(&form_request(&signed_fields(&old, &old_signature)), NOW_MS),
            Err(VerifyError::Stale { window_secs: 900 })
        ));
        let ahead = (NOW_MS / 1000 + 901).to_string();
        let ahead_signature = signature(&ahead);
        assert!(
            mailgun
                .verify(
                    &form_request(&signed_fields(&ahead, &ahead_signature)),
                    NOW_MS
                )
                .is_err()
        );
        assert!(matches!(
            mailgun.verify(
                &form_request(&[("timestamp", "1700000000"), ("token", TOKEN)]),
                NOW_MS
            ),
            Err(VerifyError::Missing("signature"))
        ));
        let not_a_form = WebhookRequest {
            body: b"{}".to_vec(),
            ..Default::default()
        };
        assert!(matches!(
            mailgun.verify(&not_a_form, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn customer_mail_is_normalised_into_its_thread() {
        let request = customer_mail(&[("Reply-To", "Jane at home <jane.home@customer.example>")]);
        channel().verify(&request, NOW_MS).unwrap();
        let messages = channel().parse(&request).unwrap();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.channel, "mailgun");
        assert_eq!(message.account_id, "support@shop.example");
        assert_eq!(message.customer_id, "jane@customer.example");
        assert_eq!(message.customer_name.as_deref(), Some("Jane Doe"));
        assert_eq!(message.conversation_id, "m1@mail.customer.example");
        assert_eq!(message.provider_message_id, "CAF=m2@mail.customer.example");
        assert_eq!(message.sent_at_ms, 1_700_000_000_000);
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "Still nothing.");
        let thread = message.reply.email.as_ref().unwrap();
        assert_eq!(thread.message_id, "<CAF=m2@mail.customer.example>");
        assert_eq!(
            thread.references,
            ["<m1@mail.customer.example>", "<reply1@shop.example>"]
        );
        assert_eq!(thread.subject, "Re: Where is my order?");
        assert_eq!(thread.reply_to, "jane.home@customer.example");
        assert_eq!(thread.to, "support@shop.example");
    }

    #[test]
    fn first_mail_starts_its_own_conversation() {
        let headers = headers_json(&[("Message-Id", "<first@mail.customer.example>")]);
        let request = form_request(&[
            ("recipient", "support@shop.example"),
            ("sender", "bob@customer.example"),
            ("subject", "Refund?"),
            ("body-plain", ""),
            ("token", TOKEN),
            ("message-headers", &headers),
        ]);
        let message = &channel().parse(&request).unwrap()[0];
        assert_eq!(message.conversation_id, "first@mail.customer.example");
        assert_eq!(message.provider_message_id, "first@mail.customer.example");
        assert_eq!(message.customer_id, "bob@customer.example");
        // An empty body falls back to the subject.
        assert_eq!(message.text, "Refund?");
        assert_eq!(
            message.reply.email.as_ref().unwrap().reply_to,
            "bob@customer.example"
        );

        let no_id = form_request(&[
            ("recipient", "support@shop.example"),
            ("sender", "bob@customer.example"),
            ("token", TOKEN),
            ("body-plain", "hi"),
        ]);
        let message = &channel().parse(&no_id).unwrap()[0];
        assert_eq!(message.provider_message_id, TOKEN);
        assert_eq!(message.conversation_id, TOKEN);
    }

    #[test]
    fn automated_mail_yields_nothing() {
        let mailgun = channel();
        for extra in [
            [("Auto-Submitted", "auto-replied")],
            [("List-Id", "<news.example>")],
            [("Precedence", "bulk")],
            [("X-Autoreply", "yes")],
            [("Return-Path", "<>")],
        ] {
            assert!(
                mailgun.parse(&customer_mail(&extra)).unwrap().is_empty(),
                "{extra:?}"
            );
        }
        for (from, sender) in [
            (
                "Mail Delivery Subsystem <MAILER-DAEMON@mx.example>",
                "mailer-daemon@mx.example",
            ),
            (
                "Shop Support <support@shop.example>",
                "support@shop.example",
            ),
            ("help@shop.example", "help@shop.example"),
            ("jane@customer.example", ""),
            ("jane@customer.example", "bounces+x@esp.example"),
        ] {
            let request = form_request(&[
                ("recipient", "support@shop.example"),
                ("from", from),
                ("sender", sender),
                ("body-plain", "hello"),
                ("token", TOKEN),
            ]);
            assert!(
                mailgun.parse(&request).unwrap().is_empty(),
                "{from} / {sender}"
            );
        }
    }

    #[test]
    fn multipart_attachments_are_described() {
        let headers = headers_json(&[("Message-Id", "<att@mail.customer.example>")]);
        let body = format!(
            "--bnd\r\nContent-Disposition: form-data; name=\"recipient\"\r\n\r\nsupport@shop.example\r\n\
             --bnd\r\nContent-Disposition: form-data; name=\"sender\"\r\n\r\nann@customer.example\r\n\
             --bnd\r\nContent-Disposition: form-data; name=\"body-plain\"\r\n\r\n\r\n\
             --bnd\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{TOKEN}\r\n\
             --bnd\r\nContent-Disposition: form-data; name=\"message-headers\"\r\n\r\n{headers}\r\n\
             --bnd\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"broken.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n\u{0}\u{1}binary\r\n\
             --bnd\r\nContent-Disposition: form-data; name=\"attachment-2\"; filename=\"order.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF\r\n--bnd--\r\n"
        );
        let request = WebhookRequest {
            method: "POST".into(),
            headers: vec![(
                "content-type".into(),
                "multipart/form-data; boundary=bnd".into(),
            )],
            body: body.into_bytes(),
            ..Default::default()
        };
        let message = &channel().parse(&request).unwrap()[0];
        assert_eq!(message.kind, MessageKind::Media);
        assert_eq!(message.attachments.len(), 2);
        assert_eq!(message.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(message.attachments[0].name.as_deref(), Some("broken.jpg"));
        assert_eq!(
            message.attachments[0].mime_type.as_deref(),
            Some("image/jpeg")
        );
        assert_eq!(message.attachments[1].kind, AttachmentKind::File);
    }

    #[test]
    fn invalid_posts_are_parse_errors() {
        let mailgun = channel();
        let json = WebhookRequest {
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"recipient\":\"x\"}".to_vec(),
            ..Default::default()
        };
        assert!(mailgun.parse(&json).is_err());
        let broken_multipart = WebhookRequest {
            headers: vec![(
                "content-type".into(),
                "multipart/form-data; boundary=zz".into(),
            )],
            body: b"--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end".to_vec(),
            ..Default::default()
        };
        assert!(mailgun.parse(&broken_multipart).is_err());
        assert!(
            mailgun
                .parse(&form_request(&[
                    ("recipient", "support@shop.example"),
                    ("message-headers", "{oops")
                ]))
                .is_err()
        );
        assert!(
            mailgun
                .parse(&form_request(&[("recipient", "support@shop.example")]))
                .is_err()
        );
        assert!(
            mailgun
                .parse(&form_request(&[("sender", "a@b.example")]))
                .is_err()
        );
    }

    #[tokio::test]
    async fn replies_are_mailed_in_the_thread() {
        let recorder = Arc::new(Recorder::default());
        let mailgun = channel_with(recorder.clone());
        let inbound = mailgun.parse(&customer_mail(&[])).unwrap().remove(0);
        let reply = OutboundReply::to_message(&inbound, "It left our warehouse today.", "r-1");
        mailgun.send(&reply).await.unwrap();
        let sent = recorder.0.lock().unwrap().remove(0);
        let headers = sent.headers();
        assert_eq!(headers.get_raw("To"), Some("jane@customer.example"));
        assert_eq!(
            headers.get_raw("From"),
            Some("Shop Support <support@shop.example>")
        );
        assert_eq!(headers.get_raw("Subject"), Some("Re: Where is my order?"));
        assert_eq!(
            headers.get_raw("In-Reply-To"),
            Some("<CAF=m2@mail.customer.example>")
        );
        assert!(
            headers
                .get_raw("Message-ID")
                .unwrap()
                .ends_with("@shop.example>")
        );

        let without_thread = OutboundReply {
            reply: ReplyContext::default(),
            ..reply
        };
        assert!(
            !mailgun
                .send(&without_thread)
                .await
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn config_is_checked() {
        let make = |value: serde_json::Value| {
            let config: MailgunConfig = serde_json::from_value(value).unwrap();
            Mailgun::new(config, Arc::new(Recorder::default()))
        };
        assert!(make(json!({ "signing_key": "k", "from_address": "support" })).is_err());
        assert!(make(json!({ "signing_key": "", "from_address": "a@b.example" })).is_err());
        assert!(
            make(
                json!({ "signing_key": "k", "from_address": "a@b.example", "our_addresses": ["x"] })
            )
            .is_err()
        );
        let ok = make(json!({ "signing_key": "k", "from_address": "a@b.example" })).unwrap();
        assert_eq!(ok.message_id_domain, "b.example");
        assert_eq!(ok.window_secs, 900);
    }
}
