//! What every email channel does with a received mail and with its reply:
//! our identity (the address replies come from, our other addresses, the
//! `Message-ID` domain), the thread a mail belongs to, the loop guard applied
//! to the sender, and the reply threaded under the customer's mail.

use sha2::{Digest, Sha256};
use switchboard_domain::{
    Attachment, EmailThread, InboundMessage, MessageKind, OutboundReply, ReplyContext, SendError,
};

use super::{EmailTransport, address_of, auto_reply_block, build_reply, message_ids};
use crate::kit::json::invalid;
use crate::kit::sender::first_chars;
use crate::kit::{ParseError, Unusable, permanent, unusable};

/// Hex characters of a conversation token: 8 for the customer, 12 for the thread.
const TOKEN_LEN: usize = 20;

/// Most characters of a customer's mail kept as their message (the limit
/// of a reply too): a longer text is cut, and says so.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// Ids a reply's `References` keeps at most: the thread's first and the newest.
pub const MAX_REPLY_REFERENCES: usize = 20;

/// Characters of the customer's subject a reply's `Re:` keeps at most.
pub const MAX_REPLY_SUBJECT_CHARS: usize = 500;

/// What ends a text cut at [`MAX_TEXT_CHARS`].
pub const CUT_MARKER: &str = "\n[…] (the mail was longer: cut at 20,000 characters)";

/// Reply and forward prefixes left out of a subject when matching threads.
const THREAD_PREFIXES: &[&str] = &["fwd", "fw", "转发", "轉寄"];

/// A received mail as a channel read it, before normalisation.
#[derive(Debug, Clone, Default)]
pub struct ReceivedMail {
    pub headers: Vec<(String, String)>,
    /// The `From` mailbox.
    pub from: Option<String>,
    /// The envelope sender (`MAIL FROM`), where the provider gives it.
    pub envelope_sender: Option<String>,
    /// The address it was delivered to (ours, maybe tagged).
    pub recipient: Option<String>,
    pub subject: String,
    /// The new text only (quotes and signature removed).
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The provider's id of the delivery, used when the mail has no `Message-ID`.
    pub delivery_id: Option<String>,
    pub sent_at_ms: i64,
}

/// Our side of an email channel.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `Name <address>` or a bare address; replies come from it.
    pub from_address: String,
    /// Every address of ours (the from address included), never answered.
    pub our_addresses: Vec<String>,
    pub message_id_domain: String,
}

impl Identity {
    /// Checks the settings: real addresses, and a `Message-ID` domain
    /// (default: the from address's).
    pub fn new(
        from_address: &str,
        our_addresses: &[String],
        message_id_domain: Option<&str>,
    ) -> Result<Self, Unusable> {
        let from_address = from_address.trim().to_owned();
        let mailbox = from_address.parse::<lettre::message::Mailbox>();
        if address_of(&from_address).is_none() || mailbox.is_err() {
            return Err(unusable("from_address is not an email address"));
        }
        if our_addresses
            .iter()
            .any(|address| address_of(address).is_none())
        {
            return Err(unusable(
                "our_addresses holds something that is not an email address",
            ));
        }
        let domain = match message_id_domain {
            Some(domain) => domain.trim().to_owned(),
            None => super::domain_of(&from_address).unwrap_or_default(),
        };
        if domain.is_empty() {
            return Err(unusable("message_id_domain is empty"));
        }
        let mut ours = our_addresses.to_vec();
        ours.push(from_address.clone());
        Ok(Self {
            from_address,
            our_addresses: ours,
            message_id_domain: domain,
        })
    }

    /// Why this mail must get no automatic answer: the headers with the From
    /// mailbox, and the envelope sender on its own (bounces come from `<>`).
    pub fn automated(
        &self,
        headers: &[(String, String)],
        subject: &str,
        from: &str,
        envelope_sender: Option<&str>,
    ) -> Option<&'static str> {
        // Some providers give the subject beside the headers, not among them.
        let mut with_subject;
        let headers = match header(headers, "Subject") {
            None if !subject.is_empty() => {
                with_subject = headers.to_vec();
                with_subject.push(("Subject".into(), subject.into()));
                with_subject.as_slice()
            }
            _ => headers,
        };
        auto_reply_block(headers, from, &self.our_addresses).or_else(|| {
            match envelope_sender.map(str::trim) {
                Some("" | "<>") => Some("null-return-path"),
                Some(sender) => auto_reply_block(&[], sender, &self.our_addresses),
                None => None,
            }
        })
    }

    /// The customer message in a received mail, or nothing when the mail
    /// must not be answered automatically (the reason is logged).
    pub fn inbound(
        &self,
        channel: &str,
        mail: ReceivedMail,
    ) -> Result<Vec<InboundMessage>, ParseError> {
        let header = |name: &str| header(&mail.headers, name);
        let from = mail
            .from
            .clone()
            .or_else(|| header("From").map(str::to_owned));
        let customer_id = from
            .as_deref()
            .and_then(address_of)
            .or_else(|| mail.envelope_sender.as_deref().and_then(address_of))
            .ok_or_else(|| invalid("mail without a sender address"))?;
        let recipient = mail
            .recipient
            .as_deref()
            .or_else(|| header("To"))
            .and_then(address_of)
            .ok_or_else(|| invalid("mail without a recipient address"))?;
        let sender = from.as_deref().unwrap_or(&customer_id);
        if let Some(reason) = self.automated(
            &mail.headers,
            &mail.subject,
            sender,
            mail.envelope_sender.as_deref(),
        ) {
            tracing::info!(channel, reason, "not answering automated mail");
            return Ok(Vec::new());
        }
        let threading = Threading::of(header);
        let provider_message_id = match (&threading.message_id, &mail.delivery_id) {
            (Some(id), _) => bare_id(id).to_owned(),
            (None, Some(id)) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => return Err(invalid("mail without a Message-ID or delivery id")),
        };
        let conversation_id = self.conversation(
            &threading,
            header("In-Reply-To"),
            &customer_id,
            &recipient,
            &mail.subject,
        );
        // Some customers write the whole question in the subject line.
        let text = match mail.text.trim() {
            "" => mail.subject.trim(),
            text => text,
        };
        let text = cut(text, MAX_TEXT_CHARS);
        let reply_to = header("Reply-To")
            .and_then(address_of)
            .unwrap_or_else(|| customer_id.clone());
        let account_id = untag(&recipient);
        Ok(vec![InboundMessage {
            channel: channel.into(),
            account_id: account_id.clone(),
            customer_name: from.as_deref().and_then(super::display_name),
            customer_id,
            conversation_id,
            provider_message_id,
            sent_at_ms: mail.sent_at_ms,
            kind: if text.is_empty() {
                MessageKind::Media
            } else {
                MessageKind::Text
            },
            text,
            attachments: mail.attachments,
            reply: ReplyContext {
                email: Some(threading.reply_thread(&mail.subject, reply_to, account_id)),
                ..ReplyContext::default()
            },
        }])
    }

    /// The conversation a mail belongs to, as a token we also put in our
    /// replies' `Message-ID` and `Reply-To`: from `In-Reply-To` when it is
    /// one of our replies, then the newest of ours in `References`, then the
    /// token in the tagged address the customer wrote to, then the sender and
    /// the subject without `Re:`/`Fwd:` (an Outlook reply without ids, a
    /// customer's own follow-up). A token of another sender is ignored.
    pub fn conversation(
        &self,
        threading: &Threading,
        in_reply_to: Option<&str>,
        customer: &str,
        recipient: &str,
        subject: &str,
    ) -> String {
        let customer_part = &hash_hex(customer)[..8];
        let ours = |id: &str| {
            self.token_in_id(id)
                .filter(|t| t.starts_with(customer_part))
        };
        let replied = in_reply_to
            .map(message_ids)
            .unwrap_or_default()
            .into_iter()
            .find_map(|id| ours(&id));
        let referenced = || threading.references.iter().rev().find_map(|id| ours(id));
        let tagged = || {
            let (local, _) = recipient.rsplit_once('@')?;
            let (_, tag) = local.split_once('+')?;
            is_token(tag)
                .then(|| tag.to_owned())
                .filter(|t| t.starts_with(customer_part))
        };
        replied
            .or_else(referenced)
            .or_else(tagged)
            .unwrap_or_else(|| {
                let thread = format!("{customer}\n{}", thread_subject(subject));
                format!("{customer_part}{}", &hash_hex(&thread)[..TOKEN_LEN - 8])
            })
    }

    /// The token in one of our replies' ids: `<sb.{token}.{unique}@{our domain}>`.
    fn token_in_id(&self, id: &str) -> Option<String> {
        let (local, domain) = bare_id(id).rsplit_once('@')?;
        let token = local.strip_prefix("sb.")?.split('.').next()?;
        (domain.eq_ignore_ascii_case(&self.message_id_domain) && is_token(token))
            .then(|| token.to_owned())
    }

    /// Mails the reply, threaded under the customer's mail.
    pub async fn send_reply(
        &self,
        channel: &str,
        transport: &dyn EmailTransport,
        reply: &OutboundReply,
    ) -> Result<(), SendError> {
        let thread = reply.reply.email.as_ref();
        let thread =
            thread.ok_or_else(|| permanent(channel, "reply without email threading data"))?;
        let token = Some(reply.conversation_id.as_str()).filter(|t| is_token(t));
        let message = build_reply(
            thread,
            &self.from_address,
            &reply.text,
            &self.message_id_domain,
            token,
            reply.is_automated(),
        )
        .map_err(|error| permanent(channel, switchboard_domain::error_chain(&error)))?;
        let outcome = transport.send(message).await;
        match &outcome {
            Ok(()) => tracing::info!(channel, reply_id = %reply.reply_id, "reply mailed"),
            Err(error) => {
                tracing::warn!(channel, reply_id = %reply.reply_id, transient = error.is_transient(), "reply not mailed")
            }
        }
        outcome
    }
}

/// Where a received mail sits in its thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Threading {
    /// Its own `Message-ID`, with angle brackets.
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// The thread's first mail, without brackets: the first reference of
    /// every later mail, so a customer's follow-ups share one conversation.
    pub root: Option<String>,
}

impl Threading {
    /// From the mail's headers (`header` looks one up by name).
    pub fn of<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let message_id = header("Message-Id").and_then(super::normalize_message_id);
        let mut references: Vec<String> = header("References").map(message_ids).unwrap_or_default();
        let in_reply_to = header("In-Reply-To").map(message_ids).unwrap_or_default();
        // RFC 5322 3.6.4: a parent without References but replying to one
        // mail has that mail as its thread, which our reply's References extend.
        if references.is_empty() && in_reply_to.len() == 1 {
            references = in_reply_to.clone();
        }
        let root = references
            .first()
            .or(in_reply_to.first())
            .or(message_id.as_ref());
        let root = root.map(|id| bare_id(id).to_owned());
        Self {
            message_id,
            references,
            root,
        }
    }

    /// What a reply needs to thread in the customer's client. A thread's
    /// `References` can grow without end (or be made to): the reply keeps
    /// the first and the newest, as RFC 5322 3.6.4 allows and clients thread
    /// by, and a subject of reasonable length, so that every reply stays small
    /// enough to queue inline.
    pub fn reply_thread(&self, subject: &str, reply_to: String, to: String) -> EmailThread {
        let references = match self.references.split_first() {
            Some((first, rest)) if self.references.len() > MAX_REPLY_REFERENCES => {
                let newest = &rest[rest.len() - (MAX_REPLY_REFERENCES - 1)..];
                std::iter::once(first).chain(newest).cloned().collect()
            }
            _ => self.references.clone(),
        };
        EmailThread {
            message_id: self.message_id.clone().unwrap_or_default(),
            references,
            subject: first_chars(subject, MAX_REPLY_SUBJECT_CHARS).to_owned(),
            reply_to,
            to,
        }
    }
}

/// `text` whole when it has at most `limit` characters, else its first
/// `limit` characters (cut on a character boundary) and [`CUT_MARKER`].
fn cut(text: &str, limit: usize) -> String {
    match first_chars(text, limit) {
        kept if kept.len() < text.len() => format!("{}{CUT_MARKER}", kept.trim_end()),
        _ => text.to_owned(),
    }
}

fn hash_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Whether `value` is a conversation token (20 lower-case hex characters).
pub fn is_token(value: &str) -> bool {
    value.len() == TOKEN_LEN
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An address without its `+tag`: `support+x@shop.example` → `support@shop.example`.
pub fn untag(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split('+').next().unwrap_or(local);
            format!("{local}@{domain}")
        }
        None => address.to_owned(),
    }
}

/// A subject as threads compare it: reply and forward prefixes removed,
/// case and spaces folded.
pub fn thread_subject(subject: &str) -> String {
    let mut rest = super::reply_subject(subject);
    rest = rest.strip_prefix("Re: ").unwrap_or(&rest).to_owned();
    loop {
        let lower = rest.to_lowercase();
        let stripped = THREAD_PREFIXES.iter().find_map(|prefix| {
            let tail = lower.strip_prefix(prefix)?.trim_start();
            tail.strip_prefix(':')
                .or_else(|| tail.strip_prefix('：'))
                .map(str::to_owned)
        });
        match stripped {
            Some(tail) => {
                rest = super::reply_subject(&tail)
                    .trim_start_matches("Re: ")
                    .to_owned()
            }
            None => break,
        }
    }
    let folded = rest.to_lowercase();
    let words: Vec<&str> = folded.split_whitespace().collect();
    match words.join(" ").as_str() {
        "(no subject)" => String::new(),
        other => other.to_owned(),
    }
}

/// A message id without its angle brackets.
pub fn bare_id(id: &str) -> &str {
    id.trim_start_matches('<').trim_end_matches('>')
}

/// The first header of that name (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity::new("Shop <support@shop.example>", &[], None).unwrap()
    }

    fn conversation(headers: &[(&str, &str)], recipient: &str, subject: &str) -> String {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let threading = Threading::of(|name| header(&headers, name));
        identity().conversation(
            &threading,
            header(&headers, "In-Reply-To"),
            "jane@customer.example",
            recipient,
            subject,
        )
    }

    #[test]
    fn a_replys_references_keep_the_first_and_the_newest_ids_and_its_subject_is_bounded() {
        let ids: Vec<String> = (0..4_500)
            .map(|n| format!("<m{n}@customer.example>"))
            .collect();
        let references = ids.join(" ");
        let headers = [
            ("References", references.as_str()),
            ("Message-Id", "<new@customer.example>"),
        ];
        let threading = Threading::of(|name| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        });
        let subject = "Parts ".repeat(500);
        let thread = threading.reply_thread(&subject, "a@b.example".into(), "c@d.example".into());
        assert_eq!(thread.references.len(), MAX_REPLY_REFERENCES);
        assert_eq!(thread.references[0], ids[0]);
        assert_eq!(
            thread.references[1..],
            ids[ids.len() - (MAX_REPLY_REFERENCES - 1)..]
        );
        assert_eq!(thread.subject.chars().count(), MAX_REPLY_SUBJECT_CHARS);
        // A short thread is kept whole.
        let short = Threading {
            references: ids[..3].to_vec(),
            ..threading
        };
        assert_eq!(
            short
                .reply_thread("Hi", String::new(), String::new())
                .references,
            ids[..3]
        );
    }

    #[test]
    fn an_outlook_reply_without_ids_joins_the_first_mail() {
        let first = conversation(
            &[("Message-ID", "<m1@customer.example>")],
            "support@shop.example",
            "Order 42 late",
        );
        assert!(is_token(&first));
        for subject in [
            "RE: Order 42 late",
            "Re: re:  order 42 LATE",
            "回复：Order 42 late",
            "FW: Order 42 late",
        ] {
            let reply = conversation(
                &[("Message-ID", "<m2@customer.example>")],
                "support@shop.example",
                subject,
            );
            assert_eq!(reply, first, "{subject}");
        }
        let other = conversation(&[], "support@shop.example", "Another question");
        assert_ne!(other, first);
    }

    #[test]
    fn our_ids_and_tagged_addresses_carry_the_conversation() {
        let token = conversation(&[], "support@shop.example", "Order 42 late");
        let our_id = format!("<sb.{token}.0f0e0d0c0b0a09080706050403020100@shop.example>");
        // In-Reply-To one of ours wins over a changed subject.
        assert_eq!(
            conversation(
                &[("In-Reply-To", &our_id)],
                "support@shop.example",
                "new words"
            ),
            token
        );
        // The newest of ours in References.
        let references = format!("<m1@customer.example> {our_id} <m3@customer.example>");
        assert_eq!(
            conversation(&[("References", &references)], "support@shop.example", "x"),
            token
        );
        // The tagged Reply-To the customer answered to.
        assert_eq!(
            conversation(&[], &format!("support+{token}@shop.example"), "x"),
            token
        );
        // Our ids at another domain, or a token of another sender, are not ours.
        let foreign = our_id.replace("shop.example", "evil.example");
        assert_ne!(
            conversation(&[("In-Reply-To", &foreign)], "support@shop.example", "x"),
            token
        );
        let bob = identity().conversation(
            &Threading::default(),
            None,
            "bob@customer.example",
            "support@shop.example",
            "Order 42 late",
        );
        assert_ne!(
            conversation(&[], &format!("support+{bob}@shop.example"), "x"),
            bob
        );
    }

    fn mail_with(text: &str) -> ReceivedMail {
        ReceivedMail {
            headers: vec![("Message-ID".into(), "<big@customer.example>".into())],
            from: Some("jane@customer.example".into()),
            recipient: Some("support@shop.example".into()),
            subject: "Huge".into(),
            text: text.into(),
            ..ReceivedMail::default()
        }
    }

    #[test]
    fn a_huge_mail_is_cut_on_a_character_boundary_and_says_so() {
        // 900 KB of three-byte characters and ASCII.
        let huge = "订单 where is it? ".repeat(60_000);
        assert!(huge.len() > 900_000);
        let message = identity()
            .inbound("test", mail_with(&huge))
            .unwrap()
            .remove(0);
        let kept = message
            .text
            .strip_suffix(CUT_MARKER)
            .expect("marked as cut");
        assert!(kept.chars().count() <= MAX_TEXT_CHARS);
        assert!(
            kept.chars().count() > MAX_TEXT_CHARS - 10,
            "only trailing space dropped"
        );
        assert!(huge.starts_with(kept));
        // A text of exactly the limit is kept whole, unmarked.
        let exact: String = "é".repeat(MAX_TEXT_CHARS);
        let message = identity()
            .inbound("test", mail_with(&exact))
            .unwrap()
            .remove(0);
        assert_eq!(message.text, exact);
        assert_eq!(cut("abcdef", 3), format!("abc{CUT_MARKER}"));
    }

    #[test]
    fn a_reply_without_references_threads_under_its_in_reply_to() {
        let headers: Vec<(String, String)> = [
            ("Message-ID", "<m2@customer.example>"),
            ("In-Reply-To", "<m1@customer.example>"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let threading = Threading::of(|name| header(&headers, name));
        assert_eq!(threading.references, vec!["<m1@customer.example>"]);
        let thread = threading.reply_thread("Re: x", "jane@customer.example".into(), "s".into());
        let reply = super::super::build_reply(
            &thread,
            "support@shop.example",
            "ok",
            "shop.example",
            None,
            true,
        )
        .unwrap();
        assert_eq!(
            reply.headers().get_raw("References"),
            Some("<m1@customer.example> <m2@customer.example>")
        );
    }

    #[test]
    fn subjects_fold_for_threads() {
        assert_eq!(thread_subject("Re: Fwd: RE:  Where  IS it"), "where is it");
        assert_eq!(thread_subject("转发: 回复: 订单"), "订单");
        assert_eq!(thread_subject(""), "");
        assert_eq!(untag("support+abc@shop.example"), "support@shop.example");
    }
}
