//! The state lock, taken exactly as terraform takes it so that terraform and tfrollback keep
//! each other out: the `<key>.tflock` object created with `If-None-Match: *` (`use_lockfile`),
//! the DynamoDB item `LockID = "<bucket>/<key>"` created with `attribute_not_exists`
//! (`dynamodb_table`), or both, lock file first. Also the DynamoDB digest item terraform checks
//! on every read. A lock is released only when its ID is ours: never anyone else's.

use std::time::Duration;

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeyType};
use serde::{Deserialize, Serialize};

use crate::model::backend::Backend;
use crate::model::readiness::TableShape;
use crate::store::s3::{Condition, S3Error, StateStore};

/// Terraform's lock info, field for field (`statemgr.LockInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockInfo {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(rename = "Operation", default)]
    pub(crate) operation: String,
    #[serde(rename = "Info", default)]
    pub(crate) info: String,
    #[serde(rename = "Who", default)]
    pub(crate) who: String,
    #[serde(rename = "Version", default)]
    pub(crate) version: String,
    #[serde(rename = "Created", default)]
    pub(crate) created: String,
    #[serde(rename = "Path", default)]
    pub(crate) path: String,
}

impl LockInfo {
    /// A new lock for `operation` on the state at `bucket/key`.
    pub(crate) fn new(
        operation: String,
        info: String,
        who: String,
        version: String,
        bucket: &str,
        key: &str,
    ) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            info,
            who,
            version,
            created: jiff::Timestamp::now().to_string(),
            path: format!("{bucket}/{key}"),
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error(
        "the state is locked by {} since {}: operation `{}`, lock ID {} ({place})",
        holder.who, holder.created, holder.operation, holder.id
    )]
    Held {
        holder: Box<LockInfo>,
        place: &'static str,
    },
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("DynamoDB table {table} does not exist")]
    NoTable { table: String },
    #[error("interrupted while waiting for the state lock; nothing was changed")]
    Interrupted,
    #[error("access denied: DynamoDB {operation} on table {table}")]
    Denied {
        operation: &'static str,
        table: String,
    },
    #[error("DynamoDB {operation} on table {table} failed: {detail}")]
    Dynamo {
        operation: &'static str,
        table: String,
        detail: String,
    },
}

impl LockError {
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            LockError::Held { holder, .. } => format!(
                "wait for that operation to finish, or retry with --lock-timeout 10m to wait for it; if you know its holder is gone, `terraform force-unlock {}` removes it",
                holder.id
            ),
            LockError::Interrupted => "run the command again when the lock is free (`tfrollback status` shows who holds it)".into(),
            LockError::NoTable { .. } => "check dynamodb_table in the backend configuration and the region".into(),
            LockError::Dynamo { .. } => "check DynamoDB access (dynamodb:GetItem, PutItem, DeleteItem on the lock table) and the endpoint; nothing was changed".into(),
            LockError::Denied { operation, .. } => format!("the AWS identity in use needs dynamodb:{operation} on the lock table (docs/iam.md); nothing was changed"),
            LockError::S3(e) => return e.hint(),
        })
    }
}

impl LockError {
    /// The IAM action a denied request needs (`dynamodb:PutItem`), when this is a denial.
    pub(crate) fn denied_action(&self) -> Option<String> {
        match self {
            LockError::Denied { operation, .. } => Some(format!("dynamodb:{operation}")),
            LockError::S3(e) => e.denied_action(),
            _ => None,
        }
    }
}

fn dynamo_error<E, R>(err: SdkError<E, R>, operation: &'static str, table: &str) -> LockError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err.code() {
        Some("ResourceNotFoundException") => LockError::NoTable {
            table: table.to_string(),
        },
        Some("AccessDeniedException") => LockError::Denied {
            operation,
            table: table.to_string(),
        },
        _ => LockError::Dynamo {
            operation,
            table: table.to_string(),
            detail: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// The DynamoDB table of the backend: lock items and state digests.
#[derive(Clone)]
pub(crate) struct LockTable {
    client: DynamoClient,
    table: String,
}

impl LockTable {
    pub(crate) fn new(config: &aws_config::SdkConfig, backend: &Backend) -> Option<LockTable> {
        let table = backend.dynamodb_table.clone()?;
        let mut conf = aws_sdk_dynamodb::config::Builder::from(config);
        if let Some(endpoint) = &backend.endpoint_dynamodb {
            conf = conf.endpoint_url(endpoint);
        }
        Some(LockTable {
            client: DynamoClient::from_conf(conf.build()),
            table,
        })
    }

    async fn get(&self, lock_id: &str, attribute: &str) -> Result<Option<String>, LockError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(lock_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error(e, "GetItem", &self.table))?;
        Ok(out
            .item()
            .and_then(|i| i.get(attribute))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// Creates the lock item; Ok(false) when one exists already.
    async fn create_lock(&self, lock_id: &str, info: &LockInfo) -> Result<bool, LockError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("LockID", AttributeValue::S(lock_id.to_string()))
            .item("Info", AttributeValue::S(info.to_json()))
            .condition_expression("attribute_not_exists(LockID)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(dynamo_error(e, "PutItem", &self.table)),
        }
    }

    /// Deletes the lock item only if it still holds exactly `info_json`.
    async fn delete_lock(&self, lock_id: &str, info_json: &str) -> Result<bool, LockError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(lock_id.to_string()))
            .condition_expression("Info = :info")
            .expression_attribute_values(":info", AttributeValue::S(info_json.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(dynamo_error(e, "DeleteItem", &self.table)),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.table
    }

    /// The table's key schema and status (DescribeTable); None when it does not exist.
    pub(crate) async fn describe(&self) -> Result<Option<TableShape>, LockError> {
        let out = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match dynamo_error(e, "DescribeTable", &self.table) {
                    LockError::NoTable { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let Some(table) = out.table() else {
            return Ok(None);
        };
        let key = |kind: KeyType| {
            table
                .key_schema()
                .iter()
                .find(|k| *k.key_type() == kind)
                .map(|k| k.attribute_name().to_string())
        };
        let hash_key = key(KeyType::Hash).map(|name| {
            let ty = table
                .attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == name)
                .map(|a| a.attribute_type().as_str().to_string())
                .unwrap_or_default();
            (name, ty)
        });
        Ok(Some(TableShape {
            hash_key,
            range_key: key(KeyType::Range),
            status: table
                .table_status()
                .map_or_else(|| "UNKNOWN".into(), |s| s.as_str().to_string()),
        }))
    }

    /// The digest terraform recorded for the state at `bucket/key`, if any.
    pub(crate) async fn digest(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<String>, LockError> {
        self.get(&format!("{bucket}/{key}-md5"), "Digest").await
    }

    /// Whether this identity may write the table, found out without changing it: a DeleteItem
    /// and a PutItem of the state's digest item, each conditional on an expression that cannot
    /// hold. DynamoDB authorizes a request before it reads the item to evaluate a condition, so
    /// `ConditionalCheckFailedException` proves the write is allowed and
    /// `AccessDeniedException` that it is not.
    ///
    /// Should a server ignore the condition, nothing may change either: the PutItem is sent
    /// only when the item exists (`stored`, its digest), carrying it unchanged, and a DeleteItem
    /// let through is undone by putting the item back. Returns whether PutItem was probed too,
    /// and what the server did if it ignored a condition.
    pub(crate) async fn probe_write(
        &self,
        bucket: &str,
        key: &str,
        stored: Option<&str>,
    ) -> Result<(bool, Option<String>), LockError> {
        const NEVER: &str = "attribute_exists(LockID) AND attribute_not_exists(LockID)";
        let id = format!("{bucket}/{key}-md5");
        let put_back = |digest: &str| {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("LockID", AttributeValue::S(id.clone()))
                .item("Digest", AttributeValue::S(digest.to_string()))
        };
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(id.clone()))
            .condition_expression(NEVER)
            .send()
            .await;
        match delete {
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
            Err(e) => return Err(dynamo_error(e, "DeleteItem", &self.table)),
            Ok(_) => {
                if let Some(digest) = stored {
                    put_back(digest)
                        .send()
                        .await
                        .map_err(|e| dynamo_error(e, "PutItem", &self.table))?;
                }
                return Ok((
                    false,
                    Some(format!(
                        "a deletion of the digest item {id} (put back as it was)"
                    )),
                ));
            }
        }
        let Some(digest) = stored else {
            return Ok((false, None));
        };
        match put_back(digest).condition_expression(NEVER).send().await {
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok((true, None)),
            Err(e) => Err(dynamo_error(e, "PutItem", &self.table)),
            Ok(_) => Ok((true, Some(format!("the digest item {id}, unchanged")))),
        }
    }

    /// Records the MD5 of the state bytes, as terraform does after each write, so that the next
    /// terraform read does not fail with "state data in S3 does not have the expected content".
    pub(crate) async fn set_digest(
        &self,
        bucket: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), LockError> {
        use md5::{Digest, Md5};
        let digest: String = Md5::digest(state)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("LockID", AttributeValue::S(format!("{bucket}/{key}-md5")))
            .item("Digest", AttributeValue::S(digest))
            .send()
            .await
            .map_err(|e| dynamo_error(e, "PutItem", &self.table))?;
        Ok(())
    }
}

/// Which locks the backend uses.
#[derive(Clone)]
pub(crate) struct Locker {
    store: StateStore,
    table: Option<LockTable>,
    lockfile: bool,
}

/// A lock tfrollback holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldLock {
    pub(crate) info: LockInfo,
    pub(crate) lockfile: bool,
    pub(crate) dynamodb: bool,
}

impl Locker {
    pub(crate) fn new(store: StateStore, table: Option<LockTable>, use_lockfile: bool) -> Locker {
        Locker {
            store,
            table,
            lockfile: use_lockfile,
        }
    }

    /// True when the backend configures any lock at all.
    pub(crate) fn enabled(&self) -> bool {
        self.lockfile || self.table.is_some()
    }

    fn lockfile_key(&self) -> String {
        format!("{}.tflock", self.store.key())
    }

    fn lock_id(&self) -> String {
        format!("{}/{}", self.store.bucket(), self.store.key())
    }

    /// Takes every configured lock, retrying while someone else holds it until `timeout`.
    /// Ctrl-C (`stop` turning true) ends the wait at once; an attempt under way is never cut
    /// short, so no lock is ever taken without being known.
    pub(crate) async fn acquire(
        &self,
        info: &LockInfo,
        timeout: Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
        on_wait: &mut dyn FnMut(&LockInfo),
    ) -> Result<HeldLock, LockError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(500);
        let mut announced = false;
        loop {
            match self.try_acquire(info).await {
                Err(LockError::Held { holder, place }) => {
                    if tokio::time::Instant::now() + delay > deadline {
                        return Err(LockError::Held { holder, place });
                    }
                    if !announced {
                        on_wait(&holder);
                        announced = true;
                    }
                    let mut stop = stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        stopped = stop.wait_for(|stop| *stop) => {
                            // A closed channel means nobody can ask to stop: keep waiting.
                            if stopped.is_ok() {
                                return Err(LockError::Interrupted);
                            }
                            tokio::time::sleep(delay).await;
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    async fn try_acquire(&self, info: &LockInfo) -> Result<HeldLock, LockError> {
        let held = HeldLock {
            info: info.clone(),
            lockfile: self.lockfile,
            dynamodb: self.table.is_some(),
        };
        if self.lockfile {
            let body = info.to_json().into_bytes();
            match self
                .store
                .put(&self.lockfile_key(), body, &Condition::Absent)
                .await
            {
                Ok(_) => {}
                Err(S3Error::PreconditionFailed { .. }) => {
                    let holder = self.lockfile_holder().await?.unwrap_or_else(unknown_holder);
                    // A write the SDK retried after a lost answer meets the lock the first
                    // attempt created: a holder with our ID is us.
                    if holder.id != info.id {
                        return Err(LockError::Held {
                            holder: Box::new(holder),
                            place: "lock file",
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(table) = &self.table {
            let taken = match table.create_lock(&self.lock_id(), info).await {
                Ok(taken) => taken,
                Err(e) => {
                    self.release_lockfile(info).await.ok();
                    return Err(e);
                }
            };
            if !taken {
                let holder: LockInfo = match table.get(&self.lock_id(), "Info").await {
                    Ok(info) => info
                        .and_then(|j| serde_json::from_str(&j).ok())
                        .unwrap_or_else(unknown_holder),
                    Err(e) => {
                        self.release_lockfile(info).await.ok();
                        return Err(e);
                    }
                };
                // As for the lock file: a retried PutItem meets the item its first attempt put.
                if holder.id != info.id {
                    self.release_lockfile(info).await.ok();
                    return Err(LockError::Held {
                        holder: Box::new(holder),
                        place: "DynamoDB",
                    });
                }
            }
        }
        Ok(held)
    }

    async fn lockfile_holder(&self) -> Result<Option<LockInfo>, LockError> {
        Ok(self
            .store
            .get(&self.lockfile_key())
            .await?
            .and_then(|f| serde_json::from_slice(&f.body).ok()))
    }

    async fn release_lockfile(&self, info: &LockInfo) -> Result<bool, LockError> {
        match self.lockfile_holder().await? {
            Some(holder) if holder.id == info.id => {
                self.store.delete(&self.lockfile_key()).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Releases a lock this tool holds (the DynamoDB item and the lock file at once: each is
    /// released only if it still holds our ID). A lock whose ID is not ours is left alone.
    /// Returns whether anything of ours was released.
    pub(crate) async fn release(&self, held: &HeldLock) -> Result<bool, LockError> {
        let dynamodb = async {
            match &self.table {
                Some(table) if held.dynamodb => {
                    table
                        .delete_lock(&self.lock_id(), &held.info.to_json())
                        .await
                }
                _ => Ok(false),
            }
        };
        let lockfile = async {
            if held.lockfile {
                self.release_lockfile(&held.info).await
            } else {
                Ok(false)
            }
        };
        let (dynamodb, lockfile) = tokio::join!(dynamodb, lockfile);
        Ok(dynamodb? | lockfile?)
    }

    /// Who holds the lock now, if anyone.
    pub(crate) async fn holder(&self) -> Result<Option<LockInfo>, LockError> {
        if self.lockfile
            && let Some(h) = self.lockfile_holder().await?
        {
            return Ok(Some(h));
        }
        if let Some(table) = &self.table
            && let Some(json) = table.get(&self.lock_id(), "Info").await?
        {
            return Ok(Some(
                serde_json::from_str(&json).unwrap_or_else(|_| unknown_holder()),
            ));
        }
        Ok(None)
    }
}

fn unknown_holder() -> LockInfo {
    LockInfo {
        id: "(unknown)".into(),
        operation: "(unknown)".into(),
        info: String::new(),
        who: "(unknown)".into(),
        version: String::new(),
        created: "(unknown)".into(),
        path: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_info_uses_terraforms_field_names() {
        let info = LockInfo::new(
            "tfrollback to previous".into(),
            String::new(),
            "ops@laptop".into(),
            "1.11.4".into(),
            "b",
            "app/terraform.tfstate",
        );
        let v: serde_json::Value = serde_json::from_str(&info.to_json()).unwrap();
        for field in [
            "ID",
            "Operation",
            "Info",
            "Who",
            "Version",
            "Created",
            "Path",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        assert_eq!(v["Path"], "b/app/terraform.tfstate");
        assert!(info.who.contains('@'));
        let parsed: LockInfo = serde_json::from_str(
            r#"{"ID":"x","Operation":"OperationTypeApply","Info":"","Who":"a@b","Version":"1.11.4","Created":"2026-01-01T00:00:00Z","Path":"b/k"}"#,
        )
        .unwrap();
        assert_eq!(parsed.operation, "OperationTypeApply");
    }
}
