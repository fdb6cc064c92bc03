//! A throwaway PostgreSQL server for tests and benchmarks: `initdb` in a
//! temporary directory, `postgres` listening on 127.0.0.1 only (a free
//! port) and on a Unix socket in that directory, stopped and deleted on
//! drop. Uses the server binaries of Debian's `postgresql` package
//! (`/usr/lib/postgresql/<version>/bin`, or `initdb` on `PATH`).
//!
//! PostgreSQL refuses to run as root, and CI runs the tests as root: then
//! `initdb` and `postgres` are started with the uid and gid of the
//! `postgres` user (made by the Debian package), or of `nobody` when there
//! is none, and the temporary directory is handed to that user.
//!
//! [`PgServer::start`] gives `None`, after a `SKIP` line on stderr, when no
//! PostgreSQL is installed, so a test that needs one skips instead of
//! failing. `CANDOR_REQUIRE_POSTGRES=1` turns that into a panic, for a
//! runner that must not skip.

use std::os::unix::process::CommandExt;
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
    /// Uid and gid the server runs as (when started by root).
    user: Option<(u32, u32)>,
}

fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
        .collect();
    // Newest version last (numeric, so 9.6 sorts before 15).
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(p) = versions.pop() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
    })
}

fn id_of(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The (uid, gid) to run the server as: `None` when not root.
fn server_user() -> Option<(u32, u32)> {
    if id_of(&["-u"]) != Some(0) {
        return None;
    }
    for name in ["postgres", "nobody"] {
        if let (Some(u), Some(g)) = (id_of(&["-u", name]), id_of(&["-g", name])) {
            if u != 0 {
                return Some((u, g));
            }
        }
    }
    panic!(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

impl PgServer {
    /// Starts a server, or `None` (with a `SKIP` line on stderr) when
    /// PostgreSQL is not installed and not required.
    pub fn start(tag: &str) -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            if std::env::var("CANDOR_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is required (CANDOR_REQUIRE_POSTGRES=1) but its server binaries \
                     (initdb, postgres) were not found"
                );
            }
            eprintln!(
                "SKIP {tag}: PostgreSQL server binaries not found \
                 (/usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
            );
            return None;
        };
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("candor-pg-{tag}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg temp dir");
        let user = server_user();
        if let Some((u, g)) = user {
            std::os::unix::fs::chown(&dir, Some(u), Some(g)).expect("chown the pg temp dir");
        }
        let mut s = PgServer {
            dir,
            bin,
            port,
            child: None,
            user,
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

    /// A command for one of the server's binaries, as the server's user,
    /// in the server's directory (the test's working directory may be
    /// unreadable to that user).
    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        c.current_dir(&self.dir).env("LC_ALL", "C");
        if let Some((u, g)) = self.user {
            c.uid(u).gid(g);
        }
        c
    }

    fn launch(&mut self) {
        let child = self
            .cmd("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("postgres exited ({status}) at start:\n{log}");
            }
            if self.ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres did not start on port {}", self.port);
    }

    /// Accepting connections (`pg_isready`, or a TCP connect when that
    /// binary is missing).
    fn ready(&self) -> bool {
        let isready = self.bin.join("pg_isready");
        if isready.is_file() {
            Command::new(isready)
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "candor",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        } else {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        }
    }

    /// `postgres://candor@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://candor@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected, the data
    /// is kept).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT to the postmaster itself (no wrapper in between).
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
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
