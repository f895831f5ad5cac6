//! The statistics of reports and experiments: confidence intervals and the
//! two-proportion z-test.

use serde::Serialize;

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A share with its Wilson score 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub count: u64,
    pub total: u64,
    /// `None` when `total` is 0.
    pub rate: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

impl Proportion {
    pub fn new(count: u64, total: u64) -> Self {
        Self {
            count,
            total,
            rate: (total > 0).then(|| count as f64 / total as f64),
            ci95: wilson(count, total, Z95),
        }
    }
}

/// The Wilson score interval of `successes` out of `n`.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or n successes the bound is exactly 0 or 1 (not a rounding error off it).
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if p >= 1.0 {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some([lo, hi])
}

/// A mean with its normal-approximation 95% interval (mean ± 1.96 s/√n).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mean {
    pub count: u64,
    pub mean: Option<f64>,
    /// `None` below two values.
    pub ci95: Option<[f64; 2]>,
}

impl Mean {
    pub fn of(values: &[f64]) -> Self {
        let count = values.len() as u64;
        if values.is_empty() {
            return Self {
                count,
                mean: None,
                ci95: None,
            };
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let ci95 = (values.len() > 1).then(|| {
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let half = Z95 * (variance / n).sqrt();
            [mean - half, mean + half]
        });
        Self {
            count,
            mean: Some(mean),
            ci95,
        }
    }
}

/// Two-sided p-value of the pooled two-proportion z-test of `a` against `b`;
/// `None` when either is empty or the pooled share is 0 or 1 (no variance).
pub fn two_proportion_p_value(a: &Proportion, b: &Proportion) -> Option<f64> {
    if a.total == 0 || b.total == 0 {
        return None;
    }
    let (n1, n2) = (a.total as f64, b.total as f64);
    let pooled = (a.count + b.count) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (a.count as f64 / n1 - b.count as f64 / n2) / se;
    Some(erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0))
}

/// The complementary error function by the Chebyshev fit of Numerical
/// Recipes' `erfcc` (fractional error below 1.2e-7 everywhere: plenty for
/// p-values).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn wilson_matches_the_formula_computed_by_hand() {
        // (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), computed in
        // Python: (0.309401, 0.497997) for 40 of 100.
        let [lo, hi] = wilson(40, 100, Z95).unwrap();
        assert!(
            close(lo, 0.309_401, 1e-5) && close(hi, 0.497_997, 1e-5),
            "{lo} {hi}"
        );
        // All successes still leave room below 1: (0.56552, 1.0) for 5 of 5.
        let [lo, hi] = wilson(5, 5, Z95).unwrap();
        assert!(close(lo, 0.565_518, 1e-5) && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 7, Z95).unwrap()[0], 0.0);
        assert_eq!(wilson(0, 0, Z95), None);
    }

    #[test]
    fn the_z_test_matches_python() {
        // 60/100 against 45/100: pooled p = 0.525, z = 2.123977,
        // p = math.erfc(z / sqrt(2)) = 0.033672 (Python's standard library).
        let p =
            two_proportion_p_value(&Proportion::new(60, 100), &Proportion::new(45, 100)).unwrap();
        assert!(close(p, 0.033_672, 1e-5), "{p}");
        // Equal shares: p = 1.
        let p = two_proportion_p_value(&Proportion::new(3, 10), &Proportion::new(30, 100)).unwrap();
        assert!(close(p, 1.0, 1e-6), "{p}");
        assert_eq!(
            two_proportion_p_value(&Proportion::new(0, 10), &Proportion::new(0, 10)),
            None
        );
    }

    #[test]
    fn erfc_matches_known_values() {
        // Python's math.erfc
        for (x, expected) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!(close(erfc(x), expected, 2e-7), "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn mean_interval_is_normal_approximation() {
        // mean 3.5, sample sd 1.2910 (values 2,3,4,5), n = 4:
        // 3.5 ± 1.96 * 1.2910 / 2 = [2.2349, 4.7651]
        let m = Mean::of(&[2.0, 3.0, 4.0, 5.0]);
        let [lo, hi] = m.ci95.unwrap();
        assert_eq!(m.mean, Some(3.5));
        assert!(
            close(lo, 2.234_8, 1e-3) && close(hi, 4.765_2, 1e-3),
            "{lo} {hi}"
        );
        assert_eq!(Mean::of(&[4.0]).ci95, None);
    }
}
