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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Set once `init_sentry` binds a client: until then the Sentry layer sees nothing. Without the
/// gate it would still copy every span's fields (one span per attempt) for a client that
/// never comes.
static SENTRY_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn init_logging(global: &Global) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `GENQ_LOG`, else `RUST_LOG`: filters such as `info,genq_engine=debug`.
    let filter = tracing_subscriber::EnvFilter::try_from_env("GENQ_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match global.log_format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    // Errors become Sentry events and warnings their breadcrumbs, once `[sentry] dsn` binds a
    // client (`init_sentry`).
    let sentry = sentry::integrations::tracing::layer()
        .event_filter(|meta| {
            use sentry::integrations::tracing::EventFilter;
            match *meta.level() {
                tracing::Level::ERROR => EventFilter::Event,
                tracing::Level::WARN => EventFilter::Breadcrumb,
                _ => EventFilter::Ignore,
            }
        })
        .with_filter(sentry_gate(&SENTRY_ON));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(sentry)
        .init();
}

/// Lets spans and events through while `on` is set, asked at every span and event
/// (`dynamic_filter_fn`): the flag is set once, after the config is read, when some call sites
/// have been reached already.
fn sentry_gate<S>(
    on: &'static std::sync::atomic::AtomicBool,
) -> impl tracing_subscriber::layer::Filter<S> {
    tracing_subscriber::filter::dynamic_filter_fn(move |_, _| {
        on.load(std::sync::atomic::Ordering::Relaxed)
    })
}

/// Report errors and panics to `[sentry] dsn`, if set, until the guard drops. Everything sent
/// is scrubbed of every secret the config holds (provider keys, tokens, webhook secrets, the
/// database password).
pub fn init_sentry(config: &Config) -> anyhow::Result<Option<sentry::ClientInitGuard>> {
    let Some(dsn) = &config.sentry.dsn else {
        return Ok(None);
    };
    let dsn: sentry::types::Dsn = dsn
        .parse()
        .map_err(|e| anyhow::anyhow!("sentry.dsn: not a Sentry DSN ({e})"))?;
    let scrub = std::sync::Arc::new(scrubber(config));
    let (for_events, for_breadcrumbs) = (scrub.clone(), scrub);
    let environment = config.sentry.environment.clone().unwrap_or_else(|| {
        match config.mode {
            genq_config::Mode::Production => "production",
            genq_config::Mode::Development => "development",
        }
        .into()
    });
    let guard = sentry::init(sentry::ClientOptions {
        dsn: Some(dsn),
        release: Some(format!("genq@{}+{}", genq_engine::VERSION, genq_engine::COMMIT).into()),
        environment: Some(environment.into()),
        send_default_pii: false,
        before_send: Some(std::sync::Arc::new(move |event| {
            scrubbed(&for_events, event)
        })),
        before_breadcrumb: Some(std::sync::Arc::new(move |crumb| {
            scrubbed(&for_breadcrumbs, crumb)
        })),
        ..Default::default()
    });
    SENTRY_ON.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Some(guard))
}

/// Every secret of the config, to be cut out of what leaves for Sentry.
fn scrubber(config: &Config) -> genq_engine::providers::redact::Redactor {
    let a = &config.auth;
    let password = reqwest::Url::parse(&config.database)
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    let secrets: Vec<&str> = config
        .providers
        .iter()
        .flat_map(|p| p.keys.iter())
        .chain(
            a.admin_tokens
                .iter()
                .chain(&a.app_tokens)
                .chain(&a.worker_tokens)
                .chain(&a.viewer_tokens),
        )
        .chain(config.webhooks.iter().map(|w| &w.secret))
        .chain(config.metrics.token.iter())
        .chain(password.iter())
        .map(String::as_str)
        .collect();
    genq_engine::providers::redact::Redactor::new(secrets)
}

/// `value` with every secret replaced, through its JSON form: whatever field a secret hides in
/// (message, exception, breadcrumb, extra data), it goes.
fn scrubbed<T: serde::Serialize + serde::de::DeserializeOwned>(
    redactor: &genq_engine::providers::redact::Redactor,
    value: T,
) -> Option<T> {
    let text = serde_json::to_string(&value).ok()?;
    match redactor.text(&text) {
        std::borrow::Cow::Borrowed(_) => Some(value),
        // Drop what cannot be read back rather than send it unscrubbed.
        std::borrow::Cow::Owned(clean) => serde_json::from_str(&clean).ok(),
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
/// on first start. The file is trusted only if it is a regular file of this user's that nobody
/// else may read or write; it is created 0600 in one step (a temporary file linked into place),
/// so no other process ever sees it half written or with a wider mode.
///
/// The token is kept as written, not as a hash: the CLI on the same machine reads it to call
/// the API (as `psql` reads `~/.pgpass`), and its mode is what protects it. In memory genq
/// keeps only digests of every token.
fn ensure_admin_token(config: &mut Config) -> anyhow::Result<Option<(String, PathBuf)>> {
    let a = &config.auth;
    if !(a.admin_tokens.is_empty()
        && a.app_tokens.is_empty()
        && a.worker_tokens.is_empty()
        && a.viewer_tokens.is_empty())
    {
        return Ok(None);
    }
    let Some(path) = token_file(config) else {
        bail!("auth.admin_tokens: set at least one token when the database is PostgreSQL");
    };
    let token = match read_token_file(&path)? {
        Some(token) => token,
        None => {
            let token = format!("genq_{}", random_hex());
            match create_token_file(&path, &token) {
                Ok(()) => token,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token_file(&path)?
                    .with_context(|| format!("{} vanished while genq read it", path.display()))?,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot store the admin token in {}", path.display())
                    });
                }
            }
        }
    };
    config.auth.admin_tokens.push(token.clone());
    Ok(Some((token, path)))
}

/// The token in `path`, `None` if there is no such file; an error that says how to fix it if
/// the file cannot be trusted.
fn read_token_file(path: &Path) -> anyhow::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {shown}")),
    };
    if !meta.file_type().is_file() {
        bail!(
            "{shown} is not a regular file (a link or a directory); remove it, and genq will make a new admin token"
        );
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "{shown} belongs to uid {}, not to uid {me} that genq runs as; remove it (genq will make a new admin token) or `chown {me} {shown}`",
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{shown} may be read or changed by other users (mode {:o}); run `chmod 600 {shown}`, or remove it and genq will make a new admin token",
            meta.mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    let token = text.trim();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "{shown} does not hold an admin token (16 or more printable characters); remove it, and genq will make a new one"
        );
    }
    Ok(Some(token.to_string()))
}

fn create_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates its files with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".genq-token-")
        .tempfile_in(dir)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist_noclobber(path).map_err(|e| e.error)?;
    Ok(())
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `genq backup PATH`: a consistent copy of the SQLite database while genq runs.
pub async fn backup(config_path: Option<&Path>, to: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let db = match config.database() {
        Database::Sqlite(path) => path,
        Database::Postgres(_) => bail!(
            "genq backup copies a SQLite database; for PostgreSQL use its own tools, e.g. `pg_dump --format=custom {}`",
            config.database_label()
        ),
    };
    if !db.exists() {
        bail!("database: {} does not exist", db.display());
    }
    let (from, into) = (db.clone(), to.to_path_buf());
    tokio::task::spawn_blocking(move || genq_store::sqlite::backup(&from, &into))
        .await?
        .with_context(|| format!("cannot copy {} to {}", db.display(), to.display()))?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "copied {} to {} ({} bytes); start genq from it with database = \"sqlite://{}\"",
        db.display(),
        to.display(),
        size,
        to.display()
    );
    Ok(())
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
    let engine = Engine::from_config(store, config, settings).await?;
    // Webhooks show jobs as the API does, also from a process without the API.
    engine.set_render(Arc::new(genq_api::views::EventRender {
        mode: config.mode,
        messages: config.messages(),
    }));
    Ok(engine)
}

pub async fn serve(config_path: Option<&Path>, api: bool, workers: bool) -> anyhow::Result<()> {
    let mut config = load_config(config_path)?;
    let generated = if api {
        ensure_admin_token(&mut config)?
    } else {
        None
    };
    let _sentry = init_sentry(&config)?;
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
    let config = Arc::new(config);
    let state = Arc::new(AppState::new(
        engine.clone(),
        config.clone(),
        Arc::new(SystemClock),
    ));
    let metrics_task = match config.metrics.listen.filter(|_| config.metrics.enabled) {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("metrics.listen: cannot bind {at}"))?;
            println!("genq metrics on http://{}/metrics", listener.local_addr()?);
            let (state, shutdown) = (state.clone(), shutdown.clone());
            Some(tokio::spawn(async move {
                genq_api::server::serve_metrics(listener, state, shutdown.cancelled()).await
            }))
        }
        None => None,
    };
    if api {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Written, not `println!`: a reader that closed stdout (a pipe to `head`) must not
        // take the server down with a panic.
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "genq listening on http://{addr} (database {}, node {}); dashboard: http://{addr}/",
            config.database_label(),
            engine.shared().settings.node_id
        );
        if let Some((token, path)) = generated {
            let _ = writeln!(out, "admin token: {token}");
            let _ = writeln!(
                out,
                "  (stored in {}; send it as Authorization: Bearer <token>, or sign in to the dashboard with it)",
                path.display()
            );
        }
        genq_api::server::serve(listener, state, shutdown.cancelled())
            .await
            .context("the HTTP server failed")?;
    } else {
        println!(
            "genq worker running as node {}",
            engine.shared().settings.node_id
        );
    }
    engine_task.await.context("the engine failed")?;
    if let Some(task) = metrics_task {
        task.await?.context("the metrics server failed")?;
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the events that reach it.
    struct Seen(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fail() {
        tracing::error!("one call site");
    }

    #[test]
    fn a_call_site_reached_before_the_gate_opens_gets_through_after() {
        static ON: AtomicBool = AtomicBool::new(false);
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .with(Seen(seen.clone()).with_filter(super::sentry_gate(&ON)));
        tracing::subscriber::with_default(subscriber, || {
            fail();
            assert_eq!(
                seen.load(Ordering::Relaxed),
                0,
                "closed: nothing gets through"
            );
            ON.store(true, Ordering::Relaxed);
            fail();
            assert_eq!(
                seen.load(Ordering::Relaxed),
                1,
                "open: the same call site gets through"
            );
        });
    }
}
