//! The local flavour: every store and the durable queues in one SQLite file,
//! mail over SMTP or into an outbox folder, and development mode when no
//! channel is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchboard_channels::email::{EmailTransport, OutboxTransport, SmtpTransport};
use switchboard_channels::{ChannelSettings, registry};
use switchboard_domain::{QueueError, QueueItem, QueueName, QueueProducer, Secret, SystemClock};
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::access::AccessTokens;
use switchboard_pipeline::faq::{CompiledFaq, Faq};
use switchboard_sqlite::SqliteStore;
use tokio::sync::Notify;

use crate::{App, Config, Ports, http_client};

/// The local process's parts.
pub struct Local {
    pub app: App,
    pub store: SqliteStore,
    /// Woken whenever something is queued, so workers need not poll hard.
    pub wake: Arc<Notify>,
    /// Development mode's generated secrets, when no channel is configured.
    pub dev: Option<DevSecrets>,
}

/// The embedded queue, waking the in-process workers after each send.
struct WakingQueue {
    store: SqliteStore,
    wake: Arc<Notify>,
}

#[async_trait]
impl QueueProducer for WakingQueue {
    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError> {
        self.store.send(queue, item).await?;
        self.wake.notify_waiters();
        Ok(())
    }

    async fn send_after(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        // Nothing to wake for: the workers look again within their idle poll.
        self.store.send_after(queue, item, delay).await
    }

    async fn send_once(
        &self,
        key: &str,
        queue: QueueName,
        item: &QueueItem,
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<Option<switchboard_domain::Claim>, QueueError> {
        let claim = self
            .store
            .send_once(key, queue, item, now_ms, keep_until_ms)
            .await?;
        // Only an owned claim queued something.
        if claim.is_some_and(switchboard_domain::Claim::is_owned) {
            self.wake.notify_waiters();
        }
        Ok(claim)
    }
}

impl Local {
    pub async fn open(mut config: Config) -> anyhow::Result<Self> {
        let path = config.database_path();
        let store = SqliteStore::open(&path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        let wake = Arc::new(Notify::new());
        let (settings, dev) = if config.is_development() {
            let dev = DevSecrets::load_or_create(&config.data_dir)
                .context("creating development secrets")?;
            if config.server.admin_token.is_none() {
                config.server.admin_token = Some(Secret::new(dev.admin_token.clone()));
            }
            (
                dev.channel_settings(&config.public_url(), &config.email.from),
                Some(dev),
            )
        } else {
            (config.channels.0.clone(), None)
        };
        let ports = Ports {
            idempotency: Arc::new(store.clone()),
            sessions: Arc::new(store.clone()),
            customers: Arc::new(store.clone()),
            feedback: Arc::new(store.clone()),
            gaps: Arc::new(store.clone()),
            queue: Arc::new(WakingQueue {
                store: store.clone(),
                wake: wake.clone(),
            }),
            payloads: Arc::new(store.clone()),
            credentials: Arc::new(store.clone()),
            counters: Arc::new(store.clone()),
            objects: Arc::new(switchboard_domain::NoObjects),
            email: email_transport(&config)?,
            clock: Arc::new(SystemClock),
            http: http_client()?,
            customer_data: Some(Arc::new(crate::local_privacy::LocalCustomerData {
                store: store.clone(),
                data_dir: config.data_dir.clone(),
            })),
        };
        let app = App::assemble(config, &settings, ports)?;
        Ok(Self {
            app,
            store,
            wake,
            dev,
        })
    }

    /// The agents' API tokens `config` configures, as this process accepts
    /// them: development mode's admin token when the file names none.
    pub fn access_tokens(&self, config: &Config) -> anyhow::Result<AccessTokens> {
        let dev_admin = self
            .dev
            .as_ref()
            .map(|dev| Secret::new(dev.admin_token.clone()));
        let admin_token = config.server.admin_token.as_ref().or(dev_admin.as_ref());
        AccessTokens::new(admin_token, &config.server.tokens).context("configuring server.tokens")
    }

    /// The knowledge base in use.
    pub async fn knowledge_base(&self) -> anyhow::Result<KnowledgeBase> {
        load_knowledge_base(&self.app.config, &self.store).await
    }

    /// The knowledge base in use, compiled, with the generation of the import
    /// it came from (none for a configured file or the sample), so that a
    /// newer import can replace it while `serve` runs.
    pub async fn faq(&self) -> anyhow::Result<Faq> {
        // The generation first: an import landing meanwhile is then seen as newer.
        let generation = match self.app.config.knowledge_base {
            Some(_) => None,
            None => self.store.knowledge_base_generation().await?,
        };
        let knowledge_base = self.knowledge_base().await?;
        // Compiling a large knowledge base takes seconds: off the async threads.
        let compiled =
            tokio::task::spawn_blocking(move || CompiledFaq::compile(knowledge_base, generation))
                .await?;
        Ok(Faq::from_compiled(compiled))
    }
}

fn email_transport(config: &Config) -> anyhow::Result<Arc<dyn EmailTransport>> {
    Ok(match &config.email.smtp {
        Some(smtp) => Arc::new(SmtpTransport::new(smtp.clone()).context("configuring SMTP")?),
        None => Arc::new(OutboxTransport::new(config.data_dir.join("outbox"))),
    })
}

/// The periodic housekeeping: expired dedupe records and finished queue
/// items, then conversations and feedback past their retention.
pub async fn sweep(store: &SqliteStore, retention: &crate::config::RetentionConfig, now_ms: i64) {
    if let Err(error) = store.purge_expired(now_ms).await {
        tracing::warn!(error = %switchboard_domain::error_chain(&error), "could not purge expired records");
    }
    let before = |ms: Option<i64>| ms.map(|ms| now_ms.saturating_sub(ms));
    match store
        .sweep_retention(
            before(retention.conversations_ms()),
            before(retention.feedback_ms()),
        )
        .await
    {
        Ok((0, 0)) => {}
        Ok((conversations, feedback)) => {
            tracing::info!(conversations, feedback, "retention sweep deleted old data")
        }
        Err(error) => {
            tracing::warn!(error = %switchboard_domain::error_chain(&error), "retention sweep failed")
        }
    }
}

/// The configured file, else the last import, else the built-in sample.
pub async fn load_knowledge_base(
    config: &Config,
    store: &SqliteStore,
) -> anyhow::Result<KnowledgeBase> {
    if let Some(path) = &config.knowledge_base {
        return KnowledgeBase::load_answerable(path)
            .with_context(|| format!("loading knowledge base {}", path.display()));
    }
    if let Some(jsonl) = store.load_knowledge_base().await? {
        return KnowledgeBase::from_jsonl(&jsonl).context("reading the imported knowledge base");
    }
    crate::sample_knowledge_base()
}

/// Development mode's secrets, generated once and kept in
/// `<data_dir>/dev-secrets.json`: the agents' API token, and the seed every
/// channel's development secrets derive from, so that `simulate` signs with
/// what `serve` verifies.
#[derive(Clone, Serialize, Deserialize)]
pub struct DevSecrets {
    pub admin_token: String,
    pub seed: String,
}

impl DevSecrets {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("dev-secrets.json")
    }

    /// Reads the secrets, generating and saving them on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        if let Some(secrets) = Self::load(data_dir) {
            return Ok(secrets);
        }
        std::fs::create_dir_all(data_dir)?;
        let token = || switchboard_channels::kit::random_token();
        let secrets = Self {
            admin_token: token(),
            seed: format!("{}{}", token(), token()),
        };
        let text = serde_json::to_string_pretty(&secrets).expect("secrets serialise");
        write_private(&Self::path(data_dir), text.as_bytes())?;
        Ok(secrets)
    }

    pub fn load(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(Self::path(data_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Every channel, its replies going to this server's stand-in provider
    /// (`/dev/provider/<channel>`).
    pub fn channel_settings(&self, public_url: &str, from_address: &str) -> ChannelSettings {
        registry::dev_settings(&self.seed, from_address, |name| {
            format!("{public_url}/dev/provider/{name}")
        })
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
