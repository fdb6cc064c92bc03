//! Benchmarks live in `benches/benches/`; see `docs/benchmarks.md`.
