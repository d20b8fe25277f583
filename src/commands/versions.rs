//! Reading versions for the commands: the listing with its marks and probable intermediate
//! snapshots, one version's body, and parsing with one diagnosis for every broken body.

use std::collections::BTreeMap;

use indicatif::ProgressBar;

use crate::commands::Context;
use crate::error::Error;
use crate::model::mapping::{self, MappingOptions};
use crate::model::selector::{self, Listing, ObjectVersion, Selector, VersionId};
use crate::model::state::{State, StateError, StateSummary};
use crate::store::cache::{Cached, CachedMarks, SummaryCache};
use crate::store::s3::Sibling;
use crate::store::summaries::{Depth, summaries};
use crate::workdir;

/// How long a read-only command trusts that versioning was enabled: the listing's own
/// version ids show it was at the last write, this bounds how late a suspension since is seen.
const VERSIONING_TTL_SECONDS: i64 = 15 * 60;

/// What a listing may take from the local cache instead of asking S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Read-only commands: the marks index when the listing shows its ETag unchanged, and
    /// versioning for `VERSIONING_TTL_SECONDS` after S3 last said it was enabled.
    Cached,
    /// Commands that write: versioning and marks are asked of S3 (alongside the listing, so
    /// no later), summaries still come from the cache.
    Live,
    /// `--no-cache`: nothing from the cache, nothing written to it.
    NoCache,
}

impl Context {
    /// The listing with its marks, after making sure the bucket keeps versions at all.
    /// Probable intermediate snapshots are worked out over the versions the `selectors` need
    /// them for (`selector::window`), from the summary cache or S3.
    pub(crate) async fn listing(
        &self,
        selectors: &[&Selector],
        freshness: Freshness,
    ) -> Result<Listing, Error> {
        let mut cache = self.store.summary_cache(freshness != Freshness::NoCache);
        let listing = self.listing_with(selectors, freshness, &mut cache).await;
        if let Err(e) = cache.save() {
            tracing::warn!("could not write the summary cache: {e}");
        }
        listing
    }

    /// `listing`, with the summary cache the caller goes on using (and saves).
    ///
    /// Requests: the listing, plus (in parallel with it) GetBucketVersioning unless the cache
    /// vouches for it, and the marks index unless a cached copy exists; a cached copy is used
    /// when the listing shows the index's ETag unchanged, and read again (after the listing)
    /// otherwise. A warm read-only listing is one request.
    pub(crate) async fn listing_with(
        &self,
        selectors: &[&Selector],
        freshness: Freshness,
        cache: &mut SummaryCache,
    ) -> Result<Listing, Error> {
        let objects = &self.store.objects;
        let marks = &self.store.marks;
        let now = jiff::Timestamp::now().as_second();
        let from_cache = freshness == Freshness::Cached;
        let vouched = from_cache && cache.versioning_seen_within(now, VERSIONING_TTL_SECONDS);
        let cached_marks = cache.marks().filter(|_| from_cache).cloned();
        let versioning = async {
            if vouched {
                return Ok(false);
            }
            objects.check_versioning().await.map(|()| true)
        };
        let early_marks = async {
            if cached_marks.is_some() {
                return Ok(None);
            }
            marks.load_tagged().await.map(Some)
        };
        let index_key = marks.index_key();
        let (checked, (versions, sibling), early) =
            tokio::try_join!(versioning, objects.list_versions(&index_key), early_marks)?;
        if checked {
            cache.set_versioning_enabled(now);
        } else if versions
            .first()
            .is_some_and(|v| v.version_id.as_str() == "null")
        {
            // The newest write was made without versioning: S3 says exactly how things are.
            objects.check_versioning().await?;
        }
        let index = match (early, cached_marks) {
            (Some((index, etag)), _) => {
                cache.set_marks(CachedMarks {
                    etag,
                    index: index.clone(),
                });
                index
            }
            (None, Some(cached)) if unchanged(&sibling, cached.etag.as_deref()) => cached.index,
            (None, cached) => {
                tracing::info!(
                    "the marks index changed since it was cached ({:?} then, {sibling:?} now): reading it",
                    cached.map(|c| c.etag)
                );
                let (index, etag) = marks.load_tagged().await?;
                cache.set_marks(CachedMarks {
                    etag,
                    index: index.clone(),
                });
                index
            }
        };
        let mut listing = Listing {
            versions,
            marks: index.by_version(),
            intermediate: std::collections::BTreeSet::default(),
        };
        let range = selector::window(selectors, &listing.versions, self.now);
        if !range.is_empty() {
            let window: Vec<ObjectVersion> = listing.versions[range].to_vec();
            let infos = self
                .summarize(&window, cache, &ProgressBar::hidden(), Depth::Head)
                .await?;
            listing.intermediate = selector::intermediate(&window, &summary_map(&window, &infos));
        }
        Ok(listing)
    }

    /// Resolves `selector` with the run's clock. A point-in-time selector that passed over
    /// probable intermediate snapshots says so on stderr (`diff` lists them in its view).
    pub(crate) fn resolve<'a>(
        &self,
        selector: &Selector,
        listing: &'a Listing,
    ) -> Result<&'a ObjectVersion, Error> {
        let target = selector.resolve(listing, &self.location(), self.now)?;
        if let Selector::At(moment) = selector {
            let skipped =
                selector.passed_over(listing, &target.version_id, &target.version_id, self.now);
            if !skipped.is_empty() {
                let ids: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                self.printer.note(&format!(
                    "{selector}: {} was current at {}; passed over {}: probably intermediate snapshots of an apply still running then, not its result",
                    target.version_id,
                    moment.at(self.now),
                    ids.join(", ")
                ));
            }
        }
        Ok(target)
    }

    /// Summaries of `versions` read to `depth`, and whole for the few versions whose
    /// resource count the intermediate-snapshot rule needs (`selector::counts_needed`).
    pub(crate) async fn summarize(
        &self,
        versions: &[ObjectVersion],
        cache: &mut SummaryCache,
        progress: &ProgressBar,
        depth: Depth,
    ) -> Result<Vec<Option<Cached>>, Error> {
        let objects = &self.store.objects;
        let infos = summaries(objects, versions, cache, progress, depth).await?;
        let needed = selector::counts_needed(versions, &summary_map(versions, &infos));
        if needed.is_empty() {
            return Ok(infos);
        }
        let count: Vec<ObjectVersion> = versions
            .iter()
            .filter(|v| needed.contains(&v.version_id))
            .cloned()
            .collect();
        summaries(objects, &count, cache, &ProgressBar::hidden(), Depth::Whole).await?;
        Ok(summaries(objects, versions, cache, &ProgressBar::hidden(), depth).await?)
    }

    /// The configuration's slot variable, for highlighting only: any problem just means no hint.
    pub(crate) fn slot_hint(&self) -> Option<String> {
        let config = workdir::configuration(&self.settings.workdir).ok()?;
        mapping::slot_variable(&config, &MappingOptions::default())
            .ok()
            .flatten()
    }

    /// A version's body as text.
    pub(crate) async fn read_text(&self, version: &ObjectVersion) -> Result<String, Error> {
        if version.delete_marker {
            return Err(Error::DeleteMarker {
                version: version.version_id.clone(),
            });
        }
        let bytes = self.store.objects.read(&version.version_id).await?;
        String::from_utf8(bytes).map_err(|_| self.state_error(&version.version_id, not_utf8()))
    }

    /// Parses a whole state. When that fails, the streaming scanner gives the diagnosis, so
    /// every command refuses the same broken bodies with the same words (truncated, not JSON,
    /// another format version, outputs too large, encrypted).
    pub(crate) fn parse<'a>(&self, version: &VersionId, body: &'a str) -> Result<State<'a>, Error> {
        State::parse(body).map_err(|e| {
            let diagnosis = crate::model::state::summarize(body.as_bytes())
                .err()
                .unwrap_or(e);
            self.state_error(version, diagnosis)
        })
    }

    /// Parses two states at once, one per core: for large states the parse is most of a diff.
    pub(crate) fn parse_both<'a, 'b>(
        &self,
        a: (&VersionId, &'a str),
        b: (&VersionId, &'b str),
    ) -> (Result<State<'a>, Error>, Result<State<'b>, Error>) {
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let first = scope.spawn(|| self.parse(a.0, a.1));
                let second = self.parse(b.0, b.1);
                (
                    first
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    second,
                )
            })
        })
    }

    fn state_error(&self, version: &VersionId, source: StateError) -> Error {
        Error::State {
            version: version.clone(),
            location: self.location(),
            source,
        }
    }
}

fn not_utf8() -> StateError {
    StateError::NotJson {
        detail: "the body is not UTF-8 text".into(),
    }
}

/// Whether the marks index the listing showed is the one cached (`etag`; None: no index).
fn unchanged(sibling: &Sibling, etag: Option<&str>) -> bool {
    match sibling {
        Sibling::Latest { etag: now } => now.is_some() && now.as_deref() == etag,
        Sibling::Absent => etag.is_none(),
        Sibling::NotCovered => false,
    }
}

/// Version -> summary, for the versions whose body was readable.
pub(crate) fn summary_map(
    versions: &[ObjectVersion],
    infos: &[Option<Cached>],
) -> BTreeMap<VersionId, StateSummary> {
    versions
        .iter()
        .zip(infos)
        .filter_map(|(v, info)| match info {
            Some(Cached::Summary(s)) => Some((v.version_id.clone(), s.clone())),
            _ => None,
        })
        .collect()
}
