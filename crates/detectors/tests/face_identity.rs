//! The identity registry's face embedding (SFace) through the real image
//! pipeline: computed only when asked for, never serialised or printed, and
//! closer for two pictures of one person than for two people.

mod common;

use std::time::Instant;

use candor_detectors::image::{sface, yunet};
use candor_detectors::{AnalyzeOptions, Analyzer, AnalyzerConfig, InputSource, RawInput};
use common::repo;

fn analyzer() -> Option<Analyzer> {
    let cfg = common::engine_config(
        &[yunet::MODEL, sface::MODEL],
        &[
            "onnxruntime",
            "models/yunet-face/face_detection_yunet_2023mar.onnx",
            "models/sface/face_recognition_sface_2021dec_int8bq.onnx",
        ],
    )?;
    Some(Analyzer::load(AnalyzerConfig::default(), cfg).unwrap())
}

async fn embed(a: &Analyzer, name: &str, identity: bool) -> candor_core::AnalysisResult {
    let bytes = std::fs::read(repo().join("samples/image").join(name)).unwrap();
    let input = InputSource::File(RawInput {
        bytes: bytes.into(),
        name: Some(name.into()),
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + std::time::Duration::from_secs(120)),
        identity,
        ..AnalyzeOptions::default()
    };
    a.analyze(input, &opts).await.unwrap()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_is_closer_than_two_and_templates_stay_inside() {
    let Some(a) = analyzer() else { return };
    let plain = embed(&a, "authentic-face-astronaut.jpg", false).await;
    assert!(plain.identity.is_none(), "no template unless asked for");
    let astro = embed(&a, "authentic-face-astronaut.jpg", true).await;
    let blend = embed(&a, "manipulated-astronaut-selfblend.jpg", true).await;
    let hopper = embed(&a, "authentic-face-hopper.jpg", true).await;
    let face = |r: &candor_core::AnalysisResult| {
        r.identity
            .as_ref()
            .and_then(|t| t.face.as_ref())
            .map(|f| f.embedding.clone())
            .expect("a face template")
    };
    let (x, y, z) = (face(&astro), face(&blend), face(&hopper));
    assert_eq!(x.len(), sface::DIM);
    assert!((cos(&x, &x) - 1.0).abs() < 1e-4, "unit length");
    let same = cos(&x, &y);
    let other = cos(&x, &z);
    eprintln!("same person {same:.3}, two people {other:.3}");
    assert!(same > 0.6, "one person: {same}");
    assert!(other < 0.3, "two people: {other}");
    assert!(astro.models.iter().any(|m| m.id == sface::MODEL));
    // Never in the JSON, never in Debug output.
    let json = serde_json::to_string(&astro).unwrap();
    assert!(!json.contains("identity") && !json.contains(&format!("{:.6}", x[0])));
    let dbg = format!("{astro:?}");
    assert!(dbg.contains("<redacted>") && !dbg.contains(&format!("{}", x[0])));
    // No face, no face template.
    let coffee = embed(&a, "authentic-coffee.png", true).await;
    assert!(coffee
        .identity
        .as_ref()
        .and_then(|t| t.face.as_ref())
        .is_none());
}

async fn analyse_bytes(a: &Analyzer, bytes: Vec<u8>) -> candor_core::AnalysisResult {
    let input = InputSource::File(RawInput {
        bytes: bytes.into(),
        name: None,
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + std::time::Duration::from_secs(120)),
        identity: true,
        ..AnalyzeOptions::default()
    };
    a.analyze(input, &opts).await.unwrap()
}

fn jpeg(img: &image::RgbImage, q: u8) -> Vec<u8> {
    let mut b = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, q)
        .encode_image(img)
        .unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_photograph_keeps_its_hashes_through_edits() {
    let Some(a) = analyzer() else { return };
    let photo = |r: &candor_core::AnalysisResult| {
        r.identity
            .as_ref()
            .and_then(|t| t.photo.clone())
            .expect("photo hashes")
    };
    let d = |x: u64, y: u64| (x ^ y).count_ones();
    let orig = photo(&embed(&a, "authentic-face-astronaut.jpg", true).await);
    let img = image::open(repo().join("samples/image/authentic-face-astronaut.jpg"))
        .unwrap()
        .to_rgb8();
    assert_eq!(orig.size, [img.width(), img.height()]);
    let of = orig.face.expect("the astronaut's face hash");
    let oc = orig
        .face_close
        .expect("the astronaut's close-framed face hash");
    // Smaller and re-encoded: both hashes stay close.
    let small = image::imageops::resize(
        &img,
        img.width() * 7 / 10,
        img.height() * 7 / 10,
        image::imageops::FilterType::Triangle,
    );
    let s = photo(&analyse_bytes(&a, jpeg(&small, 50)).await);
    eprintln!(
        "re-encoded: whole {} face {:?} close {:?}",
        d(orig.whole, s.whole),
        s.face.map(|f| d(of, f)),
        s.face_close.map(|f| d(oc, f))
    );
    assert!(d(orig.whole, s.whole) <= 4);
    assert!(d(of, s.face.unwrap()) <= 4);
    assert!(d(oc, s.face_close.unwrap()) <= 6);
    // Re-cropped (5% off the left and the top): the whole picture's hash
    // moves, the face's holds.
    let (w, h) = img.dimensions();
    let crop = image::imageops::crop_imm(&img, w / 20, h / 20, w, h).to_image();
    let c = photo(&analyse_bytes(&a, jpeg(&crop, 85)).await);
    eprintln!(
        "re-cropped: whole {} face {:?} close {:?}",
        d(orig.whole, c.whole),
        c.face.map(|f| d(of, f)),
        c.face_close.map(|f| d(oc, f))
    );
    assert!(d(of, c.face.unwrap()) <= 6 && d(orig.whole, c.whole) > 6);
    // Another photograph of another person: far on both.
    let other = photo(&embed(&a, "authentic-face-hopper.jpg", true).await);
    eprintln!(
        "another photograph: whole {} face {:?} close {:?}",
        d(orig.whole, other.whole),
        other.face.map(|f| d(of, f)),
        other.face_close.map(|f| d(oc, f))
    );
    assert!(d(orig.whole, other.whole) >= 16);
    assert!(d(of, other.face.unwrap()) >= 16);
    assert!(d(oc, other.face_close.unwrap()) >= 16);
    // No face: the whole-picture hash only.
    let coffee = photo(&embed(&a, "authentic-coffee.png", true).await);
    assert!(coffee.face.is_none() && coffee.face_close.is_none());
}
