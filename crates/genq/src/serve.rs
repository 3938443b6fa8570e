//! `genq serve` and `genq worker`: load the config, open the database, run the engine (and the
//! API), stop gracefully on SIGTERM/SIGINT.

use crate::cli::{Global, LogFormat};
use anyhow::{Context, bail};
use genq_api::AppState;
use genq_config::{Config, Database, SqliteSynchronous};
use genq_core::SystemClock;
use genq_engine::{Engine, EngineSettings};
use genq_store::{PgStore, SqliteStore, Store, Synchronous};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub fn init_logging(global: &Global) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GENQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    Ok(Config::load(path, &vars)?)
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match config.database() {
        Database::Sqlite(path) => {
            let synchronous = match config.sqlite.synchronous {
                SqliteSynchronous::Full => Synchronous::Full,
                SqliteSynchronous::Normal => Synchronous::Normal,
            };
            let store = SqliteStore::open_with(&path, synchronous)
                .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = PgStore::connect_pooled(&url, config.postgres.max_connections)
                .await
                .with_context(|| format!("database: cannot open {}", config.database_label()))?;
            Ok(Arc::new(if config.postgres.notify {
                store
            } else {
                store.without_notify()
            }))
        }
    }
}

/// Where a zero-config server keeps its generated admin token: beside the database.
pub fn token_file(config: &Config) -> Option<PathBuf> {
    match config.database() {
        Database::Sqlite(path) => {
            let stem = path.file_stem()?.to_string_lossy().to_string();
            Some(path.with_file_name(format!("{stem}.admin-token")))
        }
        Database::Postgres(_) => None,
    }
}

/// With no tokens configured, use the admin token stored beside the database, generating it
/// (mode 0600) on first start.
fn ensure_admin_token(config: &mut Config) -> anyhow::Result<Option<(String, PathBuf)>> {
    let a = &config.auth;
    if !(a.admin_tokens.is_empty() && a.app_tokens.is_empty() && a.worker_tokens.is_empty()) {
        return Ok(None);
    }
    let Some(path) = token_file(config) else {
        bail!("auth.admin_tokens: set at least one token when the database is PostgreSQL");
    };
    let token = match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => text.trim().to_string(),
        _ => {
            let token = format!("genq_{}", uuid_hex());
            write_private(&path, &token)
                .with_context(|| format!("cannot store the admin token in {}", path.display()))?;
            token
        }
    };
    config.auth.admin_tokens.push(token.clone());
    Ok(Some((token, path)))
}

fn uuid_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

pub async fn migrate(config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    open_store(&config).await?.migrate().await?;
    println!("migrations applied to {}", config.database_label());
    Ok(())
}

/// Fires on SIGTERM or SIGINT.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        t.cancel();
    });
    token
}

async fn build_engine(
    config: &Config,
    store: Arc<dyn Store>,
    node_id: String,
) -> anyhow::Result<Engine> {
    let mut settings = EngineSettings::from_config(config);
    settings.node_id = node_id;
    Ok(Engine::from_config(store, config, settings).await?)
}

pub async fn serve(config_path: Option<&Path>, api: bool, workers: bool) -> anyhow::Result<()> {
    let mut config = load_config(config_path)?;
    let generated = if api {
        ensure_admin_token(&mut config)?
    } else {
        None
    };
    let store = open_store(&config).await?;
    let (node_id, _node_lock) =
        genq_engine::acquire_node_id(store.as_ref(), &config.node_id()).await?;
    let engine = build_engine(&config, store, node_id).await?;
    let shutdown = shutdown_signal();
    let engine_task = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { engine.run(shutdown, workers).await })
    };
    if api {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        let addr = listener.local_addr()?;
        let config = Arc::new(config);
        let state = Arc::new(AppState::new(
            engine.clone(),
            config.clone(),
            Arc::new(SystemClock),
        ));
        let app = genq_api::router(state);
        println!(
            "genq listening on http://{addr} (database {}, node {})",
            config.database_label(),
            engine.shared().settings.node_id
        );
        if let Some((token, path)) = generated {
            println!("admin token: {token}");
            println!(
                "  (stored in {}; send it as Authorization: Bearer <token>)",
                path.display()
            );
        }
        let stop = shutdown.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .context("the HTTP server failed")?;
    } else {
        println!(
            "genq worker running as node {}",
            engine.shared().settings.node_id
        );
    }
    engine_task.await.context("the engine failed")?;
    tracing::info!("stopped");
    Ok(())
}
