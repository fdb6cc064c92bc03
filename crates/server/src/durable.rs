//! `?async=true` jobs kept in the bulk store, so that they survive a
//! restart.
//!
//! When the server has a store (the bulk queue's SQLite file under
//! `CANDOR_HOME`, or its PostgreSQL database), an accepted job is written
//! down before its `202` goes out: its inputs as files under
//! `<jobs dir>/<node>/<job id>/`, its plan and owner as a row of
//! `candor_jobs`. The job then runs as before; its outcome is stored on the
//! row and its input files are removed. At start-up a server runs again
//! the unfinished jobs it accepted (its `node` id: host, `CANDOR_HOME` and
//! port, or `CANDOR_NODE_ID`); one that was already running when the server
//! stopped counts an attempt, and after [`MAX_ATTEMPTS`] it fails instead
//! of running a fourth time (an input that kills the process must not kill
//! it at every start). `GET /v1/jobs/{id}` reads the row when the job is no
//! longer in memory. Finished rows are deleted after the job TTL; an
//! unfinished job whose server never came back fails after the TTL plus
//! the longest request timeout.
//!
//! The in-memory [`crate::jobs::JobStore`] still bounds what one server
//! holds (jobs, bytes); the rows are the durable copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candor_bulk::{JobRecord, ReviewRecord, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::AnalyzeResponse;
use crate::error::{Problem, ServerError};
use crate::jobs::{JobStatus, JobView};
use crate::metrics as m;

/// Runs a job may start; one found running after this many restarts fails.
pub const MAX_ATTEMPTS: i64 = 3;

/// Where the durable copies of async jobs go.
#[derive(Clone, Debug)]
pub struct DurableJobs {
    store: Store,
    /// `<jobs dir>/<node>`.
    dir: PathBuf,
    node: String,
}

/// One stored input: a file of the job's folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct StoredInput {
    /// `file` (bytes with a name and media type) or `text` (pasted text).
    pub kind: String,
    /// File name inside the job's folder.
    pub file: String,
    pub len: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A reviewer's case as the review pages show it.
pub(crate) struct Case {
    pub view: JobView,
    pub applicant_id: Option<String>,
    pub keep_until: Option<SystemTime>,
    /// Each input, with its file when the name is sound.
    pub inputs: Vec<(StoredInput, Option<PathBuf>)>,
    pub reviews: Vec<ReviewRecord>,
}

/// A job found unfinished at start-up, ready to run again.
pub(crate) struct Recovered {
    pub job_id: String,
    pub owner: Option<[u8; 32]>,
    pub created_at: SystemTime,
    pub bytes: u64,
    pub plan: String,
    pub inputs: Vec<(StoredInput, PathBuf)>,
}

/// The node id of a server: `CANDOR_NODE_ID` when set, else a digest of
/// the host name, `CANDOR_HOME` and the port (so two servers on one home
/// never run each other's jobs, and one restarted on the same port finds
/// its own).
pub fn node_id(explicit: Option<&str>, candor_home: &Path, port: u16) -> String {
    if let Some(n) = explicit.map(str::trim).filter(|n| !n.is_empty()) {
        return n
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let home = candor_home
        .canonicalize()
        .unwrap_or_else(|_| candor_home.to_path_buf());
    let mut h = Sha256::new();
    h.update(host.trim().as_bytes());
    h.update([0]);
    h.update(home.to_string_lossy().as_bytes());
    h.update([0]);
    h.update(port.to_le_bytes());
    hex::encode(&h.finalize()[..8])
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn from_ms(v: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(v.max(0) as u64)
}

fn owner_hex(owner: Option<[u8; 32]>) -> Option<String> {
    owner.map(hex::encode)
}

fn owner_bytes(owner: Option<&str>) -> Option<[u8; 32]> {
    let v = hex::decode(owner?).ok()?;
    v.try_into().ok()
}

fn store_error(e: candor_bulk::BulkError) -> ServerError {
    metrics::counter!(m::JOB_STORE_ERRORS_TOTAL).increment(1);
    ServerError::JobStoreUnavailable(format!("the job store failed: {e}"))
}

impl DurableJobs {
    /// Jobs of `node` in `store`, their inputs under `jobs_dir/<node>`.
    pub fn new(store: Store, jobs_dir: &Path, node: String) -> Self {
        DurableJobs {
            store,
            dir: jobs_dir.join(&node),
            node,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn job_dir(&self, job_id: &str) -> PathBuf {
        self.dir.join(job_id)
    }

    /// Writes a new job down: its input files first, then its row. On
    /// failure nothing is left behind.
    pub(crate) async fn persist(
        &self,
        job_id: &str,
        owner: Option<[u8; 32]>,
        plan: String,
        inputs: Vec<(StoredInput, Source)>,
        applicant_id: Option<String>,
        keep_for: Option<Duration>,
    ) -> Result<(), ServerError> {
        let dir = self.job_dir(job_id);
        let d = dir.clone();
        let written = tokio::task::spawn_blocking(move || write_inputs(&d, inputs))
            .await
            .map_err(|e| ServerError::Internal(format!("job writer task: {e}")))?;
        let manifest = match written {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                metrics::counter!(m::JOB_STORE_ERRORS_TOTAL).increment(1);
                return Err(ServerError::JobStoreUnavailable(format!(
                    "cannot write the job's inputs: {e}"
                )));
            }
        };
        let bytes: u64 = manifest.iter().map(|i| i.len).sum();
        let rec = JobRecord {
            job_id: job_id.to_owned(),
            owner: owner_hex(owner),
            node: self.node.clone(),
            status: "queued".into(),
            created_at_ms: ms(SystemTime::now()),
            started_at_ms: None,
            finished_at_ms: None,
            attempts: 0,
            bytes: bytes as i64,
            plan,
            inputs: serde_json::to_string(&manifest).unwrap_or_else(|_| "[]".into()),
            response: None,
            error: None,
            applicant_id,
            keep_until_ms: keep_for.map(|d| ms(SystemTime::now()) + d.as_millis() as i64),
        };
        if let Err(e) = self.store.insert_job(&rec).await {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(store_error(e));
        }
        Ok(())
    }

    /// Records that the job starts running (an attempt).
    pub(crate) async fn start(&self, job_id: &str) {
        if let Err(e) = self.store.start_job(job_id).await {
            metrics::counter!(m::JOB_STORE_ERRORS_TOTAL).increment(1);
            tracing::warn!(job_id, error = %e, "cannot mark the async job running");
        }
    }

    /// Stores the outcome and removes the job's input files (a reviewer's
    /// case, `keep`, keeps them for its pages).
    pub(crate) async fn finish(
        &self,
        job_id: &str,
        outcome: &Result<AnalyzeResponse, Problem>,
        keep: bool,
    ) {
        self.finish_at(job_id, outcome, keep, SystemTime::now())
            .await
    }

    /// [`DurableJobs::finish`] at a given time (the one the in-memory copy
    /// records, so that both answer the same `finished_at`).
    pub(crate) async fn finish_at(
        &self,
        job_id: &str,
        outcome: &Result<AnalyzeResponse, Problem>,
        keep: bool,
        at: SystemTime,
    ) {
        let at = ms(at);
        let (resp, err) = match outcome {
            Ok(r) => (serde_json::to_string(r).ok(), None),
            Err(p) => (None, Some(serde_json::to_string(p).unwrap_or_default())),
        };
        let stored = match (resp, err) {
            (Some(r), _) => self.store.finish_job_at(job_id, Some(&r), None, at).await,
            (None, Some(p)) => self.store.finish_job_at(job_id, None, Some(&p), at).await,
            (None, None) => {
                let p = Problem::from_error(&ServerError::Internal(
                    "the response could not be stored".into(),
                ));
                let p = serde_json::to_string(&p).unwrap_or_default();
                self.store.finish_job_at(job_id, None, Some(&p), at).await
            }
        };
        if let Err(e) = stored {
            metrics::counter!(m::JOB_STORE_ERRORS_TOTAL).increment(1);
            tracing::warn!(job_id, error = %e, "cannot store the async job's outcome");
        }
        if !keep {
            let _ = tokio::fs::remove_dir_all(self.job_dir(job_id)).await;
        }
    }

    /// A reviewer's case (a kept job) and the paths of its inputs, when
    /// `owner` may see it.
    pub(crate) async fn case(
        &self,
        job_id: &str,
        owner: Option<[u8; 32]>,
    ) -> Result<Option<Case>, ServerError> {
        let Some(r) = self.store.job(job_id).await.map_err(store_error)? else {
            return Ok(None);
        };
        if r.keep_until_ms.is_none() || owner_bytes(r.owner.as_deref()) != owner {
            return Ok(None);
        }
        let inputs: Vec<StoredInput> = serde_json::from_str(&r.inputs).unwrap_or_default();
        let dir = self.store_dir_of(&r);
        let reviews = self.store.reviews_of(job_id).await.map_err(store_error)?;
        Ok(Some(Case {
            view: view(&r),
            applicant_id: r.applicant_id.clone(),
            keep_until: r.keep_until_ms.map(from_ms),
            inputs: inputs
                .into_iter()
                .map(|i| {
                    let p = (!i.file.contains('/') && !i.file.contains(".."))
                        .then(|| dir.join(&i.file));
                    (i, p)
                })
                .collect(),
            reviews,
        }))
    }

    fn store_dir_of(&self, r: &JobRecord) -> PathBuf {
        match self.dir.parent() {
            Some(root) => root.join(&r.node).join(&r.job_id),
            None => self.job_dir(&r.job_id),
        }
    }

    /// Reviewers' cases that `owner` may see, newest first.
    pub(crate) async fn cases(
        &self,
        owner: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<(JobView, Option<String>)>, ServerError> {
        let rows = self.store.review_cases(limit).await.map_err(store_error)?;
        Ok(rows
            .iter()
            .filter(|r| owner_bytes(r.owner.as_deref()) == owner)
            .map(|r| (view(r), r.applicant_id.clone()))
            .collect())
    }

    /// Records a reviewer's decision on a case `owner` may see.
    pub(crate) async fn add_review(
        &self,
        job_id: &str,
        owner: Option<[u8; 32]>,
        decision: &str,
        note: &str,
        reviewer: &str,
    ) -> Result<Option<ReviewRecord>, ServerError> {
        let Some(case) = self.case(job_id, owner).await? else {
            return Ok(None);
        };
        let r = ReviewRecord {
            review_id: uuid::Uuid::new_v4().to_string(),
            job_id: job_id.to_owned(),
            applicant_id: case.applicant_id,
            decision: decision.to_owned(),
            note: note.to_owned(),
            reviewer: reviewer.to_owned(),
            owner: owner_hex(owner),
            created_at_ms: ms(SystemTime::now()),
        };
        self.store.add_review(&r).await.map_err(store_error)?;
        Ok(Some(r))
    }

    /// Decisions `owner` may see, oldest first, with the case's result.
    pub(crate) async fn reviews(
        &self,
        owner: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<(ReviewRecord, Option<JobView>)>, ServerError> {
        let all = self.store.reviews(limit).await.map_err(store_error)?;
        let mut out = Vec::new();
        for r in all {
            if owner_bytes(r.owner.as_deref()) != owner {
                continue;
            }
            let job = self.store.job(&r.job_id).await.map_err(store_error)?;
            out.push((r, job.as_ref().map(view)));
        }
        Ok(out)
    }

    /// The stored job, when it exists, `owner` created it and it has not
    /// expired.
    pub(crate) async fn get(
        &self,
        job_id: &str,
        owner: Option<[u8; 32]>,
        ttl: Duration,
    ) -> Result<Option<JobView>, ServerError> {
        let Some(r) = self.store.job(job_id).await.map_err(store_error)? else {
            return Ok(None);
        };
        if owner_bytes(r.owner.as_deref()) != owner {
            return Ok(None);
        }
        if let Some(f) = r.finished_at_ms {
            if ms(SystemTime::now()) - f > ttl.as_millis() as i64 {
                return Ok(None);
            }
        }
        Ok(Some(view(&r)))
    }

    /// Deletes expired rows, fails abandoned ones, and gives back this
    /// node's unfinished jobs to run again (failing those that already
    /// started [`MAX_ATTEMPTS`] times or whose inputs are gone). Removes
    /// folders of this node that belong to no unfinished job.
    pub(crate) async fn recover(
        &self,
        ttl: Duration,
        max_request: Duration,
    ) -> Result<Vec<Recovered>, ServerError> {
        self.sweep(ttl, max_request).await;
        let rows = self
            .store
            .unfinished_jobs(&self.node)
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        for r in rows {
            match self.recovered(&r) {
                Ok(rec) => out.push(rec),
                Err(reason) => {
                    tracing::warn!(job_id = %r.job_id, reason, "async job cannot run again");
                    let p = Problem::from_error(&ServerError::Internal(reason));
                    self.finish(&r.job_id, &Err(p), false).await;
                }
            }
        }
        let running: std::collections::HashSet<&str> =
            out.iter().map(|r| r.job_id.as_str()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if running.contains(name.as_str()) {
                    continue;
                }
                // Reviewers' cases keep their inputs once finished.
                let kept = matches!(
                    self.store.job(&name).await,
                    Ok(Some(r)) if r.keep_until_ms.is_some() && r.node == self.node
                );
                if !kept {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(out)
    }

    fn recovered(&self, r: &JobRecord) -> Result<Recovered, String> {
        if r.status == "running" && r.attempts >= MAX_ATTEMPTS {
            return Err(format!(
                "the server stopped during each of this job's {} runs; it is not run again",
                r.attempts
            ));
        }
        let manifest: Vec<StoredInput> = serde_json::from_str(&r.inputs)
            .map_err(|e| format!("the job's stored input list is unreadable: {e}"))?;
        let dir = self.job_dir(&r.job_id);
        let mut inputs = Vec::with_capacity(manifest.len());
        for i in manifest {
            if i.file.contains('/') || i.file.contains("..") {
                return Err("the job's stored input list names a bad file".into());
            }
            let path = dir.join(&i.file);
            match std::fs::metadata(&path) {
                Ok(md) if md.len() == i.len => inputs.push((i, path)),
                _ => return Err("the job's stored inputs are missing or damaged".into()),
            }
        }
        Ok(Recovered {
            job_id: r.job_id.clone(),
            owner: owner_bytes(r.owner.as_deref()),
            created_at: from_ms(r.created_at_ms),
            bytes: r.bytes.max(0) as u64,
            plan: r.plan.clone(),
            inputs,
        })
    }

    /// Deletes rows finished longer than `ttl` ago; fails unfinished ones
    /// older than `ttl + max_request` (their server never came back).
    pub(crate) async fn sweep(&self, ttl: Duration, max_request: Duration) {
        let now = ms(SystemTime::now());
        let abandoned = Problem::from_error(&ServerError::Internal(
            "the server that held this job's inputs did not come back to run it".into(),
        ));
        let abandoned = serde_json::to_string(&abandoned).unwrap_or_default();
        match self
            .store
            .expire_jobs(
                now - ttl.as_millis() as i64,
                now - (ttl + max_request).as_millis() as i64,
                &abandoned,
            )
            .await
        {
            Ok((deleted, failed)) if !deleted.is_empty() || failed > 0 => {
                for id in &deleted {
                    let _ = tokio::fs::remove_dir_all(self.job_dir(id)).await;
                }
                tracing::info!(deleted = deleted.len(), failed, "async job rows expired");
            }
            Ok(_) => {}
            Err(e) => {
                metrics::counter!(m::JOB_STORE_ERRORS_TOTAL).increment(1);
                tracing::warn!(error = %e, "cannot expire async job rows");
            }
        }
    }
}

/// The bytes of one input to write down.
pub(crate) enum Source {
    Bytes(Arc<[u8]>),
    File(std::fs::File),
}

fn write_inputs(
    dir: &Path,
    inputs: Vec<(StoredInput, Source)>,
) -> std::io::Result<Vec<StoredInput>> {
    use std::io::{Seek, SeekFrom, Write};
    crate::spill::create_private_dir(dir)?;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, (mut meta, src)) in inputs.into_iter().enumerate() {
        meta.file = format!("{i:04}");
        let path = dir.join(&meta.file);
        let mut f = std::fs::File::create(&path)?;
        meta.len = match src {
            Source::Bytes(b) => {
                f.write_all(&b)?;
                b.len() as u64
            }
            Source::File(mut src) => {
                src.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut src, &mut f)?
            }
        };
        f.sync_all()?;
        out.push(meta);
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(out)
}

fn view(r: &JobRecord) -> JobView {
    let status = match r.status.as_str() {
        "running" => JobStatus::Running,
        "done" => JobStatus::Done,
        "failed" => JobStatus::Failed,
        _ => JobStatus::Queued,
    };
    JobView {
        job_id: r.job_id.clone(),
        status,
        created_at: crate::jobs::rfc3339(from_ms(r.created_at_ms)),
        finished_at: r.finished_at_ms.map(|v| crate::jobs::rfc3339(from_ms(v))),
        response: r
            .response
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        error: r
            .error
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_differ_by_port_and_honour_an_explicit_id() {
        let home = Path::new("/tmp");
        assert_ne!(node_id(None, home, 8080), node_id(None, home, 8081));
        assert_eq!(node_id(None, home, 8080), node_id(None, home, 8080));
        assert_eq!(node_id(Some("web/1"), home, 1), "web_1");
        assert_eq!(node_id(Some("  "), home, 1), node_id(None, home, 1));
    }

    #[test]
    fn owners_round_trip_through_hex() {
        assert_eq!(
            owner_bytes(owner_hex(Some([7; 32])).as_deref()),
            Some([7; 32])
        );
        assert_eq!(owner_bytes(None), None);
        assert_eq!(owner_bytes(Some("zz")), None);
    }
}
