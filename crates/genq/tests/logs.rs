//! Logs of the real binary: `--log-format json` writes one JSON object a line, and every line
//! about a job carries its id, kind, user and attempt; `RUST_LOG` filters.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::Duration;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
database = "sqlite://genq.db"

[auth]
admin_tokens = ["admin-token-0123456789abcdef"]

[[providers]]
name = "demo"
type = "demo"
latency = "5ms"

[[kinds]]
name = "card.generate"
provider = "demo"
retry_delays = ["10ms"]
max_retries = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_job_on_every_line_about_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("genq.toml"), CONFIG).unwrap();
    let mut child = std::process::Command::new(genq_bin())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(dir.path().join("genq.toml"))
        .current_dir(dir.path())
        .env_remove("GENQ_LOG")
        .env("RUST_LOG", "warn,genq_engine=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = std::io::BufReader::new(stdout)
        .lines()
        .find_map(|l| {
            l.unwrap()
                .strip_prefix("genq listening on ")
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let (status, job) = client_call(
        &url,
        reqwest::Method::POST,
        "/v1/jobs",
        Some(json!({"kind": "card.generate", "user_id": "u-logs", "payload": {"simulate": {"fail": "temporary"}}})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // Its first attempt is retried, its second fails the job.
    let mut about_job = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !about_job
        .iter()
        .any(|l: &Value| l["fields"]["message"] == "job failed")
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("a log line saying the job failed");
        let line: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            ["WARN", "ERROR", "INFO"].contains(&line["level"].as_str().unwrap()),
            "RUST_LOG filters: {line}"
        );
        if line["span"]["job_id"] == id.as_str() {
            about_job.push(line);
        }
    }
    let retried = about_job
        .iter()
        .find(|l| l["fields"]["message"] == "attempt failed; the job will be retried")
        .expect("the retry is logged");
    let failed = about_job.last().unwrap();
    for (line, attempt) in [(retried, 1), (failed, 2)] {
        assert_eq!(line["span"]["kind"], "card.generate", "{line}");
        assert_eq!(line["span"]["user_id"], "u-logs", "{line}");
        assert_eq!(line["span"]["attempt"], attempt, "{line}");
        assert_eq!(line["fields"]["class"], "temporary", "{line}");
    }
    assert_eq!(failed["level"], "WARN");
    let _ = child.kill();
    let _ = child.wait();
}
