//! The rollback engine: a state-changing operation (`to`, `restore`, `recover`) as named steps
//! recorded in the journal before they run, the lock held from start to end, a snapshot of the
//! state as it was found, and writes that are compare-and-swap on the ETag just read, with
//! serial = current + 1, the same lineage, the backend's encryption and the DynamoDB digest, so
//! terraform accepts the result. It knows nothing of the commands: they hand it an `Engine`.

mod queue;
pub(crate) mod report;
pub(crate) mod signals;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Refusal};
use crate::model::diff::{Orphan, orphans};
use crate::model::identity::Identity;
use crate::model::selector::{Selector, VersionId, VersionRef};
use crate::model::state;
use crate::printer::Printer;
use crate::store::Store;
use crate::store::fsx;
use crate::store::journal::{
    Heartbeat, Journal, LOCAL_DIR, Snapshot, Step, StepRecord, StepStatus, local_dir,
};
use crate::store::lock::{HeldLock, LockInfo};
use crate::store::s3::{Condition, Fetched, Reread, Written};
use queue::JournalQueue;

/// What the engine needs of a run, as plain references: the store, the printer, the working
/// directory (local snapshots and journal), who runs it, and the failpoint test seam.
#[derive(Clone, Copy)]
pub(crate) struct Engine<'a> {
    pub(crate) store: &'a Store,
    pub(crate) printer: &'a Printer,
    pub(crate) workdir: &'a Path,
    pub(crate) identity: &'a Identity,
    pub(crate) failpoint: Option<&'a str>,
    /// How often the operation refreshes its heartbeat while it holds the lock.
    pub(crate) heartbeat: Duration,
}

impl Engine<'_> {
    /// Whether the failpoint seam stops the operation at `step`.
    fn stops_at(&self, step: &str) -> bool {
        self.failpoint
            .and_then(|spec| spec.split_once('='))
            .is_some_and(|(at, _)| at == step)
    }

    /// A test seam for the crash-safety suite: `TFROLLBACK_FAILPOINT=STEP=pause` stops the
    /// operation for good right after the journal records STEP (so a test can kill it at
    /// exactly that point), and `STEP=wait:PATH` holds it there until PATH exists. Unset, it
    /// does nothing.
    async fn failpoint(&self, step: &str) {
        let Some((at, action)) = self.failpoint.and_then(|spec| spec.split_once('=')) else {
            return;
        };
        if at != step {
            return;
        }
        eprintln!("tfrollback: failpoint at step {step}: {action}");
        loop {
            match action.strip_prefix("wait:") {
                Some(path) if Path::new(path).exists() => return,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// A flag nobody raises (its sender is gone): for operations that no signal interrupts.
fn never_interrupted() -> watch::Receiver<bool> {
    watch::channel(false).1
}

/// What an operation does, which names it in the journal, the lock, reports and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    To,
    Restore,
}

impl Verb {
    /// The command as the user gave it (`to previous`): the one form of the command string.
    /// The version it resolved to is the operation's target.
    pub(crate) fn command(self, selector: &Selector) -> String {
        match self {
            Verb::To => format!("to {selector}"),
            Verb::Restore => format!("restore {selector}"),
        }
    }
}

pub(crate) struct Operation<'a> {
    engine: Engine<'a>,
    pub(crate) journal: Journal,
    held: Option<HeldLock>,
    /// Whether this operation ever held the lock: only then may it finish the shared journal.
    held_once: bool,
    /// Beats while the lock is held, so no `recover` takes over a live operation.
    heartbeat: Option<Heartbeat>,
    /// Ctrl-C and friends (`signals::interrupts`): a wait for the lock ends at once.
    interrupt: watch::Receiver<bool>,
    step_started: Option<Instant>,
    /// The journal's writes next to the state still under way.
    queue: JournalQueue,
}

impl<'a> Operation<'a> {
    /// A new operation; its preflight (resolving and reading, which changed nothing) took
    /// from `preflight_started` until now.
    pub(crate) fn new(
        engine: Engine<'a>,
        command: String,
        target: VersionRef,
        preflight_started: Instant,
    ) -> Operation<'a> {
        let mut op = Operation {
            engine,
            journal: Journal {
                operation_id: uuid::Uuid::new_v4().to_string(),
                command,
                location: engine.store.location(),
                who: engine.identity.user.clone(),
                started_at: jiff::Timestamp::now().to_string(),
                target,
                snapshot: None,
                lock: None,
                steps: vec![],
                terraform_pid: None,
                host: engine.identity.host.clone(),
                finished: false,
            },
            held: None,
            held_once: false,
            heartbeat: None,
            interrupt: never_interrupted(),
            step_started: None,
            queue: JournalQueue::default(),
        };
        op.journal.steps.push(StepRecord {
            name: Step::Preflight,
            status: StepStatus::Ok,
            started_at: jiff::Timestamp::now().to_string(),
            duration_ms: preflight_started.elapsed().as_millis() as u64,
        });
        op
    }

    /// Continues an interrupted operation from its journal (for `recover`).
    pub(crate) fn resume(engine: Engine<'a>, journal: Journal) -> Operation<'a> {
        Operation {
            engine,
            journal,
            held: None,
            held_once: false,
            heartbeat: None,
            interrupt: never_interrupted(),
            step_started: None,
            queue: JournalQueue::default(),
        }
    }

    /// The interrupt flag the operation watches (for prompts under its lock).
    pub(crate) fn interrupt(&self) -> watch::Receiver<bool> {
        self.interrupt.clone()
    }

    /// Lets Ctrl-C end a wait for the lock.
    pub(crate) fn interruptible(mut self, interrupt: watch::Receiver<bool>) -> Operation<'a> {
        self.interrupt = interrupt;
        self
    }

    pub(crate) fn printer(&self) -> &'a Printer {
        self.engine.printer
    }

    pub(crate) fn store(&self) -> &'a Store {
        self.engine.store
    }

    /// A local file of this operation under `.tfrollback/<dir>/` (created private, kept out
    /// of git), as an absolute path: terraform runs in the working directory.
    pub(crate) fn local_file(&self, dir: &str, suffix: &str) -> Result<PathBuf, Error> {
        let parent = local_dir(self.engine.workdir, dir).map_err(|source| Error::Write {
            path: self
                .engine
                .workdir
                .join(LOCAL_DIR)
                .join(dir)
                .display()
                .to_string(),
            source,
        })?;
        Ok(fsx::absolute(
            &parent.join(format!("{}{suffix}", self.journal.operation_id)),
        ))
    }

    /// Takes the lock for the operation (after its preflight); when that fails the operation
    /// is closed and the error returned, nothing having changed. A rollback left unfinished
    /// on this state (running, or interrupted) is refused before anything is written: its
    /// journal is what `recover` needs. `unfinished` is what `Store::unfinished` found during
    /// preflight, alongside its other reads (a journal can appear only under the lock, which
    /// this operation then cannot take).
    pub(crate) async fn start(
        &mut self,
        terraform_version: String,
        timeout: Duration,
        no_lock: bool,
        unfinished: Option<Journal>,
    ) -> Result<(), Error> {
        if !self.store().locker.enabled() && !no_lock {
            return Err(Refusal::NoLock {
                location: self.store().location(),
            }
            .into());
        }
        if let Some(other) = unfinished {
            return Err(Refusal::Unfinished {
                operation_id: other.operation_id,
                command: other.command,
                who: other.who,
                started_at: other.started_at,
            }
            .into());
        }
        self.begin(Step::Lock).await?;
        let operation = format!("tfrollback {}", self.journal.command);
        if let Err(e) = self.lock(operation, terraform_version, timeout).await {
            return Err(self.abort(e).await);
        }
        Ok(())
    }

    /// Ends an operation that failed before anything was applied: the running step failed,
    /// the lock is released and the journal finished. Returns `error` for the caller.
    pub(crate) async fn abort(&mut self, error: Error) -> Error {
        self.finish_step(StepStatus::Failed);
        if let Err(close) = self.close().await {
            self.printer().note(&format!("warning: {}", close.render()));
        }
        error
    }

    /// Starts a step: records it in the journal before anything of it runs. Before the lock is
    /// held only the local journal is written, so another operation's journal is never touched.
    /// Under the lock the local journal is written at once and the one next to the state in
    /// the background (`queue`); a step that may change the state (the apply, a restore)
    /// starts only once that has landed.
    pub(crate) async fn begin(&mut self, step: Step) -> Result<(), Error> {
        self.note(step)?;
        if self.owns_journal() {
            self.queue.push(&self.store().journals, &self.journal);
        }
        if step.changes_state() {
            self.queue.flush().await?;
        }
        self.failpoint(step.name()).await
    }

    /// Starts a step that ends at once and changes nothing (writing the var file, a
    /// confirmation nobody is asked for): recorded in the working directory at once, and next
    /// to the state with the next step that waits on something. The unlock step is one too:
    /// `close` lets go of the lock once the journal is up to date, and killed while unlocking,
    /// `recover` does the same whichever step the copy next to the state names last (it keeps
    /// the state and releases the lock).
    pub(crate) async fn begin_brief(&mut self, step: Step) -> Result<(), Error> {
        self.note(step)?;
        self.failpoint(step.name()).await
    }

    /// Records `step` as running in the local journal only.
    fn note(&mut self, step: Step) -> Result<(), Error> {
        self.finish_step(StepStatus::Ok);
        self.journal.steps.push(StepRecord {
            name: step,
            status: StepStatus::Running,
            started_at: jiff::Timestamp::now().to_string(),
            duration_ms: 0,
        });
        self.step_started = Some(Instant::now());
        let journals = &self.store().journals;
        if self.owns_journal() {
            journals.write_local(&self.journal)?;
        } else {
            journals.write_pending(&self.journal)?;
        }
        Ok(())
    }

    /// The failpoint seam at `step`: where it stops the operation, the journal has landed next
    /// to the state first, so a test that kills it there finds the step recorded.
    async fn failpoint(&mut self, step: &str) -> Result<(), Error> {
        if self.engine.stops_at(step) {
            if self.owns_journal() {
                self.queue.push(&self.store().journals, &self.journal);
            }
            self.queue.flush().await?;
            self.engine.failpoint(step).await;
        }
        Ok(())
    }

    /// Ends the running step with `status` (the journal is written at the next step).
    pub(crate) fn finish_step(&mut self, status: StepStatus) {
        if let (Some(started), Some(step)) =
            (self.step_started.take(), self.journal.steps.last_mut())
            && step.status == StepStatus::Running
        {
            step.status = status;
            step.duration_ms = started.elapsed().as_millis() as u64;
        }
    }

    /// Records a step that did not run.
    pub(crate) fn skip(&mut self, step: Step) {
        self.finish_step(StepStatus::Ok);
        self.journal.steps.push(StepRecord {
            name: step,
            status: StepStatus::Skipped,
            started_at: jiff::Timestamp::now().to_string(),
            duration_ms: 0,
        });
    }

    /// Writes the journal and waits until it landed: next to the state and in the working
    /// directory while the lock is held (or, with no lock configured, once there is a snapshot
    /// to restore); before that, only to this operation's own pending file, so no other
    /// operation's journal is touched.
    pub(crate) async fn save(&mut self) -> Result<(), Error> {
        let journals = &self.store().journals;
        if self.owns_journal() {
            journals.write_local(&self.journal)?;
            self.queue.push(journals, &self.journal);
        } else {
            journals.write_pending(&self.journal)?;
        }
        Ok(self.queue.flush().await?)
    }

    fn owns_journal(&self) -> bool {
        self.held.is_some() || !self.store().locker.enabled() && self.journal.snapshot.is_some()
    }

    /// Takes the state lock the way terraform does, waiting up to `timeout` for another holder.
    async fn lock(
        &mut self,
        operation: String,
        terraform_version: String,
        timeout: Duration,
    ) -> Result<(), Error> {
        let store = self.store();
        if !store.locker.enabled() {
            self.printer().note(
                "warning: the backend configures no state lock (neither use_lockfile nor dynamodb_table), so nothing keeps others out during the rollback",
            );
            return Ok(());
        }
        let backend = store.backend();
        let info = LockInfo::new(
            operation,
            format!("tfrollback operation {}", self.journal.operation_id),
            self.engine.identity.user.clone(),
            terraform_version,
            &backend.bucket,
            &backend.key,
        );
        // The local journal names the lock before it is taken: if tfrollback dies right after
        // taking it, `recover` can still prove the lock is its own.
        self.journal.lock = Some(HeldLock {
            info: info.clone(),
            lockfile: backend.use_lockfile,
            dynamodb: backend.dynamodb_table.is_some(),
        });
        store.journals.write_pending(&self.journal)?;
        let printer = self.printer();
        let held = store
            .locker
            .acquire(&info, timeout, &self.interrupt, &mut |holder| {
                printer.note(&format!(
                    "waiting for the state lock held by {} ({}, since {})",
                    holder.who, holder.operation, holder.created
                ));
            })
            .await?;
        self.held = Some(held);
        self.held_once = true;
        // The pending journal names the lock until the first journal next to the state, which
        // waits for the first beat, lands (see `snapshot`).
        self.beat();
        Ok(())
    }

    /// Starts the heartbeat of a lock just taken or adopted; the journal's next write waits
    /// for its first beat.
    fn beat(&mut self) {
        let (beat, first) = self
            .store()
            .journals
            .start_heartbeat(&self.journal.operation_id, self.engine.heartbeat);
        self.heartbeat = Some(beat);
        self.queue.after(first);
    }

    /// Adopts the lock of an interrupted operation when its ID is the one the journal
    /// recorded; otherwise takes the lock anew. Returns whether the old lock was adopted.
    pub(crate) async fn adopt_lock(
        &mut self,
        terraform_version: String,
        timeout: Duration,
    ) -> Result<bool, Error> {
        if let (Some(recorded), Some(holder)) = (
            self.journal.lock.clone(),
            self.store().locker.holder().await?,
        ) && holder.id == recorded.info.id
        {
            self.held = Some(recorded);
            self.held_once = true;
            self.beat();
            self.queue.flush().await?;
            return Ok(true);
        }
        let operation = format!("tfrollback recover {}", self.journal.operation_id);
        self.lock(operation, terraform_version, timeout).await?;
        self.queue.flush().await?;
        Ok(false)
    }

    /// Lets go of the lock (and its heartbeat) without finishing the journal: the operation
    /// is left for a later decision.
    pub(crate) async fn release(&mut self) -> Result<(), Error> {
        self.queue.flush().await?;
        if let Some(beat) = self.heartbeat.take() {
            self.store().journals.stop_heartbeat(beat).await;
        }
        self.unlock().await
    }

    /// Releases the lock if it is ours.
    async fn unlock(&mut self) -> Result<(), Error> {
        if let Some(held) = self.held.take()
            && !self.store().locker.release(&held).await?
        {
            tracing::warn!("the lock was no longer ours to release");
        }
        Ok(())
    }

    /// The snapshot step: the current state under the lock, saved locally (0600) and named by
    /// the journal. `found` is the current state as preflight read it: it is asked again only
    /// if it changed (`If-None-Match` on its ETag), while the first beat of the heartbeat is
    /// written; the first journal next to the state follows both. Returns the snapshot and
    /// the state it holds (what a write over it is conditional on).
    pub(crate) async fn snapshot(&mut self, found: Fetched) -> Result<(Snapshot, Fetched), Error> {
        self.note(Step::Snapshot)?;
        let store = self.store();
        let objects = &store.objects;
        let reread = async {
            match &found.etag {
                Some(etag) => objects.get_unless(objects.key(), etag).await,
                None => objects.get(objects.key()).await.map(|now| match now {
                    Some(now) => Reread::Changed(now),
                    None => Reread::Absent,
                }),
            }
        };
        let (beat, now) = tokio::join!(self.queue.flush(), reread);
        beat?;
        let current = match now? {
            Reread::Unchanged { version_id }
                if version_id.is_none() || version_id == found.version_id =>
            {
                found
            }
            // The same bytes written again as another version: that one is current.
            Reread::Unchanged { .. } => self.current().await?,
            Reread::Changed(now) => now,
            Reread::Absent => {
                return Err(Refusal::StateMissing {
                    location: store.location(),
                }
                .into());
            }
        };
        let version_id = current.version_id.clone().unwrap_or_else(VersionId::null);
        let summary = state::summarize(&current.body).map_err(|source| Error::State {
            version: version_id.clone(),
            location: store.location(),
            source,
        })?;
        let dir = PathBuf::from(LOCAL_DIR).join("snapshots");
        let file = dir.join(format!(
            "{}-serial-{}.tfstate",
            self.journal.operation_id, summary.serial
        ));
        let abs_file = self.engine.workdir.join(&file);
        local_dir(self.engine.workdir, "snapshots")
            .and_then(|_| fsx::write_atomic(&abs_file, &current.body, 0o600))
            .map_err(|source| Error::Write {
                path: abs_file.display().to_string(),
                source,
            })?;
        let snapshot = Snapshot {
            version_id,
            serial: summary.serial,
            lineage: summary.lineage,
            etag: current.etag.clone().unwrap_or_default(),
            file: file.display().to_string(),
        };
        // Recorded in the working directory now, next to the state with the next step that
        // waits on something (the plan, a prompt, the restore's write).
        self.journal.snapshot = Some(snapshot.clone());
        let journals = &store.journals;
        if self.owns_journal() {
            journals.write_local(&self.journal)?;
        } else {
            journals.write_pending(&self.journal)?;
        }
        self.failpoint(Step::Snapshot.name()).await?;
        Ok((snapshot, current))
    }

    /// The state object as it is now.
    pub(crate) async fn current(&self) -> Result<Fetched, Error> {
        let objects = &self.store().objects;
        objects.get(objects.key()).await?.ok_or_else(|| {
            Refusal::StateMissing {
                location: self.store().location(),
            }
            .into()
        })
    }

    /// Writes `content` as the new current state over `over`: serial = over's serial + 1,
    /// conditional on over's ETag, then the DynamoDB digest.
    pub(crate) async fn write_state(
        &mut self,
        content: &[u8],
        over: &Fetched,
    ) -> Result<Written, Error> {
        // The journal is next to the state before the state changes.
        self.queue.flush().await?;
        let store = self.store();
        let location = store.location();
        let over_serial = state::summarize(&over.body)
            .map_err(|source| Error::State {
                version: over.version_id.clone().unwrap_or_else(VersionId::null),
                location: location.clone(),
                source,
            })?
            .serial;
        let body = state::with_serial(content, over_serial + 1).map_err(|source| Error::State {
            version: VersionId::null(),
            location,
            source,
        })?;
        let etag = over.etag.clone().unwrap_or_default();
        self.engine.failpoint("write").await;
        let objects = &store.objects;
        let written = objects
            .put(objects.key(), body.clone(), &Condition::Matches(etag))
            .await?;
        self.engine.failpoint("digest").await;
        if let Some(table) = &store.table
            && let Err(source) = table
                .set_digest(objects.bucket(), objects.key(), &body)
                .await
        {
            // The state is written: this is no longer a failure that changed nothing.
            return Err(Error::DigestNotSet {
                location: store.location(),
                version: written.version_id.clone().unwrap_or_else(VersionId::null),
                source: Box::new(source),
            });
        }
        Ok(written)
    }

    /// Sets the DynamoDB digest to the current state's bytes, when the backend keeps one: an
    /// operation interrupted between its state write and its digest write leaves a digest
    /// terraform would refuse the state over.
    pub(crate) async fn sync_digest(&self, current: &Fetched) -> Result<(), Error> {
        let store = self.store();
        if let Some(table) = &store.table {
            let objects = &store.objects;
            table
                .set_digest(objects.bucket(), objects.key(), &current.body)
                .await?;
        }
        Ok(())
    }

    /// Puts the snapshot back as the new current state, unless the state never moved from it.
    /// Returns the new version (None when nothing needed writing) and the resources that the
    /// state now holds but the snapshot does not (left outside the restored state).
    pub(crate) async fn restore_snapshot(
        &mut self,
    ) -> Result<(Option<VersionId>, Vec<Orphan>), Error> {
        let snapshot = self.journal.snapshot.clone().ok_or(Refusal::NoSnapshot)?;
        let saved = self.snapshot_bytes(&snapshot).await?;
        let current = self.current().await?;
        if current.version_id.as_ref() == Some(&snapshot.version_id) {
            return Ok((None, vec![]));
        }
        let orphans = orphans(&current.body, &saved);
        let written = self.write_state(&saved, &current).await?;
        Ok((written.version_id, orphans))
    }

    /// The snapshot's bytes: the local copy, else the S3 version it was taken from.
    async fn snapshot_bytes(&self, snapshot: &Snapshot) -> Result<Vec<u8>, Error> {
        if let Ok(bytes) = std::fs::read(self.engine.workdir.join(&snapshot.file)) {
            return Ok(bytes);
        }
        Ok(self.store().objects.read(&snapshot.version_id).await?)
    }

    /// Ends the operation: the lock released and the journal marked finished. An operation
    /// that never held the lock only forgets its pending journal: the shared journal, if
    /// there is one, belongs to whoever holds or held the lock.
    ///
    /// Every journal write lands before the lock goes. Once the state may have changed, one
    /// that cannot is an error and the lock stays, for `recover`; before, the state is as it
    /// was found and the lock may go all the same. The heartbeat goes before the lock (a beat
    /// deleted after it could be the next holder's), the journal after it (a lock whose journal
    /// is gone is one nobody can finish).
    pub(crate) async fn close(&mut self) -> Result<(), Error> {
        self.finish_step(StepStatus::Ok);
        if let Err(e) = self.queue.flush().await {
            if self.journal.apply_started() {
                return Err(e.into());
            }
            tracing::warn!("the journal next to the state could not be brought up to date: {e}");
        }
        let owned = self.held_once || self.owns_journal();
        if let Some(beat) = self.heartbeat.take() {
            self.store().journals.stop_heartbeat(beat).await;
        }
        self.unlock().await?;
        let journals = &self.store().journals;
        if owned {
            journals.finish(&mut self.journal).await?;
            // Finished: the snapshot is no longer needed here (its S3 version stays), and it
            // holds the whole state, secrets in clear.
            if let Some(snapshot) = &self.journal.snapshot {
                let _ = std::fs::remove_file(self.engine.workdir.join(&snapshot.file));
            }
        } else {
            self.journal.finished = true;
            journals.remove_pending(&self.journal.operation_id);
        }
        Ok(())
    }
}
