//! Test servers: genq's real router and engine on a loopback port with a fresh SQLite file
//! (in process), or the real `genq` binary as a child process (for signals and crashes).

#![allow(dead_code)]

use genq_api::AppState;
use genq_config::{Config, Mode};
use genq_core::SystemClock;
use genq_engine::{Engine, EngineSettings};
use genq_store::{SqliteStore, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{AssertSqlSafe, ConnectOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const APP: &str = "app-token-0123456789abcdef";
pub const WORKER: &str = "worker-token-0123456789abcdef";

pub const CONFIG: &str = r#"
[auth]
admin_tokens = ["admin-token-0123456789abcdef"]
app_tokens = ["app-token-0123456789abcdef"]
worker_tokens = ["worker-token-0123456789abcdef"]

[users]
default_plan = "enterprise"
initial_credits = 100000

[worker]
concurrency = 8
poll_interval = "50ms"
lease = "2s"
heartbeat = "200ms"

[api]
max_body_bytes = 65536
max_claim_wait = "5s"

[[providers]]
name = "demo"
type = "demo"
latency = "20ms"

[[kinds]]
name = "card.generate"
provider = "demo"
cost = 1

[[kinds]]
name = "fast.retry"
provider = "demo"
retry_delays = ["50ms"]
max_retries = 2

[[kinds]]
name = "report.weekly"
external = true
retry_delays = ["50ms"]
"#;

pub fn config(extra: &str) -> Config {
    Config::from_toml(
        "test.toml",
        &format!("{CONFIG}\n{extra}"),
        &Default::default(),
    )
    .expect("test config")
}

/// Whether in-process test servers run on PostgreSQL (`GENQ_TEST_BACKEND=postgres`, a schema
/// of their own per server) instead of a fresh SQLite file.
pub fn postgres() -> bool {
    std::env::var("GENQ_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

pub struct TestServer {
    pub url: String,
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        Self::start_with(config, true).await
    }

    /// `workers = false`: the API and maintenance only, so tests can see jobs wait.
    pub async fn start_with(config: Config, workers: bool) -> TestServer {
        Self::start_with_clock(config, workers, Arc::new(SystemClock)).await
    }

    /// With a clock the test moves (quota days).
    pub async fn start_with_clock(
        mut config: Config,
        workers: bool,
        clock: Arc<dyn genq_core::Clock>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = if postgres() {
            Arc::new(genq_store::conformance::pg::fresh_store().await)
        } else {
            config.database = format!("sqlite://{}", dir.path().join("genq.db").display());
            Arc::new(SqliteStore::open(dir.path().join("genq.db")).unwrap())
        };
        let engine =
            Engine::from_config(store.clone(), &config, EngineSettings::from_config(&config))
                .await
                .unwrap();
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let (e, s) = (engine.clone(), stop.clone());
        tasks.push(tokio::spawn(async move { e.run(s, workers).await }));
        let state = Arc::new(AppState::new(engine.clone(), Arc::new(config), clock));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            genq_api::server::serve(listener, state, s.cancelled())
                .await
                .unwrap();
        }));
        TestServer {
            url,
            engine,
            store,
            http: reqwest::Client::new(),
            stop,
            tasks,
            dir,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(ADMIN), Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(ADMIN), None).await
    }

    /// Poll a job until `done(job)`, bounded.
    pub async fn until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..500 {
            let (status, job) = self.get(&format!("/v1/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if done(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "job {id} did not get there: {}",
            self.get(&format!("/v1/jobs/{id}")).await.1
        );
    }

    pub async fn until_state(&self, id: &str, state: &str) -> Value {
        self.until(id, |j| j["state"] == state).await
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// The error shape of SPEC §6, with this code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// `genq` itself, as a child process.
pub struct Process {
    pub child: std::process::Child,
    pub url: String,
}

pub fn genq_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genq"))
}

impl Process {
    /// Start `genq <verb> --config <dir>/genq.toml`; wait for its line starting with `prefix`
    /// and return the rest of that line.
    fn spawn(verb: &str, dir: &Path, prefix: &str) -> (Process, String) {
        use std::io::BufRead;
        let mut child = std::process::Command::new(genq_bin())
            .arg(verb)
            .arg("--config")
            .arg(dir.join("genq.toml"))
            .current_dir(dir)
            .env("GENQ_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start genq {verb}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let rest = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("genq {verb} exited before printing {prefix:?}"))
                .unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                break rest.to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let process = Process {
            child,
            url: String::new(),
        };
        (process, rest)
    }

    /// Start `genq serve` and wait until it listens.
    pub fn serve(dir: &Path) -> Process {
        let (mut process, rest) = Self::spawn("serve", dir, "genq listening on ");
        process.url = rest.split_whitespace().next().unwrap().to_string();
        process
    }

    /// Start `genq worker`; returns it with the node id it runs as.
    pub fn worker(dir: &Path) -> (Process, String) {
        Self::spawn("worker", dir, "genq worker running as node ")
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for exit, bounded; returns whether it exited cleanly.
    pub fn wait(mut self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("genq did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn client_call(
    url: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub fn set_mode(config: &mut Config, mode: Mode) {
    config.mode = mode;
}

/// `genq fake-provider` in this test's runtime, on a free loopback port; its base URL.
/// Config lines for an `http` provider "fake" at `fake_url` with two keys, and the kind
/// `chat.generate` it serves; `kind_extra` goes on under that kind.
pub fn fake_provider_toml(fake_url: &str, kind_extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "fake"
type = "http"
base_url = "{fake_url}/v1"
keys = ["sk-secret-one", "sk-secret-two"]
timeout = "5s"

[[kinds]]
name = "chat.generate"
provider = "fake"
path = "/chat/completions"
{kind_extra}
"#
    )
}

pub async fn fake(config: genq_fake_provider::FakeConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, genq_fake_provider::router(config))
            .await
            .unwrap()
    });
    url
}

pub async fn fake_stats(url: &str) -> genq_fake_provider::Stats {
    reqwest::get(format!("{url}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A PostgreSQL database of its own for a test that runs `genq` processes; drop it at the end.
pub struct Database {
    name: String,
}

impl Database {
    pub async fn create() -> Database {
        let name = format!("genq_test_{:016x}", rand::random::<u64>());
        let mut admin = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(
            &genq_store::conformance::pg::server_url(),
        )
        .unwrap()
        .connect()
        .await
        .expect("PostgreSQL is reachable");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        Database { name }
    }

    pub fn url(&self) -> String {
        let server = genq_store::conformance::pg::server_url();
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    pub async fn drop_it(self) {
        let mut admin = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(
            &genq_store::conformance::pg::server_url(),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await;
    }
}

/// A Prometheus exposition as `series -> value`, e.g. `genq_jobs{state="queued"} -> 1`.
pub fn exposition(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_string(), value.parse().unwrap()))
        .collect()
}
