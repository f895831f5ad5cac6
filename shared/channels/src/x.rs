//! X (Twitter) direct messages through the Account Activity API.
//!
//! X checks the webhook with a GET carrying `crc_token`, answered with
//! `{"response_token": "sha256=" + base64 HMAC-SHA256(consumer secret, token)}`
//! ([`schemes::X_CRC`]); it signs each POST's raw body the same way in
//! `x-twitter-webhooks-signature` ([`schemes::X`]). Since the CRC answer is
//! that very MAC, only plain tokens are answered (a JSON body never is one),
//! so the GET cannot be used to sign a forged event. A request carries the
//! events of one subscribed user (`for_user_id`): each `message_create` in
//! `direct_message_events` is queued on its id, unless we sent it; typing
//! and read events yield nothing. Replies go through
//! `POST /2/dm_conversations/with/{participant}/messages`, signed with
//! OAuth 1.0a for our account.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{InboundMessage, OutboundReply, ReplyContext, Secret, SendError};

use crate::kit::descriptor::build;
use crate::kit::json::{MediaFields, invalid, items, json_request, media, text};
use crate::kit::sender::base_url_or;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed,
    RequestExt, STATUS_ONLY, Sender, SettingsOf, Signature, TextUnit, Unusable, Verified,
    WebhookRequest, kind_for_name, reply, required, schemes, text_or_media, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "x",
    title: "X (direct messages)",
    function: Function::IngressSocial,
    settings: crate::settings! {
        consumer_secret: verify => "developer portal → your app → Keys and tokens → API Key Secret; answers the CRC and checks `x-twitter-webhooks-signature`",
        user_id: verify => "the numeric id of the account customers write to; its own messages are dropped",
        consumer_key: send("not-needed-to-check") => "the API Key beside the secret; signs replies (OAuth 1.0a)",
        access_token: send("not-needed-to-check") => "Keys and tokens → Access Token of that account (read, write and Direct Messages)",
        access_token_secret: send("not-needed-to-check") => "the Access Token Secret beside it",
        api_base: optional => "default `https://api.x.com`",
    },
    build: build::<X>,
    dev: |ctx| {
        json!({ "consumer_secret": ctx.secret("consumer_secret"), "user_id": "4337869213",
                "consumer_key": ctx.secret("consumer_key"), "access_token": format!("4337869213-{}", ctx.secret("access_token")),
                "access_token_secret": ctx.secret("access_token_secret"), "api_base": ctx.stand_in })
    },
};

/// A direct message takes at most 10,000 characters.
const MAX_TEXT_CHARS: usize = 10_000;
/// Longest CRC token answered.
const MAX_CRC_TOKEN: usize = 128;
/// Failures carry `{"title": ..., "detail": ..., "status": 429}`.
const ERRORS: ApiErrors = ApiErrors {
    code: "/title",
    ..STATUS_ONLY
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XConfig {
    pub consumer_secret: Secret,
    pub user_id: String,
    pub consumer_key: Secret,
    pub access_token: Secret,
    pub access_token_secret: Secret,
    pub api_base: Option<String>,
}

pub struct X {
    signature: Signature,
    consumer_secret: Secret,
    user_id: String,
    consumer_key: Secret,
    access_token: Secret,
    access_token_secret: Secret,
    api_base: String,
    sender: Sender,
}

impl SettingsOf for X {
    const NAME: &'static str = "x";
    type Settings = XConfig;

    fn new(config: XConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        for (name, value) in [
            ("consumer_key", &config.consumer_key),
            ("access_token", &config.access_token),
        ] {
            required(name, value)?;
        }
        required("access_token_secret", &config.access_token_secret)?;
        let user_id = config.user_id.trim();
        if user_id.is_empty() {
            return Err(unusable("user_id is empty"));
        }
        Ok(Self {
            signature: Signature::shared(schemes::X, "consumer_secret", &config.consumer_secret)?,
            consumer_secret: config.consumer_secret,
            user_id: user_id.to_owned(),
            consumer_key: config.consumer_key,
            access_token: config.access_token,
            access_token_secret: config.access_token_secret,
            api_base: base_url_or("api_base", config.api_base.as_deref(), "https://api.x.com")?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for X {
    fn handshake(&self, request: &WebhookRequest, _now_ms: i64) -> Handshake {
        if request.method() != http::Method::GET {
            return Ok(None);
        }
        let Some(token) = request.query_param("crc_token") else {
            return Ok(None);
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_=+/.".contains(c);
        if token.is_empty() || token.len() > MAX_CRC_TOKEN || !token.chars().all(plain) {
            return Ok(Some(reply::error(
                400,
                "bad_request",
                "crc_token is missing or not plain",
            )));
        }
        let answer = schemes::X_CRC.expected(&self.consumer_secret, request, &[])?;
        Ok(Some(reply::json(200, &json!({ "response_token": answer }))))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let body: Value = serde_json::from_slice(&verified.body)?;
        let for_user =
            text(&body, "/for_user_id").ok_or_else(|| invalid("body has no for_user_id"))?;
        let events = items(&body, "/direct_message_events");
        let created =
            events.filter(|event| text(event, "/type").as_deref() == Some("message_create"));
        let mut out = Vec::new();
        for event in created {
            let (Some(id), Some(sender)) =
                (text(event, "/id"), text(event, "/message_create/sender_id"))
            else {
                return Err(invalid("a message_create without id or sender_id"));
            };
            if sender == self.user_id || sender == for_user {
                continue;
            }
            let data = &event["message_create"]["message_data"];
            let attachments: Vec<_> = media(&data["attachment"]["media"], None, &MEDIA)
                .map(|found| switchboard_domain::Attachment {
                    kind: kind_for_name(&text(data, "/attachment/media/type").unwrap_or_default()),
                    ..found
                })
                .into_iter()
                .collect();
            let name = text(&body, &format!("/users/{sender}/name"));
            let words = text(data, "/text").unwrap_or_default().trim().to_owned();
            if words.is_empty() && attachments.is_empty() {
                continue;
            }
            let sent_at_ms = text(event, "/created_timestamp").and_then(|t| t.parse().ok());
            out.push(InboundMessage {
                channel: Self::NAME.into(),
                account_id: for_user.clone(),
                customer_id: sender.clone(),
                customer_name: name,
                conversation_id: sender,
                provider_message_id: id.clone(),
                sent_at_ms: sent_at_ms.unwrap_or_default(),
                kind: text_or_media(&words),
                text: words,
                attachments,
                reply: ReplyContext {
                    message_id: Some(id),
                    ..ReplyContext::default()
                },
            });
        }
        Ok(out)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        json_request(
            &json!({ "for_user_id": self.user_id, "direct_message_events": [{ "type": "message_create",
            "id": format!("{now_ms}{}", customer.len()), "created_timestamp": now_ms.to_string(),
            "message_create": { "target": { "recipient_id": self.user_id }, "sender_id": customer,
                "message_data": { "text": text, "entities": { "hashtags": [], "symbols": [], "user_mentions": [], "urls": [] } } } }],
            "users": { customer: { "id": customer, "name": "Sam", "screen_name": "sam" } } }),
        )
    }
}

#[async_trait]
impl Outbound for X {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let url = format!(
            "{}/2/dm_conversations/with/{}/messages",
            self.api_base, reply.conversation_id
        );
        let token = oauth1_request::Token::from_parts(
            self.consumer_key.expose(),
            self.consumer_secret.expose(),
            self.access_token.expose(),
            self.access_token_secret.expose(),
        );
        self.sender
            .send_text(reply, MAX_TEXT_CHARS, TextUnit::Chars, |_, part| {
                // A JSON body is not part of the OAuth 1.0a signature base string.
                let authorization =
                    oauth1_request::post(&url, &(), &token, oauth1_request::HMAC_SHA1);
                let call = self.sender.post_json(&url, None, json!({ "text": part }));
                call.header("authorization", authorization)
            })
            .await
    }
}

const MEDIA: MediaFields = MediaFields {
    id: "/id_str",
    url: "/media_url_https",
    mime: "",
    name: "",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;

    fn channel(api_base: Option<String>) -> X {
        let config = XConfig {
            consumer_secret: "x-test-consumer-secret".into(),
            user_id: "4337869213".into(),
            consumer_key: "x-test-consumer-key".into(),
            access_token: "4337869213-token".into(),
            access_token_secret: "token-secret".into(),
            api_base,
        };
        X::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn get(query: &str) -> WebhookRequest {
        build_request("GET", &format!("/webhooks/x?{query}"), &[], "").unwrap()
    }

    #[test]
    fn the_crc_is_answered_for_plain_tokens_only() {
        // python3: "sha256=" + base64(hmac_sha256(b"x-test-consumer-secret", b"NjRhZDlkZjQtM2YzZS00NGRl"))
        let answer = channel(None)
            .handshake(&get("crc_token=NjRhZDlkZjQtM2YzZS00NGRl"), 0)
            .unwrap()
            .unwrap();
        let body: Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(
            body["response_token"],
            "sha256=nK7oIy+F3nv1+bBOs0TG9HVkcj5VD7Gp9FKArsdq8Kk="
        );
        // A JSON body as the token would make the answer a valid signature for it.
        let forged = get("crc_token=%7B%22for_user_id%22%3A%221%22%7D");
        assert_eq!(
            channel(None)
                .handshake(&forged, 0)
                .unwrap()
                .unwrap()
                .status(),
            400
        );
        let post = build_request("POST", "/webhooks/x?crc_token=abc", &[], "{}").unwrap();
        assert!(channel(None).handshake(&post, 0).unwrap().is_none());
    }

    #[test]
    fn our_own_messages_and_other_events_are_dropped() {
        let x = channel(None);
        let ours = x.sample("4337869213", "our answer", 1);
        assert!(x.parse(&ours, &Verified::assume(&ours)).unwrap().is_empty());
        let typing = json_request(&json!({ "for_user_id": "4337869213",
            "direct_message_indicate_typing_events": [{ "created_timestamp": "1", "sender_id": "3001969357", "target": { "recipient_id": "4337869213" } }] }));
        assert!(
            x.parse(&typing, &Verified::assume(&typing))
                .unwrap()
                .is_empty()
        );
        let photo = json_request(
            &json!({ "for_user_id": "4337869213", "direct_message_events": [{ "type": "message_create", "id": "9",
            "created_timestamp": "1521585916713", "message_create": { "sender_id": "3001969357", "target": { "recipient_id": "4337869213" },
            "message_data": { "text": "", "attachment": { "type": "media", "media": { "id_str": "951", "type": "photo",
                "media_url_https": "https://ton.twitter.com/1.1/ton/data/dm/9/951/abc.jpg" } } } } }] }),
        );
        let message = &x.parse(&photo, &Verified::assume(&photo)).unwrap()[0];
        assert_eq!(
            message.attachments[0].kind,
            switchboard_domain::AttachmentKind::Image
        );
        assert_eq!(message.sent_at_ms, 1_521_585_916_713);
    }

    #[tokio::test]
    async fn replies_are_signed_with_oauth1() {
        let server = crate::kit::sender::tests_support::Recorder::start().await;
        let x = channel(Some(server.base.clone()));
        let request = x.sample("3001969357", "hi", 1);
        let message = &x.parse(&request, &Verified::assume(&request)).unwrap()[0];
        x.send(&OutboundReply::to_message(message, "你好", "r-1"))
            .await
            .unwrap();
        assert_eq!(server.bodies()[0]["text"], "你好");
        let authorization = oauth1_request::post(
            "https://h/x",
            &(),
            &oauth1_request::Token::from_parts("k", "s", "t", "ts"),
            oauth1_request::HMAC_SHA1,
        );
        assert!(authorization.starts_with("OAuth ") && authorization.contains("oauth_signature="));
    }
}
