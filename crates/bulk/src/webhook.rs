//! Completion webhooks: a batch that finishes queues one task on the
//! webhook queue; a worker POSTs the batch's status to the batch's
//! `webhook_url`, signed with HMAC-SHA256, and on failure queues the next
//! attempt as a new task delayed by an exponential backoff (so a retry
//! survives restarts like any task).
//!
//! Signature: `X-Candor-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! with `X-Candor-Timestamp: <unix seconds>`; a receiver recomputes it and
//! rejects old timestamps. Only `http://` URLs are delivered (put a TLS
//! terminating proxy in front of an `https` receiver).

use std::time::Duration;

use apalis::prelude::TaskBuilder;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{BulkError, Result};
use crate::store::{Db, Store, WEBHOOK_QUEUE};

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// HMAC key; without it no webhook is sent (an unsigned one could be forged).
    pub secret: Option<String>,
    /// Deliveries tried before giving up.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (capped at an hour).
    pub backoff: Duration,
    /// Time for one delivery (connect, send, answer).
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            max_attempts: 8,
            backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The queue payload of a webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookTask {
    pub batch_id: String,
    pub generation: i64,
    pub attempt: u32,
}

/// Checks a webhook URL at submit time.
pub fn check_url(url: &str) -> Result<()> {
    parse_http_url(url).map(|_| ())
}

/// `(host:port, path)` of an `http://` URL.
fn parse_http_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        BulkError::BadRequest(format!(
            "webhook URL `{url}` is not http:// (put a TLS-terminating proxy in front of https receivers)"
        ))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || url.len() > 2048 {
        return Err(BulkError::BadRequest(format!(
            "webhook URL `{url}` has no usable host"
        )));
    }
    let authority = if authority
        .rsplit(':')
        .next()
        .is_some_and(|p| p.parse::<u16>().is_ok())
        && authority.contains(':')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

/// `v1=<hex>` signature of `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl Store {
    /// Queues a webhook delivery (`attempt`, after `delay`).
    pub(crate) async fn push_webhook(&self, t: &WebhookTask, delay: Duration) -> Result<()> {
        let task = TaskBuilder::new(serde_json::to_vec(t).unwrap_or_default())
            .idempotency_key(format!("{}:{}:{}", t.batch_id, t.generation, t.attempt))
            .run_after(delay)
            .max_attempts(5)
            .build();
        match self.db() {
            Db::Sqlite(p) => {
                let mut c = p.acquire().await?;
                apalis_sqlite::queries::push_tasks(&mut *c, WEBHOOK_QUEUE, &[task])
                    .await
                    .map_err(BulkError::engine)
            }
            Db::Postgres(p) => {
                let mut c = p.acquire().await?;
                apalis_postgres::queries::push_tasks(&mut *c, WEBHOOK_QUEUE, vec![task])
                    .await
                    .map_err(BulkError::engine)
            }
        }
    }

    /// When `batch_id` just finished (first caller to see it), queues its
    /// completion webhook if it has one.
    pub async fn queue_completion(&self, batch_id: &str) -> Result<()> {
        if let Some(b) = self.complete_if_done(batch_id).await? {
            metrics::counter!("candor_bulk_batches_completed_total").increment(1);
            if b.webhook_url.is_some() {
                self.push_webhook(
                    &WebhookTask {
                        batch_id: b.batch_id,
                        generation: b.generation,
                        attempt: 0,
                    },
                    Duration::ZERO,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Delivers one webhook attempt; on failure queues the next one. `Ok`
/// names the outcome (metrics label).
pub(crate) async fn deliver(
    store: &Store,
    cfg: &WebhookConfig,
    task: &WebhookTask,
) -> Result<&'static str> {
    let batch = match store.batch(&task.batch_id, None).await {
        Ok(b) => b,
        Err(BulkError::NotFound(_)) => return Ok("unknown_batch"),
        Err(e) => return Err(e),
    };
    let Some(url) = batch.webhook_url.clone() else {
        return Ok("no_url");
    };
    let Some(secret) = cfg.secret.as_deref() else {
        tracing::warn!(batch = %task.batch_id, "batch has a webhook URL but the worker has no webhook secret; not sent");
        return Ok("no_secret");
    };
    let status = store.status(&task.batch_id, None).await?;
    let body = serde_json::to_vec(&serde_json::json!({
        "event": if batch.status == "cancelled" { "batch.cancelled" } else { "batch.completed" },
        "batch": status,
    }))
    .unwrap_or_default();
    let ts = crate::store::now_ms() / 1000;
    let sig = sign(secret, ts, &body);
    let delivery = format!("{}:{}:{}", task.batch_id, task.generation, task.attempt);
    match tokio::time::timeout(cfg.timeout, post(&url, &body, ts, &sig, &delivery)).await {
        Ok(Ok(code)) if (200..300).contains(&code) => Ok("delivered"),
        other => {
            let why = match other {
                Ok(Ok(code)) => format!("answered {code}"),
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {:?}", cfg.timeout),
            };
            let next = task.attempt + 1;
            if next >= cfg.max_attempts {
                tracing::warn!(batch = %task.batch_id, attempts = next, error = %why, "webhook given up");
                return Ok("given_up");
            }
            let delay = cfg
                .backoff
                .saturating_mul(1u32 << task.attempt.min(16))
                .min(Duration::from_secs(3600));
            tracing::info!(batch = %task.batch_id, attempt = next, delay_s = delay.as_secs(), error = %why, "webhook failed; retrying");
            store
                .push_webhook(
                    &WebhookTask {
                        attempt: next,
                        ..task.clone()
                    },
                    delay,
                )
                .await?;
            Ok("retry")
        }
    }
}

async fn post(
    url: &str,
    body: &[u8],
    ts: i64,
    sig: &str,
    delivery: &str,
) -> std::result::Result<u16, String> {
    let (authority, path) = parse_http_url(url).map_err(|e| e.to_string())?;
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("x-candor-event", "batch")
        .header("x-candor-delivery", delivery)
        .header("x-candor-timestamp", ts.to_string())
        .header("x-candor-signature", sig)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    // Drain (bounded) so the connection closes cleanly.
    let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await;
    driver.abort();
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_signatures() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:9000/hook?x=1").unwrap(),
            ("127.0.0.1:9000".into(), "/hook?x=1".into())
        );
        assert_eq!(
            parse_http_url("http://example.test").unwrap(),
            ("example.test:80".into(), "/".into())
        );
        assert!(check_url("https://example.test/").is_err());
        assert!(check_url("http://u:p@example.test/").is_err());
        let s = sign("Jefe", 1, b"x");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64);
        assert_eq!(s, sign("Jefe", 1, b"x"));
        assert_ne!(s, sign("Jefe", 2, b"x"));
        assert_ne!(s, sign("other", 1, b"x"));
    }
}
