//! The Lambda handlers end to end, fed the event JSON API Gateway and SQS
//! send, against DynamoDB Local and moto (started by `tests/services/aws.sh`),
//! with a stand-in Telegram API and a real SMTP server.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use switchboard_aws::{Clients, EventSourcePoller, QueueRef, WarmUp};
use switchboard_e2e::{
    SmtpSink, StandIn, TELEGRAM_BOT_TOKEN, TELEGRAM_SECRET, aws_test_endpoint, mail_header,
    mail_text, telegram_update,
};
use switchboard_lambda::{FunctionConfig, handlers, wiring};

/// An HTTP API v2 event for `POST /webhooks/telegram` with a signed update.
fn api_gateway_event(body: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{channel}",
        "rawPath": "/webhooks/telegram",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-telegram-bot-api-secret-token": TELEGRAM_SECRET
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
    }))
    .unwrap()
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

/// AWS clients of one function (its template logical id signs the calls),
/// through the recording proxy; the environment it got is written beside the
/// recorded calls so that the permissions check can map the template's
/// resources to this test's tables and queues.
async fn function_clients(
    logical_id: &str,
    env: &std::collections::HashMap<&str, String>,
) -> Clients {
    let calls = aws_test_endpoint("SWITCHBOARD_TEST_AWS_CALLS");
    let context = json!({ "context": logical_id, "region": "us-east-1", "env": env });
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&calls)
        .unwrap_or_else(|e| panic!("the recording proxy's call log {calls}: {e}"));
    std::io::Write::write_all(&mut log, format!("{context}\n").as_bytes()).unwrap();
    Clients::local_as(logical_id, &aws_test_endpoint("SWITCHBOARD_TEST_AWS_PROXY")).await
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
    let secret = json!({
        "channels": { "telegram": {
            "secret_token": TELEGRAM_SECRET,
            "bot_token": TELEGRAM_BOT_TOKEN,
            "api_base": format!("{}/telegram", standin.base)
        }},
        "admin_token": "admin"
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

    // The three functions, wired and warmed up as their main.rs do, each
    // signing its AWS calls as itself so that the recording proxy can check
    // them against the template (tests/services/permissions.py).
    let ingress_clients = function_clients("IngressImFunction", &env).await;
    let worker_clients = function_clients("ConversationWorkerFunction", &env).await;
    let notifier_clients = function_clients("EscalationNotifierFunction", &env).await;
    let r = &config.resources;
    let ingress_aws = wiring::connect_with(
        config.clone(),
        ingress_clients,
        WarmUp {
            dynamodb_table: Some(&r.idempotency_table),
            sqs_queue_url: Some(&r.inbound_queue_url),
        },
    )
    .await
    .unwrap();
    let worker_aws = wiring::connect_with(
        config.clone(),
        worker_clients.clone(),
        WarmUp {
            dynamodb_table: Some(&r.sessions_table),
            sqs_queue_url: Some(&r.escalation_standard_queue_url),
        },
    )
    .await
    .unwrap();
    let notifier_aws = wiring::connect_with(
        config.clone(),
        notifier_clients.clone(),
        WarmUp {
            dynamodb_table: Some(&r.idempotency_table),
            sqs_queue_url: None,
        },
    )
    .await
    .unwrap();
    let api = wiring::http_api(&ingress_aws, true).unwrap();
    let worker = wiring::conversation_worker(&worker_aws).await.unwrap();
    let notifier = wiring::escalation_notifier(&notifier_aws).unwrap();
    // Lambda's event source mappings poll with the consuming function's role.
    let inbound = EventSourcePoller::new(
        worker_clients.sqs.clone(),
        queue_ref(&clients, &resources.inbound_queue_url).await,
    );
    let escalations = EventSourcePoller::new(
        notifier_clients.sqs.clone(),
        queue_ref(&clients, &resources.escalation_standard_queue_url).await,
    );

    // Ingress: API Gateway event in, 200 out, one message on the FIFO queue.
    let update = telegram_update(42_001, 4242, "What are your opening hours?").to_string();
    let response = handlers::http(
        &api,
        LambdaEvent::new(api_gateway_event(&update), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(response.status_code, 200);
    // The same delivery again (a provider retry) is acknowledged and not queued twice.
    let retry = handlers::http(
        &api,
        LambdaEvent::new(api_gateway_event(&update), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(retry.status_code, 200);

    // A forged one is refused.
    let mut forged = api_gateway_event(&update);
    forged
        .headers
        .insert("x-telegram-bot-api-secret-token", "wrong".parse().unwrap());
    let refused = handlers::http(&api, LambdaEvent::new(forged, Context::default()))
        .await
        .unwrap();
    assert_eq!(refused.status_code, 401);

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
    let response = handlers::http(
        &api,
        LambdaEvent::new(api_gateway_event(&update), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(response.status_code, 200);
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
