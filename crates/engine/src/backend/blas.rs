//! OpenBLAS, loaded at run time from the project-local copy that
//! `scripts/setup.sh` extracts from the PyPI `scipy-openblas32` wheel
//! (`$CANDOR_HOME/openblas/lib/libscipy_openblas.so`), or from
//! `$CANDOR_BLAS_LIBRARY`.
//!
//! Only single-precision GEMM is used, by the language model's CPU path
//! ([`super::lm_host`]): OpenBLAS picks an AVX-512 kernel at run time where
//! the CPU has one, where candle's own GEMM stops at AVX2. OpenBLAS runs
//! single-threaded here; the callers split work over rayon's pool, so the
//! process keeps one set of worker threads (OpenBLAS's own pool busy-waits
//! between calls and would fight rayon for the cores).
//!
//! The library is optional: without it the model runs on candle's GEMM,
//! slower, with the same results up to float rounding.

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{EngineError, Result};

/// File name inside `$CANDOR_HOME/openblas/lib`.
pub const LIBRARY_NAME: &str = "libscipy_openblas.so";
/// Environment variable naming another OpenBLAS build (same symbol prefix).
pub const LIBRARY_ENV: &str = "CANDOR_BLAS_LIBRARY";

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

type SgemmFn = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

/// A loaded OpenBLAS.
pub struct Blas {
    _lib: libloading::Library,
    sgemm: SgemmFn,
    /// Path of the shared library.
    pub library: PathBuf,
    /// `OpenBLAS 0.3.x ...` as the library reports its build.
    pub config: String,
    /// The kernel family OpenBLAS chose for this CPU (e.g. `SkylakeX`).
    pub core: String,
}

impl std::fmt::Debug for Blas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blas")
            .field("library", &self.library)
            .field("core", &self.core)
            .finish()
    }
}

static BLAS: OnceLock<std::result::Result<Blas, String>> = OnceLock::new();

/// Where the library is looked for: `$CANDOR_BLAS_LIBRARY` when set, else
/// `<home>/openblas/lib/libscipy_openblas.so`.
pub fn library_path(home: &Path) -> PathBuf {
    std::env::var_os(LIBRARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join("openblas").join("lib").join(LIBRARY_NAME))
}

/// Loads OpenBLAS once per process (later calls return the first result,
/// whatever `home` they pass).
pub fn load(home: &Path) -> Result<&'static Blas> {
    BLAS.get_or_init(|| open(&library_path(home)))
        .as_ref()
        .map_err(|e| EngineError::RuntimeMissing(e.clone()))
}

fn open(path: &Path) -> std::result::Result<Blas, String> {
    if !path.is_file() {
        return Err(format!(
            "no OpenBLAS at {} (run scripts/setup.sh, or set {LIBRARY_ENV})",
            path.display()
        ));
    }
    let fail = |e: libloading::Error| format!("loading {}: {e}", path.display());
    // SAFETY: loading a shared library runs its initialisers; this is the
    // pinned OpenBLAS build the setup step verified by sha256 (or one the
    // operator named). The symbols are looked up with their C signatures
    // from OpenBLAS's cblas.h (32-bit integers: the `scipy-openblas32` build).
    unsafe {
        let lib = libloading::Library::new(path).map_err(fail)?;
        let sgemm: SgemmFn = *lib.get::<SgemmFn>(b"scipy_cblas_sgemm\0").map_err(fail)?;
        let text = |sym: &[u8]| {
            lib.get::<unsafe extern "C" fn() -> *const c_char>(sym)
                .ok()
                .map(|f| f())
                .filter(|p| !p.is_null())
                .map(|p| CStr::from_ptr(p).to_string_lossy().trim().to_string())
                .unwrap_or_default()
        };
        let core = text(b"scipy_openblas_get_corename\0");
        let config = text(b"scipy_openblas_get_config\0");
        // One thread inside OpenBLAS: callers parallelise over rayon.
        if let Ok(set) = lib.get::<unsafe extern "C" fn(c_int)>(b"scipy_openblas_set_num_threads\0")
        {
            set(1);
        }
        Ok(Blas {
            _lib: lib,
            sgemm,
            library: path.to_path_buf(),
            config,
            core,
        })
    }
}

/// A row-major matrix operand: data, leading dimension (elements between
/// rows) and whether it is used transposed.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub trans: bool,
}

impl<'a> Operand<'a> {
    /// `data` used as stored (rows of `ld` elements).
    pub fn plain(data: &'a [f32], ld: usize) -> Self {
        Operand {
            data,
            ld,
            trans: false,
        }
    }
    /// `data` used transposed (its rows become columns).
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        Operand {
            data,
            ld,
            trans: true,
        }
    }
    /// Elements the operand must hold for a `rows × cols` use.
    fn need(&self, rows: usize, cols: usize) -> usize {
        let (r, c) = if self.trans {
            (cols, rows)
        } else {
            (rows, cols)
        };
        if r == 0 || c == 0 {
            0
        } else {
            (r - 1) * self.ld + c
        }
    }
    fn ld_ok(&self, rows: usize, cols: usize) -> bool {
        self.ld >= if self.trans { rows } else { cols }.max(1)
    }
}

fn dim(v: usize) -> c_int {
    c_int::try_from(v).expect("matrix dimension fits a 32-bit BLAS integer")
}

impl Blas {
    /// `C = A · B + beta · C` on the calling thread, with `A` `m × k`,
    /// `B` `k × n` (either possibly transposed) and `C` `m × n` with
    /// leading dimension `ldc`. Panics when a slice is too short for its
    /// shape (a caller bug, never data-dependent).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: Operand<'_>,
        b: Operand<'_>,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(
            a.ld_ok(m, k) && b.ld_ok(k, n) && ldc >= n,
            "leading dimensions"
        );
        assert!(
            a.data.len() >= a.need(m, k) && b.data.len() >= b.need(k, n),
            "operand slices too short for {m}x{k} · {k}x{n}"
        );
        assert!(c.len() >= (m - 1) * ldc + n, "output slice too short");
        let t = |o: &Operand<'_>| if o.trans { TRANS } else { NO_TRANS };
        // SAFETY: the asserts above bound every element the routine reads
        // or writes inside the slices; the pointers are valid for the call.
        unsafe {
            (self.sgemm)(
                ROW_MAJOR,
                t(&a),
                t(&b),
                dim(m),
                dim(n),
                dim(k),
                1.0,
                a.data.as_ptr(),
                dim(a.ld),
                b.data.as_ptr(),
                dim(b.ld),
                beta,
                c.as_mut_ptr(),
                dim(ldc),
            );
        }
    }

    /// `C[m × n] = X[m × k] · Wᵀ + beta · C` for a weight `W` stored
    /// `[n, k]` (a linear layer; `m` and `n` follow from the lengths), the
    /// columns of `C` split over rayon's threads (each thread reads all of
    /// `X` and its own rows of `W`).
    pub fn linear(&self, x: &[f32], w: &[f32], k: usize, beta: f32, c: &mut [f32]) {
        use rayon::prelude::*;
        assert!(
            k > 0 && x.len().is_multiple_of(k) && w.len().is_multiple_of(k),
            "shapes"
        );
        let (m, n) = (x.len() / k, w.len() / k);
        assert_eq!(c.len(), m * n, "output shape");
        let parts = rayon::current_num_threads().max(1);
        // Column blocks of a multiple of 16 (one AVX-512 register of f32).
        let step = n.div_ceil(parts).div_ceil(16).max(1) * 16;
        let blocks: Vec<(usize, usize)> =
            (0..n).step_by(step).map(|s| (s, step.min(n - s))).collect();
        let out = SharedMut::new(c);
        blocks.par_iter().for_each(|&(n0, nn)| {
            // SAFETY: blocks are disjoint column ranges of C; each task
            // writes only columns n0..n0+nn of every row.
            let c = unsafe { out.slice() };
            self.gemm(
                m,
                nn,
                k,
                Operand::plain(x, k),
                Operand::transposed(&w[n0 * k..], k),
                beta,
                &mut c[n0..],
                n,
            );
        });
    }
}

/// A mutable slice handed to parallel tasks that write disjoint parts of
/// it (the caller guarantees disjointness).
pub(crate) struct SharedMut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: used only to give tasks of one parallel loop disjoint windows of
// one buffer that outlives the loop.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    pub(crate) fn new(s: &mut [f32]) -> Self {
        SharedMut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }
    /// # Safety
    /// Concurrent users must write disjoint elements, and the buffer must
    /// outlive them.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.ptr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b_nk: &[f32]) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b_nk[j * k + l]).sum();
            }
        }
        c
    }

    fn lib() -> Option<&'static Blas> {
        let home = crate::testutil::candor_home();
        match load(&home) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("SKIP: {e}");
                None
            }
        }
    }

    #[test]
    fn linear_matches_a_naive_product() {
        let Some(blas) = lib() else { return };
        let (m, k, n) = (7, 33, 45);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let want = naive(m, n, k, &a, &w);
        let mut c = vec![1f32; m * n];
        blas.linear(&a, &w, k, 0.0, &mut c);
        assert_eq!(c, want);
        // beta = 1 accumulates into C (the residual connection).
        blas.linear(&a, &w, k, 1.0, &mut c);
        let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
        assert_eq!(c, twice);
    }

    #[test]
    fn gemm_reads_strided_and_transposed_operands() {
        let Some(blas) = lib() else { return };
        // A: 2×3 inside rows of 5; B: 3×2 plain inside rows of 4.
        let a = [1., 2., 3., 9., 9., 4., 5., 6., 9., 9.];
        let b = [1., 0., 9., 9., 0., 1., 9., 9., 1., 1., 9., 9.];
        let mut c = [0f32; 6];
        blas.gemm(
            2,
            2,
            3,
            Operand::plain(&a, 5),
            Operand::plain(&b, 4),
            0.0,
            &mut c,
            3,
        );
        assert_eq!(&c[..2], &[4., 5.]);
        assert_eq!(&c[3..5], &[10., 11.]);
        assert_eq!(c[2], 0.0, "outside the 2-column window");
    }

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let e = open(Path::new("/nonexistent/libscipy_openblas.so")).unwrap_err();
        assert!(
            e.contains("scripts/setup.sh") && e.contains(LIBRARY_ENV),
            "{e}"
        );
    }
}
