//! ONNX Runtime backend (`ort`, loaded dynamically from the project-local
//! library that `scripts/setup.sh` installs).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::{Backend, Device};
use crate::error::{EngineError, Result};
use crate::tensor::{NamedTensor, TensorData};

/// The process-wide ONNX Runtime: which library was loaded, its version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrtRuntime {
    /// Path of the shared library that was loaded.
    pub library: PathBuf,
    /// Its version, e.g. `1.23.2`.
    pub version: String,
    #[serde(skip)]
    env: ort::environment::Environment,
}

static RUNTIME: OnceLock<std::result::Result<OrtRuntime, String>> = OnceLock::new();

/// Environment variable ONNX Runtime reads when it creates its environment:
/// Microsoft's Linux builds (1.2x and later) otherwise look up a telemetry
/// host and write a device id and an event database under
/// `$HOME/.cache/Microsoft/DeveloperTools/.onnxruntime`, before any API call
/// could switch telemetry off.
pub const ORT_TELEMETRY_ENV: &str = "ORT_DISABLE_TELEMETRY";

/// Switches ONNX Runtime's telemetry off for this process: sets
/// `ORT_DISABLE_TELEMETRY=1` (whatever it was). Call it before other
/// threads start where possible (the CLI does, first thing in `main`); the
/// engine calls it again, once, right before it loads ONNX Runtime.
pub fn disable_telemetry() {
    if std::env::var_os(ORT_TELEMETRY_ENV).is_none_or(|v| v != "1") {
        // Edition 2021: `set_var` is safe to call; it races only with
        // concurrent `getenv` in other threads, and nothing in Candor reads
        // the environment while the engine loads.
        std::env::set_var(ORT_TELEMETRY_ENV, "1");
    }
}

/// Finds the ONNX Runtime library: `<home>/onnxruntime/lib/libonnxruntime.so*`
/// (the real file, not a symlink), then `$ORT_DYLIB_PATH`.
pub fn find_library(home: &Path) -> Result<PathBuf> {
    let dir = home.join("onnxruntime").join("lib");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so.")
            })
            .filter_map(|e| std::fs::canonicalize(e.path()).ok())
            .filter(|p| p.is_file())
            .collect();
        // Prefer the most specific name (libonnxruntime.so.1.23.2).
        found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        if let Some(p) = found.into_iter().next() {
            return Ok(p);
        }
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from) {
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(EngineError::RuntimeMissing(format!(
        "no libonnxruntime.so* in {} and ORT_DYLIB_PATH is unset or not a file; run scripts/setup.sh",
        dir.display()
    )))
}

fn version_from_name(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_string_lossy().into_owned();
    let v = name.strip_prefix("libonnxruntime.so.")?;
    (!v.is_empty()).then(|| v.to_string())
}

/// Loads ONNX Runtime once per process (later calls return the first
/// result, whatever `home` they pass: a process can hold one ORT library).
pub fn runtime(home: &Path) -> Result<OrtRuntime> {
    if let Some(r) = RUNTIME.get() {
        return r.clone().map_err(EngineError::RuntimeMissing);
    }
    let lib = find_library(home)?;
    let r = RUNTIME.get_or_init(|| {
        disable_telemetry();
        let builder =
            ort::init_from(&lib).map_err(|e| format!("loading {}: {e}", lib.display()))?;
        // Telemetry off: Candor promises that nothing leaves the server.
        // `ORT_DISABLE_TELEMETRY` (above) stops the 1DS uploader of the Linux
        // builds; this switches off the events API as well. It is the only
        // environment the process creates.
        let env = builder
            .with_name("candor")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("creating the ONNX Runtime environment: {e}"))?;
        let version = version_from_name(&lib).unwrap_or_else(|| {
            ort::info()
                .split(',')
                .find_map(|kv| {
                    kv.trim()
                        .strip_prefix("git-branch=rel-")
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "unknown".into())
        });
        tracing::info!(library = %lib.display(), %version, "ONNX Runtime loaded");
        Ok(OrtRuntime {
            library: lib.clone(),
            version,
            env,
        })
    });
    r.clone().map_err(EngineError::RuntimeMissing)
}

/// Options for [`OnnxBackend::load`].
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    /// Requested device.
    pub device: Device,
    /// Intra-op threads per session.
    pub intra_threads: usize,
    /// Sessions to create (one per batcher worker, so workers run in parallel).
    pub sessions: usize,
    /// Let the intra-op threads spin-wait for work after an operator
    /// instead of sleeping (see [`crate::EngineConfig::intra_spinning`]).
    pub spinning: bool,
}

/// An ONNX model: one or more sessions over the same file.
pub struct OnnxBackend {
    model: String,
    sessions: Vec<Mutex<Session>>,
    outputs: Vec<String>,
    device: String,
}

impl std::fmt::Debug for OnnxBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxBackend")
            .field("model", &self.model)
            .field("device", &self.device)
            .finish()
    }
}

fn session(
    rt: &OrtRuntime,
    model: &str,
    path: &Path,
    opts: &OnnxOptions,
    cuda: Option<i32>,
) -> Result<Session> {
    let err = |e: &dyn std::fmt::Display| EngineError::backend(model, e);
    let mut b = Session::builder(&rt.env).map_err(|e| err(&e))?;
    b = b
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(|e| err(&e))?;
    b = b.with_inter_threads(1).map_err(|e| err(&e))?;
    b = b
        .with_intra_op_spinning(opts.spinning)
        .map_err(|e| err(&e))?;
    if let Some(id) = cuda {
        b = cuda_ep(b, id).map_err(|e| err(&e))?;
    }
    b.commit_from_file(path).map_err(|e| err(&e))
}

#[cfg(feature = "cuda")]
fn cuda_ep(
    b: ort::session::builder::SessionBuilder,
    id: i32,
) -> std::result::Result<ort::session::builder::SessionBuilder, String> {
    b.with_execution_providers([ort::ep::CUDA::default()
        .with_device_id(id)
        .build()
        .error_on_failure()])
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda_ep(
    _b: ort::session::builder::SessionBuilder,
    _id: i32,
) -> std::result::Result<ort::session::builder::SessionBuilder, String> {
    Err("candor-engine was built without the `cuda` feature".into())
}

impl OnnxBackend {
    /// Creates sessions for the model file at `path`.
    pub fn load(rt: &OrtRuntime, model: &str, path: &Path, opts: &OnnxOptions) -> Result<Self> {
        let (cuda, device) = match opts.device {
            Device::Cpu => (None, "cpu".to_string()),
            Device::Cuda(id) => (Some(id), format!("cuda:{id}")),
            Device::Auto if cfg!(feature = "cuda") => (Some(0), "cuda:0".to_string()),
            Device::Auto => (None, "cpu".to_string()),
        };
        let first = match session(rt, model, path, opts, cuda) {
            Ok(s) => (s, device, cuda),
            Err(e) if opts.device == Device::Auto && cuda.is_some() => {
                tracing::warn!(model, error = %e, "CUDA unavailable, using CPU");
                (session(rt, model, path, opts, None)?, "cpu".into(), None)
            }
            Err(e) => return Err(e),
        };
        let (s0, device, cuda) = first;
        let outputs = s0.outputs().iter().map(|o| o.name().to_string()).collect();
        let mut sessions = vec![Mutex::new(s0)];
        for _ in 1..opts.sessions.max(1) {
            sessions.push(Mutex::new(session(rt, model, path, opts, cuda)?));
        }
        Ok(OnnxBackend {
            model: model.to_string(),
            sessions,
            outputs,
            device,
        })
    }

    /// Names of the model's graph outputs.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }
}

fn to_value(model: &str, t: TensorData) -> Result<DynValue> {
    let err = |e: ort::Error| EngineError::backend(model, e);
    Ok(match t {
        TensorData::F32(a) => {
            let shape: Vec<i64> = a.shape().iter().map(|d| *d as i64).collect();
            let data: Vec<f32> = if a.is_standard_layout() {
                a.into_raw_vec_and_offset().0
            } else {
                a.iter().copied().collect()
            };
            Tensor::from_array((shape, data)).map_err(err)?.into_dyn()
        }
        TensorData::I64(a) => {
            let shape: Vec<i64> = a.shape().iter().map(|d| *d as i64).collect();
            let data: Vec<i64> = if a.is_standard_layout() {
                a.into_raw_vec_and_offset().0
            } else {
                a.iter().copied().collect()
            };
            Tensor::from_array((shape, data)).map_err(err)?.into_dyn()
        }
    })
}

fn from_value(model: &str, name: &str, v: &DynValue) -> Result<TensorData> {
    let err =
        |e: &dyn std::fmt::Display| EngineError::backend(model, format!("output `{name}`: {e}"));
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(err(&format!("unsupported value type {other:?}"))),
    };
    match ty {
        TensorElementType::Float32 => {
            let (shape, data) = v.try_extract_tensor::<f32>().map_err(|e| err(&e))?;
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            TensorData::f32_from_vec(&dims, data.to_vec()).ok_or_else(|| err(&"bad shape"))
        }
        TensorElementType::Int64 => {
            let (shape, data) = v.try_extract_tensor::<i64>().map_err(|e| err(&e))?;
            let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            TensorData::i64_from_vec(&dims, data.to_vec()).ok_or_else(|| err(&"bad shape"))
        }
        other => Err(err(&format!("unsupported element type {other:?}"))),
    }
}

impl Backend for OnnxBackend {
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for t in inputs {
            values.push((t.name, to_value(&self.model, t.data)?));
        }
        // Take a free session if there is one, else wait for the first.
        let mut guard = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .unwrap_or_else(|| self.sessions[0].lock().unwrap_or_else(|p| p.into_inner()));
        let outs = guard
            .run(values)
            .map_err(|e| EngineError::backend(&self.model, e))?;
        self.outputs
            .iter()
            .filter_map(|name| outs.get(name.as_str()).map(|v| (name, v)))
            .map(|(name, v)| {
                Ok(NamedTensor {
                    name: name.clone(),
                    data: from_value(&self.model, name, v)?,
                })
            })
            .collect()
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn name(&self) -> &'static str {
        "onnx"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_real_library_file_and_names_both_places() {
        let dir = crate::testutil::TempDir::new("ortlib");
        let lib = dir.path().join("onnxruntime").join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        // Without ORT_DYLIB_PATH pointing to a file, the error names both places.
        if std::env::var_os("ORT_DYLIB_PATH").is_none() {
            let e = find_library(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("onnxruntime/lib") && e.contains("ORT_DYLIB_PATH"),
                "{e}"
            );
            assert!(e.contains("scripts/setup.sh"), "{e}");
        }
        let real = lib.join("libonnxruntime.so.1.23.2");
        std::fs::write(&real, b"x").unwrap();
        std::os::unix::fs::symlink(&real, lib.join("libonnxruntime.so")).unwrap();
        std::fs::write(lib.join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        let found = find_library(dir.path()).unwrap();
        assert_eq!(found, std::fs::canonicalize(&real).unwrap());
        assert_eq!(version_from_name(&found).as_deref(), Some("1.23.2"));
    }
}
