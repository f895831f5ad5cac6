//! Instagram messaging (direct messages to an Instagram professional
//! account), through the Instagram API with Instagram Login. Verification
//! and the webhook handshake are Meta's ([`schemes::META`], [`META_HUB`]);
//! the envelope is `object: "instagram"` with `entry[].messaging[]`, the
//! events of Messenger ([`normalise_messaging`]): messages on their `mid`,
//! unsent messages (`is_deleted`) and edits recorded, echoes of our own
//! messages, reads and reactions dropped. Replies go through
//! `POST graph.instagram.com/me/messages`, at most 1000 bytes each, within
//! the 24-hour window (an agent's reply later with the `HUMAN_AGENT` tag).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_domain::{Clock, OutboundReply, Secret, SendError};

use crate::kit::descriptor::build;
use crate::kit::handshake::META_HUB;
use crate::kit::json::json_request;
use crate::kit::meta::{GRAPH_ERRORS, messaging_events, normalise_messaging, send_api};
use crate::kit::sender::base_url_or;
use crate::kit::window::META_MESSAGING;
use crate::kit::{
    ChannelDeps, ChannelSpec, Function, Handshake, Inbound, Outbound, Parsed, Sender, SettingsOf,
    Signature, TextUnit, Unusable, Verified, WebhookRequest, required, schemes,
};

pub const SPEC: ChannelSpec = ChannelSpec {
    name: "instagram",
    title: "Instagram messaging",
    function: Function::IngressSocial,
    settings: crate::settings! {
        app_secret: verify => "App settings → Basic → App secret; requests are checked with `X-Hub-Signature-256` over the raw body",
        verify_token: verify => "any string you choose and type into Instagram → API setup with Instagram login → Configure webhooks → Verify token; the `hub.challenge` GET is answered only with it",
        access_token: send("not-needed-to-check") => "Instagram → API setup with Instagram login → Generate access tokens (`instagram_business_manage_messages`); replies go through `/me/messages`",
        human_agent_tag: optional => "default `true`: an agent's reply 24 hours to 7 days after the customer's message goes out with the `HUMAN_AGENT` tag (needs the Human Agent feature); `false`: it fails",
        api_base: optional => "default `https://graph.instagram.com/v21.0`",
    },
    build: build::<Instagram>,
    dev: |ctx| {
        json!({ "app_secret": ctx.secret("app_secret"), "verify_token": ctx.secret("verify_token"),
                "access_token": ctx.secret("access_token"), "api_base": ctx.stand_in })
    },
};

/// Message text must be UTF-8 of at most 1000 bytes.
const MAX_TEXT_BYTES: usize = 1000;
const INSTAGRAM_API: &str = "https://graph.instagram.com/v21.0";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub access_token: Secret,
    pub human_agent_tag: Option<bool>,
    pub api_base: Option<String>,
}

pub struct Instagram {
    signature: Signature,
    verify_token: Secret,
    access_token: Secret,
    human_agent_tag: bool,
    url: String,
    sender: Sender,
    clock: std::sync::Arc<dyn Clock>,
}

impl SettingsOf for Instagram {
    const NAME: &'static str = "instagram";
    type Settings = InstagramConfig;

    fn new(config: InstagramConfig, deps: &ChannelDeps) -> Result<Self, Unusable> {
        required("verify_token", &config.verify_token)?;
        required("access_token", &config.access_token)?;
        let base = base_url_or("api_base", config.api_base.as_deref(), INSTAGRAM_API)?;
        Ok(Self {
            signature: Signature::shared(schemes::META, "app_secret", &config.app_secret)?,
            verify_token: config.verify_token,
            access_token: config.access_token,
            human_agent_tag: config.human_agent_tag.unwrap_or(true),
            url: format!("{base}/me/messages"),
            sender: Sender::new(Self::NAME, deps.http.clone(), GRAPH_ERRORS),
            clock: deps.clock.clone(),
        })
    }
}

impl Inbound for Instagram {
    fn handshake(&self, request: &WebhookRequest, _now_ms: i64) -> Handshake {
        META_HUB.answer(request, &self.verify_token)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn parse(&self, _: &WebhookRequest, verified: &Verified) -> Parsed {
        let body: Value = serde_json::from_slice(&verified.body)?;
        let events = messaging_events(&body, "instagram")?;
        let messages = events
            .into_iter()
            .filter_map(|event| normalise_messaging(Self::NAME, event));
        Ok(messages.collect())
    }

    fn sample(&self, customer: &str, text: &str, now_ms: i64) -> WebhookRequest {
        json_request(
            &json!({ "object": "instagram", "entry": [{ "id": "17841400000000000", "time": now_ms,
            "messaging": [{ "sender": { "id": customer }, "recipient": { "id": "17841400000000000" }, "timestamp": now_ms,
                            "message": { "mid": format!("aWdf_sample{now_ms}{customer}"), "text": text } }] }] }),
        )
    }
}

#[async_trait]
impl Outbound for Instagram {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        let window = (&META_MESSAGING, self.human_agent_tag, self.clock.now_ms());
        let token = self.access_token.expose();
        let limit = (MAX_TEXT_BYTES, TextUnit::Bytes);
        send_api(&self.sender, &self.url, token, reply, limit, Some(window)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::{AGENT_REPLY_PREFIX, MessageKind};

    fn channel(api_base: Option<String>) -> Instagram {
        let config = InstagramConfig {
            app_secret: "ig-app-secret".into(),
            verify_token: "verify-me".into(),
            access_token: "IGAA-token".into(),
            human_agent_tag: None,
            api_base,
        };
        Instagram::new(config, &ChannelDeps::offline()).unwrap()
    }

    #[test]
    fn instagram_events_are_read_and_page_ones_refused() {
        let instagram = channel(None);
        let mut request =
            instagram.sample("1054459154682919", "我的订单在哪里？", 1_700_000_000_000);
        instagram.sign(&mut request, 0).unwrap();
        let verified = instagram.verify(&request, 0).unwrap();
        let message = &instagram.parse(&request, &verified).unwrap()[0];
        assert_eq!(
            (message.kind, message.text.as_str()),
            (MessageKind::Text, "我的订单在哪里？")
        );
        assert_eq!(message.account_id, "17841400000000000");
        let page = json_request(&json!({ "object": "page", "entry": [] }));
        assert!(instagram.parse(&page, &Verified::assume(&page)).is_err());
    }

    #[tokio::test]
    async fn replies_are_split_at_1000_bytes_and_late_agent_replies_tagged() {
        let server = crate::kit::sender::tests_support::Recorder::start().await;
        let instagram = channel(Some(server.base.clone()));
        let now = instagram.clock.now_ms();
        let request = instagram.sample("U1", "hello", now - 30 * 3_600_000);
        let message = &instagram
            .parse(&request, &Verified::assume(&request))
            .unwrap()[0];
        let long = "退货".repeat(200); // 1200 bytes
        let agent = OutboundReply::to_message(message, long, format!("{AGENT_REPLY_PREFIX}1"));
        instagram.send(&agent).await.unwrap();
        let sent = server.bodies();
        assert_eq!(sent.len(), 2);
        assert!(
            sent.iter()
                .all(|b| b["message"]["text"].as_str().unwrap().len() <= 1000)
        );
        assert_eq!(sent[0]["tag"], "HUMAN_AGENT");
        let bot = OutboundReply::to_message(message, "answer", "r-1");
        assert!(!instagram.send(&bot).await.unwrap_err().is_transient());
    }
}
