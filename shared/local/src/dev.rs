//! Development mode: with no channel configured, `serve` makes its own
//! channels with secrets generated once and kept in the data folder, and sends
//! their replies to a built-in stand-in provider, so the whole loop runs on
//! one machine with no accounts anywhere.

use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_channels::ChannelSettings;

/// The generated secrets; `simulate` reads them to sign its webhooks.
#[derive(Clone, Serialize, Deserialize)]
pub struct DevSecrets {
    pub telegram_secret_token: String,
    pub telegram_bot_token: String,
    pub slack_signing_secret: String,
    pub webchat_signing_secret: String,
    pub mailgun_signing_key: String,
    pub admin_token: String,
}

impl DevSecrets {
    fn generate() -> Self {
        let mut rng = rand::rng();
        let mut token = |len: usize| -> String {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            (0..len)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        Self {
            telegram_secret_token: token(32),
            telegram_bot_token: format!("1000001:{}", token(35)),
            slack_signing_secret: token(32),
            webchat_signing_secret: token(32),
            mailgun_signing_key: token(32),
            admin_token: token(32),
        }
    }

    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("dev-secrets.json")
    }

    /// Reads the secrets, generating and saving them on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = Self::path(data_dir);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(secrets) = serde_json::from_str(&text)
        {
            return Ok(secrets);
        }
        std::fs::create_dir_all(data_dir)?;
        let secrets = Self::generate();
        let text = serde_json::to_string_pretty(&secrets).expect("secrets serialise");
        write_private(&path, text.as_bytes())?;
        Ok(secrets)
    }

    pub fn load(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(Self::path(data_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Channel settings whose replies go to this server's stand-in provider.
    pub fn channel_settings(&self, public_url: &str, from_address: &str) -> ChannelSettings {
        let sink = format!("{public_url}/dev/provider");
        let mut settings = ChannelSettings::new();
        settings.insert(
            "telegram".into(),
            json!({ "secret_token": self.telegram_secret_token, "bot_token": self.telegram_bot_token, "api_base": format!("{sink}/telegram") }),
        );
        settings.insert(
            "slack".into(),
            json!({ "signing_secret": self.slack_signing_secret, "bot_token": "xoxb-development", "api_base": format!("{sink}/slack") }),
        );
        settings.insert(
            "webchat".into(),
            json!({ "signing_secret": self.webchat_signing_secret, "reply_url": format!("{sink}/webchat") }),
        );
        settings.insert(
            "mailgun".into(),
            json!({ "signing_key": self.mailgun_signing_key, "from_address": from_address }),
        );
        settings
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// What the stand-in provider answers, shaped like each real API's success.
pub fn provider_success(channel: &str) -> serde_json::Value {
    match channel {
        "telegram" => json!({ "ok": true, "result": { "message_id": 1 } }),
        _ => json!({ "ok": true }),
    }
}
