//! The language model's CPU path: the same transformer as the candle path
//! in [`super::causal_lm`], written over plain `f32` buffers so that every
//! matrix product is one OpenBLAS call ([`super::blas`]) and nothing is
//! copied between products:
//!
//! * Q, K and V are one product with the three weights stacked, gate and
//!   up one product, and the output and down projections accumulate into
//!   the residual stream (`beta = 1`);
//! * rotary embeddings are applied in place on the packed `[N, heads, dim]`
//!   layout;
//! * attention runs per (sequence, head, block of 64 query rows), reading
//!   Q, K and V in place with strides, and only over the key columns the
//!   causal mask lets the block see (half the work of a full square);
//! * the vocabulary head is applied to blocks of rows and each block is
//!   reduced to the four statistics while it is still in cache.
//!
//! Work is split over rayon's pool; OpenBLAS runs single-threaded inside
//! each task. The reduction ([`row_stats`]) and the exponential
//! ([`exp`]) are shared with the candle path, so both paths return the same
//! statistics up to float rounding (tested in `causal_lm`).

use std::sync::Arc;

use rayon::prelude::*;

use super::blas::{Blas, Operand, SharedMut};
use super::causal_lm::LmConfig;

/// Query rows per attention task.
const ATTN_BLOCK: usize = 64;
/// Most rows of logits per head task: `HEAD_BLOCK_MAX × vocab` floats of
/// scratch per task (38 MB for a 49k vocabulary).
const HEAD_BLOCK_MAX: usize = 192;

/// Defines `fn $name` that runs `$body` compiled for AVX-512 or AVX2+FMA
/// when the CPU has them (chosen at run time), else for the baseline. The
/// body must be `#[inline(always)]`; results are identical on every path
/// (no fused multiply-add is introduced, lanes are explicit).
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)? => $body:ident) => {
        $(#[$m])*
        fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn v512($($a: $t),*) $(-> $r)? {
                    $body($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn v256($($a: $t),*) $(-> $r)? {
                    $body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features v512 is compiled for.
                    return unsafe { v512($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for v256.
                    return unsafe { v256($($a),*) };
                }
            }
            $body($($a),*)
        }
    };
}

/// One transformer block's weights, row-major, `[out, in]` like the GGUF.
pub(crate) struct HostLayer {
    pub attn_norm: Vec<f32>,
    /// Q, K and V stacked: `[(heads + 2 kv_heads) · head_dim, hidden]`.
    pub wqkv: Vec<f32>,
    pub wo: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    /// Gate and up stacked: `[2 · ffn, hidden]`.
    pub wgu: Vec<f32>,
    /// `[hidden, ffn]`.
    pub down: Vec<f32>,
}

/// The whole model as host buffers.
pub(crate) struct HostModel {
    pub blas: &'static Blas,
    pub cfg: LmConfig,
    pub ffn: usize,
    /// `[vocab, hidden]`.
    pub embed: Arc<Vec<f32>>,
    pub layers: Vec<HostLayer>,
    pub norm: Vec<f32>,
    /// `[vocab, hidden]`; the same allocation as `embed` when tied.
    pub head: Arc<Vec<f32>>,
    /// `[positions, head_dim / 2]`.
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

impl HostModel {
    /// Final hidden states `[N, hidden]` of a packed token stream whose
    /// sequences are `bounds` (start, end) ranges, and the residual stream
    /// after each block listed in `taps` (1-based block counts),
    /// `[N, taps · hidden]`, for the rows where `rows` is true (zeros
    /// elsewhere; empty when `taps` is). Only the first `blocks` blocks run
    /// (the "final" states are then those after block `blocks`).
    pub fn hidden_tapped(
        &self,
        ids: &[i64],
        pos: &[i64],
        bounds: &[(usize, usize)],
        taps: &[usize],
        rows: &[bool],
        blocks: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let cfg = &self.cfg;
        let (n, d) = (ids.len(), cfg.hidden);
        let eps = cfg.rms_eps as f32;
        let mut x = vec![0f32; n * d];
        x.par_chunks_mut(d).zip(ids).for_each(|(row, &t)| {
            row.copy_from_slice(&self.embed[t as usize * d..(t as usize + 1) * d])
        });
        let qkv_w = (cfg.heads + 2 * cfg.kv_heads) * cfg.head_dim;
        let mut h = vec![0f32; n * d];
        let mut qkv = vec![0f32; n * qkv_w];
        let mut att = vec![0f32; n * d];
        let mut gu = vec![0f32; n * 2 * self.ffn];
        let mut act = vec![0f32; n * self.ffn];
        let width = taps.len() * d;
        let mut tapped = vec![0f32; if taps.is_empty() { 0 } else { n * width }];
        for (li, l) in self.layers.iter().enumerate().take(blocks) {
            rms_norm(&x, &l.attn_norm, eps, &mut h);
            self.blas.linear(&h, &l.wqkv, d, 0.0, &mut qkv);
            self.rope(&mut qkv, pos);
            self.attention(&qkv, bounds, &mut att);
            self.blas.linear(&att, &l.wo, d, 1.0, &mut x);
            rms_norm(&x, &l.ffn_norm, eps, &mut h);
            self.blas.linear(&h, &l.wgu, d, 0.0, &mut gu);
            let f = self.ffn;
            act.par_chunks_mut(f)
                .zip(gu.par_chunks(2 * f))
                .for_each(|(a, g)| silu_mul(&g[..f], &g[f..], a));
            self.blas.linear(&act, &l.down, f, 1.0, &mut x);
            for (k, _) in taps.iter().enumerate().filter(|(_, &t)| t == li + 1) {
                tapped
                    .par_chunks_mut(width)
                    .zip(x.par_chunks(d))
                    .zip(rows.par_iter())
                    .filter(|(_, &r)| r)
                    .for_each(|((o, xr), _)| o[k * d..(k + 1) * d].copy_from_slice(xr));
            }
        }
        rms_norm(&x, &self.norm, eps, &mut h);
        (h, tapped)
    }

    /// Rotates Q and K of every token by its position (adjacent pairs,
    /// llama.cpp's "normal" rope on GGUF-permuted weights).
    fn rope(&self, qkv: &mut [f32], pos: &[i64]) {
        let cfg = &self.cfg;
        let half = cfg.head_dim / 2;
        let width = (cfg.heads + 2 * cfg.kv_heads) * cfg.head_dim;
        let rotated = (cfg.heads + cfg.kv_heads) * cfg.head_dim;
        qkv.par_chunks_mut(width).zip(pos).for_each(|(row, &p)| {
            let cos = &self.cos[p as usize * half..(p as usize + 1) * half];
            let sin = &self.sin[p as usize * half..(p as usize + 1) * half];
            for head in row[..rotated].chunks_exact_mut(cfg.head_dim) {
                for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * cos[i] - b * sin[i];
                    pair[1] = a * sin[i] + b * cos[i];
                }
            }
        });
    }

    /// Causal attention inside each sequence; writes `[N, heads · dim]`.
    fn attention(&self, qkv: &[f32], bounds: &[(usize, usize)], out: &mut [f32]) {
        let cfg = &self.cfg;
        let hd = cfg.head_dim;
        let width = (cfg.heads + 2 * cfg.kv_heads) * hd;
        let rep = cfg.heads / cfg.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut tasks = Vec::new();
        for &(s, e) in bounds {
            for head in 0..cfg.heads {
                for r0 in (0..e - s).step_by(ATTN_BLOCK) {
                    tasks.push((s, e, head, r0));
                }
            }
        }
        let shared = SharedMut::new(out);
        tasks.par_iter().for_each(|&(s, e, head, r0)| {
            let r1 = (r0 + ATTN_BLOCK).min(e - s);
            let m = r1 - r0;
            let g = head / rep;
            let q = &qkv[(s + r0) * width + head * hd..];
            let k = &qkv[s * width + (cfg.heads + g) * hd..];
            let v = &qkv[s * width + (cfg.heads + cfg.kv_heads + g) * hd..];
            // Scores against keys 0..r1 (the block's rows see at most those).
            let mut p = vec![0f32; m * r1];
            self.blas.gemm(
                m,
                r1,
                hd,
                Operand::plain(q, width),
                Operand::transposed(k, width),
                0.0,
                &mut p,
                r1,
            );
            for (i, row) in p.chunks_exact_mut(r1).enumerate() {
                softmax_prefix(row, r0 + i + 1, scale);
            }
            // SAFETY: each task writes rows s+r0..s+r1 of its own head's
            // columns; tasks differ in (sequence, head, block).
            let o = unsafe { shared.slice() };
            self.blas.gemm(
                m,
                hd,
                r1,
                Operand::plain(&p, r1),
                Operand::plain(v, width),
                0.0,
                &mut o[(s + r0) * cfg.hidden + head * hd..],
                cfg.hidden,
            );
        });
    }

    /// Applies the vocabulary head to the rows that predict a scored token
    /// (row `t - 1` predicts token `t`) and reduces each to
    /// `[logprob, entropy, rank, logprob_var]`; other tokens get zeros.
    pub fn statistics(&self, hidden: &[f32], ids: &[i64], scored: &[bool]) -> [Vec<f32>; 4] {
        let n = ids.len();
        let (d, vocab) = (self.cfg.hidden, self.cfg.vocab);
        let targets: Vec<usize> = (1..n).filter(|&t| scored[t]).collect();
        // About two tasks per thread (measured: larger blocks keep the
        // product efficient, more tasks balance the threads).
        let per = targets
            .len()
            .div_ceil(2 * rayon::current_num_threads().max(1));
        let block = (per.div_ceil(16) * 16).clamp(16, HEAD_BLOCK_MAX);
        let rows: Vec<Vec<(usize, [f32; 4])>> = targets
            .par_chunks(block)
            .map(|ts| {
                let m = ts.len();
                let mut x = Vec::with_capacity(m * d);
                for &t in ts {
                    x.extend_from_slice(&hidden[(t - 1) * d..t * d]);
                }
                let mut logits = vec![0f32; m * vocab];
                self.blas.gemm(
                    m,
                    vocab,
                    d,
                    Operand::plain(&x, d),
                    Operand::transposed(&self.head, d),
                    0.0,
                    &mut logits,
                    vocab,
                );
                ts.iter()
                    .zip(logits.chunks_exact(vocab))
                    .map(|(&t, row)| (t, row_stats(row, ids[t] as usize)))
                    .collect()
            })
            .collect();
        let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0f32; n]);
        for (t, st) in rows.into_iter().flatten() {
            for (o, v) in out.iter_mut().zip(st) {
                o[t] = v;
            }
        }
        out
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, r)| {
            let ms = r.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((o, v), w) in o.iter_mut().zip(r).zip(w) {
                *o = v * inv * w;
            }
        });
}

multiversion! {
    /// `out = silu(g) · u`, element-wise.
    fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) => silu_mul_body
}

#[inline(always)]
fn silu_mul_body(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

multiversion! {
    /// Softmax of `row[..valid] · scale` in place; `row[valid..]` becomes 0
    /// (keys the causal mask hides).
    fn softmax_prefix(row: &mut [f32], valid: usize, scale: f32) => softmax_prefix_body
}

#[inline(always)]
fn softmax_prefix_body(row: &mut [f32], valid: usize, scale: f32) {
    let (seen, hidden) = row.split_at_mut(valid);
    hidden.fill(0.0);
    let max = lane_max(seen);
    for v in seen.iter_mut() {
        *v = exp((*v - max) * scale);
    }
    let inv = 1.0 / lane_sum(seen);
    for v in seen.iter_mut() {
        *v *= inv;
    }
}

/// Maximum over 16 independent lanes (so the loop vectorises).
#[inline(always)]
fn lane_max(v: &[f32]) -> f32 {
    let mut mx = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &x) in mx.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    tail.iter()
        .chain(mx.iter())
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a })
}

/// Sum over 16 independent lanes.
#[inline(always)]
fn lane_sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// `e^x` in single precision, branch-free so loops over it vectorise
/// (relative error below 2e-7 on the range used; inputs are clamped to
/// [-87, 88], where `f32` neither underflows to a denormal nor overflows).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let f = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor series of e^f to degree 7 on |f| ≤ ln2 / 2.
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) << 23) as u32);
    p * scale
}

/// Lanes of the vectorised reduction (one AVX-512 register of f32).
const LANES: usize = 16;

/// `[logprob, entropy, rank, logprob_var]` of one row of logits for the
/// token `target`, in one pass over the vocabulary after the maximum.
/// With z = logit - max and S = Σ e^z: log p = z - ln S,
/// Σ p log p = Σ e^z z / S - ln S, and
/// Σ p (log p)² = Σ e^z z² / S - 2 ln S Σ e^z z / S + (ln S)².
/// Sums run in f32 lanes over runs of 256 logits and in f64 across runs.
pub(crate) fn row_stats(row: &[f32], target: usize) -> [f32; 4] {
    row_stats_dispatch(row, target)
}

multiversion! {
    fn row_stats_dispatch(row: &[f32], target: usize) -> [f32; 4] => row_stats_body
}

#[inline(always)]
fn row_stats_body(row: &[f32], target: usize) -> [f32; 4] {
    let t = row[target];
    let max = lane_max(row);
    let (mut s, mut s1, mut s2, mut above) = (0f64, 0f64, 0f64, 0u64);
    for run in row.chunks(LANES * 16) {
        let (mut a0, mut a1, mut a2, mut ab) =
            ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0u32; LANES]);
        let chunks = run.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for l in 0..LANES {
                let v = c[l];
                let z = v - max;
                let e = exp(z);
                a0[l] += e;
                a1[l] += e * z;
                a2[l] += e * z * z;
                ab[l] += u32::from(v > t);
            }
        }
        for &v in tail {
            let z = v - max;
            let e = exp(z);
            s += e as f64;
            s1 += (e * z) as f64;
            s2 += (e * z * z) as f64;
            above += u64::from(v > t);
        }
        s += a0.iter().map(|&v| v as f64).sum::<f64>();
        s1 += a1.iter().map(|&v| v as f64).sum::<f64>();
        s2 += a2.iter().map(|&v| v as f64).sum::<f64>();
        above += ab.iter().map(|&v| v as u64).sum::<u64>();
    }
    let ln_s = s.ln();
    let mean = s1 / s - ln_s; // Σ p log p
    let m2 = s2 / s - 2.0 * ln_s * s1 / s + ln_s * ln_s;
    [
        ((t - max) as f64 - ln_s) as f32,
        (-mean) as f32,
        (above + 1) as f32,
        (m2 - mean * mean).max(0.0) as f32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_where_it_is_used() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn row_stats_match_a_double_precision_reduction() {
        // A skewed distribution over an odd-sized vocabulary (exercises the
        // lane tail and a run shorter than 256).
        let row: Vec<f32> = (0..49_157)
            .map(|i| ((i * 7919) % 1000) as f32 / 60.0 - (i % 13) as f32)
            .collect();
        for target in [0usize, 4, 999, 49_156] {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let s: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
            let lp: Vec<f64> = row.iter().map(|&l| l as f64 - max - s.ln()).collect();
            let ent: f64 = -lp.iter().map(|&v| v.exp() * v).sum::<f64>();
            let m2: f64 = lp.iter().map(|&v| v.exp() * v * v).sum();
            let var = m2 - ent * ent;
            let rank = 1 + row.iter().filter(|&&l| l > row[target]).count();
            let got = row_stats(&row, target);
            assert!((got[0] as f64 - lp[target]).abs() < 1e-4, "{got:?}");
            assert!(
                (got[1] as f64 - ent).abs() < 1e-4 * ent.max(1.0),
                "{got:?} vs {ent}"
            );
            assert_eq!(got[2], rank as f32);
            assert!(
                (got[3] as f64 - var).abs() < 1e-3 * var.max(1.0),
                "{got:?} vs {var}"
            );
            assert_eq!(row_stats_body(&row, target), got, "dispatch is transparent");
        }
    }

    #[test]
    fn softmax_prefix_hides_the_future() {
        let mut row = vec![1.0, 2.0, 3.0, 50.0];
        softmax_prefix(&mut row, 2, 1.0);
        assert_eq!(row[2..], [0.0, 0.0]);
        let e = std::f32::consts::E;
        assert!((row[1] - e / (1.0 + e)).abs() < 1e-6);
        assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
    }
}
