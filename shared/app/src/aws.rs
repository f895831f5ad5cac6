//! The AWS flavour: DynamoDB stores, the SQS producer, the channel secret
//! from Secrets Manager, mail over SMTP (Amazon SES's SMTP interface).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use switchboard_aws::{
    AwsResources, Clients, ConsumerSettings, DynamoStores, S3ObjectReader, SqsConsumer,
    SqsQueueProducer, WarmUp,
};
use switchboard_channels::email::{EmailTransport, Message, SmtpTransport};
use switchboard_domain::{QueueName, SendError, SystemClock};
use switchboard_faq::KnowledgeBase;
use switchboard_pipeline::faq::Faq;
use switchboard_pipeline::notifier::EscalationNotifier;
use switchboard_pipeline::outbound::OutboundSender;
use switchboard_pipeline::worker::ConversationWorker;

use crate::config::AwsConfig;
use crate::{Config, Ports, http_client};

/// How long init may spend opening connections before the first event.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a function calls first, so its init opens those connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Webhooks (and the agents' API): the idempotency table, the inbound queue.
    Ingress,
    /// The conversation worker: sessions, the escalation queues.
    Worker,
    /// The escalation notifier: the idempotency table.
    Notifier,
    /// The outbound sender: the idempotency table.
    Outbound,
}

/// What a Lambda function builds its stage from: the configuration and the
/// ports. Each function builds only the stage it runs ([`Aws::router`],
/// [`Aws::worker`], [`Aws::notifier`], [`Aws::outbound`]), so that its binary
/// links only that stage's code (LTO drops what nothing references).
pub struct Aws {
    pub config: Config,
    /// The queue is behind `OffloadingQueue`; mail is refused until
    /// [`Aws::with_mail`] (only the functions that send mail link SMTP).
    pub ports: Ports,
    pub clients: Clients,
    pub stores: DynamoStores,
    pub resources: AwsResources,
}

/// The production path: configuration from the environment, the SDK from the
/// environment (`AWS_ENDPOINT_URL` included), the secret, warm connections.
pub async fn from_environment(role: Role) -> anyhow::Result<Aws> {
    let environment = Config::from_environment().context("reading the configuration")?;
    let aws = environment
        .aws
        .clone()
        .context("the SWITCHBOARD_AWS__* variables are missing")?;
    let clients = Clients::new(&switchboard_aws::lambda_config());
    let secret = init(role, &clients, &aws).await?;
    let config = Config::with_secret(&secret).context("reading the configuration")?;
    build(config, clients)
}

/// A function's AWS calls during init: the channel secret read while the
/// connections its role needs first are warmed up. Returns the secret.
/// (Tests call this too, so the permissions test sees the init calls.)
pub async fn init(
    role: Role,
    clients: &Clients,
    aws: &AwsConfig,
) -> anyhow::Result<serde_json::Value> {
    let resources = resources(aws);
    let secret = async {
        switchboard_aws::load_json_secret(&clients.secrets, &aws.secret_arn)
            .await
            .context("reading the channel secret")
    };
    let (secret, ()) = tokio::join!(
        secret,
        switchboard_aws::warm_up(clients, warm_up(role, &resources), WARM_UP_TIMEOUT)
    );
    secret
}

fn warm_up(role: Role, resources: &AwsResources) -> WarmUp<'_> {
    match role {
        Role::Ingress => WarmUp {
            dynamodb_table: Some(&resources.idempotency_table),
            sqs_queue_url: Some(&resources.inbound_queue_url),
        },
        Role::Worker => WarmUp {
            dynamodb_table: Some(&resources.sessions_table),
            sqs_queue_url: Some(&resources.escalation_standard_queue_url),
        },
        Role::Notifier | Role::Outbound => WarmUp {
            dynamodb_table: Some(&resources.idempotency_table),
            sqs_queue_url: None,
        },
    }
}

/// The parts over `clients`, from a complete configuration (the secret
/// already merged in). Tests call this with clients for local stand-ins.
pub fn build(config: Config, clients: Clients) -> anyhow::Result<Aws> {
    let aws = config
        .aws
        .clone()
        .context("the configuration has no [aws] section")?;
    let resources = resources(&aws);
    let mut stores = DynamoStores::new(&clients.dynamodb, &resources);
    // `[retention]` becomes the items' time to live.
    if let Some(ms) = config.retention.conversations_ms() {
        stores.sessions = stores.sessions.with_retention_ms(ms);
    }
    if let Some(ms) = config.retention.feedback_ms() {
        stores.feedback = stores.feedback.with_retention_ms(ms);
    }
    let ports = Ports {
        idempotency: Arc::new(stores.idempotency.clone()),
        sessions: Arc::new(stores.sessions.clone()),
        customers: Arc::new(stores.customers.clone()),
        feedback: Arc::new(stores.feedback.clone()),
        gaps: Arc::new(stores.gaps.clone()),
        queue: Arc::new(SqsQueueProducer::new(clients.sqs.clone(), &resources)),
        payloads: Arc::new(switchboard_aws::payload_store(&clients, &resources)),
        credentials: Arc::new(stores.credentials.clone()),
        counters: Arc::new(stores.counters.clone()),
        objects: Arc::new(S3ObjectReader::new(clients.s3.clone())),
        email: Arc::new(NoMailHere),
        clock: Arc::new(SystemClock),
        http: http_client()?,
        // Export and erase run from `switchboard customer ... --aws` with the
        // operator's credentials: no function is granted every table.
        customer_data: None,
    };
    crate::warn_about_retired_settings(&config);
    Ok(Aws {
        config,
        ports: ports.offloading(),
        clients,
        stores,
        resources,
    })
}

impl Aws {
    /// Mail over SMTP (`[email] smtp`; without it every mail fails for good,
    /// so that the job is dead-lettered and alarmed): for the functions that
    /// send mail, the escalation notifier and the outbound sender.
    pub fn with_mail(mut self) -> anyhow::Result<Self> {
        self.ports.email = match &self.config.email.smtp {
            Some(smtp) => Arc::new(SmtpTransport::new(smtp.clone()).context("configuring SMTP")?),
            None => Arc::new(NoSmtp),
        };
        Ok(self)
    }

    /// The ingress functions' router: webhooks of the configured channels,
    /// and the agents' API when `agents` is set.
    pub fn router(&self, agents: bool) -> anyhow::Result<axum::Router> {
        let channels = crate::channels(&self.config.channels.0, &self.ports)?;
        let api = crate::http_api(
            &self.config,
            &self.ports,
            crate::ingress(&channels, &self.ports),
            agents.then(|| crate::desk(&self.config, &self.ports)),
            crate::access_tokens(&self.config)?,
        );
        Ok(switchboard_pipeline::http::router(api))
    }

    /// The conversation worker, answering from the stored knowledge base.
    pub async fn worker(&self) -> anyhow::Result<ConversationWorker> {
        let faq = Arc::new(Faq::new(self.knowledge_base().await?));
        let tiers = crate::tier_directory(&self.config, &self.ports)?;
        Ok(crate::conversation_worker(
            &self.config,
            &self.ports,
            faq,
            tiers,
        ))
    }

    /// The escalation notifier (after [`Aws::with_mail`]).
    pub fn notifier(&self) -> anyhow::Result<Arc<EscalationNotifier>> {
        crate::escalation_notifier(&self.config, &self.ports)
    }

    /// The outbound sender over the configured channels (after
    /// [`Aws::with_mail`], for the email channels' replies).
    pub fn outbound(&self) -> anyhow::Result<Arc<OutboundSender>> {
        let channels = crate::channels(&self.config.channels.0, &self.ports)?;
        Ok(crate::outbound_sender(&self.config, &self.ports, channels))
    }

    /// The weekly report (escalation notifier, on its schedule): the stack's
    /// sessions and feedback, the page to the reports bucket, the mail to
    /// `[email] agents`. `None` without a reports bucket.
    pub fn weekly_report(&self) -> Option<switchboard_pipeline::weekly::WeeklyReport> {
        let bucket = self.resources.reports_bucket.clone();
        if bucket.is_empty() {
            return None;
        }
        let config = &self.config;
        Some(switchboard_pipeline::weekly::WeeklyReport {
            records: Arc::new(switchboard_aws::DynamoReportRecords::new(
                self.clients.dynamodb.clone(),
                self.resources.sessions_table.clone(),
                self.resources.feedback_table.clone(),
            )),
            archive: Arc::new(switchboard_aws::S3ReportArchive::new(
                self.clients.s3.clone(),
                bucket,
            )),
            email: self.ports.email.clone(),
            clock: self.ports.clock.clone(),
            from: config.email.from.clone(),
            to: config.email.agents.clone(),
            sla: config.sla,
            experiments: config.experiments.clone(),
        })
    }

    /// How a consumer function settles the records of `queues`: leases from
    /// the invocation's deadline, the `[workers]` retry policy (the queues'
    /// `maxReceiveCount` is its `max_attempts`), refusals to the dead-letter
    /// queues.
    pub fn sqs_consumer(&self, queues: &[QueueName]) -> SqsConsumer {
        let workers = &self.config.workers;
        SqsConsumer::new(
            self.clients.sqs.clone(),
            &self.resources,
            queues,
            ConsumerSettings {
                visibility: workers.visibility(),
                retry: workers.retry_policy(),
            },
        )
    }

    /// The stored knowledge base, else the built-in sample.
    pub async fn knowledge_base(&self) -> anyhow::Result<KnowledgeBase> {
        let stored = self
            .stores
            .kb
            .load_jsonl()
            .await
            .context("loading the knowledge base")?;
        match stored {
            Some(jsonl) => {
                KnowledgeBase::from_jsonl(&jsonl).context("reading the stored knowledge base")
            }
            None => crate::sample_knowledge_base(),
        }
    }
}

pub fn resources(aws: &AwsConfig) -> AwsResources {
    AwsResources {
        sessions_table: aws.sessions_table.clone(),
        customers_table: aws.customers_table.clone(),
        idempotency_table: aws.idempotency_table.clone(),
        feedback_table: aws.feedback_table.clone(),
        gaps_table: aws.gaps_table.clone(),
        kb_table: aws.kb_table.clone(),
        credentials_table: aws.credentials_table.clone(),
        inbound_queue_url: aws.inbound_queue_url.clone(),
        escalation_priority_queue_url: aws.escalation_priority_queue_url.clone(),
        escalation_standard_queue_url: aws.escalation_standard_queue_url.clone(),
        timers_queue_url: aws.timers_queue_url.clone(),
        timers_dead_letter_queue_url: aws.timers_dead_letter_queue_url.clone(),
        outbound_queue_url: aws.outbound_queue_url.clone(),
        inbound_dead_letter_queue_url: aws.inbound_dead_letter_queue_url.clone(),
        escalation_priority_dead_letter_queue_url: aws
            .escalation_priority_dead_letter_queue_url
            .clone(),
        escalation_standard_dead_letter_queue_url: aws
            .escalation_standard_dead_letter_queue_url
            .clone(),
        outbound_dead_letter_queue_url: aws.outbound_dead_letter_queue_url.clone(),
        payload_bucket: aws.payload_bucket.clone(),
        reports_bucket: aws.reports_bucket.clone(),
    }
}

/// The `[aws]` section for resources made by `create_tables_and_queues`.
pub fn aws_config(resources: &AwsResources, secret_arn: &str) -> AwsConfig {
    AwsConfig {
        secret_arn: secret_arn.to_owned(),
        sessions_table: resources.sessions_table.clone(),
        customers_table: resources.customers_table.clone(),
        idempotency_table: resources.idempotency_table.clone(),
        feedback_table: resources.feedback_table.clone(),
        gaps_table: resources.gaps_table.clone(),
        kb_table: resources.kb_table.clone(),
        credentials_table: resources.credentials_table.clone(),
        inbound_queue_url: resources.inbound_queue_url.clone(),
        escalation_priority_queue_url: resources.escalation_priority_queue_url.clone(),
        escalation_standard_queue_url: resources.escalation_standard_queue_url.clone(),
        timers_queue_url: resources.timers_queue_url.clone(),
        timers_dead_letter_queue_url: resources.timers_dead_letter_queue_url.clone(),
        outbound_queue_url: resources.outbound_queue_url.clone(),
        inbound_dead_letter_queue_url: resources.inbound_dead_letter_queue_url.clone(),
        escalation_priority_dead_letter_queue_url: resources
            .escalation_priority_dead_letter_queue_url
            .clone(),
        escalation_standard_dead_letter_queue_url: resources
            .escalation_standard_dead_letter_queue_url
            .clone(),
        outbound_dead_letter_queue_url: resources.outbound_dead_letter_queue_url.clone(),
        payload_bucket: resources.payload_bucket.clone(),
        reports_bucket: resources.reports_bucket.clone(),
    }
}

/// The mail transport of a function that sends no mail (ingress, the
/// worker): refused for good, as a mistake to be seen in the dead letters.
struct NoMailHere;

#[async_trait]
impl EmailTransport for NoMailHere {
    async fn send(&self, _message: Message) -> Result<(), SendError> {
        Err(SendError::Permanent {
            channel: "email".into(),
            detail: "this function sends no mail (Aws::with_mail was not called)".into(),
            source: None,
        })
    }
}

/// Stands in for SMTP where none is configured: sending fails permanently,
/// so the job ends in the dead-letter queue and its alarm fires.
struct NoSmtp;

#[async_trait]
impl EmailTransport for NoSmtp {
    async fn send(&self, _message: Message) -> Result<(), SendError> {
        Err(SendError::Permanent {
            channel: "email".into(),
            detail: "no SMTP server is configured (SmtpHost parameter)".into(),
            source: None,
        })
    }
}
