//! What Meta's three messaging products share: the Graph API's error
//! answers, and the Send API's messaging events, which Messenger and
//! Instagram deliver in the same envelope (`entry[].messaging[]`, each event
//! with `sender`, `recipient`, `timestamp` and one of `message`,
//! `message_edit`, `delivery`, `read`, `reaction`, `postback`, ...).
//! WhatsApp's message kinds other than text are read here too.
//! Verification (`X-Hub-Signature-256`) is [`super::schemes::META`], the GET
//! handshake [`super::handshake::META_HUB`].

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchboard_domain::{
    Attachment, InboundMessage, MessageKind, OutboundReply, ReplyContext, SendError,
};

use super::buttons;
use super::json::{
    MediaFields, contact_card, first_text, int, invalid, items, location, media, text,
};
use super::sender::{ApiErrors, Sender, TextUnit};
use super::window::{Allowed, ReplyWindow};
use super::{ParseError, kind_for_mime, kind_for_name};

/// The Graph API version replies go through.
pub const GRAPH_API: &str = "https://graph.facebook.com/v21.0";

/// Graph API failures: `{"error": {"code": 4, ...}}`, mostly with HTTP 400.
/// Rate limits (4, 17, 32, 613, 80007) and temporary errors (1, 2) are worth
/// another attempt; anything else (190: the token is invalid, 10: no
/// permission, 551: the person is unavailable) is not.
pub const GRAPH_ERRORS: ApiErrors = ApiErrors {
    ok: Some("/error/code"),
    code: "/error/code",
    transient: "1 2 4 17 32 613 80007 130429 131048 131056",
    stale_token: "",
    retry_after: None,
};

/// Every messaging event of a Messenger or Instagram request, with the id
/// of the page or Instagram account it came to (`entry[].id`). `object` is
/// the envelope's expected `object` (`page`, `instagram`).
pub fn messaging_events<'a>(body: &'a Value, object: &str) -> Result<Vec<&'a Value>, ParseError> {
    let found = text(body, "/object").ok_or_else(|| invalid("body has no object"))?;
    if found != object {
        return Err(invalid("the webhook object is not this channel's"));
    }
    let entries = body.get("entry").and_then(Value::as_array);
    let entries = entries.ok_or_else(|| invalid("body has no entry list"))?;
    let events = entries
        .iter()
        .filter_map(|entry| entry.get("messaging")?.as_array());
    Ok(events.flatten().collect())
}

const ATTACHMENT: MediaFields = MediaFields {
    id: "/payload/attachment_id",
    url: "/payload/url",
    mime: "",
    name: "/payload/title",
};

/// The customer message in one messaging event: a message (text,
/// attachments, location), an edit, or an unsent (deleted) message. Echoes
/// of our own messages, receipts, reactions, postbacks, referrals and
/// read/typing events yield nothing.
pub fn normalise_messaging(channel: &str, event: &Value) -> Option<InboundMessage> {
    let customer = text(event, "/sender/id")?;
    let account = text(event, "/recipient/id")?;
    let sent_at_ms = int(event, "/timestamp").unwrap_or_default();
    let (kind, id, text_now, attachments, quoted) = if let Some(message) = event.get("message") {
        if message.get("is_echo") == Some(&Value::Bool(true)) {
            return None;
        }
        let mid = text(message, "/mid")?;
        if message.get("is_deleted") == Some(&Value::Bool(true)) {
            // Instagram reports an unsent message as the same `mid`, deleted.
            (
                MessageKind::Delete,
                format!("{mid}:delete"),
                String::new(),
                Vec::new(),
                Some(mid),
            )
        } else {
            let attachments = attachments(message);
            let body = text(message, "/text").unwrap_or_default();
            // A tap on a quick reply: its payload is the choice, the text only its title.
            let quick = text(message, "/quick_reply/payload").filter(|p| !p.trim().is_empty());
            let body = quick.unwrap_or(body);
            let kind = if body.trim().is_empty() {
                MessageKind::Media
            } else {
                MessageKind::Text
            };
            if kind == MessageKind::Media && attachments.is_empty() {
                return None;
            }
            (kind, mid.clone(), body, attachments, Some(mid))
        }
    } else if let Some(edit) = event.get("message_edit") {
        let mid = text(edit, "/mid")?;
        // `num_edit` counts the edits, so each edit has its own key.
        let key = format!("{mid}:edit:{}", int(edit, "/num_edit").unwrap_or_default());
        (
            MessageKind::Edit,
            key,
            text(edit, "/text").unwrap_or_default(),
            Vec::new(),
            Some(mid),
        )
    } else {
        return None;
    };
    Some(InboundMessage {
        channel: channel.into(),
        account_id: account,
        customer_id: customer.clone(),
        customer_name: None,
        conversation_id: customer,
        provider_message_id: id,
        sent_at_ms,
        kind,
        text: text_now.trim().to_owned(),
        attachments,
        reply: ReplyContext {
            message_id: quoted,
            customer_sent_at_ms: Some(sent_at_ms),
            ..ReplyContext::default()
        },
    })
}

fn attachments(message: &Value) -> Vec<switchboard_domain::Attachment> {
    let list = message.get("attachments").and_then(Value::as_array);
    let kinds = |kind: &str| match kind {
        "image" => Some(switchboard_domain::AttachmentKind::Image),
        "video" | "ig_reel" | "reel" => Some(switchboard_domain::AttachmentKind::Video),
        "audio" => Some(switchboard_domain::AttachmentKind::Audio),
        "file" => Some(switchboard_domain::AttachmentKind::File),
        "sticker" => Some(switchboard_domain::AttachmentKind::Sticker),
        _ => None,
    };
    let one = |item: &Value| {
        let kind = text(item, "/type").unwrap_or_default();
        if kind == "location" {
            let at = item.pointer("/payload/coordinates")?;
            return Some(location(&at["lat"], &at["long"], text(item, "/title")));
        }
        let kind = kinds(&kind).unwrap_or_else(|| kind_for_mime(""));
        media(item, Some(kind), &ATTACHMENT)
    };
    list.into_iter().flatten().filter_map(one).collect()
}

/// Sends a reply through the Send API (`POST {base}/me/messages`), in parts
/// of at most `max` units, within `window`: a late agent's reply goes out
/// with the window's tag, a late bot reply fails visibly.
pub async fn send_api(
    sender: &Sender,
    url: &str,
    token: &str,
    reply: &OutboundReply,
    (max, unit): (usize, TextUnit),
    window: Option<(&ReplyWindow, bool, i64)>,
) -> Result<(), SendError> {
    let allowed = match window {
        Some((window, tag_allowed, now_ms)) => {
            window.check(&reply.channel, reply, tag_allowed, now_ms)?
        }
        None => Allowed::Standard,
    };
    let (messaging_type, tag) = match allowed {
        Allowed::Standard => ("RESPONSE", None),
        Allowed::Tagged(tag) => ("MESSAGE_TAG", Some(tag)),
    };
    let recipient = &reply.conversation_id;
    // Quick replies go with the last part; the text limit is the same.
    let last = buttons::buttons_part(reply, max, unit);
    sender
        .send_text(reply, max, unit, |index, part| {
            let mut message = json!({ "text": part });
            if last == Some(index) {
                message["quick_replies"] = buttons::meta_quick_replies(&reply.choices).into();
            }
            let body = json!({ "recipient": { "id": recipient }, "messaging_type": messaging_type,
                               "tag": tag, "message": message });
            sender.post_json(url, Some(token), body)
        })
        .await
}

/// A WhatsApp notification down to its messages, read in one pass (a
/// `Value` tree, or objects read member by member, scanned its nested levels
/// over and over); each message stays unparsed until it is read.
#[derive(Deserialize)]
pub struct Notification<'a> {
    #[serde(borrow)]
    pub object: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub entry: Option<Vec<Entry<'a>>>,
}

#[derive(Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow, default)]
    pub changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
pub struct Change<'a> {
    #[serde(borrow)]
    pub field: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub value: Option<ChangeValue<'a>>,
}

#[derive(Deserialize, Default)]
pub struct ChangeValue<'a> {
    #[serde(borrow)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(borrow, default)]
    pub contacts: Vec<Contact<'a>>,
    #[serde(borrow, default)]
    pub messages: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
pub struct Metadata<'a> {
    #[serde(borrow)]
    pub phone_number_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Contact<'a> {
    #[serde(borrow)]
    pub wa_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub profile: Option<Profile<'a>>,
}

#[derive(Deserialize)]
pub struct Profile<'a> {
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
}

/// The text and attachments of a WhatsApp message that is not plain text
/// (rare enough to read as a `Value`); a reaction quotes the message it
/// reacts to. `None` for kinds a customer did not write.
pub fn whatsapp_not_text(
    kind: &str,
    message: &Value,
    quoted: &mut Option<String>,
) -> Option<(Option<String>, Vec<Attachment>)> {
    let mut attachments: Vec<Attachment> = Vec::new();
    let body = match kind {
        key @ ("image" | "video" | "audio" | "document" | "sticker") => {
            attachments.extend(media(
                &message[key],
                Some(kind_for_name(key)),
                &WHATSAPP_MEDIA,
            ));
            text(message, &format!("/{key}/caption"))
        }
        "location" => {
            let (at, names) = (&message["location"], ["/name", "/address"]);
            let name = first_text(at, &names);
            attachments.push(location(&at["latitude"], &at["longitude"], name));
            None
        }
        "contacts" => {
            let card =
                |c| contact_card(text(c, "/phones/0/phone"), text(c, "/name/formatted_name"));
            attachments.extend(items(message, "/contacts").map(card));
            None
        }
        "reaction" => {
            *quoted = text(message, "/reaction/message_id");
            Some(text(message, "/reaction/emoji").filter(|emoji| !emoji.is_empty())?)
        }
        // A tap on one of our buttons: its id is the choice.
        "interactive" => first_text(
            message,
            &["/interactive/button_reply/id", "/interactive/list_reply/id"],
        ),
        "button" => first_text(message, &["/button/text", "/button/payload"]),
        _ => return None,
    };
    Some((body, attachments))
}

const WHATSAPP_MEDIA: MediaFields = MediaFields {
    id: "/id",
    url: "",
    mime: "/mime_type",
    name: "/filename",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messaging_events_are_normalised_and_others_dropped() {
        let body = json!({ "object": "page", "entry": [
            { "id": "PAGE", "time": 1, "messaging": [
                { "sender": { "id": "U1" }, "recipient": { "id": "PAGE" }, "timestamp": 1_700_000_000_000_i64,
                  "message": { "mid": "m1", "text": "hello" } },
                { "sender": { "id": "PAGE" }, "recipient": { "id": "U1" }, "timestamp": 2,
                  "message": { "mid": "m2", "text": "ours", "is_echo": true } },
                { "sender": { "id": "U1" }, "recipient": { "id": "PAGE" }, "timestamp": 3,
                  "delivery": { "mids": ["m2"], "watermark": 3 } },
                { "sender": { "id": "U1" }, "recipient": { "id": "PAGE" }, "timestamp": 4,
                  "message": { "mid": "m3", "attachments": [
                      { "type": "image", "payload": { "url": "https://cdn.test/a.jpg" } },
                      { "type": "location", "title": "Shop", "payload": { "coordinates": { "lat": 1.5, "long": 2.5 } } } ] } },
                { "sender": { "id": "U1" }, "recipient": { "id": "PAGE" }, "timestamp": 5,
                  "message_edit": { "mid": "m1", "text": "hello again", "num_edit": 1 } },
                { "sender": { "id": "U1" }, "recipient": { "id": "PAGE" }, "timestamp": 6,
                  "message": { "mid": "m1", "is_deleted": true } } ] } ] });
        let events = messaging_events(&body, "page").unwrap();
        let messages: Vec<_> = events
            .iter()
            .filter_map(|e| normalise_messaging("messenger", e))
            .collect();
        let summary: Vec<_> = messages
            .iter()
            .map(|m| (m.kind, m.provider_message_id.as_str(), m.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (MessageKind::Text, "m1", "hello"),
                (MessageKind::Media, "m3", ""),
                (MessageKind::Edit, "m1:edit:1", "hello again"),
                (MessageKind::Delete, "m1:delete", ""),
            ]
        );
        assert_eq!(
            messages[0].reply.customer_sent_at_ms,
            Some(1_700_000_000_000)
        );
        assert_eq!(
            messages[1].attachments[1].url.as_deref(),
            Some("geo:1.5,2.5")
        );
        assert!(messaging_events(&body, "instagram").is_err());
        assert!(messaging_events(&json!({ "object": "page" }), "page").is_err());
    }
}
