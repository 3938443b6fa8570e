//! `genq bench`: throughput and latency on this machine, in one run, so the figures compare.
//!
//! 1. Engine, in process: no-op jobs enqueued in batches of 200 while the workers run; enqueue
//!    rate and end-to-end processed rate.
//! 2. Enqueue → start latency when idle: one job at a time.
//! 3. Queue depth: the processed rate with 1,000 jobs queued behind the measured ones, and with
//!    `--deep` (default 1,000,000).
//! 4. HTTP: `POST /v1/batches` of 200 items, and end-to-end throughput through the API.
//! 5. Idle RSS of a `genq serve` process.
//! 6. Providers against the fake provider: goodput under per-key rate limits, and video tasks
//!    in flight at once ([`providers`]).

mod pages;
mod providers;

use anyhow::Context;
use async_trait::async_trait;
use clap::Args;
use genq_api::AppState;
use genq_config::Config;
use genq_core::{Failure, SystemClock, limits};
use genq_engine::handler::NoopHandler;
use genq_engine::{Attempt, Engine, EngineCounters, EngineSettings, Handler, KindRuntime, Reply};
use genq_store::{NewJobs, SqliteStore, Store, Synchronous};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "bench.noop";

#[derive(Args)]
pub struct BenchArgs {
    /// Jobs in the end-to-end throughput runs.
    #[arg(long, default_value_t = 50_000)]
    pub jobs: u64,
    /// The deep queue to compare against 1,000 queued jobs (0 skips the comparison).
    #[arg(long, default_value_t = 1_000_000)]
    pub deep: u64,
    /// Worker slots (`worker.concurrency`; the default is `genq serve`'s).
    #[arg(long, default_value_t = 25)]
    pub concurrency: u32,
    /// Repetitions of the end-to-end engine run; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Samples for the idle latency.
    #[arg(long, default_value_t = 500)]
    pub latency_samples: u32,
    /// Jobs in the provider goodput run (3 keys x 600 requests a minute).
    #[arg(long, default_value_t = 3_000)]
    pub provider_jobs: u64,
    /// Tasks in the video run.
    #[arg(long, default_value_t = 500)]
    pub video_tasks: u32,
    /// How long each video task takes at the provider.
    #[arg(long, default_value_t = 60)]
    pub video_seconds: u64,
    /// Run only these sections: engine, credits, latency, deep, http, rss, prune, metrics, pages,
    /// provider, few-slots, video.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Skip the HTTP runs.
    #[arg(long)]
    pub no_http: bool,
    /// Skip the idle RSS measurement.
    #[arg(long)]
    pub no_rss: bool,
    /// Record no metrics (to count what recording them costs, e.g. under callgrind).
    #[arg(long)]
    pub no_metrics: bool,
    /// Where to put the benchmark databases (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run on PostgreSQL instead of SQLite: `postgres://user@host/db`. Each run gets a schema
    /// `genq_bench_*` in that database, dropped and made again.
    #[arg(long)]
    pub database: Option<String>,
}

/// `--database`, for `open`.
static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match &args.database {
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "--database: expected postgres://…, got {url:?}"
            );
            let _ = POSTGRES.set(url.clone());
            println!(
                "genq bench: PostgreSQL (schemas genq_bench_* in the given database), concurrency {}, {cores} cores",
                args.concurrency
            );
        }
        None => println!(
            "genq bench: SQLite in {}, concurrency {}, {cores} cores",
            dir.display(),
            args.concurrency
        ),
    }
    let postgres = args.database.is_some();
    // Printed with every figure the worker pool's size shapes.
    let c = args.concurrency;

    let wants = |section: &str| args.only.is_empty() || args.only.iter().any(|s| s == section);
    let syncs = match (wants("engine"), postgres) {
        (false, _) => vec![],
        // `synchronous` is SQLite's; PostgreSQL's durability is its own configuration.
        (true, true) => vec![Synchronous::Full],
        (true, false) => vec![Synchronous::Full, Synchronous::Normal],
    };
    for synchronous in syncs {
        let mut runs = Vec::new();
        for run in 0..args.runs.max(1) {
            let path = dir.join(format!("throughput-{synchronous:?}-{run}.db"));
            runs.push(engine_throughput(&path, synchronous, &args, !args.no_metrics).await?);
        }
        let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.1)).collect();
        let enqueue_rate = median(runs.iter().map(|r| r.0).collect());
        let processed_rate = median(runs.iter().map(|r| r.1).collect());
        let mode = if postgres {
            "postgres".to_string()
        } else {
            format!("synchronous={synchronous:?}").to_lowercase()
        };
        println!("engine  enqueue, {mode:<18} (batches of 200)   {enqueue_rate:>10.0} jobs/s");
        println!(
            "engine  processed end to end, {mode:<18}   {processed_rate:>10.0} jobs/s   target >= {} (concurrency {c}, median of {})",
            if postgres { 5000 } else { 10000 },
            all.join(", ")
        );
    }

    if postgres && wants("engine") {
        // Two engines, each with its own connections, as two processes would be.
        let mut runs = Vec::new();
        for run in 0..args.runs.max(1) {
            runs.push(two_engines(&dir.join(format!("two-{run}.db")), &args).await?);
        }
        let all: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "engine  processed end to end, two engines on one database {:>8.0} jobs/s   (concurrency {c} each, median of {})",
            median(runs),
            all.join(", ")
        );
    }

    // The cost of credits on the enqueue path: every request checks the limits and the
    // balance; a kind with a cost also moves the balance and writes one debit entry.
    let shapes = if wants("credits") {
        vec![(200, 40_000), (1, 6_000)]
    } else {
        vec![]
    };
    for (per_request, total) in shapes {
        // Interleaved, three of each, medians: the machine's drift hits both alike.
        let (mut free, mut paid) = (Vec::new(), Vec::new());
        for run in 0..3 {
            let path = |cost| dir.join(format!("enqueue-{per_request}-{cost}-{run}.db"));
            free.push(enqueue_rate(&path(0), per_request, total, 0).await?);
            paid.push(enqueue_rate(&path(1), per_request, total, 1).await?);
        }
        let (free, paid) = (median(free), median(paid));
        println!(
            "engine  enqueue {per_request:>3} per request: cost 0 {free:>8.0} jobs/s, cost 1 {paid:>8.0} jobs/s   credits cost {:+.0}%, target <= +15%",
            (free / paid - 1.0) * 100.0
        );
    }

    if wants("latency") {
        let (p50, p99) = idle_latency(&dir.join("latency.db"), &args).await?;
        println!(
            "engine  enqueue -> start, idle                  p50 {p50:>6.2} ms  p99 {p99:>6.2} ms   target p99 <= {} ms (concurrency {c})",
            if postgres { 10 } else { 5 }
        );
    }

    if args.deep > 0 && wants("deep") {
        let measured = 50_000;
        let shallow = deep_queue(&dir.join("shallow.db"), 1_000, measured, &args).await?;
        let deep = deep_queue(&dir.join("deep.db"), args.deep, measured, &args).await?;
        println!(
            "engine  processed with      1,000 queued behind       {shallow:>10.0} jobs/s   (concurrency {c})"
        );
        println!(
            "engine  processed with {:>10} queued behind       {deep:>10.0} jobs/s   ratio {:.2}, target >= 0.80",
            group(args.deep),
            deep / shallow
        );
    }

    if !args.no_http && wants("http") {
        let (p50, p99, http_rate) = http(&dir.join("http.db"), &args).await?;
        println!(
            "http    POST /v1/batches, 200 items             p50 {p50:>6.2} ms  p99 {p99:>6.2} ms   target <= 20 ms"
        );
        println!(
            "http    processed end to end through the API          {http_rate:>10.0} jobs/s   (concurrency {c})"
        );
    }

    if !args.no_rss && wants("rss") && !postgres {
        let rss = idle_rss(&dir).await?;
        println!(
            "serve   idle RSS                                       {rss:>10.1} MB     target <= 30 MB"
        );
    }

    if wants("prune") && !postgres {
        let quiet = prune_effect(&dir.join("prune-off.db"), &args, false).await?;
        let pruning = prune_effect(&dir.join("prune-on.db"), &args, true).await?;
        println!(
            "prune   enqueue -> start p99 while {} finished jobs are pruned {:>6.2} ms   without {:>6.2} ms",
            group(PRUNED),
            pruning.0,
            quiet.0
        );
        println!(
            "prune   processed end to end meanwhile {:>10.0} jobs/s   without {:>8.0} jobs/s   ratio {:.2} (concurrency {c})",
            pruning.1,
            quiet.1,
            pruning.1 / quiet.1
        );
    }

    if wants("metrics") {
        // Interleaved, three of each, medians: the machine's drift hits both alike.
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for run in 0..3 {
            let path = |m| dir.join(format!("metrics-{m}-{run}.db"));
            off.push(
                engine_throughput(&path("off"), Synchronous::Full, &args, false)
                    .await?
                    .1,
            );
            on.push(
                engine_throughput(&path("on"), Synchronous::Full, &args, true)
                    .await?
                    .1,
            );
        }
        let (on, off) = (median(on), median(off));
        println!(
            "metrics processed end to end: on {on:>8.0} jobs/s, off {off:>8.0} jobs/s   metrics cost {:+.1}%, target <= 5% (concurrency {c})",
            (off / on - 1.0) * 100.0
        );
        let jobs = if args.deep > 0 { args.deep } else { 1_000_000 };
        let (p50, max) = scrape_time(&dir.join("scrape.db"), jobs, &args).await?;
        println!(
            "metrics GET /metrics with {:>10} jobs stored     p50 {p50:>6.1} ms  max {max:>6.1} ms",
            group(jobs)
        );
    }

    // Not in the default run: filling a million jobs takes a minute or two.
    if args.only.iter().any(|s| s == "pages") {
        pages::pages(&dir, &args).await?;
    }
    if wants("provider") {
        providers::goodput(&dir, &args).await?;
    }
    if wants("few-slots") {
        providers::goodput_few_slots(&dir).await?;
    }
    if wants("video") {
        providers::video(&dir, &args).await?;
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What `genq serve` runs with by default, but for `--concurrency` and `--no-metrics`.
fn settings(args: &BenchArgs) -> EngineSettings {
    EngineSettings {
        node_id: format!("bench-{}", std::process::id()),
        concurrency: args.concurrency,
        metrics: !args.no_metrics,
        ..EngineSettings::from_config(&Config::default())
    }
}

fn kinds(handler: Arc<dyn Handler>) -> HashMap<String, KindRuntime> {
    HashMap::from([(
        KIND.to_string(),
        KindRuntime {
            policy: Default::default(),
            timeout: Duration::from_secs(60),
            handler: Some(handler),
        },
    )])
}

async fn open(path: &Path) -> anyhow::Result<Arc<dyn Store>> {
    open_with(path, Synchronous::Full).await
}

/// A fresh database for one run: the SQLite file at `path`, or with `--database` a PostgreSQL
/// schema named after it.
async fn open_with(path: &Path, synchronous: Synchronous) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match POSTGRES.get() {
        Some(url) => Arc::new(fresh_schema(url, &schema_for(path)).await?),
        None => {
            let _ = std::fs::remove_file(path);
            Arc::new(
                SqliteStore::open_with(path, synchronous)
                    .with_context(|| format!("open {}", path.display()))?,
            )
        }
    };
    // The benchmark users may queue and run as much as the machine can take.
    let now = chrono::Utc::now();
    store
        .set_limit(limits::BATCH_MAX_QUEUED_PER_USER, 10_000_000, now)
        .await?;
    store
        .set_limit("daily_limit_enterprise", 100_000_000, now)
        .await?;
    Ok(store)
}

/// The PostgreSQL schema of the run that would use the SQLite file `path`: `genq_bench_` and
/// the file's stem, in ASCII letters, digits and `_` only (it is formatted into SQL).
fn schema_for(path: &Path) -> String {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("genq_bench_{name}")
}

/// Connect options for `url` in `schema`.
fn in_schema(url: &str, schema: &str) -> anyhow::Result<sqlx::postgres::PgConnectOptions> {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).context("--database")?;
    Ok(options.options([("search_path", schema)]))
}

/// A PostgreSQL store in schema `schema`, dropped and made again.
async fn fresh_schema(url: &str, schema: &str) -> anyhow::Result<genq_store::PgStore> {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).context("--database")?;
    let mut conn = options
        .options([("client_min_messages", "warning")])
        .connect()
        .await
        .context("--database: connect")?;
    for sql in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await.ok();
    Ok(genq_store::PgStore::connect_with(in_schema(url, schema)?, 32).await?)
}

/// End-to-end no-op jobs/s with two engines on one PostgreSQL database, each with its own
/// connections (as two processes would have), enqueueing and claiming at once.
async fn two_engines(path: &Path, args: &BenchArgs) -> anyhow::Result<f64> {
    let url = POSTGRES.get().context("two engines need --database")?;
    let first = open(path).await?;
    let options = in_schema(url, &schema_for(path))?;
    let second: Arc<dyn Store> = Arc::new(genq_store::PgStore::connect_with(options, 32).await?);
    let mut settings_b = settings(args);
    settings_b.node_id.push_str("-b");
    let a = start(first.clone(), Arc::new(NoopHandler), args);
    let b = Running::started(Engine::new(
        second.clone(),
        settings_b,
        kinds(Arc::new(NoopHandler)),
    ));
    let started = Instant::now();
    let per_batch = 200usize;
    let batches = args.jobs.div_ceil(per_batch as u64) as usize;
    let mut producers = Vec::new();
    for (p, store) in [first, second].into_iter().enumerate() {
        producers.push(tokio::spawn(async move {
            for n in (p..batches).step_by(2) {
                store.enqueue(batch(n % 10, per_batch)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let total = (batches * per_batch) as u64;
    while a.done() + b.done() < total {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    a.stop().await;
    b.stop().await;
    Ok(total as f64 / secs)
}

fn batch(user: usize, n: usize) -> NewJobs {
    batch_costing(user, n, 0)
}

fn batch_costing(user: usize, n: usize, cost: i64) -> NewJobs {
    batch_of(KIND, user, vec![json!({"bench": true}); n], cost)
}

/// A batch of `payloads` of `kind` for a benchmark user.
fn batch_of(kind: &str, user: usize, payloads: Vec<Value>, cost: i64) -> NewJobs {
    NewJobs {
        kind: kind.into(),
        user_id: format!("user-{user}"),
        payloads,
        priority: 0,
        run_at: None,
        max_retries: 5,
        cost,
        idempotency_key: None,
        as_batch: true,
        now: chrono::Utc::now(),
        day: chrono::Utc::now().date_naive().to_string(),
        user_defaults: genq_core::UserDefaults {
            plan: "enterprise".into(),
            initial_credits: 1_000_000_000,
        },
    }
}

/// Enqueue `total` jobs, `per_request` at a time from four producers, with no workers:
/// jobs/s.
async fn enqueue_rate(
    path: &Path,
    per_request: usize,
    total: usize,
    cost: i64,
) -> anyhow::Result<f64> {
    let store = open(path).await?;
    let requests = total / per_request;
    let started = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let store = store.clone();
            tokio::spawn(async move {
                for r in (p..requests).step_by(4) {
                    let mut req = batch_costing(r % 10, per_request, cost);
                    req.as_batch = per_request > 1;
                    store.enqueue(req).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for p in producers {
        p.await??;
    }
    Ok((requests * per_request) as f64 / started.elapsed().as_secs_f64())
}

struct Running {
    engine: Engine,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(store: Arc<dyn Store>, handler: Arc<dyn Handler>, args: &BenchArgs) -> Running {
    Running::started(Engine::new(store, settings(args), kinds(handler)))
}

impl Running {
    fn started(engine: Engine) -> Running {
        let stop = CancellationToken::new();
        let (e, s) = (engine.clone(), stop.clone());
        let task = tokio::spawn(async move { e.run(s, true).await });
        Running { engine, stop, task }
    }

    fn done(&self) -> u64 {
        EngineCounters::get(&self.engine.counters().succeeded)
    }

    async fn until_done(&self, n: u64) {
        while self.done() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn engine_throughput(
    path: &Path,
    synchronous: Synchronous,
    args: &BenchArgs,
    metrics: bool,
) -> anyhow::Result<(f64, f64)> {
    let store = open_with(path, synchronous).await?;
    let mut settings = settings(args);
    settings.metrics = metrics;
    let running = Running::started(Engine::new(
        store.clone(),
        settings,
        kinds(Arc::new(NoopHandler)),
    ));
    let started = Instant::now();
    let per_batch = 200usize;
    let batches = args.jobs.div_ceil(per_batch as u64) as usize;
    // Two producers, ten users, batches of 200: the shape of an application under load.
    let mut producers = Vec::new();
    for p in 0..2 {
        let store = store.clone();
        let engine = running.engine.clone();
        producers.push(tokio::spawn(async move {
            for b in (p..batches).step_by(2) {
                store.enqueue(batch(b % 10, per_batch)).await?;
                engine.wake().work();
            }
            anyhow::Ok(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    let total = (batches * per_batch) as u64;
    running.until_done(total).await;
    let processed_secs = started.elapsed().as_secs_f64();
    running.stop().await;
    Ok((total as f64 / enqueue_secs, total as f64 / processed_secs))
}

/// Reports when each attempt starts.
struct StartProbe(mpsc::UnboundedSender<Instant>);

#[async_trait]
impl Handler for StartProbe {
    async fn run(&self, _attempt: Attempt) -> Result<Reply, Failure> {
        let _ = self.0.send(Instant::now());
        Ok(Reply::Done(json!({})))
    }
}

async fn idle_latency(path: &Path, args: &BenchArgs) -> anyhow::Result<(f64, f64)> {
    let store = open(path).await?;
    let (tx, mut starts) = mpsc::unbounded_channel();
    let running = start(store.clone(), Arc::new(StartProbe(tx)), args);
    let mut hist = Histogram::<u64>::new(3)?;
    for _ in 0..args.latency_samples {
        let t0 = Instant::now();
        store.enqueue(batch(0, 1)).await?;
        running.engine.wake().work();
        let started = starts.recv().await.context("the engine stopped")?;
        hist.record(started.duration_since(t0).as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    running.stop().await;
    Ok((
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// Finished jobs the prune section deletes while it measures.
const PRUNED: u64 = 100_000;

/// Enqueue→start p99 (ms) and end-to-end throughput with 100,000 old finished jobs in the
/// database, and (with `prune`) the pruner's steps deleting them meanwhile.
async fn prune_effect(path: &Path, args: &BenchArgs, prune: bool) -> anyhow::Result<(f64, f64)> {
    let store = open(path).await?;
    // The old jobs: run to success first.
    let filler = start(store.clone(), Arc::new(NoopHandler), args);
    let mut queued = 0;
    while queued < PRUNED {
        store
            .enqueue(batch((queued / 200 % 10) as usize, 200))
            .await?;
        filler.engine.wake().work();
        queued += 200;
    }
    filler.until_done(PRUNED).await;
    filler.stop().await;

    let (tx, mut starts) = mpsc::unbounded_channel();
    let running = start(store.clone(), Arc::new(StartProbe(tx)), args);
    let pruner = prune.then(|| {
        let store = store.clone();
        tokio::spawn(async move {
            // The pruner's own step size and pace, with every job old enough.
            let step = genq_store::Prune {
                state: genq_core::JobState::Succeeded,
                finished_before: chrono::Utc::now() + chrono::Duration::hours(1),
                keep_newest: None,
                limit: genq_engine::pruner::STEP,
            };
            let (begun, mut deleted) = (Instant::now(), 0);
            while deleted < PRUNED {
                let took = Instant::now();
                deleted += store.prune_jobs(&step).await?;
                tokio::time::sleep(genq_engine::pruner::breath(took.elapsed())).await;
            }
            anyhow::Ok(begun.elapsed())
        })
    });
    let mut hist = Histogram::<u64>::new(3)?;
    for _ in 0..300 {
        let t0 = Instant::now();
        store.enqueue(batch(0, 1)).await?;
        running.engine.wake().work();
        let started = starts.recv().await.context("the engine stopped")?;
        hist.record(started.duration_since(t0).as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let done_before = running.done();
    let measured = 20_000u64;
    let begun = Instant::now();
    for b in 0..(measured / 200) {
        store.enqueue(batch((b % 10) as usize, 200)).await?;
        running.engine.wake().work();
    }
    while running.done() < done_before + measured {
        while starts.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let measuring = begun.elapsed();
    let rate = measured as f64 / measuring.as_secs_f64();
    if let Some(pruner) = pruner {
        let pruning = pruner.await??;
        println!(
            "prune   {} jobs pruned in {:.1} s (500 a step); the throughput run took {:.1} s",
            group(PRUNED),
            pruning.as_secs_f64(),
            measuring.as_secs_f64()
        );
    }
    running.stop().await;
    Ok((hist.value_at_quantile(0.99) as f64 / 1000.0, rate))
}

/// How long rendering `/metrics` takes with `jobs` in the store (the store-derived gauges
/// count them at every scrape): p50 and max of ten scrapes, in ms.
async fn scrape_time(path: &Path, jobs: u64, args: &BenchArgs) -> anyhow::Result<(f64, f64)> {
    let store = open(path).await?;
    let mut queued = 0u64;
    while queued < jobs {
        let n = (jobs - queued).min(200) as usize;
        store
            .enqueue(batch((queued / 200 % 100) as usize, n))
            .await?;
        queued += n as u64;
    }
    let engine = Engine::new(store, settings(args), kinds(Arc::new(NoopHandler)));
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let text = engine.render_metrics().await;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            text.contains("genq_database_up 1"),
            "the store did not answer"
        );
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    Ok((median(times), max))
}

async fn deep_queue(
    path: &Path,
    behind: u64,
    measured: u64,
    args: &BenchArgs,
) -> anyhow::Result<f64> {
    let store = open(path).await?;
    let total = behind + measured;
    let mut queued = 0u64;
    let mut user = 0;
    while queued < total {
        let n = (total - queued).min(200) as usize;
        store.enqueue(batch(user % 100, n)).await?;
        queued += n as u64;
        user += 1;
    }
    let running = start(store, Arc::new(NoopHandler), args);
    let started = Instant::now();
    running.until_done(measured).await;
    let secs = started.elapsed().as_secs_f64();
    running.stop().await;
    Ok(measured as f64 / secs)
}

async fn http(path: &Path, args: &BenchArgs) -> anyhow::Result<(f64, f64, f64)> {
    let store = open(path).await?;
    let running = start(store, Arc::new(NoopHandler), args);
    let mut config = Config::default();
    let token = "bench-admin-token-0123456789".to_string();
    config.auth.admin_tokens = vec![token.clone()];
    config.users.default_plan = "enterprise".into();
    config.providers = vec![genq_config::demo_provider()];
    let mut kind = genq_config::demo_kinds().remove(0);
    kind.name = KIND.into();
    config.kinds = vec![kind];
    let state = Arc::new(AppState::new(
        running.engine.clone(),
        Arc::new(config),
        Arc::new(SystemClock),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        genq_api::server::serve(listener, state, std::future::pending()).await
    });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/batches");
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"item": i, "prompt": "a product card"}))
        .collect();
    let submit = |user: usize| {
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"kind": KIND, "user_id": format!("user-{user}"), "items": items}))
            .send()
    };

    // Latency of one batch request at a time.
    let mut hist = Histogram::<u64>::new(3)?;
    let requests = 50;
    for i in 0..requests {
        let t0 = Instant::now();
        let resp = submit(i % 10).await?;
        anyhow::ensure!(
            resp.status().as_u16() == 201,
            "batch submit answered {}",
            resp.status()
        );
        resp.bytes().await?;
        hist.record(t0.elapsed().as_micros() as u64)?;
    }
    running.until_done((requests * 200) as u64).await;

    // Throughput through the API: four clients submitting batches.
    let before = running.done();
    let started = Instant::now();
    let batches = (args.jobs / 200).max(1) as usize;
    let mut clients = Vec::new();
    for c in 0..4 {
        let (client, url, token, items) =
            (client.clone(), url.clone(), token.clone(), items.clone());
        clients.push(tokio::spawn(async move {
            for b in (c..batches).step_by(4) {
                let resp = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"kind": KIND, "user_id": format!("user-{}", b % 10), "items": items}))
                    .send()
                    .await?;
                anyhow::ensure!(resp.status().as_u16() == 201, "batch submit answered {}", resp.status());
            }
            anyhow::Ok(())
        }));
    }
    for c in clients {
        c.await??;
    }
    running.until_done(before + (batches * 200) as u64).await;
    let rate = (batches * 200) as f64 / started.elapsed().as_secs_f64();
    server.abort();
    running.stop().await;
    Ok((
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        rate,
    ))
}

/// Start `genq serve` (this binary) with the zero-config setup, let it settle, read its RSS.
async fn idle_rss(dir: &Path) -> anyhow::Result<f64> {
    use tokio::io::AsyncBufReadExt;
    let db = dir.join("rss.db");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("GENQ_DATABASE", format!("sqlite://{}", db.display()))
        .env("GENQ_LISTEN", "127.0.0.1:0")
        .env_remove("GENQ_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if line.starts_with("genq listening") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = child.id().context("serve exited")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    child.kill().await?;
    Ok(kb / 1024.0)
}
