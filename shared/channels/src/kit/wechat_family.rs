//! What WeChat Official Accounts and WeCom share: XML messages with the
//! same fields, the same encryption and signature of `<Encrypt>`, `errcode`
//! in every API answer, and access tokens that last two hours.

use switchboard_domain::{Attachment, AttachmentKind, InboundMessage, MessageKind, ReplyContext};

use super::crypto::{random_16, wechat_encrypt};
use super::json::{invalid, location};
use super::{ApiErrors, ParseError, SignError, Signature, WebhookRequest, xml};

/// `errcode` in every answer; 40001/40014/42001: the access token is invalid or expired.
pub const ERRORS: ApiErrors = ApiErrors {
    ok: Some("/errcode"),
    code: "/errcode",
    transient: "-1 45009",
    stale_token: "40001 40014 42001",
    retry_after: None,
};

/// Encrypts the body as the WeChat family does and signs it (`simulate`, tests).
pub fn seal(
    request: &mut WebhookRequest,
    key: &[u8; 32],
    receiver: &str,
    signature: &Signature,
    now_ms: i64,
    nonce: &str,
) -> Result<(), SignError> {
    let to = xml::fields(request.body())
        .ok()
        .and_then(|fields| xml::get(&fields, "ToUserName").map(str::to_owned))
        .unwrap_or_default();
    let encrypted = wechat_encrypt(key, &random_16(), request.body(), receiver);
    *request.body_mut() = xml::build(&[("ToUserName", &to), ("Encrypt", &encrypted)]).into();
    let uri = request.uri().to_string();
    let joiner = if uri.contains('?') { '&' } else { '?' };
    *request.uri_mut() = format!("{uri}{joiner}encrypt_type=aes")
        .parse()
        .map_err(|_| SignError::Unsupported("query"))?;
    signature.sign(request, &[("Encrypt", &encrypted)], now_ms, nonce)
}

/// The customer message in a WeChat-family XML message (Official Account,
/// WeCom), if it is one: events (subscribe, menu clicks, enter-session) and
/// our own account's messages yield nothing.
pub fn message(
    channel: &str,
    fields: &[(String, String)],
) -> Result<Option<InboundMessage>, ParseError> {
    let get = |name: &str| {
        xml::get(fields, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let kind = get("MsgType").ok_or_else(|| invalid("message has no MsgType"))?;
    let (to, from) = match (get("ToUserName"), get("FromUserName")) {
        (Some(to), Some(from)) => (to, from),
        _ => return Err(invalid("message lacks ToUserName or FromUserName")),
    };
    let created: i64 = get("CreateTime")
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    if kind == "event" || from == to {
        return Ok(None);
    }
    let media = |kind: AttachmentKind, url: Option<&str>| Attachment {
        kind,
        provider_id: get("MediaId").map(str::to_owned),
        url: url.map(str::to_owned),
        mime_type: None,
        name: get("Title").or(get("FileName")).map(str::to_owned),
    };
    let (text, attachment) = match kind {
        "text" => (get("Content").unwrap_or_default().to_owned(), None),
        "image" => (
            String::new(),
            Some(media(AttachmentKind::Image, get("PicUrl"))),
        ),
        // Voice recognition, where switched on, is what the customer said.
        "voice" => (
            get("Recognition").unwrap_or_default().to_owned(),
            Some(media(AttachmentKind::Audio, None)),
        ),
        "video" | "shortvideo" => (String::new(), Some(media(AttachmentKind::Video, None))),
        "file" => (String::new(), Some(media(AttachmentKind::File, None))),
        "link" => (
            format!(
                "{} {}",
                get("Title").unwrap_or_default(),
                get("Url").unwrap_or_default()
            )
            .trim()
            .to_owned(),
            None,
        ),
        "location" => {
            let (x, y) = (
                get("Location_X").unwrap_or("0"),
                get("Location_Y").unwrap_or("0"),
            );
            let at = location(&x.into(), &y.into(), get("Label").map(str::to_owned));
            // The coordinates arrive as text: no quotes in the `geo:` URI.
            let url = Some(format!("geo:{x},{y}"));
            (String::new(), Some(Attachment { url, ..at }))
        }
        _ => return Ok(None),
    };
    let id = get("MsgId")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{from}:{created}"));
    Ok(Some(InboundMessage {
        channel: channel.to_owned(),
        account_id: to.to_owned(),
        customer_id: from.to_owned(),
        customer_name: None,
        conversation_id: from.to_owned(),
        provider_message_id: id.clone(),
        sent_at_ms: created.saturating_mul(1000),
        kind: if text.is_empty() {
            MessageKind::Media
        } else {
            MessageKind::Text
        },
        text,
        attachments: attachment.into_iter().collect(),
        reply: ReplyContext {
            message_id: Some(id),
            ..ReplyContext::default()
        },
    }))
}
