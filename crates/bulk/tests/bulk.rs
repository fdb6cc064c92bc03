//! Batches end to end on a real SQLite file and a real PostgreSQL server,
//! with a real analyzer (decoders and abstentions: no model is needed for
//! what is checked here).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candor_bulk::report::{self, Format};
use candor_bulk::store::{ItemState, ITEM_QUEUE};
use candor_bulk::testpg::PgServer;
use candor_bulk::{
    BulkWorker, ManifestLimits, ManifestReader, NewBatch, Store, WebhookConfig, WorkerConfig,
};
use candor_detectors::{Analyzer, AnalyzerConfig};
use tokio::sync::watch;

const RESUME: &str = "I led a team of five engineers who rebuilt the billing system, \
cutting month-end close from four days to one. Before that I maintained the payroll \
service for a retailer with eleven thousand staff.";

/// Files of three applicants: a resume text each, plus a corrupt PNG and a
/// missing recording for the third.
fn fixture(dir: &Path) -> PathBuf {
    for (a, sex) in [("ann", "F"), ("bob", "M"), ("cyd", "F")] {
        std::fs::create_dir_all(dir.join(a)).unwrap();
        std::fs::write(
            dir.join(a).join("resume.txt"),
            format!("{RESUME} ({a}, {sex})"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("cyd/photo.png"),
        b"\x89PNG\r\n\x1a\nthis is not a PNG",
    )
    .unwrap();
    let m = dir.join("manifest.csv");
    std::fs::write(
        &m,
        "applicant_id,files,hire_date,group:sex\n\
         ann,ann/resume.txt,2024-01-02,F\n\
         bob,bob,2023-07-01,M\n\
         cyd,cyd/resume.txt;cyd/photo.png;cyd/interview.wav,2022-03-04,F\n",
    )
    .unwrap();
    m
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 2,
        poll_interval: Duration::from_millis(100),
        missed_heartbeats: 5,
        stall_timeout: Duration::from_secs(30),
        item_timeout: Duration::from_secs(60),
        webhook: WebhookConfig {
            secret: Some("s3cret".into()),
            backoff: Duration::from_secs(1),
            max_attempts: 4,
            timeout: Duration::from_secs(5),
        },
        ..WorkerConfig::default()
    }
}

/// Logs to the test's output when RUST_LOG is set.
fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

fn analyzer() -> Arc<Analyzer> {
    Arc::new(Analyzer::new(AnalyzerConfig::default()))
}

async fn submit(store: &Store, m: &Path, id: &str, rescore: bool) -> candor_bulk::SubmitCounts {
    let new = NewBatch {
        batch_id: id.into(),
        rescore,
        ..Default::default()
    };
    let r = ManifestReader::open(m, ManifestLimits::default()).unwrap();
    candor_bulk::submit(store, &new, r, 1000, |_| {})
        .await
        .unwrap()
        .1
}

/// Runs a worker until the batch has no pending item (or panics after 60 s).
async fn work_until_done(store: &Store, id: &str, cfg: WorkerConfig) {
    let (tx, rx) = watch::channel(false);
    let w = BulkWorker::new(store.clone(), analyzer(), cfg);
    let h = tokio::spawn(w.run(rx));
    let t = Instant::now();
    loop {
        let s = store.status(id, None).await.unwrap();
        if s.finished {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "batch not finished: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), h)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
}

async fn items(store: &Store, id: &str) -> Vec<candor_bulk::ItemRow> {
    store.items_page(id, None, 10_000).await.unwrap()
}

async fn queued_tasks(store: &Store) -> i64 {
    use sqlx::Row;
    match store.db() {
        candor_bulk::store::Db::Sqlite(p) => {
            sqlx::query("SELECT COUNT(*) FROM Jobs WHERE job_type = $1")
                .bind(ITEM_QUEUE)
                .fetch_one(p)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
        candor_bulk::store::Db::Postgres(p) => {
            sqlx::query("SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1")
                .bind(ITEM_QUEUE)
                .fetch_one(p)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    }
}

/// The batch semantics, on whichever store.
async fn semantics(store: Store, dir: &Path) {
    logs();
    let t0 = Instant::now();
    let m = fixture(dir);
    let first = submit(&store, &m, "b1", false).await;
    assert_eq!((first.read, first.enqueued, first.existing), (5, 5, 0));
    let again = submit(&store, &m, "b1", false).await;
    assert_eq!((again.read, again.enqueued, again.existing), (5, 0, 5));
    assert_eq!(queued_tasks(&store).await, 5, "a resubmit enqueues nothing");

    eprintln!("submitted twice after {:?}", t0.elapsed());
    work_until_done(&store, "b1", worker_config()).await;
    eprintln!("first run done after {:?}", t0.elapsed());
    let s = store.status("b1", None).await.unwrap();
    assert_eq!((s.total, s.done, s.error, s.pending), (5, 3, 2, 0), "{s:?}");
    let rows = items(&store, "b1").await;
    for r in &rows {
        assert_eq!(r.writes, 1, "one result per item: {r:?}");
        assert_eq!(r.attempts, 1);
        match r.state {
            ItemState::Done => {
                assert_eq!(r.modality.as_deref(), Some("text"));
                assert!(r.sha256.is_some() && r.models.is_some());
                let res: serde_json::Value =
                    serde_json::from_str(r.result.as_deref().unwrap()).unwrap();
                assert_eq!(res["abstention"]["code"], "detector_not_installed");
            }
            ItemState::Error if r.path.ends_with("interview.wav") => {
                assert_eq!(r.error_code.as_deref(), Some("file_missing"));
            }
            ItemState::Error => {
                assert!(r.path.ends_with("photo.png"), "{r:?}");
                let p: serde_json::Value =
                    serde_json::from_str(r.error.as_deref().unwrap()).unwrap();
                assert_eq!(p["status"], 422, "{p}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // Cases and the impact report over the manifest's group column.
    let rep = report::report(&store, "b1", None, 10).await.unwrap();
    assert_eq!(rep.applicants, 3);
    assert_eq!(rep.unscored, 3, "no detector installed: nothing scored");
    assert_eq!(rep.cases.len(), 3);
    assert_eq!(
        rep.cases
            .iter()
            .find(|c| c.applicant_id == "cyd")
            .unwrap()
            .errors,
        2
    );
    assert_eq!(rep.impact.len(), 1);
    assert_eq!(rep.impact[0].column, "group:sex");
    assert_eq!(rep.impact[0].rows.len(), 2);
    assert!(rep.impact[0].rows.iter().all(|r| r.impact_ratio.is_none()));

    // Results as CSV: a header with the free columns, one row per item.
    let cols: Vec<String> = rows[0].columns.keys().cloned().collect();
    let mut csv = report::csv_header(&cols);
    for r in &rows {
        csv.push_str(&report::csv_row(r, &cols));
    }
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    assert!(rdr.headers().unwrap().iter().any(|h| h == "hire_date"));
    assert_eq!(rdr.records().count(), 5);
    assert_eq!(report::jsonl_row(&rows[0]).lines().count(), 1);
    assert_eq!("jsonl".parse::<Format>().unwrap(), Format::Jsonl);

    // A re-run after "a model update": unchanged files are not analysed
    // again; a changed file is.
    std::fs::write(dir.join("bob/resume.txt"), format!("{RESUME} (changed)")).unwrap();
    let re = submit(&store, &m, "b1", true).await;
    assert_eq!(re.enqueued, 0);
    work_until_done(&store, "b1", worker_config()).await;
    for r in items(&store, "b1").await {
        let want = if r.path.ends_with("bob/resume.txt") || r.state == ItemState::Error {
            2
        } else {
            1
        };
        assert_eq!(r.attempts, want, "{}: {r:?}", r.path);
        assert!(r.state != ItemState::Pending);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batch_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q/bulk.db").display().to_string(), 4)
        .await
        .unwrap();
    assert!(!store.is_postgres());
    semantics(store, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batch_semantics() {
    let Some(pg) = PgServer::start("semantics") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&pg.url(), 4).await.unwrap();
    assert!(store.is_postgres());
    semantics(store, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_pending_items_and_fires_the_webhook() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    // A receiver that fails the first delivery and accepts the second.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (got_tx, got_rx) = std::sync::mpsc::channel::<(String, String)>();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let mut c = conn.unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then the body by Content-Length.
            let (head, body) = loop {
                let k = c.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..k]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < i + 4 + len {
                        let k = c.read(&mut chunk).unwrap();
                        buf.extend_from_slice(&chunk[..k]);
                    }
                    break (
                        head,
                        String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string(),
                    );
                }
            };
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = c.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let _ = got_tx.send((head, body));
        }
    });

    let store = Store::open(&dir.path().join("bulk.db").display().to_string(), 4)
        .await
        .unwrap();
    let m = dir.path().join("m.jsonl");
    let mut lines = String::new();
    for i in 0..40 {
        std::fs::write(dir.path().join(format!("{i}.txt")), RESUME).unwrap();
        lines.push_str(&format!(
            "{{\"applicant_id\":\"a{i}\",\"file\":\"{i}.txt\"}}\n"
        ));
    }
    std::fs::write(&m, lines).unwrap();
    let new = NewBatch {
        batch_id: "c1".into(),
        webhook_url: Some(format!("http://127.0.0.1:{port}/hook")),
        ..Default::default()
    };
    let r = ManifestReader::open(&m, ManifestLimits::default()).unwrap();
    candor_bulk::submit(&store, &new, r, 1000, |_| {})
        .await
        .unwrap();
    assert_eq!(store.cancel("c1", None).await.unwrap(), 40);
    assert!(store.cancel("nope", None).await.is_err());

    // A worker serves the queue: no item is analysed, the webhook is sent
    // (retried once after the 500).
    let (tx, rx) = watch::channel(false);
    let w = BulkWorker::new(store.clone(), analyzer(), worker_config());
    let h = tokio::spawn(w.run(rx));
    let (h1, _) = tokio::task::spawn_blocking({
        let got = got_rx;
        move || {
            let a = got
                .recv_timeout(Duration::from_secs(30))
                .expect("first delivery");
            let b = got
                .recv_timeout(Duration::from_secs(30))
                .expect("retried delivery");
            (a, b)
        }
    })
    .await
    .map(|(a, b)| (b, a))
    .unwrap();
    let (head, body) = h1;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let ts: i64 = header("x-candor-timestamp").parse().unwrap();
    assert_eq!(
        header("x-candor-signature"),
        candor_bulk::webhook::sign("s3cret", ts, body.as_bytes())
    );
    assert!(header("x-candor-delivery").ends_with(":1"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["event"], "batch.cancelled");
    assert_eq!(v["batch"]["cancelled"], 40);
    tx.send(true).unwrap();
    h.await.unwrap().unwrap();
    for r in items(&store, "c1").await {
        assert_eq!((r.state, r.attempts), (ItemState::Cancelled, 0));
    }
    let e = submit_err(&store, &m, "c1").await;
    assert!(e.contains("cancelled"), "{e}");
}

async fn submit_err(store: &Store, m: &Path, id: &str) -> String {
    let new = NewBatch {
        batch_id: id.into(),
        ..Default::default()
    };
    let r = ManifestReader::open(m, ManifestLimits::default()).unwrap();
    candor_bulk::submit(store, &new, r, 1000, |_| {})
        .await
        .unwrap_err()
        .to_string()
}

/// The rows of `?async=true` jobs, the same on either database.
async fn job_rows(store: Store) {
    use candor_bulk::JobRecord;
    let rec = |id: &str, node: &str, created: i64| JobRecord {
        job_id: id.into(),
        owner: Some("ab".repeat(32)),
        node: node.into(),
        status: "queued".into(),
        created_at_ms: created,
        started_at_ms: None,
        finished_at_ms: None,
        attempts: 0,
        bytes: 12,
        plan: "{}".into(),
        inputs: "[]".into(),
        response: None,
        error: None,
        applicant_id: None,
        keep_until_ms: None,
    };
    let now = candor_bulk::store::now_ms();
    store.insert_job(&rec("j1", "a", now)).await.unwrap();
    store.insert_job(&rec("j2", "a", now + 1)).await.unwrap();
    store.insert_job(&rec("j3", "b", now)).await.unwrap();
    store.insert_job(&rec("old", "gone", 0)).await.unwrap();
    assert!(
        store.insert_job(&rec("j1", "a", now)).await.is_err(),
        "job ids are unique"
    );
    assert_eq!(store.job("j1").await.unwrap().unwrap(), rec("j1", "a", now));
    assert!(store.job("nope").await.unwrap().is_none());

    store.start_job("j1").await.unwrap();
    store.start_job("j1").await.unwrap();
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert_eq!((j1.status.as_str(), j1.attempts), ("running", 2));
    assert!(j1.started_at_ms.is_some());
    let ids = |v: Vec<JobRecord>| v.into_iter().map(|j| j.job_id).collect::<Vec<_>>();
    assert_eq!(ids(store.unfinished_jobs("a").await.unwrap()), ["j1", "j2"]);

    assert!(store
        .finish_job("j1", Some("{\"r\":1}"), None)
        .await
        .unwrap());
    assert!(
        !store.finish_job("j1", None, Some("{}")).await.unwrap(),
        "the first outcome stays"
    );
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert_eq!(j1.status, "done");
    assert_eq!(j1.response.as_deref(), Some("{\"r\":1}"));
    assert!(j1.error.is_none());
    store.start_job("j1").await.unwrap();
    assert_eq!(store.job("j1").await.unwrap().unwrap().status, "done");
    assert_eq!(ids(store.unfinished_jobs("a").await.unwrap()), ["j2"]);

    // Nothing finished yet is old enough to delete; the abandoned one fails.
    let (deleted, failed) = store
        .expire_jobs(now - 1000, now - 1000, "{\"p\":1}")
        .await
        .unwrap();
    assert_eq!((deleted.len(), failed), (0, 1));
    let old = store.job("old").await.unwrap().unwrap();
    assert_eq!(
        (old.status.as_str(), old.error.as_deref()),
        ("failed", Some("{\"p\":1}"))
    );
    let (deleted, _) = store
        .expire_jobs(candor_bulk::store::now_ms() + 1, 0, "{}")
        .await
        .unwrap();
    assert_eq!(deleted.len(), 2, "j1 and old were finished");
    assert!(store.job("j1").await.unwrap().is_none());
    assert_eq!(ids(store.unfinished_jobs("b").await.unwrap()), ["j3"]);

    // A reviewer's case outlives the job TTL until its keep_until, with
    // its decisions; then both go.
    let mut case = rec("case", "a", now);
    case.applicant_id = Some("app-7".into());
    case.keep_until_ms = Some(now + 60_000);
    store.insert_job(&case).await.unwrap();
    store.finish_job("case", Some("{}"), None).await.unwrap();
    let review = candor_bulk::ReviewRecord {
        review_id: "r1".into(),
        job_id: "case".into(),
        applicant_id: Some("app-7".into()),
        decision: "needs_live_check".into(),
        note: "voice sounds flat".into(),
        reviewer: "dana".into(),
        owner: None,
        created_at_ms: now,
    };
    store.add_review(&review).await.unwrap();
    assert_eq!(
        store.reviews_of("case").await.unwrap(),
        std::slice::from_ref(&review)
    );
    assert_eq!(store.reviews(10).await.unwrap(), [review]);
    assert_eq!(ids(store.review_cases(10).await.unwrap()), ["case"]);
    let far = candor_bulk::store::now_ms() + 1;
    assert!(store.expire_jobs(far, 0, "{}").await.unwrap().0.is_empty());
    let mut gone = rec("gone-case", "a", now);
    gone.keep_until_ms = Some(now - 1);
    store.insert_job(&gone).await.unwrap();
    store
        .finish_job("gone-case", Some("{}"), None)
        .await
        .unwrap();
    let (deleted, _) = store.expire_jobs(0, 0, "{}").await.unwrap();
    assert_eq!(deleted, ["gone-case"]);
    assert_eq!(store.reviews(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_job_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bulk.db").display().to_string(), 2)
        .await
        .unwrap();
    job_rows(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_job_rows() {
    let Some(pg) = PgServer::start("jobs") else {
        return;
    };
    job_rows(Store::open(&pg.url(), 2).await.unwrap()).await;
}
