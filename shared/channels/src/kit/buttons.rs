//! A reply's choices ([`Choice`]) as each provider's buttons, and a tap on
//! one coming back as the customer's message carrying the choice's value.
//!
//! * Telegram: an inline keyboard; a tap is a `callback_query` update with
//!   the value as `data` (1-64 bytes), to be answered with `answerCallbackQuery`.
//! * Slack: the text as a `section` block and an `actions` block of buttons
//!   (at most 25, text at most 75 characters); a tap is a signed
//!   `block_actions` interaction (form field `payload`).
//! * WhatsApp: interactive reply buttons (at most 3, titles at most 20
//!   characters, body at most 1024), more choices as an interactive list (at
//!   most 10 rows, titles at most 24); a tap is an `interactive` message with
//!   `button_reply` / `list_reply` carrying the id.
//! * Viber: a `keyboard` on `send_message`; a button's `ActionBody` comes back
//!   as a plain text message.
//! * LINE: quick replies (at most 13, labels at most 20) with a message
//!   action sending the value as text.
//! * Messenger and Instagram: quick replies (at most 13, titles at most 20
//!   characters); a tap is a message whose `quick_reply.payload` is the value.
//! * Feishu / Lark: an interactive card, the text in a `div` and a row of
//!   buttons whose `value` carries the choice; a tap is a `card.action.trigger`
//!   callback, signed and encrypted like the events (same request URL).
//! * DingTalk: an `actionCard` whose buttons are `dtmd://dingtalkclient/sendMessage`
//!   links: a tap makes the customer's client send the value as a text message.

use serde_json::{Value, json};
use switchboard_domain::{
    Choice, InboundMessage, Language, MessageKind, OutboundReply, ReplyContext,
};

use super::json::{fractional_seconds_ms, int, invalid, person_name, text};
use super::sender::{Sender, TextUnit, split_text};
use super::{ParseError, Parsed};

/// Channels whose replies show choices as buttons; elsewhere the text asks
/// for a number.
const WITH_BUTTONS: [&str; 9] = [
    "dingtalk",
    "feishu",
    "instagram",
    "line",
    "messenger",
    "slack",
    "telegram",
    "viber",
    "whatsapp",
];

pub fn has_buttons(channel: &str) -> bool {
    WITH_BUTTONS.contains(&channel)
}

/// How to split a reply's text (at most `max` characters a part, or
/// `with_buttons` where the buttons' part is shorter) and which part carries
/// the buttons: the last, or none without choices.
pub fn split(reply: &OutboundReply, max: usize, with_buttons: usize) -> (usize, Option<usize>) {
    match buttons_part(reply, with_buttons, TextUnit::Chars) {
        None => (max, None),
        at => (with_buttons, at),
    }
}

/// Which part of a reply split at `max` units carries its buttons: the
/// last, or none without choices.
pub fn buttons_part(reply: &OutboundReply, max: usize, unit: TextUnit) -> Option<usize> {
    let parts = || split_text(&reply.text, max, unit).len();
    (!reply.choices.is_empty()).then(|| parts().saturating_sub(1))
}

/// `label` cut to at most `max` characters, an ellipsis marking a cut.
pub fn fit(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_owned();
    }
    let kept: String = label.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// `value` cut to at most `max` bytes on a character boundary.
fn fit_bytes(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Telegram's `reply_markup`: one row of callback buttons.
pub fn telegram_keyboard(choices: &[Choice]) -> Value {
    let button = |c: &Choice| json!({ "text": c.label, "callback_data": fit_bytes(&c.value, 64) });
    json!({ "inline_keyboard": [choices.iter().map(button).collect::<Vec<_>>()] })
}

/// A `callback_query` update (a tap on an inline button) as the customer's
/// message: the button's data is the text, the query id the reply token
/// (the reply answers the query). `None` for updates of another kind.
pub fn telegram_callback(update: &Value, bot_id: &str) -> Option<Parsed> {
    let query = update.get("callback_query")?;
    let message = query.get("message");
    let chat = message.and_then(|m| int(m, "/chat/id"));
    let (Some(id), Some(customer)) = (text(query, "/id"), int(query, "/from/id")) else {
        return Some(Err(invalid("callback_query without id or sender")));
    };
    // A button under a message sent in inline mode is in no chat with us.
    let data = text(query, "/data").unwrap_or_default();
    let Some(chat) = chat.filter(|_| !data.trim().is_empty()) else {
        return Some(Ok(Vec::new()));
    };
    let message = message.unwrap_or(&Value::Null);
    let field = |at| int(message, at).map(|n| n.to_string());
    let topic = message.get("is_topic_message") == Some(&Value::Bool(true));
    Some(Ok(vec![InboundMessage {
        channel: "telegram".into(),
        account_id: bot_id.to_owned(),
        customer_id: customer.to_string(),
        customer_name: person_name(query.get("from")),
        conversation_id: chat.to_string(),
        provider_message_id: int(update, "/update_id")?.to_string(),
        // A query carries no time of its own, and the message's `date` is
        // when the buttons were sent, maybe hours before the tap: 0 lets the
        // worker date the tap when it arrives.
        sent_at_ms: 0,
        kind: MessageKind::Choice,
        text: data,
        attachments: Vec::new(),
        reply: ReplyContext {
            reply_token: Some(id),
            thread_id: field("/message_thread_id").filter(|_| topic),
            message_id: field("/message_id"),
            ..ReplyContext::default()
        },
    }]))
}

/// Stops the spinner of the button a Telegram reply answers (a reply to a
/// `callback_query` carries its id as the reply token). A query answered
/// late is refused ("query is too old"), which must not hold the reply back,
/// so the outcome is only logged (by the sender).
pub async fn telegram_answer_query(sender: &Sender, bot_url: &str, reply: &OutboundReply) {
    if let Some(query) = &reply.reply.reply_token {
        let url = format!("{bot_url}/answerCallbackQuery");
        let body = json!({ "callback_query_id": query });
        let _ = sender
            .call(&reply.reply_id, sender.post_json(&url, None, body))
            .await;
    }
}

/// `value` with `field` set to `extra`, when there is one.
pub fn with(mut value: Value, field: &str, extra: Option<Value>) -> Value {
    if let Some(extra) = extra {
        value[field] = extra;
    }
    value
}

/// Slack section text takes at most 3000 characters: a reply with buttons
/// is split there, the buttons under its last part.
pub const SLACK_SECTION_CHARS: usize = 3000;

/// Slack's `blocks` for the last part of a reply with choices.
pub fn slack_blocks(part: &str, choices: &[Choice]) -> Value {
    let button = |(i, c): (usize, &Choice)| {
        json!({ "type": "button", "action_id": format!("choice-{i}"), "value": c.value,
                "text": { "type": "plain_text", "text": fit(&c.label, 75) } })
    };
    let buttons: Vec<Value> = choices.iter().take(25).enumerate().map(button).collect();
    json!([{ "type": "section", "text": { "type": "mrkdwn", "text": part } },
           { "type": "actions", "block_id": "choices", "elements": buttons }])
}

/// A signed Slack form: a tap on one of our buttons (`payload` of type
/// `block_actions`) is the customer's message; slash commands and other
/// interactions are not customer messages.
pub fn slack_form(fields: &[(String, String)]) -> Parsed {
    let field = |name: &str| fields.iter().find(|(key, _)| key == name);
    if field("command").is_some() {
        return Ok(Vec::new());
    }
    let Some((_, payload)) = field("payload") else {
        return Err(invalid("a form that is not a slash command or interaction"));
    };
    let payload: Value = serde_json::from_str(payload)?;
    if text(&payload, "/type").as_deref() != Some("block_actions") {
        return Ok(Vec::new());
    }
    Ok(slack_action(&payload)?.into_iter().collect())
}

fn slack_action(payload: &Value) -> Result<Option<InboundMessage>, ParseError> {
    let ours = |a: &&Value| text(a, "/action_id").is_some_and(|id| id.starts_with("choice-"));
    let actions = payload.get("actions").and_then(Value::as_array);
    let Some(action) = actions.and_then(|list| list.iter().find(ours)) else {
        return Ok(None);
    };
    let channel = text(payload, "/channel/id").or_else(|| text(payload, "/container/channel_id"));
    let message_ts =
        text(payload, "/container/message_ts").or_else(|| text(payload, "/message/ts"));
    let team = text(payload, "/team/id").or_else(|| text(payload, "/user/team_id"));
    let (Some(channel), Some(message_ts), Some(team), Some(user), Some(action_ts)) = (
        channel,
        message_ts,
        team,
        text(payload, "/user/id"),
        text(action, "/action_ts"),
    ) else {
        return Err(invalid(
            "block_actions without channel, message, team, user or time",
        ));
    };
    let value = text(action, "/value").unwrap_or_default();
    if value.trim().is_empty() {
        return Ok(None);
    }
    let thread =
        text(payload, "/message/thread_ts").or_else(|| text(payload, "/container/thread_ts"));
    Ok(Some(InboundMessage {
        channel: "slack".into(),
        account_id: team,
        customer_id: user,
        customer_name: text(payload, "/user/name").or_else(|| text(payload, "/user/username")),
        conversation_id: channel.clone(),
        // One tap is one action at one time on one message.
        provider_message_id: format!("{channel}:{message_ts}:action:{action_ts}"),
        sent_at_ms: fractional_seconds_ms(&action_ts).unwrap_or_default(),
        kind: MessageKind::Choice,
        text: value,
        attachments: Vec::new(),
        reply: ReplyContext {
            thread_id: thread,
            message_id: Some(message_ts),
            ..ReplyContext::default()
        },
    }))
}

/// An interactive message's body takes at most 1024 characters: a reply
/// with choices is split there, the buttons under its last part.
pub const WHATSAPP_BODY_CHARS: usize = 1024;

/// WhatsApp's `interactive` object for the last part of a reply with
/// choices: reply buttons for up to 3, a list for up to 10.
pub fn whatsapp_interactive(part: &str, choices: &[Choice]) -> Value {
    if choices.len() <= 3 {
        let button = |c: &Choice| json!({ "type": "reply", "reply": { "id": c.value, "title": fit(&c.label, 20) } });
        let buttons: Vec<Value> = choices.iter().map(button).collect();
        return json!({ "type": "button", "body": { "text": part }, "action": { "buttons": buttons } });
    }
    let row = |c: &Choice| json!({ "id": c.value, "title": fit(&c.label, 24) });
    let rows: Vec<Value> = choices.iter().take(10).map(row).collect();
    let open = match Language::detect(part) {
        Language::En => "Choose",
        Language::Zh => "选择",
        Language::Ja => "選択",
        Language::Es => "Elegir",
        Language::Fr => "Choisir",
        Language::De => "Auswählen",
    };
    json!({ "type": "list", "body": { "text": part },
            "action": { "button": open, "sections": [{ "rows": rows }] } })
}

/// A WhatsApp message to `to`: `part` as text, or as the body of an
/// interactive message with `choices`.
pub fn whatsapp_message(to: &str, part: &str, choices: Option<&[Choice]>) -> Value {
    let (kind, content) = match choices {
        Some(choices) => ("interactive", whatsapp_interactive(part, choices)),
        None => ("text", json!({ "body": part, "preview_url": false })),
    };
    let mut message = json!({ "messaging_product": "whatsapp", "recipient_type": "individual",
                              "to": to, "type": kind });
    message[kind] = content;
    message
}

/// Viber's `keyboard`: up to three buttons a row (six columns a row).
pub fn viber_keyboard(choices: &[Choice]) -> Value {
    let columns = 6 / choices.len().clamp(1, 3);
    let button = |c: &Choice| {
        json!({ "Columns": columns, "Rows": 1, "ActionType": "reply",
                "ActionBody": c.value, "Text": c.label })
    };
    let buttons: Vec<Value> = choices.iter().map(button).collect();
    json!({ "Type": "keyboard", "DefaultHeight": false, "Buttons": buttons })
}

/// LINE's `quickReply` items: a tap sends the value as the customer's text.
pub fn line_quick_replies(choices: &[Choice]) -> Vec<Value> {
    let item = |c: &Choice| {
        json!({ "type": "action",
                "action": { "type": "message", "label": fit(&c.label, 20), "text": c.value } })
    };
    choices.iter().take(13).map(item).collect()
}

/// Messenger's and Instagram's `quick_replies`: a tap sends the title as the
/// text and the value as `quick_reply.payload` (at most 1000 characters).
pub fn meta_quick_replies(choices: &[Choice]) -> Vec<Value> {
    let item = |c: &Choice| {
        json!({ "content_type": "text", "title": fit(&c.label, 20),
                "payload": fit_bytes(&c.value, 1000) })
    };
    choices.iter().take(13).map(item).collect()
}

/// A Feishu card for the last part of a reply with choices: the text, then
/// one row of buttons (the card body is limited to 30 KB, so a reply with
/// choices is split at [`FEISHU_CARD_CHARS`]).
pub fn feishu_card(part: &str, choices: &[Choice]) -> Value {
    let button = |c: &Choice| {
        json!({ "tag": "button", "type": "default", "value": { "choice": c.value },
                "text": { "tag": "plain_text", "content": fit(&c.label, 40) } })
    };
    let buttons: Vec<Value> = choices.iter().take(20).map(button).collect();
    json!({ "config": { "wide_screen_mode": true },
            "elements": [{ "tag": "div", "text": { "tag": "plain_text", "content": part } },
                         { "tag": "action", "actions": buttons }] })
}

/// Characters of text in a Feishu card with buttons.
pub const FEISHU_CARD_CHARS: usize = 8_000;

/// How a Feishu reply is split: parts of at most `max_bytes`, or with
/// choices, of [`FEISHU_CARD_CHARS`], the last one a card.
pub fn feishu_split(reply: &OutboundReply, max_bytes: usize) -> ((usize, TextUnit), Option<usize>) {
    match split(reply, max_bytes, FEISHU_CARD_CHARS) {
        (_, None) => ((max_bytes, TextUnit::Bytes), None),
        (max, card_at) => ((max, TextUnit::Chars), card_at),
    }
}

/// A Feishu message's `msg_type` and `content` (a JSON string): `part` as
/// text, or as a card with `choices`.
pub fn feishu_content(part: &str, choices: Option<&[Choice]>) -> (&'static str, String) {
    match choices {
        Some(choices) => ("interactive", feishu_card(part, choices).to_string()),
        None => ("text", json!({ "text": part }).to_string()),
    }
}

/// A `card.action.trigger` callback (a tap on one of our card's buttons) as
/// the customer's message; `None` for events of another type, no message for
/// a tap on something that is not one of our choices.
pub fn feishu_card_action(event: &Value) -> Option<Parsed> {
    (text(event, "/header/event_type")?.as_str() == "card.action.trigger").then_some(())?;
    let body = &event["event"];
    let value = text(body, "/action/value/choice").filter(|v| !v.trim().is_empty());
    let (Some(customer), Some(chat), Some(message_id)) = (
        text(body, "/operator/open_id"),
        text(body, "/context/open_chat_id"),
        text(body, "/context/open_message_id"),
    ) else {
        return Some(Err(invalid(
            "card.action.trigger without operator, chat or message",
        )));
    };
    let Some(value) = value else {
        return Some(Ok(Vec::new()));
    };
    let event_id = text(event, "/header/event_id");
    let time = text(event, "/header/create_time").and_then(|t| t.parse().ok());
    Some(Ok(vec![InboundMessage {
        channel: "feishu".into(),
        account_id: text(event, "/header/app_id").unwrap_or_default(),
        customer_id: customer,
        customer_name: None,
        conversation_id: chat,
        // One callback per tap; without an event id, the card and the time.
        provider_message_id: event_id
            .unwrap_or_else(|| format!("{message_id}:action:{}", time.unwrap_or(0_i64))),
        sent_at_ms: time.unwrap_or_default(),
        kind: MessageKind::Choice,
        text: value,
        attachments: Vec::new(),
        reply: ReplyContext {
            message_id: Some(message_id),
            ..ReplyContext::default()
        },
    }]))
}

/// DingTalk's `actionCard` for the last part of a reply with choices: each
/// button a `dtmd://dingtalkclient/sendMessage` link, so a tap sends the
/// value from the customer's own client as an ordinary message.
pub fn dingtalk_action_card(part: &str, choices: &[Choice]) -> Value {
    let button = |c: &Choice| {
        // Spaces as %20: the link is a URL, not a form.
        let content: String = form_urlencoded::byte_serialize(c.value.as_bytes()).collect();
        let content = content.replace('+', "%20");
        json!({ "title": fit(&c.label, 20),
                "actionURL": format!("dtmd://dingtalkclient/sendMessage?content={content}") })
    };
    let title = fit(part.lines().next().unwrap_or_default(), 20);
    // Side by side for two ("helpful?"), one under another for more.
    let orientation = if choices.len() <= 2 { "0" } else { "1" };
    json!({ "title": title, "text": part, "btnOrientation": orientation,
            "btns": choices.iter().take(10).map(button).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_to_the_limit() {
        assert_eq!(fit("Yes", 20), "Yes");
        assert_eq!(fit("How long does shipping take?", 20).chars().count(), 20);
        assert!(fit("How long does shipping take?", 20).ends_with('…'));
        assert_eq!(fit_bytes("一二三", 7), "一二");
    }

    #[test]
    fn whatsapp_takes_buttons_up_to_three_and_a_list_beyond() {
        let choices: Vec<Choice> = (1..=4)
            .map(|n| Choice::new(n.to_string(), n.to_string()))
            .collect();
        assert_eq!(
            whatsapp_interactive("Pick", &choices[..3])["type"],
            "button"
        );
        let list = whatsapp_interactive("Pick", &choices);
        assert_eq!(list["type"], "list");
        assert_eq!(list["action"]["sections"][0]["rows"][3]["id"], "4");
    }

    #[test]
    fn dingtalk_buttons_send_the_value_from_the_customers_client() {
        let card = dingtalk_action_card("有帮助吗？", &[Choice::new("1 好", "👍 有帮助")]);
        assert_eq!(
            card["btns"][0]["actionURL"],
            "dtmd://dingtalkclient/sendMessage?content=1%20%E5%A5%BD"
        );
        assert_eq!(card["text"], "有帮助吗？");
    }

    #[test]
    fn a_feishu_card_holds_the_text_and_a_row_of_buttons() {
        let (kind, content) =
            feishu_content("Was this helpful?", Some(&[Choice::new("1", "👍 Yes")]));
        let card: Value = serde_json::from_str(&content).unwrap();
        assert_eq!(kind, "interactive");
        assert_eq!(card["elements"][0]["text"]["content"], "Was this helpful?");
        let button = &card["elements"][1]["actions"][0];
        assert_eq!(
            (&button["value"]["choice"], &button["text"]["content"]),
            (&json!("1"), &json!("👍 Yes"))
        );
        assert_eq!(
            feishu_content("Hi", None),
            ("text", r#"{"text":"Hi"}"#.to_owned())
        );
    }

    #[test]
    fn a_feishu_tap_without_our_choice_is_no_message() {
        let tap = |value: Value| {
            json!({ "schema": "2.0", "header": { "event_type": "card.action.trigger", "event_id": "e1" },
                    "event": { "operator": { "open_id": "ou_1" }, "action": { "value": value, "tag": "button" },
                               "context": { "open_chat_id": "oc_1", "open_message_id": "om_1" } } })
        };
        let ours = feishu_card_action(&tap(json!({ "choice": "2" })))
            .unwrap()
            .unwrap();
        assert_eq!(
            (ours[0].text.as_str(), ours[0].provider_message_id.as_str()),
            ("2", "e1")
        );
        assert!(
            feishu_card_action(&tap(json!({ "other": "x" })))
                .unwrap()
                .unwrap()
                .is_empty()
        );
        let message = json!({ "header": { "event_type": "im.message.receive_v1" } });
        assert!(feishu_card_action(&message).is_none());
        let broken = json!({ "header": { "event_type": "card.action.trigger" }, "event": {} });
        assert!(feishu_card_action(&broken).unwrap().is_err());
    }

    #[test]
    fn a_slack_form_without_a_payload_or_command_is_refused() {
        assert!(slack_form(&[("x".into(), "1".into())]).is_err());
        let command = [("command".to_owned(), "/help".to_owned())];
        assert!(slack_form(&command).unwrap().is_empty());
        let other = [(
            "payload".to_owned(),
            r#"{"type":"view_submission"}"#.to_owned(),
        )];
        assert!(slack_form(&other).unwrap().is_empty());
        let broken = [("payload".to_owned(), "{".to_owned())];
        assert!(slack_form(&broken).is_err());
    }
}
