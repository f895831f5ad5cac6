//! Counters in memory, for checking requests and tests (the real ones are
//! SQLite locally and DynamoDB on AWS).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_domain::{CounterStore, StoreError};

#[derive(Debug, Default)]
pub struct MemoryCounters {
    counters: Mutex<HashMap<String, (u64, i64)>>,
}

#[async_trait]
impl CounterStore for MemoryCounters {
    async fn increment_below(
        &self,
        key: &str,
        limit: u64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counters.entry(key.to_owned()).or_insert((0, expires_at_ms));
        if entry.1 <= now_ms {
            *entry = (0, expires_at_ms);
        }
        if entry.0 >= limit {
            return Ok(false);
        }
        entry.0 += 1;
        Ok(true)
    }

    async fn count(&self, key: &str, now_ms: i64) -> Result<u64, StoreError> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match counters.get(key) {
            Some((count, expires)) if *expires > now_ms => *count,
            _ => 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_up_to_the_limit_and_expires() {
        let counters = MemoryCounters::default();
        for _ in 0..3 {
            assert!(counters.increment_below("k", 3, 0, 100).await.unwrap());
        }
        assert!(!counters.increment_below("k", 3, 1, 100).await.unwrap());
        assert_eq!(counters.count("k", 1).await.unwrap(), 3);
        assert_eq!(counters.count("k", 100).await.unwrap(), 0);
        assert!(counters.increment_below("k", 3, 100, 200).await.unwrap());
        assert_eq!(counters.count("k", 150).await.unwrap(), 1);
    }
}
