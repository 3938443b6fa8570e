//! Events over real HTTP: webhooks to a real receiver (signed, once per change, in order per
//! job, through a receiver outage and a SIGKILL of genq, on SQLite and PostgreSQL) and the SSE
//! stream (every event of a batch; a reconnect with `Last-Event-ID` misses and repeats nothing).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec-test-0123456789abcdef";

/// What a receiver got: each delivery's signature header and body.
type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on loopback: it keeps every delivery (signature header and body) and
/// answers 503 while it is "down".
#[derive(Clone, Default)]
struct Receiver {
    got: Deliveries,
    down: Arc<std::sync::atomic::AtomicBool>,
    /// Answers only after this long.
    slow: Arc<std::sync::Mutex<Duration>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let r = r.clone();
                    async move {
                        let slow = *r.slow.lock().unwrap();
                        tokio::time::sleep(slow).await;
                        if r.down.load(std::sync::atomic::Ordering::SeqCst) {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let signature = headers
                            .get("genq-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        r.got.lock().unwrap().push((signature, body.to_vec()));
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    /// Every delivery so far, each signature checked.
    fn events(&self) -> Vec<Value> {
        let now = chrono::Utc::now().timestamp();
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(signature, body)| {
                genq_core::signature::verify(SECRET.as_bytes(), signature, body, now, 300)
                    .unwrap_or_else(|e| panic!("a delivery's signature: {e}"));
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    async fn until(&self, limit: Duration, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.events();
            if done(&events) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn types_of(events: &[Value], job: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["data"]["id"] == job)
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_hears_each_change_once_in_order_and_signed() {
    let (receiver, url) = Receiver::start().await;
    let s = TestServer::start(config(&format!(
        "[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n"
    )))
    .await;
    let (status, job) = s
        .post(
            "/v1/jobs",
            json!({"kind": "fast.retry", "user_id": "u1",
                "payload": {"simulate": {"fail": "temporary", "fail_attempts": 2}}}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    receiver
        .until(Duration::from_secs(10), "job.succeeded", |events| {
            types_of(events, id).last().map(String::as_str) == Some("job.succeeded")
        })
        .await;
    let events = receiver.events();
    assert_eq!(
        types_of(&events, id),
        [
            "job.queued",
            "job.started",
            "job.retrying",
            "job.retrying",
            "job.succeeded"
        ]
    );
    let mine: Vec<&Value> = events.iter().filter(|e| e["data"]["id"] == id).collect();
    // Each event once, each saying what it reports.
    let ids: HashSet<&str> = mine.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), mine.len());
    for (e, (state, attempt)) in mine.iter().zip([
        ("queued", 0),
        ("running", 1),
        ("retrying", 1),
        ("retrying", 2),
        ("succeeded", 3),
    ]) {
        assert_eq!(e["data"]["state"], state, "{e}");
        assert_eq!(e["data"]["attempt"], attempt, "{e}");
        assert!(e["created_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        mine[4]["data"]["result"]["echo"]["simulate"]["fail_attempts"],
        2
    );
    // The admin view of the endpoint, once the last delivery is recorded (the receiver may
    // have it before genq has written that it was answered).
    let deadline = Instant::now() + Duration::from_secs(10);
    let hooks = loop {
        let (status, hooks) = s.get("/v1/admin/webhooks").await;
        assert_eq!(status, 200, "{hooks}");
        if hooks["webhooks"][0]["backlog"] == 0 || Instant::now() > deadline {
            break hooks;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let hook = &hooks["webhooks"][0];
    assert_eq!(
        (hook["backlog"].as_u64(), hook["dead"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(hook["last_success_at"].is_string());
    assert!(!hook.to_string().contains(SECRET));
    s.shutdown().await;
}

/// An endpoint that answers after 5 s (past its 1 s timeout) holds up neither the other
/// endpoint nor the jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_holds_up_no_other_endpoint_and_no_job() {
    let (slow, slow_url) = Receiver::start().await;
    *slow.slow.lock().unwrap() = Duration::from_secs(5);
    let (fast, fast_url) = Receiver::start().await;
    let s = TestServer::start(config(&format!(
        "[[webhooks]]\nurl = \"{slow_url}\"\nsecret = \"{SECRET}\"\ntimeout = \"1s\"\n\
         [[webhooks]]\nurl = \"{fast_url}\"\nsecret = \"{SECRET}\"\n"
    )))
    .await;
    let began = Instant::now();
    let (status, out) = s
        .post(
            "/v1/batches",
            json!({"kind": "card.generate", "user_id": "u1", "items": [{}, {}, {}, {}, {}]}),
        )
        .await;
    assert_eq!(status, 201, "{out}");
    fast.until(
        Duration::from_secs(5),
        "every event at the fast endpoint",
        |events| events.iter().any(|e| e["type"] == "batch.completed"),
    )
    .await;
    assert_eq!(fast.events().len(), 16, "5 jobs × 3 events and the batch");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert!(
        slow.events().is_empty(),
        "the slow endpoint has answered nothing yet"
    );
    let (_, stats) = s.get("/v1/stats").await;
    assert_eq!(stats["jobs"]["succeeded"], 5);
    s.shutdown().await;
}

/// Read SSE frames from `response` until `stop` says so; each as (id, type, body).
async fn read_sse(
    response: &mut reqwest::Response,
    mut stop: impl FnMut(&(i64, String, Value)) -> bool,
) -> Vec<(i64, String, Value)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let (Some(id), Some(kind), Some(data)) =
                (field("id:"), field("event:"), field("data:"))
            else {
                continue; // a keep-alive comment
            };
            let event = (
                id.parse().unwrap(),
                kind,
                serde_json::from_str(&data).unwrap(),
            );
            let done = stop(&event);
            out.push(event);
            if done {
                return out;
            }
        }
        let chunk = tokio::time::timeout_at(deadline.into(), response.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn events_stream(s: &TestServer, query: &str, last: Option<i64>) -> reqwest::Response {
    let mut req = s
        .http
        .get(format!("{}/v1/events{query}", s.url))
        .bearer_auth(APP);
    if let Some(last) = last {
        req = req.header("Last-Event-ID", last.to_string());
    }
    let response = req.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_without_gaps_or_repeats() {
    let s = TestServer::start(config("")).await;
    let mut live = events_stream(&s, "", None).await;
    let (status, out) = s
        .post(
            "/v1/batches",
            json!({"kind": "card.generate", "user_id": "u1", "items": [{}, {}, {}]}),
        )
        .await;
    assert_eq!(status, 201, "{out}");
    let batch = out["batch"]["id"].as_str().unwrap().to_string();
    let all = read_sse(&mut live, |e| e.1 == "batch.completed").await;
    drop(live);
    let count = |t: &str| all.iter().filter(|e| e.1 == t).count();
    assert_eq!(
        (
            count("job.queued"),
            count("job.started"),
            count("job.succeeded")
        ),
        (3, 3, 3)
    );
    assert_eq!(all.len(), 10, "{all:?}");
    assert_eq!(all.last().unwrap().2["data"]["id"], batch.as_str());
    assert_eq!(all.last().unwrap().2["data"]["succeeded"], 3);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ids grow");
    // Reconnect after the fourth: exactly the rest.
    let mut again = events_stream(&s, "", Some(all[3].0)).await;
    let rest = read_sse(&mut again, |e| e.1 == "batch.completed").await;
    assert_eq!(
        rest.iter().map(|e| e.0).collect::<Vec<_>>(),
        all[4..].iter().map(|e| e.0).collect::<Vec<_>>()
    );
    // One batch from the beginning, filtered by type.
    let mut replay = events_stream(
        &s,
        &format!("?batch_id={batch}&after=0&types=job.succeeded,batch.completed"),
        None,
    )
    .await;
    let done = read_sse(&mut replay, |e| e.1 == "batch.completed").await;
    assert_eq!(done.len(), 4);
    // Bad filters are refused.
    let (status, body) = s
        .call(
            Method::GET,
            "/v1/events?types=job.exploded",
            Some(APP),
            None,
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
    s.shutdown().await;
}

fn write_config(dir: &std::path::Path, database: &str, hook: &str) {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
database = "{database}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
initial_credits = 1000
[worker]
poll_interval = "100ms"
[[providers]]
name = "demo"
type = "demo"
latency = "10ms"
[[kinds]]
name = "card.generate"
provider = "demo"
cost = 1
[[webhooks]]
url = "{hook}"
secret = "{SECRET}"
timeout = "1s"
"#
    );
    std::fs::write(dir.join("genq.toml"), text).unwrap();
}

/// The receiver is down while 20 jobs run and genq is SIGKILLed; it comes back, genq restarts:
/// every event arrives (some perhaps twice, the same id), in order per job, and a refused
/// request tells nothing.
async fn nothing_is_lost_across_an_outage_and_a_kill(database: &str) {
    let (receiver, hook) = Receiver::start().await;
    receiver
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), database, &hook);
    let genq = Process::serve(dir.path());
    let items: Vec<Value> = (0..20).map(|i| json!({"n": i})).collect();
    let (status, out) = client_call(
        &genq.url,
        Method::POST,
        "/v1/batches",
        Some(json!({"kind": "card.generate", "user_id": "u1", "items": items})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    let jobs: Vec<String> = out["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // Refused whole inside its transaction (over the free plan's 5 a day): no job, no event.
    let (status, _) = client_call(
        &genq.url,
        Method::PUT,
        "/v1/users/u2",
        Some(json!({"plan": "free"})),
    )
    .await;
    assert_eq!(status, 200);
    let six: Vec<Value> = (0..6).map(|i| json!({"n": i})).collect();
    let (status, refused) = client_call(
        &genq.url,
        Method::POST,
        "/v1/batches",
        Some(json!({"kind": "card.generate", "user_id": "u2", "items": six})),
    )
    .await;
    assert_eq!(status.as_u16(), 429, "{refused}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, stats) = client_call(&genq.url, Method::GET, "/v1/stats", None).await;
        if stats["jobs"]["succeeded"] == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    genq.signal("KILL");
    drop(genq);
    receiver
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let genq = Process::serve(dir.path());
    // Deliveries that failed wait for their retry (5 s after the first failure).
    receiver
        .until(Duration::from_secs(60), "every event", |events| {
            let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
            ids.len() >= 61
        })
        .await;
    let events = receiver.events();
    // Receivers dedupe by id: each id always carries the same event.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for e in &events {
        let id = e["id"].as_str().unwrap().to_string();
        if let Some(seen) = by_id.get(&id) {
            assert_eq!(seen["type"], e["type"]);
        }
        by_id.insert(id, e.clone());
    }
    assert_eq!(by_id.len(), 61, "3 per job, and the batch's completion");
    for job in &jobs {
        // First deliveries, in the order received.
        let mut seen = HashSet::new();
        let first: Vec<&str> = events
            .iter()
            .filter(|e| e["data"]["id"] == job.as_str())
            .filter(|e| seen.insert(e["id"].as_str().unwrap().to_string()))
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            first,
            ["job.queued", "job.started", "job.succeeded"],
            "{job}"
        );
    }
    assert!(events.iter().all(|e| e["data"]["user_id"] != "u2"));
    drop(genq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_lose_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("genq.db").display());
    nothing_is_lost_across_an_outage_and_a_kill(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_lose_nothing_on_postgres() {
    let db = Database::create().await;
    nothing_is_lost_across_an_outage_and_a_kill(&db.url()).await;
    db.drop_it().await;
}

/// `genq batch submit --wait` follows the event stream to the end: the README's first demo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_submit_waits_on_the_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("genq.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n[auth]\nadmin_tokens = [\"{ADMIN}\"]\n[users]\ninitial_credits = 10\n"
        ),
    )
    .unwrap();
    let genq = Process::serve(dir.path());
    let cards = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cards.jsonl");
    let url = genq.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(genq_bin())
            .args([
                "batch",
                "submit",
                cards,
                "--kind",
                "card.generate",
                "--user",
                "u1",
                "--wait",
            ])
            .args(["--url", &url, "--token", ADMIN])
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("--wait returned")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The demo: one card is rejected as the user's fault, one fails once and is retried.
    assert!(
        stdout.contains("finished: 4 succeeded, 1 failed or canceled"),
        "{stdout}"
    );
    drop(genq);
}

/// The README's receiver (examples/webhook_receiver.py) checks genq's signatures and sees every
/// event of a job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_receiver_accepts_genqs_signatures() {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/webhook_receiver.py"
    );
    let mut python = std::process::Command::new("python3")
        .arg(script)
        .env("GENQ_WEBHOOK_SECRET", SECRET)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the receiver did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = TestServer::start(config(&format!(
        "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\nsecret = \"{SECRET}\"\n"
    )))
    .await;
    let (_, job) = s
        .post(
            "/v1/jobs",
            json!({"kind": "card.generate", "user_id": "u1", "payload": {}}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let lines = std::io::BufReader::new(python.stdout.take().unwrap()).lines();
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in lines {
            let line = line.unwrap();
            let done = line == format!("job.succeeded {id}");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let seen = tokio::time::timeout(Duration::from_secs(15), seen)
        .await
        .expect("the receiver printed the job's success")
        .unwrap();
    let _ = python.kill();
    let _ = python.wait();
    let types: Vec<&str> = seen.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        types,
        ["job.queued", "job.started", "job.succeeded"],
        "{seen:?}"
    );
    s.shutdown().await;
}

/// A redirect is not followed: the delivery fails and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_do_not_follow_redirects() {
    let (receiver, target) = Receiver::start().await;
    let app = axum::Router::new().route(
        "/moved",
        axum::routing::post(move || {
            let target = target.clone();
            async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, target)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = format!("http://{}/moved", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = TestServer::start(config(&format!(
        "[[webhooks]]\nurl = \"{moved}\"\nsecret = \"{SECRET}\"\n"
    )))
    .await;
    s.post(
        "/v1/jobs",
        json!({"kind": "card.generate", "user_id": "u1", "payload": {}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, hooks) = s.get("/v1/admin/webhooks").await;
        if let Some(error) = hooks["webhooks"][0]["last_error"].as_str() {
            assert!(error.contains("redirects are not followed"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "{hooks}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        receiver.events().is_empty(),
        "nothing reached the redirect's target"
    );
    s.shutdown().await;
}
