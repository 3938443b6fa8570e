//! The HTTP API over real HTTP against a real SQLite file: every endpoint, and the bad-input
//! cases, which must all be 4xx with the SPEC's error shape.

mod common;

use common::*;
use genq_config::Mode;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

fn job(kind: &str, user: &str) -> Value {
    json!({"kind": kind, "user_id": user, "payload": {"title": "mug"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scopes() {
    let s = TestServer::start(config("")).await;
    let (status, body) = s.call(Method::GET, "/v1/stats", None, None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = s
        .call(Method::GET, "/v1/stats", Some("wrong-token"), None)
        .await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/jobs",
            Some(WORKER),
            Some(job("card.generate", "u1")),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, created) = s
        .call(
            Method::POST,
            "/v1/jobs",
            Some(APP),
            Some(job("card.generate", "u1")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/retry"),
            Some(APP),
            None,
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/workers/claim",
            Some(APP),
            Some(json!({"worker_id": "w", "kinds": ["report.weekly"]})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let (status, _) = s.call(Method::GET, path, None, None).await;
        assert_eq!(status, 200, "{path}");
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_get_and_idempotency() {
    let s = TestServer::start(config("")).await;
    let mut body = job("card.generate", "u1");
    body["idempotency_key"] = json!("order-17");
    body["priority"] = json!(5);
    let (status, first) = s.post("/v1/jobs", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    for field in [
        "id",
        "kind",
        "user_id",
        "batch_id",
        "state",
        "priority",
        "attempt",
        "max_retries",
        "payload",
        "result",
        "error",
        "cost",
        "idempotency_key",
        "run_at",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(
        (
            first["state"].as_str(),
            first["priority"].as_i64(),
            first["cost"].as_i64()
        ),
        (Some("queued"), Some(5), Some(1))
    );
    let (status, again) = s.post("/v1/jobs", body).await;
    assert_eq!(status, 200, "a repeat answers 200 with the original");
    assert_eq!(again["id"], first["id"]);
    // The key may come as a header too.
    let resp = s
        .http
        .post(format!("{}/v1/jobs", s.url))
        .bearer_auth(ADMIN)
        .header("Idempotency-Key", "order-17")
        .json(&job("card.generate", "u1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], first["id"]);
    let id = first["id"].as_str().unwrap();
    let done = s.until_state(id, "succeeded").await;
    assert_eq!(done["result"]["echo"], json!({"title": "mug"}));
    assert!(done["error"].is_null());
    let (status, body) = s.get("/v1/jobs/0193-not-there").await;
    assert_error(status, &body, 404, "not_found");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_with_the_error_shape() {
    let s = TestServer::start(config("")).await;
    let long = "x".repeat(300);
    let items =
        |n: usize| json!({"kind": "card.generate", "user_id": "u1", "items": vec![json!({}); n]});
    // (what, method, path, body, status, code)
    type Case<'a> = (&'a str, Method, String, Option<Value>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong type",
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"kind": 5, "user_id": "u", "payload": {}})),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "payload": {}, "colour": 1})),
            400,
            "invalid_request",
        ),
        (
            "missing field",
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"kind": "card.generate", "payload": {}})),
            400,
            "invalid_request",
        ),
        (
            "payload not an object",
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "payload": [1]})),
            400,
            "invalid_request",
        ),
        (
            "unknown kind",
            Method::POST,
            "/v1/jobs".into(),
            Some(job("nope.generate", "u1")),
            400,
            "unknown_kind",
        ),
        (
            "user id too long",
            Method::POST,
            "/v1/jobs".into(),
            Some(job("card.generate", &long)),
            400,
            "invalid_request",
        ),
        (
            "empty user id",
            Method::POST,
            "/v1/jobs".into(),
            Some(job("card.generate", "")),
            400,
            "invalid_request",
        ),
        (
            "run_at and delay_ms",
            Method::POST,
            "/v1/jobs".into(),
            Some(
                json!({"kind": "card.generate", "user_id": "u", "payload": {}, "delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}),
            ),
            400,
            "invalid_request",
        ),
        (
            "bad run_at",
            Method::POST,
            "/v1/jobs".into(),
            Some(
                json!({"kind": "card.generate", "user_id": "u", "payload": {}, "run_at": "tomorrow"}),
            ),
            400,
            "invalid_request",
        ),
        (
            "negative delay",
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "payload": {}, "delay_ms": -5})),
            400,
            "invalid_request",
        ),
        (
            "priority overflow",
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "payload": {}, "priority": 1e12})),
            400,
            "invalid_request",
        ),
        (
            "idempotency key too long",
            Method::POST,
            "/v1/jobs".into(),
            Some(
                json!({"kind": "card.generate", "user_id": "u", "payload": {}, "idempotency_key": long}),
            ),
            400,
            "invalid_request",
        ),
        (
            "batch too large",
            Method::POST,
            "/v1/batches".into(),
            Some(items(201)),
            400,
            "batch_too_large",
        ),
        (
            "empty batch",
            Method::POST,
            "/v1/batches".into(),
            Some(items(0)),
            400,
            "invalid_request",
        ),
        (
            "copies 0",
            Method::POST,
            "/v1/batches".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "items": [{}], "copies": 0})),
            400,
            "invalid_request",
        ),
        (
            "copies 6",
            Method::POST,
            "/v1/batches".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "items": [{}], "copies": 6})),
            400,
            "invalid_request",
        ),
        (
            "item not an object",
            Method::POST,
            "/v1/batches".into(),
            Some(json!({"kind": "card.generate", "user_id": "u", "items": [{}, "x"]})),
            400,
            "invalid_request",
        ),
        (
            "id too long",
            Method::GET,
            format!("/v1/jobs/{long}"),
            None,
            400,
            "invalid_request",
        ),
        (
            "bad cursor",
            Method::GET,
            "/v1/jobs?cursor=zzz".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "limit 0",
            Method::GET,
            "/v1/jobs?limit=0".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "limit 201",
            Method::GET,
            "/v1/jobs?limit=201".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "limit not a number",
            Method::GET,
            "/v1/jobs?limit=ten".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "unknown state",
            Method::GET,
            "/v1/jobs?state=processing".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "unknown query parameter",
            Method::GET,
            "/v1/jobs?colour=red".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "unknown batch",
            Method::GET,
            "/v1/batches/nope".into(),
            None,
            404,
            "not_found",
        ),
        (
            "unknown route",
            Method::GET,
            "/v1/nothing".into(),
            None,
            404,
            "not_found",
        ),
        (
            "wrong method",
            Method::DELETE,
            "/v1/jobs".into(),
            None,
            405,
            "method_not_allowed",
        ),
        (
            "claim unknown kind",
            Method::POST,
            "/v1/workers/claim".into(),
            Some(json!({"worker_id": "w", "kinds": ["nope"]})),
            400,
            "unknown_kind",
        ),
        (
            "claim max 0",
            Method::POST,
            "/v1/workers/claim".into(),
            Some(json!({"worker_id": "w", "kinds": ["report.weekly"], "max": 0})),
            400,
            "invalid_request",
        ),
        (
            "fail with an unknown class",
            Method::POST,
            "/v1/jobs/x/fail".into(),
            Some(json!({"lease_token": "t", "class": "oops"})),
            400,
            "invalid_request",
        ),
        (
            "complete unknown job",
            Method::POST,
            "/v1/jobs/x/complete".into(),
            Some(json!({"lease_token": "t", "result": {}})),
            404,
            "not_found",
        ),
    ];
    for (name, method, path, body, want_status, want_code) in cases {
        let (status, resp) = s.call(method, &path, Some(ADMIN), body).await;
        assert_eq!(status.as_u16(), want_status, "{name}: {resp}");
        assert_eq!(resp["error"]["code"], want_code, "{name}: {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: {resp}"
        );
    }

    // Bodies that are not JSON at all.
    let raw = |body: &'static str, content_type: &'static str| {
        s.http
            .post(format!("{}/v1/jobs", s.url))
            .bearer_auth(ADMIN)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    for (body, ct) in [
        ("{not json", "application/json"),
        ("", "application/json"),
        ("{\"kind\": \"card.generate\"", "application/json"),
        ("kind=card", "application/x-www-form-urlencoded"),
        ("\u{0}\u{1}", "application/json"),
    ] {
        let resp = raw(body, ct).await.unwrap();
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_error(status, &json, 400, "invalid_request");
    }
    // Over api.max_body_bytes (64 KiB here).
    let big =
        json!({"kind": "card.generate", "user_id": "u", "payload": {"text": "x".repeat(70_000)}});
    let (status, resp) = s.post("/v1/jobs", big).await;
    assert_error(status, &resp, 413, "payload_too_large");
    // Nothing of the above was enqueued.
    let (_, page) = s.get("/v1/jobs").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_copies_run_to_completion() {
    let s = TestServer::start(config("")).await;
    let items: Vec<Value> = (0..10).map(|i| json!({"n": i})).collect();
    let (status, out) = s
        .post(
            "/v1/batches",
            json!({"kind": "card.generate", "user_id": "u1", "items": items, "copies": 3}),
        )
        .await;
    assert_eq!(status, 201, "{out}");
    let ids = out["job_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 30);
    assert_eq!(out["batch"]["total"], 30);
    let batch_id = out["batch"]["id"].as_str().unwrap();
    let mut batch = Value::Null;
    for _ in 0..500 {
        batch = s.get(&format!("/v1/batches/{batch_id}")).await.1;
        if !batch["finished_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(batch["succeeded"], 30, "{batch}");
    for key in [
        "id",
        "user_id",
        "kind",
        "total",
        "queued",
        "running",
        "retrying",
        "succeeded",
        "failed",
        "canceled",
        "created_at",
        "finished_at",
    ] {
        assert!(batch.get(key).is_some(), "{key}");
    }
    // Copies of one item are separate jobs with the same payload.
    let (_, first) = s
        .get(&format!("/v1/jobs/{}", ids[0].as_str().unwrap()))
        .await;
    let (_, third) = s
        .get(&format!("/v1/jobs/{}", ids[2].as_str().unwrap()))
        .await;
    assert_eq!(first["payload"], third["payload"]);
    assert_ne!(first["id"], third["id"]);
    let (_, page) = s
        .get(&format!("/v1/jobs?batch_id={batch_id}&limit=200"))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 30);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pages_never_repeat_or_skip_while_jobs_arrive() {
    let s = TestServer::start_with(config(""), false).await;
    let mut created = Vec::new();
    for i in 0..23 {
        let (_, j) = s
            .post("/v1/jobs", job("card.generate", &format!("u{}", i % 3)))
            .await;
        created.push(j["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=5&cursor={c}"),
            None => "/v1/jobs?limit=5".to_string(),
        };
        let (status, page) = s.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string()),
        );
        s.post("/v1/jobs", job("card.generate", "late")).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
    let (_, filtered) = s
        .get("/v1/jobs?user_id=u1&state=queued&kind=card.generate")
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 8);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_admin_retry() {
    let s = TestServer::start(config("")).await;
    let mut delayed = job("card.generate", "u1");
    delayed["delay_ms"] = json!(60_000);
    let (_, j) = s.post("/v1/jobs", delayed).await;
    let id = j["id"].as_str().unwrap().to_string();
    let (status, canceled) = s.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["state"], "canceled");
    assert_eq!(canceled["error"]["class"], "canceled");
    let (status, body) = s.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_error(status, &body, 409, "conflict");
    let (status, requeued) = s.post(&format!("/v1/jobs/{id}/retry"), json!({})).await;
    assert_eq!(status, 200, "{requeued}");
    assert_eq!(requeued["state"], "queued");
    s.until_state(&id, "succeeded").await;
    let (status, body) = s.post(&format!("/v1/jobs/{id}/retry"), json!({})).await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = s.post("/v1/jobs/missing/cancel", json!({})).await;
    assert_error(status, &body, 404, "not_found");

    // A running job: canceled at once, and its attempt is stopped.
    let mut slow = job("card.generate", "u2");
    slow["payload"] = json!({"simulate": {"latency_ms": 5_000}});
    let (_, j) = s.post("/v1/jobs", slow).await;
    let id = j["id"].as_str().unwrap();
    s.until_state(id, "running").await;
    let (status, canceled) = s.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(
        (status.as_u16(), canceled["state"].as_str()),
        (200, Some("canceled"))
    );
    for _ in 0..200 {
        if s.engine.shared().active.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        s.engine.shared().active.is_empty(),
        "the attempt was stopped"
    );
    assert_eq!(
        s.get(&format!("/v1/jobs/{id}")).await.1["state"],
        "canceled"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_and_explained() {
    let s = TestServer::start(config("")).await;
    let (_, j) = s.post("/v1/jobs", json!({"kind": "fast.retry", "user_id": "u1", "payload": {"simulate": {"fail": "temporary"}}})).await;
    let id = j["id"].as_str().unwrap();
    let failed = s.until_state(id, "failed").await;
    assert_eq!(failed["attempt"], 3, "first attempt plus max_retries = 2");
    assert_eq!(failed["error"]["class"], "temporary");
    assert_eq!(
        failed["error"]["message"],
        "The generation service is temporarily unavailable. Your credits have been refunded."
    );
    assert!(
        failed["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("simulated temporary")
    );
    let (_, j) = s.post("/v1/jobs", json!({"kind": "fast.retry", "user_id": "u1", "payload": {"simulate": {"fail": "user_error"}}})).await;
    let rejected = s.until_state(j["id"].as_str().unwrap(), "failed").await;
    assert_eq!(
        (
            rejected["attempt"].as_u64(),
            rejected["error"]["class"].as_str()
        ),
        (Some(1), Some("user_error"))
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_hides_detail_from_non_admins() {
    let mut c = config("[messages]\nuser_error = \"Nope.\"\n");
    set_mode(&mut c, Mode::Production);
    let s = TestServer::start(c).await;
    let (_, j) = s.post("/v1/jobs", json!({"kind": "card.generate", "user_id": "u1", "payload": {"simulate": {"fail": "user_error"}}})).await;
    let id = j["id"].as_str().unwrap();
    s.until_state(id, "failed").await;
    let (_, as_app) = s
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(APP), None)
        .await;
    assert_eq!(
        as_app["error"],
        json!({"class": "user_error", "message": "Nope."})
    );
    let (_, as_admin) = s.get(&format!("/v1/jobs/{id}")).await;
    assert!(as_admin["error"]["detail"].is_string());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_workers_claim_heartbeat_complete_and_fail() {
    let s = TestServer::start(config("")).await;
    let claim = |wait_ms: u64| {
        s.call(Method::POST, "/v1/workers/claim", Some(WORKER),
        Some(json!({"worker_id": "py-1", "kinds": ["report.weekly"], "max": 10, "wait_ms": wait_ms})))
    };
    let started = std::time::Instant::now();
    let (status, empty) = claim(150).await;
    assert_eq!(status, 200);
    assert_eq!(empty["jobs"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "long-polls when nothing is ready"
    );

    // A long-poll is woken by an enqueue.
    let waiter = tokio::spawn({
        let (url, http) = (s.url.clone(), s.http.clone());
        async move {
            http.post(format!("{url}/v1/workers/claim"))
                .bearer_auth(WORKER)
                .json(&json!({"worker_id": "py-1", "kinds": ["report.weekly"], "wait_ms": 4000}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, j) = s
        .post(
            "/v1/jobs",
            json!({"kind": "report.weekly", "user_id": "system", "payload": {"week": 47}}),
        )
        .await;
    let claimed = waiter.await.unwrap();
    let job = &claimed["jobs"][0];
    assert_eq!(job["id"], j["id"]);
    assert_eq!(job["state"], "running");
    let id = job["id"].as_str().unwrap();
    let token = job["lease_token"].as_str().unwrap();
    assert!(job["lease_expires_at"].is_string());

    let (status, hb) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/heartbeat"),
            Some(WORKER),
            Some(json!({"lease_token": token})),
        )
        .await;
    assert_eq!(status, 200, "{hb}");
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/complete"),
            Some(WORKER),
            Some(json!({"lease_token": "forged", "result": {}})),
        )
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, done) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/complete"),
            Some(WORKER),
            Some(json!({"lease_token": token, "result": {"pdf": "r.pdf"}})),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["state"].as_str(), &done["result"]),
        (Some("succeeded"), &json!({"pdf": "r.pdf"}))
    );
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/heartbeat"),
            Some(WORKER),
            Some(json!({"lease_token": token})),
        )
        .await;
    assert_error(status, &body, 409, "conflict");

    // Fail: retried after the kind's delay, then claimable again.
    s.post(
        "/v1/jobs",
        json!({"kind": "report.weekly", "user_id": "system", "payload": {}}),
    )
    .await;
    let (_, claimed) = claim(1000).await;
    let job = &claimed["jobs"][0];
    let (id, token) = (
        job["id"].as_str().unwrap(),
        job["lease_token"].as_str().unwrap(),
    );
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/fail"),
            Some(WORKER),
            Some(json!({"lease_token": token, "class": "lease_expired"})),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, retrying) = s.call(Method::POST, &format!("/v1/jobs/{id}/fail"), Some(WORKER),
        Some(json!({"lease_token": token, "class": "temporary", "message": "upstream 503", "detail": "body", "retry_after_ms": 0}))).await;
    assert_eq!(status, 200, "{retrying}");
    assert_eq!(retrying["state"], "retrying");
    assert_eq!(retrying["error"]["detail"], "upstream 503: body");
    let (_, again) = claim(2000).await;
    assert_eq!(again["jobs"][0]["id"].as_str(), Some(id));
    assert_eq!(again["jobs"][0]["attempt"], 2);
    let token = again["jobs"][0]["lease_token"].as_str().unwrap();
    let (_, failed) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/fail"),
            Some(WORKER),
            Some(json!({"lease_token": token, "class": "user_error"})),
        )
        .await;
    assert_eq!(failed["state"], "failed");

    // A Retry-After far in the future is capped, not an overflow.
    s.post(
        "/v1/jobs",
        json!({"kind": "report.weekly", "user_id": "system", "payload": {}}),
    )
    .await;
    let (_, claimed) = claim(1000).await;
    let job = &claimed["jobs"][0];
    let (id, token) = (
        job["id"].as_str().unwrap(),
        job["lease_token"].as_str().unwrap(),
    );
    let (status, waiting) = s
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/fail"),
            Some(WORKER),
            Some(
                json!({"lease_token": token, "class": "rate_limited", "retry_after_ms": i64::MAX}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{waiting}");
    assert_eq!(waiting["state"], "retrying");
    let run_at = chrono::DateTime::parse_from_rfc3339(waiting["run_at"].as_str().unwrap()).unwrap();
    assert!(
        run_at < chrono::Utc::now() + chrono::Duration::days(2),
        "{run_at}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_wait_for_their_time() {
    let s = TestServer::start(config("")).await;
    let mut body = job("card.generate", "u1");
    body["delay_ms"] = json!(300);
    let (_, j) = s.post("/v1/jobs", body).await;
    let id = j["id"].as_str().unwrap();
    let run_at = chrono::DateTime::parse_from_rfc3339(j["run_at"].as_str().unwrap()).unwrap();
    let done = s.until_state(id, "succeeded").await;
    let started =
        chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap()).unwrap();
    assert!(
        started >= run_at,
        "started {started} before run_at {run_at}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_readiness_and_openapi() {
    let s = TestServer::start_with(config(""), false).await;
    s.post(
        "/v1/batches",
        json!({"kind": "card.generate", "user_id": "u1", "items": [{}, {}, {}]}),
    )
    .await;
    let (status, stats) = s.get("/v1/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["jobs"]["queued"], 3);
    assert_eq!(stats["jobs"]["running"], 0);
    assert_eq!(stats["kinds"]["card.generate"]["queued"], 3);
    assert!(stats["oldest_claimable_age_ms"].is_number());
    assert!(stats["finished_last_minute"].is_number() && stats["finished_last_hour"].is_number());

    let (_, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: HashSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed = [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/retry",
        "/v1/jobs/{id}/heartbeat",
        "/v1/jobs/{id}/complete",
        "/v1/jobs/{id}/fail",
        "/v1/batches",
        "/v1/batches/{id}",
        "/v1/workers/claim",
        "/v1/users/{id}",
        "/v1/users/{id}/credits",
        "/v1/users/{id}/ledger",
        "/v1/admin/limits",
        "/v1/admin/providers",
        "/v1/admin/providers/{name}/keys/{label}/enable",
        "/v1/admin/webhooks",
        "/v1/admin/webhooks/{id}/events/{event_id}/redeliver",
        "/v1/events",
        "/v1/schedules",
        "/v1/schedules/{name}",
        "/v1/stats",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ];
    // `PUT /v1/admin/limits/{key}` is documented as one path per limit, each with its range.
    let routed: HashSet<String> = routed
        .iter()
        .map(|s| s.to_string())
        .chain(
            genq_core::limits::LIMITS
                .iter()
                .map(|l| format!("/v1/admin/limits/{}", l.key)),
        )
        .collect();
    assert_eq!(documented, routed);
    assert!(doc["components"]["schemas"]["JobView"].is_object());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_user_starts_within_one_round_of_claims() {
    // Four slots; A has 300 jobs queued first.
    let mut c = config("");
    c.worker.concurrency = 4;
    c.worker.claim_batch = 4;
    let s = TestServer::start(c).await;
    for _ in 0..2 {
        let (status, _) = s
            .post(
                "/v1/batches",
                json!({"kind": "card.generate", "user_id": "a", "items": vec![json!({}); 150]}),
            )
            .await;
        assert_eq!(status, 201);
    }
    // Let A's backlog get going.
    for _ in 0..500 {
        let (_, stats) = s.get("/v1/stats").await;
        if stats["jobs"]["succeeded"].as_u64().unwrap() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, b) = s.post("/v1/jobs", job("card.generate", "b")).await;
    // From when B's job is accepted (committed), not from its `created_at`: a claim that
    // began while B's enqueue was still being written cannot see B.
    // The API shows milliseconds: from the start of this one, so as to count more, not fewer.
    let b_accepted = (chrono::Utc::now().timestamp_micros() / 1000) * 1000;
    let b_done = s.until_state(b["id"].as_str().unwrap(), "succeeded").await;
    let micros = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_micros()
    };
    let b_started = micros(b_done["started_at"].as_str().unwrap());
    // Count A's jobs that started after B was accepted and before B started.
    let mut overtaken = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?user_id=a&limit=200&cursor={c}"),
            None => "/v1/jobs?user_id=a&limit=200".to_string(),
        };
        let (_, page) = s.get(&path).await;
        for j in page["items"].as_array().unwrap() {
            if let Some(started) = j["started_at"].as_str().map(micros)
                && started >= b_accepted
                && started < b_started
            {
                overtaken += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    assert!(
        overtaken <= 4,
        "{overtaken} of A's jobs started before B's; the bound is concurrency = 4"
    );
    s.shutdown().await;
}
