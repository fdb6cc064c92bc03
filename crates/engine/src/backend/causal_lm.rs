//! candle backend for quantized causal language models stored as GGUF
//! (llama architecture: RMSNorm, rotary embeddings, grouped-query attention,
//! SwiGLU feed-forward), used to *score* text, never to generate it.
//!
//! # Contract (packed batches)
//!
//! Inputs, all i64 `[N]` with batch axis 0, so the dynamic batcher packs
//! several requests into one flat token stream (no padding):
//! * `input_ids`: token ids;
//! * `position_ids`: position of each token inside its own sequence. A
//!   position of 0 starts a new sequence; attention never crosses sequences;
//! * `score_mask` (optional when calling the backend directly; the engine's
//!   default contract lists it): non-zero where the statistics of that
//!   token are wanted. The transformer still reads every token (context),
//!   but the vocabulary head, a fifth of the work, runs only for wanted
//!   tokens: the text detector asks only for the tokens of prose.
//!
//! Outputs, all f32 `[N]` (batch axis 0). At a token with position `p > 0`
//! they describe the model's prediction of that token from the tokens
//! before it in its sequence; at `p = 0` and at tokens the mask leaves out
//! they are 0 (no prediction):
//! * `logprob`: log-probability of the actual token (nats);
//! * `entropy`: entropy of the predictive distribution (nats);
//! * `rank`: 1 + number of tokens the model found strictly more likely;
//! * `logprob_var`: variance of `log p` under `p` (Fast-DetectGPT's
//!   analytic normaliser); its mean is `-entropy`.
//!
//! With hidden-state taps (`[model.lm] hidden_taps` in the manifest) a
//! fifth output, `hidden` f32 `[N, taps · hidden]`, holds the residual
//! stream after each listed block (1-based) at every token that gets
//! statistics (zeros elsewhere): the representation a detector's learned
//! head reads, at no extra forward pass.
//!
//! Without statistics ([`CausalLm::with_statistics`]`(false)`, taps only)
//! the forward pass stops after the deepest tap and `hidden` is the only
//! output: a detector that reads hidden states alone pays for the blocks it
//! reads and not for the rest or the vocabulary head.
//!
//! The full `[N, vocab]` logits are never materialised at once: the head is
//! applied in row chunks and reduced to the four statistics.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType as CDType, Device as CDevice, Tensor};

use super::blas::Blas;
use super::lm_host::{HostLayer, HostModel};
use super::{Backend, Device};
use crate::error::{EngineError, Result};
use crate::tensor::{NamedTensor, TensorData};

/// Rows of logits computed at once when reducing to statistics.
const HEAD_CHUNK: usize = 64;

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LmConfig {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
}

struct Layer {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Weights as candle tensors (any device, candle's own kernels).
struct CandleWeights {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: Linear,
    cos: Tensor,
    sin: Tensor,
}

enum Weights {
    Candle(CandleWeights),
    /// CPU buffers for the OpenBLAS path ([`super::lm_host`]).
    Host(Box<HostModel>),
}

/// A quantized llama-family model that returns per-token statistics.
pub struct CausalLm {
    model: String,
    cfg: LmConfig,
    weights: Weights,
    positions: usize,
    /// Blocks whose output is returned as `hidden` (1-based, may be empty).
    taps: Vec<usize>,
    /// Compute the four statistics (all blocks and the vocabulary head).
    statistics: bool,
    device: CDevice,
    device_name: String,
}

impl std::fmt::Debug for CausalLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CausalLm")
            .field("model", &self.model)
            .field("cfg", &self.cfg)
            .field("device", &self.device_name)
            .finish()
    }
}

fn md_u32(c: &gguf_file::Content, key: &str) -> std::result::Result<u32, String> {
    c.metadata
        .get(key)
        .ok_or_else(|| format!("GGUF metadata `{key}` missing"))?
        .to_u32()
        .map_err(|e| format!("GGUF metadata `{key}`: {e}"))
}

fn md_f32(c: &gguf_file::Content, key: &str) -> Option<f32> {
    c.metadata.get(key).and_then(|v| v.to_f32().ok())
}

/// Reads the hyper-parameters of a llama-architecture GGUF.
pub fn lm_config(c: &gguf_file::Content) -> std::result::Result<LmConfig, String> {
    let arch = c
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if arch != "llama" {
        return Err(format!(
            "architecture `{arch}` is not supported (llama only)"
        ));
    }
    let hidden = md_u32(c, "llama.embedding_length")? as usize;
    let heads = md_u32(c, "llama.attention.head_count")? as usize;
    let kv_heads = md_u32(c, "llama.attention.head_count_kv").unwrap_or(heads as u32) as usize;
    if heads == 0
        || kv_heads == 0
        || !hidden.is_multiple_of(heads)
        || !heads.is_multiple_of(kv_heads)
    {
        return Err(format!(
            "inconsistent attention shape: hidden {hidden}, heads {heads}, kv heads {kv_heads}"
        ));
    }
    let head_dim = hidden / heads;
    let vocab = c
        .metadata
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.to_vec().ok())
        .map(|v| v.len())
        .or_else(|| md_u32(c, "llama.vocab_size").ok().map(|v| v as usize))
        .ok_or("vocabulary size unknown")?;
    Ok(LmConfig {
        layers: md_u32(c, "llama.block_count")? as usize,
        hidden,
        heads,
        kv_heads,
        head_dim,
        vocab,
        context: md_u32(c, "llama.context_length").unwrap_or(2048) as usize,
        rope_base: md_f32(c, "llama.rope.freq_base").unwrap_or(10_000.0),
        rms_eps: md_f32(c, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f64,
    })
}

impl CausalLm {
    /// Loads a GGUF file. `max_positions` bounds the rotary table (and so
    /// the longest sequence accepted); it is capped at the model's context.
    /// With `blas` and a CPU device the model runs on the OpenBLAS path
    /// ([`super::lm_host`]); otherwise on candle's kernels.
    pub fn load(
        model: &str,
        path: &Path,
        device: Device,
        max_positions: usize,
        blas: Option<&'static Blas>,
    ) -> Result<Self> {
        let err = |m: String| EngineError::backend(model, m);
        let (dev, device_name) = super::candle::pick_device(device)?;
        let mut file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        let cfg = lm_config(&content).map_err(err)?;
        let c = |e: candle_core::Error| err(e.to_string());
        // Every weight is dequantized once at load: f32 GEMM (candle's or
        // OpenBLAS's) is several times faster on CPU than candle's quantized
        // dot-product kernels for the long packed batches scoring uses
        // (540 MB of weights instead of 100 MB).
        let mut w = |name: &str| -> Result<Tensor> {
            content
                .tensor(&mut file, name, &dev)
                .and_then(|q| q.dequantize(&dev))
                .map_err(|e| err(format!("tensor `{name}`: {e}")))
        };
        let embed = w("token_embd.weight")?;
        let norm = w("output_norm.weight")?;
        // Tied embeddings when the file has no separate output matrix.
        let head = w("output.weight").ok();
        let mut raw = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let p = format!("blk.{i}");
            let names = [
                "attn_norm",
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_norm",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ];
            let mut t = Vec::with_capacity(names.len());
            for n in names {
                t.push(w(&format!("{p}.{n}.weight"))?);
            }
            raw.push(t);
        }
        let positions = max_positions.clamp(1, cfg.context.max(1));
        let half = cfg.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_base.powf(2.0 * i as f32 / cfg.head_dim as f32))
            .collect();
        let mut ang = Vec::with_capacity(positions * half);
        for p in 0..positions {
            ang.extend(inv.iter().map(|f| p as f32 * f));
        }
        let blas = blas.filter(|_| matches!(dev, CDevice::Cpu));
        let weights = match blas {
            Some(blas) => {
                let v = |t: &Tensor| -> Result<Vec<f32>> {
                    t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(c)
                };
                let stack = |ts: &[&Tensor]| -> Result<Vec<f32>> {
                    let mut out = Vec::new();
                    for t in ts {
                        out.extend(v(t)?);
                    }
                    Ok(out)
                };
                let ffn = raw.first().map(|t| t[6].dims()[0]).unwrap_or(0);
                let mut layers = Vec::with_capacity(raw.len());
                for t in &raw {
                    layers.push(HostLayer {
                        attn_norm: v(&t[0])?,
                        wqkv: stack(&[&t[1], &t[2], &t[3]])?,
                        wo: v(&t[4])?,
                        ffn_norm: v(&t[5])?,
                        wgu: stack(&[&t[6], &t[7]])?,
                        down: v(&t[8])?,
                    });
                }
                let embed = std::sync::Arc::new(v(&embed)?);
                let head = match &head {
                    Some(h) => std::sync::Arc::new(v(h)?),
                    None => std::sync::Arc::clone(&embed),
                };
                Weights::Host(Box::new(HostModel {
                    blas,
                    cfg: cfg.clone(),
                    ffn,
                    embed,
                    layers,
                    norm: v(&norm)?,
                    head,
                    cos: ang.iter().map(|a| a.cos()).collect(),
                    sin: ang.iter().map(|a| a.sin()).collect(),
                }))
            }
            None => {
                let layers = raw
                    .into_iter()
                    .map(|t| {
                        let mut t = t.into_iter();
                        let mut next = || Linear(t.next().expect("nine tensors per block"));
                        Layer {
                            attn_norm: next().0,
                            wq: next(),
                            wk: next(),
                            wv: next(),
                            wo: next(),
                            ffn_norm: next().0,
                            gate: next(),
                            up: next(),
                            down: next(),
                        }
                    })
                    .collect();
                let ang = Tensor::from_vec(ang, (positions, half), &dev).map_err(c)?;
                Weights::Candle(CandleWeights {
                    head: Linear(head.unwrap_or_else(|| embed.clone())),
                    embed,
                    layers,
                    norm,
                    cos: ang.cos().map_err(c)?,
                    sin: ang.sin().map_err(c)?,
                })
            }
        };
        Ok(CausalLm {
            model: model.to_string(),
            cfg,
            weights,
            positions,
            taps: Vec::new(),
            statistics: true,
            device: dev,
            device_name,
        })
    }

    /// Returns the residual stream after these blocks (1-based, at most the
    /// model's layer count) as the `hidden` output.
    pub fn with_taps(mut self, taps: Vec<usize>) -> Result<Self> {
        if let Some(&t) = taps.iter().find(|&&t| t == 0 || t > self.cfg.layers) {
            return Err(EngineError::backend(
                &self.model,
                format!(
                    "hidden tap {t} outside 1..={} (the model's blocks)",
                    self.cfg.layers
                ),
            ));
        }
        self.taps = taps;
        Ok(self)
    }

    /// With `false` (and taps), the forward pass stops after the deepest
    /// tap and the statistics are neither computed nor returned. Ignored
    /// without taps (the model would return nothing).
    pub fn with_statistics(mut self, statistics: bool) -> Self {
        self.statistics = statistics || self.taps.is_empty();
        self
    }

    /// True when the four statistics are computed.
    pub fn statistics_enabled(&self) -> bool {
        self.statistics
    }

    /// Blocks the forward pass runs: all of them with statistics, up to the
    /// deepest tap without.
    fn blocks_run(&self) -> usize {
        if self.statistics {
            self.cfg.layers
        } else {
            self.taps.iter().copied().max().unwrap_or(self.cfg.layers)
        }
    }

    /// Blocks whose output is returned as `hidden`.
    pub fn taps(&self) -> &[usize] {
        &self.taps
    }

    /// Model hyper-parameters.
    pub fn config(&self) -> &LmConfig {
        &self.cfg
    }

    /// Longest sequence accepted (positions of the rotary table).
    pub fn max_positions(&self) -> usize {
        self.positions
    }

    /// True when the model runs on the OpenBLAS CPU path.
    pub fn uses_blas(&self) -> bool {
        matches!(self.weights, Weights::Host(_))
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::backend(&self.model, e.to_string())
    }

    /// Runs the transformer on a packed token stream and reduces the
    /// predictive distributions to per-token statistics.
    pub fn score(&self, ids: &[i64], pos: &[i64]) -> Result<[Vec<f32>; 4]> {
        self.score_masked(ids, pos, None)
    }

    /// [`Self::score`] for the tokens where `want` is true only (the others
    /// get zeros); `None` wants every token.
    pub fn score_masked(
        &self,
        ids: &[i64],
        pos: &[i64],
        want: Option<&[bool]>,
    ) -> Result<[Vec<f32>; 4]> {
        self.score_tapped(ids, pos, want).map(|(s, _)| s)
    }

    /// [`Self::score_masked`] and the tapped hidden states
    /// `[N, taps · hidden]` of the same tokens (empty without taps). The
    /// statistics are four empty vectors when they are switched off.
    pub fn score_tapped(
        &self,
        ids: &[i64],
        pos: &[i64],
        want: Option<&[bool]>,
    ) -> Result<([Vec<f32>; 4], Vec<f32>)> {
        let n = ids.len();
        if n == 0 || pos.len() != n || want.is_some_and(|w| w.len() != n) {
            return Err(EngineError::bad_input(
                &self.model,
                format!(
                    "{n} ids vs {} positions and {} mask entries",
                    pos.len(),
                    want.map_or(n, |w| w.len())
                ),
            ));
        }
        // Token t gets statistics when it continues its sequence and is wanted.
        let scored: Vec<bool> = (0..n)
            .map(|t| pos[t] != 0 && want.is_none_or(|w| w[t]))
            .collect();
        let vocab = self.cfg.vocab as i64;
        let max_pos = self.max_positions() as i64;
        let mut starts = Vec::new();
        for (i, (&t, &p)) in ids.iter().zip(pos).enumerate() {
            if !(0..vocab).contains(&t) {
                return Err(EngineError::bad_input(
                    &self.model,
                    format!("token id {t} outside the vocabulary"),
                ));
            }
            if !(0..max_pos).contains(&p) {
                return Err(EngineError::bad_input(
                    &self.model,
                    format!("position {p} outside 0..{max_pos}"),
                ));
            }
            let expect = if i == 0 { 0 } else { pos[i - 1] + 1 };
            if p == 0 {
                starts.push(i);
            } else if p != expect {
                return Err(EngineError::bad_input(
                    &self.model,
                    format!("position {p} at {i} does not continue its sequence"),
                ));
            }
        }
        let mut bounds: Vec<(usize, usize)> = starts
            .iter()
            .zip(starts.iter().skip(1).chain(std::iter::once(&n)))
            .map(|(&s, &e)| (s, e))
            .collect();
        if bounds.is_empty() {
            bounds.push((0, n));
        }
        let blocks = self.blocks_run();
        let none = || [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        match &self.weights {
            Weights::Host(m) => {
                let (hidden, tapped) =
                    m.hidden_tapped(ids, pos, &bounds, &self.taps, &scored, blocks);
                if !self.statistics {
                    return Ok((none(), tapped));
                }
                Ok((m.statistics(&hidden, ids, &scored), tapped))
            }
            Weights::Candle(w) => {
                let (hidden, tapped) = self
                    .hidden_states(w, ids, pos, &bounds, &scored, blocks)
                    .map_err(|e| self.err(e))?;
                if !self.statistics {
                    return Ok((none(), tapped));
                }
                let stats = self
                    .statistics(w, &hidden, ids, &scored)
                    .map_err(|e| self.err(e))?;
                Ok((stats, tapped))
            }
        }
    }

    fn hidden_states(
        &self,
        w: &CandleWeights,
        ids: &[i64],
        pos: &[i64],
        bounds: &[(usize, usize)],
        rows: &[bool],
        blocks: usize,
    ) -> candle_core::Result<(Tensor, Vec<f32>)> {
        let n = ids.len();
        let d = self.cfg.hidden;
        let width = self.taps.len() * d;
        let mut tapped = vec![0f32; if self.taps.is_empty() { 0 } else { n * width }];
        let dev = &self.device;
        let cfg = &self.cfg;
        let ids_t = Tensor::from_iter(ids.iter().map(|&t| t as u32), dev)?;
        let pos_t = Tensor::from_iter(pos.iter().map(|&p| p as u32), dev)?;
        let cos = w.cos.index_select(&pos_t, 0)?;
        let sin = w.sin.index_select(&pos_t, 0)?;
        let mut x = w.embed.index_select(&ids_t, 0)?; // [N, D]
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        let rep = cfg.heads / cfg.kv_heads;
        for (li, l) in w.layers.iter().enumerate().take(blocks) {
            let h = candle_nn::ops::rms_norm(&x, &l.attn_norm, cfg.rms_eps as f32)?;
            let q = l.wq.forward(&h)?;
            let k = l.wk.forward(&h)?;
            let v = l.wv.forward(&h)?;
            // [N, H*hd] -> [1, H, N, hd] for the rotary kernel.
            let q = q
                .reshape((n, cfg.heads, cfg.head_dim))?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .contiguous()?;
            let k = k
                .reshape((n, cfg.kv_heads, cfg.head_dim))?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .contiguous()?;
            let v = v
                .reshape((n, cfg.kv_heads, cfg.head_dim))?
                .transpose(0, 1)?
                .contiguous()?; // [KV, N, hd]
            let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?.squeeze(0)?;
            let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?.squeeze(0)?;
            let mut outs = Vec::with_capacity(bounds.len());
            for &(s, e) in bounds {
                let len = e - s;
                let qs = q.narrow(1, s, len)?; // [H, L, hd]
                let ks = repeat_kv(&k.narrow(1, s, len)?, rep)?;
                let vs = repeat_kv(&v.narrow(1, s, len)?, rep)?;
                let att = (qs.matmul(&ks.t()?)? * scale)?; // [H, L, L]
                let att = if len > 1 {
                    att.broadcast_add(&causal_mask(len, dev)?)?
                } else {
                    att
                };
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                outs.push(att.matmul(&vs.contiguous()?)?); // [H, L, hd]
            }
            let o = Tensor::cat(&outs, 1)? // [H, N, hd]
                .transpose(0, 1)?
                .reshape((n, cfg.hidden))?;
            x = (x + l.wo.forward(&o)?)?;
            let h = candle_nn::ops::rms_norm(&x, &l.ffn_norm, cfg.rms_eps as f32)?;
            let g = l.gate.forward(&h)?.silu()?;
            let u = l.up.forward(&h)?;
            x = (x + l.down.forward(&(g * u)?)?)?;
            for (k, _) in self.taps.iter().enumerate().filter(|(_, &t)| t == li + 1) {
                let xs = x.to_dtype(CDType::F32)?.to_vec2::<f32>()?;
                for (t, xr) in xs.iter().enumerate().filter(|(t, _)| rows[*t]) {
                    tapped[t * width + k * d..t * width + (k + 1) * d].copy_from_slice(xr);
                }
            }
        }
        let h = candle_nn::ops::rms_norm(&x, &w.norm, cfg.rms_eps as f32)?;
        Ok((h, tapped))
    }

    fn statistics(
        &self,
        w: &CandleWeights,
        hidden: &Tensor,
        ids: &[i64],
        scored: &[bool],
    ) -> candle_core::Result<[Vec<f32>; 4]> {
        use rayon::prelude::*;
        let n = ids.len();
        let mut lp = vec![0f32; n];
        let mut ent = vec![0f32; n];
        let mut rank = vec![0f32; n];
        let mut var = vec![0f32; n];
        // Row r predicts token r+1 when r+1 continues r's sequence; rows
        // are reduced in parallel by the reduction the CPU path shares.
        let mut r = 0;
        while r < n {
            let len = HEAD_CHUNK.min(n - r);
            let rows = w
                .head
                .forward(&hidden.narrow(0, r, len)?)?
                .to_dtype(CDType::F32)?
                .to_vec2::<f32>()?;
            let stats: Vec<Option<[f32; 4]>> = rows
                .par_iter()
                .enumerate()
                .map(|(j, row)| {
                    let t = r + j + 1;
                    if t >= n || !scored[t] {
                        return None;
                    }
                    Some(super::lm_host::row_stats(row, ids[t] as usize))
                })
                .collect();
            for (j, st) in stats.into_iter().enumerate() {
                if let Some([a, b, c, d]) = st {
                    let t = r + j + 1;
                    lp[t] = a;
                    ent[t] = b;
                    rank[t] = c;
                    var[t] = d;
                }
            }
            r += len;
        }
        Ok([lp, ent, rank, var])
    }
}

/// A weight matrix `[out, in]`; `forward` computes `x · wᵀ` with candle.
struct Linear(Tensor);

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.0.t()?)
    }
}

fn repeat_kv(x: &Tensor, rep: usize) -> candle_core::Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let (kv, l, d) = x.dims3()?;
    x.unsqueeze(1)?
        .expand((kv, rep, l, d))?
        .reshape((kv * rep, l, d))
}

fn causal_mask(len: usize, dev: &CDevice) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (len, len), dev)
}

/// Output names, in the order [`CausalLm::score`] returns them.
pub const OUTPUTS: [&str; 4] = ["logprob", "entropy", "rank", "logprob_var"];
/// Name of the tapped hidden states output (present with taps only).
pub const HIDDEN_OUTPUT: &str = "hidden";

impl Backend for CausalLm {
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let get = |name: &str| {
            crate::tensor::find(&inputs, name)
                .and_then(|t| t.as_i64())
                .map(|a| a.iter().copied().collect::<Vec<i64>>())
                .ok_or_else(|| {
                    EngineError::bad_input(&self.model, format!("missing i64 input `{name}`"))
                })
        };
        let ids = get("input_ids")?;
        let pos = get("position_ids")?;
        let want: Option<Vec<bool>> = crate::tensor::find(&inputs, "score_mask")
            .map(|_| get("score_mask").map(|m| m.iter().map(|&v| v != 0).collect()))
            .transpose()?;
        let n = ids.len();
        let (stats, tapped) = self.score_tapped(&ids, &pos, want.as_deref())?;
        let mut out: Vec<NamedTensor> = OUTPUTS
            .iter()
            .zip(stats)
            .filter(|_| self.statistics)
            .map(|(name, v)| {
                NamedTensor::new(
                    *name,
                    TensorData::f32_from_vec(&[n], v).expect("shape matches length"),
                )
            })
            .collect();
        if !self.taps.is_empty() {
            let width = self.taps.len() * self.cfg.hidden;
            out.push(NamedTensor::new(
                HIDDEN_OUTPUT,
                TensorData::f32_from_vec(&[n, width], tapped).expect("shape matches length"),
            ));
        }
        Ok(out)
    }

    fn device(&self) -> String {
        self.device_name.clone()
    }

    fn name(&self) -> &'static str {
        match self.weights {
            Weights::Host(_) => "candle-lm+openblas",
            Weights::Candle(_) => "candle-lm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_blocks_the_future() {
        let m = causal_mask(3, &CDevice::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(m[0][0], 0.0);
        assert!(m[0][1].is_infinite() && m[0][2].is_infinite());
        assert_eq!(m[2], vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn repeat_kv_duplicates_each_head_in_place() {
        let x = Tensor::from_vec(vec![1f32, 2.0], (2, 1, 1), &CDevice::Cpu).unwrap();
        let y = repeat_kv(&x, 3).unwrap().flatten_all().unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![1., 1., 1., 2., 2., 2.]);
    }
}
