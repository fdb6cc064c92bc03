//! What the detectors' logistic fusion heads share.

/// Checks a standardised linear head: a known format tag, one mean, scale
/// and weight per feature, every feature known, finite numbers, positive
/// scales.
pub fn check_linear_head(
    format: (&str, &str),
    features: &[String],
    known: &[&str],
    mean: &[f64],
    scale: &[f64],
    weights: &[f64],
    bias: f64,
) -> Result<(), String> {
    let (got, want) = format;
    if got != want {
        return Err(format!("unknown head format `{got}` (expected `{want}`)"));
    }
    let n = features.len();
    if n == 0 || mean.len() != n || scale.len() != n || weights.len() != n {
        return Err("features, mean, scale and weights must have the same length".into());
    }
    if let Some(f) = features.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(format!("unknown feature `{f}`"));
    }
    let finite = mean
        .iter()
        .chain(scale)
        .chain(weights)
        .chain(std::iter::once(&bias))
        .all(|x| x.is_finite());
    if !finite || scale.iter().any(|&s| s <= 0.0) {
        return Err("non-finite weight or non-positive scale".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_each_kind_of_bad_head() {
        let f = vec!["a".to_string()];
        let ok = |fmt, feats: &[String], scale: f64, bias: f64| {
            check_linear_head((fmt, "x/1"), feats, &["a"], &[0.0], &[scale], &[1.0], bias)
        };
        assert!(ok("x/1", &f, 1.0, 0.0).is_ok());
        assert!(ok("x/2", &f, 1.0, 0.0).is_err());
        assert!(ok("x/1", &["b".to_string()], 1.0, 0.0).is_err());
        assert!(ok("x/1", &f, 0.0, 0.0).is_err());
        assert!(ok("x/1", &f, 1.0, f64::NAN).is_err());
        assert!(ok("x/1", &[], 1.0, 0.0).is_err());
    }
}
