//! Direct AWS truth: synchronous S3 and DynamoDB clients on the lab's server, to set up
//! sandboxes and to check outcomes without going through tfrollback or terraform.
//!
//! The helpers must be called from plain `#[test]` functions, or from inside a tokio runtime
//! (they then block on a scoped thread).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

use super::server::REGION;

/// The lab servers' credentials (they accept any).
fn lab_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("test", "test", None, None, "tfr-lab")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

/// Runs `future` to completion on `rt`, also when called from inside another runtime.
fn block_on<F>(rt: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(future))
                .join()
                .expect("S3 helper thread panicked")
        })
    } else {
        rt.block_on(future)
    }
}

/// Renders an SDK error with its service code and message (never just "service error").
fn sdk_error<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown code"),
            service.message().unwrap_or("no message")
        ),
        None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(error)),
    }
}

/// One entry of a version listing: an object version or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    /// Body size; 0 for delete markers.
    pub size: i64,
    /// Seconds since the epoch (S3 has one-second resolution).
    pub last_modified: i64,
}

/// Synchronous S3 access to one bucket on the lab server.
pub struct S3 {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    rt: tokio::runtime::Runtime,
}

impl S3 {
    pub fn new(endpoint: &str, bucket: &str) -> S3 {
        use aws_sdk_s3::config::{BehaviorVersion, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(lab_credentials())
            .force_path_style(true)
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_mins(1))
                    .build(),
            )
            .build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.to_string(),
            rt: runtime(),
        }
    }

    pub(super) fn create_bucket(&self, versioning: bool) {
        block_on(&self.rt, async {
            self.client
                .create_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateBucket {}: {}", self.bucket, sdk_error(&e)));
            if versioning {
                self.client
                    .put_bucket_versioning()
                    .bucket(&self.bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PutBucketVersioning {}: {}", self.bucket, sdk_error(&e))
                    });
            }
        });
    }

    /// All versions and delete markers of exactly `key`, newest first.
    ///
    /// The SDK returns versions and delete markers as two lists, so they are merged by
    /// LastModified (one-second resolution), the latest entry first; a version and a delete
    /// marker written within the same second may come out in either order below the latest.
    pub fn versions(&self, key: &str) -> Vec<Version> {
        block_on(&self.rt, async {
            let mut all = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(key)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "ListObjectVersions {}/{key}: {}",
                            self.bucket,
                            sdk_error(&e)
                        )
                    });
                let mut rank = all.len();
                for v in page.versions().iter().filter(|v| v.key() == Some(key)) {
                    all.push((
                        rank,
                        Version {
                            version_id: v.version_id().unwrap_or("null").to_string(),
                            is_latest: v.is_latest().unwrap_or(false),
                            delete_marker: false,
                            size: v.size().unwrap_or(0),
                            last_modified: v
                                .last_modified()
                                .map(aws_sdk_dynamodb::primitives::DateTime::secs)
                                .unwrap_or(0),
                        },
                    ));
                    rank += 1;
                }
                for m in page
                    .delete_markers()
                    .iter()
                    .filter(|m| m.key() == Some(key))
                {
                    all.push((
                        rank,
                        Version {
                            version_id: m.version_id().unwrap_or("null").to_string(),
                            is_latest: m.is_latest().unwrap_or(false),
                            delete_marker: true,
                            size: 0,
                            last_modified: m
                                .last_modified()
                                .map(aws_sdk_dynamodb::primitives::DateTime::secs)
                                .unwrap_or(0),
                        },
                    ));
                    rank += 1;
                }
                if !page.is_truncated().unwrap_or(false) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
                assert!(
                    key_marker.is_some() && version_marker.is_some(),
                    "truncated ListObjectVersions page without markers"
                );
            }
            // Latest first, then newest first; the listing order breaks ties within a kind.
            all.sort_by_key(|(rank, v)| {
                (
                    std::cmp::Reverse(v.is_latest),
                    std::cmp::Reverse(v.last_modified),
                    *rank,
                )
            });
            all.into_iter().map(|(_, v)| v).collect()
        })
    }

    /// Body of `key` (its latest version, or `version_id`).
    /// The server-side encryption S3 reports for a version (`aws:kms`, `AES256`), if any.
    pub fn encryption(&self, key: &str, version_id: Option<&str>) -> Option<String> {
        block_on(&self.rt, async {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_string))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "HeadObject {}/{key} version {version_id:?}: {}",
                        self.bucket,
                        sdk_error(&e)
                    )
                });
            out.server_side_encryption().map(|e| e.as_str().to_string())
        })
    }

    pub fn get(&self, key: &str, version_id: Option<&str>) -> Vec<u8> {
        block_on(&self.rt, async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_string))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "GetObject {}/{key} version {version_id:?}: {}",
                        self.bucket,
                        sdk_error(&e)
                    )
                });
            out.body
                .collect()
                .await
                .unwrap_or_else(|e| panic!("reading {}/{key}: {e}", self.bucket))
                .into_bytes()
                .to_vec()
        })
    }

    /// Body of `key` parsed as JSON (a state file).
    pub fn get_json(&self, key: &str, version_id: Option<&str>) -> serde_json::Value {
        let body = self.get(key, version_id);
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{}/{key} version {version_id:?} is not JSON ({e}): {}",
                self.bucket,
                String::from_utf8_lossy(&body)
            )
        })
    }

    /// Writes `body` at `key`; returns the new version id ("null" when unversioned).
    pub fn put(&self, key: &str, body: &[u8]) -> String {
        block_on(&self.rt, async {
            let out = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutObject {}/{key}: {}", self.bucket, sdk_error(&e)));
            out.version_id().unwrap_or("null").to_string()
        })
    }

    /// Plain delete; in a versioned bucket it returns the new delete marker's version id.
    pub fn delete(&self, key: &str) -> String {
        block_on(&self.rt, async {
            let out = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("DeleteObject {}/{key}: {}", self.bucket, sdk_error(&e))
                });
            out.version_id().unwrap_or("null").to_string()
        })
    }

    /// The tags of one version of `key`.
    pub fn tags(&self, key: &str, version_id: &str) -> std::collections::BTreeMap<String, String> {
        block_on(&self.rt, async {
            let out = self
                .client
                .get_object_tagging()
                .bucket(&self.bucket)
                .key(key)
                .version_id(version_id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetObjectTagging {key}: {}", sdk_error(&e)));
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
    }

    /// Every version (and delete marker) of every key under `prefix`, as (key, version id).
    pub fn versions_under(&self, prefix: &str) -> Vec<(String, String)> {
        block_on(&self.rt, async {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectVersions {prefix}: {}", sdk_error(&e)));
            out.versions()
                .iter()
                .map(|v| {
                    (
                        v.key().unwrap_or_default().to_string(),
                        v.version_id().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }

    /// The current keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        block_on(&self.rt, async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectsV2 {prefix}: {}", sdk_error(&e)));
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        })
    }

    /// The base64 SHA-256 checksum S3 stored with one version of `key`, if any (what a
    /// backend writing with a checksum leaves, and what the server checked the upload against).
    pub fn checksum_sha256(&self, key: &str, version_id: &str) -> Option<String> {
        block_on(&self.rt, async {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .version_id(version_id)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap_or_else(|e| panic!("HeadObject {}/{key}: {}", self.bucket, sdk_error(&e)));
            out.checksum_sha256().map(str::to_string)
        })
    }

    /// Whether `key` currently exists (false when its latest version is a delete marker).
    pub fn exists(&self, key: &str) -> bool {
        block_on(&self.rt, async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => true,
                Err(e)
                    if e.as_service_error().is_some_and(
                        aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found,
                    ) =>
                {
                    false
                }
                Err(e) => panic!("HeadObject {}/{key}: {}", self.bucket, sdk_error(&e)),
            }
        })
    }
}

/// Synchronous DynamoDB access on the lab server, for lock and digest items.
pub struct Dynamo {
    pub client: aws_sdk_dynamodb::Client,
    rt: tokio::runtime::Runtime,
}

impl Dynamo {
    pub fn new(endpoint: &str) -> Dynamo {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(lab_credentials())
            .build();
        Dynamo {
            client: aws_sdk_dynamodb::Client::from_conf(config),
            rt: runtime(),
        }
    }

    pub(super) fn create_lock_table(&self, table: &str) {
        block_on(&self.rt, async {
            self.client
                .create_table()
                .table_name(table)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("LockID")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("valid key schema"),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("LockID")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("valid attribute definition"),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateTable {table}: {}", sdk_error(&e)));
        });
    }

    /// The string attributes of the item `LockID = lock_id`, if it exists.
    pub fn get(&self, table: &str, lock_id: &str) -> Option<HashMap<String, String>> {
        block_on(&self.rt, async {
            let out = self
                .client
                .get_item()
                .table_name(table)
                .key("LockID", AttributeValue::S(lock_id.to_string()))
                .consistent_read(true)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetItem {table} {lock_id}: {}", sdk_error(&e)));
            out.item.map(|item| {
                item.into_iter()
                    .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
                    .collect()
            })
        })
    }

    /// Writes the item `LockID = lock_id` with string attributes `attrs` (unconditionally).
    pub fn put(&self, table: &str, lock_id: &str, attrs: &[(&str, &str)]) {
        block_on(&self.rt, async {
            let mut req = self
                .client
                .put_item()
                .table_name(table)
                .item("LockID", AttributeValue::S(lock_id.to_string()));
            for (k, v) in attrs {
                req = req.item(*k, AttributeValue::S(v.to_string()));
            }
            req.send()
                .await
                .unwrap_or_else(|e| panic!("PutItem {table} {lock_id}: {}", sdk_error(&e)));
        });
    }

    /// Deletes the item `LockID = lock_id` (no error when absent).
    pub fn delete(&self, table: &str, lock_id: &str) {
        block_on(&self.rt, async {
            self.client
                .delete_item()
                .table_name(table)
                .key("LockID", AttributeValue::S(lock_id.to_string()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("DeleteItem {table} {lock_id}: {}", sdk_error(&e)));
        });
    }
}

/// Direct CloudWatch access, to give `guard` real alarms to watch.
pub struct CloudWatch {
    pub client: aws_sdk_cloudwatch::Client,
    rt: tokio::runtime::Runtime,
}

impl CloudWatch {
    pub fn new(endpoint: &str) -> CloudWatch {
        use aws_sdk_cloudwatch::config::{BehaviorVersion, Region};
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(lab_credentials())
            .build();
        CloudWatch {
            client: aws_sdk_cloudwatch::Client::from_conf(config),
            rt: runtime(),
        }
    }

    /// A metric alarm on an error rate, as a deploy's runbook would have one.
    pub fn create_alarm(&self, name: &str) {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
        let req = self
            .client
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("App")
            .metric_name("5xxRate")
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold);
        block_on(&self.rt, req.send()).expect("PutMetricAlarm");
    }

    /// Sets the alarm's state, as CloudWatch would when the metric crosses the threshold.
    pub fn set_state(&self, name: &str, state: &str) {
        use aws_sdk_cloudwatch::types::StateValue;
        let req = self
            .client
            .set_alarm_state()
            .alarm_name(name)
            .state_value(StateValue::from(state))
            .state_reason(format!("set to {state} by the test"));
        block_on(&self.rt, req.send()).expect("SetAlarmState");
    }
}

/// Bucket settings and whole-bucket reads for `doctor`'s scenarios.
impl S3 {
    /// PutBucketVersioning with `status` (`Enabled` or `Suspended`).
    pub fn set_versioning(&self, status: BucketVersioningStatus) {
        block_on(&self.rt, async {
            self.client
                .put_bucket_versioning()
                .bucket(&self.bucket)
                .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("PutBucketVersioning {}: {}", self.bucket, sdk_error(&e))
                });
        });
    }

    /// PutBucketLifecycleConfiguration with `rules`.
    pub fn set_lifecycle(&self, rules: Vec<aws_sdk_s3::types::LifecycleRule>) {
        block_on(&self.rt, async {
            self.client
                .put_bucket_lifecycle_configuration()
                .bucket(&self.bucket)
                .lifecycle_configuration(
                    aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                        .set_rules(Some(rules))
                        .build()
                        .expect("a valid lifecycle configuration"),
                )
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PutBucketLifecycleConfiguration {}: {}",
                        self.bucket,
                        sdk_error(&e)
                    )
                });
        });
    }

    /// Every version and delete marker of every key in the bucket, as (key, version id,
    /// delete marker), sorted: what must not change when nothing is written.
    pub fn all_versions(&self) -> Vec<(String, String, bool)> {
        block_on(&self.rt, async {
            let mut all = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("ListObjectVersions {}: {}", self.bucket, sdk_error(&e))
                    });
                for v in page.versions() {
                    all.push((
                        v.key().unwrap_or_default().to_string(),
                        v.version_id().unwrap_or("null").to_string(),
                        false,
                    ));
                }
                for m in page.delete_markers() {
                    all.push((
                        m.key().unwrap_or_default().to_string(),
                        m.version_id().unwrap_or("null").to_string(),
                        true,
                    ));
                }
                if !page.is_truncated().unwrap_or(false) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
            }
            all.sort();
            all
        })
    }
}

/// Whole-table reads and table removal for `doctor`'s scenarios.
impl Dynamo {
    /// Every item of `table` with its string attributes, sorted by LockID.
    pub fn items(&self, table: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        block_on(&self.rt, async {
            let out = self
                .client
                .scan()
                .table_name(table)
                .send()
                .await
                .unwrap_or_else(|e| panic!("Scan {table}: {}", sdk_error(&e)));
            let mut items: Vec<std::collections::BTreeMap<String, String>> = out
                .items()
                .iter()
                .map(|item| {
                    item.iter()
                        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
                        .collect()
                })
                .collect();
            items.sort_by(|a, b| a.get("LockID").cmp(&b.get("LockID")));
            items
        })
    }

    /// DeleteTable.
    pub fn delete_table(&self, table: &str) {
        block_on(&self.rt, async {
            self.client
                .delete_table()
                .table_name(table)
                .send()
                .await
                .unwrap_or_else(|e| panic!("DeleteTable {table}: {}", sdk_error(&e)));
        });
    }
}
