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

    /// Markdown report to write.
    #[arg(long, env = "CANDOR_IDENTITY_EVAL_OUT", value_name = "FILE")]
    pub out: PathBuf,
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
    std::fs::write(&args.out, md).with_context(|| args.out.display().to_string())?;
    eprintln!(
        "identity-eval: threshold {thr:.2} (FMR {:.4}%, FNMR {:.2}%), persona farm {true_found}/{expected} found, {false_found} false; {}",
        fmr_at * 100.0,
        fnmr_at * 100.0,
        args.out.display()
    );
    Ok(())
}
