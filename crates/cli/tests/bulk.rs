//! `candor bulk` and `candor worker` as processes: a batch on SQLite end to
//! end, and on a real PostgreSQL a worker killed with SIGKILL mid-batch and
//! the database restarted mid-batch (no item lost, none with two results).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candor_bulk::testpg::PgServer;
use serde_json::Value;

fn candor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_candor"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for (k, _) in std::env::vars() {
        if k.starts_with("CANDOR_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("CANDOR_NO_MODELS", "1");
    c
}

/// `n` small resume files, one applicant each, and their manifest.
fn batch_files(dir: &Path, n: usize) -> PathBuf {
    let mut m = String::from("applicant_id,file,team\n");
    for i in 0..n {
        let f = dir.join(format!("r{i}.txt"));
        std::fs::write(&f, format!("Applicant {i} ran the night shift of a warehouse for three years and trained new staff.")).unwrap();
        m.push_str(&format!("app{i:05},{},team{}\n", f.display(), i % 3));
    }
    let p = dir.join("hires.csv");
    std::fs::write(&p, m).unwrap();
    p
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn status(queue: &str, id: &str) -> Value {
    serde_json::from_str(&run_ok(
        candor().args(["bulk", "status", "--json", "--queue", queue, id]),
    ))
    .unwrap()
}

fn jsonl(queue: &str, id: &str) -> Vec<Value> {
    run_ok(candor().args(["bulk", "results", "--format", "jsonl", "--queue", queue, id]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn worker(queue: &str) -> Child {
    candor()
        .args([
            "worker",
            "--queue",
            queue,
            "--worker-concurrency",
            "2",
            "--poll-interval-ms",
            "200",
            "--missed-heartbeats",
            "5",
            "--stall-timeout-secs",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every item finished once: one row each, one result written each.
fn assert_exactly_once(queue: &str, id: &str, n: usize) -> usize {
    let rows = jsonl(queue, id);
    assert_eq!(rows.len(), n, "one row per item");
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["item_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "item ids are unique");
    let mut retried = 0;
    for r in &rows {
        assert_eq!(r["state"], "done", "{r}");
        assert_eq!(r["writes"], 1, "exactly one result: {r}");
        let attempts = r["attempts"].as_i64().unwrap();
        assert!((1..=3).contains(&attempts), "{r}");
        if attempts > 1 {
            retried += 1;
        }
    }
    retried
}

#[test]
fn bulk_submit_status_results_report_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let m = batch_files(dir.path(), 30);
    let q = dir.path().join("bulk.db").display().to_string();
    // Submit and process here (the default), then resubmit: nothing new.
    let id = run_ok(
        candor()
            .args(["bulk", "submit", "--queue", &q, "--group-columns", "team"])
            .arg(&m),
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let s = status(&q, &id);
    assert_eq!(
        (s["total"].as_i64(), s["done"].as_i64()),
        (Some(30), Some(30)),
        "{s}"
    );
    let out = candor()
        .args(["bulk", "submit", "--queue", &q])
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0 enqueued now, 30 already in the batch"),
        "{err}"
    );

    let csv = run_ok(candor().args(["bulk", "results", "--queue", &q, &id]));
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("applicant_id,path,state,"));
    assert_eq!(lines.count(), 30);
    assert_exactly_once(&q, &id, 30);

    let rep: Value = serde_json::from_str(&run_ok(
        candor().args(["bulk", "report", "--json", "--top", "5", "--queue", &q, &id]),
    ))
    .unwrap();
    assert_eq!(rep["applicants"], 30);
    assert_eq!(rep["cases"].as_array().unwrap().len(), 5);
    assert_eq!(rep["impact"][0]["column"], "team");
    let table = run_ok(candor().args(["bulk", "report", "--queue", &q, &id]));
    assert!(table.contains("impact by `team`"), "{table}");

    // Clear errors, exit 2.
    let out = candor()
        .args(["bulk", "status", "--queue", &q, "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no batch `nope`"));
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "name,files\nx,/a\n").unwrap();
    let out = candor()
        .args(["bulk", "submit", "--queue", &q])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("applicant_id"));
}

/// Submits `n` items, lets a worker process get through some of them,
/// SIGKILLs it (no chance to finish, acknowledge or deregister), starts
/// another: every item ends with exactly one result.
fn kill_9_a_worker_mid_batch(q: &str, dir: &Path, n: usize) {
    let m = batch_files(dir, n);
    let id = run_ok(
        candor()
            .args(["bulk", "submit", "--no-wait", "--queue", q])
            .arg(&m),
    );
    let id = id.trim().to_owned();

    let mut w1 = worker(q);
    wait_for("progress", Duration::from_secs(60), || {
        status(q, &id)["done"].as_i64().unwrap() >= 50
    });
    w1.kill().unwrap();
    w1.wait().unwrap();
    let at_kill = status(q, &id)["done"].as_i64().unwrap();
    assert!(
        at_kill < n as i64,
        "the batch must still be running when the worker dies"
    );

    let mut w2 = worker(q);
    wait_for("the batch to finish", Duration::from_secs(180), || {
        status(q, &id)["finished"] == true
    });
    w2.kill().unwrap();
    w2.wait().unwrap();
    let s = status(q, &id);
    assert_eq!(s["done"].as_i64(), Some(n as i64), "no item lost: {s}");
    let retried = assert_exactly_once(q, &id, n);
    eprintln!(
        "kill -9 after {at_kill}/{n} items; {retried} items started twice, each written once"
    );
}

#[test]
fn kill_9_a_worker_mid_batch_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("bulk.db").display().to_string();
    kill_9_a_worker_mid_batch(&q, dir.path(), 1000);
}

#[test]
fn kill_9_a_worker_mid_batch_on_postgres() {
    let Some(pg) = PgServer::start("kill9") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    kill_9_a_worker_mid_batch(&pg.url(), dir.path(), 1000);
}

#[test]
fn cancel_mid_batch_stops_new_items() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("bulk.db").display().to_string();
    let n = 1000;
    let m = batch_files(dir.path(), n);
    let id = run_ok(
        candor()
            .args(["bulk", "submit", "--no-wait", "--queue", &q])
            .arg(&m),
    );
    let id = id.trim().to_owned();
    let mut w = worker(&q);
    wait_for("progress", Duration::from_secs(60), || {
        status(&q, &id)["done"].as_i64().unwrap() >= 50
    });
    let out = candor()
        .args(["bulk", "cancel", "--queue", &q, &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status(&q, &id);
    assert_eq!(s["pending"], 0, "nothing is left to start: {s}");
    assert_eq!(s["status"], "cancelled", "{s}");
    let cancelled = s["cancelled"].as_i64().unwrap();
    assert!(cancelled > 0, "cancelled mid-batch: {s}");
    // The worker keeps running: nothing more finishes (items in flight at
    // the cancel stay cancelled).
    std::thread::sleep(Duration::from_secs(1));
    let later = status(&q, &id);
    assert_eq!(
        (later["done"].clone(), later["cancelled"].clone()),
        (s["done"].clone(), s["cancelled"].clone())
    );
    assert!(w.try_wait().unwrap().is_none(), "the worker goes on");
    w.kill().unwrap();
    w.wait().unwrap();
    for r in jsonl(&q, &id) {
        match r["state"].as_str().unwrap() {
            "done" => assert_eq!(r["writes"], 1, "{r}"),
            "cancelled" => {
                assert_eq!(r["writes"], 0, "{r}");
                assert!(r["attempts"].as_i64().unwrap() <= 1, "{r}");
            }
            other => panic!("unexpected state {other}: {r}"),
        }
    }
    // A cancelled batch takes no more items.
    let out = candor()
        .args(["bulk", "submit", "--no-wait", "--queue", &q])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled"));
}

#[test]
fn restart_postgres_mid_batch() {
    let Some(mut pg) = PgServer::start("restart") else {
        return;
    };
    let q = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let n = 1000;
    let m = batch_files(dir.path(), n);
    let id = run_ok(
        candor()
            .args(["bulk", "submit", "--no-wait", "--queue", &q])
            .arg(&m),
    );
    let id = id.trim().to_owned();
    let mut w = worker(&q);
    wait_for("progress", Duration::from_secs(60), || {
        status(&q, &id)["done"].as_i64().unwrap() >= 50
    });
    pg.restart();
    wait_for(
        "the batch to finish after the restart",
        Duration::from_secs(180),
        || status(&q, &id)["finished"] == true,
    );
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker survives the restart"
    );
    w.kill().unwrap();
    w.wait().unwrap();
    assert_eq!(status(&q, &id)["done"].as_i64(), Some(n as i64));
    assert_exactly_once(&q, &id, n);
}
