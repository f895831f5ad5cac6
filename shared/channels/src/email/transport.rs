//! Where outgoing mail goes: an SMTP relay, or a folder of `.eml` files for
//! local runs and tests.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use switchboard_domain::{Secret, SendError};

use crate::ConfigError;

const CHANNEL: &str = "email";

/// Sends one finished message.
#[async_trait]
pub trait EmailTransport: Send + Sync {
    async fn send(&self, message: Message) -> Result<(), SendError>;
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text, for a relay on the same host or a local test server only.
    None,
    /// Upgrade with STARTTLS, which is required (default; port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// Settings of an SMTP relay.
///
/// ```json
/// { "host": "smtp.example.com", "port": 587, "username": "…", "password": "…", "tls": "starttls" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 25, 587 or 465 by `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub username: Option<Secret>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Per-command timeout, default 30 s.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Sends through an SMTP relay with a pooled connection.
#[derive(Clone)]
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpTransport {
    /// Must be called inside a Tokio runtime (the connection pool runs as a task).
    pub fn new(config: SmtpConfig) -> Result<Self, ConfigError> {
        let unusable = |detail: String| ConfigError::Unusable {
            channel: "smtp".into(),
            detail,
        };
        // The connection pool runs a Tokio task: building it outside a runtime
        // would panic, so refuse instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(unusable(
                "SmtpTransport::new must be called inside a Tokio runtime".into(),
            ));
        }
        let host = config.host.trim();
        if host.is_empty() {
            return Err(unusable("host is empty".into()));
        }
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|error| unusable(format!("TLS set-up failed: {error}")))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|error| unusable(format!("TLS set-up failed: {error}")))?,
        };
        let builder = builder
            .port(config.port.unwrap_or_else(|| config.tls.default_port()))
            .timeout(Some(Duration::from_secs(
                config.timeout_secs.unwrap_or(30).max(1),
            )));
        let builder = match (config.username, config.password) {
            (Some(user), Some(password)) => builder.credentials(Credentials::new(
                user.expose().to_owned(),
                password.expose().to_owned(),
            )),
            (None, None) => builder,
            _ => return Err(unusable("username and password go together".into())),
        };
        Ok(Self {
            inner: builder.build(),
        })
    }
}

#[async_trait]
impl EmailTransport for SmtpTransport {
    async fn send(&self, message: Message) -> Result<(), SendError> {
        match self.inner.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let code = error.status().map(|code| code.to_string());
                let detail = match &code {
                    Some(code) => format!("SMTP server answered {code}"),
                    None if error.is_timeout() => "SMTP timed out".to_owned(),
                    None => "SMTP connection failed".to_owned(),
                };
                tracing::warn!(
                    channel = CHANNEL,
                    code = code.as_deref(),
                    permanent = error.is_permanent(),
                    "SMTP send failed"
                );
                // 5xx answers (bad recipient, refused credentials) will not
                // change on retry; 4xx answers and connection trouble may.
                Err(if error.is_permanent() {
                    SendError::Permanent {
                        channel: CHANNEL.into(),
                        detail,
                        source: Some(Box::new(error)),
                    }
                } else {
                    SendError::Transient {
                        channel: CHANNEL.into(),
                        detail,
                        source: Some(Box::new(error)),
                    }
                })
            }
        }
    }
}

/// Writes every message as an `.eml` file into a folder instead of sending it.
/// File names are `{unix millis}-{uuid}.eml`, so they sort by time; each file is
/// written under a temporary name first and renamed, so a reader never sees half
/// a message.
#[derive(Debug, Clone)]
pub struct OutboxTransport {
    dir: PathBuf,
}

impl OutboxTransport {
    /// The folder is created on the first send if it does not exist.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl EmailTransport for OutboxTransport {
    async fn send(&self, message: Message) -> Result<(), SendError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io_error)?;
        let name = format!(
            "{:013}-{}.eml",
            switchboard_domain::Clock::now_ms(&switchboard_domain::SystemClock).max(0),
            uuid::Uuid::new_v4()
        );
        let temporary = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&temporary, message.formatted())
            .await
            .map_err(io_error)?;
        tokio::fs::rename(&temporary, self.dir.join(&name))
            .await
            .map_err(io_error)?;
        tracing::info!(channel = CHANNEL, file = %name, "mail written to the outbox");
        Ok(())
    }
}

/// A folder we may not write to stays that way; anything else (a full disk,
/// a busy file system) may pass.
fn io_error(error: std::io::Error) -> SendError {
    let kind = error.kind();
    let detail = format!("outbox not writable ({kind})");
    let source = Some(Box::new(error) as switchboard_domain::BoxError);
    if kind == ErrorKind::PermissionDenied {
        SendError::Permanent {
            channel: CHANNEL.into(),
            detail,
            source,
        }
    } else {
        SendError::Transient {
            channel: CHANNEL.into(),
            detail,
            source,
        }
    }
}

/// A transport that keeps what it is given, for the channels' unit tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct RecordingTransport(pub std::sync::Mutex<Vec<Message>>);

#[cfg(test)]
#[async_trait::async_trait]
impl EmailTransport for RecordingTransport {
    async fn send(&self, message: Message) -> Result<(), SendError> {
        self.0.lock().unwrap().push(message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message::builder()
            .from("Support <support@shop.example>".parse().unwrap())
            .to("jane@customer.example".parse().unwrap())
            .subject("Hello")
            .body("Body text".to_owned())
            .unwrap()
    }

    #[tokio::test]
    async fn outbox_writes_one_eml_per_message() {
        let dir = std::env::temp_dir().join(format!("switchboard-outbox-{}", uuid::Uuid::new_v4()));
        let outbox = OutboxTransport::new(dir.join("nested"));
        outbox.send(message()).await.unwrap();
        outbox.send(message()).await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(outbox.dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2);
        for name in &names {
            assert!(name.ends_with(".eml") && !name.starts_with('.'), "{name}");
            let (millis, rest) = name.split_once('-').unwrap();
            assert_eq!(millis.len(), 13);
            assert!(uuid::Uuid::parse_str(rest.trim_end_matches(".eml")).is_ok());
        }
        let content = std::fs::read_to_string(outbox.dir().join(&names[0])).unwrap();
        assert!(content.contains("Subject: Hello\r\n"));
        assert!(content.contains("Body text"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn outbox_on_a_file_is_an_error() {
        let file =
            std::env::temp_dir().join(format!("switchboard-not-a-dir-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"x").unwrap();
        let error = OutboxTransport::new(&file)
            .send(message())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("outbox not writable"));
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn smtp_outside_a_runtime_is_an_error_not_a_panic() {
        let config: SmtpConfig =
            serde_json::from_value(serde_json::json!({ "host": "127.0.0.1", "tls": "none" }))
                .unwrap();
        assert!(SmtpTransport::new(config).is_err());
    }

    #[tokio::test]
    async fn smtp_config_reads_and_checks() {
        let config: SmtpConfig = serde_json::from_value(
            serde_json::json!({ "host": "127.0.0.1", "port": 2525, "tls": "none" }),
        )
        .unwrap();
        assert_eq!(config.tls, SmtpTls::None);
        assert!(SmtpTransport::new(config).is_ok());
        let default: SmtpConfig =
            serde_json::from_value(serde_json::json!({ "host": "smtp.example.com" })).unwrap();
        assert_eq!(default.tls, SmtpTls::Starttls);
        let half = SmtpConfig {
            username: Some("u".into()),
            ..default.clone()
        };
        assert!(SmtpTransport::new(half).is_err());
        assert!(
            SmtpTransport::new(SmtpConfig {
                host: " ".into(),
                ..default
            })
            .is_err()
        );
        assert!(
            serde_json::from_value::<SmtpConfig>(serde_json::json!({ "host": "h", "tls": "ssl" }))
                .is_err()
        );
    }
}
