//! The six Lambda functions end to end, fed the event JSON API Gateway and
//! SQS send (HTTP through `lambda_http`, as the functions serve it), against
//! DynamoDB Local and moto (started by `tests/services/aws.sh`), with a
//! stand-in Telegram API and a real SMTP server. The parts are built by the
//! AWS composition root, the channels read from the Secrets Manager secret.
//!
//! Each function has clients of its own that sign with its template logical
//! id and go through the recording proxy (`tests/services/permissions.py`),
//! and the test writes the environment it gave each function to the call log:
//! `permissions.py check` then proves every recorded call is granted by
//! `template.yaml`, and every grant used. The stand-in Lambda service (the
//! event source poller) and the test's own setup use ordinary clients.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use switchboard_app::aws::{Aws, Role};
use switchboard_app::config::{
    AwsConfig, Channels, Config, EmailConfig, ServerConfig, WorkersConfig,
};
use switchboard_aws::{Clients, EventSourcePoller, QueueRef};
use switchboard_channels::WebhookRequest;
use switchboard_channels::email::{SmtpConfig, SmtpTls};
use switchboard_domain::{ConversationKey, QueueName, SessionStore, SlaPolicy, TierSla};
use switchboard_e2e::{
    ADMIN_TOKEN, SmtpSink, StandIn, aws_test_endpoint, channel, channel_settings, mail_header,
    mail_text, mailgun_form, now_secs, signed_request, telegram_bot_token, telegram_tap,
    telegram_update,
};
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_lambda::invoke;
use switchboard_pipeline::worker::WorkerSettings;

/// An HTTP API v2 event for `method path` with `headers` and `body`.
fn api_gateway_event(method: &str, path: &str, headers: Value, body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.eu-west-1.amazonaws.com",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "" },
            "requestId": "r1",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1795132800000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// `POST /webhooks/telegram` with a signed update.
fn telegram_event(body: &str, secret_token: &str) -> Value {
    api_gateway_event(
        "POST",
        "/webhooks/telegram",
        json!({
            "content-type": "application/json",
            "x-telegram-bot-api-secret-token": secret_token
        }),
        body,
    )
}

fn mailgun_event(body: &str) -> Value {
    api_gateway_event(
        "POST",
        "/webhooks/mailgun",
        json!({ "content-type": "application/x-www-form-urlencoded" }),
        body,
    )
}

/// The agents' API through its one route (`ANY /api/{proxy+}`), with the admin token.
fn admin_event(path: &str, body: Value) -> Value {
    let mut event = api_gateway_event(
        "POST",
        path,
        json!({
            "content-type": "application/json",
            "authorization": format!("Bearer {ADMIN_TOKEN}")
        }),
        &body.to_string(),
    );
    event["routeKey"] = "ANY /api/{proxy+}".into();
    event["requestContext"]["routeKey"] = "ANY /api/{proxy+}".into();
    event
}

/// A webhook request (signed by the channel) as an HTTP API v2 event, its
/// query string and exact body bytes kept.
fn webhook_event(request: &WebhookRequest) -> Value {
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().into()))
        .collect();
    let mut event = api_gateway_event(
        request.method().as_str(),
        request.uri().path(),
        Value::Object(headers),
        "",
    );
    event["rawQueryString"] = request.uri().query().unwrap_or_default().into();
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(request.body())
        .into();
    event["isBase64Encoded"] = true.into();
    event
}

/// A customer's message as `name`'s provider sends it, signed (and, for
/// WeCom, encrypted) with the development settings.
fn sample_delivery(name: &str, customer: &str, text: &str) -> WebhookRequest {
    let channel = channel(name);
    let now_ms = now_secs() * 1000;
    let mut request = channel.sample(customer, text, now_ms);
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    *request.uri_mut() = format!("/webhooks/{name}{query}").parse().unwrap();
    channel.sign(&mut request, now_ms).unwrap();
    request
}

/// What API Gateway asks the authorizer about a request to the agents' API.
fn authorizer_event(authorization: &str) -> Value {
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/POST/api/feedback",
        "identitySource": [authorization],
        "routeKey": "ANY /api/{proxy+}",
        "rawPath": "/api/feedback",
        "rawQueryString": "",
        "headers": { "authorization": authorization, "content-type": "application/json" },
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example",
            "http": { "method": "POST", "path": "/api/feedback", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "" },
            "requestId": "r2", "routeKey": "ANY /api/{proxy+}", "stage": "$default",
            "time": "21/Nov/2026:00:00:00 +0000", "timeEpoch": 1795132800000u64
        }
    })
}

/// Bytes written by the functions (their log lines, their metrics), shared
/// with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn take(&self) -> Vec<Value> {
        let lines = self.lines();
        self.0.lock().unwrap().clear();
        lines
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The EMF documents' values of `metric` with `label` = `value`, summed.
fn metric_total(documents: &[Value], metric: &str, label: &str, value: &str) -> u64 {
    documents
        .iter()
        .filter(|d| d[label] == value)
        .filter_map(|d| d[metric].as_u64())
        .sum()
}

/// An agents' API call with the admin token: `method path?query` with `body`
/// and extra `headers`.
fn api_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Value {
    let mut all = json!({
        "content-type": "application/json",
        "authorization": format!("Bearer {ADMIN_TOKEN}")
    });
    for (name, value) in headers {
        all[*name] = json!(value);
    }
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let mut event = api_gateway_event(method, path, all, &body);
    event["rawQueryString"] = json!(query);
    event
}

/// The JSON body of a function's HTTP response.
fn response_json(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

async fn queue_ref(clients: &Clients, url: &str) -> QueueRef {
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn =
        attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    QueueRef {
        url: url.to_owned(),
        arn,
    }
}

/// Receives one batch as Lambda's event source would, waiting for it.
async fn next_batch(poller: &EventSourcePoller) -> SqsEvent {
    for _ in 0..20 {
        if let Some(event) = poller.receive(1).await.unwrap() {
            return event;
        }
    }
    panic!("no message arrived on the queue");
}

/// Where the functions' calls go and are recorded.
struct Recorder {
    proxy: String,
    calls: String,
}

impl Recorder {
    fn from_environment() -> Self {
        Self {
            proxy: aws_test_endpoint("SWITCHBOARD_TEST_AWS_PROXY"),
            calls: aws_test_endpoint("SWITCHBOARD_TEST_AWS_CALLS"),
        }
    }

    /// One function as its main.rs starts it: its own clients (signing as
    /// `logical_id`), the secret read and connections warmed during init,
    /// the parts built from the configuration. Logs the environment the
    /// template would give it, so the checker can resolve its policies.
    async fn start(&self, logical_id: &str, role: Role, aws: &AwsConfig, base: &Config) -> Aws {
        let clients = Clients::local_as(logical_id, &self.proxy).await;
        let context = json!({
            "context": logical_id,
            "region": "us-east-1",
            "env": aws.environment().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        });
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.calls)
            .unwrap();
        writeln!(log, "{context}").unwrap();
        let secret = switchboard_app::aws::init(role, &clients, aws)
            .await
            .unwrap();
        // The configuration as the template's variables and the secret make it.
        let config = Config {
            aws: Some(aws.clone()),
            channels: serde_json::from_value::<Channels>(secret["channels"].clone()).unwrap(),
            server: ServerConfig {
                admin_token: secret["admin_token"].as_str().map(Into::into),
                ..ServerConfig::default()
            },
            ..base.clone()
        };
        let aws = switchboard_app::aws::build(config, clients).unwrap();
        // The functions that send mail build SMTP, as their main.rs do.
        match role {
            Role::Notifier | Role::Outbound => aws.with_mail().unwrap(),
            Role::Ingress | Role::Worker => aws,
        }
    }

    /// The agents' API authorizer as its main.rs starts it.
    async fn start_authorizer(&self, aws: &AwsConfig) -> switchboard_lambda::authorizer::Gate {
        let logical_id = "ApiAuthorizerFunction";
        let clients = Clients::local_as(logical_id, &self.proxy).await;
        let context = json!({
            "context": logical_id,
            "region": "us-east-1",
            "env": aws.environment().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        });
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.calls)
            .unwrap();
        writeln!(log, "{context}").unwrap();
        switchboard_lambda::authorizer::Gate::open(clients, aws.secret_arn.clone())
            .await
            .unwrap()
    }
}

/// The whole flow is one long future (every stage's futures nested in it):
/// more than a test thread's default stack holds in a debug build, so it
/// runs on a thread of its own with a larger one.
#[test]
fn every_function_flows_from_api_gateway_through_sqs_to_answers_escalation_emails_and_agents() {
    const STACK_BYTES: usize = 32 * 1024 * 1024;
    std::thread::Builder::new()
        .name("through-handlers".into())
        .stack_size(STACK_BYTES)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(STACK_BYTES)
                .build()
                .unwrap()
                .block_on(Box::pin(every_function_flows()))
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn every_function_flows() {
    // The functions' log lines and metrics, as they would reach CloudWatch.
    let logs = Captured::default();
    let log_writer = logs.clone();
    switchboard_lambda::init_tracing_to(move || log_writer.clone());
    let metrics = Captured::default();
    let metric_writer = metrics.clone();
    switchboard_lambda::metrics::init_with(
        "lambda-test",
        "Switchboard/test",
        Box::new(move |documents| metric_writer.0.lock().unwrap().extend_from_slice(documents)),
    )
    .unwrap();

    // Setup with ordinary clients, straight to the stand-ins: not recorded.
    let setup = Clients::local(
        &aws_test_endpoint("SWITCHBOARD_TEST_DYNAMODB_ENDPOINT"),
        &aws_test_endpoint("SWITCHBOARD_TEST_MOTO_ENDPOINT"),
    )
    .await;
    let recorder = Recorder::from_environment();
    let prefix = format!("e2e{}", std::process::id());
    let resources = switchboard_aws::create_tables_and_queues(&setup, &prefix)
        .await
        .unwrap();
    // The knowledge base imported into its table (the sample's entries), as
    // `switchboard kb import --dynamodb-table` does: the worker reads it back.
    let entries: Vec<String> = switchboard_app::sample_knowledge_base()
        .unwrap()
        .to_jsonl()
        .lines()
        .map(str::to_owned)
        .collect();
    switchboard_aws::DynamoStores::new(&setup.dynamodb, &resources)
        .kb
        .put_raw_entries(&entries, now_secs() * 1000)
        .await
        .unwrap();
    let standin = StandIn::start().await;
    let smtp_dir = tempfile::tempdir().unwrap();
    let mut smtp = SmtpSink::start(smtp_dir.path());
    let settings = channel_settings(&standin.base);
    let secret = json!({
        "channels": {
            "telegram": settings["telegram"], "mailgun": settings["mailgun"],
            "messenger": settings["messenger"], "wecom": settings["wecom"]
        },
        "admin_token": ADMIN_TOKEN
    });
    let secret_token = settings["telegram"]["secret_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_arn = setup
        .secrets
        .create_secret()
        .name(format!("{prefix}-channels"))
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let aws = switchboard_app::aws::aws_config(&resources, &secret_arn);
    let base = Config {
        email: EmailConfig {
            from: "support@shop.test".into(),
            agents: "agents@shop.test".into(),
            priority_agents: Some("vip-agents@shop.test".into()),
            smtp: Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port: Some(smtp.port),
                username: None,
                password: None,
                tls: SmtpTls::None,
                timeout_secs: Some(10),
            }),
            ..EmailConfig::default()
        },
        // The large email's sender is a VIP: its ticket takes the priority queue.
        routing: WorkerSettings {
            vip_customers: ["mailgun:grace@customer.test".to_owned()].into(),
            ..WorkerSettings::default()
        },
        // Retries come back after a second, not five.
        workers: WorkersConfig {
            retry_initial_secs: 1,
            ..WorkersConfig::default()
        },
        // Short service levels: a hand-over's timers are due within seconds.
        sla: {
            let tier = TierSla {
                first_response_secs: 3,
                reassure_after_secs: 1,
            };
            SlaPolicy {
                new: tier,
                regular: tier,
                vip: tier,
            }
        },
        ..Config::default()
    };

    // The six functions, each built as its main.rs does.
    let im = recorder
        .start("IngressImFunction", Role::Ingress, &aws, &base)
        .await
        .router(true)
        .unwrap();
    let social = recorder
        .start("IngressSocialFunction", Role::Ingress, &aws, &base)
        .await
        .router(false)
        .unwrap();
    let email = recorder
        .start("IngressEmailFunction", Role::Ingress, &aws, &base)
        .await
        .router(false)
        .unwrap();
    let worker = recorder
        .start("ConversationWorkerFunction", Role::Worker, &aws, &base)
        .await;
    let worker = Consumer {
        stage: worker.worker().await.unwrap(),
        sqs: worker.sqs_consumer(&[QueueName::Inbound, QueueName::Timers]),
    };
    let notifier = recorder
        .start("EscalationNotifierFunction", Role::Notifier, &aws, &base)
        .await;
    let mut weekly = notifier.weekly_report().expect("the reports bucket is set");
    // The report covers the seven whole days before its run: run it a week
    // from now, so that today's conversations are in it.
    weekly.clock = Arc::new(AWeekFromNow);
    let notifier = Consumer {
        stage: notifier.notifier().unwrap(),
        sqs: notifier.sqs_consumer(&[QueueName::EscalationPriority, QueueName::EscalationStandard]),
    };
    let sender = recorder
        .start("OutboundSenderFunction", Role::Outbound, &aws, &base)
        .await;
    let sender = Consumer {
        stage: sender.outbound().unwrap(),
        sqs: sender.sqs_consumer(&[QueueName::Outbound]),
    };
    // The agents' API authorizer: only the secret, during init.
    let authorizer_tokens = recorder.start_authorizer(&aws).await;
    // The Lambda service's event sources.
    let outbound = EventSourcePoller::new(
        setup.sqs.clone(),
        queue_ref(&setup, &resources.outbound_queue_url).await,
    );
    let inbound = EventSourcePoller::new(
        setup.sqs.clone(),
        queue_ref(&setup, &resources.inbound_queue_url).await,
    );
    let escalations = EventSourcePoller::new(
        setup.sqs.clone(),
        queue_ref(&setup, &resources.escalation_standard_queue_url).await,
    );
    let priority_escalations = EventSourcePoller::new(
        setup.sqs.clone(),
        queue_ref(&setup, &resources.escalation_priority_queue_url).await,
    );
    let run_worker = async |expected: usize| {
        for _ in 0..expected {
            let batch = next_batch(&inbound).await;
            let result =
                handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
                    .await
                    .unwrap();
            assert!(result.batch_item_failures.is_empty());
            inbound.settle(&batch, &result).await.unwrap();
        }
    };
    // The outbound sender's batches until `expected` replies went out.
    let run_outbound = async |expected: usize| {
        let mut sent = 0;
        while sent < expected {
            let batch = next_batch(&outbound).await;
            let result =
                handlers::outbound(&sender, LambdaEvent::new(batch.clone(), Context::default()))
                    .await
                    .unwrap();
            assert!(result.batch_item_failures.is_empty());
            outbound.settle(&batch, &result).await.unwrap();
            sent += batch.records.len();
        }
    };
    let run_notifier = async || {
        let tickets = next_batch(&escalations).await;
        let result = handlers::escalations(
            &notifier,
            LambdaEvent::new(tickets.clone(), Context::default()),
        )
        .await
        .unwrap();
        assert!(result.batch_item_failures.is_empty());
        escalations.settle(&tickets, &result).await.unwrap();
    };

    // IM ingress: API Gateway event in, 200 out, one message on the FIFO queue.
    let update = telegram_update(42_001, 4242, "What are your opening hours?").to_string();
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    // The invocation wrote its metrics (EMF) on its way out.
    let documents = metrics.take();
    assert_eq!(
        metric_total(&documents, "messages_received", "channel", "telegram"),
        1,
        "{documents:?}"
    );
    assert_eq!(
        documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Switchboard/test"
    );
    // The same delivery again (a provider retry) is acknowledged and not queued twice.
    let retry = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(retry["statusCode"], 200);
    // A forged one is refused.
    let refused = invoke(im.clone(), telegram_event(&update, "wrong"))
        .await
        .unwrap();
    assert_eq!(refused["statusCode"], 401);

    // Worker: the SQS event in, the answer queued; the outbound sender: the
    // answer at the stand-in Telegram API.
    let batch = next_batch(&inbound).await;
    assert_eq!(batch.records.len(), 1, "queued once");
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    assert!(
        standin
            .matching("/sendMessage", |r| r.body["chat_id"] == 4242)
            .is_empty(),
        "queued, not sent by the worker"
    );
    run_outbound(1).await;
    let documents = metrics.take();
    assert_eq!(
        metric_total(&documents, "messages_answered", "channel", "telegram"),
        1,
        "{documents:?}"
    );
    assert!(
        documents.iter().any(|d| d["channel"] == "telegram"
            && d["processing_ms"].is_array()
            && d["faq_confidence"][0].as_f64().is_some_and(|c| c > 0.5)),
        "{documents:?}"
    );
    let replies = standin.matching("/sendMessage", |r| r.body["chat_id"] == 4242);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Monday to Saturday")
    );

    // "Was this helpful?": a confident answer asks with inline buttons; the
    // tap (a callback query) is a vote the worker stores in the feedback table.
    let update = telegram_update(42_007, 4242, "How long does shipping take?").to_string();
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    run_worker(1).await;
    run_outbound(1).await;
    let asked = standin.matching("/sendMessage", |r| r.body["chat_id"] == 4242);
    let keyboard = &asked.last().unwrap().body["reply_markup"]["inline_keyboard"];
    assert_eq!(keyboard[0][0]["callback_data"], "1", "{keyboard}");
    let tap = telegram_tap(42_008, 4242, 2, "1").to_string();
    let response = invoke(im.clone(), telegram_event(&tap, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    run_worker(1).await;
    run_outbound(1).await;
    let thanked = standin.matching("/sendMessage", |r| r.body["chat_id"] == 4242);
    assert_eq!(
        thanked.last().unwrap().body["text"],
        "Thank you for your feedback!"
    );
    metrics.take();

    // An unanswerable question: worker → escalation queue → notifier → SMTP.
    let update = telegram_update(
        42_002,
        4242,
        "Do you sell replacement parts for the 1987 model?",
    )
    .to_string();
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    // One correlation id from the webhook to the reply and the ticket: ingress
    // gives it and queues it with the message...
    let batch = next_batch(&inbound).await;
    let queued: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    let correlation_id = queued["correlation_id"].as_str().unwrap().to_owned();
    let carries_it = |line: &Value| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["correlation_id"] == correlation_id))
    };
    let logged = |message: &str| {
        logs.lines()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .filter(|line| carries_it(line))
            .count()
    };
    assert_eq!(logged("message queued"), 1);
    // ... the worker's lines carry it, the reply's included ...
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    assert_eq!(logged("reply queued"), 1, "the worker queues the reply");
    assert_eq!(logged("message processed"), 1);
    // ... and the outbound sender's, which sends it.
    run_outbound(1).await;
    assert_eq!(
        logged("reply sent"),
        2,
        "the outbound sender's and the channel sender's"
    );
    // ... and so do the notifier's, and the ticket the agents get.
    run_notifier().await;
    assert_eq!(
        logged("agents notified"),
        2,
        "the notifier's and the mail transport's"
    );
    let documents = metrics.take();
    assert_eq!(
        metric_total(&documents, "messages_escalated", "channel", "telegram"),
        1,
        "{documents:?}"
    );
    assert_eq!(
        metric_total(&documents, "tickets_notified", "channel", "telegram"),
        1,
        "{documents:?}"
    );
    let mails = smtp.wait_for(1).await;
    assert_eq!(
        mail_header(&mails[0], "X-Switchboard-Correlation").as_deref(),
        Some(correlation_id.as_str())
    );
    assert!(mail_text(&mails[0]).contains(&format!("Correlation id:    {correlation_id}")));
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("agents@shop.test")
    );
    let text = mail_text(&mails[0]);
    assert!(
        text.contains("replacement parts for the 1987 model"),
        "{text}"
    );
    assert!(
        text.contains("What are your opening hours?"),
        "the transcript: {text}"
    );
    let notices = standin.matching("/sendMessage", |r| r.body["chat_id"] == 4242);
    assert_eq!(
        notices.len(),
        4,
        "the customer was told a person will answer (after an answer, a vote and its thanks)"
    );

    // The agents' API on the IM ingress: an agent answers, the customer rates.
    let conversation = format!(
        "telegram:{}:4242",
        telegram_bot_token().split(':').next().unwrap()
    );
    // The waiting list (the sessions' `waiting` index), a claim, the
    // conversation, a customer's tier, and a reply queued once per key.
    let response = invoke(
        im.clone(),
        api_event(
            "GET",
            "/api/conversations",
            "status=waiting",
            &[],
            Value::Null,
        ),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let list = response_json(&response);
    assert_eq!(
        list["conversations"][0]["key"],
        conversation.as_str(),
        "{list}"
    );
    assert_eq!(list["conversations"][0]["reason"], "no_confident_match");
    let claim = |agent: &'static str| {
        invoke(
            im.clone(),
            api_event(
                "POST",
                &format!("/api/conversations/{conversation}/claim"),
                "",
                &[],
                json!({ "agent": agent }),
            ),
        )
    };
    assert_eq!(claim("Lee").await.unwrap()["statusCode"], 200);
    assert_eq!(claim("Ann").await.unwrap()["statusCode"], 409);
    let response = invoke(
        im.clone(),
        api_event(
            "PUT",
            "/api/customers/telegram:4242",
            "",
            &[],
            json!({ "tier": "vip" }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let reply = || {
        invoke(
            im.clone(),
            api_event(
                "POST",
                &format!("/api/conversations/{conversation}/reply"),
                "",
                &[("idempotency-key", "reply-1")],
                json!({ "text": "Yes, we still stock them.", "agent": "Lee" }),
            ),
        )
    };
    let first = reply().await.unwrap();
    assert_eq!(first["statusCode"], 202, "{first}");
    let again = reply().await.unwrap();
    assert_eq!(again["statusCode"], 202);
    assert_eq!(
        response_json(&first)["reply_id"],
        response_json(&again)["reply_id"]
    );
    run_outbound(1).await;
    let replies = standin.matching("/sendMessage", |r| r.body["chat_id"] == 4242);
    assert_eq!(
        replies.last().unwrap().body["text"],
        "Yes, we still stock them."
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["text"] == "Yes, we still stock them.")
            .count(),
        1,
        "sent once"
    );
    let response = invoke(
        im.clone(),
        api_event(
            "GET",
            &format!("/api/conversations/{conversation}"),
            "",
            &[],
            Value::Null,
        ),
    )
    .await
    .unwrap();
    let view = response_json(&response);
    let agent_turn = view["turns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "agent")
        .unwrap()
        .clone();
    assert_eq!(agent_turn["delivery"]["state"], "delivered", "{view}");
    let response = invoke(
        im.clone(),
        admin_event(
            "/api/feedback",
            json!({ "conversation": conversation, "helpful": true, "satisfaction": 5 }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    // A resolve queues the satisfaction survey on the timers queue.
    let response = invoke(
        im.clone(),
        api_event(
            "POST",
            &format!("/api/conversations/{conversation}/resolve"),
            "",
            &[],
            json!({ "agent": "Lee" }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");

    // Email ingress: the mail's text is cut to 20,000 characters and the
    // thread's References to the first and newest ids, but a hostile sender's
    // display name of 110 KiB still makes a job larger than the queue takes
    // inline: it is stored aside in S3 and a reference queued; the worker
    // reads it back, cannot answer it and escalates it (a VIP: the priority
    // queue). The ticket carries the whole transcript, here long from earlier
    // exchanges, so it goes through S3 too, to the notifier, which emails it
    // to the VIP agents. The customer's replies stay small enough to queue inline.
    let text = format!(
        "Do you sell replacement parts for the 1987 model? {}",
        "The serial number under the base plate reads 1987-XZ-4411. ".repeat(600)
    );
    let references: Vec<String> = (0..4_500)
        .map(|n| format!("<thread-{n}@customer.test>"))
        .collect();
    let from = format!("\"{}\" <grace@customer.test>", "Grace ".repeat(19_000));
    let form = mailgun_form(
        &from,
        "Spare parts",
        &text,
        "<large@customer.test>",
        &[("References", &references.join(" "))],
    );
    assert!(text.chars().count() > 20_000 && form.len() < 1024 * 1024);
    let response = invoke(email, mailgun_event(&form)).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let batch = next_batch(&inbound).await;
    let queued = batch.records[0].body.as_deref().unwrap();
    let stored_at = queued
        .strip_prefix("switchboard-payload:")
        .expect("a reference is queued, not the body");
    let stored = setup
        .s3
        .get_object()
        .bucket(&resources.payload_bucket)
        .key(stored_at)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let message: switchboard_domain::InboundMessage = serde_json::from_slice(&stored).unwrap();
    assert!(message.text.ends_with("cut at 20,000 characters)"));
    // The earlier exchanges of the thread, as the worker would have stored them.
    let mut earlier = switchboard_domain::Session::start(
        &message,
        switchboard_domain::Language::En,
        now_secs() * 1000 - 60_000,
    );
    for turn in 0..8 {
        earlier.push(switchboard_domain::Turn {
            role: if turn % 2 == 0 {
                switchboard_domain::Role::Customer
            } else {
                switchboard_domain::Role::Bot
            },
            text: format!("Earlier exchange {turn}. ").repeat(1_000),
            at_ms: now_secs() * 1000 - 60_000 + turn,
            message_id: None,
            faq_entry: None,
            confidence: None,
            agent: None,
        });
    }
    switchboard_aws::DynamoStores::new(&setup.dynamodb, &resources)
        .sessions
        .save(&earlier)
        .await
        .unwrap();
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    // The customer is told by mail that a person will answer.
    run_outbound(1).await;
    // SMTP is down at first: the notifier releases its claim and delays the
    // retry (ChangeMessageVisibility); the retry mails it once.
    smtp.stop();
    let tickets = next_batch(&priority_escalations).await;
    assert!(
        tickets.records[0].body.as_deref().unwrap().len() < 1024,
        "the ticket is queued as a reference"
    );
    let result = handlers::escalations(
        &notifier,
        LambdaEvent::new(tickets.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(result.batch_item_failures.len(), 1, "retried later");
    priority_escalations
        .settle(&tickets, &result)
        .await
        .unwrap();
    smtp.restart();
    let tickets = next_batch(&priority_escalations).await;
    let result = handlers::escalations(
        &notifier,
        LambdaEvent::new(tickets.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert!(result.batch_item_failures.is_empty());
    priority_escalations
        .settle(&tickets, &result)
        .await
        .unwrap();
    let mails = smtp.wait_for(2).await;
    let ticket = mails
        .iter()
        .find(|m| mail_text(m).contains("1987-XZ-4411"))
        .expect("the large question is emailed to the agents");
    assert_eq!(
        mail_header(ticket, "X-Envelope-To").as_deref(),
        Some("vip-agents@shop.test")
    );

    // Failures, as the functions meet them on AWS. Another attempt holds the
    // message's reply: the worker releases its claim and delays the retry
    // (ChangeMessageVisibility). Then the provider refuses the reply for now:
    // the sender releases its claim and delays the retry; the retry answers once.
    let bot = telegram_bot_token().split(':').next().unwrap().to_owned();
    let held = format!("reply:telegram:{bot}:42003");
    let claims = switchboard_aws::DynamoStores::new(&setup.dynamodb, &resources).idempotency;
    use switchboard_domain::IdempotencyStore;
    assert!(
        claims
            .claim(&held, now_secs() * 1000, 60_000)
            .await
            .unwrap()
            .is_owned()
    );
    let update = telegram_update(42_003, 5151, "What are your opening hours?").to_string();
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    let batch = next_batch(&inbound).await;
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(result.batch_item_failures.len(), 1, "retried later");
    inbound.settle(&batch, &result).await.unwrap();
    claims.release(&held).await.unwrap();
    run_worker(1).await;
    standin.set_down(true);
    let batch = next_batch(&outbound).await;
    let result = handlers::outbound(&sender, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(result.batch_item_failures.len(), 1, "retried later");
    outbound.settle(&batch, &result).await.unwrap();
    standin.set_down(false);
    run_outbound(1).await;
    let replies = standin.matching("/sendMessage", |r| r.body["chat_id"] == 5151);
    assert_eq!(replies.len(), 1, "answered once");

    // The same on the standard escalation queue.
    let update =
        telegram_update(42_004, 6161, "Can you engrave a name on the 1987 model?").to_string();
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    run_worker(1).await;
    run_outbound(1).await;
    smtp.stop();
    let tickets = next_batch(&escalations).await;
    let result = handlers::escalations(
        &notifier,
        LambdaEvent::new(tickets.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(result.batch_item_failures.len(), 1, "retried later");
    escalations.settle(&tickets, &result).await.unwrap();
    smtp.restart();
    run_notifier().await;
    let mails = smtp.wait_for(3).await;
    assert_eq!(
        mails
            .iter()
            .filter(|m| mail_text(m).contains("engrave a name"))
            .count(),
        1
    );

    // The weekly report: EventBridge's schedule invokes the notifier, which
    // stores the week's page in the reports bucket and mails its link.
    let schedule = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T07:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/weekly"], "detail": {}
    });
    let answer = handlers::notifier_events(
        &notifier,
        Some(&weekly),
        LambdaEvent::new(schedule, Context::default()),
    )
    .await
    .unwrap();
    let link = answer["report"].as_str().unwrap();
    assert!(link.contains(&resources.reports_bucket), "{link}");
    let listed = setup
        .s3
        .list_objects_v2()
        .bucket(&resources.reports_bucket)
        .prefix("reports/")
        .send()
        .await
        .unwrap();
    let key = listed.contents()[0].key().unwrap().to_owned();
    assert!(link.ends_with(&key), "{link} {key}");
    let page = setup
        .s3
        .get_object()
        .bucket(&resources.reports_bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(page.content_type(), Some("text/html; charset=utf-8"));
    let page = page.body.collect().await.unwrap().into_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("<section id=\"experiments\""));
    assert!(
        page.contains("replacement parts for the 1987 model"),
        "unanswered"
    );
    let mails = smtp.wait_for(4).await;
    let report_mail = mails
        .iter()
        .find(|m| mail_header(m, "Subject").is_some_and(|s| s.contains("weekly report")))
        .expect("the report's mail");
    assert!(mail_text(report_mail).contains(link));
    assert_eq!(
        mail_header(report_mail, "X-Envelope-To").as_deref(),
        Some("agents@shop.test")
    );
    // A queue batch still reaches the tickets' handler.
    let batch = json!({ "Records": [] });
    let answer = handlers::notifier_events(
        &notifier,
        Some(&weekly),
        LambdaEvent::new(batch, Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));

    // Records no function can read go to their dead-letter queues at once.
    setup
        .sqs
        .send_message()
        .queue_url(&resources.inbound_queue_url)
        .message_body("not a job")
        .message_group_id("broken")
        .message_deduplication_id("broken-1")
        .send()
        .await
        .unwrap();
    let batch = next_batch(&inbound).await;
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(
        result.batch_item_failures.is_empty(),
        "settled: dead-lettered"
    );
    inbound.settle(&batch, &result).await.unwrap();
    for (queue, poller, dead_letters) in [
        (
            &resources.escalation_standard_queue_url,
            &escalations,
            &resources.escalation_standard_dead_letter_queue_url,
        ),
        (
            &resources.escalation_priority_queue_url,
            &priority_escalations,
            &resources.escalation_priority_dead_letter_queue_url,
        ),
    ] {
        setup
            .sqs
            .send_message()
            .queue_url(queue)
            .message_body("not a ticket")
            .send()
            .await
            .unwrap();
        let tickets = next_batch(poller).await;
        let result = handlers::escalations(
            &notifier,
            LambdaEvent::new(tickets.clone(), Context::default()),
        )
        .await
        .unwrap();
        assert!(
            result.batch_item_failures.is_empty(),
            "settled: dead-lettered"
        );
        poller.settle(&tickets, &result).await.unwrap();
        let dead = setup
            .sqs
            .receive_message()
            .queue_url(dead_letters)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        assert_eq!(dead.messages().len(), 1, "{dead_letters}");
    }
    let dead = setup
        .sqs
        .receive_message()
        .queue_url(&resources.inbound_dead_letter_queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1, "the inbound dead letter");
    setup
        .sqs
        .send_message()
        .queue_url(&resources.outbound_queue_url)
        .message_body("not a reply")
        .send()
        .await
        .unwrap();
    let batch = next_batch(&outbound).await;
    let result = handlers::outbound(&sender, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(
        result.batch_item_failures.is_empty(),
        "settled: dead-lettered"
    );
    outbound.settle(&batch, &result).await.unwrap();
    let dead = setup
        .sqs
        .receive_message()
        .queue_url(&resources.outbound_dead_letter_queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1, "the outbound dead letter");
    let documents = metrics.take();
    for queue in [
        "inbound",
        "escalation_priority",
        "escalation_standard",
        "outbound",
    ] {
        assert_eq!(
            metric_total(&documents, "dead_letters", "queue", queue),
            1,
            "{queue}: {documents:?}"
        );
    }

    // A webhook body larger than an SQS message on the IM ingress, too: stored
    // aside, read back by the worker, answered.
    let text = format!(
        "What are your opening hours? {}",
        "Asking for my whole family. ".repeat(11_000)
    );
    let update = telegram_update(42_005, 7171, &text).to_string();
    assert!(update.len() > 300 * 1024);
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let batch = next_batch(&inbound).await;
    assert!(batch.records[0].body.as_deref().unwrap().len() < 1024);
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    run_outbound(1).await;
    let replies = standin.matching("/sendMessage", |r| r.body["chat_id"] == 7171);
    assert_eq!(replies.len(), 1, "answered (or told a person will)");

    // Service-level timers: a hand-over queues them on the timers queue with
    // DelaySeconds; the worker's function consumes that queue too
    // (`handlers::conversation` picks the handler by the batch's queue). The
    // customer is reassured (through the outbound queue), the breach goes to
    // the priority queue; a timer that cannot go on yet and a reassurance the
    // provider refuses for now are retried later (ChangeMessageVisibility on
    // their queues) and sent once; an unreadable timer is dead-lettered.
    let timers = EventSourcePoller::new(
        setup.sqs.clone(),
        queue_ref(&setup, &resources.timers_queue_url).await,
    );
    let update = telegram_update(42_006, 7272, "I want to talk to a human").to_string();
    let response = invoke(im.clone(), telegram_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    run_worker(1).await;
    let sessions = switchboard_aws::DynamoStores::new(&setup.dynamodb, &resources).sessions;
    let key = ConversationKey::new(
        "telegram",
        telegram_bot_token().split(':').next().unwrap(),
        "7272",
    );
    let reassurances = || {
        standin.matching("/sendMessage", |r| {
            r.body["chat_id"] == 7272
                && r.body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("We're on it"))
        })
    };
    // Earlier hand-overs' timers are queued too; they run in the same loop.
    // The first reassurance finds its reply claimed by another attempt (the
    // timer is retried), then the provider down (the reply is retried).
    let idempotency = switchboard_aws::DynamoStores::new(&setup.dynamodb, &resources).idempotency;
    let handed_over_at_ms = sessions
        .load(&key)
        .await
        .unwrap()
        .unwrap()
        .handover
        .unwrap()
        .at_ms;
    let first_reassurance = format!("reassure:{key}:{handed_over_at_ms}:1");
    let now_ms = now_secs() * 1000;
    idempotency
        .claim(&first_reassurance, now_ms, 600_000)
        .await
        .unwrap();
    standin.set_down(true);
    let (mut timer_retried, mut send_retried) = (false, false);
    for _ in 0..90 {
        let handover = sessions
            .load(&key)
            .await
            .unwrap()
            .unwrap()
            .handover
            .unwrap();
        if reassurances().len() == 3 && handover.breached_at_ms.is_some() {
            break;
        }
        if let Some(batch) = timers.receive(1).await.unwrap() {
            let result = handlers::conversation(
                &worker,
                &resources.timers_queue_url,
                LambdaEvent::new(batch.clone(), Context::default()),
            )
            .await
            .unwrap();
            if !result.batch_item_failures.is_empty() {
                timer_retried = true;
                idempotency.release(&first_reassurance).await.unwrap();
            }
            timers.settle(&batch, &result).await.unwrap();
        }
        if let Some(batch) = outbound.receive(1).await.unwrap() {
            let result =
                handlers::outbound(&sender, LambdaEvent::new(batch.clone(), Context::default()))
                    .await
                    .unwrap();
            if !result.batch_item_failures.is_empty() {
                send_retried = true;
                standin.set_down(false);
            }
            outbound.settle(&batch, &result).await.unwrap();
        }
    }
    assert!(timer_retried, "a timer that could not go on was retried");
    assert!(
        send_retried,
        "a reassurance was refused for now and retried"
    );
    let handover = sessions
        .load(&key)
        .await
        .unwrap()
        .unwrap()
        .handover
        .unwrap();
    assert!(handover.breached_at_ms.is_some(), "the breach is recorded");
    assert_eq!(reassurances().len(), 3, "three reassurances, each once");
    let breach = loop {
        let tickets = next_batch(&priority_escalations).await;
        let found = tickets.records.iter().any(|r| {
            let body = r.body.as_deref().unwrap_or_default();
            body.contains("sla_breach") && body.contains(":7272")
        });
        let result = handlers::escalations(
            &notifier,
            LambdaEvent::new(tickets.clone(), Context::default()),
        )
        .await
        .unwrap();
        priority_escalations
            .settle(&tickets, &result)
            .await
            .unwrap();
        if found {
            break tickets;
        }
    };
    assert!(!breach.records.is_empty());
    setup
        .sqs
        .send_message()
        .queue_url(&resources.timers_queue_url)
        .message_body("not a timer")
        .send()
        .await
        .unwrap();
    loop {
        let batch = next_batch(&timers).await;
        let unreadable = batch
            .records
            .iter()
            .any(|r| r.body.as_deref() == Some("not a timer"));
        let result = handlers::conversation(
            &worker,
            &resources.timers_queue_url,
            LambdaEvent::new(batch.clone(), Context::default()),
        )
        .await
        .unwrap();
        timers.settle(&batch, &result).await.unwrap();
        if unreadable {
            break;
        }
    }
    let dead = setup
        .sqs
        .receive_message()
        .queue_url(&resources.timers_dead_letter_queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dead.messages().len(),
        1,
        "the unreadable timer is dead-lettered"
    );

    // The gate in front of the agents' API: a configured token passes with
    // its holder, anything else does not.
    let decision = handlers::authorize(
        &authorizer_tokens,
        LambdaEvent::new(
            authorizer_event(&format!("Bearer {ADMIN_TOKEN}")),
            Context::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        decision,
        json!({ "isAuthorized": true, "context": { "principal": "admin", "scope": "admin" } })
    );
    for refused in ["Bearer not-a-token", ""] {
        let decision = handlers::authorize(
            &authorizer_tokens,
            LambdaEvent::new(authorizer_event(refused), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(decision, json!({ "isAuthorized": false }), "{refused:?}");
    }
    // Revoking: the admin token taken out of the secret and another one
    // added. A warm gate reads the secret again once its tokens are stale.
    let decide = async |authorization: &str| {
        let event = LambdaEvent::new(authorizer_event(authorization), Context::default());
        let decision = handlers::authorize(&authorizer_tokens, event)
            .await
            .unwrap();
        decision["isAuthorized"] == true
    };
    let mut revoked = secret.clone();
    revoked["admin_token"] = "rotated-admin-token".into();
    let put_secret = async |value: &serde_json::Value| {
        setup
            .secrets
            .put_secret_value()
            .secret_id(&secret_arn)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap();
    };
    put_secret(&revoked).await;
    // Still fresh: the tokens in use decide.
    authorizer_tokens
        .refresh_if_stale(switchboard_lambda::authorizer::TOKENS_FRESH_FOR)
        .await;
    assert!(decide(&format!("Bearer {ADMIN_TOKEN}")).await);
    authorizer_tokens
        .refresh_if_stale(std::time::Duration::ZERO)
        .await;
    assert!(!decide(&format!("Bearer {ADMIN_TOKEN}")).await);
    assert!(decide("Bearer rotated-admin-token").await);
    // The rest of the flow uses the original secret.
    put_secret(&secret).await;
    authorizer_tokens
        .refresh_if_stale(std::time::Duration::ZERO)
        .await;
    assert!(decide(&format!("Bearer {ADMIN_TOKEN}")).await);

    // Social ingress: a signed Messenger message, queued and answered; a
    // Messenger body too large for an SQS message is stored aside.
    let now_ms = now_secs() * 1000;
    let messenger = |mid: &str, text: &str| {
        let body = json!({ "object": "page", "entry": [{ "id": "PAGE", "time": 1, "messaging": [
            { "sender": { "id": "PSID1" }, "recipient": { "id": "PAGE" }, "timestamp": now_ms,
              "message": { "mid": mid, "text": text } }] }] })
        .to_string();
        webhook_event(&signed_request(
            "messenger",
            "application/json",
            &[],
            body,
            now_ms,
        ))
    };
    let response = invoke(
        social.clone(),
        messenger("m_lambda_1", "How long does shipping take?"),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    run_worker(1).await;
    run_outbound(1).await;
    let long = format!(
        "How long does shipping take? {}",
        "We live far out in the countryside. ".repeat(9_000)
    );
    let response = invoke(social, messenger("m_lambda_2", &long))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let batch = next_batch(&inbound).await;
    assert!(
        batch.records[0].body.as_deref().unwrap().len() < 1024,
        "a reference"
    );
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    run_outbound(1).await;
    let replies = standin.matching("/messenger/me/messages", |_| true);
    assert_eq!(replies.len(), 2, "both answered");
    assert_eq!(replies[0].body["recipient"]["id"], "PSID1");

    // A channel whose access tokens expire (WeCom): the outbound sender
    // fetches one and keeps it in the credentials table for every instance.
    let response = invoke(
        im.clone(),
        webhook_event(&sample_delivery(
            "wecom",
            "cust-wecom-1",
            "What are your opening hours?",
        )),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let batch = next_batch(&inbound).await;
    let queued: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    let wecom_conversation = format!(
        "wecom:{}:{}",
        queued["account_id"].as_str().unwrap(),
        queued["conversation_id"].as_str().unwrap()
    );
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    run_outbound(1).await;
    let wecom_sent =
        || standin.matching("/cgi-bin/message/send", |r| r.path.starts_with("/wecom/"));
    assert_eq!(wecom_sent().len(), 1);
    assert!(
        wecom_sent()[0]
            .query
            .contains("access_token=stand-in-token")
    );
    // The token expired and its row is gone (DynamoDB's TTL): an agent's
    // reply, queued on the IM ingress, makes another sender instance fetch and
    // store a new one.
    let tokens = setup
        .dynamodb
        .scan()
        .table_name(&resources.credentials_table)
        .send()
        .await
        .unwrap();
    assert!(!tokens.items().is_empty(), "the sender stored its token");
    for item in tokens.items() {
        setup
            .dynamodb
            .delete_item()
            .table_name(&resources.credentials_table)
            .key("credential", item["credential"].clone())
            .send()
            .await
            .unwrap();
    }
    let response = invoke(
        im.clone(),
        api_event(
            "POST",
            &format!("/api/conversations/{wecom_conversation}/reply"),
            "",
            &[("idempotency-key", "wecom-reply-1")],
            json!({ "text": "We open at nine.", "agent": "Lee" }),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response["statusCode"], 202, "{response}");
    // Sent by another instance of the sender (no token in its memory).
    let second_sender = recorder
        .start("OutboundSenderFunction", Role::Outbound, &aws, &base)
        .await;
    let second_sender = Consumer {
        stage: second_sender.outbound().unwrap(),
        sqs: second_sender.sqs_consumer(&[QueueName::Outbound]),
    };
    let batch = next_batch(&outbound).await;
    let result = handlers::outbound(
        &second_sender,
        LambdaEvent::new(batch.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert!(result.batch_item_failures.is_empty());
    outbound.settle(&batch, &result).await.unwrap();
    assert_eq!(wecom_sent().len(), 2);
    assert_eq!(
        standin
            .matching("/cgi-bin/gettoken", |r| r.path.starts_with("/wecom/"))
            .len(),
        2,
        "one token per instance, the second after the first expired"
    );
}

/// The system clock, seven days ahead.
struct AWeekFromNow;

impl switchboard_domain::Clock for AWeekFromNow {
    fn now_ms(&self) -> i64 {
        switchboard_domain::SystemClock.now_ms() + 7 * 86_400_000
    }
}
