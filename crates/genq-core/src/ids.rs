//! Identifiers. Job and batch ids are UUIDv7 strings: opaque to clients, but time-ordered, so
//! "newest first" is "largest id first" and cursor pages are stable while jobs are added.

/// A new time-ordered id. `Uuid::now_v7` keeps ids monotonic within a process.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A lease token: unguessable, so an external worker cannot complete a job it did not claim.
pub fn new_lease_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The longest id, kind, user id or idempotency key genq accepts.
pub const MAX_KEY_LEN: usize = 200;

/// Whether `value` is a valid id, user id, worker id, lease token or idempotency key: 1 to
/// [`MAX_KEY_LEN`] characters that a URL path segment holds as they are, letters, digits and
/// `-._~!$&'()*+,;=:@`. Identifiers come from applications, not people; everything else is
/// refused, so invisible and bidirectional characters never make two ids that look the same.
pub fn valid_key(value: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b))
}
