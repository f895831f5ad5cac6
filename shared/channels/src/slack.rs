//! Slack Events API: every request is signed ([`schemes::SLACK`]), the
//! `url_verification` handshake too; the `ssl_check` probe of slash commands is
//! not. A message is identified by its channel and `ts` ("ts is unique per
//! channel"), so a retry, or one message sent as both `message` and
//! `app_mention`, is queued once.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::{
    InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret, SendError,
};

use crate::kit::buttons::{self, with};
use crate::kit::descriptor::build;
use crate::kit::json::{MediaFields, fractional_seconds_ms, invalid, json_request, text};
use crate::kit::raw::Object;
use crate::kit::sender::base_url_or;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Handshake, HttpReply, Inbound, Outbound, Parsed,
    RequestExt, Sender, SettingsOf, Signature, TextUnit, Unusable, Verified, WebhookRequest, reply,
    required, schemes,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "slack",
    title: "Slack (Events API)",
    function: Function::IngressIm,
    settings: crate::settings! {
        signing_secret: verify => "Basic Information → App Credentials; requests are checked with `X-Slack-Signature` over the raw body, within 5 minutes",
        bot_token: send("xoxb-not-needed-to-check") => "`xoxb-...`, with `chat:write`; replies go through `chat.postMessage`, in the thread when the message was threaded",
        api_base: optional => "default `https://slack.com/api`",
        replay_window_secs: optional => "default 300",
    },
    build: build::<Slack>,
    dev: |ctx| {
        json!({ "signing_secret": ctx.secret("signing_secret"),
                       "bot_token": "xoxb-development", "api_base": ctx.stand_in })
    },
};

/// Message subtypes that carry something a person wrote (or changed).
const CUSTOMER_SUBTYPES: &str = "file_share message_changed message_deleted thread_broadcast";
const MAX_TEXT_CHARS: usize = 40_000; // Slack truncates `chat.postMessage` text after it.
/// Slack answers most failures with HTTP 200 and `{"ok": false, "error": "…"}`.
const ERRORS: ApiErrors = ApiErrors {
    ok: Some("/ok"),
    code: "/error",
    transient: "ratelimited internal_error fatal_error service_unavailable request_timeout",
    stale_token: "",
    retry_after: None,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub signing_secret: Secret,
    pub bot_token: Secret,
    pub api_base: Option<String>,
    pub replay_window_secs: Option<i64>,
}

pub struct Slack {
    signature: Signature,
    bot_token: Secret,
    api_base: String,
    sender: Sender,
}

impl SettingsOf for Slack {
    const NAME: &'static str = "slack";
    type Settings = SlackConfig;

    fn new(config: SlackConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("bot_token", &config.bot_token)?;
        let signature =
            Signature::shared(schemes::SLACK, "signing_secret", &config.signing_secret)?;
        let api_base = config.api_base.as_deref();
        Ok(Self {
            signature: signature.window(config.replay_window_secs)?,
            bot_token: config.bot_token,
            api_base: base_url_or("api_base", api_base, "https://slack.com/api")?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
        })
    }
}

impl Inbound for Slack {
    fn handshake(&self, request: &WebhookRequest, now_ms: i64) -> Handshake {
        if request.content_type() == "application/x-www-form-urlencoded" {
            let mut fields = request.form_fields().into_iter();
            let ssl_check = request.query_param("ssl_check").as_deref() == Some("1")
                || fields.any(|(key, value)| key == "ssl_check" && value == "1");
            // Slack's certificate probe for slash commands is unsigned and only wants a 200.
            return Ok(ssl_check.then(|| reply::empty(200)));
        }
        let body = crate::kit::json::parse_if_mentions(request.body(), "url_verification");
        if text(&body, "/type").as_deref() != Some("url_verification") {
            return Ok(None);
        }
        self.verify(request, now_ms)?;
        Ok(Some(match text(&body, "/challenge") {
            Some(challenge) => reply::json(200, &json!({ "challenge": challenge })),
            None => reply::error(400, "bad_request", "url_verification without a challenge"),
        }))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, request: &WebhookRequest, verified: &Verified) -> Parsed {
        if request.content_type() == "application/x-www-form-urlencoded" {
            // Interactivity (a tap on our buttons) and slash commands come as forms.
            return buttons::slack_form(&request.form_fields());
        }
        let envelope = Object::parse(&verified.body)?;
        let kind = envelope.str("type");
        let kind = kind.ok_or_else(|| invalid("body has no type"))?;
        if kind != "event_callback" {
            return Ok(Vec::new());
        }
        let event = envelope.object("event");
        let event = event.ok_or_else(|| invalid("event_callback without an event"))?;
        Ok(normalise(&envelope, &event).into_iter().collect())
    }

    fn acknowledge(&self) -> HttpReply {
        reply::empty(200)
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let ts = format!("{}.{:06}", now_ms / 1000, now_ms % 1_000_000);
        json_request(&json!({
            "token": "sample", "team_id": "T0SAMPLE", "api_app_id": "A0SAMPLE", "type": "event_callback",
            "event_id": format!("Ev{now_ms}"), "event_time": now_ms / 1000,
            "event": { "type": "message", "channel": format!("D{customer}"), "channel_type": "im",
                       "user": customer, "text": text, "ts": ts } }))
    }
}

#[async_trait]
impl Outbound for Slack {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let url = format!("{}/chat.postMessage", self.api_base);
        let (channel, thread) = (&reply.conversation_id, &reply.reply.thread_id);
        let token = Some(self.bot_token.expose());
        // Choices as buttons under the last part, which a section block holds.
        let (limit, at) = buttons::split(reply, MAX_TEXT_CHARS, buttons::SLACK_SECTION_CHARS);
        let call = |index: usize, text: &str| {
            let blocks = (at == Some(index)).then(|| buttons::slack_blocks(text, &reply.choices));
            let body = json!({ "channel": channel, "text": text, "thread_ts": thread });
            self.sender
                .post_json(&url, token, with(body, "blocks", blocks))
        };
        self.sender
            .send_text(reply, limit, TextUnit::Chars, call)
            .await
    }
}

/// The customer message in one `event_callback`, if there is one.
fn normalise(envelope: &Object, event: &Object) -> Option<InboundMessage> {
    let kind = event.str("type")?;
    let subtype = event.str("subtype");
    let other = |subtype: &str| !CUSTOMER_SUBTYPES.split(' ').any(|s| s == subtype);
    let other_subtype = subtype.as_deref().is_some_and(other);
    if (kind != "message" && kind != "app_mention") || other_subtype || is_bot(event) {
        return None;
    }
    let channel = event.str("channel")?;
    // The message as it now stands when it is not the event itself, and what happened to it.
    let (replaced, message_kind, provider_message_id) = match subtype.as_deref() {
        Some("message_changed") => {
            let current = event.object("message")?;
            // Slack also reports link unfurls and attachment updates as changes;
            // only a change of the text is an edit by the customer.
            let previous = event.object("previous_message");
            let same_text = previous.is_some_and(|p| p.str("text") == current.str("text"));
            if is_bot(&current) || same_text {
                return None;
            }
            // The edited message keeps its `ts`; the envelope's `event_id` tells
            // this edit from others yet stays the same when Slack redelivers it.
            let edit = envelope.str("event_id").or_else(|| event.str("ts"))?;
            let key = format!("{channel}:{}:edit:{edit}", current.str("ts")?);
            (Some(current), MessageKind::Edit, key)
        }
        Some("message_deleted") => {
            let previous = event.object("previous_message").filter(|p| !is_bot(p))?;
            let ts = event.str("deleted_ts").or_else(|| previous.str("ts"))?;
            // A message is deleted once, so its `ts` alone identifies the deletion.
            let key = format!("{channel}:{ts}:delete");
            (Some(previous), MessageKind::Delete, key)
        }
        _ => {
            let key = format!("{channel}:{}", event.str("ts")?);
            (None, MessageKind::Text, key)
        }
    };
    let body = replaced.as_ref().unwrap_or(event);
    let authorizations = envelope.objects("authorizations");
    let bot_user = authorizations.first().and_then(|a| a.str("user_id"));
    let attachments = body.media_list("files", None, &FILE);
    let deleted = message_kind == MessageKind::Delete;
    let message_text = body.str("text").filter(|_| !deleted).unwrap_or_default();
    // Mentions of our own bot (`<@U0BOT>`) say nothing about the question.
    let mention = format!("<@{}>", bot_user.unwrap_or_default());
    let message_text = message_text.replace(&mention, "").trim().to_owned();
    let message_kind = match message_kind {
        MessageKind::Text if message_text.is_empty() && attachments.is_empty() => return None,
        MessageKind::Text if message_text.is_empty() => MessageKind::Media,
        other => other,
    };
    let team = authorizations.iter().find_map(|a| a.str("team_id"));
    let account_id = envelope.str("team_id").or(team).or(event.str("team"))?;
    let event_time = envelope.int("event_time").map(|s| s.saturating_mul(1000));
    let sent_at_ms = event.str("ts").and_then(|ts| fractional_seconds_ms(&ts));
    let profile = body.object("user_profile").unwrap_or_default();
    Some(InboundMessage {
        channel: "slack".into(),
        account_id: account_id.into_owned(),
        customer_id: body.str("user")?.into_owned(),
        customer_name: profile.first_string(&["display_name", "real_name"]),
        conversation_id: channel.into_owned(),
        provider_message_id,
        sent_at_ms: sent_at_ms.or(event_time).unwrap_or_default(),
        kind: message_kind,
        text: message_text,
        attachments,
        reply: ReplyContext {
            thread_id: body.string("thread_ts"),
            message_id: body.string("ts"),
            ..ReplyContext::default()
        },
    })
}

fn is_bot(message: &Object) -> bool {
    message.raw("bot_id").is_some_and(|id| id.get() != "null")
        || message.str("subtype").as_deref() == Some("bot_message")
}

const FILE: MediaFields = MediaFields {
    id: "/id",
    url: "/url_private",
    mime: "/mimetype",
    name: "/name",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;
    use crate::kit::{ParseError, VerifyError};
    use serde_json::Value;

    const SECRET: &str = "slack-test-signing-secret-0001";
    const NOW_MS: i64 = 1_700_000_100_000;

    /// Computed independently: python3 -c "import hmac,hashlib;
    /// print(hmac.new(b'slack-test-signing-secret-0001', b'v0:1700000000:' + KNOWN_BODY.encode(), hashlib.sha256).hexdigest())"
    const KNOWN_BODY: &str = r#"{"type":"event_callback","team_id":"T0TEAM","event_id":"Ev01","event":{"type":"message","channel":"D0CHAN","user":"U0CUST","text":"Où est ma commande ? 我的订单","ts":"1700000000.000200"}}"#;
    const KNOWN_SIGNATURE: &str =
        "v0=32c9b8976f57336c9c1668237cd853005f87f638a07f1c0c49febe14897756fa";

    fn channel() -> Slack {
        let config = SlackConfig {
            signing_secret: SECRET.into(),
            bot_token: "xoxb-test".into(),
            api_base: None,
            replay_window_secs: None,
        };
        Slack::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn request(content_type: &str, headers: &[(&str, &str)], body: &str) -> WebhookRequest {
        let mut all = vec![("content-type".to_owned(), content_type.to_owned())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        build_request("POST", "/webhooks/slack", &all, body.to_owned()).unwrap()
    }

    /// Signed with the scheme the channel verifies with.
    fn signed(body: &str, timestamp: i64) -> WebhookRequest {
        let mut request = request("application/json", &[], body);
        channel().sign(&mut request, timestamp * 1000).unwrap();
        request
    }

    fn with_header(mut request: WebhookRequest, name: &'static str, value: &str) -> WebhookRequest {
        request.headers_mut().insert(name, value.parse().unwrap());
        request
    }

    fn event(event: Value) -> String {
        json!({
            "type": "event_callback",
            "team_id": "T0TEAM",
            "event_id": "Ev0PV52K21",
            "event_time": 1_700_000_000,
            "authorizations": [{ "team_id": "T0TEAM", "user_id": "U0BOT", "is_bot": true }],
            "event": event,
        })
        .to_string()
    }

    fn parse(slack: &Slack, request: &WebhookRequest) -> Result<Vec<InboundMessage>, ParseError> {
        slack.parse(request, &Verified::assume(request))
    }

    fn parse_one(body: &str) -> Option<InboundMessage> {
        let mut messages = parse(&channel(), &signed(body, 1_700_000_000)).unwrap();
        assert!(messages.len() <= 1);
        messages.pop()
    }

    #[test]
    fn known_answer_signature_verifies() {
        let headers = [
            ("X-Slack-Request-Timestamp", "1700000000"),
            ("X-Slack-Signature", KNOWN_SIGNATURE),
        ];
        let request = request("application/json", &headers, KNOWN_BODY);
        let verified = channel().verify(&request, NOW_MS).unwrap();
        let message = &channel().parse(&request, &verified).unwrap()[0];
        assert_eq!(message.text, "Où est ma commande ? 我的订单");
        assert_eq!(
            signed(KNOWN_BODY, 1_700_000_000).headers()["x-slack-signature"],
            KNOWN_SIGNATURE
        );
    }

    #[test]
    fn tampered_stale_future_and_missing_are_rejected() {
        let slack = channel();
        let good = signed(KNOWN_BODY, 1_700_000_000);
        slack.verify(&good, NOW_MS).unwrap();

        let mut tampered = good.clone();
        *tampered.body_mut() = format!("{KNOWN_BODY} ").into();
        assert!(matches!(
            slack.verify(&tampered, NOW_MS),
            Err(VerifyError::BadSignature)
        ));

        let stale = signed(KNOWN_BODY, 1_700_000_100 - 301);
        assert!(matches!(
            slack.verify(&stale, NOW_MS),
            Err(VerifyError::Stale { window_secs: 300 })
        ));
        // More than a minute ahead of our clock is refused (issue 16.3).
        let ahead = signed(KNOWN_BODY, 1_700_000_100 + 61);
        assert!(matches!(
            slack.verify(&ahead, NOW_MS),
            Err(VerifyError::Future { .. })
        ));
        assert!(
            slack
                .verify(&signed(KNOWN_BODY, 1_700_000_100 + 60), NOW_MS)
                .is_ok()
        );

        let mut unsigned = good.clone();
        unsigned.headers_mut().remove("x-slack-signature");
        assert!(matches!(
            slack.verify(&unsigned, NOW_MS),
            Err(VerifyError::Missing(_))
        ));
        let signature = good.headers()["x-slack-signature"]
            .to_str()
            .unwrap()
            .replace("v0=", "v1=");
        let no_prefix = with_header(good.clone(), "x-slack-signature", &signature);
        assert!(matches!(
            slack.verify(&no_prefix, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
        let bad_ts = with_header(good, "x-slack-request-timestamp", "soon");
        assert!(matches!(
            slack.verify(&bad_ts, NOW_MS),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn url_verification_is_answered_only_when_signed() {
        let slack = channel();
        let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let reply = slack
            .handshake(&signed(body, 1_700_000_000), NOW_MS)
            .unwrap()
            .unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["content-type"], "application/json");
        let answer: Value = serde_json::from_slice(reply.body()).unwrap();
        assert_eq!(
            answer,
            json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
        );

        let mut forged = signed(body, 1_700_000_000);
        *forged.body_mut() = body.replace("3eZ", "4eZ").into();
        assert!(slack.handshake(&forged, NOW_MS).is_err());
        assert!(
            slack
                .handshake(&signed(KNOWN_BODY, 1_700_000_000), NOW_MS)
                .unwrap()
                .is_none()
        );
        // signed, but nothing to echo: refused with a reason, not a blank 200
        for body in [
            r#"{"type":"url_verification"}"#,
            r#"{"type":"url_verification","challenge":42}"#,
        ] {
            let reply = slack
                .handshake(&signed(body, 1_700_000_000), NOW_MS)
                .unwrap()
                .unwrap();
            assert_eq!(reply.status(), 400);
            let answer: Value = serde_json::from_slice(reply.body()).unwrap();
            assert_eq!(answer["error"], "bad_request");
        }
    }

    #[test]
    fn ssl_check_is_answered_without_a_signature() {
        let request = request(
            "application/x-www-form-urlencoded",
            &[],
            "ssl_check=1&token=abc",
        );
        let reply = channel().handshake(&request, NOW_MS).unwrap().unwrap();
        assert_eq!((reply.status().as_u16(), reply.body().len()), (200, 0));
    }

    #[test]
    fn the_same_ts_in_two_channels_is_two_messages() {
        let one = parse_one(&event(
            json!({ "type": "message", "channel": "D1", "user": "U1", "text": "a", "ts": "5.1" }),
        ));
        let two = parse_one(&event(
            json!({ "type": "message", "channel": "D2", "user": "U2", "text": "b", "ts": "5.1" }),
        ));
        assert_ne!(one.unwrap().dedupe_key(), two.unwrap().dedupe_key());
    }

    #[test]
    fn plain_message_is_normalised() {
        let message = parse_one(&event(json!({
            "type": "message", "channel": "D0CHAN", "channel_type": "im", "user": "U0CUST",
            "text": "Where is my order?", "ts": "1700000000.000200", "thread_ts": "1699999999.000100",
            "user_profile": { "display_name": "", "real_name": "Cleo Customer" }
        })))
        .unwrap();
        assert_eq!(message.channel, "slack");
        assert_eq!(message.account_id, "T0TEAM");
        assert_eq!(message.conversation_id, "D0CHAN");
        assert_eq!(message.customer_id, "U0CUST");
        assert_eq!(message.customer_name.as_deref(), Some("Cleo Customer"));
        assert_eq!(message.provider_message_id, "D0CHAN:1700000000.000200");
        assert_eq!(message.sent_at_ms, 1_700_000_000_000);
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.text, "Where is my order?");
        assert_eq!(
            message.reply.thread_id.as_deref(),
            Some("1699999999.000100")
        );
    }

    #[test]
    fn mentions_of_our_bot_are_stripped_and_team_falls_back_to_authorizations() {
        let body = json!({
            "type": "event_callback", "event_id": "Ev1",
            "authorizations": [{ "team_id": "T0AUTH", "user_id": "U0BOT" }],
            "event": { "type": "app_mention", "channel": "C0CHAN", "user": "U0CUST",
                       "text": "<@U0BOT>  what are your hours?", "ts": "1700000001.5" }
        });
        let message = parse_one(&body.to_string()).unwrap();
        assert_eq!(message.account_id, "T0AUTH");
        assert_eq!(message.text, "what are your hours?");
        assert_eq!(message.sent_at_ms, 1_700_000_001_500);
    }

    #[test]
    fn bots_and_other_subtypes_are_dropped() {
        for dropped in [
            json!({ "type": "message", "channel": "C1", "bot_id": "B1", "text": "beep", "ts": "1.1" }),
            json!({ "type": "message", "subtype": "bot_message", "channel": "C1", "text": "beep", "ts": "1.1" }),
            json!({ "type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1", "text": "joined", "ts": "1.1" }),
            json!({ "type": "message", "subtype": "message_changed", "channel": "C1", "ts": "2.2",
                    "message": { "bot_id": "B1", "text": "new", "ts": "1.1" },
                    "previous_message": { "bot_id": "B1", "text": "old", "ts": "1.1" } }),
            json!({ "type": "reaction_added", "user": { "id": "U1" }, "item": {} }),
            json!({ "type": "message", "channel": "C1", "text": "no user", "ts": "1.1" }),
        ] {
            assert!(parse_one(&event(dropped.clone())).is_none(), "{dropped}");
        }
        assert!(parse_one(r#"{"type":"app_rate_limited","minute_rate_limited":1}"#).is_none());
    }

    #[test]
    fn edits_and_deletes() {
        let changed = json!({
            "type": "message", "subtype": "message_changed", "hidden": true, "channel": "C1", "ts": "1700000050.000300",
            "message": { "type": "message", "user": "U0CUST", "text": "new text", "ts": "1700000000.000200" },
            "previous_message": { "type": "message", "user": "U0CUST", "text": "old text", "ts": "1700000000.000200" }
        });
        let edit = parse_one(&event(changed)).unwrap();
        assert_eq!(edit.kind, MessageKind::Edit);
        assert_eq!(edit.text, "new text");
        assert_eq!(edit.customer_id, "U0CUST");
        assert_eq!(
            edit.provider_message_id,
            "C1:1700000000.000200:edit:Ev0PV52K21"
        );
        assert_eq!(edit.sent_at_ms, 1_700_000_050_000);

        let unfurl = json!({
            "type": "message", "subtype": "message_changed", "channel": "C1", "ts": "3.0",
            "message": { "user": "U0CUST", "text": "see https://x.test", "ts": "1.0", "attachments": [{}] },
            "previous_message": { "user": "U0CUST", "text": "see https://x.test", "ts": "1.0" }
        });
        assert!(parse_one(&event(unfurl)).is_none());

        let deleted = json!({
            "type": "message", "subtype": "message_deleted", "hidden": true, "channel": "C1",
            "ts": "1700000060.000400", "deleted_ts": "1700000000.000200",
            "previous_message": { "type": "message", "user": "U0CUST", "text": "secret", "ts": "1700000000.000200" }
        });
        let delete = parse_one(&event(deleted)).unwrap();
        assert_eq!(delete.kind, MessageKind::Delete);
        assert_eq!(delete.text, "");
        assert_eq!(delete.provider_message_id, "C1:1700000000.000200:delete");
    }

    #[test]
    fn shared_files_become_attachments() {
        let message = parse_one(&event(json!({
            "type": "message", "subtype": "file_share", "channel": "C1", "user": "U0CUST", "text": "", "ts": "5.000001",
            "files": [
                { "id": "F1", "name": "receipt.png", "mimetype": "image/png", "url_private": "https://files.slack.com/F1" },
                { "id": "F2", "name": "notes.txt", "mimetype": "text/plain" },
                "garbage"
            ]
        })))
        .unwrap();
        assert_eq!(message.kind, MessageKind::Media);
        assert_eq!(message.attachments.len(), 2);
        assert_eq!(
            message.attachments[0].kind,
            switchboard_domain::AttachmentKind::Image
        );
        assert_eq!(
            message.attachments[0].url.as_deref(),
            Some("https://files.slack.com/F1")
        );
        assert_eq!(message.attachments[0].name.as_deref(), Some("receipt.png"));
        assert_eq!(message.attachments[0].provider_id.as_deref(), Some("F1"));
        assert_eq!(
            message.attachments[1].kind,
            switchboard_domain::AttachmentKind::File
        );
    }

    #[test]
    fn unreadable_bodies_are_parse_errors() {
        let slack = channel();
        for body in [
            "",
            "not json",
            "{}",
            r#"{"type":5}"#,
            "[1,2]",
            r#"{"type":"event_callback"}"#,
        ] {
            assert!(
                parse(&slack, &signed(body, 1_700_000_000)).is_err(),
                "{body}"
            );
        }
        let command = request(
            "application/x-www-form-urlencoded",
            &[],
            "command=%2Fhelp&text=hi&user_id=U1",
        );
        assert!(parse(&slack, &command).unwrap().is_empty());
    }

    #[test]
    fn slack_timestamps_convert_to_millis() {
        let ts_to_ms = fractional_seconds_ms;
        assert_eq!(ts_to_ms("1355517523.000005"), Some(1_355_517_523_000));
        assert_eq!(ts_to_ms("1355517523.9"), Some(1_355_517_523_900));
        assert_eq!(ts_to_ms("1355517523"), Some(1_355_517_523_000));
        assert_eq!(ts_to_ms("x.1"), None);
        assert_eq!(ts_to_ms("1.-5"), None);
        assert_eq!(ts_to_ms("99999999999999999.0"), None);
    }
}
