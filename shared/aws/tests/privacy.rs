//! Export and erase of one customer across the DynamoDB tables (DynamoDB Local).

mod common;

use serde_json::json;
use switchboard_aws::{
    DynamoCustomerData, DynamoCustomerStore, DynamoFeedbackStore, DynamoGapLog, DynamoSessionStore,
};
use switchboard_domain::privacy::{CustomerData, CustomerRef};
use switchboard_domain::{
    CustomerStore, Feedback, FeedbackStore, GapLog, InboundMessage, Language, Role, Session,
    SessionStore, Turn,
};

async fn customer_writes(local: &common::Local, customer: &str, text: &str) {
    let client = &local.clients.dynamodb;
    let resources = &local.resources;
    let message: InboundMessage = serde_json::from_value(json!({
        "channel": "telegram", "account_id": "bot", "customer_id": customer,
        "conversation_id": customer, "provider_message_id": "m1", "sent_at_ms": 0,
        "kind": "text", "text": text
    }))
    .unwrap();
    let mut session = Session::start(&message, Language::En, 1_000);
    session.push(Turn {
        role: Role::Customer,
        text: text.into(),
        at_ms: 1_000,
        message_id: Some("m1".into()),
        faq_entry: None,
        confidence: None,
        agent: None,
    });
    DynamoSessionStore::new(client.clone(), &resources.sessions_table)
        .save(&session)
        .await
        .unwrap();
    DynamoCustomerStore::new(client.clone(), &resources.customers_table)
        .record_contact(&format!("telegram:{customer}"), 1_000)
        .await
        .unwrap();
    let feedback = DynamoFeedbackStore::new(client.clone(), &resources.feedback_table);
    for satisfaction in [2, 4] {
        feedback
            .put(&Feedback {
                conversation: session.key.clone(),
                helpful: Some(true),
                satisfaction: Some(satisfaction),
                comment: Some(format!("comment of {customer}")),
                faq_id: None,
                at_ms: 2_000,
            })
            .await
            .unwrap();
    }
    DynamoGapLog::new(client.clone(), &resources.gaps_table)
        .record(text, Language::En, 1_000)
        .await
        .unwrap();
}

/// Every item of every customer-data table, as text.
async fn all_items(local: &common::Local) -> String {
    let r = &local.resources;
    let mut text = String::new();
    for table in [
        &r.sessions_table,
        &r.customers_table,
        &r.feedback_table,
        &r.gaps_table,
    ] {
        text.push_str(&items_of(local, table).await);
    }
    text
}

/// Every item of one table, as text.
async fn items_of(local: &common::Local, table: &str) -> String {
    let scan = local.clients.dynamodb.scan().table_name(table).send();
    format!("{:?}", scan.await.unwrap().items())
}

#[tokio::test]
async fn a_customer_is_exported_then_erased_from_every_table() {
    let local = common::local().await;
    customer_writes(&local, "ann7391", "parcel zebra-quartz missing").await;
    customer_writes(&local, "bob2288", "parcel walrus-ochre late").await;
    let data = DynamoCustomerData::new(local.clients.dynamodb.clone(), &local.resources);
    let ann: CustomerRef = "telegram:ann7391".parse().unwrap();

    let export = data.export(&ann).await.unwrap();
    assert_eq!(export.record.as_ref().unwrap().message_count, 1);
    assert_eq!(export.conversations.len(), 1);
    assert_eq!(
        export.conversations[0].turns[0].text,
        "parcel zebra-quartz missing"
    );
    assert_eq!(export.feedback.len(), 2);
    assert_eq!(
        export.unanswered_questions,
        vec!["parcel zebra-quartz missing".to_owned()]
    );
    assert!(!serde_json::to_string(&export).unwrap().contains("bob2288"));

    assert!(all_items(&local).await.contains("zebra-quartz"));
    let erasure = data.erase(&ann).await.unwrap();
    assert_eq!(
        (
            erasure.records,
            erasure.conversations,
            erasure.feedback,
            erasure.unanswered_questions
        ),
        (1, 1, 2, 1)
    );
    let left = all_items(&local).await;
    for trace in ["ann7391", "zebra-quartz"] {
        assert!(!left.contains(trace), "{trace} survived the erase");
    }
    assert!(left.contains("walrus-ochre") && left.contains("bob2288"));
    assert_eq!(data.erase(&ann).await.unwrap().total(), 0);
}

#[tokio::test]
async fn an_email_customers_reply_counters_and_bounce_mark_are_erased() {
    use switchboard_aws::DynamoCounterStore;
    use switchboard_domain::privacy::{
        auto_reply_counter_key, counter_day, counter_day_expiry_ms, undeliverable_counter_key,
    };
    use switchboard_domain::{Clock, CounterStore, SystemClock};

    let local = common::local().await;
    let table = &local.resources.idempotency_table;
    let counters = DynamoCounterStore::new(local.clients.dynamodb.clone(), table);
    let now_ms = SystemClock.now_ms();
    let today = counter_day(now_ms);
    // As the email channels write them: yesterday's and today's reply
    // counters, and a bounce mark; and another sender's, which must stay.
    for (address, day) in [
        ("ann5521@example.com", today - 1),
        ("ann5521@example.com", today),
        ("bob6634@example.com", today),
    ] {
        let key = auto_reply_counter_key("sendgrid", address, day);
        let expires = counter_day_expiry_ms(day);
        assert!(
            counters
                .increment_below(&key, 10, now_ms, expires)
                .await
                .unwrap()
        );
    }
    let bounce = undeliverable_counter_key("sendgrid", "ann5521@example.com");
    assert!(
        counters
            .increment_below(&bounce, 1, now_ms, now_ms + 60_000)
            .await
            .unwrap()
    );

    let data = DynamoCustomerData::new(local.clients.dynamodb.clone(), &local.resources);
    let ann: CustomerRef = "sendgrid:Ann5521@example.com".parse().unwrap();
    assert_eq!(data.erase(&ann).await.unwrap().counters, 3);

    let left = items_of(&local, table).await;
    assert!(
        !left.contains("ann5521"),
        "a counter naming the customer survived"
    );
    assert!(left.contains("bob6634"));
    assert_eq!(counters.count(&bounce, now_ms).await.unwrap(), 0);
    assert_eq!(data.erase(&ann).await.unwrap().total(), 0);
}
