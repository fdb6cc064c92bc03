//! Calibration: split discipline, operating point on held-out data,
//! isotonic monotonicity, Platt parameter recovery, byte-stable artefacts.

use candor_eval::metrics::bootstrap_ci;
use candor_eval::{
    fit_calibration, BootstrapConfig, CalibrationArtefact, Calibrator, EvalError, FitSpec, Method,
    OperatingPointSpec, Roc, ScoredItem, Split,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Authentic raw scores ~ N(0, 1), manipulated ~ N(2.5, 1).
fn synth(seed: u64, split: Split, n_auth: usize, n_manip: usize, shift: f64) -> Vec<ScoredItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::new();
    for i in 0..n_auth {
        let s = normal(&mut rng) + shift;
        v.push(ScoredItem::scored(format!("{split}-a{i:05}"), false, s).with_split(split));
    }
    for i in 0..n_manip {
        let s = normal(&mut rng) + 2.5 + shift;
        v.push(ScoredItem::scored(format!("{split}-m{i:05}"), true, s).with_split(split));
    }
    v
}

fn spec(method: Method) -> FitSpec {
    FitSpec {
        id: "calibration/synthetic".into(),
        version: "1".into(),
        detector: "synthetic.gauss".into(),
        set: "synthetic".into(),
        created_by: "cargo test -p candor-eval".into(),
        method,
        operating_point: OperatingPointSpec::default(),
    }
}

fn dataset(test_shift: f64) -> Vec<ScoredItem> {
    let mut items = synth(1, Split::Train, 1000, 1000, 0.0);
    items.extend(synth(2, Split::Calib, 4000, 1500, 0.0));
    items.extend(synth(3, Split::Test, 10_000, 2000, test_shift));
    items.push(ScoredItem::abstained("calib-x", true, "too_short").with_split(Split::Calib));
    items
}

#[test]
fn fit_uses_the_calibration_split_only() {
    for method in [Method::Platt, Method::Isotonic] {
        let base = fit_calibration(&dataset(0.0), Split::Calib, &spec(method)).unwrap();
        assert_eq!(base.fitted_on.n_authentic, 4000);
        assert_eq!(base.fitted_on.n_manipulated, 1500);
        assert_eq!(base.fitted_on.n_abstained, 1);
        assert_eq!(base.fitted_on.split, Split::Calib);

        // Drastically different test rows (and reordered input): identical bytes.
        let mut changed = dataset(0.0);
        for it in changed.iter_mut().filter(|i| i.split == Some(Split::Test)) {
            it.score = it.score.map(|s| -100.0 * s);
            it.manipulated = !it.manipulated;
        }
        changed.extend(synth(9, Split::Train, 50, 0, 40.0));
        changed.reverse();
        let other = fit_calibration(&changed, Split::Calib, &spec(method)).unwrap();
        assert_eq!(base.to_json().unwrap(), other.to_json().unwrap());

        // Changing one calibration row changes the artefact.
        let mut one = dataset(0.0);
        let k = one
            .iter()
            .position(|i| i.split == Some(Split::Calib))
            .unwrap();
        one[k].score = Some(7.0);
        let moved = fit_calibration(&one, Split::Calib, &spec(method)).unwrap();
        assert_ne!(base.fitted_on.rows_sha256, moved.fitted_on.rows_sha256);

        // Round trip and byte-stable re-run.
        let again = fit_calibration(&dataset(0.0), Split::Calib, &spec(method)).unwrap();
        let j = base.to_json().unwrap();
        assert_eq!(j, again.to_json().unwrap());
        let back = CalibrationArtefact::from_json(&j).unwrap();
        assert_eq!(back, base);
        assert_eq!(back.to_json().unwrap(), j);
        assert_eq!(back.model_ref(), base.model_ref());
        assert!(base.model_ref().sha256.unwrap().len() == 64);
    }

    // No calibration rows: error, not a silent fit on something else.
    let no_calib: Vec<ScoredItem> = dataset(0.0)
        .into_iter()
        .filter(|i| i.split != Some(Split::Calib))
        .collect();
    let e = fit_calibration(&no_calib, Split::Calib, &spec(Method::Platt)).unwrap_err();
    assert!(matches!(e, EvalError::NoRowsInSplit { .. }), "{e}");
    // Only abstentions in calib: still no rows.
    let mut abst = no_calib.clone();
    abst.push(ScoredItem::abstained("c", false, "silence").with_split(Split::Calib));
    assert!(matches!(
        fit_calibration(&abst, Split::Calib, &spec(Method::Platt)),
        Err(EvalError::NoRowsInSplit { .. })
    ));
    // One class only.
    let one_class = synth(5, Split::Calib, 100, 0, 0.0);
    assert!(matches!(
        fit_calibration(&one_class, Split::Calib, &spec(Method::Isotonic)),
        Err(EvalError::OneClass { .. })
    ));
    // The test split is refused outright.
    assert!(matches!(
        fit_calibration(&dataset(0.0), Split::Test, &spec(Method::Platt)),
        Err(EvalError::FitOnTestSplit)
    ));
}

/// FPR on held-out authentic test rows at a threshold, with a bootstrap CI.
fn test_fpr(art: &CalibrationArtefact, threshold: f64, items: &[ScoredItem]) -> (f64, f64, f64) {
    let neg: Vec<f64> = items
        .iter()
        .filter(|i| i.split == Some(Split::Test) && !i.manipulated)
        .map(|i| art.apply(i.score.unwrap()))
        .collect();
    let fpr = Roc::new(&[], &neg).rates_at(threshold).fpr.unwrap();
    let cfg = BootstrapConfig {
        resamples: 1000,
        ..Default::default()
    };
    let (lo, hi) = bootstrap_ci(&[], &neg, &cfg, |r| r.rates_at(threshold).fpr).unwrap();
    (fpr, lo, hi)
}

#[test]
fn operating_point_meets_target_fpr_on_held_out_data() {
    let items = dataset(0.0);
    for method in [Method::Platt, Method::Isotonic] {
        let art = fit_calibration(&items, Split::Calib, &spec(method)).unwrap();
        let t = &art.thresholds;
        assert!(t.authentic_below <= t.manipulated_at_or_above);
        assert!(art.metrics_on_calib.fpr_at_threshold <= 0.01);
        assert!(art.metrics_on_calib.fnr_below_authentic <= 0.05);
        let (fpr, lo, hi) = test_fpr(&art, t.manipulated_at_or_above, &items);
        eprintln!(
            "{method:?}: threshold {:.4}, test FPR {:.3}% CI [{:.3}%, {:.3}%]",
            t.manipulated_at_or_above,
            fpr * 100.0,
            lo * 100.0,
            hi * 100.0
        );
        assert!(lo <= fpr && fpr <= hi);
        // The interval contains the target or lies under it.
        assert!(
            lo <= t.target_fpr,
            "test FPR CI [{lo}, {hi}] lies above target"
        );
        // ... and the threshold is not trivially conservative.
        assert!(hi >= 0.004, "threshold far too strict: CI [{lo}, {hi}]");

        // Negative control: a threshold chosen for 3% FPR fails the 1% check.
        let loose = fit_calibration(
            &items,
            Split::Calib,
            &FitSpec {
                operating_point: OperatingPointSpec {
                    target_fpr: 0.03,
                    ..Default::default()
                },
                ..spec(method)
            },
        )
        .unwrap();
        let (_, lo3, _) = test_fpr(&loose, loose.thresholds.manipulated_at_or_above, &items);
        assert!(lo3 > 0.01, "control did not fail: lo {lo3}");
    }
}

#[test]
fn isotonic_is_monotone() {
    let art = fit_calibration(&dataset(0.0), Split::Calib, &spec(Method::Isotonic)).unwrap();
    let Calibrator::Isotonic { xs, ys } = &art.params else {
        panic!("expected isotonic")
    };
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "xs not increasing");
    assert!(ys.windows(2).all(|w| w[0] <= w[1]), "ys not monotone");
    let mut prev = f64::NEG_INFINITY;
    for i in 0..=4000 {
        let x = -6.0 + 14.0 * i as f64 / 4000.0;
        let p = art.apply(x);
        assert!((0.0..=1.0).contains(&p));
        assert!(p >= prev, "apply not monotone at {x}");
        prev = p;
    }
    assert_eq!(art.apply(-1e9), ys[0]);
    assert_eq!(art.apply(1e9), *ys.last().unwrap());
}

#[test]
fn platt_recovers_logistic_parameters() {
    let (a, b) = (1.5, -0.5);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut raw = Vec::new();
    let mut lab = Vec::new();
    for _ in 0..20_000 {
        let x = 1.5 * normal(&mut rng);
        let p = 1.0 / (1.0 + (-(a * x + b)).exp());
        raw.push(x);
        lab.push(rng.random::<f64>() < p);
    }
    let Calibrator::Platt { a: fa, b: fb } = Calibrator::fit_platt(&raw, &lab).unwrap() else {
        panic!()
    };
    eprintln!("Platt fit a = {fa}, b = {fb}");
    assert!((fa - a).abs() < 0.08, "a = {fa}");
    assert!((fb - b).abs() < 0.08, "b = {fb}");
}

/// A prior reweights the classes: on a calib split of 4000 authentic and
/// 1500 manipulated rows, `prior = 0.5` gives the probabilities of equal
/// classes (at the raw score where the two Gaussians cross, 1.25, the
/// probability is ~0.5; without a prior it follows the 27% mix), while the
/// thresholds still pick the same rows (same FPR on calib).
#[test]
fn a_prior_reweights_probabilities_not_decisions() {
    let items = dataset(0.0);
    for method in [Method::Platt, Method::Isotonic] {
        let mix = fit_calibration(&items, Split::Calib, &spec(method)).unwrap();
        let mut s = spec(method);
        s.operating_point.prior = Some(0.5);
        let even = fit_calibration(&items, Split::Calib, &s).unwrap();
        let (pm, pe) = (mix.apply(1.25), even.apply(1.25));
        assert!(
            (pe - 0.5).abs() < 0.1,
            "{method:?}: p(1.25) = {pe} with prior 0.5"
        );
        assert!(pm < 0.4, "{method:?}: p(1.25) = {pm} with the 27% mix");
        assert_eq!(
            mix.metrics_on_calib.fpr_at_threshold, even.metrics_on_calib.fpr_at_threshold,
            "{method:?}"
        );
        assert_eq!(even.operating_point.prior, Some(0.5));
        assert!(
            !mix.to_json().unwrap().contains("prior"),
            "old artefacts keep their bytes"
        );
        s.operating_point.prior = Some(1.0);
        assert!(fit_calibration(&items, Split::Calib, &s).is_err());
    }
}
