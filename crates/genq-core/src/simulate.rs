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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simulate_parses_and_decides_per_attempt() {
        let s = Simulate::from_payload(
            &json!({"simulate": {"fail": "temporary", "fail_attempts": 2, "latency_ms": 5}}),
        )
        .unwrap();
        assert_eq!(s.latency_ms, Some(5));
        assert_eq!(s.failure_for(1), Some(ErrorClass::Temporary));
        assert_eq!(s.failure_for(2), Some(ErrorClass::Temporary));
        assert_eq!(s.failure_for(3), None);
        let always = Simulate::from_payload(&json!({"simulate": {"fail": "user_error"}})).unwrap();
        assert_eq!(always.failure_for(99), Some(ErrorClass::UserError));
        assert_eq!(
            Simulate::from_payload(&json!({"x": 1})).unwrap(),
            Simulate::default()
        );
        for bad in [
            json!({"simulate": 3}),
            json!({"simulate": {"fail": "sometimes"}}),
            json!({"simulate": {"fail_attempts": -1}}),
            json!({"simulate": {"explode": true}}),
        ] {
            assert!(Simulate::from_payload(&bad).is_err(), "{bad}");
        }
    }
}
