//! Image detector — first layer: provenance from the file's own metadata.
//!
//! What it does now ([`provenance`]): reads the IPTC digital source type
//! (XMP), generator text in PNG chunks, generator and editor names in EXIF
//! `Software` / XMP `CreatorTool`, and the C2PA manifest store (validation
//! state, claim generator, signer, digital source type).
//! A file that **declares** AI generation is scored 1.0 (`likely_manipulated`):
//! the declaration is decisive, it is the file's own statement, not a model
//! estimate. Every other image abstains with the facts found as evidence:
//! missing metadata is not evidence of anything, and the face-forgery,
//! generation-probe and forensic signals are not built yet (so no score is
//! made up for them).

pub mod provenance;

use async_trait::async_trait;
use candor_core::{AbstainCode, Abstention, Evidence, Modality, ModelRef, Signal, Thresholds};
use candor_media::Decoded;

use crate::analyzer::{DetectContext, Detector, DetectorStatus, Finding, Outcome};
use crate::AnalyzeError;

/// Id and version of the provenance rules (shown with every image result).
pub const RULES_ID: &str = "image-provenance-rules";
pub const RULES_VERSION: &str = "1";

/// The image detector (provenance layer).
#[derive(Debug, Default)]
pub struct ImageDetector;

/// Thresholds of a declaration: it is decisive, and its absence never
/// labels an image authentic.
fn thresholds() -> Thresholds {
    Thresholds {
        authentic_below: 0.0,
        manipulated_at_or_above: 1.0,
        target_fpr: 0.0,
    }
}

#[async_trait]
impl Detector for ImageDetector {
    fn modality(&self) -> Modality {
        Modality::Image
    }

    fn status(&self) -> DetectorStatus {
        DetectorStatus {
            modality: Modality::Image,
            installed: true,
            name: Some(format!("{RULES_ID} (metadata provenance only)")),
            version: Some(RULES_VERSION.into()),
            reason: Some(
                "provenance only: AI-generation declarations in metadata are decisive; \
                 face-forgery, generation-probe and forensic signals are not built yet"
                    .into(),
            ),
        }
    }

    async fn detect(&self, input: &Decoded, _ctx: &DetectContext) -> Result<Finding, AnalyzeError> {
        let Decoded::Image(img) = input else {
            return Err(AnalyzeError::Internal(
                "image detector given a non-image input".into(),
            ));
        };
        let t = std::time::Instant::now();
        let p = provenance::inspect(&img.metadata);
        let mut finding = Finding {
            outcome: Outcome::Abstain(Abstention {
                code: AbstainCode::DetectorNotInstalled,
                reason: String::new(),
            }),
            signals: vec![
                Signal {
                    name: "provenance.ai_declared".into(),
                    value: f64::from(u8::from(p.ai_declared.is_some())),
                    probability: None,
                    detail: Some(
                        p.ai_declared
                            .clone()
                            .unwrap_or_else(|| "no AI-generation declaration found".into()),
                    ),
                },
                Signal {
                    name: "provenance.edited".into(),
                    value: f64::from(u8::from(p.edited_with.is_some())),
                    probability: None,
                    detail: Some(match &p.edited_with {
                        Some(e) => format!(
                            "editing software named: {e} (not evidence of AI; most headshots are retouched)"
                        ),
                        None => "no editing software named".into(),
                    }),
                },
            ],
            evidence: p
                .facts
                .iter()
                .map(|f| Evidence::Fact {
                    name: f.name.clone(),
                    value: f.value.clone(),
                    source: Some(f.source.clone()),
                })
                .collect(),
            models: vec![ModelRef {
                id: RULES_ID.into(),
                version: RULES_VERSION.into(),
                sha256: None,
            }],
            warnings: Vec::new(),
            queue_ms: 0.0,
            inference_ms: 0.0,
        };
        finding.outcome = match &p.ai_declared {
            Some(_) => Outcome::Score {
                probability: 1.0,
                thresholds: thresholds(),
            },
            None => Outcome::Abstain(Abstention {
                code: AbstainCode::DetectorNotInstalled,
                reason: "no AI-generation declaration in the file's metadata (missing metadata \
                         is not evidence either way); the image detector's face-forgery, \
                         generation and forensic signals are not built yet"
                    .into(),
            }),
        };
        finding.inference_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok(finding)
    }
}
