//! In-memory store for `?async=true` jobs.
//!
//! Bounded twice: by a number of jobs and by a byte budget. A job counts
//! against both from its admission, before its body is read (a
//! [`JobTicket`]): the bytes of its inputs as they arrive, then, once it
//! has finished, the size of its response. Finished jobs are kept for a TTL
//! so that callers can poll them; when the store is full the oldest
//! finished jobs are evicted, and when it is full of unfinished jobs new
//! jobs are refused (429) before their bodies are read. A job is visible
//! only to the API key that created it. With a durable store
//! ([`crate::durable`]) every job is also written down, and the unfinished
//! ones run again after a restart; without one they are lost on a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::api::AnalyzeResponse;
use crate::error::{Problem, ServerError};
use crate::metrics as m;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, waiting for analysis slots.
    Queued,
    /// Being analysed.
    Running,
    /// Finished; `response` holds the same body a synchronous call returns.
    Done,
    /// Finished with an error; `error` holds the problem.
    Failed,
}

impl JobStatus {
    const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    #[cfg(test)]
    fn finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    pub job_id: String,
    pub status: JobStatus,
    /// RFC 3339 time the job was accepted.
    pub created_at: String,
    /// RFC 3339 time the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The synchronous response body, when `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AnalyzeResponse>,
    /// The problem, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// Body of the `202 Accepted` answer to `?async=true`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAccepted {
    pub job_id: String,
    /// Always `queued`.
    pub status: JobStatus,
    /// Where to poll: `/v1/jobs/<id>`.
    pub location: String,
}

struct Job {
    status: JobStatus,
    /// Digest of the API key that created it (`None` without keys).
    owner: Option<[u8; 32]>,
    /// Bytes it holds against the budget (inputs, then its response).
    bytes: u64,
    created: Instant,
    created_at: SystemTime,
    finished_at: Option<SystemTime>,
    finished: Option<Instant>,
    response: Option<AnalyzeResponse>,
    error: Option<Problem>,
}

/// The job store.
pub struct JobStore {
    max_jobs: usize,
    max_bytes: u64,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Admitted jobs whose bodies are still being read.
    pending: usize,
    /// Bytes held by jobs and pending tickets.
    bytes: u64,
}

/// An admitted job whose body is being read: holds a job slot and the bytes
/// charged so far; gives them back on drop unless it became a job.
pub struct JobTicket {
    store: Arc<JobStore>,
    bytes: u64,
    live: bool,
}

impl JobTicket {
    /// Raise the charge to `total` bytes; refused past the budget.
    pub fn charge(&mut self, total: u64) -> Result<(), ServerError> {
        if total <= self.bytes {
            return Ok(());
        }
        let more = total - self.bytes;
        let mut inner = self.store.lock();
        if inner.bytes.saturating_add(more) > self.store.max_bytes {
            self.store.evict_finished(&mut inner, more);
        }
        if inner.bytes.saturating_add(more) > self.store.max_bytes {
            metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => "max_job_bytes").increment(1);
            return Err(ServerError::JobBudgetFull {
                held: inner.bytes,
                max: self.store.max_bytes,
            });
        }
        inner.bytes += more;
        self.bytes = total;
        self.store.publish(&inner);
        Ok(())
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        if self.live {
            let mut inner = self.store.lock();
            inner.pending = inner.pending.saturating_sub(1);
            inner.bytes = inner.bytes.saturating_sub(self.bytes);
            self.store.publish(&inner);
        }
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// An unfinished job, as logged when it is dropped at shutdown.
#[derive(Debug, Clone)]
pub struct UnfinishedJob {
    pub job_id: String,
    pub status: JobStatus,
    pub age: Duration,
}

impl JobStore {
    pub fn new(max_jobs: usize, max_bytes: u64, ttl: Duration) -> Self {
        let store = JobStore {
            max_jobs: max_jobs.max(1),
            max_bytes,
            ttl,
            inner: Mutex::new(Inner::default()),
        };
        store.publish(&store.lock());
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &Inner) {
        for s in JobStatus::ALL {
            let n = inner.jobs.values().filter(|j| j.status == s).count();
            metrics::gauge!(m::JOBS, "status" => s.as_str()).set(n as f64);
        }
        metrics::gauge!(m::JOB_BYTES).set(inner.bytes as f64);
    }

    fn purge_expired(&self, inner: &mut Inner) {
        let ttl = self.ttl;
        let mut freed = 0;
        inner.jobs.retain(|_, j| {
            let keep = j.finished.is_none_or(|f| f.elapsed() < ttl);
            if !keep {
                freed += j.bytes;
            }
            keep
        });
        inner.bytes = inner.bytes.saturating_sub(freed);
    }

    /// Evicts the oldest finished jobs until `need` more bytes fit (or no
    /// finished job is left).
    fn evict_finished(&self, inner: &mut Inner, need: u64) {
        self.purge_expired(inner);
        while inner.bytes.saturating_add(need) > self.max_bytes {
            let Some(id) = oldest_finished(&inner.jobs) else {
                return;
            };
            if let Some(j) = inner.jobs.remove(&id) {
                inner.bytes = inner.bytes.saturating_sub(j.bytes);
            }
        }
    }

    /// Admits a job before its body is read: a job slot (evicting the
    /// oldest finished job when full) and `expected_bytes` of the budget
    /// (the declared body length, when known).
    pub fn admit(self: &Arc<Self>, expected_bytes: u64) -> Result<JobTicket, ServerError> {
        let mut inner = self.lock();
        self.purge_expired(&mut inner);
        if inner.jobs.len() + inner.pending >= self.max_jobs {
            match oldest_finished(&inner.jobs) {
                Some(id) => {
                    if let Some(j) = inner.jobs.remove(&id) {
                        inner.bytes = inner.bytes.saturating_sub(j.bytes);
                    }
                }
                None => {
                    metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => "max_jobs")
                        .increment(1);
                    return Err(ServerError::JobStoreFull { max: self.max_jobs });
                }
            }
        }
        inner.pending += 1;
        drop(inner);
        let mut ticket = JobTicket {
            store: Arc::clone(self),
            bytes: 0,
            live: true,
        };
        ticket.charge(expected_bytes)?;
        Ok(ticket)
    }

    /// Turns an admitted ticket into a queued job owned by `owner`.
    pub fn create(&self, mut ticket: JobTicket, owner: Option<[u8; 32]>) -> String {
        ticket.live = false;
        let mut inner = self.lock();
        inner.pending = inner.pending.saturating_sub(1);
        let id = uuid::Uuid::new_v4().to_string();
        inner.jobs.insert(
            id.clone(),
            Job {
                status: JobStatus::Queued,
                owner,
                bytes: ticket.bytes,
                created: Instant::now(),
                created_at: SystemTime::now(),
                finished_at: None,
                finished: None,
                response: None,
                error: None,
            },
        );
        self.publish(&inner);
        id
    }

    /// Puts back a job accepted before a restart (queued, holding its
    /// inputs' bytes). It was admitted then, so no limit refuses it now.
    pub fn restore(&self, id: &str, owner: Option<[u8; 32]>, bytes: u64, created_at: SystemTime) {
        let mut inner = self.lock();
        if inner.jobs.contains_key(id) {
            return;
        }
        inner.bytes += bytes;
        inner.jobs.insert(
            id.to_owned(),
            Job {
                status: JobStatus::Queued,
                owner,
                bytes,
                created: Instant::now()
                    .checked_sub(created_at.elapsed().unwrap_or_default())
                    .unwrap_or_else(Instant::now),
                created_at,
                finished_at: None,
                finished: None,
                response: None,
                error: None,
            },
        );
        self.publish(&inner);
    }

    /// Drops a job that could not be written down (its accept failed).
    pub fn forget(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(j) = inner.jobs.remove(id) {
            inner.bytes = inner.bytes.saturating_sub(j.bytes);
        }
        self.publish(&inner);
    }

    pub fn set_running(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(j) = inner.jobs.get_mut(id) {
            j.status = JobStatus::Running;
        }
        self.publish(&inner);
    }

    /// Records a job's outcome: its inputs' bytes are given back and its
    /// response's size is charged instead (older finished jobs are evicted
    /// to make room).
    pub fn finish(&self, id: &str, outcome: Result<AnalyzeResponse, Problem>) {
        self.finish_at(id, outcome, SystemTime::now());
    }

    /// [`JobStore::finish`] at a given time (kept to the millisecond, as
    /// the durable copy keeps it).
    pub fn finish_at(&self, id: &str, outcome: Result<AnalyzeResponse, Problem>, at: SystemTime) {
        let size = match &outcome {
            Ok(r) => serde_json::to_vec(r).map_or(0, |v| v.len() as u64),
            Err(p) => serde_json::to_vec(p).map_or(0, |v| v.len() as u64),
        };
        let mut inner = self.lock();
        let Some(held) = inner.jobs.get(id).map(|j| j.bytes) else {
            return;
        };
        inner.bytes = inner.bytes.saturating_sub(held);
        // Make room among the other finished jobs (this one is not finished yet).
        self.evict_finished(&mut inner, size);
        inner.bytes += size;
        if let Some(j) = inner.jobs.get_mut(id) {
            j.bytes = size;
            j.finished = Some(Instant::now());
            j.finished_at = Some(at);
            match outcome {
                Ok(r) => {
                    j.status = JobStatus::Done;
                    j.response = Some(r);
                }
                Err(p) => {
                    j.status = JobStatus::Failed;
                    j.error = Some(p);
                }
            }
        }
        self.publish(&inner);
    }

    /// The job, when it exists and `owner` created it.
    pub fn get(&self, id: &str, owner: Option<[u8; 32]>) -> Option<JobView> {
        let mut inner = self.lock();
        self.purge_expired(&mut inner);
        inner
            .jobs
            .get(id)
            .filter(|j| j.owner == owner)
            .map(|j| JobView {
                job_id: id.to_owned(),
                status: j.status,
                created_at: rfc3339(j.created_at),
                finished_at: j.finished_at.map(rfc3339),
                response: j.response.clone(),
                error: j.error.clone(),
            })
    }

    /// Jobs not finished yet (logged when the server stops).
    pub fn unfinished_jobs(&self) -> Vec<UnfinishedJob> {
        let inner = self.lock();
        let mut v: Vec<UnfinishedJob> = inner
            .jobs
            .iter()
            .filter(|(_, j)| j.finished.is_none())
            .map(|(id, j)| UnfinishedJob {
                job_id: id.clone(),
                status: j.status,
                age: j.created.elapsed(),
            })
            .collect();
        v.sort_by_key(|j| std::cmp::Reverse(j.age));
        v
    }

    /// Bytes held against the budget.
    pub fn held_bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Number of jobs held (any status).
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn unfinished(&self) -> usize {
        self.lock()
            .jobs
            .values()
            .filter(|j| !j.status.finished())
            .count()
    }
}

fn oldest_finished(jobs: &HashMap<String, Job>) -> Option<String> {
    jobs.iter()
        .filter_map(|(id, j)| j.finished.map(|f| (f, id.clone())))
        .min()
        .map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> AnalyzeResponse {
        AnalyzeResponse {
            request_id: "r".into(),
            results: vec![],
            case: None,
            matches: vec![],
        }
    }

    fn store(max_jobs: usize, max_bytes: u64, ttl: Duration) -> Arc<JobStore> {
        Arc::new(JobStore::new(max_jobs, max_bytes, ttl))
    }

    #[test]
    fn full_of_unfinished_refuses_and_evicts_oldest_finished() {
        let s = store(2, 1 << 20, Duration::from_secs(60));
        let a = s.create(s.admit(0).unwrap(), None);
        let b = s.create(s.admit(0).unwrap(), None);
        assert!(matches!(
            s.admit(0),
            Err(ServerError::JobStoreFull { max: 2 })
        ));
        s.finish(&a, Ok(done()));
        std::thread::sleep(Duration::from_millis(2));
        s.set_running(&b);
        let c = s.create(s.admit(0).unwrap(), None);
        assert!(s.get(&a, None).is_none(), "oldest finished job evicted");
        assert_eq!(s.get(&b, None).unwrap().status, JobStatus::Running);
        assert_eq!(s.get(&c, None).unwrap().status, JobStatus::Queued);
        assert_eq!(s.unfinished(), 2);
    }

    #[test]
    fn pending_tickets_hold_slots_and_bytes_until_dropped() {
        let s = store(2, 1000, Duration::from_secs(60));
        let mut t = s.admit(100).unwrap();
        assert_eq!(s.held_bytes(), 100);
        t.charge(900).unwrap();
        assert!(matches!(
            s.admit(200),
            Err(ServerError::JobBudgetFull {
                held: 900,
                max: 1000
            })
        ));
        assert!(matches!(
            t.charge(1001),
            Err(ServerError::JobBudgetFull { .. })
        ));
        let _other = s.admit(50).unwrap();
        assert!(matches!(s.admit(0), Err(ServerError::JobStoreFull { .. })));
        drop(t);
        assert_eq!(s.held_bytes(), 50);
        let id = s.create(s.admit(300).unwrap(), None);
        assert_eq!(s.held_bytes(), 350);
        s.finish(&id, Ok(done()));
        let resp = serde_json::to_vec(&done()).unwrap().len() as u64;
        assert_eq!(
            s.held_bytes(),
            50 + resp,
            "inputs given back, response charged"
        );
    }

    #[test]
    fn jobs_are_visible_only_to_their_owner() {
        let s = store(4, 1 << 20, Duration::from_secs(60));
        let mine = s.create(s.admit(0).unwrap(), Some([1; 32]));
        assert!(s.get(&mine, Some([1; 32])).is_some());
        assert!(s.get(&mine, Some([2; 32])).is_none());
        assert!(s.get(&mine, None).is_none());
        let unowned = s.create(s.admit(0).unwrap(), None);
        assert!(s.get(&unowned, None).is_some());
        assert_eq!(s.unfinished_jobs().len(), 2);
    }

    #[test]
    fn finished_jobs_expire() {
        let s = store(4, 1 << 20, Duration::from_millis(1));
        let a = s.create(s.admit(10).unwrap(), None);
        s.finish(&a, Ok(done()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.get(&a, None).is_none());
        assert!(s.is_empty());
        assert_eq!(s.held_bytes(), 0);
    }
}
