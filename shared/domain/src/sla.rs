//! Service levels per customer tier: how soon a person should answer after a
//! hand-over, and how often a waiting customer is told that we are on it.
//!
//! ```toml
//! [sla.new]      # also [sla.regular], [sla.vip]
//! first_response_secs = 14400
//! reassure_after_secs = 300   # 0 = never
//! ```

use serde::{Deserialize, Serialize};

use crate::model::Tier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierSla {
    /// Target for an agent's first answer after the hand-over.
    pub first_response_secs: u64,
    /// Tell a waiting customer we are on it after this long, and again each
    /// interval (at most three times); 0 = never.
    pub reassure_after_secs: u64,
}

impl TierSla {
    /// When an agent's first answer is due for a hand-over at `handed_over_at_ms`.
    pub fn first_response_deadline_ms(&self, handed_over_at_ms: i64) -> i64 {
        let secs = i64::try_from(self.first_response_secs).unwrap_or(i64::MAX);
        handed_over_at_ms.saturating_add(secs.saturating_mul(1000))
    }
}

impl Default for TierSla {
    fn default() -> Self {
        Self {
            first_response_secs: 4 * 3600,
            reassure_after_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaPolicy {
    pub new: TierSla,
    pub regular: TierSla,
    pub vip: TierSla,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            new: TierSla::default(),
            regular: TierSla::default(),
            vip: TierSla {
                first_response_secs: 15 * 60,
                reassure_after_secs: 120,
            },
        }
    }
}

impl SlaPolicy {
    pub fn for_tier(&self, tier: Tier) -> &TierSla {
        match tier {
            Tier::New => &self.new,
            Tier::Regular => &self.regular,
            Tier::Vip => &self.vip,
        }
    }

    /// When an agent's first answer is due for a hand-over made at `handed_over_at_ms`.
    pub fn first_response_deadline_ms(&self, tier: Tier, handed_over_at_ms: i64) -> i64 {
        self.for_tier(tier)
            .first_response_deadline_ms(handed_over_at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_follows_the_tier_and_never_overflows() {
        let policy = SlaPolicy::default();
        assert_eq!(
            policy.first_response_deadline_ms(Tier::Vip, 1_000),
            1_000 + 900_000
        );
        assert_eq!(
            policy.first_response_deadline_ms(Tier::Regular, 0),
            4 * 3600 * 1000
        );
        let mut huge = policy;
        huge.new.first_response_secs = u64::MAX;
        assert_eq!(huge.first_response_deadline_ms(Tier::New, 5), i64::MAX);
    }

    #[test]
    fn reads_the_documented_table() {
        let policy: SlaPolicy = serde_json::from_str(
            r#"{"regular": {"first_response_secs": 60, "reassure_after_secs": 5}}"#,
        )
        .unwrap();
        assert_eq!(policy.regular.first_response_secs, 60);
        assert_eq!(policy.regular.reassure_after_secs, 5);
        assert_eq!(policy.vip, SlaPolicy::default().vip);
    }
}
