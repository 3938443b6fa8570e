//! PostgreSQL restarted under load: `/readyz` answers 503 while it is down, `genq serve`
//! reconnects by itself, and every job still succeeds, none left `running`.
//!
//! The test runs a PostgreSQL server of its own (initdb in a temporary directory, on a free
//! port), so stopping it disturbs no other test.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A throwaway PostgreSQL cluster.
struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    fn bin_dir() -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .map(|e| e.unwrap().path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop().expect("an initdb")
    }

    /// Run a PostgreSQL tool as the `postgres` user when we are root (PostgreSQL refuses root).
    fn tool(&self, name: &str) -> Command {
        let root = unsafe { libc_geteuid() } == 0;
        let mut c = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        };
        c.stdout(std::process::Stdio::null());
        c
    }

    fn create() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            bin: Self::bin_dir(),
            data,
            port,
            _dir: dir,
        };
        if unsafe { libc_geteuid() } == 0 {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg._dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let status = pg
            .tool("initdb")
            .args(["--auth=trust", "--username=postgres", "-D"])
            .arg(&pg.data)
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        pg.start();
        pg
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data.display()
        );
        let status = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.data.join("log"))
            .args(["-w", "start"])
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
    }

    /// As a crash would: no checkpoint, connections cut.
    fn stop(&self) {
        let status = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl stop failed");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .status();
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn write_config(dir: &Path, database: &str) {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
database = "{database}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
[worker]
concurrency = 8
lease = "3s"
heartbeat = "1s"
poll_interval = "200ms"
[[providers]]
name = "demo"
type = "demo"
latency = "50ms"
completions_log = "{log}"
[[kinds]]
name = "card.generate"
provider = "demo"
retry_delays = ["100ms"]
"#,
        log = dir.join("completions.log").display(),
    );
    std::fs::write(dir.join("genq.toml"), text).unwrap();
}

async fn until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(url: &str) -> u16 {
    match reqwest::get(format!("{url}/readyz")).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn succeeded(url: &str) -> u64 {
    let (_, s) = client_call(url, Method::GET, "/v1/stats", None).await;
    s["jobs"]["succeeded"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_nothing() {
    let pg = PrivatePostgres::create();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &pg.url());
    let genq = Process::serve(dir.path());
    let url = genq.url.clone();
    for part in 0..2 {
        let items: Vec<_> = (0..150).map(|i| json!({"n": part * 150 + i})).collect();
        let (status, out) = client_call(
            &url,
            Method::POST,
            "/v1/batches",
            Some(json!({"kind": "card.generate", "user_id": "u1", "items": items})),
        )
        .await;
        assert_eq!(status, 201, "{out}");
    }
    until(Duration::from_secs(30), "some successes", async || {
        succeeded(&url).await >= 30
    })
    .await;

    pg.stop();
    until(
        Duration::from_secs(15),
        "/readyz to answer 503",
        async || ready(&url).await == 503,
    )
    .await;
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200,
        "the process itself is alive"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ready(&url).await, 503, "still down");
    // An unauthenticated caller learns that the database is down, not where it is or why.
    let answer = reqwest::get(format!("{url}/readyz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["code"], "unavailable");
    assert_eq!(
        answer["error"]["message"], "the database does not answer",
        "{answer}"
    );
    pg.start();

    until(
        Duration::from_secs(15),
        "/readyz to answer 200 again",
        async || ready(&url).await == 200,
    )
    .await;
    until(Duration::from_secs(60), "all 300 to succeed", async || {
        succeeded(&url).await == 300
    })
    .await;
    let (_, stats) = client_call(&url, Method::GET, "/v1/stats", None).await;
    let jobs = &stats["jobs"];
    assert_eq!(
        (
            jobs["running"].as_u64(),
            jobs["queued"].as_u64(),
            jobs["retrying"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{stats}"
    );
    // No attempt completed twice (an attempt cut off by the outage is retried as a new one).
    let log = std::fs::read_to_string(dir.path().join("completions.log")).unwrap();
    let mut seen = HashSet::new();
    for line in log.lines() {
        let attempt: Vec<&str> = line.split_whitespace().take(2).collect();
        assert!(seen.insert(attempt), "{line} completed twice");
    }
    let jobs_done: HashSet<&str> = log
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(jobs_done.len(), 300, "every job completed at the provider");
    genq.signal("TERM");
    assert!(genq.wait(Duration::from_secs(20)));
}
