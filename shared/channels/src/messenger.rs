//! Facebook Messenger (a Page's conversations) through the Messenger
//! Platform webhook. Meta signs the raw body with the app secret
//! ([`schemes::META`]) and sets the webhook up with the `hub.*` GET
//! ([`META_HUB`]). A request batches entries, each with messaging events:
//! every customer message is queued on its `mid`; echoes of our own
//! messages, deliveries, reads, reactions and postbacks yield nothing
//! ([`normalise_messaging`]). Replies go through the Send API within the
//! standard 24-hour window; later, an agent's reply goes out with the
//! `HUMAN_AGENT` tag (up to 7 days, where the app may use it) and anything
//! else fails visibly.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{Clock, OutboundReply, Secret, SendError};

use crate::kit::descriptor::build;
use crate::kit::handshake::META_HUB;
use crate::kit::json::json_request;
use crate::kit::meta::{GRAPH_API, GRAPH_ERRORS, messaging_events, normalise_messaging, send_api};
use crate::kit::sender::base_url_or;
use crate::kit::window::META_MESSAGING;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed, Sender, SettingsOf,
    Signature, TextUnit, Unusable, Verified, WebhookRequest, required, schemes,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "messenger",
    title: "Facebook Messenger",
    function: Function::IngressSocial,
    settings: crate::settings! {
        app_secret: verify => "App settings → Basic → App secret; requests are checked with `X-Hub-Signature-256` over the raw body",
        verify_token: verify => "any string you choose and type into Messenger → Settings → Webhooks → Verify token; the `hub.challenge` GET is answered only with it",
        page_access_token: send("not-needed-to-check") => "Messenger → Settings → Access Tokens → the Page's token (`pages_messaging`); replies go through the Send API",
        human_agent_tag: optional => "default `true`: an agent's reply 24 hours to 7 days after the customer's message goes out with the `HUMAN_AGENT` tag (needs the Human Agent feature); `false`: it fails",
        api_base: optional => "default `https://graph.facebook.com/v21.0`",
    },
    build: build::<Messenger>,
    dev: |ctx| {
        json!({ "app_secret": ctx.secret("app_secret"), "verify_token": ctx.secret("verify_token"),
                "page_access_token": ctx.secret("page_access_token"), "api_base": ctx.stand_in })
    },
};

/// The Send API takes at most 2000 characters of text.
const MAX_TEXT_CHARS: usize = 2000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerConfig {
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub page_access_token: Secret,
    pub human_agent_tag: Option<bool>,
    pub api_base: Option<String>,
}

pub struct Messenger {
    signature: Signature,
    verify_token: Secret,
    page_access_token: Secret,
    human_agent_tag: bool,
    url: String,
    sender: Sender,
    clock: std::sync::Arc<dyn Clock>,
}

impl SettingsOf for Messenger {
    const NAME: &'static str = "messenger";
    type Settings = MessengerConfig;

    fn new(config: MessengerConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("verify_token", &config.verify_token)?;
        required("page_access_token", &config.page_access_token)?;
        let base = base_url_or("api_base", config.api_base.as_deref(), GRAPH_API)?;
        Ok(Self {
            signature: Signature::shared(schemes::META, "app_secret", &config.app_secret)?,
            verify_token: config.verify_token,
            page_access_token: config.page_access_token,
            human_agent_tag: config.human_agent_tag.unwrap_or(true),
            url: format!("{base}/me/messages"),
            sender: Sender::new(Self::NAME, deps.http.clone(), GRAPH_ERRORS),
            clock: deps.clock.clone(),
        })
    }
}

impl Inbound for Messenger {
    fn handshake(&self, request: &WebhookRequest, _now_ms: i64) -> Handshake {
        META_HUB.answer(request, &self.verify_token)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let body: Value = serde_json::from_slice(&verified.body)?;
        let events = messaging_events(&body, "page")?;
        let messages = events
            .into_iter()
            .filter_map(|event| normalise_messaging(Self::NAME, event));
        Ok(messages.collect())
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        json_request(
            &json!({ "object": "page", "entry": [{ "id": "PAGE_ID", "time": now_ms,
            "messaging": [{ "sender": { "id": customer }, "recipient": { "id": "PAGE_ID" }, "timestamp": now_ms,
                            "message": { "mid": format!("m_sample{now_ms}{customer}"), "text": text } }] }] }),
        )
    }
}

#[async_trait]
impl Outbound for Messenger {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let window = (&META_MESSAGING, self.human_agent_tag, self.clock.now_ms());
        let token = self.page_access_token.expose();
        let limit = (MAX_TEXT_CHARS, TextUnit::Chars);
        send_api(&self.sender, &self.url, token, reply, limit, Some(window)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::build_request;
    use switchboard_domain::{AGENT_REPLY_PREFIX, MessageKind};

    fn channel(api_base: Option<String>) -> Messenger {
        let config = MessengerConfig {
            app_secret: "fb-app-secret".into(),
            verify_token: "verify-me".into(),
            page_access_token: "EAAB-page".into(),
            human_agent_tag: None,
            api_base,
        };
        Messenger::new(config, &ChannelDeps::offline()).unwrap()
    }

    #[test]
    fn page_events_are_read_and_instagram_ones_refused() {
        let messenger = channel(None);
        let mut request = messenger.sample(
            "1254459154682919",
            "Où est ma commande ?",
            1_700_000_000_000,
        );
        messenger.sign(&mut request, 0).unwrap();
        let verified = messenger.verify(&request, 0).unwrap();
        let message = &messenger.parse(&request, &verified).unwrap()[0];
        assert_eq!(
            (message.kind, message.text.as_str()),
            (MessageKind::Text, "Où est ma commande ?")
        );
        assert_eq!(
            (
                message.account_id.as_str(),
                message.conversation_id.as_str()
            ),
            ("PAGE_ID", "1254459154682919")
        );
        let instagram = json_request(&json!({ "object": "instagram", "entry": [] }));
        assert!(
            messenger
                .parse(&instagram, &Verified::assume(&instagram))
                .is_err()
        );
        let get = build_request(
            "GET",
            "/w?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=42",
            &[],
            "",
        )
        .unwrap();
        assert_eq!(
            messenger
                .handshake(&get, 0)
                .unwrap()
                .unwrap()
                .body()
                .as_ref(),
            b"42"
        );
    }

    #[tokio::test]
    async fn late_replies_are_tagged_for_agents_and_refused_for_the_bot() {
        let server = crate::kit::sender::tests_support::Recorder::start().await;
        let messenger = channel(Some(server.base.clone()));
        let now = messenger.clock.now_ms();
        let request = messenger.sample("U1", "hello", now - 30 * 3_600_000);
        let message = &messenger
            .parse(&request, &Verified::assume(&request))
            .unwrap()[0];
        let bot = OutboundReply::to_message(message, "answer", "r-1");
        assert!(!messenger.send(&bot).await.unwrap_err().is_transient());
        let agent = OutboundReply::to_message(message, "answer", format!("{AGENT_REPLY_PREFIX}1"));
        messenger.send(&agent).await.unwrap();
        let sent = server.bodies();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0]["messaging_type"].as_str(), sent[0]["tag"].as_str()),
            (Some("MESSAGE_TAG"), Some("HUMAN_AGENT"))
        );
        assert_eq!(sent[0]["recipient"]["id"], "U1");
    }
}
