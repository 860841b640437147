//! Order statistics: the two quantile rules the tables use, and the across-block summary.
//!
//! Every latency row is two-level (conflux-node.md §3.4): for each block, one value is taken
//! across nodes (its Min, Avg, a percentile or Max); a row then summarises those per-block values
//! across blocks (Avg, percentiles, Max, Cnt). The original tool picks the per-block quantile by
//! lower nearest rank (`sorted[⌊(n−1)q⌋]`, its mapper and brute reducer) and interpolates linearly
//! across blocks; cfxm's headline interpolates linearly at both levels. Empty sets give `None`
//! (printed `nan`, as the original does), never a made-up zero.

use serde::Serialize;

/// How a quantile is picked from sorted samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuantileRule {
    /// `sorted[⌊(n−1)q⌋]`: the original tool's per-block rule.
    LowerRank,
    /// Linear interpolation between the two closest ranks (`(n−1)q`).
    Linear,
}

/// The q-quantile (q in [0, 1]) of `sorted`, ascending; `None` when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64, rule: QuantileRule) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = (h.floor() as usize).min(n - 1);
    Some(match rule {
        QuantileRule::LowerRank => sorted[lo],
        QuantileRule::Linear => {
            let hi = (h.ceil() as usize).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
        }
    })
}

/// Mean rounded to 2 decimals, as both the original's tables print it.
pub(crate) fn mean2(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let m = values.iter().sum::<f64>() / values.len() as f64;
    Some((m * 100.0).round() / 100.0)
}

/// Sorts floats ascending; NaNs (never produced by the parser) sort last.
pub(crate) fn sort_f64(v: &mut [f64]) {
    v.sort_unstable_by(|a, b| a.total_cmp(b));
}

/// Which value a row takes from one block's samples across nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NodeQuantile {
    Min,
    Avg,
    /// A percentile in (0, 100).
    P(f64),
    Max,
}

impl NodeQuantile {
    /// The original's fixed set: Min, Avg, P10 … P999, Max.
    pub(crate) fn original() -> Vec<NodeQuantile> {
        Self::with_percentiles(&ORIGINAL_PERCENTILES)
    }

    /// Min, Avg, the given percentiles (100 is Max and is not repeated), Max.
    pub(crate) fn with_percentiles(percentiles: &[f64]) -> Vec<NodeQuantile> {
        let mut out = vec![NodeQuantile::Min, NodeQuantile::Avg];
        out.extend(
            percentiles
                .iter()
                .filter(|p| **p < 100.0)
                .map(|p| NodeQuantile::P(*p)),
        );
        out.push(NodeQuantile::Max);
        out
    }

    /// The row label: `Min`, `Avg`, `P50`, `P999`, `Max`.
    pub(crate) fn label(&self) -> String {
        match self {
            NodeQuantile::Min => "Min".into(),
            NodeQuantile::Avg => "Avg".into(),
            NodeQuantile::P(p) => percentile_label(*p),
            NodeQuantile::Max => "Max".into(),
        }
    }

    /// This value of one block's sorted samples.
    pub(crate) fn pick(&self, sorted: &[f64], rule: QuantileRule) -> Option<f64> {
        match self {
            NodeQuantile::Min => sorted.first().copied(),
            NodeQuantile::Max => sorted.last().copied(),
            NodeQuantile::Avg => mean2(sorted),
            NodeQuantile::P(p) => quantile(sorted, p / 100.0, rule),
        }
    }
}

/// The original tool's percentile columns and node quantiles.
pub const ORIGINAL_PERCENTILES: [f64; 8] = [10.0, 30.0, 50.0, 80.0, 90.0, 95.0, 99.0, 99.9];

/// `P` and the percentile's digits without the dot: 50 → `P50`, 99.9 → `P999`, 99.99 → `P9999`.
pub fn percentile_label(p: f64) -> String {
    let text = format!("{p}");
    format!("P{}", text.replace('.', ""))
}

/// One row's across-block summary: Avg, the percentiles, Max and Cnt.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// How many values (blocks, nodes or transactions) the row summarises.
    pub cnt: u64,
    /// Mean, rounded to 2 decimals; null when empty.
    pub avg: Option<f64>,
    /// One value per percentile of the table, in its order; null when empty.
    pub percentiles: Vec<Option<f64>>,
    /// Largest value; null when empty.
    pub max: Option<f64>,
}

impl Summary {
    /// Summarises `values` (any order) at `percentiles` with linear interpolation.
    pub(crate) fn of(mut values: Vec<f64>, percentiles: &[f64]) -> Summary {
        sort_f64(&mut values);
        Summary::of_sorted(&values, percentiles)
    }

    pub(crate) fn of_sorted(sorted: &[f64], percentiles: &[f64]) -> Summary {
        Summary {
            cnt: sorted.len() as u64,
            avg: mean2(sorted),
            percentiles: percentiles
                .iter()
                .map(|p| quantile(sorted, p / 100.0, QuantileRule::Linear))
                .collect(),
            max: sorted.last().copied(),
        }
    }

    /// The value at percentile `p` of the table this summary belongs to.
    pub fn at(&self, percentiles: &[f64], p: f64) -> Option<f64> {
        percentiles
            .iter()
            .position(|x| (*x - p).abs() < 1e-9)
            .and_then(|i| self.percentiles.get(i).copied().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_rank_and_linear_differ_as_documented() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5, QuantileRule::LowerRank), Some(2.0));
        assert_eq!(quantile(&v, 0.5, QuantileRule::Linear), Some(2.5));
        assert_eq!(quantile(&v, 1.0, QuantileRule::Linear), Some(4.0));
        assert_eq!(quantile(&[], 0.5, QuantileRule::Linear), None);
        assert_eq!(quantile(&[7.0], 0.999, QuantileRule::Linear), Some(7.0));
    }

    #[test]
    fn labels_follow_the_original() {
        let labels: Vec<String> = NodeQuantile::original().iter().map(|q| q.label()).collect();
        assert_eq!(
            labels,
            [
                "Min", "Avg", "P10", "P30", "P50", "P80", "P90", "P95", "P99", "P999", "Max"
            ]
        );
        assert_eq!(percentile_label(99.99), "P9999");
        assert_eq!(percentile_label(12.5), "P125");
    }

    #[test]
    fn mean_is_rounded_to_two_decimals() {
        assert_eq!(mean2(&[0.001, 0.002, 0.0155]), Some(0.01));
        assert_eq!(mean2(&[]), None);
        let s = Summary::of(vec![3.0, 1.0, 2.0], &[50.0]);
        assert_eq!(s.cnt, 3);
        assert_eq!(s.percentiles, vec![Some(2.0)]);
        assert_eq!(s.max, Some(3.0));
    }
}
