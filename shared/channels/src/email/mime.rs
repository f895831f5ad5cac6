//! One MIME parser for every email channel (mail-parser): header fields,
//! RFC 2047 encoded words, charsets (GB2312, GBK, GB18030, Big5 and the
//! rest of the WHATWG set), multipart/alternative, attachments and inline
//! images. HTML becomes text when a mail has no text part. A mail
//! forwarded as an attachment (`message/rfc822`) is read too: its text is
//! the customer's question as much as the note above it.

use switchboard_domain::Attachment;

use super::new_text;
use crate::kit::json::invalid;
use crate::kit::{ParseError, kind_for_mime};

/// How deep forwarded mails inside forwarded mails are read.
const MAX_FORWARD_DEPTH: usize = 3;

/// The line that opens a forwarded mail's text (as Gmail writes it).
const FORWARD_LINE: &str = "---------- Forwarded message ---------";

/// A received mail, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mail {
    /// Every header field, names as sent, values unfolded and undecoded
    /// (the loop guard and threading read them).
    pub headers: Vec<(String, String)>,
    /// The `From` mailbox as `Name <address>`, the name decoded.
    pub from: Option<String>,
    /// The first `To` address.
    pub to: Option<String>,
    pub subject: String,
    /// The whole body as text, quoted history included.
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// The mails attached as `message/rfc822` (forwarded as attachments).
    pub forwarded: Vec<Mail>,
}

impl Mail {
    /// What the customer wrote: the new text of the body (quotes and
    /// signature removed), then each mail forwarded as an attachment under a
    /// forward line with its sender and subject; a mail forwarded with
    /// nothing written above it is its own text.
    pub fn customer_text(&self) -> String {
        let mut text = new_text(&self.body);
        let forwarded = self
            .forwarded
            .iter()
            .map(|mail| (mail, mail.customer_text()))
            .filter(|(_, inner)| !inner.is_empty());
        let alone = text.is_empty() && self.forwarded.len() == 1;
        for (mail, inner) in forwarded {
            if alone {
                return inner;
            }
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(FORWARD_LINE);
            let from = mail.from.as_deref().unwrap_or_default();
            for (name, value) in [("From", from), ("Subject", mail.subject.as_str())] {
                if !value.is_empty() {
                    text.push_str(&format!("\n{name}: {value}"));
                }
            }
            text.push_str("\n\n");
            text.push_str(&inner);
        }
        text
    }
}

/// Parses a raw RFC 5322 message.
pub fn parse_mime(raw: &[u8]) -> Result<Mail, ParseError> {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or_else(|| invalid("the mail is not a MIME message"))?;
    Ok(read(&message, 0))
}

/// A parsed message as a [`Mail`], with the mails attached to it down to
/// [`MAX_FORWARD_DEPTH`].
fn read(message: &mail_parser::Message, depth: usize) -> Mail {
    use mail_parser::MimeHeaders;
    let source = message.raw_message();
    let headers = message
        .headers()
        .iter()
        .map(|header| {
            let start = header.offset_start as usize;
            let end = (header.offset_end as usize).min(source.len());
            let value = source.get(start..end).unwrap_or_default();
            let value = String::from_utf8_lossy(value);
            (header.name.as_str().to_owned(), unfold(&value))
        })
        .collect();
    let mailbox = |address: Option<&mail_parser::Address>| {
        let first = address?.first()?;
        let email = first.address()?.trim().to_owned();
        Some(
            match first.name().map(str::trim).filter(|n| !n.is_empty()) {
                Some(name) => format!("{} <{email}>", name.replace(['<', '>'], "")),
                None => email,
            },
        )
    };
    let body = message.body_text(0).unwrap_or_default();
    let forwarded = match depth < MAX_FORWARD_DEPTH {
        true => message
            .attachments()
            .filter_map(|part| part.message())
            .map(|inner| read(inner, depth + 1))
            .collect(),
        false => Vec::new(),
    };
    let attachments = message
        .attachments()
        .map(|part| {
            let mime = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{sub}", ct.ctype()),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase();
            Attachment {
                kind: kind_for_mime(&mime),
                provider_id: part.content_id().map(str::to_owned),
                url: None,
                mime_type: Some(mime),
                name: part.attachment_name().map(str::to_owned),
            }
        })
        .collect();
    Mail {
        headers,
        from: mailbox(message.from()),
        to: mailbox(message.to()).and_then(|to| super::address_of(&to)),
        subject: message.subject().unwrap_or_default().trim().to_owned(),
        body: body.replace("\r\n", "\n"),
        attachments,
        forwarded,
    }
}

/// The text of an HTML body (a provider's `html` field), through the one parser.
pub fn html_to_text(html: &str) -> String {
    let raw = format!("Content-Type: text/html; charset=utf-8\r\n\r\n{html}");
    parse_mime(raw.as_bytes())
        .map(|mail| mail.body)
        .unwrap_or_default()
}

/// A customer's plain-text mail, as `simulate` and development mode send it.
pub fn sample_mail(customer: &str, to: &str, text: &str, now_ms: i64) -> String {
    format!(
        "From: {customer}\r\nTo: {to}\r\nSubject: Question\r\n\
         Message-ID: <sample-{now_ms}@customer.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\r\n{text}\r\n"
    )
}

/// A header value on one line, trimmed.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::AttachmentKind;

    #[test]
    fn encoded_words_charsets_and_attachments_are_decoded() {
        let raw = b"From: =?GB2312?B?1cXI/Q==?= <zhangsan@qq.example>\r\n\
To: Support <support@shop.example>\r\n\
Subject: =?GBK?B?tqm1pc7KzOI=?=\r\n\
Message-ID: <a1@qq.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=GB2312\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
xOO6w6OsztK1xLaptaXU2sTEwO+jvw==\r\n\
--b1\r\n\
Content-Type: image/png; name=\"shot.png\"\r\n\
Content-Disposition: attachment; filename=\"shot.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--b1--\r\n";
        let mail = parse_mime(raw).unwrap();
        assert_eq!(mail.from.as_deref(), Some("张三 <zhangsan@qq.example>"));
        assert_eq!(mail.to.as_deref(), Some("support@shop.example"));
        assert_eq!(mail.subject, "订单问题");
        assert_eq!(mail.body.trim(), "你好，我的订单在哪里？");
        assert_eq!(mail.attachments.len(), 1);
        assert_eq!(mail.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(mail.attachments[0].name.as_deref(), Some("shot.png"));
        assert!(
            mail.headers
                .iter()
                .any(|(k, v)| k == "Message-ID" && v == "<a1@qq.example>")
        );
    }

    #[test]
    fn html_only_mail_becomes_text() {
        let raw = b"From: a@b.example\r\nSubject: Hi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Where is <b>my</b> order?</p>";
        let mail = parse_mime(raw).unwrap();
        assert!(mail.body.contains("Where is my order?"), "{}", mail.body);
    }

    /// A mail that forwards `inner` as a `message/rfc822` attachment, with
    /// `note` as its own text part (none when empty).
    fn forwarding(note: &str, inner: &str) -> Vec<u8> {
        let note = match note {
            "" => String::new(),
            note => format!("--f\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{note}\r\n"),
        };
        format!(
            "From: Bob <bob@customer.example>\r\nTo: support@shop.example\r\n\
             Subject: Fwd: Your order\r\nMessage-ID: <fwd@customer.example>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"f\"\r\n\r\n\
             {note}--f\r\nContent-Type: message/rfc822\r\n\
             Content-Disposition: attachment; filename=\"order.eml\"\r\n\r\n{inner}\r\n--f--\r\n"
        )
        .into_bytes()
    }

    const INNER: &str = "From: Shop <orders@shop.example>\r\nTo: bob@customer.example\r\n\
        Subject: Your order 55\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        Order 55: one red kettle, 39 EUR.\r\n\r\n-- \r\nShop";

    #[test]
    fn a_mail_forwarded_as_an_attachment_keeps_its_text() {
        let mail = parse_mime(&forwarding("Wrong colour, I ordered blue.", INNER)).unwrap();
        assert_eq!(
            mail.customer_text(),
            "Wrong colour, I ordered blue.\n\n\
             ---------- Forwarded message ---------\n\
             From: Shop <orders@shop.example>\nSubject: Your order 55\n\n\
             Order 55: one red kettle, 39 EUR."
        );
        // Forwarded with nothing written above it: the forwarded text.
        let mail = parse_mime(&forwarding("", INNER)).unwrap();
        assert_eq!(mail.customer_text(), "Order 55: one red kettle, 39 EUR.");
        // Still described as an attachment.
        assert_eq!(mail.attachments.len(), 1);
        // A whole mail that is a forwarded one.
        let whole = format!(
            "From: bob@customer.example\r\nTo: support@shop.example\r\n\
             Subject: Fwd\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n{INNER}"
        );
        let mail = parse_mime(whole.as_bytes()).unwrap();
        assert_eq!(mail.customer_text(), "Order 55: one red kettle, 39 EUR.");
    }
}
