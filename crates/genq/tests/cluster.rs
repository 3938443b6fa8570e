//! One PostgreSQL database, one `genq serve` and three `genq worker` processes, 5,000 jobs for
//! 50 users with mixed outcomes, and a random worker SIGKILLed and restarted every second.
//! At the end every job is terminal, no attempt completed twice, every balance is exact, and
//! neither `user_max_running` nor the provider's rate limit was ever exceeded.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const USERS: usize = 50;
const CARDS_PER_USER: usize = 99;
const CHATS: usize = 50;
const USER_MAX_RUNNING: i64 = 3;
/// Per key, at the provider and in genq's config: 2 a second.
const KEY_RPM: u32 = 120;

fn write_config(dir: &std::path::Path, database: &str, fake_url: &str) {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
database = "{database}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
initial_credits = 100000
[worker]
concurrency = 16
lease = "3s"
heartbeat = "1s"
poll_interval = "200ms"
[postgres]
max_connections = 8
[[providers]]
name = "demo"
type = "demo"
latency = "20ms"
completions_log = "{log}"
[[providers]]
name = "fake"
type = "http"
base_url = "{fake_url}/v1"
keys = ["sk-cluster-1", "sk-cluster-2"]
key_requests_per_minute = {KEY_RPM}
[[kinds]]
name = "card.generate"
provider = "demo"
cost = 1
retry_delays = ["50ms"]
[[kinds]]
name = "chat.generate"
provider = "fake"
path = "/chat/completions"
cost = 1
retry_delays = ["50ms"]
"#,
        log = dir.join("completions.log").display(),
    );
    std::fs::write(dir.join("genq.toml"), text).unwrap();
}

async fn counts(url: &str) -> BTreeMap<String, u64> {
    let (status, s) = client_call(url, Method::GET, "/v1/stats", None).await;
    assert_eq!(status, 200, "{s}");
    serde_json::from_value(s["jobs"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_postgres_survives_a_worker_killed_every_second() {
    let db = Database::create().await;
    let fake_url = fake(genq_fake_provider::FakeConfig {
        keys: vec!["sk-cluster-1".into(), "sk-cluster-2".into()],
        requests_per_minute: Some(KEY_RPM),
        latency: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &db.url(), &fake_url);
    let serve = Process::serve(dir.path());
    let mut workers: Vec<Process> = (0..3).map(|_| Process::worker(dir.path()).0).collect();
    let url = serve.url.clone();

    let (status, out) = client_call(
        &url,
        Method::PUT,
        "/v1/admin/limits/user_max_running",
        Some(json!({"value": USER_MAX_RUNNING})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    for u in 0..USERS {
        // Every tenth card is rejected by the provider; every seventh fails once, then works.
        let items: Vec<Value> = (0..CARDS_PER_USER)
            .map(|i| match i {
                i if i % 10 == 0 => json!({"simulate": {"fail": "user_error"}}),
                i if i % 7 == 0 => json!({"simulate": {"fail": "temporary", "fail_attempts": 1}}),
                _ => json!({}),
            })
            .collect();
        let body = json!({"kind": "card.generate", "user_id": format!("user{u}"), "items": items});
        let (status, out) = client_call(&url, Method::POST, "/v1/batches", Some(body)).await;
        assert_eq!(status, 201, "{out}");
    }
    for u in 0..CHATS {
        let body = json!({"kind": "chat.generate", "user_id": format!("user{}", u % USERS),
            "payload": {"model": "m", "messages": [{"role": "user", "content": "a card"}]}});
        let (status, out) = client_call(&url, Method::POST, "/v1/jobs", Some(body)).await;
        assert_eq!(status, 201, "{out}");
    }

    let total = (USERS * CARDS_PER_USER + CHATS) as u64;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut kills = 0;
    loop {
        let c = counts(&url).await;
        if c["succeeded"] + c["failed"] == total {
            break;
        }
        assert!(Instant::now() < deadline, "not all finished: {c:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let i = rand::random_range(0..workers.len());
        workers[i].signal("KILL");
        let killed = std::mem::replace(&mut workers[i], Process::worker(dir.path()).0);
        drop(killed);
        kills += 1;
    }
    assert!(
        kills >= 3,
        "the run was over before the kills began: {kills}"
    );
    let c = counts(&url).await;
    assert_eq!(
        (c["queued"], c["running"], c["retrying"]),
        (0, 0, 0),
        "{c:?}"
    );
    let failed_cards = (USERS * CARDS_PER_USER.div_ceil(10)) as u64;
    if c["failed"] != failed_cards {
        let mut unexpected = Vec::new();
        let mut cursor = String::new();
        loop {
            let (_, page) = client_call(
                &url,
                Method::GET,
                &format!("/v1/jobs?state=failed&limit=200{cursor}"),
                None,
            )
            .await;
            for j in page["items"].as_array().unwrap() {
                if j["error"]["class"] != "user_error" {
                    unexpected.push(j.clone());
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        panic!("only the rejected cards may fail: {c:?}; others: {unexpected:#?}");
    }

    // No attempt completed twice; nothing ran after its job's recorded success; and no user
    // ever had more than user_max_running attempts at once.
    let log = std::fs::read_to_string(dir.path().join("completions.log")).unwrap();
    let mut seen = HashSet::new();
    let mut spans: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            seen.insert((f[0].to_string(), f[1].to_string())),
            "{line} completed twice"
        );
        let (start, end): (i64, i64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        spans
            .entry(f[2].to_string())
            .or_default()
            .push((start, end));
    }
    for (user, spans) in &spans {
        let mut edges: Vec<(i64, i64)> = spans
            .iter()
            .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
            .collect();
        edges.sort();
        let mut running = 0;
        for (_, d) in edges {
            running += d;
            assert!(
                running <= USER_MAX_RUNNING,
                "{user} had {running} attempts at once"
            );
        }
    }

    // Balances: 100 debited, one refund per rejected card, nothing refunded for a crash.
    for u in 0..USERS {
        let user = format!("user{u}");
        let (_, v) = client_call(&url, Method::GET, &format!("/v1/users/{user}"), None).await;
        let chats = (0..CHATS).filter(|c| c % USERS == u).count() as i64;
        let debited = CARDS_PER_USER as i64 + chats;
        let refunded = CARDS_PER_USER.div_ceil(10) as i64;
        assert_eq!(v["credits"], 100_000 - debited + refunded, "{v}");
        assert_eq!(v["unfinished"], 0, "{v}");
        let (_, ledger) = client_call(
            &url,
            Method::GET,
            &format!("/v1/users/{user}/ledger?limit=200"),
            None,
        )
        .await;
        let entries = ledger["items"].as_array().unwrap();
        let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
        assert_eq!(sum, 100_000 - debited + refunded, "{user}'s ledger adds up");
        let refunds = entries.iter().filter(|e| e["kind"] == "refund").count() as i64;
        assert_eq!(refunds, refunded, "{user}: one refund per rejected card");
    }

    // The provider never answered 429, and its rate held across the four processes: in any
    // 5 s, at most what 2 a second allows (the pace runs at 98.5% of it), plus one.
    let stats = fake_stats(&fake_url).await;
    for (key, s) in &stats.keys {
        assert_eq!(s.rate_limited, 0, "{key} was answered 429");
        let allowed = (KEY_RPM as u64 * 5).div_ceil(60) + 1;
        for (i, t) in s.arrivals_ms.iter().enumerate() {
            let in_window = s.arrivals_ms[i..]
                .iter()
                .take_while(|u| **u < t + 5000)
                .count();
            assert!(
                in_window as u64 <= allowed,
                "{key}: {in_window} requests within 5 s of {t} ms, allowed {allowed}"
            );
        }
    }
    let chat_requests: u64 = stats.keys.values().map(|s| s.requests).sum();
    assert!(chat_requests >= CHATS as u64);

    drop(workers);
    serve.signal("TERM");
    assert!(serve.wait(Duration::from_secs(20)));
    db.drop_it().await;
}
