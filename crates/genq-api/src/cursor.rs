//! Opaque list cursors. A cursor names the last job of a page; the next page is the jobs
//! strictly older than it, so pages never repeat or skip a job while new ones arrive (new jobs
//! are newer than every cursor).

use crate::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "j1:";

pub fn encode(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{last_id}"))
}

pub fn decode(cursor: &str) -> Result<String, ApiError> {
    let bad =
        || ApiError::invalid("invalid cursor: pass next_cursor from a previous page as it is");
    if cursor.len() > 200 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id = text.strip_prefix(PREFIX).ok_or_else(bad)?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(bad());
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = genq_core::ids::new_id();
        assert_eq!(decode(&encode(&id)).unwrap(), id);
        for bad in [
            "",
            "abc",
            "!!!",
            &URL_SAFE_NO_PAD.encode("j1:'; drop"),
            &"a".repeat(500),
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
