//! Measuring a matcher on a labelled query set, with the metrics of the FAQ benchmark:
//! P@1, MRR@10, and for sets with out-of-scope queries oos_AUROC, and at a threshold
//! in_scope_acc, oos_recall and abstain_F1 (out of scope is the positive class).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::FaqError;
use crate::matcher::{Matcher, Ranking};

/// One labelled customer message; empty `gold` means out of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledQuery {
    pub id: String,
    pub query: String,
    #[serde(default)]
    pub gold: Vec<String>,
    #[serde(default)]
    pub lang: Option<String>,
}

/// Parse a queries file: one `{"id", "query", "gold"?, "lang"?}` per line.
pub fn parse_queries(text: &str) -> Result<Vec<LabelledQuery>, FaqError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let query: LabelledQuery = serde_json::from_str(line).map_err(|err| FaqError::Parse {
            location: format!("line {}", index + 1),
            message: err
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string(),
        })?;
        out.push(query);
    }
    Ok(out)
}

pub fn load_queries(path: &Path) -> Result<Vec<LabelledQuery>, FaqError> {
    let text = std::fs::read_to_string(path).map_err(|source| FaqError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_queries(&text)
}

/// What the matcher did with one query, reduced to what the metrics need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub in_scope: bool,
    /// 1-based rank of the first gold entry within the top 10, if any.
    pub gold_rank: Option<usize>,
    pub confidence: f32,
}

impl Outcome {
    pub fn of(ranking: &Ranking, gold: &[String]) -> Outcome {
        let gold_rank = ranking
            .candidates
            .iter()
            .take(10)
            .position(|c| gold.contains(&c.id))
            .map(|p| p + 1);
        Outcome {
            in_scope: !gold.is_empty(),
            gold_rank,
            confidence: ranking.confidence,
        }
    }
}

/// The benchmark's metrics. The out-of-scope ones are `None` when the set has no
/// out-of-scope queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub queries: usize,
    pub in_scope: usize,
    pub out_of_scope: usize,
    pub p_at_1: f64,
    pub mrr_at_10: f64,
    pub threshold: f32,
    /// Share of the in-scope queries the matcher answers at `threshold`.
    pub answered: f64,
    /// Share of those answers whose top entry is right.
    pub answered_precision: f64,
    pub oos_auroc: Option<f64>,
    pub in_scope_acc: Option<f64>,
    pub oos_recall: Option<f64>,
    pub abstain_f1: Option<f64>,
}

/// Compute the metrics; the matcher answers when confidence >= `threshold`.
pub fn metrics(outcomes: &[Outcome], threshold: f32) -> Metrics {
    let in_scope: Vec<&Outcome> = outcomes.iter().filter(|o| o.in_scope).collect();
    let oos: Vec<&Outcome> = outcomes.iter().filter(|o| !o.in_scope).collect();
    let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let p_at_1 = share(
        in_scope.iter().filter(|o| o.gold_rank == Some(1)).count(),
        in_scope.len(),
    );
    let mrr = if in_scope.is_empty() {
        0.0
    } else {
        in_scope
            .iter()
            .map(|o| o.gold_rank.map_or(0.0, |r| 1.0 / r as f64))
            .sum::<f64>()
            / in_scope.len() as f64
    };
    let mut result = Metrics {
        queries: outcomes.len(),
        in_scope: in_scope.len(),
        out_of_scope: oos.len(),
        p_at_1,
        mrr_at_10: mrr,
        threshold,
        answered: 0.0,
        answered_precision: 0.0,
        oos_auroc: None,
        in_scope_acc: None,
        oos_recall: None,
        abstain_f1: None,
    };
    let answered: Vec<&&Outcome> = in_scope
        .iter()
        .filter(|o| o.confidence >= threshold)
        .collect();
    result.answered = share(answered.len(), in_scope.len());
    result.answered_precision = share(
        answered.iter().filter(|o| o.gold_rank == Some(1)).count(),
        answered.len(),
    );
    if oos.is_empty() {
        return result;
    }
    let in_conf: Vec<f32> = in_scope.iter().map(|o| o.confidence).collect();
    let oos_conf: Vec<f32> = oos.iter().map(|o| o.confidence).collect();
    result.oos_auroc = Some(auroc(&oos_conf, &in_conf));
    let answered_right = in_scope
        .iter()
        .filter(|o| o.confidence >= threshold && o.gold_rank == Some(1))
        .count();
    let declined_oos = oos.iter().filter(|o| o.confidence < threshold).count();
    let declined_in = in_scope.iter().filter(|o| o.confidence < threshold).count();
    result.in_scope_acc = Some(share(answered_right, in_scope.len()));
    let recall = share(declined_oos, oos.len());
    let precision = share(declined_oos, declined_oos + declined_in);
    result.oos_recall = Some(recall);
    result.abstain_f1 = Some(if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    });
    result
}

/// Probability that a random `low` value is below a random `high` value (ties count half).
pub fn auroc(low: &[f32], high: &[f32]) -> f64 {
    if low.is_empty() || high.is_empty() {
        return 0.5;
    }
    // rank-sum over the merged, sorted values
    let mut all: Vec<(f32, bool)> = low
        .iter()
        .map(|&v| (v, false))
        .chain(high.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_high = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0; // 1-based average rank of the tie group
        rank_sum_high += mid_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let n_high = high.len() as f64;
    let n_low = low.len() as f64;
    (rank_sum_high - n_high * (n_high + 1.0) / 2.0) / (n_high * n_low)
}

/// The threshold that best balances answering in-scope queries correctly and
/// declining out-of-scope ones (maximises the mean of in_scope_acc and oos_recall).
/// Without out-of-scope queries there is nothing to balance: `None`.
pub fn pick_threshold(outcomes: &[Outcome]) -> Option<f32> {
    if outcomes.iter().all(|o| o.in_scope) || outcomes.iter().all(|o| !o.in_scope) {
        return None;
    }
    let mut candidates: Vec<f32> = outcomes.iter().map(|o| o.confidence).collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best = (f64::MIN, 0.5f32);
    for &t in &candidates {
        let m = metrics(outcomes, t);
        let balanced = (m.in_scope_acc.unwrap_or(0.0) + m.oos_recall.unwrap_or(0.0)) / 2.0;
        if balanced > best.0 {
            best = (balanced, t);
        }
    }
    Some(best.1)
}

/// Rank every query (top 10) and reduce to outcomes; `progress` is called once per query.
pub fn run(
    matcher: &Matcher,
    queries: &[LabelledQuery],
    mut progress: impl FnMut(),
) -> Vec<Outcome> {
    queries
        .iter()
        .map(|q| {
            let ranking = matcher.rank(&q.query, 10);
            progress();
            Outcome::of(&ranking, &q.gold)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(in_scope: bool, rank: Option<usize>, confidence: f32) -> Outcome {
        Outcome {
            in_scope,
            gold_rank: rank,
            confidence,
        }
    }

    #[test]
    fn auroc_counts_pairs_and_ties() {
        assert_eq!(auroc(&[0.1, 0.2], &[0.3, 0.4]), 1.0);
        assert_eq!(auroc(&[0.3, 0.4], &[0.1, 0.2]), 0.0);
        assert_eq!(auroc(&[0.5], &[0.5]), 0.5);
        assert!((auroc(&[0.1, 0.5], &[0.5, 0.9]) - 0.875).abs() < 1e-9);
    }

    #[test]
    fn metrics_follow_the_benchmark_definitions() {
        let outcomes = [
            o(true, Some(1), 0.9),
            o(true, Some(2), 0.8),
            o(true, None, 0.3),
            o(true, Some(1), 0.4),
            o(false, None, 0.2),
            o(false, None, 0.6),
        ];
        let m = metrics(&outcomes, 0.5);
        assert_eq!(m.p_at_1, 0.5);
        assert!((m.mrr_at_10 - (1.0 + 0.5 + 0.0 + 1.0) / 4.0).abs() < 1e-9);
        assert_eq!(m.in_scope_acc, Some(0.25));
        // answered: 0.9 (right) and 0.8 (wrong) of the four in scope
        assert_eq!(m.answered, 0.5);
        assert_eq!(m.answered_precision, 0.5);
        assert_eq!(m.oos_recall, Some(0.5));
        // declined: 0.3, 0.4 (in scope) and 0.2 (out) -> precision 1/3, recall 1/2
        let f1 = 2.0 * (1.0 / 3.0) * 0.5 / (1.0 / 3.0 + 0.5);
        assert!((m.abstain_f1.unwrap() - f1).abs() < 1e-9);
        assert!(metrics(&outcomes[..4], 0.5).oos_auroc.is_none());
    }

    #[test]
    fn threshold_separates_when_it_can() {
        let outcomes = [
            o(true, Some(1), 0.9),
            o(true, Some(1), 0.7),
            o(false, None, 0.3),
            o(false, None, 0.5),
        ];
        let t = pick_threshold(&outcomes).unwrap();
        assert!(t > 0.5 && t <= 0.7, "{t}");
        assert_eq!(pick_threshold(&outcomes[..2]), None);
    }

    #[test]
    fn query_lines_parse_with_line_numbers() {
        let qs = parse_queries("{\"id\":\"q1\",\"query\":\"hi\",\"gold\":[]}\n\n{\"id\":\"q2\"}\n");
        assert_eq!(qs.unwrap_err().to_string(), "line 3: missing field `query`");
    }
}
