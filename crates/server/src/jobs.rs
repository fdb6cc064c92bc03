//! In-memory store for `?async=true` jobs.
//!
//! Bounded by a maximum number of jobs. Finished jobs are kept for a TTL so
//! that callers can poll them; when the store is full the oldest finished
//! job is evicted, and when it is full of unfinished jobs new jobs are
//! refused (429). Jobs do not survive a restart.

use std::collections::HashMap;
use std::sync::Mutex;
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
    created_at: SystemTime,
    finished_at: Option<SystemTime>,
    finished: Option<Instant>,
    response: Option<AnalyzeResponse>,
    error: Option<Problem>,
}

/// The job store.
pub struct JobStore {
    max_jobs: usize,
    ttl: Duration,
    jobs: Mutex<HashMap<String, Job>>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl JobStore {
    pub fn new(max_jobs: usize, ttl: Duration) -> Self {
        let store = JobStore {
            max_jobs: max_jobs.max(1),
            ttl,
            jobs: Mutex::new(HashMap::new()),
        };
        store.publish(&store.jobs.lock().expect("job store lock"));
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, jobs: &HashMap<String, Job>) {
        for s in JobStatus::ALL {
            let n = jobs.values().filter(|j| j.status == s).count();
            metrics::gauge!(m::JOBS, "status" => s.as_str()).set(n as f64);
        }
    }

    fn purge_expired(&self, jobs: &mut HashMap<String, Job>) {
        let ttl = self.ttl;
        jobs.retain(|_, j| j.finished.is_none_or(|f| f.elapsed() < ttl));
    }

    /// Register a new queued job; evicts the oldest finished job when full,
    /// refuses when full of unfinished jobs.
    pub fn create(&self) -> Result<String, ServerError> {
        let mut jobs = self.lock();
        self.purge_expired(&mut jobs);
        if jobs.len() >= self.max_jobs {
            let oldest = jobs
                .iter()
                .filter_map(|(id, j)| j.finished.map(|f| (f, id.clone())))
                .min()
                .map(|(_, id)| id);
            match oldest {
                Some(id) => {
                    jobs.remove(&id);
                }
                None => {
                    return Err(ServerError::JobStoreFull { max: self.max_jobs });
                }
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        jobs.insert(
            id.clone(),
            Job {
                status: JobStatus::Queued,
                created_at: SystemTime::now(),
                finished_at: None,
                finished: None,
                response: None,
                error: None,
            },
        );
        self.publish(&jobs);
        Ok(id)
    }

    pub fn set_running(&self, id: &str) {
        let mut jobs = self.lock();
        if let Some(j) = jobs.get_mut(id) {
            j.status = JobStatus::Running;
        }
        self.publish(&jobs);
    }

    pub fn finish(&self, id: &str, outcome: Result<AnalyzeResponse, Problem>) {
        let mut jobs = self.lock();
        if let Some(j) = jobs.get_mut(id) {
            j.finished = Some(Instant::now());
            j.finished_at = Some(SystemTime::now());
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
        self.publish(&jobs);
    }

    pub fn get(&self, id: &str) -> Option<JobView> {
        let mut jobs = self.lock();
        self.purge_expired(&mut jobs);
        jobs.get(id).map(|j| JobView {
            job_id: id.to_owned(),
            status: j.status,
            created_at: rfc3339(j.created_at),
            finished_at: j.finished_at.map(rfc3339),
            response: j.response.clone(),
            error: j.error.clone(),
        })
    }

    /// Number of jobs held (any status).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn unfinished(&self) -> usize {
        self.lock()
            .values()
            .filter(|j| !j.status.finished())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> AnalyzeResponse {
        AnalyzeResponse {
            request_id: "r".into(),
            results: vec![],
            case: None,
        }
    }

    #[test]
    fn full_of_unfinished_refuses_and_evicts_oldest_finished() {
        let s = JobStore::new(2, Duration::from_secs(60));
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        assert!(matches!(
            s.create(),
            Err(ServerError::JobStoreFull { max: 2 })
        ));
        s.finish(&a, Ok(done()));
        std::thread::sleep(Duration::from_millis(2));
        s.set_running(&b);
        let c = s.create().unwrap();
        assert!(s.get(&a).is_none(), "oldest finished job evicted");
        assert_eq!(s.get(&b).unwrap().status, JobStatus::Running);
        assert_eq!(s.get(&c).unwrap().status, JobStatus::Queued);
        assert_eq!(s.unfinished(), 2);
    }

    #[test]
    fn finished_jobs_expire() {
        let s = JobStore::new(4, Duration::from_millis(1));
        let a = s.create().unwrap();
        s.finish(&a, Ok(done()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.get(&a).is_none());
        assert!(s.is_empty());
    }
}
