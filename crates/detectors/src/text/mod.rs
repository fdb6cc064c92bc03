//! Text detector: LLM-generated resume text, with sentence-level evidence.
//!
//! Pipeline:
//! 1. sentences and prose ([`segment`]): bullets, lists of names/dates/
//!    keywords and headings are not prose;
//! 2. language check on the prose (`whatlang`): English only;
//! 3. one forward pass of the scoring language model (`candle-lm` backend,
//!    SmolLM2-135M) per window of at most `window_tokens` tokens; windows
//!    of all documents in flight are packed into shared batches by the
//!    engine's batcher;
//! 4. document features ([`features`]) over the tokens of prose sentences:
//!    mean log-probability, log-rank, entropy, Fast-DetectGPT analytic
//!    discrepancy, perplexity/entropy ratio, perplexity burstiness, sentence
//!    length burstiness, MATTR;
//!    (reported as signals, evidence for the reviewer);
//! 5. the head ([`hidden`]): a logistic regression trained by the project
//!    on the model's own hidden states averaged over the prose tokens
//!    (`models/text/hidden-head.json`), then the calibration artefact fitted
//!    by `candor calibrate` on a disjoint split: probability and thresholds;
//! 6. evidence: every prose sentence with enough tokens, with its character
//!    offsets and score (the same head on the sentence's own mean state);
//!    the `top_sentences` most machine-like carry their text.

pub mod features;
pub mod hidden;
pub mod segment;

use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use candor_core::{AbstainCode, Abstention, Evidence, Modality, ModelRef, Priority, Signal};
use candor_engine::{ModelHandle, NamedTensor, TensorData, TextTokenizer};
use candor_eval::calibrate::CalibrationArtefact;
use candor_media::Decoded;

use crate::analyzer::{DetectContext, Detector, DetectorStatus, Finding, Outcome};
use crate::AnalyzeError;
use features::{DocStyle, TokenStat, FEATURES};
use hidden::HiddenHead;
use segment::{CharIndex, Sentence};

/// Id of the scoring language model in `models/manifest.toml`.
pub const LM_MODEL: &str = "smollm2-135m-instruct-q4";
/// Head and calibration, relative to the manifest's folder.
pub const HEAD_FILE: &str = hidden::FILE;
pub const CALIBRATION_FILE: &str = "text/calibration.json";

/// Knobs of the text detector.
#[derive(Debug, Clone)]
pub struct TextConfig {
    /// Tokens per model window (context restarts at each window).
    pub window_tokens: usize,
    /// At most this many tokens of a document are scored (the rest is
    /// ignored and a warning says so).
    pub max_tokens: usize,
    /// Sentences whose text is quoted in the evidence.
    pub top_sentences: usize,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            window_tokens: 512,
            max_tokens: 1536,
            top_sentences: 5,
        }
    }
}

/// Language-model scoring of texts (no head): the part shared by the
/// detector and the training tools.
pub struct TextScorer {
    lm: ModelHandle,
    tokenizer: TextTokenizer,
    cfg: TextConfig,
}

/// What scoring one text gave.
#[derive(Debug, Clone)]
pub struct TextAnalysis {
    pub sentences: Vec<Sentence>,
    /// Statistics of the scored prose tokens (NaN statistics, sentence
    /// ids only, when `statistics` is false).
    pub tokens: Vec<TokenStat>,
    /// The language model returned its likelihood statistics (it does not
    /// when it stops at its deepest hidden-state tap).
    pub statistics: bool,
    /// The language model's tapped hidden states of the same tokens,
    /// `tokens.len() × hidden_width` (empty when the model has no taps).
    pub hidden: Vec<f32>,
    pub hidden_width: usize,
    pub style: DocStyle,
    /// Document features (`None` when abstained before scoring; the
    /// likelihood ones are NaN when the model gave no statistics).
    pub features: Option<[f64; 8]>,
    /// Why no decision is possible, when that is known before the head.
    pub abstain: Option<Abstention>,
    pub prose_words: usize,
    pub total_words: usize,
    pub warnings: Vec<String>,
    pub queue_ms: f64,
    pub inference_ms: f64,
}

fn stat_err(e: impl std::fmt::Display) -> AnalyzeError {
    AnalyzeError::Internal(format!("text scoring: {e}"))
}

impl TextScorer {
    pub fn new(lm: ModelHandle, cfg: TextConfig) -> Result<Self, AnalyzeError> {
        let tokenizer = TextTokenizer::from_gguf(lm.path())?;
        Ok(TextScorer { lm, tokenizer, cfg })
    }

    pub fn model_ref(&self) -> ModelRef {
        self.lm.model_ref()
    }

    /// Sentences, prose, language; then the language model over the text
    /// and the features of its prose tokens.
    pub async fn analyze(
        &self,
        text: &str,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<TextAnalysis, AnalyzeError> {
        let t0 = Instant::now();
        let sentences = segment::sentences(text);
        let prose: Vec<&Sentence> = sentences.iter().filter(|s| s.prose).collect();
        let prose_words: usize = prose.iter().map(|s| s.words).sum();
        let total_words: usize = sentences.iter().map(|s| s.words).sum();
        let mut a = TextAnalysis {
            sentences: sentences.clone(),
            tokens: Vec::new(),
            statistics: true,
            hidden: Vec::new(),
            hidden_width: 0,
            style: DocStyle::default(),
            features: None,
            abstain: None,
            prose_words,
            total_words,
            warnings: Vec::new(),
            queue_ms: 0.0,
            inference_ms: 0.0,
        };
        // Language first (on the prose, or on everything when there is no
        // prose): the prose rule itself only knows English function words.
        let prose_text: String = if prose.is_empty() {
            text.to_string()
        } else {
            prose
                .iter()
                .map(|s| &text[s.bytes.clone()])
                .collect::<Vec<_>>()
                .join(" ")
        };
        match whatlang::detect(&prose_text) {
            Some(info) => {
                // Without prose (keyword lists), only a reliable detection counts.
                let sure = !prose.is_empty() || info.is_reliable();
                if info.lang() != whatlang::Lang::Eng && info.confidence() >= 0.5 && sure {
                    a.abstain = Some(Abstention {
                        code: AbstainCode::UnsupportedLanguage,
                        reason: format!(
                            "the prose reads as {} (confidence {:.2}); the text detector is \
                             trained and calibrated on English only",
                            info.lang().eng_name(),
                            info.confidence()
                        ),
                    });
                    return Ok(a);
                }
            }
            None if !prose.is_empty() => {
                a.abstain = Some(Abstention {
                    code: AbstainCode::UnsupportedLanguage,
                    reason: "the language of the text could not be identified".into(),
                });
                return Ok(a);
            }
            None => {}
        }

        if prose.is_empty() {
            a.abstain = Some(Abstention {
                code: if total_words < 20 {
                    AbstainCode::TooShort
                } else {
                    AbstainCode::InsufficientProse
                },
                reason: format!(
                    "no prose sentences in {total_words} words (lists of names, dates and \
                     keywords say nothing about who wrote them)"
                ),
            });
            return Ok(a);
        }

        let words: Vec<String> = prose
            .iter()
            .flat_map(|s| segment::words(&text[s.bytes.clone()]))
            .collect();
        a.style = DocStyle {
            sentence_words: prose.iter().map(|s| s.words).collect(),
            mattr: segment::mattr(&words, 50),
        };

        let enc = self.tokenizer.encode(text)?;
        let n = enc.ids.len().min(self.cfg.max_tokens);
        if enc.ids.len() > n {
            a.warnings.push(format!(
                "text has {} tokens; only the first {n} were scored",
                enc.ids.len()
            ));
        }
        // Sentence of each token (by the token's last byte).
        let mut sent_of = vec![None; n];
        let mut si = 0;
        for (k, &(s, e)) in enc.offsets[..n].iter().enumerate() {
            let b = if e > s { e - 1 } else { s };
            while si < sentences.len() && sentences[si].bytes.end <= b {
                si += 1;
            }
            if si < sentences.len() && sentences[si].bytes.start <= b {
                sent_of[k] = Some(si);
            }
        }
        let windows = windows(&sent_of, self.cfg.window_tokens.max(16));
        let mut futs = Vec::with_capacity(windows.len());
        for w in &windows {
            let ids: Vec<i64> = enc.ids[w.clone()].iter().map(|&i| i as i64).collect();
            let pos: Vec<i64> = (0..ids.len() as i64).collect();
            // Statistics only for the tokens the features read (prose).
            let mask: Vec<i64> = w
                .clone()
                .map(|k| i64::from(sent_of[k].is_some_and(|s| sentences[s].prose)))
                .collect();
            let len = ids.len();
            let inputs = vec![
                NamedTensor::new(
                    "input_ids",
                    TensorData::i64_from_vec(&[len], ids).ok_or_else(|| stat_err("ids"))?,
                ),
                NamedTensor::new(
                    "position_ids",
                    TensorData::i64_from_vec(&[len], pos).ok_or_else(|| stat_err("pos"))?,
                ),
                NamedTensor::new(
                    "score_mask",
                    TensorData::i64_from_vec(&[len], mask).ok_or_else(|| stat_err("mask"))?,
                ),
            ];
            futs.push(self.lm.infer(inputs, priority, deadline));
        }
        let outs = futures_util::future::join_all(futs).await;
        let mut exec_ms: f64 = 0.0;
        for (w, out) in windows.iter().zip(outs) {
            let out = out?;
            a.queue_ms = a.queue_ms.max(out.queue_ms);
            exec_ms = exec_ms.max(out.exec_ms);
            let get = |name: &str| -> Result<Vec<f32>, AnalyzeError> {
                out.outputs
                    .iter()
                    .find(|t| t.name == name)
                    .and_then(|t| t.data.as_f32())
                    .map(|a| a.iter().copied().collect())
                    .ok_or_else(|| stat_err(format!("model output `{name}` missing")))
            };
            // Statistics are absent when the model stops at its deepest tap
            // (`--text-signals` off): the head reads hidden states only.
            let has_stats = out.outputs.iter().any(|t| t.name == "logprob");
            a.statistics &= has_stats;
            let (lp, ent, rank, var) = if has_stats {
                (
                    get("logprob")?,
                    get("entropy")?,
                    get("rank")?,
                    get("logprob_var")?,
                )
            } else {
                let nan = vec![f32::NAN; w.len()];
                (nan.clone(), nan.clone(), nan.clone(), nan)
            };
            if lp.len() != w.len() {
                return Err(stat_err("model output length differs from its input"));
            }
            let hidden = out
                .outputs
                .iter()
                .find(|t| t.name == candor_engine::backend::causal_lm::HIDDEN_OUTPUT)
                .and_then(|t| t.data.as_f32())
                .map(|h| h.as_standard_layout().iter().copied().collect::<Vec<f32>>());
            let hidden = hidden.as_deref();
            let hw = hidden.map_or(0, |h| h.len() / w.len().max(1));
            if hidden.is_some_and(|h| h.len() != hw * w.len()) {
                return Err(stat_err("hidden-state output does not match its input"));
            }
            a.hidden_width = hw;
            for (j, k) in w.clone().enumerate().skip(1) {
                if let Some(s) = sent_of[k].filter(|&s| sentences[s].prose) {
                    if let Some(h) = hidden {
                        a.hidden.extend_from_slice(&h[j * hw..(j + 1) * hw]);
                    }
                    a.tokens.push(TokenStat {
                        logprob: lp[j],
                        entropy: ent[j],
                        rank: rank[j],
                        var: var[j],
                        sentence: s,
                    });
                }
            }
        }
        // Without statistics the five likelihood features are NaN and only
        // the style features are numbers.
        a.features = features::features(&a.tokens, &a.style);
        a.inference_ms = (t0.elapsed().as_secs_f64() * 1e3 - a.queue_ms).max(0.0);
        Ok(a)
    }
}

/// Cuts `0..n` into windows of at most `max` tokens, preferring to cut
/// where a new sentence starts (in the second half of a window).
fn windows(sent_of: &[Option<usize>], max: usize) -> Vec<std::ops::Range<usize>> {
    let n = sent_of.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = (start + max).min(n);
        if end < n {
            let lo = start + max / 2;
            if let Some(cut) = (lo..end)
                .rev()
                .find(|&k| sent_of[k].is_some() && sent_of[k] != sent_of[k - 1])
            {
                end = cut;
            }
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// The text detector: scorer + hidden-state head + calibration.
pub struct TextDetector {
    scorer: TextScorer,
    head: HiddenHead,
    head_sha256: String,
    calibration: CalibrationArtefact,
    cfg: TextConfig,
}

/// Where the text detector's committed files are, for a manifest path.
pub fn default_files(manifest: &Path) -> (PathBuf, PathBuf) {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    (dir.join(HEAD_FILE), dir.join(CALIBRATION_FILE))
}

impl TextDetector {
    /// Builds the detector from the loaded language model and the head and
    /// calibration files.
    pub fn load(
        lm: ModelHandle,
        head: &Path,
        calibration: &Path,
        cfg: TextConfig,
    ) -> Result<Self, String> {
        let head_bytes =
            std::fs::read(head).map_err(|e| format!("head {}: {e}", head.display()))?;
        let head_sha256 = candor_core::sha256_hex(&head_bytes);
        let head = HiddenHead::from_slice(&head_bytes)
            .map_err(|e| format!("head {}: {e}", head.display()))?;
        let model_taps = lm
            .spec()
            .lm
            .as_ref()
            .map(|l| l.hidden_taps.clone())
            .unwrap_or_default();
        head.matches_model(&model_taps)?;
        let calibration = CalibrationArtefact::load(calibration)
            .map_err(|e| format!("calibration {}: {e}", calibration.display()))?;
        if calibration.detector != "text" {
            return Err(format!(
                "calibration `{}` is for detector `{}`, not `text`",
                calibration.id, calibration.detector
            ));
        }
        let scorer = TextScorer::new(lm, cfg.clone()).map_err(|e| e.to_string())?;
        Ok(TextDetector {
            scorer,
            head,
            head_sha256,
            calibration,
            cfg,
        })
    }

    fn models(&self) -> Vec<ModelRef> {
        vec![
            self.scorer.model_ref(),
            ModelRef {
                id: self.head.id.clone(),
                version: self.head.version.clone(),
                sha256: Some(self.head_sha256.clone()),
            },
            self.calibration.model_ref(),
        ]
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[async_trait]
impl Detector for TextDetector {
    fn modality(&self) -> Modality {
        Modality::Text
    }

    fn status(&self) -> DetectorStatus {
        DetectorStatus {
            modality: Modality::Text,
            installed: true,
            name: Some(format!("{} + {}", LM_MODEL, self.head.id)),
            version: Some(self.head.version.clone()),
            reason: None,
            trained_on: Some(self.head.trained_on.clone()),
        }
    }

    async fn detect(&self, input: &Decoded, ctx: &DetectContext) -> Result<Finding, AnalyzeError> {
        let Decoded::Document(doc) = input else {
            return Err(AnalyzeError::Internal(
                "text detector given a non-document input".into(),
            ));
        };
        let a = self
            .scorer
            .analyze(&doc.text, ctx.priority, Some(ctx.deadline))
            .await?;
        let mut finding = Finding {
            outcome: Outcome::Abstain(Abstention {
                code: AbstainCode::TooShort,
                reason: String::new(),
            }),
            signals: Vec::new(),
            evidence: Vec::new(),
            models: self.models(),
            warnings: a.warnings.clone(),
            queue_ms: a.queue_ms,
            inference_ms: a.inference_ms,
            identity: None,
        };
        if let Some(ab) = a.abstain.clone() {
            finding.outcome = Outcome::Abstain(ab);
            return Ok(finding);
        }
        let n = a.tokens.len();
        if n < self.head.min_prose_tokens {
            let prose_share = a.prose_words as f64 / a.total_words.max(1) as f64;
            finding.outcome = Outcome::Abstain(Abstention {
                code: if prose_share < 0.35 {
                    AbstainCode::InsufficientProse
                } else {
                    AbstainCode::TooShort
                },
                reason: format!(
                    "{n} tokens of prose ({} of {} words are prose); at least {} are needed \
                     for the calibrated false-positive rate to hold",
                    a.prose_words, a.total_words, self.head.min_prose_tokens
                ),
            });
            return Ok(finding);
        }
        let Some(pooled) = features::pool_hidden(&a.hidden, a.hidden_width, 0..n) else {
            return Err(stat_err("the language model returned no hidden states"));
        };
        if !a.statistics && !self.head.zero_shot.is_empty() {
            return Err(stat_err(format!(
                "the head `{}` reads zero-shot features ({}), but the language model runs \
                 without likelihood statistics: enable them (--text-signals)",
                self.head.id,
                self.head.zero_shot.join(", ")
            )));
        }
        let raw = self.head.raw(&pooled, a.features.as_ref());
        let probability = self.calibration.apply(raw);
        if let Some(x) = &a.features {
            for (i, name) in FEATURES.iter().enumerate() {
                if !x[i].is_finite() {
                    continue;
                }
                let used = self.head.zero_shot.iter().any(|z| z == name);
                finding.signals.push(Signal {
                    name: (*name).to_string(),
                    value: round4(x[i]),
                    probability: None,
                    detail: Some(format!(
                        "{}{}",
                        features::describe(name),
                        if used {
                            "; read by the head"
                        } else {
                            " (evidence for the reviewer; not part of the score)"
                        }
                    )),
                });
            }
        }
        finding.signals.push(Signal {
            name: "head.raw".into(),
            value: round4(raw),
            probability: Some(round4(probability)),
            detail: Some(format!(
                "log-odds of the head `{}` v{} on the language model's mean hidden state over \
                 {n} prose tokens, before calibration `{}`",
                self.head.id, self.head.version, self.calibration.id
            )),
        });

        // Sentence evidence: the head on each sentence's own mean state.
        let ci = CharIndex::new(&doc.text);
        let mut per: Vec<(usize, f64)> = Vec::new();
        let mut s = 0;
        while s < a.tokens.len() {
            let sid = a.tokens[s].sentence;
            let e = s + a.tokens[s..]
                .iter()
                .take_while(|t| t.sentence == sid)
                .count();
            if e - s >= self.head.min_sentence_tokens {
                if let Some(p) = features::pool_hidden(&a.hidden, a.hidden_width, s..e) {
                    per.push((sid, self.calibration.apply(self.head.raw(&p, None))));
                }
            }
            s = e;
        }
        let mut top: Vec<(usize, f64)> = per.clone();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<usize> = top
            .iter()
            .take(self.cfg.top_sentences)
            .map(|t| t.0)
            .collect();
        for (sid, p) in per {
            let sent = &a.sentences[sid];
            let body = &doc.text[sent.bytes.clone()];
            finding.evidence.push(Evidence::TextSpan {
                start: ci.char_at(sent.bytes.start),
                end: ci.char_at(sent.bytes.end),
                score: Some(round4(p)),
                text: top.contains(&sid).then(|| body.chars().take(300).collect()),
            });
        }
        finding.outcome = Outcome::Score {
            probability,
            thresholds: self.calibration.thresholds.clone(),
        };
        Ok(finding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_everything_and_prefer_sentence_starts() {
        let sent_of: Vec<Option<usize>> = (0..100).map(|k| Some(k / 30)).collect();
        let w = windows(&sent_of, 40);
        assert_eq!(w.first().unwrap().start, 0);
        assert_eq!(w.last().unwrap().end, 100);
        for pair in w.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(w.iter().all(|r| r.len() <= 40));
        // First cut lands on the start of sentence 1 (token 30).
        assert_eq!(w[0], 0..30);
    }
}
