//! The CLI's client verbs: they talk to a running genq over its HTTP API, like any application.

use crate::cli::{
    BatchSubmitArgs, ClientArgs, EnqueueArgs, JobIdArgs, JobsListArgs, LimitSetArgs, ScheduleArgs,
    UserArgs, UserCreditsArgs, UserPlanArgs,
};
use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let token = match &args.token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string("genq.admin-token")
                .map(|t| t.trim().to_string())
                .map_err(|_| {
                    anyhow!("no API token: pass --token or set GENQ_TOKEN (a zero-config `genq serve` prints one and stores it in ./genq.admin-token)")
                })?,
        };
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            base: args.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach genq at {} (is `genq serve` running? see --url)",
                self.base
            )
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"].as_str().unwrap_or("");
        let details = &body["error"]["details"];
        let hint = match status.as_u16() {
            401 => " (check --token / GENQ_TOKEN)",
            403 => " (this needs a token with more scope, e.g. admin)",
            _ => "",
        };
        let details = if details.is_null() {
            String::new()
        } else {
            format!(" {details}")
        };
        bail!("{status} {code}: {message}{details}{hint}")
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub async fn enqueue(a: EnqueueArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let payload: Value =
        serde_json::from_str(&a.payload).context("--payload must be a JSON object")?;
    let mut body = json!({"kind": a.kind, "user_id": a.user, "payload": payload});
    if let Some(p) = a.priority {
        body["priority"] = json!(p);
    }
    if let Some(d) = a.delay_ms {
        body["delay_ms"] = json!(d);
    }
    if let Some(k) = a.idempotency_key {
        body["idempotency_key"] = json!(k);
    }
    print_json(&client.call(Method::POST, "/v1/jobs", Some(body)).await?);
    Ok(())
}

pub enum JobAction {
    Show,
    Cancel,
    Retry,
}

pub async fn job_action(a: JobIdArgs, action: JobAction) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let id = urlencode(&a.id);
    let (method, path) = match action {
        JobAction::Show => (Method::GET, format!("/v1/jobs/{id}")),
        JobAction::Cancel => (Method::POST, format!("/v1/jobs/{id}/cancel")),
        JobAction::Retry => (Method::POST, format!("/v1/jobs/{id}/retry")),
    };
    print_json(&client.call(method, &path, None).await?);
    Ok(())
}

pub async fn jobs_list(a: JobsListArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let mut query = vec![format!("limit={}", a.limit)];
    for (name, value) in [
        ("user_id", &a.user),
        ("state", &a.state),
        ("kind", &a.kind),
        ("batch_id", &a.batch),
        ("cursor", &a.cursor),
    ] {
        if let Some(v) = value {
            query.push(format!("{name}={}", urlencode(v)));
        }
    }
    let page = client
        .call(Method::GET, &format!("/v1/jobs?{}", query.join("&")), None)
        .await?;
    if a.json {
        print_json(&page);
        return Ok(());
    }
    println!(
        "{:<38} {:<16} {:<12} {:<10} {:>7}  created",
        "id", "kind", "user", "state", "attempt"
    );
    for job in page["items"].as_array().into_iter().flatten() {
        println!(
            "{:<38} {:<16} {:<12} {:<10} {:>7}  {}",
            job["id"].as_str().unwrap_or(""),
            job["kind"].as_str().unwrap_or(""),
            job["user_id"].as_str().unwrap_or(""),
            job["state"].as_str().unwrap_or(""),
            job["attempt"].to_string(),
            job["created_at"].as_str().unwrap_or(""),
        );
    }
    if let Some(next) = page["next_cursor"].as_str() {
        println!("more: --cursor {next}");
    }
    Ok(())
}

pub async fn stats(a: ClientArgs) -> anyhow::Result<()> {
    print_json(
        &Client::new(&a)?
            .call(Method::GET, "/v1/stats", None)
            .await?,
    );
    Ok(())
}

pub async fn user_show(a: UserArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let id = urlencode(&a.user);
    print_json(
        &client
            .call(Method::GET, &format!("/v1/users/{id}"), None)
            .await?,
    );
    if a.ledger {
        let page = client
            .call(
                Method::GET,
                &format!("/v1/users/{id}/ledger?limit=20"),
                None,
            )
            .await?;
        for e in page["items"].as_array().into_iter().flatten() {
            println!(
                "{}  {:<7} {:>8} -> {:>8}  {}  {}",
                e["created_at"].as_str().unwrap_or(""),
                e["kind"].as_str().unwrap_or(""),
                e["amount"].to_string(),
                e["balance"].to_string(),
                e["job_id"].as_str().unwrap_or("-"),
                e["reason"].as_str().unwrap_or(""),
            );
        }
    }
    Ok(())
}

pub async fn user_plan(a: UserPlanArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let path = format!("/v1/users/{}", urlencode(&a.user));
    let body = json!({"plan": a.plan});
    print_json(&client.call(Method::PUT, &path, Some(body)).await?);
    Ok(())
}

pub async fn user_credits(a: UserCreditsArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let path = format!("/v1/users/{}/credits", urlencode(&a.user));
    let body = json!({"delta": a.delta, "reason": a.reason});
    print_json(&client.call(Method::POST, &path, Some(body)).await?);
    Ok(())
}

pub async fn limits_get(a: ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(&a)?;
    let limits = client.call(Method::GET, "/v1/admin/limits", None).await?;
    print_limits(&limits);
    Ok(())
}

pub async fn limits_set(a: LimitSetArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let path = format!("/v1/admin/limits/{}", urlencode(&a.key));
    let limits = client
        .call(Method::PUT, &path, Some(json!({"value": a.value})))
        .await?;
    print_limits(&limits);
    Ok(())
}

fn print_limits(limits: &Value) {
    for (key, l) in limits["limits"].as_object().into_iter().flatten() {
        let (value, default) = (l["value"].to_string(), l["default"].to_string());
        println!("{key:<32} {value:>10}   (default {default})");
    }
}

pub async fn batch_submit(a: BatchSubmitArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", a.file.display(), i + 1))?;
        if !item.is_object() {
            bail!(
                "{}:{}: each line must be a JSON object (one payload)",
                a.file.display(),
                i + 1
            );
        }
        items.push(item);
    }
    if items.is_empty() {
        bail!("{} has no items", a.file.display());
    }
    if a.chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    // Follow the user's events from before the first batch, so none of theirs is missed.
    let mut events = if a.wait {
        Some(EventStream::open(&client, &format!("user_id={}", urlencode(&a.user))).await?)
    } else {
        None
    };
    let mut batches = Vec::new();
    let mut total = 0;
    for chunk in items.chunks(a.chunk) {
        let body = json!({"kind": a.kind, "user_id": a.user, "items": chunk, "copies": a.copies});
        let out = client.call(Method::POST, "/v1/batches", Some(body)).await?;
        let id = out["batch"]["id"].as_str().unwrap_or_default().to_string();
        let jobs = out["job_ids"].as_array().map_or(0, |v| v.len());
        println!("batch {id}: {jobs} jobs");
        total += jobs as u64;
        batches.push(id);
    }
    if let Some(events) = &mut events {
        wait_for(events, &batches, total).await?;
    }
    Ok(())
}

/// Follow batches to the end with a progress bar of done / failed / running, from the event
/// stream (no polling).
async fn wait_for(events: &mut EventStream, batches: &[String], total: u64) -> anyhow::Result<()> {
    use std::collections::{HashMap, HashSet};
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} done  {msg}  [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ours: HashSet<&str> = batches.iter().map(String::as_str).collect();
    let mut completed = HashSet::new();
    let mut states: HashMap<String, String> = HashMap::new();
    while completed.len() < ours.len() {
        let (_, kind, body) = events.next().await?;
        let data = &body["data"];
        if kind == "batch.completed" {
            if let Some(id) = data["id"].as_str().filter(|id| ours.contains(id)) {
                completed.insert(id.to_string());
            }
            continue;
        }
        let (Some(batch), Some(job), Some(state)) = (
            data["batch_id"].as_str(),
            data["id"].as_str(),
            data["state"].as_str(),
        ) else {
            continue;
        };
        if !ours.contains(batch) {
            continue;
        }
        states.insert(job.to_string(), state.to_string());
        let count = |wanted: &[&str]| {
            states
                .values()
                .filter(|s| wanted.contains(&s.as_str()))
                .count() as u64
        };
        let failed = count(&["failed", "canceled"]);
        let done = count(&["succeeded"]) + failed;
        let running = count(&["running"]);
        bar.set_position(done);
        bar.set_message(format!(
            "failed {failed}  running {running}  waiting {}",
            total - done - running
        ));
    }
    bar.finish();
    let failed = states
        .values()
        .filter(|s| *s == "failed" || *s == "canceled")
        .count();
    println!(
        "finished: {} succeeded, {failed} failed or canceled",
        total as usize - failed
    );
    Ok(())
}

/// `GET /v1/events` as a client reads it: one event at a time; after a dropped connection it
/// reconnects with `Last-Event-ID`, so nothing is missed or seen twice.
struct EventStream {
    http: reqwest::Client,
    url: String,
    token: String,
    last: Option<i64>,
    response: Option<reqwest::Response>,
    text: String,
}

impl EventStream {
    /// Connect now: the stream starts with what happens after this call returns.
    async fn open(client: &Client, query: &str) -> anyhow::Result<EventStream> {
        let mut stream = EventStream {
            // No overall timeout: the stream lasts; keep-alives come every 15 s.
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(45))
                .build()?,
            url: format!("{}/v1/events?{query}", client.base),
            token: client.token.clone(),
            last: None,
            response: None,
            text: String::new(),
        };
        stream.connect().await?;
        Ok(stream)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let mut req = self.http.get(&self.url).bearer_auth(&self.token);
        if let Some(last) = self.last {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let response = req.send().await.context("cannot follow genq's events")?;
        if !response.status().is_success() {
            bail!("GET /v1/events: {}", response.status());
        }
        self.response = Some(response);
        self.text.clear();
        Ok(())
    }

    /// The next event: its id, type and body.
    async fn next(&mut self) -> anyhow::Result<(i64, String, Value)> {
        let mut reconnects = 0;
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let frame: String = self.text.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                // Comments (keep-alives) have none of these.
                if let (Some(id), Some(kind), Some(data)) =
                    (field("id:"), field("event:"), field("data:"))
                {
                    let id: i64 = id.parse().context("an event id that is not a number")?;
                    self.last = Some(id);
                    return Ok((id, kind, serde_json::from_str(&data)?));
                }
            }
            let chunk = match self.response.as_mut() {
                Some(r) => r.chunk().await,
                None => Ok(None),
            };
            match chunk {
                Ok(Some(bytes)) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
                // Dropped: resume where we left off.
                _ if reconnects < 5 => {
                    reconnects += 1;
                    tokio::time::sleep(Duration::from_millis(200 * reconnects)).await;
                    self.connect().await?;
                }
                _ => bail!("lost genq's event stream"),
            }
        }
    }
}

pub async fn schedules_list(a: ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(&a)?;
    let out = client.call(Method::GET, "/v1/schedules", None).await?;
    let list = out["schedules"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no schedules configured");
    }
    for s in list {
        let text = |k: &str| s[k].as_str().unwrap_or("-").to_string();
        println!(
            "{}  {} ({})  {} for {}{}\n  next {}  last {}{}{}",
            text("name"),
            text("cron"),
            text("timezone"),
            text("kind"),
            text("user_id"),
            if s["paused"] == true { "  PAUSED" } else { "" },
            text("next_run_at"),
            text("last_run_at"),
            s["last_job_id"]
                .as_str()
                .map(|j| format!(" (job {j})"))
                .unwrap_or_default(),
            s["last_error"]
                .as_str()
                .map(|e| format!("  refused: {e}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

pub async fn schedule_pause(a: ScheduleArgs, paused: bool) -> anyhow::Result<()> {
    let client = Client::new(&a.client)?;
    let path = format!("/v1/schedules/{}", urlencode(&a.name));
    print_json(
        &client
            .call(Method::PUT, &path, Some(json!({"paused": paused})))
            .await?,
    );
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
