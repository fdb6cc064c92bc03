//! Scheduling semantics of the batcher, with an in-process fake backend.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use candor_core::{Priority, ProblemKind, ToProblem};
use candor_engine::manifest::{InputSpec, OutputSpec};
use candor_engine::{Backend, BatchConfig, Batcher, DType, EngineError, NamedTensor, TensorData};
use ndarray::{ArrayD, IxDyn};

/// What the fake saw in one run.
#[derive(Debug, Clone)]
struct Seen {
    /// Tag of every item (x[i, 0]), in batch order.
    tags: Vec<f32>,
    x_shape: Vec<usize>,
    s_shape: Vec<usize>,
    k: i64,
}

#[derive(Default)]
struct Gate {
    closed: bool,
    entered: usize,
}

/// y = 2x (batch axis 0), sN = s + k (batch axis 1), k_out = k (unbatched).
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    gate: Mutex<Gate>,
    cv: Condvar,
    fail: bool,
}

impl Fake {
    fn close(&self) {
        self.gate.lock().unwrap().closed = true;
    }
    fn open(&self) {
        self.gate.lock().unwrap().closed = false;
        self.cv.notify_all();
    }
    /// Waits until `n` runs have started.
    fn wait_entered(&self, n: usize) {
        let t = Instant::now();
        while self.gate.lock().unwrap().entered < n {
            assert!(t.elapsed() < Duration::from_secs(10), "backend never ran");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Backend for Fake {
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, EngineError> {
        {
            let mut g = self.gate.lock().unwrap();
            g.entered += 1;
            while g.closed {
                g = self.cv.wait(g).unwrap();
            }
        }
        let x = inputs[0].data.as_f32().unwrap().clone();
        let s = inputs[1].data.as_f32().unwrap().clone();
        let k = *inputs[2].data.as_i64().unwrap().iter().next().unwrap();
        assert_eq!(inputs[0].name, "x");
        self.seen.lock().unwrap().push(Seen {
            tags: x.outer_iter().map(|r| r[0]).collect(),
            x_shape: x.shape().to_vec(),
            s_shape: s.shape().to_vec(),
            k,
        });
        if self.fail {
            return Err(EngineError::backend("fake", "boom"));
        }
        Ok(vec![
            NamedTensor::new("y", x.mapv(|v| v * 2.0)),
            NamedTensor::new("sN", s.mapv(|v| v + k as f32)),
            NamedTensor::new("k_out", ArrayD::from_elem(IxDyn(&[]), k)),
        ])
    }
    fn device(&self) -> String {
        "cpu".into()
    }
    fn name(&self) -> &'static str {
        "fake"
    }
}

fn specs() -> (Vec<InputSpec>, Vec<OutputSpec>) {
    let inputs = vec![
        InputSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![-1, -1]),
            batch_axis: Some(0),
        },
        InputSpec {
            name: "s".into(),
            dtype: DType::F32,
            shape: Some(vec![2, -1, 3]),
            batch_axis: Some(1),
        },
        InputSpec {
            name: "k".into(),
            dtype: DType::I64,
            shape: Some(vec![]),
            batch_axis: None,
        },
    ];
    let outputs = vec![
        OutputSpec {
            name: "y".into(),
            batch_axis: Some(0),
        },
        OutputSpec {
            name: "sN".into(),
            batch_axis: Some(1),
        },
        OutputSpec {
            name: "k_out".into(),
            batch_axis: None,
        },
    ];
    (inputs, outputs)
}

fn batcher(fake: &Arc<Fake>, cfg: BatchConfig) -> Batcher {
    let (i, o) = specs();
    Batcher::new("fake", i, o, fake.clone(), cfg).unwrap()
}

fn cfg(max_batch: usize, max_wait_ms: u64) -> BatchConfig {
    BatchConfig {
        max_batch,
        max_wait: Duration::from_millis(max_wait_ms),
        queue_capacity: 64,
        workers: 1,
        promote_after: Duration::ZERO,
    }
}

/// A request of `n` items of width `d`; item i has tag `tag + i`; the state
/// holds `tag + i` too, so outputs can be traced back.
fn req(tag: f32, n: usize, d: usize, k: i64) -> Vec<NamedTensor> {
    let x = ArrayD::from_shape_fn(IxDyn(&[n, d]), |ix| {
        tag + ix[0] as f32 + ix[1] as f32 * 0.001
    });
    let s = ArrayD::from_shape_fn(IxDyn(&[2, n, 3]), |ix| {
        tag + ix[1] as f32 + ix[0] as f32 * 0.1 + ix[2] as f32 * 0.01
    });
    vec![
        NamedTensor::new("k", ArrayD::from_elem(IxDyn(&[]), k)),
        NamedTensor::new("s", s),
        NamedTensor::new("x", x),
    ]
}

type Rx = tokio::sync::oneshot::Receiver<Result<candor_engine::InferOutput, EngineError>>;

fn recv(rx: Rx) -> Result<candor_engine::InferOutput, EngineError> {
    rx.blocking_recv().expect("batcher dropped the reply")
}

#[test]
fn priorities_drain_live_then_upload_then_bulk() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(1, 0));
    fake.close();
    let first = b.submit(req(0., 1, 2, 1), Priority::Bulk, None).unwrap();
    fake.wait_entered(1);
    let bulk = b.submit(req(1., 1, 2, 1), Priority::Bulk, None).unwrap();
    let upload = b.submit(req(2., 1, 2, 1), Priority::Upload, None).unwrap();
    let live = b.submit(req(3., 1, 2, 1), Priority::Live, None).unwrap();
    let live2 = b.submit(req(4., 1, 2, 1), Priority::Live, None).unwrap();
    assert_eq!(b.queue_depths(), [2, 1, 1]);
    fake.open();
    for rx in [first, bulk, upload, live, live2] {
        recv(rx).unwrap();
    }
    let order: Vec<f32> = fake.seen().iter().map(|s| s.tags[0]).collect();
    assert_eq!(order, vec![0., 3., 4., 2., 1.]);
}

#[test]
fn aged_bulk_request_is_promoted() {
    let fake = Arc::new(Fake::default());
    let mut c = cfg(1, 0);
    c.promote_after = Duration::from_millis(30);
    let b = batcher(&fake, c);
    fake.close();
    let first = b.submit(req(0., 1, 2, 1), Priority::Live, None).unwrap();
    fake.wait_entered(1);
    let bulk = b.submit(req(1., 1, 2, 1), Priority::Bulk, None).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let live = b.submit(req(2., 1, 2, 1), Priority::Live, None).unwrap();
    fake.open();
    for rx in [first, bulk, live] {
        recv(rx).unwrap();
    }
    let order: Vec<f32> = fake.seen().iter().map(|s| s.tags[0]).collect();
    assert_eq!(order, vec![0., 1., 2.]);
}

#[test]
fn max_batch_is_respected_and_counts_items() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(4, 20));
    fake.close();
    let first = b
        .submit(req(100., 1, 2, 1), Priority::Upload, None)
        .unwrap();
    fake.wait_entered(1);
    let mut rxs: Vec<Rx> = (0..9)
        .map(|i| {
            b.submit(req(i as f32 * 10., 1, 2, 1), Priority::Upload, None)
                .unwrap()
        })
        .collect();
    // 3 + 2 items cannot share a batch of 4.
    rxs.push(
        b.submit(req(200., 3, 2, 1), Priority::Upload, None)
            .unwrap(),
    );
    rxs.push(
        b.submit(req(300., 2, 2, 1), Priority::Upload, None)
            .unwrap(),
    );
    fake.open();
    recv(first).unwrap();
    let sizes: Vec<usize> = rxs
        .into_iter()
        .map(|rx| recv(rx).unwrap().batch_size)
        .collect();
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.x_shape[0] <= 4), "{seen:?}");
    assert_eq!(seen[1].x_shape[0], 4, "first batch after the gate is full");
    assert_eq!(
        seen.iter().map(|s| s.x_shape[0]).sum::<usize>(),
        1 + 9 + 3 + 2
    );
    assert!(sizes.iter().all(|s| *s <= 4));
}

#[test]
fn max_wait_bounds_the_wait_for_company() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(8, 60));
    // Alone: waits the window, not (much) longer.
    let t = Instant::now();
    let out = recv(b.submit(req(1., 1, 2, 1), Priority::Upload, None).unwrap()).unwrap();
    let el = t.elapsed();
    assert!(el >= Duration::from_millis(55), "{el:?}");
    assert!(el < Duration::from_millis(1000), "{el:?}");
    assert_eq!(out.batch_size, 1);
    assert!(out.queue_ms >= 55.0, "{}", out.queue_ms);
    // Company arriving within the window joins the batch.
    let a = b.submit(req(1., 1, 2, 1), Priority::Upload, None).unwrap();
    std::thread::sleep(Duration::from_millis(15));
    let c = b.submit(req(2., 1, 2, 1), Priority::Upload, None).unwrap();
    assert_eq!(recv(a).unwrap().batch_size, 2);
    assert_eq!(recv(c).unwrap().batch_size, 2);
    // A full batch does not wait.
    let b2 = batcher(&fake, cfg(2, 5_000));
    let t = Instant::now();
    let a = b2.submit(req(1., 1, 2, 1), Priority::Upload, None).unwrap();
    let c = b2.submit(req(2., 1, 2, 1), Priority::Upload, None).unwrap();
    recv(a).unwrap();
    recv(c).unwrap();
    assert!(t.elapsed() < Duration::from_millis(2_000));
}

#[test]
fn full_queue_is_overloaded_immediately() {
    let fake = Arc::new(Fake::default());
    let mut c = cfg(1, 0);
    c.queue_capacity = 2;
    let b = batcher(&fake, c);
    fake.close();
    let first = b.submit(req(0., 1, 2, 1), Priority::Upload, None).unwrap();
    fake.wait_entered(1);
    let q1 = b.submit(req(1., 1, 2, 1), Priority::Bulk, None).unwrap();
    let q2 = b.submit(req(2., 1, 2, 1), Priority::Live, None).unwrap();
    let t = Instant::now();
    let e = b
        .submit(req(3., 1, 2, 1), Priority::Live, None)
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(100));
    assert_eq!(e.problem_kind(), ProblemKind::Overloaded);
    assert!(matches!(e, EngineError::Overloaded { capacity: 2, .. }));
    fake.open();
    for rx in [first, q1, q2] {
        recv(rx).unwrap();
    }
}

#[test]
fn expired_requests_are_answered_without_running() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(4, 0));
    fake.close();
    let first = b.submit(req(0., 1, 2, 1), Priority::Upload, None).unwrap();
    fake.wait_entered(1);
    let late = b
        .submit(
            req(7., 1, 2, 1),
            Priority::Live,
            Some(Instant::now() + Duration::from_millis(20)),
        )
        .unwrap();
    let ok = b
        .submit(
            req(8., 1, 2, 1),
            Priority::Live,
            Some(Instant::now() + Duration::from_secs(30)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    fake.open();
    recv(first).unwrap();
    let e = recv(late).unwrap_err();
    assert_eq!(e.problem_kind(), ProblemKind::DeadlineExceeded);
    recv(ok).unwrap();
    let tags: Vec<f32> = fake.seen().iter().flat_map(|s| s.tags.clone()).collect();
    assert!(!tags.contains(&7.), "{tags:?}");
    assert!(tags.contains(&8.));
    // A deadline already past is refused at admission.
    let e = b
        .submit(req(9., 1, 2, 1), Priority::Live, Some(Instant::now()))
        .unwrap_err();
    assert_eq!(e.problem_kind(), ProblemKind::DeadlineExceeded);
}

#[test]
fn dropped_receivers_are_skipped() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(1, 0));
    fake.close();
    let first = b.submit(req(0., 1, 2, 1), Priority::Upload, None).unwrap();
    fake.wait_entered(1);
    drop(b.submit(req(5., 1, 2, 1), Priority::Upload, None).unwrap());
    let kept = b.submit(req(6., 1, 2, 1), Priority::Upload, None).unwrap();
    fake.open();
    recv(first).unwrap();
    recv(kept).unwrap();
    let tags: Vec<f32> = fake.seen().iter().flat_map(|s| s.tags.clone()).collect();
    assert_eq!(tags, vec![0., 6.]);
}

#[test]
fn concat_and_split_follow_each_batch_axis() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(16, 50));
    fake.close();
    let first = b.submit(req(0., 1, 3, 5), Priority::Upload, None).unwrap();
    fake.wait_entered(1);
    let sizes = [2usize, 1, 3];
    let rxs: Vec<Rx> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            b.submit(req(10. * (i + 1) as f32, *n, 3, 5), Priority::Upload, None)
                .unwrap()
        })
        .collect();
    fake.open();
    recv(first).unwrap();
    for (i, (rx, n)) in rxs.into_iter().zip(sizes).enumerate() {
        let out = recv(rx).unwrap();
        assert_eq!(out.batch_size, 6);
        let tag = 10. * (i + 1) as f32;
        let want = req(tag, n, 3, 5);
        let x = want[2].data.as_f32().unwrap();
        let s = want[1].data.as_f32().unwrap();
        assert_eq!(out.get("y").unwrap(), &TensorData::F32(x.mapv(|v| v * 2.)));
        assert_eq!(out.get("sN").unwrap().shape(), &[2, n, 3]);
        assert_eq!(out.get("sN").unwrap(), &TensorData::F32(s.mapv(|v| v + 5.)));
        assert_eq!(
            out.get("k_out").unwrap().as_i64().unwrap().iter().next(),
            Some(&5)
        );
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].x_shape, vec![6, 3]);
    assert_eq!(seen[1].s_shape, vec![2, 6, 3]);
    assert_eq!(seen[1].tags, vec![10., 11., 20., 30., 31., 32.]);
}

#[test]
fn incompatible_requests_are_not_mixed() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(16, 30));
    fake.close();
    let first = b.submit(req(0., 1, 4, 1), Priority::Upload, None).unwrap();
    fake.wait_entered(1);
    let rxs: Vec<Rx> = vec![
        b.submit(req(1., 1, 4, 1), Priority::Upload, None).unwrap(),
        b.submit(req(2., 1, 5, 1), Priority::Upload, None).unwrap(), // other width
        b.submit(req(3., 1, 4, 2), Priority::Upload, None).unwrap(), // other scalar
        b.submit(req(4., 1, 4, 1), Priority::Upload, None).unwrap(),
        b.submit(req(5., 1, 5, 1), Priority::Upload, None).unwrap(),
    ];
    fake.open();
    recv(first).unwrap();
    for rx in rxs {
        recv(rx).unwrap();
    }
    let seen = fake.seen();
    let mut groups: Vec<(Vec<f32>, usize, i64)> = seen[1..]
        .iter()
        .map(|s| (s.tags.clone(), s.x_shape[1], s.k))
        .collect();
    groups.sort_by(|a, b| a.0[0].total_cmp(&b.0[0]));
    assert_eq!(
        groups,
        vec![(vec![1., 4.], 4, 1), (vec![2., 5.], 5, 1), (vec![3.], 4, 2)]
    );
}

#[test]
fn bad_inputs_are_bad_requests() {
    let fake = Arc::new(Fake::default());
    let b = batcher(&fake, cfg(4, 0));
    let mut r = req(0., 1, 2, 1);
    r.pop();
    let e = b.submit(r, Priority::Upload, None).unwrap_err();
    assert_eq!(e.problem_kind(), ProblemKind::BadRequest);
    let mut r = req(0., 1, 2, 1);
    r[0] = NamedTensor::new("k", ArrayD::from_elem(IxDyn(&[]), 1.0f32));
    assert_eq!(
        b.submit(r, Priority::Upload, None)
            .unwrap_err()
            .problem_kind(),
        ProblemKind::BadRequest
    );
    let mut r = req(0., 1, 2, 1);
    r[1] = NamedTensor::new("s", ArrayD::<f32>::zeros(IxDyn(&[3, 1, 3])));
    assert_eq!(
        b.submit(r, Priority::Upload, None)
            .unwrap_err()
            .problem_kind(),
        ProblemKind::BadRequest
    );
    let mut r = req(0., 2, 2, 1);
    r[1] = NamedTensor::new("s", ArrayD::<f32>::zeros(IxDyn(&[2, 3, 3])));
    let e = b.submit(r, Priority::Upload, None).unwrap_err();
    assert!(e.to_string().contains("disagree"), "{e}");
    assert!(fake.seen().is_empty());
}

#[test]
fn backend_failure_reaches_every_request_of_the_batch() {
    let fake = Arc::new(Fake {
        fail: true,
        ..Fake::default()
    });
    let b = batcher(&fake, cfg(4, 30));
    let a = b.submit(req(0., 1, 2, 1), Priority::Upload, None).unwrap();
    let c = b.submit(req(1., 1, 2, 1), Priority::Upload, None).unwrap();
    for rx in [a, c] {
        assert_eq!(recv(rx).unwrap_err().problem_kind(), ProblemKind::Internal);
    }
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_tokio_with_many_submitters() {
    let fake = Arc::new(Fake::default());
    let (i, o) = specs();
    let spec = candor_engine::ModelSpec {
        id: "fake".into(),
        version: "1".into(),
        task: "test".into(),
        backend: candor_engine::manifest::BackendKind::Onnx,
        licence: "MIT".into(),
        file: "x".into(),
        sha256: "0".repeat(64),
        source: candor_engine::manifest::ModelSource::Committed {
            committed: "x".into(),
        },
        batching: Default::default(),
        intra_spinning: None,
        inputs: i,
        outputs: o,
        head: None,
        lm: None,
        extra_files: Vec::new(),
    };
    let h = candor_engine::ModelHandle::new(spec, fake.clone(), cfg(8, 2)).unwrap();
    let engine = candor_engine::Engine::from_handles([h]);
    let h = engine.model("fake").unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let out = h
                .infer(req(t as f32, 1, 2, 1), Priority::Upload, None)
                .await
                .unwrap();
            let y = out.get("y").unwrap().as_f32().unwrap();
            assert_eq!(y[[0, 0]], 2.0 * t as f32);
            out.batch_size
        }));
    }
    let mut max = 0;
    for t in tasks {
        max = max.max(t.await.unwrap());
    }
    assert!(max > 1, "32 concurrent submitters never shared a batch");
    let info = serde_json::to_value(engine.info()).unwrap();
    assert_eq!(info["models"][0]["id"], "fake");
    assert_eq!(info["device"], "cpu");
}
