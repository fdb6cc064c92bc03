//! Candor's contract.
//!
//! This crate holds what every other layer agrees on and nothing else:
//! the one result schema shared by all modalities ([`schema`]), the problem
//! kinds every layer's errors map onto ([`problem`]), the input limits
//! ([`limits`]), request priorities ([`Priority`]) and small helpers
//! ([`sha256_hex`]). It performs no I/O and knows nothing about models,
//! decoders or HTTP.

pub mod limits;
pub mod problem;
pub mod schema;

pub use limits::Limits;
pub use problem::{ProblemKind, ToProblem};
pub use schema::*;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hex-encoded SHA-256 of `bytes` (lower case), as carried in every result.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Scheduling class of a request. The engine serves higher classes first:
/// `Live` (an interview in progress) before `Upload` (a recruiter waiting on a
/// page) before `Bulk` (re-screening jobs).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Default,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Live interview traffic: lowest latency, served first.
    Live = 0,
    /// Interactive uploads (web page, CLI, API default).
    #[default]
    Upload = 1,
    /// Bulk re-screening: served when nothing else waits.
    Bulk = 2,
}

impl Priority {
    /// All classes, highest first.
    pub const ALL: [Priority; 3] = [Priority::Live, Priority::Upload, Priority::Bulk];

    /// Stable lower-case name, used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Live => "live",
            Priority::Upload => "upload",
            Priority::Bulk => "bulk",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "live" => Ok(Priority::Live),
            "upload" => Ok(Priority::Upload),
            "bulk" => Ok(Priority::Bulk),
            other => Err(format!(
                "unknown priority `{other}` (expected live, upload or bulk)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn priority_orders_live_first() {
        let mut v = vec![Priority::Bulk, Priority::Live, Priority::Upload];
        v.sort();
        assert_eq!(v, Priority::ALL.to_vec());
        assert_eq!("LIVE".parse::<Priority>().unwrap(), Priority::Live);
        assert!("urgent".parse::<Priority>().is_err());
    }
}
