//! Engine benchmarks.
//!
//! * `<model>/batch1` vs `<model>/batched`: throughput of a real ONNX model
//!   under 32 concurrent tokio submitters, with `max_batch = 1` (no
//!   batching) and with dynamic batching. One iteration = `ITEMS` requests.
//! * `queue-overhead/*`: a no-op backend, to price the queue itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candor_core::Priority;
use candor_engine::manifest::{BackendKind, BatchingSpec, InputSpec, ModelSource, OutputSpec};
use candor_engine::{
    Backend, BatchConfig, DType, Engine, EngineConfig, EngineError, ModelHandle, ModelSpec,
    NamedTensor,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{ArrayD, IxDyn};

const SUBMITTERS: usize = 32;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn home() -> PathBuf {
    std::env::var_os("CANDOR_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".candor"))
}

fn load(id: &str, batching: BatchingSpec) -> Option<Engine> {
    let mut cfg = EngineConfig {
        home: home(),
        manifest: repo().join("models/manifest.toml"),
        models: Some(vec![id.to_string()]),
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    };
    cfg.overrides.insert(id.to_string(), batching);
    match Engine::load(cfg) {
        Ok(e) if e.model(id).is_some() => Some(e),
        Ok(e) => {
            eprintln!(
                "SKIP {id}: not loaded ({:?}); run scripts/setup.sh",
                e.warnings()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIP {id}: {e}");
            None
        }
    }
}

/// Runs `items` requests from `SUBMITTERS` concurrent tasks.
async fn drive(h: &ModelHandle, items: usize, make: fn(usize) -> Vec<NamedTensor>) {
    let mut tasks = Vec::with_capacity(SUBMITTERS);
    for t in 0..SUBMITTERS {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < items {
                h.infer(make(i), Priority::Upload, None)
                    .await
                    .expect("inference");
                i += SUBMITTERS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn vad_input(i: usize) -> Vec<NamedTensor> {
    let x: Vec<f32> = (0..576)
        .map(|n| 0.3 * ((n + i) as f32 * 0.07).sin())
        .collect();
    vec![
        NamedTensor::new(
            "input",
            ArrayD::from_shape_vec(IxDyn(&[1, 576]), x).unwrap(),
        ),
        NamedTensor::new("state", ArrayD::<f32>::zeros(IxDyn(&[2, 1, 128]))),
        NamedTensor::new("sr", ArrayD::from_elem(IxDyn(&[]), 16_000i64)),
    ]
}

fn clip_input(i: usize) -> Vec<NamedTensor> {
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 3, 224, 224]), |ix| {
        (((ix[2] + ix[3] + i) % 50) as f32 / 25.0) - 1.0
    });
    vec![NamedTensor::new("pixel_values", x)]
}

fn spec(max_batch: usize, max_wait_ms: u64) -> BatchingSpec {
    BatchingSpec {
        max_batch: Some(max_batch),
        max_wait_ms: Some(max_wait_ms),
        queue_capacity: Some(4096),
        ..BatchingSpec::default()
    }
}

fn real_model(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    id: &str,
    items: usize,
    batched: BatchingSpec,
    make: fn(usize) -> Vec<NamedTensor>,
) {
    let Some(single) = load(id, spec(1, 0)) else {
        return;
    };
    let Some(multi) = load(id, batched) else {
        return;
    };
    let mut g = c.benchmark_group(id);
    g.throughput(Throughput::Elements(items as u64));
    for (name, engine) in [("batch1", &single), ("batched", &multi)] {
        let h = engine.model(id).unwrap();
        g.bench_function(name, |b| b.iter(|| rt.block_on(drive(&h, items, make))));
    }
    g.finish();
}

fn real_models(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    real_model(c, &rt, "silero-vad", 512, spec(32, 2), vad_input);
    real_model(c, &rt, "clip-vit-b16-int8", 8, spec(8, 10), clip_input);
}

/// Returns its input unchanged.
struct Noop;
impl Backend for Noop {
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, EngineError> {
        Ok(inputs
            .into_iter()
            .map(|t| NamedTensor::new("y", t.data))
            .collect())
    }
    fn device(&self) -> String {
        "cpu".into()
    }
}

fn noop_handle(max_batch: usize, max_wait_ms: u64) -> ModelHandle {
    let spec = ModelSpec {
        id: "noop".into(),
        version: "0".into(),
        task: "bench".into(),
        backend: BackendKind::Onnx,
        licence: String::new(),
        file: String::new(),
        sha256: "0".repeat(64),
        source: ModelSource::Committed {
            committed: String::new(),
        },
        batching: BatchingSpec::default(),
        intra_spinning: None,
        inputs: vec![InputSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![-1, 16]),
            batch_axis: Some(0),
        }],
        outputs: vec![OutputSpec {
            name: "y".into(),
            batch_axis: Some(0),
        }],
        head: None,
        lm: None,
        extra_files: Vec::new(),
    };
    let cfg = BatchConfig {
        max_batch,
        max_wait: Duration::from_millis(max_wait_ms),
        queue_capacity: 4096,
        workers: 1,
        promote_after: Duration::from_secs(2),
    };
    ModelHandle::new(spec, Arc::new(Noop), cfg).unwrap()
}

fn noop_input(_: usize) -> Vec<NamedTensor> {
    vec![NamedTensor::new("x", ArrayD::<f32>::zeros(IxDyn(&[1, 16])))]
}

fn queue_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("queue-overhead");
    // One request at a time: submit, worker wake-up, reply.
    let h = noop_handle(1, 0);
    g.throughput(Throughput::Elements(1));
    g.bench_function("roundtrip", |b| {
        b.iter(|| {
            rt.block_on(h.infer(noop_input(0), Priority::Live, None))
                .unwrap()
        })
    });
    // 32 concurrent submitters, 1024 requests: amortised cost per request.
    g.throughput(Throughput::Elements(1024));
    let h1 = noop_handle(1, 0);
    g.bench_function("batch1", |b| {
        b.iter(|| rt.block_on(drive(&h1, 1024, noop_input)))
    });
    let h32 = noop_handle(32, 0);
    g.bench_function("batched", |b| {
        b.iter(|| rt.block_on(drive(&h32, 1024, noop_input)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = queue_overhead, real_models
}
criterion_main!(benches);
