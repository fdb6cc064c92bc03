//! Report: files, PNG magic, Markdown content, JSON round trip and the
//! generated docs page.

use candor_core::{ModelRef, Thresholds};
use candor_eval::{
    evaluation_markdown, evaluation_markdown_from_files, BootstrapConfig, EvalInput, EvalReport,
    ReportConfig, ScoredItem, SetProvenance,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn items() -> Vec<ScoredItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut v = Vec::new();
    for i in 0..400 {
        let manipulated = i % 2 == 0;
        let base: f64 = rng.random::<f64>() * 0.7;
        let s = if manipulated { base + 0.3 } else { base };
        let group = if manipulated {
            if i % 4 == 0 {
                "sdxl"
            } else {
                "midjourney"
            }
        } else if i % 3 == 0 {
            "studio"
        } else {
            "phone"
        };
        v.push(ScoredItem::scored(format!("f{i}"), manipulated, s).with_group(group));
    }
    v.push(ScoredItem::abstained("x1", false, "no_face").with_group("phone"));
    v.push(ScoredItem::abstained("x2", true, "no_face"));
    v.push(ScoredItem::abstained("x3", true, "low_quality"));
    v
}

fn report(items: &[ScoredItem]) -> EvalReport {
    let input = EvalInput {
        set: SetProvenance::from_items("synthetic-headshots", "/data/heads.jsonl", items),
        detector: "image.test".into(),
        models: vec![ModelRef {
            id: "calibration/image".into(),
            version: "1".into(),
            sha256: Some("ab".repeat(32)),
        }],
        thresholds: Some(Thresholds {
            authentic_below: 0.3,
            manipulated_at_or_above: 0.65,
            target_fpr: 0.01,
        }),
        items,
        total_seconds: Some(2.0),
        created_by: "candor eval --manifest heads.jsonl".into(),
    };
    let cfg = ReportConfig {
        bootstrap: BootstrapConfig {
            resamples: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    EvalReport::compute(&input, &cfg).unwrap()
}

#[test]
fn write_dir_produces_the_five_files() {
    let items = items();
    let r = report(&items);
    assert_eq!(r.n_items, 403);
    assert_eq!(r.n_scored, 400);
    assert_eq!(r.abstention.count, 3);
    assert_eq!(r.abstention.reasons.get("no_face"), Some(&2));
    assert_eq!(r.timings.items_per_s, Some(201.5));
    let groups: Vec<&str> = r.per_group.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(groups, ["midjourney", "phone", "sdxl", "studio"]);
    let auroc = r.metrics.auroc.unwrap();
    assert!(auroc.ci_lo.unwrap() < auroc.value && auroc.value < auroc.ci_hi.unwrap());
    assert!(r.calibration.is_some());
    let la = r.labels_authentic.unwrap();
    assert_eq!(
        la.likely_authentic + la.inconclusive + la.likely_manipulated,
        200
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval-out");
    let paths = r.write_dir(&out).unwrap();
    assert_eq!(paths.len(), 5);
    for name in [
        "report.json",
        "report.md",
        "roc.png",
        "hist.png",
        "reliability.png",
    ] {
        let p = out.join(name);
        let bytes = std::fs::read(&p).unwrap_or_else(|_| panic!("{name} missing"));
        assert!(!bytes.is_empty(), "{name} empty");
        if name.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
            assert!(bytes.len() > 1000, "{name} suspiciously small");
        }
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("AUROC"), "{md}");
    assert!(md.contains("| sdxl |"), "{md}");
    assert!(md.contains("no_face"), "{md}");

    // JSON round trip; recomputation is byte-identical.
    let back = EvalReport::load(out.join("report.json")).unwrap();
    assert_eq!(back, r);
    assert_eq!(report(&items).to_json().unwrap(), r.to_json().unwrap());

    // The generated docs page.
    let cmd = "candor eval docs --reports out/*/report.json";
    let doc = evaluation_markdown_from_files(&[out.join("report.json")], cmd).unwrap();
    assert!(doc.starts_with("<!-- GENERATED FILE: do not edit by hand. -->"));
    assert!(doc.contains(cmd));
    assert!(doc.contains("synthetic-headshots"));
    assert!(doc.contains("AUROC"));
    assert_eq!(doc, evaluation_markdown(&[r], cmd));
    assert!(evaluation_markdown(&[], cmd).contains("No evaluation reports yet"));
}

/// Per-signal rows: a signal that ranks the classes gets an AUROC near 1,
/// one that runs the other way below 0.5, an absent one counts its items;
/// the report page and the generated docs page both show the tables.
#[test]
fn per_signal_and_per_group_tables_reach_the_docs_page() {
    let it = items();
    let mut r = report(&it);
    let flip: Vec<ScoredItem> = it
        .iter()
        .map(|i| match i.score {
            Some(s) => ScoredItem::scored(&i.id, i.manipulated, -s),
            None => ScoredItem::abstained(&i.id, i.manipulated, "signal_absent"),
        })
        .collect();
    r.add_signals(&[("same".into(), it.clone()), ("flipped".into(), flip)])
        .unwrap();
    let same = r.per_signal[0].metrics.auroc.unwrap().value;
    let flipped = r.per_signal[1].metrics.auroc.unwrap().value;
    assert!(same > 0.8 && flipped < 0.2, "{same} {flipped}");
    assert_eq!(r.per_signal[0].n_absent, 3);
    for md in [r.to_markdown(), evaluation_markdown(&[r.clone()], "x")] {
        assert!(md.contains("### Per signal"), "{md}");
        assert!(md.contains("| `flipped` |"), "{md}");
        assert!(md.contains("### Per group"), "{md}");
    }
    // JSON round trip keeps the rows.
    let back: EvalReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.per_signal, r.per_signal);
}
