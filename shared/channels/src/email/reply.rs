//! Building an automated reply that threads under the customer's mail.

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use switchboard_domain::EmailThread;

/// Most ids kept in `References`: the thread root and the most recent ones.
const MAX_REFERENCES: usize = 20;

/// Reply prefixes that mail clients put in front of a subject, compared
/// case-insensitively: English, German, Scandinavian, Dutch, Chinese.
const REPLY_PREFIXES: &[&str] = &["re", "aw", "sv", "antw", "回复", "回覆", "答复"];

#[derive(Debug, thiserror::Error)]
pub enum BuildReplyError {
    /// Which value was unusable; the value itself is not repeated (it may be a
    /// customer's address).
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("message could not be built")]
    Build(#[from] lettre::error::Error),
}

/// The reply to `thread`, from our address `from`, with `text` as its plain
/// text body: `Re:` subject, `In-Reply-To` and `References` for threading,
/// when `automated` (the bot's) marked as an automatic reply (RFC 3834) so
/// that other robots leave it alone, while a person's reply is an ordinary
/// mail, and a fresh `Message-ID` at `message_id_domain`. With a conversation
/// `token`, the `Message-ID` carries it (`<sb.{token}.{unique}@domain>`) and
/// `Reply-To` is our address tagged with it, so that a client that drops
/// `In-Reply-To` still leads the answer back to the conversation.
pub fn build_reply(
    thread: &EmailThread,
    from: &str,
    text: &str,
    message_id_domain: &str,
    token: Option<&str>,
    automated: bool,
) -> Result<Message, BuildReplyError> {
    let to: Mailbox = thread
        .reply_to
        .trim()
        .parse()
        .map_err(|_| BuildReplyError::Invalid("reply-to address"))?;
    let from: Mailbox = from
        .trim()
        .parse()
        .map_err(|_| BuildReplyError::Invalid("from address"))?;
    let domain = message_id_domain.trim();
    if domain.is_empty()
        || domain
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>@\"".contains(c))
    {
        return Err(BuildReplyError::Invalid("message id domain"));
    }

    let unique = uuid::Uuid::new_v4();
    let message_id = match token {
        Some(token) => format!("<sb.{token}.{}@{domain}>", unique.simple()),
        None => format!("<{unique}@{domain}>"),
    };
    let mut builder = Message::builder()
        .subject(reply_subject(&thread.subject))
        .message_id(Some(message_id));
    if let Some(token) = token {
        let user = from.email.user();
        let base = user.split('+').next().unwrap_or(user);
        let tagged = lettre::Address::new(format!("{base}+{token}"), from.email.domain())
            .map_err(|_| BuildReplyError::Invalid("from address"))?;
        builder = builder.reply_to(Mailbox::new(from.name.clone(), tagged));
    }
    let mut builder = builder.from(from).to(to);

    let original = normalize_message_id(&thread.message_id);
    let mut references: Vec<String> = thread
        .references
        .iter()
        .filter_map(|id| normalize_message_id(id))
        .collect();
    if let Some(original) = &original {
        builder = builder.in_reply_to(original.clone());
        references.retain(|id| id != original);
        references.push(original.clone());
    }
    if references.len() > MAX_REFERENCES {
        // Keep the root, which identifies the thread, and the newest ids.
        references.drain(1..references.len() - (MAX_REFERENCES - 1));
    }
    if !references.is_empty() {
        builder = builder.references(references.join(" "));
    }

    if automated {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-replied".into(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
                "All".into(),
            ));
    }
    Ok(builder
        .header(ContentType::TEXT_PLAIN)
        .body(text.to_owned())?)
}

/// `Re: {subject}`, without stacking prefixes the customer's client already
/// added (`Re: RE: 回复: Hello` → `Re: Hello`).
pub fn reply_subject(subject: &str) -> String {
    let mut rest = subject.trim();
    while let Some(stripped) = strip_reply_prefix(rest) {
        rest = stripped.trim_start();
    }
    if rest.is_empty() {
        "Re: (no subject)".to_owned()
    } else {
        format!("Re: {rest}")
    }
}

fn strip_reply_prefix(subject: &str) -> Option<&str> {
    REPLY_PREFIXES.iter().find_map(|prefix| {
        let head = subject.get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(prefix) {
            return None;
        }
        let mut rest = &subject[prefix.len()..];
        // Counters some clients add: `Re[2]:`, `Re(3):`.
        for (open, close) in [('[', ']'), ('(', ')')] {
            if let Some(inner) = rest.strip_prefix(open)
                && let Some(end) = inner.find(close)
                && inner[..end].bytes().all(|b| b.is_ascii_digit())
            {
                rest = &inner[end + 1..];
            }
        }
        let rest = rest.trim_start_matches(' ');
        rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))
    })
}

/// A message id in its canonical `<id>` form, or `None` when it is not one
/// (empty, or containing spaces, controls or angle brackets inside).
pub fn normalize_message_id(id: &str) -> Option<String> {
    let trimmed = id.trim();
    let inner = trimmed.strip_prefix('<').unwrap_or(trimmed);
    let inner = inner.strip_suffix('>').unwrap_or(inner);
    let valid = !inner.is_empty()
        && !inner
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    valid.then(|| format!("<{inner}>"))
}

/// The message ids in a `References` or `In-Reply-To` value, in order, as
/// mail-parser reads them (folded lines, comments and broken clients' lone
/// ids without brackets included).
pub fn message_ids(value: &str) -> Vec<String> {
    use mail_parser::HeaderValue;
    let line = format!("{}\n", value.replace(['\r', '\n'], " "));
    let ids = match mail_parser::parsers::MessageStream::new(line.as_bytes()).parse_id() {
        HeaderValue::Text(id) => vec![id.into_owned()],
        HeaderValue::TextList(ids) => ids.into_iter().map(|id| id.into_owned()).collect(),
        _ => Vec::new(),
    };
    ids.iter()
        .filter_map(|id| normalize_message_id(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread() -> EmailThread {
        EmailThread {
            message_id: "<CAF=abc123@mail.customer.example>".into(),
            references: vec![
                "<root@shop.example>".into(),
                "<second@mail.customer.example>".into(),
            ],
            subject: "RE: Re: Where is my order?".into(),
            reply_to: "Jane Doe <jane@customer.example>".into(),
            to: "support@shop.example".into(),
        }
    }

    /// The rendered message with folded header lines joined again.
    fn rendered(message: &Message) -> String {
        String::from_utf8(message.formatted())
            .unwrap()
            .replace("\r\n ", " ")
            .replace("\r\n\t", " ")
    }

    fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
    }

    #[test]
    fn reply_threads_and_is_marked_automatic() {
        let message = build_reply(
            &thread(),
            "Shop Support <support@shop.example>",
            "Your parcel left today.",
            "shop.example",
            None,
            true,
        )
        .unwrap();
        let text = rendered(&message);
        assert_eq!(
            header(&text, "To"),
            Some("\"Jane Doe\" <jane@customer.example>")
        );
        assert_eq!(
            header(&text, "From"),
            Some("\"Shop Support\" <support@shop.example>")
        );
        assert_eq!(header(&text, "Subject"), Some("Re: Where is my order?"));
        assert_eq!(
            header(&text, "In-Reply-To"),
            Some("<CAF=abc123@mail.customer.example>")
        );
        assert_eq!(
            header(&text, "References"),
            Some(
                "<root@shop.example> <second@mail.customer.example> <CAF=abc123@mail.customer.example>"
            )
        );
        assert_eq!(header(&text, "Auto-Submitted"), Some("auto-replied"));
        assert_eq!(header(&text, "X-Auto-Response-Suppress"), Some("All"));
        assert_eq!(
            header(&text, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        let id = header(&text, "Message-ID").unwrap();
        let inner = id
            .strip_prefix('<')
            .unwrap()
            .strip_suffix("@shop.example>")
            .unwrap();
        assert!(uuid::Uuid::parse_str(inner).is_ok(), "{id}");
        assert!(text.ends_with("\r\n\r\nYour parcel left today."), "{text}");
        assert!(header(&text, "Date").is_some());
    }

    #[test]
    fn a_persons_reply_is_not_marked_automatic() {
        let message = build_reply(
            &thread(),
            "support@shop.example",
            "Lee here: I refunded it.",
            "shop.example",
            None,
            false,
        )
        .unwrap();
        let text = rendered(&message);
        assert_eq!(header(&text, "Auto-Submitted"), None);
        assert_eq!(header(&text, "X-Auto-Response-Suppress"), None);
        assert_eq!(
            header(&text, "In-Reply-To"),
            Some("<CAF=abc123@mail.customer.example>"),
            "still threaded"
        );
    }

    #[test]
    fn references_are_unfolded_in_order() {
        let message = build_reply(
            &thread(),
            "support@shop.example",
            "ok",
            "shop.example",
            None,
            true,
        )
        .unwrap();
        let references = message.headers().get_raw("References").unwrap();
        assert_eq!(
            references,
            "<root@shop.example> <second@mail.customer.example> <CAF=abc123@mail.customer.example>"
        );
    }

    #[test]
    fn long_reference_chains_keep_root_and_newest() {
        let mut long = thread();
        long.references = (0..30).map(|i| format!("<r{i}@x.example>")).collect();
        let message = build_reply(
            &long,
            "support@shop.example",
            "ok",
            "shop.example",
            None,
            true,
        )
        .unwrap();
        let ids = message_ids(message.headers().get_raw("References").unwrap());
        assert_eq!(ids.len(), MAX_REFERENCES);
        assert_eq!(ids[0], "<r0@x.example>");
        assert_eq!(ids[MAX_REFERENCES - 2], "<r29@x.example>");
        assert_eq!(
            ids[MAX_REFERENCES - 1],
            "<CAF=abc123@mail.customer.example>"
        );
    }

    #[test]
    fn first_mail_without_ids_still_gets_a_reply() {
        let first = EmailThread {
            message_id: String::new(),
            references: vec![],
            subject: String::new(),
            ..thread()
        };
        let message = build_reply(
            &first,
            "support@shop.example",
            "你好，订单已发货。",
            "shop.example",
            None,
            true,
        )
        .unwrap();
        assert!(message.headers().get_raw("In-Reply-To").is_none());
        assert!(message.headers().get_raw("References").is_none());
        assert_eq!(
            message.headers().get_raw("Subject"),
            Some("Re: (no subject)")
        );
    }

    #[test]
    fn invalid_inputs_are_errors_without_the_values() {
        let bad_to = EmailThread {
            reply_to: "not an address secret-customer".into(),
            ..thread()
        };
        let error = build_reply(
            &bad_to,
            "support@shop.example",
            "x",
            "shop.example",
            None,
            true,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("secret-customer"));
        assert!(build_reply(&thread(), "nobody", "x", "shop.example", None, true).is_err());
        assert!(
            build_reply(
                &thread(),
                "support@shop.example",
                "x",
                "bad domain",
                None,
                true
            )
            .is_err()
        );
        assert!(build_reply(&thread(), "support@shop.example", "x", "", None, true).is_err());
    }

    #[test]
    fn injected_ids_are_dropped() {
        let evil = EmailThread {
            message_id: "<a@b>\r\nBcc: victim@x.example".into(),
            references: vec!["<ok@x.example>".into(), "<bad id@x>".into()],
            ..thread()
        };
        let message = build_reply(
            &evil,
            "support@shop.example",
            "x",
            "shop.example",
            None,
            true,
        )
        .unwrap();
        let text = rendered(&message);
        assert!(!text.contains("Bcc"));
        assert!(message.headers().get_raw("In-Reply-To").is_none());
        assert_eq!(
            message.headers().get_raw("References"),
            Some("<ok@x.example>")
        );
    }

    #[test]
    fn conversation_token_goes_in_message_id_and_reply_to() {
        let token = "0123456789abcdef0123";
        let message = build_reply(
            &thread(),
            "Shop Support <support@shop.example>",
            "ok",
            "shop.example",
            Some(token),
            true,
        )
        .unwrap();
        let text = rendered(&message);
        let id = header(&text, "Message-ID").unwrap();
        assert!(id.starts_with(&format!("<sb.{token}.")), "{id}");
        assert!(id.ends_with("@shop.example>"), "{id}");
        assert_eq!(
            header(&text, "Reply-To"),
            Some(format!("\"Shop Support\" <support+{token}@shop.example>").as_str())
        );
    }

    #[test]
    fn subjects_do_not_stack_prefixes() {
        for (subject, expected) in [
            ("Hello", "Re: Hello"),
            ("Re: Hello", "Re: Hello"),
            ("RE: re: Hello", "Re: Hello"),
            ("Re[2]: Hello", "Re: Hello"),
            ("AW: Sv: Hello", "Re: Hello"),
            ("回复: 回复：订单问题", "Re: 订单问题"),
            ("Re : Hello", "Re: Hello"),
            ("Regarding: Hello", "Re: Regarding: Hello"),
            ("Return policy", "Re: Return policy"),
            ("Re:", "Re: (no subject)"),
            ("", "Re: (no subject)"),
        ] {
            assert_eq!(reply_subject(subject), expected, "{subject}");
        }
    }

    #[test]
    fn message_ids_are_extracted() {
        assert_eq!(
            message_ids("<a@x> <b@y>\r\n\t<c@z>"),
            ["<a@x>", "<b@y>", "<c@z>"]
        );
        assert_eq!(message_ids("a@x"), ["<a@x>"]);
        assert!(message_ids("").is_empty());
        assert!(message_ids("<>").is_empty());
        assert!(message_ids("<unterminated").is_empty());
        assert_eq!(normalize_message_id(" <a@x> ").as_deref(), Some("<a@x>"));
        assert_eq!(normalize_message_id("<a b@x>"), None);
    }
}
