//! The journal of a rollback in progress: what it is doing, the snapshot it can restore and the
//! lock it holds, written before each step so that a rollback killed at any point can be
//! finished by `tfrollback recover`. Kept next to the state at `<key>.tfrollback/journal.json`
//! (same encryption as the state) and in the working directory's `.tfrollback/` (0600).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsx;
use crate::lock::HeldLock;
use crate::s3::{Condition, S3Error, StateStore};

/// The directory of local files: snapshots, plans, the local journal.
pub const LOCAL_DIR: &str = ".tfrollback";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub status: StepStatus,
    pub started_at: String,
    #[serde(default)]
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub version_id: String,
    pub serial: u64,
}

/// The state as it was found, which a failed rollback restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version_id: String,
    pub serial: u64,
    pub lineage: String,
    pub etag: String,
    /// The local copy, relative to the working directory.
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub operation_id: String,
    pub command: String,
    pub who: String,
    pub started_at: String,
    pub target: VersionRef,
    #[serde(default)]
    pub snapshot: Option<Snapshot>,
    #[serde(default)]
    pub lock: Option<HeldLock>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    /// The terraform child running the apply, so `recover` can wait for it.
    #[serde(default)]
    pub terraform_pid: Option<u32>,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub finished: bool,
}

impl Journal {
    /// A journal for an outcome reached before any operation began (nothing was locked or
    /// written), so reports of such outcomes share the shape of the others.
    pub fn detached(command: &str) -> Journal {
        Journal {
            operation_id: uuid::Uuid::new_v4().to_string(),
            command: command.to_string(),
            who: crate::lock::who(),
            started_at: jiff::Timestamp::now().to_string(),
            target: VersionRef {
                version_id: String::new(),
                serial: 0,
            },
            snapshot: None,
            lock: None,
            steps: vec![],
            terraform_pid: None,
            host: String::new(),
            finished: true,
        }
    }

    /// True once the apply step has begun: from then on the state may have changed.
    pub fn apply_started(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.name == "apply" || s.name == "restore")
    }

    pub fn last_step(&self) -> Option<&StepRecord> {
        self.steps.last()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("cannot write {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("the journal at {place} is not readable: {detail}")]
    Corrupt { place: String, detail: String },
}

/// Where journals are kept for one state.
#[derive(Clone)]
pub struct JournalStore {
    store: StateStore,
    local: PathBuf,
}

impl JournalStore {
    pub fn new(store: StateStore, workdir: &Path) -> JournalStore {
        JournalStore {
            store,
            local: workdir.join(LOCAL_DIR),
        }
    }

    pub fn s3_key(&self) -> String {
        format!("{}.tfrollback/journal.json", self.store.key())
    }

    fn local_file(&self) -> PathBuf {
        self.local.join("journal.json")
    }

    /// Writes the local copy only (before the lock is taken, when writing next to the state
    /// could clobber another operation's journal).
    pub fn write_local(&self, journal: &Journal) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec_pretty(journal).unwrap_or_default();
        let path = self.local_file();
        fsx::create_private_dir(&self.local)
            .and_then(|_| fsx::write_atomic(&path, &bytes, 0o600))
            .map_err(|source| JournalError::Local {
                path: path.display().to_string(),
                source,
            })
    }

    /// Writes both copies; S3 first, since it survives the machine.
    pub async fn write(&self, journal: &Journal) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec_pretty(journal).unwrap_or_default();
        self.store
            .put(&self.s3_key(), bytes, &Condition::None)
            .await?;
        self.write_local(journal)
    }

    /// The unfinished journal, from S3 or else the local copy.
    pub async fn load(&self) -> Result<Option<Journal>, JournalError> {
        if let Some(fetched) = self.store.get(&self.s3_key()).await? {
            let journal: Journal =
                serde_json::from_slice(&fetched.body).map_err(|e| JournalError::Corrupt {
                    place: format!("s3://{}/{}", self.store.bucket(), self.s3_key()),
                    detail: e.to_string(),
                })?;
            if !journal.finished {
                return Ok(Some(journal));
            }
        }
        match std::fs::read(self.local_file()) {
            Ok(bytes) => {
                let journal: Journal =
                    serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                        place: self.local_file().display().to_string(),
                        detail: e.to_string(),
                    })?;
                Ok((!journal.finished).then_some(journal))
            }
            Err(_) => Ok(None),
        }
    }

    /// Marks the operation finished in both places (the S3 object goes away: history keeps the
    /// record of what happened).
    pub async fn finish(&self, journal: &mut Journal) -> Result<(), JournalError> {
        journal.finished = true;
        self.write_local(journal)?;
        self.store.delete(&self.s3_key()).await?;
        Ok(())
    }
}
