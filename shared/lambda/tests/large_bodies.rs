//! A webhook body larger than an SQS message (256 KiB) through the Lambda
//! handlers, against DynamoDB Local and moto (SQS and S3): ingress stores it
//! in the payload bucket and queues a reference, the worker reads it back and
//! answers. Without that, SQS refuses the message and the provider gets 503
//! on every retry.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use switchboard_aws::{Clients, EventSourcePoller, QueueRef, WarmUp};
use switchboard_e2e::{SmtpSink, aws_test_endpoint, mail_header, mailgun_form};
use switchboard_lambda::{FunctionConfig, handlers, wiring};

fn mailgun_event(body: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_value(json!({
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
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_larger_than_an_sqs_message_is_accepted_and_answered() {
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
    let secret = json!({
        "channels": { "mailgun": {
            "signing_key": switchboard_e2e::MAILGUN_KEY,
            "from_address": "support@shop.test"
        }}
    });
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
    let mut env: std::collections::HashMap<&str, String> = resources.to_env().into_iter().collect();
    env.insert("SWITCHBOARD_SECRET_ARN", secret_arn);
    env.insert("SWITCHBOARD_FROM_EMAIL", "support@shop.test".into());
    env.insert("SWITCHBOARD_AGENTS_EMAIL", "agents@shop.test".into());
    env.insert("SWITCHBOARD_SMTP_HOST", "127.0.0.1".into());
    env.insert("SWITCHBOARD_SMTP_PORT", smtp.port.to_string());
    env.insert("SWITCHBOARD_SMTP_TLS", "none".into());
    let config = FunctionConfig::from_lookup(|name| env.get(name).cloned()).unwrap();
    let aws = wiring::connect_with(config, clients.clone(), WarmUp::default())
        .await
        .unwrap();
    let api = wiring::http_api(&aws, false).unwrap();
    let worker = wiring::conversation_worker(&aws).await.unwrap();

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
    let response = handlers::http(
        &api,
        LambdaEvent::new(mailgun_event(&form), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(response.status_code, 200, "{:?}", response.body);

    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&resources.inbound_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let inbound = EventSourcePoller::new(
        clients.sqs.clone(),
        QueueRef {
            url: resources.inbound_queue_url.clone(),
            arn,
        },
    );
    let batch = inbound
        .receive(5)
        .await
        .unwrap()
        .expect("the message is queued");
    let queued = batch.records[0].body.as_deref().unwrap();
    assert!(queued.len() < 1024, "a reference is queued, not the body");
    let result = handlers::inbound(&worker, LambdaEvent::new(batch.clone(), Context::default()))
        .await
        .unwrap();
    assert!(result.batch_item_failures.is_empty());
    inbound.settle(&batch, &result).await.unwrap();

    let mails = smtp.wait_for(1).await;
    assert_eq!(
        mail_header(&mails[0], "X-Envelope-To").as_deref(),
        Some("grace@customer.test")
    );
}
