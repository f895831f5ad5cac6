//! What every email channel does with a received mail and with its reply:
//! our identity (the address replies come from, our other addresses, the
//! `Message-ID` domain), the thread a mail belongs to, the loop guard applied
//! to the sender, and the reply threaded under the customer's mail.

use switchboard_domain::{EmailThread, OutboundReply, SendError};

use super::{EmailTransport, address_of, auto_reply_block, build_reply, message_ids};
use crate::kit::{Unusable, permanent, unusable};

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
        from: &str,
        envelope_sender: Option<&str>,
    ) -> Option<&'static str> {
        auto_reply_block(headers, from, &self.our_addresses).or_else(|| {
            match envelope_sender.map(str::trim) {
                Some("" | "<>") => Some("null-return-path"),
                Some(sender) => auto_reply_block(&[], sender, &self.our_addresses),
                None => None,
            }
        })
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
        let message = build_reply(
            thread,
            &self.from_address,
            &reply.text,
            &self.message_id_domain,
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
        let references: Vec<String> = header("References").map(message_ids).unwrap_or_default();
        let in_reply_to =
            header("In-Reply-To").and_then(|value| message_ids(value).into_iter().next());
        let root = references
            .first()
            .or(in_reply_to.as_ref())
            .or(message_id.as_ref());
        let root = root.map(|id| bare_id(id).to_owned());
        Self {
            message_id,
            references,
            root,
        }
    }

    /// What a reply needs to thread in the customer's client.
    pub fn reply_thread(&self, subject: &str, reply_to: String, to: String) -> EmailThread {
        EmailThread {
            message_id: self.message_id.clone().unwrap_or_default(),
            references: self.references.clone(),
            subject: subject.to_owned(),
            reply_to,
            to,
        }
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
