//! The image detector's provenance layer on files made here: an
//! AI-declaring XMP packet in a JPEG and generator parameters in a PNG are
//! decisive; a plain photo abstains with its reason and never gets a score.
//! Also reads the public C2PA test files when `../shared` is present.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

mod common;

use candor_core::{AbstainCode, AnalysisResult, Evidence, Label};
use candor_detectors::image::ImageDetector;
use candor_detectors::{Analyzer, AnalyzerConfig};
use common::analyze_bytes;

fn analyzer() -> Analyzer {
    let mut a = Analyzer::new(AnalyzerConfig::default());
    a.add_detector(Arc::new(ImageDetector::provenance_only(Default::default())));
    a
}

fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 80, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// `jpeg` with an XMP APP1 segment right after SOI.
fn jpeg_with_xmp(packet: &str) -> Vec<u8> {
    let j = jpeg();
    let mut payload = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    payload.extend_from_slice(packet.as_bytes());
    let len = (payload.len() + 2) as u16;
    let mut out = j[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&j[2..]);
    out
}

fn png_with_text(keyword: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 80, 80);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk(keyword.into(), text.into()).unwrap();
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[128u8; 80 * 80 * 3]).unwrap();
    }
    out
}

const XMP_AI: &str = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>"#;

#[tokio::test]
async fn declarations_are_decisive_and_absence_is_not_evidence() {
    let a = analyzer();
    let r = analyze_bytes(&a, "ai.jpg", jpeg_with_xmp(XMP_AI)).await;
    assert_eq!(r.score, Some(1.0), "{r:?}");
    assert_eq!(r.label, Some(Label::LikelyManipulated));
    assert!(r.evidence.iter().any(|e| matches!(e,
        Evidence::Fact { name, value, .. } if name == "iptc.digital_source_type" && value == "trainedAlgorithmicMedia")));
    assert_eq!(r.models[0].id, "image-provenance-rules");

    let r = analyze_bytes(
        &a,
        "sd.png",
        png_with_text(
            "parameters",
            "portrait photo\nSteps: 28, Sampler: Euler a, CFG scale: 6",
        ),
    )
    .await;
    assert_eq!(r.label, Some(Label::LikelyManipulated), "{r:?}");

    // A camera-capture declaration, an editor, or nothing at all: no score.
    let capture = XMP_AI.replace("trainedAlgorithmicMedia", "digitalCapture");
    for (name, bytes) in [
        ("capture.jpg", jpeg_with_xmp(&capture)),
        ("plain.jpg", jpeg()),
        ("edited.png", png_with_text("Software", "GIMP 2.10")),
    ] {
        let r = analyze_bytes(&a, name, bytes).await;
        assert_eq!(r.score, None, "{name}: {r:?}");
        let ab = r.abstention.unwrap();
        assert_eq!(ab.code, AbstainCode::DetectorNotInstalled);
        assert!(ab.reason.contains("not evidence"), "{}", ab.reason);
    }
}

/// A JPEG signed here with an ephemeral certificate, its manifest saying
/// the picture was made by a trained model.
fn signed_ai_jpeg() -> Vec<u8> {
    let def = serde_json::json!({
        "claim_generator_info": [{"name": "candor-test", "version": "1"}],
        "title": "generated.jpg",
        "format": "image/jpeg",
        "assertions": [{
            "label": "c2pa.actions",
            "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
            }]}
        }]
    });
    #[allow(deprecated)]
    let mut builder = c2pa::Builder::from_json(&def.to_string()).unwrap();
    let signer = c2pa::EphemeralSigner::new("candor-test.local").unwrap();
    let mut src = Cursor::new(jpeg());
    let mut dst = Cursor::new(Vec::new());
    builder
        .sign(&signer, "image/jpeg", &mut src, &mut dst)
        .unwrap();
    dst.into_inner()
}

#[tokio::test]
async fn a_signed_ai_declaration_is_validated_and_decisive() {
    let a = analyzer();
    let signed = signed_ai_jpeg();
    let r = analyze_bytes(&a, "signed-ai.jpg", signed.clone()).await;
    let fact = |r: &AnalysisResult, n: &str| {
        r.evidence.iter().find_map(|e| match e {
            Evidence::Fact { name, value, .. } if name == n => Some(value.clone()),
            _ => None,
        })
    };
    assert_eq!(
        fact(&r, "c2pa.validation_state").as_deref(),
        Some("valid"),
        "{r:?}"
    );
    assert_eq!(
        fact(&r, "c2pa.digital_source_type").as_deref(),
        Some("trainedAlgorithmicMedia")
    );
    assert_eq!(r.label, Some(Label::LikelyManipulated));
    // Tampering with the pixels after signing breaks the hard binding.
    let mut tampered = signed;
    let n = tampered.len();
    tampered[n - 200] ^= 0x55;
    let r = analyze_bytes(&a, "tampered.jpg", tampered).await;
    assert!(
        fact(&r, "c2pa.validation_state").is_some_and(|s| s.starts_with("invalid")),
        "{r:?}"
    );
}

#[tokio::test]
async fn public_c2pa_files_are_seen_as_carrying_credentials() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/eval/images/c2pa/image/jpeg");
    if !dir.is_dir() {
        eprintln!("SKIP: {} not present", dir.display());
        return;
    }
    let a = analyzer();
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".jpg") && !name.ends_with(".jpeg") {
            continue;
        }
        let r = analyze_bytes(&a, &name, std::fs::read(&p).unwrap()).await;
        let has = r
            .evidence
            .iter()
            .any(|e| matches!(e, Evidence::Fact { name, .. } if name == "c2pa.manifest_present"));
        // A.jpg and I.jpg carry no credentials; every other file does.
        let stem = name.trim_end_matches(".jpg");
        let expect = !(stem.ends_with("-A") || stem.ends_with("-I"));
        assert_eq!(has, expect, "{name}");
        // Names say the validation state: E-* (errors), X* (incomplete) and
        // the Nikon file (claim signature mismatch) are invalid; the other
        // Adobe and Truepic files valid. CIE-sig-CA: a valid active manifest
        // whose ingredient `I` carries an invalid signature.
        let state = r.evidence.iter().find_map(|e| match e {
            Evidence::Fact { name, value, .. } if name == "c2pa.validation_state" => {
                Some(value.clone())
            }
            _ => None,
        });
        if expect {
            let invalid = name.contains("-E-") || name.contains("-X") || name.starts_with("nikon");
            let bad_ingredient = r.evidence.iter().any(
                |e| matches!(e, Evidence::Fact { name, .. } if name == "c2pa.ingredient_invalid"),
            );
            if !invalid {
                assert_eq!(bad_ingredient, name.contains("IE-sig"), "{name}");
            }
            let state = state.unwrap_or_default();
            assert_eq!(state.starts_with("invalid"), invalid, "{name}: {state}");
            if !invalid {
                assert_eq!(state, "valid", "{name}");
            }
        }
        // None of the public files declares AI generation.
        assert_ne!(r.label, Some(Label::LikelyManipulated), "{name}");
        seen += 1;
    }
    assert!(seen >= 20, "{seen} files");
}
