//! An exact nearest-neighbour index over unit-length embeddings (face,
//! voice), stored as int8 codes with one scale per vector.
//!
//! A million 128-d templates take 128 MiB (plus 4 bytes of scale and 8 of
//! id each) instead of 512 MiB as f32. The scan is exact over the codes (no
//! recall loss from an approximate structure); quantisation moves cosines
//! by about 1e-3 (tested), far below the gap between a match and a
//! non-match.
//!
//! A brute-force scan of 10^6 templates is bound by memory bandwidth (about
//! 6 GB/s per core here), so the codes are stored split: each code `c` is
//! `16 * (u - 8) + l` with `u` and `l` in 0..=15, and the high nibbles `u`
//! of a row sit apart from its low nibbles `l`. The scan reads only the
//! high nibbles (half the bytes) and computes from them an exact upper bound
//! of the dot product (the low nibbles can add at most `15 * q` for each
//! positive query code `q`); only the rows whose bound reaches the current
//! floor have their low nibbles read and their exact dot product taken.
//! Every hit is the one a scan of the whole codes would give.

use std::cmp::Ordering;

/// One hit of a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The id given at insertion.
    pub id: u64,
    /// Cosine similarity (approximate to ~1e-3).
    pub similarity: f32,
}

/// The index. Ids are the caller's (e.g. row ids of a registry table).
#[derive(Debug, Clone, Default)]
pub struct VectorIndex {
    dim: usize,
    /// Bytes per row in `hi` and in `lo`: two dimensions per byte, the even
    /// one in the low half (an odd dimension count is padded with a zero).
    row: usize,
    /// The high nibbles of the codes, offset to 0..=15 (`(c >> 4) + 8`).
    hi: Vec<u8>,
    /// The low nibbles of the codes (`c & 15`).
    lo: Vec<u8>,
    scales: Vec<f32>,
    ids: Vec<u64>,
    /// Id → row, for [`VectorIndex::get`] (about 25 bytes per template:
    /// 25 MiB beside the 128 MiB of codes of 10^6 faces).
    rows: std::collections::HashMap<u64, usize>,
    /// Removed slots (id `u64::MAX`), compacted away when they pass half.
    holes: usize,
}

/// The unit vector of `v`, or `None` for a zero or non-finite vector.
pub fn normalize(v: &[f32]) -> Option<Vec<f32>> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (n.is_finite() && n > 0.0).then(|| v.iter().map(|x| x / n).collect())
}

fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    out.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// The high nibble of a code, offset to 0..=15.
fn high(c: i8) -> u8 {
    ((c >> 4) + 8) as u8
}

/// The code whose offset high nibble is `u` and low nibble `l`.
fn code(u: u8, l: u8) -> i32 {
    16 * (i32::from(u) - 8) + i32::from(l)
}

/// A query, quantised, in the index's layout.
struct Query {
    /// Codes of the even and the odd dimensions (padded with zeros).
    even: Vec<i8>,
    odd: Vec<i8>,
    scale: f32,
    /// `15 * sum(|q|) - 241 * sum(q)`: with `s = sum(q * u)` over a row's
    /// high nibbles, `32 * s + bound` is at least twice its exact dot
    /// product (`dot = 16 * s - 128 * sum(q) + sum(q * l)`, and
    /// `q * l <= 7.5 * (q + |q|)` for `l` in 0..=15).
    bound: i32,
}

impl Query {
    fn new(u: &[f32], row: usize) -> Self {
        let mut qc = Vec::with_capacity(2 * row);
        let scale = quantize(u, &mut qc);
        qc.resize(2 * row, 0);
        let sum: i32 = qc.iter().map(|&x| i32::from(x)).sum();
        let abs: i32 = qc.iter().map(|&x| i32::from(x).abs()).sum();
        Query {
            even: qc.iter().step_by(2).copied().collect(),
            odd: qc.iter().skip(1).step_by(2).copied().collect(),
            scale,
            bound: 15 * abs - 241 * sum,
        }
    }
}

/// Integer dot product of the query with a row's high nibbles; written so
/// that the compiler vectorises it.
#[inline(always)]
fn dot_high(hi: &[u8], q: &Query) -> i32 {
    let mut acc = [0i32; 32];
    let chunks = hi.len() / 32;
    for c in 0..chunks {
        let r = c * 32..c * 32 + 32;
        let (h, e, o) = (&hi[r.clone()], &q.even[r.clone()], &q.odd[r]);
        for i in 0..32 {
            acc[i] +=
                i32::from(e[i]) * i32::from(h[i] & 15) + i32::from(o[i]) * i32::from(h[i] >> 4);
        }
    }
    let mut s: i32 = acc.iter().sum();
    let tail = chunks * 32..hi.len();
    for ((&h, &e), &o) in hi[tail.clone()]
        .iter()
        .zip(&q.even[tail.clone()])
        .zip(&q.odd[tail])
    {
        s += i32::from(e) * i32::from(h & 15) + i32::from(o) * i32::from(h >> 4);
    }
    s
}

/// The exact dot product of the query with a row's codes.
fn dot_exact(hi: &[u8], lo: &[u8], q: &Query) -> i32 {
    let mut s = 0;
    for j in 0..hi.len() {
        s += i32::from(q.even[j]) * code(hi[j] & 15, lo[j] & 15)
            + i32::from(q.odd[j]) * code(hi[j] >> 4, lo[j] >> 4);
    }
    s
}

/// The `k` best hits at or above a floor, as they are offered.
struct Top {
    hits: Vec<Hit>,
    floor: f32,
    k: usize,
}

impl Top {
    fn new(k: usize, min: f32) -> Self {
        Self {
            hits: Vec::with_capacity(k + 1),
            floor: min,
            k,
        }
    }

    #[inline(always)]
    fn offer(&mut self, id: u64, similarity: f32) {
        if similarity < self.floor || id == u64::MAX {
            return;
        }
        self.hits.push(Hit { id, similarity });
        if self.hits.len() > self.k {
            self.hits.sort_by(|a, b| {
                b.similarity
                    .partial_cmp(&a.similarity)
                    .unwrap_or(Ordering::Equal)
            });
            self.hits.truncate(self.k);
            self.floor = self.floor.max(self.hits[self.k - 1].similarity);
        }
    }

    /// Row `r` given the query's dot product `s` with its high nibbles:
    /// offered with its exact similarity when the bound can reach the floor.
    #[inline(always)]
    fn consider(&mut self, rows: Rows<'_>, r: usize, s: i32, q: &Query) {
        let (id, scale) = (rows.ids[r], rows.scales[r]);
        // The same float operations as the similarity below, on a number at
        // least twice the dot product: never under it (rounding is monotone
        // and halving exact).
        let upper = (32 * s + q.bound) as f32 * 0.5 * q.scale * scale;
        if upper < self.floor || id == u64::MAX {
            return;
        }
        let n = q.even.len();
        let dot = dot_exact(
            &rows.hi[r * n..(r + 1) * n],
            &rows.lo[r * n..(r + 1) * n],
            q,
        );
        self.offer(id, dot as f32 * q.scale * scale);
    }
}

/// The rows of one slice of the index whose similarity to the query is at
/// least `min`, the `k` best.
#[inline(always)]
fn scan_rows(rows: Rows<'_>, q: &Query, k: usize, min: f32) -> Vec<Hit> {
    let mut top = Top::new(k, min);
    let n = q.even.len();
    for r in 0..rows.ids.len() {
        let s = dot_high(&rows.hi[r * n..(r + 1) * n], q);
        top.consider(rows, r, s, q);
    }
    top.hits
}

/// [`scan_rows`] with AVX-512 VNNI dot products, for rows of a multiple of
/// 64 bytes (128 dimensions): one instruction multiplies and sums 64
/// unsigned nibbles with 64 signed query codes. The same integers as
/// [`dot_high`], so the same hits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn scan_rows_vnni(rows: Rows<'_>, q: &Query, k: usize, min: f32) -> Vec<Hit> {
    use std::arch::x86_64::{
        __m512i, _mm512_and_si512, _mm512_dpbusd_epi32, _mm512_loadu_si512,
        _mm512_reduce_add_epi32, _mm512_set1_epi8, _mm512_setzero_si512, _mm512_srli_epi16,
    };
    let n = q.even.len();
    debug_assert!(n.is_multiple_of(64) && n > 0);
    // SAFETY (both loads): each chunk holds 64 bytes; the loads are unaligned.
    let load = |c: &[u8]| unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
    let as_bytes = |v: &[i8]| -> Vec<__m512i> {
        v.chunks_exact(64)
            .map(|c| unsafe { _mm512_loadu_si512(c.as_ptr().cast()) })
            .collect()
    };
    let (even, odd) = (as_bytes(&q.even), as_bytes(&q.odd));
    let low4 = _mm512_set1_epi8(15);
    let mut top = Top::new(k, min);
    for r in 0..rows.ids.len() {
        let row = &rows.hi[r * n..(r + 1) * n];
        let mut acc = _mm512_setzero_si512();
        for ((c, e), o) in row.chunks_exact(64).zip(&even).zip(&odd) {
            let v = load(c);
            let lo = _mm512_and_si512(v, low4);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low4);
            acc = _mm512_dpbusd_epi32(acc, lo, *e);
            acc = _mm512_dpbusd_epi32(acc, hi, *o);
        }
        top.consider(rows, r, _mm512_reduce_add_epi32(acc), q);
    }
    top.hits
}

/// Whether [`scan_rows_vnni`] takes rows of `n` bytes on this CPU.
#[cfg(target_arch = "x86_64")]
fn vnni_fits(n: usize) -> bool {
    n.is_multiple_of(64)
        && n > 0
        && std::arch::is_x86_feature_detected!("avx512vnni")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// A slice of the index's rows.
#[derive(Clone, Copy)]
struct Rows<'a> {
    hi: &'a [u8],
    lo: &'a [u8],
    scales: &'a [f32],
    ids: &'a [u64],
}

/// [`scan_rows_vnni`] when the CPU has AVX-512 VNNI and the row length
/// suits it, else [`scan_rows`] compiled for AVX-512 or AVX2 when the CPU
/// has them (chosen at run time; the build's baseline is SSE2), else for
/// the baseline. Integer arithmetic: the same hits on every path.
fn scan(rows: Rows<'_>, q: &Query, k: usize, min: f32) -> Vec<Hit> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw")]
        fn v512(rows: Rows<'_>, q: &Query, k: usize, min: f32) -> Vec<Hit> {
            scan_rows(rows, q, k, min)
        }
        #[target_feature(enable = "avx2")]
        fn v256(rows: Rows<'_>, q: &Query, k: usize, min: f32) -> Vec<Hit> {
            scan_rows(rows, q, k, min)
        }
        if vnni_fits(q.even.len()) {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { scan_rows_vnni(rows, q, k, min) };
        }
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: as above, for v512.
            return unsafe { v512(rows, q, k, min) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for v256.
            return unsafe { v256(rows, q, k, min) };
        }
    }
    scan_rows(rows, q, k, min)
}

impl VectorIndex {
    pub fn new(dim: usize) -> Self {
        VectorIndex {
            dim,
            row: dim.div_ceil(2),
            ..Default::default()
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Templates held.
    pub fn len(&self) -> usize {
        self.ids.len() - self.holes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the codes, scales and ids.
    pub fn bytes(&self) -> usize {
        self.hi.len() + self.lo.len() + self.scales.len() * 4 + self.ids.len() * 8
    }

    /// Adds `v` (normalised here) under `id`. False when `v` has the wrong
    /// length or is zero.
    pub fn insert(&mut self, id: u64, v: &[f32]) -> bool {
        if v.len() != self.dim {
            return false;
        }
        let Some(u) = normalize(v) else { return false };
        let mut c = Vec::with_capacity(2 * self.row);
        let s = quantize(&u, &mut c);
        c.resize(2 * self.row, 0);
        for p in c.chunks_exact(2) {
            self.hi.push(high(p[0]) | (high(p[1]) << 4));
            self.lo.push((p[0] as u8 & 15) | ((p[1] as u8 & 15) << 4));
        }
        self.scales.push(s);
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        true
    }

    /// The template stored under `id`, as its codes read (within about
    /// 1e-3 of the unit vector inserted).
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        let &r = self.rows.get(&id)?;
        let (n, s) = (self.row, self.scales[r]);
        let (hi, lo) = (&self.hi[r * n..(r + 1) * n], &self.lo[r * n..(r + 1) * n]);
        let mut v = Vec::with_capacity(2 * n);
        for (h, l) in hi.iter().zip(lo) {
            v.push(code(h & 15, l & 15) as f32 * s);
            v.push(code(h >> 4, l >> 4) as f32 * s);
        }
        v.truncate(self.dim);
        Some(v)
    }

    /// Removes every template with an id for which `gone` is true.
    pub fn remove_where(&mut self, gone: impl Fn(u64) -> bool) -> usize {
        let mut n = 0;
        for id in self.ids.iter_mut() {
            if *id != u64::MAX && gone(*id) {
                self.rows.remove(id);
                *id = u64::MAX;
                n += 1;
            }
        }
        self.holes += n;
        if self.holes * 2 > self.ids.len() {
            self.compact();
        }
        n
    }

    fn compact(&mut self) {
        let n = self.row;
        let mut w = 0;
        for r in 0..self.ids.len() {
            if self.ids[r] == u64::MAX {
                continue;
            }
            if w != r {
                self.ids[w] = self.ids[r];
                self.rows.insert(self.ids[r], w);
                self.scales[w] = self.scales[r];
                self.hi.copy_within(r * n..(r + 1) * n, w * n);
                self.lo.copy_within(r * n..(r + 1) * n, w * n);
            }
            w += 1;
        }
        self.ids.truncate(w);
        self.scales.truncate(w);
        self.hi.truncate(w * n);
        self.lo.truncate(w * n);
        self.holes = 0;
    }

    /// The `k` most similar templates with similarity ≥ `min_similarity`,
    /// best first, scanning on up to `threads` threads.
    pub fn search(&self, q: &[f32], k: usize, min_similarity: f32, threads: usize) -> Vec<Hit> {
        if q.len() != self.dim || k == 0 || self.ids.is_empty() {
            return Vec::new();
        }
        let Some(u) = normalize(q) else {
            return Vec::new();
        };
        let query = Query::new(&u, self.row);
        let rows = self.ids.len();
        let threads = threads.clamp(1, 16).min(rows.div_ceil(4096).max(1));
        let per = rows.div_ceil(threads);
        let n = self.row;
        let scan = |lo: usize, hi: usize| -> Vec<Hit> {
            let rows = Rows {
                hi: &self.hi[lo * n..hi * n],
                lo: &self.lo[lo * n..hi * n],
                scales: &self.scales[lo..hi],
                ids: &self.ids[lo..hi],
            };
            scan(rows, &query, k, min_similarity)
        };
        let mut all: Vec<Hit> = if threads == 1 {
            scan(0, rows)
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (lo, hi) = (t * per, ((t + 1) * per).min(rows));
                        s.spawn(move || scan(lo, hi))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        all.sort_by(|a, b| {
            b.similarity
                .partial_cmp(&a.similarity)
                .unwrap_or(Ordering::Equal)
                .then(a.id.cmp(&b.id))
        });
        all.truncate(k);
        all
    }

    /// Exact f32 cosine of two vectors (the reference the codes are tested
    /// and benchmarked against).
    pub fn cosine(a: &[f32], b: &[f32]) -> Option<f32> {
        let (a, b) = (normalize(a)?, normalize(b)?);
        Some(a.iter().zip(&b).map(|(x, y)| x * y).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand_chacha::ChaCha8Rng, d: usize) -> Vec<f32> {
        (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// An index of `n` random vectors (ids 0..n), and the vectors.
    fn filled(rng: &mut rand_chacha::ChaCha8Rng, d: usize, n: u64) -> (VectorIndex, Vec<Vec<f32>>) {
        let mut idx = VectorIndex::new(d);
        let mut all = Vec::new();
        for id in 0..n {
            let v = random(rng, d);
            assert!(idx.insert(id, &v));
            all.push(v);
        }
        (idx, all)
    }

    #[test]
    fn finds_the_planted_neighbour_with_cosines_close_to_exact() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (idx, all) = filled(&mut rng, 128, 20_000);
        // A noisy copy of template 1234 (the same face in another photo).
        let q: Vec<f32> = all[1234]
            .iter()
            .map(|x| x + rng.random_range(-0.3f32..0.3))
            .collect();
        for threads in [1, 2, 3] {
            let hits = idx.search(&q, 5, 0.0, threads);
            assert_eq!(hits[0].id, 1234, "threads {threads}");
            let exact = VectorIndex::cosine(&q, &all[1234]).unwrap();
            assert!(
                (hits[0].similarity - exact).abs() < 0.01,
                "{hits:?} vs {exact}"
            );
            assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        }
        // Quantisation error over many pairs.
        let mut worst = 0f32;
        for i in 0..200 {
            let hits = idx.search(&all[i], 3, -1.0, 1);
            for h in hits {
                let exact = VectorIndex::cosine(&all[i], &all[h.id as usize]).unwrap();
                worst = worst.max((h.similarity - exact).abs());
            }
        }
        assert!(worst < 0.01, "worst cosine error {worst}");
    }

    /// The codes of row `r`, put back together from the split nibbles.
    fn codes(idx: &VectorIndex, r: usize) -> Vec<i32> {
        let n = idx.row;
        let (hi, lo) = (&idx.hi[r * n..(r + 1) * n], &idx.lo[r * n..(r + 1) * n]);
        hi.iter()
            .zip(lo)
            .flat_map(|(&h, &l)| [code(h & 15, l & 15), code(h >> 4, l >> 4)])
            .collect()
    }

    /// Every scan path gives the hits of a plain scan of the whole codes,
    /// to the bit: the nibble bound never drops a hit, in dimensions the
    /// VNNI kernel takes (128, 256) and others (odd ones padded).
    #[test]
    fn every_scan_path_gives_the_hits_of_the_whole_codes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for d in [5, 64, 100, 128, 256] {
            let (mut idx, all) = filled(&mut rng, d, 3_000);
            // Extreme codes too (every lane at ±127), and their round trip.
            assert!(idx.insert(9_000, &vec![1.0; d]));
            assert!(idx.insert(9_001, &vec![-1.0; d]));
            assert!(codes(&idx, 3_000)[..d].iter().all(|&c| c == 127));
            assert!(codes(&idx, 3_001)[..d].iter().all(|&c| c == -127));
            for t in 0..6 {
                // Half the queries near a stored vector, so that the floor
                // rises and the bound has real candidates to keep.
                let q: Vec<f32> = if t % 2 == 0 {
                    random(&mut rng, d)
                } else {
                    all[t * 100]
                        .iter()
                        .map(|x| x + rng.random_range(-0.5f32..0.5))
                        .collect()
                };
                let query = Query::new(&normalize(&q).unwrap(), idx.row);
                let qc: Vec<i32> = query
                    .even
                    .iter()
                    .zip(&query.odd)
                    .flat_map(|(&e, &o)| [i32::from(e), i32::from(o)])
                    .collect();
                let rows = Rows {
                    hi: &idx.hi,
                    lo: &idx.lo,
                    scales: &idx.scales,
                    ids: &idx.ids,
                };
                for (k, min) in [(50, -1.0f32), (5, 0.0), (10, 0.2)] {
                    let want: Vec<Hit> = (0..idx.ids.len())
                        .map(|r| {
                            let dot: i32 = codes(&idx, r).iter().zip(&qc).map(|(c, q)| c * q).sum();
                            Hit {
                                id: idx.ids[r],
                                similarity: dot as f32 * query.scale * idx.scales[r],
                            }
                        })
                        .filter(|h| h.similarity >= min)
                        .collect();
                    let sorted = |mut h: Vec<Hit>| {
                        h.sort_by(|a, b| {
                            b.similarity.total_cmp(&a.similarity).then(a.id.cmp(&b.id))
                        });
                        h
                    };
                    let mut want = sorted(want);
                    want.truncate(k);
                    assert_eq!(
                        sorted(scan_rows(rows, &query, k, min)),
                        want,
                        "dimension {d}"
                    );
                    assert_eq!(sorted(scan(rows, &query, k, min)), want, "dimension {d}");
                    #[cfg(target_arch = "x86_64")]
                    if vnni_fits(idx.row) {
                        // SAFETY: the CPU has the features.
                        let v = unsafe { scan_rows_vnni(rows, &query, k, min) };
                        assert_eq!(sorted(v), want, "dimension {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn threshold_removal_and_bad_input() {
        let mut idx = VectorIndex::new(4);
        assert!(!idx.insert(1, &[0.0; 4]), "zero vector refused");
        assert!(!idx.insert(1, &[1.0; 3]), "wrong length refused");
        assert!(idx.insert(1, &[1.0, 0.0, 0.0, 0.0]));
        assert!(idx.insert(2, &[0.0, 1.0, 0.0, 0.0]));
        assert!(idx.insert(3, &[0.9, 0.1, 0.0, 0.0]));
        let hits = idx.search(&[1.0, 0.0, 0.0, 0.0], 10, 0.5, 1);
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(idx.remove_where(|id| id == 1), 1);
        let hits = idx.search(&[1.0, 0.0, 0.0, 0.0], 10, 0.5, 1);
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [3]);
        assert_eq!(idx.len(), 2);
        idx.remove_where(|id| id == 3);
        assert_eq!(idx.len(), 1);
        assert!(idx.search(&[f32::NAN; 4], 1, 0.0, 1).is_empty());
    }

    /// `get` gives each template back within quantisation error, also after
    /// removals and the compaction that moves rows; removed ids give none.
    #[test]
    fn get_survives_removal_and_compaction() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for d in [5, 128] {
            let (mut idx, all) = filled(&mut rng, d, 400);
            let check = |idx: &VectorIndex, gone: &dyn Fn(u64) -> bool| {
                for (id, v) in all.iter().enumerate() {
                    let id = id as u64;
                    match idx.get(id) {
                        None => assert!(gone(id), "id {id} lost"),
                        Some(g) => {
                            assert!(!gone(id), "id {id} removed but still there");
                            let c = VectorIndex::cosine(&g, v).unwrap();
                            let n = g.iter().map(|x| x * x).sum::<f32>().sqrt();
                            assert!(c > 0.999 && (n - 1.0).abs() < 0.01, "id {id}: {c} {n}");
                        }
                    }
                }
            };
            check(&idx, &|_| false);
            // A third: holes only. Then past half: compacted, rows moved.
            idx.remove_where(|id| id % 3 == 0);
            check(&idx, &|id| id % 3 == 0);
            idx.remove_where(|id| id % 2 == 0);
            assert_eq!(idx.holes, 0, "compacted");
            check(&idx, &|id| id % 3 == 0 || id % 2 == 0);
            assert!(idx.get(10_000).is_none());
        }
    }
}
