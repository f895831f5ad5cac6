//! A webhook body larger than an SQS message (256 KiB) through the Lambda
//! handlers, against DynamoDB Local and moto (SQS and S3). An email's text is
//! cut to 20,000 characters at ingress, so even a mail of hundreds of KiB
//! queues as an ordinary message, is answered and mailed back. (Bodies that
//! stay large, stored in the payload bucket with a reference queued, are
//! tested with a Messenger message and an escalation ticket elsewhere.)

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use switchboard_app::config::{Channels, Config, EmailConfig};
use switchboard_aws::{Clients, EventSourcePoller, QueueRef};
use switchboard_channels::email::{SmtpConfig, SmtpTls};
use switchboard_domain::QueueName;
use switchboard_e2e::{SmtpSink, aws_test_endpoint, channel_settings, mail_header, mailgun_form};
use switchboard_lambda::handlers::{self, Consumer};
use switchboard_lambda::invoke;

fn mailgun_event(body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/mailgun",
        "rawPath": "/webhooks/mailgun",
        "rawQueryString": "",
        "headers": { "content-type": "application/x-www-form-urlencoded" },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.eu-west-1.amazonaws.com",
            "http": { "method": "POST", "path": "/webhooks/mailgun", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "" },
            "requestId": "r1",
            "routeKey": "POST /webhooks/mailgun",
            "stage": "$default",
            "time": "21/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1795132800000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_larger_than_an_sqs_message_is_cut_queued_and_answered() {
    let clients = Clients::local(
        &aws_test_endpoint("SWITCHBOARD_TEST_DYNAMODB_ENDPOINT"),
        &aws_test_endpoint("SWITCHBOARD_TEST_MOTO_ENDPOINT"),
    )
    .await;
    let prefix = format!("large{}", std::process::id());
    let resources = switchboard_aws::create_tables_and_queues(&clients, &prefix)
        .await
        .unwrap();
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(smtp_dir.path());
    // Mailgun's settings as the e2e helpers sign with (no stand-in: email replies go by SMTP).
    let settings = channel_settings("http://127.0.0.1:9");
    let secret = json!({ "channels": { "mailgun": settings["mailgun"] } });
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
    // The ingress, worker and sender functions, built as their main.rs do.
    let aws = switchboard_app::aws::build(config.clone(), clients.clone()).unwrap();
    let router = aws.router(false).unwrap();
    let worker = Consumer {
        stage: aws.worker().await.unwrap(),
        sqs: aws.sqs_consumer(&[QueueName::Inbound]),
    };
    let mailing = switchboard_app::aws::build(config, clients.clone())
        .unwrap()
        .with_mail()
        .unwrap();
    let sender = Consumer {
        stage: mailing.outbound().unwrap(),
        sqs: mailing.sqs_consumer(&[QueueName::Outbound]),
    };

    // About 330 KiB of text, twice in the form (body-plain and stripped-text).
    let text = format!(
        "How do I return an item? {}",
        "The blender I bought makes a noise. ".repeat(9_500)
    );
    let form = mailgun_form(
        "grace@customer.test",
        "Returns",
        &text,
        "<large@customer.test>",
        &[],
    );
    assert!(text.len() > 300 * 1024 && form.len() < 1024 * 1024);
    let response = invoke(router, mailgun_event(&form)).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");

    let inbound = poller(&clients, &resources.inbound_queue_url).await;
    let batch = inbound
        .receive(5)
        .await
        .unwrap()
        .expect("the message is queued");
    let queued = batch.records[0].body.as_deref().unwrap();
    assert!(
        queued.len() < 100 * 1024 && queued.contains("cut at 20,000 characters"),
        "the cut text is queued: {} bytes",
        queued.len()
    );
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();

    // The answer leaves by the outbound queue.
    let outbound = poller(&clients, &resources.outbound_queue_url).await;
    let batch = outbound
        .receive(5)
        .await
        .unwrap()
        .expect("the answer is queued");
    let result = handlers::outbound(&sender, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    outbound.settle(&batch, &result).await.unwrap();

    let mails = smtp.wait_for(1).await;
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("grace@customer.test")
    );
}

/// The Lambda service's event source on the queue at `url`.
async fn poller(clients: &Clients, url: &str) -> EventSourcePoller {
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    EventSourcePoller::new(
        clients.sqs.clone(),
        QueueRef {
            url: url.to_owned(),
            arn,
        },
    )
}
