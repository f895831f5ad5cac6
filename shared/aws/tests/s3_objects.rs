//! Reading SES's stored mail from S3, against moto.

mod common;

use switchboard_aws::S3ObjectReader;
use switchboard_domain::{ObjectReader, StoreError};

#[tokio::test]
async fn stored_mail_is_read_absent_objects_are_none_and_oversized_ones_refused() {
    let clients = common::clients().await;
    let bucket = common::unique("ses-mail");
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mail = "From: big@customer.example\r\nSubject: Photos\r\n\r\n附件太大了\r\n";
    clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key("inbound/m-1")
        .body(mail.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let reader = S3ObjectReader::new(clients.s3.clone());
    let read = reader.read(&bucket, "inbound/m-1", 1024).await.unwrap();
    assert_eq!(read.as_deref(), Some(mail.as_bytes()));
    assert_eq!(
        reader.read(&bucket, "inbound/absent", 1024).await.unwrap(),
        None
    );
    assert!(matches!(
        reader.read(&bucket, "inbound/m-1", 10).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        reader
            .read(&common::unique("no-such-bucket"), "k", 10)
            .await,
        Err(StoreError::Unavailable(_))
    ));
}
