//! Candor's analysis pipeline: decode an input, run the modality's front
//! end (speech activity for audio), route it to the detector for its
//! modality, and return one [`candor_core::AnalysisResult`].
//!
//! This crate knows about media decoding and the model engine, but nothing
//! about HTTP: the server and the CLI both drive an [`Analyzer`].

mod analyzer;
pub mod audio;
mod error;
mod fusion;
pub mod image;
pub mod livegate;
mod pngenc;
pub mod speech;
pub mod text;

pub use analyzer::{
    AnalyzeOptions, Analyzer, AnalyzerConfig, AnalyzerInfo, DetectContext, Detector,
    DetectorStatus, Finding, InputSource, Outcome, RawInput, VAD_MODEL,
};
pub use candor_engine::{Device, EngineConfig};
pub use error::AnalyzeError;
pub use fusion::LinearHead;
