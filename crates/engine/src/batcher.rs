//! The dynamic batcher: one bounded, three-class queue per model and one or
//! more worker OS threads that form batches and run them on a [`Backend`].
//!
//! # Scheduling
//!
//! * **Admission.** A request is validated against the model's inputs
//!   (names, dtypes, ranks, fixed dimensions) and refused with
//!   [`EngineError::BadInput`] if it does not fit. If the queue already holds
//!   `queue_capacity` requests (all classes together) it is refused at once
//!   with [`EngineError::Overloaded`].
//! * **Leader.** A free worker takes the head of the highest non-empty class
//!   (`live` before `upload` before `bulk`). Anti-starvation (cheap aging):
//!   if the head of a lower class has waited at least `promote_after`, the
//!   oldest such head is taken first instead. With `promote_after = 0` the
//!   order is strictly by class, and bulk can starve under sustained live
//!   load.
//! * **Company.** The worker then gathers compatible requests, again by
//!   class, until the batch holds `max_batch` items or the leader has been
//!   waiting `max_wait` since it was enqueued. Compatible means: same dtype
//!   and same dimensions except along each input's `batch_axis`, and
//!   bit-identical values for inputs without a `batch_axis`. Incompatible
//!   requests stay queued, in order, for a later batch. A single request
//!   larger than `max_batch` runs alone.
//! * **Skips.** Requests whose deadline passed are answered
//!   [`EngineError::DeadlineExceeded`] and never run; requests whose caller
//!   went away (receiver dropped) are discarded without running.
//! * **Run.** Inputs are concatenated along their `batch_axis`, the backend
//!   runs on the worker thread, and outputs are split back along each
//!   output's `batch_axis` (outputs without one are given whole to each
//!   request).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candor_core::Priority;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::error::{EngineError, Result};
use crate::manifest::{BatchingSpec, InputSpec, OutputSpec};
use crate::tensor::{DType, NamedTensor, TensorData};

/// Batching parameters of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchConfig {
    /// Most items (summed batch-axis sizes) in one batch. 1 disables batching.
    pub max_batch: usize,
    /// How long the first request of a forming batch waits for company,
    /// counted from its enqueue time.
    #[serde(serialize_with = "ser_ms")]
    pub max_wait: Duration,
    /// Most requests waiting (all classes together).
    pub queue_capacity: usize,
    /// Worker OS threads.
    pub workers: usize,
    /// Lower-class requests that waited this long are served first
    /// (anti-starvation). `Duration::ZERO` disables aging.
    #[serde(serialize_with = "ser_ms")]
    pub promote_after: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 32,
            max_wait: Duration::from_millis(5),
            queue_capacity: 1024,
            workers: 1,
            promote_after: Duration::from_secs(2),
        }
    }
}

impl BatchConfig {
    /// These defaults overridden by the fields set in `spec`.
    pub fn with_spec(mut self, spec: &BatchingSpec) -> Self {
        if let Some(v) = spec.max_batch {
            self.max_batch = v;
        }
        if let Some(v) = spec.max_wait_ms {
            self.max_wait = Duration::from_millis(v);
        }
        if let Some(v) = spec.queue_capacity {
            self.queue_capacity = v;
        }
        if let Some(v) = spec.workers {
            self.workers = v;
        }
        if let Some(v) = spec.promote_after_ms {
            self.promote_after = Duration::from_millis(v);
        }
        self.max_batch = self.max_batch.max(1);
        self.queue_capacity = self.queue_capacity.max(1);
        self.workers = self.workers.max(1);
        self
    }
}

/// The result of one request.
#[derive(Debug, Clone)]
pub struct InferOutput {
    /// This request's share of every output.
    pub outputs: Vec<NamedTensor>,
    /// Time from enqueue to the start of its batch's execution, in ms.
    pub queue_ms: f64,
    /// Execution time of the whole batch it ran in, in ms.
    pub exec_ms: f64,
    /// Items in the batch it ran in.
    pub batch_size: usize,
}

impl InferOutput {
    /// The output with this name.
    pub fn get(&self, name: &str) -> Option<&TensorData> {
        crate::tensor::find(&self.outputs, name)
    }

    /// Removes and returns the output with this name.
    pub fn take(&mut self, name: &str) -> Option<TensorData> {
        let i = self.outputs.iter().position(|t| t.name == name)?;
        Some(self.outputs.swap_remove(i).data)
    }
}

/// Compatibility key: requests with equal keys can share a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BatchKey(Vec<(DType, Vec<usize>, Option<Vec<u64>>)>);

type Reply = oneshot::Sender<Result<InferOutput>>;

struct Request {
    inputs: Vec<TensorData>,
    items: usize,
    key: BatchKey,
    priority: Priority,
    deadline: Option<Instant>,
    enqueued: Instant,
    reply: Reply,
}

#[derive(Default)]
struct State {
    queues: [VecDeque<Request>; 3],
    len: usize,
    shutdown: bool,
}

struct Shared {
    model: String,
    inputs: Vec<InputSpec>,
    outputs: Vec<OutputSpec>,
    batchable: bool,
    cfg: BatchConfig,
    backend: Arc<dyn Backend>,
    state: Mutex<State>,
    cv: Condvar,
}

/// A model's queue and workers. Dropping it stops the workers after their
/// current batch; requests still queued are answered
/// [`EngineError::ShuttingDown`].
pub struct Batcher {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("model", &self.shared.model)
            .field("cfg", &self.shared.cfg)
            .finish()
    }
}

fn idx(p: Priority) -> usize {
    p as usize
}

fn count(model: &str, priority: Priority, outcome: &'static str) {
    metrics::counter!(
        "candor_engine_requests_total",
        "model" => model.to_string(),
        "priority" => priority.as_str(),
        "outcome" => outcome
    )
    .increment(1);
}

impl Batcher {
    /// Starts `cfg.workers` worker threads for `model`.
    pub fn new(
        model: impl Into<String>,
        inputs: Vec<InputSpec>,
        outputs: Vec<OutputSpec>,
        backend: Arc<dyn Backend>,
        cfg: BatchConfig,
    ) -> Result<Batcher> {
        let model = model.into();
        let cfg = cfg.with_spec(&BatchingSpec::default());
        if inputs.is_empty() {
            return Err(EngineError::backend(&model, "the manifest lists no inputs"));
        }
        let batchable = inputs.iter().any(|i| i.batch_axis.is_some());
        let shared = Arc::new(Shared {
            model: model.clone(),
            inputs,
            outputs,
            batchable,
            cfg,
            backend,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let mut workers = Vec::new();
        for i in 0..shared.cfg.workers {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("candor-{model}-{i}"))
                .spawn(move || s.worker())
                .map_err(|e| EngineError::backend(&model, format!("spawning worker: {e}")))?;
            workers.push(h);
        }
        Ok(Batcher { shared, workers })
    }

    /// Model id.
    pub fn model(&self) -> &str {
        &self.shared.model
    }

    /// Effective batching parameters.
    pub fn config(&self) -> &BatchConfig {
        &self.shared.cfg
    }

    /// Device of the backend.
    pub fn device(&self) -> String {
        self.shared.backend.device()
    }

    /// Requests waiting, per class (`[live, upload, bulk]`).
    pub fn queue_depths(&self) -> [usize; 3] {
        let st = self.shared.lock();
        [st.queues[0].len(), st.queues[1].len(), st.queues[2].len()]
    }

    /// Validates and enqueues a request. Errors (bad input, queue full,
    /// deadline already passed, shutting down) are returned at once; the
    /// receiver yields the result when the request's batch has run.
    pub fn submit(
        &self,
        inputs: Vec<NamedTensor>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<oneshot::Receiver<Result<InferOutput>>> {
        let s = &self.shared;
        let res = s.enqueue(inputs, priority, deadline);
        if let Err(e) = &res {
            count(&s.model, priority, e.outcome());
        }
        res
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.cv.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_depth(&self, st: &State, p: Priority) {
        metrics::gauge!(
            "candor_engine_queue_depth",
            "model" => self.model.clone(),
            "priority" => p.as_str()
        )
        .set(st.queues[idx(p)].len() as f64);
    }

    /// Orders inputs as in the manifest, checks them, computes the key.
    fn prepare(&self, mut given: Vec<NamedTensor>) -> Result<(Vec<TensorData>, usize, BatchKey)> {
        let bad = |m: String| EngineError::bad_input(&self.model, m);
        if given.len() != self.inputs.len() {
            let names: Vec<_> = given.iter().map(|t| t.name.as_str()).collect();
            let want: Vec<_> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(bad(format!("got inputs {names:?}, expected {want:?}")));
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        let mut key = Vec::with_capacity(self.inputs.len());
        let mut items: Option<usize> = None;
        for spec in &self.inputs {
            let pos = given
                .iter()
                .position(|t| t.name == spec.name)
                .ok_or_else(|| bad(format!("missing input `{}`", spec.name)))?;
            let t = given.swap_remove(pos).data;
            if t.dtype() != spec.dtype {
                return Err(bad(format!(
                    "input `{}` must be {}, got {}",
                    spec.name,
                    spec.dtype.as_str(),
                    t.dtype().as_str()
                )));
            }
            let shape = t.shape().to_vec();
            if let Some(want) = &spec.shape {
                let ok = want.len() == shape.len()
                    && want.iter().zip(&shape).enumerate().all(|(ax, (w, g))| {
                        *w < 0 || Some(ax) == spec.batch_axis || *w as usize == *g
                    });
                if !ok {
                    return Err(bad(format!(
                        "input `{}` has shape {shape:?}, expected {want:?} (-1 = any)",
                        spec.name
                    )));
                }
            }
            match spec.batch_axis {
                Some(ax) => {
                    let n = *shape.get(ax).ok_or_else(|| {
                        bad(format!(
                            "input `{}` has no axis {ax} to batch along",
                            spec.name
                        ))
                    })?;
                    if n == 0 {
                        return Err(bad(format!(
                            "input `{}` is empty along axis {ax}",
                            spec.name
                        )));
                    }
                    if let Some(m) = items {
                        if m != n {
                            return Err(bad(format!(
                                "inputs disagree on the batch size ({m} vs {n} for `{}`)",
                                spec.name
                            )));
                        }
                    }
                    items = Some(n);
                    let mut dims = shape;
                    dims[ax] = 0;
                    key.push((t.dtype(), dims, None));
                }
                None => key.push((t.dtype(), shape, Some(t.bits()))),
            }
            ordered.push(t);
        }
        Ok((ordered, items.unwrap_or(1), BatchKey(key)))
    }

    fn enqueue(
        &self,
        inputs: Vec<NamedTensor>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<oneshot::Receiver<Result<InferOutput>>> {
        let (inputs, items, key) = self.prepare(inputs)?;
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Err(EngineError::DeadlineExceeded {
                model: self.model.clone(),
                waited_ms: 0.0,
            });
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if st.shutdown {
                return Err(EngineError::ShuttingDown(self.model.clone()));
            }
            if st.len >= self.cfg.queue_capacity {
                return Err(EngineError::Overloaded {
                    model: self.model.clone(),
                    capacity: self.cfg.queue_capacity,
                });
            }
            st.queues[idx(priority)].push_back(Request {
                inputs,
                items,
                key,
                priority,
                deadline,
                enqueued: now,
                reply: tx,
            });
            st.len += 1;
            self.set_depth(&st, priority);
        }
        self.cv.notify_all();
        Ok(rx)
    }

    /// True (and counted) if the request's caller went away.
    fn cancelled(&self, r: &Request) -> bool {
        if r.reply.is_closed() {
            count(&self.model, r.priority, "cancelled");
            return true;
        }
        false
    }

    /// Removes the request at `i` of class `q` if it is expired or
    /// cancelled (answering it); returns whether it did.
    fn reap(&self, st: &mut State, q: usize, i: usize, now: Instant) -> bool {
        let r = &st.queues[q][i];
        let expired = r.deadline.is_some_and(|d| d <= now);
        if !expired && !self.cancelled(r) {
            return false;
        }
        let r = st.queues[q].remove(i).expect("index in range");
        st.len -= 1;
        if expired {
            count(&self.model, r.priority, "deadline");
            let _ = r.reply.send(Err(EngineError::DeadlineExceeded {
                model: self.model.clone(),
                waited_ms: ms(now - r.enqueued),
            }));
        }
        true
    }

    fn pop_leader(&self, st: &mut State, now: Instant) -> Option<Request> {
        // Drop dead heads first so aging and class order see live requests.
        for q in 0..3 {
            while !st.queues[q].is_empty() && self.reap(st, q, 0, now) {}
        }
        let promote = self.cfg.promote_after;
        let mut pick = None;
        if !promote.is_zero() {
            pick = (1..3)
                .filter_map(|q| st.queues[q].front().map(|r| (q, r.enqueued)))
                .filter(|(_, t)| now.duration_since(*t) >= promote)
                .min_by_key(|(_, t)| *t)
                .map(|(q, _)| q);
        }
        let q = pick.or_else(|| (0..3).find(|q| !st.queues[*q].is_empty()))?;
        let r = st.queues[q].pop_front()?;
        st.len -= 1;
        Some(r)
    }

    /// Moves compatible requests into `batch` until it is full.
    fn gather(&self, st: &mut State, batch: &mut Vec<Request>, items: &mut usize) {
        let now = Instant::now();
        for q in 0..3 {
            let mut i = 0;
            while i < st.queues[q].len() && *items < self.cfg.max_batch {
                if self.reap(st, q, i, now) {
                    continue;
                }
                let r = &st.queues[q][i];
                if r.key == batch[0].key && *items + r.items <= self.cfg.max_batch {
                    let r = st.queues[q].remove(i).expect("index in range");
                    st.len -= 1;
                    *items += r.items;
                    batch.push(r);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Blocks until a batch is formed; `None` on shutdown.
    fn next_batch(&self) -> Option<Vec<Request>> {
        let mut st = self.lock();
        let leader = loop {
            if st.shutdown {
                let model = self.model.clone();
                for q in st.queues.iter_mut() {
                    for r in q.drain(..) {
                        count(&model, r.priority, "error");
                        let _ = r.reply.send(Err(EngineError::ShuttingDown(model.clone())));
                    }
                }
                st.len = 0;
                for p in Priority::ALL {
                    self.set_depth(&st, p);
                }
                return None;
            }
            if let Some(r) = self.pop_leader(&mut st, Instant::now()) {
                break r;
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        };
        let window_end = leader.enqueued + self.cfg.max_wait;
        let mut items = leader.items;
        let mut batch = vec![leader];
        if self.shared_batchable() {
            loop {
                self.gather(&mut st, &mut batch, &mut items);
                let now = Instant::now();
                if items >= self.cfg.max_batch || now >= window_end || st.shutdown {
                    break;
                }
                st = self
                    .cv
                    .wait_timeout(st, window_end - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        for p in Priority::ALL {
            self.set_depth(&st, p);
        }
        Some(batch)
    }

    fn shared_batchable(&self) -> bool {
        self.batchable && self.cfg.max_batch > 1
    }

    fn worker(self: Arc<Self>) {
        while let Some(batch) = self.next_batch() {
            self.execute(batch);
        }
    }

    fn execute(&self, batch: Vec<Request>) {
        // Callers that left while the batch formed are not run.
        let batch: Vec<Request> = batch.into_iter().filter(|r| !self.cancelled(r)).collect();
        if batch.is_empty() {
            return;
        }
        let items: usize = batch.iter().map(|r| r.items).sum();
        let start = Instant::now();
        let mut batch = batch;
        let inputs = match self.concat_inputs(&mut batch) {
            Ok(v) => v,
            Err(e) => return self.fail(batch, e, start),
        };
        let result = self.backend.run(inputs);
        let exec = start.elapsed();
        let exec_ms = ms(exec);
        metrics::histogram!("candor_engine_exec_seconds", "model" => self.model.clone())
            .record(exec.as_secs_f64());
        metrics::histogram!("candor_engine_batch_size", "model" => self.model.clone())
            .record(items as f64);
        let outputs = match result {
            Ok(o) => o,
            Err(e) => return self.fail(batch, e, start),
        };
        let mut per_request: Vec<Vec<NamedTensor>> = vec![Vec::new(); batch.len()];
        for out in &outputs {
            let axis = self
                .outputs
                .iter()
                .find(|o| o.name == out.name)
                .and_then(|o| o.batch_axis);
            match axis {
                Some(ax) if out.data.shape().get(ax) != Some(&items) => {
                    let e = EngineError::backend(
                        &self.model,
                        format!(
                            "output `{}` has shape {:?}; expected {items} items along axis {ax}",
                            out.name,
                            out.data.shape()
                        ),
                    );
                    return self.fail(batch, e, start);
                }
                _ => {}
            }
            let mut offset = 0;
            for (slot, r) in per_request.iter_mut().zip(&batch) {
                let data = match axis {
                    Some(ax) if batch.len() > 1 => {
                        out.data.slice_axis(ax, offset, offset + r.items)
                    }
                    _ => out.data.clone(),
                };
                offset += r.items;
                slot.push(NamedTensor {
                    name: out.name.clone(),
                    data,
                });
            }
        }
        for (r, outs) in batch.into_iter().zip(per_request) {
            let queue = start.duration_since(r.enqueued);
            self.record_wait(r.priority, queue);
            let out = InferOutput {
                outputs: outs,
                queue_ms: ms(queue),
                exec_ms,
                batch_size: items,
            };
            let outcome = if r.reply.send(Ok(out)).is_ok() {
                "ok"
            } else {
                "cancelled"
            };
            count(&self.model, r.priority, outcome);
        }
    }

    fn record_wait(&self, p: Priority, d: Duration) {
        metrics::histogram!(
            "candor_engine_queue_wait_seconds",
            "model" => self.model.clone(),
            "priority" => p.as_str()
        )
        .record(d.as_secs_f64());
    }

    fn fail(&self, batch: Vec<Request>, e: EngineError, start: Instant) {
        tracing::warn!(model = %self.model, error = %e, "batch failed");
        for r in batch {
            self.record_wait(r.priority, start.duration_since(r.enqueued));
            count(&self.model, r.priority, e.outcome());
            let _ = r.reply.send(Err(e.clone()));
        }
    }

    /// Builds the batch's inputs; a single request's tensors are moved.
    fn concat_inputs(&self, batch: &mut [Request]) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::with_capacity(self.inputs.len());
        for (j, spec) in self.inputs.iter().enumerate() {
            let data = match spec.batch_axis {
                Some(ax) if batch.len() > 1 => {
                    let parts: Vec<&TensorData> = batch.iter().map(|r| &r.inputs[j]).collect();
                    TensorData::concat(&parts, ax).ok_or_else(|| {
                        EngineError::backend(
                            &self.model,
                            format!("cannot concatenate `{}`", spec.name),
                        )
                    })?
                }
                _ if batch.len() == 1 => std::mem::replace(
                    &mut batch[0].inputs[j],
                    TensorData::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[0]))),
                ),
                _ => batch[0].inputs[j].clone(),
            };
            out.push(NamedTensor {
                name: spec.name.clone(),
                data,
            });
        }
        Ok(out)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
