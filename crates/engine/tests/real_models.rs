//! Integration tests with the real ONNX models. They need the files that
//! `scripts/setup.sh` puts under `$CANDOR_HOME` (default `<repo>/.candor`);
//! when those are absent each test prints why and returns (SKIP).

use std::path::PathBuf;
use std::time::Duration;

use candor_core::Priority;
use candor_engine::manifest::{InputSpec, ModelSpec, OutputSpec};
use candor_engine::{BatchConfig, Engine, EngineConfig, ModelHandle, NamedTensor, TensorData};
use ndarray::{ArrayD, IxDyn};

fn home() -> PathBuf {
    std::env::var_os("CANDOR_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.candor"))
}

const VAD: &str = "silero-vad/silero_vad.onnx";
const CLIP: &str = "clip-vit-b16-int8/clip_encoder.int8.layers.onnx";

/// A manifest for the given model files, with hashes computed here, so the
/// test does not depend on the committed manifest's contents.
fn engine_for(ids: &[&str], max_batch: usize, max_wait_ms: u64) -> Option<Engine> {
    let home = home();
    let lib = candor_engine::backend::onnx::find_library(&home);
    let mut missing = Vec::new();
    if let Err(e) = &lib {
        missing.push(e.to_string());
    }
    let mut text = String::from("schema = 1\n");
    for id in ids {
        let file = if *id == "silero-vad" { VAD } else { CLIP };
        let path = home.join("models").join(file);
        if !path.is_file() {
            missing.push(format!("{} not found", path.display()));
            continue;
        }
        let sha = candor_engine::manifest::sha256_file(&path).unwrap();
        let io = if *id == "silero-vad" {
            r#"
[[model.inputs]]
name = "input"
dtype = "f32"
shape = [-1, -1]
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
"#
        } else {
            r#"
[[model.inputs]]
name = "pixel_values"
dtype = "f32"
shape = [-1, 3, 224, 224]
batch_axis = 0
[[model.outputs]]
name = "image_embeds"
batch_axis = 0
[[model.outputs]]
name = "onnx::Gather_1524"
batch_axis = 0
"#
        };
        text.push_str(&format!(
            "[[model]]\nid = \"{id}\"\nversion = \"test\"\nbackend = \"onnx\"\nfile = \"{file}\"\nsha256 = \"{sha}\"\nsource = {{ pypi = \"x\", version = \"0\" }}\n[model.batching]\nmax_batch = {max_batch}\nmax_wait_ms = {max_wait_ms}\n{io}"
        ));
    }
    if !missing.is_empty() {
        eprintln!(
            "SKIP: real-model test needs scripts/setup.sh artefacts: {}",
            missing.join("; ")
        );
        return None;
    }
    let dir = std::env::temp_dir().join(format!(
        "candor-real-{}-{}",
        std::process::id(),
        ids.join("-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join(format!("manifest-{max_batch}.toml"));
    std::fs::write(&manifest, text).unwrap();
    let engine = Engine::load(EngineConfig {
        home,
        manifest,
        device: candor_engine::Device::Cpu,
        intra_threads: Some(1),
        required: ids.iter().map(|s| s.to_string()).collect(),
        ..EngineConfig::default()
    })
    .expect("engine loads the real models");
    Some(engine)
}

fn chunk(kind: usize) -> Vec<f32> {
    let mut seed = 0x1234_5678u32 + kind as u32;
    (0..512)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            match kind {
                0 => 0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin(),
                1 => {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                }
                2 => 0.0,
                _ => 0.3 * (2.0 * std::f32::consts::PI * (200.0 + 3000.0 * t) * t).sin(),
            }
        })
        .collect()
}

fn vad_request(kinds: &[usize]) -> Vec<NamedTensor> {
    let data: Vec<f32> = kinds.iter().flat_map(|k| chunk(*k)).collect();
    vec![
        NamedTensor::new(
            "input",
            ArrayD::from_shape_vec(IxDyn(&[kinds.len(), 512]), data).unwrap(),
        ),
        NamedTensor::new("state", ArrayD::<f32>::zeros(IxDyn(&[2, kinds.len(), 128]))),
        NamedTensor::new("sr", ArrayD::from_elem(IxDyn(&[]), 16_000i64)),
    ]
}

async fn concurrent(
    h: &ModelHandle,
    reqs: Vec<Vec<NamedTensor>>,
) -> Vec<candor_engine::InferOutput> {
    let futs: Vec<_> = reqs
        .into_iter()
        .map(|r| tokio::spawn(h.infer(r, Priority::Upload, None)))
        .collect();
    let mut out = Vec::new();
    for f in futs {
        out.push(f.await.unwrap().unwrap());
    }
    out
}

fn max_abs_diff(a: &TensorData, b: &TensorData) -> f32 {
    let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silero_vad_batched_equals_single() {
    let Some(single) = engine_for(&["silero-vad"], 1, 0) else {
        return;
    };
    let Some(batched) = engine_for(&["silero-vad"], 16, 200) else {
        return;
    };
    let (hs, hb) = (
        single.model("silero-vad").unwrap(),
        batched.model("silero-vad").unwrap(),
    );
    assert_eq!(hs.device(), "cpu");
    let kinds = [0usize, 1, 2, 3];
    let ones: Vec<_> = kinds.iter().map(|k| vad_request(&[*k])).collect();
    let a = concurrent(&hs, ones.clone()).await;
    let b = concurrent(&hb, ones).await;
    // One request holding all four chunks.
    let whole = hb
        .infer(vad_request(&kinds), Priority::Live, None)
        .await
        .unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.batch_size, 1);
        let p = x.get("output").unwrap().as_f32().unwrap();
        assert_eq!(p.shape(), &[1, 1]);
        let v = p[[0, 0]];
        assert!(v.is_finite() && (0.0..=1.0).contains(&v), "chunk {i}: {v}");
        assert_eq!(y.get("stateN").unwrap().shape(), &[2, 1, 128]);
        assert!(max_abs_diff(x.get("output").unwrap(), y.get("output").unwrap()) < 1e-4);
        assert!(max_abs_diff(x.get("stateN").unwrap(), y.get("stateN").unwrap()) < 1e-4);
        let w = whole.get("output").unwrap().as_f32().unwrap();
        assert!((w[[i, 0]] - v).abs() < 1e-4);
        eprintln!("silero chunk {i}: p = {v:.5}");
    }
    assert!(
        b.iter().any(|o| o.batch_size > 1),
        "requests never shared a batch"
    );
    let info = batched.info();
    assert_eq!(info.device, "cpu");
    assert!(info.onnxruntime.is_some());
}

fn image(kind: usize) -> Vec<f32> {
    (0..3 * 224 * 224)
        .map(|i| {
            let (c, y, x) = (i / (224 * 224), (i / 224) % 224, i % 224);
            match kind {
                0 => (x as f32 / 223.0) * 2.0 - 1.0 + c as f32 * 0.1,
                _ => {
                    if ((x / 28) + (y / 28)) % 2 == 0 {
                        1.5
                    } else {
                        -1.5
                    }
                }
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

/// Note: this int8 model quantises activations dynamically, with one scale
/// per tensor — over the whole batch. Batched embeddings therefore differ a
/// little from single ones; the check is on cosine similarity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_embeddings_batched_vs_single() {
    let Some(single) = engine_for(&["clip-vit-b16-int8"], 1, 0) else {
        return;
    };
    let Some(batched) = engine_for(&["clip-vit-b16-int8"], 8, 500) else {
        return;
    };
    let (hs, hb) = (
        single.model("clip-vit-b16-int8").unwrap(),
        batched.model("clip-vit-b16-int8").unwrap(),
    );
    let reqs: Vec<Vec<NamedTensor>> = (0..2)
        .map(|k| {
            vec![NamedTensor::new(
                "pixel_values",
                ArrayD::from_shape_vec(IxDyn(&[1, 3, 224, 224]), image(k)).unwrap(),
            )]
        })
        .collect();
    let a = concurrent(&hs, reqs.clone()).await;
    let b = concurrent(&hb, reqs).await;
    assert!(
        b.iter().all(|o| o.batch_size == 2),
        "both images should share a batch"
    );
    let emb = |o: &candor_engine::InferOutput| -> Vec<f32> {
        let e = o.get("image_embeds").unwrap().as_f32().unwrap();
        assert_eq!(e.shape(), &[1, 512]);
        e.iter().copied().collect()
    };
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(y.get("onnx::Gather_1524").unwrap().shape(), &[1, 197, 768]);
        let (ex, ey) = (emb(x), emb(y));
        assert!(ex.iter().all(|v| v.is_finite()));
        let c = cosine(&ex, &ey);
        eprintln!(
            "clip single vs batched: cosine {c:.5}, max |diff| {}",
            max_abs_diff(
                x.get("image_embeds").unwrap(),
                y.get("image_embeds").unwrap()
            )
        );
        assert!(c > 0.95, "cosine {c}");
    }
    let between = cosine(&emb(&a[0]), &emb(&a[1]));
    eprintln!("clip gradient vs checkerboard: cosine {between:.5}");
    assert!(
        between < 0.95,
        "two different images embed alike: {between}"
    );
    let _ = Duration::ZERO;
}

/// The committed manifest, when present, loads against the local files.
#[test]
fn committed_manifest_loads_when_artefacts_exist() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/manifest.toml");
    if !manifest.is_file() {
        eprintln!("SKIP: {} not written yet", manifest.display());
        return;
    }
    let cfg = EngineConfig {
        home: home(),
        manifest,
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    };
    let engine = Engine::load(cfg).expect("committed manifest loads");
    for w in engine.warnings() {
        eprintln!("warning: {w}");
    }
    let _ = BatchConfig::default();
    let _: Option<(InputSpec, OutputSpec, ModelSpec)> = None;
    eprintln!("loaded: {:?}", engine.model_ids());
    // With setup's OpenBLAS installed, the language model runs on it and
    // /info names the library.
    let lm = engine.model("smollm2-135m-instruct-q4");
    if lm.is_some() && home().join("openblas/lib/libscipy_openblas.so").is_file() {
        let info = engine.info();
        let m = info
            .models
            .iter()
            .find(|m| m.id == "smollm2-135m-instruct-q4")
            .unwrap();
        assert_eq!(m.backend, "candle-lm+openblas");
        assert_eq!(m.device, "cpu");
        let blas = info.openblas.expect("OpenBLAS listed in /info");
        assert!(blas.version.starts_with("OpenBLAS 0.3"), "{}", blas.version);
    }
}
