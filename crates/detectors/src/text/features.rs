//! Document and sentence features from per-token language-model statistics
//! and the text's style, and the fusion head that turns them into a raw
//! score.

use std::collections::BTreeMap;

/// Statistics of one scored token (see the engine's `candle-lm` contract).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenStat {
    /// log p(token | prefix), nats.
    pub logprob: f32,
    /// Entropy of the predictive distribution, nats.
    pub entropy: f32,
    /// 1 = the model's top choice.
    pub rank: f32,
    /// Variance of log p under p.
    pub var: f32,
    /// Index of the sentence the token belongs to.
    pub sentence: usize,
}

/// Feature names, in the order [`features`] returns them. Stable: the
/// fusion head file refers to them by name.
pub const FEATURES: [&str; 8] = [
    "lm.mean_logprob",
    "lm.mean_log_rank",
    "lm.mean_entropy",
    "lm.fast_detectgpt",
    "lm.ppl_entropy_ratio",
    "lm.sentence_logprob_std",
    "style.sentence_length_cv",
    "style.mattr",
];

/// What each feature means (shown in results).
pub fn describe(name: &str) -> &'static str {
    match name {
        "lm.mean_logprob" => "mean log-probability of the tokens under the scoring model (nats; higher = more predictable, LLM text tends higher)",
        "lm.mean_log_rank" => "mean natural log of each token's rank in the model's prediction (GLTR; lower = more top choices)",
        "lm.mean_entropy" => "mean entropy of the model's predictive distribution (nats)",
        "lm.fast_detectgpt" => "Fast-DetectGPT analytic sampling discrepancy per token: (sum logprob + sum entropy) / sqrt(sum variance) / sqrt(n); higher = more machine-like",
        "lm.ppl_entropy_ratio" => "log-perplexity divided by mean entropy (one-model Binoculars-style ratio; lower = more machine-like)",
        "lm.sentence_logprob_std" => "standard deviation of per-sentence mean log-probability (perplexity burstiness; human text varies more)",
        "style.sentence_length_cv" => "coefficient of variation of prose sentence lengths in words (burstiness)",
        "style.mattr" => "moving-average type-token ratio over 50-word windows (vocabulary diversity)",
        _ => "",
    }
}

/// The direction in which each feature is published to move for machine
/// text: `+1` higher, `-1` lower, `0` no settled direction. `text-train`
/// holds the head's weights to these signs (GLTR: more probable, higher
/// ranked tokens; lower predictive entropy; Fast-DetectGPT: higher
/// discrepancy; Binoculars: lower perplexity relative to entropy; less
/// burstiness of perplexity and of sentence lengths). MATTR has no settled
/// direction across registers.
pub fn machine_direction(name: &str) -> f64 {
    match name {
        "lm.mean_logprob" | "lm.fast_detectgpt" => 1.0,
        "lm.mean_log_rank"
        | "lm.mean_entropy"
        | "lm.ppl_entropy_ratio"
        | "lm.sentence_logprob_std"
        | "style.sentence_length_cv" => -1.0,
        _ => 0.0,
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

fn std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// The language-model features of a set of tokens (first five of
/// [`FEATURES`]); `None` without tokens.
pub fn lm_features(tokens: &[TokenStat]) -> Option<[f64; 5]> {
    let n = tokens.len();
    if n == 0 {
        return None;
    }
    let lp = mean(tokens.iter().map(|t| t.logprob as f64))?;
    // NaN ranks (no statistics) stay NaN: `f32::max` would hide them.
    let lr = mean(tokens.iter().map(|t| {
        let r = f64::from(t.rank);
        if r.is_nan() {
            r
        } else {
            r.max(1.0).ln()
        }
    }))?;
    let ent = mean(tokens.iter().map(|t| t.entropy as f64))?;
    let var = mean(tokens.iter().map(|t| t.var as f64))?;
    let fdg = (lp + ent) / var.max(1e-6).sqrt();
    let ratio = -lp / ent.max(1e-6);
    Some([lp, lr, ent, fdg, ratio])
}

/// Style and burstiness inputs of a document.
#[derive(Debug, Clone, Default)]
pub struct DocStyle {
    /// Word counts of the prose sentences.
    pub sentence_words: Vec<usize>,
    /// MATTR of the prose words.
    pub mattr: f64,
}

/// All [`FEATURES`] of a document.
pub fn features(tokens: &[TokenStat], style: &DocStyle) -> Option<[f64; 8]> {
    let lm = lm_features(tokens)?;
    let mut per_sentence: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for t in tokens {
        per_sentence
            .entry(t.sentence)
            .or_default()
            .push(t.logprob as f64);
    }
    let sent_means: Vec<f64> = per_sentence
        .values()
        .filter(|v| v.len() >= 3)
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    let lens: Vec<f64> = style.sentence_words.iter().map(|&w| w as f64).collect();
    let cv = match mean(lens.iter().copied()) {
        Some(m) if m > 0.0 => std(&lens) / m,
        _ => 0.0,
    };
    Some([
        lm[0],
        lm[1],
        lm[2],
        lm[3],
        lm[4],
        std(&sent_means),
        cv,
        style.mattr,
    ])
}

/// Mean of the tapped hidden states (`width` values per token, tokens in
/// `range` of the analysis' prose tokens); `None` when the range is empty or
/// there are no hidden states.
pub fn pool_hidden(
    hidden: &[f32],
    width: usize,
    range: std::ops::Range<usize>,
) -> Option<Vec<f32>> {
    if width == 0 || range.is_empty() || hidden.len() < range.end * width {
        return None;
    }
    let mut m = vec![0f64; width];
    for row in hidden[range.start * width..range.end * width].chunks_exact(width) {
        for (a, v) in m.iter_mut().zip(row) {
            *a += f64::from(*v);
        }
    }
    let n = range.len() as f64;
    Some(m.into_iter().map(|a| (a / n) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(lp: f32, ent: f32, rank: f32, var: f32, sentence: usize) -> TokenStat {
        TokenStat {
            logprob: lp,
            entropy: ent,
            rank,
            var,
            sentence,
        }
    }

    #[test]
    fn lm_features_follow_their_definitions() {
        let t = [tok(-1.0, 2.0, 1.0, 4.0, 0), tok(-3.0, 2.0, 10.0, 4.0, 0)];
        let f = lm_features(&t).unwrap();
        assert!((f[0] + 2.0).abs() < 1e-9);
        assert!((f[1] - 10f64.ln() / 2.0).abs() < 1e-9);
        assert!((f[2] - 2.0).abs() < 1e-9);
        // (mean lp + mean entropy) / sqrt(mean var) = (-2 + 2) / 2 = 0.
        assert!(f[3].abs() < 1e-9);
        assert!((f[4] - 1.0).abs() < 1e-9);
        assert!(lm_features(&[]).is_none());
    }

    #[test]
    fn hidden_states_are_averaged_over_the_range() {
        let h = [1.0, 10.0, 3.0, 20.0, 5.0, 30.0];
        assert_eq!(pool_hidden(&h, 2, 0..3).unwrap(), vec![3.0, 20.0]);
        assert_eq!(pool_hidden(&h, 2, 1..2).unwrap(), vec![3.0, 20.0]);
        assert!(pool_hidden(&h, 2, 2..2).is_none());
        assert!(pool_hidden(&h, 2, 0..4).is_none());
        assert!(pool_hidden(&h, 0, 0..1).is_none());
    }
}
