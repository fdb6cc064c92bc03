//! `candor identity-eval`: measures the identity registry's face matching
//! on an LFW-layout folder (one folder per person) with the service's own
//! code (decoder, YuNet, alignment, SFace, the registry), and writes the
//! markdown report `docs/identity.md` is made of:
//!
//! * false-match rate (FMR) and false-non-match rate (FNMR) over all
//!   genuine pairs (two photos of one person) and impostor pairs (photos of
//!   two people), per threshold, the threshold at the target FMR, and EER;
//! * a persona-farm scenario: people with several photos apply under
//!   several names (one photo each), mixed with unrelated applicants, all
//!   enrolled in a real registry (SQLite, a temporary folder) at the chosen
//!   threshold; the report counts the shared-identity pairs found and the
//!   false ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use candor_detectors::image::{sface, yunet};
use candor_detectors::{AnalyzeOptions, Analyzer, InputSource, RawInput};
use clap::Args;

use crate::args::AnalyzerArgs;

#[derive(Debug, Clone, Args)]
pub struct IdentityEvalArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// LFW-layout folder: one folder per person holding their photos
    /// (scripts/identity/lfw-from-compreface.sh makes one).
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_LFW", value_name = "DIR")]
    pub lfw: PathBuf,

    /// People with two or more photos to use (evenly spaced over the sorted
    /// names). More gives finer rates and takes longer.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_PEOPLE", default_value_t = 300)]
    pub people: usize,

    /// Most photos per person.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_PHOTOS", default_value_t = 4)]
    pub photos: usize,

    /// People with a single photo added as unrelated applicants.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_SINGLES", default_value_t = 300)]
    pub singles: usize,

    /// False-match rate the operating point is chosen for.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_TARGET_FMR", default_value_t = 0.001)]
    pub target_fmr: f64,

    /// Human texts (JSONL records with `text`, `label` = `human`,
    /// `domain`; e.g. the text detector's collected records) for the text
    /// reuse rates: every pair of different documents of one domain
    /// (resume, cover letter, bio) is a non-match, and a reworded,
    /// reordered copy of each document is a match.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_TEXTS", value_name = "JSONL")]
    pub texts: Vec<PathBuf>,

    /// Most documents per domain for the text pairs.
    #[arg(
        long,
        env = "CANDOR_IDENTITY_EVAL_TEXTS_PER_DOMAIN",
        default_value_t = 500
    )]
    pub texts_per_domain: usize,

    /// The text threshold reported (the service default).
    #[arg(
        long,
        env = "CANDOR_IDENTITY_EVAL_TEXT_THRESHOLD",
        default_value_t = 0.3
    )]
    pub text_threshold: f32,

    /// Markdown report to write.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_OUT", value_name = "FILE")]
    pub out: PathBuf,
}

/// A deterministic reworded copy: sentences in another order (the first
/// and last swapped, the rest reversed) and every seventh word replaced.
fn rework(text: &str) -> String {
    let mut sentences: Vec<&str> = text
        .split_inclusive(['.', '!', '?', '\n'])
        .filter(|x| !x.trim().is_empty())
        .collect();
    sentences.reverse();
    let joined = sentences.join(" ");
    joined
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i % 7 == 3 {
                format!("x{}", w.len())
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text-reuse section of the report (empty without `--texts`).
fn text_section(args: &IdentityEvalArgs) -> anyhow::Result<String> {
    use candor_identity::minhash::{shingles, words, Signature};
    if args.texts.is_empty() {
        return Ok(String::new());
    }
    let mut by_domain: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for f in &args.texts {
        let body = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        for line in body.lines() {
            let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let domain = r["domain"].as_str().unwrap_or("");
            if r["label"] != "human" || !["resume", "cover_letter", "bio"].contains(&domain) {
                continue;
            }
            let Some(t) = r["text"].as_str() else {
                continue;
            };
            if words(t).len() < 40 {
                continue;
            }
            if let Some(src) = r["source"].as_str() {
                sources.insert(src.to_owned());
            }
            by_domain
                .entry(domain.to_owned())
                .or_default()
                .push(t.to_owned());
        }
    }
    let mut md = String::from("## Text reuse (MinHash over word 3-shingles inside sentences)\n\n");
    md.push_str(&format!(
        "Human documents (at least 40 words) from {} source(s) of the text detector's collected records, at most {} per domain (evenly spaced). Non-matches: every pair of different documents of one domain. Matches: each document against a reworded copy of itself (sentences in reverse order, every seventh word replaced).\n\n",
        sources.len(),
        args.texts_per_domain
    ));
    md.push_str("| domain | documents | non-match pairs | false matches at 0.2 / 0.3 / 0.4 | reworded copies found at 0.2 / 0.3 / 0.4 |\n|---|---:|---:|---:|---:|\n");
    let thresholds = [0.2f32, 0.3, 0.4];
    let (mut all_pairs, mut all_false_at) = (0usize, 0usize);
    for (domain, docs) in &by_domain {
        let docs = spaced(docs, args.texts_per_domain);
        let sigs: Vec<Signature> = docs
            .iter()
            .filter_map(|t| Signature::of(&shingles(&words(t))))
            .collect();
        let mut false_m = [0usize; 3];
        let mut pairs = 0usize;
        for i in 0..sigs.len() {
            for j in i + 1..sigs.len() {
                let jac = sigs[i].jaccard(&sigs[j]);
                pairs += 1;
                for (k, t) in thresholds.iter().enumerate() {
                    false_m[k] += usize::from(jac >= *t);
                }
            }
        }
        let mut found = [0usize; 3];
        for (t, s) in docs.iter().zip(&sigs) {
            if let Some(r) = Signature::of(&shingles(&words(&rework(t)))) {
                let jac = s.jaccard(&r);
                for (k, th) in thresholds.iter().enumerate() {
                    found[k] += usize::from(jac >= *th);
                }
            }
        }
        let k = thresholds
            .iter()
            .position(|t| (*t - args.text_threshold).abs() < 1e-6)
            .unwrap_or(1);
        all_pairs += pairs;
        all_false_at += false_m[k];
        let n = sigs.len().max(1) as f64;
        md.push_str(&format!(
            "| {domain} | {} | {pairs} | {} / {} / {} | {:.1}% / {:.1}% / {:.1}% |\n",
            sigs.len(),
            false_m[0],
            false_m[1],
            false_m[2],
            100.0 * found[0] as f64 / n,
            100.0 * found[1] as f64 / n,
            100.0 * found[2] as f64 / n,
        ));
    }
    md.push_str(&format!(
        "\nAt the service's text threshold {:.2}: {} false matches among {} pairs of different documents ({:.4}%). Pairs that share a template (two cover letters answering the same advert, say) do exceed it; such a match quotes the shared passages so that the reviewer can see what is shared.\n",
        args.text_threshold,
        all_false_at,
        all_pairs,
        100.0 * all_false_at as f64 / all_pairs.max(1) as f64
    ));
    Ok(md)
}

fn photos_of(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| {
                        e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("png")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn spaced<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    if v.len() <= n {
        return v.to_vec();
    }
    (0..n).map(|i| v[i * v.len() / n].clone()).collect()
}

async fn embed(a: &Analyzer, path: &Path) -> anyhow::Result<Option<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let input = InputSource::File(RawInput {
        bytes: bytes.into(),
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + Duration::from_secs(120)),
        identity: true,
        ..AnalyzeOptions::default()
    };
    let r = a.analyze(input, &opts).await?;
    Ok(r.identity.and_then(|t| t.face).map(|f| f.embedding))
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub async fn run(args: IdentityEvalArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor identity-eval: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(args: IdentityEvalArgs) -> anyhow::Result<()> {
    let mut people: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut singles: Vec<(String, PathBuf)> = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&args.lfw)
        .with_context(|| args.lfw.display().to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let name = d
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let p = photos_of(&d);
        match p.len() {
            0 => {}
            1 => singles.push((name, p[0].clone())),
            _ => people.push((name, p.into_iter().take(args.photos).collect())),
        }
    }
    let people = spaced(&people, args.people);
    let singles = spaced(&singles, args.singles);
    anyhow::ensure!(
        people.len() >= 2,
        "fewer than two people with two photos in {}",
        args.lfw.display()
    );

    let mut engine = args.analyzer.engine_config();
    engine.models = Some(vec![yunet::MODEL.to_string(), sface::MODEL.to_string()]);
    let analyzer = Analyzer::load(args.analyzer.analyzer_config(), engine)
        .context("cannot load YuNet and SFace (run scripts/setup.sh)")?;

    // Embeddings: person -> photos' embeddings (None: no face found).
    let t0 = Instant::now();
    // Per person: each photo and its embedding (None: no face found).
    type Photos = Vec<(PathBuf, Option<Vec<f32>>)>;
    let mut emb: Vec<(String, Photos)> = Vec::new();
    let mut n_photos = 0usize;
    let mut no_face = 0usize;
    for (name, photos) in people
        .iter()
        .cloned()
        .chain(singles.iter().map(|(n, p)| (n.clone(), vec![p.clone()])))
    {
        let mut v = Vec::new();
        for p in photos {
            let e = embed(&analyzer, &p).await?;
            n_photos += 1;
            no_face += usize::from(e.is_none());
            v.push((p, e));
        }
        emb.push((name, v));
    }
    let embed_s = t0.elapsed().as_secs_f64();
    let per_photo_ms = embed_s * 1e3 / n_photos.max(1) as f64;

    // Pairs.
    let multi = people.len();
    let mut genuine = Vec::new();
    for (_, v) in emb.iter().take(multi) {
        let e: Vec<&Vec<f32>> = v.iter().filter_map(|(_, e)| e.as_ref()).collect();
        for i in 0..e.len() {
            for j in i + 1..e.len() {
                genuine.push(cos(e[i], e[j]));
            }
        }
    }
    let firsts: Vec<&Vec<f32>> = emb
        .iter()
        .filter_map(|(_, v)| v.iter().find_map(|(_, e)| e.as_ref()))
        .collect();
    let mut impostor = Vec::new();
    for i in 0..firsts.len() {
        for j in i + 1..firsts.len() {
            impostor.push(cos(firsts[i], firsts[j]));
        }
    }
    let rate = |v: &[f32], pred: &dyn Fn(f32) -> bool| {
        v.iter().filter(|x| pred(**x)).count() as f64 / v.len().max(1) as f64
    };
    let mut rows = Vec::new();
    let mut chosen = None;
    let mut eer = (f64::MAX, 0.0f32, 0.0f64);
    for k in 10..=80 {
        let t = k as f32 / 100.0;
        let fmr = rate(&impostor, &|x| x >= t);
        let fnmr = rate(&genuine, &|x| x < t);
        if chosen.is_none() && fmr <= args.target_fmr {
            chosen = Some((t, fmr, fnmr));
        }
        if (fmr - fnmr).abs() < eer.0 {
            eer = ((fmr - fnmr).abs(), t, (fmr + fnmr) / 2.0);
        }
        if k % 5 == 0 {
            rows.push((t, fmr, fnmr));
        }
    }
    let (thr, fmr_at, fnmr_at) =
        chosen.context("no threshold up to 0.80 reaches the target FMR")?;

    // Persona farm: each person with several photos applies under up to
    // three names (one photo each); the singles apply once each.
    let dir = tempfile::tempdir()?;
    let store =
        candor_bulk::Store::open(&dir.path().join("registry.db").display().to_string(), 2).await?;
    let reg = candor_identity::Registry::open(
        store,
        candor_identity::RegistryConfig {
            retention: Duration::from_secs(86_400),
            face_threshold: thr,
            face_operating_point: format!("eval threshold {thr}"),
            text_threshold: 0.3,
            text_operating_point: String::new(),
            max_matches: 50,
            scan_threads: 2,
        },
    )
    .await?;
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<(String, Vec<f32>)> = Vec::new();
    for (name, v) in &emb {
        for (i, (_, e)) in v.iter().enumerate().take(3) {
            if let Some(e) = e {
                let applicant = format!("{name}#{i}");
                owner.insert(applicant.clone(), name.clone());
                order.push((applicant, e.clone()));
            }
        }
    }
    // Interleave people so that names of one person are not adjacent.
    order.sort_by_key(|(a, _)| {
        let i: usize = a
            .rsplit('#')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        (i, a.clone())
    });
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for (applicant, e) in &order {
        let t = candor_core::IdentityTemplates {
            face: Some(candor_core::FaceTemplate {
                embedding: e.clone(),
                model: "sface".into(),
                region: [0, 0, 0, 0],
            }),
            text: None,
        };
        for m in reg
            .enroll_and_match("", applicant, applicant, None, &t)
            .await?
        {
            let (a, b) = if m.applicant_id < m.other_applicant_id {
                (m.applicant_id, m.other_applicant_id)
            } else {
                (m.other_applicant_id, m.applicant_id)
            };
            reported.insert((a, b));
        }
    }
    let names: Vec<&String> = owner.keys().collect();
    let mut expected = 0usize;
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            if owner[names[i]] == owner[names[j]] {
                expected += 1;
            }
        }
    }
    let true_found = reported
        .iter()
        .filter(|(a, b)| owner[a] == owner[b])
        .count();
    let false_found = reported.len() - true_found;
    let identities = owner.values().collect::<BTreeSet<_>>().len();

    let mut md = String::new();
    md.push_str("## Face matching (SFace on YuNet-aligned faces)\n\n");
    md.push_str(&format!(
        "Generated by `candor identity-eval --lfw DIR` (DIR from `scripts/identity/lfw-from-compreface.sh`: LFW in exadel-inc/CompreFace@d59f1e301e616419d4a9cd8b285385f14a87fb06, the reserved identities left out). {} people with two or more photos (at most {} each) and {} people with one photo, evenly spaced over the sorted names; {} photos, {} without a detected face; {:.0} ms per photo (decode, YuNet, alignment, SFace) on this machine.\n\n",
        people.len(), args.photos, singles.len(), n_photos, no_face, per_photo_ms
    ));
    md.push_str(&format!(
        "{} genuine pairs (two photos of one person), {} impostor pairs (first photos of two people).\n\n",
        genuine.len(),
        impostor.len()
    ));
    md.push_str(
        "| cosine threshold | false-match rate | false-non-match rate |\n|---:|---:|---:|\n",
    );
    for (t, fmr, fnmr) in &rows {
        md.push_str(&format!(
            "| {t:.2} | {:.4}% | {:.2}% |\n",
            fmr * 100.0,
            fnmr * 100.0
        ));
    }
    md.push_str(&format!(
        "\nOperating point for a false-match rate ≤ {:.4}%: cosine ≥ **{thr:.2}** (FMR {:.4}%, FNMR {:.2}%). Equal error rate {:.2}% at {:.2}.\n\n",
        args.target_fmr * 100.0,
        fmr_at * 100.0,
        fnmr_at * 100.0,
        eer.2 * 100.0,
        eer.1
    ));
    md.push_str("### Persona farm\n\n");
    md.push_str(&format!(
        "{} applicant names from {} real people (each person with several photos applies under up to three names, one photo each; the one-photo people are unrelated applicants), enrolled one by one in a real registry (SQLite) at cosine ≥ {thr:.2}: {} shared-identity pairs exist, **{} reported ({:.1}%)**; **{} false pairs** reported among {} pairs of different people.\n",
        owner.len(),
        identities,
        expected,
        true_found,
        100.0 * true_found as f64 / expected.max(1) as f64,
        false_found,
        names.len() * (names.len().saturating_sub(1)) / 2 - expected
    ));
    md.push('\n');
    md.push_str(&text_section(&args)?);
    std::fs::write(&args.out, md).with_context(|| args.out.display().to_string())?;
    eprintln!(
        "identity-eval: threshold {thr:.2} (FMR {:.4}%, FNMR {:.2}%), persona farm {true_found}/{expected} found, {false_found} false; {}",
        fmr_at * 100.0,
        fnmr_at * 100.0,
        args.out.display()
    );
    Ok(())
}
