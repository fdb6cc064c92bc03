//! Where an upload's bytes wait between arriving and being analysed.
//!
//! Small inputs stay in memory. An input that grows past the spill
//! threshold moves to an unnamed temporary file (`O_TMPFILE`: it has no name
//! in the file system, so it disappears when its handle closes, even if the
//! process is killed) in the spill directory, while it is still arriving.
//! The bytes on disk of all inputs together are bounded by the spill area's
//! budget; an upload that would exceed it is refused at that byte. When the
//! input's turn comes, its bytes are read back into one buffer of exactly
//! its size: an input is never held twice in memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::error::ServerError;
use crate::metrics as m;

/// Write buffer of a spill file.
const SPILL_WRITE_BUFFER: usize = 1 << 20;

/// The spill directory and its byte budget.
#[derive(Debug)]
pub struct SpillArea {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    created: std::sync::OnceLock<Result<(), String>>,
}

impl SpillArea {
    /// The area in `dir`; the directory is made (owner-only) by
    /// [`SpillArea::ensure_dir`], at the latest when the first input spills.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        SpillArea {
            dir,
            max_bytes,
            used: AtomicU64::new(0),
            created: std::sync::OnceLock::new(),
        }
    }

    /// Creates the directory if needed (once; the server calls it at
    /// start-up so that a bad directory fails there).
    pub fn ensure_dir(&self) -> Result<(), ServerError> {
        self.created
            .get_or_init(|| {
                create_private_dir(&self.dir).map_err(|e| {
                    format!(
                        "cannot create the spill directory {}: {e}",
                        self.dir.display()
                    )
                })
            })
            .clone()
            .map_err(ServerError::Internal)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of spilled inputs on disk now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, n: u64) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|v| *v <= self.max_bytes) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    metrics::gauge!(m::SPILL_BYTES).set(next as f64);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn release(&self, n: u64) {
        let left = self.used.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        metrics::gauge!(m::SPILL_BYTES).set(left as f64);
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// How many bytes of spilled inputs may be back in memory at once (being
/// analysed). An input waits for its share before it is read back; one
/// larger than the whole budget waits for all of it.
#[derive(Debug)]
pub(crate) struct LoadBudget {
    sem: Arc<tokio::sync::Semaphore>,
    kib: u32,
}

impl LoadBudget {
    pub(crate) fn new(max_bytes: u64) -> Self {
        let cap = tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize) as u64;
        let kib = (max_bytes / 1024).clamp(1, cap) as u32;
        LoadBudget {
            sem: Arc::new(tokio::sync::Semaphore::new(kib as usize)),
            kib,
        }
    }

    pub(crate) async fn acquire(
        &self,
        len: u64,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ServerError> {
        let want = len.div_ceil(1024).clamp(1, u64::from(self.kib)) as u32;
        Arc::clone(&self.sem)
            .acquire_many_owned(want)
            .await
            .map_err(|_| ServerError::Internal("the loaded-input budget closed".into()))
    }
}

/// Bytes of the spill budget held by one input; given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    area: Arc<SpillArea>,
    bytes: u64,
}

impl Reservation {
    fn grow(&mut self, n: u64) -> Result<(), ServerError> {
        if self.area.try_reserve(n) {
            self.bytes += n;
            Ok(())
        } else {
            metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => "spill_area").increment(1);
            Err(ServerError::SpillFull {
                used: self.area.used(),
                max: self.area.max_bytes,
            })
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.area.release(self.bytes);
    }
}

/// An input's bytes, complete.
#[derive(Debug)]
pub(crate) enum Held {
    Memory(Arc<[u8]>),
    Spilled {
        file: std::fs::File,
        len: u64,
        _reservation: Reservation,
    },
    /// A durable async job's input file (see `crate::durable`); it stays
    /// on disk until the job's outcome is stored.
    Stored {
        path: std::path::PathBuf,
        len: u64,
    },
}

impl Held {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Held::Memory(b) => b.len() as u64,
            Held::Spilled { len, .. } | Held::Stored { len, .. } => *len,
        }
    }

    /// The bytes in memory: spilled inputs are read back into one buffer
    /// of their exact size, and their file disappears.
    pub(crate) async fn load(self) -> Result<Arc<[u8]>, ServerError> {
        match self {
            Held::Memory(b) => Ok(b),
            Held::Spilled {
                mut file,
                len,
                _reservation,
            } => tokio::task::spawn_blocking(move || {
                let len = usize::try_from(len)
                    .map_err(|_| ServerError::Internal("spilled input too large".into()))?;
                let buf = Arc::<[u8]>::new_zeroed_slice(len);
                // SAFETY: all-zero bytes are valid `u8`s.
                let mut buf = unsafe { buf.assume_init() };
                let dst = Arc::get_mut(&mut buf).expect("a fresh Arc is unique");
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| file.read_exact(dst))
                    .map_err(|e| {
                        ServerError::Internal(format!("reading back a spilled input: {e}"))
                    })?;
                drop(file);
                drop(_reservation);
                Ok(buf)
            })
            .await
            .map_err(|e| ServerError::Internal(format!("spill reader task: {e}")))?,
            Held::Stored { path, len } => {
                let bytes = tokio::fs::read(&path).await.map_err(|e| {
                    ServerError::Internal(format!("reading back a stored job input: {e}"))
                })?;
                if bytes.len() as u64 != len {
                    return Err(ServerError::Internal(
                        "a stored job input changed size on disk".into(),
                    ));
                }
                Ok(Arc::from(bytes))
            }
        }
    }

    /// The bytes, for writing them down: shared memory or a second handle
    /// on the spilled file.
    pub(crate) fn source(&self) -> std::io::Result<crate::durable::Source> {
        use crate::durable::Source;
        Ok(match self {
            Held::Memory(b) => Source::Bytes(Arc::clone(b)),
            Held::Spilled { file, .. } => Source::File(file.try_clone()?),
            Held::Stored { path, .. } => Source::File(std::fs::File::open(path)?),
        })
    }
}

/// The bytes of one input as they arrive.
pub(crate) struct InputBuffer {
    area: Arc<SpillArea>,
    threshold: u64,
    mem: Vec<u8>,
    file: Option<(tokio::io::BufWriter<tokio::fs::File>, Reservation)>,
    len: u64,
}

impl InputBuffer {
    pub(crate) fn new(area: Arc<SpillArea>, threshold: u64) -> Self {
        InputBuffer {
            area,
            threshold,
            mem: Vec::new(),
            file: None,
            len: 0,
        }
    }

    /// Bytes received so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) async fn push(&mut self, chunk: &[u8]) -> Result<(), ServerError> {
        self.len += chunk.len() as u64;
        if self.file.is_none() && self.len > self.threshold {
            let mut reservation = Reservation {
                area: Arc::clone(&self.area),
                bytes: 0,
            };
            reservation.grow(self.mem.len() as u64)?;
            self.area.ensure_dir()?;
            let dir = self.area.dir.clone();
            let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
                .await
                .map_err(|e| ServerError::Internal(format!("spill file task: {e}")))?
                .map_err(|e| ServerError::Internal(format!("cannot create a spill file: {e}")))?;
            let mut w = tokio::io::BufWriter::with_capacity(
                SPILL_WRITE_BUFFER,
                tokio::fs::File::from_std(file),
            );
            w.write_all(&self.mem).await.map_err(write_error)?;
            self.mem = Vec::new();
            self.file = Some((w, reservation));
            metrics::counter!(m::SPILLED_INPUTS_TOTAL).increment(1);
        }
        match &mut self.file {
            Some((w, reservation)) => {
                reservation.grow(chunk.len() as u64)?;
                w.write_all(chunk).await.map_err(write_error)
            }
            None => {
                self.mem.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    pub(crate) async fn finish(self) -> Result<Held, ServerError> {
        match self.file {
            None => Ok(Held::Memory(Arc::from(self.mem))),
            Some((mut w, reservation)) => {
                w.flush().await.map_err(write_error)?;
                let file = w.into_inner().into_std().await;
                Ok(Held::Spilled {
                    file,
                    len: self.len,
                    _reservation: reservation,
                })
            }
        }
    }
}

fn write_error(e: std::io::Error) -> ServerError {
    ServerError::Internal(format!("writing a spill file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_inputs_stay_in_memory_large_ones_spill_and_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let area = Arc::new(SpillArea::new(dir.path().join("spill"), 1 << 20));
        let mut small = InputBuffer::new(Arc::clone(&area), 100);
        small.push(b"hello").await.unwrap();
        let held = small.finish().await.unwrap();
        assert!(matches!(held, Held::Memory(_)));
        assert_eq!(&held.load().await.unwrap()[..], b"hello");

        let mut big = InputBuffer::new(Arc::clone(&area), 100);
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for c in data.chunks(64) {
            big.push(c).await.unwrap();
        }
        let held = big.finish().await.unwrap();
        assert!(matches!(held, Held::Spilled { .. }));
        assert_eq!(area.used(), 5000);
        // Unnamed file: nothing to see in the directory.
        assert_eq!(std::fs::read_dir(area.dir()).unwrap().count(), 0);
        let back = held.load().await.unwrap();
        assert_eq!(&back[..], &data[..]);
        assert_eq!(area.used(), 0, "budget given back after loading");
    }

    #[tokio::test]
    async fn loads_wait_for_their_share_of_memory() {
        let b = LoadBudget::new(10 * 1024);
        let a = b.acquire(8 * 1024).await.unwrap();
        // 4 KiB more does not fit until the first is given back.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), b.acquire(4 * 1024))
                .await
                .is_err()
        );
        drop(a);
        let c = b.acquire(4 * 1024).await.unwrap();
        drop(c);
        // Larger than the whole budget: waits for all of it, not forever.
        let all = tokio::time::timeout(std::time::Duration::from_millis(50), b.acquire(1 << 30))
            .await
            .expect("a load larger than the budget gets all of it")
            .unwrap();
        drop(all);
    }

    #[tokio::test]
    async fn the_budget_refuses_at_the_first_byte_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let area = Arc::new(SpillArea::new(dir.path().to_path_buf(), 1000));
        let mut a = InputBuffer::new(Arc::clone(&area), 10);
        a.push(&[0u8; 900]).await.unwrap();
        let mut b = InputBuffer::new(Arc::clone(&area), 10);
        let e = b.push(&[0u8; 200]).await.unwrap_err();
        assert!(matches!(e, ServerError::SpillFull { .. }), "{e}");
        drop(a);
        drop(b);
        assert_eq!(area.used(), 0);
    }
}
