//! Reading versions for the commands: the listing with its marks and probable intermediate
//! snapshots, one version's body, and parsing with one diagnosis for every broken body.

use std::collections::BTreeMap;

use indicatif::ProgressBar;

use crate::commands::Context;
use crate::error::Error;
use crate::model::mapping::{self, MappingOptions};
use crate::model::selector::{self, Listing, ObjectVersion, VersionId};
use crate::model::state::{State, StateError, StateSummary};
use crate::store::cache::Cached;
use crate::store::summaries::summaries;
use crate::workdir;

impl Context {
    /// The listing with its marks, after making sure the bucket keeps versions at all.
    /// Probable intermediate snapshots are worked out over the newest `depth` versions, from
    /// the summary cache or S3.
    pub(crate) async fn listing(&self, depth: usize) -> Result<Listing, Error> {
        let objects = &self.store.objects;
        let ((), versions, index) = tokio::try_join!(
            objects.check_versioning(),
            objects.list_versions(),
            self.store.marks.load()
        )?;
        let mut listing = Listing {
            versions,
            marks: index.by_version(),
            intermediate: std::collections::BTreeSet::default(),
        };
        if depth > 0 {
            let window: Vec<ObjectVersion> = listing.versions.iter().take(depth).cloned().collect();
            let mut cache = self.store.summary_cache(true);
            let infos = summaries(objects, &window, &mut cache, &ProgressBar::hidden()).await?;
            if let Err(e) = cache.save() {
                tracing::warn!("could not write the summary cache: {e}");
            }
            listing.intermediate = selector::intermediate(&window, &summary_map(&window, &infos));
        }
        Ok(listing)
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
