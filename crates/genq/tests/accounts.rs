//! Users, quotas, credits and runtime limits over HTTP: the seeds' six test scenarios
//! ("СЦЕНАРИИ ТЕСТИРОВАНИЯ"), and many parallel requests that must not overrun a limit together.

mod common;

use chrono::TimeZone;
use common::*;
use genq_core::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn batch(user: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"title": format!("product {i}")}))
        .collect();
    json!({"kind": "card.generate", "user_id": user, "items": items})
}

async fn user(s: &TestServer, id: &str) -> Value {
    let (status, u) = s.get(&format!("/v1/users/{id}")).await;
    assert_eq!(status, 200, "{u}");
    u
}

/// Every ledger invariant of one user: the balance is the sum of the entries and never
/// negative, and no job has two debits or two refunds in one attempt series.
async fn check_ledger(s: &TestServer, id: &str) {
    let u = user(s, id).await;
    let mut entries: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/{id}/ledger?limit=200&cursor={c}"),
            None => format!("/v1/users/{id}/ledger?limit=200"),
        };
        let (status, page) = s.get(&path).await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(
        sum,
        u["credits"].as_i64().unwrap(),
        "balance = sum of entries"
    );
    assert!(entries.iter().all(|e| e["balance"].as_i64().unwrap() >= 0));
    // Newest first: each entry's balance is the previous one's plus its amount.
    for pair in entries.windows(2) {
        assert_eq!(
            pair[0]["balance"].as_i64().unwrap(),
            pair[1]["balance"].as_i64().unwrap() + pair[0]["amount"].as_i64().unwrap()
        );
    }
    let mut per_job: std::collections::HashMap<String, (i64, i64)> = Default::default();
    for e in &entries {
        if let Some(job) = e["job_id"].as_str() {
            let c = per_job.entry(job.to_string()).or_default();
            match e["kind"].as_str().unwrap() {
                "debit" => c.0 += 1,
                "refund" => c.1 += 1,
                other => panic!("{other} with a job id"),
            }
        }
    }
    // A batch is debited once, for all its jobs.
    let batch_debits: std::collections::HashSet<String> = entries
        .iter()
        .filter_map(|e| e["batch_id"].as_str().map(str::to_string))
        .collect();
    for (job, (own_debits, refunds)) in per_job {
        let (_, j) = s.get(&format!("/v1/jobs/{job}")).await;
        let in_batch = j["batch_id"]
            .as_str()
            .is_some_and(|b| batch_debits.contains(b));
        let debits = own_debits + in_batch as i64;
        assert!(
            refunds <= debits && debits <= 1 + refunds,
            "{job}: {debits} debits, {refunds} refunds"
        );
        let refunded = matches!(j["state"].as_str(), Some("failed" | "canceled"));
        assert_eq!(
            debits - refunds,
            if refunded { 0 } else { 1 },
            "{job} is {}",
            j["state"]
        );
    }
}

async fn until_batch_done(s: &TestServer, id: &str) -> Value {
    for _ in 0..1000 {
        let (_, b) = s.get(&format!("/v1/batches/{id}")).await;
        if !b["finished_at"].is_null() {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("batch {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_a_batch_of_50() {
    let s = TestServer::start(config("")).await;
    let (status, out) = s.post("/v1/batches", batch("user123", 50)).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["job_ids"].as_array().unwrap().len(), 50);
    let (_, page) = s.get("/v1/jobs?user_id=user123&limit=200").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["user_id"] == "user123")
    );
    let b = until_batch_done(&s, out["batch"]["id"].as_str().unwrap()).await;
    assert_eq!(b["succeeded"], 50);
    let u = user(&s, "user123").await;
    assert_eq!(
        (
            u["credits"].as_i64(),
            u["unfinished"].as_i64(),
            u["used_today"].as_i64()
        ),
        (Some(100_000 - 50), Some(0), Some(50))
    );
    check_ledger(&s, "user123").await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_three_users_at_once_are_interleaved() {
    let mut c = config("");
    c.worker.concurrency = 3;
    c.worker.claim_batch = 3;
    let s = TestServer::start(c).await;
    let (a, b, c) = tokio::join!(
        s.post("/v1/batches", batch("user1", 50)),
        s.post("/v1/batches", batch("user2", 50)),
        s.post("/v1/batches", batch("user3", 50)),
    );
    for (status, out) in [&a, &b, &c] {
        assert_eq!(*status, 201, "{out}");
    }
    for (_, out) in [&a, &b, &c] {
        until_batch_done(&s, out["batch"]["id"].as_str().unwrap()).await;
    }
    // In start order (microseconds from the store, then claim order by id), from when the last
    // of the three batches was accepted (with claims in other connections, as on PostgreSQL,
    // the first batch may start before the last arrives): every user starts within the first
    // three claims of three, and from then on every window of 15 starts serves each user at
    // least 4 times, so nobody waits for another's 50. Only the first 105 starts count: near the
    // end a user whose jobs are done has nothing left to start.
    let mut all_queued = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    for (_, out) in [&a, &b, &c] {
        let batch = s
            .store
            .batch(out["batch"]["id"].as_str().unwrap())
            .await
            .unwrap();
        all_queued = all_queued.max(batch.created_at);
    }
    let jobs = s
        .store
        .jobs(&genq_store::JobQuery::newest(Default::default(), 200))
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.len(), 150);
    let mut started: Vec<(chrono::DateTime<chrono::Utc>, String, String)> = jobs
        .into_iter()
        .map(|j| (j.started_at.unwrap(), j.id, j.user_id))
        .collect();
    started.sort();
    let started: Vec<(String, String)> = started
        .into_iter()
        .filter(|(t, _, _)| *t >= all_queued)
        .take(105)
        .map(|(t, _, u)| (t.to_rfc3339(), u))
        .collect();
    for u in ["user1", "user2", "user3"] {
        assert!(
            started.iter().take(9).any(|(_, w)| w == u),
            "{u} did not start within three claims: {started:?}"
        );
    }
    for window in started[6..].windows(15) {
        for u in ["user1", "user2", "user3"] {
            let n = window.iter().filter(|(_, w)| w == u).count();
            assert!(
                n >= 4,
                "{u} got {n} of 15 starts: {:?}",
                window.iter().map(|w| &w.1).collect::<Vec<_>>()
            );
        }
    }
    for u in ["user1", "user2", "user3"] {
        check_ledger(&s, u).await;
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_the_queue_limit_is_per_user() {
    let s = TestServer::start_with(config(""), false).await;
    assert_eq!(s.post("/v1/batches", batch("user1", 200)).await.0, 201);
    assert_eq!(s.post("/v1/batches", batch("user1", 100)).await.0, 201);
    let (status, body) = s.post("/v1/batches", batch("user1", 50)).await;
    assert_error(status, &body, 429, "queue_limit");
    assert_eq!(
        body["error"]["details"],
        json!({"limit": 300, "current": 300})
    );
    let (status, body) = s
        .post(
            "/v1/jobs",
            json!({"kind": "card.generate", "user_id": "user1", "payload": {}}),
        )
        .await;
    assert_error(status, &body, 429, "queue_limit");
    assert_eq!(
        s.post("/v1/batches", batch("user2", 50)).await.0,
        201,
        "user2 is not affected"
    );
    let u1 = user(&s, "user1").await;
    assert_eq!(
        (u1["unfinished"].as_i64(), u1["credits"].as_i64()),
        (Some(300), Some(100_000 - 300))
    );
    check_ledger(&s, "user1").await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_5_a_limit_change_applies_to_the_next_request() {
    let s = TestServer::start_with(config(""), false).await;
    let (status, limits) = s
        .call(
            Method::PUT,
            "/v1/admin/limits/batch_max_items_per_request",
            Some(ADMIN),
            Some(json!({"value": 10})),
        )
        .await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(
        limits["limits"]["batch_max_items_per_request"],
        json!({"value": 10, "default": 200})
    );
    let (status, body) = s.post("/v1/batches", batch("user1", 50)).await;
    assert_error(status, &body, 400, "batch_too_large");
    assert_eq!(s.post("/v1/batches", batch("user1", 5)).await.0, 201);
    // Bad changes are refused and change nothing.
    let cases = [
        (
            "/v1/admin/limits/colour",
            json!({"value": 1}),
            400,
            "unknown_limit",
        ),
        (
            "/v1/admin/limits/batch_max_items_per_request",
            json!({"value": 0}),
            400,
            "invalid_request",
        ),
        (
            "/v1/admin/limits/batch_max_items_per_request",
            json!({"value": "ten"}),
            400,
            "invalid_request",
        ),
        (
            "/v1/admin/limits/batch_max_items_per_request",
            json!({"value": 1.5}),
            400,
            "invalid_request",
        ),
        (
            "/v1/admin/limits/user_max_running",
            json!({"value": -1}),
            400,
            "invalid_request",
        ),
    ];
    for (path, body, want, code) in cases {
        let (status, resp) = s.call(Method::PUT, path, Some(ADMIN), Some(body)).await;
        assert_error(status, &resp, want, code);
    }
    let (status, resp) = s
        .call(
            Method::PUT,
            "/v1/admin/limits/batch_max_items_per_request",
            Some(APP),
            Some(json!({"value": 1})),
        )
        .await;
    assert_error(status, &resp, 403, "forbidden");
    let (_, all) = s.get("/v1/admin/limits").await;
    assert_eq!(all["limits"]["batch_max_items_per_request"]["value"], 10);
    assert_eq!(all["limits"].as_object().unwrap().len(), 8);
    // Workers follow too: this process at once, others within a second.
    let limit = s
        .engine
        .shared()
        .limits
        .read()
        .unwrap()
        .get("batch_max_items_per_request");
    assert_eq!(limit, 10);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_6_the_daily_limit_of_a_free_user_resets_the_next_day() {
    // 23:00 UTC; the quota day is UTC.
    let clock = Arc::new(ManualClock::new(
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 23, 0, 0)
            .unwrap(),
    ));
    let s = TestServer::start_with_clock(config(""), false, clock.clone()).await;
    let (status, u) = s
        .call(
            Method::PUT,
            "/v1/users/free1",
            Some(ADMIN),
            Some(json!({"plan": "free"})),
        )
        .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["daily_limit"], 5);
    let one = json!({"kind": "card.generate", "user_id": "free1", "payload": {}});
    for _ in 0..5 {
        assert_eq!(s.post("/v1/jobs", one.clone()).await.0, 201);
    }
    let resp = s
        .http
        .post(format!("{}/v1/jobs", s.url))
        .bearer_auth(ADMIN)
        .json(&one)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3600", "until midnight");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "daily_limit");
    // Batches cannot go around it.
    let (status, body) = s
        .post(
            "/v1/batches",
            json!({"kind": "card.generate", "user_id": "free1", "items": [{}, {}]}),
        )
        .await;
    assert_error(status, &body, 429, "daily_limit");
    assert_eq!(user(&s, "free1").await["used_today"], 5);
    // A canceled job gives its place back.
    let (_, page) = s.get("/v1/jobs?user_id=free1&limit=1").await;
    let id = page["items"][0]["id"].as_str().unwrap().to_string();
    s.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(s.post("/v1/jobs", one.clone()).await.0, 201);
    assert_eq!(s.post("/v1/jobs", one.clone()).await.0, 429);
    // The next day.
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(user(&s, "free1").await["used_today"], 0);
    assert_eq!(s.post("/v1/jobs", one.clone()).await.0, 201);
    check_ledger(&s, "free1").await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_debited_refunded_and_adjusted() {
    let s = TestServer::start(config("")).await;
    let (status, u) = s
        .call(
            Method::POST,
            "/v1/users/poor/credits",
            Some(ADMIN),
            Some(json!({"delta": -99_999, "reason": "test"})),
        )
        .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["credits"], 1);
    let job = |simulate: Value| json!({"kind": "card.generate", "user_id": "poor", "payload": {"simulate": simulate}});
    let (status, j) = s.post("/v1/jobs", job(json!({"fail": "user_error"}))).await;
    assert_eq!(status, 201, "{j}");
    let (status, body) = s.post("/v1/jobs", job(json!({}))).await;
    assert_error(status, &body, 402, "insufficient_credits");
    s.until_state(j["id"].as_str().unwrap(), "failed").await;
    assert_eq!(
        user(&s, "poor").await["credits"],
        1,
        "the failed job was refunded"
    );
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/users/poor/credits",
            Some(ADMIN),
            Some(json!({"delta": -2, "reason": "x"})),
        )
        .await;
    assert_error(status, &body, 409, "conflict");
    for bad in [
        json!({"delta": 0, "reason": "x"}),
        json!({"delta": 5}),
        json!({"delta": "5", "reason": "x"}),
    ] {
        let (status, body) = s
            .call(
                Method::POST,
                "/v1/users/poor/credits",
                Some(ADMIN),
                Some(bad),
            )
            .await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, body) = s
        .call(
            Method::PUT,
            "/v1/users/poor",
            Some(ADMIN),
            Some(json!({"plan": "gold"})),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
    // Admin retry debits again; 402 when the balance cannot cover it.
    let id = j["id"].as_str().unwrap();
    let (status, _) = s.post(&format!("/v1/jobs/{id}/retry"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(user(&s, "poor").await["credits"], 0);
    s.until_state(id, "failed").await;
    s.call(
        Method::POST,
        "/v1/users/poor/credits",
        Some(ADMIN),
        Some(json!({"delta": -1, "reason": "spent"})),
    )
    .await;
    let (status, body) = s.post(&format!("/v1/jobs/{id}/retry"), json!({})).await;
    assert_error(status, &body, 402, "insufficient_credits");
    check_ledger(&s, "poor").await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_batches_never_overrun_the_queue_limit_or_the_balance() {
    let s = TestServer::start_with(config(""), false).await;
    // Near the balance: 95 credits, 50 parallel batches of 10 at cost 1.
    s.call(
        Method::POST,
        "/v1/users/rushed/credits",
        Some(ADMIN),
        Some(json!({"delta": -(100_000 - 95), "reason": "setup"})),
    )
    .await;
    let results =
        futures::future::join_all((0..50).map(|_| s.post("/v1/batches", batch("rushed", 10))))
            .await;
    let accepted = results.iter().filter(|(st, _)| *st == 201).count();
    assert!(
        results
            .iter()
            .all(|(st, b)| *st == 201 || b["error"]["code"] == "insufficient_credits"),
        "{results:?}"
    );
    assert_eq!(accepted, 9, "95 credits buy nine batches of 10");
    let u = user(&s, "rushed").await;
    assert_eq!(
        (u["credits"].as_i64(), u["unfinished"].as_i64()),
        (Some(5), Some(90))
    );
    check_ledger(&s, "rushed").await;
    // Near the queue limit: 290 unfinished, 50 parallel batches of 5.
    assert_eq!(s.post("/v1/batches", batch("busy", 200)).await.0, 201);
    assert_eq!(s.post("/v1/batches", batch("busy", 90)).await.0, 201);
    let results =
        futures::future::join_all((0..50).map(|_| s.post("/v1/batches", batch("busy", 5)))).await;
    let accepted = results.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(accepted, 2, "room for exactly two more batches of 5");
    assert_eq!(user(&s, "busy").await["unfinished"], 300);
    s.shutdown().await;
}
