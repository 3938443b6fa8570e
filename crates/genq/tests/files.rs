//! The real `genq` binary and what it leaves on disk and in memory: a zero-config start makes
//! its token and database files private, refuses a token file others may read or that holds no
//! token, and bursts of large listings stay bounded and keep nothing new.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `genq serve` that is expected to refuse to start: its stderr, bounded in time.
fn refused(dir: &Path) -> String {
    let mut child = std::process::Command::new(genq_bin())
        .args(["serve", "--config"])
        .arg(dir.join("genq.toml"))
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "genq started with an unsafe token file");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("genq started with an unsafe token file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_files_are_private_and_an_unsafe_token_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("genq.toml"), "listen = \"127.0.0.1:0\"\n").unwrap();
    let token_file = d.join("genq.admin-token");

    let first = Process::serve(d);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let (status, _) = reqwest::Client::new()
        .post(format!("{}/v1/jobs", first.url))
        .bearer_auth(&token)
        .json(&json!({"kind": "card.generate", "user_id": "u1", "payload": {}}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(mode(&token_file), 0o600);
    for file in ["genq.db", "genq.db-wal", "genq.db-shm"] {
        assert_eq!(
            mode(&d.join(file)) & 0o077,
            0,
            "{file} is readable by others"
        );
    }
    drop(first);

    // Readable or writable by others: refused, with what to do, and left as it was.
    for unsafe_mode in [0o666, 0o644, 0o640] {
        chmod(&token_file, unsafe_mode);
        let err = refused(d);
        assert!(err.contains("chmod 600"), "{err}");
        assert_eq!(mode(&token_file), unsafe_mode);
    }
    // Private but not a token.
    std::fs::write(&token_file, "short\n").unwrap();
    chmod(&token_file, 0o600);
    let err = refused(d);
    assert!(err.contains("does not hold an admin token"), "{err}");
    // A link to somebody else's file.
    std::fs::remove_file(&token_file).unwrap();
    std::os::unix::fs::symlink(d.join("genq.toml"), &token_file).unwrap();
    let err = refused(d);
    assert!(err.contains("not a regular file"), "{err}");

    // Gone: a new one, private from its first byte.
    std::fs::remove_file(&token_file).unwrap();
    let second = Process::serve(d);
    let new_token = std::fs::read_to_string(&token_file).unwrap();
    assert_ne!(new_token.trim(), token);
    assert_eq!(mode(&token_file), 0o600);
    drop(second);
}

/// Anonymous resident memory: the heap, not the binary's pages that a first request faults in.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_large_listings_stay_bounded_and_keep_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("genq.toml"),
        format!(
            r#"
listen = "127.0.0.1:0"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
[[providers]]
name = "demo"
type = "demo"
[[kinds]]
name = "report.weekly"
external = true
"#
        ),
    )
    .unwrap();
    let genq = Process::serve(d);
    let http = reqwest::Client::new();
    // 30 jobs of ~1.9 MiB: 57 MiB of payloads.
    let blob = "x".repeat(1_900_000);
    for _ in 0..30 {
        let status = http
            .post(format!("{}/v1/jobs", genq.url))
            .bearer_auth(ADMIN)
            .json(&json!({"kind": "report.weekly", "user_id": "u1", "payload": {"blob": blob}}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    let before = rss_kib(genq.child.id());
    let mut peak = before;
    let mut largest = 0;
    let mut after_round = Vec::new();
    for _ in 0..6 {
        let lists = (0..4).map(|_| {
            let request = http
                .get(format!("{}/v1/jobs?limit=30", genq.url))
                .bearer_auth(ADMIN)
                .send();
            async move { request.await.unwrap().bytes().await.unwrap().len() }
        });
        for len in futures::future::join_all(lists).await {
            largest = largest.max(len);
        }
        let now = rss_kib(genq.child.id());
        peak = peak.max(now);
        after_round.push(now);
    }
    eprintln!("anonymous RSS before {before} KiB, after each burst {after_round:?} KiB");
    // One job per page: each answer holds one 1.9 MiB job, not thirty.
    assert!(largest < 2_100_000, "an answer of {largest} bytes");
    // Bounded while it runs, and what stays afterwards (SQLite's page caches, the allocator's
    // free pages) does not grow with more bursts. Unbounded pages kept ~260 MB here.
    assert!(
        peak < before + 48 * 1024,
        "peak grew by {} KiB",
        peak - before
    );
    // What the first bursts reached, the later ones do not pass.
    let (first, last) = (after_round[0].max(after_round[1]), after_round[5]);
    assert!(
        last < before + 48 * 1024,
        "{} KiB kept after six bursts",
        last - before
    );
    assert!(
        last <= first + 8 * 1024,
        "memory kept grows with each burst: {after_round:?}"
    );
}

/// `genq backup` while genq runs and writes: a second genq started from the copy has every job
/// and balance that was committed before the backup began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_has_everything_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = |db: &Path| {
        format!(
            r#"
listen = "127.0.0.1:0"
database = "sqlite://{}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
initial_credits = 1000
[[providers]]
name = "demo"
type = "demo"
latency = "5ms"
[[kinds]]
name = "card.generate"
provider = "demo"
cost = 1
"#,
            db.display()
        )
    };
    std::fs::write(
        dir.path().join("genq.toml"),
        config(&dir.path().join("genq.db")),
    )
    .unwrap();
    let genq = Process::serve(dir.path());
    let url = genq.url.clone();
    // Writers: batches of 10 for five users, each acknowledged batch recorded with when.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(
        Vec::<(Instant, String, Vec<String>)>::new(),
    ));
    let mut writers = Vec::new();
    for w in 0..5 {
        let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let user = format!("u{w}");
            let items: Vec<serde_json::Value> = (0..10).map(|i| json!({"n": i})).collect();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (status, out) = client_call(
                    &url,
                    reqwest::Method::POST,
                    "/v1/batches",
                    Some(json!({"kind": "card.generate", "user_id": user, "items": items})),
                )
                .await;
                if status != 201 {
                    break; // out of credits
                }
                let ids = out["job_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                acked
                    .lock()
                    .unwrap()
                    .push((Instant::now(), user.clone(), ids));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let copy = dir.path().join("copy.db");
    let began = Instant::now();
    let backup = {
        let (copy, conf) = (copy.clone(), dir.path().join("genq.toml"));
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(genq_bin())
                .args(["backup", "--config"])
                .arg(conf)
                .arg(copy)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    drop(genq);
    assert_eq!(mode(&copy) & 0o077, 0, "the copy is private");

    let before: Vec<(String, Vec<String>)> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _, _)| *at < began)
        .map(|(_, u, ids)| (u.clone(), ids.clone()))
        .collect();
    assert!(
        before.len() >= 5,
        "writes before the backup: {}",
        before.len()
    );
    // A second genq on the copy.
    let second = tempfile::tempdir().unwrap();
    std::fs::write(second.path().join("genq.toml"), config(&copy)).unwrap();
    let restored = Process::serve(second.path());
    for (_, ids) in &before {
        for id in ids {
            let (status, job) = client_call(
                &restored.url,
                reqwest::Method::GET,
                &format!("/v1/jobs/{id}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "job {id} committed before the backup: {job}");
        }
    }
    // Each balance is exact for the jobs the copy holds: 1000 less one credit a job.
    for w in 0..5 {
        let user = format!("u{w}");
        let (_, u) = client_call(
            &restored.url,
            reqwest::Method::GET,
            &format!("/v1/users/{user}"),
            None,
        )
        .await;
        let (_, ledger) = client_call(
            &restored.url,
            reqwest::Method::GET,
            &format!("/v1/users/{user}/ledger?limit=200"),
            None,
        )
        .await;
        let debited: i64 = ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["amount"].as_i64().unwrap())
            .sum();
        assert_eq!(u["credits"].as_i64().unwrap(), debited, "{u} {ledger}");
        let acked_before: usize = before
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, ids)| ids.len())
            .sum();
        assert!(1000 - u["credits"].as_i64().unwrap() >= acked_before as i64);
    }
    drop(restored);
}

#[test]
fn a_backup_of_postgres_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("genq.toml"),
        format!(
            "database = \"postgres://postgres@127.0.0.1:5432/genq\"\n[auth]\nadmin_tokens = [\"{ADMIN}\"]\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(genq_bin())
        .args(["backup", "--config"])
        .arg(dir.path().join("genq.toml"))
        .arg(dir.path().join("copy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}
