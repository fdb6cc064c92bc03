//! A throwaway PostgreSQL server for tests and benchmarks: `initdb` in a
//! temporary directory, `postgres` listening on 127.0.0.1 only (a free
//! port, its socket in that directory), stopped and deleted on drop. Uses
//! the server binaries of Debian's `postgresql` package
//! (`/usr/lib/postgresql/<version>/bin`, or `initdb` on `PATH`); as root it
//! runs them as the `postgres` user (initdb refuses root).
//!
//! [`PgServer::start`] gives `None` when no PostgreSQL is installed, so a
//! test can skip; with `CANDOR_REQUIRE_POSTGRES=1` (set by
//! `scripts/test.sh`, which installs the package) it panics instead, so CI
//! never skips silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running test server.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    as_postgres: bool,
}

fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some(p) = versions.pop() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

impl PgServer {
    /// Starts a server, or `None` (with a SKIP line on stderr) when
    /// PostgreSQL is not installed and not required.
    pub fn start(tag: &str) -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            if std::env::var("CANDOR_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL is required (CANDOR_REQUIRE_POSTGRES=1) but initdb was not found");
            }
            eprintln!("SKIP {tag}: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "candor-pg-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot give {} to the postgres user", dir.display());
        }
        let mut s = PgServer {
            dir,
            bin,
            port: free_port(),
            child: None,
            as_postgres,
        };
        let data = s.dir.join("data");
        let out = s
            .cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "candor", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.launch();
        Some(s)
    }

    fn cmd(&self, name: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        }
    }

    fn launch(&mut self) {
        let child = self
            .cmd("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Accepting connections; give it a moment to finish recovery.
                std::thread::sleep(Duration::from_millis(300));
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not start on port {}", self.port);
    }

    /// `postgres://candor@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://candor@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `runuser` forwards SIGINT to the server.
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            // runuser may exit before its child: wait for the pid file to go.
            let pid = self.dir.join("data/postmaster.pid");
            let t = Instant::now();
            while pid.exists() && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops and starts the server on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
