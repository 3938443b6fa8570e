//! The CLI's client verbs: they talk to a running genq over its HTTP API, like any application.

use crate::cli::{
    BatchSubmitArgs, ClientArgs, EnqueueArgs, JobIdArgs, JobsListArgs, LimitSetArgs, UserArgs,
    UserCreditsArgs, UserPlanArgs,
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
    let mut batches = Vec::new();
    for chunk in items.chunks(a.chunk) {
        let body = json!({"kind": a.kind, "user_id": a.user, "items": chunk, "copies": a.copies});
        let out = client.call(Method::POST, "/v1/batches", Some(body)).await?;
        let id = out["batch"]["id"].as_str().unwrap_or_default().to_string();
        println!(
            "batch {id}: {} jobs",
            out["job_ids"].as_array().map_or(0, |v| v.len())
        );
        batches.push(id);
    }
    if a.wait {
        wait_for(&client, &batches).await?;
    }
    Ok(())
}

/// Follow batches to the end with a progress bar of done / failed / running.
async fn wait_for(client: &Client, batches: &[String]) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} done  {msg}  [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let (mut total, mut done, mut failed, mut running, mut waiting) = (0, 0, 0, 0, 0);
        for id in batches {
            let b = client
                .call(Method::GET, &format!("/v1/batches/{}", urlencode(id)), None)
                .await?;
            let n = |k: &str| b[k].as_u64().unwrap_or(0);
            total += n("total");
            done += n("succeeded") + n("failed") + n("canceled");
            failed += n("failed") + n("canceled");
            running += n("running");
            waiting += n("queued") + n("retrying");
        }
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(format!(
            "failed {failed}  running {running}  waiting {waiting}"
        ));
        if done == total {
            bar.finish();
            println!(
                "finished: {} succeeded, {failed} failed or canceled",
                done - failed
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
