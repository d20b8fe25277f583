//! Freezes: after `guard` rolled a deploy back by itself, the version it rolled back from is
//! frozen, one record per version at `<key>.tfrollback/frozen/<version id>.json` next to the
//! state (same encryption). `guard` does not watch a frozen deploy again (no flapping),
//! `status --check-frozen` lets a pipeline refuse to re-apply, `unfreeze` lifts a freeze.

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::model::selector::{VersionId, VersionRef};
use crate::store::s3::{Condition, S3Error, StateStore};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Freeze {
    /// The deploy that failed its checks.
    pub(crate) version: VersionRef,
    /// A digest of that version's recorded outputs: a re-apply of the same release writes a
    /// new version with the same outputs, and is the same deploy.
    pub(crate) outputs_digest: String,
    pub(crate) frozen_at: String,
    pub(crate) who: String,
    /// The check that failed, and what it printed last (no secrets).
    pub(crate) check: String,
    pub(crate) detail: String,
    /// Where guard rolled back to, and the version the rollback wrote once it did.
    pub(crate) target: VersionRef,
    #[serde(default)]
    pub(crate) rollback_version_id: Option<VersionId>,
    #[serde(default)]
    pub(crate) operation_id: Option<String>,
    /// The rollback's result (`rolled_back`, `restored`, ...), once known.
    #[serde(default)]
    pub(crate) result: Option<String>,
}

#[derive(Clone)]
pub(crate) struct FreezeStore {
    store: StateStore,
}

impl FreezeStore {
    pub(crate) fn new(store: StateStore) -> FreezeStore {
        FreezeStore { store }
    }

    fn prefix(&self) -> String {
        format!("{}.tfrollback/frozen/", self.store.key())
    }

    fn key_of(&self, version: &VersionId) -> String {
        format!("{}{version}.json", self.prefix())
    }

    /// Writes (or updates) the freeze of `freeze.version`.
    pub(crate) async fn freeze(&self, freeze: &Freeze) -> Result<(), S3Error> {
        let body = serde_json::to_vec_pretty(freeze).unwrap_or_default();
        self.store
            .put(
                &self.key_of(&freeze.version.version_id),
                body,
                &Condition::None,
            )
            .await?;
        Ok(())
    }

    /// Every freeze, oldest first. A record that cannot be read still freezes its version.
    pub(crate) async fn list(&self) -> Result<Vec<Freeze>, S3Error> {
        let keys = self.store.keys(&self.prefix()).await?;
        let freezes: Vec<Option<Freeze>> =
            stream::iter(keys)
                .map(|key| async move {
                    let fetched = self.store.get(&key).await?;
                    Ok::<_, S3Error>(fetched.map(|f| {
                        serde_json::from_slice(&f.body).unwrap_or_else(|_| unreadable(&key))
                    }))
                })
                .buffered(16)
                .try_collect()
                .await?;
        let mut freezes: Vec<Freeze> = freezes.into_iter().flatten().collect();
        freezes.sort_by(|a, b| a.frozen_at.cmp(&b.frozen_at));
        Ok(freezes)
    }

    /// Lifts the freeze of `version`; false when there was none.
    pub(crate) async fn lift(&self, version: &VersionId) -> Result<bool, S3Error> {
        let key = self.key_of(version);
        if self.store.get(&key).await?.is_none() {
            return Ok(false);
        }
        self.store.delete(&key).await?;
        Ok(true)
    }
}

/// A freeze record someone else wrote in a shape this version cannot read: its key still
/// names the version, and it still counts.
fn unreadable(key: &str) -> Freeze {
    let id = key
        .rsplit('/')
        .next()
        .and_then(|name| name.strip_suffix(".json"))
        .and_then(|id| VersionId::parse(id).ok())
        .unwrap_or_else(VersionId::null);
    Freeze {
        version: VersionRef {
            version_id: id,
            serial: 0,
        },
        outputs_digest: String::new(),
        frozen_at: String::new(),
        who: "unknown".into(),
        check: "unknown".into(),
        detail: format!("the freeze record {key} could not be read"),
        target: VersionRef {
            version_id: VersionId::null(),
            serial: 0,
        },
        rollback_version_id: None,
        operation_id: None,
        result: None,
    }
}
