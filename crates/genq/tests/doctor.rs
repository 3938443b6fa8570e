//! `genq doctor` against the fake provider: what it accepts, what it flags, and that it never
//! prints a key.

mod common;

use std::process::Command;

fn doctor(dir: &std::path::Path, config: &str) -> (bool, String) {
    doctor_with(dir, config, &[])
}

fn doctor_with(dir: &std::path::Path, config: &str, args: &[&str]) -> (bool, String) {
    std::fs::write(dir.join("genq.toml"), config).unwrap();
    let out = Command::new(common::genq_bin())
        .args(["doctor", "--config"])
        .arg(dir.join("genq.toml"))
        .args(args)
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
    // A genq running with this config, whose /metrics doctor reads.
    let running = common::TestServer::start(common::config("")).await;
    let listen = running.url.trim_start_matches("http://");
    let healthy = format!(
        r#"
database = "sqlite://{db}"
listen = "{listen}"
[auth]
admin_tokens = ["doctor-admin-token-0123456789"]
app_tokens = ["doctor-app-token-0123456789"]
[[webhooks]]
url = "http://localhost:9/hook"
secret = "a-webhook-secret-0123456789"
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
    for line in [
        "ok    auth: 2 token(s) configured",
        "ok    database: 11 of 11 migrations applied",
        "ok    webhooks[0]: localhost resolves",
        "/metrics answers",
        "MiB free beside",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(out.contains("0 failed, 0 warnings"), "{out}");
    running.shutdown().await;

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

    // The same as one JSON document; production with the generated token fails.
    let (ok, out) = doctor_with(
        dir.path(),
        &format!("mode = \"production\"\n{broken}"),
        &["--json"],
    );
    assert!(!ok);
    let report: serde_json::Value =
        serde_json::from_str(out.lines().next().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let status_of = |prefix: &str| {
        checks
            .iter()
            .find(|c| c["message"].as_str().unwrap().starts_with(prefix))
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no check {prefix}: {report}"))
    };
    assert_eq!(status_of("auth: no tokens in production"), "fail");
    assert_eq!(status_of("key fake#2: refused"), "fail");
    assert_eq!(status_of("key fake#1: accepted"), "ok");
    assert_eq!(status_of("metrics: nothing answers"), "warn");
    assert_eq!(
        report["failures"].as_u64().unwrap() as usize,
        checks.iter().filter(|c| c["status"] == "fail").count()
    );

    let (ok, out) = doctor(dir.path(), "[worker]\nconcurrency = 0\n");
    assert!(!ok);
    assert!(out.contains("worker.concurrency"), "{out}");
}
