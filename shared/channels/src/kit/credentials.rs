//! Access tokens that a provider issues and expires (WeChat, WeCom, Feishu,
//! DingTalk, X), cached in memory and in the shared [`CredentialStore`], with
//! one refresher at a time across every instance: some providers invalidate
//! the previous token on refresh, so two instances refreshing at once would
//! keep invalidating each other's tokens.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_domain::{Clock, Credential, CredentialStore, Secret, SendError, StoreError};

use super::sender::{ApiResponse, Sender, StaleToken};

/// How long a refresher may take before another instance may try.
const LEASE_MS: i64 = 30_000;
/// Waiting for another instance's refresh: this many looks, this far apart.
const WAITS: u32 = 100;
const WAIT_STEP: Duration = Duration::from_millis(100);

/// A token as the provider hands it out.
pub struct Fresh {
    pub value: Secret,
    pub expires_in: Duration,
}

/// One provider credential, e.g. `wechat:<app id>`.
pub struct TokenCache {
    key: String,
    owner: String,
    store: Arc<dyn CredentialStore>,
    clock: Arc<dyn Clock>,
    /// Refresh this long before the provider's expiry.
    margin_ms: i64,
    memory: Mutex<Option<Credential>>,
}

impl TokenCache {
    pub fn new(
        key: impl Into<String>,
        store: Arc<dyn CredentialStore>,
        clock: Arc<dyn Clock>,
        margin: Duration,
    ) -> Self {
        Self {
            key: key.into(),
            owner: uuid::Uuid::new_v4().to_string(),
            store,
            clock,
            margin_ms: margin.as_millis() as i64,
            memory: Mutex::new(None),
        }
    }

    /// A channel's token in the shared store, refreshed 5 minutes early.
    pub fn shared(key: impl Into<String>, deps: &super::ChannelDeps) -> Self {
        let (store, clock) = (deps.credentials.clone(), deps.clock.clone());
        Self::new(key, store, clock, Duration::from_secs(300))
    }

    /// A token valid for at least the margin, fetching one if need be.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Credential, SendError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Fresh, SendError>>,
    {
        self.obtain(0, &fetch).await
    }

    /// A token newer than `stale`, which the provider has just refused.
    pub async fn replace<F, Fut>(
        &self,
        stale: &Credential,
        fetch: F,
    ) -> Result<Credential, SendError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Fresh, SendError>>,
    {
        self.obtain(stale.version.saturating_add(1), &fetch).await
    }

    async fn obtain<F, Fut>(&self, min_version: u64, fetch: &F) -> Result<Credential, SendError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Fresh, SendError>>,
    {
        let usable = |credential: &Credential, now: i64| {
            credential.version >= min_version
                && credential.expires_at_ms.saturating_sub(self.margin_ms) > now
        };
        for _ in 0..WAITS {
            let now = self.clock.now_ms();
            if let Some(credential) = self.memory.lock().expect("not poisoned").clone()
                && usable(&credential, now)
            {
                return Ok(credential);
            }
            let stored = self.store.get(&self.key).await.map_err(store_error)?;
            if let Some(credential) = stored.as_ref().filter(|c| usable(c, now)) {
                *self.memory.lock().expect("not poisoned") = Some(credential.clone());
                return Ok(credential.clone());
            }
            let seen = stored.as_ref().map_or(0, |c| c.version);
            let leased = self
                .store
                .lease_refresh(&self.key, &self.owner, seen, now, LEASE_MS)
                .await
                .map_err(store_error)?;
            if leased {
                let fresh = fetch().await?;
                let credential = Credential {
                    value: fresh.value,
                    expires_at_ms: now.saturating_add(fresh.expires_in.as_millis() as i64),
                    version: seen.saturating_add(1),
                };
                self.store
                    .put(&self.key, &self.owner, &credential)
                    .await
                    .map_err(store_error)?;
                tracing::info!(credential = %self.key, version = credential.version, "access token refreshed");
                *self.memory.lock().expect("not poisoned") = Some(credential.clone());
                return Ok(credential);
            }
            // Another instance refreshes: a token still within its life
            // serves meanwhile, unless it is the one the provider refused.
            if let Some(credential) =
                stored.filter(|c| c.version >= min_version && c.expires_at_ms > now)
            {
                return Ok(credential);
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        Err(SendError::Transient {
            channel: self.key.clone(),
            detail: "another instance did not finish refreshing the access token".into(),
            source: None,
        })
    }
}

fn store_error(error: StoreError) -> SendError {
    SendError::Transient {
        channel: "credentials".into(),
        detail: "credential store unavailable".into(),
        source: Some(Box::new(error)),
    }
}

/// Calls the provider with a cached token; when the provider refuses it as
/// stale, gets a newer one and calls once more.
pub async fn call_with_token<F, Fut, B>(
    sender: &Sender,
    reply_id: &str,
    cache: &TokenCache,
    fetch: F,
    build: B,
) -> Result<ApiResponse, SendError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Fresh, SendError>>,
    B: Fn(&Secret) -> reqwest::RequestBuilder,
{
    let token = cache.get(&fetch).await?;
    match sender.call(reply_id, build(&token.value)).await {
        Err(SendError::Transient {
            source: Some(source),
            ..
        }) if source.downcast_ref::<StaleToken>().is_some() => {
            let newer = cache.replace(&token, &fetch).await?;
            sender.call(reply_id, build(&newer.value)).await
        }
        other => other,
    }
}

/// Sends a reply's text in parts of at most `max` units, each call made by
/// `build` (part index, text, token) with a cached token ([`call_with_token`]).
pub async fn send_text_with_token<F, Fut, B>(
    sender: &Sender,
    reply: &switchboard_domain::OutboundReply,
    (max, unit): (usize, super::TextUnit),
    cache: &TokenCache,
    fetch: F,
    build: B,
) -> Result<(), SendError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Fresh, SendError>>,
    B: Fn(usize, &str, &Secret) -> reqwest::RequestBuilder,
{
    if reply.text.trim().is_empty() {
        return Err(super::permanent(&reply.channel, "empty reply text"));
    }
    for (index, part) in super::split_text(&reply.text, max, unit)
        .into_iter()
        .enumerate()
    {
        let call = |token: &Secret| build(index, part, token);
        call_with_token(sender, &reply.reply_id, cache, &fetch, call).await?;
    }
    Ok(())
}

/// Asks the provider for a token with `request` and reads it from its JSON
/// answer: the token at `token`, its lifetime in seconds at `expires_in`
/// (WeChat `/access_token` + `/expires_in`, Feishu `/tenant_access_token` +
/// `/expire`). The sender has already refused answers with error codes.
pub async fn fetch_token(
    sender: &Sender,
    request: reqwest::RequestBuilder,
    token: &str,
    expires_in: &str,
) -> Result<Fresh, SendError> {
    let answer = sender.call("access-token", request).await?;
    let body = answer.json().unwrap_or_default();
    let value = body
        .pointer(token)
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty());
    let seconds = body.pointer(expires_in).and_then(|v| v.as_u64());
    match (value, seconds) {
        (Some(value), Some(seconds)) => Ok(Fresh {
            value: Secret::from(value),
            expires_in: Duration::from_secs(seconds.min(86_400 * 30)),
        }),
        _ => Err(SendError::Transient {
            channel: "credentials".into(),
            detail: "the provider's token answer lacks the token or its lifetime".into(),
            source: None,
        }),
    }
}

/// A credential store in memory, for tests and single-process tools.
#[derive(Default)]
pub struct MemoryCredentials {
    rows: Mutex<std::collections::HashMap<String, Row>>,
}

#[derive(Default, Clone)]
struct Row {
    credential: Option<Credential>,
    lease: Option<(String, i64)>,
}

#[async_trait::async_trait]
impl CredentialStore for MemoryCredentials {
    async fn get(&self, key: &str) -> Result<Option<Credential>, StoreError> {
        let rows = self.rows.lock().expect("not poisoned");
        Ok(rows.get(key).and_then(|row| row.credential.clone()))
    }

    async fn lease_refresh(
        &self,
        key: &str,
        owner: &str,
        seen_version: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().expect("not poisoned");
        let row = rows.entry(key.to_owned()).or_default();
        let version = row.credential.as_ref().map_or(0, |c| c.version);
        let free = row.lease.as_ref().is_none_or(|(_, until)| *until <= now_ms);
        if version != seen_version || !free {
            return Ok(false);
        }
        row.lease = Some((owner.to_owned(), now_ms.saturating_add(lease_ms)));
        Ok(true)
    }

    async fn put(&self, key: &str, owner: &str, credential: &Credential) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().expect("not poisoned");
        let row = rows.entry(key.to_owned()).or_default();
        if row.lease.as_ref().map(|(holder, _)| holder.as_str()) != Some(owner) {
            return Err(StoreError::Conflict(key.to_owned()));
        }
        row.credential = Some(credential.clone());
        row.lease = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use switchboard_domain::SystemClock;

    use super::*;

    fn cache(store: &Arc<MemoryCredentials>) -> TokenCache {
        TokenCache::new(
            "provider:app",
            store.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(300),
        )
    }

    #[tokio::test]
    async fn concurrent_instances_refresh_once_and_share_the_token() {
        let store = Arc::new(MemoryCredentials::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, fetches) = (cache(&store), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| {
                        let fetches = fetches.clone();
                        async move {
                            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(Fresh {
                                value: format!("token-{n}").into(),
                                expires_in: Duration::from_secs(7200),
                            })
                        }
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap().value.expose().to_owned());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(values.iter().all(|value| value == "token-1"), "{values:?}");
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_once_not_by_every_instance() {
        let store = Arc::new(MemoryCredentials::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let fetch = || {
            let fetches = fetches.clone();
            async move {
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Fresh {
                    value: format!("token-{n}").into(),
                    expires_in: Duration::from_secs(7200),
                })
            }
        };
        let (a, b) = (cache(&store), cache(&store));
        let first = a.get(fetch).await.unwrap();
        assert_eq!(b.get(fetch).await.unwrap(), first);
        // Both learn at once that token-1 was refused: one refresh between them.
        let (from_a, from_b) = tokio::join!(a.replace(&first, fetch), b.replace(&first, fetch));
        assert_eq!(from_a.unwrap().value.expose(), "token-2");
        assert_eq!(from_b.unwrap().value.expose(), "token-2");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // An expiring token is refreshed before it expires.
        let soon = TokenCache::new(
            "other",
            store.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(7300),
        );
        soon.get(fetch).await.unwrap();
        soon.get(fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 4);
    }
}
