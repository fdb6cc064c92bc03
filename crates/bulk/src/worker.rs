//! The bulk worker: apalis workers over the item and webhook queues, each
//! item analysed by [`Analyzer::analyze`] at `bulk` priority and its
//! outcome upserted on the item's row.
//!
//! apalis's worker ends when its backend fails to poll (a lost database
//! connection), and its SQLite backend has been reported to stop picking
//! up jobs in long-running servers (apalis-sqlite issue #58). So every
//! apalis worker here runs under a supervisor that rebuilds it, with a
//! fresh worker id, after a backend error (exponential backoff) and when a
//! stall watchdog sees pending items, nothing in flight and nothing
//! finished for `stall_timeout`. Tasks the old worker held come back
//! through apalis's heartbeat-based orphan recovery; a redelivered item
//! whose result is already stored is not analysed again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use candor_core::{sha256_hex, Evidence, Modality, Priority, ToProblem};
use candor_detectors::{AnalyzeError, AnalyzeOptions, Analyzer, InputSource, RawInput};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::{BulkError, Result};
use crate::store::{Db, ItemOutcome, ItemState, ItemTask, Store, ITEM_QUEUE, WEBHOOK_QUEUE};
use crate::webhook::{self, WebhookConfig, WebhookTask};

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Prefix of the worker ids registered with apalis (host and pid are
    /// added).
    pub name: String,
    /// Items analysed at once by this process.
    pub concurrency: usize,
    /// Deadline of one item's analysis.
    pub item_timeout: Duration,
    /// How often the worker beats its heartbeat and, when idle, polls for
    /// new tasks.
    pub poll_interval: Duration,
    /// Heartbeats missed before another worker takes this one's tasks.
    pub missed_heartbeats: usize,
    /// Tasks fetched per poll.
    pub fetch_batch: usize,
    /// Keep heatmap/spectrogram pictures in stored results (large).
    pub keep_pictures: bool,
    /// Restart the item worker when items are pending, none is in flight
    /// and none finished for this long.
    pub stall_timeout: Duration,
    /// Longest wait between restarts after backend errors.
    pub max_restart_backoff: Duration,
    pub webhook: WebhookConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: "candor-worker".into(),
            concurrency: 2,
            item_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
            missed_heartbeats: 30,
            fetch_batch: 8,
            keep_pictures: false,
            stall_timeout: Duration::from_secs(300),
            max_restart_backoff: Duration::from_secs(30),
            webhook: WebhookConfig::default(),
        }
    }
}

/// What a worker process has done (shared with its caller, e.g. for a
/// progress bar).
#[derive(Debug)]
pub struct Progress {
    pub in_flight: AtomicUsize,
    pub finished: AtomicU64,
    pub analysed: AtomicU64,
    pub restarts: AtomicU64,
    last_finished: Mutex<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            in_flight: AtomicUsize::new(0),
            finished: AtomicU64::new(0),
            analysed: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            last_finished: Mutex::new(Instant::now()),
        }
    }
}

impl Progress {
    fn touch(&self) {
        *self.last_finished.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// Where a worker enrols the identity templates of the items it analyses
/// (the identity registry, which lives in a crate above this one) and gets
/// back how many matches they made.
pub trait Enroller: Send + Sync {
    fn enroll<'a>(
        &'a self,
        scope: &'a str,
        applicant: &'a str,
        input_sha256: &'a str,
        input_name: Option<&'a str>,
        templates: &'a candor_core::IdentityTemplates,
    ) -> futures_util::future::BoxFuture<'a, std::result::Result<usize, String>>;
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    analyzer: Arc<Analyzer>,
    /// The identity registry, when items are enrolled.
    identity: Option<Arc<dyn Enroller>>,
    cfg: WorkerConfig,
    /// Detectors and models per modality, hashed: a stored result whose
    /// fingerprint differs was made by other models.
    fingerprints: BTreeMap<Modality, String>,
    /// This process's name in stored rows.
    worker: String,
    progress: Arc<Progress>,
}

/// Fingerprint of what scores each modality: the detector's name, version
/// and installed state, and every model the engine loaded (id, version,
/// sha256). Conservative: a change to any model re-scores every modality.
pub fn model_fingerprints(analyzer: &Analyzer) -> BTreeMap<Modality, String> {
    let info = analyzer.info();
    let models = serde_json::to_string(&info.models).unwrap_or_default();
    analyzer
        .detectors()
        .into_iter()
        .map(|d| {
            let mut h = Sha256::new();
            h.update(
                json!([d.modality, d.installed, d.name, d.version, models])
                    .to_string()
                    .as_bytes(),
            );
            (d.modality, hex::encode(&h.finalize()[..12]))
        })
        .collect()
}

/// A worker process: serves the item and webhook queues of `store` until
/// `shutdown` turns true.
pub struct BulkWorker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BulkWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkWorker")
            .field("worker", &self.inner.worker)
            .finish()
    }
}

impl BulkWorker {
    pub fn new(store: Store, analyzer: Arc<Analyzer>, cfg: WorkerConfig) -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let worker = format!("{}@{}:{}", cfg.name, host, std::process::id());
        BulkWorker {
            inner: Arc::new(Inner {
                fingerprints: model_fingerprints(&analyzer),
                store,
                analyzer,
                identity: None,
                cfg,
                worker,
                progress: Arc::new(Progress::default()),
            }),
        }
    }

    /// Enrols every analysed item's face, voice and resume templates in
    /// `registry` under its applicant id, scoped to the batch's owner, and
    /// matches them against the applicants already there. Call before
    /// [`BulkWorker::run`].
    pub fn with_identity(mut self, registry: Arc<dyn Enroller>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.identity = Some(registry);
        }
        self
    }

    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.inner.progress)
    }

    /// Runs until `shutdown` holds `true`; in-flight items finish first.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<()> {
        let items = supervise(Arc::clone(&self.inner), Queue::Items, shutdown.clone());
        let hooks = supervise(Arc::clone(&self.inner), Queue::Webhooks, shutdown);
        tokio::join!(items, hooks);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Items,
    Webhooks,
}

impl Queue {
    fn as_str(self) -> &'static str {
        match self {
            Queue::Items => "items",
            Queue::Webhooks => "webhooks",
        }
    }
}

/// Why one run of an apalis worker ended.
enum Ended {
    Shutdown,
    Stalled,
    Failed(String),
}

async fn supervise(inner: Arc<Inner>, queue: Queue, shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(250);
    let mut run = 0u64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        run += 1;
        let name = format!("{}/{}/{run}", inner.worker, queue.as_str());
        inner.progress.touch();
        let started = Instant::now();
        let ended = run_once(&inner, queue, &name, shutdown.clone()).await;
        let reason = match ended {
            Ended::Shutdown => return,
            Ended::Stalled => {
                tracing::warn!(worker = %name, "bulk worker stalled with items pending; restarting it");
                "stalled"
            }
            Ended::Failed(e) => {
                tracing::warn!(worker = %name, error = %e, backoff_ms = backoff.as_millis() as u64, "bulk worker stopped; restarting it");
                "backend_error"
            }
        };
        metrics::counter!("candor_bulk_worker_restarts_total", "queue" => queue.as_str(), "reason" => reason)
            .increment(1);
        inner.progress.restarts.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(250);
        }
        let mut sd = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = sd.wait_for(|v| *v) => return,
        }
        backoff = (backoff * 2).min(inner.cfg.max_restart_backoff);
    }
}

/// Resolves when the item worker looks stalled: pending items in active
/// batches, none in flight here, none finished for `stall_timeout`.
async fn stalled(inner: Arc<Inner>) {
    let timeout = inner.cfg.stall_timeout;
    let every = (timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
    loop {
        tokio::time::sleep(every).await;
        if inner.progress.in_flight.load(Ordering::Relaxed) > 0
            || inner.progress.idle_for() < timeout
        {
            continue;
        }
        if matches!(inner.store.pending_items().await, Ok(n) if n > 0) {
            return;
        }
        inner.progress.touch();
    }
}

/// Builds one apalis worker on `$storage` and runs it until `$stop`.
macro_rules! run_worker {
    ($storage:expr, $name:expr, $conc:expr, $inner:expr, $handler:expr, $stop:expr) => {{
        let worker = WorkerBuilder::new($name)
            .backend($storage)
            .data(Arc::clone($inner))
            .catch_panic()
            .concurrency($conc)
            .build($handler);
        let stop = $stop;
        worker
            .run_with_ctx(move |ctx| {
                let stop = stop.clone();
                async move {
                    let mut rx = stop;
                    let _ = rx.wait_for(|v| *v).await;
                    ctx.stop()?;
                    Ok(())
                }
            })
            .await
    }};
}

async fn run_once(
    inner: &Arc<Inner>,
    queue: Queue,
    name: &str,
    shutdown: watch::Receiver<bool>,
) -> Ended {
    // One stop signal for this run: shutdown or (items) a stall.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stalled_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let mut shutdown = shutdown.clone();
        let inner = Arc::clone(inner);
        let flag = Arc::clone(&stalled_flag);
        tokio::spawn(async move {
            let stall = async {
                if queue == Queue::Items {
                    stalled(inner).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = shutdown.wait_for(|v| *v) => {}
                _ = stall => flag.store(true, Ordering::Relaxed),
            }
            let _ = stop_tx.send(true);
        })
    };
    let cfg = &inner.cfg;
    let conc = match queue {
        Queue::Items => cfg.concurrency.max(1),
        Queue::Webhooks => 2,
    };
    let result = match (inner.store.db(), queue) {
        (Db::Sqlite(pool), q) => {
            let qname = if q == Queue::Items {
                ITEM_QUEUE
            } else {
                WEBHOOK_QUEUE
            };
            let config = apalis_sqlite::Config::default()
                .queue(qname)
                .batch_size(cfg.fetch_batch.max(1))
                .heartbeat_interval(cfg.poll_interval)
                .missed_heartbeats(cfg.missed_heartbeats.max(2));
            match q {
                Queue::Items => {
                    let s = apalis_sqlite::SqliteStorage::<ItemTask>::new(pool).with_config(config);
                    run_worker!(s, name, conc, inner, item_handler, stop_rx)
                }
                Queue::Webhooks => {
                    let s =
                        apalis_sqlite::SqliteStorage::<WebhookTask>::new(pool).with_config(config);
                    run_worker!(s, name, conc, inner, webhook_handler, stop_rx)
                }
            }
        }
        (Db::Postgres(pool), q) => {
            let qname = if q == Queue::Items {
                ITEM_QUEUE
            } else {
                WEBHOOK_QUEUE
            };
            let config = apalis_postgres::Config::default()
                .queue(qname)
                .batch_size(cfg.fetch_batch.max(1))
                .heartbeat_interval(cfg.poll_interval)
                .missed_heartbeats(cfg.missed_heartbeats.max(2));
            match q {
                Queue::Items => {
                    let s =
                        apalis_postgres::PostgresStorage::<ItemTask>::new(pool).with_config(config);
                    run_worker!(s, name, conc, inner, item_handler, stop_rx)
                }
                Queue::Webhooks => {
                    let s = apalis_postgres::PostgresStorage::<WebhookTask>::new(pool)
                        .with_config(config);
                    run_worker!(s, name, conc, inner, webhook_handler, stop_rx)
                }
            }
        }
    };
    watcher.abort();
    if *shutdown.borrow() {
        return Ended::Shutdown;
    }
    match result {
        Ok(()) if stalled_flag.load(Ordering::Relaxed) => Ended::Stalled,
        Ok(()) => Ended::Failed("the worker ended".into()),
        Err(e) => Ended::Failed(e.to_string()),
    }
}

type HandlerResult = std::result::Result<(), BoxDynError>;

async fn item_handler(task: ItemTask, inner: Data<Arc<Inner>>) -> HandlerResult {
    let inner: Arc<Inner> = Arc::clone(&inner);
    inner.progress.in_flight.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let r = process_item(&inner, &task).await;
    inner.progress.in_flight.fetch_sub(1, Ordering::Relaxed);
    match r {
        Ok(outcome) => {
            inner.progress.finished.fetch_add(1, Ordering::Relaxed);
            inner.progress.touch();
            metrics::counter!("candor_bulk_items_total", "outcome" => outcome).increment(1);
            metrics::histogram!("candor_bulk_item_seconds", "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            Ok(())
        }
        Err(e) => {
            // Database trouble: apalis retries the task (the item stays pending).
            metrics::counter!("candor_bulk_items_total", "outcome" => "retry").increment(1);
            tracing::warn!(item = %task.item, error = %e, "bulk item not recorded; it will be retried");
            Err(Box::new(e))
        }
    }
}

fn problem_json(kind: candor_core::ProblemKind, code: Option<&str>, detail: &str) -> String {
    json!({
        "type": kind.type_uri(),
        "title": kind.title(),
        "status": kind.status(),
        "detail": detail,
        "code": code,
    })
    .to_string()
}

fn file_error(inner: &Inner, code: &str, detail: String) -> ItemOutcome {
    ItemOutcome {
        state: ItemState::Error,
        sha256: None,
        models: None,
        modality: None,
        score: None,
        label: None,
        result: None,
        error_code: Some(code.to_owned()),
        error: Some(problem_json(
            candor_core::ProblemKind::UnprocessableInput,
            Some(code),
            &detail,
        )),
        worker: Some(inner.worker.clone()),
    }
}

/// One item, start to end. `Ok` names the outcome (metrics label); `Err`
/// is a database failure (the task is retried).
async fn process_item(inner: &Inner, task: &ItemTask) -> Result<&'static str> {
    let store = &inner.store;
    let Some(item) = store.item(&task.item).await? else {
        tracing::warn!(item = %task.item, "queued item has no row; skipped");
        return Ok("unknown");
    };
    if item.state != ItemState::Pending || task.gen < item.generation {
        // Cancelled, finished by an earlier delivery, or superseded.
        return Ok("skipped");
    }
    let max = inner.analyzer.limits().max_upload_bytes;
    let path = std::path::PathBuf::from(&item.path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let bytes = match tokio::fs::metadata(&path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(file_error(
            inner,
            "file_missing",
            format!("no file at {}", item.path),
        )),
        Err(e) => Err(file_error(
            inner,
            "file_unreadable",
            format!("{}: {e}", item.path),
        )),
        Ok(m) if !m.is_file() => Err(file_error(
            inner,
            "not_a_file",
            format!("{} is not a regular file", item.path),
        )),
        Ok(m) if m.len() > max => Err(file_error(
            inner,
            "max_upload_bytes",
            format!(
                "{} is {} bytes, the per-input limit is {max}",
                item.path,
                m.len()
            ),
        )),
        Ok(_) => match tokio::fs::read(&path).await {
            Ok(b) => Ok(b),
            Err(e) => Err(file_error(
                inner,
                "file_unreadable",
                format!("{}: {e}", item.path),
            )),
        },
    };
    let bytes: Arc<[u8]> = match bytes {
        Ok(b) => Arc::from(b),
        Err(outcome) => {
            if store.start_item(&item.item_id, &inner.worker).await? {
                store.finish_item(&item.item_id, &outcome).await?;
            }
            after_item(inner, &item.batch_id).await?;
            return Ok("error");
        }
    };
    let sha = sha256_hex(&bytes);
    let unchanged = item.sha256.as_deref() == Some(sha.as_str())
        && item.result.is_some()
        && item
            .modality
            .as_deref()
            .and_then(parse_modality)
            .and_then(|m| inner.fingerprints.get(&m))
            .map(String::as_str)
            == item.models.as_deref();
    if unchanged {
        store.keep_item(&item.item_id, &inner.worker).await?;
        after_item(inner, &item.batch_id).await?;
        return Ok("unchanged");
    }
    if !store.start_item(&item.item_id, &inner.worker).await? {
        return Ok("skipped");
    }
    let opts = AnalyzeOptions {
        priority: Priority::Bulk,
        deadline: Some(Instant::now() + inner.cfg.item_timeout),
        identity: inner.identity.is_some(),
    };
    let input = InputSource::File(RawInput {
        bytes,
        name: name.clone(),
        content_type: None,
    });
    let analysed = match tokio::time::timeout(
        inner.cfg.item_timeout + Duration::from_secs(1),
        inner.analyzer.analyze(input, &opts),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(AnalyzeError::Deadline {
            elapsed_ms: inner.cfg.item_timeout.as_secs_f64() * 1e3,
        }),
    };
    inner.progress.analysed.fetch_add(1, Ordering::Relaxed);
    let (outcome, label) = match analysed {
        Ok(mut r) => {
            if let (Some(reg), Some(t)) = (&inner.identity, r.identity.take()) {
                // Scoped like the API: the digest of the key that submitted the batch.
                let owner = store.batch(&item.batch_id, None).await?.owner;
                match reg
                    .enroll(
                        owner.as_deref().unwrap_or(""),
                        &item.applicant_id,
                        &sha,
                        name.as_deref(),
                        &t,
                    )
                    .await
                {
                    Ok(n) => {
                        metrics::counter!("candor_bulk_identity_matches_total").increment(n as u64)
                    }
                    Err(e) => {
                        tracing::warn!(item = %item.item_id, error = %e, "identity registry enrolment failed");
                        r.warnings.push(
                            "the identity registry could not be consulted for this input".into(),
                        );
                    }
                }
            }
            if !inner.cfg.keep_pictures {
                r.evidence
                    .retain(|e| !matches!(e, Evidence::Picture { .. }));
            }
            let scored = r.score.is_some();
            (
                ItemOutcome {
                    state: ItemState::Done,
                    sha256: Some(sha),
                    models: inner.fingerprints.get(&r.modality).cloned(),
                    modality: Some(r.modality.as_str().to_owned()),
                    score: r.score,
                    label: r.label.map(|l| l.as_str().to_owned()),
                    result: serde_json::to_string(&r).ok(),
                    error_code: None,
                    error: None,
                    worker: Some(inner.worker.clone()),
                },
                if scored { "scored" } else { "abstained" },
            )
        }
        Err(e) => {
            let code = e.problem_code();
            (
                ItemOutcome {
                    state: ItemState::Error,
                    sha256: Some(sha),
                    models: None,
                    modality: None,
                    score: None,
                    label: None,
                    result: None,
                    error_code: Some(code.unwrap_or("analysis_failed").to_owned()),
                    error: Some(problem_json(e.problem_kind(), code, &e.to_string())),
                    worker: Some(inner.worker.clone()),
                },
                "error",
            )
        }
    };
    let written = store.finish_item(&item.item_id, &outcome).await?;
    after_item(inner, &item.batch_id).await?;
    Ok(if written { label } else { "superseded" })
}

fn parse_modality(s: &str) -> Option<Modality> {
    Modality::ALL.into_iter().find(|m| m.as_str() == s)
}

/// After an item: when it was its batch's last, queue the completion webhook.
async fn after_item(inner: &Inner, batch_id: &str) -> Result<()> {
    inner.store.queue_completion(batch_id).await
}

async fn webhook_handler(task: WebhookTask, inner: Data<Arc<Inner>>) -> HandlerResult {
    let inner: Arc<Inner> = Arc::clone(&inner);
    match webhook::deliver(&inner.store, &inner.cfg.webhook, &task).await {
        Ok(outcome) => {
            metrics::counter!("candor_bulk_webhooks_total", "outcome" => outcome).increment(1);
            Ok(())
        }
        Err(e @ BulkError::Database(_)) => Err(Box::new(e)),
        Err(e) => {
            metrics::counter!("candor_bulk_webhooks_total", "outcome" => "error").increment(1);
            tracing::warn!(batch = %task.batch_id, error = %e, "webhook not delivered");
            Ok(())
        }
    }
}
