//! The journal's writes next to the state, in order and off the critical path. A step is
//! recorded in the working directory at once and next to the state in the background; the
//! operation waits for those writes (`flush`) only where they must have landed: before
//! anything that may change the state, before the lock is let go, and where a test stops it.
//! Writes never overtake each other: each starts once the one before has landed, and writes
//! the newest journal queued by then (the journal is written whole each time), so steps that
//! follow each other quickly cost one write.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use crate::store::journal::{FirstBeat, Journal, JournalError, JournalStore};

#[derive(Default)]
pub(crate) struct JournalQueue {
    /// The newest journal not yet taken by a write.
    newest: Arc<Mutex<Option<Journal>>>,
    /// The last write queued; each write waits for the one before it.
    last: Option<JoinHandle<Result<(), JournalError>>>,
}

impl JournalQueue {
    /// The writes queued from now on start once `first` (a heartbeat's first beat) landed: no
    /// journal next to the state may name a lock whose operation has no beat yet.
    pub(crate) fn after(&mut self, first: FirstBeat) {
        let previous = self.last.take();
        self.last = Some(tokio::spawn(async move {
            wait(previous).await?;
            first.landed().await
        }));
    }

    /// Queues a write of `journal` next to the state.
    pub(crate) fn push(&mut self, journals: &JournalStore, journal: &Journal) {
        *self.newest.lock().unwrap_or_else(PoisonError::into_inner) = Some(journal.clone());
        let previous = self.last.take();
        let (newest, journals) = (Arc::clone(&self.newest), journals.clone());
        self.last = Some(tokio::spawn(async move {
            wait(previous).await?;
            let taken = newest.lock().unwrap_or_else(PoisonError::into_inner).take();
            match taken {
                Some(journal) => journals.write_remote(&journal).await,
                // A write queued after this one took it first: it wrote the newer journal.
                None => Ok(()),
            }
        }));
    }

    /// Waits for every queued write; the first that failed is the error (the writes queued
    /// after it were not made, and the next `push` writes the newest journal again).
    pub(crate) async fn flush(&mut self) -> Result<(), JournalError> {
        wait(self.last.take()).await
    }
}

async fn wait(write: Option<JoinHandle<Result<(), JournalError>>>) -> Result<(), JournalError> {
    let Some(write) = write else {
        return Ok(());
    };
    match write.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(JournalError::Cancelled),
    }
}
