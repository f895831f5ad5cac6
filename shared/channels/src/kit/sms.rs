//! Twilio's SMS keywords: opting out, back in, and asking for help are
//! answered by Twilio itself (Twilio's "SMS STOP filtering" and Advanced
//! Opt-Out), so the product records them and never answers; an opted-out
//! number refuses every later message with error 21610.

use switchboard_domain::{MessageKind, SendError};

use super::text_or_media;

/// How an SMS from `from` reads: [`MessageKind::Keyword`] for a keyword
/// Twilio answers itself, else text or media.
pub fn kind(from: &str, body: &str, opt_out_type: Option<&str>) -> MessageKind {
    match is_keyword(from, body, opt_out_type) {
        true => MessageKind::Keyword,
        false => text_or_media(body),
    }
}

/// Twilio's own SMS keywords, matched against the whole message, trimmed,
/// in any case: opting out (`STOP`, ...: Twilio confirms it and refuses
/// every later message to the number with error 21610), back in (`START`,
/// `UNSTOP`) and help (`HELP`, `INFO`), each answered by Twilio itself.
/// `YES` also opts back in, but is as often an answer to us: it is read.
const SMS_KEYWORDS: [&str; 12] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "START",
    "UNSTOP",
    "HELP",
    "INFO",
];

/// Whether an SMS is a keyword Twilio answers itself: one of the defaults,
/// or one a Messaging Service's Advanced Opt-Out was set up with (Twilio
/// then says so in `OptOutType`). WhatsApp has no such keywords.
fn is_keyword(from: &str, body: &str, opt_out_type: Option<&str>) -> bool {
    if from.starts_with("whatsapp:") {
        return false;
    }
    let body = body.trim();
    opt_out_type.is_some_and(|kind| !kind.trim().is_empty())
        || SMS_KEYWORDS
            .iter()
            .any(|keyword| body.eq_ignore_ascii_case(keyword))
}

/// Twilio's error when the customer has opted out with `STOP`.
const OPTED_OUT: &str = "21610";

/// A refusal for an opted-out number says so: no retry can deliver it
/// before the customer texts `START`.
pub fn explain_opt_out(error: SendError) -> SendError {
    match error {
        SendError::Permanent {
            channel,
            detail,
            source,
        } if detail.split_whitespace().last() == Some(OPTED_OUT) => SendError::Permanent {
            channel,
            detail: format!(
                "{detail}: the customer opted out of SMS from this number (replied STOP); Twilio delivers nothing until they text START"
            ),
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::sender::permanent;

    #[test]
    fn an_opted_out_number_is_a_permanent_failure_that_says_so() {
        let refused = explain_opt_out(permanent("twilio", "HTTP 400 21610"));
        assert!(!refused.is_transient());
        assert!(
            refused.to_string().contains("opted out of SMS"),
            "{refused}"
        );
        let other = explain_opt_out(permanent("twilio", "HTTP 400 21211"));
        assert!(!other.to_string().contains("opted out"), "{other}");
    }
}
