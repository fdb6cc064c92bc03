//! Benchmarks live in `benches/benches/`; see `docs/benchmarks.md`.
//!
//! * `cargo bench -p candor-benches --bench engine` runs them (a few
//!   minutes on 2 cores; real-model groups are skipped with a message when
//!   `$CANDOR_HOME` lacks the models).
//! * `cargo run -p candor-benches --bin bench-report` turns
//!   `target/criterion/**/new/estimates.json` into `docs/benchmarks.md`.
