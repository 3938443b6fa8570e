use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml("genq.toml", text, &BTreeMap::new())
}

fn load_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml("genq.toml", text, &vars)
}

#[test]
fn empty_config_is_the_zero_config_demo() {
    let c = load("").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database(), Database::Sqlite("genq.db".into()));
    assert_eq!(c.worker.concurrency, 25);
    assert_eq!(c.worker.lease, Duration::from_secs(30));
    assert_eq!(c.providers.len(), 1);
    let kinds: Vec<_> = c.kinds.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kinds, DEMO_KINDS);
}

#[test]
fn the_spec_example_parses_up_to_unsupported_provider_types() {
    let text = r#"
mode = "production"
listen = "0.0.0.0:9000"
[auth]
admin_tokens = ["env:GENQ_ADMIN_TOKEN"]
[worker]
concurrency = 10
lease = "20s"
heartbeat = "5s"
[messages]
temporary = "Try later"
[[providers]]
name = "demo"
type = "demo"
latency = "50ms"
[[kinds]]
name = "card.generate"
provider = "demo"
cost = 1
timeout = "120s"
max_retries = 3
retry_delays = ["1s", "5s"]
[[kinds]]
name = "report.weekly"
external = true
"#;
    let c = load_env(text, &[("GENQ_ADMIN_TOKEN", "0123456789abcdef0123")]).unwrap();
    assert_eq!(c.mode, Mode::Production);
    assert_eq!(c.auth.admin_tokens, vec!["0123456789abcdef0123"]);
    assert_eq!(c.messages().get(ErrorClass::Temporary), "Try later");
    let policy = c.kind("card.generate").unwrap().retry_policy();
    assert_eq!(policy.max_retries, 3);
    assert_eq!(
        policy.delays,
        vec![Duration::from_secs(1), Duration::from_secs(5)]
    );
    assert!(c.kind("report.weekly").unwrap().external);
}

#[test]
fn environment_overrides_win() {
    let c = load_env(
        "[worker]\nconcurrency = 4\n",
        &[
            ("GENQ_WORKER_CONCURRENCY", "7"),
            ("GENQ_DATABASE", "sqlite:///tmp/x.db"),
            ("GENQ_USERS_DEFAULT_PLAN", "basic"),
            ("GENQ_SQLITE_SYNCHRONOUS", "normal"),
            ("GENQ_ADMIN_TOKEN", "not an override"),
        ],
    )
    .unwrap();
    assert_eq!(c.worker.concurrency, 7);
    assert_eq!(c.database(), Database::Sqlite("/tmp/x.db".into()));
    assert_eq!(c.users.default_plan, "basic");
    assert_eq!(c.sqlite.synchronous, SqliteSynchronous::Normal);
}

#[test]
fn errors_name_the_key() {
    let cases: &[(&str, &str)] = &[
        ("[worker]\nconcurrency = 0\n", "worker.concurrency"),
        ("[worker]\nconcurrency = \"many\"\n", "worker.concurrency"),
        ("[worker]\nlease = \"3 parsecs\"\n", "worker.lease"),
        ("[worker]\nheartbeat = \"20s\"\n", "worker.heartbeat"),
        ("[worker]\nconcurency = 3\n", "worker.concurency"),
        ("database = \"mysql://x\"\n", "database"),
        (
            "[[providers]]\nname = \"demo\"\ntype = \"demo\"\n[[kinds]]\nname = \"a\"\nprovider = \"nope\"\n",
            "kinds[0].provider",
        ),
        (
            "[[providers]]\nname = \"demo\"\ntype = \"demo\"\n[[kinds]]\nname = \"a\"\nprovider = \"demo\"\nretry_delays = [\"1s\", \"soon\"]\n",
            "kinds[0].retry_delays[1]",
        ),
        (
            "[auth]\nadmin_tokens = [\"env:MISSING_TOKEN_VAR\"]\n",
            "auth.admin_tokens[0]",
        ),
        (
            "[auth]\nadmin_tokens = [\"short\"]\n",
            "auth.admin_tokens[0]",
        ),
        // One token in two scopes would silently get one of them.
        (
            "[auth]\nadmin_tokens = [\"0123456789abcdef0123\"]\nworker_tokens = [\"x123456789abcdef0123\", \"0123456789abcdef0123\"]\n",
            "auth.worker_tokens[1]",
        ),
        (
            "[auth]\napp_tokens = [\"0123456789abcdef 0123\"]\n",
            "auth.app_tokens[0]",
        ),
        // A key that cannot be sent in a header fails at start-up, not at every request.
        (
            "[[providers]]\nname = \"or\"\ntype = \"http\"\nbase_url = \"https://x\"\nkeys = [\"sk-abc\\r\\nX-Evil: 1\"]\n",
            "providers[0].keys[0]",
        ),
        (
            "[[providers]]\nname = \"or\"\ntype = \"http\"\nbase_url = \"https://x\"\nkeys = [\"sk-abc\", \"\"]\n",
            "providers[0].keys[1]",
        ),
        ("[api]\nheader_timeout = \"0s\"\n", "api.header_timeout"),
        ("[api]\nmax_connections = 0\n", "api.max_connections"),
        ("mode = \"staging\"\n", "mode"),
        (
            "[[providers]]\nname = \"or\"\ntype = \"http\"\nkeys = [\"k\"]\n",
            "providers[0].base_url",
        ),
        (
            "[[providers]]\nname = \"or\"\ntype = \"http\"\nbase_url = \"https://x\"\n",
            "providers[0].keys",
        ),
        (
            "[[providers]]\nname = \"or\"\ntype = \"http\"\nbase_url = \"https://x\"\nkeys = [\"k\"]\n[[kinds]]\nname = \"a\"\nprovider = \"or\"\n",
            "kinds[0].path",
        ),
        (
            "[[providers]]\nname = \"v\"\ntype = \"task\"\nbase_url = \"http://x\"\nkeys = [\"k\"]\n",
            "providers[0].create_path",
        ),
        (
            "[[providers]]\nname = \"v\"\ntype = \"task\"\nbase_url = \"http://x\"\nkeys = [\"k\"]\ncreate_path = \"/t\"\nstatus_path = \"/t\"\n",
            "providers[0].status_path",
        ),
        (
            "[[providers]]\nname = \"v\"\ntype = \"task\"\nbase_url = \"http://x\"\nkeys = [\"k\"]\ncreate_path = \"/t\"\nstatus_path = \"/t/{task_id}\"\nstate_pointer = \"status\"\n",
            "providers[0].state_pointer",
        ),
        (
            "[[providers]]\nname = \"v\"\ntype = \"demo\"\nerror_rules = [{ pattern = \"(\", class = \"user_error\" }]\n",
            "providers[0].error_rules[0].pattern",
        ),
        (
            "[[providers]]\nname = \"v\"\ntype = \"demo\"\nerror_rules = [{ pattern = \"policy\", class = \"nope\" }]\n",
            "providers[0].error_rules[0].class",
        ),
        ("[worker]\nlease = \"1000y\"\n", "worker.lease"),
        (
            "[[providers]]\nname = \"demo\"\ntype = \"demo\"\n[[kinds]]\nname = \"a\"\nprovider = \"demo\"\nretry_delays = [\"100y\"]\n",
            "kinds[0].retry_delays[0]",
        ),
        ("this is not toml", "line 1"),
    ];
    for (text, key) in cases {
        let e = load(text).expect_err(text);
        assert_eq!(&e.key, key, "{text}: {e}");
        assert!(e.to_string().starts_with("genq.toml: "), "{e}");
    }
}

#[test]
fn the_example_config_loads() {
    let text = include_str!("../../../examples/genq.toml");
    let c = load_env(
        text,
        &[
            ("GENQ_ADMIN_TOKEN", "0123456789abcdef0123"),
            ("GENQ_APP_TOKEN", "0123456789abcdef0124"),
        ],
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Production);
    assert!(c.kind("report.weekly").unwrap().external);
}

#[test]
fn quota_days_start_at_midnight_in_the_configured_zone() {
    use chrono::TimeZone;
    let c = load("[quota]\ntimezone = \"Europe/Moscow\"\n").unwrap();
    // 21:30 UTC is 00:30 the next day in Moscow (UTC+3).
    let t = chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 21, 30, 0)
        .unwrap();
    assert_eq!(c.quota.day(t), "2026-11-24");
    assert_eq!(
        c.quota.next_day_start(t),
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 21, 0, 0)
            .unwrap()
    );
    let utc = load("").unwrap();
    assert_eq!(utc.quota.day(t), "2026-11-23");
    assert_eq!(
        utc.quota.next_day_start(t),
        chrono::Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap()
    );
    let e = load("[quota]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
    assert_eq!(e.key, "quota.timezone");
    let e = load("[users]\ndefault_plan = \"gold\"\n").unwrap_err();
    assert_eq!(e.key, "users.default_plan");
}

#[test]
fn a_postgres_url_is_shown_without_its_credentials() {
    let c = load("database = \"postgres://genq:s3cret@db.internal:5432/genq?sslmode=require\"\n")
        .unwrap();
    assert_eq!(c.database_label(), "postgres://db.internal:5432/genq");
    assert!(!c.node_id().contains("s3cret"));
    let c = load("database = \"sqlite://x.db\"\n").unwrap();
    assert_eq!(c.database_label(), "sqlite://x.db");
    let c = load_env(
        "database = \"env:GENQ_DB_URL\"\n",
        &[("GENQ_DB_URL", "postgres://genq:pw@db/genq")],
    )
    .unwrap();
    assert_eq!(c.database, "postgres://genq:pw@db/genq");
}
