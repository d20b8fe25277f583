//! Summaries of many versions at once: from the cache when known, else read from S3 through
//! the state scanner, a bounded number at a time, never holding a whole body.
//!
//! A summary needs only the head of a body (terraform writes the small fields and the
//! outputs before the resources) and its tail (`check_results`, and proof that the document
//! ends): two ranged reads, whatever the state's size. Only counting the resources needs
//! every byte, streamed.

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::ProgressBar;

use crate::model::selector::{ObjectVersion, VersionId};
use crate::model::state::{StateScanner, read_tail};
use crate::store::cache::{Cached, SummaryCache};
use crate::store::s3::{S3Error, Span, StateStore, retry_body};

/// How much of a body the first head read asks for: the outputs of most states fit, and a
/// 64 KiB answer costs about as much as an empty one on any link.
const HEAD: u64 = 64 * 1024;
/// How much of a body the tail read asks for: `check_results` of a few dozen checks.
const TAIL: u64 = 16 * 1024;

/// How much of each body a summary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// The head and the tail: no resource count unless the body is small.
    Head,
    /// Every byte, streamed: the resources are counted.
    Whole,
}

impl Depth {
    /// How many versions are read at once. Ranged reads are small, so many can be in flight
    /// to hide the link's latency; whole bodies are fewer to keep memory flat and not to
    /// flood a small S3-compatible server.
    fn concurrency(self) -> usize {
        match self {
            Depth::Head => 64,
            Depth::Whole => 16,
        }
    }

    /// Whether a cached entry answers this depth: a head-only summary does not answer a
    /// request for counts.
    fn answered_by(self, entry: &Cached) -> bool {
        match (self, entry) {
            (Depth::Whole, Cached::Summary(s)) => s.resources.is_some(),
            _ => true,
        }
    }
}

/// The summary of each version (None for delete markers), in the order given.
pub(crate) async fn summaries(
    store: &StateStore,
    versions: &[ObjectVersion],
    cache: &mut SummaryCache,
    progress: &ProgressBar,
    depth: Depth,
) -> Result<Vec<Option<Cached>>, S3Error> {
    let missing: Vec<ObjectVersion> = versions
        .iter()
        .filter(|v| {
            !v.delete_marker
                && !cache
                    .get(&v.version_id)
                    .is_some_and(|e| depth.answered_by(e))
        })
        .cloned()
        .collect();
    let states = versions.iter().filter(|v| !v.delete_marker).count();
    tracing::info!(
        "{} of {states} version(s) known from the cache, {} to read from S3 ({depth:?})",
        states - missing.len(),
        missing.len()
    );
    progress.set_length(missing.len() as u64);
    // One task per version, so the scanning spreads over every core (a stream of futures
    // would be polled by one task on one core).
    let fetched: Vec<(VersionId, Cached)> = stream::iter(missing)
        .map(|v| {
            let store = store.clone();
            tokio::spawn(async move {
                let entry = match depth {
                    Depth::Head => summarize_head(&store, &v.version_id, v.size).await,
                    Depth::Whole => summarize(&store, &v.version_id).await,
                };
                entry.map(|entry| (v.version_id, entry))
            })
        })
        .buffer_unordered(depth.concurrency())
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

/// Summarises one version of `size` bytes from its head and tail. The head read grows (each
/// time by what was read so far) while the outputs go on; a body whose tail does not prove
/// its end, or that is small anyway, is streamed whole, so every broken body gets the same
/// diagnosis as a whole read gives it.
pub(crate) async fn summarize_head(
    store: &StateStore,
    id: &VersionId,
    size: u64,
) -> Result<Cached, S3Error> {
    if size <= HEAD + TAIL {
        return summarize(store, id).await;
    }
    let (head, tail) = tokio::try_join!(
        store.read_span(id, Span::Between(0, HEAD)),
        store.read_span(id, Span::Last(TAIL))
    )?;
    let mut scanner = StateScanner::new();
    if let Err(e) = scanner.feed(&head) {
        return Ok(Cached::Unreadable(e.to_string()));
    }
    let mut read = head.len() as u64;
    while !scanner.head_done() && read < size {
        let end = size.min(read + read.max(HEAD));
        let more = store.read_span(id, Span::Between(read, end)).await?;
        if more.is_empty() {
            break;
        }
        read += more.len() as u64;
        if let Err(e) = scanner.feed(&more) {
            return Ok(Cached::Unreadable(e.to_string()));
        }
    }
    if read >= size {
        // The outputs took the whole body: this was a whole read after all.
        return Ok(finished(scanner.finish()));
    }
    match read_tail(&tail) {
        Some(checks) => Ok(finished(scanner.finish_head(checks))),
        // Refused from the head alone (encrypted, another format): the tail changes nothing.
        None if scanner.refused() => Ok(finished(scanner.finish_head(false))),
        None => {
            tracing::info!("the end of version {id} is not terraform's: reading it whole");
            summarize(store, id).await
        }
    }
}

fn finished(
    result: Result<crate::model::state::StateSummary, crate::model::state::StateError>,
) -> Cached {
    match result {
        Ok(summary) => Cached::Summary(summary),
        Err(e) => Cached::Unreadable(e.to_string()),
    }
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
    Ok(finished(scanner.finish()))
}
