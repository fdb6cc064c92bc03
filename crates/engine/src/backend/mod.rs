//! Backends: the one trait every model runner implements.

pub mod blas;
pub mod candle;
pub mod causal_lm;
pub(crate) mod lm_host;
pub mod onnx;

use crate::error::EngineError;
use crate::tensor::NamedTensor;

/// Runs one model on one batch. Implementations are called from the
/// batcher's worker OS threads, never from the async runtime, and may be
/// called from several workers at once.
pub trait Backend: Send + Sync {
    /// Runs the model. `inputs` are in manifest order and already batched;
    /// the returned tensors are matched to outputs by name.
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, EngineError>;

    /// Device actually in use, e.g. `cpu` or `cuda:0`.
    fn device(&self) -> String;

    /// Short backend name (`onnx`, `candle`, `fake`).
    fn name(&self) -> &'static str {
        "custom"
    }
}

/// Requested execution device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when built with the `cuda` feature and a GPU is usable, else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// The CUDA device with this ordinal; failing to use it is an error.
    Cuda(i32),
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| {
                    format!("unknown device `{s}` (expected auto, cpu, cuda or cuda:N)")
                }),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parses() {
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert!("tpu".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }
}
