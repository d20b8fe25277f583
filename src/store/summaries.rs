//! Summaries of many versions at once: from the cache when known, else streamed from S3
//! through the state scanner, a bounded number at a time, never holding a whole body.

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::ProgressBar;

use crate::model::selector::{ObjectVersion, VersionId};
use crate::model::state::StateScanner;
use crate::store::cache::{Cached, SummaryCache};
use crate::store::s3::{S3Error, StateStore, retry_body};

/// How many bodies are read at once: enough to hide request latency, few enough to keep
/// memory flat and not to flood a small S3-compatible server.
const CONCURRENCY: usize = 16;

/// The summary of each version (None for delete markers), in the order given.
pub(crate) async fn summaries(
    store: &StateStore,
    versions: &[ObjectVersion],
    cache: &mut SummaryCache,
    progress: &ProgressBar,
) -> Result<Vec<Option<Cached>>, S3Error> {
    let missing: Vec<VersionId> = versions
        .iter()
        .filter(|v| !v.delete_marker && cache.get(&v.version_id).is_none())
        .map(|v| v.version_id.clone())
        .collect();
    let states = versions.iter().filter(|v| !v.delete_marker).count();
    tracing::info!(
        "{} of {states} version(s) known from the cache, {} to read from S3",
        states - missing.len(),
        missing.len()
    );
    progress.set_length(missing.len() as u64);
    // One task per version, so the scanning spreads over every core (a stream of futures
    // would be polled by one task on one core).
    let fetched: Vec<(VersionId, Cached)> = stream::iter(missing)
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move { summarize(&store, &id).await.map(|entry| (id, entry)) })
        })
        .buffer_unordered(CONCURRENCY)
        .map(|joined| {
            progress.inc(1);
            joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        })
        .try_collect()
        .await?;
    progress.finish_and_clear();
    for (id, entry) in fetched {
        cache.insert(id, entry);
    }
    Ok(versions
        .iter()
        .map(|v| {
            (!v.delete_marker)
                .then(|| cache.get(&v.version_id).cloned())
                .flatten()
        })
        .collect())
}

/// Streams one version through the scanner. A body that is not a readable state is an entry
/// (`Unreadable`), not an error: one broken version must not hide the others. The SDK retries
/// requests but not a body that breaks off mid-stream, so that is retried here.
pub(crate) async fn summarize(store: &StateStore, id: &VersionId) -> Result<Cached, S3Error> {
    retry_body(id, || summarize_once(store, id)).await
}

async fn summarize_once(store: &StateStore, id: &VersionId) -> Result<Cached, S3Error> {
    let mut body = store.open(id).await?;
    let mut scanner = StateScanner::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| S3Error::Body {
            target: format!("{} version {id}", store.location()),
            detail: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        })?;
        if let Err(e) = scanner.feed(&chunk) {
            return Ok(Cached::Unreadable(e.to_string()));
        }
    }
    Ok(match scanner.finish() {
        Ok(summary) => Cached::Summary(summary),
        Err(e) => Cached::Unreadable(e.to_string()),
    })
}
