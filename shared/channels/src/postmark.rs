//! Postmark inbound: the server's inbound webhook POSTs each received mail as
//! JSON (`MessageID`, `FromFull`, `ToFull`, `Headers`, `TextBody`,
//! `StrippedTextReply`, `Attachments`). Postmark does not sign it: the URL
//! registered carries HTTP basic auth (`https://user:password@host/webhooks/postmark`),
//! compared in constant time. Postmark retries anything but a 200 (a 403
//! stops its retries); the dedupe key is its `MessageID`. Replies go out by
//! email through the configured [`EmailTransport`], threaded under the mail.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{Attachment, OutboundReply, Secret, SendError};

use crate::email::{EmailTransport, Identity, ReceivedMail, ReplyLimits, is_token, new_text};
use crate::kit::descriptor::build;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Inbound, Outbound, Parsed, SettingsOf, Signature, Unusable,
    Verified, WebhookRequest, build_request, kind_for_mime,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "postmark",
    title: "Email via Postmark",
    function: Function::IngressEmail,
    settings: crate::settings! {
        inbound_username: verify => "the user name in the inbound webhook URL you give Postmark (`https://user:password@…/webhooks/postmark`)",
        inbound_password: verify => "the password in that URL",
        from_address: send("support@example.invalid") => "your support address; automated replies come from it",
        our_addresses: optional => "further addresses of ours, never answered automatically",
        message_id_domain: optional => "domain of our replies' `Message-ID`s; default: that of `from_address`",
        max_auto_replies_per_day: optional => "automated replies per sender per day, default 10",
    },
    build: build::<Postmark>,
    dev: |ctx| {
        json!({
            "inbound_username": "postmark",
            "inbound_password": ctx.secret("inbound_password"),
            "from_address": ctx.from_address,
        })
    },
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostmarkConfig {
    pub inbound_username: String,
    pub inbound_password: Secret,
    pub from_address: String,
    #[serde(default)]
    pub our_addresses: Vec<String>,
    pub message_id_domain: Option<String>,
    pub max_auto_replies_per_day: Option<u64>,
}

pub struct Postmark {
    signature: Signature,
    identity: Identity,
    email: Arc<dyn EmailTransport>,
    limits: ReplyLimits,
}

impl SettingsOf for Postmark {
    const NAME: &'static str = "postmark";
    type Settings = PostmarkConfig;

    fn new(config: PostmarkConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        let domain = config.message_id_domain.as_deref();
        Ok(Self {
            signature: Signature::basic(&config.inbound_username, &config.inbound_password)?,
            identity: Identity::new(&config.from_address, &config.our_addresses, domain)?,
            email: deps.email.clone(),
            limits: ReplyLimits::new(Self::NAME, deps, config.max_auto_replies_per_day)?,
        })
    }
}

/// The parts of Postmark's inbound JSON we read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InboundMail {
    #[serde(rename = "MessageID")]
    message_id: String,
    from_full: Option<Contact>,
    from: Option<String>,
    #[serde(default)]
    to_full: Vec<Contact>,
    to: Option<String>,
    #[serde(default)]
    reply_to: String,
    #[serde(default)]
    mailbox_hash: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text_body: String,
    #[serde(default)]
    stripped_text_reply: String,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    attachments: Vec<File>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contact {
    email: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    name: Option<String>,
    content_type: Option<String>,
    #[serde(rename = "ContentID")]
    content_id: Option<String>,
}

impl Inbound for Postmark {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _request: &WebhookRequest, verified: &Verified) -> Parsed {
        let mail: InboundMail = serde_json::from_slice(&verified.body)?;
        let from = match &mail.from_full {
            Some(Contact { email, name }) if !name.trim().is_empty() => {
                Some(format!("{} <{email}>", name.replace(['<', '>'], "")))
            }
            Some(contact) => Some(contact.email.clone()),
            None => mail.from.clone(),
        };
        let mut recipient = mail.to_full.first().map(|to| to.email.clone()).or(mail.to);
        // Postmark's MailboxHash is the `+tag` of the address written to.
        if let Some(to) = &recipient
            && is_token(&mail.mailbox_hash)
            && !to.contains('+')
            && let Some((local, domain)) = to.rsplit_once('@')
        {
            recipient = Some(format!("{local}+{}@{domain}", mail.mailbox_hash));
        }
        let text = match mail.stripped_text_reply.trim() {
            "" => new_text(&mail.text_body),
            stripped => new_text(stripped),
        };
        let attachments = mail.attachments.iter().map(|file| Attachment {
            kind: kind_for_mime(file.content_type.as_deref().unwrap_or_default()),
            provider_id: file.content_id.clone().filter(|id| !id.is_empty()),
            url: None,
            mime_type: file.content_type.clone(),
            name: file.name.clone(),
        });
        let mut headers: Vec<(String, String)> = mail
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect();
        if !mail.reply_to.trim().is_empty() && crate::email::header(&headers, "Reply-To").is_none()
        {
            headers.push(("Reply-To".into(), mail.reply_to.clone()));
        }
        let received = ReceivedMail {
            headers,
            from,
            envelope_sender: None,
            recipient,
            subject: mail.subject.trim().to_owned(),
            text,
            attachments: attachments.collect(),
            delivery_id: Some(mail.message_id.clone()),
            sent_at_ms: 0,
        };
        let mut messages = self.identity.inbound(Self::NAME, received)?;
        // Postmark's documented unique id: the same in every retry.
        for message in &mut messages {
            message.provider_message_id = mail.message_id.clone();
        }
        Ok(messages)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let body = json!({
            "FromName": "",
            "From": customer,
            "FromFull": { "Email": customer, "Name": "", "MailboxHash": "" },
            "To": self.identity.from_address,
            "ToFull": [{ "Email": crate::email::address_of(&self.identity.from_address), "Name": "", "MailboxHash": "" }],
            "Subject": "Question",
            "MessageID": uuid::Uuid::new_v4().to_string(),
            "Date": httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms.max(0) as u64)),
            "MailboxHash": "",
            "TextBody": text,
            "StrippedTextReply": "",
            "Headers": [{ "Name": "Message-ID", "Value": format!("<sample-{now_ms}@customer.example>") }],
            "Attachments": [],
        });
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        build_request("POST", "/webhooks", &headers, body.to_string()).expect("a valid request")
    }
}

#[async_trait]
impl Outbound for Postmark {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        self.limits.check(reply).await?;
        self.identity
            .send_reply(Self::NAME, self.email.as_ref(), reply)
            .await
    }
}

#[cfg(test)]
mod tests {

    use switchboard_domain::InboundMessage;

    use super::*;
    use crate::kit::ParseError;

    use crate::email::RecordingTransport as Recorder;

    fn channel_with(recorder: Arc<Recorder>) -> Postmark {
        let config: PostmarkConfig = serde_json::from_value(json!({
            "inbound_username": "postmark",
            "inbound_password": "secret",
            "from_address": "Shop Support <support@shop.example>",
        }))
        .unwrap();
        let deps = ChannelDeps {
            email: recorder,
            ..ChannelDeps::offline()
        };
        Postmark::new(config, &deps).unwrap()
    }

    impl Postmark {
        fn parse_json(&self, body: serde_json::Value) -> Result<Vec<InboundMessage>, ParseError> {
            let headers = [("content-type".to_owned(), "application/json".to_owned())];
            let request =
                build_request("POST", "/webhooks/postmark", &headers, body.to_string()).unwrap();
            self.parse(&request, &Verified::assume(&request))
        }
    }

    /// The customer's answer to our first reply, as Postmark posts it: its
    /// own `Message-ID` and the thread's ids are among `Headers`.
    fn customer_answer() -> serde_json::Value {
        json!({
            "From": "jane@customer.example",
            "FromFull": { "Email": "jane@customer.example", "Name": "Jane Doe", "MailboxHash": "" },
            "To": "support@shop.example",
            "ToFull": [{ "Email": "support@shop.example", "Name": "", "MailboxHash": "" }],
            "Subject": "Re: Where is my order?",
            "MessageID": "7b0c3f3e-5d8f-4f4e-9a57-2f1d7f0e6c11",
            "MailboxHash": "",
            "TextBody": "Still nothing.\n\nOn Monday Shop Support wrote:\n> It left today.",
            "StrippedTextReply": "Still nothing.",
            "Headers": [
                { "Name": "Message-ID", "Value": "<CAF=m2@mail.customer.example>" },
                { "Name": "In-Reply-To", "Value": "<reply1@shop.example>" },
                { "Name": "References", "Value": "<m1@mail.customer.example> <reply1@shop.example>" },
            ],
            "Attachments": [],
        })
    }

    #[tokio::test]
    async fn replies_thread_under_the_customers_message_id() {
        let recorder = Arc::new(Recorder::default());
        let postmark = channel_with(recorder.clone());
        let inbound = postmark.parse_json(customer_answer()).unwrap().remove(0);
        assert_eq!(inbound.text, "Still nothing.");
        // Postmark's own id stays the dedupe key.
        assert_eq!(
            inbound.provider_message_id,
            "7b0c3f3e-5d8f-4f4e-9a57-2f1d7f0e6c11"
        );
        let reply = OutboundReply::to_message(&inbound, "It is on its way.", "r-2");
        postmark.send(&reply).await.unwrap();
        let sent = recorder.0.lock().unwrap().remove(0);
        let headers = sent.headers();
        assert_eq!(
            headers.get_raw("In-Reply-To"),
            Some("<CAF=m2@mail.customer.example>")
        );
        assert_eq!(
            headers.get_raw("References").map(|v| v.replace("\r\n", "")),
            Some(
                "<m1@mail.customer.example> <reply1@shop.example> <CAF=m2@mail.customer.example>"
                    .to_owned()
            )
        );
    }
}
