//! A real Prometheus (Debian's `prometheus`) on loopback scrapes a running genq and evaluates
//! `deploy/prometheus/alerts.yml`: jobs that fail, a provider with no usable key and a genq
//! that goes away make the matching alerts fire, seen through Prometheus's own API. Every
//! expression of `deploy/grafana/genq.json` and of the alert rules parses in that Prometheus and
//! names only series genq exports.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `prometheus` binary; installed from Debian when missing and this runs as root (CI).
fn prometheus_binary() -> &'static str {
    let found = || {
        Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !found() {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        assert!(
            root,
            "this test needs Prometheus: apt-get install prometheus (Debian), or run it as root"
        );
        let status = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus",
            ])
            .status()
            .expect("apt-get");
        assert!(status.success() && found(), "installing prometheus failed");
    }
    "prometheus"
}

struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrape `target` (host:port) every second and evaluate the alert rules every second, with
    /// every `for:` cut to 2 s so that alerts fire within the test.
    async fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
        let fast: String = rules
            .lines()
            .map(|l| match l.trim_start().strip_prefix("for:") {
                Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("alerts.yml"), fast).unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [alerts.yml]\n\
                 scrape_configs:\n  - job_name: genq\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(prometheus_binary())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _dir: dir,
        };
        // Ready, and genq scraped once (target discovery reaches the scraper only after a
        // few seconds): counters seen from now on show their rates.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = p.http.get(format!("{}/-/ready", p.url)).send().await
                && r.status() == 200
                && p.api("query", &[("query", "up")]).await["data"]["result"][0]["value"][1] == "1"
            {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus never scraped genq");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body
    }

    /// Wait until alert `name` with these labels is in state `state`.
    async fn until_alert(&self, name: &str, labels: &[(&str, &str)], state: &str) {
        self.until_alert_while(name, labels, state, || async {})
            .await
    }

    /// Wait until alert `name` with these labels is in state `state`, doing `meanwhile` before
    /// each look (e.g. making the jobs that should raise it).
    async fn until_alert_while<F: std::future::Future<Output = ()>>(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        state: &str,
        mut meanwhile: impl FnMut() -> F,
    ) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            meanwhile().await;
            let alerts = self.api("alerts", &[]).await;
            let found = alerts["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| {
                    a["labels"]["alertname"] == name
                        && a["state"] == state
                        && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                });
            if found {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} {labels:?} never became {state}: {alerts}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The metric names an expression uses (`genq_*` and Prometheus's own `up`).
fn names_in(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b(genq_[a-z_]+|up)\b").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

fn dashboard_exprs() -> Vec<String> {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/genq.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    out
}

fn alert_exprs() -> Vec<String> {
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_in_a_real_prometheus_and_the_dashboard_queries_parse() {
    let fake_url = fake(genq_fake_provider::FakeConfig {
        keys: vec!["sk-good".into()],
        latency: Duration::from_millis(2),
        ..Default::default()
    })
    .await;
    let s = TestServer::start(config(&format!(
        r#"
[[providers]]
name = "refused"
type = "http"
base_url = "{fake_url}/v1"
keys = ["sk-refused"]

[[providers]]
name = "good"
type = "http"
base_url = "{fake_url}/v1"
keys = ["sk-good"]
requests_per_minute = 600

[[providers]]
name = "video"
type = "task"
base_url = "{fake_url}"
keys = ["sk-good"]
create_path = "/v1/tasks"
status_path = "/v1/tasks/{{task_id}}"
state_pointer = "/status"

[[kinds]]
name = "chat.refused"
provider = "refused"
path = "/chat/completions"

[[kinds]]
name = "chat.good"
provider = "good"
path = "/chat/completions"

[[kinds]]
name = "video.make"
provider = "video"

[[webhooks]]
url = "{fake_url}/no-such-hook"
secret = "a-webhook-secret-0123456789"
timeout = "1s"
"#
    )))
    .await;
    let target = s.url.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(&target).await;

    // A provider whose only key is refused: asked once, disabled, its job waits.
    let chat = |kind: &str| {
        json!({"kind": kind, "user_id": "u1", "payload": {
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a mug"}]}})
    };
    let (status, _) = s.post("/v1/jobs", chat("chat.refused")).await;
    assert_eq!(status, 201);
    // Three at once against 600 a minute: two wait for their turn.
    let payload = chat("chat.good")["payload"].clone();
    let (status, _) = s
        .post(
            "/v1/batches",
            json!({"kind": "chat.good", "user_id": "u1", "items": [payload, payload, payload]}),
        )
        .await;
    assert_eq!(status, 201);
    // Jobs that fail, until the alert fires: their rate is seen across scrapes.
    let failing = json!({"kind": "card.generate", "user_id": "u1", "payload": {"simulate": {"fail": "user_error"}}});
    let retried = json!({"kind": "fast.retry", "user_id": "u1", "payload": {"simulate": {"fail": "temporary", "fail_attempts": 1}}});
    prometheus
        .until_alert_while(
            "GenqFailureRate",
            &[("kind", "card.generate"), ("class", "user_error")],
            "firing",
            || async {
                s.post("/v1/jobs", failing.clone()).await;
                s.post("/v1/jobs", retried.clone()).await;
            },
        )
        .await;
    prometheus
        .until_alert(
            "GenqNoUsableProviderKey",
            &[("provider", "refused")],
            "firing",
        )
        .await;

    // Every series genq says it exports is in this scrape, and only those are.
    let text = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = exposition(&text);
    let scraped: BTreeSet<&str> = series
        .keys()
        .map(|s| s.split('{').next().unwrap())
        .collect();
    let exported: BTreeSet<&str> = genq_engine::metrics::SERIES.iter().copied().collect();
    assert_eq!(scraped, exported);

    // The dashboard's and the rules' expressions parse and name only exported series.
    let known: BTreeSet<String> = exported
        .iter()
        .map(|s| s.to_string())
        .chain(["up".to_string()])
        .collect();
    for expr in dashboard_exprs().iter().chain(&alert_exprs()) {
        let answer = prometheus.api("query", &[("query", expr)]).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        for name in names_in(expr) {
            assert!(
                known.contains(&name),
                "{expr} names {name}, which genq does not export"
            );
        }
    }
    let answer = prometheus
        .api("query", &[("query", "genq_database_up")])
        .await;
    assert_eq!(answer["data"]["result"][0]["value"][1], "1", "{answer}");

    // genq goes away: Prometheus cannot scrape it.
    s.shutdown().await;
    prometheus
        .until_alert("GenqProcessGone", &[("instance", &target)], "firing")
        .await;
}
