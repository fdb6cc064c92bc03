//! Running a decoder under a wall-clock budget, with panics contained, and
//! small helpers for bounded reading.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{human_bytes, MediaError};

/// Stack size of decoder worker threads. Generous, because some parsers
/// recurse on nested structures.
const WORKER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// A point in time after which cooperative decoders give up.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
    budget_ms: u64,
}

impl Deadline {
    /// A deadline `budget_ms` from now.
    pub fn after_ms(budget_ms: u64) -> Self {
        Deadline {
            at: Instant::now().checked_add(Duration::from_millis(budget_ms)),
            budget_ms,
        }
    }

    /// A deadline that never passes.
    pub fn never() -> Self {
        Deadline {
            at: None,
            budget_ms: u64::MAX,
        }
    }

    /// Errors with `decode_timeout` once the deadline has passed.
    pub fn check(&self) -> Result<(), MediaError> {
        match self.at {
            Some(at) if Instant::now() >= at => Err(timeout_error(self.budget_ms)),
            _ => Ok(()),
        }
    }
}

fn timeout_error(budget_ms: u64) -> MediaError {
    MediaError::unprocessable(
        "decode_timeout",
        format!(
            "decoding took longer than the {:.1} s budget and was abandoned",
            budget_ms as f64 / 1000.0
        ),
    )
}

/// Runs `f` on a worker thread, converting a panic into an
/// `UnprocessableInput`/`corrupt` error and an overrun of `budget_ms` into
/// `UnprocessableInput`/`decode_timeout`.
///
/// A timed-out worker cannot be killed; it is detached and its result is
/// dropped when it finishes. Decoders also check a [`Deadline`] in their
/// loops, so they stop soon after the budget passes.
pub fn run_bounded<T, F>(budget_ms: u64, f: F) -> Result<T, MediaError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, MediaError> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("candor-media-decode".into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(f));
            // The receiver may be gone after a timeout; nothing to do then.
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Err(MediaError::Internal(format!(
            "could not start a decoder thread: {e}"
        )));
    }
    match rx.recv_timeout(Duration::from_millis(budget_ms)) {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(MediaError::corrupt(
            "the file is malformed: the decoder failed on its contents",
        )),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timeout_error(budget_ms)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(MediaError::corrupt(
            "the file is malformed: the decoder stopped unexpectedly",
        )),
    }
}

/// Reads all of `reader`, failing with `max_decompressed_bytes` once more
/// than `cap` bytes come out. Never buffers more than `cap + 1` bytes.
pub fn read_capped<R: Read>(reader: R, cap: u64, what: &str) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let mut limited = reader.take(cap.saturating_add(1));
    limited
        .read_to_end(&mut out)
        .map_err(|e| MediaError::corrupt(format!("{what} could not be decompressed: {e}")))?;
    if out.len() as u64 > cap {
        return Err(MediaError::too_large(
            "max_decompressed_bytes",
            format!(
                "{what} decompresses to more than {}, the limit",
                human_bytes(cap)
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{ProblemKind, ToProblem};

    #[test]
    fn panics_become_corrupt() {
        let r: Result<(), _> = run_bounded(5_000, || panic!("boom"));
        let e = r.unwrap_err();
        assert_eq!(e.problem_kind(), ProblemKind::UnprocessableInput);
        assert_eq!(e.code(), "corrupt");
    }

    #[test]
    fn overruns_time_out() {
        let r: Result<(), _> = run_bounded(50, || {
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        });
        assert_eq!(r.unwrap_err().code(), "decode_timeout");
    }

    #[test]
    fn results_pass_through() {
        assert_eq!(run_bounded(5_000, || Ok(7)).unwrap(), 7);
    }

    #[test]
    fn deadline_checks() {
        assert!(Deadline::never().check().is_ok());
        let d = Deadline::after_ms(0);
        assert_eq!(d.check().unwrap_err().code(), "decode_timeout");
    }

    #[test]
    fn capped_reader() {
        let data = [0u8; 100];
        assert_eq!(read_capped(&data[..], 100, "x").unwrap().len(), 100);
        let e = read_capped(&data[..], 99, "x").unwrap_err();
        assert_eq!(e.problem_kind(), ProblemKind::PayloadTooLarge);
    }
}
