//! `switchboard webhook check`: verify and normalise one captured request
//! offline, exactly as ingress would, without storing anything. (A nonce's
//! reuse, which needs the store, is not checked.)

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use switchboard_channels::kit::build_request;
use switchboard_channels::{ChannelDeps, registry};
use switchboard_domain::{Clock, SystemClock, error_chain};
use switchboard_pipeline::ingress::{Admitted, IngressError, admit};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Channel name, as in /webhooks/{channel}.
    #[arg(long)]
    pub channel: String,
    /// A channel setting, `KEY=VALUE` (the names of the config file); repeat for several.
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

/// What the check found; the command's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exit 0: authentic, and read (messages or a handshake answer).
    Authentic = 0,
    /// Exit 1: not authentic (or not acceptable before verification).
    Rejected = 1,
    /// Exit 3: authentic, but unreadable (ingress answers 400).
    Unreadable = 3,
}

/// Bad usage (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--secret {0:?} is not KEY=VALUE")]
    Secret(String),
    #[error("--header {0:?} is not 'Name: value'")]
    Header(String),
    #[error("cannot read --body-file {path}")]
    Body {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Channel(String),
}

/// The JSON report and the verdict.
pub fn check(args: &CheckArgs) -> Result<(Value, Verdict), UsageError> {
    let spec = registry::spec(&args.channel).ok_or_else(|| {
        let known: Vec<_> = registry::known_channels().collect();
        UsageError::Channel(format!(
            "unknown channel {:?}; one of {}",
            args.channel,
            known.join(", ")
        ))
    })?;
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
    let channel = registry::build_for_check(&args.channel, &settings, &ChannelDeps::offline())
        .map_err(|error| {
            let names: Vec<_> = spec.settings.iter().map(|s| s.name).collect();
            UsageError::Channel(format!(
                "{} (settings of {}: {})",
                error_chain(&error),
                spec.name,
                names.join(", ")
            ))
        })?;
    let request = build_request(&args.method.to_ascii_uppercase(), &args.url, &headers, body)
        .map_err(UsageError::Channel)?;
    let now_ms = args
        .now
        .map(|secs| secs.saturating_mul(1000))
        .unwrap_or_else(|| SystemClock.now_ms());
    Ok(match admit(channel.as_ref(), &request, now_ms) {
        Ok(Admitted::Handshake(reply)) => (
            json!({
                "verified": true,
                "handshake": {
                    "status": reply.status().as_u16(),
                    "content_type": reply.headers().get("content-type").and_then(|v| v.to_str().ok()),
                    "body": String::from_utf8_lossy(reply.body()),
                },
                "messages": [],
            }),
            Verdict::Authentic,
        ),
        Ok(Admitted::Messages { messages, .. }) => (
            json!({ "verified": true, "messages": messages }),
            Verdict::Authentic,
        ),
        Err(error @ IngressError::BadRequest(_)) => (
            json!({ "verified": true, "error": error.to_string(), "messages": [] }),
            Verdict::Unreadable,
        ),
        Err(error) => (
            json!({ "verified": false, "reason": error.to_string(), "messages": [] }),
            Verdict::Rejected,
        ),
    })
}
