//! A/B tests of strategies: each customer is put in one variant of every
//! experiment, by a hash of the customer's key and the experiment's name, so
//! the assignment is the same in every conversation and on every instance
//! without being stored anywhere but in the sessions that used it.
//!
//! ```toml
//! [experiments.bands]
//! variants = { control = 50, eager = 50 }                  # weights
//! eager = { english_answer = 0.60, chinese_answer = 0.55 }  # what a variant overrides
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::routing::{Language, RoutingPolicy};
use crate::sla::TierSla;

/// `[experiments]`: one table per experiment, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Experiments(pub BTreeMap<String, Experiment>);

/// One experiment: the variants' weights and what each variant changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Variant name to weight; a customer lands in a variant with
    /// probability weight / sum of weights.
    pub variants: BTreeMap<String, u32>,
    /// The variant the others are compared with in `experiments report`;
    /// default `control` if there is one, else the first by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Per variant, what it overrides (a variant without a table changes nothing).
    #[serde(flatten)]
    pub overrides: BTreeMap<String, VariantOverrides>,
}

/// What a variant may change. Unset fields keep the configured behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantOverrides {
    /// Confidence bands (`[routing.english]`, `[routing.chinese]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub english_answer: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub english_offer: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chinese_answer: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chinese_offer: Option<f32>,
    /// The welcome of a new customer, in English and in Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_english: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_chinese: Option<String>,
    /// Questions in the welcome menu (`[tiers] menu_size`); 0: no welcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub menu_size: Option<usize>,
    /// Reassurance interval after a hand-over, for every tier (`[sla.*]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassure_after_secs: Option<u64>,
    /// Whether "was this helpful?" is asked after an FAQ answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_helpful: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExperimentError {
    #[error("experiment {0:?} has no variants")]
    NoVariants(String),
    #[error("experiment {0:?}: the variants' weights add up to 0")]
    ZeroWeights(String),
    #[error("experiment {experiment:?}: {variant:?} is not one of its variants")]
    UnknownVariant { experiment: String, variant: String },
    #[error(
        "experiment {experiment:?}, variant {variant:?}: bands must lie in 0..=1 with offer <= answer"
    )]
    Bands { experiment: String, variant: String },
}

impl Experiments {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Refuses experiments that cannot assign anyone, or overrides of
    /// variants that do not exist (a typo would otherwise be ignored).
    pub fn validate(&self, routing: &RoutingPolicy) -> Result<(), ExperimentError> {
        for (name, experiment) in &self.0 {
            if experiment.variants.is_empty() {
                return Err(ExperimentError::NoVariants(name.clone()));
            }
            if experiment.variants.values().all(|w| *w == 0) {
                return Err(ExperimentError::ZeroWeights(name.clone()));
            }
            let named = experiment
                .overrides
                .keys()
                .chain(experiment.baseline.iter());
            for variant in named {
                if !experiment.variants.contains_key(variant) {
                    return Err(ExperimentError::UnknownVariant {
                        experiment: name.clone(),
                        variant: variant.clone(),
                    });
                }
            }
            for (variant, overrides) in &experiment.overrides {
                let policy = overrides.routing(routing.clone());
                let valid = |b: crate::routing::ConfidenceBands| {
                    (0.0..=1.0).contains(&b.answer)
                        && (0.0..=1.0).contains(&b.offer)
                        && b.offer <= b.answer
                };
                if !valid(policy.english) || !valid(policy.chinese) {
                    return Err(ExperimentError::Bands {
                        experiment: name.clone(),
                        variant: variant.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The customer's variant of every experiment.
    pub fn assign(&self, customer_key: &str) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(name, experiment)| {
                Some((name.clone(), experiment.assign(name, customer_key)?))
            })
            .collect()
    }

    /// Adds the variants of experiments the session has not recorded yet
    /// (new conversations, or experiments started since); recorded ones stay.
    pub fn assign_missing(&self, customer_key: &str, variants: &mut BTreeMap<String, String>) {
        for (name, experiment) in &self.0 {
            if !variants.contains_key(name)
                && let Some(variant) = experiment.assign(name, customer_key)
            {
                variants.insert(name.clone(), variant);
            }
        }
    }

    /// The overrides that apply to a session in `variants`, in experiment
    /// name order (a later experiment wins where two override one setting).
    pub fn overrides<'a>(
        &'a self,
        variants: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a VariantOverrides> + 'a {
        variants
            .iter()
            .filter_map(|(experiment, variant)| self.0.get(experiment)?.overrides.get(variant))
    }

    /// The routing bands for a session in `variants`.
    pub fn routing(
        &self,
        base: &RoutingPolicy,
        variants: &BTreeMap<String, String>,
    ) -> RoutingPolicy {
        self.overrides(variants)
            .fold(base.clone(), |policy, o| o.routing(policy))
    }

    /// The service level (reassurance timing) for a session in `variants`.
    pub fn sla(&self, base: TierSla, variants: &BTreeMap<String, String>) -> TierSla {
        self.overrides(variants).fold(base, |mut sla, o| {
            if let Some(secs) = o.reassure_after_secs {
                sla.reassure_after_secs = secs;
            }
            sla
        })
    }

    /// The welcome menu's size for a session in `variants`.
    pub fn menu_size(&self, base: usize, variants: &BTreeMap<String, String>) -> usize {
        self.overrides(variants)
            .filter_map(|o| o.menu_size)
            .last()
            .unwrap_or(base)
    }

    /// The welcome text a variant sets for `language`, if any.
    pub fn welcome<'a>(
        &'a self,
        language: Language,
        variants: &'a BTreeMap<String, String>,
    ) -> Option<&'a str> {
        self.overrides(variants)
            .filter_map(|o| {
                if language.is_cjk() {
                    o.welcome_chinese.as_deref()
                } else {
                    o.welcome_english.as_deref()
                }
            })
            .last()
    }

    /// Whether a variant says to ask (or not to ask) "was this helpful?";
    /// `None`: the configured behaviour.
    pub fn ask_helpful(&self, variants: &BTreeMap<String, String>) -> Option<bool> {
        self.overrides(variants)
            .filter_map(|o| o.ask_helpful)
            .last()
    }
}

impl Experiment {
    /// The variant of `customer_key`: the first 8 bytes of
    /// SHA-256(experiment name, NUL, customer key) as a number modulo the
    /// weights' sum, walked through the variants by name.
    pub fn assign(&self, name: &str, customer_key: &str) -> Option<String> {
        let total: u64 = self.variants.values().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(customer_key.as_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let mut point = u64::from_be_bytes(first) % total;
        for (variant, weight) in &self.variants {
            let weight = u64::from(*weight);
            if point < weight {
                return Some(variant.clone());
            }
            point -= weight;
        }
        None
    }

    /// The variant others are compared with.
    pub fn baseline(&self) -> Option<&str> {
        self.baseline
            .as_deref()
            .or_else(|| self.variants.contains_key("control").then_some("control"))
            .or_else(|| self.variants.keys().next().map(String::as_str))
    }
}

impl VariantOverrides {
    fn routing(&self, mut policy: RoutingPolicy) -> RoutingPolicy {
        let set = |field: &mut f32, value: Option<f32>| {
            if let Some(value) = value {
                *field = value;
            }
        };
        set(&mut policy.english.answer, self.english_answer);
        set(&mut policy.english.offer, self.english_offer);
        set(&mut policy.chinese.answer, self.chinese_answer);
        set(&mut policy.chinese.offer, self.chinese_offer);
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bands() -> Experiments {
        serde_json::from_value(serde_json::json!({
            "bands": {
                "variants": {"control": 50, "eager": 50},
                "eager": {"english_answer": 0.60, "chinese_answer": 0.55}
            }
        }))
        .unwrap()
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_weights() {
        let experiments = bands();
        let mut eager = 0;
        for i in 0..2000 {
            let customer = format!("telegram:{i}");
            let first = experiments.assign(&customer);
            assert_eq!(first, experiments.assign(&customer), "sticky");
            if first["bands"] == "eager" {
                eager += 1;
            }
        }
        // 50/50: within 5 standard deviations (±112) of 1000.
        assert!((888..=1112).contains(&eager), "{eager}");
        let skewed: Experiments = serde_json::from_value(serde_json::json!({
            "x": {"variants": {"a": 1, "b": 0}}
        }))
        .unwrap();
        assert!((0..100).all(|i| skewed.assign(&format!("c:{i}"))["x"] == "a"));
    }

    #[test]
    fn different_experiments_assign_independently() {
        let experiments: Experiments = serde_json::from_value(serde_json::json!({
            "one": {"variants": {"a": 1, "b": 1}},
            "two": {"variants": {"a": 1, "b": 1}}
        }))
        .unwrap();
        let differ = (0..200)
            .filter(|i| {
                let v = experiments.assign(&format!("c:{i}"));
                v["one"] != v["two"]
            })
            .count();
        assert!((60..=140).contains(&differ), "{differ}");
    }

    #[test]
    fn overrides_apply_to_their_variant_only() {
        let experiments = bands();
        let base = RoutingPolicy::default();
        let eager = BTreeMap::from([("bands".to_owned(), "eager".to_owned())]);
        let control = BTreeMap::from([("bands".to_owned(), "control".to_owned())]);
        let policy = experiments.routing(&base, &eager);
        assert_eq!(policy.english.answer, 0.60);
        assert_eq!(policy.chinese.answer, 0.55);
        assert_eq!(policy.english.offer, base.english.offer);
        assert_eq!(experiments.routing(&base, &control), base);
        assert_eq!(experiments.ask_helpful(&eager), None);
        assert_eq!(experiments.bands_baseline(), Some("control"));
    }

    #[test]
    fn validation_catches_typos_and_bad_bands() {
        let experiments = bands();
        experiments.validate(&RoutingPolicy::default()).unwrap();
        let typo: Experiments = serde_json::from_value(serde_json::json!({
            "bands": {"variants": {"control": 1, "eager": 1}, "eagre": {"english_answer": 0.6}}
        }))
        .unwrap();
        assert!(matches!(
            typo.validate(&RoutingPolicy::default()),
            Err(ExperimentError::UnknownVariant { .. })
        ));
        let bad: Experiments = serde_json::from_value(serde_json::json!({
            "bands": {"variants": {"control": 1, "eager": 1}, "eager": {"english_answer": 0.3}}
        }))
        .unwrap();
        assert!(matches!(
            bad.validate(&RoutingPolicy::default()),
            Err(ExperimentError::Bands { .. })
        ));
        let unknown_setting = serde_json::from_value::<Experiments>(serde_json::json!({
            "bands": {"variants": {"control": 1}, "control": {"english_anser": 0.6}}
        }));
        assert!(unknown_setting.is_err());
    }

    impl Experiments {
        fn bands_baseline(&self) -> Option<&str> {
            self.0["bands"].baseline()
        }
    }
}
