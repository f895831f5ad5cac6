//! One message model for every channel.

use serde::{Deserialize, Serialize};

/// A customer message normalised from any channel's webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Registry name of the channel, e.g. `telegram`.
    pub channel: String,
    /// The business's bot or account on that channel (bot id, team id, inbox address).
    pub account_id: String,
    /// The customer's id on that channel (user id, phone number, email address).
    pub customer_id: String,
    /// Display name, when the provider sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// The chat, DM or thread the message belongs to; replies go back there.
    pub conversation_id: String,
    /// The provider's id for this delivery; the dedupe key within the channel.
    pub provider_message_id: String,
    /// When the customer sent it, unix milliseconds.
    pub sent_at_ms: i64,
    pub kind: MessageKind,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub reply: ReplyContext,
}

/// Longest `channel:account:conversation` key the agents' API takes.
pub const MAX_CONVERSATION_KEY_BYTES: usize = 600;
/// Longest `channel:customer_id` key export and erase take (email addresses
/// are the longest ids).
pub const MAX_CUSTOMER_KEY_BYTES: usize = 512;
/// Longest provider message id kept for recognising duplicates.
pub const MAX_MESSAGE_ID_BYTES: usize = 512;

impl InboundMessage {
    /// Which id, if any, the product could store but never serve: longer than
    /// the agents' API, export and erase accept, or with control characters.
    /// Ingress refuses such a message before storing anything.
    pub fn unservable_id(&self) -> Option<&'static str> {
        // The keys' lengths, counted without building them (every message).
        let bad = |parts: &[&str], limit: usize| {
            parts.iter().map(|p| p.len() + 1).sum::<usize>() - 1 > limit
                || parts.iter().any(|p| p.chars().any(char::is_control))
        };
        let account = key_segment(&self.account_id);
        let (channel, account) = (self.channel.as_str(), account.as_ref());
        if bad(
            &[channel, account, &self.conversation_id],
            MAX_CONVERSATION_KEY_BYTES,
        ) {
            Some("conversation id")
        } else if bad(&[channel, &self.customer_id], MAX_CUSTOMER_KEY_BYTES) {
            Some("customer id")
        } else if bad(&[&self.provider_message_id], MAX_MESSAGE_ID_BYTES) {
            Some("message id")
        } else {
            None
        }
    }

    /// Key of the conversation this message belongs to: one per channel, account and chat.
    pub fn conversation_key(&self) -> ConversationKey {
        ConversationKey::new(&self.channel, &self.account_id, &self.conversation_id)
    }

    /// Key of the customer: one per channel and customer id.
    pub fn customer_key(&self) -> String {
        format!("{}:{}", self.channel, self.customer_id)
    }

    /// Key under which duplicates and provider retries of this message are recognised.
    pub fn dedupe_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.channel,
            key_segment(&self.account_id),
            self.provider_message_id
        )
    }
}

/// An account id as a middle segment of a key: `:` (and the escape's own `%`)
/// percent-encoded, so that the account `shop:eu` with the conversation `c1`
/// and the account `shop` with the conversation `eu:c1` are different keys.
/// Ids without either are unchanged.
fn key_segment(id: &str) -> std::borrow::Cow<'_, str> {
    if id.contains([':', '%']) {
        id.replace('%', "%25").replace(':', "%3A").into()
    } else {
        id.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Media,
    Edit,
    Delete,
    /// An emoji reaction to an earlier message, or a sticker: `text` is the
    /// emoji where the provider gives one. Never read as a question.
    Reaction,
    /// A tap on one of our buttons: `text` is the choice's value. Buttons
    /// stay on screen, so a tap may come again after its question is answered.
    Choice,
    /// A keyword the provider answers itself (SMS `STOP`, `START`, `HELP`
    /// through Twilio): recorded, never answered.
    Keyword,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The provider's handle for the file (Telegram `file_id`, Slack file id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    File,
    Sticker,
    Location,
    Other,
}

/// What a reply on the same channel needs beyond the conversation id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// Single-use reply token (LINE) or similar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
    /// Thread to reply in (Slack `thread_ts`), when the message was threaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The provider's own id of the customer's message (Telegram `message_id`),
    /// which a reply can quote; the dedupe key may be another id (`update_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Email threading data; present for email channels only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailThread>,
    /// When the customer's message was sent (unix ms), for providers that
    /// allow replies only for a while after it: Meta's 24-hour messaging
    /// window, Discord's 15-minute interaction token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_sent_at_ms: Option<i64>,
    /// The provider shows the customer a pending state until we answer (a
    /// deferred Discord interaction): such a message always gets a reply,
    /// even where the bot would otherwise stay quiet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaits_reply: bool,
}

/// The headers an email reply needs to thread correctly in the customer's client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailThread {
    /// `Message-ID` of the customer's mail, with angle brackets.
    pub message_id: String,
    /// Its `References` chain, oldest first, with angle brackets.
    #[serde(default)]
    pub references: Vec<String>,
    pub subject: String,
    /// Where the reply goes: `Reply-To` if given, else `From`.
    pub reply_to: String,
    /// The address the customer wrote to; our reply comes from it.
    pub to: String,
}

/// A reply to send on a customer's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundReply {
    pub channel: String,
    pub account_id: String,
    pub conversation_id: String,
    pub customer_id: String,
    pub text: String,
    #[serde(default)]
    pub reply: ReplyContext,
    /// Our own id for this reply; senders that support idempotency keys pass it on.
    pub reply_id: String,
    /// Answers the customer can tap instead of typing (a menu's numbers,
    /// "was this helpful?"): buttons where the channel has them. The text
    /// asks for them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
}

/// One answer the customer can tap: the button shows `label`, and a tap
/// comes back as a message (or the provider's callback) carrying `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ChoiceForm")]
pub struct Choice {
    pub value: String,
    pub label: String,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            label: label.into(),
        }
    }
}

/// Replies queued before choices had labels carry bare values.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChoiceForm {
    Value(String),
    Full { value: String, label: String },
}

impl From<ChoiceForm> for Choice {
    fn from(form: ChoiceForm) -> Self {
        match form {
            ChoiceForm::Value(value) => Choice::new(value.clone(), value),
            ChoiceForm::Full { value, label } => Choice::new(value, label),
        }
    }
}

/// The start of the `reply_id` of a reply an agent wrote (the bot's differ),
/// for providers that treat a person's reply differently (Meta's human-agent tag).
pub const AGENT_REPLY_PREFIX: &str = "a-";

impl OutboundReply {
    /// Whether a person (an agent) wrote this reply, not the bot.
    pub fn is_from_agent(&self) -> bool {
        self.reply_id.starts_with(AGENT_REPLY_PREFIX)
    }

    /// Whether the bot wrote it on its own (RFC 3834's "automatically
    /// generated"): every reply but a person's.
    pub fn is_automated(&self) -> bool {
        !self.is_from_agent()
    }

    /// Whether this reply only acknowledges a tap on a button (a Telegram
    /// `callback_query`, by its reply token) and writes nothing: a tap that
    /// needed no answer, such as the same button pressed twice.
    pub fn acknowledges_only(&self) -> bool {
        self.text.trim().is_empty() && self.reply.reply_token.is_some()
    }

    /// A reply in the same conversation as `message`.
    pub fn to_message(
        message: &InboundMessage,
        text: impl Into<String>,
        reply_id: impl Into<String>,
    ) -> Self {
        Self {
            channel: message.channel.clone(),
            account_id: message.account_id.clone(),
            conversation_id: message.conversation_id.clone(),
            customer_id: message.customer_id.clone(),
            text: text.into(),
            reply: message.reply.clone(),
            reply_id: reply_id.into(),
            choices: Vec::new(),
        }
    }
}

/// Identifies a conversation across channels: `channel:account:conversation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationKey(pub String);

impl ConversationKey {
    pub fn new(channel: &str, account_id: &str, conversation_id: &str) -> Self {
        let account = key_segment(account_id);
        Self(format!("{channel}:{account}:{conversation_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn channel(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }
}

impl std::fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Customer tier, which decides how escalations are prioritised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    New,
    Regular,
    Vip,
}

impl std::str::FromStr for Tier {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "new" => Ok(Tier::New),
            "regular" => Ok(Tier::Regular),
            "vip" => Ok(Tier::Vip),
            _ => Err(()),
        }
    }
}

impl Tier {
    /// `new` < `regular` < `vip`: the higher of two sources wins.
    fn rank(self) -> u8 {
        match self {
            Tier::New => 0,
            Tier::Regular => 1,
            Tier::Vip => 2,
        }
    }

    /// The higher of two tiers.
    pub fn max(self, other: Tier) -> Tier {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::New => "new",
            Tier::Regular => "regular",
            Tier::Vip => "vip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// `channel:customer_id`.
    pub key: String,
    pub tier: Tier,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub message_count: u64,
}

/// A customer's answer to "was this helpful?" and the satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub conversation: ConversationKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful: Option<bool>,
    /// 1 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfaction: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The FAQ entry a "was this helpful?" vote is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faq_id: Option<String>,
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(conversation: &str, customer: &str, id: &str) -> InboundMessage {
        InboundMessage {
            channel: "webchat".into(),
            account_id: "default".into(),
            customer_id: customer.into(),
            customer_name: None,
            conversation_id: conversation.into(),
            provider_message_id: id.into(),
            sent_at_ms: 0,
            kind: MessageKind::Text,
            text: "hi".into(),
            attachments: Vec::new(),
            reply: ReplyContext::default(),
        }
    }

    #[test]
    fn a_colon_in_the_account_cannot_make_two_messages_share_a_key() {
        let with_account = |account: &str, conversation: &str, id: &str| InboundMessage {
            account_id: account.into(),
            ..message(conversation, "u", id)
        };
        let alice = with_account("shop:eu", "c1:z", "x1");
        let bob = with_account("shop", "eu:c1:z", "x2");
        let carol = with_account("shop", "other", "eu:x1");
        assert_ne!(alice.conversation_key(), bob.conversation_key());
        assert_ne!(alice.dedupe_key(), carol.dedupe_key());
        assert_eq!(alice.conversation_key().as_str(), "webchat:shop%3Aeu:c1:z");
        // The escape's own sign is escaped too, and plain ids are unchanged.
        assert_ne!(
            with_account("a%3Ab", "c", "m").conversation_key(),
            alice.conversation_key()
        );
        assert_eq!(bob.conversation_key().as_str(), "webchat:shop:eu:c1:z");
        assert_eq!(bob.conversation_key().channel(), "webchat");
    }

    #[test]
    fn ids_the_api_could_not_serve_are_named() {
        assert_eq!(message("c", "u", "m").unservable_id(), None);
        // "webchat:default:" is 16 bytes, "webchat:" 8
        let longest = "c".repeat(MAX_CONVERSATION_KEY_BYTES - 16);
        assert_eq!(message(&longest, "u", "m").unservable_id(), None);
        let longer = format!("{longest}c");
        assert_eq!(
            message(&longer, "u", "m").unservable_id(),
            Some("conversation id")
        );
        let customer = "u".repeat(MAX_CUSTOMER_KEY_BYTES - 7);
        assert_eq!(
            message("c", &customer, "m").unservable_id(),
            Some("customer id")
        );
        assert_eq!(
            message("c", "u\u{7}", "m").unservable_id(),
            Some("customer id")
        );
        let id = "m".repeat(MAX_MESSAGE_ID_BYTES + 1);
        assert_eq!(message("c", "u", &id).unservable_id(), Some("message id"));
    }
}
