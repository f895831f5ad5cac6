//! The Lambda functions end to end, fed the event JSON API Gateway and SQS
//! send (HTTP through `lambda_http`, as the functions serve it), against
//! DynamoDB Local and moto (started by `tests/services/aws.sh`), with a
//! stand-in Telegram API and a real SMTP server. The parts are built by the
//! AWS composition root, the channels read from the Secrets Manager secret.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use switchboard_app::config::{Channels, Config, EmailConfig, ServerConfig};
use switchboard_aws::{Clients, EventSourcePoller, QueueRef};
use switchboard_channels::email::{SmtpConfig, SmtpTls};
use switchboard_domain::QueueName;
use switchboard_e2e::{
    SmtpSink, StandIn, aws_test_endpoint, channel_settings, mail_header, mail_text, telegram_update,
};
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_lambda::invoke;

/// An HTTP API v2 event for `POST /webhooks/telegram` with a signed update.
fn api_gateway_event(body: &str, secret_token: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{channel}",
        "rawPath": "/webhooks/telegram",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-telegram-bot-api-secret-token": secret_token
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.eu-west-1.amazonaws.com",
            "http": { "method": "POST", "path": "/webhooks/telegram", "protocol": "HTTP/1.1", "sourceIp": "149.154.167.200", "userAgent": "" },
            "requestId": "r1",
            "routeKey": "POST /webhooks/{channel}",
            "stage": "$default",
            "time": "21/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1795132800000u64
        },
        "pathParameters": { "channel": "telegram" },
        "body": body,
        "isBase64Encoded": false
    })
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

#[tokio::test(flavor = "multi_thread")]
async fn telegram_message_flows_from_api_gateway_through_sqs_to_an_answer_and_an_escalation_email()
{
    let clients = Clients::local(
        &aws_test_endpoint("SWITCHBOARD_TEST_DYNAMODB_ENDPOINT"),
        &aws_test_endpoint("SWITCHBOARD_TEST_MOTO_ENDPOINT"),
    )
    .await;
    let prefix = format!("e2e{}", std::process::id());
    let resources = switchboard_aws::create_tables_and_queues(&clients, &prefix)
        .await
        .unwrap();
    let standin = StandIn::start().await;
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(smtp_dir.path());
    let settings = channel_settings(&standin.base);
    let secret =
        json!({ "channels": { "telegram": settings["telegram"] }, "admin_token": "admin" });
    let secret_token = settings["telegram"]["secret_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_arn = clients
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

    // The configuration as the template's variables and the secret make it.
    let stored = switchboard_aws::load_json_secret(&clients.secrets, &secret_arn)
        .await
        .unwrap();
    let config = Config {
        aws: Some(switchboard_app::aws::aws_config(&resources, &secret_arn)),
        channels: serde_json::from_value::<Channels>(stored["channels"].clone()).unwrap(),
        server: ServerConfig {
            admin_token: stored["admin_token"].as_str().map(Into::into),
            ..ServerConfig::default()
        },
        email: EmailConfig {
            from: "support@shop.test".into(),
            agents: "agents@shop.test".into(),
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
        ..Config::default()
    };

    // The three functions, built as their main.rs do.
    let aws = switchboard_app::aws::build(config, clients.clone()).unwrap();
    let router = aws.app.router(true);
    let worker = Consumer {
        stage: aws.app.worker(aws.knowledge_base().await.unwrap()),
        sqs: aws.sqs_consumer(&[QueueName::Inbound]),
    };
    let notifier = Consumer {
        stage: aws.app.notifier.clone(),
        sqs: aws.sqs_consumer(&[QueueName::EscalationPriority, QueueName::EscalationStandard]),
    };
    let inbound = EventSourcePoller::new(
        clients.sqs.clone(),
        queue_ref(&clients, &resources.inbound_queue_url).await,
    );
    let escalations = EventSourcePoller::new(
        clients.sqs.clone(),
        queue_ref(&clients, &resources.escalation_standard_queue_url).await,
    );

    // Ingress: API Gateway event in, 200 out, one message on the FIFO queue.
    let update = telegram_update(42_001, 4242, "What are your opening hours?").to_string();
    let response = invoke(router.clone(), api_gateway_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    // The same delivery again (a provider retry) is acknowledged and not queued twice.
    let retry = invoke(router.clone(), api_gateway_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(retry["statusCode"], 200);
    // A forged one is refused.
    let refused = invoke(router.clone(), api_gateway_event(&update, "wrong"))
        .await
        .unwrap();
    assert_eq!(refused["statusCode"], 401);

    // Worker: the SQS event in, the answer at the stand-in Telegram API.
    let batch = next_batch(&inbound).await;
    assert_eq!(batch.records.len(), 1, "queued once");
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();
    let replies = standin.matching("/sendMessage", |r| r.body["chat_id"] == 4242);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Monday to Saturday")
    );

    // An unanswerable question: worker → escalation queue → notifier → SMTP.
    let update = telegram_update(
        42_002,
        4242,
        "Do you sell replacement parts for the 1987 model?",
    )
    .to_string();
    let response = invoke(router.clone(), api_gateway_event(&update, &secret_token))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200);
    let batch = next_batch(&inbound).await;
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();

    let tickets = next_batch(&escalations).await;
    let result = handlers::escalations(
        &notifier,
        LambdaEvent::new(tickets.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert!(result.batch_item_failures.is_empty());
    escalations.settle(&tickets, &result).await.unwrap();
    let mails = smtp.wait_for(1).await;
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
        2,
        "the customer was told a person will answer"
    );
}
