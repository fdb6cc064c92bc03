//! candor-detectors (placeholder, being written)
