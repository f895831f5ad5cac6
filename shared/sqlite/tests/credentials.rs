//! The credential store on SQLite: concurrent refreshers in several "instances"
//! (caches with their own owner ids, as separate processes would have) share
//! one refresh, and a token the provider refused is replaced once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use switchboard_channels::kit::{Fresh, TokenCache};
use switchboard_domain::{Credential, CredentialStore, StoreError, SystemClock};
use switchboard_sqlite::SqliteStore;

fn cache(store: &SqliteStore) -> TokenCache {
    TokenCache::new(
        "wechat:app",
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        Duration::from_secs(300),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshers_fetch_once_and_a_refused_token_is_replaced_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
    let fetches = Arc::new(AtomicU32::new(0));
    let fetch = {
        let fetches = fetches.clone();
        move || {
            let fetches = fetches.clone();
            async move {
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(Fresh {
                    value: format!("token-{n}").into(),
                    expires_in: Duration::from_secs(7200),
                })
            }
        }
    };
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, fetch) = (cache(&store), fetch.clone());
            tokio::spawn(async move { cache.get(fetch).await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(
        tokens
            .iter()
            .all(|t| t.value.expose() == "token-1" && t.version == 1)
    );

    let refused = tokens[0].clone();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (cache, fetch, refused) = (cache(&store), fetch.clone(), refused.clone());
            tokio::spawn(async move { cache.replace(&refused, fetch).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().value.expose(), "token-2");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn only_the_lease_holder_may_store_and_a_lapsed_lease_is_taken_over() {
    let store = SqliteStore::open_in_memory().unwrap();
    let token = |version| Credential {
        value: "t".into(),
        expires_at_ms: 10_000,
        version,
    };
    assert!(store.lease_refresh("k", "a", 0, 1_000, 500).await.unwrap());
    assert!(!store.lease_refresh("k", "b", 0, 1_200, 500).await.unwrap());
    assert!(matches!(
        store.put("k", "b", &token(1)).await,
        Err(StoreError::Conflict(_))
    ));
    // a's lease lapsed: b takes over, and a can no longer store.
    assert!(store.lease_refresh("k", "b", 0, 1_600, 500).await.unwrap());
    assert!(store.put("k", "a", &token(1)).await.is_err());
    store.put("k", "b", &token(1)).await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(token(1)));
    // Someone who saw version 0 is too late now.
    assert!(!store.lease_refresh("k", "c", 0, 2_000, 500).await.unwrap());
    assert!(store.lease_refresh("k", "c", 1, 2_000, 500).await.unwrap());
}
