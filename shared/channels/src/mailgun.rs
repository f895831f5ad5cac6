//! Mailgun inbound routes: a route whose action is `forward("https://…/webhooks/mailgun")`
//! POSTs each received mail as a form (urlencoded, or multipart with attachments).
//!
//! The form carries `timestamp`, `token` and `signature` ([`schemes::MAILGUN`]).
//! The timestamp must lie within the replay window (Mailgun leaves the width
//! to us; 15 minutes by default) and the token is a nonce: ingress refuses a
//! token seen before with another body. Replies go out by email through the
//! configured [`EmailTransport`], threaded under the customer's mail.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{OutboundReply, Secret, SendError};

use crate::email::{EmailTransport, Identity, ReceivedMail, ReplyLimits, header, new_text};
use crate::kit::descriptor::build;
use crate::kit::json::invalid;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Inbound, Outbound, ParseError, Parsed, SettingsOf,
    Signature, Unusable, Verified, WebhookRequest, build_request, read_form, schemes,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "mailgun",
    title: "Email via Mailgun",
    function: Function::IngressEmail,
    settings: crate::settings! {
        signing_key: verify => "Mailgun's HTTP webhook signing key; `signature = hex(HMAC-SHA256(key, timestamp + token))`, timestamp within 15 minutes, each token accepted once",
        from_address: send("support@example.invalid") => "your support address; automated replies come from it",
        our_addresses: optional => "further addresses of ours, never answered automatically",
        replay_window_secs: optional => "default 900",
        message_id_domain: optional => "domain of our replies' `Message-ID`s; default: that of `from_address`",
        max_auto_replies_per_day: optional => "automated replies per sender per day, default 10",
    },
    build: build::<Mailgun>,
    dev: |ctx| json!({ "signing_key": ctx.secret("signing_key"), "from_address": ctx.from_address }),
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunConfig {
    pub signing_key: Secret,
    /// `Name <address>` or a bare address.
    pub from_address: String,
    #[serde(default)]
    pub our_addresses: Vec<String>,
    pub replay_window_secs: Option<i64>,
    pub message_id_domain: Option<String>,
    pub max_auto_replies_per_day: Option<u64>,
}

pub struct Mailgun {
    signature: Signature,
    identity: Identity,
    email: Arc<dyn EmailTransport>,
    limits: ReplyLimits,
}

impl SettingsOf for Mailgun {
    const NAME: &'static str = "mailgun";
    type Settings = MailgunConfig;

    fn new(config: MailgunConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        let signature = Signature::shared(schemes::MAILGUN, "signing_key", &config.signing_key)?;
        let domain = config.message_id_domain.as_deref();
        Ok(Self {
            signature: signature.window(config.replay_window_secs)?,
            identity: Identity::new(&config.from_address, &config.our_addresses, domain)?,
            email: deps.email.clone(),
            limits: ReplyLimits::new(Self::NAME, deps, config.max_auto_replies_per_day)?,
        })
    }
}

impl Inbound for Mailgun {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed {
        let read;
        let form = match &verified.form {
            Some(form) => form,
            None => {
                read = read_form(request)?;
                &read
            }
        };
        let headers = match form.non_empty("message-headers") {
            Some(raw) => parse_headers(raw)?,
            None => Vec::new(),
        };
        let text = match form.non_empty("stripped-text") {
            Some(stripped) => stripped.to_owned(),
            None => new_text(form.get("body-plain").unwrap_or_default()),
        };
        let seconds = form
            .get("timestamp")
            .and_then(|value| value.trim().parse::<i64>().ok());
        let mail = ReceivedMail {
            from: form.non_empty("from").map(str::to_owned),
            envelope_sender: form.get("sender").map(str::to_owned),
            recipient: form.non_empty("recipient").map(str::to_owned),
            subject: form
                .get("subject")
                .or_else(|| header(&headers, "Subject"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            text,
            attachments: form.attachments(),
            // Without a Message-Id, Mailgun's token identifies the delivery.
            delivery_id: form.non_empty("token").map(str::to_owned),
            sent_at_ms: seconds.unwrap_or_default().saturating_mul(1000),
            headers,
        };
        self.identity.inbound(Self::NAME, mail)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let message_id = format!("<sample-{now_ms}@customer.example>");
        let to = &self.identity.from_address;
        let headers = json!([
            ["From", customer],
            ["To", to],
            ["Subject", "Question"],
            ["Message-Id", message_id]
        ]);
        let fields = [
            ("sender", customer),
            ("from", customer),
            ("recipient", to),
            ("subject", "Question"),
            ("body-plain", text),
            ("stripped-text", text),
            ("message-headers", &headers.to_string()),
        ];
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let content_type = [(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        build_request("POST", "/webhooks", &content_type, body).expect("a valid request")
    }
}

#[async_trait]
impl Outbound for Mailgun {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        self.limits.check(reply).await?;
        self.identity
            .send_reply(Self::NAME, self.email.as_ref(), reply)
            .await
    }
}

/// `message-headers`: a JSON array of `[name, value]` pairs.
fn parse_headers(raw: &str) -> Result<Vec<(String, String)>, ParseError> {
    let pairs: Vec<serde_json::Value> =
        serde_json::from_str(raw).map_err(|_| invalid("message-headers is not a JSON array"))?;
    let pair = |pair: &serde_json::Value| match pair.as_array().map(Vec::as_slice) {
        Some([name, value]) => Some((name.as_str()?.to_owned(), value.as_str()?.to_owned())),
        _ => None,
    };
    Ok(pairs.iter().filter_map(pair).collect())
}

#[cfg(test)]
mod tests {

    use crate::kit::VerifyError;
    use switchboard_domain::{AttachmentKind, InboundMessage, MessageKind, ReplyContext};

    use serde_json::json;

    use super::*;

    const KEY: &str = "mailgun-test-signing-key-0001";
    const TOKEN: &str = "5f2b8c1e9d3a4b6c7e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c";
    /// Computed independently: python3 -c "import hmac,hashlib;
    /// print(hmac.new(b'mailgun-test-signing-key-0001', b'1700000000' + TOKEN, hashlib.sha256).hexdigest())"
    const KNOWN_SIGNATURE: &str =
        "49007d10ad6bd6ccd742efbeee7c73d1c8342d8954aa08beb992f9a3d455dbc9";
    const NOW_MS: i64 = 1_700_000_500_000;

    use crate::email::RecordingTransport as Recorder;

    fn deps(email: Arc<dyn EmailTransport>) -> ChannelDeps {
        ChannelDeps {
            email,
            ..ChannelDeps::offline()
        }
    }

    fn channel_with(recorder: Arc<Recorder>) -> Mailgun {
        let config: MailgunConfig = serde_json::from_value(json!({
            "signing_key": KEY,
            "from_address": "Shop Support <support@shop.example>",
            "our_addresses": ["help@shop.example"],
        }))
        .unwrap();
        Mailgun::new(config, &deps(recorder)).unwrap()
    }

    fn request(content_type: &str, body: impl Into<bytes::Bytes>) -> WebhookRequest {
        let headers = [("content-type".to_owned(), content_type.to_owned())];
        crate::kit::build_request("POST", "/webhooks/mailgun", &headers, body).unwrap()
    }

    impl Mailgun {
        fn parse_body(&self, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
            self.parse(request, &Verified::assume(request))
        }
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
        request("application/x-www-form-urlencoded", body)
    }

    fn signed_fields<'a>(timestamp: &'a str, signature: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("timestamp", timestamp),
            ("token", TOKEN),
            ("signature", signature),
        ]
    }

    fn signature(timestamp: &str) -> String {
        use crate::kit::signature::{Digest, Mac, digest};
        let message = format!("{timestamp}{TOKEN}");
        hex::encode(digest(
            Mac::Hmac(Digest::Sha256),
            KEY.as_bytes(),
            message.as_bytes(),
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
        // Fourteen minutes ahead was accepted once (issue 16.3); a minute is the limit.
        for (ahead, accepted) in [(60, true), (61, false), (14 * 60, false)] {
            let ahead = (NOW_MS / 1000 + ahead).to_string();
            let request = form_request(&signed_fields(&ahead, &signature(&ahead)));
            assert_eq!(
                mailgun.verify(&request, NOW_MS).is_ok(),
                accepted,
                "{ahead}"
            );
        }
        assert!(matches!(
            mailgun.verify(
                &form_request(&[("timestamp", "1700000000"), ("token", TOKEN)]),
                NOW_MS
            ),
            Err(VerifyError::Missing("signature"))
        ));
        let not_a_form = request("application/json", "{}");
        assert!(matches!(
            mailgun.verify(&not_a_form, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn customer_mail_is_normalised_into_its_thread() {
        let request = customer_mail(&[("Reply-To", "Jane at home <jane.home@customer.example>")]);
        let verified = channel().verify(&request, NOW_MS).unwrap();
        assert_eq!(verified.nonce.as_deref(), Some(TOKEN));
        let messages = channel().parse(&request, &verified).unwrap();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.channel, "mailgun");
        assert_eq!(message.account_id, "support@shop.example");
        assert_eq!(message.customer_id, "jane@customer.example");
        assert_eq!(message.customer_name.as_deref(), Some("Jane Doe"));
        // Not one of our replies in its ids: the thread is the sender's
        // subject, the one her first mail "Where is my order?" opened.
        assert!(crate::email::is_token(&message.conversation_id));
        let first = form_request(&[
            ("recipient", "support@shop.example"),
            ("sender", "jane@customer.example"),
            ("subject", "Where is my order?"),
            ("body-plain", "Hello?"),
            ("token", TOKEN),
        ]);
        let first = &channel().parse_body(&first).unwrap()[0];
        assert_eq!(message.conversation_id, first.conversation_id);
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
        let message = &channel().parse_body(&request).unwrap()[0];
        assert!(crate::email::is_token(&message.conversation_id));
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
        let message = &channel().parse_body(&no_id).unwrap()[0];
        assert_eq!(message.provider_message_id, TOKEN);
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
                mailgun
                    .parse_body(&customer_mail(&extra))
                    .unwrap()
                    .is_empty(),
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
                mailgun.parse_body(&request).unwrap().is_empty(),
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
        let request = request("multipart/form-data; boundary=bnd", body);
        let verified = channel().verify(&request, NOW_MS);
        assert!(matches!(verified, Err(VerifyError::Missing("signature"))));
        let message = &channel().parse_body(&request).unwrap()[0];
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
        let json = request("application/json", "{\"recipient\":\"x\"}");
        assert!(mailgun.parse_body(&json).is_err());
        let broken_multipart = request(
            "multipart/form-data; boundary=zz",
            "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
        );
        assert!(mailgun.parse_body(&broken_multipart).is_err());
        assert!(
            mailgun
                .parse_body(&form_request(&[
                    ("recipient", "support@shop.example"),
                    ("message-headers", "{oops")
                ]))
                .is_err()
        );
        assert!(
            mailgun
                .parse_body(&form_request(&[("recipient", "support@shop.example")]))
                .is_err()
        );
        assert!(
            mailgun
                .parse_body(&form_request(&[("sender", "a@b.example")]))
                .is_err()
        );
    }

    #[tokio::test]
    async fn replies_are_mailed_in_the_thread() {
        let recorder = Arc::new(Recorder::default());
        let mailgun = channel_with(recorder.clone());
        let inbound = mailgun.parse_body(&customer_mail(&[])).unwrap().remove(0);
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
    fn samples_are_signed_with_a_fresh_token() {
        let mailgun = channel();
        let mut sample = mailgun.sample("ann@customer.example", "Where is my parcel?", NOW_MS);
        mailgun.sign(&mut sample, NOW_MS).unwrap();
        let verified = mailgun.verify(&sample, NOW_MS).unwrap();
        assert_eq!(verified.nonce.as_ref().map(String::len), Some(50));
        let message = &mailgun.parse(&sample, &verified).unwrap()[0];
        assert_eq!(message.text, "Where is my parcel?");
        assert_eq!(message.customer_id, "ann@customer.example");
    }

    #[test]
    fn config_is_checked() {
        let make = |value: serde_json::Value| {
            let config: MailgunConfig = serde_json::from_value(value).unwrap();
            Mailgun::new(config, &deps(Arc::new(Recorder::default())))
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
        assert_eq!(ok.identity.message_id_domain, "b.example");
        assert_eq!(ok.scheme().window().map(|w| w.max_age_secs), Some(900));
    }
}
