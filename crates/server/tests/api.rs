//! HTTP API tests against `router(...)` with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use candor_core::Limits;
use candor_detectors::{Analyzer, AnalyzerConfig};
use candor_server::{router, AppState, ServerConfig, PROBLEM_JSON};
use serde_json::Value;
use tower::ServiceExt;

/// A valid 2×2 RGB PNG.
const PNG: &[u8] = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02\x00\x00\x00\xfd\xd4\x9a\x73\x00\x00\x00\x11\x49\x44\x41\x54\x78\x9c\x63\xf8\xcf\xc0\x00\x44\x60\xe2\x3f\x03\x00\x1d\xf0\x03\xfd\xa0\x33\x09\x89\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";
const BOUNDARY: &str = "candor-test-boundary";

fn app_with(config: ServerConfig, limits: Limits) -> Router {
    let analyzer = Analyzer::new(AnalyzerConfig {
        limits,
        ..AnalyzerConfig::default()
    });
    router(AppState::new(config, Arc::new(analyzer)))
}

fn app() -> Router {
    app_with(ServerConfig::default(), Limits::default())
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, Value, Response<()>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, ctype, json, Response::from_parts(parts, ()))
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn json_post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

enum Part<'a> {
    File(&'a str, &'a str, &'a [u8]),
    Text(&'a str),
}

fn multipart(uri: &str, parts: &[Part]) -> Request<Body> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            Part::File(name, ctype, data) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
            }
            Part::Text(t) => {
                body.extend_from_slice(b"Content-Disposition: form-data; name=\"text\"\r\n\r\n");
                body.extend_from_slice(t.as_bytes());
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

fn assert_problem(status: StatusCode, ctype: &str, body: &Value, want: u16, path: &str) {
    assert_eq!(status.as_u16(), want, "body: {body}");
    assert_eq!(ctype, PROBLEM_JSON, "body: {body}");
    assert_eq!(body["status"], want);
    assert!(body["type"].as_str().unwrap().contains(':'), "{body}");
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    assert_eq!(body["instance"], path);
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn health_ready_info_and_pages() {
    let app = app();
    let (s, ct, b, _) = send(&app, get("/health")).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(b["status"], "ok");

    let (s, ct, b, _) = send(&app, get("/ready")).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(b["status"], "ready");

    let (s, ct, b, _) = send(&app, get("/info")).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(b["service"], "candor");
    assert_eq!(b["analyzer"]["device"], "cpu");
    assert_eq!(b["analyzer"]["detectors"].as_array().unwrap().len(), 3);
    assert_eq!(b["server"]["auth_enabled"], false);
    assert_eq!(b["server"]["max_inputs_per_request"], 16);
    assert!(b["server"]["body_limit_bytes"].as_u64().unwrap() > 0);

    let resp = app.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("/v1/analyze"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
}

#[tokio::test]
async fn docs_without_and_with_assets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        candor_home: dir.path().to_path_buf(),
        ..Default::default()
    };
    let app = app_with(cfg.clone(), Limits::default());
    let resp = app.clone().oneshot(get("/docs")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("not installed") && html.contains("/openapi.json"));
    let (s, ct, b, _) = send(&app, get("/docs/assets/swagger-ui.css")).await;
    assert_problem(s, &ct, &b, 404, "/docs/assets/swagger-ui.css");

    let www = dir.path().join("www/swagger-ui");
    std::fs::create_dir_all(&www).unwrap();
    for f in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-ui-standalone-preset.js",
    ] {
        std::fs::write(www.join(f), format!("/* {f} */")).unwrap();
    }
    let resp = app.clone().oneshot(get("/docs")).await.unwrap();
    let html = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("SwaggerUIBundle") && html.contains("/openapi.json"));
    let resp = app
        .clone()
        .oneshot(get("/docs/assets/swagger-ui.css"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let (s, ct, b, _) = send(&app, get("/docs/assets/..%2Fsecret")).await;
    assert_problem(s, &ct, &b, 404, "/docs/assets/..%2Fsecret");
}

#[tokio::test]
async fn openapi_lists_routes_and_problem_schema() {
    let (s, ct, b, _) = send(&app(), get("/openapi.json")).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
    let paths = b["paths"].as_object().unwrap();
    for p in [
        "/v1/analyze",
        "/v1/analyze/{modality}",
        "/v1/jobs/{id}",
        "/health",
        "/ready",
        "/info",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    let schemas = b["components"]["schemas"].as_object().unwrap();
    for s in [
        "Problem",
        "AnalysisResult",
        "Item",
        "InputProblem",
        "CaseSummary",
        "JobView",
    ] {
        assert!(schemas.contains_key(s), "missing schema {s}");
    }
    let not_found = &b["paths"]["/v1/jobs/{id}"]["get"]["responses"]["404"]["content"];
    assert!(not_found.get(PROBLEM_JSON).is_some(), "{not_found}");
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_problems() {
    let app = app();
    let (s, ct, b, _) = send(&app, get("/nope")).await;
    assert_problem(s, &ct, &b, 404, "/nope");
    assert_eq!(b["type"], "urn:candor:problem:not-found");

    let req = Request::delete("/health").body(Body::empty()).unwrap();
    let (s, ct, b, resp) = send(&app, req).await;
    assert_problem(s, &ct, &b, 405, "/health");
    assert!(resp.headers().contains_key(header::ALLOW));
    assert!(b["detail"].as_str().unwrap().contains("DELETE"));
}

#[tokio::test]
async fn bad_json_and_unsupported_type() {
    let app = app();
    let (s, ct, b, _) = send(&app, json_post("/v1/analyze", "{\"text\": ")).await;
    assert_problem(s, &ct, &b, 400, "/v1/analyze");
    assert_eq!(b["code"], "json");

    let (s, ct, b, _) = send(&app, json_post("/v1/analyze", "{\"txt\": \"x\"}")).await;
    assert_problem(s, &ct, &b, 400, "/v1/analyze");

    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/x-foo")
        .body(Body::from("x"))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 415, "/v1/analyze");

    let req = Request::post("/v1/analyze").body(Body::from("x")).unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 415, "/v1/analyze");

    // Multipart without a boundary.
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "multipart/form-data")
        .body(Body::from("x"))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 400, "/v1/analyze");

    // A single undecodable raw input answers with its own problem.
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(vec![0x00u8, 0x01, 0x02, 0x9c, 0x81]))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 415, "/v1/analyze");
    assert_eq!(b["code"], "unsupported_media_type");

    let (s, ct, b, _) = send(
        &app,
        json_post("/v1/analyze?priority=urgent", "{\"text\":\"hello\"}"),
    )
    .await;
    assert_problem(s, &ct, &b, 400, "/v1/analyze");
}

#[tokio::test]
async fn size_limits_are_413() {
    let limits = Limits {
        max_upload_bytes: 1000,
        ..Limits::default()
    };
    let cfg = ServerConfig {
        max_inputs_per_request: 2,
        ..Default::default()
    };
    let app = app_with(cfg, limits);
    // Over the body limit (2 × 1000 + framing).
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "image/png")
        .body(Body::from(vec![b'a'; 200_000]))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 413, "/v1/analyze");

    // Under the body limit, over the per-input limit: the analyzer's problem.
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(vec![b'a'; 1500]))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 413, "/v1/analyze");
    assert_eq!(b["code"], "max_upload_bytes");

    // Too many inputs.
    let req = multipart(
        "/v1/analyze",
        &[Part::Text("one"), Part::Text("two"), Part::Text("three")],
    );
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 413, "/v1/analyze");
    assert_eq!(b["code"], "max_inputs");
}

#[tokio::test]
async fn multipart_two_files_and_text_give_three_results_and_case() {
    let app = app();
    let req = multipart(
        "/v1/analyze",
        &[
            Part::File("headshot.png", "image/png", PNG),
            Part::File("cv.txt", "text/plain", b"Experienced engineer."),
            Part::Text("I led a team of five."),
        ],
    );
    let (s, ct, b, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ct, "application/json");
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["modality"], "image");
    assert_eq!(results[0]["input"]["name"], "headshot.png");
    assert_eq!(results[1]["modality"], "text");
    assert_eq!(results[1]["input"]["name"], "cv.txt");
    assert_eq!(results[2]["modality"], "text");
    for r in results {
        assert!(r["score"].is_null());
        assert_eq!(r["abstention"]["code"], "detector_not_installed");
    }
    assert_eq!(b["case"]["inputs"], 3);
    assert_eq!(b["case"]["scored"], 0);
    assert!(b["request_id"].is_string());

    // case=false drops the summary.
    let req = multipart(
        "/v1/analyze?case=false",
        &[Part::Text("a"), Part::Text("b")],
    );
    let (_, _, b, _) = send(&app, req).await;
    assert!(b["case"].is_null());
}

#[tokio::test]
async fn one_bad_input_of_several_is_an_item_problem() {
    let app = app();
    let req = multipart(
        "/v1/analyze",
        &[
            Part::File(
                "weird.bin",
                "application/octet-stream",
                &[0x00, 0x01, 0x02, 0x9c, 0x81],
            ),
            Part::Text("Resume text."),
        ],
    );
    let (s, _, b, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let results = b["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], 415);
    assert_eq!(
        results[0]["type"],
        "urn:candor:problem:unsupported-media-type"
    );
    assert_eq!(results[0]["name"], "weird.bin");
    assert_eq!(results[0]["index"], 0);
    assert_eq!(results[1]["modality"], "text");
    assert_eq!(b["case"]["inputs"], 1);
    let parsed: candor_server::AnalyzeResponse = serde_json::from_value(b).unwrap();
    assert!(parsed.results[0].as_error().is_some());
    assert!(parsed.results[1].as_result().is_some());
}

#[tokio::test]
async fn json_bodies_and_modality_routes() {
    let app = app();
    let (s, _, b, _) = send(
        &app,
        json_post(
            "/v1/analyze",
            "{\"text\":\"hello there\",\"name\":\"pasted\"}",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["results"][0]["input"]["name"], "pasted");
    assert!(b["case"].is_null(), "single input: no case by default");

    let (s, _, b, _) = send(
        &app,
        json_post(
            "/v1/analyze/text?case=true",
            "{\"inputs\":[{\"text\":\"a\"},{\"text\":\"b\",\"name\":\"two\"}]}",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["results"].as_array().unwrap().len(), 2);
    assert_eq!(b["case"]["inputs"], 2);

    let req = Request::post("/v1/analyze/image")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("not an image"))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 415, "/v1/analyze/image");
    assert_eq!(b["code"], "wrong_modality");

    let req = Request::post("/v1/analyze/image")
        .header(header::CONTENT_TYPE, "image/png")
        .body(Body::from(PNG))
        .unwrap();
    let (s, _, b, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["results"][0]["modality"], "image");

    let (s, ct, b, _) = send(&app, json_post("/v1/analyze/video", "{\"text\":\"x\"}")).await;
    assert_problem(s, &ct, &b, 404, "/v1/analyze/video");
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = app();
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "abc-123")
        .body(Body::from("{\"text\":\"hi\"}"))
        .unwrap();
    let (_, _, b, resp) = send(&app, req).await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    assert_eq!(b["request_id"], "abc-123");

    let (_, _, b, resp) = send(&app, get("/nope")).await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&rid).is_ok());
    assert_eq!(b["request_id"], rid);
}

#[tokio::test]
async fn api_keys_on_and_off() {
    let cfg = ServerConfig {
        api_keys: vec!["k1".into(), "k2".into()],
        ..Default::default()
    };
    let app = app_with(cfg, Limits::default());
    let (s, ct, b, resp) = send(&app, json_post("/v1/analyze", "{\"text\":\"x\"}")).await;
    assert_problem(s, &ct, &b, 401, "/v1/analyze");
    assert!(resp.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    let req = Request::get("/info")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 401, "/info");

    let req = Request::get("/info")
        .header(header::AUTHORIZATION, "Bearer k2")
        .body(Body::empty())
        .unwrap();
    let (s, _, b, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["server"]["auth_enabled"], true);

    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", "k1")
        .body(Body::from("{\"text\":\"x\"}"))
        .unwrap();
    let (s, _, _, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK);

    for open in [
        "/health",
        "/ready",
        "/metrics",
        "/",
        "/docs",
        "/openapi.json",
    ] {
        let (s, _, _, _) = send(&app, get(open)).await;
        assert_eq!(s, StatusCode::OK, "{open} should be open");
    }

    // Off by default.
    let (s, _, _, _) = send(&self::app(), get("/info")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn async_job_flow() {
    let app = app();
    let req = multipart(
        "/v1/analyze?async=true",
        &[Part::File("a.png", "image/png", PNG), Part::Text("text")],
    );
    let (s, _, b, resp) = send(&app, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["status"], "queued");
    let location = b["location"].as_str().unwrap().to_owned();
    assert_eq!(resp.headers()[header::LOCATION], location.as_str());
    assert_eq!(
        location,
        format!("/v1/jobs/{}", b["job_id"].as_str().unwrap())
    );

    let mut job = Value::Null;
    for _ in 0..200 {
        let (s, _, b, _) = send(&app, get(&location)).await;
        assert_eq!(s, StatusCode::OK);
        if b["status"] == "done" || b["status"] == "failed" {
            job = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(job["status"], "done", "{job}");
    assert!(job["created_at"].is_string() && job["finished_at"].is_string());

    // Same results as the synchronous call.
    let sync = multipart(
        "/v1/analyze",
        &[Part::File("a.png", "image/png", PNG), Part::Text("text")],
    );
    let (_, _, sync, _) = send(&app, sync).await;
    let strip = |v: &Value| {
        let mut v = v["results"].clone();
        for r in v.as_array_mut().unwrap() {
            r["timings"] = Value::Null;
        }
        v
    };
    assert_eq!(strip(&job["response"]), strip(&sync));
    assert_eq!(job["response"]["case"], sync["case"]);

    let (s, ct, b, _) = send(&app, get("/v1/jobs/does-not-exist")).await;
    assert_problem(s, &ct, &b, 404, "/v1/jobs/does-not-exist");
}

#[tokio::test]
async fn full_job_store_is_429() {
    let cfg = ServerConfig {
        max_jobs: 1,
        max_concurrent_analyses: 1,
        ..Default::default()
    };
    let app = app_with(cfg, Limits::default());
    // Jobs finish almost at once with the stub analyzer, so fill the store by
    // racing: the first job may already be finished (then it is evicted).
    let (s, _, _, _) = send(
        &app,
        json_post("/v1/analyze?async=true", "{\"text\":\"a\"}"),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _, b, _) = send(
        &app,
        json_post("/v1/analyze?async=true", "{\"text\":\"b\"}"),
    )
    .await;
    assert!(
        s == StatusCode::ACCEPTED || s == StatusCode::TOO_MANY_REQUESTS,
        "{s} {b}"
    );
    if s == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(b["code"], "max_jobs");
    }
}

#[tokio::test]
async fn metrics_are_exported_after_requests() {
    let app = app();
    let req = multipart(
        "/v1/analyze",
        &[Part::File("a.png", "image/png", PNG), Part::Text("text")],
    );
    let _ = send(&app, req).await;
    let _ = send(&app, get("/nope")).await;
    let resp = app.clone().oneshot(get("/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    for name in [
        "candor_http_requests_total",
        "candor_http_request_duration_seconds_bucket",
        "candor_http_in_flight_requests",
        "candor_analyze_inputs_total",
        "candor_analyze_input_bytes_bucket",
        "candor_jobs",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    assert!(text.contains("route=\"/v1/analyze\""), "{text}");
    assert!(text.contains("outcome=\"abstained\""), "{text}");
    assert!(text.contains("status=\"404\""), "{text}");
}

#[tokio::test]
async fn audio_stream_route_refuses_clearly_without_a_detector() {
    let app = app();
    let req = |uri: &str| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(vec![0u8; 64_000]))
            .unwrap()
    };
    let (status, ctype, body, _) = send(&app, req("/v1/stream/audio?encoding=opus")).await;
    assert_problem(status, &ctype, &body, 400, "/v1/stream/audio");
    assert_eq!(body["code"], "encoding", "{body}");
    let (status, ctype, body, _) = send(&app, req("/v1/stream/audio")).await;
    assert_problem(status, &ctype, &body, 503, "/v1/stream/audio");
    assert_eq!(body["code"], "detector_not_installed", "{body}");
}
