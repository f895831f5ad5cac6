//! Reading provider JSON by JSON pointer, and building sample requests.

use serde_json::Value;

use super::ParseError;
use super::request::{WebhookRequest, build_request};

/// The value at a JSON pointer. Our pointers never escape `~` or `/`, so
/// this walks the tokens as written: `Value::pointer` allocates a copy of
/// every token to unescape it, which showed in every parse.
pub fn at<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let tokens = pointer.strip_prefix('/')?;
    if tokens.contains('~') {
        return value.pointer(pointer);
    }
    tokens
        .split('/')
        .try_fold(value, |value, token| match value {
            Value::Object(map) => map.get(token),
            Value::Array(list) => list.get(array_index(token)?),
            _ => None,
        })
}

/// An array index as JSON pointers write it (no sign, no leading zero).
fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || !token.starts_with(['0', '+']);
    token.parse().ok().filter(|_| canonical)
}

/// The body as JSON when it may hold `word` as a string (literally, or
/// written with `\u` escapes), else `null`: a handshake is told from a
/// message without parsing every message twice.
pub fn parse_if_mentions(body: &[u8], word: &str) -> Value {
    match std::str::from_utf8(body) {
        Ok(text) if text.contains(word) || text.contains("\\u") => {
            serde_json::from_str(text).unwrap_or_default()
        }
        _ => Value::Null,
    }
}

/// The integer at `pointer`, if there is one.
pub fn int(value: &Value, pointer: &str) -> Option<i64> {
    at(value, pointer)?.as_i64()
}

/// The items of the array at `pointer`; none when there is no array.
pub fn items<'a>(value: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    at(value, pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A shared contact card as an attachment: a `tel:` URI and the name.
pub fn contact_card(phone: Option<String>, name: Option<String>) -> switchboard_domain::Attachment {
    switchboard_domain::Attachment {
        kind: switchboard_domain::AttachmentKind::Other,
        provider_id: None,
        url: phone.map(|phone| format!("tel:{phone}")),
        mime_type: Some("text/vcard".into()),
        name,
    }
}

/// The string at `pointer`, if there is one.
pub fn text(value: &Value, pointer: &str) -> Option<String> {
    at(value, pointer)?.as_str().map(str::to_owned)
}

/// The first string among the pointers that is not blank.
pub fn first_text(value: &Value, pointers: &[&str]) -> Option<String> {
    let present = |pointer: &&str| text(value, pointer).filter(|t| !t.trim().is_empty());
    pointers.iter().find_map(present)
}

/// Seconds with a fraction, as text (Slack's `ts`: "1355517523.000005"), in
/// unix milliseconds.
pub fn fractional_seconds_ms(text: &str) -> Option<i64> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// A [`ParseError`] in our own words (never quote the body).
pub fn invalid(detail: &str) -> ParseError {
    ParseError::Invalid(detail.to_owned())
}

/// A JSON POST as a provider sends it.
pub fn json_request(body: &Value) -> WebhookRequest {
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    build_request("POST", "/webhooks", &headers, body.to_string()).expect("a valid request")
}

/// Where a provider's media object keeps its fields (JSON pointers; `""`: none).
#[derive(Debug, Clone, Copy)]
pub struct MediaFields {
    pub id: &'static str,
    pub url: &'static str,
    pub mime: &'static str,
    pub name: &'static str,
}

impl MediaFields {
    /// A file known by its id (key) and name only.
    pub const fn keyed(id: &'static str, name: &'static str) -> Self {
        Self {
            id,
            url: "",
            mime: "",
            name,
        }
    }
}

/// The first `value` (a string, or a number as text) in an array of
/// objects, looking into each object's `nested` array where it has none.
pub fn first_value(items: &Value, nested: &str) -> Option<String> {
    items
        .as_array()?
        .iter()
        .find_map(|item| match &item["value"] {
            Value::String(value) => Some(value.clone()),
            Value::Number(value) => Some(value.to_string()),
            _ => first_value(&item[nested], nested),
        })
}

/// A message of a type the bot cannot read (a forwarded chat, a card),
/// named by its type so that the agents who get it know what to look for.
pub fn unreadable(message_type: &str) -> switchboard_domain::Attachment {
    switchboard_domain::Attachment {
        kind: switchboard_domain::AttachmentKind::Other,
        provider_id: None,
        url: None,
        mime_type: None,
        name: Some(message_type.to_owned()),
    }
}

/// An attachment from a provider's media object; without `kind`, the kind
/// follows the media type. `None` when it has neither an id nor a URL.
pub fn media(
    value: &Value,
    kind: Option<switchboard_domain::AttachmentKind>,
    fields: &MediaFields,
) -> Option<switchboard_domain::Attachment> {
    let field =
        |pointer: &str| text(value, pointer).filter(|v| !pointer.is_empty() && !v.is_empty());
    let (provider_id, url, mime_type) = (field(fields.id), field(fields.url), field(fields.mime));
    if provider_id.is_none() && url.is_none() {
        return None;
    }
    let kind = kind.unwrap_or_else(|| {
        mime_type.as_deref().map_or(
            switchboard_domain::AttachmentKind::File,
            super::kind_for_mime,
        )
    });
    Some(switchboard_domain::Attachment {
        kind,
        provider_id,
        url,
        mime_type,
        name: field(fields.name),
    })
}

/// The object without its `null` fields: optional API parameters are left out
/// rather than sent as `null`.
pub fn compact(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, field| !field.is_null());
    }
    value
}

/// Every attachment in the provider's list at `pointer`.
pub fn media_list(
    value: &Value,
    pointer: &str,
    kind: Option<switchboard_domain::AttachmentKind>,
    fields: &MediaFields,
) -> Vec<switchboard_domain::Attachment> {
    let list = at(value, pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    list.filter_map(|item| media(item, kind, fields)).collect()
}

/// Every string held by a field called `name`, anywhere in `value`, in
/// document order (rich-text trees: Feishu `post`), at most 32 levels down.
pub fn strings_named(value: &Value, name: &str) -> Vec<String> {
    fn walk(value: &Value, name: &str, depth: usize, out: &mut Vec<String>) {
        match value {
            _ if depth > 32 => {}
            Value::Array(items) => items
                .iter()
                .for_each(|item| walk(item, name, depth + 1, out)),
            Value::Object(fields) => {
                for (key, field) in fields {
                    match field {
                        Value::String(text) if key == name => out.push(text.clone()),
                        _ => walk(field, name, depth + 1, out),
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, name, 0, &mut out);
    out
}

/// A location as an attachment: an RFC 5870 `geo:` URI, and a place name.
pub fn location(
    latitude: &Value,
    longitude: &Value,
    name: Option<String>,
) -> switchboard_domain::Attachment {
    switchboard_domain::Attachment {
        kind: switchboard_domain::AttachmentKind::Location,
        provider_id: None,
        url: Some(format!("geo:{latitude},{longitude}")),
        mime_type: None,
        name,
    }
}

/// An id as the provider's API wants it: a JSON number when it is one
/// (Telegram's chat ids), else a string.
pub fn id_value(id: &str) -> Value {
    id.parse::<i64>()
        .map_or_else(|_| Value::from(id), Value::from)
}

/// The integer in an optional text (ids we stored as text).
pub fn parse_int(text: Option<&str>) -> Option<i64> {
    text?.trim().parse().ok()
}

/// A person as Telegram-style user objects name them: "First Last", else
/// the username.
pub fn person_name(user: Option<&Value>) -> Option<String> {
    let user = user?;
    let name = |key| user.get(key).and_then(Value::as_str);
    full_name(name("first_name"), name("last_name"), name("username"))
}

/// "First Last" from the parts that are not blank, else the username.
pub fn full_name(
    first: Option<&str>,
    last: Option<&str>,
    username: Option<&str>,
) -> Option<String> {
    let full: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let username = username.filter(|name| !name.is_empty());
    (!full.is_empty())
        .then(|| full.join(" "))
        .or(username.map(str::to_owned))
}
