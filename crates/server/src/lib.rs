//! candor-server (placeholder, being written)
