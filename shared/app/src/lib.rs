//! The composition root: from the configuration to the running parts, in one
//! place for every process. A flavour builds the [`Ports`] (the local one on
//! SQLite, the AWS one on DynamoDB and SQS); [`App::assemble`] builds the
//! channels and the pipeline's stages over them. `switchboard serve`, every
//! Lambda function's `main.rs` and the tests use it.

pub mod config;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "local")]
mod local_privacy;
#[cfg(feature = "local")]
pub use local_privacy::dev_reply_addressed_to;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_channels::email::EmailTransport;
use switchboard_channels::notify::{
    ChatHookNotifier, ChatWebhookConfig, ChatWebhookNotifier, EmailAgentNotifier,
    EmailNotifierConfig, MultiNotifier,
};
use switchboard_channels::{ChannelDeps, ChannelSettings, Registry};
use switchboard_domain::privacy::CustomerData;
use switchboard_domain::{
    AgentNotifier, Clock, CounterStore, CredentialStore, CustomerStore, FeedbackStore, GapLog,
    IdempotencyStore, ObjectReader, PayloadStore, QueueProducer, SessionStore, TierDirectory,
};
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::access::AccessTokens;
use switchboard_pipeline::desk::AgentDesk;
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::http::HttpApi;
use switchboard_pipeline::ingress::Ingress;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::outbound::OutboundSender;
use switchboard_pipeline::payload::OffloadingQueue;
use switchboard_pipeline::privacy::CustomerPrivacy;
use switchboard_pipeline::worker::{ConversationWorker, WorkerSettings};

pub use config::Config;

/// The adapters behind every port.
#[derive(Clone)]
pub struct Ports {
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub customers: Arc<dyn CustomerStore>,
    pub feedback: Arc<dyn FeedbackStore>,
    pub gaps: Arc<dyn GapLog>,
    /// The queues. [`App::assemble`] puts [`OffloadingQueue`] in front, so
    /// that bodies too large for a queue message go to `payloads`.
    pub queue: Arc<dyn QueueProducer>,
    /// Job bodies too large for a queue message (SQLite row, S3 object).
    pub payloads: Arc<dyn PayloadStore>,
    pub credentials: Arc<dyn CredentialStore>,
    /// Expiring counters (daily automated reply caps, bouncing addresses).
    pub counters: Arc<dyn CounterStore>,
    /// Objects other services stored (SES's raw mail in S3; none locally).
    pub objects: Arc<dyn ObjectReader>,
    pub email: Arc<dyn EmailTransport>,
    pub clock: Arc<dyn Clock>,
    pub http: reqwest::Client,
    /// Export and erase through the agents' API; `None` where the process
    /// has no business reading every table (the Lambda functions).
    pub customer_data: Option<Arc<dyn CustomerData>>,
}

/// Timeout of the shared HTTP client (the sender sets its own per call).
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP client every channel and notifier shares.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// Everything a process runs, over its ports.
pub struct App {
    pub config: Config,
    pub ports: Ports,
    pub channels: Arc<Registry>,
    pub ingress: Arc<Ingress>,
    pub desk: Arc<AgentDesk>,
    pub notifier: Arc<EscalationNotifier>,
    /// Every reply, from the outbound queue to the customer's channel.
    pub outbound: Arc<OutboundSender>,
    /// Who may call the agents' API.
    pub access: Arc<AccessTokens>,
    /// The CRM asked for customers' tiers (`[tiers] lookup_url`).
    pub tiers: Option<Arc<dyn TierDirectory>>,
}

impl App {
    /// The channels of `channel_settings` and every stage of the pipeline
    /// (the local process runs them all; a Lambda function builds only its
    /// own with the functions below, so that it links only what it runs).
    pub fn assemble(
        config: Config,
        channel_settings: &ChannelSettings,
        ports: Ports,
    ) -> anyhow::Result<Self> {
        let ports = ports.offloading();
        let channels = channels(channel_settings, &ports)?;
        let ingress = ingress(&channels, &ports);
        let desk = desk(&config, &ports);
        let outbound = outbound_sender(&config, &ports, channels.clone());
        let notifier = escalation_notifier(&config, &ports)?;
        let access = access_tokens(&config)?;
        let tiers = tier_directory(&config, &ports)?;
        warn_about_retired_settings(&config);
        Ok(Self {
            config,
            ports,
            channels,
            ingress,
            desk,
            notifier,
            outbound,
            access,
            tiers,
        })
    }

    /// Webhooks, and the agents' API when `agents` is set.
    pub fn http_api(&self, agents: bool) -> Arc<HttpApi> {
        http_api(
            &self.config,
            &self.ports,
            self.ingress.clone(),
            agents.then(|| self.desk.clone()),
            self.access.clone(),
        )
    }

    /// The one router of webhooks and the agents' API.
    pub fn router(&self, agents: bool) -> axum::Router {
        switchboard_pipeline::http::router(self.http_api(agents))
    }

    /// The conversation worker, with the knowledge base compiled.
    pub fn worker(&self, knowledge_base: KnowledgeBase) -> ConversationWorker {
        self.worker_answering_from(Arc::new(Faq::new(knowledge_base)))
    }

    /// The conversation worker answering from `faq`, which the caller may swap
    /// a newer knowledge base into while it runs (the local live reload).
    pub fn worker_answering_from(&self, faq: Arc<Faq>) -> ConversationWorker {
        conversation_worker(&self.config, &self.ports, faq, self.tiers.clone())
    }
}

// Each stage from the configuration and the ports. `App::assemble` builds
// them all; a Lambda function (`aws`) builds only the ones it runs.

impl Ports {
    /// The queues behind [`OffloadingQueue`], so that bodies too large for a
    /// queue message go to `payloads`. Once, before any stage is built.
    pub fn offloading(mut self) -> Self {
        self.queue = Arc::new(OffloadingQueue::new(
            self.queue.clone(),
            self.payloads.clone(),
            self.clock.clone(),
        ));
        self
    }
}

/// The channels that have settings in `channel_settings`.
pub fn channels(
    channel_settings: &ChannelSettings,
    ports: &Ports,
) -> anyhow::Result<Arc<Registry>> {
    let deps = ChannelDeps {
        http: ports.http.clone().into(),
        email: ports.email.clone(),
        credentials: ports.credentials.clone(),
        counters: ports.counters.clone(),
        objects: ports.objects.clone(),
        clock: ports.clock.clone(),
    };
    let channels =
        Registry::from_settings(channel_settings, &deps).context("configuring channels")?;
    tracing::info!(channels = ?channels.names(), "channels ready");
    Ok(Arc::new(channels))
}

/// Webhooks in: verify, parse, deduplicate, queue.
pub fn ingress(channels: &Arc<Registry>, ports: &Ports) -> Arc<Ingress> {
    Arc::new(Ingress::new(
        channels.clone(),
        ports.idempotency.clone(),
        ports.queue.clone(),
        ports.clock.clone(),
    ))
}

/// The agents' desk behind the agents' API.
pub fn desk(config: &Config, ports: &Ports) -> Arc<AgentDesk> {
    Arc::new(AgentDesk {
        sessions: ports.sessions.clone(),
        customers: ports.customers.clone(),
        feedback: ports.feedback.clone(),
        idempotency: ports.idempotency.clone(),
        queue: ports.queue.clone(),
        clock: ports.clock.clone(),
        sla: config.sla,
        csat: config.feedback.csat.clone(),
    })
}

/// Every reply, from the outbound queue to the customer's channel.
pub fn outbound_sender(
    config: &Config,
    ports: &Ports,
    channels: Arc<Registry>,
) -> Arc<OutboundSender> {
    Arc::new(OutboundSender {
        replies: channels,
        sessions: ports.sessions.clone(),
        idempotency: ports.idempotency.clone(),
        payloads: ports.payloads.clone(),
        clock: ports.clock.clone(),
        retry: config.workers.retry_policy(),
    })
}

/// Tickets to the agents.
pub fn escalation_notifier(
    config: &Config,
    ports: &Ports,
) -> anyhow::Result<Arc<EscalationNotifier>> {
    Ok(Arc::new(EscalationNotifier {
        notifier: agent_notifier(
            config,
            ports.email.clone(),
            ports.http.clone(),
            ports.clock.clone(),
        )?,
        idempotency: ports.idempotency.clone(),
        payloads: ports.payloads.clone(),
        clock: ports.clock.clone(),
    }))
}

/// Who may call the agents' API.
pub fn access_tokens(config: &Config) -> anyhow::Result<Arc<AccessTokens>> {
    Ok(Arc::new(
        AccessTokens::new(config.server.admin_token.as_ref(), &config.server.tokens)
            .context("configuring server.tokens")?,
    ))
}

/// The CRM asked for customers' tiers (`[tiers] lookup_url`), if configured.
pub fn tier_directory(
    config: &Config,
    ports: &Ports,
) -> anyhow::Result<Option<Arc<dyn TierDirectory>>> {
    config
        .tiers
        .directory(ports.http.clone())
        .context("configuring [tiers]")
}

/// Settings that are read but no longer used.
pub fn warn_about_retired_settings(config: &Config) {
    if config.routing.priority_response_minutes.is_some()
        || config.routing.standard_response_minutes.is_some()
    {
        tracing::warn!(
            "routing.priority_response_minutes and routing.standard_response_minutes are no longer used: the promise comes from [sla.*] first_response_secs"
        );
    }
}

/// What the router serves: webhooks, and the agents' API when `desk` is given.
pub fn http_api(
    config: &Config,
    ports: &Ports,
    ingress: Arc<Ingress>,
    desk: Option<Arc<AgentDesk>>,
    access: Arc<AccessTokens>,
) -> Arc<HttpApi> {
    let privacy = ports
        .customer_data
        .clone()
        .filter(|_| desk.is_some())
        .map(|data| {
            Arc::new(CustomerPrivacy::new(
                data,
                config.routing.vip_customers.clone(),
            ))
        });
    Arc::new(HttpApi {
        ingress,
        desk,
        privacy,
        access,
        public_url: config.server.public_url.clone(),
        report_url: config.server.report_url.clone(),
    })
}

/// The conversation worker answering from `faq`.
pub fn conversation_worker(
    config: &Config,
    ports: &Ports,
    faq: Arc<Faq>,
    tiers: Option<Arc<dyn TierDirectory>>,
) -> ConversationWorker {
    ConversationWorker {
        sessions: ports.sessions.clone(),
        customers: ports.customers.clone(),
        gaps: ports.gaps.clone(),
        feedback: ports.feedback.clone(),
        idempotency: ports.idempotency.clone(),
        queue: ports.queue.clone(),
        payloads: ports.payloads.clone(),
        faq,
        clock: ports.clock.clone(),
        settings: WorkerSettings {
            redact_transcripts: config.privacy.redact_transcripts,
            sla: config.sla,
            menu_size: config.tiers.menu_size,
            experiments: config.experiments.clone(),
            feedback: config.feedback.clone(),
            ..config.routing.clone()
        },
        tiers,
    }
}

/// Escalations by email, and to a chat webhook when one is configured.
fn agent_notifier(
    config: &Config,
    email: Arc<dyn EmailTransport>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
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
        let chat = ChatWebhookNotifier::new(ChatWebhookConfig { url: url.clone() }, http.clone())
            .context("configuring email.chat_webhook")?;
        notifiers.push(Arc::new(chat));
    }
    for (index, hook) in config.notify.webhooks.iter().enumerate() {
        let chat = ChatHookNotifier::new(
            hook.clone(),
            config.server.public_url.as_deref(),
            http.clone(),
            clock.clone(),
        )
        .with_context(|| format!("configuring notify.webhooks[{index}]"))?;
        notifiers.push(Arc::new(chat));
    }
    Ok(Arc::new(MultiNotifier::new(notifiers)))
}

/// The built-in sample knowledge base.
pub fn sample_knowledge_base() -> anyhow::Result<KnowledgeBase> {
    KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML)
        .context("reading the sample knowledge base")
}
