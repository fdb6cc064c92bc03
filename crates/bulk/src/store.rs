//! Candor's own rows (batches and items) next to apalis's queue tables, in
//! one database: a SQLite file (the embedded default) or PostgreSQL (many
//! worker processes on many machines).
//!
//! The same SQL serves both (`$n` placeholders, `ON CONFLICT`, `RETURNING`).
//! An item's row and its queue task are written in one transaction, so a
//! submit that dies half-way leaves whole chunks behind, never an item
//! without its task or a task without its item; a resubmitted manifest
//! inserts nothing twice (the item id is derived from batch, applicant and
//! path) and enqueues only the items it inserted.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::TaskBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};

use crate::error::{BulkError, Result};
use crate::manifest::ManifestItem;

/// apalis queue of bulk items.
pub const ITEM_QUEUE: &str = "candor-bulk-items";
/// apalis queue of completion webhooks.
pub const WEBHOOK_QUEUE: &str = "candor-bulk-webhooks";

/// Items inserted (and enqueued) per transaction.
pub const SUBMIT_CHUNK: usize = 500;

/// Candor's tables. `TEXT`, `BIGINT` and `DOUBLE PRECISION` mean the same
/// thing to SQLite and PostgreSQL; times are Unix milliseconds.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS candor_batches (
    batch_id TEXT PRIMARY KEY,
    name TEXT,
    owner TEXT,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    cancelled_at BIGINT,
    generation BIGINT NOT NULL DEFAULT 0,
    group_columns TEXT NOT NULL DEFAULT '[]',
    webhook_url TEXT,
    completed_at BIGINT,
    submit_error TEXT
);
CREATE TABLE IF NOT EXISTS candor_items (
    item_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    applicant_id TEXT NOT NULL,
    path TEXT NOT NULL,
    columns TEXT NOT NULL,
    state TEXT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    writes BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT,
    models TEXT,
    modality TEXT,
    score DOUBLE PRECISION,
    label TEXT,
    result TEXT,
    error_code TEXT,
    error TEXT,
    worker TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS candor_items_batch_state ON candor_items(batch_id, state);
CREATE INDEX IF NOT EXISTS candor_items_batch_applicant ON candor_items(batch_id, applicant_id, item_id);
CREATE INDEX IF NOT EXISTS candor_items_batch_finished ON candor_items(batch_id, finished_at);
CREATE TABLE IF NOT EXISTS candor_jobs (
    job_id TEXT PRIMARY KEY,
    owner TEXT,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    plan TEXT NOT NULL,
    inputs TEXT NOT NULL,
    response TEXT,
    error TEXT,
    applicant_id TEXT,
    keep_until BIGINT
);
CREATE INDEX IF NOT EXISTS candor_jobs_node_status ON candor_jobs(node, status);
CREATE INDEX IF NOT EXISTS candor_jobs_finished ON candor_jobs(finished_at);
CREATE INDEX IF NOT EXISTS candor_jobs_kept ON candor_jobs(keep_until, created_at);
CREATE TABLE IF NOT EXISTS candor_reviews (
    review_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    applicant_id TEXT,
    decision TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    owner TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS candor_reviews_job ON candor_reviews(job_id, created_at);
"#;

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Waiting for (or being analysed by) a worker.
    Pending,
    /// Analysed: a result (scored or abstained) is stored.
    Done,
    /// Not analysable (missing, unreadable, corrupt, refused): the error is stored.
    Error,
    /// Its batch was cancelled before a worker reached it.
    Cancelled,
}

impl ItemState {
    pub const ALL: [ItemState; 4] = [
        ItemState::Pending,
        ItemState::Done,
        ItemState::Error,
        ItemState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Done => "done",
            ItemState::Error => "error",
            ItemState::Cancelled => "cancelled",
        }
    }
}

impl FromStr for ItemState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ItemState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown item state `{s}`"))
    }
}

/// The database behind a store.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one statement with the same binds on either database; gives the
/// rows affected.
#[macro_export]
#[doc(hidden)]
macro_rules! exec {
    ($db:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::store::Db::Sqlite(p) => sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
            $crate::store::Db::Postgres(p) => sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
        }
    };
}

/// Fetches rows with the same binds on either database and maps each with
/// `$f` (a generic function over `sqlx::Row`).
#[macro_export]
#[doc(hidden)]
macro_rules! fetch {
    ($db:expr, $f:ident, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::store::Db::Sqlite(p) => sqlx::query($sql)$(.bind($b))*.fetch_all(p).await
                .and_then(|rows| rows.iter().map(|r| $f(r)).collect::<std::result::Result<Vec<_>, sqlx::Error>>()),
            $crate::store::Db::Postgres(p) => sqlx::query($sql)$(.bind($b))*.fetch_all(p).await
                .and_then(|rows| rows.iter().map(|r| $f(r)).collect::<std::result::Result<Vec<_>, sqlx::Error>>()),
        }
    };
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Hex sha256 of `parts` joined by NUL bytes.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// An item's id: derived from its batch, applicant and file, so the same
/// manifest row always names the same item.
pub fn item_id(batch_id: &str, applicant_id: &str, path: &str) -> String {
    digest(&["candor-item", batch_id, applicant_id, path])
}

/// The batch id `candor bulk submit` uses for a manifest when none is
/// given: derived from the manifest's canonical path, so running the same
/// command again resumes the same batch.
pub fn batch_id_for(manifest: &std::path::Path) -> String {
    let p = manifest
        .canonicalize()
        .unwrap_or_else(|_| manifest.to_path_buf());
    digest(&["candor-batch", &p.display().to_string()])
}

/// Checks a caller-chosen batch id (letters, digits, `-`, `_`, `.`; 1-64).
pub fn check_batch_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BulkError::BadRequest(format!(
            "batch id `{}` must be 1-64 letters, digits, `-`, `_` or `.`",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// How a batch is created (or resumed).
#[derive(Debug, Clone, Default)]
pub struct NewBatch {
    pub batch_id: String,
    /// A label (the manifest's path, say).
    pub name: Option<String>,
    /// Digest of the API key that owns it (`None`: no keys, or the CLI).
    pub owner: Option<String>,
    /// Columns the impact report groups by. Empty: columns named
    /// `group:<name>` in the manifest.
    pub group_columns: Vec<String>,
    /// Where the completion webhook goes.
    pub webhook_url: Option<String>,
    /// Re-enqueue every finished item (a re-run after a model update:
    /// workers re-score only items whose file or models changed).
    pub rescore: bool,
}

/// What a submit (or one chunk of it) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitCounts {
    /// Items read from the manifest.
    pub read: u64,
    /// Items new to the batch, enqueued now.
    pub enqueued: u64,
    /// Items the batch already had (not enqueued again).
    pub existing: u64,
}

/// A batch's header row.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchRow {
    pub batch_id: String,
    pub name: Option<String>,
    #[serde(skip)]
    pub owner: Option<String>,
    /// `active` or `cancelled`.
    pub status: String,
    pub created_at_ms: i64,
    pub cancelled_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub generation: i64,
    pub group_columns: Vec<String>,
    pub webhook_url: Option<String>,
    /// Why adding the manifest's items stopped, when it did.
    pub submit_error: Option<String>,
}

fn batch_from_row<R: Row>(r: &R) -> std::result::Result<BatchRow, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let groups: String = r.try_get("group_columns")?;
    Ok(BatchRow {
        batch_id: r.try_get("batch_id")?,
        name: r.try_get("name")?,
        owner: r.try_get("owner")?,
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at")?,
        cancelled_at_ms: r.try_get("cancelled_at")?,
        completed_at_ms: r.try_get("completed_at")?,
        generation: r.try_get("generation")?,
        group_columns: serde_json::from_str(&groups).unwrap_or_default(),
        webhook_url: r.try_get("webhook_url")?,
        submit_error: r.try_get("submit_error")?,
    })
}

/// An item as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRow {
    pub item_id: String,
    pub batch_id: String,
    pub applicant_id: String,
    pub path: String,
    pub columns: BTreeMap<String, String>,
    pub state: ItemState,
    pub generation: i64,
    /// Times a worker started analysing it.
    pub attempts: i64,
    /// Times a result (or error) was written for it.
    pub writes: i64,
    pub sha256: Option<String>,
    /// Fingerprint of the detectors and models that scored it.
    pub models: Option<String>,
    pub modality: Option<String>,
    pub score: Option<f64>,
    pub label: Option<String>,
    /// The `AnalysisResult` JSON (pictures left out unless configured).
    pub result: Option<String>,
    pub error_code: Option<String>,
    /// The problem JSON when the item could not be analysed.
    pub error: Option<String>,
    pub worker: Option<String>,
    pub finished_at_ms: Option<i64>,
}

pub(crate) fn item_from_row<R: Row>(r: &R) -> std::result::Result<ItemRow, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let columns: String = r.try_get("columns")?;
    let state: String = r.try_get("state")?;
    Ok(ItemRow {
        item_id: r.try_get("item_id")?,
        batch_id: r.try_get("batch_id")?,
        applicant_id: r.try_get("applicant_id")?,
        path: r.try_get("path")?,
        columns: serde_json::from_str(&columns).unwrap_or_default(),
        state: state
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        generation: r.try_get("generation")?,
        attempts: r.try_get("attempts")?,
        writes: r.try_get("writes")?,
        sha256: r.try_get("sha256")?,
        models: r.try_get("models")?,
        modality: r.try_get("modality")?,
        score: r.try_get("score")?,
        label: r.try_get("label")?,
        result: r.try_get("result")?,
        error_code: r.try_get("error_code")?,
        error: r.try_get("error")?,
        worker: r.try_get("worker")?,
        finished_at_ms: r.try_get("finished_at")?,
    })
}

fn count_from_row<R: Row>(r: &R) -> std::result::Result<(String, i64), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((r.try_get(0usize)?, r.try_get(1usize)?))
}

fn id_from_row<R: Row>(r: &R) -> std::result::Result<String, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    r.try_get(0usize)
}

fn string_from_row<R: Row>(r: &R) -> std::result::Result<String, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    r.try_get(0usize)
}

fn int_from_row<R: Row>(r: &R) -> std::result::Result<i64, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    r.try_get(0usize)
}

/// Counts, rate and ETA of a batch (`GET /v1/batches/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchStatus {
    #[serde(flatten)]
    pub batch: BatchRow,
    pub total: i64,
    pub pending: i64,
    pub done: i64,
    pub error: i64,
    pub cancelled: i64,
    /// Items finished per second over the last `rate_window_s` (or since
    /// the first item finished, when that is shorter).
    pub rate_per_s: f64,
    pub rate_window_s: f64,
    /// Seconds until the pending items are done at that rate.
    pub eta_s: Option<f64>,
    /// Every item finished (done, error or cancelled).
    pub finished: bool,
}

/// Window over which `rate_per_s` is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(300);

/// The store: Candor's tables and the apalis queues, in one database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    url: String,
}

impl Store {
    /// Opens (creating when needed) the store at `url`: `postgres://…` or
    /// `postgresql://…` for PostgreSQL, otherwise a SQLite file path
    /// (`sqlite://` prefix optional). Runs apalis's migrations and creates
    /// Candor's tables.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let bad = |m: String| BulkError::Queue {
            url: redact(url),
            message: m,
        };
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| bad(e.to_string()))?;
            apalis_postgres::PostgresStorage::<()>::setup(&pool)
                .await
                .map_err(|e| bad(format!("apalis schema: {e}")))?;
            Db::Postgres(pool)
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
                }
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Durable: a batch's progress survives a power cut, not
                // only a crash (apalis's own setup turns this OFF).
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30));
            let connect = || {
                SqlitePoolOptions::new()
                    .max_connections(max_connections.max(2))
                    .connect_with(opts.clone())
            };
            let mut pool = connect().await.map_err(|e| bad(e.to_string()))?;
            // Every `candor bulk status` opens the store while workers
            // write to it: when the schema is already in place, opening
            // only reads (no migration, no PRAGMA optimize, no DDL), and
            // setting up retries while another process holds the lock.
            if !sqlite_ready(&pool).await {
                retry_locked(|| async {
                    apalis_sqlite::SqliteStorage::setup(&pool)
                        .await
                        .map_err(|e| format!("apalis schema: {e}"))?;
                    sqlx::raw_sql(SCHEMA)
                        .execute(&pool)
                        .await
                        .map_err(|e| format!("candor schema: {e}"))?;
                    Ok(())
                })
                .await
                .map_err(bad)?;
                // apalis's setup left `synchronous = OFF` on a pooled
                // connection: start over with connections that all have
                // the options above.
                pool.close().await;
                pool = connect().await.map_err(|e| bad(e.to_string()))?;
            }
            Db::Sqlite(pool)
        };
        match &db {
            Db::Sqlite(_) => {}
            Db::Postgres(p) => {
                // Workers starting together must not race on CREATE TABLE.
                let mut c = p.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock(7243411)")
                    .execute(&mut *c)
                    .await?;
                let r = sqlx::raw_sql(SCHEMA).execute(&mut *c).await;
                sqlx::query("SELECT pg_advisory_unlock(7243411)")
                    .execute(&mut *c)
                    .await?;
                r?;
            }
        }
        Ok(Store {
            db,
            url: redact(url),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The URL, password left out.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Creates the batch, or checks that an existing one may take more
    /// items (not cancelled). With `rescore`, bumps its generation and
    /// re-enqueues its finished items.
    pub async fn begin_batch(&self, b: &NewBatch) -> Result<BatchRow> {
        check_batch_id(&b.batch_id)?;
        let groups = serde_json::to_string(&b.group_columns).unwrap_or_else(|_| "[]".into());
        exec!(
            &self.db,
            "INSERT INTO candor_batches (batch_id, name, owner, created_at, status, group_columns, webhook_url) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6) ON CONFLICT (batch_id) DO NOTHING",
            &b.batch_id,
            &b.name,
            &b.owner,
            now_ms(),
            &groups,
            &b.webhook_url,
        )?;
        let batch = self.batch(&b.batch_id, b.owner.as_deref()).await?;
        if batch.status == "cancelled" {
            return Err(BulkError::BadRequest(format!(
                "batch `{}` was cancelled; submit under a new batch id",
                b.batch_id
            )));
        }
        if b.webhook_url.is_some() && b.webhook_url != batch.webhook_url {
            exec!(
                &self.db,
                "UPDATE candor_batches SET webhook_url = $2 WHERE batch_id = $1",
                &b.batch_id,
                &b.webhook_url
            )?;
        }
        if b.rescore {
            self.rescore(&b.batch_id).await?;
        }
        self.batch(&b.batch_id, b.owner.as_deref()).await
    }

    /// Inserts `items` (at most [`SUBMIT_CHUNK`] at a time is best) into
    /// `batch` and enqueues the new ones, in one transaction.
    pub async fn add_items(
        &self,
        batch: &BatchRow,
        items: &[ManifestItem],
    ) -> Result<SubmitCounts> {
        let now = now_ms();
        let gen = batch.generation;
        let mut new_ids = Vec::new();
        match &self.db {
            Db::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for it in items {
                    let id = item_id(&batch.batch_id, &it.applicant_id, &it.path);
                    let cols = serde_json::to_string(&it.columns).unwrap_or_else(|_| "{}".into());
                    let n = sqlx::query(
                        "INSERT INTO candor_items (item_id, batch_id, applicant_id, path, columns, state, generation, created_at) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7) ON CONFLICT (item_id) DO NOTHING",
                    )
                    .bind(&id)
                    .bind(&batch.batch_id)
                    .bind(&it.applicant_id)
                    .bind(&it.path)
                    .bind(&cols)
                    .bind(gen)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        new_ids.push(id);
                    }
                }
                let tasks = item_tasks(&new_ids, gen);
                apalis_sqlite::queries::push_tasks(&mut *tx, ITEM_QUEUE, &tasks)
                    .await
                    .map_err(BulkError::engine)?;
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut ids = Vec::with_capacity(items.len());
                let mut applicants = Vec::with_capacity(items.len());
                let mut paths = Vec::with_capacity(items.len());
                let mut cols = Vec::with_capacity(items.len());
                for it in items {
                    ids.push(item_id(&batch.batch_id, &it.applicant_id, &it.path));
                    applicants.push(it.applicant_id.clone());
                    paths.push(it.path.clone());
                    cols.push(serde_json::to_string(&it.columns).unwrap_or_else(|_| "{}".into()));
                }
                let mut tx = p.begin().await?;
                let rows = sqlx::query(
                    "INSERT INTO candor_items (item_id, batch_id, applicant_id, path, columns, state, generation, created_at) \
                     SELECT u.id, $2, u.applicant, u.path, u.cols, 'pending', $6, $7 \
                     FROM unnest($1::text[], $3::text[], $4::text[], $5::text[]) AS u(id, applicant, path, cols) \
                     ON CONFLICT (item_id) DO NOTHING RETURNING item_id",
                )
                .bind(&ids)
                .bind(&batch.batch_id)
                .bind(&applicants)
                .bind(&paths)
                .bind(&cols)
                .bind(gen)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    new_ids.push(r.try_get::<String, _>(0)?);
                }
                let tasks = item_tasks(&new_ids, gen);
                if !tasks.is_empty() {
                    apalis_postgres::queries::push_tasks(&mut *tx, ITEM_QUEUE, tasks)
                        .await
                        .map_err(BulkError::engine)?;
                }
                tx.commit().await?;
            }
        }
        metrics::counter!("candor_bulk_items_enqueued_total").increment(new_ids.len() as u64);
        Ok(SubmitCounts {
            read: items.len() as u64,
            enqueued: new_ids.len() as u64,
            existing: (items.len() - new_ids.len()) as u64,
        })
    }

    /// A re-run: bumps the batch's generation and re-enqueues every
    /// finished item (done or error) under it. Workers skip the analysis of
    /// an item whose file and models are unchanged.
    async fn rescore(&self, batch_id: &str) -> Result<u64> {
        exec!(
            &self.db,
            "UPDATE candor_batches SET generation = generation + 1, completed_at = NULL WHERE batch_id = $1",
            batch_id
        )?;
        let gen = self.batch(batch_id, None).await?.generation;
        let mut after = String::new();
        let mut total = 0;
        loop {
            let ids: Vec<String> = fetch!(
                &self.db,
                id_from_row,
                "SELECT item_id FROM candor_items WHERE batch_id = $1 AND item_id > $2 \
                 AND state IN ('done', 'error') ORDER BY item_id LIMIT 500",
                batch_id,
                &after
            )?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            let tasks = item_tasks(&ids, gen);
            match &self.db {
                Db::Sqlite(p) => {
                    let mut tx = p.begin().await?;
                    for id in &ids {
                        sqlx::query("UPDATE candor_items SET state = 'pending', generation = $2 WHERE item_id = $1")
                            .bind(id)
                            .bind(gen)
                            .execute(&mut *tx)
                            .await?;
                    }
                    apalis_sqlite::queries::push_tasks(&mut *tx, ITEM_QUEUE, &tasks)
                        .await
                        .map_err(BulkError::engine)?;
                    tx.commit().await?;
                }
                Db::Postgres(p) => {
                    let mut tx = p.begin().await?;
                    sqlx::query("UPDATE candor_items SET state = 'pending', generation = $2 WHERE item_id = ANY($1)")
                        .bind(&ids)
                        .bind(gen)
                        .execute(&mut *tx)
                        .await?;
                    apalis_postgres::queries::push_tasks(&mut *tx, ITEM_QUEUE, tasks)
                        .await
                        .map_err(BulkError::engine)?;
                    tx.commit().await?;
                }
            }
            total += ids.len() as u64;
            after = last;
        }
        Ok(total)
    }

    /// The batch, when it exists and `owner` may see it (`None` sees
    /// batches without an owner; the CLI passes `None` and sees all).
    pub async fn batch(&self, batch_id: &str, owner: Option<&str>) -> Result<BatchRow> {
        let rows = fetch!(
            &self.db,
            batch_from_row,
            "SELECT * FROM candor_batches WHERE batch_id = $1",
            batch_id
        )?;
        match rows.into_iter().next() {
            Some(b) if owner.is_none() || b.owner.as_deref() == owner => Ok(b),
            _ => Err(BulkError::NotFound(batch_id.to_owned())),
        }
    }

    /// Batches, newest first (at most `limit`).
    pub async fn batches(&self, owner: Option<&str>, limit: i64) -> Result<Vec<BatchRow>> {
        let rows = fetch!(
            &self.db,
            batch_from_row,
            "SELECT * FROM candor_batches ORDER BY created_at DESC LIMIT $1",
            limit
        )?;
        Ok(rows
            .into_iter()
            .filter(|b| owner.is_none() || b.owner.as_deref() == owner)
            .collect())
    }

    /// Counts, rate and ETA.
    pub async fn status(&self, batch_id: &str, owner: Option<&str>) -> Result<BatchStatus> {
        let batch = self.batch(batch_id, owner).await?;
        let counts = fetch!(
            &self.db,
            count_from_row,
            "SELECT state, COUNT(*) FROM candor_items WHERE batch_id = $1 GROUP BY state",
            batch_id
        )?;
        let get = |s: ItemState| {
            counts
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map_or(0, |(_, n)| *n)
        };
        let (pending, done, error, cancelled) = (
            get(ItemState::Pending),
            get(ItemState::Done),
            get(ItemState::Error),
            get(ItemState::Cancelled),
        );
        let now = now_ms();
        let since = now - RATE_WINDOW.as_millis() as i64;
        let window = fetch!(
            &self.db,
            window_from_row,
            "SELECT COUNT(*), MIN(finished_at) FROM candor_items WHERE batch_id = $1 AND finished_at >= $2",
            batch_id,
            since
        )?;
        let (recent, first) = window.into_iter().next().unwrap_or((0, None));
        let window_s = first.map_or(0.0, |f| ((now - f) as f64 / 1e3).max(1e-3));
        let rate = if recent > 0 && window_s > 0.0 {
            recent as f64 / window_s
        } else {
            0.0
        };
        let eta = (pending > 0 && rate > 0.0).then(|| pending as f64 / rate);
        metrics::gauge!("candor_bulk_batch_items", "state" => "pending").set(pending as f64);
        Ok(BatchStatus {
            batch,
            total: pending + done + error + cancelled,
            pending,
            done,
            error,
            cancelled,
            rate_per_s: rate,
            rate_window_s: window_s,
            eta_s: eta,
            finished: pending == 0,
        })
    }

    /// Up to `limit` items of a batch after `after_item` in (applicant,
    /// item) order: the pages the results stream is made of.
    pub async fn items_page(
        &self,
        batch_id: &str,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<ItemRow>> {
        let (a, i) = after.unwrap_or(("", ""));
        Ok(fetch!(
            &self.db,
            item_from_row,
            "SELECT * FROM candor_items WHERE batch_id = $1 AND (applicant_id > $2 OR (applicant_id = $2 AND item_id > $3)) \
             ORDER BY applicant_id, item_id LIMIT $4",
            batch_id,
            a,
            i,
            limit
        )?)
    }

    /// One item.
    pub async fn item(&self, item_id: &str) -> Result<Option<ItemRow>> {
        Ok(fetch!(
            &self.db,
            item_from_row,
            "SELECT * FROM candor_items WHERE item_id = $1",
            item_id
        )?
        .into_iter()
        .next())
    }

    /// Cancels a batch: no pending item of it is analysed from now on
    /// (workers check the item's state before they start). Gives the
    /// number of items cancelled.
    pub async fn cancel(&self, batch_id: &str, owner: Option<&str>) -> Result<u64> {
        self.batch(batch_id, owner).await?;
        let now = now_ms();
        exec!(
            &self.db,
            "UPDATE candor_batches SET status = 'cancelled', cancelled_at = $2 WHERE batch_id = $1 AND status <> 'cancelled'",
            batch_id,
            now
        )?;
        let n = exec!(
            &self.db,
            "UPDATE candor_items SET state = 'cancelled', finished_at = $2 WHERE batch_id = $1 AND state = 'pending'",
            batch_id,
            now
        )?;
        metrics::counter!("candor_bulk_items_total", "outcome" => "cancelled").increment(n);
        // Nothing is pending now: the batch is over (its webhook says so).
        self.queue_completion(batch_id).await?;
        Ok(n)
    }

    /// Records why a background submit stopped (shown in the status).
    pub async fn set_submit_error(&self, batch_id: &str, error: &str) -> Result<()> {
        exec!(
            &self.db,
            "UPDATE candor_batches SET submit_error = $2 WHERE batch_id = $1",
            batch_id,
            error
        )?;
        Ok(())
    }

    /// Pending items of active batches (what workers still have to do).
    pub async fn pending_items(&self) -> Result<i64> {
        let v = fetch!(
            &self.db,
            int_from_row,
            "SELECT COUNT(*) FROM candor_items i JOIN candor_batches b ON b.batch_id = i.batch_id \
             WHERE i.state = 'pending' AND b.status = 'active'"
        )?;
        Ok(v.into_iter().next().unwrap_or(0))
    }

    /// Records that a worker starts an item (counts the attempt). False when
    /// the item is no longer pending (finished, cancelled) or unknown.
    pub(crate) async fn start_item(&self, item_id: &str, worker: &str) -> Result<bool> {
        let n = exec!(
            &self.db,
            "UPDATE candor_items SET attempts = attempts + 1, worker = $2, started_at = $3 \
             WHERE item_id = $1 AND state = 'pending'",
            item_id,
            worker,
            now_ms()
        )?;
        Ok(n == 1)
    }

    /// Stores an item's outcome on the item's own row (never a second
    /// row). Only a pending item takes it: when two deliveries of one task
    /// overlap (a worker presumed dead was merely slow) the second write
    /// is a no-op, and an item cancelled while it was being analysed stays
    /// cancelled. False when nothing was written.
    pub(crate) async fn finish_item(&self, item_id: &str, o: &ItemOutcome) -> Result<bool> {
        let n = exec!(
            &self.db,
            "UPDATE candor_items SET state = $2, sha256 = $3, models = $4, modality = $5, score = $6, label = $7, \
             result = $8, error_code = $9, error = $10, worker = $11, finished_at = $12, writes = writes + 1 \
             WHERE item_id = $1 AND state = 'pending'",
            item_id,
            o.state.as_str(),
            &o.sha256,
            &o.models,
            &o.modality,
            o.score,
            &o.label,
            &o.result,
            &o.error_code,
            &o.error,
            &o.worker,
            now_ms()
        )?;
        Ok(n == 1)
    }

    /// Marks an item unchanged since its last result (same file, same
    /// models): finished again without analysis (when still pending).
    pub(crate) async fn keep_item(&self, item_id: &str, worker: &str) -> Result<()> {
        exec!(
            &self.db,
            "UPDATE candor_items SET state = 'done', worker = $2, finished_at = $3 WHERE item_id = $1 AND state = 'pending'",
            item_id,
            worker,
            now_ms()
        )?;
        Ok(())
    }

    /// When `batch_id` has no pending item left and has not been marked
    /// complete yet, marks it (once, whoever gets there first) and gives it.
    pub(crate) async fn complete_if_done(&self, batch_id: &str) -> Result<Option<BatchRow>> {
        let left = fetch!(
            &self.db,
            int_from_row,
            "SELECT COUNT(*) FROM (SELECT 1 FROM candor_items WHERE batch_id = $1 AND state = 'pending' LIMIT 1) t",
            batch_id
        )?;
        if left.into_iter().next().unwrap_or(0) > 0 {
            return Ok(None);
        }
        let n = exec!(
            &self.db,
            "UPDATE candor_batches SET completed_at = $2 WHERE batch_id = $1 AND completed_at IS NULL",
            batch_id,
            now_ms()
        )?;
        if n == 1 {
            Ok(Some(self.batch(batch_id, None).await?))
        } else {
            Ok(None)
        }
    }
}

/// An `?async=true` job of the HTTP API as stored: its request (plan and
/// the manifest of its input files, JSON the server writes and reads), its
/// state and its outcome. Input files live on the disk of the server that
/// accepted the job (`node`); that server runs the job again after a
/// restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    /// Hex digest of the API key that created it.
    pub owner: Option<String>,
    pub node: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Runs started (a job found `running` after a restart ran once before).
    pub attempts: i64,
    /// Bytes of its inputs.
    pub bytes: i64,
    pub plan: String,
    pub inputs: String,
    /// The response body (JSON), when `done`.
    pub response: Option<String>,
    /// The problem (JSON), when `failed`.
    pub error: Option<String>,
    /// The applicant the material belongs to (a reviewer's case).
    #[serde(default)]
    pub applicant_id: Option<String>,
    /// A reviewer's case: its inputs and row are kept until then (Unix
    /// ms), not only for the job TTL.
    #[serde(default)]
    pub keep_until_ms: Option<i64>,
}

/// A reviewer's decision on a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewRecord {
    pub review_id: String,
    pub job_id: String,
    pub applicant_id: Option<String>,
    /// `confirmed_manipulation`, `cleared` or `needs_live_check`.
    pub decision: String,
    pub note: String,
    /// Who decided (the name the reviewer gave).
    pub reviewer: String,
    /// Hex digest of the API key the reviewer used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub created_at_ms: i64,
}

fn review_from_row<R: Row>(r: &R) -> std::result::Result<ReviewRecord, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ReviewRecord {
        review_id: r.try_get("review_id")?,
        job_id: r.try_get("job_id")?,
        applicant_id: r.try_get("applicant_id")?,
        decision: r.try_get("decision")?,
        note: r.try_get("note")?,
        reviewer: r.try_get("reviewer")?,
        owner: r.try_get("owner")?,
        created_at_ms: r.try_get("created_at")?,
    })
}

fn job_from_row<R: Row>(r: &R) -> std::result::Result<JobRecord, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(JobRecord {
        job_id: r.try_get("job_id")?,
        owner: r.try_get("owner")?,
        node: r.try_get("node")?,
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at")?,
        started_at_ms: r.try_get("started_at")?,
        finished_at_ms: r.try_get("finished_at")?,
        attempts: r.try_get("attempts")?,
        bytes: r.try_get("bytes")?,
        plan: r.try_get("plan")?,
        inputs: r.try_get("inputs")?,
        response: r.try_get("response")?,
        error: r.try_get("error")?,
        applicant_id: r.try_get("applicant_id")?,
        keep_until_ms: r.try_get("keep_until")?,
    })
}

/// `?async=true` jobs.
impl Store {
    /// Stores a new job (status `queued`).
    pub async fn insert_job(&self, j: &JobRecord) -> Result<()> {
        exec!(
            &self.db,
            "INSERT INTO candor_jobs (job_id, owner, node, status, created_at, attempts, bytes, plan, inputs, applicant_id, keep_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &j.job_id,
            &j.owner,
            &j.node,
            &j.status,
            j.created_at_ms,
            j.attempts,
            j.bytes,
            &j.plan,
            &j.inputs,
            &j.applicant_id,
            j.keep_until_ms
        )?;
        Ok(())
    }

    /// One job.
    pub async fn job(&self, job_id: &str) -> Result<Option<JobRecord>> {
        Ok(fetch!(
            &self.db,
            job_from_row,
            "SELECT * FROM candor_jobs WHERE job_id = $1",
            job_id
        )?
        .into_iter()
        .next())
    }

    /// Marks a job `running` and counts the attempt.
    pub async fn start_job(&self, job_id: &str) -> Result<()> {
        exec!(
            &self.db,
            "UPDATE candor_jobs SET status = 'running', attempts = attempts + 1, started_at = $2 \
             WHERE job_id = $1 AND status IN ('queued', 'running')",
            job_id,
            now_ms()
        )?;
        Ok(())
    }

    /// Stores a job's outcome (`done` with its response, or `failed` with
    /// its problem), once: a finished job keeps its first outcome.
    pub async fn finish_job(
        &self,
        job_id: &str,
        response: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool> {
        self.finish_job_at(job_id, response, error, now_ms()).await
    }

    /// [`Store::finish_job`] with the finishing time given (Unix ms).
    pub async fn finish_job_at(
        &self,
        job_id: &str,
        response: Option<&str>,
        error: Option<&str>,
        finished_at_ms: i64,
    ) -> Result<bool> {
        let status = if response.is_some() { "done" } else { "failed" };
        let n = exec!(
            &self.db,
            "UPDATE candor_jobs SET status = $2, response = $3, error = $4, finished_at = $5 \
             WHERE job_id = $1 AND status IN ('queued', 'running')",
            job_id,
            status,
            response,
            error,
            finished_at_ms
        )?;
        Ok(n == 1)
    }

    /// The unfinished jobs `node` accepted, oldest first.
    pub async fn unfinished_jobs(&self, node: &str) -> Result<Vec<JobRecord>> {
        Ok(fetch!(
            &self.db,
            job_from_row,
            "SELECT * FROM candor_jobs WHERE node = $1 AND status IN ('queued', 'running') \
             ORDER BY created_at, job_id",
            node
        )?)
    }

    /// Deletes jobs that finished before `finished_before_ms` (reviewers'
    /// cases: whose `keep_until` has passed, with their reviews), and fails
    /// unfinished ones created before `abandoned_before_ms` (their server
    /// never came back for them). Gives the ids deleted and the number
    /// failed.
    pub async fn expire_jobs(
        &self,
        finished_before_ms: i64,
        abandoned_before_ms: i64,
        abandoned_error: &str,
    ) -> Result<(Vec<String>, u64)> {
        let now = now_ms();
        let gone = fetch!(
            &self.db,
            string_from_row,
            "SELECT job_id FROM candor_jobs WHERE finished_at IS NOT NULL AND \
             ((keep_until IS NULL AND finished_at < $1) OR keep_until < $2)",
            finished_before_ms,
            now
        )?;
        for chunk in gone.chunks(200) {
            for id in chunk {
                exec!(&self.db, "DELETE FROM candor_reviews WHERE job_id = $1", id)?;
                exec!(&self.db, "DELETE FROM candor_jobs WHERE job_id = $1", id)?;
            }
        }
        let failed = exec!(
            &self.db,
            "UPDATE candor_jobs SET status = 'failed', error = $2, finished_at = $3 \
             WHERE status IN ('queued', 'running') AND created_at < $1",
            abandoned_before_ms,
            abandoned_error,
            now
        )?;
        Ok((gone, failed))
    }

    /// Reviewers' cases (jobs kept for review), newest first.
    pub async fn review_cases(&self, limit: i64) -> Result<Vec<JobRecord>> {
        Ok(fetch!(
            &self.db,
            job_from_row,
            "SELECT * FROM candor_jobs WHERE keep_until IS NOT NULL \
             ORDER BY created_at DESC, job_id LIMIT $1",
            limit
        )?)
    }

    /// Records a reviewer's decision.
    pub async fn add_review(&self, r: &ReviewRecord) -> Result<()> {
        exec!(
            &self.db,
            "INSERT INTO candor_reviews (review_id, job_id, applicant_id, decision, note, reviewer, owner, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &r.review_id,
            &r.job_id,
            &r.applicant_id,
            &r.decision,
            &r.note,
            &r.reviewer,
            &r.owner,
            r.created_at_ms
        )?;
        Ok(())
    }

    /// Decisions on one case, oldest first.
    pub async fn reviews_of(&self, job_id: &str) -> Result<Vec<ReviewRecord>> {
        Ok(fetch!(
            &self.db,
            review_from_row,
            "SELECT * FROM candor_reviews WHERE job_id = $1 ORDER BY created_at, review_id",
            job_id
        )?)
    }

    /// All decisions, oldest first (at most `limit`).
    pub async fn reviews(&self, limit: i64) -> Result<Vec<ReviewRecord>> {
        Ok(fetch!(
            &self.db,
            review_from_row,
            "SELECT * FROM candor_reviews ORDER BY created_at, review_id LIMIT $1",
            limit
        )?)
    }
}

/// Candor's tables and indexes (as named in [`SCHEMA`]).
const SCHEMA_OBJECTS: [&str; 11] = [
    "candor_batches",
    "candor_items",
    "candor_items_batch_state",
    "candor_items_batch_applicant",
    "candor_items_batch_finished",
    "candor_jobs",
    "candor_jobs_node_status",
    "candor_jobs_finished",
    "candor_jobs_kept",
    "candor_reviews",
    "candor_reviews_job",
];

/// The SQLite file already has apalis's migrations (all of them, applied
/// successfully) and Candor's tables: checked with reads only.
async fn sqlite_ready(pool: &SqlitePool) -> bool {
    let want = apalis_sqlite::SqliteStorage::migrations()
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count() as i64;
    let applied: std::result::Result<i64, _> =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await;
    let mut q = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sqlite_master WHERE name IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    );
    for o in SCHEMA_OBJECTS {
        q = q.bind(o);
    }
    let objects = q.fetch_one(pool).await;
    matches!((applied, objects), (Ok(a), Ok(o)) if a >= want && o == SCHEMA_OBJECTS.len() as i64)
}

/// Runs `f` again (up to ~10 s, with backoff) while SQLite answers that the
/// database is locked or busy: a schema change waits for writers in other
/// processes; the busy timeout does not cover every such case (a read
/// transaction that must become a write one fails at once).
async fn retry_locked<F, Fut>(mut f: F) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let start = std::time::Instant::now();
    let mut wait = Duration::from_millis(20);
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(e)
                if (e.contains("database is locked") || e.contains("database is busy"))
                    && start.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

fn window_from_row<R: Row>(r: &R) -> std::result::Result<(i64, Option<i64>), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((r.try_get(0usize)?, r.try_get(1usize)?))
}

/// What a worker stores for an item.
#[derive(Debug, Clone)]
pub(crate) struct ItemOutcome {
    pub state: ItemState,
    pub sha256: Option<String>,
    pub models: Option<String>,
    pub modality: Option<String>,
    pub score: Option<f64>,
    pub label: Option<String>,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub worker: Option<String>,
}

/// The queue payload of an item: its id and the generation it was
/// enqueued under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemTask {
    pub item: String,
    pub gen: i64,
}

fn item_tasks(ids: &[String], gen: i64) -> Vec<apalis::prelude::Task<Vec<u8>>> {
    ids.iter()
        .map(|id| {
            let payload = serde_json::to_vec(&ItemTask {
                item: id.clone(),
                gen,
            })
            .unwrap_or_default();
            TaskBuilder::new(payload)
                .idempotency_key(format!("{id}:{gen}"))
                .max_attempts(25)
                .build()
        })
        .collect()
}

/// The URL with any password replaced by `***` (for logs and errors).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = item_id("b", "app", "/x");
        assert_eq!(a, item_id("b", "app", "/x"));
        assert_ne!(a, item_id("b", "app", "/y"));
        assert_ne!(a, item_id("c", "app", "/x"));
        // No ambiguity from concatenation.
        assert_ne!(item_id("b", "ap", "p/x"), item_id("b", "app", "/x"));
        assert_eq!(a.len(), 32);
        assert!(check_batch_id(&a).is_ok());
        assert!(check_batch_id("../etc").is_err());
        assert!(check_batch_id("").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("/var/candor/bulk.db"), "/var/candor/bulk.db");
    }
}
