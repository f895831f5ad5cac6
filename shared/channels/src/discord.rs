//! Discord through the HTTP interactions endpoint: customers ask with the
//! slash command `/support <question>` (DMs to a bot need a gateway
//! connection). Ed25519 over `timestamp ‖ body` ([`schemes::DISCORD`]); Discord
//! probes with invalid signatures and delists endpoints that accept them.
//! PING gets PONG, other interactions a short private hint; `/support` gets a
//! deferred answer (type 5) and the reply follows through the interaction's
//! webhook (15 minutes), later through the bot token in the channel.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{
    Clock, InboundMessage, MessageKind, OutboundReply, ReplyContext, Secret, SendError,
};

use crate::kit::descriptor::build;
use crate::kit::json::{first_text, first_value, int, invalid, json_request, text};
use crate::kit::sender::base_url_or;
use crate::kit::signature::ed25519_public_key;
use crate::kit::{
    ApiErrors, ChannelDeps, ChannelSpec, Function, Handshake, HttpReply, Inbound, Outbound, Parsed,
    STATUS_ONLY, Sender, SettingsOf, Signature, TextUnit, Unusable, Verified, WebhookRequest,
    reply, required, schemes, unusable,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "discord",
    title: "Discord (slash command)",
    function: Function::IngressIm,
    settings: crate::settings! {
        public_key: verify => "Developer Portal → your application → General Information → Public Key (hex); checks `X-Signature-Ed25519`",
        bot_token: send("not-needed-to-check") => "Developer Portal → Bot → Token; posts replies that come after the 15-minute follow-up window",
        application_id: send("0") => "Developer Portal → General Information → Application ID; follow-ups go to `/webhooks/{application_id}/{token}`",
        signing_key: dev_signing => "development mode and tests only: the hex Ed25519 private key matching `public_key`, to sign sample requests",
        api_base: optional => "default `https://discord.com/api/v10`",
    },
    build: build::<Discord>,
    dev: |ctx| {
        let seed = format!(
            "{}{}",
            ctx.secret("signing_key"),
            ctx.secret("signing_key_2")
        );
        let private = signing_key(&seed).expect("64 hex characters");
        json!({ "public_key": hex::encode(private.verifying_key().to_bytes()), "signing_key": seed,
                "bot_token": ctx.secret("bot_token"), "application_id": "1100000000000000001", "api_base": ctx.stand_in })
    },
};

/// A message's content takes at most 2000 characters.
const MAX_TEXT_CHARS: usize = 2000;
/// An interaction token lasts 15 minutes; keep a minute in hand.
const FOLLOW_UP_MS: i64 = 14 * 60_000;
/// The command customers ask with.
const COMMAND: &str = "support";
const DISCORD_API: &str = "https://discord.com/api/v10";
/// Discord's epoch, for the time inside a snowflake id.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;
const ERRORS: ApiErrors = ApiErrors {
    code: "/code",
    ..STATUS_ONLY
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    pub public_key: String,
    pub bot_token: Secret,
    pub application_id: String,
    pub signing_key: Option<Secret>,
    pub api_base: Option<String>,
}

pub struct Discord {
    signature: Signature,
    bot_token: Secret,
    application_id: String,
    api_base: String,
    sender: Sender,
    clock: std::sync::Arc<dyn Clock>,
}

fn signing_key(hex_seed: &str) -> Option<ed25519_dalek::SigningKey> {
    let seed: [u8; 32] = hex::decode(hex_seed.trim()).ok()?.try_into().ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&seed))
}

impl SettingsOf for Discord {
    const NAME: &'static str = "discord";
    type Settings = DiscordConfig;

    fn new(config: DiscordConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("bot_token", &config.bot_token)?;
        let public = ed25519_public_key(&config.public_key);
        let public = public
            .ok_or_else(|| unusable("public_key must be 64 hex characters (an Ed25519 key)"))?;
        let bad_key = || unusable("signing_key must be 64 hex characters");
        let private = config
            .signing_key
            .as_ref()
            .map(|key| signing_key(key.expose()).ok_or_else(bad_key));
        let id = config.application_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unusable("application_id must be numeric"));
        }
        Ok(Self {
            signature: Signature::ed25519(schemes::DISCORD, public, private.transpose()?),
            bot_token: config.bot_token,
            application_id: id.to_owned(),
            api_base: base_url_or("api_base", config.api_base.as_deref(), DISCORD_API)?,
            sender: Sender::new(Self::NAME, deps.http.clone(), ERRORS),
            clock: deps.clock.clone(),
        })
    }
}

/// Whether an interaction is a customer's `/support` question.
fn is_question(interaction: &Value) -> bool {
    int(interaction, "/type") == Some(2)
        && text(interaction, "/data/name").as_deref() == Some(COMMAND)
}

impl Inbound for Discord {
    fn handshake(&self, request: &WebhookRequest, now_ms: i64) -> Handshake {
        let interaction = serde_json::from_slice::<Value>(request.body()).unwrap_or_default();
        let Some(kind) = int(&interaction, "/type") else {
            return Ok(None);
        };
        if is_question(&interaction) {
            return Ok(None);
        }
        self.verify(request, now_ms)?;
        let chinese = text(&interaction, "/locale").is_some_and(|locale| locale.starts_with("zh"));
        let hint = match chinese {
            true => "请用 /support 加上您的问题来提问。",
            false => "Ask with /support followed by your question.",
        };
        Ok(Some(match kind {
            1 => reply::json(200, &json!({ "type": 1 })),
            4 => reply::json(200, &json!({ "type": 8, "data": { "choices": [] } })),
            _ => reply::json(
                200,
                &json!({ "type": 4, "data": { "content": hint, "flags": 64 } }),
            ),
        }))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let interaction: Value = serde_json::from_slice(&verified.body)?;
        if !is_question(&interaction) {
            return Ok(Vec::new());
        }
        let fields = ["/id", "/token", "/channel_id"].map(|at| text(&interaction, at));
        let [Some(id), Some(token), Some(channel)] = fields else {
            return Err(invalid("an interaction without id, token or channel_id"));
        };
        let user = interaction
            .pointer("/member/user")
            .or(interaction.get("user"));
        let user = user.ok_or_else(|| invalid("an interaction without a user"))?;
        if user.get("bot") == Some(&Value::Bool(true)) {
            return Ok(Vec::new());
        }
        let options = interaction.pointer("/data/options").unwrap_or(&Value::Null);
        let question = first_value(options, "options").unwrap_or_default(); // subcommands nest theirs
        let question = question.trim().to_owned();
        let sent_at_ms = id
            .parse::<i64>()
            .map_or(0, |id| (id >> 22).saturating_add(DISCORD_EPOCH_MS));
        Ok(vec![InboundMessage {
            channel: Self::NAME.into(),
            account_id: self.application_id.clone(),
            customer_id: text(user, "/id").ok_or_else(|| invalid("a user without an id"))?,
            customer_name: first_text(user, &["/global_name", "/username"]),
            conversation_id: channel,
            provider_message_id: id.clone(),
            sent_at_ms,
            kind: MessageKind::Text,
            text: question,
            attachments: Vec::new(),
            reply: ReplyContext {
                reply_token: Some(token),
                message_id: Some(id),
                thread_id: text(&interaction, "/guild_id"),
                customer_sent_at_ms: Some(sent_at_ms),
                awaits_reply: true, // "thinking" until the follow-up
                ..ReplyContext::default()
            },
        }])
    }

    /// The answer is on its way: Discord shows "thinking" until the follow-up.
    fn acknowledge(&self) -> HttpReply {
        reply::json(200, &json!({ "type": 5 }))
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        let id = (now_ms.saturating_sub(DISCORD_EPOCH_MS).max(0) << 22).to_string();
        json_request(
            &json!({ "type": 2, "id": id, "application_id": self.application_id, "token": format!("aW50ZXJhY3Rpb24{id}"),
            "version": 1, "channel_id": format!("9{customer}"), "locale": "en-US",
            "user": { "id": customer, "username": "sam", "global_name": "Sam" },
            "data": { "id": "1200000000000000001", "name": COMMAND, "type": 1,
                      "options": [{ "name": "question", "type": 3, "value": text }] } }),
        )
    }
}

#[async_trait]
impl Outbound for Discord {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let context = &reply.reply;
        let age_ms = |at: i64| self.clock.now_ms().saturating_sub(at);
        let fresh = context
            .customer_sent_at_ms
            .is_some_and(|at| age_ms(at) < FOLLOW_UP_MS);
        let base = &self.api_base;
        // The follow-up webhook answers the command itself; its token is the credential.
        let (url, bot, mention) = match (&context.reply_token, fresh) {
            (Some(token), true) => (
                format!("{base}/webhooks/{}/{token}", self.application_id),
                None,
                None,
            ),
            _ => {
                let url = format!("{base}/channels/{}/messages", reply.conversation_id);
                let bot = format!("Bot {}", self.bot_token.expose());
                (url, Some(bot), Some(&reply.customer_id))
            }
        };
        self.sender
            .send_text(reply, MAX_TEXT_CHARS - 32, TextUnit::Chars, |index, part| {
                let content = match (index, mention) {
                    (0, Some(user)) => format!("<@{user}> {part}"),
                    _ => part.to_owned(),
                };
                let body = json!({ "content": content, "allowed_mentions": { "users": mention.into_iter().collect::<Vec<_>>() } });
                let call = self.sender.post_json(&url, None, body);
                match &bot {
                    Some(bot) => call.header("authorization", bot),
                    None => call,
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::{VerifyError, build_request};

    const PUBLIC: &str = "46874c3f3d46f1bcb50f595d96dc7813e6dc0705c74439c3c972920d588e34c5";
    const PRIVATE: &str = "f93e65e7a75ef982c0f6bfcb4213e3b8bc7a774e65bec21fbcff4d1e54239d90";

    fn channel(signing: Option<&str>, api_base: Option<String>) -> Discord {
        let config = DiscordConfig {
            public_key: PUBLIC.into(),
            bot_token: "bot-token".into(),
            application_id: "1100000000000000001".into(),
            signing_key: signing.map(Into::into),
            api_base,
        };
        Discord::new(config, &ChannelDeps::offline()).unwrap()
    }

    fn post(body: &str, signature: &str, timestamp: &str) -> WebhookRequest {
        let headers = [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-signature-ed25519".to_owned(), signature.to_owned()),
            ("x-signature-timestamp".to_owned(), timestamp.to_owned()),
        ];
        build_request("POST", "/webhooks/discord", &headers, body.to_owned()).unwrap()
    }

    #[test]
    fn pings_are_answered_only_when_signed_and_bad_signatures_refused() {
        let signer = channel(Some(PRIVATE), None);
        let verifier = channel(None, None);
        let mut ping = post(
            r#"{"type":1,"id":"1","application_id":"1","token":"t","version":1}"#,
            "",
            "",
        );
        signer.sign(&mut ping, 1_700_000_000_000).unwrap();
        let pong = verifier
            .handshake(&ping, 1_700_000_000_000)
            .unwrap()
            .unwrap();
        assert_eq!(pong.body().as_ref(), br#"{"type":1}"#);
        // Discord's probe: a valid-looking signature that does not match.
        let mut probe = ping.clone();
        let forged = "0".repeat(128);
        probe
            .headers_mut()
            .insert("x-signature-ed25519", forged.parse().unwrap());
        assert!(matches!(
            verifier.handshake(&probe, 1_700_000_000_000),
            Err(VerifyError::BadSignature)
        ));
        assert!(
            verifier
                .handshake(&ping, 1_700_000_000_000 + 600_000)
                .is_err(),
            "stale"
        );
        assert!(
            channel(None, None).sign(&mut ping.clone(), 0).is_err(),
            "no private key, no signing"
        );
    }

    #[tokio::test]
    async fn late_replies_go_to_the_channel_with_the_bot_token_mentioning_the_customer() {
        let server = crate::kit::sender::tests_support::Recorder::start().await;
        let discord = channel(None, Some(server.base.clone()));
        let now = discord.clock.now_ms();
        let request = discord.sample("53908232506183680", "我的订单在哪里？", now - 20 * 60_000);
        let message = &discord
            .parse(&request, &Verified::assume(&request))
            .unwrap()[0];
        assert_eq!(message.text, "我的订单在哪里？");
        assert!(
            (message.sent_at_ms - (now - 20 * 60_000)).abs() < 1000,
            "time from the snowflake"
        );
        let reply = OutboundReply::to_message(message, "在路上", "a-1");
        discord.send(&reply).await.unwrap();
        let sent = server.bodies();
        assert_eq!(sent[0]["content"], "<@53908232506183680> 在路上");
        assert_eq!(sent[0]["allowed_mentions"]["users"][0], "53908232506183680");
    }

    #[test]
    fn the_question_is_read_inside_subcommands_and_the_interaction_awaits_a_reply() {
        let discord = channel(None, None);
        for (options, question) in [
            (
                json!([{ "name": "question", "type": 3, "value": "Opening hours?" }]),
                "Opening hours?",
            ),
            (
                json!([{ "name": "ask", "type": 1, "options": [{ "name": "q", "type": 3, "value": "Refunds?" }] }]),
                "Refunds?",
            ),
            (json!([{ "name": "pick", "type": 4, "value": 2 }]), "2"),
        ] {
            let body = json!({ "type": 2, "id": "1100000000000000777", "token": "tok", "channel_id": "c1",
                "user": { "id": "u1" }, "data": { "name": "support", "options": options } });
            let request =
                build_request("POST", "/webhooks/discord", &[], body.to_string()).unwrap();
            let message = &discord
                .parse(&request, &Verified::assume(&request))
                .unwrap()[0];
            assert_eq!(message.text, question);
            assert!(message.reply.awaits_reply);
        }
    }
}
