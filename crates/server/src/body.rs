//! Reading a request body under limits: a running byte count refused at the
//! first byte past the limit, an idle timeout (no bytes for too long), the
//! request's deadline, and an optional charge against the job budget.

use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::error::ServerError;
use crate::jobs::JobTicket;
use crate::metrics as m;

/// A request body being read.
pub(crate) struct BodyReader {
    stream: BodyDataStream,
    idle: Duration,
    deadline: Instant,
    read: u64,
    limit: u64,
    ticket: Option<JobTicket>,
}

impl BodyReader {
    pub(crate) fn new(body: Body, limit: u64, idle: Duration, deadline: Instant) -> Self {
        BodyReader {
            stream: body.into_data_stream(),
            idle,
            deadline,
            read: 0,
            limit,
            ticket: None,
        }
    }

    /// Charge every byte read to an async job's budget.
    pub(crate) fn charge_to(&mut self, ticket: JobTicket) {
        self.ticket = Some(ticket);
    }

    /// The job ticket, once the body is read.
    pub(crate) fn take_ticket(&mut self) -> Option<JobTicket> {
        self.ticket.take()
    }

    /// The next chunk, `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ServerError> {
        let idle_at = Instant::now() + self.idle;
        let at = idle_at.min(self.deadline);
        let chunk = match tokio::time::timeout_at(at, self.stream.next()).await {
            Err(_) => {
                let (code, message) = if at == self.deadline {
                    (
                        "request_deadline",
                        format!(
                            "the request body was not complete by the request's deadline \
                             ({} bytes received)",
                            self.read
                        ),
                    )
                } else {
                    (
                        "body_idle_timeout",
                        format!(
                            "no bytes of the request body arrived for {:.1} s ({} bytes received)",
                            self.idle.as_secs_f64(),
                            self.read
                        ),
                    )
                };
                metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => code).increment(1);
                return Err(ServerError::BodyTimeout { code, message });
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(ServerError::bad_request(
                    "body",
                    format!("reading the request body failed: {e}"),
                ))
            }
            Ok(Some(Ok(b))) => b,
        };
        self.read += chunk.len() as u64;
        metrics::counter!(m::HTTP_BODY_BYTES_TOTAL).increment(chunk.len() as u64);
        if self.read > self.limit {
            metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => "body_limit").increment(1);
            return Err(ServerError::BodyTooLarge(format!(
                "the request body is larger than the server's body limit of {} bytes",
                self.limit
            )));
        }
        if let Some(t) = &mut self.ticket {
            t.charge(self.read)?;
        }
        Ok(Some(chunk))
    }

    /// The whole (remaining) body in memory; for small bodies only (the
    /// limit given at construction bounds it).
    pub(crate) async fn read_all(&mut self) -> Result<Vec<u8>, ServerError> {
        let mut out = Vec::new();
        while let Some(c) = self.next().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }
}
