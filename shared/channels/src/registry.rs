//! The channel registry: one line per channel.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use switchboard_domain::{OutboundReply, ReplySender, SendError};

use crate::kit::{ChannelDeps, ChannelSpec, ConfigError, DevContext, Need, SharedChannel};

/// Every channel Switchboard supports.
pub const CHANNELS: &[ChannelSpec] = &[
    crate::telegram::SPEC,
    crate::slack::SPEC,
    crate::webchat::SPEC,
    crate::mailgun::SPEC,
    crate::line::SPEC,
    crate::wechat::SPEC,
    crate::wecom::SPEC,
    crate::feishu::SPEC,
    crate::dingtalk::SPEC,
    crate::postmark::SPEC,
    crate::sendgrid::SPEC,
    crate::ses::SPEC,
    crate::whatsapp::SPEC,
    crate::messenger::SPEC,
    crate::instagram::SPEC,
    crate::viber::SPEC,
    crate::discord::SPEC,
    crate::x::SPEC,
    crate::twilio::SPEC,
];

/// Channel configuration as loaded from the config file or secret: one JSON
/// object per channel name, holding that channel's secrets and settings.
pub type ChannelSettings = BTreeMap<String, serde_json::Value>;

/// The description of a supported channel.
pub fn spec(name: &str) -> Option<&'static ChannelSpec> {
    CHANNELS.iter().find(|spec| spec.name == name)
}

/// Names of every channel Switchboard supports.
pub fn known_channels() -> impl Iterator<Item = &'static str> {
    CHANNELS.iter().map(|spec| spec.name)
}

/// Builds one channel from its settings.
pub fn build(
    name: &str,
    settings: &serde_json::Value,
    deps: &ChannelDeps,
) -> Result<SharedChannel, ConfigError> {
    let spec = spec(name).ok_or_else(|| ConfigError::UnknownChannel(name.to_owned()))?;
    (spec.build)(settings, deps)
}

/// Builds one channel for checking requests only: settings that only sending
/// needs get placeholders unless given.
pub fn build_for_check(
    name: &str,
    settings: &serde_json::Map<String, serde_json::Value>,
    deps: &ChannelDeps,
) -> Result<SharedChannel, ConfigError> {
    let spec = spec(name).ok_or_else(|| ConfigError::UnknownChannel(name.to_owned()))?;
    let mut merged = settings.clone();
    for setting in spec.settings {
        if let Need::Send(placeholder) = setting.need {
            merged
                .entry(setting.name)
                .or_insert_with(|| placeholder.into());
        }
    }
    (spec.build)(&serde_json::Value::Object(merged), deps)
}

/// Development-mode settings of every channel; `stand_in` gives the base URL
/// that receives a channel's replies.
pub fn dev_settings(
    seed: &str,
    from_address: &str,
    stand_in: impl Fn(&str) -> String,
) -> ChannelSettings {
    CHANNELS
        .iter()
        .map(|spec| {
            let stand_in = stand_in(spec.name);
            let context = DevContext {
                channel: spec.name,
                stand_in: &stand_in,
                from_address,
                seed,
            };
            (spec.name.to_owned(), (spec.dev)(&context))
        })
        .collect()
}

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
            let spec = spec(name).ok_or_else(|| ConfigError::UnknownChannel(name.clone()))?;
            channels.insert(spec.name, (spec.build)(value, deps)?);
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

/// Routes replies to the channel they belong to.
#[async_trait]
impl ReplySender for Registry {
    async fn send(&self, reply: &OutboundReply) -> Result<(), SendError> {
        match self.get(&reply.channel) {
            Some(channel) => channel.send(reply).await,
            None => Err(SendError::Permanent {
                channel: reply.channel.clone(),
                detail: "channel is not configured".into(),
                source: None,
            }),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.names())
            .finish()
    }
}
