//! Loop safety on the sending side: at most N automated replies per sender
//! per day (RFC 3834 asks responders to limit their rate), and none to an
//! address the provider reported as bouncing. Agents' replies are never held
//! back. The counters are shared by every instance ([`CounterStore`]).

use std::sync::Arc;

use switchboard_domain::privacy::{
    auto_reply_counter_key, counter_day, counter_day_expiry_ms, undeliverable_counter_key,
};
use switchboard_domain::{Clock, CounterStore, OutboundReply, SendError};

use crate::kit::{ChannelDeps, Unusable, unusable};

const DAY_MS: i64 = 86_400_000;

/// Automated replies per sender per day unless configured.
pub const DEFAULT_DAILY_CAP: u64 = 10;

/// How long a bounce keeps an address from getting automated replies.
const UNDELIVERABLE_MS: i64 = 30 * DAY_MS;

pub struct ReplyLimits {
    channel: &'static str,
    counters: Arc<dyn CounterStore>,
    clock: Arc<dyn Clock>,
    daily_cap: u64,
}

impl ReplyLimits {
    pub fn new(
        channel: &'static str,
        deps: &ChannelDeps,
        daily_cap: Option<u64>,
    ) -> Result<Self, Unusable> {
        let daily_cap = daily_cap.unwrap_or(DEFAULT_DAILY_CAP);
        if daily_cap == 0 {
            return Err(unusable("max_auto_replies_per_day must be at least 1"));
        }
        Ok(Self {
            channel,
            counters: deps.counters.clone(),
            clock: deps.clock.clone(),
            daily_cap,
        })
    }

    /// [`ReplyLimits::withheld`] as the senders use it: `Withheld` when not to send.
    pub async fn check(&self, reply: &OutboundReply) -> Result<(), SendError> {
        match self.withheld(reply).await? {
            None => Ok(()),
            Some(reason) => Err(SendError::Withheld {
                channel: self.channel.to_owned(),
                reason,
            }),
        }
    }

    #[cfg(test)]
    async fn allow(&self, reply: &OutboundReply) -> Result<bool, SendError> {
        Ok(self.withheld(reply).await?.is_none())
    }

    /// Why this reply must not be mailed, if it must not (`None`: it may be).
    /// An agent's reply may always be; an automated one unless the address
    /// bounces or the sender's cap for today is reached (the reply then counts
    /// against it). A store failure is transient.
    async fn withheld(&self, reply: &OutboundReply) -> Result<Option<&'static str>, SendError> {
        // Agents' replies get ids `a-…` (the desk), automated ones `r-…`.
        if reply.reply_id.starts_with("a-") {
            return Ok(None);
        }
        let now_ms = self.clock.now_ms();
        let customer = reply.customer_id.to_lowercase();
        let unavailable = |error: switchboard_domain::StoreError| SendError::Transient {
            channel: self.channel.to_owned(),
            detail: "reply counters unavailable".into(),
            source: Some(Box::new(error)),
        };
        let undeliverable = undeliverable_counter_key(self.channel, &customer);
        let marked = self.counters.count(&undeliverable, now_ms);
        if marked.await.map_err(unavailable)? > 0 {
            tracing::info!(channel = self.channel, reply_id = %reply.reply_id, "not mailing an address that bounces");
            return Ok(Some("the address bounces"));
        }
        let day = counter_day(now_ms);
        let expires = counter_day_expiry_ms(day);
        // A reply retried after a failed send (SMTP down) already holds its
        // slot: it must not take another, or an outage would use up the cap.
        let holds_slot = format!("auto-reply-slot:{}:{}", self.channel, reply.reply_id);
        if self
            .counters
            .count(&holds_slot, now_ms)
            .await
            .map_err(unavailable)?
            > 0
        {
            return Ok(None);
        }
        let key = auto_reply_counter_key(self.channel, &customer, day);
        let counted = self
            .counters
            .increment_below(&key, self.daily_cap, now_ms, expires);
        let allowed = counted.await.map_err(unavailable)?;
        if !allowed {
            tracing::warn!(channel = self.channel, reply_id = %reply.reply_id, cap = self.daily_cap, "daily automated reply cap reached; reply not mailed");
            return Ok(Some(
                "the daily cap on automatic replies to this address is reached",
            ));
        }
        self.counters
            .increment_below(&holds_slot, 1, now_ms, expires)
            .await
            .map_err(unavailable)?;
        Ok(None)
    }

    /// Records that mail to `address` bounces (provider event); best effort.
    pub async fn mark_undeliverable(&self, address: &str, now_ms: i64) {
        let Some(address) = super::address_of(address) else {
            return;
        };
        let key = undeliverable_counter_key(self.channel, &address);
        let until = now_ms.saturating_add(UNDELIVERABLE_MS);
        if let Err(error) = self.counters.increment_below(&key, 1, now_ms, until).await {
            tracing::warn!(channel = self.channel, error = %error, "could not record an undeliverable address");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::ReplyContext;

    fn reply(id: &str, customer: &str) -> OutboundReply {
        OutboundReply {
            channel: "mailgun".into(),
            account_id: "support@shop.example".into(),
            conversation_id: "c".into(),
            customer_id: customer.into(),
            text: "hi".into(),
            reply: ReplyContext::default(),
            reply_id: id.into(),
            choices: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_eleventh_automated_reply_of_the_day_is_held_back() {
        let limits = ReplyLimits::new("mailgun", &ChannelDeps::offline(), Some(10)).unwrap();
        for n in 0..10 {
            assert!(
                limits
                    .allow(&reply(&format!("r-{n}"), "Jane@Customer.example"))
                    .await
                    .unwrap()
            );
        }
        assert!(
            !limits
                .allow(&reply("r-10", "jane@customer.example"))
                .await
                .unwrap()
        );
        // Another sender, and an agent, are not affected.
        assert!(
            limits
                .allow(&reply("r-11", "bob@customer.example"))
                .await
                .unwrap()
        );
        assert!(
            limits
                .allow(&reply("a-1", "jane@customer.example"))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_reply_retried_after_failed_sends_takes_one_slot() {
        let limits = ReplyLimits::new("mailgun", &ChannelDeps::offline(), Some(2)).unwrap();
        // SMTP down: the same reply is tried twenty times.
        for _ in 0..20 {
            assert!(
                limits
                    .allow(&reply("r-1", "jane@customer.example"))
                    .await
                    .unwrap()
            );
        }
        assert!(
            limits
                .allow(&reply("r-2", "jane@customer.example"))
                .await
                .unwrap()
        );
        assert!(
            !limits
                .allow(&reply("r-3", "jane@customer.example"))
                .await
                .unwrap()
        );
        // A reply held back by the cap stays held back when retried.
        assert!(
            !limits
                .allow(&reply("r-3", "jane@customer.example"))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn bouncing_addresses_get_no_automated_reply() {
        let deps = ChannelDeps::offline();
        let limits = ReplyLimits::new("sendgrid", &deps, None).unwrap();
        limits
            .mark_undeliverable("Jane <jane@customer.example>", deps.clock.now_ms())
            .await;
        assert!(
            !limits
                .allow(&reply("r-1", "jane@customer.example"))
                .await
                .unwrap()
        );
        assert!(
            limits
                .allow(&reply("a-1", "jane@customer.example"))
                .await
                .unwrap()
        );
        assert!(ReplyLimits::new("x", &deps, Some(0)).is_err());
    }
}
