//! Golden fixture: RawGAT-ST's published per-utterance scores on the
//! ASVspoof 2019 LA evaluation set. Recomputing the pooled EER must give
//! ≈ 1.16%. Skips (passes) when `../shared` is not present.

use std::path::PathBuf;

use candor_eval::metrics::{per_group, split_scores};
use candor_eval::{Roc, ScoredItem};

const REL: &str = "eval/audio/rawgat-st-scores/Pre_trained_models/RawGAT_ST_add/Scores.txt";

fn shared_dir() -> PathBuf {
    match std::env::var_os("CANDOR_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// Parse `id attack key score` lines. The file's score is "higher = more
/// bona fide"; Candor's positive class is manipulated, so it is negated.
fn load(path: &std::path::Path) -> Vec<ScoredItem> {
    let text = std::fs::read_to_string(path).expect("read Scores.txt");
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 4, "line {}: expected 4 fields: {line}", i + 1);
        let manipulated = match f[2] {
            "spoof" => true,
            "bonafide" => false,
            k => panic!("line {}: unknown key {k}", i + 1),
        };
        let score: f64 = f[3].parse().expect("score");
        let group = if f[1] == "-" { "bonafide" } else { f[1] };
        items.push(ScoredItem::scored(f[0], manipulated, -score).with_group(group));
    }
    items
}

#[test]
fn rawgat_st_eer_matches_published_value() {
    let path = shared_dir().join(REL);
    if !path.is_file() {
        eprintln!(
            "skipping: ../shared not present ({} missing)",
            path.display()
        );
        return;
    }
    let items = load(&path);
    assert!(items.len() > 70_000, "{} trials", items.len());
    let (pos, neg) = split_scores(&items).unwrap();
    assert_eq!(neg.len(), 7355);
    assert_eq!(pos.len(), 63882);

    let roc = Roc::new(&pos, &neg);
    let eer = roc.eer().unwrap();
    let pct = eer.eer * 100.0;
    eprintln!(
        "RawGAT-ST EER = {pct:.4}% at threshold {} (negated score), AUROC = {:.5}",
        eer.threshold,
        roc.auroc().unwrap()
    );
    assert!(
        (pct - 1.16).abs() <= 0.05,
        "EER {pct}% not within 1.16 ± 0.05"
    );

    // The direction matters: without negation the detector looks inverted.
    let (p2, n2): (Vec<f64>, Vec<f64>) = (
        pos.iter().map(|x| -x).collect(),
        neg.iter().map(|x| -x).collect(),
    );
    assert!(Roc::new(&p2, &n2).eer().unwrap().eer > 0.9);

    let rows = per_group(&items, eer.threshold).unwrap();
    for a in 7..=19 {
        let name = format!("A{a:02}");
        let row = rows
            .iter()
            .find(|r| r.group == name)
            .unwrap_or_else(|| panic!("group {name} missing"));
        assert_eq!(row.n_manipulated, 4914, "{name}");
        assert_eq!(row.n_authentic, 0);
        let e = row.eer_vs_all_authentic.unwrap();
        eprintln!(
            "  {name}: EER {:.3}%  TPR@EER-threshold {:.3}%",
            e * 100.0,
            row.tpr.unwrap() * 100.0
        );
        assert!(e < 0.1, "{name} EER {e}");
    }
    let bona = rows.iter().find(|r| r.group == "bonafide").unwrap();
    assert_eq!(bona.n_authentic, 7355);
    assert!(bona.tpr.is_none());
    assert!((bona.fpr.unwrap() - eer.eer).abs() < 0.002);
}
