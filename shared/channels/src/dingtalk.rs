//! DingTalk robots receiving messages over HTTP. The `timestamp` (ms) and
//! `sign` headers prove the request: `sign` is base64 HMAC-SHA256 of
//! `timestamp + "\n" + app_secret` ([`schemes::DINGTALK`]), at most an hour
//! old. It does not cover the body, so a signature is accepted with one body
//! only (ingress spends it as a nonce). The answer goes to the message's
//! `sessionWebhook` before it expires, always on DingTalk's own host: a path
//! from the body never sends our answers elsewhere.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{
    AttachmentKind, Clock, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret,
    SendError,
};

use crate::kit::buttons;
use crate::kit::json::{MediaFields, int, invalid, json_request, media, strings_named, text};
use crate::kit::sender::base_url_or;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Inbound, Outbound, Parsed, RequestExt, Sender,
    SettingsOf, Signature, TextUnit, Unusable, Verified, VerifyError, WebhookRequest, permanent,
    schemes,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "dingtalk",
    title: "DingTalk (钉钉) robot",
    function: Function::IngressIm,
    settings: crate::settings! {
        app_secret: verify => "open-dev.dingtalk.com → your app → 凭证与基础信息 → Client Secret (AppSecret); checks `sign`",
        api_base: optional => "where `sessionWebhook` answers go; default `https://oapi.dingtalk.com`",
        replay_window_secs: optional => "default 3600",
    },
    build: crate::kit::descriptor::build::<Dingtalk>,
    dev: |ctx| json!({ "app_secret": ctx.secret("app_secret"), "api_base": ctx.stand_in }),
};

/// UNCONFIRMED for robot answers: the text limit (custom robots: 20,000 bytes).
const MAX_TEXT_CHARS: usize = 5_000;
/// `errcode` in every answer; 130101: sending too fast.
const ERRORS: ApiErrors = ApiErrors {
    ok: Some("/errcode"),
    code: "/errcode",
    transient: "-1 130101",
    stale_token: "",
    retry_after: None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkConfig {
    pub app_secret: Secret,
    pub api_base: Option<String>,
    pub replay_window_secs: Option<i64>,
}

pub struct Dingtalk {
    signature: Signature,
    api_base: String,
    clock: std::sync::Arc<dyn Clock>,
    sender: Sender,
}

impl SettingsOf for Dingtalk {
    const NAME: &'static str = "dingtalk";
    type Settings = DingtalkConfig;

    fn new(config: DingtalkConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        let signature = Signature::shared(schemes::DINGTALK, "app_secret", &config.app_secret)?;
        let api_base = config.api_base.as_deref();
        Ok(Self {
            signature: signature.window(config.replay_window_secs)?,
            api_base: base_url_or("api_base", api_base, "https://oapi.dingtalk.com")?,
            clock: deps.clock.clone(),
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for Dingtalk {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn verify(&self, request: &WebhookRequest, now_ms: i64) -> Result<Verified, VerifyError> {
        let verified = self.signature.verify(request, &[], now_ms)?;
        // The signature covers no body: one body per signature.
        let sign = request.header("sign").unwrap_or_default();
        let nonce = Some(format!(
            "{}:{sign}",
            request.header("timestamp").unwrap_or_default()
        ));
        Ok(Verified { nonce, ..verified })
    }

    fn parse(&self, _request: &WebhookRequest, verified: &Verified) -> Parsed {
        let message: Value = serde_json::from_slice(&verified.body)?;
        let id = text(&message, "/msgId").ok_or_else(|| invalid("message has no msgId"))?;
        let conversation = text(&message, "/conversationId");
        let conversation = conversation.ok_or_else(|| invalid("message has no conversationId"))?;
        let sender = ["/senderStaffId", "/senderId"]
            .iter()
            .find_map(|p| text(&message, p));
        let sender = sender.ok_or_else(|| invalid("message has no sender"))?;
        // Our own robot's messages.
        let ours = text(&message, "/chatbotUserId");
        if ours.is_some() && text(&message, "/senderId") == ours {
            return Ok(Vec::new());
        }
        let content = &message["content"];
        let (words, attachment) = match text(&message, "/msgtype").as_deref() {
            Some("text") => (text(&message, "/text/content").unwrap_or_default(), None),
            Some("richText") => (strings_named(&content["richText"], "text").join(" "), None),
            Some("audio") => (text(content, "/recognition").unwrap_or_default(), None),
            Some(other) => {
                let kind = match other {
                    "picture" => AttachmentKind::Image,
                    "video" => AttachmentKind::Video,
                    _ => AttachmentKind::File,
                };
                let fields = MediaFields::keyed("/downloadCode", "/fileName");
                (String::new(), media(content, Some(kind), &fields))
            }
            None => return Err(invalid("message has no msgtype")),
        };
        let words = words.trim().to_owned();
        if words.is_empty() && attachment.is_none() {
            return Ok(Vec::new());
        }
        // The session webhook and its expiry travel as the reply token: `<ms>@<url>`.
        let expires = int(&message, "/sessionWebhookExpiredTime").unwrap_or_default();
        let session = text(&message, "/sessionWebhook").map(|url| format!("{expires}@{url}"));
        let account = ["/chatbotCorpId", "/robotCode", "/chatbotUserId"];
        Ok(vec![InboundMessage {
            channel: Self::NAME.into(),
            account_id: account
                .iter()
                .find_map(|p| text(&message, p))
                .unwrap_or_default(),
            customer_id: sender,
            customer_name: text(&message, "/senderNick"),
            conversation_id: conversation,
            provider_message_id: id.clone(),
            sent_at_ms: int(&message, "/createAt").unwrap_or_default(),
            kind: if words.is_empty() {
                MessageKind::Media
            } else {
                MessageKind::Text
            },
            text: words,
            attachments: attachment.into_iter().collect(),
            reply: ReplyContext {
                reply_token: session,
                message_id: Some(id),
                // In a group the answer @-mentions the customer.
                thread_id: text(&message, "/conversationType").filter(|t| t == "2"),
                ..ReplyContext::default()
            },
        }])
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let url = format!(
            "{}/robot/sendBySession?session=sample{now_ms}",
            self.api_base
        );
        json_request(
            &json!({ "conversationId": format!("cid{customer}"), "conversationType": "1",
            "msgId": format!("msg{now_ms}"), "senderNick": "Sam", "senderStaffId": customer,
            "senderId": format!("$:LWCP_v1:${customer}"), "chatbotUserId": "$:LWCP_v1:$bot",
            "chatbotCorpId": "dingsample", "robotCode": "dingsample", "createAt": now_ms,
            "sessionWebhook": url, "sessionWebhookExpiredTime": now_ms + 5_400_000,
            "msgtype": "text", "text": { "content": format!(" {text}") } }),
        )
    }
}

#[async_trait]
impl Outbound for Dingtalk {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let token = reply.reply.reply_token.as_deref().unwrap_or_default();
        let Some((expires, url)) = token.split_once('@') else {
            return Err(permanent(Self::NAME, "no sessionWebhook to answer on"));
        };
        if expires.parse::<i64>().unwrap_or_default() <= self.clock.now_ms() {
            return Err(permanent(Self::NAME, "the sessionWebhook has expired"));
        }
        // Only the path and query of the session webhook are taken from the message.
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]));
        let path = path.ok_or_else(|| permanent(Self::NAME, "sessionWebhook is not a URL"))?;
        let target = format!("{}{path}", self.api_base);
        let at = reply
            .reply
            .thread_id
            .as_ref()
            .map(|_| json!({ "atUserIds": [reply.customer_id] }));
        // With choices, the last part is an action card with buttons.
        let card_at = buttons::buttons_part(reply, MAX_TEXT_CHARS, TextUnit::Chars);
        let call = |index: usize, part: &str| {
            let body = match card_at == Some(index) {
                true => json!({ "msgtype": "actionCard",
                                "actionCard": buttons::dingtalk_action_card(part, &reply.choices) }),
                false => json!({ "msgtype": "text", "text": { "content": part }, "at": at }),
            };
            self.sender.post_json(&target, None, body)
        };
        self.sender
            .send_text(reply, MAX_TEXT_CHARS, TextUnit::Chars, call)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;

    fn channel() -> Dingtalk {
        let config = DingtalkConfig {
            app_secret: "dingtalk-test-secret".into(),
            api_base: None,
            replay_window_secs: None,
        };
        Dingtalk::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn request(timestamp: &str, sign: &str, body: &str) -> WebhookRequest {
        let headers = [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("timestamp".to_owned(), timestamp.to_owned()),
            ("sign".to_owned(), sign.to_owned()),
        ];
        build_request("POST", "/webhooks/dingtalk", &headers, body.to_owned()).unwrap()
    }

    /// No published known answer exists (the FAQ's `testappSecret` sample is
    /// another algorithm); computed independently: python3 -c "import hmac,
    /// hashlib, base64; print(base64.b64encode(hmac.new(b'dingtalk-test-secret',
    /// b'1700000000000\ndingtalk-test-secret', hashlib.sha256).digest()))".
    #[test]
    fn known_answer_window_and_one_body_per_signature() {
        let dingtalk = channel();
        let sign = "xYDcjSe9WYHLqFNFMNXsYIhToQ9FxCbCHala/Jiqq98=";
        let good = request("1700000000000", sign, "{}");
        let verified = dingtalk.verify(&good, 1_700_000_000_000).unwrap();
        assert_eq!(
            verified.nonce.as_deref(),
            Some(format!("1700000000000:{sign}").as_str())
        );
        let hour_later = 1_700_000_000_000 + 3_601_000;
        assert!(matches!(
            dingtalk.verify(&good, hour_later),
            Err(VerifyError::Stale { .. })
        ));
        let other_time = request("1700000000001", sign, "{}");
        assert!(matches!(
            dingtalk.verify(&other_time, 1_700_000_000_000),
            Err(VerifyError::BadSignature)
        ));
    }

    fn message(extra: Value) -> Vec<InboundMessage> {
        let mut body = json!({ "conversationId": "cid1", "conversationType": "1", "msgId": "m1",
            "senderStaffId": "staff1", "senderId": "$:LWCP_v1:$u", "chatbotUserId": "$:LWCP_v1:$bot",
            "createAt": 1, "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s",
            "sessionWebhookExpiredTime": 2 });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let request = json_request(&body);
        channel()
            .parse(&request, &Verified::assume(&request))
            .unwrap()
    }

    #[test]
    fn message_types() {
        let text = &message(json!({ "msgtype": "text", "text": { "content": " 几点开门" } }))[0];
        assert_eq!(
            (text.text.as_str(), text.reply.thread_id.as_deref()),
            ("几点开门", None)
        );
        assert_eq!(
            text.reply.reply_token.as_deref(),
            Some("2@https://oapi.dingtalk.com/robot/sendBySession?session=s")
        );
        let picture =
            &message(json!({ "msgtype": "picture", "content": { "downloadCode": "dc1" } }))[0];
        assert_eq!(picture.kind, MessageKind::Media);
        assert_eq!(picture.attachments[0].provider_id.as_deref(), Some("dc1"));
        let rich = json!({ "msgtype": "richText", "content": { "richText": [{ "text": "订单" }, { "downloadCode": "x", "type": "picture" }, { "text": "在哪" }] } });
        assert_eq!(message(rich)[0].text, "订单 在哪");
        let audio = json!({ "msgtype": "audio", "content": { "recognition": "退货", "downloadCode": "a" } });
        assert_eq!(message(audio)[0].text, "退货");
        let request = json_request(&json!({ "msgId": "m" }));
        assert!(
            channel()
                .parse(&request, &Verified::assume(&request))
                .is_err()
        );
    }

    #[tokio::test]
    async fn expired_sessions_are_permanent() {
        let reply = |token: &str| OutboundReply {
            channel: "dingtalk".into(),
            account_id: "a".into(),
            conversation_id: "cid1".into(),
            customer_id: "staff1".into(),
            text: "明天发货。".into(),
            reply: ReplyContext {
                reply_token: Some(token.into()),
                ..ReplyContext::default()
            },
            reply_id: "r1".into(),
            choices: Vec::new(),
        };
        let expired = channel()
            .send(&reply(
                "5@https://oapi.dingtalk.com/robot/sendBySession?s=1",
            ))
            .await;
        assert!(matches!(expired, Err(SendError::Permanent { .. })));
    }
}
