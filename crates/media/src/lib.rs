//! candor-media (placeholder, being written)
