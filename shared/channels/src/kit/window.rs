//! Providers that accept a reply only for a while after the customer's last
//! message (Meta's standard messaging window), and let a person's reply go
//! out for longer with a tag (Meta's `HUMAN_AGENT`). A reply outside what is
//! allowed fails visibly, as a permanent error naming the window, instead of
//! being sent and refused.

use switchboard_domain::{OutboundReply, SendError};

use super::sender::permanent;

const HOUR_MS: i64 = 3_600_000;

/// How a reply may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Within the standard window.
    Standard,
    /// Later, as an agent's reply with this tag.
    Tagged(&'static str),
}

/// A provider's reply window.
#[derive(Debug, Clone, Copy)]
pub struct ReplyWindow {
    pub standard_hours: i64,
    /// A tag that lets an agent's reply out later, and for how long after
    /// the customer's message.
    pub agent_tag: Option<(&'static str, i64)>,
}

/// Meta Messenger and Instagram: 24 hours; an agent's reply within 7 days
/// with the `HUMAN_AGENT` tag.
pub const META_MESSAGING: ReplyWindow = ReplyWindow {
    standard_hours: 24,
    agent_tag: Some(("HUMAN_AGENT", 7 * 24)),
};

impl ReplyWindow {
    /// How `reply` may be sent at `now_ms`; `tag_allowed` says whether this
    /// deployment may use the agent tag. Without the customer's message time
    /// the reply goes out as a standard one (the provider is the judge).
    pub fn check(
        &self,
        channel: &str,
        reply: &OutboundReply,
        tag_allowed: bool,
        now_ms: i64,
    ) -> Result<Allowed, SendError> {
        let Some(sent_at) = reply.reply.customer_sent_at_ms else {
            return Ok(Allowed::Standard);
        };
        let age_ms = now_ms.saturating_sub(sent_at);
        if age_ms <= self.standard_hours.saturating_mul(HOUR_MS) {
            return Ok(Allowed::Standard);
        }
        match self.agent_tag {
            Some((tag, hours)) if tag_allowed && reply.is_from_agent() => {
                if age_ms <= hours.saturating_mul(HOUR_MS) {
                    return Ok(Allowed::Tagged(tag));
                }
                Err(permanent(
                    channel,
                    format!(
                        "the customer last wrote more than {hours} hours ago: the provider no longer accepts a reply"
                    ),
                ))
            }
            _ => Err(permanent(
                channel,
                format!(
                    "the customer last wrote more than {} hours ago: outside the messaging window",
                    self.standard_hours
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::{AGENT_REPLY_PREFIX, ReplyContext};

    fn reply(reply_id: &str, sent_at: Option<i64>) -> OutboundReply {
        OutboundReply {
            channel: "messenger".into(),
            account_id: "page".into(),
            conversation_id: "psid".into(),
            customer_id: "psid".into(),
            text: "hi".into(),
            reply: ReplyContext {
                customer_sent_at_ms: sent_at,
                ..ReplyContext::default()
            },
            reply_id: reply_id.into(),
            choices: Vec::new(),
        }
    }

    #[test]
    fn late_agent_replies_are_tagged_and_later_ones_fail_visibly() {
        let now = 1_000 * HOUR_MS;
        let agent = format!("{AGENT_REPLY_PREFIX}1");
        let check = |id: &str, hours_ago: i64, tag_allowed| {
            META_MESSAGING.check(
                "messenger",
                &reply(id, Some(now - hours_ago * HOUR_MS)),
                tag_allowed,
                now,
            )
        };
        assert_eq!(check("r-1", 23, true).unwrap(), Allowed::Standard);
        assert_eq!(check(&agent, 24, true).unwrap(), Allowed::Standard);
        assert_eq!(
            check(&agent, 25, true).unwrap(),
            Allowed::Tagged("HUMAN_AGENT")
        );
        let bot_late = check("r-1", 25, true).unwrap_err();
        assert!(
            !bot_late.is_transient() && bot_late.to_string().contains("24 hours"),
            "{bot_late}"
        );
        assert!(check(&agent, 25, false).is_err());
        let too_late = check(&agent, 7 * 24 + 1, true).unwrap_err();
        assert!(!too_late.is_transient(), "{too_late}");
        let unknown = reply("r-1", None);
        assert_eq!(
            META_MESSAGING
                .check("messenger", &unknown, true, now)
                .unwrap(),
            Allowed::Standard
        );
    }
}
