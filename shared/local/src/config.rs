//! Typed configuration for the local process, read once at start.
//!
//! Resolution: `--config FILE`, else `$SWITCHBOARD_CONFIG`, else
//! `switchboard.toml` in the working directory if present, else defaults:
//! the embedded database under `.switchboard/` and development channels.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchboard_channels::ChannelSettings;
use switchboard_channels::email::SmtpConfig;
use switchboard_domain::Secret;
use switchboard_pipeline::worker::WorkerSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Where the database, outbox and development secrets live.
    pub data_dir: PathBuf,
    /// The SQLite file; defaults to `<data_dir>/switchboard.sqlite3`.
    pub database: Option<PathBuf>,
    /// A knowledge base file (JSONL or YAML) loaded at start. Without it the
    /// last `kb import` is used, and without that the built-in sample.
    pub knowledge_base: Option<PathBuf>,
    pub routing: WorkerSettings,
    pub email: EmailConfig,
    pub workers: WorkersConfig,
    /// One table per channel: `[channels.telegram]` with its secrets.
    /// Empty means development channels (see README).
    pub channels: Channels,
}

/// Channel settings hold secrets, so only their names are ever printed.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Channels(pub ChannelSettings);

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// The URL providers call, used to rebuild the exact signed URL.
    pub public_url: Option<String>,
    /// Bearer token for the agents' API (`/api/...`).
    pub admin_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// Our address: agent notifications and automated replies come from it.
    pub from: String,
    /// Where escalations go.
    pub agents: String,
    /// Where VIP escalations go; defaults to `agents`.
    pub priority_agents: Option<String>,
    /// Without SMTP, mail is written to `<data_dir>/outbox` as `.eml` files.
    pub smtp: Option<SmtpConfig>,
    /// Also post escalations to a chat webhook (Slack, Discord, Teams).
    pub chat_webhook: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Run the conversation workers in this process.
    pub conversation: bool,
    /// Run the escalation notifier in this process.
    pub notifier: bool,
    /// Conversation workers in parallel (each conversation is still in order).
    pub concurrency: usize,
    /// Escalation notifiers in parallel (VIP tickets still go first).
    pub notifier_concurrency: usize,
    /// Attempts before a job that keeps failing goes to the dead letters.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; it doubles after each further one...
    pub retry_initial_secs: u64,
    /// ...up to this.
    pub retry_max_secs: u64,
    /// How long a job is hidden from others while one worker has it; an
    /// attempt that takes longer is abandoned and the job retried.
    pub visibility_secs: u64,
    /// How often a dead letter of each cause (a channel's API, SMTP) is tried
    /// again; when it succeeds, the others of its cause are put back in line.
    pub redrive_check_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            data_dir: PathBuf::from(".switchboard"),
            database: None,
            knowledge_base: None,
            routing: WorkerSettings::default(),
            email: EmailConfig::default(),
            workers: WorkersConfig::default(),
            channels: Channels::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            admin_token: None,
        }
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            from: "support@switchboard.localhost".into(),
            agents: "agents@switchboard.localhost".into(),
            priority_agents: None,
            smtp: None,
            chat_webhook: None,
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            conversation: true,
            notifier: true,
            concurrency: 4,
            notifier_concurrency: 4,
            // With the backoff below: retried for about an hour and a half.
            max_attempts: 14,
            retry_initial_secs: 5,
            retry_max_secs: 15 * 60,
            visibility_secs: 60,
            redrive_check_secs: 5 * 60,
        }
    }
}

impl Config {
    /// Loads the configuration by the resolution order above.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os("SWITCHBOARD_CONFIG").map(PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(from_env).or_else(|| {
            let local = PathBuf::from("switchboard.toml");
            local.exists().then_some(local)
        });
        match path {
            Some(path) => Self::from_file(&path),
            None => Ok(Self::default()),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        // Relative paths in a config file are relative to the file.
        if let Some(base) = path.parent() {
            config.data_dir = base.join(&config.data_dir);
            config.database = config.database.map(|p| base.join(p));
            config.knowledge_base = config.knowledge_base.map(|p| base.join(p));
        }
        Ok(config)
    }

    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("switchboard.sqlite3"))
    }

    /// The base URL providers reach this server at.
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Development mode: no channel is configured, so the server makes its own.
    pub fn is_development(&self) -> bool {
        self.channels.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_config_and_hides_secrets() {
        let dir = std::env::temp_dir().join(format!("switchboard-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("switchboard.toml");
        std::fs::write(
            &path,
            r#"
data_dir = "state"
[server]
listen = "127.0.0.1:9999"
admin_token = "let-me-in"
[routing]
vip_customers = ["telegram:42"]
[routing.chinese]
answer = 0.8
offer = 0.5
[email]
agents = "help@example.com"
[email.smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
[channels.telegram]
secret_token = "s3cret"
bot_token = "1:abc"
"#,
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.data_dir, dir.join("state"));
        assert_eq!(config.public_url(), "http://127.0.0.1:9999");
        assert!(config.routing.vip_customers.contains("telegram:42"));
        assert_eq!(config.routing.routing.chinese.answer, 0.8);
        assert_eq!(
            config.routing.routing.english,
            switchboard_domain::ConfidenceBands::default()
        );
        assert_eq!(config.email.smtp.as_ref().unwrap().port, Some(2525));
        assert!(!config.is_development());
        let printed = format!("{config:?}");
        assert!(!printed.contains("let-me-in"));
        assert!(!printed.contains("s3cret"));
        assert!(printed.contains("telegram"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let error = toml::from_str::<Config>("[server]\nlisten_on = 1").unwrap_err();
        assert!(error.to_string().contains("listen_on"));
    }
}
