//! On-disk cache of version summaries. Versions are immutable, so a summary read once is good
//! forever; the next `list` fetches only versions it has not seen. One file per state object
//! under the XDG cache directory (directories 0700, files 0600). Summaries hold no sensitive
//! value (see `state::OutputSummary`), so neither does the cache.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::model::selector::VersionId;
use crate::model::state::StateSummary;
use crate::store::fsx;

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
                entries: BTreeMap::new(),
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
