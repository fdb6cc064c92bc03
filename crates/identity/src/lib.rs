//! One person behind many applicant names: the matching primitives of the
//! identity registry (issue 18).
//!
//! * [`vector`]: an exact int8 nearest-neighbour index for unit-length
//!   embeddings (faces, voices), fast enough to scan 10^6 templates per
//!   lookup on two cores (`docs/benchmarks-identity.md`).
//! * [`minhash`]: near-duplicate resumes and reused passages (MinHash over
//!   word shingles, LSH banding, the longest shared passages as evidence).
//! * [`photo`]: the same photograph, by the Hamming distance of
//!   perceptual hashes (whole picture, aligned face).
//! * [`registry`]: templates per applicant in the bulk store's database,
//!   matches with their evidence, retention, erasure and an audit log.

pub mod minhash;
pub mod photo;
pub mod registry;
pub mod vector;

pub use minhash::{shared_passages, LshIndex, Passage, Signature};
pub use registry::{Match, Registry, RegistryConfig, RegistryError};
pub use vector::{Hit, VectorIndex};
