//! Users and their credits ledger (SPEC §5).

use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub plan: String,
    /// Always the sum of the user's ledger entries, never negative.
    pub credits: i64,
    /// Queued, running and retrying jobs.
    pub unfinished: u32,
    pub running: u32,
    /// Jobs accepted on the day asked about that did not end failed or canceled.
    pub used_today: u32,
    pub created_at: DateTime<Utc>,
}

/// What a user gets when first seen (`[users]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDefaults {
    pub plan: String,
    pub initial_credits: i64,
}

impl Default for UserDefaults {
    fn default() -> Self {
        UserDefaults {
            plan: "free".into(),
            initial_credits: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// Credits given: initial credits, purchases.
    Grant,
    /// A job's cost, taken when it is accepted (again on admin retry).
    Debit,
    /// A job's cost, given back once when it ends failed or canceled.
    Refund,
    /// A correction by an admin, either way.
    Adjust,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Grant => "grant",
            LedgerKind::Debit => "debit",
            LedgerKind::Refund => "refund",
            LedgerKind::Adjust => "adjust",
        }
    }
}

impl fmt::Display for LedgerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown ledger entry kind {0:?}")]
pub struct UnknownLedgerKind(pub String);

impl FromStr for LedgerKind {
    type Err = UnknownLedgerKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            LedgerKind::Grant,
            LedgerKind::Debit,
            LedgerKind::Refund,
            LedgerKind::Adjust,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownLedgerKind(s.to_string()))
    }
}

/// One append-only change of a balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub user_id: String,
    pub kind: LedgerKind,
    /// Signed: debits are negative.
    pub amount: i64,
    /// The balance after this entry.
    pub balance: i64,
    /// The job a debit or refund is for; a batch's one debit names the batch instead.
    pub job_id: Option<String>,
    pub batch_id: Option<String>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}
