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

use serde_json::{Value, json};
use switchboard_domain::{
    Choice, InboundMessage, Language, MessageKind, OutboundReply, ReplyContext,
};

use super::json::{fractional_seconds_ms, int, invalid, person_name, text};
use super::sender::{Sender, TextUnit, split_text};
use super::{ParseError, Parsed};

/// Channels whose replies show choices as buttons; elsewhere the text asks
/// for a number.
const WITH_BUTTONS: [&str; 5] = ["line", "slack", "telegram", "viber", "whatsapp"];

pub fn has_buttons(channel: &str) -> bool {
    WITH_BUTTONS.contains(&channel)
}

/// How to split a reply's text (at most `max` characters a part, or
/// `with_buttons` where the buttons' part is shorter) and which part carries
/// the buttons: the last, or none without choices.
pub fn split(reply: &OutboundReply, max: usize, with_buttons: usize) -> (usize, Option<usize>) {
    if reply.choices.is_empty() {
        return (max, None);
    }
    let parts = split_text(&reply.text, with_buttons, TextUnit::Chars).len();
    (with_buttons, Some(parts.saturating_sub(1)))
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
        // A query carries no time of its own: the message with the button's.
        sent_at_ms: int(message, "/date")
            .unwrap_or_default()
            .saturating_mul(1000),
        kind: MessageKind::Text,
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
        kind: MessageKind::Text,
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
