//! Shared by the channel tests: each channel's contract fixture
//! (`tests/fixtures/<channel>.json`) and a recording stand-in provider.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use serde_json::Value;
use switchboard_channels::email::{EmailTransport, Message};
use switchboard_channels::kit::build_request;
use switchboard_channels::{ChannelDeps, SharedChannel, WebhookRequest, registry};
use switchboard_domain::SendError;

pub const NOW_MS: i64 = 1_700_000_030_000;

/// The fixtures' "now": replies whose context expires (DingTalk's session
/// webhook) are sent at the time the fixture's request was received.
pub struct FixedClock(pub i64);

impl switchboard_domain::Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// A channel's contract fixture.
pub struct Fixture {
    pub channel: &'static str,
    pub json: Value,
}

impl Fixture {
    pub fn load(channel: &'static str) -> Self {
        let path = format!(
            "{}/tests/fixtures/{channel}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("every channel has a contract fixture: {path} is missing"));
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self { channel, json }
    }

    /// The channel, its replies going to `stand_in` (and mail to `email`).
    pub fn build(&self, stand_in: &str, email: Arc<dyn EmailTransport>) -> SharedChannel {
        let settings = self.json["settings"]
            .to_string()
            .replace("{stand_in}", stand_in);
        let settings: Value = serde_json::from_str(&settings).unwrap();
        let deps = ChannelDeps {
            email,
            clock: Arc::new(FixedClock(NOW_MS)),
            ..ChannelDeps::offline()
        };
        registry::build(self.channel, &settings, &deps)
            .unwrap_or_else(|e| panic!("{}: {e}", self.channel))
    }

    /// The channel with every verification setting changed: what it signs,
    /// the real channel must refuse.
    pub fn impostor(&self) -> SharedChannel {
        let spec = registry::spec(self.channel).unwrap();
        let mut settings = self.json["settings"].clone();
        for setting in spec.settings {
            use switchboard_channels::kit::Need;
            if matches!(setting.need, Need::Verify | Need::DevSigning)
                && let Some(Value::String(value)) = settings.get_mut(setting.name)
            {
                let last = value.pop().unwrap_or('a');
                value.push(if last == 'b' { 'c' } else { 'b' });
            }
        }
        let settings = settings
            .to_string()
            .replace("{stand_in}", "http://127.0.0.1:9");
        let settings: Value = serde_json::from_str(&settings).unwrap();
        registry::build(self.channel, &settings, &ChannelDeps::offline()).unwrap()
    }

    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.json.pointer(pointer)
    }
}

/// A request as a fixture describes it: `json`, `form` pairs or a raw `body`,
/// with `content_type`, `headers`, `method` and `path`.
pub fn request(spec: &Value) -> WebhookRequest {
    let (content_type, body) = if let Some(json) = spec.get("json") {
        ("application/json".to_owned(), json.to_string())
    } else if let Some(Value::Array(pairs)) = spec.get("form") {
        let pairs = pairs
            .iter()
            .map(|pair| (pair[0].as_str().unwrap(), pair[1].as_str().unwrap()));
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        ("application/x-www-form-urlencoded".to_owned(), body)
    } else {
        let content_type = spec["content_type"].as_str().unwrap_or_default().to_owned();
        (
            content_type,
            spec["body"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let mut headers = vec![("content-type".to_owned(), content_type)];
    if let Some(Value::Object(extra)) = spec.get("headers") {
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
        );
    }
    let method = spec["method"].as_str().unwrap_or("POST");
    let path = spec["path"].as_str().unwrap_or("/webhooks/contract");
    build_request(method, path, &headers, body).unwrap()
}

/// The fixture request, signed by `channel` at `now_ms`.
pub fn signed(channel: &SharedChannel, spec: &Value, now_ms: i64) -> WebhookRequest {
    let mut request = request(spec);
    channel.sign(&mut request, now_ms).unwrap();
    request
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A provider API on loopback that answers like a success and keeps every request.
pub struct StandIn {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let path = uri.path().to_owned();
                sink.lock().unwrap().push(Received {
                    path,
                    query: uri.query().unwrap_or_default().to_owned(),
                    headers,
                    body: body.to_vec(),
                });
                // Also an access token, as WeChat, WeCom and Feishu hand them out.
                axum::Json(serde_json::json!({ "ok": true, "errcode": 0, "code": 0,
                    "result": { "message_id": 1 }, "access_token": "stand-in-access-token",
                    "expires_in": 7200, "tenant_access_token": "stand-in-access-token", "expire": 7200 }))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, received }
    }

    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

/// Keeps the mail a channel sends.
#[derive(Default)]
pub struct Mailbox(pub Mutex<Vec<Message>>);

#[async_trait]
impl EmailTransport for Mailbox {
    async fn send(&self, message: Message) -> Result<(), SendError> {
        self.0.lock().unwrap().push(message);
        Ok(())
    }
}
