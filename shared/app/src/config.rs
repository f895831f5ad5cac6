//! One typed configuration for every process, read once at start: from a
//! TOML file locally, from the environment plus the channel secret on AWS.
//!
//! Locally: `--config FILE`, else `$SWITCHBOARD_CONFIG`, else
//! `switchboard.toml` in the working directory if present, else defaults (the
//! embedded database under `.switchboard/` and development channels).
//!
//! On AWS: `SWITCHBOARD_<SECTION>__<KEY>` environment variables (for example
//! `SWITCHBOARD_EMAIL__FROM`, `SWITCHBOARD_AWS__SESSIONS_TABLE`), then the
//! Secrets Manager secret named by `SWITCHBOARD_AWS__SECRET_ARN`: its
//! `channels`, `admin_token`, `smtp_password`, and any other section of the
//! file format (`routing`, `email.chat_webhook`, …).

use std::collections::BTreeSet;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod file_error;

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::{Deserialize, Serialize};
use switchboard_channels::ChannelSettings;
use switchboard_channels::email::SmtpConfig;
use switchboard_domain::{RetryPolicy, Secret, SlaPolicy};
use switchboard_pipeline::access::TokenConfig;
use switchboard_pipeline::worker::WorkerSettings;

/// The configuration could not be read. The messages name the key as
/// written (file key or variable), never a value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The environment's (and the channel secret's) problems, each with its
    /// variable (`SWITCHBOARD_...`) or the secret's key.
    #[error("invalid configuration: {problem}")]
    Environment { problem: String },
    /// The file's problems, each with its key or line and column.
    #[error("invalid configuration in {}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error("the channel secret must be a JSON object")]
    SecretShape,
    #[error("invalid [experiments]")]
    Experiments(#[source] switchboard_domain::experiments::ExperimentError),
}

impl ConfigError {
    fn environment(error: figment::Error) -> Self {
        ConfigError::Environment {
            problem: file_error::in_environment(error),
        }
    }
}

/// The sections of the configuration, which are also the environment
/// variables' first key.
const SECTIONS: &[&str] = &[
    "server",
    "data_dir",
    "database",
    "knowledge_base",
    "routing",
    "email",
    "workers",
    "channels",
    "aws",
    "retention",
    "privacy",
    "sla",
    "tiers",
    "notify",
    "experiments",
    "feedback",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Where the database, outbox and development secrets live (local).
    pub data_dir: PathBuf,
    /// The SQLite file; defaults to `<data_dir>/switchboard.sqlite3` (local).
    pub database: Option<PathBuf>,
    /// A knowledge base file (JSONL or YAML) loaded at start. Without it the
    /// last `kb import` is used, and without that the built-in sample.
    pub knowledge_base: Option<PathBuf>,
    pub routing: WorkerSettings,
    pub email: EmailConfig,
    pub workers: WorkersConfig,
    /// One table per channel: `[channels.telegram]` with its secrets.
    /// Empty locally means development channels (see README).
    pub channels: Channels,
    /// Where the AWS resources are (Lambda functions only).
    pub aws: Option<AwsConfig>,
    pub retention: RetentionConfig,
    pub privacy: PrivacyConfig,
    /// Service levels per tier (`[sla.new]`, `[sla.regular]`, `[sla.vip]`).
    pub sla: SlaPolicy,
    /// Tiers from the business's CRM, and the welcome of new customers.
    pub tiers: TiersConfig,
    /// Chat notifications of the agents (Slack, Feishu, DingTalk, Teams).
    pub notify: NotifyConfig,
    /// A/B experiments: `[experiments.<name>]` with `variants` and per-variant overrides.
    pub experiments: switchboard_domain::Experiments,
    /// "Was this helpful?" and the satisfaction survey (`[feedback]`, `[feedback.csat]`).
    pub feedback: switchboard_domain::feedback::FeedbackSettings,
    /// The file this was read from (local): `serve` re-reads its tokens.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// `[tiers]`: where customers' tiers come from besides the configured VIPs
/// and the agents' API, and how new customers are welcomed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TiersConfig {
    /// The CRM's tier lookup (see README): called with the customer's key,
    /// signed with `secret`.
    pub lookup_url: Option<String>,
    pub secret: Option<Secret>,
    /// The CRM must answer within this; otherwise the stored tier is used.
    pub timeout_ms: u64,
    /// How long an answer is reused.
    pub cache_secs: u64,
    /// Common questions in a new customer's welcome menu; 0: no welcome.
    pub menu_size: usize,
}

impl Default for TiersConfig {
    fn default() -> Self {
        Self {
            lookup_url: None,
            secret: None,
            timeout_ms: 1500,
            cache_secs: 600,
            menu_size: 5,
        }
    }
}

impl TiersConfig {
    /// The CRM lookup, when `lookup_url` is set.
    pub fn directory(
        &self,
        http: reqwest::Client,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn switchboard_domain::TierDirectory>>> {
        use anyhow::Context;
        let Some(url) = &self.lookup_url else {
            return Ok(None);
        };
        let secret = self
            .secret
            .clone()
            .context("tiers.secret is needed with tiers.lookup_url")?;
        let directory = switchboard_channels::tiers::CrmTierDirectory::new(
            switchboard_channels::tiers::CrmTierConfig {
                lookup_url: url.clone(),
                secret,
                timeout: std::time::Duration::from_millis(self.timeout_ms.max(1)),
                cache_for: std::time::Duration::from_secs(self.cache_secs),
            },
            http,
        )?;
        Ok(Some(std::sync::Arc::new(directory)))
    }
}

/// `[notify]`: chat incoming webhooks the agents are notified on, each in
/// its platform's format; VIP and priority tickets can go to their own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// `/console#<conversation>` links in notifications start with
    /// `server.public_url`; without it they carry the API path.
    pub webhooks: Vec<switchboard_channels::notify::ChatHookConfig>,
}

/// How long customers' data is kept. Locally a sweep deletes older data; on
/// AWS the tables' time to live does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Conversations (with their transcripts), after their last message.
    /// Unset: 30 days on AWS, kept locally.
    pub conversations_days: Option<u32>,
    /// Feedback, after it was given. Unset: 400 days on AWS, kept locally.
    pub feedback_days: Option<u32>,
}

impl RetentionConfig {
    const DAY_MS: i64 = 86_400_000;

    pub fn conversations_ms(&self) -> Option<i64> {
        self.conversations_days
            .map(|days| i64::from(days) * Self::DAY_MS)
    }

    pub fn feedback_ms(&self) -> Option<i64> {
        self.feedback_days
            .map(|days| i64::from(days) * Self::DAY_MS)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Mask e-mail addresses, phone numbers, card and ID numbers in stored
    /// transcripts too (they are always masked in the unanswered-question log,
    /// reports and chat notifications).
    pub redact_transcripts: bool,
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
    /// Bearer token for the agents' API (`/api/...`), with the admin scope.
    pub admin_token: Option<Secret>,
    /// More tokens, by SHA-256 (`switchboard token create` makes them).
    pub tokens: Vec<TokenConfig>,
    /// Where the HTML report (`switchboard report --html`) is published; the
    /// console links to it.
    pub report_url: Option<String>,
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
    /// Without SMTP, mail is written to `<data_dir>/outbox` (local) or fails
    /// permanently (AWS, so that the dead-letter alarm fires).
    pub smtp: Option<SmtpConfig>,
    /// Also post escalations to a chat webhook (Slack, Discord, Teams).
    pub chat_webhook: Option<Secret>,
}

/// How queued jobs are consumed: in-process workers locally; on AWS the
/// retry policy and lease the consumer functions apply (the template sets
/// `max_attempts` and `visibility_secs` to the queues' `maxReceiveCount` and
/// visibility timeout).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Run the conversation workers in this process.
    pub conversation: bool,
    /// Run the escalation notifier in this process.
    pub notifier: bool,
    /// Run the outbound sender (every reply to customers) in this process.
    pub outbound: bool,
    /// Messages the conversation worker handles at once (each conversation
    /// is still in order).
    pub concurrency: usize,
    /// Escalation notifiers in parallel (VIP tickets still go first).
    pub notifier_concurrency: usize,
    /// Replies the outbound sender sends at once.
    pub outbound_concurrency: usize,
    /// Attempts before a job that keeps failing goes to the dead letters.
    pub max_attempts: NonZeroU32,
    /// Wait after the first failed attempt; it doubles after each further one...
    pub retry_initial_secs: u64,
    /// ...up to this.
    pub retry_max_secs: u64,
    /// How long a job is hidden from others while one worker has it; an
    /// attempt that takes longer is abandoned and the job retried.
    pub visibility_secs: NonZeroU64,
    /// How often a dead letter of each cause (a channel's API, SMTP) is tried
    /// again; when it succeeds, the others of its cause are put back in line.
    pub redrive_check_secs: u64,
}

/// The tables and queues of the stack, and the secret (set by the template).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub secret_arn: String,
    pub sessions_table: String,
    pub customers_table: String,
    pub idempotency_table: String,
    pub feedback_table: String,
    pub gaps_table: String,
    pub kb_table: String,
    pub credentials_table: String,
    pub inbound_queue_url: String,
    pub escalation_priority_queue_url: String,
    pub escalation_standard_queue_url: String,
    /// Delayed jobs: reassurance and service-level timers (standard queue).
    #[serde(default)]
    pub timers_queue_url: String,
    /// Every reply on its way to a customer.
    pub outbound_queue_url: String,
    /// Where a consumer puts a job that failed for good.
    pub inbound_dead_letter_queue_url: String,
    pub escalation_priority_dead_letter_queue_url: String,
    pub escalation_standard_dead_letter_queue_url: String,
    #[serde(default)]
    pub timers_dead_letter_queue_url: String,
    pub outbound_dead_letter_queue_url: String,
    /// The S3 bucket for job bodies too large for an SQS message.
    pub payload_bucket: String,
    /// The S3 bucket the weekly report pages go to (escalation notifier).
    #[serde(default)]
    pub reports_bucket: String,
}

impl AwsConfig {
    /// The section as the environment variables the SAM template sets
    /// (`SWITCHBOARD_AWS__SESSIONS_TABLE`, ...), named from the fields as
    /// [`Config::from_environment`] reads them, so a test can say which
    /// physical names a function was given.
    pub fn environment(&self) -> Vec<(String, String)> {
        let serde_json::Value::Object(fields) =
            serde_json::to_value(self).expect("plain strings serialize")
        else {
            unreachable!("a struct serializes as an object")
        };
        fields
            .into_iter()
            .filter_map(|(key, value)| {
                let value = value.as_str()?.to_owned();
                Some((
                    format!("SWITCHBOARD_AWS__{}", key.to_ascii_uppercase()),
                    value,
                ))
            })
            .collect()
    }
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
            aws: None,
            retention: RetentionConfig::default(),
            privacy: PrivacyConfig::default(),
            sla: SlaPolicy::default(),
            tiers: TiersConfig::default(),
            notify: NotifyConfig::default(),
            experiments: Default::default(),
            feedback: Default::default(),
            file: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            admin_token: None,
            tokens: Vec::new(),
            report_url: None,
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
            outbound: true,
            // Jobs in flight of one consumer each: tasks waiting on the
            // store and the providers, not threads. More in flight means
            // larger group commits: `bench pipeline` on 2 idle cores gave
            // 1,900-2,000 messages/s at 32, 2,170-2,420 at 64 (at 2,000/s
            // offered: p99 accept-to-reply 38 ms), 2,540 at 128.
            concurrency: 64,
            notifier_concurrency: 4,
            outbound_concurrency: 64,
            // With the backoff below: retried for about an hour and a half.
            max_attempts: NonZeroU32::new(14).expect("not zero"),
            retry_initial_secs: 5,
            retry_max_secs: 15 * 60,
            visibility_secs: NonZeroU64::new(60).expect("not zero"),
            redrive_check_secs: 5 * 60,
        }
    }
}

impl WorkersConfig {
    /// When a failed job is tried again, and when it is given up.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.get(),
            initial_backoff_ms: secs_to_ms(self.retry_initial_secs),
            max_backoff_ms: secs_to_ms(self.retry_max_secs),
        }
    }

    /// One delivery's lease.
    pub fn visibility(&self) -> Duration {
        Duration::from_secs(self.visibility_secs.get())
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl Config {
    /// Loads the local configuration by the resolution order above.
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

    /// A TOML file; relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let in_file = |problem| ConfigError::File {
            path: path.into(),
            problem,
        };
        // Syntax first, so its line and column are ours to say.
        let table: toml::Table =
            toml::from_str(&text).map_err(|error| in_file(file_error::syntax(&text, &error)))?;
        let mut config: Config = Figment::new()
            .merge(Serialized::defaults(table))
            .extract()
            .map_err(|error| in_file(file_error::in_file(error)))?;
        if let Some(base) = path.parent() {
            config.data_dir = base.join(&config.data_dir);
            config.database = config.database.map(|p| base.join(p));
            config.knowledge_base = config.knowledge_base.map(|p| base.join(p));
        }
        config.file = Some(path.to_path_buf());
        config.checked()
    }

    /// The AWS configuration from `SWITCHBOARD_*` variables alone (to find the
    /// secret), and with the secret's values on top ([`Config::with_secret`]).
    pub fn from_environment() -> Result<Self, ConfigError> {
        environment().extract().map_err(ConfigError::environment)
    }

    /// The environment's configuration with the channel secret on top:
    /// `admin_token` and `smtp_password` go where the file format keeps them,
    /// every other key is a section of the file format (`channels`, …).
    pub fn with_secret(secret: &serde_json::Value) -> Result<Self, ConfigError> {
        let mut rest = secret
            .as_object()
            .cloned()
            .ok_or(ConfigError::SecretShape)?;
        let admin_token = rest.remove("admin_token");
        let smtp_password = rest.remove("smtp_password");
        let mut config: Config = environment()
            .merge(Serialized::defaults(serde_json::Value::Object(rest)))
            .extract()
            .map_err(ConfigError::environment)?;
        if let Some(serde_json::Value::String(token)) = admin_token {
            config.server.admin_token = Some(Secret::new(token));
        }
        if let (Some(serde_json::Value::String(password)), Some(smtp)) =
            (smtp_password, config.email.smtp.as_mut())
        {
            smtp.password = Some(Secret::new(password));
        }
        config.checked()
    }

    /// Refuses experiments that name unknown variants or cannot assign anyone.
    fn checked(self) -> Result<Self, ConfigError> {
        self.experiments
            .validate(&self.routing.routing)
            .map_err(ConfigError::Experiments)?;
        Ok(self)
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
        self.channels.0.is_empty() && self.aws.is_none()
    }
}

/// `SWITCHBOARD_SECTION__KEY` variables of the known sections. A comma list
/// in `SWITCHBOARD_ROUTING__VIP_CUSTOMERS` is a list, as the template passes it.
fn environment() -> Figment {
    let known = |key: &str| {
        SECTIONS
            .iter()
            .any(|section| key == *section || key.starts_with(&format!("{section}.")))
    };
    let vip: BTreeSet<String> = std::env::var("SWITCHBOARD_ROUTING__VIP_CUSTOMERS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|customer| !customer.is_empty())
        .map(str::to_owned)
        .collect();
    let mut figment = Figment::new().merge(
        Env::prefixed("SWITCHBOARD_")
            .split("__")
            .filter(move |key| known(&key.as_str().to_ascii_lowercase()))
            .ignore(&["routing.vip_customers"]),
    );
    if !vip.is_empty() {
        figment = figment.merge(Serialized::default("routing.vip_customers", vip));
    }
    figment
}

#[cfg(test)]
mod tests {
    use figment::Jail;

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
    fn reads_experiments_as_the_issue_writes_them_and_refuses_typos() {
        let dir = std::env::temp_dir().join(format!("switchboard-ab-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("switchboard.toml");
        std::fs::write(
            &path,
            r#"
[experiments.bands]
variants = { control = 50, eager = 50 }
eager = { english_answer = 0.60, chinese_answer = 0.55 }
[experiments.welcome]
variants = { short = 1, long = 1 }
short = { welcome_english = "Hi!", menu_size = 3, ask_helpful = false }
"#,
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        let bands = &config.experiments.0["bands"];
        assert_eq!(bands.variants["eager"], 50);
        assert_eq!(bands.overrides["eager"].english_answer, Some(0.60));
        assert_eq!(bands.baseline(), Some("control"));
        let short = &config.experiments.0["welcome"].overrides["short"];
        assert_eq!((short.menu_size, short.ask_helpful), (Some(3), Some(false)));
        std::fs::write(
            &path,
            "[experiments.bands]\nvariants = { control = 1 }\neagre = { english_answer = 0.6 }\n",
        )
        .unwrap();
        let error = switchboard_domain::error_chain(&Config::from_file(&path).unwrap_err());
        assert!(error.contains("eagre"), "{error}");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key_and_file() {
        let path =
            std::env::temp_dir().join(format!("switchboard-bad-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, "[server]\nlisten_on = 1").unwrap();
        let error = Config::from_file(&path).unwrap_err();
        let text = switchboard_domain::error_chain(&error);
        let expected = format!(
            "invalid configuration in {}: key \"server.listen_on\": unknown field: found `listen_on`, expected `one of ",
            path.display()
        );
        assert!(text.starts_with(&expected), "{text}");
        // A syntax error: the file, the line and column, what is wrong; not the line's text.
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:1\"\nadmin_token = \"hunter2\n",
        )
        .unwrap();
        let text = switchboard_domain::error_chain(&Config::from_file(&path).unwrap_err());
        assert_eq!(
            text,
            format!(
                "invalid configuration in {}: line 3, column 23: invalid basic string",
                path.display()
            )
        );
        // A value of the wrong type in a nested table.
        std::fs::write(&path, "[workers]\nmax_attempts = \"many\"\n").unwrap();
        let text = switchboard_domain::error_chain(&Config::from_file(&path).unwrap_err());
        assert!(
            text.contains("key \"workers.max_attempts\": invalid type"),
            "{text}"
        );
        assert!(!text.contains("default."), "{text}");
        std::fs::remove_file(&path).unwrap();
    }

    /// Lambda reaches everything the file does: routing bands, the chat
    /// webhook, SMTP with its password, channels, the agents' token.
    #[test]
    #[allow(clippy::result_large_err)] // figment's test jail returns its own error
    fn the_environment_and_the_secret_make_the_same_config_as_a_file() {
        Jail::expect_with(|jail| {
            for (key, value) in [
                (
                    "SWITCHBOARD_AWS__SECRET_ARN",
                    "arn:aws:secretsmanager:eu-west-1:1:secret:sb",
                ),
                ("SWITCHBOARD_AWS__SESSIONS_TABLE", "sb-sessions"),
                ("SWITCHBOARD_AWS__CUSTOMERS_TABLE", "sb-customers"),
                ("SWITCHBOARD_AWS__IDEMPOTENCY_TABLE", "sb-idempotency"),
                ("SWITCHBOARD_AWS__FEEDBACK_TABLE", "sb-feedback"),
                ("SWITCHBOARD_AWS__GAPS_TABLE", "sb-gaps"),
                ("SWITCHBOARD_AWS__KB_TABLE", "sb-kb"),
                ("SWITCHBOARD_AWS__CREDENTIALS_TABLE", "sb-credentials"),
                (
                    "SWITCHBOARD_AWS__INBOUND_QUEUE_URL",
                    "https://sqs/inbound.fifo",
                ),
                (
                    "SWITCHBOARD_AWS__ESCALATION_PRIORITY_QUEUE_URL",
                    "https://sqs/p",
                ),
                (
                    "SWITCHBOARD_AWS__ESCALATION_STANDARD_QUEUE_URL",
                    "https://sqs/s",
                ),
                (
                    "SWITCHBOARD_AWS__INBOUND_DEAD_LETTER_QUEUE_URL",
                    "https://sqs/inbound-dlq.fifo",
                ),
                (
                    "SWITCHBOARD_AWS__ESCALATION_PRIORITY_DEAD_LETTER_QUEUE_URL",
                    "https://sqs/p-dlq",
                ),
                (
                    "SWITCHBOARD_AWS__ESCALATION_STANDARD_DEAD_LETTER_QUEUE_URL",
                    "https://sqs/s-dlq",
                ),
                ("SWITCHBOARD_AWS__OUTBOUND_QUEUE_URL", "https://sqs/o"),
                (
                    "SWITCHBOARD_AWS__OUTBOUND_DEAD_LETTER_QUEUE_URL",
                    "https://sqs/o-dlq",
                ),
                ("SWITCHBOARD_AWS__PAYLOAD_BUCKET", "sb-payloads"),
                ("SWITCHBOARD_EMAIL__FROM", "support@shop.test"),
                ("SWITCHBOARD_EMAIL__AGENTS", "agents@shop.test"),
                (
                    "SWITCHBOARD_EMAIL__SMTP__HOST",
                    "email-smtp.eu-west-1.amazonaws.com",
                ),
                ("SWITCHBOARD_EMAIL__SMTP__PORT", "587"),
                ("SWITCHBOARD_EMAIL__SMTP__TLS", "starttls"),
                (
                    "SWITCHBOARD_ROUTING__VIP_CUSTOMERS",
                    "telegram:1, slack:U2 ,",
                ),
                ("SWITCHBOARD_ROUTING__ENGLISH__ANSWER", "0.8"),
                ("SWITCHBOARD_ROUTING__ENGLISH__OFFER", "0.5"),
                // The template's service-level parameters.
                ("SWITCHBOARD_SLA__VIP__FIRST_RESPONSE_SECS", "600"),
                ("SWITCHBOARD_SLA__REGULAR__FIRST_RESPONSE_SECS", "7200"),
                // Not ours: the harness's and other tools' variables are left alone.
                ("SWITCHBOARD_TEST_DYNAMODB_ENDPOINT", "http://127.0.0.1:1"),
            ] {
                jail.set_env(key, value);
            }
            let config = Config::from_environment().expect("environment alone");
            let aws = config.aws.as_ref().unwrap();
            assert_eq!(aws.credentials_table, "sb-credentials");
            assert_eq!(
                aws.inbound_dead_letter_queue_url,
                "https://sqs/inbound-dlq.fifo"
            );
            assert_eq!(aws.payload_bucket, "sb-payloads");
            assert_eq!(config.sla.vip.first_response_secs, 600);
            assert_eq!(config.sla.regular.first_response_secs, 7200);
            assert_eq!(config.sla.new, SlaPolicy::default().new);
            let secret = serde_json::json!({
                "channels": { "telegram": { "secret_token": "t", "bot_token": "1:x" } },
                "admin_token": "admin-secret",
                "smtp_password": "smtp-secret",
                "email": { "chat_webhook": "https://hooks.example/T/B/X" },
                "routing": { "chinese": { "answer": 0.9, "offer": 0.5 } }
            });
            let config = Config::with_secret(&secret).expect("with the secret");
            assert_eq!(config.routing.vip_customers.len(), 2);
            assert!(config.routing.vip_customers.contains("slack:U2"));
            assert_eq!(config.routing.routing.english.answer, 0.8);
            assert_eq!(config.routing.routing.chinese.answer, 0.9);
            assert_eq!(config.email.from, "support@shop.test");
            let smtp = config.email.smtp.as_ref().unwrap();
            assert_eq!(
                (smtp.port, smtp.password.as_ref().map(Secret::expose)),
                (Some(587), Some("smtp-secret"))
            );
            assert_eq!(
                config.email.chat_webhook.as_ref().map(Secret::expose),
                Some("https://hooks.example/T/B/X")
            );
            assert_eq!(
                config.server.admin_token.as_ref().map(Secret::expose),
                Some("admin-secret")
            );
            assert!(config.channels.0.contains_key("telegram"));
            assert!(!config.is_development());

            jail.set_env("SWITCHBOARD_EMAIL__SMTP__PORT", "lots");
            let error = switchboard_domain::error_chain(&Config::from_environment().unwrap_err());
            assert_eq!(
                error,
                "invalid configuration: SWITCHBOARD_EMAIL__SMTP__PORT: invalid type: found a string, expected u16"
            );
            Ok(())
        });
    }

    /// The consumer functions' lease and retries come from the template
    /// (the queues' visibility timeout and `maxReceiveCount`), else default
    /// to about an hour and a half of retries; nonsense is refused by name.
    #[test]
    #[allow(clippy::result_large_err)] // figment's test jail returns its own error
    fn consumer_settings_come_from_the_template_or_default_to_it() {
        Jail::expect_with(|jail| {
            let workers = Config::from_environment().expect("defaults").workers;
            assert_eq!(workers.retry_policy(), RetryPolicy::default());
            assert!(workers.retry_policy().patience_ms() >= 60 * 60 * 1000);
            jail.set_env("SWITCHBOARD_WORKERS__VISIBILITY_SECS", "90");
            jail.set_env("SWITCHBOARD_WORKERS__MAX_ATTEMPTS", "3");
            let workers = Config::from_environment().expect("set").workers;
            assert_eq!(workers.visibility(), Duration::from_secs(90));
            assert_eq!(workers.retry_policy().max_attempts, 3);
            jail.set_env("SWITCHBOARD_WORKERS__MAX_ATTEMPTS", "0");
            let error = switchboard_domain::error_chain(&Config::from_environment().unwrap_err());
            assert!(
                error.starts_with("invalid configuration: SWITCHBOARD_WORKERS__MAX_ATTEMPTS: invalid value: found an integer, expected "),
                "{error}"
            );
            Ok(())
        });
    }

    /// On Lambda a bad variable is named as it is set, with what is wrong,
    /// and never its value (which may be a secret pasted in the wrong place);
    /// a bad key of the channel secret is named as the secret's key.
    #[test]
    #[allow(clippy::result_large_err)] // figment's test jail returns its own error
    fn environment_errors_name_the_variable_and_never_its_value() {
        Jail::expect_with(|jail| {
            let error =
                || switchboard_domain::error_chain(&Config::from_environment().unwrap_err());
            jail.set_env("SWITCHBOARD_EMAIL__SMTP__TLS", "sekrit-tls");
            jail.set_env("SWITCHBOARD_EMAIL__SMTP__HOST", "smtp.test");
            let text = error();
            assert_eq!(
                text,
                "invalid configuration: SWITCHBOARD_EMAIL__SMTP__TLS: unknown variant, expected one of none, starttls, tls"
            );
            jail.set_env("SWITCHBOARD_EMAIL__SMTP__TLS", "none");
            jail.set_env("SWITCHBOARD_WORKERS__RETRY_MAX_SECS", "hunter2-password");
            let text = error();
            assert_eq!(
                text,
                "invalid configuration: SWITCHBOARD_WORKERS__RETRY_MAX_SECS: invalid type: found a string, expected u64"
            );
            jail.set_env("SWITCHBOARD_WORKERS__RETRY_MAX_SECS", "60");
            // Serde loses the path below a flattened table: the variables set there are named.
            jail.set_env("SWITCHBOARD_ROUTING__ENGLISH__ANSWER", "high");
            assert_eq!(
                error(),
                "invalid configuration: SWITCHBOARD_ROUTING__ENGLISH__ANSWER: invalid type: found a string, expected f32"
            );
            jail.set_env("SWITCHBOARD_ROUTING__ENGLISH__ANSWER", "0.8");
            // A section half set: the missing variable is named.
            jail.set_env(
                "SWITCHBOARD_AWS__SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:sb",
            );
            let text = error();
            assert!(
                text.contains("SWITCHBOARD_AWS__SESSIONS_TABLE: missing field"),
                "{text}"
            );
            Ok(())
        });
        Jail::expect_with(|_| {
            let secret = serde_json::json!({ "workers": { "max_attempts": "very-secret" } });
            let text = switchboard_domain::error_chain(&Config::with_secret(&secret).unwrap_err());
            assert!(
                text.starts_with("invalid configuration: the channel secret's key \"workers.max_attempts\": invalid type: found a string"),
                "{text}"
            );
            assert!(!text.contains("very-secret"), "{text}");
            Ok(())
        });
    }

    /// The variables a test reports as a function's environment are the ones
    /// the SAM template sets and the ones this configuration reads.
    #[test]
    fn aws_environment_names_are_the_templates() {
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        )
        .unwrap();
        let aws = AwsConfig {
            secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:s".into(),
            sessions_table: "sessions".into(),
            ..AwsConfig::default()
        };
        let environment = aws.environment();
        assert_eq!(environment.len(), 20);
        for (name, _) in &environment {
            assert!(
                template.contains(&format!("        {name}: !Ref ")),
                "{name}"
            );
        }
        Jail::expect_with(|jail| {
            for (name, value) in &environment {
                jail.set_env(name, value);
            }
            let read = Config::from_environment().unwrap().aws.unwrap();
            assert_eq!(read.sessions_table, "sessions");
            assert_eq!(read.secret_arn, aws.secret_arn);
            Ok(())
        });
    }
}
