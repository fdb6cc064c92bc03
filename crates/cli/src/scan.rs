//! `candor scan`: analyse files in-process with the same analyzer as the
//! server.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candor_core::{AnalysisResult, ProblemKind, ToProblem};
use candor_detectors::{AnalyzeOptions, InputSource, RawInput};
use candor_server::api::{AnalyzeResponse, InputProblem, Item};

use crate::args::ScanArgs;
use crate::EXIT_USAGE;

/// Why a file could not even be handed to the analyzer.
#[derive(Debug, thiserror::Error)]
enum ScanError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ToProblem for ScanError {
    fn problem_kind(&self) -> ProblemKind {
        match self {
            ScanError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ProblemKind::NotFound
            }
            ScanError::Read { .. } => ProblemKind::BadRequest,
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        Some("read_error")
    }
}

struct Row {
    name: String,
    item: Item,
    ms: f64,
}

pub async fn run(args: ScanArgs) -> ExitCode {
    if args.files.is_empty() && args.texts.is_empty() {
        eprintln!("candor scan: nothing to scan; give one or more FILEs and/or --text \"...\" (see candor scan --help)");
        return ExitCode::from(EXIT_USAGE);
    }
    let analyzer = match crate::build_analyzer(&args.analyzer) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("candor scan: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let timeout = Duration::from_millis(args.analyzer.request_timeout_ms.max(1));
    let total = args.files.len() + args.texts.len();
    let bar = (total > 1 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            b.set_style(style);
        }
        b
    });

    let mut rows = Vec::with_capacity(total);
    let mut index = 0usize;
    let mut inputs: Vec<(String, Result<InputSource, ScanError>)> = Vec::new();
    for path in &args.files {
        inputs.push((path.display().to_string(), read_file(path).await));
    }
    for (i, text) in args.texts.iter().enumerate() {
        let name = format!("--text #{}", i + 1);
        inputs.push((
            name.clone(),
            Ok(InputSource::Text {
                name: Some(name),
                text: text.clone(),
            }),
        ));
    }
    for (name, input) in inputs {
        if let Some(b) = &bar {
            b.set_message(name.clone());
        }
        let started = Instant::now();
        let item = match input {
            Err(e) => Item::Error(InputProblem::from_error(&e, index, Some(name.clone()))),
            Ok(source) => {
                let opts = AnalyzeOptions {
                    priority: args.priority,
                    deadline: Some(Instant::now() + timeout),
                    identity: false,
                };
                match analyzer.analyze(source, &opts).await {
                    Ok(r) => Item::Result(Box::new(r)),
                    Err(e) => Item::Error(InputProblem::from_error(&e, index, Some(name.clone()))),
                }
            }
        };
        rows.push(Row {
            name,
            item,
            ms: started.elapsed().as_secs_f64() * 1e3,
        });
        index += 1;
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let failed = rows.iter().filter(|r| r.item.as_error().is_some()).count();
    let response = AnalyzeResponse::new(
        uuid::Uuid::new_v4().to_string(),
        rows.iter().map(|r| r.item.clone()).collect(),
        args.case.then_some(true),
    );
    if args.json {
        match serde_json::to_string_pretty(&response) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("candor scan: cannot encode JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_table(&rows, &response);
    }
    if failed > 0 {
        eprintln!(
            "candor scan: {failed} of {} input(s) could not be analysed",
            rows.len()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn read_file(path: &Path) -> Result<InputSource, ScanError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| ScanError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| Some(path.display().to_string()));
    Ok(InputSource::File(RawInput {
        bytes: Arc::from(bytes),
        name,
        content_type: None,
    }))
}

/// What a label means for the reader: a route, never a verdict on a person.
fn label_text(r: &AnalysisResult) -> &'static str {
    match r.label {
        Some(candor_core::Label::LikelyAuthentic) => "likely authentic",
        Some(candor_core::Label::Inconclusive) => "inconclusive: review",
        Some(candor_core::Label::LikelyManipulated) => "likely AI: review",
        None => "no decision",
    }
}

fn note(r: &AnalysisResult) -> String {
    if let Some(a) = &r.abstention {
        return a.reason.clone();
    }
    // Text: quote the most machine-like sentence.
    let quoted = r
        .evidence
        .iter()
        .filter_map(|e| match e {
            candor_core::Evidence::TextSpan {
                score: Some(s),
                text: Some(t),
                ..
            } => Some((*s, t)),
            _ => None,
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((s, t)) = quoted {
        let short: String = t.chars().take(48).collect();
        let more = if t.chars().count() > 48 { "…" } else { "" };
        return format!("top sentence {:.0}%: \"{short}{more}\"", s * 100.0);
    }
    // Audio: the most suspicious segment and how many segments were scored.
    let segments: Vec<(f64, f64, f64, Option<&String>)> = r
        .evidence
        .iter()
        .filter_map(|e| match e {
            candor_core::Evidence::AudioSegment {
                start_s,
                end_s,
                score: Some(p),
                signal,
            } => Some((*start_s, *end_s, *p, signal.as_ref())),
            _ => None,
        })
        .collect();
    if let Some((a, b, p, sig)) = segments.iter().copied().max_by(|x, y| x.2.total_cmp(&y.2)) {
        let sig = sig.map(|s| format!(", {s}")).unwrap_or_default();
        return format!(
            "{} segments; top {a:.0}-{b:.0} s {:.0}%{sig}",
            segments.len(),
            p * 100.0
        );
    }
    // Image: a declaration in the metadata says it all; otherwise the faces
    // found and what the evidence heads say about the scored face.
    if let Some(d) = r
        .signals
        .iter()
        .find(|s| s.name == "provenance.ai_declared" && s.value > 0.0)
    {
        let what: String = d.detail.as_deref().unwrap_or("").chars().take(48).collect();
        return format!("declared AI: {what}");
    }
    if let Some(f) = r
        .signals
        .iter()
        .find(|s| s.name.starts_with("face[") && s.name.ends_with("].manipulated"))
    {
        let faces = r
            .signals
            .iter()
            .find(|s| s.name == "faces.count")
            .map_or(String::new(), |s| format!("{:.0} face(s); ", s.value));
        let face = f.name.trim_end_matches(".manipulated");
        let parts: Vec<String> = ["generation", "swap"]
            .iter()
            .filter_map(|what| {
                let name = format!("{face}.{what}");
                let s = r.signals.iter().find(|s| s.name == name)?;
                Some(format!("{what} {:.0}%", s.probability? * 100.0))
            })
            .collect();
        return format!("{faces}{face}: {}", parts.join(", "));
    }
    let top = r.signals.iter().max_by(|a, b| {
        a.probability
            .unwrap_or(f64::MIN)
            .total_cmp(&b.probability.unwrap_or(f64::MIN))
    });
    match top {
        Some(s) => match s.probability {
            Some(p) => format!("top signal {} ({:.0}%)", s.name, p * 100.0),
            None => format!("top signal {} = {:.3}", s.name, s.value),
        },
        None => String::new(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn print_table(rows: &[Row], response: &AnalyzeResponse) {
    let mut lines: Vec<[String; 7]> = vec![[
        "FILE".into(),
        "MODALITY".into(),
        "LABEL".into(),
        "SCORE".into(),
        "NOTE".into(),
        "SHA256".into(),
        "MS".into(),
    ]];
    for row in rows {
        let line = match &row.item {
            Item::Result(r) => [
                truncate(&row.name, 40),
                r.modality.to_string(),
                label_text(r).to_owned(),
                r.score
                    .map(|s| format!("{:.1}%", s * 100.0))
                    .unwrap_or_else(|| "-".into()),
                truncate(&note(r), 60),
                r.input.sha256.chars().take(12).collect(),
                format!("{:.0}", row.ms),
            ],
            Item::Error(p) => [
                truncate(&row.name, 40),
                "-".into(),
                "not analysed".into(),
                "-".into(),
                truncate(&format!("error: {}", p.detail), 60),
                "-".into(),
                format!("{:.0}", row.ms),
            ],
        };
        lines.push(line);
    }
    let mut widths = [0usize; 7];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for l in &lines {
        let mut out = String::new();
        for (i, (c, w)) in l.iter().zip(widths.iter()).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(c);
            if i + 1 < l.len() {
                out.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        println!("{}", out.trim_end());
    }
    if let Some(case) = &response.case {
        let verdict = if case.needs_review {
            "a person should review this case"
        } else {
            "nothing in this case needs review"
        };
        println!(
            "\ncase: {} of {} input(s) scored; {verdict}",
            case.scored, case.inputs
        );
        for r in &case.reasons {
            println!("  - {r}");
        }
    }
    println!(
        "\nLabels route material to human review; they are not a decision about the applicant."
    );
}
