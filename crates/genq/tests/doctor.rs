//! `genq doctor` against the fake provider: what it accepts, what it flags, and that it never
//! prints a key.

mod common;

use std::process::Command;

fn doctor(dir: &std::path::Path, config: &str) -> (bool, String) {
    std::fs::write(dir.join("genq.toml"), config).unwrap();
    let out = Command::new(common::genq_bin())
        .args(["doctor", "--config"])
        .arg(dir.join("genq.toml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_provider_and_key() {
    let url = common::fake(genq_fake_provider::FakeConfig {
        keys: vec!["sk-good-key".into()],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("genq.db");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let healthy = format!(
        r#"
database = "sqlite://{db}"
[[providers]]
name = "fake"
type = "http"
base_url = "{url}/v1"
keys = ["sk-good-key"]
requests_per_minute = 60
key_requests_per_minute = 60
[[providers]]
name = "video"
type = "task"
base_url = "{url}"
keys = ["sk-good-key"]
create_path = "/v1/tasks"
status_path = "/v1/tasks/{{task_id}}"
check_path = "/v1/models"
max_concurrent = 100
[[kinds]]
name = "card.generate"
provider = "fake"
path = "/chat/completions"
"#,
        db = db.display()
    );
    let (ok, out) = doctor(dir.path(), &healthy);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok    key fake#1: accepted (GET /models)"),
        "{out}"
    );
    assert!(
        out.contains("ok    key video#1: accepted (GET /v1/models)"),
        "{out}"
    );
    assert!(
        out.contains("ok    provider fake: limits consistent"),
        "{out}"
    );
    assert!(out.contains("0 failed, 0 warnings"), "{out}");

    let broken = format!(
        r#"
database = "sqlite://{db}"
[[providers]]
name = "fake"
type = "http"
base_url = "{url}/v1"
keys = ["sk-good-key", "sk-revoked-key"]
requests_per_minute = 600
key_requests_per_minute = 60
tokens_per_minute = 1000
[[providers]]
name = "down"
type = "http"
base_url = "http://{dead}/v1"
keys = ["sk-good-key"]
[[kinds]]
name = "card.generate"
provider = "fake"
path = "/chat/completions"
estimated_tokens = 5000
"#,
        db = db.display()
    );
    let (ok, out) = doctor(dir.path(), &broken);
    assert!(!ok, "{out}");
    assert!(out.contains("ok    key fake#1: accepted"), "{out}");
    assert!(
        out.contains("FAIL  key fake#2: refused with HTTP 401"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  provider down:") && out.contains("not reachable"),
        "{out}"
    );
    assert!(
        out.contains("requests_per_minute = 600 cannot be reached"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  kind card.generate: estimated_tokens = 5000"),
        "{out}"
    );
    assert!(!out.contains("sk-"), "a key leaked: {out}");

    let (ok, out) = doctor(dir.path(), "[worker]\nconcurrency = 0\n");
    assert!(!ok);
    assert!(out.contains("worker.concurrency"), "{out}");
}
