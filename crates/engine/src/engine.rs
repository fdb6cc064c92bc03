//! The registry: loads the manifest, verifies files, creates backends and
//! batchers, and hands out [`ModelHandle`]s.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candor_core::{ModelRef, Priority};
use serde::Serialize;

use crate::backend::candle::MlpHead;
use crate::backend::causal_lm::CausalLm;
use crate::backend::onnx::{self, OnnxBackend, OnnxOptions, OrtRuntime};
use crate::backend::{Backend, Device};
use crate::batcher::{BatchConfig, Batcher, InferOutput};
use crate::error::{EngineError, Result};
use crate::manifest::{BackendKind, BatchingSpec, InputSpec, Manifest, ModelSpec, OutputSpec};
use crate::tensor::{DType, NamedTensor};

/// How to load the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Root of downloaded artefacts (`$CANDOR_HOME`, default `.candor`).
    pub home: PathBuf,
    /// The manifest (default `models/manifest.toml`).
    pub manifest: PathBuf,
    /// Root for `source = { committed = ... }` paths; default: the
    /// manifest's grandparent (`models/manifest.toml` → `.`).
    pub repo_root: Option<PathBuf>,
    /// Load only these model ids (`None` = every model in the manifest).
    /// Ids not in the manifest are a warning.
    pub models: Option<Vec<String>>,
    /// Ids that must load; a missing file or runtime for them is an error
    /// instead of a warning.
    pub required: Vec<String>,
    /// Execution device.
    pub device: Device,
    /// Intra-op threads per ONNX session (default: available cores).
    pub intra_threads: Option<usize>,
    /// Let ONNX sessions' intra-op threads spin-wait for the next operator
    /// instead of sleeping (ONNX Runtime's own default is to spin), for
    /// every model (`Some`), or as each model's manifest entry says
    /// (`None`, the default; a model without `intra_spinning` sleeps).
    /// Spinning saves a wake-up per operator when one model runs alone on
    /// idle cores, but an analysis runs several models one after another,
    /// each with its own thread pool: the previous model's spinning
    /// threads then take the cores from the next.
    pub intra_spinning: Option<bool>,
    /// Batching overrides applied to every model (after the manifest's).
    pub batching: BatchingSpec,
    /// Per-model batching overrides (applied last).
    pub overrides: BTreeMap<String, BatchingSpec>,
    /// Verify every model file's sha256 at start-up (default true).
    pub verify_hashes: bool,
    /// Run language models on CPU through OpenBLAS when the library is
    /// installed (default true; see [`crate::backend::blas`]).
    pub cpu_blas: bool,
    /// Overrides `[model.lm] statistics` for every language model with
    /// hidden-state taps: `Some(false)` stops the forward pass at the
    /// deepest tap (no likelihood statistics; the text detector then gives
    /// no zero-shot signals), `Some(true)` always computes them.
    pub lm_statistics: Option<bool>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            home: PathBuf::from(".candor"),
            manifest: PathBuf::from("models/manifest.toml"),
            repo_root: None,
            models: None,
            required: Vec::new(),
            device: Device::Auto,
            intra_threads: None,
            intra_spinning: None,
            batching: BatchingSpec::default(),
            overrides: BTreeMap::new(),
            verify_hashes: true,
            cpu_blas: true,
            lm_statistics: None,
        }
    }
}

impl EngineConfig {
    /// Defaults, with `home` from `$CANDOR_HOME` when set.
    pub fn from_env() -> Self {
        let mut c = EngineConfig::default();
        if let Some(h) = std::env::var_os("CANDOR_HOME").filter(|h| !h.is_empty()) {
            c.home = PathBuf::from(h);
        }
        c
    }

    fn repo_root(&self) -> PathBuf {
        self.repo_root.clone().unwrap_or_else(|| {
            self.manifest
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
    }
}

/// What `/info` shows about one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Model id.
    pub id: String,
    /// Version.
    pub version: String,
    /// Verified sha256 of the weights file.
    pub sha256: String,
    /// Resolved path of the weights file (empty for hand-built handles).
    pub path: PathBuf,
    /// `onnx` or `candle` (or a test backend's name).
    pub backend: String,
    /// Licence of the weights.
    pub licence: String,
    /// What the model does.
    pub task: String,
    /// Device in use.
    pub device: String,
    /// Effective batching parameters.
    pub batching: BatchConfig,
    /// Requests waiting now.
    pub queue_depth: QueueDepth,
}

/// Requests waiting, per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Live class.
    pub live: usize,
    /// Upload class.
    pub upload: usize,
    /// Bulk class.
    pub bulk: usize,
}

/// A loaded runtime library (ONNX Runtime, OpenBLAS).
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeInfo {
    /// Library path.
    pub library: PathBuf,
    /// Library version.
    pub version: String,
}

/// Serialisable engine description for `/info`.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    /// Device(s) in use: `cpu`, `cuda:0`, or a comma-separated list.
    pub device: String,
    /// ONNX Runtime, when loaded.
    pub onnxruntime: Option<RuntimeInfo>,
    /// OpenBLAS, when a language model runs on it (version = its build
    /// string, with the kernel family chosen for this CPU).
    pub openblas: Option<RuntimeInfo>,
    /// Loaded models.
    pub models: Vec<ModelInfo>,
    /// Start-up warnings (models skipped and why).
    pub warnings: Vec<String>,
}

struct ModelInner {
    spec: ModelSpec,
    path: PathBuf,
    extra_files: Vec<PathBuf>,
    backend_name: &'static str,
    batcher: Batcher,
}

/// A loaded model. Cheap to clone.
#[derive(Clone)]
pub struct ModelHandle(Arc<ModelInner>);

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle")
            .field("id", &self.0.spec.id)
            .field("batcher", &self.0.batcher)
            .finish()
    }
}

impl ModelHandle {
    /// Builds a handle around any backend (tests, custom models).
    pub fn new(spec: ModelSpec, backend: Arc<dyn Backend>, cfg: BatchConfig) -> Result<Self> {
        Self::with_paths(spec, backend, cfg, PathBuf::new(), Vec::new())
    }

    fn with_paths(
        spec: ModelSpec,
        backend: Arc<dyn Backend>,
        cfg: BatchConfig,
        path: PathBuf,
        extra_files: Vec<PathBuf>,
    ) -> Result<Self> {
        let backend_name = backend.name();
        let batcher = Batcher::new(
            spec.id.clone(),
            spec.inputs.clone(),
            spec.outputs.clone(),
            backend,
            cfg,
        )?;
        Ok(ModelHandle(Arc::new(ModelInner {
            spec,
            path,
            extra_files,
            backend_name,
            batcher,
        })))
    }

    /// The manifest entry (id, version, sha256, inputs, ...).
    pub fn spec(&self) -> &ModelSpec {
        &self.0.spec
    }

    /// Verified path of the weights file (empty for hand-built handles).
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Verified path of the `[[model.extra_files]]` entry whose `file`
    /// ends with `name` (e.g. `clip_head.json`).
    pub fn extra_file(&self, name: &str) -> Option<&Path> {
        self.0
            .extra_files
            .iter()
            .find(|p| p.ends_with(name))
            .map(PathBuf::as_path)
    }

    /// The reference to put in a result's `models` list.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            id: self.0.spec.id.clone(),
            version: self.0.spec.version.clone(),
            sha256: Some(self.0.spec.sha256.clone()),
        }
    }

    /// Device in use.
    pub fn device(&self) -> String {
        self.0.batcher.device()
    }

    /// Effective batching parameters.
    pub fn batching(&self) -> &BatchConfig {
        self.0.batcher.config()
    }

    /// Requests waiting now.
    pub fn queue_depth(&self) -> QueueDepth {
        let [live, upload, bulk] = self.0.batcher.queue_depths();
        QueueDepth { live, upload, bulk }
    }

    /// Submits a request and returns a future for its result.
    ///
    /// Admission errors (bad input, queue full) are decided here,
    /// synchronously; the future then resolves to them at once. Dropping
    /// the future withdraws the request (it is skipped, not run). The
    /// deadline is checked when the request is dequeued; the future does
    /// not start a timer of its own.
    pub fn infer(
        &self,
        inputs: Vec<NamedTensor>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<InferOutput>> + Send + 'static {
        let rx = self.0.batcher.submit(inputs, priority, deadline);
        let model = self.0.spec.id.clone();
        async move {
            match rx {
                Err(e) => Err(e),
                Ok(rx) => rx.await.unwrap_or(Err(EngineError::ShuttingDown(model))),
            }
        }
    }

    /// Blocking variant of [`ModelHandle::infer`] for synchronous callers.
    /// Must not be called from inside an async runtime's worker thread.
    pub fn infer_blocking(
        &self,
        inputs: Vec<NamedTensor>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<InferOutput> {
        let rx = self.0.batcher.submit(inputs, priority, deadline)?;
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(EngineError::ShuttingDown(self.0.spec.id.clone())))
    }

    fn info(&self) -> ModelInfo {
        let s = &self.0.spec;
        ModelInfo {
            id: s.id.clone(),
            version: s.version.clone(),
            sha256: s.sha256.clone(),
            path: self.0.path.clone(),
            backend: self.0.backend_name.to_string(),
            licence: s.licence.clone(),
            task: s.task.clone(),
            device: self.device(),
            batching: self.batching().clone(),
            queue_depth: self.queue_depth(),
        }
    }
}

/// The model registry.
#[derive(Debug, Default)]
pub struct Engine {
    models: BTreeMap<String, ModelHandle>,
    runtime: Option<RuntimeInfo>,
    blas: Option<RuntimeInfo>,
    warnings: Vec<String>,
}

fn with_defaults(spec: &mut ModelSpec) {
    if spec.backend == BackendKind::CandleLm {
        if spec.inputs.is_empty() {
            for name in ["input_ids", "position_ids", "score_mask"] {
                spec.inputs.push(InputSpec {
                    name: name.into(),
                    dtype: DType::I64,
                    shape: Some(vec![-1]),
                    batch_axis: Some(0),
                });
            }
        }
        if spec.outputs.is_empty() {
            for name in crate::backend::causal_lm::OUTPUTS {
                spec.outputs.push(OutputSpec {
                    name: name.into(),
                    batch_axis: Some(0),
                });
            }
            if spec.lm.as_ref().is_some_and(|l| !l.hidden_taps.is_empty()) {
                spec.outputs.push(OutputSpec {
                    name: crate::backend::causal_lm::HIDDEN_OUTPUT.into(),
                    batch_axis: Some(0),
                });
            }
        }
    }
    if spec.backend == BackendKind::Candle {
        if spec.inputs.is_empty() {
            spec.inputs.push(InputSpec {
                name: "features".into(),
                dtype: DType::F32,
                shape: None,
                batch_axis: Some(0),
            });
        }
        if spec.outputs.is_empty() {
            spec.outputs.push(OutputSpec {
                name: "probabilities".into(),
                batch_axis: Some(0),
            });
        }
    }
}

impl Engine {
    /// Reads the manifest, verifies hashes, loads backends, starts batchers.
    ///
    /// Models whose file (or runtime library) is missing are skipped with a
    /// warning unless listed in `config.required`. A hash mismatch or a
    /// backend failure is always an error.
    pub fn load(config: EngineConfig) -> Result<Engine> {
        let manifest = Manifest::load(&config.manifest)?;
        let repo_root = config.repo_root();
        let mut engine = Engine::default();
        let warn = |engine: &mut Engine, msg: String| {
            tracing::warn!("{msg}");
            engine.warnings.push(msg);
        };
        if let Some(ids) = &config.models {
            for id in ids {
                if manifest.model(id).is_none() {
                    let msg = format!("model `{id}` is not in {}", config.manifest.display());
                    if config.required.contains(id) {
                        return Err(EngineError::ModelNotLoaded(msg));
                    }
                    warn(&mut engine, msg);
                }
            }
        }
        let threads = config.intra_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let mut rt: Option<OrtRuntime> = None;
        for spec in &manifest.models {
            if config
                .models
                .as_ref()
                .is_some_and(|ids| !ids.contains(&spec.id))
            {
                continue;
            }
            let required = config.required.contains(&spec.id);
            let mut spec = spec.clone();
            with_defaults(&mut spec);
            let path = spec.resolve_path(&config.home, &repo_root);
            if !path.is_file() {
                let e = EngineError::ModelFileMissing {
                    model: spec.id.clone(),
                    path,
                };
                if required {
                    return Err(e);
                }
                warn(&mut engine, format!("skipping model: {e}"));
                continue;
            }
            let extras = spec.resolve_extra(&config.home, &repo_root);
            if let Some((p, _)) = extras.iter().find(|(p, _)| !p.is_file()) {
                let e = EngineError::ModelFileMissing {
                    model: spec.id.clone(),
                    path: p.clone(),
                };
                if required {
                    return Err(e);
                }
                warn(&mut engine, format!("skipping model: {e}"));
                continue;
            }
            if config.verify_hashes {
                crate::manifest::verify_sha256(&path, &spec.sha256)?;
                for (p, sha) in &extras {
                    crate::manifest::verify_sha256(p, sha)?;
                }
            }
            let mut cfg = BatchConfig::default()
                .with_spec(&spec.batching)
                .with_spec(&config.batching);
            if let Some(o) = config.overrides.get(&spec.id) {
                cfg = cfg.with_spec(o);
            }
            let backend: Arc<dyn Backend> = match spec.backend {
                BackendKind::Onnx => {
                    let r = match &rt {
                        Some(r) => r.clone(),
                        None => match onnx::runtime(&config.home) {
                            Ok(r) => {
                                rt = Some(r.clone());
                                r
                            }
                            Err(e) if !required => {
                                warn(&mut engine, format!("skipping model `{}`: {e}", spec.id));
                                continue;
                            }
                            Err(e) => return Err(e),
                        },
                    };
                    let opts = OnnxOptions {
                        device: config.device,
                        intra_threads: threads,
                        sessions: cfg.workers,
                        spinning: config
                            .intra_spinning
                            .or(spec.intra_spinning)
                            .unwrap_or(false),
                    };
                    Arc::new(OnnxBackend::load(&r, &spec.id, &path, &opts)?)
                }
                BackendKind::CandleLm => {
                    let blas = if config.cpu_blas {
                        match crate::backend::blas::load(&config.home) {
                            Ok(b) => Some(b),
                            Err(e) => {
                                warn(
                                    &mut engine,
                                    format!(
                                        "model `{}` runs on candle's GEMM (about 2x slower on CPU): {e}",
                                        spec.id
                                    ),
                                );
                                None
                            }
                        }
                    } else {
                        None
                    };
                    let taps = spec
                        .lm
                        .as_ref()
                        .map(|l| l.hidden_taps.clone())
                        .unwrap_or_default();
                    // `with_statistics` keeps them on when there are no taps.
                    let statistics = config
                        .lm_statistics
                        .or(spec.lm.as_ref().and_then(|l| l.statistics))
                        .unwrap_or(true);
                    let lm = CausalLm::load(&spec.id, &path, config.device, usize::MAX, blas)?
                        .with_taps(taps)?
                        .with_statistics(statistics);
                    if let Some(b) = blas.filter(|_| lm.uses_blas()) {
                        engine.blas = Some(RuntimeInfo {
                            library: b.library.clone(),
                            version: b.config.clone(),
                        });
                    }
                    Arc::new(lm)
                }
                BackendKind::Candle => Arc::new(MlpHead::load(
                    &spec.id,
                    &path,
                    spec.head.as_ref(),
                    &spec.inputs[0].name,
                    &spec.outputs[0].name,
                    config.device,
                )?),
            };
            tracing::info!(model = %spec.id, version = %spec.version, device = %backend.device(), "model loaded");
            let extras = extras.into_iter().map(|(p, _)| p).collect();
            let h = ModelHandle::with_paths(spec, backend, cfg, path, extras)?;
            engine.models.insert(h.spec().id.clone(), h);
        }
        engine.runtime = rt.map(|r| RuntimeInfo {
            library: r.library,
            version: r.version,
        });
        Ok(engine)
    }

    /// An engine over ready-made handles (tests, embedding custom backends).
    pub fn from_handles(handles: impl IntoIterator<Item = ModelHandle>) -> Engine {
        Engine {
            models: handles
                .into_iter()
                .map(|h| (h.spec().id.clone(), h))
                .collect(),
            runtime: None,
            blas: None,
            warnings: Vec::new(),
        }
    }

    /// The model with this id, if loaded.
    pub fn model(&self, id: &str) -> Option<ModelHandle> {
        self.models.get(id).cloned()
    }

    /// The model with this id, or [`EngineError::ModelNotLoaded`].
    pub fn require(&self, id: &str) -> Result<ModelHandle> {
        self.model(id)
            .ok_or_else(|| EngineError::ModelNotLoaded(id.to_string()))
    }

    /// Ids of the loaded models.
    pub fn model_ids(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// Start-up warnings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Description for `/info`.
    pub fn info(&self) -> EngineInfo {
        let models: Vec<ModelInfo> = self.models.values().map(ModelHandle::info).collect();
        let mut devices: Vec<String> = models.iter().map(|m| m.device.clone()).collect();
        devices.sort();
        devices.dedup();
        EngineInfo {
            device: if devices.is_empty() {
                "cpu".into()
            } else {
                devices.join(",")
            },
            onnxruntime: self.runtime.clone(),
            openblas: self.blas.clone(),
            models,
            warnings: self.warnings.clone(),
        }
    }
}
