//! What an outside probe found, each shown over real HTTP on a real genq: worker scope, bounded
//! listings, connection limits and timeouts (with raw sockets, bounded in count and time),
//! provider keys redacted, strict bodies and queries, reads that write nothing, and answers
//! that never leak internals.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Send `request` on a fresh connection and read until the server closes it or `limit` passes;
/// what came back, and how long the server took to close.
async fn raw(url: &str, request: &[u8], limit: Duration) -> (String, Option<Duration>) {
    let mut conn = TcpStream::connect(host(url)).await.unwrap();
    let start = Instant::now();
    conn.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout_at((start + limit).into(), conn.read(&mut buf)).await {
            Err(_) => break None,
            Ok(Ok(0)) | Ok(Err(_)) => break Some(start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The status and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(text: &str) -> (u16, Value) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn assert_shape(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_error(
        reqwest::StatusCode::from_u16(status).unwrap(),
        body,
        want_status,
        want_code,
    );
}

/// Enqueue one job of `kind` for u1, then claim with `token` for that kind.
async fn enqueue_and_claim(
    s: &TestServer,
    kind: &str,
    token: &str,
) -> (reqwest::StatusCode, Value) {
    s.post(
        "/v1/jobs",
        json!({"kind": kind, "user_id": "u1", "payload": {}}),
    )
    .await;
    s.call(
        Method::POST,
        "/v1/workers/claim",
        Some(token),
        Some(json!({"worker_id": "w1", "kinds": [kind]})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_token_claims_only_external_kinds() {
    let s = TestServer::start_with(config(""), false).await;
    for token in [WORKER, ADMIN] {
        let (status, body) = enqueue_and_claim(&s, "card.generate", token).await;
        assert_error(status, &body, 400, "invalid_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("card.generate"),
            "{body}"
        );
    }
    // The jobs were not touched; an external kind is claimed as before.
    let (_, page) = s.get("/v1/jobs?state=queued").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (status, claimed) = enqueue_and_claim(&s, "report.weekly", WORKER).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["jobs"][0]["kind"], "report.weekly");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_pages_are_bounded_in_bytes_and_still_list_every_job() {
    let mut c = config("");
    c.api.max_body_bytes = 2 << 20;
    c.api.list_page_bytes = 1 << 20;
    let s = TestServer::start_with(c, false).await;
    let blob = "x".repeat(300_000);
    let mut ids = Vec::new();
    for _ in 0..12 {
        let (status, job) = s
            .post(
                "/v1/jobs",
                json!({"kind": "card.generate", "user_id": "u1", "payload": {"blob": blob}}),
            )
            .await;
        assert_eq!(status, 201);
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=200&cursor={c}"),
            None => "/v1/jobs?limit=200".to_string(),
        };
        let resp = s
            .http
            .get(format!("{}{path}", s.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        // Three jobs of 300 kB fit in 1 MiB, a fourth would not.
        assert!(bytes.len() < (1 << 20) + 10_000, "{} bytes", bytes.len());
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        seen.extend(items.iter().map(|j| j["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once, newest first");
    s.shutdown().await;
}

fn limits_config() -> genq_config::Config {
    let mut c = config("");
    c.api.header_timeout = Duration::from_millis(800);
    c.api.body_timeout = Duration::from_millis(800);
    c.api.max_connections = 8;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed() {
    let s = TestServer::start_with(limits_config(), false).await;
    let limit = Duration::from_secs(5);
    // Idle: nothing sent at all.
    let (got, closed) = raw(&s.url, b"", limit).await;
    assert!(got.is_empty(), "{got}");
    let closed = closed.expect("an idle connection is closed");
    assert!(closed >= Duration::from_millis(700), "{closed:?}");
    // Half a request head.
    let (got, closed) = raw(&s.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", limit).await;
    assert!(got.is_empty(), "{got}");
    assert!(closed.is_some(), "a partial head is given up on");
    // Idle after an answer (keep-alive): the answer, then the close.
    let (got, closed) = raw(&s.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", limit).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(closed.is_some(), "an idle keep-alive connection is closed");
    // Half a body: 408 in the error shape, then the close.
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\":"
    );
    let (got, closed) = raw(&s.url, head.as_bytes(), limit).await;
    let (status, body) = parse_answer(&got);
    assert_shape(status, &body, 408, "request_timeout");
    assert!(closed.is_some());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_declared_body_is_refused_before_it_is_read() {
    let s = TestServer::start_with(limits_config(), false).await;
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n{{}}"
    );
    let start = Instant::now();
    let (got, _) = raw(&s.url, head.as_bytes(), Duration::from_secs(5)).await;
    let (status, body) = parse_answer(&got);
    assert_shape(status, &body, 413, "payload_too_large");
    // At once: well before any timeout could have fired.
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    s.shutdown().await;
}

/// A client still writing a body over the limit when the 413 is ready (HTTP clients read the
/// answer once they have sent the body) gets the 413, not a connection reset mid-body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_an_oversized_body_reads_the_413() {
    let s = TestServer::start_with(limits_config(), false).await;
    let mut conn = TcpStream::connect(host(&s.url)).await.unwrap();
    let chunk = vec![b'x'; 20_000];
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        chunk.len() * 10
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // A slow client: the server has answered long before the body ends.
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = conn.write_all(&chunk).await {
            panic!("the connection was reset after {i} of 10 chunks: {e}");
        }
    }
    let mut got = Vec::new();
    conn.read_to_end(&mut got).await.expect("the answer");
    let (status, body) = parse_answer(&String::from_utf8_lossy(&got));
    assert_shape(status, &body, 413, "payload_too_large");
    // A client that waits to be asked for its body (`Expect: 100-continue`) is not asked: it
    // gets the 413 instead of a 100.
    let waiting = head.replace(
        "Connection: close",
        "Connection: close\r\nExpect: 100-continue",
    );
    let (got, _) = raw(&s.url, waiting.as_bytes(), Duration::from_secs(5)).await;
    let (status, body) = parse_answer(&got);
    assert_shape(status, &body, 413, "payload_too_large");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let s = TestServer::start_with(limits_config(), false).await;
    // Eight connections that never send a byte hold every slot until the header timeout.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(host(&s.url)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let (status, _) = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    // Served only once an idle connection was closed by its header timeout (800 ms).
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "served after {:?} with every slot held",
        start.elapsed()
    );
    drop(idle);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_hyper_writes_itself_have_the_error_shape() {
    let s = TestServer::start_with(config(""), false).await;
    let limit = Duration::from_secs(5);
    // Headers over 32 KiB: 431.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let (got, _) = raw(&s.url, big.as_bytes(), limit).await;
    let (status, body) = parse_answer(&got);
    assert_shape(status, &body, 431, "headers_too_large");
    // A URI over 8 KiB: 414.
    let long = format!(
        "GET /v1/jobs?user_id={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\r\n",
        "u".repeat(10_000)
    );
    let (got, _) = raw(&s.url, long.as_bytes(), limit).await;
    let (status, body) = parse_answer(&got);
    assert_shape(status, &body, 414, "uri_too_long");
    // Not HTTP at all: 400.
    let (got, _) = raw(&s.url, b"HELLO\x01\x02 there\r\n\r\n", limit).await;
    let (status, body) = parse_answer(&got);
    assert_shape(status, &body, 400, "invalid_request");
    s.shutdown().await;
}

/// An upstream that echoes the Authorization header it received: in a 500 on the first
/// attempt, in its answer on the next.
async fn echoing_upstream() -> String {
    use axum::http::HeaderMap;
    async fn chat(headers: HeaderMap) -> (axum::http::StatusCode, String) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let attempt = headers
            .get("x-genq-attempt")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if attempt == "1" {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("upstream failed; request had Authorization: {auth}"),
            )
        } else {
            let mut echo = serde_json::Map::new();
            echo.insert("authorization".into(), json!(auth));
            echo.insert(auth, json!(1));
            (
                axum::http::StatusCode::OK,
                json!({"echo": echo, "usage": {"total_tokens": 1}}).to_string(),
            )
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/chat/completions", axum::routing::post(chat));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_keys_echoed_by_an_upstream_are_never_kept() {
    const KEY: &str = "sk-hardening-secret-0123456789";
    let upstream = echoing_upstream().await;
    let s = TestServer::start(config(&format!(
        r#"
[[providers]]
name = "echo"
type = "http"
base_url = "{upstream}"
keys = ["{KEY}"]

[[kinds]]
name = "chat.echo"
provider = "echo"
path = "/chat/completions"
retry_delays = ["10ms"]
"#
    )))
    .await;
    let (_, job) = s
        .post(
            "/v1/jobs",
            json!({"kind": "chat.echo", "user_id": "u1", "payload": {"messages": []}}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    let done = s.until_state(id, "succeeded").await;
    let text = done.to_string();
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    // Stored: the result, and the first attempt's error detail kept on the job.
    let stored = s.store.job(id).await.unwrap();
    let stored = serde_json::to_string(&(stored.result, stored.error.map(|e| e.detail))).unwrap();
    assert!(!stored.contains(KEY), "{stored}");
    assert!(stored.contains("Bearer [redacted]"), "{stored}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_workers_report_is_redacted_too() {
    let s = TestServer::start_with(
        config(
            r#"
[[providers]]
name = "paid"
type = "http"
base_url = "http://127.0.0.1:9"
keys = ["sk-worker-leak-0123456789"]
"#,
        ),
        false,
    )
    .await;
    let (_, claimed) = enqueue_and_claim(&s, "report.weekly", WORKER).await;
    let job = &claimed["jobs"][0];
    let (id, token) = (
        job["id"].as_str().unwrap(),
        job["lease_token"].as_str().unwrap(),
    );
    let (status, failed) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/fail"),
            Some(WORKER),
            Some(json!({"lease_token": token, "class": "user_error",
                "message": "rejected", "detail": "key sk-worker-leak-0123456789 refused"})),
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(
        failed["error"]["detail"],
        "rejected: key [redacted] refused"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_with_anything_after_the_json_are_refused() {
    let s = TestServer::start_with(config(""), false).await;
    let job = r#"{"kind": "card.generate", "user_id": "u1", "payload": {}}"#;
    for body in [
        format!("{job} GARBAGE{{{{{{"),
        format!("{job}{job}"),
        format!("{job},"),
    ] {
        let resp = s
            .http
            .post(format!("{}/v1/jobs", s.url))
            .bearer_auth(ADMIN)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_error(status, &body, 400, "invalid_request");
    }
    let (_, page) = s.get("/v1/jobs").await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_user_writes_nothing() {
    let s = TestServer::start_with(config(""), false).await;
    let day = genq_config::Quota::default().day(chrono::Utc::now());
    for i in 0..20 {
        let (status, body) = s.get(&format!("/v1/users/ghost-{i}")).await;
        assert_error(status, &body, 404, "not_found");
        assert!(matches!(
            s.store.user(&format!("ghost-{i}"), &day).await,
            Err(genq_store::StoreError::NotFound)
        ));
    }
    let (status, ledger) = s.get("/v1/users/ghost-1/ledger").await;
    assert_eq!(status, 200);
    assert!(ledger["items"].as_array().unwrap().is_empty());
    // Once a job names the user, it exists.
    s.post(
        "/v1/jobs",
        json!({"kind": "card.generate", "user_id": "ghost-1", "payload": {}}),
    )
    .await;
    let (status, user) = s.get("/v1/users/ghost-1").await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["unfinished"], 1);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_invisible_or_unsafe_characters_are_refused() {
    let s = TestServer::start_with(config(""), false).await;
    for user in [
        "alice\u{200b}",
        "\u{202e}alice",
        "\u{feff}alice",
        "alice bob",
        "al/ice",
        "алиса",
    ] {
        let (status, body) = s
            .post(
                "/v1/jobs",
                json!({"kind": "card.generate", "user_id": user, "payload": {}}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_request");
        assert_eq!(body["error"]["details"]["field"], "user_id", "{body}");
    }
    // A query value that is not UTF-8 once decoded is refused, not read as U+FFFD.
    let (status, body) = s.get("/v1/jobs?user_id=%ff").await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = s.get("/v1/jobs?kind=null").await;
    assert_error(status, &body, 400, "unknown_kind");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_must_match_whole() {
    let s = TestServer::start_with(config(""), false).await;
    let almost = format!("{}x", &ADMIN[..ADMIN.len() - 1]);
    for token in [&ADMIN[..ADMIN.len() - 1], almost.as_str(), "", "admin"] {
        let (status, body) = s.call(Method::GET, "/v1/stats", Some(token), None).await;
        assert_error(status, &body, 401, "unauthorized");
    }
    for token in [ADMIN, APP] {
        let (status, _) = s.call(Method::GET, "/v1/stats", Some(token), None).await;
        assert_eq!(status, 200);
    }
    s.shutdown().await;
}
