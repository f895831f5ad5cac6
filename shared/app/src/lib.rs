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
    /// The channels of `channel_settings` and the pipeline's stages.
    pub fn assemble(
        config: Config,
        channel_settings: &ChannelSettings,
        mut ports: Ports,
    ) -> anyhow::Result<Self> {
        ports.queue = Arc::new(OffloadingQueue::new(
            ports.queue.clone(),
            ports.payloads.clone(),
            ports.clock.clone(),
        ));
        let deps = ChannelDeps {
            http: ports.http.clone().into(),
            email: ports.email.clone(),
            credentials: ports.credentials.clone(),
            counters: ports.counters.clone(),
            objects: ports.objects.clone(),
            clock: ports.clock.clone(),
        };
        let channels = Arc::new(
            Registry::from_settings(channel_settings, &deps).context("configuring channels")?,
        );
        tracing::info!(channels = ?channels.names(), "channels ready");
        let ingress = Arc::new(Ingress::new(
            channels.clone(),
            ports.idempotency.clone(),
            ports.queue.clone(),
            ports.clock.clone(),
        ));
        let desk = Arc::new(AgentDesk {
            sessions: ports.sessions.clone(),
            customers: ports.customers.clone(),
            feedback: ports.feedback.clone(),
            idempotency: ports.idempotency.clone(),
            queue: ports.queue.clone(),
            clock: ports.clock.clone(),
            sla: config.sla,
            csat: config.feedback.csat.clone(),
        });
        let outbound = Arc::new(OutboundSender {
            replies: channels.clone(),
            sessions: ports.sessions.clone(),
            idempotency: ports.idempotency.clone(),
            payloads: ports.payloads.clone(),
            clock: ports.clock.clone(),
            retry: config.workers.retry_policy(),
        });
        let notifier = Arc::new(EscalationNotifier {
            notifier: agent_notifier(
                &config,
                ports.email.clone(),
                ports.http.clone(),
                ports.clock.clone(),
            )?,
            idempotency: ports.idempotency.clone(),
            payloads: ports.payloads.clone(),
            clock: ports.clock.clone(),
        });
        let access = Arc::new(
            AccessTokens::new(config.server.admin_token.as_ref(), &config.server.tokens)
                .context("configuring server.tokens")?,
        );
        let tiers = config
            .tiers
            .directory(ports.http.clone())
            .context("configuring [tiers]")?;
        if config.routing.priority_response_minutes.is_some()
            || config.routing.standard_response_minutes.is_some()
        {
            tracing::warn!(
                "routing.priority_response_minutes and routing.standard_response_minutes are no longer used: the promise comes from [sla.*] first_response_secs"
            );
        }
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
        Arc::new(HttpApi {
            ingress: self.ingress.clone(),
            desk: agents.then(|| self.desk.clone()),
            privacy: self
                .ports
                .customer_data
                .clone()
                .filter(|_| agents)
                .map(|data| {
                    Arc::new(CustomerPrivacy::new(
                        data,
                        self.config.routing.vip_customers.clone(),
                    ))
                }),
            access: self.access.clone(),
            public_url: self.config.server.public_url.clone(),
            report_url: self.config.server.report_url.clone(),
        })
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
        ConversationWorker {
            sessions: self.ports.sessions.clone(),
            customers: self.ports.customers.clone(),
            gaps: self.ports.gaps.clone(),
            feedback: self.ports.feedback.clone(),
            idempotency: self.ports.idempotency.clone(),
            queue: self.ports.queue.clone(),
            payloads: self.ports.payloads.clone(),
            faq,
            clock: self.ports.clock.clone(),
            settings: WorkerSettings {
                redact_transcripts: self.config.privacy.redact_transcripts,
                sla: self.config.sla,
                menu_size: self.config.tiers.menu_size,
                experiments: self.config.experiments.clone(),
                feedback: self.config.feedback.clone(),
                ..self.config.routing.clone()
            },
            tiers: self.tiers.clone(),
        }
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
