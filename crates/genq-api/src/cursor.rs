//! List cursors. A jobs cursor names the last job of a page; the next page is the jobs strictly
//! older than it, so pages never repeat or skip a job while new ones arrive (new jobs are newer
//! than every cursor). A ledger cursor names the last entry the same way. Clients pass them back
//! as they are; their form is versioned (`j1.`, `l1.`) and exactly what the OpenAPI document's
//! patterns say, so any string of that form is a valid cursor.

use crate::error::ApiError;

pub const JOBS_PATTERN: &str = "^j1\\.[0-9a-f-]{1,64}$";
pub const LEDGER_PATTERN: &str = "^l1\\.(0|[1-9][0-9]{0,17})$";

fn bad() -> ApiError {
    ApiError::invalid("invalid cursor: pass next_cursor from a previous page as it is")
        .with_details(serde_json::json!({"field": "cursor"}))
}

pub fn encode_jobs(last_id: &str) -> String {
    format!("j1.{last_id}")
}

pub fn decode_jobs(cursor: &str) -> Result<String, ApiError> {
    let id = cursor.strip_prefix("j1.").ok_or_else(bad)?;
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    if !valid {
        return Err(bad());
    }
    Ok(id.to_string())
}

pub fn encode_ledger(last_entry: i64) -> String {
    format!("l1.{last_entry}")
}

pub fn decode_ledger(cursor: &str) -> Result<i64, ApiError> {
    let n = cursor.strip_prefix("l1.").ok_or_else(bad)?;
    // Digits as `encode_ledger` writes them: no sign, no leading zero.
    let canonical = n == "0" || !n.starts_with('0');
    if !(1..=18).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit()) || !canonical {
        return Err(bad());
    }
    n.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = genq_core::ids::new_id();
        assert_eq!(decode_jobs(&encode_jobs(&id)).unwrap(), id);
        assert_eq!(decode_ledger(&encode_ledger(42)).unwrap(), 42);
        assert_eq!(
            decode_ledger(&encode_ledger(999_999_999_999_999_999)).unwrap(),
            999_999_999_999_999_999
        );
        for bad in [
            "",
            "abc",
            "j1.",
            "j1.'; drop",
            "j1.ABC",
            &"j1.a".repeat(40),
            "l1.5",
        ] {
            assert!(decode_jobs(bad).is_err(), "{bad}");
        }
        for bad in [
            "",
            "l1.",
            "l1.-1",
            "l1.1a",
            "l1.1234567890123456789",
            "j1.5",
        ] {
            assert!(decode_ledger(bad).is_err(), "{bad}");
        }
    }
}
