//! The loop guard: never send an automatic reply to mail that a machine sent
//! (out-of-office notices, bounces, mailing lists, other bots, ourselves), or
//! two auto-responders answer each other forever. The rules follow RFC 3834
//! ("Recommendations for Automatic Responses to Electronic Mail") and the
//! headers that common mail systems actually set.

/// Local parts of addresses that belong to mail systems rather than people.
const SYSTEM_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "no_reply",
    "do-not-reply",
    "do_not_reply",
    "donotreply",
    "bounce",
    "bounces",
];

/// How out-of-office notices and bounces are titled (lower case, at the start
/// of the subject).
const AUTOMATIC_SUBJECTS: &[&str] = &[
    "out of office:",
    "automatic reply:",
    "auto-reply:",
    "autoreply:",
    "auto reply:",
    "auto response:",
    "auto-response:",
    "undeliverable:",
    "undelivered mail returned to sender",
    "delivery status notification",
    "mail delivery failed",
    "returned mail:",
    "自动回复",
];

/// Why an automatic reply to this mail must not be sent, or `None` when it may.
///
/// `headers` are the mail's header fields (names compared case-insensitively),
/// `from` is the sender's mailbox (`Name <address>` or a bare address) and
/// `our_addresses` are the addresses we send from.
pub fn auto_reply_block(
    headers: &[(String, String)],
    from: &str,
    our_addresses: &[String],
) -> Option<&'static str> {
    let header = |name: &'static str| values(headers, name);
    let first_token = |value: &str| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };

    // RFC 3834 §5: anything but `Auto-Submitted: no` was sent by a machine.
    if header("Auto-Submitted").any(|value| first_token(value) != "no") {
        return Some("auto-submitted");
    }
    if ["List-Id", "List-Unsubscribe", "List-Post"]
        .iter()
        .any(|name| header(name).next().is_some())
    {
        return Some("mailing-list");
    }
    if header("Precedence").any(|value| {
        matches!(
            first_token(value).as_str(),
            "bulk" | "list" | "junk" | "auto_reply"
        )
    }) {
        return Some("precedence");
    }
    // Microsoft Exchange's way of asking for no automatic answers.
    if header("X-Auto-Response-Suppress").any(|value| {
        value
            .split(',')
            .map(|token| token.trim().to_ascii_lowercase())
            .any(|token| matches!(token.as_str(), "all" | "autoreply" | "oof"))
    }) {
        return Some("auto-response-suppressed");
    }
    if header("X-Autoreply").next().is_some() || header("X-Autorespond").next().is_some() {
        return Some("autoreply-header");
    }
    // Delivery and read reports (RFC 6522: bounces, read receipts, abuse
    // reports) and Exim's bounce header, whoever the sender claims to be.
    if header("Content-Type").any(|value| {
        matches!(
            first_token(value).as_str(),
            "multipart/report" | "message/delivery-status" | "message/disposition-notification"
        )
    }) || header("X-Failed-Recipients").next().is_some()
    {
        return Some("delivery-report");
    }
    // Exchange marks mail its inbox rules generated or forwarded.
    if header("X-MS-Exchange-Inbox-Rules-Loop").next().is_some() {
        return Some("inbox-rule");
    }
    // Responders that set none of the headers above still title their
    // notices the same few ways.
    if header("Subject").any(|subject| {
        let subject = subject.trim_start().to_lowercase();
        AUTOMATIC_SUBJECTS
            .iter()
            .any(|start| subject.starts_with(start))
    }) {
        return Some("automatic-subject");
    }
    // A null reverse path (`Return-Path: <>`) marks bounces and other
    // notifications that must not be answered (RFC 5321 §4.5.5).
    if header("Return-Path").any(|value| value.is_empty() || value == "<>") {
        return Some("null-return-path");
    }
    // The reply goes to the Reply-To address when there is one (the first,
    // as the reply is built), else to the sender: both must be people.
    if let Some(reason) = address_of(from)
        .and_then(|sender| address_block(&sender, our_addresses, "system-sender", "own-address"))
    {
        return Some(reason);
    }
    header("Reply-To")
        .find_map(address_of)
        .and_then(|target| address_block(&target, our_addresses, "system-reply-to", "own-reply-to"))
}

/// Why mail must not be sent to `address` (lower-cased), if it must not.
fn address_block(
    address: &str,
    our_addresses: &[String],
    system: &'static str,
    own: &'static str,
) -> Option<&'static str> {
    let (local, domain) = untagged(address);
    if SYSTEM_LOCAL_PARTS.contains(&local) {
        return Some(system);
    }
    let ours = our_addresses
        .iter()
        .filter_map(|ours| address_of(ours))
        .any(|ours| untagged(&ours) == (local, domain));
    ours.then_some(own)
}

/// An address's local part without its `+tag` (subaddress, RFC 5233), and
/// its domain: `support+orders@shop.example` is `support` at `shop.example`.
fn untagged(address: &str) -> (&str, &str) {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    (local.split('+').next().unwrap_or(local), domain)
}

/// Every value of the header `name`, trimmed.
fn values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

/// The address in a mailbox (`"Jane Doe" <Jane@Example.com>` → `jane@example.com`),
/// lower-cased, or `None` when there is none. Of a list, the first.
pub fn address_of(mailbox: &str) -> Option<String> {
    let candidate = match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(open), Some(close)) if open < close => &mailbox[open + 1..close],
        _ => mailbox.split(',').next().unwrap_or_default(),
    };
    let address = candidate.trim();
    let (local, domain) = address.rsplit_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','));
    valid.then(|| address.to_lowercase())
}

/// The display name of a mailbox (`"Jane Doe" <jane@example.com>` → `Jane Doe`).
pub fn display_name(mailbox: &str) -> Option<String> {
    let open = mailbox.rfind('<')?;
    let name = mailbox[..open].trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.replace("\\\"", "\""))
}

/// The domain of an address (`support@shop.example` → `shop.example`).
pub fn domain_of(address: &str) -> Option<String> {
    address_of(address).and_then(|address| {
        address
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CUSTOMER: &str = "Jane Doe <jane@customer.example>";

    fn ours() -> Vec<String> {
        vec![
            "support@shop.example".into(),
            "Help Desk <HELP@shop.example>".into(),
        ]
    }

    #[test]
    fn ordinary_mail_may_be_answered() {
        let ordinary = headers(&[
            ("Subject", "Where is my order?"),
            ("Auto-Submitted", "no"),
            ("Precedence", "first-class"),
            ("X-Auto-Response-Suppress", "DR, RN"),
            ("Return-Path", "<jane@customer.example>"),
            ("Content-Type", "multipart/mixed; boundary=\"report\""),
        ]);
        assert_eq!(auto_reply_block(&ordinary, CUSTOMER, &ours()), None);
        // a customer may mention these words, just not lead with a responder's title
        let asking = headers(&[("Subject", "Re: my automatic reply: is it on?")]);
        assert_eq!(auto_reply_block(&asking, CUSTOMER, &ours()), None);
        assert_eq!(
            auto_reply_block(&[], "jane@customer.example", &ours()),
            None
        );
    }

    #[test]
    fn automated_mail_is_not_answered() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("Auto-Submitted", "auto-replied")], "auto-submitted"),
            (
                &[("auto-submitted", "Auto-Generated; owner-email=x@y")],
                "auto-submitted",
            ),
            (&[("List-Id", "<news.shop.example>")], "mailing-list"),
            (&[("List-Unsubscribe", "<mailto:u@x>")], "mailing-list"),
            (&[("List-Post", "NO")], "mailing-list"),
            (&[("Precedence", "Bulk")], "precedence"),
            (&[("Precedence", "list")], "precedence"),
            (&[("Precedence", "junk")], "precedence"),
            (
                &[("X-Auto-Response-Suppress", "All")],
                "auto-response-suppressed",
            ),
            (
                &[("X-Auto-Response-Suppress", "DR, OOF")],
                "auto-response-suppressed",
            ),
            (
                &[("X-Auto-Response-Suppress", "AutoReply")],
                "auto-response-suppressed",
            ),
            (&[("X-Autoreply", "yes")], "autoreply-header"),
            (&[("X-Autorespond", "")], "autoreply-header"),
            (&[("Return-Path", "<>")], "null-return-path"),
            (
                &[(
                    "Content-Type",
                    "multipart/report; report-type=delivery-status; boundary=x",
                )],
                "delivery-report",
            ),
            (
                &[(
                    "content-type",
                    "Multipart/Report; report-type=disposition-notification",
                )],
                "delivery-report",
            ),
            (
                &[("X-Failed-Recipients", "x@example.org")],
                "delivery-report",
            ),
            (&[("X-MS-Exchange-Inbox-Rules-Loop", "a@b.c")], "inbox-rule"),
            (
                &[("Subject", "Out of Office: until Monday")],
                "automatic-subject",
            ),
            (
                &[("Subject", "Automatic reply: Your order")],
                "automatic-subject",
            ),
            (
                &[("Subject", "Delivery Status Notification (Failure)")],
                "automatic-subject",
            ),
            (&[("Subject", "自动回复：我在休假")], "automatic-subject"),
        ];
        for (pairs, reason) in cases {
            assert_eq!(
                auto_reply_block(&headers(pairs), CUSTOMER, &ours()),
                Some(*reason),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn system_senders_and_ourselves_are_not_answered() {
        for from in [
            "MAILER-DAEMON@mx.example",
            "Mail Delivery System <mailer-daemon@googlemail.com>",
            "postmaster@customer.example",
            "noreply@service.example",
            "No Reply <no-reply@service.example>",
            "do-not-reply@x.example",
            "do_not_reply@x.example",
            "DoNotReply@x.example",
            "bounces+12345@mail.example",
        ] {
            assert_eq!(
                auto_reply_block(&[], from, &ours()),
                Some("system-sender"),
                "{from}"
            );
        }
        assert_eq!(
            auto_reply_block(&[], "Support <SUPPORT@shop.example>", &ours()),
            Some("own-address")
        );
        assert_eq!(
            auto_reply_block(&[], "help@shop.example", &ours()),
            Some("own-address")
        );
        assert_eq!(auto_reply_block(&[], "replying@x.example", &ours()), None);
    }

    #[test]
    fn tagged_forms_of_our_addresses_are_ours() {
        for from in [
            "support+orders@shop.example",
            "Shop <SUPPORT+x@Shop.Example>",
            "help+a+b@shop.example",
        ] {
            assert_eq!(
                auto_reply_block(&[], from, &ours()),
                Some("own-address"),
                "{from}"
            );
        }
        assert_eq!(
            auto_reply_block(&[], "support@other.example", &ours()),
            None,
            "same name, another domain"
        );
        assert_eq!(
            auto_reply_block(&[], "supporter@shop.example", &ours()),
            None
        );
    }

    #[test]
    fn the_address_the_reply_goes_to_is_checked_too() {
        let cases = [
            ("support@shop.example", Some("own-reply-to")),
            ("Shop <support+loop@shop.example>", Some("own-reply-to")),
            ("MAILER-DAEMON@mx.example", Some("system-reply-to")),
            ("no-reply@service.example", Some("system-reply-to")),
            // Only the first address gets the reply.
            ("jane@home.example, support@shop.example", None),
            ("Jane at home <jane@home.example>", None),
            // Not an address: the reply goes to the sender, who is fine.
            ("undisclosed-recipients:;", None),
        ];
        for (reply_to, expected) in cases {
            assert_eq!(
                auto_reply_block(&headers(&[("Reply-To", reply_to)]), CUSTOMER, &ours()),
                expected,
                "{reply_to}"
            );
        }
    }

    #[test]
    fn addresses_and_names_are_extracted() {
        assert_eq!(
            address_of("\"Doe, Jane\" <Jane@Example.COM>").as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(
            address_of(" jane@example.com ").as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(
            address_of("a@x.example, b@y.example").as_deref(),
            Some("a@x.example")
        );
        assert_eq!(address_of("not an address"), None);
        assert_eq!(address_of("<>"), None);
        assert_eq!(address_of(""), None);
        assert_eq!(address_of("@x"), None);
        assert_eq!(
            display_name("\"Doe, Jane\" <jane@example.com>").as_deref(),
            Some("Doe, Jane")
        );
        assert_eq!(display_name("<jane@example.com>"), None);
        assert_eq!(display_name("jane@example.com"), None);
        assert_eq!(
            domain_of("Support <support@Shop.Example>").as_deref(),
            Some("shop.example")
        );
    }
}
