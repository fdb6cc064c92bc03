//! Bounded-concurrency work over the rows of a labelled set.

use std::future::Future;
use std::time::Instant;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// Runs `f(index, item)` for every item with at most `concurrency` in
/// flight (their model requests share engine batches) and returns the
/// results in input order. Prints progress to stderr every `every` rows.
pub async fn map_bounded<T, R, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    label: &str,
    every: usize,
    f: F,
) -> anyhow::Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(usize, T) -> Fut,
    Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
{
    let total = items.len();
    let started = Instant::now();
    let mut out: Vec<Option<R>> = (0..total).map(|_| None).collect();
    let mut pending = items.into_iter().enumerate();
    let mut set = tokio::task::JoinSet::new();
    let mut done = 0;
    loop {
        while set.len() < concurrency.max(1) {
            let Some((i, item)) = pending.next() else {
                break;
            };
            let fut = f(i, item);
            set.spawn(async move { fut.await.map(|r| (i, r)) });
        }
        match set.join_next().await {
            None => break,
            Some(r) => {
                let (i, r) = r.with_context(|| format!("{label} task panicked"))??;
                out[i] = Some(r);
                done += 1;
                if every > 0 && done % every == 0 {
                    eprintln!(
                        "{label}: {done}/{total} in {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Reads and decodes one file of a labelled set (off the async threads).
pub async fn decode_file(
    path: &Path,
    limits: &candor_core::Limits,
) -> anyhow::Result<candor_media::Decoded> {
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let name = path.display().to_string();
    let limits = limits.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let hint = candor_media::Hint {
            filename: Some(&name),
            content_type: None,
        };
        candor_media::decode(
            Arc::from(bytes),
            &hint,
            &limits,
            &candor_media::DecodeOptions::default(),
        )
    })
    .await??;
    Ok(decoded)
}

/// Writes `rows` as JSON lines to `path` (creating its folder).
pub fn write_jsonl<T: serde::Serialize>(path: &Path, rows: &[T]) -> anyhow::Result<()> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
