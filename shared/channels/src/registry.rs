//! The channel registry: one line per channel.

use std::collections::HashMap;
use std::sync::Arc;

use crate::email::EmailTransport;
use crate::{ChannelSettings, ConfigError, SharedChannel};

/// What channels need from outside to send replies.
#[derive(Clone)]
pub struct ChannelDeps {
    pub http: reqwest::Client,
    /// Outgoing mail, for the email channels' automated replies.
    pub email: Arc<dyn EmailTransport>,
}

type Build = fn(&serde_json::Value, &ChannelDeps) -> Result<SharedChannel, ConfigError>;

/// Settings a channel needs only to send, filled in when a request is merely
/// checked (`switchboard webhook check` takes the verification secrets alone).
type CheckPlaceholders = &'static [(&'static str, &'static str)];

/// Every channel Switchboard knows, by webhook path name.
const CHANNELS: &[(&str, Build, CheckPlaceholders)] = &[
    (
        "telegram",
        crate::telegram::build,
        crate::telegram::CHECK_PLACEHOLDERS,
    ),
    (
        "slack",
        crate::slack::build,
        crate::slack::CHECK_PLACEHOLDERS,
    ),
    (
        "webchat",
        crate::webchat::build,
        crate::webchat::CHECK_PLACEHOLDERS,
    ),
    (
        "mailgun",
        crate::mailgun::build,
        crate::mailgun::CHECK_PLACEHOLDERS,
    ),
];

/// The configured channels.
#[derive(Clone, Default)]
pub struct Registry {
    channels: HashMap<&'static str, SharedChannel>,
}

impl Registry {
    /// Builds every channel that has settings; a setting for an unknown channel is an error.
    pub fn from_settings(
        settings: &ChannelSettings,
        deps: &ChannelDeps,
    ) -> Result<Self, ConfigError> {
        let mut channels = HashMap::new();
        for (name, value) in settings {
            let channel = build(name, value, deps)?;
            channels.insert(channel.name(), channel);
        }
        Ok(Self { channels })
    }

    pub fn get(&self, name: &str) -> Option<&SharedChannel> {
        self.channels.get(name)
    }

    /// Names of the configured channels, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.channels.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

/// Builds one channel from its settings.
pub fn build(
    name: &str,
    settings: &serde_json::Value,
    deps: &ChannelDeps,
) -> Result<SharedChannel, ConfigError> {
    let (_, build, _) = CHANNELS
        .iter()
        .find(|(known, _, _)| *known == name)
        .ok_or_else(|| ConfigError::UnknownChannel(name.to_owned()))?;
    build(settings, deps)
}

/// Builds one channel for checking requests only: settings that only sending
/// needs get placeholders unless given.
pub fn build_for_check(
    name: &str,
    settings: &serde_json::Map<String, serde_json::Value>,
    deps: &ChannelDeps,
) -> Result<SharedChannel, ConfigError> {
    let (_, _, placeholders) = CHANNELS
        .iter()
        .find(|(known, _, _)| *known == name)
        .ok_or_else(|| ConfigError::UnknownChannel(name.to_owned()))?;
    let mut merged = settings.clone();
    for (key, value) in *placeholders {
        merged
            .entry(*key)
            .or_insert_with(|| serde_json::Value::String((*value).to_owned()));
    }
    build(name, &serde_json::Value::Object(merged), deps)
}

/// Names of every channel Switchboard supports.
pub fn known_channels() -> impl Iterator<Item = &'static str> {
    CHANNELS.iter().map(|(name, _, _)| *name)
}

/// Deserialises a channel's settings into its typed config.
pub fn settings<T: serde::de::DeserializeOwned>(
    channel: &str,
    value: &serde_json::Value,
) -> Result<T, ConfigError> {
    serde_json::from_value(value.clone()).map_err(|source| ConfigError::Invalid {
        channel: channel.to_owned(),
        source,
    })
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.names())
            .finish()
    }
}
