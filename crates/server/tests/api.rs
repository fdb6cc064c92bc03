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
    Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(multipart_bytes(parts)))
        .unwrap()
}

fn multipart_bytes(parts: &[Part]) -> Vec<u8> {
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
    body
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
    assert!(html.contains("/assets/index.js"));
    let resp = app.clone().oneshot(get("/assets/index.js")).await.unwrap();
    let js = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let js = String::from_utf8(js.to_vec()).unwrap();
    assert!(js.contains("/v1/analyze"));
    for page in [&html, &js] {
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }
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
    assert!(html.contains("swagger-ui-bundle.js") && html.contains("/assets/docs.js"));
    let resp = app.clone().oneshot(get("/assets/docs.js")).await.unwrap();
    let js = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let js = String::from_utf8(js.to_vec()).unwrap();
    assert!(js.contains("SwaggerUIBundle") && js.contains("/openapi.json"));
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

/// Inputs of at most 1000 bytes, two per request.
fn small_limits_app() -> Router {
    let limits = Limits {
        max_upload_bytes: 1000,
        ..Limits::default()
    };
    let cfg = ServerConfig {
        max_inputs_per_request: 2,
        ..Default::default()
    };
    app_with(cfg, limits)
}

#[tokio::test]
async fn size_limits_are_413() {
    let app = small_limits_app();
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

// ------------------------------------------------ hostile load (#16) ----

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;

/// A body of `chunks`, counting the bytes the server pulls from it; with
/// `hang`, it never ends after the last chunk.
fn counting_body(chunks: Vec<Vec<u8>>, pulled: Arc<AtomicUsize>, hang: bool) -> Body {
    let s = futures_util::stream::iter(chunks).map(move |c| {
        pulled.fetch_add(c.len(), Ordering::SeqCst);
        Ok::<_, std::convert::Infallible>(c)
    });
    if hang {
        Body::from_stream(s.chain(futures_util::stream::pending()))
    } else {
        Body::from_stream(s)
    }
}

#[tokio::test]
async fn over_limit_bodies_are_refused_before_they_are_read() {
    let app = small_limits_app();
    let mp = format!("multipart/form-data; boundary={BOUNDARY}");

    // Declared length over the body limit: refused unread.
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, &mp)
        .header(header::CONTENT_LENGTH, "10000000")
        .body(counting_body(vec![vec![0u8; 4096]], pulled.clone(), true))
        .unwrap();
    let (s, ct, b, resp) = send(&app, req).await;
    assert_problem(s, &ct, &b, 413, "/v1/analyze");
    assert_eq!(b["code"], "body_limit");
    assert_eq!(resp.headers()[header::CONNECTION], "close");
    assert_eq!(pulled.load(Ordering::SeqCst), 0);

    // A raw body declared over the per-input limit: refused unread.
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "image/png")
        .header(header::CONTENT_LENGTH, "5000")
        .body(counting_body(vec![vec![0u8; 5000]], pulled.clone(), false))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 413, "/v1/analyze");
    assert_eq!(b["code"], "max_upload_bytes");
    assert_eq!(pulled.load(Ordering::SeqCst), 0);

    // A streamed part growing past the per-input limit: refused at that
    // byte, the rest of the body never read.
    let body = multipart_bytes(&[Part::File("big.bin", "image/png", &vec![7u8; 50_000])]);
    let pulled = Arc::new(AtomicUsize::new(0));
    let chunks = body.chunks(100).map(<[u8]>::to_vec).collect();
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, &mp)
        .body(counting_body(chunks, pulled.clone(), false))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 413, "/v1/analyze");
    assert_eq!(b["code"], "max_upload_bytes");
    let n = pulled.load(Ordering::SeqCst);
    assert!(n < 1500, "read {n} bytes of a 50 kB body");
}

#[tokio::test]
async fn busy_analysis_slots_refuse_before_reading() {
    let cfg = ServerConfig {
        max_concurrent_analyses: 1,
        ..Default::default()
    };
    let app = app_with(cfg, Limits::default());
    // A slow upload holds the only slot while it arrives.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let slow = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|c| (Ok::<_, std::convert::Infallible>(c), rx))
    });
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(slow))
        .unwrap();
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req).await }
    });
    tx.send(b"Ten years of ".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::CONTENT_LENGTH, "5")
        .body(counting_body(
            vec![b"hello".to_vec()],
            pulled.clone(),
            false,
        ))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 429, "/v1/analyze");
    assert_eq!(b["code"], "max_concurrent_analyses");
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "refused unread");

    tx.send(b"backend work.".to_vec()).await.unwrap();
    drop(tx);
    let (s, _, b, _) = first.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn a_stalled_body_is_408() {
    let cfg = ServerConfig {
        body_idle_timeout: Duration::from_millis(150),
        ..Default::default()
    };
    let app = app_with(cfg, Limits::default());
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(counting_body(vec![b"start".to_vec()], pulled, true))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 408, "/v1/analyze");
    assert_eq!(b["code"], "body_idle_timeout");
    assert_eq!(b["type"], "urn:candor:problem:request-timeout");
}

#[tokio::test]
async fn long_file_names_are_refused() {
    let app = app();
    let name = "n".repeat(300);
    let req = multipart("/v1/analyze", &[Part::File(&name, "image/png", PNG)]);
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 400, "/v1/analyze");
    assert_eq!(b["code"], "file_name");
    assert!(!b["detail"].as_str().unwrap().contains(&name), "not echoed");
}

#[tokio::test]
async fn large_inputs_wait_on_disk_and_are_analysed_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let spill = ServerConfig {
        spill_threshold_bytes: 16,
        spill_dir: Some(dir.path().join("spill")),
        ..Default::default()
    };
    let parts = [
        Part::File("a.png", "image/png", PNG),
        Part::File(
            "cv.txt",
            "text/plain",
            b"Experienced engineer with ten years.",
        ),
    ];
    let (s, _, spilled, _) = send(
        &app_with(spill, Limits::default()),
        multipart("/v1/analyze", &parts),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{spilled}");
    let (_, _, held, _) = send(&app(), multipart("/v1/analyze", &parts)).await;
    for i in 0..2 {
        assert_eq!(
            spilled["results"][i]["input"], held["results"][i]["input"],
            "input {i}"
        );
    }
    // Unnamed files: nothing is left in the spill directory.
    assert_eq!(
        std::fs::read_dir(dir.path().join("spill")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn async_jobs_are_bounded_by_bytes_and_owned_by_their_key() {
    let cfg = ServerConfig {
        api_keys: vec!["k1".into(), "k2".into()],
        max_job_bytes: 1000,
        ..Default::default()
    };
    let app = app_with(cfg, Limits::default());
    // Over the byte budget: refused before reading.
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/v1/analyze?async=true")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::CONTENT_LENGTH, "5000")
        .header("x-api-key", "k1")
        .body(counting_body(vec![vec![b'a'; 5000]], pulled.clone(), false))
        .unwrap();
    let (s, ct, b, _) = send(&app, req).await;
    assert_problem(s, &ct, &b, 429, "/v1/analyze");
    assert_eq!(b["code"], "max_job_bytes");
    assert_eq!(pulled.load(Ordering::SeqCst), 0);

    let req = Request::post("/v1/analyze?async=true")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", "k1")
        .body(Body::from("{\"text\":\"hello\"}"))
        .unwrap();
    let (s, _, b, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let location = b["location"].as_str().unwrap().to_owned();
    let poll = |key: &'static str| {
        Request::get(location.as_str())
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    let (s, ct, b, _) = send(&app, poll("k2")).await;
    assert_problem(s, &ct, &b, 404, &location);
    let (s, _, _, _) = send(&app, poll("k1")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn wrong_api_keys_are_throttled() {
    let cfg = ServerConfig {
        api_keys: vec!["right".into()],
        auth_max_failures: 3,
        ..Default::default()
    };
    let app = app_with(cfg, Limits::default());
    let info = |key: &str| {
        Request::get("/info")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..3 {
        let (s, _, _, _) = send(&app, info("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Locked out, even with the right key, until the window ends.
    let (s, ct, b, resp) = send(&app, info("right")).await;
    assert_problem(s, &ct, &b, 429, "/info");
    assert_eq!(b["code"], "auth_throttled");
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 1, "{retry}");
}

#[tokio::test]
async fn html_pages_carry_security_headers_and_no_inline_script() {
    let app = app();
    for page in ["/", "/docs"] {
        let resp = app.clone().oneshot(get(page)).await.unwrap();
        let h = resp.headers().clone();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'")
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let html = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(!html.contains("<script>"), "{page} has an inline script");
    }
    for js in ["/assets/index.js", "/assets/docs.js"] {
        let resp = app.clone().oneshot(get(js)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{js}");
        assert!(resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
    }
    let (s, ct, b, _) = send(&app, get("/assets/../secret")).await;
    assert_problem(s, &ct, &b, 404, "/assets/../secret");
    let resp = app.clone().oneshot(get("/health")).await.unwrap();
    assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

// -------------------------------------------- connections (real sockets) ----

mod sockets {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    struct Server {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        done: tokio::task::JoinHandle<()>,
    }

    async fn start(cfg: ServerConfig) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let analyzer = Arc::new(Analyzer::new(AnalyzerConfig::default()));
        let done = tokio::spawn(async move {
            candor_server::serve_on(listener, cfg, analyzer, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(tx),
            done,
        }
    }

    /// Seconds until the server closes `s` (reads and discards whatever
    /// it sends); panics after 5 s.
    async fn closed_after(s: &mut TcpStream) -> f64 {
        let t = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed().as_secs_f64(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("connection still open after 5 s"),
            }
        }
    }

    fn timeouts() -> ServerConfig {
        ServerConfig {
            header_read_timeout: Duration::from_millis(300),
            keep_alive_timeout: Duration::from_millis(400),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn silent_and_slow_header_connections_are_dropped() {
        let srv = start(timeouts()).await;
        // Half-open: connects, sends nothing.
        let mut silent = TcpStream::connect(srv.addr).await.unwrap();
        let t = closed_after(&mut silent).await;
        assert!((0.2..2.0).contains(&t), "{t}");

        // A header sent byte by byte, slower than the timeout allows.
        let mut slow = TcpStream::connect(srv.addr).await.unwrap();
        let t0 = Instant::now();
        let drip = async {
            for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa" {
                if slow.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drip).await;
        let t = t0.elapsed().as_secs_f64() + closed_after(&mut slow).await;
        assert!(t < 2.0, "slow header held {t} s");

        // Kept alive after a request, then idle: closed after the keep-alive timeout.
        let mut idle = TcpStream::connect(srv.addr).await.unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let t = closed_after(&mut idle).await;
        assert!((0.3..2.0).contains(&t), "{t}");
        let mut srv = srv;
        let _ = srv.stop.take().unwrap().send(());
        srv.done.await.unwrap();
    }

    #[tokio::test]
    async fn connections_per_client_address_are_capped() {
        let srv = start(ServerConfig {
            max_connections_per_client: 2,
            ..Default::default()
        })
        .await;
        let _a = TcpStream::connect(srv.addr).await.unwrap();
        let _b = TcpStream::connect(srv.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut c = TcpStream::connect(srv.addr).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 429"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        let mut srv = srv;
        let _ = srv.stop.take().unwrap().send(());
        srv.done.await.unwrap();
    }

    #[tokio::test]
    async fn requests_outliving_the_grace_are_counted_when_dropped() {
        let srv = start(ServerConfig {
            shutdown_grace: Duration::from_millis(200),
            body_idle_timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .await;
        // A request whose body never completes.
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(
            b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly part",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut srv = srv;
        let t = Instant::now();
        let _ = srv.stop.take().unwrap().send(());
        srv.done.await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let text = candor_server::metrics::prometheus_handle().render();
        assert!(
            text.contains("candor_shutdown_dropped_total{what=\"request\"}"),
            "{text}"
        );
    }
}

// ------------------------------------------- live streams (real models) ----

mod live_streams {
    use super::*;
    use candor_detectors::EngineConfig;

    /// An analyzer with the audio detector (VAD + LCNN only); `None` (SKIP,
    /// said on stderr) when the models are not installed.
    fn audio_analyzer() -> Option<Arc<Analyzer>> {
        let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let home = std::env::var_os("CANDOR_HOME")
            .filter(|h| !h.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| repo.join(".candor"));
        if !home.join("models/silero-vad/silero_vad.onnx").is_file()
            || !home
                .join("models/whisper-tiny-en/encoder-2s.int8.onnx")
                .is_file()
        {
            eprintln!(
                "SKIP: the audio models are not installed in {}",
                home.display()
            );
            return None;
        }
        let engine = EngineConfig {
            home,
            manifest: repo.join("models/manifest.toml"),
            models: Some(vec!["whisper-tiny-en-encoder".into(), "silero-vad".into()]),
            ..EngineConfig::default()
        };
        let a = Analyzer::load(AnalyzerConfig::default(), engine).unwrap();
        Some(Arc::new(a))
    }

    fn open_stream() -> (Request<Body>, tokio::sync::mpsc::Sender<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|c| (Ok::<_, std::convert::Infallible>(c), rx))
        });
        let req = Request::post("/v1/stream/audio?sample_rate=16000")
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from_stream(body))
            .unwrap();
        (req, tx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_streams_end_and_never_take_analysis_slots() {
        let Some(analyzer) = audio_analyzer() else {
            return;
        };
        let cfg = ServerConfig {
            max_concurrent_analyses: 1,
            max_concurrent_streams: 2,
            stream_idle_timeout: Duration::from_millis(400),
            ..Default::default()
        };
        let app = router(AppState::new(cfg, analyzer));
        // Two silent streams take both stream slots...
        let (r1, _keep1) = open_stream();
        let (r2, _keep2) = open_stream();
        let s1 = app.clone().oneshot(r1).await.unwrap();
        let s2 = app.clone().oneshot(r2).await.unwrap();
        assert_eq!((s1.status(), s2.status()), (StatusCode::OK, StatusCode::OK));
        let (r3, _keep3) = open_stream();
        let (s, ct, b, _) = send(&app, r3).await;
        assert_problem(s, &ct, &b, 429, "/v1/stream/audio");
        assert_eq!(b["code"], "max_concurrent_streams");
        // ... and none of the analysis slots.
        let (s, _, b, _) = send(&app, json_post("/v1/analyze", "{\"text\":\"hello\"}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        // Silent streams are ended by the server with an error line.
        let t = std::time::Instant::now();
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            axum::body::to_bytes(s1.into_body(), 1 << 20),
        )
        .await
        .expect("the idle stream was not ended")
        .unwrap();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let last: Value =
            serde_json::from_str(String::from_utf8_lossy(&body).lines().last().unwrap()).unwrap();
        assert_eq!(last["type"], "error", "{last}");
        assert_eq!(last["problem"]["code"], "stream_idle_timeout", "{last}");
        drop(s2);
        // Its slot is free again.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (r4, _keep4) = open_stream();
        let s4 = app.clone().oneshot(r4).await.unwrap();
        assert_eq!(s4.status(), StatusCode::OK);
    }
}
