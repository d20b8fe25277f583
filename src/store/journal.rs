//! The journal of a rollback in progress: what it is doing, the snapshot it can restore and the
//! lock it holds, written before each step so that a rollback killed at any point can be
//! finished by `tfrollback recover`. Kept next to the state at `<key>.tfrollback/journal.json`
//! (same encryption as the state) and in the working directory's `.tfrollback/` (0600).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::selector::{VersionId, VersionRef};
use crate::store::fsx;
use crate::store::lock::HeldLock;
use crate::store::s3::{Condition, S3Error, StateStore};

/// The directory of local files: snapshots, plans, the local journal.
pub(crate) const LOCAL_DIR: &str = ".tfrollback";

/// Creates `<workdir>/.tfrollback/<sub>` (0700) with a `.gitignore` that keeps all of it out of
/// the user's repository: snapshots and plans hold the whole state, secrets in clear.
pub(crate) fn local_dir(workdir: &Path, sub: &str) -> std::io::Result<PathBuf> {
    let top = workdir.join(LOCAL_DIR);
    fsx::create_private_dir(&top)?;
    let ignore = top.join(".gitignore");
    if !ignore.exists() {
        fsx::write_atomic(
            &ignore,
            b"# tfrollback's snapshots, plans and journals hold the state: never commit them.\n*\n",
            0o600,
        )?;
    }
    if sub.is_empty() {
        return Ok(top);
    }
    let dir = top.join(sub);
    fsx::create_private_dir(&dir)?;
    Ok(dir)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StepStatus {
    Running,
    Ok,
    Failed,
    Skipped,
}

/// The named steps of an operation, as the journal records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    Preflight,
    Lock,
    Snapshot,
    Tfvars,
    Plan,
    Confirm,
    Apply,
    Verify,
    /// Writing a state back: the snapshot after a failed `to`, or the target of `restore`.
    Restore,
    Recover,
    Unlock,
}

impl Step {
    /// The name the journal, reports and the failpoint seam use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Lock => "lock",
            Step::Snapshot => "snapshot",
            Step::Tfvars => "tfvars",
            Step::Plan => "plan",
            Step::Confirm => "confirm",
            Step::Apply => "apply",
            Step::Verify => "verify",
            Step::Restore => "restore",
            Step::Recover => "recover",
            Step::Unlock => "unlock",
        }
    }

    /// Whether the state may have changed once this step began.
    pub(crate) fn changes_state(self) -> bool {
        matches!(self, Step::Apply | Step::Restore)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StepRecord {
    pub(crate) name: Step,
    pub(crate) status: StepStatus,
    pub(crate) started_at: String,
    #[serde(default)]
    pub(crate) duration_ms: u64,
}

/// The state as it was found, which a failed rollback restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) version_id: VersionId,
    pub(crate) serial: u64,
    pub(crate) lineage: String,
    pub(crate) etag: String,
    /// The local copy, relative to the working directory.
    pub(crate) file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) operation_id: String,
    pub(crate) command: String,
    /// The state it works on (`s3://bucket/key`, workspace included): a journal is only ever
    /// recovered against that state.
    #[serde(default)]
    pub(crate) location: String,
    pub(crate) who: String,
    pub(crate) started_at: String,
    pub(crate) target: VersionRef,
    #[serde(default)]
    pub(crate) snapshot: Option<Snapshot>,
    #[serde(default)]
    pub(crate) lock: Option<HeldLock>,
    #[serde(default)]
    pub(crate) steps: Vec<StepRecord>,
    /// The terraform child running the apply, so `recover` can wait for it.
    #[serde(default)]
    pub(crate) terraform_pid: Option<u32>,
    #[serde(default)]
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) finished: bool,
}

impl Journal {
    /// True once the apply step has begun: from then on the state may have changed.
    pub(crate) fn apply_started(&self) -> bool {
        self.steps.iter().any(|s| s.name.changes_state())
    }

    /// Whether the operation's own terraform apply ran to its end: the state terraform wrote
    /// then describes the infrastructure as it is.
    pub(crate) fn apply_finished(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.name == Step::Apply && s.status == StepStatus::Ok)
    }

    /// Whether the operation had begun to put its snapshot back (after a failed apply).
    pub(crate) fn restoring(&self) -> bool {
        self.steps.iter().any(|s| s.name == Step::Restore)
    }

    /// Whether the rollback was verified before it was interrupted.
    pub(crate) fn verified(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.name == Step::Verify && s.status == StepStatus::Ok)
    }

    pub(crate) fn last_step(&self) -> Option<&StepRecord> {
        self.steps.last()
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("cannot write {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("the journal at {place} is not readable: {detail}")]
    Corrupt { place: String, detail: String },
    #[error("a write next to the state was cancelled before it finished")]
    Cancelled,
}

/// A running operation's sign of life, next to the state: written when it takes the lock and
/// every `interval` after, deleted when it ends. `recover`, from any machine, refuses to take
/// over while the last beat is younger than three intervals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Beat {
    pub(crate) operation_id: String,
    pub(crate) at: String,
    pub(crate) interval_ms: u64,
}

impl Beat {
    /// Whether the beat is recent enough that its operation must be taken to be alive.
    pub(crate) fn alive(&self, now: jiff::Timestamp) -> bool {
        let Ok(at) = self.at.parse::<jiff::Timestamp>() else {
            return false;
        };
        let age = now.as_millisecond() - at.as_millisecond();
        age < 3 * i64::try_from(self.interval_ms).unwrap_or(i64::MAX / 4)
    }

    /// Seconds since the beat (0 when the clocks disagree the other way).
    pub(crate) fn age_secs(&self, now: jiff::Timestamp) -> i64 {
        self.at
            .parse::<jiff::Timestamp>()
            .map(|at| ((now.as_millisecond() - at.as_millisecond()) / 1000).max(0))
            .unwrap_or(0)
    }
}

/// The task that keeps an operation's heartbeat fresh; it stops when dropped.
pub(crate) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

/// Whether the first beat of a heartbeat landed: awaited once.
pub(crate) struct FirstBeat(tokio::sync::oneshot::Receiver<Result<(), JournalError>>);

impl FirstBeat {
    pub(crate) async fn landed(self) -> Result<(), JournalError> {
        self.0.await.unwrap_or(Err(JournalError::Cancelled))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where journals are kept for one state.
#[derive(Clone)]
pub(crate) struct JournalStore {
    store: StateStore,
    workdir: PathBuf,
}

impl JournalStore {
    pub(crate) fn new(store: StateStore, workdir: &Path) -> JournalStore {
        JournalStore {
            store,
            workdir: workdir.to_path_buf(),
        }
    }

    pub(crate) fn s3_key(&self) -> String {
        format!("{}.tfrollback/journal.json", self.store.key())
    }

    fn local_file(&self) -> PathBuf {
        self.workdir.join(LOCAL_DIR).join("journal.json")
    }

    fn heartbeat_key(&self) -> String {
        format!("{}.tfrollback/heartbeat.json", self.store.key())
    }

    /// Starts beating for `operation_id` every `interval`. The first beat is written at once;
    /// the receiver says when it landed (or why not). Until it has, the operation must write no
    /// journal next to the state and change nothing: a lock whose journal can be found but
    /// whose operation has no beat is one `recover` may take over.
    pub(crate) fn start_heartbeat(
        &self,
        operation_id: &str,
        interval: std::time::Duration,
    ) -> (Heartbeat, FirstBeat) {
        let beat = move |store: StateStore, key: String, operation_id: String| async move {
            let body = serde_json::to_vec(&Beat {
                operation_id,
                at: jiff::Timestamp::now().to_string(),
                interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            })
            .unwrap_or_default();
            store.put(&key, body, &Condition::None).await.map(|_| ())
        };
        let (store, key, id) = (
            self.store.clone(),
            self.heartbeat_key(),
            operation_id.to_string(),
        );
        let (landed, first) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let written = beat(store.clone(), key.clone(), id.clone()).await;
            let failed = written.is_err();
            let _ = landed.send(written.map_err(JournalError::from));
            if failed {
                return;
            }
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = beat(store.clone(), key.clone(), id.clone()).await {
                    tracing::warn!("could not refresh the operation's heartbeat: {e}");
                }
            }
        });
        (Heartbeat { task }, FirstBeat(first))
    }

    /// Stops beating and removes the beat: the operation is over.
    pub(crate) async fn stop_heartbeat(&self, heartbeat: Heartbeat) {
        drop(heartbeat);
        if let Err(e) = self.store.delete(&self.heartbeat_key()).await {
            tracing::warn!("could not remove the operation's heartbeat: {e}");
        }
    }

    /// The last beat of whichever operation beat last, if any.
    pub(crate) async fn heartbeat(&self) -> Result<Option<Beat>, JournalError> {
        Ok(self
            .store
            .get(&self.heartbeat_key())
            .await?
            .and_then(|f| serde_json::from_slice(&f.body).ok()))
    }

    /// Where an operation keeps its journal until it holds the lock: a file of its own, so an
    /// operation that never gets the lock never touches the journal of one that has it.
    fn pending_file(&self, operation_id: &str) -> PathBuf {
        self.workdir
            .join(LOCAL_DIR)
            .join("journals")
            .join(format!("{operation_id}.json"))
    }

    /// Writes the journal of an operation that does not hold the lock (yet).
    pub(crate) fn write_pending(&self, journal: &Journal) -> Result<(), JournalError> {
        write_private(
            local_dir(&self.workdir, "journals"),
            &format!("{}.json", journal.operation_id),
            journal,
        )
    }

    /// Forgets the pending journal of an operation that ends without having held the lock.
    pub(crate) fn remove_pending(&self, operation_id: &str) {
        let _ = std::fs::remove_file(self.pending_file(operation_id));
    }

    /// The unfinished journals of operations that had not (yet) written their journal under
    /// the lock: one of them may hold the lock if it died right after taking it.
    pub(crate) fn pending(&self) -> Vec<Journal> {
        let Ok(entries) = std::fs::read_dir(self.workdir.join(LOCAL_DIR).join("journals")) else {
            return vec![];
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice::<Journal>(&bytes).ok())
            .filter(|j| !j.finished && self.is_ours(j))
            .collect()
    }

    /// Whether `journal` is about this store's state (journals from before the location was
    /// recorded are taken to be, as they were written next to it or in its directory).
    fn is_ours(&self, journal: &Journal) -> bool {
        journal.location.is_empty() || journal.location == self.store.location()
    }

    /// Writes the local copy only (before the lock is taken, when writing next to the state
    /// could clobber another operation's journal).
    pub(crate) fn write_local(&self, journal: &Journal) -> Result<(), JournalError> {
        write_private(local_dir(&self.workdir, ""), "journal.json", journal)
    }

    /// Writes both copies. The local one first: when S3 cannot be written, the working
    /// directory still knows the latest step (`load` takes the copy that knows more).
    pub(crate) async fn write(&self, journal: &Journal) -> Result<(), JournalError> {
        let local = self.write_local(journal);
        self.write_remote(journal).await?;
        local
    }

    /// Writes the copy next to the state (the local one is written apart, at once). Once it
    /// landed, the operation's pending journal is no longer needed: this one names its lock.
    pub(crate) async fn write_remote(&self, journal: &Journal) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec_pretty(journal).unwrap_or_default();
        self.store
            .put(&self.s3_key(), bytes, &Condition::None)
            .await?;
        self.remove_pending(&journal.operation_id);
        Ok(())
    }

    /// The unfinished journal, from S3 or else the local copy. When both hold the same
    /// unfinished operation, the copy that recorded more steps wins: a journal write to S3 may
    /// have failed after the local one landed.
    pub(crate) async fn load(&self) -> Result<Option<Journal>, JournalError> {
        let remote = match self.store.get(&self.s3_key()).await? {
            Some(fetched) => Some(serde_json::from_slice::<Journal>(&fetched.body).map_err(
                |e| JournalError::Corrupt {
                    place: format!("s3://{}/{}", self.store.bucket(), self.s3_key()),
                    detail: e.to_string(),
                },
            )?),
            None => None,
        };
        let local = match std::fs::read(self.local_file()) {
            Ok(bytes) => Some(serde_json::from_slice::<Journal>(&bytes).map_err(|e| {
                JournalError::Corrupt {
                    place: self.local_file().display().to_string(),
                    detail: e.to_string(),
                }
            })?),
            Err(_) => None,
        };
        let remote = remote.filter(|j| !j.finished && self.is_ours(j));
        let local = local.filter(|j| !j.finished && self.is_ours(j));
        Ok(match (remote, local) {
            (Some(r), Some(l))
                if r.operation_id == l.operation_id && l.steps.len() > r.steps.len() =>
            {
                Some(l)
            }
            (Some(r), _) => Some(r),
            (None, l) => l,
        })
    }

    /// Marks the operation finished in both places (the S3 object goes away: history keeps the
    /// record of what happened).
    pub(crate) async fn finish(&self, journal: &mut Journal) -> Result<(), JournalError> {
        journal.finished = true;
        self.write_local(journal)?;
        self.remove_pending(&journal.operation_id);
        self.store.delete(&self.s3_key()).await?;
        Ok(())
    }
}

/// Writes a journal file 0600, atomically, in `dir` (made private, with its `.gitignore`).
fn write_private(
    dir: std::io::Result<PathBuf>,
    name: &str,
    journal: &Journal,
) -> Result<(), JournalError> {
    let bytes = serde_json::to_vec_pretty(journal).unwrap_or_default();
    let mut path = PathBuf::from(name);
    dir.and_then(|dir| {
        path = dir.join(name);
        fsx::write_atomic(&path, &bytes, 0o600)
    })
    .map_err(|source| JournalError::Local {
        path: path.display().to_string(),
        source,
    })
}
