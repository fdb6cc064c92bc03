//! Bulk re-screening of past hires: durable batches of applicants' stored
//! files (headshots, interview recordings, resumes).
//!
//! * A **batch** and its **items** are Candor's own rows ([`store`]); an
//!   item's id is derived from (batch, applicant, file), so a resubmitted
//!   manifest never enqueues twice, and its outcome is upserted on its row,
//!   so a task redelivered after a crash leaves exactly one result.
//! * The queue is **apalis** 1.x: its SQLite storage (a file under
//!   `CANDOR_HOME`) for one machine, its PostgreSQL storage for many worker
//!   processes on many machines against one database. An item's row and
//!   its task are written in one transaction.
//! * Workers ([`worker`]) call [`candor_detectors::Analyzer::analyze`] at
//!   `bulk` priority and store what comes back, with the input's sha256
//!   and a fingerprint of the models that scored it; a re-run after a model
//!   update re-scores only what changed.
//! * Reports ([`report`]): items as CSV or JSONL, one case per applicant
//!   ranked by risk, and impact ratios per group column (four-fifths rule).
//! * Completion webhooks ([`webhook`]) are signed with HMAC-SHA256 and
//!   retried with backoff as their own tasks.

pub mod error;
pub mod manifest;
pub mod report;
pub mod store;
#[doc(hidden)]
pub mod testpg;
pub mod webhook;
pub mod worker;

pub use error::{BulkError, Result};
pub use manifest::{ManifestItem, ManifestLimits, ManifestReader};
pub use report::{BatchReport, Format};
pub use store::{
    BatchRow, BatchStatus, ItemRow, ItemState, JobRecord, NewBatch, ReviewRecord, Store,
    SubmitCounts,
};
pub use webhook::WebhookConfig;
pub use worker::{BulkWorker, Enroller, Progress, WorkerConfig};

/// Reads `reader` to the end in chunks of [`store::SUBMIT_CHUNK`] items,
/// adding each chunk to the batch (one transaction per chunk) and calling
/// `on_chunk` with the totals so far. Refuses a batch that grows past
/// `max_items` (the chunks already added stay; re-submitting resumes).
pub async fn submit(
    store: &Store,
    new: &NewBatch,
    reader: ManifestReader,
    max_items: u64,
    mut on_chunk: impl FnMut(&SubmitCounts),
) -> Result<(BatchRow, SubmitCounts)> {
    if let Some(url) = &new.webhook_url {
        webhook::check_url(url)?;
    }
    let batch = store.begin_batch(new).await?;
    let mut total = SubmitCounts::default();
    let mut reader = Some(reader);
    loop {
        let mut r = reader
            .take()
            .ok_or_else(|| BulkError::engine("manifest reader lost"))?;
        let (r, chunk) = tokio::task::spawn_blocking(move || {
            let c = r.next_chunk(store::SUBMIT_CHUNK);
            (r, c)
        })
        .await
        .map_err(BulkError::engine)?;
        reader = Some(r);
        let chunk = chunk?;
        if chunk.is_empty() {
            break;
        }
        if total.read + chunk.len() as u64 > max_items {
            return Err(BulkError::Limit {
                code: "max_batch_items",
                message: format!(
                    "the manifest holds more than {max_items} items (the batch limit); \
                     the first {} were submitted",
                    total.read
                ),
            });
        }
        let c = store.add_items(&batch, &chunk).await?;
        total.read += c.read;
        total.enqueued += c.enqueued;
        total.existing += c.existing;
        on_chunk(&total);
    }
    // A resubmit of a finished batch adds nothing: it may be complete now.
    store.queue_completion(&batch.batch_id).await?;
    Ok((batch, total))
}
