//! candle backend: small dense heads stored as safetensors.
//!
//! # Format
//!
//! Tensors `layers.0.weight` `[out, in]`, `layers.0.bias` `[out]`,
//! `layers.1.weight`, ... (PyTorch `nn.Linear` layout, numbered from 0
//! without gaps; biases optional). The forward pass is
//! `x -> act(x W0ᵀ + b0) -> ... -> out_act(x Wnᵀ + bn)`.
//! Activations come from the manifest's `[model.head]` table, else from the
//! safetensors metadata keys `hidden_activation` / `output_activation`,
//! else `relu` between layers and `sigmoid` at the end (a logistic head
//! producing probabilities). Weights of any float dtype are converted to f32.
//!
//! The input is the model's first manifest input (f32 `[B, in]`), the output
//! is named after its first manifest output (default `probabilities`).

use std::path::Path;

use candle_core::{DType as CDType, Device as CDevice, Tensor, D};

use super::{Backend, Device};
use crate::error::{EngineError, Result};
use crate::manifest::HeadSpec;
use crate::tensor::{NamedTensor, TensorData};

/// Activation function of a head layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None,
    /// max(0, x).
    Relu,
    /// GELU (erf form).
    Gelu,
    /// tanh.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Softmax over the last axis.
    Softmax,
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" | "identity" | "linear" => Activation::None,
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "tanh" => Activation::Tanh,
            "sigmoid" | "logistic" => Activation::Sigmoid,
            "softmax" => Activation::Softmax,
            other => return Err(format!("unknown activation `{other}`")),
        })
    }
}

fn apply(x: Tensor, act: Activation) -> candle_core::Result<Tensor> {
    match act {
        Activation::None => Ok(x),
        Activation::Relu => x.relu(),
        Activation::Gelu => x.gelu_erf(),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip(),
        Activation::Softmax => {
            let max = x.max_keepdim(D::Minus1)?;
            let e = x.broadcast_sub(&max)?.exp()?;
            let sum = e.sum_keepdim(D::Minus1)?;
            e.broadcast_div(&sum)
        }
    }
}

/// A dense MLP / logistic head.
pub struct MlpHead {
    model: String,
    layers: Vec<(Tensor, Option<Tensor>)>,
    hidden: Activation,
    output: Activation,
    input_name: String,
    output_name: String,
    device: CDevice,
    device_name: String,
}

impl std::fmt::Debug for MlpHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlpHead")
            .field("model", &self.model)
            .field("layers", &self.layers.len())
            .field("hidden", &self.hidden)
            .field("output", &self.output)
            .finish()
    }
}

pub(crate) fn pick_device(device: Device) -> Result<(CDevice, String)> {
    match device {
        Device::Cpu => Ok((CDevice::Cpu, "cpu".into())),
        Device::Auto => {
            #[cfg(feature = "cuda")]
            if let Ok(d) = CDevice::new_cuda(0) {
                return Ok((d, "cuda:0".into()));
            }
            Ok((CDevice::Cpu, "cpu".into()))
        }
        Device::Cuda(id) => {
            #[cfg(feature = "cuda")]
            {
                CDevice::new_cuda(id as usize)
                    .map(|d| (d, format!("cuda:{id}")))
                    .map_err(|e| EngineError::RuntimeMissing(format!("CUDA device {id}: {e}")))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Err(EngineError::RuntimeMissing(format!(
                    "cuda:{id} requested but candor-engine was built without the `cuda` feature"
                )))
            }
        }
    }
}

impl MlpHead {
    /// Loads a head from a safetensors file.
    pub fn load(
        model: &str,
        path: &Path,
        head: Option<&HeadSpec>,
        input_name: &str,
        output_name: &str,
        device: Device,
    ) -> Result<MlpHead> {
        let err = |m: String| EngineError::backend(model, m);
        let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let (dev, device_name) = pick_device(device)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &dev)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        let act = |from_manifest: Option<&String>,
                   key: &str,
                   default: Activation|
         -> Result<Activation> {
            match from_manifest.or_else(|| meta.get(key)) {
                Some(s) => s.parse().map_err(err),
                None => Ok(default),
            }
        };
        let hidden = act(
            head.and_then(|h| h.hidden_activation.as_ref()),
            "hidden_activation",
            Activation::Relu,
        )?;
        let output = act(
            head.and_then(|h| h.output_activation.as_ref()),
            "output_activation",
            Activation::Sigmoid,
        )?;
        let mut layers = Vec::new();
        let mut prev_out: Option<usize> = None;
        while let Some(w) = tensors.get(&format!("layers.{}.weight", layers.len())) {
            let i = layers.len();
            let w = w.to_dtype(CDType::F32).map_err(|e| err(e.to_string()))?;
            let (out_dim, in_dim) = w
                .dims2()
                .map_err(|_| err(format!("layers.{i}.weight must be 2-D [out, in]")))?;
            if prev_out.is_some_and(|p| p != in_dim) {
                return Err(err(format!(
                    "layers.{i}.weight takes {in_dim} inputs but the previous layer gives {}",
                    prev_out.unwrap_or_default()
                )));
            }
            let b = match tensors.get(&format!("layers.{i}.bias")) {
                Some(b) => {
                    let b = b.to_dtype(CDType::F32).map_err(|e| err(e.to_string()))?;
                    if b.dims() != [out_dim] {
                        return Err(err(format!("layers.{i}.bias must have shape [{out_dim}]")));
                    }
                    Some(b)
                }
                None => None,
            };
            // Store Wᵀ so the forward pass is a plain matmul.
            let wt = w
                .t()
                .and_then(|t| t.contiguous())
                .map_err(|e| err(e.to_string()))?;
            layers.push((wt, b));
            prev_out = Some(out_dim);
        }
        if layers.is_empty() {
            return Err(err(format!("{} has no `layers.0.weight`", path.display())));
        }
        Ok(MlpHead {
            model: model.to_string(),
            layers,
            hidden,
            output,
            input_name: input_name.to_string(),
            output_name: output_name.to_string(),
            device: dev,
            device_name,
        })
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.layers[0].0.dims()[0]
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.layers[self.layers.len() - 1].0.dims()[1]
    }

    fn forward(&self, x: &ndarray::ArrayD<f32>) -> candle_core::Result<(Vec<usize>, Vec<f32>)> {
        let shape = x.shape().to_vec();
        let data: Vec<f32> = x.iter().copied().collect();
        let mut h = Tensor::from_vec(data, (shape[0], shape[1]), &self.device)?;
        let n = self.layers.len();
        for (i, (wt, b)) in self.layers.iter().enumerate() {
            h = h.matmul(wt)?;
            if let Some(b) = b {
                h = h.broadcast_add(b)?;
            }
            h = apply(h, if i + 1 == n { self.output } else { self.hidden })?;
        }
        let dims = h.dims().to_vec();
        Ok((dims, h.flatten_all()?.to_vec1::<f32>()?))
    }
}

impl Backend for MlpHead {
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let x = inputs
            .iter()
            .find(|t| t.name == self.input_name)
            .or(inputs.first())
            .and_then(|t| t.data.as_f32())
            .ok_or_else(|| EngineError::bad_input(&self.model, "expected one f32 input"))?;
        if x.ndim() != 2 || x.shape()[1] != self.in_features() {
            return Err(EngineError::bad_input(
                &self.model,
                format!(
                    "input must be [batch, {}], got {:?}",
                    self.in_features(),
                    x.shape()
                ),
            ));
        }
        let (dims, data) = self
            .forward(x)
            .map_err(|e| EngineError::backend(&self.model, e))?;
        let data = TensorData::f32_from_vec(&dims, data)
            .ok_or_else(|| EngineError::backend(&self.model, "output shape"))?;
        Ok(vec![NamedTensor {
            name: self.output_name.clone(),
            data,
        }])
    }

    fn device(&self) -> String {
        self.device_name.clone()
    }

    fn name(&self) -> &'static str {
        "candle"
    }
}
