//! `/v1/batches` against `router(...)`, on a real SQLite bulk store with a
//! real bulk worker (no model needed: the text detector abstains).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use candor_bulk::{BulkWorker, ManifestLimits, Store, WorkerConfig};
use candor_detectors::{Analyzer, AnalyzerConfig};
use candor_server::batches::BulkService;
use candor_server::{router, AppState, ServerConfig};
use serde_json::Value;
use tower::ServiceExt;

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_submit_poll_results_report_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("hr");
    std::fs::create_dir_all(&root).unwrap();
    let mut m = String::from("applicant_id,file,group:team\n");
    for i in 0..6 {
        let f = root.join(format!("r{i}.txt"));
        std::fs::write(
            &f,
            format!("Applicant {i} kept the night shift's stock counts for three years."),
        )
        .unwrap();
        m.push_str(&format!("a{i},{},t{}\n", f.display(), i % 2));
    }
    // One file outside the root: an item error, never read.
    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, "not for the API").unwrap();
    m.push_str(&format!("a9,{},t1\n", outside.display()));
    std::fs::write(root.join("hires.csv"), m).unwrap();
    std::fs::write(dir.path().join("other.csv"), "applicant_id,file\nx,y\n").unwrap();

    let store = Store::open(&dir.path().join("bulk.db").display().to_string(), 4)
        .await
        .unwrap();
    let analyzer = Arc::new(Analyzer::new(AnalyzerConfig::default()));
    let svc = BulkService {
        store: store.clone(),
        roots: vec![root.canonicalize().unwrap()],
        limits: ManifestLimits::default(),
        max_items: 1000,
        max_report_top: 100,
    };
    let app = router(AppState::with_stores(
        ServerConfig::default(),
        Arc::clone(&analyzer),
        candor_server::Stores {
            bulk: Some(svc),
            jobs: None,
            identity: None,
        },
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = BulkWorker::new(
        store.clone(),
        analyzer,
        WorkerConfig {
            poll_interval: Duration::from_millis(100),
            missed_heartbeats: 5,
            ..WorkerConfig::default()
        },
    );
    let w = tokio::spawn(worker.run(rx));

    // A manifest outside the roots is refused before anything is queued.
    let body = format!(
        r#"{{"manifest": "{}"}}"#,
        dir.path().join("other.csv").display()
    );
    let (s, _, b) = send(&app, post("/v1/batches", &body)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("bulk_roots"), "{b}");

    let body = format!(
        r#"{{"manifest": "{}", "batch_id": "hires-1"}}"#,
        root.join("hires.csv").display()
    );
    let (s, _, b) = send(&app, post("/v1/batches", &body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["location"], "/v1/batches/hires-1");

    let t = Instant::now();
    let status = loop {
        let (s, _, b) = send(&app, get("/v1/batches/hires-1")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        if v["total"] == 7 && v["finished"] == true {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "not finished: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status["done"].as_i64(), status["error"].as_i64()),
        (Some(6), Some(1)),
        "{status}"
    );

    let (s, ctype, csv) = send(&app, get("/v1/batches/hires-1/results")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    assert_eq!(
        csv.lines().count(),
        8,
        "header and one row per item:\n{csv}"
    );
    let (s, ctype, jsonl) = send(&app, get("/v1/batches/hires-1/results?format=jsonl")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ctype, "application/x-ndjson");
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 7);
    let bad = rows.iter().find(|r| r["applicant_id"] == "a9").unwrap();
    assert_eq!(bad["state"], "error", "{bad}");
    assert!(!jsonl.contains("not for the API"));

    let (s, _, b) = send(&app, get("/v1/batches/hires-1/report?top=3")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let rep: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(rep["applicants"], 7);
    assert_eq!(rep["cases"].as_array().unwrap().len(), 3);
    assert_eq!(rep["impact"][0]["column"], "group:team");

    let (s, _, b) = send(
        &app,
        Request::delete("/v1/batches/hires-1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["cancelled_items"], 0, "nothing was pending");
    let (s, _, b) = send(&app, get("/v1/batches/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn batches_are_not_found_without_a_queue() {
    let app = router(AppState::new(
        ServerConfig::default(),
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
    ));
    let (s, _, b) = send(&app, get("/v1/batches/x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("--queue"), "{b}");
}
