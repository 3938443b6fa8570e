//! Provider benchmarks against `genq fake-provider` on loopback, both in this process.
//!
//! - Goodput: 3 keys × 600 requests per minute, 3,000 jobs. How much of the allowed 1,800
//!   requests a minute genq uses, and how many requests the provider answers 429.
//! - Video: 500 tasks of 60 s under `concurrency = 25`: how many are in flight at once.

use super::{BenchArgs, batch_of, open};
use anyhow::Context;
use genq_config::Config;
use genq_engine::{Engine, EngineCounters, EngineSettings};
use genq_store::Store;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const KEYS: [&str; 3] = ["sk-bench-1", "sk-bench-2", "sk-bench-3"];
const KEY_RPM: u32 = 600;

async fn fake(config: genq_fake_provider::FakeConfig) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, genq_fake_provider::router(config)).await;
    });
    Ok(url)
}

async fn fake_stats(url: &str) -> anyhow::Result<genq_fake_provider::Stats> {
    Ok(reqwest::get(format!("{url}/stats")).await?.json().await?)
}

/// An engine for `config_text` (providers and kinds) on a fresh database.
async fn engine(path: &Path, config_text: &str, concurrency: u32) -> anyhow::Result<Engine> {
    let mut config = Config::from_toml("bench.toml", config_text, &Default::default())
        .context("the bench config")?;
    config.worker.concurrency = concurrency;
    let store = open(path).await?;
    let mut settings = EngineSettings::from_config(&config);
    settings.node_id = format!("bench-{}", std::process::id());
    Ok(Engine::from_config(store, &config, settings).await?)
}

async fn enqueue(
    store: &Arc<dyn Store>,
    kind: &str,
    n: usize,
    payload: serde_json::Value,
) -> anyhow::Result<()> {
    for (b, start) in (0..n).step_by(200).enumerate() {
        let count = (n - start).min(200);
        store
            .enqueue(batch_of(kind, b % 10, vec![payload.clone(); count], 0))
            .await?;
    }
    Ok(())
}

/// Run `engine` until `n` jobs succeeded; the seconds that took.
async fn run_until(engine: &Engine, n: u64) -> f64 {
    let stop = CancellationToken::new();
    let (e, s) = (engine.clone(), stop.clone());
    let started = Instant::now();
    let task = tokio::spawn(async move { e.run(s, true).await });
    while EngineCounters::get(&engine.counters().succeeded) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = task.await;
    secs
}

/// The fake provider at `url` as an `http` provider with [`KEYS`] at [`KEY_RPM`] each, and its
/// chat kind.
fn chat_config(url: &str) -> String {
    format!(
        r#"
[[providers]]
name = "fake"
type = "http"
base_url = "{url}/v1"
keys = {keys:?}
key_requests_per_minute = {KEY_RPM}
[[kinds]]
name = "chat.generate"
provider = "fake"
path = "/chat/completions"
"#,
        keys = KEYS
    )
}

pub async fn goodput(dir: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    let url = fake(genq_fake_provider::FakeConfig {
        keys: KEYS.iter().map(|k| k.to_string()).collect(),
        requests_per_minute: Some(KEY_RPM),
        ..Default::default()
    })
    .await?;
    let text = chat_config(&url);
    let engine = engine(&dir.join("goodput.db"), &text, 25).await?;
    let n = args.provider_jobs as usize;
    let payload = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a card for a mug"}]});
    enqueue(engine.store(), "chat.generate", n, payload).await?;
    let secs = run_until(&engine, n as u64).await;
    let stats = fake_stats(&url).await?;
    let requests: u64 = stats.keys.values().map(|k| k.requests).sum();
    let refused: u64 = stats.keys.values().map(|k| k.rate_limited).sum();
    let allowed = (KEY_RPM as usize * KEYS.len()) as f64;
    let per_minute = (requests - refused) as f64 / secs * 60.0;
    println!(
        "provider goodput, 3 keys x {KEY_RPM}/min, {n} jobs   {per_minute:>7.0}/min = {:.1}% of {allowed:.0}   429s {refused} of {requests} ({:.2}%)   target >= 97%, <= 0.5%",
        per_minute / allowed * 100.0,
        refused as f64 / requests.max(1) as f64 * 100.0,
    );
    Ok(())
}

/// Few slots, one key out of credit: 8 slots, 3 keys of 600 a minute of which one answers 402
/// to everything, 30 ms a request, 900 jobs. The two good keys allow 1,200 a minute, and 8
/// slots cover that rate times the latency many times over: what is lost is lost to slots
/// held while waiting, or to the bad key.
pub async fn goodput_few_slots(dir: &Path) -> anyhow::Result<()> {
    const SLOTS: u32 = 8;
    const JOBS: usize = 900;
    let url = fake(genq_fake_provider::FakeConfig {
        keys: KEYS.iter().map(|k| k.to_string()).collect(),
        out_of_credit: vec![KEYS[2].to_string()],
        requests_per_minute: Some(KEY_RPM),
        latency: Duration::from_millis(30),
        ..Default::default()
    })
    .await?;
    let text = chat_config(&url);
    let engine = engine(&dir.join("goodput-few.db"), &text, SLOTS).await?;
    let payload = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a card for a mug"}]});
    enqueue(engine.store(), "chat.generate", JOBS, payload).await?;
    let secs = run_until(&engine, JOBS as u64).await;
    let stats = fake_stats(&url).await?;
    let key = |k: &str| stats.keys.get(k).cloned().unwrap_or_default();
    let good: u64 = KEYS[..2]
        .iter()
        .map(|k| key(k).requests - key(k).rate_limited)
        .sum();
    let refused: u64 = stats.keys.values().map(|k| k.rate_limited).sum();
    let allowed = (KEY_RPM * 2) as f64;
    let per_minute = good as f64 / secs * 60.0;
    println!(
        "provider goodput, {SLOTS} slots, 2 good keys x {KEY_RPM}/min + 1 out of credit, 30 ms, {JOBS} jobs   {per_minute:>7.0}/min = {:.1}% of {allowed:.0}   requests to the 402 key {}   429s {refused}   target >= 97%",
        per_minute / allowed * 100.0,
        key(KEYS[2]).requests,
    );
    Ok(())
}

pub async fn video(dir: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    let url = fake(genq_fake_provider::FakeConfig {
        keys: vec!["sk-video".into()],
        ..Default::default()
    })
    .await?;
    let n = args.video_tasks;
    let text = format!(
        r#"
[[providers]]
name = "video"
type = "task"
base_url = "{url}"
keys = ["sk-video"]
create_path = "/v1/tasks"
status_path = "/v1/tasks/{{task_id}}"
poll_interval = "5s"
max_wait = "10m"
max_concurrent = {n}
[[kinds]]
name = "video.generate"
provider = "video"
"#
    );
    let engine = engine(&dir.join("video.db"), &text, 25).await?;
    let ms = args.video_seconds * 1000;
    enqueue(
        engine.store(),
        "video.generate",
        n as usize,
        json!({"prompt": "a mug", "simulate": {"latency_ms": ms}}),
    )
    .await?;
    let secs = run_until(&engine, n as u64).await;
    let stats = fake_stats(&url).await?;
    let created: u64 = stats.keys.values().map(|k| k.tasks_created).sum();
    println!(
        "provider video: {n} tasks of {}s, concurrency 25   {} in flight at once, {created} created, all done in {secs:.1}s   target all {n} at once",
        args.video_seconds, stats.max_tasks_in_flight,
    );
    Ok(())
}
