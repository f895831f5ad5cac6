//! Wiring: adapters into ports, ports into the pipeline's stages.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use switchboard_channels::email::{EmailTransport, OutboxTransport, SmtpTransport};
use switchboard_channels::notify::{
    ChatWebhookConfig, ChatWebhookNotifier, EmailAgentNotifier, EmailNotifierConfig, MultiNotifier,
};
use switchboard_channels::{ChannelDeps, ChannelSettings, Registry};
use switchboard_domain::{
    AgentNotifier, Clock, QueueError, QueueItem, QueueName, QueueProducer, SystemClock,
};
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::api::HttpApi;
use switchboard_pipeline::desk::AgentDesk;
use switchboard_pipeline::faq::{CompiledFaq, Faq};
use switchboard_pipeline::ingress::Ingress;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::worker::ConversationWorker;
use switchboard_sqlite::SqliteStore;
use tokio::sync::Notify;
use tracing::info;

use crate::config::Config;
use crate::dev::DevSecrets;

/// Everything the local process runs.
pub struct App {
    pub config: Config,
    pub store: SqliteStore,
    pub ingress: Arc<Ingress>,
    /// Webhooks and the agents' API, as on AWS.
    pub api: Arc<HttpApi>,
    pub worker: Arc<ConversationWorker>,
    pub notifier: Arc<EscalationNotifier>,
    /// Woken whenever something is queued, so workers need not poll hard.
    pub wake: Arc<Notify>,
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
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = SqliteStore::open(&config.database_path()).with_context(|| {
            format!("opening the database {}", config.database_path().display())
        })?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let wake = Arc::new(Notify::new());
        let queue: Arc<dyn QueueProducer> = Arc::new(WakingQueue {
            store: store.clone(),
            wake: wake.clone(),
        });

        let (channel_settings, admin_token) = channel_settings(&config)?;
        let email = email_transport(&config)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let deps = ChannelDeps {
            http: http.clone(),
            email: email.clone(),
        };
        let channels = Arc::new(
            Registry::from_settings(&channel_settings, &deps).context("configuring channels")?,
        );
        info!(channels = ?channels.names(), development = config.is_development(), "channels ready");

        // The generation first: an import landing meanwhile is then seen as newer.
        let generation = match config.knowledge_base {
            Some(_) => None,
            None => store.knowledge_base_generation().await?,
        };
        let kb = load_knowledge_base(&config, &store).await?;
        info!(entries = kb.entries.len(), "knowledge base loaded");
        let faq = Arc::new(Faq::from_compiled(CompiledFaq::compile(kb, generation)));

        let ingress = Arc::new(Ingress::new(
            channels.clone(),
            Arc::new(store.clone()),
            queue.clone(),
            clock.clone(),
        ));
        let worker = Arc::new(ConversationWorker {
            sessions: Arc::new(store.clone()),
            customers: Arc::new(store.clone()),
            gaps: Arc::new(store.clone()),
            idempotency: Arc::new(store.clone()),
            queue: queue.clone(),
            replies: channels.clone(),
            faq,
            clock: clock.clone(),
            settings: config.routing.clone(),
        });
        let notifier = Arc::new(EscalationNotifier {
            notifier: agent_notifier(&config, email, http)?,
            idempotency: Arc::new(store.clone()),
            clock: clock.clone(),
        });
        let desk = Arc::new(AgentDesk {
            sessions: Arc::new(store.clone()),
            feedback: Arc::new(store.clone()),
            replies: channels,
            clock,
        });
        let api = Arc::new(HttpApi {
            ingress: ingress.clone(),
            desk: Some(desk),
            admin_token: admin_token.map(switchboard_domain::Secret::new),
        });
        Ok(Self {
            config,
            store,
            ingress,
            api,
            worker,
            notifier,
            wake,
        })
    }
}

/// The configured channels, or development channels when none are.
fn channel_settings(config: &Config) -> anyhow::Result<(ChannelSettings, Option<String>)> {
    let admin_token = config
        .server
        .admin_token
        .as_ref()
        .map(|t| t.expose().to_owned());
    if !config.is_development() {
        return Ok((config.channels.0.clone(), admin_token));
    }
    let secrets =
        DevSecrets::load_or_create(&config.data_dir).context("creating development secrets")?;
    let settings = secrets.channel_settings(&config.public_url(), &config.email.from);
    Ok((settings, admin_token.or(Some(secrets.admin_token))))
}

fn email_transport(config: &Config) -> anyhow::Result<Arc<dyn EmailTransport>> {
    Ok(match &config.email.smtp {
        Some(smtp) => Arc::new(SmtpTransport::new(smtp.clone()).context("configuring SMTP")?),
        None => Arc::new(OutboxTransport::new(config.data_dir.join("outbox"))),
    })
}

fn agent_notifier(
    config: &Config,
    email: Arc<dyn EmailTransport>,
    http: reqwest::Client,
) -> anyhow::Result<Arc<dyn AgentNotifier>> {
    let by_email = EmailAgentNotifier::new(
        EmailNotifierConfig {
            from: config.email.from.clone(),
            agents: config.email.agents.clone(),
            priority_agents: config.email.priority_agents.clone(),
        },
        email,
    )
    .context("configuring agent email")?;
    let mut notifiers: Vec<Arc<dyn AgentNotifier>> = vec![Arc::new(by_email)];
    if let Some(url) = &config.email.chat_webhook {
        let chat = ChatWebhookNotifier::new(ChatWebhookConfig { url: url.clone() }, http)
            .context("configuring email.chat_webhook")?;
        notifiers.push(Arc::new(chat));
    }
    Ok(Arc::new(MultiNotifier::new(notifiers)))
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
    KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML)
        .context("reading the sample knowledge base")
}
