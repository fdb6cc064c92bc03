//! Engine start-up (manifest, hash checks, subsets) and the candle head,
//! with files written by the tests themselves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candor_core::{Priority, ProblemKind, ToProblem};
use candor_engine::{Engine, EngineConfig, EngineError, NamedTensor};
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn dir(tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("candor-engine-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("models/heads")).unwrap();
    Dir(p)
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// 2 → 3 → 1 head: W0 = [[1,2],[-1,0.5],[0,1]], b0 = [0,1,-1], W1 = [[1,-1,2]], b1 = [0.5].
fn write_head(path: &Path, meta: Option<HashMap<String, String>>) {
    let w0 = bytes(&[1., 2., -1., 0.5, 0., 1.]);
    let b0 = bytes(&[0., 1., -1.]);
    let w1 = bytes(&[1., -1., 2.]);
    let b1 = bytes(&[0.5]);
    let t = vec![
        (
            "layers.0.weight",
            TensorView::new(Dtype::F32, vec![3, 2], &w0).unwrap(),
        ),
        (
            "layers.0.bias",
            TensorView::new(Dtype::F32, vec![3], &b0).unwrap(),
        ),
        (
            "layers.1.weight",
            TensorView::new(Dtype::F32, vec![1, 3], &w1).unwrap(),
        ),
        (
            "layers.1.bias",
            TensorView::new(Dtype::F32, vec![1], &b1).unwrap(),
        ),
    ];
    let data = safetensors::serialize(t, meta).unwrap();
    std::fs::write(path, data).unwrap();
}

fn manifest(root: &Path, sha: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"schema = 1
[[model]]
id = "head"
version = "0.1.0"
task = "test head"
backend = "candle"
licence = "Apache-2.0"
file = "heads/h.safetensors"
sha256 = "{sha}"
source = {{ committed = "models/heads/h.safetensors" }}
[model.batching]
max_batch = 4
max_wait_ms = 1
{extra}

[[model]]
id = "absent"
version = "1"
backend = "onnx"
file = "absent/a.onnx"
sha256 = "{zeros}"
source = {{ pypi = "absent", version = "1" }}
"#,
        zeros = "0".repeat(64)
    );
    let p = root.join("models/manifest.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn config(root: &Path, manifest: PathBuf) -> EngineConfig {
    EngineConfig {
        home: root.join("home"),
        manifest,
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn candle_head_matches_hand_computed_output() {
    let d = dir("head");
    let w = d.0.join("models/heads/h.safetensors");
    write_head(&w, None);
    let sha = candor_engine::manifest::sha256_file(&w).unwrap();
    let m = manifest(&d.0, &sha, "");
    let engine = Engine::load(config(&d.0, m)).unwrap();
    // The onnx model's file is absent: a warning, not a failure.
    assert_eq!(engine.model_ids(), vec!["head".to_string()]);
    assert!(
        engine.warnings().iter().any(|w| w.contains("absent")),
        "{:?}",
        engine.warnings()
    );
    let h = engine.model("head").unwrap();
    assert_eq!(h.model_ref().sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(h.device(), "cpu");
    // x = [1, 2]: h = relu([5, 1, 1]) -> 5 - 1 + 2 + 0.5 = 6.5.
    // x = [-1, 0]: h = relu([-1, 2, -1]) = [0, 2, 0] -> -2 + 0.5 = -1.5.
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1., 2., -1., 0.]).unwrap();
    let out = h
        .infer_blocking(
            vec![NamedTensor::new("features", x)],
            Priority::Upload,
            None,
        )
        .unwrap();
    let p = out.get("probabilities").unwrap().as_f32().unwrap();
    assert_eq!(p.shape(), &[2, 1]);
    assert!((p[[0, 0]] - sigmoid(6.5)).abs() < 1e-6, "{p:?}");
    assert!((p[[1, 0]] - sigmoid(-1.5)).abs() < 1e-6, "{p:?}");
    // Wrong width is the caller's fault.
    let bad = ArrayD::<f32>::zeros(IxDyn(&[1, 3]));
    let e = h
        .infer_blocking(
            vec![NamedTensor::new("features", bad)],
            Priority::Upload,
            None,
        )
        .unwrap_err();
    assert_eq!(e.problem_kind(), ProblemKind::BadRequest);
    let info = serde_json::to_value(engine.info()).unwrap();
    assert_eq!(info["models"][0]["backend"], "candle");
    assert_eq!(info["models"][0]["batching"]["max_batch"], 4);
}

#[test]
fn candle_head_activations_from_metadata_and_manifest() {
    let d = dir("act");
    let w = d.0.join("models/heads/h.safetensors");
    let meta = HashMap::from([("output_activation".to_string(), "none".to_string())]);
    write_head(&w, Some(meta));
    let sha = candor_engine::manifest::sha256_file(&w).unwrap();
    let x = || ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![1f32, 2.]).unwrap();
    // Metadata: no output activation -> the raw logit 6.5.
    let engine = Engine::load(config(&d.0, manifest(&d.0, &sha, ""))).unwrap();
    let out = engine
        .require("head")
        .unwrap()
        .infer_blocking(
            vec![NamedTensor::new("features", x())],
            Priority::Live,
            None,
        )
        .unwrap();
    assert!((out.get("probabilities").unwrap().as_f32().unwrap()[[0, 0]] - 6.5).abs() < 1e-5);
    // The manifest wins over metadata: tanh hidden, sigmoid output.
    // tanh([5, 1, 1]) . [1, -1, 2] + 0.5
    let extra = "[model.head]\nhidden_activation = \"tanh\"\noutput_activation = \"sigmoid\"";
    let engine = Engine::load(config(&d.0, manifest(&d.0, &sha, extra))).unwrap();
    let out = engine
        .require("head")
        .unwrap()
        .infer_blocking(
            vec![NamedTensor::new("features", x())],
            Priority::Live,
            None,
        )
        .unwrap();
    let want = sigmoid(5f32.tanh() - 1f32.tanh() + 2. * 1f32.tanh() + 0.5);
    assert!((out.get("probabilities").unwrap().as_f32().unwrap()[[0, 0]] - want).abs() < 1e-5);
}

#[test]
fn tampered_file_fails_start_up_naming_file_and_digests() {
    let d = dir("tamper");
    let w = d.0.join("models/heads/h.safetensors");
    write_head(&w, None);
    let sha = candor_engine::manifest::sha256_file(&w).unwrap();
    let m = manifest(&d.0, &sha, "");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let e = Engine::load(config(&d.0, m)).unwrap_err();
    assert_eq!(e.problem_kind(), ProblemKind::Internal);
    let msg = e.to_string();
    assert!(msg.contains("h.safetensors") && msg.contains(&sha), "{msg}");
    match e {
        EngineError::HashMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, sha);
            assert_ne!(actual, sha);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn subsets_and_required_models() {
    let d = dir("subset");
    let w = d.0.join("models/heads/h.safetensors");
    write_head(&w, None);
    let sha = candor_engine::manifest::sha256_file(&w).unwrap();
    let m = manifest(&d.0, &sha, "");
    // Only "absent" selected: loads nothing, warns.
    let mut c = config(&d.0, m.clone());
    c.models = Some(vec!["absent".into(), "nonexistent".into()]);
    let engine = Engine::load(c).unwrap();
    assert!(engine.model_ids().is_empty());
    assert_eq!(engine.warnings().len(), 2, "{:?}", engine.warnings());
    assert_eq!(
        engine.require("head").unwrap_err().problem_kind(),
        ProblemKind::NotReady
    );
    // Required and missing: NotReady error.
    let mut c = config(&d.0, m);
    c.required = vec!["absent".into()];
    let e = Engine::load(c).unwrap_err();
    assert_eq!(e.problem_kind(), ProblemKind::NotReady);
    assert!(e.to_string().contains("scripts/setup.sh"), "{e}");
}
