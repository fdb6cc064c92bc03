//! Writes `docs/benchmarks.md` from criterion's output
//! (`target/criterion/<group>/<bench>/new/{estimates,benchmark}.json`).
//!
//! Usage: `cargo run -p candor-benches --bin bench-report [-- CRITERION_DIR OUT [GROUP_PREFIX]]`.
//!
//! With `GROUP_PREFIX` (e.g. `smollm2-text`) only those groups are reported
//! (the text report `docs/benchmarks-text.md`); it then also includes the
//! Python reference run written by `benches/text/bench_reference.py >
//! target/bench-text-reference.json`, when present.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone)]
struct Row {
    mean_ns: f64,
    /// Median of the per-iteration sample times (criterion's estimate).
    median_ns: f64,
    lo_ns: f64,
    hi_ns: f64,
    elements: Option<f64>,
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn collect(dir: &Path, out: &mut BTreeMap<(String, String), Row>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let est = p.join("new/estimates.json");
        let meta = p.join("new/benchmark.json");
        if let (Some(est), Some(meta)) = (read_json(&est), read_json(&meta)) {
            let group = meta["group_id"].as_str().unwrap_or_default().to_string();
            let func = meta["function_id"].as_str().unwrap_or_default().to_string();
            let mean = &est["mean"];
            out.insert(
                (group, func),
                Row {
                    mean_ns: mean["point_estimate"].as_f64().unwrap_or(f64::NAN),
                    median_ns: est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN),
                    lo_ns: mean["confidence_interval"]["lower_bound"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    hi_ns: mean["confidence_interval"]["upper_bound"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    elements: meta["throughput"]["Elements"].as_f64(),
                },
            );
        } else {
            collect(&p, out);
        }
    }
}

/// Speed-up of a row over the `batch1` row of its group (same items per
/// iteration), as shown in the `vs batch1` column.
fn vs_batch1(rows: &BTreeMap<(String, String), Row>, group: &str, func: &str, r: &Row) -> String {
    match (rows.get(&(group.to_string(), "batch1".to_string())), func) {
        (Some(b1), f) if f != "batch1" && b1.elements == r.elements => {
            format!("{:.2}×", b1.mean_ns / r.mean_ns)
        }
        (Some(_), "batch1") => "1.00×".into(),
        _ => "–".into(),
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{model}, {n} cores available (nproc)")
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("criterion"));
    let out_path = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("docs/benchmarks.md"));
    let prefix = args.get(2).cloned();
    let mut rows = BTreeMap::new();
    collect(&dir, &mut rows);
    if let Some(p) = &prefix {
        rows.retain(|(g, _), _| g.starts_with(p.as_str()));
        let md = if p.starts_with("audio") {
            audio_report(&rows)
        } else if p.starts_with("headshot") {
            image_report(&rows)
        } else {
            text_report(&rows, &target)
        };
        if let Err(e) = std::fs::write(&out_path, md) {
            eprintln!("cannot write {}: {e}", out_path.display());
            std::process::exit(1);
        }
        println!("wrote {}", out_path.display());
        return;
    }
    if rows.is_empty() {
        eprintln!("no criterion results under {}; run `cargo bench -p candor-benches --bench engine` first", dir.display());
        std::process::exit(1);
    }
    let mut md = String::new();
    let _ = writeln!(md, "# Engine benchmarks\n");
    let _ = writeln!(md, "Generated by `cargo run -p candor-benches --bin bench-report` from `cargo bench -p candor-benches --bench engine`.\n");
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(md, "- Date: {}", date());
    let _ = writeln!(md, "- Load: 32 concurrent tokio submitters; `batch1` = `max_batch = 1`, `batched` = dynamic batching (silero-vad: max_batch 32, max_wait 2 ms; clip-vit-b16-int8: max_batch 8, max_wait 10 ms). CPU execution provider, intra-op threads = cores.");
    let _ = writeln!(md, "- Ratios compare against the `batch1` row of the same group, measured in the same run. Absolute numbers depend on the machine; quote the ratios.\n");
    let _ = writeln!(
        md,
        "| group | bench | mean time / iteration | items / iteration | items/s | vs batch1 |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    for ((group, func), r) in &rows {
        let per_s = r.elements.map(|n| n / (r.mean_ns * 1e-9));
        let ratio = vs_batch1(&rows, group, func, r);
        let _ = writeln!(
            md,
            "| {group} | {func} | {} (95% CI {} – {}) | {} | {} | {ratio} |",
            human(r.mean_ns),
            human(r.lo_ns),
            human(r.hi_ns),
            r.elements
                .map(|e| format!("{e:.0}"))
                .unwrap_or_else(|| "–".into()),
            per_s
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "–".into()),
        );
    }
    if let Some(r) = rows.get(&("queue-overhead".to_string(), "roundtrip".to_string())) {
        let _ = writeln!(
            md,
            "\nQueue overhead (no-op backend, one request at a time: submit → worker thread → oneshot reply): {} per request.",
            human(r.mean_ns)
        );
    }
    let _ = writeln!(md, "\nNote: `clip-vit-b16-int8` quantises activations dynamically over the whole batch, so batched embeddings differ slightly from single ones (cosine ≈ 0.99 in the engine's tests).");
    let _ = writeln!(md, "\nDetector benchmarks (generated separately): [`benchmarks-text.md`](benchmarks-text.md), [`benchmarks-audio.md`](benchmarks-audio.md), [`benchmarks-image.md`](benchmarks-image.md), live audio streams [`benchmarks-stream.md`](benchmarks-stream.md), HTTP load [`benchmarks-http.md`](benchmarks-http.md), served-path latency per request [`benchmarks-served.md`](benchmarks-served.md) (`benches/load/run-served.sh`).");
    if let Some(parent) = out_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out_path, &md).expect("writing the report");
    print!("{md}");
    eprintln!("wrote {}", out_path.display());
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The table of a detector benchmark group: one row per bench, items
/// counted in `unit`, throughput relative to the group's `batch1` row.
fn detector_table(md: &mut String, rows: &BTreeMap<(String, String), Row>, unit: &str) {
    let _ = writeln!(
        md,
        "| bench | mean time / iteration | {unit} / iteration | {unit}/s | vs batch1 |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for ((group, func), r) in rows {
        let per_s = r.elements.map(|n| n / (r.mean_ns * 1e-9));
        let ratio = vs_batch1(rows, group, func, r);
        let _ = writeln!(
            md,
            "| {func} | {} (95% CI {} – {}) | {} | {} | {ratio} |",
            human(r.mean_ns),
            human(r.lo_ns),
            human(r.hi_ns),
            r.elements
                .map(|e| format!("{e:.0}"))
                .unwrap_or_else(|| "–".into()),
            per_s
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "–".into()),
        );
    }
}

/// The audio scoring report: criterion rows of the `audio-30s` group.
fn audio_report(rows: &BTreeMap<(String, String), Row>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Audio scoring benchmarks\n");
    let _ = writeln!(md, "Generated by `cargo run -p candor-benches --bin bench-report -- target/criterion docs/benchmarks-audio.md audio-30s` from `cargo bench -p candor-benches --bench audio`. Live-stream latency: [`benchmarks-stream.md`](benchmarks-stream.md) (`benches/load/run-stream.sh`).\n");
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(md, "- Date: {}", date());
    let _ = writeln!(md, "- Workload: 30 s of 16 kHz speech (the committed authentic WAV samples, concatenated) as one WAV file through the whole audio path of the analyzer: decode, silero VAD, 15 segments of 2 s every 2 s, the Whisper tiny.en encoder with the log-mel front end in the graph (ONNX Runtime, CPU), signal forensics, the linear head, calibrations, spectrogram PNG. `single` = one file alone (latency per 30 s file); `batch1` = 4 files in flight with the model at `max_batch = 1` (each one-segment request runs alone, as the service runs the encoder); `batched` = 4 files in flight, segments of all files packed up to 32 rows per model call (the service does not pack the encoder: its INT8 activations share one scale per call).\n");
    detector_table(&mut md, rows, "files");
    if let Some((_, r)) = rows.iter().find(|((_, f), _)| f == "single") {
        let _ = writeln!(md, "\n30 s of audio scored in {} on this machine: {:.3}× real time (the target was under 0.5 s on 2 cores).", human(r.mean_ns), r.mean_ns * 1e-9 / 30.0);
    }
    md
}

/// The image scoring report: criterion rows of the `headshot-1024` group.
fn image_report(rows: &BTreeMap<(String, String), Row>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Image scoring benchmarks\n");
    let _ = writeln!(md, "Generated by `cargo run -p candor-benches --bin bench-report -- target/criterion docs/benchmarks-image.md headshot-1024` from `cargo bench -p candor-benches --bench image`.\n");
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(md, "- Date: {}", date());
    let _ = writeln!(md, "- Workload: one 1024×1024 JPEG headshot (the committed astronaut sample upscaled, quality 90) through the whole image path of the analyzer: decode, metadata and provenance, forensic measures (ELA in the DCT domain, double-JPEG histograms, noise map, NPR, spectrum), YuNet face detection and five-point alignment, the CLIP ViT-B/16 INT8 tower on the aligned face and the face heads, the forgery CNN over the 512 px square around the face (16 tiles of 128 px; ONNX Runtime, CPU), calibration, face map, heatmap and spectrum PNGs. `single` = one image alone (latency per headshot); `batch1` = 4 images in flight with the CNN at `max_batch = 1` (each image's 16-tile request runs alone, as one call); `batched` = 4 images in flight, CNN tiles of all of them packed up to 64 per call.\n");
    detector_table(&mut md, rows, "images");
    if let Some((_, r)) = rows.iter().find(|((_, f), _)| f == "single") {
        let _ = writeln!(md, "\nLatency per headshot on this machine (`single`): p50 {} (median of the criterion samples), mean {}.", human(r.median_ns), human(r.mean_ns));
    }
    let _ = writeln!(md, "\nThe same headshot through `POST /v1/analyze` of a release server, pictures included, against the same request without pictures and other references: [`benchmarks-served.md`](benchmarks-served.md) (`benches/load/run-served.sh`).");
    md
}

/// The text scoring report: criterion rows of the `smollm2-text` group and
/// the llama.cpp reference measured on the same machine.
fn text_report(rows: &BTreeMap<(String, String), Row>, target: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Text scoring benchmarks\n");
    let _ = writeln!(md, "Generated by `cargo run -p candor-benches --bin bench-report -- target/criterion docs/benchmarks-text.md smollm2-text` from `cargo bench -p candor-benches --bench text` and `.candor/venv-ref/bin/python benches/text/bench_reference.py > target/bench-text-reference.json` (see `benches/text/README.md`).\n");
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(md, "- Date: {}", date());
    let _ = writeln!(md, "- Workload: `benches/text/resume_700tok.txt` (a ~700-token resume) through the text detector's scorer: tokenize, windows of at most 512 tokens, SmolLM2-135M forward pass (CPU, f32 weights, matrix products by OpenBLAS), per-token statistics for the prose tokens the features read, features. `single` = one resume alone; `batch1` = 4 resumes in flight, every window run alone (`max_batch = 1`); `batched` = 4 resumes in flight, windows packed up to 2048 tokens per pass.\n");
    let (lm_rows, scorer_rows): (BTreeMap<_, _>, BTreeMap<_, _>) = rows
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|((g, _), _)| g.ends_with("-lm"));
    detector_table(&mut md, &scorer_rows, "resumes");
    let single = scorer_rows
        .iter()
        .find(|((_, f), _)| f == "single")
        .map(|(_, r)| r.mean_ns / 1e6);
    if let Some((_, r)) = scorer_rows.iter().find(|((_, f), _)| f == "single") {
        let _ = writeln!(md, "\nLatency per resume on this machine (`single`): mean {}, p50 {} (the target is under 1 s on 2 cores).", human(r.mean_ns), human(r.median_ns));
    }
    let lm = |name: &str| {
        lm_rows
            .iter()
            .find(|((_, f), _)| f == name)
            .map(|(_, r)| r.mean_ns / 1e6)
    };
    if !lm_rows.is_empty() {
        let _ = writeln!(md, "\nThe language model alone on the same resume (720 tokens, windows of 512 + 208), statistics for every token, on each CPU path in the same run (`smollm2-text-lm`):\n");
        let _ = writeln!(md, "| path | mean time per resume | speed vs candle |");
        let _ = writeln!(md, "|---|---:|---:|");
        let base = lm("candle");
        for ((_, f), r) in &lm_rows {
            let ratio = base
                .map(|b| format!("{:.2}×", b / (r.mean_ns / 1e6)))
                .unwrap_or_else(|| "–".into());
            let _ = writeln!(
                md,
                "| {f} | {} (95% CI {} – {}) | {ratio} |",
                human(r.mean_ns),
                human(r.lo_ns),
                human(r.hi_ns)
            );
        }
    }
    match read_json(&target.join("bench-text-reference.json")) {
        Some(refj) => {
            let p50 = refj["p50_ms"].as_f64();
            let _ = writeln!(md, "\nPython reference, same machine, same GGUF file and text: {} (`n_threads = 2`, batch 512, one forward pass with all-position logits): p50 {} ms for {} tokens, {} documents/s sequentially.",
                refj["reference"].as_str().unwrap_or("?"),
                p50.map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into()),
                refj["tokens"],
                refj["docs_per_s"].as_f64().map(|v| format!("{v:.2}")).unwrap_or_else(|| "?".into()));
            if let Some(p50) = p50 {
                if let Some(l) = lm("openblas") {
                    let _ = writeln!(md, "\nLike for like (both: tokens in, forward pass, statistics of every position over the 49,152-token vocabulary): Candor `smollm2-text-lm/openblas` / reference p50 = {:.2} (below 1 = Candor faster).", l / p50);
                }
                if let Some(s) = single {
                    let _ = writeln!(md, "\nThe whole scorer (`single`, which also splits sentences, computes features, and skips the head for non-prose tokens) / reference p50 = {:.2}.", s / p50);
                }
                if let (Some(fwd), Some(l)) = (refj["p50_forward_ms"].as_f64(), lm("openblas")) {
                    let _ = writeln!(md, "\nThe reference's forward pass alone (logits, no statistics) has p50 {fwd:.0} ms; Candor `smollm2-text-lm/openblas` / that = {:.2}.", l / fwd);
                }
            }
        }
        None => {
            let _ = writeln!(md, "\nNo Python reference result (`target/bench-text-reference.json`); run `benches/text/bench_reference.py` to add the ratio.");
        }
    }
    md
}
