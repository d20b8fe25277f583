//! The audit history: one record per `to`, `restore` and `recover`, whatever the outcome, at
//! `<key>.tfrollback/history/<time>-<operation>.json` next to the state (same encryption). A
//! record says who (AWS caller ARN, user@host, CI run), when, from which version to which,
//! the result and exit code, and the report. Reports hold only redacted values.

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::identity::Who;
use crate::model::selector::VersionRef;
use crate::store::s3::{Condition, S3Error, StateStore};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HistoryRecord {
    pub(crate) operation_id: String,
    pub(crate) command: String,
    pub(crate) who: Who,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    pub(crate) duration_ms: u64,
    pub(crate) from: Option<VersionRef>,
    pub(crate) to: Option<VersionRef>,
    pub(crate) result: String,
    pub(crate) exit_code: u8,
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) report: Option<Value>,
    /// What set off an automatic rollback (`guard`): the check and its last output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trigger: Option<Value>,
}

#[derive(Clone)]
pub(crate) struct HistoryStore {
    store: StateStore,
}

impl HistoryStore {
    pub(crate) fn new(store: StateStore) -> HistoryStore {
        HistoryStore { store }
    }

    fn prefix(&self) -> String {
        format!("{}.tfrollback/history/", self.store.key())
    }

    /// Stores a record; its key sorts by time.
    pub(crate) async fn record(&self, record: &HistoryRecord) -> Result<String, S3Error> {
        let stamp = record
            .started_at
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime("%Y%m%dT%H%M%S%.3fZ").to_string())
            .unwrap_or_else(|_| "unknown".into());
        let key = format!("{}{stamp}-{}.json", self.prefix(), record.operation_id);
        let body = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.store.put(&key, body, &Condition::None).await?;
        Ok(key)
    }

    /// The newest `limit` records, newest first.
    pub(crate) async fn list(&self, limit: Option<usize>) -> Result<Vec<HistoryRecord>, S3Error> {
        let mut keys = self.store.keys(&self.prefix()).await?;
        keys.reverse();
        if let Some(limit) = limit {
            keys.truncate(limit);
        }
        let records: Vec<Option<HistoryRecord>> = stream::iter(keys)
            .map(|key| async move {
                let fetched = self.store.get(&key).await?;
                Ok::<_, S3Error>(fetched.and_then(|f| serde_json::from_slice(&f.body).ok()))
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// One record by operation id (or a unique prefix of it).
    pub(crate) async fn find(&self, operation: &str) -> Result<Vec<HistoryRecord>, S3Error> {
        let matching: Vec<String> = self
            .store
            .keys(&self.prefix())
            .await?
            .into_iter()
            .filter(|k| {
                k.rsplit('/')
                    .next()
                    .and_then(|name| name.split_once('-'))
                    .is_some_and(|(_, rest)| rest.starts_with(operation))
            })
            .collect();
        let mut out = vec![];
        for key in matching {
            if let Some(f) = self.store.get(&key).await?
                && let Ok(r) = serde_json::from_slice(&f.body)
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}
