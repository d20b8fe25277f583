//! A state-changing operation (`to`, `recover`): named steps recorded in the journal before
//! they run, the lock held from start to end, a snapshot of the state as it was found, and
//! writes that are compare-and-swap on the ETag just read, with serial = current + 1, the same
//! lineage, the backend's encryption and the DynamoDB digest, so terraform accepts the result.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::commands::Context;
use crate::error::Error;
use crate::fsx;
use crate::journal::{
    Journal, JournalStore, LOCAL_DIR, Snapshot, StepRecord, StepStatus, VersionRef,
};
use crate::lock::{HeldLock, LockInfo, LockTable, Locker};
use crate::report::Orphan;
use crate::s3::{Condition, Fetched, Written};
use crate::state::{self, State};

/// Listens for Ctrl-C and SIGTERM. The first one flips the returned flag (the running
/// terraform gets SIGINT once and the operation winds down safely); later ones only remind
/// the user that tfrollback is finishing.
pub fn interrupts() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if first {
                eprintln!(
                    "tfrollback: stopping; terraform was asked to stop and the state will be left as safe as it was found"
                );
                let _ = tx.send(true);
                first = false;
            } else {
                eprintln!("tfrollback: still finishing safely; please wait");
            }
        }
    });
    rx
}

/// A test seam for the crash-safety suite: `TFROLLBACK_FAILPOINT=STEP=pause` stops the
/// operation for good right after the journal records STEP (so a test can kill it at exactly
/// that point), and `STEP=wait:PATH` holds it there until PATH exists. Unset, it does nothing.
async fn failpoint(step: &str) {
    let Ok(spec) = std::env::var("TFROLLBACK_FAILPOINT") else {
        return;
    };
    let Some((at, action)) = spec.split_once('=') else {
        return;
    };
    if at != step {
        return;
    }
    eprintln!("tfrollback: failpoint at step {step}: {action}");
    loop {
        match action.strip_prefix("wait:") {
            Some(path) if std::path::Path::new(path).exists() => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub struct Operation<'a> {
    pub ctx: &'a Context,
    pub journal: Journal,
    journals: JournalStore,
    locker: Locker,
    table: Option<LockTable>,
    held: Option<HeldLock>,
    step_started: Option<Instant>,
}

impl<'a> Operation<'a> {
    pub fn new(ctx: &'a Context, command: String, target: VersionRef) -> Operation<'a> {
        let table = LockTable::new(&ctx.aws, &ctx.settings.backend);
        let locker = Locker::new(
            ctx.store.clone(),
            table.clone(),
            ctx.settings.backend.use_lockfile,
        );
        Operation {
            ctx,
            journal: Journal {
                operation_id: uuid::Uuid::new_v4().to_string(),
                command,
                who: crate::lock::who(),
                started_at: jiff::Timestamp::now().to_string(),
                target,
                snapshot: None,
                lock: None,
                steps: vec![],
                terraform_pid: None,
                host: gethostname::gethostname().to_string_lossy().into_owned(),
                finished: false,
            },
            journals: JournalStore::new(ctx.store.clone(), &ctx.settings.workdir),
            locker,
            table,
            held: None,
            step_started: None,
        }
    }

    /// Continues an interrupted operation from its journal (for `recover`).
    pub fn resume(ctx: &'a Context, journal: Journal) -> Operation<'a> {
        let mut op = Operation::new(ctx, journal.command.clone(), journal.target.clone());
        op.journal = journal;
        op
    }

    pub fn journals(&self) -> &JournalStore {
        &self.journals
    }

    /// Starts a step: records it in the journal before anything of it runs. Before the lock is
    /// held only the local journal is written, so another operation's journal is never touched.
    pub async fn begin(&mut self, name: &str) -> Result<(), Error> {
        self.finish_step(StepStatus::Ok);
        self.journal.steps.push(StepRecord {
            name: name.to_string(),
            status: StepStatus::Running,
            started_at: jiff::Timestamp::now().to_string(),
            duration_ms: 0,
        });
        self.step_started = Some(Instant::now());
        self.save().await?;
        failpoint(name).await;
        Ok(())
    }

    /// Ends the running step with `status` (the journal is written at the next step).
    pub fn finish_step(&mut self, status: StepStatus) {
        if let (Some(started), Some(step)) =
            (self.step_started.take(), self.journal.steps.last_mut())
            && step.status == StepStatus::Running
        {
            step.status = status;
            step.duration_ms = started.elapsed().as_millis() as u64;
        }
    }

    /// Records a step that did not run.
    pub fn skip(&mut self, name: &str) {
        self.finish_step(StepStatus::Ok);
        self.journal.steps.push(StepRecord {
            name: name.to_string(),
            status: StepStatus::Skipped,
            started_at: jiff::Timestamp::now().to_string(),
            duration_ms: 0,
        });
    }

    pub async fn save(&self) -> Result<(), Error> {
        if self.held.is_some() || !self.locker.enabled() && self.journal.snapshot.is_some() {
            self.journals.write(&self.journal).await?;
        } else {
            self.journals.write_local(&self.journal)?;
        }
        Ok(())
    }

    /// Takes the state lock the way terraform does, waiting up to `timeout` for another holder.
    pub async fn lock(
        &mut self,
        operation: String,
        terraform_version: String,
        timeout: Duration,
    ) -> Result<(), Error> {
        if !self.locker.enabled() {
            self.ctx.printer.note(
                "warning: the backend configures no state lock (neither use_lockfile nor dynamodb_table), so nothing keeps others out during the rollback",
            );
            return Ok(());
        }
        let backend = &self.ctx.settings.backend;
        let info = LockInfo::new(
            operation,
            format!("tfrollback operation {}", self.journal.operation_id),
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
        self.journals.write_local(&self.journal)?;
        let printer = self.ctx.printer.clone();
        let held = self
            .locker
            .acquire(&info, timeout, &mut |holder| {
                printer.note(&format!(
                    "waiting for the state lock held by {} ({}, since {})",
                    holder.who, holder.operation, holder.created
                ))
            })
            .await?;
        self.held = Some(held);
        self.save().await
    }

    /// Adopts the lock of an interrupted operation when its ID is the one the journal
    /// recorded; otherwise takes the lock anew. Returns whether the old lock was adopted.
    pub async fn adopt_lock(
        &mut self,
        terraform_version: String,
        timeout: Duration,
    ) -> Result<bool, Error> {
        if let (Some(recorded), Some(holder)) =
            (self.journal.lock.clone(), self.locker.holder().await?)
            && holder.id == recorded.info.id
        {
            self.held = Some(recorded);
            return Ok(true);
        }
        let operation = format!("tfrollback recover {}", self.journal.operation_id);
        self.lock(operation, terraform_version, timeout).await?;
        Ok(false)
    }

    /// Releases the lock if it is ours.
    pub async fn unlock(&mut self) -> Result<(), Error> {
        if let Some(held) = self.held.take()
            && !self.locker.release(&held).await?
        {
            tracing::warn!("the lock was no longer ours to release");
        }
        Ok(())
    }

    /// Reads the current state under the lock and saves it locally (0600) as the snapshot.
    pub async fn snapshot(&mut self) -> Result<Snapshot, Error> {
        let current = self.current().await?;
        let summary = state::summarize(&current.body).map_err(|source| Error::State {
            version: current
                .version_id
                .clone()
                .unwrap_or_else(crate::selector::VersionId::null),
            location: self.ctx.location(),
            source,
        })?;
        let version_id = current
            .version_id
            .clone()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "null".into());
        let dir = PathBuf::from(LOCAL_DIR).join("snapshots");
        let file = dir.join(format!(
            "{}-serial-{}.tfstate",
            self.journal.operation_id, summary.serial
        ));
        let abs_dir = self.ctx.settings.workdir.join(&dir);
        let abs_file = self.ctx.settings.workdir.join(&file);
        fsx::create_private_dir(&abs_dir)
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
        self.journal.snapshot = Some(snapshot.clone());
        self.save().await?;
        Ok(snapshot)
    }

    /// The state object as it is now.
    pub async fn current(&self) -> Result<Fetched, Error> {
        self.ctx
            .store
            .get(self.ctx.store.key())
            .await?
            .ok_or_else(|| Error::Refused {
                reason: format!(
                    "{} does not exist (deleted, or never written)",
                    self.ctx.location()
                ),
                hint: "run `tfrollback list` to see its versions".into(),
                usage: false,
            })
    }

    /// Writes `content` as the new current state over `over`: serial = over's serial + 1,
    /// conditional on over's ETag, then the DynamoDB digest.
    pub async fn write_state(&self, content: &[u8], over: &Fetched) -> Result<Written, Error> {
        let location = self.ctx.location();
        let over_serial = state::summarize(&over.body)
            .map_err(|source| Error::State {
                version: over
                    .version_id
                    .clone()
                    .unwrap_or_else(crate::selector::VersionId::null),
                location: location.clone(),
                source,
            })?
            .serial;
        let body = state::with_serial(content, over_serial + 1).map_err(|source| Error::State {
            version: crate::selector::VersionId::null(),
            location,
            source,
        })?;
        let etag = over.etag.clone().unwrap_or_default();
        failpoint("write").await;
        let written = self
            .ctx
            .store
            .put(
                self.ctx.store.key(),
                body.clone(),
                &Condition::Matches(etag),
            )
            .await?;
        if let Some(table) = &self.table {
            table
                .set_digest(self.ctx.store.bucket(), self.ctx.store.key(), &body)
                .await?;
        }
        Ok(written)
    }

    /// Puts the snapshot back as the new current state, unless the state never moved from it.
    /// Returns the new version (None when nothing needed writing) and the resources that the
    /// state now holds but the snapshot does not (left outside the restored state).
    pub async fn restore_snapshot(&mut self) -> Result<(Option<String>, Vec<Orphan>), Error> {
        let snapshot = self
            .journal
            .snapshot
            .clone()
            .ok_or_else(|| Error::Refused {
                reason: "no snapshot was taken, so there is nothing to restore".into(),
                hint: "the state was not changed by this operation".into(),
                usage: false,
            })?;
        let saved = self.snapshot_bytes(&snapshot).await?;
        let current = self.current().await?;
        if current.version_id.as_ref().map(|v| v.as_str()) == Some(snapshot.version_id.as_str()) {
            return Ok((None, vec![]));
        }
        let orphans = orphans(&current.body, &saved);
        let written = self.write_state(&saved, &current).await?;
        Ok((written.version_id.map(|v| v.to_string()), orphans))
    }

    /// The snapshot's bytes: the local copy, else the S3 version it was taken from.
    async fn snapshot_bytes(&self, snapshot: &Snapshot) -> Result<Vec<u8>, Error> {
        if let Ok(bytes) = std::fs::read(self.ctx.settings.workdir.join(&snapshot.file)) {
            return Ok(bytes);
        }
        let id = crate::selector::VersionId::parse(&snapshot.version_id)?;
        Ok(self.ctx.store.read(&id).await?)
    }

    /// Ends the operation: the journal is marked finished and the lock released.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.finish_step(StepStatus::Ok);
        self.unlock().await?;
        if self.journal.snapshot.is_some() || self.journal.lock.is_some() {
            self.journals.finish(&mut self.journal).await?;
        } else {
            self.journal.finished = true;
            self.journals.write_local(&self.journal)?;
        }
        Ok(())
    }
}

/// Objects in `current` that `restored` does not track: instances at an address the restored
/// state lacks, and instances whose `id` differs from the one the restored state records there
/// (the failed apply replaced them: the new object exists, the state points at the old one).
pub fn orphans(current: &[u8], restored: &[u8]) -> Vec<Orphan> {
    let (Ok(cur_text), Ok(old_text)) =
        (std::str::from_utf8(current), std::str::from_utf8(restored))
    else {
        return vec![];
    };
    let (Ok(cur), Ok(old)) = (State::parse(cur_text), State::parse(old_text)) else {
        return vec![];
    };
    let id = |raw: &serde_json::value::RawValue| {
        serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| {
                v.pointer("/attributes/id")
                    .and_then(|id| id.as_str())
                    .map(str::to_string)
            })
    };
    cur.instances
        .iter()
        .filter_map(|(address, raw)| {
            let now = id(raw);
            let tracked = old.instances.get(address).map(|r| id(r));
            match tracked {
                Some(before) if before == now => None,
                _ => Some(Orphan {
                    address: address.clone(),
                    id: now,
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(instances: &[(&str, &str)]) -> Vec<u8> {
        let resources: Vec<serde_json::Value> = instances
            .iter()
            .map(|(name, id)| {
                serde_json::json!({"mode": "managed", "type": "terraform_data", "name": name,
                    "instances": [{"attributes": {"id": id}}]})
            })
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"version": 4, "terraform_version": "1.11.4",
            "serial": 1, "lineage": "l", "outputs": {}, "resources": resources}),
        )
        .unwrap()
    }

    #[test]
    fn orphans_are_new_addresses_and_replaced_objects() {
        let snapshot = state(&[("router", "r-old"), ("db", "db-1")]);
        let failed = state(&[("router", "r-new"), ("db", "db-1"), ("canary", "c-1")]);
        let found: Vec<(String, Option<String>)> = orphans(&failed, &snapshot)
            .into_iter()
            .map(|o| (o.address, o.id))
            .collect();
        assert_eq!(
            found,
            [
                ("terraform_data.canary".to_string(), Some("c-1".to_string())),
                (
                    "terraform_data.router".to_string(),
                    Some("r-new".to_string())
                ),
            ]
        );
    }
}
