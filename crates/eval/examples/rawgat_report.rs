//! End-to-end demo on the RawGAT-ST score fixture (no audio needed):
//! split the trials deterministically into calib / test, fit a calibration
//! on calib, evaluate the calibrated scores on test and write the report and
//! artefact.
//!
//! ```text
//! cargo run -p candor-eval --example rawgat_report -- OUT_DIR [platt|isotonic]
//! ```

use std::path::PathBuf;

use candor_eval::{
    fit_calibration, BootstrapConfig, EvalInput, EvalReport, FitSpec, Method, OperatingPointSpec,
    ReportConfig, ScoredItem, SetProvenance, Split,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: rawgat_report OUT_DIR [platt|isotonic]")?,
    );
    let method = match args.next().as_deref() {
        Some("isotonic") => Method::Isotonic,
        _ => Method::Platt,
    };
    let shared = std::env::var_os("CANDOR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path =
        shared.join("eval/audio/rawgat-st-scores/Pre_trained_models/RawGAT_ST_add/Scores.txt");
    let text = std::fs::read_to_string(&path)?;
    let mut items = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let manipulated = f[2] == "spoof";
        let raw: f64 = f[3].parse()?;
        // Deterministic 30 / 70 split on the trial id.
        let h = candor_core::sha256_hex(f[0].as_bytes());
        let split = if u8::from_str_radix(&h[..2], 16)? < 77 {
            Split::Calib
        } else {
            Split::Test
        };
        let group = if f[1] == "-" { "bonafide" } else { f[1] };
        items.push(
            ScoredItem::scored(f[0], manipulated, -raw)
                .with_group(group)
                .with_split(split),
        );
    }
    let created_by = std::env::args().collect::<Vec<_>>().join(" ");
    let art = fit_calibration(
        &items,
        Split::Calib,
        &FitSpec {
            id: "calibration/audio-rawgat-st".into(),
            version: "1".into(),
            detector: "audio.rawgat_st".into(),
            set: "asvspoof2019-la-eval (RawGAT-ST scores)".into(),
            created_by: created_by.clone(),
            method,
            operating_point: OperatingPointSpec::default(),
        },
    )?;
    std::fs::create_dir_all(&out)?;
    art.save(out.join("calibration.json"))?;
    let test: Vec<ScoredItem> = items
        .iter()
        .filter(|i| i.split == Some(Split::Test))
        .map(|i| ScoredItem {
            score: i.score.map(|s| art.apply(s)),
            ..i.clone()
        })
        .collect();
    let mut set =
        SetProvenance::from_items("asvspoof2019-la-eval", &path.display().to_string(), &test);
    set.split = Some(Split::Test);
    let report = EvalReport::compute(
        &EvalInput {
            set,
            detector: "audio.rawgat_st".into(),
            models: vec![art.model_ref()],
            thresholds: Some(art.thresholds.clone()),
            items: &test,
            total_seconds: None,
            created_by,
        },
        &ReportConfig {
            bootstrap: BootstrapConfig {
                resamples: 200,
                ..Default::default()
            },
            ..Default::default()
        },
    )?;
    for p in report.write_dir(&out)? {
        println!("{}", p.display());
    }
    println!("{}", report.to_markdown());
    Ok(())
}
