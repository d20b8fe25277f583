//! The I/O boundary: every S3, DynamoDB and STS call, and the files tfrollback keeps locally
//! (summary cache, journal copy, private files). Commands and the engine reach the bucket only
//! through the `Store` handle built once per run.

pub(crate) mod alarms;
pub(crate) mod cache;
pub(crate) mod compat;
pub(crate) mod freezes;
pub(crate) mod fsx;
pub(crate) mod history;
pub(crate) mod journal;
pub(crate) mod lock;
pub(crate) mod marks;
pub(crate) mod s3;
pub(crate) mod summaries;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::backend::Backend;
use alarms::Alarms;
use cache::SummaryCache;
use freezes::FreezeStore;
use history::HistoryStore;
use journal::JournalStore;
use lock::{LockTable, Locker};
use marks::MarkStore;
use s3::{S3Error, StateStore};

/// Why the unfinished rollback could not be looked up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnfinishedError {
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
}

/// What the store needs to know, as plain values (settings resolve them).
pub(crate) struct StoreOptions<'a> {
    pub(crate) backend: &'a Backend,
    /// The working directory: the local journal lives under it.
    pub(crate) workdir: &'a Path,
    pub(crate) page_size: i32,
    pub(crate) read_timeout: Duration,
    pub(crate) cache_dir: Option<PathBuf>,
    /// The S3 endpoint named by the backend or the environment, if any.
    pub(crate) endpoint: Option<String>,
}

/// Every handle on one state's bucket and lock, built once per run: the state object and its
/// versions, the lock (file, DynamoDB or both) and digest, the journal, marks, history and
/// freezes.
#[derive(Clone)]
pub(crate) struct Store {
    pub(crate) objects: StateStore,
    pub(crate) locker: Locker,
    /// The DynamoDB table, when the backend names one (it holds the digest too).
    pub(crate) table: Option<LockTable>,
    pub(crate) journals: JournalStore,
    pub(crate) marks: MarkStore,
    pub(crate) history: HistoryStore,
    pub(crate) freezes: FreezeStore,
    aws: aws_config::SdkConfig,
    backend: Backend,
    cache_dir: Option<PathBuf>,
    endpoint: Option<String>,
    /// The caller lookup once started (`look_up_caller`), for `caller_arn` to await.
    caller: Arc<Mutex<Option<tokio::task::JoinHandle<Option<String>>>>>,
}

impl Store {
    /// Loads the AWS configuration, makes sure credentials exist, and builds every handle.
    pub(crate) async fn connect(options: StoreOptions<'_>) -> Result<Store, S3Error> {
        let aws = s3::aws_config(options.backend, options.read_timeout).await?;
        s3::check_credentials(&aws).await?;
        let backend = options.backend.clone();
        let objects = StateStore::new(&aws, &backend, options.page_size);
        let table = LockTable::new(&aws, &backend);
        let endpoint = options
            .endpoint
            .or_else(|| aws.endpoint_url().map(str::to_string));
        Ok(Store {
            locker: Locker::new(objects.clone(), table.clone(), backend.use_lockfile),
            journals: JournalStore::new(objects.clone(), options.workdir),
            marks: MarkStore::new(objects.clone()),
            history: HistoryStore::new(objects.clone()),
            freezes: FreezeStore::new(objects.clone()),
            objects,
            table,
            aws,
            backend,
            cache_dir: options.cache_dir,
            endpoint,
            caller: Arc::default(),
        })
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `s3://bucket/key`, as messages name the state.
    pub(crate) fn location(&self) -> String {
        self.backend.location()
    }

    /// The summary cache of this state (empty and never written when `enabled` is false).
    pub(crate) fn summary_cache(&self, enabled: bool) -> SummaryCache {
        SummaryCache::open(
            self.cache_dir.as_deref().filter(|_| enabled),
            self.endpoint.as_deref(),
            &self.location(),
        )
    }

    /// The rollback left unfinished on this state, if any: its journal next to the state or in
    /// the working directory, or the pending journal of an operation that died right after
    /// taking the lock (the lock's ID proves it is that operation's).
    pub(crate) async fn unfinished(&self) -> Result<Option<journal::Journal>, UnfinishedError> {
        if let Some(journal) = self.journals.load().await? {
            return Ok(Some(journal));
        }
        let pending = self.journals.pending();
        if pending.is_empty() {
            return Ok(None);
        }
        let Some(holder) = self.locker.holder().await? else {
            return Ok(None);
        };
        Ok(pending
            .into_iter()
            .find(|j| j.lock.as_ref().is_some_and(|l| l.info.id == holder.id)))
    }

    /// CloudWatch alarms, with the same credentials and region as the state.
    pub(crate) fn alarms(&self) -> Alarms {
        Alarms::new(&self.aws)
    }

    /// Starts looking up the AWS caller (`caller_arn`) in the background: the history record
    /// names it at the very end, so the request need not wait until then.
    pub(crate) fn look_up_caller(&self) {
        let mut caller = self
            .caller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if caller.is_none() {
            let store = self.clone();
            *caller = Some(tokio::spawn(async move { store.ask_caller().await }));
        }
    }

    /// The AWS caller's ARN, when STS answers within a few seconds (history names it): the
    /// lookup started by `look_up_caller`, else a new one.
    pub(crate) async fn caller_arn(&self) -> Option<String> {
        let started = self
            .caller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match started {
            Some(lookup) => lookup.await.ok().flatten(),
            None => self.ask_caller().await,
        }
    }

    async fn ask_caller(&self) -> Option<String> {
        let mut sts = aws_sdk_sts::config::Builder::from(&self.aws);
        if let Some(endpoint) = &self.backend.endpoint_sts {
            sts = sts.endpoint_url(endpoint);
        }
        let client = aws_sdk_sts::Client::from_conf(sts.build());
        match tokio::time::timeout(Duration::from_secs(10), client.get_caller_identity().send())
            .await
        {
            Ok(Ok(out)) => out.arn().map(str::to_string),
            Ok(Err(e)) => {
                tracing::info!(
                    "STS did not say who this is: {}",
                    aws_sdk_sts::error::DisplayErrorContext(&e)
                );
                None
            }
            Err(_) => None,
        }
    }
}
