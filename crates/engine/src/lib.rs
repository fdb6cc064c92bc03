//! candor-engine (placeholder, being written)
