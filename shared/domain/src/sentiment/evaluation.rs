//! Measuring the scorer on labelled messages: polarity accuracy, per-class precision
//! and recall, and the precision and recall of the "clearly negative" decision that
//! routing takes.
//!
//! A labelled file has one `label<TAB>text` per line (`#` starts a comment), label
//! one of `clear_neg` (angry: a person should take over), `neg` (negative, calm or
//! not graded), `neu`, `pos`.

use std::fmt;

use super::sentiment;

/// Scores from -0.05 to +0.05 count as neutral (VADER's convention).
pub const NEUTRAL_BAND: f32 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    ClearNeg,
    Neg,
    Neu,
    Pos,
}

impl Label {
    pub fn parse(s: &str) -> Option<Label> {
        match s {
            "clear_neg" => Some(Label::ClearNeg),
            "neg" => Some(Label::Neg),
            "neu" => Some(Label::Neu),
            "pos" => Some(Label::Pos),
            _ => None,
        }
    }

    fn is_negative(self) -> bool {
        matches!(self, Label::ClearNeg | Label::Neg)
    }

    fn polarity(self) -> Polarity {
        match self {
            Label::ClearNeg | Label::Neg => Polarity::Negative,
            Label::Neu => Polarity::Neutral,
            Label::Pos => Polarity::Positive,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polarity {
    Negative,
    Neutral,
    Positive,
}

fn predicted_polarity(score: f32) -> Polarity {
    if score <= -NEUTRAL_BAND {
        Polarity::Negative
    } else if score >= NEUTRAL_BAND {
        Polarity::Positive
    } else {
        Polarity::Neutral
    }
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}: expected `clear_neg|neg|neu|pos<TAB>text`")]
pub struct ParseError {
    pub line: usize,
}

/// One labelled message with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub label: Label,
    pub text: String,
    pub score: f32,
}

/// Parses a labelled file and scores every message.
pub fn score_labelled(source: &str) -> Result<Vec<Scored>, ParseError> {
    let mut items = Vec::new();
    for (index, line) in source.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once('\t')
            .and_then(|(label, text)| Some((Label::parse(label)?, text)));
        let Some((label, text)) = parsed else {
            return Err(ParseError { line: index + 1 });
        };
        items.push(Scored {
            label,
            text: text.to_string(),
            score: sentiment(text),
        });
    }
    Ok(items)
}

/// Precision and recall of one yes/no decision; `None` where undefined.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PrecisionRecall {
    pub true_positives: usize,
    pub predicted: usize,
    pub actual: usize,
}

impl PrecisionRecall {
    pub fn precision(&self) -> Option<f64> {
        (self.predicted > 0).then(|| self.true_positives as f64 / self.predicted as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        (self.actual > 0).then(|| self.true_positives as f64 / self.actual as f64)
    }

    fn count(
        items: &[Scored],
        predicted: impl Fn(&Scored) -> bool,
        actual: impl Fn(&Scored) -> bool,
    ) -> Self {
        let mut pr = PrecisionRecall::default();
        for item in items {
            let (p, a) = (predicted(item), actual(item));
            pr.predicted += usize::from(p);
            pr.actual += usize::from(a);
            pr.true_positives += usize::from(p && a);
        }
        pr
    }
}

/// The figures for one labelled set at one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub messages: usize,
    pub counts: [usize; 4],
    pub threshold: f32,
    /// Negative (score <= -0.05) against not negative.
    pub binary_accuracy: f64,
    /// Negative / neutral / positive; only for sets that have neutral messages.
    pub three_class_accuracy: Option<f64>,
    /// Per polarity class (negative, neutral, positive) in the three-class reading.
    pub per_class: [PrecisionRecall; 3],
    /// The decision (score <= threshold) against `clear_neg`.
    pub clearly_negative: PrecisionRecall,
    /// The same decision against any negative label (`clear_neg` or `neg`).
    pub any_negative: PrecisionRecall,
    /// Messages labelled neutral or positive that the decision would escalate.
    pub false_escalations: usize,
}

pub fn evaluate(items: &[Scored], threshold: f32) -> Report {
    let mut counts = [0usize; 4];
    for item in items {
        counts[item.label as usize] += 1;
    }
    let n = items.len().max(1) as f64;
    let binary_correct = items
        .iter()
        .filter(|i| (i.score <= -NEUTRAL_BAND) == i.label.is_negative())
        .count();
    let three_correct = items
        .iter()
        .filter(|i| predicted_polarity(i.score) == i.label.polarity())
        .count();
    let per_class = [Polarity::Negative, Polarity::Neutral, Polarity::Positive].map(|class| {
        PrecisionRecall::count(
            items,
            |i| predicted_polarity(i.score) == class,
            |i| i.label.polarity() == class,
        )
    });
    let flagged = |i: &Scored| i.score <= threshold;
    Report {
        messages: items.len(),
        counts,
        threshold,
        binary_accuracy: binary_correct as f64 / n,
        three_class_accuracy: (counts[Label::Neu as usize] > 0).then(|| three_correct as f64 / n),
        per_class,
        clearly_negative: PrecisionRecall::count(items, flagged, |i| i.label == Label::ClearNeg),
        any_negative: PrecisionRecall::count(items, flagged, |i| i.label.is_negative()),
        false_escalations: items
            .iter()
            .filter(|i| flagged(i) && !i.label.is_negative())
            .count(),
    }
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [clear, neg, neu, pos] = self.counts;
        writeln!(
            f,
            "  messages {} (clear_neg {clear}, neg {neg}, neu {neu}, pos {pos})",
            self.messages
        )?;
        write!(
            f,
            "  accuracy: negative vs not {}",
            pct(Some(self.binary_accuracy))
        )?;
        if let Some(acc) = self.three_class_accuracy {
            write!(f, ", three classes {}", pct(Some(acc)))?;
        }
        writeln!(f)?;
        write!(f, "  per class P/R:")?;
        for (name, pr) in ["negative", "neutral", "positive"]
            .iter()
            .zip(&self.per_class)
        {
            if pr.actual > 0 {
                write!(f, " {name} {}/{}", pct(pr.precision()), pct(pr.recall()))?;
            }
        }
        writeln!(f)?;
        write!(
            f,
            "  clearly negative (score <= {:.2}): flagged {}",
            self.threshold, self.any_negative.predicted
        )?;
        if self.counts[Label::ClearNeg as usize] > 0 {
            write!(
                f,
                ", precision {} recall {} vs clear_neg;",
                pct(self.clearly_negative.precision()),
                pct(self.clearly_negative.recall())
            )?;
        }
        write!(
            f,
            " precision {} recall {} vs any negative; false escalations {}",
            pct(self.any_negative.precision()),
            pct(self.any_negative.recall()),
            self.false_escalations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_count_what_they_say() {
        let items = score_labelled(
            "# comment\nclear_neg\tworst service ever!!!\nneg\tit broke\nneu\twhere is my order\npos\tthanks, great help\n",
        )
        .unwrap();
        assert_eq!(items.len(), 4);
        let report = evaluate(&items, -0.6);
        assert_eq!(report.counts, [1, 1, 1, 1]);
        assert_eq!(report.clearly_negative.actual, 1);
        assert_eq!(report.clearly_negative.true_positives, 1);
        assert_eq!(report.false_escalations, 0);
        assert!(report.three_class_accuracy.is_some());
        assert!(score_labelled("angry\tnope").is_err());
        assert_eq!(score_labelled("neu no tab").unwrap_err().line, 1);
    }
}
