//! Large job bodies go beside the queue: an SQS message holds at most
//! 256 KiB, a webhook body may be 1 MiB, and an escalation ticket carries the
//! whole transcript. The producer side stores a body above
//! [`INLINE_LIMIT`] in the [`PayloadStore`] and queues a short reference;
//! consumers call [`resolve`] before reading a job.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use switchboard_domain::{
    Claim, Clock, PAYLOAD_REFERENCE_PREFIX as REFERENCE_PREFIX, PayloadStore, QueueError,
    QueueItem, QueueName, QueueProducer, payload_key,
};

use crate::JobError;

/// Largest body queued as it is. Below SQS's 256 KiB with room for base64
/// (which the SQS adapter uses for bodies that are not plain text) and the
/// message attributes.
pub const INLINE_LIMIT: usize = 128 * 1024;

/// How long a stored body is kept: longer than an item can stay in a queue
/// (4 days on SQS) and then in its dead-letter queue (14 days).
pub const PAYLOAD_RETENTION_MS: i64 = 20 * 24 * 60 * 60 * 1000;

/// A [`QueueProducer`] that stores large bodies aside and queues a reference.
pub struct OffloadingQueue {
    inner: Arc<dyn QueueProducer>,
    payloads: Arc<dyn PayloadStore>,
    clock: Arc<dyn Clock>,
}

impl OffloadingQueue {
    pub fn new(
        inner: Arc<dyn QueueProducer>,
        payloads: Arc<dyn PayloadStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner,
            payloads,
            clock,
        }
    }
}

#[async_trait]
impl QueueProducer for OffloadingQueue {
    /// Delayed jobs (timers) are small: they go as they are.
    async fn send_after(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        self.inner.send_after(queue, item, delay).await
    }

    /// Small items only: a large one's body goes aside first, step by step.
    async fn send_once(
        &self,
        key: &str,
        queue: QueueName,
        item: &QueueItem,
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<Option<Claim>, QueueError> {
        if item.body.len() > INLINE_LIMIT {
            return Ok(None);
        }
        self.inner
            .send_once(key, queue, item, now_ms, keep_until_ms)
            .await
    }

    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError> {
        if item.body.len() <= INLINE_LIMIT {
            return self.inner.send(queue, item).await;
        }
        let key = payload_key(queue, &item.dedupe_id);
        let expires_at_ms = self.clock.now_ms().saturating_add(PAYLOAD_RETENTION_MS);
        self.payloads
            .put(&key, &item.body, expires_at_ms)
            .await
            .map_err(|error| QueueError {
                queue,
                source: Box::new(error),
            })?;
        tracing::info!(
            queue = queue.as_str(),
            bytes = item.body.len(),
            "large body stored aside"
        );
        let mut body = REFERENCE_PREFIX.to_vec();
        body.extend_from_slice(key.as_bytes());
        self.inner.send(queue, QueueItem { body, ..item }).await
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the stored body {0} of a queued job is gone")]
pub struct PayloadMissing(String);

/// The job's body: `body` itself, or the stored body it refers to.
pub async fn resolve<'a>(
    payloads: &dyn PayloadStore,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, JobError> {
    let Some(key) = body.strip_prefix(REFERENCE_PREFIX) else {
        return Ok(Cow::Borrowed(body));
    };
    let key = String::from_utf8_lossy(key).into_owned();
    match payloads.get(&key).await? {
        Some(stored) => Ok(Cow::Owned(stored)),
        // Kept longer than any queue keeps the reference: only a deleted
        // payload is missing, and no retry brings it back.
        None => Err(JobError::Permanent(Box::new(PayloadMissing(key)))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use switchboard_domain::{StoreError, SystemClock};

    use super::*;

    #[derive(Default)]
    struct Memory {
        payloads: Mutex<HashMap<String, Vec<u8>>>,
        queued: Mutex<Vec<QueueItem>>,
    }

    #[async_trait]
    impl PayloadStore for Memory {
        async fn put(&self, key: &str, payload: &[u8], _: i64) -> Result<(), StoreError> {
            self.payloads
                .lock()
                .unwrap()
                .insert(key.to_owned(), payload.to_vec());
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.payloads.lock().unwrap().get(key).cloned())
        }
    }

    #[async_trait]
    impl QueueProducer for Memory {
        async fn send(&self, _: QueueName, item: QueueItem) -> Result<(), QueueError> {
            self.queued.lock().unwrap().push(item);
            Ok(())
        }
    }

    #[tokio::test]
    async fn large_bodies_travel_as_references_and_small_ones_as_they_are() {
        let memory = Arc::new(Memory::default());
        let queue = OffloadingQueue::new(memory.clone(), memory.clone(), Arc::new(SystemClock));
        let small = b"{\"text\":\"hi\"}".to_vec();
        let large = format!("{{\"text\":\"{}\"}}", "x".repeat(INLINE_LIMIT));
        for (dedupe, body) in [("a", small.clone()), ("b", large.clone().into_bytes())] {
            let item = QueueItem {
                group: "g".into(),
                dedupe_id: dedupe.into(),
                body,
            };
            queue.send(QueueName::Inbound, item).await.unwrap();
        }
        let queued = memory.queued.lock().unwrap().clone();
        assert_eq!(queued[0].body, small);
        assert!(queued[1].body.len() < 200, "a reference, not the body");
        assert_eq!(queued[1].dedupe_id, "b");
        for (item, expected) in queued.iter().zip([small, large.into_bytes()]) {
            assert_eq!(
                resolve(memory.as_ref(), &item.body).await.unwrap().as_ref(),
                expected.as_slice()
            );
        }
        let gone = resolve(memory.as_ref(), b"switchboard-payload:inbound/none")
            .await
            .unwrap_err();
        assert!(!gone.is_retryable());
    }
}
