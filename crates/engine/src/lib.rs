//! Candor's model engine.
//!
//! * [`manifest`]: the model registry file (`models/manifest.toml`) and
//!   start-up sha256 verification.
//! * [`backend`]: the [`Backend`] trait, with an ONNX Runtime implementation
//!   ([`backend::onnx`], library loaded at run time from
//!   `$CANDOR_HOME/onnxruntime/lib` or `$ORT_DYLIB_PATH`) and a candle one
//!   for small safetensors heads ([`backend::candle`]) and quantized GGUF
//!   causal language models used for text scoring ([`backend::causal_lm`],
//!   tokenizer rebuilt from the same file by [`tokenizer`]).
//! * [`batcher`]: the per-model dynamic batcher (bounded three-class queue,
//!   `max_batch` / `max_wait`, deadlines, cancellation), running models on
//!   dedicated OS threads.
//! * [`Engine`]: loads all of the above and hands out [`ModelHandle`]s whose
//!   [`ModelHandle::infer`] is an ordinary future usable from tokio.
//!
//! # Metrics
//!
//! Through the `metrics` facade (the server installs an exporter):
//! `candor_engine_queue_depth{model,priority}` (gauge),
//! `candor_engine_batch_size{model}` (histogram, items),
//! `candor_engine_queue_wait_seconds{model,priority}` (histogram),
//! `candor_engine_exec_seconds{model}` (histogram),
//! `candor_engine_requests_total{model,priority,outcome}` (counter; outcome
//! is `ok`, `overloaded`, `deadline`, `cancelled` or `error`).

pub mod backend;
pub mod batcher;
mod engine;
pub mod error;
pub mod manifest;
pub mod tensor;
pub mod tokenizer;

#[cfg(test)]
pub(crate) mod testutil;

pub use backend::{Backend, Device};
pub use batcher::{BatchConfig, Batcher, InferOutput};
pub use engine::{
    Engine, EngineConfig, EngineInfo, ModelHandle, ModelInfo, QueueDepth, RuntimeInfo,
};
pub use error::{EngineError, Result};
pub use manifest::{Manifest, ModelSpec};
pub use tensor::{DType, NamedTensor, TensorData};
pub use tokenizer::{Encoded, TextTokenizer};
