//! Durable `?async=true` jobs (`candor_server::durable`): written down
//! before the 202, pollable from a fresh server on the same store, run
//! again after a restart, and failed instead of run when they cannot be.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use candor_bulk::{JobRecord, Store};
use candor_detectors::{Analyzer, AnalyzerConfig};
use candor_server::durable::DurableJobs;
use candor_server::{router, AppState, ServerConfig, Stores};
use serde_json::Value;
use tower::ServiceExt;

async fn store(dir: &Path) -> Store {
    Store::open(&dir.join("bulk.db").display().to_string(), 4)
        .await
        .unwrap()
}

fn state(store: &Store, dir: &Path, node: &str) -> AppState {
    let jobs = DurableJobs::new(store.clone(), &dir.join("jobs"), node.to_owned());
    AppState::with_stores(
        ServerConfig::default(),
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
        Stores {
            bulk: None,
            jobs: Some(jobs),
        },
    )
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

async fn wait_finished(app: &Router, id: &str) -> Value {
    for _ in 0..500 {
        let (s, b) = send(app, get(&format!("/v1/jobs/{id}"))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if b["status"] == "done" || b["status"] == "failed" {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} did not finish");
}

const PLAN: &str = r#"{"request_id":"req-1","plan":{"priority":"bulk","timeout":{"secs":60,"nanos":0},"is_async":true,"case":null,"expected":null}}"#;

/// A job as a server that died after its 202 left it: a row and its files.
async fn left_behind(store: &Store, dir: &Path, node: &str, id: &str, status: &str, attempts: i64) {
    let files = dir.join("jobs").join(node).join(id);
    std::fs::create_dir_all(&files).unwrap();
    let text = "Shipped a payments ledger in Rust and ran its on-call rota for two years.";
    std::fs::write(files.join("0000"), text).unwrap();
    let inputs = serde_json::json!([
        {"kind": "text", "file": "0000", "len": text.len()},
    ]);
    store
        .insert_job(&JobRecord {
            job_id: id.into(),
            owner: None,
            node: node.into(),
            status: "queued".into(),
            created_at_ms: candor_bulk::store::now_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            attempts: 0,
            bytes: text.len() as i64,
            plan: PLAN.into(),
            inputs: inputs.to_string(),
            response: None,
            error: None,
        })
        .await
        .unwrap();
    for _ in 0..attempts {
        store.start_job(id).await.unwrap();
    }
    assert_eq!(store.job(id).await.unwrap().unwrap().status, status);
}

#[tokio::test]
async fn accepted_jobs_are_written_down_and_pollable_from_a_fresh_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let app = router(state(&store, dir.path(), "a"));
    let req = Request::post("/v1/analyze?async=true")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"text":"Ten years of payroll systems."}"#))
        .unwrap();
    let (s, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let row = store
        .job(&id)
        .await
        .unwrap()
        .expect("row written before the 202");
    assert_eq!(row.node, "a");
    let done = wait_finished(&app, &id).await;
    // The row is updated right before the in-memory copy.
    let row = store.job(&id).await.unwrap().unwrap();
    assert_eq!(row.status, done["status"].as_str().unwrap());
    assert_eq!(row.attempts, 1);
    assert!(!dir.path().join("jobs/a").join(&id).exists());

    // A new server on the same store (empty memory) answers the same.
    let fresh = router(state(&store, dir.path(), "a"));
    let (s, again) = send(&fresh, get(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["status"], done["status"]);
    assert_eq!(again["response"], done["response"]);
    assert_eq!(again["error"], done["error"]);
    let (s, _) = send(&fresh, get("/v1/jobs/not-a-job")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn restart_runs_this_nodes_unfinished_jobs_and_fails_the_hopeless() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    left_behind(&store, dir.path(), "a", "queued-job", "queued", 0).await;
    left_behind(&store, dir.path(), "a", "ran-once", "running", 1).await;
    left_behind(&store, dir.path(), "a", "crashed-thrice", "running", 3).await;
    left_behind(&store, dir.path(), "a", "lost-input", "queued", 0).await;
    std::fs::remove_file(dir.path().join("jobs/a/lost-input/0000")).unwrap();
    left_behind(&store, dir.path(), "b", "other-node", "queued", 0).await;
    std::fs::create_dir_all(dir.path().join("jobs/a/orphan")).unwrap();

    let st = state(&store, dir.path(), "a");
    let app = router(st.clone());
    st.resume_jobs().await;

    for id in ["queued-job", "ran-once"] {
        let j = wait_finished(&app, id).await;
        let row = store.job(id).await.unwrap().unwrap();
        assert_eq!(row.status, j["status"].as_str().unwrap(), "{j}");
        assert!(row.finished_at_ms.is_some());
        assert!(!dir.path().join("jobs/a").join(id).exists());
    }
    assert_eq!(store.job("ran-once").await.unwrap().unwrap().attempts, 2);
    for id in ["crashed-thrice", "lost-input"] {
        let (s, j) = send(&app, get(&format!("/v1/jobs/{id}"))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["status"], "failed", "{j}");
        assert!(j["error"]["detail"].as_str().is_some(), "{j}");
    }
    // Another server's job is left to it; stray folders of this node go.
    assert_eq!(
        store.job("other-node").await.unwrap().unwrap().status,
        "queued"
    );
    assert!(dir.path().join("jobs/b/other-node/0000").exists());
    assert!(!dir.path().join("jobs/a/orphan").exists());
}

#[tokio::test]
async fn jobs_stay_private_to_their_api_key_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let cfg = ServerConfig {
        api_keys: vec!["key-one".into(), "key-two".into()],
        ..ServerConfig::default()
    };
    let mk = || {
        router(AppState::with_stores(
            cfg.clone(),
            Arc::new(Analyzer::new(AnalyzerConfig::default())),
            Stores {
                bulk: None,
                jobs: Some(DurableJobs::new(
                    store.clone(),
                    &dir.path().join("jobs"),
                    "a".into(),
                )),
            },
        ))
    };
    let app = mk();
    let req = Request::post("/v1/analyze?async=true")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", "key-one")
        .body(Body::from(r#"{"text":"Ran a bakery."}"#))
        .unwrap();
    let (s, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let fresh = mk();
    let poll = |key: &'static str| {
        Request::get(format!("/v1/jobs/{id}"))
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    let (s, _) = send(&fresh, poll("key-two")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(&fresh, poll("key-one")).await;
    assert_eq!(s, StatusCode::OK);
}
