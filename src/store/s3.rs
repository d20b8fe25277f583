//! The state object in S3: version listing, reads, and typed errors. Every request carries the
//! backend's encryption settings where S3 needs them (SSE-C on reads).

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::BucketVersioningStatus;
use md5::{Digest, Md5};

use crate::model::backend::{Backend, Encryption};
use crate::model::lifecycle::{Filter, Rule};
use crate::model::readiness::Versioning;
use crate::model::selector::{ObjectVersion, VersionId};
use crate::store::compat::{self, Problem};

#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    #[error("bucket {bucket} does not exist")]
    NoSuchBucket { bucket: String },
    #[error("{target} does not exist")]
    NoSuchKey { target: String },
    #[error("no version {version} of {target}")]
    NoSuchVersion { version: String, target: String },
    #[error("version {version} of {target} is a delete marker, not a state")]
    DeleteMarker { version: String, target: String },
    #[error("access denied: {operation} on {target}")]
    AccessDenied {
        operation: &'static str,
        target: String,
    },
    #[error("the AWS credentials were refused ({code}) by {operation} on {target}")]
    BadCredentials {
        code: String,
        operation: &'static str,
        target: String,
    },
    #[error("no AWS credentials were found: {detail}")]
    NoCredentials { detail: String },
    #[error("no AWS region is configured")]
    NoRegion,
    #[error("versioning is not enabled on bucket {bucket}, so no earlier state versions exist")]
    VersioningDisabled { bucket: String },
    #[error(
        "versioning is suspended on bucket {bucket}: new writes replace the current version instead of keeping it"
    )]
    VersioningSuspended { bucket: String },
    #[error("{operation} on {target} timed out")]
    Timeout {
        operation: &'static str,
        target: String,
    },
    #[error("could not reach S3 for {operation} on {target}: {detail}")]
    Transport {
        operation: &'static str,
        target: String,
        detail: String,
    },
    #[error("S3 refused {operation} on {target}: {code}: {message}")]
    Service {
        operation: &'static str,
        target: String,
        code: String,
        message: String,
    },
    #[error("{target} changed since it was read (the write was conditional on ETag {etag})")]
    PreconditionFailed { target: String, etag: String },
    #[error("the listing of {target} was truncated without a marker to continue from")]
    BadPagination { target: String },
    #[error("reading {target} failed mid-body: {detail}")]
    Body { target: String, detail: String },
    #[error("the answer to {operation} on {target} could not be read: {problem} (HTTP {status})")]
    UnreadableAnswer {
        operation: &'static str,
        target: String,
        status: u16,
        problem: Problem,
    },
}

impl S3Error {
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            S3Error::NoSuchBucket { .. } => {
                "check --bucket, the backend configuration and the region (--region)".into()
            }
            S3Error::NoSuchKey { .. } => "check --key and --workspace; `tfrollback list` shows what exists".into(),
            S3Error::NoSuchVersion { .. } => "run `tfrollback list` to see the versions".into(),
            S3Error::DeleteMarker { .. } => {
                "name a version that holds a state: `tfrollback list` marks delete markers with x".into()
            }
            S3Error::AccessDenied { operation, .. } => format!(
                "the AWS identity in use needs the s3:{} permission on the bucket{} (docs/iam.md lists the minimal policy)",
                iam_action(operation),
                if *operation == "GetObject" {
                    ", and s3:ListBucket (without it S3 answers 403 for an object that does not exist)"
                } else {
                    ""
                }
            ),
            S3Error::BadCredentials { .. } | S3Error::NoCredentials { .. } => {
                "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or log in with `aws sso login`".into()
            }
            S3Error::NoRegion => "pass --region, set AWS_REGION, or set region in the backend block".into(),
            S3Error::VersioningDisabled { bucket } | S3Error::VersioningSuspended { bucket } => format!(
                "enable versioning (`aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`); rollbacks become possible from the next write on"
            ),
            S3Error::Timeout { .. } | S3Error::Transport { .. } | S3Error::Body { .. } => {
                "check the network and the endpoint (--endpoint-url, AWS_ENDPOINT_URL), then run the command again".into()
            }
            S3Error::PreconditionFailed { .. } => {
                "someone wrote the state meanwhile; nothing was overwritten. Run `tfrollback list` and `tfrollback status`, then decide".into()
            }
            S3Error::Service { .. } | S3Error::BadPagination { .. } => {
                "run again with -vv for the full answer; if it persists, check the endpoint and the bucket's policy".into()
            }
            S3Error::UnreadableAnswer { .. } => {
                "the endpoint (--endpoint-url, AWS_ENDPOINT_URL, the backend's endpoints) may not be an S3-compatible server, or something in between answered for it; run again with -vv to log the answer (docs/s3-compatible.md lists the servers tfrollback is tested against)".into()
            }
        })
    }
}

impl S3Error {
    /// The IAM action a denied request needs (`s3:PutObject`), when this is a denial.
    pub(crate) fn denied_action(&self) -> Option<String> {
        match self {
            S3Error::AccessDenied { operation, .. } => {
                Some(format!("s3:{}", iam_action(operation)))
            }
            _ => None,
        }
    }
}

/// The IAM action behind an operation name, for hints.
fn iam_action(operation: &str) -> &str {
    match operation {
        "ListObjectVersions" => "ListBucketVersions",
        "GetObject" => "GetObjectVersion",
        "GetBucketVersioning" => "GetBucketVersioning",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutObject" | "CopyObject" => "PutObject",
        other => other,
    }
}

/// Access to a raw response's status code and body, for errors that carry no error code.
pub(crate) trait HttpStatus {
    fn http_status(&self) -> u16;
    /// The body, when it was read into memory (not for streamed answers such as GetObject's).
    fn body_bytes(&self) -> Option<&[u8]>;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn http_status(&self) -> u16 {
        self.status().as_u16()
    }

    fn body_bytes(&self) -> Option<&[u8]> {
        self.body().bytes()
    }
}

/// How much of an unreadable answer's body a debug log shows.
const LOGGED_BODY_BYTES: usize = 4096;

/// The error at the end of `err`'s chain of sources: for an answer that could not be read,
/// the decoder's own words rather than the SDK's wrappers.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    // The SDK blames itself for answers that are the server's fault.
    last.to_string()
        .replace(" This is likely a bug in the SDK.", "")
}

/// The error for a 2xx answer the SDK could not read: what was wrong with it, from its body.
fn unreadable<E, R>(
    err: &SdkError<E, R>,
    operation: &'static str,
    target: String,
    status: u16,
) -> S3Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + HttpStatus + 'static,
{
    let body = err.raw_response().and_then(HttpStatus::body_bytes);
    // State bodies (GetObject) hold secrets: they are streamed, never logged.
    if let Some(body) = body.filter(|_| operation != "GetObject") {
        tracing::debug!(
            operation,
            %target,
            "the answer that could not be read (first {LOGGED_BODY_BYTES} bytes): {}",
            String::from_utf8_lossy(&body[..body.len().min(LOGGED_BODY_BYTES)])
        );
    }
    S3Error::UnreadableAnswer {
        operation,
        target,
        status,
        problem: compat::diagnose(operation, body, &innermost(err)),
    }
}

fn classify<E, R>(err: SdkError<E, R>, operation: &'static str, target: String) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + HttpStatus + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => return S3Error::Timeout { operation, target },
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            return S3Error::Transport {
                operation,
                target,
                detail: DisplayErrorContext(&err).to_string(),
            };
        }
        _ => {}
    }
    let status = err.raw_response().map(HttpStatus::http_status);
    tracing::debug!(operation, %target, ?status, error = %DisplayErrorContext(&err), "S3 error");
    // A success status on an error: the answer came, but the SDK could not read it.
    if let Some(status) = status.filter(|s| (200..300).contains(s)) {
        return unreadable(&err, operation, target, status);
    }
    let code = match (err.code(), status) {
        (Some(code), _) => code.to_string(),
        // Some errors come without a body (HEAD requests, some S3-compatible servers).
        (None, Some(404)) => "NotFound".to_string(),
        (None, Some(403)) => "AccessDenied".to_string(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => String::new(),
    };
    match code.as_str() {
        "NoSuchBucket" => S3Error::NoSuchBucket {
            bucket: target.split('/').nth(2).unwrap_or(&target).to_string(),
        },
        "NoSuchKey" => S3Error::NoSuchKey { target },
        "NoSuchVersion" => S3Error::NoSuchVersion {
            version: String::new(),
            target,
        },
        // S3 (and LocalStack) answer a read of a delete marker's version 405; stock moto
        // answers 404 NoSuchVersion instead, which lands above.
        "MethodNotAllowed"
            if operation.starts_with("GetObject") || operation.ends_with("ObjectTagging") =>
        {
            S3Error::DeleteMarker {
                version: String::new(),
                target,
            }
        }
        "AccessDenied" | "AllAccessDisabled" => S3Error::AccessDenied { operation, target },
        "PreconditionFailed" | "ConditionalRequestConflict" => S3Error::PreconditionFailed {
            target,
            etag: String::new(),
        },
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" => {
            S3Error::BadCredentials {
                code,
                operation,
                target,
            }
        }
        _ => S3Error::Service {
            operation,
            target,
            message: match err.message() {
                Some(message) => message.to_string(),
                // An error answer without S3's error document: say what came instead.
                None => compat::diagnose_error(err.raw_response().and_then(HttpStatus::body_bytes))
                    .map_or_else(
                        || "the answer had neither an error code nor a message".to_string(),
                        |problem| format!("the answer was no S3 error document: {problem}"),
                    ),
            },
            code: if code.is_empty() {
                "unknown error".into()
            } else {
                code
            },
        },
    }
}

/// Builds the shared AWS configuration: standard credential chain, the backend's region and
/// profile, retries, and timeouts so that no request can hang an incident response.
pub(crate) async fn aws_config(
    backend: &Backend,
    read_timeout: Duration,
) -> Result<aws_config::SdkConfig, S3Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(read_timeout)
                .operation_attempt_timeout(Duration::from_mins(2))
                .operation_timeout(Duration::from_mins(5))
                .build(),
        );
    if let Some(region) = &backend.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &backend.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(S3Error::NoRegion);
    }
    Ok(config)
}

/// Fails early, with a clear message, when the credential chain finds nothing.
pub(crate) async fn check_credentials(config: &aws_config::SdkConfig) -> Result<(), S3Error> {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = config.credentials_provider() else {
        return Err(S3Error::NoCredentials {
            detail: "no credential provider is configured".into(),
        });
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| S3Error::NoCredentials {
            detail: DisplayErrorContext(&e).to_string(),
        })
}

/// The state object of one backend.
#[derive(Clone)]
pub(crate) struct StateStore {
    client: Client,
    bucket: String,
    key: String,
    encryption: Encryption,
    acl: Option<String>,
    checksum: bool,
    page_size: i32,
}

/// Which bytes of a body a ranged read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// From `start` up to `end`, not included.
    Between(u64, u64),
    /// The last this many bytes (a suffix range).
    Last(u64),
}

/// What the version listing showed of another key under the state's prefix (the marks
/// index): its latest version, that it has none, or that the listing stopped before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sibling {
    Latest { etag: Option<String> },
    Absent,
    NotCovered,
}

/// A write's precondition: S3's compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Overwrite whatever is there.
    None,
    /// Create only if absent (`If-None-Match: *`).
    Absent,
    /// Replace only the version with this ETag (`If-Match`).
    Matches(String),
    /// A write that must not happen (`doctor`'s access probe): `If-Match` an ETag no object
    /// has, and a `Content-MD5` the body does not have. Either refuses it on a server that
    /// checks either; only a server that ignores both would write.
    Never,
}

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) version_id: Option<VersionId>,
    pub(crate) etag: Option<String>,
}

/// An object's current content with its ETag and version id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    pub(crate) etag: Option<String>,
    pub(crate) version_id: Option<VersionId>,
}

/// What a read conditional on an ETag found (`StateStore::get_unless`).
#[derive(Debug, Clone)]
pub(crate) enum Reread {
    /// The object still has that ETag (and this version id, when the answer names it).
    Unchanged { version_id: Option<VersionId> },
    /// Its content now, with its ETag and version id.
    Changed(Fetched),
    /// There is no such object.
    Absent,
}

impl StateStore {
    pub(crate) fn new(
        config: &aws_config::SdkConfig,
        backend: &Backend,
        page_size: i32,
    ) -> StateStore {
        let mut s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(backend.path_style)
            // Stock moto's answers differ from AWS's in naming only: see store::compat.
            .interceptor(compat::RootNames);
        if let Some(endpoint) = &backend.endpoint_s3 {
            s3 = s3.endpoint_url(endpoint);
        }
        StateStore {
            client: Client::from_conf(s3.build()),
            bucket: backend.bucket.clone(),
            key: backend.key.clone(),
            encryption: backend.encryption.clone(),
            acl: backend.acl.clone(),
            checksum: !backend.skip_checksum,
            page_size,
        }
    }

    pub(crate) fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The state object's key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Writes an object next to the state (or the state itself) the way the backend writes
    /// state: JSON content type, SHA-256 checksum unless the backend skips it, the backend's
    /// encryption and ACL, and the given precondition.
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: &Condition,
    ) -> Result<Written, S3Error> {
        use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectCannedAcl, ServerSideEncryption};
        let target = format!("s3://{}/{key}", self.bucket);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into());
        if self.checksum {
            req = req.checksum_algorithm(ChecksumAlgorithm::Sha256);
        }
        req = match &self.encryption {
            Encryption::None => req,
            Encryption::Aes256 => req.server_side_encryption(ServerSideEncryption::Aes256),
            Encryption::Kms(id) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(id),
            Encryption::CustomerKey(k) => req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(k)
                .sse_customer_key_md5(customer_key_md5(k)),
        };
        if let Some(acl) = &self.acl {
            req = req.acl(ObjectCannedAcl::from(acl.as_str()));
        }
        req = match condition {
            Condition::None => req,
            Condition::Absent => req.if_none_match("*"),
            Condition::Matches(etag) => req.if_match(etag),
            Condition::Never => req.if_match(NO_SUCH_ETAG).content_md5(WRONG_MD5),
        };
        let out = req
            .send()
            .await
            .map_err(|e| match classify(e, "PutObject", target) {
                S3Error::PreconditionFailed { target, .. } => S3Error::PreconditionFailed {
                    target,
                    etag: match condition {
                        Condition::Matches(etag) => etag.clone(),
                        Condition::Never => NO_SUCH_ETAG.into(),
                        _ => "*".into(),
                    },
                },
                other => other,
            })?;
        Ok(Written {
            version_id: out.version_id().and_then(|v| VersionId::parse(v).ok()),
            etag: out.e_tag().map(str::to_string),
        })
    }

    /// The current content of an object next to the state, or None when there is none.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Fetched>, S3Error> {
        Ok(match self.get_unless_tagged(key, None).await? {
            Reread::Changed(fetched) => Some(fetched),
            // Without a condition nothing is ever unchanged.
            Reread::Absent | Reread::Unchanged { .. } => None,
        })
    }

    /// The current content of `key` unless it still has ETag `etag` (`If-None-Match`): proves a
    /// body already read is still current without sending it again. A server that ignores the
    /// condition sends the body (`Changed`, with the version id to compare).
    pub(crate) async fn get_unless(&self, key: &str, etag: &str) -> Result<Reread, S3Error> {
        self.get_unless_tagged(key, Some(etag)).await
    }

    async fn get_unless_tagged(&self, key: &str, etag: Option<&str>) -> Result<Reread, S3Error> {
        let target = format!("s3://{}/{key}", self.bucket);
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_none_match(etag.map(str::to_string));
        if let Encryption::CustomerKey(k) = &self.encryption {
            req = req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(k)
                .sse_customer_key_md5(customer_key_md5(k));
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                // 304 Not Modified has no body, so no error code: its status says it all.
                if let Some(raw) = e.raw_response()
                    && raw.status().as_u16() == 304
                {
                    return Ok(Reread::Unchanged {
                        version_id: raw
                            .headers()
                            .get("x-amz-version-id")
                            .and_then(|v| VersionId::parse(v).ok()),
                    });
                }
                return match classify(e, "GetObject", target) {
                    S3Error::NoSuchKey { .. } => Ok(Reread::Absent),
                    S3Error::Service { code, .. } if code == "NotFound" => Ok(Reread::Absent),
                    other => Err(other),
                };
            }
        };
        let etag = out.e_tag().map(str::to_string);
        let version_id = out.version_id().and_then(|v| VersionId::parse(v).ok());
        let body = out.body.collect().await.map_err(|e| S3Error::Body {
            target: format!("s3://{}/{key}", self.bucket),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(Reread::Changed(Fetched {
            body: body.to_vec(),
            etag,
            version_id,
        }))
    }

    /// The tags of one version of the state object.
    pub(crate) async fn tags(&self, version: &VersionId) -> Result<Vec<(String, String)>, S3Error> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(&self.key)
            .version_id(version.as_str())
            .send()
            .await
            .map_err(|e| {
                self.version_error(classify(e, "GetObjectTagging", self.location()), version)
            })?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// Replaces the tags of one version of the state object (none: removes them).
    pub(crate) async fn set_tags(
        &self,
        version: &VersionId,
        tags: &[(String, String)],
    ) -> Result<(), S3Error> {
        use aws_sdk_s3::types::{Tag, Tagging};
        if tags.is_empty() {
            self.client
                .delete_object_tagging()
                .bucket(&self.bucket)
                .key(&self.key)
                .version_id(version.as_str())
                .send()
                .await
                .map_err(|e| {
                    self.version_error(classify(e, "DeleteObjectTagging", self.location()), version)
                })?;
            return Ok(());
        }
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.invalid_tag(e))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| self.invalid_tag(e))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(&self.key)
            .version_id(version.as_str())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| {
                self.version_error(classify(e, "PutObjectTagging", self.location()), version)
            })?;
        Ok(())
    }

    fn invalid_tag(&self, e: impl std::fmt::Display) -> S3Error {
        S3Error::Service {
            operation: "PutObjectTagging",
            target: self.location(),
            code: "InvalidTag".into(),
            message: e.to_string(),
        }
    }

    fn version_error(&self, e: S3Error, version: &VersionId) -> S3Error {
        match e {
            S3Error::NoSuchVersion { target, .. } => S3Error::NoSuchVersion {
                version: version.to_string(),
                target,
            },
            S3Error::DeleteMarker { target, .. } => S3Error::DeleteMarker {
                version: version.to_string(),
                target,
            },
            other => other,
        }
    }

    /// The keys under `prefix` (current objects, not versions), in key order.
    pub(crate) async fn keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = vec![];
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    classify(e, "ListObjectsV2", format!("s3://{}/{prefix}", self.bucket))
                })?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Deletes the current version of an object next to the state (in a versioned bucket this
    /// adds a delete marker; nothing is lost).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), S3Error> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, "DeleteObject", format!("s3://{}/{key}", self.bucket)))?;
        Ok(())
    }

    /// The bucket's versioning status (GetBucketVersioning).
    pub(crate) async fn versioning(&self) -> Result<Versioning, S3Error> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| classify(e, "GetBucketVersioning", format!("s3://{}", self.bucket)))?;
        Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Off,
        })
    }

    /// Fails unless versioning is enabled: without it there is nothing to roll back to.
    pub(crate) async fn check_versioning(&self) -> Result<(), S3Error> {
        match self.versioning().await? {
            Versioning::Enabled => Ok(()),
            Versioning::Suspended => Err(S3Error::VersioningSuspended {
                bucket: self.bucket.clone(),
            }),
            Versioning::Off => Err(S3Error::VersioningDisabled {
                bucket: self.bucket.clone(),
            }),
        }
    }

    /// The bucket's lifecycle rules (GetBucketLifecycleConfiguration); none when the bucket has
    /// no lifecycle configuration (`NoSuchLifecycleConfiguration`).
    pub(crate) async fn lifecycle_rules(&self) -> Result<Vec<Rule>, S3Error> {
        let target = format!("s3://{}", self.bucket);
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.rules().iter().map(lifecycle_rule).collect()),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(vec![]),
            Err(e) => Err(classify(e, "GetBucketLifecycleConfiguration", target)),
        }
    }

    /// Whether this identity may write the state, found out without writing it: a PutObject of
    /// `body` (the current version's exact bytes) conditional on an ETag no object can have,
    /// with a Content-MD5 that does not match it. S3 authorizes a request before it evaluates
    /// its preconditions (RFC 9110 section 13.2.1: failures come first) or its digest, so
    /// `PreconditionFailed` or `BadDigest` proves the write is allowed and `AccessDenied` that
    /// it is not. `Ok(None)`: refused on its condition or digest, nothing written.
    /// `Ok(Some(..))`: the server ignored both and wrote `body` as a new version, which holds
    /// the current state's bytes unchanged.
    pub(crate) async fn probe_write(&self, body: Vec<u8>) -> Result<Option<Written>, S3Error> {
        let key = self.key.clone();
        match self.put(&key, body, &Condition::Never).await {
            Err(S3Error::PreconditionFailed { .. }) => Ok(None),
            Err(S3Error::Service { code, .. })
                if code == "BadDigest" || code == "InvalidDigest" =>
            {
                Ok(None)
            }
            Ok(written) => Ok(Some(written)),
            Err(e) => Err(e),
        }
    }

    /// Every version and delete marker of the state key, newest first, and what the same
    /// listing showed of `sibling`, a key next to the state (`<key>.tfrollback/marks.json`):
    /// a prefix listing returns it too, so whether it changed is known without reading it.
    ///
    /// A prefix listing also returns `<key>.tflock` and look-alike keys; only exact matches are
    /// kept. The key itself sorts first among the keys it prefixes, so paging stops as soon as
    /// another key shows up.
    pub(crate) async fn list_versions(
        &self,
        sibling: &str,
    ) -> Result<(Vec<ObjectVersion>, Sibling), S3Error> {
        let mut versions = vec![];
        let mut markers = vec![];
        let mut seen: Option<Sibling> = None;
        let mut covered: bool;
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&self.key)
                .max_keys(self.page_size)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| classify(e, "ListObjectVersions", self.location()))?;
            let mut other_key_seen = false;
            for v in out.versions() {
                if v.key() == Some(sibling) && v.is_latest().unwrap_or(false) {
                    seen = Some(Sibling::Latest {
                        etag: v.e_tag().map(str::to_string),
                    });
                }
                if v.key() != Some(self.key.as_str()) {
                    other_key_seen = true;
                    continue;
                }
                versions.push(ObjectVersion {
                    version_id: parse_id(v.version_id())?,
                    last_modified: timestamp(v.last_modified()),
                    size: v.size().unwrap_or(0).max(0) as u64,
                    is_latest: v.is_latest().unwrap_or(false),
                    delete_marker: false,
                    etag: v.e_tag().map(str::to_string),
                });
            }
            for m in out.delete_markers() {
                if m.key() == Some(sibling) && m.is_latest().unwrap_or(false) {
                    seen = Some(Sibling::Absent);
                }
                if m.key() != Some(self.key.as_str()) {
                    other_key_seen = true;
                    continue;
                }
                markers.push(ObjectVersion {
                    version_id: parse_id(m.version_id())?,
                    last_modified: timestamp(m.last_modified()),
                    size: 0,
                    is_latest: m.is_latest().unwrap_or(false),
                    delete_marker: true,
                    etag: None,
                });
            }
            // Keys come in order: the sibling's absence is proven only when the listing went
            // past where it would be.
            covered = !out.is_truncated().unwrap_or(false)
                || out.next_key_marker().is_some_and(|k| k > sibling);
            if !out.is_truncated().unwrap_or(false) || other_key_seen {
                break;
            }
            match (out.next_key_marker(), out.next_version_id_marker()) {
                (Some(k), Some(v)) if k == self.key => {
                    key_marker = Some(k.to_string());
                    version_marker = Some(v.to_string());
                }
                (Some(_), _) => break,
                _ => {
                    return Err(S3Error::BadPagination {
                        target: self.location(),
                    });
                }
            }
        }
        let sibling = seen.unwrap_or(if covered {
            Sibling::Absent
        } else {
            Sibling::NotCovered
        });
        Ok((merge_newest_first(versions, markers), sibling))
    }

    /// Starts reading one version's body.
    pub(crate) async fn open(
        &self,
        version: &VersionId,
    ) -> Result<aws_sdk_s3::primitives::ByteStream, S3Error> {
        self.open_range(version, None).await
    }

    /// Starts reading some bytes of one version's body (`range` as in the HTTP header:
    /// `bytes=0-65535`, `bytes=-16384`), or all of it.
    async fn open_range(
        &self,
        version: &VersionId,
        range: Option<String>,
    ) -> Result<aws_sdk_s3::primitives::ByteStream, S3Error> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .version_id(version.as_str())
            .set_range(range);
        if let Encryption::CustomerKey(key) = &self.encryption {
            req = req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(key)
                .sse_customer_key_md5(customer_key_md5(key));
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.version_error(classify(e, "GetObject", self.location()), version))?;
        Ok(out.body)
    }

    /// Some bytes of one version's body: `Span::Between(start, end)` (end exclusive) or the
    /// last `Span::Last(n)` bytes. A body that breaks off mid-stream is read again.
    pub(crate) async fn read_span(
        &self,
        version: &VersionId,
        span: Span,
    ) -> Result<Vec<u8>, S3Error> {
        let range = match span {
            Span::Between(start, end) => format!("bytes={start}-{}", end.saturating_sub(1)),
            Span::Last(n) => format!("bytes=-{n}"),
        };
        retry_body(version, || async {
            let body = self.open_range(version, Some(range.clone())).await?;
            self.collect(version, body).await
        })
        .await
    }

    async fn collect(
        &self,
        version: &VersionId,
        body: aws_sdk_s3::primitives::ByteStream,
    ) -> Result<Vec<u8>, S3Error> {
        let bytes = body.collect().await.map_err(|e| S3Error::Body {
            target: format!("{} version {version}", self.location()),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    /// One version's whole body (a body that breaks off mid-stream is read again).
    pub(crate) async fn read(&self, version: &VersionId) -> Result<Vec<u8>, S3Error> {
        retry_body(version, || self.read_once(version)).await
    }

    async fn read_once(&self, version: &VersionId) -> Result<Vec<u8>, S3Error> {
        let body = self.open(version).await?;
        self.collect(version, body).await
    }
}

/// An ETag no object has: S3's ETags are hex digests, this is not one.
const NO_SUCH_ETAG: &str = "\"tfrollback-doctor-no-object-has-this-etag\"";
/// The base64 MD5 of the empty body: no state has it.
const WRONG_MD5: &str = "1B2M2Y8AsgTpgAmY7PhCfg==";

/// A lifecycle rule as the model needs it: the filter (new `Filter`, its `And`, or the old
/// top-level `Prefix`), the status, and the actions that can delete a version.
fn lifecycle_rule(r: &aws_sdk_s3::types::LifecycleRule) -> Rule {
    use aws_sdk_s3::types::ExpirationStatus;
    let days = |d: Option<i32>| d.and_then(|d| u32::try_from(d).ok());
    let size = |s: Option<i64>| s.and_then(|s| u64::try_from(s).ok());
    let tag = |t: &aws_sdk_s3::types::Tag| (t.key().to_string(), t.value().to_string());
    let filter = match r.filter() {
        Some(f) => match f.and() {
            Some(and) => Filter {
                prefix: and.prefix().unwrap_or_default().to_string(),
                tags: and.tags().iter().map(tag).collect(),
                size_greater_than: size(and.object_size_greater_than()),
                size_less_than: size(and.object_size_less_than()),
            },
            None => Filter {
                prefix: f.prefix().unwrap_or_default().to_string(),
                tags: f.tag().map(tag).into_iter().collect(),
                size_greater_than: size(f.object_size_greater_than()),
                size_less_than: size(f.object_size_less_than()),
            },
        },
        // Rules written before `Filter` existed still carry a top-level `Prefix`.
        #[allow(deprecated)]
        None => Filter {
            prefix: r.prefix().unwrap_or_default().to_string(),
            ..Filter::default()
        },
    };
    Rule {
        id: r.id().map(str::to_string),
        enabled: *r.status() == ExpirationStatus::Enabled,
        filter,
        expiration_days: days(
            r.expiration()
                .and_then(aws_sdk_s3::types::LifecycleExpiration::days),
        ),
        expiration_date: r
            .expiration()
            .and_then(|e| e.date())
            .map(|d| timestamp(Some(d))),
        noncurrent_days: days(
            r.noncurrent_version_expiration()
                .and_then(aws_sdk_s3::types::NoncurrentVersionExpiration::noncurrent_days),
        ),
        newer_noncurrent: days(
            r.noncurrent_version_expiration().and_then(
                aws_sdk_s3::types::NoncurrentVersionExpiration::newer_noncurrent_versions,
            ),
        ),
    }
}

/// How many times a body that breaks off mid-stream is read again.
const BODY_ATTEMPTS: u32 = 4;

/// Runs `read` again while the body breaks off mid-stream: the SDK retries requests, but not a
/// body that stops arriving after the answer began.
pub(crate) async fn retry_body<T, F, Fut>(version: &VersionId, mut read: F) -> Result<T, S3Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, S3Error>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Err(S3Error::Body { .. }) if attempt < BODY_ATTEMPTS => {
                tracing::info!("reading version {version} broke off; trying again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn parse_id(id: Option<&str>) -> Result<VersionId, S3Error> {
    VersionId::parse(id.unwrap_or("null")).map_err(|_| S3Error::Service {
        operation: "ListObjectVersions",
        target: String::new(),
        code: "InvalidVersionId".into(),
        message: format!(
            "the listing returned an unusable version id {:?}",
            id.unwrap_or("")
        ),
    })
}

fn timestamp(t: Option<&aws_sdk_s3::primitives::DateTime>) -> jiff::Timestamp {
    t.and_then(|t| jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The SDK returns versions and delete markers as two lists, each newest first; S3's own
/// order interleaves them. Merge by time (S3 keeps one-second resolution), keeping each list's
/// order, and let the latest entry win a tie.
pub(crate) fn merge_newest_first(
    versions: Vec<ObjectVersion>,
    markers: Vec<ObjectVersion>,
) -> Vec<ObjectVersion> {
    let mut out = Vec::with_capacity(versions.len() + markers.len());
    let mut v = versions.into_iter().peekable();
    let mut m = markers.into_iter().peekable();
    loop {
        let take_marker = match (v.peek(), m.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => {
                b.last_modified > a.last_modified
                    || (b.last_modified == a.last_modified && b.is_latest && !a.is_latest)
            }
        };
        out.extend(if take_marker { m.next() } else { v.next() });
    }
    out
}

/// The base64 MD5 of an SSE-C key, which S3 requires alongside it.
fn customer_key_md5(key_b64: &str) -> String {
    let raw = aws_smithy_types::base64::decode(key_b64).unwrap_or_default();
    aws_smithy_types::base64::encode(Md5::digest(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::selector::tests::version;

    fn at(mut v: ObjectVersion, secs: i64) -> ObjectVersion {
        v.last_modified = jiff::Timestamp::from_second(secs).unwrap();
        v
    }

    #[test]
    fn merges_delete_markers_into_the_version_order() {
        let versions = vec![
            at(version("v3", false, false), 30),
            at(version("v2", false, false), 20),
            at(version("v1", false, false), 10),
        ];
        let markers = vec![
            at(version("dm2", true, true), 30),
            at(version("dm1", false, true), 15),
        ];
        let ids: Vec<_> = merge_newest_first(versions, markers)
            .into_iter()
            .map(|v| v.version_id.to_string())
            .collect();
        assert_eq!(ids, ["dm2", "v3", "v2", "dm1", "v1"]);
    }

    /// The error the SDK gives for a 200 answer whose XML it rejects, with that answer.
    fn rejected(
        body: &'static str,
    ) -> SdkError<
        aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningError,
        aws_smithy_runtime_api::http::Response,
    > {
        use aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningError;
        let raw = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
            aws_smithy_types::body::SdkBody::from(body),
        );
        SdkError::service_error(
            GetBucketVersioningError::unhandled(aws_smithy_xml_error()),
            raw,
        )
    }

    fn aws_smithy_xml_error() -> Box<dyn std::error::Error + Send + Sync> {
        "encountered invalid XML root: expected VersioningConfiguration but got StartEl { .. }. This is likely a bug in the SDK.".into()
    }

    #[test]
    fn an_answer_with_another_root_says_which_operation_what_and_what_to_do() {
        let e = classify(
            rejected(
                "<?xml version=\"1.0\"?><BucketVersioning><Status>Enabled</Status></BucketVersioning>",
            ),
            "GetBucketVersioning",
            "s3://tfr-state".into(),
        );
        assert_eq!(
            e.to_string(),
            "the answer to GetBucketVersioning on s3://tfr-state could not be read: \
             the answer's XML root was <BucketVersioning> where S3 sends <VersioningConfiguration> (HTTP 200)"
        );
        let hint = e.hint().unwrap();
        assert!(
            hint.contains("may not be an S3-compatible server"),
            "{hint}"
        );
        assert!(hint.contains("-vv"), "{hint}");
        assert!(!e.to_string().contains("no message"));
    }

    #[test]
    fn an_answer_that_is_not_xml_says_so() {
        let e = classify(
            rejected("Welcome to nginx!"),
            "GetBucketVersioning",
            "s3://tfr-state".into(),
        );
        assert_eq!(
            e.to_string(),
            "the answer to GetBucketVersioning on s3://tfr-state could not be read: \
             the body was not XML (it began \"Welcome to nginx!\") (HTTP 200)"
        );
    }

    #[test]
    fn an_answer_with_the_right_root_quotes_the_decoder_not_the_sdks_self_blame() {
        let e = classify(
            rejected("<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
            "GetBucketVersioning",
            "s3://tfr-state".into(),
        );
        let message = e.to_string();
        assert!(
            message.contains("encountered invalid XML root"),
            "{message}"
        );
        assert!(!message.contains("bug in the SDK"), "{message}");
    }

    #[test]
    fn an_error_answer_without_an_s3_error_document_says_what_came() {
        use aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningError;
        let raw = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(502).unwrap(),
            aws_smithy_types::body::SdkBody::from("<html><h1>502 Bad Gateway</h1></html>"),
        );
        let meta = aws_smithy_types::error::ErrorMetadata::builder().build();
        let e = classify(
            SdkError::service_error(GetBucketVersioningError::generic(meta), raw),
            "GetBucketVersioning",
            "s3://b".into(),
        );
        assert_eq!(
            e.to_string(),
            "S3 refused GetBucketVersioning on s3://b: HTTP 502: the answer was no S3 error \
             document: the answer's XML root was <html> where S3 sends <Error>"
        );
    }

    #[test]
    fn a_delete_markers_version_answered_405_is_named_a_delete_marker() {
        use aws_sdk_s3::operation::get_object::GetObjectError;
        let raw = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(405).unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        let meta = aws_smithy_types::error::ErrorMetadata::builder()
            .code("MethodNotAllowed")
            .message("The specified method is not allowed against this resource.")
            .build();
        let e = classify(
            SdkError::service_error(GetObjectError::generic(meta), raw),
            "GetObject",
            "s3://b/k".into(),
        );
        assert!(matches!(e, S3Error::DeleteMarker { .. }), "{e:?}");
        assert!(e.hint().unwrap().contains("tfrollback list"));
    }

    #[test]
    fn lifecycle_rules_keep_their_filter_status_and_deleting_actions() {
        use aws_sdk_s3::types::{
            ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator,
            LifecycleRuleFilter, NoncurrentVersionExpiration, Tag,
        };
        let tag = Tag::builder().key("tier").value("scratch").build().unwrap();
        let and = LifecycleRule::builder()
            .id("trim")
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix("app/")
                            .tags(tag.clone())
                            .object_size_greater_than(100)
                            .build(),
                    )
                    .build(),
            )
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(30)
                    .newer_noncurrent_versions(5)
                    .build(),
            )
            .build()
            .unwrap();
        let r = lifecycle_rule(&and);
        assert_eq!(r.id.as_deref(), Some("trim"));
        assert!(r.enabled);
        assert_eq!(r.filter.prefix, "app/");
        assert_eq!(r.filter.tags, [("tier".to_string(), "scratch".to_string())]);
        assert_eq!(r.filter.size_greater_than, Some(100));
        assert_eq!((r.noncurrent_days, r.newer_noncurrent), (Some(30), Some(5)));

        #[allow(deprecated)]
        let old_style = LifecycleRule::builder()
            .prefix("env:/")
            .status(ExpirationStatus::Disabled)
            .expiration(
                LifecycleExpiration::builder()
                    .days(7)
                    .date(aws_smithy_types::DateTime::from_secs(1_800_000_000))
                    .build(),
            )
            .build()
            .unwrap();
        let r = lifecycle_rule(&old_style);
        assert!(!r.enabled);
        assert_eq!(r.filter.prefix, "env:/");
        assert_eq!(r.expiration_days, Some(7));
        assert_eq!(
            r.expiration_date.map(jiff::Timestamp::as_second),
            Some(1_800_000_000)
        );
        let single_tag = LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().tag(tag).build())
            .build()
            .unwrap();
        let r = lifecycle_rule(&single_tag);
        assert_eq!(r.filter.prefix, "");
        assert_eq!(r.filter.tags.len(), 1);
        assert!(!r.deletes_noncurrent() && !r.expires_current());
    }

    #[test]
    fn iam_hints_name_the_permission() {
        let e = S3Error::AccessDenied {
            operation: "ListObjectVersions",
            target: "s3://b/k".into(),
        };
        assert!(e.hint().unwrap().contains("s3:ListBucketVersions"));
    }
}
