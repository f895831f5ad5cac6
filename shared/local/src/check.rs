//! `switchboard webhook check`: verify and normalise one captured request
//! offline, exactly as ingress would, without storing anything.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use switchboard_channels::email::OutboxTransport;
use switchboard_channels::{ChannelDeps, WebhookRequest, registry};
use switchboard_domain::{Clock, SystemClock};
use switchboard_pipeline::ingress::{Admitted, IngressError, admit};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Channel name, as in /webhooks/{channel}.
    #[arg(long)]
    pub channel: String,
    /// A channel secret or setting, `KEY=VALUE`; repeat for several.
    #[arg(long = "secret", value_name = "KEY=VALUE")]
    pub secrets: Vec<String>,
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// The full URL the provider called, with its query string.
    #[arg(long, default_value = "https://example.invalid/webhooks")]
    pub url: String,
    /// A request header, `Name: value`; repeat for several.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The raw request body, byte for byte.
    #[arg(long)]
    pub body_file: PathBuf,
    /// Check as if it were this time (unix seconds), for captured requests.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<i64>,
}

/// Bad usage (exit 2), as opposed to a rejected request (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--secret {0:?} is not KEY=VALUE")]
    Secret(String),
    #[error("--header {0:?} is not 'Name: value'")]
    Header(String),
    #[error("cannot read --body-file {path}: {source}")]
    Body {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Channel(String),
}

/// The JSON report and whether the request is authentic.
pub fn check(args: &CheckArgs) -> Result<(Value, bool), UsageError> {
    let mut settings = Map::new();
    for pair in &args.secrets {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| UsageError::Secret(pair.clone()))?;
        settings.insert(key.trim().to_owned(), Value::String(value.to_owned()));
    }
    let headers = args
        .headers
        .iter()
        .map(|line| {
            line.split_once(':')
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| UsageError::Header(line.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = std::fs::read(&args.body_file).map_err(|source| UsageError::Body {
        path: args.body_file.clone(),
        source,
    })?;
    let deps = ChannelDeps {
        http: reqwest::Client::new(),
        // Nothing is sent by a check.
        email: Arc::new(OutboxTransport::new(
            std::env::temp_dir().join("switchboard-check-outbox"),
        )),
    };
    let channel = registry::build_for_check(&args.channel, &settings, &deps)
        .map_err(|error| UsageError::Channel(error_chain(&error)))?;
    let query = args
        .url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    let request = WebhookRequest {
        method: args.method.to_ascii_uppercase(),
        url: args.url.clone(),
        query: query.to_owned(),
        headers,
        body,
    };
    let now_ms = args
        .now
        .map(|secs| secs * 1000)
        .unwrap_or_else(|| SystemClock.now_ms());
    Ok(match admit(channel.as_ref(), &request, now_ms) {
        Ok(Admitted::Handshake(reply)) => (
            json!({
                "verified": true,
                "handshake": {
                    "status": reply.status,
                    "content_type": reply.content_type,
                    "body": String::from_utf8_lossy(&reply.body),
                },
                "messages": [],
            }),
            true,
        ),
        Ok(Admitted::Messages(messages)) => {
            (json!({ "verified": true, "messages": messages }), true)
        }
        Err(error @ IngressError::BadRequest(_)) => (
            json!({ "verified": true, "reason": error.to_string(), "messages": [] }),
            false,
        ),
        Err(error) => (
            json!({ "verified": false, "reason": error.to_string(), "messages": [] }),
            false,
        ),
    })
}

pub use switchboard_domain::error_chain;
