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
use candor_identity::photo::{Distances, PhotoHashes};
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

    /// The text side of the joint rule (`face+text`, the service default);
    /// the face side is chosen so that the product of the two measured
    /// false-match rates stays within `--target-fmr`.
    #[arg(
        long,
        env = "CANDOR_IDENTITY_EVAL_JOINT_TEXT_THRESHOLD",
        default_value_t = 0.2
    )]
    pub joint_text_threshold: f32,

    /// Folder of real speech named LibriSpeech-style (`SPEAKER-CHAPTER-UTT.flac`, one
    /// speaker per leading number; e.g. ../shared/train/audio/audio_data/librispeech_train-clean-100)
    /// for the voice rates and the full persona farm. Each recording is cut in halves
    /// (genuine pairs: one half against the other, also through a telephone channel; in
    /// the farm, one half for each of a person's first two names).
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_SPEECH", value_name = "DIR")]
    pub speech: Option<PathBuf>,

    /// False-match rate the voice operating point is chosen for.
    #[arg(
        long,
        env = "CANDOR_IDENTITY_EVAL_VOICE_TARGET_FMR",
        default_value_t = 0.0001
    )]
    pub voice_target_fmr: f64,

    /// People of the full persona farm (face, voice and resume), each applying under three
    /// names; the other speakers apply once each as unrelated applicants.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_FARM", default_value_t = 80)]
    pub farm: usize,

    /// Photos (evenly spaced over those evaluated) whose edited copies
    /// (re-encoded, resized, re-cropped, brightened, mirrored) measure how
    /// often the perceptual hashes find the same photograph. More gives
    /// tighter rates; each copy is one analysis.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_PHOTO_EDITS", default_value_t = 150)]
    pub photo_edits: usize,

    /// Highest rate of pairs of different photographs reported as the same
    /// photograph at the chosen number of differing bits. A registry of N
    /// pictures makes about N × this false matches per lookup.
    #[arg(
        long,
        env = "CANDOR_IDENTITY_EVAL_PHOTO_TARGET_FMR",
        default_value_t = 0.000002
    )]
    pub photo_target_fmr: f64,

    /// Markdown report to write.
    #[arg(
        long,
        env = "CANDOR_IDENTITY_EVAL_OUT",
        value_name = "FILE",
        required_unless_present = "dump_aligned"
    )]
    pub out: Option<PathBuf>,

    /// Instead of the report: write the largest face of every selected
    /// photo, aligned by YuNet to the 112×112 five-point template the face
    /// models take (DIR/person/photo.rgb: raw RGB bytes), for comparing face embedding
    /// models on the same crops (scripts/identity/compare_face_models.py).
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_DUMP_ALIGNED", value_name = "DIR")]
    pub dump_aligned: Option<PathBuf>,
}

/// A deterministic reworded copy of `text`: its sentences put in another
/// order by `reorder`, then every `every`-th word from the `first`-th
/// replaced by `mark` and the word's length.
fn reword(
    text: &str,
    reorder: fn(&mut Vec<&str>),
    every: usize,
    first: usize,
    mark: char,
) -> String {
    let mut sentences: Vec<&str> = text
        .split_inclusive(['.', '!', '?', '\n'])
        .filter(|x| !x.trim().is_empty())
        .collect();
    reorder(&mut sentences);
    sentences
        .join(" ")
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i % every == first {
                format!("{mark}{}", w.len())
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sentences in reverse order, every seventh word replaced.
fn rework(text: &str) -> String {
    reword(text, |s| s.reverse(), 7, 3, 'x')
}

/// Another reworded copy: sentences rotated by one and every eleventh
/// word replaced.
fn rework2(text: &str) -> String {
    let rotate = |s: &mut Vec<&str>| {
        if !s.is_empty() {
            s.rotate_left(1);
        }
    };
    reword(text, rotate, 11, 5, 'y')
}

/// Human resumes, cover letters and bios (at least 40 words) of the
/// `--texts` records, by domain, and the sources they come from.
type Texts = (BTreeMap<String, Vec<String>>, BTreeSet<String>);

fn load_texts(args: &IdentityEvalArgs) -> anyhow::Result<Texts> {
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
            if candor_identity::minhash::words(t).len() < 40 {
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
    Ok((by_domain, sources))
}

/// The text-reuse section of the report (empty without `--texts`), and the
/// share of pairs of different documents at or above the joint rule's text
/// threshold (`None` without texts).
fn text_section(args: &IdentityEvalArgs) -> anyhow::Result<(String, Option<f64>)> {
    use candor_identity::minhash::{shingles, words, Signature};
    if args.texts.is_empty() {
        return Ok((String::new(), None));
    }
    let (by_domain, sources) = load_texts(args)?;
    let mut md = String::from("## Text reuse (MinHash over word 3-shingles inside sentences)\n\n");
    md.push_str(&format!(
        "Human documents (at least 40 words) from {} source(s) of the text detector's collected records, at most {} per domain (evenly spaced). Non-matches: every pair of different documents of one domain. Matches: each document against a reworded copy of itself (sentences in reverse order, every seventh word replaced), found as the registry finds it (LSH buckets, then the estimate).\n\n",
        sources.len(),
        args.texts_per_domain
    ));
    md.push_str("| domain | documents | non-match pairs | false matches at 0.2 / 0.3 / 0.4 | reworded copies found at 0.2 / 0.3 / 0.4 |\n|---|---:|---:|---:|---:|\n");
    let thresholds = [0.2f32, 0.3, 0.4];
    let (mut all_pairs, mut all_false_at, mut joint_false) = (0usize, 0usize, 0usize);
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
                joint_false += usize::from(jac >= args.joint_text_threshold);
                for (k, t) in thresholds.iter().enumerate() {
                    false_m[k] += usize::from(jac >= *t);
                }
            }
        }
        // Found as the registry finds it: through the LSH buckets, then the
        // estimate.
        let mut found = [0usize; 3];
        for (t, s) in docs.iter().zip(&sigs) {
            if let Some(r) = Signature::of(&shingles(&words(&rework(t)))) {
                let mut index = candor_identity::minhash::LshIndex::default();
                index.insert(0, s.clone());
                for (k, th) in thresholds.iter().enumerate() {
                    found[k] += usize::from(!index.search(&r, *th).is_empty());
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
    let joint = joint_false as f64 / all_pairs.max(1) as f64;
    md.push_str(&format!(
        "\nAt the joint rule's text threshold {:.2}: {joint_false} of {all_pairs} pairs of different documents ({:.4}%).\n",
        args.joint_text_threshold,
        100.0 * joint
    ));
    Ok((md, Some(joint)))
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

/// The identity templates of a picture, as the service computes them.
async fn templates_of(
    a: &Analyzer,
    bytes: Vec<u8>,
    name: Option<String>,
) -> anyhow::Result<candor_core::IdentityTemplates> {
    let input = InputSource::File(RawInput {
        bytes: bytes.into(),
        name,
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + Duration::from_secs(120)),
        identity: true,
        ..AnalyzeOptions::default()
    };
    let r = a.analyze(input, &opts).await?;
    Ok(r.identity.unwrap_or_default())
}

/// The face embedding and the perceptual hashes of the photo at `path`.
async fn embed(
    a: &Analyzer,
    path: &Path,
) -> anyhow::Result<(Option<Vec<f32>>, Option<candor_core::PhotoTemplate>)> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let t = templates_of(a, bytes, name).await?;
    Ok((t.face.map(|f| f.embedding), t.photo))
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

    if let Some(dir) = &args.dump_aligned {
        // YuNet runs blocking: off the async workers.
        return tokio::task::block_in_place(|| dump_aligned(&args, &people, &singles, dir));
    }
    let mut engine = args.analyzer.engine_config();
    engine.models = Some(vec![
        yunet::MODEL.to_string(),
        sface::MODEL.to_string(),
        candor_detectors::VAD_MODEL.to_string(),
        candor_detectors::audio::voice::MODEL.to_string(),
    ]);
    let analyzer = Analyzer::load(args.analyzer.analyzer_config(), engine)
        .context("cannot load YuNet and SFace (run scripts/setup.sh)")?;

    // Embeddings: person -> photos' embeddings (None: no face found).
    let t0 = Instant::now();
    // Per person: each photo and its embedding (None: no face found).
    type Photos = Vec<(PathBuf, Option<Vec<f32>>)>;
    let mut emb: Vec<(String, Photos)> = Vec::new();
    let mut n_photos = 0usize;
    let mut no_face = 0usize;
    // Every photo's hashes, with the index of its person.
    let mut hashes: Vec<(usize, PathBuf, candor_core::PhotoTemplate)> = Vec::new();
    for (name, photos) in people
        .iter()
        .cloned()
        .chain(singles.iter().map(|(n, p)| (n.clone(), vec![p.clone()])))
    {
        let mut v = Vec::new();
        for p in photos {
            let (e, photo) = embed(&analyzer, &p).await?;
            if let Some(h) = photo {
                hashes.push((emb.len(), p.clone(), h));
            }
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
    // The joint rule: the text side at its threshold, the face side the
    // lowest cosine at which the product of the two measured false-match
    // rates (faces and texts of different people are independent) stays
    // within the target.
    let (text_md, text_joint_fmr) = text_section(&args)?;
    let joint = text_joint_fmr.and_then(|tf| {
        (10..=80).map(|k| k as f32 / 100.0).find_map(|t| {
            let ff = rate(&impostor, &|x| x >= t);
            (t < thr && ff * tf <= args.target_fmr).then(|| {
                let fnmr = rate(&genuine, &|x| x < t);
                (t, ff, tf, fnmr)
            })
        })
    });

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
            voice_threshold: 0.8,
            voice_operating_point: "test".into(),
            text_threshold: 0.3,
            text_operating_point: String::new(),
            photo_max_bits: 10,
            photo_operating_point: "test".into(),
            // Faces only: nothing for the joint rule.
            joint_face_threshold: 1.0,
            joint_text_threshold: 1.0,
            joint_operating_point: String::new(),
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
            ..Default::default()
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
    match joint {
        Some((t, ff, tf, fnmr)) => md.push_str(&format!(
            "### Joint rule (face + text)\n\nTwo names whose faces reach a lower cosine and whose texts reach Jaccard ≥ {:.2} (the text side, `CANDOR_IDENTITY_JOINT_TEXT_THRESHOLD`), each short of its own threshold, are reported as one person (`face+text`). The face side is the lowest cosine at which the product of the two measured false-match rates stays within {:.4}%, the faces and the texts of different people being independent: cosine ≥ **{t:.2}** (`CANDOR_IDENTITY_JOINT_FACE_THRESHOLD`; face FMR {:.4}% × text FMR {:.4}% (the text section below) = **{:.5}%**; face FNMR {:.2}%). Pairs whose texts share a template (two cover letters for one advert) are not independent of that reading: for them the joint rule's false-match rate is the face's at {t:.2}. The persona farm below counts what the rule adds.\n\n",
            args.joint_text_threshold,
            args.target_fmr * 100.0,
            ff * 100.0,
            tf * 100.0,
            ff * tf * 100.0,
            fnmr * 100.0,
        )),
        None if !args.texts.is_empty() => md.push_str(
            "### Joint rule (face + text)\n\nNo face cosine below the face threshold keeps the joint false-match rate within the target.\n\n",
        ),
        None => {}
    }
    let (photo_md, photo_bits) = photo_section(&args, &analyzer, &hashes).await?;
    md.push_str(&photo_md);
    if let Some(dir) = &args.speech {
        let t = Instant::now();
        let spk = speakers(&args, &analyzer, dir).await?;
        eprintln!(
            "identity-eval: {} speakers embedded in {:.0} s",
            spk.len(),
            t.elapsed().as_secs_f64()
        );
        let (voice_md, voice_t) = voice_section(&spk, &args);
        md.push_str(&voice_md);
        let voice_t = voice_t.context("no voice threshold reaches the target FMR")?;
        let faces: Vec<(String, Vec<Option<Vec<f32>>>)> = emb
            .iter()
            .map(|(n, v)| (n.clone(), v.iter().map(|(_, e)| e.clone()).collect()))
            .collect();
        let (texts, _) = load_texts(&args)?;
        let resumes = texts.get("resume").cloned().unwrap_or_default();
        let joint = joint.map(|(t, ..)| (t, args.joint_text_threshold));
        md.push_str(&full_farm(&args, &faces, &spk, &resumes, thr, voice_t, joint).await?);
    }
    md.push_str(&text_md);
    let out = args.out.as_deref().context("--out is required")?;
    std::fs::write(out, md).with_context(|| out.display().to_string())?;
    eprintln!(
        "identity-eval: threshold {thr:.2} (FMR {:.4}%, FNMR {:.2}%), persona farm {true_found}/{expected} found, {false_found} false; photo hashes <= {photo_bits} bits; {}",
        fmr_at * 100.0,
        fnmr_at * 100.0,
        out.display()
    );
    Ok(())
}

/// 16-bit PCM mono WAV bytes of `samples` at `rate`.
fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for x in samples {
        let v = (x.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// A telephone channel: the 300–3400 Hz band only (an FFT mask over the
/// whole recording) and 8-bit µ-law quantisation, as G.711.
fn telephone(samples: &[f32], rate: f64) -> Vec<f32> {
    use rustfft::num_complex::Complex32;
    let n = samples.len();
    if n == 0 {
        return Vec::new();
    }
    let mut planner = rustfft::FftPlanner::<f32>::new();
    let mut buf: Vec<Complex32> = samples.iter().map(|x| Complex32::new(*x, 0.0)).collect();
    planner.plan_fft_forward(n).process(&mut buf);
    for (k, v) in buf.iter_mut().enumerate() {
        let f = k.min(n - k) as f64 * rate / n as f64;
        if !(300.0..=3400.0).contains(&f) {
            *v = Complex32::new(0.0, 0.0);
        }
    }
    planner.plan_fft_inverse(n).process(&mut buf);
    let mu = 255.0f32;
    buf.iter()
        .map(|c| {
            let x = (c.re / n as f32).clamp(-1.0, 1.0);
            let y = x.signum() * (1.0 + mu * x.abs()).ln() / (1.0 + mu).ln();
            let q = (y * 127.0).round() / 127.0;
            q.signum() * ((1.0 + mu).powf(q.abs()) - 1.0) / mu
        })
        .collect()
}

/// The voice template of `samples` (16 kHz) through the service's own
/// path (WAV decode, VAD, GE2E); `None` with too little speech.
async fn voice_of(a: &Analyzer, samples: &[f32], name: &str) -> anyhow::Result<Option<Vec<f32>>> {
    let input = InputSource::File(RawInput {
        bytes: wav_bytes(samples, 16_000).into(),
        name: Some(format!("{name}.wav")),
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + Duration::from_secs(120)),
        identity: true,
        ..AnalyzeOptions::default()
    };
    let r = a.analyze(input, &opts).await?;
    Ok(r.identity.and_then(|t| t.voice).map(|v| v.embedding))
}

/// One speaker's templates.
struct Speaker {
    id: String,
    /// First and second half, as recorded.
    halves: [Option<Vec<f32>>; 2],
    /// The same halves through the telephone channel.
    halves_tel: [Option<Vec<f32>>; 2],
    seconds: f64,
}

async fn speakers(
    args: &IdentityEvalArgs,
    analyzer: &Analyzer,
    dir: &Path,
) -> anyhow::Result<Vec<Speaker>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| {
                ["flac", "wav", "mp3", "ogg"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x))
            })
        })
        .collect();
    files.sort();
    let limits = args.analyzer.limits();
    let mut out: Vec<Speaker> = Vec::new();
    for f in files {
        let stem = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let id = stem.split('-').next().unwrap_or(&stem).to_owned();
        if out.iter().any(|s| s.id == id) {
            continue;
        }
        let candor_media::Decoded::Audio(audio) = crate::rows::decode_file(&f, &limits).await?
        else {
            continue;
        };
        anyhow::ensure!(
            audio.sample_rate == 16_000,
            "{}: not decoded at 16 kHz",
            f.display()
        );
        let x = &audio.samples;
        let n = x.len();
        let (h0, h1) = x.split_at(n / 2);
        let (tel0, tel1) = (telephone(h0, 16_000.0), telephone(h1, 16_000.0));
        out.push(Speaker {
            halves: [
                voice_of(analyzer, h0, &stem).await?,
                voice_of(analyzer, h1, &stem).await?,
            ],
            halves_tel: [
                voice_of(analyzer, &tel0, &stem).await?,
                voice_of(analyzer, &tel1, &stem).await?,
            ],
            seconds: audio.duration_s,
            id,
        });
    }
    Ok(out)
}

/// Genuine and impostor cosines of one recording condition.
struct Condition {
    name: &'static str,
    genuine: Vec<f32>,
    /// Speakers without a genuine pair (a half with too little speech).
    missing: usize,
    impostor: Vec<f32>,
}

fn share(v: &[f32], pred: impl Fn(f32) -> bool) -> f64 {
    v.iter().filter(|x| pred(**x)).count() as f64 / v.len().max(1) as f64
}

/// The templates on each side of a pair, per condition (0: as recorded,
/// 1: both through the telephone channel, 2: as recorded vs telephone):
/// (first side, second side), each the two halves' templates.
fn sides(s: &Speaker, c: usize) -> [[Option<&Vec<f32>>; 2]; 2] {
    let clean = [s.halves[0].as_ref(), s.halves[1].as_ref()];
    let tel = [s.halves_tel[0].as_ref(), s.halves_tel[1].as_ref()];
    match c {
        0 => [clean, clean],
        1 => [tel, tel],
        _ => [clean, tel],
    }
}

/// The voice section: rates on speaker pairs per condition, and the
/// operating point (chosen on the same-channel condition).
fn voice_section(spk: &[Speaker], args: &IdentityEvalArgs) -> (String, Option<f32>) {
    // (first half, second half) templates of each speaker per condition.
    let names = [
        "same channel (clean vs clean)",
        "both through the telephone channel",
        "clean vs telephone",
    ];
    let mut conds = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let mut cond = Condition {
            name,
            genuine: Vec::new(),
            missing: 0,
            impostor: Vec::new(),
        };
        for s in spk {
            let [x, y] = sides(s, c);
            match (x[0], y[1]) {
                (Some(a), Some(b)) => cond.genuine.push(cos(a, b)),
                _ => cond.missing += 1,
            }
        }
        // Every half of one speaker against every half of another.
        for i in 0..spk.len() {
            for j in i + 1..spk.len() {
                let ([a, _], [_, b]) = (sides(&spk[i], c), sides(&spk[j], c));
                for x in a.iter().flatten() {
                    for y in b.iter().flatten() {
                        cond.impostor.push(cos(x, y));
                    }
                }
            }
        }
        conds.push(cond);
    }
    let secs: Vec<f64> = spk.iter().map(|s| s.seconds).collect();
    let mean_s = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    let mut md = String::from("## Voice matching (GE2E speaker embeddings)\n\n");
    md.push_str(&format!(
        "Generated by `candor identity-eval --speech DIR` on {} speakers of LibriSpeech train-clean-100 (../shared/train/audio; one read recording per speaker, {:.1} s on average), through the service's path (WAV decode, silero VAD, the speech joined, 40-band mel, GE2E over 1.6 s partials). Each recording is cut in two halves, about {:.1} s each. **Genuine pairs**: one half of a speaker against the other half (different words, one session). **Impostor pairs**: each half of one speaker against each half of another. Three conditions: both halves as recorded; both through a telephone channel (300–3400 Hz, 8-bit µ-law); one as recorded against the other through the telephone channel. A half with less than {:.0} s of speech gives no template (the registry abstains): such speakers have no genuine pair and are counted apart.\n\n",
        spk.len(),
        mean_s,
        mean_s / 2.0,
        candor_detectors::audio::voice::MIN_SPEECH_S,
    ));
    md.push_str("| condition | genuine pairs | speakers without a template for one half | impostor pairs |\n|---|---:|---:|---:|\n");
    for c in &conds {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.name,
            c.genuine.len(),
            c.missing,
            c.impostor.len()
        ));
    }
    md.push_str("\nFalse-match rate (FMR) / false-non-match rate (FNMR) per cosine threshold:\n\n| cosine | ");
    md.push_str(&conds.iter().map(|c| c.name).collect::<Vec<_>>().join(" | "));
    md.push_str(" |\n|---:|");
    md.push_str(&"---:|".repeat(conds.len()));
    md.push('\n');
    for k in (50..=95).step_by(5) {
        let t = k as f32 / 100.0;
        md.push_str(&format!("| {t:.2} |"));
        for c in &conds {
            md.push_str(&format!(
                " {:.3}% / {:.1}% |",
                share(&c.impostor, |x| x >= t) * 100.0,
                share(&c.genuine, |x| x < t) * 100.0
            ));
        }
        md.push('\n');
    }
    let clean = &conds[0];
    let chosen = (30..=99)
        .map(|k| k as f32 / 100.0)
        .find(|t| share(&clean.impostor, |x| x >= *t) <= args.voice_target_fmr);
    let eer = (30..=99)
        .map(|k| k as f32 / 100.0)
        .map(|t| {
            let fmr = share(&clean.impostor, |x| x >= t);
            let fnmr = share(&clean.genuine, |x| x < t);
            ((fmr - fnmr).abs(), (fmr + fnmr) / 2.0, t)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    match (chosen, eer) {
        (Some(t), Some((_, e, et))) => {
            md.push_str(&format!(
                "\nOperating point for a false-match rate ≤ {:.3}% on the same-channel condition: cosine ≥ **{t:.2}** (",
                args.voice_target_fmr * 100.0
            ));
            md.push_str(
                &conds
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: FMR {:.3}%, FNMR {:.1}%",
                            c.name,
                            share(&c.impostor, |x| x >= t) * 100.0,
                            share(&c.genuine, |x| x < t) * 100.0
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            md.push_str(&format!(
                "). Same-channel equal error rate {:.2}% at {et:.2}. With {} speakers the FMR is measured to 1 in {}; a registry of N voices needs an FMR near 1/N, so re-measure the threshold on your own recordings.\n\n",
                e * 100.0,
                spk.len(),
                clean.impostor.len()
            ));
        }
        _ => md.push_str("\nNo threshold up to 0.99 reaches the target false-match rate.\n\n"),
    }
    (md, chosen)
}

/// One applicant name of the full persona farm.
struct FarmName {
    applicant: String,
    person: String,
    face: Option<Vec<f32>>,
    voice: Option<Vec<f32>>,
    text: Option<String>,
}

/// The full persona farm: `args.farm` people (three photos, a recording,
/// a resume) each apply under three names (one photo each; the first two
/// names one half of the recording each, the third no recording; the
/// resume as written or reworded), mixed with unrelated applicants (one
/// photo, one recording, a resume when there are enough); every name's
/// photo, recording and resume enrolled in a real registry.
async fn full_farm(
    args: &IdentityEvalArgs,
    faces: &[(String, Vec<Option<Vec<f32>>>)],
    spk: &[Speaker],
    resumes: &[String],
    face_t: f32,
    voice_t: f32,
    joint: Option<(f32, f32)>,
) -> anyhow::Result<String> {
    let multi: Vec<&(String, Vec<Option<Vec<f32>>>)> = faces
        .iter()
        .filter(|(_, v)| v.iter().filter(|e| e.is_some()).count() >= 3)
        .collect();
    let singles: Vec<&(String, Vec<Option<Vec<f32>>>)> =
        faces.iter().filter(|(_, v)| v.len() == 1).collect();
    let farm = args
        .farm
        .min(multi.len())
        .min(spk.len().saturating_sub(1))
        .min(resumes.len());
    anyhow::ensure!(farm >= 2, "too few people for the full persona farm");
    let mut names: Vec<FarmName> = Vec::new();
    for (k, (person, photos)) in multi.iter().take(farm).enumerate() {
        for (i, photo) in photos.iter().flatten().take(3).enumerate() {
            names.push(FarmName {
                applicant: format!("farm{k:03}#{i}"),
                person: person.clone(),
                face: Some(photo.clone()),
                voice: spk[k].halves.get(i).cloned().flatten(),
                text: Some(match i {
                    0 => resumes[k].clone(),
                    1 => rework(&resumes[k]),
                    _ => rework2(&resumes[k]),
                }),
            });
        }
    }
    let unrelated = (spk.len() - farm).min(singles.len());
    for u in 0..unrelated {
        let (person, photo) = singles[u];
        names.push(FarmName {
            applicant: format!("solo{u:03}"),
            person: person.clone(),
            face: photo[0].clone(),
            voice: spk[farm + u].halves[0].clone(),
            text: resumes.get(farm + u).cloned(),
        });
    }
    // Interleaved: the first names of every person, then the second...
    names.sort_by_key(|n| {
        let i = n.applicant.rsplit('#').next().unwrap_or("0").to_owned();
        (i.len() > 1, i, n.applicant.clone())
    });

    let dir = tempfile::tempdir()?;
    let store =
        candor_bulk::Store::open(&dir.path().join("registry.db").display().to_string(), 2).await?;
    let reg = candor_identity::Registry::open(
        store,
        candor_identity::RegistryConfig {
            retention: Duration::from_secs(86_400),
            face_threshold: face_t,
            face_operating_point: format!("eval threshold {face_t}"),
            voice_threshold: voice_t,
            voice_operating_point: format!("eval threshold {voice_t}"),
            text_threshold: args.text_threshold,
            text_operating_point: format!("eval threshold {}", args.text_threshold),
            photo_max_bits: 10,
            photo_operating_point: "test".into(),
            // Off (1.0) without a measured joint operating point.
            joint_face_threshold: joint.map_or(1.0, |j| j.0),
            joint_text_threshold: joint.map_or(1.0, |j| j.1),
            joint_operating_point: "eval joint thresholds".into(),
            max_matches: 50,
            scan_threads: 2,
        },
    )
    .await?;
    let owner: BTreeMap<&str, &str> = names
        .iter()
        .map(|n| (n.applicant.as_str(), n.person.as_str()))
        .collect();
    // modality -> reported pairs
    let mut reported: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let enrol_started = Instant::now();
    let mut enrolled = 0usize;
    for n in &names {
        let mut parts = Vec::new();
        if let Some(f) = &n.face {
            parts.push(candor_core::IdentityTemplates {
                face: Some(candor_core::FaceTemplate {
                    embedding: f.clone(),
                    model: "sface".into(),
                    region: [0, 0, 0, 0],
                }),
                ..Default::default()
            });
        }
        if let Some(v) = &n.voice {
            parts.push(candor_core::IdentityTemplates {
                voice: Some(candor_core::VoiceTemplate {
                    embedding: v.clone(),
                    model: "ge2e".into(),
                    speech_s: 0.0,
                    span_s: [0.0, 0.0],
                }),
                ..Default::default()
            });
        }
        if let Some(t) = &n.text {
            parts.push(candor_core::IdentityTemplates {
                text: Some(t.clone()),
                ..Default::default()
            });
        }
        for (k, t) in parts.iter().enumerate() {
            let sha = format!("{}-{k}", n.applicant);
            enrolled += 1;
            for m in reg
                .enroll_and_match("", &n.applicant, &sha, None, t)
                .await?
            {
                let (a, b) = if m.applicant_id < m.other_applicant_id {
                    (m.applicant_id, m.other_applicant_id)
                } else {
                    (m.other_applicant_id, m.applicant_id)
                };
                reported.entry(m.modality).or_default().insert((a, b));
            }
        }
    }
    let enrol_ms = enrol_started.elapsed().as_secs_f64() * 1e3 / enrolled.max(1) as f64;
    let n = names.len();
    let expected = farm * 3;
    // A voice pair is expected only when both names' recordings hold enough
    // speech for a template (otherwise the registry abstains).
    let expected_voice = spk
        .iter()
        .take(farm)
        .filter(|s| s.halves.iter().all(Option::is_some))
        .count();
    let all_pairs = n * (n - 1) / 2;
    let mut union: BTreeSet<(String, String)> = BTreeSet::new();
    let joint_rule = joint.map_or(String::new(), |(f, t)| {
        format!(", and by the joint rule (`face+text`) at face cosine ≥ {f:.2} with text Jaccard ≥ {t:.2}")
    });
    let mut md = String::from("## Persona farm: face, voice and resume\n\n");
    md.push_str(&format!(
        "{farm} people each apply under three names: one of their LFW photos per name, one half of their LibriSpeech recording for the first two names (the third name sends no recording; a voice pair is expected only where both halves hold {} s of speech) and their resume — as written, reworded (sentences reversed, every 7th word replaced) and reworded again (sentences rotated, every 11th word replaced). {unrelated} unrelated applicants each bring a photo of another LFW person, another speaker's recording and, while they last, another human resume ({} human resumes from the `--texts` records). {n} names, {} real people; every photo, recording and resume enrolled one by one in a real registry (SQLite) at face cosine ≥ {face_t:.2}, voice cosine ≥ {voice_t:.2}, text Jaccard ≥ {:.2}{joint_rule}; {enrol_ms:.2} ms per enrolment (lookup + insert). {expected} shared-identity pairs exist among {all_pairs} pairs.\n\n",
        candor_detectors::audio::voice::MIN_SPEECH_S,
        resumes.len(),
        farm + unrelated,
        args.text_threshold,
    ));
    md.push_str(
        "| modality | shared-identity pairs reported | false pairs reported |\n|---|---:|---:|\n",
    );
    for (modality, pairs) in &reported {
        let t = pairs
            .iter()
            .filter(|(a, b)| owner[a.as_str()] == owner[b.as_str()])
            .count();
        let e = if modality == "voice" {
            expected_voice
        } else {
            expected
        };
        md.push_str(&format!(
            "| {modality} | {t} of {e} ({:.1}%) | {} |\n",
            100.0 * t as f64 / e.max(1) as f64,
            pairs.len() - t
        ));
        union.extend(pairs.iter().cloned());
    }
    let t = union
        .iter()
        .filter(|(a, b)| owner[a.as_str()] == owner[b.as_str()])
        .count();
    md.push_str(&format!(
        "| **any** | **{t} of {expected} ({:.1}%)** | **{}** ({:.4}% of {} pairs of different people) |\n\n",
        100.0 * t as f64 / expected.max(1) as f64,
        union.len() - t,
        100.0 * (union.len() - t) as f64 / (all_pairs - expected).max(1) as f64,
        all_pairs - expected
    ));
    // What the batch report's `clusters` show: names linked directly or
    // through other names (connected components of the reported pairs).
    let (ct, cf) = cluster_pairs(&names, &union);
    md.push_str(&format!(
        "In the batch report's clusters (names linked directly or through other names, as `clusters` lists them): **{ct} of {expected}** shared-identity pairs in one cluster, **{cf}** pairs of different people in one cluster ({:.4}%). A missed pair is linked there when both names matched a third one; a false link joins two people's clusters whole.\n\n",
        100.0 * cf as f64 / (all_pairs - expected).max(1) as f64,
    ));
    eprintln!(
        "identity-eval: full persona farm {t}/{expected} found, {} false; in clusters {ct} found, {cf} false",
        union.len() - t
    );
    Ok(md)
}

/// Pairs of names in one connected component of the reported pairs:
/// (same person, different people).
fn cluster_pairs(names: &[FarmName], pairs: &BTreeSet<(String, String)>) -> (usize, usize) {
    let component =
        candor_bulk::report::components(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    let (mut same, mut different) = (0, 0);
    for (i, x) in names.iter().enumerate() {
        for y in &names[i + 1..] {
            let (Some(cx), Some(cy)) = (component.get(&x.applicant), component.get(&y.applicant))
            else {
                continue;
            };
            if cx == cy {
                if x.person == y.person {
                    same += 1;
                } else {
                    different += 1;
                }
            }
        }
    }
    (same, different)
}

/// An edit a photo goes through before it is reused under another name.
struct Edit {
    name: &'static str,
    apply: fn(&image::RgbImage) -> image::RgbImage,
    quality: Option<u8>,
    /// Whether the hashes are meant to survive it.
    expected: bool,
}

fn scaled(img: &image::RgbImage, f: f32) -> image::RgbImage {
    let w = ((img.width() as f32 * f).round() as u32).max(1);
    let h = ((img.height() as f32 * f).round() as u32).max(1);
    image::imageops::resize(img, w, h, image::imageops::FilterType::CatmullRom)
}

/// Keeps the box (fractions of the width and height).
fn cropped(img: &image::RgbImage, x0: f32, y0: f32, x1: f32, y1: f32) -> image::RgbImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (x, y) = ((x0 * w) as u32, (y0 * h) as u32);
    let cw = (((x1 - x0) * w) as u32).max(1);
    let ch = (((y1 - y0) * h) as u32).max(1);
    image::imageops::crop_imm(img, x, y, cw, ch).to_image()
}

const EDITS: &[Edit] = &[
    Edit {
        name: "re-encoded, JPEG quality 40",
        apply: |i| i.clone(),
        quality: Some(40),
        expected: true,
    },
    Edit {
        name: "half size, JPEG 75",
        apply: |i| scaled(i, 0.5),
        quality: Some(75),
        expected: true,
    },
    Edit {
        name: "1.6× larger, JPEG 90",
        apply: |i| scaled(i, 1.6),
        quality: Some(90),
        expected: true,
    },
    Edit {
        name: "10% cut off the left and the top, JPEG 85",
        apply: |i| cropped(i, 0.1, 0.1, 1.0, 1.0),
        quality: Some(85),
        expected: true,
    },
    Edit {
        name: "the central 80%, JPEG 85",
        apply: |i| cropped(i, 0.1, 0.1, 0.9, 0.9),
        quality: Some(85),
        expected: true,
    },
    Edit {
        name: "brighter (+20) and more contrast (+15%), JPEG 85",
        apply: |i| {
            let b = image::imageops::colorops::brighten(i, 20);
            image::imageops::colorops::contrast(&b, 15.0)
        },
        quality: Some(85),
        expected: true,
    },
    Edit {
        name: "15% cut off the right, 70% size, JPEG 60",
        apply: |i| scaled(&cropped(i, 0.0, 0.0, 0.85, 1.0), 0.7),
        quality: Some(60),
        expected: true,
    },
    Edit {
        name: "lossless PNG",
        apply: |i| i.clone(),
        quality: None,
        expected: true,
    },
    Edit {
        name: "mirrored, JPEG 85 (the hashes are not built to survive it)",
        apply: |i| image::imageops::flip_horizontal(i),
        quality: Some(85),
        expected: false,
    },
];

fn encoded(img: &image::RgbImage, quality: Option<u8>) -> anyhow::Result<Vec<u8>> {
    let mut b = Vec::new();
    match quality {
        Some(q) => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, q).encode_image(img)?
        }
        None => img.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)?,
    }
    Ok(b)
}

/// Bits two photos' hashes differ in: the whole pictures, and the faces
/// in each framing when both have one (as the registry measures them).
fn photo_distances(a: &candor_core::PhotoTemplate, b: &candor_core::PhotoTemplate) -> Distances {
    PhotoHashes::from(a).distances(&PhotoHashes::from(b))
}

/// Same-photograph matching: perceptual hashes of different photographs
/// (of one person, of different people) against edited copies of one.
async fn photo_section(
    args: &IdentityEvalArgs,
    analyzer: &Analyzer,
    photos: &[(usize, PathBuf, candor_core::PhotoTemplate)],
) -> anyhow::Result<(String, u32)> {
    // Different photographs: every pair.
    let (mut same_person, mut other_people) = (Vec::new(), Vec::new());
    for i in 0..photos.len() {
        for j in i + 1..photos.len() {
            let d = photo_distances(&photos[i].2, &photos[j].2);
            if photos[i].0 == photos[j].0 {
                same_person.push(d);
            } else {
                other_people.push(d);
            }
        }
    }
    // Edited copies of evenly spaced photos.
    let t = Instant::now();
    let chosen = spaced(photos, args.photo_edits);
    let mut edited: Vec<Vec<Distances>> = vec![Vec::new(); EDITS.len()];
    let mut lost_face = vec![0usize; EDITS.len()];
    for (_, path, orig) in &chosen {
        let img = image::open(path)
            .with_context(|| path.display().to_string())?
            .to_rgb8();
        for (k, e) in EDITS.iter().enumerate() {
            let bytes = encoded(&(e.apply)(&img), e.quality)?;
            let t = templates_of(analyzer, bytes, None).await?;
            let Some(p) = t.photo else {
                anyhow::bail!(
                    "{}: no photo hashes for the edit `{}`",
                    path.display(),
                    e.name
                );
            };
            if orig.face.is_some() && p.face.is_none() {
                lost_face[k] += 1;
            }
            edited[k].push(photo_distances(orig, &p));
        }
    }
    eprintln!(
        "identity-eval: {} edited copies hashed in {:.0} s",
        chosen.len() * EDITS.len(),
        t.elapsed().as_secs_f64()
    );
    let share = |v: &[Distances], f: &dyn Fn(Distances) -> bool| {
        v.iter().filter(|d| f(**d)).count() as f64 / v.len().max(1) as f64
    };
    let fmr = |v: &[Distances], t: u32| share(v, &|d| d.bits() <= t);
    // The rule before the close framing: the whole picture or the wide one.
    let two = |d: Distances| d.whole.min(d.face.unwrap_or(u32::MAX));
    let all_different: Vec<Distances> = same_person.iter().chain(&other_people).copied().collect();
    // A photo match between two photos of one person links two names of
    // one person (right, if under the wrong modality); between different
    // people it is a false link: the operating point bounds those.
    let chosen_bits = (0..=32u32)
        .take_while(|t| fmr(&other_people, *t) <= args.photo_target_fmr)
        .last()
        .context("even identical hashes exceed the photo target FMR")?;
    let two_bits = (0..=32u32)
        .take_while(|t| share(&other_people, &|d| two(d) <= *t) <= args.photo_target_fmr)
        .last()
        .unwrap_or(0);
    let mut md = String::new();
    md.push_str("## The same photograph (perceptual hashes)\n\n");
    md.push_str(&format!(
        "Three 64-bit DCT hashes per picture (`crates/detectors/src/image/phash.rs`): the whole picture, and the largest face aligned to two fixed framings, a wide one that takes in hair and background and a close one (the face alone). Two pictures are reported as the same photograph when any of the three differs in at most the chosen number of bits. Different photographs: every pair of the {} LFW photos above ({} pairs of one person's different photos, {} pairs of different people; LFW photos are all 250×250 crops centred on a face, a hard case for the whole-picture hash). The same photograph: {} photos, evenly spaced, each edited as below and analysed again by the service's code ({} photos had a face; a lost face is a copy where YuNet no longer found one).\n\n",
        photos.len(),
        same_person.len(),
        other_people.len(),
        chosen.len(),
        chosen.iter().filter(|(_, _, p)| p.face.is_some()).count(),
    ));
    md.push_str("| bits ≤ | different people | one person, another photo |");
    for e in EDITS {
        md.push_str(&format!(" {} |", e.name));
    }
    md.push_str("\n|---:|---:|---:|");
    md.push_str(&"---:|".repeat(EDITS.len()));
    md.push('\n');
    for t in [0u32, 2, 4, 6, 8, 10, 12, 14, 16, 20] {
        md.push_str(&format!(
            "| {t}{} | {:.5}% | {:.4}% |",
            if t == chosen_bits { " (chosen)" } else { "" },
            100.0 * fmr(&other_people, t),
            100.0 * fmr(&same_person, t)
        ));
        for v in &edited {
            md.push_str(&format!(" {:.1}% |", 100.0 * fmr(v, t)));
        }
        md.push('\n');
    }
    md.push_str(&format!(
        "\nThe columns of different photographs are false-match rates; the edit columns are the share of edited copies found (1 − FNMR). Operating point for a false-match rate ≤ {:.4}% between different people (a false link between applicants; one person's other photo reported as the same photograph still links the right names): **≤ {chosen_bits} bits** (`CANDOR_IDENTITY_PHOTO_BITS`), where {} of {} pairs of different photographs match ({} of them one person's).\n\n",
        args.photo_target_fmr * 100.0,
        all_different.iter().filter(|d| d.bits() <= chosen_bits).count(),
        all_different.len(),
        same_person.iter().filter(|d| d.bits() <= chosen_bits).count(),
    ));
    md.push_str("At that operating point, which hash finds each edit:\n\n| edit | whole picture | face, wide framing | face, close framing | any | face lost |\n|---|---:|---:|---:|---:|---:|\n");
    let mut missed_expected = 0usize;
    let mut missed_two = 0usize;
    let mut total_expected = 0usize;
    for (k, e) in EDITS.iter().enumerate() {
        let v = &edited[k];
        if e.expected {
            total_expected += v.len();
            missed_expected += v.iter().filter(|d| d.bits() > chosen_bits).count();
            missed_two += v.iter().filter(|d| two(**d) > two_bits).count();
        }
        md.push_str(&format!(
            "| {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {} |\n",
            e.name,
            100.0 * share(v, &|d| d.whole <= chosen_bits),
            100.0 * share(v, &|d| d.face.is_some_and(|f| f <= chosen_bits)),
            100.0 * share(v, &|d| d.close.is_some_and(|f| f <= chosen_bits)),
            100.0 * fmr(v, chosen_bits),
            lost_face[k]
        ));
    }
    let found = |missed: usize| {
        format!(
            "{} of {} copies found ({:.1}%)",
            total_expected - missed,
            total_expected,
            100.0 * (total_expected - missed) as f64 / total_expected.max(1) as f64
        )
    };
    md.push_str(&format!(
        "\nOver the edits the hashes are built to survive: {}. With the whole picture and the wide framing only (the rule before the close framing), chosen the same way (≤ {two_bits} bits): {}.\n\n",
        found(missed_expected),
        found(missed_two),
    ));
    Ok((md, chosen_bits))
}

/// Writes the aligned largest face of each photo (see
/// [`IdentityEvalArgs::dump_aligned`]).
fn dump_aligned(
    args: &IdentityEvalArgs,
    people: &[(String, Vec<PathBuf>)],
    singles: &[(String, PathBuf)],
    dir: &Path,
) -> anyhow::Result<()> {
    let mut cfg = args.analyzer.engine_config();
    cfg.models = Some(vec![yunet::MODEL.to_string()]);
    cfg.required = vec![yunet::MODEL.to_string()];
    let engine = candor_engine::Engine::load(cfg).context("cannot load YuNet")?;
    let det = yunet::YuNet::new(engine.model(yunet::MODEL).context("YuNet not loaded")?);
    let (mut written, mut no_face) = (0usize, 0usize);
    let all = people
        .iter()
        .cloned()
        .chain(singles.iter().map(|(n, p)| (n.clone(), vec![p.clone()])));
    for (name, photos) in all {
        let out = dir.join(&name);
        std::fs::create_dir_all(&out)?;
        for p in photos {
            let img = image::open(&p)
                .with_context(|| p.display().to_string())?
                .to_rgb8();
            let faces = det
                .detect(&img, candor_core::Priority::Bulk, None)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let largest = faces
                .iter()
                .max_by(|a, b| a.eye_distance().total_cmp(&b.eye_distance()));
            let crop = largest.and_then(|f| {
                yunet::align(
                    &img,
                    &f.landmarks,
                    yunet::AlignSpec {
                        side: sface::SIDE,
                        zoom: 1.0,
                    },
                )
            });
            let Some((crop, _)) = crop else {
                no_face += 1;
                continue;
            };
            let stem = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            // Raw RGB bytes, 112 rows of 112 pixels: readable anywhere.
            std::fs::write(out.join(format!("{stem}.rgb")), crop.as_raw())?;
            written += 1;
        }
    }
    eprintln!(
        "identity-eval: {written} aligned faces written to {} ({no_face} photos without a face)",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reworded_copies_are_the_ones_the_report_describes() {
        let t = "Led a team of five engineers. Shipped the billing service on time!\nCut cloud costs by a third? Mentored two interns.";
        assert_eq!(
            rework(t),
            "Mentored two interns. x3 cloud costs by a third? Shipped x3 billing service on time! Led a x4 of five engineers."
        );
        assert_eq!(
            rework2(t),
            "Shipped the billing service on y5 Cut cloud costs by a third? Mentored two interns. Led y1 team of five engineers."
        );
        assert_eq!(rework(""), "");
        assert_eq!(rework2(""), "");
    }

    #[test]
    fn clusters_link_names_through_each_other() {
        let name = |applicant: &str, person: &str| FarmName {
            applicant: applicant.into(),
            person: person.into(),
            face: None,
            voice: None,
            text: None,
        };
        let names = [
            name("a0", "A"),
            name("a1", "A"),
            name("a2", "A"),
            name("b", "B"),
            name("c", "C"),
        ];
        let pair = |x: &str, y: &str| (x.to_owned(), y.to_owned());
        // a0–a2 is not reported, but both match a1: one cluster.
        let mut pairs: BTreeSet<_> = [pair("a0", "a1"), pair("a1", "a2")].into();
        assert_eq!(cluster_pairs(&names, &pairs), (3, 0));
        // One false link joins B to all three of A's names.
        pairs.insert(pair("a2", "b"));
        assert_eq!(cluster_pairs(&names, &pairs), (3, 3));
        assert_eq!(cluster_pairs(&names, &BTreeSet::new()), (0, 0));
    }
}
