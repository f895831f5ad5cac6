//! The payload store on S3, against moto's server.

mod common;

use switchboard_aws::{S3PayloadStore, create_bucket};
use switchboard_domain::PayloadStore;

#[tokio::test]
async fn payloads_round_trip_and_a_missing_one_is_none() {
    let clients = common::clients().await;
    let bucket = create_bucket(&clients.s3, &common::unique("payloads"))
        .await
        .unwrap();
    let store = S3PayloadStore::new(clients.s3.clone(), &bucket);
    // Larger than an SQS message; not text.
    let large: Vec<u8> = (0..700 * 1024).map(|i| (i % 251) as u8).collect();
    store.put("inbound/abc", &large, i64::MAX).await.unwrap();
    assert_eq!(store.get("inbound/abc").await.unwrap(), Some(large));
    store.put("inbound/abc", b"again", i64::MAX).await.unwrap();
    assert_eq!(
        store.get("inbound/abc").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
    assert_eq!(store.get("inbound/none").await.unwrap(), None);
    // Creating the bucket again is fine (set-up is idempotent).
    assert_eq!(create_bucket(&clients.s3, &bucket).await.unwrap(), bucket);
}

#[tokio::test]
async fn an_unreachable_bucket_is_an_error_not_a_missing_payload() {
    let clients = common::clients().await;
    let store = S3PayloadStore::new(clients.s3.clone(), common::unique("nosuchbucket"));
    assert!(store.get("inbound/abc").await.is_err());
    assert!(store.put("inbound/abc", b"x", 0).await.is_err());
}
