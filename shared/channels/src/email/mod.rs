//! Email, shared by the email channels and the agent notifier: the outgoing
//! mail transports, the loop guard that keeps us from answering automated
//! mail, and building a reply that threads in the customer's mail client.

mod guard;
mod inbound;
mod limits;
mod mime;
mod quotes;
mod reply;
mod transport;

pub use guard::{address_of, auto_reply_block, display_name, domain_of};
pub use inbound::{
    CUT_MARKER, Identity, MAX_TEXT_CHARS, ReceivedMail, Threading, bare_id, header, is_token,
    thread_subject, untag,
};
pub use lettre::Message;
pub use limits::{DEFAULT_DAILY_CAP, ReplyLimits};
pub use mime::{Mail, html_to_text, parse_mime, sample_mail};
pub use quotes::new_text;
pub use reply::{BuildReplyError, build_reply, message_ids, normalize_message_id, reply_subject};
#[cfg(test)]
pub(crate) use transport::RecordingTransport;
pub use transport::{EmailTransport, OutboxTransport, SmtpConfig, SmtpTls, SmtpTransport};
