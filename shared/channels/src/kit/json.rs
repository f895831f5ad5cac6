//! Reading provider JSON by JSON pointer, and building sample requests.

use serde_json::Value;

use super::ParseError;
use super::request::{WebhookRequest, build_request};

/// The integer at `pointer`, if there is one.
pub fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer)?.as_i64()
}

/// The string at `pointer`, if there is one.
pub fn text(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer)?.as_str().map(str::to_owned)
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
