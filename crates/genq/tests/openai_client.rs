//! The official `openai` Python package, installed from PyPI into a venv this test makes,
//! completes a chat request and an image request against `genq fake-provider`: the fake speaks
//! the real API closely enough for a real client.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A venv with `openai`, made once per target directory.
fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let python = dir.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "openai"])
            .status()
            .expect("pip");
        assert!(installed.success(), "pip install openai failed");
    }
    python
}

#[test]
fn the_official_openai_client_talks_to_the_fake_provider() {
    let python = venv();
    let mut fake = Command::new(env!("CARGO_BIN_EXE_genq"))
        .args([
            "fake-provider",
            "--listen",
            "127.0.0.1:0",
            "--keys",
            "sk-test-1",
            "--latency",
            "5ms",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start genq fake-provider");
    let mut lines = std::io::BufReader::new(fake.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("fake provider listening on ")
        .unwrap_or_else(|| panic!("unexpected: {first}"))
        .to_string();
    let script = r#"
import json, sys
from openai import OpenAI, AuthenticationError, RateLimitError
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-test-1", max_retries=0)
chat = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Write a product card for a ceramic mug"}],
    max_tokens=32,
    extra_headers={"X-Genq-Job-Id": "job-py", "X-Genq-Attempt": "1"},
)
image = client.images.generate(prompt="a ceramic mug", n=1)
try:
    OpenAI(base_url=sys.argv[1] + "/v1", api_key="wrong", max_retries=0).models.list()
    bad_key = "accepted"
except AuthenticationError:
    bad_key = "rejected"
try:
    client.chat.completions.create(model="m", messages=[], extra_body={"simulate": {"fail": "rate_limited"}})
    limited = "no"
except RateLimitError:
    limited = "yes"
print(json.dumps({
    "content": chat.choices[0].message.content,
    "finish": chat.choices[0].finish_reason,
    "total_tokens": chat.usage.total_tokens,
    "completion_tokens": chat.usage.completion_tokens,
    "image_url": image.data[0].url,
    "models": [m.id for m in client.models.list().data],
    "bad_key": bad_key,
    "limited": limited,
}))
"#;
    let out = Command::new(&python)
        .args(["-c", script, &url])
        .output()
        .expect("run python");
    let _ = fake.kill();
    let _ = fake.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result["content"].as_str().unwrap().contains("generated"));
    assert_eq!(result["finish"], "stop");
    assert_eq!(result["completion_tokens"], 12);
    assert!(result["total_tokens"].as_u64().unwrap() > 12);
    assert!(result["image_url"].as_str().unwrap().ends_with(".png"));
    assert_eq!(
        result["models"],
        serde_json::json!(["fake-chat", "fake-image"])
    );
    assert_eq!(result["bad_key"], "rejected");
    assert_eq!(result["limited"], "yes");
}
