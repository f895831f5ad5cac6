//! The development provider's recorded replies, read back by `simulate`:
//! which of them answer the message it posted, and the text the customer
//! would read in each.

use serde_json::Value;
use switchboard_domain::InboundMessage;

/// Who a reply to one message is addressed to: the customer, the chat, or the
/// reply token the message carried. Providers name the recipient in the body
/// (`chat_id`, `to`, `recipient.id`, `replyToken`) or in the URL (Discord,
/// X, DingTalk's session webhook), so both are looked at.
pub struct Addressee {
    channel: String,
    ids: Vec<String>,
}

impl Addressee {
    pub fn of(message: &InboundMessage) -> Self {
        let mut ids = vec![message.customer_id.clone(), message.conversation_id.clone()];
        if let Some(token) = &message.reply.reply_token {
            ids.push(token.clone());
            // A session webhook (`<ms>@<url>`): its last segment names the session.
            let last = token.rsplit(['/', '?', '&', '=']).find(|s| !s.is_empty());
            ids.extend(last.map(str::to_owned));
        }
        ids.retain(|id| !id.is_empty());
        Self {
            channel: message.channel.clone(),
            ids,
        }
    }

    /// Whether the recorded reply (`{"channel", "path", "payload"}`) is
    /// addressed to this conversation.
    pub fn is_addressed(&self, record: &Value) -> bool {
        switchboard_app::dev_reply_addressed_to(record, &self.channel, &self.ids)
    }
}

/// The text of a recorded reply, whatever the provider's body shape: a text
/// message, a card or a message with buttons.
pub fn reply_text(payload: &Value) -> String {
    // Feishu's `content` is JSON in a string: a text, or a card whose `div` holds the text.
    if payload["msg_type"].is_string() {
        let content = payload["content"].as_str().unwrap_or_default();
        let content: Value = serde_json::from_str(content).unwrap_or_default();
        let elements = content["elements"].as_array().into_iter().flatten();
        let mut texts = content["text"].as_str().into_iter().chain(
            elements
                .filter(|element| element["tag"] == "div")
                .filter_map(|element| element.pointer("/text/content")?.as_str()),
        );
        return texts.next().unwrap_or_default().to_owned();
    }
    // LINE sends up to five bubbles a call.
    if let Some(messages) = payload["messages"].as_array() {
        let texts: Vec<&str> = messages.iter().filter_map(|m| m["text"].as_str()).collect();
        return texts.join("\n");
    }
    let pointers = [
        "/text",                  // Telegram, Slack, Viber, X, webchat
        "/text/content",          // WeChat, WeCom, DingTalk text
        "/actionCard/text",       // DingTalk with buttons
        "/text/body",             // WhatsApp text
        "/interactive/body/text", // WhatsApp with buttons or a list
        "/message/text",          // Messenger, Instagram
        "/content",               // Discord
        "/Body",                  // Twilio (a form)
    ];
    pointers
        .iter()
        .find_map(|pointer| payload.pointer(pointer).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_channels::kit::{Function, buttons};
    use switchboard_channels::registry::CHANNELS;
    use switchboard_domain::{Choice, MessageKind, ReplyContext};

    use super::*;

    const PART: &str = "We open at 9.";

    fn choices(n: usize) -> Vec<Choice> {
        let labels = ["Yes", "No", "Maybe", "Later"];
        labels[..n].iter().map(|l| Choice::new(*l, *l)).collect()
    }

    /// One reply per channel (and per shape where a channel has several), as
    /// the senders in `switchboard_channels` build them.
    fn payloads() -> Vec<(&'static str, Value)> {
        let two = choices(2);
        let feishu = |choices| {
            let (kind, content) = buttons::feishu_content(PART, choices);
            json!({ "receive_id": "oc_1", "msg_type": kind, "content": content, "uuid": "u" })
        };
        let meta = json!({ "recipient": { "id": "10001" }, "messaging_type": "RESPONSE",
            "message": { "text": PART, "quick_replies": buttons::meta_quick_replies(&two) } });
        vec![
            (
                "telegram",
                json!({ "chat_id": 10001, "text": PART, "reply_markup": buttons::telegram_keyboard(&two) }),
            ),
            (
                "slack",
                json!({ "channel": "D1", "text": PART, "blocks": buttons::slack_blocks(PART, &two) }),
            ),
            (
                "webchat",
                json!({ "reply_id": "r", "account_id": "a", "conversation_id": "chat-1", "customer_id": "1", "text": PART }),
            ),
            (
                "line",
                json!({ "replyToken": "t", "messages": [{ "type": "text", "text": PART,
                "quickReply": { "items": buttons::line_quick_replies(&two) } }] }),
            ),
            (
                "wechat",
                json!({ "touser": "o1", "msgtype": "text", "text": { "content": PART } }),
            ),
            (
                "wecom",
                json!({ "touser": "u1", "msgtype": "text", "agentid": 1, "text": { "content": PART } }),
            ),
            ("feishu", feishu(None)),
            ("feishu", feishu(Some(&two))),
            (
                "dingtalk",
                json!({ "msgtype": "text", "text": { "content": PART } }),
            ),
            (
                "dingtalk",
                json!({ "msgtype": "actionCard", "actionCard": buttons::dingtalk_action_card(PART, &two) }),
            ),
            ("whatsapp", buttons::whatsapp_message("10001", PART, None)),
            (
                "whatsapp",
                buttons::whatsapp_message("10001", PART, Some(&two)),
            ),
            (
                "whatsapp",
                buttons::whatsapp_message("10001", PART, Some(&choices(4))),
            ),
            ("messenger", meta.clone()),
            ("instagram", meta),
            (
                "viber",
                json!({ "receiver": "v1", "min_api_version": 1, "sender": { "name": "Shop" },
                "type": "text", "text": PART, "keyboard": buttons::viber_keyboard(&two) }),
            ),
            (
                "discord",
                json!({ "content": PART, "allowed_mentions": { "users": [] } }),
            ),
            ("x", json!({ "text": PART })),
            (
                "twilio",
                json!({ "To": "+15550001", "From": "+15550002", "Body": PART }),
            ),
        ]
    }

    #[test]
    fn every_chat_channel_s_reply_reads_as_its_text() {
        let payloads = payloads();
        for spec in CHANNELS
            .iter()
            .filter(|s| s.function != Function::IngressEmail)
        {
            let shapes: Vec<_> = payloads.iter().filter(|(c, _)| *c == spec.name).collect();
            assert!(!shapes.is_empty(), "no reply payload for {}", spec.name);
            for (channel, payload) in shapes {
                assert_eq!(reply_text(payload), PART, "{channel}: {payload}");
            }
        }
    }

    fn message(channel: &str, reply_token: Option<&str>) -> InboundMessage {
        InboundMessage {
            channel: channel.into(),
            account_id: "bot".into(),
            customer_id: "10001".into(),
            customer_name: None,
            conversation_id: "chat10001".into(),
            provider_message_id: "m1".into(),
            sent_at_ms: 0,
            kind: MessageKind::Text,
            text: "Hi".into(),
            attachments: Vec::new(),
            reply: ReplyContext {
                reply_token: reply_token.map(str::to_owned),
                ..ReplyContext::default()
            },
        }
    }

    #[test]
    fn only_replies_to_the_simulated_conversation_are_its_answer() {
        let record = |channel: &str, path: &str, payload: Value| json!({ "channel": channel, "path": path, "payload": payload });
        let telegram = Addressee::of(&message("telegram", None));
        let ours = json!({ "chat_id": 10001, "text": "Hello" });
        assert!(telegram.is_addressed(&record("telegram", "/bot1:a/sendMessage", ours.clone())));
        // A timer's reassurance for another customer, or the same id on another channel.
        let other = json!({ "chat_id": 20002, "text": "about 235 minutes" });
        assert!(!telegram.is_addressed(&record("telegram", "/bot1:a/sendMessage", other)));
        assert!(!telegram.is_addressed(&record("viber", "/send_message", ours)));
        // Recipients named in the URL: X, Discord's interaction token, DingTalk's session.
        let x = Addressee::of(&message("x", None));
        assert!(x.is_addressed(&record(
            "x",
            "/2/dm_conversations/with/chat10001/messages",
            json!({ "text": "a" })
        )));
        assert!(!x.is_addressed(&record(
            "x",
            "/2/dm_conversations/with/chat20002/messages",
            json!({ "text": "a" })
        )));
        let discord = Addressee::of(&message("discord", Some("aW50ZXJ1")));
        assert!(discord.is_addressed(&record(
            "discord",
            "/webhooks/app/aW50ZXJ1",
            json!({ "content": "a" })
        )));
        assert!(!discord.is_addressed(&record(
            "discord",
            "/webhooks/app/aW50ZXJ2",
            json!({ "content": "a" })
        )));
        let token =
            "1700@http://127.0.0.1:1/dev/provider/dingtalk/robot/sendBySession?session=sample17";
        let dingtalk = Addressee::of(&message("dingtalk", Some(token)));
        let path =
            |session| format!("/dev/provider/dingtalk/robot/sendBySession?session={session}");
        assert!(dingtalk.is_addressed(&record("dingtalk", &path("sample17"), json!({}))));
        assert!(!dingtalk.is_addressed(&record("dingtalk", &path("sample18"), json!({}))));
        // LINE answers with the reply token in the body.
        let line = Addressee::of(&message("line", Some("rt1")));
        assert!(line.is_addressed(&record(
            "line",
            "/v2/bot/message/reply",
            json!({ "replyToken": "rt1" })
        )));
    }
}
