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
            identity: None,
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
            applicant_id: None,
            keep_until_ms: None,
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
                identity: None,
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

async fn text_of(app: &Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    )
}

#[tokio::test]
async fn a_review_case_keeps_its_material_and_records_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let app = router(state(&store, dir.path(), "a"));
    let text = "Grew a regional logistics team from three to twelve people.";
    let req = Request::post("/v1/analyze?review=true&applicant_id=app%2042")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::json!({ "text": text }).to_string()))
        .unwrap();
    let (s, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let job = wait_finished(&app, &id).await;
    assert!(
        job["response"]["case"].is_object() || job["status"] == "failed",
        "{job}"
    );
    let row = store.job(&id).await.unwrap().unwrap();
    assert_eq!(row.applicant_id.as_deref(), Some("app 42"));
    assert!(row.keep_until_ms.unwrap() > row.created_at_ms + 86_400_000);

    // The material stays for the case page.
    let (s, body, h) = text_of(&app, get(&format!("/review/cases/{id}/inputs/0"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, text);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let (s, page, _) = text_of(&app, get(&format!("/review/cases/{id}"))).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(
        page.contains("app 42") && page.contains("Record decision"),
        "{page}"
    );
    let (s, list, _) = text_of(&app, get("/review")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(list.contains(&format!("/review/cases/{id}")));

    // A decision, then the export.
    let form = Request::post(format!("/review/cases/{id}/review"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "decision=needs_live_check&reviewer=Dana+K&note=ask+for+a+call",
        ))
        .unwrap();
    let (s, _, h) = text_of(&app, form).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h[header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with(&format!("/review/cases/{id}")));
    let bad = Request::post(format!("/review/cases/{id}/review"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("decision=reject&reviewer=x"))
        .unwrap();
    let (s, _, _) = text_of(&app, bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no decision outside the three");
    let (_, page, _) = text_of(&app, get(&format!("/review/cases/{id}"))).await;
    assert!(page.contains("Needs a live check") && page.contains("Dana K"));
    let (s, csv, _) = text_of(&app, get("/review/reviews.csv")).await;
    assert_eq!(s, StatusCode::OK);
    let line = csv.lines().nth(1).expect("one decision");
    assert!(
        line.contains(&id) && line.contains("needs_live_check") && line.contains("app 42"),
        "{csv}"
    );
    let (_, jsonl, _) = text_of(&app, get("/review/reviews.jsonl")).await;
    let v: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(v["decision"], "needs_live_check");
    assert_eq!(v["inputs"][0]["modality"], "text");
    // needs_live_check is no label for calibration; cleared is a negative.
    let (_, scores, _) = text_of(&app, get("/review/reviews.scores.jsonl")).await;
    assert!(scores.is_empty(), "{scores}");
    let form = Request::post(format!("/review/cases/{id}/review"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("decision=cleared&reviewer=Dana+K"))
        .unwrap();
    text_of(&app, form).await;
    let (_, scores, _) = text_of(&app, get("/review/reviews.scores.jsonl?modality=text")).await;
    let v: Value = serde_json::from_str(scores.lines().next().unwrap()).unwrap();
    assert_eq!(v["manipulated"], false);
    assert_eq!(v["id"], format!("{id}/0"));
    let (_, none, _) = text_of(&app, get("/review/reviews.scores.jsonl?modality=image")).await;
    assert!(none.is_empty());

    // Without the durable store a review upload is refused.
    let plain = router(AppState::new(
        ServerConfig::default(),
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
    ));
    let req = Request::post("/v1/analyze?review=true")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"text":"x"}"#))
        .unwrap();
    let (s, b) = send(&plain, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn review_pages_ask_a_browser_to_sign_in_when_keys_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let app = router(AppState::with_stores(
        ServerConfig {
            api_keys: vec!["s3cret key".into()],
            ..ServerConfig::default()
        },
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
        Stores {
            bulk: None,
            jobs: Some(DurableJobs::new(
                store,
                &dir.path().join("jobs"),
                "a".into(),
            )),
            identity: None,
        },
    ));
    let (s, _, h) = text_of(&app, get("/review")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/review/login");
    let (s, page, _) = text_of(&app, get("/review/login")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("API key"));
    let login = |key: &str| {
        Request::post("/review/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("key={}", key.replace(' ', "+"))))
            .unwrap()
    };
    let (s, page, h) = text_of(&app, login("wrong")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("not accepted") && h.get(header::SET_COOKIE).is_none());
    let (s, _, h) = text_of(&app, login("s3cret key")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let (s, page, _) = text_of(
        &app,
        Request::get("/review")
            .header(header::COOKIE, &pair)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    // The API takes the cookie too (the pages' scripts call it).
    let (s, _, _) = text_of(
        &app,
        Request::get("/v1/jobs/none")
            .header(header::COOKIE, &pair)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = text_of(&app, get("/v1/jobs/none")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_identity_registry_reports_a_resume_reused_under_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let registry = candor_identity::Registry::open(
        store.clone(),
        candor_identity::RegistryConfig {
            retention: Duration::from_secs(3600),
            face_threshold: 0.45,
            face_operating_point: "test".into(),
            voice_threshold: 0.8,
            voice_operating_point: "test".into(),
            text_threshold: 0.3,
            text_operating_point: "test".into(),
            photo_max_bits: 10,
            photo_operating_point: "test".into(),
            joint_face_threshold: 1.0,
            joint_text_threshold: 1.0,
            joint_operating_point: String::new(),
            max_matches: 5,
            scan_threads: 1,
        },
    )
    .await
    .unwrap();
    let app = router(AppState::with_stores(
        ServerConfig::default(),
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
        Stores {
            bulk: None,
            jobs: None,
            identity: Some(Arc::new(registry)),
        },
    ));
    let resume = "Senior backend engineer. Led the migration of a payments platform to event \
        sourcing, cutting reconciliation from five days to one. Mentored four engineers and ran \
        the on-call rotation for two years. Built the fraud scoring service in Rust and Kafka.";
    let post = |applicant: &str, text: &str| {
        Request::post(format!("/v1/analyze?applicant_id={applicant}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::json!({ "text": text }).to_string()))
            .unwrap()
    };
    let (s, b) = send(&app, post("ann", resume)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("matches").is_none(), "nothing to match yet: {b}");
    // Without an applicant id nothing is enrolled or compared.
    let anon = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({ "text": resume }).to_string(),
        ))
        .unwrap();
    let (_, b) = send(&app, anon).await;
    assert!(b.get("matches").is_none());
    let moved = "Built the fraud scoring service in Rust and Kafka. Senior backend engineer. Led \
        the migration of a payments platform to event sourcing, cutting reconciliation from five \
        days to one. Coached four engineers and ran the on-call rotation for two years.";
    let (s, b) = send(&app, post("bob", moved)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let m = &b["matches"][0];
    assert_eq!(m["other_applicant_id"], "ann", "{b}");
    assert_eq!(m["modality"], "text");
    assert_eq!(m["input_index"], 0);
    assert!(
        !b.to_string().contains("embedding"),
        "no template in a response"
    );
    let (s, list) = send(&app, get("/v1/applicants/ann/matches")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["matches"][0]["other_applicant_id"], "bob", "{list}");
    let del = Request::delete("/v1/applicants/bob")
        .body(Body::empty())
        .unwrap();
    let (s, gone) = send(&app, del).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(gone["templates_deleted"], 1);
    let (_, list) = send(&app, get("/v1/applicants/ann/matches")).await;
    assert_eq!(list["matches"].as_array().unwrap().len(), 0, "{list}");
    // Off: the routes say so.
    let plain = router(AppState::new(
        ServerConfig::default(),
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
    ));
    let (s, _) = send(&plain, get("/v1/applicants/ann/matches")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
