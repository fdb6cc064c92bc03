//! `?async=true` jobs of `candor serve` survive `kill -9`: a job accepted
//! (202) but not yet run when the server dies runs when the server starts
//! again, and a finished job stays pollable across a restart.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `candor serve` with one analysis slot, its state (job store, job
/// inputs) under `state`.
fn start(state: &Path, port: u16) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_candor"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for (k, _) in std::env::vars() {
        if k.starts_with("CANDOR_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    let mut child = c
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("CANDOR_NO_MODELS", "1")
        .env("CANDOR_STATE_DIR", state)
        .env("CANDOR_NODE_ID", "test-node")
        .env("CANDOR_MAX_CONCURRENT_ANALYSES", "1")
        .env("CANDOR_BODY_IDLE_TIMEOUT_MS", "120000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if let Ok((200, _)) = http(port, "GET", "/health", None) {
            return child;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("candor serve exited: {s}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "candor serve not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 request on its own connection; gives the status and body.
fn http(port: u16, method: &str, path: &str, json: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = json.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}

fn job(port: u16, id: &str) -> Value {
    let (s, b) = http(port, "GET", &format!("/v1/jobs/{id}"), None).unwrap();
    assert_eq!(s, 200, "{b}");
    serde_json::from_str(&b).unwrap()
}

fn wait_finished(port: u16, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let j = job(port, id);
        if j["status"] == "done" || j["status"] == "failed" {
            return j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "job not finished: {j}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn async_jobs_survive_kill_9_of_the_server() {
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s1 = start(state.path(), port);

    // Hold the only analysis slot: a synchronous upload that never ends.
    let mut holder = TcpStream::connect(("127.0.0.1", port)).unwrap();
    holder
        .write_all(
            b"POST /v1/analyze HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 100000\r\n\r\nA resume th",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let text = "I led the migration of our billing platform to event sourcing, \
                mentored four engineers and cut the monthly close from five days to one.";
    let (s, b) = http(
        port,
        "POST",
        "/v1/analyze?async=true",
        Some(&serde_json::json!({ "text": text }).to_string()),
    )
    .unwrap();
    assert_eq!(s, 202, "{b}");
    let id = serde_json::from_str::<Value>(&b).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(job(port, &id)["status"], "queued", "the slot is held");
    let inputs = state.path().join("jobs").join("test-node").join(&id);
    assert!(inputs.is_dir(), "the job's input is on disk before the 202");

    s1.kill().unwrap(); // SIGKILL: no shutdown, no flush
    s1.wait().unwrap();
    drop(holder);

    // The restarted server runs the job it had accepted.
    let port = free_port();
    let mut s2 = start(state.path(), port);
    let done = wait_finished(port, &id);
    let sync = {
        let (s, b) = http(
            port,
            "POST",
            "/v1/analyze",
            Some(&serde_json::json!({ "text": text }).to_string()),
        )
        .unwrap();
        (s, serde_json::from_str::<Value>(&b).unwrap())
    };
    match sync {
        (200, body) => {
            assert_eq!(done["status"], "done", "{done}");
            let r = &done["response"]["results"][0];
            assert_eq!(r["modality"], body["results"][0]["modality"], "{done}");
            assert_eq!(r["label"], body["results"][0]["label"], "{done}");
        }
        (_, problem) => {
            // A single input the server cannot analyse: the job fails
            // with the same problem the synchronous call answers.
            assert_eq!(done["status"], "failed", "{done}");
            assert_eq!(done["error"]["code"], problem["code"], "{done}");
        }
    }
    assert!(
        !inputs.exists(),
        "inputs removed once the outcome is stored"
    );
    s2.kill().unwrap();
    s2.wait().unwrap();

    // A finished job is still there after another restart.
    let port = free_port();
    let mut s3 = start(state.path(), port);
    let again = job(port, &id);
    assert_eq!(again["status"], done["status"]);
    assert_eq!(again["response"], done["response"]);
    assert_eq!(again["finished_at"], done["finished_at"]);
    s3.kill().unwrap();
    s3.wait().unwrap();
}
