//! End-to-end tests of the `candor` binary.

use std::process::Command;

use serde_json::Value;

fn candor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_candor"));
    // Run from the workspace root, as the README does: the default manifest
    // (models/manifest.toml) and CANDOR_HOME (.candor) resolve there. Models
    // missing from .candor are start-up warnings, not failures.
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    // Keep the environment from leaking settings into the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("CANDOR_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn scan_text_file_prints_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("resume.txt");
    std::fs::write(&f, "Ten years of backend engineering.").unwrap();
    let out = candor().arg("scan").arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("FILE") && stdout.contains("SHA256"),
        "{stdout}"
    );
    assert!(stdout.contains("resume.txt"), "{stdout}");
    assert!(stdout.contains("text"), "{stdout}");
    // Five words: the text detector abstains (or is not installed when the
    // models are absent); either way no score.
    assert!(stdout.contains("no decision"), "{stdout}");
    assert!(
        stdout.contains("not a decision about the applicant"),
        "{stdout}"
    );
}

#[test]
fn scan_json_matches_api_schema() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("resume.txt");
    std::fs::write(&f, "Ten years of backend engineering.").unwrap();
    let out = candor()
        .args([
            "scan",
            "--json",
            "--text",
            "pasted words",
            "--priority",
            "bulk",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["input"]["name"], "resume.txt");
    assert_eq!(results[0]["modality"], "text");
    assert_eq!(results[0]["input"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["case"]["inputs"], 2);
    let parsed: candor_server::AnalyzeResponse = serde_json::from_value(v).unwrap();
    assert!(parsed.results.iter().all(|i| i.as_result().is_some()));
}

#[test]
fn scan_missing_file_exits_1_with_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ok.txt");
    std::fs::write(&good, "words").unwrap();
    let missing = dir.path().join("missing.pdf");
    let out = candor()
        .arg("scan")
        .arg(&good)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("missing.pdf") && stdout.contains("cannot read"),
        "{stdout}"
    );
    assert!(stdout.contains("ok.txt"), "{stdout}");
    assert!(stderr.contains("1 of 2"), "{stderr}");

    let out = candor()
        .args(["scan", "--json"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["status"], 404);
    assert_eq!(v["results"][0]["code"], "read_error");
}

#[test]
fn usage_errors_exit_2() {
    let out = candor().arg("scan").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = candor()
        .args(["scan", "--priority", "urgent", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_mentions_env_vars() {
    let out = candor().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "CANDOR_PORT",
        "CANDOR_API_KEYS",
        "CANDOR_MAX_UPLOAD_BYTES",
        "CANDOR_MAX_AUDIO_SECONDS",
        "CANDOR_MAX_CONCURRENT_ANALYSES",
        "CANDOR_HOME",
        "CANDOR_LOG_FORMAT",
    ] {
        assert!(help.contains(var), "serve --help lacks {var}");
    }
    assert!(help.contains("64 KB per second"), "trade-off text missing");
}

#[test]
fn info_prints_analyzer_json() {
    let out = candor()
        .args(["info", "--max-pages", "7"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["limits"]["max_pages"], 7);
    assert_eq!(v["detectors"].as_array().unwrap().len(), 3);
}

#[test]
fn env_var_sets_a_limit() {
    let out = candor()
        .arg("info")
        .env("CANDOR_MAX_TEXT_CHARS", "1234")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["limits"]["max_text_chars"], 1234);
}

/// Start-up with every model loaded (ONNX Runtime's environment and
/// sessions created) writes nothing outside CANDOR_HOME and looks up no
/// host: ONNX Runtime's telemetry is off. Under strace when it is installed
/// (every file created, renamed or removed, every socket and the resolver's
/// files); without it, only that an empty HOME stays empty.
#[test]
fn startup_writes_nothing_outside_candor_home_and_resolves_no_host() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .unwrap();
    let home = std::env::var_os("CANDOR_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".candor"));
    let home = root.join(home);
    if !home.join("onnxruntime").join("lib").is_dir() {
        eprintln!(
            "skipped: no ONNX Runtime under {} (run scripts/setup.sh)",
            home.display()
        );
        return;
    }
    let home = home.canonicalize().unwrap();
    let user_home = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let trace = scratch.path().join("trace.txt");
    let run = |strace: bool| {
        let mut c = if strace {
            let mut c = Command::new("strace");
            c.args(["-f", "--seccomp-bpf", "-qq", "-o"])
                .arg(&trace)
                .args([
                    "-e",
                    "trace=%network,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,\
                     unlink,unlinkat,link,linkat,symlink,symlinkat,truncate",
                    "--",
                    env!("CARGO_BIN_EXE_candor"),
                ]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_candor"))
        };
        c.arg("info").current_dir(&root);
        for (k, _) in std::env::vars() {
            if k.starts_with("CANDOR_") || k.starts_with("XDG_") || k.starts_with("ORT_") {
                c.env_remove(k);
            }
        }
        c.env("CANDOR_HOME", &home)
            .env("HOME", user_home.path())
            .env_remove("RUST_LOG");
        c.output().unwrap()
    };
    let has_strace = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut traced = has_strace;
    let mut out = run(traced);
    if traced && !out.status.success() {
        // No ptrace in this container: fall back to the HOME check.
        eprintln!(
            "strace could not trace candor ({}); checking HOME only",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
        traced = false;
        out = run(false);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(user_home.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "start-up wrote under HOME: {left:?}");
    if !traced {
        eprintln!("strace not installed: checked only that an empty HOME stays empty");
        return;
    }
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut findings = Vec::new();
    for line in text.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c).trim_start();
        let path = call.split('"').nth(1).unwrap_or("");
        let network = ["socket(AF_INET", "connect(", "sendto(", "sendmsg(", "bind("]
            .iter()
            .any(|p| call.starts_with(p));
        let resolver = [
            "/etc/resolv.conf",
            "/etc/hosts",
            "/etc/nsswitch.conf",
            "/etc/gai.conf",
            "/etc/host.conf",
        ]
        .contains(&path);
        let opens = call.starts_with("open(") || call.starts_with("openat(");
        let writes = if opens {
            ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|f| call.contains(f))
        } else {
            !path.is_empty() && !call.starts_with("socket")
        };
        let inside = {
            let p = std::path::Path::new(path);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                root.join(p)
            };
            p.starts_with(&home) || path == "/dev/null" || path == "/dev/tty"
        };
        if network || resolver || (writes && !inside) {
            findings.push(line.to_owned());
        }
    }
    assert!(
        findings.is_empty(),
        "start-up touched the network, the resolver, or files outside {}:\n{}",
        home.display(),
        findings.join("\n")
    );
}
