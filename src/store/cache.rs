//! On-disk cache of version summaries. Versions are immutable, so a summary read once is good
//! forever; the next `list` fetches only versions it has not seen. A summary read from the
//! head alone has no resource count (`resources: null`) and is never taken for a counted one;
//! a counted one replaces it. One file per state object under the XDG cache directory
//! (directories 0700, files 0600). Summaries hold no sensitive value (see
//! `state::OutputSummary`), so neither does the cache.
//!
//! It also keeps what saves a warm `list` its other requests: the marks index with the ETag
//! it had (the version listing shows the index's current ETag, so a change is seen), and when
//! versioning was last seen enabled.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::model::selector::VersionId;
use crate::model::state::StateSummary;
use crate::store::fsx;
use crate::store::marks::MarkIndex;

const FORMAT: u32 = 2;

/// What is known about one version: its summary, or why its body cannot be read (a broken
/// body stays broken, so that is worth remembering too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Cached {
    Summary(StateSummary),
    Unreadable(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    location: String,
    entries: BTreeMap<VersionId, Cached>,
    #[serde(default)]
    marks: Option<CachedMarks>,
    /// When GetBucketVersioning last answered Enabled (seconds since the epoch).
    #[serde(default)]
    versioning_enabled_at: Option<i64>,
}

/// The marks index as read, with the ETag it had then (None: there was no index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CachedMarks {
    pub(crate) etag: Option<String>,
    pub(crate) index: MarkIndex,
}

pub(crate) struct SummaryCache {
    path: Option<PathBuf>,
    file: CacheFile,
    dirty: bool,
}

impl SummaryCache {
    /// The cache for one state object at one endpoint. Never fails: a cache that cannot be
    /// read starts empty, and one that cannot be written is skipped with a warning.
    pub(crate) fn open(dir: Option<&Path>, endpoint: Option<&str>, location: &str) -> SummaryCache {
        let path = dir.map(|dir| {
            let id = Md5::digest(format!("{}\n{location}", endpoint.unwrap_or("aws")));
            dir.join("summaries").join(format!("{}.json", hex(&id)))
        });
        let file = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|f| f.format == FORMAT && f.location == location)
            .unwrap_or_else(|| CacheFile {
                format: FORMAT,
                location: location.to_string(),
                ..CacheFile::default()
            });
        SummaryCache {
            path,
            file,
            dirty: false,
        }
    }

    pub(crate) fn get(&self, id: &VersionId) -> Option<&Cached> {
        self.file.entries.get(id)
    }

    pub(crate) fn insert(&mut self, id: VersionId, entry: Cached) {
        self.file.entries.insert(id, entry);
        self.dirty = true;
    }

    pub(crate) fn marks(&self) -> Option<&CachedMarks> {
        self.file.marks.as_ref()
    }

    pub(crate) fn set_marks(&mut self, marks: CachedMarks) {
        if self.file.marks.as_ref() != Some(&marks) {
            self.file.marks = Some(marks);
            self.dirty = true;
        }
    }

    /// Whether versioning was seen enabled less than `ttl` seconds before `now`.
    pub(crate) fn versioning_seen_within(&self, now: i64, ttl: i64) -> bool {
        self.file
            .versioning_enabled_at
            .is_some_and(|at| (0..ttl).contains(&(now - at)))
    }

    pub(crate) fn set_versioning_enabled(&mut self, now: i64) {
        self.file.versioning_enabled_at = Some(now);
        self.dirty = true;
    }

    /// Writes the cache atomically (a temporary file renamed into place).
    pub(crate) fn save(&mut self) -> Result<(), std::io::Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        fsx::create_private_dir(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        fsx::make_private(tmp.path())?;
        serde_json::to_writer(&mut tmp, &self.file)?;
        tmp.flush()?;
        tmp.persist(path).map_err(|e| e.error)?;
        self.dirty = false;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
