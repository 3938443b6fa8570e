//! The `simulate` field of a payload (SPEC §7): how the demo provider and `genq fake-provider`
//! misbehave on request, for tests and demos.

use crate::ErrorClass;
use serde_json::Value;

/// The `simulate` field of a payload.
#[derive(Debug, Default, PartialEq)]
pub struct Simulate {
    pub fail: Option<ErrorClass>,
    pub fail_attempts: Option<u32>,
    pub latency_ms: Option<u64>,
}

impl Simulate {
    pub fn from_payload(payload: &Value) -> Result<Simulate, String> {
        let Some(sim) = payload.get("simulate") else {
            return Ok(Simulate::default());
        };
        let obj = sim
            .as_object()
            .ok_or("simulate must be an object with fail, fail_attempts, latency_ms")?;
        let mut out = Simulate::default();
        for (key, value) in obj {
            match key.as_str() {
                "fail" => {
                    let class = value.as_str().ok_or("simulate.fail must be a string")?;
                    out.fail = Some(class.parse().map_err(|e| format!("simulate.fail: {e}"))?);
                }
                "fail_attempts" => {
                    let n = value
                        .as_u64()
                        .ok_or("simulate.fail_attempts must be a non-negative integer")?;
                    out.fail_attempts = Some(n.min(u32::MAX as u64) as u32);
                }
                "latency_ms" => {
                    let ms = value
                        .as_u64()
                        .ok_or("simulate.latency_ms must be a non-negative integer")?;
                    out.latency_ms = Some(ms.min(3_600_000));
                }
                other => return Err(format!("simulate.{other} is not a simulate field")),
            }
        }
        Ok(out)
    }

    /// Whether attempt number `attempt` (1-based) fails, and with what.
    pub fn failure_for(&self, attempt: u32) -> Option<ErrorClass> {
        let class = self.fail?;
        match self.fail_attempts {
            Some(n) if attempt > n => None,
            _ => Some(class),
        }
    }
}
