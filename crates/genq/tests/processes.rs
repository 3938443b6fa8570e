//! The real `genq` binary as a child process: SIGKILL mid-run and restart, SIGTERM with jobs
//! running. Nothing may be lost, left `running`, or succeed twice.

mod common;

use common::*;
use genq_core::JobState;
use genq_store::{JobFilter, SqliteStore, Store};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

fn write_config(dir: &Path, latency: &str, extra_worker: &str) {
    write_config_with(dir, latency, extra_worker, "")
}

fn write_config_with(dir: &Path, latency: &str, extra_worker: &str, extra_kind: &str) {
    let worker = format!(
        "concurrency = 25\nlease = \"30s\"\nheartbeat = \"5s\"\npoll_interval = \"100ms\"\n{extra_worker}"
    );
    write_config_worker(dir, latency, &worker, extra_kind)
}

/// The demo provider with `latency`, its completions logged, and `worker` as the `[worker]`
/// section.
fn write_config_worker(dir: &Path, latency: &str, worker: &str, extra_kind: &str) {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
database = "sqlite://{db}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
[worker]
{worker}
[[providers]]
name = "demo"
type = "demo"
latency = "{latency}"
completions_log = "{log}"
[[kinds]]
name = "card.generate"
provider = "demo"
{extra_kind}
"#,
        db = dir.join("genq.db").display(),
        log = dir.join("completions.log").display(),
    );
    std::fs::write(dir.join("genq.toml"), text).unwrap();
}

async fn stats(url: &str) -> Value {
    let (status, s) = client_call(url, Method::GET, "/v1/stats", None).await;
    assert_eq!(status, 200, "{s}");
    s
}

async fn until(url: &str, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let s = stats(url).await;
        if done(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn n(stats: &Value, state: &str) -> u64 {
    stats["jobs"][state].as_u64().unwrap()
}

async fn submit(url: &str, count: usize) -> Vec<String> {
    let items: Vec<Value> = (0..count).map(|i| json!({"n": i})).collect();
    let (status, out) = client_call(
        url,
        Method::POST,
        "/v1/batches",
        Some(json!({"kind": "card.generate", "user_id": "u1", "items": items})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    out["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The demo provider's log of successful completions: the attempts of each job that completed,
/// each at most once.
fn completions(dir: &Path) -> HashMap<String, Vec<u32>> {
    let log = std::fs::read_to_string(dir.join("completions.log")).unwrap();
    let mut seen = HashSet::new();
    let mut per_job: HashMap<String, Vec<u32>> = HashMap::new();
    for line in log.lines() {
        let mut fields = line.split_whitespace();
        let (id, attempt) = (fields.next().unwrap(), fields.next().unwrap());
        let attempt: u32 = attempt.parse().unwrap();
        assert!(
            seen.insert((id.to_string(), attempt)),
            "attempt {attempt} of {id} completed twice"
        );
        per_job.entry(id.to_string()).or_default().push(attempt);
    }
    per_job
}

/// Jobs whose first attempt has completed so far; the log may end in a line being written.
fn first_attempts_completed(dir: &Path) -> HashSet<String> {
    let log = std::fs::read_to_string(dir.join("completions.log")).unwrap_or_default();
    let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?;
            (fields.next()? == "1").then(|| id.to_string())
        })
        .collect()
}

async fn all_jobs(dir: &Path) -> Vec<genq_core::Job> {
    let store = SqliteStore::open(dir.join("genq.db")).unwrap();
    store
        .jobs(&genq_store::JobQuery::newest(JobFilter::default(), 10_000))
        .await
        .unwrap()
        .jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing_and_never_repeats_a_success() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "300ms", "");
    let first = Process::serve(dir.path());
    let ids = submit(&first.url, 200).await;
    until(&first.url, Duration::from_secs(30), "40 successes", |s| {
        n(s, "succeeded") >= 40
    })
    .await;
    first.signal("KILL");
    assert!(
        !first.wait(Duration::from_secs(10)),
        "SIGKILL is not a clean exit"
    );

    let at_kill = all_jobs(dir.path()).await;
    let running = at_kill
        .iter()
        .filter(|j| j.state == JobState::Running)
        .count();
    let succeeded = at_kill
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .count();
    assert!(
        running > 0 && succeeded < 200,
        "killed mid-run: {running} running, {succeeded} succeeded"
    );

    // The restart takes back its own leases at once: recovery must not wait for the 30s lease.
    let restarted_at = Instant::now();
    let second = Process::serve(dir.path());
    until(
        &second.url,
        Duration::from_secs(25),
        "all 200 to succeed",
        |s| n(s, "succeeded") == 200,
    )
    .await;
    assert!(restarted_at.elapsed() < Duration::from_secs(30));
    second.signal("TERM");
    assert!(second.wait(Duration::from_secs(20)));

    let jobs = all_jobs(dir.path()).await;
    assert_eq!(jobs.len(), 200, "no job lost, none invented");
    let final_attempt: HashMap<String, u32> =
        jobs.iter().map(|j| (j.id.clone(), j.attempt)).collect();
    assert_eq!(
        final_attempt.keys().cloned().collect::<HashSet<_>>(),
        ids.iter().cloned().collect()
    );
    assert!(jobs.iter().all(|j| j.state == JobState::Succeeded));

    // The demo provider's own record of every successful completion.
    let per_job = completions(dir.path());
    for (id, attempt) in &final_attempt {
        let done = per_job
            .get(id)
            .unwrap_or_else(|| panic!("{id} succeeded without a completion"));
        assert!(
            done.contains(attempt),
            "{id}: its successful attempt {attempt} is not in the log"
        );
        assert!(
            done.iter().all(|a| a <= attempt),
            "{id} ran again after it succeeded: {done:?}"
        );
    }
    // At most the attempts in flight at the kill could have completed unrecorded.
    let repeats: usize = per_job.values().map(|v| v.len() - 1).sum();
    assert!(
        repeats <= 25,
        "{repeats} repeated completions; at most concurrency = 25 were in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_attempts_finish() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "300ms", "shutdown_grace = \"20s\"");
    let server = Process::serve(dir.path());
    submit(&server.url, 60).await;
    until(
        &server.url,
        Duration::from_secs(20),
        "attempts running",
        |s| n(s, "running") > 0,
    )
    .await;
    server.signal("TERM");
    assert!(
        server.wait(Duration::from_secs(25)),
        "a clean exit after SIGTERM"
    );
    let jobs = all_jobs(dir.path()).await;
    assert!(
        jobs.iter().all(|j| j.state != JobState::Running),
        "nothing left running"
    );
    let done = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .count();
    assert!(
        done > 0 && done < 60,
        "stopped claiming, finished what ran: {done}"
    );
    assert!(
        jobs.iter().all(|j| j.retries_used == 0),
        "a graceful stop costs no retry"
    );

    let again = Process::serve(dir.path());
    until(
        &again.url,
        Duration::from_secs(20),
        "all 60 to succeed",
        |s| n(s, "succeeded") == 60,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_attempts_that_outlive_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "60s", "shutdown_grace = \"200ms\"");
    let server = Process::serve(dir.path());
    let ids = submit(&server.url, 5).await;
    until(&server.url, Duration::from_secs(20), "5 running", |s| {
        n(s, "running") == 5
    })
    .await;
    server.signal("TERM");
    assert!(
        server.wait(Duration::from_secs(10)),
        "exits after the grace period, not after the 60s attempts"
    );
    let jobs = all_jobs(dir.path()).await;
    for job in &jobs {
        assert_eq!(job.state, JobState::Retrying, "handed back: {job:?}");
        assert!(job.lease.is_none());
        assert_eq!((job.attempt, job.retries_used), (1, 0));
        assert!(job.run_at <= chrono::Utc::now(), "claimable at once");
    }
    assert_eq!(jobs.len(), ids.len());
    // Another process (here: the same one, restarted with a quick provider) takes them at once.
    write_config(dir.path(), "10ms", "");
    let again = Process::serve(dir.path());
    until(
        &again.url,
        Duration::from_secs(20),
        "all 5 to succeed",
        |s| n(s, "succeeded") == 5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_database_never_take_each_others_leases() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "200ms", "");
    let server = Process::serve(dir.path());
    let (worker, node) = Process::worker(dir.path());
    assert!(
        node.ends_with("#2"),
        "the worker got a node slot of its own: {node}"
    );
    submit(&server.url, 100).await;
    until(&server.url, Duration::from_secs(20), "some running", |s| {
        n(s, "running") > 0
    })
    .await;
    // A crashed worker restarts into its own slot and takes back only its own leases.
    worker.signal("KILL");
    assert!(!worker.wait(Duration::from_secs(10)));
    let (again, node_again) = Process::worker(dir.path());
    assert_eq!(node_again, node);
    until(&server.url, Duration::from_secs(30), "all 100", |s| {
        n(s, "succeeded") == 100
    })
    .await;
    let log = std::fs::read_to_string(dir.path().join("completions.log")).unwrap();
    let mut seen = HashSet::new();
    for line in log.lines() {
        let attempt: Vec<&str> = line.split_whitespace().take(2).collect();
        assert!(seen.insert(attempt), "{line} completed twice");
    }
    drop(again);
}

/// Seed scenario 3: SIGKILL mid-run and recovery, with every balance exact afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_keeps_every_balance_exact() {
    let dir = tempfile::tempdir().unwrap();
    write_config_with(
        dir.path(),
        "200ms",
        "",
        "cost = 2\nretry_delays = [\"50ms\"]",
    );
    let first = Process::serve(dir.path());
    for user in ["a", "b"] {
        let (status, _) = client_call(
            &first.url,
            Method::POST,
            &format!("/v1/users/{user}/credits"),
            Some(json!({"delta": 1000, "reason": "purchase"})),
        )
        .await;
        assert_eq!(status, 200);
    }
    // 100 jobs each; every tenth is rejected by the provider, every seventh fails once first.
    for user in ["a", "b"] {
        let items: Vec<Value> = (0..100)
            .map(|i| match i {
                i if i % 10 == 0 => json!({"simulate": {"fail": "user_error"}}),
                i if i % 7 == 0 => json!({"simulate": {"fail": "temporary", "fail_attempts": 1}}),
                _ => json!({}),
            })
            .collect();
        let (status, out) = client_call(
            &first.url,
            Method::POST,
            "/v1/batches",
            Some(json!({"kind": "card.generate", "user_id": user, "items": items})),
        )
        .await;
        assert_eq!(status, 201, "{out}");
    }
    until(&first.url, Duration::from_secs(30), "50 finished", |s| {
        n(s, "succeeded") + n(s, "failed") >= 50
    })
    .await;
    first.signal("KILL");
    assert!(!first.wait(Duration::from_secs(10)));
    let second = Process::serve(dir.path());
    until(
        &second.url,
        Duration::from_secs(30),
        "all 200 finished",
        |s| n(s, "succeeded") + n(s, "failed") == 200,
    )
    .await;
    for user in ["a", "b"] {
        let (_, u) =
            client_call(&second.url, Method::GET, &format!("/v1/users/{user}"), None).await;
        // 1000 - 100 * 2 debited + 10 * 2 refunded for the rejected tenth.
        assert_eq!(u["credits"], 820, "{u}");
        assert_eq!(u["unfinished"], 0);
        assert_eq!(
            u["used_today"], 90,
            "failed jobs do not count toward the day"
        );
        let (_, ledger) = client_call(
            &second.url,
            Method::GET,
            &format!("/v1/users/{user}/ledger?limit=200"),
            None,
        )
        .await;
        let entries = ledger["items"].as_array().unwrap();
        let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
        assert_eq!(sum, 820);
        let refunds = entries.iter().filter(|e| e["kind"] == "refund").count();
        assert_eq!(
            refunds, 10,
            "exactly one refund per failed job, none for a crash"
        );
    }
}

/// A video task survives SIGKILL of genq while genq polls it: after the restart genq polls the
/// same task, and the provider never sees a second task for the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_job_survives_sigkill_mid_poll_without_a_second_task() {
    let fake_url = fake(genq_fake_provider::FakeConfig {
        keys: vec!["sk-video".into()],
        ..Default::default()
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
listen = "127.0.0.1:0"
database = "sqlite://{db}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
[worker]
lease = "4s"
heartbeat = "1s"
poll_interval = "50ms"
[[providers]]
name = "video"
type = "task"
base_url = "{fake_url}"
keys = ["sk-video"]
create_path = "/v1/tasks"
status_path = "/v1/tasks/{{task_id}}"
result_pointer = "/result"
poll_interval = "100ms"
[[kinds]]
name = "video.make"
provider = "video"
"#,
        db = dir.path().join("genq.db").display(),
    );
    std::fs::write(dir.path().join("genq.toml"), text).unwrap();

    let genq = Process::serve(dir.path());
    let body = json!({"kind": "video.make", "user_id": "u1",
        "payload": {"prompt": "a mug", "simulate": {"latency_ms": 2500}}});
    let (status, job) = client_call(&genq.url, Method::POST, "/v1/jobs", Some(body)).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // Wait until genq has created the task and polled it at least twice.
    let deadline = Instant::now() + Duration::from_secs(20);
    let task_id = loop {
        let (_, job) = client_call(&genq.url, Method::GET, &format!("/v1/jobs/{id}"), None).await;
        let polls = fake_stats(&fake_url)
            .await
            .jobs
            .get(&id)
            .map_or(0, |s| s.requests);
        if let Some(task) = job["provider_task_id"].as_str()
            && polls >= 3
        {
            break task.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the task was never polled: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    genq.signal("KILL");
    assert!(
        !genq.wait(Duration::from_secs(10)),
        "SIGKILL is not a clean exit"
    );

    let genq = Process::serve(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (_, job) = client_call(&genq.url, Method::GET, &format!("/v1/jobs/{id}"), None).await;
        if job["state"] != "running" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the task job never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["attempt"], 1,
        "the restart resumed the attempt: {done}"
    );
    assert!(
        done["result"]["video_url"]
            .as_str()
            .unwrap()
            .contains(&task_id),
        "the result is the first task's: {done}"
    );
    let stats = fake_stats(&fake_url).await;
    assert_eq!(stats.jobs[&id].tasks_created, 1, "no second paid task");
    genq.signal("TERM");
    assert!(genq.wait(Duration::from_secs(10)));
}

/// A process SIGKILLed while its local queue holds claimed jobs: another process runs every one
/// of them again within a lease, and none succeeds twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_queue_killed_with_its_process_is_run_again_by_another_within_a_lease() {
    const SLOTS: usize = 4;
    const LEASE: Duration = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let worker = format!(
        "concurrency = {SLOTS}\nlease = \"{}s\"\nheartbeat = \"1s\"\npoll_interval = \"100ms\"",
        LEASE.as_secs()
    );
    write_config_worker(dir.path(), "20ms", &worker, "");
    let server = Process::serve(dir.path());
    let (worker, node) = Process::worker(dir.path());
    let (status, body) = client_call(
        &server.url,
        Method::PUT,
        "/v1/admin/limits/batch_max_queued_per_user",
        Some(json!({"value": 1000})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..5 {
        submit(&server.url, 200).await;
    }
    // The worker's leases whose first attempt has not completed, beyond its slots, are jobs
    // waiting in its local queue. (Its other leases are attempts that ended and whose outcome
    // is not written yet: on a loaded machine, most of them.)
    let store = SqliteStore::open(dir.path().join("genq.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leases = store.node_leases(&node, 10_000).await.unwrap();
        let completed = first_attempts_completed(dir.path());
        let not_completed = leases.iter().filter(|j| !completed.contains(&j.id)).count();
        if not_completed > SLOTS + 8 {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never claimed ahead");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    worker.signal("KILL");
    let killed = Instant::now();
    assert!(!worker.wait(Duration::from_secs(10)));
    let held: Vec<String> = store
        .node_leases(&node, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert!(
        held.len() > SLOTS,
        "{} leases at the kill: the queue ran dry before it",
        held.len()
    );

    // The server's rescuer finds them once the lease is over; then they run at once.
    loop {
        let mut done = 0;
        for id in &held {
            if store.job(id).await.unwrap().state == JobState::Succeeded {
                done += 1;
            }
        }
        if done == held.len() {
            break;
        }
        assert!(
            killed.elapsed() < LEASE + Duration::from_secs(10),
            "{done} of the {} jobs the killed worker held succeeded",
            held.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until(&server.url, Duration::from_secs(60), "all 1000", |s| {
        n(s, "succeeded") == 1000
    })
    .await;

    // Attempt 1 of each held job was the killed worker's. The ones it never completed were
    // running at the kill (at most SLOTS) or waiting in its queue: those ran once, elsewhere.
    let completions = completions(dir.path());
    let mut never_completed_there = 0;
    for id in &held {
        let job = store.job(id).await.unwrap();
        assert!(job.attempt >= 2, "{id} was not run again: {job:?}");
        let done = &completions[id];
        assert!(
            done.iter().all(|a| *a <= job.attempt) && done.contains(&job.attempt),
            "{id}: completions {done:?}, succeeded at attempt {}",
            job.attempt
        );
        if !done.contains(&1) {
            assert_eq!(done.len(), 1, "{id} completed more than once: {done:?}");
            never_completed_there += 1;
        }
    }
    assert!(
        never_completed_there > SLOTS,
        "only {never_completed_there} held jobs had not completed in the killed worker: no queued job was tested"
    );
    drop(server);
}
