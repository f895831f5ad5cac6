//! The business's CRM as a [`TierDirectory`]: asked for a customer's tier
//! with a signed request, a short timeout, and answers cached for a while.
//!
//! The request: `POST <lookup_url>` with `{"customer": "telegram:42",
//! "channel": "telegram", "customer_id": "42"}`, signed like a webhook of
//! ours: `X-Switchboard-Timestamp` (unix seconds) and
//! `X-Switchboard-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
//! The answer: `200 {"tier": "vip" | "regular" | "new"}`, or 404 for a
//! customer the CRM does not know (`{"tier": null}` too).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use switchboard_domain::{BoxError, Clock, Secret, SystemClock, Tier, TierDirectory};

use crate::kit::signature::{
    At, Digest, Encoding, Mac, MacScheme, Part, Scheme, Signature, Unit, Window,
};

/// How our requests to the CRM are signed (the CRM verifies with the same recipe).
pub const CRM_SCHEME: Scheme = Scheme::Mac(MacScheme {
    mac: Mac::Hmac(Digest::Sha256),
    signed: &[Part::Timestamp, Part::Text("."), Part::Body],
    sorted: false,
    signature: At::Header("x-switchboard-signature"),
    prefix: "v1=",
    encoding: Encoding::Hex,
    timestamp: Some(Window {
        at: At::Header("x-switchboard-timestamp"),
        unit: Unit::Seconds,
        max_age_secs: 300,
        max_future_secs: 60,
    }),
    nonce: None,
});

/// Customers remembered at most; beyond it expired answers are dropped, and
/// if none has expired the cache starts afresh.
const CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, Clone)]
pub struct CrmTierConfig {
    pub lookup_url: String,
    pub secret: Secret,
    pub timeout: Duration,
    pub cache_for: Duration,
}

pub struct CrmTierDirectory {
    url: String,
    signature: Signature,
    http: reqwest::Client,
    timeout: Duration,
    cache_for: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<Tier>)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("the CRM answered {0}")]
    Status(u16),
    #[error("the CRM could not be reached")]
    Unreachable(#[source] reqwest::Error),
    #[error("the CRM's answer is not a tier")]
    Unreadable(#[source] serde_json::Error),
    #[error("the lookup request could not be signed: {0}")]
    Signing(String),
}

#[derive(Deserialize)]
struct Answer {
    tier: Option<Tier>,
}

impl CrmTierDirectory {
    pub fn new(config: CrmTierConfig, http: reqwest::Client) -> Result<Self, crate::ConfigError> {
        let unusable = |detail: String| crate::ConfigError::Unusable {
            channel: "tiers".into(),
            detail,
        };
        let url = crate::kit::sender::http_url("lookup_url", &config.lookup_url)
            .map_err(|error| unusable(error.0))?;
        let signature = Signature::shared(CRM_SCHEME, "secret", &config.secret)
            .map_err(|error| unusable(error.0))?;
        Ok(Self {
            url,
            signature,
            http,
            timeout: config.timeout,
            cache_for: config.cache_for,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, customer: &str) -> Option<Option<Tier>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(customer)
            .filter(|(at, _)| at.elapsed() < self.cache_for)
            .map(|(_, tier)| *tier)
    }

    fn remember(&self, customer: &str, tier: Option<Tier>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.cache_for;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(customer.to_owned(), (Instant::now(), tier));
    }

    async fn ask(&self, customer: &str) -> Result<Option<Tier>, LookupError> {
        let (channel, customer_id) = customer.split_once(':').unwrap_or((customer, ""));
        let body = serde_json::json!({
            "customer": customer, "channel": channel, "customer_id": customer_id,
        })
        .to_string();
        let mut request: crate::WebhookRequest = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(Bytes::from(body.clone()))
            .map_err(|error| LookupError::Signing(error.to_string()))?;
        self.signature
            .sign(&mut request, &[], SystemClock.now_ms(), "")
            .map_err(|error| LookupError::Signing(error.to_string()))?;
        let mut call = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .body(body);
        for name in ["x-switchboard-timestamp", "x-switchboard-signature"] {
            if let Some(value) = request.headers().get(name) {
                call = call.header(name, value.clone());
            }
        }
        let response = call.send().await.map_err(LookupError::Unreachable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(LookupError::Status(status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(LookupError::Unreachable)?;
        let answer: Answer = serde_json::from_slice(&bytes).map_err(LookupError::Unreadable)?;
        Ok(answer.tier)
    }
}

#[async_trait]
impl TierDirectory for CrmTierDirectory {
    async fn tier(&self, customer: &str) -> Result<Option<Tier>, BoxError> {
        if let Some(tier) = self.cached(customer) {
            return Ok(tier);
        }
        let started = Instant::now();
        let outcome = self.ask(customer).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(tier) => {
                tracing::info!(elapsed_ms, found = tier.is_some(), "tier looked up");
                self.remember(customer, *tier);
            }
            // Failures are not cached: the next message asks again.
            Err(error) => tracing::warn!(elapsed_ms, error = %error, "tier lookup failed"),
        }
        outcome.map_err(|error| Box::new(error) as BoxError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body_with_the_secret() {
        let secret = Secret::new("crm-secret".to_owned());
        let signature = Signature::shared(CRM_SCHEME, "secret", &secret).unwrap();
        let mut request: crate::WebhookRequest = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(Bytes::from_static(b"{\"customer\":\"telegram:1\"}"))
            .unwrap();
        signature
            .sign(&mut request, &[], 1_700_000_000_000, "")
            .unwrap();
        let timestamp = request.headers()["x-switchboard-timestamp"]
            .to_str()
            .unwrap();
        assert_eq!(timestamp, "1700000000");
        let mac = crate::kit::signature::digest(
            Mac::Hmac(Digest::Sha256),
            b"crm-secret",
            b"1700000000.{\"customer\":\"telegram:1\"}",
        );
        assert_eq!(
            request.headers()["x-switchboard-signature"],
            format!("v1={}", hex::encode(mac)).as_str()
        );
        signature
            .verify(&request, &[], 1_700_000_010_000)
            .expect("our own scheme verifies it");
    }
}
