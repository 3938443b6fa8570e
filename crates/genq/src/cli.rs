//! The command line (SPEC §10). Every verb has `--help`; errors say what to do.

use crate::{bench, client, serve};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `genq --version`: the crate version and the commit.
const VERSION: &str = const_format::concatcp!(genq_engine::VERSION, " (", genq_engine::COMMIT, ")");

#[derive(Parser)]
#[command(name = "genq", version = VERSION, about = "A durable, fair job queue for AI generation", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GENQ_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// The TOML config file; without it genq runs the zero-config demo setup.
    #[arg(long, short, env = "GENQ_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The genq server's base URL.
    #[arg(long, env = "GENQ_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token. Default: the admin token a zero-config `genq serve` stored in ./genq.admin-token.
    #[arg(long, env = "GENQ_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the API and the workers in one process.
    Serve(ConfigArgs),
    /// Run workers only (no API), against the same database as `serve`.
    Worker(ConfigArgs),
    /// Apply database migrations and exit.
    Migrate(ConfigArgs),
    /// Enqueue one job.
    Enqueue(EnqueueArgs),
    /// Submit and follow batches.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// List, show, cancel and retry jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Show job counts per state and kind.
    Stats(ClientArgs),
    /// Show users, set their plan, add or take credits.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Read and change the runtime limits (admin).
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// The `[[schedules]]`: next and last runs; pause and resume (admin).
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Copy the SQLite database, consistent, while genq runs and writes (PostgreSQL: use
    /// pg_dump).
    Backup(BackupArgs),
    /// Check the config, the database, and every provider and key; print what is wrong.
    Doctor(DoctorArgs),
    /// Print a shell completion script: `genq completions bash > /etc/bash_completion.d/genq`.
    Completions(CompletionsArgs),
    /// Measure throughput and latency on this machine.
    Bench(bench::BenchArgs),
    /// Run a fake AI provider (OpenAI-compatible chat and images, a task API, per-key limits)
    /// for tests and benchmarks.
    FakeProvider(FakeProviderArgs),
}

#[derive(Args)]
pub struct FakeProviderArgs {
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: std::net::SocketAddr,
    /// Accepted API keys, comma-separated; none accepts any key.
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Keys out of credit, comma-separated: every request with one is answered 402.
    #[arg(long, value_delimiter = ',')]
    pub out_of_credit: Vec<String>,
    /// Requests per minute per key.
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Tokens per minute per key.
    #[arg(long)]
    pub tpm: Option<u32>,
    /// Requests in flight per key.
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    /// How long a request or task takes, e.g. 50ms or 60s.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub latency: std::time::Duration,
}

#[derive(Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job's kind, e.g. card.generate.
    #[arg(long)]
    pub kind: String,
    /// The end user who owns the job.
    #[arg(long)]
    pub user: String,
    /// The payload, a JSON object.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    #[arg(long)]
    pub priority: Option<i32>,
    /// Run no earlier than this many milliseconds from now.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Subcommand)]
pub enum BatchCommand {
    /// Submit a JSONL file, one payload object per line, as batches of up to 200 items.
    Submit(BatchSubmitArgs),
}

#[derive(Args)]
pub struct BatchSubmitArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// JSONL: one payload object per line.
    pub file: PathBuf,
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub user: String,
    /// Run each item this many times (1 to 5).
    #[arg(long, default_value_t = 1)]
    pub copies: u32,
    /// Items per batch request.
    #[arg(long, default_value_t = 200)]
    pub chunk: usize,
    /// Wait until every job has finished, with a progress bar.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List(JobsListArgs),
    /// Show one job.
    Show(JobIdArgs),
    /// Cancel a job (refunds its cost).
    Cancel(JobIdArgs),
    /// Re-queue a failed or canceled job (admin).
    Retry(JobIdArgs),
}

#[derive(Args)]
pub struct JobsListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub batch: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// The next_cursor printed by the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the raw JSON page.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct JobIdArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub id: String,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Plan, credits, daily limit and usage, unfinished jobs.
    Show(UserArgs),
    /// Set a user's plan: free, basic, professional or enterprise (admin).
    Plan(UserPlanArgs),
    /// Add (positive) or take (negative) credits (admin).
    Credits(UserCreditsArgs),
}

#[derive(Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub user: String,
    /// Also print the newest ledger entries.
    #[arg(long)]
    pub ledger: bool,
}

#[derive(Args)]
pub struct UserPlanArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub user: String,
    pub plan: String,
}

#[derive(Args)]
pub struct UserCreditsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub user: String,
    /// Credits to add; negative to take away.
    #[arg(allow_hyphen_values = true)]
    pub delta: i64,
    #[arg(long, default_value = "admin adjustment")]
    pub reason: String,
}

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Print every limit with its default.
    Get(ClientArgs),
    /// Change one limit; it applies to the next request and to every worker within a second.
    Set(LimitSetArgs),
}

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Each schedule with its next and last run.
    List(ClientArgs),
    /// Let a schedule's slots pass without jobs.
    Pause(ScheduleArgs),
    /// Run a paused schedule again from its next slot.
    Resume(ScheduleArgs),
}

#[derive(Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub name: String,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where the copy goes; it must not exist yet.
    pub path: PathBuf,
}

#[derive(Args)]
pub struct LimitSetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub key: String,
    pub value: i64,
}

#[derive(Args, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// One JSON document on stdout (every check with its status), for scripts and probes.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Completions(a) => {
            use clap::CommandFactory;
            use std::io::Write;
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "genq", &mut script);
            match std::io::stdout().write_all(&script) {
                // `genq completions bash | head` is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Serve(a) => serve::serve(a.config.as_deref(), true, true).await,
        Command::Worker(a) => serve::serve(a.config.as_deref(), false, true).await,
        Command::Migrate(a) => serve::migrate(a.config.as_deref()).await,
        Command::Enqueue(a) => client::enqueue(a).await,
        Command::Batch(BatchCommand::Submit(a)) => client::batch_submit(a).await,
        Command::Jobs(JobsCommand::List(a)) => client::jobs_list(a).await,
        Command::Jobs(JobsCommand::Show(a)) => client::job_action(a, client::JobAction::Show).await,
        Command::Jobs(JobsCommand::Cancel(a)) => {
            client::job_action(a, client::JobAction::Cancel).await
        }
        Command::Jobs(JobsCommand::Retry(a)) => {
            client::job_action(a, client::JobAction::Retry).await
        }
        Command::Stats(a) => client::stats(a).await,
        Command::Users(UsersCommand::Show(a)) => client::user_show(a).await,
        Command::Users(UsersCommand::Plan(a)) => client::user_plan(a).await,
        Command::Users(UsersCommand::Credits(a)) => client::user_credits(a).await,
        Command::Limits(LimitsCommand::Get(a)) => client::limits_get(a).await,
        Command::Limits(LimitsCommand::Set(a)) => client::limits_set(a).await,
        Command::Schedules(SchedulesCommand::List(a)) => client::schedules_list(a).await,
        Command::Schedules(SchedulesCommand::Pause(a)) => client::schedule_pause(a, true).await,
        Command::Schedules(SchedulesCommand::Resume(a)) => client::schedule_pause(a, false).await,
        Command::Backup(a) => serve::backup(a.config.config.as_deref(), &a.path).await,
        Command::Doctor(a) => crate::doctor::run(a.config.config.as_deref(), a.json).await,
        Command::Bench(a) => bench::run(a).await,
        Command::FakeProvider(a) => fake_provider(a).await,
    }
}

async fn fake_provider(a: FakeProviderArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = genq_fake_provider::FakeConfig {
        keys: a.keys,
        out_of_credit: a.out_of_credit,
        requests_per_minute: a.rpm,
        tokens_per_minute: a.tpm,
        max_concurrent: a.max_concurrent,
        latency: a.latency,
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("--listen: cannot bind {}", a.listen))?;
    println!(
        "fake provider listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, genq_fake_provider::router(config))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the fake provider failed")
}
