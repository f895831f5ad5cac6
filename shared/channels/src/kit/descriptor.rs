//! What the product needs to know about a channel besides its code: name,
//! typed settings, development-mode settings and the Lambda function that
//! hosts its route. The registry lists one [`ChannelSpec`] per channel, and
//! development mode, `simulate`, the end-to-end harness, `webhook check`, the
//! README's channel table and the template's webhook outputs follow it.

use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use switchboard_domain::{
    Clock, CounterStore, CredentialStore, NoObjects, ObjectReader, SystemClock,
};

use super::counters::MemoryCounters;
use super::credentials::MemoryCredentials;
use super::signature::{Digest, Mac, digest};
use super::{ConfigError, SharedChannel, Unusable};
use crate::email::{EmailTransport, OutboxTransport};

/// The outbound HTTP client, shared by every channel and built on the first
/// send: building one (TLS roots, connector) is the slowest part of setting
/// up channels, and a process that only admits requests never needs it.
#[derive(Clone)]
pub struct HttpClient(Arc<(OnceLock<reqwest::Client>, BuildClient)>);

type BuildClient = fn() -> reqwest::Client;

impl HttpClient {
    /// A client that `build` makes when it is first used.
    pub fn lazy(build: BuildClient) -> Self {
        Self(Arc::new((OnceLock::new(), build)))
    }

    pub fn get(&self) -> &reqwest::Client {
        let (client, build) = &*self.0;
        client.get_or_init(*build)
    }
}

impl From<reqwest::Client> for HttpClient {
    fn from(client: reqwest::Client) -> Self {
        Self(Arc::new((OnceLock::from(client), reqwest::Client::new)))
    }
}

/// What channels need from outside to send replies.
#[derive(Clone)]
pub struct ChannelDeps {
    pub http: HttpClient,
    /// Outgoing mail, for the email channels' automated replies.
    pub email: Arc<dyn EmailTransport>,
    /// Provider access tokens shared by every instance.
    pub credentials: Arc<dyn CredentialStore>,
    /// Expiring counters shared by every instance (daily reply caps, marks).
    pub counters: Arc<dyn CounterStore>,
    /// Objects other services stored (SES's raw mail in S3).
    pub objects: Arc<dyn ObjectReader>,
    pub clock: Arc<dyn Clock>,
}

impl ChannelDeps {
    /// For checking requests and tests: nothing is sent anywhere it matters
    /// (mail goes to a temporary folder, tokens stay in memory).
    pub fn offline() -> Self {
        Self {
            http: HttpClient::lazy(reqwest::Client::new),
            email: Arc::new(OutboxTransport::new(
                std::env::temp_dir().join("switchboard-offline-outbox"),
            )),
            credentials: Arc::new(MemoryCredentials::default()),
            counters: Arc::new(MemoryCounters::default()),
            objects: Arc::new(NoObjects),
            clock: Arc::new(SystemClock),
        }
    }
}

/// The Lambda function that serves a channel's webhook route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    IngressIm,
    IngressSocial,
    IngressEmail,
}

impl Function {
    /// The function's binary (a crate under `functions/`).
    pub fn binary(self) -> &'static str {
        match self {
            Function::IngressIm => "ingress-im",
            Function::IngressSocial => "ingress-social",
            Function::IngressEmail => "ingress-email",
        }
    }

    /// Its resource in `template.yaml`.
    pub fn resource(self) -> &'static str {
        match self {
            Function::IngressIm => "IngressImFunction",
            Function::IngressSocial => "IngressSocialFunction",
            Function::IngressEmail => "IngressEmailFunction",
        }
    }
}

/// What a setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Required; verifying requests needs it.
    Verify,
    /// Required; only sending needs it (`webhook check` fills in a placeholder).
    Send(&'static str),
    Optional,
    /// Optional: a private key that signs requests as the provider would, for
    /// development mode and tests of a public-key channel (Discord). Never
    /// needed in production; the contract's impostor changes it.
    DevSigning,
}

/// One setting of a channel: its name in the config file, the AWS secret and
/// `webhook check --secret NAME=VALUE`.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub need: Need,
    pub doc: &'static str,
}

impl Setting {
    pub const fn verify(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            need: Need::Verify,
            doc,
        }
    }

    /// `placeholder` is a valid value used when only checking requests.
    pub const fn send(name: &'static str, placeholder: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            need: Need::Send(placeholder),
            doc,
        }
    }

    pub const fn optional(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            need: Need::Optional,
            doc,
        }
    }
}

/// Values for development mode: secrets derived from one random seed (so
/// `simulate` recomputes what `serve` uses), and where replies go.
pub struct DevContext<'a> {
    pub channel: &'static str,
    /// The stand-in provider for this channel's replies: development mode's
    /// `/dev/provider/<channel>`, or a test's recording server.
    pub stand_in: &'a str,
    /// Our email address.
    pub from_address: &'a str,
    pub seed: &'a str,
}

impl DevContext<'_> {
    /// A 32-character hex secret, the same for the same seed, channel and name.
    pub fn secret(&self, name: &str) -> String {
        let label = format!("{}.{name}", self.channel);
        hex::encode(
            &digest(
                Mac::Hmac(Digest::Sha256),
                self.seed.as_bytes(),
                label.as_bytes(),
            )[..16],
        )
    }
}

/// One channel, as the registry lists it.
#[derive(Clone, Copy)]
pub struct ChannelSpec {
    /// Also the webhook path: `/webhooks/{name}`.
    pub name: &'static str,
    /// For people: "Telegram", "Email via Mailgun".
    pub title: &'static str,
    pub function: Function,
    pub settings: &'static [Setting],
    pub build: fn(&serde_json::Value, &ChannelDeps) -> Result<SharedChannel, ConfigError>,
    /// Development-mode settings.
    pub dev: fn(&DevContext) -> serde_json::Value,
}

impl std::fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// A channel built from typed settings (`#[serde(deny_unknown_fields)]`).
pub trait SettingsOf: Sized {
    const NAME: &'static str;
    type Settings: DeserializeOwned;
    fn new(settings: Self::Settings, deps: &ChannelDeps) -> Result<Self, Unusable>;
}

/// The registry's `build` for a channel type: deserialise, validate, wrap.
pub fn build<T>(value: &serde_json::Value, deps: &ChannelDeps) -> Result<SharedChannel, ConfigError>
where
    T: SettingsOf + super::Channel + 'static,
{
    let settings: T::Settings =
        serde_json::from_value(value.clone()).map_err(|source| ConfigError::Invalid {
            channel: T::NAME.to_owned(),
            source,
        })?;
    let channel = T::new(settings, deps).map_err(|Unusable(detail)| ConfigError::Unusable {
        channel: T::NAME.to_owned(),
        detail,
    })?;
    Ok(Arc::new(channel))
}

/// A channel's settings table, one line each:
/// `name: verify => "doc"`, `name: send("placeholder") => "doc"`,
/// `name: optional => "doc"`.
#[macro_export]
macro_rules! settings {
    ($($name:ident : $need:ident $(($placeholder:literal))? => $doc:literal),* $(,)?) => {
        &[$($crate::kit::Setting {
            name: stringify!($name),
            need: $crate::settings!(@need $need $($placeholder)?),
            doc: $doc,
        }),*]
    };
    (@need verify) => { $crate::kit::Need::Verify };
    (@need optional) => { $crate::kit::Need::Optional };
    (@need dev_signing) => { $crate::kit::Need::DevSigning };
    (@need send $placeholder:literal) => { $crate::kit::Need::Send($placeholder) };
}
