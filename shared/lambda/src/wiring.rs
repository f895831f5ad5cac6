//! Building each function's dependencies once, at init: AWS clients (with
//! the first connection already open), the channel secrets from Secrets
//! Manager, and the pipeline stages over the DynamoDB and SQS adapters.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use serde_json::Value;
use switchboard_aws::{
    Clients, ConsumerSettings, DynamoStores, S3PayloadStore, SqsConsumer, SqsQueueProducer, WarmUp,
};
use switchboard_channels::email::{EmailTransport, SmtpTransport};
use switchboard_channels::notify::{EmailAgentNotifier, EmailNotifierConfig};
use switchboard_channels::{ChannelDeps, ChannelSettings, Registry};
use switchboard_domain::{Clock, QueueName, QueueProducer, Secret, SendError, SystemClock};
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::api::HttpApi;
use switchboard_pipeline::desk::AgentDesk;
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::ingress::Ingress;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::payload::OffloadingQueue;
use switchboard_pipeline::worker::ConversationWorker;
use tracing::info;

use crate::config::FunctionConfig;
use crate::handlers::Consumer;

/// How long init may spend opening connections before the first event.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// What every function shares: config, clients, adapters and the secret.
pub struct Aws {
    pub config: FunctionConfig,
    pub clients: Clients,
    pub stores: DynamoStores,
    /// The SQS queues, with bodies too large for SQS stored in the payload bucket.
    pub queues: Arc<dyn QueueProducer>,
    pub payloads: Arc<S3PayloadStore>,
    /// `{"channels": {...}, "smtp_password": "...", "admin_token": "..."}`.
    secret: Value,
    clock: Arc<dyn Clock>,
}

/// Connects to AWS (any endpoint set by `AWS_ENDPOINT_URL` included), opens
/// the first connection to the services this function uses, and reads the secret.
pub async fn connect(config: FunctionConfig, warm: WarmUp<'_>) -> anyhow::Result<Aws> {
    let sdk = switchboard_aws::aws_config().await;
    connect_with(config, Clients::new(&sdk), warm).await
}

/// [`connect`] with clients made elsewhere (tests point them at local stand-ins).
pub async fn connect_with(
    config: FunctionConfig,
    clients: Clients,
    warm: WarmUp<'_>,
) -> anyhow::Result<Aws> {
    let secret = async {
        switchboard_aws::load_json_secret(&clients.secrets, &config.secret_arn)
            .await
            .context("reading the channel secret")
    };
    let (secret, ()) = tokio::join!(
        secret,
        switchboard_aws::warm_up(&clients, warm, WARM_UP_TIMEOUT)
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let payloads = Arc::new(switchboard_aws::payload_store(&clients, &config.resources));
    let sqs = Arc::new(SqsQueueProducer::new(
        clients.sqs.clone(),
        &config.resources,
    ));
    Ok(Aws {
        stores: DynamoStores::new(&clients.dynamodb, &config.resources),
        queues: Arc::new(OffloadingQueue::new(sqs, payloads.clone(), clock.clone())),
        payloads,
        secret: secret?,
        clock,
        clients,
        config,
    })
}

impl Aws {
    /// How records of `queues` are settled, with the template's queue settings.
    fn sqs_consumer(&self, queues: &[QueueName]) -> anyhow::Result<SqsConsumer> {
        let settings = ConsumerSettings::from_lookup(|name| std::env::var(name).ok())?;
        Ok(SqsConsumer::new(
            self.clients.sqs.clone(),
            &self.config.resources,
            queues,
            settings,
        ))
    }

    fn secret_value(&self, key: &str) -> Option<Secret> {
        switchboard_aws::secret_field(&self.secret, key)
    }

    fn channel_settings(&self) -> anyhow::Result<ChannelSettings> {
        match self.secret.get("channels") {
            None => Ok(ChannelSettings::new()),
            Some(channels) => serde_json::from_value(channels.clone())
                .context("the secret's \"channels\" must map channel names to their settings"),
        }
    }

    fn email(&self) -> anyhow::Result<Arc<dyn EmailTransport>> {
        Ok(match self.config.smtp(self.secret_value("smtp_password")) {
            Some(smtp) => Arc::new(SmtpTransport::new(smtp).context("configuring SMTP")?),
            None => Arc::new(NoSmtp),
        })
    }

    fn channels(&self) -> anyhow::Result<Arc<Registry>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let deps = ChannelDeps {
            http,
            email: self.email()?,
        };
        let registry = Registry::from_settings(&self.channel_settings()?, &deps)
            .context("configuring channels")?;
        info!(channels = ?registry.names(), "channels ready");
        Ok(Arc::new(registry))
    }
}

/// The ingress functions: webhooks, and the agents' API where enabled.
pub fn http_api(aws: &Aws, with_agents_api: bool) -> anyhow::Result<HttpApi> {
    let channels = aws.channels()?;
    let ingress = Arc::new(Ingress::new(
        channels.clone(),
        Arc::new(aws.stores.idempotency.clone()),
        aws.queues.clone(),
        aws.clock.clone(),
    ));
    let desk = with_agents_api.then(|| {
        Arc::new(AgentDesk {
            sessions: Arc::new(aws.stores.sessions.clone()),
            feedback: Arc::new(aws.stores.feedback.clone()),
            replies: channels,
            clock: aws.clock.clone(),
        })
    });
    Ok(HttpApi {
        ingress,
        desk,
        admin_token: aws.secret_value("admin_token"),
    })
}

/// The conversation worker, with the knowledge base compiled once at init.
pub async fn conversation_worker(aws: &Aws) -> anyhow::Result<Consumer<ConversationWorker>> {
    let kb = match aws
        .stores
        .kb
        .load_jsonl()
        .await
        .context("loading the knowledge base")?
    {
        Some(jsonl) => {
            KnowledgeBase::from_jsonl(&jsonl).context("reading the stored knowledge base")?
        }
        None => KnowledgeBase::from_yaml(switchboard_faq::SAMPLE_KB_YAML)
            .context("reading the sample knowledge base")?,
    };
    info!(entries = kb.entries.len(), "knowledge base compiled");
    let worker = ConversationWorker {
        sessions: Arc::new(aws.stores.sessions.clone()),
        customers: Arc::new(aws.stores.customers.clone()),
        gaps: Arc::new(aws.stores.gaps.clone()),
        idempotency: Arc::new(aws.stores.idempotency.clone()),
        queue: aws.queues.clone(),
        replies: aws.channels()?,
        payloads: aws.payloads.clone(),
        faq: Arc::new(Faq::new(kb)),
        clock: aws.clock.clone(),
        settings: aws.config.worker.clone(),
    };
    Ok(Consumer {
        stage: worker,
        sqs: aws.sqs_consumer(&[QueueName::Inbound])?,
    })
}

/// The escalation notifier: tickets to the agents by email.
pub fn escalation_notifier(aws: &Aws) -> anyhow::Result<Consumer<EscalationNotifier>> {
    let notifier = EmailAgentNotifier::new(
        EmailNotifierConfig {
            from: aws.config.from_email.clone(),
            agents: aws.config.agents_email.clone(),
            priority_agents: aws.config.priority_agents_email.clone(),
        },
        aws.email()?,
    )
    .context("configuring agent email")?;
    let notifier = EscalationNotifier {
        notifier: Arc::new(notifier),
        idempotency: Arc::new(aws.stores.idempotency.clone()),
        payloads: aws.payloads.clone(),
        clock: aws.clock.clone(),
    };
    Ok(Consumer {
        stage: notifier,
        sqs: aws.sqs_consumer(&[QueueName::EscalationPriority, QueueName::EscalationStandard])?,
    })
}

/// Stands in for SMTP where none is configured: sending fails permanently,
/// so the job ends in the dead-letter queue and its alarm fires.
struct NoSmtp;

#[async_trait]
impl EmailTransport for NoSmtp {
    async fn send(&self, _message: switchboard_channels::email::Message) -> Result<(), SendError> {
        Err(SendError::Permanent {
            channel: "email".into(),
            detail: "no SMTP server is configured (SmtpHost parameter)".into(),
            source: None,
        })
    }
}
