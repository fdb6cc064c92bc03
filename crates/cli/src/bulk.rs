//! `candor bulk submit|status|results|report|cancel` and `candor worker`:
//! bulk re-screening of stored files (crates/bulk).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use candor_bulk::{
    report, BulkError, BulkWorker, Format, ManifestLimits, ManifestReader, NewBatch, Store,
    WebhookConfig, WorkerConfig,
};
use clap::{Args, Subcommand};
use tokio::sync::watch;

use crate::args::AnalyzerArgs;
use crate::EXIT_USAGE;

/// Where batches and their queue live.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// The bulk queue: a SQLite file (default `$CANDOR_HOME/bulk.db`: one
    /// machine, no server to run) or `postgres://user:pass@host/db` (many
    /// worker processes on many machines; needs a PostgreSQL server).
    /// SQLite serialises writes, so past a few workers on one machine
    /// PostgreSQL keeps up better.
    #[arg(long, env = "CANDOR_QUEUE")]
    pub queue: Option<String>,

    /// Database connections this process keeps open. More lets more
    /// items be recorded at once; each is a server process on PostgreSQL.
    #[arg(long, env = "CANDOR_QUEUE_MAX_CONNECTIONS", default_value_t = 8)]
    pub queue_max_connections: u32,
}

impl QueueArgs {
    pub fn url(&self, candor_home: &std::path::Path) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| candor_home.join("bulk.db").display().to_string())
    }

    pub async fn open(&self, candor_home: &std::path::Path) -> Result<Store, BulkError> {
        Store::open(&self.url(candor_home), self.queue_max_connections).await
    }
}

/// How a worker processes items.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Items this process analyses at once. More uses more cores (and
    /// memory: one input plus its decoded form each) until the CPU or the
    /// models' batchers saturate; on a machine that also serves live
    /// traffic, keep it low so bulk work leaves cores free.
    #[arg(long, env = "CANDOR_WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: usize,

    /// Deadline of one item's analysis, in seconds; an item past it is
    /// recorded as an error (`deadline-exceeded`) and the batch goes on.
    /// Longer admits long interviews on slow CPUs; shorter bounds how long
    /// one bad file holds a slot.
    #[arg(long, env = "CANDOR_BULK_ITEM_TIMEOUT_SECS", default_value_t = 300)]
    pub item_timeout_secs: u64,

    /// Milliseconds between a worker's heartbeats; an idle worker also
    /// looks for new items this often. Shorter picks up new batches sooner
    /// at the cost of one query per interval per worker.
    #[arg(long, env = "CANDOR_WORKER_POLL_INTERVAL_MS", default_value_t = 2000)]
    pub poll_interval_ms: u64,

    /// Heartbeats a worker may miss before other workers take over its
    /// items (a worker killed mid-item is noticed after this × the poll
    /// interval). Higher avoids taking items from a worker that is merely
    /// slow; lower recovers from crashes sooner.
    #[arg(long, env = "CANDOR_WORKER_MISSED_HEARTBEATS", default_value_t = 30)]
    pub missed_heartbeats: usize,

    /// Items fetched from the queue per poll. Larger batches cost fewer
    /// queries per item; smaller ones spread a batch more evenly across
    /// workers.
    #[arg(long, env = "CANDOR_WORKER_FETCH_BATCH", default_value_t = 8)]
    pub fetch_batch: usize,

    /// Keep the heatmap and spectrogram pictures in stored results. Off
    /// saves ~20-150 KB per item (gigabytes over a large batch).
    #[arg(long, env = "CANDOR_BULK_KEEP_PICTURES", default_value_t = false, action = clap::ArgAction::Set)]
    pub keep_pictures: bool,

    /// Seconds without a finished item, while items are pending and none
    /// is in flight here, after which the worker's queue poller is rebuilt
    /// (a guard against pollers that stop picking up work). Shorter
    /// recovers sooner; too short restarts pollers that merely wait for
    /// another worker's crashed items to come back.
    #[arg(long, env = "CANDOR_WORKER_STALL_TIMEOUT_SECS", default_value_t = 300)]
    pub stall_timeout_secs: u64,

    /// Key that signs completion webhooks (HMAC-SHA256). Without it no
    /// webhook is sent: an unsigned one could be forged. Prefer the
    /// environment variable to the flag (flags show up in `ps`).
    #[arg(long, env = "CANDOR_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Deliveries of one webhook before it is given up. More survives a
    /// longer receiver outage; each retry waits twice as long as the last.
    #[arg(long, env = "CANDOR_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,

    /// Seconds before the first webhook retry (doubling after, capped at
    /// an hour). Shorter retries sooner; longer spares a struggling
    /// receiver.
    #[arg(long, env = "CANDOR_WEBHOOK_BACKOFF_SECS", default_value_t = 10)]
    pub webhook_backoff_secs: u64,
}

impl WorkerArgs {
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            name: "candor-worker".into(),
            concurrency: self.worker_concurrency.max(1),
            item_timeout: Duration::from_secs(self.item_timeout_secs.max(1)),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(50)),
            missed_heartbeats: self.missed_heartbeats.max(2),
            fetch_batch: self.fetch_batch.max(1),
            keep_pictures: self.keep_pictures,
            stall_timeout: Duration::from_secs(self.stall_timeout_secs.max(1)),
            max_restart_backoff: Duration::from_secs(30),
            webhook: WebhookConfig {
                secret: self.webhook_secret.clone().filter(|s| !s.is_empty()),
                max_attempts: self.webhook_max_attempts.max(1),
                backoff: Duration::from_secs(self.webhook_backoff_secs.max(1)),
                timeout: Duration::from_secs(10),
            },
        }
    }
}

/// Bounds on what a manifest may hold.
#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// Most items (files) one batch may hold. Bounds the rows one batch
    /// adds to the database and the time its report takes.
    #[arg(long, env = "CANDOR_BULK_MAX_ITEMS", default_value_t = 5_000_000)]
    pub max_batch_items: u64,

    /// Most files one applicant may have once directories are expanded;
    /// an applicant over it stops the submit with an error. Guards against
    /// a manifest row pointing at the root of a share.
    #[arg(
        long,
        env = "CANDOR_BULK_MAX_FILES_PER_APPLICANT",
        default_value_t = 1000
    )]
    pub max_files_per_applicant: usize,

    /// Most bytes read from a manifest file.
    #[arg(long, env = "CANDOR_BULK_MAX_MANIFEST_BYTES", default_value_t = 1 << 30)]
    pub max_manifest_bytes: u64,
}

impl ManifestArgs {
    pub fn limits(&self) -> ManifestLimits {
        ManifestLimits {
            max_manifest_bytes: self.max_manifest_bytes,
            max_files_per_applicant: self.max_files_per_applicant.max(1),
            ..ManifestLimits::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Submit a manifest (CSV or JSONL: applicant_id, files, any other
    /// columns) or a directory (one folder per applicant), then process it
    /// here with a progress bar. Ctrl-C stops; running the same command
    /// again resumes the same batch (its id is derived from the manifest's
    /// path) and never enqueues an item twice.
    Submit(Box<SubmitArgs>),
    /// Counts, rate and ETA of a batch.
    Status(StatusArgs),
    /// Stream a batch's item rows as CSV or JSONL.
    Results(ResultsArgs),
    /// Per-applicant cases ranked by risk, and the impact report over the
    /// manifest's group columns.
    Report(ReportArgs),
    /// Cancel a batch: no pending item of it is started from now on.
    Cancel(StatusArgs),
}

#[derive(Debug, Args)]
pub struct BulkArgs {
    #[command(subcommand)]
    pub command: BulkCommand,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Manifest file (.csv, .jsonl) or directory tree. (Its clap id is not
    /// `manifest`: that is the model manifest's `--manifest`.)
    #[arg(id = "batch_manifest", value_name = "MANIFEST")]
    pub manifest: PathBuf,

    /// Batch id (1-64 letters, digits, `-`, `_`, `.`). Default: derived
    /// from the manifest's absolute path, so re-running resumes.
    #[arg(long, env = "CANDOR_BULK_BATCH_ID")]
    pub batch_id: Option<String>,

    /// Manifest columns the impact report groups by (comma-separated).
    /// Default: every column named `group:<name>`. Candor never infers a
    /// demographic: only columns you supply are reported.
    #[arg(long, env = "CANDOR_BULK_GROUP_COLUMNS", value_delimiter = ',')]
    pub group_columns: Vec<String>,

    /// http:// URL that gets a signed POST when the batch completes
    /// (workers need CANDOR_WEBHOOK_SECRET).
    #[arg(long, env = "CANDOR_BULK_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Re-run a finished batch (after a model update, say): every item is
    /// queued again and workers re-score only those whose file or models
    /// changed; the others cost a read and a hash.
    #[arg(long, env = "CANDOR_BULK_RESCORE")]
    pub rescore: bool,

    /// Only submit; leave the processing to `candor worker` processes.
    /// Without it, this process works on the queue until the batch is done.
    #[arg(long, env = "CANDOR_BULK_NO_WAIT")]
    pub no_wait: bool,

    /// While waiting, only watch: do not analyse here (workers elsewhere do).
    #[arg(long, env = "CANDOR_BULK_WATCH_ONLY")]
    pub watch_only: bool,

    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub manifest_limits: ManifestArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Batch id.
    #[arg(value_name = "BATCH_ID")]
    pub batch_id: String,
    /// Print JSON instead of a line for people.
    #[arg(long, env = "CANDOR_BULK_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Directory of `bulk.db` when --queue is not given.
    #[arg(long, env = "CANDOR_HOME", default_value = ".candor")]
    pub candor_home: PathBuf,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    #[arg(value_name = "BATCH_ID")]
    pub batch_id: String,
    /// `csv` (one row per item, the manifest's columns appended) or `jsonl`
    /// (one object per item with the full stored result).
    #[arg(long, env = "CANDOR_BULK_FORMAT", default_value = "csv")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(long, env = "CANDOR_BULK_OUT")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Directory of `bulk.db` when --queue is not given.
    #[arg(long, env = "CANDOR_HOME", default_value = ".candor")]
    pub candor_home: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(value_name = "BATCH_ID")]
    pub batch_id: String,
    /// Cases listed (highest risk first); every case is counted in the
    /// impact report whatever this says. More costs memory and output.
    #[arg(long, env = "CANDOR_BULK_REPORT_TOP", default_value_t = 50)]
    pub top: usize,
    /// Print JSON instead of tables.
    #[arg(long, env = "CANDOR_BULK_JSON")]
    pub json: bool,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Directory of `bulk.db` when --queue is not given.
    #[arg(long, env = "CANDOR_HOME", default_value = ".candor")]
    pub candor_home: PathBuf,
}

#[derive(Debug, Args)]
pub struct WorkerCmdArgs {
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub identity: crate::args::IdentityArgs,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("candor: {e}");
    ExitCode::FAILURE
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("candor: {e}");
    ExitCode::from(EXIT_USAGE)
}

fn bulk_exit(e: BulkError) -> ExitCode {
    match e {
        BulkError::Manifest(_)
        | BulkError::Limit { .. }
        | BulkError::BadRequest(_)
        | BulkError::NotFound(_)
        | BulkError::Io { .. } => usage(e),
        _ => fail(e),
    }
}

/// A watch channel that turns true on SIGINT or SIGTERM.
fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        let _ = tx.send(true);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = tx.send(true);
    });
    rx
}

pub async fn run(args: BulkArgs) -> ExitCode {
    match args.command {
        BulkCommand::Submit(a) => submit(*a).await,
        BulkCommand::Status(a) => status(a).await,
        BulkCommand::Results(a) => results(a).await,
        BulkCommand::Report(a) => report_cmd(a).await,
        BulkCommand::Cancel(a) => cancel(a).await,
    }
}

fn fmt_eta(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) => humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string(),
    }
}

async fn submit(a: SubmitArgs) -> ExitCode {
    let store = match a.queue.open(&a.analyzer.candor_home).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let batch_id = a
        .batch_id
        .clone()
        .unwrap_or_else(|| candor_bulk::store::batch_id_for(&a.manifest));
    let reader = match ManifestReader::open(&a.manifest, a.manifest_limits.limits()) {
        Ok(r) => r,
        Err(e) => return bulk_exit(e),
    };
    let new = NewBatch {
        batch_id: batch_id.clone(),
        name: Some(a.manifest.display().to_string()),
        owner: None,
        group_columns: a
            .group_columns
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        webhook_url: a.webhook_url.clone(),
        rescore: a.rescore,
    };
    let tty = std::io::stderr().is_terminal();
    eprintln!("candor: batch {batch_id} on {}", store.url());
    let submitted = candor_bulk::submit(
        &store,
        &new,
        reader,
        a.manifest_limits.max_batch_items,
        |c| {
            if tty {
                eprint!("\rcandor: {} items read, {} new", c.read, c.enqueued);
            }
        },
    )
    .await;
    let counts = match submitted {
        Ok((_, c)) => c,
        Err(e) => return bulk_exit(e),
    };
    if tty {
        eprintln!();
    }
    eprintln!(
        "candor: {} items in the manifest: {} enqueued now, {} already in the batch",
        counts.read, counts.enqueued, counts.existing
    );
    if a.no_wait {
        println!("{batch_id}");
        return ExitCode::SUCCESS;
    }
    let shutdown = shutdown_on_signal();
    let worker = if a.watch_only {
        None
    } else {
        let analyzer = match crate::build_analyzer(&a.analyzer) {
            Ok(x) => x,
            Err(e) => return usage(format!("{e:#}")),
        };
        let w = BulkWorker::new(store.clone(), analyzer, a.worker.config());
        let (wtx, wrx) = watch::channel(false);
        let handle = tokio::spawn(w.run(wrx));
        Some((wtx, handle))
    };
    let code = watch_batch(&store, &batch_id, shutdown).await;
    if let Some((tx, handle)) = worker {
        let _ = tx.send(true);
        let _ = handle.await;
    }
    if code == ExitCode::SUCCESS {
        println!("{batch_id}");
    }
    code
}

/// Shows a progress bar (rate, ETA) until the batch has no pending item or
/// `shutdown` turns true.
async fn watch_batch(
    store: &Store,
    batch_id: &str,
    mut shutdown: watch::Receiver<bool>,
) -> ExitCode {
    let bar = indicatif::ProgressBar::new(0);
    if std::io::stderr().is_terminal() {
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut last_line = std::time::Instant::now();
    loop {
        match store.status(batch_id, None).await {
            Ok(s) => {
                bar.set_length(s.total as u64);
                bar.set_position((s.total - s.pending) as u64);
                let msg = format!(
                    "{:.1} items/s, ETA {}, {} errors",
                    s.rate_per_s,
                    fmt_eta(s.eta_s),
                    s.error
                );
                bar.set_message(msg.clone());
                if bar.is_hidden() && last_line.elapsed() > Duration::from_secs(10) {
                    eprintln!(
                        "candor: {}/{} finished, {msg}",
                        s.total - s.pending,
                        s.total
                    );
                    last_line = std::time::Instant::now();
                }
                if s.finished {
                    bar.finish();
                    eprintln!(
                        "candor: batch {batch_id} finished: {} done, {} errors, {} cancelled",
                        s.done, s.error, s.cancelled
                    );
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the batch status"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.wait_for(|v| *v) => {
                bar.abandon();
                eprintln!("candor: stopped; run the same command again to resume batch {batch_id}");
                return ExitCode::from(130);
            }
        }
    }
}

async fn status(a: StatusArgs) -> ExitCode {
    let store = match a.queue.open(&a.candor_home).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match store.status(&a.batch_id, None).await {
        Ok(s) if a.json => {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            println!(
                "batch {} ({}): {} items: {} pending, {} done, {} errors, {} cancelled; {:.2} items/s, ETA {}",
                s.batch.batch_id,
                s.batch.status,
                s.total,
                s.pending,
                s.done,
                s.error,
                s.cancelled,
                s.rate_per_s,
                fmt_eta(s.eta_s)
            );
            ExitCode::SUCCESS
        }
        Err(e) => bulk_exit(e),
    }
}

async fn results(a: ResultsArgs) -> ExitCode {
    let format: Format = match a.format.parse() {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    let store = match a.queue.open(&a.candor_home).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = store.batch(&a.batch_id, None).await {
        return bulk_exit(e);
    }
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return usage(format!("{}: {e}", p.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after: Option<(String, String)> = None;
    let mut free: Option<Vec<String>> = None;
    loop {
        let page = match store
            .items_page(
                &a.batch_id,
                after.as_ref().map(|(x, y)| (x.as_str(), y.as_str())),
                report::PAGE,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let Some(last) = page.last() else { break };
        after = Some((last.applicant_id.clone(), last.item_id.clone()));
        let mut buf = String::new();
        let cols = match &free {
            Some(c) => c.clone(),
            None => {
                let c: Vec<String> = page[0].columns.keys().cloned().collect();
                if format == Format::Csv {
                    buf.push_str(&report::csv_header(&c));
                }
                free = Some(c.clone());
                c
            }
        };
        for it in &page {
            match format {
                Format::Csv => buf.push_str(&report::csv_row(it, &cols)),
                Format::Jsonl => buf.push_str(&report::jsonl_row(it)),
            }
        }
        if let Err(e) = out.write_all(buf.as_bytes()) {
            return fail(e);
        }
    }
    if let Err(e) = out.flush() {
        return fail(e);
    }
    ExitCode::SUCCESS
}

async fn report_cmd(a: ReportArgs) -> ExitCode {
    let store = match a.queue.open(&a.candor_home).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let r = match report::report(&store, &a.batch_id, None, a.top).await {
        Ok(r) => r,
        Err(e) => return bulk_exit(e),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "batch {}: {} applicants, {} need review, {} not scored by any detector",
        r.batch_id, r.applicants, r.needs_review, r.unscored
    );
    println!(
        "\n{:>5}  {:<24} {:<20} {:>6} {:>7} {:>6}",
        "rank", "applicant", "label", "score", "scored", "errors"
    );
    for c in &r.cases {
        println!(
            "{:>5}  {:<24} {:<20} {:>6} {:>3}/{:<3} {:>6}",
            c.rank,
            c.applicant_id,
            c.case.label.map_or("-", |l| l.as_str()),
            c.case.max_score.map_or("-".into(), |s| format!("{s:.3}")),
            c.case.scored,
            c.case.inputs,
            c.errors
        );
    }
    for t in &r.impact {
        println!("\nimpact by `{}` (flagged = {})", t.column, r.flagged_means);
        println!(
            "{:<20} {:>7} {:>7} {:>8} {:>10} {:>13}",
            "value", "cases", "scored", "flagged", "flag rate", "impact ratio"
        );
        for row in &t.rows {
            println!(
                "{:<20} {:>7} {:>7} {:>8} {:>10} {:>13}{}{}",
                row.value,
                row.cases,
                row.scored,
                row.flagged,
                row.flag_rate
                    .map_or("-".into(), |x| format!("{:.1}%", x * 100.0)),
                row.impact_ratio.map_or("-".into(), |x| format!("{x:.3}")),
                if row.below_four_fifths { "  < 4/5" } else { "" },
                if row.small { "  (small group)" } else { "" },
            );
        }
    }
    ExitCode::SUCCESS
}

async fn cancel(a: StatusArgs) -> ExitCode {
    let store = match a.queue.open(&a.candor_home).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match store.cancel(&a.batch_id, None).await {
        Ok(n) => {
            eprintln!(
                "candor: batch {} cancelled; {n} pending items will not be analysed",
                a.batch_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => bulk_exit(e),
    }
}

/// `candor worker`: serve the bulk queue until SIGINT/SIGTERM.
pub async fn worker(a: WorkerCmdArgs) -> ExitCode {
    let store = match a.queue.open(&a.analyzer.candor_home).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let analyzer = match crate::build_analyzer(&a.analyzer) {
        Ok(x) => x,
        Err(e) => return usage(format!("{e:#}")),
    };
    let cfg = a.worker.config();
    let registry = match a.identity.open(&store).await {
        Ok(r) => r,
        Err(e) => return fail(format!("{e:#}")),
    };
    tracing::info!(queue = %store.url(), concurrency = cfg.concurrency, identity = registry.is_some(), "candor worker started");
    let mut w = BulkWorker::new(store, analyzer, cfg);
    if let Some(reg) = registry {
        w = w.with_identity(reg);
    }
    let progress = w.progress();
    let shutdown = shutdown_on_signal();
    let r = w.run(shutdown).await;
    tracing::info!(
        finished = progress.finished.load(Ordering::Relaxed),
        analysed = progress.analysed.load(Ordering::Relaxed),
        restarts = progress.restarts.load(Ordering::Relaxed),
        "candor worker stopped"
    );
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
